//! The client path: non-blocking `connect(2)` to every candidate address, raced as RFC 8305
//! ("Happy Eyeballs" v2) describes, bounded by the connect timeout.
//!
//! The race is one future polling its attempts by hand, so it needs no task per attempt and
//! losing attempts close the moment the race ends: when one connects, the others are dropped
//! (closing their sockets) before the winner is returned; when the deadline passes, dropping the
//! race closes them all.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use socket2::{SockAddr, Socket};
use tokio::io::Interest;
use tokio::time::{Instant, Sleep};

use crate::error::{Failure, Operation};
use crate::open::Opened;
use crate::sys;
use crate::unix::SocketFile;

/// The shortest gap between two attempt starts: RFC 8305 §5, "a subsequent connection MUST NOT
/// be started within 10 milliseconds of the previous attempt".
pub(crate) const MIN_ATTEMPT_GAP: Duration = Duration::from_millis(10);

/// Connects one fresh socket to `addr`, waiting for the handshake without blocking.
pub(crate) async fn connect_one(socket: Socket, addr: &SockAddr) -> io::Result<Socket> {
    match socket.connect(addr) {
        Ok(()) => return Ok(socket),
        // Only EINPROGRESS means "under way". A UNIX stream answers EAGAIN when the server's
        // queue is full: that is a refusal, reported as it is.
        Err(error) if error.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(error) => return Err(error),
    }
    // On loopback the kernel runs the whole handshake inside connect(2): one getpeername then
    // saves registering with the reactor, waiting a turn, and deregistering again.
    if socket.peer_addr().is_ok() {
        return Ok(socket);
    }
    let fd = sys::register(socket, Interest::WRITABLE)?;
    // A fresh registration reports writable only once the handshake has ended, well or badly
    // (as tokio's own connect relies on): SO_ERROR then tells which, with no further call.
    let _ready = fd.writable().await?;
    if let Some(error) = fd.get_ref().take_error()? {
        return Err(error);
    }
    Ok(fd.into_inner())
}

/// RFC 8305 §4: IPv6 first, then the families alternate; within a family the given order
/// (the resolver's RFC 6724 order, or the caller's) is kept. UNIX addresses come as they are.
pub(crate) fn interleave(candidates: Vec<SockAddr>) -> VecDeque<SockAddr> {
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
    handshake: Pin<Box<dyn Future<Output = io::Result<Socket>>>>,
}

/// The state of one race: addresses not tried yet, attempts under way, the stagger timer.
struct Race<F> {
    waiting: VecDeque<SockAddr>,
    running: Vec<Attempt>,
    open: F,
    delay: Duration,
    /// Fires when the next attempt may start.
    stagger: Option<Pin<Box<Sleep>>>,
    last_start: Option<Instant>,
    last_failure: Option<Failure>,
}

impl<F> Race<F>
where
    F: Fn(&SockAddr) -> Result<Opened, Failure>,
{
    /// Starts the next address that can be opened; one that cannot counts as a failed attempt.
    fn start_next(&mut self) {
        while let Some(addr) = self.waiting.pop_front() {
            let now = Instant::now();
            self.last_start = Some(now);
            match (self.open)(&addr) {
                Ok(Opened { socket, file }) => {
                    let target = addr.clone();
                    let handshake = Box::pin(async move { connect_one(socket, &target).await });
                    self.running.push(Attempt {
                        addr,
                        file,
                        handshake,
                    });
                    if !self.waiting.is_empty() {
                        self.arm(now + self.delay);
                    }
                    return;
                }
                Err(failure) => self.record(&addr, failure),
            }
        }
    }

    /// Sets the stagger timer, making it on first use: a lone candidate never needs one.
    fn arm(&mut self, at: Instant) {
        match &mut self.stagger {
            Some(stagger) => stagger.as_mut().reset(at),
            None => self.stagger = Some(Box::pin(tokio::time::sleep_until(at))),
        }
    }

    fn record(&mut self, addr: &SockAddr, failure: Failure) {
        log::debug!(
            "connect attempt to {:?} failed: {}: {}",
            addr.as_socket(),
            failure.operation,
            failure.error
        );
        self.last_failure = Some(failure);
    }

    fn poll_race(&mut self, cx: &mut Context<'_>) -> Poll<Result<(Opened, SockAddr), Failure>> {
        // Each turn starts at most one attempt or ends the race: bounded by the candidates.
        loop {
            if self.running.is_empty() {
                if self.waiting.is_empty() {
                    return Poll::Ready(Err(self.last_failure.take().unwrap_or_else(|| {
                        let error =
                            io::Error::new(io::ErrorKind::InvalidInput, "no address to connect to");
                        Failure::new(Operation::Connect, error)
                    })));
                }
                self.start_next();
                continue;
            }
            let mut failed = false;
            let mut index = 0;
            while index < self.running.len() {
                match self.running[index].handshake.as_mut().poll(cx) {
                    Poll::Pending => index += 1,
                    Poll::Ready(Ok(socket)) => {
                        let winner = self.running.swap_remove(index);
                        // Close the losers now, before the winner is even delivered.
                        self.running.clear();
                        self.waiting.clear();
                        let opened = Opened {
                            socket,
                            file: winner.file,
                        };
                        return Poll::Ready(Ok((opened, winner.addr)));
                    }
                    Poll::Ready(Err(error)) => {
                        let loser = self.running.swap_remove(index);
                        self.record(&loser.addr, Failure::new(Operation::Connect, error));
                        failed = true;
                    }
                }
            }
            if self.waiting.is_empty() {
                if self.running.is_empty() {
                    continue;
                }
                return Poll::Pending;
            }
            if failed {
                // A failure need not wait out the stagger (as asyncio's staggered race does),
                // but RFC 8305's 10 ms floor between starts still holds.
                let earliest = self
                    .last_start
                    .map_or_else(Instant::now, |t| t + MIN_ATTEMPT_GAP);
                self.arm(earliest);
            }
            let at = self
                .last_start
                .map_or_else(Instant::now, |t| t + self.delay);
            let stagger = self
                .stagger
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
            match stagger.as_mut().poll(cx) {
                Poll::Ready(()) => self.start_next(),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Races `candidates` (RFC 8305 order, a new attempt every `delay` while others are under way),
/// making each socket with `open`; the first that connects wins and the others are closed. All
/// failing, the last failure is reported (usually "connect"; "socket", "bind" or "setsockopt"
/// when that step of the last attempt failed). `deadline` bounds the whole race.
pub(crate) async fn connect<F>(
    candidates: Vec<SockAddr>,
    open: F,
    delay: Duration,
    deadline: Option<Instant>,
) -> Result<(Opened, SockAddr), Failure>
where
    F: Fn(&SockAddr) -> Result<Opened, Failure>,
{
    let mut race = Race {
        waiting: interleave(candidates),
        running: Vec::new(),
        open,
        delay,
        stagger: None,
        last_start: None,
        last_failure: None,
    };
    let attempt = std::future::poll_fn(move |cx| race.poll_race(cx));
    match deadline {
        None => attempt.await,
        Some(deadline) => match tokio::time::timeout_at(deadline, attempt).await {
            Ok(result) => result,
            // Dropping the race closed every half-open socket.
            Err(_elapsed) => Err(Failure::new(
                Operation::Connect,
                io::Error::from_raw_os_error(libc::ETIMEDOUT),
            )),
        },
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
