//! Multi-core accept: a FactoryGroup of factories on several Arbiters sharing one port.

mod util;

use std::collections::HashMap;
use std::time::Duration;

use actix::prelude::*;
use actix_socket_factory::{FactoryGroup, GetStats};
use util::*;

#[actix::test]
async fn group_spreads_clients_and_pauses_every_member() {
    const CLIENTS: usize = 64;
    let mut events = Events::start();
    let arbiters = [Arbiter::new(), Arbiter::new()];
    let handles: Vec<_> = arbiters.iter().map(Arbiter::handle).collect();
    let group = FactoryGroup::start(events.builder().bind_address("127.0.0.1"), &handles)
        .await
        .expect("group");
    let addr = group.local_addr().as_inet().expect("inet");
    assert_ne!(addr.port(), 0);

    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(tokio::net::TcpStream::connect(addr).await.expect("connect"));
    }
    let mut per_member: HashMap<_, usize> = HashMap::new();
    for _ in 0..CLIENTS {
        let created = events.next_created(LIMIT).await.expect("delivered");
        *per_member.entry(created.id).or_default() += 1;
    }
    // SO_REUSEPORT hashes on the client's port: 64 clients all on one member is a 2^-63 event.
    assert_eq!(per_member.len(), 2, "both members accepted: {per_member:?}");

    group.pause().await;
    for member in group.members() {
        assert!(member.send(GetStats).await.expect("stats").paused);
    }
    for _ in 0..16 {
        clients.push(
            tokio::net::TcpStream::connect(addr)
                .await
                .expect("connect while paused"),
        );
    }
    events
        .expect_no_created(Duration::from_millis(300))
        .await
        .expect("no member accepts while the group is paused");
    group.resume().await;
    for _ in 0..16 {
        events
            .next_created(LIMIT)
            .await
            .expect("delivered after resume");
    }
    group.stop();
    for arbiter in arbiters {
        arbiter.stop();
    }
}

#[actix::test]
async fn group_without_arbiters_is_an_error() {
    let events = Events::start();
    let error = FactoryGroup::start(events.builder(), &[])
        .await
        .expect_err("no members");
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
}

#[actix::test]
async fn stats_follow_the_factory() {
    let mut events = Events::start();
    let (server, addr) = actix_socket_factory::testing::listen_on_loopback(&events)
        .await
        .expect("server");
    let fresh = server.send(GetStats).await.expect("stats");
    assert!(fresh.listening && fresh.accepting && !fresh.paused);
    assert_eq!((fresh.accepted, fresh.delivered, fresh.failed), (0, 0, 0));
    assert_eq!(
        (fresh.outstanding, fresh.max_outstanding),
        (0, actix_socket_factory::DEFAULT_MAX_OUTSTANDING)
    );
    let _a = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let held = events.next_created(LIMIT).await.expect("delivered");
    let busy = server.send(GetStats).await.expect("stats");
    assert_eq!((busy.accepted, busy.delivered, busy.outstanding), (1, 1, 1));
    drop(held);
    server
        .send(actix_socket_factory::PauseAccept)
        .await
        .expect("pause");
    let paused = server.send(GetStats).await.expect("stats");
    assert!(paused.paused && !paused.accepting);
    assert_eq!(paused.outstanding, 0, "the owner dropped it");
    assert!(paused.since <= std::time::SystemTime::now());
}
