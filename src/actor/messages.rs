//! The messages a factory takes and sends: its whole interface after start.
//!
//! In: [`PauseAccept`], [`ResumeAccept`], [`SetEvents`], [`GetSockName`], [`GetId`],
//! [`StopFactory`]. Out: [`SocketCreated`] and [`SocketFailed`], to the recipients the owner gave.

use std::fmt;
use std::io;

use actix::{Message, Recipient};
use socket2::Socket;

use crate::desc::addr::{PeerCredentials, SocketAddress};
use crate::desc::error::{Failure, Operation};
use crate::desc::kind::{Domain, SocketType};

/// A factory's unique id: POE's wheel `ID()`, carried by every message the factory sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FactoryId(pub(crate) u64);

impl FactoryId {
    pub(crate) fn next() -> FactoryId {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(1);
        FactoryId(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The id as a number.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for FactoryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A new socket: POE's `SuccessEvent`.
///
/// Sent once per accepted client (servers), once when a connection completes (clients), and once
/// right after `bind` (datagram sockets).
///
/// The socket is a plain non-blocking, close-on-exec [`socket2::Socket`], registered with no
/// runtime, so the owner may use it on any Arbiter: the `into_*` methods turn it into the tokio or
/// std type in one call, on the receiver's side. They are named after the type they make:
/// `into_` + tokio's type ([`into_tcp_stream`](Self::into_tcp_stream),
/// [`into_udp_socket`](Self::into_udp_socket), [`into_unix_stream`](Self::into_unix_stream),
/// [`into_unix_datagram`](Self::into_unix_datagram)), `into_std_` + std's type
/// ([`into_std_tcp_stream`](Self::into_std_tcp_stream),
/// [`into_std_udp_socket`](Self::into_std_udp_socket),
/// [`into_std_unix_stream`](Self::into_std_unix_stream),
/// [`into_std_unix_datagram`](Self::into_std_unix_datagram)), as tokio's own `from_std` and
/// `into_std` pair them; [`into_socket`](Self::into_socket) keeps the socket2 type.
///
/// # Delivery
/// A server counts the `SocketCreated` messages sent and not yet dropped by the owner (see
/// [`max_outstanding`](crate::SocketFactoryBuilder::max_outstanding)): a message counts until it
/// is dropped, which happens when the owner's handler returns, or when one of the `into_*`
/// methods takes the socket out of it.
pub struct SocketCreated {
    /// The new socket: non-blocking and close-on-exec.
    pub socket: Socket,
    /// The peer: the client for an accepted INET socket, the server for a client. `None` for an
    /// accepted UNIX socket (accept gives no address, as POE notes) and an unconnected datagram
    /// socket.
    pub peer: Option<SocketAddress>,
    /// The socket's local address: the listening address for an accepted socket, the bound
    /// address for a client or datagram socket. `None` only where the OS gives none.
    pub local: Option<SocketAddress>,
    /// The factory that made the socket.
    pub id: FactoryId,
    /// The peer process's credentials, for UNIX stream sockets (accepted or connected) where
    /// the OS gives them (`SO_PEERCRED` on Linux, `getpeereid` on the BSDs); `None` otherwise.
    pub credentials: Option<PeerCredentials>,
    /// The socket's family.
    pub domain: Domain,
    /// Stream or datagram.
    pub socket_type: SocketType,
    /// Held while the message is outstanding; dropping it lets the factory accept again.
    pub(crate) _permit: Option<crate::net::accept::Permit>,
    /// The PROXY protocol header the connection started with, for a server set up with
    /// [`proxy_protocol`](crate::SocketFactoryBuilder::proxy_protocol): the version, command,
    /// addresses, TLVs and the balancer's own address. `peer` is then the client's address from
    /// the header. `None` for a connection delivered without one (an untrusted peer treated as
    /// direct, or no header under [`ProxyMode::Optional`](crate::ProxyMode::Optional)).
    #[cfg(feature = "proxy-protocol")]
    #[cfg_attr(docsrs, doc(cfg(feature = "proxy-protocol")))]
    pub proxy_header: Option<Box<crate::net::proxy::ProxyHeader>>,
}

impl fmt::Debug for SocketCreated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("SocketCreated");
        debug
            .field("socket", &self.socket)
            .field("peer", &self.peer)
            .field("local", &self.local)
            .field("credentials", &self.credentials)
            .field("id", &self.id)
            .field("domain", &self.domain)
            .field("socket_type", &self.socket_type);
        #[cfg(feature = "proxy-protocol")]
        debug.field("proxy_header", &self.proxy_header);
        debug.finish()
    }
}

impl Message for SocketCreated {
    type Result = ();
}

impl SocketCreated {
    fn check_kind(
        &self,
        domains: &[Domain],
        socket_type: SocketType,
        what: &str,
    ) -> io::Result<()> {
        if domains.contains(&self.domain) && self.socket_type == socket_type {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a {} {} socket is not a {what}",
                    self.domain, self.socket_type
                ),
            ))
        }
    }

    fn in_runtime(&self) -> io::Result<()> {
        // tokio's from_std panics outside a runtime; say it as an error instead.
        tokio::runtime::Handle::try_current()
            .map(drop)
            .map_err(|e| io::Error::other(e.to_string()))
    }

    /// The socket, as it came.
    pub fn into_socket(self) -> Socket {
        self.socket
    }

    /// The socket as a std TCP stream (still non-blocking).
    ///
    /// # Errors
    /// `InvalidInput` when the socket is not an INET or INET6 stream.
    pub fn into_std_tcp_stream(self) -> io::Result<std::net::TcpStream> {
        self.check_kind(
            &[Domain::Inet, Domain::Inet6],
            SocketType::Stream,
            "TCP stream",
        )?;
        Ok(self.socket.into())
    }

    /// The socket as a tokio TCP stream, registered with the calling thread's runtime (the
    /// Arbiter the owner runs on).
    ///
    /// # Errors
    /// `InvalidInput` when the socket is not a TCP stream; an error when called outside a tokio
    /// runtime.
    pub fn into_tcp_stream(self) -> io::Result<tokio::net::TcpStream> {
        self.in_runtime()?;
        tokio::net::TcpStream::from_std(self.into_std_tcp_stream()?)
    }

    /// The socket as a std UDP socket (still non-blocking).
    ///
    /// # Errors
    /// `InvalidInput` when the socket is not an INET or INET6 datagram socket.
    pub fn into_std_udp_socket(self) -> io::Result<std::net::UdpSocket> {
        self.check_kind(
            &[Domain::Inet, Domain::Inet6],
            SocketType::Datagram,
            "UDP socket",
        )?;
        Ok(self.socket.into())
    }

    /// The socket as a tokio UDP socket on the calling thread's runtime.
    ///
    /// # Errors
    /// As [`into_std_udp_socket`](Self::into_std_udp_socket), or when called outside a tokio
    /// runtime.
    pub fn into_udp_socket(self) -> io::Result<tokio::net::UdpSocket> {
        self.in_runtime()?;
        tokio::net::UdpSocket::from_std(self.into_std_udp_socket()?)
    }

    /// The socket as a std UNIX stream (still non-blocking).
    ///
    /// # Errors
    /// `InvalidInput` when the socket is not a UNIX stream.
    pub fn into_std_unix_stream(self) -> io::Result<std::os::unix::net::UnixStream> {
        self.check_kind(&[Domain::Unix], SocketType::Stream, "UNIX stream")?;
        Ok(self.socket.into())
    }

    /// The socket as a tokio UNIX stream on the calling thread's runtime.
    ///
    /// # Errors
    /// As [`into_std_unix_stream`](Self::into_std_unix_stream), or outside a tokio runtime.
    pub fn into_unix_stream(self) -> io::Result<tokio::net::UnixStream> {
        self.in_runtime()?;
        tokio::net::UnixStream::from_std(self.into_std_unix_stream()?)
    }

    /// The socket as a std UNIX datagram socket (still non-blocking).
    ///
    /// # Errors
    /// `InvalidInput` when the socket is not a UNIX datagram socket.
    pub fn into_std_unix_datagram(self) -> io::Result<std::os::unix::net::UnixDatagram> {
        self.check_kind(
            &[Domain::Unix],
            SocketType::Datagram,
            "UNIX datagram socket",
        )?;
        Ok(self.socket.into())
    }

    /// The socket as a tokio UNIX datagram socket on the calling thread's runtime.
    ///
    /// # Errors
    /// As [`into_std_unix_datagram`](Self::into_std_unix_datagram), or outside a tokio runtime.
    pub fn into_unix_datagram(self) -> io::Result<tokio::net::UnixDatagram> {
        self.in_runtime()?;
        tokio::net::UnixDatagram::from_std(self.into_std_unix_datagram()?)
    }

    /// The old name of [`into_std_tcp_stream`](Self::into_std_tcp_stream).
    ///
    /// # Errors
    /// As [`into_std_tcp_stream`](Self::into_std_tcp_stream).
    #[deprecated(
        since = "0.2.0",
        note = "renamed to `into_std_tcp_stream`, after std's type"
    )]
    pub fn into_std_tcp(self) -> io::Result<std::net::TcpStream> {
        self.into_std_tcp_stream()
    }

    /// The old name of [`into_std_udp_socket`](Self::into_std_udp_socket).
    ///
    /// # Errors
    /// As [`into_std_udp_socket`](Self::into_std_udp_socket).
    #[deprecated(
        since = "0.2.0",
        note = "renamed to `into_std_udp_socket`, after std's type"
    )]
    pub fn into_std_udp(self) -> io::Result<std::net::UdpSocket> {
        self.into_std_udp_socket()
    }
}

/// Something went wrong: POE's `FailureEvent` (`$operation, $errnum, $errstr, $wheel_id`).
#[derive(Debug)]
pub struct SocketFailed {
    /// The step that failed; [`Operation::as_str`] gives POE's name for it.
    pub operation: Operation,
    /// The OS error number (`errno`), when the failure came from the OS (or, for a
    /// [`Operation::Config`] failure, the number that stands for it, mostly `EINVAL`).
    pub errno: Option<i32>,
    /// The error, with its text (`Display`), untranslated.
    pub error: io::Error,
    /// The factory that failed.
    pub id: FactoryId,
}

impl Message for SocketFailed {
    type Result = ();
}

impl SocketFailed {
    pub(crate) fn new(failure: Failure, id: FactoryId) -> Self {
        SocketFailed {
            operation: failure.operation,
            errno: failure.errno,
            error: failure.error,
            id,
        }
    }
}

impl SocketFailed {
    /// The mistake in the description, for an [`Operation::Config`] failure.
    pub fn config_error(&self) -> Option<&crate::ConfigError> {
        self.error.get_ref()?.downcast_ref()
    }

    /// The operation and the OS error, without the factory: `bind: Address already in use (os
    /// error 98)`.
    pub(crate) fn describe(&self) -> String {
        format!("{}: {}", self.operation, self.error)
    }
}

impl fmt::Display for SocketFailed {
    /// `factory 7: bind: Address already in use (os error 98)`: the OS error once, with its
    /// number as the OS words it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "factory {}: {}: {}", self.id, self.operation, self.error)
    }
}

impl std::error::Error for SocketFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Stop calling `accept`: new clients wait in the kernel's listen queue. POE: `pause_accept()`.
///
/// Has no effect on a factory that does not listen. To **start a factory paused** (to hold a
/// socket, e.g. one inherited, before anything is accepted), send it right after `start()`:
/// `let server = builder.start(); server.do_send(PauseAccept);` is handled before the first
/// accept.
#[derive(Debug, Clone, Copy, Default, Message)]
#[rtype(result = "()")]
pub struct PauseAccept;

/// Accept again; every client that waited in the listen queue is then delivered. POE:
/// `resume_accept()`.
#[derive(Debug, Clone, Copy, Default, Message)]
#[rtype(result = "()")]
pub struct ResumeAccept;

/// How [`SetEvents`] changes one recipient.
#[derive(Debug, Default)]
pub enum EventChange<M: Message + Send>
where
    M::Result: Send,
{
    /// Leave it as it is.
    #[default]
    Keep,
    /// Send to this recipient from now on.
    Set(Recipient<M>),
    /// Send nothing (POE: an undefined event name).
    Disable,
}

impl<M: Message + Send> Clone for EventChange<M>
where
    M::Result: Send,
{
    fn clone(&self) -> Self {
        match self {
            EventChange::Keep => EventChange::Keep,
            EventChange::Set(recipient) => EventChange::Set(recipient.clone()),
            EventChange::Disable => EventChange::Disable,
        }
    }
}

/// Change or disable the recipients: POE's `event()`.
///
/// # Delivery
/// While the success recipient is disabled nothing is lost: a server stops accepting (clients wait
/// in the kernel's listen queue, as under [`PauseAccept`]) and a one-shot factory (client or
/// datagram) keeps its finished socket; both deliver as soon as a success recipient is set again.
/// While the failure recipient is disabled, failures are logged at `warn` and dropped.
#[derive(Debug, Clone, Default, Message)]
#[rtype(result = "()")]
pub struct SetEvents {
    /// The change to the success recipient.
    pub success: EventChange<SocketCreated>,
    /// The change to the failure recipient.
    pub failure: EventChange<SocketFailed>,
}

impl SetEvents {
    /// Replace the success recipient, keep the failure one.
    pub fn success(recipient: Recipient<SocketCreated>) -> Self {
        SetEvents {
            success: EventChange::Set(recipient),
            failure: EventChange::Keep,
        }
    }

    /// Replace the failure recipient, keep the success one.
    pub fn failure(recipient: Recipient<SocketFailed>) -> Self {
        SetEvents {
            success: EventChange::Keep,
            failure: EventChange::Set(recipient),
        }
    }

    /// Disable the success recipient, keep the failure one.
    pub fn disable_success() -> Self {
        SetEvents {
            success: EventChange::Disable,
            failure: EventChange::Keep,
        }
    }

    /// Disable the failure recipient, keep the success one.
    pub fn disable_failure() -> Self {
        SetEvents {
            success: EventChange::Keep,
            failure: EventChange::Disable,
        }
    }
}

/// Ask for the local address of the factory's socket: POE's `getsockname()`.
///
/// **The way to ask where a factory listens**, and to learn the port of a server bound to
/// port 0: `let local = server.send(GetSockName).await??;`. [`Spawned::local`](crate::Spawned)
/// and [`FactoryGroup::local_addr`](crate::FactoryGroup::local_addr) hold the same answer. A UNIX socket answers its path
/// ([`SocketAddress::Unix`]) or abstract name. A one-shot factory (client, datagram) answers the
/// address its socket was bound to for as long as it runs: a UNIX datagram factory runs until
/// stopped, to keep its file; the others stop once their socket is delivered.
///
/// # Errors
/// [`Operation::GetSockName`] data in an `io::Error`: `NotConnected` before the socket exists
/// (names still being looked up) or after a setup failure, or the OS's error.
#[derive(Debug, Clone, Copy, Default, Message)]
#[rtype(result = "io::Result<SocketAddress>")]
#[doc(alias = "local_addr")]
#[doc(alias = "getsockname")]
pub struct GetSockName;

/// Ask for the factory's id: POE's `ID()`.
#[derive(Debug, Clone, Copy, Default, Message)]
#[rtype(result = "FactoryId")]
pub struct GetId;

/// Stop the factory: close its socket, drop undelivered sockets, remove a UNIX socket file it
/// made. Dropping a POE wheel does the same.
#[derive(Debug, Clone, Copy, Default, Message)]
#[rtype(result = "()")]
pub struct StopFactory;

/// Ask a server for a duplicate of its listening socket, named, to hand to a new process
/// ([`crate::net::handover`]). The factory keeps accepting until told [`Relinquish`].
///
/// A datagram factory (or any one-shot socket's) answers too when made
/// [`shareable`](crate::SocketFactoryBuilder::shareable): with a duplicate of the socket it
/// delivered, which it keeps until [`Relinquish`].
///
/// The name is the one given, else the socket's own address as an endpoint string
/// ([`address_name`](crate::net::handover::address_name): `tcp://127.0.0.1:8080`,
/// `udp://127.0.0.1:5353`, `unix:/run/app.sock`).
///
/// # Errors
/// `NotConnected` when the factory holds no socket to share (a client or a datagram factory not
/// made `shareable`, a setup not over, stopped); the OS's error when the descriptor cannot be
/// duplicated.
#[derive(Debug, Clone, Default, Message)]
#[rtype(result = "io::Result<crate::net::handover::SharedSocket>")]
pub struct ShareListener {
    /// The name the successor takes the socket by; `None`: the listener's address.
    pub name: Option<String>,
}

impl ShareListener {
    /// A duplicate named `name`.
    pub fn named(name: impl Into<String>) -> Self {
        ShareListener {
            name: Some(name.into()),
        }
    }
}

/// Give the listening socket up to the process that now shares it: stop accepting, close this
/// process's listener and forget its UNIX socket file **without removing it** (the successor
/// serves on it), then stop the factory. Clients still in the listen queue stay there for the
/// successor; sockets already delivered are the owner's and stay open.
///
/// A [`shareable`](crate::SocketFactoryBuilder::shareable) one-shot factory closes the
/// duplicate it kept (and forgets a UNIX datagram socket's file, without removing it); the
/// socket it delivered is the application's, which stops reading it and drops it.
///
/// Send it after a successor reported ready ([`crate::net::handover::Starting::ready`]). Nothing more
/// is delivered or reported afterwards; a factory that holds no socket just stops.
#[derive(Debug, Clone, Copy, Default, Message)]
#[rtype(result = "()")]
pub struct Relinquish;
