//! Name look-ups that never hold anything up: the pluggable [`Resolve`] trait, the default
//! [`SystemResolver`] (`getaddrinfo(3)`), and the small process-wide pool of plain threads that
//! runs the blocking look-ups (host names, and the services and protocols databases).
//!
//! # The pool
//! At most [`WORKERS`] look-ups run at once in the whole process, each on a plain `std` thread
//! (not tokio's blocking pool: an Arbiter's or the System's stop never waits for one). Beyond
//! that, look-ups wait in a queue. Identical look-ups in flight share one call (as Go's resolver
//! does), so many factories asking for one slow name occupy one thread, not many. A waiter that
//! gives up (its deadline passed, its factory stopped) is taken off the queue at once; a look-up
//! already running cannot be interrupted (`getaddrinfo` has no cancellation), it finishes on its
//! thread and its answer is dropped. Idle threads end after [`IDLE`].

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

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
/// The blocking calls run on a process-wide pool of at most 4 plain threads, never on tokio's
/// blocking pool, so no stop waits for them; identical names in flight share one call, and
/// a look-up nobody waits for any more is dropped from the queue. See [`Resolve`] for what it
/// honours and how it compares with the `hickory` backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, host: &str, port: u16) -> Resolving {
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

/// The most look-ups running at once in the process.
pub(crate) const WORKERS: usize = 4;

/// How long an idle pool thread waits for work before it ends.
pub(crate) const IDLE: Duration = Duration::from_secs(20);

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
    running: bool,
}

#[derive(Default)]
struct State {
    jobs: HashMap<Query, Job>,
    queue: VecDeque<Query>,
    workers: usize,
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
        if job.waiters.is_empty() && !job.running {
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
            running: false,
        },
    );
    state.queue.push_back(query);
    if state.idle > 0 {
        pool.work.notify_one();
    }
    // An idle thread counts as idle until it has taken the lock again: more queued look-ups than
    // idle threads means one more thread (up to the cap), never a look-up left behind a slow one
    // while the pool has room.
    if state.queue.len() > state.idle && state.workers < WORKERS {
        state.workers += 1;
        let spawned = std::thread::Builder::new()
            .name("socket-factory-lookup".into())
            .spawn(work);
        if let Err(error) = spawned {
            state.workers -= 1;
            if state.workers == 0 {
                // No thread to run it: every queued look-up fails now rather than wait in vain.
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
    waiter
}

/// A pool thread: runs queued look-ups until idle for [`IDLE`].
fn work() {
    let pool = pool();
    let mut state = pool.lock();
    loop {
        let Some(query) = state.queue.pop_front() else {
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
        job.running = true;
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

    /// The pool's bounds, in one test (the pool is process-wide): never more than WORKERS
    /// threads, waiters that give up take their queued look-ups with them, identical look-ups
    /// share one run.
    #[test]
    fn bounded_queue_dropped_with_its_waiters_and_shared_runs() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let hold = Duration::from_millis(400);
            // Saturate the pool.
            let busy: Vec<Waiter> = (0..WORKERS as u32)
                .map(|n| submit(Query::Hold(hold, n)))
                .collect();
            let until = std::time::Instant::now() + Duration::from_secs(5);
            while queued() > 0 && std::time::Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            assert_eq!(queued(), 0, "the busy ones run");
            // Abandoned look-ups beyond it: queued, then gone with their waiters.
            let abandoned: Vec<Waiter> = (0..100)
                .map(|n| submit(Query::Hold(hold, 1000 + n)))
                .collect();
            assert!(pool().lock().workers <= WORKERS);
            assert_eq!(queued(), 100);
            drop(abandoned);
            assert_eq!(queued(), 0, "dropped waiters leave nothing queued");
            // A waiter whose deadline passes in the queue is dropped too.
            let late = tokio::time::timeout(
                Duration::from_millis(50),
                submit(Query::Hold(Duration::ZERO, 2000)).wait(),
            )
            .await;
            assert!(late.is_err(), "queued behind the busy ones");
            assert_eq!(queued(), 0);
            // Identical look-ups share one job.
            let twins: Vec<Waiter> = (0..50).map(|_| submit(Query::Hold(hold, 3000))).collect();
            assert_eq!(queued(), 1);
            assert_eq!(
                pool().lock().jobs[&Query::Hold(hold, 3000)].waiters.len(),
                50
            );
            for waiter in busy {
                assert!(matches!(waiter.wait().await, Ok(Answer::Port(0))));
            }
            for waiter in twins {
                assert!(matches!(waiter.wait().await, Ok(Answer::Port(0))));
            }
            assert!(pool().lock().workers <= WORKERS);
        });
    }
}
