//! Dask's futures tutorial on a cluster of processes: a `LocalCluster` whose workers are this
//! very program (so they know its `#[oxidask::task]` functions), then `submit`, `map`,
//! `gather`, futures passed to further tasks, `as_completed`, `scatter`, tasks that submit
//! tasks, and collections (a delayed graph, a chunked array) computed on the cluster.
//!
//! `cargo run --release -p oxidask-examples --example distributed`
//!
//! The same program can join a cluster you started yourself:
//! ```text
//! oxidask scheduler &                                  # tcp://127.0.0.1:8786
//! target/release/examples/distributed worker tcp://127.0.0.1:8786 --nthreads 2 &
//! OXIDASK_SCHEDULER_ADDRESS=tcp://127.0.0.1:8786 target/release/examples/distributed
//! ```

use std::time::{Duration, Instant};

use oxidask::distributed::{as_completed, get_client, Client, LocalCluster};
use oxidask::prelude::*;

#[oxidask::task]
fn inc(x: i64) -> i64 {
    std::thread::sleep(Duration::from_millis(50));
    x + 1
}

#[oxidask::task]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[oxidask::task]
fn total(xs: &[i64]) -> i64 {
    xs.iter().sum()
}

#[oxidask::task]
fn slow_square(x: i64, millis: u64) -> i64 {
    std::thread::sleep(Duration::from_millis(millis));
    x * x
}

#[oxidask::task]
fn count_above(data: &[f64], threshold: f64) -> i64 {
    data.iter().filter(|&&v| v > threshold).count() as i64
}

/// Fibonacci by tasks that submit tasks: each call asks the cluster for the two below it and
/// waits for them, giving up its worker thread while it waits.
#[oxidask::task]
fn fib(n: i64) -> Result<i64, String> {
    if n < 2 {
        return Ok(n);
    }
    let client = get_client().map_err(|e| e.to_string())?;
    let a = client.submit(&fib(n - 1)).map_err(|e| e.to_string())?;
    let b = client.submit(&fib(n - 2)).map_err(|e| e.to_string())?;
    Ok(a.result().map_err(|e| e.to_string())? + b.result().map_err(|e| e.to_string())?)
}

fn main() -> Result<(), oxidask::Error> {
    // `distributed worker ADDRESS ...` runs this program as a worker.
    oxidask::distributed::run_if_worker();

    let t = Instant::now();
    let (_cluster, client) = match std::env::var("OXIDASK_SCHEDULER_ADDRESS") {
        Ok(address) => (None, Client::connect(address)?),
        Err(_) => {
            let cluster = LocalCluster::builder()
                .workers(2)
                .threads_per_worker(2)
                .processes(true)
                .start()?;
            let client = cluster.client()?;
            (Some(cluster), client)
        }
    };
    let summary = client.summary()?;
    println!(
        "cluster: {} workers, {} threads, up in {:.0} ms",
        summary.workers.len(),
        summary.workers.iter().map(|w| w.nthreads).sum::<u32>(),
        t.elapsed().as_secs_f64() * 1e3
    );

    // submit: runs now, returns a future.
    let x = client.submit(&inc(1))?;
    println!("submit: inc(1) = {}", x.result()?);

    // map and gather: 40 tasks of 50 ms on 4 threads.
    let t = Instant::now();
    let futures = client.map(0..40i64, inc)?;
    let values = client.gather(&futures)?;
    println!(
        "map: 40 x inc in {:.2} s, sum {}",
        t.elapsed().as_secs_f64(),
        values.iter().sum::<i64>()
    );

    // Futures are arguments: the work runs where the data is.
    let y = client.submit(&add(&futures[0], &futures[1]))?;
    let s = client.submit(&total(&futures))?;
    println!(
        "futures as arguments: add = {}, total = {}",
        y.result()?,
        s.result()?
    );

    // as_completed: results in the order they finish.
    let slow = client.map([(3, 300u64), (2, 200), (1, 100)], |(x, ms)| {
        slow_square(x, ms)
    })?;
    let order: Vec<i64> = as_completed(slow)
        .map(|f| f.and_then(|f| f.result()))
        .collect::<Result<_, _>>()?;
    println!("as_completed: {order:?}");

    // scatter: send data once, use it in many tasks.
    let data: Vec<f64> = (0..1_000_000).map(|i| (i % 1000) as f64 / 1000.0).collect();
    let [remote]: [_; 1] = client
        .scatter(vec![data], false)?
        .try_into()
        .expect("one future");
    let counts = client.map([0.25, 0.5, 0.75], |t| count_above(&remote, t))?;
    println!(
        "scatter: counts above 0.25/0.5/0.75 = {:?}",
        client.gather(&counts)?
    );

    // Tasks that submit tasks.
    let f = client.submit(&fib(12))?;
    println!("tasks from tasks: fib(12) = {}", f.result()?);

    // Collections compute on the cluster once a client is connected.
    let z = total((0..10).map(|i| add(i, 1)).collect::<Vec<_>>());
    println!("delayed on the cluster: {}", z.compute()?);
    let a = oxidask::array::ones::<f64>((2000, 2000)).chunks((500, 500));
    println!(
        "array on the cluster: ones((2000, 2000)).sum() = {}",
        a.sum().compute()?
    );

    let story = client.story(&f.key())?;
    println!(
        "story of {}: {} transitions, last: {}",
        f.key(),
        story.len(),
        story.last().map_or("", |s| s.as_str())
    );
    Ok(())
}
