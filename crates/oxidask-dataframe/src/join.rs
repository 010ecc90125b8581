//! The tasks of a merge. Each output partition is one Polars query: the streamed side (a file
//! piece read in the query when that side is an unshared read, else a computed partition),
//! joined with the other side, then the operations of what consumes the merge (a selection,
//! the chunk step of `value_counts`…) — so Polars projects before the join and aggregates as
//! it goes instead of materializing every joined row (Polars' own plan for the same query).

use oxidask_core::{Arg, Key, Task, Token, Value};
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::FrameError;
use crate::partition::{Partition, Plan};
use crate::plan::{apply_ops, apply_task, FrameOp, Kind, Layer, Node};
use crate::scan::ScanTask;
use crate::shuffle::{How, JoinMode, JoinSpec};

/// One join task (internal; public only because a registered operation names it): the join,
/// the operations applied to its result, and the sides read by the task itself.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JoinTask {
    pub(crate) spec: JoinSpec,
    /// Applied to the joined rows, in the same query.
    pub(crate) ops: Vec<FrameOp>,
    /// The left side's file piece (then the task's left partitions are empty).
    pub(crate) left_scan: Option<ScanTask>,
    /// The right side's file piece.
    pub(crate) right_scan: Option<ScanTask>,
    /// Which side keeps its row order in the output (the streamed side of a broadcast).
    pub(crate) keep_order: KeepOrder,
}

/// The side whose row order the join output follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeepOrder {
    Left,
    Right,
    /// Polars' default (a partition-wise join of shuffled sides has no order to keep).
    Any,
}

/// The join of `left` and `right` as `spec` says (key columns coalesced, clashing right
/// columns suffixed), keeping `order`'s side's row order.
pub(crate) fn join_lazy(
    spec: &JoinSpec,
    left: LazyFrame,
    right: LazyFrame,
    order: KeepOrder,
) -> LazyFrame {
    let how = match spec.how {
        How::Inner => JoinType::Inner,
        How::Left => JoinType::Left,
        How::Right => JoinType::Right,
        How::Outer => JoinType::Full,
    };
    let lo: Vec<Expr> = spec.left_on.iter().map(|c| col(c.as_str())).collect();
    let ro: Vec<Expr> = spec.right_on.iter().map(|c| col(c.as_str())).collect();
    let maintain = match order {
        KeepOrder::Left => MaintainOrderJoin::Left,
        KeepOrder::Right => MaintainOrderJoin::Right,
        KeepOrder::Any => MaintainOrderJoin::None,
    };
    let mut args = JoinArgs::new(how)
        .with_suffix(Some(spec.suffix.as_str().into()))
        .with_coalesce(JoinCoalesce::CoalesceColumns);
    args.maintain_order = maintain;
    left.join(right, lo, ro, args)
}

/// Runs a join task: both sides, the join and the operations after it in one query.
pub(crate) fn run(
    task: &JoinTask,
    left: &[&Partition],
    right: &[&Partition],
) -> Result<polars::prelude::DataFrame, FrameError> {
    let side = |scan: &Option<ScanTask>, parts: &[&Partition]| -> Result<LazyFrame, FrameError> {
        match scan {
            Some(s) => crate::scan::lazy(s),
            None => Ok(crate::ops::concat_parts(parts)?.lazy()),
        }
    };
    let streamed = task.left_scan.is_some() || task.right_scan.is_some();
    let (l, r) = (side(&task.left_scan, left)?, side(&task.right_scan, right)?);
    // A final sort runs on the collected rows, skipped when they are in order already.
    let (ops, sort) = crate::plan::final_sort(&task.ops);
    let lf = apply_ops(join_lazy(&task.spec, l, r, task.keep_order), ops);
    // A broadcast join with a side read from a file or a consumer's steps fused on: the
    // streaming engine (it joins and aggregates morsel by morsel, the streamed side's order
    // kept). A bare join of frames in memory, or of shuffled partitions (no order to keep,
    // and the in-memory engine's is deterministic): the in-memory engine.
    let out = if task.keep_order != KeepOrder::Any && (streamed || !task.ops.is_empty()) {
        crate::plan::run_query(lf)
    } else {
        lf.collect()
    };
    out.and_then(|df| crate::plan::sort_collected(df, sort))
        .map_err(
            |e| match task.left_scan.as_ref().or(task.right_scan.as_ref()) {
                // Reading or joining: name the piece, as a failed read does.
                Some(scan) => crate::scan::read_error(scan, format!("merge: {e}")),
                None => FrameError::polars("merge", e),
            },
        )
}

/// The file pieces of a node whose reads a join task may do itself: an unshared read.
fn fusable_scan(node: &Node) -> Option<Vec<ScanTask>> {
    match &node.kind {
        Kind::Scan { source, ops } if !node.is_shared() => Some(
            source
                .pieces
                .iter()
                .map(|p| ScanTask {
                    format: source.format.clone(),
                    storage: source.storage.clone(),
                    piece: p.clone(),
                    ops: ops.clone(),
                })
                .collect(),
        ),
        _ => None,
    }
}

/// The tasks of a join with `extra` operations applied to each output partition.
pub(crate) fn join_layer(
    left: &Node,
    right: &Node,
    spec: &JoinSpec,
    mode: JoinMode,
    extra: &[FrameOp],
    name: &str,
    token: Token,
) -> Layer {
    // The streamed side of a broadcast join is read by the join tasks when it is a read.
    let (lscan, rscan) = match mode {
        JoinMode::BroadcastRight => (fusable_scan(left), None),
        JoinMode::BroadcastLeft => (None, fusable_scan(right)),
        JoinMode::Partitionwise | JoinMode::Aligned => (None, None),
    };
    let ll = lscan.is_none().then(|| left.layer());
    let rl = rscan.is_none().then(|| right.layer());
    let credentials = [left, right].into_iter().find_map(|n| match &n.kind {
        Kind::Scan { source, .. } if !source.storage.credentials.is_portable() => {
            Some(source.storage.credentials.clone())
        }
        _ => None,
    });
    let keys = |l: &Layer| -> Vec<Arg> { l.outputs.iter().map(|k| Arg::Key(*k)).collect() };
    let empty = |s: &SchemaRef| {
        vec![Arg::Value(Value::new(Partition(
            polars::prelude::DataFrame::empty_with_schema(s),
        )))]
    };
    let mut tasks = Vec::new();
    let mut outputs = Vec::new();
    // The broadcast side is concatenated once, into one key: a worker fetches it once and
    // every join task there reads that copy.
    let whole = |l: &Layer, side: &str, tasks: &mut Vec<(Key, Task)>| -> Vec<Arg> {
        if l.outputs.len() <= 1 {
            return keys(l);
        }
        let k = Key::block(&format!("{name}-{side}"), token, &[0]);
        let none = Value::new(Plan(Vec::<FrameOp>::new()));
        tasks.push((k, apply_task(&none, keys(l))));
        vec![Arg::Key(k)]
    };
    let (lwhole, rwhole) = match mode {
        JoinMode::BroadcastRight => (
            Vec::new(),
            whole(rl.as_ref().expect("not fused"), "broadcast", &mut tasks),
        ),
        JoinMode::BroadcastLeft => (
            whole(ll.as_ref().expect("not fused"), "broadcast", &mut tasks),
            Vec::new(),
        ),
        _ => (Vec::new(), Vec::new()),
    };
    let n = match mode {
        JoinMode::BroadcastRight | JoinMode::Partitionwise | JoinMode::Aligned => lscan
            .as_ref()
            .map_or_else(|| ll.as_ref().map_or(0, |l| l.outputs.len()), Vec::len),
        JoinMode::BroadcastLeft => rscan
            .as_ref()
            .map_or_else(|| rl.as_ref().map_or(0, |l| l.outputs.len()), Vec::len),
    };
    let keep_order = match mode {
        JoinMode::BroadcastRight => KeepOrder::Left,
        JoinMode::BroadcastLeft => KeepOrder::Right,
        JoinMode::Partitionwise | JoinMode::Aligned => KeepOrder::Any,
    };
    for j in 0..n {
        let out_of = |l: &Option<std::sync::Arc<Layer>>| match l {
            Some(l) => vec![Arg::Key(l.outputs[j])],
            None => Vec::new(),
        };
        let (la, ra) = match mode {
            JoinMode::BroadcastRight => (out_of(&ll), rwhole.clone()),
            JoinMode::BroadcastLeft => (lwhole.clone(), out_of(&rl)),
            JoinMode::Partitionwise | JoinMode::Aligned => (out_of(&ll), out_of(&rl)),
        };
        // A side with no partitions joins as an empty frame; a fused side has none here.
        let la = if la.is_empty() && lscan.is_none() {
            empty(&spec.left_schema)
        } else {
            la
        };
        let ra = if ra.is_empty() && rscan.is_none() {
            empty(&spec.right_schema)
        } else {
            ra
        };
        let task = JoinTask {
            spec: spec.clone(),
            ops: extra.to_vec(),
            left_scan: lscan.as_ref().map(|s| s[j].clone()),
            right_scan: rscan.as_ref().map(|s| s[j].clone()),
            keep_order,
        };
        let plan = match &credentials {
            Some(c) => crate::credentials::plan_value(task, c),
            None => Value::new(Plan(task)),
        };
        let k = Key::block(name, token, &[j as u32]);
        tasks.push((
            k,
            Task::call(
                crate::ops::join_fused::op(),
                [Arg::Value(plan), Arg::List(la), Arg::List(ra)],
            ),
        ));
        outputs.push(k);
    }
    Layer {
        tasks,
        outputs,
        deps: ll.into_iter().chain(rl).collect(),
    }
}
