//! Stopping like a service: on SIGTERM (what systemd and container runtimes send), SIGINT
//! (Ctrl-C) or SIGQUIT, stop accepting, let the factories close their sockets and remove their
//! UNIX socket files, then stop the System so the program exits with status 0.

use std::fmt;
use std::io;
use std::time::Duration;

use actix::prelude::*;
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::actor::factory::SocketFactory;
use crate::actor::messages::StopFactory;

/// How long [`stop_on_signal`] and [`run_until_signal`] wait for the factories to finish stopping.
const STOP_LIMIT: Duration = Duration::from_secs(5);

/// A signal that asks a service to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ShutdownSignal {
    /// `SIGTERM`: systemd's and container runtimes' stop.
    Terminate,
    /// `SIGINT`: Ctrl-C.
    Interrupt,
    /// `SIGQUIT`: Ctrl-\.
    Quit,
}

impl ShutdownSignal {
    /// The signal's C name: `"SIGTERM"`, `"SIGINT"` or `"SIGQUIT"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ShutdownSignal::Terminate => "SIGTERM",
            ShutdownSignal::Interrupt => "SIGINT",
            ShutdownSignal::Quit => "SIGQUIT",
        }
    }
}

impl fmt::Display for ShutdownSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The three signals, caught from the moment this is made.
struct Signals {
    terminate: Signal,
    interrupt: Signal,
    quit: Signal,
}

impl Signals {
    fn new() -> io::Result<Signals> {
        Ok(Signals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            quit: signal(SignalKind::quit())?,
        })
    }

    async fn next(&mut self) -> ShutdownSignal {
        tokio::select! {
            _ = self.terminate.recv() => ShutdownSignal::Terminate,
            _ = self.interrupt.recv() => ShutdownSignal::Interrupt,
            _ = self.quit.recv() => ShutdownSignal::Quit,
        }
    }
}

/// Waits for the first SIGTERM, SIGINT or SIGQUIT.
///
/// The signals are caught from the first poll of the returned future; a signal that comes
/// before it has the OS's default effect. [`stop_on_signal`] catches them at once.
///
/// # Errors
/// The OS's error if a signal handler cannot be installed.
pub async fn shutdown_signal() -> io::Result<ShutdownSignal> {
    Ok(Signals::new()?.next().await)
}

/// Waits for the first SIGTERM, SIGINT or SIGQUIT, then stops `factories` and waits until they
/// are gone (at most 5 s); returns the signal. **The shape for `#[actix::main]`**: `main`
/// returns right after, and the System with it, with exit status 0.
///
/// The signals are caught from the moment this is called (not from the first poll). At the
/// first one, each factory gets [`StopFactory`] (it stops accepting, closes its socket, drops
/// undelivered sockets and removes a UNIX socket file it made). Give no factory to wait for the
/// signal only.
///
/// ```no_run
/// use actix_socket_factory::{run_until_signal, testing::Events};
///
/// #[actix::main]
/// async fn main() -> std::io::Result<()> {
///     let events = Events::start(); // your owner actor: keep it, factories hold it weakly
///     let server = events.builder().bind("/tmp/app.sock").start();
///     let caught = run_until_signal([server]).await?;
///     log::info!("{caught}: stopped"); // /tmp/app.sock is removed
///     Ok(())
/// }
/// ```
///
/// # Errors
/// The OS's error if a signal handler cannot be installed.
pub fn run_until_signal(
    factories: impl IntoIterator<Item = Addr<SocketFactory>>,
) -> impl std::future::Future<Output = io::Result<ShutdownSignal>> {
    let signals = Signals::new();
    let factories: Vec<Addr<SocketFactory>> = factories.into_iter().collect();
    async move {
        let caught = signals?.next().await;
        stop_factories(caught, &factories).await;
        Ok(caught)
    }
}

/// Stops `factories` and then the System at the first SIGTERM, SIGINT or SIGQUIT, so that
/// `System::run` returns `Ok` and `main` exits with status 0: the shape for a `main` that runs
/// `System::new()` and `system.run()`. With `#[actix::main]`, await [`run_until_signal`]
/// instead (stopping the System there does not end `main`).
///
/// The signals are caught from the moment this returns. At the first one, each factory gets
/// [`StopFactory`] (it stops accepting, closes its socket, drops undelivered sockets and
/// removes a UNIX socket file it made); once all are gone (at most 5 s) the current System
/// stops. Give no factory to stop only the System. Call it inside the System, on the Arbiter
/// that should do the stopping.
///
/// ```no_run
/// use actix::prelude::*;
/// use actix_socket_factory::{stop_on_signal, testing::Events};
///
/// fn main() -> std::io::Result<()> {
///     let system = System::new();
///     let _owner = system.block_on(async {
///         let events = Events::start(); // your owner actor
///         let server = events.builder().bind("/tmp/app.sock").start();
///         stop_on_signal([server])?;
///         Ok::<_, std::io::Error>(events) // factories hold their owner weakly: keep it
///     })?;
///     system.run() // Ok(()) after SIGTERM, with /tmp/app.sock removed
/// }
/// ```
///
/// # Errors
/// The OS's error if a signal handler cannot be installed (then nothing is spawned).
pub fn stop_on_signal(factories: impl IntoIterator<Item = Addr<SocketFactory>>) -> io::Result<()> {
    let mut signals = Signals::new()?;
    let factories: Vec<Addr<SocketFactory>> = factories.into_iter().collect();
    actix::spawn(async move {
        let caught = signals.next().await;
        stop_factories(caught, &factories).await;
        System::current().stop();
    });
    Ok(())
}

/// Stops each factory and waits (bounded) until all are gone.
async fn stop_factories(caught: ShutdownSignal, factories: &[Addr<SocketFactory>]) {
    log::info!(
        "{caught}: stopping {} socket factor{}",
        factories.len(),
        if factories.len() == 1 { "y" } else { "ies" }
    );
    let mut names = Vec::with_capacity(factories.len());
    for factory in factories {
        // An error means the factory has stopped already.
        let name = match factory.send(crate::actor::messages::GetSockName).await {
            Ok(Ok(local)) => local.to_string(),
            _ => "an address not yet known".to_owned(),
        };
        log::debug!("{caught}: stopping the socket factory on {name}");
        let _ = factory.send(StopFactory).await;
        names.push(name);
    }
    // StopFactory ends the factory's actor; its socket and socket file go with the actor's
    // state, a moment later. Wait for that (bounded), so nothing is left when the process
    // exits.
    let deadline = crate::desc::time::soon_after(STOP_LIMIT);
    while factories.iter().any(Addr::connected) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for (factory, name) in factories.iter().zip(&names) {
        if factory.connected() {
            log::warn!("the socket factory on {name} did not stop within {STOP_LIMIT:?}");
        }
    }
}
