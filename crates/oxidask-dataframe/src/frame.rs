//! [`DataFrame`]: a lazy, partitioned frame whose partitions are Polars `DataFrame`s.

use std::fmt;
use std::sync::Arc;

use oxidask_core::tokenize::Tokenizer;
use oxidask_core::{Arg, Collection, Error, Graph, Key, OpDef, Value};
use polars::prelude::{self as pl, col, len, lit, DataType, Expr, IntoLazy, SchemaRef, NULL};

use crate::agg::{self, Agg, AggFn};
use crate::configured_split_every;
use crate::error::FrameError;
use crate::groupby::GroupBy;
use crate::partition::{Partition, Plan};
use crate::plan::{add_layer, FrameOp, Kind, Node};
use crate::series::{Operand, Series};

/// A lazy dataframe split into partitions along its rows: Dask's `DataFrame` on Polars.
///
/// Operations build a plan; `compute()` runs it on the current scheduler (threaded by default,
/// the cluster when a client is connected) and returns a Polars `DataFrame`. Per-partition
/// steps are Polars expressions fused into one Polars query per partition, so filters and
/// column selections reach the file readers.
///
/// ```
/// use oxidask_dataframe::{self as dd, col, lit};
/// # use oxidask_local as _;
/// use oxidask_core::Collection;
/// let pdf = polars::df!("k" => [1i64, 2, 1, 2], "v" => [1.0, 2.0, 3.0, 4.0]).unwrap();
/// let df = dd::from_polars(pdf, 2);
/// let big = df.filter(col("v").gt(lit(1.5)));
/// assert_eq!(big.len().unwrap(), 3);
/// let means = df.groupby(["k"]).agg([dd::agg::mean("v")]).compute().unwrap();
/// assert_eq!(means.column("v").unwrap().f64().unwrap().get(0), Some(2.0));
/// ```
#[derive(Clone)]
pub struct DataFrame {
    pub(crate) inner: Result<Arc<Node>, Arc<FrameError>>,
}

/// What [`DataFrame::filter`] keeps rows by: a Polars expression or a boolean [`Series`] of
/// the same frame.
pub enum Predicate {
    /// An expression over the frame's columns.
    Expr(Expr),
    /// A boolean series derived from the frame.
    Series(Series),
}

impl From<Expr> for Predicate {
    fn from(e: Expr) -> Self {
        Predicate::Expr(e)
    }
}

impl From<Series> for Predicate {
    fn from(s: Series) -> Self {
        Predicate::Series(s)
    }
}

impl From<&Series> for Predicate {
    fn from(s: &Series) -> Self {
        Predicate::Series(s.clone())
    }
}

impl DataFrame {
    pub(crate) fn from_node(n: Arc<Node>) -> DataFrame {
        DataFrame { inner: Ok(n) }
    }

    pub(crate) fn from_result(r: Result<Arc<Node>, FrameError>) -> DataFrame {
        DataFrame {
            inner: r.map_err(Arc::new),
        }
    }

    pub(crate) fn node(&self) -> Result<&Arc<Node>, FrameError> {
        self.inner.as_ref().map_err(|e| (**e).clone())
    }

    /// Same frame identity (same plan): series of this frame can be combined with it.
    /// (or `other` is this frame with rows filtered, so the series' rows line up).
    pub(crate) fn same_as(&self, other: &DataFrame) -> bool {
        match (&self.inner, &other.inner) {
            (Ok(a), Ok(b)) => crate::plan::filtered_from(b, a),
            _ => false,
        }
    }

    fn then(&self, f: impl FnOnce(&Arc<Node>) -> Result<Arc<Node>, FrameError>) -> DataFrame {
        DataFrame::from_result(self.node().and_then(f))
    }

    pub(crate) fn with_ops(&self, name: &'static str, ops: Vec<FrameOp>) -> DataFrame {
        self.then(|n| n.with_ops(name, ops))
    }

    /// The number of partitions.
    pub fn npartitions(&self) -> usize {
        self.inner.as_ref().map_or(0, |n| n.npartitions)
    }

    /// The columns and their types (empty if the frame is invalid; see [`DataFrame::check`]).
    pub fn schema(&self) -> SchemaRef {
        match &self.inner {
            Ok(n) => n.schema.clone(),
            Err(_) => Arc::new(pl::Schema::default()),
        }
    }

    /// Column names, in order.
    pub fn columns(&self) -> Vec<String> {
        self.schema().iter_names().map(|n| n.to_string()).collect()
    }

    /// Column names and types, in order.
    pub fn dtypes(&self) -> Vec<(String, DataType)> {
        self.schema()
            .iter()
            .map(|(n, d)| (n.to_string(), d.clone()))
            .collect()
    }

    /// The plan as the optimizer leaves it, one node a line with its inputs indented below
    /// it: what each step is, its partitions and columns, and for reads the columns read
    /// from the files (projection pushdown) — Dask's `explain()`.
    pub fn explain(&self) -> String {
        match &self.inner {
            Ok(n) => crate::optimize::explain(&n.optimized()),
            Err(e) => format!("invalid frame: {e}"),
        }
    }

    /// Whether divisions along an index are known (after [`DataFrame::set_index`]); frames
    /// read from files have unknown divisions, as Dask's.
    pub fn known_divisions(&self) -> bool {
        self.index().is_some()
    }

    /// `Ok` if the frame is valid; otherwise the error that made it invalid (an unknown column,
    /// a type mismatch in an expression, a file that could not be read when the plan was made).
    pub fn check(&self) -> Result<(), Error> {
        self.node().map(|_| ()).map_err(Error::from)
    }

    /// Keeps these expressions as the columns (`col("a")`, `col("b") * lit(2)`, …).
    pub fn select<E: AsRef<[Expr]>>(&self, exprs: E) -> DataFrame {
        if let Err(e) = crate::plan::check_rowwise(exprs.as_ref()) {
            return DataFrame::from_result(Err(e));
        }
        self.with_ops("select", vec![FrameOp::Select(exprs.as_ref().to_vec())])
    }

    /// The frame with only these columns (`df[["a", "b"]]`).
    pub fn columns_subset<S: AsRef<str>>(&self, names: impl IntoIterator<Item = S>) -> DataFrame {
        let exprs: Vec<Expr> = names.into_iter().map(|n| col(n.as_ref())).collect();
        self.select(exprs)
    }

    /// One column as a [`Series`] (`df["a"]`). An unknown name gives a series whose
    /// operations report the column and the ones that exist.
    pub fn column(&self, name: &str) -> Series {
        match &self.inner {
            Ok(n) if n.schema.get(name).is_none() => Series::invalid(FrameError::UnknownColumn {
                column: name.to_owned(),
                available: self.columns(),
            }),
            _ => Series::of(self.clone(), col(name), name),
        }
    }

    /// Rows where `predicate` holds: an expression (`col("x").gt(lit(10))`) or a boolean
    /// series of this frame (`df.column("x").gt(10)`).
    pub fn filter(&self, predicate: impl Into<Predicate>) -> DataFrame {
        let e = match predicate.into() {
            Predicate::Expr(e) => e,
            Predicate::Series(s) => match s.expr_over(self) {
                Ok(e) => e,
                Err(err) => return DataFrame::from_result(Err(err)),
            },
        };
        if let Err(err) = crate::plan::check_rowwise(std::slice::from_ref(&e)) {
            return DataFrame::from_result(Err(err));
        }
        self.with_ops("filter", vec![FrameOp::Filter(e)])
    }

    /// Adds or replaces columns with expressions (named by `.alias(..)` or their input).
    pub fn with_columns<E: AsRef<[Expr]>>(&self, exprs: E) -> DataFrame {
        if let Err(e) = crate::plan::check_rowwise(exprs.as_ref()) {
            return DataFrame::from_result(Err(e));
        }
        let ops = vec![FrameOp::WithColumns(exprs.as_ref().to_vec())];
        self.with_ops("with-columns", ops)
    }

    /// Adds or replaces a column from a series of this frame or an expression (Dask's
    /// `assign` / `df["c"] = ...`).
    pub fn assign(&self, name: &str, value: impl Into<Operand>) -> DataFrame {
        match value.into().expr_over(self) {
            Ok(e) => self.with_columns([e.alias(name)]),
            Err(err) => DataFrame::from_result(Err(err)),
        }
    }

    fn known(&self, names: &[&str]) -> Result<(), FrameError> {
        let schema = self.schema();
        for n in names {
            if schema.get(n).is_none() {
                return Err(FrameError::UnknownColumn {
                    column: (*n).to_owned(),
                    available: self.columns(),
                });
            }
        }
        Ok(())
    }

    /// Renames columns (`[("old", "new")]`); unknown names are an error.
    pub fn rename<'a>(&self, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> DataFrame {
        let pairs: Vec<(&str, &str)> = pairs.into_iter().collect();
        let olds: Vec<&str> = pairs.iter().map(|p| p.0).collect();
        if let Err(e) = self.known(&olds) {
            return DataFrame::from_result(Err(e));
        }
        let exprs: Vec<Expr> = self
            .columns()
            .iter()
            .map(|c| match pairs.iter().find(|p| p.0 == c) {
                Some((_, new)) => col(c.as_str()).alias(*new),
                None => col(c.as_str()),
            })
            .collect();
        self.with_ops("rename", vec![FrameOp::Select(exprs)])
    }

    /// Drops columns; unknown names are an error.
    pub fn drop<'a>(&self, columns: impl IntoIterator<Item = &'a str>) -> DataFrame {
        let gone: Vec<&str> = columns.into_iter().collect();
        if let Err(e) = self.known(&gone) {
            return DataFrame::from_result(Err(e));
        }
        let keep: Vec<Expr> = self
            .columns()
            .iter()
            .filter(|c| !gone.contains(&c.as_str()))
            .map(|c| col(c.as_str()))
            .collect();
        self.with_ops("drop", vec![FrameOp::Select(keep)])
    }

    /// Casts columns to new types (`[("passenger_count", DataType::Int32)]`).
    pub fn cast<'a>(&self, columns: impl IntoIterator<Item = (&'a str, DataType)>) -> DataFrame {
        let casts: Vec<(&str, DataType)> = columns.into_iter().collect();
        let names: Vec<&str> = casts.iter().map(|c| c.0).collect();
        if let Err(e) = self.known(&names) {
            return DataFrame::from_result(Err(e));
        }
        let exprs: Vec<Expr> = casts
            .into_iter()
            .map(|(c, d)| col(c).strict_cast(d).alias(c))
            .collect();
        self.with_ops("cast", vec![FrameOp::WithColumns(exprs)])
    }

    /// Replaces nulls in every column with `value` (Dask's `fillna`); columns whose type the
    /// value does not fit are left alone.
    pub fn fill_null(&self, value: impl Into<pl::Expr>) -> DataFrame {
        let value: Expr = value.into();
        let Ok(node) = self.node() else {
            return self.clone();
        };
        // The value's type decides which columns it fills: numbers fill numeric columns,
        // strings fill string columns, anything else columns of exactly its type.
        let vtype = crate::blocking::collect_schema(
            pl::DataFrame::empty_with_schema(&pl::Schema::default())
                .lazy()
                .select([value.clone().alias("v")]),
        )
        .ok()
        .and_then(|s| s.get("v").cloned());
        let fits = |d: &DataType| match &vtype {
            Some(v) if v.is_primitive_numeric() => d.is_primitive_numeric(),
            Some(DataType::String) => d == &DataType::String,
            Some(v) => v == d,
            None => false,
        };
        let exprs: Vec<Expr> = node
            .schema
            .iter()
            .filter(|(_, d)| fits(d))
            .map(|(n, _)| col(n.as_str()).fill_null(value.clone()).alias(n.as_str()))
            .collect();
        self.with_ops("fill-null", vec![FrameOp::WithColumns(exprs)])
    }

    /// Drops rows with a null in any of `subset` (all columns when `None`), as Dask's `dropna`.
    pub fn drop_nulls(&self, subset: Option<&[&str]>) -> DataFrame {
        let names: Vec<String> = match subset {
            Some(s) => {
                if let Err(e) = self.known(s) {
                    return DataFrame::from_result(Err(e));
                }
                s.iter().map(|c| (*c).to_owned()).collect()
            }
            None => self.columns(),
        };
        let Some(pred) = names
            .iter()
            .map(|c| col(c.as_str()).is_not_null())
            .reduce(|a, b| a.and(b))
        else {
            return self.clone();
        };
        self.with_ops("drop-nulls", vec![FrameOp::Filter(pred)])
    }

    /// Partitions `indices` of this frame, in that order (Dask's `partitions[..]`).
    pub fn partitions(&self, indices: impl IntoIterator<Item = usize>) -> DataFrame {
        let idx: Vec<usize> = indices.into_iter().collect();
        self.then(|n| {
            if let Some(bad) = idx.iter().find(|&&i| i >= n.npartitions) {
                return Err(FrameError::Invalid(format!(
                    "partition {bad} does not exist: the frame has {} partitions",
                    n.npartitions
                )));
            }
            Ok(crate::plan::subset(n, &idx))
        })
    }

    /// The first `n` rows, reading only the partitions (and, for files, the rows) needed.
    pub fn head(&self, n: usize) -> Result<pl::DataFrame, Error> {
        let node = self.node()?;
        let mut out = pl::DataFrame::empty_with_schema(&node.schema);
        for i in 0..node.npartitions {
            let need = n - out.height();
            if need == 0 {
                break;
            }
            let part = self.partitions([i]).with_ops(
                "head",
                vec![FrameOp::Slice {
                    offset: 0,
                    len: need as u64,
                }],
            );
            let got = part.compute()?;
            out.vstack_mut(&got)
                .map_err(|e| FrameError::polars("head", e))?;
        }
        Ok(out)
    }

    /// Aggregates the whole frame to one row (`[agg::sum("a"), agg::mean("b")]`).
    pub fn agg(&self, aggs: impl IntoIterator<Item = Agg>) -> DataFrame {
        let aggs: Vec<Agg> = aggs.into_iter().collect();
        self.reduce("agg", &[], &aggs, configured_split_every())
    }

    pub(crate) fn reduce(
        &self,
        name: &'static str,
        keys: &[String],
        aggs: &[Agg],
        split_every: usize,
    ) -> DataFrame {
        self.then(|n| {
            let p = agg::plan(&n.schema, keys, aggs)?;
            let mut t = Tokenizer::new();
            t.write_str(name);
            t.write_token(n.token);
            t.write_data(&Plan((p.chunk.clone(), p.finalize.clone())));
            t.write_u64(split_every as u64);
            Ok(Node::new(
                name,
                t.finish(),
                p.schema,
                1,
                Kind::Reduce {
                    input: n.clone(),
                    chunk: p.chunk,
                    combine: p.combine,
                    finalize: p.finalize,
                    split_every,
                },
            ))
        })
    }

    /// Aggregation by shuffle: partials per partition, hash-shuffled by key into
    /// `split_out` partitions, merged and finished there.
    pub(crate) fn shuffle_aggregate(
        &self,
        keys: &[String],
        aggs: &[Agg],
        split_out: usize,
    ) -> DataFrame {
        self.then(|n| {
            let p = agg::plan(&n.schema, keys, aggs)?;
            let partials = n.with_ops("groupby-chunk", p.chunk)?;
            let moved = crate::shuffle::shuffle(&partials, keys, split_out);
            let ops: Vec<FrameOp> = p.combine.into_iter().chain(p.finalize).collect();
            moved.with_ops("groupby-agg", ops)
        })
    }

    fn agg_all(&self, func: AggFn, numeric_only: bool) -> DataFrame {
        let aggs: Vec<Agg> = self
            .dtypes()
            .into_iter()
            .filter(|(_, d)| !numeric_only || d.is_primitive_numeric() || d.is_bool())
            .map(|(c, _)| Agg::new(c, func))
            .collect();
        self.agg(aggs)
    }

    /// Sum of every numeric column (one row).
    pub fn sum(&self) -> DataFrame {
        self.agg_all(AggFn::Sum, true)
    }

    /// Mean of every numeric column (one row).
    pub fn mean(&self) -> DataFrame {
        self.agg_all(AggFn::Mean, true)
    }

    /// Non-null values of every column (one row).
    pub fn count(&self) -> DataFrame {
        self.agg_all(AggFn::Count, false)
    }

    /// Smallest value of every column (one row).
    pub fn min(&self) -> DataFrame {
        self.agg_all(AggFn::Min, false)
    }

    /// Largest value of every column (one row).
    pub fn max(&self) -> DataFrame {
        self.agg_all(AggFn::Max, false)
    }

    /// Standard deviation (ddof 1) of every numeric column (one row).
    pub fn std(&self) -> DataFrame {
        self.agg_all(AggFn::Std(1), true)
    }

    /// Variance (ddof 1) of every numeric column (one row).
    pub fn var(&self) -> DataFrame {
        self.agg_all(AggFn::Var(1), true)
    }

    /// Distinct non-null values of every column (one row).
    pub fn nunique(&self) -> DataFrame {
        self.agg_all(AggFn::NUnique, false)
    }

    /// The number of rows (computed now, as Dask's `len(df)`).
    pub fn len(&self) -> Result<usize, Error> {
        let node = self.node()?;
        let counted = node
            .with_ops(
                "len",
                vec![FrameOp::GroupAgg {
                    keys: Vec::new(),
                    aggs: vec![len().cast(DataType::UInt64).alias("len")],
                }],
            )
            .map_err(Error::from)?;
        let total = DataFrame::from_node(counted).reduce_rows("len-total");
        let df = total.compute()?;
        let v = df
            .column("len")
            .and_then(|c| c.u64().map(|c| c.get(0).unwrap_or(0)))
            .map_err(|e| FrameError::polars("len", e))?;
        Ok(v as usize)
    }

    /// Sums the one-row partials of `len` to one row.
    fn reduce_rows(&self, name: &'static str) -> DataFrame {
        self.reduce(name, &[], &[agg::sum("len")], configured_split_every())
    }

    /// Whether the frame has no rows.
    pub fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len()? == 0)
    }

    /// Groups rows by the values of `keys` for aggregation.
    pub fn groupby<S: AsRef<str>>(&self, keys: impl IntoIterator<Item = S>) -> GroupBy {
        GroupBy::new(
            self.clone(),
            keys.into_iter().map(|k| k.as_ref().to_owned()).collect(),
        )
    }

    /// Distinct rows (over `subset` columns, all when `None`), keeping the first occurrence:
    /// per-partition, then merged in a tree (Dask's default `split_out=1`).
    pub fn drop_duplicates(&self, subset: Option<&[&str]>) -> DataFrame {
        if let Some(s) = subset {
            if let Err(e) = self.known(s) {
                return DataFrame::from_result(Err(e));
            }
        }
        let op = FrameOp::Unique {
            subset: subset.map(|s| s.iter().map(|c| (*c).to_owned()).collect()),
        };
        self.then(|n| {
            let mut t = Tokenizer::new();
            t.write_str("drop-duplicates");
            t.write_token(n.token);
            t.write_data(&Plan(vec![op.clone()]));
            Ok(Node::new(
                "drop-duplicates",
                t.finish(),
                n.schema.clone(),
                1,
                Kind::Reduce {
                    input: n.clone(),
                    chunk: vec![op.clone()],
                    combine: vec![op.clone()],
                    finalize: Vec::new(),
                    split_every: configured_split_every(),
                },
            ))
        })
    }

    /// A custom tree reduction (Dask's `reduction`/`Aggregation`): `chunk` runs on each
    /// partition, `combine` on the concatenation of `split_every` chunk (or combine) results,
    /// `finalize` on the concatenation of the last ones; each is a registered
    /// `#[oxidask::task]` taking `&Partition` and returning a `Partition`. The result is one
    /// partition with schema `meta`. Group-wise custom aggregations group inside the
    /// functions (the partials carry the keys).
    pub fn reduction(
        &self,
        chunk: &'static OpDef,
        combine: &'static OpDef,
        finalize: &'static OpDef,
        meta: pl::Schema,
        split_every: usize,
    ) -> DataFrame {
        self.then(|n| {
            let mut t = Tokenizer::new();
            t.write_str("reduction");
            t.write_token(n.token);
            for op in [chunk, combine, finalize] {
                t.write_str(op.name());
            }
            t.write_u64(split_every as u64);
            let node = Node::new(
                "reduction",
                t.finish(),
                Arc::new(meta.clone()),
                1,
                Kind::CustomReduce {
                    input: n.clone(),
                    chunk,
                    combine,
                    finalize,
                    split_every,
                },
            );
            let check: Vec<Expr> = meta
                .iter()
                .map(|(c, d)| col(c.as_str()).strict_cast(d.clone()).alias(c.as_str()))
                .collect();
            node.with_ops("reduction", vec![FrameOp::Select(check)])
        })
    }

    /// Applies a registered function (an `#[oxidask::task]` taking `&Partition` and returning
    /// a `Partition`) to every partition. `meta` is the schema it returns, checked on each
    /// partition it produces.
    pub fn map_partitions(&self, op: &'static OpDef, meta: pl::Schema) -> DataFrame {
        self.then(|n| {
            let mut t = Tokenizer::new();
            t.write_str("map-partitions");
            t.write_str(op.name());
            t.write_token(n.token);
            let mapped = Node::new(
                "map-partitions",
                t.finish(),
                Arc::new(meta.clone()),
                n.npartitions,
                Kind::MapPartitions {
                    input: n.clone(),
                    op,
                },
            );
            // Enforce the declared schema: a partition with other columns is an error that
            // names them, not a silent mismatch later.
            let check: Vec<Expr> = meta
                .iter()
                .map(|(c, d)| col(c.as_str()).strict_cast(d.clone()).alias(c.as_str()))
                .collect();
            mapped.with_ops("map-partitions", vec![FrameOp::Select(check)])
        })
    }

    /// Describes numeric columns: count, mean, std, min, quartiles, max — one row per
    /// statistic, as pandas. Quartiles are approximate over partitions (merged per-partition
    /// percentiles, as Dask's), exact for one partition.
    pub fn describe(&self) -> Result<pl::DataFrame, Error> {
        let numeric: Vec<String> = self
            .dtypes()
            .into_iter()
            .filter(|(_, d)| d.is_primitive_numeric())
            .map(|(c, _)| c)
            .collect();
        if numeric.is_empty() {
            return Err(
                FrameError::Invalid("describe: the frame has no numeric columns".into()).into(),
            );
        }
        let mut aggs = Vec::new();
        for c in &numeric {
            for f in [
                AggFn::Count,
                AggFn::Mean,
                AggFn::Std(1),
                AggFn::Min,
                AggFn::Max,
            ] {
                aggs.push(Agg::new(c.clone(), f).alias(format!("{c}\u{1}{}", f.name())));
            }
        }
        let s = self.agg(aggs).compute()?;
        let quartiles = crate::quantile::approx_quantiles(self, &numeric, &[0.25, 0.5, 0.75])?;
        let rows = ["count", "mean", "std", "min", "25%", "50%", "75%", "max"];
        let mut columns = vec![pl::Column::new(
            "statistic".into(),
            rows.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
        )];
        for (j, c) in numeric.iter().enumerate() {
            let get = |stat: &str| -> Option<f64> {
                s.column(&format!("{c}\u{1}{stat}"))
                    .ok()
                    .and_then(|col| col.cast(&DataType::Float64).ok())
                    .and_then(|col| col.f64().ok().and_then(|v| v.get(0)))
            };
            let values: Vec<Option<f64>> = vec![
                get("count"),
                get("mean"),
                get("std"),
                get("min"),
                quartiles[j][0],
                quartiles[j][1],
                quartiles[j][2],
                get("max"),
            ];
            columns.push(pl::Column::new(c.as_str().into(), values));
        }
        pl::DataFrame::new_infer_height(columns)
            .map_err(|e| FrameError::polars("describe", e).into())
    }

    /// Bytes of each column over all partitions (Polars' estimate of its buffers).
    pub fn memory_usage(&self) -> Result<pl::DataFrame, Error> {
        let node = self.node()?;
        // Closures cannot travel as plan data: compute per-partition sizes from the frames.
        let parts = self.partition_values()?;
        let mut totals = vec![0u64; node.schema.len()];
        for p in &parts {
            for (i, c) in p.columns().iter().enumerate() {
                totals[i] += c.as_materialized_series().estimated_size() as u64;
            }
        }
        pl::DataFrame::new_infer_height(vec![
            pl::Column::new("column".into(), self.columns()),
            pl::Column::new("bytes".into(), totals),
        ])
        .map_err(|e| FrameError::polars("memory_usage", e).into())
    }

    /// Computes and returns each partition as its own Polars frame.
    pub fn partition_values(&self) -> Result<Vec<pl::DataFrame>, Error> {
        let scheduler = oxidask_core::compute::current_scheduler()?;
        let values = scheduler.compute(self.graph(), &self.keys())?;
        values.into_iter().map(take_partition).collect()
    }

    /// Joins with `right` on key columns (Dask's `merge`), with Polars' result columns: keys
    /// coalesced, clashing right columns suffixed `_right`. A one-partition side is broadcast
    /// to every partition of the other when the join type allows; otherwise both sides are
    /// hash-shuffled on their keys and joined partition by partition.
    pub fn merge(
        &self,
        right: &DataFrame,
        left_on: &[&str],
        right_on: &[&str],
        how: crate::How,
    ) -> DataFrame {
        crate::shuffle::merge(self, right, left_on, right_on, how)
    }

    /// Joins with `other` on their indexes (Dask's `join`; both frames `set_index`'d). With
    /// equal divisions the partitions are joined pairwise, no shuffle, and when both indexes
    /// have one name the result keeps the index and its divisions; otherwise the rows are
    /// hash-shuffled on the index columns as in [`DataFrame::merge`] (or a small side is
    /// broadcast). Key columns coalesce and clashing right columns get `_right`, as in merge.
    ///
    /// ```no_run
    /// # use oxidask_dataframe as dd;
    /// # let (a, b) = (dd::read_parquet("a.parquet"), dd::read_parquet("b.parquet"));
    /// let joined = a.set_index("id", None).join(&b.set_index("id", None), dd::How::Left);
    /// ```
    pub fn join(&self, other: &DataFrame, how: crate::How) -> DataFrame {
        let go = || -> Result<Arc<Node>, FrameError> {
            let (l, r) = (self.node()?, other.node()?);
            let (Some((lc, lb)), Some((rc, rb))) = (&l.index, &r.index) else {
                return Err(FrameError::Invalid(
                    "join aligns rows on the frames' indexes, and a frame has none: call set_index(column) on both, or merge on key columns".into(),
                ));
            };
            // Both indexes with known numeric divisions that differ: each side is cut at the
            // union of the two sets of bounds (Dask's `align_partitions`), so partitions pair up
            // without a hash shuffle — sorted partitions only move rows near the cuts — and the
            // result keeps the index.
            let (left, right) = match (lb, rb) {
                (crate::plan::Bounds::Numbers(a), crate::plan::Bounds::Numbers(b))
                    if a != b && l.schema.get(lc) == r.schema.get(rc) =>
                {
                    let mut union: Vec<f64> = a.iter().chain(b).copied().collect();
                    union.sort_by(f64::total_cmp);
                    union.dedup();
                    let cut = |n: &Arc<Node>, column: &str| {
                        DataFrame::from_node(
                            crate::shuffle::shuffle_by_method(
                                n,
                                crate::shuffle::SplitBy::Range {
                                    column: column.to_owned(),
                                    bounds: union.clone(),
                                    descending: false,
                                },
                                union.len() + 1,
                                crate::ShuffleMethod::Tasks,
                            )
                            .with_index(column, crate::plan::Bounds::Numbers(union.clone())),
                        )
                    };
                    (cut(l, lc), cut(r, rc))
                }
                _ => (self.clone(), other.clone()),
            };
            let (lb, rb) = (
                &left.node()?.index.as_ref().expect("kept").1,
                &right.node()?.index.as_ref().expect("kept").1,
            );
            let merged = crate::shuffle::merge(&left, &right, &[lc.as_str()], &[rc.as_str()], how);
            let n = merged.node()?.clone();
            let aligned = matches!(
                &n.kind,
                crate::plan::Kind::Join {
                    mode: crate::shuffle::JoinMode::Aligned,
                    ..
                }
            );
            Ok(if aligned && lc == rc && lb == rb {
                n.with_index(lc, lb.clone())
            } else {
                n
            })
        };
        DataFrame::from_result(go())
    }

    /// Moves rows so that equal values of `on` share a partition: a hash shuffle into
    /// `npartitions` partitions.
    pub fn shuffle<S: AsRef<str>>(
        &self,
        on: impl IntoIterator<Item = S>,
        npartitions: usize,
    ) -> DataFrame {
        let on: Vec<String> = on.into_iter().map(|s| s.as_ref().to_owned()).collect();
        let names: Vec<&str> = on.iter().map(String::as_str).collect();
        if let Err(e) = self.known(&names) {
            return DataFrame::from_result(Err(e));
        }
        self.then(|n| Ok(crate::shuffle::shuffle(n, &on, npartitions.max(1))))
    }

    /// The same rows in `npartitions` partitions: neighbouring partitions concatenated when
    /// there are fewer, each partition cut into row ranges when there are more. Row order is
    /// kept.
    pub fn repartition(&self, npartitions: usize) -> DataFrame {
        self.then(|n| Ok(crate::plan::repartition(n, npartitions.max(1))))
    }

    /// Rows sorted by `by` (ascending, or all descending), nulls last: sampled quantiles of the
    /// first column choose the partition ranges (computed now, as Dask's `sort_values`), rows
    /// move to their range, each partition is sorted. Ties keep no particular order.
    pub fn sort_values(&self, by: &[&str], descending: bool) -> DataFrame {
        if let Err(e) = self.known(by) {
            return DataFrame::from_result(Err(e));
        }
        let by: Vec<String> = by.iter().map(|s| (*s).to_owned()).collect();
        let m = self.npartitions().max(1);
        match crate::shuffle::sort_values(self, &by, descending, m) {
            Ok((n, _)) => DataFrame::from_node(n),
            Err(e) => DataFrame::from_result(Err(FrameError::Invalid(e.to_string()))),
        }
    }

    /// Sorts by `column` and makes it the index (Dask's `set_index`): the column moves first,
    /// partitions hold consecutive ranges of it, and [`DataFrame::divisions`] gives the
    /// boundaries — computed from sampled quantiles, or `divisions` when given.
    pub fn set_index(&self, column: &str, divisions: Option<Vec<f64>>) -> DataFrame {
        if let Err(e) = self.known(&[column]) {
            return DataFrame::from_result(Err(e));
        }
        let by = vec![column.to_owned()];
        let reordered = {
            let mut cols = vec![col(column)];
            cols.extend(
                self.columns()
                    .iter()
                    .filter(|c| *c != column)
                    .map(|c| col(c.as_str())),
            );
            self.select(cols)
        };
        let result = match divisions {
            Some(bounds) => reordered.node().map_err(Error::from).and_then(|n| {
                let interior: Vec<f64> = bounds
                    .iter()
                    .skip(1)
                    .take(bounds.len().saturating_sub(2))
                    .copied()
                    .collect();
                let moved = crate::shuffle::shuffle_by(
                    n,
                    crate::shuffle::SplitBy::Range {
                        column: column.to_owned(),
                        bounds: interior.clone(),
                        descending: false,
                    },
                    interior.len() + 1,
                );
                let sorted = moved
                    .with_ops(
                        "set-index",
                        vec![FrameOp::Sort {
                            by: by.clone(),
                            descending: vec![false],
                            nulls_last: true,
                        }],
                    )
                    .map_err(Error::from)?;
                Ok((sorted, crate::plan::Bounds::Numbers(interior)))
            }),
            None => crate::shuffle::sort_values(&reordered, &by, false, self.npartitions().max(1)),
        };
        match result {
            Ok((n, bounds)) => DataFrame::from_node(n.with_index(column, bounds)),
            Err(e) => DataFrame::from_result(Err(FrameError::Invalid(e.to_string()))),
        }
    }

    /// The index column set by [`DataFrame::set_index`], if any.
    pub fn index(&self) -> Option<String> {
        self.inner
            .as_ref()
            .ok()
            .and_then(|n| n.index.as_ref().map(|i| i.0.clone()))
    }

    /// The partition boundaries along the index, as the index column's physical values
    /// (timestamps for datetimes): `npartitions - 1` interior bounds, partition `j` holding
    /// `[bounds[j-1], bounds[j])`. `None` when unknown (no `set_index`).
    pub fn divisions(&self) -> Option<Vec<f64>> {
        self.inner
            .as_ref()
            .ok()
            .and_then(|n| match n.index.as_ref() {
                Some((_, crate::plan::Bounds::Numbers(b))) => Some(b.clone()),
                _ => None,
            })
    }

    /// The partition boundaries along a string index ([`DataFrame::set_index`] on a string
    /// column): `npartitions - 1` interior bounds, partition `j` holding
    /// `[bounds[j-1], bounds[j])` in byte-wise order. `None` for other indexes.
    pub fn string_divisions(&self) -> Option<Vec<String>> {
        self.inner
            .as_ref()
            .ok()
            .and_then(|n| match n.index.as_ref() {
                Some((_, crate::plan::Bounds::Strings(b))) => Some(b.clone()),
                _ => None,
            })
    }

    /// The same rows in partitions of about `bytes` each (Dask's `partition_size`): sizes are
    /// measured now (a pass over the data); big partitions are cut into row ranges, small
    /// neighbours concatenated. Row order is kept.
    pub fn repartition_by_size(&self, bytes: u64) -> Result<DataFrame, Error> {
        let node = self.node()?;
        let bytes = bytes.max(1);
        let layer = node.layer();
        let mut graph = Graph::new();
        add_layer(&mut graph, &layer);
        let mut t = Tokenizer::new();
        t.write_str("partition-bytes");
        t.write_token(node.token);
        let token = t.finish();
        let keys: Vec<Key> = layer
            .outputs
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let out = Key::block("partition-bytes", token, &[i as u32]);
                graph.insert(
                    out,
                    oxidask_core::Task::call(crate::ops::partition_bytes::op(), [Arg::Key(*k)]),
                );
                out
            })
            .collect();
        let sizes: Vec<u64> = oxidask_core::compute::current_scheduler()?
            .compute(graph, &keys)?
            .into_iter()
            .map(|v| {
                v.take::<u64>()
                    .map_err(|e| Error::Collection(e.to_string().into()))
            })
            .collect::<Result<_, _>>()?;
        // Cut each partition into pieces of at most `bytes`, then pack consecutive pieces.
        let cuts: Vec<u64> = sizes.iter().map(|s| s.div_ceil(bytes).max(1)).collect();
        let mut groups = Vec::new();
        let (mut count, mut filled) = (0usize, 0u64);
        for (s, c) in sizes.iter().zip(&cuts) {
            let piece = s / c;
            for _ in 0..*c {
                if count > 0 && filled + piece > bytes {
                    groups.push(count);
                    count = 0;
                    filled = 0;
                }
                count += 1;
                filled += piece;
            }
        }
        if count > 0 || groups.is_empty() && !sizes.is_empty() {
            groups.push(count);
        }
        let mut t = Tokenizer::new();
        t.write_str("repartition-size");
        t.write_token(node.token);
        t.write_u64(bytes);
        Ok(DataFrame::from_node(Node::new(
            "repartition-size",
            t.finish(),
            node.schema.clone(),
            groups.len(),
            Kind::Resize {
                input: node.clone(),
                cuts,
                groups,
            },
        )))
    }

    /// The same rows split at new `divisions` of the index (Dask's `repartition(divisions=)`):
    /// `divisions` are the outer and inner bounds (first ≤ every index value < last, as
    /// `set_index` takes them). Needs known divisions ([`DataFrame::set_index`]).
    pub fn repartition_divisions(&self, divisions: Vec<f64>) -> DataFrame {
        self.then(|n| {
            let Some((column, crate::plan::Bounds::Numbers(_))) = &n.index else {
                return Err(FrameError::Invalid(
                    "repartition by divisions needs known numeric divisions: call set_index on a numeric or datetime column first".into(),
                ));
            };
            if divisions.len() < 2 || divisions.windows(2).any(|w| w[0] > w[1]) {
                return Err(FrameError::Invalid(format!(
                    "divisions must be at least two increasing bounds, got {divisions:?}"
                )));
            }
            let interior: Vec<f64> = divisions[1..divisions.len() - 1].to_vec();
            // Old partitions hold consecutive sorted ranges, so concatenating each range's
            // pieces in partition order keeps the rows sorted.
            let moved = crate::shuffle::shuffle_by(
                n,
                crate::shuffle::SplitBy::Range {
                    column: column.clone(),
                    bounds: interior.clone(),
                    descending: false,
                },
                interior.len() + 1,
            );
            Ok(moved.with_index(column, crate::plan::Bounds::Numbers(interior)))
        })
    }

    /// Appends the partitions of `others` after this frame's (Dask's `concat` along rows).
    /// Columns are matched by name; a column missing from one frame is an error naming it.
    pub fn concat(frames: &[DataFrame]) -> DataFrame {
        crate::plan::concat(frames)
    }
}

pub(crate) fn take_partition(v: Value) -> Result<pl::DataFrame, Error> {
    v.take::<Partition>()
        .map(Partition::into_inner)
        .map_err(|e| Error::Collection(e.to_string().into()))
}

impl Collection for DataFrame {
    type Output = pl::DataFrame;
    type Persisted = DataFrame;

    fn keys(&self) -> Vec<Key> {
        match &self.inner {
            Ok(n) => n.optimized_layer().outputs.clone(),
            Err(_) => Vec::new(),
        }
    }

    fn build_graph(&self, graph: &mut Graph) {
        if let Ok(n) = &self.inner {
            add_layer(graph, &n.optimized_layer());
        }
    }

    fn finalize(&self, values: Vec<Value>) -> Result<pl::DataFrame, Error> {
        let node = self.node()?;
        let mut out: Option<pl::DataFrame> = None;
        for v in values {
            let df = take_partition(v)?;
            match &mut out {
                None => out = Some(df),
                Some(o) => {
                    o.vstack_mut_owned(df)
                        .map_err(|e| FrameError::polars("concatenating partitions", e))?;
                }
            }
        }
        let mut out = out.unwrap_or_else(|| pl::DataFrame::empty_with_schema(&node.schema));
        out.rechunk_mut();
        Ok(out)
    }

    fn rebuild(&self, values: Vec<Value>) -> DataFrame {
        self.over_computed(values.into_iter().map(Arg::Value).collect())
    }
}

impl DataFrame {
    /// This frame over its partitions already computed (what [`Collection::persist`]
    /// returns): `parts` are the results in partition order, as values or as keys held on a
    /// cluster. The schema, the index and its divisions stay (Dask's `persist` keeps them),
    /// so a persisted `set_index` frame still joins and selects by its index without a shuffle.
    pub fn over_computed(&self, parts: Vec<Arg>) -> DataFrame {
        let Ok(node) = &self.inner else {
            return self.clone();
        };
        if parts.len() != node.npartitions {
            return DataFrame::from_result(Err(FrameError::Invalid(format!(
                "{} computed partitions given for a frame of {}",
                parts.len(),
                node.npartitions
            ))));
        }
        let mut t = Tokenizer::new();
        t.write_str("persisted");
        t.write_token(node.token);
        for p in &parts {
            if let Arg::Key(k) = p {
                t.write_str(&k.to_string());
            }
        }
        let out = Node::new(
            "persisted",
            t.finish(),
            node.schema.clone(),
            parts.len(),
            Kind::Parts {
                parts: Arc::new(parts),
                deps: Vec::new(),
                ops: Vec::new(),
            },
        );
        DataFrame::from_node(match &node.index {
            Some((c, b)) => out.with_index(c, b.clone()),
            None => out,
        })
    }
}

impl fmt::Display for DataFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Err(e) => write!(f, "oxidask DataFrame (invalid: {e})"),
            Ok(n) => {
                writeln!(
                    f,
                    "oxidask DataFrame Structure (npartitions={}):",
                    n.npartitions
                )?;
                let width = n
                    .schema
                    .iter_names()
                    .map(|c| c.len())
                    .max()
                    .unwrap_or(0)
                    .max(6);
                for (c, d) in n.schema.iter() {
                    writeln!(f, "  {c:<width$}  {d}")?;
                }
                write!(f, "oxidask name: {}-{}", n.name, short(n.token))
            }
        }
    }
}

impl fmt::Debug for DataFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A frame built from a Polars frame, cut into `npartitions` row ranges of near-equal size.
pub fn from_polars(df: pl::DataFrame, npartitions: usize) -> DataFrame {
    let n = npartitions.max(1);
    let rows = df.height();
    let mut t = Tokenizer::new();
    t.write_str("from-polars");
    t.write_data(&Partition(df.clone()));
    t.write_u64(n as u64);
    let schema = df.schema().clone();
    let parts: Vec<Arg> = (0..n)
        .map(|i| {
            let (a, b) = (i * rows / n, (i + 1) * rows / n);
            Arg::Value(Value::new(Partition(df.slice(a as i64, b - a))))
        })
        .collect();
    DataFrame::from_node(Node::new(
        "from-polars",
        t.finish(),
        schema,
        n,
        Kind::Parts {
            parts: Arc::new(parts),
            deps: Vec::new(),
            ops: Vec::new(),
        },
    ))
}

/// A frame whose partitions are the results of delayed computations returning
/// [`Partition`]s, all with `schema` (checked on each: a partition with other columns or
/// types is an error naming them).
pub fn from_delayed(parts: Vec<oxidask_core::Delayed<Partition>>, schema: pl::Schema) -> DataFrame {
    let mut t = Tokenizer::new();
    t.write_str("from-delayed");
    let mut graph = Graph::new();
    for p in &parts {
        t.write_token(p.key().token());
        t.write_str(p.key().prefix_str());
        Collection::build_graph(p, &mut graph);
    }
    let tasks: Vec<(Key, oxidask_core::Task)> =
        graph.iter().map(|(k, t)| (*k, t.clone())).collect();
    let dep = Arc::new(crate::plan::Layer {
        tasks,
        outputs: Vec::new(),
        deps: Vec::new(),
    });
    let args: Vec<Arg> = parts.iter().map(|p| Arg::Key(p.key())).collect();
    let check: Vec<Expr> = schema
        .iter()
        .map(|(c, d)| col(c.as_str()).strict_cast(d.clone()).alias(c.as_str()))
        .collect();
    DataFrame::from_node(Node::new(
        "from-delayed",
        t.finish(),
        Arc::new(schema),
        args.len(),
        Kind::Parts {
            parts: Arc::new(args),
            deps: vec![dep],
            ops: vec![FrameOp::Select(check)],
        },
    ))
}

/// A null literal of a type, for expressions.
pub fn null_of(dtype: DataType) -> Expr {
    lit(NULL).cast(dtype)
}

/// A short hex form of a token, for names.
pub(crate) fn short(t: oxidask_core::Token) -> String {
    format!("{t}")[..12].to_owned()
}
