//! Measurements made inside one child process each (`--probe NAME ...`): connect latency, UDP
//! creation rate and memory per idle listener. Each prints one line for the parent.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_socket_factory::{
    Domain, GetSockName, SocketCreated, SocketFactory, SocketFailed, SocketType,
};
use tokio::sync::mpsc;

use crate::child::say;
use crate::os;
use crate::servers::{Accepting, Connection, Incoming};
use crate::stats::percentile;

/// Longest wait for one delivery before the probe gives up.
const LIMIT: Duration = Duration::from_secs(10);

/// Runs probe `name` with its arguments.
pub fn run(name: &str, args: &[u64]) -> io::Result<()> {
    os::raise_nofile();
    let arg = |i: usize| {
        args.get(i).copied().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("probe {name}: arg {i}"),
            )
        })
    };
    match name {
        "connect" => connect_latency(arg(0)? as u16, arg(1)?),
        "connects-factory" => connects_factory(arg(0)? as u16, arg(1)?),
        "connects-tokio" => connects_tokio(arg(0)? as u16, arg(1)?),
        "udp" => udp_rate(arg(0)?, arg(1)?),
        "idle-factory" => idle_factories(arg(0)?),
        "idle-tokio" => idle_tokio(arg(0)?),
        "idle-actix" => idle_actix(arg(0)?),
        other => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("no probe {other:?}"),
        )),
    }
}

/// An owner that reports when each `SocketCreated` arrives, then drops it.
struct Latch {
    arrived: mpsc::UnboundedSender<Result<Instant, String>>,
}

impl Actor for Latch {
    type Context = Context<Self>;
}

impl Handler<SocketCreated> for Latch {
    type Result = ();

    fn handle(&mut self, _created: SocketCreated, _: &mut Context<Self>) {
        let _ = self.arrived.send(Ok(Instant::now()));
    }
}

impl Handler<SocketFailed> for Latch {
    type Result = ();

    fn handle(&mut self, failed: SocketFailed, _: &mut Context<Self>) {
        let _ = self.arrived.send(Err(failed.to_string()));
    }
}

fn latch() -> (
    Addr<Latch>,
    mpsc::UnboundedReceiver<Result<Instant, String>>,
) {
    let (arrived, rx) = mpsc::unbounded_channel();
    (Latch { arrived }.start(), rx)
}

async fn next_arrival(
    rx: &mut mpsc::UnboundedReceiver<Result<Instant, String>>,
) -> io::Result<Instant> {
    match tokio::time::timeout(LIMIT, rx.recv()).await {
        Ok(Some(Ok(at))) => Ok(at),
        Ok(Some(Err(failed))) => Err(io::Error::other(failed)),
        Ok(None) => Err(io::Error::other("owner gone")),
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "no delivery")),
    }
}

/// `samples` connects of each kind to 127.0.0.1:`port`, in turn and in a rotating order, after
/// an untimed warm-up:
/// - a client factory, from `start()` to its `SocketCreated` at the owner;
/// - `tokio::net::TcpStream::connect`, awaited in place;
/// - a plain actix actor that does that connect and sends the std socket to the owner: the
///   cost of starting an actor and delivering a message, for reference.
///
/// Says `connect F50 F99 T50 T99 A50 A99` in microseconds.
fn connect_latency(port: u16, samples: u64) -> io::Result<()> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    System::new().block_on(async move {
        let (owner, mut arrived) = latch();
        let warm = (samples / 10).max(50);
        let mut times: [Vec<f64>; 3] = Default::default();
        for i in 0..warm + samples {
            for k in 0..3 {
                let kind = (i as usize + k) % 3;
                let started = Instant::now();
                let done = match kind {
                    0 => {
                        SocketFactory::builder()
                            .remote_address(Ipv4Addr::LOCALHOST)
                            .remote_port(port)
                            .owner(&owner)
                            .start();
                        next_arrival(&mut arrived).await?
                    }
                    1 => {
                        let stream = tokio::net::TcpStream::connect(addr).await?;
                        let done = Instant::now();
                        drop(stream);
                        done
                    }
                    _ => {
                        Dialer {
                            addr,
                            to: owner.clone().recipient(),
                        }
                        .start();
                        next_arrival(&mut arrived).await?
                    }
                };
                if i >= warm {
                    times[kind].push(done.duration_since(started).as_secs_f64() * 1e6);
                }
            }
        }
        let mut line = String::from("connect");
        for kind in &times {
            for pct in [50.0, 99.0] {
                let value = percentile(kind, pct).unwrap_or(f64::NAN);
                line.push_str(&format!(" {value:.2}"));
            }
        }
        say(&line);
        Ok(())
    })
}

impl Handler<Connection> for Latch {
    type Result = ();

    fn handle(&mut self, _connection: Connection, _: &mut Context<Self>) {
        let _ = self.arrived.send(Ok(Instant::now()));
    }
}

/// The owner of the counted client factories: each delivery starts the next connect, so the
/// connects run one after another with nothing between them but the factory's own work.
struct Chain {
    port: u16,
    left: u64,
    done: Option<tokio::sync::oneshot::Sender<Result<(), String>>>,
    /// Its own address, taken once (as a user's code holds its owner's address).
    me: Option<Addr<Chain>>,
}

impl Chain {
    fn dial(&self) {
        if let Some(me) = &self.me {
            SocketFactory::builder()
                .remote_address(Ipv4Addr::LOCALHOST)
                .remote_port(self.port)
                .owner(me)
                .start();
        }
    }

    fn end(&mut self, result: Result<(), String>) {
        if let Some(done) = self.done.take() {
            let _ = done.send(result);
        }
    }
}

impl Actor for Chain {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.me = Some(ctx.address());
        self.dial();
    }
}

impl Handler<SocketCreated> for Chain {
    type Result = ();

    fn handle(&mut self, created: SocketCreated, _: &mut Context<Self>) {
        drop(created);
        self.left = self.left.saturating_sub(1);
        if self.left == 0 {
            self.me = None;
            self.end(Ok(()));
        } else {
            self.dial();
        }
    }
}

impl Handler<SocketFailed> for Chain {
    type Result = ();

    fn handle(&mut self, failed: SocketFailed, _: &mut Context<Self>) {
        self.me = None;
        self.end(Err(failed.to_string()));
    }
}

/// `count` client factories to 127.0.0.1:`port`, one after another, each started by the owner
/// when the last one's socket arrives. Says `connects COUNT`. Run under callgrind, the
/// difference between two counts is the instructions of one connect.
fn connects_factory(port: u16, count: u64) -> io::Result<()> {
    System::new().block_on(async move {
        let (done, finished) = tokio::sync::oneshot::channel();
        let _chain = Chain {
            port,
            left: count.max(1),
            done: Some(done),
            me: None,
        }
        .start();
        let limit = LIMIT + Duration::from_millis(count * 10);
        match tokio::time::timeout(limit, finished).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(failed))) => return Err(io::Error::other(failed)),
            Ok(Err(_)) => return Err(io::Error::other("chain gone")),
            Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "connects")),
        }
        say(&format!("connects {count}"));
        Ok(())
    })
}

/// `count` `tokio::net::TcpStream::connect`s to 127.0.0.1:`port`, one after another, each
/// stream dropped at once, on the same kind of runtime (an actix System). Says `connects COUNT`.
fn connects_tokio(port: u16, count: u64) -> io::Result<()> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    System::new().block_on(async move {
        for _ in 0..count.max(1) {
            // No timeout around it, which would add a timer to each connect: on loopback, with
            // the server listening, it connects or is refused at once.
            let stream = tokio::net::TcpStream::connect(addr).await?;
            drop(stream);
        }
        say(&format!("connects {count}"));
        Ok(())
    })
}

/// A plain actix actor that connects with tokio and delivers the std socket to `to`.
struct Dialer {
    addr: SocketAddr,
    to: Recipient<Connection>,
}

impl Actor for Dialer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let connect = tokio::net::TcpStream::connect(self.addr);
        ctx.spawn(connect.into_actor(self).map(|connected, act, ctx| {
            match connected.and_then(tokio::net::TcpStream::into_std) {
                Ok(stream) => act.to.do_send(Connection(stream)),
                Err(error) => eprintln!("connect probe: {error}"),
            }
            ctx.stop();
        }));
    }
}

/// `rounds` rounds of `count` UDP sockets on 127.0.0.1, port 0: datagram factories started at
/// once and delivered to an owner on this Arbiter, against socket2's socket + bind. Says
/// `udp FACTORY/s SOCKET2/s` for each round.
fn udp_rate(count: u64, rounds: u64) -> io::Result<()> {
    System::new().block_on(async move {
        let (owner, mut arrived) = latch();
        let mut line = String::from("udp");
        for _ in 0..rounds {
            let started = Instant::now();
            for _ in 0..count {
                SocketFactory::builder()
                    .domain(Domain::Inet)
                    .socket_type(SocketType::Datagram)
                    .bind_address(Ipv4Addr::LOCALHOST)
                    .bind_port(0)
                    .owner(&owner)
                    .start();
            }
            let mut last = started;
            for _ in 0..count {
                last = next_arrival(&mut arrived).await?;
            }
            let factory = count as f64 / last.duration_since(started).as_secs_f64();

            let started = Instant::now();
            let local = SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into();
            for _ in 0..count {
                // What the factory does on each system (its sys::socket): one call on Linux.
                #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
                let socket = socket2::Socket::new(
                    socket2::Domain::IPV4,
                    socket2::Type::DGRAM.nonblocking().cloexec(),
                    None,
                )?;
                #[cfg(not(any(
                    target_os = "linux",
                    target_os = "android",
                    target_os = "freebsd"
                )))]
                let socket = {
                    // socket2 sets close-on-exec itself there.
                    let socket =
                        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
                    socket.set_nonblocking(true)?;
                    socket
                };
                socket.bind(&local)?;
                drop(socket);
            }
            let plain = count as f64 / started.elapsed().as_secs_f64();
            line.push_str(&format!(" {factory:.0} {plain:.0}"));
        }
        say(&line);
        Ok(())
    })
}

/// Time for every accept loop to be polled once and park (reach its first `Pending`), so the
/// memory is measured in the idle state.
const SETTLE: Duration = Duration::from_millis(300);

/// An owner that is never sent anything: the idle factories' recipient.
struct Sink;

impl Actor for Sink {
    type Context = Context<Self>;
}

impl Handler<SocketCreated> for Sink {
    type Result = ();

    fn handle(&mut self, _: SocketCreated, _: &mut Context<Self>) {}
}

impl Handler<SocketFailed> for Sink {
    type Result = ();

    fn handle(&mut self, failed: SocketFailed, _: &mut Context<Self>) {
        eprintln!("idle probe: {failed}");
    }
}

/// `count` idle listening factories with their default settings on one Arbiter. Says
/// `idle RSS_BEFORE RSS_AFTER` in bytes.
fn idle_factories(count: u64) -> io::Result<()> {
    System::new().block_on(async move {
        let owner = Sink.start();
        let listen = || {
            SocketFactory::builder()
                .bind_address(Ipv4Addr::LOCALHOST)
                .bind_port(0)
                .owner(&owner)
        };
        let locate = |server: Addr<SocketFactory>| async move {
            server
                .send(GetSockName)
                .await
                .map_err(|e| io::Error::other(e.to_string()))?
        };
        // One first, so one-time set-up (thread-locals, the reactor's first slab page, ...)
        // is in the baseline.
        let first = listen().start();
        locate(first.clone()).await?;
        tokio::time::sleep(SETTLE).await;
        let before = os::rss_bytes()?;
        let mut servers = Vec::with_capacity(count as usize);
        for _ in 0..count {
            servers.push(listen().start());
        }
        for server in &servers {
            locate(server.clone()).await?;
        }
        tokio::time::sleep(SETTLE).await;
        let after = os::rss_bytes()?;
        say(&format!("idle {before} {after}"));
        drop((first, servers));
        Ok(())
    })
}

/// `count` tokio listeners, each with a spawned accept task, on one current-thread runtime.
fn idle_tokio(count: u64) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let local = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let listen = || async move {
            let listener = tokio::net::TcpListener::bind(local).await?;
            Ok::<_, io::Error>(tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    drop(stream);
                }
            }))
        };
        let first = listen().await?;
        tokio::time::sleep(SETTLE).await;
        let before = os::rss_bytes()?;
        let mut tasks = Vec::with_capacity(count as usize);
        for _ in 0..count {
            tasks.push(listen().await?);
        }
        tokio::time::sleep(SETTLE).await;
        let after = os::rss_bytes()?;
        say(&format!("idle {before} {after}"));
        drop((first, tasks));
        Ok(())
    })
}

impl Handler<Connection> for Sink {
    type Result = ();

    fn handle(&mut self, _: Connection, _: &mut Context<Self>) {}
}

/// `count` plain actix acceptors (a tokio listener stream added to an actor) on one Arbiter.
fn idle_actix(count: u64) -> io::Result<()> {
    System::new().block_on(async move {
        let owner = Sink.start();
        let local = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let listen = || async {
            let listener = tokio::net::TcpListener::bind(local).await?;
            let to = owner.clone().recipient();
            Ok::<_, io::Error>(Accepting::create(move |ctx| {
                ctx.add_stream(Incoming(listener));
                Accepting { to }
            }))
        };
        let first = listen().await?;
        tokio::time::sleep(SETTLE).await;
        let before = os::rss_bytes()?;
        let mut actors = Vec::with_capacity(count as usize);
        for _ in 0..count {
            actors.push(listen().await?);
        }
        tokio::time::sleep(SETTLE).await;
        let after = os::rss_bytes()?;
        say(&format!("idle {before} {after}"));
        drop((first, actors));
        Ok(())
    })
}
