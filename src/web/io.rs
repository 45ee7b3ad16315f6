//! A served connection as actix-http sees it: the delivered stream, with what draining needs.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_http::Extensions;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::actor::stream::SocketStream;

/// What every worker of one server shares: the open connections and the drain signal.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    open: AtomicUsize,
    closed: Notify,
    pub(crate) draining: CancellationToken,
}

impl Tracker {
    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Waits until no connection is open, or `deadline`; true when none is.
    pub(crate) async fn all_closed(&self, deadline: tokio::time::Instant) -> bool {
        loop {
            let closed = self.closed.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            if self.open() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, closed).await.is_err() {
                return self.open() == 0;
            }
        }
    }
}

/// Counts one open connection while it lives.
#[derive(Debug)]
struct Open(Arc<Tracker>);

impl Open {
    fn new(tracker: Arc<Tracker>) -> Open {
        tracker.open.fetch_add(1, Ordering::AcqRel);
        Open(tracker)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.closed.notify_waiters();
        }
    }
}

/// One connection's state, shared by its stream and the service answering its requests (through
/// the connection's extensions).
#[derive(Debug, Default)]
pub(crate) struct ConnState {
    /// Bytes of a request were read and its response is not made yet.
    busy: Cell<bool>,
    /// Responses made on this connection.
    answered: Cell<u64>,
}

impl ConnState {
    pub(crate) fn answered(&self) {
        self.busy.set(false);
        self.answered.set(self.answered.get().saturating_add(1));
    }
}

/// The stream a worker's HTTP dispatcher reads and writes. While the server drains, a read that
/// finds nothing on a connection that has answered its requests and holds no new one ends the
/// stream (the dispatcher then closes the idle keep-alive connection); a request that is there
/// is read and answered, with `Connection: close`.
pub(crate) struct WebIo {
    stream: SocketStream,
    conn: Rc<ConnState>,
    draining: CancellationToken,
    drain_started: Pin<Box<WaitForCancellationFutureOwned>>,
    /// While draining, how long this idle connection is still given to send its next request.
    grace: Option<Pin<Box<tokio::time::Sleep>>>,
    _open: Open,
}

/// While draining, an idle keep-alive connection is closed once it has been idle this long
/// since the drain began: a client that sends its next request at once (an active one) is
/// answered, with `Connection: close`, instead of meeting a close as it sends.
pub(crate) const IDLE_GRACE: std::time::Duration = std::time::Duration::from_millis(100);

impl WebIo {
    pub(crate) fn new(stream: SocketStream, tracker: &Arc<Tracker>) -> WebIo {
        let draining = tracker.draining.clone();
        WebIo {
            stream,
            conn: Rc::default(),
            drain_started: Box::pin(draining.clone().cancelled_owned()),
            draining,
            grace: None,
            _open: Open::new(tracker.clone()),
        }
    }

    /// What a handler can reach through `HttpRequest::conn_data`: the PROXY header, the peer's
    /// credentials, and the state draining uses.
    pub(crate) fn attach(&self, extensions: &mut Extensions) {
        extensions.insert(self.conn.clone());
        if let Some(credentials) = self.stream.credentials() {
            extensions.insert(credentials);
        }
        if let Some(peer) = self.stream.peer() {
            extensions.insert(peer.clone());
        }
        #[cfg(feature = "proxy-protocol")]
        if let Some(header) = self.stream.proxy_header() {
            extensions.insert(header.clone());
        }
    }

    fn idle(&self) -> bool {
        !self.conn.busy.get() && self.conn.answered.get() > 0
    }
}

impl AsyncRead for WebIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.conn.busy.set(true);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                // Nothing to read. Draining and idle for IDLE_GRACE: end the stream (the
                // dispatcher closes the connection); otherwise wait, woken by data, by the
                // drain's start or by the grace's end.
                let drain =
                    this.draining.is_cancelled() || this.drain_started.as_mut().poll(cx).is_ready();
                if !drain || !this.idle() {
                    return Poll::Pending;
                }
                let grace = this
                    .grace
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(IDLE_GRACE)));
                match grace.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Ok(())),
                    Poll::Pending => Poll::Pending,
                }
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
        }
    }
}

impl AsyncWrite for WebIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
