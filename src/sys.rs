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

/// The credentials of the process at the other end of a UNIX stream: `SO_PEERCRED`, taken by
/// the kernel at `connect`/`listen` time, so they cannot be forged by the peer afterwards.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn peer_credentials(socket: &Socket) -> io::Result<crate::desc::addr::PeerCredentials> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cred`, a ucred as SO_PEERCRED expects.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(crate::desc::addr::PeerCredentials {
        uid: cred.uid,
        gid: cred.gid,
        pid: (cred.pid > 0).then_some(cred.pid),
    })
}

/// `getpeereid(3)` where `SO_PEERCRED` is missing: no process id.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn peer_credentials(socket: &Socket) -> io::Result<crate::desc::addr::PeerCredentials> {
    let mut uid = 0;
    let mut gid = 0;
    // SAFETY: getpeereid writes one uid and one gid into the two locals.
    if unsafe { libc::getpeereid(socket.as_raw_fd(), &mut uid, &mut gid) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(crate::desc::addr::PeerCredentials {
        uid,
        gid,
        pid: None,
    })
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

/// `openat(2)` of `name` in `dir` with `O_PATH | O_NOFOLLOW`: a descriptor of the file itself
/// (a socket cannot be opened for I/O), which pins its inode.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn open_path_at(
    dir: &impl AsRawFd,
    name: &std::ffi::OsStr,
) -> io::Result<std::fs::File> {
    use std::os::fd::FromRawFd;
    let name = c_name(name)?;
    let flags = libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: openat only reads the NUL-terminated name.
    match unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags) } {
        -1 => Err(io::Error::last_os_error()),
        // SAFETY: a fresh descriptor that nothing else owns.
        fd => Ok(unsafe { std::fs::File::from_raw_fd(fd) }),
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

/// A pipe, both ends close-on-exec: the readiness channel of a handover.
pub(crate) fn pipe() -> io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use std::os::fd::FromRawFd;
    let mut fds: [libc::c_int; 2] = [-1; 2];
    #[cfg(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "dragonfly",
        target_os = "illumos"
    ))]
    // SAFETY: pipe2 writes two descriptors into the array we own.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    #[cfg(not(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "dragonfly",
        target_os = "illumos"
    )))]
    // SAFETY: pipe writes two descriptors into the array we own; fcntl only sets their flags.
    let rc = unsafe {
        let rc = libc::pipe(fds.as_mut_ptr());
        if rc == 0 {
            libc::fcntl(fds[0], libc::F_SETFD, libc::FD_CLOEXEC);
            libc::fcntl(fds[1], libc::F_SETFD, libc::FD_CLOEXEC);
        }
        rc
    };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors are fresh and owned by nothing else.
    Ok(unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    })
}

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
