//! The lazy plan behind every dataframe: nodes with a schema and a partition count, turned into
//! a task graph on demand.
//!
//! Per-partition work is a list of [`FrameOp`]s — Polars expressions as data — that fuses into
//! whatever produces the partition: a file read becomes `scan → ops` in one Polars query, so
//! Polars' own optimizer pushes column projections and predicates into the Parquet/CSV reader.
//! The chunk step of an aggregation fuses the same way, so
//! `read_parquet(..).column("x").value_counts()` reads one column of each file and ships only
//! the per-partition counts.

use std::sync::{Arc, OnceLock};

use oxidask_core::tokenize::Tokenizer;
use oxidask_core::{Arg, Graph, Key, OpDef, Task, Token, Value};
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::partition::Plan;
use crate::scan::ScanTask;

/// One step of per-partition work, run by Polars' lazy engine (internal; public only because
/// registered operations name it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum FrameOp {
    /// Keep these expressions as the columns.
    Select(Vec<Expr>),
    /// Keep rows where the predicate holds.
    Filter(Expr),
    /// Add or replace columns.
    WithColumns(Vec<Expr>),
    /// Rows `offset..offset+len`.
    Slice { offset: i64, len: u64 },
    /// Group by `keys` and aggregate (no keys: aggregate the whole partition to one row).
    GroupAgg { keys: Vec<Expr>, aggs: Vec<Expr> },
    /// Sort by columns (stable), nulls first or last.
    Sort {
        by: Vec<String>,
        descending: Vec<bool>,
        nulls_last: bool,
    },
    /// Distinct rows (over `subset` columns), keeping the first occurrence.
    Unique { subset: Option<Vec<String>> },
}

/// Applies `ops` to a lazy frame.
pub(crate) fn apply_ops(mut lf: LazyFrame, ops: &[FrameOp]) -> LazyFrame {
    for op in ops {
        lf = match op {
            FrameOp::Select(e) => lf.select(e),
            FrameOp::Filter(e) => lf.filter(e.clone()),
            FrameOp::WithColumns(e) => lf.with_columns(e),
            FrameOp::Slice { offset, len } => {
                lf.slice(*offset, (*len).min(IdxSize::MAX as u64) as IdxSize)
            }
            FrameOp::GroupAgg { keys, aggs } if keys.is_empty() => lf.select(aggs),
            FrameOp::GroupAgg { keys, aggs } => lf.group_by(keys).agg(aggs),
            FrameOp::Sort {
                by,
                descending,
                nulls_last,
            } => lf.sort(
                by.iter()
                    .map(|s| PlSmallStr::from(s.as_str()))
                    .collect::<Vec<_>>(),
                SortMultipleOptions::default()
                    .with_order_descending_multi(descending.clone())
                    .with_nulls_last(*nulls_last)
                    .with_maintain_order(true),
            ),
            FrameOp::Unique { subset } => lf.unique_stable(
                subset.as_ref().map(|s| cols(s.iter().map(|c| c.as_str()))),
                UniqueKeepStrategy::First,
            ),
        }
    }
    lf
}

/// Runs a read's query on Polars' streaming engine: it reads Parquet/CSV in morsels and
/// aggregates as it goes, so a partition's memory is bounded by what the query keeps (1.7–2.7×
/// faster than the in-memory engine on the taxi benchmark's groupbys, a third of the memory).
pub(crate) fn run_query(lf: LazyFrame) -> PolarsResult<DataFrame> {
    // One query, one sink: the result is a single frame.
    Ok(lf.collect_with_engine(Engine::Streaming)?.unwrap_single())
}

/// The schema `ops` produce from `schema`, or Polars' error (unknown column, type mismatch).
pub(crate) fn output_schema(schema: &Schema, ops: &[FrameOp]) -> PolarsResult<SchemaRef> {
    crate::blocking::collect_schema(apply_ops(DataFrame::empty_with_schema(schema).lazy(), ops))
}

/// The tasks of a node and of everything it depends on.
pub(crate) struct Layer {
    pub tasks: Vec<(Key, Task)>,
    pub outputs: Vec<Key>,
    pub deps: Vec<Arc<Layer>>,
}

/// Adds a layer and its dependencies to a graph, each layer once.
pub(crate) fn add_layer(graph: &mut Graph, layer: &Arc<Layer>) {
    let mut seen: Vec<*const Layer> = Vec::new();
    let mut stack = vec![layer.clone()];
    while let Some(l) = stack.pop() {
        let ptr = Arc::as_ptr(&l);
        if seen.contains(&ptr) {
            continue;
        }
        seen.push(ptr);
        for (k, t) in &l.tasks {
            graph.insert(*k, t.clone());
        }
        stack.extend(l.deps.iter().cloned());
    }
}

/// How a node's partitions come about.
pub(crate) enum Kind {
    /// Read from files, one task per piece, `ops` fused into each read.
    Scan {
        source: Arc<crate::scan::Source>,
        ops: Vec<FrameOp>,
    },
    /// Given partitions (literal values or other tasks' results), `ops` applied to each.
    Parts {
        parts: Arc<Vec<Arg>>,
        deps: Vec<Arc<Layer>>,
        ops: Vec<FrameOp>,
    },
    /// `ops` over another node's partitions that cannot absorb them.
    Map { input: Arc<Node>, ops: Vec<FrameOp> },
    /// A registered function on each partition (`map_partitions`).
    MapPartitions {
        input: Arc<Node>,
        op: &'static OpDef,
    },
    /// A tree reduction to one partition: `chunk` on each partition (fused into it), `combine`
    /// on groups of `split_every` partials, `finalize` on the last.
    Reduce {
        input: Arc<Node>,
        chunk: Vec<FrameOp>,
        combine: Vec<FrameOp>,
        finalize: Vec<FrameOp>,
        split_every: usize,
    },
    /// A tree reduction by registered functions (each takes and returns a `Partition`):
    /// `chunk` on each partition, `combine` on the concatenation of `split_every` results,
    /// `finalize` on the concatenation of the last ones.
    CustomReduce {
        input: Arc<Node>,
        chunk: &'static OpDef,
        combine: &'static OpDef,
        finalize: &'static OpDef,
        split_every: usize,
    },
    /// The partitions of several frames, one after another.
    Concat { inputs: Vec<Arc<Node>> },
    /// Rows moved to the partition their key hashes to.
    Shuffle {
        input: Arc<Node>,
        by: crate::shuffle::SplitBy,
        /// Fixed when the shuffle is made (`p2p::choose`).
        method: crate::p2p::ShuffleMethod,
    },
    /// A join of two nodes.
    Join {
        left: Arc<Node>,
        right: Arc<Node>,
        spec: Arc<crate::shuffle::JoinSpec>,
        mode: crate::shuffle::JoinMode,
    },
    /// The same rows in `npartitions` partitions, order kept.
    Repartition { input: Arc<Node> },
    /// The same rows regrouped by size: input partition `i` cut into `cuts[i]` row ranges,
    /// then consecutive pieces concatenated per output (`groups`: piece counts per output).
    Resize {
        input: Arc<Node>,
        cuts: Vec<u64>,
        groups: Vec<usize>,
    },
    /// Some partitions of another node, in a given order.
    Subset {
        input: Arc<Node>,
        indices: Vec<usize>,
    },
}

/// An index's interior partition bounds: numbers (datetimes as timestamps) or strings.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Bounds {
    Numbers(Vec<f64>),
    Strings(Vec<String>),
}

/// A dataframe without its public face: schema, partition count, how partitions come about.
pub(crate) struct Node {
    pub name: &'static str,
    pub token: Token,
    pub schema: SchemaRef,
    pub npartitions: usize,
    pub kind: Kind,
    /// The index column and its interior partition bounds, after `set_index`.
    pub index: Option<(String, Bounds)>,
    layer: OnceLock<Arc<Layer>>,
    /// The optimized plan, `None` when it is this node itself (kept out, or the node would
    /// hold itself and never be freed).
    optimized: OnceLock<Option<Arc<Node>>>,
    /// Whether an optimized plan uses this node from two consumers (set by the optimizer):
    /// then a reduction over it does not fuse its chunk step into its tasks, so it is
    /// computed once (a fused read would run again for each consumer).
    shared: std::sync::atomic::AtomicBool,
}

impl Node {
    pub(crate) fn new(
        name: &'static str,
        token: Token,
        schema: SchemaRef,
        npartitions: usize,
        kind: Kind,
    ) -> Arc<Node> {
        Arc::new(Node {
            name,
            token,
            schema,
            npartitions,
            kind,
            index: None,
            layer: OnceLock::new(),
            optimized: OnceLock::new(),
            shared: Default::default(),
        })
    }

    /// Marks the node as used by two consumers of one plan.
    pub(crate) fn mark_shared(&self) {
        self.shared
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn is_shared(&self) -> bool {
        self.shared.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The node marked as indexed by `column` with these partition bounds.
    pub(crate) fn with_index(self: Arc<Node>, column: &str, bounds: Bounds) -> Arc<Node> {
        let node = Arc::try_unwrap(self).unwrap_or_else(|shared| Node {
            name: shared.name,
            token: shared.token,
            schema: shared.schema.clone(),
            npartitions: shared.npartitions,
            kind: Kind::Subset {
                input: shared.clone(),
                indices: (0..shared.npartitions).collect(),
            },
            index: None,
            layer: OnceLock::new(),
            optimized: OnceLock::new(),
            shared: Default::default(),
        });
        Arc::new(Node {
            index: Some((column.to_owned(), bounds)),
            ..node
        })
    }

    /// The node with `ops` applied to every partition, fused into what produces them when it
    /// can take them.
    pub(crate) fn with_ops(
        self: &Arc<Node>,
        name: &'static str,
        ops: Vec<FrameOp>,
    ) -> Result<Arc<Node>, crate::FrameError> {
        check_serializable(&ops)?;
        let schema =
            output_schema(&self.schema, &ops).map_err(|e| crate::FrameError::polars(name, e))?;
        let mut t = Tokenizer::new();
        t.write_str(name);
        t.write_token(self.token);
        t.write_data(&Plan(ops.clone()));
        let token = t.finish();
        let joined = |old: &Vec<FrameOp>| old.iter().cloned().chain(ops.iter().cloned()).collect();
        let kind = match &self.kind {
            Kind::Scan { source, ops: old } => Kind::Scan {
                source: source.clone(),
                ops: joined(old),
            },
            Kind::Parts {
                parts,
                deps,
                ops: old,
            } => Kind::Parts {
                parts: parts.clone(),
                deps: deps.clone(),
                ops: joined(old),
            },
            Kind::Map { input, ops: old } => Kind::Map {
                input: input.clone(),
                ops: joined(old),
            },
            _ => Kind::Map {
                input: self.clone(),
                ops: ops.clone(),
            },
        };
        let out = Node::new(name, token, schema, self.npartitions, kind);
        // Row-wise steps keep the index and its divisions.
        let rowwise = ops.iter().all(|o| {
            matches!(
                o,
                FrameOp::Select(_)
                    | FrameOp::Filter(_)
                    | FrameOp::WithColumns(_)
                    | FrameOp::Slice { .. }
            )
        });
        Ok(match &self.index {
            Some((c, b)) if rowwise && keeps_column(&self.schema, &ops, c) => {
                out.with_index(c, b.clone())
            }
            _ => out,
        })
    }

    /// This node's plan after the optimizer (projection and predicate pushdown), with the
    /// same output keys; the plan as written when `OXIDASK_DATAFRAME_OPTIMIZE=0` (for
    /// comparisons and as an escape hatch, as Dask's `optimize_graph=False`).
    pub(crate) fn optimized(self: &Arc<Node>) -> Arc<Node> {
        // Not cached when off: a node holding itself would never be freed.
        if std::env::var("OXIDASK_DATAFRAME_OPTIMIZE").is_ok_and(|v| v == "0") {
            return self.clone();
        }
        self.optimized
            .get_or_init(|| {
                let o = crate::optimize::optimize(self);
                (!Arc::ptr_eq(&o, self)).then_some(o)
            })
            .clone()
            .unwrap_or_else(|| self.clone())
    }

    /// The tasks computing this node's partitions, from the optimized plan.
    pub(crate) fn optimized_layer(self: &Arc<Node>) -> Arc<Layer> {
        self.optimized().layer()
    }

    /// The tasks computing this node's partitions (the plan as written).
    pub(crate) fn layer(&self) -> Arc<Layer> {
        self.layer
            .get_or_init(|| Arc::new(self.build(&[], self.name, self.token)))
            .clone()
    }

    /// The tasks computing this node's partitions with `extra` ops fused onto each, under
    /// keys named `name`/`token`.
    pub(crate) fn build(&self, extra: &[FrameOp], name: &str, token: Token) -> Layer {
        let key = |i: usize| Key::block(name, token, &[i as u32]);
        let fused =
            |ops: &[FrameOp]| -> Vec<FrameOp> { ops.iter().chain(extra).cloned().collect() };
        match &self.kind {
            Kind::Scan { source, ops } => {
                let ops = fused(ops);
                let credentials = &source.storage.credentials;
                let mut tasks = Vec::with_capacity(source.pieces.len());
                let mut outputs = Vec::with_capacity(source.pieces.len());
                for i in 0..source.pieces.len() {
                    let spec = ScanTask {
                        format: source.format.clone(),
                        storage: source.storage.clone(),
                        piece: source.pieces[i].clone(),
                        ops: ops.clone(),
                    };
                    let k = key(i);
                    tasks.push((
                        k,
                        Task::call(
                            crate::ops::scan::op(),
                            [Arg::Value(crate::credentials::plan_value(
                                spec,
                                credentials,
                            ))],
                        ),
                    ));
                    outputs.push(k);
                }
                Layer {
                    tasks,
                    outputs,
                    deps: Vec::new(),
                }
            }
            Kind::Parts { parts, deps, ops } => {
                let ops = Value::new(Plan(fused(ops)));
                let (tasks, outputs) = parts
                    .iter()
                    .enumerate()
                    .map(|(i, a)| {
                        let k = key(i);
                        ((k, apply_task(&ops, vec![a.clone()])), k)
                    })
                    .unzip();
                Layer {
                    tasks,
                    outputs,
                    deps: deps.clone(),
                }
            }
            // Steps over an unshared merge run in its join tasks' queries.
            Kind::Map { input, ops }
                if matches!(input.kind, Kind::Join { .. }) && !input.is_shared() =>
            {
                input.build(&fused(ops), name, token)
            }
            Kind::Map { input, ops } => {
                let ops = fused(ops);
                over(input.layer(), &ops, key)
            }
            Kind::Join {
                left,
                right,
                spec,
                mode,
            } => crate::join::join_layer(left, right, spec, *mode, extra, name, token),
            _ if !extra.is_empty() => over(self.layer(), extra, key),
            Kind::MapPartitions { input, op } => {
                let inner = input.layer();
                let (tasks, outputs) = inner
                    .outputs
                    .iter()
                    .enumerate()
                    .map(|(i, k)| {
                        let out = key(i);
                        ((out, Task::call(op, [Arg::Key(*k)])), out)
                    })
                    .unzip();
                Layer {
                    tasks,
                    outputs,
                    deps: vec![inner],
                }
            }
            Kind::CustomReduce {
                input,
                chunk,
                combine,
                finalize,
                split_every,
            } => {
                let inner = input.layer();
                let none = Value::new(Plan(Vec::<FrameOp>::new()));
                let mut tasks = Vec::new();
                let chunk_name = format!("{name}-chunk");
                let mut level: Vec<Key> = inner
                    .outputs
                    .iter()
                    .enumerate()
                    .map(|(i, k)| {
                        let c = Key::block(&chunk_name, token, &[i as u32]);
                        tasks.push((c, Task::call(chunk, [Arg::Key(*k)])));
                        c
                    })
                    .collect();
                if level.is_empty() {
                    // No partitions: reduce one empty partition of the input's schema.
                    let c = Key::block(&chunk_name, token, &[0]);
                    let empty = crate::Partition(DataFrame::empty_with_schema(&input.schema));
                    tasks.push((c, Task::call(chunk, [Arg::Value(Value::new(empty))])));
                    level.push(c);
                }
                let (concat_name, combine_name) =
                    (format!("{name}-concat"), format!("{name}-combine"));
                let split_every = (*split_every).max(2);
                // Concatenate a group of results (one task), then run `op` on it (another).
                let step = |group: &[Key],
                            op: &'static OpDef,
                            out: Key,
                            at: [u32; 2],
                            tasks: &mut Vec<(Key, Task)>| {
                    let cat = Key::block(&concat_name, token, &at);
                    tasks.push((
                        cat,
                        apply_task(&none, group.iter().map(|k| Arg::Key(*k)).collect()),
                    ));
                    tasks.push((out, Task::call(op, [Arg::Key(cat)])));
                };
                let mut depth = 0u32;
                while level.len() > split_every {
                    let mut next = Vec::new();
                    for (j, group) in level.chunks(split_every).enumerate() {
                        let out = Key::block(&combine_name, token, &[depth, j as u32]);
                        step(group, combine, out, [depth, j as u32], &mut tasks);
                        next.push(out);
                    }
                    level = next;
                    depth += 1;
                }
                let out = key(0);
                step(&level, finalize, out, [depth, u32::MAX], &mut tasks);
                Layer {
                    tasks,
                    outputs: vec![out],
                    deps: vec![inner],
                }
            }
            Kind::Reduce {
                input,
                chunk,
                combine,
                finalize,
                split_every,
            } => {
                let chunk_name = format!("{name}-chunk");
                let partials = if input.is_shared() {
                    // Another consumer reads the input's tasks: chunk over them.
                    over(input.layer(), chunk, |i| {
                        Key::block(&chunk_name, token, &[i as u32])
                    })
                } else {
                    input.build(chunk, &chunk_name, token)
                };
                let mut tasks = partials.tasks;
                let mut level = partials.outputs;
                if level.is_empty() {
                    // No partitions: aggregate one empty partition of the input's schema.
                    let k = Key::block(&chunk_name, token, &[0]);
                    let empty = crate::Partition(DataFrame::empty_with_schema(&input.schema));
                    let args = vec![Arg::Value(Value::new(empty))];
                    tasks.push((k, apply_task(&Value::new(Plan(chunk.clone())), args)));
                    level.push(k);
                }
                let combine_v = Value::new(Plan(combine.clone()));
                let combine_name = format!("{name}-combine");
                let split_every = (*split_every).max(2);
                let mut depth = 0u32;
                while level.len() > split_every {
                    let mut next = Vec::with_capacity(level.len().div_ceil(split_every));
                    for (j, group) in level.chunks(split_every).enumerate() {
                        let k = Key::block(&combine_name, token, &[depth, j as u32]);
                        let args = group.iter().map(|k| Arg::Key(*k)).collect();
                        tasks.push((k, apply_task(&combine_v, args)));
                        next.push(k);
                    }
                    level = next;
                    depth += 1;
                }
                let last: Vec<FrameOp> = combine.iter().chain(finalize).cloned().collect();
                let k = key(0);
                let args = level.iter().map(|k| Arg::Key(*k)).collect();
                tasks.push((k, apply_task(&Value::new(Plan(last)), args)));
                Layer {
                    tasks,
                    outputs: vec![k],
                    deps: partials.deps,
                }
            }
            Kind::Shuffle { input, by, method } => {
                crate::shuffle::shuffle_layer(input, by, self.npartitions, *method, name, token)
            }
            Kind::Repartition { input } => repartition_layer(input, self.npartitions, key),
            Kind::Resize {
                input,
                cuts,
                groups,
            } => resize_layer(input, cuts, groups, name, token),
            Kind::Subset { input, indices } => {
                let inner = input.layer();
                Layer {
                    tasks: Vec::new(),
                    outputs: indices.iter().map(|&i| inner.outputs[i]).collect(),
                    deps: vec![inner],
                }
            }
            Kind::Concat { inputs } => {
                let layers: Vec<Arc<Layer>> = inputs.iter().map(|n| n.layer()).collect();
                Layer {
                    tasks: Vec::new(),
                    outputs: layers
                        .iter()
                        .flat_map(|l| l.outputs.iter().copied())
                        .collect(),
                    deps: layers,
                }
            }
        }
    }
}

fn repartition_layer(input: &Node, m: usize, key: impl Fn(usize) -> Key) -> Layer {
    let inner = input.layer();
    let n = inner.outputs.len();
    let none = Value::new(Plan(Vec::<FrameOp>::new()));
    let mut tasks = Vec::new();
    let mut outputs = Vec::new();
    if n == 0 {
        for j in 0..m {
            let k = key(j);
            let empty = crate::Partition(DataFrame::empty_with_schema(&input.schema));
            tasks.push((k, apply_task(&none, vec![Arg::Value(Value::new(empty))])));
            outputs.push(k);
        }
    } else if m <= n {
        // Output j concatenates inputs [j*n/m, (j+1)*n/m).
        for j in 0..m {
            let args = inner.outputs[j * n / m..(j + 1) * n / m]
                .iter()
                .map(|k| Arg::Key(*k))
                .collect();
            let k = key(j);
            tasks.push((k, apply_task(&none, args)));
            outputs.push(k);
        }
    } else {
        // Input i is cut into the outputs [i*m/n, (i+1)*m/n).
        for (i, ik) in inner.outputs.iter().enumerate() {
            let (a, b) = (i * m / n, (i + 1) * m / n);
            let cut = key(m + i);
            tasks.push((
                cut,
                Task::call(
                    crate::ops::split_rows::op(),
                    [Arg::Value(Value::new((b - a) as u64)), Arg::Key(*ik)],
                ),
            ));
            for j in a..b {
                let k = key(j);
                tasks.push((
                    k,
                    Task::call(
                        crate::ops::shuffle_pick::op(),
                        [Arg::Value(Value::new((j - a) as u64)), Arg::Key(cut)],
                    ),
                ));
                outputs.push(k);
            }
        }
    }
    Layer {
        tasks,
        outputs,
        deps: vec![inner],
    }
}

fn resize_layer(input: &Node, cuts: &[u64], groups: &[usize], name: &str, token: Token) -> Layer {
    let inner = input.layer();
    let none = Value::new(Plan(Vec::<FrameOp>::new()));
    let (cut_name, piece_name) = (format!("{name}-cut"), format!("{name}-piece"));
    let mut tasks = Vec::new();
    let mut pieces = Vec::new();
    for (i, (k, &c)) in inner.outputs.iter().zip(cuts).enumerate() {
        if c <= 1 {
            pieces.push(*k);
            continue;
        }
        let cut = Key::block(&cut_name, token, &[i as u32]);
        tasks.push((
            cut,
            Task::call(
                crate::ops::split_rows::op(),
                [Arg::Value(Value::new(c)), Arg::Key(*k)],
            ),
        ));
        for j in 0..c {
            let p = Key::block(&piece_name, token, &[i as u32, j as u32]);
            tasks.push((
                p,
                Task::call(
                    crate::ops::shuffle_pick::op(),
                    [Arg::Value(Value::new(j)), Arg::Key(cut)],
                ),
            ));
            pieces.push(p);
        }
    }
    let mut outputs = Vec::with_capacity(groups.len());
    let mut at = 0;
    for (j, &g) in groups.iter().enumerate() {
        let k = Key::block(name, token, &[j as u32]);
        let args = pieces[at..at + g].iter().map(|p| Arg::Key(*p)).collect();
        tasks.push((k, apply_task(&none, args)));
        outputs.push(k);
        at += g;
    }
    Layer {
        tasks,
        outputs,
        deps: vec![inner],
    }
}

/// A task concatenating `parts` and applying the ops in `ops`.
pub(crate) fn apply_task(ops: &Value, parts: Vec<Arg>) -> Task {
    Task::call(
        crate::ops::apply::op(),
        [Arg::Value(ops.clone()), Arg::List(parts)],
    )
}

fn over(inner: Arc<Layer>, ops: &[FrameOp], key: impl Fn(usize) -> Key) -> Layer {
    let ops = Value::new(Plan(ops.to_vec()));
    let (tasks, outputs) = inner
        .outputs
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let out = key(i);
            ((out, apply_task(&ops, vec![Arg::Key(*k)])), out)
        })
        .unzip();
    Layer {
        tasks,
        outputs,
        deps: vec![inner],
    }
}

/// Partitions `indices` of a node, fused into its source when it has one.
pub(crate) fn subset(n: &Arc<Node>, indices: &[usize]) -> Arc<Node> {
    let mut t = Tokenizer::new();
    t.write_str("partitions");
    t.write_token(n.token);
    for &i in indices {
        t.write_u64(i as u64);
    }
    let token = t.finish();
    let kind = match &n.kind {
        Kind::Scan { source, ops } => Kind::Scan {
            source: Arc::new(crate::scan::Source {
                format: source.format.clone(),
                storage: source.storage.clone(),
                pieces: indices.iter().map(|&i| source.pieces[i].clone()).collect(),
            }),
            ops: ops.clone(),
        },
        Kind::Parts { parts, deps, ops } => Kind::Parts {
            parts: Arc::new(indices.iter().map(|&i| parts[i].clone()).collect()),
            deps: deps.clone(),
            ops: ops.clone(),
        },
        Kind::Map { input, ops } => Kind::Map {
            input: subset(input, indices),
            ops: ops.clone(),
        },
        _ => Kind::Subset {
            input: n.clone(),
            indices: indices.to_vec(),
        },
    };
    Node::new(n.name, token, n.schema.clone(), indices.len(), kind)
}

/// The partitions of several frames one after another, columns matched by name.
pub(crate) fn concat(frames: &[crate::DataFrame]) -> crate::DataFrame {
    let go = || -> Result<Arc<Node>, crate::FrameError> {
        let nodes: Vec<&Arc<Node>> = frames.iter().map(|f| f.node()).collect::<Result<_, _>>()?;
        let Some(first) = nodes.first() else {
            return Err(crate::FrameError::Invalid("concat of no frames".into()));
        };
        let schema = first.schema.clone();
        let mut t = Tokenizer::new();
        t.write_str("concat");
        let mut inputs = Vec::new();
        for n in &nodes {
            t.write_token(n.token);
            if n.schema.len() != schema.len() {
                return Err(crate::FrameError::Invalid(format!(
                    "concat: frames have different columns: [{}] and [{}]",
                    schema
                        .iter_names()
                        .map(|c| c.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    n.schema
                        .iter_names()
                        .map(|c| c.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            let mut reorder = Vec::new();
            for (c, d) in schema.iter() {
                match n.schema.get(c.as_str()) {
                    None => {
                        return Err(crate::FrameError::UnknownColumn {
                            column: c.to_string(),
                            available: n.schema.iter_names().map(|c| c.to_string()).collect(),
                        })
                    }
                    Some(other) if other != d => {
                        return Err(crate::FrameError::Invalid(format!(
                            "concat: column `{c}` is {d} in the first frame and {other} in another; cast one of them"
                        )))
                    }
                    Some(_) => reorder.push(col(c.as_str())),
                }
            }
            let same_order = n
                .schema
                .iter_names()
                .zip(schema.iter_names())
                .all(|(a, b)| a == b);
            inputs.push(if same_order {
                (*n).clone()
            } else {
                n.with_ops("reorder", vec![FrameOp::Select(reorder)])?
            });
        }
        let np = inputs.iter().map(|n| n.npartitions).sum();
        Ok(Node::new(
            "concat",
            t.finish(),
            schema,
            np,
            Kind::Concat { inputs },
        ))
    };
    crate::DataFrame::from_result(go())
}

/// The rows of `n` in `m` partitions, order kept: neighbours concatenated, or each partition
/// cut into equal row ranges.
pub(crate) fn repartition(n: &Arc<Node>, m: usize) -> Arc<Node> {
    let mut t = Tokenizer::new();
    t.write_str("repartition");
    t.write_token(n.token);
    t.write_u64(m as u64);
    Node::new(
        "repartition",
        t.finish(),
        n.schema.clone(),
        m,
        Kind::Repartition { input: n.clone() },
    )
}

/// Whether `target` is `base` with only row filters and new columns applied after it (so an
/// expression over `base`'s columns means the same rows of `target`).
pub(crate) fn filtered_from(target: &Node, base: &Node) -> bool {
    if target.token == base.token {
        return true;
    }
    let empty = Vec::new();
    let (t_ops, b_ops, same_source) = match (&target.kind, &base.kind) {
        (Kind::Scan { source: a, ops: x }, Kind::Scan { source: b, ops: y }) => {
            (x, y, Arc::ptr_eq(a, b))
        }
        (
            Kind::Parts {
                parts: a, ops: x, ..
            },
            Kind::Parts {
                parts: b, ops: y, ..
            },
        ) => (x, y, Arc::ptr_eq(a, b)),
        (Kind::Map { input: a, ops: x }, Kind::Map { input: b, ops: y }) if a.token == b.token => {
            (x, y, true)
        }
        (Kind::Map { input, ops: x }, _) => (x, &empty, input.token == base.token),
        _ => return false,
    };
    same_source
        && t_ops.len() >= b_ops.len()
        && t_ops[..b_ops.len()] == b_ops[..]
        && t_ops[b_ops.len()..].iter().all(|o| match o {
            FrameOp::Filter(_) => true,
            // Columns added (not replaced) leave `base`'s columns as they were.
            FrameOp::WithColumns(exprs) => exprs.iter().all(|e| {
                output_schema(&base.schema, &[FrameOp::Select(vec![e.clone()])])
                    .ok()
                    .and_then(|s| {
                        s.get_at_index(0)
                            .map(|(n, _)| base.schema.get(n.as_str()).is_none())
                    })
                    .unwrap_or(false)
            }),
            _ => false,
        })
}

/// Whether `ops` leave column `c` as it was (selected as itself, never replaced).
fn keeps_column(schema: &Schema, ops: &[FrameOp], c: &str) -> bool {
    let itself = col(c);
    let name_of = |e: &Expr| {
        output_schema(schema, &[FrameOp::Select(vec![e.clone()])])
            .ok()
            .and_then(|s| s.get_at_index(0).map(|(n, _)| n.to_string()))
    };
    ops.iter().all(|op| match op {
        FrameOp::Select(exprs) => exprs.contains(&itself),
        FrameOp::WithColumns(exprs) => exprs
            .iter()
            .all(|e| *e == itself || name_of(e).is_some_and(|n| n != c)),
        _ => true,
    })
}

/// Checks that expressions used per partition are row-wise: aggregations, windows, sorts and
/// slices would give answers that depend on how rows are partitioned.
pub(crate) fn check_rowwise(exprs: &[Expr]) -> Result<(), crate::FrameError> {
    fn has_columns(e: &Expr) -> bool {
        e.into_iter()
            .any(|n| matches!(n, Expr::Column(_) | Expr::Selector(_) | Expr::Len))
    }
    for e in exprs {
        for node in e {
            let bad = match node {
                // A constant aggregation (`lit(values).implode()` for `is_in`) is fine.
                Expr::Agg(_) => has_columns(node),
                Expr::Len
                | Expr::Over { .. }
                | Expr::Sort { .. }
                | Expr::SortBy { .. }
                | Expr::Gather { .. }
                | Expr::Slice { .. }
                | Expr::Explode { .. }
                | Expr::Filter { .. } => true,
                _ => false,
            };
            if bad {
                return Err(crate::FrameError::Invalid(format!(
                    "`{e}` is not row-wise: per-partition steps (select, filter, with_columns) need one value per row; aggregate with agg/groupby, or use map_partitions"
                )));
            }
        }
    }
    Ok(())
}

/// Checks that ops can be sent to workers (Polars cannot serialize Rust closures).
pub(crate) fn check_serializable(ops: &[FrameOp]) -> Result<(), crate::FrameError> {
    polars::polars_utils::pl_serialize::serialize_to_bytes::<Vec<FrameOp>, false>(&ops.to_vec())
        .map(|_| ())
        .map_err(|e| {
            crate::FrameError::Invalid(format!(
                "this step cannot be sent to workers ({e}); expressions must not hold Rust closures — use map_partitions with a registered function"
            ))
        })
}
