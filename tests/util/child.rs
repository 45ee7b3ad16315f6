//! Running one test of the current test binary in a child process: for tests that count the
//! process's descriptors (other tests in the same process would disturb the count) or change
//! process-wide state (namespaces, mounts).
//!
//! The child test is usually `#[ignore]`d (so a plain `cargo test` lists it as ignored rather
//! than running it in the shared process) and does its work only when [`is_child`] says so.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The variable that tells a child process which test it runs.
pub const CHILD_VAR: &str = "ACTIX_SOCKET_FACTORY_CHILD_TEST";

/// A line a child prints, alone, to say it could not run here (and why).
pub const SKIP_MARK: &str = "CHILD-SKIPPED:";

/// Whether this process is the child started for `test`.
pub fn is_child(test: &str) -> bool {
    std::env::var(CHILD_VAR).is_ok_and(|name| name == test)
}

/// Tells the parent that the child cannot run here, and why.
pub fn skip(reason: &str) {
    println!("{SKIP_MARK} {reason}");
}

/// Runs `test` of this binary in a child process, waiting at most `limit`.
///
/// Passes when the child passes, returning its standard output; when the child said [`skip`],
/// prints its reason and passes (a missing privilege is no failure of the crate). Fails with the
/// child's output otherwise, and when the name matched no test (so a typo cannot pass).
pub fn run(test: &str, limit: Duration) -> String {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut child = Command::new(exe)
        .args([
            test,
            "--exact",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_VAR, test)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the child test");
    // Drain both pipes on their own threads so a chatty child cannot block on a full pipe.
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
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
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    if let Some(reason) = out.lines().find_map(|line| line.strip_prefix(SKIP_MARK)) {
        println!("skipped {test}:{reason}");
        return out;
    }
    match status {
        Some(status) if status.success() && out.contains("1 passed") => {
            print!("{out}");
            out
        }
        Some(status) => panic!("child {test} failed ({status}):\n{out}\n{err}"),
        None => panic!("child {test} still running after {limit:?}:\n{out}\n{err}"),
    }
}
