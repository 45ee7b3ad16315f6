//! Helpers for message-driven tests: an owner actor that collects what a factory sends, with
//! bounded waits; a one-call loopback server; and real messages, made without a factory, to
//! test your own owner actor.
//!
//! # Testing a factory with the collecting owner
//!
//! ```
//! use actix_socket_factory::testing::{self, Events};
//! use std::time::Duration;
//!
//! #[actix::main]
//! async fn main() {
//!     let mut events = Events::start();
//!     let (_server, addr) = testing::listen_on_loopback(&events).await.unwrap();
//!     let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
//!     let created = events.next_created(Duration::from_secs(5)).await.unwrap();
//!     assert!(created.peer.is_some());
//! }
//! ```
//!
//! # Testing your own owner actor
//! [`created_tcp_pair`] and [`created_unix_pair`] make a [`SocketCreated`] around one end of a
//! connected pair and give the test the other end; [`failed`] makes a [`SocketFailed`] for a
//! chosen operation and errno; [`factory_id`] makes the id they carry. Send them to the actor as a
//! factory would, then check what it does with the socket from the other end:
//!
//! ```
//! use actix::prelude::*;
//! use actix_socket_factory::testing::{self, wait_until_async};
//! use actix_socket_factory::{Operation, SocketCreated, SocketFailed};
//! use std::io::{ErrorKind, Write};
//! use std::time::Duration;
//! use tokio::io::AsyncReadExt;
//!
//! /// The actor under test: greets each client, counts failures.
//! #[derive(Default)]
//! struct Greeter {
//!     failures: usize,
//! }
//! impl Actor for Greeter {
//!     type Context = Context<Self>;
//! }
//! impl Handler<SocketCreated> for Greeter {
//!     type Result = ();
//!     fn handle(&mut self, created: SocketCreated, _: &mut Context<Self>) {
//!         let stream = created.into_std_tcp_stream().unwrap();
//!         let _ = (&stream).write(b"hello\n"); // non-blocking, but a fresh socket has room
//!     }
//! }
//! impl Handler<SocketFailed> for Greeter {
//!     type Result = ();
//!     fn handle(&mut self, _: SocketFailed, _: &mut Context<Self>) {
//!         self.failures += 1;
//!     }
//! }
//! #[derive(Message)]
//! #[rtype(result = "usize")]
//! struct Failures;
//! impl Handler<Failures> for Greeter {
//!     type Result = usize;
//!     fn handle(&mut self, _: Failures, _: &mut Context<Self>) -> usize {
//!         self.failures
//!     }
//! }
//!
//! #[actix::main]
//! async fn main() {
//!     let greeter = Greeter::default().start();
//!     let id = testing::factory_id(7);
//!
//!     // The test's end is a tokio stream: awaiting it lets the actor run on this thread.
//!     let (created, mut client) = testing::created_tcp_pair(id).unwrap();
//!     greeter.send(created).await.unwrap();
//!     let mut hello = [0; 6];
//!     let read = tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut hello));
//!     read.await.unwrap().unwrap();
//!     assert_eq!(&hello, b"hello\n");
//!
//!     // An errno, an io::ErrorKind or an io::Error.
//!     greeter.do_send(testing::failed(Operation::Accept, ErrorKind::AddrInUse, id));
//!     let counted = wait_until_async(Duration::from_secs(5), || async {
//!         greeter.send(Failures).await == Ok(1)
//!     });
//!     assert!(counted.await);
//! }
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use actix::prelude::*;
use socket2::Socket;
use tokio::sync::mpsc;

use crate::actor::messages::FactoryId;
use crate::desc::addr::SocketAddress;
use crate::desc::error::{Failure, Operation};
use crate::desc::kind::{Domain, SocketType};
use crate::{GetSockName, SocketCreated, SocketFactory, SocketFactoryBuilder, SocketFailed};

/// A wait that ended without the expected message.
#[derive(Debug)]
#[non_exhaustive]
pub enum WaitError {
    /// Nothing arrived in time.
    Timeout(Duration),
    /// The collecting owner is stopped: nothing more can arrive.
    Closed,
    /// A `SocketFailed` came where a `SocketCreated` was expected: a copy of it, typed (its
    /// operation, errno, error kind and text, id). The message itself stays in the [`Events`]:
    /// the next [`next_failed`](Events::next_failed) or [`next`](Events::next) returns it.
    Failed(SocketFailed),
    /// A `SocketCreated` came where a `SocketFailed` was expected (its description). The message
    /// stays in the [`Events`] for the next [`next_created`](Events::next_created).
    Unexpected(String),
}

impl PartialEq for WaitError {
    /// Equal kinds with equal contents; two `Failed` are equal when their operation, errno, id
    /// and text are.
    fn eq(&self, other: &WaitError) -> bool {
        match (self, other) {
            (WaitError::Timeout(a), WaitError::Timeout(b)) => a == b,
            (WaitError::Closed, WaitError::Closed) => true,
            (WaitError::Failed(a), WaitError::Failed(b)) => {
                (a.operation, a.errno, a.id, a.error.to_string())
                    == (b.operation, b.errno, b.id, b.error.to_string())
            }
            (WaitError::Unexpected(a), WaitError::Unexpected(b)) => a == b,
            _ => false,
        }
    }
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitError::Timeout(limit) => write!(f, "nothing arrived within {limit:?}"),
            WaitError::Closed => f.write_str("the collecting owner is stopped"),
            WaitError::Failed(failed) => write!(f, "a failure arrived: {failed}"),
            WaitError::Unexpected(what) => write!(f, "unexpected message: {what}"),
        }
    }
}

impl std::error::Error for WaitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WaitError::Failed(failed) => Some(failed),
            _ => None,
        }
    }
}

/// A copy of a failure: the same operation, errno, id, error kind and text (and the same
/// `ConfigError` inside, for a configuration failure).
fn duplicate(failed: &SocketFailed) -> SocketFailed {
    let error = match (failed.error.raw_os_error(), failed.config_error()) {
        (Some(errno), _) => io::Error::from_raw_os_error(errno),
        (None, Some(config)) => io::Error::new(failed.error.kind(), config.clone()),
        (None, None) => io::Error::new(failed.error.kind(), failed.error.to_string()),
    };
    SocketFailed {
        operation: failed.operation,
        errno: failed.errno,
        error,
        id: failed.id,
    }
}

/// One message from a factory, as [`Events::next`] returns it.
#[derive(Debug)]
pub enum Event {
    /// A `SocketCreated`.
    Created(SocketCreated),
    /// A `SocketFailed`.
    Failed(SocketFailed),
}

/// An owner actor that forwards everything it receives to its [`Events`].
#[derive(Debug)]
pub struct Collector {
    created: mpsc::UnboundedSender<SocketCreated>,
    failed: mpsc::UnboundedSender<SocketFailed>,
}

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<SocketCreated> for Collector {
    type Result = ();

    fn handle(&mut self, created: SocketCreated, _: &mut Context<Self>) {
        let _ = self.created.send(created);
    }
}

impl Handler<SocketFailed> for Collector {
    type Result = ();

    fn handle(&mut self, failed: SocketFailed, _: &mut Context<Self>) {
        let _ = self.failed.send(failed);
    }
}

/// Stops the [`Collector`]: the factory then sees its owner gone.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct StopCollector;

impl Handler<StopCollector> for Collector {
    type Result = ();

    fn handle(&mut self, _: StopCollector, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// The receiving end of a [`Collector`]: await the next message, each wait bounded.
#[derive(Debug)]
pub struct Events {
    owner: Addr<Collector>,
    created: mpsc::UnboundedReceiver<SocketCreated>,
    failed: mpsc::UnboundedReceiver<SocketFailed>,
    /// Messages a wait for the other kind met: kept, in order, for the wait of their kind.
    kept_created: VecDeque<SocketCreated>,
    kept_failed: VecDeque<SocketFailed>,
}

impl Events {
    /// Starts a [`Collector`] on the current Arbiter.
    pub fn start() -> Events {
        let (created_tx, created) = mpsc::unbounded_channel();
        let (failed_tx, failed) = mpsc::unbounded_channel();
        let owner = Collector {
            created: created_tx,
            failed: failed_tx,
        }
        .start();
        Events {
            owner,
            created,
            failed,
            kept_created: VecDeque::new(),
            kept_failed: VecDeque::new(),
        }
    }

    /// The collector's address, to pass to [`SocketFactoryBuilder::owner`].
    pub fn owner(&self) -> &Addr<Collector> {
        &self.owner
    }

    /// A builder whose recipients are this collector.
    pub fn builder(&self) -> SocketFactoryBuilder {
        SocketFactory::builder().owner(&self.owner)
    }

    /// Stops the collector, as an owner that goes away.
    pub fn stop_owner(&self) {
        self.owner.do_send(StopCollector);
    }

    /// The next [`SocketCreated`], waiting at most `limit`.
    ///
    /// A [`SocketCreated`] already received is returned first; otherwise the wait ends at the
    /// first message of either kind.
    ///
    /// # Errors
    /// [`WaitError::Failed`] at once when a [`SocketFailed`] arrives instead, with a typed copy
    /// of it (the failure itself is kept: the next [`next_failed`](Self::next_failed) returns
    /// it); [`WaitError::Timeout`] if nothing arrives in time; [`WaitError::Closed`] when the
    /// collector is gone.
    pub async fn next_created(&mut self, limit: Duration) -> Result<SocketCreated, WaitError> {
        if let Some(created) = self.kept_created.pop_front() {
            return Ok(created);
        }
        let either = async {
            tokio::select! {
                biased;
                Some(created) = self.created.recv() => Some(Event::Created(created)),
                Some(failed) = self.failed.recv() => Some(Event::Failed(failed)),
                else => None,
            }
        };
        match bounded(limit, either).await? {
            Event::Created(created) => Ok(created),
            Event::Failed(failed) => {
                let copy = duplicate(&failed);
                self.kept_failed.push_back(failed);
                Err(WaitError::Failed(copy))
            }
        }
    }

    /// The next [`SocketFailed`], waiting at most `limit`.
    ///
    /// A [`SocketFailed`] already received is returned first; otherwise the wait ends at the
    /// first message of either kind.
    ///
    /// # Errors
    /// [`WaitError::Unexpected`] at once when a [`SocketCreated`] arrives instead (its
    /// description; the message itself is kept, its socket open, for the next
    /// [`next_created`](Self::next_created)), else as [`next_created`](Self::next_created).
    pub async fn next_failed(&mut self, limit: Duration) -> Result<SocketFailed, WaitError> {
        if let Some(failed) = self.kept_failed.pop_front() {
            return Ok(failed);
        }
        let either = async {
            tokio::select! {
                biased;
                Some(failed) = self.failed.recv() => Some(Event::Failed(failed)),
                Some(created) = self.created.recv() => Some(Event::Created(created)),
                else => None,
            }
        };
        match bounded(limit, either).await? {
            Event::Failed(failed) => Ok(failed),
            Event::Created(created) => {
                let description = format!("{created:?}");
                self.kept_created.push_back(created);
                Err(WaitError::Unexpected(description))
            }
        }
    }

    /// The next message of either kind, waiting at most `limit`; a [`SocketCreated`] already
    /// received comes before a [`SocketFailed`] already received.
    ///
    /// # Errors
    /// [`WaitError::Timeout`] if nothing arrives in time, [`WaitError::Closed`] when the
    /// collector is gone.
    pub async fn next(&mut self, limit: Duration) -> Result<Event, WaitError> {
        if let Some(created) = self.kept_created.pop_front() {
            return Ok(Event::Created(created));
        }
        if let Some(failed) = self.kept_failed.pop_front() {
            return Ok(Event::Failed(failed));
        }
        let either = async {
            tokio::select! {
                biased;
                Some(created) = self.created.recv() => Some(Event::Created(created)),
                Some(failed) = self.failed.recv() => Some(Event::Failed(failed)),
                else => None,
            }
        };
        bounded(limit, either).await
    }

    /// Waits `window` and fails if a [`SocketCreated`] arrives in it: for "nothing is
    /// delivered while paused".
    ///
    /// # Errors
    /// [`WaitError::Unexpected`] with the message that arrived.
    pub async fn expect_no_created(&mut self, window: Duration) -> Result<(), WaitError> {
        if let Some(created) = self.kept_created.front() {
            return Err(WaitError::Unexpected(format!("{created:?}")));
        }
        match bounded(window, self.created.recv()).await {
            Ok(created) => Err(WaitError::Unexpected(format!("{created:?}"))),
            Err(WaitError::Timeout(_)) | Err(WaitError::Closed) => Ok(()),
            Err(other) => Err(other),
        }
    }

    /// A [`SocketCreated`] already received, without waiting.
    pub fn try_created(&mut self) -> Option<SocketCreated> {
        self.kept_created
            .pop_front()
            .or_else(|| self.created.try_recv().ok())
    }

    /// A [`SocketFailed`] already received, without waiting.
    pub fn try_failed(&mut self) -> Option<SocketFailed> {
        self.kept_failed
            .pop_front()
            .or_else(|| self.failed.try_recv().ok())
    }
}

async fn bounded<T>(
    limit: Duration,
    next: impl Future<Output = Option<T>>,
) -> Result<T, WaitError> {
    match tokio::time::timeout(limit, next).await {
        Ok(Some(message)) => Ok(message),
        Ok(None) => Err(WaitError::Closed),
        Err(_) => Err(WaitError::Timeout(limit)),
    }
}

/// Starts a TCP server on 127.0.0.1, port 0, owned by `events`' collector, and returns it with
/// the address it listens on.
///
/// # Errors
/// The server's `GetSockName` error (the bind failed: its `SocketFailed` is in `events`).
pub async fn listen_on_loopback(
    events: &Events,
) -> std::io::Result<(Addr<SocketFactory>, SocketAddr)> {
    start_and_locate(
        events
            .builder()
            .bind_address(Ipv4Addr::LOCALHOST)
            .bind_port(0),
    )
    .await
}

/// Starts `builder`'s factory and asks for its local address.
///
/// # Errors
/// The `GetSockName` error, or `NotConnected` when the actor stopped first.
pub async fn start_and_locate(
    builder: SocketFactoryBuilder,
) -> std::io::Result<(Addr<SocketFactory>, SocketAddr)> {
    let server = builder.start();
    let local = server
        .send(GetSockName)
        .await
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::NotConnected, e.to_string()))??;
    let addr = local.as_inet().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "not an INET socket")
    })?;
    Ok((server, addr))
}

/// Polls `condition` every few milliseconds until it holds or `limit` passes; true if it held.
/// For states no message announces (a port free again, a file gone). To ask an actor, use
/// [`wait_until_async`].
pub async fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = crate::desc::time::soon_after(limit);
    loop {
        if condition() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Polls the async `condition` every few milliseconds until it yields true or `limit` passes;
/// true if it held. Each evaluation is bounded by what is left of `limit`, so a condition that
/// never completes (an actor that never answers) cannot hang the test.
///
/// For asking an actor until it reports a state:
/// `wait_until_async(limit, || async { addr.send(GetCount).await == Ok(3) })`.
pub async fn wait_until_async<F, Fut>(limit: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = crate::desc::time::soon_after(limit);
    loop {
        match tokio::time::timeout_at(deadline, condition()).await {
            Ok(true) => return true,
            Ok(false) => {}
            Err(_) => return false,
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A [`FactoryId`] for messages made in tests ([`created_tcp_pair`], [`failed`], ...). Ids of
/// real factories count up from 1; pick any number, e.g. one a real factory reported, to test
/// code that tells factories apart.
pub const fn factory_id(id: u64) -> FactoryId {
    FactoryId(id)
}

/// A [`SocketCreated`] around one end of a connected TCP pair on 127.0.0.1, as a server factory
/// with id `id` would deliver it (non-blocking, close-on-exec, `peer` the other end's address,
/// `local` its own), and the other end for the test, as a tokio stream on the calling thread's
/// runtime.
///
/// The test's end is async on purpose: a blocking read on the test's thread would also stall
/// the actor under test, which runs on that same thread, until the read timed out.
///
/// # Errors
/// The OS's error from making the pair; an error when called outside a tokio runtime (an actix
/// `System`, `#[actix::test]`).
pub fn created_tcp_pair(id: FactoryId) -> io::Result<(SocketCreated, tokio::net::TcpStream)> {
    let runtime_check = tokio::runtime::Handle::try_current();
    runtime_check.map_err(|e| io::Error::other(e.to_string()))?;
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let theirs = std::net::TcpStream::connect(listener.local_addr()?)?;
    let (ours, peer) = listener.accept()?;
    let socket = Socket::from(ours);
    socket.set_nonblocking(true)?;
    theirs.set_nonblocking(true)?;
    let theirs = tokio::net::TcpStream::from_std(theirs)?;
    let created = created(
        socket,
        Some(SocketAddress::Inet(peer)),
        None,
        Domain::Inet,
        id,
    );
    Ok((created, theirs))
}

/// A [`SocketCreated`] around one end of a connected UNIX stream pair, as a UNIX server factory
/// with id `id` would deliver it (non-blocking, close-on-exec, `peer: None` as for an accepted
/// UNIX socket, `credentials` this process's), and the other end for the test, as a tokio stream
/// (see [`created_tcp_pair`] for why).
///
/// # Errors
/// The OS's error from making the pair; an error when called outside a tokio runtime.
pub fn created_unix_pair(id: FactoryId) -> io::Result<(SocketCreated, tokio::net::UnixStream)> {
    let runtime_check = tokio::runtime::Handle::try_current();
    runtime_check.map_err(|e| io::Error::other(e.to_string()))?;
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
    let socket = Socket::from(ours);
    socket.set_nonblocking(true)?;
    theirs.set_nonblocking(true)?;
    let theirs = tokio::net::UnixStream::from_std(theirs)?;
    let credentials = crate::sys::peer_credentials(&socket).ok();
    let created = created(socket, None, credentials, Domain::Unix, id);
    Ok((created, theirs))
}

fn created(
    socket: Socket,
    peer: Option<SocketAddress>,
    credentials: Option<crate::PeerCredentials>,
    domain: Domain,
    id: FactoryId,
) -> SocketCreated {
    // One place that builds the message outside a factory: no delivery permit is held.
    let local = socket
        .local_addr()
        .ok()
        .map(|addr| SocketAddress::from_sockaddr(&addr));
    SocketCreated {
        socket,
        peer,
        local,
        id,
        credentials,
        domain,
        socket_type: SocketType::Stream,
        #[cfg(feature = "proxy-protocol")]
        proxy_header: None,
        _permit: None,
    }
}

/// A [`SocketFailed`] from factory `id` for `operation`, with the OS error `error`: an errno
/// (`libc::ECONNREFUSED`), an [`io::ErrorKind`] or an [`io::Error`]. The text is the OS's, as in a
/// real failure, and `errno` is set, whenever the error maps to an errno:
/// `failed(Operation::Bind, io::ErrorKind::AddrInUse, id)` reads `bind: Address already in use
/// (os error 98)` with `errno: Some(EADDRINUSE)`, like a real one.
pub fn failed(operation: Operation, error: impl Into<OsError>, id: FactoryId) -> SocketFailed {
    SocketFailed::new(Failure::new(operation, error.into().0), id)
}

/// The error a made [`failed`] carries: from an errno (`i32`), an [`io::ErrorKind`] (the
/// matching errno where there is one) or an [`io::Error`] (as it is).
#[derive(Debug)]
pub struct OsError(io::Error);

impl From<i32> for OsError {
    fn from(errno: i32) -> OsError {
        OsError(io::Error::from_raw_os_error(errno))
    }
}

impl From<io::Error> for OsError {
    fn from(error: io::Error) -> OsError {
        OsError(error)
    }
}

impl From<io::ErrorKind> for OsError {
    fn from(kind: io::ErrorKind) -> OsError {
        use io::ErrorKind as K;
        let errno = match kind {
            K::AddrInUse => libc::EADDRINUSE,
            K::AddrNotAvailable => libc::EADDRNOTAVAIL,
            K::ConnectionRefused => libc::ECONNREFUSED,
            K::ConnectionReset => libc::ECONNRESET,
            K::ConnectionAborted => libc::ECONNABORTED,
            K::NotConnected => libc::ENOTCONN,
            K::BrokenPipe => libc::EPIPE,
            K::PermissionDenied => libc::EACCES,
            K::NotFound => libc::ENOENT,
            K::AlreadyExists => libc::EEXIST,
            K::WouldBlock => libc::EAGAIN,
            K::TimedOut => libc::ETIMEDOUT,
            K::Interrupted => libc::EINTR,
            K::InvalidInput => libc::EINVAL,
            K::OutOfMemory => libc::ENOMEM,
            K::Unsupported => libc::EOPNOTSUPP,
            K::HostUnreachable => libc::EHOSTUNREACH,
            K::NetworkUnreachable => libc::ENETUNREACH,
            _ => return OsError(io::Error::from(kind)),
        };
        OsError(io::Error::from_raw_os_error(errno))
    }
}
