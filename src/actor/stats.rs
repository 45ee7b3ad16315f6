//! Live counters of a factory, for operators: [`GetStats`] answers a [`FactoryStats`].

use std::time::SystemTime;

use actix::Message;

use crate::desc::error::Operation;

/// Ask a factory for its counters.
#[derive(Debug, Clone, Copy, Default, Message)]
#[rtype(result = "FactoryStats")]
pub struct GetStats;

/// What a factory has done since it started: enough to tell a stuck or saturated front door.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactoryStats {
    /// Sockets accepted (servers) or made (one-shot factories).
    pub accepted: u64,
    /// Sockets handed to the success recipient.
    pub delivered: u64,
    /// `SocketFailed` events produced (sent or, with no failure recipient, logged).
    pub failed: u64,
    /// `failed`, by the operation that failed: each operation with at least one failure, in
    /// the order of [`Operation`]'s variants.
    pub failed_by_operation: Vec<(Operation, u64)>,
    /// Deliveries the owner has not handled yet (see `max_outstanding`).
    pub outstanding: usize,
    /// The cap on outstanding deliveries (0 while the factory holds no listening socket).
    pub max_outstanding: usize,
    /// Whether the factory holds a listening socket.
    pub listening: bool,
    /// Whether accepting is paused by [`PauseAccept`](crate::PauseAccept).
    pub paused: bool,
    /// Whether the accept loop is running now (listening, not paused, success recipient set,
    /// and not at the outstanding cap).
    pub accepting: bool,
    /// Resource-exhaustion episodes (EMFILE and the like) so far.
    pub backoff_episodes: u64,
    /// Whether an episode is going on now.
    pub in_backoff: bool,
    /// When the factory (last) started.
    pub since: SystemTime,
    /// PROXY protocol header handling: headers read, connections dropped and why (all zero for
    /// a server without [`proxy_protocol`](crate::SocketFactoryBuilder::proxy_protocol)).
    #[cfg(feature = "proxy-protocol")]
    #[cfg_attr(docsrs, doc(cfg(feature = "proxy-protocol")))]
    pub proxy: crate::net::proxy::ProxyStats,
}

/// The operations a failure is counted under, in order.
const OPERATIONS: [Operation; 9] = [
    Operation::Config,
    Operation::Resolve,
    Operation::Socket,
    Operation::SetSockOpt,
    Operation::Bind,
    Operation::Listen,
    Operation::Accept,
    Operation::Connect,
    Operation::GetSockName,
];

/// The counters a factory keeps.
#[derive(Debug, Clone)]
pub(crate) struct Counters {
    pub(crate) accepted: u64,
    pub(crate) delivered: u64,
    pub(crate) failed: u64,
    /// Failures by operation, in the order of `OPERATIONS`: made at the first failure, so an
    /// idle factory stays small.
    failed_by: Option<Box<[u64; OPERATIONS.len()]>>,
    pub(crate) backoff_episodes: u64,
    pub(crate) since: SystemTime,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            accepted: 0,
            delivered: 0,
            failed: 0,
            failed_by: None,
            backoff_episodes: 0,
            since: SystemTime::now(),
        }
    }
}

impl Counters {
    /// Counts one failure of `operation`.
    pub(crate) fn count_failure(&mut self, operation: Operation) {
        self.failed = self.failed.saturating_add(1);
        if let Some(i) = OPERATIONS.iter().position(|op| *op == operation) {
            let counts = self
                .failed_by
                .get_or_insert_with(|| Box::new([0; OPERATIONS.len()]));
            counts[i] = counts[i].saturating_add(1);
        }
    }

    /// Adds `other`'s counts (not its start) to these.
    pub(crate) fn absorb(&mut self, other: &Counters) {
        self.accepted = self.accepted.saturating_add(other.accepted);
        self.delivered = self.delivered.saturating_add(other.delivered);
        self.failed = self.failed.saturating_add(other.failed);
        self.backoff_episodes = self.backoff_episodes.saturating_add(other.backoff_episodes);
        if let Some(theirs) = &other.failed_by {
            let ours = self
                .failed_by
                .get_or_insert_with(|| Box::new([0; OPERATIONS.len()]));
            for (ours, theirs) in ours.iter_mut().zip(theirs.iter()) {
                *ours = ours.saturating_add(*theirs);
            }
        }
    }

    /// The failures by operation, those counted at least once.
    pub(crate) fn failed_by_operation(&self) -> Vec<(Operation, u64)> {
        let Some(counts) = &self.failed_by else {
            return Vec::new();
        };
        OPERATIONS
            .iter()
            .zip(counts.iter())
            .filter(|(_, count)| **count > 0)
            .map(|(op, count)| (*op, *count))
            .collect()
    }
}
