//! Multi-core accept: one factory per Arbiter on one address, with `SO_REUSEPORT`.
//!
//! Each member has its own listening socket and its own accept loop on its own Arbiter's thread;
//! the kernel hashes each new connection to one member's queue. That is why pausing must reach
//! every member: a client hashed to a running member's queue is accepted even while the others
//! are paused.

use std::io;

use actix::prelude::*;

use crate::actor::builder::SocketFactoryBuilder;
use crate::actor::factory::SocketFactory;
use crate::actor::messages::{
    GetSockName, PauseAccept, Relinquish, ResumeAccept, ShareListener, StopFactory,
};
use crate::desc::addr::{Address, Port, SocketAddress};
use crate::net::handover::SharedSocket;

/// Servers on one address, one per Arbiter, sharing the port through `SO_REUSEPORT`.
///
/// ```
/// use actix::prelude::*;
/// use actix_socket_factory::{testing::Events, FactoryGroup};
///
/// #[actix::main]
/// async fn main() {
///     let events = Events::start();
///     let arbiters = [Arbiter::new(), Arbiter::new()];
///     let handles: Vec<_> = arbiters.iter().map(|a| a.handle()).collect();
///     let group = FactoryGroup::start(events.builder().bind_address("127.0.0.1"), &handles)
///         .await
///         .unwrap();
///     assert_eq!(group.members().len(), 2);
///     group.pause().await;   // reaches every member before it returns
///     group.stop();
/// }
/// ```
#[derive(Debug)]
pub struct FactoryGroup {
    members: Vec<Addr<SocketFactory>>,
    local: SocketAddress,
}

impl FactoryGroup {
    /// Starts one factory of `builder`'s description on each Arbiter, with `SO_REUSEPORT` set.
    ///
    /// With port 0, the first member's port is the group's: the others bind the port it got.
    ///
    /// # Platforms
    /// Linux and Android (`SO_REUSEPORT`) and FreeBSD (`SO_REUSEPORT_LB`) spread connections
    /// across the members. macOS and the other BSDs do not (their `SO_REUSEPORT` gives each
    /// connection to one of the sockets, leaving the others idle), so there the group has one
    /// member, on the first Arbiter: [`members`](FactoryGroup::members) has one entry whatever
    /// the count of Arbiters, said at `info`.
    ///
    /// # Errors
    /// The first failure to bind a member (also sent to the owner as `SocketFailed`); members
    /// already started are stopped. `InvalidInput` when `arbiters` is empty.
    pub async fn start(
        builder: SocketFactoryBuilder,
        arbiters: &[ArbiterHandle],
    ) -> io::Result<FactoryGroup> {
        let Some((first, rest)) = arbiters.split_first() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a factory group needs at least one Arbiter",
            ));
        };
        let builder = builder.reuse_port(true);
        let rest = if crate::sys::REUSE_PORT_BALANCES || rest.is_empty() {
            rest
        } else {
            log::info!(
                "factory group: one member instead of {}, this system's SO_REUSEPORT does not \
                 spread connections across sockets",
                arbiters.len()
            );
            &[]
        };
        let leader = builder.clone().start_in_arbiter(first);
        let local = locate(&leader).await?;
        let mut group = FactoryGroup {
            members: vec![leader],
            local,
        };
        // Every member binds exactly where the first one did (its port, not port 0).
        let mut shared = builder;
        if let SocketAddress::Inet(addr) = &group.local {
            shared = shared
                .bind_address(Address::Ip(addr.ip()))
                .bind_port(Port::Number(addr.port()));
        }
        for arbiter in rest {
            let member = shared.clone().start_in_arbiter(arbiter);
            let located = locate(&member).await;
            group.members.push(member);
            if let Err(error) = located {
                group.stop();
                return Err(error);
            }
        }
        Ok(group)
    }

    /// The members, one per Arbiter, in the order of the Arbiters given (one only where the
    /// system does not spread connections: see [`start`](FactoryGroup::start)).
    pub fn members(&self) -> &[Addr<SocketFactory>] {
        &self.members
    }

    /// The address every member listens on: what each answers to
    /// [`GetSockName`](crate::GetSockName) (POE's `getsockname()`, the way to ask one factory),
    /// kept by the group, under std's name for it.
    #[doc(alias = "getsockname")]
    #[doc(alias = "GetSockName")]
    pub fn local_addr(&self) -> &SocketAddress {
        &self.local
    }

    /// Pauses every member; returns once each has handled [`PauseAccept`].
    pub async fn pause(&self) {
        for member in &self.members {
            let _ = member.send(PauseAccept).await;
        }
    }

    /// Resumes every member; returns once each has handled [`ResumeAccept`].
    pub async fn resume(&self) {
        for member in &self.members {
            let _ = member.send(ResumeAccept).await;
        }
    }

    /// A duplicate of every member's listener, in member order, all named `name` (else the
    /// group's address): a successor's group takes them in that order with
    /// [`systemd(Some(name))`](SocketFactoryBuilder::systemd) on each member. See
    /// [`crate::net::handover`].
    ///
    /// # Errors
    /// The first member that cannot share (see [`ShareListener`]).
    pub async fn share(&self, name: Option<&str>) -> io::Result<Vec<SharedSocket>> {
        let mut shared = Vec::with_capacity(self.members.len());
        for member in &self.members {
            let share = ShareListener {
                name: name.map(str::to_owned),
            };
            let socket = member.send(share).await.map_err(|error| {
                io::Error::new(io::ErrorKind::NotConnected, error.to_string())
            })??;
            shared.push(socket);
        }
        Ok(shared)
    }

    /// Gives every member's listener up ([`Relinquish`]); returns once each has handled it.
    pub async fn relinquish(&self) {
        for member in &self.members {
            let _ = member.send(Relinquish).await;
        }
    }

    /// Stops every member.
    pub fn stop(&self) {
        for member in &self.members {
            member.do_send(StopFactory);
        }
    }
}

async fn locate(member: &Addr<SocketFactory>) -> io::Result<SocketAddress> {
    member
        .send(GetSockName)
        .await
        .map_err(|error| io::Error::new(io::ErrorKind::NotConnected, error.to_string()))?
}
