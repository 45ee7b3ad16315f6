//! Side-by-side performance benchmark: this crate's `SocketFactory` against a raw tokio accept
//! loop, a plain actix actor and actix-server. Run with `cargo bench --bench factory`;
//! `cargo bench --bench factory -- --callgrind` makes only the instruction counts (a few
//! minutes; needs valgrind: `apt-get install valgrind`).
//!
//! # Two deployments, two baselines
//! A factory either shares its Arbiter (thread) with its owner, or runs on its own Arbiter with
//! the owner on another. Each is compared with the tokio server doing the same: an accept loop
//! and a consumer task on one current-thread runtime (`factory-same` against `tokio-1t`), or
//! with the consumer on a second runtime and thread (`factory-cross` against `tokio-2t`). The
//! second pays a cross-thread wake-up per connection on both sides; the first pays none.
//!
//! # Instruction counts
//! Times on a shared machine drift with the load; the instructions a process runs do not. When
//! valgrind is present, each server and client also runs under callgrind (see `instr`), and the
//! user-space instructions per accepted connection and per connect are printed and put in the
//! JSON line (`instr_per_conn_*`, `instr_per_connect*`). `BENCH_CALLGRIND=0` skips them.
//!
//! # Method
//! - **One process per server, the load generator in another.** This binary is the load
//!   generator; it re-runs itself as `--server MODE` for each server (see `servers`) and as
//!   `--probe NAME` for the single-process measurements (see `probes`). Children speak one line
//!   at a time on stdout and exit when their stdin closes.
//! - **Closed-loop clients** (`load`): connect, wait for the server's close, close; 1 thread and
//!   64 threads. A global untimed warm-up fills the kernel's TIME_WAIT table first
//!   (`tcp_max_tw_buckets` connections), then every timed run starts a fresh server process,
//!   warms it (untimed), and times `N` connections. Modes are interleaved, in a rotated order,
//!   over `RUNS` runs; medians and min-max are printed. A ratio is the median over runs of the
//!   same run's ratio (the compared jobs run next to each other), so a slow spell of the shared
//!   machine slows both sides of it.
//! - **The clock** runs from the release of the first timed client until the server reports the
//!   `N`th delivery to its consumer. **Server CPU** is the server process's own getrusage
//!   (`RUSAGE_SELF`: user + system, every thread), which the server reads when its warm-up
//!   count is reached (it is idle from then until the first timed connect) and at the `N`th
//!   delivery: that is the timed window exactly, without the start-up or the exit.
//! - Everything runs on 127.0.0.1, every loop is bounded, and a server that does not report in
//!   time is killed (which ends its clients' reads).
//!
//! # Knobs
//! `BENCH_N` (timed connections per run, default 20000), `BENCH_RUNS` (default 5),
//! `BENCH_QUICK=1` (N = 2000, 3 runs, smaller probes: a smoke run of about 30 s);
//! `BENCH_CALLGRIND=0` (no instruction counts), `BENCH_INSTR_RUNS` (runs per instruction figure,
//! default 3), `BENCH_CALLGRIND_DIR` (where the callgrind files are kept), `BENCH_INSTR_ONLY`
//! (comma-separated figures to count, e.g. `factory-same,connects-factory`), `BENCH_PIN_CPU`
//! (the CPU counted processes are pinned to, default the last; `none` to leave them free).
//!
//! The last line on stdout is one JSON object with the figures (a missing key was not measured).

mod child;
mod instr;
mod load;
mod os;
mod probes;
mod servers;
mod stats;

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use child::Child;
use load::Clients;
use servers::Counts;
use stats::{ratio, Json, Spread};

/// The servers compared, in the table's order: the factory beside its owner and the
/// single-thread tokio server; the factory on its own Arbiter and tokio with its consumer on a
/// second runtime; the other actix ways.
const MODES: [&str; 6] = [
    "factory-same",
    "tokio-1t",
    "factory-cross",
    "tokio-2t",
    "actix-actor",
    "actix-server",
];
/// Connections held open while the factory is timed (sequential clients).
const HELD: [u64; 3] = [1, 100, 10_000];
/// Idle listeners per process for the memory figure.
const IDLE: [u64; 2] = [1_000, 10_000];
/// Listeners compared for idle memory: this crate's factory, a tokio listener with its accept
/// task, a plain actix actor with the listener added as a stream.
const IDLE_KINDS: [&str; 3] = ["factory", "tokio", "actix"];
/// The most a server may take to start and say `ready`.
const START_LIMIT: Duration = Duration::from_secs(15);

/// The run's size.
#[derive(Debug, Clone, Copy)]
struct Config {
    timed: u64,
    runs: usize,
    warm: u64,
    fill: u64,
    connect_samples: u64,
    udp_count: u64,
}

impl Config {
    fn from_env() -> Config {
        let number = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
        let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| v != "0" && !v.is_empty());
        let timed = number("BENCH_N")
            .unwrap_or(if quick { 2_000 } else { 20_000 })
            .max(100);
        let runs = number("BENCH_RUNS")
            .unwrap_or(if quick { 3 } else { 5 })
            .max(1) as usize;
        let buckets = os::sysctl("/proc/sys/net/ipv4/tcp_max_tw_buckets")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(timed);
        Config {
            timed,
            runs,
            warm: (timed / 10).max(200),
            fill: if quick { timed } else { buckets.min(150_000) },
            connect_samples: if quick { 500 } else { 5_000 },
            udp_count: if quick { 1_000 } else { 5_000 },
        }
    }

    /// How long a server may take for `count` connections before it is given up on.
    fn limit(&self, count: u64) -> Duration {
        Duration::from_secs(30) + Duration::from_millis(count)
    }
}

/// One timed run: connections per second and server CPU per delivered connection.
#[derive(Debug, Clone, Copy)]
struct Sample {
    rate: f64,
    cpu_us: f64,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("--server") => server_role(&args[1..]),
        Some("--probe") => probe_role(&args[1..]),
        // `cargo bench` passes --bench; `cargo test --all-targets` runs this binary without it.
        _ if args.iter().any(|a| a == "--callgrind") => callgrind_only(),
        _ if args.iter().any(|a| a == "--bench") => bench(),
        _ => {
            println!("factory benchmark: not run (use `cargo bench --bench factory`)");
            Ok(())
        }
    };
    if let Err(error) = result {
        eprintln!("factory benchmark: {error}");
        std::process::exit(1);
    }
}

fn server_role(args: &[String]) -> io::Result<()> {
    let (mode, numbers) = args
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "--server MODE H W N"))?;
    let numbers = parse_numbers(numbers)?;
    let [hold, warm, timed] = numbers[..] else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "--server MODE HOLD WARM TIMED",
        ));
    };
    servers::run(mode, Counts { hold, warm, timed })
}

fn probe_role(args: &[String]) -> io::Result<()> {
    let (name, numbers) = args
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "--probe NAME ARGS"))?;
    probes::run(name, &parse_numbers(numbers)?)
}

fn parse_numbers(words: &[String]) -> io::Result<Vec<u64>> {
    words
        .iter()
        .map(|w| {
            w.parse()
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("bad {w:?}")))
        })
        .collect()
}

/// Starts server `mode` and returns it with the address it listens on.
pub(crate) fn start_server(mode: &str, counts: Counts) -> io::Result<(Child, SocketAddr)> {
    let child = Child::spawn(&[
        "--server".to_owned(),
        mode.to_owned(),
        counts.hold.to_string(),
        counts.warm.to_string(),
        counts.timed.to_string(),
    ])?;
    let port = child.expect_numbers("ready", START_LIMIT)?;
    let port = port.first().copied().unwrap_or(0.0) as u16;
    Ok((child, SocketAddr::from((Ipv4Addr::LOCALHOST, port))))
}

/// Runs `count` closed-loop connections on `threads` threads and waits for the server's `tag`
/// report (its CPU time then). A server that does not report in time is killed, so the clients'
/// reads end and this returns.
fn drive(
    child: &mut Child,
    addr: SocketAddr,
    count: u64,
    threads: usize,
    tag: &str,
    limit: Duration,
) -> io::Result<(Duration, f64)> {
    let clients = Clients::start(addr, count, threads);
    let report = child.expect_numbers(tag, limit);
    let elapsed = clients.started.elapsed();
    if report.is_err() {
        child.kill();
    }
    let failed = clients.finish();
    let report = report?;
    if failed > 0 {
        eprintln!("  ({failed} connections failed)");
    }
    Ok((elapsed, report.iter().sum()))
}

/// One fresh server process: hold, warm up, then the timed window.
fn timed_run(mode: &str, hold: u64, threads: usize, config: &Config) -> io::Result<Sample> {
    let counts = Counts {
        hold,
        warm: config.warm,
        timed: config.timed,
    };
    let (mut child, addr) = start_server(mode, counts)?;
    let held = load::hold(addr, hold)?;
    if hold > 0 {
        child.expect("held", config.limit(hold))?;
    }
    let (_, warm_cpu) = drive(
        &mut child,
        addr,
        config.warm,
        threads,
        "warm",
        config.limit(config.warm),
    )?;
    let (elapsed, done_cpu) = drive(
        &mut child,
        addr,
        config.timed,
        threads,
        "done",
        config.limit(config.timed),
    )?;
    drop(child);
    drop(held);
    Ok(Sample {
        rate: config.timed as f64 / elapsed.as_secs_f64(),
        cpu_us: (done_cpu - warm_cpu) / config.timed as f64,
    })
}

/// What one timed run is: the server, connections held, client threads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Job {
    mode: &'static str,
    hold: u64,
    threads: usize,
}

impl Job {
    fn label(&self) -> String {
        let clients = if self.threads == 1 {
            "1 (seq)".to_owned()
        } else {
            format!("{}", self.threads)
        };
        if self.hold > 0 {
            format!("{:<14} {:<8} held {}", self.mode, clients, self.hold)
        } else {
            format!("{:<14} {:<8}", self.mode, clients)
        }
    }
}

/// The timed runs of one round, in an order that puts the pairs compared side by side (factory
/// next to tokio, held next to none, one factory next to two), so a slow spell of the machine
/// hits both sides of a ratio.
fn jobs(hold_max: u64) -> Vec<Job> {
    let mut jobs = vec![
        job("factory-same", 1, 0),
        job("tokio-1t", 1, 0),
        job("tokio-2t", 1, 0),
        job("factory-cross", 1, 0),
    ];
    for hold in HELD.into_iter().filter(|&h| h <= hold_max) {
        jobs.push(job("factory-cross", 1, hold));
    }
    jobs.extend(MODES[4..].iter().map(|mode| job(mode, 1, 0)));
    jobs.push(job("factory-group", 64, 0));
    jobs.extend(MODES.iter().map(|mode| job(mode, 64, 0)));
    jobs
}

/// Connect latency, UDP rate and idle memory, each from its own child process.
#[derive(Debug, Default)]
struct Probes {
    /// p50 and p99 (us) of the factory, tokio's connect, and a plain actix actor.
    connect: Option<[f64; 6]>,
    udp_factory: Option<Spread>,
    udp_socket2: Option<Spread>,
    /// (kind, count) -> bytes per listener.
    idle: HashMap<(&'static str, u64), f64>,
}

fn run_probes(config: &Config, nofile: u64) -> Probes {
    let mut probes = Probes::default();
    eprintln!(
        "probe: connect latency ({} samples each)",
        config.connect_samples
    );
    match connect_probe(config) {
        Ok(figures) => probes.connect = Some(figures),
        Err(error) => eprintln!("  connect latency: {error}"),
    }
    eprintln!("probe: UDP creation ({} sockets x 5)", config.udp_count);
    match probe(
        &["udp", &config.udp_count.to_string(), "5"],
        "udp",
        Duration::from_secs(60),
    ) {
        Ok(rates) => {
            let factory: Vec<f64> = rates.iter().step_by(2).copied().collect();
            let plain: Vec<f64> = rates.iter().skip(1).step_by(2).copied().collect();
            probes.udp_factory = Spread::of(&factory);
            probes.udp_socket2 = Spread::of(&plain);
        }
        Err(error) => eprintln!("  UDP: {error}"),
    }
    for count in IDLE {
        // Every listener is a descriptor: leave room for the runtime's own.
        if count + 100 > nofile {
            eprintln!("  idle x{count}: skipped, RLIMIT_NOFILE is {nofile}");
            continue;
        }
        for kind in IDLE_KINDS {
            eprintln!("probe: {count} idle {kind} listeners");
            let name = format!("idle-{kind}");
            match probe(
                &[&name, &count.to_string()],
                "idle",
                Duration::from_secs(60),
            ) {
                Ok(rss) if rss.len() == 2 => {
                    probes
                        .idle
                        .insert((kind, count), (rss[1] - rss[0]) / count as f64);
                }
                Ok(_) => eprintln!("  idle {kind}: bad report"),
                Err(error) => eprintln!("  idle {kind}: {error}"),
            }
        }
    }
    probes
}

fn probe(args: &[&str], tag: &str, limit: Duration) -> io::Result<Vec<f64>> {
    let mut all = vec!["--probe".to_owned()];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    Child::spawn(&all)?.expect_numbers(tag, limit)
}

/// The listener for the connect probe is the raw tokio server, in its own process.
fn connect_probe(config: &Config) -> io::Result<[f64; 6]> {
    let never = Counts {
        hold: 0,
        warm: u64::MAX / 4,
        timed: u64::MAX / 4,
    };
    let (_server, addr) = start_server("tokio-2t", never)?;
    let figures = probe(
        &[
            "connect",
            &addr.port().to_string(),
            &config.connect_samples.to_string(),
        ],
        "connect",
        Duration::from_secs(120),
    )?;
    figures
        .try_into()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "connect: bad report"))
}

fn bench() -> io::Result<()> {
    let began = Instant::now();
    let config = Config::from_env();
    let nofile = os::raise_nofile();
    let (cpu, cpus) = machine_line();
    let load = os::sysctl("/proc/loadavg").unwrap_or_default();
    if load
        .split_whitespace()
        .next()
        .and_then(|l| l.parse::<f64>().ok())
        .is_some_and(|l| l > 0.5)
    {
        eprintln!("note: load average {load}: other work on this machine will add noise");
    }
    let hold_max = nofile.saturating_sub(1_000);
    eprintln!(
        "factory benchmark: N={} x {} runs, warm-up {} per server, TIME_WAIT fill {}; {cpu}",
        config.timed, config.runs, config.warm, config.fill
    );

    eprintln!("warm-up: {} connections (untimed)", config.fill);
    {
        let (mut child, addr) = start_server(
            "tokio-2t",
            Counts {
                hold: 0,
                warm: config.fill,
                timed: u64::MAX / 4,
            },
        )?;
        drive(
            &mut child,
            addr,
            config.fill,
            64,
            "warm",
            config.limit(config.fill),
        )?;
    }

    let jobs = jobs(hold_max);
    let mut samples: HashMap<Job, Vec<Option<Sample>>> = HashMap::new();
    for run in 0..config.runs {
        // Rotate the order each run, so no mode always follows the same one.
        let shift = run * 5 % jobs.len();
        for job in jobs[shift..].iter().chain(&jobs[..shift]) {
            match timed_run(job.mode, job.hold, job.threads, &config) {
                Ok(sample) => {
                    eprintln!(
                        "run {}/{}: {}  {:>8.0} conn/s  {:>6.2} us CPU/conn",
                        run + 1,
                        config.runs,
                        job.label(),
                        sample.rate,
                        sample.cpu_us
                    );
                    samples.entry(job.clone()).or_default().push(Some(sample));
                }
                Err(error) => {
                    eprintln!("run {}: {}: {error}", run + 1, job.label());
                    samples.entry(job.clone()).or_default().push(None);
                }
            }
        }
    }
    let probes = run_probes(&config, nofile);
    let instr = if std::env::var("BENCH_CALLGRIND").is_ok_and(|v| v == "0") {
        instr::Instr {
            note: "instruction counts: skipped (BENCH_CALLGRIND=0)".to_owned(),
            ..instr::Instr::default()
        }
    } else {
        instr::run()
    };
    let figures = Figures::new(&samples, &probes);
    print_tables(&config, &jobs, &samples, &probes, &figures, &cpu);
    instr.print();
    println!();
    println!("(whole run: {:.0} s)", began.elapsed().as_secs_f64());
    let mut json = figures.json(&config, &cpu, cpus);
    instr.json(&mut json);
    println!("{}", json.line());
    Ok(())
}

/// `-- --callgrind`: the instruction counts alone, their table and a JSON line.
fn callgrind_only() -> io::Result<()> {
    let (machine, cpus) = machine_line();
    eprintln!("factory benchmark, instruction counts only: {machine}");
    let instr = instr::run();
    println!();
    println!("actix-socket-factory instruction counts: {machine}");
    println!();
    instr.print();
    let mut json = Json::default();
    instr.json(&mut json);
    json.number("cpus", Some(cpus as f64));
    json.string("machine", &machine);
    println!("{}", json.line());
    if instr.per.is_empty() && !instr.note.contains("skipped") {
        return Err(io::Error::other("no instruction count could be made"));
    }
    Ok(())
}

fn machine_line() -> (String, usize) {
    let (model, cpus) = os::machine();
    let kernel = os::sysctl("/proc/sys/kernel/osrelease").unwrap_or_default();
    (format!("{model}, {cpus} CPUs, Linux {kernel}"), cpus)
}

/// Medians of one job's runs.
fn spread_of(samples: &Samples, job: &Job, pick: fn(&Sample) -> f64) -> Option<Spread> {
    samples
        .get(job)
        .and_then(|runs| Spread::of(&runs.iter().flatten().map(pick).collect::<Vec<_>>()))
}

/// The median over runs of `a / b`, each run's `a` divided by the same run's `b`: a paired
/// ratio, so that a slow spell of the shared machine, which slows both, cancels out.
fn paired(samples: &Samples, a: &Job, b: &Job, pick: fn(&Sample) -> f64) -> Option<f64> {
    let (a, b) = (samples.get(a)?, samples.get(b)?);
    let ratios: Vec<f64> = a
        .iter()
        .zip(b)
        .filter_map(|(a, b)| ratio(a.as_ref().map(pick), b.as_ref().map(pick)))
        .collect();
    Spread::of(&ratios).map(|s| s.median)
}

/// Every run of every job, in run order (`None` for a run that failed).
type Samples = HashMap<Job, Vec<Option<Sample>>>;

fn job(mode: &'static str, threads: usize, hold: u64) -> Job {
    Job {
        mode,
        hold,
        threads,
    }
}

/// The ratios the issue sets targets for, with the figures behind them.
struct Figures {
    rows: Vec<(&'static str, Option<f64>, Option<f64>, bool)>,
    json: Vec<(&'static str, Option<f64>)>,
}

impl Figures {
    fn new(samples: &Samples, probes: &Probes) -> Figures {
        let cpu = |mode, threads, hold| {
            spread_of(samples, &job(mode, threads, hold), |s| s.cpu_us).map(|s| s.median)
        };
        let rate = |mode, threads| {
            spread_of(samples, &job(mode, threads, 0), |s| s.rate).map(|s| s.median)
        };
        let connect = probes.connect;
        let pick = |i: usize| connect.map(|c| c[i]);
        let idle = |kind, count| probes.idle.get(&(kind, count)).copied();
        let per_factory = idle("factory", 10_000).or(idle("factory", 1_000));
        let per_tokio = idle("tokio", 10_000).or(idle("tokio", 1_000));

        let cpu_of = |s: &Sample| s.cpu_us;
        let rate_of = |s: &Sample| s.rate;
        let pair = |a: &'static str, b: &'static str, threads, pick: fn(&Sample) -> f64| {
            paired(samples, &job(a, threads, 0), &job(b, threads, 0), pick)
        };
        let same_seq = pair("factory-same", "tokio-1t", 1, cpu_of);
        let same_c64 = pair("factory-same", "tokio-1t", 64, cpu_of);
        let cross_seq = pair("factory-cross", "tokio-2t", 1, cpu_of);
        let cross_c64 = pair("factory-cross", "tokio-2t", 64, cpu_of);
        let cpu_actix_server = pair("factory-cross", "actix-server", 64, cpu_of);
        let accept = pair("factory-cross", "tokio-2t", 64, rate_of);
        let accept_same = pair("factory-same", "tokio-1t", 64, rate_of);
        let held_vs_none = |hold| {
            paired(
                samples,
                &job("factory-cross", 1, hold),
                &job("factory-cross", 1, 0),
                cpu_of,
            )
        };
        let held = held_vs_none(10_000);
        let multicore = pair("factory-group", "factory-cross", 64, rate_of);
        let p50 = ratio(pick(0), pick(2));
        let p99 = ratio(pick(1), pick(3));
        let at_most = |v: Option<f64>, t: f64| v.is_some_and(|v| v <= t);
        let row = |name, value: Option<f64>, target: f64| {
            (name, value, Some(target), at_most(value, target))
        };
        let rows = vec![
            row(
                "same thread: CPU/conn vs tokio 1 runtime, 1 client",
                same_seq,
                1.05,
            ),
            row(
                "same thread: CPU/conn vs tokio 1 runtime, 64 clients",
                same_c64,
                1.0,
            ),
            row(
                "cross-Arbiter: CPU/conn vs tokio 2 runtimes, 1 client",
                cross_seq,
                1.05,
            ),
            row(
                "cross-Arbiter: CPU/conn vs tokio 2 runtimes, 64 clients",
                cross_c64,
                1.0,
            ),
            row(
                "cross-Arbiter: CPU/conn vs actix-server, 64 clients",
                cpu_actix_server,
                0.85,
            ),
            (
                "cross-Arbiter: accept rate vs tokio 2 runtimes, 64 clients (>=)",
                accept,
                Some(0.97),
                accept.is_some_and(|v| v >= 0.97),
            ),
            row("connect p50 vs tokio", p50, 1.05),
            row("connect p99 vs tokio", p99, 1.2),
            row("bytes per idle factory", per_factory, 2048.0),
            row("cross-Arbiter: CPU/conn, 10000 held vs none", held, 1.1),
            (
                "accept rate, 2 factories vs 1 (64 clients)",
                multicore,
                None,
                true,
            ),
        ];
        let json = vec![
            ("cpu_per_conn_ratio_same_thread_seq", same_seq),
            ("cpu_per_conn_ratio_same_thread_c64", same_c64),
            ("cpu_per_conn_ratio_cross_arbiter_seq", cross_seq),
            ("cpu_per_conn_ratio_cross_arbiter_c64", cross_c64),
            ("accept_ratio_same_thread_c64", accept_same),
            (
                "cpu_us_per_conn_factory_same_seq",
                cpu("factory-same", 1, 0),
            ),
            ("cpu_us_per_conn_tokio_1t_seq", cpu("tokio-1t", 1, 0)),
            (
                "cpu_us_per_conn_factory_same_c64",
                cpu("factory-same", 64, 0),
            ),
            ("cpu_us_per_conn_tokio_1t_c64", cpu("tokio-1t", 64, 0)),
            // The keys of earlier runs: the factory on its own Arbiter against tokio with two
            // runtimes.
            ("cpu_per_conn_ratio_tokio_seq", cross_seq),
            ("cpu_per_conn_ratio_tokio_c64", cross_c64),
            ("cpu_per_conn_ratio_actix_server_c64", cpu_actix_server),
            ("accept_ratio_tokio_c64", accept),
            ("connect_p50_ratio_tokio", p50),
            ("connect_p99_ratio_tokio", p99),
            ("bytes_per_idle_factory", per_factory.map(f64::round)),
            ("bytes_per_idle_tokio_listener", per_tokio.map(f64::round)),
            ("cpu_per_conn_held_10000_vs_0", held),
            ("multicore_ratio", multicore),
            ("cpu_us_per_conn_factory_seq", cpu("factory-cross", 1, 0)),
            ("cpu_us_per_conn_tokio_seq", cpu("tokio-2t", 1, 0)),
            ("cpu_us_per_conn_factory_c64", cpu("factory-cross", 64, 0)),
            ("cpu_us_per_conn_tokio_c64", cpu("tokio-2t", 64, 0)),
            (
                "cpu_us_per_conn_actix_server_c64",
                cpu("actix-server", 64, 0),
            ),
            (
                "conn_per_s_factory_same_seq",
                rate("factory-same", 1).map(f64::round),
            ),
            (
                "conn_per_s_tokio_1t_seq",
                rate("tokio-1t", 1).map(f64::round),
            ),
            (
                "conn_per_s_factory_seq",
                rate("factory-cross", 1).map(f64::round),
            ),
            ("conn_per_s_tokio_seq", rate("tokio-2t", 1).map(f64::round)),
            (
                "conn_per_s_factory_c64",
                rate("factory-cross", 64).map(f64::round),
            ),
            ("conn_per_s_tokio_c64", rate("tokio-2t", 64).map(f64::round)),
            ("connect_p50_us_factory", pick(0)),
            ("connect_p50_us_tokio", pick(2)),
            ("connect_p99_us_factory", pick(1)),
            ("connect_p99_us_tokio", pick(3)),
            ("connect_p50_us_actix_actor", pick(4)),
            ("connect_p99_us_actix_actor", pick(5)),
            ("connect_p50_ratio_actix_actor", ratio(pick(0), pick(4))),
            (
                "bytes_per_idle_actix_actor",
                idle("actix", 10_000)
                    .or(idle("actix", 1_000))
                    .map(f64::round),
            ),
            (
                "udp_per_s_factory",
                probes.udp_factory.map(|s| s.median.round()),
            ),
            (
                "udp_per_s_socket2",
                probes.udp_socket2.map(|s| s.median.round()),
            ),
            (
                "udp_ratio_socket2",
                ratio(
                    probes.udp_factory.map(|s| s.median),
                    probes.udp_socket2.map(|s| s.median),
                ),
            ),
            ("cpu_per_conn_held_1_vs_0", held_vs_none(1)),
            ("cpu_per_conn_held_100_vs_0", held_vs_none(100)),
        ];
        Figures { rows, json }
    }

    fn json(&self, config: &Config, machine: &str, cpus: usize) -> Json {
        let mut json = Json::default();
        for (key, value) in &self.json {
            json.number(key, *value);
        }
        json.number("n", Some(config.timed as f64));
        json.number("runs", Some(config.runs as f64));
        json.number("cpus", Some(cpus as f64));
        json.string("machine", machine);
        json
    }
}

fn print_tables(
    config: &Config,
    jobs: &[Job],
    samples: &Samples,
    probes: &Probes,
    figures: &Figures,
    machine: &str,
) {
    println!();
    println!(
        "actix-socket-factory benchmark: {machine}; N={} connections per timed run, \
         median [min-max] of {} runs",
        config.timed, config.runs
    );
    println!(
        "factory-same: factory and owner on one Arbiter; tokio-1t: accept loop and consumer task \
         on one runtime"
    );
    println!(
        "factory-cross: factory on its own Arbiter, owner on another; tokio-2t: consumer on a \
         second runtime"
    );
    println!();
    println!(
        "{:<14} {:<8} {:<10} {:>28}   {:>28}",
        "server", "clients", "", "conn/s", "server CPU us/conn"
    );
    for job in jobs {
        let rate = spread_of(samples, job, |s| s.rate);
        let cpu = spread_of(samples, job, |s| s.cpu_us);
        let hold = if job.hold > 0 {
            format!("held {}", job.hold)
        } else {
            String::new()
        };
        let clients = if job.threads == 1 {
            "1 (seq)".to_owned()
        } else {
            job.threads.to_string()
        };
        println!(
            "{:<14} {:<8} {:<10} {:>28}   {:>28}",
            job.mode,
            clients,
            hold,
            rate.map_or("not measured".to_owned(), |s| s.show(0)),
            cpu.map_or("not measured".to_owned(), |s| s.show(2)),
        );
    }
    println!();
    match probes.connect {
        Some([f50, f99, t50, t99, a50, a99]) => println!(
            "connect latency (us, {} samples each): factory p50 {f50:.1} p99 {f99:.1}; tokio \
             connect p50 {t50:.1} p99 {t99:.1}; plain actix actor (tokio connect + message) p50 \
             {a50:.1} p99 {a99:.1}",
            config.connect_samples
        ),
        None => println!("connect latency: not measured"),
    }
    match (probes.udp_factory, probes.udp_socket2) {
        (Some(f), Some(s)) => println!(
            "UDP sockets created and delivered per second: factory {}; socket2 socket+bind {}",
            f.show(0),
            s.show(0)
        ),
        _ => println!("UDP creation: not measured"),
    }
    for count in IDLE {
        let show = |kind| {
            probes
                .idle
                .get(&(kind, count))
                .map_or("not measured".to_owned(), |b| format!("{b:.0} B"))
        };
        println!(
            "RSS per idle listener, {count} in one process: factory {}; tokio listener + accept \
             task {}; plain actix actor {}",
            show("factory"),
            show("tokio"),
            show("actix")
        );
    }
    println!();
    println!(
        "{:<64} {:>8} {:>8}   (run ratios: median over runs of the same run's ratio)",
        "figure", "value", "target"
    );
    for (name, value, target, met) in &figures.rows {
        let value = value.map_or("n/a".to_owned(), |v| format!("{v:.3}"));
        let target = target.map_or("-".to_owned(), |t| format!("{t}"));
        let verdict = if value == "n/a" {
            "not measured"
        } else if *met {
            "ok"
        } else {
            "MISS"
        };
        println!("{name:<64} {value:>8} {target:>8}  {verdict}");
    }

    println!();
}
