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

use crate::desc::addr::{Address, Port};
use crate::desc::error::{Context, Failure, Operation};
use crate::desc::kind::{Domain, Protocol, SocketType};
use crate::desc::options::Options;
use crate::desc::resolver::Resolver;
use crate::desc::spec::{check_protocol, Role, Spec, UnixOptions};
use crate::net::lookup;

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
            format!(
                "host {} has no {family} address",
                crate::desc::quote::quoted(name)
            ),
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

/// The system's `SOMAXCONN`: the live value when the system tells it (Linux's procfs, the BSDs'
/// sysctl), else the libc constant.
pub(crate) fn somaxconn() -> i32 {
    use std::sync::OnceLock;
    static VALUE: OnceLock<i32> = OnceLock::new();
    *VALUE.get_or_init(|| {
        crate::sys::somaxconn()
            .filter(|&value: &i32| value > 0)
            .unwrap_or(libc::SOMAXCONN)
    })
}
