//! The accept loop: a stream of accepted sockets, with the error classes, the back-off on
//! resource exhaustion and the cap on outstanding deliveries.
//!
//! The loop knows nothing of domains: it accepts from any listening [`Socket`]. Pausing is the
//! factory's business (it drops this stream; the listener stays open and the kernel queues new
//! clients meanwhile).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;

use socket2::Socket;
use tokio::io::unix::AsyncFd;
use tokio::time::Sleep;

use crate::desc::spec::Pacing;
use crate::sys;

/// What the accept loop produces.
#[derive(Debug)]
pub(crate) enum AcceptEvent {
    /// A client, with the permit that counts it as outstanding until the owner drops it.
    Accepted {
        socket: Socket,
        /// The client's IP address and port (none for a UNIX client: accept(2) gives no
        /// useful address for those).
        peer: Option<std::net::SocketAddr>,
        permit: Permit,
    },
    /// The first resource-exhaustion error of an episode; the loop backs off by itself.
    Exhausted(io::Error),
    /// The listener is broken: nothing more will come.
    Fatal(io::Error),
}

/// How an `accept(2)` error is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorClass {
    /// A hiccup of one connection (it was reset or aborted while queued, a signal, a pending
    /// network error): accept the next one at once.
    Retry,
    /// The process or system is out of descriptors or memory: wait, with a growing delay, and
    /// keep the listener.
    BackOff,
    /// The listener itself is unusable.
    Fatal,
}

/// Sorts accept errors the way accept(2) documents them.
///
/// Linux passes pending network errors of the new connection up through accept ("ENETDOWN,
/// EPROTO, ENOPROTOOPT, EHOSTDOWN, ENONET, EHOSTUNREACH, ... ENETUNREACH"), so those are retried
/// like `ECONNABORTED`. `EOPNOTSUPP` is in that list too, but it also means "not a stream socket",
/// which would repeat forever, so it is fatal here.
pub(crate) fn classify(error: &io::Error) -> ErrorClass {
    match error.raw_os_error() {
        Some(
            libc::EINTR
            | libc::EAGAIN
            | libc::ECONNABORTED
            | libc::ECONNRESET
            | libc::EPROTO
            | libc::EPERM
            | libc::ENETDOWN
            | libc::ENOPROTOOPT
            | libc::EHOSTDOWN
            | libc::EHOSTUNREACH
            | libc::ENETUNREACH
            | libc::ETIMEDOUT,
        ) => ErrorClass::Retry,
        Some(code) if sys::is_enonet(code) => ErrorClass::Retry,
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => ErrorClass::BackOff,
        _ if error.kind() == io::ErrorKind::Interrupted => ErrorClass::Retry,
        _ => ErrorClass::Fatal,
    }
}

/// The cap on deliveries the owner has not dropped yet, shared by the accept loop and every
/// delivered socket's [`Permit`].
///
/// Far below the cap (the usual case) a delivery costs one atomic add when it is made and one
/// atomic subtract when it is dropped, wherever that happens; the lock is taken only at the
/// cap: by the accept loop to leave its waker, and by the drop that takes the count off the
/// cap, to wake it.
#[derive(Debug)]
struct Cap {
    /// Delivered and not yet dropped. Only the accept loop adds (after checking the cap), so
    /// it never exceeds `max`; any thread subtracts.
    held: AtomicUsize,
    max: usize,
    /// The accept loop's waker, left only while it waits at the cap.
    waiter: Mutex<Option<Waker>>,
}

impl Cap {
    fn new(max: usize) -> Cap {
        Cap {
            held: AtomicUsize::new(0),
            max,
            waiter: Mutex::new(None),
        }
    }

    /// Ready while below the cap; at it, leaves the waker for the next [`Permit`] dropped.
    /// `listener` names the server in the log line.
    fn poll_room(&self, listener: &Socket, cx: &mut Context<'_>) -> Poll<()> {
        if self.held.load(Ordering::SeqCst) < self.max {
            return Poll::Ready(());
        }
        let fresh = {
            let mut waiter = self.waiter.lock().unwrap_or_else(PoisonError::into_inner);
            let fresh = waiter.is_none();
            *waiter = Some(cx.waker().clone());
            fresh
        };
        // A drop between the check above and the waker being left saw no waker: look again.
        // (A drop after this look finds the waker: it subtracts before it takes the lock.)
        if self.held.load(Ordering::SeqCst) < self.max {
            return Poll::Ready(());
        }
        if fresh && log::log_enabled!(log::Level::Debug) {
            let local = listener.local_addr().map_or_else(
                |_| "?".to_owned(),
                |addr| crate::desc::addr::SocketAddress::from_sockaddr(&addr).to_string(),
            );
            log::debug!(
                "server on {local}: outstanding deliveries at the cap; accept waits for the owner"
            );
        }
        Poll::Pending
    }

    /// Counts one delivery; the caller has seen room under the cap.
    fn take(self: &Arc<Cap>) -> Permit {
        self.held.fetch_add(1, Ordering::SeqCst);
        Permit(Arc::clone(self))
    }
}

/// One delivered socket the owner still holds: dropping it (on any thread) frees its place
/// under the factory's cap on outstanding deliveries.
#[derive(Debug)]
pub(crate) struct Permit(Arc<Cap>);

impl Drop for Permit {
    fn drop(&mut self) {
        let cap = &self.0;
        // Only the drop that takes the count off the cap can end a wait.
        if cap.held.fetch_sub(1, Ordering::SeqCst) == cap.max {
            let waker = cap
                .waiter
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}

/// Resource-exhaustion episodes: the pacing, and nothing more (one pointer) between them.
struct Backoff {
    pacing: Pacing,
    episode: Option<Box<Episode>>,
}

/// One resource-exhaustion episode: from its first error until accepting has gone well for one
/// back-off ceiling (`pacing.max`) since its last error, so that a server held at its limit
/// (every freed descriptor taken at once by the next client) reports once, not at every accept.
struct Episode {
    sleep: Option<Pin<Box<Sleep>>>,
    /// The pause after the last error; zero after an accept went through (the next error
    /// pauses `pacing.first` again, without starting a new episode).
    delay: Duration,
    last_error: tokio::time::Instant,
}

impl Backoff {
    fn new(pacing: Pacing) -> Backoff {
        Backoff {
            pacing,
            episode: None,
        }
    }

    /// Starts or extends the episode; true when it is a new one (to be reported).
    fn hit(&mut self) -> bool {
        let pacing = self.pacing;
        let fresh = self.episode.is_none();
        let now = tokio::time::Instant::now();
        let episode = self.episode.get_or_insert_with(|| {
            Box::new(Episode {
                sleep: None,
                delay: Duration::ZERO,
                last_error: now,
            })
        });
        episode.delay = if episode.delay.is_zero() {
            pacing.first()
        } else {
            episode.delay.saturating_mul(2).min(pacing.max())
        };
        episode.last_error = now;
        let until = crate::desc::time::later(now, episode.delay);
        match &mut episode.sleep {
            Some(sleep) => sleep.as_mut().reset(until),
            None => episode.sleep = Some(Box::pin(tokio::time::sleep_until(until))),
        }
        fresh
    }

    fn poll_wait(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(episode) = self.episode.as_mut() {
            if let Some(sleep) = episode.sleep.as_mut() {
                ready!(sleep.as_mut().poll(cx));
                episode.sleep = None;
            }
        }
        Poll::Ready(())
    }

    /// An accept went through: ends the episode once no error came for one back-off ceiling,
    /// else keeps it (unreported errors, pauses from `first` again).
    fn clear(&mut self) {
        let Some(episode) = self.episode.as_mut() else {
            return;
        };
        if episode.last_error.elapsed() >= self.pacing.max() {
            self.episode = None;
        } else {
            episode.delay = Duration::ZERO;
        }
    }

    /// The current pause, during an episode.
    #[cfg(test)]
    fn delay(&self) -> Option<Duration> {
        self.episode.as_ref().map(|episode| episode.delay)
    }
}

/// A stream of [`AcceptEvent`]s from one listening socket, which it owns.
pub(crate) struct Acceptor {
    listener: AsyncFd<Socket>,
    /// Counts the delivered sockets not yet dropped by the owner. Made at the first client: a
    /// listener that never accepts (many in a large process) does without.
    cap: Option<Arc<Cap>>,
    max_outstanding: usize,
    backoff: Backoff,
}

impl Acceptor {
    /// Accepts from `listener`, with at most `max_outstanding` deliveries not yet dropped,
    /// pausing as `pacing` says while descriptors or memory run out.
    pub(crate) fn new(listener: AsyncFd<Socket>, max_outstanding: usize, pacing: Pacing) -> Self {
        Acceptor {
            listener,
            cap: None,
            max_outstanding,
            backoff: Backoff::new(pacing),
        }
    }

    /// The listening socket.
    #[allow(dead_code)] // for the socket handover
    pub(crate) fn listener(&self) -> &Socket {
        self.listener.get_ref()
    }

    /// Delivered sockets the owner still holds.
    pub(crate) fn outstanding(&self) -> usize {
        self.cap
            .as_ref()
            .map_or(0, |cap| cap.held.load(Ordering::Relaxed))
    }

    /// The cap on [`outstanding`](Self::outstanding).
    pub(crate) fn max_outstanding(&self) -> usize {
        self.max_outstanding
    }

    /// A place under the cap for a connection accepted earlier and delivered now (a PROXY
    /// header read beside the loop): ready while below the cap, else woken when a delivery is
    /// dropped. Called from the accept loop's task only, as [`poll_event`](Self::poll_event).
    #[cfg(feature = "proxy-protocol")]
    pub(crate) fn poll_permit(&mut self, cx: &mut Context<'_>) -> Poll<Permit> {
        let max = self.max_outstanding;
        let cap = self.cap.get_or_insert_with(|| Arc::new(Cap::new(max)));
        ready!(cap.poll_room(self.listener.get_ref(), cx));
        Poll::Ready(cap.take())
    }

    /// Ready once a client waits (or the listener reports an error, which
    /// [`poll_event`](Self::poll_event) then gives); the readiness is left for it.
    pub(crate) fn poll_client(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.listener.poll_read_ready(cx).map(|_| ())
    }

    /// The next event. (Never `None`: the stream of clients does not end by itself.)
    pub(crate) fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<AcceptEvent>> {
        let Acceptor {
            listener,
            cap,
            max_outstanding,
            backoff,
        } = self;
        loop {
            ready!(backoff.poll_wait(cx));
            let mut guard = match ready!(listener.poll_read_ready(cx)) {
                Ok(guard) => guard,
                Err(error) => return Poll::Ready(Some(AcceptEvent::Fatal(error))),
            };
            // The cap is checked only once a client waits, and counts only deliveries. A guard
            // dropped here (at the cap) keeps the readiness.
            let cap = cap.get_or_insert_with(|| Arc::new(Cap::new(*max_outstanding)));
            ready!(cap.poll_room(listener.get_ref(), cx));
            let Some(event) = accept_one(&mut guard, cap, backoff) else {
                continue;
            };
            return Poll::Ready(Some(event));
        }
    }
}

/// One `accept(2)` under `guard`'s readiness: the event it makes, or `None` when there is
/// nothing to report (no client waits, and the readiness is cleared; a client's own error; or a
/// back-off episode already reported).
fn accept_one(
    guard: &mut tokio::io::unix::AsyncFdReadyGuard<'_, Socket>,
    cap: &Arc<Cap>,
    backoff: &mut Backoff,
) -> Option<AcceptEvent> {
    let error = match guard.try_io(|listener| sys::accept(listener.get_ref())) {
        Ok(Ok((socket, peer))) => {
            backoff.clear();
            return Some(AcceptEvent::Accepted {
                socket,
                peer,
                permit: cap.take(),
            });
        }
        Ok(Err(error)) => error,
        // WouldBlock: readiness is cleared; the next poll_read_ready waits for a client.
        Err(_would_block) => return None,
    };
    match classify(&error) {
        ErrorClass::Retry => None,
        ErrorClass::BackOff => backoff.hit().then_some(AcceptEvent::Exhausted(error)),
        ErrorClass::Fatal => Some(AcceptEvent::Fatal(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desc::spec::{Pacing, DEFAULT_ACCEPT_BACKOFF};

    fn os(errno: i32) -> io::Error {
        io::Error::from_raw_os_error(errno)
    }

    /// Counts its wake-ups.
    struct Count(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn cap_waits_at_the_limit_and_a_drop_on_another_thread_wakes_it() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        let mut cx = Context::from_waker(&waker);
        let cap = Arc::new(Cap::new(2));
        let socket = Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("a socket for the log line");
        assert!(cap.poll_room(&socket, &mut cx).is_ready());
        let first = cap.take();
        let second = cap.take();
        assert_eq!(cap.held.load(Ordering::SeqCst), 2);
        assert!(cap.poll_room(&socket, &mut cx).is_pending(), "at the cap");
        // Dropped where an owner on another Arbiter would drop it.
        std::thread::spawn(move || drop(first))
            .join()
            .expect("the dropping thread");
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "woken once");
        assert!(cap.poll_room(&socket, &mut cx).is_ready());
        // Below the cap, drops wake nobody and leave no waker behind.
        drop(second);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(cap.held.load(Ordering::SeqCst), 0);
        assert!(cap.waiter.lock().expect("not poisoned").is_none());
    }

    #[test]
    fn per_connection_errors_are_retried() {
        for errno in [libc::ECONNABORTED, libc::EINTR, libc::EPROTO, libc::EPERM] {
            assert_eq!(classify(&os(errno)), ErrorClass::Retry, "errno {errno}");
        }
    }

    #[test]
    fn exhaustion_backs_off_and_broken_listener_is_fatal() {
        for errno in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM] {
            assert_eq!(classify(&os(errno)), ErrorClass::BackOff, "errno {errno}");
        }
        for errno in [libc::EBADF, libc::EINVAL, libc::ENOTSOCK, libc::EOPNOTSUPP] {
            assert_eq!(classify(&os(errno)), ErrorClass::Fatal, "errno {errno}");
        }
    }

    fn pauses(pacing: Pacing, hits: usize) -> Vec<Duration> {
        let mut backoff = Backoff::new(pacing);
        (0..hits)
            .map(|_| {
                backoff.hit();
                backoff.delay().expect("in an episode")
            })
            .collect()
    }

    #[test]
    fn backoff_grows_to_its_cap_and_reports_once() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread runtime");
        runtime.block_on(async {
            let ms = Duration::from_millis;
            let default = Pacing::new(DEFAULT_ACCEPT_BACKOFF.0, DEFAULT_ACCEPT_BACKOFF.1);
            let mut backoff = Backoff::new(default);
            assert!(backoff.hit(), "the first error opens an episode");
            let mut reported = 1;
            for _ in 0..20 {
                if backoff.hit() {
                    reported += 1;
                }
            }
            assert_eq!(reported, 1);
            assert_eq!(backoff.delay(), Some(ms(1000)));
            backoff.clear();
            assert!(
                !backoff.hit(),
                "an error soon after an accept is the same episode: not reported again"
            );
            assert_eq!(backoff.delay(), Some(ms(5)), "but the pauses start over");

            // An episode ends at an accept one ceiling after its last error.
            let mut backoff = Backoff::new(Pacing::new(ms(1), ms(20)));
            assert!(backoff.hit());
            backoff.clear();
            assert!(!backoff.hit());
            std::thread::sleep(ms(25));
            backoff.clear();
            assert!(
                backoff.hit(),
                "an error after a calm ceiling opens a new episode"
            );

            let custom = Pacing::new(ms(20), ms(50));
            assert_eq!(pauses(custom, 4), [ms(20), ms(40), ms(50), ms(50)]);
            // Never zero (that would spin), never a cap below the first pause.
            assert_eq!(
                pauses(Pacing::new(Duration::ZERO, Duration::ZERO), 2),
                [ms(1), ms(1)]
            );
            assert_eq!(pauses(Pacing::new(ms(30), ms(10)), 2), [ms(30), ms(30)]);
        });
    }
}
