//! What kind of socket: [`Domain`], [`SocketType`] and [`Protocol`], with POE's spellings.

use std::fmt;
use std::str::FromStr;

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
        write!(
            f,
            "unknown {} {}",
            self.what,
            crate::desc::quote::quoted(&self.name)
        )
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
