//! Churn: workers SIGKILLed and replaced while a large tree reduction and a map run, with real
//! processes (the `oxidask` binary as the scheduler, this test binary as the workers, the test
//! process as the client). The results must come out exact: lost results are recomputed or
//! fetched from survivors, and no task is blamed (KilledWorker) for deaths it did not cause.
//!
//! Runs without libtest (`harness = false`). Two modes:
//! - test (default): a ~10k-task tree and a 4k-task map, a worker killed every 0.5 s;
//! - benchmark (`OXIDASK_CHURN_BENCH=1`): the sizes (a ~100k-task tree and a 20k-task
//!   map), a worker killed every 3 s, timed clean and then under churn; prints one
//!   `churn-bench {json}` line. `OXIDASK_CHURN_LEAVES`, `OXIDASK_CHURN_MAP`,
//!   `OXIDASK_CHURN_TASK_US` (each task's work, a sleep; 500 by default) and
//!   `OXIDASK_CHURN_EVERY_MS` override the sizes, the work and the kill interval;
//!   `OXIDASK_CHURN_MODE=clean|churn` runs one of the two (`both` by default);
//!   `OXIDASK_CHURN_LIMIT_S` is the time allowed (1800 s; the test: 300 s);
//!   `OXIDASK_CHURN_SCHEDULER` names the `oxidask` binary to run as the scheduler. Each run prints
//!   a `churn-bench {json}` line (seconds, kills, `task_runs`: task runs reported finished,
//!   which past the graph's own tasks is work redone); `both` adds a `churn-bench-summary`.

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oxidask::distributed::Client;
use oxidask::prelude::*;

mod common;
use common::*;

// ---- operations the workers run --------------------------------------------------------

// Each sleeps `micros` first: the work a real task would do, without burning the shared CPU.

#[oxidask::task]
fn leaf(x: i64, micros: u64) -> i64 {
    std::thread::sleep(Duration::from_micros(micros));
    x + 1
}

#[oxidask::task]
fn add(x: i64, y: i64, micros: u64) -> i64 {
    std::thread::sleep(Duration::from_micros(micros));
    x + y
}

#[oxidask::task]
fn square(x: i64, micros: u64) -> i64 {
    std::thread::sleep(Duration::from_micros(micros));
    x * x
}

// ---- real processes ------------------------------------------------------------------------

/// A scheduler and a changing set of workers (each with a unique name).
struct Cluster {
    _scheduler: Proc,
    address: String,
    workers: Mutex<Vec<Proc>>,
    started: AtomicUsize,
    nthreads: String,
}

impl Cluster {
    fn start(n_workers: usize, nthreads: usize) -> Arc<Cluster> {
        // OXIDASK_CHURN_SCHEDULER: another `oxidask` binary (a copy a rebuild cannot touch).
        let bin = std::env::var("OXIDASK_CHURN_SCHEDULER")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_oxidask").to_owned());
        let mut cmd = Command::new(bin);
        cmd.args(["scheduler", "--port", "0"]);
        let (scheduler, address) = start_scheduler(cmd);
        let c = Arc::new(Cluster {
            _scheduler: scheduler,
            address,
            workers: Mutex::new(Vec::new()),
            started: AtomicUsize::new(0),
            nthreads: nthreads.to_string(),
        });
        for _ in 0..n_workers {
            c.add_worker();
        }
        c
    }

    /// Starts a fresh worker (nanny off) and waits until it has joined.
    fn add_worker(&self) {
        let n = self.started.fetch_add(1, Ordering::SeqCst);
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "worker",
            &self.address,
            "--name",
            &format!("churn-{n}"),
            "--nthreads",
            &self.nthreads,
            "--heartbeat-ms",
            "200",
        ]);
        let p = Proc::spawn(cmd);
        p.wait_for_line("connected to the scheduler", Duration::from_secs(30));
        self.workers.lock().unwrap().push(p);
    }

    /// SIGKILLs worker `i` (modulo the number alive).
    fn kill_one(&self, i: usize) {
        let mut ws = self.workers.lock().unwrap();
        if ws.is_empty() {
            return;
        }
        let k = i % ws.len();
        let mut p = ws.remove(k);
        drop(ws);
        p.child.kill().unwrap(); // SIGKILL
        let _ = p.child.wait();
    }
}

/// Every `every`, SIGKILLs a random worker and starts a fresh one, until `stop`.
fn killer(cluster: Arc<Cluster>, every: Duration, stop: Arc<AtomicBool>) -> usize {
    // xorshift, seeded from the clock: which worker dies varies run to run.
    let mut s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut kills = 0;
    loop {
        let until = Instant::now() + every;
        while Instant::now() < until {
            if stop.load(Ordering::SeqCst) {
                return kills;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        cluster.kill_one(s as usize);
        kills += 1;
        cluster.add_worker();
    }
}

/// A pairwise tree reduction over `leaves` leaves: about `2 * leaves` tasks.
fn tree(leaves: i64, micros: u64) -> Delayed<i64> {
    let mut level: Vec<Delayed<i64>> = (0..leaves).map(|i| leaf(i, micros)).collect();
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(2));
        let mut it = level.into_iter();
        while let Some(a) = it.next() {
            next.push(match it.next() {
                Some(b) => add(a, b, micros),
                None => a,
            });
        }
        level = next;
    }
    level.pop().unwrap()
}

struct Run {
    seconds: f64,
    kills: usize,
    /// Task runs reported finished (each task once in a clean run).
    executed: usize,
}

/// Submits the tree and the map together on a fresh cluster, with a worker killed every
/// `every` if given, and checks both results exactly.
fn run(leaves: i64, map: i64, micros: u64, every: Option<Duration>) -> Run {
    let cluster = Cluster::start(2, 1);
    let client = Client::connect(&cluster.address).expect("connect");
    let stop = Arc::new(AtomicBool::new(false));
    let killer = every.map(|every| {
        let (c, s) = (cluster.clone(), stop.clone());
        std::thread::spawn(move || killer(c, every, s))
    });
    // Every task run reported finished is one compute record of the task stream: past the
    // graph's own tasks, the work redone because results (or running tasks) were lost. The
    // stream is a bounded ring: it is read as it goes.
    let counter = {
        let (c, s) = (client.clone(), stop.clone());
        std::thread::spawn(move || {
            let (mut cursor, mut computes) = (0, 0);
            loop {
                let last = s.load(Ordering::SeqCst);
                if last {
                    // Workers report activity in batches: let the last ones arrive.
                    std::thread::sleep(Duration::from_secs(1));
                }
                while let Ok((records, next)) = c.task_stream(cursor) {
                    if records.is_empty() {
                        break;
                    }
                    computes += records
                        .iter()
                        .filter(|r| matches!(r.kind, oxidask_protocol::ActivityKind::Compute))
                        .count();
                    cursor = next;
                }
                if last {
                    return computes;
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        })
    };
    let start = Instant::now();
    let z = tree(leaves, micros);
    let total = client.submit(&z).expect("submit the tree");
    let squares = client
        .map(0..map, |i| square(i, micros))
        .expect("submit the map");
    let got_squares = client.gather(&squares);
    let got_total = total.result();
    let seconds = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    let executed = counter.join().unwrap();
    let kills = killer.map_or(0, |k| k.join().unwrap());
    let got_total =
        got_total.unwrap_or_else(|e| panic!("the tree failed after {kills} kills: {e}"));
    let got_squares =
        got_squares.unwrap_or_else(|e| panic!("the map failed after {kills} kills: {e}"));
    assert_eq!(got_total, (1..=leaves).sum::<i64>(), "the tree's sum");
    let want: Vec<i64> = (0..map).map(|i| i * i).collect();
    assert_eq!(got_squares, want, "the map's values");
    Run {
        seconds,
        kills,
        executed,
    }
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().map_or(default, |v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v:?}: expected a whole number"))
    })
}

fn main() {
    oxidask::distributed::run_if_worker();
    let bench = std::env::var_os("OXIDASK_CHURN_BENCH").is_some();
    let (leaves, map, micros, every_ms) = if bench {
        (50_000, 20_000, 500, 3_000)
    } else {
        (5_000, 4_000, 500, 500)
    };
    let leaves = env_num("OXIDASK_CHURN_LEAVES", leaves) as i64;
    let map = env_num("OXIDASK_CHURN_MAP", map) as i64;
    let micros = env_num("OXIDASK_CHURN_TASK_US", micros);
    let every = Duration::from_millis(env_num("OXIDASK_CHURN_EVERY_MS", every_ms));
    let tasks = 2 * leaves - 1 + map;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = std::panic::catch_unwind(|| {
            if bench {
                let line = |mode: &str, r: &Run| {
                    println!(
                        "churn-bench {{\"mode\": \"{mode}\", \"tasks\": {tasks}, \"workers\": 2, \"task_us\": {micros}, \"kill_every_s\": {:.3}, \"seconds\": {:.3}, \"kills\": {}, \"task_runs\": {}, \"tree_sum\": {}, \"map_sum\": {}}}",
                        every.as_secs_f64(),
                        r.seconds,
                        r.kills,
                        r.executed,
                        (1..=leaves).sum::<i64>(),
                        (0..map).map(|i| i * i).sum::<i64>()
                    )
                };
                let mode = std::env::var("OXIDASK_CHURN_MODE").unwrap_or_else(|_| "both".into());
                let clean = matches!(mode.as_str(), "both" | "clean")
                    .then(|| run(leaves, map, micros, None));
                let churn = matches!(mode.as_str(), "both" | "churn")
                    .then(|| run(leaves, map, micros, Some(every)));
                if let Some(r) = &clean {
                    line("clean", r);
                }
                if let Some(r) = &churn {
                    line("churn", r);
                }
                match (clean, churn) {
                    (Some(clean), Some(churn)) => println!(
                        "churn-bench-summary {{\"tasks\": {tasks}, \"kill_every_s\": {:.3}, \"clean_s\": {:.3}, \"churn_s\": {:.3}, \"kills\": {}, \"ratio\": {:.3}, \"redone\": {}}}",
                        every.as_secs_f64(),
                        clean.seconds,
                        churn.seconds,
                        churn.kills,
                        churn.seconds / clean.seconds,
                        churn.executed.saturating_sub(clean.executed)
                    ),
                    (None, None) => panic!(
                        "OXIDASK_CHURN_MODE={mode:?}: expected clean, churn or both"
                    ),
                    _ => {}
                }
            } else {
                let churn = run(leaves, map, micros, Some(every));
                println!(
                    "churn: {tasks} tasks exact after {} kills in {:.2}s ({} task runs)",
                    churn.kills, churn.seconds, churn.executed
                );
            }
        });
        let _ = tx.send(r.is_ok());
    });
    let limit = env_num("OXIDASK_CHURN_LIMIT_S", if bench { 1800 } else { 300 });
    let ok = rx
        .recv_timeout(Duration::from_secs(limit))
        .unwrap_or_else(|_| {
            eprintln!("churn did not converge within {limit} s");
            false
        });
    kill_all();
    println!(
        "test churn_converges_with_exact_results ... {}",
        if ok { "ok" } else { "FAILED" }
    );
    if !ok {
        std::process::exit(1);
    }
    println!("test result: ok");
}
