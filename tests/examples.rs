//! The examples, run as child processes. The server examples stop like services: each is sent
//! SIGTERM, SIGINT or SIGQUIT and must exit with status 0, its UNIX socket file removed, its log
//! (via env_logger, `RUST_LOG=debug`) naming the signal. The reconnecting client must connect
//! through its Supervisor once its server comes up, and again after the connection ends.
//!
//! The examples are separate binaries: `cargo test` builds them into `target/<profile>/examples`,
//! next to this test's `deps` directory. This test asks cargo for each one (with the features
//! it was itself built with), so a run of this test alone finds them built and up to date.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(20);

/// The path of example `name`, built with this test's features and profile.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/signals-HASH -> target/<profile>
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let target_dir = profile_dir.parent().expect("target");
    let mut features = Vec::new();
    if cfg!(feature = "serde") {
        features.push("serde");
    }
    if cfg!(feature = "clap") {
        features.push("clap");
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CARGO_TARGET_DIR", target_dir)
        .args(["build", "--quiet", "--example", name, "--features"])
        .arg(features.join(","));
    if profile_dir.file_name().is_some_and(|p| p == "release") {
        build.arg("--release");
    }
    let status = build.status().expect("run cargo build --example");
    assert!(status.success(), "cargo build --example {name}: {status}");
    let path = profile_dir.join("examples").join(name);
    assert!(path.is_file(), "{} was not built", path.display());
    path
}

/// A running example: its stdout lines arrive on a channel; stderr is collected for the end.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: std::thread::JoinHandle<String>,
}

impl Running {
    fn start(mut command: Command) -> Running {
        let mut child = command
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the example");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut stderr = child.stderr.take().expect("piped stderr");
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Running {
            child,
            lines,
            stderr,
        }
    }

    /// The first stdout line containing `what`, waiting at most LIMIT.
    fn line_with(&mut self, what: &str) -> String {
        let deadline = Instant::now() + LIMIT;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(what) => return line,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        let _ = self.child.kill();
        panic!("no line with {what:?} on stdout");
    }

    /// Waits (bounded) for the example to end by itself.
    fn wait(mut self) -> ExitStatus {
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("the example did not end within {LIMIT:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `signal` and waits (bounded) for the exit; returns the status and stderr.
    fn stop_with(mut self, signal: i32) -> (ExitStatus, String) {
        let pid = i32::try_from(self.child.id()).expect("a pid");
        // SAFETY: kill(2) on our own child's pid, which is not yet reaped (so not reused).
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill");
        let deadline = Instant::now() + LIMIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("the example did not exit within {LIMIT:?} of signal {signal}");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        (status, self.stderr.join().expect("stderr reader"))
    }
}

#[test]
fn unix_echo_exits_0_on_sigterm_and_removes_its_socket_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("echo.sock");
    let mut command = Command::new(example("unix_echo"));
    command.arg(&path);
    let mut running = Running::start(command);
    running.line_with("echo server listening on");
    assert!(path.exists(), "the socket file is there while it serves");

    // It serves, and a client still connected does not hold up the stop.
    let mut client = std::os::unix::net::UnixStream::connect(&path).expect("connect");
    client.set_read_timeout(Some(LIMIT)).unwrap();
    client.write_all(b"ping\n").unwrap();
    let mut back = [0; 5];
    client.read_exact(&mut back).expect("echo");
    assert_eq!(&back, b"ping\n");

    let (status, stderr) = running.stop_with(libc::SIGTERM);
    assert_eq!(status.code(), Some(0), "{status}; stderr:\n{stderr}");
    assert!(!path.exists(), "socket file left behind; stderr:\n{stderr}");
    assert!(
        stderr.contains("SIGTERM"),
        "the log names the signal:\n{stderr}"
    );
    assert!(
        stderr.contains(&path.display().to_string()),
        "the log names the socket file:\n{stderr}"
    );
}

#[test]
fn rot13_exits_0_on_sigint_and_closes_its_listener() {
    let mut command = Command::new(example("rot13"));
    command.arg("0");
    let mut running = Running::start(command);
    let line = running.line_with("rot13 server listening on");
    let addr: std::net::SocketAddr = line
        .rsplit(' ')
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("an address in {line:?}"));
    let mut client = std::net::TcpStream::connect(addr).expect("connect");
    client.set_read_timeout(Some(LIMIT)).unwrap();
    client.write_all(b"Hello\n").unwrap();
    let mut back = [0; 6];
    client.read_exact(&mut back).expect("rot13 reply");
    assert_eq!(&back, b"Uryyb\n");

    let (status, stderr) = running.stop_with(libc::SIGINT);
    assert_eq!(status.code(), Some(0), "{status}; stderr:\n{stderr}");
    assert!(
        stderr.contains("SIGINT"),
        "the log names the signal:\n{stderr}"
    );
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "still listening"
    );
}

#[test]
fn udp_echo_exits_0_on_sigquit() {
    let mut command = Command::new(example("udp_echo"));
    command.arg("0");
    let mut running = Running::start(command);
    running.line_with("UDP echo server on");
    let (status, stderr) = running.stop_with(libc::SIGQUIT);
    assert_eq!(status.code(), Some(0), "{status}; stderr:\n{stderr}");
    assert!(
        stderr.contains("SIGQUIT"),
        "the log names the signal:\n{stderr}"
    );
}

#[test]
fn reconnecting_client_retries_under_its_supervisor_and_connects_again() {
    let mut running = Running::start(Command::new(example("reconnecting_client")));
    let first = running.line_with("connected after");
    let refused: usize = first
        .split("connected after ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a count in {first:?}"));
    // The server comes up 500 ms in; the supervisor's delays (0, 100, 200 ms, ...) fit at least
    // two refused attempts before it, and their growth keeps them few.
    assert!((2..=6).contains(&refused), "{first}");
    assert!(running.line_with("server says").contains("hello #1"));
    let second = running.line_with("connected after");
    assert!(second.contains("after 0 refused"), "{second}");
    assert!(running.line_with("server says").contains("hello #2"));
    let status = running.wait();
    assert_eq!(status.code(), Some(0), "{status}");
}
