//! [`Series`]: one column of a dataframe, as an expression over it; [`Scalar`]: a lazy
//! aggregate of a series.

use std::fmt;
use std::ops::{Add, BitAnd, BitOr, Div, Mul, Not, Rem, Sub};

use oxidask_core::{Collection, Error, Graph, Key, Value};
use polars::prelude::{self as pl, col, lit, DataType, Expr, PlSmallStr};

use crate::agg::{Agg, AggFn};
use crate::configured_split_every;
use crate::error::FrameError;
use crate::frame::{take_partition, DataFrame};
use crate::plan::FrameOp;

/// A lazy column: an expression over a [`DataFrame`] (Dask's `Series`). Series of the same
/// frame combine elementwise (`&a + &b`, `a.gt(10)`), filter their frame, or become columns of
/// it with [`DataFrame::assign`].
#[derive(Clone)]
pub struct Series {
    frame: DataFrame,
    expr: Expr,
    name: PlSmallStr,
}

/// The other side of an elementwise operation: a series of the same frame, an expression or a
/// literal.
pub enum Operand {
    /// A series; it must come from the same frame.
    Series(Series),
    /// An expression over the frame's columns (or a literal).
    Expr(Expr),
}

impl Operand {
    pub(crate) fn expr_over(self, frame: &DataFrame) -> Result<Expr, FrameError> {
        match self {
            Operand::Expr(e) => Ok(e),
            Operand::Series(s) => s.expr_over(frame),
        }
    }
}

impl From<Series> for Operand {
    fn from(s: Series) -> Self {
        Operand::Series(s)
    }
}

impl From<&Series> for Operand {
    fn from(s: &Series) -> Self {
        Operand::Series(s.clone())
    }
}

impl From<Expr> for Operand {
    fn from(e: Expr) -> Self {
        Operand::Expr(e)
    }
}

macro_rules! literal_operand {
    ($($t:ty),*) => {$(
        impl From<$t> for Operand {
            fn from(v: $t) -> Self {
                Operand::Expr(lit(v))
            }
        }
    )*};
}
literal_operand!(i32, i64, u32, u64, f32, f64, bool, &str, String);

impl Series {
    pub(crate) fn of(frame: DataFrame, expr: Expr, name: &str) -> Series {
        Series {
            frame,
            expr,
            name: name.into(),
        }
    }

    pub(crate) fn invalid(e: FrameError) -> Series {
        Series {
            frame: DataFrame::from_result(Err(e)),
            expr: lit(pl::NULL),
            name: "".into(),
        }
    }

    /// The expression of this series over `frame`, if it is this series' frame.
    pub(crate) fn expr_over(&self, frame: &DataFrame) -> Result<Expr, FrameError> {
        self.frame.node()?;
        if self.frame.same_as(frame) {
            Ok(self.expr.clone())
        } else {
            Err(FrameError::Invalid(format!(
                "series `{}` comes from another frame; series combine only with series of the frame they come from (rows have no index to align on)",
                self.name
            )))
        }
    }

    fn with(&self, other: Operand, f: impl FnOnce(Expr, Expr) -> Expr) -> Series {
        match other.expr_over(&self.frame) {
            Ok(o) => Series::of(self.frame.clone(), f(self.expr.clone(), o), &self.name),
            Err(e) => Series::invalid(e),
        }
    }

    /// A new series from this one's expression (for any Polars expression method:
    /// `s.map_expr(|e| e.dt().hour())`).
    pub fn map_expr(&self, f: impl FnOnce(Expr) -> Expr) -> Series {
        Series::of(self.frame.clone(), f(self.expr.clone()), &self.name)
    }

    /// The series' name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Renames the series.
    pub fn alias(&self, name: &str) -> Series {
        Series::of(self.frame.clone(), self.expr.clone(), name)
    }

    /// The frame this series is a column of.
    pub fn frame(&self) -> &DataFrame {
        &self.frame
    }

    /// The series as a one-column frame.
    pub fn to_frame(&self) -> DataFrame {
        self.frame
            .select([self.expr.clone().alias(self.name.clone())])
    }

    /// The element type (an invalid series reports its error).
    pub fn dtype(&self) -> Result<DataType, Error> {
        let f = self.to_frame();
        f.check()?;
        Ok(f.schema()
            .get_at_index(0)
            .map(|(_, d)| d.clone())
            .unwrap_or(DataType::Null))
    }

    /// `self > other`.
    pub fn gt(&self, other: impl Into<Operand>) -> Series {
        self.with(other.into(), |a, b| a.gt(b))
    }

    /// `self >= other`.
    pub fn ge(&self, other: impl Into<Operand>) -> Series {
        self.with(other.into(), |a, b| a.gt_eq(b))
    }

    /// `self < other`.
    pub fn lt(&self, other: impl Into<Operand>) -> Series {
        self.with(other.into(), |a, b| a.lt(b))
    }

    /// `self <= other`.
    pub fn le(&self, other: impl Into<Operand>) -> Series {
        self.with(other.into(), |a, b| a.lt_eq(b))
    }

    /// `self == other`.
    pub fn eq(&self, other: impl Into<Operand>) -> Series {
        self.with(other.into(), |a, b| a.eq(b))
    }

    /// `self != other`.
    pub fn ne(&self, other: impl Into<Operand>) -> Series {
        self.with(other.into(), |a, b| a.neq(b))
    }

    /// `lower <= self <= upper` (both ends included, as pandas' default).
    pub fn between(&self, lower: impl Into<Operand>, upper: impl Into<Operand>) -> Series {
        let (lo, hi) = match (
            lower.into().expr_over(&self.frame),
            upper.into().expr_over(&self.frame),
        ) {
            (Ok(l), Ok(h)) => (l, h),
            (Err(e), _) | (_, Err(e)) => return Series::invalid(e),
        };
        self.map_expr(|e| e.clone().gt_eq(lo).and(e.lt_eq(hi)))
    }

    /// Whether each value is one of `values`.
    pub fn is_in(&self, values: pl::Series) -> Series {
        self.map_expr(|e| e.is_in(lit(values).implode(false), false))
    }

    /// Whether each value is null.
    pub fn is_null(&self) -> Series {
        self.map_expr(Expr::is_null)
    }

    /// Whether each value is not null.
    pub fn is_not_null(&self) -> Series {
        self.map_expr(Expr::is_not_null)
    }

    /// Nulls replaced by `value`.
    pub fn fill_null(&self, value: impl Into<Operand>) -> Series {
        self.with(value.into(), |a, b| a.fill_null(b))
    }

    /// Values converted to `dtype` (an error for values that do not convert).
    pub fn cast(&self, dtype: DataType) -> Series {
        self.map_expr(|e| e.strict_cast(dtype))
    }

    /// Absolute values.
    pub fn abs(&self) -> Series {
        self.map_expr(Expr::abs)
    }

    /// Datetime parts (`s.dt().hour()`).
    pub fn dt(&self) -> DtAccessor {
        DtAccessor(self.clone())
    }

    /// String operations (`s.str().to_uppercase()`).
    pub fn str(&self) -> StrAccessor {
        StrAccessor(self.clone())
    }

    fn scalar(&self, func: AggFn) -> Scalar {
        let name = self.name.to_string();
        let frame = self.to_frame();
        Scalar {
            frame: frame.reduce(
                "series-agg",
                &[],
                &[Agg::new(name, func)],
                configured_split_every(),
            ),
        }
    }

    /// Sum of non-null values.
    pub fn sum(&self) -> Scalar {
        self.scalar(AggFn::Sum)
    }

    /// Mean of non-null values.
    pub fn mean(&self) -> Scalar {
        self.scalar(AggFn::Mean)
    }

    /// Count of non-null values.
    pub fn count(&self) -> Scalar {
        self.scalar(AggFn::Count)
    }

    /// Smallest value.
    pub fn min(&self) -> Scalar {
        self.scalar(AggFn::Min)
    }

    /// Largest value.
    pub fn max(&self) -> Scalar {
        self.scalar(AggFn::Max)
    }

    /// Standard deviation (ddof 1).
    pub fn std(&self) -> Scalar {
        self.scalar(AggFn::Std(1))
    }

    /// Variance (ddof 1).
    pub fn var(&self) -> Scalar {
        self.scalar(AggFn::Var(1))
    }

    /// Distinct non-null values.
    pub fn nunique(&self) -> Scalar {
        self.scalar(AggFn::NUnique)
    }

    /// The first value.
    pub fn first(&self) -> Scalar {
        self.scalar(AggFn::First)
    }

    /// The last value.
    pub fn last(&self) -> Scalar {
        self.scalar(AggFn::Last)
    }

    /// Approximate count of distinct non-null values (HyperLogLog, 2^14 registers: about 0.8%
    /// standard error, 16 KiB per partial whatever the data size).
    pub fn approx_nunique(&self) -> Scalar {
        let hashed = self.to_frame().with_ops(
            "approx-nunique",
            vec![
                FrameOp::Filter(col(self.name.clone()).is_not_null()),
                FrameOp::Select(vec![col(self.name.clone())
                    .hash(0x5851_F42D, 0x4C95_7F2D, 0x1405_7B7E, 0xF767_814F)
                    .alias("hash")]),
            ],
        );
        let mut meta = pl::Schema::default();
        meta.with_column("approx_nunique".into(), DataType::UInt64);
        Scalar {
            frame: hashed.reduction(
                crate::ops::hll_chunk::op(),
                crate::ops::hll_combine::op(),
                crate::ops::hll_finalize::op(),
                meta,
                configured_split_every(),
            ),
        }
    }

    /// Approximate quantiles (each `q` in 0..=1) of a numeric series: per-partition
    /// percentiles merged into one distribution (Dask's `quantile`), exact for one partition
    /// at whole percents. Computed now; `None` where the series has no values.
    pub fn quantile(&self, qs: &[f64]) -> Result<Vec<Option<f64>>, Error> {
        let name = self.name.to_string();
        let frame = self.to_frame();
        let mut out = crate::quantile::approx_quantiles(&frame, &[name], qs)?;
        Ok(out.pop().unwrap_or_default())
    }

    /// Occurrences of each distinct value (nulls included, as one group), most frequent
    /// first: a frame with the series' column and `count`, as Polars' `value_counts`.
    pub fn value_counts(&self) -> DataFrame {
        let name = self.name.to_string();
        self.to_frame()
            .groupby([name.as_str()])
            .agg([Agg::new(name.clone(), AggFn::Size).alias("count")])
            .with_ops(
                "value-counts",
                vec![FrameOp::Sort {
                    by: vec!["count".into(), name],
                    descending: vec![true, false],
                    nulls_last: false,
                }],
            )
    }

    /// Distinct values (Dask's `unique`), in order of first appearance.
    pub fn unique(&self) -> Series {
        let f = self.to_frame().drop_duplicates(None);
        Series::of(f, col(self.name.clone()), &self.name)
    }

    /// The first `n` values.
    pub fn head(&self, n: usize) -> Result<pl::Series, Error> {
        let df = self.to_frame().head(n)?;
        first_column(df)
    }

    /// The number of values.
    pub fn len(&self) -> Result<usize, Error> {
        self.to_frame().len()
    }

    /// Whether the series has no values.
    pub fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len()? == 0)
    }
}

fn first_column(df: pl::DataFrame) -> Result<pl::Series, Error> {
    df.columns()
        .first()
        .map(|c| c.as_materialized_series().clone())
        .ok_or_else(|| FrameError::Invalid("no column".into()).into())
}

impl Collection for Series {
    type Output = pl::Series;
    type Persisted = Series;

    fn keys(&self) -> Vec<Key> {
        self.to_frame().keys()
    }

    fn build_graph(&self, graph: &mut Graph) {
        self.to_frame().build_graph(graph)
    }

    fn finalize(&self, values: Vec<Value>) -> Result<pl::Series, Error> {
        first_column(self.to_frame().finalize(values)?)
    }

    fn rebuild(&self, values: Vec<Value>) -> Series {
        let f = self.to_frame().rebuild(values);
        Series::of(f, col(self.name.clone()), &self.name)
    }
}

impl fmt::Display for Series {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let frame = self.to_frame();
        match frame.check() {
            Err(e) => write!(f, "oxidask Series (invalid: {e})"),
            Ok(()) => write!(
                f,
                "oxidask Series Structure (npartitions={}): {} {}",
                frame.npartitions(),
                self.name,
                frame
                    .schema()
                    .get_at_index(0)
                    .map(|(_, d)| d.to_string())
                    .unwrap_or_default()
            ),
        }
    }
}

macro_rules! binop {
    ($($tr:ident $method:ident $f:expr;)*) => {$(
        impl<O: Into<Operand>> $tr<O> for &Series {
            type Output = Series;
            fn $method(self, rhs: O) -> Series {
                self.with(rhs.into(), $f)
            }
        }
        impl<O: Into<Operand>> $tr<O> for Series {
            type Output = Series;
            fn $method(self, rhs: O) -> Series {
                (&self).$method(rhs)
            }
        }
    )*};
}

binop! {
    Add add |a, b| a + b;
    Sub sub |a, b| a - b;
    Mul mul |a, b| a * b;
    Div div |a, b| a / b;
    Rem rem |a, b| a % b;
    BitAnd bitand |a: Expr, b| a.and(b);
    BitOr bitor |a: Expr, b| a.or(b);
}

impl Not for &Series {
    type Output = Series;
    fn not(self) -> Series {
        self.map_expr(Expr::not)
    }
}

impl Not for Series {
    type Output = Series;
    fn not(self) -> Series {
        !&self
    }
}

/// Datetime parts of a series (`s.dt().hour()`), as pandas' `.dt`.
pub struct DtAccessor(Series);

macro_rules! dt_part {
    ($($name:ident $doc:literal;)*) => {$(
        #[doc = $doc]
        pub fn $name(&self) -> Series {
            self.0.map_expr(|e| e.dt().$name())
        }
    )*};
}

impl DtAccessor {
    dt_part! {
        year "The year.";
        month "The month (1–12).";
        day "The day of the month.";
        hour "The hour (0–23).";
        minute "The minute.";
        second "The second.";
        weekday "The ISO weekday (Monday 1 … Sunday 7).";
        ordinal_day "The day of the year.";
        date "The date without the time.";
    }
}

/// String operations on a series (`s.str().contains("x")`), as pandas' `.str`.
pub struct StrAccessor(Series);

impl StrAccessor {
    /// Upper case.
    pub fn to_uppercase(&self) -> Series {
        self.0.map_expr(|e| e.str().to_uppercase())
    }

    /// Lower case.
    pub fn to_lowercase(&self) -> Series {
        self.0.map_expr(|e| e.str().to_lowercase())
    }

    /// Length in characters.
    pub fn len_chars(&self) -> Series {
        self.0.map_expr(|e| e.str().len_chars())
    }

    /// Whether each value contains `pattern` literally.
    pub fn contains(&self, pattern: &str) -> Series {
        let p = pattern.to_owned();
        self.0.map_expr(|e| e.str().contains_literal(lit(p)))
    }

    /// Whether each value starts with `prefix`.
    pub fn starts_with(&self, prefix: &str) -> Series {
        let p = prefix.to_owned();
        self.0.map_expr(|e| e.str().starts_with(lit(p)))
    }

    /// Whether each value ends with `suffix`.
    pub fn ends_with(&self, suffix: &str) -> Series {
        let p = suffix.to_owned();
        self.0.map_expr(|e| e.str().ends_with(lit(p)))
    }
}

/// A lazy aggregate of a series (`df.column("x").mean()`): computes to a Polars `AnyValue`.
#[derive(Clone)]
pub struct Scalar {
    frame: DataFrame,
}

impl Scalar {
    /// The aggregate as a one-row, one-column lazy frame.
    pub fn to_frame(&self) -> DataFrame {
        self.frame.clone()
    }

    /// Computes the value as an `f64` (null is an error naming the aggregate).
    pub fn compute_f64(&self) -> Result<f64, Error> {
        let v = self.compute()?;
        v.extract::<f64>().ok_or_else(|| {
            FrameError::Invalid(format!("the aggregate is {v}, not a number")).into()
        })
    }
}

impl Collection for Scalar {
    type Output = pl::AnyValue<'static>;
    type Persisted = Scalar;

    fn keys(&self) -> Vec<Key> {
        self.frame.keys()
    }

    fn build_graph(&self, graph: &mut Graph) {
        self.frame.build_graph(graph)
    }

    fn finalize(&self, values: Vec<Value>) -> Result<pl::AnyValue<'static>, Error> {
        self.frame.check()?;
        let mut values = values;
        let v = values
            .pop()
            .ok_or_else(|| Error::from(FrameError::Invalid("no result".into())))?;
        let df = take_partition(v)?;
        let c = df
            .columns()
            .first()
            .ok_or_else(|| Error::from(FrameError::Invalid("no result column".into())))?;
        c.get(0)
            .map(|v| v.into_static())
            .map_err(|e| FrameError::polars("aggregate", e).into())
    }

    fn rebuild(&self, values: Vec<Value>) -> Scalar {
        Scalar {
            frame: self.frame.rebuild(values),
        }
    }
}
