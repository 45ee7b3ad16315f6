//! A rot13 server that upgrades itself without refusing a single connection.
//!
//! On `SIGHUP` it starts a new copy of its own binary (the file now at its path: build a new
//! version first and that one starts) with the listening socket inherited, waits until the new
//! process says it is ready, then stops accepting and closes its listener. Clients still in the
//! listen queue are the new process's; clients already connected keep talking to the old one,
//! which exits when the last of them leaves. Every reply is tagged with the pid that served it.
//!
//! Try it with two terminals:
//!
//! ```text
//! # terminal 1
//! cargo run --example upgrade                  # 127.0.0.1:12345 (or: -- PORT)
//!
//! # terminal 2
//! nc 127.0.0.1 12345                           # type: hello     -> [4242] uryyb
//!                                              # keep this nc open
//! # terminal 3 (or suspend nc with Ctrl-Z)
//! kill -HUP $(pgrep -n upgrade)                # terminal 1: "pid 4242: handed over to 4250"
//! nc 127.0.0.1 12345                           # type: hello     -> [4250] uryyb
//! ```
//!
//! Or ask for the upgrade and see its result, from a shell:
//!
//! ```text
//! cargo run --example upgrade -- --control /tmp/rot13.ctl
//! cargo run --example upgrade -- --ask /tmp/rot13.ctl     # ok 4250   (exit 0)
//!                                                         # error ... (exit 1): why not
//! ```
//!
//! A second request while one runs is answered `error an upgrade is under way already`. The
//! control socket is handed over with the service, so the next request reaches the new process.
//!
//! The first `nc` still gets answers from the old pid; when it quits (Ctrl-D), the old process
//! exits. `kill -HUP` the new pid to upgrade again. Options:
//!
//! - `--ready-delay-ms N`: a slow start, N ms before the new process takes the socket and says
//!   it is ready (kill the new pid meanwhile: the old one keeps serving and says why);
//! - `--ready-timeout-ms N`: how long the old process waits for that (default 10000);
//! - `--drain-ms N`: how long the old process serves its clients after a handover at most
//!   (default 60000);
//! - `--grace-ms N`: the rollback window (default 2000): after the new process is ready the old
//!   one keeps its socket open but paused, and resumes at once if the new one exits within it
//!   (`kill -9` the new pid just after it took over: the old one says "rolled back");
//! - `--hold-ms N`: the new process waits N ms after it took the socket (paused: it accepts
//!   nothing yet) before it says it is ready.
//!
//! Every side of the deploy, in one pattern each:
//!
//! - **old process** ([`Upgrade`] below): [`hand_over`] shares the listener, starts the new
//!   process ([`Successor`]), waits for it, pauses during the rollback window, and relinquishes
//!   (or resumes): one call, one result, and a second request meanwhile is refused;
//! - **new process** (`main` below): take the inherited socket **paused**
//!   ([`PauseAccept`] right after `start()`), close what this version does not know, tell the
//!   old process ([`handover::ready`]), then [`ResumeAccept`]: a new process given up before it
//!   was ready has accepted no client, so none is lost with it.
//!
//! Under systemd (`NOTIFY_SOCKET` set), the first process says `READY=1` and each upgrade
//! `RELOADING=1`, then `MAINPID=<new>` and `READY=1`.

use std::time::Duration;

use actix::io::{FramedWrite, WriteHandler};
use actix::prelude::*;
use actix_socket_factory::handover::{self, Successor};
use actix_socket_factory::{
    hand_over, hand_over_to, GetSockName, PauseAccept, ResumeAccept, SocketCreated, SocketFactory,
    SocketFactoryBuilder, SocketFailed,
};
use tokio::io::WriteHalf;
use tokio::net::TcpStream;
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};

/// The name the listening socket is handed over by.
const NAME: &str = "rot13";

struct Options {
    port: u16,
    /// A slow start, before the socket is taken.
    ready_delay: Duration,
    ready_timeout: Duration,
    drain: Duration,
    grace: Duration,
    /// How long a new process holds the socket, paused, before it says it is ready.
    hold: Duration,
    /// The control socket's path.
    control: Option<String>,
    /// A running process's control socket to ask for the sockets.
    take_from: Option<String>,
}

fn options() -> Options {
    let mut options = Options {
        port: 12345,
        ready_delay: Duration::ZERO,
        ready_timeout: Duration::from_secs(10),
        drain: Duration::from_secs(60),
        grace: Duration::from_secs(2),
        hold: Duration::ZERO,
        control: None,
        take_from: None,
    };
    let usage = || -> ! {
        eprintln!(
            "usage: upgrade [PORT] [--ready-delay-ms N] [--ready-timeout-ms N] [--drain-ms N] \
             [--grace-ms N] [--hold-ms N] [--control PATH] \
             [--take-from PATH]\n       upgrade --ask PATH"
        );
        std::process::exit(2)
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut millis = || {
            args.next()
                .and_then(|n| n.parse().ok())
                .map(Duration::from_millis)
                .unwrap_or_else(|| usage())
        };
        match arg.as_str() {
            "--ready-delay-ms" => options.ready_delay = millis(),
            "--ready-timeout-ms" => options.ready_timeout = millis(),
            "--drain-ms" => options.drain = millis(),
            "--grace-ms" => options.grace = millis(),
            "--hold-ms" => options.hold = millis(),
            "--control" => options.control = Some(args.next().unwrap_or_else(|| usage())),
            "--ask" => ask(&args.next().unwrap_or_else(|| usage())),
            "--take-from" => options.take_from = Some(args.next().unwrap_or_else(|| usage())),
            port => options.port = port.parse().unwrap_or_else(|_| usage()),
        }
    }
    options
}

/// Ask the server to hand its sockets to a new copy of itself: the new pid, or why not.
#[derive(Message)]
#[rtype(result = "Result<u32, String>")]
struct Upgrade;

/// The name the control socket is handed over by.
const CONTROL: &str = "control";

/// A session ended.
#[derive(Message)]
#[rtype(result = "()")]
struct SessionClosed;

struct Server {
    factory: Option<Addr<SocketFactory>>,
    control: Option<Addr<SocketFactory>>,
    sessions: usize,
    handed_over: bool,
    ready_timeout: Duration,
    drain: Duration,
    grace: Duration,
    /// How many upgrades came before this process (its predecessor's state).
    generation: u64,
}

impl Actor for Server {
    type Context = Context<Self>;
}

impl Server {
    fn exit_if_drained(&self) {
        if self.handed_over && self.sessions == 0 {
            println!("pid {}: last client gone; exiting", std::process::id());
            System::current().stop();
        }
    }
}

impl Handler<SocketCreated> for Server {
    type Result = ();

    fn handle(&mut self, created: SocketCreated, ctx: &mut Context<Self>) {
        if created.domain == actix_socket_factory::Domain::Unix {
            // The control socket: one request, one answer.
            match created.into_unix_stream() {
                Ok(stream) => {
                    // Counted as a client: the old process answers it before it exits.
                    self.sessions += 1;
                    control(stream, ctx.address());
                }
                Err(error) => eprintln!("cannot use the control connection: {error}"),
            }
            return;
        }
        match created.into_tcp_stream() {
            Ok(stream) => {
                self.sessions += 1;
                Session::serve(stream, ctx.address().recipient());
            }
            Err(error) => eprintln!("cannot use the accepted socket: {error}"),
        }
    }
}

impl Handler<SocketFailed> for Server {
    type Result = ();

    fn handle(&mut self, failed: SocketFailed, _: &mut Context<Self>) {
        eprintln!("pid {}: {failed}", std::process::id());
        System::current().stop();
    }
}

impl Handler<SessionClosed> for Server {
    type Result = ();

    fn handle(&mut self, _: SessionClosed, _: &mut Context<Self>) {
        self.sessions -= 1;
        self.exit_if_drained();
    }
}

impl Handler<Upgrade> for Server {
    type Result = ResponseActFuture<Self, Result<u32, String>>;

    fn handle(&mut self, _: Upgrade, _: &mut Context<Self>) -> Self::Result {
        let me = std::process::id();
        let Some(factory) = self.factory.clone() else {
            return Box::pin(fut::ready(Err("handed over already".to_owned())));
        };
        let mut factories = vec![(factory, NAME.to_owned())];
        factories.extend(self.control.clone().map(|c| (c, CONTROL.to_owned())));
        let successor = match Successor::this_program() {
            Ok(successor) => successor.ready_timeout(self.ready_timeout),
            Err(error) => return Box::pin(fut::ready(Err(error.to_string()))),
        };
        // Application state for the successor: here, how many upgrades came before it.
        let successor = successor.state((self.generation + 1).to_string());
        let grace = self.grace;
        println!("pid {me}: upgrading");
        // Clients keep being served while the successor starts. A second request meanwhile is
        // refused by `hand_over` itself (one upgrade at a time).
        let upgrade = async move {
            let child = hand_over(&factories, successor, grace).await?;
            Ok(child.id())
        };
        Box::pin(upgrade.into_actor(self).map(Server::upgraded))
    }
}

/// A new process asks for the sockets over this control connection.
#[derive(Message)]
#[rtype(result = "Result<u32, String>")]
struct HandOverTo(tokio::net::UnixStream);

impl Handler<HandOverTo> for Server {
    type Result = ResponseActFuture<Self, Result<u32, String>>;

    fn handle(&mut self, HandOverTo(stream): HandOverTo, _: &mut Context<Self>) -> Self::Result {
        let Some(factory) = self.factory.clone() else {
            return Box::pin(fut::ready(Err("handed over already".to_owned())));
        };
        let mut factories = vec![(factory, NAME.to_owned())];
        factories.extend(self.control.clone().map(|c| (c, CONTROL.to_owned())));
        let (timeout, grace) = (self.ready_timeout, self.grace);
        println!("pid {}: a process asks for the sockets", std::process::id());
        let upgrade = async move { hand_over_to(&factories, stream, timeout, grace).await };
        Box::pin(upgrade.into_actor(self).map(Server::upgraded))
    }
}

impl Server {
    /// How an upgrade ended: handed over (serve the clients we have, then exit), or not.
    fn upgraded(
        outcome: Result<u32, actix_socket_factory::handover::HandoverError>,
        act: &mut Server,
        ctx: &mut Context<Server>,
    ) -> Result<u32, String> {
        let me = std::process::id();
        match outcome {
            Ok(pid) => {
                act.handed_over = true;
                act.factory = None;
                act.control = None;
                println!(
                    "pid {me}: handed over to {pid}; serving {} client(s) until they leave",
                    act.sessions
                );
                ctx.run_later(act.drain, move |_, _| {
                    println!("pid {me}: drain time over; exiting");
                    System::current().stop();
                });
                act.exit_if_drained();
                Ok(pid)
            }
            Err(why) => {
                println!("pid {me}: upgrade failed: {why}; still serving");
                Err(why.to_string())
            }
        }
    }
}

/// A control connection: the line `upgrade` asks for an upgrade; the answer is `ok PID` (the
/// new process serves) or `error WHY` (this one still does).
fn control(stream: tokio::net::UnixStream, server: Addr<Server>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    actix::spawn(async move {
        let (read, mut write) = stream.into_split();
        let mut line = String::new();
        let mut reader = BufReader::new(read);
        let asked =
            tokio::time::timeout(Duration::from_secs(10), reader.read_line(&mut line)).await;
        if matches!(asked, Ok(Ok(_))) && line.trim() == "sockets" && reader.buffer().is_empty() {
            // A new process asks for the sockets (`--take-from`): the connection is the handover's.
            if let Ok(stream) = reader.into_inner().reunite(write) {
                let _ = server.send(HandOverTo(stream)).await;
            }
            server.do_send(SessionClosed);
            return;
        }
        let answer = match (asked, line.trim()) {
            (Ok(Ok(_)), "upgrade") => match server.send(Upgrade).await {
                Ok(Ok(pid)) => format!("ok {pid}\n"),
                Ok(Err(why)) => format!("error {why}\n"),
                Err(_) => "error the server stopped\n".to_owned(),
            },
            (Ok(Ok(_)), other) => format!("error unknown request {other:?}: try upgrade\n"),
            _ => {
                server.do_send(SessionClosed);
                return;
            }
        };
        let _ = write.write_all(answer.as_bytes()).await;
        server.do_send(SessionClosed);
    });
}

/// `--ask PATH`: asks the server listening on control socket PATH for an upgrade and prints
/// its answer; exits 0 when the upgrade succeeded.
fn ask(path: &str) -> ! {
    use std::io::{BufRead, Write};
    let answer = std::os::unix::net::UnixStream::connect(path).and_then(|mut stream| {
        stream.write_all(b"upgrade\n")?;
        let mut line = String::new();
        std::io::BufReader::new(stream).read_line(&mut line)?;
        Ok(line)
    });
    match answer {
        Ok(line) => {
            print!("{line}");
            std::process::exit(if line.starts_with("ok ") { 0 } else { 1 })
        }
        Err(error) => {
            eprintln!("cannot ask {path}: {error}");
            std::process::exit(2)
        }
    }
}

/// One client: lines in, `[pid] rot13` lines out.
struct Session {
    out: FramedWrite<String, WriteHalf<TcpStream>, LinesCodec>,
    server: Recipient<SessionClosed>,
}

impl Session {
    fn serve(stream: TcpStream, server: Recipient<SessionClosed>) {
        Session::create(|ctx| {
            let (read, write) = tokio::io::split(stream);
            ctx.add_stream(FramedRead::new(read, LinesCodec::new_with_max_length(4096)));
            Session {
                out: FramedWrite::new(write, LinesCodec::new(), ctx),
                server,
            }
        });
    }
}

impl Actor for Session {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.server.do_send(SessionClosed);
    }
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

fn main() -> std::io::Result<()> {
    env_logger::init();
    let options = options();
    let me = std::process::id();
    let system = System::new();
    system.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        // SIGHUP's default is to end the process: catch it before anyone learns our pid.
        let mut hangups = signal(SignalKind::hangup()).expect("a SIGHUP handler");
        // The predecessor's state: read before serving.
        let generation = match handover::state() {
            Ok(Some(state)) => String::from_utf8_lossy(&state).parse().unwrap_or(0),
            Ok(None) => 0,
            Err(error) => {
                println!("pid {me}: no state from the old process: {error}");
                0
            }
        };
        if generation > 0 {
            println!("pid {me}: generation {generation}");
        }
        if handover::is_successor() {
            println!("pid {me}: successor starting");
        }
        // A slow start (loading, warming caches) happens before the socket is taken: until
        // then, the old process serves every client.
        if !options.ready_delay.is_zero() {
            tokio::time::sleep(options.ready_delay).await;
        }
        // The predecessor's socket when there is one, else a fresh one.
        // The sockets: from the predecessor that started us (inherited), from a running
        // process we ask (`--take-from`, over its control socket), or fresh.
        let mut received = match &options.take_from {
            Some(path) => match handover::request(path, Duration::from_secs(10)) {
                Ok(received) => Some(received),
                Err(error) => {
                    println!("pid {me}: cannot take the sockets from {path}: {error}");
                    System::current().stop();
                    return;
                }
            },
            None => None,
        };
        // The owner holds its factories; each factory holds its owner weakly: made together.
        let mut made = None;
        let server = Server::create(|ctx| {
            let owner = ctx.address();
            let mut source = |name: &str| -> Option<SocketFactoryBuilder> {
                let builder = SocketFactory::builder().owner(&owner);
                match &mut received {
                    Some(received) => received
                        .take(name)
                        .map(|shared| builder.adopt(shared.into_socket())),
                    None => handover::is_inherited(name).then(|| builder.systemd(Some(name))),
                }
            };
            let handed = source(NAME);
            let control_handed = source(CONTROL);
            let taken = handed.is_some();
            let factory = handed
                .unwrap_or_else(|| {
                    let builder = SocketFactory::builder().owner(&owner);
                    builder.bind_address("127.0.0.1").bind_port(options.port)
                })
                .start();
            // The control socket, handed over too, or made.
            let control = control_handed.map(SocketFactoryBuilder::start).or_else(|| {
                options.control.as_ref().map(|path| {
                    let builder = SocketFactory::builder().owner(&owner);
                    builder.bind_address(std::path::Path::new(path)).start()
                })
            });
            // Paused until the old process lets go: if this process is given up before it is
            // ready, it has accepted nobody.
            if taken {
                factory.do_send(PauseAccept);
                if let Some(control) = &control {
                    control.do_send(PauseAccept);
                }
            }
            made = Some((factory.clone(), control.clone(), taken));
            Server {
                generation,
                factory: Some(factory),
                control,
                sessions: 0,
                handed_over: false,
                ready_timeout: options.ready_timeout,
                drain: options.drain,
                grace: options.grace,
            }
        });
        let Some((factory, control, taken)) = made else {
            return;
        };
        let local = match factory.send(GetSockName).await {
            Ok(Ok(local)) => local,
            _ => return, // the failure reaches the server, which stops
        };
        if taken {
            println!("pid {me}: took {local}, paused until ready");
        }
        for name in handover::close_unclaimed() {
            println!("pid {me}: closed a socket this version does not know: {name}");
        }
        if !options.hold.is_zero() {
            tokio::time::sleep(options.hold).await;
        }
        let told = match received {
            Some(received) => {
                let from = received.predecessor();
                received
                    .ready()
                    .map(|()| true)
                    .map_err(|error| std::io::Error::other(format!("process {from}: {error}")))
            }
            None => handover::ready(),
        };
        match told {
            Ok(true) => println!("pid {me}: took over {local}"),
            Ok(false) => {
                println!("pid {me}: rot13 server listening on {local}");
                let _ = handover::notify("READY=1");
            }
            // The old process is gone (killed meanwhile): the socket is ours all the same.
            Err(error) => {
                println!("pid {me}: serving {local}; could not tell the old process: {error}")
            }
        }
        factory.do_send(ResumeAccept);
        if let Some(control) = &control {
            control.do_send(ResumeAccept);
            if !taken {
                println!(
                    "pid {me}: upgrade on request with: upgrade --ask {}",
                    options.control.as_deref().unwrap_or("")
                );
            }
        }
        println!("pid {me}: upgrade with: kill -HUP {me}");
        // SIGHUP: upgrade. This task holds the server (factories hold their owner weakly).
        actix::spawn(async move {
            while hangups.recv().await.is_some() {
                server.do_send(Upgrade);
            }
        });
    });
    system.run()
}
