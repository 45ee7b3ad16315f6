//! Non-blocking socket creation for actix actors: Perl's `POE::Wheel::SocketFactory`, as an actor.
//!
//! A [`SocketFactory`] is an actor that owns one socket-creating job. Its owner starts it with a
//! description of the socket and the recipients of its events; from then on it speaks only in
//! messages:
//!
//! - **in**: [`PauseAccept`], [`ResumeAccept`], [`SetEvents`], [`GetSockName`], [`GetId`],
//!   [`GetStats`], [`StopFactory`];
//! - **out**: [`SocketCreated`] (the socket, the peer, the factory's id) and [`SocketFailed`]
//!   (the [`Operation`], the OS error number and text, the factory's id).
//!
//! It listens and accepts (one `SocketCreated` per client), connects (one when the connection
//! completes) or binds a connectionless socket (one right away), over INET, INET6 and UNIX,
//! stream or datagram. It never blocks the actor's thread: host names, service names and protocol
//! names are looked up off it, by a pluggable [`Resolve`]r under a deadline (the default on a
//! small detached thread pool), and every failure is a message, never a panic.
//!
//! # Organization
//! - [`SocketFactoryBuilder`] (`builder`): the description, with POE's parameter names in its docs.
//! - [`SocketFactory`] (`factory`): the actor and its life.
//! - `accept`: the accept loop, its error classes, back-off and delivery cap.
//! - `connect`: the client path, with RFC 8305 address racing.
//! - `options`: socket options set before delivery (`TCP_NODELAY`, keepalive, buffers, ...).
//! - [`Address`], [`Port`], [`SocketAddress`] (`addr`); `resolve`: non-blocking look-ups.
//! - [`Resolve`], [`SystemResolver`] (`lookup`): pluggable host name resolvers and the bounded,
//!   detached look-up pool; `HickoryResolver` (`hickory`, feature `hickory`): async DNS.
//! - [`Endpoint`] (`endpoint`): `tcp://host:port`, `unix:/path` strings, and [`ToEndpoint`] for
//!   [`bind`](SocketFactoryBuilder::bind) / [`connect`](SocketFactoryBuilder::connect);
//!   [`reuse_from_poe`] (`poe`) for POE's `Reuse` spellings.
//! - `adopt`: sockets made elsewhere ([`adopt`](SocketFactoryBuilder::adopt)) and systemd
//!   socket activation ([`systemd`](SocketFactoryBuilder::systemd)).
//! - `unix`: the UNIX socket file's life (stale files, mode, removal of our own file only).
//! - [`FactoryGroup`] (`group`): one factory per Arbiter on one port, with `SO_REUSEPORT`.
//! - [`GetStats`] / [`FactoryStats`] (`stats`): live counters.
//! - messages (`messages`) and errors (`error`); `sys`: the few raw system calls, all the
//!   crate's `unsafe`.
//! - [`handover`]: passing listening sockets to a new process (graceful restart, binary
//!   upgrade, pre-forked workers), with [`ShareListener`] and [`Relinquish`] on the actor's side.
//! - [`testing`]: a collecting owner with bounded waits, for message-driven tests.
//! - `proxy` (feature `proxy-protocol`): PROXY protocol v1/v2 headers on accepted connections
//!   (`ProxyProtocol`, `ProxyHeader`), parsed with the `ppp` crate.
//!
//! # Example
//! A server on a free loopback port, and a client factory that connects to it:
//!
//! ```
//! use actix::prelude::*;
//! use actix_socket_factory::{GetSockName, SocketCreated, SocketFactory, SocketFailed};
//!
//! struct Owner;
//! impl Actor for Owner {
//!     type Context = Context<Self>;
//! }
//! impl Handler<SocketCreated> for Owner {
//!     type Result = ();
//!     fn handle(&mut self, created: SocketCreated, _: &mut Context<Self>) {
//!         // A plain non-blocking socket: usable on this Arbiter or any other.
//!         let stream = created.into_tcp_stream().expect("a TCP stream");
//!         println!("connected to {}", stream.peer_addr().unwrap());
//!         System::current().stop();
//!     }
//! }
//! impl Handler<SocketFailed> for Owner {
//!     type Result = ();
//!     fn handle(&mut self, failed: SocketFailed, _: &mut Context<Self>) {
//!         panic!("{failed}");
//!     }
//! }
//!
//! let system = System::new();
//! system.block_on(async {
//!     let owner = Owner.start();
//!     let server = SocketFactory::builder()
//!         .bind_address("127.0.0.1")
//!         .bind_port(0)
//!         .owner(&owner)
//!         .start();
//!     let port = server.send(GetSockName).await.unwrap().unwrap().port().unwrap();
//!     SocketFactory::builder()
//!         .remote_address("127.0.0.1")
//!         .remote_port(port)
//!         .owner(&owner)
//!         .start();
//! });
//! system.run().unwrap();
//! ```
//!
//! # Goals and non-goals
//! The crate makes, accepts and connects sockets and hands them over; it does not read or write
//! them. Turn a delivered socket into a tokio stream (`into_tcp_stream`, ...) and use actix's
//! `StreamHandler`, `FramedWrite` or plain tokio I/O from there.
#![deny(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(not(unix))]
compile_error!("actix-socket-factory supports Unix-like systems only");

mod accept;
mod addr;
mod adopt;
mod builder;
mod connect;
mod endpoint;
mod error;
mod factory;
mod group;
pub mod handover;
#[cfg(feature = "hickory")]
mod hickory;
mod lookup;
mod messages;
mod netdb;
mod open;
mod options;
mod owner;
mod poe;
#[cfg(feature = "proxy-protocol")]
mod proxy;
mod resolve;
mod stats;
mod sys;
mod unix;

pub mod testing;

pub use addr::{Address, Port, SocketAddress};
pub use builder::DEFAULT_LOOKUP_TIMEOUT;
pub use builder::{
    Domain, Protocol, SocketFactoryBuilder, SocketType, Spawned, UnknownName,
    DEFAULT_ACCEPT_BACKOFF, DEFAULT_HAPPY_EYEBALLS_DELAY, DEFAULT_MAX_OUTSTANDING,
    DEFAULT_OWNER_CHECK,
};
pub use endpoint::{Endpoint, EndpointError, EndpointErrorKind, Scheme, ToEndpoint};
pub use error::{ConfigError, Operation};
pub use factory::SocketFactory;
pub use group::FactoryGroup;
#[cfg(feature = "hickory")]
#[cfg_attr(docsrs, doc(cfg(feature = "hickory")))]
pub use hickory::HickoryResolver;
#[cfg(feature = "hickory")]
#[cfg_attr(docsrs, doc(cfg(feature = "hickory")))]
pub use hickory_resolver;
pub use lookup::{Resolve, Resolving, SystemResolver};
pub use messages::{
    EventChange, FactoryId, GetId, GetSockName, PauseAccept, PeerCredentials, ResumeAccept,
    SetEvents, SocketCreated, SocketFailed, StopFactory,
};
pub use messages::{Relinquish, ShareListener};
pub use poe::reuse_from_poe;
#[cfg(feature = "proxy-protocol")]
pub use proxy::{
    InvalidNetwork, IpNetwork, ProxyCommand, ProxyHeader, ProxyMode, ProxyProtocol, ProxyStats,
    ProxyTransport, ProxyVersion, ProxyVersions, Tlv, Untrusted, DEFAULT_PROXY_HEADER_TIMEOUT,
    DEFAULT_PROXY_MAX_HEADER_LEN,
};
pub use socket2;
pub use stats::{FactoryStats, GetStats};
