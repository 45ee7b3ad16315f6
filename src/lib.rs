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
//! Everything below is reachable from the crate root, and from the public modules
//! [`handover`], [`testing`] and (feature `actix-web`) `web`.
//!
//! - **Describe and start**: [`SocketFactory::builder`] gives a [`SocketFactoryBuilder`], whose
//!   methods carry POE's parameter names in their docs ([`Domain`], [`SocketType`],
//!   [`Protocol`], socket options, delivery settings, [`adopt`](SocketFactoryBuilder::adopt),
//!   [`systemd`](SocketFactoryBuilder::systemd)); [`reuse_from_poe`] reads POE's `Reuse`
//!   spellings.
//! - **The actor**: [`SocketFactory`], with its messages in ([`PauseAccept`], [`ResumeAccept`],
//!   [`SetEvents`], [`GetSockName`], [`GetId`], [`GetStats`], [`StopFactory`]) and out
//!   ([`SocketCreated`], [`SocketFailed`]); [`FactoryStats`] answers `GetStats`.
//! - **Many cores**: [`FactoryGroup`], one factory per Arbiter on one port.
//! - **One stream type**: [`SocketCreated::into_stream`] gives a [`SocketStream`], TCP or UNIX
//!   inside, for one session type over every family.
//! - **actix-web** (feature `actix-web`): `web::WebServer` serves an actix-web `App` from a
//!   factory's socket, with upgrades and draining.
//! - **Zero-downtime upgrades**: [`handover`] passes listening sockets to a new process
//!   (graceful restart, binary upgrade, pre-forked workers), with the [`ShareListener`] and
//!   [`Relinquish`] messages on the actor's side.
//! - **Stopping like a service**: `run_until_signal(factories).await` in an `#[actix::main]`
//!   waits for SIGTERM, SIGINT or SIGQUIT and stops the factories (exit status 0, UNIX socket
//!   files removed); [`stop_on_signal`] does the same and stops the System, for a `main` that
//!   calls `System::run`; [`shutdown_signal`] only waits for a signal.
//! - **Name look-ups**: [`Resolve`] (pluggable resolvers) and [`SystemResolver`] (the default,
//!   on a small detached thread pool, under a deadline); `HickoryResolver` (feature `hickory`):
//!   async DNS.
//! - **Behind a load balancer** (feature `proxy-protocol`): `ProxyProtocol` and `ProxyHeader`,
//!   PROXY protocol v1/v2 headers on accepted connections.
//! - **Errors**: [`ConfigError`] (a bad description, before any socket), [`Operation`] (the step
//!   a [`SocketFailed`] names), [`EndpointError`] (a bad endpoint string).
//! - **Tests**: [`testing`]: a collecting owner with bounded waits, and real messages for
//!   testing your own owner actor without a factory.
//!
//! How the crate is built inside (modules, layers, the actor's states) is in `ARCHITECTURE.md`
//! in the repository.
//!
//! # Which address type is for what
//! | type | what it is | where you meet it |
//! | --- | --- | --- |
//! | [`Endpoint`] (or a `&str`) | a whole address as a user writes it: transport, family, host or path, port (`"127.0.0.1:8080"`, `"unix:/run/app.sock"`, `"udp://[::1]:53"`) | config files and flags (features `serde`, `clap`); [`bind`](SocketFactoryBuilder::bind), [`connect`](SocketFactoryBuilder::connect) |
//! | [`Address`] and [`Port`] | POE's halves: an IP, a host name (looked up later), a path or an abstract name; a port number or service name | [`bind_address`](SocketFactoryBuilder::bind_address), [`bind_port`](SocketFactoryBuilder::bind_port), [`remote_address`](SocketFactoryBuilder::remote_address), [`remote_port`](SocketFactoryBuilder::remote_port) |
//! | std [`SocketAddr`](std::net::SocketAddr) | an IP and port, nothing to look up | given to `bind`, `connect`, [`remote_addresses`](SocketFactoryBuilder::remote_addresses); [`SocketAddress::as_inet`] gives one back |
//! | [`SocketAddress`] | an address the kernel reports: INET (a std `SocketAddr`), UNIX path, abstract name or unnamed | [`GetSockName`]'s answer, [`SocketCreated::peer`], [`FactoryGroup::local_addr`] |
//! | [`socket2::SockAddr`] | the raw `sockaddr` | only on the [`socket2::Socket`] inside a [`SocketCreated`] (`local_addr()`, `peer_addr()`) |
//!
//! # Where a factory listens
//! **One way: the [`GetSockName`] message**, `server.send(GetSockName).await??`, answered by any
//! factory at any time with a [`SocketAddress`] (`.port()`, `.as_inet()`). The others are
//! shortcuts to the same answer: [`Spawned::local`] (and [`Spawned::local_addr`]) is what
//! `GetSockName` answered when [`spawn`](SocketFactoryBuilder::spawn) resolved, and
//! [`FactoryGroup::local_addr`] is what every member of a group answers.
//!
//! # Names
//! Messages carry POE's names, so a POE program maps one to one: [`GetSockName`] is
//! `getsockname()`, [`GetId`] is `ID()`, [`PauseAccept`] is `pause_accept()`. Methods carry
//! std's and tokio's: [`FactoryGroup::local_addr`] is what every member answers to
//! `GetSockName`; a [`SocketCreated`] converts with `into_` + tokio's type
//! ([`into_tcp_stream`](SocketCreated::into_tcp_stream), [`into_udp_socket`](SocketCreated::into_udp_socket),
//! [`into_unix_stream`](SocketCreated::into_unix_stream), [`into_unix_datagram`](SocketCreated::into_unix_datagram))
//! or `into_std_` + std's type ([`into_std_tcp_stream`](SocketCreated::into_std_tcp_stream),
//! [`into_std_udp_socket`](SocketCreated::into_std_udp_socket),
//! [`into_std_unix_stream`](SocketCreated::into_std_unix_stream),
//! [`into_std_unix_datagram`](SocketCreated::into_std_unix_datagram)). Older names remain for
//! one release as deprecated aliases.
//!
//! # Features
//! - `serde`: [`Endpoint`] is `Serialize` and `Deserialize` as its string form.
//! - `clap`: [`Endpoint`] works with clap's `value_parser!` and derive, through
//!   `EndpointValueParser`.
//! - `hickory`: `HickoryResolver`, an async, cancellable DNS resolver.
//! - `proxy-protocol`: PROXY protocol v1/v2 on accepted connections, parsed with `ppp`.
//! - `actix-web`: [`web::WebServer`] serves an actix-web `App` from a factory's socket, on
//!   several worker Arbiters, with the real client behind the PROXY protocol and draining at
//!   upgrades and stops.
//! - `metrics`: `export_metrics` publishes a factory's counters (accepted, failed by operation,
//!   back-off episodes, PROXY outcomes, in flight) through the `metrics` facade.
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
//! them. Turn a delivered socket into a tokio stream
//! ([`into_tcp_stream`](SocketCreated::into_tcp_stream), ...) and use actix's `StreamHandler`,
//! `FramedWrite` or plain tokio I/O from there.
//!
//! # Platforms
//! Unix only. Tested on Linux, whose behaviour these docs describe; compiled and linted for macOS
//! and FreeBSD (default and all features, by `.ci/run`). Where those differ (no abstract UNIX
//! names, no peer process id, `SO_REUSEPORT` that does not spread connections on macOS, so a
//! [`FactoryGroup`] has one member there, a different `IPV6_V6ONLY` default on FreeBSD, ...) each
//! difference is stated in the README's "Platforms" table and at the builder method concerned.
#![deny(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(not(unix))]
compile_error!("actix-socket-factory supports Unix-like systems only");

// The layers, from the bottom: `desc` (values), `sys` (every raw system call and `unsafe`),
// `net` (socket mechanisms), `actor`; each imports only those below it (ARCHITECTURE.md).
mod actor;
mod desc;
mod net;
mod sys;

pub use net::handover;
pub mod testing;
#[cfg(feature = "actix-web")]
#[cfg_attr(docsrs, doc(cfg(feature = "actix-web")))]
pub mod web;

pub use actor::builder::{SocketFactoryBuilder, Spawned};
pub use actor::factory::SocketFactory;
pub use actor::group::FactoryGroup;
pub use actor::messages::{
    EventChange, FactoryId, GetId, GetSockName, PauseAccept, ResumeAccept, SetEvents,
    SocketCreated, SocketFailed, StopFactory,
};
pub use actor::messages::{Relinquish, ShareListener};
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub use actor::metrics::{export_metrics, MetricsExporter, StopExporter, DEFAULT_METRICS_INTERVAL};
pub use actor::shutdown::{run_until_signal, shutdown_signal, stop_on_signal, ShutdownSignal};
pub use actor::stats::{FactoryStats, GetStats};
pub use actor::stream::SocketStream;
pub use actor::upgrade::{hand_over, hand_over_to};
pub use desc::addr::{Address, PeerCredentials, Port, SocketAddress};
pub use desc::endpoint::{Endpoint, EndpointError, EndpointErrorKind, Scheme, ToEndpoint};
pub use desc::error::{ConfigError, Operation};
#[cfg(feature = "clap")]
pub use desc::features::EndpointValueParser;
pub use desc::kind::{Domain, Protocol, SocketType, UnknownName};
pub use desc::poe::reuse_from_poe;
pub use desc::resolver::{Resolve, Resolving};
pub use desc::spec::{
    DEFAULT_ACCEPT_BACKOFF, DEFAULT_HAPPY_EYEBALLS_DELAY, DEFAULT_LOOKUP_TIMEOUT,
    DEFAULT_MAX_OUTSTANDING, DEFAULT_OWNER_CHECK, DEFAULT_RESTART_BACKOFF,
};
#[cfg(feature = "hickory")]
#[cfg_attr(docsrs, doc(cfg(feature = "hickory")))]
pub use hickory_resolver;
#[cfg(feature = "hickory")]
#[cfg_attr(docsrs, doc(cfg(feature = "hickory")))]
pub use net::hickory::HickoryResolver;
pub use net::lookup::SystemResolver;
#[cfg(feature = "proxy-protocol")]
#[allow(deprecated)]
pub use net::proxy::Untrusted;
#[cfg(feature = "proxy-protocol")]
pub use net::proxy::{
    InvalidNetwork, IpNetwork, ProxyCommand, ProxyHeader, ProxyMode, ProxyPolicy, ProxyProtocol,
    ProxyStats, ProxyTransport, ProxyVersion, ProxyVersions, Tlv, DEFAULT_PROXY_HEADER_TIMEOUT,
    DEFAULT_PROXY_MAX_HEADER_LEN, DEFAULT_PROXY_MAX_PENDING, PROXY_NO_DEADLINE,
};
pub use socket2;

/// Every Rust block of the README, compiled and run as a doc test so the README stays true
/// (with every feature on, as `.ci/run` tests: the README shows the optional ones too).
#[cfg(all(
    doctest,
    feature = "proxy-protocol",
    feature = "actix-web",
    feature = "metrics"
))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
