//! A journalled scheduler SIGKILLed mid-graph and restarted resumes it, with real processes
//! (the `oxidask` binary as the scheduler, this test binary as the two workers, the test
//! process as the client): the workers reconnect and report what they hold, the graph
//! finishes with the exact result, and no task whose run had finished before the kill runs
//! again. The client reconnects by itself and its future completes. Each task counts its
//! runs with a file in a shared directory (written when its work is done), so a rerun shows
//! up as a second file.
//!
//! Runs without libtest (`harness = false`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use oxidask::distributed::Client;
use oxidask::prelude::*;

mod common;
use common::*;

// ---- operations the workers run --------------------------------------------------------

static RUNS: AtomicU64 = AtomicU64::new(0);

/// Notes one finished run of the task `label` in `dir`.
fn mark(dir: &str, label: &str) {
    let n = RUNS.fetch_add(1, Ordering::SeqCst);
    let name = format!("{label}.{}.{n}", std::process::id());
    std::fs::write(Path::new(dir).join(name), b"").expect("a run marker");
}

#[oxidask::task]
fn leaf(i: i64, dir: String) -> i64 {
    std::thread::sleep(Duration::from_millis(1));
    mark(&dir, &format!("leaf-{i}"));
    i
}

#[oxidask::task]
fn slow(a: i64, b: i64, c: i64, d: i64, j: i64, dir: String) -> i64 {
    std::thread::sleep(Duration::from_millis(40));
    mark(&dir, &format!("slow-{j}"));
    a + b + c + d
}

#[oxidask::task]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

// ---- real processes ------------------------------------------------------------------------

fn scheduler(port: u16, journal: &Path) -> Proc {
    let mut cmd = scheduler_command(port);
    cmd.arg("--journal").arg(journal);
    start_scheduler(cmd).0
}

fn worker(address: &str, name: &str) -> Proc {
    let mut cmd = worker_command(address);
    cmd.args(["--name", name, "--nthreads", "2", "--death-timeout", "60s"]);
    let p = Proc::spawn(cmd);
    p.wait_for_line("connected to the scheduler", Duration::from_secs(30));
    p
}

/// Finished runs per task label.
fn runs(dir: &Path) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        let label = name.split('.').next().unwrap().to_owned();
        *m.entry(label).or_default() += 1;
    }
    m
}

const LEAVES: i64 = 1600;

/// 1600 quick leaves, 400 slow tasks of 4 leaves each, a pairwise sum of those.
fn graph(dir: &str) -> Delayed<i64> {
    let leaves: Vec<Delayed<i64>> = (0..LEAVES).map(|i| leaf(i, dir.to_owned())).collect();
    let mut level: Vec<Delayed<i64>> = leaves
        .chunks(4)
        .enumerate()
        .map(|(j, c)| {
            slow(
                c[0].clone(),
                c[1].clone(),
                c[2].clone(),
                c[3].clone(),
                j as i64,
                dir.to_owned(),
            )
        })
        .collect();
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(2));
        let mut it = level.into_iter();
        while let Some(a) = it.next() {
            next.push(match it.next() {
                Some(b) => add(a, b),
                None => a,
            });
        }
        level = next;
    }
    level.pop().unwrap()
}

fn run() {
    let base = std::env::temp_dir().join(format!("oxidask-journal-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let journal: PathBuf = base.join("journal");
    let marks: PathBuf = base.join("runs");
    std::fs::create_dir_all(&marks).unwrap();
    let dir = marks.to_string_lossy().into_owned();
    let port = free_port();
    let address = format!("tcp://127.0.0.1:{port}");

    let mut sched = scheduler(port, &journal);
    let _w0 = worker(&address, "journal-0");
    let _w1 = worker(&address, "journal-1");
    let client = Client::connect(&address).expect("connect");
    let z = graph(&dir);
    let total = client.submit(&z).expect("submit");

    // Kill the scheduler once a quarter of the slow tasks are done.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let r = runs(&marks);
        let slow_done = r.keys().filter(|k| k.starts_with("slow-")).count();
        if slow_done >= 100 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the graph did not progress: {r:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    sched.child.kill().unwrap(); // SIGKILL
    let _ = sched.child.wait();
    let before = runs(&marks);
    let slow_before = before.keys().filter(|k| k.starts_with("slow-")).count();
    assert!(
        slow_before < 400,
        "killed before the slow stage ended ({slow_before} of 400 done)"
    );
    drop(sched);

    // Same journal, same port: the workers come back by themselves.
    let sched = scheduler(port, &journal);
    sched.wait_for_line("records replayed", Duration::from_secs(10));
    let resumed = sched.wait_for_line("resuming with the workers", Duration::from_secs(30));
    assert!(!resumed.contains("not back"), "{resumed}");

    // The same client reconnects by itself and its future completes.
    let got = total
        .result()
        .expect("the client's future, after it reconnected to the restarted scheduler");
    assert_eq!(got, (0..LEAVES).sum::<i64>(), "the exact sum");
    // A new client asking for the same graph gets the same result without running it again.
    let client2 = Client::connect(&address).expect("connect a second client");
    let again = client2.submit(&z).expect("submit again");
    assert_eq!(again.result().expect("the second client's result"), got);
    drop(client);

    let after = runs(&marks);
    let rerun: Vec<(&String, &usize)> = before
        .keys()
        .filter_map(|k| after.get_key_value(k))
        .filter(|(_, n)| **n > 1)
        .collect();
    assert!(
        rerun.is_empty(),
        "tasks that had finished before the kill ran again: {rerun:?}"
    );
    for i in 0..LEAVES {
        assert!(after.contains_key(&format!("leaf-{i}")), "leaf-{i} ran");
    }
    let total_runs: usize = after.values().sum();
    println!(
        "journal: killed with {} of {} runs finished ({slow_before} of 400 slow tasks); {} runs in all, none of the finished ones again",
        before.values().sum::<usize>(),
        LEAVES + 400,
        total_runs
    );
    let _ = std::fs::remove_dir_all(&base);
}

fn main() {
    oxidask::distributed::run_if_worker();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = std::panic::catch_unwind(run);
        let _ = tx.send(r.is_ok());
    });
    let ok = rx
        .recv_timeout(Duration::from_secs(240))
        .unwrap_or_else(|_| {
            eprintln!("the journal test did not finish within 240 s");
            false
        });
    kill_all();
    println!(
        "test sigkilled_journalled_scheduler_resumes_exactly ... {}",
        if ok { "ok" } else { "FAILED" }
    );
    if !ok {
        std::process::exit(1);
    }
    println!("test result: ok");
}
