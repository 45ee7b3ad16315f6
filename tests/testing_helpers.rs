//! The `testing` module on its own: real `SocketCreated` / `SocketFailed` messages made without
//! a factory drive an owner actor under test, and `Events`' waits end at once on the other kind
//! of message instead of waiting out their limit.

mod util;

use std::io;
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

/// The test's end of a pair: awaited on the test's own thread (the actor's too), bounded, so a
/// broken owner fails the test instead of hanging.
async fn echo_round_trip(
    stream: &mut (impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin),
    message: &[u8],
) -> Vec<u8> {
    stream.write_all(message).await.expect("write");
    let mut back = vec![0; message.len()];
    tokio::time::timeout(LIMIT, stream.read_exact(&mut back))
        .await
        .expect("echo within the limit")
        .expect("echo");
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
    assert_eq!(echo_round_trip(&mut tcp, b"over tcp").await, b"over tcp");

    // A UNIX socket, with this process's credentials as a real UNIX server would report.
    let (created, mut unix) = testing::created_unix_pair(current).expect("UNIX pair");
    let credentials = created.credentials.expect("peer credentials");
    assert_eq!(credentials.pid, Some(std::process::id() as i32));
    owner.send(created).await.expect("delivered");
    assert_eq!(echo_round_trip(&mut unix, b"over unix").await, b"over unix");

    // A late delivery from an old factory: dropped, so the test's end sees the close.
    let (created, mut old) = testing::created_tcp_pair(testing::factory_id(41)).unwrap();
    owner.send(created).await.expect("delivered");
    let eof = tokio::time::timeout(LIMIT, old.read(&mut [0; 8])).await;
    assert_eq!(eof.expect("EOF, not a timeout").unwrap(), 0);

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
async fn next_created_returns_the_typed_failure_at_once_and_keeps_it_for_next_failed() {
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
        Err(WaitError::Failed(failed)) => {
            assert_eq!(failed.operation, Operation::Bind);
            assert_eq!(failed.errno, Some(libc::EADDRINUSE));
            assert_eq!(failed.error.kind(), io::ErrorKind::AddrInUse);
            assert_eq!(failed.id, testing::factory_id(9));
        }
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < LIMIT, "waited {:?}", started.elapsed());
    // Not lost: the following next_failed returns the message itself, without waiting.
    let started = Instant::now();
    let kept = events.next_failed(LONG).await.expect("the failure, kept");
    assert_eq!(
        (kept.operation, kept.errno),
        (Operation::Bind, Some(libc::EADDRINUSE))
    );
    assert!(started.elapsed() < LIMIT, "waited {:?}", started.elapsed());

    // A real one: a client refused on a closed loopback port.
    let _client = events
        .builder()
        .connect(("127.0.0.1", closed_port()))
        .start();
    let started = Instant::now();
    let copy = match events.next_created(LONG).await {
        Err(WaitError::Failed(failed)) => failed,
        other => panic!("{other:?}"),
    };
    assert_eq!(copy.operation, Operation::Connect);
    assert_eq!(copy.errno, Some(libc::ECONNREFUSED));
    assert!(started.elapsed() < LIMIT, "waited {:?}", started.elapsed());
    let kept = events.next_failed(LONG).await.expect("kept");
    assert_eq!(WaitError::Failed(kept), WaitError::Failed(copy));

    // And the reverse: next_failed on a delivery keeps the delivery for next_created.
    let (created, mut theirs) = testing::created_tcp_pair(testing::factory_id(9)).unwrap();
    events.owner().do_send(created);
    let started = Instant::now();
    match events.next_failed(LONG).await {
        Err(WaitError::Unexpected(text)) => assert!(text.contains("SocketCreated"), "{text}"),
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < LIMIT, "waited {:?}", started.elapsed());
    let kept = events.next_created(LONG).await.expect("the delivery, kept");
    // Its socket is still open: the test's end is not at EOF.
    let kept = kept.into_std_tcp_stream().unwrap();
    io::Write::write_all(&mut &kept, b"x").unwrap(); // a fresh socket has room for a byte
    let mut byte = [0; 1];
    let read = tokio::time::timeout(LIMIT, theirs.read_exact(&mut byte)).await;
    assert_eq!(read.expect("a byte").unwrap(), 1);

    // Nothing at all still times out at the limit.
    let short = Duration::from_millis(50);
    assert_eq!(
        events.next_created(short).await.unwrap_err(),
        WaitError::Timeout(short)
    );
}

/// The trap of a blocking test end: the actor under test runs on the test's thread, so a
/// blocking read there stalls the actor until the read times out. The pair's test end is a
/// tokio stream: the round trip takes milliseconds, on this very thread.
#[actix::test]
async fn the_test_end_of_a_pair_does_not_stall_the_actor_on_the_same_thread() {
    let current = testing::factory_id(1);
    let owner = EchoOwner {
        current,
        sessions: 0,
        stale: 0,
        last_failure: None,
    }
    .start();
    for _ in 0..3 {
        let (created, mut tcp) = testing::created_tcp_pair(current).unwrap();
        assert_nonblocking(&tcp);
        owner.do_send(created);
        let started = Instant::now();
        assert_eq!(echo_round_trip(&mut tcp, b"ping").await, b"ping");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the round trip took {:?}: the actor was stalled",
            started.elapsed()
        );
        let (created, mut unix) = testing::created_unix_pair(current).unwrap();
        assert_nonblocking(&unix);
        owner.do_send(created);
        assert_eq!(echo_round_trip(&mut unix, b"pong").await, b"pong");
    }
    // Outside a runtime the pairs are an error, not a panic.
    let outside = std::thread::spawn(move || {
        (
            testing::created_tcp_pair(current).err().map(|e| e.kind()),
            testing::created_unix_pair(current).err().map(|e| e.kind()),
        )
    });
    assert_eq!(
        outside.join().unwrap(),
        (Some(io::ErrorKind::Other), Some(io::ErrorKind::Other))
    );
}

#[test]
fn failures_are_made_from_an_error_kind_or_an_io_error_as_from_an_errno() {
    let id = testing::factory_id(4);
    let by_errno = testing::failed(Operation::Bind, libc::EADDRINUSE, id);
    let by_kind = testing::failed(Operation::Bind, io::ErrorKind::AddrInUse, id);
    let by_error = testing::failed(
        Operation::Bind,
        io::Error::from_raw_os_error(libc::EADDRINUSE),
        id,
    );
    for made in [&by_kind, &by_error] {
        assert_eq!(made.errno, Some(libc::EADDRINUSE));
        assert_eq!(made.error.kind(), io::ErrorKind::AddrInUse);
        assert_eq!(made.to_string(), by_errno.to_string());
    }
    let refused = testing::failed(Operation::Connect, io::ErrorKind::ConnectionRefused, id);
    assert_eq!(refused.errno, Some(libc::ECONNREFUSED));
    // A kind with no errno: the kind, no number.
    let other = testing::failed(Operation::Accept, io::ErrorKind::UnexpectedEof, id);
    assert_eq!(other.errno, None);
    assert_eq!(other.error.kind(), io::ErrorKind::UnexpectedEof);
    // An error of the program's own: kept as it is.
    let own = testing::failed(Operation::Accept, io::Error::other("bad header"), id);
    assert_eq!(own.errno, None);
    assert!(own.to_string().ends_with("bad header"), "{own}");
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
