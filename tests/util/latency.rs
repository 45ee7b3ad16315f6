//! Measuring that an Arbiter's thread stays free: a trivial actor answered in a loop while
//! something else is under way on the same Arbiter.

use std::future::Future;
use std::time::{Duration, Instant};

use actix::prelude::*;

/// An actor that answers at once; its round-trip time is the Arbiter's responsiveness.
#[derive(Debug, Default)]
pub struct Pinger;

impl Actor for Pinger {
    type Context = Context<Self>;
}

#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Ping;

impl Handler<Ping> for Pinger {
    type Result = ();

    fn handle(&mut self, _: Ping, _: &mut Context<Self>) {}
}

/// What happened while `work` ran.
#[derive(Debug)]
pub struct Responsiveness<T> {
    pub output: T,
    pub elapsed: Duration,
    pub pings: usize,
    pub worst: Duration,
}

impl<T> Responsiveness<T> {
    /// The timings, for assertion messages.
    pub fn timing(&self) -> String {
        format!(
            "{:?} elapsed, {} pings, worst round trip {:?}",
            self.elapsed, self.pings, self.worst
        )
    }
}

/// Runs `work` on this Arbiter while pinging `pinger` (on the same Arbiter) every `every`; the
/// worst round trip says whether anything held the thread. Gives up after `limit`.
pub async fn ping_while<T>(
    pinger: &Addr<Pinger>,
    work: impl Future<Output = T> + 'static,
    every: Duration,
    limit: Duration,
) -> Option<Responsiveness<T>>
where
    T: 'static,
{
    let started = Instant::now();
    let mut task = tokio::task::spawn_local(work);
    let mut ticks = tokio::time::interval(every);
    let (mut pings, mut worst) = (0, Duration::ZERO);
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        tokio::select! {
            done = &mut task => {
                let output = done.ok()?;
                return Some(Responsiveness { output, elapsed: started.elapsed(), pings, worst });
            }
            _ = ticks.tick() => {
                let sent = Instant::now();
                pinger.send(Ping).await.ok()?;
                worst = worst.max(sent.elapsed());
                pings += 1;
            }
            _ = tokio::time::sleep_until(deadline) => {
                task.abort();
                return None;
            }
        }
    }
}
