//! P2P shuffles on a cluster of worker processes (this test binary started as workers:
//! `run_if_worker`, so they run its registered operations):
//!
//! 1. with a 64 KiB shuffle memory budget per worker, a shuffle of 32 partitions into 32
//!    completes by spilling shards to disk (a spill directory appears in the workers'
//!    temporary directory) and equals the task shuffle row for row and Polars;
//! 2. a worker SIGKILLed after the barrier ran, while unpacks take their shards, restarts
//!    the shuffle on the workers left, and the result is exact.

use std::sync::Arc;

use oxidask_client::{Client, LocalCluster};
use oxidask_core::compute::with_scheduler;
use oxidask_core::Collection;
use oxidask_dataframe::{self as dd, with_shuffle_method, DataFrame, ShuffleMethod};

#[path = "dataframe/common.rs"]
#[allow(dead_code)]
mod common;

use common::{assert_frames_eq, sample, sorted};

fn main() {
    oxidask_worker::run_if_worker();
    if let Ok(spec) = std::env::var("OXIDASK_P2P_MEASURE") {
        return measure(&spec);
    }
    spills_past_a_tiny_memory_budget();
    survives_a_worker_killed_mid_shuffle();
    println!("p2p_processes: 2 tests passed");
}

/// `OXIDASK_P2P_MEASURE=ROWS,PARTITIONS`: times a shuffle of PARTITIONS into PARTITIONS
/// partitions, P2P and tasks, on 2 worker processes of 2 threads, input and output held by
/// the workers (best of 3; a measurement, not a test).
fn measure(spec: &str) {
    let nums: Vec<usize> = spec.split(',').map(|s| s.trim().parse().unwrap()).collect();
    let (rows, n) = (nums[0], nums[1]);
    let cluster = LocalCluster::builder()
        .processes(true)
        .workers(2)
        .threads_per_worker(2)
        .start()
        .unwrap();
    let client = cluster.client().unwrap();
    with_scheduler(Arc::new(client), || {
        // The input held by the workers; the output persisted there (not gathered).
        let df = dd::from_polars(sample(rows, 3), n).persist().unwrap();
        assert_eq!(df.len().unwrap(), rows);
        for method in [ShuffleMethod::P2P, ShuffleMethod::Tasks] {
            let s = shuffled(&df, method, n);
            let tasks = s.graph().len() - df.graph().len();
            let mut best = f64::INFINITY;
            for _ in 0..3 {
                let t = std::time::Instant::now();
                // Persisted, then counted (waits for every partition).
                let out = s.persist().unwrap();
                assert_eq!(out.len().unwrap(), rows);
                best = best.min(t.elapsed().as_secs_f64());
                drop(out);
            }
            println!("{method:?}: {n}->{n} partitions, {rows} rows: {tasks} shuffle tasks, best of 3 {best:.3} s");
        }
    });
    cluster.close();
}

fn shuffled(df: &DataFrame, method: ShuffleMethod, m: usize) -> DataFrame {
    with_shuffle_method(method, || df.shuffle(["k", "g"], m))
}

fn spills_past_a_tiny_memory_budget() {
    let tmp = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::builder()
        .processes(true)
        .workers(2)
        .threads_per_worker(1)
        .worker_env(vec![
            (
                "OXIDASK_DISTRIBUTED__P2P__MEMORY_BUDGET".into(),
                "64KiB".into(),
            ),
            (
                "OXIDASK_TEMPORARY_DIRECTORY".into(),
                tmp.path().to_str().unwrap().into(),
            ),
        ])
        .start()
        .expect("a cluster of worker processes");
    let client = cluster.client().unwrap();
    let data = sample(40_000, 5);
    let df = dd::from_polars(data.clone(), 32);
    let (got, want) = with_scheduler(Arc::new(client.clone()), || {
        let p2p = shuffled(&df, ShuffleMethod::P2P, 32);
        assert_eq!(p2p.graph().len(), 32 + 32 + 1 + 32, "O(n + m) tasks");
        (
            p2p.compute().unwrap(),
            shuffled(&df, ShuffleMethod::Tasks, 32).compute().unwrap(),
        )
    });
    assert_frames_eq(&got, &want, "p2p under a 64 KiB budget vs tasks");
    assert_frames_eq(&sorted(&got), &sorted(&data), "p2p vs the input");
    // Shards went to disk: each worker's spill directory is made at its first spill.
    let spill_dirs: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("oxidask-p2p-"))
        .collect();
    assert_eq!(spill_dirs.len(), 2, "both workers spilled: {spill_dirs:?}");
    cluster.close();
}

fn survives_a_worker_killed_mid_shuffle() {
    let cluster = LocalCluster::builder()
        .processes(true)
        .workers(3)
        .threads_per_worker(1)
        .start()
        .expect("a cluster of worker processes");
    let client: Client = cluster.client().unwrap();
    let data = sample(60_000, 8);
    let df = dd::from_polars(data.clone(), 48);
    let sched = Arc::new(client.clone());
    let p2p = with_scheduler(sched.clone(), || shuffled(&df, ShuffleMethod::P2P, 48));
    let graph = p2p.graph();
    let barrier = *graph
        .keys()
        .iter()
        .find(|k| k.prefix_str().ends_with("-p2p-barrier"))
        .expect("a barrier task");
    let run = {
        let (p2p, sched) = (p2p.clone(), sched.clone());
        std::thread::spawn(move || with_scheduler(sched, || p2p.compute()))
    };
    // Wait for the barrier to run (every transfer stored its shards), then kill a worker
    // holding shards while unpacks take them.
    loop {
        let holders = client.who_has(&[barrier]).unwrap();
        if !holders[0].is_empty() {
            break;
        }
        assert!(
            !run.is_finished(),
            "the shuffle ended before its barrier was seen"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    assert!(!run.is_finished(), "the kill must land mid-shuffle");
    let pid = cluster.worker_pids()[0];
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let got = run
        .join()
        .unwrap()
        .expect("the shuffle restarts and completes");
    // The shuffle restarted: its barrier ran again.
    let story = client.story(&barrier).unwrap();
    let runs = story
        .iter()
        .filter(|l| l.contains("processing -> memory"))
        .count();
    assert!(runs >= 2, "the barrier ran {runs} time(s): {story:#?}");
    let want = with_scheduler(sched, || {
        shuffled(&df, ShuffleMethod::Tasks, 48).compute().unwrap()
    });
    assert_frames_eq(&got, &want, "p2p after a SIGKILL vs tasks");
    assert_frames_eq(
        &sorted(&got),
        &sorted(&data),
        "p2p after a SIGKILL vs the input",
    );
    cluster.close();
}
