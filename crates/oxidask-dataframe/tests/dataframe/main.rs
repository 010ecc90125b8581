//! Dataframe tests: every operation against plain Polars on the same data (the oracle), over
//! several partition counts including empty partitions, nulls and skewed keys; files on disk
//! and on a real S3 endpoint (moto's server on loopback).
//!
//! One test binary for the crate, so Polars is linked once.

use oxidask_local as _;

mod common;
mod distributed;
mod frame;
mod io;
mod optimize;
mod p2p;
mod prune;
mod regressions;
mod row_groups;
mod s3;
