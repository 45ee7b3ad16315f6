//! Handing listening sockets to a new process: graceful restart, binary upgrade and pre-forked
//! workers, with no connection refused.
//!
//! # The mechanism
//! The running process starts its successor itself, with the sockets **inherited**: each is
//! placed on descriptor 3, 4, ... of the new program, described by `LISTEN_FDS` and
//! `LISTEN_FDNAMES` (the systemd convention of sd_listen_fds(3), which the crate already reads),
//! plus one variable, [`HANDOVER_VAR`], carrying the identity (device and inode) of every
//! socket and of a readiness pipe. Both processes then hold the same kernel socket: its listen
//! queue is never closed, so a client that connects at any moment is queued and accepted by
//! one of them.
//!
//! 1. The old process gets a named duplicate of each listening socket ([`SharedSocket`]; for a
//!    factory, the `ShareListener` message) and starts the successor: [`Successor::spawn`]
//!    (one upgrade at a time: a second is refused while one runs).
//! 2. The successor takes the sockets it knows by name with the builder's existing
//!    [`systemd(Some(name))`](crate::SocketFactoryBuilder::systemd), **paused**
//!    (`PauseAccept` right after `start()`), closes or reports the rest ([`unclaimed`],
//!    [`close_unclaimed`]), calls [`ready`], then resumes: given up before it was ready, it
//!    accepted nobody.
//! 3. The old process waits for that with a deadline ([`Starting::ready`]). If the successor
//!    exits, closes the pipe or misses the deadline, it is killed and reaped, the old process
//!    has lost nothing and keeps serving, and the error says why.
//! 4. On success the **rollback window** opens ([`Ready::settle`]): the old process pauses
//!    accepting but keeps its listeners; if the successor exits within the window it resumes at
//!    once (the queue never closed: nothing refused). After it, the old process closes its
//!    listeners (the `Relinquish` message), serves the connections it has until the
//!    application closes them, and exits when it chooses.
//!
//! For factories, [`hand_over`](crate::hand_over) does steps 1, 3 and 4 in one call with one
//! result. [`offer`] and [`request`] do the same for a new process that is **not a child**
//! (started by a supervisor): it asks over a UNIX socket and receives the sockets with
//! `SCM_RIGHTS` ([`hand_over_to`](crate::hand_over_to) for factories). [`Successor::state`] and
//! [`state`] pass application state along. Under systemd, [`notify`] messages keep the service
//! manager following the main process.
//!
//! `LISTEN_PID` cannot be set: `std::process::Command` fixes the environment before `fork`, and
//! changing it between `fork` and `exec` is not async-signal-safe (shellflip sets
//! `LISTEN_PID=auto` and has the child rewrite its own environment, which races with threads).
//! Instead the successor proves the variable is its own by its **descriptors**: 3, 4, ... must
//! be exactly the sockets, with the identities the predecessor put in [`HANDOVER_VAR`], and
//! `LISTEN_FDS` and `LISTEN_FDNAMES` must count them exactly ([`verify`]); anything else is
//! refused whole, nothing taken or closed. This holds whether or not the predecessor still
//! lives (tableflip's child likewise keeps its descriptors when its parent dies), and a process
//! the successor starts later never mistakes the variables for its own: once read, the
//! inherited descriptors are close-on-exec, so it does not have them.
//! (A process the successor starts *before* any call of this module inherits the descriptors
//! too, and for it the variables are true: make a call, [`verify`] for one, first.)
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
//!   successor runs with the predecessor's user, groups, limits and namespaces; [`offer`] and
//!   [`request`] pass them to any process of the same user (or root) that reaches the UNIX
//!   socket.
//! - A UNIX socket file keeps its path, mode and owner: the successor serves the same inode, and
//!   nothing is unlinked by the relinquishing process. The successor did not make the file, so
//!   it does not remove it when it stops either (like any adopted socket): the next fresh start
//!   finds a stale file (see `replace_stale_socket`).
//! - A `FactoryGroup` (`SO_REUSEPORT`) has one queue per member: the successor must take all of
//!   them (they share one name, taken in order), or close the rest, whose queued clients are
//!   then reset by the kernel.
//! - Descriptors 3 to 3 + n (and the pipe, and the state's pipe, just after) are the
//!   successor's; a program that opens files before taking its sockets must not expect those
//!   numbers. If it closes one of them and the number is reused, the crate sees the identity
//!   change and leaves the descriptor alone.
//! - A connection a process had accepted and not yet answered when it is `SIGKILL`ed is lost
//!   with it, whatever the handover (the kernel closes it); the queue is never lost.
//!
//! # Example
//! The old process, step by step (or [`hand_over`](crate::hand_over) in one call; see
//! `examples/upgrade.rs` for the whole program):
//!
//! ```no_run
//! # #[allow(dead_code)]
//! # async fn upgrade(factory: actix::Addr<actix_socket_factory::SocketFactory>) -> std::io::Result<()> {
//! use actix_socket_factory::handover::Successor;
//! use actix_socket_factory::{PauseAccept, Relinquish, ResumeAccept, ShareListener};
//!
//! let shared = factory.send(ShareListener::named("web")).await.unwrap()?;
//! let spawned = Successor::this_program()?.socket(shared).spawn()?;
//! match spawned.ready().await {
//!     Ok(ready) => {
//!         // The rollback window: paused, listeners kept; resumed if the successor dies.
//!         factory.send(PauseAccept).await.unwrap();
//!         match ready.settle(std::time::Duration::from_secs(2)).await {
//!             Ok(child) => {
//!                 factory.send(Relinquish).await.unwrap();
//!                 println!("pid {} serves now", child.id());
//!             }
//!             Err(why) => {
//!                 factory.send(ResumeAccept).await.unwrap();
//!                 eprintln!("rolled back: {why}");
//!             }
//!         }
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
//! // ... start the factories and their owners, paused (`PauseAccept` right after `start()`)
//! // when the socket is inherited, then close what this version does not know, tell the
//! // predecessor, and resume (`ResumeAccept`). Here, without one, nothing to close or tell:
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

use crate::net::inherit::{format_var, handover, FIRST_FD};
pub use crate::net::inherit::{is_successor, HANDOVER_VAR};
pub use crate::net::notify::notify;
pub use crate::net::peer::{offer, request, Offered, Received};
use crate::net::{adopt, notify};
use crate::sys;

/// How long [`Starting::ready`] waits by default for the successor to call [`ready`].
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a successor given up (deadline missed, pipe closed) has between `SIGTERM` and
/// `SIGKILL` by default: time to finish the clients it accepted, should it have.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(1);

/// The byte a successor writes when it is ready.
pub(crate) const READY_BYTE: u8 = b'R';

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
                format!(
                    "invalid handover name {}: empty or holds a control character",
                    crate::desc::quote::quoted(&name)
                ),
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
    /// An upgrade (one at a time, reported to systemd) or a worker beside others.
    upgrade: bool,
    /// Application state for the successor ([`state`]).
    state: Option<Vec<u8>>,
    stop_grace: Duration,
}

impl Successor {
    /// A successor run by `command` (its program, arguments, environment and directory as set
    /// there). The handover variables are added to its environment and `LISTEN_PID` removed.
    pub fn new(command: Command) -> Successor {
        Successor {
            command,
            sockets: Vec::new(),
            ready_timeout: DEFAULT_READY_TIMEOUT,
            upgrade: true,
            state: None,
            stop_grace: DEFAULT_STOP_GRACE,
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

    /// Passes `state` to the successor, which reads it with [`state`] (once): bytes the
    /// application serialised (counters, caches, a session table), over a pipe of their own, at
    /// most [`MAX_STATE`] bytes.
    pub fn state(mut self, state: impl Into<Vec<u8>>) -> Successor {
        self.state = Some(state.into());
        self
    }

    /// How long a successor given up before it was ready has between `SIGTERM` and `SIGKILL`
    /// ([`DEFAULT_STOP_GRACE`]; zero: `SIGKILL` at once). A successor that took its sockets
    /// paused until ready has accepted nobody and needs none; one that accepted clients early
    /// can finish them on `SIGTERM`.
    pub fn stop_grace(mut self, grace: Duration) -> Successor {
        self.stop_grace = grace;
        self
    }

    /// A worker started beside others (pre-forking), not an upgrade: any number may start at
    /// once, and nothing is reported to systemd.
    pub fn worker(mut self) -> Successor {
        self.upgrade = false;
        self
    }

    /// Starts the successor with the sockets inherited; it has not reported ready yet. The
    /// duplicates held here are closed once it runs: this process keeps its own sockets.
    ///
    /// **One upgrade at a time**: from here until the successor has failed, or its rollback
    /// window ([`Ready::settle`]) is over, another `spawn` in this process is refused
    /// (`ResourceBusy`, naming the successor under way), never a second successor. Under
    /// systemd (`NOTIFY_SOCKET` set) it reports `RELOADING=1`.
    ///
    /// # Errors
    /// `ResourceBusy` while another upgrade runs; the OS's error when the process cannot be
    /// started (the program is missing, descriptors are exhausted).
    pub fn spawn(self) -> io::Result<Starting> {
        let Successor {
            mut command,
            sockets,
            ready_timeout,
            upgrade,
            state,
            stop_grace,
        } = self;
        if let Some(state) = &state {
            if state.len() as u64 > MAX_STATE {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "a handover state of {} bytes is more than {MAX_STATE}",
                        state.len()
                    ),
                ));
            }
        }
        let turn = if upgrade { Some(Turn::take()?) } else { None };
        let (ready_read, ready_write) = sys::pipe()?;
        let count = sockets.len();
        let names: Vec<String> = sockets.iter().map(|s| encode_name(&s.name)).collect();
        let mut fds: Vec<RawFd> = sockets.iter().map(|s| s.socket.as_raw_fd()).collect();
        // Each descriptor's identity: the successor proves with them that it holds what was
        // passed (not a parent's pid: it serves them even if this process dies meanwhile).
        let ids = fds
            .iter()
            .map(|fd| sys::desc_id(*fd))
            .collect::<io::Result<Vec<_>>>()?;
        let pipe_id = sys::desc_id(ready_write.as_raw_fd())?;
        fds.push(ready_write.as_raw_fd());
        let ready_fd = FIRST_FD + count as RawFd;
        // The state's pipe, read end to the successor just after the readiness pipe.
        let state_pipe = match state {
            Some(state) => {
                let (read, write) = sys::pipe()?;
                let id = sys::desc_id(read.as_raw_fd())?;
                fds.push(read.as_raw_fd());
                Some((read, write, id, state))
            }
            None => None,
        };
        let state_id = state_pipe.as_ref().map(|(_, _, id, _)| *id);
        command
            .env_remove("LISTEN_PID")
            .env("LISTEN_FDS", count.to_string())
            .env("LISTEN_FDNAMES", names.join(":"))
            .env(
                HANDOVER_VAR,
                format_var(
                    std::process::id(),
                    ready_fd,
                    &pipe_id,
                    &ids,
                    state_id.as_ref(),
                ),
            );
        sys::inherit_at_3(&mut command, fds);
        let child = command.spawn()?;
        if let Some(turn) = &turn {
            turn.started(child.id());
            notify::reloading();
        }
        // Only the successor may hold the write end: its exit then ends our read with EOF.
        drop(ready_write);
        drop(sockets);
        if let Some((read, write, _, state)) = state_pipe {
            drop(read);
            write_state(write, state);
        }
        log::debug!(
            "handover: started successor {} with {count} socket(s) ({})",
            child.id(),
            names.join(":")
        );
        Ok(Starting {
            child: Some(child),
            ready: Some(ready_read),
            timeout: ready_timeout,
            stop_grace,
            turn,
        })
    }
}

/// The most bytes of application state a handover passes (64 MiB).
pub const MAX_STATE: u64 = 64 << 20;

/// Writes `state`, its length first, on a thread of its own: the pipe holds 64 KiB, and the
/// successor reads when it chooses. The thread ends when all is written, or when the successor
/// exits (broken pipe), which a failed handover makes sure of.
fn write_state(pipe: OwnedFd, state: Vec<u8>) {
    let spawned = std::thread::Builder::new()
        .name("handover-state".into())
        .spawn(move || {
            let mut pipe = std::fs::File::from(pipe);
            let written = pipe
                .write_all(&(state.len() as u64).to_le_bytes())
                .and_then(|()| pipe.write_all(&state));
            if let Err(error) = written {
                log::warn!("handover: the state did not reach the successor: {error}");
            }
        });
    if let Err(error) = spawned {
        log::warn!("handover: cannot start the thread that writes the state: {error}");
    }
}

/// The application state the predecessor passed ([`Successor::state`]), once: `Ok(None)` when
/// this process is not a successor, none was passed, or it was read already. Blocks until the
/// predecessor has written it all (it starts at once): call it before serving.
///
/// # Errors
/// When the state's descriptor is not the predecessor's pipe any more, or the state was cut
/// short (the predecessor died while writing it).
pub fn state() -> io::Result<Option<Vec<u8>>> {
    static READ: AtomicBool = AtomicBool::new(false);
    let Some(handover) = handover().ok().flatten() else {
        return Ok(None);
    };
    let Some((fd, id)) = handover.state else {
        return Ok(None);
    };
    if READ.swap(true, Ordering::AcqRel) {
        return Ok(None);
    }
    let mut pipe = sys::inherited_pipe(fd, id, "state pipe")?;
    let cut = |error: io::Error| {
        io::Error::new(
            error.kind(),
            format!("the predecessor's state was cut short: {error}"),
        )
    };
    let mut length = [0u8; 8];
    io::Read::read_exact(&mut pipe, &mut length).map_err(cut)?;
    let length = u64::from_le_bytes(length);
    if length > MAX_STATE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a handover state of {length} bytes is more than {MAX_STATE}"),
        ));
    }
    let mut state = vec![0u8; length as usize];
    io::Read::read_exact(&mut pipe, &mut state).map_err(cut)?;
    Ok(Some(state))
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
    stop_grace: Duration,
    turn: Option<Turn>,
}

impl Starting {
    /// The successor's process id.
    pub fn id(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Waits until the successor reports ready ([`ready`]), it exits, or the deadline passes.
    /// Must run inside a tokio runtime (an actix Arbiter is one).
    ///
    /// On success the rollback window opens ([`Ready`]): pause accepting (keep the listeners
    /// open), then [`Ready::settle`].
    ///
    /// # Errors
    /// [`HandoverError`]: the successor exited, closed the pipe without a word, or missed the
    /// deadline. It is killed and reaped in every case; nothing of this process was changed.
    pub async fn ready(mut self) -> Result<Ready, HandoverError> {
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
                let window = self.turn.take().map(|turn| Window {
                    turn: Some(turn),
                    pid,
                });
                Ok(Ready { child, window })
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
                stop(&mut child, self.stop_grace).await;
                log::warn!("handover: {error}; keeping the sockets");
                if let Some(turn) = self.turn.take() {
                    turn.failed();
                }
                Err(error)
            }
        }
    }

    async fn wait(&mut self) -> Result<(), Waited> {
        // Saturating: Duration::MAX waits for ever rather than overflowing the instant.
        let deadline = tokio::time::Instant::now().checked_add(self.timeout);
        let expired = async move {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(expired);
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
                            let soon = crate::desc::time::soon_after(EXIT_POLL * 4);
                            let until = deadline.map_or(soon, |deadline| soon.min(deadline));
                            while tokio::time::Instant::now() < until {
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
                _ = &mut expired => return Err(Waited::TimedOut),
            }
        }
    }
}

/// Stops a successor given up: `SIGTERM`, up to `grace` to exit, then `SIGKILL`; reaped.
async fn stop(child: &mut Child, grace: Duration) {
    if let Ok(None) = child.try_wait() {
        if !grace.is_zero() && sys::terminate(child) {
            let deadline = std::time::Instant::now().checked_add(grace);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                if deadline.is_some_and(|deadline| std::time::Instant::now() >= deadline) {
                    break;
                }
                tokio::time::sleep(SETTLE_POLL).await;
            }
        }
        let _ = child.kill();
    }
    let _ = child.wait();
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
        if let Some(turn) = self.turn.take() {
            turn.failed();
        }
    }
}

/// A successor that reported ready: it serves. Its **rollback window** is open until
/// [`settle`](Ready::settle) returns or this is dropped: keep the listeners open but paused
/// (`PauseAccept`), so that if the successor dies the old process resumes at once and no client
/// is refused; give them up (`Relinquish`) only once it settled.
#[derive(Debug)]
pub struct Ready {
    child: Child,
    window: Option<Window>,
}

impl Ready {
    /// The successor's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Waits out the rollback window: `grace`, during which the successor must not exit. Then
    /// the upgrade is over (another may start) and, under systemd, `MAINPID=<successor>` and
    /// `READY=1` are reported. A `grace` of zero settles at once; `Duration::MAX` waits for as
    /// long as the successor lives.
    ///
    /// # Errors
    /// [`HandoverError::ExitedAfterReady`] when the successor exited within the window (it is
    /// reaped): resume accepting (`ResumeAccept`), this process serves on.
    pub async fn settle(self, grace: Duration) -> Result<Child, HandoverError> {
        let Ready { mut child, window } = self;
        let deadline = std::time::Instant::now().checked_add(grace);
        let pid = child.id();
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    log::warn!(
                        "handover: successor {pid} exited ({status}) within the rollback window"
                    );
                    if let Some(window) = window {
                        window.failed();
                    }
                    return Err(HandoverError::ExitedAfterReady { pid, status });
                }
                Ok(None) => {}
                Err(error) => {
                    // Not knowing is treated as a failure: the caller resumes.
                    if let Some(window) = window {
                        window.failed();
                    }
                    return Err(HandoverError::Io { pid, error });
                }
            }
            let now = std::time::Instant::now();
            let left = deadline.map_or(SETTLE_POLL, |deadline| {
                deadline.saturating_duration_since(now)
            });
            if left.is_zero() {
                break;
            }
            tokio::time::sleep(left.min(SETTLE_POLL)).await;
        }
        log::debug!("handover: successor {pid} settled");
        drop(window);
        Ok(child)
    }

    /// Ends the rollback window now (as [`settle`](Ready::settle) with no grace, without
    /// looking): the successor's process.
    pub fn into_child(self) -> Child {
        self.child
    }
}

/// How often the rollback window asks whether the successor has exited: clients queue in the
/// meantime (the listen queue is shared), so this bounds the pause, not what is lost.
const SETTLE_POLL: Duration = Duration::from_millis(5);

/// The one upgrade this process runs: taken by [`Successor::spawn`], released when the upgrade
/// failed or settled (or its handle was dropped).
#[derive(Debug)]
pub(crate) struct Turn;

/// The successor under way (0 while it is being started), if any.
static UPGRADE: std::sync::Mutex<Option<u32>> = std::sync::Mutex::new(None);

impl Turn {
    pub(crate) fn take() -> io::Result<Turn> {
        let mut upgrade = UPGRADE.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pid) = *upgrade {
            let who = if pid == 0 {
                "a successor is being started".to_owned()
            } else {
                format!("successor {pid}")
            };
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                format!(
                    "an upgrade is under way already ({who}): one at a time, this one is refused"
                ),
            ));
        }
        *upgrade = Some(0);
        Ok(Turn)
    }

    pub(crate) fn started(&self, pid: u32) {
        *UPGRADE.lock().unwrap_or_else(|p| p.into_inner()) = Some(pid);
    }

    /// The upgrade failed: this process is still the service.
    pub(crate) fn failed(self) {
        notify::send(&format!("MAINPID={}\nREADY=1", std::process::id()));
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        *UPGRADE.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// A rollback window: the turn, until the successor `pid` failed or settled. Dropped without a
/// failure (settled, or nobody watches any more), it reports the successor as the service.
#[derive(Debug)]
pub(crate) struct Window {
    pub(crate) turn: Option<Turn>,
    pub(crate) pid: u32,
}

impl Window {
    pub(crate) fn failed(mut self) {
        if let Some(turn) = self.turn.take() {
            turn.failed();
        }
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        if self.turn.take().is_some() {
            if self.pid == 0 {
                notify::send("READY=1"); // the new main process is unknown here
            } else {
                notify::send(&format!("MAINPID={}\nREADY=1", self.pid));
            }
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
    /// The successor exited after it reported ready, within the rollback window
    /// ([`Ready::settle`]): the old process resumes.
    ExitedAfterReady {
        /// Its process id.
        pid: u32,
        /// How it exited.
        status: ExitStatus,
    },
    /// A successor that asked over a UNIX socket ([`offer`]) closed its connection after it
    /// reported ready, within the rollback window: it exited; the old process resumes.
    LeftAfterReady {
        /// Its process id, where the OS reports it (0 elsewhere).
        pid: u32,
    },
    /// Waiting for it failed, or (`pid` 0) it could not be started: another upgrade is under
    /// way (`ResourceBusy`), a socket could not be shared, the program is missing.
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
            | HandoverError::ExitedAfterReady { pid, .. }
            | HandoverError::LeftAfterReady { pid }
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
            HandoverError::ExitedAfterReady { pid, status } => {
                write!(
                    f,
                    "successor {pid} exited within the rollback window ({status}): rolled back"
                )
            }
            HandoverError::LeftAfterReady { pid } => write!(
                f,
                "successor {pid} closed its handover connection within the rollback window: \
                 rolled back"
            ),
            HandoverError::Io { pid: 0, error } => write!(f, "no successor started: {error}"),
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

pub(crate) fn encode_name(name: &str) -> String {
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

/// The inherited sockets as (descriptor, name), when they are vouched for: a proven handover,
/// or socket activation for this very process (`LISTEN_PID`). Anything else, a count or a name
/// list that does not match or a descriptor that is not the one passed included, is nothing.
fn inherited() -> Vec<(RawFd, String)> {
    match adopt::inherited_fds() {
        Ok((sockets, true)) => sockets,
        _ => Vec::new(),
    }
}

/// Whether this process received a handover, checked: `Ok(true)` when every socket the
/// predecessor passed is on its descriptor with the identity it gave, `Ok(false)` when there
/// was no handover, and an error saying why when the variables are there but refused (a
/// `LISTEN_FDS` or `LISTEN_FDNAMES` that does not match the sockets passed, a descriptor closed
/// or replaced, or variables inherited by a process they were not meant for). A refused
/// handover takes and closes nothing: start fresh or stop.
///
/// # Errors
/// Why the handover variables were refused.
pub fn verify() -> io::Result<bool> {
    handover().map(|handover| handover.is_some())
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
/// Only descriptors proven inherited are closed: a handover's, each checked against the
/// identity its predecessor gave, or systemd's for this very process with as many names as
/// `LISTEN_FDS` says. A mismatch closes nothing (see [`verify`]).
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
    let Some(handover) = handover().ok().flatten() else {
        return Ok(false);
    };
    if TOLD.swap(true, Ordering::AcqRel) {
        return Ok(false);
    }
    // Proven again now: the number may have been closed and reused since the start.
    let mut pipe = sys::inherited_pipe(handover.ready_fd, handover.ready_id, "readiness pipe")?;
    let pid = handover.predecessor;
    pipe.write_all(&[READY_BYTE]).map_err(|error| {
        io::Error::new(
            error.kind(),
            format!("telling predecessor {pid} that we are ready: {error} (it has exited)"),
        )
    })?;
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
            assert_eq!(
                crate::net::inherit::split_names(&raw, true),
                vec![name.to_owned(), "x".into()]
            );
        }
        // systemd's own names are taken as written.
        assert_eq!(
            crate::net::inherit::split_names("a%3Ab:c", false),
            vec!["a%3Ab", "c"]
        );
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
