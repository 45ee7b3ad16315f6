//! Accepting: the accept loop as an actor future, and what the factory does with each event.

use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context as TaskContext, Poll};

use actix::prelude::*;

use super::{SocketFactory, State, ACCEPT_BUDGET};
use crate::actor::messages::SocketCreated;
use crate::desc::addr::SocketAddress;
use crate::desc::error::{Failure, Operation};
use crate::desc::kind::Domain;
use crate::net::accept::AcceptEvent;

impl SocketFactory {
    /// Delivers one accepted connection (past its PROXY header, or needing none); false: take
    /// no more clients in this turn.
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

    // ----- Accepting --------------------------------------------------------------------------

    /// Handles one event of the accept loop; false: take no more clients in this turn.
    pub(super) fn on_accept(&mut self, event: AcceptEvent, ctx: &mut Context<Self>) -> bool {
        let State::Listening(listening) = &mut self.state else {
            return false;
        };
        match event {
            AcceptEvent::Accepted {
                socket,
                peer,
                permit,
            } => {
                if listening.exhausted {
                    listening.exhausted = false;
                    log::debug!(
                        "factory {} ({}): accepting again after back-off",
                        self.id,
                        self.name
                    );
                }
                self.counters.accepted += 1;
                let (domain, socket_type) = listening.kind;
                if let Err(failure) = listening
                    .options
                    .apply_accepted(&socket, domain.to_socket2())
                {
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
                let local = Some(listening.local.clone());
                // PROXY protocol (issue 17): the header is read beside the accept loop.
                #[cfg(feature = "proxy-protocol")]
                if let Some(gate) = listening.proxy.as_ref().map(|k| Rc::clone(k.gate())) {
                    let kind = (domain, socket_type);
                    return self.proxied(&gate, socket, peer, local, kind, permit, ctx);
                }
                let created =
                    self.created(socket, peer, local, (domain, socket_type), Some(permit));
                self.deliver_accepted(created, ctx)
            }
            AcceptEvent::Exhausted(error) => {
                listening.exhausted = true;
                self.counters.backoff_episodes += 1;
                log::warn!(
                    "factory {} ({}): accept: {error}; backing off until descriptors are free",
                    self.id,
                    self.name
                );
                self.report(Failure::new(Operation::Accept, error));
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

/// The accept loop as an actor future: events go straight to [`SocketFactory::on_accept`].
///
/// It holds nothing (so spawning it allocates nothing): the acceptor lives in the factory's
/// `Listening` state and every poll reads it. Pausing therefore needs no cancelling and resuming
/// no respawning: actix polls a context's futures after every message it handles, so the loop
/// sees each change at once, and while it should not accept it simply registers no interest.
pub(super) struct AcceptLoop;

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
            // PROXY protocol: connections whose header was read beside the loop go first, each
            // with a place under the cap (issue 21); new clients only once none waits.
            #[cfg(feature = "proxy-protocol")]
            if let Some(gate) = listening
                .proxy
                .as_ref()
                .filter(|keeper| keeper.gate().has_held())
                .map(|keeper| Rc::clone(keeper.gate()))
            {
                match listening.acceptor.poll_permit(task) {
                    Poll::Ready(permit) => {
                        if !act.deliver_held(&gate, permit, ctx) {
                            return Poll::Pending;
                        }
                        continue;
                    }
                    Poll::Pending => return Poll::Pending,
                }
            }
            match listening.acceptor.poll_event(task) {
                Poll::Ready(Some(event)) => {
                    if !act.on_accept(event, ctx) {
                        return Poll::Pending;
                    }
                }
                Poll::Ready(None) => {
                    listening.looping = false;
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
