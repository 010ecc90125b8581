//! Matrix products: `matmul`, `dot`, `tensordot` (one contracted axis pair), `outer`.
//!
//! Output block (i, j) of `a @ b` is the sum over the shared axis's blocks `l` of
//! `a[i, l] @ b[l, j]`: one task when there are few `l` blocks, products and a tree sum
//! otherwise. Each block product runs ndarray's `dot` (matrixmultiply for floats).

use std::sync::Arc;

use ndarray::Ix2;
use oxidask_core::tokenize::Tokenizer;
use oxidask_core::{Arg, Key, Task};

use crate::array::{block_key, Array, Layer, Node, Source};
use crate::block::{Block, Chunk};
use crate::chunks::Chunks;
use crate::element::Number;
use crate::error::ArrayError;

/// Blocks along the contracted axis summed in one task.
const FUSE_UP_TO: usize = 8;

fn product<T: Number + ndarray::LinalgScalar>(
    pairs: &[(&Chunk<T>, &Chunk<T>)],
) -> Result<Chunk<T>, String> {
    let (m, n) = (pairs[0].0.shape()[0], pairs[0].1.shape()[1]);
    // All-constant operands: every element is the same sum.
    if pairs
        .iter()
        .all(|(a, b)| matches!((a, b), (Chunk::Full { .. }, Chunk::Full { .. })))
    {
        let mut v = T::ZERO;
        for (a, b) in pairs {
            if let (Chunk::Full { value: x, shape }, Chunk::Full { value: y, .. }) = (a, b) {
                let k = shape[1];
                for _ in 0..k {
                    v = <T as Number>::add(v, <T as Number>::mul(*x, *y));
                }
            }
        }
        return Ok(Chunk::Full {
            shape: vec![m, n],
            value: v,
        });
    }
    let mut out = ndarray::Array2::<T>::zeros((m, n));
    for (a, b) in pairs {
        if a.shape()[1] != b.shape()[0] {
            return Err(format!(
                "block shapes {:?} and {:?} do not multiply",
                a.shape(),
                b.shape()
            ));
        }
        let a = a.to_dense();
        let b = b.to_dense();
        let a2 = a
            .view()
            .into_dimensionality::<Ix2>()
            .map_err(|e| e.to_string())?;
        let b2 = b
            .view()
            .into_dimensionality::<Ix2>()
            .map_err(|e| e.to_string())?;
        ndarray::linalg::general_mat_mul(T::ONE, &a2, &b2, T::ONE, &mut out);
    }
    Ok(Chunk::Dense(out.into_dyn()))
}

/// Sum over pairs of `a @ b` (the kernel behind [`ops::matmul_blocks`](crate::ops::matmul_blocks)).
pub(crate) fn matmul_blocks(a: &[&Block], b: &[&Block]) -> Result<Block, String> {
    if a.len() != b.len() || a.is_empty() {
        return Err(format!("{} left and {} right blocks", a.len(), b.len()));
    }
    macro_rules! go {
        ($variant:ident) => {{
            let pairs: Vec<_> = a
                .iter()
                .zip(b)
                .map(|(x, y)| match (x, y) {
                    (Block::$variant(x), Block::$variant(y)) => Ok((x, y)),
                    _ => Err("blocks of different dtypes".to_string()),
                })
                .collect::<Result<_, _>>()?;
            Block::$variant(product(&pairs)?)
        }};
    }
    Ok(match a[0] {
        Block::F64(_) => go!(F64),
        Block::F32(_) => go!(F32),
        Block::I64(_) => go!(I64),
        Block::I32(_) => go!(I32),
        Block::U8(_) => go!(U8),
        Block::Bool(_) => return Err("matmul does not apply to bool".into()),
    })
}

/// Elementwise sum of blocks (tree steps of a long contraction).
pub(crate) fn add_blocks(parts: &[&Block]) -> Result<Block, String> {
    let expr = (1..parts.len()).fold(crate::expr::Expr::Input(0), |acc, i| {
        crate::expr::Expr::Binary(
            crate::expr::BinaryOp::Add,
            Box::new(acc),
            Box::new(crate::expr::Expr::Input(i as u32)),
        )
    });
    crate::expr::evaluate(&expr, parts).map_err(|e| e.to_string())
}

fn matmul_node(a: &Arc<Node>, b: &Arc<Node>) -> Result<Arc<Node>, ArrayError> {
    if a.shape.len() != 2 || b.shape.len() != 2 || a.shape[1] != b.shape[0] {
        return Err(ArrayError::Shapes {
            op: "matmul",
            detail: format!(
                "shapes {:?} and {:?} are not aligned (needs (m, k) @ (k, n))",
                a.shape, b.shape
            ),
        });
    }
    if a.dtype == crate::element::DType::Bool {
        return Err(ArrayError::DType {
            op: "matmul",
            dtype: a.dtype,
        });
    }
    // Common chunking of the contracted axis.
    let kchunks = {
        let mut cuts: Vec<usize> = Vec::new();
        for l in [&a.chunks.0[1], &b.chunks.0[0]] {
            let mut at = 0;
            for &c in l {
                at += c;
                cuts.push(at);
            }
        }
        cuts.sort_unstable();
        cuts.dedup();
        let mut prev = 0;
        let mut out = Vec::new();
        for c in cuts {
            if c > prev {
                out.push(c - prev);
                prev = c;
            }
        }
        if out.is_empty() {
            vec![0]
        } else {
            out
        }
    };
    let a = crate::rechunk::rechunk_node(a, Chunks(vec![a.chunks.0[0].clone(), kchunks.clone()]))?;
    let b = crate::rechunk::rechunk_node(b, Chunks(vec![kchunks.clone(), b.chunks.0[1].clone()]))?;
    let mut t = Tokenizer::new();
    t.write_str("matmul");
    t.write_token(a.token);
    t.write_token(b.token);
    let token = t.finish();
    let chunks = Chunks(vec![a.chunks.0[0].clone(), b.chunks.0[1].clone()]);
    let grid = chunks.grid();
    let nk = kchunks.len();
    let mut tasks: Vec<(Key, Task)> = Vec::new();
    let mut outputs = Vec::new();
    for idx in chunks.indices() {
        let (i, j) = (idx[0], idx[1]);
        let key = block_key("matmul", token, &idx, &grid);
        let lefts = |ls: std::ops::Range<usize>| {
            Arg::List(ls.map(|l| Arg::Key(a.block(&[i, l]))).collect())
        };
        let rights = |ls: std::ops::Range<usize>| {
            Arg::List(ls.map(|l| Arg::Key(b.block(&[l, j]))).collect())
        };
        if nk <= FUSE_UP_TO {
            tasks.push((
                key,
                Task::call(
                    crate::ops::matmul_blocks::op(),
                    [lefts(0..nk), rights(0..nk)],
                ),
            ));
        } else {
            let mut level: Vec<Key> = (0..nk)
                .step_by(FUSE_UP_TO)
                .map(|s| {
                    let e = (s + FUSE_UP_TO).min(nk);
                    let k = Key::block("matmul-partial", token, &[i as u32, j as u32, s as u32]);
                    tasks.push((
                        k,
                        Task::call(crate::ops::matmul_blocks::op(), [lefts(s..e), rights(s..e)]),
                    ));
                    k
                })
                .collect();
            let mut depth = 0u32;
            while level.len() > 1 {
                depth += 1;
                level = level
                    .chunks(FUSE_UP_TO)
                    .enumerate()
                    .map(|(p, part)| {
                        let k = if level.len() <= FUSE_UP_TO {
                            key
                        } else {
                            Key::block("matmul-sum", token, &[i as u32, j as u32, depth, p as u32])
                        };
                        tasks.push((
                            k,
                            Task::call(
                                crate::ops::add_blocks::op(),
                                [Arg::List(part.iter().map(|x| Arg::Key(*x)).collect())],
                            ),
                        ));
                        k
                    })
                    .collect();
            }
        }
        outputs.push(key);
    }
    let layer = Arc::new(Layer {
        tasks,
        outputs,
        deps: vec![a.layer(), b.layer()],
    });
    Ok(Node::new(
        "matmul",
        vec![a.shape[0], b.shape[1]],
        chunks,
        a.dtype,
        token,
        Source::Layer(layer),
    ))
}

/// Matrix product of 2-d arrays (`a @ b`).
pub fn matmul<T: Number>(a: &Array<T>, b: &Array<T>) -> Array<T> {
    match (a.node(), b.node()) {
        (Ok(x), Ok(y)) => Array::from_result(matmul_node(x, y)),
        (Err(e), _) | (_, Err(e)) => Array::error(e),
    }
}

/// NumPy's `dot` for 1-d and 2-d arrays: inner product, matrix-vector or matrix product.
pub fn dot<T: Number>(a: &Array<T>, b: &Array<T>) -> Array<T> {
    match (a.ndim(), b.ndim()) {
        (1, 1) => (a * b)
            .sum_with(crate::reduction::Reduce::all())
            .astype::<T>(),
        (2, 1) => matmul(a, &b.expand_dims(1)).squeeze(Some(&[1])),
        (1, 2) => matmul(&a.expand_dims(0), b).squeeze(Some(&[0])),
        (2, 2) => matmul(a, b),
        (x, y) => Array::error(ArrayError::Shapes {
            op: "dot",
            detail: format!(
                "supports 1-d and 2-d operands, got {x}-d {:?} and {y}-d {:?}",
                a.shape(),
                b.shape()
            ),
        }),
    }
}

/// Contraction of axis `axes.0` of `a` with axis `axes.1` of `b`, for 2-d arrays.
pub fn tensordot<T: Number>(a: &Array<T>, b: &Array<T>, axes: (isize, isize)) -> Array<T> {
    if a.ndim() != 2 || b.ndim() != 2 {
        return Array::error(ArrayError::Shapes {
            op: "tensordot",
            detail: format!(
                "supports 2-d operands, got {:?} and {:?}",
                a.shape(),
                b.shape()
            ),
        });
    }
    let norm = |x: isize| if x < 0 { x + 2 } else { x };
    let (ca, cb) = (norm(axes.0), norm(axes.1));
    if !(0..2).contains(&ca) || !(0..2).contains(&cb) {
        return Array::error(ArrayError::AxisOutOfRange {
            axis: if (0..2).contains(&ca) { axes.1 } else { axes.0 },
            ndim: 2,
            shape: if (0..2).contains(&ca) {
                b.shape()
            } else {
                a.shape()
            },
        });
    }
    let a2 = if ca == 1 { a.clone() } else { a.t() };
    let b2 = if cb == 0 { b.clone() } else { b.t() };
    matmul(&a2, &b2)
}

/// Outer product of two 1-d arrays.
pub fn outer<T: Number>(a: &Array<T>, b: &Array<T>) -> Array<T> {
    &a.ravel().expand_dims(1) * &b.ravel().expand_dims(0)
}

impl<T: Number> Array<T> {
    /// Matrix product (`self @ other`).
    pub fn matmul(&self, other: &Array<T>) -> Array<T> {
        matmul(self, other)
    }

    /// NumPy's `dot`.
    pub fn dot(&self, other: &Array<T>) -> Array<T> {
        dot(self, other)
    }
}
