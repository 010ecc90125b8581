//! Hash shuffles and joins.
//!
//! A shuffle moves every row to the output partition its key hashes to. A task shuffle
//! splits each input partition into `m` pieces (one task), picks each piece out (a task per
//! input and output, so on a cluster an output partition fetches only its pieces), and
//! concatenates each output partition's pieces; a P2P shuffle (`p2p.rs`) does the same with
//! O(n + m) tasks through the workers' shuffle services. Joins run partition-wise on co-partitioned inputs, or broadcast a
//! one-partition side to every partition of the other.

use std::sync::Arc;

use oxidask_core::tokenize::Tokenizer;
use oxidask_core::{Arg, Key, Task, Value};
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::FrameError;
use crate::frame::DataFrame;
use crate::p2p::ShuffleMethod;
use crate::partition::{Partition, Plan};
use crate::plan::{apply_task, Bounds, FrameOp, Kind, Layer, Node};

/// How a shuffle assigns rows to `m` partitions.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SplitSpec {
    pub by: SplitBy,
    pub m: u32,
}

/// Hash partitioning, or range partitioning by a column's values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum SplitBy {
    /// A hash of these columns.
    Hash(Vec<String>),
    /// Ranges of one column (compared as its physical value in `f64`): partition `j` holds
    /// values in `[bounds[j-1], bounds[j])`; nulls go last; `descending` reverses the order.
    Range {
        column: String,
        bounds: Vec<f64>,
        descending: bool,
    },
    /// Ranges of one string column (byte-wise order, as Polars sorts strings): partition `j`
    /// holds values in `[bounds[j-1], bounds[j])`; nulls go last; `descending` reverses.
    StrRange {
        column: String,
        bounds: Vec<String>,
        descending: bool,
    },
}

/// A column as numbers (datetimes as their integer timestamps).
pub(crate) fn physical(column: &str) -> Expr {
    col(column).to_physical().cast(DataType::Float64)
}

const SEEDS: [[u64; 4]; 4] = [
    [0x243F_6A88, 0x85A3_08D3, 0x1319_8A2E, 0x0370_7344],
    [0xA409_3822, 0x299F_31D0, 0x082E_FA98, 0xEC4E_6C89],
    [0x4528_21E6, 0x38D0_1377, 0xBE54_66CF, 0x34E9_0C6C],
    [0xC0AC_29B7, 0xC97C_50DD, 0x3F84_D5B5, 0xB547_0917],
];

/// The output partition of every row: a hash of the keys (cast to a common type, so both
/// sides of a join agree) modulo `m`.
fn target(on: &[String], m: u32) -> Expr {
    let mut h: Option<Expr> = None;
    for (i, c) in on.iter().enumerate() {
        let s = SEEDS[i % SEEDS.len()];
        let e = key_expr(c).hash(s[0], s[1], s[2], s[3]);
        h = Some(match h {
            None => e,
            Some(prev) => prev.xor(e),
        });
    }
    h.unwrap_or_else(|| lit(0u64)) % lit(m as u64)
}

/// Keys hash by value across integer widths and between ints and floats of equal value.
fn key_expr(c: &str) -> Expr {
    col(c)
}

/// Splits a partition into its `m` pieces: each row's output partition is computed (a hash
/// of the keys, or a binary search of the range bounds) and each piece gathers its rows in
/// their order.
pub(crate) fn split(
    spec: &SplitSpec,
    df: &polars::prelude::DataFrame,
) -> Result<Vec<Partition>, FrameError> {
    let m = spec.m as usize;
    let err = |e| FrameError::polars("shuffle", e);
    if df.height() == 0 || m <= 1 {
        let mut out = vec![Partition(df.clone())];
        out.extend((1..m).map(|_| Partition(df.clear())));
        return Ok(out);
    }
    let targets: Vec<u32> = match &spec.by {
        SplitBy::Range {
            column,
            bounds,
            descending,
        } => range_targets(
            df.column(column.as_str()).map_err(err)?,
            bounds,
            *descending,
            spec.m,
        )?,
        SplitBy::StrRange {
            column,
            bounds,
            descending,
        } => {
            let c = df.column(column.as_str()).map_err(err)?;
            let c = c.str().map_err(err)?;
            let last = spec.m - 1;
            c.iter()
                .map(|v| match v {
                    None => last,
                    Some(v) => {
                        let i = bounds.partition_point(|b| b.as_str() <= v) as u32;
                        if *descending {
                            last - i
                        } else {
                            i
                        }
                    }
                })
                .collect()
        }
        SplitBy::Hash(on) => {
            let t = df
                .clone()
                .lazy()
                .select([target(on, spec.m).cast(DataType::UInt32).alias("t")])
                .collect()
                .map_err(err)?;
            let t = t.column("t").and_then(|c| c.u32().cloned()).map_err(err)?;
            t.iter().map(|v| v.unwrap_or(0)).collect()
        }
    };
    Ok(pieces_by_target(df, &targets, m))
}

/// Each row's range: the number of bounds at or below its value (compared as `f64`, NaN as
/// +inf: Polars sorts NaN after every number), reversed when `descending`; nulls go to the
/// last partition (every partition sorts them last).
fn range_targets(
    c: &Column,
    bounds: &[f64],
    descending: bool,
    m: u32,
) -> Result<Vec<u32>, FrameError> {
    let err = |e| FrameError::polars("shuffle", e);
    let x = c.to_physical_repr().cast(&DataType::Float64).map_err(err)?;
    let x = x.f64().map_err(err)?;
    let last = m - 1;
    let find = |v: f64| {
        let v = if v.is_nan() { f64::INFINITY } else { v };
        let i = bounds.partition_point(|b| *b <= v) as u32;
        if descending {
            last - i
        } else {
            i
        }
    };
    let mut out = Vec::with_capacity(x.len());
    for arr in x.downcast_iter() {
        if arr.validity().is_none_or(|v| v.unset_bits() == 0) {
            out.extend(arr.values().iter().map(|v| find(*v)));
        } else {
            out.extend(arr.iter().map(|v| v.map_or(last, |v| find(*v))));
        }
    }
    Ok(out)
}

/// The pieces of `df` by each row's output partition: a counting sort of the row numbers
/// (stable) and a gather per piece, each its own buffers, so an output frees its pieces as
/// soon as it has them (slices of one gathered frame would keep every input's rows alive
/// until the last output); no gather when every row goes to one output.
fn pieces_by_target(df: &polars::prelude::DataFrame, targets: &[u32], m: usize) -> Vec<Partition> {
    let mut counts = vec![0usize; m];
    for t in targets {
        counts[*t as usize] += 1;
    }
    if let Some(j) = counts.iter().position(|c| *c == df.height()) {
        return (0..m)
            .map(|i| Partition(if i == j { df.clone() } else { df.clear() }))
            .collect();
    }
    let mut starts = Vec::with_capacity(m);
    let mut at = 0usize;
    for c in &counts {
        starts.push(at);
        at += c;
    }
    let mut next = starts.clone();
    let mut order = vec![0 as IdxSize; targets.len()];
    for (i, t) in targets.iter().enumerate() {
        let slot = &mut next[*t as usize];
        order[*slot] = i as IdxSize;
        *slot += 1;
    }
    starts
        .iter()
        .zip(&counts)
        .map(|(s, c)| {
            // SAFETY: every index is a row of `df`.
            Partition(unsafe { df.take_slice_unchecked(&order[*s..*s + *c]) })
        })
        .collect()
}

/// The node with its rows hash-partitioned by `on` into `m` partitions.
pub(crate) fn shuffle(input: &Arc<Node>, on: &[String], m: usize) -> Arc<Node> {
    shuffle_by(input, SplitBy::Hash(on.to_vec()), m)
}

/// The node with its rows moved to partitions by `by`, by the method chosen now
/// ([`crate::p2p::choose`]).
pub(crate) fn shuffle_by(input: &Arc<Node>, by: SplitBy, m: usize) -> Arc<Node> {
    let method = crate::p2p::choose(input.npartitions, m);
    shuffle_by_method(input, by, m, method)
}

/// The node with its rows moved to partitions by `by`, by `method`.
pub(crate) fn shuffle_by_method(
    input: &Arc<Node>,
    by: SplitBy,
    m: usize,
    method: ShuffleMethod,
) -> Arc<Node> {
    let mut t = Tokenizer::new();
    t.write_str("shuffle");
    t.write_token(input.token);
    t.write_data(&Plan(by.clone()));
    t.write_u64(m as u64);
    if method == ShuffleMethod::P2P {
        // Distinct keys: a P2P shuffle and a task shuffle of one frame may meet on a cluster.
        t.write_str("p2p");
    }
    Node::new(
        "shuffle",
        t.finish(),
        input.schema.clone(),
        m,
        Kind::Shuffle {
            input: input.clone(),
            by,
            method,
        },
    )
}

/// The tasks of a shuffle of `input`'s partitions into `m` outputs keyed by `key`.
pub(crate) fn shuffle_layer(
    input: &Node,
    by: &SplitBy,
    m: usize,
    method: ShuffleMethod,
    name: &str,
    token: oxidask_core::Token,
) -> Layer {
    if method == ShuffleMethod::P2P {
        return crate::p2p::p2p_layer(input, by, m, name, token);
    }
    let inner = input.layer();
    let spec = Value::new(Plan(SplitSpec {
        by: by.clone(),
        m: m as u32,
    }));
    let split_name = format!("{name}-split");
    let pick_name = format!("{name}-pick");
    let mut tasks = Vec::new();
    let mut picks: Vec<Vec<Key>> = vec![Vec::with_capacity(inner.outputs.len()); m];
    for (i, k) in inner.outputs.iter().enumerate() {
        let s = Key::block(&split_name, token, &[i as u32]);
        tasks.push((
            s,
            Task::call(
                crate::ops::shuffle_split::op(),
                [Arg::Value(spec.clone()), Arg::Key(*k)],
            ),
        ));
        for (j, col) in picks.iter_mut().enumerate() {
            let p = Key::block(&pick_name, token, &[i as u32, j as u32]);
            tasks.push((
                p,
                Task::call(
                    crate::ops::shuffle_pick::op(),
                    [Arg::Value(Value::new(j as u64)), Arg::Key(s)],
                ),
            ));
            col.push(p);
        }
    }
    let none = Value::new(Plan(Vec::<FrameOp>::new()));
    let mut outputs = Vec::with_capacity(m);
    for (j, pieces) in picks.into_iter().enumerate() {
        let k = Key::block(name, token, &[j as u32]);
        let args = if pieces.is_empty() {
            vec![Arg::Value(Value::new(Partition(
                polars::prelude::DataFrame::empty_with_schema(&input.schema),
            )))]
        } else {
            pieces.into_iter().map(Arg::Key).collect()
        };
        tasks.push((k, apply_task(&none, args)));
        outputs.push(k);
    }
    Layer {
        tasks,
        outputs,
        deps: vec![inner],
    }
}

/// Join types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum How {
    /// Rows with a match on both sides.
    Inner,
    /// Every left row, matched where possible.
    Left,
    /// Every right row, matched where possible.
    Right,
    /// Every row of both sides.
    Outer,
}

/// A join as it runs on each output partition.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JoinSpec {
    pub left_on: Vec<String>,
    pub right_on: Vec<String>,
    pub how: How,
    pub suffix: String,
    pub left_schema: SchemaRef,
    pub right_schema: SchemaRef,
}

/// The columns a join produces from its sides' schemas.
pub(crate) fn join_schema(spec: &JoinSpec) -> PolarsResult<SchemaRef> {
    crate::blocking::collect_schema(crate::join::join_lazy(
        spec,
        polars::prelude::DataFrame::empty_with_schema(&spec.left_schema).lazy(),
        polars::prelude::DataFrame::empty_with_schema(&spec.right_schema).lazy(),
        crate::join::KeepOrder::Any,
    ))
}

/// Which side, if any, is broadcast to every partition of the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinMode {
    BroadcastRight,
    BroadcastLeft,
    /// Hash-shuffled on the keys first, then partition by partition.
    Partitionwise,
    /// Partition by partition as they are (equal divisions on the join keys).
    Aligned,
}

/// Merges two frames on key columns (Dask's `merge`): a one-partition side is broadcast when
/// the join type allows it; otherwise both sides are hash-shuffled on their keys into the same
/// number of partitions and joined partition by partition.
pub(crate) fn merge(
    left: &DataFrame,
    right: &DataFrame,
    left_on: &[&str],
    right_on: &[&str],
    how: How,
) -> DataFrame {
    let go = || -> Result<Arc<Node>, FrameError> {
        let (l, r) = (left.node()?, right.node()?);
        if left_on.len() != right_on.len() || left_on.is_empty() {
            return Err(FrameError::Invalid(format!(
                "merge needs the same number of key columns on both sides (got {left_on:?} and {right_on:?})"
            )));
        }
        for (n, keys) in [(l, left_on), (r, right_on)] {
            for k in keys {
                if n.schema.get(k).is_none() {
                    return Err(FrameError::UnknownColumn {
                        column: (*k).to_owned(),
                        available: n.schema.iter_names().map(|c| c.to_string()).collect(),
                    });
                }
            }
        }
        // Keys of different types are cast to a common one first, so equal values hash
        // alike on both sides (Polars joins them that way too).
        let (mut lcast, mut rcast) = (Vec::new(), Vec::new());
        for (lk, rk) in left_on.iter().zip(right_on) {
            let (ld, rd) = (
                l.schema.get(lk).expect("checked"),
                r.schema.get(rk).expect("checked"),
            );
            if ld == rd {
                continue;
            }
            let common = supertype(ld, rd).ok_or_else(|| {
                FrameError::Invalid(format!(
                    "merge: key `{lk}` is {ld} on the left and `{rk}` is {rd} on the right; cast one of them"
                ))
            })?;
            if ld != &common {
                lcast.push(col(*lk).strict_cast(common.clone()).alias(*lk));
            }
            if rd != &common {
                rcast.push(col(*rk).strict_cast(common).alias(*rk));
            }
        }
        let l = &if lcast.is_empty() {
            l.clone()
        } else {
            l.with_ops("merge-cast", vec![FrameOp::WithColumns(lcast)])?
        };
        let r = &if rcast.is_empty() {
            r.clone()
        } else {
            r.with_ops("merge-cast", vec![FrameOp::WithColumns(rcast)])?
        };
        let spec = JoinSpec {
            left_on: left_on.iter().map(|s| (*s).to_owned()).collect(),
            right_on: right_on.iter().map(|s| (*s).to_owned()).collect(),
            how,
            suffix: "_right".into(),
            left_schema: l.schema.clone(),
            right_schema: r.schema.clone(),
        };
        let schema = join_schema(&spec).map_err(|e| FrameError::polars("merge", e))?;
        // Both sides indexed by their keys with the same divisions: already co-partitioned.
        let aligned = match (&l.index, &r.index) {
            (Some((lc, lb)), Some((rc, rb))) => {
                spec.left_on == [lc.clone()] && spec.right_on == [rc.clone()] && lb == rb
            }
            _ => false,
        };
        // A side may be broadcast when the join keeps only matches of it (the right of
        // inner/left joins, the left of inner/right joins, as Dask): when it is one partition,
        // or its estimated size is at most `dataframe.broadcast-bytes` (the smaller if both).
        let (r_ok, l_ok) = (
            matches!(how, How::Inner | How::Left),
            matches!(how, How::Inner | How::Right),
        );
        let limit = broadcast_bytes();
        let small =
            |n: &Node| limit.and_then(|b| crate::prune::estimated_bytes(n).filter(|&e| e <= b));
        let (r_small, l_small) = (
            r_ok.then(|| small(r)).flatten(),
            l_ok.then(|| small(l)).flatten(),
        );
        let mode = if aligned {
            JoinMode::Aligned
        } else if r.npartitions == 1 && r_ok {
            JoinMode::BroadcastRight
        } else if l.npartitions == 1 && l_ok {
            JoinMode::BroadcastLeft
        } else {
            match (l_small, r_small) {
                (Some(le), Some(re)) if le < re => JoinMode::BroadcastLeft,
                (_, Some(_)) => JoinMode::BroadcastRight,
                (Some(_), None) => JoinMode::BroadcastLeft,
                (None, None) => JoinMode::Partitionwise,
            }
        };
        let (left_in, right_in, np) = match mode {
            JoinMode::BroadcastRight => (l.clone(), r.clone(), l.npartitions),
            JoinMode::BroadcastLeft => (l.clone(), r.clone(), r.npartitions),
            JoinMode::Aligned => (l.clone(), r.clone(), l.npartitions),
            JoinMode::Partitionwise => {
                let m = l.npartitions.max(r.npartitions).max(1);
                (
                    shuffle(l, &spec.left_on, m),
                    shuffle(r, &spec.right_on, m),
                    m,
                )
            }
        };
        let mut t = Tokenizer::new();
        t.write_str("merge");
        t.write_token(l.token);
        t.write_token(r.token);
        t.write_data(&Plan(spec.clone()));
        Ok(Node::new(
            "merge",
            t.finish(),
            schema,
            np,
            Kind::Join {
                left: left_in,
                right: right_in,
                spec: Arc::new(spec),
                mode,
            },
        ))
    };
    DataFrame::from_result(go())
}

/// `dataframe.broadcast-bytes`: the largest estimated size of a merge side broadcast to
/// every partition of the other (`None`: by partition count only).
fn broadcast_bytes() -> Option<u64> {
    match oxidask_config::global() {
        Ok(c) => c.size("dataframe.broadcast-bytes"),
        Err(_) => Some(BROADCAST_BYTES),
    }
}

/// The default of `dataframe.broadcast-bytes` (32 MiB).
const BROADCAST_BYTES: u64 = 32 << 20;

/// Rows sorted by `by` across partitions: sampled quantiles of the first column (computed now,
/// as Dask computes divisions) choose `m` ranges, rows move to their range, each partition is
/// sorted. Returns the frame and the range bounds.
pub(crate) fn sort_values(
    frame: &DataFrame,
    by: &[String],
    descending: bool,
    m: usize,
) -> Result<(Arc<Node>, Bounds), oxidask_core::Error> {
    use oxidask_core::Collection;
    let n = frame.node()?;
    let first = by
        .first()
        .ok_or_else(|| FrameError::Invalid("sort needs at least one column".into()))?;
    // Ranges are cut on numbers (datetimes as timestamps) or on strings; other types
    // (lists, structs...) are sorted in one partition.
    let d = n.schema.get(first.as_str()).expect("checked by the caller");
    if d == &DataType::String {
        return sort_strings(n, by, descending, m);
    }
    let m = if d.is_primitive_numeric() || d.is_temporal() || d.is_bool() {
        m
    } else {
        1
    };
    // Per partition: the non-null count, rows, NaNs, minimum and maximum, and a sample of its
    // values from pseudo-randomly picked rows (each standing for count / kept rows). Polars'
    // `quantile` would re-sort the whole column for each quantile unless the column is
    // flagged sorted, which the streaming engine does not keep (101 sorts per partition were
    // most of set_index's time on randomly ordered data).
    let x = || physical(first);
    let (values, weight) = positional_sample(x(), sample_rows(n.npartitions, m));
    let sample = DataFrame::from_result(n.with_ops(
        "divisions-sample",
        vec![FrameOp::Select(vec![
            x().count().cast(DataType::Float64).alias("n"),
            len().cast(DataType::Float64).alias("rows"),
            x().is_nan().sum().cast(DataType::Float64).alias("nans"),
            x().min().alias("lo"),
            x().max().alias("hi"),
            values.implode(true).alias("v"),
            weight.alias("w"),
        ])],
    ))
    .compute()?;
    if let Some(bounds) = already_sorted(&sample, n.npartitions, descending)? {
        // Partitions already hold increasing, disjoint ranges (a file sorted by the column,
        // as taxi files are by pickup time): sort each in place, no shuffle.
        let sorted = n
            .with_ops(
                "sort-values",
                vec![FrameOp::Sort {
                    by: by.to_vec(),
                    descending: vec![descending; by.len()],
                    nulls_last: true,
                }],
            )
            .map_err(oxidask_core::Error::from)?;
        return Ok((sorted, Bounds::Numbers(bounds)));
    }
    // Weighted points of the global distribution: each sampled value stands for its
    // partition's count / kept rows.
    let err = |e| FrameError::polars("divisions", e);
    let values = sample
        .column("v")
        .and_then(|c| c.list().cloned())
        .map_err(err)?;
    let weights = sample
        .column("w")
        .and_then(|c| c.f64().cloned())
        .map_err(err)?;
    let mut points: Vec<(f64, f64)> = Vec::new();
    for (v, w) in values.amortized_iter().zip(weights.iter()) {
        let (Some(v), Some(w)) = (v, w) else { continue };
        let v = v.as_ref().f64().map_err(err)?;
        points.extend(v.iter().flatten().map(|x| (x, w)));
    }
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: f64 = points.iter().map(|p| p.1).sum();
    let mut bounds = Vec::with_capacity(m.saturating_sub(1));
    let mut acc = 0.0;
    let mut next = 1;
    for (v, w) in &points {
        acc += w;
        while next < m && acc >= total * next as f64 / m as f64 {
            if bounds.last().is_none_or(|b| b < v) {
                bounds.push(*v);
            }
            next += 1;
        }
    }
    let parts = bounds.len() + 1;
    let moved = shuffle_by(
        n,
        SplitBy::Range {
            column: first.clone(),
            bounds: bounds.clone(),
            descending,
        },
        parts,
    );
    let sorted = moved
        .with_ops(
            "sort-values",
            vec![FrameOp::Sort {
                by: by.to_vec(),
                descending: vec![descending; by.len()],
                nulls_last: true,
            }],
        )
        .map_err(oxidask_core::Error::from)?;
    Ok((sorted, Bounds::Numbers(bounds)))
}

/// Rows of each of `npartitions` partitions kept in the sample that cuts `m` ranges: about
/// 100 sampled values per range and 4,000 in all at least, 100 per partition at least.
fn sample_rows(npartitions: usize, m: usize) -> u64 {
    (100 * m).max(4000).div_ceil(npartitions.max(1)).max(100) as u64
}

/// A partition's sample of `key` for cutting ranges: the non-null values of about `k` of its
/// rows, picked by a fixed-seed hash of the row number (the same rows at every run, whatever
/// the values or their order; every row when there are at most `k`), sorted; and the rows
/// each kept value stands for (non-null count / kept). Only the sample is sorted: sorting
/// every value of the key (a string key's most of all) was most of the sampling pass.
fn positional_sample(key: Expr, k: u64) -> (Expr, Expr) {
    let rows = len().cast(DataType::UInt64);
    // Row numbers 1..=rows: a count of the (never null) null flags so far.
    let row_number = key.clone().is_null().cum_count(false);
    let picked = (row_number.hash(
        0x6f78_6964_6173_6b31,
        0x7361_6d70_6c65_2d31,
        0x6469_7669_7369_6f6e,
        0x7261_6e67_6573_2d31,
    ) % rows)
        .lt(lit(k));
    let sorted = key
        .clone()
        .filter(picked)
        .drop_nulls()
        .sort(SortOptions::default());
    let weight = key.count().cast(DataType::Float64) / sorted.clone().len().cast(DataType::Float64);
    (sorted, weight)
}

/// [`sort_values`] on a string column: each partition sends a sample of its values from
/// pseudo-randomly picked rows, weighted by the rows each stands for (computed now); the weighted
/// sample's quantiles cut `m` ranges of strings, rows move to their range, each partition is
/// sorted. Strings are never left in one partition (a bug: they were).
fn sort_strings(
    n: &Arc<Node>,
    by: &[String],
    descending: bool,
    m: usize,
) -> Result<(Arc<Node>, Bounds), oxidask_core::Error> {
    use oxidask_core::Collection;
    let c = by[0].as_str();
    let (values, weight) = positional_sample(col(c), sample_rows(n.npartitions, m));
    let sample = DataFrame::from_result(n.with_ops(
        "divisions-sample",
        vec![FrameOp::Select(vec![values.alias("v"), weight.alias("w")])],
    ))
    .compute()?;
    let err = |e| FrameError::polars("divisions", e);
    let values = sample
        .column("v")
        .and_then(|c| c.str().cloned())
        .map_err(err)?;
    let weights = sample
        .column("w")
        .and_then(|c| c.f64().cloned())
        .map_err(err)?;
    let mut points: Vec<(&str, f64)> = values
        .iter()
        .zip(weights.iter())
        .filter_map(|(v, w)| Some((v?, w.unwrap_or(0.0))))
        .collect();
    points.sort_by(|a, b| a.0.cmp(b.0));
    let total: f64 = points.iter().map(|p| p.1).sum();
    let mut bounds: Vec<String> = Vec::with_capacity(m.saturating_sub(1));
    let (mut acc, mut next) = (0.0, 1);
    for (v, w) in &points {
        // A bound is the first value of the range above it.
        while next < m && acc >= total * next as f64 / m as f64 {
            if bounds.last().is_none_or(|b| b.as_str() < *v) {
                bounds.push((*v).to_owned());
            }
            next += 1;
        }
        acc += w;
    }
    let moved = shuffle_by(
        n,
        SplitBy::StrRange {
            column: c.to_owned(),
            bounds: bounds.clone(),
            descending,
        },
        bounds.len() + 1,
    );
    let sorted = moved
        .with_ops(
            "sort-values",
            vec![FrameOp::Sort {
                by: by.to_vec(),
                descending: vec![descending; by.len()],
                nulls_last: true,
            }],
        )
        .map_err(oxidask_core::Error::from)?;
    Ok((sorted, Bounds::Strings(bounds)))
}

/// The type both `a` and `b` convert to without loss, as Polars decides it (the type of a
/// `when/then/otherwise` over the two), if any.
fn supertype(a: &DataType, b: &DataType) -> Option<DataType> {
    let mut schema = Schema::default();
    schema.with_column("a".into(), a.clone());
    schema.with_column("b".into(), b.clone());
    crate::blocking::collect_schema(
        polars::prelude::DataFrame::empty_with_schema(&schema)
            .lazy()
            .select([when(lit(true))
                .then(col("a"))
                .otherwise(col("b"))
                .alias("c")]),
    )
    .ok()
    .and_then(|s| s.get("c").cloned())
}

/// If the partitions (in order) hold disjoint, increasing ranges of the column with no nulls
/// or NaNs, the interior bounds (each partition's minimum from the second on; an empty
/// partition repeats the bound before it). `sample` has a row per partition with its
/// non-null count `n`, `rows`, `nans`, minimum `lo` and maximum `hi`.
fn already_sorted(
    sample: &polars::prelude::DataFrame,
    npartitions: usize,
    descending: bool,
) -> Result<Option<Vec<f64>>, FrameError> {
    if descending || npartitions < 2 || sample.height() != npartitions {
        return Ok(None);
    }
    let get = |name: &str, row: usize| -> Result<Option<f64>, FrameError> {
        sample
            .column(name)
            .and_then(|c| c.f64().map(|c| c.get(row)))
            .map_err(|e| FrameError::polars("divisions", e))
    };
    let mut ranges: Vec<Option<(f64, f64)>> = Vec::with_capacity(npartitions);
    for row in 0..npartitions {
        let (n, rows, nans) = (
            get("n", row)?.unwrap_or(0.0),
            get("rows", row)?.unwrap_or(0.0),
            get("nans", row)?.unwrap_or(0.0),
        );
        if n != rows || nans > 0.0 {
            return Ok(None);
        }
        ranges.push(match (get("lo", row)?, get("hi", row)?) {
            (Some(lo), Some(hi)) if n > 0.0 => Some((lo, hi)),
            _ => None,
        });
    }
    let mut bounds = Vec::with_capacity(npartitions - 1);
    let mut prev_hi: Option<f64> = None;
    for (lo, hi) in ranges.iter().flatten() {
        if prev_hi.is_some_and(|p| p >= *lo) {
            return Ok(None);
        }
        prev_hi = Some(*hi);
    }
    // Bound j (between partitions j and j+1): the next non-empty partition's minimum.
    for j in 0..npartitions - 1 {
        let next_min = ranges[j + 1..].iter().flatten().map(|r| r.0).next();
        let b = match next_min {
            Some(v) => v,
            None => bounds.last().copied().unwrap_or(f64::INFINITY),
        };
        bounds.push(b);
    }
    Ok(Some(bounds))
}
