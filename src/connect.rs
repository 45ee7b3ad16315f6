//! The client path: a non-blocking `connect(2)` to each candidate address until one answers,
//! bounded by the connect timeout.

use std::io;

use socket2::{SockAddr, Socket};
use tokio::io::Interest;

use crate::error::{Failure, Operation};
use crate::open::Opened;
use crate::sys;

/// Connects one fresh socket to `addr`, waiting for the handshake without blocking.
pub(crate) async fn connect_one(socket: Socket, addr: &SockAddr) -> io::Result<Socket> {
    match socket.connect(addr) {
        Ok(()) => return Ok(socket),
        // Only EINPROGRESS means "under way". A UNIX stream answers EAGAIN when the server's
        // queue is full: that is a refusal, reported as it is.
        Err(error) if error.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(error) => return Err(error),
    }
    let fd = sys::register(socket, Interest::WRITABLE)?;
    loop {
        let mut guard = fd.writable().await?;
        // connect(2): once writable, SO_ERROR tells how the handshake ended.
        match fd.get_ref().take_error()? {
            Some(error) => return Err(error),
            None => match fd.get_ref().peer_addr() {
                Ok(_) => break,
                // A spurious wake-up before the handshake ended: wait again.
                Err(error) if error.raw_os_error() == Some(libc::ENOTCONN) => guard.clear_ready(),
                Err(error) => return Err(error),
            },
        }
    }
    Ok(fd.into_inner())
}

/// Tries `candidates` in order, making each socket with `open`; the first that connects wins.
/// All failing, the last error is reported. `deadline` bounds the whole attempt.
pub(crate) async fn connect<F>(
    candidates: Vec<SockAddr>,
    open: F,
    deadline: Option<tokio::time::Instant>,
) -> Result<(Opened, SockAddr), Failure>
where
    F: Fn(&SockAddr) -> Result<Opened, Failure>,
{
    let attempt = async {
        let mut last = None;
        for addr in candidates {
            let Opened { socket, file } = open(&addr)?;
            match connect_one(socket, &addr).await {
                Ok(socket) => return Ok((Opened { socket, file }, addr)),
                Err(error) => last = Some(error),
            }
        }
        let error = last.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no address to connect to")
        });
        Err(Failure::new(Operation::Connect, error))
    };
    match deadline {
        None => attempt.await,
        Some(deadline) => match tokio::time::timeout_at(deadline, attempt).await {
            Ok(result) => result,
            // Dropping the attempt closed the half-open socket.
            Err(_elapsed) => Err(Failure::new(
                Operation::Connect,
                io::Error::from_raw_os_error(libc::ETIMEDOUT),
            )),
        },
    }
}
