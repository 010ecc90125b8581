//! Suite `collections`: the Rust API side of the `python-collections` suite's array cases,
//! the same queries on the same data as `benchmarks/reference/array_collections.py`, so the
//! Python package's overhead over the Rust API can be measured (the dataframe cases reuse
//! the `dataframe` suite's Rust queries, which are already the same queries).
//!
//! The input (`((sin(0.7 i) + 1) / 2)` reshaped to `n × n`) is made before the clock starts;
//! the timed region starts with `from_array(values, chunks = n / 8)`, as the Python script's.

use std::time::Instant;

use ndarray::{s, Array1, ArrayD, IxDyn};
use oxidask::{Collection, Threaded};
use oxidask_array::{self as da, Array};
use serde_json::json;

use crate::array::peak_rss_mib;
use crate::Opts;

fn data(n: usize) -> ArrayD<f64> {
    let v = Array1::from_iter((0..n * n).map(|i| ((i as f64 * 0.7).sin() + 1.0) / 2.0));
    v.into_shape_with_order(IxDyn(&[n, n]))
        .expect("n * n elements")
}

fn scalar(a: Array<f64>, s: &Threaded) -> Result<f64, String> {
    let out = a.compute_with(s).map_err(|e| e.to_string())?;
    out.iter()
        .next()
        .copied()
        .ok_or_else(|| "empty result".into())
}

fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

pub fn run(case: &str, opts: &Opts) -> Result<serde_json::Value, String> {
    let s = if opts.threads == 0 {
        Threaded::global()
    } else {
        Threaded::new(opts.threads)
    };
    let n = opts.n;
    let values = data(n);
    let chunk = (n / 8).max(1);
    let start = Instant::now();
    let x = da::from_array(values, (chunk, chunk));
    let check = match case {
        "array-expr-mean" => scalar((&(&(&x + &x.t()) * 2.0) - 1.0).mean_axis(0).sum(), &s)?,
        "array-std" => scalar(x.std_axis(0, 0).sum(), &s)?,
        "array-matmul" => {
            let y = x.slice(s![..n / 2, ..]);
            scalar(y.matmul(&y.t()).sum(), &s)?
        }
        "array-mask-sum" => scalar(x.masked(&x.gt_scalar(0.5)).sum(), &s)?,
        "array-map-blocks" => scalar(
            x.map_blocks_local(|b: &ArrayD<f64>| b.mapv(f64::sin)).sum(),
            &s,
        )?,
        "array-to-numpy" => {
            let out = (&x * 2.0).compute_with(&s).map_err(|e| e.to_string())?;
            if out.shape() != [n, n] {
                return Err(format!("to-numpy: shape {:?}", out.shape()));
            }
            out.slice(s![..;97, ..;89]).sum()
        }
        other => return Err(format!("unknown case `{other}`")),
    };
    let seconds = start.elapsed().as_secs_f64();
    Ok(json!({
        "seconds": seconds,
        "check": round6(check),
        "peak_mib": peak_rss_mib(),
        "threads": s.threads(),
    }))
}
