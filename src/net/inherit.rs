//! What a process inherited from the one that started it: the handover variable that vouches
//! for `LISTEN_FDS` in a successor, and the names in `LISTEN_FDNAMES`. Shared by adoption
//! (`adopt`, which takes the sockets) and the handover (`handover`, which passes them on).
//!
//! The variable is bound to the descriptors themselves, not to a parent: it carries the
//! identity (device and inode, as `fstat` reports them) of every socket passed and of the
//! readiness pipe. A process whose descriptors 3, 4, ... are exactly those is the successor,
//! whether or not the process that started it still lives; any other process that merely
//! inherited the variable (a process the successor starts, after the crate marked the sockets
//! close-on-exec) does not have them, and a count, name or identity that does not match is
//! refused as a whole: nothing is taken, nothing closed.

use std::io;
use std::os::fd::RawFd;
use std::sync::OnceLock;

use crate::sys::{self, DescId, DescKind};

/// The variable naming a handover's predecessor and what it passed:
/// `PID:FD:PIPE:SOCKETS[:STATE]`, the predecessor's process id, the descriptor (after the
/// sockets) the successor writes its readiness to, that pipe's identity, the identities of the
/// sockets on descriptors 3, 4, ... in order (comma-separated; each identity is `DEV-INODE`),
/// and the identity of the application state's pipe, on the descriptor after the readiness
/// pipe, when there is one.
pub const HANDOVER_VAR: &str = "ACTIX_SOCKET_FACTORY_HANDOVER";

/// The first descriptor of the sockets passed (SD_LISTEN_FDS_START).
pub(crate) const FIRST_FD: RawFd = 3;

/// More sockets than any handover passes: a larger `LISTEN_FDS` is not believed.
pub(crate) const MAX_FDS: RawFd = 4096;

/// A handover this process received, proven: every socket is on its descriptor with the
/// identity the predecessor gave.
#[derive(Debug)]
pub(crate) struct Handover {
    /// The predecessor's process id (for messages only: it may have exited since).
    pub(crate) predecessor: u32,
    /// The readiness pipe's descriptor and identity (checked again before it is written).
    pub(crate) ready_fd: RawFd,
    pub(crate) ready_id: DescId,
    /// The sockets: descriptor and name, in order.
    pub(crate) sockets: Vec<(RawFd, String)>,
    /// The application state's pipe, descriptor and identity (checked before it is read).
    pub(crate) state: Option<(RawFd, DescId)>,
}

/// Formats an identity for [`HANDOVER_VAR`].
pub(crate) fn format_id(id: &DescId) -> String {
    format!("{}-{}", id.dev, id.ino)
}

/// The value of [`HANDOVER_VAR`] for sockets with `sockets` identities and a readiness pipe.
pub(crate) fn format_var(
    predecessor: u32,
    ready_fd: RawFd,
    pipe: &DescId,
    sockets: &[DescId],
    state: Option<&DescId>,
) -> String {
    let ids: Vec<String> = sockets.iter().map(format_id).collect();
    let mut var = format!(
        "{predecessor}:{ready_fd}:{}:{}",
        format_id(pipe),
        ids.join(",")
    );
    if let Some(state) = state {
        var.push(':');
        var.push_str(&format_id(state));
    }
    var
}

fn parse_id(text: &str, kind: DescKind) -> Option<DescId> {
    let (dev, ino) = text.split_once('-')?;
    Some(DescId {
        dev: dev.parse().ok()?,
        ino: ino.parse().ok()?,
        kind,
    })
}

/// The handover this process received: `Ok(None)` without [`HANDOVER_VAR`], an error when it is
/// set but does not match what this process holds (read once; the answer never changes).
pub(crate) fn handover() -> io::Result<Option<&'static Handover>> {
    static STATE: OnceLock<Result<Option<Handover>, (io::ErrorKind, String)>> = OnceLock::new();
    match STATE.get_or_init(|| {
        let Some(value) = std::env::var_os(HANDOVER_VAR) else {
            return Ok(None);
        };
        let value = value.to_string_lossy().into_owned();
        let fds = std::env::var("LISTEN_FDS").ok();
        let names = std::env::var("LISTEN_FDNAMES").ok();
        let ids = |fd: RawFd| sys::desc_id(fd).ok();
        let proven = prove(&value, fds.as_deref(), names.as_deref(), ids);
        match &proven {
            Ok(handover) => {
                // Before anything else can start a process: these are ours alone now.
                for (fd, _) in &handover.sockets {
                    let _ = sys::set_cloexec(*fd);
                }
                if ids(handover.ready_fd) == Some(handover.ready_id) {
                    let _ = sys::set_cloexec(handover.ready_fd);
                }
                if let Some((fd, id)) = handover.state {
                    if ids(fd) == Some(id) {
                        let _ = sys::set_cloexec(fd);
                    }
                }
                log::debug!(
                    "handover: {} socket(s) proven inherited from {}",
                    handover.sockets.len(),
                    handover.predecessor
                );
            }
            Err(why) => log::warn!("handover: {why}"),
        }
        proven
            .map(Some)
            .map_err(|why| (io::ErrorKind::InvalidData, why))
    }) {
        Ok(handover) => Ok(handover.as_ref()),
        Err((kind, why)) => Err(io::Error::new(*kind, why.clone())),
    }
}

/// Checks a handover variable `value` against `LISTEN_FDS`, `LISTEN_FDNAMES` and the
/// descriptors this process holds (`id_of`): the handover, or why it is refused.
pub(crate) fn prove(
    value: &str,
    listen_fds: Option<&str>,
    listen_fdnames: Option<&str>,
    id_of: impl Fn(RawFd) -> Option<DescId>,
) -> Result<Handover, String> {
    let refused = |why: String| {
        format!("{HANDOVER_VAR} refused ({why}): no inherited descriptor is taken or closed")
    };
    let malformed = || refused(format!("{value:?} is malformed"));
    let mut fields = value.trim().splitn(6, ':');
    let (Some(pid), Some(ready), Some(pipe), Some(sockets), state, None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(malformed());
    };
    let predecessor: u32 = pid.parse().map_err(|_| malformed())?;
    let ready_fd: RawFd = ready.parse().map_err(|_| malformed())?;
    let ready_id = parse_id(pipe, DescKind::Pipe).ok_or_else(malformed)?;
    let state = match state {
        Some(state) => Some((
            ready_fd.saturating_add(1),
            parse_id(state, DescKind::Pipe).ok_or_else(malformed)?,
        )),
        None => None,
    };
    let ids: Vec<DescId> = if sockets.is_empty() {
        Vec::new()
    } else {
        sockets
            .split(',')
            .map(|id| parse_id(id, DescKind::Socket))
            .collect::<Option<_>>()
            .ok_or_else(malformed)?
    };
    let count = ids.len();
    if count > MAX_FDS as usize {
        return Err(refused(format!("{count} sockets is more than {MAX_FDS}")));
    }
    let declared = listen_fds.unwrap_or("");
    if declared.trim().parse::<usize>().ok() != Some(count) {
        return Err(refused(format!(
            "LISTEN_FDS={declared:?} but the predecessor passed {count} socket(s)"
        )));
    }
    let names = match listen_fdnames {
        Some(raw) if count > 0 => split_names(raw, true),
        Some("") | None if count == 0 => Vec::new(),
        _ => return Err(refused(format!("LISTEN_FDNAMES holds no {count} names"))),
    };
    if names.len() != count {
        return Err(refused(format!(
            "LISTEN_FDNAMES holds {} name(s) for {count} socket(s)",
            names.len()
        )));
    }
    if ready_fd != FIRST_FD + count as RawFd {
        return Err(refused(format!(
            "the readiness descriptor {ready_fd} is not the one after the {count} socket(s)"
        )));
    }
    let mut proven = Vec::with_capacity(count);
    for ((fd, id), name) in (FIRST_FD..).zip(&ids).zip(names) {
        match id_of(fd) {
            Some(found) if found == *id => proven.push((fd, name)),
            Some(_) => {
                return Err(refused(format!(
                    "descriptor {fd} is not the socket {name:?} the predecessor passed: the \
                     variable was meant for another process"
                )))
            }
            None => {
                return Err(refused(format!(
                    "descriptor {fd} ({name:?}) is not open: the variable was meant for \
                     another process"
                )))
            }
        }
    }
    Ok(Handover {
        predecessor,
        ready_fd,
        ready_id,
        sockets: proven,
        state,
    })
}

/// Whether this process was started by a handover
/// ([`Successor::spawn`](crate::handover::Successor::spawn)) and holds every socket passed: the
/// sockets in `LISTEN_FDS` are then vouched for by [`HANDOVER_VAR`] instead of `LISTEN_PID`,
/// whether or not the process that started it still lives.
pub fn is_successor() -> bool {
    matches!(handover(), Ok(Some(_)))
}

/// Splits `LISTEN_FDNAMES`; a handover's names are percent-decoded (systemd's are taken as
/// they are).
pub(crate) fn split_names(raw: &str, handed: bool) -> Vec<String> {
    raw.split(':')
        .map(|name| {
            if handed {
                decode_name(name)
            } else {
                name.to_owned()
            }
        })
        .collect()
}

pub(crate) fn decode_name(name: &str) -> String {
    // An encoded `%` is always `%25`, so `%3A` can only be an encoded `:`; `%25` goes last.
    name.replace("%3A", ":").replace("%25", "%")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ino: u64, kind: DescKind) -> DescId {
        DescId { dev: 9, ino, kind }
    }

    #[test]
    fn a_handover_is_proven_by_every_descriptor_or_refused_whole() {
        let sockets = [id(100, DescKind::Socket), id(101, DescKind::Socket)];
        let pipe = id(7, DescKind::Pipe);
        let var = format_var(42, 5, &pipe, &sockets, None);
        let held = |fd: RawFd| match fd {
            3 => Some(sockets[0]),
            4 => Some(sockets[1]),
            5 => Some(pipe),
            _ => None,
        };
        let proven = prove(&var, Some("2"), Some("a:b%3Ac"), held).expect("proven");
        assert_eq!(proven.predecessor, 42);
        assert_eq!(proven.ready_fd, 5);
        assert_eq!(proven.ready_id, pipe);
        assert_eq!(proven.sockets, vec![(3, "a".into()), (4, "b:c".into())]);

        // More LISTEN_FDS than sockets passed, fewer, or names that do not match the count.
        for (fds, names) in [
            (Some("5"), Some("a:b")),
            (Some("1"), Some("a:b")),
            (None, Some("a:b")),
            (Some("2"), Some("a:b:c")),
            (Some("2"), Some("a")),
            (Some("2"), None),
        ] {
            let why = prove(&var, fds, names, held).expect_err("a mismatch");
            assert!(why.contains("refused"), "{why}");
        }
        // A descriptor replaced or closed: the variable is another process's.
        let replaced = |fd: RawFd| {
            if fd == 4 {
                Some(id(555, DescKind::Socket))
            } else {
                held(fd)
            }
        };
        assert!(prove(&var, Some("2"), Some("a:b"), replaced).is_err());
        let closed = |fd: RawFd| if fd == 3 { None } else { held(fd) };
        assert!(prove(&var, Some("2"), Some("a:b"), closed).is_err());
        // Malformed values.
        for bad in [
            "",
            "42",
            "42:5",
            "x:5:9-7:",
            "42:5:9-7:9",
            "42:6:9-7:9-100,9-101",
        ] {
            assert!(prove(bad, Some("2"), Some("a:b"), held).is_err(), "{bad}");
        }
        // No socket at all is a handover too (the pipe alone).
        let empty = format_var(42, 3, &pipe, &[], None);
        let proven = prove(&empty, Some("0"), Some(""), |_| None).expect("nothing passed");
        assert!(proven.sockets.is_empty());
        // With a state pipe, on the descriptor after the readiness pipe.
        let state = id(8, DescKind::Pipe);
        let var = format_var(42, 5, &pipe, &sockets, Some(&state));
        let proven = prove(&var, Some("2"), Some("a:b"), held).expect("proven");
        assert_eq!(proven.state, Some((6, state)));
    }
}
