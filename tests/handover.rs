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
        Group::start_with(name, args, &[])
    }

    /// [`Group::start`] with variables added to the environment.
    fn start_with(name: &str, args: &[&str], vars: &[(&str, &str)]) -> Group {
        let mut command = Command::new(example(name));
        command.args(args).envs(vars.iter().copied());
        Group::spawn(command)
    }

    /// Starts `command` in a process group of its own, its output collected.
    fn spawn(mut command: Command) -> Group {
        let mut first = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .expect("start the process");
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
    latencies: Arc<Mutex<Vec<Duration>>>,
    started: Instant,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(addr: SocketAddr, threads: usize, pace: Duration) -> Load {
        Load::start_with(threads, pace, move |t, i| {
            ask(addr, &format!("hello {t} {i}"))
        })
    }

    /// Clients in `threads` threads, each calling `ask(thread, i)` at most every `pace`.
    fn start_with(
        threads: usize,
        pace: Duration,
        ask: impl Fn(usize, u32) -> Result<u32, String> + Send + Sync + 'static,
    ) -> Load {
        let ask = Arc::new(ask);
        let stop = Arc::new(AtomicBool::new(false));
        let results = Arc::new(Mutex::new(Vec::new()));
        let latencies = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..threads)
            .map(|t| {
                let (stop, results) = (stop.clone(), results.clone());
                let latencies = latencies.clone();
                let ask = ask.clone();
                std::thread::spawn(move || {
                    let started = Instant::now();
                    // Bounded whatever happens: at most 2 minutes or 100,000 connections.
                    for i in 0..100_000u32 {
                        if stop.load(Ordering::Relaxed) || started.elapsed() > WAIT * 4 {
                            break;
                        }
                        let asked = Instant::now();
                        let next = asked + pace;
                        let result = ask(t, i);
                        latencies.lock().unwrap().push(asked.elapsed());
                        results.lock().unwrap().push(result);
                        std::thread::sleep(next.saturating_duration_since(Instant::now()));
                    }
                })
            })
            .collect();
        Load {
            stop,
            results,
            latencies,
            started: Instant::now(),
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

    /// Stops the clients; the figures, printed under `label`.
    fn figures(self, label: &str) -> Figures {
        let elapsed = self.started.elapsed();
        let mut latencies = self.latencies.lock().unwrap().clone();
        let results = self.finish();
        latencies.sort();
        let p99 = latencies
            .get((latencies.len() * 99 / 100).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default();
        let mut figures = Figures {
            connections: results.len(),
            rate: results.len() as f64 / elapsed.as_secs_f64(),
            p99,
            ..Figures::default()
        };
        for result in &results {
            match result {
                Ok(pid) => *figures.per_pid.entry(*pid).or_insert(0) += 1,
                Err(why) if why.starts_with("connect:") && why.contains("refused") => {
                    figures.refused += 1
                }
                Err(why) if why.contains("reset") => figures.reset += 1,
                Err(why) => {
                    figures.wrong += 1;
                    figures.first_wrong.get_or_insert_with(|| why.clone());
                }
            }
        }
        println!("FIGURES {label}: {figures}");
        figures
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

/// What a load saw: connections, how they failed, the 99th percentile of a connection's time.
#[derive(Default, Debug)]
struct Figures {
    connections: usize,
    rate: f64,
    refused: usize,
    reset: usize,
    /// No reply, a partial or a wrong one (a connection accepted by a process then killed).
    wrong: usize,
    first_wrong: Option<String>,
    p99: Duration,
    per_pid: BTreeMap<u32, usize>,
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} connections ({:.0}/s), {} refused, {} reset, {} wrong, p99 {:?}, answered by {:?}",
            self.connections,
            self.rate,
            self.refused,
            self.reset,
            self.wrong,
            self.p99,
            self.per_pid
        )?;
        if let Some(why) = &self.first_wrong {
            write!(f, " (first wrong: {why})")?;
        }
        Ok(())
    }
}

impl Figures {
    /// Nothing refused, reset or wrong.
    fn assert_clean(&self) {
        assert_eq!(
            (self.refused, self.reset, self.wrong),
            (0, 0, 0),
            "refused, reset, wrong: {self}"
        );
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

/// Waits for a successor's first line (after `from`), which is not `old`'s: its pid.
fn successor_started(lines: &Lines, from: usize, old: u32) -> (usize, u32) {
    lines.wait_for(from, "successor started", |line| {
        line.strip_suffix(": successor starting")
            .and_then(|rest| number_after(rest, "pid "))
            .filter(|pid| *pid != old)
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
    let (at, doomed) = successor_started(&lines, at, first);
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
    let (at, late) = successor_started(&lines, at, first);
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
async fn a_shareable_datagram_factory_shares_its_socket_until_relinquished() {
    use actix_socket_factory::testing::Events;
    use actix_socket_factory::{Relinquish, ShareListener, SocketType, StopFactory};
    let mut events = Events::start();
    let factory = events
        .builder()
        .bind_address("127.0.0.1")
        .socket_type(SocketType::Datagram)
        .shareable(true)
        .start();
    // Asked right after `start()`, before the socket is delivered: the socket it holds.
    let early = factory
        .send(ShareListener::named("early"))
        .await
        .expect("answer")
        .expect("the held socket to share");
    let created = events.next_created(util::LIMIT).await.expect("delivered");
    let local = created.socket.local_addr().unwrap().as_socket().unwrap();
    assert_eq!(early.name(), "early");
    assert_eq!(
        early.socket().local_addr().unwrap().as_socket(),
        Some(local)
    );
    drop(early);
    let shared = factory
        .send(ShareListener::default())
        .await
        .expect("the factory lives on after delivery")
        .expect("a datagram socket to share");
    assert_eq!(shared.name(), format!("udp://{local}"));
    let duplicate = shared.into_socket();
    assert_eq!(duplicate.local_addr().unwrap().as_socket(), Some(local));

    // One socket: a datagram sent before the delivered copy is closed is read from the duplicate
    // after it, as a successor reads what its predecessor left in the queue.
    let client = std::net::UdpSocket::bind("127.0.0.1:0").expect("client");
    client.send_to(b"queued", local).expect("send");
    drop(created);
    let duplicate: std::net::UdpSocket = duplicate.into();
    duplicate.set_nonblocking(false).unwrap();
    duplicate.set_read_timeout(Some(util::LIMIT)).unwrap();
    let mut buf = [0u8; 16];
    let (n, _) = duplicate.recv_from(&mut buf).expect("the queued datagram");
    assert_eq!(&buf[..n], b"queued");

    // Relinquished: the factory closes its own duplicate and stops; once the shared one is
    // closed too, nothing holds the port.
    factory.send(Relinquish).await.expect("relinquished");
    assert!(util::wait_until(util::LIMIT, || !factory.connected()).await);
    drop(duplicate);
    std::net::UdpSocket::bind(local).expect("the port is free: no duplicate left open");
    assert!(events.try_failed().is_none(), "relinquishing is no failure");

    // A UNIX datagram socket: relinquishing leaves its file to the successor; a stop removes it.
    let (_dir, path) = util::temp_socket_path("dgram.sock");
    for relinquish in [true, false] {
        let factory = events
            .builder()
            .bind_address(path.as_path())
            .socket_type(SocketType::Datagram)
            .shareable(true)
            .start();
        let created = events.next_created(util::LIMIT).await.expect("delivered");
        let shared = factory
            .send(ShareListener::default())
            .await
            .expect("answer")
            .expect("a datagram socket to share");
        assert_eq!(shared.name(), format!("unix-dgram:{}", path.display()));
        drop(created);
        if relinquish {
            factory.send(Relinquish).await.expect("relinquished");
        } else {
            factory.send(StopFactory).await.expect("stopped");
        }
        assert!(util::wait_until(util::LIMIT, || !factory.connected()).await);
        assert_eq!(path.exists(), relinquish, "relinquish {relinquish}");
        // The successor's copy still works while the file stays.
        if relinquish {
            let successor: std::os::unix::net::UnixDatagram = shared.into_socket().into();
            let client = std::os::unix::net::UnixDatagram::unbound().unwrap();
            client
                .send_to(b"still here", &path)
                .expect("sent to the file");
            successor.set_nonblocking(false).unwrap();
            successor.set_read_timeout(Some(util::LIMIT)).unwrap();
            let n = successor.recv(&mut buf).expect("received by the successor");
            assert_eq!(&buf[..n], b"still here");
            drop(successor);
            std::fs::remove_file(&path).expect("the test removes the file");
        }
    }
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
        .state(b"counters: 42".to_vec())
        .ready_timeout(Duration::from_secs(20))
        .spawn()
        .expect("spawn");
    let pid = spawned.id();
    let child = spawned
        .ready()
        .await
        .expect("the successor reports ready")
        .into_child();
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
    // The application state, once.
    assert_eq!(
        handover::state().expect("the state"),
        Some(b"counters: 42".to_vec())
    );
    assert_eq!(handover::state().expect("read once"), None);
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
    assert_eq!(handover::state().expect("no state"), None);
    let system = System::new();
    system.block_on(async {
        let mut events = Events::start();
        let _factory = events.builder().systemd(None).start();
        let failed = events.next_failed(util::LIMIT).await.expect("a failure");
        assert_eq!(failed.operation, actix_socket_factory::Operation::Socket);
    });
}

// ---- Planted variables: never a descriptor closed or written that is not proven inherited ----

/// The successor of the planted-variable tests: what it changes before the crate reads anything
/// comes from `HANDOVER_PLANT`; it writes `ok` to `HANDOVER_PLANT_DONE` when every check held
/// (so a test name that matched nothing cannot pass).
const PLANT_CHILD: &str = "handover_plant_child";

/// Starts this test binary as a successor with one TCP listener (descriptor 3; the readiness
/// pipe is 4), planting `plant`; returns whether the child's checks all held, and its error.
fn run_planted(plant: &str) {
    use actix_socket_factory::handover::{SharedSocket, Successor};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dir = tempfile::tempdir().expect("temp dir");
    let done = dir.path().join("done");
    let mut command = Command::new(std::env::current_exe().expect("test binary"));
    command
        .args([PLANT_CHILD, "--exact", "--ignored", "--nocapture"])
        .env(util::child::CHILD_VAR, PLANT_CHILD)
        .env("HANDOVER_PLANT", plant)
        .env("HANDOVER_PLANT_DONE", &done);
    let system = actix::System::new();
    let outcome = system.block_on(async move {
        Successor::new(command)
            .socket(SharedSocket::new("known", listener).expect("named"))
            .ready_timeout(Duration::from_secs(30))
            .spawn()
            .expect("spawn")
            .ready()
            .await
    });
    // The planted successor never reports ready: its pipe was refused or replaced.
    let error = outcome.expect_err("no readiness through a refused or replaced pipe");
    println!("predecessor: {error}");
    let done = std::fs::read_to_string(&done).unwrap_or_default();
    assert_eq!(
        done, "ok",
        "the planted successor's checks failed (see its output)"
    );
}

#[test]
fn listen_fds_beyond_the_handed_sockets_is_refused_and_closes_nothing() {
    if !run_in_child("listen_fds_beyond_the_handed_sockets_is_refused_and_closes_nothing") {
        return;
    }
    run_planted("fds");
}

#[test]
fn names_that_do_not_match_the_count_are_refused() {
    if !run_in_child("names_that_do_not_match_the_count_are_refused") {
        return;
    }
    run_planted("names");
}

#[test]
fn systemd_names_that_do_not_match_the_count_are_refused() {
    if !run_in_child("systemd_names_that_do_not_match_the_count_are_refused") {
        return;
    }
    run_planted("systemd-names");
}

#[test]
fn a_replaced_readiness_descriptor_is_neither_written_nor_closed() {
    if !run_in_child("a_replaced_readiness_descriptor_is_neither_written_nor_closed") {
        return;
    }
    run_planted("pipe");
}

#[test]
#[ignore = "runs as the successor of the planted-variable tests"]
fn handover_plant_child() {
    use actix::prelude::*;
    use actix_socket_factory::handover;
    use actix_socket_factory::testing::Events;
    use std::os::fd::AsRawFd;
    if !util::in_child(PLANT_CHILD) {
        return;
    }
    let plant = std::env::var("HANDOVER_PLANT").expect("what to plant");
    let done = std::env::var("HANDOVER_PLANT_DONE").expect("where to report");
    let open = |fd: i32| std::fs::symlink_metadata(format!("/proc/self/fd/{fd}")).is_ok();
    assert!(open(3) && open(4), "the socket and the pipe were inherited");
    match plant.as_str() {
        "fds" | "names" => {
            // The program's own listener and a second one (another factory's), on the numbers
            // just after the inherited ones, which a larger LISTEN_FDS would claim.
            let own = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let other = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let highest = own.as_raw_fd().max(other.as_raw_fd());
            if plant == "fds" {
                std::env::set_var("LISTEN_FDS", (highest - 2).to_string());
                std::env::set_var("LISTEN_FDNAMES", vec!["x"; highest as usize - 2].join(":"));
            } else {
                std::env::set_var("LISTEN_FDNAMES", "known:extra");
            }
            let why = handover::verify().expect_err("a mismatch is refused");
            println!("refused: {why}");
            assert!(why.to_string().contains("refused"), "{why}");
            assert!(!handover::is_successor());
            assert!(handover::inherited_names().is_empty());
            assert!(handover::close_unclaimed().is_empty(), "nothing closed");
            assert!(!handover::ready().expect("nobody to tell"));
            for fd in 3..=highest {
                assert!(open(fd), "descriptor {fd} is still open");
            }
            // Both listeners still serve.
            for listener in [&own, &other] {
                let _client = TcpStream::connect(listener.local_addr().unwrap()).expect("connect");
                listener.accept().expect("still listening");
            }
            // A factory asking for the socket gets the reason, not a socket.
            let system = System::new();
            system.block_on(async {
                let mut events = Events::start();
                let _factory = events.builder().systemd(Some("known")).start();
                let failed = events.next_failed(util::LIMIT).await.expect("a failure");
                assert!(failed.to_string().contains("refused"), "{failed}");
            });
            assert!(open(3), "the refused socket is left alone");
        }
        "systemd-names" => {
            // systemd's own variables for this very process, with one name too many.
            std::env::remove_var(handover::HANDOVER_VAR);
            std::env::set_var("LISTEN_PID", std::process::id().to_string());
            std::env::set_var("LISTEN_FDS", "1");
            std::env::set_var("LISTEN_FDNAMES", "known:extra");
            assert!(handover::close_unclaimed().is_empty(), "nothing closed");
            assert!(open(3), "the socket is left alone");
            let system = System::new();
            system.block_on(async {
                let mut events = Events::start();
                let _factory = events.builder().systemd(Some("known")).start();
                let failed = events.next_failed(util::LIMIT).await.expect("a failure");
                assert!(failed.to_string().contains("LISTEN_FDNAMES"), "{failed}");
            });
            assert!(open(3), "the socket is left alone");
        }
        "pipe" => {
            assert!(handover::verify().expect("proven"));
            assert_eq!(handover::inherited_names(), vec!["known".to_owned()]);
            // The pipe is closed (by a careless program), and the program's own pipe takes its
            // number.
            drop(unsafe_close(4));
            let (mut reader, mut writer) = std::io::pipe().expect("pipe");
            assert_eq!(reader.as_raw_fd(), 4, "the program's pipe took the number");
            let error = handover::ready().expect_err("not the predecessor's pipe");
            println!("refused: {error}");
            assert!(
                error.to_string().contains("not the readiness pipe"),
                "{error}"
            );
            // Untouched: still open, and nothing was written to it.
            writer.write_all(b"mine").expect("write");
            drop(writer);
            let mut read = String::new();
            reader.read_to_string(&mut read).expect("read");
            assert_eq!(read, "mine");
            // The proven socket is still the successor's to take.
            assert!(handover::is_inherited("known"));
        }
        other => panic!("unknown plant {other}"),
    }
    std::fs::write(done, "ok").expect("report");
}

/// Closes descriptor `fd` as a careless program would: takes it as an `OwnedFd` and drops it.
fn unsafe_close(fd: i32) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: the planted-pipe test closes the inherited readiness pipe on purpose, to prove the
    // crate then leaves the descriptor number alone; nothing else in that process uses it.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
}

#[test]
fn an_endless_ready_timeout_saturates() {
    use actix_socket_factory::handover::{HandoverError, Successor};
    if !run_in_child("an_endless_ready_timeout_saturates") {
        return;
    }
    let system = actix::System::new();
    system.block_on(async {
        let outcome = Successor::new(Command::new("true"))
            .ready_timeout(Duration::MAX)
            .spawn()
            .expect("spawn")
            .ready()
            .await;
        assert!(
            matches!(outcome, Err(HandoverError::Exited { .. })),
            "{outcome:?}"
        );
    });
}

// ---- Deploys that go wrong, under load: every fault, figures for each ----

/// Client threads of the fault tests, each doing one connection at a time (so at most this many
/// connections are in flight in a process at the instant it is killed), one every millisecond
/// at most: thousands of connections a second.
const LOADERS: usize = 4;
const PACE: Duration = Duration::from_millis(1);

/// Waits for `pid`'s report that it took over from its predecessor.
fn took_over(lines: &Lines, from: usize, pid: u32) -> usize {
    lines
        .wait_for(from, "took over", |line| {
            line.starts_with(&format!("pid {pid}: took over "))
                .then_some(())
        })
        .0
}

/// Waits for `old`'s report that an upgrade failed; the reason.
fn upgrade_failed(lines: &Lines, from: usize, old: u32) -> (usize, String) {
    lines.wait_for(from, "upgrade failed", |line| {
        line.strip_prefix(&format!("pid {old}: upgrade failed: "))
            .map(str::to_owned)
    })
}

#[test]
fn old_process_killed_right_after_starting_its_successor_refuses_nothing() {
    if !run_in_child("old_process_killed_right_after_starting_its_successor_refuses_nothing") {
        return;
    }
    // The successor takes 300 ms to start: the old process dies well before it is ready.
    let group = Group::start("upgrade", &["0", "--ready-delay-ms", "300"]);
    let lines = group.lines.clone();
    let (at, first, addr) = listening(&lines, 0);
    let load = Load::start(addr, LOADERS, PACE);
    load.wait_answers(first, 500);
    signal(first, libc::SIGHUP);
    let (at, second) = successor_started(&lines, at, first);
    let killed = Instant::now();
    signal(first, libc::SIGKILL);
    // An orphan, it serves the sockets it inherited all the same (its parent is gone).
    let (_, why) = lines.wait_for(at, "the orphan serves", |line| {
        line.strip_prefix(&format!("pid {second}: serving "))
            .map(str::to_owned)
    });
    assert!(why.contains("could not tell the old process"), "{why}");
    let serving = killed.elapsed();
    load.wait_answers(second, 1000);
    let figures = load.figures(&format!(
        "old killed right after starting its successor (serving again {serving:?} after the kill)"
    ));
    assert_eq!(figures.refused, 0, "{figures}");
    // Only a connection the killed process had accepted and not yet answered can be lost: at
    // most one per client thread.
    assert!(figures.reset + figures.wrong <= LOADERS, "{figures}");
}

#[test]
fn old_process_killed_right_after_ready_refuses_nothing() {
    if !run_in_child("old_process_killed_right_after_ready_refuses_nothing") {
        return;
    }
    let group = Group::start("upgrade", &["0", "--grace-ms", "5000"]);
    let lines = group.lines.clone();
    let (at, first, addr) = listening(&lines, 0);
    let load = Load::start(addr, LOADERS, PACE);
    load.wait_answers(first, 500);
    let asked = Instant::now();
    signal(first, libc::SIGHUP);
    let (at, second) = successor_started(&lines, at, first);
    took_over(&lines, at, second);
    let ready = asked.elapsed();
    signal(first, libc::SIGKILL);
    load.wait_answers(second, 1000);
    let figures = load.figures(&format!(
        "old killed right after ready (ready {ready:?} after the request)"
    ));
    assert_eq!(figures.refused, 0, "{figures}");
    assert!(figures.reset + figures.wrong <= LOADERS, "{figures}");
}

#[test]
fn successor_killed_after_ready_within_the_grace_period_rolls_back() {
    if !run_in_child("successor_killed_after_ready_within_the_grace_period_rolls_back") {
        return;
    }
    let group = Group::start("upgrade", &["0", "--grace-ms", "3000"]);
    let lines = group.lines.clone();
    let (mut at, first, addr) = listening(&lines, 0);
    let load = Load::start(addr, LOADERS, PACE);
    load.wait_answers(first, 500);
    let mut rollbacks = Vec::new();
    // Killed right after ready, then once it served a while within the window.
    for served in [0, 100] {
        signal(first, libc::SIGHUP);
        let (i, doomed) = successor_started(&lines, at, first);
        at = took_over(&lines, i, doomed);
        load.wait_answers(doomed, served);
        let killed = Instant::now();
        signal(doomed, libc::SIGKILL);
        let (i, why) = upgrade_failed(&lines, at, first);
        rollbacks.push(killed.elapsed());
        at = i;
        assert!(why.contains("within the rollback window"), "{why}");
        let before = load.answered_by(first);
        load.wait_answers(first, before + 300);
    }
    // And the next upgrade goes through.
    let (_, last) = upgrade(&lines, at, first);
    load.wait_answers(last, 300);
    let figures = load.figures(&format!(
        "successor killed right after ready and within the grace period (rolled back in \
         {rollbacks:?})"
    ));
    assert_eq!(figures.refused, 0, "{figures}");
    // Lost: only what a killed successor had accepted and not yet answered.
    assert!(figures.reset + figures.wrong <= 2 * LOADERS, "{figures}");
}

#[test]
fn successor_killed_before_or_after_taking_its_sockets_loses_nothing() {
    if !run_in_child("successor_killed_before_or_after_taking_its_sockets_loses_nothing") {
        return;
    }
    // Every process starts slowly (700 ms), then holds its sockets paused for 1.5 s.
    let group = Group::start(
        "upgrade",
        &[
            "0",
            "--ready-delay-ms",
            "700",
            "--hold-ms",
            "1500",
            "--grace-ms",
            "300",
        ],
    );
    let lines = group.lines.clone();
    let (at, first, addr) = listening(&lines, 0);
    let load = Load::start(addr, LOADERS, PACE);
    load.wait_answers(first, 500);

    // Before it took its sockets.
    signal(first, libc::SIGHUP);
    let (at, early) = successor_started(&lines, at, first);
    signal(early, libc::SIGKILL);
    let (at, why) = upgrade_failed(&lines, at, first);
    assert!(why.contains(&format!("successor {early} exited")), "{why}");

    // After it took them (paused), before it was ready.
    signal(first, libc::SIGHUP);
    let (at, holding) = successor_started(&lines, at, first);
    let (at, _) = lines.wait_for(at, "took its socket", |line| {
        line.starts_with(&format!("pid {holding}: took "))
            .then_some(())
    });
    let before = load.answered_by(first);
    load.wait_answers(first, before + 200);
    signal(holding, libc::SIGKILL);
    let (at, why) = upgrade_failed(&lines, at, first);
    assert!(
        why.contains(&format!("successor {holding} exited")),
        "{why}"
    );
    let before = load.answered_by(first);
    load.wait_answers(first, before + 300);

    let (_, last) = upgrade(&lines, at, first);
    load.wait_answers(last, 300);
    let figures = load.figures("successor killed before taking its sockets, and after (paused)");
    figures.assert_clean();
    assert!(!figures.per_pid.contains_key(&early) && !figures.per_pid.contains_key(&holding));
}

#[test]
fn a_second_upgrade_request_is_refused_while_one_runs() {
    if !run_in_child("a_second_upgrade_request_is_refused_while_one_runs") {
        return;
    }
    let group = Group::start(
        "upgrade",
        &["0", "--ready-delay-ms", "500", "--grace-ms", "300"],
    );
    let lines = group.lines.clone();
    let (at, first, addr) = listening(&lines, 0);
    let load = Load::start(addr, LOADERS, PACE);
    load.wait_answers(first, 300);
    signal(first, libc::SIGHUP);
    let (at, second) = successor_started(&lines, at, first);
    signal(first, libc::SIGHUP);
    let (_, why) = upgrade_failed(&lines, at, first);
    assert!(
        why.contains("an upgrade is under way already") && why.contains(&second.to_string()),
        "{why}"
    );
    let (end, new) = lines.wait_for(at, "handed over", |line| {
        number_after(line, &format!("pid {first}: handed over to "))
    });
    assert_eq!(new, second);
    load.wait_answers(second, 300);
    let starts = lines.lines.lock().unwrap()[at + 1..end]
        .iter()
        .filter(|line| line.ends_with(": successor starting"))
        .count();
    assert_eq!(starts, 0, "no second successor was started");
    let figures = load.figures("two upgrade requests at once");
    figures.assert_clean();
}

#[test]
fn ten_handovers_in_a_row_under_load() {
    if !run_in_child("ten_handovers_in_a_row_under_load") {
        return;
    }
    let group = Group::start("upgrade", &["0", "--grace-ms", "200", "--drain-ms", "3000"]);
    let lines = group.lines.clone();
    let (mut at, mut current, addr) = listening(&lines, 0);
    let load = Load::start(addr, LOADERS, PACE);
    load.wait_answers(current, 300);
    let mut durations = Vec::new();
    for _ in 0..10 {
        let asked = Instant::now();
        let (i, next) = upgrade(&lines, at, current);
        durations.push(asked.elapsed());
        load.wait_answers(next, 200);
        (at, current) = (i, next);
    }
    // Application state went from each process to the next: the tenth knows it.
    lines.wait_for(0, "the state passed along", |line| {
        (line == format!("pid {current}: generation 10")).then_some(())
    });
    let figures = load.figures(&format!(
        "10 handovers in a row (request to relinquish, 200 ms window included: {:?} .. {:?})",
        durations.iter().min().unwrap(),
        durations.iter().max().unwrap()
    ));
    figures.assert_clean();
    assert_eq!(figures.per_pid.len(), 11, "{figures}");
}

#[test]
fn systemd_is_told_of_each_upgrade_in_order() {
    use std::os::unix::net::UnixDatagram;
    if !run_in_child("systemd_is_told_of_each_upgrade_in_order") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("notify");
    let systemd = UnixDatagram::bind(&path).expect("a stand-in for systemd's socket");
    systemd
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let next = || {
        let mut buf = [0u8; 512];
        let n = systemd.recv(&mut buf).expect("a notification in time");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let group = Group::start_with(
        "upgrade",
        &["0", "--ready-delay-ms", "300", "--grace-ms", "200"],
        &[("NOTIFY_SOCKET", path.to_str().unwrap())],
    );
    let lines = group.lines.clone();
    let (at, first, _) = listening(&lines, 0);
    assert_eq!(next(), "READY=1", "the first start");

    // A failed upgrade: reloading, then this process again.
    signal(first, libc::SIGHUP);
    let (at, doomed) = successor_started(&lines, at, first);
    signal(doomed, libc::SIGKILL);
    let (at, _) = upgrade_failed(&lines, at, first);
    let reloading = next();
    let usec = reloading
        .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
        .unwrap_or_else(|| panic!("{reloading:?}"));
    assert!(usec.parse::<u64>().is_ok_and(|n| n > 0), "{reloading:?}");
    assert_eq!(next(), format!("MAINPID={first}\nREADY=1"));

    // A good one: reloading, then the successor is the main process.
    let (_, second) = upgrade(&lines, at, first);
    assert!(next().starts_with("RELOADING=1\nMONOTONIC_USEC="));
    assert_eq!(next(), format!("MAINPID={second}\nREADY=1"));
    systemd
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 512];
    assert!(systemd.recv(&mut buf).is_err(), "nothing more");
}

/// Asks for an upgrade over `control` the way an operator does from a shell: the example's own
/// `--ask`. Its exit status and answer.
fn ask_upgrade(control: &std::path::Path) -> (bool, String) {
    let output = Command::new(example("upgrade"))
        .arg("--ask")
        .arg(control)
        .output()
        .expect("run upgrade --ask");
    let answer = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    (output.status.success(), answer)
}

#[test]
fn upgrade_on_request_over_the_control_socket_reports_its_result() {
    if !run_in_child("upgrade_on_request_over_the_control_socket_reports_its_result") {
        return;
    }
    let (_dir, control) = util::temp_socket_path("rot13.ctl");
    let group = Group::start(
        "upgrade",
        &[
            "0",
            "--control",
            control.to_str().unwrap(),
            "--ready-delay-ms",
            "400",
            "--grace-ms",
            "200",
        ],
    );
    let lines = group.lines.clone();
    let (at, first, addr) = listening(&lines, 0);
    let load = Load::start(addr, LOADERS, PACE);
    load.wait_answers(first, 300);
    let asked = Instant::now();
    let requester = {
        let control = control.clone();
        std::thread::spawn(move || ask_upgrade(&control))
    };
    let (_, second) = successor_started(&lines, at, first);
    // A second request while the first runs: refused, and told why.
    let (done, answer) = ask_upgrade(&control);
    assert!(!done, "{answer}");
    assert!(
        answer.starts_with("error ") && answer.contains("under way already"),
        "{answer}"
    );
    let (done, answer) = requester.join().expect("the first requester");
    let took = asked.elapsed();
    assert!(done, "{answer}");
    assert_eq!(answer, format!("ok {second}"));
    load.wait_answers(second, 300);
    // The control socket went with the service: the next request reaches the new process.
    let (done, answer) = ask_upgrade(&control);
    assert!(done, "{answer}");
    let third: u32 = answer
        .strip_prefix("ok ")
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("{answer}"));
    load.wait_answers(third, 300);
    let figures = load.figures(&format!(
        "upgrade on request over the control socket (answered in {took:?}), one refused"
    ));
    figures.assert_clean();
}

#[test]
fn a_process_that_is_not_a_child_takes_the_sockets_over_scm_rights() {
    if !run_in_child("a_process_that_is_not_a_child_takes_the_sockets_over_scm_rights") {
        return;
    }
    let (_dir, control) = util::temp_socket_path("rot13.ctl");
    let ctl = control.to_str().unwrap();
    let old = Group::start("upgrade", &["0", "--control", ctl, "--grace-ms", "300"]);
    let (_, first, addr) = listening(&old.lines, 0);
    let load = Load::start(addr, LOADERS, PACE);
    load.wait_answers(first, 300);

    // Started by someone else (here, this test): it asks over the control socket.
    let asked = Instant::now();
    let new = Group::start("upgrade", &["--take-from", ctl, "--grace-ms", "3000"]);
    let second = new.first.id();
    took_over(&new.lines, 0, second);
    let ready = asked.elapsed();
    let (_, to) = old.lines.wait_for(0, "handed over", |line| {
        number_after(line, &format!("pid {first}: handed over to "))
    });
    assert_eq!(to, second);
    let handed = asked.elapsed();
    load.wait_answers(second, 300);
    eventually("the old process exits", || exited(first));

    // Another one takes them from the second, and dies within the rollback window: the second
    // resumes at once.
    let doomed = Group::start("upgrade", &["--take-from", ctl]);
    let doomed_pid = doomed.first.id();
    took_over(&doomed.lines, 0, doomed_pid);
    let killed = Instant::now();
    signal(doomed_pid, libc::SIGKILL);
    let (_, why) = upgrade_failed(&new.lines, 0, second);
    let resumed = killed.elapsed();
    assert!(why.contains("rollback window"), "{why}");
    let before = load.answered_by(second);
    load.wait_answers(second, before + 300);
    let figures = load.figures(&format!(
        "SCM_RIGHTS to a process that is not a child (ready {ready:?}, relinquished {handed:?} \
         after it started; its own successor killed after ready: resumed in {resumed:?})"
    ));
    assert_eq!(figures.refused, 0, "{figures}");
    // Only what the killed process had accepted and not answered can be lost.
    assert!(figures.reset + figures.wrong <= LOADERS, "{figures}");
    drop(doomed);
}

// ---- TCP v4 + v6 + UNIX + UDP handed over together ----

/// The server of `tcp_v4_v6_unix_and_udp_are_handed_over_together`: this test binary, which
/// hands its four sockets to a new copy of itself on SIGHUP.
const MULTI: &str = "handover_multi_server";

/// One connection on a UNIX stream socket, as [`ask`] does on TCP.
fn ask_unix(path: &std::path::Path, text: &str) -> Result<u32, String> {
    let mut stream = std::os::unix::net::UnixStream::connect(path)
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

/// One datagram and its answer; no answer within 2 s is a lost datagram.
fn ask_udp(socket: &std::net::UdpSocket, text: &str) -> Result<u32, String> {
    socket
        .send(text.as_bytes())
        .map_err(|error| format!("send: {error}"))?;
    let mut buf = [0u8; 1500];
    let n = socket
        .recv(&mut buf)
        .map_err(|error| format!("udp lost: {error}"))?;
    parse_reply(&String::from_utf8_lossy(&buf[..n]), text)
}

#[test]
fn tcp_v4_v6_unix_and_udp_are_handed_over_together() {
    use std::sync::atomic::AtomicUsize;
    if !run_in_child("tcp_v4_v6_unix_and_udp_are_handed_over_together") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = Command::new(std::env::current_exe().expect("test binary"));
    command
        .args([MULTI, "--exact", "--ignored", "--nocapture"])
        .env(util::child::CHILD_VAR, MULTI)
        .env("MULTI_DIR", dir.path());
    let group = Group::spawn(command);
    let lines = group.lines.clone();
    let (mut at, (mut current, addrs)) = lines.wait_for(0, "addresses", |line| {
        let pid = number_after(line, "pid ")?;
        let addrs: Vec<String> = line
            .split(": ADDRS ")
            .nth(1)?
            .split(' ')
            .map(str::to_owned)
            .collect();
        Some((pid, addrs))
    });
    let tcp4: SocketAddr = addrs[0].parse().expect("tcp4");
    let tcp6: Option<SocketAddr> = addrs[1].parse().ok();
    let unix = PathBuf::from(&addrs[2]);
    let udp: SocketAddr = addrs[3].parse().expect("udp");
    let answered: Arc<[AtomicUsize; 4]> = Arc::new(Default::default());
    let counts = answered.clone();
    // Datagrams sent, and those with no right answer within 2 s.
    let datagrams: Arc<[AtomicUsize; 2]> = Arc::new(Default::default());
    let udp_counts = datagrams.clone();
    // Datagrams answered by each process.
    let udp_by_pid: Arc<Mutex<BTreeMap<u32, usize>>> = Arc::default();
    let udp_pids = udp_by_pid.clone();
    // Threads 0 to 2: one per stream kind; 3 to 5: datagrams.
    let load = Load::start_with(6, PACE, move |t, i| {
        let text = format!("hello {t} {i}");
        let result = match t {
            0 => ask(tcp4, &text),
            1 => ask(tcp6.unwrap_or(tcp4), &text),
            2 => ask_unix(&unix, &text),
            _ => {
                thread_local! {
                    static UDP: std::net::UdpSocket = {
                        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
                        socket.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                        socket
                    };
                }
                UDP.with(|socket| {
                    socket
                        .connect(udp)
                        .map_err(|error| error.to_string())
                        .and_then(|()| ask_udp(socket, &text))
                })
            }
        };
        if result.is_ok() {
            counts[t.min(3)].fetch_add(1, Ordering::Relaxed);
        }
        if t >= 3 {
            udp_counts[0].fetch_add(1, Ordering::Relaxed);
            match &result {
                Ok(pid) => *udp_pids.lock().unwrap().entry(*pid).or_insert(0) += 1,
                Err(_) => _ = udp_counts[1].fetch_add(1, Ordering::Relaxed),
            }
        }
        result
    });
    load.wait_answers(current, 1000);
    let mut durations = Vec::new();
    for _ in 0..2 {
        let asked = Instant::now();
        let (i, next) = upgrade(&lines, at, current);
        durations.push(asked.elapsed());
        load.wait_answers(next, 1000);
        (at, current) = (i, next);
    }
    let per_kind: Vec<usize> = answered.iter().map(|n| n.load(Ordering::Relaxed)).collect();
    let figures = load.figures(&format!(
        "TCP v4 + v6{} + UNIX + UDP (shared with ShareListener), 2 handovers ({durations:?}); \
         answered per kind (tcp4, tcp6, unix, udp): {per_kind:?}",
        if tcp6.is_some() {
            ""
        } else {
            " (no ::1 here: v4 again)"
        }
    ));
    // Every client thread has ended: the datagram counts are final.
    let [sent, lost] = [0, 1].map(|i| datagrams[i].load(Ordering::Relaxed));
    let udp_by_pid = udp_by_pid.lock().unwrap().clone();
    println!(
        "FIGURES datagrams through 2 handovers: {sent} sent, {lost} lost, answered by \
         {udp_by_pid:?}"
    );
    figures.assert_clean();
    assert_eq!(lost, 0, "{lost} of {sent} datagrams lost");
    assert_eq!(
        udp_by_pid.len(),
        3,
        "each of the 3 processes answered datagrams on the one shared socket: {udp_by_pid:?}"
    );
    assert!(per_kind.iter().all(|n| *n > 100), "{per_kind:?}");
}

#[test]
#[ignore = "runs as the server of tcp_v4_v6_unix_and_udp_are_handed_over_together"]
fn handover_multi_server() {
    use actix::prelude::*;
    use actix_socket_factory::handover::{self, Successor};
    use actix_socket_factory::testing::Events;
    use actix_socket_factory::{
        hand_over, Domain, GetSockName, PauseAccept, ResumeAccept, SocketType,
    };
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    if !util::in_child(MULTI) {
        return;
    }
    let dir = PathBuf::from(std::env::var("MULTI_DIR").expect("MULTI_DIR"));
    let me = std::process::id();
    let system = System::new();
    system.block_on(async move {
        let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .expect("a SIGHUP handler");
        let successor = handover::is_successor();
        let v6 = successor || util::can_bind("[::1]:0".parse().unwrap());
        let mut events = Events::start();
        let path = dir.join("multi.sock");
        let mut factories = Vec::new();
        for name in ["tcp4", "tcp6", "unix"] {
            let builder = events.builder();
            let builder = if handover::is_inherited(name) {
                builder.systemd(Some(name))
            } else {
                match name {
                    "tcp4" => builder.bind_address("127.0.0.1"),
                    "tcp6" if v6 => builder.bind_address("::1"),
                    "tcp6" => continue,
                    _ => builder.bind_address(path.as_path()),
                }
            };
            let factory = builder.start();
            if successor {
                factory.do_send(PauseAccept);
            }
            factories.push((factory, name.to_owned()));
        }
        // The datagram factory keeps a duplicate of the socket it delivers (`shareable`), so
        // that it is shared and relinquished as the listeners are.
        let mut udp_events = Events::start();
        let builder = udp_events.builder().shareable(true);
        let udp_factory = if handover::is_inherited("udp") {
            builder.systemd(Some("udp")).start()
        } else {
            builder
                .bind_address("127.0.0.1")
                .socket_type(SocketType::Datagram)
                .start()
        };
        let created = udp_events.next_created(util::LIMIT).await.expect("udp");
        let udp_addr = created.socket.local_addr().unwrap().as_socket().unwrap();
        let udp = created.into_udp_socket().expect("udp");
        let (stop_udp, mut udp_stopped) = tokio::sync::watch::channel(false);
        actix::spawn(async move {
            let mut buf = [0u8; 1500];
            loop {
                tokio::select! {
                    biased;
                    _ = udp_stopped.changed() => break,
                    received = udp.recv_from(&mut buf) => {
                        if let Ok((n, from)) = received {
                            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                            let reply = format!("[{me}] {}", rot13(&text));
                            let _ = udp.send_to(reply.as_bytes(), from).await;
                        }
                    }
                }
            }
        });
        if successor {
            assert!(handover::ready().expect("told"));
            for (factory, _) in &factories {
                factory.do_send(ResumeAccept);
            }
            println!("pid {me}: took over");
        } else {
            let mut addrs = Vec::new();
            for (factory, _) in &factories {
                let local = factory.send(GetSockName).await.unwrap().unwrap();
                addrs.push(match local.as_path() {
                    Some(path) => path.display().to_string(),
                    None => local.to_string(),
                });
            }
            if !v6 {
                addrs.insert(1, "-".into());
            }
            println!("pid {me}: ADDRS {} {udp_addr}", addrs.join(" "));
        }
        factories.push((udp_factory, "udp".to_owned()));
        let (done, mut finished) = tokio::sync::mpsc::channel::<()>(1);
        // Each connection's task holds a sender: all have ended once the channel is closed.
        let (in_flight, mut all_served) = tokio::sync::mpsc::channel::<()>(1);
        let serve = move |created: actix_socket_factory::SocketCreated| {
            let unix = created.domain == Domain::Unix;
            let in_flight = in_flight.clone();
            actix::spawn(async move {
                let line = async {
                    let mut line = String::new();
                    if unix {
                        let stream = created.into_unix_stream()?;
                        let (read, mut write) = stream.into_split();
                        tokio::io::BufReader::new(read).read_line(&mut line).await?;
                        let reply = format!("[{me}] {}\n", rot13(line.trim_end()));
                        write.write_all(reply.as_bytes()).await
                    } else {
                        let stream = created.into_tcp_stream()?;
                        let (read, mut write) = stream.into_split();
                        tokio::io::BufReader::new(read).read_line(&mut line).await?;
                        let reply = format!("[{me}] {}\n", rot13(line.trim_end()));
                        write.write_all(reply.as_bytes()).await
                    }
                };
                let _: std::io::Result<()> = line.await;
                drop(in_flight);
            });
        };
        loop {
            tokio::select! {
                created = events.next_created(Duration::from_secs(3600)) => {
                    let Ok(created) = created else { continue };
                    serve(created);
                }
                Some(()) = hangups.recv() => {
                    // The crate's one call: share (the datagram factory too), start, wait for
                    // ready, pause through the window, relinquish or resume.
                    let mut command = Command::new(std::env::current_exe().unwrap());
                    command
                        .args([MULTI, "--exact", "--ignored", "--nocapture"])
                        .env(util::child::CHILD_VAR, MULTI)
                        .env("MULTI_DIR", &dir);
                    let factories = factories.clone();
                    let (done, stop_udp) = (done.clone(), stop_udp.clone());
                    actix::spawn(async move {
                        let grace = Duration::from_millis(200);
                        match hand_over(&factories, Successor::new(command), grace).await {
                            Ok(child) => {
                                // The delivered datagram socket is ours: stop reading it.
                                let _ = stop_udp.send(true);
                                println!("pid {me}: handed over to {}", child.id());
                                let _ = done.send(()).await;
                            }
                            Err(why) => println!("pid {me}: upgrade failed: {why}"),
                        }
                    });
                }
                Some(()) = finished.recv() => break,
            }
        }
        // Serve the connections accepted before the handover (nothing is delivered after
        // `Relinquish`: those already delivered are in the queue), then leave once all ended.
        while let Some(created) = events.try_created() {
            serve(created);
        }
        drop(serve);
        let served = tokio::time::timeout(WAIT, all_served.recv()).await;
        assert!(
            matches!(served, Ok(None)),
            "connections still open after {WAIT:?}"
        );
    });
}

#[test]
fn a_lying_or_silent_peer_is_refused_within_its_deadline() {
    use actix_socket_factory::handover::{self, HandoverError, SharedSocket};
    use std::os::unix::net::UnixListener;
    if !run_in_child("a_lying_or_silent_peer_is_refused_within_its_deadline") {
        return;
    }
    // New side: an "old process" that names two sockets and passes none, then one that never
    // answers.
    let (_dir, path) = util::temp_socket_path("liar.ctl");
    let before = util::open_fds();
    let listener = UnixListener::bind(&path).expect("bind");
    let liar = std::thread::spawn(move || {
        for answer in [Some("sockets a:b\n"), None] {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut request = [0u8; 8];
            stream.read_exact(&mut request).expect("the request");
            assert_eq!(&request, b"sockets\n");
            match answer {
                Some(answer) => stream.write_all(answer.as_bytes()).expect("answer"),
                // Silent until the requester gives up and hangs up (bounded).
                None => {
                    stream.set_read_timeout(Some(WAIT)).expect("a timeout");
                    let mut byte = [0u8; 1];
                    let read = stream.read(&mut byte);
                    assert!(matches!(read, Ok(0)), "the requester hung up: {read:?}");
                }
            }
        }
    });
    let error = handover::request(&path, Duration::from_secs(5)).expect_err("a lie");
    assert!(
        error.to_string().contains("2 names for 0 descriptors"),
        "{error}"
    );
    let asked = Instant::now();
    let error = handover::request(&path, Duration::from_millis(200)).expect_err("silence");
    assert!(asked.elapsed() < Duration::from_secs(1), "bounded: {error}");
    liar.join().expect("the liar");
    assert_eq!(util::open_fds(), before, "nothing left open");

    // Old side: a peer that never says ready, then one that hangs up; each upgrade ends, and
    // the next may start.
    let system = actix::System::new();
    system.block_on(async {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let shared = SharedSocket::new("web", listener).expect("named");
        for hang_up in [false, true] {
            let (old, new) = tokio::net::UnixStream::pair().expect("pair");
            let peer = if hang_up {
                drop(new);
                None
            } else {
                Some(new)
            };
            let offered = handover::offer(
                old,
                vec![shared.try_clone().unwrap()],
                Duration::from_millis(300),
            )
            .await;
            match (hang_up, offered) {
                (false, Err(HandoverError::TimedOut { .. })) => {}
                (true, Err(HandoverError::ClosedPipe { .. } | HandoverError::Io { .. })) => {}
                (_, other) => panic!("hang up {hang_up}: {other:?}"),
            }
            drop(peer);
        }
    });
}

#[test]
fn a_request_is_bounded_at_every_step() {
    use actix_socket_factory::handover;
    use std::io::ErrorKind;
    if !run_in_child("a_request_is_bounded_at_every_step") {
        return;
    }
    const LIMIT: Duration = Duration::from_millis(300);
    /// The request fails with `TimedOut` naming `step`, within its deadline (and a margin for a
    /// loaded machine), not before it.
    fn times_out(path: &std::path::Path, step: &str) {
        let asked = Instant::now();
        let error = handover::request(path, LIMIT).expect_err("no answer");
        let took = asked.elapsed();
        assert_eq!(error.kind(), ErrorKind::TimedOut, "{error}");
        assert!(error.to_string().contains(step), "{step}: {error}");
        assert!(
            took >= LIMIT - Duration::from_millis(5) && took < LIMIT * 5,
            "{step}: {took:?}"
        );
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let before = util::open_fds();
    let listener_at = |name: &str, backlog: i32| {
        let path = dir.path().join(name);
        let listener = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)
            .expect("socket");
        listener
            .bind(&socket2::SockAddr::unix(&path).unwrap())
            .expect("bind");
        listener.listen(backlog).expect("listen");
        (listener, path)
    };

    // A listener whose queue is full: the connect itself waits, bounded. (Linux: a UNIX
    // stream's connect to a full queue waits for a place, or fails with EAGAIN when
    // non-blocking, as these fillers do; other systems refuse it at once.)
    let (full, path) = listener_at("full.ctl", 0);
    let mut fillers = Vec::new();
    for _ in 0..64 {
        let filler = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)
            .expect("socket");
        filler.set_nonblocking(true).unwrap();
        match filler.connect(&socket2::SockAddr::unix(&path).unwrap()) {
            Ok(()) => fillers.push(filler),
            Err(error) if error.kind() == ErrorKind::WouldBlock => break,
            Err(error) => panic!("filling the queue: {error}"),
        }
    }
    assert!(fillers.len() < 64, "the queue never filled");
    times_out(&path, "listen queue is full");
    drop((full, fillers));

    // A listener nobody accepts from, with room in its queue: connected, never answered.
    let (idle, path) = listener_at("idle.ctl", 16);
    times_out(&path, "waiting for the answer");
    drop(idle);

    // A peer that sends its answer a byte at a time, never finishing it: the deadline is the
    // whole request's, not each read's.
    let (dribbler, path) = listener_at("dribble.ctl", 16);
    let dribbler: std::os::unix::net::UnixListener = dribbler.into();
    let peer = std::thread::spawn(move || {
        let (mut stream, _) = dribbler.accept().expect("accept");
        let mut request = [0u8; 8];
        stream.read_exact(&mut request).expect("the request");
        stream.write_all(b"sockets ").expect("the answer begins");
        // Until the requester hangs up (bounded: at most 20 s).
        for _ in 0..400 {
            if stream.write_all(b"a").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the requester never hung up");
    });
    times_out(&path, "reading the answer");
    peer.join().expect("the dribbling peer");

    // A deadline too far to express is no limit, never a panic: a wrong answer ends it.
    let (liar, path) = listener_at("liar.ctl", 16);
    let liar: std::os::unix::net::UnixListener = liar.into();
    let peer = std::thread::spawn(move || {
        let (mut stream, _) = liar.accept().expect("accept");
        let mut request = [0u8; 8];
        stream.read_exact(&mut request).expect("the request");
        stream.write_all(b"sockets a\n").expect("answer");
    });
    let error = handover::request(&path, Duration::MAX).expect_err("a lie");
    assert!(error.to_string().contains("1 names for 0"), "{error}");
    peer.join().expect("the liar");
    assert_eq!(util::open_fds(), before, "nothing left open");
}

#[test]
fn a_successor_given_up_gets_sigterm_and_a_grace_before_sigkill() {
    use actix_socket_factory::handover::{HandoverError, Successor};
    if !run_in_child("a_successor_given_up_gets_sigterm_and_a_grace_before_sigkill") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let mark = dir.path().join("terminated");
    let system = actix::System::new();
    system.block_on(async {
        // One that finishes its work on SIGTERM (writes the mark), one that ignores it.
        let polite = format!(
            "trap 'kill $!; echo done > {}; exit 0' TERM; sleep 30 & wait",
            mark.display()
        );
        for (script, grace) in [
            (polite.as_str(), 5000),
            ("trap '' TERM; exec sleep 30", 300),
        ] {
            let mut command = Command::new("sh");
            command
                .args(["-c", script])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let started = Instant::now();
            let error = Successor::new(command)
                .ready_timeout(Duration::from_millis(300))
                .stop_grace(Duration::from_millis(grace))
                .spawn()
                .expect("spawn")
                .ready()
                .await
                .expect_err("never ready");
            let took = started.elapsed();
            assert!(matches!(error, HandoverError::TimedOut { .. }), "{error}");
            assert!(exited(error.pid()), "stopped and reaped");
            println!("{script:?}: stopped {took:?} after it started");
            // The polite one left at once on SIGTERM (well within its 5 s); the other was
            // killed once its 300 ms were over.
            if grace == 5000 {
                assert!(took < Duration::from_millis(3000), "{took:?}");
            } else {
                assert!(took >= Duration::from_millis(600), "{took:?}");
            }
        }
        assert_eq!(std::fs::read_to_string(&mark).unwrap_or_default(), "done\n");
    });
}
