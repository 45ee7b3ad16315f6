//! The life of a UNIX socket file: what may stand at the path before `bind`, the file's mode,
//! and its removal when the factory stops.
//!
//! std and tokio leave the file behind, and actix-server unlinks whatever sits at the path
//! (actix-net#364). Here the factory removes only the file it made itself (same device and
//! inode, still a socket, never through a symlink), and before binding it replaces a leftover
//! socket only when nothing listens on it and the owner opted in.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use socket2::{SockAddr, Socket, Type};

use crate::error::{Failure, Operation};
use crate::sys;

/// A socket file this factory made, known by device and inode; dropping it removes the file if
/// it is still ours, so every error path after `bind` cleans up by itself.
///
/// A device and inode pair names a file only while the inode lives: once our file is unlinked
/// and our socket closed, the file system may give the number to a newer file at the same path
/// (tmpfs does at once). So on Linux the record also holds an `O_PATH` descriptor of the file,
/// which pins the inode without opening the socket; elsewhere the match is as good as the
/// file system's inode reuse allows.
#[derive(Debug)]
pub(crate) struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
    /// Keeps our inode, and so its number, from being reused while we may still compare it.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    _pin: fs::File,
}

impl SocketFile {
    /// Records the file `bind` just made at `path`.
    pub(crate) fn created(path: &Path) -> io::Result<SocketFile> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let (pin, meta) = {
            use std::os::unix::fs::OpenOptionsExt;
            // O_PATH opens the file itself (a socket cannot be opened for I/O) and O_NOFOLLOW a
            // symlink as a link, which the check below then refuses.
            let pin = fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH | libc::O_NOFOLLOW)
                .open(path)?;
            let meta = pin.metadata()?;
            (pin, meta)
        };
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let meta = fs::symlink_metadata(path)?;
        if !meta.file_type().is_socket() {
            // Swapped between bind and this look: not ours to record, nor to remove later.
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} was replaced right after bind", path.display()),
            ));
        }
        Ok(SocketFile {
            path: path.to_owned(),
            dev: meta.dev(),
            ino: meta.ino(),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            _pin: pin,
        })
    }

    /// Whether `meta` describes this very file (not a symlink, not a newer socket at the path).
    fn is_ours(&self, meta: &fs::Metadata) -> bool {
        meta.file_type().is_socket() && meta.dev() == self.dev && meta.ino() == self.ino
    }

    /// Gives the file exactly `mode`, without following a symlink put at the path since `bind`.
    pub(crate) fn set_mode(&self, mode: u32) -> io::Result<()> {
        match sys::chmod_nofollow(&self.path, mode) {
            Err(error) if error.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                // A C library without a safe fchmodat(AT_SYMLINK_NOFOLLOW) (glibc < 2.32), or a
                // symlink now at the path: look first, then chmod by name. The window left is
                // between the look and the chmod, and only for a user who can write to the
                // directory, who could remove our socket anyway.
                let meta = fs::symlink_metadata(&self.path)?;
                if !self.is_ours(&meta) {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("{} was replaced right after bind", self.path.display()),
                    ));
                }
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(&self.path, fs::Permissions::from_mode(mode))
            }
            other => other,
        }
    }
}

impl SocketFile {
    /// Forgets the file without removing it: another process (a handover's successor) serves on
    /// it now. Only the record goes (on Linux, its `O_PATH` pin is closed).
    pub(crate) fn disown(mut self) {
        log::debug!("socket file {} left to its new owner", self.path.display());
        self.path = PathBuf::new();
    }
}

impl Drop for SocketFile {
    /// Removes the file if it is still ours; anything else now at the path is left alone.
    ///
    /// `symlink_metadata` does not follow a symlink, and `unlink(2)` removes a link itself, never
    /// its target: a symlink put at the path is not ours, and neither it nor what it points to
    /// is touched.
    fn drop(&mut self) {
        if self.path.as_os_str().is_empty() {
            return; // disowned: the file belongs to a successor now
        }
        match fs::symlink_metadata(&self.path) {
            Ok(meta) if self.is_ours(&meta) => match fs::remove_file(&self.path) {
                Ok(()) => log::debug!("removed socket file {}", self.path.display()),
                Err(error) => log::warn!(
                    "could not remove socket file {}: {error}",
                    self.path.display()
                ),
            },
            Ok(_) => log::debug!(
                "{} no longer holds our socket; left alone",
                self.path.display()
            ),
            Err(_) => {}
        }
    }
}

/// Makes room for a `bind` at `path`: refuses a live socket, replaces a stale one only when
/// `replace_stale`, and leaves anything that is not a socket to fail the bind.
///
/// # Errors
/// [`Operation::Bind`] with `EADDRINUSE` for a live socket, and for a stale one the owner did not
/// let us replace (the text says how); the OS's error when the path cannot be examined or the
/// stale file cannot be removed.
pub(crate) fn prepare_path(path: &Path, replace_stale: bool) -> Result<(), Failure> {
    let in_use = |text: String| Failure {
        operation: Operation::Bind,
        errno: Some(libc::EADDRINUSE),
        error: io::Error::new(io::ErrorKind::AddrInUse, text),
    };
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(Failure::new(Operation::Bind, error)),
    };
    if !meta.file_type().is_socket() {
        // bind(2) reports EADDRINUSE itself; a regular file or a link is never touched.
        return Ok(());
    }
    if !is_stale(path) {
        return Err(in_use(format!(
            "a live socket is bound to {} (something answers there)",
            path.display()
        )));
    }
    if !replace_stale {
        return Err(in_use(format!(
            "{} is a stale socket file (nothing listens); \
             `replace_stale_socket(true)` lets the factory replace it",
            path.display()
        )));
    }
    log::info!("replacing stale socket file {}", path.display());
    fs::remove_file(path).map_err(|error| Failure::new(Operation::Bind, error))
}

/// Whether the socket file at `path` is known to be stale: a `connect(2)` to it is refused.
///
/// Only `ECONNREFUSED` says "no socket is bound to this file": Linux (`unix_find_bsd`) and the
/// BSDs answer it before they compare socket types. Anything else counts as live: success (a
/// datagram socket), `EPROTOTYPE` (a live socket of another type), `EACCES` (we cannot tell).
///
/// The probe is a datagram socket whatever the factory's type: connecting it creates no
/// connection, so a live stream server at the path sees nothing (a stream probe would land in
/// its accept queue as a client that closes at once). It never blocks: a UNIX datagram connect
/// only records the peer.
fn is_stale(path: &Path) -> bool {
    let probe = SockAddr::unix(path).and_then(|addr| {
        let socket = Socket::new(socket2::Domain::UNIX, Type::DGRAM, None)?;
        socket.connect(&addr)
    });
    matches!(probe, Err(error) if error.raw_os_error() == Some(libc::ECONNREFUSED))
}

/// Gives the socket about to be bound the mode `mode`, before `bind`, so the file is born with no
/// more than that.
///
/// Linux makes the file `bind(2)` creates with the mode of the socket's own inode, less the umask
/// (`unix_bind` in net/unix/af_unix.c: `S_IFSOCK | (SOCK_INODE(sock)->i_mode & ~current_umask())`).
/// A fresh socket's inode is 0777, so a plain bind makes a file as open as the umask allows and a
/// chmod after it leaves a window where anyone the umask lets in may connect (seastar#2051).
/// `fchmod(2)` on the unbound socket narrows the inode first: the file never exists with more
/// than `mode`.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn set_mode_before_bind(socket: &Socket, mode: u32) -> io::Result<()> {
    sys::fchmod(socket, mode)
}

/// Elsewhere `fchmod(2)` on a socket fails (EINVAL) and the file takes its mode from the umask
/// alone: the mode is applied after `bind` only.
///
/// # Notes
/// Between `bind` and the chmod the file is as open as the process's umask allows; bind in a
/// directory only the intended users can reach to close that window.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn set_mode_before_bind(_socket: &Socket, _mode: u32) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn bound_dir() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("s");
        (dir, path)
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn mode_set_before_bind_is_the_files_mode_at_birth() {
        let (_dir, path) = bound_dir();
        let socket = Socket::new(socket2::Domain::UNIX, Type::STREAM, None).expect("socket");
        set_mode_before_bind(&socket, 0o600).expect("fchmod");
        socket.bind(&SockAddr::unix(&path).unwrap()).expect("bind");
        // No chmod after bind here: this is the mode the file had from its first moment.
        let mode = fs::symlink_metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode & !0o600, 0, "born with no more than 0600: {mode:o}");
    }

    #[test]
    fn stale_socket_is_told_from_live_one() {
        let (_dir, path) = bound_dir();
        let live = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        // A live stream server answers the datagram probe with EPROTOTYPE: live.
        assert!(!is_stale(&path));
        live.set_nonblocking(true).unwrap();
        assert!(live.accept().is_err(), "and sees no connection from it");
        drop(live);
        assert!(is_stale(&path));

        fs::remove_file(&path).unwrap();
        let live = std::os::unix::net::UnixDatagram::bind(&path).expect("bind");
        assert!(!is_stale(&path));
        drop(live);
        assert!(is_stale(&path));
    }

    #[test]
    fn dropping_a_record_of_a_replaced_file_leaves_it() {
        let (_dir, path) = bound_dir();
        let first = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        let record = SocketFile::created(&path).expect("record");
        // Our socket closed and our file unlinked: its inode number is free for reuse (tmpfs
        // hands it to the very next file), unless the record pins it.
        drop(first);
        fs::remove_file(&path).unwrap();
        let _second = std::os::unix::net::UnixListener::bind(&path).expect("bind again");
        drop(record);
        assert!(path.exists(), "the newer socket is not ours");
    }
}
