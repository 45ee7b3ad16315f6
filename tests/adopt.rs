//! Sockets made elsewhere: adopted std listeners and sockets, and systemd socket activation.

mod util;

use std::os::fd::AsRawFd;
use std::time::Duration;

use actix::prelude::*;
use actix_socket_factory::testing::start_and_locate;
use actix_socket_factory::{Domain, Endpoint, GetSockName, Operation, SocketType};
use util::*;

#[actix::test]
async fn adopted_blocking_tcp_listener_is_served() {
    let mut events = Events::start();
    // std hands out a blocking listener; the factory must not hang on it.
    let listener = std::net::TcpListener::bind(any_local_address()).expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (_server, local) = start_and_locate(events.builder().adopt(listener))
        .await
        .expect("adopted");
    assert_eq!(local, addr);
    for _ in 0..3 {
        let client = std::net::TcpStream::connect(addr).expect("connect");
        let created = events.next_created(LIMIT).await.expect("accepted");
        assert_nonblocking(&created.socket);
        assert_cloexec(&created.socket);
        assert_eq!(
            created.peer.and_then(|p| p.as_inet()),
            Some(client.local_addr().expect("client addr"))
        );
    }
}

#[actix::test]
async fn adopted_unix_listener_is_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("adopted.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
    let mut events = Events::start();
    let server = events.builder().adopt(listener).start();
    let local = server
        .send(GetSockName)
        .await
        .expect("answer")
        .expect("bound");
    assert_eq!(local.as_path(), Some(path.as_path()));
    let _client = std::os::unix::net::UnixStream::connect(&path).expect("connect");
    let created = events.next_created(LIMIT).await.expect("accepted");
    assert_eq!(created.domain, Domain::Unix);
    let credentials = created.credentials.expect("SO_PEERCRED on this system");
    assert_eq!(credentials.pid, Some(std::process::id() as i32));
}

#[actix::test]
async fn adopted_udp_socket_is_delivered_at_once() {
    let mut events = Events::start();
    let udp = std::net::UdpSocket::bind(any_local_address()).expect("bind");
    let addr = udp.local_addr().expect("addr");
    let _factory = events.builder().adopt(udp).start();
    let created = events.next_created(LIMIT).await.expect("delivered");
    assert_eq!(created.socket_type, SocketType::Datagram);
    assert_nonblocking(&created.socket);
    assert_eq!(created.socket.local_addr().unwrap().as_socket(), Some(addr));
}

#[actix::test]
async fn adopted_stream_that_does_not_listen_fails_clearly() {
    let mut events = Events::start();
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.bind(&any_local_address().into()).expect("bind");
    let before = open_fds();
    let factory = events.builder().adopt(socket).start();
    let failed = events
        .next_failed(LIMIT)
        .await
        .expect("a failure, not a hang");
    assert_eq!(failed.operation, Operation::Listen);
    assert!(wait_until(LIMIT, || !factory.connected()).await);
    drop(factory);
    assert!(
        wait_until(LIMIT, || open_fds() < before).await,
        "adopted socket closed"
    );
}

#[actix::test]
async fn systemd_without_activation_fails_clearly() {
    let mut events = Events::start();
    let _factory = events.builder().systemd(Some("web")).start();
    let failed = events.next_failed(LIMIT).await.expect("failure");
    assert_eq!(failed.operation, Operation::Socket);
    assert!(failed.error.to_string().contains("LISTEN_PID"), "{failed}");
}

#[test]
fn systemd_socket_activation_serves_the_inherited_listener() {
    use std::os::unix::process::CommandExt;
    let listener = std::net::TcpListener::bind(any_local_address()).expect("bind");
    let addr = listener.local_addr().expect("addr");
    let fd = listener.as_raw_fd();
    let exe = std::env::current_exe().expect("test binary");
    let mut command = std::process::Command::new("sh");
    // As systemd does: the listener on fd 3, LISTEN_PID the pid of the activated process
    // (`exec` keeps the shell's pid), LISTEN_FDS and LISTEN_FDNAMES beside it.
    command
        .arg("-c")
        .arg("LISTEN_PID=$$ exec \"$0\" \"$@\"")
        .arg(exe)
        .args(["systemd_child", "--exact", "--ignored", "--nocapture"])
        .env(util::child::CHILD_VAR, "systemd_child")
        .env("LISTEN_FDS", "1")
        .env("LISTEN_FDNAMES", "web")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    // SAFETY: dup2 and fcntl are async-signal-safe; they run in the forked child before exec.
    unsafe {
        command.pre_exec(move || {
            // dup2 onto itself would keep FD_CLOEXEC: clear it instead when already on 3.
            let rc = if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, 3)
            };
            if rc == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command.spawn().expect("spawn activated child");
    // The kernel queues this client on the shared listener; only the child accepts.
    let _client = std::net::TcpStream::connect(addr).expect("connect");
    let out = child.wait_with_output().expect("child output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(&format!("activated on {addr}")),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "runs in a child process: systemd_socket_activation_serves_the_inherited_listener"]
fn systemd_child() {
    if !in_child("systemd_child") {
        return;
    }
    let system = System::new();
    system.block_on(async {
        let mut events = Events::start();
        // The endpoint form: what a configuration file would hold.
        let endpoint: Endpoint = "sd-listen:web".parse().expect("endpoint");
        let server = events.builder().bind(endpoint).start();
        let Ok(Ok(local)) = server.send(GetSockName).await else {
            panic!(
                "no inherited listener: {:?}",
                events.next_failed(LIMIT).await
            );
        };
        let created = tokio::time::timeout(Duration::from_secs(20), events.next_created(LIMIT))
            .await
            .expect("in time")
            .expect("the parent's client");
        assert!(created.peer.is_some());
        println!("activated on {local}");
    });
}
