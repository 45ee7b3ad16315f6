//! An actix-web application served from a factory's socket (feature `actix-web`): the real
//! client in `HttpRequest::peer_addr()` behind the PROXY protocol, several worker Arbiters,
//! zero-downtime upgrades and draining built in.
//!
//! ```no_run
//! use actix_socket_factory::web::WebServer;
//! use actix_web::{web, App, HttpRequest};
//!
//! async fn hello(request: HttpRequest) -> String {
//!     format!("hello {:?}\n", request.peer_addr())
//! }
//!
//! #[actix::main]
//! async fn main() -> std::io::Result<()> {
//!     let server = WebServer::new(|| App::new().route("/", web::get().to(hello)))
//!         .bind("127.0.0.1:8080")
//!         .start()
//!         .await?;
//!     server.run_until_signal().await?; // SIGHUP: upgrade; SIGTERM, SIGINT: drain and stop
//!     Ok(())
//! }
//! ```
//!
//! # How it serves
//! HTTP/1.x, in clear (TLS and HTTP/2 belong to the balancer in front). One factory listens (or takes the socket a predecessor handed over, by the name
//! [`WebServer::name`]); it hands each accepted connection, round-robin, to one of the worker
//! Arbiters ([`WebServer::workers`], one per core by default, as `HttpServer`'s workers), where
//! actix-http's HTTP/1 dispatcher runs the application that [`WebServer::new`]'s closure made on
//! that Arbiter. Every factory setting applies: give a builder with [`WebServer::listen`], e.g.
//! with [`proxy_protocol`](crate::SocketFactoryBuilder::proxy_protocol) behind HAProxy.
//!
//! # What a handler sees
//! - `HttpRequest::peer_addr()`: the client; behind the PROXY protocol the client the header
//!   names, not the balancer.
//! - `HttpRequest::conn_data::<ProxyHeader>()` (feature `proxy-protocol`): the whole PROXY header
//!   (version, addresses, TLVs, the balancer's own address);
//!   `conn_data::<SocketAddress>()`: the peer as the factory reported it;
//!   `conn_data::<PeerCredentials>()`: a UNIX client's process.
//!
//! # Draining
//! After a handover ([`Serving::upgrade`]) or at a stop ([`Serving::stop`]) the factory lets the
//! listening socket go first (queued clients are the successor's), then the workers drain:
//! every request read is answered, with `Connection: close`; a keep-alive connection that is idle
//! (everything it sent answered, nothing waiting to be read) is closed after 100 ms of idleness
//! in the drain (an active client's next request comes sooner, and is answered with
//! `Connection: close`); a connection that has sent nothing yet is served its first request (up
//! to actix-http's request timeout, 5 s).
//! The stop returns when the last connection is closed, or after [`WebServer::drain_timeout`]
//! (then the workers stop and drop what is left).
//!
//! # Keeping `HttpServer`
//! A program that keeps actix-web's `HttpServer` takes a socket its predecessor handed over by
//! name with [`handover::take`], without a factory:
//! `HttpServer::new(app).listen(TcpListener::from(handover::take("http")?))?`, then
//! [`handover::ready`]. It then drains as `HttpServer` does (its
//! graceful stop), not as described above.
//!
//! An HTTP/1.1 client that sends a request on an idle keep-alive connection just as the server
//! closes it (after those 100 ms) meets the close; RFC 9112 (§9.3.1) has clients retry such an
//! idempotent request on a new connection, as browsers, curl and hyper do. No server can close
//! an idle connection without that race; the grace makes it rare.

mod io;
mod service;

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use actix_http::{body::MessageBody, HttpService, Request, Response};
use actix_service::{map_config, IntoServiceFactory, Service, ServiceFactory, ServiceFactoryExt};
use actix_web::dev::AppConfig;

use crate::actor::builder::SocketFactoryBuilder;
use crate::actor::factory::SocketFactory;
use crate::actor::messages::{SocketCreated, SocketFailed, StopFactory};
use crate::actor::shutdown::ShutdownSignal;
use crate::desc::addr::SocketAddress;
use crate::desc::endpoint::ToEndpoint;
use crate::net::handover::{self, Successor};
use crate::web::io::{Tracker, WebIo};

/// The application's types, for the builder's `PhantomData` (`Send` whatever they are).
type Types<I, S, B> = fn() -> (I, S, B);

type LocalBoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T>>>;

/// The name a [`WebServer`]'s listening socket is handed over by, unless [`WebServer::name`]
/// says otherwise.
pub const DEFAULT_HANDOVER_NAME: &str = "http";

/// How long a stop or an upgrade waits for open connections, unless
/// [`WebServer::drain_timeout`] says otherwise.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How long after an upgrade's successor reports ready the old server keeps its listener
/// (paused), to serve again at once if the successor exits: see [`WebServer::rollback_window`].
pub const DEFAULT_ROLLBACK_WINDOW: Duration = Duration::from_secs(1);

/// An actix-web application to serve from a factory's socket: the builder.
///
/// See [the module](crate::web) for an example and what it does.
pub struct WebServer<F, I, S, B> {
    app: F,
    types: PhantomData<Types<I, S, B>>,
    listen: Option<SocketFactoryBuilder>,
    name: String,
    workers: usize,
    drain_timeout: Duration,
    rollback_window: Duration,
    keep_alive: Option<Duration>,
}

impl<F, I, S, B> fmt::Debug for WebServer<F, I, S, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebServer")
            .field("listen", &self.listen)
            .field("name", &self.name)
            .field("workers", &self.workers)
            .field("drain_timeout", &self.drain_timeout)
            .field("rollback_window", &self.rollback_window)
            .field("keep_alive", &self.keep_alive)
            .finish_non_exhaustive()
    }
}

impl<F, I, S, B> WebServer<F, I, S, B>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request> + 'static,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as Service<Request>>::Future: 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    /// A server of the application `app` makes: called once on each worker Arbiter, as
    /// `HttpServer::new`'s closure (`|| App::new().route(..)`).
    pub fn new(app: F) -> WebServer<F, I, S, B> {
        WebServer {
            app,
            types: PhantomData,
            listen: None,
            name: DEFAULT_HANDOVER_NAME.to_owned(),
            workers: std::thread::available_parallelism().map_or(1, usize::from),
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            rollback_window: DEFAULT_ROLLBACK_WINDOW,
            keep_alive: None,
        }
    }

    /// Listen on `endpoint` (`"127.0.0.1:8080"`, `"[::1]:0"`, `"unix:/run/app.sock"`): a
    /// shorthand for [`listen`](Self::listen) with `SocketFactory::builder().bind(endpoint)`.
    pub fn bind(self, endpoint: impl ToEndpoint) -> WebServer<F, I, S, B> {
        self.listen(SocketFactory::builder().bind(endpoint))
    }

    /// Listen as `builder` describes (its address, options, `proxy_protocol`, `systemd`, ...);
    /// its recipients are replaced by the server's own.
    pub fn listen(mut self, builder: SocketFactoryBuilder) -> WebServer<F, I, S, B> {
        self.listen = Some(builder);
        self
    }

    /// The number of worker Arbiters (at least 1; default: one per core).
    pub fn workers(mut self, workers: usize) -> WebServer<F, I, S, B> {
        self.workers = workers.max(1);
        self
    }

    /// The name the listening socket is handed over by ([`DEFAULT_HANDOVER_NAME`]): a process
    /// that inherited a socket of that name from its predecessor serves on it instead of
    /// binding.
    pub fn name(mut self, name: impl Into<String>) -> WebServer<F, I, S, B> {
        self.name = name.into();
        self
    }

    /// How long a stop or an upgrade waits for open connections to finish
    /// ([`DEFAULT_DRAIN_TIMEOUT`]).
    pub fn drain_timeout(mut self, timeout: Duration) -> WebServer<F, I, S, B> {
        self.drain_timeout = timeout;
        self
    }

    /// The rollback window of an upgrade ([`DEFAULT_ROLLBACK_WINDOW`]): once the successor
    /// reports ready, this server keeps its listener open but paused for `window`, and serves
    /// again at once if the successor exits meanwhile (see
    /// [`hand_over`](crate::hand_over)); only then is the listener given up and the drain
    /// begun. Zero gives it up at once.
    pub fn rollback_window(mut self, window: Duration) -> WebServer<F, I, S, B> {
        self.rollback_window = window;
        self
    }

    /// How long an idle keep-alive connection stays open (actix-http's default, 5 s, when not
    /// set); `Duration::ZERO` turns keep-alive off.
    pub fn keep_alive(mut self, keep_alive: Duration) -> WebServer<F, I, S, B> {
        self.keep_alive = Some(keep_alive);
        self
    }

    /// Starts the workers, then the factory: on the socket named [`name`](Self::name) when this
    /// process inherited one from its predecessor (and then tells the predecessor it is ready),
    /// else as [`bind`](Self::bind) or [`listen`](Self::listen) said. Returns once it listens.
    ///
    /// # Errors
    /// `InvalidInput` when neither `bind` nor `listen` was given and nothing was inherited; an
    /// application that fails to start; the factory's setup failure (a port in use: its
    /// `SocketFailed`, as an `io::Error`).
    pub async fn start(self) -> std::io::Result<Serving> {
        let WebServer {
            app,
            types: _,
            listen,
            name,
            workers,
            drain_timeout,
            rollback_window,
            keep_alive,
        } = self;
        let inherited = handover::is_inherited(&name);
        let builder = match (inherited, listen) {
            (true, builder) => builder
                .unwrap_or_else(SocketFactory::builder)
                .systemd(Some(&name)),
            (false, Some(builder)) => builder,
            (false, None) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "a WebServer needs an address: bind(..) or listen(..)",
                ))
            }
        };
        let tracker = Arc::new(Tracker::default());
        let mut arbiters = Vec::with_capacity(workers);
        let mut recipients = Vec::with_capacity(workers);
        for _ in 0..workers {
            let arbiter = Arbiter::new();
            let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
            let app = app.clone();
            let settings = Settings {
                keep_alive,
                tracker: tracker.clone(),
            };
            let worker = Worker::start_in_arbiter(&arbiter.handle(), move |ctx| {
                let tracker = settings.tracker.clone();
                let build = build_service(app, settings);
                ctx.wait(actix::fut::wrap_future::<_, Worker>(build).map(
                    move |built, worker: &mut Worker, ctx| match built {
                        Ok(serve) => {
                            worker.serve = Some(serve);
                            let _ = ready_tx.send(Ok(()));
                        }
                        Err(error) => {
                            let _ = ready_tx.send(Err(error));
                            ctx.stop();
                        }
                    },
                ));
                Worker {
                    serve: None,
                    tracker: Some(tracker),
                }
            });
            arbiters.push(arbiter);
            recipients.push(worker.recipient());
            let ready = ready_rx.await.unwrap_or_else(|_| {
                Err("the worker stopped before its application started".to_owned())
            });
            if let Err(error) = ready {
                stop_arbiters(arbiters);
                return Err(std::io::Error::other(format!(
                    "the application did not start: {error}"
                )));
            }
        }
        let front = Front {
            workers: recipients,
            next: 0,
        }
        .start();
        let spawned = match builder.owner(&front).spawn().await {
            Ok(spawned) => spawned,
            Err(failed) => {
                stop_arbiters(arbiters);
                return Err(std::io::Error::new(failed.error.kind(), failed.to_string()));
            }
        };
        let local = spawned.local.clone().unwrap_or(SocketAddress::Unnamed);
        log::info!(
            "web server on {local}: {workers} worker{}{}",
            if workers == 1 { "" } else { "s" },
            if inherited {
                ", on the socket handed over"
            } else {
                ""
            }
        );
        if inherited {
            match handover::ready() {
                Ok(_) => {}
                Err(error) => {
                    log::warn!("web server on {local}: cannot tell the predecessor: {error}")
                }
            }
        }
        Ok(Serving {
            factory: spawned.addr,
            _front: front,
            local,
            name,
            arbiters,
            tracker,
            drain_timeout,
            rollback_window,
        })
    }
}

/// How a [`Serving::stop`] or an upgrade ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Connections still open when the drain timeout passed (0: every one finished).
    pub left: usize,
}

/// What ended [`Serving::run_until_signal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ended {
    /// A stop signal: the server stopped and drained.
    Stopped(ShutdownSignal, Drained),
    /// `SIGHUP`: the successor (its pid) serves now; this process drained.
    HandedOver(u32, Drained),
}

/// A running [`WebServer`].
pub struct Serving {
    factory: Addr<SocketFactory>,
    _front: Addr<Front>,
    local: SocketAddress,
    name: String,
    arbiters: Vec<Arbiter>,
    tracker: Arc<Tracker>,
    drain_timeout: Duration,
    rollback_window: Duration,
}

impl fmt::Debug for Serving {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Serving")
            .field("local", &self.local)
            .field("name", &self.name)
            .field("workers", &self.arbiters.len())
            .field("open", &self.tracker.open())
            .finish_non_exhaustive()
    }
}

impl Serving {
    /// Where it listens (what the factory answers to [`GetSockName`](crate::GetSockName)).
    pub fn local_addr(&self) -> &SocketAddress {
        &self.local
    }

    /// The factory that accepts for the server: for [`GetStats`](crate::GetStats),
    /// [`PauseAccept`](crate::PauseAccept), ...
    pub fn factory(&self) -> &Addr<SocketFactory> {
        &self.factory
    }

    /// Connections open now, on every worker.
    pub fn open_connections(&self) -> usize {
        self.tracker.open()
    }

    /// Stops accepting (the listening socket is closed, a UNIX socket file removed), drains
    /// (see [the module](crate::web)) and stops the workers.
    pub async fn stop(self) -> Drained {
        let _ = self.factory.send(StopFactory).await;
        self.drain().await
    }

    /// Hands the listening socket to `successor` (a new version of the program, started with
    /// the socket inherited under this server's name), waits until it is ready, gives the socket
    /// up, then drains and stops the workers. On an error nothing changed: this server still
    /// serves.
    ///
    /// # Errors
    /// The socket cannot be shared, the successor cannot start, or it exited or missed its
    /// ready deadline ([`HandoverError`](crate::handover::HandoverError), as an `io::Error`).
    pub async fn upgrade(
        self,
        successor: Successor,
    ) -> Result<(u32, Drained), (Serving, std::io::Error)> {
        match self.hand_over(successor).await {
            Ok(pid) => Ok((pid, self.drain().await)),
            Err(error) => Err((self, error)),
        }
    }

    async fn hand_over(&self, successor: Successor) -> std::io::Result<u32> {
        // The crate's one-call upgrade: one at a time, the listener kept paused through the
        // rollback window (serving again at once if the successor exits within it), systemd
        // told; only then relinquished.
        let factories = [(self.factory.clone(), self.name.clone())];
        let child = crate::actor::upgrade::hand_over(&factories, successor, self.rollback_window)
            .await
            .map_err(std::io::Error::other)?;
        let pid = child.id();
        log::info!("web server on {}: handed over to pid {pid}", self.local);
        Ok(pid)
    }

    /// Serves until a signal: at `SIGHUP` it upgrades to the program now at this program's
    /// path ([`Successor::this_program`], the same arguments) and drains; at `SIGTERM`, `SIGINT`
    /// or `SIGQUIT` it stops and drains. An upgrade that fails is logged and serving goes on.
    ///
    /// # Errors
    /// The OS's error if a signal handler cannot be installed.
    pub async fn run_until_signal(mut self) -> std::io::Result<Ended> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangup = signal(SignalKind::hangup())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut quit = signal(SignalKind::quit())?;
        loop {
            let caught = tokio::select! {
                _ = hangup.recv() => None,
                _ = terminate.recv() => Some(ShutdownSignal::Terminate),
                _ = interrupt.recv() => Some(ShutdownSignal::Interrupt),
                _ = quit.recv() => Some(ShutdownSignal::Quit),
            };
            let Some(caught) = caught else {
                let successor = match Successor::this_program() {
                    Ok(successor) => successor,
                    Err(error) => {
                        log::warn!("web server on {}: no upgrade: {error}", self.local);
                        continue;
                    }
                };
                match self.upgrade(successor).await {
                    Ok((pid, drained)) => return Ok(Ended::HandedOver(pid, drained)),
                    Err((serving, error)) => {
                        log::warn!(
                            "web server on {}: upgrade failed, still serving: {error}",
                            serving.local
                        );
                        self = serving;
                        continue;
                    }
                }
            };
            log::debug!("{caught}: stopping the web server on {}", self.local);
            return Ok(Ended::Stopped(caught, self.stop().await));
        }
    }

    async fn drain(mut self) -> Drained {
        let open = self.tracker.open();
        log::debug!(
            "web server on {}: draining {open} connection{}",
            self.local,
            if open == 1 { "" } else { "s" }
        );
        self.tracker.draining.cancel();
        let deadline = crate::desc::time::soon_after(self.drain_timeout);
        self.tracker.all_closed(deadline).await;
        let left = self.tracker.open();
        if left > 0 {
            log::warn!(
                "web server on {}: {left} connection{} still open after {:?}, closing",
                self.local,
                if left == 1 { "" } else { "s" },
                self.drain_timeout
            );
        }
        stop_arbiters(std::mem::take(&mut self.arbiters));
        log::info!(
            "web server on {}: stopped ({} connection{} drained, {left} cut)",
            self.local,
            open.saturating_sub(left),
            if open.saturating_sub(left) == 1 {
                ""
            } else {
                "s"
            }
        );
        Drained { left }
    }
}

impl Drop for Serving {
    /// A server dropped without [`stop`](Serving::stop) stops at once, without draining: its
    /// factory and its workers (and with them their connections).
    fn drop(&mut self) {
        if !self.arbiters.is_empty() {
            self.factory.do_send(StopFactory);
            stop_arbiters(std::mem::take(&mut self.arbiters));
        }
    }
}

fn stop_arbiters(arbiters: Vec<Arbiter>) {
    for arbiter in &arbiters {
        arbiter.stop();
    }
    // Joining would block this thread; the Arbiters end on their own once stopped.
    drop(arbiters);
}

struct Settings {
    keep_alive: Option<Duration>,
    tracker: Arc<Tracker>,
}

type Serve = std::rc::Rc<dyn Fn(WebIo, Option<std::net::SocketAddr>) -> LocalBoxFuture<()>>;

/// Makes the application and its HTTP/1 service on the current Arbiter.
async fn build_service<F, I, S, B>(app: F, settings: Settings) -> Result<Serve, String>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as Service<Request>>::Future: 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    let application = app()
        .into_factory()
        .map_err(|error| error.into().error_response());
    let application = map_config(application, |_: ()| AppConfig::default());
    let mut http = HttpService::build();
    if let Some(keep_alive) = settings.keep_alive {
        http = http.keep_alive(keep_alive);
    }
    let http = http
        .on_connect_ext(|io: &WebIo, extensions: &mut actix_http::Extensions| io.attach(extensions))
        .h1(service::Draining {
            inner: application,
            draining: settings.tracker.draining.clone(),
            body: PhantomData,
        });
    let handler = http
        .new_service(())
        .await
        .map_err(|error| format!("{error:?}"))?;
    let handler = std::rc::Rc::new(handler);
    Ok(std::rc::Rc::new(move |io, peer| {
        let handler = handler.clone();
        Box::pin(async move {
            if let Err(error) = handler.call((io, peer)).await {
                log::debug!("web connection from {peer:?}: {error}");
            }
        })
    }))
}

/// One worker Arbiter's actor: serves the connections the front hands it.
#[derive(Default)]
struct Worker {
    serve: Option<Serve>,
    tracker: Option<Arc<Tracker>>,
}

impl Actor for Worker {
    type Context = Context<Self>;
}

impl Handler<SocketCreated> for Worker {
    type Result = ();

    fn handle(&mut self, created: SocketCreated, _: &mut Context<Self>) {
        let (Some(serve), Some(tracker)) = (&self.serve, &self.tracker) else {
            return; // not started: dropping the message closes the connection
        };
        match created.into_stream() {
            Ok(stream) => {
                let peer = stream.peer_addr();
                actix_rt::spawn(serve(WebIo::new(stream, tracker), peer));
            }
            Err(error) => log::debug!("web worker: cannot serve a delivered socket: {error}"),
        }
    }
}

/// The factory's owner: hands each connection to the next worker.
struct Front {
    workers: Vec<Recipient<SocketCreated>>,
    next: usize,
}

impl Actor for Front {
    type Context = Context<Self>;
}

impl Handler<SocketCreated> for Front {
    type Result = ();

    fn handle(&mut self, created: SocketCreated, _: &mut Context<Self>) {
        if self.workers.is_empty() {
            return;
        }
        let worker = &self.workers[self.next % self.workers.len()];
        self.next = self.next.wrapping_add(1);
        worker.do_send(created);
    }
}

impl Handler<SocketFailed> for Front {
    type Result = ();

    fn handle(&mut self, failed: SocketFailed, _: &mut Context<Self>) {
        log::warn!("web server: {failed}");
    }
}
