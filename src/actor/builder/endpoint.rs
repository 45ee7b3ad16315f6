//! The builder's endpoint methods: [`bind`](SocketFactoryBuilder::bind) and
//! [`connect`](SocketFactoryBuilder::connect) take any [`ToEndpoint`] input.

use std::net::{IpAddr, SocketAddr, SocketAddrV6};

use crate::actor::builder::SocketFactoryBuilder;
use crate::desc::addr::{Address, Port};
#[allow(unused_imports)] // for the docs' links
use crate::desc::endpoint::Endpoint;
use crate::desc::endpoint::{EndpointError, Parts, ToEndpoint};
#[allow(unused_imports)] // for the docs' links
use crate::desc::error::ConfigError;
use crate::desc::kind::{Domain, SocketType};

/// Addresses as one value: [`Endpoint`]s and the other [`ToEndpoint`] inputs.
impl SocketFactoryBuilder {
    /// The local address and port in one value. POE: `BindAddress` and `BindPort`; from an
    /// [`Endpoint`] also `SocketType`, and `SocketDomain` when its scheme fixes one (`tcp6`,
    /// `unix`, ...).
    ///
    /// Without [`connect`](Self::connect) the factory is a server (stream) or a bound socket
    /// (datagram). A string that does not parse is a [`ConfigError::InvalidEndpoint`]
    /// (see [`ToEndpoint`]).
    ///
    /// ```
    /// # use actix_socket_factory::{Endpoint, GetSockName, SocketFactory};
    /// # use actix_socket_factory::testing::Events;
    /// # #[actix::main] async fn main() {
    /// # let events = Events::start();
    /// let server = events.builder().bind("127.0.0.1:0").start();
    /// let local = server.send(GetSockName).await.unwrap().unwrap();
    /// assert_ne!(local.port(), Some(0));
    ///
    /// // Or whatever address the caller already has:
    /// let endpoint: Endpoint = "udp://[::1]:0".parse().unwrap();
    /// let _datagram = SocketFactory::builder().bind(endpoint);
    /// let _same = SocketFactory::builder().bind(("127.0.0.1", 0));
    /// # }
    /// ```
    ///
    /// An `sd-listen` endpoint takes the socket from systemd instead, as
    /// [`systemd`](Self::systemd) does.
    pub fn bind(self, local: impl ToEndpoint) -> Self {
        let parts = match local.to_parts() {
            Ok(parts) => parts,
            Err(error) => return self.place(Err(error), Self::bind_address, Self::bind_port),
        };
        let scope_id = parts.scope_id;
        let mut builder = self.place(Ok(parts), Self::bind_address, Self::bind_port);
        if scope_id != 0 || builder.spec.rare.is_some() {
            builder.spec.rare_mut().bind_scope_id = scope_id;
        }
        builder
    }

    /// The remote address and port in one value; makes the factory a client. POE:
    /// `RemoteAddress` and `RemotePort`; from an [`Endpoint`] also `SocketType`, and
    /// `SocketDomain` when its scheme fixes one.
    ///
    /// ```
    /// # use actix_socket_factory::{Endpoint, SocketFactory};
    /// let _client = SocketFactory::builder().connect("localhost:80");
    /// let endpoint: Endpoint = "tcp://localhost:http".parse().unwrap();
    /// let _also = SocketFactory::builder().connect(endpoint);
    /// let _again = SocketFactory::builder().connect(std::net::SocketAddr::from(([127, 0, 0, 1], 80)));
    /// ```
    ///
    /// An `sd-listen` endpoint names no remote: it takes the socket from systemd, as
    /// [`bind`](Self::bind) does.
    pub fn connect(self, remote: impl ToEndpoint) -> Self {
        let parts = match remote.to_parts() {
            Ok(parts) => parts,
            Err(error) => {
                return self.place(Err(error), Self::remote_address, Self::remote_port);
            }
        };
        if let (Address::Ip(IpAddr::V6(ip)), Some(Port::Number(port)), scope @ 1..) =
            (&parts.address, &parts.port, parts.scope_id)
        {
            // A zone only a whole SocketAddrV6 carries: as remote_addresses keeps it.
            let addr = SocketAddrV6::new(*ip, *port, 0, scope);
            return self
                .remote_addresses([SocketAddr::V6(addr)])
                .apply(parts.domain, parts.socket_type);
        }
        self.place(Ok(parts), Self::remote_address, Self::remote_port)
    }

    /// Sets an address and port with the given setters (bind or remote), and the domain and
    /// type the input fixes; an `sd-listen` endpoint turns into [`systemd`](Self::systemd).
    fn place(
        mut self,
        parts: Result<Parts, EndpointError>,
        set_address: fn(Self, Address) -> Self,
        set_port: fn(Self, Port) -> Self,
    ) -> Self {
        let parts = match parts {
            Ok(parts) => parts,
            Err(error) => {
                // Kept for build() and start() to report; the first bad string wins.
                self.spec.endpoint_error.get_or_insert(error);
                return self;
            }
        };
        let Parts {
            address,
            port,
            domain,
            socket_type,
            systemd,
            ..
        } = parts;
        if let Some(name) = systemd {
            return self.systemd(name.as_deref());
        }
        let mut builder = set_address(self, address);
        if let Some(port) = port {
            builder = set_port(builder, port);
        }
        builder.apply(domain, socket_type)
    }

    fn apply(mut self, domain: Option<Domain>, socket_type: Option<SocketType>) -> Self {
        if let Some(domain) = domain {
            self = self.domain(domain);
        }
        if let Some(socket_type) = socket_type {
            self = self.socket_type(socket_type);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;
    use std::path::Path;

    use super::*;

    fn parse(text: &str) -> Endpoint {
        text.parse().expect(text)
    }

    #[test]
    fn strings_are_endpoints_and_bad_ones_config_errors() {
        let b = SocketFactoryBuilder::new().bind("[::1]:0");
        assert_eq!(
            b.spec.bind_address,
            Some(Address::Ip(Ipv6Addr::LOCALHOST.into()))
        );
        assert_eq!(b.spec.domain, None);
        let b = SocketFactoryBuilder::new().connect(String::from("udp://127.0.0.1:53"));
        assert_eq!(b.spec.socket_type, SocketType::Datagram);
        assert_eq!(b.spec.remote_port, Some(Port::Number(53)));
        let path = String::from("/tmp/x.sock");
        let b = SocketFactoryBuilder::new().bind(&path);
        assert_eq!(b.spec.domain, Some(Domain::Unix));

        let error = SocketFactoryBuilder::new()
            .bind("127.0.0.1:http:x")
            .bind("127.0.0.1:0")
            .build()
            .unwrap_err();
        let crate::ConfigError::InvalidEndpoint(inner) = &error else {
            panic!("{error:?}");
        };
        assert_eq!(inner.input(), "127.0.0.1:http:x");
        assert!(error.to_string().starts_with("invalid endpoint"), "{error}");
    }

    #[test]
    fn endpoint_sets_type_and_fixed_domain() {
        let b = SocketFactoryBuilder::new().bind(parse("udp6://[::1]:0"));
        assert_eq!(b.spec.socket_type, SocketType::Datagram);
        assert_eq!(b.spec.domain, Some(Domain::Inet6));
        assert_eq!(b.spec.bind_port, Some(Port::Number(0)));

        // A plain address leaves the type and the domain as they were set.
        let b = SocketFactoryBuilder::new()
            .socket_type(SocketType::Datagram)
            .domain(Domain::Inet6)
            .connect(("localhost", 53));
        assert_eq!(b.spec.socket_type, SocketType::Datagram);
        assert_eq!(b.spec.domain, Some(Domain::Inet6));
        assert_eq!(
            b.spec.remote_address,
            Some(Address::Host("localhost".into()))
        );

        let b = SocketFactoryBuilder::new().bind(Path::new("/tmp/x.sock"));
        assert_eq!(b.spec.domain, Some(Domain::Unix));
        assert_eq!(b.spec.bind_port, None);
    }
}
