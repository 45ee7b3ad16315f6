//! Live counters of a factory, for operators: [`GetStats`] answers a [`FactoryStats`].

use std::time::SystemTime;

use actix::Message;

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

/// The counters a factory keeps.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Counters {
    pub(crate) accepted: u64,
    pub(crate) delivered: u64,
    pub(crate) failed: u64,
    pub(crate) backoff_episodes: u64,
    pub(crate) since: SystemTime,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            accepted: 0,
            delivered: 0,
            failed: 0,
            backoff_episodes: 0,
            since: SystemTime::now(),
        }
    }
}
