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

use actix::prelude::*;
use socket2::{SockAddr, Socket};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::Semaphore;

use crate::accept::{AcceptEvent, Acceptor};
use crate::addr::SocketAddress;
use crate::builder::{Domain, SocketFactoryBuilder, Spec};
use crate::connect;
use crate::error::{Context as _, Failure, Operation};
use crate::messages::{
    EventChange, FactoryId, GetId, GetSockName, PauseAccept, ResumeAccept, SetEvents,
    SocketCreated, SocketFailed, StopFactory,
};
use crate::open::{self, Opened};
use crate::resolve::{self, Plan, Role};
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
/// `SocketFactory` is [`Supervised`]: under [`actix::Supervisor`] a stopped factory is made again
/// from the same description (a server re-binds its address).
pub struct SocketFactory {
    id: FactoryId,
    spec: Spec,
    success: Option<Recipient<SocketCreated>>,
    failure: Option<Recipient<SocketFailed>>,
    paused: bool,
    permits: Arc<Semaphore>,
    listener: Option<Rc<AsyncFd<Socket>>>,
    file: Option<SocketFile>,
    accepting: Option<SpawnHandle>,
    /// Bumped whenever the accept loop is stopped, so a loop can tell it was replaced.
    accept_generation: u64,
    /// A finished one-shot socket waiting for a success recipient.
    held: Option<SocketCreated>,
    exhausted: bool,
}

impl std::fmt::Debug for SocketFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketFactory")
            .field("id", &self.id)
            .field("paused", &self.paused)
            .field("listening", &self.listener.is_some())
            .finish_non_exhaustive()
    }
}

impl SocketFactory {
    /// A builder with POE's defaults: a stream server on any address, port 0.
    pub fn builder() -> SocketFactoryBuilder {
        SocketFactoryBuilder::new()
    }

    pub(crate) fn from_builder(builder: SocketFactoryBuilder) -> SocketFactory {
        let max = builder.spec.max_outstanding.min(Semaphore::MAX_PERMITS);
        SocketFactory {
            id: FactoryId::next(),
            spec: builder.spec,
            success: builder.success,
            failure: builder.failure,
            paused: false,
            permits: Arc::new(Semaphore::new(max)),
            listener: None,
            file: None,
            accepting: None,
            accept_generation: 0,
            held: None,
            exhausted: false,
        }
    }

    /// This factory's id, carried by every message it sends: POE's `ID()`.
    pub fn id(&self) -> FactoryId {
        self.id
    }

    fn setup(&mut self, ctx: &mut Context<Self>) {
        let deadline = match (self.spec.role(), self.spec.connect_timeout) {
            (Role::Connect, Some(limit)) => Some(tokio::time::Instant::now() + limit),
            _ => None,
        };
        if let Some(ready) = resolve::plan_now(&self.spec) {
            return self.run(ready, deadline, ctx);
        }
        log::debug!("factory {}: looking up names", self.id);
        let spec = self.spec.clone();
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
                .map(move |planned, act, ctx| act.run(planned, deadline, ctx)),
        );
    }

    fn run(
        &mut self,
        planned: Result<Plan, Failure>,
        deadline: Option<tokio::time::Instant>,
        ctx: &mut Context<Self>,
    ) {
        let started = planned.and_then(|plan| match plan.role {
            Role::Listen => self.listen(&plan, ctx),
            Role::Bound => {
                let Opened { socket, file } = open::open(&plan, plan.domain.to_socket2())?;
                self.file = file;
                self.finish(socket, None, &plan, ctx);
                Ok(())
            }
            Role::Connect => {
                self.connect(plan, deadline, ctx);
                Ok(())
            }
        });
        if let Err(failure) = started {
            self.fail(failure, ctx);
        }
    }

    fn listen(&mut self, plan: &Plan, ctx: &mut Context<Self>) -> Result<(), Failure> {
        let Opened { socket, file } = open::open(plan, plan.domain.to_socket2())?;
        socket.listen(plan.backlog).during(Operation::Listen)?;
        let listener = sys::register(socket, Interest::READABLE).during(Operation::Listen)?;
        if let Ok(local) = listener.get_ref().local_addr() {
            log::info!(
                "factory {}: listening on {} (backlog {})",
                self.id,
                SocketAddress::from_sockaddr(&local),
                plan.backlog
            );
        }
        self.listener = Some(Rc::new(listener));
        self.file = file;
        self.sync_accepting(ctx);
        Ok(())
    }

    fn connect(
        &mut self,
        plan: Plan,
        deadline: Option<tokio::time::Instant>,
        ctx: &mut Context<Self>,
    ) {
        let candidates = plan.remote.clone();
        let opener = plan.clone();
        let attempt = connect::connect(
            candidates,
            move |addr: &SockAddr| open::open(&opener, addr.domain()),
            self.spec.happy_eyeballs_delay,
            deadline,
        );
        ctx.spawn(
            attempt
                .into_actor(self)
                .map(move |connected, act, ctx| match connected {
                    Ok((Opened { socket, file }, peer)) => {
                        act.file = file;
                        // A client given both families delivers the winner's.
                        let plan = Plan {
                            domain: Domain::of(&peer).unwrap_or(plan.domain),
                            ..plan
                        };
                        let peer = SocketAddress::from_sockaddr(&peer);
                        log::debug!("factory {}: connected to {peer}", act.id);
                        act.finish(socket, Some(peer), &plan, ctx);
                    }
                    Err(failure) => act.fail(failure, ctx),
                }),
        );
    }

    /// Delivers a one-shot socket (client or datagram), or holds it while success is disabled.
    fn finish(
        &mut self,
        socket: Socket,
        peer: Option<SocketAddress>,
        plan: &Plan,
        ctx: &mut Context<Self>,
    ) {
        let created = SocketCreated {
            socket,
            peer,
            id: self.id,
            domain: plan.domain,
            socket_type: plan.socket_type,
            _permit: None,
        };
        self.held = Some(created);
        self.flush_held(ctx);
    }

    fn flush_held(&mut self, ctx: &mut Context<Self>) {
        let Some(success) = &self.success else { return };
        let Some(created) = self.held.take() else {
            return;
        };
        success.do_send(created);
        // A socket file must outlive the delivered socket that is bound to it.
        if self.file.is_none() {
            ctx.stop();
        }
    }

    /// Reports a failure that ends the factory's job.
    fn fail(&mut self, failure: Failure, ctx: &mut Context<Self>) {
        self.report(failure);
        ctx.stop();
    }

    fn report(&self, failure: Failure) {
        let failed = SocketFailed::new(failure, self.id);
        match &self.failure {
            Some(recipient) if recipient.connected() => {
                log::debug!("{failed}");
                recipient.do_send(failed);
            }
            _ => log::warn!("{failed} (no failure recipient)"),
        }
    }

    fn owner_gone(&self) -> bool {
        let success = self.success.as_ref().map(Recipient::connected);
        let failure = self.failure.as_ref().map(Recipient::connected);
        match (success, failure) {
            (None, None) => false,
            (s, f) => !s.unwrap_or(false) && !f.unwrap_or(false),
        }
    }

    fn should_accept(&self) -> bool {
        self.listener.is_some()
            && !self.paused
            && self.success.as_ref().is_some_and(Recipient::connected)
    }

    /// Starts or stops the accept loop to match the state: listening, not paused, someone to
    /// deliver to. Pause, `SetEvents` and start all go through here.
    fn sync_accepting(&mut self, ctx: &mut Context<Self>) {
        match (self.should_accept(), self.accepting) {
            (true, None) => {
                let Some(listener) = &self.listener else {
                    return;
                };
                let acceptor = Acceptor::new(Rc::clone(listener), Arc::clone(&self.permits));
                let generation = self.accept_generation;
                self.accepting = Some(ctx.spawn(AcceptLoop {
                    acceptor,
                    generation,
                }));
            }
            (false, Some(handle)) => {
                ctx.cancel_future(handle);
                self.accepting = None;
                self.accept_generation += 1;
            }
            _ => {}
        }
    }

    /// Handles one event of the accept loop; false ends the loop.
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
                let domain = self.spec.effective_domain();
                let options = &self.spec.options;
                if let Err(failure) = options.apply_accepted(&socket, domain.to_socket2()) {
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
                let created = SocketCreated {
                    socket,
                    peer,
                    id: self.id,
                    domain,
                    socket_type: self.spec.socket_type,
                    _permit: Some(permit),
                };
                match &self.success {
                    Some(success) if success.connected() => {
                        success.do_send(created);
                        true
                    }
                    // The socket drops here: nobody can take it.
                    _ => {
                        self.sync_accepting(ctx);
                        self.stop_if_owner_gone(ctx);
                        false
                    }
                }
            }
            AcceptEvent::Exhausted(error) => {
                self.exhausted = true;
                log::error!(
                    "factory {}: accept: {error}; backing off until descriptors are free",
                    self.id
                );
                self.report(Failure::new(Operation::Accept, error));
                true
            }
            AcceptEvent::Fatal(error) => {
                self.accepting = None;
                self.fail(Failure::new(Operation::Accept, error), ctx);
                false
            }
        }
    }

    fn stop_if_owner_gone(&mut self, ctx: &mut Context<Self>) {
        if self.owner_gone() {
            log::debug!("factory {}: owner gone, stopping", self.id);
            ctx.stop();
        }
    }
}

/// The accept loop as an actor future: events go straight to [`SocketFactory::on_accept`].
struct AcceptLoop {
    acceptor: Acceptor,
    generation: u64,
}

impl ActorFuture<SocketFactory> for AcceptLoop {
    type Output = ();

    fn poll(
        self: Pin<&mut Self>,
        act: &mut SocketFactory,
        ctx: &mut Context<SocketFactory>,
        task: &mut TaskContext<'_>,
    ) -> Poll<()> {
        let this = self.get_mut();
        for _ in 0..ACCEPT_BUDGET {
            if act.accept_generation != this.generation {
                return Poll::Ready(());
            }
            match this.acceptor.poll_event(task) {
                Poll::Ready(Some(event)) => {
                    if !act.on_accept(event, ctx) {
                        return Poll::Ready(());
                    }
                }
                Poll::Ready(None) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
        // Budget spent with clients still queued: let the Arbiter's other tasks run first.
        task.waker().wake_by_ref();
        Poll::Pending
    }
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
        if let Some(period) = self.spec.owner_check {
            ctx.run_interval(period, |act, ctx| act.stop_if_owner_gone(ctx));
        }
        self.setup(ctx);
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.release();
        log::debug!("factory {}: stopped", self.id);
    }
}

impl SocketFactory {
    /// Closes the listener, drops a held socket and removes our socket file.
    fn release(&mut self) {
        self.accepting = None;
        self.accept_generation += 1;
        self.listener = None;
        self.held = None;
        self.file = None;
        self.exhausted = false;
    }
}

impl Supervised for SocketFactory {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        log::info!("factory {}: restarting", self.id);
        self.release();
        self.paused = false;
    }
}

impl Handler<PauseAccept> for SocketFactory {
    type Result = ();

    fn handle(&mut self, _: PauseAccept, ctx: &mut Context<Self>) {
        if !self.paused {
            log::debug!("factory {}: accept paused", self.id);
        }
        self.paused = true;
        self.sync_accepting(ctx);
    }
}

impl Handler<ResumeAccept> for SocketFactory {
    type Result = ();

    fn handle(&mut self, _: ResumeAccept, ctx: &mut Context<Self>) {
        if self.paused {
            log::debug!("factory {}: accept resumed", self.id);
        }
        self.paused = false;
        self.sync_accepting(ctx);
    }
}

impl Handler<SetEvents> for SocketFactory {
    type Result = ();

    fn handle(&mut self, events: SetEvents, ctx: &mut Context<Self>) {
        match events.success {
            EventChange::Keep => {}
            EventChange::Set(recipient) => self.success = Some(recipient),
            EventChange::Disable => self.success = None,
        }
        match events.failure {
            EventChange::Keep => {}
            EventChange::Set(recipient) => self.failure = Some(recipient),
            EventChange::Disable => self.failure = None,
        }
        self.sync_accepting(ctx);
        self.flush_held(ctx);
    }
}

impl Handler<GetSockName> for SocketFactory {
    type Result = io::Result<SocketAddress>;

    fn handle(&mut self, _: GetSockName, _: &mut Context<Self>) -> io::Result<SocketAddress> {
        let socket = match (&self.listener, &self.held) {
            (Some(listener), _) => listener.get_ref(),
            (None, Some(held)) => &held.socket,
            (None, None) => {
                return Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    "the factory holds no socket (not made yet, delivered, or failed)",
                ))
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

impl Handler<StopFactory> for SocketFactory {
    type Result = ();

    fn handle(&mut self, _: StopFactory, ctx: &mut Context<Self>) {
        log::debug!("factory {}: told to stop", self.id);
        ctx.stop();
    }
}
