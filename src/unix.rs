//! The life of a UNIX socket file: what may stand at the path before `bind`, the file's mode,
//! and its removal when the factory stops.
//!
//! std and tokio leave the file behind, and actix-server unlinks whatever sits at the path
//! (actix-net#364). Here the factory removes only the file it made itself (same device and
//! inode, still a socket, never through a symlink), and before binding it replaces a leftover
//! socket only when nothing listens on it and the owner opted in.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use socket2::{SockAddr, Socket, Type};

use crate::sys;

/// A socket file this factory made, known by device and inode; dropping it removes the file if
/// it is still ours, so every error path after `bind` cleans up by itself.
#[derive(Debug)]
pub(crate) struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl SocketFile {
    /// Records the file `bind` just made at `path`.
    pub(crate) fn created(path: &Path) -> io::Result<SocketFile> {
        let meta = fs::symlink_metadata(path)?;
        Ok(SocketFile {
            path: path.to_owned(),
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }
}

impl Drop for SocketFile {
    /// Removes the file if it is still ours; anything else now at the path is left alone.
    fn drop(&mut self) {
        match fs::symlink_metadata(&self.path) {
            Ok(meta)
                if meta.file_type().is_socket()
                    && meta.dev() == self.dev
                    && meta.ino() == self.ino =>
            {
                match fs::remove_file(&self.path) {
                    Ok(()) => log::debug!("removed socket file {}", self.path.display()),
                    Err(error) => log::warn!(
                        "could not remove socket file {}: {error}",
                        self.path.display()
                    ),
                }
            }
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
pub(crate) fn prepare_path(path: &Path, socket_type: Type, replace_stale: bool) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    if !meta.file_type().is_socket() {
        // bind(2) reports EADDRINUSE itself; a regular file or a link is never touched.
        return Ok(());
    }
    if is_live(path, socket_type) {
        return Err(io::Error::from_raw_os_error(libc::EADDRINUSE));
    }
    if !replace_stale {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "{} is a stale socket file (nothing listens); \
                 `replace_stale_socket(true)` lets the factory replace it",
                path.display()
            ),
        ));
    }
    log::info!("replacing stale socket file {}", path.display());
    fs::remove_file(path)
}

/// Whether something answers at `path`: a non-blocking connect succeeds or finds a full queue.
fn is_live(path: &Path, socket_type: Type) -> bool {
    let probe = SockAddr::unix(path).and_then(|addr| {
        let socket = Socket::new(socket2::Domain::UNIX, socket_type, None)?;
        socket.set_nonblocking(true)?;
        socket.connect(&addr)
    });
    match probe {
        Ok(()) => true,
        Err(error) => error.raw_os_error() == Some(libc::EAGAIN),
    }
}

/// Gives the socket about to be bound the mode `mode`, before `bind`, so the file is born with
/// no more than that (Linux takes the file's mode from the socket's inode, less the umask).
pub(crate) fn set_mode_before_bind(socket: &Socket, mode: u32) -> io::Result<()> {
    sys::fchmod(socket, mode)
}

/// Sets the exact mode after `bind`: it can only widen what the umask narrowed, up to `mode`.
pub(crate) fn set_mode_after_bind(path: &Path, mode: u32) -> io::Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}
