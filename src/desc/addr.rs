//! Addresses going in (what a user writes: [`Address`], [`Port`]) and coming out ([`SocketAddress`]).
//!
//! POE's `BindAddress` and `RemoteAddress` are one parameter whose meaning depends on the domain: a
//! dotted quad, a host name or a UNIX path. [`Address`] keeps that shape; the domain decides how a
//! [`Address::Host`] string is read when the factory starts (a path for UNIX, a name otherwise).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::path::{Path, PathBuf};

use socket2::SockAddr;

/// A bind or remote address as the user wrote it: POE's `BindAddress` / `RemoteAddress`.
///
/// Built with `From`/`Into` from whatever the caller has:
///
/// ```
/// use actix_socket_factory::Address;
/// use std::net::Ipv4Addr;
/// use std::path::Path;
///
/// assert_eq!(Address::from(Ipv4Addr::LOCALHOST), Address::Ip(Ipv4Addr::LOCALHOST.into()));
/// assert_eq!(Address::from("::1"), Address::Ip("::1".parse().unwrap()));
/// assert_eq!(Address::from("localhost"), Address::Host("localhost".into()));
/// assert_eq!(Address::from(Path::new("/tmp/s")), Address::Path("/tmp/s".into()));
///
/// // Owned and borrowed forms alike, as configuration code tends to hold them.
/// let (host, path) = (String::from("localhost"), std::path::PathBuf::from("/tmp/s"));
/// assert_eq!(Address::from(&host), Address::from(host.clone()));
/// assert_eq!(Address::from(&path), Address::from(path.clone()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// A literal IP address.
    Ip(IpAddr),
    /// A host name, resolved without blocking when the factory starts. For a UNIX factory the
    /// string is read as a path instead (and, on Linux, `@name` as an abstract name), as POE does.
    Host(String),
    /// A UNIX socket path.
    Path(PathBuf),
    /// A Linux abstract-namespace UNIX name (without the leading NUL); no file is made.
    Abstract(Vec<u8>),
}

impl From<IpAddr> for Address {
    fn from(ip: IpAddr) -> Self {
        Address::Ip(ip)
    }
}

impl From<Ipv4Addr> for Address {
    fn from(ip: Ipv4Addr) -> Self {
        Address::Ip(ip.into())
    }
}

impl From<Ipv6Addr> for Address {
    fn from(ip: Ipv6Addr) -> Self {
        Address::Ip(ip.into())
    }
}

impl From<&str> for Address {
    /// An IP literal (`"127.0.0.1"`, `"::1"`, `"[::1]"`) becomes [`Address::Ip`]; anything else
    /// [`Address::Host`], read as a name or, for a UNIX factory, a path.
    fn from(text: &str) -> Self {
        let unbracketed = text
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .unwrap_or(text);
        match unbracketed.parse::<IpAddr>() {
            Ok(ip) => Address::Ip(ip),
            Err(_) => Address::Host(text.to_owned()),
        }
    }
}

impl From<String> for Address {
    fn from(text: String) -> Self {
        Address::from(text.as_str())
    }
}

impl From<&String> for Address {
    fn from(text: &String) -> Self {
        Address::from(text.as_str())
    }
}

impl From<&Path> for Address {
    fn from(path: &Path) -> Self {
        Address::Path(path.to_owned())
    }
}

impl From<PathBuf> for Address {
    fn from(path: PathBuf) -> Self {
        Address::Path(path)
    }
}

impl From<&PathBuf> for Address {
    fn from(path: &PathBuf) -> Self {
        Address::Path(path.clone())
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Ip(ip) => write!(f, "{ip}"),
            Address::Host(name) => f.write_str(name),
            Address::Path(path) => write!(f, "{}", path.display()),
            Address::Abstract(name) => write!(f, "@{}", String::from_utf8_lossy(name)),
        }
    }
}

/// A port by number or by service name: POE's `BindPort` / `RemotePort`.
///
/// Service names (`"http"`, `"ssh"`) are looked up in the system's services database when the
/// factory starts, off the actor's thread.
///
/// ```
/// use actix_socket_factory::Port;
///
/// assert_eq!(Port::from(8080), Port::Number(8080));
/// assert_eq!(Port::from("8080"), Port::Number(8080));
/// assert_eq!(Port::from("http"), Port::Service("http".into()));
/// assert_eq!(Port::from(&String::from("443")), Port::Number(443));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Port {
    /// A port number; 0 lets the kernel choose.
    Number(u16),
    /// A service name from the services database (`/etc/services`).
    Service(String),
}

impl Default for Port {
    fn default() -> Self {
        Port::Number(0)
    }
}

impl From<u16> for Port {
    fn from(port: u16) -> Self {
        Port::Number(port)
    }
}

impl From<&str> for Port {
    /// Digits become [`Port::Number`] (out-of-range numbers stay text and fail at lookup with a
    /// clear error); anything else a [`Port::Service`].
    fn from(text: &str) -> Self {
        match text.parse::<u16>() {
            Ok(port) => Port::Number(port),
            Err(_) => Port::Service(text.to_owned()),
        }
    }
}

impl From<String> for Port {
    fn from(text: String) -> Self {
        Port::from(text.as_str())
    }
}

impl From<&String> for Port {
    fn from(text: &String) -> Self {
        Port::from(text.as_str())
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Port::Number(port) => write!(f, "{port}"),
            Port::Service(name) => f.write_str(name),
        }
    }
}

/// A socket's own or its peer's address, as the kernel reports it.
///
/// The answer to [`GetSockName`](crate::GetSockName) and the peer of a
/// [`SocketCreated`](crate::SocketCreated).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SocketAddress {
    /// An IPv4 or IPv6 address and port.
    Inet(SocketAddr),
    /// A UNIX socket path.
    Unix(PathBuf),
    /// A Linux abstract-namespace name (without the leading NUL).
    Abstract(Vec<u8>),
    /// A UNIX socket with no name (an unbound or `socketpair` end).
    Unnamed,
}

impl SocketAddress {
    /// The IP address and port, for INET and INET6 sockets.
    pub fn as_inet(&self) -> Option<SocketAddr> {
        match self {
            SocketAddress::Inet(addr) => Some(*addr),
            _ => None,
        }
    }

    /// The path, for UNIX sockets bound to a file.
    pub fn as_path(&self) -> Option<&Path> {
        match self {
            SocketAddress::Unix(path) => Some(path),
            _ => None,
        }
    }

    /// The port, for INET and INET6 sockets.
    pub fn port(&self) -> Option<u16> {
        self.as_inet().map(|addr| addr.port())
    }

    pub(crate) fn from_sockaddr(addr: &SockAddr) -> SocketAddress {
        if let Some(inet) = addr.as_socket() {
            return SocketAddress::Inet(inet);
        }
        if let Some(path) = addr.as_pathname() {
            return SocketAddress::Unix(path.to_owned());
        }
        if let Some(name) = addr.as_abstract_namespace() {
            return SocketAddress::Abstract(name.to_owned());
        }
        SocketAddress::Unnamed
    }
}

impl From<SocketAddr> for SocketAddress {
    fn from(addr: SocketAddr) -> Self {
        SocketAddress::Inet(addr)
    }
}

impl From<SocketAddrV4> for SocketAddress {
    fn from(addr: SocketAddrV4) -> Self {
        SocketAddress::Inet(addr.into())
    }
}

impl From<SocketAddrV6> for SocketAddress {
    fn from(addr: SocketAddrV6) -> Self {
        SocketAddress::Inet(addr.into())
    }
}

impl fmt::Display for SocketAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SocketAddress::Inet(addr) => write!(f, "{addr}"),
            SocketAddress::Unix(path) => write!(f, "{}", path.display()),
            SocketAddress::Abstract(name) => write!(f, "@{}", String::from_utf8_lossy(name)),
            SocketAddress::Unnamed => f.write_str("(unnamed)"),
        }
    }
}

/// Who is at the other end of a UNIX stream socket, as the kernel recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerCredentials {
    /// The peer's user id.
    pub uid: u32,
    /// The peer's group id.
    pub gid: u32,
    /// The peer's process id, where the OS reports it (Linux).
    pub pid: Option<i32>,
}

/// The longest UNIX path `sun_path` holds, keeping room for the terminating NUL.
pub(crate) fn max_unix_path() -> usize {
    std::mem::size_of::<libc::sockaddr_un>() - std::mem::offset_of!(libc::sockaddr_un, sun_path) - 1
}
