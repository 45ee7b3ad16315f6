//! TCP over IPv4 and IPv6: listen, accept, connect, and the message protocol around them.

mod util;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use actix::prelude::*;
use actix_socket_factory::testing::{listen_on_loopback, start_and_locate};
use actix_socket_factory::{
    Domain, GetId, GetSockName, GetStats, Operation, PauseAccept, ResumeAccept, SetEvents,
    SocketFactory, StopFactory,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use util::*;

/// One body, run over IPv4 and IPv6: N clients give exactly N sockets whose peers are the
/// clients' own addresses, all non-blocking and close-on-exec.
async fn accepts_every_client(bind: SocketAddr) {
    const CLIENTS: usize = 20;
    let mut events = Events::start();
    let (_server, addr) = start_and_locate(events.builder().bind_address(bind.ip()).bind_port(0))
        .await
        .expect("server listening");
    assert_eq!(addr.ip(), bind.ip());
    assert_ne!(addr.port(), 0, "GetSockName gives the kernel's port");

    let mut clients = Vec::new();
    let mut expected = HashSet::new();
    for _ in 0..CLIENTS {
        let client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        expected.insert(client.local_addr().expect("client address"));
        clients.push(client);
    }
    let mut seen = HashSet::new();
    for _ in 0..CLIENTS {
        let created = events
            .next_created(LIMIT)
            .await
            .expect("one SocketCreated per client");
        assert_nonblocking(&created.socket);
        assert_cloexec(&created.socket);
        let peer = created
            .peer
            .as_ref()
            .and_then(|p| p.as_inet())
            .expect("peer address");
        assert!(seen.insert(peer), "client {peer} delivered twice");
    }
    assert_eq!(seen, expected);
    events
        .expect_no_created(Duration::from_millis(100))
        .await
        .expect("no extra deliveries");
}

#[actix::test]
async fn server_v4_delivers_each_client_with_its_address() {
    accepts_every_client(any_local_address()).await;
}

#[actix::test]
async fn server_v6_delivers_each_client_with_its_address() {
    accepts_every_client(any_local_ipv6_address()).await;
}

#[actix::test]
async fn delivered_socket_works_on_another_arbiter() {
    let mut events = Events::start();
    let (_server, addr) = listen_on_loopback(&events).await.expect("server");
    let mut client = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let created = events.next_created(LIMIT).await.expect("accepted");

    // The socket crosses to another Arbiter (another tokio runtime) and is used there.
    let other = Arbiter::new();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    other.spawn(async move {
        let mut stream = created
            .into_tcp_stream()
            .expect("tokio stream on this Arbiter");
        let mut buf = [0u8; 5];
        let echoed = async {
            stream.read_exact(&mut buf).await?;
            stream.write_all(&buf).await
        }
        .await;
        let _ = done_tx.send(echoed.map(|()| buf));
    });
    client.write_all(b"hello").await.expect("write");
    let mut back = [0u8; 5];
    tokio::time::timeout(LIMIT, client.read_exact(&mut back))
        .await
        .expect("echo in time")
        .expect("read");
    assert_eq!(&back, b"hello");
    let served = tokio::time::timeout(LIMIT, done_rx)
        .await
        .expect("arbiter done");
    assert_eq!(&served.expect("sent").expect("served"), b"hello");
    other.stop();
}

#[actix::test]
async fn client_connects_and_delivers_once() {
    let mut events = Events::start();
    let listener = tokio::net::TcpListener::bind(any_local_address())
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let client = events
        .builder()
        .remote_address(addr.ip())
        .remote_port(addr.port())
        .start();
    let (_accepted, client_addr) = tokio::time::timeout(LIMIT, listener.accept())
        .await
        .expect("accept in time")
        .expect("accept");
    let created = events.next_created(LIMIT).await.expect("connected");
    assert_eq!(created.peer.and_then(|p| p.as_inet()), Some(addr));
    let stream = created.socket;
    assert_eq!(stream.local_addr().unwrap().as_socket(), Some(client_addr));
    assert!(
        wait_until(LIMIT, || !client.connected()).await,
        "a client factory is done after delivery"
    );
}

#[actix::test]
async fn connect_to_closed_port_fails_with_econnrefused() {
    let mut events = Events::start();
    let port = closed_port();
    let factory = events
        .builder()
        .remote_address("127.0.0.1")
        .remote_port(port)
        .start();
    let id = factory.send(GetId).await.expect("id");
    let failed = events.next_failed(LIMIT).await.expect("SocketFailed");
    assert_eq!(failed.operation, Operation::Connect);
    assert_eq!(failed.operation.as_str(), "connect");
    assert_eq!(failed.errno, Some(libc::ECONNREFUSED));
    assert_eq!(failed.id, id);
    assert!(events.try_created().is_none());
}

#[actix::test]
async fn bind_to_port_in_use_fails_with_eaddrinuse() {
    let mut events = Events::start();
    let taken = std::net::TcpListener::bind(any_local_address()).expect("bind");
    let addr = taken.local_addr().expect("addr");
    let _factory = events
        .builder()
        .bind_address(addr.ip())
        .bind_port(addr.port())
        .start();
    let failed = events.next_failed(LIMIT).await.expect("SocketFailed");
    assert_eq!(failed.operation, Operation::Bind);
    assert_eq!(failed.errno, Some(libc::EADDRINUSE));
}

#[actix::test]
async fn pause_holds_clients_and_resume_delivers_them_all() {
    const CLIENTS: usize = 10;
    let mut events = Events::start();
    let (server, addr) = listen_on_loopback(&events).await.expect("server");
    server.send(PauseAccept).await.expect("paused");
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        // The kernel completes the handshake from its listen queue: connect returns while paused.
        clients.push(tokio::net::TcpStream::connect(addr).await.expect("connect"));
    }
    events
        .expect_no_created(Duration::from_millis(300))
        .await
        .expect("nothing delivered while paused");
    server.send(ResumeAccept).await.expect("resumed");
    for _ in 0..CLIENTS {
        events
            .next_created(LIMIT)
            .await
            .expect("delivered after resume");
    }
}

#[actix::test]
async fn set_events_redirects_and_disables() {
    let mut first = Events::start();
    let mut second = Events::start();
    let (server, addr) = listen_on_loopback(&first).await.expect("server");

    let _c1 = tokio::net::TcpStream::connect(addr).await.expect("connect");
    first.next_created(LIMIT).await.expect("to the first owner");

    server
        .send(SetEvents::success(second.owner().clone().recipient()))
        .await
        .expect("redirected");
    let _c2 = tokio::net::TcpStream::connect(addr).await.expect("connect");
    second
        .next_created(LIMIT)
        .await
        .expect("to the second owner");

    // Disabled: the client waits in the kernel's queue and is not lost.
    server
        .send(SetEvents::disable_success())
        .await
        .expect("disabled");
    let _c3 = tokio::net::TcpStream::connect(addr).await.expect("connect");
    second
        .expect_no_created(Duration::from_millis(300))
        .await
        .expect("nothing while disabled");
    first
        .expect_no_created(Duration::from_millis(10))
        .await
        .expect("nothing to the old owner");
    server
        .send(SetEvents::success(first.owner().clone().recipient()))
        .await
        .expect("enabled again");
    first
        .next_created(LIMIT)
        .await
        .expect("the held client arrives");
}

#[actix::test]
async fn owner_gone_stops_the_factory_and_frees_the_port() {
    let events = Events::start();
    let (server, addr) = start_and_locate(
        events
            .builder()
            .bind_address("127.0.0.1")
            .bind_port(0)
            .reuse(false)
            .owner_check_interval(Some(Duration::from_millis(20))),
    )
    .await
    .expect("server");
    assert!(!can_bind(addr));
    events.stop_owner();
    assert!(
        wait_until(LIMIT, || !server.connected()).await,
        "factory stops"
    );
    assert!(can_bind(addr), "the port is free at once");
}

#[actix::test]
async fn stop_message_closes_the_listener() {
    let events = Events::start();
    let (server, addr) = listen_on_loopback(&events).await.expect("server");
    server.send(StopFactory).await.expect("stopped");
    assert!(wait_until(LIMIT, || !server.connected()).await);
    assert!(can_bind(addr));
}

#[actix::test]
async fn listen_queue_above_somaxconn_is_clipped_not_refused() {
    let mut events = Events::start();
    let (_server, addr) = start_and_locate(
        events
            .builder()
            .domain(Domain::Inet)
            .bind_address("127.0.0.1")
            .listen_queue(u32::MAX),
    )
    .await
    .expect("listening despite the huge queue");
    let _client = tokio::net::TcpStream::connect(addr).await.expect("connect");
    events.next_created(LIMIT).await.expect("accepted");
}

#[actix::test]
async fn getsockname_answers_and_id_matches_messages() {
    let mut events = Events::start();
    let factory = SocketFactory::builder()
        .bind_address("::1")
        .owner(events.owner())
        .build()
        .expect("valid description");
    let id = factory.id();
    let server = factory.start();
    let local = server
        .send(GetSockName)
        .await
        .expect("answer")
        .expect("address");
    let addr = local.as_inet().expect("inet");
    assert!(addr.is_ipv6(), "an IPv6 literal implies INET6");
    assert_eq!(server.send(GetId).await.expect("id"), id);
    let client = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let created = events.next_created(LIMIT).await.expect("created");
    assert_eq!(created.id, id);
    // The accepted peer, read from the kernel's IPv6 address: the client's own address.
    assert_eq!(
        created.peer.and_then(|p| p.as_inet()),
        Some(client.local_addr().expect("client address"))
    );
}

/// The owner sweep is per thread: a second System on the same thread must get a live one,
/// not the first System's, which died with its runtime.
#[test]
fn owner_gone_is_noticed_in_a_second_system_on_the_same_thread() {
    for round in 0..2 {
        let system = System::new();
        system.block_on(async {
            // A server whose owner stays: the sweep still has work when this System ends.
            let staying = Events::start();
            let _kept = start_and_locate(
                staying
                    .builder()
                    .bind_address("127.0.0.1")
                    .owner_check_interval(Some(Duration::from_millis(20))),
            )
            .await
            .expect("kept server");
            let events = Events::start();
            let (server, _addr) = start_and_locate(
                events
                    .builder()
                    .bind_address("127.0.0.1")
                    .owner_check_interval(Some(Duration::from_millis(20))),
            )
            .await
            .expect("server");
            events.stop_owner();
            assert!(
                wait_until(LIMIT, || !server.connected()).await,
                "round {round}: the factory noticed its owner gone"
            );
        });
    }
}

/// The accept loop runs beside the actor (issue 22): what it counts is in `GetStats`, and a stop
/// handled in the same turn as a resume delivers none of the clients still queued.
#[actix::test]
async fn stats_count_the_accept_loop_and_a_stop_right_after_a_resume_delivers_nothing() {
    const CLIENTS: usize = 3;
    let mut events = Events::start();
    let (server, addr) = listen_on_loopback(&events).await.expect("server");
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(tokio::net::TcpStream::connect(addr).await.expect("connect"));
        events.next_created(LIMIT).await.expect("delivered");
    }
    let stats = server.send(GetStats).await.expect("stats");
    assert_eq!((stats.accepted, stats.delivered), (3, 3), "{stats:?}");
    assert!(
        stats.listening && stats.accepting && !stats.paused,
        "{stats:?}"
    );

    server.send(PauseAccept).await.expect("paused");
    let stats = server.send(GetStats).await.expect("stats");
    assert!(stats.paused && !stats.accepting, "{stats:?}");
    for _ in 0..CLIENTS {
        // Completed by the kernel from the listen queue while paused.
        clients.push(tokio::net::TcpStream::connect(addr).await.expect("connect"));
    }
    // One turn of the actor handles both: the loop, woken by the resume, finds the listener
    // closed.
    server.do_send(ResumeAccept);
    server.do_send(StopFactory);
    assert!(wait_until(LIMIT, || !server.connected()).await, "stopped");
    assert!(can_bind(addr), "the listener is closed");
    events
        .expect_no_created(Duration::from_millis(300))
        .await
        .expect("nothing delivered after the stop");
}

/// A server whose own `Addr` is dropped keeps serving (its accept loop, a task beside the
/// actor, is work in flight as an actor future was): its owner still gets every client.
#[actix::test]
async fn a_server_whose_addr_is_dropped_keeps_serving() {
    let mut events = Events::start();
    let (server, addr) = listen_on_loopback(&events).await.expect("server");
    drop(server);
    for _ in 0..2 {
        let _client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        events.next_created(LIMIT).await.expect("still delivered");
    }
}

/// With no periodic owner check, the accept loop (a task beside the actor) finds the owner gone
/// at the next delivery and has the factory stop: the client is dropped, the listener closed.
#[actix::test]
async fn the_accept_loop_finds_the_owner_gone_at_delivery_and_the_factory_stops() {
    let events = Events::start();
    let (server, addr) = start_and_locate(
        events
            .builder()
            .bind_address("127.0.0.1")
            .bind_port(0)
            .reuse(false)
            .owner_check_interval(None),
    )
    .await
    .expect("server");
    let owner = events.owner().clone();
    events.stop_owner();
    assert!(
        wait_until(LIMIT, || !owner.connected()).await,
        "the owner stopped"
    );
    assert!(server.connected(), "no periodic check: still running");
    let _client = tokio::net::TcpStream::connect(addr).await.expect("connect");
    assert!(
        wait_until(LIMIT, || !server.connected()).await,
        "the factory stops at the delivery"
    );
    // The listener is closed (the port itself stays taken by the dropped connection's
    // FIN_WAIT side while the client holds its end).
    let refused = tokio::net::TcpStream::connect(addr)
        .await
        .expect_err("nobody listens");
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
}
