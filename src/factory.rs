//! The [`SocketFactory`] actor: its life (start, run, stop, restart) and how it answers messages.
//!
//! The actor turns a [`Plan`] into a socket and then plays one of three roles: a server (an
//! accept loop it spawns and cancels for pause/resume), a client (one connect future) or a
//! connectionless socket (delivered at once). Everything it makes is handed to the owner as a
//! message; everything that goes wrong, too.

use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use actix::prelude::*;
use socket2::{SockAddr, Socket};
use tokio::io::Interest;
use tokio::sync::Semaphore;

use crate::accept::{AcceptEvent, Acceptor};
use crate::addr::SocketAddress;
use crate::adopt::{self, Source};
use crate::builder::{Domain, Service, SocketFactoryBuilder, SocketType, Spec};
use crate::connect;
use crate::error::{Context as _, Failure, Operation};
use crate::messages::{
    FactoryId, GetId, GetSockName, PauseAccept, ResumeAccept, SetEvents, SocketCreated,
    SocketFailed, StopFactory,
};
use crate::open::{self, Opened};
use crate::options::Options;
use crate::owner::{self, OwnerGone, Owners, Routes};
use crate::resolve::{self, Plan, Role};
use crate::stats::{Counters, FactoryStats, GetStats};
use crate::sys;
use crate::unix::SocketFile;

/// Accepts made in one poll of the accept loop before it yields to the Arbiter's other tasks.
const ACCEPT_BUDGET: usize = 32;

/// The socket factory actor: one socket-creating job, driven by messages.
///
/// Start it with [`SocketFactory::builder`]. It then sends [`SocketCreated`] for every socket it
/// makes and [`SocketFailed`] for every failure, and takes [`PauseAccept`], [`ResumeAccept`],
/// [`SetEvents`], [`GetSockName`], [`GetId`] and [`StopFactory`].
///
/// # Life
/// - A **server** runs until its owner is gone, it is told to stop, or its listener breaks.
/// - A **client** or **datagram** factory stops once it has delivered its socket, or failed;
///   one that bound a UNIX socket file stays until its owner is gone or it is told to stop, then
///   removes the file.
/// - A setup failure (bad description, resolve, socket, bind, listen) is reported and stops it.
/// - The owner is gone when none of the recipients it set can be reached: checked at every
///   delivery and every [`owner_check_interval`](SocketFactoryBuilder::owner_check_interval).
///
/// Stopping closes the socket, drops undelivered sockets and removes a UNIX socket file the
/// factory made.
///
/// # Supervision
/// `SocketFactory` is [`Supervised`]: under [`actix::Supervisor`] a factory stopped by a failure
/// is made again from the same description (a server re-binds its address). Repeated setup
/// failures space the attempts out (100 ms doubling to 5 s), and each is reported. A factory
/// told to stop ([`StopFactory`]) or whose owner is gone closes everything and stays idle even
/// under a Supervisor; dropping its addresses ends it.
pub struct SocketFactory {
    id: FactoryId,
    /// The description, kept only by factories a Supervisor may make again (those from
    /// `build()`); `start()` sets up from it at once and lets it go.
    spec: Option<Box<Spec>>,
    /// Options for accepted sockets.
    options: Options,
    owners: Rc<Owners>,
    paused: bool,
    /// The listening socket and its accept state (servers only).
    acceptor: Option<Acceptor>,
    /// Boxed: only UNIX path factories have one, and every idle server would pay for it inline.
    file: Option<Box<SocketFile>>,
    /// Whether the accept loop is spawned (it ends when the acceptor goes).
    looping: bool,
    /// A finished one-shot socket waiting for a success recipient (boxed: servers never hold one).
    held: Option<Box<SocketCreated>>,
    /// The local address of the one-shot socket, kept for `GetSockName` after delivery.
    local: Option<Box<SocketAddress>>,
    exhausted: bool,
    counters: Counters,
    /// Domain and type of the listening socket, given to each accepted one.
    kind: (Domain, SocketType),
    /// Setups that failed in a row: under a Supervisor, each restart waits longer.
    failed_starts: u8,
    /// Stopped on purpose (StopFactory, owner gone): a Supervisor's restart must not re-open.
    retired: bool,
    /// Whether this Arbiter's owner sweep looks at us (it outlives restarts: the owners stay).
    watching: bool,
}

impl std::fmt::Debug for SocketFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketFactory")
            .field("id", &self.id)
            .field("paused", &self.paused)
            .field("listening", &self.acceptor.is_some())
            .finish_non_exhaustive()
    }
}

impl SocketFactory {
    /// A builder with POE's defaults: a stream server on any address, port 0.
    pub fn builder() -> SocketFactoryBuilder {
        SocketFactoryBuilder::new()
    }

    /// A factory that sets up when its actor starts, keeping its description so that a
    /// Supervisor can make it again (see [`SocketFactoryBuilder::build`]).
    pub(crate) fn from_builder(builder: SocketFactoryBuilder) -> SocketFactory {
        let mut factory = SocketFactory::new(builder.routes);
        factory.spec = Some(Box::new(builder.spec));
        factory
    }

    /// Makes the factory and its socket at once, inside `start()`: the description is used on
    /// the caller's stack and dropped (a name lookup keeps its own copy until it is done), so an
    /// idle factory carries none of it, and a client's `connect(2)` is under way before its
    /// actor is first polled.
    pub(crate) fn set_up(builder: SocketFactoryBuilder, ctx: &mut Context<Self>) -> SocketFactory {
        let SocketFactoryBuilder { mut spec, routes } = builder;
        let mut factory = SocketFactory::new(routes);
        factory.setup(&mut spec, ctx);
        factory
    }

    fn new(routes: Routes) -> SocketFactory {
        SocketFactory {
            id: FactoryId::next(),
            spec: None,
            options: Options::default(),
            owners: Owners::new(routes),
            paused: false,
            acceptor: None,
            file: None,
            looping: false,
            held: None,
            local: None,
            exhausted: false,
            counters: Counters::default(),
            kind: (Domain::Inet, SocketType::Stream),
            failed_starts: 0,
            retired: false,
            watching: false,
        }
    }

    /// This factory's id, carried by every message it sends: POE's `ID()`.
    pub fn id(&self) -> FactoryId {
        self.id
    }

    /// Sets up from the kept description (a factory from `build()`, at each start).
    fn setup_kept(&mut self, ctx: &mut Context<Self>) {
        let Some(mut spec) = self.spec.take() else {
            return;
        };
        self.setup(&mut spec, ctx);
        self.spec = Some(spec);
    }

    fn setup(&mut self, spec: &mut Spec, ctx: &mut Context<Self>) {
        let adopted = match &spec.source {
            Source::Describe => return self.setup_described(spec, ctx),
            Source::Adopt(original) => adopt::prepare(original),
            Source::Systemd(name) => match adopt::take_systemd(name.as_deref()) {
                Ok(socket) => {
                    // From now on (restarts included) this is an adopted socket.
                    let original = Arc::new(socket);
                    let adopted = adopt::prepare(&original);
                    spec.source = Source::Adopt(original);
                    adopted
                }
                Err(error) => Err(Failure::new(Operation::Socket, error)),
            },
        };
        let started = adopted.and_then(|adopted| {
            let kind = (adopted.domain, adopted.socket_type);
            match adopted.role {
                Role::Listen => self.serve(adopted.socket, kind, None, spec.service(), ctx),
                _ => {
                    self.finish(adopted.socket, None, kind, spec.owner_check, ctx);
                    Ok(())
                }
            }
        });
        if let Err(failure) = started {
            self.fail(failure, ctx);
        }
    }

    fn setup_described(&mut self, spec: &Spec, ctx: &mut Context<Self>) {
        let deadline = match (spec.role(), spec.connect_timeout) {
            (Role::Connect, Some(limit)) => Some(tokio::time::Instant::now() + limit),
            _ => None,
        };
        let service = spec.service();
        if let Some(ready) = resolve::plan_now(spec) {
            return self.run(ready, service, deadline, ctx);
        }
        log::debug!("factory {}: looking up names", self.id);
        let spec = spec.clone();
        let lookup = async move {
            match deadline {
                None => resolve::lookup(spec).await,
                Some(deadline) => tokio::time::timeout_at(deadline, resolve::lookup(spec))
                    .await
                    .unwrap_or_else(|_| Err(timed_out())),
            }
        };
        // `wait`, not `spawn`: messages (GetSockName, PauseAccept, ...) queue until the socket
        // exists, so they always see the factory in its final shape. The thread stays free.
        ctx.wait(
            lookup
                .into_actor(self)
                .map(move |planned, act, ctx| act.run(planned, service, deadline, ctx)),
        );
    }

    fn run(
        &mut self,
        planned: Result<Plan, Failure>,
        service: Service,
        deadline: Option<tokio::time::Instant>,
        ctx: &mut Context<Self>,
    ) {
        let started = planned.and_then(|plan| match plan.role {
            Role::Listen => {
                let Opened { socket, file } = open::open(&plan, plan.domain.to_socket2())?;
                socket.listen(plan.backlog).during(Operation::Listen)?;
                self.serve(socket, (plan.domain, plan.socket_type), file, service, ctx)
            }
            Role::Bound => {
                let Opened { socket, file } = open::open(&plan, plan.domain.to_socket2())?;
                self.file = file.map(Box::new);
                let kind = (plan.domain, plan.socket_type);
                self.finish(socket, None, kind, service.owner_check, ctx);
                Ok(())
            }
            Role::Connect => {
                self.connect(plan, service, deadline, ctx);
                Ok(())
            }
        });
        if let Err(failure) = started {
            self.fail(failure, ctx);
        }
    }

    /// Takes a listening socket into service, made here or adopted.
    fn serve(
        &mut self,
        socket: Socket,
        kind: (Domain, SocketType),
        file: Option<SocketFile>,
        service: Service,
        ctx: &mut Context<Self>,
    ) -> Result<(), Failure> {
        let listener = sys::register(socket, Interest::READABLE).during(Operation::Listen)?;
        if let Ok(local) = listener.get_ref().local_addr() {
            log::info!(
                "factory {}: listening on {}",
                self.id,
                SocketAddress::from_sockaddr(&local)
            );
        }
        let max = service.max_outstanding.min(Semaphore::MAX_PERMITS);
        self.acceptor = Some(Acceptor::new(listener, max, service.accept_backoff));
        self.options = service.options;
        self.kind = kind;
        self.file = file.map(Box::new);
        self.failed_starts = 0;
        self.watch_owner(service.owner_check, ctx);
        if !self.looping {
            self.looping = true;
            ctx.spawn(AcceptLoop);
        }
        Ok(())
    }

    fn connect(
        &mut self,
        mut plan: Plan,
        service: Service,
        deadline: Option<tokio::time::Instant>,
        ctx: &mut Context<Self>,
    ) {
        let candidates = std::mem::take(&mut plan.remote);
        let kind = (plan.domain, plan.socket_type);
        let owner_check = service.owner_check;
        let started = connect::Race::start(
            candidates,
            move |addr: &SockAddr| open::open(&plan, addr.domain()),
            service.happy_eyeballs_delay,
            deadline,
        );
        match started {
            connect::Started::Over(connected) => self.connected(connected, kind, owner_check, ctx),
            connect::Started::Racing(race) => {
                ctx.spawn(race.into_actor(self).map(move |connected, act, ctx| {
                    act.connected(connected, kind, owner_check, ctx)
                }));
            }
        }
    }

    /// The end of a client's race: deliver the socket, or report the failure.
    fn connected(
        &mut self,
        connected: connect::Connected,
        (planned_domain, socket_type): (Domain, SocketType),
        owner_check: Option<Duration>,
        ctx: &mut Context<Self>,
    ) {
        match connected {
            Ok((Opened { socket, file }, peer)) => {
                self.file = file.map(Box::new);
                // A client given both families delivers the winner's.
                let domain = Domain::of(&peer).unwrap_or(planned_domain);
                let peer = SocketAddress::from_sockaddr(&peer);
                log::debug!("factory {}: connected to {peer}", self.id);
                self.finish(socket, Some(peer), (domain, socket_type), owner_check, ctx);
            }
            Err(failure) => self.fail(failure, ctx),
        }
    }

    /// Wraps a new socket in its message, with the peer's credentials for UNIX streams.
    fn created(
        &self,
        socket: Socket,
        peer: Option<SocketAddress>,
        domain: Domain,
        socket_type: SocketType,
        permit: Option<crate::accept::Permit>,
    ) -> SocketCreated {
        let credentials = match (domain, socket_type) {
            (Domain::Unix, SocketType::Stream) => sys::peer_credentials(&socket)
                .map_err(|error| log::debug!("factory {}: no peer credentials: {error}", self.id))
                .ok(),
            _ => None,
        };
        SocketCreated {
            socket,
            peer,
            credentials,
            id: self.id,
            domain,
            socket_type,
            _permit: permit,
        }
    }

    /// Delivers a one-shot socket (client or datagram), or holds it while success is disabled.
    fn finish(
        &mut self,
        socket: Socket,
        peer: Option<SocketAddress>,
        (domain, socket_type): (Domain, SocketType),
        owner_check: Option<Duration>,
        ctx: &mut Context<Self>,
    ) {
        self.counters.accepted += 1;
        self.failed_starts = 0;
        if self.file.is_some() {
            // This factory outlives its delivery (it keeps the socket file): remember the
            // address for GetSockName. Others stop at once and skip the system call.
            self.local = socket
                .local_addr()
                .ok()
                .map(|addr| Box::new(SocketAddress::from_sockaddr(&addr)));
        }
        let created = self.created(socket, peer, domain, socket_type, None);
        if self.owners.has_success() {
            self.hand_over(created, ctx);
        } else {
            self.held = Some(Box::new(created));
        }
        if self.held.is_some() || self.file.is_some() {
            self.watch_owner(owner_check, ctx);
        }
    }

    /// Starts the periodic owner check, once, for a factory that will live on (a server, or a
    /// one-shot factory holding its socket or socket file). Short-lived clients never pay for
    /// the timer: the check at delivery covers them.
    fn watch_owner(&mut self, period: Option<Duration>, ctx: &mut Context<Self>) {
        if self.watching {
            return;
        }
        if let Some(period) = period {
            owner::watch(period, &self.owners, ctx.address().downgrade());
            self.watching = true;
        }
    }

    /// Delivers the held one-shot socket, once a success recipient is set again.
    fn flush_held(&mut self, ctx: &mut Context<Self>) {
        if !self.owners.has_success() {
            return;
        }
        if let Some(created) = self.held.take() {
            self.hand_over(*created, ctx);
        }
    }

    /// Delivers the one-shot socket: the factory's job is done.
    fn hand_over(&mut self, created: SocketCreated, ctx: &mut Context<Self>) {
        // An owner that went away meanwhile drops it: the socket closes with the message.
        if self.owners.deliver(created).is_ok() {
            self.counters.delivered += 1;
        }
        // The job is done: no Supervisor restart should redo it.
        self.retired = true;
        // A socket file must outlive the delivered socket that is bound to it.
        if self.file.is_none() {
            ctx.stop();
        }
    }

    /// Reports a failure that ends the factory's job.
    fn fail(&mut self, failure: Failure, ctx: &mut Context<Self>) {
        self.report(failure);
        self.failed_starts = self.failed_starts.saturating_add(1);
        // Nobody to retry for: a Supervisor's restart must not loop on our behalf.
        if self.owner_gone() {
            self.retired = true;
        }
        ctx.stop();
    }

    fn report(&mut self, failure: Failure) {
        self.counters.failed += 1;
        let failed = SocketFailed::new(failure, self.id);
        log::debug!("{failed}");
        if let Err(failed) = self.owners.report(failed) {
            log::warn!("{failed} (no failure recipient)");
        }
    }

    fn owner_gone(&self) -> bool {
        self.owners.gone()
    }

    /// Whether the accept loop should take clients now: listening, not paused, someone to
    /// deliver to.
    fn should_accept(&self) -> bool {
        self.acceptor.is_some() && wants_clients(self.paused, &self.owners)
    }

    /// Handles one event of the accept loop; false: take no more clients in this turn.
    fn on_accept(&mut self, event: AcceptEvent, ctx: &mut Context<Self>) -> bool {
        match event {
            AcceptEvent::Accepted {
                socket,
                peer,
                permit,
            } => {
                if self.exhausted {
                    self.exhausted = false;
                    log::info!("factory {}: accepting again after back-off", self.id);
                }
                self.counters.accepted += 1;
                let (domain, socket_type) = self.kind;
                if let Err(failure) = self.options.apply_accepted(&socket, domain.to_socket2()) {
                    // Delivering it would break the promise of the options asked for: drop
                    // this socket, say why, keep accepting.
                    self.report(failure);
                    return true;
                }
                // accept(2) gives no useful address for UNIX clients (POE leaves it undef).
                let peer = match domain {
                    Domain::Unix => None,
                    _ => peer.as_socket().map(SocketAddress::Inet),
                };
                let created = self.created(socket, peer, domain, socket_type, Some(permit));
                match self.owners.deliver(created) {
                    Ok(()) => {
                        self.counters.delivered += 1;
                        true
                    }
                    // The socket drops here: nobody can take it.
                    Err(_undelivered) => {
                        self.stop_if_owner_gone(ctx);
                        false
                    }
                }
            }
            AcceptEvent::Exhausted(error) => {
                self.exhausted = true;
                self.counters.backoff_episodes += 1;
                log::error!(
                    "factory {}: accept: {error}; backing off until descriptors are free",
                    self.id
                );
                self.report(Failure::new(Operation::Accept, error));
                true
            }
            AcceptEvent::Fatal(error) => {
                self.fail(Failure::new(Operation::Accept, error), ctx);
                false
            }
        }
    }

    fn stop_if_owner_gone(&mut self, ctx: &mut Context<Self>) {
        if self.owner_gone() {
            log::info!("factory {}: owner gone, stopping", self.id);
            self.retired = true;
            ctx.stop();
        }
    }
}

/// Not paused, and someone to deliver to.
fn wants_clients(paused: bool, owners: &Owners) -> bool {
    !paused && owners.can_deliver()
}

/// The accept loop as an actor future: events go straight to [`SocketFactory::on_accept`].
///
/// It holds nothing (so spawning it allocates nothing): the acceptor lives in the factory and
/// every poll reads the factory's state. Pausing therefore needs no cancelling and resuming no
/// respawning: actix polls a context's futures after every message it handles, so the loop sees
/// each change at once, and while it should not accept it simply registers no interest.
struct AcceptLoop;

impl ActorFuture<SocketFactory> for AcceptLoop {
    type Output = ();

    fn poll(
        self: Pin<&mut Self>,
        act: &mut SocketFactory,
        ctx: &mut Context<SocketFactory>,
        task: &mut TaskContext<'_>,
    ) -> Poll<()> {
        for _ in 0..ACCEPT_BUDGET {
            let Some(acceptor) = act.acceptor.as_mut() else {
                act.looping = false;
                return Poll::Ready(());
            };
            if !wants_clients(act.paused, &act.owners) {
                return Poll::Pending;
            }
            match acceptor.poll_event(task) {
                Poll::Ready(Some(event)) => {
                    if !act.on_accept(event, ctx) {
                        return Poll::Pending;
                    }
                }
                Poll::Ready(None) => {
                    act.looping = false;
                    return Poll::Ready(());
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        // Budget spent with clients still queued: let the Arbiter's other tasks run first.
        task.waker().wake_by_ref();
        Poll::Pending
    }
}

/// First wait before a supervised factory sets up again after a failed setup.
const RESTART_DELAY_START: Duration = Duration::from_millis(100);
/// Longest wait between two supervised setups (EADDRINUSE held by another process, say).
const RESTART_DELAY_MAX: Duration = Duration::from_secs(5);

/// How long a (re)start waits after `failed` setups in a row: none at first, then growing, so
/// a Supervisor never spins on a bind that keeps failing.
fn restart_delay(failed: u8) -> Option<Duration> {
    let doublings = u32::from(failed.checked_sub(1)?.min(16));
    Some((RESTART_DELAY_START * 2u32.pow(doublings)).min(RESTART_DELAY_MAX))
}

fn timed_out() -> Failure {
    Failure::new(
        Operation::Connect,
        io::Error::from_raw_os_error(libc::ETIMEDOUT),
    )
}

impl Actor for SocketFactory {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.retired {
            // Told to stop, or orphaned, while under a Supervisor: stay closed and idle rather
            // than re-binding in a loop. Dropping the factory's addresses ends it.
            log::debug!("factory {}: retired; holding no socket", self.id);
            return;
        }
        if self.spec.is_none() {
            // Started with `start()`: set up already, inside it.
            return;
        }
        match restart_delay(self.failed_starts) {
            None => self.setup_kept(ctx),
            Some(delay) => {
                log::debug!("factory {}: setting up again in {delay:?}", self.id);
                ctx.run_later(delay, |act, ctx| act.setup_kept(ctx));
            }
        }
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.release();
        log::debug!("factory {}: stopped", self.id);
    }
}

impl SocketFactory {
    /// Closes the listener, drops a held socket and removes our socket file.
    fn release(&mut self) {
        // The file first, while our socket still holds its inode: where the file system reuses
        // inode numbers, a closed socket's number could already name a newer file at the path.
        self.file = None;
        // A restart drops the context's futures, the accept loop with them.
        self.looping = false;
        self.acceptor = None;
        self.held = None;
        self.local = None;
        self.exhausted = false;
    }
}

impl Supervised for SocketFactory {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        log::info!("factory {}: restarting", self.id);
        self.release();
        self.paused = false;
        self.counters.since = std::time::SystemTime::now();
    }
}

impl Handler<PauseAccept> for SocketFactory {
    type Result = ();

    fn handle(&mut self, _: PauseAccept, _: &mut Context<Self>) {
        if !self.paused {
            log::debug!("factory {}: accept paused", self.id);
        }
        self.paused = true;
    }
}

impl Handler<ResumeAccept> for SocketFactory {
    type Result = ();

    fn handle(&mut self, _: ResumeAccept, _: &mut Context<Self>) {
        if self.paused {
            log::debug!("factory {}: accept resumed", self.id);
        }
        self.paused = false;
    }
}

impl Handler<SetEvents> for SocketFactory {
    type Result = ();

    fn handle(&mut self, events: SetEvents, ctx: &mut Context<Self>) {
        self.owners.change(events.success, events.failure);
        self.flush_held(ctx);
    }
}

impl Handler<GetSockName> for SocketFactory {
    type Result = io::Result<SocketAddress>;

    fn handle(&mut self, _: GetSockName, _: &mut Context<Self>) -> io::Result<SocketAddress> {
        let socket = match (&self.acceptor, &self.held) {
            (Some(acceptor), _) => acceptor.listener(),
            (None, Some(held)) => &held.socket,
            (None, None) => {
                // A delivered one-shot socket: the factory still knows where it was bound
                // (for a UNIX datagram socket, the file it keeps).
                if let Some(local) = &self.local {
                    return Ok(SocketAddress::clone(local));
                }
                return Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    "the factory holds no socket (not made yet, delivered, or failed)",
                ));
            }
        };
        socket
            .local_addr()
            .map(|addr| SocketAddress::from_sockaddr(&addr))
    }
}

impl Handler<GetId> for SocketFactory {
    type Result = MessageResult<GetId>;

    fn handle(&mut self, _: GetId, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.id)
    }
}

impl Handler<OwnerGone> for SocketFactory {
    type Result = ();

    fn handle(&mut self, _: OwnerGone, ctx: &mut Context<Self>) {
        self.stop_if_owner_gone(ctx);
    }
}

impl Handler<StopFactory> for SocketFactory {
    type Result = ();

    fn handle(&mut self, _: StopFactory, ctx: &mut Context<Self>) {
        log::info!("factory {}: told to stop", self.id);
        self.retired = true;
        ctx.stop();
    }
}

impl Handler<GetStats> for SocketFactory {
    type Result = MessageResult<GetStats>;

    fn handle(&mut self, _: GetStats, _: &mut Context<Self>) -> Self::Result {
        let (outstanding, max_outstanding) = self.acceptor.as_ref().map_or((0, 0), |acceptor| {
            (acceptor.outstanding(), acceptor.max_outstanding())
        });
        MessageResult(FactoryStats {
            accepted: self.counters.accepted,
            delivered: self.counters.delivered,
            failed: self.counters.failed,
            outstanding,
            max_outstanding,
            listening: self.acceptor.is_some(),
            paused: self.paused,
            accepting: self.should_accept() && outstanding < max_outstanding,
            backoff_episodes: self.counters.backoff_episodes,
            in_backoff: self.exhausted,
            since: self.counters.since,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_factory_fits_its_task_cell() {
        // tokio allocates a task in 128-byte steps; with actix's context (about 336 B) and
        // tokio's header and trailer (about 104 B), a factory of up to 200 B keeps an idle
        // server's task at 640 B. The benchmark's memory figure depends on it.
        let factory = std::mem::size_of::<SocketFactory>();
        assert!(factory <= 200, "SocketFactory is {factory} B");
    }

    #[test]
    fn restart_delay_grows_and_is_capped() {
        assert_eq!(restart_delay(0), None);
        assert_eq!(restart_delay(1), Some(RESTART_DELAY_START));
        assert_eq!(restart_delay(2), Some(RESTART_DELAY_START * 2));
        assert_eq!(restart_delay(40), Some(RESTART_DELAY_MAX));
        assert_eq!(restart_delay(u8::MAX), Some(RESTART_DELAY_MAX));
    }
}
