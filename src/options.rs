//! Socket options a factory sets before it delivers a socket: the typed builder methods, their
//! checks, and the one place each is applied (documented on the builder's options block).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use socket2::Socket;

use crate::builder::{Domain, SocketFactoryBuilder, SocketType};
use crate::error::{ConfigError, Context, Failure, Operation};
use crate::resolve::Role;

/// TCP keepalive timings; unset ones keep the system's defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Keepalive {
    time: Option<Duration>,
    interval: Option<Duration>,
    retries: Option<u32>,
}

/// One multicast group to join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Multicast {
    V4 {
        group: Ipv4Addr,
        interface: Ipv4Addr,
    },
    V6 {
        group: Ipv6Addr,
        interface: u32,
    },
}

/// The options asked for; `None` leaves the system's default alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SocketOptions {
    send_buffer: Option<usize>,
    recv_buffer: Option<usize>,
    only_v6: Option<bool>,
    nodelay: Option<bool>,
    keepalive: Option<bool>,
    keepalive_timings: Keepalive,
    linger: Option<Option<Duration>>,
    ttl: Option<u32>,
    broadcast: Option<bool>,
    multicast: Vec<Multicast>,
}

/// The options as a description holds them: boxed only once one is set. Most factories set
/// none, and an inline copy would cost every idle factory the whole struct.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Options(Option<Box<SocketOptions>>);

impl std::ops::Deref for Options {
    type Target = SocketOptions;

    fn deref(&self) -> &SocketOptions {
        static NONE: std::sync::OnceLock<SocketOptions> = std::sync::OnceLock::new();
        match &self.0 {
            Some(options) => options,
            None => NONE.get_or_init(SocketOptions::default),
        }
    }
}

impl std::ops::DerefMut for Options {
    fn deref_mut(&mut self) -> &mut SocketOptions {
        self.0.get_or_insert_with(Box::default)
    }
}

/// Where `TCP_KEEPINTVL` and `TCP_KEEPCNT` exist (the platforms socket2 offers them on).
const KEEPALIVE_TIMINGS: bool = cfg!(any(
    target_os = "android",
    target_os = "dragonfly",
    target_os = "freebsd",
    target_os = "fuchsia",
    target_os = "illumos",
    target_os = "ios",
    target_os = "linux",
    target_os = "macos",
    target_os = "netbsd",
));

/// The longest keepalive idle time and interval, in seconds: Linux's `MAX_TCP_KEEPIDLE` and
/// `MAX_TCP_KEEPINTVL`; elsewhere what a C `int` holds.
const KEEPALIVE_MAX_SECS: u64 = if cfg!(any(target_os = "linux", target_os = "android")) {
    32_767
} else {
    i32::MAX as u64
};

/// The most keepalive probes: Linux's `MAX_TCP_KEEPCNT`; elsewhere what a C `int` holds.
const KEEPALIVE_MAX_PROBES: u32 = if cfg!(any(target_os = "linux", target_os = "android")) {
    127
} else {
    i32::MAX as u32
};

fn unfit(option: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::UnfitOption {
        option,
        reason: reason.into(),
    }
}

impl SocketOptions {
    /// Whether any option is set per connection: false keeps the accept path free of work.
    fn per_connection(&self) -> bool {
        self.nodelay.is_some()
            || self.keepalive.is_some()
            || self.linger.is_some()
            || self.ttl.is_some()
    }

    /// Checks made without the OS: each option against the domain and socket type, and its
    /// value against the range the kernel accepts.
    pub(crate) fn validate(
        &self,
        domain: Domain,
        socket_type: SocketType,
    ) -> Result<(), ConfigError> {
        self.check_ranges()?;
        let set = |present: bool, option: &'static str| present.then_some(option);
        let inet_only = [
            set(self.nodelay.is_some(), "TCP_NODELAY"),
            set(self.keepalive.is_some(), "SO_KEEPALIVE"),
            set(self.ttl.is_some(), "IP_TTL"),
            set(self.only_v6.is_some(), "IPV6_V6ONLY"),
            set(self.broadcast.is_some(), "SO_BROADCAST"),
            set(!self.multicast.is_empty(), "IP_ADD_MEMBERSHIP"),
        ];
        let stream_only = [
            set(self.nodelay.is_some(), "TCP_NODELAY"),
            set(self.keepalive.is_some(), "SO_KEEPALIVE"),
            set(self.linger.is_some(), "SO_LINGER"),
        ];
        let datagram_only = [
            set(self.broadcast.is_some(), "SO_BROADCAST"),
            set(!self.multicast.is_empty(), "IP_ADD_MEMBERSHIP"),
        ];
        if domain == Domain::Unix {
            if let Some(option) = inet_only.into_iter().flatten().next() {
                return Err(unfit(
                    option,
                    "an IP option, and this is an AF_UNIX factory",
                ));
            }
        }
        let (wrong_type, reason): (&[Option<&'static str>], _) = match socket_type {
            SocketType::Stream => (
                &datagram_only,
                "a datagram option, and this is a stream factory",
            ),
            SocketType::Datagram => (
                &stream_only,
                "a stream option, and this is a datagram factory",
            ),
        };
        if let Some(option) = wrong_type.iter().flatten().next() {
            return Err(unfit(option, reason));
        }
        let timings = self.keepalive_timings;
        if !KEEPALIVE_TIMINGS && (timings.interval.is_some() || timings.retries.is_some()) {
            return Err(ConfigError::Unsupported("TCP_KEEPINTVL / TCP_KEEPCNT"));
        }
        for join in &self.multicast {
            let (option, group, fits) = match join {
                Multicast::V4 { group, .. } => (
                    "IP_ADD_MEMBERSHIP",
                    IpAddr::V4(*group),
                    domain == Domain::Inet,
                ),
                Multicast::V6 { group, .. } => (
                    "IPV6_JOIN_GROUP",
                    IpAddr::V6(*group),
                    domain == Domain::Inet6,
                ),
            };
            if !group.is_multicast() {
                return Err(unfit(option, format!("{group} is not a multicast group")));
            }
            if !fits {
                return Err(unfit(
                    option,
                    format!("group {group} does not fit domain {domain}"),
                ));
            }
        }
        Ok(())
    }

    /// Values the kernel would refuse (`EINVAL` on each socket) or silently change (a `u32`
    /// that turns into `-1`, "the default", once cast to the C `int`).
    fn check_ranges(&self) -> Result<(), ConfigError> {
        let out = |setting: &'static str, value: String, allowed: String| {
            Err(ConfigError::OutOfRange {
                setting,
                value,
                allowed,
            })
        };
        let whole_seconds = |setting: &'static str, time: Duration, max: u64| {
            if (1..=max).contains(&time.as_secs()) {
                Ok(())
            } else {
                out(
                    setting,
                    format!("{time:?}"),
                    format!("whole seconds from 1 to {max}"),
                )
            }
        };
        let timings = self.keepalive_timings;
        if let Some(time) = timings.time {
            whole_seconds("TCP_KEEPIDLE", time, KEEPALIVE_MAX_SECS)?;
        }
        if let Some(interval) = timings.interval {
            whole_seconds("TCP_KEEPINTVL", interval, KEEPALIVE_MAX_SECS)?;
        }
        if let Some(retries) = timings.retries {
            if !(1..=KEEPALIVE_MAX_PROBES).contains(&retries) {
                return out(
                    "TCP_KEEPCNT",
                    retries.to_string(),
                    format!("1 to {KEEPALIVE_MAX_PROBES}"),
                );
            }
        }
        if let Some(ttl) = self.ttl {
            if !(1..=255).contains(&ttl) {
                return out("IP_TTL", ttl.to_string(), "1 to 255".into());
            }
        }
        for (setting, size) in [
            ("SO_SNDBUF", self.send_buffer),
            ("SO_RCVBUF", self.recv_buffer),
        ] {
            if let Some(size) = size {
                if size > i32::MAX as usize {
                    return out(setting, size.to_string(), format!("0 to {}", i32::MAX));
                }
            }
        }
        if let Some(Some(linger)) = self.linger {
            // SO_LINGER counts whole seconds: 0.5 s would become 0, an abortive close.
            if linger != Duration::ZERO {
                whole_seconds("SO_LINGER", linger, i32::MAX as u64)?;
            }
        }
        Ok(())
    }

    /// Sets what fits a socket the factory just made (`family` is its address family), before
    /// `bind(2)`.
    pub(crate) fn apply_made(
        &self,
        socket: &Socket,
        family: socket2::Domain,
        role: Role,
        socket_type: SocketType,
    ) -> Result<(), Failure> {
        self.apply_made_inner(socket, family, role, socket_type)
            .during(Operation::SetSockOpt)
    }

    /// Sets the per-connection options on an accepted socket; no system call when none is set.
    pub(crate) fn apply_accepted(
        &self,
        socket: &Socket,
        family: socket2::Domain,
    ) -> Result<(), Failure> {
        if !self.per_connection() {
            return Ok(());
        }
        self.apply_connection(socket, family)
            .during(Operation::SetSockOpt)
    }

    fn apply_made_inner(
        &self,
        socket: &Socket,
        family: socket2::Domain,
        role: Role,
        socket_type: SocketType,
    ) -> std::io::Result<()> {
        if let (Some(only), socket2::Domain::IPV6) = (self.only_v6, family) {
            socket.set_only_v6(only)?;
        }
        if let Some(size) = self.send_buffer {
            socket.set_send_buffer_size(size)?;
        }
        if let Some(size) = self.recv_buffer {
            socket.set_recv_buffer_size(size)?;
        }
        if role != Role::Listen {
            self.apply_connection(socket, family)?;
        }
        if socket_type == SocketType::Datagram {
            if let Some(broadcast) = self.broadcast {
                socket.set_broadcast(broadcast)?;
            }
            for join in &self.multicast {
                match join {
                    Multicast::V4 { group, interface } => {
                        socket.join_multicast_v4(group, interface)?
                    }
                    Multicast::V6 { group, interface } => {
                        socket.join_multicast_v6(group, *interface)?
                    }
                }
            }
        }
        Ok(())
    }

    fn apply_connection(&self, socket: &Socket, family: socket2::Domain) -> std::io::Result<()> {
        if let Some(nodelay) = self.nodelay {
            socket.set_tcp_nodelay(nodelay)?;
        }
        match self.keepalive {
            Some(true) if self.keepalive_timings != Keepalive::default() => {
                socket.set_tcp_keepalive(&self.tcp_keepalive())?
            }
            Some(keepalive) => socket.set_keepalive(keepalive)?,
            None => {}
        }
        if let Some(linger) = self.linger {
            socket.set_linger(linger)?;
        }
        match (self.ttl, family) {
            (Some(ttl), socket2::Domain::IPV4) => socket.set_ttl_v4(ttl)?,
            (Some(hops), socket2::Domain::IPV6) => socket.set_unicast_hops_v6(hops)?,
            _ => {}
        }
        Ok(())
    }

    fn tcp_keepalive(&self) -> socket2::TcpKeepalive {
        let timings = self.keepalive_timings;
        let mut keepalive = socket2::TcpKeepalive::new();
        if let Some(time) = timings.time {
            keepalive = keepalive.with_time(time);
        }
        #[cfg(any(
            target_os = "android",
            target_os = "dragonfly",
            target_os = "freebsd",
            target_os = "fuchsia",
            target_os = "illumos",
            target_os = "ios",
            target_os = "linux",
            target_os = "macos",
            target_os = "netbsd",
        ))]
        {
            if let Some(interval) = timings.interval {
                keepalive = keepalive.with_interval(interval);
            }
            if let Some(retries) = timings.retries {
                keepalive = keepalive.with_retries(retries);
            }
        }
        keepalive
    }
}

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
    /// (its `MAX_TCP_KEEPIDLE`; a C `int` elsewhere).
    pub fn tcp_keepalive_time(mut self, time: Duration) -> Self {
        self.spec.options.keepalive = Some(true);
        self.spec.options.keepalive_timings.time = Some(time);
        self
    }

    /// Turns keepalive on and sets the time between probes (`TCP_KEEPINTVL`), in whole seconds.
    ///
    /// # Errors
    /// [`ConfigError::Unsupported`] where the platform lacks the option (OpenBSD, Solaris, ...);
    /// [`ConfigError::OutOfRange`] outside 1 to 32,767 whole seconds on Linux.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn check(
        options: SocketOptions,
        domain: Domain,
        socket_type: SocketType,
    ) -> Option<&'static str> {
        match options.validate(domain, socket_type) {
            Ok(()) => None,
            Err(ConfigError::UnfitOption { option, .. }) => Some(option),
            Err(other) => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn stream_options_do_not_fit_datagrams_nor_the_reverse() {
        let nodelay = SocketOptions {
            nodelay: Some(true),
            ..SocketOptions::default()
        };
        assert_eq!(
            check(nodelay.clone(), Domain::Inet, SocketType::Stream),
            None
        );
        assert_eq!(
            check(nodelay, Domain::Inet, SocketType::Datagram),
            Some("TCP_NODELAY")
        );
        let linger = SocketOptions {
            linger: Some(None),
            ..SocketOptions::default()
        };
        assert_eq!(
            check(linger.clone(), Domain::Unix, SocketType::Stream),
            None
        );
        assert_eq!(
            check(linger, Domain::Inet, SocketType::Datagram),
            Some("SO_LINGER")
        );
        let broadcast = SocketOptions {
            broadcast: Some(true),
            ..SocketOptions::default()
        };
        assert_eq!(
            check(broadcast, Domain::Inet, SocketType::Stream),
            Some("SO_BROADCAST")
        );
    }

    #[test]
    fn ip_options_do_not_fit_unix_and_groups_must_be_multicast_of_the_domain() {
        let ttl = SocketOptions {
            ttl: Some(9),
            ..SocketOptions::default()
        };
        assert_eq!(check(ttl, Domain::Unix, SocketType::Stream), Some("IP_TTL"));
        let join = |multicast| SocketOptions {
            multicast: vec![multicast],
            ..SocketOptions::default()
        };
        let v4 = |group: [u8; 4]| {
            join(Multicast::V4 {
                group: group.into(),
                interface: Ipv4Addr::UNSPECIFIED,
            })
        };
        assert_eq!(
            check(v4([239, 1, 2, 3]), Domain::Inet, SocketType::Datagram),
            None
        );
        assert_eq!(
            check(v4([10, 1, 2, 3]), Domain::Inet, SocketType::Datagram),
            Some("IP_ADD_MEMBERSHIP")
        );
        assert_eq!(
            check(v4([239, 1, 2, 3]), Domain::Inet6, SocketType::Datagram),
            Some("IP_ADD_MEMBERSHIP")
        );
        let v6 = join(Multicast::V6 {
            group: "ff02::1234".parse().expect("literal"),
            interface: 0,
        });
        assert_eq!(check(v6, Domain::Inet6, SocketType::Datagram), None);
    }

    #[test]
    fn no_per_connection_option_means_no_work_on_accept() {
        let buffers = SocketOptions {
            send_buffer: Some(1 << 16),
            recv_buffer: Some(1 << 16),
            ..SocketOptions::default()
        };
        assert!(!buffers.per_connection());
        let nodelay = SocketOptions {
            nodelay: Some(true),
            ..SocketOptions::default()
        };
        assert!(nodelay.per_connection());
    }
}
