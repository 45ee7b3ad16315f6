//! Handover: share the listener with a new process, then give it up.

use std::io;

use actix::prelude::*;

use super::{SocketFactory, State};
use crate::actor::messages::{Relinquish, ShareListener};
use crate::net::handover::{self, SharedSocket};

impl Handler<ShareListener> for SocketFactory {
    type Result = io::Result<SharedSocket>;

    fn handle(&mut self, share: ShareListener, _: &mut Context<Self>) -> Self::Result {
        let State::Listening(listening) = &self.state else {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                format!(
                    "the factory does not listen ({}): nothing to share",
                    self.state.label()
                ),
            ));
        };
        let listener = listening.acceptor.listener();
        let name = match share.name {
            Some(name) => name,
            None => handover::address_name(listener)?,
        };
        log::debug!(
            "factory {} ({}): sharing its listener as {name:?}",
            self.id,
            self.name
        );
        SharedSocket::new(name, listener.try_clone()?)
    }
}

impl Handler<Relinquish> for SocketFactory {
    type Result = ();

    fn handle(&mut self, _: Relinquish, ctx: &mut Context<Self>) {
        log::info!(
            "factory {} ({}): socket handed over; stopping",
            self.id,
            self.name
        );
        // The successor serves on the UNIX socket file: forget it, never remove it.
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Listening(mut listening) => {
                if let Some(file) = listening._file.take() {
                    file.disown();
                }
            }
            State::Keeping { _file, .. } => _file.disown(),
            other => self.state = other,
        }
        // A kept adopted socket would hold the listener open here; nothing sets up again.
        self.spec = None;
        self.retire(ctx);
    }
}
