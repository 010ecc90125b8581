//! The optimizer: a rewrite of a collection's plan before it becomes a task graph (as
//! dask-expr lowers its expressions).
//!
//! * **Projection pushdown.** Each node learns which of its columns its consumers use (the
//!   union over every consumer, so a shared sub-plan is still computed once), and asks its
//!   inputs only for what it needs: through merges (join keys plus the used columns of each
//!   side, keeping a clashing column whose `_right` name is used), shuffles, sorts and
//!   `set_index` (their key columns), aggregations (keys and aggregated columns), concat and
//!   repartitions. At a read the needed columns become a `select` fused into the Parquet/CSV
//!   scan, so Polars reads only those columns.
//! * **Predicate pushdown through joins.** A filter right after a merge that uses only one
//!   side's columns moves below the join (and below its shuffle) to that side, when the join
//!   type keeps the result the same (the left side of inner/left joins, the right side of
//!   inner/right joins).
//!
//! Nodes whose inputs and columns do not change are kept as they are (same keys); rewritten
//! nodes get new keys, except the root, whose output keys are the collection's.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;

use oxidask_core::tokenize::Tokenizer;
use oxidask_core::Token;
use polars::prelude::*;

use crate::partition::Plan;
use crate::plan::{output_schema, FrameOp, Kind, Node};
use crate::shuffle::{How, JoinSpec, SplitBy};

/// Columns a consumer uses: `None` is all of them.
type Need = Option<BTreeSet<String>>;

/// The plan rooted at `root`, optimized; the root keeps its name and token.
pub(crate) fn optimize(root: &Arc<Node>) -> Arc<Node> {
    // Parents before children (reverse post-order), so a node's need is complete before it
    // is passed on.
    let mut order: Vec<Arc<Node>> = Vec::new();
    let mut seen: std::collections::HashSet<Token> = Default::default();
    postorder(root, &mut seen, &mut order);
    order.reverse();
    let mut needs: HashMap<Token, Need> = HashMap::new();
    needs.insert(root.token, None);
    for n in &order {
        let need = needs.get(&n.token).cloned().unwrap_or(None);
        for (child, child_need) in child_needs(n, &need) {
            needs
                .entry(child.token)
                .and_modify(|e| *e = union(e.take(), child_need.clone()))
                .or_insert(child_need);
        }
    }
    let mut memo: HashMap<Token, Arc<Node>> = HashMap::new();
    let out = rewrite(root, &needs, &mut memo, true);
    mark_shared(&out);
    out
}

/// Marks the nodes of a plan that two consumers use (a reduction then does not fuse its
/// chunk step into them, so they are computed once).
fn mark_shared(root: &Arc<Node>) {
    let mut order = Vec::new();
    postorder(root, &mut Default::default(), &mut order);
    let mut consumers: HashMap<Token, usize> = HashMap::new();
    for n in &order {
        let mut distinct: Vec<Token> = children(n).iter().map(|c| c.token).collect();
        distinct.sort();
        distinct.dedup();
        for t in distinct {
            *consumers.entry(t).or_default() += 1;
        }
    }
    for n in &order {
        if consumers.get(&n.token).copied().unwrap_or(0) > 1 {
            n.mark_shared();
        }
    }
}

fn postorder(n: &Arc<Node>, seen: &mut std::collections::HashSet<Token>, out: &mut Vec<Arc<Node>>) {
    if !seen.insert(n.token) {
        return;
    }
    for c in children(n) {
        postorder(c, seen, out);
    }
    out.push(n.clone());
}

fn children(n: &Node) -> Vec<&Arc<Node>> {
    match &n.kind {
        Kind::Scan { .. } | Kind::Parts { .. } => Vec::new(),
        Kind::Map { input, .. }
        | Kind::MapPartitions { input, .. }
        | Kind::Reduce { input, .. }
        | Kind::CustomReduce { input, .. }
        | Kind::Shuffle { input, .. }
        | Kind::Repartition { input }
        | Kind::Resize { input, .. }
        | Kind::Subset { input, .. } => vec![input],
        Kind::Concat { inputs } => inputs.iter().collect(),
        Kind::Join { left, right, .. } => vec![left, right],
    }
}

fn union(a: Need, b: Need) -> Need {
    match (a, b) {
        (Some(mut a), Some(b)) => {
            a.extend(b);
            Some(a)
        }
        _ => None,
    }
}

fn with(need: Need, cols: impl IntoIterator<Item = String>) -> Need {
    need.map(|mut s| {
        s.extend(cols);
        s
    })
}

/// The columns expressions read; `None` when they may read any (selectors, functions of the
/// whole schema).
pub(crate) fn leaves<'a>(exprs: impl IntoIterator<Item = &'a Expr>) -> Need {
    let mut out = BTreeSet::new();
    for e in exprs {
        for node in e {
            match node {
                Expr::Column(c) => {
                    out.insert(c.to_string());
                }
                Expr::Selector(_)
                | Expr::DataTypeFunction(_)
                | Expr::SubPlan(..)
                | Expr::AnonymousFunction { .. }
                | Expr::RenameAlias { .. }
                | Expr::Eval { .. }
                | Expr::StructEval { .. } => return None,
                _ => {}
            }
        }
    }
    Some(out)
}

/// The name an expression's result takes, when plain to see.
fn output_name(e: &Expr) -> Option<&str> {
    match e {
        Expr::Column(c) => Some(c.as_str()),
        Expr::Alias(_, name) => Some(name.as_str()),
        _ => None,
    }
}

/// `ops` without the selected or added columns no consumer uses (a select keeps at least
/// one column, so row counts stay), and the input columns they then read.
fn prune_ops(ops: &[FrameOp], need: &Need) -> (Vec<FrameOp>, Need) {
    let mut need = need.clone();
    let mut out: Vec<FrameOp> = Vec::with_capacity(ops.len());
    let unused = |need: &Need, e: &Expr| match (need, output_name(e)) {
        (Some(s), Some(name)) => !s.contains(name),
        _ => false,
    };
    for op in ops.iter().rev() {
        let (op, next) = match op {
            FrameOp::Select(e) => {
                let mut kept: Vec<Expr> = e.iter().filter(|x| !unused(&need, x)).cloned().collect();
                if kept.is_empty() {
                    kept = e.iter().take(1).cloned().collect();
                }
                let l = leaves(&kept);
                (Some(FrameOp::Select(kept)), l)
            }
            FrameOp::WithColumns(e) => {
                let kept: Vec<Expr> = e.iter().filter(|x| !unused(&need, x)).cloned().collect();
                let l = leaves(&kept);
                let next = l.and_then(|l| with(need.clone(), l));
                (
                    (!kept.is_empty()).then_some(FrameOp::WithColumns(kept)),
                    next,
                )
            }
            FrameOp::Filter(e) => (Some(op.clone()), leaves([e]).and_then(|l| with(need, l))),
            FrameOp::Slice { .. } => (Some(op.clone()), need),
            FrameOp::GroupAgg { keys, aggs } => (Some(op.clone()), leaves(keys.iter().chain(aggs))),
            FrameOp::Sort { by, .. } => (Some(op.clone()), with(need, by.iter().cloned())),
            FrameOp::Unique { subset: None } => (Some(op.clone()), None),
            FrameOp::Unique { subset: Some(s) } => {
                (Some(op.clone()), with(need, s.iter().cloned()))
            }
        };
        out.extend(op);
        need = next;
    }
    out.reverse();
    (out, need)
}

/// The input columns `ops` read to produce the `need`ed output columns (unrestricted by the
/// input's schema).
fn ops_need(ops: &[FrameOp], need: &Need) -> Need {
    prune_ops(ops, need).1
}

/// The columns of `schema` that `ops` read (`None`: possibly all), for readers that parse
/// only the columns asked for.
pub(crate) fn columns_read(ops: &[FrameOp], schema: &Schema) -> Option<Vec<String>> {
    within(ops_need(ops, &None), schema).map(|s| {
        schema
            .iter_names()
            .filter(|c| s.contains(c.as_str()))
            .map(|c| c.to_string())
            .collect()
    })
}

fn within(need: Need, schema: &Schema) -> Need {
    need.map(|s| {
        s.into_iter()
            .filter(|c| schema.get(c.as_str()).is_some())
            .collect()
    })
}

/// The output name of right column `c` of a join (clashing names get the suffix).
fn right_name(spec: &JoinSpec, c: &str) -> String {
    if spec.left_schema.get(c).is_some() {
        format!("{c}{}", spec.suffix)
    } else {
        c.to_owned()
    }
}

/// The needs of a join's two sides.
fn join_needs(spec: &JoinSpec, need: &Need) -> (Need, Need) {
    let Some(need) = need else {
        return (None, None);
    };
    let mut right: BTreeSet<String> = spec.right_on.iter().cloned().collect();
    for c in spec.right_schema.iter_names() {
        if !spec.right_on.iter().any(|k| k == c.as_str()) && need.contains(&right_name(spec, c)) {
            right.insert(c.to_string());
        }
    }
    let mut left: BTreeSet<String> = spec.left_on.iter().cloned().collect();
    for c in spec.left_schema.iter_names() {
        // A kept right column clashing with a left one is suffixed only while the left one
        // is there.
        if need.contains(c.as_str()) || right.contains(c.as_str()) {
            left.insert(c.to_string());
        }
    }
    (Some(left), Some(right))
}

fn child_needs<'a>(n: &'a Node, need: &Need) -> Vec<(&'a Arc<Node>, Need)> {
    match &n.kind {
        Kind::Scan { .. } | Kind::Parts { .. } => Vec::new(),
        Kind::Map { input, ops } => vec![(input, within(ops_need(ops, need), &input.schema))],
        Kind::MapPartitions { input, .. } | Kind::CustomReduce { input, .. } => {
            vec![(input, None)]
        }
        Kind::Reduce { input, chunk, .. } => {
            vec![(input, within(ops_need(chunk, &None), &input.schema))]
        }
        Kind::Shuffle { input, by, .. } => {
            let keys = match by {
                SplitBy::Hash(on) => on.clone(),
                SplitBy::Range { column, .. } | SplitBy::StrRange { column, .. } => {
                    vec![column.clone()]
                }
            };
            vec![(input, with(need.clone(), keys))]
        }
        Kind::Join {
            left, right, spec, ..
        } => {
            let (l, r) = join_needs(spec, need);
            vec![(left, l), (right, r)]
        }
        Kind::Repartition { input } | Kind::Resize { input, .. } | Kind::Subset { input, .. } => {
            vec![(input, need.clone())]
        }
        Kind::Concat { inputs } => inputs.iter().map(|i| (i, need.clone())).collect(),
    }
}

/// A token for a rewritten node: the old one and what changed.
fn retoken(n: &Node, need: &Need, what: &str) -> Token {
    let mut t = Tokenizer::new();
    t.write_str("optimized");
    t.write_str(what);
    t.write_token(n.token);
    if let Some(s) = need {
        for c in s {
            t.write_str(c);
        }
    } else {
        t.write_str("*");
    }
    t.finish()
}

fn node_like(
    orig: &Node,
    token: Token,
    schema: SchemaRef,
    npartitions: usize,
    kind: Kind,
) -> Arc<Node> {
    let out = Node::new(orig.name, token, schema.clone(), npartitions, kind);
    match &orig.index {
        Some((c, b)) if schema.get(c.as_str()).is_some() => out.with_index(c, b.clone()),
        _ => out,
    }
}

/// The columns of `schema` in `need`, in schema order; `None` if that is all of them.
fn narrowed(schema: &Schema, need: &Need) -> Option<Vec<Expr>> {
    let need = need.as_ref()?;
    let keep: Vec<Expr> = schema
        .iter_names()
        .filter(|c| need.contains(c.as_str()))
        .map(|c| col(c.clone()))
        .collect();
    let keep = if keep.is_empty() {
        // No column is used (a row count): read one, so rows stay.
        schema
            .iter_names()
            .take(1)
            .map(|c| col(c.clone()))
            .collect()
    } else {
        keep
    };
    (keep.len() < schema.len()).then_some(keep)
}

fn rewrite(
    n: &Arc<Node>,
    needs: &HashMap<Token, Need>,
    memo: &mut HashMap<Token, Arc<Node>>,
    root: bool,
) -> Arc<Node> {
    if !root {
        if let Some(done) = memo.get(&n.token) {
            return done.clone();
        }
    }
    let need = needs.get(&n.token).cloned().unwrap_or(None);
    let token = if root { n.token } else { retoken(n, &need, "") };
    let pruned = pruned_scan(n, token);
    let out = match &n.kind {
        Kind::Scan { source, ops } => match narrowed(&n.schema, &need) {
            _ if pruned.is_some() => {
                let p = pruned.expect("checked");
                match narrowed(&n.schema, &need) {
                    Some(keep) => p
                        .with_ops("project", vec![FrameOp::Select(keep)])
                        .map(|q| retokened(&q, token))
                        .unwrap_or(p),
                    None => p,
                }
            }
            Some(keep) => {
                let sel = [FrameOp::Select(keep)];
                let schema = output_schema(&n.schema, &sel).unwrap_or_else(|_| n.schema.clone());
                let ops: Vec<FrameOp> = ops.iter().cloned().chain(sel).collect();
                node_like(
                    n,
                    token,
                    schema,
                    n.npartitions,
                    Kind::Scan {
                        source: source.clone(),
                        ops,
                    },
                )
            }
            None => n.clone(),
        },
        Kind::Parts { parts, deps, ops } => match narrowed(&n.schema, &need) {
            Some(keep) => {
                let sel = [FrameOp::Select(keep)];
                let schema = output_schema(&n.schema, &sel).unwrap_or_else(|_| n.schema.clone());
                node_like(
                    n,
                    token,
                    schema,
                    n.npartitions,
                    Kind::Parts {
                        parts: parts.clone(),
                        deps: deps.clone(),
                        ops: ops.iter().cloned().chain(sel).collect(),
                    },
                )
            }
            None => n.clone(),
        },
        Kind::Map { input, ops } => {
            let new_in = rewrite(input, needs, memo, false);
            let (new_in, ops) = push_filters(new_in, ops);
            let ops = if root { ops } else { prune_ops(&ops, &need).0 };
            if Arc::ptr_eq(&new_in, input) {
                n.clone()
            } else if ops.is_empty() && !root {
                new_in
            } else {
                match output_schema(&new_in.schema, &ops) {
                    Ok(schema) => node_like(
                        n,
                        token,
                        schema,
                        n.npartitions,
                        Kind::Map { input: new_in, ops },
                    ),
                    Err(_) => n.clone(),
                }
            }
        }
        Kind::MapPartitions { input, op } => {
            let new_in = rewrite(input, needs, memo, false);
            if Arc::ptr_eq(&new_in, input) {
                n.clone()
            } else {
                node_like(
                    n,
                    token,
                    n.schema.clone(),
                    n.npartitions,
                    Kind::MapPartitions { input: new_in, op },
                )
            }
        }
        Kind::Reduce {
            input,
            chunk,
            combine,
            finalize,
            split_every,
        } => {
            let new_in = rewrite(input, needs, memo, false);
            if Arc::ptr_eq(&new_in, input) {
                n.clone()
            } else {
                node_like(
                    n,
                    token,
                    n.schema.clone(),
                    n.npartitions,
                    Kind::Reduce {
                        input: new_in,
                        chunk: chunk.clone(),
                        combine: combine.clone(),
                        finalize: finalize.clone(),
                        split_every: *split_every,
                    },
                )
            }
        }
        Kind::CustomReduce {
            input,
            chunk,
            combine,
            finalize,
            split_every,
        } => {
            let new_in = rewrite(input, needs, memo, false);
            if Arc::ptr_eq(&new_in, input) {
                n.clone()
            } else {
                node_like(
                    n,
                    token,
                    n.schema.clone(),
                    n.npartitions,
                    Kind::CustomReduce {
                        input: new_in,
                        chunk,
                        combine,
                        finalize,
                        split_every: *split_every,
                    },
                )
            }
        }
        Kind::Shuffle { input, by, method } => {
            let new_in = rewrite(input, needs, memo, false);
            if Arc::ptr_eq(&new_in, input) {
                n.clone()
            } else {
                node_like(
                    n,
                    token,
                    new_in.schema.clone(),
                    n.npartitions,
                    Kind::Shuffle {
                        input: new_in,
                        by: by.clone(),
                        method: *method,
                    },
                )
            }
        }
        Kind::Join {
            left,
            right,
            spec,
            mode,
        } => {
            let (l, r) = (
                rewrite(left, needs, memo, false),
                rewrite(right, needs, memo, false),
            );
            if Arc::ptr_eq(&l, left) && Arc::ptr_eq(&r, right) {
                n.clone()
            } else {
                rejoin(n, token, l, r, spec, *mode)
            }
        }
        Kind::Repartition { input } => {
            let new_in = rewrite(input, needs, memo, false);
            if Arc::ptr_eq(&new_in, input) {
                n.clone()
            } else {
                node_like(
                    n,
                    token,
                    new_in.schema.clone(),
                    n.npartitions,
                    Kind::Repartition { input: new_in },
                )
            }
        }
        Kind::Resize {
            input,
            cuts,
            groups,
        } => {
            let new_in = rewrite(input, needs, memo, false);
            if Arc::ptr_eq(&new_in, input) {
                n.clone()
            } else {
                node_like(
                    n,
                    token,
                    new_in.schema.clone(),
                    n.npartitions,
                    Kind::Resize {
                        input: new_in,
                        cuts: cuts.clone(),
                        groups: groups.clone(),
                    },
                )
            }
        }
        Kind::Subset { input, indices } => {
            let new_in = rewrite(input, needs, memo, false);
            if Arc::ptr_eq(&new_in, input) {
                n.clone()
            } else {
                node_like(
                    n,
                    token,
                    new_in.schema.clone(),
                    n.npartitions,
                    Kind::Subset {
                        input: new_in,
                        indices: indices.clone(),
                    },
                )
            }
        }
        Kind::Concat { inputs } => {
            let new: Vec<Arc<Node>> = inputs
                .iter()
                .map(|i| rewrite(i, needs, memo, false))
                .collect();
            if new.iter().zip(inputs).all(|(a, b)| Arc::ptr_eq(a, b)) {
                n.clone()
            } else {
                // Every input in the same columns, in the frame's order.
                let cols: Vec<Expr> = narrowed(&n.schema, &need)
                    .unwrap_or_else(|| n.schema.iter_names().map(|c| col(c.clone())).collect());
                let sel = [FrameOp::Select(cols)];
                let schema = output_schema(&n.schema, &sel).unwrap_or_else(|_| n.schema.clone());
                let aligned: Option<Vec<Arc<Node>>> = new
                    .into_iter()
                    .map(|i| {
                        if i.schema.iter_names().eq(schema.iter_names()) {
                            Some(i)
                        } else {
                            i.with_ops("project", sel.to_vec()).ok()
                        }
                    })
                    .collect();
                match aligned {
                    Some(inputs) => {
                        node_like(n, token, schema, n.npartitions, Kind::Concat { inputs })
                    }
                    None => n.clone(),
                }
            }
        }
    };
    if !root {
        memo.insert(n.token, out.clone());
    }
    out
}

/// A read whose filters rule out some of its pieces, with those pieces pruned (`prune.rs`).
fn pruned_scan(n: &Arc<Node>, token: Token) -> Option<Arc<Node>> {
    let Kind::Scan { source, ops } = &n.kind else {
        return None;
    };
    let source = crate::blocking::outside_async_runtime(|| crate::prune::prune(source, ops))?;
    Some(node_like(
        n,
        token,
        n.schema.clone(),
        n.npartitions,
        Kind::Scan {
            source: Arc::new(source),
            ops: ops.clone(),
        },
    ))
}

/// `n` (a read) under another token.
fn retokened(n: &Arc<Node>, token: Token) -> Arc<Node> {
    match &n.kind {
        Kind::Scan { source, ops } => node_like(
            n,
            token,
            n.schema.clone(),
            n.npartitions,
            Kind::Scan {
                source: source.clone(),
                ops: ops.clone(),
            },
        ),
        _ => n.clone(),
    }
}

/// A join over rewritten sides.
fn rejoin(
    n: &Arc<Node>,
    token: Token,
    l: Arc<Node>,
    r: Arc<Node>,
    spec: &JoinSpec,
    mode: crate::shuffle::JoinMode,
) -> Arc<Node> {
    let spec = JoinSpec {
        left_schema: l.schema.clone(),
        right_schema: r.schema.clone(),
        ..spec.clone()
    };
    let schema = match crate::shuffle::join_schema(&spec) {
        Ok(s) => s,
        Err(_) => return n.clone(),
    };
    node_like(
        n,
        token,
        schema,
        n.npartitions,
        Kind::Join {
            left: l,
            right: r,
            spec: Arc::new(spec),
            mode,
        },
    )
}

/// Moves leading filters of `ops` over a join below it, to the side whose columns they use.
fn push_filters(input: Arc<Node>, ops: &[FrameOp]) -> (Arc<Node>, Vec<FrameOp>) {
    let mut input = input;
    let mut at = 0;
    while let Some(FrameOp::Filter(e)) = ops.get(at) {
        let Kind::Join {
            left,
            right,
            spec,
            mode,
        } = &input.kind
        else {
            break;
        };
        let Some(used) = leaves([e]) else { break };
        let left_ok = matches!(spec.how, How::Inner | How::Left)
            && used
                .iter()
                .all(|c| spec.left_schema.get(c.as_str()).is_some());
        // Right columns under their own names (not suffixed, not coalesced keys).
        let right_ok = matches!(spec.how, How::Inner | How::Right)
            && used.iter().all(|c| {
                spec.right_schema.get(c.as_str()).is_some()
                    && !spec.right_on.contains(c)
                    && right_name(spec, c) == *c
            });
        let (l, r) = if left_ok {
            (filtered(left, e), right.clone())
        } else if right_ok {
            (left.clone(), filtered(right, e))
        } else {
            break;
        };
        let mut t = Tokenizer::new();
        t.write_str("pushed-filter");
        t.write_token(input.token);
        t.write_data(&Plan(vec![FrameOp::Filter(e.clone())]));
        input = rejoin(&input, t.finish(), l, r, spec, *mode);
        at += 1;
    }
    (input, ops[at..].to_vec())
}

/// `n` with a filter applied, below its shuffle if it is one (rows keep their partition).
fn filtered(n: &Arc<Node>, e: &Expr) -> Arc<Node> {
    let op = vec![FrameOp::Filter(e.clone())];
    match &n.kind {
        Kind::Shuffle { input, by, method } => crate::shuffle::shuffle_by_method(
            &filtered(input, e),
            by.clone(),
            n.npartitions,
            *method,
        ),
        Kind::Repartition { input } => crate::plan::repartition(&filtered(input, e), n.npartitions),
        _ => {
            let f = n
                .with_ops("pushed-filter", op)
                .unwrap_or_else(|_| n.clone());
            let token = retoken(&f, &None, "pruned");
            pruned_scan(&f, token).unwrap_or(f)
        }
    }
}

/// The columns the streamed side of a merge is grouped by when a reduction's `chunk` over
/// `input` (the merge, or unshared steps over it) runs below the merge (eager aggregation, as
/// the merge's tasks will plan it).
fn below_the_merge(input: &Arc<Node>, chunk: &[FrameOp]) -> Option<Vec<String>> {
    if input.is_shared() {
        return None;
    }
    let (join, extra): (&Node, Vec<FrameOp>) = match &input.kind {
        Kind::Map { input: j, ops } if matches!(j.kind, Kind::Join { .. }) && !j.is_shared() => {
            (j, ops.iter().chain(chunk).cloned().collect())
        }
        Kind::Join { .. } => (input, chunk.to_vec()),
        _ => return None,
    };
    let Kind::Join {
        left,
        right,
        spec,
        mode,
    } = &join.kind
    else {
        return None;
    };
    crate::join::eager_plan(left, right, spec, *mode, &extra).map(|e| e.grouped)
}

/// The plan as text, one node a line, inputs indented below their consumer.
pub(crate) fn explain(n: &Arc<Node>) -> String {
    let mut out = String::new();
    let mut seen = std::collections::HashSet::new();
    describe(n, 0, &mut out, &mut seen);
    out
}

fn op_names(ops: &[FrameOp]) -> String {
    ops.iter()
        .map(|o| match o {
            FrameOp::Select(_) => "select",
            FrameOp::Filter(_) => "filter",
            FrameOp::WithColumns(_) => "with_columns",
            FrameOp::Slice { .. } => "slice",
            FrameOp::GroupAgg { .. } => "groupby",
            FrameOp::Sort { .. } => "sort",
            FrameOp::Unique { .. } => "unique",
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn names(s: &Schema) -> String {
    s.iter_names()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe(
    n: &Arc<Node>,
    depth: usize,
    out: &mut String,
    seen: &mut std::collections::HashSet<Token>,
) {
    let pad = "  ".repeat(depth);
    let again = !seen.insert(n.token);
    let what = match &n.kind {
        Kind::Scan { source, ops } => {
            let fmt = match source.format {
                crate::scan::Format::Parquet => "parquet",
                crate::scan::Format::Csv(_) => "csv",
                crate::scan::Format::Json { .. } => "json",
            };
            let read = match ops_need(ops, &None) {
                Some(s) => format!("[{}]", s.into_iter().collect::<Vec<_>>().join(", ")),
                None => "all".into(),
            };
            let pruned = source.pieces.iter().filter(|p| p.pruned.is_some()).count();
            let pruned = if pruned > 0 {
                format!(", pruned {pruned} of {} pieces", source.pieces.len())
            } else {
                String::new()
            };
            format!(
                "read-{fmt} ({} pieces{pruned}, reads columns {read}, then [{}])",
                source.pieces.len(),
                op_names(ops)
            )
        }
        Kind::Parts { ops, .. } => format!("partitions, then [{}]", op_names(ops)),
        Kind::Map { ops, .. } => format!("map [{}]", op_names(ops)),
        Kind::MapPartitions { op, .. } => format!("map_partitions ({})", op.name()),
        Kind::Reduce { input, chunk, .. } => match below_the_merge(input, chunk) {
            Some(grouped) => format!(
                "tree reduction, aggregated below the merge (its streamed read grouped by {grouped:?} first)"
            ),
            None => "tree reduction".into(),
        },
        Kind::CustomReduce { .. } => "tree reduction".into(),
        Kind::Shuffle { by, method, .. } => format!("shuffle by {by:?}, method {method}"),
        Kind::Join { spec, mode, .. } => format!(
            "merge {:?} {mode:?} on {:?} = {:?}",
            spec.how, spec.left_on, spec.right_on
        ),
        Kind::Repartition { .. } => "repartition".into(),
        Kind::Resize { .. } => "repartition by size".into(),
        Kind::Subset { .. } => "partitions".into(),
        Kind::Concat { .. } => "concat".into(),
    };
    let _ = writeln!(
        out,
        "{pad}{} [{}]: {what}; {} partitions; columns [{}]{}",
        n.name,
        crate::frame::short(n.token),
        n.npartitions,
        names(&n.schema),
        if again { " (shared, above)" } else { "" }
    );
    if again {
        return;
    }
    for c in children(n) {
        describe(c, depth + 1, out, seen);
    }
}
