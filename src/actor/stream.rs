//! One stream type for every stream socket a factory delivers: [`SocketStream`], TCP or UNIX
//! inside, `AsyncRead + AsyncWrite`, with the peer's address.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::actor::messages::{FactoryId, SocketCreated};
use crate::desc::addr::{PeerCredentials, SocketAddress};
use crate::desc::kind::{Domain, SocketType};

/// A delivered stream socket as one async type, whatever its family: what a server listening on
/// TCP and on a UNIX path serves its sessions with, without branching on
/// [`SocketCreated::domain`] or making the session generic.
///
/// Made by [`SocketCreated::into_stream`]; `AsyncRead + AsyncWrite + Unpin`, so it goes into
/// `tokio_util::codec::Framed`, `FramedRead` (for actix's `StreamHandler`) and
/// `tokio::io::split` as a `TcpStream` does. It keeps what the message said about the
/// connection: [`peer`](Self::peer) (the client behind the PROXY protocol when there was a
/// header), [`local`](Self::local), [`credentials`](Self::credentials) and the PROXY header.
///
/// ```
/// use actix_socket_factory::{testing, SocketStream};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// /// One session for every family.
/// async fn greet(mut stream: SocketStream) -> std::io::Result<()> {
///     stream.write_all(b"hello\n").await
/// }
///
/// #[actix::main]
/// async fn main() {
///     let id = testing::factory_id(1);
///     let (tcp, mut tcp_client) = testing::created_tcp_pair(id).unwrap();
///     let (unix, mut unix_client) = testing::created_unix_pair(id).unwrap();
///     greet(tcp.into_stream().unwrap()).await.unwrap();
///     greet(unix.into_stream().unwrap()).await.unwrap();
///     let mut hello = [0; 6];
///     tcp_client.read_exact(&mut hello).await.unwrap();
///     unix_client.read_exact(&mut hello).await.unwrap();
/// }
/// ```
pub struct SocketStream {
    io: Io,
    peer: Option<SocketAddress>,
    local: Option<SocketAddress>,
    credentials: Option<PeerCredentials>,
    id: FactoryId,
    #[cfg(feature = "proxy-protocol")]
    proxy_header: Option<Box<crate::net::proxy::ProxyHeader>>,
}

enum Io {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

impl fmt::Debug for SocketStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("SocketStream");
        match &self.io {
            Io::Tcp(tcp) => debug.field("tcp", tcp),
            Io::Unix(unix) => debug.field("unix", unix),
        };
        debug
            .field("peer", &self.peer)
            .field("local", &self.local)
            .field("id", &self.id);
        #[cfg(feature = "proxy-protocol")]
        debug.field("proxy_header", &self.proxy_header);
        debug.finish()
    }
}

impl SocketCreated {
    /// The socket as a [`SocketStream`]: a tokio TCP or UNIX stream inside, registered with the
    /// calling thread's runtime, with the message's peer, local address, credentials and PROXY
    /// header. One call for every stream socket a factory delivers.
    ///
    /// # Errors
    /// `InvalidInput` for a datagram socket; an error when called outside a tokio runtime.
    pub fn into_stream(self) -> io::Result<SocketStream> {
        if self.socket_type != SocketType::Stream {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a {} {} socket is not a stream",
                    self.domain, self.socket_type
                ),
            ));
        }
        let peer = self.peer.clone();
        let local = self.local.clone();
        let credentials = self.credentials;
        let id = self.id;
        #[cfg(feature = "proxy-protocol")]
        let proxy_header = self.proxy_header.clone();
        let io = match self.domain {
            Domain::Unix => Io::Unix(self.into_unix_stream()?),
            _ => Io::Tcp(self.into_tcp_stream()?),
        };
        Ok(SocketStream {
            io,
            peer,
            local,
            credentials,
            id,
            #[cfg(feature = "proxy-protocol")]
            proxy_header,
        })
    }
}

impl SocketStream {
    /// The peer: the client of an accepted INET socket (the client named by the PROXY header,
    /// behind a balancer), the server of a client socket; `None` for an accepted UNIX socket.
    pub fn peer(&self) -> Option<&SocketAddress> {
        self.peer.as_ref()
    }

    /// The peer as an IP socket address, when it is one: what `HttpRequest::peer_addr()` and
    /// logs want.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer.as_ref().and_then(SocketAddress::as_inet)
    }

    /// The socket's local address.
    pub fn local(&self) -> Option<&SocketAddress> {
        self.local.as_ref()
    }

    /// The peer process's credentials, for a UNIX stream where the OS gives them.
    pub fn credentials(&self) -> Option<PeerCredentials> {
        self.credentials
    }

    /// The factory that made the socket.
    pub fn id(&self) -> FactoryId {
        self.id
    }

    /// `Inet`, `Inet6` or `Unix`.
    pub fn domain(&self) -> Domain {
        match &self.io {
            Io::Unix(_) => Domain::Unix,
            Io::Tcp(tcp) => match tcp.local_addr() {
                Ok(SocketAddr::V6(_)) => Domain::Inet6,
                _ => Domain::Inet,
            },
        }
    }

    /// The PROXY protocol header the connection started with (see
    /// [`SocketCreated::proxy_header`]).
    #[cfg(feature = "proxy-protocol")]
    #[cfg_attr(docsrs, doc(cfg(feature = "proxy-protocol")))]
    pub fn proxy_header(&self) -> Option<&crate::net::proxy::ProxyHeader> {
        self.proxy_header.as_deref()
    }

    /// The TCP stream inside, if it is one.
    pub fn as_tcp(&self) -> Option<&tokio::net::TcpStream> {
        match &self.io {
            Io::Tcp(tcp) => Some(tcp),
            Io::Unix(_) => None,
        }
    }

    /// The UNIX stream inside, if it is one.
    pub fn as_unix(&self) -> Option<&tokio::net::UnixStream> {
        match &self.io {
            Io::Unix(unix) => Some(unix),
            Io::Tcp(_) => None,
        }
    }
}

impl AsyncRead for SocketStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Tcp(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Io::Unix(unix) => Pin::new(unix).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for SocketStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Tcp(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Io::Unix(unix) => Pin::new(unix).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Tcp(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            Io::Unix(unix) => Pin::new(unix).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Tcp(tcp) => tcp.is_write_vectored(),
            Io::Unix(unix) => unix.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Tcp(tcp) => Pin::new(tcp).poll_flush(cx),
            Io::Unix(unix) => Pin::new(unix).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Tcp(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Io::Unix(unix) => Pin::new(unix).poll_shutdown(cx),
        }
    }
}
