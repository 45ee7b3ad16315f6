//! Who looks host names up: the pluggable [`Resolve`] trait a description may name. Its
//! backends (the default `getaddrinfo` pool, hickory) are mechanisms, in `net::lookup`.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

/// The future of a look-up: the addresses found, or why none.
///
/// Dropping it cancels the look-up, as far as the backend can (see [`Resolve`]).
pub type Resolving = Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'static>>;

/// A host name resolver for factories: the way hyper-util's `Resolve` and reqwest's
/// `dns_resolver` make it pluggable. Given to a factory with
/// [`SocketFactoryBuilder::resolver`](crate::SocketFactoryBuilder::resolver).
///
/// [`resolve`](Resolve::resolve) looks up `host` (never an IP literal: those are taken as they
/// are) and returns its addresses with `port`, in the order to try them, both families
/// included: the factory keeps those of its domain. The factory awaits the future on its
/// Arbiter's thread, so it must not block; it bounds it with its deadline (the client's
/// [`connect_timeout`](crate::SocketFactoryBuilder::connect_timeout), or the
/// [`lookup_timeout`](crate::SocketFactoryBuilder::lookup_timeout)) and drops it when the deadline
/// passes or the factory stops: dropping must cancel, or at least detach, the work.
///
/// Service names (`"https"`) and protocol names (`"tcp"`) are not looked up here: they come from
/// `/etc/services` and `/etc/protocols` (with a built-in table of common names), read on the
/// look-up pool under the same deadline, whatever the resolver.
///
/// # Backends
/// | | [`SystemResolver`](crate::SystemResolver) (default) | `HickoryResolver` (feature `hickory`) |
/// |---|---|---|
/// | how | `getaddrinfo(3)` on a pool of plain threads: 4 at once while look-ups are quick, at most 32 per process | DNS over UDP/TCP from tokio tasks on one background thread |
/// | `/etc/nsswitch.conf`, NSS modules (`files`, `dns`, `mdns4_minimal`, `myhostname`, `resolve` for systemd-resolved, LDAP/NIS, `.local` names over mDNS) | honoured, as any C program | **not** honoured: only `/etc/hosts`, then DNS |
/// | `/etc/hosts` | per nsswitch.conf | read once, when the resolver is made |
/// | `/etc/resolv.conf` (`nameserver`, `search`, `ndots`, `timeout`, `attempts`) | per the C library, re-read when it changes (glibc) | read once, when the resolver is made |
/// | `/etc/gai.conf`, RFC 6724 address order | honoured | not applied: DNS order, IPv4 and IPv6 both asked |
/// | cache | none of its own (nscd or systemd-resolved may cache) | its own, by TTL |
/// | cancellation | the wait is cancelled and a queued look-up dropped; one already running finishes on its thread, answer discarded | truly cancelled: the query task is aborted |
/// | a hung resolver | a look-up running over 100 ms no longer counts against the 4, so others get threads past it (4 more per 100 ms, 32 in all); identical names share one; beyond 32 distinct hung names, look-ups queue, each bounded by its deadline | holds nothing: each query ends at its deadline |
/// | `localhost` | answered without a look-up: `::1`, `127.0.0.1` (RFC 6761) | per `/etc/hosts` and hickory's own rules |
///
/// # Example
/// A resolver of fixed names, as a test or a service registry would have it:
/// ```
/// use std::net::SocketAddr;
/// use actix_socket_factory::{Resolve, Resolving};
///
/// #[derive(Debug)]
/// struct Fixed;
/// impl Resolve for Fixed {
///     fn resolve(&self, host: &str, port: u16) -> Resolving {
///         let found = match host {
///             "db.internal" => Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))]),
///             _ => Err(std::io::Error::new(std::io::ErrorKind::NotFound, "unknown host")),
///         };
///         Box::pin(async move { found })
///     }
/// }
/// let builder = actix_socket_factory::SocketFactory::builder()
///     .connect(("db.internal", 5432))
///     .resolver(Fixed);
/// # let _ = builder;
/// ```
pub trait Resolve: Send + Sync + 'static {
    /// Looks up `host`; the addresses come with `port`.
    fn resolve(&self, host: &str, port: u16) -> Resolving;
}

impl<R: Resolve + ?Sized> Resolve for Arc<R> {
    fn resolve(&self, host: &str, port: u16) -> Resolving {
        (**self).resolve(host, port)
    }
}

impl<R: Resolve + ?Sized> Resolve for Box<R> {
    fn resolve(&self, host: &str, port: u16) -> Resolving {
        (**self).resolve(host, port)
    }
}

/// The resolver a description holds: shared, cheap to clone with the description.
#[derive(Clone)]
pub(crate) struct Resolver(pub(crate) Arc<dyn Resolve>);

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Resolver(..)")
    }
}
