//! The `testing` module on its own: real `SocketCreated` / `SocketFailed` messages made without
//! a factory drive an owner actor under test, and `Events`' waits end at once on the other kind
//! of message instead of waiting out their limit.

mod util;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_socket_factory::testing::{self, wait_until_async, WaitError};
use actix_socket_factory::{Domain, FactoryId, Operation, SocketCreated, SocketFailed};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use util::*;

/// An owner as an application writes it: serves sockets from the factory it currently uses with
/// an echo session, drops late deliveries from an old factory (compared by id), and remembers the
/// last failure.
struct EchoOwner {
    current: FactoryId,
    sessions: usize,
    stale: usize,
    last_failure: Option<(Operation, Option<i32>)>,
}

impl Actor for EchoOwner {
    type Context = Context<Self>;
}

impl Handler<SocketCreated> for EchoOwner {
    type Result = ();

    fn handle(&mut self, created: SocketCreated, ctx: &mut Context<Self>) {
        if created.id != self.current {
            self.stale += 1;
            return; // dropping the message closes its socket
        }
        self.sessions += 1;
        let session = async move {
            let mut buf = [0; 64];
            match created.domain {
                Domain::Unix => {
                    let mut stream = created.into_unix_stream().expect("a UNIX stream");
                    while let Ok(n @ 1..) = stream.read(&mut buf).await {
                        let _ = stream.write_all(&buf[..n]).await;
                    }
                }
                _ => {
                    let mut stream = created.into_tcp_stream().expect("a TCP stream");
                    while let Ok(n @ 1..) = stream.read(&mut buf).await {
                        let _ = stream.write_all(&buf[..n]).await;
                    }
                }
            }
        };
        ctx.spawn(session.into_actor(self));
    }
}

impl Handler<SocketFailed> for EchoOwner {
    type Result = ();

    fn handle(&mut self, failed: SocketFailed, _: &mut Context<Self>) {
        if failed.id == self.current {
            self.last_failure = Some((failed.operation, failed.errno));
        }
    }
}

#[derive(Message)]
#[rtype(result = "(usize, usize, Option<(Operation, Option<i32>)>)")]
struct State;

impl Handler<State> for EchoOwner {
    type Result = MessageResult<State>;

    fn handle(&mut self, _: State, _: &mut Context<Self>) -> Self::Result {
        MessageResult((self.sessions, self.stale, self.last_failure))
    }
}

/// The test's end of a pair: bounded reads, so a broken owner fails the test instead of hanging.
fn echo_round_trip(stream: &mut (impl Read + Write), message: &[u8]) -> Vec<u8> {
    stream.write_all(message).expect("write");
    let mut back = vec![0; message.len()];
    stream
        .read_exact(&mut back)
        .expect("echo within the read timeout");
    back
}

#[actix::test]
async fn an_owner_actor_is_tested_with_made_messages_and_no_factory() {
    let current = testing::factory_id(42);
    let owner = EchoOwner {
        current,
        sessions: 0,
        stale: 0,
        last_failure: None,
    }
    .start();

    // A TCP socket from the current factory: served.
    let (created, mut tcp) = testing::created_tcp_pair(current).expect("TCP pair");
    assert_eq!(created.id, current);
    assert_eq!(created.domain, Domain::Inet);
    assert_eq!(
        created.peer.as_ref().and_then(|p| p.as_inet()),
        tcp.local_addr().ok()
    );
    assert_nonblocking(&created.socket);
    assert_cloexec(&created.socket);
    owner.send(created).await.expect("delivered");
    tcp.set_read_timeout(Some(LIMIT)).unwrap();
    // The std end blocks this thread while the owner works on the same one: read off-thread.
    let tcp = tokio::task::spawn_blocking(move || echo_round_trip(&mut tcp, b"over tcp"));
    assert_eq!(tcp.await.unwrap(), b"over tcp");

    // A UNIX socket, with this process's credentials as a real UNIX server would report.
    let (created, mut unix) = testing::created_unix_pair(current).expect("UNIX pair");
    let credentials = created.credentials.expect("peer credentials");
    assert_eq!(credentials.pid, Some(std::process::id() as i32));
    owner.send(created).await.expect("delivered");
    unix.set_read_timeout(Some(LIMIT)).unwrap();
    let unix = tokio::task::spawn_blocking(move || echo_round_trip(&mut unix, b"over unix"));
    assert_eq!(unix.await.unwrap(), b"over unix");

    // A late delivery from an old factory: dropped, so the test's end sees the close.
    let (created, mut old) = testing::created_tcp_pair(testing::factory_id(41)).unwrap();
    owner.send(created).await.expect("delivered");
    old.set_read_timeout(Some(LIMIT)).unwrap();
    let eof =
        tokio::task::spawn_blocking(move || old.read(&mut [0; 8]).expect("EOF, not a timeout"));
    assert_eq!(eof.await.unwrap(), 0);

    // Failures: the owner records the current factory's, ignores an old one's.
    owner.do_send(testing::failed(
        Operation::Accept,
        libc::EMFILE,
        testing::factory_id(41),
    ));
    owner.do_send(testing::failed(Operation::Accept, libc::EMFILE, current));
    let settled = wait_until_async(LIMIT, || async {
        owner.send(State).await.ok() == Some((2, 1, Some((Operation::Accept, Some(libc::EMFILE)))))
    });
    assert!(settled.await, "{:?}", owner.send(State).await);
}

#[test]
fn made_failures_read_like_real_ones() {
    let failed = testing::failed(
        Operation::Connect,
        libc::ECONNREFUSED,
        testing::factory_id(3),
    );
    assert_eq!(failed.operation, Operation::Connect);
    assert_eq!(failed.errno, Some(libc::ECONNREFUSED));
    assert_eq!(failed.error.kind(), std::io::ErrorKind::ConnectionRefused);
    assert_eq!(failed.id.get(), 3);
    let text = failed.to_string();
    assert!(text.starts_with("factory 3: connect: "), "{text}");
    assert!(text.ends_with("(os error 111)"), "{text}");
}

#[actix::test]
async fn next_created_returns_unexpected_at_once_on_a_failure() {
    const LONG: Duration = Duration::from_secs(30);
    let mut events = Events::start();

    // A made failure sent straight to the collector.
    events.owner().do_send(testing::failed(
        Operation::Bind,
        libc::EADDRINUSE,
        testing::factory_id(9),
    ));
    let started = Instant::now();
    match events.next_created(LONG).await {
        Err(WaitError::Unexpected(text)) => assert!(text.contains("bind"), "{text}"),
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < LIMIT, "waited {:?}", started.elapsed());

    // A real one: a client refused on a closed loopback port.
    let _client = events
        .builder()
        .connect(("127.0.0.1", closed_port()))
        .start();
    let started = Instant::now();
    match events.next_created(LONG).await {
        Err(WaitError::Unexpected(text)) => assert!(text.contains("connect"), "{text}"),
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < LIMIT, "waited {:?}", started.elapsed());

    // And the reverse: next_failed on a delivery.
    let (created, _theirs) = testing::created_tcp_pair(testing::factory_id(9)).unwrap();
    events.owner().do_send(created);
    let started = Instant::now();
    match events.next_failed(LONG).await {
        Err(WaitError::Unexpected(text)) => assert!(text.contains("SocketCreated"), "{text}"),
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < LIMIT, "waited {:?}", started.elapsed());

    // Nothing at all still times out at the limit.
    let short = Duration::from_millis(50);
    assert_eq!(
        events.next_created(short).await.unwrap_err(),
        WaitError::Timeout(short)
    );
}

#[actix::test]
async fn wait_until_async_is_bounded_even_when_the_condition_never_completes() {
    let started = Instant::now();
    let held = wait_until_async(Duration::from_millis(100), || {
        std::future::pending::<bool>()
    });
    assert!(!held.await);
    assert!(started.elapsed() < LIMIT);

    let mut calls = 0;
    let held = wait_until_async(LIMIT, || {
        calls += 1;
        let now = calls;
        async move { now == 3 }
    });
    assert!(held.await);
    assert_eq!(calls, 3);
}
