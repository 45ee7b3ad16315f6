//! The few system calls socket2 and tokio lack, each in one small function, and every place
//! where the platforms differ. All `unsafe` in the crate lives here.
//!
//! This file holds what is the same on every Unix. The platform files hold the rest, each with
//! the same names, so the layers above never test the platform:
//! - `linux.rs` (Linux, Android): what the test suite runs.
//! - `bsd.rs` (FreeBSD, macOS and any other Unix): the BSD sockets API, with FreeBSD's
//!   extensions (`accept4`, `pipe2`, `SOCK_NONBLOCK`, `SO_REUSEPORT_LB`, `SO_DOMAIN`) where it has
//!   them; compiled and linted for FreeBSD and macOS by `.ci/run`, not run.
//!
//! The contract, which both keep:
//! - `socket`, `accept`, `pipe`: new descriptors are close-on-exec, sockets non-blocking.
//! - `domain`, `is_listener`: an adopted socket's family and whether it listens.
//! - `set_reuse_port` and `REUSE_PORT_BALANCES`: share an address; whether the kernel spreads
//!   connections across the sockets sharing it.
//! - `peer_credentials`: the peer of a UNIX stream (with a process id on Linux only).
//! - `set_mode_before_bind`, `DIR_FLAGS`, `Pin` and `pin_file`: a socket file's mode and identity.
//! - `is_enonet`: errors one platform alone returns from `accept(2)`.
//! - `somaxconn`: the live listen-queue limit, where the system tells it.
//!
//! The "Platforms" section of the README lists each difference as users meet it.

use std::io;
use std::os::fd::AsRawFd;

use socket2::Socket;

#[cfg(any(target_os = "linux", target_os = "android"))]
mod linux;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) use linux::*;

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod bsd;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) use bsd::*;

/// `accept4(2)` with `SOCK_NONBLOCK | SOCK_CLOEXEC`, on the systems that have it.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
fn accept4(listener: &Socket) -> io::Result<(Socket, socket2::SockAddr)> {
    use std::os::fd::FromRawFd;
    let fd = listener.as_raw_fd();
    // SAFETY: `try_init` hands us storage and its length to fill; accept4 writes at most `len`
    // bytes into it and updates `len`, which is the contract try_init requires.
    let (raw, addr) = unsafe {
        socket2::SockAddr::try_init(|storage, len| {
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

/// `pipe2(2)` with `O_CLOEXEC`, on the systems that have it.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
fn pipe2() -> io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut fds: [libc::c_int; 2] = [-1; 2];
    // SAFETY: pipe2 writes two descriptors into the array we own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors are fresh and owned by nothing else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Whether a stream socket listens: `SO_ACCEPTCONN` (POSIX; socket2 reads it on Linux and
/// FreeBSD only).
pub(crate) fn is_listener(socket: &Socket) -> io::Result<bool> {
    int_option(socket, libc::SOL_SOCKET, libc::SO_ACCEPTCONN).map(|on| on != 0)
}

/// The family of the socket's local address (`getsockname(2)`), which an unbound socket reports
/// too: where there is no `SO_DOMAIN`. Compiled everywhere so the Linux tests compare it with
/// `SO_DOMAIN`.
#[cfg_attr(any(target_os = "linux", target_os = "android"), allow(dead_code))]
fn address_family(socket: &Socket) -> io::Result<socket2::Domain> {
    Ok(socket.local_addr()?.domain())
}

/// An `int` socket option (`getsockopt(2)`), for the options socket2 does not read on every
/// platform.
fn int_option(socket: &Socket, level: libc::c_int, name: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `value`, an int as these options expect.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(value)
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

/// Takes ownership of a descriptor inherited from the parent (systemd socket activation),
/// after checking it is an open socket.
pub(crate) fn inherited_socket(fd: std::os::fd::RawFd) -> io::Result<Socket> {
    use std::os::fd::FromRawFd;
    // SAFETY: fstat only writes into the stat buffer we own.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut stat) } == -1 {
        return Err(io::Error::last_os_error());
    }
    if stat.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("inherited descriptor {fd} is not a socket"),
        ));
    }
    // SAFETY: the descriptor is open and a socket (checked above); systemd hands it to this
    // process and adopt::take_systemd records each one it takes, so nothing else owns it.
    let socket = unsafe { Socket::from_raw_fd(fd) };
    socket.set_cloexec(true)?;
    Ok(socket)
}

/// A file's identity as `fstatat(2)` with `AT_SYMLINK_NOFOLLOW` sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileId {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) socket: bool,
}

fn c_name(name: &std::ffi::OsStr) -> io::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(name.as_bytes())
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))
}

/// `fstatat(2)` of `name` in the directory `dir`, never following a symlink.
pub(crate) fn stat_at(dir: &impl AsRawFd, name: &std::ffi::OsStr) -> io::Result<FileId> {
    let name = c_name(name)?;
    // SAFETY: fstatat reads the NUL-terminated name and writes only into the stat buffer we own.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    let done = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &mut stat,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if done == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(FileId {
        dev: stat.st_dev as u64,
        ino: stat.st_ino as u64,
        socket: stat.st_mode & libc::S_IFMT == libc::S_IFSOCK,
    })
}

/// `unlinkat(2)` of `name` in the directory `dir` (a symlink is removed itself, never its
/// target).
pub(crate) fn unlink_at(dir: &impl AsRawFd, name: &std::ffi::OsStr) -> io::Result<()> {
    let name = c_name(name)?;
    // SAFETY: unlinkat only reads the NUL-terminated name.
    match unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) } {
        -1 => Err(io::Error::last_os_error()),
        _ => Ok(()),
    }
}

/// `flock(2)` `LOCK_EX | LOCK_NB`: `Ok(false)` when another open file holds the lock.
pub(crate) fn try_lock_exclusive(file: &impl AsRawFd) -> io::Result<bool> {
    // SAFETY: flock reads no memory of ours.
    match unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } {
        -1 => {
            let error = io::Error::last_os_error();
            if error.raw_os_error() == Some(libc::EWOULDBLOCK) {
                Ok(false)
            } else {
                Err(error)
            }
        }
        _ => Ok(true),
    }
}

/// The process's descriptor limit (`RLIMIT_NOFILE`'s soft value), capped to what an `int`
/// descriptor can be.
pub(crate) fn max_open_files() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only into the rlimit we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == -1 {
        return 1024;
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 everywhere
    let soft = limit.rlim_cur as u64;
    soft.min(i32::MAX as u64)
}

// ---- Handover (crate::net::handover): descriptors passed to a new process ----

/// Makes the child of `command` inherit `fds`, in order, as descriptors 3, 4, ... without
/// close-on-exec; every other descriptor of ours stays close-on-exec as it is.
///
/// In the forked child each source is first copied above the target range (`F_DUPFD_CLOEXEC`,
/// so a source already sitting on a target number is not overwritten before it is placed), then
/// `dup2`'d onto its target, which clears close-on-exec on the target only. Only
/// async-signal-safe calls run between fork and exec, and nothing allocates there: the scratch
/// space is made here, before the fork.
pub(crate) fn inherit_at_3(command: &mut std::process::Command, fds: Vec<std::os::fd::RawFd>) {
    use std::os::unix::process::CommandExt;
    const FIRST: libc::c_int = 3;
    let mut scratch: Vec<libc::c_int> = vec![-1; fds.len()];
    let above = FIRST + fds.len() as libc::c_int;
    // SAFETY: the closure runs in the forked child before exec and only calls fcntl and dup2,
    // which are async-signal-safe, on descriptors the parent keeps open until spawn returns;
    // it reads and writes the two vectors allocated above and allocates nothing.
    unsafe {
        command.pre_exec(move || {
            for (copy, &fd) in scratch.iter_mut().zip(&fds) {
                *copy = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, above);
                if *copy == -1 {
                    return Err(io::Error::last_os_error());
                }
            }
            for (target, &copy) in (FIRST..).zip(scratch.iter()) {
                if libc::dup2(copy, target) == -1 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Takes ownership of the write end of a handover's readiness pipe, inherited as `fd`, after
/// checking it is an open pipe; makes it close-on-exec so no process we start inherits it.
pub(crate) fn inherited_pipe(fd: std::os::fd::RawFd) -> io::Result<std::fs::File> {
    use std::os::fd::FromRawFd;
    // SAFETY: fstat only writes into the stat buffer we own.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut stat) } == -1 {
        return Err(io::Error::last_os_error());
    }
    if stat.st_mode & libc::S_IFMT != libc::S_IFIFO {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("inherited descriptor {fd} is not a pipe"),
        ));
    }
    // SAFETY: the descriptor is an open pipe (checked above) that the predecessor placed for this
    // process; handover::ready takes it once (a static flag), so nothing else owns it.
    let file = unsafe { std::fs::File::from_raw_fd(fd) };
    // SAFETY: F_SETFD only changes the descriptor's flags.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(file)
}

/// Marks an inherited descriptor close-on-exec if it is a pipe, without taking it: keeps a
/// handover's readiness pipe from leaking into processes the successor starts before it is
/// ready.
pub(crate) fn cloexec_if_pipe(fd: std::os::fd::RawFd) {
    // SAFETY: fstat only writes into the stat buffer we own; F_SETFD only changes flags.
    unsafe {
        let mut stat: libc::stat = std::mem::zeroed();
        if libc::fstat(fd, &mut stat) == 0 && stat.st_mode & libc::S_IFMT == libc::S_IFIFO {
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
    }
}

/// `recv(2)` with `MSG_PEEK`: copies what the socket has queued into `buf` without taking it, so
/// a PROXY protocol header can be measured before exactly its bytes are read. Retries `EINTR`.
#[cfg(feature = "proxy-protocol")]
pub(crate) fn peek(socket: &Socket, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: recv writes at most `buf.len()` bytes into `buf`, which we own mutably.
        let n = unsafe {
            libc::recv(
                socket.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_PEEK,
            )
        };
        if n >= 0 {
            // Non-negative and at most buf.len(): the conversion cannot fail.
            return Ok(usize::try_from(n).unwrap_or(0));
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use socket2::{Domain, Type};

    /// The fallbacks other systems use, checked against what Linux's kernel records: the family
    /// of the local address against `SO_DOMAIN`, bound or not, and `SO_ACCEPTCONN` read here
    /// against socket2's reading.
    #[test]
    fn portable_family_and_listening_agree_with_the_kernels_record() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("s");
        let cases = [
            (
                Domain::IPV4,
                Type::STREAM,
                Some(socket2::SockAddr::from(std::net::SocketAddr::from((
                    [127, 0, 0, 1],
                    0,
                )))),
            ),
            (Domain::IPV6, Type::DGRAM, None),
            (
                Domain::IPV6,
                Type::STREAM,
                Some(socket2::SockAddr::from(std::net::SocketAddr::from((
                    std::net::Ipv6Addr::LOCALHOST,
                    0,
                )))),
            ),
            (Domain::UNIX, Type::DGRAM, None),
            (
                Domain::UNIX,
                Type::STREAM,
                Some(socket2::SockAddr::unix(&path).expect("path")),
            ),
        ];
        for (family, ty, bind) in cases {
            let Ok(socket) = Socket::new(family, ty, None) else {
                continue; // no IPv6 on this machine
            };
            if let Some(addr) = &bind {
                if socket.bind(addr).is_err() {
                    continue;
                }
            }
            assert_eq!(address_family(&socket).expect("getsockname"), family);
            assert!(!is_listener(&socket).expect("SO_ACCEPTCONN"));
            if bind.is_some() && ty == Type::STREAM {
                socket.listen(1).expect("listen");
                assert!(is_listener(&socket).expect("SO_ACCEPTCONN"));
            }
            #[cfg(any(target_os = "linux", target_os = "android"))]
            {
                assert_eq!(domain(&socket).expect("SO_DOMAIN"), family);
                assert_eq!(is_listener(&socket).unwrap(), socket.is_listener().unwrap());
            }
        }
    }
}
