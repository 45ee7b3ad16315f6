//! Two zero-downtime upgrades of the actix-web example under an HTTP load: keep-alive clients
//! and a new connection per request, all the while; directly, and behind a real HAProxy
//! (PROXY v2). Every request is answered exactly once,
//! none refused, reset or failed; `peer_addr()` is each client's own bound address; each old
//! process exits once drained.
#![cfg(all(feature = "actix-web", feature = "proxy-protocol"))]

mod util;
mod web_support;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const LIMIT: Duration = Duration::from_secs(20);

/// The example, built with the features it needs, next to this test's own binaries.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let target_dir = profile_dir.parent().expect("target");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CARGO_TARGET_DIR", target_dir)
        .args(["build", "--quiet", "--example", name, "--features"])
        .arg(features().join(","));
    if profile_dir.file_name().is_some_and(|p| p == "release") {
        build.arg("--release");
    }
    let status = build.status().expect("run cargo build --example");
    assert!(status.success(), "cargo build --example {name}: {status}");
    profile_dir.join("examples").join(name)
}

/// This test's own features (at least those the example needs), so the example builds on the
/// library this test was built with instead of building it again.
fn features() -> Vec<&'static str> {
    let mut features = vec!["actix-web", "proxy-protocol"];
    for (on, name) in [
        (cfg!(feature = "serde"), "serde"),
        (cfg!(feature = "clap"), "clap"),
        (cfg!(feature = "hickory"), "hickory"),
        (cfg!(feature = "metrics"), "metrics"),
    ] {
        if on {
            features.push(name);
        }
    }
    features
}

/// What the load saw.
#[derive(Debug, Default)]
struct Tally {
    answered: u64,
    refused: u64,
    reset: u64,
    failed: u64,
    /// Requests sent on a reused keep-alive connection that the server closed, idle, before
    /// reading them: sent again on a new connection, as RFC 9112 §9.3.1 has clients do. (The
    /// drain closes a connection only after `IDLE_GRACE` of idleness, so an active client
    /// rarely meets this.)
    retried: u64,
    wrong_peer: u64,
    by_pid: BTreeMap<u32, u64>,
    errors: Vec<String>,
}

enum Outcome {
    Answer {
        close: bool,
        body: String,
    },
    /// The connection ended before any byte of an answer.
    ClosedFirst,
}

async fn exchange(stream: &mut BufReader<TcpStream>) -> std::io::Result<Outcome> {
    stream
        .get_mut()
        .write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        .await?;
    let mut head = Vec::new();
    let mut byte = [0; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await? == 0 {
            return if head.is_empty() {
                Ok(Outcome::ClosedFirst)
            } else {
                Err(std::io::ErrorKind::UnexpectedEof.into())
            };
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    if !head.starts_with("http/1.1 200") {
        return Err(std::io::Error::other(head));
    }
    let header = |name: &str| {
        head.lines().find_map(|line| {
            line.strip_prefix(&format!("{name}: "))
                .map(|v| v.trim().to_owned())
        })
    };
    let len: usize = header("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    stream.read_exact(&mut body).await?;
    Ok(Outcome::Answer {
        close: header("connection").as_deref() == Some("close"),
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

async fn connect(server: SocketAddr) -> std::io::Result<(BufReader<TcpStream>, SocketAddr)> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((Ipv4Addr::new(127, 0, 0, 2), 0)))?;
    let stream = socket.connect(server).await?;
    let local = stream.local_addr()?;
    Ok((BufReader::new(stream), local))
}

/// One client until `stop`: keep-alive (reuses its connection until told to close) or not.
async fn client(
    server: SocketAddr,
    keep_alive: bool,
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
) {
    let mut connection: Option<(BufReader<TcpStream>, SocketAddr)> = None;
    while !stop.load(Ordering::Relaxed) {
        let reused = connection.is_some();
        let (stream, me) = match connection.as_mut() {
            Some(open) => open,
            None => match connect(server).await {
                Ok(open) => connection.insert(open),
                Err(error) => {
                    let mut tally = tally.lock().unwrap();
                    tally.refused += 1;
                    tally.errors.push(format!("connect: {error}"));
                    continue;
                }
            },
        };
        let me = *me;
        match tokio::time::timeout(LIMIT, exchange(stream)).await {
            Ok(Ok(Outcome::Answer { close, body })) => {
                let mut tally = tally.lock().unwrap();
                tally.answered += 1;
                // "hello <client> from pid <pid>"
                let words: Vec<&str> = body.split_whitespace().collect();
                if words.get(1) != Some(&me.to_string().as_str()) {
                    tally.wrong_peer += 1;
                    tally.errors.push(format!("{me}: {body}"));
                }
                if let Some(pid) = words.last().and_then(|p| p.parse().ok()) {
                    *tally.by_pid.entry(pid).or_default() += 1;
                }
                if close || !keep_alive {
                    connection = None;
                }
            }
            Ok(Ok(Outcome::ClosedFirst)) if reused => {
                tally.lock().unwrap().retried += 1;
                connection = None;
            }
            Ok(Ok(Outcome::ClosedFirst)) => {
                let mut tally = tally.lock().unwrap();
                tally.failed += 1;
                tally
                    .errors
                    .push("closed before an answer on a new connection".into());
                connection = None;
            }
            Ok(Err(error)) => {
                let mut tally = tally.lock().unwrap();
                if error.kind() == std::io::ErrorKind::ConnectionReset {
                    tally.reset += 1;
                } else {
                    tally.failed += 1;
                }
                tally.errors.push(format!("reused {reused}: {error}"));
                connection = None;
            }
            Err(_) => {
                let mut tally = tally.lock().unwrap();
                tally.failed += 1;
                tally.errors.push("no answer in time".into());
                connection = None;
            }
        }
    }
}

fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // A zombie has exited; its parent (or init) reaps it.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn hangup(pid: u32) {
    let status = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status();
    assert!(status.is_ok_and(|s| s.success()), "kill -HUP {pid}");
}

/// Waits until answers come from a pid not in `known` and the last of `known` has exited;
/// returns the new pid.
async fn next_pid(known: &[u32], tally: &Arc<Mutex<Tally>>) -> u32 {
    let old = *known.last().expect("a known pid");
    let deadline = Instant::now() + LIMIT;
    loop {
        let new = tally
            .lock()
            .unwrap()
            .by_pid
            .keys()
            .copied()
            .find(|pid| !known.contains(pid));
        if let Some(pid) = new {
            if gone(old) {
                return pid;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no new process served, or pid {old} did not exit"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The example's processes: each still running when the test ends (a failure) is killed.
struct Processes(Vec<u32>);

impl Drop for Processes {
    fn drop(&mut self) {
        for pid in &self.0 {
            if !gone(*pid) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_upgrades_under_load_answer_every_request_once() {
    upgrades_under_load(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_upgrades_behind_haproxy_answer_every_request_once() {
    upgrades_under_load(true).await;
}

async fn upgrades_under_load(behind_haproxy: bool) {
    let haproxy_program = if behind_haproxy {
        match web_support::haproxy() {
            Some(program) => Some(program),
            None => return,
        }
    } else {
        None
    };
    let program = example("actix_web");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let server = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut first = Command::new(&program);
    first.arg(server.to_string()).args(["--workers", "2"]);
    if behind_haproxy {
        first.arg("--proxy");
    }
    let mut first = first
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("start the example");
    let mut processes = Processes(vec![first.id()]);
    let up = Instant::now();
    while !web_support::listening(port) {
        assert!(up.elapsed() < LIMIT, "the example did not listen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The clients' way in: the server itself, or HAProxy in front of it.
    let (_haproxy, front) = match haproxy_program {
        Some(program) => {
            let (haproxy, front) =
                web_support::start_haproxy(program, server, "send-proxy-v2").await;
            (Some(haproxy), front)
        }
        None => (None, server),
    };

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let clients: Vec<_> = (0..8)
        .map(|i| tokio::spawn(client(front, i % 2 == 0, stop.clone(), tally.clone())))
        .collect();

    tokio::time::sleep(Duration::from_millis(500)).await;
    let p1 = first.id();
    hangup(p1);
    let p2 = next_pid(&processes.0, &tally).await;
    processes.0.push(p2);
    let _ = first.wait(); // reaped: it exited after draining
    tokio::time::sleep(Duration::from_millis(500)).await;
    hangup(p2);
    let p3 = next_pid(&processes.0, &tally).await;
    processes.0.push(p3);
    tokio::time::sleep(Duration::from_millis(500)).await;

    stop.store(true, Ordering::Relaxed);
    for client in clients {
        tokio::time::timeout(LIMIT, client).await.unwrap().unwrap();
    }
    let _ = Command::new("kill")
        .args(["-TERM", &p3.to_string()])
        .status();
    let deadline = Instant::now() + LIMIT;
    while !gone(p3) {
        assert!(
            Instant::now() < deadline,
            "pid {p3} did not exit at SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let tally = tally.lock().unwrap();
    println!(
        "{}answered {} (by pid {:?}), refused {}, reset {}, failed {}, retried {}, wrong peer {}",
        if behind_haproxy {
            "behind haproxy: "
        } else {
            ""
        },
        tally.answered,
        tally.by_pid,
        tally.refused,
        tally.reset,
        tally.failed,
        tally.retried,
        tally.wrong_peer
    );
    assert_eq!(
        (tally.refused, tally.reset, tally.failed, tally.wrong_peer),
        (0, 0, 0, 0),
        "{:?}",
        &tally.errors[..tally.errors.len().min(10)]
    );
    assert_eq!(
        tally.by_pid.len(),
        3,
        "three processes served: {:?}",
        tally.by_pid
    );
    assert!(tally.answered > 100, "{tally:?}");
}
