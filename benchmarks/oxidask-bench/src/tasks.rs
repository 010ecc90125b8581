//! Suite `tasks`: scheduler overhead on trivial tasks, graph construction included.
//!
//! Shapes match `benchmarks/reference/tasks.py` task for task:
//! - `independent`: `n` tasks `inc(i)`, all requested;
//! - `chain`: `x0 = inc(0)`, `x_i = inc(x_{i-1})`, the last requested;
//! - `tree`: `n` leaves `inc(i)`, summed pairwise (`total` of one or two inputs) level by level;
//! - `delayed-independent`: `independent` built through the typed delayed API.

use std::time::Instant;

use oxidask::{Arg, Collection, Compute, Delayed, Graph, Key, Task, Threaded, Token, Value};
use serde_json::json;

use crate::Opts;

#[oxidask::task]
fn inc(x: i64) -> i64 {
    x + 1
}

#[oxidask::task]
fn total(xs: &[i64]) -> i64 {
    xs.iter().sum()
}

fn key(name: &str, i: usize) -> Key {
    Key::block(name, Token::from_u128(0xBE7C), &[i as u32])
}

fn ints(values: Vec<Value>) -> Result<i64, String> {
    values
        .into_iter()
        .map(|v| v.take::<i64>().map_err(|e| e.to_string()))
        .sum()
}

fn independent(n: usize, s: &Threaded) -> Result<i64, String> {
    let mut g = Graph::with_capacity(n);
    let mut keys = Vec::with_capacity(n);
    for i in 0..n {
        let k = key("inc", i);
        g.insert(k, Task::call(inc::op(), [Arg::Value(Value::new(i as i64))]));
        keys.push(k);
    }
    ints(s.compute(g, &keys).map_err(|e| e.to_string())?)
}

fn chain(n: usize, s: &Threaded) -> Result<i64, String> {
    let mut g = Graph::with_capacity(n);
    let mut prev = key("inc", 0);
    g.insert(prev, Task::call(inc::op(), [Arg::Value(Value::new(0i64))]));
    for i in 1..n {
        let k = key("inc", i);
        g.insert(k, Task::call(inc::op(), [Arg::Key(prev)]));
        prev = k;
    }
    ints(s.compute(g, &[prev]).map_err(|e| e.to_string())?)
}

fn tree(n: usize, s: &Threaded) -> Result<i64, String> {
    let mut g = Graph::with_capacity(2 * n);
    let mut level: Vec<Key> = (0..n)
        .map(|i| {
            let k = key("inc", i);
            g.insert(k, Task::call(inc::op(), [Arg::Value(Value::new(i as i64))]));
            k
        })
        .collect();
    let mut depth = 0;
    while level.len() > 1 {
        depth += 1;
        let name = format!("total-{depth}");
        level = level
            .chunks(2)
            .enumerate()
            .map(|(i, pair)| {
                let k = key(&name, i);
                let list = Arg::List(pair.iter().map(|p| Arg::Key(*p)).collect());
                g.insert(k, Task::call(total::op(), [list]));
                k
            })
            .collect();
    }
    ints(s.compute(g, &level).map_err(|e| e.to_string())?)
}

fn delayed_independent(n: usize, s: &Threaded) -> Result<i64, String> {
    let parts: Vec<Delayed<i64>> = (0..n as i64).map(inc).collect();
    let values = parts.compute_with(s).map_err(|e| e.to_string())?;
    Ok(values.iter().sum())
}

pub fn run(case: &str, opts: &Opts) -> Result<serde_json::Value, String> {
    let s = if opts.threads == 0 {
        Threaded::global()
    } else {
        Threaded::new(opts.threads)
    };
    // Warm the pool's threads outside the timed region, as Dask's pool is warm after import.
    let _ = independent(1, &s)?;
    let start = Instant::now();
    let check = match case {
        "independent" => independent(opts.n, &s)?,
        "chain" => chain(opts.n, &s)?,
        "tree" => tree(opts.n, &s)?,
        "delayed-independent" => delayed_independent(opts.n, &s)?,
        other => return Err(format!("unknown case `{other}`")),
    };
    let seconds = start.elapsed().as_secs_f64();
    Ok(json!({
        "seconds": seconds,
        "check": check,
        "threads": s.threads(),
    }))
}
