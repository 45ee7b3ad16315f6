//! Shared by the web tests: a real HAProxy in front of a server.
#![allow(dead_code)]

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};

/// A running `haproxy`, killed when dropped.
pub struct Haproxy {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub use crate::util::haproxy;

/// Whether something listens on 127.0.0.1:`port` (from /proc/net/tcp, without connecting).
pub fn listening(port: u16) -> bool {
    let wanted = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/tcp").is_ok_and(|table| {
        table.lines().skip(1).any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(1) == Some(&wanted.as_str()) && fields.get(3) == Some(&"0A")
        })
    })
}

pub async fn start_haproxy(
    program: &str,
    backend: SocketAddr,
    server_options: &str,
) -> (Haproxy, SocketAddr) {
    let dir = tempfile::tempdir().expect("temp dir");
    let front = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let config = format!(
        "global\n    maxconn 64\n\n\
         defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\n\
         frontend front\n    bind 127.0.0.1:{front}\n    default_backend web\n\n\
         backend web\n    server web {backend} {server_options}\n"
    );
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(&path, config).expect("write haproxy.cfg");
    let child = Command::new(program)
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn haproxy");
    let mut haproxy = Haproxy { child, _dir: dir };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !listening(front) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    if !listening(front) {
        let _ = haproxy.child.kill();
        let mut err = String::new();
        if let Some(mut stderr) = haproxy.child.stderr.take() {
            let _ = stderr.read_to_string(&mut err);
        }
        panic!("haproxy did not listen on {front}: {err}");
    }
    (haproxy, SocketAddr::from((Ipv4Addr::LOCALHOST, front)))
}
