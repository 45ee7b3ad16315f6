//! Handover: share the socket with a new process, then give it up.
//!
//! A server shares its listener. A one-shot socket (a datagram socket, mostly) is the
//! application's once delivered, so a [`shareable`](crate::SocketFactoryBuilder::shareable)
//! factory keeps a duplicate of it in its `Keeping` state and shares that: the same state that
//! keeps a delivered socket's UNIX file, with the same end (`Relinquish`, a stop, the owner's
//! end). Asked before the socket is delivered (right after `start()`), it shares the socket it
//! holds. Nothing else changes in the state machine, and a factory not made shareable holds
//! nothing once it has delivered.

use std::io;

use actix::prelude::*;
use socket2::Socket;

use super::{Outcome, SocketFactory, State};
use crate::actor::messages::{Relinquish, ShareListener};
use crate::desc::addr::SocketAddress;
use crate::desc::error::{Context as _, Failure, Operation};
use crate::net::handover::{self, SharedSocket};
use crate::net::unix::SocketFile;

/// What a factory keeps once its one-shot socket is delivered.
pub(super) struct Kept {
    /// Held for its `Drop`, which removes the file. Declared first: dropped while the
    /// duplicate still holds the file's inode (as a server's listener does).
    file: Option<SocketFile>,
    /// A duplicate of the delivered socket, shared on request (`shareable`).
    duplicate: Option<Socket>,
    pub(super) local: SocketAddress,
}

impl Kept {
    /// What there is to keep, if anything: a file, a duplicate, or both.
    pub(super) fn new(
        file: Option<SocketFile>,
        duplicate: Option<Socket>,
        local: Option<SocketAddress>,
    ) -> Option<Box<Kept>> {
        if file.is_none() && duplicate.is_none() {
            return None;
        }
        Some(Box::new(Kept {
            file,
            duplicate,
            local: local?,
        }))
    }
}

impl SocketFactory {
    /// A duplicate of the one-shot socket about to be delivered, for a shareable factory.
    pub(super) fn duplicate(&self, socket: &Socket) -> Result<Option<Socket>, Failure> {
        if !self.shareable {
            return Ok(None);
        }
        // socket2 duplicates close-on-exec: a successor gets it only through a handover.
        socket.try_clone().map(Some).during(Operation::Socket)
    }
}

impl Handler<ShareListener> for SocketFactory {
    type Result = io::Result<SharedSocket>;

    fn handle(&mut self, share: ShareListener, _: &mut Context<Self>) -> Self::Result {
        if let State::Listening(listening) = &self.state {
            let server = std::rc::Rc::clone(&listening.server);
            return server.with_listener(|socket| self.share(share, socket));
        }
        let socket = match &self.state {
            State::Keeping(kept) => kept.duplicate.as_ref(),
            // Asked before the socket was delivered (right after `start()`): the same socket.
            State::Holding(outcome) if self.shareable => match &**outcome {
                Outcome::Created { created, .. } => Some(&created.socket),
                Outcome::Failed(_) => None,
            },
            _ => None,
        };
        self.share(share, socket)
    }
}

impl SocketFactory {
    fn share(&self, share: ShareListener, socket: Option<&Socket>) -> io::Result<SharedSocket> {
        let Some(socket) = socket else {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                format!(
                    "the factory holds no socket to share ({}; a one-shot socket is \
                         shared only by a factory made `shareable`)",
                    self.state.label()
                ),
            ));
        };
        let name = match share.name {
            Some(name) => name,
            None => handover::address_name(socket)?,
        };
        log::debug!(
            "factory {} ({}): sharing its socket as {name:?}",
            self.id,
            self.name
        );
        SharedSocket::new(name, socket.try_clone()?)
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
            // The duplicate closes here; the delivered socket is the application's to drop.
            State::Keeping(mut kept) => {
                if let Some(file) = kept.file.take() {
                    file.disown();
                }
            }
            // Shared before it was delivered: the socket is the successor's now.
            State::Holding(mut outcome) => {
                if let Outcome::Created { file, .. } = &mut *outcome {
                    if let Some(file) = file.take() {
                        file.disown();
                    }
                }
            }
            other => self.state = other,
        }
        // A kept adopted socket would hold the listener open here; nothing sets up again.
        self.spec = None;
        self.retire(ctx);
    }
}
