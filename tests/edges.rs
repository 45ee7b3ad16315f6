//! Values at the edges (issue 21): every invalid description gives the same typed error from
//! `build()`, `start()` and `spawn()`, never a panic; host names no DNS could hold are refused
//! before any look-up; every setter with extreme values in every role starts and stops without a
//! panic or a hang; error messages quote a bounded, escaped prefix of what they were given.

mod util;

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

use actix_socket_factory::testing::Events;
use actix_socket_factory::{ConfigError, Operation, SocketFactory, SocketFactoryBuilder};

const LIMIT: Duration = Duration::from_secs(5);

// ---- panics anywhere in this process are counted ----

static PANICS: AtomicUsize = AtomicUsize::new(0);

/// Counts every panic of this process (on any thread, in any task), then reports it as before.
fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            previous(info);
        }));
    });
}

fn panics() -> usize {
    PANICS.load(Ordering::SeqCst)
}

// ---- point 6: one typed error from every way to start ----

type Describe = fn(SocketFactoryBuilder) -> SocketFactoryBuilder;

/// Descriptions `build()` refuses, by what is wrong with them.
fn invalid_descriptions() -> Vec<(&'static str, Describe)> {
    #[allow(unused_mut)]
    let mut cases: Vec<(&'static str, Describe)> = vec![
        ("zero owner check", |b| {
            b.bind("127.0.0.1:0")
                .owner_check_interval(Some(Duration::ZERO))
        }),
        ("zero owner check, client", |b| {
            b.connect("127.0.0.1:9")
                .owner_check_interval(Some(Duration::ZERO))
        }),
        ("zero owner check, datagram", |b| {
            b.bind("udp://127.0.0.1:0")
                .owner_check_interval(Some(Duration::ZERO))
        }),
        ("zero owner check, adopted", |b| {
            let listener = TcpListener::bind("127.0.0.1:0").expect("listener");
            b.adopt(listener).owner_check_interval(Some(Duration::ZERO))
        }),
        ("zero owner check, named host", |b| {
            b.bind("localhost:0")
                .owner_check_interval(Some(Duration::ZERO))
        }),
        ("zero look-up timeout", |b| {
            b.bind("localhost:0").lookup_timeout(Duration::ZERO)
        }),
        ("ttl 0", |b| b.bind("127.0.0.1:0").ttl(0)),
        ("remote port alone", |b| b.remote_port(80)),
        ("host name of 254 bytes", |b| {
            b.bind_address("a".repeat(254)).bind_port(0)
        }),
        ("label of 64 bytes", |b| {
            b.connect((format!("{}.example", "a".repeat(64)).as_str(), 80))
        }),
        ("bad endpoint", |b| b.connect("tcp://[::1")),
    ];
    #[cfg(feature = "proxy-protocol")]
    cases.push(("zero PROXY header timeout", |b| {
        b.bind("127.0.0.1:0").proxy_protocol(
            actix_socket_factory::ProxyProtocol::required().header_timeout(Duration::ZERO),
        )
    }));
    cases
}

/// `build()` gives a `ConfigError`; `start()` and `start_in_arbiter()` send the same one as a
/// `SocketFailed` "config"; `spawn()` returns it: no panic anywhere, on any thread, in any task.
#[actix::test]
async fn every_way_to_start_gives_the_same_typed_error() {
    count_panics();
    let before = panics();
    for (what, describe) in invalid_descriptions() {
        let events = Events::start();
        let expected: ConfigError = match describe(events.builder()).build() {
            Err(error) => error,
            Ok(_) => panic!("{what}: build() accepted it"),
        };

        let mut events = Events::start();
        let _factory = describe(events.builder()).start();
        let failed = events
            .next_failed(LIMIT)
            .await
            .unwrap_or_else(|e| panic!("{what}: start() reported nothing: {e:?}"));
        assert_eq!(failed.operation, Operation::Config, "{what}: {failed:?}");
        assert_eq!(failed.config_error(), Some(&expected), "{what}");

        // On another Arbiter.
        let arbiter = actix::Arbiter::new();
        let mut events = Events::start();
        let _factory = describe(events.builder()).start_in_arbiter(&arbiter.handle());
        let failed = events
            .next_failed(LIMIT)
            .await
            .unwrap_or_else(|e| panic!("{what}: start_in_arbiter() reported nothing: {e:?}"));
        assert_eq!(failed.operation, Operation::Config, "{what}: {failed:?}");
        assert_eq!(failed.config_error(), Some(&expected), "{what}");
        arbiter.stop();

        let mut events = Events::start();
        let spawned = describe(events.builder()).spawn().await;
        let failed = spawned.expect_err(what);
        assert_eq!(failed.operation, Operation::Config, "{what}: {failed:?}");
        assert_eq!(failed.config_error(), Some(&expected), "{what}");
        // ... and nothing more to the recipients (spawn() took its own error).
        assert!(events.next_failed(Duration::from_millis(20)).await.is_err());
        // Any task set going by a start (the owner sweep, a look-up) has had turns to panic in:
        // the wait above, and a few more turns of this Arbiter's ready tasks.
        for _ in 0..8 {
            tokio::task::yield_now().await;
        }
        assert_eq!(panics(), before, "{what}: a panic");
    }
}

// ---- point 5: host names no DNS could hold ----

#[test]
fn host_names_beyond_dns_limits_are_config_errors() {
    let events_free = || SocketFactory::builder().on_failure(dummy_failure_recipient());
    let at_limit = format!("{}.{}", "a".repeat(63), "b".repeat(63)); // 127 bytes
    let longest = [
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(61),
    ]
    .join("."); // 253 bytes
    assert_eq!(longest.len(), 253);
    for fine in [at_limit.clone(), longest.clone(), format!("{longest}.")] {
        let built = events_free()
            .bind_address(fine.as_str())
            .bind_port(0)
            .build();
        assert!(built.is_ok(), "{fine}: {:?}", built.err());
    }
    for (bad, why) in [
        (format!("{longest}a"), "253"),
        (format!("{}.test", "x".repeat(64)), "63"),
        ("y".repeat(1 << 20), "253"),
    ] {
        let error = events_free()
            .connect((bad.as_str(), 80))
            .build()
            .expect_err("too long");
        assert!(
            matches!(error, ConfigError::InvalidHostName { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains(why), "{error}");
    }
}

fn dummy_failure_recipient() -> actix::Recipient<actix_socket_factory::SocketFailed> {
    // build() never sends anything; a recipient is only needed to pass its check. One made in
    // a System that is gone is a fine recipient that nobody reads.
    let system = actix::System::new();
    system.block_on(async { Events::start().owner().clone().recipient() })
}

/// The default resolver refuses such a name itself, before the pool, and answers `localhost`
/// without a look-up.
#[actix::test]
async fn system_resolver_refuses_oversized_names_and_knows_localhost() {
    use actix_socket_factory::{Resolve, SystemResolver};
    let long = "z".repeat(300);
    let started = Instant::now();
    let refused = SystemResolver
        .resolve(&long, 80)
        .await
        .expect_err("refused");
    assert_eq!(refused.kind(), std::io::ErrorKind::InvalidInput);
    let label = format!("{}.test", "z".repeat(64));
    let refused = SystemResolver
        .resolve(&label, 80)
        .await
        .expect_err("refused");
    assert_eq!(refused.kind(), std::io::ErrorKind::InvalidInput);
    for name in ["localhost", "LOCALHOST", "localhost."] {
        let found = SystemResolver.resolve(name, 7).await.expect("loopback");
        assert!(found.iter().all(|a| a.ip().is_loopback() && a.port() == 7));
        assert!(found.iter().any(|a| a.is_ipv4()) && found.iter().any(|a| a.is_ipv6()));
    }
    assert!(started.elapsed() < Duration::from_secs(1));
}

// ---- point 5: a healthy name never waits behind hung ones ----

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;

use actix::System;
use actix_socket_factory::Resolve;
use util::dns::{Record, Responder};
use util::{child, netns};

/// Distinct names the responder never answers.
const HUNG: usize = 50;

/// Hung names when a healthy name is asked of the DNS server: more than the pool's 4 quick
/// lanes, fewer than its ceiling.
const FEW: usize = 12;

/// How long glibc (and hickory) wait for the silent server: resolv.conf's `timeout:3
/// attempts:1`.
const DNS_TIMEOUT: Duration = Duration::from_secs(3);

/// Enters a private network and mount namespace whose resolver is a responder of ours on
/// 127.0.0.1:53 that knows `fast.test` and never answers `hang0.test` ... `hang49.test`;
/// `None` (after telling the parent why) when this machine cannot.
fn hung_resolver() -> Option<Responder> {
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
            "nameserver 127.0.0.1\noptions timeout:3 attempts:1\n",
        ),
        ("hosts", "127.0.0.1 localhost\n::1 localhost\n"),
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
    let record = |name: String, answer_after| Record {
        name,
        v4: Some(Ipv4Addr::LOCALHOST),
        v6: None,
        answer_after,
    };
    let mut records = vec![record("fast.test".into(), Some(Duration::ZERO))];
    records.extend((0..HUNG).map(|n| record(format!("hang{n}.test"), None)));
    let responder = Responder::start((Ipv4Addr::LOCALHOST, 53).into(), records)
        .expect("DNS responder on 127.0.0.1:53");
    Some(responder)
}

/// This process's threads, from `/proc/self/task`, less the crate's one `owner-check` clock
/// thread (it runs while any factory is watched, whatever the resolver does).
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(Result::ok)
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .map_or(true, |name| name.trim_end() != "owner-check")
        })
        .count()
}

type Backend = Arc<dyn Fn() -> Arc<dyn Resolve> + Send + Sync>;

/// [`HUNG`] distinct hung names asked by as many factories (each giving up after 2 s), then
/// `localhost` asked of the resolver and by a factory; the figures are printed, the bounds
/// asserted: at most `thread_ceiling` threads more than before while the names hang, and at
/// most `resident` more once they have returned.
fn hung_names_then_localhost(
    label: &str,
    backend: Backend,
    thread_ceiling: usize,
    resident: usize,
) {
    let Some(dns) = hung_resolver() else {
        return;
    };
    let label = label.to_owned();
    let system = System::new();
    system.block_on(async move {
        let resolver = backend();
        let mut events = Events::start();
        // Let the System's own threads settle before the baseline.
        actix_rt::time::sleep(Duration::from_millis(50)).await;
        let before = threads();
        let began = Instant::now();
        let mut factories = Vec::new();
        let asked = |dns: &Responder| {
            let mut names: Vec<String> = dns
                .questions()
                .into_iter()
                .filter(|q| q.starts_with("hang"))
                .filter_map(|q| q.split(' ').next().map(str::to_owned))
                .collect();
            names.sort();
            names.dedup();
            names.len()
        };
        // A healthy name asked of the DNS server while FEW names hang (more than the pool's
        // quick lanes): served past them.
        for n in 0..FEW {
            let factory = events
                .builder()
                .bind((format!("hang{n}.test").as_str(), 0))
                .resolver(Arc::clone(&resolver))
                .lookup_timeout(Duration::from_secs(2))
                .start();
            factories.push(factory);
        }
        let until = Instant::now() + Duration::from_secs(5);
        while asked(&dns) < FEW.min(thread_ceiling) && Instant::now() < until {
            actix_rt::time::sleep(Duration::from_millis(5)).await;
        }
        let t = Instant::now();
        let fast =
            tokio::time::timeout(Duration::from_secs(5), resolver.resolve("fast.test", 0)).await;
        let fast_latency = t.elapsed();
        let fast = fast
            .expect("fast.test answered in time")
            .expect("fast.test");
        assert!(fast.iter().any(|a| a.ip().is_loopback()), "{fast:?}");

        for n in 0..HUNG {
            let factory = events
                .builder()
                .bind((format!("hang{n}.test").as_str(), 0))
                .resolver(Arc::clone(&resolver))
                .lookup_timeout(Duration::from_secs(2))
                .start();
            factories.push(factory);
        }
        // Every hung name's look-up under way that can be (the pool grows 4 threads per 100 ms
        // once the earlier ones have hung, up to its ceiling), bounded.
        let wanted = HUNG.min(thread_ceiling);
        let until = Instant::now() + Duration::from_secs(5);
        while asked(&dns) < wanted && Instant::now() < until {
            actix_rt::time::sleep(Duration::from_millis(5)).await;
        }
        let hung_asked = asked(&dns);
        let during = threads();

        // localhost, asked of the resolver itself ...
        let t = Instant::now();
        let found =
            tokio::time::timeout(Duration::from_secs(5), resolver.resolve("localhost", 0)).await;
        let resolver_latency = t.elapsed();
        let found = found.expect("localhost answered").expect("localhost");
        assert!(found.iter().all(|a| a.ip().is_loopback()), "{found:?}");
        // ... and by a factory binding it, up to listening.
        let t = Instant::now();
        let spawned = events
            .builder()
            .bind(("localhost", 0))
            .resolver(Arc::clone(&resolver))
            .lookup_timeout(Duration::from_secs(5))
            .spawn()
            .await;
        let factory_latency = t.elapsed();
        let spawned = spawned.expect("listening on localhost");
        let during_after_localhost = threads();

        // The hung ones end (their factories at 2 s; their threads at the DNS timeout).
        for n in 0..FEW + HUNG {
            let failed = events
                .next_failed(Duration::from_secs(10))
                .await
                .unwrap_or_else(|e| panic!("hung name {n}: {e:?}"));
            assert_eq!(failed.operation, Operation::Resolve, "{failed}");
        }
        let failed_in = began.elapsed();
        drop(factories);
        // Back to the baseline once the hung look-ups have returned and idle threads ended.
        let until = Instant::now() + DNS_TIMEOUT * 2 + Duration::from_secs(10);
        let mut after = threads();
        while after > before + resident && Instant::now() < until {
            actix_rt::time::sleep(Duration::from_millis(50)).await;
            after = threads();
        }
        let recovered_in = began.elapsed();
        println!(
            "{label}: fast.test from the DNS server in {fast_latency:?} while {FEW} names hang; \
             {HUNG} distinct hung names ({hung_asked} asked of the DNS server); \
             localhost from the resolver in {resolver_latency:?}, a factory listening on \
             localhost in {factory_latency:?}; threads {before} before, {during} during, \
             {during_after_localhost} with localhost, {after} after ({recovered_in:?}); \
             hung factories failed by {failed_in:?}"
        );
        assert!(spawned.local_addr().is_some_and(|a| a.ip().is_loopback()));
        assert!(hung_asked >= wanted, "only {hung_asked} hung names asked");
        // The bound is 50 ms; a loaded CI machine gets more room, the figure is printed.
        assert!(
            resolver_latency < Duration::from_secs(1),
            "{resolver_latency:?}"
        );
        assert!(fast_latency < Duration::from_secs(1), "{fast_latency:?}");
        assert!(
            factory_latency < Duration::from_secs(1),
            "{factory_latency:?}"
        );
        assert!(
            during.max(during_after_localhost) <= before + thread_ceiling + 2,
            "threads grew from {before} to {during}"
        );
        assert!(
            after <= before + resident,
            "threads not back to the baseline: {after}"
        );
        System::current().stop();
    });
    system.run().expect("System ran");
}

#[test]
fn localhost_is_not_held_up_by_fifty_hung_names() {
    child::run(
        "child_localhost_with_hung_names_system",
        Duration::from_secs(90),
    );
}

#[test]
#[ignore = "run by localhost_is_not_held_up_by_fifty_hung_names in a child process"]
fn child_localhost_with_hung_names_system() {
    if !child::is_child("child_localhost_with_hung_names_system") {
        return;
    }
    hung_names_then_localhost(
        "getaddrinfo",
        Arc::new(|| Arc::new(actix_socket_factory::SystemResolver)),
        32,
        0,
    );
}

#[cfg(feature = "hickory")]
#[test]
fn localhost_is_not_held_up_by_fifty_hung_names_hickory() {
    child::run(
        "child_localhost_with_hung_names_hickory",
        Duration::from_secs(90),
    );
}

#[cfg(feature = "hickory")]
#[test]
#[ignore = "run by localhost_is_not_held_up_by_fifty_hung_names_hickory in a child process"]
fn child_localhost_with_hung_names_hickory() {
    if !child::is_child("child_localhost_with_hung_names_hickory") {
        return;
    }
    // Made once the namespace is entered (it reads /etc/resolv.conf when made).
    hung_names_then_localhost(
        "hickory",
        Arc::new(|| {
            Arc::new(
                actix_socket_factory::HickoryResolver::from_system_conf()
                    .expect("hickory from /etc/resolv.conf"),
            )
        }),
        // Hickory holds no thread per look-up: the ceiling is its background thread, which
        // stays while the process has the resolver.
        2,
        1,
    );
}

// ---- point 8: error messages quote a bounded, escaped prefix ----

/// About 1 MiB of terminal escape sequences: clear the screen, set the window title, ring.
fn hostile(bytes: usize) -> String {
    let unit = "\u{1b}[2J\u{1b}]0;pwned\u{7}";
    unit.repeat(bytes / unit.len() + 1)
}

/// Short (a few hundred bytes, whatever the input's size), no raw control character, and the
/// input's length given.
fn assert_bounded(message: &str, input_len: usize) {
    println!("{input_len}-byte input: {}-byte message", message.len());
    assert!(
        message.len() < 1024,
        "{} bytes: {:?}",
        message.len(),
        &message[..200]
    );
    assert!(
        !message.chars().any(|c| c.is_control() && c != '\n'),
        "raw control characters in {message:?}"
    );
    assert!(
        message.contains(&format!("({input_len} bytes)")),
        "no length in {message:?}"
    );
}

#[test]
fn a_mebibyte_endpoint_gives_a_short_escaped_error() {
    let input = format!("tcp://{}:80", hostile(1 << 20));
    let error = input
        .parse::<actix_socket_factory::Endpoint>()
        .expect_err("bad");
    assert_bounded(&error.to_string(), input.len());
    assert_eq!(
        error.input(),
        input,
        "the whole input stays available to the program"
    );

    // Every kind of error that names part of the input.
    let long = hostile(1 << 16);
    for bad in [
        format!("{long}://x:1"),
        format!("tcp4://[{long}]:1"),
        format!("tcp4://{}:1", "9".repeat(1 << 16)),
        format!("tcp://x:{}", "9".repeat(1 << 16)),
        format!("tcp://[::1]{long}"),
    ] {
        let error = bad
            .parse::<actix_socket_factory::Endpoint>()
            .expect_err("bad");
        let text = error.to_string();
        assert!(text.len() < 1024, "{}: {}", text.len(), &text[..200]);
        assert!(!text.chars().any(char::is_control), "{text:?}");
    }

    // Through the builder: build()'s ConfigError, start()'s SocketFailed.
    let error = SocketFactory::builder()
        .on_failure(dummy_failure_recipient())
        .connect(input.as_str())
        .build()
        .expect_err("bad");
    assert_bounded(&error.to_string(), input.len());
    let host = hostile(1 << 20);
    let error = SocketFactory::builder()
        .on_failure(dummy_failure_recipient())
        .connect((host.as_str(), 80))
        .build()
        .expect_err("too long");
    assert_bounded(&error.to_string(), host.len());
}

#[actix::test]
async fn socket_failed_quotes_a_bounded_prefix() {
    let input = format!("tcp://{}:80", hostile(1 << 20));
    let mut events = Events::start();
    let _factory = events.builder().connect(input.as_str()).start();
    let failed = events.next_failed(LIMIT).await.expect("failure");
    assert_bounded(&failed.to_string(), input.len());
    assert_bounded(&failed.error.to_string(), input.len());
    // A name that goes to the (local) protocols database and is not there.
    let name = hostile(1 << 20);
    let spawned = events
        .builder()
        .bind("127.0.0.1:0")
        .protocol(name.as_str())
        .spawn()
        .await;
    let failed = spawned.expect_err("no such protocol");
    assert_eq!(failed.operation, Operation::Resolve, "{failed}");
    assert_bounded(&failed.to_string(), name.len());
}

#[cfg(feature = "clap")]
#[test]
fn clap_quotes_a_bounded_prefix() {
    use actix_socket_factory::Endpoint;
    use clap::{value_parser, Arg, Command};
    let input = format!("tcp://{}:80", hostile(1 << 20));
    let command = Command::new("server").arg(
        Arg::new("listen")
            .long("listen")
            .value_parser(value_parser!(Endpoint)),
    );
    let error = command
        .try_get_matches_from(["server", "--listen", input.as_str()])
        .expect_err("bad");
    let rendered = error.to_string();
    assert_bounded(&rendered, input.len());
    assert!(rendered.contains("--listen"), "{rendered}");
}

#[cfg(feature = "serde")]
#[test]
fn serde_quotes_a_bounded_prefix() {
    let input = format!("tcp://{}:80", hostile(1 << 20));
    let json = serde_json::to_string(&input).expect("json");
    let error = serde_json::from_str::<actix_socket_factory::Endpoint>(&json).expect_err("bad");
    assert_bounded(&error.to_string(), input.len());
}
