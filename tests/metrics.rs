//! Feature `metrics`: a factory's counters through the `metrics` facade, read back with
//! metrics-util's `DebuggingRecorder`, labelled with the factory's endpoint.
#![cfg(all(feature = "metrics", feature = "proxy-protocol"))]

mod util;

use std::io::Write;
use std::sync::OnceLock;
use std::time::Duration;

use actix::prelude::*;
use actix_socket_factory::testing::{start_and_locate, Event};
use actix_socket_factory::{
    export_metrics, PauseAccept, ProxyProtocol, ResumeAccept, StopExporter,
};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use util::*;

const EVERY: Duration = Duration::from_millis(20);

/// The process's recorder (one per process: the facade's global), installed once.
fn snapshotter() -> &'static Snapshotter {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder.install().expect("the only recorder");
        snapshotter
    })
}

/// The value of metric `name` with exactly the labels `labels`, if recorded.
fn value(name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    snapshotter()
        .snapshot()
        .into_vec()
        .into_iter()
        .find_map(|(key, _, _, value)| {
            let key = key.key();
            let mut got: Vec<(String, String)> = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            got.sort();
            let mut wanted: Vec<(String, String)> = labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            wanted.sort();
            (key.name() == name && got == wanted).then(|| match value {
                DebugValue::Counter(n) => n as f64,
                DebugValue::Gauge(g) => g.into_inner(),
                DebugValue::Histogram(_) => f64::NAN,
            })
        })
}

async fn until(name: &str, labels: &[(&str, &str)], wanted: f64) {
    let held = wait_until(LIMIT, || value(name, labels) == Some(wanted)).await;
    assert!(
        held,
        "{name}{labels:?}: {:?}, wanted {wanted}",
        value(name, labels)
    );
}

#[actix::test]
async fn counters_and_in_flight_are_exported_with_the_endpoint() {
    snapshotter();
    let mut events = Events::start();
    let (server, addr) = start_and_locate(events.builder().bind("127.0.0.1:0"))
        .await
        .unwrap();
    let exporter = export_metrics(&server, EVERY);
    let endpoint = addr.to_string();
    let at = [("endpoint", endpoint.as_str())];

    let clients: Vec<_> = (0..3)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(events.next_created(LIMIT).await.unwrap());
    }
    until("socket_factory_accepted_total", &at, 3.0).await;
    until("socket_factory_delivered_total", &at, 3.0).await;
    until("socket_factory_in_flight", &at, 3.0).await;
    until("socket_factory_accepting", &at, 1.0).await;
    drop(held);
    until("socket_factory_in_flight", &at, 0.0).await;
    server.send(PauseAccept).await.unwrap();
    until("socket_factory_accepting", &at, 0.0).await;
    server.send(ResumeAccept).await.unwrap();
    assert_eq!(
        value("socket_factory_backoff_episodes_total", &at),
        Some(0.0)
    );
    drop(clients);

    // The exporter stops on its own, and with the factory.
    exporter.send(StopExporter).await.unwrap();
    assert!(wait_until(LIMIT, || !exporter.connected()).await);
    let second = export_metrics(&server, EVERY);
    until("socket_factory_accepted_total", &at, 3.0).await; // absolute: not doubled
    server
        .send(actix_socket_factory::StopFactory)
        .await
        .unwrap();
    assert!(wait_until(LIMIT, || !second.connected()).await);
}

#[actix::test]
async fn proxy_outcomes_are_exported() {
    snapshotter();
    let mut events = Events::start();
    let builder = events
        .builder()
        .bind("127.0.0.1:0")
        .proxy_protocol(ProxyProtocol::required());
    let (server, addr) = start_and_locate(builder).await.unwrap();
    let _exporter = export_metrics(&server, EVERY);
    let endpoint = addr.to_string();

    let mut good = std::net::TcpStream::connect(addr).unwrap();
    good.write_all(b"PROXY TCP4 192.0.2.7 127.0.0.1 4711 80\r\n")
        .unwrap();
    let created = events.next_created(LIMIT).await.unwrap();
    assert_eq!(
        created.peer.and_then(|p| p.as_inet()),
        Some("192.0.2.7:4711".parse().unwrap())
    );
    let mut bad = std::net::TcpStream::connect(addr).unwrap();
    bad.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();

    for (outcome, wanted) in [
        ("header", 1.0),
        ("malformed", 1.0),
        ("dropped", 1.0),
        ("refused", 0.0),
    ] {
        let labels = [("endpoint", endpoint.as_str()), ("outcome", outcome)];
        until("socket_factory_proxy_total", &labels, wanted).await;
    }
}

/// Accept failures and a back-off episode (EMFILE, in a child process with a lowered descriptor
/// limit): `socket_factory_failed_total{operation="accept"}` and the episode counters.
#[test]
fn failures_by_operation_and_backoff_episodes_are_exported() {
    let out = run_child("exhaustion_child", Duration::from_secs(60));
    assert!(out.contains("exported"), "{out}");
}

#[test]
#[ignore = "runs in a child process: failures_by_operation_and_backoff_episodes_are_exported"]
fn exhaustion_child() {
    if !in_child("exhaustion_child") {
        return;
    }
    snapshotter();
    System::new().block_on(async {
        let mut events = Events::start();
        let (server, addr) = start_and_locate(
            events
                .builder()
                .bind("127.0.0.1:0")
                .accept_backoff(Duration::from_millis(50), Duration::from_millis(50)),
        )
        .await
        .unwrap();
        let _exporter = export_metrics(&server, EVERY);
        let endpoint = addr.to_string();
        let at = [("endpoint", endpoint.as_str())];
        server.send(PauseAccept).await.unwrap();
        let clients: Vec<_> = (0..40)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        set_fd_limit(Some((open_fds() + 20) as u64));
        server.send(ResumeAccept).await.unwrap();
        let mut held = Vec::new();
        loop {
            match events.next(LIMIT).await.expect("clients, then EMFILE") {
                Event::Created(created) => held.push(created),
                Event::Failed(failed) => {
                    assert_eq!(failed.errno, Some(libc::EMFILE), "{failed}");
                    break;
                }
            }
        }
        until(
            "socket_factory_failed_total",
            &[("endpoint", endpoint.as_str()), ("operation", "accept")],
            1.0,
        )
        .await;
        until("socket_factory_backoff_episodes_total", &at, 1.0).await;
        until("socket_factory_in_backoff", &at, 1.0).await;
        // Room again: the episode ends (the rest of the clients are accepted and dropped here).
        drop(held);
        drop(clients);
        let ended = wait_until(LIMIT, || {
            while events.try_created().is_some() {}
            value("socket_factory_in_backoff", &at) == Some(0.0)
        });
        assert!(ended.await);
        println!("exported");
    });
}
