//! From a description ([`Spec`]) to concrete socket addresses ([`Plan`]), without blocking.
//!
//! Literal addresses and numeric ports are planned at once, on the actor's thread. Host names,
//! service names and protocol names go through [`lookup`]: host names through the description's
//! [`Resolve`](crate::Resolve)r, services and protocols through the look-up pool (`lookup`), all
//! under one deadline, so the future ends by itself and can be dropped at any time.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use socket2::SockAddr;

use crate::addr::{Address, Port};
use crate::builder::{Domain, Protocol, SocketType, Spec, UnixOptions};
use crate::error::{ConfigError, Context, Failure, Operation};
use crate::lookup::{self, Resolver};
use crate::options::Options;

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

/// A description with every name looked up: all the factory needs to make the socket.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) domain: Domain,
    pub(crate) socket_type: SocketType,
    pub(crate) protocol: Option<i32>,
    pub(crate) role: Role,
    pub(crate) bind: Option<SockAddr>,
    /// The file a path-bound UNIX socket makes, so it can be handled and later removed.
    pub(crate) bind_path: Option<PathBuf>,
    /// Candidates in the order they are tried.
    pub(crate) remote: Vec<SockAddr>,
    pub(crate) backlog: i32,
    pub(crate) reuse: bool,
    pub(crate) reuse_port: bool,
    pub(crate) unix: UnixOptions,
    pub(crate) options: Options,
}

/// The longest UNIX path `sun_path` holds, keeping room for the terminating NUL.
pub(crate) fn max_unix_path() -> usize {
    // SAFETY: sockaddr_un is plain old data; all-zero is a valid value.
    let addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_path.len() - 1
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
    /// `localhost:80`, `/run/app.sock`, `adopted socket`.
    pub(crate) fn describe(&self) -> String {
        use crate::adopt::Source;
        match &self.source {
            Source::Adopt(_) => return "adopted socket".to_owned(),
            Source::Systemd(Some(name)) => return format!("systemd socket {name:?}"),
            Source::Systemd(None) => return "systemd socket".to_owned(),
            Source::Describe => {}
        }
        let (address, port) = match self.role() {
            Role::Connect => (&self.remote_address, &self.remote_port),
            _ => (&self.bind_address, &self.bind_port),
        };
        let address = address
            .as_ref()
            .map_or_else(|| "*".to_owned(), ToString::to_string);
        match port {
            Some(port) if self.effective_domain() != Domain::Unix => {
                if address.contains(':') {
                    format!("[{address}]:{port}")
                } else {
                    format!("{address}:{port}")
                }
            }
            None if self.effective_domain() != Domain::Unix => format!("{address}:0"),
            _ => address,
        }
    }

    fn needs_lookup(&self) -> bool {
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

fn check_protocol(number: i32, socket_type: SocketType) -> Result<(), ConfigError> {
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
        (Address::Host(name), Domain::Inet | Domain::Inet6) => check_name("host name", name),
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

/// Plans at once when no name needs looking up; `None` means [`lookup`] must run first.
pub(crate) fn plan_now(spec: &Spec) -> Option<Result<Plan, Failure>> {
    if spec.needs_lookup() {
        None
    } else {
        Some(plan(spec))
    }
}

/// Looks up every name in `spec` off the actor's thread, then plans; ends by itself at the
/// description's deadline (see [`Spec::lookup_limit`]). Dropping it cancels the look-ups.
pub(crate) async fn lookup(spec: Spec) -> Result<Plan, Failure> {
    let (limit, operation) = spec.lookup_limit();
    tokio::time::timeout(limit, lookup_names(spec))
        .await
        .unwrap_or_else(|_| {
            Err(Failure::new(
                operation,
                io::Error::from_raw_os_error(libc::ETIMEDOUT),
            ))
        })
}

impl Spec {
    /// How long the look-ups may take, and the operation reported when they take longer: a
    /// client's connect timeout when it ends first ("connect", as a slow connect would), else
    /// the look-up timeout ("resolve").
    pub(crate) fn lookup_limit(&self) -> (std::time::Duration, Operation) {
        match self.connect_timeout {
            Some(connect) if self.role() == Role::Connect && connect <= self.lookup_timeout() => {
                (connect, Operation::Connect)
            }
            _ => (self.lookup_timeout(), Operation::Resolve),
        }
    }
}

async fn lookup_names(spec: Spec) -> Result<Plan, Failure> {
    // Bad input is a config error, found before any name goes to a resolver (an empty or
    // NUL-holding name would otherwise come back as the resolver's failure, or worse, a query).
    spec.validate().map_err(Failure::config)?;
    let mut spec = spec;
    let resolver = spec.resolver();
    let domain = spec.effective_domain();
    let transport = match spec.socket_type {
        SocketType::Stream => "tcp",
        SocketType::Datagram => "udp",
    };
    if let Some(Protocol::Name(name)) = &spec.protocol {
        let number = lookup::protocol_number(name)
            .await
            .during(Operation::Resolve)?;
        check_protocol(number, spec.socket_type).map_err(Failure::config)?;
        spec.protocol = Some(Protocol::Number(number));
    }
    for port in [&mut spec.bind_port, &mut spec.remote_port]
        .into_iter()
        .flatten()
    {
        if let Port::Service(name) = port {
            let number = lookup::service_port(name, transport)
                .await
                .during(Operation::Resolve)?;
            *port = Port::Number(number);
        }
    }
    let mut remote_ips = Vec::new();
    let remote_family = spec.remote_family();
    if let Some(Address::Host(name)) = &spec.bind_address {
        let ip = *resolve_host(&resolver, name, Some(domain))
            .await?
            .first()
            .ok_or_else(|| no_address(name, Some(domain)))?;
        spec.bind_address = Some(Address::Ip(ip));
    }
    if let Some(Address::Host(name)) = &spec.remote_address {
        remote_ips = resolve_host(&resolver, name, remote_family).await?;
        let first = *remote_ips
            .first()
            .ok_or_else(|| no_address(name, remote_family))?;
        spec.remote_address = Some(Address::Ip(first));
    }
    let mut plan = plan(&spec)?;
    if remote_ips.len() > 1 {
        let port = number_of(&spec.remote_port);
        plan.remote = remote_ips
            .into_iter()
            .map(|ip| SockAddr::from(SocketAddr::new(ip, port)))
            .collect();
    }
    Ok(plan)
}

/// The addresses of `name` in `domain`'s family (`None`: both), in the resolver's order.
async fn resolve_host(
    resolver: &Resolver,
    name: &str,
    domain: Option<Domain>,
) -> Result<Vec<IpAddr>, Failure> {
    let found = resolver
        .0
        .resolve(name, 0)
        .await
        .during(Operation::Resolve)?;
    let wanted = |ip: &IpAddr| match domain {
        None => true,
        Some(Domain::Inet) => ip.is_ipv4(),
        Some(_) => ip.is_ipv6(),
    };
    let mut ips: Vec<IpAddr> = Vec::with_capacity(found.len());
    for ip in found.into_iter().map(|addr| addr.ip()).filter(wanted) {
        // getaddrinfo repeats an address per socket type unless told one; a resolver may too.
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    if ips.is_empty() {
        return Err(no_address(name, domain));
    }
    Ok(ips)
}

fn no_address(name: &str, domain: Option<Domain>) -> Failure {
    let family = match domain {
        None => "IP",
        Some(Domain::Inet) => "IPv4",
        Some(_) => "IPv6",
    };
    Failure::new(
        Operation::Resolve,
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("host {name:?} has no {family} address"),
        ),
    )
}

fn number_of(port: &Option<Port>) -> u16 {
    match port {
        Some(Port::Number(number)) => *number,
        _ => 0,
    }
}

/// Turns a validated, looked-up description into socket addresses.
fn plan(spec: &Spec) -> Result<Plan, Failure> {
    spec.validate().map_err(Failure::config)?;
    let domain = spec.effective_domain();
    let role = spec.role();
    let any_ip: IpAddr = match domain {
        Domain::Inet6 => std::net::Ipv6Addr::UNSPECIFIED.into(),
        _ => std::net::Ipv4Addr::UNSPECIFIED.into(),
    };
    let mut bind_path = None;
    let bind = match (&spec.bind_address, domain) {
        (Some(address), Domain::Unix) => {
            let (addr, path) = unix_sockaddr(address).during(Operation::Bind)?;
            bind_path = path;
            Some(addr)
        }
        (Some(Address::Ip(IpAddr::V6(ip))), _) if spec.bind_scope_id() != 0 => Some(
            std::net::SocketAddrV6::new(*ip, number_of(&spec.bind_port), 0, spec.bind_scope_id())
                .into(),
        ),
        (Some(Address::Ip(ip)), _) => Some(SocketAddr::new(*ip, number_of(&spec.bind_port)).into()),
        // A client binds only when asked to; a server or datagram socket binds to any address.
        (None, Domain::Inet | Domain::Inet6)
            if role != Role::Connect || spec.bind_port.is_some() =>
        {
            Some(SocketAddr::new(any_ip, number_of(&spec.bind_port)).into())
        }
        _ => None,
    };
    let remote = match (&spec.remote_address, domain) {
        _ if spec.remote_list.is_some() => spec
            .remote_list
            .iter()
            .flatten()
            .map(|addr| SockAddr::from(*addr))
            .collect(),
        (Some(address), Domain::Unix) => vec![unix_sockaddr(address).during(Operation::Connect)?.0],
        (Some(Address::Ip(ip)), _) => {
            vec![SocketAddr::new(*ip, number_of(&spec.remote_port)).into()]
        }
        _ => Vec::new(),
    };
    let protocol = match (domain, &spec.protocol) {
        (Domain::Unix, _) => None,
        (_, Some(Protocol::Number(number))) => Some(*number),
        _ => None,
    };
    let backlog = backlog(spec.listen_queue);
    let reuse = spec
        .reuse
        .unwrap_or(role == Role::Listen && domain != Domain::Unix);
    Ok(Plan {
        domain,
        socket_type: spec.socket_type,
        protocol,
        role,
        bind,
        bind_path,
        remote,
        backlog,
        reuse,
        reuse_port: spec.reuse_port,
        unix: spec.unix.clone(),
        options: spec.options.clone(),
    })
}

/// A UNIX address and, for a path, the path (abstract names make no file).
fn unix_sockaddr(address: &Address) -> io::Result<(SockAddr, Option<PathBuf>)> {
    let abstract_addr = |name: &[u8]| {
        let mut bytes = Vec::with_capacity(name.len() + 1);
        bytes.push(0);
        bytes.extend_from_slice(name);
        let path: std::ffi::OsString = std::os::unix::ffi::OsStringExt::from_vec(bytes);
        Ok((SockAddr::unix(path)?, None))
    };
    match address {
        Address::Abstract(name) => abstract_addr(name),
        Address::Host(text) => match text.strip_prefix('@') {
            Some(name) => abstract_addr(name.as_bytes()),
            None => Ok((SockAddr::unix(text)?, Some(PathBuf::from(text)))),
        },
        Address::Path(path) => Ok((SockAddr::unix(path)?, Some(path.clone()))),
        Address::Ip(ip) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{ip} is not a unix socket address"),
        )),
    }
}

/// The `listen(2)` backlog for a `ListenQueue`: 0 or none means `SOMAXCONN` (POE's default),
/// and a larger value is clipped to it, said once at `debug`.
fn backlog(asked: Option<u32>) -> i32 {
    let max = somaxconn();
    match asked {
        None | Some(0) => max,
        Some(asked) if asked > max as u32 => {
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                log::debug!("listen queue {asked} asked, {max} applied (the system's SOMAXCONN)")
            });
            max
        }
        Some(asked) => asked as i32,
    }
}

/// The system's `SOMAXCONN`: Linux's live value when readable, else the libc constant.
pub(crate) fn somaxconn() -> i32 {
    use std::sync::OnceLock;
    static VALUE: OnceLock<i32> = OnceLock::new();
    *VALUE.get_or_init(|| {
        // A one-time read of a procfs file: a memory read in the kernel, never a disk wait.
        std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .filter(|&value: &i32| value > 0)
            .unwrap_or(libc::SOMAXCONN)
    })
}
