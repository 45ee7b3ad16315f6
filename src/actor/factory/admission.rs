//! PROXY protocol admission: accepted connections whose header is read beside the accept loop.
//!
//! An accepted connection goes through the gate (`net::proxy::Gate::screen`): delivered at once
//! when its header is already there (or it needs none), with the accept's permit; otherwise its
//! header is read by a task of its own, which holds a place under the gate's `max_pending`
//! bound and **no** permit: reads in flight never count against `max_outstanding`, so silent
//! clients cannot keep good ones waiting (issue 21). A finished read leaves its connection in
//! the gate's held queue and wakes the factory; the accept loop delivers held connections first,
//! each with a permit, while the factory wants clients: a pause or a disabled success route
//! holds them, as the listen queue holds clients not accepted yet. A read still running when the
//! factory stops ends with the gate, and what it held is closed.

use std::rc::Rc;

use actix::prelude::*;
use socket2::Socket;

use super::{SocketFactory, State};
use crate::desc::addr::SocketAddress;
use crate::desc::kind::{Domain, SocketType};

/// A read finished and left its connection in the gate: the factory's context runs again, and
/// with it the accept loop, which delivers it.
struct ProxyHeld;

impl Message for ProxyHeld {
    type Result = ();
}

impl Handler<ProxyHeld> for SocketFactory {
    type Result = ();

    fn handle(&mut self, _: ProxyHeld, _: &mut Context<Self>) {}
}

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
                // The permit counts deliveries only: a pending read holds a place under the
                // gate's own bound instead.
                drop(permit);
                // Its own task, not a context future: actix polls all of a context's futures
                // at each wake-up, a task wakes for its own socket only. Back through the gate.
                let factory = ctx.address().downgrade();
                let gate = Rc::clone(gate);
                actix::spawn(async move {
                    let Some(admitted) = read.await else { return };
                    gate.hold(admitted);
                    if let Some(factory) = factory.upgrade() {
                        factory.do_send(ProxyHeld);
                    }
                });
                true
            }
        }
    }

    /// Delivers the connection that has waited longest in the gate, with `permit`; false: take
    /// no more clients in this turn.
    pub(super) fn deliver_held(
        &mut self,
        gate: &crate::net::proxy::Gate,
        permit: crate::net::accept::Permit,
        ctx: &mut Context<Self>,
    ) -> bool {
        let State::Listening(listening) = &self.state else {
            return false;
        };
        let Some(admitted) = gate.take_held() else {
            return true;
        };
        let local = Some(listening.server.local.clone());
        let kind = listening.server.kind;
        self.admit(admitted, local, kind, permit, ctx)
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
        let crate::net::proxy::Admitted {
            socket,
            peer,
            header,
        } = admitted;
        let mut created = self.created(socket, peer, local, kind, Some(permit));
        created.proxy_header = header;
        self.deliver_accepted(created, ctx)
    }
}
