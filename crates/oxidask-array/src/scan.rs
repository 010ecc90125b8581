//! Cumulative sums and top-k.
//!
//! `cumsum` sums each block locally, then carries the running total of the earlier blocks
//! along the axis into each block (a chain, as the data dictates). `topk` keeps each block's
//! k largest along the axis and merges them `split_every` at a time, never sorting the whole
//! array.

use std::cmp::Ordering;
use std::sync::Arc;

use ndarray::{ArrayD, Axis, IxDyn};
use oxidask_core::tokenize::Tokenizer;
use oxidask_core::{Arg, Key, Task, Value};

use crate::array::{block_key, Array, Layer, Node, Source};
use crate::block::{Block, Chunk};
use crate::chunks::Chunks;
use crate::element::{DType, Element, Number};
use crate::error::ArrayError;
use crate::expr::{BinaryOp, Expr};
use crate::indexing::GetItem;
use crate::reduction::normalize_axes;

fn cumsum_chunk<T: Element>(c: &Chunk<T>, axis: usize) -> Chunk<T::Sum> {
    let a = c.to_dense();
    let mut out: ArrayD<T::Sum> = a.mapv(|v| v.cast::<T::Sum>());
    for mut lane in out.lanes_mut(Axis(axis)) {
        let mut acc = <T::Sum as Number>::ZERO;
        for v in lane.iter_mut() {
            acc = <T::Sum as Number>::add(acc, *v);
            *v = acc;
        }
    }
    Chunk::Dense(out)
}

/// Cumulative sum along `axis` within one block (the kernel behind [`ops::cumsum_block`]).
///
/// [`ops::cumsum_block`]: crate::ops::cumsum_block
pub(crate) fn cumsum_block(axis: usize, block: &Block) -> Block {
    match block {
        Block::F64(c) => <f64 as Element>::Sum::wrap(cumsum_chunk(c, axis)),
        Block::F32(c) => <f32 as Element>::Sum::wrap(cumsum_chunk(c, axis)),
        Block::I64(c) => <i64 as Element>::Sum::wrap(cumsum_chunk(c, axis)),
        Block::I32(c) => <i32 as Element>::Sum::wrap(cumsum_chunk(c, axis)),
        Block::U8(c) => <u8 as Element>::Sum::wrap(cumsum_chunk(c, axis)),
        Block::Bool(c) => <bool as Element>::Sum::wrap(cumsum_chunk(c, axis)),
    }
}

fn order<T: Element>(a: &T, b: &T) -> Ordering {
    // Descending, NaN first (NumPy sorts NaN last, so it is the "largest").
    let (an, bn) = (a.to_f64().is_nan(), b.to_f64().is_nan());
    match (an, bn) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        _ => b.partial_cmp(a).unwrap_or(Ordering::Equal),
    }
}

fn topk_chunk<T: Element>(c: &Chunk<T>, k: i64, axis: usize) -> Chunk<T> {
    let a = c.to_dense();
    let len = a.shape()[axis];
    let keep = (k.unsigned_abs() as usize).min(len);
    let mut shape = a.shape().to_vec();
    shape[axis] = keep;
    let mut out = ArrayD::from_elem(IxDyn(&shape), T::default());
    for (lane, mut dst) in a
        .lanes(Axis(axis))
        .into_iter()
        .zip(out.lanes_mut(Axis(axis)))
    {
        let mut v: Vec<T> = lane.iter().copied().collect();
        if k > 0 {
            v.sort_by(order);
        } else {
            v.sort_by(|x, y| order(y, x));
        }
        for (d, s) in dst.iter_mut().zip(v) {
            *d = s;
        }
    }
    Chunk::Dense(out)
}

/// The `k` largest (or `-k` smallest) along `axis` of the blocks concatenated along it.
pub(crate) fn topk_blocks(k: i64, axis: usize, parts: &[&Block]) -> Result<Block, String> {
    fn go<T: Element>(k: i64, axis: usize, parts: &[&Block]) -> Result<Chunk<T>, String> {
        let dense: Vec<ArrayD<T>> = parts
            .iter()
            .map(|p| {
                T::unwrap_ref(p)
                    .map(|c| c.to_dense().into_owned())
                    .ok_or("topk parts of different dtypes")
            })
            .collect::<Result<_, _>>()?;
        let views: Vec<_> = dense.iter().map(|d| d.view()).collect();
        let joined = ndarray::concatenate(Axis(axis), &views).map_err(|e| e.to_string())?;
        Ok(topk_chunk(&Chunk::Dense(joined), k, axis))
    }
    let first = parts.first().ok_or("no parts")?;
    Ok(match first {
        Block::F64(_) => Block::F64(go(k, axis, parts)?),
        Block::F32(_) => Block::F32(go(k, axis, parts)?),
        Block::I64(_) => Block::I64(go(k, axis, parts)?),
        Block::I32(_) => Block::I32(go(k, axis, parts)?),
        Block::U8(_) => Block::U8(go(k, axis, parts)?),
        Block::Bool(_) => Block::Bool(go(k, axis, parts)?),
    })
}

fn token(op: &str, n: &Node, extra: &[i64]) -> oxidask_core::Token {
    let mut t = Tokenizer::new();
    t.write_str(op);
    t.write_token(n.token);
    for &e in extra {
        t.write_u64(e as u64);
    }
    t.finish()
}

fn add_task(a: Key, b: Key) -> Task {
    let expr = Expr::Binary(
        BinaryOp::Add,
        Box::new(Expr::Input(0)),
        Box::new(Expr::Input(1)),
    );
    let perms: Vec<Option<Vec<usize>>> = vec![None, None];
    Task::call(
        crate::ops::elemwise::op(),
        [
            Arg::Value(Value::new((expr, perms))),
            Arg::List(vec![Arg::Key(a), Arg::Key(b)]),
        ],
    )
}

fn cumsum_node(n: &Arc<Node>, axis: usize, out: DType) -> Arc<Node> {
    let tok = token("cumsum", n, &[axis as i64]);
    let grid = n.chunks.grid();
    let mut tasks = Vec::new();
    let mut outputs = Vec::with_capacity(n.chunks.nblocks());
    let axis_v = Value::new(axis);
    for idx in n.chunks.indices() {
        let local = block_key("cumsum-local", tok, &idx, &grid);
        tasks.push((
            local,
            Task::call(
                crate::ops::cumsum_block::op(),
                [Arg::Value(axis_v.clone()), Arg::Key(n.block(&idx))],
            ),
        ));
        let b = idx[axis];
        if b == 0 {
            outputs.push(local);
            continue;
        }
        // total of the previous block: its last slice along the axis, kept as length 1.
        let mut prev = idx.clone();
        prev[axis] = b - 1;
        let prev_local = block_key("cumsum-local", tok, &prev, &grid);
        let prev_shape = n.chunks.block_shape(&prev);
        let last = GetItem {
            ranges: prev_shape
                .iter()
                .enumerate()
                .map(|(a, &l)| {
                    if a == axis {
                        (l as isize - 1, l as isize, 1)
                    } else {
                        (0, l as isize, 1)
                    }
                })
                .collect(),
            drop: Vec::new(),
            new_axes: Vec::new(),
        };
        let total = block_key("cumsum-total", tok, &prev, &grid);
        tasks.push((
            total,
            Task::call(
                crate::ops::getitem::op(),
                [Arg::Value(Value::new(last)), Arg::Key(prev_local)],
            ),
        ));
        // carry_b = carry_{b-1} + total_{b-1}; carry_1 = total_0.
        let carry = block_key("cumsum-carry", tok, &idx, &grid);
        if b == 1 {
            tasks.push((carry, Task::alias(total)));
        } else {
            let prev_carry = block_key("cumsum-carry", tok, &prev, &grid);
            tasks.push((carry, add_task(prev_carry, total)));
        }
        let outk = block_key("cumsum", tok, &idx, &grid);
        tasks.push((outk, add_task(local, carry)));
        outputs.push(outk);
    }
    let layer = Arc::new(Layer {
        tasks,
        outputs,
        deps: vec![n.layer()],
    });
    Node::new(
        "cumsum",
        n.shape.clone(),
        n.chunks.clone(),
        out,
        tok,
        Source::Layer(layer),
    )
}

fn topk_node(
    n: &Arc<Node>,
    k: i64,
    axis: usize,
    split_every: usize,
) -> Result<Arc<Node>, ArrayError> {
    let len = n.shape[axis];
    let keep = k.unsigned_abs() as usize;
    if k == 0 || keep > len {
        return Err(ArrayError::Argument {
            op: "topk",
            detail: format!(
                "k = {k} must be non-zero and at most the axis length {len} (shape {:?})",
                n.shape
            ),
        });
    }
    let tok = token("topk", n, &[k, axis as i64, split_every as i64]);
    let mut grid = n.chunks.grid();
    let k_v = Value::new(k);
    let axis_v = Value::new(axis);
    let mut tasks = Vec::new();
    let mut out_chunks = n.chunks.0.clone();
    out_chunks[axis] = vec![keep];
    let out_chunks = Chunks(out_chunks);
    let out_grid = out_chunks.grid();
    let mut outputs = Vec::new();
    let along = grid[axis];
    grid[axis] = 1;
    for gidx in crate::chunks::block_indices(grid.clone()) {
        let mut level: Vec<Key> = (0..along)
            .map(|b| {
                let mut idx = gidx.clone();
                idx[axis] = b;
                let key = block_key("topk-partial", tok, &idx, &n.chunks.grid());
                tasks.push((
                    key,
                    Task::call(
                        crate::ops::topk::op(),
                        [
                            Arg::Value(k_v.clone()),
                            Arg::Value(axis_v.clone()),
                            Arg::List(vec![Arg::Key(n.block(&idx))]),
                        ],
                    ),
                ));
                key
            })
            .collect();
        let mut depth = 0u32;
        let final_key = block_key("topk", tok, &gidx, &out_grid);
        loop {
            depth += 1;
            let last = level.len() <= split_every;
            let next: Vec<Key> = level
                .chunks(split_every)
                .enumerate()
                .map(|(p, part)| {
                    let key = if last {
                        final_key
                    } else {
                        let mut t = Tokenizer::new();
                        t.write_token(tok);
                        t.write_u64(depth as u64);
                        t.write_data(&gidx);
                        Key::block("topk-combine", t.finish(), &[p as u32])
                    };
                    tasks.push((
                        key,
                        Task::call(
                            crate::ops::topk::op(),
                            [
                                Arg::Value(k_v.clone()),
                                Arg::Value(axis_v.clone()),
                                Arg::List(part.iter().map(|x| Arg::Key(*x)).collect()),
                            ],
                        ),
                    ));
                    key
                })
                .collect();
            level = next;
            if last {
                break;
            }
        }
        outputs.push(final_key);
    }
    let layer = Arc::new(Layer {
        tasks,
        outputs,
        deps: vec![n.layer()],
    });
    let shape = out_chunks.0.iter().map(|a| a.iter().sum()).collect();
    Ok(Node::new(
        "topk",
        shape,
        out_chunks,
        n.dtype,
        tok,
        Source::Layer(layer),
    ))
}

impl<T: Element> Array<T> {
    /// Cumulative sum along `axis`.
    pub fn cumsum(&self, axis: isize) -> Array<T::Sum> {
        self.then(|n| {
            let ax = normalize_axes(&[axis], &n.shape)?[0];
            Ok(cumsum_node(n, ax, <T::Sum as Element>::DTYPE))
        })
    }

    /// The `k` largest elements along `axis`, largest first (`k < 0`: the `-k` smallest,
    /// smallest first), without sorting the whole array.
    pub fn topk(&self, k: i64, axis: isize) -> Array<T> {
        self.then(|n| {
            let ax = normalize_axes(&[axis], &n.shape)?[0];
            topk_node(n, k, ax, crate::reduction::DEFAULT_SPLIT_EVERY)
        })
    }
}
