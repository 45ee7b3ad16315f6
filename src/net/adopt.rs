//! Sockets made elsewhere: adopted from the caller (`std` listeners, `OwnedFd`, socket2) or
//! inherited through systemd socket activation (`LISTEN_PID`, `LISTEN_FDS`, `LISTEN_FDNAMES`;
//! see sd_listen_fds(3)).

use std::io;
use std::os::fd::RawFd;
use std::sync::Mutex;

use socket2::Socket;

use crate::desc::error::{Context, Failure, Operation};
use crate::desc::kind::{Domain, SocketType};
use crate::desc::spec::Role;
use crate::sys;

/// An adopted socket, checked and ready: what the factory does with it.
#[derive(Debug)]
pub(crate) struct Adopted {
    pub(crate) socket: Socket,
    pub(crate) domain: Domain,
    pub(crate) socket_type: SocketType,
    pub(crate) role: Role,
}

/// Makes a working duplicate of `original`: non-blocking, close-on-exec, of a kind the factory
/// knows. A stream socket must already listen; a datagram socket is delivered as it is.
pub(crate) fn prepare(original: &Socket) -> Result<Adopted, Failure> {
    // try_clone duplicates with F_DUPFD_CLOEXEC: the copy is close-on-exec whatever the original.
    let socket = original.try_clone().during(Operation::Socket)?;
    socket.set_nonblocking(true).during(Operation::SetSockOpt)?;
    let unsupported = |what: String| {
        Failure::new(
            Operation::Socket,
            io::Error::new(io::ErrorKind::Unsupported, what),
        )
    };
    let domain = match sys::domain(&socket).during(Operation::Socket)? {
        d if d == socket2::Domain::IPV4 => Domain::Inet,
        d if d == socket2::Domain::IPV6 => Domain::Inet6,
        d if d == socket2::Domain::UNIX => Domain::Unix,
        other => return Err(unsupported(format!("adopted socket of family {other:?}"))),
    };
    let socket_type = match socket.r#type().during(Operation::Socket)? {
        t if t == socket2::Type::STREAM => SocketType::Stream,
        t if t == socket2::Type::DGRAM => SocketType::Datagram,
        other => return Err(unsupported(format!("adopted socket of type {other:?}"))),
    };
    let role = match socket_type {
        SocketType::Datagram => Role::Bound,
        SocketType::Stream if sys::is_listener(&socket).during(Operation::Listen)? => Role::Listen,
        SocketType::Stream => {
            return Err(Failure::new(
                Operation::Listen,
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "adopted stream socket is not listening (call listen first, or let the \
                     factory make the socket)",
                ),
            ))
        }
    };
    Ok(Adopted {
        socket,
        domain,
        socket_type,
        role,
    })
}

/// The first descriptor systemd passes (SD_LISTEN_FDS_START).
const LISTEN_FDS_START: RawFd = 3;

/// Descriptors already taken from systemd, so none is owned twice.
static TAKEN: Mutex<Vec<RawFd>> = Mutex::new(Vec::new());

/// The sockets this process inherited, as (descriptor, name), and whether they are vouched for
/// (a proven handover, or `LISTEN_PID` naming this process) rather than merely believed
/// (`LISTEN_FDS` alone, for `systemfd --no-pid`).
///
/// Only reads the environment (never changes it, which would race with other threads).
/// `LISTEN_PID`, when set, must be this process, so a variable meant for a parent is not obeyed
/// by a child; when it is not set at all, `LISTEN_FDS` is obeyed, as listenfd and
/// tokio-listener do, unless a handover's variables are there, meant for another process (a
/// successor's child). A handover is proven descriptor by descriptor
/// (crate::net::inherit::handover). A `LISTEN_FDS` that is not a count of descriptors this process
/// can have, or that does not match the names in `LISTEN_FDNAMES`, is a clear error, never a
/// loop, and then nothing is taken or closed.
pub(crate) fn inherited_fds() -> io::Result<(Vec<(RawFd, String)>, bool)> {
    let not_found = |what: String| io::Error::new(io::ErrorKind::NotFound, what);
    let pid = std::env::var("LISTEN_PID");
    let ours = pid
        .as_ref()
        .is_ok_and(|pid| pid.trim().parse::<u32>().ok() == Some(std::process::id()));
    if !ours {
        // A predecessor's handover (crate::net::handover) sets no LISTEN_PID: its own variable vouches.
        if let Some(handover) = crate::net::inherit::handover()? {
            return Ok((handover.sockets.clone(), true));
        }
    }
    let fds = std::env::var("LISTEN_FDS");
    match pid {
        Ok(pid) if !ours => {
            return Err(not_found(format!(
                "LISTEN_PID={} is not this process ({})",
                crate::desc::quote::quoted(&pid),
                std::process::id()
            )));
        }
        Ok(_) => {}
        Err(_) if fds.is_err() => {
            return Err(not_found(
                "LISTEN_PID and LISTEN_FDS are not set: not started by socket activation".into(),
            ))
        }
        Err(_) => log::debug!("LISTEN_PID is not set: taking LISTEN_FDS as meant for us"),
    }
    let fds = fds.map_err(|_| not_found("LISTEN_FDS is not set".into()))?;
    let count = listen_fds(&fds, sys::max_open_files())?;
    let names = match std::env::var("LISTEN_FDNAMES") {
        Ok(raw) => {
            let names = crate::net::inherit::split_names(&raw, false);
            // sd_listen_fds_with_names(3) refuses a mismatch too.
            if names.len() != count as usize && !(count == 0 && raw.is_empty()) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "LISTEN_FDS={count} but LISTEN_FDNAMES holds {} name(s): refused, no \
                         inherited descriptor is taken or closed",
                        names.len()
                    ),
                ));
            }
            names
        }
        Err(_) => vec![String::new(); count as usize],
    };
    let sockets = (LISTEN_FDS_START..).zip(names).collect();
    Ok((sockets, ours))
}

/// Takes the inherited socket named `name` (or the first one not taken yet): see
/// [`inherited_fds`].
pub(crate) fn take_systemd(name: Option<&str>) -> io::Result<Socket> {
    let not_found = |what: String| io::Error::new(io::ErrorKind::NotFound, what);
    let (sockets, _) = inherited_fds()?;
    let mut taken = TAKEN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let found = sockets
        .iter()
        .filter(|(fd, _)| !taken.contains(fd))
        .find(|(_, named)| name.is_none_or(|wanted| named == wanted));
    let Some((fd, _)) = found else {
        let names: Vec<&str> = sockets.iter().map(|(_, n)| n.as_str()).collect();
        return Err(not_found(match name {
            Some(wanted) => format!(
                "no socket named {} in LISTEN_FDNAMES ({})",
                crate::desc::quote::quoted(wanted),
                crate::desc::quote::quoted(&names.join(":"))
            ),
            None => format!("all {} LISTEN_FDS sockets are taken", sockets.len()),
        }));
    };
    let socket = sys::inherited_socket(*fd)?;
    taken.push(*fd);
    Ok(socket)
}

/// Whether the inherited descriptor `fd` was taken by a factory (crate::net::handover lists the rest).
pub(crate) fn is_taken(fd: RawFd) -> bool {
    TAKEN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .contains(&fd)
}

/// Records `fd` as taken unless it already is; true when this call took it (crate::net::handover
/// closes unclaimed sockets this way, so no factory takes one afterwards).
pub(crate) fn mark_taken(fd: RawFd) -> bool {
    let mut taken = TAKEN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if taken.contains(&fd) {
        return false;
    }
    taken.push(fd);
    true
}

/// The count in `LISTEN_FDS`, checked: a number from 0 up to what fits between descriptor 3 and
/// the process's descriptor limit `max_fds`.
fn listen_fds(text: &str, max_fds: u64) -> io::Result<RawFd> {
    let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidInput, what);
    let count: i64 = text.trim().parse().map_err(|_| {
        invalid(format!(
            "LISTEN_FDS={} is not a number",
            crate::desc::quote::quoted(text)
        ))
    })?;
    let most = max_fds.saturating_sub(LISTEN_FDS_START as u64);
    if count < 0 || count as u64 > most {
        return Err(invalid(format!(
            "LISTEN_FDS={count} is out of range: 0 to {most} (descriptors from {LISTEN_FDS_START} \
             up to this process's limit of {max_fds})"
        )));
    }
    Ok(count as RawFd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_fds_is_bounded_by_the_descriptor_limit() {
        assert_eq!(listen_fds("2", 1024).unwrap(), 2);
        assert_eq!(listen_fds(" 0 ", 1024).unwrap(), 0);
        assert_eq!(listen_fds("1021", 1024).unwrap(), 1021);
        for bad in ["1022", "2147483647", "99999999999999999999", "-1", "x", ""] {
            let error = listen_fds(bad, 1024).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{bad}: {error}");
        }
    }
}
