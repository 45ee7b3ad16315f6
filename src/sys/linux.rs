//! Linux and Android: the calls that make the crate's Linux behaviour (the one its tests run).
//! Each function here has a namesake in `bsd.rs`; mod.rs states the contract.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use socket2::Socket;

use super::FileId;

/// `SO_REUSEPORT` spreads new connections (and datagrams) across the sockets bound to one
/// address, by a hash of the peer's address and port.
pub(crate) const REUSE_PORT_BALANCES: bool = true;

/// Opens a directory as a path only (`O_PATH`): no read permission on it is needed.
pub(crate) const DIR_FLAGS: libc::c_int = libc::O_DIRECTORY | libc::O_PATH;

/// A non-blocking, close-on-exec socket in one system call (`SOCK_NONBLOCK | SOCK_CLOEXEC`).
pub(crate) fn socket(
    domain: socket2::Domain,
    ty: socket2::Type,
    protocol: Option<socket2::Protocol>,
) -> io::Result<Socket> {
    Socket::new(domain, ty.nonblocking(), protocol)
}

/// `accept4(2)` with `SOCK_NONBLOCK | SOCK_CLOEXEC`: one system call makes the delivered socket
/// ready for any runtime, where socket2's `accept` would need a second one (`fcntl`) per client.
pub(crate) fn accept(listener: &Socket) -> io::Result<(Socket, Option<std::net::SocketAddr>)> {
    super::accept4(listener)
}

/// A pipe, both ends close-on-exec, in one system call (`pipe2`).
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    super::pipe2()
}

/// The keepalive probes' interval (`TCP_KEEPINTVL`) and count (`TCP_KEEPCNT`), when given.
pub(crate) fn keepalive_probes(
    mut keepalive: socket2::TcpKeepalive,
    interval: Option<std::time::Duration>,
    retries: Option<u32>,
) -> socket2::TcpKeepalive {
    if let Some(interval) = interval {
        keepalive = keepalive.with_interval(interval);
    }
    if let Some(retries) = retries {
        keepalive = keepalive.with_retries(retries);
    }
    keepalive
}

/// Whether `code` is `ENONET` ("machine is not on the network"), a pending network error of a
/// new connection that Linux passes up through `accept(2)`.
pub(crate) fn is_enonet(code: i32) -> bool {
    code == libc::ENONET
}

/// The socket's address family, as the kernel records it (`SO_DOMAIN`).
pub(crate) fn domain(socket: &Socket) -> io::Result<socket2::Domain> {
    socket.domain()
}

/// Sets `SO_REUSEPORT`: several sockets share the address and the kernel balances among them.
pub(crate) fn set_reuse_port(socket: &Socket) -> io::Result<()> {
    socket.set_reuse_port(true)
}

/// `fchmod(2)` on an unbound UNIX socket. Linux makes the file `bind(2)` creates with the mode of
/// the socket's own inode, less the umask (`unix_bind` in net/unix/af_unix.c:
/// `S_IFSOCK | (SOCK_INODE(sock)->i_mode & ~current_umask())`). A fresh socket's inode is 0777,
/// so a plain bind makes a file as open as the umask allows and a chmod after it leaves a window
/// where anyone the umask lets in may connect (seastar#2051). Narrowing the inode first means
/// the file never exists with more than `mode`.
pub(crate) fn set_mode_before_bind(socket: &Socket, mode: u32) -> io::Result<()> {
    // SAFETY: fchmod reads no memory of ours; the descriptor is valid for `socket`'s lifetime.
    match unsafe { libc::fchmod(socket.as_raw_fd(), mode as libc::mode_t) } {
        -1 => Err(io::Error::last_os_error()),
        _ => Ok(()),
    }
}

/// What keeps a socket file's inode (and so its number) from being reused while a record of it
/// lives: an `O_PATH` descriptor of the file.
#[derive(Debug)]
pub(crate) struct Pin {
    _file: std::fs::File,
}

/// `openat(2)` of `name` in `dir` with `O_PATH | O_NOFOLLOW` (the file itself, which a socket
/// cannot be opened for I/O, and a symlink as a link), then its identity from that descriptor:
/// the identity is of the very inode the pin holds.
pub(crate) fn pin_file(dir: &impl AsRawFd, name: &std::ffi::OsStr) -> io::Result<(Pin, FileId)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let name = super::c_name(name)?;
    let flags = libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: openat only reads the NUL-terminated name.
    let file = match unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags) } {
        -1 => return Err(io::Error::last_os_error()),
        // SAFETY: a fresh descriptor that nothing else owns.
        fd => unsafe { std::fs::File::from_raw_fd(fd) },
    };
    let meta = file.metadata()?;
    let id = FileId {
        dev: meta.dev(),
        ino: meta.ino(),
        socket: meta.file_type().is_socket(),
    };
    Ok((Pin { _file: file }, id))
}

/// The credentials of the process at the other end of a UNIX stream: `SO_PEERCRED`, taken by
/// the kernel at `connect`/`listen` time, so they cannot be forged by the peer afterwards.
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

/// The system's live `SOMAXCONN` (`/proc/sys/net/core/somaxconn`), if readable.
pub(crate) fn somaxconn() -> Option<i32> {
    // A one-time read of a procfs file: a memory read in the kernel, never a disk wait.
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|text| text.trim().parse().ok())
}
