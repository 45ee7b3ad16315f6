//! The PROXY protocol settings of a server's description (feature `proxy-protocol`): which
//! versions, from whom, how long. Reading headers is the mechanism's (`net::proxy`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::time::Duration;

use crate::desc::addr::SocketAddress;
use crate::desc::error::ConfigError;

/// Default time a connection has to send its whole PROXY header.
pub const DEFAULT_PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Default cap on a header's size: v2 headers may announce up to 16 + 65,535 bytes, real
/// balancers send well under a kilobyte (addresses and a few TLVs).
pub const DEFAULT_PROXY_MAX_HEADER_LEN: usize = 4096;

/// The longest v1 header, CRLF included (the specification's 107 bytes).
pub(crate) const V1_MAX_LEN: usize = 107;
/// The fixed part of a v2 header: signature, version and command, family, length.
pub(crate) const V2_FIXED_LEN: usize = 16;
/// The longest v2 header the format can express.
pub(crate) const V2_MAX_LEN: usize = V2_FIXED_LEN + u16::MAX as usize;
/// The smallest useful cap: a v2 header with two UNIX addresses (16 + 216 bytes).
pub(crate) const MIN_MAX_HEADER_LEN: usize = V2_FIXED_LEN + 216;
/// The first peek's size; the buffer grows when a v2 header announces more.
pub(crate) const FIRST_PEEK: usize = 256;

pub(crate) const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
pub(crate) const V1_PREFIX: &[u8] = b"PROXY ";

/// Whether every connection must start with a PROXY header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(docsrs, doc(cfg(feature = "proxy-protocol")))]
pub enum ProxyMode {
    /// A connection from a trusted address without a header is dropped (the specification's
    /// advice: a receiver should not guess).
    #[default]
    Required,
    /// A connection whose first bytes cannot start a header is delivered as it is, with the
    /// connection's own peer; so is one that sends nothing before the header deadline (for
    /// protocols where the server speaks first). A header that is malformed is still dropped.
    Optional,
}

/// Which header versions are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(docsrs, doc(cfg(feature = "proxy-protocol")))]
pub enum ProxyVersions {
    /// The text header only (`PROXY TCP4 ...\r\n`: HAProxy's `send-proxy`, nginx's
    /// `proxy_protocol on`).
    V1,
    /// The binary header only (HAProxy's `send-proxy-v2`, AWS NLB).
    V2,
    /// Either.
    #[default]
    Both,
}

impl ProxyVersions {
    pub(crate) fn accepts(self, version: ProxyVersion) -> bool {
        matches!(
            (self, version),
            (ProxyVersions::Both, _)
                | (ProxyVersions::V1, ProxyVersion::V1)
                | (ProxyVersions::V2, ProxyVersion::V2)
        )
    }
}

/// What happens to connections from addresses not in
/// [`allow_from`](ProxyProtocol::allow_from).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(docsrs, doc(cfg(feature = "proxy-protocol")))]
pub enum Untrusted {
    /// Delivered as direct clients: no header is read (a header they send is part of their data)
    /// and the peer is the connection's own.
    #[default]
    Direct,
    /// Closed at once, and counted in [`ProxyStats::refused`](crate::ProxyStats::refused).
    Refuse,
}

/// PROXY protocol settings for a server: see
/// [`SocketFactoryBuilder::proxy_protocol`](crate::SocketFactoryBuilder::proxy_protocol).
///
/// ```
/// use std::time::Duration;
/// use actix_socket_factory::{ProxyProtocol, ProxyVersions, Untrusted};
///
/// let proxy = ProxyProtocol::required()
///     .versions(ProxyVersions::V2)
///     .header_timeout(Duration::from_secs(3))
///     .allow_from(["10.0.0.0/8".parse().unwrap(), "192.0.2.7".parse().unwrap()])
///     .untrusted(Untrusted::Refuse);
/// # let _ = proxy;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(docsrs, doc(cfg(feature = "proxy-protocol")))]
pub struct ProxyProtocol {
    pub(crate) mode: ProxyMode,
    pub(crate) versions: ProxyVersions,
    pub(crate) header_timeout: Duration,
    /// `None`: every peer may send a header.
    pub(crate) allowed_from: Option<Vec<IpNetwork>>,
    pub(crate) untrusted: Untrusted,
    pub(crate) max_header_len: usize,
}

impl Default for ProxyProtocol {
    /// [`required`](Self::required).
    fn default() -> Self {
        ProxyProtocol::required()
    }
}

impl ProxyProtocol {
    /// Every connection must start with a header ([`ProxyMode::Required`]): v1 or v2, within
    /// [`DEFAULT_PROXY_HEADER_TIMEOUT`], from any address, at most
    /// [`DEFAULT_PROXY_MAX_HEADER_LEN`] bytes.
    pub fn required() -> Self {
        ProxyProtocol {
            mode: ProxyMode::Required,
            versions: ProxyVersions::Both,
            header_timeout: DEFAULT_PROXY_HEADER_TIMEOUT,
            allowed_from: None,
            untrusted: Untrusted::Direct,
            max_header_len: DEFAULT_PROXY_MAX_HEADER_LEN,
        }
    }

    /// A header is read when there is one ([`ProxyMode::Optional`]); otherwise as
    /// [`required`](Self::required).
    pub fn optional() -> Self {
        ProxyProtocol {
            mode: ProxyMode::Optional,
            ..ProxyProtocol::required()
        }
    }

    /// Required or optional.
    pub fn mode(mut self, mode: ProxyMode) -> Self {
        self.mode = mode;
        self
    }

    /// The header versions accepted (default both). A header of another version is dropped
    /// as malformed.
    pub fn versions(mut self, versions: ProxyVersions) -> Self {
        self.versions = versions;
        self
    }

    /// How long a connection may take to send its whole header, from its accept (default
    /// [`DEFAULT_PROXY_HEADER_TIMEOUT`]). A connection still short of a header then is dropped
    /// and counted in [`ProxyStats::timed_out`](crate::ProxyStats::timed_out). Zero is a [`ConfigError`] at build time.
    pub fn header_timeout(mut self, timeout: Duration) -> Self {
        self.header_timeout = timeout;
        self
    }

    /// Only connections from these addresses or networks are expected to send a header (the
    /// balancers'); others are treated as [`untrusted`](Self::untrusted) says. Replaces an
    /// earlier list. Without a list every peer is expected to send one. IPv4 networks match
    /// IPv4-mapped IPv6 peers (`::ffff:10.0.0.1` on a dual-stack listener). UNIX stream
    /// connections have no address and are always expected to send a header.
    pub fn allow_from(mut self, networks: impl IntoIterator<Item = IpNetwork>) -> Self {
        self.allowed_from = Some(networks.into_iter().collect());
        self
    }

    /// What happens to connections from addresses outside [`allow_from`](Self::allow_from)
    /// (default [`Untrusted::Direct`]).
    pub fn untrusted(mut self, untrusted: Untrusted) -> Self {
        self.untrusted = untrusted;
        self
    }

    /// The largest header accepted, in bytes (default [`DEFAULT_PROXY_MAX_HEADER_LEN`]); a v2
    /// header announcing more is dropped as malformed without waiting for it. Taken as at least
    /// 232 (a v2 header with UNIX addresses) and at most 65,551 (the format's limit). v1 headers
    /// are at most 107 bytes whatever this says.
    pub fn max_header_len(mut self, max: usize) -> Self {
        self.max_header_len = max.clamp(MIN_MAX_HEADER_LEN, V2_MAX_LEN);
        self
    }

    /// Checks made by `build()`.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        if self.header_timeout.is_zero() {
            return Err(unfit(
                "the header timeout is zero: no client could send a header",
            ));
        }
        Ok(())
    }

    /// Whether a connection from `peer` is expected to send a header.
    pub(crate) fn trusts(&self, peer: Option<&SocketAddress>) -> bool {
        let (Some(list), Some(ip)) = (&self.allowed_from, peer.and_then(SocketAddress::as_inet))
        else {
            return true;
        };
        list.iter().any(|network| network.contains(ip.ip()))
    }
}

/// A `ConfigError` about the PROXY protocol setting.
pub(crate) fn unfit(reason: &str) -> ConfigError {
    ConfigError::UnfitOption {
        option: "PROXY protocol",
        reason: reason.to_owned(),
    }
}

/// An IP address with a prefix length: `10.0.0.0/8`, `fd00::/8`, or one address (`192.0.2.7`,
/// a /32 or /128).
///
/// ```
/// use actix_socket_factory::IpNetwork;
///
/// let net: IpNetwork = "10.1.0.0/16".parse().unwrap();
/// assert!(net.contains("10.1.2.3".parse().unwrap()));
/// assert!(net.contains("::ffff:10.1.2.3".parse().unwrap()));
/// assert!(!net.contains("10.2.0.1".parse().unwrap()));
/// assert!("10.0.0.0/33".parse::<IpNetwork>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(docsrs, doc(cfg(feature = "proxy-protocol")))]
pub struct IpNetwork {
    addr: IpAddr,
    prefix: u8,
}

impl IpNetwork {
    /// The network of `addr` with `prefix` leading bits (host bits are cleared).
    ///
    /// # Errors
    /// A prefix longer than the address (32 bits for IPv4, 128 for IPv6).
    pub fn new(addr: IpAddr, prefix: u8) -> Result<IpNetwork, InvalidNetwork> {
        let addr = match addr {
            IpAddr::V4(v4) if prefix <= 32 => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
            }
            IpAddr::V6(v6) if prefix <= 128 => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
            _ => return Err(InvalidNetwork(format!("{addr}/{prefix}"))),
        };
        Ok(IpNetwork { addr, prefix })
    }

    /// The network's address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is in the network; an IPv4-mapped IPv6 address matches as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.contains_exactly(ip) || self.contains_exactly(ip.to_canonical())
    }

    fn contains_exactly(&self, ip: IpAddr) -> bool {
        match IpNetwork::new(ip, self.prefix) {
            Ok(network) => network.addr == self.addr,
            Err(_) => false,
        }
    }
}

impl From<IpAddr> for IpNetwork {
    /// The one address (a /32 or /128).
    fn from(addr: IpAddr) -> Self {
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        IpNetwork { addr, prefix }
    }
}

impl From<Ipv4Addr> for IpNetwork {
    fn from(addr: Ipv4Addr) -> Self {
        IpNetwork::from(IpAddr::V4(addr))
    }
}

impl From<Ipv6Addr> for IpNetwork {
    fn from(addr: Ipv6Addr) -> Self {
        IpNetwork::from(IpAddr::V6(addr))
    }
}

impl FromStr for IpNetwork {
    type Err = InvalidNetwork;

    /// `ADDRESS` or `ADDRESS/PREFIX`, IPv4 or IPv6 (without brackets).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidNetwork(text.to_owned());
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| invalid())?;
        match prefix {
            None => Ok(IpNetwork::from(addr)),
            Some(prefix) => {
                let prefix: u8 = prefix.parse().map_err(|_| invalid())?;
                IpNetwork::new(addr, prefix).map_err(|_| invalid())
            }
        }
    }
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A string or prefix that is no IP network.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(docsrs, doc(cfg(feature = "proxy-protocol")))]
pub struct InvalidNetwork(String);

impl fmt::Display for InvalidNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid IP network {:?}: expected ADDRESS or ADDRESS/PREFIX, the prefix at most 32 \
             (IPv4) or 128 (IPv6)",
            self.0
        )
    }
}

impl std::error::Error for InvalidNetwork {}

/// The version of a received header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(docsrs, doc(cfg(feature = "proxy-protocol")))]
pub enum ProxyVersion {
    /// Text.
    V1,
    /// Binary.
    V2,
}
