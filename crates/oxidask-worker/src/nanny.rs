//! The nanny: `oxidask worker` runs each worker process under a small supervisor (Dask's
//! `Nanny`), unless given `--no-nanny`.
//!
//! The nanny starts `--nworkers` worker processes — the same command line with `--no-nanny`,
//! each with its share of the memory limit and of the cores — and restarts one that
//! - exited with [`EXIT_MEMORY`] (its memory monitor found the process past
//!   `distributed.worker.memory.terminate`): at once;
//! - exited with [`EXIT_RESTART`] (`Client::restart`, or its `--lifetime` ended with
//!   `--lifetime-restart`): at once;
//! - crashed (a signal, another non-zero exit): after a delay that doubles with each crash in a row
//!   shortly after starting ([`Backoff`]), giving up after [`MAX_QUICK_CRASHES`] of them.
//!
//! A worker that exits cleanly (code 0: stopped by a signal or by the scheduler, or lost its
//! scheduler) is not restarted, nor one that could not start (code 1 or 2: bad arguments,
//! the scheduler unreachable or refusing it). SIGTERM and SIGINT are forwarded to the workers as SIGTERM;
//! the nanny exits once they have. Workers get SIGTERM if the nanny dies (Linux's parent-death
//! signal), so none outlives it.
//!
//! Workers get Dask's default pre-spawn environment ([`PRE_SPAWN_ENV`]) where the nanny's own
//! environment does not set those variables.
//!
//! The restart decisions are pure ([`Backoff::after_exit`], tested with simulated uptimes);
//! [`supervise`] does the process work.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Set in a supervised worker's environment (the nanny's process id).
pub const NANNY_ENV: &str = "OXIDASK_NANNY";

/// Variables a supervised worker gets unless the nanny's environment sets them: Dask's
/// `distributed.nanny.pre-spawn-environ` defaults. `MALLOC_TRIM_THRESHOLD_` makes glibc's
/// allocator return freed memory (what C libraries and Python extensions free) to the system
/// rather than keep it resident, where it would count against the memory limit; the others
/// keep NumPy's BLAS and OpenMP to one thread per task thread.
pub const PRE_SPAWN_ENV: [(&str, &str); 4] = [
    ("MALLOC_TRIM_THRESHOLD_", "65536"),
    ("OMP_NUM_THREADS", "1"),
    ("MKL_NUM_THREADS", "1"),
    ("OPENBLAS_NUM_THREADS", "1"),
];

/// Exit code of a worker that asks its nanny for a fresh process (restart, lifetime).
pub const EXIT_RESTART: i32 = 75;

/// Exit code of a worker whose process passed the terminate memory threshold.
pub const EXIT_MEMORY: i32 = 76;

/// Crashes in a row, each within [`STABLE_UPTIME`] of starting, after which the nanny gives up.
pub const MAX_QUICK_CRASHES: u32 = 5;

/// A worker up this long before it crashed is restarted as if for the first time.
pub const STABLE_UPTIME: Duration = Duration::from_secs(10);

/// The first restart delay after a crash; it doubles with each quick crash, up to 10 s.
const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(10);

/// How a worker process ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Code 0: stopped on purpose; not restarted.
    Clean,
    /// [`EXIT_RESTART`].
    Restart,
    /// [`EXIT_MEMORY`].
    Memory,
    /// Code 1 or 2: the worker could not start (bad arguments or configuration, the
    /// scheduler unreachable or refusing it); starting it again would fail the same way.
    Failed(i32),
    /// Anything else (a signal or another code), described.
    Crashed(String),
}

impl Exit {
    /// Classifies a process's exit status.
    pub fn of(status: std::process::ExitStatus) -> Exit {
        match status.code() {
            Some(0) => Exit::Clean,
            Some(EXIT_RESTART) => Exit::Restart,
            Some(EXIT_MEMORY) => Exit::Memory,
            Some(c @ (1 | 2)) => Exit::Failed(c),
            Some(c) => Exit::Crashed(format!("exit code {c}")),
            None => {
                #[cfg(unix)]
                {
                    use std::os::unix::process::ExitStatusExt;
                    if let Some(s) = status.signal() {
                        return Exit::Crashed(format!("killed by signal {s}"));
                    }
                }
                Exit::Crashed(format!("{status}"))
            }
        }
    }
}

/// What the nanny does after a worker process exits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// Start a new worker process after this delay.
    Start(Duration),
    /// Do not restart it (it stopped on purpose).
    Done,
    /// Do not restart it: it keeps crashing; why.
    GiveUp(String),
}

/// The restart policy of one worker slot (see the module documentation).
///
/// ```
/// use oxidask_worker::nanny::{Backoff, Exit, Next};
/// use std::time::Duration;
/// let mut b = Backoff::default();
/// let crash = Exit::Crashed("killed by signal 9".into());
/// assert_eq!(b.after_exit(&crash, Duration::from_secs(60)), Next::Start(Duration::from_millis(100)));
/// assert_eq!(b.after_exit(&crash, Duration::from_secs(1)), Next::Start(Duration::from_millis(200)));
/// assert_eq!(b.after_exit(&Exit::Memory, Duration::from_secs(1)), Next::Start(Duration::ZERO));
/// ```
#[derive(Clone, Debug, Default)]
pub struct Backoff {
    quick_crashes: u32,
}

impl Backoff {
    /// The decision after a worker that ran `uptime` exited as `exit`.
    pub fn after_exit(&mut self, exit: &Exit, uptime: Duration) -> Next {
        match exit {
            Exit::Clean => Next::Done,
            Exit::Restart | Exit::Memory => {
                self.quick_crashes = 0;
                Next::Start(Duration::ZERO)
            }
            Exit::Failed(code) => Next::GiveUp(format!(
                "it could not start (exit code {code}; its log above says why)"
            )),
            Exit::Crashed(how) => {
                if uptime >= STABLE_UPTIME {
                    self.quick_crashes = 0;
                }
                self.quick_crashes += 1;
                if self.quick_crashes > MAX_QUICK_CRASHES {
                    return Next::GiveUp(format!(
                        "it crashed {} times in a row within {} s of starting (the last: {how}); see its log above, fix the cause and start it again",
                        self.quick_crashes - 1,
                        STABLE_UPTIME.as_secs()
                    ));
                }
                let delay = FIRST_DELAY.saturating_mul(1 << (self.quick_crashes - 1).min(16));
                Next::Start(delay.min(MAX_DELAY))
            }
        }
    }
}

/// One supervised worker process to run: its command line.
#[derive(Clone, Debug)]
pub struct WorkerCommand {
    /// The program and the arguments before the worker's own (`python -m oxidask worker`).
    pub program: std::ffi::OsString,
    /// Arguments before `worker`'s options.
    pub prefix: Vec<std::ffi::OsString>,
    /// The worker's options (ending with `--no-nanny`).
    pub args: Vec<String>,
    /// The name shown in the nanny's log lines.
    pub label: String,
}

/// The command this process was started with, split at the worker's own arguments `tail`
/// (what follows `worker`), from `/proc/self/cmdline`; `None` if it cannot be told.
pub fn own_command(tail: &[String]) -> Option<(std::ffi::OsString, Vec<std::ffi::OsString>)> {
    use std::os::unix::ffi::OsStringExt;
    let raw = std::fs::read("/proc/self/cmdline").ok()?;
    let mut parts: Vec<Vec<u8>> = raw.split(|b| *b == 0).map(<[u8]>::to_vec).collect();
    if parts.last().is_some_and(Vec::is_empty) {
        parts.pop();
    }
    split_command(parts, tail).map(|(p, rest)| {
        (
            std::ffi::OsString::from_vec(p),
            rest.into_iter().map(std::ffi::OsString::from_vec).collect(),
        )
    })
}

/// Splits a command line `parts` into the program and the arguments before `tail`, which it
/// must end with.
fn split_command(mut parts: Vec<Vec<u8>>, tail: &[String]) -> Option<(Vec<u8>, Vec<Vec<u8>>)> {
    if parts.len() < tail.len() + 1 {
        return None;
    }
    let cut = parts.len() - tail.len();
    if !parts[cut..]
        .iter()
        .zip(tail)
        .all(|(a, b)| a.as_slice() == b.as_bytes())
    {
        return None;
    }
    parts.truncate(cut);
    let program = parts.remove(0);
    Some((program, parts))
}

/// The worker's arguments `args` without the options the nanny sets per worker process
/// (`--nworkers`, `--name`, `--memory-limit`, `--no-nanny`).
pub fn strip_nanny_options(args: &[String]) -> Vec<String> {
    const WITH_VALUE: [&str; 3] = ["--nworkers", "--name", "--memory-limit"];
    let mut out = Vec::with_capacity(args.len());
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "--no-nanny" {
            i += 1;
            continue;
        }
        if WITH_VALUE.contains(&a.as_str()) {
            i += 2;
            continue;
        }
        if WITH_VALUE
            .iter()
            .any(|f| a.strip_prefix(f).is_some_and(|r| r.starts_with('=')))
        {
            i += 1;
            continue;
        }
        out.push(a.clone());
        i += 1;
    }
    out
}

/// Runs `workers` under supervision until every one has stopped for good; returns the
/// process's exit code (0, or 1 if the nanny gave up on a worker).
pub fn supervise(workers: Vec<WorkerCommand>) -> i32 {
    let signals = Signals::install();
    let mut slots: Vec<Slot> = workers
        .into_iter()
        .map(|cmd| Slot {
            cmd,
            child: None,
            started: Instant::now(),
            next_start: Some(Instant::now()),
            backoff: Backoff::default(),
        })
        .collect();
    let mut forwarded = false;
    let mut failed = false;
    loop {
        let stopping = signals.count() > 0;
        if stopping && !forwarded {
            forwarded = true;
            eprintln!("oxidask-nanny: stopping (signal); asking the workers to stop");
            for s in &mut slots {
                s.next_start = None;
                if let Some(c) = &s.child {
                    terminate(c);
                }
            }
        }
        if signals.count() > 1 {
            eprintln!("oxidask-nanny: second signal: killing the workers");
            for s in &mut slots {
                if let Some(c) = &mut s.child {
                    let _ = c.kill();
                }
            }
        }
        let now = Instant::now();
        for s in &mut slots {
            if let Some(c) = &mut s.child {
                let Ok(Some(status)) = c.try_wait() else {
                    continue;
                };
                s.child = None;
                let exit = Exit::of(status);
                let uptime = now.saturating_duration_since(s.started);
                if stopping {
                    continue;
                }
                match s.backoff.after_exit(&exit, uptime) {
                    Next::Done => {
                        eprintln!("oxidask-nanny: worker {} stopped", s.cmd.label);
                    }
                    Next::Start(after) => {
                        let why = match &exit {
                            Exit::Memory => {
                                "it passed its memory limit's terminate threshold".to_owned()
                            }
                            Exit::Restart => "it asked to be restarted".to_owned(),
                            Exit::Crashed(how) => format!("it crashed ({how})"),
                            Exit::Clean | Exit::Failed(_) => {
                                unreachable!("clean exits and failed starts are not restarted")
                            }
                        };
                        eprintln!(
                            "oxidask-nanny: restarting worker {} in {:.1} s: {why}",
                            s.cmd.label,
                            after.as_secs_f64()
                        );
                        s.next_start = Some(now + after);
                    }
                    Next::GiveUp(why) => {
                        eprintln!(
                            "oxidask-nanny: not restarting worker {}: {why}",
                            s.cmd.label
                        );
                        failed = true;
                    }
                }
            } else if let Some(at) = s.next_start.filter(|at| *at <= now && !stopping) {
                let _ = at;
                s.next_start = None;
                s.started = now;
                match spawn(&s.cmd) {
                    Ok(c) => s.child = Some(c),
                    Err(e) => {
                        eprintln!("oxidask-nanny: cannot start worker {}: {e}", s.cmd.label);
                        failed = true;
                    }
                }
            }
        }
        if slots
            .iter()
            .all(|s| s.child.is_none() && (s.next_start.is_none() || stopping))
        {
            return i32::from(failed);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Slot {
    cmd: WorkerCommand,
    child: Option<Child>,
    started: Instant,
    next_start: Option<Instant>,
    backoff: Backoff,
}

fn spawn(cmd: &WorkerCommand) -> std::io::Result<Child> {
    let mut c = Command::new(&cmd.program);
    c.args(&cmd.prefix)
        .args(&cmd.args)
        .env(NANNY_ENV, std::process::id().to_string());
    for (name, value) in PRE_SPAWN_ENV {
        if std::env::var_os(name).is_none() {
            c.env(name, value);
        }
    }
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe and touches only the child's own state.
        unsafe {
            c.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
    }
    c.spawn()
}

/// Asks a worker process to stop cleanly (SIGTERM).
fn terminate(child: &Child) {
    #[cfg(unix)]
    // SAFETY: kill(2) on our own child's id.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    #[cfg(not(unix))]
    let _ = child;
}

/// Counts SIGTERM and SIGINT received (on a thread of its own).
struct Signals(std::sync::Arc<std::sync::atomic::AtomicU32>);

impl Signals {
    fn install() -> Signals {
        let count = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let c = count.clone();
        let _ = std::thread::Builder::new()
            .name("oxidask-nanny-signals".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    use tokio::signal::unix::{signal, SignalKind};
                    let (Ok(mut term), Ok(mut int)) = (
                        signal(SignalKind::terminate()),
                        signal(SignalKind::interrupt()),
                    ) else {
                        return;
                    };
                    loop {
                        tokio::select! {
                            _ = term.recv() => {}
                            _ = int.recv() => {}
                        }
                        c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                });
            });
        Signals(count)
    }

    fn count(&self) -> u32 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUICK: Duration = Duration::from_secs(1);

    #[test]
    fn clean_exits_end_and_requested_restarts_are_immediate() {
        let mut b = Backoff::default();
        assert_eq!(b.after_exit(&Exit::Clean, QUICK), Next::Done);
        assert!(matches!(
            b.after_exit(&Exit::Failed(1), QUICK),
            Next::GiveUp(why) if why.contains("could not start")
        ));
        for _ in 0..20 {
            assert_eq!(
                b.after_exit(&Exit::Restart, QUICK),
                Next::Start(Duration::ZERO)
            );
            assert_eq!(
                b.after_exit(&Exit::Memory, QUICK),
                Next::Start(Duration::ZERO)
            );
        }
    }

    #[test]
    fn quick_crashes_back_off_exponentially_then_give_up() {
        let mut b = Backoff::default();
        let crash = Exit::Crashed("exit code 101".into());
        let delays: Vec<Next> = (0..MAX_QUICK_CRASHES)
            .map(|_| b.after_exit(&crash, QUICK))
            .collect();
        let ms = |m| Next::Start(Duration::from_millis(m));
        assert_eq!(delays, vec![ms(100), ms(200), ms(400), ms(800), ms(1600)]);
        match b.after_exit(&crash, QUICK) {
            Next::GiveUp(why) => {
                assert!(why.contains("5 times") && why.contains("exit code 101"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_worker_that_ran_a_while_starts_its_backoff_over() {
        let mut b = Backoff::default();
        let crash = Exit::Crashed("killed by signal 9".into());
        for _ in 0..4 {
            b.after_exit(&crash, QUICK);
        }
        assert_eq!(
            b.after_exit(&crash, STABLE_UPTIME),
            Next::Start(FIRST_DELAY)
        );
        // A memory restart also clears the count.
        for _ in 0..3 {
            b.after_exit(&crash, QUICK);
        }
        b.after_exit(&Exit::Memory, QUICK);
        assert_eq!(b.after_exit(&crash, QUICK), Next::Start(FIRST_DELAY));
    }

    #[test]
    fn exit_statuses_are_classified() {
        use std::os::unix::process::ExitStatusExt;
        let code = |c: i32| std::process::ExitStatus::from_raw(c << 8);
        assert_eq!(Exit::of(code(0)), Exit::Clean);
        assert_eq!(Exit::of(code(EXIT_RESTART)), Exit::Restart);
        assert_eq!(Exit::of(code(EXIT_MEMORY)), Exit::Memory);
        assert_eq!(Exit::of(code(1)), Exit::Failed(1));
        assert_eq!(Exit::of(code(101)), Exit::Crashed("exit code 101".into()));
        assert_eq!(
            Exit::of(std::process::ExitStatus::from_raw(9)),
            Exit::Crashed("killed by signal 9".into())
        );
    }

    #[test]
    fn the_command_line_splits_at_the_worker_arguments() {
        let b = |s: &str| s.as_bytes().to_vec();
        let tail = vec!["tcp://h:1".to_owned(), "--nthreads".into(), "2".into()];
        let line = vec![
            b("python"),
            b("-m"),
            b("oxidask"),
            b("worker"),
            b("tcp://h:1"),
            b("--nthreads"),
            b("2"),
        ];
        assert_eq!(
            split_command(line.clone(), &tail),
            Some((b("python"), vec![b("-m"), b("oxidask"), b("worker")]))
        );
        assert_eq!(split_command(line[..3].to_vec(), &tail), None);
        let other = vec!["tcp://h:2".to_owned()];
        assert_eq!(split_command(line, &other), None);
    }

    #[test]
    fn per_process_options_are_stripped() {
        let a: Vec<String> = [
            "tcp://h:1",
            "--nworkers",
            "2",
            "--name=w",
            "--nthreads",
            "1",
            "--memory-limit",
            "1GiB",
            "--no-nanny",
            "--lifetime",
            "5s",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            strip_nanny_options(&a),
            ["tcp://h:1", "--nthreads", "1", "--lifetime", "5s"].map(String::from)
        );
    }
}
