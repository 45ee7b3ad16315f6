//! What a process inherited from the one that started it: the handover variable that vouches
//! for `LISTEN_FDS` in a successor, and the names in `LISTEN_FDNAMES`. Shared by adoption
//! (`adopt`, which takes the sockets) and the handover (`handover`, which passes them on).

use std::os::fd::RawFd;
use std::sync::Once;

use crate::sys;

/// The variable naming a handover's predecessor and readiness pipe: `PID:FD`, the predecessor's
/// process id and the descriptor (after the sockets) the successor writes its readiness to.
pub const HANDOVER_VAR: &str = "ACTIX_SOCKET_FACTORY_HANDOVER";

/// The first descriptor of the sockets passed (SD_LISTEN_FDS_START).
pub(crate) const FIRST_FD: RawFd = 3;

/// More sockets than any handover passes: a larger `LISTEN_FDS` is not believed.
pub(crate) const MAX_FDS: RawFd = 4096;

/// The predecessor's pid and the readiness descriptor, when this process is a handover's
/// successor: the variable is set and names our parent.
pub(crate) fn handover_var() -> Option<(u32, RawFd)> {
    let value = std::env::var(HANDOVER_VAR).ok()?;
    let (pid, fd) = value.trim().split_once(':')?;
    let pid: u32 = pid.parse().ok()?;
    let fd: RawFd = fd.parse().ok()?;
    if pid != std::os::unix::process::parent_id() || !(FIRST_FD..=FIRST_FD + MAX_FDS).contains(&fd)
    {
        return None;
    }
    static CLOEXEC: Once = Once::new();
    // Before anything else can start a process: the pipe is ours alone.
    CLOEXEC.call_once(|| sys::cloexec_if_pipe(fd));
    Some((pid, fd))
}

/// Whether this process was started by a handover ([`Successor::spawn`](crate::handover::Successor::spawn)) from its parent: the
/// sockets in `LISTEN_FDS` are then vouched for by [`HANDOVER_VAR`] instead of `LISTEN_PID`.
pub fn is_successor() -> bool {
    handover_var().is_some()
}

pub(crate) fn handed_over() -> bool {
    is_successor()
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
