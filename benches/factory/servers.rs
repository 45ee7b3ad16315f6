//! The servers under test, each run alone in its own process (`--server MODE ...`).
//!
//! Every server accepts on 127.0.0.1 and hands each connection to a consumer, which counts it
//! and closes it (or holds it, for the first `hold` connections). They differ only in the
//! machinery between accept and the consumer. Two deployments of the factory, each against the tokio server that does the same work:
//!
//! - `factory-same`: this crate's `SocketFactory` and its owner actor on one Arbiter (one
//!   thread), against
//! - `tokio-1t`: a raw `TcpListener::accept` loop and a consumer task on one current-thread
//!   runtime, each `TcpStream` sent over an unbounded channel;
//! - `factory-cross`: the factory on the System's Arbiter, delivering `SocketCreated` to an
//!   owner actor on a second Arbiter (two threads), against
//! - `tokio-2t`: the same accept loop, its consumer task on a second runtime and thread;
//!
//! and the other ways of doing it:
//!
//! - `factory-group`: two factories on two Arbiters sharing the port with `SO_REUSEPORT`
//!   (`FactoryGroup`), the owner on a third;
//! - `actix-actor`: the listener as a stream added to an actor (`add_stream`), each stream
//!   forwarded as a std `TcpStream` to a `Recipient` on a second Arbiter;
//! - `actix-server`: `actix_server::Server` with one worker (its own accept thread, plus the
//!   worker thread that runs the service).
//!
//! The consumer calls [`Tally::delivered`] once per connection: the server says `warm USER SYS`
//! when the warm-up count is reached and `done USER SYS` when the timed count is (its own CPU
//! time in microseconds, from getrusage), so the parent gets the CPU of exactly the timed window.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::task::{Context as TaskContext, Poll};

use actix::prelude::*;
use actix_socket_factory::{FactoryGroup, GetSockName, SocketCreated, SocketFactory, SocketFailed};

use crate::child::{exit_with_parent, say};
use crate::os;

/// The listen backlog of every server, so none of them differs by its queue.
pub const BACKLOG: u32 = 1024;

/// What a server is told on its command line.
#[derive(Debug, Clone, Copy)]
pub struct Counts {
    /// Connections to keep open (the first ones); the rest are closed at once.
    pub hold: u64,
    /// Untimed connections after the held ones.
    pub warm: u64,
    /// Timed connections.
    pub timed: u64,
}

/// The server's count of delivered connections and its two reports.
struct Tally {
    count: AtomicU64,
    counts: Counts,
}

static TALLY: OnceLock<Tally> = OnceLock::new();

impl Tally {
    /// Counts one delivered connection; true when the consumer should hold it open.
    fn delivered() -> bool {
        let Some(tally) = TALLY.get() else {
            return false;
        };
        let n = tally.count.fetch_add(1, Ordering::Relaxed) + 1;
        let Counts { hold, warm, timed } = tally.counts;
        if hold > 0 && n == hold {
            report("held");
        }
        if n == hold + warm {
            report("warm");
        } else if n == hold + warm + timed {
            report("done");
        }
        n <= hold
    }
}

fn report(tag: &str) {
    let (user, system) = os::cpu_micros();
    say(&format!("{tag} {user} {system}"));
}

/// Runs server `mode` until the parent closes our stdin.
pub fn run(mode: &str, counts: Counts) -> io::Result<()> {
    os::raise_nofile();
    let _ = TALLY.set(Tally {
        count: AtomicU64::new(0),
        counts,
    });
    exit_with_parent();
    match mode {
        "factory-same" => factory_same_thread(),
        "factory-cross" => factory(1),
        "factory-group" => factory(2),
        "tokio-1t" => tokio_one_thread(),
        "tokio-2t" => tokio_loop(),
        "actix-actor" => actix_actor(),
        "actix-server" => actix_server(),
        other => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("no server mode {other:?}"),
        )),
    }
}

fn loopback() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

fn ready(port: u16) {
    say(&format!("ready {port}"));
}

/// The factory's owner: counts, then holds or drops.
#[derive(Default)]
struct Owner {
    held: Vec<tokio::net::TcpStream>,
}

impl Actor for Owner {
    type Context = Context<Self>;
}

impl Handler<SocketCreated> for Owner {
    type Result = ();

    fn handle(&mut self, created: SocketCreated, _: &mut Context<Self>) {
        if Tally::delivered() {
            match created.into_tcp_stream() {
                Ok(stream) => self.held.push(stream),
                Err(error) => eprintln!("server: cannot hold a connection: {error}"),
            }
        }
    }
}

impl Handler<SocketFailed> for Owner {
    type Result = ();

    fn handle(&mut self, failed: SocketFailed, _: &mut Context<Self>) {
        eprintln!("server: {failed}");
    }
}

/// One factory and its owner on the System's Arbiter: the factory's deliveries never leave the
/// thread.
fn factory_same_thread() -> io::Result<()> {
    let system = System::new();
    let keep = system.block_on(async move {
        let owner = Owner::default().start();
        let server = SocketFactory::builder()
            .bind_address(Ipv4Addr::LOCALHOST)
            .bind_port(0)
            .listen_queue(BACKLOG)
            .owner(&owner)
            .start();
        let local = server
            .send(GetSockName)
            .await
            .map_err(|e| io::Error::other(e.to_string()))??;
        ready(local.port().unwrap_or(0));
        Ok::<_, io::Error>((owner, server))
    })?;
    system.run()?;
    drop(keep);
    Ok(())
}

/// `members` = 1: one factory on the System's Arbiter. 2: a `FactoryGroup` on two new Arbiters.
/// The owner always has an Arbiter of its own.
fn factory(members: usize) -> io::Result<()> {
    let system = System::new();
    let keep = system.block_on(async move {
        let owner_arbiter = Arbiter::new();
        let owner = Owner::start_in_arbiter(&owner_arbiter.handle(), |_| Owner::default());
        let builder = SocketFactory::builder()
            .bind_address(Ipv4Addr::LOCALHOST)
            .bind_port(0)
            .listen_queue(BACKLOG)
            .owner(&owner);
        let mut arbiters = vec![owner_arbiter];
        let servers = if members == 1 {
            vec![builder.start()]
        } else {
            let members: Vec<Arbiter> = (0..members).map(|_| Arbiter::new()).collect();
            let handles: Vec<ArbiterHandle> = members.iter().map(Arbiter::handle).collect();
            let group = FactoryGroup::start(builder, &handles).await?;
            arbiters.extend(members);
            group.members().to_vec()
        };
        let local = servers[0]
            .send(GetSockName)
            .await
            .map_err(|e| io::Error::other(e.to_string()))??;
        ready(local.port().unwrap_or(0));
        // The factories hold their owner weakly: the server keeps it alive.
        Ok::<_, io::Error>((arbiters, servers, owner))
    })?;
    system.run()?;
    drop(keep);
    Ok(())
}

fn current_thread() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// A raw tokio accept loop and its consumer task on one current-thread runtime.
fn tokio_one_thread() -> io::Result<()> {
    current_thread()?.block_on(async move {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<tokio::net::TcpStream>();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Some(stream) = rx.recv().await {
                if Tally::delivered() {
                    held.push(stream);
                }
            }
        });
        let listener = listen_tokio()?;
        ready(listener.local_addr()?.port());
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    if tx.send(stream).is_err() {
                        return Ok(());
                    }
                }
                Err(error) => eprintln!("server: accept: {error}"),
            }
        }
    })
}

/// A tokio listener on 127.0.0.1 with the common backlog.
fn listen_tokio() -> io::Result<tokio::net::TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(loopback())?;
    socket.listen(BACKLOG)
}

/// A raw tokio accept loop; the consumer task runs on a second runtime, on its own thread.
fn tokio_loop() -> io::Result<()> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<tokio::net::TcpStream>();
    let consumer = current_thread()?;
    std::thread::spawn(move || {
        consumer.block_on(async move {
            let mut held = Vec::new();
            while let Some(stream) = rx.recv().await {
                if Tally::delivered() {
                    held.push(stream);
                }
            }
        })
    });
    current_thread()?.block_on(async move {
        let listener = listen_tokio()?;
        ready(listener.local_addr()?.port());
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    if tx.send(stream).is_err() {
                        return Ok(());
                    }
                }
                Err(error) => eprintln!("server: accept: {error}"),
            }
        }
    })
}

/// A tokio listener as a stream of accepted connections, for `add_stream`.
pub struct Incoming(pub tokio::net::TcpListener);

impl Stream for Incoming {
    type Item = io::Result<tokio::net::TcpStream>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        self.0
            .poll_accept(cx)
            .map(|accepted| Some(accepted.map(|(stream, _)| stream)))
    }
}

/// A connection handed from the accepting actor to the consumer.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Connection(pub std::net::TcpStream);

#[derive(Default)]
struct Consumer {
    held: Vec<std::net::TcpStream>,
}

impl Actor for Consumer {
    type Context = Context<Self>;
}

impl Handler<Connection> for Consumer {
    type Result = ();

    fn handle(&mut self, Connection(stream): Connection, _: &mut Context<Self>) {
        if Tally::delivered() {
            self.held.push(stream);
        }
    }
}

/// The plain actix acceptor: forwards each accepted stream, as a std socket, to `to`.
pub struct Accepting {
    pub to: Recipient<Connection>,
}

impl Actor for Accepting {
    type Context = Context<Self>;
}

impl StreamHandler<io::Result<tokio::net::TcpStream>> for Accepting {
    fn handle(&mut self, accepted: io::Result<tokio::net::TcpStream>, _: &mut Context<Self>) {
        match accepted.and_then(tokio::net::TcpStream::into_std) {
            Ok(stream) => self.to.do_send(Connection(stream)),
            Err(error) => eprintln!("server: accept: {error}"),
        }
    }
}

/// The plain actix way: a listener stream on an actor, a `Recipient` on another Arbiter.
fn actix_actor() -> io::Result<()> {
    let system = System::new();
    let consumer_arbiter = system.block_on(async move {
        let consumer_arbiter = Arbiter::new();
        let consumer =
            Consumer::start_in_arbiter(&consumer_arbiter.handle(), |_| Consumer::default());
        let listener = tokio::net::TcpListener::bind(loopback()).await?;
        ready(listener.local_addr()?.port());
        let to = consumer.recipient();
        Accepting::create(move |ctx| {
            ctx.add_stream(Incoming(listener));
            Accepting { to }
        });
        Ok::<_, io::Error>(consumer_arbiter)
    })?;
    system.run()?;
    drop(consumer_arbiter);
    Ok(())
}

thread_local! {
    static HELD: std::cell::RefCell<Vec<actix_rt::net::TcpStream>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// actix-server with one worker; the listener is made here so its port is known and its
/// backlog matches the others.
fn actix_server() -> io::Result<()> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&loopback().into())?;
    socket.listen(BACKLOG as i32)?;
    let listener: StdListener = socket.into();
    let port = listener.local_addr()?.port();
    actix_rt::System::new().block_on(async move {
        let server = actix_server::Server::build()
            .workers(1)
            .disable_signals()
            .listen("bench", listener, || {
                actix_service::fn_service(|stream: actix_rt::net::TcpStream| async move {
                    if Tally::delivered() {
                        HELD.with(|held| held.borrow_mut().push(stream));
                    }
                    Ok::<_, ()>(())
                })
            })?
            .run();
        ready(port);
        server.await
    })
}
