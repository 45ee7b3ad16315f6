//! The life of a UNIX socket file: what may stand at the path before `bind`, the file's mode,
//! and its removal when the factory stops.
//!
//! std and tokio leave the file behind, and actix-server unlinks whatever sits at the path
//! (actix-net#364). Here the factory removes only the file it made itself (same device and
//! inode, still a socket, never through a symlink), and before binding it replaces a leftover
//! socket only when nothing listens on it and the owner opted in.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use socket2::{SockAddr, Socket, Type};

use crate::desc::error::{Failure, Operation};
use crate::sys;

/// Where a socket file lives: its directory, held open from before `bind`, and its name there.
/// The file is found again through the directory, so a relative path still names the file that
/// was made after the process changes its working directory (or the directory is renamed).
#[derive(Debug)]
pub(crate) struct Place {
    /// As given: for messages, the stale probe and the mode.
    path: PathBuf,
    /// `O_PATH` on Linux (no read permission needed), read-only elsewhere.
    dir: fs::File,
    name: std::ffi::OsString,
}

impl Place {
    /// Opens the directory `path` is in.
    pub(crate) fn of(path: &Path) -> io::Result<Place> {
        use std::os::unix::fs::OpenOptionsExt;
        let name = path.file_name().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} names no file", crate::desc::quote::plain_path(path)),
            )
        })?;
        let parent = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let dir = fs::OpenOptions::new()
            .read(true)
            .custom_flags(sys::DIR_FLAGS)
            .open(parent)?;
        Ok(Place {
            path: path.to_owned(),
            dir,
            name: name.to_owned(),
        })
    }

    fn stat(&self) -> io::Result<sys::FileId> {
        sys::stat_at(&self.dir, &self.name)
    }

    fn parent(&self) -> &Path {
        match self.path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        }
    }
}

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
    /// Boxed: a factory keeping its file after delivery holds this record inline.
    place: Box<Place>,
    dev: u64,
    ino: u64,
    /// Keeps our inode, and so its number, from being reused while we may still compare it
    /// (nothing off Linux).
    _pin: sys::Pin,
}

impl SocketFile {
    /// Records the file `bind` just made at `place`.
    pub(crate) fn created(place: Place) -> io::Result<SocketFile> {
        // On Linux O_PATH opens the file itself (a socket cannot be opened for I/O) and
        // O_NOFOLLOW a symlink as a link, which the check below then refuses.
        let (pin, id) = sys::pin_file(&place.dir, &place.name)?;
        if !id.socket {
            // Swapped between bind and this look: not ours to record, nor to remove later.
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} was replaced right after bind",
                    crate::desc::quote::plain_path(&place.path)
                ),
            ));
        }
        Ok(SocketFile {
            place: Box::new(place),
            dev: id.dev,
            ino: id.ino,
            _pin: pin,
        })
    }

    /// Whether `id` is this very file (not a symlink, not a newer socket at the path).
    fn is_ours(&self, id: &sys::FileId) -> bool {
        id.socket && id.dev == self.dev && id.ino == self.ino
    }

    /// Gives the file exactly `mode`, without following a symlink put at the path since `bind`.
    pub(crate) fn set_mode(&self, mode: u32) -> io::Result<()> {
        let path = &self.place.path;
        match sys::chmod_nofollow(path, mode) {
            Err(error) if error.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                // A C library without a safe fchmodat(AT_SYMLINK_NOFOLLOW) (glibc < 2.32), or a
                // symlink now at the path: look first, then chmod by name. The window left is
                // between the look and the chmod, and only for a user who can write to the
                // directory, who could remove our socket anyway.
                if !self.is_ours(&self.place.stat()?) {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!(
                            "{} was replaced right after bind",
                            crate::desc::quote::plain_path(path)
                        ),
                    ));
                }
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(path, fs::Permissions::from_mode(mode))
            }
            other => other,
        }
    }
}

impl SocketFile {
    /// Forgets the file without removing it: another process (a handover's successor) serves on
    /// it now. Only the record goes (on Linux, its `O_PATH` pin is closed).
    pub(crate) fn disown(mut self) {
        log::debug!(
            "socket file {} left to its new owner",
            crate::desc::quote::plain_path(&self.place.path)
        );
        self.place.path = PathBuf::new();
    }
}

impl Drop for SocketFile {
    /// Removes the file if it is still ours; anything else now at the path is left alone.
    ///
    /// The look (`fstatat` with `AT_SYMLINK_NOFOLLOW`) and the removal (`unlinkat`) go through
    /// the directory held since `bind`, whatever the working directory is now; `unlinkat`
    /// removes a link itself, never its target: a symlink put at the path is not ours, and
    /// neither it nor what it points to is touched.
    fn drop(&mut self) {
        if self.place.path.as_os_str().is_empty() {
            return; // disowned: the file belongs to a successor now
        }
        let path = crate::desc::quote::plain_path(&self.place.path);
        match self.place.stat() {
            Ok(id) if self.is_ours(&id) => {
                match sys::unlink_at(&self.place.dir, &self.place.name) {
                    Ok(()) => log::debug!("removed socket file {path}"),
                    Err(error) => log::warn!("could not remove socket file {path}: {error}"),
                }
            }
            Ok(_) => log::debug!("{path} no longer holds our socket; left alone"),
            Err(_) => {}
        }
    }
}

/// An exclusive `flock(2)` on the directory of a socket file, held from the stale check to the
/// end of `bind`: two factories (in this process or another) replacing the same stale file take
/// turns, so the second sees the first one's socket, bound and live, instead of unlinking it.
#[derive(Debug)]
pub(crate) struct ReplaceLock {
    _dir: Option<fs::File>,
}

/// How long a factory waits for another one's replacement in the same directory (each takes
/// microseconds: a look, a probe, an unlink, a bind).
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

impl ReplaceLock {
    fn take(place: &Place) -> Result<ReplaceLock, Failure> {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = match fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(place.parent())
        {
            Ok(dir) => dir,
            Err(error) => {
                // A directory we may search but not read: no lock to take; the replacement
                // still re-checks the file right before removing it.
                log::debug!(
                    "no lock on {} ({error}); replacing without it",
                    crate::desc::quote::plain_path(place.parent())
                );
                return Ok(ReplaceLock { _dir: None });
            }
        };
        let until = std::time::Instant::now().checked_add(LOCK_WAIT);
        loop {
            match sys::try_lock_exclusive(&dir) {
                Ok(true) => return Ok(ReplaceLock { _dir: Some(dir) }),
                Ok(false) if until.is_some_and(|until| std::time::Instant::now() < until) => {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Ok(false) => {
                    return Err(Failure {
                        operation: Operation::Bind,
                        errno: Some(libc::EADDRINUSE),
                        error: io::Error::new(
                            io::ErrorKind::AddrInUse,
                            format!(
                                "another process keeps {} locked while replacing a socket file",
                                crate::desc::quote::plain_path(place.parent())
                            ),
                        ),
                    })
                }
                Err(error) => {
                    log::debug!(
                        "flock on {}: {error}",
                        crate::desc::quote::plain_path(place.parent())
                    );
                    return Ok(ReplaceLock { _dir: None });
                }
            }
        }
    }
}

/// Makes room for a `bind` at `place`: refuses a live socket, replaces a stale one only when
/// `replace_stale`, and leaves anything that is not a socket to fail the bind. Keep the lock it
/// returns until `bind` is done.
///
/// # Errors
/// [`Operation::Bind`] with `EADDRINUSE` for a live socket (also one another factory just put
/// in place of the stale file), and for a stale one the owner did not let us replace (the text
/// says how); the OS's error when the path cannot be examined or the stale file cannot be
/// removed.
pub(crate) fn prepare_path(
    place: &Place,
    replace_stale: bool,
) -> Result<Option<ReplaceLock>, Failure> {
    let path = &place.path;
    let in_use = |text: String| Failure {
        operation: Operation::Bind,
        errno: Some(libc::EADDRINUSE),
        error: io::Error::new(io::ErrorKind::AddrInUse, text),
    };
    let live = || {
        in_use(format!(
            "a live socket is bound to {} (something answers there)",
            crate::desc::quote::plain_path(path)
        ))
    };
    let look = || match place.stat() {
        Ok(id) => Ok(Some(id)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(Failure::new(Operation::Bind, error)),
    };
    match look()? {
        // bind(2) reports EADDRINUSE itself for anything that is not a socket; a regular file
        // or a link is never touched.
        None => return Ok(None),
        Some(id) if !id.socket => return Ok(None),
        Some(_) => {}
    }
    if !is_stale(path) {
        return Err(live());
    }
    if !replace_stale {
        return Err(in_use(format!(
            "{} is a stale socket file (nothing listens); \
             `replace_stale_socket(true)` lets the factory replace it",
            crate::desc::quote::plain_path(path)
        )));
    }
    let lock = ReplaceLock::take(place)?;
    // Under the lock, look again: another factory may have replaced the file meanwhile, and its
    // socket (bound, maybe not yet listening) is live to the probe.
    match look()? {
        None => return Ok(Some(lock)),
        Some(id) if !id.socket => return Ok(Some(lock)),
        Some(_) if !is_stale(path) => return Err(live()),
        Some(_) => {}
    }
    log::info!(
        "replacing stale socket file {}",
        crate::desc::quote::plain_path(path)
    );
    match sys::unlink_at(&place.dir, &place.name) {
        Ok(()) => Ok(Some(lock)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(Some(lock)),
        Err(error) => Err(Failure::new(Operation::Bind, error)),
    }
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
/// more than that: on Linux, where the file takes the mode of the socket's inode (see
/// `sys::set_mode_before_bind`). Elsewhere this does nothing and the mode is applied after
/// `bind` only: between the two the file is as open as the process's umask allows.
pub(crate) fn set_mode_before_bind(socket: &Socket, mode: u32) -> io::Result<()> {
    sys::set_mode_before_bind(socket, mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound_dir() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("s");
        (dir, path)
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn mode_set_before_bind_is_the_files_mode_at_birth() {
        use std::os::unix::fs::PermissionsExt;
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
        let record = SocketFile::created(Place::of(&path).unwrap()).expect("record");
        // Our socket closed and our file unlinked: its inode number is free for reuse (tmpfs
        // hands it to the very next file), unless the record pins it.
        drop(first);
        fs::remove_file(&path).unwrap();
        let _second = std::os::unix::net::UnixListener::bind(&path).expect("bind again");
        drop(record);
        assert!(path.exists(), "the newer socket is not ours");
    }
}
