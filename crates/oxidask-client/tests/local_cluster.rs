//! LocalCluster with in-process workers: the client API against a real scheduler and workers
//! on loopback, in one process.

use std::time::Duration;

use oxidask_client::{Client, LocalCluster, ReturnWhen, Status};
use oxidask_core::{Collection, Delayed};
// Links the threaded scheduler: the default `compute()` falls back to without a client.
use oxidask_local as _;

#[oxidask_core::task(crate = oxidask_core)]
fn inc(x: i64) -> i64 {
    x + 1
}

#[oxidask_core::task(crate = oxidask_core)]
fn nap(x: i64, millis: u64) -> i64 {
    std::thread::sleep(Duration::from_millis(millis));
    x
}

fn cluster() -> (LocalCluster, Client) {
    cluster_of(2)
}

/// `workers` workers of one thread each, and a client that is not the default.
fn cluster_of(workers: usize) -> (LocalCluster, Client) {
    let cluster = LocalCluster::builder()
        .workers(workers)
        .threads_per_worker(1)
        .start()
        .unwrap();
    // Only the first test below makes its client the default (tests share the process).
    let client = Client::builder()
        .address(cluster.address())
        .set_as_default(false)
        .connect()
        .unwrap();
    (cluster, client)
}

#[test]
fn the_local_scheduler_is_the_default_again_once_the_client_is_gone() {
    let cluster = LocalCluster::builder().workers(1).start().unwrap();
    let client = cluster.client().unwrap();
    let d: Delayed<i64> = inc(41);
    assert_eq!(d.compute().unwrap(), 42);
    let closure = d.map(|x| x * 2);
    let e = closure.compute().unwrap_err().to_string();
    assert!(
        e.contains("closure"),
        "on the cluster closures are refused: {e}"
    );
    drop(client);
    drop(cluster);
    assert_eq!(
        closure.compute().unwrap(),
        84,
        "back on the threaded scheduler"
    );
}

#[test]
fn futures_report_status_and_release_on_drop() {
    let (_cluster, client) = cluster();
    let f = client.submit(&nap(7, 300)).unwrap();
    assert_eq!(f.status(), Status::Pending);
    let r = client.wait(
        std::slice::from_ref(&f),
        Some(Duration::from_millis(20)),
        ReturnWhen::AllCompleted,
    );
    assert!(r.is_err(), "timed out");
    assert_eq!(f.wait(None).unwrap(), Status::Finished);
    assert_eq!(f.result().unwrap(), 7);
    let g = f.clone();
    drop(f);
    assert_eq!(g.result().unwrap(), 7, "a clone keeps the result alive");
    drop(g);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while client.summary().unwrap().tasks != 0 {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_future_asked_for_the_wrong_type_says_so() {
    let (_cluster, client) = cluster();
    let f = client.submit(&inc(1)).unwrap();
    f.wait(None).unwrap();
    let wrong: oxidask_client::Future<String> = {
        // Re-wrap the same key with another type, as a bug in user code might.
        let futures: Vec<oxidask_client::Future<String>> = client
            .map([()], |_| {
                Delayed::from_task(f.key(), inc(1).task().clone(), [])
            })
            .unwrap();
        futures.into_iter().next().unwrap()
    };
    let e = wrong.result().unwrap_err().to_string();
    assert!(e.contains("has type `i64`") && e.contains("String"), "{e}");
}

#[tokio::test(flavor = "current_thread")]
async fn results_can_be_awaited() {
    let (_cluster, client) = cluster();
    let f = client.submit(&nap(5, 50)).unwrap();
    assert_eq!(f.result_async().await.unwrap(), 5);
}

#[oxidask_core::task(crate = oxidask_core)]
fn block(i: i64) -> Vec<i64> {
    (0..12_500).map(|j| i * 100_000 + j).collect()
}

#[test]
fn results_beyond_the_memory_target_spill_to_disk_and_come_back() {
    // One worker, 1 MiB limit: spilling starts past 600 KiB; 40 results of 100 KB each.
    let cluster = LocalCluster::builder()
        .workers(1)
        .threads_per_worker(1)
        .memory_limit(1 << 20)
        .start()
        .unwrap();
    let client = Client::builder()
        .address(cluster.address())
        .set_as_default(false)
        .connect()
        .unwrap();
    let futures = client.map(0..40i64, block).unwrap();
    client
        .wait(&futures, None, ReturnWhen::AllCompleted)
        .unwrap();
    let worker = &cluster.workers()[0];
    let (on_disk, ever) = worker.spilled();
    assert!(
        on_disk > 0 && ever >= on_disk,
        "spilled: {on_disk} now, {ever} ever"
    );
    assert!(worker.memory() <= 1 << 20, "in memory: {}", worker.memory());
    // Every value reads back intact (from disk where it was spilled).
    let values: Vec<Vec<i64>> = client.gather(&futures).unwrap();
    for (i, v) in values.iter().enumerate() {
        assert_eq!(v.len(), 12_500);
        assert_eq!(v[7], i as i64 * 100_000 + 7);
    }
    // A task reading spilled inputs works too.
    let total = client
        .submit(&sum_firsts(&futures))
        .unwrap()
        .result()
        .unwrap();
    assert_eq!(total, (0..40i64).map(|i| i * 100_000).sum::<i64>());
    // Released results leave the disk.
    drop(futures);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while worker.spilled().0 > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "spill files were not removed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[oxidask_core::task(crate = oxidask_core)]
fn sum_firsts(blocks: &[Vec<i64>]) -> i64 {
    blocks.iter().map(|b| b[0]).sum()
}

#[oxidask_core::task(crate = oxidask_core)]
fn add_all(xs: &[i64]) -> i64 {
    xs.iter().sum()
}

#[test]
fn a_performance_report_records_the_run_and_writes_one_page() {
    let (_cluster, client) = cluster();
    let before = client.map(0..5i64, |i| inc(i + 100)).unwrap();
    client.gather(&before).unwrap();
    let recording = client.performance_report().unwrap().title("twenty naps");
    let naps = client.map(0..20i64, |i| nap(i, 30)).unwrap();
    // One task needs all of them: the ones on the other worker are transferred.
    let sum = client.submit(&add_all(&naps[..])).unwrap();
    assert_eq!(sum.result().unwrap(), (0..20).sum::<i64>());
    std::thread::sleep(Duration::from_millis(600));
    let dir = std::env::temp_dir().join(format!("oxidask-report-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("report.html");
    let report = recording.save(&path).unwrap();

    // Only this run: the five `inc` tasks before it are not in it.
    let times = report.prefix_times();
    let names: Vec<&str> = times.iter().map(|p| p.prefix.as_str()).collect();
    assert_eq!(names, ["nap", "add_all"], "{times:?}");
    assert_eq!(times[0].tasks, 20);
    assert!(times[0].seconds >= 20.0 * 0.030, "{times:?}");
    assert_eq!(report.workers.len(), 2);
    let workers_used: std::collections::BTreeSet<&str> =
        report.stream.iter().map(|r| r.worker.as_str()).collect();
    assert_eq!(workers_used.len(), 2, "both workers ran naps");
    let transfers = report.transfers();
    assert_eq!(
        transfers.len(),
        1,
        "into the worker running add_all: {transfers:?}"
    );
    assert!(transfers.values().all(|m| m.count >= 1 && m.bytes > 0));
    // Sampled at the start, four times a second for the ≥ 0.9 s of the run, at the end.
    assert!(report.stop_ms - report.start_ms >= 900.0);
    assert!(report.memory.len() >= 4, "{} samples", report.memory.len());
    assert_eq!(report.lost, 0);

    let html = std::fs::read_to_string(&path).unwrap();
    assert!(html.starts_with("<!doctype html>") && html.contains("twenty naps"));
    assert!(html.contains(&sum.key().to_string()));
    std::fs::remove_dir_all(&dir).unwrap();

    // A path that cannot be written says which and why, and loses the recording only.
    let again = client.performance_report().unwrap();
    let e = again
        .save(dir.join("missing-dir/x.html"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cannot write the performance report") && e.contains("missing-dir"),
        "{e}"
    );
}

/// Run as a child by the test below: this test binary calls no `run_if_worker()`, so when it
/// is a LocalCluster's worker it must fail at once rather than start a cluster of its own.
#[test]
fn child_that_forgot_run_if_worker() {
    if std::env::var_os("OXIDASK_TEST_FORGOT_RUN_IF_WORKER").is_none() {
        return; // only meaningful as the child of the test below
    }
    let e = match LocalCluster::builder().processes(true).workers(1).start() {
        Ok(_) => panic!("a worker process started a cluster of its own"),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains("run_if_worker()") && e.contains("first thing in main"),
        "{e}"
    );
    println!("REFUSED-AS-EXPECTED");
}

#[test]
fn a_program_without_run_if_worker_fails_at_once_instead_of_recursing() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["child_that_forgot_run_if_worker", "--exact", "--nocapture"])
        .env("OXIDASK_TEST_FORGOT_RUN_IF_WORKER", "1")
        .env(oxidask_client::SPAWNED_ENV, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("REFUSED-AS-EXPECTED"), "{stdout}");
    // And the parent side: a worker process that exits is noticed as such (not as a worker
    // that failed to join within 30 s).
    let e = match LocalCluster::builder()
        .worker_command("/bin/false", vec![])
        .workers(1)
        .start()
    {
        Ok(_) => panic!("/bin/false became a worker"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("a worker process exited"), "{e}");
}

#[test]
fn a_local_cluster_on_ipv6_loopback_computes_and_takes_every_address_form() {
    let has_ipv6_loopback = std::fs::read_to_string("/proc/net/if_inet6")
        .map(|t| {
            t.lines()
                .any(|l| l.starts_with("00000000000000000000000000000001"))
        })
        .unwrap_or(false);
    assert!(
        has_ipv6_loopback,
        "this test needs IPv6 on loopback (::1 in /proc/net/if_inet6); it does not pass without it"
    );
    let cluster = LocalCluster::builder()
        .host("::1")
        .workers(2)
        .threads_per_worker(1)
        .dashboard_address(None)
        .start()
        .unwrap();
    let address = cluster.address();
    assert!(address.starts_with("tcp://[::1]:"), "{address}");
    let bare = address.strip_prefix("tcp://").unwrap().to_owned();
    for a in [address.clone(), bare] {
        let client = Client::builder()
            .address(a.clone())
            .set_as_default(false)
            .connect()
            .unwrap_or_else(|e| panic!("connecting to {a}: {e}"));
        let summary = client.summary().unwrap();
        assert_eq!(summary.workers.len(), 2);
        for w in &summary.workers {
            assert!(w.address.starts_with("[::1]:"), "{}", w.address);
        }
        let futures = client.map(0..20i64, inc).unwrap();
        // Gathering fetches from the workers' data ports, on ::1 too.
        let got: Vec<i64> = client.gather(&futures).unwrap();
        assert_eq!(got, (1..=20).collect::<Vec<_>>());
    }
}

// -- an executor thread beyond nthreads ended with a ready task behind it ------------------

use std::sync::atomic::{AtomicBool, Ordering};

static SECEDED: AtomicBool = AtomicBool::new(false);
static GO: AtomicBool = AtomicBool::new(false);
static BLOCKING: AtomicBool = AtomicBool::new(false);
static UNBLOCK: AtomicBool = AtomicBool::new(false);

fn until(flag: &AtomicBool) {
    while !flag.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Gives its thread up (the worker starts a second executor), waits for `GO`, takes it back.
#[oxidask_core::task(crate = oxidask_core)]
fn seceding(x: i64) -> i64 {
    assert!(oxidask_worker::secede(), "runs on a worker's executor");
    SECEDED.store(true, Ordering::SeqCst);
    until(&GO);
    oxidask_worker::rejoin();
    x
}

/// Holds the worker's only slot until `UNBLOCK`.
#[oxidask_core::task(crate = oxidask_core)]
fn blocking(x: i64) -> i64 {
    BLOCKING.store(true, Ordering::SeqCst);
    until(&UNBLOCK);
    x
}

#[test]
fn a_surplus_executor_thread_does_not_end_with_a_ready_task_behind_it() {
    // One worker, one thread. `seceding` secedes: a second executor starts and runs
    // `blocking`; `seceding` rejoins and ends while `blocking` holds the slot, so its thread
    // goes idle (two threads for one slot). `inc(3)` arrives, is ready, wakes the idle thread,
    // which finds no free slot and sleeps again. When `blocking` ends, its thread is the
    // surplus one: it used to end there, leaving inc(3) ready and the idle thread asleep for
    // ever (the examples' coordination.py hang: map tasks behind tasks that seceded).
    let (_cluster, client) = cluster_of(1);
    let x = client.submit(&seceding(1)).unwrap();
    until(&SECEDED);
    let y = client.submit(&blocking(2)).unwrap();
    until(&BLOCKING);
    GO.store(true, Ordering::SeqCst);
    assert_eq!(x.result().unwrap(), 1);
    let z = client.submit(&inc(3)).unwrap();
    // The scheduler gives z to the worker at once (one task there, room for two): let it
    // arrive and be ready while `blocking` still runs.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while client.summary().unwrap().workers[0].processing < 2 {
        assert!(std::time::Instant::now() < deadline, "z was never assigned");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(200));
    UNBLOCK.store(true, Ordering::SeqCst);
    assert_eq!(y.result().unwrap(), 2);
    assert_eq!(
        z.result_timeout(Some(Duration::from_secs(10))).unwrap(),
        4,
        "the ready task must run after the surplus thread's task ends"
    );
}
