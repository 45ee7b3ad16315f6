//! The benchmark's other processes: this same binary re-run with a role, talking one line at a
//! time on its stdout. A child lives while its stdin is open: closing it (or the parent dying)
//! ends the child, so nothing outlives the run.

use std::io::{self, BufRead, BufReader};
use std::process::{Child as Process, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How long a child gets to exit after its stdin closes, before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// A running child process of this binary.
pub struct Child {
    process: Process,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    name: String,
}

impl Child {
    /// Re-runs this binary with `args` (a role and its parameters).
    pub fn spawn(args: &[String]) -> io::Result<Child> {
        Child::spawn_under(&[], args)
    }

    /// Re-runs this binary with `args` under `wrapper` (a program and its options, such as
    /// `valgrind --tool=callgrind`); with no wrapper, as [`spawn`](Self::spawn).
    /// The process that runs this binary: the child itself, or the one its wrapper (strace)
    /// started.
    pub fn pid(&self) -> u32 {
        let own = self.process.id();
        std::fs::read_to_string(format!("/proc/{own}/task/{own}/children"))
            .ok()
            .and_then(|children| children.split_whitespace().next()?.parse().ok())
            .unwrap_or(own)
    }

    pub fn spawn_under(wrapper: &[String], args: &[String]) -> io::Result<Child> {
        let exe = std::env::current_exe()?;
        let mut command = match wrapper.split_first() {
            Some((program, options)) => {
                let mut command = Command::new(program);
                command.args(options).arg(exe);
                command
            }
            None => Command::new(exe),
        };
        let mut process = command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = process
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("child has no stdout"))?;
        let (tx, lines) = mpsc::channel();
        // Ends by itself at the child's EOF.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Child {
            stdin: process.stdin.take(),
            process,
            lines,
            name: args.join(" "),
        })
    }

    /// Waits at most `limit` for the line that starts with `tag`, and returns its other words.
    /// Lines with other tags are skipped.
    pub fn expect(&self, tag: &str, limit: Duration) -> io::Result<Vec<String>> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let mut words = line.split_whitespace();
                    if words.next() == Some(tag) {
                        return Ok(words.map(str::to_owned).collect());
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("`{}` said no `{tag}` within {limit:?}", self.name),
                    ))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("`{}` exited before `{tag}`", self.name),
                    ))
                }
            }
        }
    }

    /// Like [`expect`](Self::expect), the words parsed as numbers.
    pub fn expect_numbers(&self, tag: &str, limit: Duration) -> io::Result<Vec<f64>> {
        self.expect(tag, limit)?
            .iter()
            .map(|word| {
                word.parse::<f64>().map_err(|_| {
                    io::Error::new(io::ErrorKind::InvalidData, format!("`{tag}`: bad {word:?}"))
                })
            })
            .collect()
    }
}

impl Child {
    /// Closes the child's stdin and waits at most `limit` for it to exit by itself (a child
    /// under callgrind writes its counts as it exits); kills it after that.
    pub fn finish(mut self, limit: Duration) -> io::Result<()> {
        self.stdin = None;
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            match self.process.try_wait()? {
                Some(status) if status.success() => return Ok(()),
                Some(status) => return Err(io::Error::other(format!("`{}`: {status}", self.name))),
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("`{}` did not exit within {limit:?}", self.name),
        ))
    }

    /// Kills the child now: its sockets close, so clients blocked on them return.
    pub fn kill(&mut self) {
        let _ = self.process.kill();
    }
}

impl Drop for Child {
    /// Closes the child's stdin (its signal to exit) and reaps it; kills it if it lingers.
    fn drop(&mut self) {
        self.stdin = None;
        let deadline = Instant::now() + EXIT_GRACE;
        while Instant::now() < deadline {
            match self.process.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        eprintln!("`{}` did not exit: killing it", self.name);
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// In a child: exits the process once the parent closes our stdin (or dies).
pub fn exit_with_parent() {
    std::thread::spawn(|| {
        let _ = io::copy(&mut io::stdin(), &mut io::sink());
        std::process::exit(0);
    });
}

/// In a child: one line to the parent, flushed at once.
pub fn say(line: &str) {
    use std::io::Write;
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
