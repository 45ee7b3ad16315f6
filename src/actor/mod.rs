//! The top layer: the [`SocketFactory`](factory::SocketFactory) actor, its builder, its messages
//! and where they go (`owner`), groups of factories, live counters, the shutdown helpers and
//! the old process's side of an upgrade (`upgrade`).
//! It drives the mechanisms below; nothing below imports it.

pub(crate) mod builder;
pub(crate) mod factory;
pub(crate) mod group;
pub(crate) mod messages;
#[cfg(feature = "metrics")]
pub(crate) mod metrics;
pub(crate) mod owner;
pub(crate) mod shutdown;
pub(crate) mod stats;
pub(crate) mod stream;
pub(crate) mod upgrade;
