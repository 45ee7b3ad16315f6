//! Name look-ups that never hold anything up: the pluggable [`Resolve`] trait, the default
//! [`SystemResolver`] (`getaddrinfo(3)`), and the small process-wide pool of plain threads that
//! runs the blocking look-ups (host names, and the services and protocols databases).
//!
//! # The pool
//! Look-ups run on plain `std` threads (not tokio's blocking pool: an Arbiter's or the System's
//! stop never waits for one). Identical look-ups in flight share one call (as Go's resolver
//! does), so many factories asking for one slow name occupy one thread, not many. A waiter that
//! gives up (its deadline passed, its factory stopped) is taken off the queue at once; a look-up
//! already running cannot be interrupted (`getaddrinfo` has no cancellation), it finishes on its
//! thread and its answer is dropped.
//!
//! # Hung names do not hold healthy ones up
//! [`WORKERS`] look-ups run at once as long as they are quick. One that has run longer than
//! [`STUCK`] is taken as hung (a silent DNS server) and stops counting against that bound: the
//! next queued look-up gets a thread of its own, up to a hard ceiling of [`MAX_THREADS`] threads
//! in the whole process. So a healthy name waits behind hung ones at most about [`STUCK`], unless
//! more than [`MAX_THREADS`] distinct names hang at once; then the rest queue, each bounded by
//! its own deadline. The ceiling bounds what a flood of distinct hung names can cost: threads
//! (each blocked in `getaddrinfo` until the C library's own timeout, `resolv.conf`'s
//! `timeout` × `attempts`), never an unbounded number. Threads beyond [`WORKERS`] end as soon as
//! they find the queue empty; the others after [`IDLE`] idle, so the pool goes back to no
//! thread at all.
//!
//! `localhost` (and `localhost.`, any case) is never looked up: it is the loopback addresses
//! (`::1`, `127.0.0.1`), as RFC 6761 §6.3 asks of name resolution libraries. A host name that no
//! DNS could hold (over 253 bytes, or a label over 63) is refused at once.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::net::netdb;

use crate::desc::resolver::Resolver;
pub use crate::desc::resolver::{Resolve, Resolving};

impl Default for Resolver {
    fn default() -> Self {
        Resolver(Arc::new(SystemResolver))
    }
}

/// The default resolver: the C library's `getaddrinfo(3)`, as any program on the machine
/// resolves (nsswitch.conf, NSS modules, `/etc/hosts`, DNS, RFC 6724 order).
///
/// The blocking calls run on a process-wide pool of plain threads, never on tokio's blocking
/// pool, so no stop waits for them: 4 look-ups at once while they are quick, and one more
/// thread for each that has hung longer than 100 ms, up to 32 threads in all, so a healthy name
/// is not held up by hung ones. Identical names in flight share one call, and a look-up nobody
/// waits for any more is dropped from the queue. `localhost` is answered without a look-up
/// (`::1` and `127.0.0.1`, RFC 6761), and a name longer than DNS allows (253 bytes, labels of 63)
/// fails at once with `InvalidInput`. See [`Resolve`] for what it honours and how it compares
/// with the `hickory` backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, host: &str, port: u16) -> Resolving {
        if is_localhost(host) {
            let found = [
                IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
                IpAddr::from(std::net::Ipv4Addr::LOCALHOST),
            ]
            .into_iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect();
            return Box::pin(std::future::ready(Ok(found)));
        }
        if let Err(reason) = crate::desc::spec::check_host_name(host) {
            let error = io::Error::new(io::ErrorKind::InvalidInput, reason);
            return Box::pin(std::future::ready(Err(error)));
        }
        let waiter = submit(Query::Host(host.to_owned()));
        Box::pin(async move {
            match waiter.wait().await? {
                Answer::Addrs(ips) => Ok(ips
                    .into_iter()
                    .map(|ip| SocketAddr::new(ip, port))
                    .collect()),
                _ => Err(io::Error::other("look-up pool: wrong answer kind")),
            }
        })
    }
}

/// The port of service `name` for `transport` ("tcp" or "udp"), from the services database,
/// read on the pool.
pub(crate) async fn service_port(name: &str, transport: &'static str) -> io::Result<u16> {
    match submit(Query::Service(name.to_owned(), transport))
        .wait()
        .await?
    {
        Answer::Port(port) => Ok(port),
        _ => Err(io::Error::other("look-up pool: wrong answer kind")),
    }
}

/// The number of protocol `name`, from the protocols database, read on the pool.
pub(crate) async fn protocol_number(name: &str) -> io::Result<i32> {
    match submit(Query::Protocol(name.to_owned())).wait().await? {
        Answer::Protocol(number) => Ok(number),
        _ => Err(io::Error::other("look-up pool: wrong answer kind")),
    }
}

/// `localhost`, `localhost.`, in any case: the loopback addresses, never looked up (RFC 6761
/// §6.3).
fn is_localhost(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    host.eq_ignore_ascii_case("localhost")
}

/// The most look-ups running at once in the process while none has hung (run past [`STUCK`]).
pub(crate) const WORKERS: usize = 4;

/// How long a look-up runs before it is taken as hung and no longer counts against
/// [`WORKERS`]. A healthy `getaddrinfo` (files, a cache, a LAN or ISP resolver) answers well
/// within it; a silent DNS server holds it for seconds.
pub(crate) const STUCK: Duration = Duration::from_millis(100);

/// The most pool threads in the process, hung ones included: what a flood of distinct hung
/// names can hold (as Python's default executor caps its threads at 32).
pub(crate) const MAX_THREADS: usize = 32;

/// How long an idle pool thread (one of the first [`WORKERS`]) waits for work before it ends.
pub(crate) const IDLE: Duration = Duration::from_secs(5);

/// One blocking look-up; equal queries in flight share one run.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Query {
    Host(String),
    Service(String, &'static str),
    Protocol(String),
    /// Tests only: a look-up that takes this long, told apart by its number.
    #[cfg(test)]
    Hold(Duration, u32),
}

impl Query {
    fn run(&self) -> io::Result<Answer> {
        match self {
            Query::Host(name) => (name.as_str(), 0)
                .to_socket_addrs()
                .map(|found| Answer::Addrs(found.map(|addr| addr.ip()).collect())),
            Query::Service(name, transport) => {
                netdb::service_port(name, transport).map(Answer::Port)
            }
            Query::Protocol(name) => netdb::protocol_number(name).map(Answer::Protocol),
            #[cfg(test)]
            Query::Hold(time, _) => {
                std::thread::sleep(*time);
                Ok(Answer::Port(0))
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Answer {
    Addrs(Vec<IpAddr>),
    Port(u16),
    Protocol(i32),
}

/// An `io::Error` that can be handed to every waiter of a shared look-up.
#[derive(Debug, Clone)]
struct SharedError {
    kind: io::ErrorKind,
    raw: Option<i32>,
    text: String,
}

impl SharedError {
    fn of(error: &io::Error) -> Self {
        SharedError {
            kind: error.kind(),
            raw: error.raw_os_error(),
            text: error.to_string(),
        }
    }

    fn to_error(&self) -> io::Error {
        match self.raw {
            Some(raw) => io::Error::from_raw_os_error(raw),
            None => io::Error::new(self.kind, self.text.clone()),
        }
    }
}

type Outcome = Result<Answer, SharedError>;

/// A look-up queued or running, and who waits for it.
struct Job {
    waiters: Vec<(u64, oneshot::Sender<Outcome>)>,
    /// When a thread took it; `None` while queued.
    running: Option<Instant>,
}

#[derive(Default)]
struct State {
    jobs: HashMap<Query, Job>,
    queue: VecDeque<Query>,
    /// Threads of the pool, hung ones included (at most [`MAX_THREADS`]).
    workers: usize,
    /// Whether a watcher thread is there (see [`watch`]).
    watching: bool,
    idle: usize,
    next_id: u64,
}

#[derive(Default)]
struct Pool {
    state: Mutex<State>,
    work: Condvar,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(Pool::default)
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing run under the lock can panic half-way through an update.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    /// Running look-ups that have hung (run longer than [`STUCK`]).
    fn hung(&self) -> usize {
        let now = Instant::now();
        self.jobs
            .values()
            .filter_map(|job| job.running)
            .filter(|since| now.saturating_duration_since(*since) >= STUCK)
            .count()
    }

    /// How long until the next running look-up that has not hung yet will have.
    fn next_hang(&self) -> Option<Duration> {
        let now = Instant::now();
        self.jobs
            .values()
            .filter_map(|job| job.running)
            .map(|since| STUCK.saturating_sub(now.saturating_duration_since(since)))
            .filter(|left| !left.is_zero())
            .min()
    }
}

/// The watcher: a thread started when look-ups are queued while [`WORKERS`] threads are busy
/// with look-ups that have not hung (yet). It sleeps until the next of them has run [`STUCK`],
/// and once fewer than [`WORKERS`] threads besides itself are not hung, it becomes a worker
/// for the queue (and another watcher starts if the queue still needs one). It ends when the
/// queue is empty. At most one at a time, within [`MAX_THREADS`].
fn watch() {
    let pool = pool();
    loop {
        let mut state = pool.lock();
        if state.queue.len() <= state.idle {
            state.watching = false;
            state.workers -= 1;
            return;
        }
        // Besides this thread.
        let active = state.workers.saturating_sub(state.hung() + 1);
        if active < WORKERS {
            state.watching = false;
            spawn_if_room(&mut state);
            drop(state);
            return work();
        }
        let nap = state.next_hang().unwrap_or(Duration::from_millis(10));
        drop(state);
        std::thread::sleep(nap.max(Duration::from_millis(1)));
    }
}

/// A waiter for one look-up: removes itself (and the queued look-up, when it was the last
/// waiter) when dropped.
struct Waiter {
    query: Query,
    id: u64,
    answer: oneshot::Receiver<Outcome>,
}

impl Waiter {
    async fn wait(mut self) -> io::Result<Answer> {
        match (&mut self.answer).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(error)) => Err(error.to_error()),
            Err(_) => Err(io::Error::other(
                "the look-up thread ended without an answer",
            )),
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let mut state = pool().lock();
        let Some(job) = state.jobs.get_mut(&self.query) else {
            return;
        };
        job.waiters.retain(|(id, _)| *id != self.id);
        if job.waiters.is_empty() && job.running.is_none() {
            state.jobs.remove(&self.query);
            let query = &self.query;
            state.queue.retain(|queued| queued != query);
        }
    }
}

fn submit(query: Query) -> Waiter {
    let pool = pool();
    let (tx, rx) = oneshot::channel();
    let mut state = pool.lock();
    let id = state.next_id;
    state.next_id += 1;
    let waiter = Waiter {
        query: query.clone(),
        id,
        answer: rx,
    };
    if let Some(job) = state.jobs.get_mut(&query) {
        job.waiters.push((id, tx));
        return waiter;
    }
    state.jobs.insert(
        query.clone(),
        Job {
            waiters: vec![(id, tx)],
            running: None,
        },
    );
    state.queue.push_back(query);
    if state.idle > 0 {
        pool.work.notify_one();
    }
    spawn_if_room(&mut state);
    waiter
}

/// Starts a thread for the queue when it needs one and the bounds allow: a worker while fewer
/// than [`WORKERS`] threads are not hung, else one watcher (see [`watch`]), never more than
/// [`MAX_THREADS`] in all.
///
/// An idle thread counts as idle until it has taken the lock again: more queued look-ups than
/// idle threads means one more thread, never a look-up left behind a slow one while the pool has
/// room.
fn spawn_if_room(state: &mut State) {
    if state.queue.len() <= state.idle || state.workers >= MAX_THREADS {
        return;
    }
    let watcher = state.workers.saturating_sub(state.hung()) >= WORKERS;
    if watcher && state.watching {
        return;
    }
    state.workers += 1;
    state.watching |= watcher;
    let spawned = std::thread::Builder::new()
        .name("socket-factory-lookup".into())
        .spawn(move || if watcher { watch() } else { work() });
    if let Err(error) = spawned {
        state.workers -= 1;
        state.watching &= !watcher;
        if state.workers.saturating_sub(state.hung()) == 0 {
            // No thread to run it but hung ones: every queued look-up fails now rather than
            // wait in vain.
            let shared = SharedError::of(&error);
            let queued: Vec<Query> = state.queue.drain(..).collect();
            for query in queued {
                if let Some(job) = state.jobs.remove(&query) {
                    for (_, tx) in job.waiters {
                        let _ = tx.send(Err(shared.clone()));
                    }
                }
            }
        }
    }
}

/// A pool thread: runs queued look-ups until idle for [`IDLE`] (at once, beyond [`WORKERS`]).
fn work() {
    let pool = pool();
    let mut state = pool.lock();
    loop {
        let Some(query) = state.queue.pop_front() else {
            if state.workers > WORKERS {
                // An extra thread, started because others hung: gone as soon as it is not needed.
                state.workers -= 1;
                return;
            }
            state.idle += 1;
            let (next, timeout) = pool
                .work
                .wait_timeout(state, IDLE)
                .unwrap_or_else(PoisonError::into_inner);
            state = next;
            state.idle -= 1;
            if timeout.timed_out() && state.queue.is_empty() {
                state.workers -= 1;
                return;
            }
            continue;
        };
        let Some(job) = state.jobs.get_mut(&query) else {
            continue;
        };
        job.waiters.retain(|(_, tx)| !tx.is_closed());
        if job.waiters.is_empty() {
            state.jobs.remove(&query);
            continue;
        }
        job.running = Some(Instant::now());
        // The rest of the queue may need another thread (a worker, or the watcher).
        spawn_if_room(&mut state);
        drop(state);
        let outcome = std::panic::catch_unwind(|| query.run())
            .unwrap_or_else(|_| Err(io::Error::other("the look-up panicked")))
            .map_err(|error| SharedError::of(&error));
        state = pool.lock();
        if let Some(job) = state.jobs.remove(&query) {
            for (_, tx) in job.waiters {
                let _ = tx.send(outcome.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued() -> usize {
        pool().lock().queue.len()
    }

    fn workers() -> usize {
        pool().lock().workers
    }

    /// The pool's bounds, in one test (the pool is process-wide): waiters that give up take
    /// their queued look-ups with them, identical look-ups share one run, a look-up is not held
    /// up by hung ones, and never more than MAX_THREADS threads, back to at most WORKERS once
    /// the hung ones are over.
    #[test]
    fn bounded_queue_dropped_with_its_waiters_shared_runs_and_a_lane_past_hung_ones() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let hold = Duration::from_millis(1500);
            // Saturate the pool's quick lanes.
            let busy: Vec<Waiter> = (0..WORKERS as u32)
                .map(|n| submit(Query::Hold(hold, n)))
                .collect();
            let until = crate::desc::time::soon_after(Duration::from_secs(5));
            while queued() > 0 && tokio::time::Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            assert_eq!(queued(), 0, "the busy ones run");
            // Abandoned look-ups beyond it: gone with their waiters.
            let abandoned: Vec<Waiter> = (0..100)
                .map(|n| submit(Query::Hold(hold, 1000 + n)))
                .collect();
            assert!(workers() <= MAX_THREADS);
            drop(abandoned);
            assert_eq!(queued(), 0, "dropped waiters leave nothing queued");
            // Once the busy ones have hung, a quick look-up gets a thread past them.
            tokio::time::sleep(STUCK + Duration::from_millis(20)).await;
            let started = std::time::Instant::now();
            let quick = tokio::time::timeout(
                Duration::from_secs(1),
                submit(Query::Hold(Duration::ZERO, 2000)).wait(),
            )
            .await;
            assert!(matches!(quick, Ok(Ok(Answer::Port(0)))), "{quick:?}");
            assert!(started.elapsed() < Duration::from_secs(1));
            // Identical look-ups share one job.
            let twins: Vec<Waiter> = (0..50).map(|_| submit(Query::Hold(hold, 3000))).collect();
            assert_eq!(
                pool().lock().jobs[&Query::Hold(hold, 3000)].waiters.len(),
                50
            );
            // A flood of distinct hung look-ups: never more than MAX_THREADS threads.
            let flood: Vec<Waiter> = (0..MAX_THREADS as u32 + 10)
                .map(|n| submit(Query::Hold(hold, 4000 + n)))
                .collect();
            let mut most = 0;
            for _ in 0..50 {
                most = most.max(workers());
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert!(most <= MAX_THREADS, "{most} threads");
            assert!(most > WORKERS, "the hung ones did not make room: {most}");
            for waiter in busy.into_iter().chain(twins).chain(flood) {
                assert!(matches!(waiter.wait().await, Ok(Answer::Port(0))));
            }
            let until = crate::desc::time::soon_after(Duration::from_secs(5));
            while workers() > WORKERS && tokio::time::Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            assert!(workers() <= WORKERS, "{} threads left", workers());
        });
    }
}
