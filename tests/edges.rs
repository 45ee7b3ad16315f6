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

/// `build()` gives a `ConfigError`; `start()` sends the same one as a `SocketFailed` "config";
/// `spawn()` returns it: no panic anywhere, on any thread, in any task.
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

        let mut events = Events::start();
        let spawned = describe(events.builder()).spawn().await;
        let failed = spawned.expect_err(what);
        assert_eq!(failed.operation, Operation::Config, "{what}: {failed:?}");
        assert_eq!(failed.config_error(), Some(&expected), "{what}");
        // ... and nothing more to the recipients (spawn() took its own error).
        assert!(events.next_failed(Duration::from_millis(20)).await.is_err());
        // Any task set going by a start (the owner sweep, a look-up) has had turns to panic in.
        actix_rt::time::sleep(Duration::from_millis(20)).await;
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
