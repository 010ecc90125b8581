//! Spilling end to end: workers of an in-process `LocalCluster` past their memory target write
//! results to disk — compressed when that pays — and read them back exactly for tasks and for
//! the client.

use std::time::Instant;

use oxidask_client::{Client, LocalCluster, ReturnWhen};

/// 100,000 integers with a pattern (compresses well): 800 KB in memory.
#[oxidask_core::task(crate = oxidask_core)]
fn patterned(i: i64) -> Vec<i64> {
    (0..100_000).map(|j| i * 1_000_000 + j % 1000).collect()
}

/// 100,000 integers from a xorshift stream (do not compress).
#[oxidask_core::task(crate = oxidask_core)]
fn noise(i: i64) -> Vec<u64> {
    noise_values(i)
}

#[oxidask_core::task(crate = oxidask_core)]
fn total(blocks: &[Vec<i64>]) -> i64 {
    blocks.iter().map(|b| b[0] + b[999]).sum()
}

fn one_worker(limit: u64) -> (LocalCluster, Client) {
    let cluster = LocalCluster::builder()
        .workers(1)
        .threads_per_worker(1)
        .memory_limit(limit)
        .start()
        .unwrap();
    let client = client_of(&cluster);
    (cluster, client)
}

fn client_of(cluster: &LocalCluster) -> Client {
    Client::builder()
        .address(cluster.address())
        .set_as_default(false)
        .connect()
        .unwrap()
}

#[test]
fn compressible_results_spill_compressed_and_read_back_exactly() {
    // 4 MiB limit: spilling starts past 2.4 MiB; 40 results of 800 KB.
    let (cluster, client) = one_worker(4 << 20);
    let started = Instant::now();
    let futures = client.map(0..40i64, patterned).unwrap();
    client
        .wait(&futures, None, ReturnWhen::AllCompleted)
        .unwrap();
    let computed = started.elapsed();
    let worker = &cluster.workers()[0];
    let (on_disk, ever) = worker.spilled();
    let files = worker.spill_file_bytes();
    eprintln!(
        "patterned: {ever} bytes spilled, {on_disk} on disk now in {files} bytes of files ({:.1}%); computed and spilled in {:.2} s",
        files as f64 * 100.0 / on_disk.max(1) as f64,
        computed.as_secs_f64()
    );
    assert!(on_disk > 20 << 20, "{on_disk} bytes spilled");
    assert!(
        files * 4 < on_disk,
        "{files} bytes of files for {on_disk} bytes of results"
    );
    // A task reads its spilled inputs back; the client gets every value intact.
    let sum = client.submit(&total(&futures)).unwrap().result().unwrap();
    let expected: i64 = (0..40i64).map(|i| 2 * i * 1_000_000 + 999).sum();
    assert_eq!(sum, expected);
    let values: Vec<Vec<i64>> = client.gather(&futures).unwrap();
    for (i, v) in values.iter().enumerate() {
        let want: Vec<i64> = (0..100_000)
            .map(|j| i as i64 * 1_000_000 + j % 1000)
            .collect();
        assert_eq!(*v, want, "result {i}");
    }
}

#[test]
fn with_spill_compression_off_compressible_results_spill_as_they_are() {
    // `distributed.worker.memory.spill-compression: false`: the same patterned results as
    // above, written raw.
    let cluster = LocalCluster::builder().workers(0).start().unwrap();
    let worker = oxidask_worker::Worker::builder(cluster.address())
        .nthreads(1)
        .memory_limit(4 << 20)
        .spill_compression(false)
        .start()
        .unwrap();
    let client = client_of(&cluster);
    let futures = client.map(0..40i64, patterned).unwrap();
    client
        .wait(&futures, None, ReturnWhen::AllCompleted)
        .unwrap();
    let (on_disk, _) = worker.spilled();
    let files = worker.spill_file_bytes();
    assert!(on_disk > 20 << 20, "{on_disk} bytes spilled");
    assert!(files >= on_disk - on_disk / 100, "{files} for {on_disk}");
    let sum = client.submit(&total(&futures)).unwrap().result().unwrap();
    assert_eq!(
        sum,
        (0..40i64).map(|i| 2 * i * 1_000_000 + 999).sum::<i64>()
    );
    worker.stop();
}

#[test]
fn incompressible_results_spill_as_they_are() {
    let (cluster, client) = one_worker(4 << 20);
    let futures = client.map(0..30i64, noise).unwrap();
    client
        .wait(&futures, None, ReturnWhen::AllCompleted)
        .unwrap();
    let worker = &cluster.workers()[0];
    let (on_disk, _) = worker.spilled();
    let files = worker.spill_file_bytes();
    eprintln!("noise: {on_disk} bytes on disk in {files} bytes of files");
    assert!(on_disk > 15 << 20, "{on_disk} bytes spilled");
    // Stored raw: each file is its value plus a header of a few dozen bytes.
    assert!(files >= on_disk - on_disk / 100, "{files} for {on_disk}");
    let values: Vec<Vec<u64>> = client.gather(&futures).unwrap();
    for (i, v) in values.iter().enumerate() {
        assert_eq!(v[..], noise_values(i as i64)[..], "result {i}");
    }
}

fn noise_values(i: i64) -> Vec<u64> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (i as u64 + 1);
    (0..100_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        })
        .collect()
}

/// `n` incompressible integers (a xorshift stream).
#[oxidask_core::task(crate = oxidask_core)]
fn noise_of(i: i64, n: i64) -> Vec<u64> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (i as u64 + 1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        })
        .collect()
}

/// While a worker spills and reads back, another thread takes the worker's lock over and over
/// (as heartbeats, executors and the data port do) and notes its longest wait. The results
/// come back exact. `OXIDASK_SPILL_MEASURE=RESULTS,MIB` sets the size (default 12 results of
/// 1 MiB) and prints the waits.
#[test]
fn the_worker_lock_stays_available_while_spilling() {
    let (count, mib) = std::env::var("OXIDASK_SPILL_MEASURE")
        .ok()
        .and_then(|s| {
            let (a, b) = s.split_once(',')?;
            Some((a.parse::<i64>().ok()?, b.parse::<i64>().ok()?))
        })
        .unwrap_or((12, 1));
    let n = mib * (1 << 20) / 8;
    // Room for four results before spilling starts.
    let limit = (mib as u64) << 20 << 2;
    let cluster = LocalCluster::builder()
        .workers(1)
        .threads_per_worker(2)
        .memory_limit(limit * 10 / 6)
        .start()
        .unwrap();
    let client = Client::builder()
        .address(cluster.address())
        .set_as_default(false)
        .connect()
        .unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    let (waits, results) = std::thread::scope(|s| {
        let prober = s.spawn(|| {
            let mut waits = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                let _ = cluster.workers()[0].memory();
                waits.push(t.elapsed());
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
            waits
        });
        let started = Instant::now();
        let futures = client.map(0..count, |i| noise_of(i, n)).unwrap();
        let values: Vec<Vec<u64>> = client.gather(&futures).unwrap();
        let elapsed = started.elapsed();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        (prober.join().unwrap(), (values, elapsed))
    });
    let (values, elapsed) = results;
    for (i, v) in values.iter().enumerate() {
        assert_eq!(v.len() as i64, n);
        assert_eq!(v[..64], noise_values(i as i64)[..64], "result {i}");
    }
    let (_, ever) = cluster.workers()[0].spilled();
    assert!(ever > 0, "nothing spilled");
    let mut sorted = waits.clone();
    sorted.sort();
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q) as usize];
    eprintln!(
        "{count} x {mib} MiB: {:.1} MiB spilled in {:.2} s; {} lock waits: median {:?}, p99 {:?}, max {:?}",
        ever as f64 / (1 << 20) as f64,
        elapsed.as_secs_f64(),
        sorted.len(),
        at(0.5),
        at(0.99),
        sorted.last().unwrap()
    );
}
