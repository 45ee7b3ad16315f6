//! The description of a factory's socket: [`Domain`], [`SocketType`], [`Protocol`] and the
//! [`SocketFactoryBuilder`] that gathers them with the owner's recipients.
//!
//! Every builder method names the POE parameter it stands for, so a POE program can be ported
//! line by line; the types are plain Rust values, and POE's spellings (`"AF_INET6"`,
//! `"SOCK_DGRAM"`, `"tcp"`) parse into them with `FromStr`.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use actix::{Actor, Addr, Handler, Recipient};

use crate::accept::Pacing;
use crate::addr::SocketAddress;
use crate::addr::{Address, Port};
use crate::adopt::Source;
use crate::error::ConfigError;
use crate::factory::{Go, Launch, Ready, SocketFactory};
use crate::messages::{SocketCreated, SocketFailed};
use crate::options::Options;
use crate::owner::{Route, Routes};

/// The socket's address family: POE's `SocketDomain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Domain {
    /// IPv4 (`AF_INET`, `PF_INET`). POE's default.
    Inet,
    /// IPv6 (`AF_INET6`, `PF_INET6`).
    Inet6,
    /// UNIX-domain sockets (`AF_UNIX`, `PF_UNIX`), by path or, on Linux, abstract name.
    Unix,
}

impl Domain {
    pub(crate) fn to_socket2(self) -> socket2::Domain {
        match self {
            Domain::Inet => socket2::Domain::IPV4,
            Domain::Inet6 => socket2::Domain::IPV6,
            Domain::Unix => socket2::Domain::UNIX,
        }
    }

    /// The domain of an address's family, if it is one of ours.
    pub(crate) fn of(addr: &socket2::SockAddr) -> Option<Domain> {
        match addr.domain() {
            socket2::Domain::IPV4 => Some(Domain::Inet),
            socket2::Domain::IPV6 => Some(Domain::Inet6),
            socket2::Domain::UNIX => Some(Domain::Unix),
            _ => None,
        }
    }

    /// POE's name for the domain: `"AF_INET"`, `"AF_INET6"` or `"AF_UNIX"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Domain::Inet => "AF_INET",
            Domain::Inet6 => "AF_INET6",
            Domain::Unix => "AF_UNIX",
        }
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no known domain, socket type or protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    what: &'static str,
    name: String,
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown {} {:?}", self.what, self.name)
    }
}

impl std::error::Error for UnknownName {}

impl FromStr for Domain {
    type Err = UnknownName;

    /// POE's spellings, `AF_*` or `PF_*`, in any case; also `inet`, `inet6`, `unix`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let upper = text.to_ascii_uppercase();
        let bare = upper
            .strip_prefix("AF_")
            .or_else(|| upper.strip_prefix("PF_"))
            .unwrap_or(&upper);
        match bare {
            "INET" => Ok(Domain::Inet),
            "INET6" => Ok(Domain::Inet6),
            "UNIX" | "LOCAL" => Ok(Domain::Unix),
            _ => Err(UnknownName {
                what: "domain",
                name: text.to_owned(),
            }),
        }
    }
}

/// The socket type: POE's `SocketType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SocketType {
    /// `SOCK_STREAM`: listened on and accepted, or connected. POE's default.
    #[default]
    Stream,
    /// `SOCK_DGRAM`: complete after `bind` (and `connect`, when a remote is given).
    Datagram,
}

impl SocketType {
    pub(crate) fn to_socket2(self) -> socket2::Type {
        match self {
            SocketType::Stream => socket2::Type::STREAM,
            SocketType::Datagram => socket2::Type::DGRAM,
        }
    }

    /// POE's name for the type: `"SOCK_STREAM"` or `"SOCK_DGRAM"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            SocketType::Stream => "SOCK_STREAM",
            SocketType::Datagram => "SOCK_DGRAM",
        }
    }
}

impl fmt::Display for SocketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SocketType {
    type Err = UnknownName;

    /// `SOCK_STREAM` / `SOCK_DGRAM` in any case; also `stream`, `dgram`, `datagram`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let upper = text.to_ascii_uppercase();
        match upper.strip_prefix("SOCK_").unwrap_or(&upper) {
            "STREAM" => Ok(SocketType::Stream),
            "DGRAM" | "DATAGRAM" => Ok(SocketType::Datagram),
            _ => Err(UnknownName {
                what: "socket type",
                name: text.to_owned(),
            }),
        }
    }
}

/// The protocol, by number or by name: POE's `SocketProtocol`.
///
/// Names are looked up in the protocols database (`/etc/protocols`) when the factory starts, off
/// the actor's thread. UNIX sockets ignore the protocol, as in POE.
///
/// ```
/// use actix_socket_factory::Protocol;
///
/// assert_eq!(Protocol::from(6), Protocol::TCP);
/// assert_eq!("17".parse::<Protocol>().unwrap(), Protocol::UDP);
/// assert_eq!(Protocol::from("tcp"), Protocol::Name("tcp".into()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// An IP protocol number (`IPPROTO_*`).
    Number(i32),
    /// A name from the protocols database (`"tcp"`, `"udp"`, ...).
    Name(String),
}

impl Protocol {
    /// TCP, protocol 6.
    pub const TCP: Protocol = Protocol::Number(libc::IPPROTO_TCP);
    /// UDP, protocol 17.
    pub const UDP: Protocol = Protocol::Number(libc::IPPROTO_UDP);
}

impl From<i32> for Protocol {
    fn from(number: i32) -> Self {
        Protocol::Number(number)
    }
}

impl From<&str> for Protocol {
    fn from(text: &str) -> Self {
        match text.parse::<i32>() {
            Ok(number) => Protocol::Number(number),
            Err(_) => Protocol::Name(text.to_owned()),
        }
    }
}

impl FromStr for Protocol {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Protocol::from(text))
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protocol::Number(number) => write!(f, "{number}"),
            Protocol::Name(name) => f.write_str(name),
        }
    }
}

/// Options for UNIX sockets bound to a path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct UnixOptions {
    pub(crate) mode: Option<u32>,
    pub(crate) replace_stale: bool,
}

/// Everything that describes the socket, without the recipients: what a restart under a
/// `Supervisor` makes the socket again from.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub(crate) domain: Option<Domain>,
    pub(crate) socket_type: SocketType,
    pub(crate) protocol: Option<Protocol>,
    pub(crate) bind_address: Option<Address>,
    pub(crate) bind_port: Option<Port>,
    pub(crate) remote_address: Option<Address>,
    pub(crate) remote_port: Option<Port>,
    /// Every candidate given by `remote_addresses`; `remote_address`/`remote_port` then hold the
    /// first, so the role and the domain follow from them as for a single address.
    pub(crate) remote_list: Option<Vec<SocketAddr>>,
    pub(crate) happy_eyeballs_delay: Duration,
    pub(crate) options: Options,
    pub(crate) listen_queue: Option<u32>,
    pub(crate) reuse: Option<bool>,
    pub(crate) reuse_port: bool,
    pub(crate) max_outstanding: usize,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) owner_check: Option<Duration>,
    pub(crate) accept_backoff: Pacing,
    pub(crate) unix: UnixOptions,
    pub(crate) source: Source,
    /// An endpoint string given to `bind` or `connect` that did not parse: reported as a
    /// `ConfigError` by `build()` and `start()`.
    pub(crate) endpoint_error: Option<crate::endpoint::EndpointError>,
    /// Look-up and zone settings most factories leave alone: boxed once one is set, so an
    /// idle factory does not carry them.
    pub(crate) rare: Option<Box<Rare>>,
    /// PROXY protocol on accepted connections (servers only).
    #[cfg(feature = "proxy-protocol")]
    pub(crate) proxy: Option<crate::proxy::ProxyProtocol>,
}

/// What a factory needs of its description once its socket is made.
#[derive(Debug, Clone)]
pub(crate) struct Service {
    pub(crate) max_outstanding: usize,
    pub(crate) happy_eyeballs_delay: Duration,
    pub(crate) accept_backoff: Pacing,
    /// For accepted sockets.
    pub(crate) options: Options,
    /// PROXY protocol on accepted connections.
    #[cfg(feature = "proxy-protocol")]
    pub(crate) proxy: Option<crate::proxy::ProxyProtocol>,
}

impl Spec {
    pub(crate) fn service(&self) -> Service {
        Service {
            max_outstanding: self.max_outstanding,
            happy_eyeballs_delay: self.happy_eyeballs_delay,
            accept_backoff: self.accept_backoff,
            options: self.options.clone(),
            #[cfg(feature = "proxy-protocol")]
            proxy: self.proxy.clone(),
        }
    }
}

/// Default cap on sockets sent to the owner and not yet handled by it.
pub const DEFAULT_MAX_OUTSTANDING: usize = 1024;

/// Default stagger between two connection attempts of a client: RFC 8305's recommended
/// "Connection Attempt Delay".
pub const DEFAULT_HAPPY_EYEBALLS_DELAY: Duration = Duration::from_millis(250);

/// Default period of the check that the owner is still there.
pub const DEFAULT_OWNER_CHECK: Duration = Duration::from_millis(500);

/// The longest stagger between two connection attempts taken as given.
const MAX_STAGGER: Duration = Duration::from_secs(3600);

/// The longest owner check period taken as given.
const MAX_OWNER_CHECK: Duration = Duration::from_secs(86_400);

/// Default pauses of a server out of descriptors or memory: the first, and the cap it doubles
/// up to (as Go's `net/http` does).
pub const DEFAULT_ACCEPT_BACKOFF: (Duration, Duration) =
    (Duration::from_millis(5), Duration::from_secs(1));

/// Settings of a description most factories leave alone (see `Spec::rare`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Rare {
    /// Who looks host names up; `None`: the default [`SystemResolver`](crate::SystemResolver).
    pub(crate) resolver: Option<crate::lookup::Resolver>,
    /// The limit on a look-up (with a client's connect timeout, whichever ends first); `None`:
    /// [`DEFAULT_LOOKUP_TIMEOUT`].
    pub(crate) lookup_timeout: Option<Duration>,
    /// The IPv6 zone of the bind address, from `bind(SocketAddrV6)` (0: none).
    pub(crate) bind_scope_id: u32,
}

impl Spec {
    /// The rare settings, made on first use.
    pub(crate) fn rare_mut(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    /// The resolver to use.
    pub(crate) fn resolver(&self) -> crate::lookup::Resolver {
        self.rare
            .as_ref()
            .and_then(|rare| rare.resolver.clone())
            .unwrap_or_default()
    }

    /// The look-up limit.
    pub(crate) fn lookup_timeout(&self) -> Duration {
        self.rare
            .as_ref()
            .and_then(|rare| rare.lookup_timeout)
            .unwrap_or(DEFAULT_LOOKUP_TIMEOUT)
    }

    /// The bind address's IPv6 zone (0: none).
    pub(crate) fn bind_scope_id(&self) -> u32 {
        self.rare.as_ref().map_or(0, |rare| rare.bind_scope_id)
    }
}

/// Default limit on the look-up of a factory's names (host, service, protocol): a server's or
/// datagram socket's whole look-up, and a client's when its connect timeout is longer or unset.
pub const DEFAULT_LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

impl Default for Spec {
    fn default() -> Self {
        Spec {
            domain: None,
            socket_type: SocketType::Stream,
            protocol: None,
            bind_address: None,
            bind_port: None,
            remote_address: None,
            remote_port: None,
            remote_list: None,
            happy_eyeballs_delay: DEFAULT_HAPPY_EYEBALLS_DELAY,
            options: Options::default(),
            listen_queue: None,
            reuse: None,
            reuse_port: false,
            max_outstanding: DEFAULT_MAX_OUTSTANDING,
            connect_timeout: None,
            owner_check: Some(DEFAULT_OWNER_CHECK),
            accept_backoff: Pacing::new(DEFAULT_ACCEPT_BACKOFF.0, DEFAULT_ACCEPT_BACKOFF.1),
            unix: UnixOptions::default(),
            source: Source::Describe,
            endpoint_error: None,
            rare: None,
            #[cfg(feature = "proxy-protocol")]
            proxy: None,
        }
    }
}

/// Describes a socket factory and starts it: the analogue of `POE::Wheel::SocketFactory->new(...)`.
///
/// Without a remote address the factory is a server (stream) or a bound socket (datagram); with
/// one it is a client. Every method names the POE parameter it replaces.
///
/// ```
/// # use actix::prelude::*;
/// # use actix_socket_factory::{SocketFactory, SocketCreated, SocketFailed, Domain};
/// # struct Owner;
/// # impl Actor for Owner { type Context = Context<Self>; }
/// # impl Handler<SocketCreated> for Owner { type Result = (); fn handle(&mut self, _: SocketCreated, _: &mut Context<Self>) {} }
/// # impl Handler<SocketFailed> for Owner { type Result = (); fn handle(&mut self, _: SocketFailed, _: &mut Context<Self>) {} }
/// # #[actix::main] async fn main() {
/// let owner = Owner.start();
/// let server = SocketFactory::builder()
///     .domain(Domain::Inet)          // SocketDomain => AF_INET
///     .bind_address("127.0.0.1")     // BindAddress
///     .bind_port(0)                  // BindPort
///     .listen_queue(128)             // ListenQueue
///     .owner(&owner)                 // SuccessEvent + FailureEvent
///     .start();
/// # let _ = server;
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct SocketFactoryBuilder {
    pub(crate) spec: Spec,
    pub(crate) routes: Routes,
}

impl SocketFactoryBuilder {
    /// A builder with POE's defaults: a stream server on any address, port 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// The address family. POE: `SocketDomain` (default `AF_INET`).
    ///
    /// When left unset, it follows the addresses given: an IPv6 literal makes INET6; a path (a
    /// `Path`, or a string starting with `/`) or an abstract name (`@name`) makes UNIX; anything
    /// else INET. A relative path needs `domain(Domain::Unix)`, as it could be a host name. A
    /// stream client left unset, without a bind address, takes a host name's addresses of both
    /// families and races them (see [`remote_addresses`](Self::remote_addresses)); set INET or
    /// INET6 to keep one family, as POE does.
    pub fn domain(mut self, domain: Domain) -> Self {
        self.spec.domain = Some(domain);
        self
    }

    /// Stream or datagram. POE: `SocketType` (default `SOCK_STREAM`).
    pub fn socket_type(mut self, socket_type: SocketType) -> Self {
        self.spec.socket_type = socket_type;
        self
    }

    /// The protocol by number or name. POE: `SocketProtocol` (default: the type's own, TCP or
    /// UDP). Ignored for UNIX sockets.
    pub fn protocol(mut self, protocol: impl Into<Protocol>) -> Self {
        self.spec.protocol = Some(protocol.into());
        self
    }

    /// The local address: an IP, a host name, or a UNIX path. POE: `BindAddress` (default: any
    /// address; no default for UNIX).
    pub fn bind_address(mut self, address: impl Into<Address>) -> Self {
        self.spec.bind_address = Some(address.into());
        self
    }

    /// The local port, by number or service name. POE: `BindPort` (default 0: the kernel picks).
    pub fn bind_port(mut self, port: impl Into<Port>) -> Self {
        self.spec.bind_port = Some(port.into());
        self
    }

    /// The address to connect to: an IP, a host name or a UNIX path. Its presence makes a
    /// client. POE: `RemoteAddress`.
    ///
    /// A host name with several addresses is raced as described under
    /// [`remote_addresses`](Self::remote_addresses); it replaces a list given before.
    pub fn remote_address(mut self, address: impl Into<Address>) -> Self {
        self.spec.remote_address = Some(address.into());
        self.spec.remote_list = None;
        self
    }

    /// Several addresses to connect to, each with its port: the first that connects is
    /// delivered. No POE equivalent (POE tries the first address of a name only).
    ///
    /// The candidates are raced as RFC 8305 ("Happy Eyeballs" v2) describes: families
    /// interleaved, IPv6 first, the given order kept within a family; a new attempt starts every
    /// [`happy_eyeballs_delay`](Self::happy_eyeballs_delay) while earlier ones are still under
    /// way, or as soon as one fails (no sooner than 10 ms after the previous start, RFC 8305
    /// §5's floor). The first to connect is delivered and the others are
    /// closed; only when all fail does the owner get one `SocketFailed` with the last error.
    /// [`connect_timeout`](Self::connect_timeout) bounds the whole race.
    ///
    /// The list replaces `remote_address` and `remote_port` given before, and each address
    /// keeps its own port; a later `remote_address` replaces the list. Without an explicit [`domain`](Self::domain) or a bind
    /// address, the list may mix IPv4 and IPv6, and the delivered [`SocketCreated::domain`] is
    /// the winner's family.
    ///
    /// # Errors
    /// An empty list, or an address of the wrong family for an explicit domain, is a
    /// [`ConfigError`].
    pub fn remote_addresses(mut self, addresses: impl IntoIterator<Item = SocketAddr>) -> Self {
        let list: Vec<SocketAddr> = addresses.into_iter().collect();
        self.spec.remote_address = list.first().map(|addr| Address::Ip(addr.ip()));
        self.spec.remote_port = list.first().map(|addr| Port::Number(addr.port()));
        self.spec.remote_list = Some(list);
        self
    }

    /// The stagger between two connection attempts when a client has several addresses
    /// (default [`DEFAULT_HAPPY_EYEBALLS_DELAY`], 250 ms); values under 10 ms are taken as
    /// 10 ms, RFC 8305's floor, and values over an hour as an hour. RFC 8305 recommends 100 ms
    /// to 2 s.
    pub fn happy_eyeballs_delay(mut self, delay: Duration) -> Self {
        self.spec.happy_eyeballs_delay = delay.clamp(crate::connect::MIN_ATTEMPT_GAP, MAX_STAGGER);
        self
    }

    /// The port to connect to, by number or service name; required for INET clients. POE:
    /// `RemotePort`.
    pub fn remote_port(mut self, port: impl Into<Port>) -> Self {
        self.spec.remote_port = Some(port.into());
        self
    }

    /// The `listen(2)` backlog, clipped to the system's `SOMAXCONN`. POE: `ListenQueue`
    /// (default `SOMAXCONN`).
    ///
    /// 0 means the default, as in POE (Linux would otherwise take it as a queue of one). A
    /// value above `SOMAXCONN` is clipped, and the clipping logged once at `debug` with both
    /// values.
    pub fn listen_queue(mut self, backlog: u32) -> Self {
        self.spec.listen_queue = Some(backlog);
        self
    }

    /// Sets `SO_REUSEADDR` so a server can be bound again at once after it stops. POE: `Reuse`.
    ///
    /// # Notes
    /// POE leaves it off unless asked. Here it defaults to on for stream servers, as std, mio and
    /// tokio do on Unix (Linux never lets two live listeners share a port through it), and off for
    /// datagram sockets, where on Linux it would let a second socket share the port.
    pub fn reuse(mut self, reuse: bool) -> Self {
        self.spec.reuse = Some(reuse);
        self
    }

    /// Sets `SO_REUSEPORT`, so several sockets (one factory per Arbiter, or per process) can
    /// bind the same address and the kernel spreads new connections or datagrams across them.
    /// Not in POE. See [`FactoryGroup`](crate::FactoryGroup) for one factory per Arbiter.
    ///
    /// # Notes
    /// Linux and the BSDs. Linux lets only sockets of the same user share a port this way.
    pub fn reuse_port(mut self, reuse_port: bool) -> Self {
        self.spec.reuse_port = reuse_port;
        self
    }

    /// Where each new socket goes. POE: `SuccessEvent`.
    ///
    /// The factory holds the recipient weakly: it does not keep its actor alive.
    pub fn on_success(mut self, recipient: Recipient<SocketCreated>) -> Self {
        self.routes.success = Route::To(recipient.downgrade());
        self
    }

    /// Where failures go. POE: `FailureEvent`.
    ///
    /// The factory holds the recipient weakly: it does not keep its actor alive.
    pub fn on_failure(mut self, recipient: Recipient<SocketFailed>) -> Self {
        self.routes.failure = Route::To(recipient.downgrade());
        self
    }

    /// Both recipients from one actor that handles both messages.
    ///
    /// The factory keeps one address for both, which is lighter than two recipients, and holds
    /// it weakly ([`WeakAddr`](actix::WeakAddr)): the owner still stops when its own last `Addr`
    /// is dropped, and the factory follows it.
    pub fn owner<A>(mut self, owner: &Addr<A>) -> Self
    where
        A: Actor + Handler<SocketCreated> + Handler<SocketFailed>,
        A::Context:
            actix::dev::ToEnvelope<A, SocketCreated> + actix::dev::ToEnvelope<A, SocketFailed>,
    {
        self.routes = Routes {
            owner: Some(Box::new(owner.downgrade())),
            success: Route::Owner,
            failure: Route::Owner,
        };
        self
    }

    /// How long a server waits before calling `accept` again when it fails for lack of
    /// resources (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`): `first` after the first error of an
    /// episode, doubling at each further one up to `max` (default [`DEFAULT_ACCEPT_BACKOFF`]:
    /// 5 ms to 1 s).
    ///
    /// The listener is kept and the queued clients wait in the kernel; each episode gives one
    /// [`SocketFailed`] ("accept") and one `error!` line, whatever its length. An episode ends
    /// only once accepting has gone well for `max` since its last error: a server held at its
    /// limit, each freed descriptor taken by the next client, reports once, not per client. Pauses are whole
    /// milliseconds, at least 1 ms (retrying at once would spin on `EMFILE`); a `max` below
    /// `first` is taken as `first`.
    pub fn accept_backoff(mut self, first: Duration, max: Duration) -> Self {
        self.spec.accept_backoff = Pacing::new(first, max);
        self
    }

    /// Caps the sockets sent to the owner and not yet handled by it (default
    /// [`DEFAULT_MAX_OUTSTANDING`]).
    ///
    /// # Delivery
    /// At the cap a server stops calling `accept` until the owner handles (or drops) one of the
    /// [`SocketCreated`] messages; clients wait in the kernel's listen queue meanwhile, so a slow
    /// owner costs latency, never memory or lost clients. A value of 0 is taken as 1.
    pub fn max_outstanding(mut self, max: usize) -> Self {
        self.spec.max_outstanding = max.max(1);
        self
    }

    /// Bounds a client's connect, name lookup and every raced address included; on expiry the
    /// owner gets `SocketFailed` "connect" with `ETIMEDOUT` and the half-open socket is closed.
    /// Default: none (the kernel's own limit).
    ///
    /// A limit too far away to express as an instant (`Duration::MAX`, say) means no limit.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.spec.connect_timeout = Some(timeout);
        self
    }

    /// How often a long-lived factory (a server, or a one-shot factory still holding its socket
    /// or socket file) checks that its owner is still there (default [`DEFAULT_OWNER_CHECK`]);
    /// `None` turns the check off, leaving only the check made at each delivery.
    ///
    /// # Notes
    /// actix gives no signal when an actor's mailbox closes, so an idle server can only notice
    /// its owner's end by looking. One task per Arbiter and period looks at all its factories'
    /// recipients at once: a few atomic loads per factory per period, no timer of its own.
    ///
    /// # Errors
    /// A zero period is a [`ConfigError::InvalidDuration`] (a sweep could never rest); periods
    /// over a day are taken as a day.
    pub fn owner_check_interval(mut self, interval: Option<Duration>) -> Self {
        self.spec.owner_check = interval.map(|period| period.min(MAX_OWNER_CHECK));
        self
    }

    /// Gives a UNIX socket file this mode (e.g. `0o660`), exactly, whatever the umask.
    ///
    /// # Notes
    /// On Linux the file is born with at most these permissions (the mode is set on the socket
    /// before `bind`), so there is no moment where it is more open than asked; elsewhere the mode
    /// is set just after `bind`, and until then the umask alone limits it. Setting the mode
    /// never follows a symlink. A failure is reported as "bind".
    pub fn unix_mode(mut self, mode: u32) -> Self {
        self.spec.unix.mode = Some(mode & 0o7777);
        self
    }

    /// Lets a UNIX server replace a stale socket file (one nothing listens on) left at its path by
    /// a crash. A live socket is never replaced, nor anything that is not a socket.
    ///
    /// # Errors
    /// Without it a stale file fails the start: `SocketFailed` "bind" `EADDRINUSE`, whose text
    /// names this option. A live socket at the path fails the same way, with or without it.
    pub fn replace_stale_socket(mut self, replace: bool) -> Self {
        self.spec.unix.replace_stale = replace;
        self
    }

    /// Uses a socket made elsewhere instead of making one: a listening `std::net::TcpListener`
    /// or `UnixListener` (served like a factory-made server), a bound `UdpSocket` or
    /// `UnixDatagram` (delivered at once), or any `OwnedFd` / socket2 `Socket` of those kinds.
    /// Not in POE.
    ///
    /// The factory works on a non-blocking, close-on-exec duplicate (a blocking std listener is
    /// fine) and keeps the original for restarts under a `Supervisor`. The address, domain and
    /// type settings of the builder are ignored; recipients and delivery settings apply.
    ///
    /// # Errors
    /// A stream socket that is not listening, or a family or type the factory does not know,
    /// gives a `SocketFailed` (`listen` / `socket`) rather than a hang.
    pub fn adopt(mut self, socket: impl Into<socket2::Socket>) -> Self {
        self.spec.source = Source::Adopt(std::sync::Arc::new(socket.into()));
        self
    }

    /// Uses a socket passed by systemd socket activation (`LISTEN_PID`, `LISTEN_FDS`,
    /// `LISTEN_FDNAMES`): the one named `name` (a `FileDescriptorName=` of the `.socket` unit),
    /// or with `None` the first one not yet taken by another factory. Otherwise as
    /// [`adopt`](Self::adopt).
    ///
    /// # Errors
    /// When the process was not socket-activated, or no socket has that name: a `SocketFailed`
    /// with [`Operation::Socket`](crate::Operation::Socket) and `ENOENT`-like `NotFound`.
    /// A `LISTEN_FDS` that is not a count of descriptors this process can have (negative, not a
    /// number, beyond `RLIMIT_NOFILE`) is the same failure with `InvalidInput`.
    ///
    /// # Notes
    /// `LISTEN_PID`, when set, must be this process. When it is not set at all, `LISTEN_FDS` is
    /// obeyed (as listenfd and tokio-listener do), for `systemfd --no-pid` and the like;
    /// systemd itself always sets it. Not so in a process started by a handover's successor,
    /// whose inherited variables were the successor's (see [`crate::handover`]).
    pub fn systemd(mut self, name: Option<&str>) -> Self {
        self.spec.source = Source::Systemd(name.map(str::to_owned));
        self
    }

    /// Checks the description and makes the factory actor, not yet started.
    ///
    /// Use it to learn the factory's [`id`](SocketFactory::id) before it runs, or to start it
    /// under a `Supervisor`. Such a factory keeps its description, to make its socket again at
    /// each restart, and sets up when its actor starts.
    ///
    /// # Errors
    /// A [`ConfigError`] for mistakes visible without the OS: a missing remote port, an address of
    /// the wrong family, a UNIX path too long, ...
    ///
    /// A description with no recipient at all (neither [`owner`](Self::owner) nor
    /// [`on_success`](Self::on_success) / [`on_failure`](Self::on_failure)) is
    /// [`ConfigError::NoRecipient`]: nothing it made could ever be received.
    pub fn build(self) -> Result<SocketFactory, ConfigError> {
        self.check()?;
        Ok(SocketFactory::kept(self.spec, self.routes))
    }

    fn check(&self) -> Result<(), ConfigError> {
        self.spec.validate()?;
        if self.routes.is_empty() {
            return Err(ConfigError::NoRecipient);
        }
        Ok(())
    }

    /// Starts the factory on the current Arbiter and returns its address, as POE's `new()`
    /// always returns an object: when the socket cannot be made, a [`SocketFailed`] arrives
    /// instead (with [`Operation::Config`](crate::Operation::Config) for a bad description).
    /// [`spawn`](Self::spawn) is the awaited form, giving the error where you await.
    ///
    /// The socket is made before this returns (a server is listening, a client's `connect(2)`
    /// is under way) unless a host or service name must be looked up first, which happens
    /// afterwards, off the thread. Its outcome is delivered from the factory's own turn, after
    /// this has returned and after any message sent to the factory right after it (see
    /// [`SocketFactory`]'s `# Delivery`). The description is not kept: see
    /// [`build`](Self::build) for a factory that can be made again.
    ///
    /// A description with no recipient at all is logged at `warn` and makes nothing.
    ///
    /// # Panics
    /// When called outside a running actix `System` (no current Arbiter), as any actor's
    /// `start()` does.
    pub fn start(self) -> Addr<SocketFactory> {
        let SocketFactoryBuilder { spec, routes } = self;
        SocketFactory::create(move |ctx| SocketFactory::set_up(spec, routes, Launch::Now, ctx))
    }

    /// Starts the factory on another Arbiter, so its accept loop runs on that Arbiter's thread;
    /// the sockets it delivers are not tied to it and serve on any Arbiter.
    ///
    /// Nothing is delivered before this has returned: the factory sets up on its Arbiter at
    /// once, but delivers only after a message the calling Arbiter sends it at its next turn
    /// (the same guarantee as [`start`](Self::start) on one thread).
    pub fn start_in_arbiter(self, arbiter: &actix::ArbiterHandle) -> Addr<SocketFactory> {
        let SocketFactoryBuilder { spec, routes } = self;
        let addr = SocketFactory::start_in_arbiter(arbiter, move |ctx| {
            SocketFactory::set_up(spec, routes, Launch::Gated, ctx)
        });
        // The gate opens at this Arbiter's next turn, so not even a message handled on another
        // thread can precede the caller's next statement. Outside an Arbiter (a plain thread),
        // it opens at once.
        if tokio::runtime::Handle::try_current().is_ok() {
            let gate = addr.clone();
            actix_rt::spawn(async move { gate.do_send(Go) });
        } else {
            addr.do_send(Go);
        }
        addr
    }

    /// Starts the factory on the current Arbiter and resolves once its setup is over, with the
    /// OS error right there when it fails: `let server = builder.spawn().await?`, as
    /// actix-web's `bind(..)?`.
    ///
    /// Setup is over when a server listens, a datagram socket is bound, or a client's
    /// `connect(2)` is under way (or done): the [`Spawned`] gives the factory's address and its
    /// local address. A failure before that (a bad description, an unknown host, a port in use,
    /// a refused UNIX connect, ...) is the `Err`, and is *not* sent to the failure recipient as
    /// well; what happens afterwards (a client's connect failing, accept errors) arrives as
    /// messages, as with [`start`](Self::start).
    ///
    /// # Cancel safety
    /// Dropping the future before it resolves leaves the factory running: its setup failure, if
    /// any, then goes to the failure recipient as with `start()`.
    ///
    /// # Panics
    /// As [`start`](Self::start): outside a running actix `System`.
    pub fn spawn(self) -> impl std::future::Future<Output = Result<Spawned, SocketFailed>> {
        let SocketFactoryBuilder { spec, routes } = self;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let addr = SocketFactory::create(move |ctx| {
            SocketFactory::set_up(spec, routes, Launch::Awaited(tx), ctx)
        });
        async move {
            match rx.await {
                Ok(Ok(Ready { local })) => Ok(Spawned { addr, local }),
                Ok(Err(failed)) => Err(failed),
                // The factory stopped without a word: only a System shutting down does that.
                Err(_) => Err(SocketFailed::new(
                    crate::error::Failure::new(
                        crate::Operation::Socket,
                        std::io::Error::other("the factory stopped before its setup was over"),
                    ),
                    crate::FactoryId::next(),
                )),
            }
        }
    }

    /// Who looks host names up (default: [`SystemResolver`](crate::SystemResolver), the C
    /// library's `getaddrinfo` on a small detached thread pool). With the `hickory` feature,
    /// `HickoryResolver` is an async DNS resolver; any [`Resolve`](crate::Resolve)
    /// implementation will do. Not in POE.
    ///
    /// The factory drops the look-up when its deadline passes or it stops: see
    /// [`lookup_timeout`](Self::lookup_timeout). An IP literal is never looked up.
    pub fn resolver(mut self, resolver: impl crate::Resolve) -> Self {
        self.spec.rare_mut().resolver =
            Some(crate::lookup::Resolver(std::sync::Arc::new(resolver)));
        self
    }

    /// Bounds the look-up of the factory's names (host, service and protocol names together;
    /// default [`DEFAULT_LOOKUP_TIMEOUT`], 10 s). A client's look-up also ends with its
    /// [`connect_timeout`](Self::connect_timeout), whichever comes first. Not in POE.
    ///
    /// # Errors
    /// On expiry the owner gets `SocketFailed` with `ETIMEDOUT`: "resolve" when this limit
    /// expired, "connect" when a client's connect timeout did (as for a slow connect).
    /// A zero limit is a [`ConfigError::InvalidDuration`].
    pub fn lookup_timeout(mut self, timeout: Duration) -> Self {
        self.spec.rare_mut().lookup_timeout = Some(timeout);
        self
    }

    /// Reads a PROXY protocol header (v1 or v2, as HAProxy, nginx's stream module, AWS NLB and
    /// others send it) at the start of every accepted connection, and delivers the client's
    /// address from it as [`SocketCreated::peer`]; the header's details and the balancer's own
    /// address are in `SocketCreated::proxy_header`. Stream servers only (TCP and UNIX). Not
    /// in POE.
    ///
    /// Only the header's bytes are read: the client's first bytes stay in the socket for the
    /// owner. Headers are read beside the accept loop, never holding it or other connections
    /// up; each connection still reading counts against
    /// [`max_outstanding`](Self::max_outstanding). A connection that sends no complete header
    /// before the deadline, or a malformed, oversized or (when required) missing one, is closed,
    /// counted in [`FactoryStats::proxy`](crate::FactoryStats::proxy) and logged at `debug`:
    /// never a [`SocketFailed`]. A `LOCAL` header (a health check) is delivered with the
    /// connection's own peer, as the specification says.
    ///
    /// ```
    /// # use actix::prelude::*;
    /// # use actix_socket_factory::{SocketFactory, SocketCreated, SocketFailed, ProxyProtocol};
    /// # struct Owner;
    /// # impl Actor for Owner { type Context = Context<Self>; }
    /// # impl Handler<SocketCreated> for Owner { type Result = (); fn handle(&mut self, _: SocketCreated, _: &mut Context<Self>) {} }
    /// # impl Handler<SocketFailed> for Owner { type Result = (); fn handle(&mut self, _: SocketFailed, _: &mut Context<Self>) {} }
    /// # #[actix::main] async fn main() {
    /// # let owner = Owner.start();
    /// let server = SocketFactory::builder()
    ///     .bind_address("127.0.0.1")
    ///     .bind_port(0)
    ///     .proxy_protocol(ProxyProtocol::required().allow_from(["127.0.0.1".parse().unwrap()]))
    ///     .owner(&owner)
    ///     .build()
    ///     .expect("a valid description");
    /// # let _ = server;
    /// # }
    /// ```
    ///
    /// # Errors
    /// On a client or datagram factory, or with a zero header timeout:
    /// [`ConfigError::UnfitOption`] from `build()` (`SocketFailed` "config" from `start()`). An
    /// adopted socket that turns out not to be a listener ignores the setting.
    #[cfg(feature = "proxy-protocol")]
    #[cfg_attr(docsrs, doc(cfg(feature = "proxy-protocol")))]
    pub fn proxy_protocol(mut self, proxy: crate::proxy::ProxyProtocol) -> Self {
        self.spec.proxy = Some(proxy);
        self
    }
}

/// A factory started with [`SocketFactoryBuilder::spawn`], its setup over.
#[derive(Debug, Clone)]
pub struct Spawned {
    /// The factory's address: keep it to stop the factory or send it messages.
    pub addr: Addr<SocketFactory>,
    /// Where its socket is bound: the listening address, the bound datagram address, or a
    /// client's local address (`None` when it has none yet, as an unbound UNIX client).
    pub local: Option<SocketAddress>,
}

impl Spawned {
    /// The local address as an IP socket address, for INET and INET6 factories.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &self.local {
            Some(SocketAddress::Inet(addr)) => Some(*addr),
            _ => None,
        }
    }

    /// The local port, for INET and INET6 factories.
    pub fn port(&self) -> Option<u16> {
        self.local_addr().map(|addr| addr.port())
    }
}

impl SocketFactory {
    /// A builder with POE's defaults: a stream server on any address, port 0.
    pub fn builder() -> SocketFactoryBuilder {
        SocketFactoryBuilder::new()
    }
}

#[cfg(feature = "proxy-protocol")]
impl Spec {
    /// The PROXY protocol fits stream servers only.
    pub(crate) fn check_proxy(&self) -> Result<(), ConfigError> {
        let Some(proxy) = &self.proxy else {
            return Ok(());
        };
        if self.socket_type != SocketType::Stream {
            return Err(crate::proxy::unfit(
                "a stream server setting, and this is a datagram factory",
            ));
        }
        if self.remote_address.is_some() {
            return Err(crate::proxy::unfit(
                "a server setting, and this is a client factory",
            ));
        }
        proxy.check()
    }
}
