//! The old process's side of an upgrade, for factories: share their listeners, start the
//! successor, pause while its rollback window is open, then give the listeners up, or resume
//! at once if it died. One call, one result for whoever asked.

use std::process::Child;
use std::time::Duration;

use actix::Addr;

use crate::actor::factory::SocketFactory;
use crate::actor::messages::{PauseAccept, Relinquish, ResumeAccept, ShareListener};
use crate::net::handover::{HandoverError, SharedSocket, Successor};

/// Hands the listeners of `factories` (each with the name the successor takes it by) to
/// `successor`, and returns the successor's process once it serves for good.
///
/// 1. Each factory shares a duplicate of its listener ([`ShareListener`]), or of its datagram
///    socket when made [`shareable`](crate::SocketFactoryBuilder::shareable).
/// 2. The successor starts with them inherited ([`Successor::spawn`]): one upgrade at a time,
///    a second call meanwhile fails at once (`ResourceBusy`).
/// 3. Until it reports ready (its deadline: [`Successor::ready_timeout`]) the factories accept
///    as before; if it fails, it is killed and nothing here changed.
/// 4. Once ready, the factories **pause** ([`PauseAccept`]): the listeners stay open, the
///    successor takes every client. If it exits within `grace` (the rollback window), they
///    **resume** ([`ResumeAccept`]) at once: clients queued meanwhile are served here, none is
///    refused.
/// 5. After `grace` they are **relinquished** ([`Relinquish`]): closed, a UNIX socket's file
///    left to the successor. Connections already accepted stay the owner's to finish, and a
///    delivered datagram socket the owner's to stop reading and drop (both processes read its
///    one queue until then, so no datagram is lost).
///
/// Under systemd (`NOTIFY_SOCKET`) it reports `RELOADING=1`, then `MAINPID=` and `READY=1`.
///
/// # Errors
/// [`HandoverError`]: why this process still serves (`ExitedAfterReady` for a rollback; `Io`
/// with pid 0 when nothing was started: another upgrade under way, a factory with no socket to
/// share).
pub async fn hand_over(
    factories: &[(Addr<SocketFactory>, String)],
    successor: Successor,
    grace: Duration,
) -> Result<Child, HandoverError> {
    let shared = share(factories).await?;
    let not_started = |error: std::io::Error| HandoverError::Io { pid: 0, error };
    let starting = successor.sockets(shared).spawn().map_err(not_started)?;
    let ready = starting.ready().await?;
    pause(factories).await;
    let outcome = ready.settle(grace).await;
    conclude(factories, outcome.is_ok()).await;
    outcome
}

/// [`hand_over`] to a process that is not a child (Envoy's hot restart): `stream` is a
/// connection to a local UNIX socket whose peer sent the line `sockets` (already read), a new
/// process that asked with [`handover::request`](crate::handover::request). Same steps, same
/// guarantees: the listeners are shared, sent (`SCM_RIGHTS`), kept paused during the rollback
/// window (the connection closing within it resumes them), then relinquished.
///
/// # Errors
/// As [`hand_over`]; `LeftAfterReady` for a rollback.
pub async fn hand_over_to(
    factories: &[(Addr<SocketFactory>, String)],
    stream: tokio::net::UnixStream,
    ready_timeout: Duration,
    grace: Duration,
) -> Result<u32, HandoverError> {
    let shared = share(factories).await?;
    let offered = crate::net::handover::offer(stream, shared, ready_timeout).await?;
    pause(factories).await;
    let outcome = offered.settle(grace).await;
    conclude(factories, outcome.is_ok()).await;
    outcome
}

/// A named duplicate of each factory's listener.
async fn share(
    factories: &[(Addr<SocketFactory>, String)],
) -> Result<Vec<SharedSocket>, HandoverError> {
    let not_started = |error: std::io::Error| HandoverError::Io { pid: 0, error };
    let mut shared = Vec::with_capacity(factories.len());
    for (factory, name) in factories {
        let socket = factory
            .send(ShareListener::named(name.clone()))
            .await
            .map_err(|error| not_started(std::io::Error::other(error)))?
            .map_err(not_started)?;
        shared.push(socket);
    }
    Ok(shared)
}

/// The rollback window opens: listeners kept, accept paused.
async fn pause(factories: &[(Addr<SocketFactory>, String)]) {
    for (factory, _) in factories {
        let _ = factory.send(PauseAccept).await;
    }
}

/// The window closed: relinquish when the successor settled, resume when it did not.
async fn conclude(factories: &[(Addr<SocketFactory>, String)], settled: bool) {
    for (factory, _) in factories {
        let _ = if settled {
            factory.send(Relinquish).await
        } else {
            factory.send(ResumeAccept).await
        };
    }
}
