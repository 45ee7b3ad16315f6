//! FreeBSD, macOS and every other Unix: the BSD sockets API without Linux's extensions. Each
//! function here has a namesake in `linux.rs`; mod.rs states the contract. These paths are
//! compiled and linted (`.ci/run`: x86_64-unknown-freebsd, x86_64- and aarch64-apple-darwin),
//! not run by the test suite.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use socket2::Socket;

use super::FileId;

/// FreeBSD balances with `SO_REUSEPORT_LB` (FreeBSD 12 and later). macOS and the other BSDs have
/// only plain `SO_REUSEPORT`, which lets sockets share an address but gives each new TCP
/// connection to one of them, not spread across them.
pub(crate) const REUSE_PORT_BALANCES: bool = cfg!(target_os = "freebsd");

/// No `O_PATH` here: the directory is opened for reading.
pub(crate) const DIR_FLAGS: libc::c_int = libc::O_DIRECTORY;

/// A non-blocking, close-on-exec socket: one system call where `SOCK_NONBLOCK` exists (FreeBSD),
/// else socket2's `socket` (close-on-exec, and `SO_NOSIGPIPE` on macOS) and `fcntl`.
pub(crate) fn socket(
    domain: socket2::Domain,
    ty: socket2::Type,
    protocol: Option<socket2::Protocol>,
) -> io::Result<Socket> {
    #[cfg(target_os = "freebsd")]
    {
        Socket::new(domain, ty.nonblocking(), protocol)
    }
    #[cfg(not(target_os = "freebsd"))]
    {
        let socket = Socket::new(domain, ty, protocol)?;
        socket.set_nonblocking(true)?;
        Ok(socket)
    }
}

/// `accept4(2)` where it exists (FreeBSD); else socket2's `accept` (close-on-exec, and
/// `SO_NOSIGPIPE` on macOS) and a second call for non-blocking. Between the two calls the
/// socket is blocking, but no other thread knows it yet.
pub(crate) fn accept(listener: &Socket) -> io::Result<(Socket, Option<std::net::SocketAddr>)> {
    #[cfg(target_os = "freebsd")]
    {
        super::accept4(listener)
    }
    #[cfg(not(target_os = "freebsd"))]
    {
        let (socket, addr) = listener.accept()?;
        socket.set_nonblocking(true)?;
        Ok((socket, addr.as_socket()))
    }
}

/// A pipe, both ends close-on-exec: `pipe2` where it exists (FreeBSD), else `pipe` and `fcntl`.
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    #[cfg(target_os = "freebsd")]
    {
        super::pipe2()
    }
    #[cfg(not(target_os = "freebsd"))]
    {
        use std::os::fd::FromRawFd;
        let mut fds: [libc::c_int; 2] = [-1; 2];
        // SAFETY: pipe writes two descriptors into the array we own.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } == -1 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both descriptors are fresh and owned by nothing else; from here on they close
        // when dropped, also on the error path below.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        for fd in [&read, &write] {
            // SAFETY: F_SETFD only changes the descriptor's flags.
            if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) } == -1 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok((read, write))
    }
}

/// The keepalive probes' interval (`TCP_KEEPINTVL`) and count (`TCP_KEEPCNT`), when given, where
/// the system has them (macOS, FreeBSD, NetBSD, DragonFly, illumos); elsewhere `build()` has
/// refused them already (`ConfigError::Unsupported`).
pub(crate) fn keepalive_probes(
    keepalive: socket2::TcpKeepalive,
    interval: Option<std::time::Duration>,
    retries: Option<u32>,
) -> socket2::TcpKeepalive {
    #[cfg(any(
        target_os = "dragonfly",
        target_os = "freebsd",
        target_os = "illumos",
        target_vendor = "apple",
        target_os = "netbsd",
    ))]
    {
        let mut keepalive = keepalive;
        if let Some(interval) = interval {
            keepalive = keepalive.with_interval(interval);
        }
        if let Some(retries) = retries {
            keepalive = keepalive.with_retries(retries);
        }
        keepalive
    }
    #[cfg(not(any(
        target_os = "dragonfly",
        target_os = "freebsd",
        target_os = "illumos",
        target_vendor = "apple",
        target_os = "netbsd",
    )))]
    {
        let _ = (interval, retries);
        keepalive
    }
}

/// `ENONET` is Linux's: no other system returns it.
pub(crate) fn is_enonet(_code: i32) -> bool {
    false
}

/// The socket's address family: `SO_DOMAIN` where it exists (FreeBSD 12 and later), else the
/// family of its local address (`getsockname(2)`, which reports the family of an unbound socket
/// too).
pub(crate) fn domain(socket: &Socket) -> io::Result<socket2::Domain> {
    #[cfg(target_os = "freebsd")]
    match super::int_option(socket, libc::SOL_SOCKET, libc::SO_DOMAIN) {
        Ok(family) => return Ok(socket2::Domain::from(family)),
        // An older kernel without the option: ask the address instead.
        Err(error) if error.raw_os_error() == Some(libc::ENOPROTOOPT) => {}
        Err(error) => return Err(error),
    }
    super::address_family(socket)
}

/// FreeBSD: `SO_REUSEPORT_LB`, which balances connections across the sockets as Linux's
/// `SO_REUSEPORT` does (and, like it, lets a successor bind the address while the predecessor
/// still listens). Elsewhere plain `SO_REUSEPORT`: the address is shared, not the load (see
/// [`REUSE_PORT_BALANCES`]).
pub(crate) fn set_reuse_port(socket: &Socket) -> io::Result<()> {
    #[cfg(target_os = "freebsd")]
    {
        socket.set_reuse_port_lb(true)
    }
    #[cfg(not(target_os = "freebsd"))]
    {
        socket.set_reuse_port(true)
    }
}

/// Only Linux gives a socket file the mode of the unbound socket (`fchmod(2)` on a socket fails
/// here with `EINVAL`): the file takes its mode from the umask alone and the mode is applied
/// after `bind`. Between the two the file is as open as the process's umask allows; bind in a
/// directory only the intended users can reach to close that window.
pub(crate) fn set_mode_before_bind(_socket: &Socket, _mode: u32) -> io::Result<()> {
    Ok(())
}

/// No `O_PATH` here to hold a socket file's inode: the record is by device and inode alone, as
/// good as the file system's inode reuse allows.
#[derive(Debug)]
pub(crate) struct Pin;

/// The file's identity (`fstatat(2)`, never following a symlink); nothing pins it.
pub(crate) fn pin_file(dir: &impl AsRawFd, name: &std::ffi::OsStr) -> io::Result<(Pin, FileId)> {
    Ok((Pin, super::stat_at(dir, name)?))
}

/// The user and group of the process at the other end of a UNIX stream: `getpeereid(3)`
/// (`LOCAL_PEERCRED` underneath on FreeBSD and macOS), taken by the kernel at `connect`/`listen`
/// time. No process id.
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

/// The system's live listen-queue limit: the `kern.ipc.somaxconn` sysctl (on FreeBSD an alias of
/// `kern.ipc.soacceptqueue`), where there is one.
pub(crate) fn somaxconn() -> Option<i32> {
    #[cfg(any(target_os = "freebsd", target_vendor = "apple"))]
    {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>();
        // SAFETY: the name is a NUL-terminated literal; sysctlbyname writes at most `len` bytes
        // into `value` and sets no new value (null pointer, length 0).
        let rc = unsafe {
            libc::sysctlbyname(
                c"kern.ipc.somaxconn".as_ptr(),
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        (rc == 0 && len == std::mem::size_of::<libc::c_int>()).then_some(value)
    }
    #[cfg(not(any(target_os = "freebsd", target_vendor = "apple")))]
    {
        None
    }
}
