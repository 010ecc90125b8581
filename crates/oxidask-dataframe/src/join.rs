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
    /// Applied to the streamed side (the one `keep_order` names) before the join: the
    /// pre-aggregation of an eager aggregation ([`eager_aggregation`]); `ops` then finish it.
    #[serde(default)]
    pub(crate) streamed_ops: Vec<FrameOp>,
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
    let (mut l, mut r) = (side(&task.left_scan, left)?, side(&task.right_scan, right)?);
    let fail = |e: PolarsError| match task.left_scan.as_ref().or(task.right_scan.as_ref()) {
        // Reading or joining: name the piece, as a failed read does.
        Some(scan) => crate::scan::read_error(scan, format!("merge: {e}")),
        None => FrameError::polars("merge", e),
    };
    match task.keep_order {
        KeepOrder::Left => l = streamed_side(l, &task.streamed_ops).map_err(fail)?,
        KeepOrder::Right => r = streamed_side(r, &task.streamed_ops).map_err(fail)?,
        KeepOrder::Any => {}
    }
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
        .map_err(fail)
}

/// The streamed side with `ops` (an eager aggregation's pre-aggregation) applied: computed
/// now by the one-key kernel when it is a group-by the kernel takes, else left to the query.
fn streamed_side(lf: LazyFrame, ops: &[FrameOp]) -> PolarsResult<LazyFrame> {
    if let [FrameOp::GroupAgg { keys, aggs }] = ops {
        let schema = crate::blocking::collect_schema(lf.clone())?;
        if let Some(g) = crate::onekey::OneKeyGroupBy::recognise(keys, aggs, &schema) {
            return g.run(lf).map(IntoLazy::lazy);
        }
    }
    Ok(apply_ops(lf, ops))
}

/// Whether a join task may read `node`'s pieces itself: an unshared read.
fn is_fusable(node: &Node) -> bool {
    matches!(node.kind, Kind::Scan { .. }) && !node.is_shared()
}

/// The file pieces of a node whose reads a join task may do itself ([`is_fusable`]).
fn fusable_scan(node: &Node) -> Option<Vec<ScanTask>> {
    match &node.kind {
        Kind::Scan { source, ops } if is_fusable(node) => Some(
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
    // Aggregating steps over a broadcast join whose streamed side is a read with few join
    // key values start below the join (eager aggregation).
    let eager = eager_plan(left, right, spec, mode, extra);
    let (streamed_ops, extra) = match eager {
        Some(e) => (e.streamed, e.after),
        None => (Vec::new(), extra.to_vec()),
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
            ops: extra.clone(),
            left_scan: lscan.as_ref().map(|s| s[j].clone()),
            right_scan: rscan.as_ref().map(|s| s[j].clone()),
            keep_order,
            streamed_ops: streamed_ops.clone(),
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

/// The eager aggregation of `extra` (steps fused onto a join's tasks) below the join of
/// `left` and `right`, when the join is a broadcast whose streamed side is an unshared read
/// the join tasks do themselves and [`eager_for`] takes it.
pub(crate) fn eager_plan(
    left: &Node,
    right: &Node,
    spec: &JoinSpec,
    mode: JoinMode,
    extra: &[FrameOp],
) -> Option<Eager> {
    match mode {
        JoinMode::BroadcastRight if is_fusable(left) => eager_for(spec, true, extra, left),
        JoinMode::BroadcastLeft if is_fusable(right) => eager_for(spec, false, extra, right),
        _ => None,
    }
}

/// How many times fewer groups than rows the streamed side's join keys (and grouped columns)
/// must promise for an aggregation to start below the join: with fewer rows saved the
/// pre-aggregation's hashing costs about what the join's probe does.
const EAGER_ROWS_PER_GROUP: u64 = 8;

/// [`eager_aggregation`] of `ops` when the streamed read's footer statistics promise few
/// groups of the columns it groups by ([`crate::prune::estimated_groups_and_rows`]).
fn eager_for(
    spec: &JoinSpec,
    streamed_left: bool,
    ops: &[FrameOp],
    streamed: &Node,
) -> Option<Eager> {
    let e = eager_aggregation(spec, streamed_left, ops)?;
    let (groups, rows) = crate::prune::estimated_groups_and_rows(streamed, &e.grouped)?;
    (groups.saturating_mul(EAGER_ROWS_PER_GROUP) <= rows).then_some(e)
}

/// An aggregation moved below a join: `streamed` groups the streamed side by its join keys
/// (and the grouping columns it holds) into partial aggregates, `after` — the join's
/// operations rewritten — combines them over the joined rows.
#[derive(Debug)]
pub(crate) struct Eager {
    pub streamed: Vec<FrameOp>,
    pub after: Vec<FrameOp>,
    /// The streamed side's columns `streamed` groups by.
    pub grouped: Vec<String>,
}

/// Eager aggregation (aggregation pushed below a join): when the operations after a broadcast
/// join are column selections and filters of columns that survive the pre-aggregation (the
/// other side's, or grouped ones), then a group-by whose aggregations are row counts and sums,
/// counts, minima and maxima of the streamed side's columns (and counts, minima and maxima
/// of the other side's), each streamed row group of equal join keys is aggregated first and
/// joined once instead of row by row. `value_counts` of a column of a small dimension table
/// merged onto a large fact table then joins one row per distinct key, not every row — the
/// fact rows are only counted.
///
/// Exact for inner joins and for joins keeping the streamed side's unmatched rows: a
/// pre-aggregated row stands for its rows in every joined row they would have made (a null
/// key's group matches nothing, as its rows would not). `None` when the operations have
/// another shape, the join keeps the broadcast side's unmatched rows, or a column name
/// appears on both sides other than as the shared join key (its suffix would change).
pub(crate) fn eager_aggregation(
    spec: &JoinSpec,
    streamed_left: bool,
    ops: &[FrameOp],
) -> Option<Eager> {
    let ok_how = match spec.how {
        How::Inner => true,
        How::Left => streamed_left,
        How::Right => !streamed_left,
        How::Outer => false,
    };
    if !ok_how {
        return None;
    }
    let (s_schema, b_schema, s_on, b_on) = if streamed_left {
        (
            &spec.left_schema,
            &spec.right_schema,
            &spec.left_on,
            &spec.right_on,
        )
    } else {
        (
            &spec.right_schema,
            &spec.left_schema,
            &spec.right_on,
            &spec.left_on,
        )
    };
    // A name on both sides is only allowed as a shared join key (coalesced into one column).
    for name in s_schema.iter_names() {
        if b_schema.get(name).is_some() {
            let shared = s_on
                .iter()
                .zip(b_on)
                .any(|(s, b)| s == name.as_str() && b == name.as_str());
            if !shared {
                return None;
            }
        }
    }
    // Column selections and filters, then the group-by.
    let at = ops
        .iter()
        .position(|o| !is_projection(o) && !matches!(o, FrameOp::Filter(_)))?;
    let FrameOp::GroupAgg { keys, aggs } = &ops[at] else {
        return None;
    };
    let filters: Vec<&Expr> = ops[..at]
        .iter()
        .filter_map(|o| match o {
            FrameOp::Filter(e) => Some(e),
            _ => None,
        })
        .collect();
    let in_s = |c: &str| s_schema.get(c).is_some();
    let in_b = |c: &str| b_schema.get(c).is_some();
    let mut grouped: Vec<String> = s_on.clone();
    for k in keys {
        let Expr::Column(k) = k else { return None };
        if in_s(k) {
            if !grouped.iter().any(|g| g == k.as_str()) {
                grouped.push(k.to_string());
            }
        } else if !in_b(k) {
            return None;
        }
    }
    let fresh = |i: usize| -> Option<String> {
        let n = format!("__eager_{i}");
        (!in_s(&n) && !in_b(&n)).then_some(n)
    };
    let rows_col = fresh(usize::MAX)?;
    let mut need_rows = false;
    let mut pre: Vec<Expr> = Vec::new();
    let mut post: Vec<(Expr, PlSmallStr)> = Vec::new();
    // A column that is still there after the pre-aggregation: the other side's, or one the
    // streamed side is grouped by.
    let kept = |c: &str| in_b(c) || grouped.iter().any(|g| g == c);
    // Filters stay after the join when they read only such columns: every row of a
    // pre-aggregated group has the same values there, so a joined group passes or fails whole
    // (`value_counts`' filter of missing values of the counted column, for one).
    for e in &filters {
        let used = crate::optimize::leaves(std::iter::once(*e))?;
        if !used.iter().all(|c| kept(c)) {
            return None;
        }
    }
    for (i, a) in aggs.iter().enumerate() {
        let Expr::Alias(inner, name) = a else {
            return None;
        };
        let partial = |pre: &mut Vec<Expr>| -> Option<String> {
            let t = fresh(i)?;
            pre.push(inner.as_ref().clone().alias(t.as_str()));
            Some(t)
        };
        let combined = match inner.as_ref() {
            Expr::Len => {
                need_rows = true;
                col(rows_col.as_str()).sum()
            }
            Expr::Agg(AggExpr::Sum(x)) => {
                let c = plain_column(x)?;
                if kept(c) || !in_s(c) {
                    return None;
                }
                col(partial(&mut pre)?.as_str()).sum()
            }
            Expr::Agg(AggExpr::Count {
                input,
                include_nulls,
            }) => {
                let Expr::Column(c) = input.as_ref() else {
                    return None;
                };
                if kept(c) {
                    need_rows = true;
                    let rows = col(rows_col.as_str());
                    if *include_nulls {
                        rows.sum()
                    } else {
                        rows.filter(col(c.as_str()).is_not_null()).sum()
                    }
                } else if in_s(c) {
                    col(partial(&mut pre)?.as_str()).sum()
                } else {
                    return None;
                }
            }
            Expr::Agg(AggExpr::Min { input, .. } | AggExpr::Max { input, .. }) => {
                let Expr::Column(c) = input.as_ref() else {
                    return None;
                };
                if kept(c) {
                    inner.as_ref().clone()
                } else if in_s(c) {
                    let t = partial(&mut pre)?;
                    match inner.as_ref() {
                        Expr::Agg(AggExpr::Min { propagate_nans, .. }) => Expr::Agg(AggExpr::Min {
                            input: std::sync::Arc::new(col(t.as_str())),
                            propagate_nans: *propagate_nans,
                        }),
                        Expr::Agg(AggExpr::Max { propagate_nans, .. }) => Expr::Agg(AggExpr::Max {
                            input: std::sync::Arc::new(col(t.as_str())),
                            propagate_nans: *propagate_nans,
                        }),
                        _ => unreachable!("matched above"),
                    }
                } else {
                    return None;
                }
            }
            _ => return None,
        };
        post.push((combined, name.clone()));
    }
    if need_rows {
        pre.push(len().alias(rows_col.as_str()));
    }
    // The result keeps the dtypes the group-by had over the joined rows.
    let joined = crate::shuffle::join_schema(spec).ok()?;
    let target = crate::plan::output_schema(&joined, &ops[..=at]).ok()?;
    let post: Vec<Expr> = post
        .into_iter()
        .map(|(e, name)| {
            let dtype = target.get(name.as_str()).cloned();
            dtype.map(|d| e.cast(d).alias(name))
        })
        .collect::<Option<_>>()?;
    let streamed = vec![FrameOp::GroupAgg {
        keys: grouped.iter().map(|g| col(g.as_str())).collect(),
        aggs: pre,
    }];
    let mut after: Vec<FrameOp> = filters
        .into_iter()
        .map(|e| FrameOp::Filter(e.clone()))
        .collect();
    after.push(FrameOp::GroupAgg {
        keys: keys.clone(),
        aggs: post,
    });
    after.extend_from_slice(&ops[at + 1..]);
    Some(Eager {
        streamed,
        after,
        grouped,
    })
}

/// A selection of plain columns (dropped by [`eager_aggregation`]: the group-by after it
/// names the columns it reads).
fn is_projection(op: &FrameOp) -> bool {
    let column = |e: &Expr| match e {
        Expr::Column(_) => true,
        // `column("x")` selects `col("x").alias("x")`.
        Expr::Alias(inner, name) => matches!(inner.as_ref(), Expr::Column(c) if c == name),
        _ => false,
    };
    matches!(op, FrameOp::Select(es) if es.iter().all(column))
}

/// The column `e` reads when it is a column or a cast of one.
fn plain_column(e: &Expr) -> Option<&str> {
    match e {
        Expr::Column(c) => Some(c.as_str()),
        Expr::Cast { expr, .. } => plain_column(expr),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agg::{self, Agg, AggFn};
    use proptest::prelude::*;

    fn spec(s: &DataFrame, b: &DataFrame, how: How, streamed_left: bool) -> JoinSpec {
        let (l, r) = if streamed_left { (s, b) } else { (b, s) };
        let (lo, ro) = if streamed_left {
            ("k", "key")
        } else {
            ("key", "k")
        };
        JoinSpec {
            left_on: vec![lo.into()],
            right_on: vec![ro.into()],
            how,
            suffix: "_right".into(),
            left_schema: l.schema().clone(),
            right_schema: r.schema().clone(),
        }
    }

    /// The chunk step of `aggs` grouped by `keys`, as a groupby over the join plans it.
    fn chunk(spec: &JoinSpec, keys: &[&str], aggs: &[Agg]) -> Vec<FrameOp> {
        let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        let joined = crate::shuffle::join_schema(spec).unwrap();
        agg::plan(&joined, &keys, aggs).unwrap().chunk
    }

    /// The join and `ops` as written, and with the aggregation moved below the join; both
    /// sorted by every column for comparison.
    fn both(
        spec: &JoinSpec,
        s: &DataFrame,
        b: &DataFrame,
        streamed_left: bool,
        ops: &[FrameOp],
        e: &Eager,
    ) -> (DataFrame, DataFrame) {
        let run = |pre: &[FrameOp], after: &[FrameOp]| {
            let s = apply_ops(s.clone().lazy(), pre);
            let (l, r, order) = if streamed_left {
                (s, b.clone().lazy(), KeepOrder::Left)
            } else {
                (b.clone().lazy(), s, KeepOrder::Right)
            };
            let df = apply_ops(join_lazy(spec, l, r, order), after)
                .collect()
                .unwrap();
            let names: Vec<PlSmallStr> = df.get_column_names_owned();
            df.sort(names, SortMultipleOptions::default()).unwrap()
        };
        (run(&[], ops), run(&e.streamed, &e.after))
    }

    proptest! {
        /// The eager aggregation gives the group-by over the joined rows, on random sides:
        /// keys with nulls and keys missing from either side, a broadcast side with duplicate
        /// keys, inner and outer-on-the-streamed-side joins, grouping by either side's columns.
        #[test]
        fn an_aggregation_below_a_join_equals_it_above(
            rows in proptest::collection::vec(
                (proptest::option::weighted(0.9, 0i64..6), 0i64..3, proptest::option::weighted(0.8, -5i64..5)),
                0..60,
            ),
            dims in proptest::collection::vec((proptest::option::weighted(0.9, 0i64..8), proptest::option::weighted(0.8, 0usize..3)), 0..10),
            streamed_left in any::<bool>(),
            inner in any::<bool>(),
            by_streamed in any::<bool>(),
            filtered in any::<bool>(),
        ) {
            let s = df!(
                "k" => rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                "g" => rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                "v" => rows.iter().map(|r| r.2).collect::<Vec<_>>(),
                "f" => rows.iter().map(|r| r.2.map(|v| v as f64 / 4.0)).collect::<Vec<_>>(),
            ).unwrap();
            let b = df!(
                "key" => dims.iter().map(|d| d.0).collect::<Vec<_>>(),
                "name" => dims.iter().map(|d| d.1.map(|i| ["x", "y", "z"][i])).collect::<Vec<_>>(),
            ).unwrap();
            let how = match (inner, streamed_left) {
                (true, _) => How::Inner,
                (false, true) => How::Left,
                (false, false) => How::Right,
            };
            let spec = spec(&s, &b, how, streamed_left);
            let keys: &[&str] = if by_streamed { &["g"] } else { &["name"] };
            let aggs = vec![
                Agg::new("v", AggFn::Sum).alias("vs"),
                Agg::new("f", AggFn::Mean).alias("fm"),
                Agg::new("v", AggFn::Count).alias("vc"),
                Agg::new("v", AggFn::Size).alias("n"),
                Agg::new("v", AggFn::Min).alias("vmin"),
                Agg::new("f", AggFn::Max).alias("fmax"),
                Agg::new("name", AggFn::Count).alias("names"),
                Agg::new("name", AggFn::Max).alias("last_name"),
                Agg::new("g", AggFn::Min).alias("gmin"),
            ];
            let mut ops = chunk(&spec, keys, &aggs);
            if filtered {
                // Filters of the broadcast side's column and of a grouped one (kept: they stay
                // after the join), as `value_counts` drops missing values.
                ops.insert(0, FrameOp::Filter(col("name").is_not_null()));
                if by_streamed {
                    ops.insert(0, FrameOp::Filter(col("g").gt(lit(0))));
                }
            }
            let e = eager_aggregation(&spec, streamed_left, &ops);
            prop_assert!(e.is_some(), "{:?}", ops);
            let e = e.unwrap();
            let (want, got) = both(&spec, &s, &b, streamed_left, &ops, &e);
            prop_assert!(want.equals_missing(&got), "as written:\n{}\nbelow the join:\n{}", want, got);
        }
    }

    #[test]
    fn value_counts_of_the_broadcast_side_counts_the_streamed_rows_by_key() {
        let s = df!("k" => [1i64, 1, 2, 3, 3, 3], "g" => [0i64; 6], "v" => [1i64; 6], "f" => [0.5f64; 6]).unwrap();
        let b = df!("key" => [1i64, 2, 2], "name" => ["a", "b", "c"]).unwrap();
        let spec = spec(&s, &b, How::Inner, true);
        let mut ops = vec![FrameOp::Select(vec![col("name").alias("name")])];
        ops.extend(chunk(
            &spec,
            &["name"],
            &[Agg::new("name", AggFn::Size).alias("count")],
        ));
        let e = eager_aggregation(&spec, true, &ops).expect("a count by a broadcast column");
        // The streamed side is grouped by its join key only.
        assert_eq!(e.grouped, ["k"]);
        let (want, got) = both(&spec, &s, &b, true, &ops, &e);
        assert!(want.equals_missing(&got), "{want}\n{got}");
        assert_eq!(
            got.columns()[1]
                .u32()
                .unwrap()
                .into_no_null_iter()
                .collect::<Vec<_>>(),
            [2, 1, 1]
        );
    }

    #[test]
    fn shapes_the_rewrite_does_not_take() {
        let s = df!("k" => [1i64], "v" => [1.0f64], "name" => ["a"]).unwrap();
        let b = df!("key" => [1i64], "name" => ["a"]).unwrap();
        let b2 = df!("key" => [1i64], "w" => [2.0f64]).unwrap();
        let s2 = df!("k" => [1i64], "v" => [1.0f64]).unwrap();
        // A clashing column name (its suffix would change).
        let clash = spec(&s, &b, How::Inner, true);
        let ops = chunk(&clash, &["name"], &[Agg::new("v", AggFn::Sum)]);
        assert!(eager_aggregation(&clash, true, &ops).is_none());
        let plain = spec(&s2, &b2, How::Inner, true);
        // A sum of the broadcast side's column (each of its rows counts many times).
        let ops = chunk(&plain, &["k"], &[Agg::new("w", AggFn::Sum)]);
        assert!(eager_aggregation(&plain, true, &ops).is_none());
        // A standard deviation (not a sum of partials).
        let ops = chunk(&plain, &["k"], &[agg::std("v")]);
        assert!(eager_aggregation(&plain, true, &ops).is_none());
        // A filter of a streamed column that is aggregated (rows of a group differ there).
        let mut ops = vec![FrameOp::Filter(col("v").gt(lit(1.0)))];
        ops.extend(chunk(&plain, &["k"], &[Agg::new("v", AggFn::Sum)]));
        assert!(eager_aggregation(&plain, true, &ops).is_none());
        // A join keeping the broadcast side's unmatched rows.
        for (how, left) in [(How::Outer, true), (How::Right, true), (How::Left, false)] {
            let sp = spec(&s2, &b2, how, left);
            let ops = chunk(&sp, &[], &[Agg::new("v", AggFn::Sum)]);
            assert!(eager_aggregation(&sp, left, &ops).is_none(), "{how:?}");
        }
    }
}
