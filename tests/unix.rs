//! UNIX-domain sockets: stream servers and clients, datagram sockets, abstract names, and the
//! socket file's whole life (made, guarded, given a mode, removed only when still ours).

mod util;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use actix::prelude::*;
use actix_socket_factory::{
    ConfigError, Domain, GetSockName, GetStats, Operation, PauseAccept, ResumeAccept,
    SocketAddress, SocketFactory, SocketType, StopFactory,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use util::*;

/// Starts a UNIX stream server at `path` owned by `events`, and waits until it is bound.
async fn unix_server(events: &Events, path: &Path) -> Addr<SocketFactory> {
    let server = events.builder().bind_address(path).start();
    let local = server
        .send(GetSockName)
        .await
        .expect("answer")
        .expect("listening");
    assert_eq!(local, SocketAddress::Unix(path.to_owned()));
    server
}

/// Starts `builder`'s factory and checks that it fails with "bind" `EADDRINUSE`, delivering
/// nothing; returns the failure for a closer look.
async fn bind_failure(
    events: &mut Events,
    builder: actix_socket_factory::SocketFactoryBuilder,
) -> actix_socket_factory::SocketFailed {
    let _factory = builder.start();
    let failed = events.next_failed(LIMIT).await.expect("SocketFailed");
    assert_eq!(failed.operation, Operation::Bind, "{failed}");
    assert_eq!(failed.errno, Some(libc::EADDRINUSE), "{failed}");
    assert!(events.try_created().is_none());
    failed
}

fn is_socket(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_socket())
}

fn inode(path: &Path) -> u64 {
    fs::symlink_metadata(path).expect("stat").ino()
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path)
        .expect("stat")
        .permissions()
        .mode()
        & 0o7777
}

// ---- stream servers and clients ----

#[actix::test]
async fn server_delivers_each_client_without_peer_and_data_round_trips() {
    const CLIENTS: u8 = 10;
    let (_dir, path) = temp_socket_path("server.sock");
    let mut events = Events::start();
    let _server = unix_server(&events, &path).await;
    assert!(is_socket(&path));

    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let mut client = tokio::net::UnixStream::connect(&path)
            .await
            .expect("connect");
        client.write_all(&[i]).await.expect("write");
        clients.push(client);
    }
    for _ in 0..CLIENTS {
        let created = events
            .next_created(LIMIT)
            .await
            .expect("one SocketCreated per client");
        assert_eq!(
            created.peer, None,
            "accept gives no UNIX peer (as POE says)"
        );
        assert_eq!(created.domain, Domain::Unix);
        assert_eq!(created.socket_type, SocketType::Stream);
        assert_nonblocking(&created.socket);
        assert_cloexec(&created.socket);
        let mut stream = created.into_unix_stream().expect("tokio UNIX stream");
        let mut byte = [0u8; 1];
        tokio::time::timeout(LIMIT, stream.read_exact(&mut byte))
            .await
            .expect("byte in time")
            .expect("read");
        stream.write_all(&byte).await.expect("echo");
    }
    for (i, client) in clients.iter_mut().enumerate() {
        let mut byte = [0u8; 1];
        tokio::time::timeout(LIMIT, client.read_exact(&mut byte))
            .await
            .expect("echo in time")
            .expect("read");
        assert_eq!(byte[0] as usize, i, "each client gets its own byte back");
    }
    events
        .expect_no_created(Duration::from_millis(100))
        .await
        .expect("no extra deliveries");
}

#[actix::test]
async fn pause_holds_unix_clients_and_resume_delivers_them_all() {
    const CLIENTS: usize = 10;
    let (_dir, path) = temp_socket_path("paused.sock");
    let mut events = Events::start();
    let server = unix_server(&events, &path).await;
    server.send(PauseAccept).await.expect("paused");
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        // The kernel queues the connection: connect returns while the factory is paused.
        clients.push(
            tokio::net::UnixStream::connect(&path)
                .await
                .expect("connect"),
        );
    }
    events
        .expect_no_created(Duration::from_millis(300))
        .await
        .expect("nothing delivered while paused");
    server.send(ResumeAccept).await.expect("resumed");
    for _ in 0..CLIENTS {
        events
            .next_created(LIMIT)
            .await
            .expect("delivered after resume");
    }
}

#[actix::test]
async fn client_connects_to_a_path_and_names_the_server() {
    let (_dir, path) = temp_socket_path("listener.sock");
    let listener = tokio::net::UnixListener::bind(&path).expect("bind");
    let mut events = Events::start();
    let client = events.builder().remote_address(path.as_path()).start();
    let (mut accepted, _) = tokio::time::timeout(LIMIT, listener.accept())
        .await
        .expect("accept in time")
        .expect("accept");
    let created = events.next_created(LIMIT).await.expect("connected");
    assert_eq!(created.peer, Some(SocketAddress::Unix(path.clone())));
    assert_nonblocking(&created.socket);
    assert_cloexec(&created.socket);
    let mut stream = created.into_unix_stream().expect("tokio UNIX stream");
    stream.write_all(b"hi").await.expect("write");
    let mut buf = [0u8; 2];
    tokio::time::timeout(LIMIT, accepted.read_exact(&mut buf))
        .await
        .expect("data in time")
        .expect("read");
    assert_eq!(&buf, b"hi");
    assert!(
        wait_until(LIMIT, || !client.connected()).await,
        "a client without a socket file is done after delivery"
    );
}

#[actix::test]
async fn client_to_a_missing_path_fails_with_connect_enoent() {
    let (_dir, path) = temp_socket_path("nobody.sock");
    let mut events = Events::start();
    let _client = events
        .builder()
        .domain(Domain::Unix)
        .remote_address(path.as_path())
        .start();
    let failed = events.next_failed(LIMIT).await.expect("SocketFailed");
    assert_eq!(failed.operation.as_str(), "connect");
    assert_eq!(failed.errno, Some(libc::ENOENT));
}

// ---- datagram ----

#[actix::test]
async fn datagram_needs_a_bind_address() {
    let mut events = Events::start();
    let builder = || {
        events
            .builder()
            .domain(Domain::Unix)
            .socket_type(SocketType::Datagram)
    };
    let (_dir, path) = temp_socket_path("peer.sock");
    for builder in [builder(), builder().remote_address(path.as_path())] {
        assert_eq!(
            builder.clone().build().err(),
            Some(ConfigError::MissingUnixBindAddress)
        );
        let _factory = builder.start();
        let failed = events.next_failed(LIMIT).await.expect("SocketFailed");
        assert_eq!(failed.operation, Operation::Config);
        assert_eq!(failed.errno, Some(libc::EINVAL));
        assert!(
            failed.error.to_string().contains("bind address"),
            "{failed}"
        );
    }
}

#[actix::test]
async fn datagram_round_trip_between_two_factory_sockets() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server_path = dir.path().join("server.dgram");
    let client_path = dir.path().join("client.dgram");
    let mut server_events = Events::start();
    let mut client_events = Events::start();

    let server = server_events
        .builder()
        .socket_type(SocketType::Datagram)
        .bind_address(server_path.as_path())
        .owner_check_interval(Some(Duration::from_millis(20)))
        .start();
    let server_created = server_events.next_created(LIMIT).await.expect("bound");
    assert_eq!(server_created.peer, None);
    assert_eq!(server_created.socket_type, SocketType::Datagram);
    assert_nonblocking(&server_created.socket);
    assert_cloexec(&server_created.socket);

    let client = client_events
        .builder()
        .socket_type(SocketType::Datagram)
        .bind_address(client_path.as_path())
        .remote_address(server_path.as_path())
        .start();
    let client_created = client_events.next_created(LIMIT).await.expect("connected");
    assert_eq!(
        client_created.peer,
        Some(SocketAddress::Unix(server_path.clone()))
    );

    // The factories keep running after delivery, to keep (and later remove) their files, and
    // still answer where their sockets are bound.
    for (factory, path) in [(&server, &server_path), (&client, &client_path)] {
        let local = factory
            .send(GetSockName)
            .await
            .expect("still running")
            .expect("address");
        assert_eq!(local, SocketAddress::Unix(path.clone()));
    }

    let server_socket = server_created.into_unix_datagram().expect("server socket");
    let client_socket = client_created.into_unix_datagram().expect("client socket");
    client_socket.send(b"ping").await.expect("send");
    let mut buf = [0u8; 16];
    let (len, from) = tokio::time::timeout(LIMIT, server_socket.recv_from(&mut buf))
        .await
        .expect("datagram in time")
        .expect("recv");
    assert_eq!(&buf[..len], b"ping");
    assert_eq!(from.as_pathname(), Some(client_path.as_path()));
    server_socket
        .send_to(b"pong", &client_path)
        .await
        .expect("reply");
    let len = tokio::time::timeout(LIMIT, client_socket.recv(&mut buf))
        .await
        .expect("reply in time")
        .expect("recv");
    assert_eq!(&buf[..len], b"pong");

    // Told to stop, or its owner gone: either way the file goes.
    client.send(StopFactory).await.expect("stopped");
    assert!(wait_until(LIMIT, || !client_path.exists()).await);
    server_events.stop_owner();
    assert!(wait_until(LIMIT, || !server_path.exists()).await);
    assert!(wait_until(LIMIT, || !server.connected()).await);
}

// ---- the socket file ----

#[actix::test]
async fn socket_file_is_removed_on_stop_message() {
    let (_dir, path) = temp_socket_path("stop.sock");
    let events = Events::start();
    let server = unix_server(&events, &path).await;
    server.send(StopFactory).await.expect("stopped");
    assert!(wait_until(LIMIT, || !path.exists()).await, "file removed");
    assert!(!server.connected());
}

#[actix::test]
async fn socket_file_is_removed_when_the_owner_is_gone() {
    let (_dir, path) = temp_socket_path("owner.sock");
    let events = Events::start();
    let server = events
        .builder()
        .bind_address(path.as_path())
        .owner_check_interval(Some(Duration::from_millis(20)))
        .start();
    server
        .send(GetSockName)
        .await
        .expect("answer")
        .expect("bound");
    assert!(is_socket(&path));
    events.stop_owner();
    assert!(wait_until(LIMIT, || !path.exists()).await, "file removed");
    assert!(wait_until(LIMIT, || !server.connected()).await);
}

#[actix::test]
async fn socket_file_replaced_by_another_socket_is_left_alone() {
    let (_dir, path) = temp_socket_path("rebound.sock");
    let events = Events::start();
    let server = unix_server(&events, &path).await;
    // Someone else removes our file and binds the path anew.
    fs::remove_file(&path).expect("remove");
    let _theirs = std::os::unix::net::UnixListener::bind(&path).expect("rebind");
    let their_inode = inode(&path);
    server.send(StopFactory).await.expect("stopped");
    assert!(wait_until(LIMIT, || !server.connected()).await);
    assert!(is_socket(&path), "their socket file is still there");
    assert_eq!(inode(&path), their_inode);
    std::os::unix::net::UnixStream::connect(&path).expect("and it still answers");
}

/// The delivered socket of a datagram factory is closed by its user long before the factory
/// stops; the path is then re-bound by someone else, who may get our old inode number (tmpfs
/// reuses them at once). The factory still tells their file from ours.
#[actix::test]
async fn datagram_file_rebound_after_our_socket_closed_is_left_alone() {
    let (_dir, path) = temp_socket_path("closed.dgram");
    let mut events = Events::start();
    let factory = events
        .builder()
        .socket_type(SocketType::Datagram)
        .bind_address(path.as_path())
        .start();
    drop(events.next_created(LIMIT).await.expect("bound"));
    fs::remove_file(&path).expect("remove");
    let theirs = std::os::unix::net::UnixDatagram::bind(&path).expect("rebind");
    factory.send(StopFactory).await.expect("stopped");
    assert!(wait_until(LIMIT, || !factory.connected()).await);
    assert!(is_socket(&path), "their socket file is still there");
    let probe = std::os::unix::net::UnixDatagram::unbound().expect("socket");
    probe.send_to(b"x", &path).expect("and it still answers");
    let mut buf = [0u8; 1];
    theirs.set_read_timeout(Some(LIMIT)).expect("timeout");
    theirs.recv(&mut buf).expect("their datagram");
}

#[actix::test]
async fn socket_file_replaced_by_a_regular_file_is_left_alone() {
    let (_dir, path) = temp_socket_path("regular.sock");
    let events = Events::start();
    let server = unix_server(&events, &path).await;
    fs::remove_file(&path).expect("remove");
    fs::write(&path, b"not a socket").expect("write");
    server.send(StopFactory).await.expect("stopped");
    assert!(wait_until(LIMIT, || !server.connected()).await);
    assert_eq!(fs::read(&path).expect("still there"), b"not a socket");
}

#[actix::test]
async fn removal_never_follows_a_symlink() {
    let (dir, path) = temp_socket_path("linked.sock");
    let moved = dir.path().join("moved.sock");
    let events = Events::start();
    let server = unix_server(&events, &path).await;
    // Our very socket file (same inode) now sits elsewhere, and the path is a link to it.
    fs::rename(&path, &moved).expect("rename");
    std::os::unix::fs::symlink(&moved, &path).expect("symlink");
    server.send(StopFactory).await.expect("stopped");
    assert!(wait_until(LIMIT, || !server.connected()).await);
    assert!(
        fs::symlink_metadata(&path)
            .expect("link still there")
            .file_type()
            .is_symlink(),
        "the link is not ours"
    );
    assert!(is_socket(&moved), "nor is what it points to, through it");
}

#[actix::test]
async fn live_socket_at_the_path_gives_bind_eaddrinuse() {
    let (_dir, path) = temp_socket_path("live.sock");
    let live = std::os::unix::net::UnixListener::bind(&path).expect("bind");
    let before = inode(&path);
    let mut events = Events::start();
    // Even with the opt-in: a live socket is never replaced.
    let builder = events
        .builder()
        .bind_address(path.as_path())
        .replace_stale_socket(true);
    bind_failure(&mut events, builder).await;
    assert_eq!(inode(&path), before, "the live socket's file is untouched");
    let _client = std::os::unix::net::UnixStream::connect(&path).expect("still answers");
    live.accept().expect("the live server gets its client");
}

#[actix::test]
async fn stale_socket_file_is_replaced_only_when_asked() {
    let (_dir, path) = temp_socket_path("stale.sock");
    // A server that died without cleaning up: std leaves its file behind.
    drop(std::os::unix::net::UnixListener::bind(&path).expect("bind"));
    let stale = inode(&path);
    let mut events = Events::start();

    let refused = events.builder().bind_address(path.as_path());
    let failed = bind_failure(&mut events, refused).await;
    assert!(
        failed.error.to_string().contains("replace_stale_socket"),
        "the text says how to opt in: {failed}"
    );
    assert_eq!(inode(&path), stale, "not replaced without the opt-in");
    let still_stale = std::os::unix::net::UnixStream::connect(&path).map_err(|e| e.raw_os_error());
    assert_eq!(still_stale.err(), Some(Some(libc::ECONNREFUSED)));

    let server = events
        .builder()
        .bind_address(path.as_path())
        .replace_stale_socket(true)
        .start();
    let local = server.send(GetSockName).await.expect("answer");
    assert_eq!(local.expect("listening"), SocketAddress::Unix(path.clone()));
    // (tmpfs may give the new file the old inode number: that the path answers is the proof.)
    let _client = tokio::net::UnixStream::connect(&path)
        .await
        .expect("connect");
    events.next_created(LIMIT).await.expect("accepted");
}

#[actix::test]
async fn regular_file_at_the_path_is_never_touched() {
    let (_dir, path) = temp_socket_path("data.txt");
    fs::write(&path, b"precious").expect("write");
    let mut events = Events::start();
    let builder = events
        .builder()
        .bind_address(path.as_path())
        .replace_stale_socket(true);
    bind_failure(&mut events, builder).await;
    assert_eq!(fs::read(&path).expect("still there"), b"precious");
}

#[actix::test]
async fn symlink_at_the_path_is_never_followed_at_bind() {
    let (dir, path) = temp_socket_path("link.sock");
    let target = dir.path().join("stale-target.sock");
    drop(std::os::unix::net::UnixListener::bind(&target).expect("bind"));
    std::os::unix::fs::symlink(&target, &path).expect("symlink");
    let target_inode = inode(&target);
    let mut events = Events::start();
    let builder = events
        .builder()
        .bind_address(path.as_path())
        .replace_stale_socket(true);
    bind_failure(&mut events, builder).await;
    assert!(fs::symlink_metadata(&path)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        inode(&target),
        target_inode,
        "the stale target is not replaced"
    );
}

/// The mode is exact whatever the umask: narrower (0600) and wider than a usual umask allows
/// (0666). That the file is never more open than asked on its way there is checked where it can
/// be seen, in `unix.rs`'s unit test: the mode is set on the socket before `bind`, and the file is
/// born with it.
#[actix::test]
async fn unix_mode_is_applied_to_the_socket_file() {
    for wanted in [0o600, 0o640, 0o666] {
        let (_dir, path) = temp_socket_path("mode.sock");
        let events = Events::start();
        let server = events
            .builder()
            .bind_address(path.as_path())
            .unix_mode(wanted)
            .start();
        server
            .send(GetSockName)
            .await
            .expect("answer")
            .expect("bound");
        assert_eq!(mode(&path), wanted, "mode {wanted:o}");
        let _client = tokio::net::UnixStream::connect(&path)
            .await
            .expect("the owner (root or us) can still connect");
        server.send(StopFactory).await.expect("stopped");
    }
}

#[actix::test]
async fn datagram_socket_file_gets_its_mode_too() {
    let (_dir, path) = temp_socket_path("mode.dgram");
    let mut events = Events::start();
    let _factory = events
        .builder()
        .socket_type(SocketType::Datagram)
        .bind_address(path.as_path())
        .unix_mode(0o620)
        .start();
    events.next_created(LIMIT).await.expect("bound");
    assert_eq!(mode(&path), 0o620);
}

#[actix::test]
async fn path_longer_than_sun_path_fails_clearly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("x".repeat(200));
    let mut events = Events::start();
    let build = events.builder().bind_address(path.as_path()).build();
    assert!(
        matches!(build, Err(ConfigError::PathTooLong { len, max }) if len > max),
        "{build:?}"
    );
    let _factory = events.builder().bind_address(path.as_path()).start();
    let failed = events.next_failed(LIMIT).await.expect("SocketFailed");
    assert_eq!(failed.operation, Operation::Config);
    assert_eq!(failed.errno, Some(libc::ENAMETOOLONG));
    // The same for a client's remote path.
    let _client = events.builder().remote_address(path.as_path()).start();
    let failed = events.next_failed(LIMIT).await.expect("SocketFailed");
    assert_eq!(failed.errno, Some(libc::ENAMETOOLONG));
}

#[actix::test]
async fn missing_directory_gives_bind_enoent() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("no-such-dir").join("s.sock");
    let mut events = Events::start();
    let _factory = events.builder().bind_address(path.as_path()).start();
    let failed = events.next_failed(LIMIT).await.expect("SocketFailed");
    assert_eq!(failed.operation.as_str(), "bind");
    assert_eq!(failed.errno, Some(libc::ENOENT));
}

// ---- abstract names ----

#[cfg(any(target_os = "linux", target_os = "android"))]
#[actix::test]
async fn abstract_name_round_trip_without_a_file() {
    let name = format!("actix-socket-factory-test-{}", std::process::id());
    let written = format!("@{name}");
    let mut server_events = Events::start();
    let mut client_events = Events::start();
    // `@name` implies UNIX, as a path does.
    let server = server_events
        .builder()
        .bind_address(written.as_str())
        .start();
    let local = server
        .send(GetSockName)
        .await
        .expect("answer")
        .expect("listening");
    assert_eq!(local, SocketAddress::Abstract(name.clone().into_bytes()));
    assert!(!Path::new(&written).exists(), "no file on disk");

    let _client = client_events
        .builder()
        .remote_address(written.as_str())
        .start();
    let created = client_events.next_created(LIMIT).await.expect("connected");
    assert_eq!(
        created.peer,
        Some(SocketAddress::Abstract(name.clone().into_bytes()))
    );
    let mut client = created.into_unix_stream().expect("client stream");
    let accepted = server_events.next_created(LIMIT).await.expect("accepted");
    assert_eq!(accepted.peer, None);
    let mut served = accepted.into_unix_stream().expect("server stream");
    client.write_all(b"abstract").await.expect("write");
    let mut buf = [0u8; 8];
    tokio::time::timeout(LIMIT, served.read_exact(&mut buf))
        .await
        .expect("data in time")
        .expect("read");
    assert_eq!(&buf, b"abstract");
    server.send(StopFactory).await.expect("stopped");
}

// ---- resources ----

/// 200 start/refuse/accept/stop cycles of a UNIX server leave the process with as many descriptors as
/// before. Counted in a child process, where no other test opens anything meanwhile.
#[actix::test]
async fn no_descriptor_leaks_over_many_factory_lives() {
    if !run_in_child("no_descriptor_leaks_over_many_factory_lives") {
        return;
    }
    const CYCLES: usize = 200;
    let (_dir, path) = temp_socket_path("cycle.sock");
    let mut events = Events::start();
    // One cycle first, so lazily made runtime descriptors are counted in `before`.
    server_life(&mut events, &path).await;
    let before = open_fds();
    for _ in 0..CYCLES {
        server_life(&mut events, &path).await;
    }
    assert_eq!(
        open_fds(),
        before,
        "descriptors leaked over {CYCLES} cycles"
    );
}

/// One server's life: bound, a rival refused (its probe socket closed), one client accepted and
/// dropped, stopped, file gone.
async fn server_life(events: &mut Events, path: &Path) {
    let server = unix_server(events, path).await;
    let rival = events.builder().bind_address(path).start();
    let failed = events.next_failed(LIMIT).await.expect("rival refused");
    assert_eq!(failed.errno, Some(libc::EADDRINUSE));
    assert!(wait_until(LIMIT, || !rival.connected()).await);
    let client = tokio::net::UnixStream::connect(path)
        .await
        .expect("connect");
    drop(events.next_created(LIMIT).await.expect("accepted"));
    drop(client);
    server.send(StopFactory).await.expect("stopped");
    assert!(wait_until(LIMIT, || !server.connected()).await);
    assert!(!path.exists(), "file removed before the actor is gone");
}

/// `start()` makes the socket before it returns (no name to look up here); `build()` leaves it
/// to the actor's start, where a Supervisor can redo it.
#[actix::test]
async fn start_binds_before_it_returns() {
    let mut events = Events::start();
    let (_dir, path) = temp_socket_path("early.sock");
    let server = events.builder().bind_address(&path).start();
    assert!(is_socket(&path), "bound and listening when start() returns");
    server.send(StopFactory).await.expect("stopped");
    assert!(wait_until(LIMIT, || !path.exists()).await, "file removed");

    let built = events
        .builder()
        .bind_address(&path)
        .build()
        .expect("a valid description");
    assert!(!path.exists(), "build() makes no socket");
    let server = built.start();
    let local = server.send(GetSockName).await.expect("answer");
    assert_eq!(local.expect("listening"), SocketAddress::Unix(path.clone()));
    let _client = tokio::net::UnixStream::connect(&path)
        .await
        .expect("connect");
    events.next_created(LIMIT).await.expect("delivered");
}

// ---- two replacers of one stale file, and relative paths after a chdir ----

/// What one racer's factory came to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Raced {
    Listening,
    Failed(Operation, Option<i32>),
}

/// Starts a replacing server at `path` on a System of its own on this thread, once `start` lets
/// every racer go; reports, then waits for `done` before stopping.
fn racer(
    path: std::path::PathBuf,
    start: std::sync::Arc<std::sync::Barrier>,
    report: std::sync::mpsc::Sender<Raced>,
    done: std::sync::Arc<std::sync::Barrier>,
) {
    System::new().block_on(async move {
        let mut events = Events::start();
        let builder = events
            .builder()
            .bind_address(path.as_path())
            .replace_stale_socket(true);
        start.wait();
        let server = builder.start();
        let outcome = match server.send(GetSockName).await {
            Ok(Ok(_)) => Raced::Listening,
            _ => match events.next_failed(LIMIT).await {
                Ok(failed) => Raced::Failed(failed.operation, failed.errno),
                Err(error) => panic!("neither listening nor failed: {error:?}"),
            },
        };
        let _ = report.send(outcome);
        done.wait();
        let _ = server.send(StopFactory).await;
    });
}

/// Two servers replacing the same stale file at once: in every round exactly one listens (and
/// answers at the path) and the other gets "bind" `EADDRINUSE`, never `ENOENT`.
#[test]
fn two_replacers_of_one_stale_file_one_listens_the_other_gets_eaddrinuse() {
    use std::sync::{mpsc, Arc, Barrier};
    const ROUNDS: usize = 300;
    let began = std::time::Instant::now();
    let (_dir, path) = temp_socket_path("contested.sock");
    for round in 0..ROUNDS {
        assert!(began.elapsed() < Duration::from_secs(120), "round {round}");
        let _ = fs::remove_file(&path);
        drop(std::os::unix::net::UnixListener::bind(&path).expect("stale file"));
        let start = Arc::new(Barrier::new(2));
        let done = Arc::new(Barrier::new(3));
        let (report, outcomes) = mpsc::channel();
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (path, start, report, done) =
                    (path.clone(), start.clone(), report.clone(), done.clone());
                std::thread::spawn(move || racer(path, start, report, done))
            })
            .collect();
        let mut seen: Vec<Raced> = (0..2)
            .map(|_| outcomes.recv_timeout(LIMIT).expect("a racer's outcome"))
            .collect();
        seen.sort_by_key(|outcome| *outcome != Raced::Listening);
        let answers = std::os::unix::net::UnixStream::connect(&path).is_ok();
        done.wait();
        for thread in threads {
            thread.join().expect("racer thread");
        }
        assert_eq!(
            seen,
            [
                Raced::Listening,
                Raced::Failed(Operation::Bind, Some(libc::EADDRINUSE))
            ],
            "round {round}"
        );
        assert!(
            answers,
            "round {round}: the listening server's file is at the path"
        );
    }
    println!("{ROUNDS} rounds in {:?}", began.elapsed());
}

/// A server bound at a relative path removes that very file at stop after the process changed
/// its working directory, and leaves alone a file of the same name in the new one.
#[actix::test]
async fn relative_socket_path_is_removed_after_a_chdir() {
    if !run_in_child("relative_socket_path_is_removed_after_a_chdir") {
        return;
    }
    let first = tempfile::tempdir().expect("temp dir");
    let second = tempfile::tempdir().expect("temp dir");
    std::env::set_current_dir(first.path()).expect("chdir");
    let events = Events::start();
    let server = events
        .builder()
        .domain(Domain::Unix)
        .bind_address(Path::new("rel.sock"))
        .start();
    let local = server.send(GetSockName).await.expect("answer");
    assert!(local.is_ok(), "{local:?}");
    assert!(is_socket(&first.path().join("rel.sock")));
    std::env::set_current_dir(second.path()).expect("chdir");
    // A stale socket of the same name in the new working directory: not ours.
    drop(std::os::unix::net::UnixListener::bind("rel.sock").expect("decoy"));
    server.send(StopFactory).await.expect("stopped");
    assert!(wait_until(LIMIT, || !server.connected()).await);
    assert!(
        !first.path().join("rel.sock").exists(),
        "the file made at bind is removed"
    );
    assert!(
        is_socket(&second.path().join("rel.sock")),
        "the same name in the new directory is left alone"
    );
}

/// A client already queued when `start()` returns, and a `PauseAccept` sent right after it: the
/// accept loop (a task beside the actor, issue 22) opens only from the factory's first turn,
/// after the messages queued before it, so the pause comes first.
#[actix::test]
async fn a_pause_sent_right_after_start_comes_before_a_client_queued_meanwhile() {
    let (_dir, path) = temp_socket_path("pause-first.sock");
    let mut events = Events::start();
    let server = events.builder().bind_address(path.as_path()).start();
    // Bound and listening inside `start()`: this client waits in the kernel's queue.
    let client = std::os::unix::net::UnixStream::connect(&path).expect("connect");
    server.do_send(PauseAccept);
    events
        .expect_no_created(Duration::from_millis(300))
        .await
        .expect("nothing delivered while paused");
    let stats = server.send(GetStats).await.expect("stats");
    assert_eq!((stats.accepted, stats.paused), (0, true), "{stats:?}");
    server.send(ResumeAccept).await.expect("resumed");
    events
        .next_created(LIMIT)
        .await
        .expect("delivered after the resume");
    let stats = server.send(GetStats).await.expect("stats");
    assert_eq!((stats.accepted, stats.delivered), (1, 1), "{stats:?}");
    drop(client);
}
