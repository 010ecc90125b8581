//! The Dask tutorial's `dask.delayed` section: three functions that sleep to simulate work,
//! run one after the other, then lazily in parallel, then in a for-loop persisted at once.
//!
//! `cargo run --release -p oxidask-examples --example delayed`

use std::time::{Duration, Instant};

use oxidask::prelude::*;

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

fn main() -> Result<(), oxidask::Error> {
    // Plain calls run in sequence: inc and dec could have run at the same time.
    let t = Instant::now();
    let z = add::call(inc::call(1), dec::call(2));
    println!("sequential: {z} in {:.2?}", t.elapsed());
    assert_eq!(z, 3);

    // Lazy calls just build a graph: almost free.
    let t = Instant::now();
    let x = inc(1);
    let y = dec(2);
    let z = add(x, y);
    println!(
        "graph of {} tasks built in {:.2?}",
        z.graph().len(),
        t.elapsed()
    );
    match z.visualize("delayed-graph.svg") {
        Ok(()) => println!("picture: delayed-graph.svg"),
        Err(e) => println!("no picture: {e}"),
    }

    // compute() runs it on the threaded scheduler: inc and dec in parallel.
    let t = Instant::now();
    let v = z.compute()?;
    println!("parallel: {v} in {:.2?}", t.elapsed());
    assert_eq!(v, 3);

    // A normal for-loop builds one graph; persist computes it all at once in the background
    // of the pool and returns handles backed by the results.
    let t = Instant::now();
    let zs: Vec<Delayed<i64>> = (0..16)
        .map(|i| {
            let x = inc(i);
            let y = dec(&x);
            add(x, y)
        })
        .collect();
    let zs = oxidask::persist(zs)?;
    let total: i64 = oxidask::compute(&zs)?.iter().sum();
    println!(
        "16 loop bodies: total {total} in {:.2?} (6.4 s one after the other)",
        t.elapsed()
    );
    assert_eq!(total, (0..16).map(|i| 2 * i + 1).sum::<i64>());
    Ok(())
}
