//! Helpers for message-driven tests: an owner actor that collects what a factory sends, with
//! bounded waits, and a one-call loopback server.
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

use std::fmt;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::mpsc;

use crate::{GetSockName, SocketCreated, SocketFactory, SocketFactoryBuilder, SocketFailed};

/// A wait that ended without the expected message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitError {
    /// Nothing arrived in time.
    Timeout(Duration),
    /// The collecting owner is stopped: nothing more can arrive.
    Closed,
    /// A `SocketFailed` came where a `SocketCreated` was expected (its text), or the reverse.
    Unexpected(String),
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitError::Timeout(limit) => write!(f, "nothing arrived within {limit:?}"),
            WaitError::Closed => f.write_str("the collecting owner is stopped"),
            WaitError::Unexpected(what) => write!(f, "unexpected message: {what}"),
        }
    }
}

impl std::error::Error for WaitError {}

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
    /// # Errors
    /// [`WaitError::Timeout`] if none arrives in time, [`WaitError::Closed`] when the
    /// collector is gone.
    pub async fn next_created(&mut self, limit: Duration) -> Result<SocketCreated, WaitError> {
        bounded(limit, self.created.recv()).await
    }

    /// The next [`SocketFailed`], waiting at most `limit`.
    ///
    /// # Errors
    /// As [`next_created`](Self::next_created).
    pub async fn next_failed(&mut self, limit: Duration) -> Result<SocketFailed, WaitError> {
        bounded(limit, self.failed.recv()).await
    }

    /// The next message of either kind, waiting at most `limit`.
    ///
    /// # Errors
    /// As [`next_created`](Self::next_created).
    pub async fn next(&mut self, limit: Duration) -> Result<Event, WaitError> {
        let either = async {
            tokio::select! {
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
        match bounded(window, self.created.recv()).await {
            Ok(created) => Err(WaitError::Unexpected(format!("{created:?}"))),
            Err(WaitError::Timeout(_)) | Err(WaitError::Closed) => Ok(()),
            Err(other) => Err(other),
        }
    }

    /// A [`SocketCreated`] already received, without waiting.
    pub fn try_created(&mut self) -> Option<SocketCreated> {
        self.created.try_recv().ok()
    }

    /// A [`SocketFailed`] already received, without waiting.
    pub fn try_failed(&mut self) -> Option<SocketFailed> {
        self.failed.try_recv().ok()
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
/// For states no message announces (a port free again, a file gone).
pub async fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
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
