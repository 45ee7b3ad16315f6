//! PROXY protocol on accepted connections (feature `proxy-protocol`): headers written by hand
//! and by a real HAProxy in front of a factory, bad and silent clients, the delivery cap.
#![cfg(feature = "proxy-protocol")]

mod util;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actix::Addr;
use actix_socket_factory::testing::start_and_locate;
use actix_socket_factory::{
    ConfigError, GetStats, PauseAccept, ProxyCommand, ProxyPolicy, ProxyProtocol, ProxyTransport,
    ProxyVersion, ResumeAccept, SocketAddress, SocketCreated, SocketFactory, SocketType,
    StopFactory,
};
use util::*;

const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";

/// A v2 PROXY header for a TCP over IPv4 client, with TLVs.
fn v2_header(source: SocketAddr, destination: SocketAddr, tlvs: &[(u8, &[u8])]) -> Vec<u8> {
    let (SocketAddr::V4(src), SocketAddr::V4(dst)) = (source, destination) else {
        panic!("IPv4 only here");
    };
    let mut body = Vec::new();
    body.extend_from_slice(&src.ip().octets());
    body.extend_from_slice(&dst.ip().octets());
    body.extend_from_slice(&src.port().to_be_bytes());
    body.extend_from_slice(&dst.port().to_be_bytes());
    for (kind, value) in tlvs {
        body.push(*kind);
        body.extend_from_slice(&(value.len() as u16).to_be_bytes());
        body.extend_from_slice(value);
    }
    let mut out = V2_SIGNATURE.to_vec();
    out.extend_from_slice(&[0x21, 0x11]);
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend(body);
    out
}

/// A read that saw the server close (EOF, or a reset after data it never read), not a timeout.
fn closed(read: std::io::Result<usize>) -> bool {
    match read {
        Ok(n) => n == 0,
        Err(error) => error.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

/// Whether the server closes `client`'s connection within `within`, waited for on a blocking
/// thread (a blocking read here would stop the server on this test's runtime); the client back.
async fn closes_within(mut client: TcpStream, within: Duration) -> (TcpStream, bool) {
    tokio::task::spawn_blocking(move || {
        client.set_read_timeout(Some(within)).expect("timeout");
        let got = client.read(&mut [0; 1]);
        (client, closed(got))
    })
    .await
    .expect("the reading thread")
}

fn inet(text: &str) -> SocketAddress {
    SocketAddress::Inet(text.parse().expect("a socket address"))
}

/// A server on 127.0.0.1 reading PROXY headers as `proxy` says.
async fn proxy_server(events: &Events, proxy: ProxyProtocol) -> (Addr<SocketFactory>, SocketAddr) {
    start_and_locate(
        events
            .builder()
            .bind_address(Ipv4Addr::LOCALHOST)
            .bind_port(0)
            .proxy_protocol(proxy),
    )
    .await
    .expect("server listening")
}

/// Reads what the client sent after its header, from the delivered socket.
fn client_bytes(created: SocketCreated, len: usize) -> Vec<u8> {
    let mut stream = created.into_std_tcp_stream().expect("a TCP stream");
    stream.set_nonblocking(false).expect("blocking");
    stream.set_read_timeout(Some(LIMIT)).expect("read timeout");
    let mut out = vec![0; len];
    stream.read_exact(&mut out).expect("the client's bytes");
    out
}

#[actix::test]
async fn v1_and_v2_headers_give_the_clients_address_and_keep_its_bytes() {
    let mut events = Events::start();
    let (server, addr) = proxy_server(&events, ProxyProtocol::required()).await;

    let mut v1 = TcpStream::connect(addr).expect("connect");
    v1.write_all(b"PROXY TCP4 203.0.113.7 192.0.2.1 40001 443\r\nhello v1")
        .expect("write");
    let created = events
        .next_created(LIMIT)
        .await
        .expect("v1 client delivered");
    assert_eq!(created.peer, Some(inet("203.0.113.7:40001")));
    let header = created.proxy_header.as_deref().expect("a header").clone();
    assert_eq!(header.version(), ProxyVersion::V1);
    assert_eq!(header.transport(), ProxyTransport::Stream);
    assert_eq!(header.destination(), Some(&inet("192.0.2.1:443")));
    assert_eq!(
        header.balancer(),
        Some(&SocketAddress::Inet(v1.local_addr().expect("local")))
    );
    assert_nonblocking(&created.socket);
    assert_cloexec(&created.socket);
    assert_eq!(client_bytes(created, 8), b"hello v1");

    let mut v2 = TcpStream::connect(addr).expect("connect");
    let header = v2_header(
        "198.51.100.9:5000".parse().unwrap(),
        "192.0.2.1:8443".parse().unwrap(),
        &[(0x01, b"h2"), (0x02, b"api.example"), (0x05, b"req-1")],
    );
    v2.write_all(&[&header[..], b"hello v2"].concat())
        .expect("write");
    let created = events
        .next_created(LIMIT)
        .await
        .expect("v2 client delivered");
    assert_eq!(created.peer, Some(inet("198.51.100.9:5000")));
    let proxy = created.proxy_header.as_deref().expect("a header");
    assert_eq!(proxy.version(), ProxyVersion::V2);
    assert_eq!(proxy.alpn(), Some(&b"h2"[..]));
    assert_eq!(proxy.authority(), Some("api.example"));
    assert_eq!(proxy.unique_id(), Some(&b"req-1"[..]));
    assert_eq!(proxy.header_len(), header.len());
    assert_eq!(client_bytes(created, 8), b"hello v2");

    let stats = server.send(GetStats).await.expect("stats");
    assert_eq!((stats.proxy.headers, stats.proxy.dropped), (2, 0));
    assert!(events.try_failed().is_none());
}

#[actix::test]
async fn a_local_header_is_delivered_with_the_balancers_address() {
    let mut events = Events::start();
    let (_server, addr) = proxy_server(&events, ProxyProtocol::required()).await;
    let mut check = TcpStream::connect(addr).expect("connect");
    // LOCAL, AF_UNSPEC, no addresses: what a balancer's health check sends.
    check
        .write_all(&[V2_SIGNATURE, &[0x20, 0x00, 0, 0][..]].concat())
        .expect("write");
    let created = events.next_created(LIMIT).await.expect("delivered");
    let balancer = SocketAddress::Inet(check.local_addr().expect("local"));
    assert_eq!(created.peer, Some(balancer.clone()));
    let header = created.proxy_header.as_deref().expect("a header");
    assert_eq!(header.command(), ProxyCommand::Local);
    assert_eq!(header.balancer(), Some(&balancer));
}

#[actix::test]
async fn bad_clients_are_dropped_and_counted_never_reported() {
    let mut events = Events::start();
    let proxy = ProxyProtocol::required()
        .header_timeout(Duration::from_millis(300))
        .max_header_len(1024);
    let (server, addr) = proxy_server(&events, proxy).await;
    let mut clients = Vec::new();
    for bytes in [
        &b"PROXY TCP4 1.2.3.4 nonsense\r\n"[..], // malformed
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",    // no header
        &[V2_SIGNATURE, &[0x21, 0x11, 0xff, 0xff][..]].concat(), // 65,551 bytes announced
        b"PROXY TCP4 1.2.3.4 ",                  // silent after a partial header
        b"",                                     // silent
    ] {
        let mut client = TcpStream::connect(addr).expect("connect");
        client.write_all(bytes).expect("write");
        clients.push(client);
    }
    let mut closing = TcpStream::connect(addr).expect("connect");
    closing.write_all(b"PROXY TCP4").expect("write");
    drop(closing);

    let deadline = Instant::now() + LIMIT;
    let stats = loop {
        let stats = server.send(GetStats).await.expect("stats");
        if stats.proxy.dropped == 6 || Instant::now() > deadline {
            break stats;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(stats.proxy.dropped, 6, "{stats:?}");
    assert_eq!(stats.proxy.malformed, 3, "{stats:?}");
    assert_eq!(stats.proxy.timed_out, 2, "{stats:?}");
    assert_eq!(stats.proxy.headers, 0);
    assert_eq!(
        stats.outstanding, 0,
        "dropped clients give their permits back"
    );
    assert!(events.try_created().is_none());
    assert!(
        events.try_failed().is_none(),
        "never a SocketFailed per client"
    );

    // Each dropped client sees its connection closed.
    for mut client in clients {
        client.set_read_timeout(Some(LIMIT)).expect("timeout");
        let mut buf = [0; 1];
        assert!(closed(client.read(&mut buf)));
    }
    // And the server goes on.
    let mut good = TcpStream::connect(addr).expect("connect");
    good.write_all(b"PROXY TCP4 10.0.0.1 10.0.0.2 1 2\r\n")
        .expect("write");
    let created = events.next_created(LIMIT).await.expect("delivered");
    assert_eq!(created.peer, Some(inet("10.0.0.1:1")));
}

/// Waits until the server has `pending` header reads (or held connections).
async fn wait_pending(server: &Addr<SocketFactory>, pending: u64) {
    let deadline = Instant::now() + LIMIT;
    loop {
        let stats = server.send(GetStats).await.expect("stats");
        if stats.proxy.pending == pending {
            return;
        }
        assert!(Instant::now() < deadline, "{pending} pending: {stats:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A good client's latency: from its connect to its delivery, with its bytes intact.
async fn good_client_latency(events: &mut Events, addr: SocketAddr, n: u16) -> Duration {
    let started = Instant::now();
    let good = std::thread::spawn(move || {
        let mut good = TcpStream::connect(addr).expect("connect");
        good.write_all(format!("PROXY TCP4 10.1.2.3 10.0.0.1 {n} 80\r\nping").as_bytes())
            .expect("write");
        good
    });
    let created = events.next_created(LIMIT).await.expect("the good client");
    let latency = started.elapsed();
    let _good = good.join().expect("good client");
    assert_eq!(created.peer, Some(inet(&format!("10.1.2.3:{n}"))));
    assert_eq!(client_bytes(created, 4), b"ping");
    latency
}

/// Issue 21: pending header reads hold no place under `max_outstanding` (which counts
/// deliveries): 4 silent clients at `max_outstanding(4)` keep nobody waiting.
#[actix::test]
async fn silent_clients_at_max_outstanding_do_not_stall_a_good_one() {
    let mut events = Events::start();
    let proxy = ProxyProtocol::required().header_timeout(Duration::from_secs(5));
    let (server, addr) = start_and_locate(
        events
            .builder()
            .bind_address(Ipv4Addr::LOCALHOST)
            .max_outstanding(4)
            .proxy_protocol(proxy),
    )
    .await
    .expect("server");
    let silent: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    wait_pending(&server, 4).await;
    assert_eq!(server.send(GetStats).await.expect("stats").outstanding, 0);
    let mut latencies = Vec::new();
    let mut held = Vec::new();
    // Four good clients, each kept by the owner: the delivery cap fills with them, not with
    // the silent ones.
    for n in 1..=4 {
        latencies.push(good_client_latency(&mut events, addr, n).await);
        held.push(n);
    }
    latencies.sort();
    println!(
        "good clients with 4 silent ones at max_outstanding(4): median {:?}, max {:?}",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
    assert!(
        latencies[latencies.len() - 1] < Duration::from_millis(500),
        "{latencies:?}"
    );
    let stats = server.send(GetStats).await.expect("stats");
    assert_eq!(
        (stats.proxy.pending, stats.proxy.timed_out),
        (4, 0),
        "{stats:?}"
    );
    drop(silent);
}

/// A header read while the owner holds `max_outstanding` deliveries waits (held, not dropped)
/// until one of them is dropped: the cap still bounds deliveries.
#[actix::test]
async fn a_header_read_at_the_delivery_cap_waits_for_a_place() {
    let mut events = Events::start();
    let (server, addr) = start_and_locate(
        events
            .builder()
            .bind_address(Ipv4Addr::LOCALHOST)
            .max_outstanding(1)
            .proxy_protocol(ProxyProtocol::required()),
    )
    .await
    .expect("server");
    let mut slow = TcpStream::connect(addr).expect("connect");
    slow.write_all(b"PROXY TCP4 10.0.0.").expect("write");
    wait_pending(&server, 1).await;
    events
        .expect_no_created(Duration::from_millis(50))
        .await
        .expect("nothing yet");
    // The cap fills with a delivery the owner keeps.
    let mut first = TcpStream::connect(addr).expect("connect");
    first
        .write_all(b"PROXY TCP4 10.0.0.1 10.0.0.9 1 80\r\n")
        .expect("write");
    let kept = events.next_created(LIMIT).await.expect("the first client");
    assert_eq!(kept.peer, Some(inet("10.0.0.1:1")));
    // The slow client's header completes: read, held at the cap.
    slow.write_all(b"2 10.0.0.9 2 80\r\n").expect("write");
    let deadline = Instant::now() + LIMIT;
    loop {
        let stats = server.send(GetStats).await.expect("stats");
        if stats.proxy.headers == 2 {
            assert_eq!(
                (stats.proxy.pending, stats.outstanding),
                (1, 1),
                "{stats:?}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "header read: {stats:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    events
        .expect_no_created(Duration::from_millis(200))
        .await
        .expect("held at the cap");
    drop(kept);
    let created = events
        .next_created(LIMIT)
        .await
        .expect("delivered once a place is free");
    assert_eq!(created.peer, Some(inet("10.0.0.2:2")));
    drop(first);
}

/// Issue 21, point 4: no header deadline (`Duration::MAX` and other huge timeouts) is no panic:
/// a silent raw client stays pending, the server goes on, the stop closes it.
#[actix::test]
async fn a_header_timeout_of_duration_max_panics_nothing() {
    for proxy in [
        ProxyProtocol::required().header_timeout(Duration::MAX),
        ProxyProtocol::optional().header_timeout(Duration::MAX),
        ProxyProtocol::required().header_timeout(Duration::from_secs(u64::MAX / 3)),
        ProxyProtocol::required()
            .header_timeout(actix_socket_factory::PROXY_NO_DEADLINE - Duration::from_secs(1)),
    ] {
        let mut events = Events::start();
        let (server, addr) = proxy_server(&events, proxy.clone()).await;
        let silent = TcpStream::connect(addr).expect("connect");
        let mut partial = TcpStream::connect(addr).expect("connect");
        partial.write_all(b"PROXY TCP4 ").expect("write");
        wait_pending(&server, 2).await;
        // Both connections stay open (a panicking read would have closed them).
        let (silent, gone) = closes_within(silent, Duration::from_millis(200)).await;
        assert!(!gone, "{proxy:?}: the silent client stays");
        let (partial, gone) = closes_within(partial, Duration::from_millis(200)).await;
        assert!(!gone, "{proxy:?}: the partial client stays");
        assert!(good_client_latency(&mut events, addr, 1).await < LIMIT);
        let stats = server.send(GetStats).await.expect("stats");
        assert_eq!(
            (stats.proxy.pending, stats.proxy.dropped),
            (2, 0),
            "{stats:?}"
        );
        server.send(StopFactory).await.expect("stopped");
        for client in [silent, partial] {
            assert!(closes_within(client, LIMIT).await.1, "closed by the stop");
        }
        assert!(events.try_failed().is_none());
    }
}

/// Issue 21, point 3: a v1 line that ends in LF without CR is dropped at once, not at the
/// header deadline.
#[actix::test]
async fn a_v1_line_ending_in_lf_alone_is_dropped_at_once() {
    let mut events = Events::start();
    let timeout = Duration::from_secs(5);
    let (server, addr) =
        proxy_server(&events, ProxyProtocol::required().header_timeout(timeout)).await;
    let mut took = Vec::new();
    for line in [
        &b"PROXY TCP4 6.6.6.6 10.0.0.1 1234 80\n"[..],
        b"PROXY TCP4 6.6.6.6 10.0.0.1 1234 80\nGET / HTTP/1.1\r\n\r\n",
    ] {
        let mut client = TcpStream::connect(addr).expect("connect");
        let started = Instant::now();
        client.write_all(line).expect("write");
        let (_client, dropped) = closes_within(client, timeout * 2).await;
        assert!(dropped, "dropped");
        took.push(started.elapsed());
    }
    println!("LF-only v1 lines dropped in {took:?} (header timeout {timeout:?})");
    assert!(
        took.iter().all(|t| *t < Duration::from_millis(500)),
        "{took:?}"
    );
    let stats = server.send(GetStats).await.expect("stats");
    assert_eq!(
        (stats.proxy.malformed, stats.proxy.timed_out),
        (2, 0),
        "{stats:?}"
    );
    events
        .expect_no_created(Duration::from_millis(50))
        .await
        .expect("nothing delivered");
}

/// Issue 21, point 3: header reads under way when `PauseAccept` arrives finish, but their
/// connections are held until `ResumeAccept`.
#[actix::test]
async fn reads_finished_during_a_pause_are_held_until_resume() {
    let mut events = Events::start();
    let (server, addr) = proxy_server(&events, ProxyProtocol::required()).await;
    let mut clients: Vec<TcpStream> = (0..5)
        .map(|_| {
            let mut client = TcpStream::connect(addr).expect("connect");
            client.write_all(b"PROXY TCP4 10.0.0.").expect("write");
            client
        })
        .collect();
    wait_pending(&server, 5).await;
    server.send(PauseAccept).await.expect("paused");
    for (n, client) in clients.iter_mut().enumerate() {
        client
            .write_all(format!("{n} 10.0.0.9 {} 80\r\nhi", 1000 + n).as_bytes())
            .expect("write");
    }
    // All five headers are read (and counted), none is delivered.
    let deadline = Instant::now() + LIMIT;
    loop {
        let stats = server.send(GetStats).await.expect("stats");
        if stats.proxy.headers == 5 {
            assert_eq!(stats.proxy.pending, 5, "held: {stats:?}");
            break;
        }
        assert!(Instant::now() < deadline, "headers read: {stats:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    events
        .expect_no_created(Duration::from_millis(300))
        .await
        .expect("nothing delivered during the pause");
    server.send(ResumeAccept).await.expect("resumed");
    let mut peers = Vec::new();
    for _ in 0..5 {
        let created = events
            .next_created(LIMIT)
            .await
            .expect("delivered on resume");
        peers.push(created.peer.clone().expect("a peer"));
        assert_eq!(client_bytes(created, 2), b"hi");
    }
    let expected: Vec<SocketAddress> = (0..5)
        .map(|n| inet(&format!("10.0.0.{n}:{}", 1000 + n)))
        .collect();
    assert_eq!(peers, expected, "in the order their headers were read");
    assert_eq!(server.send(GetStats).await.expect("stats").proxy.pending, 0);
}

/// A client bound to `ip` (a loopback address other than 127.0.0.1) connected to `addr`.
fn client_from(ip: Ipv4Addr, addr: SocketAddr) -> TcpStream {
    let client =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    client
        .bind(&SocketAddr::from((ip, 0)).into())
        .expect("bind a loopback address");
    client.connect(&addr.into()).expect("connect");
    client.into()
}

/// Issue 21, point 1: a direct client outside the trusted networks that forges a header is
/// served as itself with the header stripped (the default, `Ignore`), or refused (`Reject`).
#[actix::test]
async fn forged_headers_from_untrusted_clients_are_stripped_or_refused() {
    let mut events = Events::start();
    let balancers = "192.0.2.0/24".parse().expect("a network");
    let (server, addr) =
        proxy_server(&events, ProxyProtocol::required().allow_from([balancers])).await;
    // Sent at once, and sent slowly (the header's first half, then the rest): both stripped.
    for parts in [
        vec![&b"PROXY TCP4 6.6.6.6 10.0.0.2 1 2\r\nGET / HTTP/1.0\r\n"[..]],
        vec![
            &b"PROXY TCP4 6.6."[..],
            b"6.6 10.0.0.2 1 2\r\nGET / HTTP/1.0\r\n",
        ],
    ] {
        let mut direct = TcpStream::connect(addr).expect("connect");
        direct.set_nodelay(true).expect("nodelay");
        for part in parts {
            direct.write_all(part).expect("write");
            std::thread::sleep(Duration::from_millis(30));
        }
        let created = events.next_created(LIMIT).await.expect("delivered");
        // Its header is not believed: the peer is its own; nor seen: its data comes first.
        assert_eq!(
            created.peer,
            Some(SocketAddress::Inet(direct.local_addr().expect("local")))
        );
        assert!(created.proxy_header.is_none());
        assert_eq!(client_bytes(created, 16), b"GET / HTTP/1.0\r\n");
    }
    // A direct client without a header is served at once.
    let mut plain = TcpStream::connect(addr).expect("connect");
    plain.write_all(b"hello").expect("write");
    let created = events.next_created(LIMIT).await.expect("delivered");
    assert_eq!(client_bytes(created, 5), b"hello");
    let stats = server.send(GetStats).await.expect("stats");
    assert_eq!(
        (stats.proxy.direct, stats.proxy.ignored, stats.proxy.headers),
        (3, 2, 0),
        "{stats:?}"
    );

    let refuse = ProxyProtocol::required()
        .allow_from([balancers])
        .default_policy(ProxyPolicy::Reject);
    let (server, addr) = proxy_server(&events, refuse).await;
    let mut refused = TcpStream::connect(addr).expect("connect");
    let _ = refused.write_all(b"PROXY TCP4 6.6.6.6 10.0.0.2 1 2\r\n");
    assert!(closes_within(refused, LIMIT).await.1, "refused");
    assert_eq!(server.send(GetStats).await.expect("stats").proxy.refused, 1);
    events
        .expect_no_created(Duration::from_millis(100))
        .await
        .expect("nothing delivered");
}

/// The deprecated `untrusted` still works, with `Direct` now stripping a forged header.
#[actix::test]
#[allow(deprecated)]
async fn the_deprecated_untrusted_setting_maps_to_policies() {
    use actix_socket_factory::Untrusted;
    let mut events = Events::start();
    let balancers = "192.0.2.0/24".parse().expect("a network");
    let direct = ProxyProtocol::required()
        .allow_from([balancers])
        .untrusted(Untrusted::Direct);
    let (_server, addr) = proxy_server(&events, direct).await;
    let mut client = TcpStream::connect(addr).expect("connect");
    client
        .write_all(b"PROXY TCP4 6.6.6.6 10.0.0.2 1 2\r\nx")
        .expect("write");
    let created = events.next_created(LIMIT).await.expect("delivered");
    assert!(created.proxy_header.is_none());
    assert_eq!(client_bytes(created, 1), b"x");
    let refuse = ProxyProtocol::required()
        .allow_from([balancers])
        .untrusted(Untrusted::Refuse);
    let (server, addr) = proxy_server(&events, refuse).await;
    let _refused = TcpStream::connect(addr).expect("connect");
    let deadline = Instant::now() + LIMIT;
    while server.send(GetStats).await.expect("stats").proxy.refused < 1 {
        assert!(Instant::now() < deadline, "refused and counted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[actix::test]
async fn a_unix_stream_server_reads_headers_too() {
    let mut events = Events::start();
    let (_dir, path) = temp_socket_path("proxied.sock");
    let server = events
        .builder()
        .bind_address(path.as_path())
        .proxy_protocol(ProxyProtocol::required())
        .start();
    server
        .send(actix_socket_factory::GetSockName)
        .await
        .expect("mailbox")
        .expect("listening");
    let mut client = std::os::unix::net::UnixStream::connect(&path).expect("connect");
    let header = v2_header(
        "198.51.100.9:5000".parse().unwrap(),
        "192.0.2.1:80".parse().unwrap(),
        &[],
    );
    client
        .write_all(&[&header[..], b"x"].concat())
        .expect("write");
    let created = events.next_created(LIMIT).await.expect("delivered");
    assert_eq!(created.peer, Some(inet("198.51.100.9:5000")));
    assert_eq!(
        created.proxy_header.as_deref().and_then(|h| h.balancer()),
        None,
        "a UNIX client has no address"
    );
    assert!(created.credentials.is_some());
}

/// Issue 21, point 1, UNIX peers: their own policy. `Ignore` serves a UNIX client as itself
/// with a forged header stripped; `Reject` refuses it.
#[actix::test]
async fn unix_clients_get_their_own_policy() {
    let mut events = Events::start();
    for policy in [ProxyPolicy::Ignore, ProxyPolicy::Reject] {
        let (_dir, path) = temp_socket_path("policy.sock");
        let server = events
            .builder()
            .bind_address(path.as_path())
            .proxy_protocol(ProxyProtocol::required().unix_policy(policy))
            .start();
        server
            .send(actix_socket_factory::GetSockName)
            .await
            .expect("mailbox")
            .expect("listening");
        let mut client = std::os::unix::net::UnixStream::connect(&path).expect("connect");
        let forged = v2_header(
            "6.6.6.6:666".parse().unwrap(),
            "192.0.2.1:80".parse().unwrap(),
            &[],
        );
        client
            .write_all(&[&forged[..], b"x"].concat())
            .expect("write");
        if policy == ProxyPolicy::Ignore {
            let created = events.next_created(LIMIT).await.expect("delivered");
            assert_eq!(created.peer, None, "not the forged address");
            assert!(created.proxy_header.is_none());
            let mut stream =
                std::os::unix::net::UnixStream::from(std::os::fd::OwnedFd::from(created.socket));
            stream.set_nonblocking(false).expect("blocking");
            stream.set_read_timeout(Some(LIMIT)).expect("timeout");
            let mut got = [0; 1];
            stream.read_exact(&mut got).expect("the client's byte");
            assert_eq!(&got, b"x");
        } else {
            let deadline = Instant::now() + LIMIT;
            while server.send(GetStats).await.expect("stats").proxy.refused < 1 {
                assert!(Instant::now() < deadline, "refused and counted");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            events
                .expect_no_created(Duration::from_millis(100))
                .await
                .expect("nothing delivered");
        }
        server.send(StopFactory).await.expect("stopped");
    }
}

#[test]
fn proxy_protocol_is_for_stream_servers_with_a_deadline() {
    let unfit = |builder: actix_socket_factory::SocketFactoryBuilder| {
        matches!(
            builder.build(),
            Err(ConfigError::UnfitOption {
                option: "PROXY protocol",
                ..
            })
        )
    };
    let proxy = ProxyProtocol::required;
    assert!(unfit(
        SocketFactory::builder()
            .remote_address("127.0.0.1")
            .remote_port(1)
            .proxy_protocol(proxy())
    ));
    assert!(unfit(
        SocketFactory::builder()
            .socket_type(SocketType::Datagram)
            .proxy_protocol(proxy())
    ));
    assert!(unfit(
        SocketFactory::builder().proxy_protocol(proxy().header_timeout(Duration::ZERO))
    ));
    assert!(unfit(
        SocketFactory::builder().proxy_protocol(proxy().max_pending(0))
    ));
}

// ---------------------------------------------------------------------------------------------
// 5,000 silent clients and good ones, in a child process (descriptors).

const SILENT: usize = 5000;

/// Connects `n` clients that send nothing, from a thread.
fn silent_clients(addr: SocketAddr, n: usize) -> std::thread::JoinHandle<Vec<TcpStream>> {
    std::thread::spawn(move || {
        (0..n)
            .map(|_| TcpStream::connect(addr).expect("connect"))
            .collect::<Vec<_>>()
    })
}

/// Waits until the server has accepted `accepted` clients and holds `pending` reads.
async fn wait_accepted(server: &Addr<SocketFactory>, accepted: u64, pending: u64) {
    let deadline = Instant::now() + LIMIT * 3;
    loop {
        let stats = server.send(GetStats).await.expect("stats");
        if stats.accepted >= accepted && stats.proxy.pending == pending {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "silent clients accepted: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Raises the hard descriptor limit to `wanted` where it is lower and this process may (root);
/// otherwise leaves it (the caller then skips).
fn raise_hard_fd_limit(wanted: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the one rlimit struct we pass.
    unsafe {
        // rlim_t is u64 on Linux and macOS, i64 on FreeBSD (where RLIM_INFINITY is i64::MAX).
        #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
        let wanted = wanted.min(i64::MAX as u64) as libc::rlim_t;
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_max < wanted {
            limit.rlim_max = wanted;
            limit.rlim_cur = limit.rlim_cur.min(wanted);
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// This process's resident memory, in KiB (from /proc/self/status).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix("VmRSS:")
                    .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

/// Ten good clients one after another: (median, max) latency.
async fn good_latencies(events: &mut Events, addr: SocketAddr) -> (Duration, Duration) {
    let mut latencies = Vec::new();
    for n in 1..=10 {
        latencies.push(good_client_latency(events, addr, n).await);
    }
    latencies.sort();
    (
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1],
    )
}

/// Issue 21, point 2: 5,000 silent clients, all pending at once (`max_pending` above them), or
/// at the default bound (1,024: the oldest evicted as new ones come): a good client is served
/// within milliseconds either way, and the memory held is bounded by `max_pending`.
#[test]
fn silent_clients_do_not_delay_a_good_one() {
    if !run_in_child("silent_clients_do_not_delay_a_good_one") {
        return;
    }
    // Bounded: 5,000 clients and their 5,000 accepted sockets, and room for the rest.
    let wanted = 2 * SILENT as u64 + 500;
    raise_hard_fd_limit(wanted);
    let limit = util::set_fd_limit(Some(wanted));
    if limit < wanted {
        util::child::skip(&format!(
            "descriptor limit {limit} is too low for {SILENT} clients"
        ));
        return;
    }
    let system = actix::System::new();
    system.block_on(async {
        let mut events = Events::start();
        let timeout = Duration::from_secs(30);
        // All 5,000 pending at once.
        let proxy = ProxyProtocol::required()
            .header_timeout(timeout)
            .max_pending(SILENT + 100);
        let (server, addr) = proxy_server(&events, proxy).await;
        let rss_before = rss_kib();
        let silent = silent_clients(addr, SILENT);
        wait_accepted(&server, SILENT as u64, SILENT as u64).await;
        let silent = silent.join().expect("clients");
        // User-space memory per pending read (the task, its registration, its buffer; the
        // clients' side adds a little: their Vec).
        let per_read = (rss_kib().saturating_sub(rss_before)) * 1024 / SILENT as u64;
        println!("resident memory per pending read: about {per_read} bytes");
        assert!(per_read < 16 * 1024, "{per_read} bytes per pending read");
        let (median, max) = good_latencies(&mut events, addr).await;
        println!(
            "good client with {SILENT} silent clients pending: median {median:?}, max {max:?}"
        );
        assert!(max < Duration::from_millis(500), "{max:?}");
        let stats = server.send(GetStats).await.expect("stats");
        assert_eq!(
            (stats.proxy.pending, stats.proxy.dropped, stats.outstanding),
            (SILENT as u64, 0, 0),
            "{stats:?}"
        );
        server.send(StopFactory).await.expect("stopped");
        drop(silent);

        // The default bound: the oldest reads are evicted (closed) as new ones come.
        let (server, addr) =
            proxy_server(&events, ProxyProtocol::required().header_timeout(timeout)).await;
        let silent = silent_clients(addr, SILENT);
        let bound = actix_socket_factory::DEFAULT_PROXY_MAX_PENDING as u64;
        wait_accepted(&server, SILENT as u64, bound).await;
        let mut silent = silent.join().expect("clients");
        let (median, max) = good_latencies(&mut events, addr).await;
        println!(
            "good client after {SILENT} silent clients at the default max_pending ({bound}): \
             median {median:?}, max {max:?}"
        );
        assert!(max < Duration::from_millis(500), "{max:?}");
        let stats = server.send(GetStats).await.expect("stats");
        // Each silent client is pending or evicted (a good client whose header came after its
        // accept took a place too, evicting one more), never more than the bound pending.
        assert!(stats.proxy.pending <= bound, "{stats:?}");
        assert_eq!(
            stats.proxy.pending + stats.proxy.evicted,
            SILENT as u64,
            "{stats:?}"
        );
        assert!(stats.proxy.evicted >= SILENT as u64 - bound, "{stats:?}");
        assert_eq!(stats.proxy.timed_out, 0);
        // The evicted are the oldest: the first client is closed, the last one still waits.
        let last = silent.pop().expect("clients");
        let first = silent.swap_remove(0);
        assert!(
            closes_within(first, LIMIT).await.1,
            "the oldest was evicted"
        );
        let (_last, gone) = closes_within(last, Duration::from_millis(100)).await;
        assert!(!gone, "the newest still waits");
        assert!(events.try_failed().is_none());
        println!("silent ok");
    });
}

// ---------------------------------------------------------------------------------------------
// The real thing: HAProxy in front of a factory.

/// A running `haproxy`, killed when dropped.
struct Haproxy {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port: bound, then released.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// Whether something listens on 127.0.0.1:`port` (from /proc/net/tcp, without connecting:
/// a probe connection would reach the server through HAProxy).
fn listening(port: u16) -> bool {
    let wanted = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/tcp").is_ok_and(|table| {
        table.lines().skip(1).any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(1) == Some(&wanted.as_str()) && fields.get(3) == Some(&"0A")
        })
    })
}

/// Starts haproxy on a free loopback port in front of `backend`, with `server_options` on its
/// server line; returns it once it listens.
async fn start_haproxy(backend: SocketAddr, server_options: &str) -> (Haproxy, SocketAddr) {
    let dir = tempfile::tempdir().expect("temp dir");
    let front = free_port();
    let config = format!(
        "global\n    maxconn 64\n\n\
         defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\n\
         frontend front\n    bind 127.0.0.1:{front}\n    unique-id-format uid-%rt\n    default_backend factory\n\n\
         backend factory\n    server factory {backend} {server_options}\n"
    );
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(&path, config).expect("write haproxy.cfg");
    let program = util::haproxy().expect("haproxy, checked by the caller");
    let child = Command::new(program)
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn haproxy");
    let mut haproxy = Haproxy { child, _dir: dir };
    let up = wait_until(LIMIT, || listening(front)).await;
    if !up {
        let _ = haproxy.child.kill();
        let mut err = String::new();
        if let Some(mut stderr) = haproxy.child.stderr.take() {
            let _ = stderr.read_to_string(&mut err);
        }
        panic!("haproxy did not listen on {front}: {err}");
    }
    (haproxy, SocketAddr::from((Ipv4Addr::LOCALHOST, front)))
}

/// A client on 127.0.0.2 (a known address, not the balancer's) through HAProxy: the factory
/// delivers it with its own address as peer, HAProxy's as the balancer, its bytes intact.
async fn through_haproxy(server_options: &str, version: ProxyVersion) {
    if util::haproxy().is_none() {
        return;
    }
    let mut events = Events::start();
    let (server, backend) = proxy_server(&events, ProxyProtocol::required()).await;
    let (_haproxy, front) = start_haproxy(backend, server_options).await;

    let client =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    client
        .bind(&SocketAddr::from((Ipv4Addr::new(127, 0, 0, 2), 0)).into())
        .expect("bind 127.0.0.2");
    client.connect(&front.into()).expect("connect to haproxy");
    let mut client: TcpStream = client.into();
    let client_addr = client.local_addr().expect("client address");
    let hello = b"first bytes of the client\n";
    client.write_all(hello).expect("write");

    let created = events
        .next_created(LIMIT)
        .await
        .expect("delivered through haproxy");
    assert_eq!(created.peer, Some(SocketAddress::Inet(client_addr)));
    let header = created.proxy_header.as_deref().expect("a header").clone();
    assert_eq!(header.version(), version);
    assert_eq!(header.command(), ProxyCommand::Proxy);
    assert_eq!(header.destination(), Some(&SocketAddress::Inet(front)));
    let balancer = created.socket.peer_addr().expect("the connection's peer");
    let balancer = SocketAddress::Inet(balancer.as_socket().expect("an INET peer"));
    assert_eq!(header.balancer(), Some(&balancer));
    if version == ProxyVersion::V2 {
        let id = header.unique_id().expect("HAProxy's unique id TLV");
        assert!(id.starts_with(b"uid-"), "{:?}", String::from_utf8_lossy(id));
    }
    let got = client_bytes(created, hello.len());
    assert_eq!(got, hello);

    let stats = server.send(GetStats).await.expect("stats");
    assert_eq!(
        (stats.proxy.headers, stats.proxy.dropped),
        (1, 0),
        "{stats:?}"
    );
    assert!(events.try_failed().is_none());
}

#[actix::test]
async fn haproxy_send_proxy_v1() {
    through_haproxy("send-proxy", ProxyVersion::V1).await;
}

#[actix::test]
async fn haproxy_send_proxy_v2() {
    through_haproxy("send-proxy-v2 proxy-v2-options unique-id", ProxyVersion::V2).await;
}

/// Issue 21, point 1: one listener, three kinds of sources. HAProxy (from 127.0.0.1, a trusted
/// balancer) gives the real client; a direct client from 127.0.0.3 forging
/// `PROXY TCP4 6.6.6.6 ...` is served as itself with the header stripped (the default,
/// `Ignore`); one from 127.0.0.4 (a `Reject` rule) is refused.
#[actix::test]
async fn haproxy_and_forging_clients_on_one_listener() {
    if util::haproxy().is_none() {
        return;
    }
    let mut events = Events::start();
    let proxy = ProxyProtocol::required()
        .policy_for(
            ["127.0.0.1".parse().expect("an address")],
            ProxyPolicy::Require,
        )
        .policy_for(
            ["127.0.0.4/32".parse().expect("a network")],
            ProxyPolicy::Reject,
        );
    let (server, backend) = proxy_server(&events, proxy).await;
    let (_haproxy, front) = start_haproxy(backend, "send-proxy-v2").await;

    let forged = b"PROXY TCP4 6.6.6.6 10.0.0.1 666 80\r\n";
    for round in 0..2 {
        // Through HAProxy, from 127.0.0.2: the real client.
        let mut real = client_from(Ipv4Addr::new(127, 0, 0, 2), front);
        real.write_all(b"via haproxy").expect("write");
        let created = events.next_created(LIMIT).await.expect("through haproxy");
        assert_eq!(
            created.peer,
            Some(SocketAddress::Inet(real.local_addr().expect("local"))),
            "round {round}"
        );
        assert!(created.proxy_header.is_some());
        assert_eq!(client_bytes(created, 11), b"via haproxy");

        // Direct, forging: served as itself, header stripped.
        let mut forger = client_from(Ipv4Addr::new(127, 0, 0, 3), backend);
        forger
            .write_all(&[&forged[..], b"direct"].concat())
            .expect("write");
        let created = events.next_created(LIMIT).await.expect("the forger");
        assert_eq!(
            created.peer,
            Some(SocketAddress::Inet(forger.local_addr().expect("local")))
        );
        assert!(created.proxy_header.is_none());
        assert_eq!(client_bytes(created, 6), b"direct");

        // Direct from a rejected source: refused.
        let mut rejected = client_from(Ipv4Addr::new(127, 0, 0, 4), backend);
        let _ = rejected.write_all(forged);
        assert!(closes_within(rejected, LIMIT).await.1, "refused");
    }
    let stats = server.send(GetStats).await.expect("stats");
    assert_eq!(
        (
            stats.proxy.headers,
            stats.proxy.ignored,
            stats.proxy.refused
        ),
        (2, 2, 2),
        "{stats:?}"
    );
    assert!(events.try_failed().is_none());
}

/// HAProxy's health checks carry a v2 `LOCAL` header: delivered with HAProxy's own address.
#[actix::test]
async fn haproxy_health_checks_are_local() {
    if util::haproxy().is_none() {
        return;
    }
    let mut events = Events::start();
    let (_server, backend) = proxy_server(&events, ProxyProtocol::required()).await;
    let (_haproxy, _front) = start_haproxy(backend, "send-proxy-v2 check inter 100ms").await;
    let created = events.next_created(LIMIT).await.expect("a health check");
    let header = created.proxy_header.as_deref().expect("a header");
    assert_eq!(header.command(), ProxyCommand::Local);
    // The check may be closed already, so its address comes from the accept: HAProxy's own.
    let balancer = header.balancer().expect("an INET peer");
    assert_eq!(
        balancer.as_inet().map(|addr| addr.ip()),
        Some(Ipv4Addr::LOCALHOST.into())
    );
    assert_eq!(created.peer.as_ref(), Some(balancer));
    assert_eq!(header.source(), None, "LOCAL addresses are discarded");
}

/// A header still being read when the factory stops: nothing is delivered, the connection is
/// closed.
#[actix::test]
async fn reads_in_flight_end_with_the_factory() {
    let mut events = Events::start();
    let (server, addr) = proxy_server(&events, ProxyProtocol::required()).await;
    let mut client = TcpStream::connect(addr).expect("connect");
    client.write_all(b"PROXY TCP4 10.0.0.1 ").expect("write");
    wait_pending(&server, 1).await;
    server
        .send(actix_socket_factory::StopFactory)
        .await
        .expect("stopped");
    let _ = client.write_all(b"10.0.0.2 1 2\r\n");
    events
        .expect_no_created(Duration::from_millis(300))
        .await
        .expect("nothing delivered after the stop");
    assert!(
        closes_within(client, LIMIT).await.1,
        "the connection is closed"
    );
    assert!(events.try_failed().is_none());
}

/// A connection held during a pause (its header read) is closed by a stop, never delivered.
#[actix::test]
async fn a_connection_held_during_a_pause_ends_with_the_factory() {
    let mut events = Events::start();
    let (server, addr) = proxy_server(&events, ProxyProtocol::required()).await;
    let mut client = TcpStream::connect(addr).expect("connect");
    client.write_all(b"PROXY TCP4 10.0.0.1 ").expect("write");
    wait_pending(&server, 1).await;
    server.send(PauseAccept).await.expect("paused");
    client.write_all(b"10.0.0.2 1 2\r\n").expect("write");
    let deadline = Instant::now() + LIMIT;
    while server.send(GetStats).await.expect("stats").proxy.headers < 1 {
        assert!(Instant::now() < deadline, "the header is read");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.send(StopFactory).await.expect("stopped");
    assert!(closes_within(client, LIMIT).await.1, "closed by the stop");
    events
        .expect_no_created(Duration::from_millis(100))
        .await
        .expect("nothing delivered after the stop");
}

/// A header completed while the success recipient is disabled waits for it, as queued clients
/// do: nothing is lost.
#[actix::test]
async fn a_header_read_while_success_is_disabled_waits_for_a_recipient() {
    use actix_socket_factory::SetEvents;
    let mut events = Events::start();
    let (server, addr) = proxy_server(&events, ProxyProtocol::required()).await;
    let mut client = TcpStream::connect(addr).expect("connect");
    client.write_all(b"PROXY TCP4 10.0.0.1 ").expect("write");
    wait_pending(&server, 1).await;
    server
        .send(SetEvents::disable_success())
        .await
        .expect("disabled");
    client.write_all(b"10.0.0.2 1 2\r\nkept").expect("write");
    events
        .expect_no_created(Duration::from_millis(200))
        .await
        .expect("nothing delivered while disabled");
    server
        .send(SetEvents::success(events.owner().clone().recipient()))
        .await
        .expect("enabled");
    let created = events
        .next_created(LIMIT)
        .await
        .expect("delivered once enabled");
    assert_eq!(created.peer, Some(inet("10.0.0.1:1")));
    assert_eq!(client_bytes(created, 4), b"kept");
}
