//! Pre-forked workers on one listening socket: POE's `pause_accept` pattern, across processes.
//!
//! The master binds the socket, pauses accepting ([`PauseAccept`]: it never takes a client
//! itself) and starts N worker processes that inherit the socket ([`ShareListener`],
//! [`Successor`]). Each worker takes it by name and accepts from the one kernel listen queue they
//! all share, so whichever worker is free takes the next client. When a worker dies, the others
//! carry its share at once (nothing is queued on it) and the master starts a replacement.
//!
//! ```text
//! cargo run --example prefork                    # 127.0.0.1:12346, 3 workers
//! cargo run --example prefork -- 4000 --workers 4
//! nc 127.0.0.1 12346                             # type: hello -> [4243] uryyb
//! kill <a worker's pid>                          # the others answer; a new one starts
//! ```
//!
//! Every reply is tagged with the pid of the worker that served it. `SIGINT` or `SIGTERM` to the
//! master stops the workers and the master; a worker whose master is gone exits too.

use std::process::Child;
use std::time::Duration;

use actix::io::{FramedWrite, WriteHandler};
use actix::prelude::*;
use actix_socket_factory::handover::{self, SharedSocket, Successor};
use actix_socket_factory::{
    GetSockName, PauseAccept, ShareListener, SocketCreated, SocketFactory, SocketFailed,
};
use tokio::io::WriteHalf;
use tokio::net::TcpStream;
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};

/// The name the listening socket is passed by.
const NAME: &str = "rot13";

struct Options {
    port: u16,
    workers: usize,
    worker: bool,
}

fn options() -> Options {
    let mut options = Options {
        port: 12346,
        workers: 3,
        worker: false,
    };
    let usage = || -> ! {
        eprintln!("usage: prefork [PORT] [--workers N]");
        std::process::exit(2)
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--workers" => {
                options.workers = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n > 0)
                    .unwrap_or_else(|| usage())
            }
            // Set by the master for the processes it starts.
            "--worker" => options.worker = true,
            port => options.port = port.parse().unwrap_or_else(|_| usage()),
        }
    }
    options
}

fn main() -> std::io::Result<()> {
    env_logger::init();
    let options = options();
    let system = System::new();
    if options.worker {
        system.block_on(worker());
    } else {
        system.block_on(master(options));
    }
    system.run()
}

// ---- The master ----

struct Master {
    /// The master's duplicate of the listener, cloned for each worker.
    shared: Option<SharedSocket>,
    workers: Vec<Child>,
    starting: usize,
    wanted: usize,
}

impl Actor for Master {
    type Context = Context<Self>;
}

/// The master's factory never delivers (accept is paused); a failure ends the program.
impl Handler<SocketCreated> for Master {
    type Result = ();

    fn handle(&mut self, _: SocketCreated, _: &mut Context<Self>) {}
}

impl Handler<SocketFailed> for Master {
    type Result = ();

    fn handle(&mut self, failed: SocketFailed, _: &mut Context<Self>) {
        eprintln!("master: {failed}");
        System::current().stop();
    }
}

impl Master {
    /// Starts one worker and adds it once it is ready.
    fn start_worker(&mut self, ctx: &mut Context<Self>) {
        let Some(shared) = &self.shared else {
            return;
        };
        let spawned = shared
            .try_clone()
            .and_then(|shared| Successor::this_program().map(|s| s.socket(shared)))
            .and_then(|mut successor| {
                successor.command_mut().arg("--worker");
                successor
                    .worker()
                    .ready_timeout(Duration::from_secs(10))
                    .spawn()
            });
        let spawned = match spawned {
            Ok(spawned) => spawned,
            Err(error) => {
                eprintln!("master: cannot start a worker: {error}");
                return;
            }
        };
        self.starting += 1;
        ctx.spawn(spawned.ready().into_actor(self).map(|ready, act, _| {
            act.starting -= 1;
            match ready {
                Ok(ready) => {
                    let child = ready.into_child();
                    println!("master: worker {} ready", child.id());
                    act.workers.push(child);
                }
                Err(why) => eprintln!("master: a worker did not start: {why}"),
            }
        }));
    }

    /// Reaps exited workers and starts replacements.
    fn check_workers(&mut self, ctx: &mut Context<Self>) {
        self.workers.retain_mut(|child| match child.try_wait() {
            Ok(None) => true,
            Ok(Some(status)) => {
                println!("master: worker {} exited ({status})", child.id());
                false
            }
            Err(_) => false,
        });
        while self.workers.len() + self.starting < self.wanted {
            self.start_worker(ctx);
            if self.starting == 0 {
                break; // could not start one: try again at the next check
            }
        }
    }
}

/// Stop the workers, then the master.
#[derive(Message)]
#[rtype(result = "()")]
struct Shutdown;

impl Handler<Shutdown> for Master {
    type Result = ();

    fn handle(&mut self, _: Shutdown, _: &mut Context<Self>) {
        for child in &mut self.workers {
            let _ = child.kill();
            let _ = child.wait();
        }
        println!("master: workers stopped; exiting");
        System::current().stop();
    }
}

async fn master(options: Options) {
    use tokio::signal::unix::{signal, SignalKind};
    // Caught before anyone learns our pid.
    let mut term = signal(SignalKind::terminate()).expect("a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("a SIGINT handler");
    let master = Master {
        shared: None,
        workers: Vec::new(),
        starting: 0,
        wanted: options.workers,
    }
    .start();
    let factory = SocketFactory::builder()
        .bind_address("127.0.0.1")
        .bind_port(options.port)
        .owner(&master)
        .start();
    // The master holds the socket and never accepts: the workers do.
    let _ = factory.send(PauseAccept).await;
    let Ok(Ok(local)) = factory.send(GetSockName).await else {
        return; // the SocketFailed handler said why
    };
    let shared = match factory.send(ShareListener::named(NAME)).await {
        Ok(Ok(shared)) => shared,
        _ => {
            eprintln!("master: cannot share the listener");
            System::current().stop();
            return;
        }
    };
    println!(
        "master {}: listening on {local} (accept paused); starting {} worker(s)",
        std::process::id(),
        options.workers
    );
    master.do_send(Begin(shared));
    // This task holds the master (factories hold their owner weakly) until a signal.
    actix::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        master.do_send(Shutdown);
    });
}

/// Hands the master its shared socket and starts the workers and their watch.
#[derive(Message)]
#[rtype(result = "()")]
struct Begin(SharedSocket);

impl Handler<Begin> for Master {
    type Result = ();

    fn handle(&mut self, Begin(shared): Begin, ctx: &mut Context<Self>) {
        self.shared = Some(shared);
        self.check_workers(ctx);
        ctx.run_interval(Duration::from_millis(100), |act, ctx| {
            act.check_workers(ctx)
        });
    }
}

// ---- A worker ----

struct Worker;

impl Actor for Worker {
    type Context = Context<Self>;
}

impl Handler<SocketCreated> for Worker {
    type Result = ();

    fn handle(&mut self, created: SocketCreated, _: &mut Context<Self>) {
        if let Ok(stream) = created.into_tcp_stream() {
            Session::serve(stream);
        }
    }
}

impl Handler<SocketFailed> for Worker {
    type Result = ();

    fn handle(&mut self, failed: SocketFailed, _: &mut Context<Self>) {
        eprintln!("worker {}: {failed}", std::process::id());
        System::current().stop();
    }
}

async fn worker() {
    let me = std::process::id();
    let master = std::os::unix::process::parent_id();
    let worker = Worker.start();
    let factory = SocketFactory::builder()
        .systemd(Some(NAME))
        .owner(&worker)
        .start();
    if !matches!(factory.send(GetSockName).await, Ok(Ok(_))) {
        return; // the SocketFailed handler said why
    }
    handover::close_unclaimed();
    if let Err(error) = handover::ready() {
        eprintln!("worker {me}: cannot tell the master: {error}");
        System::current().stop();
        return;
    }
    // A worker outlives no master. This task also holds the worker (and so its factory).
    actix::spawn(async move {
        let _worker = worker;
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            if std::os::unix::process::parent_id() != master {
                System::current().stop();
                break;
            }
        }
    });
}

/// One client: lines in, `[pid] rot13` lines out.
struct Session {
    out: FramedWrite<String, WriteHalf<TcpStream>, LinesCodec>,
}

impl Session {
    fn serve(stream: TcpStream) {
        Session::create(|ctx| {
            let (read, write) = tokio::io::split(stream);
            ctx.add_stream(FramedRead::new(read, LinesCodec::new_with_max_length(4096)));
            Session {
                out: FramedWrite::new(write, LinesCodec::new(), ctx),
            }
        });
    }
}

impl Actor for Session {
    type Context = Context<Self>;
}

impl StreamHandler<Result<String, LinesCodecError>> for Session {
    fn handle(&mut self, line: Result<String, LinesCodecError>, ctx: &mut Context<Self>) {
        match line {
            Ok(line) => self
                .out
                .write(format!("[{}] {}", std::process::id(), rot13(&line))),
            Err(_) => ctx.stop(),
        }
    }

    fn finished(&mut self, _: &mut Context<Self>) {
        self.out.close();
    }
}

impl WriteHandler<LinesCodecError> for Session {}

fn rot13(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            'a'..='m' | 'A'..='M' => (c as u8 + 13) as char,
            'n'..='z' | 'N'..='Z' => (c as u8 - 13) as char,
            _ => c,
        })
        .collect()
}
