//! No panic from any value (issue 21, point 7): every builder setter with extreme values (zero,
//! one, the type's maximum, durations at and near `Duration::MAX`, empty, huge and hostile
//! strings), in every role (TCP server, TCP client, UDP socket, UNIX server), started each way
//! (`build()` then `start()` of the actor, `start()`, `spawn()`), a client connected where there
//! is a server, then stopped: never a panic, never a wait past its bound.
//!
//! First every setter/value alone (the sweep), then random combinations of several (proptest).
//! It runs in a child process in a private network namespace of its own: names the values make
//! up go to `getaddrinfo`, and there no query can leave the machine (the namespace has only
//! `lo`, so a DNS query fails at once).

mod util;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_socket_factory::testing::{wait_until, Events};
use actix_socket_factory::{GetSockName, SocketAddress, SocketFactory, StopFactory};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use util::{child, netns};

/// The longest any one step may take: a start, a `spawn()`, an answer, a delivery, a stop.
const BOUND: Duration = Duration::from_secs(5);

static PANICS: AtomicUsize = AtomicUsize::new(0);

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

// ---- the values ----

fn durations() -> Vec<(&'static str, Duration)> {
    vec![
        ("0", Duration::ZERO),
        ("1ns", Duration::from_nanos(1)),
        ("1ms", Duration::from_millis(1)),
        ("1s", Duration::from_secs(1)),
        ("u32::MAX s", Duration::from_secs(u32::MAX.into())),
        ("u64::MAX s", Duration::from_secs(u64::MAX)),
        (
            "MAX-1ns",
            Duration::MAX.saturating_sub(Duration::from_nanos(1)),
        ),
        ("MAX", Duration::MAX),
    ]
}

fn strings() -> Vec<(&'static str, String)> {
    vec![
        ("empty", String::new()),
        ("one", "x".into()),
        ("escapes", "\u{1b}[2J\u{1b}]0;owned\u{7}\r\n".into()),
        ("NUL", "a\0b".into()),
        ("non-ASCII", "名前.テスト".into()),
        ("64 KiB", "a".repeat(64 * 1024)),
        ("1 MiB", "b.".repeat(512 * 1024)),
    ]
}

fn u32s() -> Vec<u32> {
    vec![0, 1, 255, 256, 0o7777, i32::MAX as u32, u32::MAX]
}

fn usizes() -> Vec<usize> {
    vec![0, 1, i32::MAX as usize, u32::MAX as usize, usize::MAX]
}

fn i32s() -> Vec<i32> {
    vec![0, 1, -1, 6, 17, 132, 262, i32::MAX, i32::MIN]
}

/// One setter with one value, ready to apply.
#[derive(Clone)]
struct Setting {
    label: String,
    apply: Arc<
        dyn Fn(
                actix_socket_factory::SocketFactoryBuilder,
            ) -> actix_socket_factory::SocketFactoryBuilder
            + Send
            + Sync,
    >,
}

fn setting(
    label: String,
    apply: impl Fn(actix_socket_factory::SocketFactoryBuilder) -> actix_socket_factory::SocketFactoryBuilder
        + Send
        + Sync
        + 'static,
) -> Setting {
    Setting {
        label,
        apply: Arc::new(apply),
    }
}

/// Every setter of the builder (bar the recipients and `resolver`), with every extreme value
/// of its type. `acceptor` is a loopback server that accepts and drops, for remote addresses.
fn settings(acceptor: SocketAddr) -> Vec<Setting> {
    let mut all = Vec::new();
    macro_rules! each {
        ($name:literal, $values:expr, |$b:ident, $v:ident| $body:expr) => {
            for (label, value) in $values {
                let $v = value.clone();
                all.push(setting(format!("{}({})", $name, label), move |$b| {
                    let $v = $v.clone();
                    $body
                }));
            }
        };
    }
    let durations = durations();
    let labelled = |values: Vec<u32>| {
        values
            .into_iter()
            .map(|v| (v.to_string(), v))
            .collect::<Vec<_>>()
    };
    let strings = strings();

    each!("happy_eyeballs_delay", durations.clone(), |b, d| b
        .happy_eyeballs_delay(d));
    each!("connect_timeout", durations.clone(), |b, d| b
        .connect_timeout(d));
    each!("lookup_timeout", durations.clone(), |b, d| b
        .lookup_timeout(d));
    each!("tcp_keepalive_time", durations.clone(), |b, d| b
        .tcp_keepalive_time(d));
    each!("tcp_keepalive_interval", durations.clone(), |b, d| b
        .tcp_keepalive_interval(d));
    for (label, d) in durations.clone() {
        all.push(setting(
            format!("owner_check_interval(Some({label}))"),
            move |b| b.owner_check_interval(Some(d)),
        ));
        all.push(setting(format!("linger(Some({label}))"), move |b| {
            b.linger(Some(d))
        }));
        all.push(setting(
            format!("accept_backoff({label}, {label})"),
            move |b| b.accept_backoff(d, d),
        ));
        all.push(setting(format!("accept_backoff({label}, 0)"), move |b| {
            b.accept_backoff(d, Duration::ZERO)
        }));
        all.push(setting(
            format!("restart_backoff({label}, {label})"),
            move |b| b.restart_backoff(d, d),
        ));
        all.push(setting(format!("restart_backoff({label}, 0)"), move |b| {
            b.restart_backoff(d, Duration::ZERO)
        }));
    }
    all.push(setting("owner_check_interval(None)".into(), |b| {
        b.owner_check_interval(None)
    }));
    all.push(setting("linger(None)".into(), |b| b.linger(None)));
    each!("listen_queue", labelled(u32s()), |b, v| b.listen_queue(v));
    each!("unix_mode", labelled(u32s()), |b, v| b.unix_mode(v));
    each!("ttl", labelled(u32s()), |b, v| b.ttl(v));
    each!("tcp_keepalive_retries", labelled(u32s()), |b, v| b
        .tcp_keepalive_retries(v));
    let sizes: Vec<(String, usize)> = usizes().into_iter().map(|v| (v.to_string(), v)).collect();
    each!("max_outstanding", sizes.clone(), |b, v| b
        .max_outstanding(v));
    each!("send_buffer_size", sizes.clone(), |b, v| b
        .send_buffer_size(v));
    each!("recv_buffer_size", sizes.clone(), |b, v| b
        .recv_buffer_size(v));
    for flag in [false, true] {
        all.push(setting(format!("reuse({flag})"), move |b| b.reuse(flag)));
        all.push(setting(format!("reuse_port({flag})"), move |b| {
            b.reuse_port(flag)
        }));
        all.push(setting(format!("replace_stale_socket({flag})"), move |b| {
            b.replace_stale_socket(flag)
        }));
        all.push(setting(format!("tcp_nodelay({flag})"), move |b| {
            b.tcp_nodelay(flag)
        }));
        all.push(setting(format!("keepalive({flag})"), move |b| {
            b.keepalive(flag)
        }));
        all.push(setting(format!("only_v6({flag})"), move |b| {
            b.only_v6(flag)
        }));
        all.push(setting(format!("broadcast({flag})"), move |b| {
            b.broadcast(flag)
        }));
    }
    for group in [
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::BROADCAST,
        Ipv4Addr::new(224, 0, 0, 1),
    ] {
        for interface in [Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST] {
            all.push(setting(
                format!("join_multicast_v4({group}, {interface})"),
                move |b| b.join_multicast_v4(group, interface),
            ));
        }
    }
    for group in [Ipv6Addr::UNSPECIFIED, "ff02::1".parse().expect("group")] {
        for interface in [0, u32::MAX] {
            all.push(setting(
                format!("join_multicast_v6({group}, {interface})"),
                move |b| b.join_multicast_v6(group, interface),
            ));
        }
    }
    let numbers: Vec<(String, i32)> = i32s().into_iter().map(|v| (v.to_string(), v)).collect();
    each!("protocol", numbers, |b, v| b.protocol(v));
    each!("protocol", strings.clone(), |b, s| b.protocol(s.as_str()));
    each!("bind_address", strings.clone(), |b, s| b.bind_address(s));
    each!("remote_address", strings.clone(), |b, s| b
        .remote_address(s));
    each!("bind_port", strings.clone(), |b, s| b.bind_port(s));
    each!("remote_port", strings.clone(), |b, s| b.remote_port(s));
    each!("bind", strings.clone(), |b, s| b.bind(s));
    each!("connect", strings.clone(), |b, s| b.connect(s));
    each!("systemd", strings.clone(), |b, s| b
        .systemd(Some(s.as_str())));
    all.push(setting("systemd(None)".into(), |b| b.systemd(None)));
    for port in [0u16, 1, u16::MAX] {
        all.push(setting(format!("bind_port({port})"), move |b| {
            b.bind_port(port)
        }));
        all.push(setting(format!("remote_port({port})"), move |b| {
            b.remote_port(port)
        }));
    }
    for number in ["99999", "-1", "18446744073709551616"] {
        all.push(setting(format!("bind_port({number:?})"), move |b| {
            b.bind_port(number)
        }));
    }
    all.push(setting("remote_addresses([])".into(), |b| {
        b.remote_addresses([])
    }));
    all.push(setting("remote_addresses([acceptor])".into(), move |b| {
        b.remote_addresses([acceptor])
    }));
    let closed: Vec<SocketAddr> = (0..3)
        .map(|_| {
            let probe = TcpListener::bind("127.0.0.1:0").expect("probe");
            probe.local_addr().expect("probe address")
        })
        .chain([acceptor])
        .collect();
    all.push(setting(
        "remote_addresses(3 closed, acceptor)".into(),
        move |b| b.remote_addresses(closed.clone()),
    ));
    all.push(setting("adopt(TcpListener)".into(), |b| {
        b.adopt(TcpListener::bind("127.0.0.1:0").expect("listener"))
    }));
    all.push(setting("adopt(UdpSocket)".into(), |b| {
        b.adopt(UdpSocket::bind("127.0.0.1:0").expect("udp"))
    }));
    all.push(setting("adopt(unbound stream)".into(), |b| {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        b.adopt(socket)
    }));
    #[cfg(feature = "proxy-protocol")]
    {
        use actix_socket_factory::ProxyProtocol;
        // header_timeout(Duration::MAX) with a silent client panicked the read (issue 21 point 4).
        for (label, d) in [
            ("1ns", Duration::from_nanos(1)),
            ("1ms", Duration::from_millis(1)),
            ("0", Duration::ZERO),
            ("MAX/2", Duration::MAX / 2),
            ("MAX", Duration::MAX),
        ] {
            all.push(setting(
                format!("proxy_protocol(required, header_timeout {label})"),
                move |b| b.proxy_protocol(ProxyProtocol::required().header_timeout(d)),
            ));
        }
        for max in [0, 1, usize::MAX] {
            all.push(setting(
                format!("proxy_protocol(optional, max_header_len {max})"),
                move |b| b.proxy_protocol(ProxyProtocol::optional().max_header_len(max)),
            ));
        }
        for max in [0, 1, usize::MAX] {
            all.push(setting(
                format!("proxy_protocol(required, max_pending {max})"),
                move |b| b.proxy_protocol(ProxyProtocol::required().max_pending(max)),
            ));
        }
    }
    all
}

// ---- roles and starts ----

#[derive(Debug, Clone, Copy)]
enum Role {
    TcpServer,
    TcpClient,
    Udp,
    UnixServer,
}

const ROLES: [Role; 4] = [
    Role::TcpServer,
    Role::TcpClient,
    Role::Udp,
    Role::UnixServer,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    /// `build()`, then the actor's own `start()`.
    Build,
    /// `build()`, then under an `actix::Supervisor` (restarts, `restart_backoff`).
    Supervised,
    Start,
    /// `start_in_arbiter()`, on the test's own Arbiter.
    InArbiter,
    Spawn,
}

const STARTS: [Way; 5] = [
    Way::Build,
    Way::Supervised,
    Way::Start,
    Way::InArbiter,
    Way::Spawn,
];

struct Bench {
    acceptor: SocketAddr,
    dir: tempfile::TempDir,
    next: AtomicUsize,
}

impl Bench {
    fn role(
        &self,
        role: Role,
        events: &Events,
    ) -> (actix_socket_factory::SocketFactoryBuilder, Option<PathBuf>) {
        let b = events.builder();
        match role {
            Role::TcpServer => (b.bind("127.0.0.1:0"), None),
            Role::TcpClient => (b.connect(self.acceptor), None),
            Role::Udp => (b.bind("udp://127.0.0.1:0"), None),
            Role::UnixServer => {
                let n = self.next.fetch_add(1, Ordering::Relaxed);
                let path = self.dir.path().join(format!("s{n}.sock"));
                (b.bind(path.as_path()), Some(path))
            }
        }
    }
}

/// One run: what happened, for the tally; `Err` for a wait past its bound.
async fn run_case(
    bench: &Bench,
    role: Role,
    start: Way,
    settings: &[&Setting],
) -> Result<&'static str, String> {
    let mut events = Events::start();
    let (mut builder, _path) = bench.role(role, &events);
    for setting in settings {
        builder = (setting.apply)(builder);
    }
    let timed = |what: &str| format!("{what} took longer than {BOUND:?}");
    let addr: Addr<SocketFactory> = match start {
        Way::Build => match builder.build() {
            Ok(factory) => factory.start(),
            Err(_) => return Ok("refused by build()"),
        },
        Way::Supervised => match builder.build() {
            Ok(factory) => actix::Supervisor::start(move |_| factory),
            Err(_) => return Ok("refused by build()"),
        },
        Way::Start => builder.start(),
        Way::InArbiter => builder.start_in_arbiter(&actix::Arbiter::current()),
        Way::Spawn => match tokio::time::timeout(BOUND, builder.spawn()).await {
            Err(_) => return Err(timed("spawn()")),
            Ok(Err(_)) => return Ok("refused by spawn()"),
            Ok(Ok(spawned)) => spawned.addr,
        },
    };
    let local = match tokio::time::timeout(BOUND, addr.send(GetSockName)).await {
        Err(_) => return Err(timed("GetSockName")),
        Ok(Err(_)) => None, // the factory has ended already
        Ok(Ok(local)) => local.ok(),
    };
    let mut outcome = if local.is_some() { "bound" } else { "failed" };
    // A server: a client connects and is delivered (or its failure reported).
    let client_of = |local: &SocketAddress| -> Option<Box<dyn std::any::Any>> {
        match (role, local) {
            (Role::TcpServer, SocketAddress::Inet(at)) => TcpStream::connect_timeout(at, BOUND)
                .ok()
                .map(|s| Box::new(s) as _),
            (Role::UnixServer, SocketAddress::Unix(path)) => {
                std::os::unix::net::UnixStream::connect(path)
                    .ok()
                    .map(|s| Box::new(s) as _)
            }
            _ => None,
        }
    };
    let _client = local.as_ref().and_then(client_of);
    // With the PROXY protocol, a client that sends no header is (rightly) never delivered:
    // give its header read a moment to run instead.
    let proxy = settings
        .iter()
        .any(|s| s.label.starts_with("proxy_protocol"));
    if _client.is_some() && proxy {
        let _ = events.next(Duration::from_millis(20)).await;
        outcome = "held a silent PROXY client";
    } else if _client.is_some() {
        match events.next(BOUND).await {
            Ok(_) => outcome = "served a client",
            Err(error) => return Err(format!("no delivery within {BOUND:?}: {error:?}")),
        }
    }
    addr.do_send(StopFactory);
    if start == Way::Supervised {
        // A stopped factory under a Supervisor stays, retired: it still answers, at once.
        match tokio::time::timeout(BOUND, addr.send(GetSockName)).await {
            Err(_) => return Err(timed("a retired factory's answer")),
            Ok(Ok(Ok(_))) => return Err("still bound after StopFactory".into()),
            Ok(_) => {}
        }
    } else if !wait_until(BOUND, || !addr.connected()).await {
        return Err(timed("stop"));
    }
    Ok(outcome)
}

/// A loopback TCP server that accepts and drops, until told to stop.
fn acceptor() -> (SocketAddr, Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("acceptor");
    listener.set_nonblocking(true).expect("non-blocking");
    let addr = listener.local_addr().expect("acceptor address");
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = Arc::clone(&stop);
    let thread = std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(600);
        while !stopped.load(Ordering::Relaxed) && Instant::now() < end {
            match listener.accept() {
                Ok(_) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
        }
    });
    (addr, stop, thread)
}

#[test]
fn every_setter_with_extreme_values_in_every_role_and_start() {
    child::run("child_extreme_values", Duration::from_secs(600));
}

#[test]
#[ignore = "run by every_setter_with_extreme_values_in_every_role_and_start in a child process"]
fn child_extreme_values() {
    if !child::is_child("child_extreme_values") {
        return;
    }
    if let Err(reason) = netns::enter() {
        return child::skip(&format!("no private namespace here ({reason})"));
    }
    count_panics();
    util::raise_fd_limit();
    let (at, stop, thread) = acceptor();
    let bench = Bench {
        acceptor: at,
        dir: tempfile::tempdir().expect("temp dir"),
        next: AtomicUsize::new(0),
    };
    let table = settings(at);
    let system = System::new();
    let began = Instant::now();
    let mut runs = 0usize;
    let mut tally: std::collections::BTreeMap<&'static str, usize> = Default::default();
    let mut hangs = Vec::new();

    // The sweep: each setter/value alone, in every role, each way to start.
    for entry in &table {
        for role in ROLES {
            for start in STARTS {
                runs += 1;
                match system.block_on(run_case(&bench, role, start, &[entry])) {
                    Ok(outcome) => *tally.entry(outcome).or_default() += 1,
                    Err(hang) => hangs.push(format!("{} {role:?} {start:?}: {hang}", entry.label)),
                }
            }
        }
    }
    let swept = runs;
    let sweep_time = began.elapsed();

    // Random combinations of 2 to 4 settings.
    let mut runner = TestRunner::new(Config {
        cases: 1000,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        0..ROLES.len(),
        0..STARTS.len(),
        proptest::collection::vec(0..table.len(), 2..=4),
    );
    let combined = std::cell::Cell::new(0usize);
    let result = runner.run(&strategy, |(role, start, picks)| {
        combined.set(combined.get() + 1);
        let chosen: Vec<&Setting> = picks.iter().map(|&i| &table[i]).collect();
        let labels: Vec<&str> = chosen.iter().map(|s| s.label.as_str()).collect();
        let outcome = system.block_on(run_case(&bench, ROLES[role], STARTS[start], &chosen));
        prop_assert!(
            outcome.is_ok(),
            "{labels:?} {:?} {:?}: {outcome:?}",
            ROLES[role],
            STARTS[start]
        );
        prop_assert_eq!(
            PANICS.load(Ordering::SeqCst),
            0,
            "a panic with {:?}",
            labels
        );
        Ok(())
    });
    runs += combined.get();
    stop.store(true, Ordering::Relaxed);
    let _ = thread.join();
    println!(
        "extreme values: {} setter/value entries x {} roles x {} starts = {swept} single runs \
         in {sweep_time:?}, then {} random combinations of 2-4; {runs} runs in all in {:?}; \
         outcomes of the sweep {tally:?}; panics {}",
        table.len(),
        ROLES.len(),
        STARTS.len(),
        combined.get(),
        began.elapsed(),
        PANICS.load(Ordering::SeqCst)
    );
    assert!(
        hangs.is_empty(),
        "waits past their bound:\n{}",
        hangs.join("\n")
    );
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "panics (see above)");
    if let Err(error) = result {
        panic!("{error}");
    }
}
