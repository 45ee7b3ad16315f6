//! The description of a factory's socket: [`Domain`], [`SocketType`], [`Protocol`] and the
//! [`SocketFactoryBuilder`] that gathers them with the owner's recipients.
//!
//! Every builder method names the POE parameter it stands for, so a POE program can be ported
//! line by line; the types are plain Rust values, and POE's spellings (`"AF_INET6"`,
//! `"SOCK_DGRAM"`, `"tcp"`) parse into them with `FromStr`.

use std::net::SocketAddr;
use std::time::Duration;

use actix::{Actor, Addr, Handler, Recipient};

use crate::actor::factory::{Go, Launch, Ready, SocketFactory};
use crate::actor::messages::{SocketCreated, SocketFailed};
use crate::actor::owner::{Route, Routes};
use crate::desc::addr::SocketAddress;
use crate::desc::addr::{Address, Port};
use crate::desc::error::ConfigError;
use crate::desc::kind::{Domain, Protocol, SocketType};
use crate::desc::spec::{Pacing, Source, Spec, MAX_OWNER_CHECK, MAX_STAGGER};

mod endpoint;
mod options;

/// Describes a socket factory and starts it: the analogue of `POE::Wheel::SocketFactory->new(...)`.
///
/// Without a remote address the factory is a server (stream) or a bound socket (datagram); with
/// one it is a client. Every method names the POE parameter it replaces.
///
/// ```
/// # use actix::prelude::*;
/// # use actix_socket_factory::{SocketFactory, SocketCreated, SocketFailed, Domain};
/// # struct Owner;
/// # impl Actor for Owner { type Context = Context<Self>; }
/// # impl Handler<SocketCreated> for Owner { type Result = (); fn handle(&mut self, _: SocketCreated, _: &mut Context<Self>) {} }
/// # impl Handler<SocketFailed> for Owner { type Result = (); fn handle(&mut self, _: SocketFailed, _: &mut Context<Self>) {} }
/// # #[actix::main] async fn main() {
/// let owner = Owner.start();
/// let server = SocketFactory::builder()
///     .domain(Domain::Inet)          // SocketDomain => AF_INET
///     .bind_address("127.0.0.1")     // BindAddress
///     .bind_port(0)                  // BindPort
///     .listen_queue(128)             // ListenQueue
///     .owner(&owner)                 // SuccessEvent + FailureEvent
///     .start();
/// # let _ = server;
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct SocketFactoryBuilder {
    /// Boxed: the builder moves by value through every setter, so it stays a pointer wide
    /// (a `Spec` is about 480 bytes, copied at each move otherwise).
    pub(crate) spec: Box<Spec>,
    pub(crate) routes: Routes,
}

impl SocketFactoryBuilder {
    /// A builder with POE's defaults: a stream server on any address, port 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// The address family. POE: `SocketDomain` (default `AF_INET`).
    ///
    /// When left unset, it follows the addresses given: an IPv6 literal makes INET6; a path (a
    /// `Path`, or a string starting with `/`) or an abstract name (`@name`) makes UNIX; anything
    /// else INET. A relative path needs `domain(Domain::Unix)`, as it could be a host name. A
    /// stream client left unset, without a bind address, takes a host name's addresses of both
    /// families and races them (see [`remote_addresses`](Self::remote_addresses)); set INET or
    /// INET6 to keep one family, as POE does.
    pub fn domain(mut self, domain: Domain) -> Self {
        self.spec.domain = Some(domain);
        self
    }

    /// Stream or datagram. POE: `SocketType` (default `SOCK_STREAM`).
    pub fn socket_type(mut self, socket_type: SocketType) -> Self {
        self.spec.socket_type = socket_type;
        self
    }

    /// The protocol by number or name. POE: `SocketProtocol` (default: the type's own, TCP or
    /// UDP). Ignored for UNIX sockets.
    pub fn protocol(mut self, protocol: impl Into<Protocol>) -> Self {
        self.spec.protocol = Some(protocol.into());
        self
    }

    /// The local address: an IP, a host name, or a UNIX path. POE: `BindAddress` (default: any
    /// address; no default for UNIX).
    pub fn bind_address(mut self, address: impl Into<Address>) -> Self {
        self.spec.bind_address = Some(address.into());
        self
    }

    /// The local port, by number or service name. POE: `BindPort` (default 0: the kernel picks).
    pub fn bind_port(mut self, port: impl Into<Port>) -> Self {
        self.spec.bind_port = Some(port.into());
        self
    }

    /// The address to connect to: an IP, a host name or a UNIX path. Its presence makes a
    /// client. POE: `RemoteAddress`.
    ///
    /// A host name with several addresses is raced as described under
    /// [`remote_addresses`](Self::remote_addresses); it replaces a list given before.
    pub fn remote_address(mut self, address: impl Into<Address>) -> Self {
        self.spec.remote_address = Some(address.into());
        self.spec.remote_list = None;
        self
    }

    /// Several addresses to connect to, each with its port: the first that connects is
    /// delivered. No POE equivalent (POE tries the first address of a name only).
    ///
    /// The candidates are raced as RFC 8305 ("Happy Eyeballs" v2) describes: families
    /// interleaved, IPv6 first, the given order kept within a family; a new attempt starts every
    /// [`happy_eyeballs_delay`](Self::happy_eyeballs_delay) while earlier ones are still under
    /// way, or as soon as one fails (no sooner than 10 ms after the previous start, RFC 8305
    /// §5's floor). The first to connect is delivered and the others are
    /// closed; only when all fail does the owner get one `SocketFailed` with the last error.
    /// [`connect_timeout`](Self::connect_timeout) bounds the whole race.
    ///
    /// The list replaces `remote_address` and `remote_port` given before, and each address
    /// keeps its own port; a later `remote_address` replaces the list. Without an explicit [`domain`](Self::domain) or a bind
    /// address, the list may mix IPv4 and IPv6, and the delivered [`SocketCreated::domain`] is
    /// the winner's family.
    ///
    /// # Errors
    /// An empty list, or an address of the wrong family for an explicit domain, is a
    /// [`ConfigError`].
    pub fn remote_addresses(mut self, addresses: impl IntoIterator<Item = SocketAddr>) -> Self {
        let list: Vec<SocketAddr> = addresses.into_iter().collect();
        self.spec.remote_address = list.first().map(|addr| Address::Ip(addr.ip()));
        self.spec.remote_port = list.first().map(|addr| Port::Number(addr.port()));
        self.spec.remote_list = Some(list);
        self
    }

    /// The stagger between two connection attempts when a client has several addresses
    /// (default [`DEFAULT_HAPPY_EYEBALLS_DELAY`](crate::DEFAULT_HAPPY_EYEBALLS_DELAY), 250 ms); values under 10 ms are taken as
    /// 10 ms, RFC 8305's floor, and values over an hour as an hour. RFC 8305 recommends 100 ms
    /// to 2 s.
    pub fn happy_eyeballs_delay(mut self, delay: Duration) -> Self {
        self.spec.happy_eyeballs_delay =
            delay.clamp(crate::net::connect::MIN_ATTEMPT_GAP, MAX_STAGGER);
        self
    }

    /// The port to connect to, by number or service name; required for INET clients. POE:
    /// `RemotePort`.
    pub fn remote_port(mut self, port: impl Into<Port>) -> Self {
        self.spec.remote_port = Some(port.into());
        self
    }

    /// The `listen(2)` backlog, clipped to the system's `SOMAXCONN`. POE: `ListenQueue`
    /// (default `SOMAXCONN`).
    ///
    /// 0 means the default, as in POE (Linux would otherwise take it as a queue of one). A
    /// value above `SOMAXCONN` is clipped, and the clipping logged once at `debug` with both
    /// values.
    pub fn listen_queue(mut self, backlog: u32) -> Self {
        self.spec.listen_queue = Some(backlog);
        self
    }

    /// Sets `SO_REUSEADDR` so a server can be bound again at once after it stops. POE: `Reuse`.
    ///
    /// # Notes
    /// POE leaves it off unless asked. Here it defaults to on for stream servers, as std, mio and
    /// tokio do on Unix (Linux never lets two live listeners share a port through it), and off for
    /// datagram sockets, where on Linux it would let a second socket share the port.
    ///
    /// # Platforms
    /// On macOS and FreeBSD (the BSD rule) it also lets a listener of the same user bind a
    /// specific address on a port a wildcard listener holds, and the more specific one then gets
    /// that address's connections; Linux refuses such a bind (`EADDRINUSE`) while the wildcard
    /// listener lives.
    pub fn reuse(mut self, reuse: bool) -> Self {
        self.spec.reuse = Some(reuse);
        self
    }

    /// Sets `SO_REUSEPORT`, so several sockets (one factory per Arbiter, or per process) can
    /// bind the same address and the kernel spreads new connections or datagrams across them.
    /// Not in POE. See [`FactoryGroup`](crate::FactoryGroup) for one factory per Arbiter.
    ///
    /// # Notes
    /// Linux lets only sockets of the same user share a port this way.
    ///
    /// # Platforms
    /// Linux spreads connections across the sockets (`SO_REUSEPORT`), and so does FreeBSD, where
    /// the factory sets `SO_REUSEPORT_LB`. macOS and the other BSDs share the address only: each
    /// new connection goes to one of the sockets, not spread;
    /// [`FactoryGroup`](crate::FactoryGroup) has one member there.
    pub fn reuse_port(mut self, reuse_port: bool) -> Self {
        self.spec.reuse_port = reuse_port;
        self
    }

    /// Where each new socket goes. POE: `SuccessEvent`.
    ///
    /// The factory holds the recipient weakly: it does not keep its actor alive.
    pub fn on_success(mut self, recipient: Recipient<SocketCreated>) -> Self {
        self.routes.success = Route::To(recipient.downgrade());
        self
    }

    /// Where failures go. POE: `FailureEvent`.
    ///
    /// The factory holds the recipient weakly: it does not keep its actor alive.
    pub fn on_failure(mut self, recipient: Recipient<SocketFailed>) -> Self {
        self.routes.failure = Route::To(recipient.downgrade());
        self
    }

    /// Both recipients from one actor that handles both messages.
    ///
    /// The factory keeps one address for both, which is lighter than two recipients, and holds
    /// it weakly ([`WeakAddr`](actix::WeakAddr)): the owner still stops when its own last `Addr`
    /// is dropped, and the factory follows it.
    pub fn owner<A>(mut self, owner: &Addr<A>) -> Self
    where
        A: Actor + Handler<SocketCreated> + Handler<SocketFailed>,
        A::Context:
            actix::dev::ToEnvelope<A, SocketCreated> + actix::dev::ToEnvelope<A, SocketFailed>,
    {
        self.routes = Routes {
            owner: Some(Box::new(owner.downgrade())),
            success: Route::Owner,
            failure: Route::Owner,
        };
        self
    }

    /// How long a server waits before calling `accept` again when it fails for lack of
    /// resources (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`): `first` after the first error of an
    /// episode, doubling at each further one up to `max` (default [`DEFAULT_ACCEPT_BACKOFF`](crate::DEFAULT_ACCEPT_BACKOFF):
    /// 5 ms to 1 s).
    ///
    /// The listener is kept and the queued clients wait in the kernel; each episode gives one
    /// [`SocketFailed`] ("accept") and one `error!` line, whatever its length. An episode ends
    /// only once accepting has gone well for `max` since its last error: a server held at its
    /// limit, each freed descriptor taken by the next client, reports once, not per client. Pauses are whole
    /// milliseconds, at least 1 ms (retrying at once would spin on `EMFILE`); a `max` below
    /// `first` is taken as `first`.
    pub fn accept_backoff(mut self, first: Duration, max: Duration) -> Self {
        self.spec.accept_backoff = Pacing::new(first, max);
        self
    }

    /// Caps the sockets sent to the owner and not yet handled by it (default
    /// [`DEFAULT_MAX_OUTSTANDING`](crate::DEFAULT_MAX_OUTSTANDING)).
    ///
    /// # Delivery
    /// At the cap a server stops calling `accept` until the owner handles (or drops) one of the
    /// [`SocketCreated`] messages; clients wait in the kernel's listen queue meanwhile, so a slow
    /// owner costs latency, never memory or lost clients. A value of 0 is taken as 1.
    pub fn max_outstanding(mut self, max: usize) -> Self {
        self.spec.max_outstanding = max.max(1);
        self
    }

    /// Bounds a client's connect, name lookup and every raced address included; on expiry the
    /// owner gets `SocketFailed` "connect" with `ETIMEDOUT` and the half-open socket is closed.
    /// Default: none (the kernel's own limit).
    ///
    /// A limit too far away to express as an instant (`Duration::MAX`, say) means no limit.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.spec.connect_timeout = Some(timeout);
        self
    }

    /// How often a long-lived factory (a server, or a one-shot factory still holding its socket
    /// or socket file) checks that its owner is still there (default [`DEFAULT_OWNER_CHECK`](crate::DEFAULT_OWNER_CHECK));
    /// `None` turns the check off, leaving only the check made at each delivery.
    ///
    /// # Notes
    /// actix gives no signal when an actor's mailbox closes, so an idle server can only notice
    /// its owner's end by looking. One task per Arbiter and period looks at all its factories'
    /// recipients at once: a few atomic loads per factory per period, no timer of its own. It
    /// is rung by one thread of the process (named `owner-check`, running only while some
    /// factory is watched), so no Arbiter keeps a timer in its runtime's wheel, which would
    /// cost every park of that Arbiter. A one-shot factory that delivers in its first turn is
    /// never watched: its delivery is its check.
    ///
    /// # Errors
    /// A zero period is a [`ConfigError::InvalidDuration`] (a sweep could never rest); periods
    /// over a day are taken as a day.
    pub fn owner_check_interval(mut self, interval: Option<Duration>) -> Self {
        self.spec.owner_check = interval.map(|period| period.min(MAX_OWNER_CHECK));
        self
    }

    /// Gives a UNIX socket file this mode (e.g. `0o660`), exactly, whatever the umask.
    ///
    /// # Notes
    /// On Linux the file is born with at most these permissions (the mode is set on the socket
    /// before `bind`), so there is no moment where it is more open than asked; elsewhere the mode
    /// is set just after `bind`, and until then the umask alone limits it. Setting the mode
    /// never follows a symlink. A failure is reported as "bind".
    pub fn unix_mode(mut self, mode: u32) -> Self {
        self.spec.unix.mode = Some(mode & 0o7777);
        self
    }

    /// Lets a UNIX server replace a stale socket file (one nothing listens on) left at its path by
    /// a crash. A live socket is never replaced, nor anything that is not a socket.
    ///
    /// # Errors
    /// Without it a stale file fails the start: `SocketFailed` "bind" `EADDRINUSE`, whose text
    /// names this option. A live socket at the path fails the same way, with or without it.
    pub fn replace_stale_socket(mut self, replace: bool) -> Self {
        self.spec.unix.replace_stale = replace;
        self
    }

    /// Uses a socket made elsewhere instead of making one: a listening `std::net::TcpListener`
    /// or `UnixListener` (served like a factory-made server), a bound `UdpSocket` or
    /// `UnixDatagram` (delivered at once), or any `OwnedFd` / socket2 `Socket` of those kinds.
    /// Not in POE.
    ///
    /// The factory works on a non-blocking, close-on-exec duplicate (a blocking std listener is
    /// fine) and keeps the original for restarts under a `Supervisor`. The address, domain and
    /// type settings of the builder are ignored; recipients and delivery settings apply.
    ///
    /// # Errors
    /// A stream socket that is not listening, or a family or type the factory does not know,
    /// gives a `SocketFailed` (`listen` / `socket`) rather than a hang.
    pub fn adopt(mut self, socket: impl Into<socket2::Socket>) -> Self {
        self.spec.source = Source::Adopt(std::sync::Arc::new(socket.into()));
        self
    }

    /// Uses a socket passed by systemd socket activation (`LISTEN_PID`, `LISTEN_FDS`,
    /// `LISTEN_FDNAMES`): the one named `name` (a `FileDescriptorName=` of the `.socket` unit),
    /// or with `None` the first one not yet taken by another factory. Otherwise as
    /// [`adopt`](Self::adopt).
    ///
    /// # Errors
    /// When the process was not socket-activated, or no socket has that name: a `SocketFailed`
    /// with [`Operation::Socket`](crate::Operation::Socket) and `ENOENT`-like `NotFound`.
    /// A `LISTEN_FDS` that is not a count of descriptors this process can have (negative, not a
    /// number, beyond `RLIMIT_NOFILE`) is the same failure with `InvalidInput`.
    ///
    /// # Notes
    /// `LISTEN_PID`, when set, must be this process. When it is not set at all, `LISTEN_FDS` is
    /// obeyed (as listenfd and tokio-listener do), for `systemfd --no-pid` and the like;
    /// systemd itself always sets it. Not so in a process started by a handover's successor,
    /// whose inherited variables were the successor's (see [`crate::net::handover`]).
    pub fn systemd(mut self, name: Option<&str>) -> Self {
        self.spec.source = Source::Systemd(name.map(str::to_owned));
        self
    }

    /// Lets a datagram factory (or any one-shot socket: a client, an adopted bound socket) hand
    /// its socket to a successor process: after delivering the socket the factory keeps a
    /// duplicate and answers [`ShareListener`](crate::ShareListener) with it, as a server does
    /// with its listener, until [`Relinquish`](crate::Relinquish), [`StopFactory`](crate::StopFactory)
    /// or its owner goes. Servers can always be shared; this changes nothing for them.
    ///
    /// The delivered socket stays the application's: after a handover it stops reading it and
    /// drops it (both processes read the same queue meanwhile, so no datagram is lost). Without
    /// this setting a datagram factory stops once it has delivered its socket, and dropping the
    /// socket closes it at once.
    pub fn shareable(mut self, shareable: bool) -> Self {
        self.spec.shareable = shareable;
        self
    }

    /// Checks the description and makes the factory actor, not yet started.
    ///
    /// Use it to learn the factory's [`id`](SocketFactory::id) before it runs, or to start it
    /// under a `Supervisor`. Such a factory keeps its description, to make its socket again at
    /// each restart, and sets up when its actor starts.
    ///
    /// # Errors
    /// A [`ConfigError`] for mistakes visible without the OS: a missing remote port, an address of
    /// the wrong family, a UNIX path too long, ...
    ///
    /// A description with no recipient at all (neither [`owner`](Self::owner) nor
    /// [`on_success`](Self::on_success) / [`on_failure`](Self::on_failure)) is
    /// [`ConfigError::NoRecipient`]: nothing it made could ever be received.
    pub fn build(self) -> Result<SocketFactory, ConfigError> {
        self.check()?;
        Ok(SocketFactory::kept(self.spec, self.routes))
    }

    fn check(&self) -> Result<(), ConfigError> {
        self.spec.validate()?;
        if self.routes.is_empty() {
            return Err(ConfigError::NoRecipient);
        }
        Ok(())
    }

    /// Starts the factory on the current Arbiter and returns its address, as POE's `new()`
    /// always returns an object: when the socket cannot be made, a [`SocketFailed`] arrives
    /// instead (with [`Operation::Config`](crate::Operation::Config) for a bad description).
    /// [`spawn`](Self::spawn) is the awaited form, giving the error where you await.
    ///
    /// The socket is made before this returns (a server is listening, a client's `connect(2)`
    /// is under way) unless a host or service name must be looked up first, which happens
    /// afterwards, off the thread. Its outcome is delivered from the factory's own turn, after
    /// this has returned and after any message sent to the factory right after it (see
    /// [`SocketFactory`]'s `# Delivery`). The description is not kept: see
    /// [`build`](Self::build) for a factory that can be made again.
    ///
    /// A description with no recipient at all is logged at `warn` and makes nothing.
    ///
    /// # Panics
    /// When called outside a running actix `System` (no current Arbiter), as any actor's
    /// `start()` does.
    pub fn start(self) -> Addr<SocketFactory> {
        let SocketFactoryBuilder { spec, routes } = self;
        crate::actor::factory::first_turn::start(move |cx| {
            SocketFactory::set_up(spec, routes, Launch::Now, cx)
        })
    }

    /// Starts the factory on another Arbiter, so its accept loop runs on that Arbiter's thread;
    /// the sockets it delivers are not tied to it and serve on any Arbiter.
    ///
    /// Nothing is delivered before this has returned: the factory sets up on its Arbiter at
    /// once, but delivers only after a message the calling Arbiter sends it at its next turn
    /// (the same guarantee as [`start`](Self::start) on one thread).
    pub fn start_in_arbiter(self, arbiter: &actix::ArbiterHandle) -> Addr<SocketFactory> {
        let SocketFactoryBuilder { spec, routes } = self;
        let addr = SocketFactory::start_in_arbiter(arbiter, move |ctx| {
            SocketFactory::set_up(spec, routes, Launch::Gated, ctx)
        });
        // The gate opens at this Arbiter's next turn, so not even a message handled on another
        // thread can precede the caller's next statement. Outside an Arbiter (a plain thread),
        // it opens at once.
        if tokio::runtime::Handle::try_current().is_ok() {
            let gate = addr.clone();
            actix_rt::spawn(async move { gate.do_send(Go) });
        } else {
            addr.do_send(Go);
        }
        addr
    }

    /// Starts the factory on the current Arbiter and resolves once its setup is over, with the
    /// OS error right there when it fails: `let server = builder.spawn().await?`, as
    /// actix-web's `bind(..)?`.
    ///
    /// Setup is over when a server listens, a datagram socket is bound, or a client's
    /// `connect(2)` is under way (or done): the [`Spawned`] gives the factory's address and its
    /// local address. A failure before that (a bad description, an unknown host, a port in use,
    /// a refused UNIX connect, ...) is the `Err`, and is *not* sent to the failure recipient as
    /// well; what happens afterwards (a client's connect failing, accept errors) arrives as
    /// messages, as with [`start`](Self::start).
    ///
    /// # Cancel safety
    /// Dropping the future before it resolves leaves the factory running: its setup failure, if
    /// any, then goes to the failure recipient as with `start()`.
    ///
    /// # Panics
    /// As [`start`](Self::start): outside a running actix `System`.
    pub fn spawn(self) -> impl std::future::Future<Output = Result<Spawned, SocketFailed>> {
        let SocketFactoryBuilder { spec, routes } = self;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let addr = SocketFactory::create(move |ctx| {
            SocketFactory::set_up(spec, routes, Launch::Awaited(tx), ctx)
        });
        async move {
            match rx.await {
                Ok(Ok(Ready { local })) => Ok(Spawned { addr, local }),
                Ok(Err(failed)) => Err(failed),
                // The factory stopped without a word: only a System shutting down does that.
                Err(_) => Err(SocketFailed::new(
                    crate::desc::error::Failure::new(
                        crate::Operation::Socket,
                        std::io::Error::other("the factory stopped before its setup was over"),
                    ),
                    crate::FactoryId::next(),
                )),
            }
        }
    }

    /// Who looks host names up (default: [`SystemResolver`](crate::SystemResolver), the C
    /// library's `getaddrinfo` on a small detached thread pool). With the `hickory` feature,
    /// `HickoryResolver` is an async DNS resolver; any [`Resolve`](crate::Resolve)
    /// implementation will do. Not in POE.
    ///
    /// The factory drops the look-up when its deadline passes or it stops: see
    /// [`lookup_timeout`](Self::lookup_timeout). An IP literal is never looked up.
    pub fn resolver(mut self, resolver: impl crate::Resolve) -> Self {
        self.spec.rare_mut().resolver = Some(crate::desc::resolver::Resolver(std::sync::Arc::new(
            resolver,
        )));
        self
    }

    /// How long a factory under an [`actix::Supervisor`] waits before setting up again after a
    /// failed setup: `first` after the first failure, doubling at each further one up to `max`
    /// (default [`DEFAULT_RESTART_BACKOFF`](crate::DEFAULT_RESTART_BACKOFF), 100 ms to 5 s). Not in POE.
    ///
    /// This is what makes a supervised **client** a reconnecting client: a refused or timed-out
    /// connect stops the factory, the Supervisor makes it again, and each attempt waits longer.
    /// A successful setup (listening, connected, bound) starts the count again. Values under
    /// 1 ms are taken as 1 ms, and a `max` below `first` as `first`. See the
    /// `reconnecting_client` example.
    pub fn restart_backoff(mut self, first: Duration, max: Duration) -> Self {
        let first = first.max(Duration::from_millis(1));
        self.spec.restart_backoff = (first, max.max(first));
        self
    }

    /// Bounds the look-up of the factory's names (host, service and protocol names together;
    /// default [`DEFAULT_LOOKUP_TIMEOUT`](crate::DEFAULT_LOOKUP_TIMEOUT), 10 s). A client's look-up also ends with its
    /// [`connect_timeout`](Self::connect_timeout), whichever comes first. Not in POE.
    ///
    /// # Errors
    /// On expiry the owner gets `SocketFailed` with `ETIMEDOUT`: "resolve" when this limit
    /// expired, "connect" when a client's connect timeout did (as for a slow connect).
    /// A zero limit is a [`ConfigError::InvalidDuration`].
    pub fn lookup_timeout(mut self, timeout: Duration) -> Self {
        self.spec.rare_mut().lookup_timeout = Some(timeout);
        self
    }

    /// Reads a PROXY protocol header (v1 or v2, as HAProxy, nginx's stream module, AWS NLB and
    /// others send it) at the start of every accepted connection, and delivers the client's
    /// address from it as [`SocketCreated::peer`]; the header's details and the balancer's own
    /// address are in `SocketCreated::proxy_header`. Stream servers only (TCP and UNIX). Not
    /// in POE.
    ///
    /// Only the header's bytes are read: the client's first bytes stay in the socket for the
    /// owner. Whose header is believed is decided per source
    /// ([`ProxyPolicy`](crate::ProxyPolicy): use, require, reject, or ignore and strip); the
    /// application never receives a header as data. Headers are read beside the accept loop,
    /// never holding it or other connections up: connections still reading are bounded by
    /// [`ProxyProtocol::max_pending`](crate::ProxyProtocol::max_pending) (the oldest evicted
    /// at the bound), not by [`max_outstanding`](Self::max_outstanding), which counts
    /// deliveries only. Headers read during a [`PauseAccept`](crate::PauseAccept) are
    /// delivered after the [`ResumeAccept`](crate::ResumeAccept). A connection that sends no
    /// complete header before the deadline, or a malformed, oversized or (when required)
    /// missing one, is closed, counted in [`FactoryStats::proxy`](crate::FactoryStats::proxy)
    /// and logged at `debug`: never a [`SocketFailed`]. A `LOCAL` header (a health check) is
    /// delivered with the connection's own peer, as the specification says.
    ///
    /// ```
    /// # use actix::prelude::*;
    /// # use actix_socket_factory::{SocketFactory, SocketCreated, SocketFailed, ProxyProtocol, ProxyPolicy};
    /// # struct Owner;
    /// # impl Actor for Owner { type Context = Context<Self>; }
    /// # impl Handler<SocketCreated> for Owner { type Result = (); fn handle(&mut self, _: SocketCreated, _: &mut Context<Self>) {} }
    /// # impl Handler<SocketFailed> for Owner { type Result = (); fn handle(&mut self, _: SocketFailed, _: &mut Context<Self>) {} }
    /// # #[actix::main] async fn main() {
    /// # let owner = Owner.start();
    /// let server = SocketFactory::builder()
    ///     .bind_address("127.0.0.1")
    ///     .bind_port(0)
    ///     .proxy_protocol(
    ///         ProxyProtocol::required()
    ///             .policy_for(["127.0.0.1".parse().unwrap()], ProxyPolicy::Require),
    ///     )
    ///     .owner(&owner)
    ///     .build()
    ///     .expect("a valid description");
    /// # let _ = server;
    /// # }
    /// ```
    ///
    /// # Errors
    /// On a client or datagram factory, or with a zero header timeout:
    /// [`ConfigError::UnfitOption`] from `build()` (`SocketFailed` "config" from `start()`). An
    /// adopted socket that turns out not to be a listener ignores the setting.
    #[cfg(feature = "proxy-protocol")]
    #[cfg_attr(docsrs, doc(cfg(feature = "proxy-protocol")))]
    pub fn proxy_protocol(mut self, proxy: crate::net::proxy::ProxyProtocol) -> Self {
        self.spec.proxy = Some(proxy);
        self
    }
}

/// A factory started with [`SocketFactoryBuilder::spawn`], its setup over.
#[derive(Debug, Clone)]
pub struct Spawned {
    /// The factory's address: keep it to stop the factory or send it messages.
    pub addr: Addr<SocketFactory>,
    /// Where its socket is bound: the listening address, the bound datagram address, or a
    /// client's local address (`None` when it has none yet, as an unbound UNIX client). What
    /// [`GetSockName`](crate::GetSockName), the way to ask a running factory, answered at the
    /// end of setup.
    pub local: Option<SocketAddress>,
}

impl Spawned {
    /// The local address as an IP socket address, for INET and INET6 factories: [`local`](Self::local)
    /// as std's type (see [`GetSockName`](crate::GetSockName) to ask a running factory).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &self.local {
            Some(SocketAddress::Inet(addr)) => Some(*addr),
            _ => None,
        }
    }

    /// The local port, for INET and INET6 factories.
    pub fn port(&self) -> Option<u16> {
        self.local_addr().map(|addr| addr.port())
    }
}

impl SocketFactory {
    /// A builder with POE's defaults: a stream server on any address, port 0.
    pub fn builder() -> SocketFactoryBuilder {
        SocketFactoryBuilder::new()
    }
}
