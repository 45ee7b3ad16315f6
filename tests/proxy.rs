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
    ConfigError, GetStats, ProxyCommand, ProxyProtocol, ProxyTransport, ProxyVersion,
    SocketAddress, SocketCreated, SocketFactory, SocketType, Untrusted,
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

#[actix::test]
async fn headers_in_flight_count_against_max_outstanding() {
    let mut events = Events::start();
    let proxy = ProxyProtocol::required().header_timeout(Duration::from_millis(800));
    let (server, addr) = start_and_locate(
        events
            .builder()
            .bind_address(Ipv4Addr::LOCALHOST)
            .max_outstanding(2)
            .proxy_protocol(proxy),
    )
    .await
    .expect("server");
    let _silent: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    let deadline = Instant::now() + LIMIT;
    while server.send(GetStats).await.expect("stats").outstanding < 2 {
        assert!(Instant::now() < deadline, "two reads in flight");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = Instant::now();
    let mut good = TcpStream::connect(addr).expect("connect");
    good.write_all(b"PROXY TCP4 10.0.0.1 10.0.0.2 1 2\r\n")
        .expect("write");
    // Both permits are held by the silent clients: the good one waits in the listen queue.
    events
        .expect_no_created(Duration::from_millis(400))
        .await
        .expect("nothing delivered at the cap");
    let created = events
        .next_created(LIMIT)
        .await
        .expect("delivered after the timeouts");
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(created.peer, Some(inet("10.0.0.1:1")));
    // The first timeout freed the permit the good client took; the second follows.
    let deadline = Instant::now() + LIMIT;
    while server.send(GetStats).await.expect("stats").proxy.timed_out < 2 {
        assert!(Instant::now() < deadline, "both silent clients timed out");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[actix::test]
async fn untrusted_peers_are_direct_or_refused() {
    let mut events = Events::start();
    let elsewhere = "192.0.2.0/24".parse().expect("a network");
    let (_server, addr) =
        proxy_server(&events, ProxyProtocol::required().allow_from([elsewhere])).await;
    let mut direct = TcpStream::connect(addr).expect("connect");
    direct
        .write_all(b"PROXY TCP4 10.0.0.1 10.0.0.2 1 2\r\n")
        .expect("write");
    let created = events.next_created(LIMIT).await.expect("delivered");
    // Its header is not believed: the peer is its own, the "header" its data.
    assert_eq!(
        created.peer,
        Some(SocketAddress::Inet(direct.local_addr().expect("local")))
    );
    assert!(created.proxy_header.is_none());
    assert_eq!(client_bytes(created, 6), b"PROXY ");

    let refuse = ProxyProtocol::required()
        .allow_from([elsewhere])
        .untrusted(Untrusted::Refuse);
    let (server, addr) = proxy_server(&events, refuse).await;
    let _refused = TcpStream::connect(addr).expect("connect");
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
}

// ---------------------------------------------------------------------------------------------
// 1,000 silent clients and one good one, in a child process (descriptors).

const SILENT: usize = 1000;

#[test]
fn silent_clients_do_not_delay_a_good_one() {
    if !run_in_child("silent_clients_do_not_delay_a_good_one") {
        return;
    }
    let limit = raise_fd_limit() as usize;
    if limit < 2 * SILENT + 200 {
        util::child::skip(&format!(
            "descriptor limit {limit} is too low for {SILENT} clients"
        ));
        return;
    }
    let system = actix::System::new();
    system.block_on(async {
        let mut events = Events::start();
        let timeout = Duration::from_secs(3);
        let (server, addr) =
            proxy_server(&events, ProxyProtocol::required().header_timeout(timeout)).await;
        let silent = std::thread::spawn(move || {
            (0..SILENT)
                .map(|_| TcpStream::connect(addr).expect("connect"))
                .collect::<Vec<_>>()
        });
        let deadline = Instant::now() + LIMIT;
        let mut stats = server.send(GetStats).await.expect("stats");
        while stats.outstanding < SILENT {
            assert!(
                Instant::now() < deadline,
                "silent clients accepted: {stats:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
            stats = server.send(GetStats).await.expect("stats");
        }
        let silent_clients = silent.join().expect("clients");
        let first_silent = Instant::now();

        let started = Instant::now();
        let good = std::thread::spawn(move || {
            let mut good = TcpStream::connect(addr).expect("connect");
            good.write_all(b"PROXY TCP4 10.1.2.3 10.0.0.1 777 80\r\nping")
                .expect("write");
            good
        });
        let created = events.next_created(LIMIT).await.expect("the good client");
        let latency = started.elapsed();
        let _good = good.join().expect("good client");
        assert_eq!(created.peer, Some(inet("10.1.2.3:777")));
        assert_eq!(client_bytes(created, 4), b"ping");
        println!("good client delivered in {latency:?} with {SILENT} silent clients in flight");
        assert!(latency < Duration::from_millis(500), "{latency:?}");

        // The silent ones are dropped at their deadline, all of them, and give their permits back.
        let deadline = Instant::now() + timeout + LIMIT;
        loop {
            let stats = server.send(GetStats).await.expect("stats");
            if stats.proxy.timed_out == SILENT as u64 && stats.outstanding == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "silent clients timed out: {stats:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(first_silent.elapsed() < timeout + Duration::from_secs(2));
        assert!(events.try_failed().is_none());
        drop(silent_clients);
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

/// The haproxy program: on `PATH`, or where Debian puts it (`/usr/sbin`, often off a user's
/// `PATH`). `None` when absent; under CI (`CI=true`) its absence is a failure.
fn haproxy() -> Option<&'static str> {
    let runs = |program: &str| {
        Command::new(program)
            .arg("-v")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
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
    let program = haproxy().expect("haproxy, checked by the caller");
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
    if haproxy().is_none() {
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

/// HAProxy's health checks carry a v2 `LOCAL` header: delivered with HAProxy's own address.
#[actix::test]
async fn haproxy_health_checks_are_local() {
    if haproxy().is_none() {
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
    let deadline = Instant::now() + LIMIT;
    while server.send(GetStats).await.expect("stats").outstanding < 1 {
        assert!(Instant::now() < deadline, "the read is in flight");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server
        .send(actix_socket_factory::StopFactory)
        .await
        .expect("stopped");
    let _ = client.write_all(b"10.0.0.2 1 2\r\n");
    events
        .expect_no_created(Duration::from_millis(300))
        .await
        .expect("nothing delivered after the stop");
    client.set_read_timeout(Some(LIMIT)).expect("timeout");
    let mut buf = [0; 1];
    assert!(closed(client.read(&mut buf)), "the connection is closed");
    assert!(events.try_failed().is_none());
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
    let deadline = Instant::now() + LIMIT;
    while server.send(GetStats).await.expect("stats").outstanding < 1 {
        assert!(Instant::now() < deadline, "the read is in flight");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
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
