//! Shared helpers for the integration tests: loopback addresses, bounded waits, socket checks.
#![allow(dead_code)]

pub mod child;
pub mod dns;
pub mod latency;
pub mod netns;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::time::Duration;

pub use actix_socket_factory::testing::{wait_until, Events};

/// How long any single wait for a message may take before the test fails.
pub const LIMIT: Duration = Duration::from_secs(10);

pub fn any_local_address() -> SocketAddr {
    (Ipv4Addr::LOCALHOST, 0).into()
}

pub fn any_local_ipv6_address() -> SocketAddr {
    (Ipv6Addr::LOCALHOST, 0).into()
}

/// A loopback port nothing listens on: bound, then released.
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind(any_local_address()).expect("bind a probe listener");
    listener.local_addr().expect("probe address").port()
}

pub fn assert_nonblocking(fd: &impl AsRawFd) {
    // SAFETY: F_GETFL reads flags of a descriptor we own.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    assert!(flags & libc::O_NONBLOCK != 0, "socket is blocking");
}

pub fn assert_cloexec(fd: &impl AsRawFd) {
    // SAFETY: F_GETFD reads flags of a descriptor we own.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
    assert!(flags & libc::FD_CLOEXEC != 0, "socket is not close-on-exec");
}

/// Whether `addr` can be bound again right now (with SO_REUSEADDR, as a restarted server would).
pub fn can_bind(addr: SocketAddr) -> bool {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )
    .expect("socket");
    socket.set_reuse_address(true).expect("SO_REUSEADDR");
    socket.bind(&addr.into()).is_ok() && socket.listen(1).is_ok()
}

/// The number of descriptors this process has open.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|dir| dir.count())
        .unwrap_or(0)
}
