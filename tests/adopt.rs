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

// ---------------------------------------------------------------------------------------------
// systemd's own activator, `systemd-socket-activate`, from the distribution (Debian: package
// `systemd`; .ci/run installs it): it listens, and at the first client execs the program with
// LISTEN_FDS, LISTEN_PID (the program's own pid) and LISTEN_FDNAMES set, as systemd does.

/// The activator: on `PATH` or where Debian puts it. `None` when absent; under CI a failure.
fn systemd_socket_activate() -> Option<&'static str> {
    let found = [
        "/usr/bin/systemd-socket-activate",
        "/lib/systemd/systemd-socket-activate",
        "systemd-socket-activate",
    ]
    .into_iter()
    .find(|program| {
        std::process::Command::new(program)
            .arg("--version")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    });
    if found.is_none() {
        assert!(
            std::env::var("CI").map_or(true, |ci| ci != "true"),
            "systemd-socket-activate is missing, and CI=true: .ci/run installs it"
        );
        println!("SKIPPED: systemd-socket-activate is not installed (apt-get install systemd)");
    }
    found
}

/// Runs `child` (a test of this binary) under the activator with `args`, calls `trigger` (the
/// first client, which makes the activator start the program), and returns the child's stdout
/// once it exits (bounded).
fn activated(program: &str, args: &[String], child: &str, trigger: impl FnOnce()) -> String {
    use std::io::Read;
    let exe = std::env::current_exe().expect("test binary");
    let mut process = std::process::Command::new(program)
        .args(args)
        .arg(format!("-E{}={child}", util::child::CHILD_VAR))
        .arg("--")
        .arg(exe)
        .args([child, "--exact", "--include-ignored", "--nocapture"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn systemd-socket-activate");
    let mut stdout = process.stdout.take().expect("piped");
    let mut stderr = process.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    trigger();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = process.try_wait().expect("wait") {
            break Some(status);
        }
        if std::time::Instant::now() >= deadline {
            let _ = process.kill();
            let _ = process.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    assert!(
        status.is_some_and(|s| s.success()) && out.contains("1 passed"),
        "{child} under systemd-socket-activate: {status:?}\n{out}\n{err}"
    );
    out
}

/// Retries a first connect until the activator listens (it binds after it starts).
fn connect_when_listening(addr: std::net::SocketAddr) -> std::net::TcpStream {
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        match std::net::TcpStream::connect(addr) {
            Ok(stream) => return stream,
            Err(error) => {
                assert!(std::time::Instant::now() < deadline, "{addr}: {error}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

#[test]
fn systemd_socket_activate_named_sockets_tcp_and_unix() {
    let Some(program) = systemd_socket_activate() else {
        return;
    };
    let port = closed_port();
    let (_dir, path) = temp_socket_path("activated.sock");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let args = vec![
        format!("--listen=127.0.0.1:{port}"),
        format!("--listen={}", path.display()),
        "--fdname=web:admin".to_owned(),
    ];
    let mut clients = None;
    let out = activated(program, &args, "activated_named_child", || {
        let tcp = connect_when_listening(addr);
        // The UNIX socket is the activator's too: a client queues on it before the program runs.
        let unix = std::os::unix::net::UnixStream::connect(&path).expect("connect to admin");
        clients = Some((tcp, unix)); // open until the program has accepted both
    });
    drop(clients);
    assert!(out.contains(&format!("web on 127.0.0.1:{port}")), "{out}");
    assert!(
        out.contains(&format!("admin on {}", path.display())),
        "{out}"
    );
}

#[test]
#[ignore = "runs under systemd-socket-activate: systemd_socket_activate_named_sockets_tcp_and_unix"]
fn activated_named_child() {
    if !in_child("activated_named_child") {
        return;
    }
    System::new().block_on(async {
        let mut events = Events::start();
        // By name, in the other order than the activator's: names, not positions, decide.
        let admin = events.builder().systemd(Some("admin")).start();
        let web = events
            .builder()
            .bind("sd-listen:web".parse::<Endpoint>().unwrap())
            .start();
        let web_local = web.send(GetSockName).await.unwrap().expect("web inherited");
        let admin_local = admin
            .send(GetSockName)
            .await
            .unwrap()
            .expect("admin inherited");
        let mut families = Vec::new();
        for _ in 0..2 {
            let created = events.next_created(LIMIT).await.expect("a queued client");
            families.push(created.domain);
        }
        families.sort_by_key(|d| d.as_str());
        assert_eq!(families, [Domain::Inet, Domain::Unix]);
        println!("web on {web_local}");
        println!("admin on {admin_local}");
    });
}

#[test]
fn systemd_socket_activate_datagram() {
    let Some(program) = systemd_socket_activate() else {
        return;
    };
    let port = closed_port();
    let args = vec![
        "--datagram".to_owned(),
        format!("--listen=127.0.0.1:{port}"),
        "--fdname=dns".to_owned(),
    ];
    let out = activated(program, &args, "activated_datagram_child", || {
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        // Until the activator binds, a datagram may be refused: send until the program answers
        // (it exits once it has one), bounded.
        let deadline = std::time::Instant::now() + LIMIT;
        sender
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        loop {
            let _ = sender.send_to(b"query", ("127.0.0.1", port));
            let mut answer = [0; 16];
            if let Ok(n) = sender.recv(&mut answer) {
                assert_eq!(&answer[..n], b"answer");
                break;
            }
            assert!(std::time::Instant::now() < deadline, "no answer");
        }
    });
    assert!(out.contains(&format!("dns on 127.0.0.1:{port}")), "{out}");
}

#[test]
#[ignore = "runs under systemd-socket-activate: systemd_socket_activate_datagram"]
fn activated_datagram_child() {
    if !in_child("activated_datagram_child") {
        return;
    }
    System::new().block_on(async {
        let mut events = Events::start();
        let _dns = events.builder().systemd(Some("dns")).start();
        let created = events
            .next_created(LIMIT)
            .await
            .expect("the inherited socket");
        assert_eq!(created.socket_type, SocketType::Datagram);
        let local = created.local.clone().expect("bound");
        let socket = created.into_udp_socket().expect("UDP");
        let mut query = [0; 16];
        let (n, from) = tokio::time::timeout(LIMIT, socket.recv_from(&mut query))
            .await
            .expect("the query that started us")
            .unwrap();
        assert_eq!(&query[..n], b"query");
        socket.send_to(b"answer", from).await.unwrap();
        println!("dns on {local}");
    });
}
