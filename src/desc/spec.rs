//! The description of a factory's socket, as the builder gathers it ([`Spec`]), with the checks
//! made without the OS: the bottom layer, importing nothing of the mechanisms or the actor.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use socket2::Socket;

use crate::desc::addr::{max_unix_path, Address, Port};
use crate::desc::error::ConfigError;
use crate::desc::kind::{Domain, Protocol, SocketType};
use crate::desc::options::Options;

/// What the factory does with its socket once made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// A stream server: listen and accept.
    Listen,
    /// A client: connect to the remote (stream or datagram).
    Connect,
    /// A connectionless socket: complete after bind.
    Bound,
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
    /// Waits between supervised setups after failures: first, cap.
    pub(crate) restart_backoff: (Duration, Duration),
    pub(crate) unix: UnixOptions,
    pub(crate) source: Source,
    /// A one-shot socket's duplicate is kept after delivery, for a handover (`shareable`).
    pub(crate) shareable: bool,
    /// An endpoint string given to `bind` or `connect` that did not parse: reported as a
    /// `ConfigError` by `build()` and `start()`.
    pub(crate) endpoint_error: Option<crate::desc::endpoint::EndpointError>,
    /// Look-up and zone settings most factories leave alone: boxed once one is set, so an
    /// idle factory does not carry them.
    pub(crate) rare: Option<Box<Rare>>,
    /// PROXY protocol on accepted connections (servers only).
    #[cfg(feature = "proxy-protocol")]
    pub(crate) proxy: Option<crate::desc::proxy::ProxyProtocol>,
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
    pub(crate) proxy: Option<crate::desc::proxy::ProxyProtocol>,
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

/// Default waits of a supervised factory between two setups after failures: the first, and the
/// cap it doubles up to. See [`SocketFactoryBuilder::restart_backoff`](crate::SocketFactoryBuilder::restart_backoff).
pub const DEFAULT_RESTART_BACKOFF: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(5));

/// The longest stagger between two connection attempts taken as given.
pub(crate) const MAX_STAGGER: Duration = Duration::from_secs(3600);

/// The longest owner check period taken as given.
pub(crate) const MAX_OWNER_CHECK: Duration = Duration::from_secs(86_400);

/// Default pauses of a server out of descriptors or memory: the first, and the cap it doubles
/// up to (as Go's `net/http` does).
pub const DEFAULT_ACCEPT_BACKOFF: (Duration, Duration) =
    (Duration::from_millis(5), Duration::from_secs(1));

/// Settings of a description most factories leave alone (see `Spec::rare`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Rare {
    /// Who looks host names up; `None`: the default [`SystemResolver`](crate::SystemResolver).
    pub(crate) resolver: Option<crate::desc::resolver::Resolver>,
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
    pub(crate) fn resolver(&self) -> crate::desc::resolver::Resolver {
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
            restart_backoff: DEFAULT_RESTART_BACKOFF,
            unix: UnixOptions::default(),
            source: Source::Describe,
            shareable: false,
            endpoint_error: None,
            rare: None,
            #[cfg(feature = "proxy-protocol")]
            proxy: None,
        }
    }
}

impl Spec {
    /// The domain asked for, or the one the addresses imply.
    pub(crate) fn effective_domain(&self) -> Domain {
        if let Some(domain) = self.domain {
            return domain;
        }
        let addresses = [&self.bind_address, &self.remote_address];
        let implied = addresses
            .into_iter()
            .flatten()
            .find_map(|address| match address {
                Address::Ip(IpAddr::V6(_)) => Some(Domain::Inet6),
                Address::Path(_) | Address::Abstract(_) => Some(Domain::Unix),
                // No host name starts so: an absolute path, or an abstract name (`@name`).
                Address::Host(text) if text.starts_with('/') || text.starts_with('@') => {
                    Some(Domain::Unix)
                }
                _ => None,
            });
        implied.unwrap_or(Domain::Inet)
    }

    /// The family a remote host name's addresses are taken from; `None` for both.
    ///
    /// A factory has one domain once it is given one (explicitly, or through its bind address),
    /// and then only that family is raced. A stream client left free takes both families and
    /// races them (RFC 8305): the unset domain "follows the addresses", and a name's addresses
    /// may be of both. Datagram clients keep one family: `connect(2)` on UDP succeeds without a
    /// packet exchanged, so a race would always pick IPv6, reachable or not.
    pub(crate) fn remote_family(&self) -> Option<Domain> {
        let free = self.domain.is_none()
            && self.bind_address.is_none()
            && self.socket_type == SocketType::Stream;
        if free {
            None
        } else {
            Some(self.effective_domain())
        }
    }

    pub(crate) fn role(&self) -> Role {
        match (&self.remote_address, self.socket_type) {
            (Some(_), _) => Role::Connect,
            (None, SocketType::Stream) => Role::Listen,
            (None, SocketType::Datagram) => Role::Bound,
        }
    }

    /// Checks made without the OS, shared by `build()` and the actor's start.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if let Some(error) = &self.endpoint_error {
            return Err(ConfigError::InvalidEndpoint(error.clone()));
        }
        let domain = self.effective_domain();
        for (which, address) in [
            ("bind", &self.bind_address),
            ("remote", &self.remote_address),
        ] {
            if let Some(address) = address {
                check_address(which, address, domain)?;
            }
        }
        for port in [&self.bind_port, &self.remote_port].into_iter().flatten() {
            check_port(port)?;
        }
        if let Some(Protocol::Name(name)) = &self.protocol {
            check_name("protocol", name)?;
        }
        match domain {
            Domain::Unix => {
                let needs_bind =
                    self.role() != Role::Connect || self.socket_type == SocketType::Datagram;
                if needs_bind && self.bind_address.is_none() {
                    return Err(ConfigError::MissingUnixBindAddress);
                }
            }
            Domain::Inet | Domain::Inet6 => {
                if self.remote_address.is_some() && self.remote_port.is_none() {
                    return Err(ConfigError::MissingRemotePort);
                }
                if let Some(Protocol::Number(number)) = self.protocol {
                    check_protocol(number, self.socket_type)?;
                }
            }
        }
        if self.remote_address.is_none() && self.remote_port.is_some() {
            return Err(ConfigError::MissingRemoteAddress);
        }
        if let Some(list) = &self.remote_list {
            if list.is_empty() {
                return Err(ConfigError::NoRemoteAddresses);
            }
            if let Some(family) = self.remote_family() {
                for addr in list {
                    check_address("remote", &Address::Ip(addr.ip()), family)?;
                }
            }
        }
        if self.owner_check == Some(std::time::Duration::ZERO) {
            return Err(ConfigError::InvalidDuration {
                setting: "owner_check_interval",
                reason: "a zero period; use None to turn the check off",
            });
        }
        if self.lookup_timeout().is_zero() {
            return Err(ConfigError::InvalidDuration {
                setting: "lookup_timeout",
                reason: "a zero limit: every look-up would fail before it began",
            });
        }
        self.options.validate(domain, self.socket_type)?;
        #[cfg(feature = "proxy-protocol")]
        self.check_proxy()?;
        Ok(())
    }

    /// What the factory is for, in a few words for its log lines: `127.0.0.1:0`,
    /// `localhost:80`, `/run/app.sock`, `adopted socket`. Formatted only when a line is
    /// written: a factory pays for none of it otherwise.
    pub(crate) fn label(&self) -> Label {
        match &self.source {
            Source::Adopt(_) => return Label::Adopted,
            Source::Systemd(name) => return Label::Systemd(name.clone()),
            Source::Describe => {}
        }
        let (address, port) = match self.role() {
            Role::Connect => (&self.remote_address, &self.remote_port),
            _ => (&self.bind_address, &self.bind_port),
        };
        Label::Described {
            address: address.clone(),
            port: port.clone(),
            unix: self.effective_domain() == Domain::Unix,
        }
    }

    pub(crate) fn needs_lookup(&self) -> bool {
        let inet = self.effective_domain() != Domain::Unix;
        let host = |a: &Option<Address>| matches!(a, Some(Address::Host(_)));
        let service = |p: &Option<Port>| matches!(p, Some(Port::Service(_)));
        let protocol = matches!(self.protocol, Some(Protocol::Name(_)));
        inet && (host(&self.bind_address)
            || host(&self.remote_address)
            || service(&self.bind_port)
            || service(&self.remote_port)
            || protocol)
    }
}

fn check_name(what: &'static str, name: &str) -> Result<(), ConfigError> {
    if name.is_empty() || name.contains('\0') {
        return Err(ConfigError::InvalidName {
            what,
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// The longest host name DNS can carry, without its final dot (RFC 1035 §2.3.4, RFC 2181 §11).
pub(crate) const MAX_HOST_NAME: usize = 253;

/// The longest label (the part between dots) of a host name.
pub(crate) const MAX_LABEL: usize = 63;

/// A host name no DNS could hold: longer than [`MAX_HOST_NAME`] bytes (a final dot aside), or a
/// label longer than [`MAX_LABEL`]. Refused before any look-up.
pub(crate) fn check_host_name(name: &str) -> Result<(), &'static str> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.len() > MAX_HOST_NAME {
        return Err("longer than the 253 bytes a DNS name can hold");
    }
    if name.split('.').any(|label| label.len() > MAX_LABEL) {
        return Err("a label longer than the 63 bytes DNS allows");
    }
    Ok(())
}

fn check_port(port: &Port) -> Result<(), ConfigError> {
    match port {
        Port::Number(_) => Ok(()),
        // Digits that do not fit a u16 ("70000") or a signed number ("-1"): a number out of
        // range, not a service name.
        Port::Service(name) if name.trim().parse::<i128>().is_ok() || is_digits(name) => {
            Err(ConfigError::InvalidPort(name.clone()))
        }
        Port::Service(name) => check_name("service", name),
    }
}

fn is_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

pub(crate) fn check_protocol(number: i32, socket_type: SocketType) -> Result<(), ConfigError> {
    let fits = match number {
        libc::IPPROTO_TCP => socket_type == SocketType::Stream,
        libc::IPPROTO_UDP => socket_type == SocketType::Datagram,
        _ => true, // SCTP, MPTCP, UDP-Lite...: the kernel is the judge.
    };
    if fits {
        Ok(())
    } else {
        Err(ConfigError::ProtocolMismatch {
            protocol: number,
            socket_type,
        })
    }
}

fn check_address(
    which: &'static str,
    address: &Address,
    domain: Domain,
) -> Result<(), ConfigError> {
    let mismatch = || ConfigError::DomainMismatch {
        which,
        address: address.to_string(),
        domain,
    };
    match (address, domain) {
        (Address::Ip(IpAddr::V4(_)), Domain::Inet)
        | (Address::Ip(IpAddr::V6(_)), Domain::Inet6) => Ok(()),
        (Address::Host(name), Domain::Inet | Domain::Inet6) => {
            check_name("host name", name)?;
            check_host_name(name).map_err(|reason| ConfigError::InvalidHostName {
                name: name.clone(),
                reason,
            })
        }
        (Address::Host(text), Domain::Unix) => match text.strip_prefix('@') {
            Some(name) => check_abstract(name.as_bytes()),
            None => check_path(text.as_bytes()),
        },
        (Address::Path(path), Domain::Unix) => check_path(path.as_os_str().as_encoded_bytes()),
        (Address::Abstract(name), Domain::Unix) => check_abstract(name),
        _ => Err(mismatch()),
    }
}

fn check_path(bytes: &[u8]) -> Result<(), ConfigError> {
    if bytes.is_empty() || bytes.contains(&0) {
        return Err(ConfigError::InvalidName {
            what: "unix path",
            name: String::from_utf8_lossy(bytes).into_owned(),
        });
    }
    let max = max_unix_path();
    if bytes.len() > max {
        return Err(ConfigError::PathTooLong {
            len: bytes.len(),
            max,
        });
    }
    Ok(())
}

fn check_abstract(name: &[u8]) -> Result<(), ConfigError> {
    if !cfg!(any(target_os = "linux", target_os = "android")) {
        return Err(ConfigError::Unsupported("an abstract UNIX socket name"));
    }
    let max = max_unix_path();
    if name.len() > max {
        return Err(ConfigError::PathTooLong {
            len: name.len() + 1,
            max: max + 1,
        });
    }
    Ok(())
}

/// How long a server waits between accept attempts while out of descriptors or memory: `first`
/// after the first error of an episode, doubled at each further one up to `max`. Whole
/// milliseconds, kept small because every listening factory holds one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pacing {
    first_ms: u32,
    max_ms: u32,
}

impl Pacing {
    /// At least 1 ms (a zero pause would spin on EMFILE), and `max` at least `first`.
    pub(crate) fn new(first: Duration, max: Duration) -> Pacing {
        let millis = |d: Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
        let first_ms = millis(first).max(1);
        Pacing {
            first_ms,
            max_ms: millis(max).max(first_ms),
        }
    }

    pub(crate) fn first(self) -> Duration {
        Duration::from_millis(self.first_ms.into())
    }

    pub(crate) fn max(self) -> Duration {
        Duration::from_millis(self.max_ms.into())
    }
}

/// Where a factory's socket comes from.
#[derive(Debug, Clone, Default)]
pub(crate) enum Source {
    /// Made from the description: socket, bind, listen or connect.
    #[default]
    Describe,
    /// Given by the caller. Kept whole so a Supervisor's restart can use it again; the factory
    /// works on a duplicate.
    Adopt(Arc<Socket>),
    /// Inherited from systemd, by name (`LISTEN_FDNAMES`) or, without one, the first not taken.
    Systemd(Option<String>),
}

#[cfg(feature = "proxy-protocol")]
impl Spec {
    /// The PROXY protocol fits stream servers only.
    pub(crate) fn check_proxy(&self) -> Result<(), ConfigError> {
        let Some(proxy) = &self.proxy else {
            return Ok(());
        };
        if self.socket_type != SocketType::Stream {
            return Err(crate::desc::proxy::unfit(
                "a stream server setting, and this is a datagram factory",
            ));
        }
        if self.remote_address.is_some() {
            return Err(crate::desc::proxy::unfit(
                "a server setting, and this is a client factory",
            ));
        }
        proxy.check()
    }
}

/// A factory's name in its log lines: its description until it has a local address.
#[derive(Debug, Clone)]
pub(crate) enum Label {
    /// The address (and port) it was given.
    Described {
        address: Option<Address>,
        port: Option<Port>,
        unix: bool,
    },
    /// A socket given with `adopt`.
    Adopted,
    /// A socket from systemd, by name or the first one.
    Systemd(Option<String>),
    /// Where it is bound (a listening server).
    Local(crate::desc::addr::SocketAddress),
}

impl std::fmt::Display for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Label::Adopted => f.write_str("adopted socket"),
            Label::Systemd(Some(name)) => {
                write!(f, "systemd socket {}", crate::desc::quote::quoted(name))
            }
            Label::Systemd(None) => f.write_str("systemd socket"),
            Label::Local(local) => write!(f, "{local}"),
            Label::Described {
                address,
                port,
                unix,
            } => {
                let ipv6 = matches!(address, Some(Address::Ip(IpAddr::V6(_))));
                match (address, unix) {
                    (None, false) => f.write_str("*")?,
                    (None, true) => f.write_str("(unnamed)")?,
                    (Some(address), _) if ipv6 => write!(f, "[{address}]")?,
                    // A name or path as given: bounded and escaped in log lines.
                    (Some(Address::Host(text)), _) => {
                        write!(f, "{}", crate::desc::quote::plain(text))?
                    }
                    (Some(Address::Path(path)), _) => {
                        let path = path.to_string_lossy();
                        write!(f, "{}", crate::desc::quote::plain(&path))?
                    }
                    (Some(address), _) => write!(f, "{address}")?,
                }
                match (port, unix) {
                    (_, true) => Ok(()),
                    (Some(port), false) => write!(f, ":{port}"),
                    (None, false) => f.write_str(":0"),
                }
            }
        }
    }
}
