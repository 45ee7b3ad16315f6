//! Making a socket from a [`Plan`]: `socket(2)`, options, `bind(2)`. Listening, connecting and
//! delivering are the callers' business.

use socket2::{SockAddr, Socket};

use crate::error::{Context, Failure, Operation};
use crate::resolve::Plan;
use crate::unix::{self, SocketFile};

/// A fresh socket, bound when the plan says so, and the socket file it made, if any.
#[derive(Debug)]
pub(crate) struct Opened {
    pub(crate) socket: Socket,
    pub(crate) file: Option<SocketFile>,
}

/// A non-blocking, close-on-exec socket of the plan's domain, type and protocol.
pub(crate) fn new_socket(plan: &Plan, family: socket2::Domain) -> Result<Socket, Failure> {
    let protocol = plan.protocol.map(socket2::Protocol::from);
    #[cfg(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "dragonfly",
        target_os = "illumos"
    ))]
    let socket = Socket::new(
        family,
        plan.socket_type.to_socket2().nonblocking(),
        protocol,
    )
    .during(Operation::Socket)?;
    #[cfg(not(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "dragonfly",
        target_os = "illumos"
    )))]
    let socket = {
        let socket = Socket::new(family, plan.socket_type.to_socket2(), protocol)
            .during(Operation::Socket)?;
        socket.set_nonblocking(true).during(Operation::Socket)?;
        socket
    };
    Ok(socket)
}

/// Makes and binds the socket for `plan`; `family` is the family of the address it will use
/// (the plan's domain, or a remote candidate's).
pub(crate) fn open(plan: &Plan, family: socket2::Domain) -> Result<Opened, Failure> {
    let socket = new_socket(plan, family)?;
    plan.options
        .apply_made(&socket, family, plan.role, plan.socket_type)?;
    if plan.reuse {
        socket
            .set_reuse_address(true)
            .during(Operation::SetSockOpt)?;
    }
    let Some(bind) = &plan.bind else {
        return Ok(Opened { socket, file: None });
    };
    let file = match &plan.bind_path {
        Some(path) => Some(bind_path(plan, &socket, bind, path)?),
        None => {
            socket.bind(bind).during(Operation::Bind)?;
            None
        }
    };
    Ok(Opened { socket, file })
}

fn bind_path(
    plan: &Plan,
    socket: &Socket,
    bind: &SockAddr,
    path: &std::path::Path,
) -> Result<SocketFile, Failure> {
    let ty = plan.socket_type.to_socket2();
    unix::prepare_path(path, ty, plan.unix.replace_stale).during(Operation::Bind)?;
    if let Some(mode) = plan.unix.mode {
        unix::set_mode_before_bind(socket, mode).during(Operation::SetSockOpt)?;
    }
    socket.bind(bind).during(Operation::Bind)?;
    // From here on the file is ours: remove it if a later step fails.
    let file = SocketFile::created(path).during(Operation::Bind)?;
    if let Some(mode) = plan.unix.mode {
        // On error `file` drops here and takes the file with it.
        unix::set_mode_after_bind(path, mode).during(Operation::SetSockOpt)?;
    }
    Ok(file)
}
