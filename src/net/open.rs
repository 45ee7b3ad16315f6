//! Making a socket from a [`Plan`]: `socket(2)`, options, `bind(2)`. Listening, connecting and
//! delivering are the callers' business.

use socket2::{SockAddr, Socket};

use crate::desc::error::{Context, Failure, Operation};
use crate::net::resolve::Plan;
use crate::net::unix::{self, SocketFile};
use crate::sys;

/// A fresh socket, bound when the plan says so, and the socket file it made, if any.
#[derive(Debug)]
pub(crate) struct Opened {
    pub(crate) socket: Socket,
    pub(crate) file: Option<SocketFile>,
}

/// A non-blocking, close-on-exec socket of the plan's domain, type and protocol.
pub(crate) fn new_socket(plan: &Plan, family: socket2::Domain) -> Result<Socket, Failure> {
    let protocol = plan.protocol.map(socket2::Protocol::from);
    sys::socket(family, plan.socket_type.to_socket2(), protocol).during(Operation::Socket)
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
    if plan.reuse_port {
        sys::set_reuse_port(&socket).during(Operation::SetSockOpt)?;
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

/// Binds `socket` to the file `path`, making room for it first (see [`unix::prepare_path`]) and
/// giving it the plan's mode without a moment of wider access (see
/// [`unix::set_mode_before_bind`]).
fn bind_path(
    plan: &Plan,
    socket: &Socket,
    bind: &SockAddr,
    path: &std::path::Path,
) -> Result<SocketFile, Failure> {
    // The directory is held from before bind: the file is removed from there later, whatever
    // the working directory has become.
    let place = unix::Place::of(path).during(Operation::Bind)?;
    let lock = unix::prepare_path(&place, plan.unix.replace_stale)?;
    if let Some(mode) = plan.unix.mode {
        unix::set_mode_before_bind(socket, mode).during(Operation::Bind)?;
    }
    socket.bind(bind).during(Operation::Bind)?;
    drop(lock);
    // From here on the file is ours: remove it if a later step fails.
    let file = SocketFile::created(place).during(Operation::Bind)?;
    if let Some(mode) = plan.unix.mode {
        // The umask may have narrowed the mode at birth; this only widens it back up to `mode`.
        // On error `file` drops here and takes the file with it.
        file.set_mode(mode).during(Operation::Bind)?;
    }
    Ok(file)
}
