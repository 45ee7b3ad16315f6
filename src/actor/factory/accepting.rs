//! Accepting: the accept loop, as a task of its own beside the actor (or, for a server that
//! reads PROXY headers, as an actor future), and what the factory does with each event.
//!
//! A server's accept loop runs as a tokio task on the factory's Arbiter that shares the
//! listener with the actor ([`Server`], behind an `Rc`) and delivers straight to the owner: an
//! accepted connection wakes that one task, not the actor's whole context (its mailbox check,
//! its futures). The actor still owns the listener: it opens the loop from its own turn (so a
//! message sent right after `start()` is handled first), tells it when a message changes what
//! it may do (`PauseAccept`, `ResumeAccept`, `SetEvents`, the start gate), and closes it when
//! it stops; the loop tells the actor, by message, when it finds the owner gone or the
//! listener broken.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context as TaskContext, Poll, Waker};

use actix::prelude::*;
use actix::WeakAddr;
use socket2::Socket;

use super::{SocketFactory, State, ACCEPT_BUDGET};
use crate::actor::messages::{FactoryId, SocketCreated, SocketFailed};
use crate::actor::owner::{OwnerGone, Owners};
use crate::actor::stats::Counters;
use crate::desc::addr::SocketAddress;
use crate::desc::error::{Failure, Operation};
use crate::desc::kind::{Domain, SocketType};
use crate::desc::options::Options;
use crate::net::accept::{AcceptEvent, Acceptor, Permit};
use crate::sys;

/// What a listening factory shares with its accept loop.
pub(super) struct Server {
    /// `None` once the actor has let the listener go: the loop ends at its next poll.
    acceptor: RefCell<Option<Acceptor>>,
    pub(super) local: SocketAddress,
    /// Options for accepted sockets.
    options: Options,
    /// Domain and type of the listening socket, given to each accepted one.
    pub(super) kind: (Domain, SocketType),
    id: FactoryId,
    owners: Rc<Owners>,
    /// Not paused and not gated: the actor's part of [`wants_clients`], set from its turns.
    open: Cell<bool>,
    /// In an accept back-off episode (descriptors or memory exhausted).
    exhausted: Cell<bool>,
    /// What the accept task counted (the actor adds them to its own).
    counters: RefCell<Counters>,
    /// The accept task's waker while it waits for the actor (paused, gated, no success route).
    parked: RefCell<Option<Waker>>,
}

impl Server {
    pub(super) fn new(
        acceptor: Acceptor,
        local: SocketAddress,
        options: Options,
        kind: (Domain, SocketType),
        id: FactoryId,
        owners: Rc<Owners>,
    ) -> Server {
        Server {
            acceptor: RefCell::new(Some(acceptor)),
            local,
            options,
            kind,
            id,
            owners,
            open: Cell::new(false),
            exhausted: Cell::new(false),
            counters: RefCell::new(Counters::default()),
            parked: RefCell::new(None),
        }
    }

    /// The listening socket, while the factory holds it.
    pub(super) fn with_listener<T>(&self, f: impl FnOnce(Option<&Socket>) -> T) -> T {
        f(self.acceptor.borrow().as_ref().map(Acceptor::listener))
    }

    /// Delivered sockets the owner still holds, and their cap.
    pub(super) fn outstanding(&self) -> (usize, usize) {
        self.acceptor.borrow().as_ref().map_or((0, 0), |acceptor| {
            (acceptor.outstanding(), acceptor.max_outstanding())
        })
    }

    pub(super) fn exhausted(&self) -> bool {
        self.exhausted.get()
    }

    /// What the accept task counted.
    pub(super) fn counters(&self) -> std::cell::Ref<'_, Counters> {
        self.counters.borrow()
    }

    /// The actor's say (from its turn): whether the loop may take clients, and a nudge to look
    /// again (a changed success route).
    pub(super) fn set_open(&self, open: bool) {
        self.open.set(open);
        if let Some(waker) = self.parked.borrow_mut().take() {
            waker.wake();
        }
    }

    /// Closes the listener (the factory stopped or let it go): nothing is accepted or delivered
    /// from now on.
    pub(super) fn close(&self) {
        self.open.set(false);
        drop(self.acceptor.borrow_mut().take());
        if let Some(waker) = self.parked.borrow_mut().take() {
            waker.wake();
        }
    }

    /// Ready once a client waits (or the listener fails), before the accept task exists.
    fn poll_client(&self, task: &mut TaskContext<'_>) -> Poll<()> {
        match self.acceptor.borrow().as_ref() {
            Some(acceptor) => acceptor.poll_client(task),
            None => Poll::Pending,
        }
    }

    /// Runs `f` on the acceptor (the actor's accept loop).
    fn poll_acceptor<T>(
        &self,
        f: impl FnOnce(&mut Acceptor) -> Poll<Option<T>>,
    ) -> Poll<Option<T>> {
        match self.acceptor.borrow_mut().as_mut() {
            Some(acceptor) => f(acceptor),
            None => Poll::Ready(None),
        }
    }

    /// Counts and reports a failure that does not end the job.
    fn report(&self, failure: Failure) {
        self.counters.borrow_mut().count_failure(failure.operation);
        let failed = SocketFailed::new(failure, self.id);
        log::debug!(
            "factory {} ({}): {}",
            self.id,
            self.local,
            failed.describe()
        );
        if self.owners.report(failed).is_err() {
            log::debug!("factory {}: no failure recipient to tell", self.id);
        }
    }

    /// Takes in an accepted client, from either accept loop: ends a back-off episode, counts
    /// it, applies its options. False (reported) when its options cannot be applied: the
    /// caller drops it.
    fn admit(&self, socket: &Socket) -> bool {
        if self.exhausted.replace(false) {
            log::debug!(
                "factory {} ({}): accepting again after back-off",
                self.id,
                self.local
            );
        }
        self.counters.borrow_mut().accepted += 1;
        let (domain, _) = self.kind;
        match self.options.apply_accepted(socket, domain.to_socket2()) {
            Ok(()) => true,
            Err(failure) => {
                // Delivering it would break the promise of the options asked for: drop this
                // socket, say why, keep accepting.
                self.report(failure);
                false
            }
        }
    }

    /// The message for an accepted client; `None` (reported) when its options cannot be
    /// applied.
    fn accepted(
        &self,
        socket: Socket,
        peer: Option<std::net::SocketAddr>,
        permit: Permit,
    ) -> Option<SocketCreated> {
        if !self.admit(&socket) {
            return None;
        }
        Some(created(
            self.id,
            socket,
            peer_address(self.kind.0, peer),
            Some(self.local.clone()),
            self.kind,
            Some(permit),
        ))
    }

    /// A back-off episode begins.
    fn backing_off(&self, error: std::io::Error) {
        self.exhausted.set(true);
        self.counters.borrow_mut().backoff_episodes += 1;
        log::warn!(
            "factory {} ({}): accept: {error}; backing off until descriptors are free",
            self.id,
            self.local
        );
        self.report(Failure::new(Operation::Accept, error));
    }
}

/// accept(2) gives no useful address for UNIX clients (POE leaves it undef).
fn peer_address(domain: Domain, peer: Option<std::net::SocketAddr>) -> Option<SocketAddress> {
    match domain {
        Domain::Unix => None,
        _ => peer.map(SocketAddress::Inet),
    }
}

/// A `SocketCreated` from factory `id`, with the peer's credentials of a UNIX stream.
#[inline]
pub(super) fn created(
    id: FactoryId,
    socket: Socket,
    peer: Option<SocketAddress>,
    local: Option<SocketAddress>,
    (domain, socket_type): (Domain, SocketType),
    permit: Option<Permit>,
) -> SocketCreated {
    let credentials = match (domain, socket_type) {
        (Domain::Unix, SocketType::Stream) => sys::peer_credentials(&socket)
            .map_err(|error| log::debug!("factory {id}: no peer credentials: {error}"))
            .ok(),
        _ => None,
    };
    SocketCreated {
        socket,
        peer,
        local,
        credentials,
        id,
        domain,
        socket_type,
        _permit: permit,
        #[cfg(feature = "proxy-protocol")]
        proxy_header: None,
    }
}

/// The accept loop as a task of its own on the factory's Arbiter.
pub(super) struct AcceptTask {
    server: Rc<Server>,
    /// The factory, told when the loop ends by itself (owner gone, broken listener).
    factory: WeakAddr<SocketFactory>,
}

impl AcceptTask {
    pub(super) fn new(server: Rc<Server>, factory: WeakAddr<SocketFactory>) -> AcceptTask {
        AcceptTask { server, factory }
    }

    fn tell<M>(&self, message: M)
    where
        SocketFactory: Handler<M>,
        M: Message + Send + 'static,
        M::Result: Send,
    {
        if let Some(factory) = self.factory.upgrade() {
            factory.do_send(message);
        }
    }
}

impl Future for AcceptTask {
    type Output = ();

    fn poll(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<()> {
        let server = &*self.server;
        // The clients of this burst go to one upgrade of the owner's address, dropped with the
        // guard when this poll returns.
        let _turn = server.owners.turn();
        for _ in 0..ACCEPT_BUDGET {
            if !server.open.get() || !server.owners.can_deliver() {
                // Closed, paused, gated or without a route: the actor wakes us when that
                // changes (it closes the listener when it stops).
                if server.acceptor.borrow().is_none() {
                    return Poll::Ready(());
                }
                *server.parked.borrow_mut() = Some(task.waker().clone());
                return Poll::Pending;
            }
            let event = match server.poll_acceptor(|acceptor| acceptor.poll_event(task)) {
                Poll::Ready(Some(event)) => event,
                Poll::Ready(None) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            };
            match event {
                AcceptEvent::Accepted {
                    socket,
                    peer,
                    permit,
                } => {
                    let Some(created) = server.accepted(socket, peer, permit) else {
                        continue;
                    };
                    match server.owners.deliver(created) {
                        Ok(()) => server.counters.borrow_mut().delivered += 1,
                        // The socket drops here: nobody can take it. The loop waits for a new
                        // route (`can_deliver` is false now), or the actor stops.
                        Err(_undelivered) => {
                            if server.owners.gone() {
                                self.tell(OwnerGone);
                            }
                        }
                    }
                }
                AcceptEvent::Exhausted(error) => server.backing_off(error),
                AcceptEvent::Fatal(error) => {
                    server.open.set(false);
                    self.tell(AcceptFailed(error));
                    return Poll::Ready(());
                }
            }
        }
        // Budget spent with clients still queued: let the Arbiter's other tasks run first.
        task.waker().wake_by_ref();
        Poll::Pending
    }
}

/// A listening server as the actor sees it: an actor future that lives while the factory
/// listens, so the factory, like any actix actor running a future, does not stop when its own
/// `Addr`s are dropped. actix polls it after every message the actor handles: it opens the
/// loop at the first turn (after the messages queued before it) and tells it what each message
/// changed (`PauseAccept`, `ResumeAccept`, `SetEvents`, the start gate). The accept task is
/// spawned when the first client waits: an idle listener has no task (nor its memory).
/// (It holds nothing, so spawning it allocates nothing.)
pub(super) struct Serving;

impl ActorFuture<SocketFactory> for Serving {
    type Output = ();

    fn poll(
        self: Pin<&mut Self>,
        act: &mut SocketFactory,
        ctx: &mut Context<SocketFactory>,
        task: &mut TaskContext<'_>,
    ) -> Poll<()> {
        let open = !act.paused && !act.gated;
        let State::Listening(listening) = &mut act.state else {
            return Poll::Ready(());
        };
        let server = &listening.server;
        server.set_open(open);
        if open && listening.task.is_none() && server.poll_client(task).is_ready() {
            // The first client: from now on the accept loop is a task of its own, which takes
            // it (the readiness stays set for it).
            let factory = ctx.address().downgrade();
            let accept = AcceptTask::new(Rc::clone(server), factory);
            listening.task = Some(actix::spawn(accept));
        }
        Poll::Pending
    }
}

/// The accept task found its listener broken.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(super) struct AcceptFailed(std::io::Error);

impl Handler<AcceptFailed> for SocketFactory {
    type Result = ();

    fn handle(&mut self, AcceptFailed(error): AcceptFailed, ctx: &mut Context<Self>) {
        if matches!(self.state, State::Listening(_)) {
            self.release(ctx);
            self.fail(Failure::new(Operation::Accept, error), ctx);
        }
    }
}

impl SocketFactory {
    /// Delivers one accepted connection past its PROXY header; false: take no more clients in
    /// this turn.
    #[cfg(feature = "proxy-protocol")]
    pub(super) fn deliver_accepted(
        &mut self,
        created: SocketCreated,
        ctx: &mut Context<Self>,
    ) -> bool {
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

    // ----- Accepting from the actor (PROXY protocol servers) ----------------------------------

    /// Handles one event of the actor's accept loop; false: take no more clients in this turn.
    #[cfg(feature = "proxy-protocol")]
    fn on_accept(&mut self, event: AcceptEvent, ctx: &mut Context<Self>) -> bool {
        let State::Listening(listening) = &mut self.state else {
            return false;
        };
        let server = Rc::clone(&listening.server);
        match event {
            AcceptEvent::Accepted {
                socket,
                peer,
                permit,
            } => {
                if !server.admit(&socket) {
                    return true;
                }
                let peer = peer_address(server.kind.0, peer);
                let local = Some(server.local.clone());
                // PROXY protocol (issue 17): the header is read beside the accept loop.
                if let Some(gate) = listening.proxy.as_ref().map(|k| Rc::clone(k.gate())) {
                    return self.proxied(&gate, socket, peer, local, server.kind, permit, ctx);
                }
                let created = created(self.id, socket, peer, local, server.kind, Some(permit));
                self.deliver_accepted(created, ctx)
            }
            AcceptEvent::Exhausted(error) => {
                server.backing_off(error);
                true
            }
            AcceptEvent::Fatal(error) => {
                listening.looping = false;
                self.release(ctx);
                self.fail(Failure::new(Operation::Accept, error), ctx);
                false
            }
        }
    }
}

/// Not paused, not gated, and a success route that has not been found gone. Whether its actor
/// is alive is learnt at delivery (one upgrade of a weak address per socket, not one per poll
/// as well).
pub(super) fn wants_clients(factory: &SocketFactory) -> bool {
    !factory.paused && !factory.gated && factory.owners.can_deliver()
}

/// The accept loop as an actor future, for a server that reads PROXY headers beside it (their
/// reading and screening is the actor's): events go straight to [`SocketFactory::on_accept`].
///
/// It holds nothing (so spawning it allocates nothing): the acceptor lives in the factory's
/// `Listening` state and every poll reads it. Pausing therefore needs no cancelling and resuming
/// no respawning: actix polls a context's futures after every message it handles, so the loop
/// sees each change at once, and while it should not accept it simply registers no interest.
#[cfg(feature = "proxy-protocol")]
pub(super) struct AcceptLoop;

#[cfg(feature = "proxy-protocol")]
impl ActorFuture<SocketFactory> for AcceptLoop {
    type Output = ();

    fn poll(
        self: Pin<&mut Self>,
        act: &mut SocketFactory,
        ctx: &mut Context<SocketFactory>,
        task: &mut TaskContext<'_>,
    ) -> Poll<()> {
        // The clients of this burst go to one upgrade of the owner's address, dropped with the
        // guard when this poll returns.
        let owners = Rc::clone(&act.owners);
        let _turn = owners.turn();
        for _ in 0..ACCEPT_BUDGET {
            let wants = wants_clients(act);
            let State::Listening(listening) = &mut act.state else {
                return Poll::Ready(());
            };
            if !listening.looping {
                return Poll::Ready(());
            }
            if !wants {
                return Poll::Pending;
            }
            let server = Rc::clone(&listening.server);
            // Connections whose header was read beside the loop go first, each with a place
            // under the cap (issue 21); new clients only once none waits.
            if let Some(gate) = listening
                .proxy
                .as_ref()
                .filter(|keeper| keeper.gate().has_held())
                .map(|keeper| Rc::clone(keeper.gate()))
            {
                match server.poll_acceptor(|acceptor| acceptor.poll_permit(task).map(Some)) {
                    Poll::Ready(Some(permit)) => {
                        if !act.deliver_held(&gate, permit, ctx) {
                            return Poll::Pending;
                        }
                        continue;
                    }
                    Poll::Ready(None) => return Poll::Ready(()),
                    Poll::Pending => return Poll::Pending,
                }
            }
            match server.poll_acceptor(|acceptor| acceptor.poll_event(task)) {
                Poll::Ready(Some(event)) => {
                    if !act.on_accept(event, ctx) {
                        return Poll::Pending;
                    }
                }
                Poll::Ready(None) => {
                    if let State::Listening(listening) = &mut act.state {
                        listening.looping = false;
                    }
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
