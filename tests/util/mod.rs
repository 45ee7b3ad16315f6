//! Shared helpers for the integration tests: loopback addresses, bounded waits, socket checks.
#![allow(dead_code)]

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

/// A TCP address on loopback that never answers: a listener with the shortest queue
/// (`listen(0)`), never accepted from, its queue filled by one client. Linux then drops further
/// SYNs whatever `tcp_syncookies` says (a full accept queue is checked before cookies), so a
/// connect to it stays in SYN_SENT. Keep the returned sockets alive while it must stay silent.
///
/// Checked, not assumed: a probe connect must still be under way after 200 ms.
pub async fn black_hole(
    ip: std::net::IpAddr,
) -> (socket2::Socket, tokio::net::TcpStream, SocketAddr) {
    let addr = SocketAddr::new(ip, 0);
    let listener = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )
    .expect("socket");
    listener.bind(&addr.into()).expect("bind");
    listener.listen(0).expect("listen(0)");
    let addr = listener
        .local_addr()
        .expect("address")
        .as_socket()
        .expect("inet");
    let filler = tokio::time::timeout(LIMIT, tokio::net::TcpStream::connect(addr))
        .await
        .expect("the first client fits the queue in time")
        .expect("the first client connects");
    let probe = tokio::time::timeout(
        Duration::from_millis(200),
        tokio::net::TcpStream::connect(addr),
    )
    .await;
    assert!(
        probe.is_err(),
        "the black-hole trick failed here: a connect to a full listen queue completed"
    );
    (listener, filler, addr)
}

/// How many sockets of this network namespace are in SYN_SENT towards `port` (from
/// /proc/net/tcp and tcp6): a connect attempt still open.
pub fn syn_sent_to(port: u16) -> usize {
    const SYN_SENT: &str = "02";
    let mut count = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            // sl, local_address, rem_address, st, ...
            let mut fields = line.split_whitespace().skip(2);
            let (Some(remote), Some(state)) = (fields.next(), fields.next()) else {
                continue;
            };
            let remote_port = remote
                .rsplit(':')
                .next()
                .and_then(|hex| u16::from_str_radix(hex, 16).ok());
            if state == SYN_SENT && remote_port == Some(port) {
                count += 1;
            }
        }
    }
    count
}
