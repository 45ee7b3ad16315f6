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

/// Header timeouts from this long on mean no deadline: the longest a deadline is computed for
/// (tokio's own "far future" is 30 years), so that no timeout, `Duration::MAX` included, can
/// overflow an instant.
pub const PROXY_NO_DEADLINE: Duration = Duration::from_secs(30 * 365 * 24 * 60 * 60);

/// Default cap on a header's size: v2 headers may announce up to 16 + 65,535 bytes, real
/// balancers send well under a kilobyte (addresses and a few TLVs).
pub const DEFAULT_PROXY_MAX_HEADER_LEN: usize = 4096;

/// Default bound on connections whose header is pending (being read, or read and waiting for
/// delivery): see [`ProxyProtocol::max_pending`].
pub const DEFAULT_PROXY_MAX_PENDING: usize = 1024;

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

/// What a server does with the connections from one source (an address or network, or the
/// UNIX clients): see [`ProxyProtocol::policy_for`]. The four policies of go-proxyproto (`USE`,
/// `REQUIRE`, `REJECT` as "refuse the source", `IGNORE`), nginx's `set_real_ip_from` (listed:
/// use; others: ignore) and Caddy's `fallback_policy`.
///
/// Whatever the policy, the application never receives a PROXY header as data: a header is
/// either believed (the delivered peer is the client's from the header) or stripped and
/// ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(docsrs, doc(cfg(feature = "proxy-protocol")))]
pub enum ProxyPolicy {
    /// A trusted balancer that may send a header: used when there is one (the delivered peer
    /// is the client's from the header); without one the connection is delivered as it is
    /// ([`ProxyMode::Optional`]'s reading, for this source).
    Use,
    /// A trusted balancer that must send a header: a connection without one is dropped
    /// ([`ProxyMode::Required`]'s reading, for this source).
    Require,
    /// Not trusted, refused: closed at once without reading anything, counted in
    /// [`ProxyStats::refused`](crate::ProxyStats::refused).
    Reject,
    /// Not trusted, served as itself: its peer is the connection's own, and a PROXY header it
    /// sends anyway is read off the socket and thrown away (counted in
    /// [`ProxyStats::ignored`](crate::ProxyStats::ignored)): the application neither sees it
    /// as data nor believes it. As under [`Use`](Self::Use), a client whose first bytes could
    /// still become a header is waited for (up to the header timeout), so a forged header sent
    /// slowly is stripped too; a malformed one is dropped.
    Ignore,
}

/// What happens to connections from addresses not in
/// [`allow_from`](ProxyProtocol::allow_from).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(docsrs, doc(cfg(feature = "proxy-protocol")))]
#[deprecated(
    since = "0.1.1",
    note = "use `ProxyProtocol::default_policy` with a `ProxyPolicy` (Ignore, Reject, ...)"
)]
pub enum Untrusted {
    /// Served as direct clients: [`ProxyPolicy::Ignore`] (before issue 21 a header they sent
    /// was handed to the application as data; it is now stripped and ignored).
    Direct,
    /// Closed at once, and counted in [`ProxyStats::refused`](crate::ProxyStats::refused):
    /// [`ProxyPolicy::Reject`].
    Refuse,
}

#[allow(deprecated)]
impl Default for Untrusted {
    /// [`Direct`](Self::Direct).
    fn default() -> Self {
        Untrusted::Direct
    }
}

/// PROXY protocol settings for a server: see
/// [`SocketFactoryBuilder::proxy_protocol`](crate::SocketFactoryBuilder::proxy_protocol).
///
/// # Whom to believe
/// Each connection gets a [`ProxyPolicy`] from its source: the first
/// [`policy_for`](Self::policy_for) rule whose networks hold the peer's address, then the
/// [`allow_from`](Self::allow_from) list (the mode's policy), else the
/// [`default_policy`](Self::default_policy). UNIX stream clients have no address: theirs is
/// [`unix_policy`](Self::unix_policy).
///
/// - **With no rule at all** (no `policy_for`, no `allow_from`, no `default_policy`) every
///   source is a balancer and gets the mode's policy ([`Require`](ProxyPolicy::Require) for
///   [`required`](Self::required), [`Use`](ProxyPolicy::Use) for
///   [`optional`](Self::optional)), as before: right only when balancers alone can reach the
///   port (bound to a private address, firewalled).
/// - **Once any rule is given, sources no rule matches are [`Ignore`](ProxyPolicy::Ignore)d**:
///   served as themselves, any header they send stripped and not believed. That default never
///   lets an outsider choose its address (a forged header), never hands the application a
///   header as data (which an HTTP or TLS parser would choke on, or worse), and keeps serving
///   the direct clients a server often has beside its balancers (health probes, internal
///   callers); [`Reject`](ProxyPolicy::Reject) is the choice to fail closed.
/// - UNIX clients default to the mode's policy: who may connect is decided by the socket
///   file's permissions.
///
/// ```
/// use std::time::Duration;
/// use actix_socket_factory::{ProxyPolicy, ProxyProtocol, ProxyVersions};
///
/// let proxy = ProxyProtocol::required()
///     .versions(ProxyVersions::V2)
///     .header_timeout(Duration::from_secs(3))
///     .policy_for(["10.0.0.0/8".parse().unwrap()], ProxyPolicy::Require) // the balancers
///     .policy_for(["192.0.2.7".parse().unwrap()], ProxyPolicy::Use)      // may send one
///     .policy_for(["203.0.113.0/24".parse().unwrap()], ProxyPolicy::Reject)
///     .default_policy(ProxyPolicy::Ignore);                              // everyone else
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
    /// `policy_for` rules, flattened, in the order given: the first match decides.
    pub(crate) rules: Vec<(IpNetwork, ProxyPolicy)>,
    /// For sources no rule matches (`None`: see [`policy`](Self::policy)).
    pub(crate) fallback: Option<ProxyPolicy>,
    /// For UNIX stream clients (`None`: the mode's).
    pub(crate) unix: Option<ProxyPolicy>,
    pub(crate) max_header_len: usize,
    pub(crate) max_pending: usize,
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
            rules: Vec::new(),
            fallback: None,
            unix: None,
            max_header_len: DEFAULT_PROXY_MAX_HEADER_LEN,
            max_pending: DEFAULT_PROXY_MAX_PENDING,
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
    /// and counted in [`ProxyStats::timed_out`](crate::ProxyStats::timed_out) (under
    /// [`ProxyPolicy::Use`] and [`ProxyPolicy::Ignore`], one that sent nothing is delivered).
    /// Zero is a [`ConfigError`] at build time; [`PROXY_NO_DEADLINE`] or more (`Duration::MAX`
    /// included) means no deadline: such reads end only when the client closes, the server
    /// stops, or the [`max_pending`](Self::max_pending) bound evicts them.
    pub fn header_timeout(mut self, timeout: Duration) -> Self {
        self.header_timeout = timeout;
        self
    }

    /// Connections from these addresses or networks are the balancers': they get the mode's
    /// policy ([`ProxyPolicy::Require`] or [`ProxyPolicy::Use`]; nginx's `set_real_ip_from`),
    /// after the [`policy_for`](Self::policy_for) rules; others get the
    /// [`default_policy`](Self::default_policy) ([`ProxyPolicy::Ignore`] unless set). Replaces
    /// an earlier list. IPv4 networks match IPv4-mapped IPv6 peers (`::ffff:10.0.0.1` on a
    /// dual-stack listener).
    pub fn allow_from(mut self, networks: impl IntoIterator<Item = IpNetwork>) -> Self {
        self.allowed_from = Some(networks.into_iter().collect());
        self
    }

    /// Connections from these addresses or networks get `policy` (go-proxyproto's per-upstream
    /// policy). Adds a rule: rules are tried in the order given and the first whose networks
    /// hold the peer decides, before [`allow_from`](Self::allow_from). IPv4 networks match
    /// IPv4-mapped IPv6 peers. See [whom to believe](Self#whom-to-believe).
    pub fn policy_for(
        mut self,
        networks: impl IntoIterator<Item = IpNetwork>,
        policy: ProxyPolicy,
    ) -> Self {
        self.rules
            .extend(networks.into_iter().map(|network| (network, policy)));
        self
    }

    /// The policy for sources no rule matches (Caddy's `fallback_policy`). Unset, it is
    /// [`ProxyPolicy::Ignore`] once any rule is given, and the mode's without rules (see
    /// [whom to believe](Self#whom-to-believe)); set, it applies to every address no rule
    /// matches, rules or not.
    pub fn default_policy(mut self, policy: ProxyPolicy) -> Self {
        self.fallback = Some(policy);
        self
    }

    /// The policy for UNIX stream clients, which have no address (default: the mode's).
    pub fn unix_policy(mut self, policy: ProxyPolicy) -> Self {
        self.unix = Some(policy);
        self
    }

    /// What happens to connections from addresses outside [`allow_from`](Self::allow_from).
    #[deprecated(
        since = "0.1.1",
        note = "use `default_policy(ProxyPolicy::Ignore)` or `default_policy(ProxyPolicy::Reject)`"
    )]
    #[allow(deprecated)]
    pub fn untrusted(self, untrusted: Untrusted) -> Self {
        self.default_policy(match untrusted {
            Untrusted::Direct => ProxyPolicy::Ignore,
            Untrusted::Refuse => ProxyPolicy::Reject,
        })
    }

    /// The most connections whose header is still being read (or read and waiting for
    /// delivery: a pause, the owner at its `max_outstanding`), default
    /// [`DEFAULT_PROXY_MAX_PENDING`]: proxy-protocol-rs's `max_pending_handshakes`. Pending
    /// reads hold no place under `max_outstanding`, which counts deliveries only, so silent
    /// clients never keep good ones waiting; at this bound a new read evicts the **oldest**
    /// pending read (closed, counted in [`ProxyStats::evicted`](crate::ProxyStats::evicted)),
    /// so memory and descriptors stay bounded under a flood while a good client is served
    /// at once. Zero is a [`ConfigError`] at build time.
    pub fn max_pending(mut self, max: usize) -> Self {
        self.max_pending = max;
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

    /// The timeout to set a deadline with: `None` (no deadline) from [`PROXY_NO_DEADLINE`] on,
    /// so that no value can overflow an instant (the caller still adds it with a check).
    pub(crate) fn header_deadline_after(&self) -> Option<Duration> {
        (self.header_timeout < PROXY_NO_DEADLINE).then_some(self.header_timeout)
    }

    /// Checks made by `build()`.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        if self.header_timeout.is_zero() {
            return Err(unfit(
                "the header timeout is zero: no client could send a header",
            ));
        }
        if self.max_pending == 0 {
            return Err(unfit(
                "max_pending is zero: no client could be waited for its header",
            ));
        }
        Ok(())
    }

    /// The mode's policy: a trusted balancer's.
    fn trusted(&self) -> ProxyPolicy {
        match self.mode {
            ProxyMode::Required => ProxyPolicy::Require,
            ProxyMode::Optional => ProxyPolicy::Use,
        }
    }

    /// The policy for a connection from `peer` (`None` or a UNIX address: a UNIX client).
    pub(crate) fn policy(&self, peer: Option<&SocketAddress>) -> ProxyPolicy {
        let Some(ip) = peer.and_then(SocketAddress::as_inet).map(|addr| addr.ip()) else {
            return self.unix.unwrap_or_else(|| self.trusted());
        };
        if let Some((_, policy)) = self.rules.iter().find(|(network, _)| network.contains(ip)) {
            return *policy;
        }
        if let Some(list) = &self.allowed_from {
            if list.iter().any(|network| network.contains(ip)) {
                return self.trusted();
            }
        }
        match self.fallback {
            Some(policy) => policy,
            None if self.rules.is_empty() && self.allowed_from.is_none() => self.trusted(),
            None => ProxyPolicy::Ignore,
        }
    }

    /// Whether a connection from `peer` may have its header believed.
    #[cfg(test)]
    pub(crate) fn trusts(&self, peer: Option<&SocketAddress>) -> bool {
        matches!(self.policy(peer), ProxyPolicy::Use | ProxyPolicy::Require)
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
            "invalid IP network {}: expected ADDRESS or ADDRESS/PREFIX, the prefix at most 32 \
             (IPv4) or 128 (IPv6)",
            crate::desc::quote::quoted(&self.0)
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
