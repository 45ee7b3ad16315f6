//! The few system calls socket2 and tokio lack, each in one small function. All `unsafe` in the
//! crate lives here.

use std::io;
use std::os::fd::AsRawFd;

use socket2::{SockAddr, Socket};

/// `accept4(2)` with `SOCK_NONBLOCK | SOCK_CLOEXEC`: one system call makes the delivered socket
/// ready for any runtime, where socket2's `accept` would need a second one (`fcntl`) per client.
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly",
    target_os = "illumos"
))]
pub(crate) fn accept(listener: &Socket) -> io::Result<(Socket, SockAddr)> {
    use std::os::fd::FromRawFd;
    let fd = listener.as_raw_fd();
    // SAFETY: `try_init` hands us storage and its length to fill; accept4 writes at most `len`
    // bytes into it and updates `len`, which is the contract try_init requires.
    let (raw, addr) = unsafe {
        SockAddr::try_init(|storage, len| {
            let flags = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
            match libc::accept4(fd, storage.cast(), len, flags) {
                -1 => Err(io::Error::last_os_error()),
                raw => Ok(raw),
            }
        })?
    };
    // SAFETY: accept4 returned a fresh descriptor that nothing else owns.
    Ok((unsafe { Socket::from_raw_fd(raw) }, addr))
}

/// Where `accept4` is missing: socket2's `accept` (close-on-exec) and a second call for
/// non-blocking.
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly",
    target_os = "illumos"
)))]
pub(crate) fn accept(listener: &Socket) -> io::Result<(Socket, SockAddr)> {
    let (socket, addr) = listener.accept()?;
    socket.set_nonblocking(true)?;
    Ok((socket, addr))
}

/// `fchmod(2)` on an unbound UNIX socket. On Linux the file `bind(2)` makes takes its mode from
/// the socket's inode (less the umask), so setting it first leaves no moment where the file is
/// more open than asked (the seastar#2051 race of chmod-after-bind).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn fchmod(socket: &Socket, mode: u32) -> io::Result<()> {
    // SAFETY: fchmod reads no memory of ours; the descriptor is valid for `socket`'s lifetime.
    match unsafe { libc::fchmod(socket.as_raw_fd(), mode as libc::mode_t) } {
        -1 => Err(io::Error::last_os_error()),
        _ => Ok(()),
    }
}

/// `fchmodat(2)` with `AT_SYMLINK_NOFOLLOW`: changes the mode of the file at `path` itself,
/// never of what a symlink there points to.
///
/// # Errors
/// `EOPNOTSUPP` (or `ENOTSUP`) when the path is a symlink, or when the C library cannot do it
/// safely (glibc before 2.32, or without `/proc`); the caller decides what to do then.
pub(crate) fn chmod_nofollow(path: &std::path::Path, mode: u32) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
    // SAFETY: `path` is a NUL-terminated string that outlives the call, which only reads it.
    let done = unsafe {
        libc::fchmodat(
            libc::AT_FDCWD,
            path.as_ptr(),
            mode as libc::mode_t,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    match done {
        -1 => {
            let error = io::Error::last_os_error();
            match error.raw_os_error() {
                // One answer for "cannot do it without following", whatever the platform's spelling.
                Some(libc::ENOTSUP) => Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP)),
                _ => Err(error),
            }
        }
        _ => Ok(()),
    }
}

/// Registers `socket` with the current tokio runtime's reactor.
///
/// The caller is on an Arbiter (a tokio runtime with I/O enabled), so the reactor is there.
pub(crate) fn register(
    socket: Socket,
    interest: tokio::io::Interest,
) -> io::Result<tokio::io::unix::AsyncFd<Socket>> {
    // SAFETY: a socket2::Socket owns its descriptor, keeps it open until dropped and always
    // returns the same one from as_raw_fd, which is what registration requires.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(socket, interest) }
        .map_err(io::Error::from)
}
