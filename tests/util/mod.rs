//! Shared helpers for the integration tests: loopback addresses, bounded waits, socket checks.
#![allow(dead_code, unused_imports)]

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

/// True in the child process started by [`run_child`] for `name`.
pub fn in_child(name: &str) -> bool {
    child::is_child(name)
}

/// Runs the test `name` of this test binary in a child process (for tests that lower
/// RLIMIT_NOFILE or need thousands of sockets), bounded by `limit`; returns its stdout.
pub fn run_child(name: &str, limit: Duration) -> String {
    child::run(name, limit)
}

/// Raises the soft descriptor limit to the hard one; returns the new soft limit.
pub fn raise_fd_limit() -> u64 {
    set_fd_limit(None)
}

/// Sets the soft descriptor limit (`None`: as high as the hard limit); returns it.
pub fn set_fd_limit(soft: Option<u64>) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the one rlimit struct we pass.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        // rlim_t is u64 on Linux and macOS, i64 on FreeBSD (where RLIM_INFINITY is i64::MAX).
        #[allow(clippy::unnecessary_cast)]
        let max = limit.rlim_max as u64;
        limit.rlim_cur = soft.map_or(max, |s| s.min(max)) as libc::rlim_t;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    #[allow(clippy::unnecessary_cast)]
    let soft = limit.rlim_cur as u64;
    soft
}

/// Whether `socket` listens (`SO_ACCEPTCONN`, which socket2 reads on Linux and FreeBSD only).
pub fn is_listener(socket: &impl AsRawFd) -> bool {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into the int we own.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "SO_ACCEPTCONN: {}", std::io::Error::last_os_error());
    value != 0
}

/// CPU time (user + system) this process has used.
pub fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the struct we pass.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime))
}

/// A fresh temporary directory and the path `name` in it, for a UNIX socket; the directory and
/// whatever is left in it go when the `TempDir` drops.
pub fn temp_socket_path(name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(name);
    (dir, path)
}

/// For tests that count the process's descriptors (or change its limits): true in the child
/// process, which then runs the body; in the parent, runs test `name` in a child (see
/// [`run_child`]), fails if the child failed, and returns false.
pub fn run_in_child(name: &str) -> bool {
    if in_child(name) {
        return true;
    }
    run_child(name, Duration::from_secs(120));
    false
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
    syn_sent_to_each(&[port])[0]
}

/// [`syn_sent_to`] for several ports in one pass over the tables, which can be long when the
/// TIME_WAIT table is full (other tests, benchmarks).
pub fn syn_sent_to_each(ports: &[u16]) -> Vec<usize> {
    const SYN_SENT: &str = "02";
    let mut counts = vec![0; ports.len()];
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
            if state != SYN_SENT {
                continue;
            }
            let remote_port = remote
                .rsplit(':')
                .next()
                .and_then(|hex| u16::from_str_radix(hex, 16).ok());
            for (count, port) in counts.iter_mut().zip(ports) {
                if remote_port == Some(*port) {
                    *count += 1;
                }
            }
        }
    }
    counts
}

/// The haproxy program: on `PATH`, or where Debian puts it (`/usr/sbin`, often off a user's
/// `PATH`). `None` when absent; under CI (`CI=true`) its absence is a failure.
pub fn haproxy() -> Option<&'static str> {
    let runs = |program: &str| {
        std::process::Command::new(program)
            .arg("-v")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    let found = ["haproxy", "/usr/sbin/haproxy"]
        .into_iter()
        .find(|program| runs(program));
    if found.is_none() {
        assert!(
            std::env::var("CI").map_or(true, |ci| ci != "true"),
            "haproxy is not installed, and CI=true: .ci/run installs it"
        );
        println!("SKIPPED: haproxy is not installed (apt-get install haproxy); CI would fail here");
    }
    found
}
