//! PROXY protocol admission: accepted connections whose header is read beside the accept loop.

use std::rc::Rc;
use std::time::Duration;

use actix::prelude::*;
use socket2::Socket;

use super::{SocketFactory, State};
use crate::desc::addr::SocketAddress;
use crate::desc::kind::{Domain, SocketType};

/// PROXY protocol (issue 17): an accepted connection goes through the gate, and is delivered
/// when its header is read (or it needs none). The permit goes with the read, so headers in
/// flight count against `max_outstanding`; a read still running when the factory stops is
/// cancelled with the actor's futures, and one that ends after the listener is gone delivers
/// nothing.
#[cfg(feature = "proxy-protocol")]
const PROXY_HELD_RETRY: Duration = Duration::from_millis(20);

/// A connection whose header a read task finished: back to the factory for delivery.
#[cfg(feature = "proxy-protocol")]
struct ProxyAdmitted {
    admitted: crate::net::proxy::Admitted,
    local: Option<SocketAddress>,
    kind: (Domain, SocketType),
    permit: crate::net::accept::Permit,
}

#[cfg(feature = "proxy-protocol")]
impl Message for ProxyAdmitted {
    type Result = ();
}

#[cfg(feature = "proxy-protocol")]
impl Handler<ProxyAdmitted> for SocketFactory {
    type Result = ();

    fn handle(&mut self, message: ProxyAdmitted, ctx: &mut Context<Self>) {
        let ProxyAdmitted {
            admitted,
            local,
            kind,
            permit,
        } = message;
        self.admit(admitted, local, kind, permit, ctx);
    }
}

#[cfg(feature = "proxy-protocol")]
impl SocketFactory {
    /// Screens one accepted connection; false: take no more clients in this turn.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn proxied(
        &mut self,
        gate: &Rc<crate::net::proxy::Gate>,
        socket: Socket,
        peer: Option<SocketAddress>,
        local: Option<SocketAddress>,
        kind: (Domain, SocketType),
        permit: crate::net::accept::Permit,
        ctx: &mut Context<Self>,
    ) -> bool {
        use crate::net::proxy::Screened;
        match gate.screen(socket, peer) {
            Screened::Deliver(admitted) => self.admit(admitted, local, kind, permit, ctx),
            Screened::Dropped => true,
            Screened::Read(read) => {
                // Its own task, not a context future: actix polls all of a context's futures
                // at each wake-up, a task wakes for its own socket only. Back by message.
                let factory = ctx.address().downgrade();
                actix::spawn(async move {
                    let Some(admitted) = read.await else { return };
                    if let Some(factory) = factory.upgrade() {
                        factory.do_send(ProxyAdmitted {
                            admitted,
                            local,
                            kind,
                            permit,
                        });
                    }
                });
                true
            }
        }
    }

    /// Delivers a screened connection, while the factory still listens.
    fn admit(
        &mut self,
        admitted: crate::net::proxy::Admitted,
        local: Option<SocketAddress>,
        kind: (Domain, SocketType),
        permit: crate::net::accept::Permit,
        ctx: &mut Context<Self>,
    ) -> bool {
        if !matches!(self.state, State::Listening(_)) {
            return false;
        }
        if !self.owners.has_success() {
            // Success disabled by SetEvents while the header was read: keep the connection, as
            // the listen queue keeps the clients not accepted yet, and look again shortly (the
            // permit stays held, so at most max_outstanding wait; a stop cancels the wait).
            ctx.run_later(PROXY_HELD_RETRY, move |act, ctx| {
                act.admit(admitted, local, kind, permit, ctx);
            });
            return false;
        }
        let crate::net::proxy::Admitted {
            socket,
            peer,
            header,
        } = admitted;
        let mut created = self.created(socket, peer, local, kind, Some(permit));
        created.proxy_header = header;
        match self.owners.deliver(created) {
            Ok(()) => {
                self.counters.delivered += 1;
                true
            }
            Err(_undelivered) => {
                self.stop_if_owner_gone(ctx);
                false
            }
        }
    }
}
