//! Clients with several addresses: the RFC 8305 race (order, stagger, winner, losers closed),
//! one failure when all fail, the connect timeout over the whole race, and no descriptor left.

mod util;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use actix_socket_factory::{ConfigError, Domain, Operation, SocketFactory};
use util::*;

const V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

/// A listener that accepts (the kernel completes the handshake; nobody needs to call accept).
fn open_listener(ip: IpAddr) -> (std::net::TcpListener, SocketAddr) {
    let listener = std::net::TcpListener::bind((ip, 0)).expect("bind");
    let addr = listener.local_addr().expect("addr");
    (listener, addr)
}

#[actix::test]
async fn silent_first_address_gives_way_to_the_second_after_the_stagger() {
    let delay = Duration::from_millis(200);
    let mut events = Events::start();
    let (_hole, _filler, silent) = black_hole(V4).await;
    let (_listener, good) = open_listener(V4);
    let started = Instant::now();
    events
        .builder()
        .remote_addresses([silent, good])
        .happy_eyeballs_delay(delay)
        .start();
    let created = events
        .next_created(LIMIT)
        .await
        .expect("the second connects");
    let elapsed = started.elapsed();
    assert_eq!(created.peer.and_then(|p| p.as_inet()), Some(good));
    assert_eq!(created.domain, Domain::Inet);
    assert!(
        elapsed >= delay,
        "the second started after the stagger, not {elapsed:?}"
    );
    assert!(
        wait_until(LIMIT, || syn_sent_to(silent.port()) == 0).await,
        "the losing attempt is closed"
    );
    assert!(
        events.try_failed().is_none(),
        "a lost attempt is not a failure"
    );
}

#[actix::test]
async fn ipv6_goes_first_whatever_the_given_order() {
    let delay = Duration::from_millis(200);
    let mut events = Events::start();
    let (_hole, _filler, silent_v6) = black_hole(V6).await;
    let (_listener, good_v4) = open_listener(V4);
    let started = Instant::now();
    events
        .builder()
        .remote_addresses([good_v4, silent_v6])
        .happy_eyeballs_delay(delay)
        .start();
    let created = events.next_created(LIMIT).await.expect("IPv4 connects");
    // Had IPv4 gone first, as listed, it would have connected at once.
    assert!(started.elapsed() >= delay, "IPv6 was tried first");
    assert_eq!(created.peer.and_then(|p| p.as_inet()), Some(good_v4));
    assert_eq!(
        created.domain,
        Domain::Inet,
        "the winner's family is delivered"
    );
    assert!(wait_until(LIMIT, || syn_sent_to(silent_v6.port()) == 0).await);
}

#[actix::test]
async fn a_refused_attempt_starts_the_next_without_waiting_the_stagger() {
    let stagger = Duration::from_secs(5);
    let mut events = Events::start();
    let (_listener, good) = open_listener(V4);
    let refused = SocketAddr::new(V4, closed_port());
    let started = Instant::now();
    events
        .builder()
        .remote_addresses([refused, good])
        .happy_eyeballs_delay(stagger)
        .start();
    let created = events
        .next_created(LIMIT)
        .await
        .expect("the second connects");
    assert!(started.elapsed() < stagger, "took {:?}", started.elapsed());
    assert_eq!(created.peer.and_then(|p| p.as_inet()), Some(good));
}

/// TCP to a multicast address fails in connect(2) itself with ENETUNREACH: nothing leaves.
fn unreachable_addr() -> SocketAddr {
    SocketAddr::new(Ipv4Addr::new(224, 0, 0, 1).into(), 9)
}

async fn all_fail_with(candidates: [SocketAddr; 2], errno: i32) {
    let mut events = Events::start();
    events.builder().remote_addresses(candidates).start();
    let failed = events.next_failed(LIMIT).await.expect("one SocketFailed");
    assert_eq!(failed.operation, Operation::Connect);
    assert_eq!(failed.errno, Some(errno), "the last error: {failed}");
    events
        .expect_no_created(Duration::from_millis(100))
        .await
        .expect("nothing delivered");
    assert!(events.try_failed().is_none(), "exactly one SocketFailed");
}

#[actix::test]
async fn all_failing_gives_one_connect_failure_with_the_last_error() {
    let refused = SocketAddr::new(V4, closed_port());
    all_fail_with([unreachable_addr(), refused], libc::ECONNREFUSED).await;
    all_fail_with([refused, unreachable_addr()], libc::ENETUNREACH).await;
}

#[actix::test]
async fn connect_timeout_bounds_the_whole_race() {
    // Long enough that a loaded machine still sees both attempts in SYN_SENT before it expires
    // (reading /proc/net/tcp can take a while when the TIME_WAIT table is large).
    let timeout = Duration::from_millis(3000);
    let mut events = Events::start();
    let (_hole4, _filler4, silent_v4) = black_hole(V4).await;
    let (_hole6, _filler6, silent_v6) = black_hole(V6).await;
    let started = Instant::now();
    events
        .builder()
        .remote_addresses([silent_v4, silent_v6])
        .happy_eyeballs_delay(Duration::from_millis(100))
        .connect_timeout(timeout)
        .start();
    let both_under_way = || syn_sent_to_each(&[silent_v4.port(), silent_v6.port()]) == [1, 1];
    assert!(
        wait_until(timeout, both_under_way).await,
        "the second attempt starts while the first is still under way"
    );
    let failed = events.next_failed(LIMIT).await.expect("timed out");
    assert!(started.elapsed() >= timeout);
    assert_eq!(failed.operation, Operation::Connect);
    assert_eq!(failed.errno, Some(libc::ETIMEDOUT));
    for port in [silent_v4.port(), silent_v6.port()] {
        assert!(
            wait_until(LIMIT, || syn_sent_to(port) == 0).await,
            "port {port}"
        );
    }
}

#[actix::test]
async fn an_explicit_domain_keeps_one_family_and_an_empty_list_is_refused() {
    let mixed = [SocketAddr::new(V6, 1), SocketAddr::new(V4, 1)];
    let one_family = SocketFactory::builder()
        .domain(Domain::Inet6)
        .remote_addresses(mixed)
        .build();
    assert!(
        matches!(
            one_family,
            Err(ConfigError::DomainMismatch {
                which: "remote",
                ..
            })
        ),
        "{one_family:?}"
    );
    let empty = SocketFactory::builder()
        .remote_addresses(Vec::<SocketAddr>::new())
        .build();
    assert!(
        matches!(empty, Err(ConfigError::NoRemoteAddresses)),
        "{empty:?}"
    );
    // A mixed list is fine: only the missing recipient is left to complain about.
    assert_eq!(
        SocketFactory::builder()
            .remote_addresses(mixed)
            .build()
            .err(),
        Some(ConfigError::NoRecipient)
    );
}

/// Runs `body_name` alone in a child process (descriptor counts need no other test running).
fn in_child(body_name: &str) -> bool {
    if std::env::var_os("CONNECT_RACE_CHILD").is_some() {
        return false;
    }
    let output = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([body_name, "--exact", "--test-threads=1"])
        .env("CONNECT_RACE_CHILD", "1")
        .output()
        .expect("child runs");
    assert!(
        output.status.success(),
        "child {body_name}: {}\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    true
}

#[actix::test]
async fn no_descriptor_outlives_a_race() {
    if in_child("no_descriptor_outlives_a_race") {
        return;
    }
    let mut events = Events::start();
    let (_hole, _filler, silent) = black_hole(V4).await;
    let (_listener, good) = open_listener(V4);
    let refused = SocketAddr::new(V4, closed_port());
    let baseline = open_fds();

    // Won: the winner is the only new descriptor, and it goes when the owner drops it.
    events
        .builder()
        .remote_addresses([silent, refused, good])
        .happy_eyeballs_delay(Duration::from_millis(50))
        .start();
    let created = events.next_created(LIMIT).await.expect("connected");
    assert!(
        wait_until(LIMIT, || open_fds() == baseline + 1).await,
        "{}",
        open_fds()
    );
    drop(created);
    assert!(wait_until(LIMIT, || open_fds() == baseline).await);

    // Lost to the timeout, and all refused.
    events
        .builder()
        .remote_addresses([silent, silent])
        .happy_eyeballs_delay(Duration::from_millis(50))
        .connect_timeout(Duration::from_millis(300))
        .start();
    events.next_failed(LIMIT).await.expect("timed out");
    assert!(wait_until(LIMIT, || open_fds() == baseline).await);
    events
        .builder()
        .remote_addresses([refused, unreachable_addr()])
        .start();
    events.next_failed(LIMIT).await.expect("refused");
    assert!(wait_until(LIMIT, || open_fds() == baseline).await);
}
