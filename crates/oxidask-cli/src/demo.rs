//! `oxidask demo`: the Dask tutorial's delayed section, then the scheduler under load.

use std::path::Path;
use std::time::{Duration, Instant};

use oxidask::prelude::*;
use oxidask::{Arg, Compute, Graph, Key, Task, Token, Value};

#[oxidask::task]
fn inc(x: i64) -> i64 {
    std::thread::sleep(Duration::from_millis(100));
    x + 1
}

#[oxidask::task]
fn dec(x: i64) -> i64 {
    std::thread::sleep(Duration::from_millis(100));
    x - 1
}

#[oxidask::task]
fn add(x: i64, y: i64) -> i64 {
    std::thread::sleep(Duration::from_millis(200));
    x + y
}

#[oxidask::task]
fn fast_inc(x: i64) -> i64 {
    x + 1
}

#[oxidask::task]
fn total(xs: &[i64]) -> i64 {
    xs.iter().sum()
}

#[oxidask::task]
fn count_words(lines: &[String]) -> std::collections::BTreeMap<String, u64> {
    let mut counts = std::collections::BTreeMap::new();
    for line in lines {
        for word in line.split_whitespace() {
            *counts.entry(word.to_lowercase()).or_insert(0) += 1;
        }
    }
    counts
}

#[oxidask::task]
fn merge_counts(
    parts: Vec<std::collections::BTreeMap<String, u64>>,
) -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    for part in parts {
        for (w, c) in part {
            *out.entry(w).or_insert(0) += c;
        }
    }
    out
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

/// A task of the cluster part: a few milliseconds of work, then the input plus one.
#[oxidask::task]
fn work(x: i64) -> i64 {
    let spin = std::time::Instant::now();
    let ms = 2 + (x.unsigned_abs() % 7);
    while spin.elapsed() < Duration::from_millis(ms) {
        std::hint::spin_loop();
    }
    x + 1
}

/// What the demo's cluster part does.
pub struct ClusterDemo {
    /// How long to keep the cluster busy.
    pub duration: Duration,
    /// Where its dashboard listens (`None`: no cluster part).
    pub dashboard: Option<String>,
}

pub fn run(
    threads: Option<usize>,
    tasks: usize,
    graph_path: &Path,
    cluster: ClusterDemo,
) -> Result<(), oxidask::Error> {
    let pool = match threads {
        Some(n) => Threaded::new(n),
        None => Threaded::global(),
    };
    println!(
        "oxidask demo — threaded scheduler with {} threads\n",
        pool.threads()
    );

    println!("1. Delayed: inc(1), dec(2), add(x, y) with 100-200 ms of work each");
    let t = Instant::now();
    let plain = add::call(inc::call(1), dec::call(2));
    println!(
        "   run one after the other: {plain} in {}",
        secs(t.elapsed())
    );
    let t = Instant::now();
    let z = add(inc(1), dec(2));
    println!("   building the lazy graph: {:?}", t.elapsed());
    let t = Instant::now();
    let lazy = z.compute_with(&pool)?;
    println!(
        "   computed in parallel:    {lazy} in {}",
        secs(t.elapsed())
    );
    match z.visualize(graph_path) {
        Ok(()) => println!("   graph written to {}", graph_path.display()),
        Err(e) => println!("   (no picture: {e})"),
    }

    println!("\n2. A for-loop made lazy: 16 x (inc, dec, add), persisted");
    let t = Instant::now();
    let zs: Vec<Delayed<i64>> = (0..16)
        .map(|i| {
            let x = inc(i);
            let y = dec(&x);
            add(x, y)
        })
        .collect();
    let persisted = zs.persist_with(&pool)?; // computed now; later work starts from results
    let values = persisted.compute_with(&pool)?;
    println!(
        "   sum of 16 results = {} in {} ({} sequential)",
        values.iter().sum::<i64>(),
        secs(t.elapsed()),
        secs(Duration::from_millis(16 * 400))
    );

    println!("\n3. Word count over 200,000 generated lines in 40 partitions");
    let words = [
        "dask", "rust", "graph", "task", "array", "frame", "bag", "future",
    ];
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        // xorshift: a fixed-seed stream, so the demo prints the same counts every time.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let lines: Vec<String> = (0..200_000usize)
        .map(|_| {
            (0..8)
                .map(|_| {
                    let r = next();
                    // Skewed: earlier words are more frequent.
                    words[((r % 64) as f64).sqrt() as usize % words.len()]
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let t = Instant::now();
    let parts: Vec<_> = lines
        .chunks(5_000)
        .map(|c| count_words(c.to_vec()))
        .collect();
    let counts = merge_counts(parts).compute_with(&pool)?;
    let mut ranked: Vec<(&String, &u64)> = counts.iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(a.1));
    let top: Vec<String> = ranked
        .iter()
        .take(4)
        .map(|(w, c)| format!("{w}={c}"))
        .collect();
    println!(
        "   {} distinct words ({}, …) in {}",
        counts.len(),
        top.join(", "),
        secs(t.elapsed())
    );

    println!("\n4. Scheduler overhead: {tasks} trivial tasks, then a {tasks}-leaf tree reduction");
    let t = Instant::now();
    let mut g = Graph::with_capacity(tasks);
    let keys: Vec<Key> = (0..tasks)
        .map(|i| {
            let k = Key::block("fast_inc", Token::from_u128(0xDE40), &[i as u32]);
            g.insert(
                k,
                Task::call(fast_inc::op(), [Arg::Value(Value::new(i as i64))]),
            );
            k
        })
        .collect();
    let values = pool.compute(g, &keys)?;
    let elapsed = t.elapsed();
    let sum: i64 = values
        .into_iter()
        .map(|v| v.take::<i64>().unwrap_or(0))
        .sum();
    println!(
        "   independent: sum {sum} in {} = {:.0} tasks/s (graph building included)",
        secs(elapsed),
        tasks as f64 / elapsed.as_secs_f64()
    );
    let t = Instant::now();
    let leaves: Vec<Delayed<i64>> = (0..tasks as i64).map(fast_inc).collect();
    let mut level = leaves;
    while level.len() > 1 {
        level = level.chunks(8).map(|c| total(c.to_vec())).collect();
    }
    let n_tasks = level[0].graph().len();
    let result = level[0].compute_with(&pool)?;
    let elapsed = t.elapsed();
    println!(
        "   tree (split_every=8, {n_tasks} tasks): sum {result} in {} = {:.0} tasks/s",
        secs(elapsed),
        n_tasks as f64 / elapsed.as_secs_f64()
    );
    if let Some(addr) = cluster.dashboard {
        run_cluster(cluster.duration, addr)?;
    }
    println!("\ndone.");
    Ok(())
}

/// Keeps a cluster busy for `duration` with waves of tasks (a map, then a tree reduction over
/// it), checking every sum; `on_wave` sees each wave's final future. Returns the waves, the
/// tasks run and the time taken.
pub fn keep_busy(
    client: &oxidask::distributed::Client,
    duration: Duration,
    mut on_wave: impl FnMut(&oxidask::distributed::Future<i64>),
) -> Result<(u64, u64, Duration), oxidask::Error> {
    let start = Instant::now();
    let (mut waves, mut ran) = (0u64, 0u64);
    while start.elapsed() < duration {
        let n = 400i64;
        let futures = client.map(0..n, |i| work(i + waves as i64))?;
        let mut level: Vec<Delayed<i64>> = futures.chunks(8).map(total).collect();
        let mut tasks = n as u64 + level.len() as u64;
        while level.len() > 1 {
            level = level.chunks(8).map(|c| total(c.to_vec())).collect();
            tasks += level.len() as u64;
        }
        let f = client.submit(&level[0])?;
        let sum = f.result()?;
        let want: i64 = (0..n).map(|i| i + waves as i64 + 1).sum();
        if sum != want {
            return Err(oxidask::Error::Collection(
                format!("wave {waves}: sum {sum}, expected {want}").into(),
            ));
        }
        on_wave(&f);
        waves += 1;
        ran += tasks;
    }
    Ok((waves, ran, start.elapsed()))
}

/// A task that fails, for the dashboard's errors page.
#[oxidask::task]
fn boom(x: i64) -> Result<i64, String> {
    Err(format!("boom: {x} is not welcome here"))
}

/// `oxidask load ADDRESS`: keeps a running cluster busy (for watching its dashboard, tests
/// and benchmarks), printing a finished key per wave, and a failed one with `--fail`.
pub fn load(
    address: &str,
    duration: Duration,
    fail: bool,
    report: Option<&std::path::Path>,
) -> Result<(), oxidask::Error> {
    let client = oxidask::distributed::Client::builder()
        .address(address)
        .set_as_default(false)
        .connect()?;
    let recording = match report {
        Some(_) => Some(client.performance_report()?.title("oxidask load")),
        None => None,
    };
    // Held until the end: the failure and one result per wave stay on the cluster to see.
    let mut failed = None;
    if fail {
        let f = client.submit(&boom(7))?;
        let _ = f.wait(Some(Duration::from_secs(30)));
        println!("failed key {}", f.key());
        failed = Some(f);
    }
    let mut kept = Vec::new();
    let (waves, ran, elapsed) = keep_busy(&client, duration, |f| {
        println!("finished key {}", f.key());
        kept.push(f.clone());
    })?;
    drop((failed, kept));
    if let (Some(recording), Some(path)) = (recording, report) {
        let r = recording.save(path)?;
        println!(
            "performance report of {} records written to {}",
            r.stream.len(),
            path.display()
        );
    }
    println!(
        "load: {waves} waves, {ran} tasks in {} = {:.0} tasks/s",
        secs(elapsed),
        ran as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}

/// `oxidask load ADDRESS --tree N`: one tree reduction of `n` tasks (`work` leaves, `total`s
/// of 8) submitted at once, for watching a big graph; prints the time it took.
pub fn load_tree(address: &str, n: usize) -> Result<(), oxidask::Error> {
    let client = oxidask::distributed::Client::builder()
        .address(address)
        .set_as_default(false)
        .connect()?;
    let start = Instant::now();
    let mut level: Vec<Delayed<i64>> = (0..(n * 7 / 8).max(1) as i64).map(work).collect();
    let mut tasks = level.len();
    while level.len() > 1 {
        level = level.chunks(8).map(|c| total(c.to_vec())).collect();
        tasks += level.len();
    }
    let f = client.submit(&level[0])?;
    println!(
        "submitted {tasks} tasks as {} in {}",
        f.key(),
        secs(start.elapsed())
    );
    f.wait(None)?;
    println!(
        "load: {tasks} tasks in {} = {:.0} tasks/s",
        secs(start.elapsed()),
        tasks as f64 / start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A LocalCluster of two worker processes with its dashboard, kept busy with waves of
/// tasks (maps and tree reductions) for `duration`, so there is something to watch.
fn run_cluster(duration: Duration, dashboard: String) -> Result<(), oxidask::Error> {
    use oxidask::distributed::LocalCluster;
    println!(
        "\n5. A cluster of 2 worker processes, busy for {} s",
        duration.as_secs_f64()
    );
    let cluster = LocalCluster::builder()
        .workers(2)
        .threads_per_worker(1)
        .processes(true)
        .dashboard_address(Some(dashboard))
        .start()?;
    let client = cluster.client()?;
    match cluster.dashboard_link() {
        Some(link) => println!("   dashboard: {link}   (open it now)"),
        None => println!("   (no dashboard)"),
    }
    let (waves, ran, elapsed) = keep_busy(&client, duration, |_| {})?;
    println!(
        "   {waves} waves, about {ran} tasks, every sum checked, in {}",
        secs(elapsed)
    );
    drop(client);
    cluster.close();
    Ok(())
}
