//! The registered operations behind every dataframe task. Their parameters are Polars plan
//! pieces carried as data, so a stock worker runs any dataframe workload.

#![allow(clippy::ptr_arg)]

use polars::prelude::*;

use crate::error::FrameError;
use crate::partition::{Partition, Plan};
use crate::plan::{apply_ops, FrameOp};
use crate::scan::ScanTask;
use crate::shuffle::SplitSpec;
use crate::write::WriteTask;

/// Reads one piece of a file with the frame's operations fused on.
#[oxidask_core::task(crate = oxidask_core)]
pub fn scan(task: &Plan<ScanTask>) -> Result<Partition, FrameError> {
    // The synchronous scheduler runs tasks on the caller's thread, which may be async.
    crate::blocking::outside_async_runtime(|| crate::scan::run(&task.0)).map(Partition)
}

/// Concatenates partitions (in order) and applies operations to the result.
#[oxidask_core::task(crate = oxidask_core)]
pub fn apply(ops: &Plan<Vec<FrameOp>>, parts: &[&Partition]) -> Result<Partition, FrameError> {
    let df = concat_parts(parts)?;
    if ops.0.is_empty() {
        return Ok(Partition(df));
    }
    // Frames already in memory: the in-memory engine (no streaming start-up per task).
    let (rest, sort) = crate::plan::final_sort(&ops.0);
    crate::blocking::outside_async_runtime(|| {
        let df = if rest.is_empty() {
            df
        } else {
            apply_ops(df.lazy(), rest).collect()?
        };
        crate::plan::sort_collected(df, sort)
    })
    .map(Partition)
    .map_err(|e| FrameError::polars("applying operations to a partition", e))
}

/// Writes one partition to its file; returns the rows written.
#[oxidask_core::task(crate = oxidask_core)]
pub fn write_part(task: &Plan<WriteTask>, part: &Partition) -> Result<u64, FrameError> {
    crate::blocking::outside_async_runtime(|| crate::write::write_one(&task.0, &part.0))
}

/// Splits a partition into pieces by key hash (the first step of a shuffle).
#[oxidask_core::task(crate = oxidask_core)]
pub fn shuffle_split(
    spec: &Plan<SplitSpec>,
    part: &Partition,
) -> Result<Vec<Partition>, FrameError> {
    crate::blocking::outside_async_runtime(|| crate::shuffle::split(&spec.0, &part.0))
}

/// Picks one piece of a split partition.
#[oxidask_core::task(crate = oxidask_core)]
pub fn shuffle_pick(index: u64, pieces: &Vec<Partition>) -> Result<Partition, FrameError> {
    pieces
        .get(index as usize)
        .cloned()
        .ok_or_else(|| FrameError::Invalid(format!("shuffle piece {index} of {}", pieces.len())))
}

/// Bytes of a partition (Polars' estimate of its buffers).
#[oxidask_core::task(crate = oxidask_core)]
pub fn partition_bytes(part: &Partition) -> u64 {
    part.0.estimated_size() as u64
}

/// Cuts a partition into `pieces` row ranges of near-equal length.
#[oxidask_core::task(crate = oxidask_core)]
pub fn split_rows(pieces: u64, part: &Partition) -> Vec<Partition> {
    let k = pieces.max(1) as usize;
    let h = part.0.height();
    (0..k)
        .map(|j| {
            let (a, b) = (j * h / k, (j + 1) * h / k);
            Partition(part.0.slice(a as i64, b - a))
        })
        .collect()
}

/// A merge's output partition: the join (reading a side's file piece itself when the task
/// says so) and the operations after it, in one Polars query.
#[oxidask_core::task(crate = oxidask_core)]
pub fn join_fused(
    task: &Plan<crate::join::JoinTask>,
    left: &[&Partition],
    right: &[&Partition],
) -> Result<Partition, FrameError> {
    crate::blocking::outside_async_runtime(|| crate::join::run(&task.0, left, right)).map(Partition)
}

/// HyperLogLog registers of a partition of hashes.
#[oxidask_core::task(crate = oxidask_core)]
pub fn hll_chunk(part: &Partition) -> Result<Partition, FrameError> {
    crate::hll::chunk(&part.0).map(Partition)
}

/// Merged HyperLogLog registers.
#[oxidask_core::task(crate = oxidask_core)]
pub fn hll_combine(part: &Partition) -> Result<Partition, FrameError> {
    crate::hll::combine(&part.0).map(Partition)
}

/// The HyperLogLog estimate.
#[oxidask_core::task(crate = oxidask_core)]
pub fn hll_finalize(part: &Partition) -> Result<Partition, FrameError> {
    crate::hll::finalize(&part.0).map(Partition)
}

/// Concatenates partitions vertically.
pub(crate) fn concat_parts(parts: &[&Partition]) -> Result<DataFrame, FrameError> {
    let Some((first, rest)) = parts.split_first() else {
        return Err(FrameError::Invalid("no partitions to concatenate".into()));
    };
    let mut df = first.0.clone();
    for p in rest {
        df.vstack_mut(&p.0)
            .map_err(|e| FrameError::polars("concatenating partitions", e))?;
    }
    Ok(df)
}
