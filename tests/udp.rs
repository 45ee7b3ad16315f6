//! UDP over IPv4 and IPv6: a bound datagram socket is delivered at once, a connected one with
//! its peer, and either is usable on any Arbiter.

mod util;

use std::net::SocketAddr;

use actix::prelude::*;
use actix_socket_factory::{
    Domain, GetSockName, Operation, SetEvents, SocketAddress, SocketFactory, SocketType,
};
use util::*;

/// One body, run over IPv4 and IPv6: bound right away with no peer, non-blocking, close-on-exec,
/// and datagrams go both ways through the delivered socket on another Arbiter.
async fn bound_socket_round_trip(bind: SocketAddr) {
    let mut events = Events::start();
    let factory = events
        .builder()
        .socket_type(SocketType::Datagram)
        .bind_address(bind.ip())
        .bind_port(0)
        .start();
    let created = events.next_created(LIMIT).await.expect("delivered at once");
    assert_eq!(
        created.peer, None,
        "an unconnected datagram socket has no peer"
    );
    assert_eq!(created.socket_type, SocketType::Datagram);
    assert_eq!(created.domain, domain_of(bind));
    assert_nonblocking(&created.socket);
    assert_cloexec(&created.socket);
    // The factory has handed its socket over and stopped: the socket itself knows its port.
    let addr = created
        .socket
        .local_addr()
        .ok()
        .and_then(|addr| addr.as_socket())
        .expect("local address");
    assert_eq!(addr.ip(), bind.ip());
    assert_ne!(addr.port(), 0, "bound to the kernel's port");
    assert!(
        wait_until(LIMIT, || !factory.connected()).await,
        "a datagram factory is done after delivery"
    );

    // The socket crosses to another Arbiter and echoes one datagram there.
    let other = Arbiter::new();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    other.spawn(async move {
        let echoed = async {
            let socket = created.into_udp_socket()?;
            let mut buf = [0u8; 64];
            let (len, from) = socket.recv_from(&mut buf).await?;
            socket.send_to(&buf[..len], from).await?;
            std::io::Result::Ok(buf[..len].to_vec())
        }
        .await;
        let _ = done_tx.send(echoed);
    });
    let peer = tokio::net::UdpSocket::bind(SocketAddr::new(bind.ip(), 0))
        .await
        .expect("peer socket");
    peer.send_to(b"ping", addr).await.expect("send");
    let mut back = [0u8; 64];
    let (len, from) = tokio::time::timeout(LIMIT, peer.recv_from(&mut back))
        .await
        .expect("echo in time")
        .expect("recv");
    assert_eq!(&back[..len], b"ping");
    assert_eq!(from, addr);
    let served = tokio::time::timeout(LIMIT, done_rx)
        .await
        .expect("arbiter done");
    assert_eq!(served.expect("sent").expect("served"), b"ping");
    other.stop();
}

/// The domain a test address belongs to, to compare with `SocketCreated::domain`.
fn domain_of(addr: SocketAddr) -> Domain {
    if addr.is_ipv4() {
        Domain::Inet
    } else {
        Domain::Inet6
    }
}

#[actix::test]
async fn udp_v4_bound_socket_is_delivered_at_once_and_works() {
    bound_socket_round_trip(any_local_address()).await;
}

#[actix::test]
async fn udp_v6_bound_socket_is_delivered_at_once_and_works() {
    bound_socket_round_trip(any_local_ipv6_address()).await;
}

/// With a remote address and port, the datagram socket is connected first (POE does the same)
/// and the `SocketCreated` carries the peer.
async fn connected_socket_has_its_peer(bind: SocketAddr) {
    let mut events = Events::start();
    let server = tokio::net::UdpSocket::bind(bind).await.expect("server");
    let server_addr = server.local_addr().expect("server address");
    let _client = events
        .builder()
        .socket_type(SocketType::Datagram)
        .remote_address(server_addr.ip())
        .remote_port(server_addr.port())
        .start();
    let created = events.next_created(LIMIT).await.expect("connected");
    assert_eq!(created.peer, Some(SocketAddress::Inet(server_addr)));
    assert_nonblocking(&created.socket);
    assert_cloexec(&created.socket);
    let socket = created.into_udp_socket().expect("tokio UDP socket");
    assert_eq!(socket.peer_addr().expect("peer"), server_addr);

    socket.send(b"hello").await.expect("send");
    let mut buf = [0u8; 64];
    let (len, from) = tokio::time::timeout(LIMIT, server.recv_from(&mut buf))
        .await
        .expect("datagram in time")
        .expect("recv");
    assert_eq!(&buf[..len], b"hello");
    assert_eq!(from, socket.local_addr().expect("local"));
    server.send_to(b"back", from).await.expect("reply");
    let len = tokio::time::timeout(LIMIT, socket.recv(&mut buf))
        .await
        .expect("reply in time")
        .expect("recv");
    assert_eq!(&buf[..len], b"back");
}

#[actix::test]
async fn udp_v4_connected_socket_delivers_the_peer() {
    connected_socket_has_its_peer(any_local_address()).await;
}

#[actix::test]
async fn udp_v6_connected_socket_delivers_the_peer() {
    connected_socket_has_its_peer(any_local_ipv6_address()).await;
}

#[actix::test]
async fn getsockname_answers_while_the_socket_is_held() {
    let mut events = Events::start();
    // No success recipient yet: the bound socket waits in the factory.
    let factory = SocketFactory::builder()
        .socket_type(SocketType::Datagram)
        .bind_address("::1")
        .on_failure(events.owner().clone().recipient())
        .start();
    let local = factory
        .send(GetSockName)
        .await
        .expect("answer")
        .expect("address");
    let addr = local.as_inet().expect("an INET6 address");
    assert!(addr.is_ipv6());
    assert_ne!(addr.port(), 0);
    events
        .expect_no_created(std::time::Duration::from_millis(50))
        .await
        .expect("held, not delivered");
    factory
        .send(SetEvents::success(events.owner().clone().recipient()))
        .await
        .expect("success recipient set");
    let created = events.next_created(LIMIT).await.expect("the held socket");
    assert_eq!(
        created.socket.local_addr().expect("local").as_socket(),
        Some(addr)
    );
}

#[actix::test]
async fn bind_to_a_udp_port_in_use_fails_with_eaddrinuse() {
    let mut events = Events::start();
    let taken = std::net::UdpSocket::bind(any_local_address()).expect("bind");
    let addr = taken.local_addr().expect("addr");
    let _factory = events
        .builder()
        .socket_type(SocketType::Datagram)
        .bind_address(addr.ip())
        .bind_port(addr.port())
        .start();
    let failed = events.next_failed(LIMIT).await.expect("SocketFailed");
    assert_eq!(failed.operation, Operation::Bind);
    assert_eq!(failed.errno, Some(libc::EADDRINUSE));
    assert!(events.try_created().is_none());
}
