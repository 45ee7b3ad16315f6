//! The client path: non-blocking `connect(2)` to every candidate address, raced as RFC 8305
//! ("Happy Eyeballs" v2) describes, bounded by the connect timeout.
//!
//! A race is one future polling its attempts by hand, so it needs no task per attempt and
//! losing attempts close the moment the race ends: when one connects, the others are dropped
//! (closing their sockets) before the winner is returned; when the deadline passes, dropping the
//! race closes them all.
//!
//! [`Race::start`] makes the first attempt at once. On loopback (and for UNIX sockets) the
//! kernel often finishes the handshake inside `connect(2)`, so the race is then already over:
//! the caller gets the socket without a future, a timer or a reactor registration.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use socket2::{SockAddr, Socket};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::time::{Instant, Sleep};

use crate::desc::error::{Failure, Operation};
use crate::net::open::Opened;
use crate::net::unix::SocketFile;
use crate::sys;

/// The shortest gap between two attempt starts: RFC 8305 §5, "a subsequent connection MUST NOT
/// be started within 10 milliseconds of the previous attempt".
pub(crate) const MIN_ATTEMPT_GAP: Duration = Duration::from_millis(10);

/// What a race yields: the connected socket (with its socket file) and the address it reached.
pub(crate) type Connected = Result<(Opened, SockAddr), Failure>;

/// Where a handshake stands once `connect(2)` has returned.
enum Handshake {
    Done(Socket),
    /// Under way: registered for writability, which comes when the handshake ends.
    Waiting(AsyncFd<Socket>),
}

/// Starts the handshake of one fresh socket with `addr`.
fn begin(socket: Socket, addr: &SockAddr) -> io::Result<Handshake> {
    match socket.connect(addr) {
        Ok(()) => return Ok(Handshake::Done(socket)),
        // Only EINPROGRESS means "under way". A UNIX stream answers EAGAIN when the server's
        // queue is full: that is a refusal, reported as it is.
        Err(error) if error.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(error) => return Err(error),
    }
    // On loopback the kernel runs the whole handshake inside connect(2): one getpeername then
    // saves registering with the reactor, waiting a turn, and deregistering again.
    if socket.peer_addr().is_ok() {
        return Ok(Handshake::Done(socket));
    }
    sys::register(socket, Interest::WRITABLE).map(Handshake::Waiting)
}

/// RFC 8305 §4: IPv6 first, then the families alternate; within a family the given order
/// (the resolver's RFC 6724 order, or the caller's) is kept. UNIX addresses come as they are.
pub(crate) fn interleave(candidates: Vec<SockAddr>) -> VecDeque<SockAddr> {
    let mixed =
        candidates.iter().any(SockAddr::is_ipv6) && candidates.iter().any(|addr| !addr.is_ipv6());
    if !mixed {
        // One family (the usual case, and always a single address): the order stands as given,
        // and the list's own allocation is reused.
        return candidates.into();
    }
    let (v6, others): (VecDeque<SockAddr>, VecDeque<SockAddr>) =
        candidates.into_iter().partition(SockAddr::is_ipv6);
    let (mut v6, mut others) = (v6, others);
    let mut ordered = VecDeque::with_capacity(v6.len() + others.len());
    loop {
        match (v6.pop_front(), others.pop_front()) {
            (None, None) => return ordered,
            (first, second) => ordered.extend(first.into_iter().chain(second)),
        }
    }
}

/// One connection attempt under way.
struct Attempt {
    addr: SockAddr,
    file: Option<SocketFile>,
    fd: AsyncFd<Socket>,
}

impl Attempt {
    fn poll_handshake(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A fresh registration reports writable only once the handshake has ended, well or
        // badly (as tokio's own connect relies on): SO_ERROR then tells which.
        let _ready = match self.fd.poll_write_ready(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(ready) => ready?,
        };
        Poll::Ready(match self.fd.get_ref().take_error() {
            Ok(None) => Ok(()),
            Ok(Some(error)) | Err(error) => Err(error),
        })
    }
}

/// How [`Race::start`] left things.
pub(crate) enum Started<F> {
    /// Decided at once: connected on the first try, or every candidate failed.
    Over(Connected),
    /// Under way: poll the race to its end.
    Racing(Race<F>),
}

/// The state of one race: addresses not tried yet, attempts under way, the timers.
pub(crate) struct Race<F> {
    waiting: VecDeque<SockAddr>,
    running: Vec<Attempt>,
    won: Option<(Opened, SockAddr)>,
    open: F,
    delay: Duration,
    /// When the next waiting address may start; `None`: at once.
    next_start: Option<Instant>,
    /// Fires at `next_start`.
    stagger: Option<Pin<Box<Sleep>>>,
    last_start: Option<Instant>,
    deadline: Option<Instant>,
    timeout: Option<Pin<Box<Sleep>>>,
    last_failure: Option<Failure>,
}

impl<F> Race<F>
where
    F: Fn(&SockAddr) -> Result<Opened, Failure> + Unpin,
{
    /// Races `candidates` (RFC 8305 order, a new attempt every `delay` while others are under
    /// way), making each socket with `open`; the first that connects wins and the others are
    /// closed. All failing, the last failure is reported (usually "connect"; "socket", "bind"
    /// or "setsockopt" when that step of the last attempt failed). `deadline` bounds the whole
    /// race.
    pub(crate) fn start(
        candidates: Vec<SockAddr>,
        open: F,
        delay: Duration,
        deadline: Option<Instant>,
    ) -> Started<F> {
        if candidates.len() == 1 {
            return Race::start_one(candidates, open, delay, deadline);
        }
        let mut race = Race::new(interleave(candidates), open, delay, deadline);
        race.start_next();
        match race.won.take() {
            Some(won) => Started::Over(Ok(won)),
            None if race.running.is_empty() && race.waiting.is_empty() => {
                Started::Over(Err(race.failure()))
            }
            None => Started::Racing(race),
        }
    }

    fn new(
        waiting: VecDeque<SockAddr>,
        open: F,
        delay: Duration,
        deadline: Option<Instant>,
    ) -> Race<F> {
        Race {
            waiting,
            running: Vec::new(),
            won: None,
            open,
            delay,
            next_start: None,
            stagger: None,
            last_start: None,
            deadline,
            timeout: None,
            last_failure: None,
        }
    }

    /// [`start`](Self::start) with a lone candidate (a literal address, a UNIX path, most
    /// names): the same outcomes, but the race is built only when the handshake is still under
    /// way after `connect(2)`, so a connect the kernel finishes at once (loopback, UNIX) moves
    /// and drops no race state.
    fn start_one(
        mut candidates: Vec<SockAddr>,
        open: F,
        delay: Duration,
        deadline: Option<Instant>,
    ) -> Started<F> {
        let Some(addr) = candidates.pop() else {
            return Started::Over(Err(
                Race::new(VecDeque::new(), open, delay, deadline).failure()
            ));
        };
        drop(candidates);
        let Opened { socket, file } = match open(&addr) {
            Ok(opened) => opened,
            Err(failure) => {
                log_failure(&addr, &failure);
                return Started::Over(Err(failure));
            }
        };
        match begin(socket, &addr) {
            Ok(Handshake::Done(socket)) => Started::Over(Ok((Opened { socket, file }, addr))),
            Ok(Handshake::Waiting(fd)) => {
                // No clock read: the start time only spaces the starts of further candidates.
                let mut race = Race::new(VecDeque::new(), open, delay, deadline);
                race.running.push(Attempt { addr, file, fd });
                Started::Racing(race)
            }
            Err(error) => {
                let failure = Failure::new(Operation::Connect, error);
                log_failure(&addr, &failure);
                Started::Over(Err(failure))
            }
        }
    }

    /// The local address of the newest attempt's socket (bound by `connect(2)` at the latest).
    pub(crate) fn local_addr(&self) -> Option<SockAddr> {
        self.running.last()?.fd.get_ref().local_addr().ok()
    }

    /// Starts the next address that can be opened; one that cannot counts as a failed attempt
    /// and the one after it starts at once.
    fn start_next(&mut self) {
        self.next_start = None;
        while let Some(addr) = self.waiting.pop_front() {
            let now = Instant::now();
            self.last_start = Some(now);
            let Opened { socket, file } = match (self.open)(&addr) {
                Ok(opened) => opened,
                Err(failure) => {
                    self.record(&addr, failure);
                    continue;
                }
            };
            match begin(socket, &addr) {
                Ok(Handshake::Done(socket)) => {
                    self.won = Some((Opened { socket, file }, addr));
                    self.waiting.clear();
                }
                Ok(Handshake::Waiting(fd)) => {
                    self.running.push(Attempt { addr, file, fd });
                    if !self.waiting.is_empty() {
                        self.arm(crate::desc::time::later(now, self.delay));
                    }
                }
                Err(error) => self.failed(&addr, Failure::new(Operation::Connect, error)),
            }
            return;
        }
    }

    /// An attempt that failed after `connect(2)`: the next need not wait out the stagger (as
    /// asyncio's staggered race does), but RFC 8305's 10 ms floor between starts still holds.
    fn failed(&mut self, addr: &SockAddr, failure: Failure) {
        self.record(addr, failure);
        if let (Some(last), false) = (self.last_start, self.waiting.is_empty()) {
            self.arm(crate::desc::time::later(last, MIN_ATTEMPT_GAP));
        }
    }

    /// Sets the stagger timer, making it on first use: a lone candidate never needs one.
    fn arm(&mut self, at: Instant) {
        self.next_start = Some(at);
        match &mut self.stagger {
            Some(stagger) => stagger.as_mut().reset(at),
            None => self.stagger = Some(Box::pin(tokio::time::sleep_until(at))),
        }
    }

    fn record(&mut self, addr: &SockAddr, failure: Failure) {
        log_failure(addr, &failure);
        self.last_failure = Some(failure);
    }

    /// The race is lost: the last failure, or why there was nothing to try.
    fn failure(&mut self) -> Failure {
        self.last_failure.take().unwrap_or_else(|| {
            let error = io::Error::new(io::ErrorKind::InvalidInput, "no address to connect to");
            Failure::new(Operation::Connect, error)
        })
    }

    fn poll_race(&mut self, cx: &mut Context<'_>) -> Poll<Connected> {
        // Each turn starts at most one attempt or ends the race: bounded by the candidates.
        loop {
            if let Some(won) = self.won.take() {
                return Poll::Ready(Ok(won));
            }
            let mut index = 0;
            while index < self.running.len() {
                match self.running[index].poll_handshake(cx) {
                    Poll::Pending => index += 1,
                    Poll::Ready(Ok(())) => {
                        let winner = self.running.swap_remove(index);
                        // Close the losers now, before the winner is even delivered.
                        self.running.clear();
                        self.waiting.clear();
                        let opened = Opened {
                            socket: winner.fd.into_inner(),
                            file: winner.file,
                        };
                        return Poll::Ready(Ok((opened, winner.addr)));
                    }
                    Poll::Ready(Err(error)) => {
                        let loser = self.running.swap_remove(index);
                        self.failed(&loser.addr, Failure::new(Operation::Connect, error));
                    }
                }
            }
            if self.waiting.is_empty() {
                if self.running.is_empty() {
                    return Poll::Ready(Err(self.failure()));
                }
                return Poll::Pending;
            }
            if self.next_start.is_some() {
                if let Some(stagger) = &mut self.stagger {
                    if stagger.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
            }
            self.start_next();
        }
    }
}

fn log_failure(addr: &SockAddr, failure: &Failure) {
    log::debug!(
        "connect attempt to {} failed: {}: {}",
        crate::desc::addr::SocketAddress::from_sockaddr(addr),
        failure.operation,
        failure.error
    );
}

impl<F> Future for Race<F>
where
    F: Fn(&SockAddr) -> Result<Opened, Failure> + Unpin,
{
    type Output = Connected;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Connected> {
        let race = self.get_mut();
        if let Poll::Ready(result) = race.poll_race(cx) {
            return Poll::Ready(result);
        }
        let Some(deadline) = race.deadline else {
            return Poll::Pending;
        };
        let timeout = race
            .timeout
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timeout.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        // Close every half-open socket now rather than when the race is dropped.
        race.running.clear();
        race.waiting.clear();
        Poll::Ready(Err(Failure::new(
            Operation::Connect,
            io::Error::from_raw_os_error(libc::ETIMEDOUT),
        )))
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn addrs(list: &[&str]) -> Vec<SockAddr> {
        list.iter()
            .map(|text| SockAddr::from(text.parse::<SocketAddr>().expect("literal")))
            .collect()
    }

    fn order(list: &[&str]) -> Vec<SocketAddr> {
        interleave(addrs(list))
            .iter()
            .filter_map(SockAddr::as_socket)
            .collect()
    }

    #[test]
    fn families_alternate_ipv6_first_keeping_order_within_a_family() {
        let got = order(&[
            "10.0.0.1:1",
            "10.0.0.2:1",
            "[::1]:1",
            "10.0.0.3:1",
            "[::2]:1",
        ]);
        let want: Vec<SocketAddr> = [
            "[::1]:1",
            "10.0.0.1:1",
            "[::2]:1",
            "10.0.0.2:1",
            "10.0.0.3:1",
        ]
        .iter()
        .map(|text| text.parse().expect("literal"))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn one_family_keeps_its_order() {
        let list = ["10.0.0.3:1", "10.0.0.1:1", "10.0.0.2:1"];
        let want: Vec<SocketAddr> = list.iter().map(|t| t.parse().expect("literal")).collect();
        assert_eq!(order(&list), want);
        assert!(order(&[]).is_empty());
    }
}
