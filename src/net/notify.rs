//! The systemd notify protocol (sd_notify(3)) for a handover: where `NOTIFY_SOCKET` is set,
//! `RELOADING=1` when an upgrade starts, then `MAINPID=<successor>` and `READY=1` once the
//! successor serves for good (or `MAINPID=<this process>` and `READY=1` when the upgrade
//! failed or was rolled back), so systemd follows the service into its new process instead of
//! taking it for dead when the old one exits.

use std::io;
use std::os::unix::net::UnixDatagram;

use crate::sys;

/// Sends `state` (lines of `KEY=VALUE`) to the service manager's socket in `NOTIFY_SOCKET`: a
/// path, or `@name` for a Linux abstract socket. `Ok(false)` when the variable is not set.
///
/// # Errors
/// When the socket cannot be reached.
pub fn notify(state: &str) -> io::Result<bool> {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let socket = UnixDatagram::unbound()?;
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(target.as_os_str());
    match bytes.strip_prefix(b"@") {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        Some(name) => {
            #[cfg(target_os = "android")]
            use std::os::android::net::SocketAddrExt;
            #[cfg(target_os = "linux")]
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            socket.send_to_addr(state.as_bytes(), &addr)?;
        }
        _ => {
            socket.send_to(state.as_bytes(), &target)?;
        }
    }
    Ok(true)
}

/// [`notify`], logging a failure instead of returning it (a handover goes on without systemd).
pub(crate) fn send(state: &str) {
    match notify(state) {
        Ok(true) => log::debug!("handover: told systemd {:?}", state.replace('\n', " ")),
        Ok(false) => {}
        Err(error) => log::warn!("handover: cannot tell systemd {state:?}: {error}"),
    }
}

/// `RELOADING=1`, with the `MONOTONIC_USEC` systemd asks for alongside it.
pub(crate) fn reloading() {
    send(&format!(
        "RELOADING=1\nMONOTONIC_USEC={}",
        sys::monotonic_usec()
    ));
}
