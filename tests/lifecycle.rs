//! The actor contract (`SocketFactory`'s `# Life` and `# Delivery`): who holds whom, when
//! messages arrive, where errors go, how it stops. Real System, loopback, bounded waits.

mod util;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_socket_factory::testing::{wait_until, Events};
use actix_socket_factory::{
    ConfigError, GetId, GetSockName, GetStats, Operation, SetEvents, SocketCreated, SocketFactory,
    SocketFailed, SocketType, StopFactory,
};
use util::{black_hole, child, netns};

const LIMIT: Duration = Duration::from_secs(5);

// ---- no message before start() has returned ----

/// An owner on its own Arbiter that checks, for every message, that the start call it came
/// from had returned.
struct Watcher {
    returned: Arc<AtomicBool>,
    early: Arc<AtomicUsize>,
    seen: Arc<AtomicUsize>,
}

impl Actor for Watcher {
    type Context = Context<Self>;
}

impl Watcher {
    fn check(&self) {
        if !self.returned.load(Ordering::SeqCst) {
            self.early.fetch_add(1, Ordering::SeqCst);
        }
        self.seen.fetch_add(1, Ordering::SeqCst);
    }
}

impl Handler<SocketCreated> for Watcher {
    type Result = ();
    fn handle(&mut self, _: SocketCreated, _: &mut Context<Self>) {
        self.check();
    }
}

impl Handler<SocketFailed> for Watcher {
    type Result = ();
    fn handle(&mut self, _: SocketFailed, _: &mut Context<Self>) {
        self.check();
    }
}

/// 1,000 tries of one kind of one-shot factory, with the owner on another Arbiter and the
/// factory made here (`start()`) or on a third Arbiter (`start_in_arbiter()`).
async fn never_early(kind: &str, make: impl Fn() -> actix_socket_factory::SocketFactoryBuilder) {
    const TRIES: usize = 1000;
    let owner_arbiter = Arbiter::new();
    let factory_arbiter = Arbiter::new();
    let returned = Arc::new(AtomicBool::new(false));
    let early = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(AtomicUsize::new(0));
    let watcher = {
        let (returned, early, seen) = (returned.clone(), early.clone(), seen.clone());
        Watcher::start_in_arbiter(&owner_arbiter.handle(), move |_| Watcher {
            returned,
            early,
            seen,
        })
    };
    for round in 0..TRIES {
        returned.store(false, Ordering::SeqCst);
        let builder = make().owner(&watcher);
        let _factory = if round % 2 == 0 {
            builder.start()
        } else {
            builder.start_in_arbiter(&factory_arbiter.handle())
        };
        returned.store(true, Ordering::SeqCst);
        let seen = seen.clone();
        assert!(
            wait_until(LIMIT, move || seen.load(Ordering::SeqCst) > round).await,
            "{kind}: no outcome for try {round}"
        );
    }
    assert_eq!(
        early.load(Ordering::SeqCst),
        0,
        "{kind}: messages handled before start() returned"
    );
    owner_arbiter.stop();
    factory_arbiter.stop();
}

#[actix::test]
async fn no_message_before_start_returns_for_a_loopback_client() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("listener");
    let addr = listener.local_addr().expect("address");
    // The kernel completes each handshake inside connect(2); accept to keep the queue short.
    let stop = Arc::new(AtomicBool::new(false));
    listener.set_nonblocking(true).expect("non-blocking");
    let drain = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                if listener.accept().is_err() {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        })
    };
    never_early("loopback client", || SocketFactory::builder().connect(addr)).await;
    stop.store(true, Ordering::SeqCst);
    drain.join().expect("drain thread");
}

#[actix::test]
async fn no_message_before_start_returns_for_a_datagram_factory() {
    never_early("datagram", || {
        SocketFactory::builder()
            .socket_type(SocketType::Datagram)
            .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
    })
    .await;
}

#[actix::test]
async fn no_message_before_start_returns_for_a_failing_unix_connect() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("nobody-listens-here.sock");
    never_early("failing UNIX connect", || {
        SocketFactory::builder().connect(missing.as_path())
    })
    .await;
}

// ---- who holds whom ----

/// An owner that holds its factory and says when it stops.
struct Holder {
    factory: Option<Addr<SocketFactory>>,
    stopped: Arc<AtomicBool>,
}

impl Actor for Holder {
    type Context = Context<Self>;
    fn stopped(&mut self, _: &mut Context<Self>) {
        self.stopped.store(true, Ordering::SeqCst);
    }
}

impl Handler<SocketCreated> for Holder {
    type Result = ();
    fn handle(&mut self, _: SocketCreated, _: &mut Context<Self>) {}
}

impl Handler<SocketFailed> for Holder {
    type Result = ();
    fn handle(&mut self, _: SocketFailed, _: &mut Context<Self>) {}
}

#[derive(Message)]
#[rtype(result = "()")]
struct Keep(Addr<SocketFactory>);

impl Handler<Keep> for Holder {
    type Result = ();
    fn handle(&mut self, keep: Keep, _: &mut Context<Self>) {
        self.factory = Some(keep.0);
    }
}

#[actix::test]
async fn the_owner_stops_with_its_last_addr_and_the_factory_follows() {
    let stopped = Arc::new(AtomicBool::new(false));
    let owner = Holder {
        factory: None,
        stopped: stopped.clone(),
    }
    .start();
    let server = SocketFactory::builder()
        .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .owner(&owner)
        .owner_check_interval(Some(Duration::from_millis(50)))
        .spawn()
        .await
        .expect("listening");
    let addr = server.local_addr().expect("an INET address");
    owner.do_send(Keep(server.addr.clone()));
    let factory = server.addr.downgrade();
    drop(server);
    assert!(!util::can_bind(addr), "the factory listens");

    // The factory holds its owner weakly: dropping the owner's last Addr stops it.
    drop(owner);
    let owner_stopped = stopped.clone();
    assert!(
        wait_until(LIMIT, move || owner_stopped.load(Ordering::SeqCst)).await,
        "the owner did not stop when its last Addr was dropped"
    );
    // ... and the factory follows, freeing its port.
    assert!(
        wait_until(LIMIT, move || factory
            .upgrade()
            .is_none_or(|f| !f.connected()))
        .await,
        "the factory outlived its owner"
    );
    assert!(
        wait_until(LIMIT, move || util::can_bind(addr)).await,
        "the port stayed bound"
    );
}

#[actix::test]
async fn a_description_with_no_recipient_is_a_config_error_and_opens_nothing() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("probe");
    let addr = listener.local_addr().expect("address");
    drop(listener);
    let builder = SocketFactory::builder().bind(addr);
    assert_eq!(
        builder.clone().build().err(),
        Some(ConfigError::NoRecipient)
    );
    let failed = builder.clone().spawn().await.expect_err("refused");
    assert_eq!(failed.config_error(), Some(&ConfigError::NoRecipient));
    let factory = builder.start();
    assert!(
        wait_until(LIMIT, move || !factory.connected()).await,
        "a factory with no recipient keeps running"
    );
    assert!(
        util::can_bind(addr),
        "a factory with no recipient bound its port"
    );
}

// ---- SetEvents and GetSockName right after start() ----

#[actix::test]
async fn set_events_right_after_start_redirects_a_loopback_client() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("listener");
    let addr = listener.local_addr().expect("address");
    let mut first = Events::start();
    let mut second = Events::start();
    for _ in 0..50 {
        let client = first.builder().connect(addr).start();
        client.do_send(SetEvents::success(second.owner().clone().recipient()));
        let created = second
            .next_created(LIMIT)
            .await
            .expect("the new recipient gets the socket");
        assert_eq!(created.peer.and_then(|p| p.as_inet()), Some(addr));
        let _ = listener.accept().expect("accepted");
    }
    assert!(
        first.next(Duration::from_millis(100)).await.is_err(),
        "the old recipient got something"
    );
}

#[actix::test]
async fn get_sock_name_right_after_start_answers_for_every_kind() {
    let events = Events::start();
    // A server.
    let server = events
        .builder()
        .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .start();
    let local = server
        .send(GetSockName)
        .await
        .expect("mailbox")
        .expect("bound");
    let port = local.port().expect("a port");
    assert_ne!(port, 0);

    // A datagram factory: answered before its socket is delivered.
    let datagram = events
        .builder()
        .socket_type(SocketType::Datagram)
        .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .start();
    let local = datagram
        .send(GetSockName)
        .await
        .expect("mailbox")
        .expect("bound");
    assert_ne!(local.port(), Some(0));

    // A loopback client whose connect finished inside start().
    let client = events
        .builder()
        .connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .start();
    let local = client
        .send(GetSockName)
        .await
        .expect("mailbox")
        .expect("bound");
    assert_eq!(
        local.as_inet().map(|a| a.ip()),
        Some(Ipv4Addr::LOCALHOST.into())
    );
    assert_ne!(local.port(), Some(0));
}

/// A loopback client made by `start()` runs its first turn on its Arbiter's shared runner
/// (issue 22), not a task of its own: it is still a whole actor, answering every message sent
/// right after `start()` before it delivers, stopping at once when told to, and living on (as
/// its own task) when its outcome must wait for a recipient.
#[actix::test]
async fn a_one_shot_client_answers_every_message_from_its_first_turn() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("listener");
    let addr = listener.local_addr().expect("address");
    let mut events = Events::start();
    for _ in 0..20 {
        let client = events.builder().connect(addr).start();
        let (id, stats, local) = (
            client.send(GetId),
            client.send(GetStats),
            client.send(GetSockName),
        );
        let id = id.await.expect("GetId answered");
        let stats = stats.await.expect("GetStats answered");
        assert_eq!((stats.accepted, stats.delivered), (1, 0), "{stats:?}");
        let local = local.await.expect("mailbox").expect("bound");
        let created = events.next_created(LIMIT).await.expect("delivered");
        assert_eq!((created.id, created.local), (id, Some(local)));
        let _ = listener.accept().expect("accepted");
        assert!(
            wait_until(LIMIT, || !client.connected()).await,
            "done after delivery"
        );
    }

    // Told to stop right after start(): nothing is delivered, the socket is closed.
    for _ in 0..20 {
        let client = events.builder().connect(addr).start();
        client.do_send(StopFactory);
        assert!(
            wait_until(LIMIT, || !client.connected()).await,
            "stopped at once"
        );
        // Closed by then: the read below does not block this (the System's) thread.
        let (mut accepted, _) = listener.accept().expect("accepted");
        let mut byte = [0u8; 1];
        accepted
            .set_read_timeout(Some(LIMIT))
            .expect("read timeout");
        let read = std::io::Read::read(&mut accepted, &mut byte).expect("closed, not timed out");
        assert_eq!(read, 0, "the client's socket was closed");
    }
    assert!(
        events.next(Duration::from_millis(100)).await.is_err(),
        "delivered after StopFactory"
    );

    // Success disabled right after start(): the socket waits past the first turn, then goes
    // where SetEvents sends it.
    let mut other = Events::start();
    let client = events.builder().connect(addr).start();
    client.do_send(SetEvents::disable_success());
    let _ = listener.accept().expect("accepted");
    assert!(events.next(Duration::from_millis(100)).await.is_err());
    assert_eq!(
        client
            .send(GetStats)
            .await
            .expect("answered while held")
            .delivered,
        0
    );
    client.do_send(SetEvents::success(other.owner().clone().recipient()));
    other
        .next_created(LIMIT)
        .await
        .expect("delivered once a recipient is set");
}

#[actix::test]
async fn a_pending_client_answers_get_sock_name_and_stops_at_once() {
    let (_listener, _filler, hole) = black_hole(Ipv4Addr::LOCALHOST.into()).await;
    let mut events = Events::start();
    let client = events.builder().connect(hole).start();
    let local = client
        .send(GetSockName)
        .await
        .expect("mailbox")
        .expect("bound");
    assert_eq!(
        local.as_inet().map(|a| a.ip()),
        Some(Ipv4Addr::LOCALHOST.into())
    );
    assert!(
        util::syn_sent_to(hole.port()) >= 1,
        "the connect is under way"
    );

    client.do_send(StopFactory);
    let stopped = client.clone();
    assert!(wait_until(Duration::from_millis(500), move || !stopped.connected()).await);
    assert!(
        wait_until(LIMIT, move || util::syn_sent_to(hole.port()) == 0).await,
        "the half-open socket stayed"
    );
    assert!(
        events.next(Duration::from_millis(200)).await.is_err(),
        "delivered after stop"
    );
}

#[actix::test]
async fn a_pending_client_follows_its_owner_within_the_check_period() {
    let (_listener, _filler, hole) = black_hole(Ipv4Addr::LOCALHOST.into()).await;
    let events = Events::start();
    let client = events
        .builder()
        .connect(hole)
        .owner_check_interval(Some(Duration::from_millis(50)))
        .start();
    assert!(util::syn_sent_to(hole.port()) >= 1);
    events.stop_owner();
    let started = Instant::now();
    assert!(
        wait_until(LIMIT, move || !client.connected()).await,
        "the pending client outlived its owner"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

// ---- errors where you await ----

#[actix::test]
async fn spawn_gives_the_os_error_for_a_port_in_use() {
    let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("listener");
    let addr = taken.local_addr().expect("address");
    let mut events = Events::start();
    let failed = events
        .builder()
        .bind(addr)
        .spawn()
        .await
        .expect_err("in use");
    assert_eq!(failed.operation, Operation::Bind);
    assert_eq!(failed.errno, Some(libc::EADDRINUSE));
    let text = failed.to_string();
    // Counted as the OS's own words: the factory's id in the text may contain "98" too.
    assert_eq!(
        text.matches("os error 98").count(),
        1,
        "the OS error once: {text}"
    );
    let boxed: Box<dyn std::error::Error> = Box::new(failed);
    assert!(boxed.source().is_some());
    // Taken where awaited, not sent to the recipient as well.
    assert!(events.next(Duration::from_millis(100)).await.is_err());
}

#[actix::test]
async fn spawn_gives_a_config_error_typed() {
    let events = Events::start();
    let failed = events
        .builder()
        .remote_address("127.0.0.1")
        .spawn()
        .await
        .expect_err("no port");
    assert_eq!(failed.operation, Operation::Config);
    assert_eq!(failed.config_error(), Some(&ConfigError::MissingRemotePort));
}

#[actix::test]
async fn spawn_answers_the_bound_address_of_a_server() {
    let events = Events::start();
    let server = events
        .builder()
        .bind(
            "tcp://127.0.0.1:0"
                .parse::<actix_socket_factory::Endpoint>()
                .expect("endpoint"),
        )
        .spawn()
        .await
        .expect("listening");
    let asked = server
        .addr
        .send(GetSockName)
        .await
        .expect("mailbox")
        .expect("bound");
    assert_eq!(server.local.as_ref(), Some(&asked));
    assert!(server.port().is_some_and(|port| port != 0));
}

// ---- bad values ----

#[actix::test]
async fn extreme_durations_never_panic() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("listener");
    let addr = listener.local_addr().expect("address");
    let mut events = Events::start();
    events
        .builder()
        .connect(addr)
        .connect_timeout(Duration::MAX)
        .happy_eyeballs_delay(Duration::MAX)
        .owner_check_interval(Some(Duration::MAX))
        .start();
    events.next_created(LIMIT).await.expect("connected");

    assert!(matches!(
        events
            .builder()
            .owner_check_interval(Some(Duration::ZERO))
            .build()
            .err(),
        Some(ConfigError::InvalidDuration { .. })
    ));
    // A server with the longest check period is still checked (capped), and serves.
    let server = events
        .builder()
        .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .owner_check_interval(Some(Duration::MAX))
        .spawn()
        .await
        .expect("listening");
    server.addr.do_send(StopFactory);
}

#[actix::test]
async fn listen_queue_zero_means_the_default() {
    use actix_socket_factory::PauseAccept;
    let events = Events::start();
    let server = events
        .builder()
        .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .listen_queue(0)
        .start();
    server.do_send(PauseAccept);
    let addr = server
        .send(GetSockName)
        .await
        .expect("mailbox")
        .expect("bound")
        .as_inet()
        .expect("inet");
    // With a backlog of 0 Linux queues one client and drops the rest's SYNs; with the default
    // all eight complete their handshake while nobody accepts.
    let mut clients = Vec::new();
    for _ in 0..8 {
        let client =
            tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr))
                .await
                .expect("handshake completed: the queue is longer than one")
                .expect("connected");
        clients.push(client);
    }
}

// ---- stopping during a look-up ----

#[test]
fn stop_during_a_slow_lookup_is_immediate() {
    child::run("child_stop_during_lookup", LIMIT * 6);
}

/// In a private mount and network namespace the resolver is a responder of ours that holds its
/// answer for five seconds. Skips (passing, with the reason printed) without the privilege.
#[test]
#[ignore = "run by stop_during_a_slow_lookup_is_immediate in a child process"]
fn child_stop_during_lookup() {
    use util::dns::{Record, Responder};

    if !child::is_child("child_stop_during_lookup") {
        return;
    }
    if let Err(reason) = netns::enter() {
        return child::skip(&format!("no private namespaces here ({reason})"));
    }
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, text) in [
        (
            "resolv.conf",
            "nameserver 127.0.0.1\noptions timeout:6 attempts:1\n",
        ),
        ("hosts", "127.0.0.1 localhost\n"),
        ("nsswitch.conf", "hosts: files dns\n"),
    ] {
        let source = dir.path().join(name);
        std::fs::write(&source, text).expect("write /etc file");
        if let Err(reason) = netns::bind_file(&source, &Path::new("/etc").join(name)) {
            return child::skip(&format!("cannot replace /etc/{name} ({reason})"));
        }
    }
    let dns = Responder::start(
        (Ipv4Addr::LOCALHOST, 53).into(),
        vec![Record {
            name: "slow.test".into(),
            v4: Some(Ipv4Addr::LOCALHOST),
            v6: None,
            answer_after: Some(Duration::from_secs(5)),
        }],
    )
    .expect("DNS responder on 127.0.0.1:53");

    System::new().block_on(async {
        let mut events = Events::start();
        let client = events.builder().connect(("slow.test", 9)).start();
        let server = events.builder().bind(("slow.test", 0)).start();
        // Both look-ups under way: the resolver has been asked.
        assert!(
            wait_until(LIMIT, || dns
                .questions()
                .iter()
                .any(|q| q.contains("slow.test")))
            .await,
            "the look-up never reached the resolver"
        );
        let asked = Instant::now();
        client.do_send(StopFactory);
        server.do_send(StopFactory);
        let (c, s) = (client.clone(), server.clone());
        assert!(
            wait_until(LIMIT, move || !c.connected() && !s.connected()).await,
            "the factories did not stop"
        );
        let took = asked.elapsed();
        assert!(took < Duration::from_millis(100), "stopping took {took:?}");
        // Nothing is delivered afterwards, even when the answer comes.
        assert!(
            events.next(Duration::from_secs(6)).await.is_err(),
            "delivered after stop"
        );
        println!("stopped during look-ups in {took:?}");

        // An unknown host is an error where the awaited start is awaited.
        let failed = events
            .builder()
            .connect(("unknown.test", 9))
            .spawn()
            .await
            .expect_err("an unknown host");
        assert_eq!(failed.operation, Operation::Resolve, "{failed}");
        assert!(events.next(Duration::from_millis(100)).await.is_err());
    });
}

// ---- supervised clients reconnect with the back-off they were given ----

#[actix::test]
async fn a_supervised_client_retries_with_the_backoff_it_was_given() {
    let refused = SocketAddr::from((Ipv4Addr::LOCALHOST, util::closed_port()));
    let mut events = Events::start();
    let (first, max) = (Duration::from_millis(10), Duration::from_millis(40));
    let factory = events
        .builder()
        .connect(refused)
        .restart_backoff(first, max)
        .build()
        .expect("a valid description");
    let _supervised = actix::Supervisor::start(move |_| factory);
    let started = Instant::now();
    for attempt in 0..6 {
        let failed = events
            .next_failed(LIMIT)
            .await
            .unwrap_or_else(|e| panic!("attempt {attempt}: {e}"));
        assert_eq!(failed.errno, Some(libc::ECONNREFUSED), "{failed}");
    }
    let took = started.elapsed();
    // Waits of 10, 20, 40, 40, 40 ms at least; the default back-off (100 ms doubling to 5 s)
    // would take 3.1 s for the same six attempts.
    assert!(took >= first + first * 2 + max * 3, "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

// ---- the owner check's clock thread (issue 22) ----

#[test]
fn the_owner_check_thread_runs_only_while_a_factory_is_watched() {
    child::run("child_owner_check_thread", LIMIT * 3);
}

/// This process's threads named `owner-check`.
fn owner_check_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .flatten()
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|name| name.trim() == "owner-check")
        })
        .count()
}

/// Alone in its process: no other test's factories start or keep the thread.
#[test]
#[ignore = "run by the_owner_check_thread_runs_only_while_a_factory_is_watched in a child process"]
fn child_owner_check_thread() {
    if !child::is_child("child_owner_check_thread") {
        return;
    }
    System::new().block_on(async {
        let mut events = Events::start();
        assert_eq!(owner_check_threads(), 0, "before any factory");
        // A loopback client delivered in its first turn is never watched.
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("listener");
        let client = events
            .builder()
            .connect(listener.local_addr().expect("address"))
            .start();
        events.next_created(LIMIT).await.expect("delivered");
        assert!(wait_until(LIMIT, || !client.connected()).await);
        assert_eq!(owner_check_threads(), 0, "a one-shot client started it");
        // A server is watched: the thread runs, and the owner's end is still seen.
        let server = events
            .builder()
            .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .owner_check_interval(Some(Duration::from_millis(20)))
            .start();
        // Its Arbiter's sweep starts the thread at its first turn.
        assert!(
            wait_until(LIMIT, || owner_check_threads() == 1).await,
            "no owner-check thread while watching a server"
        );
        events.stop_owner();
        let gone = server.clone();
        assert!(
            wait_until(LIMIT, move || !gone.connected()).await,
            "the server followed its owner"
        );
        // Its sweep has nobody left to watch: the thread ends.
        assert!(
            wait_until(LIMIT, || owner_check_threads() == 0).await,
            "the owner-check thread outlived every watched factory"
        );
    });
}
