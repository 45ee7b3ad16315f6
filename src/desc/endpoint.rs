//! Endpoint strings (`tcp://127.0.0.1:8080`, `unix:/run/app.sock`) and the one conversion,
//! [`ToEndpoint`], through which the builder's [`bind`](SocketFactoryBuilder::bind) and
//! [`connect`](SocketFactoryBuilder::connect) take whatever address the caller already has
//! ([`Endpoint`]'s docs give the syntax).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::desc::addr::max_unix_path;
use crate::desc::addr::{Address, Port};
use crate::desc::kind::{Domain, SocketType};

/// The part of an endpoint string before the `:`: transport and, optionally, family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scheme {
    /// `tcp`: stream over INET, or INET6 for an IPv6 literal.
    Tcp,
    /// `tcp4`: stream over INET only.
    Tcp4,
    /// `tcp6`: stream over INET6 only.
    Tcp6,
    /// `udp`: datagram over INET, or INET6 for an IPv6 literal.
    Udp,
    /// `udp4`: datagram over INET only.
    Udp4,
    /// `udp6`: datagram over INET6 only.
    Udp6,
    /// `unix`: UNIX stream socket.
    Unix,
    /// `unix-dgram` (or `unixgram`): UNIX datagram socket.
    UnixDgram,
    /// `sd-listen`: a socket passed by systemd socket activation, the first one not taken, or
    /// with `sd-listen:NAME` the one of that `FileDescriptorName=`. The inherited socket decides
    /// the domain and type (see [`SocketFactoryBuilder::systemd`](crate::SocketFactoryBuilder::systemd)).
    SdListen,
}

impl Scheme {
    const ALL: [Scheme; 9] = [
        Scheme::Tcp,
        Scheme::Tcp4,
        Scheme::Tcp6,
        Scheme::Udp,
        Scheme::Udp4,
        Scheme::Udp6,
        Scheme::Unix,
        Scheme::UnixDgram,
        Scheme::SdListen,
    ];

    /// The scheme as written in an endpoint string, without the `:`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scheme::Tcp => "tcp",
            Scheme::Tcp4 => "tcp4",
            Scheme::Tcp6 => "tcp6",
            Scheme::Udp => "udp",
            Scheme::Udp4 => "udp4",
            Scheme::Udp6 => "udp6",
            Scheme::Unix => "unix",
            Scheme::SdListen => "sd-listen",
            Scheme::UnixDgram => "unix-dgram",
        }
    }

    /// The socket type the scheme names.
    pub const fn socket_type(self) -> SocketType {
        match self {
            // sd-listen: nominal; the inherited socket's own type is what counts.
            Scheme::Tcp | Scheme::Tcp4 | Scheme::Tcp6 | Scheme::Unix | Scheme::SdListen => {
                SocketType::Stream
            }
            Scheme::Udp | Scheme::Udp4 | Scheme::Udp6 | Scheme::UnixDgram => SocketType::Datagram,
        }
    }

    /// The domain the scheme fixes, if it fixes one (`tcp` and `udp` leave it to the address).
    pub const fn domain(self) -> Option<Domain> {
        match self {
            Scheme::Tcp4 | Scheme::Udp4 => Some(Domain::Inet),
            Scheme::Tcp6 | Scheme::Udp6 => Some(Domain::Inet6),
            Scheme::Unix | Scheme::UnixDgram => Some(Domain::Unix),
            Scheme::Tcp | Scheme::Udp | Scheme::SdListen => None,
        }
    }

    fn is_unix(self) -> bool {
        matches!(self, Scheme::Unix | Scheme::UnixDgram)
    }

    fn from_name(name: &str) -> Option<Scheme> {
        if name.eq_ignore_ascii_case("unixgram") {
            return Some(Scheme::UnixDgram);
        }
        Scheme::ALL
            .into_iter()
            .find(|scheme| scheme.as_str().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A socket address as a user writes it in a configuration file or on a command line:
/// transport, family and address in one string.
///
/// Parse it with [`FromStr`]; [`Display`](fmt::Display) writes it back in a form that parses to
/// the same value. Hand it to [`SocketFactoryBuilder::bind`](crate::SocketFactoryBuilder::bind) (a server, or a bound datagram
/// socket) or [`SocketFactoryBuilder::connect`](crate::SocketFactoryBuilder::connect) (a client).
///
/// # Syntax
/// | form | meaning |
/// | --- | --- |
/// | `tcp://HOST:PORT` | stream, INET (INET6 for a bracketed IPv6 literal) |
/// | `tcp4://HOST:PORT`, `tcp6://HOST:PORT` | stream, family fixed: a host name is resolved in it |
/// | `udp://HOST:PORT`, `udp4://…`, `udp6://…` | the same, datagram |
/// | `unix:PATH`, `unix:///abs/path` | UNIX stream socket at a path |
/// | `unix:@NAME` | UNIX stream socket, Linux abstract name |
/// | `unix-dgram:PATH`, `unix-dgram:@NAME` | UNIX datagram socket (alias `unixgram:`) |
/// | `sd-listen`, `sd-listen:NAME` | a socket from systemd socket activation (by `FileDescriptorName=`) |
/// | `HOST:PORT`, `[IPV6]:PORT` (no scheme) | `tcp://HOST:PORT`, as std, tokio and actix-web take it |
/// | `/PATH`, `./PATH`, `../PATH` (no scheme) | `unix:PATH` |
/// | `@NAME` (no scheme) | `unix:@NAME` |
///
/// `HOST` is an IPv4 literal, an IPv6 literal in brackets (`[::1]`) or a host name (letters,
/// digits, `.`, `-`, `_`). `PORT` is a number from 0 to 65535 or a service name (`http`); it is
/// required (write `:0` to let the kernel choose). Schemes are read in any case. Names are looked
/// up when the factory starts, never while parsing. A bare form is read as its scheme form
/// (`"127.0.0.1:80"` and `"tcp://127.0.0.1:80"` are the same value); a host named like a scheme
/// needs the scheme (`tcp://udp:53`). [`Display`](fmt::Display) always writes the scheme.
///
/// # Examples
/// ```
/// use actix_socket_factory::{Address, Domain, Endpoint, Port, Scheme, SocketType};
///
/// let endpoint: Endpoint = "127.0.0.1:8080".parse().unwrap();
/// assert_eq!(endpoint.scheme(), Scheme::Tcp);
/// assert_eq!(endpoint.to_string(), "tcp://127.0.0.1:8080");
///
/// let endpoint: Endpoint = "/run/app.sock".parse().unwrap();
/// assert_eq!(endpoint.address(), &Address::Path("/run/app.sock".into()));
/// assert_eq!(endpoint.to_string(), "unix:/run/app.sock");
///
/// let endpoint: Endpoint = "udp://[::1]:domain".parse().unwrap();
/// assert_eq!(endpoint.socket_type(), SocketType::Datagram);
/// assert_eq!(endpoint.domain(), Domain::Inet6);
/// assert_eq!(endpoint.port(), Some(&Port::Service("domain".into())));
/// assert_eq!(endpoint.to_string(), "udp://[::1]:domain");
///
/// let error = "tcp://127.0.0.1:99999".parse::<Endpoint>().unwrap_err();
/// assert_eq!(error.offset(), 16);
/// assert_eq!(
///     error.to_string(),
///     "invalid endpoint \"tcp://127.0.0.1:99999\" at byte 16: port 99999 is out of range (0 to 65535)"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    scheme: Scheme,
    /// `Ip` or `Host` for INET schemes; `Path` or `Abstract` for UNIX ones (a parsed path never
    /// starts with `@`, so it cannot be mistaken for an abstract name when written back).
    address: Address,
    /// Always `Some` for INET schemes, `None` for UNIX ones.
    port: Option<Port>,
    /// The IPv6 zone (scope id) of a link-local address given as a `SocketAddrV6`; 0: none.
    scope_id: u32,
}

impl Endpoint {
    /// The scheme: transport and, perhaps, family.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// Stream or datagram, as the scheme says.
    pub fn socket_type(&self) -> SocketType {
        self.scheme.socket_type()
    }

    /// The domain a factory made from this endpoint uses: the scheme's, else INET6 for an IPv6
    /// literal and INET for anything else (POE's default).
    pub fn domain(&self) -> Domain {
        match (self.scheme.domain(), &self.address) {
            (Some(domain), _) => domain,
            (None, Address::Ip(IpAddr::V6(_))) => Domain::Inet6,
            (None, _) => Domain::Inet,
        }
    }

    /// The host (IP literal or name), path or abstract name.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// The port (number or service name), for INET endpoints.
    pub fn port(&self) -> Option<&Port> {
        self.port.as_ref()
    }
}

impl Endpoint {
    /// `sd-listen` (`None`) or `sd-listen:NAME`.
    pub fn systemd(name: Option<&str>) -> Endpoint {
        Endpoint {
            scheme: Scheme::SdListen,
            address: Address::Host(name.unwrap_or_default().to_owned()),
            port: None,
            scope_id: 0,
        }
    }

    /// The `FileDescriptorName=` an `sd-listen:NAME` endpoint asks for.
    pub fn systemd_name(&self) -> Option<&str> {
        match (&self.scheme, &self.address) {
            (Scheme::SdListen, Address::Host(name)) if !name.is_empty() => Some(name),
            _ => None,
        }
    }
}

impl From<SocketAddr> for Endpoint {
    /// A `tcp://` endpoint; an IPv6 address keeps its zone (scope id), as `connect(2)` would.
    fn from(addr: SocketAddr) -> Self {
        let scope_id = match addr {
            SocketAddr::V6(v6) => v6.scope_id(),
            SocketAddr::V4(_) => 0,
        };
        Endpoint {
            scheme: Scheme::Tcp,
            address: Address::Ip(addr.ip()),
            port: Some(Port::Number(addr.port())),
            scope_id,
        }
    }
}

impl Endpoint {
    /// The IPv6 zone (scope id) kept from a `SocketAddrV6`, 0 when none. Written as `%N` after
    /// the address (`tcp://[fe80::1%2]:9`), as std writes a `SocketAddrV6`.
    pub fn scope_id(&self) -> u32 {
        self.scope_id
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.scheme == Scheme::SdListen {
            return match &self.address {
                Address::Host(name) if !name.is_empty() => write!(f, "sd-listen:{name}"),
                _ => f.write_str("sd-listen"),
            };
        }
        match (&self.address, &self.port) {
            (Address::Ip(IpAddr::V6(ip)), Some(port)) if self.scope_id != 0 => {
                write!(f, "{}://[{ip}%{}]:{port}", self.scheme, self.scope_id)
            }
            (Address::Ip(IpAddr::V6(ip)), Some(port)) => {
                write!(f, "{}://[{ip}]:{port}", self.scheme)
            }
            (host, Some(port)) => write!(f, "{}://{host}:{port}", self.scheme),
            (Address::Path(path), None) => {
                let path = path.to_string_lossy();
                // The parser strips one leading `//` (`unix:///run/x`); keep a path that itself
                // starts with `//` intact by writing the `//` that will be stripped.
                let slashes = if path.starts_with("//") { "//" } else { "" };
                write!(f, "{}:{slashes}{path}", self.scheme)
            }
            (address, None) => write!(f, "{}:{address}", self.scheme),
        }
    }
}

/// What is wrong with an endpoint string.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndpointErrorKind {
    /// The string is empty.
    Empty,
    /// The string contains a NUL byte.
    NulByte,
    /// Neither a `scheme:` nor one of the bare forms (`HOST:PORT`, `[IPV6]:PORT`, a path
    /// starting with `/` or `./`, `@NAME`).
    MissingScheme,
    /// A `name://` whose name is none of `tcp`, `tcp4`, `tcp6`, `udp`, `udp4`, `udp6`, `unix`,
    /// `unix-dgram`, `unixgram`, `sd-listen`.
    UnknownScheme(String),
    /// An INET scheme not followed by `//`.
    MissingSlashes,
    /// No host between `//` and `:`.
    MissingHost,
    /// A host name with a character that no host name has (the character).
    InvalidHost(char),
    /// Digits and dots that are no IPv4 address (`256.1.1.1`, `127.1`).
    InvalidIpv4(String),
    /// The text between brackets is no IPv6 address.
    InvalidIpv6(String),
    /// An IPv6 address without brackets (`tcp://::1:80`).
    UnbracketedIpv6,
    /// A `[` without its `]`.
    UnclosedBracket,
    /// Text after the host that is not `:PORT`.
    UnexpectedText(String),
    /// No `:PORT` after the host.
    MissingPort,
    /// A port that is neither a number nor a service name (the offending character).
    InvalidPort(char),
    /// A port number above 65535.
    PortOutOfRange(String),
    /// An address of the other family than the scheme's (`tcp4://[::1]:80`).
    FamilyMismatch {
        /// The scheme.
        scheme: Scheme,
        /// The address as written.
        address: String,
    },
    /// A UNIX scheme with no path or name.
    EmptyPath,
    /// A UNIX path or abstract name longer than `sun_path` holds.
    PathTooLong {
        /// Its length in bytes.
        len: usize,
        /// The largest length the platform accepts.
        max: usize,
    },
}

impl fmt::Display for EndpointErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::desc::quote::quoted;
        use EndpointErrorKind as K;
        match self {
            K::Empty => f.write_str("empty endpoint"),
            K::NulByte => f.write_str("NUL byte"),
            K::MissingScheme => f.write_str(
                "expected HOST:PORT, [IPV6]:PORT, a UNIX path starting with / or ./, @NAME, \
                 sd-listen, or a scheme (tcp://, udp://, unix:, ...)",
            ),
            K::UnknownScheme(scheme) => write!(
                f,
                "unknown scheme {} (expected tcp, tcp4, tcp6, udp, udp4, udp6, unix, \
                 unix-dgram or sd-listen; or no scheme: HOST:PORT, /PATH, @NAME)",
                quoted(scheme)
            ),
            K::MissingSlashes => {
                f.write_str("expected \"//\" after the scheme, as in tcp://HOST:PORT")
            }
            K::MissingHost => f.write_str("missing host"),
            K::InvalidHost(c) => write!(f, "character {c:?} cannot be part of a host name"),
            K::InvalidIpv4(text) => write!(f, "{} is not an IPv4 address", quoted(text)),
            K::InvalidIpv6(text) => write!(f, "{} is not an IPv6 address", quoted(text)),
            K::UnbracketedIpv6 => {
                f.write_str("an IPv6 address must be written in brackets, as [::1]:80")
            }
            K::UnclosedBracket => f.write_str("\"[\" without \"]\""),
            K::UnexpectedText(text) => write!(f, "unexpected {} after the host", quoted(text)),
            K::MissingPort => f.write_str("missing \":PORT\" (write :0 to let the kernel choose)"),
            K::InvalidPort(c) => write!(f, "character {c:?} cannot be part of a port"),
            K::PortOutOfRange(text) => {
                write!(
                    f,
                    "port {} is out of range (0 to 65535)",
                    crate::desc::quote::plain(text)
                )
            }
            K::FamilyMismatch { scheme, address } => {
                write!(f, "{address} is not an address of scheme {scheme}")
            }
            K::EmptyPath => f.write_str("missing unix socket path or @name"),
            K::PathTooLong { len, max } => write!(
                f,
                "unix socket path is {len} bytes long; this platform allows at most {max}"
            ),
        }
    }
}

/// An endpoint string that does not parse: what is wrong ([`kind`](Self::kind)) and where
/// ([`offset`](Self::offset), a byte offset into the input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointError {
    input: String,
    offset: usize,
    kind: EndpointErrorKind,
}

impl EndpointError {
    /// What is wrong.
    pub fn kind(&self) -> &EndpointErrorKind {
        &self.kind
    }

    /// The byte offset in the input where the wrong part starts.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The string that failed to parse.
    pub fn input(&self) -> &str {
        &self.input
    }
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid endpoint {} at byte {}: {}",
            crate::desc::quote::quoted(&self.input),
            self.offset,
            self.kind
        )
    }
}

impl std::error::Error for EndpointError {}

impl FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        Parser { input }.endpoint()
    }
}

struct Parser<'a> {
    input: &'a str,
}

impl Parser<'_> {
    fn error(&self, offset: usize, kind: EndpointErrorKind) -> EndpointError {
        EndpointError {
            input: self.input.to_owned(),
            offset,
            kind,
        }
    }

    fn endpoint(&self) -> Result<Endpoint, EndpointError> {
        let input = self.input;
        if input.is_empty() {
            return Err(self.error(0, EndpointErrorKind::Empty));
        }
        if let Some(at) = input.find('\0') {
            return Err(self.error(at, EndpointErrorKind::NulByte));
        }
        if input.eq_ignore_ascii_case("sd-listen") {
            return Ok(Endpoint::systemd(None));
        }
        // The bare forms, as std, tokio and actix-web take them: a path, an abstract name, or
        // `host:port` without a scheme.
        if ["/", "./", "../", "@"].iter().any(|p| input.starts_with(p)) {
            return self.unix_address(Scheme::Unix, input, 0);
        }
        if input.starts_with('[') {
            return self.inet(Scheme::Tcp, input, 0);
        }
        let Some((name, rest)) = input.split_once(':') else {
            if input.parse::<Ipv4Addr>().is_ok() {
                return Err(self.error(input.len(), EndpointErrorKind::MissingPort));
            }
            return Err(self.error(0, EndpointErrorKind::MissingScheme));
        };
        let Some(scheme) = Scheme::from_name(name) else {
            if rest.starts_with("//") {
                let kind = EndpointErrorKind::UnknownScheme(name.to_owned());
                return Err(self.error(0, kind));
            }
            // `host:port`: a bare TCP address.
            return self.inet(Scheme::Tcp, input, 0);
        };
        let at = name.len() + 1;
        if scheme == Scheme::SdListen {
            return self.systemd_name(rest, at);
        }
        if scheme.is_unix() {
            return self.unix(scheme, rest, at);
        }
        let authority = rest
            .strip_prefix("//")
            .ok_or_else(|| self.error(at, EndpointErrorKind::MissingSlashes))?;
        self.inet(scheme, authority, at + 2)
    }

    fn inet(&self, scheme: Scheme, text: &str, at: usize) -> Result<Endpoint, EndpointError> {
        let (address, port_text, port_at) = if let Some(bracketed) = text.strip_prefix('[') {
            let close = bracketed
                .find(']')
                .ok_or_else(|| self.error(at, EndpointErrorKind::UnclosedBracket))?;
            let literal = &bracketed[..close];
            let ip: Ipv6Addr = literal.parse().map_err(|_| {
                self.error(at + 1, EndpointErrorKind::InvalidIpv6(literal.to_owned()))
            })?;
            let after = &bracketed[close + 1..];
            let after_at = at + close + 2;
            let port_text = match after.strip_prefix(':') {
                Some(port) => port,
                None if after.is_empty() => {
                    return Err(self.error(after_at, EndpointErrorKind::MissingPort))
                }
                None => {
                    let kind = EndpointErrorKind::UnexpectedText(after.to_owned());
                    return Err(self.error(after_at, kind));
                }
            };
            (Address::Ip(ip.into()), port_text, after_at + 1)
        } else {
            let unbracketed = |text: &str| text.parse::<Ipv6Addr>().is_ok();
            if text.matches(':').count() > 1
                && (unbracketed(text)
                    || text.rsplit_once(':').is_some_and(|(ip, _)| unbracketed(ip)))
            {
                return Err(self.error(at, EndpointErrorKind::UnbracketedIpv6));
            }
            let Some((host, port_text)) = text.split_once(':') else {
                return Err(self.error(at + text.len(), EndpointErrorKind::MissingPort));
            };
            (self.host(host, at)?, port_text, at + host.len() + 1)
        };
        if let (Some(wanted), Address::Ip(ip)) = (scheme.domain(), &address) {
            let fits = match ip {
                IpAddr::V4(_) => wanted == Domain::Inet,
                IpAddr::V6(_) => wanted == Domain::Inet6,
            };
            if !fits {
                let kind = EndpointErrorKind::FamilyMismatch {
                    scheme,
                    address: ip.to_string(),
                };
                return Err(self.error(at, kind));
            }
        }
        let port = self.port(port_text, port_at)?;
        Ok(Endpoint {
            scheme,
            address,
            port: Some(port),
            scope_id: 0,
        })
    }

    fn host(&self, host: &str, at: usize) -> Result<Address, EndpointError> {
        if host.is_empty() {
            return Err(self.error(at, EndpointErrorKind::MissingHost));
        }
        if let Some((i, c)) = host
            .char_indices()
            .find(|&(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
        {
            return Err(self.error(at + i, EndpointErrorKind::InvalidHost(c)));
        }
        if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            // The resolver would read `127.1` as 127.0.0.1 (inet_aton); only the dotted quad is
            // taken, so what is written is what is used.
            return host
                .parse::<Ipv4Addr>()
                .map(|ip| Address::Ip(ip.into()))
                .map_err(|_| self.error(at, EndpointErrorKind::InvalidIpv4(host.to_owned())));
        }
        Ok(Address::Host(host.to_owned()))
    }

    fn port(&self, text: &str, at: usize) -> Result<Port, EndpointError> {
        if text.is_empty() {
            return Err(self.error(at, EndpointErrorKind::MissingPort));
        }
        // Service names start with a letter or digit; a sign is a mistake, not a name.
        let bad = |(i, c): &(usize, char)| {
            !(c.is_ascii_alphanumeric() || (*i > 0 && matches!(c, '.' | '-' | '_' | '+')))
        };
        if let Some((i, c)) = text.char_indices().find(bad) {
            return Err(self.error(at + i, EndpointErrorKind::InvalidPort(c)));
        }
        if text.bytes().all(|b| b.is_ascii_digit()) {
            return text
                .parse::<u16>()
                .map(Port::Number)
                .map_err(|_| self.error(at, EndpointErrorKind::PortOutOfRange(text.to_owned())));
        }
        Ok(Port::Service(text.to_owned()))
    }

    /// `sd-listen:NAME`: a name as systemd allows in `FileDescriptorName=` (printable ASCII,
    /// no `:`), at most 255 characters.
    fn systemd_name(&self, name: &str, at: usize) -> Result<Endpoint, EndpointError> {
        if name.is_empty() {
            return Err(self.error(at, EndpointErrorKind::MissingHost));
        }
        if let Some((offset, c)) = name
            .char_indices()
            .find(|&(_, c)| !c.is_ascii_graphic() || c == ':')
        {
            return Err(self.error(at + offset, EndpointErrorKind::InvalidHost(c)));
        }
        if name.len() > 255 {
            return Err(self.error(
                at + 255,
                EndpointErrorKind::UnexpectedText(name[255..].to_owned()),
            ));
        }
        Ok(Endpoint::systemd(Some(name)))
    }

    fn unix(&self, scheme: Scheme, text: &str, at: usize) -> Result<Endpoint, EndpointError> {
        let (text, at) = match text.strip_prefix("//") {
            Some(path) => (path, at + 2),
            None => (text, at),
        };
        self.unix_address(scheme, text, at)
    }

    /// A path, or `@NAME` for an abstract name, as it stands.
    fn unix_address(
        &self,
        scheme: Scheme,
        text: &str,
        at: usize,
    ) -> Result<Endpoint, EndpointError> {
        let (address, len) = match text.strip_prefix('@') {
            Some(name) => (Address::Abstract(name.as_bytes().to_vec()), name.len()),
            None => (Address::Path(PathBuf::from(text)), text.len()),
        };
        if len == 0 {
            return Err(self.error(at, EndpointErrorKind::EmptyPath));
        }
        let max = max_unix_path();
        if len > max {
            return Err(self.error(at, EndpointErrorKind::PathTooLong { len, max }));
        }
        Ok(Endpoint {
            scheme,
            address,
            port: None,
            scope_id: 0,
        })
    }
}

mod sealed {
    use super::*;

    /// What a bind or remote address sets on the builder. Public in a private module: no
    /// other crate can name it, so none can implement [`ToEndpoint`](super::ToEndpoint).
    #[derive(Debug)]
    pub struct Parts {
        pub(crate) address: Address,
        pub(crate) port: Option<Port>,
        pub(crate) domain: Option<Domain>,
        pub(crate) socket_type: Option<SocketType>,
        /// `sd-listen`: take the socket from systemd (with this name) instead.
        pub(crate) systemd: Option<Option<String>>,
        /// The IPv6 zone of an IP address (0: none).
        pub(crate) scope_id: u32,
    }
}

pub(crate) use sealed::Parts;

/// Anything that names a bind or remote address: an endpoint string (`&str`, `String`: any
/// form [`Endpoint`] parses, such as `"127.0.0.1:8080"`, `"[::1]:0"`, `"localhost:http"`,
/// `"/run/app.sock"`, `"@name"`, `"udp://0.0.0.0:53"`), an [`Endpoint`], a [`SocketAddr`]
/// (v4 or v6), an `(IpAddr, u16)` (or `Ipv4Addr`/`Ipv6Addr`), a `(&str, u16)` or
/// `(String, u16)` host and port, or a UNIX socket path (`&Path`, `PathBuf`).
///
/// Taken by [`SocketFactoryBuilder::bind`](crate::SocketFactoryBuilder::bind) and [`SocketFactoryBuilder::connect`](crate::SocketFactoryBuilder::connect). A string that
/// does not parse is kept as a [`ConfigError::InvalidEndpoint`](crate::ConfigError::InvalidEndpoint):
/// [`build`](crate::SocketFactoryBuilder::build) returns it and [`start`](crate::SocketFactoryBuilder::start)
/// reports it as a `SocketFailed` "config", as for any other bad description. Parse it into an
/// [`Endpoint`] yourself to see the error where the string is written.
///
/// The inputs are this crate's to choose: the trait cannot be implemented elsewhere.
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not name a socket address for `bind` or `connect`",
    note = "pass an endpoint string (\"127.0.0.1:8080\", \"/run/app.sock\", \"udp://[::1]:53\"), an `Endpoint`, a `SocketAddr`, an `(IpAddr, u16)` or `(&str, u16)` pair, or a `Path`"
)]
pub trait ToEndpoint {
    /// What the input sets on the builder, or why it cannot.
    #[doc(hidden)]
    fn to_parts(self) -> Result<Parts, EndpointError>;
}

fn inet(ip: IpAddr, port: u16) -> Result<Parts, EndpointError> {
    Ok(Parts {
        address: Address::Ip(ip),
        port: Some(Port::Number(port)),
        domain: None,
        socket_type: None,
        systemd: None,
        scope_id: 0,
    })
}

impl ToEndpoint for Endpoint {
    /// An endpoint sets the socket type too, and the domain when its scheme fixes one.
    fn to_parts(self) -> Result<Parts, EndpointError> {
        let systemd =
            (self.scheme == Scheme::SdListen).then(|| self.systemd_name().map(str::to_owned));
        Ok(Parts {
            domain: self.scheme.domain(),
            socket_type: Some(self.scheme.socket_type()),
            address: self.address,
            port: self.port,
            systemd,
            scope_id: self.scope_id,
        })
    }
}

impl ToEndpoint for &Endpoint {
    fn to_parts(self) -> Result<Parts, EndpointError> {
        self.clone().to_parts()
    }
}

impl ToEndpoint for &str {
    /// An endpoint string, parsed as [`Endpoint`] parses it.
    fn to_parts(self) -> Result<Parts, EndpointError> {
        self.parse::<Endpoint>()?.to_parts()
    }
}

impl ToEndpoint for String {
    fn to_parts(self) -> Result<Parts, EndpointError> {
        self.as_str().to_parts()
    }
}

impl ToEndpoint for &String {
    fn to_parts(self) -> Result<Parts, EndpointError> {
        self.as_str().to_parts()
    }
}

impl ToEndpoint for SocketAddr {
    /// An IPv6 address keeps its zone (scope id).
    fn to_parts(self) -> Result<Parts, EndpointError> {
        let parts = inet(self.ip(), self.port())?;
        Ok(match self {
            SocketAddr::V6(v6) => Parts {
                scope_id: v6.scope_id(),
                ..parts
            },
            SocketAddr::V4(_) => parts,
        })
    }
}

impl ToEndpoint for SocketAddrV4 {
    fn to_parts(self) -> Result<Parts, EndpointError> {
        SocketAddr::from(self).to_parts()
    }
}

impl ToEndpoint for SocketAddrV6 {
    fn to_parts(self) -> Result<Parts, EndpointError> {
        SocketAddr::from(self).to_parts()
    }
}

impl ToEndpoint for (IpAddr, u16) {
    fn to_parts(self) -> Result<Parts, EndpointError> {
        SocketAddr::from(self).to_parts()
    }
}

impl ToEndpoint for (Ipv4Addr, u16) {
    fn to_parts(self) -> Result<Parts, EndpointError> {
        SocketAddr::from(self).to_parts()
    }
}

impl ToEndpoint for (Ipv6Addr, u16) {
    fn to_parts(self) -> Result<Parts, EndpointError> {
        SocketAddr::from(self).to_parts()
    }
}

impl ToEndpoint for (&str, u16) {
    /// An IP literal or a host name, as [`Address::from`] reads it.
    fn to_parts(self) -> Result<Parts, EndpointError> {
        Ok(Parts {
            address: Address::from(self.0),
            port: Some(Port::Number(self.1)),
            domain: None,
            socket_type: None,
            systemd: None,
            scope_id: 0,
        })
    }
}

impl ToEndpoint for (String, u16) {
    fn to_parts(self) -> Result<Parts, EndpointError> {
        (self.0.as_str(), self.1).to_parts()
    }
}

impl ToEndpoint for &Path {
    fn to_parts(self) -> Result<Parts, EndpointError> {
        self.to_path_buf().to_parts()
    }
}

impl ToEndpoint for PathBuf {
    /// A UNIX socket path; the domain becomes UNIX.
    fn to_parts(self) -> Result<Parts, EndpointError> {
        Ok(Parts {
            address: Address::Path(self),
            port: None,
            domain: Some(Domain::Unix),
            socket_type: None,
            systemd: None,
            scope_id: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use EndpointErrorKind as K;

    fn parse(text: &str) -> Endpoint {
        text.parse()
            .unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
    }

    fn fail(text: &str) -> (usize, EndpointErrorKind) {
        match text.parse::<Endpoint>() {
            Ok(endpoint) => panic!("{text:?} should not parse, got {endpoint:?}"),
            Err(error) => (error.offset(), error.kind().clone()),
        }
    }

    #[test]
    fn systemd_forms() {
        for text in ["sd-listen", "sd-listen:web", "SD-LISTEN:api.v2"] {
            let endpoint = parse(text);
            assert_eq!(endpoint.scheme(), Scheme::SdListen);
            assert_eq!(parse(&endpoint.to_string()), endpoint, "{text}");
        }
        assert_eq!(parse("sd-listen").systemd_name(), None);
        assert_eq!(parse("sd-listen:web").systemd_name(), Some("web"));
        assert_eq!(fail("sd-listen:"), (10, K::MissingHost));
        assert_eq!(fail("sd-listen:a b"), (11, K::InvalidHost(' ')));
        assert_eq!(fail("sd-listen:a:b"), (11, K::InvalidHost(':')));
    }

    #[test]
    fn inet_forms() {
        let e = parse("tcp://127.0.0.1:8080");
        assert_eq!(e.scheme(), Scheme::Tcp);
        assert_eq!(e.address(), &Address::Ip([127, 0, 0, 1].into()));
        assert_eq!(e.port(), Some(&Port::Number(8080)));
        assert_eq!(e.domain(), Domain::Inet);

        let e = parse("tcp://[::1]:0");
        assert_eq!(e.address(), &Address::Ip(Ipv6Addr::LOCALHOST.into()));
        assert_eq!(e.domain(), Domain::Inet6);

        let e = parse("tcp://localhost:http");
        assert_eq!(e.address(), &Address::Host("localhost".into()));
        assert_eq!(e.port(), Some(&Port::Service("http".into())));

        let e = parse("UDP6://localhost:domain");
        assert_eq!(e.scheme(), Scheme::Udp6);
        assert_eq!(e.socket_type(), SocketType::Datagram);
        assert_eq!(e.domain(), Domain::Inet6);
        assert_eq!(e.to_string(), "udp6://localhost:domain");

        assert_eq!(parse("tcp://h:080").port(), Some(&Port::Number(80)));
        assert_eq!(
            parse("tcp://h:9pfs").port(),
            Some(&Port::Service("9pfs".into()))
        );
    }

    #[test]
    fn unix_forms() {
        let e = parse("unix:/run/app.sock");
        assert_eq!(e.address(), &Address::Path("/run/app.sock".into()));
        assert_eq!(e.domain(), Domain::Unix);
        assert_eq!(e.port(), None);
        assert_eq!(parse("unix:///run/app.sock"), e);
        assert_eq!(
            parse("unix:relative.sock").to_string(),
            "unix:relative.sock"
        );

        let e = parse("unix:@abstract");
        assert_eq!(e.address(), &Address::Abstract(b"abstract".to_vec()));
        assert_eq!(e.to_string(), "unix:@abstract");

        let e = parse("unixgram:/tmp/d");
        assert_eq!(e.scheme(), Scheme::UnixDgram);
        assert_eq!(e.to_string(), "unix-dgram:/tmp/d");

        let e = parse("unix:////double");
        assert_eq!(e.address(), &Address::Path("//double".into()));
        assert_eq!(parse(&e.to_string()), e);
    }

    #[test]
    fn bare_forms_are_their_scheme_forms() {
        for (bare, full) in [
            ("127.0.0.1:8080", "tcp://127.0.0.1:8080"),
            ("[::1]:0", "tcp://[::1]:0"),
            ("localhost:http", "tcp://localhost:http"),
            ("web-1.example:443", "tcp://web-1.example:443"),
            ("/run/app.sock", "unix:/run/app.sock"),
            ("//double", "unix:////double"),
            ("./app.sock", "unix:./app.sock"),
            ("../app.sock", "unix:../app.sock"),
            ("@abstract", "unix:@abstract"),
        ] {
            let endpoint = parse(bare);
            assert_eq!(endpoint, parse(full), "{bare}");
            assert_eq!(endpoint.to_string(), full, "{bare}");
        }
        assert_eq!(parse("[::1]:0").domain(), Domain::Inet6);
        assert_eq!(parse("/x").socket_type(), SocketType::Stream);
        // A scheme name before the `:` is a scheme, never a host.
        assert_eq!(fail("tcp:80"), (4, K::MissingSlashes));
        assert_eq!(
            parse("tcp://udp:53").address(),
            &Address::Host("udp".into())
        );
    }

    #[test]
    fn bare_errors_say_what_was_expected() {
        assert_eq!(fail("127.0.0.1"), (9, K::MissingPort));
        assert_eq!(fail("127.0.0.1:"), (10, K::MissingPort));
        assert_eq!(
            fail("127.0.0.1:99999"),
            (10, K::PortOutOfRange("99999".into()))
        );
        assert_eq!(fail("::1:80"), (0, K::UnbracketedIpv6));
        assert_eq!(fail(":80"), (0, K::MissingHost));
        assert_eq!(fail("[::1]"), (5, K::MissingPort));
        assert_eq!(fail("127.0.0.1:80:x"), (12, K::InvalidPort(':')));
        assert_eq!(fail("@"), (0, K::EmptyPath));
        let (_, kind) = fail("app.sock");
        assert_eq!(kind, K::MissingScheme);
        let text = "app.sock".parse::<Endpoint>().unwrap_err().to_string();
        assert!(text.contains("HOST:PORT") && text.contains("./"), "{text}");
        let text = "http://x:80".parse::<Endpoint>().unwrap_err().to_string();
        assert!(text.contains("unknown scheme \"http\""), "{text}");
        assert!(text.contains("HOST:PORT"), "{text}");
    }

    #[test]
    fn errors_say_what_and_where() {
        assert_eq!(fail(""), (0, K::Empty));
        assert_eq!(fail("garbage"), (0, K::MissingScheme));
        assert_eq!(fail("http://x:80"), (0, K::UnknownScheme("http".into())));
        assert_eq!(fail("tcp:x:80"), (4, K::MissingSlashes));
        assert_eq!(fail("tcp://:80"), (6, K::MissingHost));
        assert_eq!(fail("tcp://a b:80"), (7, K::InvalidHost(' ')));
        assert_eq!(fail("tcp://127.1:80"), (6, K::InvalidIpv4("127.1".into())));
        assert_eq!(
            fail("tcp://256.0.0.1:80"),
            (6, K::InvalidIpv4("256.0.0.1".into()))
        );
        assert_eq!(fail("tcp://::1:80"), (6, K::UnbracketedIpv6));
        assert_eq!(fail("tcp://[::1:80"), (6, K::UnclosedBracket));
        assert_eq!(fail("tcp://[::g]:80"), (7, K::InvalidIpv6("::g".into())));
        assert_eq!(fail("tcp://[::1]"), (11, K::MissingPort));
        assert_eq!(fail("tcp://[::1]x"), (11, K::UnexpectedText("x".into())));
        assert_eq!(fail("tcp://host"), (10, K::MissingPort));
        assert_eq!(fail("tcp://host:"), (11, K::MissingPort));
        assert_eq!(
            fail("tcp://host:65536"),
            (11, K::PortOutOfRange("65536".into()))
        );
        assert_eq!(fail("tcp://host:80/"), (13, K::InvalidPort('/')));
        assert_eq!(fail("tcp://host:-1"), (11, K::InvalidPort('-')));
        assert_eq!(fail("tcp://host:+80"), (11, K::InvalidPort('+')));
        assert_eq!(fail("tcp://ho\0st:80"), (8, K::NulByte));
        assert_eq!(
            fail("tcp4://[::1]:80"),
            (
                7,
                K::FamilyMismatch {
                    scheme: Scheme::Tcp4,
                    address: "::1".into()
                }
            )
        );
        assert_eq!(
            fail("udp6://10.0.0.1:53"),
            (
                7,
                K::FamilyMismatch {
                    scheme: Scheme::Udp6,
                    address: "10.0.0.1".into()
                }
            )
        );
        assert_eq!(fail("unix:"), (5, K::EmptyPath));
        assert_eq!(fail("unix:@"), (5, K::EmptyPath));
        let long = format!("unix:/{}", "x".repeat(200));
        assert_eq!(
            fail(&long),
            (
                5,
                K::PathTooLong {
                    len: 201,
                    max: max_unix_path()
                }
            )
        );
    }
}
