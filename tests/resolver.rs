//! Name look-ups that never hold anything up: the pluggable resolver, deadlines on every look-up,
//! stops that do not wait for a resolver, and abandoned look-ups that leave the process's thread
//! count bounded. The default resolver (getaddrinfo on the look-up pool) and, with the `hickory`
//! feature, hickory-resolver pass the same checks against a DNS responder of our own in a private
//! network namespace.

mod util;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_socket_factory::{
    Domain, GetSockName, Operation, Resolve, Resolving, SocketFactory, SocketFactoryBuilder,
    SocketFailed,
};
use util::dns::{Record, Responder};
use util::*;

/// How soon a System or an Arbiter must be gone after its stop.
const STOP_BOUND: Duration = Duration::from_millis(100);

// ---- resolvers of our own, no privilege needed ----

/// Answers fixed names at once.
#[derive(Debug)]
struct Fixed(Vec<(&'static str, Vec<std::net::IpAddr>)>);

impl Resolve for Fixed {
    fn resolve(&self, host: &str, port: u16) -> Resolving {
        let found = self
            .0
            .iter()
            .find(|(name, _)| *name == host)
            .map(|(_, ips)| ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect())
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no {host}")));
        Box::pin(async move { found })
    }
}

/// Never answers; counts the look-ups started and the ones dropped (cancelled).
#[derive(Debug, Default)]
struct Never {
    started: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
}

struct CountDrop(Arc<AtomicUsize>);

impl Drop for CountDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Resolve for Never {
    fn resolve(&self, _host: &str, _port: u16) -> Resolving {
        self.started.fetch_add(1, Ordering::SeqCst);
        let guard = CountDrop(Arc::clone(&self.dropped));
        Box::pin(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
            Ok(Vec::new())
        })
    }
}

async fn failure_of(builder: SocketFactoryBuilder, events: &mut Events) -> SocketFailed {
    let _factory = builder.start();
    events.next_failed(LIMIT).await.expect("a SocketFailed")
}

#[actix::test]
async fn a_custom_resolver_answers_for_clients_and_servers() {
    let mut events = Events::start();
    let loopback = vec![Ipv4Addr::LOCALHOST.into()];
    let fixed = Arc::new(Fixed(vec![("db.test", loopback)]));
    let server = events
        .builder()
        .bind(("db.test", 0))
        .resolver(Arc::clone(&fixed))
        .start();
    let addr = server
        .send(GetSockName)
        .await
        .expect("mailbox")
        .expect("bound");
    let addr = addr.as_inet().expect("inet");
    assert_eq!(addr.ip(), std::net::IpAddr::from(Ipv4Addr::LOCALHOST));
    let _client = events
        .builder()
        .connect(("db.test", addr.port()))
        .resolver(Arc::clone(&fixed))
        .start();
    let created = events.next_created(LIMIT).await.expect("a connection");
    drop(created);
    let failed = failure_of(
        events.builder().connect(("other.test", 9)).resolver(fixed),
        &mut events,
    )
    .await;
    assert_eq!(failed.operation, Operation::Resolve);
    assert!(failed.to_string().contains("no other.test"), "{failed}");
}

#[actix::test]
async fn a_server_lookup_ends_at_its_lookup_timeout_and_is_dropped() {
    let mut events = Events::start();
    let never = Never::default();
    let (started, dropped) = (Arc::clone(&never.started), Arc::clone(&never.dropped));
    let limit = Duration::from_millis(300);
    let began = Instant::now();
    let failed = failure_of(
        events
            .builder()
            .bind(("hang.test", 0))
            .lookup_timeout(limit)
            .resolver(never),
        &mut events,
    )
    .await;
    let took = began.elapsed();
    assert_eq!(
        (failed.operation, failed.errno),
        (Operation::Resolve, Some(libc::ETIMEDOUT)),
        "{failed}"
    );
    assert!(took >= limit && took < limit * 5, "failed after {took:?}");
    assert_eq!(started.load(Ordering::SeqCst), 1);
    assert!(
        wait_until(LIMIT, || dropped.load(Ordering::SeqCst) == 1).await,
        "the look-up was not dropped"
    );
}

#[actix::test]
async fn a_client_lookup_ends_at_its_connect_timeout_and_is_dropped() {
    let mut events = Events::start();
    let never = Never::default();
    let dropped = Arc::clone(&never.dropped);
    let limit = Duration::from_millis(200);
    let began = Instant::now();
    let failed = failure_of(
        events
            .builder()
            .connect(("hang.test", 9))
            .connect_timeout(limit)
            .resolver(never),
        &mut events,
    )
    .await;
    let took = began.elapsed();
    assert_eq!(
        (failed.operation, failed.errno),
        (Operation::Connect, Some(libc::ETIMEDOUT)),
        "{failed}"
    );
    assert!(took >= limit && took < limit * 5, "failed after {took:?}");
    assert!(wait_until(LIMIT, || dropped.load(Ordering::SeqCst) == 1).await);
}

/// A datagram factory's look-up has the lookup_timeout too (here shorter than the default).
#[actix::test]
async fn a_datagram_lookup_is_bounded_too() {
    let mut events = Events::start();
    let failed = failure_of(
        events
            .builder()
            .socket_type(actix_socket_factory::SocketType::Datagram)
            .bind(("hang.test", 0))
            .lookup_timeout(Duration::from_millis(100))
            .resolver(Never::default()),
        &mut events,
    )
    .await;
    assert_eq!(
        (failed.operation, failed.errno),
        (Operation::Resolve, Some(libc::ETIMEDOUT))
    );
}

/// The System stopped during a look-up that never ends: `run` returns at once.
#[test]
fn stop_during_a_hung_custom_lookup_ends_the_system_at_once() {
    let stopped_after = stop_system_during_lookup(|builder| builder.resolver(Never::default()));
    assert!(
        stopped_after < STOP_BOUND,
        "System::run returned {stopped_after:?} after stop"
    );
}

/// Starts a server whose bind address is being looked up, stops the System 300 ms later, and
/// returns how long `run` took to return after the stop.
fn stop_system_during_lookup(
    configure: impl FnOnce(SocketFactoryBuilder) -> SocketFactoryBuilder + 'static,
) -> Duration {
    let system = System::new();
    let stop_at = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let stamp = Arc::clone(&stop_at);
    system.block_on(async move {
        let events = Events::start();
        let factory = configure(events.builder().bind(("hang.test", 0))).start();
        actix_rt::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert!(factory.connected(), "the factory ended before the stop");
            *stamp.lock().unwrap() = Some(Instant::now());
            let _keep = events;
            System::current().stop();
        });
    });
    system.run().expect("the System ran");
    let stopped = stop_at.lock().unwrap().expect("stop was called");
    stopped.elapsed()
}

/// An Arbiter stopped during a look-up: its thread ends at once.
fn stop_arbiter_during_lookup(
    configure: impl FnOnce(SocketFactoryBuilder) -> SocketFactoryBuilder + Send + 'static,
) -> Duration {
    let arbiter = Arbiter::new();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    arbiter.spawn(async move {
        let events = Events::start();
        let factory = configure(events.builder().bind(("hang.test", 0))).start();
        let _ = ready_tx.send(());
        // Keep the owner and the factory alive until the Arbiter goes.
        std::future::pending::<()>().await;
        drop((events, factory));
    });
    ready_rx
        .recv_timeout(LIMIT)
        .expect("the factory started on the Arbiter");
    std::thread::sleep(Duration::from_millis(300));
    let stopped = Instant::now();
    arbiter.stop();
    let (joined_tx, joined_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = arbiter.join();
        let _ = joined_tx.send(stopped.elapsed());
    });
    joined_rx
        .recv_timeout(LIMIT)
        .expect("the Arbiter's thread ended in time")
}

#[test]
fn stop_of_an_arbiter_during_a_hung_custom_lookup_is_immediate() {
    let _system = System::new();
    let took = stop_arbiter_during_lookup(|builder| builder.resolver(Never::default()));
    assert!(took < STOP_BOUND, "the Arbiter ended {took:?} after stop");
}

// ---- the real backends against a DNS responder in a private namespace ----

const SLOW: Duration = Duration::from_secs(3);

/// Enters a private network and mount namespace whose resolver is a responder of ours on
/// 127.0.0.1:53; `None` (after telling the parent why) when this machine cannot.
fn private_resolver() -> Option<Responder> {
    if !cfg!(target_os = "linux") {
        child::skip("private namespaces are Linux-only");
        return None;
    }
    if let Err(reason) = netns::enter() {
        child::skip(&format!("no private namespaces here ({reason})"));
        return None;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let files = [
        (
            "resolv.conf",
            "nameserver 127.0.0.1\noptions timeout:4 attempts:1\n",
        ),
        (
            "hosts",
            "127.0.0.1 localhost\n::1 localhost\n127.0.0.1 hosts-only.test\n",
        ),
        ("nsswitch.conf", "hosts: files dns\n"),
    ];
    for (name, text) in files {
        let source = dir.path().join(name);
        std::fs::write(&source, text).expect("write /etc file");
        if let Err(reason) = netns::bind_file(&source, &Path::new("/etc").join(name)) {
            child::skip(&format!("cannot replace /etc/{name} ({reason})"));
            return None;
        }
    }
    // The bind mounts keep the files; the directory may go.
    let record = |name: &str, answer_after| Record {
        name: name.into(),
        v4: Some(Ipv4Addr::LOCALHOST),
        v6: None,
        answer_after,
    };
    let responder = Responder::start(
        (Ipv4Addr::LOCALHOST, 53).into(),
        vec![
            record("fast.test", Some(Duration::ZERO)),
            record("slow.test", Some(SLOW)),
            record("hang.test", None),
        ],
    )
    .expect("DNS responder on 127.0.0.1:53");
    Some(responder)
}

/// This process's threads, from `/proc/self/status`.
fn threads() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Threads:"))
                .and_then(|count| count.trim().parse().ok())
        })
        .expect("Threads in /proc/self/status")
}

type Configure = Arc<dyn Fn(SocketFactoryBuilder) -> SocketFactoryBuilder + Send + Sync>;

/// Every check a resolver backend must pass, in this (namespaced) process.
fn backend_checks(name: &str, configure: Configure) {
    let dns = private_resolver();
    let Some(dns) = dns else {
        return;
    };
    let with = |configure: &Configure| {
        let configure = Arc::clone(configure);
        move |builder: SocketFactoryBuilder| configure(builder)
    };

    // (a) Names, families, failures and deadlines.
    let system = System::new();
    let c = Arc::clone(&configure);
    system.block_on(async move {
        let mut events = Events::start();
        for host in ["fast.test", "hosts-only.test", "localhost"] {
            let server = c(events.builder().domain(Domain::Inet).bind((host, 0))).start();
            let addr = server
                .send(GetSockName)
                .await
                .expect("mailbox")
                .unwrap_or_else(|e| panic!("{host}: no address ({e:?})"));
            assert_eq!(
                addr.as_inet().map(|a| a.ip()),
                Some(Ipv4Addr::LOCALHOST.into()),
                "{host}"
            );
            let port = addr.port().expect("port");
            let _client = c(events.builder().connect((host, port))).start();
            let created = events.next_created(LIMIT).await;
            assert!(created.is_ok(), "{host}: {created:?}");
            let accepted = events.next_created(LIMIT).await;
            assert!(accepted.is_ok(), "{host}: {accepted:?}");
        }
        let failed = failure_of(
            c(events.builder().connect(("nxdomain.test", 80))),
            &mut events,
        )
        .await;
        assert_eq!(failed.operation, Operation::Resolve, "{failed}");
        let failed = failure_of(
            c(events
                .builder()
                .domain(Domain::Inet6)
                .connect(("fast.test", 80))),
            &mut events,
        )
        .await;
        assert_eq!(failed.operation, Operation::Resolve, "{failed}");
        assert!(failed.to_string().contains("no IPv6 address"), "{failed}");
        // A server's look-up of a name that never answers ends at its lookup_timeout.
        let began = Instant::now();
        let failed = failure_of(
            c(events
                .builder()
                .bind(("hang.test", 0))
                .lookup_timeout(Duration::from_millis(300))),
            &mut events,
        )
        .await;
        assert_eq!(
            (failed.operation, failed.errno),
            (Operation::Resolve, Some(libc::ETIMEDOUT)),
            "{failed}"
        );
        assert!(
            began.elapsed() < Duration::from_secs(2),
            "{:?}",
            began.elapsed()
        );
        System::current().stop();
    });
    system.run().expect("System ran");

    // (b) 600 clients to a slow name, each giving up after 100 ms: the thread count stays
    // bounded, and a look-up of localhost right after is answered in time.
    let system = System::new();
    let c = Arc::clone(&configure);
    let label = name.to_owned();
    system.block_on(async move {
        let mut events = Events::start();
        let server = events.builder().bind(("127.0.0.1", 0)).start();
        let port = server
            .send(GetSockName)
            .await
            .expect("mailbox")
            .ok()
            .and_then(|addr| addr.port())
            .expect("port");
        let before = threads();
        let mut most = before;
        let began = Instant::now();
        for _ in 0..600 {
            let _client = c(events
                .builder()
                .connect(("slow.test", port))
                .connect_timeout(Duration::from_millis(100)))
            .start();
        }
        for n in 0..600 {
            let failed = events
                .next_failed(LIMIT)
                .await
                .unwrap_or_else(|e| panic!("client {n}: {e:?}"));
            assert_eq!(
                (failed.operation, failed.errno),
                (Operation::Connect, Some(libc::ETIMEDOUT)),
                "{failed}"
            );
            most = most.max(threads());
        }
        let failed_in = began.elapsed();
        let began = Instant::now();
        let _client = c(events
            .builder()
            .connect(("localhost", port))
            .connect_timeout(Duration::from_secs(2)))
        .start();
        let created = events.next_created(LIMIT).await;
        let answered_in = began.elapsed();
        println!(
            "{label}: 600 abandoned look-ups in {failed_in:?}; threads {before} before, at most \
             {most} during, {} after; localhost connected in {answered_in:?}",
            threads()
        );
        assert!(created.is_ok(), "localhost: {created:?}");
        assert!(answered_in < Duration::from_secs(2), "{answered_in:?}");
        assert!(
            most <= before + 6,
            "threads grew from {before} to {most} with abandoned look-ups"
        );
        System::current().stop();
    });
    system.run().expect("System ran");

    // (c) Stops during a look-up of a name that never answers: at once.
    let stopped_after = stop_system_during_lookup(with(&configure));
    let arbiter_after = stop_arbiter_during_lookup(with(&configure));
    println!(
        "{name}: System::run returned {stopped_after:?} after stop; an Arbiter ended \
         {arbiter_after:?} after stop"
    );
    assert!(stopped_after < STOP_BOUND, "System: {stopped_after:?}");
    assert!(arbiter_after < STOP_BOUND, "Arbiter: {arbiter_after:?}");

    let asked = dns.questions();
    for question in ["fast.test A", "slow.test A", "hang.test A"] {
        assert!(
            asked.iter().any(|q| q == question),
            "{question} not asked: {asked:?}"
        );
    }
    let slow_asked = asked.iter().filter(|q| *q == "slow.test A").count();
    println!("{name}: slow.test asked {slow_asked} times for 600 clients");
}

#[test]
fn default_resolver_checks() {
    child::run("child_default_resolver_checks", Duration::from_secs(90));
}

#[test]
#[ignore = "run by default_resolver_checks in a child process"]
fn child_default_resolver_checks() {
    if !child::is_child("child_default_resolver_checks") {
        return;
    }
    backend_checks("getaddrinfo", Arc::new(|builder| builder));
}

#[cfg(feature = "hickory")]
#[test]
fn hickory_resolver_checks() {
    child::run("child_hickory_resolver_checks", Duration::from_secs(90));
}

#[cfg(feature = "hickory")]
#[test]
#[ignore = "run by hickory_resolver_checks in a child process"]
fn child_hickory_resolver_checks() {
    if !child::is_child("child_hickory_resolver_checks") {
        return;
    }
    // Made after the namespace is entered (inside backend_checks' first step would be too late
    // for nothing: it reads /etc/resolv.conf when made), so made lazily, once.
    let resolver = Arc::new(std::sync::OnceLock::new());
    backend_checks(
        "hickory",
        Arc::new(move |builder| {
            let hickory = resolver.get_or_init(|| {
                Arc::new(
                    actix_socket_factory::HickoryResolver::from_system_conf()
                        .expect("hickory from /etc/resolv.conf"),
                )
            });
            builder.resolver(Arc::clone(hickory))
        }),
    );
}

#[actix::test]
async fn a_bound_factory_resolves_nothing_for_literals() {
    // An IP literal never reaches the resolver.
    let never = Never::default();
    let started = Arc::clone(&never.started);
    let events = Events::start();
    let server = events
        .builder()
        .bind(("127.0.0.1", 0))
        .resolver(never)
        .start();
    let addr = server.send(GetSockName).await.expect("mailbox");
    assert!(addr.is_ok(), "{addr:?}");
    assert_eq!(started.load(Ordering::SeqCst), 0);
    drop(SocketFactory::builder());
}

/// StopFactory during a look-up that never ends: the factory ends at once, the look-up future
/// is dropped, and nothing is delivered afterwards.
#[actix::test]
async fn stop_factory_during_a_hung_lookup_drops_it_at_once() {
    let mut events = Events::start();
    let never = Never::default();
    let (started, dropped) = (Arc::clone(&never.started), Arc::clone(&never.dropped));
    let factory = events
        .builder()
        .bind(("hang.test", 0))
        .resolver(never)
        .start();
    assert!(wait_until(LIMIT, || started.load(Ordering::SeqCst) == 1).await);
    let began = Instant::now();
    factory
        .send(actix_socket_factory::StopFactory)
        .await
        .expect("stopped");
    assert!(wait_until(LIMIT, || !factory.connected()).await);
    assert!(wait_until(LIMIT, || dropped.load(Ordering::SeqCst) == 1).await);
    let took = began.elapsed();
    assert!(took < STOP_BOUND, "ended {took:?} after StopFactory");
    let late = events.next(Duration::from_millis(200)).await;
    assert!(late.is_err(), "delivered after the stop: {late:?}");
}

#[test]
fn a_zero_lookup_timeout_is_a_config_error() {
    let error = SocketFactory::builder()
        .bind(("db.test", 0))
        .lookup_timeout(Duration::ZERO)
        .build()
        .expect_err("a zero limit");
    assert!(
        matches!(
            error,
            actix_socket_factory::ConfigError::InvalidDuration {
                setting: "lookup_timeout",
                ..
            }
        ),
        "{error:?}"
    );
}
