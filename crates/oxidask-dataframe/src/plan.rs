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
use polars::series::IsSorted;
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

/// `ops` split before a final sort, which then runs on the collected rows
/// ([`sort_collected`]): a partition already in order skips it.
pub(crate) fn final_sort(ops: &[FrameOp]) -> (&[FrameOp], Option<&FrameOp>) {
    match ops.split_last() {
        Some((last @ FrameOp::Sort { .. }, rest)) => (rest, Some(last)),
        _ => (ops, None),
    }
}

/// Sorts collected rows as `sort` (a [`FrameOp::Sort`], or none) says. Rows already in that
/// order by one key column without nulls (a file written in time order, read for a
/// `set_index` on its time) are returned as they are, the key flagged sorted: the stable sort
/// would not move them, and its gather of every column (a copy of the partition) is skipped.
pub(crate) fn sort_collected(df: DataFrame, sort: Option<&FrameOp>) -> PolarsResult<DataFrame> {
    let Some(FrameOp::Sort {
        by,
        descending,
        nulls_last,
    }) = sort
    else {
        return Ok(df);
    };
    if let ([key], [desc]) = (by.as_slice(), descending.as_slice()) {
        let mut df = df;
        let flag = match in_order(df.column(key.as_str())?, *desc) {
            Some(flag) => flag,
            None => {
                df = sort_by_one(&df, key, *desc, *nulls_last)?;
                if *desc {
                    IsSorted::Descending
                } else {
                    IsSorted::Ascending
                }
            }
        };
        df.apply(key.as_str(), |s| {
            let mut s = s.clone();
            s.set_sorted_flag(flag);
            s
        })?;
        return Ok(df);
    }
    sort_frame(df, by, descending, *nulls_last)
}

/// `df` stably sorted by one column, as Polars sorts it (the key's `arg_sort`, then a gather
/// of every column), with the gather done column by column from the frame's chunks: a frame
/// concatenated from shuffle pieces is not first copied whole into one chunk (Polars'
/// `DataFrame::sort` rechunks every column at once, which held a second copy of the
/// partition); each column is made contiguous only while it is gathered.
fn sort_by_one(
    df: &DataFrame,
    key: &str,
    descending: bool,
    nulls_last: bool,
) -> PolarsResult<DataFrame> {
    use rayon::prelude::*;
    let column = df.column(key)?;
    let few = match column.dtype() {
        DataType::String => order_by_few_strings(column.str()?, descending, nulls_last),
        _ => None,
    };
    let order = match few {
        Some(order) => IdxCa::from_vec(PlSmallStr::EMPTY, order),
        None => column.as_materialized_series().arg_sort(SortOptions {
            descending,
            nulls_last,
            multithreaded: true,
            maintain_order: true,
            limit: None,
        }),
    };
    if df.width() == 0 {
        return Ok(df.clone());
    }
    let columns: Vec<Column> = polars_core::runtime::RAYON.install(|| {
        df.columns()
            .par_iter()
            .map(|c| {
                let c = c.rechunk();
                // SAFETY: `arg_sort` gives row numbers of `df`, all in bounds.
                unsafe { c.take_unchecked(&order) }
            })
            .collect()
    });
    DataFrame::new(df.height(), columns)
}

fn sort_frame(
    df: DataFrame,
    by: &[String],
    descending: &[bool],
    nulls_last: bool,
) -> PolarsResult<DataFrame> {
    df.sort(
        by.iter()
            .map(|s| PlSmallStr::from(s.as_str()))
            .collect::<Vec<_>>(),
        SortMultipleOptions::default()
            .with_order_descending_multi(descending.to_vec())
            .with_nulls_last(nulls_last)
            .with_maintain_order(true),
    )
}

/// The stable sort order of a string column with few distinct values (zone names,
/// tickers, countries: the usual string index), or `None` when it has many. Each value gets
/// the rank of its string among the distinct ones (one hash lookup per row, one sort of the
/// distinct strings), then a counting sort of the rows by rank: linear in the rows, where a
/// comparison sort compares strings n·log n times. Gives up, having hashed at most a few
/// percent of the rows, once the distinct values pass max(1,024, rows / 32).
fn order_by_few_strings(
    c: &StringChunked,
    descending: bool,
    nulls_last: bool,
) -> Option<Vec<IdxSize>> {
    const NULL: u32 = u32::MAX;
    let rows = c.len();
    if rows > IdxSize::MAX as usize {
        return None;
    }
    let limit = (rows / 32).max(1024);
    let mut ids: rustc_hash::FxHashMap<&str, u32> = rustc_hash::FxHashMap::default();
    let mut row_ids: Vec<u32> = Vec::with_capacity(rows);
    for arr in c.downcast_iter() {
        for v in arr.iter() {
            let id = match v {
                None => NULL,
                Some(s) => {
                    let next = ids.len() as u32;
                    let id = *ids.entry(s).or_insert(next);
                    if ids.len() > limit {
                        return None;
                    }
                    id
                }
            };
            row_ids.push(id);
        }
    }
    let mut distinct: Vec<(&str, u32)> = ids.into_iter().collect();
    // The strings are distinct: any sort gives the one order (byte-wise, as Polars sorts).
    distinct.sort_unstable_by(|a, b| a.0.cmp(b.0));
    if descending {
        distinct.reverse();
    }
    // Ranks 0..k for the values; nulls take k (last) or come first (values shifted by one).
    let k = distinct.len();
    let shift = u32::from(!nulls_last);
    let null_rank = if nulls_last { k as u32 } else { 0 };
    let mut rank = vec![0u32; k];
    for (r, (_, id)) in distinct.iter().enumerate() {
        rank[*id as usize] = r as u32 + shift;
    }
    let rank_of = |id: u32| {
        if id == NULL {
            null_rank
        } else {
            rank[id as usize]
        }
    };
    let mut starts = vec![0 as IdxSize; k + 2];
    for id in &row_ids {
        starts[rank_of(*id) as usize + 1] += 1;
    }
    for r in 1..starts.len() {
        starts[r] += starts[r - 1];
    }
    let mut order = vec![0 as IdxSize; rows];
    for (row, id) in row_ids.iter().enumerate() {
        let slot = &mut starts[rank_of(*id) as usize];
        order[*slot as usize] = row as IdxSize;
        *slot += 1;
    }
    Some(order)
}

/// The sorted flag for `c` when its values are already in the order Polars' stable sort gives
/// (ascending, or `descending`; floats by Polars' total order: NaNs equal and largest), with no
/// nulls; `None` when they are not, or when unsure (nulls, types not compared here).
fn in_order(c: &Column, descending: bool) -> Option<IsSorted> {
    use polars::polars_utils::total_ord::TotalOrd;
    fn ordered<T: Copy>(mut values: impl Iterator<Item = T>, le: impl Fn(&T, &T) -> bool) -> bool {
        let Some(mut prev) = values.next() else {
            return true;
        };
        for v in values {
            if !le(&prev, &v) {
                return false;
            }
            prev = v;
        }
        true
    }
    fn numeric<T>(s: &Series, descending: bool) -> bool
    where
        T: PolarsNumericType,
        T::Native: TotalOrd,
    {
        let Ok(ca) = s.unpack::<T>() else {
            return false;
        };
        let values = ca.downcast_iter().flat_map(|a| a.values().iter().copied());
        if descending {
            ordered(values, |a, b| a.tot_ge(b))
        } else {
            ordered(values, |a, b| a.tot_le(b))
        }
    }
    if c.null_count() > 0 {
        return None;
    }
    let flag = if descending {
        IsSorted::Descending
    } else {
        IsSorted::Ascending
    };
    let s = c.as_materialized_series().to_physical_repr();
    if s.is_sorted_flag() == flag {
        return Some(flag);
    }
    let ok = match s.dtype() {
        DataType::Int8 => numeric::<Int8Type>(&s, descending),
        DataType::Int16 => numeric::<Int16Type>(&s, descending),
        DataType::Int32 => numeric::<Int32Type>(&s, descending),
        DataType::Int64 => numeric::<Int64Type>(&s, descending),
        DataType::UInt8 => numeric::<UInt8Type>(&s, descending),
        DataType::UInt16 => numeric::<UInt16Type>(&s, descending),
        DataType::UInt32 => numeric::<UInt32Type>(&s, descending),
        DataType::UInt64 => numeric::<UInt64Type>(&s, descending),
        DataType::Float32 => numeric::<Float32Type>(&s, descending),
        DataType::Float64 => numeric::<Float64Type>(&s, descending),
        DataType::String => {
            let values = s.str().ok()?.downcast_iter().flat_map(|a| a.values_iter());
            if descending {
                ordered(values, |a, b| a >= b)
            } else {
                ordered(values, |a, b| a <= b)
            }
        }
        _ => false,
    };
    ok.then_some(flag)
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Whether Polars' stable sort of `c` leaves every row where it is.
    fn polars_keeps_order(c: &Column, descending: bool) -> bool {
        let idx = c.as_materialized_series().arg_sort(
            SortOptions::default()
                .with_order_descending(descending)
                .with_maintain_order(true),
        );
        let kept = idx
            .into_no_null_iter()
            .enumerate()
            .all(|(i, j)| i as IdxSize == j);
        kept
    }

    proptest! {
        /// The check that skips a sort agrees with Polars' stable sort, on floats drawn from
        /// the values where orders disagree (NaN, ±0, ±inf), integers and strings.
        #[test]
        fn in_order_agrees_with_polars_stable_sort(
            picks in proptest::collection::vec(0usize..7, 0..12),
            descending in any::<bool>(),
            sorted_first in any::<bool>(),
        ) {
            const FLOATS: [f64; 7] = [f64::NAN, -0.0, 0.0, 1.0, f64::NEG_INFINITY, f64::INFINITY, -f64::NAN];
            let mut picks = picks;
            if sorted_first {
                // Sorted inputs are what the check is for: make them common.
                picks.sort_unstable();
                if descending {
                    picks.reverse();
                }
            }
            let floats: Vec<f64> = picks.iter().map(|i| FLOATS[*i]).collect();
            let ints: Vec<i64> = picks.iter().map(|i| *i as i64 - 3).collect();
            let strs: Vec<String> = picks.iter().map(|i| ["", "a", "ab", "b", "B", "é", "a\0"][*i].to_owned()).collect();
            for c in [
                Column::new("x".into(), floats),
                Column::new("x".into(), ints),
                Column::new("x".into(), strs),
            ] {
                prop_assert_eq!(
                    in_order(&c, descending).is_some(),
                    polars_keeps_order(&c, descending),
                    "{:?} descending={}", c, descending
                );
            }
        }
    }

    proptest! {
        /// The counting sort of a string key with few distinct values, and the comparison sort
        /// a key with many falls back to, give Polars' stable sort, nulls first or last.
        #[test]
        fn a_string_key_sorts_as_polars_sorts_it(
            picks in proptest::collection::vec(proptest::option::weighted(0.9, 0usize..8), 0..300),
            unique in any::<bool>(),
            descending in any::<bool>(),
            nulls_last in any::<bool>(),
        ) {
            const WORDS: [&str; 8] = ["", "a", "ab", "b", "B", "é", "a\0", "a long string past twelve bytes"];
            let keys: Vec<Option<String>> = picks
                .iter()
                .enumerate()
                .map(|(i, p)| p.map(|w| if unique {
                    // Every value distinct past the first few: more than the few-values limit
                    // once there are enough rows.
                    format!("{}{i:05}", WORDS[w])
                } else {
                    WORDS[w].to_owned()
                }))
                .collect();
            let rows: Vec<u32> = (0..keys.len() as u32).collect();
            let df = df!("k" => keys, "row" => rows).unwrap();
            let sort = FrameOp::Sort {
                by: vec!["k".into()],
                descending: vec![descending],
                nulls_last,
            };
            let got = sort_collected(df.clone(), Some(&sort)).unwrap();
            let want = sort_frame(df, &["k".into()], &[descending], nulls_last).unwrap();
            prop_assert!(got.equals_missing(&want), "{} {}", got, want);
        }
    }

    #[test]
    fn a_string_key_with_many_distinct_values_falls_back_to_the_comparison_sort() {
        // 4,000 distinct values (more than max(1,024, rows / 32)) in scrambled order.
        let keys: Vec<Option<String>> = (0..5000u32)
            .map(|i| (i % 50 != 0).then(|| format!("v{:05}", (i * 7919) % 4001)))
            .collect();
        let rows: Vec<u32> = (0..5000).collect();
        let df = df!("k" => keys, "row" => rows).unwrap();
        assert!(
            order_by_few_strings(df.column("k").unwrap().str().unwrap(), false, true).is_none()
        );
        // 40 distinct values: the counting sort.
        let few =
            df!("k" => (0..5000u32).map(|i| format!("z{}", (i * 7) % 40)).collect::<Vec<_>>())
                .unwrap();
        assert!(
            order_by_few_strings(few.column("k").unwrap().str().unwrap(), false, true).is_some()
        );
        for (descending, nulls_last) in [(false, true), (true, false), (true, true), (false, false)]
        {
            let sort = FrameOp::Sort {
                by: vec!["k".into()],
                descending: vec![descending],
                nulls_last,
            };
            let got = sort_collected(df.clone(), Some(&sort)).unwrap();
            let want = sort_frame(df.clone(), &["k".into()], &[descending], nulls_last).unwrap();
            assert!(got.equals_missing(&want), "{got} {want}");
        }
    }

    #[test]
    fn a_partition_in_order_is_returned_as_it_is_and_flagged_sorted() {
        let df = df!("t" => [1i64, 2, 2, 5], "v" => ["a", "b", "c", "d"]).unwrap();
        let sort = FrameOp::Sort {
            by: vec!["t".into()],
            descending: vec![false],
            nulls_last: true,
        };
        let out = sort_collected(df.clone(), Some(&sort)).unwrap();
        assert!(out.equals(&df));
        assert_eq!(
            out.column("t")
                .unwrap()
                .as_materialized_series()
                .is_sorted_flag(),
            IsSorted::Ascending
        );
        // Not in order, or with nulls: sorted by Polars.
        let df = df!("t" => [Some(3i64), None, Some(1)], "v" => ["a", "b", "c"]).unwrap();
        let out = sort_collected(df, Some(&sort)).unwrap();
        let t: Vec<Option<i64>> = out.column("t").unwrap().i64().unwrap().iter().collect();
        assert_eq!(t, vec![Some(1), Some(3), None]);
    }
}
