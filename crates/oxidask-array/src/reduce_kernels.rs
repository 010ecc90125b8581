//! The per-block work of reductions: reduce a block to a partial result, combine partials,
//! finish a partial into the answer.
//!
//! Partials keep the reduced axes with length 1 (`keepdims`), so partials of one output
//! block always have equal shapes and combine elementwise. Constant blocks reduce without
//! being allocated. Float sums are pairwise and variances use Chan's parallel update of
//! (count, mean, M2), so results match NumPy to floating-point tolerance at any chunking.

use ndarray::{ArrayD, Axis, Dimension, IxDyn, Zip};

use crate::block::{Block, Chunk};
use crate::creation::BlockPos;
use crate::element::{pairwise_f64, DType, Element, Number};

/// What to reduce with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, oxidask_core::Data)]
#[data(crate = oxidask_core)]
#[allow(missing_docs)]
pub enum Reduction {
    Sum,
    Prod,
    Min,
    Max,
    Any,
    All,
    NanSum,
    Mean,
    NanMean,
    Var { ddof: u32 },
    Std { ddof: u32 },
    ArgMin,
    ArgMax,
}

impl Reduction {
    /// The name (key prefix).
    pub fn name(self) -> &'static str {
        match self {
            Reduction::Sum => "sum",
            Reduction::Prod => "prod",
            Reduction::Min => "min",
            Reduction::Max => "max",
            Reduction::Any => "any",
            Reduction::All => "all",
            Reduction::NanSum => "nansum",
            Reduction::Mean => "mean",
            Reduction::NanMean => "nanmean",
            Reduction::Var { .. } => "var",
            Reduction::Std { .. } => "std",
            Reduction::ArgMin => "argmin",
            Reduction::ArgMax => "argmax",
        }
    }
}

/// A reduction's intermediate result for one output block.
#[derive(Clone, Debug, PartialEq, oxidask_core::Data)]
#[data(crate = oxidask_core)]
pub enum Partial {
    /// Sum, product, min, max, any, all, nansum: the reduced values.
    Value(Block),
    /// Mean: sums and counts.
    Mean {
        /// Sums.
        sum: ArrayD<f64>,
        /// Counts.
        count: ArrayD<f64>,
    },
    /// Variance: counts, means and sums of squared deviations.
    Moments {
        /// Counts.
        n: ArrayD<f64>,
        /// Means.
        mean: ArrayD<f64>,
        /// Sums of squared deviations from the mean.
        m2: ArrayD<f64>,
    },
    /// Argmin/argmax: best values and their global indices.
    Arg {
        /// The best values.
        value: Block,
        /// Their indices (flat over the array, or along the axis).
        index: ArrayD<i64>,
    },
}

/// Moves the reduced axes last and returns (contiguous rows of reduced elements, keepdims
/// shape). Each row holds the elements that reduce to one output element. Borrowed when the
/// data is already in that order (reducing trailing axes of a row-major block).
fn rows<'a, T: Element>(
    a: &'a ArrayD<T>,
    axes: &[usize],
) -> (std::borrow::Cow<'a, [T]>, Vec<usize>, usize) {
    rows_in(a, axes, false)
}

/// [`rows`], where `any_order` says the reduction does not care in which order it sees the
/// elements (sums, means, variances over every axis: memory order is then fine).
fn rows_in<'a, T: Element>(
    a: &'a ArrayD<T>,
    axes: &[usize],
    any_order: bool,
) -> (std::borrow::Cow<'a, [T]>, Vec<usize>, usize) {
    let nd = a.ndim();
    let mut order: Vec<usize> = (0..nd).filter(|x| !axes.contains(x)).collect();
    order.extend_from_slice(axes);
    let trailing = order.iter().enumerate().all(|(i, &x)| i == x);
    let slice = if any_order && axes.len() == nd {
        a.as_slice_memory_order()
    } else {
        a.as_slice()
    };
    let flat: std::borrow::Cow<'a, [T]> = match (trailing, slice) {
        (true, Some(s)) => std::borrow::Cow::Borrowed(s),
        // as_standard_layout copies with ndarray's strided copy loops, far faster than iterating.
        _ => std::borrow::Cow::Owned(
            a.view()
                .permuted_axes(IxDyn(&order))
                .as_standard_layout()
                .into_owned()
                .into_raw_vec_and_offset()
                .0,
        ),
    };
    let keep_shape: Vec<usize> = (0..nd)
        .map(|x| if axes.contains(&x) { 1 } else { a.shape()[x] })
        .collect();
    let r: usize = axes.iter().map(|&x| a.shape()[x]).product();
    (flat, keep_shape, r)
}

fn keep_shape(shape: &[usize], axes: &[usize]) -> Vec<usize> {
    shape
        .iter()
        .enumerate()
        .map(|(i, &d)| if axes.contains(&i) { 1 } else { d })
        .collect()
}

/// Reduces each row of `a` with `f`, into a keepdims-shaped chunk.
fn by_rows<T: Element, U: Element>(
    a: &ArrayD<T>,
    axes: &[usize],
    f: impl Fn(&[T]) -> U,
) -> Chunk<U> {
    let (flat, shape, r) = rows_in(a, axes, true);
    let k: usize = shape.iter().product();
    let out: Vec<U> = if r == 0 {
        (0..k).map(|_| f(&[])).collect()
    } else {
        flat.chunks(r).map(&f).collect()
    };
    Chunk::Dense(ArrayD::from_shape_vec(IxDyn(&shape), out).expect("one value per row"))
}

fn sum_of<T: Element>(xs: &[T]) -> T::Sum {
    if T::DTYPE == <T::Sum as Element>::DTYPE {
        // Same type: pairwise for floats.
        let same: &[T::Sum] =
            // SAFETY: T and T::Sum are the same type when their dtypes are equal (dtypes are
            // one-to-one with the sealed element types).
            unsafe { std::slice::from_raw_parts(xs.as_ptr() as *const T::Sum, xs.len()) };
        <T::Sum as Number>::sum_slice(same)
    } else {
        xs.iter().fold(<T::Sum as Number>::ZERO, |a, &x| {
            <T::Sum as Number>::add(a, x.cast::<T::Sum>())
        })
    }
}

fn number_block<T: Number>(c: Chunk<T>) -> Block {
    T::wrap(c)
}

/// Reduces one block (the first step).
pub(crate) fn reduce_block(
    kind: Reduction,
    axes: &[usize],
    block: &Block,
    pos: &BlockPos,
) -> Partial {
    crate::block::with_chunk!(block, c => reduce_chunk(kind, axes, c, pos))
}

fn global_index(pos: &BlockPos, axes: &[usize], local_flat: usize) -> i64 {
    // Local row-major position -> global flat index (all axes) or index along the axis.
    let mut rem = local_flat;
    let mut local = vec![0usize; pos.shape.len()];
    for a in (0..pos.shape.len()).rev() {
        let d = pos.shape[a].max(1);
        local[a] = rem % d;
        rem /= d;
    }
    if axes.len() == 1 && pos.shape.len() > 1 {
        (pos.offset[axes[0]] + local[axes[0]]) as i64
    } else {
        local
            .iter()
            .zip(&pos.offset)
            .zip(&pos.total)
            .fold(0i64, |g, ((&l, &o), &t)| g * t as i64 + (o + l) as i64)
    }
}

fn reduce_chunk<T: Element>(
    kind: Reduction,
    axes: &[usize],
    c: &Chunk<T>,
    pos: &BlockPos,
) -> Partial {
    let shape = c.shape().to_vec();
    let ks = keep_shape(&shape, axes);
    let k: usize = ks.iter().product();
    let r: usize = axes.iter().map(|&a| shape[a]).product();
    let is_float = T::DTYPE.is_float();
    let full_f64 = |v: f64| ArrayD::from_elem(IxDyn(&ks), v);
    match (kind, c) {
        // Constant chunks: closed forms, nothing allocated beyond the (small) output.
        (Reduction::Sum | Reduction::NanSum, Chunk::Full { value, .. }) => {
            let v = if kind == Reduction::NanSum && value.to_f64().is_nan() {
                <T::Sum as Number>::ZERO
            } else {
                let s: T::Sum = value.cast();
                if is_float {
                    <T::Sum as Element>::from_f64(s.to_f64() * r as f64)
                } else {
                    <T::Sum as Number>::mul(s, <T::Sum as Element>::from_i64(r as i64))
                }
            };
            Partial::Value(number_block(Chunk::Full {
                shape: ks,
                value: v,
            }))
        }
        (Reduction::Prod, Chunk::Full { value, .. }) => {
            let mut p = <T::Sum as Number>::ONE;
            for _ in 0..r {
                p = <T::Sum as Number>::mul(p, value.cast());
            }
            Partial::Value(number_block(Chunk::Full {
                shape: ks,
                value: p,
            }))
        }
        (Reduction::Min | Reduction::Max, Chunk::Full { value, .. }) => {
            Partial::Value(T::wrap(Chunk::Full {
                shape: ks,
                value: *value,
            }))
        }
        (Reduction::Any | Reduction::All, Chunk::Full { value, .. }) => {
            let b = value.cast::<bool>();
            let v = if r == 0 { kind == Reduction::All } else { b };
            Partial::Value(Block::Bool(Chunk::Full {
                shape: ks,
                value: v,
            }))
        }
        (Reduction::Mean | Reduction::NanMean, Chunk::Full { value, .. }) => {
            let v = value.to_f64();
            if kind == Reduction::NanMean && v.is_nan() {
                Partial::Mean {
                    sum: full_f64(0.0),
                    count: full_f64(0.0),
                }
            } else {
                Partial::Mean {
                    sum: full_f64(v * r as f64),
                    count: full_f64(r as f64),
                }
            }
        }
        (Reduction::Var { .. } | Reduction::Std { .. }, Chunk::Full { value, .. }) => {
            Partial::Moments {
                n: full_f64(r as f64),
                mean: full_f64(value.to_f64()),
                m2: full_f64(0.0),
            }
        }
        (Reduction::ArgMin | Reduction::ArgMax, Chunk::Full { value, .. }) => {
            let index: Vec<i64> = (0..k)
                .map(|row| {
                    // The first element of this output row: local position with reduced axes 0.
                    let mut rem = row;
                    let mut local = vec![0usize; shape.len()];
                    for a in (0..shape.len()).rev() {
                        if !axes.contains(&a) {
                            local[a] = rem % shape[a].max(1);
                            rem /= shape[a].max(1);
                        }
                    }
                    let flat = local
                        .iter()
                        .zip(&shape)
                        .fold(0, |acc, (&i, &d)| acc * d + i);
                    global_index(pos, axes, flat)
                })
                .collect();
            Partial::Arg {
                value: T::wrap(Chunk::Full {
                    shape: ks.clone(),
                    value: *value,
                }),
                index: ArrayD::from_shape_vec(IxDyn(&ks), index).expect("k values"),
            }
        }
        // Dense chunks.
        (_, Chunk::Dense(a)) => reduce_dense(kind, axes, a, pos),
    }
}

/// When the reduced axes are the leading axes of a row-major array: its data as a
/// (rows, columns) matrix, reduced column by column without moving anything.
fn leading<'a, T: Element>(a: &'a ArrayD<T>, axes: &[usize]) -> Option<(&'a [T], usize, usize)> {
    let k = axes.len();
    if k == 0 || k >= a.ndim() || axes.iter().enumerate().any(|(i, &x)| i != x) {
        return None;
    }
    let s = a.as_slice()?;
    let r = a.shape()[..k].iter().product();
    let c: usize = a.shape()[k..].iter().product();
    // Empty rows or columns take the general path (nothing to gain here).
    (c > 0 && r > 0).then_some((s, r, c))
}

/// Column sums in row blocks of 128 (two-level summation keeps the error small).
fn column_sums<T: Element, S: Number>(s: &[T], c: usize, conv: impl Fn(T) -> S) -> Vec<S> {
    let mut total = vec![S::ZERO; c];
    let mut part = vec![S::ZERO; c];
    for rows in s.chunks(c * 128) {
        part.iter_mut().for_each(|p| *p = S::ZERO);
        for row in rows.chunks_exact(c) {
            for (p, &x) in part.iter_mut().zip(row) {
                *p = S::add(*p, conv(x));
            }
        }
        for (t, p) in total.iter_mut().zip(&part) {
            *t = S::add(*t, *p);
        }
    }
    total
}

fn reduce_leading<T: Element>(kind: Reduction, axes: &[usize], a: &ArrayD<T>) -> Option<Partial> {
    let (s, r, c) = leading(a, axes)?;
    let ks = keep_shape(a.shape(), axes);
    let f64s = |v: Vec<f64>| ArrayD::from_shape_vec(IxDyn(&ks), v).expect("one value per column");
    Some(match kind {
        Reduction::Sum => {
            let sums: Vec<T::Sum> = column_sums(s, c, |x: T| x.cast::<T::Sum>());
            Partial::Value(<T::Sum as Element>::wrap(Chunk::Dense(
                ArrayD::from_shape_vec(IxDyn(&ks), sums).expect("one value per column"),
            )))
        }
        Reduction::Mean => Partial::Mean {
            sum: f64s(column_sums(s, c, |x: T| x.to_f64())),
            count: f64s(vec![r as f64; c]),
        },
        Reduction::Var { .. } | Reduction::Std { .. } => {
            let mean: Vec<f64> = column_sums(s, c, |x: T| x.to_f64())
                .into_iter()
                .map(|t| t / r.max(1) as f64)
                .collect();
            let mut m2 = vec![0.0; c];
            for row in s.chunks_exact(c) {
                for ((q, &x), &mu) in m2.iter_mut().zip(row).zip(&mean) {
                    let d = x.to_f64() - mu;
                    *q += d * d;
                }
            }
            Partial::Moments {
                n: f64s(vec![r as f64; c]),
                mean: f64s(mean),
                m2: f64s(m2),
            }
        }
        _ => return None,
    })
}

fn reduce_dense<T: Element>(
    kind: Reduction,
    axes: &[usize],
    a: &ArrayD<T>,
    pos: &BlockPos,
) -> Partial {
    if let Some(p) = reduce_leading(kind, axes, a) {
        return p;
    }
    match kind {
        Reduction::Sum => Partial::Value(number_block(by_rows(a, axes, sum_of::<T>))),
        Reduction::NanSum => Partial::Value(number_block(by_rows(a, axes, |xs: &[T]| {
            xs.iter()
                .filter(|x| !x.to_f64().is_nan())
                .fold(<T::Sum as Number>::ZERO, |s, &x| {
                    <T::Sum as Number>::add(s, x.cast())
                })
        }))),
        Reduction::Prod => Partial::Value(number_block(by_rows(a, axes, |xs: &[T]| {
            xs.iter().fold(<T::Sum as Number>::ONE, |s, &x| {
                <T::Sum as Number>::mul(s, x.cast())
            })
        }))),
        Reduction::Min | Reduction::Max => {
            Partial::Value(T::wrap(by_rows(a, axes, |xs: &[T]| {
                let mut best = xs.first().copied().unwrap_or_default();
                for &x in xs {
                    if x.to_f64().is_nan() {
                        return x;
                    }
                    if (kind == Reduction::Min && x < best) || (kind == Reduction::Max && x > best)
                    {
                        best = x;
                    }
                }
                best
            })))
        }
        Reduction::Any => Partial::Value(Block::Bool(by_rows(a, axes, |xs: &[T]| {
            xs.iter().any(|x| x.cast::<bool>())
        }))),
        Reduction::All => Partial::Value(Block::Bool(by_rows(a, axes, |xs: &[T]| {
            xs.iter().all(|x| x.cast::<bool>())
        }))),
        Reduction::Mean | Reduction::NanMean => {
            let (flat, shape, r) = rows_in(a, axes, true);
            let k: usize = shape.iter().product();
            let mut sum = Vec::with_capacity(k);
            let mut count = Vec::with_capacity(k);
            for row in 0..k {
                let xs = &flat[row * r..(row + 1) * r];
                if kind == Reduction::NanMean {
                    count.push(xs.iter().filter(|x| !x.to_f64().is_nan()).count() as f64);
                    sum.push(pairwise_f64(xs, &|x: T| {
                        let v = x.to_f64();
                        if v.is_nan() {
                            0.0
                        } else {
                            v
                        }
                    }));
                } else {
                    count.push(r as f64);
                    sum.push(pairwise_f64(xs, &|x: T| x.to_f64()));
                }
            }
            Partial::Mean {
                sum: ArrayD::from_shape_vec(IxDyn(&shape), sum).expect("k"),
                count: ArrayD::from_shape_vec(IxDyn(&shape), count).expect("k"),
            }
        }
        Reduction::Var { .. } | Reduction::Std { .. } => {
            let (flat, shape, r) = rows_in(a, axes, true);
            let k: usize = shape.iter().product();
            let (mut n, mut mean, mut m2) = (
                Vec::with_capacity(k),
                Vec::with_capacity(k),
                Vec::with_capacity(k),
            );
            for row in 0..k {
                let xs = &flat[row * r..(row + 1) * r];
                // Two passes within the block: the mean, then squared deviations from it.
                let mu = if xs.is_empty() {
                    0.0
                } else {
                    pairwise_f64(xs, &|x: T| x.to_f64()) / xs.len() as f64
                };
                n.push(xs.len() as f64);
                mean.push(mu);
                m2.push(pairwise_f64(xs, &|x: T| {
                    let d = x.to_f64() - mu;
                    d * d
                }));
            }
            Partial::Moments {
                n: ArrayD::from_shape_vec(IxDyn(&shape), n).expect("k"),
                mean: ArrayD::from_shape_vec(IxDyn(&shape), mean).expect("k"),
                m2: ArrayD::from_shape_vec(IxDyn(&shape), m2).expect("k"),
            }
        }
        Reduction::ArgMin | Reduction::ArgMax => {
            // Local flat positions, permuted the same way as the values.
            let idx = ArrayD::from_shape_fn(IxDyn(a.shape()), |ix| {
                ix.slice()
                    .iter()
                    .zip(a.shape())
                    .fold(0usize, |acc, (&i, &d)| acc * d + i)
            });
            let (flat, shape, r) = rows(a, axes);
            let idx = idx.mapv(|v| v as i64);
            let (flat_idx, _, _) = rows(&idx, axes);
            let k: usize = shape.iter().product();
            let mut best_v = Vec::with_capacity(k);
            let mut best_i = Vec::with_capacity(k);
            for row in 0..k {
                let xs = &flat[row * r..(row + 1) * r];
                let mut b = 0usize;
                for (j, &x) in xs.iter().enumerate() {
                    let cur = xs[b];
                    if cur.to_f64().is_nan() {
                        break;
                    }
                    if x.to_f64().is_nan()
                        || (kind == Reduction::ArgMin && x < cur)
                        || (kind == Reduction::ArgMax && x > cur)
                    {
                        b = j;
                        if x.to_f64().is_nan() {
                            break;
                        }
                    }
                }
                best_v.push(xs.get(b).copied().unwrap_or_default());
                let local = flat_idx[row * r + b.min(r.saturating_sub(1))] as usize;
                best_i.push(global_index(pos, axes, local));
            }
            Partial::Arg {
                value: T::wrap(Chunk::Dense(
                    ArrayD::from_shape_vec(IxDyn(&shape), best_v).expect("k"),
                )),
                index: ArrayD::from_shape_vec(IxDyn(&shape), best_i).expect("k"),
            }
        }
    }
}

fn zip_chunks<T: Element>(a: &Chunk<T>, b: &Chunk<T>, f: impl Fn(T, T) -> T) -> Chunk<T> {
    match (a, b) {
        (Chunk::Full { shape, value: x }, Chunk::Full { value: y, .. }) => Chunk::Full {
            shape: shape.clone(),
            value: f(*x, *y),
        },
        _ => {
            let (a, b) = (a.to_dense(), b.to_dense());
            Chunk::Dense(Zip::from(&*a).and(&*b).map_collect(|&x, &y| f(x, y)))
        }
    }
}

fn combine_value_blocks(kind: Reduction, a: &Block, b: &Block) -> Result<Block, String> {
    fn num<T: Number>(kind: Reduction, a: &Chunk<T>, b: &Chunk<T>) -> Chunk<T> {
        match kind {
            Reduction::Sum | Reduction::NanSum => zip_chunks(a, b, T::add),
            Reduction::Prod => zip_chunks(a, b, T::mul),
            Reduction::Min => zip_chunks(a, b, T::min),
            Reduction::Max => zip_chunks(a, b, T::max),
            _ => unreachable!("not a value reduction"),
        }
    }
    Ok(match (a, b) {
        (Block::F64(x), Block::F64(y)) => Block::F64(num(kind, x, y)),
        (Block::F32(x), Block::F32(y)) => Block::F32(num(kind, x, y)),
        (Block::I64(x), Block::I64(y)) => Block::I64(num(kind, x, y)),
        (Block::I32(x), Block::I32(y)) => Block::I32(num(kind, x, y)),
        (Block::U8(x), Block::U8(y)) => Block::U8(num(kind, x, y)),
        (Block::Bool(x), Block::Bool(y)) => match kind {
            Reduction::Any => Block::Bool(zip_chunks(x, y, |p, q| p || q)),
            Reduction::All => Block::Bool(zip_chunks(x, y, |p, q| p && q)),
            Reduction::Min => Block::Bool(zip_chunks(x, y, |p, q| p && q)),
            Reduction::Max => Block::Bool(zip_chunks(x, y, |p, q| p || q)),
            _ => return Err(format!("{} of booleans", kind.name())),
        },
        _ => return Err("combining partials of different dtypes".into()),
    })
}

fn better<T: Element>(kind: Reduction, x: T, y: T) -> bool {
    let (xn, yn) = (x.to_f64().is_nan(), y.to_f64().is_nan());
    if xn || yn {
        return yn && !xn;
    }
    if kind == Reduction::ArgMin {
        y < x
    } else {
        y > x
    }
}

fn combine_arg<T: Element>(
    kind: Reduction,
    (av, ai): (&Chunk<T>, &ArrayD<i64>),
    (bv, bi): (&Chunk<T>, &ArrayD<i64>),
) -> (Chunk<T>, ArrayD<i64>) {
    let (av, bv) = (av.to_dense(), bv.to_dense());
    let mut v: ArrayD<T> = av.into_owned();
    let mut i = ai.clone();
    Zip::from(&mut v)
        .and(&mut i)
        .and(&*bv)
        .and(bi)
        .for_each(|v, i, &y, &j| {
            if better(kind, *v, y) || (*v == y && j < *i) {
                *v = y;
                *i = j;
            }
        });
    (Chunk::Dense(v), i)
}

/// Elements per tile when a reduction evaluates an elementwise expression itself: small
/// enough to stay in cache, large enough that per-tile overhead does not show.
const TILE_ELEMENTS: usize = 1 << 16;

/// Reduces an elementwise expression over one output block without building the block:
/// the expression is evaluated a few rows at a time (axis 0 must be among the reduced axes)
/// and each tile's partial is combined into the block's.
pub(crate) fn reduce_expr_block(
    kind: Reduction,
    axes: &[usize],
    pos: &BlockPos,
    expr: &crate::expr::Expr,
    perms: &[Option<Vec<usize>>],
    inputs: &[&Block],
) -> Result<Partial, String> {
    let rows = pos.shape.first().copied().unwrap_or(1);
    let row_len: usize = pos.shape.iter().skip(1).product::<usize>().max(1);
    let step = (TILE_ELEMENTS / row_len).max(1);
    let mut acc: Option<Partial> = None;
    let mut start = 0;
    loop {
        let end = (start + step).min(rows);
        let window = crate::expr::Window {
            ndim: pos.shape.len(),
            rows,
            start,
            end,
        };
        let tile =
            crate::expr::evaluate_window(expr, inputs, perms, window).map_err(|e| e.to_string())?;
        let mut tile_pos = pos.clone();
        if let (Some(s), Some(o)) = (tile_pos.shape.first_mut(), tile_pos.offset.first_mut()) {
            *s = end - start;
            *o += start;
        }
        let part = reduce_block(kind, axes, &tile, &tile_pos);
        acc = Some(match acc {
            None => part,
            Some(a) => combine(kind, &[&a, &part])?,
        });
        start = end;
        if start >= rows {
            break;
        }
    }
    acc.ok_or_else(|| "an empty block".into())
}

/// Combines partials of one output block.
pub(crate) fn combine(kind: Reduction, parts: &[&Partial]) -> Result<Partial, String> {
    let mut it = parts.iter();
    let mut acc: Partial = (*it.next().ok_or("no partials to combine")?).clone();
    for p in it {
        acc = match (acc, *p) {
            (Partial::Value(a), Partial::Value(b)) => {
                Partial::Value(combine_value_blocks(kind, &a, b)?)
            }
            (Partial::Mean { sum, count }, Partial::Mean { sum: s2, count: c2 }) => Partial::Mean {
                sum: &sum + s2,
                count: &count + c2,
            },
            (
                Partial::Moments { n, mean, m2 },
                Partial::Moments {
                    n: n2,
                    mean: mean2,
                    m2: m22,
                },
            ) => {
                let mut n_out = n.clone();
                let mut mean_out = mean.clone();
                let mut m2_out = m2.clone();
                Zip::from(&mut n_out)
                    .and(&mut mean_out)
                    .and(&mut m2_out)
                    .and(n2)
                    .and(mean2)
                    .and(m22)
                    .for_each(|na, ma, qa, &nb, &mb, &qb| {
                        let n = *na + nb;
                        if n > 0.0 {
                            let delta = mb - *ma;
                            *qa += qb + delta * delta * *na * nb / n;
                            *ma += delta * nb / n;
                        }
                        *na = n;
                    });
                Partial::Moments {
                    n: n_out,
                    mean: mean_out,
                    m2: m2_out,
                }
            }
            (
                Partial::Arg { value, index },
                Partial::Arg {
                    value: v2,
                    index: i2,
                },
            ) => {
                let (value, index) = match (&value, v2) {
                    (Block::F64(a), Block::F64(b)) => {
                        let (v, i) = combine_arg(kind, (a, &index), (b, i2));
                        (Block::F64(v), i)
                    }
                    (Block::F32(a), Block::F32(b)) => {
                        let (v, i) = combine_arg(kind, (a, &index), (b, i2));
                        (Block::F32(v), i)
                    }
                    (Block::I64(a), Block::I64(b)) => {
                        let (v, i) = combine_arg(kind, (a, &index), (b, i2));
                        (Block::I64(v), i)
                    }
                    (Block::I32(a), Block::I32(b)) => {
                        let (v, i) = combine_arg(kind, (a, &index), (b, i2));
                        (Block::I32(v), i)
                    }
                    (Block::U8(a), Block::U8(b)) => {
                        let (v, i) = combine_arg(kind, (a, &index), (b, i2));
                        (Block::U8(v), i)
                    }
                    (Block::Bool(a), Block::Bool(b)) => {
                        let (v, i) = combine_arg(kind, (a, &index), (b, i2));
                        (Block::Bool(v), i)
                    }
                    _ => return Err("argmin/argmax partials of different dtypes".into()),
                };
                Partial::Arg { value, index }
            }
            _ => return Err("partials of different kinds".into()),
        };
    }
    Ok(acc)
}

fn squeeze<T: Clone>(a: ArrayD<T>, axes: &[usize], keepdims: bool) -> ArrayD<T> {
    if keepdims {
        return a;
    }
    let mut a = a;
    for &ax in axes.iter().rev() {
        a = a.index_axis_move(Axis(ax), 0);
    }
    a
}

fn squeeze_chunk<T: Element>(c: Chunk<T>, axes: &[usize], keepdims: bool) -> Chunk<T> {
    match c {
        Chunk::Full { shape, value } => Chunk::Full {
            shape: if keepdims {
                shape
            } else {
                shape
                    .into_iter()
                    .enumerate()
                    .filter(|(i, _)| !axes.contains(i))
                    .map(|(_, d)| d)
                    .collect()
            },
            value,
        },
        Chunk::Dense(a) => Chunk::Dense(squeeze(a, axes, keepdims)),
    }
}

/// Turns the combined partial into the output block (in `out` dtype).
pub(crate) fn finish(
    kind: Reduction,
    axes: &[usize],
    keepdims: bool,
    out: DType,
    p: Partial,
) -> Result<Block, String> {
    let float = |a: ArrayD<f64>| -> Block {
        let a = squeeze(a, axes, keepdims);
        match out {
            DType::F32 => Block::F32(Chunk::Dense(a.mapv(|x| x as f32))),
            _ => Block::F64(Chunk::Dense(a)),
        }
    };
    Ok(match (kind, p) {
        (_, Partial::Value(b)) => {
            crate::block::map_chunk!(b, c => squeeze_chunk(c, axes, keepdims))
        }
        (Reduction::Mean | Reduction::NanMean, Partial::Mean { sum, count }) => {
            float(Zip::from(&sum).and(&count).map_collect(|&s, &c| s / c))
        }
        (Reduction::Var { ddof } | Reduction::Std { ddof }, Partial::Moments { n, m2, .. }) => {
            let sqrt = matches!(kind, Reduction::Std { .. });
            float(Zip::from(&n).and(&m2).map_collect(|&n, &q| {
                let v = q / (n - ddof as f64);
                if sqrt {
                    v.sqrt()
                } else {
                    v
                }
            }))
        }
        (Reduction::ArgMin | Reduction::ArgMax, Partial::Arg { index, .. }) => {
            Block::I64(Chunk::Dense(squeeze(index, axes, keepdims)))
        }
        (k, _) => return Err(format!("a partial of the wrong kind for {}", k.name())),
    })
}
