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

/// `accept4(2)` with `SOCK_NONBLOCK | SOCK_CLOEXEC`, on the systems that have it, and the
/// peer's IP address (`None` for other families). The address is read straight from the
/// storage the kernel filled: no zeroed `sockaddr_storage` and no `SockAddr` copied per client.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
fn accept4(listener: &Socket) -> io::Result<(Socket, Option<std::net::SocketAddr>)> {
    use std::os::fd::FromRawFd;
    let mut storage = std::mem::MaybeUninit::<libc::sockaddr_storage>::uninit();
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let flags = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: accept4 writes at most `len` bytes of address into the storage we own and sets
    // `len` to the address's length.
    let raw = unsafe {
        libc::accept4(
            listener.as_raw_fd(),
            storage.as_mut_ptr().cast(),
            &mut len,
            flags,
        )
    };
    if raw == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: accept4 returned a fresh descriptor that nothing else owns.
    let socket = unsafe { Socket::from_raw_fd(raw) };
    // SAFETY: the kernel wrote the first `len` bytes of the storage; `inet_address` reads no
    // more than that.
    let peer = unsafe { inet_address(storage.as_ptr(), len) };
    Ok((socket, peer))
}

/// The IPv4 or IPv6 address in the first `len` bytes of `storage`, as socket2's `as_socket`
/// reads it; `None` for another family or a shorter address.
///
/// # Safety
/// The first `len` bytes of `storage` must be initialized (written by the kernel).
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
unsafe fn inet_address(
    storage: *const libc::sockaddr_storage,
    len: libc::socklen_t,
) -> Option<std::net::SocketAddr> {
    use std::mem::size_of;
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
    let len = len as usize;
    if len < size_of::<libc::sockaddr_in>() {
        return None;
    }
    // SAFETY (all reads below): the family lies within the first bytes of any address, and each
    // struct is read only when `len` covers it; the storage is aligned for every sockaddr type.
    match i32::from(unsafe { (*storage).ss_family }) {
        libc::AF_INET => {
            let addr = unsafe { &*storage.cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr));
            Some(SocketAddrV4::new(ip, u16::from_be(addr.sin_port)).into())
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            let addr = unsafe { &*storage.cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(addr.sin6_addr.s6_addr);
            let port = u16::from_be(addr.sin6_port);
            Some(SocketAddrV6::new(ip, port, addr.sin6_flowinfo, addr.sin6_scope_id).into())
        }
        _ => None,
    }
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

// ---- Handover identities (issue 24): proving an inherited descriptor is the one passed ----
// Unix-portable (fstat, fcntl); kept together so a split of this file by platform moves it whole.

/// What a descriptor refers to, as `fstat(2)` sees it: the device and inode of the socket or
/// pipe, which a duplicate (`dup`, `fork`, `exec`) shares and nothing else has while it is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DescId {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) kind: DescKind,
}

/// The kind of object a descriptor refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DescKind {
    Socket,
    Pipe,
    Other,
}

/// The identity of the open descriptor `fd` (`EBADF` when it is not open).
pub(crate) fn desc_id(fd: std::os::fd::RawFd) -> io::Result<DescId> {
    // SAFETY: fstat only writes into the stat buffer we own; a bad descriptor is an error.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut stat) } == -1 {
        return Err(io::Error::last_os_error());
    }
    let kind = match stat.st_mode & libc::S_IFMT {
        libc::S_IFSOCK => DescKind::Socket,
        libc::S_IFIFO => DescKind::Pipe,
        _ => DescKind::Other,
    };
    #[allow(clippy::unnecessary_cast)] // dev_t and ino_t are not u64 everywhere
    Ok(DescId {
        dev: stat.st_dev as u64,
        ino: stat.st_ino as u64,
        kind,
    })
}

/// Marks `fd` close-on-exec, without taking it.
pub(crate) fn set_cloexec(fd: std::os::fd::RawFd) -> io::Result<()> {
    // SAFETY: F_SETFD only changes the descriptor's flags; a bad descriptor is an error.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Takes ownership of the write end of a handover's readiness pipe, inherited as `fd`, after
/// proving it is the very pipe the predecessor made (`expected`, from the handover variable):
/// anything else at that number (the program's own pipe, after the inherited one was closed)
/// is neither written nor closed. Makes it close-on-exec so no process we start inherits it.
pub(crate) fn inherited_pipe(
    fd: std::os::fd::RawFd,
    expected: DescId,
    what: &str,
) -> io::Result<std::fs::File> {
    use std::os::fd::FromRawFd;
    let found = desc_id(fd).map_err(|error| {
        io::Error::new(
            error.kind(),
            format!("the {what} descriptor {fd} is gone: {error}"),
        )
    })?;
    if found != expected || expected.kind != DescKind::Pipe {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "descriptor {fd} is not the {what} the predecessor passed (it was closed and its \
                 number reused): neither used nor closed"
            ),
        ));
    }
    set_cloexec(fd)?;
    // SAFETY: the descriptor is open and is the predecessor's pipe (its identity checked just
    // above); handover::ready takes it once (a static flag), so nothing else owns it.
    Ok(unsafe { std::fs::File::from_raw_fd(fd) })
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

// ---- systemd notify (issue 24): the monotonic clock sd_notify's RELOADING=1 wants ----

/// `CLOCK_MONOTONIC` in microseconds (`MONOTONIC_USEC=` of sd_notify(3)).
pub(crate) fn monotonic_usec() -> u64 {
    // SAFETY: clock_gettime only writes into the timespec we own.
    let mut now: libc::timespec = unsafe { std::mem::zeroed() };
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) } == -1 {
        return 0;
    }
    #[allow(clippy::unnecessary_cast)] // time_t and c_long are not i64 everywhere
    (now.tv_sec as u64)
        .saturating_mul(1_000_000)
        .saturating_add(now.tv_nsec as u64 / 1_000)
}

// ---- Handover to an unrelated process (issue 24): descriptors over a UNIX socket ----
// SCM_RIGHTS is POSIX; only MSG_CMSG_CLOEXEC is not everywhere (elsewhere close-on-exec is set
// just after receiving, a narrow window in which a concurrent exec could inherit them).

/// The most descriptors one handover message carries (Linux's SCM_MAX_FD).
pub(crate) const MAX_PASSED_FDS: usize = 253;

/// `sendmsg(2)` of `data` with `fds` attached (`SCM_RIGHTS`) on the UNIX stream `socket`.
/// `WouldBlock` when the socket is non-blocking and full (nothing was sent).
pub(crate) fn send_with_fds(
    socket: std::os::fd::RawFd,
    data: &[u8],
    fds: &[std::os::fd::RawFd],
) -> io::Result<usize> {
    if fds.len() > MAX_PASSED_FDS || data.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} descriptors with {} bytes: at most {MAX_PASSED_FDS}, with data",
                fds.len(),
                data.len()
            ),
        ));
    }
    let fd_bytes = std::mem::size_of_val(fds) as libc::c_uint;
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(fd_bytes) } as usize;
    // u64 words: aligned for cmsghdr.
    let mut control = vec![0u64; space.div_ceil(8).max(1)];
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain data; every pointer set below points into buffers that outlive
    // the sendmsg call; CMSG_FIRSTHDR/CMSG_DATA stay inside `control`, which is CMSG_SPACE
    // bytes long, and the copy writes exactly `fd_bytes` there.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if !fds.is_empty() {
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = space as _;
            let header = libc::CMSG_FIRSTHDR(&msg);
            (*header).cmsg_level = libc::SOL_SOCKET;
            (*header).cmsg_type = libc::SCM_RIGHTS;
            (*header).cmsg_len = libc::CMSG_LEN(fd_bytes) as _;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr().cast::<u8>(),
                libc::CMSG_DATA(header),
                fd_bytes as usize,
            );
        }
        loop {
            let sent = libc::sendmsg(socket, &msg, MSG_NOSIGNAL);
            if sent >= 0 {
                return Ok(sent as usize);
            }
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(error);
            }
        }
    }
}

/// `recvmsg(2)` on the UNIX stream `socket` into `buf`, taking the descriptors attached
/// (`SCM_RIGHTS`, at most [`MAX_PASSED_FDS`]), each close-on-exec and owned. An error when
/// the descriptors were cut short (`MSG_CTRUNC`; those received are closed).
pub(crate) fn recv_with_fds(
    socket: std::os::fd::RawFd,
    buf: &mut [u8],
) -> io::Result<(usize, Vec<std::os::fd::OwnedFd>)> {
    use std::os::fd::FromRawFd;
    let most = (MAX_PASSED_FDS * std::mem::size_of::<libc::c_int>()) as libc::c_uint;
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(most) } as usize;
    let mut control = vec![0u64; space.div_ceil(8)];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    #[cfg(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "dragonfly"
    ))]
    let flags = libc::MSG_CMSG_CLOEXEC;
    #[cfg(not(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "dragonfly"
    )))]
    let flags = 0;
    // SAFETY: as in send_with_fds: the msghdr points into buffers that outlive the call; the
    // kernel writes at most msg_controllen bytes of control data; each header walked with
    // CMSG_NXTHDR lies inside it, and its descriptors are read (unaligned) from CMSG_DATA up to
    // its cmsg_len. Each descriptor received is new in this process and owned by nothing else.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        let received = loop {
            let received = libc::recvmsg(socket, &mut msg, flags);
            if received >= 0 {
                break received as usize;
            }
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(error);
            }
        };
        let mut fds = Vec::new();
        let mut header = libc::CMSG_FIRSTHDR(&msg);
        while !header.is_null() {
            if (*header).cmsg_level == libc::SOL_SOCKET && (*header).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(header);
                let bytes = (*header).cmsg_len as usize - (data as usize - header as usize);
                let count = bytes / std::mem::size_of::<libc::c_int>();
                for i in 0..count {
                    let fd = std::ptr::read_unaligned(data.cast::<libc::c_int>().add(i));
                    fds.push(std::os::fd::OwnedFd::from_raw_fd(fd));
                }
            }
            header = libc::CMSG_NXTHDR(&msg, header);
        }
        for fd in &fds {
            set_cloexec(std::os::fd::AsRawFd::as_raw_fd(fd))?;
        }
        if msg.msg_flags & libc::MSG_CTRUNC != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the descriptors passed were cut short (MSG_CTRUNC): refused, all closed",
            ));
        }
        Ok((received, fds))
    }
}

/// This process's effective user id.
pub(crate) fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// `MSG_NOSIGNAL` where it exists (a peer gone is `EPIPE`, not `SIGPIPE`); elsewhere Rust's
/// runtime already ignores `SIGPIPE`.
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly",
    target_os = "illumos"
))]
const MSG_NOSIGNAL: libc::c_int = libc::MSG_NOSIGNAL;
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly",
    target_os = "illumos"
)))]
const MSG_NOSIGNAL: libc::c_int = 0;

/// Sends `SIGTERM` to `child` (not reaped yet, so its pid is still its own); whether it was sent.
pub(crate) fn terminate(child: &std::process::Child) -> bool {
    let Ok(pid) = libc::pid_t::try_from(child.id()) else {
        return false;
    };
    // SAFETY: kill only sends a signal; the pid is our unreaped child's, which cannot be reused.
    unsafe { libc::kill(pid, libc::SIGTERM) == 0 }
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
