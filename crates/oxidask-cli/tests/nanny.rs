//! Workers that protect themselves, with real processes: the memory thresholds (pause at 80%
//! of the limit, exit at 95%), the nanny that restarts worker processes, `--nworkers`,
//! `--lifetime` and `Client::restart`. The `oxidask` binary is the scheduler; this test binary
//! is the worker program (its `main` runs a worker when started as `... worker ADDRESS`), so
//! the workers know the operations defined here; the test process is the client.
//!
//! Runs without libtest (`harness = false`). Pass a substring to run matching tests only.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use oxidask::distributed::{Client, Status};

mod common;
use common::*;

// ---- operations the workers run --------------------------------------------------------

#[oxidask::task]
fn inc(x: i64) -> i64 {
    x + 1
}

/// The process id of the worker that runs it.
#[oxidask::task]
fn worker_pid(_x: i64) -> i64 {
    i64::from(std::process::id())
}

/// Allocates `mib` MiB, a MiB every millisecond (touching every page, so the process's
/// resident memory grows), holds it until the file `release` exists (at most 120 s), frees it
/// and returns `mib`.
#[oxidask::task]
fn hog(mib: i64, release: String) -> i64 {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    for i in 0..mib {
        blocks.push(vec![(i % 251) as u8 + 1; 1 << 20]);
        std::thread::sleep(Duration::from_millis(1));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while !std::path::Path::new(&release).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    // Read the memory back so the allocation cannot be optimised away.
    let touched: usize = std::hint::black_box(&blocks).len();
    drop(blocks);
    touched as i64
}

// ---- processes ---------------------------------------------------------------------------

struct Cluster {
    /// Kept for its lifetime (dropping it stops the scheduler).
    _scheduler: Proc,
    address: String,
    dashboard: String,
}

impl Cluster {
    fn start(scheduler_args: &[&str]) -> Cluster {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_oxidask"));
        cmd.args([
            "scheduler",
            "--port",
            "0",
            "--dashboard-address",
            "127.0.0.1:0",
        ])
        .args(scheduler_args);
        let scheduler = Proc::spawn_graceful(cmd);
        let line = scheduler.wait_for_line("listening at", Duration::from_secs(20));
        let address = line.rsplit(' ').next().unwrap().to_owned();
        let line = scheduler.wait_for_line("dashboard at", Duration::from_secs(20));
        // `... dashboard at http://HOST:PORT/status`: the HOST:PORT part.
        let dashboard = line
            .rsplit("http://")
            .next()
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        Cluster {
            _scheduler: scheduler,
            address,
            dashboard,
        }
    }

    /// `this-test-binary worker ADDRESS ARGS...` (under a nanny unless ARGS say otherwise).
    fn worker(&self, args: &[&str]) -> Proc {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["worker", &self.address, "--heartbeat-ms", "200"])
            .args(args);
        Proc::spawn_graceful(cmd)
    }

    fn client(&self) -> Client {
        Client::connect(&self.address).expect("connect")
    }

    /// The scheduler's `/metrics` sample `dask_scheduler_workers{state="..."}` (none until
    /// the dashboard has its first snapshot of the scheduler).
    fn workers_in_state(&self, state: &str) -> Option<f64> {
        let body = http_get(&self.dashboard, "/metrics");
        let sample = format!("dask_scheduler_workers{{state=\"{state}\"}} ");
        body.lines()
            .find_map(|l| l.strip_prefix(&sample)?.parse().ok())
    }
}

fn http_get(host: &str, path: &str) -> String {
    let mut s = TcpStream::connect(host).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_owned())
}

/// Polls `cond` every 20 ms until it holds; panics with `what` after `timeout`.
fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn worker_names(client: &Client) -> Vec<String> {
    let mut names: Vec<String> = client
        .summary()
        .unwrap()
        .workers
        .into_iter()
        .map(|w| w.name)
        .collect();
    names.sort();
    names
}

fn temp_path(name: &str) -> String {
    let p = std::env::temp_dir().join(format!("oxidask-nanny-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p.to_string_lossy().into_owned()
}

const LONG: Duration = Duration::from_secs(60);

// ---- tests ---------------------------------------------------------------------------------

fn a_worker_sigkilled_under_its_nanny_comes_back() {
    let cluster = Cluster::start(&[]);
    let nanny = cluster.worker(&["--nthreads", "1", "--name", "w"]);
    let client = cluster.client();
    client.wait_for_workers(1, LONG).unwrap();
    let pid = client.submit(&worker_pid(1)).unwrap().result().unwrap();
    assert_ne!(
        pid,
        i64::from(nanny.child.id()),
        "the worker is the nanny's child"
    );
    signal(pid as u32, "KILL");
    nanny.wait_for_line("restarting worker w", LONG);
    // The same name comes back in a new process, and runs tasks.
    wait_until("the restarted worker", LONG, || {
        worker_names(&client) == ["w"]
            && client
                .submit(&worker_pid(2))
                .and_then(|f| f.result_timeout(Some(LONG)))
                .is_ok_and(|p| p != pid)
    });
}

fn a_task_past_the_memory_limit_restarts_its_workers_and_is_blamed_while_others_finish() {
    let cluster = Cluster::start(&["--allowed-failures", "1"]);
    let opts = ["--nthreads", "2", "--memory-limit", "300MiB"];
    let w1 = cluster.worker(&[&opts[..], &["--name", "w1"]].concat());
    let w2 = cluster.worker(&[&opts[..], &["--name", "w2"]].concat());
    let client = cluster.client();
    client.wait_for_workers(2, LONG).unwrap();
    let never = temp_path("never");
    let hog_future = client.submit(&hog(400, never)).unwrap();
    let others: Vec<_> = (0..200).map(|i| client.submit(&inc(i)).unwrap()).collect();
    let e = hog_future
        .result_timeout(Some(Duration::from_secs(120)))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("KilledWorker") && e.contains(&hog_future.key().to_string()),
        "{e}"
    );
    for (i, f) in others.iter().enumerate() {
        assert_eq!(f.result_timeout(Some(LONG)).unwrap(), i as i64 + 1);
    }
    // Each death was the worker leaving past 95% of its limit, and its nanny restarted it.
    let logs = format!("{}\n{}", w1.log(), w2.log());
    let exits = logs
        .matches("past distributed.worker.memory.terminate")
        .count();
    let restarts = logs
        .matches("passed its memory limit's terminate threshold")
        .count();
    assert_eq!(exits, 2, "{logs}");
    assert_eq!(restarts, 2, "{logs}");
    wait_until("both workers back", LONG, || {
        worker_names(&client) == ["w1", "w2"]
    });
    assert_eq!(client.submit(&inc(41)).unwrap().result().unwrap(), 42);
}

fn pause_at_80_percent_is_seen_by_the_scheduler_and_released() {
    let cluster = Cluster::start(&[]);
    let _w = cluster.worker(&["--nthreads", "2", "--memory-limit", "400MiB", "--name", "p"]);
    let client = cluster.client();
    client.wait_for_workers(1, LONG).unwrap();
    wait_until("the scheduler's metrics", LONG, || {
        cluster.workers_in_state("paused_or_retiring") == Some(0.0)
    });
    let release = temp_path("release");
    // 330 MiB of 400: past the pause threshold (320), under terminate (380).
    let held = client.submit(&hog(330, release.clone())).unwrap();
    // The worker says why in its log, which the scheduler keeps.
    let logged = |what: &str| {
        client
            .logs(Some("p"))
            .unwrap()
            .iter()
            .any(|l| l.contains(what))
    };
    wait_until("the worker's pause in its log", LONG, || {
        logged("pausing: process memory")
    });
    wait_until("the scheduler to see the pause", LONG, || {
        cluster.workers_in_state("paused_or_retiring") == Some(1.0)
    });
    // A task submitted now waits in the scheduler: the paused worker is given nothing.
    let waiting = client.submit(&inc(1)).unwrap();
    wait_until("the task to be queued", LONG, || {
        client
            .story(&waiting.key())
            .unwrap()
            .iter()
            .any(|l| l.contains("queued"))
    });
    let story = client.story(&waiting.key()).unwrap();
    assert!(!story.iter().any(|l| l.contains("processing")), "{story:?}");
    assert_eq!(waiting.status(), Status::Pending);
    // Memory drops: the worker resumes and runs it.
    std::fs::write(&release, b"go").unwrap();
    assert_eq!(held.result_timeout(Some(LONG)).unwrap(), 330);
    assert_eq!(waiting.result_timeout(Some(LONG)).unwrap(), 2);
    wait_until("the worker's resume in its log", LONG, || {
        logged("resuming: process memory")
    });
    wait_until("the scheduler to see the resume", LONG, || {
        cluster.workers_in_state("paused_or_retiring") == Some(0.0)
    });
    let _ = std::fs::remove_file(&release);
}

fn nworkers_starts_several_supervised_workers_that_stop_with_their_nanny() {
    let cluster = Cluster::start(&[]);
    let mut nanny = cluster.worker(&["--nworkers", "2", "--name", "n", "--memory-limit", "1GiB"]);
    let client = cluster.client();
    wait_until("two workers", LONG, || {
        worker_names(&client) == ["n-0", "n-1"]
    });
    let summary = client.summary().unwrap();
    assert!(
        summary.workers.iter().all(|w| w.memory_limit == 512 << 20),
        "the limit is divided: {:?}",
        summary.workers
    );
    let pids: std::collections::BTreeSet<i64> = (0..40)
        .map(|i| client.submit(&worker_pid(i)).unwrap())
        .collect::<Vec<_>>()
        .iter()
        .map(|f| f.result().unwrap())
        .collect();
    assert!(!pids.contains(&i64::from(nanny.child.id())));
    assert_eq!(nanny.terminate(), Some(0), "{}", nanny.log());
    wait_until("both workers gone", LONG, || {
        worker_names(&client).is_empty()
    });
}

fn lifetime_with_restart_gives_a_fresh_worker_and_without_it_the_nanny_exits() {
    let cluster = Cluster::start(&[]);
    let client = cluster.client();
    let restarting = cluster.worker(&["--name", "l", "--lifetime", "1s", "--lifetime-restart"]);
    restarting.wait_for_line("its lifetime of", LONG);
    restarting.wait_for_line(
        "restarting worker l in 0.0 s: it asked to be restarted",
        LONG,
    );
    restarting.wait_for_lines("connected to the scheduler", 2, LONG);
    wait_until("the fresh worker", LONG, || worker_names(&client) == ["l"]);
    drop(restarting);
    let mut ending = cluster.worker(&["--name", "e", "--lifetime", "1s"]);
    assert_eq!(ending.wait_exit(LONG), Some(0), "{}", ending.log());
    assert!(ending.log().contains("worker e stopped"));
    assert_eq!(ending.count("connected to the scheduler"), 1);
}

fn no_nanny_runs_the_worker_in_this_process_and_exits_past_terminate() {
    let cluster = Cluster::start(&[]);
    let client = cluster.client();
    let mut w = cluster.worker(&["--no-nanny", "--memory-limit", "200MiB", "--name", "solo"]);
    client.wait_for_workers(1, LONG).unwrap();
    let pid = client.submit(&worker_pid(0)).unwrap().result().unwrap();
    assert_eq!(pid, i64::from(w.child.id()));
    let _doomed = client.submit(&hog(300, temp_path("never2"))).unwrap();
    let code = w.wait_exit(LONG);
    assert_eq!(code, Some(oxidask::distributed::nanny::EXIT_MEMORY));
    assert!(w.log().contains("no nanny restarts it"), "{}", w.log());
}

fn client_restart_restarts_every_worker_and_cancels_every_future() {
    let cluster = Cluster::start(&[]);
    let w1 = cluster.worker(&["--nthreads", "1", "--name", "r1"]);
    let w2 = cluster.worker(&["--nthreads", "1", "--name", "r2"]);
    let client = cluster.client();
    client.wait_for_workers(2, LONG).unwrap();
    let pids_before: std::collections::BTreeSet<i64> = (0..20)
        .map(|i| client.submit(&worker_pid(i)).unwrap())
        .collect::<Vec<_>>()
        .iter()
        .map(|f| f.result().unwrap())
        .collect();
    let held = client.submit(&inc(1)).unwrap();
    assert_eq!(held.result().unwrap(), 2);
    let other = cluster.client();
    let elsewhere = other.submit(&hog(1, temp_path("never3"))).unwrap();
    wait_until("the other client's task to run", LONG, || {
        client
            .story(&elsewhere.key())
            .unwrap()
            .iter()
            .any(|l| l.contains("processing"))
    });
    client.restart(LONG).unwrap();
    assert_eq!(worker_names(&client), ["r1", "r2"]);
    assert_eq!(held.status(), Status::Cancelled);
    let e = held.result().unwrap_err().to_string();
    assert!(e.contains("cancelled"), "{e}");
    let e = elsewhere
        .result_timeout(Some(LONG))
        .unwrap_err()
        .to_string();
    assert!(e.contains("cancelled"), "another client's future too: {e}");
    for w in [&w1, &w2] {
        w.wait_for_line("it asked to be restarted", LONG);
    }
    // Fresh processes, and they compute.
    let f = client.submit(&worker_pid(100)).unwrap();
    let pid = f.result_timeout(Some(LONG)).unwrap();
    assert!(!pids_before.contains(&pid), "{pid} ran before the restart");
    assert_eq!(client.submit(&inc(1)).unwrap().result().unwrap(), 2);
    // A worker without a nanny does not come back: restart says so after its timeout.
    let solo = cluster.worker(&["--no-nanny", "--name", "solo"]);
    client.wait_for_workers(3, LONG).unwrap();
    let e = client
        .restart(Duration::from_secs(3))
        .unwrap_err()
        .to_string();
    assert!(e.contains("--no-nanny") && e.contains("come back"), "{e}");
    drop(solo);
}

const TESTS: &[Test] = &[
    (
        "a_worker_sigkilled_under_its_nanny_comes_back",
        a_worker_sigkilled_under_its_nanny_comes_back,
    ),
    (
        "a_task_past_the_memory_limit_restarts_its_workers_and_is_blamed_while_others_finish",
        a_task_past_the_memory_limit_restarts_its_workers_and_is_blamed_while_others_finish,
    ),
    (
        "pause_at_80_percent_is_seen_by_the_scheduler_and_released",
        pause_at_80_percent_is_seen_by_the_scheduler_and_released,
    ),
    (
        "nworkers_starts_several_supervised_workers_that_stop_with_their_nanny",
        nworkers_starts_several_supervised_workers_that_stop_with_their_nanny,
    ),
    (
        "lifetime_with_restart_gives_a_fresh_worker_and_without_it_the_nanny_exits",
        lifetime_with_restart_gives_a_fresh_worker_and_without_it_the_nanny_exits,
    ),
    (
        "client_restart_restarts_every_worker_and_cancels_every_future",
        client_restart_restarts_every_worker_and_cancels_every_future,
    ),
    (
        "no_nanny_runs_the_worker_in_this_process_and_exits_past_terminate",
        no_nanny_runs_the_worker_in_this_process_and_exits_past_terminate,
    ),
];

fn main() {
    oxidask::distributed::run_if_worker();
    run_tests(TESTS);
}
