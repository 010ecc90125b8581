//! Aggregations as three steps of Polars expressions — chunk (per partition), combine (over
//! concatenated partials), finalize — so they run as tree reductions without a shuffle.
//!
//! Partials are plain columns (`sum`, `count`, `mean` and `m2` for the variance, merged with
//! Chan's formula; a list of distinct values for `nunique`), and the final dtypes are the
//! ones Polars gives the same aggregation on one machine.

use polars::prelude::*;

use crate::error::FrameError;
use crate::plan::{output_schema, FrameOp};

/// An aggregation function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggFn {
    /// Sum of non-null values.
    Sum,
    /// Mean of non-null values.
    Mean,
    /// Count of non-null values.
    Count,
    /// Rows, nulls included.
    Size,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// Standard deviation with `ddof` delta degrees of freedom.
    Std(u8),
    /// Variance with `ddof` delta degrees of freedom.
    Var(u8),
    /// Distinct non-null values (Dask's `nunique`, which drops nulls).
    NUnique,
    /// The first value.
    First,
    /// The last value.
    Last,
}

impl AggFn {
    /// The name used for result columns (`total_amount_mean`).
    pub fn name(self) -> &'static str {
        match self {
            AggFn::Sum => "sum",
            AggFn::Mean => "mean",
            AggFn::Count => "count",
            AggFn::Size => "size",
            AggFn::Min => "min",
            AggFn::Max => "max",
            AggFn::Std(_) => "std",
            AggFn::Var(_) => "var",
            AggFn::NUnique => "nunique",
            AggFn::First => "first",
            AggFn::Last => "last",
        }
    }

    /// The single-machine Polars expression this aggregation equals (the oracle, and the
    /// source of the result's dtype).
    pub fn expr(self, c: &str) -> Expr {
        let x = col(c);
        match self {
            AggFn::Sum => x.sum(),
            AggFn::Mean => x.mean(),
            AggFn::Count => x.count(),
            AggFn::Size => x.len(),
            AggFn::Min => x.min(),
            AggFn::Max => x.max(),
            AggFn::Std(d) => x.std(d),
            AggFn::Var(d) => x.var(d),
            AggFn::NUnique => x.drop_nulls().n_unique(),
            AggFn::First => x.first(),
            AggFn::Last => x.last(),
        }
    }
}

/// One aggregation: a function of a column, named in the result.
#[derive(Clone, Debug, PartialEq)]
pub struct Agg {
    /// The input column.
    pub column: String,
    /// The function.
    pub func: AggFn,
    /// The output column's name.
    pub alias: String,
}

impl Agg {
    /// `func` of `column`, named `column` in the result (as pandas names single aggregations);
    /// several aggregations of one column in one call are named `{column}_{function}`
    /// (`x_mean`, `x_std`) unless aliased.
    pub fn new(column: impl Into<String>, func: AggFn) -> Agg {
        let column = column.into();
        Agg {
            alias: column.clone(),
            column,
            func,
        }
    }

    /// Renames the result column.
    pub fn alias(mut self, name: impl Into<String>) -> Agg {
        self.alias = name.into();
        self
    }
}

macro_rules! agg_ctor {
    ($($name:ident => $f:expr, $doc:literal;)*) => {$(
        #[doc = $doc]
        pub fn $name(column: impl Into<String>) -> Agg {
            Agg::new(column, $f)
        }
    )*};
}

agg_ctor! {
    sum => AggFn::Sum, "Sum of a column.";
    mean => AggFn::Mean, "Mean of a column.";
    count => AggFn::Count, "Non-null values of a column.";
    size => AggFn::Size, "Rows (nulls included).";
    min => AggFn::Min, "Smallest value of a column.";
    max => AggFn::Max, "Largest value of a column.";
    nunique => AggFn::NUnique, "Distinct non-null values of a column.";
    first => AggFn::First, "First value of a column.";
    last => AggFn::Last, "Last value of a column.";
}

/// Standard deviation of a column (`ddof` = 1 as pandas and Dask).
pub fn std(column: impl Into<String>) -> Agg {
    Agg::new(column, AggFn::Std(1))
}

/// Variance of a column (`ddof` = 1 as pandas and Dask).
pub fn var(column: impl Into<String>) -> Agg {
    Agg::new(column, AggFn::Var(1))
}

/// Result names: an aggregation keeps its column's name (as pandas names one aggregation per
/// column), but when several aggregations of one call take the same column under that default
/// name, each is named `{column}_{function}` (`total_amount_mean`, `total_amount_std`) — the
/// name the Python layer's `reset_index` gives Dask's `(column, function)` column labels.
/// An explicit [`Agg::alias`] other than the column's name is kept as it is.
pub(crate) fn default_names(aggs: &[Agg]) -> Vec<Agg> {
    aggs.iter()
        .map(|a| {
            let shared = a.alias == a.column
                && aggs
                    .iter()
                    .filter(|b| b.column == a.column && b.alias == b.column)
                    .count()
                    > 1;
            if shared {
                a.clone().alias(format!("{}_{}", a.column, a.func.name()))
            } else {
                a.clone()
            }
        })
        .collect()
}

/// The three steps of a set of aggregations grouped by `keys`.
pub(crate) struct AggPlan {
    pub chunk: Vec<FrameOp>,
    pub combine: Vec<FrameOp>,
    pub finalize: Vec<FrameOp>,
    pub schema: SchemaRef,
}

fn f64c(name: &str) -> Expr {
    col(name).cast(DataType::Float64)
}

fn group(keys: &[String], aggs: Vec<Expr>) -> FrameOp {
    FrameOp::GroupAgg {
        keys: keys.iter().map(|k| col(k.as_str())).collect(),
        aggs,
    }
}

/// Plans `aggs` grouped by `keys` (none: the whole frame to one row) over frames of `schema`.
/// The result is sorted by the keys, as Dask's `groupby(sort=True)`.
pub(crate) fn plan(schema: &Schema, keys: &[String], aggs: &[Agg]) -> Result<AggPlan, FrameError> {
    let aggs = &default_names(aggs);
    let mut seen: Vec<&str> = keys.iter().map(String::as_str).collect();
    for a in aggs {
        if seen.contains(&a.alias.as_str()) {
            return Err(FrameError::Invalid(format!(
                "two result columns are named `{}` (a key, or another aggregation); give one of the aggregations another name with .alias(..)",
                a.alias
            )));
        }
        seen.push(a.alias.as_str());
    }
    for c in keys.iter().chain(aggs.iter().map(|a| &a.column)) {
        if schema.get(c.as_str()).is_none() {
            return Err(FrameError::UnknownColumn {
                column: c.clone(),
                available: schema.iter_names().map(|n| n.to_string()).collect(),
            });
        }
    }
    for a in aggs {
        let d = schema.get(a.column.as_str()).expect("checked above");
        let numeric = d.is_primitive_numeric() || d.is_bool();
        if matches!(
            a.func,
            AggFn::Sum | AggFn::Mean | AggFn::Std(_) | AggFn::Var(_)
        ) && !numeric
        {
            return Err(FrameError::Invalid(format!(
                "{} of column `{}` ({d}) is not supported: it needs numbers; select numeric columns or cast",
                a.func.name(),
                a.column
            )));
        }
    }
    // The single-machine result's schema: what the finalize step casts to.
    let oracle = group(
        keys,
        aggs.iter()
            .map(|a| a.func.expr(&a.column).alias(a.alias.as_str()))
            .collect(),
    );
    let target = output_schema(schema, std::slice::from_ref(&oracle))
        .map_err(|e| FrameError::polars("aggregation", e))?;

    let mut chunk = Vec::new();
    let mut combine = Vec::new();
    let mut finalize: Vec<Expr> = keys.iter().map(|k| col(k.as_str())).collect();
    let ctx_list = !keys.is_empty();
    for (i, a) in aggs.iter().enumerate() {
        let c = a.column.as_str();
        let p = |s: &str| format!("__{i}_{s}");
        let (n, s, m, m2, v) = (p("n"), p("s"), p("m"), p("m2"), p("v"));
        let out = match a.func {
            AggFn::Sum | AggFn::Count | AggFn::Size => {
                chunk.push(a.func.expr(c).alias(v.as_str()));
                combine.push(col(v.as_str()).sum().alias(v.as_str()));
                col(v.as_str())
            }
            AggFn::Min | AggFn::Max => {
                chunk.push(a.func.expr(c).alias(v.as_str()));
                let x = col(v.as_str());
                let merged = if a.func == AggFn::Min {
                    x.min()
                } else {
                    x.max()
                };
                combine.push(merged.alias(v.as_str()));
                col(v.as_str())
            }
            AggFn::First | AggFn::Last => {
                chunk.push(a.func.expr(c).alias(v.as_str()));
                // Without keys an empty partition still yields a (null) partial row: skip
                // partials of no rows, or the first row of the frame would read as null.
                let x = if ctx_list {
                    col(v.as_str())
                } else {
                    chunk.push(len().alias(n.as_str()));
                    combine.push(col(n.as_str()).sum().alias(n.as_str()));
                    col(v.as_str()).filter(col(n.as_str()).gt(lit(0)))
                };
                let merged = if a.func == AggFn::First {
                    x.first()
                } else {
                    x.last()
                };
                combine.push(merged.alias(v.as_str()));
                col(v.as_str())
            }
            AggFn::Mean => {
                chunk.push(f64c(c).sum().alias(s.as_str()));
                chunk.push(col(c).count().alias(n.as_str()));
                combine.push(col(s.as_str()).sum().alias(s.as_str()));
                combine.push(col(n.as_str()).sum().alias(n.as_str()));
                when(col(n.as_str()).gt(lit(0)))
                    .then(col(s.as_str()) / f64c(&n))
                    .otherwise(lit(NULL).cast(DataType::Float64))
            }
            AggFn::Std(ddof) | AggFn::Var(ddof) => {
                chunk.push(col(c).count().alias(n.as_str()));
                chunk.push(f64c(c).mean().alias(m.as_str()));
                chunk.push((f64c(c) - f64c(c).mean()).pow(2).sum().alias(m2.as_str()));
                // Chan et al.: merge counts, means and squared deviations.
                let total = f64c(&n).sum();
                // Partials with no values have a null mean; a group with none at all stays null.
                let mean_all = when(total.clone().gt(lit(0.0)))
                    .then((f64c(&n) * col(m.as_str())).sum() / total.clone())
                    .otherwise(lit(NULL).cast(DataType::Float64));
                combine.push(col(n.as_str()).sum().alias(n.as_str()));
                combine.push(mean_all.clone().alias(m.as_str()));
                combine.push(
                    (col(m2.as_str()) + f64c(&n) * (col(m.as_str()) - mean_all).pow(2))
                        .sum()
                        .alias(m2.as_str()),
                );
                let var = when(f64c(&n).gt(lit(ddof as f64)))
                    .then(col(m2.as_str()) / (f64c(&n) - lit(ddof as f64)))
                    .otherwise(lit(NULL).cast(DataType::Float64));
                if matches!(a.func, AggFn::Std(_)) {
                    var.sqrt()
                } else {
                    var
                }
            }
            AggFn::NUnique => {
                let distinct = col(c).drop_nulls().unique();
                let opts = ExplodeOptions {
                    empty_as_null: false,
                    keep_nulls: false,
                };
                if ctx_list {
                    chunk.push(distinct.alias(v.as_str()));
                    combine.push(col(v.as_str()).explode(opts).unique().alias(v.as_str()));
                } else {
                    chunk.push(distinct.implode(false).alias(v.as_str()));
                    combine.push(
                        col(v.as_str())
                            .explode(opts)
                            .unique()
                            .implode(false)
                            .alias(v.as_str()),
                    );
                }
                col(v.as_str()).list().len()
            }
        };
        let dtype = target
            .get(a.alias.as_str())
            .cloned()
            .unwrap_or(DataType::Float64);
        finalize.push(out.cast(dtype).alias(a.alias.as_str()));
    }
    let mut fin = vec![FrameOp::Select(finalize)];
    if !keys.is_empty() {
        fin.push(FrameOp::Sort {
            by: keys.to_vec(),
            descending: vec![false; keys.len()],
            // As Polars' `sort`: a null key's group comes first.
            nulls_last: false,
        });
    }
    Ok(AggPlan {
        chunk: vec![group(keys, chunk)],
        combine: vec![group(keys, combine)],
        finalize: fin,
        schema: target,
    })
}
