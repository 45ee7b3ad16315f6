//! The `hickory` feature: an async DNS resolver (hickory-resolver) behind [`Resolve`].

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use hickory_resolver::config::LookupIpStrategy;
use hickory_resolver::net::NetError;
use hickory_resolver::TokioResolver;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::desc::resolver::{Resolve, Resolving};

/// An async DNS resolver for factories: [hickory-resolver](https://docs.rs/hickory-resolver)'s
/// `TokioResolver` behind [`Resolve`] (feature `hickory`).
///
/// It reads `/etc/resolv.conf` (name servers, `search`, `ndots`, `timeout`, `attempts`) and
/// `/etc/hosts` once, when made, keeps its own cache, and asks for IPv4 and IPv6 addresses both.
/// It does **not** go through `nsswitch.conf` or NSS modules: no mDNS (`.local`), no LDAP or NIS,
/// no systemd-resolved synthetic names, no `myhostname`, no `/etc/gai.conf` ordering. See
/// [`Resolve`] for the comparison with the default [`SystemResolver`](crate::SystemResolver).
///
/// Its queries run as tokio tasks on one background thread of its own (made on first use,
/// shared by every `HickoryResolver` of the process), not on the factory's Arbiter: a DNS
/// connection made for one Arbiter stays usable when that Arbiter stops, and no Arbiter or
/// System stop waits for it. A look-up whose factory gives up (deadline, stop) is aborted
/// there at once: nothing keeps running for it.
#[cfg_attr(docsrs, doc(cfg(feature = "hickory")))]
#[derive(Clone)]
pub struct HickoryResolver {
    resolver: TokioResolver,
}

impl fmt::Debug for HickoryResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HickoryResolver(..)")
    }
}

impl HickoryResolver {
    /// A resolver configured from the system: `/etc/resolv.conf` and `/etc/hosts`, asking for
    /// both address families. Reads the files now (call it once, at start-up, and share it).
    ///
    /// # Errors
    /// When the system configuration cannot be read or parsed.
    pub fn from_system_conf() -> io::Result<Self> {
        let mut builder = TokioResolver::builder_tokio().map_err(net_error)?;
        builder.options_mut().ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        Ok(Self::new(builder.build().map_err(net_error)?))
    }

    /// Wraps a resolver configured by the caller (its own name servers, options, cache size).
    /// Set its `ip_strategy` to `Ipv4AndIpv6` for clients that race both families.
    pub fn new(resolver: TokioResolver) -> Self {
        HickoryResolver { resolver }
    }
}

impl From<TokioResolver> for HickoryResolver {
    fn from(resolver: TokioResolver) -> Self {
        Self::new(resolver)
    }
}

impl Resolve for HickoryResolver {
    fn resolve(&self, host: &str, port: u16) -> Resolving {
        let resolver = self.resolver.clone();
        let host = host.to_owned();
        Box::pin(async move {
            let handle = background()?;
            let name = host.clone();
            let task = Aborting(handle.spawn(async move { resolver.lookup_ip(name).await }));
            match task.await {
                Ok(Ok(found)) => Ok(found.iter().map(|ip| SocketAddr::new(ip, port)).collect()),
                Ok(Err(error)) if error.is_no_records_found() => Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("host {}: {error}", crate::desc::quote::quoted(&host)),
                )),
                Ok(Err(error)) => Err(io::Error::other(format!(
                    "host {}: {error}",
                    crate::desc::quote::quoted(&host)
                ))),
                Err(join) => Err(io::Error::other(join)),
            }
        })
    }
}

/// A task aborted when dropped: the look-up ends with its waiter (aborting a finished task
/// does nothing).
struct Aborting<T>(JoinHandle<T>);

impl<T> Future for Aborting<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for Aborting<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The runtime the DNS tasks run on: one current-thread runtime on a plain thread, for the
/// process's life.
fn background() -> io::Result<Handle> {
    static HANDLE: OnceLock<Result<Handle, String>> = OnceLock::new();
    let handle = HANDLE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| error.to_string())?;
        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name("socket-factory-dns".into())
            .spawn(move || runtime.block_on(std::future::pending::<()>()))
            .map_err(|error| error.to_string())?;
        Ok(handle)
    });
    handle
        .clone()
        .map_err(|error| io::Error::other(format!("DNS thread: {error}")))
}

fn net_error(error: NetError) -> io::Error {
    io::Error::other(error)
}
