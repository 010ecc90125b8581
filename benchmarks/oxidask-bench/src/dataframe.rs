//! The `dataframe` suite: queries on the synthetic 2019 taxi data (`reference/taxi_gen.py`),
//! read from `$OXIDASK_BENCH_DATA/taxi-{n}` (n = scale per mille), on the threaded scheduler.

use std::time::Instant;

use oxidask::dataframe::polars::prelude::{self as pl, ChunkAgg};
use oxidask::dataframe::{self as dd, agg, col, lit, How};
use oxidask::Collection;
use serde_json::json;

use crate::array::peak_rss_mib;
use crate::Opts;

fn data_dir(n: usize) -> String {
    let root = std::env::var("OXIDASK_BENCH_DATA").unwrap_or_else(|_| "benchmarks/data".into());
    format!("{root}/taxi-{n}")
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

pub fn run(case: &str, opts: &Opts) -> Result<serde_json::Value, String> {
    let d = data_dir(opts.n);
    let pq = format!("{d}/parquet");
    let start = Instant::now();
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
        "set-index" => {
            // A partition per row group (1M rows), as Dask splits the file.
            let january = dd::read_parquet_with(
                format!("{pq}/yellow_tripdata_2019-01.parquet"),
                dd::ParquetOptions {
                    split_row_groups: Some(1),
                    ..Default::default()
                },
            );
            let indexed = january
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
    let seconds = start.elapsed().as_secs_f64();
    Ok(json!({"seconds": seconds, "peak_mib": peak_rss_mib(), "check": check}))
}
