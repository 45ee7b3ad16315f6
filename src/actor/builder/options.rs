//! The builder's socket option methods.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::actor::builder::SocketFactoryBuilder;
#[allow(unused_imports)] // for the docs' links
use crate::desc::error::{ConfigError, Operation};
use crate::desc::options::{Keepalive, Multicast};

/// Socket options, set before a socket is delivered. POE has none of them (it leaves them to
/// `setsockopt` on the handle its `SuccessEvent` gives); unset ones keep the system's defaults.
///
///
/// # Where each option is set
/// - **Every socket the factory makes** (listener, client, datagram), before `bind(2)`:
///   `SO_SNDBUF`, `SO_RCVBUF` and, on IPv6 sockets, `IPV6_V6ONLY`. Buffer sizes must be set
///   before `listen(2)` or `connect(2)` to count for TCP's window scale (tcp(7)); the sockets a
///   listener accepts inherit them.
/// - **Every delivered socket**: `IP_TTL` / `IPV6_UNICAST_HOPS` and, on streams, `TCP_NODELAY`,
///   keepalive, `SO_LINGER`. A client's or datagram socket gets them before `connect(2)` or
///   `bind(2)`; a server sets them on each accepted socket (not every OS copies them from the
///   listener), and does no work there when none is asked for.
/// - **Datagram sockets**, before `bind(2)`: `SO_BROADCAST` and multicast group joins.
///
/// # Errors
/// A value the kernel refuses makes a [`SocketFailed`](crate::SocketFailed) with
/// [`Operation::SetSockOpt`]: the factory stops when it happens while making its own socket. On an
/// accepted socket it drops that socket (delivering it would break the promise of the options)
/// and reports the failure, and the server keeps accepting. Options that cannot fit the socket
/// (`TCP_NODELAY` on a datagram socket, ...) are [`ConfigError::UnfitOption`]s, found before any
/// socket is made.
///
/// # Example
/// ```
/// # use actix::prelude::*;
/// # use actix_socket_factory::{SocketFactory, SocketCreated, SocketFailed};
/// # use std::time::Duration;
/// # struct Owner;
/// # impl Actor for Owner { type Context = Context<Self>; }
/// # impl Handler<SocketCreated> for Owner { type Result = (); fn handle(&mut self, _: SocketCreated, _: &mut Context<Self>) {} }
/// # impl Handler<SocketFailed> for Owner { type Result = (); fn handle(&mut self, _: SocketFailed, _: &mut Context<Self>) {} }
/// # #[actix::main] async fn main() {
/// let owner = Owner.start();
/// let server = SocketFactory::builder()
///     .bind_address("127.0.0.1")
///     .tcp_nodelay(true)                          // on each accepted socket
///     .tcp_keepalive_time(Duration::from_secs(60))
///     .recv_buffer_size(1 << 20)                  // on the listener, before listen(2)
///     .owner(&owner)
///     .start();
/// # let _ = server;
/// # }
/// ```
impl SocketFactoryBuilder {
    /// `TCP_NODELAY` on each delivered connection: sends small writes at once instead of
    /// coalescing them (Nagle's algorithm). See tcp(7).
    pub fn tcp_nodelay(mut self, nodelay: bool) -> Self {
        self.spec.options.nodelay = Some(nodelay);
        self
    }

    /// `SO_KEEPALIVE` on each delivered connection, with the system's timings. `false` also
    /// forgets timings given before. See socket(7).
    pub fn keepalive(mut self, keepalive: bool) -> Self {
        self.spec.options.keepalive = Some(keepalive);
        if !keepalive {
            self.spec.options.keepalive_timings = Keepalive::default();
        }
        self
    }

    /// Turns keepalive on and sets the idle time before the first probe (`TCP_KEEPIDLE`,
    /// `TCP_KEEPALIVE` on macOS), in whole seconds. See tcp(7).
    ///
    /// # Errors
    /// [`ConfigError::OutOfRange`] from `build()` outside 1 to 32,767 whole seconds on Linux
    /// (its `MAX_TCP_KEEPIDLE`), 1 to 4,294,967 on macOS and FreeBSD (a 32-bit count of
    /// milliseconds), a C `int` elsewhere.
    pub fn tcp_keepalive_time(mut self, time: Duration) -> Self {
        self.spec.options.keepalive = Some(true);
        self.spec.options.keepalive_timings.time = Some(time);
        self
    }

    /// Turns keepalive on and sets the time between probes (`TCP_KEEPINTVL`), in whole seconds.
    ///
    /// # Errors
    /// [`ConfigError::Unsupported`] where the platform lacks the option (OpenBSD, Solaris, ...);
    /// [`ConfigError::OutOfRange`] outside 1 to 32,767 whole seconds on Linux, 1 to 4,294,967
    /// on macOS and FreeBSD.
    pub fn tcp_keepalive_interval(mut self, interval: Duration) -> Self {
        self.spec.options.keepalive = Some(true);
        self.spec.options.keepalive_timings.interval = Some(interval);
        self
    }

    /// Turns keepalive on and sets how many unanswered probes drop the connection
    /// (`TCP_KEEPCNT`).
    ///
    /// # Errors
    /// As [`tcp_keepalive_interval`](Self::tcp_keepalive_interval); the range is 1 to 127 on
    /// Linux.
    pub fn tcp_keepalive_retries(mut self, retries: u32) -> Self {
        self.spec.options.keepalive = Some(true);
        self.spec.options.keepalive_timings.retries = Some(retries);
        self
    }

    /// `SO_SNDBUF` on every socket the factory makes; accepted sockets inherit the listener's.
    ///
    /// # Notes
    /// Linux doubles the value (for its bookkeeping) and clamps it to `net.core.wmem_max`; the
    /// socket reads back the kernel's figure. See socket(7).
    pub fn send_buffer_size(mut self, size: usize) -> Self {
        self.spec.options.send_buffer = Some(size);
        self
    }

    /// `SO_RCVBUF` on every socket the factory makes, before `listen(2)` or `connect(2)` so TCP
    /// can scale its window to it; accepted sockets inherit the listener's.
    ///
    /// # Notes
    /// As [`send_buffer_size`](Self::send_buffer_size), with `net.core.rmem_max`.
    pub fn recv_buffer_size(mut self, size: usize) -> Self {
        self.spec.options.recv_buffer = Some(size);
        self
    }

    /// `SO_LINGER` on each delivered stream socket: `Some(Duration::ZERO)` makes `close` reset
    /// the connection at once; `None` is the default graceful close. See socket(7).
    ///
    /// # Notes
    /// With a non-zero time, Linux makes `close(2)` (dropping the socket) block the dropping
    /// thread until the data is sent or the time passes, even on a non-blocking socket.
    ///
    /// # Errors
    /// [`ConfigError::OutOfRange`] from `build()` for a time that is not zero and not at least
    /// one whole second (the option counts seconds: 500 ms would become an abortive close).
    pub fn linger(mut self, linger: Option<Duration>) -> Self {
        self.spec.options.linger = Some(linger);
        self
    }

    /// `IPV6_V6ONLY` on IPv6 sockets, set before `bind(2)`: `true` keeps an INET6 server off
    /// IPv4 (no v4-mapped clients), so another socket may take the same port on IPv4; `false`
    /// makes it dual-stack whatever `net.ipv6.bindv6only` says. Ignored by IPv4 sockets (a
    /// dual-family client's IPv4 attempts). See ipv6(7).
    ///
    /// # Platforms
    /// Unset, the system's default applies, which differs: dual-stack on Linux (unless
    /// `net.ipv6.bindv6only` is 1) and macOS, IPv6 only on FreeBSD (`net.inet6.ip6.v6only`, 1 by
    /// default). Set it for the same socket everywhere.
    pub fn only_v6(mut self, only_v6: bool) -> Self {
        self.spec.options.only_v6 = Some(only_v6);
        self
    }

    /// The unicast time-to-live of each delivered socket: `IP_TTL` on IPv4, `IPV6_UNICAST_HOPS`
    /// on IPv6. See ip(7), ipv6(7).
    ///
    /// # Errors
    /// [`ConfigError::OutOfRange`] from `build()` outside 1 to 255.
    pub fn ttl(mut self, ttl: u32) -> Self {
        self.spec.options.ttl = Some(ttl);
        self
    }

    /// `SO_BROADCAST` on a datagram socket: lets it send to broadcast addresses. See socket(7).
    pub fn broadcast(mut self, broadcast: bool) -> Self {
        self.spec.options.broadcast = Some(broadcast);
        self
    }

    /// Joins an IPv4 multicast group on a datagram socket (`IP_ADD_MEMBERSHIP`) on the interface
    /// with address `interface` (`Ipv4Addr::UNSPECIFIED`: the kernel's choice). May be given
    /// several times. See ip(7).
    ///
    /// # Errors
    /// A [`ConfigError::UnfitOption`] when `group` is not multicast or the factory is not an
    /// INET datagram factory.
    pub fn join_multicast_v4(mut self, group: Ipv4Addr, interface: Ipv4Addr) -> Self {
        let join = Multicast::V4 { group, interface };
        self.spec.options.multicast.push(join);
        self
    }

    /// Joins an IPv6 multicast group on a datagram socket (`IPV6_JOIN_GROUP`) on the interface
    /// with index `interface` (0: the kernel's choice). May be given several times. See ipv6(7).
    ///
    /// # Errors
    /// As [`join_multicast_v4`](Self::join_multicast_v4), for INET6.
    pub fn join_multicast_v6(mut self, group: Ipv6Addr, interface: u32) -> Self {
        let join = Multicast::V6 { group, interface };
        self.spec.options.multicast.push(join);
        self
    }
}
