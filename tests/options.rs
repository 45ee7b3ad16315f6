//! Socket options: each one read back from a delivered socket (accepted, connected, datagram),
//! and the failures a refused or unfit option gives.

mod util;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use actix_socket_factory::testing::start_and_locate;
use actix_socket_factory::{
    ConfigError, Domain, Operation, SocketCreated, SocketFactory, SocketFactoryBuilder, SocketType,
};
use socket2::Socket;
use util::*;

const V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);
const BUFFER: usize = 40_000;
const TTL: u32 = 17;

/// Every per-connection option, with values no system has as defaults.
fn with_connection_options(builder: SocketFactoryBuilder) -> SocketFactoryBuilder {
    builder
        .tcp_nodelay(true)
        .tcp_keepalive_time(Duration::from_secs(7))
        .tcp_keepalive_interval(Duration::from_secs(3))
        .tcp_keepalive_retries(4)
        .linger(Some(Duration::ZERO))
        .ttl(TTL)
        .send_buffer_size(BUFFER)
        .recv_buffer_size(BUFFER)
}

fn ttl_of(socket: &Socket, ip: IpAddr) -> u32 {
    match ip {
        IpAddr::V4(_) => socket.ttl_v4().expect("IP_TTL"),
        IpAddr::V6(_) => socket.unicast_hops_v6().expect("IPV6_UNICAST_HOPS"),
    }
}

fn assert_connection_options(socket: &Socket, ip: IpAddr) {
    assert!(socket.tcp_nodelay().expect("TCP_NODELAY"));
    assert!(socket.keepalive().expect("SO_KEEPALIVE"));
    assert_eq!(
        socket.tcp_keepalive_time().expect("idle"),
        Duration::from_secs(7)
    );
    assert_eq!(
        socket.tcp_keepalive_interval().expect("interval"),
        Duration::from_secs(3)
    );
    assert_eq!(socket.tcp_keepalive_retries().expect("retries"), 4);
    assert_eq!(socket.linger().expect("SO_LINGER"), Some(Duration::ZERO));
    assert_eq!(ttl_of(socket, ip), TTL);
    // Linux doubles the asked size for its bookkeeping (socket(7)); others keep it.
    let factor = if cfg!(target_os = "linux") { 2 } else { 1 };
    assert_eq!(
        socket.send_buffer_size().expect("SO_SNDBUF"),
        BUFFER * factor
    );
    assert_eq!(
        socket.recv_buffer_size().expect("SO_RCVBUF"),
        BUFFER * factor
    );
}

async fn accepted_sockets_carry_the_options(ip: IpAddr) {
    let mut events = Events::start();
    let (_server, addr) = start_and_locate(with_connection_options(
        events.builder().bind_address(ip).bind_port(0),
    ))
    .await
    .expect("server");
    let _client = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let created = events.next_created(LIMIT).await.expect("accepted");
    assert_connection_options(&created.socket, ip);
}

#[actix::test]
async fn accepted_v4_sockets_carry_the_options() {
    accepted_sockets_carry_the_options(V4).await;
}

#[actix::test]
async fn accepted_v6_sockets_carry_the_options() {
    accepted_sockets_carry_the_options(V6).await;
}

async fn client_sockets_carry_the_options(ip: IpAddr) {
    let mut events = Events::start();
    let listener = std::net::TcpListener::bind((ip, 0)).expect("bind");
    let addr = listener.local_addr().expect("addr");
    with_connection_options(events.builder().remote_addresses([addr])).start();
    let created = events.next_created(LIMIT).await.expect("connected");
    assert_connection_options(&created.socket, ip);
}

#[actix::test]
async fn client_v4_sockets_carry_the_options() {
    client_sockets_carry_the_options(V4).await;
}

#[actix::test]
async fn client_v6_sockets_carry_the_options() {
    client_sockets_carry_the_options(V6).await;
}

#[actix::test]
async fn without_options_the_defaults_stay() {
    let mut events = Events::start();
    let (_server, addr) = listen_on_loopback_v4(&events).await;
    let _client = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let created = events.next_created(LIMIT).await.expect("accepted");
    assert!(!created.socket.tcp_nodelay().expect("TCP_NODELAY"));
    assert!(!created.socket.keepalive().expect("SO_KEEPALIVE"));
    assert_eq!(created.socket.linger().expect("SO_LINGER"), None);
}

async fn listen_on_loopback_v4(events: &Events) -> (actix::Addr<SocketFactory>, SocketAddr) {
    start_and_locate(events.builder().bind_address(V4).bind_port(0))
        .await
        .expect("server")
}

#[actix::test]
async fn only_v6_on_a_client_socket() {
    let mut events = Events::start();
    let listener = std::net::TcpListener::bind((V6, 0)).expect("bind");
    let addr = listener.local_addr().expect("addr");
    events
        .builder()
        .remote_addresses([addr])
        .only_v6(true)
        .start();
    let created = events.next_created(LIMIT).await.expect("connected");
    assert!(created.socket.only_v6().expect("IPV6_V6ONLY"));
}

/// A v4-mapped loopback address lets an INET6 server show the option at work: dual-stack, it
/// serves an IPv4 client; IPv6-only, it cannot even bind there.
#[actix::test]
async fn only_v6_decides_whether_an_inet6_server_takes_ipv4() {
    let mapped = Ipv4Addr::LOCALHOST.to_ipv6_mapped();
    let mut events = Events::start();
    let (_server, addr) = start_and_locate(
        events
            .builder()
            .bind_address(mapped)
            .bind_port(0)
            .only_v6(false),
    )
    .await
    .expect("dual-stack server");
    let _client = tokio::net::TcpStream::connect((V4, addr.port()))
        .await
        .expect("an IPv4 client");
    let created = events.next_created(LIMIT).await.expect("accepted");
    assert!(!created.socket.only_v6().expect("IPV6_V6ONLY"));

    events
        .builder()
        .bind_address(mapped)
        .bind_port(0)
        .only_v6(true)
        .start();
    let failed = events.next_failed(LIMIT).await.expect("no bind");
    assert_eq!(failed.operation, Operation::Bind);
    assert_eq!(failed.errno, Some(libc::EINVAL));
}

async fn datagram(events: &mut Events, builder: SocketFactoryBuilder) -> SocketCreated {
    let _factory = builder.socket_type(SocketType::Datagram).start();
    events.next_created(LIMIT).await.expect("bound")
}

#[actix::test]
async fn datagram_sockets_get_broadcast_and_ttl() {
    let mut events = Events::start();
    let builder = events.builder().bind_address(V4).broadcast(true).ttl(TTL);
    let created = datagram(&mut events, builder).await;
    assert!(created.socket.broadcast().expect("SO_BROADCAST"));
    assert_eq!(created.socket.ttl_v4().expect("IP_TTL"), TTL);
}

/// A group of the organisation-local scope, different per process so parallel runs never meet.
fn group_v4() -> Ipv4Addr {
    let [_, _, high, low] = std::process::id().to_be_bytes();
    Ipv4Addr::new(239, 255, high, low)
}

#[actix::test]
async fn multicast_v4_join_receives_the_group_on_loopback() {
    let mut events = Events::start();
    let group = group_v4();
    // Bound to the group itself, as multicast receivers are, so only its traffic arrives.
    let builder = events
        .builder()
        .bind_address(group)
        .join_multicast_v4(group, Ipv4Addr::LOCALHOST);
    let created = datagram(&mut events, builder).await;
    let port = created
        .socket
        .local_addr()
        .expect("addr")
        .as_socket()
        .expect("inet")
        .port();
    let receiver = created.into_udp_socket().expect("tokio UDP socket");

    let sender =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).expect("socket");
    // Out through the loopback interface: nothing leaves the machine.
    sender
        .set_multicast_if_v4(&Ipv4Addr::LOCALHOST)
        .expect("IP_MULTICAST_IF");
    sender
        .set_multicast_loop_v4(true)
        .expect("IP_MULTICAST_LOOP");
    sender
        .send_to(b"to the group", &SocketAddr::from((group, port)).into())
        .expect("send to the group");
    let mut buf = [0u8; 32];
    let (len, _) = tokio::time::timeout(LIMIT, receiver.recv_from(&mut buf))
        .await
        .expect("the group's datagram arrives in time")
        .expect("recv");
    assert_eq!(&buf[..len], b"to the group");
}

/// Whether the loopback interface is a member of `group` (/proc/net/igmp6: index, name, group
/// in hex, users, ...).
fn loopback_member_v6(group: Ipv6Addr) -> bool {
    let hex: String = group.octets().iter().map(|b| format!("{b:02x}")).collect();
    std::fs::read_to_string("/proc/net/igmp6")
        .map(|text| {
            text.lines().any(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                fields.get(1) == Some(&"lo") && fields.get(2) == Some(&hex.as_str())
            })
        })
        .unwrap_or(false)
}

#[actix::test]
async fn multicast_v6_join_holds_the_membership_while_the_socket_lives() {
    let mut events = Events::start();
    let [_, _, high, low] = std::process::id().to_be_bytes();
    let group = Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        0,
        0x5afe,
        u16::from_be_bytes([high, low]),
    );
    // SAFETY: if_nametoindex reads the NUL-terminated name we pass and nothing else.
    let loopback = unsafe { libc::if_nametoindex(c"lo".as_ptr()) };
    assert_ne!(loopback, 0, "a loopback interface named lo");
    assert!(!loopback_member_v6(group));
    let builder = events
        .builder()
        .bind_address(V6)
        .join_multicast_v6(group, loopback);
    let created = datagram(&mut events, builder).await;
    assert!(loopback_member_v6(group), "joined on lo");
    drop(created);
    assert!(
        wait_until(LIMIT, || !loopback_member_v6(group)).await,
        "the membership ends with the delivered socket"
    );
}

/// A value only the kernel can judge: a multicast group joined on an interface address no
/// interface has (TEST-NET-1). The factory fails with "setsockopt" and the OS's error.
#[actix::test]
async fn a_refused_option_fails_the_factory_with_setsockopt() {
    let mut events = Events::start();
    events
        .builder()
        .socket_type(SocketType::Datagram)
        .bind_address(V4)
        .join_multicast_v4(group_v4(), Ipv4Addr::new(192, 0, 2, 1))
        .start();
    let failed = events.next_failed(LIMIT).await.expect("SocketFailed");
    assert_eq!(failed.operation, Operation::SetSockOpt, "{failed}");
    assert!(failed.errno.is_some(), "{failed}");
    assert!(events.try_created().is_none());
}

/// `ttl(0)`, which every accepted socket used to refuse with "setsockopt" `EINVAL` (each client
/// dropped), is now refused once, before any socket is made.
#[actix::test]
async fn a_ttl_the_kernel_refuses_fails_the_server_before_it_listens() {
    let mut events = Events::start();
    let server = events
        .builder()
        .bind_address(V4)
        .bind_port(0)
        .ttl(0)
        .start();
    let failed = events.next_failed(LIMIT).await.expect("reported");
    assert_eq!(failed.operation, Operation::Config, "{failed}");
    assert_eq!(failed.errno, Some(libc::EINVAL));
    assert!(wait_until(LIMIT, || !server.connected()).await);
    assert!(events.try_created().is_none(), "never delivered");
}

#[actix::test]
async fn options_that_do_not_fit_are_config_errors() {
    let unfit = |builder: SocketFactoryBuilder| match builder.build() {
        Err(ConfigError::UnfitOption { option, .. }) => option,
        other => panic!("expected UnfitOption, got {other:?}"),
    };
    let udp = || {
        SocketFactory::builder()
            .socket_type(SocketType::Datagram)
            .bind_address(V4)
    };
    assert_eq!(unfit(udp().tcp_nodelay(true)), "TCP_NODELAY");
    assert_eq!(unfit(udp().linger(None)), "SO_LINGER");
    assert_eq!(
        unfit(SocketFactory::builder().join_multicast_v4(group_v4(), Ipv4Addr::UNSPECIFIED)),
        "IP_ADD_MEMBERSHIP"
    );
    assert_eq!(
        unfit(udp().join_multicast_v4(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::UNSPECIFIED)),
        "IP_ADD_MEMBERSHIP"
    );
    let unix = SocketFactory::builder()
        .domain(Domain::Unix)
        .bind_address(std::path::Path::new("/tmp/never-made.sock"))
        .tcp_nodelay(true);
    assert_eq!(unfit(unix), "TCP_NODELAY");
}

// ---- values the kernel would refuse are refused by build() ----

fn out_of_range(builder: SocketFactoryBuilder) -> &'static str {
    match builder.build() {
        Err(ConfigError::OutOfRange { setting, .. }) => setting,
        other => panic!("expected OutOfRange, got {other:?}"),
    }
}

#[test]
fn values_the_kernel_refuses_are_config_errors() {
    let server = || SocketFactory::builder().bind_address("127.0.0.1");
    let secs = Duration::from_secs;
    let linux = cfg!(any(target_os = "linux", target_os = "android"));
    if linux {
        assert_eq!(
            out_of_range(server().tcp_keepalive_time(secs(32_768))),
            "TCP_KEEPIDLE"
        );
        assert_eq!(
            out_of_range(server().tcp_keepalive_interval(secs(32_768))),
            "TCP_KEEPINTVL"
        );
        assert_eq!(
            out_of_range(server().tcp_keepalive_retries(128)),
            "TCP_KEEPCNT"
        );
    }
    assert_eq!(
        out_of_range(server().tcp_keepalive_time(Duration::from_millis(500))),
        "TCP_KEEPIDLE"
    );
    assert_eq!(
        out_of_range(server().tcp_keepalive_time(Duration::ZERO)),
        "TCP_KEEPIDLE"
    );
    assert_eq!(
        out_of_range(server().tcp_keepalive_retries(0)),
        "TCP_KEEPCNT"
    );
    assert_eq!(out_of_range(server().ttl(0)), "IP_TTL");
    assert_eq!(out_of_range(server().ttl(256)), "IP_TTL");
    assert_eq!(out_of_range(server().ttl(u32::MAX)), "IP_TTL");
    assert_eq!(
        out_of_range(server().send_buffer_size(i32::MAX as usize + 1)),
        "SO_SNDBUF"
    );
    assert_eq!(
        out_of_range(server().recv_buffer_size(usize::MAX)),
        "SO_RCVBUF"
    );
    assert_eq!(
        out_of_range(server().linger(Some(Duration::from_millis(500)))),
        "SO_LINGER"
    );
    assert_eq!(
        out_of_range(server().linger(Some(secs(i32::MAX as u64 + 1)))),
        "SO_LINGER"
    );
    // start() reports the same as a SocketFailed "config" (checked by the actor's start).
    let error = ConfigError::OutOfRange {
        setting: "IP_TTL",
        value: "0".into(),
        allowed: "1 to 255".into(),
    };
    assert!(error.to_string().contains("IP_TTL 0 is out of range"));
}

/// The bounds themselves are accepted, by build() and by the kernel on every accepted socket.
#[actix::test]
async fn the_limits_themselves_are_taken_by_the_kernel() {
    let mut events = Events::start();
    let max_secs = if cfg!(any(target_os = "linux", target_os = "android")) {
        32_767
    } else {
        3_600
    };
    let builder = events
        .builder()
        .bind_address("127.0.0.1")
        .bind_port(0)
        .tcp_keepalive_time(Duration::from_secs(max_secs))
        .tcp_keepalive_interval(Duration::from_secs(max_secs))
        .tcp_keepalive_retries(if max_secs == 32_767 { 127 } else { 9 })
        .linger(Some(Duration::from_secs(1)))
        .ttl(255);
    assert!(builder.clone().build().is_ok());
    let (_server, addr) = start_and_locate(builder).await.expect("server");
    let _client = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let created = events
        .next_created(LIMIT)
        .await
        .expect("accepted, not dropped");
    let socket = &created.socket;
    assert_eq!(
        socket.tcp_keepalive_time().expect("idle"),
        Duration::from_secs(max_secs)
    );
    assert_eq!(socket.ttl_v4().expect("ttl"), 255);
    let failed = events.try_failed();
    assert!(failed.is_none(), "{failed:?}");
}

#[actix::test]
async fn an_out_of_range_option_given_to_start_is_a_config_failure() {
    let mut events = Events::start();
    let _factory = events.builder().bind_address("127.0.0.1").ttl(0).start();
    let failed = events.next_failed(LIMIT).await.expect("a failure");
    assert_eq!(failed.operation, Operation::Config, "{failed}");
    assert_eq!(failed.errno, Some(libc::EINVAL));
}
