//! The load generator: closed-loop clients in this (the parent) process.
//!
//! A client connects, waits for the server to close (read returns 0), closes, and starts over.
//! Its only bound is the server: the parent kills a server that does not report in time, which
//! closes every connection and so ends every read.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Attempts per connection before a client gives up on it (a refused or reset connect).
const ATTEMPTS: usize = 3;

/// Closed-loop clients under way.
pub struct Clients {
    threads: Vec<JoinHandle<u64>>,
    /// When the clients were released: the start of the timed window.
    pub started: Instant,
}

impl Clients {
    /// Starts `threads` clients making `total` connections between them, all released at once.
    pub fn start(addr: SocketAddr, total: u64, threads: usize) -> Clients {
        Clients::paced(addr, total, threads, Duration::ZERO)
    }

    /// Like [`start`](Self::start), each client pausing `pause` after each connection: long
    /// enough for the server to go idle again, so every connection finds it parked.
    pub fn paced(addr: SocketAddr, total: u64, threads: usize, pause: Duration) -> Clients {
        let threads = threads.max(1);
        let gate = Arc::new(Barrier::new(threads + 1));
        let handles = (0..threads)
            .map(|i| {
                let share = total / threads as u64 + u64::from((i as u64) < total % threads as u64);
                let gate = Arc::clone(&gate);
                std::thread::spawn(move || {
                    gate.wait();
                    (0..share)
                        .filter(|_| {
                            let made = one_connection(addr);
                            if !pause.is_zero() {
                                std::thread::sleep(pause);
                            }
                            !made
                        })
                        .count() as u64
                })
            })
            .collect();
        gate.wait();
        Clients {
            threads: handles,
            started: Instant::now(),
        }
    }

    /// One client making `total` connections, each after the server process `pid` has gone
    /// quiet again (see [`wait_quiet`]) and `pause` more: every connection finds the server's
    /// threads parked however slowly the shared machine lets it get there, so its count of
    /// wake-ups (and of instructions) does not move with the load.
    pub fn paced_quiet(addr: SocketAddr, total: u64, pause: Duration, pid: u32) -> Clients {
        let thread = std::thread::spawn(move || {
            let mut quiet = Quiet::new(pid);
            (0..total)
                .filter(|_| {
                    quiet.wait();
                    std::thread::sleep(pause);
                    !one_connection(addr)
                })
                .count() as u64
        });
        Clients {
            threads: vec![thread],
            started: Instant::now(),
        }
    }

    /// Waits for every client; the number of connections that failed.
    pub fn finish(self) -> u64 {
        self.threads
            .into_iter()
            .map(|thread| thread.join().unwrap_or(u64::MAX))
            .sum()
    }
}

/// One closed-loop connection; false when it could not be made.
fn one_connection(addr: SocketAddr) -> bool {
    for _ in 0..ATTEMPTS {
        if let Ok(mut stream) = TcpStream::connect(addr) {
            let mut byte = [0u8; 1];
            // The server closes without writing: 0 bytes read is its close.
            return matches!(stream.read(&mut byte), Ok(0));
        }
    }
    false
}

/// `count` connections opened one after another and kept open by the caller.
pub fn hold(addr: SocketAddr, count: u64) -> std::io::Result<Vec<TcpStream>> {
    (0..count).map(|_| TcpStream::connect(addr)).collect()
}

/// Like [`hold`], each connect made once the server process `pid` is quiet again (see
/// [`wait_quiet`]) and `pause` more, so the server takes them one at a time, the same way in
/// every run, rather than in bursts whose size follows the machine's load (with 10,000 held,
/// a 1% change in how they are taken would move the per-connection figure by 10%).
pub fn hold_paced(
    addr: SocketAddr,
    count: u64,
    pause: Duration,
    pid: u32,
) -> std::io::Result<Vec<TcpStream>> {
    let mut quiet = Quiet::new(pid);
    (0..count)
        .map(|_| {
            quiet.wait();
            std::thread::sleep(pause);
            TcpStream::connect(addr)
        })
        .collect()
}

/// The longest a client waits for the server to go quiet; a server that never does (a stuck
/// one, say) is then paced by the fixed pause alone, and the parent's time limit applies.
const QUIET_LIMIT: Duration = Duration::from_secs(2);

/// Waiting for a server process to go quiet, until it once fails to within the limit.
struct Quiet {
    pid: u32,
    gave_up: bool,
}

impl Quiet {
    fn new(pid: u32) -> Quiet {
        Quiet {
            pid,
            gave_up: false,
        }
    }

    fn wait(&mut self) {
        if !self.gave_up && !wait_quiet(self.pid, QUIET_LIMIT) {
            eprintln!(
                "  (server {} never went quiet: paced by time alone)",
                self.pid
            );
            self.gave_up = true;
        }
    }
}

/// Waits until no thread of process `pid` is running or waiting for a CPU (state `R` in
/// `/proc/PID/task/*/stat`) at two looks 100 us apart, or `limit` has passed. A thread kept
/// off the CPU by other load stays `R`, so this waits for the server to finish its work, not
/// for a fixed time that the machine's load may not honour.
/// False when `limit` passed first.
pub fn wait_quiet(pid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut quiet_before = false;
    while Instant::now() < deadline {
        let quiet = !any_running(pid);
        if quiet && quiet_before {
            return true;
        }
        quiet_before = quiet;
        std::thread::sleep(Duration::from_micros(100));
    }
    false
}

fn any_running(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(|task| {
        std::fs::read_to_string(task.path().join("stat"))
            .ok()
            .and_then(|stat| {
                // The state follows the command name, which is in parentheses.
                let (_, rest) = stat.rsplit_once(')')?;
                Some(rest.trim_start().starts_with('R'))
            })
            .unwrap_or(false)
    })
}
