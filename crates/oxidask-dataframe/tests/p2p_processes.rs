//! P2P shuffles on a cluster of worker processes (this test binary started as workers:
//! `run_if_worker`, so they run its registered operations):
//!
//! 1. with a 64 KiB shuffle memory budget per worker, a shuffle of 32 partitions into 32
//!    completes by spilling shards to disk (a spill directory appears in the workers'
//!    temporary directory) and equals the task shuffle row for row and Polars;
//! 2. a worker SIGKILLed after the barrier ran, while unpacks take their shards, restarts
//!    the shuffle on the workers left, and the result is exact;
//! 3. a worker holding transfers' shards SIGKILLed during the transfer phase (the last
//!    input held back by a gate until the kill): its transfers run again elsewhere and the
//!    result is exact;
//! 4. on workers with a small memory limit and no shuffle budget set, shards spill (the
//!    budget follows the limit) and the result is exact;
//! 5. the shards of outputs never asked for go when the shuffle is released: computing one
//!    output partition leaves no spill file behind once the barrier is freed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use oxidask_client::{Client, LocalCluster};
use oxidask_core::compute::with_scheduler;
use oxidask_core::Collection;
use oxidask_dataframe::polars::prelude as pl;
use oxidask_dataframe::{self as dd, with_shuffle_method, DataFrame, Partition, ShuffleMethod};

#[path = "dataframe/common.rs"]
#[allow(dead_code)]
mod common;

use common::{assert_frames_eq, sample, sorted};

/// The longest a test may take (each takes seconds; a hang fails the run past this).
const TEST_LIMIT: Duration = Duration::from_secs(300);

fn main() {
    oxidask_worker::run_if_worker();
    if let Ok(spec) = std::env::var("OXIDASK_P2P_MEASURE") {
        return measure(&spec);
    }
    // `OXIDASK_P2P_ONLY=NAME` runs the tests whose names contain NAME.
    let only = std::env::var("OXIDASK_P2P_ONLY").unwrap_or_default();
    let tests: [(&str, fn()); 5] = [
        (
            "spills_past_a_tiny_memory_budget",
            spills_past_a_tiny_memory_budget,
        ),
        (
            "survives_a_worker_killed_mid_shuffle",
            survives_a_worker_killed_mid_shuffle,
        ),
        (
            "survives_a_worker_killed_during_the_transfer_phase",
            survives_a_worker_killed_during_the_transfer_phase,
        ),
        (
            "completes_on_memory_starved_workers_by_spilling",
            completes_on_memory_starved_workers_by_spilling,
        ),
        (
            "shards_of_outputs_never_asked_for_go_when_the_shuffle_is_released",
            shards_of_outputs_never_asked_for_go_when_the_shuffle_is_released,
        ),
    ];
    let mut ran = 0;
    for (name, test) in tests {
        if name.contains(&only) {
            let t = Instant::now();
            // On its own thread with a time limit: a hang fails the run instead of stalling
            // CI (the worker processes, their scheduler gone with this process, then exit).
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = tx.send(std::panic::catch_unwind(test).is_ok());
            });
            match rx.recv_timeout(TEST_LIMIT) {
                Ok(true) => println!("{name}: ok ({:.1} s)", t.elapsed().as_secs_f64()),
                Ok(false) => {
                    println!("{name}: FAILED");
                    std::process::exit(1);
                }
                Err(_) => {
                    println!("{name}: FAILED: did not finish within {TEST_LIMIT:?}");
                    std::process::exit(1);
                }
            }
            ran += 1;
        }
    }
    println!("p2p_processes: {ran} tests passed");
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

/// Waits for `cond` (polling), failing with `what` after a minute: the tests wait for
/// conditions, never for a fixed time.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Env var naming the gate file [`gate`] waits for.
const GATE_ENV: &str = "OXIDASK_P2P_TEST_GATE";

/// Passes a partition through; one with a `gate` value of 1 waits until the file named by
/// `OXIDASK_P2P_TEST_GATE` exists (and writes its process id next to it first, so the
/// test knows which worker it holds).
#[oxidask_core::task(crate = oxidask_core)]
fn gate(part: &Partition) -> Partition {
    let gated = part.0.column("gate").ok().and_then(|c| {
        c.i64()
            .ok()
            .map(|c| (0..c.len()).any(|i| c.get(i) == Some(1)))
    }) == Some(true);
    if gated {
        if let Ok(path) = std::env::var(GATE_ENV) {
            let path = std::path::PathBuf::from(path);
            // Written aside and renamed: the test reads the file as soon as it exists (a
            // plain write let it read an empty file once).
            let pid = path.with_extension("pid");
            let aside = path.with_extension("pid.partial");
            let _ = std::fs::write(&aside, std::process::id().to_string());
            let _ = std::fs::rename(&aside, &pid);
            while !path.exists() {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
    part.clone()
}

/// The TCP ports process `pid` listens on (its sockets in /proc/PID/fd matched with the
/// listening entries of /proc/net/tcp{,6}).
fn listening_ports(pid: u32) -> Vec<u16> {
    let mut inodes = std::collections::HashSet::new();
    if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                let t = target.to_string_lossy().into_owned();
                if let Some(n) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                    inodes.insert(n.to_owned());
                }
            }
        }
    }
    let mut ports = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address is f[1] ("ADDR:PORT" in hex), st is f[3] (0A: listening),
            // inode is f[9].
            if f.len() > 9 && f[3] == "0A" && inodes.contains(f[9]) {
                if let Some(port) = f[1].rsplit(':').next() {
                    if let Ok(p) = u16::from_str_radix(port, 16) {
                        ports.push(p);
                    }
                }
            }
        }
    }
    ports
}

/// `pid` and its descendants (a worker process started by the cluster is a nanny whose
/// child is the worker).
fn family(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) {
            for t in tasks.flatten() {
                if let Ok(c) = std::fs::read_to_string(t.path().join("children")) {
                    out.extend(c.split_whitespace().filter_map(|x| x.parse::<u32>().ok()));
                }
            }
        }
        i += 1;
    }
    out
}

fn port_of(address: &str) -> u16 {
    address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {address}"))
}

fn survives_a_worker_killed_during_the_transfer_phase() {
    let tmp = tempfile::tempdir().unwrap();
    let gate_file = tmp.path().join("open");
    let cluster = LocalCluster::builder()
        .processes(true)
        .workers(3)
        .threads_per_worker(1)
        .worker_env(vec![(GATE_ENV.into(), gate_file.to_str().unwrap().into())])
        .start()
        .expect("a cluster of worker processes");
    let client: Client = cluster.client().unwrap();
    let n = 24;
    let mut data = sample(30_000, 9);
    let rows = data.height();
    let mut g = vec![0i64; rows];
    g[rows - 1] = 1;
    data.with_column(pl::Column::new("gate".into(), g)).unwrap();
    // The last input partition (holding the gated row) waits at the gate: the barrier
    // cannot run until it opens.
    let df =
        dd::from_polars(data.clone(), n).map_partitions(gate::op(), data.schema().as_ref().clone());
    let sched = Arc::new(client.clone());
    let p2p = with_scheduler(sched.clone(), || shuffled(&df, ShuffleMethod::P2P, n));
    let graph = p2p.graph();
    let keys = graph.keys();
    let transfers: Vec<oxidask_core::Key> = keys
        .iter()
        .filter(|k| k.prefix_str().ends_with("-p2p-transfer"))
        .copied()
        .collect();
    assert_eq!(transfers.len(), n);
    let barrier = *keys
        .iter()
        .find(|k| k.prefix_str().ends_with("-p2p-barrier"))
        .expect("a barrier task");
    let run = {
        let (p2p, sched) = (p2p.clone(), sched.clone());
        std::thread::spawn(move || with_scheduler(sched, || p2p.compute()))
    };
    // The gated partition started (its worker is held there; tasks queued behind it on
    // that worker wait too).
    let gated_pid: u32 = {
        let pid_file = gate_file.with_extension("pid");
        wait_for("the gated partition to start", || pid_file.exists());
        std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let gated_ports = listening_ports(gated_pid);
    // Some transfer stored its shards on another worker: kill that worker. Its shards go
    // before any barrier saw them (the barrier cannot run before the gate opens).
    let mut held = Vec::new();
    wait_for("a transfer held by a worker not at the gate", || {
        held = client.who_has(&transfers).unwrap();
        held.iter()
            .flatten()
            .any(|a| !gated_ports.contains(&port_of(a)))
    });
    assert!(client.who_has(&[barrier]).unwrap()[0].is_empty());
    let ports: Vec<u16> = held
        .iter()
        .flatten()
        .map(|a| port_of(a))
        .filter(|p| !gated_ports.contains(p))
        .collect();
    // The process listening on that transfer's holder's port (a nanny's child).
    let processes: Vec<u32> = cluster.worker_pids().into_iter().flat_map(family).collect();
    let victim = processes
        .iter()
        .copied()
        .filter(|&p| p != gated_pid)
        .find(|&p| listening_ports(p).iter().any(|lp| ports.contains(lp)))
        .unwrap_or_else(|| panic!("no worker process listens on {ports:?}: {processes:?}"));
    let victim_ports = listening_ports(victim);
    let lost: Vec<oxidask_core::Key> = transfers
        .iter()
        .zip(&held)
        .filter(|(_, h)| h.iter().any(|a| victim_ports.contains(&port_of(a))))
        .map(|(k, _)| *k)
        .collect();
    assert!(!lost.is_empty());
    let killed = std::process::Command::new("kill")
        .args(["-9", &victim.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    wait_for("the scheduler to see the worker gone", || {
        !client
            .summary()
            .unwrap()
            .workers
            .iter()
            .any(|w| victim_ports.contains(&port_of(&w.address)))
    });
    assert!(!run.is_finished(), "the shuffle waits at the gate");
    std::fs::write(&gate_file, b"").unwrap();
    let got = run
        .join()
        .unwrap()
        .expect("the shuffle completes without the killed worker");
    // The killed worker's transfers ran again.
    for k in &lost {
        let story = client.story(k).unwrap();
        let runs = story
            .iter()
            .filter(|l| l.contains("processing -> memory"))
            .count();
        assert!(runs >= 2, "transfer {k} ran {runs} time(s): {story:#?}");
    }
    let want = with_scheduler(sched, || {
        shuffled(&df, ShuffleMethod::Tasks, n).compute().unwrap()
    });
    assert_frames_eq(
        &got,
        &want,
        "p2p after a SIGKILL in the transfer phase vs tasks",
    );
    assert_frames_eq(
        &sorted(&got),
        &sorted(&data),
        "p2p after a SIGKILL in the transfer phase vs the input",
    );
    cluster.close();
}

/// Spill directories of P2P shards under `dir`, and the shard files in them.
fn shard_files(dir: &std::path::Path) -> (usize, usize) {
    let mut dirs = 0;
    let mut files = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_name().to_string_lossy().starts_with("oxidask-p2p-") {
            dirs += 1;
            files += std::fs::read_dir(e.path()).map(|d| d.count()).unwrap_or(0);
        }
    }
    (dirs, files)
}

/// Memory limit of the memory-starved workers: their shard budget is an eighth of it.
const STARVED_LIMIT: u64 = 256 << 20;

fn completes_on_memory_starved_workers_by_spilling() {
    let tmp = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::builder()
        .processes(true)
        .workers(2)
        .threads_per_worker(1)
        .memory_limit(STARVED_LIMIT)
        .worker_env(vec![(
            "OXIDASK_TEMPORARY_DIRECTORY".into(),
            tmp.path().to_str().unwrap().into(),
        )])
        .start()
        .expect("a cluster of worker processes");
    let client = cluster.client().unwrap();
    // About 80 MB as Arrow IPC: more than the two workers' shard budgets (32 MiB each),
    // and with the input and output partitions near the workers' memory targets.
    let data = sample(1_600_000, 11);
    let df = dd::from_polars(data.clone(), 16);
    let got = with_scheduler(Arc::new(client.clone()), || {
        shuffled(&df, ShuffleMethod::P2P, 16).compute().unwrap()
    });
    // The oracle on the threaded scheduler (sparing the starved workers).
    let want = shuffled(&df, ShuffleMethod::Tasks, 16).compute().unwrap();
    assert_frames_eq(&got, &want, "p2p on memory-starved workers vs tasks");
    assert_frames_eq(
        &sorted(&got),
        &sorted(&data),
        "p2p on memory-starved workers vs the input",
    );
    let (dirs, _) = shard_files(tmp.path());
    assert!(
        dirs >= 1,
        "shards spilled past the budget the memory limit sets"
    );
    assert_eq!(
        client.summary().unwrap().workers.len(),
        2,
        "no worker was lost"
    );
    cluster.close();
}

fn shards_of_outputs_never_asked_for_go_when_the_shuffle_is_released() {
    let tmp = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::builder()
        .processes(true)
        .workers(2)
        .threads_per_worker(1)
        .worker_env(vec![
            (
                "OXIDASK_DISTRIBUTED__P2P__MEMORY_BUDGET".into(),
                "1KiB".into(),
            ),
            (
                "OXIDASK_TEMPORARY_DIRECTORY".into(),
                tmp.path().to_str().unwrap().into(),
            ),
        ])
        .start()
        .expect("a cluster of worker processes");
    let client = cluster.client().unwrap();
    let data = sample(20_000, 12);
    let df = dd::from_polars(data, 16);
    let (got, want) = with_scheduler(Arc::new(client.clone()), || {
        (
            shuffled(&df, ShuffleMethod::P2P, 16)
                .partitions([3])
                .compute()
                .unwrap(),
            shuffled(&df, ShuffleMethod::Tasks, 16)
                .partitions([3])
                .compute()
                .unwrap(),
        )
    });
    assert_frames_eq(&got, &want, "one output partition, p2p vs tasks");
    let (dirs, _) = shard_files(tmp.path());
    assert_eq!(dirs, 2, "both workers spilled shards");
    // The other 15 outputs' shards were never taken: they go when the barrier is freed.
    wait_for(
        "the shards of outputs never asked for to be dropped",
        || shard_files(tmp.path()).1 == 0,
    );
    cluster.close();
}
