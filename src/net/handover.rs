//! Handing listening sockets to a new process: graceful restart, binary upgrade and pre-forked
//! workers, with no connection refused.
//!
//! # The mechanism
//! The running process starts its successor itself, with the sockets **inherited**: each is
//! placed on descriptor 3, 4, ... of the new program, described by `LISTEN_FDS` and
//! `LISTEN_FDNAMES` (the systemd convention of sd_listen_fds(3), which the crate already reads),
//! plus one variable, [`HANDOVER_VAR`], naming the predecessor's pid and a readiness pipe. Both
//! processes then hold the same kernel socket: its listen queue is never closed, so a client
//! that connects at any moment is queued and accepted by one of them.
//!
//! 1. The old process gets a named duplicate of each listening socket ([`SharedSocket`]; for a
//!    factory, the `ShareListener` message) and starts the successor: [`Successor::spawn`].
//! 2. The successor takes the sockets it knows by name with the builder's existing
//!    [`systemd(Some(name))`](crate::SocketFactoryBuilder::systemd), closes or reports the rest
//!    ([`unclaimed`], [`close_unclaimed`]) and, once it serves, calls [`ready`].
//! 3. The old process waits for that with a deadline ([`Starting::ready`]). On success it stops
//!    accepting and closes its listeners (the `Relinquish` message), leaving every queued
//!    connection to the successor, serves the connections it has until the application closes
//!    them, and exits when it chooses. If the successor exits, closes the pipe or misses the
//!    deadline, it is killed and reaped, the old process has lost nothing and keeps serving,
//!    and the error says why.
//!
//! `LISTEN_PID` cannot be set: `std::process::Command` fixes the environment before `fork`, and
//! changing it between `fork` and `exec` is not async-signal-safe (shellflip sets
//! `LISTEN_PID=auto` and has the child rewrite its own environment, which races with threads).
//! Instead [`HANDOVER_VAR`] names the predecessor's pid and the successor checks it against its
//! parent (`getppid`): the predecessor waits for it, so it is still the parent while the
//! successor takes its sockets, and a process the successor starts later (whose parent is the
//! successor) never mistakes the variables for its own.
//!
//! # Why this mechanism
//! - **tableflip** (Go, Cloudflare) does the same: the old process forks and execs the new
//!   binary with the listeners as extra files, names them in an environment variable, waits for
//!   `Ready()` over a pipe with a timeout, then stops. **nginx** (`SIGUSR2`) likewise execs the new
//!   binary with the listening descriptors inherited and listed in `NGINX=3;4;`.
//! - **shellflip** (Rust, tokio, Cloudflare) also spawns the new process itself and waits for a
//!   byte on an inherited pipe, but passes no sockets of its own: systemd's stay inherited
//!   (`LISTEN_PID=auto`, rewritten by the child), others are rebound (`SO_REUSEPORT`) or passed
//!   by the application over a second pipe it serialises state into.
//! - **Envoy**'s hot restart starts the new process separately (a wrapper script); it connects to
//!   the old one over a UNIX socket, asks for each listener by address and receives it with
//!   `SCM_RIGHTS`, sharing statistics through shared memory.
//!
//! Inheritance is chosen because it needs no rendezvous address, no protocol and no server in the
//! old process: the successor reads the same variables as a socket-activated service, so one code
//! path serves systemd, `systemfd` and a handover, and a program needs no change to run under
//! either. The same call serves the pre-forking pattern: a master with accept paused starts N
//! workers from one listening socket. Its cost is that the old process must start the new one
//! (as with tableflip and nginx), not a supervisor; under systemd set `NotifyAccess=all` and
//! report the successor's pid (`MAINPID=`), or use `KillMode=process`.
//!
//! # Limits
//! - Same machine and same user: inheritance passes descriptors to a child only, and the
//!   successor runs with the predecessor's user, groups, limits and namespaces.
//! - A UNIX socket file keeps its path, mode and owner: the successor serves the same inode, and
//!   nothing is unlinked by the relinquishing process. The successor did not make the file, so
//!   it does not remove it when it stops either (like any adopted socket): the next fresh start
//!   finds a stale file (see `replace_stale_socket`).
//! - A `FactoryGroup` (`SO_REUSEPORT`) has one queue per member: the successor must take all of
//!   them (they share one name, taken in order), or close the rest, whose queued clients are
//!   then reset by the kernel.
//! - Descriptors 3 to 3 + n (and the pipe, just after) are the successor's; a program that opens
//!   files before taking its sockets must not expect those numbers.
//!
//! # Example
//! The old process (see `examples/upgrade.rs` for the whole program):
//!
//! ```no_run
//! # #[allow(dead_code)]
//! # async fn upgrade(factory: actix::Addr<actix_socket_factory::SocketFactory>) -> std::io::Result<()> {
//! use actix_socket_factory::handover::Successor;
//! use actix_socket_factory::{Relinquish, ShareListener};
//!
//! let shared = factory.send(ShareListener::named("web")).await.unwrap()?;
//! let spawned = Successor::this_program()?.socket(shared).spawn()?;
//! match spawned.ready().await {
//!     Ok(child) => {
//!         factory.send(Relinquish).await.unwrap();
//!         println!("pid {} serves now", child.id());
//!     }
//!     Err(why) => eprintln!("still serving: {why}"),
//! }
//! # Ok(()) }
//! ```
//!
//! and the successor, which is the same program:
//!
//! ```
//! use actix_socket_factory::{handover, SocketFactory, SocketFactoryBuilder};
//!
//! /// The predecessor's socket when there is one, else a fresh one.
//! fn web(builder: SocketFactoryBuilder) -> SocketFactoryBuilder {
//!     if handover::is_inherited("web") {
//!         builder.systemd(Some("web"))
//!     } else {
//!         builder.bind_address("127.0.0.1").bind_port(8080)
//!     }
//! }
//! # let _ = web(SocketFactory::builder());
//! // ... start the factories and their owners, then close what this version does not know
//! // and tell the predecessor (here, without one, there is nothing to close or tell):
//! assert!(handover::close_unclaimed().is_empty());
//! assert!(!handover::ready().expect("told the predecessor"));
//! ```

use std::fmt;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use socket2::Socket;

use crate::net::adopt;
use crate::net::inherit::{handed_over, handover_var, split_names, FIRST_FD, MAX_FDS};
pub use crate::net::inherit::{is_successor, HANDOVER_VAR};
use crate::sys;

/// How long [`Starting::ready`] waits by default for the successor to call [`ready`].
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The byte a successor writes when it is ready.
const READY_BYTE: u8 = b'R';

/// How often the wait for readiness also asks whether the successor has exited (in case a
/// process it started holds the pipe open after it died).
const EXIT_POLL: Duration = Duration::from_millis(50);

/// A socket to hand over, with the name the successor asks for it by.
///
/// The name is the factory's endpoint by default (`tcp://127.0.0.1:8080`, `unix:/run/app.sock`,
/// see [`address_name`]) or one given. It travels in `LISTEN_FDNAMES` with `%` and `:`
/// percent-encoded (`:` separates names there); the successor sees it as given.
#[derive(Debug)]
pub struct SharedSocket {
    name: String,
    socket: Socket,
}

impl SharedSocket {
    /// A socket to hand over as `name`. The socket is passed as it is: a listening stream socket
    /// or a bound datagram socket.
    ///
    /// # Errors
    /// `InvalidInput` when the name is empty or holds a NUL byte or a control character.
    pub fn new(name: impl Into<String>, socket: impl Into<Socket>) -> io::Result<SharedSocket> {
        let name = name.into();
        if name.is_empty() || name.chars().any(char::is_control) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid handover name {name:?}: empty or holds a control character"),
            ));
        }
        Ok(SharedSocket {
            name,
            socket: socket.into(),
        })
    }

    /// A socket to hand over, named by its own address ([`address_name`]).
    ///
    /// # Errors
    /// When its local address cannot be read.
    pub fn by_address(socket: impl Into<Socket>) -> io::Result<SharedSocket> {
        let socket = socket.into();
        let name = address_name(&socket)?;
        SharedSocket::new(name, socket)
    }

    /// The name the successor takes it by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The socket.
    pub fn socket(&self) -> &Socket {
        &self.socket
    }

    /// Another handle to the same socket with the same name (for several workers).
    ///
    /// # Errors
    /// When the descriptor cannot be duplicated (`EMFILE`).
    pub fn try_clone(&self) -> io::Result<SharedSocket> {
        Ok(SharedSocket {
            name: self.name.clone(),
            socket: self.socket.try_clone()?,
        })
    }

    /// The socket, given up.
    pub fn into_socket(self) -> Socket {
        self.socket
    }
}

impl AsFd for SharedSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

/// The default handover name of a socket: its local address as an endpoint string,
/// `tcp://127.0.0.1:8080`, `tcp://[::1]:8080`, `udp://...`, `unix:/path`, `unix-dgram:/path`,
/// or `unix:@name` for a Linux abstract name.
///
/// # Errors
/// When the local address or type cannot be read.
pub fn address_name(socket: &Socket) -> io::Result<String> {
    let local = socket.local_addr()?;
    let stream = socket.r#type()? == socket2::Type::STREAM;
    if let Some(inet) = local.as_socket() {
        let scheme = if stream { "tcp" } else { "udp" };
        return Ok(format!("{scheme}://{inet}"));
    }
    let scheme = if stream { "unix" } else { "unix-dgram" };
    if let Some(path) = local.as_pathname() {
        return Ok(format!("{scheme}:{}", path.display()));
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Some(name) = local.as_abstract_namespace() {
        return Ok(format!("{scheme}:@{}", String::from_utf8_lossy(name)));
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        "an unnamed socket has no address to name it by; give a name",
    ))
}

/// The new process, before it is started: a command and the sockets it inherits.
#[derive(Debug)]
pub struct Successor {
    command: Command,
    sockets: Vec<SharedSocket>,
    ready_timeout: Duration,
}

impl Successor {
    /// A successor run by `command` (its program, arguments, environment and directory as set
    /// there). The handover variables are added to its environment and `LISTEN_PID` removed.
    pub fn new(command: Command) -> Successor {
        Successor {
            command,
            sockets: Vec::new(),
            ready_timeout: DEFAULT_READY_TIMEOUT,
        }
    }

    /// A successor running this very program again with the same arguments: the binary now at
    /// the path this process was started from (a new version, after an upgrade replaced it).
    ///
    /// # Errors
    /// When the path of this process's program cannot be found.
    pub fn this_program() -> io::Result<Successor> {
        let mut command = Command::new(this_program_path()?);
        command.args(std::env::args_os().skip(1));
        Ok(Successor::new(command))
    }

    /// The command, to add arguments or variables.
    pub fn command_mut(&mut self) -> &mut Command {
        &mut self.command
    }

    /// Passes `socket` (the successor takes it by its name).
    pub fn socket(mut self, socket: SharedSocket) -> Successor {
        self.sockets.push(socket);
        self
    }

    /// Passes each of `sockets`, in order.
    pub fn sockets(mut self, sockets: impl IntoIterator<Item = SharedSocket>) -> Successor {
        self.sockets.extend(sockets);
        self
    }

    /// How long [`Starting::ready`] waits for the successor ([`DEFAULT_READY_TIMEOUT`]).
    pub fn ready_timeout(mut self, timeout: Duration) -> Successor {
        self.ready_timeout = timeout;
        self
    }

    /// Starts the successor with the sockets inherited; it has not reported ready yet. The
    /// duplicates held here are closed once it runs: this process keeps its own sockets.
    ///
    /// # Errors
    /// When the process cannot be started (the program is missing, descriptors are exhausted).
    pub fn spawn(self) -> io::Result<Starting> {
        let Successor {
            mut command,
            sockets,
            ready_timeout,
        } = self;
        let (ready_read, ready_write) = sys::pipe()?;
        let count = sockets.len();
        let names: Vec<String> = sockets.iter().map(|s| encode_name(&s.name)).collect();
        let mut fds: Vec<RawFd> = sockets.iter().map(|s| s.socket.as_raw_fd()).collect();
        fds.push(ready_write.as_raw_fd());
        let ready_fd = FIRST_FD + count as RawFd;
        command
            .env_remove("LISTEN_PID")
            .env("LISTEN_FDS", count.to_string())
            .env("LISTEN_FDNAMES", names.join(":"))
            .env(HANDOVER_VAR, format!("{}:{ready_fd}", std::process::id()));
        sys::inherit_at_3(&mut command, fds);
        let child = command.spawn()?;
        // Only the successor may hold the write end: its exit then ends our read with EOF.
        drop(ready_write);
        drop(sockets);
        log::debug!(
            "handover: started successor {} with {count} socket(s) ({})",
            child.id(),
            names.join(":")
        );
        Ok(Starting {
            child: Some(child),
            ready: Some(ready_read),
            timeout: ready_timeout,
        })
    }
}

/// The path this process's program was started from (on Linux, `/proc/self/exe` without the
/// ` (deleted)` the kernel adds once an upgrade has replaced the file).
fn this_program_path() -> io::Result<std::path::PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::env::current_exe()?;
    match path.as_os_str().as_bytes().strip_suffix(b" (deleted)") {
        Some(stripped) => Ok(std::ffi::OsStr::from_bytes(stripped).into()),
        None => Ok(path),
    }
}

/// A started successor, not yet ready. Dropping it before [`ready`](Starting::ready) resolves
/// kills the successor (it would otherwise serve alongside with nobody waiting for it).
#[derive(Debug)]
pub struct Starting {
    child: Option<Child>,
    ready: Option<OwnedFd>,
    timeout: Duration,
}

impl Starting {
    /// The successor's process id.
    pub fn id(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Waits until the successor reports ready ([`ready`]), it exits, or the deadline passes.
    /// Must run inside a tokio runtime (an actix Arbiter is one).
    ///
    /// # Errors
    /// [`HandoverError`]: the successor exited, closed the pipe without a word, or missed the
    /// deadline. It is killed and reaped in every case; nothing of this process was changed.
    pub async fn ready(mut self) -> Result<Child, HandoverError> {
        let pid = self.id();
        let outcome = self.wait().await;
        // Held from spawn until here (`ready` takes `self`): a missing one is reported, not a panic.
        let Some(mut child) = self.child.take() else {
            return Err(HandoverError::Io {
                pid,
                error: io::Error::other("the successor was already given up"),
            });
        };
        match outcome {
            Ok(()) => {
                log::debug!("handover: successor {pid} is ready");
                Ok(child)
            }
            Err(error) => {
                let error = match error {
                    // It may still be running (it closed the pipe, or the deadline passed).
                    Waited::Exited(status) => HandoverError::Exited { pid, status },
                    Waited::Silent => match child.try_wait() {
                        Ok(Some(status)) => HandoverError::Exited { pid, status },
                        _ => HandoverError::ClosedPipe { pid },
                    },
                    Waited::TimedOut => HandoverError::TimedOut {
                        pid,
                        timeout: self.timeout,
                    },
                    Waited::Io(error) => HandoverError::Io { pid, error },
                };
                let _ = child.kill();
                let _ = child.wait();
                log::warn!("handover: {error}; keeping the sockets");
                Err(error)
            }
        }
    }

    async fn wait(&mut self) -> Result<(), Waited> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let Some(fd) = self.ready.take() else {
            return Err(Waited::Io(io::Error::other(
                "the readiness pipe was already used",
            )));
        };
        let pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(fd).map_err(Waited::Io)?;
        let Some(child) = self.child.as_mut() else {
            return Err(Waited::Io(io::Error::other(
                "the successor was already given up",
            )));
        };
        let mut poll = tokio::time::interval(EXIT_POLL);
        loop {
            tokio::select! {
                readable = pipe.readable() => {
                    readable.map_err(Waited::Io)?;
                    let mut byte = [0u8; 1];
                    match pipe.try_read(&mut byte) {
                        Ok(1) if byte[0] == READY_BYTE => return Ok(()),
                        Ok(_) => {
                            // EOF (or a stray byte): give its exit a moment to be seen.
                            let soon = tokio::time::Instant::now() + EXIT_POLL * 4;
                            while tokio::time::Instant::now() < soon.min(deadline) {
                                if let Ok(Some(status)) = child.try_wait() {
                                    return Err(Waited::Exited(status));
                                }
                                tokio::time::sleep(EXIT_POLL / 5).await;
                            }
                            return Err(Waited::Silent);
                        }
                        Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                        Err(error) => return Err(Waited::Io(error)),
                    }
                }
                _ = poll.tick() => {
                    if let Ok(Some(status)) = child.try_wait() {
                        return Err(Waited::Exited(status));
                    }
                }
                _ = tokio::time::sleep_until(deadline) => return Err(Waited::TimedOut),
            }
        }
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            log::warn!(
                "handover: the wait for successor {} was dropped; killing it",
                child.id()
            );
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

enum Waited {
    Exited(ExitStatus),
    Silent,
    TimedOut,
    Io(io::Error),
}

/// Why a successor did not take over. In every case it was killed and reaped, and the old
/// process still holds and serves its sockets.
#[derive(Debug)]
#[non_exhaustive]
pub enum HandoverError {
    /// The successor exited before reporting ready.
    Exited {
        /// Its process id.
        pid: u32,
        /// How it exited.
        status: ExitStatus,
    },
    /// The successor closed its readiness pipe without reporting ready.
    ClosedPipe {
        /// Its process id.
        pid: u32,
    },
    /// The successor did not report ready in time.
    TimedOut {
        /// Its process id.
        pid: u32,
        /// The time it had.
        timeout: Duration,
    },
    /// Waiting for it failed.
    Io {
        /// Its process id.
        pid: u32,
        /// The error.
        error: io::Error,
    },
}

impl HandoverError {
    /// The successor's process id.
    pub fn pid(&self) -> u32 {
        match self {
            HandoverError::Exited { pid, .. }
            | HandoverError::ClosedPipe { pid }
            | HandoverError::TimedOut { pid, .. }
            | HandoverError::Io { pid, .. } => *pid,
        }
    }
}

impl fmt::Display for HandoverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandoverError::Exited { pid, status } => {
                write!(f, "successor {pid} exited before it was ready ({status})")
            }
            HandoverError::ClosedPipe { pid } => {
                write!(
                    f,
                    "successor {pid} closed its readiness pipe without being ready"
                )
            }
            HandoverError::TimedOut { pid, timeout } => {
                write!(f, "successor {pid} was not ready within {timeout:?}")
            }
            HandoverError::Io { pid, error } => {
                write!(f, "waiting for successor {pid}: {error}")
            }
        }
    }
}

impl std::error::Error for HandoverError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HandoverError::Io { error, .. } => Some(error),
            _ => None,
        }
    }
}

// ---- The successor's side ----

fn encode_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '%' => out.push_str("%25"),
            ':' => out.push_str("%3A"),
            c => out.push(c),
        }
    }
    out
}

/// The inherited sockets as (descriptor, name), from `LISTEN_FDS` and `LISTEN_FDNAMES`, when
/// this process is a successor or was socket-activated for itself (`LISTEN_PID`).
fn inherited() -> Vec<(RawFd, String)> {
    let handed = handed_over();
    if !handed {
        let ours = std::env::var("LISTEN_PID")
            .ok()
            .and_then(|pid| pid.trim().parse::<u32>().ok())
            == Some(std::process::id());
        if !ours {
            return Vec::new();
        }
    }
    let Some(count) = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.trim().parse::<RawFd>().ok())
        .filter(|n| (0..=MAX_FDS).contains(n))
    else {
        return Vec::new();
    };
    let names = split_names(&std::env::var("LISTEN_FDNAMES").unwrap_or_default(), handed);
    (0..count)
        .map(|i| {
            let name = names.get(i as usize).cloned().unwrap_or_default();
            (FIRST_FD + i, name)
        })
        .collect()
}

/// The names of all inherited sockets, taken or not, in descriptor order.
pub fn inherited_names() -> Vec<String> {
    inherited().into_iter().map(|(_, name)| name).collect()
}

/// Whether an inherited socket named `name` is still there for a factory to take with
/// [`systemd(Some(name))`](crate::SocketFactoryBuilder::systemd).
pub fn is_inherited(name: &str) -> bool {
    inherited()
        .iter()
        .any(|(fd, n)| n == name && !adopt::is_taken(*fd))
}

/// The names of inherited sockets no factory has taken: what this program does not know.
pub fn unclaimed() -> Vec<String> {
    inherited()
        .into_iter()
        .filter(|(fd, _)| !adopt::is_taken(*fd))
        .map(|(_, name)| name)
        .collect()
}

/// Closes the inherited sockets no factory has taken, and returns their names; no factory can
/// take them afterwards. Call it once every factory that takes a socket has started.
///
/// A UNIX socket's file stays where it is. For a member of an `SO_REUSEPORT` group, clients
/// already queued on a closed socket are reset by the kernel.
pub fn close_unclaimed() -> Vec<String> {
    let mut closed = Vec::new();
    for (fd, name) in inherited() {
        if adopt::mark_taken(fd) {
            // Only a socket is closed; anything else at that number is not ours to touch.
            if let Ok(socket) = sys::inherited_socket(fd) {
                drop(socket);
                log::debug!("handover: closed unclaimed socket {name:?} (descriptor {fd})");
                closed.push(name);
            }
        }
    }
    closed
}

/// Tells the predecessor that this process serves now; it then stops accepting and closes its
/// listeners. Returns `Ok(false)` when there is nobody to tell (not a successor, or told
/// already).
///
/// Call it once the factories that took the inherited sockets are started: from then on the
/// queued clients are this process's alone.
///
/// # Errors
/// When the predecessor cannot be told (it exited: the pipe is broken).
pub fn ready() -> io::Result<bool> {
    static TOLD: AtomicBool = AtomicBool::new(false);
    let Some((pid, fd)) = handover_var() else {
        return Ok(false);
    };
    if TOLD.swap(true, Ordering::AcqRel) {
        return Ok(false);
    }
    let mut pipe = sys::inherited_pipe(fd)?;
    pipe.write_all(&[READY_BYTE])?;
    drop(pipe);
    log::debug!("handover: told predecessor {pid} that we are ready");
    Ok(true)
}

/// Takes the inherited socket named `name` (handed over by a predecessor, or named by systemd's
/// `LISTEN_FDNAMES`) without a factory: for a server that keeps actix-web's `HttpServer`,
/// `HttpServer::new(..).listen(std::net::TcpListener::from(take("http")?))`. The socket is
/// close-on-exec, otherwise as inherited (listening; its blocking mode as the predecessor left
/// it); no factory can take it afterwards. Call [`ready`] once the server serves on it.
///
/// # Errors
/// `NotFound` when no socket of that name was inherited, or it was taken already; the OS's
/// error when the descriptor is not a socket.
pub fn take(name: &str) -> io::Result<Socket> {
    for (fd, inherited_name) in inherited() {
        if inherited_name == name && adopt::mark_taken(fd) {
            return sys::inherited_socket(fd);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("no inherited socket named {name:?} is left to take"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_survive_the_trip_through_listen_fdnames() {
        for name in [
            "web",
            "tcp://127.0.0.1:8080",
            "unix:/run/a%3A.sock",
            "%",
            "a:b:%25",
        ] {
            let raw = [encode_name(name), encode_name("x")].join(":");
            assert_eq!(split_names(&raw, true), vec![name.to_owned(), "x".into()]);
        }
        // systemd's own names are taken as written.
        assert_eq!(split_names("a%3Ab:c", false), vec!["a%3Ab", "c"]);
    }

    #[test]
    fn bad_names_are_refused() {
        let socket = || Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        assert!(SharedSocket::new("", socket()).is_err());
        assert!(SharedSocket::new("a\0b", socket()).is_err());
        assert!(SharedSocket::new("a\nb", socket()).is_err());
        assert!(SharedSocket::new("web", socket()).is_ok());
    }

    #[test]
    fn address_names_are_endpoints() {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        assert_eq!(
            address_name(&Socket::from(tcp)).unwrap(),
            format!("tcp://127.0.0.1:{port}")
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let unix = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert_eq!(
            address_name(&Socket::from(OwnedFd::from(unix))).unwrap(),
            format!("unix:{}", path.display())
        );
    }
}
