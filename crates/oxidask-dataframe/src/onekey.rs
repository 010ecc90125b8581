//! Grouped reductions over one numeric key column, computed in Rust as a read streams past:
//! the chunk step of `value_counts`, `groupby(key).agg(sum, mean, count, min, max)` and of
//! the pre-aggregation below a join ([`crate::join::eager_aggregation`]).
//!
//! Polars' general group-by hashes every row into a table built for any key type and any
//! number of groups; for one integer (or integral float) key it was 40% of the CPU of a
//! `value_counts` of a Parquet column, about as much as decompressing the column. Here a key
//! of a small range indexes an array directly (a hash map takes over past
//! [`DENSE_SPAN`] values, and for fractional floats), each batch's rows get their group
//! numbers once, and each reduction then runs over the batch's values in one pass.
//!
//! The result has the columns and dtypes Polars' group-by of the same expressions has (the
//! key first, nulls as one group, groups in no particular order), so either can compute a
//! chunk step. [`OneKeyGroupBy::recognise`] takes only the shapes it computes exactly:
//! `len()`, `count()`, `sum()` of Int64 or Float64 columns (or of one cast to Float64), and
//! `min()` / `max()` of them; anything else stays with Polars.

use std::sync::Arc;

use polars::prelude::*;
use polars_arrow::array::Array;
use rustc_hash::FxHashMap;

use crate::plan::FrameOp;

/// The widest range of integer keys kept in a directly indexed array (more: a hash map).
const DENSE_SPAN: i64 = 1 << 16;

/// One reduction of a [`OneKeyGroupBy`].
#[derive(Clone, Debug, PartialEq)]
enum Reduction {
    /// Rows, nulls included.
    Len,
    /// Non-null values of a column (any dtype).
    Count(PlSmallStr),
    /// Sum of an Int64 column (wrapping, as Polars').
    SumInt(PlSmallStr),
    /// Sum of a Float64 column, or of an Int64 column cast to Float64.
    SumFloat(PlSmallStr),
    /// Smallest or largest value of an Int64 column.
    MinMaxInt { column: PlSmallStr, max: bool },
    /// Smallest or largest value of a Float64 column; NaN only when every value is NaN, or,
    /// with `propagate_nans`, when any is.
    MinMaxFloat {
        column: PlSmallStr,
        max: bool,
        propagate_nans: bool,
    },
}

/// A group-by of one numeric key with reductions the kernel computes (see the module).
#[derive(Clone, Debug)]
pub(crate) struct OneKeyGroupBy {
    key: PlSmallStr,
    float_key: bool,
    /// Each distinct reduction once (`mean` and `sum` of one column share its sum).
    reductions: Vec<Reduction>,
    /// The reduction behind each result column after the key.
    outputs: Vec<usize>,
    /// Polars' result schema for the same group-by.
    target: SchemaRef,
}

impl OneKeyGroupBy {
    /// The kernel for `group_by(keys).agg(aggs)` over frames of `schema`, when it computes
    /// exactly that; `None` otherwise.
    pub(crate) fn recognise(keys: &[Expr], aggs: &[Expr], schema: &Schema) -> Option<Self> {
        let [Expr::Column(key)] = keys else {
            return None;
        };
        let float_key = match schema.get(key.as_str())? {
            DataType::Float32 | DataType::Float64 => true,
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32 => false,
            _ => return None,
        };
        if aggs.is_empty() {
            return None;
        }
        let dtype = |c: &str| schema.get(c).cloned();
        let mut reductions: Vec<Reduction> = Vec::with_capacity(aggs.len());
        let mut outputs = Vec::with_capacity(aggs.len());
        for a in aggs {
            let Expr::Alias(inner, _) = a else {
                return None;
            };
            let r = match inner.as_ref() {
                Expr::Len => Reduction::Len,
                Expr::Agg(AggExpr::Count {
                    input,
                    include_nulls,
                }) => {
                    let Expr::Column(c) = input.as_ref() else {
                        return None;
                    };
                    dtype(c)?;
                    if *include_nulls {
                        Reduction::Len
                    } else {
                        Reduction::Count(c.clone())
                    }
                }
                Expr::Agg(AggExpr::Sum(x)) => match x.as_ref() {
                    Expr::Column(c) => match dtype(c)? {
                        DataType::Int64 => Reduction::SumInt(c.clone()),
                        DataType::Float64 => Reduction::SumFloat(c.clone()),
                        _ => return None,
                    },
                    Expr::Cast {
                        expr,
                        dtype: DataTypeExpr::Literal(DataType::Float64),
                        ..
                    } => match expr.as_ref() {
                        Expr::Column(c)
                            if matches!(dtype(c)?, DataType::Int64 | DataType::Float64) =>
                        {
                            Reduction::SumFloat(c.clone())
                        }
                        _ => return None,
                    },
                    _ => return None,
                },
                Expr::Agg(
                    m @ (AggExpr::Min {
                        input,
                        propagate_nans,
                    }
                    | AggExpr::Max {
                        input,
                        propagate_nans,
                    }),
                ) => {
                    let Expr::Column(c) = input.as_ref() else {
                        return None;
                    };
                    let max = matches!(m, AggExpr::Max { .. });
                    match dtype(c)? {
                        DataType::Int64 => Reduction::MinMaxInt {
                            column: c.clone(),
                            max,
                        },
                        DataType::Float64 => Reduction::MinMaxFloat {
                            column: c.clone(),
                            max,
                            propagate_nans: *propagate_nans,
                        },
                        _ => return None,
                    }
                }
                _ => return None,
            };
            match reductions.iter().position(|x| *x == r) {
                Some(i) => outputs.push(i),
                None => {
                    outputs.push(reductions.len());
                    reductions.push(r);
                }
            }
        }
        let op = FrameOp::GroupAgg {
            keys: keys.to_vec(),
            aggs: aggs.to_vec(),
        };
        let target = crate::plan::output_schema(schema, std::slice::from_ref(&op)).ok()?;
        Some(OneKeyGroupBy {
            key: key.clone(),
            float_key,
            reductions,
            outputs,
            target,
        })
    }

    /// The columns the group-by reads: the key first.
    fn columns(&self) -> Vec<PlSmallStr> {
        let mut out = vec![self.key.clone()];
        for r in &self.reductions {
            let c = match r {
                Reduction::Len => continue,
                Reduction::Count(c)
                | Reduction::SumInt(c)
                | Reduction::SumFloat(c)
                | Reduction::MinMaxInt { column: c, .. }
                | Reduction::MinMaxFloat { column: c, .. } => c,
            };
            if !out.contains(c) {
                out.push(c.clone());
            }
        }
        out
    }

    /// Runs the group-by over `lf`'s rows: each batch Polars' streaming engine produces is
    /// reduced to its groups' partials where it is (in parallel), then the partials of all
    /// batches are combined.
    pub(crate) fn run(&self, lf: LazyFrame) -> PolarsResult<DataFrame> {
        let this = self.clone();
        let target = self.target.clone();
        let schema = move |_: &Schema| -> PolarsResult<SchemaRef> { Ok(target.clone()) };
        let partials = lf
            .select(self.columns().into_iter().map(col).collect::<Vec<_>>())
            .map(
                move |df: DataFrame| this.partial(&df),
                OptFlags::STREAMING,
                Some(Arc::new(schema)),
                Some("one-key group-by"),
            )
            .collect_with_engine(Engine::Streaming)?
            .unwrap_single();
        self.combine(partials)
    }

    /// One batch's groups and partials, in the result's schema.
    fn partial(&self, df: &DataFrame) -> PolarsResult<DataFrame> {
        let mut s = State::new(self);
        s.add(self, df)?;
        s.finish(self)
    }

    /// Merges partials of the same groups (sums of counts and sums, minima of minima...).
    fn combine(&self, partials: DataFrame) -> PolarsResult<DataFrame> {
        let aggs: Vec<Expr> = self
            .outputs
            .iter()
            .map(|i| &self.reductions[*i])
            .zip(self.target.iter().skip(1))
            .map(|(r, (name, dtype))| {
                let x = Arc::new(col(name.clone()));
                let merged = match r {
                    Reduction::Len
                    | Reduction::Count(_)
                    | Reduction::SumInt(_)
                    | Reduction::SumFloat(_) => col(name.clone()).sum(),
                    Reduction::MinMaxInt { max: false, .. } => col(name.clone()).min(),
                    Reduction::MinMaxInt { max: true, .. } => col(name.clone()).max(),
                    Reduction::MinMaxFloat {
                        max,
                        propagate_nans,
                        ..
                    } => Expr::Agg(if *max {
                        AggExpr::Max {
                            input: x,
                            propagate_nans: *propagate_nans,
                        }
                    } else {
                        AggExpr::Min {
                            input: x,
                            propagate_nans: *propagate_nans,
                        }
                    }),
                };
                merged.cast(dtype.clone()).alias(name.clone())
            })
            .collect();
        partials
            .lazy()
            .group_by([col(self.key.clone())])
            .agg(aggs)
            .collect()
    }

    /// Runs the group-by over a frame in memory.
    #[cfg(test)]
    fn run_frame(&self, df: &DataFrame) -> PolarsResult<DataFrame> {
        self.partial(df)
    }
}

/// Group numbers of key values, in order of first appearance.
#[derive(Default)]
struct Groups {
    /// Integral keys by offset from `base` while their range is at most [`DENSE_SPAN`]
    /// (`u32::MAX`: no group yet).
    dense: Vec<u32>,
    base: i64,
    /// Integral keys once their range is wider.
    ints: Option<FxHashMap<i64, u32>>,
    /// Fractional, infinite and NaN float keys by their bits (one NaN).
    floats: FxHashMap<u64, u32>,
    null: Option<u32>,
    /// Each group's key (floats as their value, integers exactly).
    keys: Vec<Key>,
}

#[derive(Clone, Copy)]
enum Key {
    Null,
    Int(i64),
    Float(f64),
}

impl Groups {
    fn len(&self) -> usize {
        self.keys.len()
    }

    fn new_group(&mut self, k: Key) -> u32 {
        self.keys.push(k);
        (self.keys.len() - 1) as u32
    }

    fn null(&mut self) -> u32 {
        match self.null {
            Some(g) => g,
            None => {
                let g = self.new_group(Key::Null);
                self.null = Some(g);
                g
            }
        }
    }

    #[inline(always)]
    fn int(&mut self, k: i64, as_key: Key) -> u32 {
        if self.ints.is_none() {
            // Below `base` the offset wraps past the array's end.
            let off = k.wrapping_sub(self.base) as u64 as usize;
            if let Some(slot) = self.dense.get(off) {
                if *slot != u32::MAX {
                    return *slot;
                }
            }
        }
        self.int_slow(k, as_key)
    }

    /// [`Groups::int`] for a key without a group yet, or outside the dense range.
    #[cold]
    #[inline(never)]
    fn int_slow(&mut self, k: i64, as_key: Key) -> u32 {
        if self.ints.is_none() {
            let off = k.wrapping_sub(self.base) as u64;
            if off < self.dense.len() as u64 {
                let g = self.new_group(as_key);
                self.dense[off as usize] = g;
                return g;
            }
            self.widen(k);
            return self.int_slow(k, as_key);
        }
        let ints = self.ints.as_mut().expect("checked");
        if let Some(g) = ints.get(&k) {
            return *g;
        }
        let g = (self.keys.len()) as u32;
        ints.insert(k, g);
        self.keys.push(as_key);
        g
    }

    /// Makes room for `k` in the dense array, or moves to the hash map when the range would
    /// pass [`DENSE_SPAN`].
    fn widen(&mut self, k: i64) {
        // In i128: a range near either end of i64 must not overflow.
        let len = self.dense.len() as i128;
        let (lo, hi) = if self.dense.is_empty() {
            (k as i128, k as i128)
        } else {
            let top = self.base as i128 + len - 1;
            ((self.base as i128).min(k as i128), top.max(k as i128))
        };
        let span = hi - lo + 1;
        if span > DENSE_SPAN as i128 {
            let mut map = FxHashMap::default();
            for (i, g) in self.dense.iter().enumerate() {
                if *g != u32::MAX {
                    map.insert(self.base + i as i64, *g);
                }
            }
            self.dense = Vec::new();
            self.ints = Some(map);
            return;
        }
        // Grow by at least the current size in the direction of `k` (fewer copies for keys
        // met in increasing or decreasing order), kept within i64.
        let want = span.max(2 * len).min(DENSE_SPAN as i128);
        let new_lo = if self.dense.is_empty() || k < self.base {
            lo - (want - span)
        } else {
            lo
        };
        let new_lo = new_lo.clamp(i64::MIN as i128, i64::MAX as i128 - want + 1);
        let mut dense = vec![u32::MAX; want as usize];
        if !self.dense.is_empty() {
            let shift = (self.base as i128 - new_lo) as usize;
            dense[shift..shift + self.dense.len()].copy_from_slice(&self.dense);
        }
        self.dense = dense;
        self.base = new_lo as i64;
    }

    #[inline(always)]
    fn float(&mut self, v: f64) -> u32 {
        // Integral floats group as the integer they convert to exactly (one float per
        // integer, so distinct keys stay distinct; NaN and ±inf never compare equal after
        // the round trip). -0.0 joins 0.0, as in Polars' grouping.
        let i = v as i64;
        if i as f64 == v {
            return self.int(i, Key::Float(v + 0.0));
        }
        self.float_slow(v)
    }

    /// [`Groups::float`] for fractional, infinite and NaN keys.
    #[cold]
    #[inline(never)]
    fn float_slow(&mut self, v: f64) -> u32 {
        let bits = if v.is_nan() {
            f64::NAN.to_bits()
        } else {
            v.to_bits()
        };
        if let Some(g) = self.floats.get(&bits) {
            return *g;
        }
        let g = self.keys.len() as u32;
        self.floats.insert(bits, g);
        self.keys.push(Key::Float(v));
        g
    }
}

/// A reduction's partial values, one per group.
enum Acc {
    Count(Vec<IdxSize>),
    SumInt(Vec<i64>),
    SumFloat(Vec<f64>),
    MinMaxInt {
        v: Vec<i64>,
        seen: Vec<bool>,
    },
    MinMaxFloat {
        v: Vec<f64>,
        seen: Vec<bool>,
        nan: Vec<bool>,
    },
}

struct State {
    groups: Groups,
    gids: Vec<u32>,
    accs: Vec<Acc>,
}

/// The chunks of a column with each chunk's first row.
fn chunks_of<T: PolarsDataType>(ca: &ChunkedArray<T>) -> impl Iterator<Item = (usize, &T::Array)> {
    let mut at = 0;
    ca.downcast_iter().map(move |a| {
        let start = at;
        at += a.len();
        (start, a)
    })
}

impl State {
    fn new(g: &OneKeyGroupBy) -> State {
        let accs = g
            .reductions
            .iter()
            .map(|r| match r {
                Reduction::Len | Reduction::Count(_) => Acc::Count(Vec::new()),
                Reduction::SumInt(_) => Acc::SumInt(Vec::new()),
                Reduction::SumFloat(_) => Acc::SumFloat(Vec::new()),
                Reduction::MinMaxInt { .. } => Acc::MinMaxInt {
                    v: Vec::new(),
                    seen: Vec::new(),
                },
                Reduction::MinMaxFloat { .. } => Acc::MinMaxFloat {
                    v: Vec::new(),
                    seen: Vec::new(),
                    nan: Vec::new(),
                },
            })
            .collect();
        State {
            groups: Groups::default(),
            gids: Vec::new(),
            accs,
        }
    }

    /// Adds a batch's rows.
    fn add(&mut self, g: &OneKeyGroupBy, df: &DataFrame) -> PolarsResult<()> {
        let key = df.column(g.key.as_str())?.as_materialized_series();
        self.gids.clear();
        self.gids.reserve(key.len());
        let groups = &mut self.groups;
        let gids = &mut self.gids;
        if g.float_key {
            let key = key.cast(&DataType::Float64)?;
            for (_, a) in chunks_of(key.f64()?) {
                match a.validity().filter(|_| a.null_count() > 0) {
                    None => gids.extend(a.values().iter().map(|v| groups.float(*v))),
                    Some(valid) => {
                        for (v, ok) in a.values().iter().zip(valid.iter()) {
                            gids.push(if ok { groups.float(*v) } else { groups.null() });
                        }
                    }
                }
            }
        } else {
            let key = key.cast(&DataType::Int64)?;
            for (_, a) in chunks_of(key.i64()?) {
                match a.validity().filter(|_| a.null_count() > 0) {
                    None => gids.extend(a.values().iter().map(|v| groups.int(*v, Key::Int(*v)))),
                    Some(valid) => {
                        for (v, ok) in a.values().iter().zip(valid.iter()) {
                            let id = if ok {
                                groups.int(*v, Key::Int(*v))
                            } else {
                                groups.null()
                            };
                            gids.push(id);
                        }
                    }
                }
            }
        }
        let n = groups.len();
        // Rows per group, counted once for `len` and every count of a column without nulls
        // in this batch.
        let mut rows: Option<Vec<IdxSize>> = None;
        for (r, acc) in g.reductions.iter().zip(self.accs.iter_mut()) {
            let all_rows = match r {
                Reduction::Len => true,
                Reduction::Count(c) => df.column(c.as_str())?.null_count() == 0,
                _ => false,
            };
            match acc {
                Acc::Count(c) if all_rows => {
                    let rows = rows.get_or_insert_with(|| {
                        let mut rows = vec![0; n];
                        banked(&mut rows, 0, gids, |_| 1, |a, b| a + b);
                        rows
                    });
                    c.resize(n, 0);
                    for (a, b) in c.iter_mut().zip(rows.iter()) {
                        *a += *b;
                    }
                }
                _ => reduce(r, acc, n, gids, df)?,
            }
        }
        Ok(())
    }

    /// The result: the key column, then one column per reduction, in Polars' dtypes.
    fn finish(self, g: &OneKeyGroupBy) -> PolarsResult<DataFrame> {
        let n = self.groups.len();
        let names: Vec<&PlSmallStr> = g.target.iter_names().collect();
        let mut columns: Vec<Column> = Vec::with_capacity(names.len());
        let key = if g.float_key {
            let v: Vec<Option<f64>> = self
                .groups
                .keys
                .iter()
                .map(|k| match k {
                    Key::Null => None,
                    Key::Int(i) => Some(*i as f64),
                    Key::Float(f) => Some(*f),
                })
                .collect();
            Series::new(g.key.clone(), v)
        } else {
            let v: Vec<Option<i64>> = self
                .groups
                .keys
                .iter()
                .map(|k| match k {
                    Key::Null => None,
                    Key::Int(i) => Some(*i),
                    Key::Float(f) => Some(*f as i64),
                })
                .collect();
            Series::new(g.key.clone(), v)
        };
        columns.push(key.into());
        let mut reduced: Vec<Series> = Vec::with_capacity(g.reductions.len());
        for (r, acc) in g.reductions.iter().zip(self.accs) {
            let name = PlSmallStr::from_static("");
            let s = match acc {
                Acc::Count(mut c) => {
                    c.resize(n, 0);
                    Series::new(name, c)
                }
                Acc::SumInt(mut c) => {
                    c.resize(n, 0);
                    Series::new(name, c)
                }
                Acc::SumFloat(mut c) => {
                    c.resize(n, 0.0);
                    Series::new(name, c)
                }
                Acc::MinMaxInt { v, seen } => {
                    let out: Vec<Option<i64>> = (0..n)
                        .map(|i| seen.get(i).copied().unwrap_or(false).then(|| v[i]))
                        .collect();
                    Series::new(name, out)
                }
                Acc::MinMaxFloat { v, seen, nan } => {
                    let propagate = matches!(
                        r,
                        Reduction::MinMaxFloat {
                            propagate_nans: true,
                            ..
                        }
                    );
                    let out: Vec<Option<f64>> = (0..n)
                        .map(|i| {
                            let seen = seen.get(i).copied().unwrap_or(false);
                            let nan = nan.get(i).copied().unwrap_or(false);
                            if nan && (propagate || !seen) {
                                Some(f64::NAN)
                            } else {
                                seen.then(|| v[i])
                            }
                        })
                        .collect();
                    Series::new(name, out)
                }
            };
            reduced.push(s);
        }
        for (i, name) in g.outputs.iter().zip(names.iter().skip(1)) {
            columns.push(reduced[*i].clone().with_name((*name).clone()).into());
        }
        let columns = columns
            .into_iter()
            .zip(g.target.iter_values())
            .map(|(c, d)| if c.dtype() == d { Ok(c) } else { c.cast(d) })
            .collect::<PolarsResult<Vec<_>>>()?;
        DataFrame::new_infer_height(columns)
    }
}

/// How many copies of the accumulators [`banked`] adds into.
const BANKS: usize = 4;

/// Adds `value(i)` into `acc[gids[i]]` for every row `i`. Rows go round [`BANKS`] copies of
/// the accumulators, summed at the end: consecutive rows of one group (most rows, with few
/// groups or sorted keys) would otherwise each wait for the previous add to the same
/// counter.
#[inline(always)]
fn banked<T: Copy>(
    acc: &mut [T],
    zero: T,
    gids: &[u32],
    value: impl Fn(usize) -> T,
    add: impl Fn(T, T) -> T,
) {
    let mut banks = vec![zero; acc.len() * BANKS];
    let whole = gids.len() / BANKS * BANKS;
    for (q, ids) in gids[..whole].chunks_exact(BANKS).enumerate() {
        for (j, g) in ids.iter().enumerate() {
            let b = *g as usize * BANKS + j;
            banks[b] = add(banks[b], value(q * BANKS + j));
        }
    }
    for (i, g) in gids.iter().enumerate().skip(whole) {
        let g = *g as usize;
        acc[g] = add(acc[g], value(i));
    }
    for (a, b) in acc.iter_mut().zip(banks.chunks_exact(BANKS)) {
        *a = add(*a, b.iter().fold(zero, |s, x| add(s, *x)));
    }
}

/// Adds a batch (whose rows are in groups `gids`, `n` groups in all) to one reduction
/// (`len`, and counts of a column without nulls, are added from the shared row counts in
/// [`State::add`]).
fn reduce(
    r: &Reduction,
    acc: &mut Acc,
    n: usize,
    gids: &[u32],
    df: &DataFrame,
) -> PolarsResult<()> {
    let series = |c: &PlSmallStr| -> PolarsResult<&Series> {
        Ok(df.column(c.as_str())?.as_materialized_series())
    };
    match (r, acc) {
        (Reduction::Count(col), Acc::Count(c)) => {
            c.resize(n, 0);
            let s = series(col)?;
            let mut at = 0;
            for a in s.chunks() {
                let len = a.len();
                let ids = &gids[at..at + len];
                match a.validity().filter(|_| a.null_count() > 0) {
                    Some(valid) => {
                        banked(c, 0, ids, |i| IdxSize::from(valid.get_bit(i)), |a, b| a + b)
                    }
                    None => banked(c, 0, ids, |_| 1, |a, b| a + b),
                }
                at += len;
            }
        }
        (Reduction::SumInt(col), Acc::SumInt(c)) => {
            c.resize(n, 0);
            for (at, a) in chunks_of(series(col)?.i64()?) {
                let ids = &gids[at..at + a.len()];
                let v = a.values().as_slice();
                match a.validity().filter(|_| a.null_count() > 0) {
                    Some(valid) => banked(
                        c,
                        0,
                        ids,
                        |i| if valid.get_bit(i) { v[i] } else { 0 },
                        i64::wrapping_add,
                    ),
                    None => banked(c, 0, ids, |i| v[i], i64::wrapping_add),
                }
            }
        }
        (Reduction::SumFloat(col), Acc::SumFloat(c)) => {
            c.resize(n, 0.0);
            let s = series(col)?;
            let s = s.cast(&DataType::Float64)?;
            for (at, a) in chunks_of(s.f64()?) {
                let ids = &gids[at..at + a.len()];
                let v = a.values().as_slice();
                match a.validity().filter(|_| a.null_count() > 0) {
                    Some(valid) => banked(
                        c,
                        0.0,
                        ids,
                        |i| if valid.get_bit(i) { v[i] } else { 0.0 },
                        |a, b| a + b,
                    ),
                    None => banked(c, 0.0, ids, |i| v[i], |a, b| a + b),
                }
            }
        }
        (Reduction::MinMaxInt { column, max }, Acc::MinMaxInt { v, seen }) => {
            let max = *max;
            v.resize(n, if max { i64::MIN } else { i64::MAX });
            seen.resize(n, false);
            for (at, a) in chunks_of(series(column)?.i64()?) {
                let ids = &gids[at..at + a.len()];
                let valid = a.validity().filter(|_| a.null_count() > 0);
                for (i, (g, x)) in ids.iter().zip(a.values().iter()).enumerate() {
                    if valid.is_none_or(|m| m.get_bit(i)) {
                        let g = *g as usize;
                        seen[g] = true;
                        v[g] = if max { v[g].max(*x) } else { v[g].min(*x) };
                    }
                }
            }
        }
        (Reduction::MinMaxFloat { column, max, .. }, Acc::MinMaxFloat { v, seen, nan }) => {
            let max = *max;
            v.resize(
                n,
                if max {
                    f64::NEG_INFINITY
                } else {
                    f64::INFINITY
                },
            );
            seen.resize(n, false);
            nan.resize(n, false);
            for (at, a) in chunks_of(series(column)?.f64()?) {
                let ids = &gids[at..at + a.len()];
                let valid = a.validity().filter(|_| a.null_count() > 0);
                for (i, (g, x)) in ids.iter().zip(a.values().iter()).enumerate() {
                    if valid.is_none_or(|m| m.get_bit(i)) {
                        let g = *g as usize;
                        let is_nan = x.is_nan();
                        seen[g] |= !is_nan;
                        nan[g] |= is_nan;
                        // `f64::min`/`max` keep the other operand when one is NaN.
                        v[g] = if max { v[g].max(*x) } else { v[g].min(*x) };
                    }
                }
            }
        }
        _ => unreachable!("each reduction has its accumulator; `len` is counted in State::add"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sorted(df: DataFrame) -> DataFrame {
        let names: Vec<PlSmallStr> = df.get_column_names_owned();
        df.sort(names, SortMultipleOptions::default()).unwrap()
    }

    /// Equal frames, floats within a relative 1e-12 (sums in another order), NaN equal NaN.
    fn assert_same(got: &DataFrame, want: &DataFrame) -> Result<(), TestCaseError> {
        prop_assert_eq!(got.schema(), want.schema());
        prop_assert_eq!(got.height(), want.height());
        for (a, b) in got.columns().iter().zip(want.columns()) {
            if a.dtype().is_float() {
                let (a, b) = (a.f64().unwrap(), b.f64().unwrap());
                for (x, y) in a.iter().zip(b.iter()) {
                    let same = match (x, y) {
                        (None, None) => true,
                        (Some(x), Some(y)) => {
                            (x.is_nan() && y.is_nan())
                                || x == y
                                || (x - y).abs() <= 1e-12 * x.abs().max(y.abs())
                        }
                        _ => false,
                    };
                    prop_assert!(same, "{} differs:\n{}\n{}", a.name(), got, want);
                }
            } else {
                prop_assert!(
                    a.equals_missing(b),
                    "{} differs:\n{}\n{}",
                    a.name(),
                    got,
                    want
                );
            }
        }
        Ok(())
    }

    fn aggs() -> Vec<Expr> {
        vec![
            len().alias("n"),
            col("i").count().alias("ic"),
            col("i").sum().alias("is"),
            col("f").sum().alias("fs"),
            col("i").cast(DataType::Float64).sum().alias("ifs"),
            col("i").min().alias("imin"),
            col("i").max().alias("imax"),
            col("f").min().alias("fmin"),
            col("f").max().alias("fmax"),
            col("s").count().alias("sc"),
            col("s").len().alias("sn"),
            // The same reduction twice (computed once), a count of a float column.
            col("i").sum().alias("is2"),
            col("f").count().alias("fc"),
        ]
    }

    const FLOATS: [f64; 9] = [
        0.0,
        -0.0,
        1.0,
        2.5,
        -3.0,
        f64::NAN,
        f64::INFINITY,
        1e300,
        -7.25,
    ];

    proptest! {
        /// The kernel gives Polars' group-by result, keyed by integers (a small range and a
        /// wide one) and by floats (integral, fractional, ±0, NaN, ±inf), with nulls
        /// anywhere, over several chunks.
        #[test]
        fn one_key_groupby_equals_polars_group_by(
            rows in proptest::collection::vec(
                (proptest::option::weighted(0.9, 0usize..9), proptest::option::weighted(0.8, -4i64..4),
                 proptest::option::weighted(0.8, 0usize..9), proptest::option::weighted(0.7, 0usize..3)),
                0..80,
            ),
            wide in any::<bool>(),
            chunks in 1usize..4,
        ) {
            let ik: Vec<Option<i64>> = rows.iter().map(|r| r.0.map(|k| if wide { (k as i64 - 4) * 40_000_000_000 } else { k as i64 * 3 - 5 })).collect();
            let fk: Vec<Option<f64>> = rows.iter().map(|r| r.0.map(|k| FLOATS[k])).collect();
            let i: Vec<Option<i64>> = rows.iter().map(|r| r.1).collect();
            let f: Vec<Option<f64>> = rows.iter().map(|r| r.2.map(|k| FLOATS[k])).collect();
            let s: Vec<Option<&str>> = rows.iter().map(|r| r.3.map(|k| ["a", "b", "c"][k])).collect();
            let full = df!("ik" => ik, "ik32" => rows.iter().map(|r| r.0.map(|k| k as i32 - 2)).collect::<Vec<_>>(),
                "fk" => fk, "i" => i, "f" => f, "s" => s).unwrap();
            // Several chunks, as streamed batches have.
            let step = full.height().div_ceil(chunks).max(1);
            let mut df = full.slice(0, step);
            let mut at = step;
            while at < full.height() {
                df.vstack_mut(&full.slice(at as i64, step)).unwrap();
                at += step;
            }
            for key in ["ik", "ik32", "fk"] {
                let keys = vec![col(key)];
                let g = OneKeyGroupBy::recognise(&keys, &aggs(), df.schema()).expect("recognised");
                let got = sorted(g.run_frame(&df).unwrap());
                let want = sorted(df.clone().lazy().group_by(keys.clone()).agg(aggs()).collect().unwrap());
                assert_same(&got, &want)?;
                let streamed = sorted(g.run(df.clone().lazy()).unwrap());
                assert_same(&streamed, &want)?;
            }
        }
    }

    #[test]
    fn keys_at_the_ends_of_the_int64_range_regression() {
        // Growing the directly indexed range near i64::MIN / i64::MAX overflowed.
        for keys in [
            vec![i64::MAX, i64::MAX - 3, i64::MAX - 1, i64::MAX],
            vec![i64::MIN, i64::MIN + 5, i64::MIN + 1, i64::MIN],
            vec![i64::MIN + 2, i64::MIN, i64::MAX, 0, i64::MAX - 1],
        ] {
            let df = df!("k" => keys.clone(), "i" => vec![1i64; keys.len()]).unwrap();
            let aggs = vec![col("i").sum().alias("total")];
            let g = OneKeyGroupBy::recognise(&[col("k")], &aggs, df.schema()).unwrap();
            let got = sorted(g.run_frame(&df).unwrap());
            let want = sorted(df.lazy().group_by([col("k")]).agg(aggs).collect().unwrap());
            assert!(got.equals_missing(&want), "{keys:?}\n{got}\n{want}");
        }
    }

    #[test]
    fn keys_spreading_past_the_dense_range_move_to_a_map() {
        let keys: Vec<i64> = (0..1000)
            .map(|i| (i % 7) * 30_000 - (i % 3) * 70_000)
            .collect();
        let df = df!("k" => keys, "i" => vec![1i64; 1000]).unwrap();
        let aggs = vec![col("i").sum().alias("total")];
        let g = OneKeyGroupBy::recognise(&[col("k")], &aggs, df.schema()).unwrap();
        let got = sorted(g.run_frame(&df).unwrap());
        let want = sorted(df.lazy().group_by([col("k")]).agg(aggs).collect().unwrap());
        assert!(got.equals_missing(&want), "{got}\n{want}");
    }

    #[test]
    fn shapes_left_to_polars() {
        let df = df!("k" => [1i64], "s" => ["a"], "u" => [1u64], "i" => [1i32]).unwrap();
        let schema = df.schema();
        for (keys, aggs) in [
            // Two keys, a string key, a UInt64 key.
            (vec![col("k"), col("i")], vec![len().alias("n")]),
            (vec![col("s")], vec![len().alias("n")]),
            (vec![col("u")], vec![len().alias("n")]),
            // A sum of an Int32 column, a mean, a string's maximum, an unnamed expression.
            (vec![col("k")], vec![col("i").sum().alias("x")]),
            (vec![col("k")], vec![col("k").mean().alias("x")]),
            (vec![col("k")], vec![col("s").max().alias("x")]),
            (vec![col("k")], vec![len()]),
        ] {
            assert!(
                OneKeyGroupBy::recognise(&keys, &aggs, schema).is_none(),
                "{keys:?} {aggs:?}"
            );
        }
    }
}
