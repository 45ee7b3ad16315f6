//! Instruction counts: the figure to trust on a shared machine, where times drift with the
//! load but the instructions a process runs do not.
//!
//! Each server (and each client) runs alone in a child process under
//! `valgrind --tool=callgrind`, which counts the user-space instructions of that process only
//! (every thread; children of it are not traced). The load comes from this (uncounted)
//! process; each connection is made after the server has gone idle again (every thread of it
//! asleep, as `/proc` shows, then a 1 ms pause), as a lone client's would be, so the count of
//! thread wake-ups does not vary with the machine's load. Every figure is made twice, with
//! `SMALL` and `LARGE` sequential connections, and
//! the difference is divided by `LARGE - SMALL`: the process's start-up, its first-use
//! allocations and its exit cancel out, leaving the cost of one connection.
//!
//! System calls per connection are counted the same way (two sizes, differenced) under
//! `strace -f`, for the two factory deployments and their tokio baselines: those of the
//! server's own threads. The process-wide `owner-check` clock thread, which rings each
//! Arbiter's owner sweep twice a second whatever the traffic, is counted apart: its calls
//! grow with the run's length, not with its connections (they are printed beside).
//!
//! The callgrind files are kept (the directory is printed), for `callgrind_annotate`.
//! Without valgrind (`apt-get install valgrind`), this part is skipped with a line saying so.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::child::Child;
use crate::load::Clients;
use crate::servers::Counts;
use crate::stats::{ratio, Json, Spread};

/// Sequential connections in the two runs of each figure.
pub const SMALL: u64 = 200;
pub const LARGE: u64 = 1_200;

/// The pause after each connection, so every connection finds the server idle (its threads
/// parked), as a lone client does: without it, whether a consumer thread is still awake when
/// the next connection comes varies from run to run, and with it the count of wake-ups.
const PAUSE: Duration = Duration::from_millis(1);

/// How often each figure is made (`BENCH_INSTR_RUNS`); the median is kept. A single-thread
/// server gives the same count every time, give or take a few instructions; with two threads,
/// how often a wake-up finds its thread still awake (so the thread turns once more) varies
/// from run to run by up to about 10%.
const RUNS: usize = 3;

/// Start-up under valgrind is slow: a server gets this long to say `ready`.
const START: Duration = Duration::from_secs(120);
/// And this long to write its counts and exit once told to.
const EXIT: Duration = Duration::from_secs(60);

/// The servers counted, in the table's order.
pub const SERVERS: [&str; 5] = [
    "factory-same",
    "tokio-1t",
    "factory-cross",
    "tokio-2t",
    "factory-group",
];
/// Connections held open by the factory (on its own Arbiter) for the held figure, counted as
/// `factory-cross-held`; fewer when the descriptor limit does not allow them.
pub const HELD: u64 = 10_000;
/// The clients counted: a client factory per connect, and tokio's `TcpStream::connect`.
pub const CLIENTS: [&str; 2] = ["connects-factory", "connects-tokio"];

/// The servers whose system calls per connection are counted (`strace -f -c`).
pub const SYSCALL_SERVERS: [&str; 4] = ["factory-same", "tokio-1t", "factory-cross", "tokio-2t"];

/// Whether strace can be run.
fn strace() -> bool {
    Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|out| out.status.success())
}

/// Instructions per connection (servers) and per connect (clients), by mode.
#[derive(Debug, Default)]
pub struct Instr {
    pub per: HashMap<&'static str, Spread>,
    /// System calls per connection, by server mode (the server's threads, from `strace -f`).
    pub syscalls: HashMap<&'static str, f64>,
    /// And those of the `owner-check` clock thread, per connection of the same runs
    /// (time-bound: its rings follow the clock, not the connections).
    pub clock_syscalls: HashMap<&'static str, f64>,
    /// Runs per figure.
    pub runs: usize,
    /// Connections held open for `factory-cross-held`.
    pub held: u64,
    /// Where the callgrind files are.
    pub dir: PathBuf,
    /// `valgrind --version`, or why the counts were not made.
    pub note: String,
}

/// valgrind's version line, when it can be run.
fn valgrind() -> Option<String> {
    let out = Command::new("valgrind").arg("--version").output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Counts every server and client, or says why not.
pub fn run() -> Instr {
    let Some(version) = valgrind() else {
        let note = "instruction counts: skipped, valgrind not found (apt-get install valgrind)";
        eprintln!("{note}");
        return Instr {
            note: note.to_owned(),
            ..Instr::default()
        };
    };
    let dir = std::env::var_os("BENCH_CALLGRIND_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("actix-socket-factory-callgrind"));
    let mut instr = Instr {
        dir: dir.clone(),
        note: version.clone(),
        ..Instr::default()
    };
    if let Err(error) = std::fs::create_dir_all(&dir) {
        instr.note = format!("instruction counts: skipped, {}: {error}", dir.display());
        eprintln!("{}", instr.note);
        return instr;
    }
    eprintln!(
        "instruction counts ({version}): {SMALL} and {LARGE} sequential connections per figure, \
         callgrind files in {}",
        dir.display()
    );
    let runs = std::env::var("BENCH_INSTR_RUNS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(RUNS)
        .max(1);
    instr.runs = runs;
    let nofile = crate::os::raise_nofile();
    let held = HELD.min(nofile.saturating_sub(1_000));
    instr.held = held;
    let servers = SERVERS
        .iter()
        .map(|&mode| (mode, mode, 0))
        .chain((held > 0).then_some(("factory-cross-held", "factory-cross", held)));
    // `BENCH_INSTR_ONLY=factory-same,connects-factory`: only these figures (while profiling).
    let only = std::env::var("BENCH_INSTR_ONLY").ok();
    let wanted = |label: &str| {
        only.as_deref()
            .is_none_or(|only| only.split(',').any(|one| one.trim() == label))
    };
    for (label, mode, hold) in servers {
        if !wanted(label) {
            continue;
        }
        match per_item(runs, |n, run| server_ir(mode, hold, n, run, &dir)) {
            Ok(per) => {
                eprintln!(
                    "  server {label:<18} {} instructions per connection",
                    per.show(0)
                );
                instr.per.insert(label, per);
            }
            Err(error) => eprintln!("  server {label}: {error}"),
        }
    }
    if strace() {
        for mode in SYSCALL_SERVERS {
            if !wanted(mode) {
                continue;
            }
            let per = (|| {
                let small = server_syscalls(mode, SMALL, &dir)?;
                let large = server_syscalls(mode, LARGE, &dir)?;
                let per = |f: fn(&Calls) -> u64| {
                    (f(&large) as f64 - f(&small) as f64) / (LARGE - SMALL) as f64
                };
                Ok::<_, io::Error>((per(|c| c.server), per(|c| c.clock)))
            })();
            match per {
                Ok((per, clock)) => {
                    eprintln!(
                        "  server {mode:<18} {per:.2} system calls per connection (and \
                         {clock:.3} by the owner-check clock)"
                    );
                    instr.syscalls.insert(mode, per);
                    instr.clock_syscalls.insert(mode, clock);
                }
                Err(error) => eprintln!("  server {mode} (strace): {error}"),
            }
        }
    } else {
        eprintln!("  system calls: skipped, strace not found (apt-get install strace)");
    }
    for mode in CLIENTS {
        if !wanted(mode) {
            continue;
        }
        match per_item(runs, |n, run| client_ir(mode, n, run, &dir)) {
            Ok(per) => {
                eprintln!(
                    "  client {mode:<16} {} instructions per connect",
                    per.show(0)
                );
                instr.per.insert(mode, per);
            }
            Err(error) => eprintln!("  client {mode}: {error}"),
        }
    }
    instr
}

/// (count(LARGE) - count(SMALL)) / (LARGE - SMALL), `runs` times.
fn per_item(runs: usize, count: impl Fn(u64, usize) -> io::Result<u64>) -> io::Result<Spread> {
    let mut per = Vec::with_capacity(runs);
    for run in 0..runs {
        let small = count(SMALL, run)?;
        let large = count(LARGE, run)?;
        per.push((large as f64 - small as f64) / (LARGE - SMALL) as f64);
    }
    Spread::of(&per).ok_or_else(|| io::Error::other("no count"))
}

/// `taskset -c CPU`: every counted process runs on one CPU (the last one, or
/// `BENCH_PIN_CPU`; `BENCH_PIN_CPU=none` leaves it free). Under valgrind only one thread of a
/// process runs at a time; pinned, a thread woken by another also waits for the first to block
/// rather than for whichever CPU the host frees first, so the order in which a two-thread
/// server's threads take their turns (and with it its count of wake-ups) no longer follows
/// the machine's load.
fn pinned() -> Vec<String> {
    let cpu = match std::env::var("BENCH_PIN_CPU") {
        Ok(value) if value == "none" => return Vec::new(),
        Ok(value) => value.parse::<usize>().ok(),
        Err(_) => std::thread::available_parallelism()
            .ok()
            .map(|cpus| cpus.get() - 1),
    };
    let taskset = Command::new("taskset")
        .arg("-V")
        .output()
        .is_ok_and(|out| out.status.success());
    match cpu {
        Some(cpu) if taskset => [
            "chrt", "-b", "0", // SCHED_BATCH: a woken thread does not preempt the running one
            "taskset", "-c",
        ]
        .iter()
        .map(|word| (*word).to_owned())
        .chain([cpu.to_string()])
        .collect(),
        _ => Vec::new(),
    }
}

fn callgrind(out: &Path) -> Vec<String> {
    let mut wrapper = pinned();
    wrapper.extend([
        "valgrind".to_owned(),
        "--tool=callgrind".to_owned(),
        // Threads take turns in a fixed order, not as the host's futex happens to hand the lock.
        "--fair-sched=yes".to_owned(),
        "-q".to_owned(),
        format!("--callgrind-out-file={}", out.display()),
    ]);
    wrapper
}

/// Server `mode` under callgrind, `n` sequential connections from here; its total count.
/// With `hold` > 0, that many connections are opened first and held open (by both sides)
/// while the `n` are made.
fn server_ir(mode: &str, hold: u64, n: u64, run: usize, dir: &Path) -> io::Result<u64> {
    let out = dir.join(format!("server-{mode}-held{hold}-{n}-{run}.out"));
    let _ = std::fs::remove_file(&out);
    serve_counted(mode, hold, n, &callgrind(&out))?;
    total(&out)
}

/// A server's system calls: its own threads', and the `owner-check` clock thread's.
struct Calls {
    server: u64,
    clock: u64,
}

/// The name the crate gives its owner-check clock thread.
const CLOCK_THREAD: &str = "owner-check";

/// Server `mode` under `strace -f`, `n` sequential connections; its count of system calls.
fn server_syscalls(mode: &str, n: u64, dir: &Path) -> io::Result<Calls> {
    let out = dir.join(format!("strace-{mode}-{n}.txt"));
    let _ = std::fs::remove_file(&out);
    let strace = pinned()
        .into_iter()
        .chain(["strace", "-f", "-o"].iter().map(|s| (*s).to_owned()))
        .chain([out.display().to_string()])
        .collect::<Vec<_>>();
    let clock = serve_counted(mode, 0, n, &strace)?;
    strace_calls(&out, &clock)
}

/// The calls in a `strace -f` log (one line per call, a resumed call counted once), those of
/// the threads `clock` apart.
fn strace_calls(path: &Path, clock: &[u32]) -> io::Result<Calls> {
    let text = std::fs::read_to_string(path)?;
    let mut calls = Calls {
        server: 0,
        clock: 0,
    };
    for line in text.lines() {
        let (tid, rest) = match line.split_once(' ') {
            Some((tid, rest)) if tid.bytes().all(|b| b.is_ascii_digit()) => {
                (tid.parse::<u32>().ok(), rest.trim_start())
            }
            _ => (None, line),
        };
        // Resumed halves, signals and exits are not calls.
        if rest.starts_with("<...") || rest.starts_with("+++") || rest.starts_with("---") {
            continue;
        }
        if !rest.starts_with(|c: char| c.is_ascii_lowercase() || c == '_') {
            continue;
        }
        if tid.is_some_and(|tid| clock.contains(&tid)) {
            calls.clock += 1;
        } else {
            calls.server += 1;
        }
    }
    if calls.server == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: no system calls", path.display()),
        ));
    }
    Ok(calls)
}

/// The threads of process `pid` named `name`.
fn threads_named(pid: u32, name: &str) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|task| {
            let task = task.ok()?;
            let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
            (comm.trim_end() == name)
                .then(|| task.file_name().to_str()?.parse().ok())
                .flatten()
        })
        .collect()
}

/// Runs server `mode` under `wrapper` for `n` sequential connections (after `hold` held ones)
/// and lets it exit. Gives the ids of its owner-check clock threads (seen once the connections
/// are made).
fn serve_counted(mode: &str, hold: u64, n: u64, wrapper: &[String]) -> io::Result<Vec<u32>> {
    let counts = Counts {
        hold,
        warm: n,
        timed: u64::MAX / 4,
    };
    let args = [
        "--server".to_owned(),
        mode.to_owned(),
        counts.hold.to_string(),
        counts.warm.to_string(),
        counts.timed.to_string(),
    ];
    let mut child = Child::spawn_under(wrapper, &args)?;
    let port = child.expect_numbers("ready", START)?;
    let addr = SocketAddr::from((
        Ipv4Addr::LOCALHOST,
        port.first().copied().unwrap_or(0.0) as u16,
    ));
    // Paced too: in bursts, the server would take the held connections in fewer turns, by a
    // number that varies from run to run and does not cancel between the two sizes.
    let held = crate::load::hold_paced(addr, hold, PAUSE, child.pid())?;
    if hold > 0 {
        child.expect("held", START + Duration::from_millis(hold * 10))?;
    }
    let clients = Clients::paced_quiet(addr, n, PAUSE, child.pid());
    let report = child.expect("warm", START + Duration::from_millis(n * 50));
    if report.is_err() {
        child.kill();
    }
    let failed = clients.finish();
    report?;
    if failed > 0 {
        return Err(io::Error::other(format!("{failed} connections failed")));
    }
    let clock = threads_named(child.pid(), CLOCK_THREAD);
    child.finish(EXIT)?;
    drop(held);
    Ok(clock)
}

/// Client `mode` (a probe) under callgrind, `n` sequential connects to an uncounted tokio
/// server; its total count.
fn client_ir(mode: &str, n: u64, run: usize, dir: &Path) -> io::Result<u64> {
    let out = dir.join(format!("client-{mode}-{n}-{run}.out"));
    let _ = std::fs::remove_file(&out);
    let never = Counts {
        hold: 0,
        warm: u64::MAX / 4,
        timed: u64::MAX / 4,
    };
    let (_server, addr) = crate::start_server("tokio-1t", never)?;
    let args = [
        "--probe".to_owned(),
        mode.to_owned(),
        addr.port().to_string(),
        n.to_string(),
    ];
    let child = Child::spawn_under(&callgrind(&out), &args)?;
    child.expect("connects", START + Duration::from_millis(n * 50))?;
    child.finish(EXIT)?;
    total(&out)
}

/// The total of a callgrind file: its `totals:` (or `summary:`) line.
fn total(path: &Path) -> io::Result<u64> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .find_map(|line| {
            line.strip_prefix("totals:")
                .or_else(|| line.strip_prefix("summary:"))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|first| first.parse().ok())
        })
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: no totals line", path.display()),
            )
        })
}

/// The targets on instruction ratios.
pub const TARGET_SAME: f64 = 1.05;
pub const TARGET_CROSS: f64 = 1.00;
pub const TARGET_CONNECT: f64 = 1.6;
/// A group of 2 must not cost more per connection than one factory: the same, within the 1%
/// by which one build's counts differ from another's (code layout, allocator state).
pub const TARGET_GROUP: f64 = 1.01;
/// With 10,000 connections held open, against none held.
pub const TARGET_HELD: f64 = 1.05;

impl Instr {
    fn get(&self, mode: &str) -> Option<f64> {
        self.per.get(mode).map(|s| s.median)
    }

    fn range(&self, mode: &str) -> String {
        self.per
            .get(mode)
            .map_or(String::new(), |s| format!("[{:.0}-{:.0}]", s.min, s.max))
    }

    /// (what, its mode, the baseline, its mode, target on the ratio).
    fn comparisons() -> [(&'static str, &'static str, &'static str, &'static str, f64); 5] {
        [
            (
                "server, same thread: factory + owner, 1 Arbiter",
                "factory-same",
                "tokio: accept loop + consumer task, 1 runtime",
                "tokio-1t",
                TARGET_SAME,
            ),
            (
                "server, cross-Arbiter: owner on another",
                "factory-cross",
                "tokio: consumer on a 2nd runtime",
                "tokio-2t",
                TARGET_CROSS,
            ),
            (
                "client connect: a client factory to its owner",
                "connects-factory",
                "tokio: TcpStream::connect",
                "connects-tokio",
                TARGET_CONNECT,
            ),
            (
                "server, FactoryGroup of 2 (owner on a 3rd)",
                "factory-group",
                "one factory, owner on another",
                "factory-cross",
                TARGET_GROUP,
            ),
            (
                "server, cross-Arbiter, connections held open",
                "factory-cross-held",
                "none held",
                "factory-cross",
                TARGET_HELD,
            ),
        ]
    }

    /// The printed table.
    pub fn print(&self) {
        if self.per.is_empty() {
            println!("{}", self.note);
            return;
        }
        println!(
            "user-space instructions per connection (callgrind; from runs of {SMALL} and {LARGE} \
             sequential connections, so start-up cancels; median [min-max] of {} runs; {}):",
            self.runs, self.note
        );
        println!(
            "{:<48} {:>28}   {:<46} {:>28} {:>6} {:>6}",
            "", "instr (syscalls/conn)", "baseline", "instr (syscalls/conn)", "ratio", "target"
        );
        let show = |mode: &str| {
            let calls = self
                .syscalls
                .get(mode)
                .map_or(String::new(), |calls| format!(" ({calls:.2})"));
            let calls = match self.clock_syscalls.get(mode) {
                Some(clock) if *clock > 0.0 => format!("{calls}+"),
                _ => calls,
            };
            self.get(mode).map_or("n/a".to_owned(), |v| {
                format!("{v:.0} {}{calls}", self.range(mode))
            })
        };
        for (what, mode, base, base_mode, target) in Instr::comparisons() {
            let r = ratio(self.get(mode), self.get(base_mode));
            let verdict = match r {
                None => "not measured",
                Some(r) if r <= target => "ok",
                Some(_) => "MISS",
            };
            println!(
                "{what:<48} {:>28}   {base:<46} {:>28} {:>6} {target:>6}  {verdict}",
                show(mode),
                show(base_mode),
                r.map_or("n/a".to_owned(), |r| format!("{r:.3}")),
            );
        }
        let clock: Vec<String> = SYSCALL_SERVERS
            .iter()
            .filter_map(|mode| {
                let clock = self.clock_syscalls.get(mode)?;
                (*clock > 0.0).then(|| format!("{mode} {clock:.3}"))
            })
            .collect();
        if !clock.is_empty() {
            println!(
                "(+: the process's owner-check clock thread made more system calls per connection: \
                 {}; it rings twice a second whatever the traffic, so its calls follow the \
                 run's length, not its connections)",
                clock.join(", ")
            );
        }
        println!(
            "(connections held: {}; callgrind files, for callgrind_annotate: {})",
            self.held,
            self.dir.display()
        );
    }

    /// The JSON keys (absent when not measured).
    pub fn json(&self, json: &mut Json) {
        let round = |v: Option<f64>| v.map(f64::round);
        let keys = [
            ("instr_per_conn_same_thread", "factory-same"),
            ("instr_per_conn_tokio_1t", "tokio-1t"),
            ("instr_per_conn_cross_arbiter", "factory-cross"),
            ("instr_per_conn_tokio_2t", "tokio-2t"),
            ("instr_per_conn_group_2", "factory-group"),
            ("instr_per_connect", "connects-factory"),
            ("instr_per_connect_tokio", "connects-tokio"),
            ("instr_per_conn_cross_arbiter_held", "factory-cross-held"),
        ];
        for (key, mode) in keys {
            json.number(key, round(self.get(mode)));
        }
        let ratios = [
            (
                "instr_ratio_same_thread_tokio_1t",
                "factory-same",
                "tokio-1t",
            ),
            (
                "instr_ratio_cross_arbiter_tokio_2t",
                "factory-cross",
                "tokio-2t",
            ),
            (
                "instr_ratio_connect_tokio",
                "connects-factory",
                "connects-tokio",
            ),
            ("instr_ratio_group_2_vs_1", "factory-group", "factory-cross"),
            (
                "instr_ratio_held_vs_none",
                "factory-cross-held",
                "factory-cross",
            ),
        ];
        for (key, a, b) in ratios {
            json.number(key, ratio(self.get(a), self.get(b)));
        }
        for (key, mode) in [
            ("syscalls_per_conn_same_thread", "factory-same"),
            ("syscalls_per_conn_tokio_1t", "tokio-1t"),
            ("syscalls_per_conn_cross_arbiter", "factory-cross"),
            ("syscalls_per_conn_tokio_2t", "tokio-2t"),
        ] {
            json.number(key, self.syscalls.get(mode).copied());
        }
        for (key, mode) in [
            ("clock_syscalls_per_conn_same_thread", "factory-same"),
            ("clock_syscalls_per_conn_cross_arbiter", "factory-cross"),
        ] {
            json.number(key, self.clock_syscalls.get(mode).copied());
        }
        if self.per.contains_key("factory-cross-held") {
            json.number("instr_held_connections", Some(self.held as f64));
        }
    }
}
