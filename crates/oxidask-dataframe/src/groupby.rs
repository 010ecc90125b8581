//! [`GroupBy`]: aggregations per group by tree reduction (Dask's `split_out=1` path), or by
//! shuffle when the result is spread over several partitions (`split_out`, chosen
//! automatically when the key columns' statistics promise many groups).

use crate::agg::{Agg, AggFn};
use crate::configured_split_every;
use crate::frame::DataFrame;

/// Rows of a frame grouped by key columns, ready to aggregate (`df.groupby(["k"])`).
///
/// Each partition is aggregated where it is (fused into its read), partials are merged
/// `split_every` at a time, and the result — one row per group, sorted by the keys, as Dask's
/// default `sort=True` — is one partition. Unless `split_out` is given, it is chosen
/// automatically: when the frame is a Parquet read whose integer key columns' footer
/// statistics promise at least [`AUTO_SPLIT_OUT_GROUPS`] groups (the product of the keys'
/// value ranges, at most the row count), Dask's rule ([`GroupBy::split_out_auto`]) spreads
/// the result; otherwise one partition.
#[derive(Clone)]
pub struct GroupBy {
    frame: DataFrame,
    keys: Vec<String>,
    split_every: usize,
    /// `None`: chosen when aggregating (see the type's documentation).
    split_out: Option<usize>,
}

/// The estimated group count from which `split_out` is chosen automatically (one million:
/// a tree reduction's last task would hold every group).
pub const AUTO_SPLIT_OUT_GROUPS: u64 = 1_000_000;

impl GroupBy {
    pub(crate) fn new(frame: DataFrame, keys: Vec<String>) -> GroupBy {
        GroupBy {
            frame,
            keys,
            split_every: configured_split_every(),
            split_out: None,
        }
    }

    /// Merges partials this many at a time (default 8).
    pub fn split_every(mut self, n: usize) -> GroupBy {
        self.split_every = n.max(2);
        self
    }

    /// Spreads the result over `n` partitions (Dask's `split_out`), for many groups: partials
    /// are hash-shuffled by key instead of merged in a tree, so no single task holds every
    /// group. Each output partition is sorted by the keys; the partitions are not ordered.
    pub fn split_out(mut self, n: usize) -> GroupBy {
        self.split_out = Some(n.max(1));
        self
    }

    /// Dask's automatic `split_out` count (see [`GroupBy::split_out_auto`]).
    fn dask_split_out(&self) -> usize {
        let n = self.frame.npartitions() as f64;
        let k = self.keys.len().max(1) as f64;
        let m = if k <= 1.0 {
            (n / 15.0).ceil()
        } else {
            (n / (10.0 / (k - 1.0))).ceil()
        };
        m.max(1.0) as usize
    }

    /// The `split_out` used: the one given, else Dask's rule when the keys' statistics
    /// promise many groups, else 1.
    fn chosen_split_out(&self) -> usize {
        if let Some(n) = self.split_out {
            return n;
        }
        let many = self
            .frame
            .node()
            .ok()
            .and_then(|n| crate::prune::estimated_groups(n, &self.keys));
        match many {
            Some(g) if g >= AUTO_SPLIT_OUT_GROUPS => self.dask_split_out(),
            _ => 1,
        }
    }

    /// Chooses `split_out` from the partition count as Dask does when it lowers a groupby
    /// aggregation: one output partition per 15 input partitions for one key, per
    /// `10 / (keys - 1)` for several (so many partitions, likely many groups, spread the
    /// result). With few partitions this stays 1: one sorted partition.
    pub fn split_out_auto(self) -> GroupBy {
        let m = self.dask_split_out();
        self.split_out(m)
    }

    /// The number of output partitions aggregations will have.
    pub fn output_partitions(&self) -> usize {
        if self.keys.is_empty() {
            1
        } else {
            self.chosen_split_out()
        }
    }

    /// Several aggregations at once: `[agg::mean("fare"), agg::max("fare").alias("top")]`.
    /// All of them run as one Polars group-by per partition and one per combine step.
    /// Result columns keep the column's name, except that several aggregations of one column
    /// are named `{column}_{function}` (`[agg::mean("x"), agg::std("x")]` gives `x_mean`,
    /// `x_std`) unless aliased.
    pub fn agg(&self, aggs: impl IntoIterator<Item = Agg>) -> DataFrame {
        let aggs: Vec<Agg> = aggs.into_iter().collect();
        let split_out = if self.keys.is_empty() {
            1
        } else {
            self.chosen_split_out()
        };
        if split_out > 1 {
            return self.frame.shuffle_aggregate(&self.keys, &aggs, split_out);
        }
        self.frame
            .reduce("groupby-agg", &self.keys, &aggs, self.split_every)
    }

    fn one(&self, column: &str, f: AggFn) -> DataFrame {
        self.agg([Agg::new(column, f)])
    }

    /// Sum of `column` per group.
    pub fn sum(&self, column: &str) -> DataFrame {
        self.one(column, AggFn::Sum)
    }

    /// Mean of `column` per group.
    pub fn mean(&self, column: &str) -> DataFrame {
        self.one(column, AggFn::Mean)
    }

    /// Non-null values of `column` per group.
    pub fn count(&self, column: &str) -> DataFrame {
        self.one(column, AggFn::Count)
    }

    /// Smallest value of `column` per group.
    pub fn min(&self, column: &str) -> DataFrame {
        self.one(column, AggFn::Min)
    }

    /// Largest value of `column` per group.
    pub fn max(&self, column: &str) -> DataFrame {
        self.one(column, AggFn::Max)
    }

    /// Standard deviation (ddof 1) of `column` per group.
    pub fn std(&self, column: &str) -> DataFrame {
        self.one(column, AggFn::Std(1))
    }

    /// Variance (ddof 1) of `column` per group.
    pub fn var(&self, column: &str) -> DataFrame {
        self.one(column, AggFn::Var(1))
    }

    /// Distinct non-null values of `column` per group.
    pub fn nunique(&self, column: &str) -> DataFrame {
        self.one(column, AggFn::NUnique)
    }

    /// First value of `column` per group.
    pub fn first(&self, column: &str) -> DataFrame {
        self.one(column, AggFn::First)
    }

    /// Last value of `column` per group.
    pub fn last(&self, column: &str) -> DataFrame {
        self.one(column, AggFn::Last)
    }

    /// Rows per group, in a column named `size`.
    pub fn size(&self) -> DataFrame {
        let Some(k) = self.keys.first() else {
            return self.frame.agg([]);
        };
        self.agg([Agg::new(k.clone(), AggFn::Size).alias("size")])
    }
}
