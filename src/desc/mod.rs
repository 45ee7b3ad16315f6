//! The bottom layer: what a factory is asked to make, as plain values. Addresses and endpoint
//! strings, the kind of socket, the builder's description ([`spec::Spec`]) with the settings of
//! every mechanism, and the errors found without the OS. Nothing here makes a socket or knows
//! the actor; every other layer may import it.

pub(crate) mod addr;
pub(crate) mod endpoint;
pub(crate) mod error;
pub(crate) mod features;
pub(crate) mod kind;
pub(crate) mod options;
pub(crate) mod poe;
#[cfg(feature = "proxy-protocol")]
pub(crate) mod proxy;
pub(crate) mod quote;
pub(crate) mod resolver;
pub(crate) mod spec;
pub(crate) mod time;
