//! The `dataframe` suite: queries on the synthetic 2019 taxi data (`reference/taxi_gen.py`),
//! read from `$OXIDASK_BENCH_DATA/taxi-{n}` (n = scale per mille), on the threaded scheduler;
//! with `OXIDASK_BENCH_LAYOUT=random`, from `taxi-{n}-random` (rows in random order, the
//! Parquet writer's default row groups).
//!
//! The `dataframe-distributed` suite runs the same queries on a cluster of a scheduler
//! process and two worker processes of one thread each, started from this binary outside
//! the timed region; its peak memory is the sum of every process's peak (this one, the
//! scheduler, the workers and their nannies).

use std::time::Instant;

use oxidask::dataframe::polars::prelude::{self as pl, ChunkAgg};
use oxidask::dataframe::{self as dd, agg, col, lit, How};
use oxidask::Collection;
use serde_json::json;

use crate::array::peak_rss_mib;
use crate::Opts;

fn data_root() -> String {
    std::env::var("OXIDASK_BENCH_DATA").unwrap_or_else(|_| "benchmarks/data".into())
}

/// The data of the layout `OXIDASK_BENCH_LAYOUT` names (`sorted`, the default, or `random`).
fn data_dir(n: usize) -> String {
    match std::env::var("OXIDASK_BENCH_LAYOUT").as_deref() {
        Ok("random") => random_dir(n),
        _ => format!("{}/taxi-{n}", data_root()),
    }
}

/// The data with rows in random order, whatever the layout.
fn random_dir(n: usize) -> String {
    format!("{}/taxi-{n}-random", data_root())
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// `[groups, total count, sum((value + 2) * count)]` with null as -1, as the reference.
fn counts_check(df: &pl::DataFrame, column: &str) -> Result<serde_json::Value, String> {
    let values = df
        .column(column)
        .map_err(err)?
        .cast(&pl::DataType::Float64)
        .map_err(err)?;
    let counts = df
        .column("count")
        .map_err(err)?
        .cast(&pl::DataType::Int64)
        .map_err(err)?;
    let (values, counts) = (values.f64().map_err(err)?, counts.i64().map_err(err)?);
    let mut total = 0i64;
    let mut weighted = 0i64;
    for (v, c) in values.iter().zip(counts.iter()) {
        let v = v.map_or(-1, |v| v as i64);
        let c = c.unwrap_or(0);
        total += c;
        weighted += (v + 2) * c;
    }
    Ok(json!([df.height(), total, weighted]))
}

fn round(v: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (v * m).round() / m
}

fn f64_sum(df: &pl::DataFrame, c: &str) -> Result<f64, String> {
    df.column(c)
        .map_err(err)?
        .cast(&pl::DataType::Float64)
        .map_err(err)?
        .f64()
        .map_err(err)?
        .sum()
        .ok_or_else(|| "empty".to_string())
}

/// `[rows, total_amount summed]` of a frame set_index produced and persisted, and how
/// balanced its partitions are: the largest partition's rows / the mean partition's.
fn indexed_check(indexed: &dd::DataFrame) -> Result<(serde_json::Value, f64), String> {
    let lens = (0..indexed.npartitions())
        .map(|i| indexed.partitions([i]).len())
        .collect::<Result<Vec<usize>, _>>()
        .map_err(err)?;
    let n: usize = lens.iter().sum();
    let total = indexed
        .column("total_amount")
        .sum()
        .compute_f64()
        .map_err(err)?;
    let max = lens.iter().copied().max().unwrap_or(0) as f64;
    let skew = max * lens.len() as f64 / n.max(1) as f64;
    Ok((json!([n, round(total, 2)]), round(skew, 2)))
}

/// January's file, read as the reference reads it (`dd.read_parquet(file)`): split by row
/// groups into partitions of about 256 MiB, as Dask does by default.
fn january(d: &str) -> dd::DataFrame {
    dd::read_parquet(format!("{d}/parquet/yellow_tripdata_2019-01.parquet"))
}

/// Runs `case` on the threaded scheduler.
pub fn run(case: &str, opts: &Opts) -> Result<serde_json::Value, String> {
    let mut extra = serde_json::Map::new();
    let start = Instant::now();
    let check = query(case, opts, &mut extra)?;
    let seconds = start.elapsed().as_secs_f64();
    extra.extend([
        ("seconds".into(), json!(seconds)),
        ("peak_mib".into(), json!(peak_rss_mib())),
        ("check".into(), check),
    ]);
    Ok(extra.into())
}

/// Runs `case` on a scheduler process and two worker processes (one thread each) started
/// outside the timed region.
pub fn run_distributed(case: &str, opts: &Opts) -> Result<serde_json::Value, String> {
    let cluster = crate::procs::Cluster::start(2)?;
    let client = cluster.client()?;
    let mut extra = serde_json::Map::new();
    let start = Instant::now();
    let check = oxidask::config::with_scheduler(std::sync::Arc::new(client.clone()), || {
        query(case, opts, &mut extra)
    })?;
    let seconds = start.elapsed().as_secs_f64();
    // Every process's peak, read while they all still run.
    let peak = crate::procs::tree_peak_mib(std::process::id());
    drop(client);
    drop(cluster);
    extra.extend([
        ("seconds".into(), json!(seconds)),
        ("peak_mib".into(), json!(peak)),
        ("check".into(), check),
    ]);
    Ok(extra.into())
}

/// The query of `case`; returns its check value (equal to the reference's) and puts other
/// figures it reports in `extra`.
fn query(
    case: &str,
    opts: &Opts,
    extra: &mut serde_json::Map<String, serde_json::Value>,
) -> Result<serde_json::Value, String> {
    let d = data_dir(opts.n);
    let pq = format!("{d}/parquet");
    let check = match case {
        "value-counts" => {
            let r = dd::read_parquet(pq.as_str())
                .column("passenger_count")
                .value_counts()
                .compute()
                .map_err(err)?;
            counts_check(&r, "passenger_count")?
        }
        "groupby-mean" => {
            let r = dd::read_parquet(pq.as_str())
                .groupby(["VendorID"])
                .mean("total_amount")
                .compute()
                .map_err(err)?;
            json!([r.height(), round(f64_sum(&r, "total_amount")?, 6)])
        }
        "groupby-agg" => {
            let r = dd::read_parquet(pq.as_str())
                .groupby(["PULocationID"])
                .agg([
                    agg::sum("total_amount").alias("s"),
                    agg::mean("total_amount").alias("m"),
                    agg::max("total_amount").alias("x"),
                    agg::mean("trip_distance").alias("d"),
                    agg::count("tip_amount").alias("c"),
                ])
                .compute()
                .map_err(err)?;
            json!([
                r.height(),
                round(f64_sum(&r, "s")?, 2),
                f64_sum(&r, "c")? as i64
            ])
        }
        "filter-count" => {
            let n = dd::read_parquet(pq.as_str())
                .filter(col("trip_distance").gt(lit(10.0)))
                .len()
                .map_err(err)?;
            json!(n)
        }
        "merge-count" | "merge-count-all" => {
            let zones = dd::read_parquet(format!("{d}/zones.parquet"));
            let trips = dd::read_parquet(pq.as_str());
            // `merge-count-all`: no column selection first (the optimizer prunes the read).
            let trips = if case == "merge-count" {
                trips.columns_subset(["PULocationID"])
            } else {
                trips
            };
            let r = trips
                .merge(&zones, &["PULocationID"], &["LocationID"], How::Inner)
                .column("Borough")
                .value_counts()
                .compute()
                .map_err(err)?;
            let names = r
                .column("Borough")
                .map_err(err)?
                .str()
                .map_err(err)?
                .clone();
            let counts = r
                .column("count")
                .map_err(err)?
                .cast(&pl::DataType::Int64)
                .map_err(err)?;
            let counts = counts.i64().map_err(err)?;
            let mut pairs: Vec<(String, i64)> = names
                .iter()
                .zip(counts.iter())
                .map(|(n, c)| (n.unwrap_or("None").to_owned(), c.unwrap_or(0)))
                .collect();
            pairs.sort();
            json!(pairs
                .into_iter()
                .map(|(n, c)| json!([n, c]))
                .collect::<Vec<_>>())
        }
        "set-index" | "set-index-unsorted" => {
            // `set-index-unsorted`: January in random row order, whatever the layout.
            let src = if case == "set-index" {
                d.clone()
            } else {
                random_dir(opts.n)
            };
            let indexed = january(&src)
                .set_index("tpep_pickup_datetime", None)
                .persist()
                .map_err(err)?;
            let n = indexed.len().map_err(err)?;
            let total = indexed
                .column("total_amount")
                .sum()
                .compute_f64()
                .map_err(err)?;
            json!([n, round(total, 2)])
        }
        "set-index-string" => {
            // January's trips indexed by their pick-up zone's name (a string key).
            let zones = dd::read_parquet(format!("{d}/zones.parquet"));
            let indexed = january(&d)
                .merge(&zones, &["PULocationID"], &["LocationID"], How::Inner)
                .set_index("Zone", None)
                .persist()
                .map_err(err)?;
            let (check, skew) = indexed_check(&indexed)?;
            // The balance is reported, not compared (each side samples its own bounds).
            extra.insert("max_partition_share".into(), json!(skew));
            check
        }
        "read-csv" => {
            let r = dd::read_csv(format!("{d}/csv/*.csv"))
                .column("passenger_count")
                .value_counts()
                .compute()
                .map_err(err)?;
            counts_check(&r, "passenger_count")?
        }
        other => return Err(format!("unknown case {other}")),
    };
    Ok(check)
}
