//! Handing listening sockets to a new process, proven with the examples' own binaries under a
//! client load: `examples/upgrade.rs` (graceful upgrade, twice in a row; a successor killed
//! before it is ready; one that misses its deadline) and `examples/prefork.rs` (workers sharing
//! one listen queue).
//!
//! Each test runs in a child process of this test binary (tests/util/child.rs), which starts the
//! example in a process group of its own and kills the whole group when it is done, pass or fail.
//! Loopback only; every wait is bounded.

mod util;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use util::run_in_child;

/// How long any one wait for a process's line or state may take.
const WAIT: Duration = Duration::from_secs(30);

// ---- The example processes ----

/// An example's binary, in target/<profile>/examples beside the deps directory this test binary
/// runs from. `cargo test` builds the examples, but `cargo test --test handover` does not: the
/// binary is built (or found fresh) with the cargo running this test, so a stale one is never
/// tested. Only without cargo (the test binary run by hand) is an existing binary used as is.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let path = profile.join("examples").join(name);
    let built = BUILT.lock().unwrap().contains(name);
    if let (false, Ok(cargo)) = (built, std::env::var("CARGO")) {
        let mut command = Command::new(cargo);
        command
            .args(["build", "--quiet", "--example", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("CARGO_TARGET_DIR", profile.parent().expect("target dir"));
        if profile.file_name().is_some_and(|p| p == "release") {
            command.arg("--release");
        }
        let status = command.status().expect("run cargo build --example");
        assert!(status.success(), "cargo build --example {name} failed");
        BUILT.lock().unwrap().insert(name.to_owned());
    }
    assert!(
        path.exists(),
        "{} is missing: cargo build --examples",
        path.display()
    );
    path
}

/// Examples built by this process already.
static BUILT: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// The lines every process of one example printed (successors share the first one's stdout).
#[derive(Default)]
struct Lines {
    lines: Mutex<Vec<String>>,
    added: Condvar,
}

impl Lines {
    /// The first line (from `from` on) that `pick` accepts, waiting at most [`WAIT`]; returns
    /// its index and what `pick` made of it.
    fn wait_for<T>(&self, from: usize, what: &str, pick: impl Fn(&str) -> Option<T>) -> (usize, T) {
        let deadline = Instant::now() + WAIT;
        let mut lines = self.lines.lock().unwrap();
        loop {
            if let Some(found) = lines
                .iter()
                .enumerate()
                .skip(from)
                .find_map(|(i, line)| pick(line).map(|t| (i, t)))
            {
                return found;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no line {what} within {WAIT:?}:\n{}",
                lines.join("\n")
            );
            lines = self.added.wait_timeout(lines, left).unwrap().0;
        }
    }
}

/// An example started in its own process group; dropping it kills the group (successors and
/// workers included).
struct Group {
    first: Child,
    lines: Arc<Lines>,
}

impl Group {
    fn start(name: &str, args: &[&str]) -> Group {
        let mut first = Command::new(example(name))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .expect("start the example");
        let lines = Arc::new(Lines::default());
        let stdout = first.stdout.take().expect("piped stdout");
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                println!("  | {line}");
                sink.lines.lock().unwrap().push(line);
                sink.added.notify_all();
            }
        });
        Group { first, lines }
    }

    /// Waits until the first process exits; its status.
    fn wait_first(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.first.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "the first process did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: kill only sends a signal, to the group this test made.
        unsafe {
            libc::kill(-(self.first.id() as i32), libc::SIGKILL);
        }
        let _ = self.first.wait();
    }
}

fn signal(pid: u32, signal: i32) {
    // SAFETY: kill only sends a signal to a process this test started (or its successor).
    assert_eq!(unsafe { libc::kill(pid as i32, signal) }, 0, "kill {pid}");
}

/// The number of descriptors `pid` has open.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| dir.count())
        .unwrap_or(0)
}

/// Whether `pid` has exited (gone, or a zombie nobody reaped yet).
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // pid (comm) STATE ...: the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// Waits until `check` holds, polling every 20 ms for at most [`WAIT`].
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "not within {WAIT:?}: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn number_after(line: &str, prefix: &str) -> Option<u32> {
    let rest = line.strip_prefix(prefix)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

// ---- Clients ----

fn rot13(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            'a'..='m' | 'A'..='M' => (c as u8 + 13) as char,
            'n'..='z' | 'N'..='Z' => (c as u8 - 13) as char,
            _ => c,
        })
        .collect()
}

/// One connection: a line out, exactly one `[pid] rot13` line back, then the server's EOF.
fn ask(addr: SocketAddr, text: &str) -> Result<u32, String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|error| format!("connect: {error}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|error| error.to_string())?;
    stream
        .write_all(format!("{text}\n").as_bytes())
        .map_err(|error| format!("write: {error}"))?;
    stream
        .shutdown(std::net::Shutdown::Write)
        .map_err(|error| format!("shutdown: {error}"))?;
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .map_err(|error| format!("read: {error}"))?;
    parse_reply(&reply, text)
}

fn parse_reply(reply: &str, text: &str) -> Result<u32, String> {
    let mut lines = reply.lines();
    let (Some(line), None) = (lines.next(), lines.next()) else {
        return Err(format!("not exactly one answer: {reply:?}"));
    };
    let (pid, answer) = line
        .strip_prefix('[')
        .and_then(|rest| rest.split_once("] "))
        .ok_or_else(|| format!("untagged answer {line:?}"))?;
    if answer != rot13(text) {
        return Err(format!("wrong answer {line:?} to {text:?}"));
    }
    pid.parse().map_err(|_| format!("bad pid in {line:?}"))
}

/// A connection held open across a handover: asked once before, once after.
struct Held {
    stream: BufReader<TcpStream>,
}

impl Held {
    fn open(addr: SocketAddr) -> (Held, u32) {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut held = Held {
            stream: BufReader::new(stream),
        };
        let pid = held.ask("held before");
        (held, pid)
    }

    fn ask(&mut self, text: &str) -> u32 {
        self.stream
            .get_mut()
            .write_all(format!("{text}\n").as_bytes())
            .expect("write on a held connection");
        let mut line = String::new();
        self.stream
            .read_line(&mut line)
            .expect("read on a held connection");
        parse_reply(&line, text).expect("a held connection's answer")
    }
}

/// Clients in a few threads, each connecting at most every `pace`, until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    results: Arc<Mutex<Vec<Result<u32, String>>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(addr: SocketAddr, threads: usize, pace: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let results = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..threads)
            .map(|t| {
                let (stop, results) = (stop.clone(), results.clone());
                std::thread::spawn(move || {
                    let started = Instant::now();
                    // Bounded whatever happens: at most 2 minutes or 100,000 connections.
                    for i in 0..100_000u32 {
                        if stop.load(Ordering::Relaxed) || started.elapsed() > WAIT * 4 {
                            break;
                        }
                        let next = Instant::now() + pace;
                        let result = ask(addr, &format!("hello {t} {i}"));
                        results.lock().unwrap().push(result);
                        std::thread::sleep(next.saturating_duration_since(Instant::now()));
                    }
                })
            })
            .collect();
        Load {
            stop,
            results,
            threads,
        }
    }

    fn answered_by(&self, pid: u32) -> usize {
        let results = self.results.lock().unwrap();
        results.iter().filter(|r| r.as_ref() == Ok(&pid)).count()
    }

    /// Waits until `pid` has answered at least `count` clients.
    fn wait_answers(&self, pid: u32, count: usize) {
        eventually(&format!("{count} answers from {pid}"), || {
            self.answered_by(pid) >= count
        });
    }

    /// Stops the clients; every result.
    fn finish(self) -> Vec<Result<u32, String>> {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            thread.join().expect("client thread");
        }
        Arc::try_unwrap(self.results)
            .map(|m| m.into_inner().unwrap())
            .unwrap_or_default()
    }
}

/// Answers per pid; panics with the failures if any connection failed.
fn tally(results: &[Result<u32, String>]) -> BTreeMap<u32, usize> {
    let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} connections failed, first: {:?}",
        failures.len(),
        results.len(),
        &failures[..failures.len().min(5)]
    );
    let mut per_pid = BTreeMap::new();
    for pid in results.iter().flatten() {
        *per_pid.entry(*pid).or_insert(0) += 1;
    }
    per_pid
}

fn listening(lines: &Lines, from: usize) -> (usize, u32, SocketAddr) {
    let (at, (pid, addr)) = lines.wait_for(from, "listening", |line| {
        let pid = number_after(line, "pid ")?;
        let addr = line.split("listening on ").nth(1)?.parse().ok()?;
        Some((pid, addr))
    });
    (at, pid, addr)
}

/// Sends SIGHUP to `old` and waits for its report that `new` took over.
fn upgrade(lines: &Lines, from: usize, old: u32) -> (usize, u32) {
    signal(old, libc::SIGHUP);
    lines.wait_for(from, "handed over", |line| {
        number_after(line, &format!("pid {old}: handed over to "))
    })
}

// ---- The tests ----

#[test]
fn upgrade_twice_under_load_refuses_nothing() {
    if !run_in_child("upgrade_twice_under_load_refuses_nothing") {
        return;
    }
    let mut group = Group::start("upgrade", &["0", "--drain-ms", "30000"]);
    let lines = group.lines.clone();
    let (at, first, addr) = listening(&lines, 0);
    assert_eq!(first, group.first.id());
    eventually("the first process idle", || fds(first) > 0);
    let baseline = fds(first);

    // Clients that stay with the first process across the handover.
    let held: Vec<(Held, u32)> = (0..4).map(|_| Held::open(addr)).collect();
    assert!(held.iter().all(|(_, pid)| *pid == first));

    // About 300 connections a second from 3 threads, a second or more per process.
    let started = Instant::now();
    let load = Load::start(addr, 3, Duration::from_millis(10));
    load.wait_answers(first, 300);
    let (at, second) = upgrade(&lines, at, first);
    load.wait_answers(second, 300);

    // The first process still serves its held clients, then exits once they leave, with
    // nothing left open but them: its listener and the handover's pipe are closed.
    eventually(
        "the first process holds its clients and nothing else",
        || fds(first) == baseline - 1 + held.len(),
    );
    for (mut client, _) in held {
        assert_eq!(client.ask("held after"), first, "the old process answers");
    }
    let status = group.wait_first();
    assert!(status.success(), "the first process exited with {status}");

    // Again, from the successor, with clients held on it.
    let held: Vec<(Held, u32)> = (0..4).map(|_| Held::open(addr)).collect();
    let held_by_second = held.iter().filter(|(_, pid)| *pid == second).count();
    assert_eq!(held_by_second, held.len(), "only the successor accepts now");
    let (_, third) = upgrade(&lines, at, second);
    load.wait_answers(third, 300);
    // A successor started from an inherited socket is at the same baseline as the first.
    eventually(
        "the second process holds its clients and nothing else",
        || fds(second) == baseline - 1 + held.len(),
    );
    for (mut client, _) in held {
        assert_eq!(client.ask("held after"), second, "the old process answers");
    }
    eventually("the second process exits", || exited(second));

    let results = load.finish();
    let rate = results.len() as f64 / started.elapsed().as_secs_f64();
    let per_pid = tally(&results);
    println!(
        "{} connections ({rate:.0}/s), answered by {per_pid:?}; first {first}, second {second}, \
         third {third}",
        results.len()
    );
    assert!(
        rate >= 100.0,
        "the load was too light to prove anything: {rate:.0}/s"
    );
    let pids: BTreeSet<u32> = per_pid.keys().copied().collect();
    assert_eq!(pids, BTreeSet::from([first, second, third]));

    // The third process, idle now, holds what the first held when it started: the inherited
    // listener was taken once, the pipe closed, nothing left over from the load.
    eventually("the third process back to the first's baseline", || {
        fds(third) == baseline
    });
}

#[test]
fn successor_killed_before_ready_changes_nothing() {
    if !run_in_child("successor_killed_before_ready_changes_nothing") {
        return;
    }
    // Every process waits 2 s before it takes the socket: time to kill the successor.
    let group = Group::start("upgrade", &["0", "--ready-delay-ms", "2000"]);
    let lines = group.lines.clone();
    let (at, first, addr) = listening(&lines, 0);
    eventually("the first process idle", || fds(first) > 0);
    let baseline = fds(first);

    let load = Load::start(addr, 3, Duration::from_millis(10));
    load.wait_answers(first, 50);
    signal(first, libc::SIGHUP);
    let (at, doomed) = lines.wait_for(at, "successor started", |line| {
        number_after(line, &format!("pid {first}: started successor "))
    });
    signal(doomed, libc::SIGKILL);
    let (at, why) = lines.wait_for(at, "upgrade failed", |line| {
        line.strip_prefix(&format!("pid {first}: upgrade failed: "))
            .map(str::to_owned)
    });
    assert!(
        why.contains(&format!("successor {doomed} exited")) && why.contains("still serving"),
        "{why}"
    );
    let before = load.answered_by(first);
    load.wait_answers(first, before + 50);
    let results = load.finish();
    let per_pid = tally(&results);
    assert_eq!(per_pid.keys().copied().collect::<Vec<_>>(), vec![first]);
    // The failed handover left nothing open: no pipe, no duplicate of the listener.
    eventually("the first process back to its baseline", || {
        fds(first) == baseline
    });
    assert!(exited(doomed));

    // The next handover succeeds.
    let load = Load::start(addr, 3, Duration::from_millis(10));
    let (_, second) = upgrade(&lines, at, first);
    assert_ne!(second, doomed);
    load.wait_answers(second, 100);
    let results = load.finish();
    let per_pid = tally(&results);
    assert!(per_pid.contains_key(&second), "{per_pid:?}");
    assert!(!per_pid.contains_key(&doomed), "{per_pid:?}");
    println!("{} connections, answered by {per_pid:?}", results.len());
    drop(group);
}

#[test]
fn successor_missing_its_deadline_is_killed() {
    if !run_in_child("successor_missing_its_deadline_is_killed") {
        return;
    }
    let group = Group::start(
        "upgrade",
        &["0", "--ready-delay-ms", "3000", "--ready-timeout-ms", "500"],
    );
    let lines = group.lines.clone();
    let (at, first, addr) = listening(&lines, 0);
    signal(first, libc::SIGHUP);
    let (at, late) = lines.wait_for(at, "successor started", |line| {
        number_after(line, &format!("pid {first}: started successor "))
    });
    let (_, why) = lines.wait_for(at, "upgrade failed", |line| {
        line.strip_prefix(&format!("pid {first}: upgrade failed: "))
            .map(str::to_owned)
    });
    assert!(why.contains("not ready within 500ms"), "{why}");
    assert!(exited(late), "the late successor was killed");
    assert_eq!(ask(addr, "still there"), Ok(first));
}

#[test]
fn prefork_workers_share_one_queue_and_cover_for_a_dead_one() {
    if !run_in_child("prefork_workers_share_one_queue_and_cover_for_a_dead_one") {
        return;
    }
    const WORKERS: usize = 3;
    let mut group = Group::start("prefork", &["0", "--workers", &WORKERS.to_string()]);
    let lines = group.lines.clone();
    let (at, addr) = lines.wait_for(0, "master listening", |line| {
        line.strip_prefix("master ")?
            .split("listening on ")
            .nth(1)?
            .split_whitespace()
            .next()?
            .parse::<SocketAddr>()
            .ok()
    });
    let mut workers = BTreeSet::new();
    let mut from = at;
    while workers.len() < WORKERS {
        let (i, pid) = lines.wait_for(from, "worker ready", |line| {
            number_after(line, "master: worker ").filter(|_| line.ends_with(" ready"))
        });
        workers.insert(pid);
        from = i + 1;
    }

    // The load spreads over every worker.
    let load = Load::start(addr, 4, Duration::from_millis(5));
    for pid in &workers {
        load.wait_answers(*pid, 20);
    }
    let per_pid = tally(&load.finish());
    println!("shared: {per_pid:?}");
    assert_eq!(per_pid.keys().copied().collect::<BTreeSet<_>>(), workers);

    // A worker dies: the others take its share at once, with nothing refused.
    let dead = *workers.iter().next().unwrap();
    signal(dead, libc::SIGKILL);
    lines.wait_for(from, "worker exited", |line| {
        line.starts_with(&format!("master: worker {dead} exited"))
            .then_some(())
    });
    let load = Load::start(addr, 4, Duration::from_millis(5));
    let survivors: Vec<u32> = workers.iter().copied().filter(|p| *p != dead).collect();
    for pid in &survivors {
        load.wait_answers(*pid, 50);
    }
    let per_pid = tally(&load.finish());
    println!("after {dead} died: {per_pid:?}");
    assert!(!per_pid.contains_key(&dead), "a dead worker answered");

    // The master stops its workers and itself.
    signal(group.first.id(), libc::SIGTERM);
    let status = group.wait_first();
    assert!(status.success(), "master exited with {status}");
    for pid in survivors {
        eventually(&format!("worker {pid} exits"), || exited(pid));
    }
}

// ---- The API, without the examples ----

#[actix::test]
async fn relinquished_unix_listener_keeps_its_file_for_the_successor() {
    use actix_socket_factory::testing::Events;
    use actix_socket_factory::{Relinquish, ShareListener};
    let (_dir, path) = util::temp_socket_path("handed.sock");
    let mut old = Events::start();
    let factory = old.builder().bind_address(path.as_path()).start();
    let shared = factory
        .send(ShareListener::default())
        .await
        .expect("answer")
        .expect("a listener to share");
    assert_eq!(shared.name(), format!("unix:{}", path.display()));

    // The successor (here, another factory adopting the duplicate) serves the same socket.
    let mut new = Events::start();
    let successor = new.builder().adopt(shared.into_socket()).start();
    factory.send(Relinquish).await.expect("relinquished");
    assert!(util::wait_until(util::LIMIT, || !factory.connected()).await);
    assert!(path.exists(), "the socket file stays for the successor");
    for _ in 0..3 {
        let _client = std::os::unix::net::UnixStream::connect(&path).expect("connect");
        new.next_created(util::LIMIT)
            .await
            .expect("the successor accepts");
    }
    old.expect_no_created(Duration::from_millis(200))
        .await
        .expect("the old factory takes no client after relinquishing");
    assert!(old.try_failed().is_none(), "relinquishing is no failure");
    drop(successor);
}

#[actix::test]
async fn share_fails_clearly_on_a_factory_that_does_not_listen() {
    use actix_socket_factory::testing::Events;
    use actix_socket_factory::ShareListener;
    let mut events = Events::start();
    let udp = events
        .builder()
        .bind_address("127.0.0.1")
        .socket_type(actix_socket_factory::SocketType::Datagram)
        .start();
    events.next_created(util::LIMIT).await.expect("delivered");
    let answer = udp.send(ShareListener::default()).await;
    // A one-shot factory stops after delivering: no answer, or NotConnected.
    if let Ok(shared) = answer {
        let error = shared.expect_err("nothing to share");
        assert_eq!(error.kind(), std::io::ErrorKind::NotConnected);
    }
}

/// The successor of `successor_takes_its_sockets_by_name_and_reports_the_rest`.
const SUCCESSOR_CHILD: &str = "handover_successor_child";

#[actix::test]
async fn successor_takes_its_sockets_by_name_and_reports_the_rest() {
    use actix_socket_factory::handover::{SharedSocket, Successor};
    let known = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = known.local_addr().unwrap();
    let unknown = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let known = SharedSocket::by_address(known).expect("named by its address");
    assert_eq!(known.name(), format!("tcp://{addr}"));
    let unknown = SharedSocket::new("old:feature", unknown).expect("a name");
    // A datagram socket and a UNIX stream listener travel the same way.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let udp_addr = udp.local_addr().unwrap();
    let udp = SharedSocket::new("udp:metrics", udp).expect("a name");
    let (_dir, path) = util::temp_socket_path("handed.sock");
    let unix = std::os::unix::net::UnixListener::bind(&path).expect("bind");
    let unix = SharedSocket::by_address(std::os::fd::OwnedFd::from(unix)).expect("named");
    assert_eq!(unix.name(), format!("unix:{}", path.display()));

    let exe = std::env::current_exe().expect("test binary");
    let mut command = Command::new(exe);
    command
        .args([SUCCESSOR_CHILD, "--exact", "--ignored", "--nocapture"])
        .env(util::child::CHILD_VAR, SUCCESSOR_CHILD)
        .env("HANDOVER_TEST_NAME", known.name())
        .env("HANDOVER_TEST_UDP", udp_addr.to_string())
        .env("HANDOVER_TEST_UNIX", unix.name())
        // Planted by an earlier activation: the handover must override or remove them.
        .env("LISTEN_PID", "1")
        .env("LISTEN_FDS", "7")
        .stdout(Stdio::piped());
    let spawned = Successor::new(command)
        .sockets([known, unknown, udp, unix])
        .ready_timeout(Duration::from_secs(20))
        .spawn()
        .expect("spawn");
    let pid = spawned.id();
    let child = spawned.ready().await.expect("the successor reports ready");
    assert_eq!(child.id(), pid);
    // The successor took the known socket: a client gets an answer from it.
    let mut client = TcpStream::connect(addr).expect("connect");
    client
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut answer = String::new();
    client.read_to_string(&mut answer).expect("read");
    let output = child.wait_with_output().expect("the successor exits");
    assert!(path.exists(), "nobody removed the UNIX socket file");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert_eq!(answer, format!("served by {pid}\n"), "{stdout}");
    assert!(stdout.contains("1 passed"), "{stdout}");
}

#[test]
#[ignore = "runs as the successor of successor_takes_its_sockets_by_name_and_reports_the_rest"]
fn handover_successor_child() {
    use actix::prelude::*;
    use actix_socket_factory::handover;
    use actix_socket_factory::testing::Events;
    if !util::in_child(SUCCESSOR_CHILD) {
        return;
    }
    assert!(handover::is_successor());
    // A process the successor starts inherits the variables, but they are not its own.
    let grandchild = Command::new(std::env::current_exe().expect("test binary"))
        .args([GRANDCHILD, "--exact", "--ignored", "--nocapture"])
        .env(util::child::CHILD_VAR, GRANDCHILD)
        .output()
        .expect("run the grandchild");
    let out = String::from_utf8_lossy(&grandchild.stdout);
    assert!(
        grandchild.status.success() && out.contains("1 passed"),
        "grandchild: {out}\n{}",
        String::from_utf8_lossy(&grandchild.stderr)
    );
    let name = std::env::var("HANDOVER_TEST_NAME").expect("the name to take");
    let unix_name = std::env::var("HANDOVER_TEST_UNIX").expect("the UNIX name");
    let udp_addr = std::env::var("HANDOVER_TEST_UDP").expect("the UDP address");
    assert_eq!(
        handover::inherited_names(),
        vec![
            name.clone(),
            "old:feature".into(),
            "udp:metrics".into(),
            unix_name.clone()
        ]
    );
    assert!(handover::is_inherited(&name));
    let system = System::new();
    system.block_on(async {
        let mut events = Events::start();
        let server = events.builder().systemd(Some(&name)).start();
        let local = server
            .send(actix_socket_factory::GetSockName)
            .await
            .expect("answer")
            .expect("the inherited listener");
        assert_eq!(format!("tcp://{local}"), name);
        assert!(!handover::is_inherited(&name), "taken");
        // The datagram socket is delivered at once, as any adopted one.
        let mut datagrams = Events::start();
        let _udp = datagrams.builder().systemd(Some("udp:metrics")).start();
        let udp = datagrams
            .next_created(util::LIMIT)
            .await
            .expect("the UDP socket");
        assert_eq!(udp.socket_type, actix_socket_factory::SocketType::Datagram);
        let udp_local = udp.socket.local_addr().unwrap().as_socket().unwrap();
        assert_eq!(udp_local.to_string(), udp_addr);
        // The UNIX listener serves the same path.
        let unix_events = Events::start();
        let unix = unix_events.builder().systemd(Some(&unix_name)).start();
        let unix_local = unix
            .send(actix_socket_factory::GetSockName)
            .await
            .expect("answer")
            .expect("the inherited UNIX listener");
        assert_eq!(
            format!("unix:{}", unix_local.as_path().unwrap().display()),
            unix_name
        );
        assert_eq!(handover::unclaimed(), vec!["old:feature".to_owned()]);
        assert_eq!(handover::close_unclaimed(), vec!["old:feature".to_owned()]);
        assert!(handover::unclaimed().is_empty());
        assert!(handover::ready().expect("told"));
        assert!(!handover::ready().expect("once only"), "told once");
        let created = events.next_created(util::LIMIT).await.expect("a client");
        let mut stream = created.into_std_tcp_stream().expect("tcp");
        stream.set_nonblocking(false).unwrap();
        writeln!(stream, "served by {}", std::process::id()).expect("answer");
    });
}

#[test]
fn failed_successors_are_reaped_and_leak_nothing() {
    use actix_socket_factory::handover::{HandoverError, SharedSocket, Successor};
    if !run_in_child("failed_successors_are_reaped_and_leak_nothing") {
        return;
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap();
    let shared = SharedSocket::by_address(listener).expect("named");
    let system = actix::System::new();
    system.block_on(async move {
        let successor = |program: &str, args: &[&str]| {
            let mut command = Command::new(program);
            command.args(args);
            Successor::new(command)
                .socket(shared.try_clone().expect("dup"))
                .ready_timeout(Duration::from_millis(300))
        };
        // Warm up whatever the runtime opens lazily (timers, the pipe's registration).
        let _ = successor("true", &[]).spawn().expect("spawn").ready().await;
        let baseline = util::open_fds();

        // A missing program: an error at once, or (should the child's exec report have been
        // placed over by an inherited descriptor) an exit before ready.
        if let Ok(missing) = successor("/nonexistent/successor", &[]).spawn() {
            assert!(missing.ready().await.is_err());
        }

        let quitter = successor("true", &[]).spawn().expect("spawn");
        let pid = quitter.id();
        match quitter.ready().await {
            Err(HandoverError::Exited { pid: p, status }) => {
                assert_eq!(p, pid);
                assert!(status.success());
            }
            other => panic!("expected an exit, got {other:?}"),
        }
        assert!(exited(pid));

        let sleeper = successor("sleep", &["30"]).spawn().expect("spawn");
        let pid = sleeper.id();
        let error = sleeper.ready().await.expect_err("never ready");
        assert!(matches!(error, HandoverError::TimedOut { .. }), "{error}");
        assert_eq!(error.pid(), pid);
        assert!(exited(pid), "killed at the deadline");

        // A wait given up (its future dropped) kills the successor too.
        let abandoned = successor("sleep", &["30"]).spawn().expect("spawn");
        let pid = abandoned.id();
        let _ = tokio::time::timeout(Duration::from_millis(50), abandoned.ready()).await;
        assert!(exited(pid), "killed when the wait was dropped");

        // A successor that inherited the socket and died leaves it working here.
        let client = TcpStream::connect(addr).expect("the listener still listens");
        drop(client);
        eventually("descriptors back to baseline", || {
            util::open_fds() == baseline
        });
    });
}

#[actix::test]
async fn a_group_shares_one_socket_per_member_under_one_name() {
    use actix::prelude::*;
    use actix_socket_factory::testing::Events;
    use actix_socket_factory::FactoryGroup;
    let events = Events::start();
    let arbiters = [Arbiter::new(), Arbiter::new()];
    let handles: Vec<_> = arbiters.iter().map(|a| a.handle()).collect();
    let group = FactoryGroup::start(events.builder().bind_address("127.0.0.1"), &handles)
        .await
        .expect("group");
    let local = group.local_addr().as_inet().expect("inet");
    let named = group.share(Some("web")).await.expect("shared");
    assert_eq!(named.len(), 2);
    assert!(named.iter().all(|s| s.name() == "web"));
    let by_address = group.share(None).await.expect("shared");
    assert!(by_address
        .iter()
        .all(|s| s.name() == format!("tcp://{local}")));
    // One socket per member (each its own queue), all on the group's address.
    let inodes: BTreeSet<u64> = named
        .iter()
        .map(|s| {
            use std::os::fd::AsRawFd;
            std::fs::metadata(format!("/proc/self/fd/{}", s.socket().as_raw_fd()))
                .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
                .expect("fd")
        })
        .collect();
    assert_eq!(inodes.len(), 2);
    group.relinquish().await;
    for member in group.members() {
        assert!(util::wait_until(util::LIMIT, || !member.connected()).await);
    }
    // The duplicates still listen: a successor would take over the queues.
    for shared in &named {
        assert!(util::is_listener(shared.socket()));
    }
}

/// Started by the successor in `successor_takes_its_sockets_by_name_and_reports_the_rest`.
const GRANDCHILD: &str = "handover_grandchild";

#[test]
#[ignore = "runs as a process started by the successor in handover_successor_child"]
fn handover_grandchild() {
    use actix::prelude::*;
    use actix_socket_factory::handover;
    use actix_socket_factory::testing::Events;
    if !util::in_child(GRANDCHILD) {
        return;
    }
    assert!(std::env::var(handover::HANDOVER_VAR).is_ok(), "inherited");
    assert!(!handover::is_successor(), "but not meant for this process");
    assert!(handover::inherited_names().is_empty());
    assert!(!handover::ready().expect("nothing to tell"));
    let system = System::new();
    system.block_on(async {
        let mut events = Events::start();
        let _factory = events.builder().systemd(None).start();
        let failed = events.next_failed(util::LIMIT).await.expect("a failure");
        assert_eq!(failed.operation, actix_socket_factory::Operation::Socket);
    });
}
