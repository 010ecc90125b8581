//! Reshaping and combining: transpose, swapaxes, squeeze, expand_dims, reshape, concatenate,
//! stack.
//!
//! Every one maps output blocks to input blocks one to one (or reuses input keys outright),
//! so none moves data between blocks; a reshape the chunk boundaries do not allow is an error
//! that says how to rechunk.

use std::sync::Arc;

use ndarray::IxDyn;
use oxidask_core::tokenize::Tokenizer;
use oxidask_core::{Arg, Key, Task, Token, Value};

use crate::array::{block_key, Array, Layer, Node, Source};
use crate::block::{Block, Chunk};
use crate::chunks::Chunks;
use crate::element::Element;
use crate::error::ArrayError;
use crate::reduction::normalize_axes;

/// A block reshaped or with permuted axes (the kernel behind
/// [`ops::reshape`](crate::ops::reshape)).
#[derive(Clone, Debug, PartialEq, oxidask_core::Data)]
#[data(crate = oxidask_core)]
pub enum Relayout {
    /// Permute axes.
    Transpose(Vec<usize>),
    /// Reshape (row-major).
    Reshape(Vec<usize>),
}

pub(crate) fn relayout_block(block: Block, how: &Relayout) -> Block {
    crate::block::map_chunk!(block, c => relayout_chunk(c, how))
}

fn relayout_chunk<T: Element>(c: Chunk<T>, how: &Relayout) -> Chunk<T> {
    match (c, how) {
        (Chunk::Full { shape, value }, Relayout::Transpose(p)) => Chunk::Full {
            shape: p.iter().map(|&a| shape[a]).collect(),
            value,
        },
        (Chunk::Full { value, .. }, Relayout::Reshape(s)) => Chunk::Full {
            shape: s.clone(),
            value,
        },
        // Owned: permuting axes only swaps strides, no copy.
        (Chunk::Dense(a), Relayout::Transpose(p)) => Chunk::Dense(a.permuted_axes(IxDyn(p))),
        (Chunk::Dense(a), Relayout::Reshape(s)) => Chunk::Dense(
            a.as_standard_layout()
                .into_owned()
                .into_shape_with_order(IxDyn(s))
                .expect("reshape keeps the number of elements"),
        ),
    }
}

/// A node whose block `i` is `how(i)` applied to input block `source(i)`.
fn blockwise_relayout(
    node: &Arc<Node>,
    name: &'static str,
    token: Token,
    shape: Vec<usize>,
    chunks: Chunks,
    map: impl Fn(&[usize]) -> (Vec<usize>, Relayout),
) -> Arc<Node> {
    let grid = chunks.grid();
    let mut tasks = Vec::new();
    let mut outputs = Vec::new();
    for idx in chunks.indices() {
        let (src, how) = map(&idx);
        let key = block_key(name, token, &idx, &grid);
        tasks.push((
            key,
            Task::call(
                crate::ops::relayout::op(),
                [Arg::Value(Value::new(how)), Arg::Key(node.block(&src))],
            ),
        ));
        outputs.push(key);
    }
    let layer = Arc::new(Layer {
        tasks,
        outputs,
        deps: vec![node.layer()],
    });
    Node::new(name, shape, chunks, node.dtype, token, Source::Layer(layer))
}

fn token_of(op: &str, node: &Node, extra: &[u64]) -> Token {
    let mut t = Tokenizer::new();
    t.write_str(op);
    t.write_token(node.token);
    for &e in extra {
        t.write_u64(e);
    }
    t.finish()
}

impl<T: Element> Array<T> {
    /// Axes reversed (`x.T`).
    pub fn t(&self) -> Array<T> {
        let nd = self.ndim();
        self.transpose(&(0..nd as isize).rev().collect::<Vec<_>>())
    }

    /// Axes permuted: output axis `i` is input axis `perm[i]`.
    pub fn transpose(&self, perm: &[isize]) -> Array<T> {
        let perm = perm.to_vec();
        self.then(|n| {
            let p = normalize_axes(&perm, &n.shape).and_then(|sorted| {
                if sorted.len() == n.shape.len() {
                    Ok(perm
                        .iter()
                        .map(|&a| {
                            if a < 0 {
                                (a + n.shape.len() as isize) as usize
                            } else {
                                a as usize
                            }
                        })
                        .collect::<Vec<usize>>())
                } else {
                    Err(ArrayError::Argument {
                        op: "transpose",
                        detail: format!(
                            "{perm:?} is not a permutation of the {} axes of {:?}",
                            n.shape.len(),
                            n.shape
                        ),
                    })
                }
            })?;
            if p.iter().enumerate().all(|(i, &a)| i == a) {
                return Ok(n.clone());
            }
            Ok(transpose_node(n, p))
        })
    }

    /// Two axes exchanged.
    pub fn swapaxes(&self, a: isize, b: isize) -> Array<T> {
        let nd = self.ndim() as isize;
        let norm = |x: isize| if x < 0 { x + nd } else { x };
        let (a, b) = (norm(a), norm(b));
        if a < 0 || a >= nd || b < 0 || b >= nd {
            return Array::error(ArrayError::AxisOutOfRange {
                axis: if a < 0 || a >= nd { a } else { b },
                ndim: nd as usize,
                shape: self.shape(),
            });
        }
        let mut perm: Vec<isize> = (0..nd).collect();
        perm.swap(a as usize, b as usize);
        self.transpose(&perm)
    }

    /// Axes of length 1 removed (all of them, or those given).
    pub fn squeeze(&self, axes: Option<&[isize]>) -> Array<T> {
        let shape = self.shape();
        let axes: Vec<usize> = match axes {
            None => (0..shape.len()).filter(|&a| shape[a] == 1).collect(),
            Some(a) => match normalize_axes(a, &shape) {
                Ok(v) => v,
                Err(e) => return Array::error(e),
            },
        };
        if let Some(&bad) = axes.iter().find(|&&a| shape[a] != 1) {
            return Array::error(ArrayError::Argument {
                op: "squeeze",
                detail: format!(
                    "axis {bad} of shape {shape:?} has length {}, not 1",
                    shape[bad]
                ),
            });
        }
        let new: Vec<usize> = (0..shape.len())
            .filter(|a| !axes.contains(a))
            .map(|a| shape[a])
            .collect();
        self.reshape(new)
    }

    /// A new axis of length 1 at `axis`.
    pub fn expand_dims(&self, axis: isize) -> Array<T> {
        let mut shape = self.shape();
        let nd = shape.len() as isize + 1;
        let a = if axis < 0 { axis + nd } else { axis };
        if a < 0 || a >= nd {
            return Array::error(ArrayError::AxisOutOfRange {
                axis,
                ndim: nd as usize,
                shape,
            });
        }
        shape.insert(a as usize, 1);
        self.reshape(shape)
    }

    /// The same elements in another shape (row-major), block by block. Merging axes needs the
    /// inner ones in one block; splitting one needs its blocks to be whole multiples of the
    /// new inner axes; otherwise the error says which axes to rechunk.
    pub fn reshape(&self, shape: impl crate::chunks::IntoShape) -> Array<T> {
        let to = shape.into_shape();
        self.then(|n| reshape_node(n, to))
    }

    /// Every element in row-major order, as a 1-d array. Axes after the first are
    /// rechunked into single blocks first if needed (unlike [`Array::reshape`], which asks).
    pub fn ravel(&self) -> Array<T> {
        let mut spec: Vec<i64> = vec![-1; self.ndim()];
        if let Some(first) = self.chunk_lengths().first() {
            if let Some(&c) = first.iter().max() {
                spec[0] = c.max(1) as i64;
            }
        }
        self.rechunk(spec).reshape(vec![self.size()])
    }
}

/// `n` with axes permuted: lazy, so an elementwise operation can read it in place.
pub(crate) fn transpose_node(n: &Arc<Node>, perm: Vec<usize>) -> Arc<Node> {
    // A transpose of a transpose is one transpose.
    if let Source::Transpose { input, perm: inner } = &n.source {
        let composed: Vec<usize> = perm.iter().map(|&a| inner[a]).collect();
        if composed.iter().enumerate().all(|(i, &a)| i == a) {
            return input.clone();
        }
        return transpose_node(input, composed);
    }
    let shape: Vec<usize> = perm.iter().map(|&a| n.shape[a]).collect();
    let chunks = Chunks(perm.iter().map(|&a| n.chunks.0[a].clone()).collect());
    let token = token_of(
        "transpose",
        n,
        &perm.iter().map(|&a| a as u64).collect::<Vec<_>>(),
    );
    Node::new(
        "transpose",
        shape,
        chunks,
        n.dtype,
        token,
        Source::Transpose {
            input: n.clone(),
            perm,
        },
    )
}

/// The relayout tasks of a transpose node (when its blocks are needed as such).
pub(crate) fn transpose_layer(node: &Node, input: &Arc<Node>, perm: &[usize]) -> Layer {
    let grid = node.chunks.grid();
    let mut tasks = Vec::new();
    let mut outputs = Vec::new();
    for idx in node.chunks.indices() {
        let mut src = vec![0; idx.len()];
        for (i, &a) in perm.iter().enumerate() {
            src[a] = idx[i];
        }
        let key = block_key(node.name, node.token, &idx, &grid);
        tasks.push((
            key,
            Task::call(
                crate::ops::relayout::op(),
                [
                    Arg::Value(Value::new(Relayout::Transpose(perm.to_vec()))),
                    Arg::Key(input.block(&src)),
                ],
            ),
        ));
        outputs.push(key);
    }
    Layer {
        tasks,
        outputs,
        deps: vec![input.layer()],
    }
}

fn reshape_node(n: &Arc<Node>, to: Vec<usize>) -> Result<Arc<Node>, ArrayError> {
    let from = &n.shape;
    if from.iter().product::<usize>() != to.iter().product::<usize>() {
        return Err(ArrayError::ReshapeSize {
            from: from.clone(),
            to,
        });
    }
    if *from == to {
        return Ok(n.clone());
    }
    if from.iter().product::<usize>() == 0 || n.chunks.nblocks() == 1 {
        // Empty or single-block: one task.
        let single =
            crate::rechunk::rechunk_node(n, Chunks(from.iter().map(|&d| vec![d]).collect()))?;
        let chunks = Chunks(to.iter().map(|&d| vec![d]).collect());
        let token = token_of(
            "reshape",
            n,
            &to.iter().map(|&d| d as u64).collect::<Vec<_>>(),
        );
        let (nd, shape) = (from.len(), to.clone());
        return Ok(blockwise_relayout(
            &single,
            "reshape",
            token,
            to,
            chunks,
            move |_| (vec![0; nd], Relayout::Reshape(shape.clone())),
        ));
    }
    let err = || ArrayError::ReshapeChunks {
        from: from.clone(),
        chunks: n.chunks.0.clone(),
        to: to.clone(),
    };
    // Drop length-1 axes on both sides; they carry no data and re-appear as single blocks.
    let fa: Vec<usize> = (0..from.len()).filter(|&a| from[a] != 1).collect();
    let ta: Vec<usize> = (0..to.len()).filter(|&a| to[a] != 1).collect();
    // Group axes with equal products, left to right.
    let mut groups: Vec<(Vec<usize>, Vec<usize>)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < fa.len() || j < ta.len() {
        let (mut gi, mut gj) = (vec![], vec![]);
        let (mut pi, mut pj) = (1usize, 1usize);
        loop {
            if pi <= pj && i < fa.len() {
                pi *= from[fa[i]];
                gi.push(fa[i]);
                i += 1;
            } else if j < ta.len() {
                pj *= to[ta[j]];
                gj.push(ta[j]);
                j += 1;
            } else {
                break;
            }
            if pi == pj && !gi.is_empty() && !gj.is_empty() {
                break;
            }
        }
        if pi != pj {
            return Err(err());
        }
        groups.push((gi, gj));
    }
    // Output chunks per output axis; the input block grid must map one to one.
    let mut out_chunks: Vec<Vec<usize>> = to.iter().map(|_| vec![1]).collect();
    for (gi, gj) in &groups {
        // Input: all axes but the first single-block; output: all but the first single-block.
        if gi[1..].iter().any(|&a| n.chunks.0[a].len() != 1) {
            return Err(err());
        }
        let inner_in: usize = gi[1..].iter().map(|&a| from[a]).product();
        let inner_out: usize = gj[1..].iter().map(|&a| to[a]).product();
        let first: Vec<usize> = n.chunks.0[gi[0]].iter().map(|c| c * inner_in).collect();
        if first.iter().any(|c| c % inner_out != 0) {
            return Err(err());
        }
        out_chunks[gj[0]] = first.iter().map(|c| c / inner_out).collect();
        for &a in &gj[1..] {
            out_chunks[a] = vec![to[a]];
        }
    }
    let chunks = Chunks(out_chunks);
    // Output block index -> input block index: the first axis of each group carries it.
    let first_out: Vec<(usize, usize)> = groups.iter().map(|(gi, gj)| (gj[0], gi[0])).collect();
    let token = token_of(
        "reshape",
        n,
        &to.iter().map(|&d| d as u64).collect::<Vec<_>>(),
    );
    let nd_in = from.len();
    Ok(blockwise_relayout(
        n,
        "reshape",
        token,
        to,
        chunks.clone(),
        move |idx| {
            let mut src = vec![0; nd_in];
            for &(o, i) in &first_out {
                src[i] = idx[o];
            }
            (src, Relayout::Reshape(chunks.block_shape(idx)))
        },
    ))
}

fn same_except(nodes: &[Arc<Node>], axis: usize, op: &'static str) -> Result<(), ArrayError> {
    let first = &nodes[0].shape;
    for n in &nodes[1..] {
        let ok = n.shape.len() == first.len()
            && n.shape
                .iter()
                .zip(first)
                .enumerate()
                .all(|(a, (x, y))| a == axis || x == y);
        if !ok {
            return Err(ArrayError::Shapes {
                op,
                detail: format!(
                    "all arrays must have the same shape except along axis {axis}: {:?} and {:?}",
                    first, n.shape
                ),
            });
        }
    }
    Ok(())
}

fn collect_nodes<T: Element>(
    arrays: &[Array<T>],
    op: &'static str,
) -> Result<Vec<Arc<Node>>, ArrayError> {
    if arrays.is_empty() {
        return Err(ArrayError::Argument {
            op,
            detail: "needs at least one array".into(),
        });
    }
    arrays.iter().map(|a| a.node().cloned()).collect()
}

/// Arrays joined along an existing axis. Their blocks become the result's blocks (the other
/// axes are rechunked to a common chunking first if they differ).
pub fn concatenate<T: Element>(arrays: &[Array<T>], axis: isize) -> Array<T> {
    let go = || -> Result<Arc<Node>, ArrayError> {
        let nodes = collect_nodes(arrays, "concatenate")?;
        let nd = nodes[0].shape.len();
        let ax = normalize_axes(&[axis], &nodes[0].shape)?[0];
        same_except(&nodes, ax, "concatenate")?;
        // Unify chunks on the other axes to the first array's.
        let mut aligned = Vec::with_capacity(nodes.len());
        for n in &nodes {
            let want: Vec<Vec<usize>> = (0..nd)
                .map(|a| {
                    if a == ax {
                        n.chunks.0[a].clone()
                    } else {
                        nodes[0].chunks.0[a].clone()
                    }
                })
                .collect();
            aligned.push(crate::rechunk::rechunk_node(n, Chunks(want))?);
        }
        let mut shape = nodes[0].shape.clone();
        shape[ax] = aligned.iter().map(|n| n.shape[ax]).sum();
        let mut chunks = aligned[0].chunks.0.clone();
        chunks[ax] = aligned
            .iter()
            .flat_map(|n| n.chunks.0[ax].iter().copied())
            .filter(|&c| c > 0)
            .collect();
        if chunks[ax].is_empty() {
            chunks[ax] = vec![0];
        }
        let chunks = Chunks(chunks);
        let mut t = Tokenizer::new();
        t.write_str("concatenate");
        t.write_u64(ax as u64);
        for n in &aligned {
            t.write_token(n.token);
        }
        let token = t.finish();
        // Output block (.., k, ..) is block (.., k', ..) of the array holding it.
        let mut owners: Vec<(usize, usize)> = Vec::new(); // (array, block along axis)
        for (i, n) in aligned.iter().enumerate() {
            for (b, &c) in n.chunks.0[ax].iter().enumerate() {
                if c > 0 {
                    owners.push((i, b));
                }
            }
        }
        let mut outputs: Vec<Key> = Vec::with_capacity(chunks.nblocks());
        for idx in chunks.indices() {
            if owners.is_empty() {
                let mut src = idx.clone();
                src[ax] = 0;
                outputs.push(aligned[0].block(&src));
                continue;
            }
            let (i, b) = owners[idx[ax]];
            let mut src = idx.clone();
            src[ax] = b;
            outputs.push(aligned[i].block(&src));
        }
        let layer = Arc::new(Layer {
            tasks: Vec::new(),
            outputs,
            deps: aligned.iter().map(|n| n.layer()).collect(),
        });
        Ok(Node::new(
            "concatenate",
            shape,
            chunks,
            T::DTYPE,
            token,
            Source::Layer(layer),
        ))
    };
    Array::from_result(go())
}

/// Arrays of equal shape stacked along a new axis.
pub fn stack<T: Element>(arrays: &[Array<T>], axis: isize) -> Array<T> {
    let nd = arrays.first().map(|a| a.ndim()).unwrap_or(0) as isize + 1;
    let ax = if axis < 0 { axis + nd } else { axis };
    let expanded: Vec<Array<T>> = arrays.iter().map(|a| a.expand_dims(ax)).collect();
    if let Some(first) = arrays.first() {
        for a in arrays {
            if a.shape() != first.shape() && a.check().is_ok() && first.check().is_ok() {
                return Array::error(ArrayError::Shapes {
                    op: "stack",
                    detail: format!(
                        "all arrays must have the same shape: {:?} and {:?}",
                        first.shape(),
                        a.shape()
                    ),
                });
            }
        }
    }
    concatenate(&expanded, ax)
}
