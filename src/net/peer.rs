//! Handing listening sockets to a process that is not a child (Envoy's hot restart): a new
//! process, started by a supervisor, a container runtime or the operator, connects to the
//! running one over a UNIX stream socket, asks, and receives the sockets with `SCM_RIGHTS`,
//! with their names. Then, as with an inherited handover, it takes them paused, reports ready
//! over the same connection, and the old process pauses; the connection stays open for the new
//! process's life, so the old one sees it die (end of file) and resumes within its rollback
//! window.
//!
//! The protocol, one connection:
//! 1. new → old: the line `sockets`;
//! 2. old → new: one message `sockets NAME:NAME:...\n` (names percent-encoded as in
//!    `LISTEN_FDNAMES`) carrying the descriptors, in order;
//! 3. new → old: one byte, `R`, once it serves; then nothing until it exits.
//!
//! Both sides check the other's user (`SO_PEERCRED` / `getpeereid`): the same user, or root.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use socket2::{SockAddr, SockRef, Socket};

use crate::net::handover::{encode_name, HandoverError, SharedSocket, Turn, Window, READY_BYTE};
use crate::net::inherit::split_names;
use crate::net::notify;
use crate::sys;

/// The request line.
const REQUEST: &[u8] = b"sockets\n";
/// The answer's prefix.
const ANSWER: &[u8] = b"sockets ";
/// The longest answer read (names included).
const MAX_ANSWER: usize = 1 << 20;

/// The peer's process id (where the OS reports it), after checking it runs as this user or as
/// root.
fn check_peer(socket: SockRef<'_>) -> io::Result<u32> {
    let credentials = sys::peer_credentials(&socket)?;
    let me = sys::effective_uid();
    if credentials.uid != me && credentials.uid != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "the peer runs as user {}, not {me} (or root): no sockets are exchanged",
                credentials.uid
            ),
        ));
    }
    Ok(credentials.pid.map_or(0, |pid| pid as u32))
}

/// The old process's side: `stream` is a connection whose peer asked for the sockets (it sent
/// the line `sockets`, already read). Sends `sockets` and waits, at most `ready_timeout`, until
/// the peer reports ready. One upgrade at a time, as [`Successor::spawn`]; under systemd,
/// `RELOADING=1` first.
///
/// On success pause accepting (keep the listeners open) and [`Offered::settle`].
///
/// # Errors
/// [`HandoverError`]: the peer is another user, closed the connection, missed the deadline,
/// or another upgrade is under way (`Io` with pid 0). Nothing of this process changed.
///
/// [`Successor::spawn`]: crate::handover::Successor::spawn
pub async fn offer(
    stream: tokio::net::UnixStream,
    sockets: Vec<SharedSocket>,
    ready_timeout: Duration,
) -> Result<Offered, HandoverError> {
    let not_started = |error: io::Error| HandoverError::Io { pid: 0, error };
    let pid = check_peer(SockRef::from(&stream)).map_err(not_started)?;
    if sockets.is_empty() || sockets.len() > sys::MAX_PASSED_FDS {
        return Err(not_started(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} sockets: from 1 to {} go in one handover",
                sockets.len(),
                sys::MAX_PASSED_FDS
            ),
        )));
    }
    let turn = Turn::take().map_err(not_started)?;
    turn.started(pid);
    notify::reloading();
    let outcome = async {
        let names: Vec<String> = sockets.iter().map(|s| encode_name(s.name())).collect();
        let mut message = ANSWER.to_vec();
        message.extend_from_slice(names.join(":").as_bytes());
        message.push(b'\n');
        let fds: Vec<_> = sockets.iter().map(|s| s.socket().as_raw_fd()).collect();
        let io = |error| HandoverError::Io { pid, error };
        // The descriptors go with the first byte; the rest of a long message follows.
        let sent = loop {
            stream.writable().await.map_err(io)?;
            match sys::send_with_fds(stream.as_raw_fd(), &message, &fds) {
                Ok(sent) => break sent,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                Err(error) => return Err(io(error)),
            }
        };
        let mut rest = &message[sent..];
        while !rest.is_empty() {
            stream.writable().await.map_err(io)?;
            match stream.try_write(rest) {
                Ok(n) => rest = &rest[n..],
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                Err(error) => return Err(io(error)),
            }
        }
        log::debug!(
            "handover: sent {} socket(s) to process {pid} ({})",
            fds.len(),
            names.join(":")
        );
        drop(sockets);
        loop {
            stream.readable().await.map_err(io)?;
            let mut byte = [0u8; 1];
            match stream.try_read(&mut byte) {
                Ok(1) if byte[0] == READY_BYTE => return Ok(()),
                Ok(_) => return Err(HandoverError::ClosedPipe { pid }),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                Err(error) => return Err(io(error)),
            }
        }
    };
    let outcome = match tokio::time::timeout(ready_timeout, outcome).await {
        Ok(outcome) => outcome,
        Err(_) => Err(HandoverError::TimedOut {
            pid,
            timeout: ready_timeout,
        }),
    };
    match outcome {
        Ok(()) => {
            log::debug!("handover: process {pid} is ready");
            Ok(Offered {
                stream,
                pid,
                window: Some(Window {
                    turn: Some(turn),
                    pid,
                }),
            })
        }
        Err(error) => {
            log::warn!("handover: {error}; keeping the sockets");
            turn.failed();
            Err(error)
        }
    }
}

/// A process that took the sockets over a UNIX socket and reported ready: its rollback window
/// is open until [`settle`](Offered::settle) returns (see [`Ready`](crate::handover::Ready)).
#[derive(Debug)]
pub struct Offered {
    stream: tokio::net::UnixStream,
    pid: u32,
    window: Option<Window>,
}

impl Offered {
    /// The new process's id, where the OS reports it (0 elsewhere).
    pub fn id(&self) -> u32 {
        self.pid
    }

    /// Waits out the rollback window: `grace`, during which the new process must keep its
    /// connection open (it closes when the process exits). Then the upgrade is over and, under
    /// systemd, `MAINPID=` and `READY=1` are reported.
    ///
    /// # Errors
    /// [`HandoverError::LeftAfterReady`] when the connection closed within the window: resume
    /// accepting, this process serves on.
    pub async fn settle(mut self, grace: Duration) -> Result<u32, HandoverError> {
        let pid = self.pid;
        let closed = async {
            loop {
                if self.stream.readable().await.is_err() {
                    return;
                }
                let mut byte = [0u8; 64];
                match self.stream.try_read(&mut byte) {
                    Ok(0) => return,
                    Ok(_) => {} // nothing more is expected; ignored
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => return,
                }
            }
        };
        let window = match tokio::time::Instant::now().checked_add(grace) {
            Some(deadline) => tokio::time::timeout_at(deadline, closed).await.is_err(),
            None => {
                closed.await;
                false
            }
        };
        if !window {
            log::warn!("handover: process {pid} left within the rollback window");
            if let Some(window) = self.window.take() {
                window.failed();
            }
            return Err(HandoverError::LeftAfterReady { pid });
        }
        log::debug!("handover: process {pid} settled");
        drop(self.window.take());
        Ok(pid)
    }
}

/// The new process's side: what [`request`] received.
#[derive(Debug)]
pub struct Received {
    sockets: Vec<SharedSocket>,
    stream: UnixStream,
    predecessor: u32,
}

/// Connections to predecessors, kept open for this process's life once ready: their end tells
/// the predecessor that this process exited.
static KEPT: Mutex<Vec<UnixStream>> = Mutex::new(Vec::new());

/// Asks the process listening on the UNIX socket `path` for its listening sockets, waiting at
/// most `timeout` in all for the answer. Take them paused ([`Received::take`], then a factory's
/// `adopt`), then [`Received::ready`].
///
/// It blocks the calling thread, at most `timeout` in all: call it at start, before serving, as
/// the example does. Every step is bounded by the time left: the connect (a listener whose
/// queue is full, or a process that never accepts), writing the request, and each read of the
/// answer (a peer that stays silent or sends it a byte at a time). A `timeout` too long to
/// express is no limit.
///
/// # Errors
/// `TimedOut` when the deadline passed, naming the step; otherwise when the socket cannot be
/// reached, the peer runs as another user, or the answer is not one (names and descriptors
/// that do not match are refused, the descriptors closed). Nothing is left open.
pub fn request(path: impl AsRef<Path>, timeout: Duration) -> io::Result<Received> {
    let path = path.as_ref();
    let deadline = Deadline::new(path, timeout);
    let socket = Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)?;
    let address = SockAddr::unix(path)?;
    // Linux waits in connect(2) for a place in a full listen queue at most the send timeout,
    // then says EAGAIN (other systems refuse at once): bounded by the deadline either way.
    deadline.step(&socket, "connecting (its listen queue is full)", || {
        socket.connect(&address)
    })?;
    let stream = UnixStream::from(socket);
    let predecessor = check_peer(SockRef::from(&stream))?;
    deadline.step(SockRef::from(&stream), "sending the request", || {
        (&stream).write_all(REQUEST)
    })?;
    let mut buf = vec![0u8; 64 * 1024];
    let (mut len, fds) = deadline.step(SockRef::from(&stream), "waiting for the answer", || {
        sys::recv_with_fds(stream.as_raw_fd(), &mut buf)
    })?;
    let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    if len == 0 {
        return Err(invalid(format!(
            "{} closed the connection without an answer",
            path.display()
        )));
    }
    let mut answer = buf[..len].to_vec();
    while !answer.ends_with(b"\n") {
        if answer.len() > MAX_ANSWER {
            return Err(invalid("the answer is too long".into()));
        }
        len = deadline.step(SockRef::from(&stream), "reading the answer", || {
            (&stream).read(&mut buf)
        })?;
        if len == 0 {
            return Err(invalid("the answer was cut short".into()));
        }
        answer.extend_from_slice(&buf[..len]);
    }
    let names = answer
        .strip_prefix(ANSWER)
        .and_then(|rest| rest.strip_suffix(b"\n"))
        .ok_or_else(|| invalid("not a handover answer".into()))?;
    let names = split_names(&String::from_utf8_lossy(names), true);
    if names.len() != fds.len() {
        return Err(invalid(format!(
            "{} names for {} descriptors: refused, all closed",
            names.len(),
            fds.len()
        )));
    }
    let sockets = names
        .into_iter()
        .zip(fds)
        .map(|(name, fd): (String, OwnedFd)| SharedSocket::new(name, Socket::from(fd)))
        .collect::<io::Result<Vec<_>>>()?;
    log::debug!(
        "handover: received {} socket(s) from process {predecessor}",
        sockets.len()
    );
    Ok(Received {
        sockets,
        stream,
        predecessor,
    })
}

/// The one deadline of a [`request`]: each blocking step gets the time left as the socket's
/// receive and send timeouts.
struct Deadline<'a> {
    path: &'a Path,
    timeout: Duration,
    /// `None`: a timeout too long to express, no limit.
    at: Option<Instant>,
}

impl<'a> Deadline<'a> {
    fn new(path: &'a Path, timeout: Duration) -> Self {
        Deadline {
            path,
            timeout,
            at: Instant::now().checked_add(timeout),
        }
    }

    /// Runs one blocking step on `socket` within the time left. An expired socket timeout
    /// (`EAGAIN`) or no time left is `TimedOut`; an interrupted call is tried again in the time
    /// left.
    fn step<T>(
        &self,
        socket: impl std::ops::Deref<Target = Socket>,
        step: &str,
        mut run: impl FnMut() -> io::Result<T>,
    ) -> io::Result<T> {
        loop {
            let left = match self.at {
                None => None,
                Some(at) => match at.checked_duration_since(Instant::now()) {
                    // A zero timeout would be none at all for the OS: at least 1 ms.
                    Some(left) if !left.is_zero() => Some(left.max(Duration::from_millis(1))),
                    _ => return Err(self.expired(step)),
                },
            };
            socket.set_read_timeout(left)?;
            socket.set_write_timeout(left)?;
            match run() {
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    return Err(self.expired(step))
                }
                done => return done,
            }
        }
    }

    fn expired(&self, step: &str) -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "handover request to {}: no answer within {:?} ({step})",
                self.path.display(),
                self.timeout
            ),
        )
    }
}

impl Received {
    /// The names of the sockets not taken yet, in order.
    pub fn names(&self) -> Vec<&str> {
        self.sockets.iter().map(SharedSocket::name).collect()
    }

    /// The predecessor's process id, where the OS reports it (0 elsewhere).
    pub fn predecessor(&self) -> u32 {
        self.predecessor
    }

    /// Takes the first socket named `name`.
    pub fn take(&mut self, name: &str) -> Option<SharedSocket> {
        let at = self.sockets.iter().position(|s| s.name() == name)?;
        Some(self.sockets.remove(at))
    }

    /// Tells the predecessor that this process serves now, closes the sockets not taken, and
    /// keeps the connection open for the rest of this process's life (its end tells the
    /// predecessor, within its rollback window, that this process exited).
    ///
    /// # Errors
    /// When the predecessor cannot be told (it exited).
    pub fn ready(self) -> io::Result<()> {
        let Received {
            sockets,
            mut stream,
            predecessor,
        } = self;
        drop(sockets);
        stream.write_all(&[READY_BYTE])?;
        log::debug!("handover: told process {predecessor} that we are ready");
        KEPT.lock().unwrap_or_else(|p| p.into_inner()).push(stream);
        Ok(())
    }
}
