//! Collections persisted on a cluster of worker processes keep their pieces there: later
//! computations refer to them by key (neither recomputed nor sent from the client), give what
//! the local scheduler gives, and dropping the collection releases the pieces.
//!
//! The workers are this test binary, started by `LocalCluster` as
//! `THIS as_a_worker --exact --nocapture -- worker ADDRESS ...`: libtest runs only the
//! `as_a_worker` test, which hands the arguments after `--` to the worker's `main`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use oxidask::array::random::RandomState;
use oxidask::dataframe::{self as dd, col, lit};
use oxidask::distributed::{futures_of, ActivityKind, Client, LocalCluster};
use oxidask::prelude::*;
use oxidask::remote::{remote_values, RemoteValue};
use oxidask::{Key, TaskSpec};

/// The worker entry point when this binary is started as a worker; a no-op otherwise.
#[test]
fn as_a_worker() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--") {
        if args.get(i + 1).map(String::as_str) == Some("worker") {
            let code = oxidask::distributed::worker_main(args[i + 2..].iter().cloned());
            std::process::exit(if code == std::process::ExitCode::SUCCESS {
                0
            } else {
                1
            });
        }
    }
}

/// The process a task runs in.
#[oxidask::task]
fn process_id(_x: i64) -> u32 {
    std::process::id()
}

fn cluster() -> (LocalCluster, Client) {
    let exe = std::env::current_exe().expect("test binary path");
    let cluster = LocalCluster::builder()
        .worker_command(
            exe,
            ["as_a_worker", "--exact", "--nocapture", "--"]
                .map(String::from)
                .to_vec(),
        )
        .workers(2)
        .threads_per_worker(1)
        .start()
        .expect("a cluster of worker processes");
    let client = Client::builder()
        .address(cluster.address())
        .set_as_default(false)
        .connect()
        .expect("a client");
    client
        .wait_for_workers(2, Duration::from_secs(60))
        .expect("two worker processes");
    let pid = client.submit(&process_id(0)).unwrap().result().unwrap();
    assert_ne!(pid, std::process::id(), "the workers are other processes");
    (cluster, client)
}

/// How many times each of `keys` was computed, by the scheduler's task stream.
fn computed(client: &Client, keys: &[Key]) -> Vec<usize> {
    let (records, _) = client.task_stream(0).unwrap();
    keys.iter()
        .map(|k| {
            records
                .iter()
                .filter(|r| r.kind == ActivityKind::Compute && r.key.0 == *k)
                .count()
        })
        .collect()
}

/// Checks that the collection's graph holds nothing to send but references to `n` pieces on
/// the cluster: every value in it is a remote value.
fn only_remote_pieces<C: Collection>(c: &C, n: usize) {
    let g = c.graph();
    let mut values = 0;
    for (_, t) in g.iter() {
        if let TaskSpec::Value(v) = t.spec() {
            assert!(
                RemoteValue::of(v).is_some(),
                "a {} in the graph",
                v.type_name()
            );
            values += 1;
        }
    }
    assert!(values <= n);
    assert_eq!(remote_values(&g).len(), n);
}

fn wait_until_released(client: &Client, keys: &[Key]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let held: usize = client.who_has(keys).unwrap().iter().map(Vec::len).sum();
        if held == 0 && client.summary().unwrap().tasks == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{held} pieces still held after the collection was dropped"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_persisted_array_stays_on_the_workers() {
    let (_cluster, client) = cluster();
    let x = RandomState::new(7).random::<f64>((60, 40)).chunks((20, 20));
    let y = (&x * 2.0 + 1.0).sqrt();
    let local = Arc::new(oxidask::Synchronous::new());
    let want_sum = y.sum().compute_with(&*local).unwrap();
    let want_mean = (&y - &y.mean_axis(0))
        .abs()
        .mean()
        .compute_with(&*local)
        .unwrap();

    let p = client.persist(&y).unwrap();
    let futures = futures_of(&p);
    let keys: Vec<Key> = futures.iter().map(|f| f.key()).collect();
    assert_eq!(keys.len(), 6, "one future per block");
    assert_eq!(keys, y.keys(), "the blocks keep their keys");
    only_remote_pieces(&p, 6);
    drop(futures);

    // Two later computations on the persisted array.
    let got_sum = p.sum().compute_with(&client).unwrap();
    let holders = client.who_has(&keys).unwrap();
    let got_mean = (&p - &p.mean_axis(0))
        .abs()
        .mean()
        .compute_with(&client)
        .unwrap();
    assert_eq!(got_sum, want_sum);
    assert!((got_mean[[]] - want_mean[[]]).abs() <= 1e-12 * want_mean[[]].abs());
    assert_eq!(
        client.who_has(&keys).unwrap(),
        holders,
        "the blocks did not move"
    );
    assert_eq!(
        computed(&client, &keys),
        vec![1; 6],
        "each block computed once"
    );

    // `persist()` with the client as the current scheduler does the same.
    let q = oxidask::config::with_scheduler(Arc::new(client.clone()), || y.persist()).unwrap();
    assert_eq!(futures_of(&q).len(), 6);
    assert_eq!(
        q.compute_with(&client).unwrap(),
        y.compute_with(&*local).unwrap()
    );
    assert_eq!(
        computed(&client, &keys),
        vec![1; 6],
        "already held: not recomputed"
    );

    // A local scheduler fetches the pieces instead.
    assert_eq!(p.sum().compute_with(&*local).unwrap(), want_sum);

    drop((p, q));
    wait_until_released(&client, &keys);
}

#[test]
fn a_persisted_dataframe_stays_on_the_workers() {
    let (_cluster, client) = cluster();
    let n = 400i64;
    let df = oxidask::dataframe::polars::df!(
        "k" => (0..n).map(|i| i % 7).collect::<Vec<_>>(),
        "v" => (0..n).collect::<Vec<_>>(),
    )
    .unwrap();
    let frame = dd::from_polars(df, 4).with_columns([(col("v") * lit(3)).alias("w")]);
    let local = Arc::new(oxidask::Synchronous::new());
    let later = |f: &dd::DataFrame| {
        (
            f.filter(col("k").eq(lit(3))).sum(),
            f.groupby(["k"]).sum("w").sort_values(&["k"], false),
        )
    };
    let (a, b) = later(&frame);
    let want_a = a.compute_with(&*local).unwrap();
    let want_b = b.compute_with(&*local).unwrap();

    let p = client.persist(&frame).unwrap();
    let futures = futures_of(&p);
    let keys: Vec<Key> = futures.iter().map(|f| f.key()).collect();
    assert_eq!(
        keys,
        frame.keys(),
        "one future per partition, under its key"
    );
    only_remote_pieces(&p, 4);
    drop(futures);

    let (a, b) = later(&p);
    assert_eq!(a.compute_with(&client).unwrap(), want_a);
    let holders = client.who_has(&keys).unwrap();
    assert_eq!(b.compute_with(&client).unwrap(), want_b);
    assert_eq!(
        client.who_has(&keys).unwrap(),
        holders,
        "the partitions did not move"
    );
    assert_eq!(
        computed(&client, &keys),
        vec![1; 4],
        "each partition computed once"
    );
    assert_eq!(
        p.compute_with(&client).unwrap(),
        frame.compute_with(&*local).unwrap()
    );

    drop((a, b, p));
    wait_until_released(&client, &keys);
}
