//! The [`SocketFactory`] actor: one explicit state machine, and how it answers messages.
//!
//! A factory is always in exactly one [`State`]. Each message and each event of its own futures
//! (the look-up, the connect race, the accept loop, the outbox) is handled per state, so every
//! rule of the contract in [`SocketFactory`]'s docs is one visible match arm.

use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use actix::prelude::*;
use socket2::{SockAddr, Socket};
use tokio::io::Interest;
use tokio::sync::{oneshot, Semaphore};

use crate::actor::messages::{
    FactoryId, GetId, GetSockName, PauseAccept, ResumeAccept, SetEvents, SocketCreated,
    SocketFailed, StopFactory,
};
use crate::actor::owner::{self, OwnerGone, Owners, Routes};
use crate::actor::stats::{Counters, FactoryStats, GetStats};
use crate::desc::addr::SocketAddress;
use crate::desc::error::{Context as _, Failure, Operation};
use crate::desc::kind::{Domain, SocketType};
use crate::desc::spec::{Label, Role, Service, Source, Spec, DEFAULT_RESTART_BACKOFF};
use crate::net::accept::Acceptor;
use crate::net::adopt;
use crate::net::connect;
use crate::net::open::{self, Opened};
use crate::net::resolve::{self, Plan};
use crate::net::unix::SocketFile;
use crate::sys;

mod accepting;
#[cfg(feature = "proxy-protocol")]
mod admission;
pub(crate) mod first_turn;
mod handover;

#[cfg(feature = "proxy-protocol")]
use accepting::AcceptLoop;
use accepting::{wants_clients, Server, Serving};
use first_turn::Turn;
use handover::Kept;

/// Accepts made in one poll of the accept loop before it yields to the Arbiter's other tasks.
const ACCEPT_BUDGET: usize = 32;

/// The socket factory actor: one socket-creating job, driven by messages.
///
/// Start it with [`SocketFactory::builder`]: [`spawn`](crate::SocketFactoryBuilder::spawn)
/// (awaited: the OS error where you await), [`start`](crate::SocketFactoryBuilder::start)
/// (messages only, as POE) or [`build`](crate::SocketFactoryBuilder::build) (for a
/// `Supervisor`). It then sends [`SocketCreated`] for every socket it makes and [`SocketFailed`]
/// for every failure, and takes [`PauseAccept`], [`ResumeAccept`], [`SetEvents`],
/// [`GetSockName`], [`GetId`], [`GetStats`] and [`StopFactory`].
///
/// # Life
/// - **Who holds whom.** The owner holds the factory (its [`Addr`]); the factory holds its owner
///   and every recipient *weakly* ([`WeakAddr`], [`WeakRecipient`]), as an actix child holds its
///   parent. An owner therefore stops when its own last `Addr` is dropped, whatever factories it
///   started, and its factories follow.
/// - **When it stops.** A factory stops when nothing can receive its outcome any more (every
///   recipient it was given has stopped: checked at each delivery and every
///   [`owner_check_interval`](crate::SocketFactoryBuilder::owner_check_interval), in every
///   state), when it is told to ([`StopFactory`]), when its job is done (a client or datagram
///   socket delivered; one that bound a UNIX socket file lives on to keep it, a
///   [`shareable`](crate::SocketFactoryBuilder::shareable) one to keep a duplicate for a
///   handover until [`Relinquish`](crate::Relinquish)), or when it fails.
///   Dropping the factory's own `Addr` does *not* stop a factory with work in flight (a server,
///   a connect under way), as with any actix actor running a future: keep the `Addr` to stop it,
///   or let the owner go.
/// - **Stopping** closes every socket the factory holds (listener, connect attempts, an
///   undelivered socket), cancels a look-up, and removes a UNIX socket file it made. It is
///   immediate in every state: after [`StopFactory`] is handled nothing more is ever delivered.
///
/// # Delivery
/// - No message from a factory reaches any recipient before `start()` (or
///   `start_in_arbiter()`, or the awaited `spawn()`) has returned, on any Arbiter: outcomes are
///   delivered from the factory's own turn, never from inside the call that made it.
/// - A message sent to the factory right after `start()` returns ([`GetSockName`],
///   [`PauseAccept`], [`SetEvents`], [`StopFactory`], ...) is handled before the factory delivers
///   its one-shot outcome: actix handles a turn's queued messages before the actor's futures.
/// - A [`SetEvents`] applies to every outcome not yet delivered.
/// - [`GetSockName`] answers for the factory's whole life: listening, connecting (once its socket
///   is bound), holding a datagram socket; during a name look-up the answer waits for the
///   socket. [`SocketCreated::local`] carries the local address too.
///
/// # States
/// `Idle` (made by `build()`, or between two supervised setups) → `Resolving` (names being
/// looked up) → `Connecting` | `Listening` | `Holding` (a one-shot socket or failure not yet
/// delivered) → `Keeping` (a delivered socket's UNIX file, or its duplicate for a handover) →
/// `Retired` (done or told to stop: holds nothing, never sets up again).
///
/// # Supervision
/// `SocketFactory` is [`Supervised`]: under [`actix::Supervisor`] a factory stopped by a failure
/// is made again from the same description (a server re-binds its address, a client connects
/// again). Repeated setup failures space the attempts out (100 ms doubling to 5 s), and each is
/// reported. A factory told to stop, whose owner is gone, or whose job is done, stays `Retired`
/// even under a Supervisor; dropping its addresses ends it.
///
/// [`WeakAddr`]: actix::WeakAddr
/// [`WeakRecipient`]: actix::WeakRecipient
/// [`SocketCreated::local`]: crate::SocketCreated::local
pub struct SocketFactory {
    id: FactoryId,
    /// What the factory is for, in logs: its endpoint as described, then its local address.
    name: Label,
    /// The description, kept only by factories a Supervisor may make again (those from
    /// `build()`); `start()` sets up from it at once and lets it go.
    spec: Option<Box<Spec>>,
    owners: Rc<Owners>,
    state: State,
    /// Applies in every state (POE keeps the flag too): a server made later starts paused.
    paused: bool,
    /// Closed between `start_in_arbiter()` and the moment it has returned: nothing is delivered.
    gated: bool,
    /// The awaited start's answer, until setup is over.
    ready: Option<oneshot::Sender<Result<Ready, SocketFailed>>>,
    /// `GetSockName` asked while the socket does not exist yet (names being looked up).
    waiters: Vec<oneshot::Sender<io::Result<SocketAddress>>>,
    /// The periodic owner check period (it outlives restarts: the owners stay).
    owner_check: Option<Duration>,
    watching: bool,
    counters: Counters,
    /// Setups that failed in a row: under a Supervisor, each restart waits longer.
    failed_starts: u8,
    /// A delivered one-shot socket's duplicate is kept for a handover (`shareable`).
    shareable: bool,
}

/// Where a factory stands. Every socket, file and future it holds lives in exactly one state.
enum State {
    /// Not set up: made by `build()` and not started yet, or waiting to set up again.
    Idle,
    /// Host, service or protocol names being looked up (a spawned future, cancelled on stop).
    Resolving(SpawnHandle),
    /// A client's connect under way (a spawned race); `local` is its first socket's address.
    Connecting {
        race: SpawnHandle,
        local: Option<SocketAddress>,
    },
    /// Accepting clients.
    Listening(Box<Listening>),
    /// A one-shot outcome made and not yet delivered: delivered from the actor's own turn, or
    /// once a success recipient is set again.
    Holding(Box<Outcome>),
    /// A one-shot socket delivered; the factory lives on only to keep its UNIX socket file,
    /// or a duplicate of the socket to share with a successor (`shareable`), until
    /// `Relinquish`, a stop or its owner's end.
    Keeping(Box<Kept>),
    /// Done: delivered, told to stop, orphaned. Holds nothing and never sets up again.
    Retired,
}

/// A server at work.
struct Listening {
    /// Dropped first, while the listener still holds the file's inode: where the file system
    /// reuses inode numbers, a closed socket's number could already name a newer file.
    _file: Option<SocketFile>,
    /// The listener and what the accept loop needs, shared with the accept task.
    server: Rc<Server>,
    /// The accept task, from the first client on (never for a server whose loop is an actor
    /// future).
    task: Option<tokio::task::JoinHandle<()>>,
    /// The actor's accept loop is spawned (it ends when the listener goes).
    #[cfg(feature = "proxy-protocol")]
    looping: bool,
    /// PROXY protocol (issue 17): the settings and counters of a server that reads headers.
    #[cfg(feature = "proxy-protocol")]
    proxy: Option<crate::net::proxy::Gatekeeper>,
}

impl Drop for Listening {
    fn drop(&mut self) {
        // The socket file first, while the listener still holds its inode; then the listener,
        // which the accept task shares: closed now, and the task ends.
        drop(self._file.take());
        self.server.close();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A one-shot outcome waiting for its turn.
pub(crate) enum Outcome {
    Created {
        // Fields drop in order: the file before the socket bound to it.
        file: Option<SocketFile>,
        created: SocketCreated,
    },
    Failed(Failure),
}

/// What the awaited start gives: the factory and where its socket is bound.
#[derive(Debug, Clone)]
pub(crate) struct Ready {
    pub(crate) local: Option<SocketAddress>,
}

impl State {
    fn label(&self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Resolving(_) => "resolving",
            State::Connecting { .. } => "connecting",
            State::Listening(_) => "listening",
            State::Holding(_) => "holding",
            State::Keeping(_) => "keeping its delivered socket's file or duplicate",
            State::Retired => "retired",
        }
    }
}

impl std::fmt::Debug for SocketFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketFactory")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("state", &self.state.label())
            .field("paused", &self.paused)
            .finish_non_exhaustive()
    }
}

/// How a factory is made, as the builder asks.
pub(crate) enum Launch {
    /// `start()`: set up inside actor creation.
    Now,
    /// `start_in_arbiter()`: set up on the Arbiter, deliver nothing until [`Go`] arrives.
    Gated,
    /// `spawn()`: as `Now`, answering here once setup is over.
    Awaited(oneshot::Sender<Result<Ready, SocketFailed>>),
}

impl SocketFactory {
    /// A factory that sets up when its actor starts, keeping its description so that a
    /// Supervisor can make it again (see [`SocketFactoryBuilder::build`](crate::SocketFactoryBuilder::build)).
    pub(crate) fn kept(spec: Box<Spec>, routes: Routes) -> SocketFactory {
        let mut factory = SocketFactory::new(&spec, routes);
        factory.spec = Some(spec);
        factory
    }

    /// Makes the factory and its socket at once, inside actor creation: the description is used
    /// on the caller's stack and dropped (a name lookup keeps its own copy until it is done), so
    /// an idle factory carries none of it, and a client's `connect(2)` is under way before its
    /// actor is first polled. Outcomes wait for the actor's own turn.
    pub(crate) fn set_up(
        mut spec: Box<Spec>,
        routes: Routes,
        launch: Launch,
        cx: &mut impl Turn,
    ) -> SocketFactory {
        let mut factory = SocketFactory::new(&spec, routes);
        match launch {
            Launch::Now => {}
            Launch::Gated => factory.gated = true,
            Launch::Awaited(ready) => factory.ready = Some(ready),
        }
        if factory.owners.is_empty() {
            // Nobody could ever receive an outcome: make nothing, hold nothing.
            let error = crate::desc::error::ConfigError::NoRecipient;
            log::warn!(
                "factory {} ({}): {error}; not started",
                factory.id,
                factory.name
            );
            factory.hold(Outcome::Failed(Failure::config(error)), cx);
            return factory;
        }
        factory.setup(&mut spec, cx);
        factory
    }

    fn new(spec: &Spec, routes: Routes) -> SocketFactory {
        SocketFactory {
            id: FactoryId::next(),
            name: spec.label(),
            spec: None,
            owners: Owners::new(routes),
            state: State::Idle,
            paused: false,
            gated: false,
            ready: None,
            waiters: Vec::new(),
            owner_check: spec.owner_check,
            watching: false,
            counters: Counters::default(),
            failed_starts: 0,
            shareable: spec.shareable,
        }
    }

    /// Whether the first turn may end the factory: a one-shot outcome is already held.
    pub(crate) fn may_end_in_first_turn(&self) -> bool {
        matches!(self.state, State::Holding(_)) && !self.gated
    }

    /// This factory's id, carried by every message it sends: POE's `ID()`.
    pub fn id(&self) -> FactoryId {
        self.id
    }

    // ----- Setting up -------------------------------------------------------------------------

    /// Sets up from the kept description (a factory from `build()`, at each start).
    fn setup_kept(&mut self, ctx: &mut Context<Self>) {
        let Some(mut spec) = self.spec.take() else {
            return;
        };
        self.setup(&mut spec, ctx);
        self.spec = Some(spec);
    }

    fn setup(&mut self, spec: &mut Spec, cx: &mut impl Turn) {
        // The same checks as `build()`, before anything is set in motion (the owner sweep
        // included): every way to start gives the same typed error, whatever the source.
        if let Err(error) = spec.validate() {
            return self.fail(Failure::config(error), cx);
        }
        let adopted = match &spec.source {
            Source::Describe => return self.setup_described(spec, cx),
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
        let service = spec.service();
        let started = adopted.and_then(|adopted| {
            let kind = (adopted.domain, adopted.socket_type);
            match adopted.role {
                Role::Listen => self.serve(adopted.socket, kind, None, service, cx.ctx()),
                _ => {
                    self.finish(adopted.socket, None, kind, None, cx);
                    Ok(())
                }
            }
        });
        if let Err(failure) = started {
            self.fail(failure, cx);
        }
    }

    fn setup_described(&mut self, spec: &Spec, cx: &mut impl Turn) {
        let deadline = match (spec.role(), spec.connect_timeout) {
            // A limit too far to express is no limit.
            (Role::Connect, Some(limit)) => crate::desc::time::deadline_after(limit),
            _ => None,
        };
        let service = spec.service();
        if let Some(ready) = resolve::plan_now(spec) {
            return self.run(ready, service, deadline, cx);
        }
        let ctx = cx.ctx();
        log::debug!("factory {} ({}): looking up names", self.id, self.name);
        let spec = spec.clone();
        let lookup = async move {
            match deadline {
                None => resolve::lookup(spec).await,
                Some(deadline) => tokio::time::timeout_at(deadline, resolve::lookup(spec))
                    .await
                    .unwrap_or_else(|_| Err(timed_out())),
            }
        };
        // Spawned, not `wait`ed: messages are handled meanwhile (StopFactory cancels the
        // look-up at once; GetSockName waits for the socket).
        let handle = ctx.spawn(lookup.into_actor(self).map(move |planned, act, ctx| {
            if matches!(act.state, State::Resolving(_)) {
                act.state = State::Idle;
                act.run(planned, service, deadline, ctx);
            }
        }));
        self.state = State::Resolving(handle);
        self.watch_owner(ctx);
    }

    fn run(
        &mut self,
        planned: Result<Plan, Failure>,
        service: Service,
        deadline: Option<tokio::time::Instant>,
        cx: &mut impl Turn,
    ) {
        let started = planned.and_then(|plan| match plan.role {
            Role::Listen => {
                let Opened { socket, file } = open::open(&plan, plan.domain.to_socket2())?;
                socket.listen(plan.backlog).during(Operation::Listen)?;
                self.serve(
                    socket,
                    (plan.domain, plan.socket_type),
                    file,
                    service,
                    cx.ctx(),
                )
            }
            Role::Bound => {
                let Opened { socket, file } = open::open(&plan, plan.domain.to_socket2())?;
                let kind = (plan.domain, plan.socket_type);
                self.finish(socket, None, kind, file, cx);
                Ok(())
            }
            Role::Connect => {
                self.connect(plan, service, deadline, cx);
                Ok(())
            }
        });
        if let Err(failure) = started {
            self.fail(failure, cx);
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
        let local = socket
            .local_addr()
            .map(|addr| SocketAddress::from_sockaddr(&addr))
            .during(Operation::GetSockName)?;
        let listener = sys::register(socket, Interest::READABLE).during(Operation::Listen)?;
        self.name = Label::Local(local.clone());
        // A server's start and stop are the lines an operator looks for: info, as actix-server's.
        log::info!("factory {} ({}): listening", self.id, self.name);
        let max = service.max_outstanding.min(Semaphore::MAX_PERMITS);
        let server = Rc::new(Server::new(
            Acceptor::new(listener, max, service.accept_backoff),
            local.clone(),
            service.options,
            kind,
            self.id,
            Rc::clone(&self.owners),
        ));
        #[cfg(feature = "proxy-protocol")]
        let proxy = service.proxy.map(crate::net::proxy::Gatekeeper::new);
        // A server that reads PROXY headers accepts from the actor (their reading and
        // screening are the actor's); any other from a task of its own, opened from the
        // actor's turn.
        #[cfg(feature = "proxy-protocol")]
        let own_task = proxy.is_none();
        #[cfg(not(feature = "proxy-protocol"))]
        let own_task = true;
        self.state = State::Listening(Box::new(Listening {
            _file: file,
            server,
            task: None,
            #[cfg(feature = "proxy-protocol")]
            looping: !own_task,
            #[cfg(feature = "proxy-protocol")]
            proxy,
        }));
        self.failed_starts = 0;
        self.answer_ready(Some(local));
        if own_task {
            ctx.spawn(Serving);
        } else {
            #[cfg(feature = "proxy-protocol")]
            ctx.spawn(AcceptLoop);
        }
        self.watch_owner(ctx);
        Ok(())
    }

    fn connect(
        &mut self,
        mut plan: Plan,
        service: Service,
        deadline: Option<tokio::time::Instant>,
        cx: &mut impl Turn,
    ) {
        let candidates = std::mem::take(&mut plan.remote);
        let kind = (plan.domain, plan.socket_type);
        let started = connect::Race::start(
            candidates,
            move |addr: &SockAddr| open::open(&plan, addr.domain()),
            service.happy_eyeballs_delay,
            deadline,
        );
        match started {
            connect::Started::Over(connected) => self.connected(connected, kind, cx),
            connect::Started::Racing(race) => {
                let ctx = cx.ctx();
                let local = race
                    .local_addr()
                    .map(|addr| SocketAddress::from_sockaddr(&addr));
                self.answer_ready(local.clone());
                let race = ctx.spawn(race.into_actor(self).map(move |connected, act, ctx| {
                    // A race cancelled by a stop never gets here; check all the same.
                    if matches!(act.state, State::Connecting { .. }) {
                        act.connected(connected, kind, ctx);
                    }
                }));
                self.state = State::Connecting { race, local };
                self.watch_owner(ctx);
            }
        }
    }

    /// The end of a client's race: deliver the socket, or report the failure.
    fn connected(
        &mut self,
        connected: connect::Connected,
        (planned_domain, socket_type): (Domain, SocketType),
        cx: &mut impl Turn,
    ) {
        match connected {
            Ok((Opened { socket, file }, peer)) => {
                // A client given both families delivers the winner's.
                let domain = Domain::of(&peer).unwrap_or(planned_domain);
                let peer = SocketAddress::from_sockaddr(&peer);
                log::debug!("factory {} ({}): connected to {peer}", self.id, self.name);
                self.finish(socket, Some(peer), (domain, socket_type), file, cx);
            }
            Err(failure) => self.fail(failure, cx),
        }
    }

    /// Wraps a new socket in its message, with the peer's credentials for UNIX streams.
    fn created(
        &self,
        socket: Socket,
        peer: Option<SocketAddress>,
        local: Option<SocketAddress>,
        kind: (Domain, SocketType),
        permit: Option<crate::net::accept::Permit>,
    ) -> SocketCreated {
        accepting::created(self.id, socket, peer, local, kind, permit)
    }

    /// A one-shot socket (client or datagram) is made: it waits for the actor's turn.
    fn finish(
        &mut self,
        socket: Socket,
        peer: Option<SocketAddress>,
        kind: (Domain, SocketType),
        file: Option<SocketFile>,
        cx: &mut impl Turn,
    ) {
        self.counters.accepted += 1;
        self.failed_starts = 0;
        let local = socket
            .local_addr()
            .ok()
            .map(|addr| SocketAddress::from_sockaddr(&addr));
        self.answer_ready(local.clone());
        let created = self.created(socket, peer, local, kind, None);
        self.hold(Outcome::Created { created, file }, cx);
    }

    // ----- Delivering -------------------------------------------------------------------------

    /// Parks a one-shot outcome; it is delivered at the factory's next turn (see [`Turn`]).
    fn hold(&mut self, outcome: Outcome, cx: &mut impl Turn) {
        cx.hold(self, outcome);
    }

    /// Delivers what the factory holds, if it may now. True: nothing is held any more.
    fn flush(&mut self, ctx: &mut Context<Self>) -> bool {
        if self.gated {
            self.watch_owner(ctx);
            return false;
        }
        let waits = match &self.state {
            State::Holding(outcome) => {
                // Success disabled: keep the socket until SetEvents gives a recipient.
                matches!(**outcome, Outcome::Created { .. }) && !self.owners.has_success()
            }
            _ => return true,
        };
        if waits {
            // Held past this turn: the owner may go meanwhile, unseen by any delivery.
            self.watch_owner(ctx);
            return false;
        }
        let outcome = match std::mem::replace(&mut self.state, State::Idle) {
            State::Holding(outcome) => outcome,
            other => {
                self.state = other;
                return true;
            }
        };
        match *outcome {
            Outcome::Created { created, file } => self.hand_over(created, file, ctx),
            Outcome::Failed(failure) => self.fail_now(failure, ctx),
        }
        true
    }

    /// Delivers the one-shot socket: the factory's job is done.
    fn hand_over(
        &mut self,
        created: SocketCreated,
        file: Option<SocketFile>,
        ctx: &mut Context<Self>,
    ) {
        // Made before delivery: a socket that cannot be kept as asked is not delivered.
        let duplicate = match self.duplicate(&created.socket) {
            Ok(duplicate) => duplicate,
            Err(failure) => return self.fail_now(failure, ctx),
        };
        let local = created.local.clone();
        // An owner that went away meanwhile drops it: the socket closes with the message.
        let delivered = self.owners.deliver(created).is_ok();
        if delivered {
            self.counters.delivered += 1;
        }
        // A socket file must outlive the delivered socket that is bound to it; a socket nobody
        // took is nobody's to share.
        match Kept::new(file, duplicate.filter(|_| delivered), local) {
            Some(kept) => {
                self.state = State::Keeping(kept);
                self.watch_owner(ctx);
            }
            None => {
                self.state = State::Retired;
                ctx.stop();
            }
        }
    }

    /// A failure that ends the job: it waits for the actor's turn like any outcome.
    fn fail(&mut self, failure: Failure, cx: &mut impl Turn) {
        self.hold(Outcome::Failed(failure), cx);
    }

    /// Reports a failure that ends the factory's job, and stops it.
    fn fail_now(&mut self, failure: Failure, ctx: &mut Context<Self>) {
        self.end_failed(failure);
        ctx.stop();
    }

    /// Reports a failure that ends the factory's job; the caller stops the actor (or, before
    /// it has one, drops the factory).
    fn end_failed(&mut self, failure: Failure) {
        self.counters.count_failure(failure.operation);
        self.failed_starts = self.failed_starts.saturating_add(1);
        let failed = SocketFailed::new(failure, self.id);
        log::warn!(
            "factory {} ({}): {}; stopping",
            self.id,
            self.name,
            failed.describe()
        );
        self.answer_waiters(|| {
            Err(io::Error::new(
                failed.error.kind(),
                failed.error.to_string(),
            ))
        });
        // An awaited start takes its own setup failure; otherwise the recipients do.
        let failed = match self.ready.take() {
            Some(ready) => ready.send(Err(failed)).err().and_then(Result::err),
            None => Some(failed),
        };
        if let Some(failed) = failed {
            if self.owners.report(failed).is_err() {
                log::debug!("factory {}: no failure recipient to tell", self.id);
            }
        }
        // Nobody to retry for, or a `start()` factory: a Supervisor's restart must not loop.
        self.state = if self.owners.gone() || self.spec.is_none() {
            State::Retired
        } else {
            State::Idle
        };
    }

    /// Setup is over: the awaited start and the `GetSockName`s asked meanwhile get their answer.
    fn answer_ready(&mut self, local: Option<SocketAddress>) {
        if let Some(ready) = self.ready.take() {
            let _ = ready.send(Ok(Ready {
                local: local.clone(),
            }));
        }
        match local {
            Some(local) => self.answer_waiters(|| Ok(local.clone())),
            None => self.answer_waiters(|| Err(not_bound())),
        }
    }

    fn answer_waiters(&mut self, answer: impl Fn() -> io::Result<SocketAddress>) {
        for waiter in self.waiters.drain(..) {
            let _ = waiter.send(answer());
        }
    }

    // ----- The owner ---------------------------------------------------------------------------

    /// Has this Arbiter's owner sweep look at us, once per factory (restarts included), from
    /// the moment it may outlive its first turn: a one-shot factory that delivers in its first
    /// turn checks its owner at that delivery and needs no entry (nor its cost).
    fn watch_owner(&mut self, ctx: &mut Context<Self>) {
        if self.watching {
            return;
        }
        if let Some(period) = self.owner_check {
            owner::watch(period, &self.owners, ctx.address().downgrade().recipient());
            self.watching = true;
        }
    }

    fn stop_if_owner_gone(&mut self, ctx: &mut Context<Self>) {
        if self.owners.gone() {
            log::debug!("factory {} ({}): owner gone, stopping", self.id, self.name);
            self.retire(ctx);
        }
    }

    /// Ends everything at once: nothing held, nothing delivered afterwards, never set up again.
    fn retire(&mut self, ctx: &mut Context<Self>) {
        self.release(ctx);
        self.state = State::Retired;
        ctx.stop();
    }

    /// Drops whatever the state holds: cancels its futures, closes its sockets, removes our
    /// socket file.
    fn release(&mut self, ctx: &mut Context<Self>) {
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Resolving(lookup) => {
                ctx.cancel_future(lookup);
            }
            State::Connecting { race, .. } => {
                ctx.cancel_future(race);
            }
            State::Retired => self.state = State::Retired,
            State::Listening(listening) => {
                self.counters.absorb(&listening.server.counters());
                drop(listening);
                log::info!("factory {} ({}): stopped listening", self.id, self.name);
            }
            // Dropped here: the socket file first (declared before nothing else holds its
            // inode), then the listener or the held socket.
            State::Idle | State::Holding(_) | State::Keeping(_) => {}
        }
        self.answer_waiters(|| Err(not_bound()));
    }
}

/// Delivers a held one-shot outcome from the actor's own turn. Like the accept loop it holds
/// nothing and is polled after every message, so a `SetEvents` or the start gate opening is seen
/// at once.
struct Outbox;

impl ActorFuture<SocketFactory> for Outbox {
    type Output = ();

    fn poll(
        self: Pin<&mut Self>,
        act: &mut SocketFactory,
        ctx: &mut Context<SocketFactory>,
        _: &mut TaskContext<'_>,
    ) -> Poll<()> {
        if act.flush(ctx) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// Opens the start gate of a factory made by `start_in_arbiter()`, sent once it has returned.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub(crate) struct Go;

impl Handler<Go> for SocketFactory {
    type Result = ();

    fn handle(&mut self, _: Go, _: &mut Context<Self>) {
        // The outbox and the accept loop are polled after this message and see it.
        self.gated = false;
    }
}

/// How long a (re)start waits after `failed` setups in a row: none at first, then `first`
/// doubling up to `max` (see [`restart_backoff`](crate::SocketFactoryBuilder::restart_backoff)),
/// so a Supervisor never spins on a bind that keeps failing.
fn restart_delay(failed: u8, (first, max): (Duration, Duration)) -> Option<Duration> {
    let doublings = u32::from(failed.checked_sub(1)?.min(16));
    Some(
        first
            .checked_mul(2u32.pow(doublings))
            .map_or(max, |delay| delay.min(max)),
    )
}

fn timed_out() -> Failure {
    Failure::new(
        Operation::Connect,
        io::Error::from_raw_os_error(libc::ETIMEDOUT),
    )
}

fn not_bound() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the factory holds no bound socket (setup failed, or it stopped)",
    )
}

impl Actor for SocketFactory {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if !matches!(self.state, State::Idle) || self.spec.is_none() {
            // Set up already (inside `start()`), or retired under a Supervisor: stay idle
            // rather than re-binding in a loop. Dropping the factory's addresses ends it.
            return;
        }
        let backoff = self
            .spec
            .as_ref()
            .map_or(DEFAULT_RESTART_BACKOFF, |spec| spec.restart_backoff);
        // A factory a Supervisor may make again lives on between its setups: watched from
        // its first start.
        self.watch_owner(ctx);
        match restart_delay(self.failed_starts, backoff) {
            None => self.setup_kept(ctx),
            Some(delay) => {
                log::debug!(
                    "factory {} ({}): setting up again in {delay:?}",
                    self.id,
                    self.name
                );
                ctx.run_later(delay, |act, ctx| {
                    if matches!(act.state, State::Idle) {
                        act.setup_kept(ctx);
                    }
                });
            }
        }
    }

    fn stopped(&mut self, ctx: &mut Context<Self>) {
        self.release(ctx);
        log::debug!("factory {} ({}): stopped", self.id, self.name);
    }
}

impl Supervised for SocketFactory {
    fn restarting(&mut self, ctx: &mut Context<Self>) {
        self.release(ctx);
        if !matches!(self.state, State::Retired) {
            log::debug!("factory {} ({}): restarting", self.id, self.name);
            self.paused = false;
            self.counters.since = std::time::SystemTime::now();
        }
    }
}

impl Handler<PauseAccept> for SocketFactory {
    type Result = ();

    fn handle(&mut self, _: PauseAccept, _: &mut Context<Self>) {
        if !self.paused {
            log::debug!("factory {} ({}): accept paused", self.id, self.name);
        }
        self.paused = true;
    }
}

impl Handler<ResumeAccept> for SocketFactory {
    type Result = ();

    fn handle(&mut self, _: ResumeAccept, _: &mut Context<Self>) {
        if self.paused {
            log::debug!("factory {} ({}): accept resumed", self.id, self.name);
        }
        self.paused = false;
    }
}

impl Handler<SetEvents> for SocketFactory {
    type Result = ();

    fn handle(&mut self, events: SetEvents, _: &mut Context<Self>) {
        // Applies to every outcome not yet delivered: the outbox and the accept loop read the
        // routes when they next run, right after this message.
        self.owners.change(events.success, events.failure);
    }
}

impl Handler<GetSockName> for SocketFactory {
    type Result = ResponseFuture<io::Result<SocketAddress>>;

    fn handle(&mut self, _: GetSockName, _: &mut Context<Self>) -> Self::Result {
        let answer = match &self.state {
            State::Listening(listening) => Ok(listening.server.local.clone()),
            State::Connecting {
                local: Some(local), ..
            } => Ok(local.clone()),
            State::Keeping(kept) => Ok(kept.local.clone()),
            State::Holding(outcome) => match &**outcome {
                Outcome::Created {
                    created:
                        SocketCreated {
                            local: Some(local), ..
                        },
                    ..
                } => Ok(local.clone()),
                _ => Err(not_bound()),
            },
            // The socket is on its way (names being looked up, or a supervised setup to come):
            // answer once it exists.
            State::Resolving(_) => return self.wait_for_socket(),
            State::Idle if self.spec.is_some() => return self.wait_for_socket(),
            State::Connecting { local: None, .. } | State::Idle | State::Retired => {
                Err(not_bound())
            }
        };
        Box::pin(std::future::ready(answer))
    }
}

impl SocketFactory {
    fn wait_for_socket(&mut self) -> ResponseFuture<io::Result<SocketAddress>> {
        let (tx, rx) = oneshot::channel();
        self.waiters.push(tx);
        Box::pin(async move { rx.await.unwrap_or_else(|_| Err(not_bound())) })
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
        log::debug!(
            "factory {} ({}): told to stop while {}",
            self.id,
            self.name,
            self.state.label()
        );
        self.retire(ctx);
    }
}

impl Handler<GetStats> for SocketFactory {
    type Result = MessageResult<GetStats>;

    fn handle(&mut self, _: GetStats, _: &mut Context<Self>) -> Self::Result {
        let listening = match &self.state {
            State::Listening(listening) => Some(listening),
            _ => None,
        };
        let (outstanding, max_outstanding) =
            listening.map_or((0, 0), |listening| listening.server.outstanding());
        // The accept task's counts, with the factory's own.
        let mut counters = self.counters.clone();
        if let Some(listening) = listening {
            counters.absorb(&listening.server.counters());
        }
        MessageResult(FactoryStats {
            accepted: counters.accepted,
            delivered: counters.delivered,
            failed: counters.failed,
            failed_by_operation: counters.failed_by_operation(),
            outstanding,
            max_outstanding,
            listening: listening.is_some(),
            paused: self.paused,
            accepting: listening.is_some() && wants_clients(self) && outstanding < max_outstanding,
            backoff_episodes: counters.backoff_episodes,
            in_backoff: listening.is_some_and(|listening| listening.server.exhausted()),
            since: self.counters.since,
            #[cfg(feature = "proxy-protocol")]
            proxy: listening
                .and_then(|listening| listening.proxy.as_ref())
                .map(|keeper| keeper.gate().stats())
                .unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_factory_stays_small() {
        // Simplicity before bytes: an idle listening factory may cost up to 2 KiB in all; the
        // actor itself is a small part of it.
        let factory = std::mem::size_of::<SocketFactory>();
        // 248 B with every feature (`Keeping` boxed); the benchmark measures the whole (RSS per
        // idle factory).
        assert!(factory <= 320, "SocketFactory is {factory} B");
    }

    #[test]
    fn restart_delay_grows_and_is_capped() {
        let backoff = DEFAULT_RESTART_BACKOFF;
        let (first, max) = backoff;
        assert_eq!(restart_delay(0, backoff), None);
        assert_eq!(restart_delay(1, backoff), Some(first));
        assert_eq!(restart_delay(2, backoff), Some(first * 2));
        assert_eq!(restart_delay(40, backoff), Some(max));
        assert_eq!(restart_delay(u8::MAX, backoff), Some(max));
        let huge = (Duration::MAX / 2, Duration::MAX);
        assert_eq!(restart_delay(u8::MAX, huge), Some(Duration::MAX));
    }
}
