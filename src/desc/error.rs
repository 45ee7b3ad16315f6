//! What can go wrong, as data: the failing [`Operation`] and the build-time [`ConfigError`].
//!
//! Runtime failures travel to the owner as [`SocketFailed`](crate::SocketFailed) messages; they keep
//! the OS error number and text untranslated, as POE's `FailureEvent` does (`$!` as number and
//! string). Only mistakes that can be seen without touching the OS are typed [`ConfigError`]s.

use std::fmt;
use std::io;

use crate::desc::quote::{plain, quoted};

/// The step of socket creation that failed: POE's `$_[ARG0]` of a `FailureEvent`.
///
/// [`Operation::as_str`] gives POE's name for the step (mostly the name of the system call), so
/// a program ported from POE can keep matching on the same words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// The description itself was invalid (see [`ConfigError`]); POE croaks here instead.
    Config,
    /// Looking up a host name, service name or protocol name (POE blocks or croaks here).
    Resolve,
    /// `socket(2)`.
    Socket,
    /// `setsockopt(2)`, for `Reuse` and the other socket options.
    SetSockOpt,
    /// `bind(2)`, including the checks made on an existing UNIX socket file and setting the
    /// file's mode.
    Bind,
    /// `listen(2)`.
    Listen,
    /// `accept(2)`: only errors that are not per-connection hiccups reach the owner.
    Accept,
    /// `connect(2)`, including a connect timeout (`ETIMEDOUT`).
    Connect,
    /// `getsockname(2)`.
    GetSockName,
}

impl Operation {
    /// POE's name for this operation: `"socket"`, `"bind"`, `"listen"`, `"accept"`, ...
    pub const fn as_str(self) -> &'static str {
        match self {
            Operation::Config => "config",
            Operation::Resolve => "resolve",
            Operation::Socket => "socket",
            Operation::SetSockOpt => "setsockopt",
            Operation::Bind => "bind",
            Operation::Listen => "listen",
            Operation::Accept => "accept",
            Operation::Connect => "connect",
            Operation::GetSockName => "getsockname",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A mistake in a factory's description, found before any socket is made.
///
/// [`SocketFactoryBuilder::build`](crate::SocketFactoryBuilder::build) returns it as an error;
/// [`SocketFactoryBuilder::start`](crate::SocketFactoryBuilder::start) sends it to the owner as a
/// [`SocketFailed`](crate::SocketFailed) with [`Operation::Config`] and `EINVAL`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// An INET or INET6 client was given a remote address but no remote port (POE: `RemotePort`
    /// "is required for INET client sockets").
    MissingRemotePort,
    /// A remote port was given without a remote address.
    MissingRemoteAddress,
    /// A UNIX server or UNIX datagram socket needs a bind address (POE: `BindAddress` "is required
    /// for server sockets and datagram client sockets").
    MissingUnixBindAddress,
    /// An address does not belong to the factory's domain (an IPv6 literal for an INET factory, a
    /// path for an INET6 one, ...).
    DomainMismatch {
        /// Which address: `"bind"` or `"remote"`.
        which: &'static str,
        /// The address as written.
        address: String,
        /// The factory's domain.
        domain: crate::desc::kind::Domain,
    },
    /// The protocol does not fit the socket type (e.g. UDP on a stream socket).
    ProtocolMismatch {
        /// The protocol number.
        protocol: i32,
        /// The socket type.
        socket_type: crate::desc::kind::SocketType,
    },
    /// A name (host, path, service, protocol) is empty or holds a NUL byte.
    InvalidName {
        /// What kind of name.
        what: &'static str,
        /// The name as written.
        name: String,
    },
    /// A host name no DNS could hold: longer than 253 bytes (a final dot aside), or with a
    /// label longer than 63. Refused before any look-up.
    InvalidHostName {
        /// The name as written.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A port that is neither a number from 0 to 65535 nor a service name.
    InvalidPort(String),
    /// A UNIX path does not fit in `sun_path` (its length and the platform's limit).
    PathTooLong {
        /// The path's length in bytes.
        len: usize,
        /// The largest length the platform accepts.
        max: usize,
    },
    /// This platform lacks the feature (abstract UNIX names off Linux, `reuse_port` ...).
    Unsupported(&'static str),
    /// [`remote_addresses`](crate::SocketFactoryBuilder::remote_addresses) was given an empty
    /// list.
    NoRemoteAddresses,
    /// A socket option that does not fit the factory's socket (`TCP_NODELAY` on a datagram
    /// socket, a multicast group that is not one, ...).
    UnfitOption {
        /// The option, by its C name.
        option: &'static str,
        /// Why it does not fit.
        reason: String,
    },
    /// A setting outside the range the kernel (or the crate) accepts: `ttl(0)`,
    /// `tcp_keepalive_time` beyond Linux's 32,767 s, ... Caught by `build()` rather than
    /// refused by `setsockopt` on every accepted socket, or silently taken as a default.
    OutOfRange {
        /// The setting, by its C name or builder method.
        setting: &'static str,
        /// The value given.
        value: String,
        /// What is accepted.
        allowed: String,
    },
    /// No recipient at all: neither an owner nor a success or failure recipient, so nothing the
    /// factory made could ever be received.
    NoRecipient,
    /// A duration the factory cannot use (a zero owner-check period, say).
    InvalidDuration {
        /// The setting, by its builder method's name.
        setting: &'static str,
        /// Why it cannot be used.
        reason: &'static str,
    },
    /// An endpoint string given to [`bind`](crate::SocketFactoryBuilder::bind) or
    /// [`connect`](crate::SocketFactoryBuilder::connect) that does not parse: what is wrong and
    /// where.
    InvalidEndpoint(crate::desc::endpoint::EndpointError),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::MissingRemotePort => {
                f.write_str("a remote port is required for an INET or INET6 client")
            }
            ConfigError::MissingRemoteAddress => {
                f.write_str("a remote port was given without a remote address")
            }
            ConfigError::MissingUnixBindAddress => f.write_str(
                "a bind address (socket path) is required for UNIX servers and datagram sockets",
            ),
            ConfigError::DomainMismatch {
                which,
                address,
                domain,
            } => write!(
                f,
                "{which} address {} does not belong to domain {domain}",
                quoted(address)
            ),
            ConfigError::ProtocolMismatch {
                protocol,
                socket_type,
            } => write!(
                f,
                "protocol {protocol} does not fit socket type {socket_type}"
            ),
            ConfigError::InvalidName { what, name } => {
                write!(
                    f,
                    "invalid {what} {}: empty or contains a NUL byte",
                    quoted(name)
                )
            }
            ConfigError::InvalidHostName { name, reason } => {
                write!(f, "invalid host name {}: {reason}", quoted(name))
            }
            ConfigError::InvalidPort(port) => {
                write!(
                    f,
                    "invalid port {}: not a number from 0 to 65535",
                    quoted(port)
                )
            }
            ConfigError::PathTooLong { len, max } => write!(
                f,
                "unix socket path is {len} bytes long; this platform allows at most {max}"
            ),
            ConfigError::Unsupported(what) => write!(f, "{what} is not supported on this platform"),
            ConfigError::NoRemoteAddresses => f.write_str("the list of remote addresses is empty"),
            ConfigError::UnfitOption { option, reason } => {
                write!(f, "socket option {option}: {reason}")
            }
            ConfigError::OutOfRange {
                setting,
                value,
                allowed,
            } => write!(f, "{setting} {} is out of range: {allowed}", plain(value)),
            ConfigError::NoRecipient => f.write_str(
                "no recipient: give an owner, a success recipient or a failure recipient",
            ),
            ConfigError::InvalidDuration { setting, reason } => write!(f, "{setting}: {reason}"),
            ConfigError::InvalidEndpoint(error) => fmt::Display::fmt(error, f),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::InvalidEndpoint(error) => Some(error),
            _ => None,
        }
    }
}

impl ConfigError {
    /// The OS error number that stands for this mistake in a `SocketFailed`.
    pub(crate) fn errno(&self) -> i32 {
        match self {
            ConfigError::PathTooLong { .. } => libc::ENAMETOOLONG,
            ConfigError::Unsupported(_) => libc::EOPNOTSUPP,
            ConfigError::ProtocolMismatch { .. } => libc::EPROTONOSUPPORT,
            _ => libc::EINVAL,
        }
    }
}

/// One failure before it is addressed to the owner: the step and the OS's error.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) operation: Operation,
    pub(crate) errno: Option<i32>,
    pub(crate) error: io::Error,
}

impl Failure {
    pub(crate) fn new(operation: Operation, error: io::Error) -> Self {
        Failure {
            operation,
            errno: error.raw_os_error(),
            error,
        }
    }

    pub(crate) fn config(error: ConfigError) -> Self {
        let errno = error.errno();
        let kind = io::Error::from_raw_os_error(errno).kind();
        Failure {
            operation: Operation::Config,
            errno: Some(errno),
            error: io::Error::new(kind, error),
        }
    }
}

/// Tags an `io::Result` with the operation that produced it.
pub(crate) trait Context<T> {
    fn during(self, operation: Operation) -> Result<T, Failure>;
}

impl<T> Context<T> for io::Result<T> {
    fn during(self, operation: Operation) -> Result<T, Failure> {
        self.map_err(|error| Failure::new(operation, error))
    }
}
