//! # oxidask-dataframe
//!
//! Dask's DataFrame for Rust: a lazy frame split into partitions along its rows, where every
//! partition is a Polars `DataFrame` and per-partition work is Polars expressions carried as
//! data. The distributed algorithms — tree aggregations, partition-wise reads with pushdown —
//! are ours; the same code runs on the threaded scheduler and on a cluster.
//!
//! ```
//! use oxidask_core::Collection;
//! use oxidask_dataframe::{self as dd, agg, col, lit};
//! # use oxidask_local as _;
//!
//! let trips = polars::df!(
//!     "vendor" => [1i64, 2, 1, 2, 1],
//!     "distance" => [0.5, 12.0, 3.0, 15.5, 1.0],
//!     "fare" => [5.0, 40.0, 12.0, 52.0, 6.5],
//! )
//! .unwrap();
//! let df = dd::from_polars(trips, 2);
//!
//! // Lazy: nothing runs until compute().
//! let long = df.filter(col("distance").gt(lit(10.0)));
//! assert_eq!(long.len().unwrap(), 2);
//!
//! // Many aggregations at once, by tree reduction.
//! let by_vendor = df
//!     .groupby(["vendor"])
//!     .agg([agg::mean("fare"), agg::max("distance").alias("longest"), agg::size("fare").alias("trips")])
//!     .compute()
//!     .unwrap();
//! assert_eq!(by_vendor.height(), 2);
//!
//! let mean_fare = df.column("fare").mean().compute().unwrap();
//! assert_eq!(mean_fare.extract::<f64>(), Some(23.1));
//! ```
//!
//! Files: [`read_parquet`], [`read_csv`], [`read_json`] (local paths, globs, directories,
//! `s3://` with [`StorageOptions`]); [`DataFrame::to_parquet`], [`DataFrame::to_csv`]. S3
//! keys are resolved where the bucket is read — the environment or a named secret, see
//! [`Credentials`] — and never travel in task specs.

pub mod agg;
mod blocking;
mod credentials;
mod error;
mod frame;
mod groupby;
mod hll;
mod join;
mod onekey;
pub mod ops;
mod optimize;
mod p2p;
mod partition;
mod plan;
mod prune;
mod quantile;
mod read;
mod scan;
mod series;
mod shuffle;
mod storage;
mod write;

pub use agg::{Agg, AggFn};
pub use credentials::{Credentials, StaticCredentials};
pub use error::FrameError;
pub use frame::{from_delayed, from_polars, null_of, DataFrame, Predicate};
pub use groupby::{GroupBy, AUTO_SPLIT_OUT_GROUPS};
pub use p2p::{local_shuffle_spilled_bytes, with_shuffle_method, ShuffleMethod, P2P_FROM_PAIRS};
pub use partition::{Partition, Plan};
pub use read::{
    read_csv, read_csv_with, read_json, read_json_with, read_parquet, read_parquet_with,
    CsvOptions, IntoPaths, ParquetOptions, RowGroupSplit, WriteOptions, DEFAULT_PARQUET_BLOCKSIZE,
};
pub use series::{DtAccessor, Operand, Scalar, Series, StrAccessor};
pub use shuffle::How;
pub use storage::StorageOptions;
pub use write::Compression;

/// The Polars this crate is built on (use it for expressions, types and results).
pub use polars;
pub use polars::prelude::{col, lit, DataType, Expr};

/// Partials merged per combine task in tree reductions when the configuration does not say
/// (`dataframe.split-every`).
pub const DEFAULT_SPLIT_EVERY: usize = 8;

/// Partials merged per combine task by default: `dataframe.split-every` of the process's
/// configuration (8 unless set; an invalid configuration falls back to 8 — `oxidask config`
/// shows its error).
pub fn configured_split_every() -> usize {
    oxidask_config::global()
        .ok()
        .and_then(|c| c.int("dataframe.split-every"))
        .map_or(DEFAULT_SPLIT_EVERY, |n| n.max(2) as usize)
}

/// Bytes per partition of splittable text files by default: `dataframe.blocksize` of the
/// process's configuration (64 MiB unless set; `null`: a partition per file).
pub fn configured_blocksize() -> Option<u64> {
    match oxidask_config::global() {
        Ok(c) => c.size("dataframe.blocksize"),
        Err(_) => Some(64 << 20),
    }
}

/// `concat` of frames along rows (Dask's `dd.concat`).
pub fn concat(frames: &[DataFrame]) -> DataFrame {
    DataFrame::concat(frames)
}
