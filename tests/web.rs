//! The actix-web bridge (feature `actix-web`): a real actix-web `App` served from the factory's
//! socket on several worker Arbiters, `peer_addr()` checked against the client's own bound
//! address (directly, and behind a real HAProxy with PROXY v1 and v2), draining at a stop, and
//! an upgrade rolled back when its successor exits within the rollback window.
#![cfg(all(feature = "actix-web", feature = "proxy-protocol"))]

mod util;
mod web_support;

use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use actix_socket_factory::web::{Drained, WebServer};
use actix_socket_factory::{PeerCredentials, ProxyHeader, ProxyProtocol, SocketFactory};
use actix_web::{web, App, HttpRequest};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use util::*;

/// One HTTP/1.1 answer, as the minimal client below reads it.
#[derive(Debug)]
struct Reply {
    status: u16,
    close: bool,
    body: String,
}

/// Sends `GET path` on `stream` and reads the answer (Content-Length bodies), bounded.
async fn get(
    stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
    path: &str,
) -> std::io::Result<Reply> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    tokio::time::timeout(LIMIT, read_reply(stream))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer"))?
}

async fn read_reply(stream: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Reply> {
    let mut data = Vec::new();
    let mut byte = [0; 1];
    while !data.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        data.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&data).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let header = |name: &str| {
        head.lines()
            .find_map(|line| line.strip_prefix(&format!("{name}: ")).map(str::to_owned))
    };
    let len: usize = header("content-length")
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    stream.read_exact(&mut body).await?;
    Ok(Reply {
        status,
        close: header("connection").is_some_and(|c| c.trim() == "close"),
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// A TCP client bound to 127.0.0.2 (a loopback address of its own, not the server's).
async fn client_to(server: SocketAddr) -> (TcpStream, SocketAddr) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::from((Ipv4Addr::new(127, 0, 0, 2), 0)))
        .unwrap();
    let stream = socket.connect(server).await.expect("connect");
    let local = stream.local_addr().unwrap();
    (stream, local)
}

/// `peer_addr thread-id [proxy version]`.
async fn who(request: HttpRequest) -> String {
    let header = request
        .conn_data::<ProxyHeader>()
        .map(|header| format!(" {:?}", header.version()))
        .unwrap_or_default();
    format!(
        "{} {:?}{header}",
        request
            .peer_addr()
            .map_or("none".to_owned(), |p| p.to_string()),
        std::thread::current().id()
    )
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_millis(500)).await;
    "slow"
}

fn app() -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .route("/", web::get().to(who))
        .route("/slow", web::get().to(slow))
}

#[actix::test]
async fn peer_addr_is_the_client_and_every_worker_serves() {
    let server = WebServer::new(app)
        .bind("127.0.0.1:0")
        .workers(2)
        .start()
        .await
        .expect("started");
    let addr = server.local_addr().as_inet().expect("an INET address");
    let mut threads = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let (mut stream, me) = client_to(addr).await;
        // Keep-alive: two requests on one connection.
        for _ in 0..2 {
            let reply = get(&mut stream, "/").await.expect("an answer");
            assert_eq!(reply.status, 200, "{reply:?}");
            assert!(!reply.close, "{reply:?}");
            let (peer, thread) = reply.body.split_once(' ').unwrap();
            assert_eq!(peer, me.to_string());
            threads.insert(thread.to_owned());
        }
    }
    assert_eq!(
        threads.len(),
        2,
        "round-robin over two workers: {threads:?}"
    );
    let started = Instant::now();
    assert_eq!(server.stop().await, Drained { left: 0 });
    assert!(started.elapsed() < LIMIT, "{:?}", started.elapsed());
    assert!(TcpStream::connect(addr).await.is_err(), "still listening");
}

#[actix::test]
async fn draining_closes_idle_keep_alive_and_answers_in_flight_with_close() {
    let server = WebServer::new(app)
        .bind("127.0.0.1:0")
        .workers(2)
        .keep_alive(Duration::from_secs(60)) // a close seen below is the drain's, not a timeout
        .start()
        .await
        .expect("started");
    let addr = server.local_addr().as_inet().unwrap();

    // An idle keep-alive connection (one request answered), one with a request in flight,
    // and one accepted that has not sent anything yet.
    let (mut idle, _) = client_to(addr).await;
    assert_eq!(get(&mut idle, "/").await.unwrap().status, 200);
    let (mut busy, _) = client_to(addr).await;
    busy.write_all(b"GET /slow HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let (mut fresh, _) = client_to(addr).await;
    assert!(
        wait_until(LIMIT, || server.open_connections() == 3).await,
        "{server:?}"
    );

    let started = Instant::now();
    let stop = actix_rt::spawn(server.stop());

    // The idle one is closed at once, not after its 60 s keep-alive.
    let mut byte = [0; 1];
    let eof = tokio::time::timeout(LIMIT, idle.read(&mut byte)).await;
    assert_eq!(eof.expect("closed within the limit").unwrap(), 0);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    // The one in flight is answered, with Connection: close, then closed.
    let reply = tokio::time::timeout(LIMIT, read_reply(&mut busy))
        .await
        .unwrap()
        .expect("the slow answer");
    assert_eq!(
        (reply.status, reply.close, reply.body.as_str()),
        (200, true, "slow")
    );
    assert_eq!(busy.read(&mut byte).await.unwrap(), 0);

    // The fresh one is served its first request, with Connection: close.
    let reply = get(&mut fresh, "/").await.expect("served while draining");
    assert_eq!((reply.status, reply.close), (200, true), "{reply:?}");
    assert_eq!(fresh.read(&mut byte).await.unwrap(), 0);

    let drained = tokio::time::timeout(LIMIT, stop).await.unwrap().unwrap();
    assert_eq!(drained, Drained { left: 0 });
}

#[actix::test]
async fn a_stalled_connection_is_cut_at_the_drain_bound() {
    let bound = Duration::from_millis(300);
    let server = WebServer::new(app)
        .bind("127.0.0.1:0")
        .workers(1)
        .drain_timeout(bound)
        .start()
        .await
        .expect("started");
    let addr = server.local_addr().as_inet().unwrap();
    // Half a request: never answered, never idle.
    let (mut stalled, _) = client_to(addr).await;
    stalled.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    assert!(wait_until(LIMIT, || server.open_connections() == 1).await);
    let started = Instant::now();
    assert_eq!(server.stop().await, Drained { left: 1 });
    let took = started.elapsed();
    assert!(took >= bound && took < bound * 5, "{took:?}");
    // The worker stopped: the connection is closed.
    let mut byte = [0; 1];
    let closed = tokio::time::timeout(LIMIT, stalled.read(&mut byte)).await;
    assert!(matches!(closed.expect("closed"), Ok(0) | Err(_)));
}

#[actix::test]
async fn a_unix_socket_is_served_with_the_clients_credentials() {
    let (_dir, path) = temp_socket_path("web.sock");
    let server = WebServer::new(|| {
        App::new().route(
            "/",
            web::get().to(|request: HttpRequest| async move {
                let pid = request.conn_data::<PeerCredentials>().and_then(|c| c.pid);
                format!("{pid:?}")
            }),
        )
    })
    .bind(format!("unix:{}", path.display()))
    .workers(1)
    .start()
    .await
    .expect("started");
    let mut stream = tokio::net::UnixStream::connect(&path).await.unwrap();
    let reply = get(&mut stream, "/").await.unwrap();
    assert_eq!(reply.body, format!("Some({})", std::process::id()));
    drop(stream);
    assert_eq!(server.stop().await, Drained { left: 0 });
    assert!(!path.exists(), "the socket file is removed at the stop");
}

#[actix::test]
async fn without_an_address_start_says_so() {
    let error = WebServer::new(app).start().await.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    // A port in use: the bind's error, as the OS says it.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let error = WebServer::new(app)
        .bind(taken.local_addr().unwrap())
        .workers(1)
        .start()
        .await
        .unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::AddrInUse, "{error}");
}

// ---------------------------------------------------------------------------------------------
// Behind a real HAProxy.

async fn peer_addr_behind_haproxy(server_options: &str, version: &str) {
    let Some(program) = web_support::haproxy() else {
        return;
    };
    let server = WebServer::new(app)
        .listen(
            SocketFactory::builder()
                .bind("127.0.0.1:0")
                .proxy_protocol(ProxyProtocol::required()),
        )
        .workers(2)
        .start()
        .await
        .expect("started");
    let backend = server.local_addr().as_inet().unwrap();
    let (_haproxy, front) = web_support::start_haproxy(program, backend, server_options).await;
    let mut answered = 0;
    for _ in 0..5 {
        let (mut stream, me) = client_to(front).await;
        for _ in 0..5 {
            let reply = get(&mut stream, "/")
                .await
                .expect("an answer through haproxy");
            assert_eq!(reply.status, 200, "{reply:?}");
            let mut words = reply.body.split(' ');
            assert_eq!(words.next(), Some(me.to_string().as_str()), "{reply:?}");
            assert_eq!(words.nth(1), Some(version), "{reply:?}");
            answered += 1;
        }
    }
    assert_eq!(answered, 25);
    drop(_haproxy);
    assert_eq!(server.stop().await, Drained { left: 0 });
}

#[actix::test]
async fn behind_haproxy_v1_peer_addr_is_the_client() {
    peer_addr_behind_haproxy("send-proxy", "V1").await;
}

#[actix::test]
async fn behind_haproxy_v2_peer_addr_is_the_client() {
    peer_addr_behind_haproxy("send-proxy-v2", "V2").await;
}

// ---------------------------------------------------------------------------------------------
// For users who keep HttpServer: the socket a predecessor handed over, taken by name without a
// factory (`handover::take`), served by actix-web's own HttpServer.

#[actix::test]
async fn httpserver_serves_a_socket_taken_by_name_from_a_predecessor() {
    use actix_socket_factory::handover::{SharedSocket, Successor};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut command = std::process::Command::new(exe);
    command
        .args([
            "httpserver_child",
            "--exact",
            "--include-ignored",
            "--nocapture",
        ])
        .env(util::child::CHILD_VAR, "httpserver_child")
        .stdout(Stdio::null());
    let starting = Successor::new(command)
        .socket(SharedSocket::new("http", listener).unwrap())
        .ready_timeout(LIMIT)
        .spawn()
        .expect("the successor starts");
    let mut child = starting
        .ready()
        .await
        .expect("the successor serves")
        .into_child();
    let (mut stream, me) = client_to(addr).await;
    let reply = get(&mut stream, "/").await.expect("HttpServer's answer");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply.body.starts_with(&me.to_string()), "{reply:?}");
    drop(stream);
    // HttpServer's own SIGTERM handling ends the child.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the child did not stop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status}");
}

#[test]
#[ignore = "runs as a successor: httpserver_serves_a_socket_taken_by_name_from_a_predecessor"]
fn httpserver_child() {
    if !in_child("httpserver_child") {
        return;
    }
    use actix_socket_factory::handover;
    let socket = handover::take("http").expect("the inherited socket");
    assert_eq!(
        handover::take("http").unwrap_err().kind(),
        std::io::ErrorKind::NotFound,
        "taken once only"
    );
    actix_rt::System::new().block_on(async {
        let server = actix_web::HttpServer::new(app)
            .workers(1)
            .listen(std::net::TcpListener::from(socket))
            .expect("listen")
            .run();
        handover::ready().expect("the predecessor is told");
        server.await.expect("HttpServer ran");
    });
}

/// The documented way to start a factory paused: `PauseAccept` sent right after `start()` is
/// handled before the first accept.
#[actix::test]
async fn a_factory_started_paused_delivers_nothing_until_resumed() {
    use actix_socket_factory::{GetSockName, PauseAccept, ResumeAccept};
    for _ in 0..3 {
        let mut events = Events::start();
        let server = events.builder().bind("127.0.0.1:0").start();
        server.do_send(PauseAccept);
        let local = server.send(GetSockName).await.unwrap().unwrap();
        let _client = TcpStream::connect(local.as_inet().unwrap()).await.unwrap();
        events
            .expect_no_created(Duration::from_millis(200))
            .await
            .expect("nothing while paused");
        server.do_send(ResumeAccept);
        events
            .next_created(LIMIT)
            .await
            .expect("delivered once resumed");
    }
}

/// A successor that dies before it is ready: the upgrade is an error, and the server, which
/// gave nothing up, still serves (keep-alive connections included).
#[actix::test]
async fn an_upgrade_whose_successor_dies_keeps_serving() {
    use actix_socket_factory::handover::Successor;
    let server = WebServer::new(app)
        .bind("127.0.0.1:0")
        .workers(1)
        .start()
        .await
        .expect("started");
    let addr = server.local_addr().as_inet().unwrap();
    let (mut kept, _) = client_to(addr).await;
    assert_eq!(get(&mut kept, "/").await.unwrap().status, 200);

    let dies = Successor::new(Command::new("false")).ready_timeout(LIMIT);
    let (server, error) = match server.upgrade(dies).await {
        Ok(done) => panic!("an upgrade to a dead successor: {done:?}"),
        Err(failed) => failed,
    };
    assert!(!error.to_string().is_empty());
    // Still serving: the old connection, and new ones.
    let reply = get(&mut kept, "/").await.expect("the kept connection");
    assert_eq!((reply.status, reply.close), (200, false), "{reply:?}");
    let (mut fresh, _) = client_to(addr).await;
    assert_eq!(get(&mut fresh, "/").await.unwrap().status, 200);
    drop((kept, fresh));
    assert_eq!(server.stop().await, Drained { left: 0 });
}

/// A `Serving` dropped without `stop()`: the factory and the workers stop (the connection, which
/// lives on a worker, is closed), no listener is left behind.
#[actix::test]
async fn a_dropped_server_stops_its_factory_and_workers() {
    let server = WebServer::new(app)
        .bind("127.0.0.1:0")
        .workers(2)
        .start()
        .await
        .expect("started");
    let addr = server.local_addr().as_inet().unwrap();
    let (mut client, _) = client_to(addr).await;
    assert_eq!(get(&mut client, "/").await.unwrap().status, 200);
    drop(server);
    let mut byte = [0; 1];
    let closed = tokio::time::timeout(LIMIT, client.read(&mut byte)).await;
    assert!(matches!(closed.expect("closed"), Ok(0) | Err(_)));
    assert!(
        wait_until(LIMIT, || std::net::TcpStream::connect(addr).is_err()).await,
        "still listening"
    );
}

// ---------------------------------------------------------------------------------------------
// The rollback window: a successor that reports ready, then exits within it.

/// How long [`ready_then_exits_child`] lives after it reported ready.
const LIVES_AFTER_READY: Duration = Duration::from_millis(300);

/// An upgrade whose successor (this binary, [`ready_then_exits_child`]) takes the socket,
/// reports ready, then exits within the rollback window: the upgrade is an error, the
/// `Serving` comes back and serves again at once (a client load throughout is never refused),
/// the keep-alive connection included. With `rollback_window(Duration::MAX)` too: the window
/// lasts as long as the successor lives, so its exit ends it the same way.
#[actix::test]
async fn an_upgrade_whose_successor_exits_in_the_rollback_window_rolls_back() {
    for window in [Duration::from_secs(5), Duration::MAX] {
        rollback(window).await;
    }
}

async fn rollback(window: Duration) {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let server = WebServer::new(app)
        .bind("127.0.0.1:0")
        .workers(1)
        .rollback_window(window)
        .start()
        .await
        .expect("started");
    let addr = server.local_addr().as_inet().unwrap();
    let (mut kept, _) = client_to(addr).await;
    assert_eq!(get(&mut kept, "/").await.unwrap().status, 200);

    // The load: two clients, a new connection per request, until the test is done.
    let stop = Arc::new(AtomicBool::new(false));
    let (answered, refused, failed) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let (stop, answered, refused, failed) = (
                stop.clone(),
                answered.clone(),
                refused.clone(),
                failed.clone(),
            );
            actix_rt::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut stream) = TcpStream::connect(addr).await else {
                        refused.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    };
                    match get(&mut stream, "/").await {
                        Ok(reply) if reply.status == 200 => {
                            answered.fetch_add(1, Ordering::Relaxed)
                        }
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let exe = std::env::current_exe().unwrap();
    let mut command = Command::new(exe);
    command
        .args([
            "ready_then_exits_child",
            "--exact",
            "--include-ignored",
            "--nocapture",
        ])
        .env(util::child::CHILD_VAR, "ready_then_exits_child")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let successor = actix_socket_factory::handover::Successor::new(command).ready_timeout(LIMIT);
    let before = answered.load(Ordering::Relaxed);
    let started = Instant::now();
    let upgraded = tokio::time::timeout(LIMIT, server.upgrade(successor))
        .await
        .expect("the upgrade ends");
    let took = started.elapsed();
    let (server, error) = match upgraded {
        Ok(done) => panic!("an upgrade to a successor that exited: {done:?}"),
        Err(failed) => failed,
    };
    assert!(
        error.to_string().contains("exit"),
        "a rollback's error: {error}"
    );
    // Rolled back when the successor exited, not at the end of the window.
    assert!(
        took >= LIVES_AFTER_READY && took < LIMIT,
        "the upgrade took {took:?}"
    );
    let during = answered.load(Ordering::Relaxed) - before;

    // Serving again: the kept connection, a new one, and the load goes on.
    let reply = get(&mut kept, "/").await.expect("the kept connection");
    assert_eq!((reply.status, reply.close), (200, false), "{reply:?}");
    let (mut fresh, me) = client_to(addr).await;
    let reply = get(&mut fresh, "/").await.expect("a new connection");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply.body.starts_with(&me.to_string()), "{reply:?}");
    let after = answered.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        tokio::time::timeout(LIMIT, client).await.unwrap().unwrap();
    }
    let (answered, refused, failed) = (
        answered.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    println!(
        "rollback window {window:?}: upgrade Err after {took:?} ({error}); load answered \
         {answered} ({during} during the upgrade, {} after it), refused {refused}, failed {failed}",
        answered - after
    );
    assert_eq!((refused, failed), (0, 0));
    assert!(answered > after, "the load is served after the rollback");
    drop((kept, fresh));
    assert_eq!(server.stop().await, Drained { left: 0 });
}

/// `rollback_window(Duration::ZERO)`: no window, the upgrade to a successor that is up when it
/// is settled succeeds at once; the old server drains.
#[actix::test]
async fn a_zero_rollback_window_hands_over_at_once() {
    let server = WebServer::new(app)
        .bind("127.0.0.1:0")
        .workers(1)
        .rollback_window(Duration::ZERO)
        .start()
        .await
        .expect("started");
    let addr = server.local_addr().as_inet().unwrap();
    let (mut client, _) = client_to(addr).await;
    assert_eq!(get(&mut client, "/").await.unwrap().status, 200);
    drop(client);
    let exe = std::env::current_exe().unwrap();
    let mut command = Command::new(exe);
    command
        .args([
            "ready_then_exits_child",
            "--exact",
            "--include-ignored",
            "--nocapture",
        ])
        .env(util::child::CHILD_VAR, "ready_then_exits_child")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let successor = actix_socket_factory::handover::Successor::new(command).ready_timeout(LIMIT);
    let started = Instant::now();
    let (pid, drained) = tokio::time::timeout(LIMIT, server.upgrade(successor))
        .await
        .expect("the upgrade ends")
        .expect("handed over: nothing to roll back to without a window");
    assert!(started.elapsed() < LIMIT);
    assert_eq!(drained, Drained { left: 0 });
    assert!(pid > 0);
}

#[test]
#[ignore = "runs as a successor: the rollback window tests"]
fn ready_then_exits_child() {
    if !in_child("ready_then_exits_child") {
        return;
    }
    use actix_socket_factory::handover;
    let _socket = handover::take(actix_socket_factory::web::DEFAULT_HANDOVER_NAME)
        .expect("the inherited socket");
    handover::ready().expect("the predecessor is told");
    std::thread::sleep(LIVES_AFTER_READY);
}
