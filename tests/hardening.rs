//! What an adversarial run found missing (issue 14): IPv6 zone ids kept, systemd variables out
//! of range, and one report per descriptor-exhaustion episode under sustained pressure. Each in
//! a child process where it plants variables, lowers limits or makes a namespace.

mod util;

use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_socket_factory::testing::start_and_locate;
use actix_socket_factory::{Endpoint, GetStats, Operation, PauseAccept, ResumeAccept};
use util::*;

// ---- IPv6 zone ids ----

#[test]
fn endpoint_from_a_socket_addr_keeps_its_zone() {
    let addr = SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().unwrap(), 9, 0, 7));
    let endpoint = Endpoint::from(addr);
    assert_eq!(endpoint.scope_id(), 7);
    assert_eq!(endpoint.to_string(), "tcp://[fe80::1%7]:9");
    let plain = Endpoint::from(SocketAddr::from(([127, 0, 0, 1], 9)));
    assert_eq!(plain.scope_id(), 0);
}

#[test]
fn link_local_addresses_keep_their_zone() {
    child::run("child_link_local_zone", Duration::from_secs(60));
}

/// In a private network namespace, `fe80::1` on `lo`: reachable only with its zone, as std's
/// connect does it. A server binds it with `bind(SocketAddrV6)`, clients connect with
/// `connect(SocketAddr)` and `connect(Endpoint::from(SocketAddr))`.
#[test]
#[ignore = "run by link_local_addresses_keep_their_zone in a child process"]
fn child_link_local_zone() {
    if !child::is_child("child_link_local_zone") {
        return;
    }
    if !cfg!(target_os = "linux") {
        return child::skip("private namespaces are Linux-only");
    }
    if let Err(reason) = netns::enter() {
        return child::skip(&format!("no private namespaces here ({reason})"));
    }
    let ip: Ipv6Addr = "fe80::1".parse().unwrap();
    let lo = match add_link_local(ip) {
        Ok(index) => index,
        Err(reason) => return child::skip(&format!("cannot add {ip} to lo ({reason})")),
    };
    // A new address is tentative until the kernel's duplicate address detection is over (at
    // once on lo, but from a work queue): wait, bounded, until it can be bound.
    let until = Instant::now() + Duration::from_secs(5);
    let probe = loop {
        match std::net::TcpListener::bind(SocketAddrV6::new(ip, 0, 0, lo)) {
            Ok(probe) => break probe,
            Err(error) if Instant::now() < until => {
                assert_eq!(error.raw_os_error(), Some(libc::EADDRNOTAVAIL), "{error}");
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(error) => panic!("{ip}%{lo} never usable: {error}"),
        }
    };
    // std needs the zone too: the address is unreachable without it.
    let port = probe.local_addr().unwrap().port();
    assert!(std::net::TcpStream::connect(SocketAddrV6::new(ip, port, 0, 0)).is_err());
    drop(probe);

    System::new().block_on(async move {
        let mut events = Events::start();
        let (_server, local) =
            start_and_locate(events.builder().bind(SocketAddrV6::new(ip, 0, 0, lo)))
                .await
                .expect("a server on fe80::1%lo");
        let zoned = SocketAddr::V6(SocketAddrV6::new(ip, local.port(), 0, lo));
        for builder in [
            events.builder().connect(zoned),
            events.builder().connect(Endpoint::from(zoned)),
        ] {
            let _client = builder.start();
            for _ in 0..2 {
                let created = events.next(LIMIT).await;
                assert!(
                    matches!(
                        created,
                        Ok(actix_socket_factory::testing::Event::Created(_))
                    ),
                    "{created:?}"
                );
            }
        }
        println!("zone ok: {zoned}");
    });
}

/// Adds `ip`/64 to `lo` (SIOCSIFADDR on an INET6 socket); returns lo's index.
#[cfg(target_os = "linux")]
fn add_link_local(ip: Ipv6Addr) -> Result<u32, String> {
    let index = unsafe { libc::if_nametoindex(c"lo".as_ptr()) };
    if index == 0 {
        return Err("no lo".into());
    }
    let socket =
        socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::DGRAM, None).map_err(|e| {
            format!("socket: {e}") // no IPv6 here
        })?;
    let request = libc::in6_ifreq {
        ifr6_addr: libc::in6_addr {
            s6_addr: ip.octets(),
        },
        ifr6_prefixlen: 64,
        ifr6_ifindex: index as i32,
    };
    // SAFETY: SIOCSIFADDR reads one in6_ifreq, which outlives the call.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFADDR, &request) } != 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    Ok(index)
}

/// Linux's `in6_ifreq` only: elsewhere the caller skips.
#[cfg(not(target_os = "linux"))]
fn add_link_local(_ip: Ipv6Addr) -> Result<u32, String> {
    Err("adding an address to lo is done here the Linux way only".into())
}

// ---- systemd variables ----

/// Runs child test `test` as systemd would activate it: a TCP listener on fd 3, `LISTEN_FDS`
/// as given, and `LISTEN_PID` (the child's own pid) only when `with_pid`. Returns its stdout,
/// and a client connected to the listener.
fn activated(test: &str, listen_fds: &str, with_pid: bool) -> (String, std::net::TcpStream) {
    use std::os::unix::process::CommandExt;
    let listener = std::net::TcpListener::bind(any_local_address()).expect("bind");
    let addr = listener.local_addr().expect("addr");
    let fd = listener.as_raw_fd();
    let exe = std::env::current_exe().expect("test binary");
    let script = if with_pid {
        "LISTEN_PID=$$ exec \"$0\" \"$@\""
    } else {
        "exec \"$0\" \"$@\""
    };
    let mut command = std::process::Command::new("sh");
    command
        .arg("-c")
        .arg(script)
        .arg(exe)
        .args([test, "--exact", "--ignored", "--nocapture"])
        .env(child::CHILD_VAR, test)
        .env("LISTEN_FDS", listen_fds)
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDNAMES")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    // SAFETY: dup2 and fcntl are async-signal-safe; they run in the forked child before exec.
    unsafe {
        command.pre_exec(move || {
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
    let mut child = command.spawn().expect("spawn activated child");
    let client = std::net::TcpStream::connect(addr).expect("connect");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().expect("wait").is_some() || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("child output");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (stdout, client)
}

#[test]
fn absurd_listen_fds_is_a_clear_failure_at_once() {
    for count in ["2147483647", "-1", "99999999999"] {
        let (out, _client) = activated("systemd_absurd_child", count, true);
        assert!(out.contains("absurd refused"), "LISTEN_FDS={count}: {out}");
    }
}

#[test]
#[ignore = "runs in a child process: absurd_listen_fds_is_a_clear_failure_at_once"]
fn systemd_absurd_child() {
    if !in_child("systemd_absurd_child") {
        return;
    }
    System::new().block_on(async {
        let mut events = Events::start();
        let began = Instant::now();
        let _factory = events.builder().systemd(None).start();
        let failed = events.next_failed(LIMIT).await.expect("a failure");
        let took = began.elapsed();
        assert_eq!(failed.operation, Operation::Socket, "{failed}");
        assert!(failed.to_string().contains("LISTEN_FDS"), "{failed}");
        assert!(took < Duration::from_millis(500), "took {took:?}");
        println!("absurd refused in {took:?}: {failed}");
    });
}

/// `systemfd --no-pid`: `LISTEN_FDS` without `LISTEN_PID` is obeyed.
#[test]
fn listen_fds_without_listen_pid_is_taken() {
    let (out, _client) = activated("systemd_no_pid_child", "1", false);
    assert!(out.contains("served without LISTEN_PID"), "{out}");
}

#[test]
#[ignore = "runs in a child process: listen_fds_without_listen_pid_is_taken"]
fn systemd_no_pid_child() {
    if !in_child("systemd_no_pid_child") {
        return;
    }
    assert!(std::env::var("LISTEN_PID").is_err());
    System::new().block_on(async {
        let mut events = Events::start();
        let (_server, local) = start_and_locate(events.builder().systemd(None))
            .await
            .expect("the inherited listener");
        let created = events
            .next_created(LIMIT)
            .await
            .expect("the parent's client");
        assert!(created.peer.is_some());
        println!("served without LISTEN_PID on {local}");
    });
}

// ---- EMFILE under sustained pressure ----

#[test]
fn sustained_descriptor_pressure_is_one_episode() {
    let out = run_child("sustained_pressure_child", Duration::from_secs(90));
    assert!(out.contains("pressure ok"), "{out}");
}

/// Opens `/dev/null` until the descriptor limit: the process is at its limit.
fn fill_descriptors() -> Vec<std::fs::File> {
    let mut fillers = Vec::new();
    for _ in 0..100_000 {
        match std::fs::File::open("/dev/null") {
            Ok(file) => fillers.push(file),
            Err(error) if error.raw_os_error() == Some(libc::EMFILE) => return fillers,
            Err(error) => panic!("open /dev/null: {error}"),
        }
    }
    panic!("no descriptor limit reached");
}

/// A server held at its descriptor limit while the owner frees one descriptor every 20 ms (each
/// taken at once by the next queued client): one `SocketFailed` for the whole time. After a
/// calm of more than one back-off ceiling, a new shortage is a new episode, reported once more.
#[test]
#[ignore = "runs in a child process: sustained_descriptor_pressure_is_one_episode"]
fn sustained_pressure_child() {
    if !in_child("sustained_pressure_child") {
        return;
    }
    const CEILING: Duration = Duration::from_millis(300);
    const CLIENTS: usize = 70;
    const FREED: usize = 60;
    System::new().block_on(async {
        let mut events = Events::start();
        let builder = events
            .builder()
            .bind_address("127.0.0.1")
            .bind_port(0)
            .accept_backoff(Duration::from_millis(5), CEILING);
        let (server, addr) = start_and_locate(builder).await.expect("server");
        server.send(PauseAccept).await.expect("paused");
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| std::net::TcpStream::connect(addr).expect("connect"))
            .collect();
        set_fd_limit(Some((open_fds() + FREED + 5) as u64));
        let mut fillers = fill_descriptors();
        assert!(fillers.len() >= FREED, "{} fillers", fillers.len());
        server.send(ResumeAccept).await.expect("resumed");
        let first = events.next_failed(LIMIT).await.expect("EMFILE reported");
        assert_eq!(
            (first.operation, first.errno),
            (Operation::Accept, Some(libc::EMFILE))
        );

        // Sustained pressure: one descriptor freed every 20 ms, each taken by a client.
        let began = Instant::now();
        let mut held = Vec::new();
        for _ in 0..FREED {
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(fillers.pop());
            held.push(
                events
                    .next_created(LIMIT)
                    .await
                    .expect("a client per freed descriptor"),
            );
        }
        let pressure = began.elapsed();
        let mut more = Vec::new();
        while let Some(failed) = events.try_failed() {
            more.push(failed.to_string());
        }
        assert!(
            more.is_empty(),
            "{} more SocketFailed in {pressure:?} of pressure: {more:?}",
            more.len()
        );

        // Room for everyone, then a calm longer than the ceiling: the episode ends at the next
        // accept that goes well.
        drop(fillers);
        drop(held);
        for _ in 0..CLIENTS - FREED {
            events
                .next_created(LIMIT)
                .await
                .expect("the rest of the queue");
        }
        // Not a wait for an event: the calm itself (time without an error) is what is tested.
        tokio::time::sleep(CEILING * 2).await;
        let _calm = std::net::TcpStream::connect(addr).expect("connect");
        events
            .next_created(LIMIT)
            .await
            .expect("accepted after the calm");

        // A new shortage: a new episode, reported once.
        server.send(PauseAccept).await.expect("paused");
        let late: Vec<_> = (0..3)
            .map(|_| std::net::TcpStream::connect(addr).expect("connect"))
            .collect();
        let fillers = fill_descriptors();
        server.send(ResumeAccept).await.expect("resumed");
        let second = events.next_failed(LIMIT).await.expect("the new episode");
        assert_eq!(second.errno, Some(libc::EMFILE));
        let stats = server.send(GetStats).await.expect("stats");
        assert_eq!(stats.backoff_episodes, 2, "{stats:?}");
        drop(fillers);
        drop((clients, late));
        println!("pressure ok: {FREED} descriptors freed one by one over {pressure:?}, one report");
    });
}
