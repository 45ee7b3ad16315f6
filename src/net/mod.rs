//! The middle layer: the socket mechanisms. Opening and binding (`open`), accepting (`accept`),
//! connecting with address racing (`connect`), the UNIX socket file (`unix`), socket options
//! (`options`), sockets made elsewhere or handed on (`adopt`, `inherit`, `handover`, `peer`,
//! `notify`), name look-ups (`resolve`, `lookup`, `netdb`, `hickory`), the PROXY protocol
//! (`proxy`). Their raw system calls are in `crate::sys`, which holds every `unsafe` of the
//! crate. These modules import the description layer, `sys` and each other, never the actor.

pub(crate) mod accept;
pub(crate) mod adopt;
pub(crate) mod connect;
pub mod handover;
#[cfg(feature = "hickory")]
pub(crate) mod hickory;
pub(crate) mod inherit;
pub(crate) mod lookup;
pub(crate) mod netdb;
pub(crate) mod notify;
pub(crate) mod open;
pub(crate) mod peer;
#[cfg(feature = "proxy-protocol")]
pub(crate) mod proxy;
pub(crate) mod resolve;
pub(crate) mod sockopt;
pub(crate) mod unix;
