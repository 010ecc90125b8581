//! What the real-process test binaries share: child processes whose stderr is kept as lines,
//! waiting for conditions, signals, and starting the `oxidask` scheduler or this binary as a
//! worker. Each binary includes it with `mod common;` and uses what it needs.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Every child started through [`Proc::spawn`], so a test's `main` can kill what a panicking
/// test left running ([`kill_all`]).
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// A child process; its stderr lines are collected (and echoed with `OXIDASK_TEST_VERBOSE`).
/// Dropping it kills the process if it is still running.
pub struct Proc {
    pub child: Child,
    pub log: Arc<Mutex<Vec<String>>>,
    /// Dropping sends SIGTERM first (so a nanny stops its workers too), SIGKILL after 10 s.
    pub graceful_drop: bool,
    /// Set once every line of stderr is in `log` (the pipe closed).
    log_done: Arc<AtomicBool>,
}

impl Proc {
    /// Starts `cmd` with stdin and stdout closed and stderr collected.
    pub fn spawn(mut cmd: Command) -> Proc {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn");
        CHILDREN.lock().unwrap().push(child.id());
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let l = log.clone();
        let log_done = Arc::new(AtomicBool::new(false));
        let done = log_done.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("OXIDASK_TEST_VERBOSE").is_some() {
                    eprintln!("    | {line}");
                }
                l.lock().unwrap().push(line);
            }
            done.store(true, Ordering::Release);
        });
        Proc {
            child,
            log,
            graceful_drop: false,
            log_done,
        }
    }

    /// [`Proc::spawn`], stopped with SIGTERM when dropped (a nanny then stops its workers).
    pub fn spawn_graceful(cmd: Command) -> Proc {
        let mut p = Proc::spawn(cmd);
        p.graceful_drop = true;
        p
    }

    /// The first line containing `needle`, waiting up to `timeout`; `None` past it.
    pub fn try_line(&self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.log.lock().unwrap().iter().find(|l| l.contains(needle)) {
                return Some(l.clone());
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The first line containing `needle`; panics with the log if none comes in `timeout`.
    pub fn wait_for_line(&self, needle: &str, timeout: Duration) -> String {
        self.try_line(needle, timeout)
            .unwrap_or_else(|| panic!("no `{needle}` in:\n{}", self.log()))
    }

    /// The `n`-th line containing `needle`, waiting up to `timeout` for it (panics past it).
    pub fn wait_for_lines(&self, needle: &str, n: usize, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self
                .log
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.contains(needle))
                .nth(n - 1)
            {
                return l.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no {n} × `{needle}` in:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// How many lines contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// The whole log so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// The exit code, waiting up to `timeout` (panics with the log past it). The log then
    /// holds the process's last lines too: the reader is given up to 2 s to reach the end of
    /// the pipe (which a child the process started may still hold open).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                let read_by = Instant::now() + Duration::from_secs(2);
                while !self.log_done.load(Ordering::Acquire) && Instant::now() < read_by {
                    std::thread::sleep(Duration::from_millis(5));
                }
                return s.code();
            }
            assert!(
                Instant::now() < deadline,
                "still running after {timeout:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `sig` (`TERM`, `KILL`, ...).
    pub fn signal(&self, sig: &str) {
        signal(self.child.id(), sig);
    }

    /// SIGTERM (a nanny forwards it), then waits up to 30 s for the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        signal(self.child.id(), "TERM");
        self.wait_exit(Duration::from_secs(30))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            if self.graceful_drop {
                signal(self.child.id(), "TERM");
                let deadline = Instant::now() + Duration::from_secs(10);
                while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// `kill -SIG PID`, asserting it was delivered.
pub fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -{sig} {pid}");
}

/// SIGKILLs every child still registered (for a `main` whose test panicked).
pub fn kill_all() {
    for pid in CHILDREN.lock().unwrap().iter() {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .stderr(Stdio::null())
            .status();
    }
}

/// Waits until `cond` holds; panics naming `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `oxidask scheduler --port PORT --no-dashboard` (0: any port) as a [`Command`] to extend.
pub fn scheduler_command(port: u16) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_oxidask"));
    cmd.args(["scheduler", "--port", &port.to_string(), "--no-dashboard"]);
    cmd
}

/// Starts a scheduler command and returns it with the address it listens at.
pub fn start_scheduler(cmd: Command) -> (Proc, String) {
    let p = Proc::spawn(cmd);
    let line = p.wait_for_line("listening at", Duration::from_secs(20));
    let address = line.rsplit(' ').next().unwrap().to_owned();
    (p, address)
}

/// `this-test-binary worker ADDRESS` as a [`Command`] to extend (the binary calls
/// `run_if_worker` first).
pub fn worker_command(address: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["worker", address]);
    cmd
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A named test of a `harness = false` binary.
pub type Test = (&'static str, fn());

/// Runs `tests` (those whose names contain an argument, if any are given) one after another,
/// printing libtest-like lines, and exits 1 if any failed. Call after `run_if_worker`.
pub fn run_tests(tests: &[Test]) {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let selected: Vec<&Test> = tests
        .iter()
        .filter(|(n, _)| filter.is_empty() || filter.iter().any(|f| n.contains(f.as_str())))
        .collect();
    println!("running {} tests", selected.len());
    let mut failed = Vec::new();
    for (name, test) in selected {
        let started = Instant::now();
        // On its own thread with a time limit: a hang fails the test instead of stalling CI.
        let (tx, rx) = std::sync::mpsc::channel();
        let f = *test;
        std::thread::spawn(move || {
            let _ = tx.send(std::panic::catch_unwind(f).is_ok());
        });
        let ok = rx
            .recv_timeout(Duration::from_secs(300))
            .unwrap_or_else(|_| {
                eprintln!("test {name} did not finish within 300 s");
                false
            });
        if ok {
            println!(
                "test {name} ... ok ({:.1} s)",
                started.elapsed().as_secs_f64()
            );
        } else {
            println!("test {name} ... FAILED");
            failed.push(*name);
            kill_all();
        }
    }
    if failed.is_empty() {
        println!("test result: ok");
    } else {
        kill_all();
        println!("test result: FAILED: {failed:?}");
        std::process::exit(1);
    }
}
