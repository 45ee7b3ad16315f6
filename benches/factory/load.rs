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

/// Like [`hold`], pausing `pause` after each connect, so the server takes them one at a time
/// (the same way in every run) rather than in bursts of varying size.
pub fn hold_paced(
    addr: SocketAddr,
    count: u64,
    pause: Duration,
) -> std::io::Result<Vec<TcpStream>> {
    (0..count)
        .map(|_| {
            let stream = TcpStream::connect(addr);
            std::thread::sleep(pause);
            stream
        })
        .collect()
}
