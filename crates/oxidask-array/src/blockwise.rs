//! User functions over blocks: `map_blocks`, `blockwise` and `map_overlap`.
//!
//! A registered function (`#[oxidask::task] fn f(b: ArrayD<f64>) -> ArrayD<f64>`) is named
//! in the task and looked up on whichever worker runs it; a closure works on the local
//! schedulers. `map_overlap` hands each block to the function with `depth` elements of its
//! neighbours on every side (or boundary values at the array's edges) and trims the result.

use std::sync::Arc;

use ndarray::{ArrayD, IxDyn};
use oxidask_core::op::{Args, Input, OpDef, TaskFailure};
use oxidask_core::task::LocalOp;
use oxidask_core::tokenize::Tokenizer;
use oxidask_core::{Arg, Task, Value};

use crate::array::{block_key, Array, Layer, Node, Source};
use crate::block::{place, Block, Chunk};
use crate::chunks::{Chunks, IntoChunks};
use crate::creation::BlockPos;
use crate::element::{DType, Element};
use crate::error::ArrayError;

/// What [`ops::apply`](crate::ops::apply) calls: a registered function by name.
#[derive(Clone, Debug, PartialEq, oxidask_core::Data)]
#[data(crate = oxidask_core)]
pub struct ApplySpec {
    /// The registered operation's name.
    pub op: String,
    /// The element type of the inputs.
    pub input: DType,
    /// The element type the function returns.
    pub output: DType,
    /// Whether the function takes the block's position as a last argument.
    pub with_pos: bool,
}

/// A block as a `Value` holding `ArrayD<T>` of its dtype (moved when owned).
fn block_value(b: Block) -> Value {
    match b {
        Block::F64(c) => Value::new(c.into_dense()),
        Block::F32(c) => Value::new(c.into_dense()),
        Block::I64(c) => Value::new(c.into_dense()),
        Block::I32(c) => Value::new(c.into_dense()),
        Block::U8(c) => Value::new(c.into_dense()),
        Block::Bool(c) => Value::new(c.into_dense()),
    }
}

/// A function's result back into a block.
fn value_block(v: Value, dtype: DType) -> Result<Block, TaskFailure> {
    fn typed<T: Element>(v: Value) -> Result<Block, TaskFailure> {
        Ok(T::wrap(Chunk::Dense(v.take::<ArrayD<T>>()?)))
    }
    match dtype {
        DType::F64 => typed::<f64>(v),
        DType::F32 => typed::<f32>(v),
        DType::I64 => typed::<i64>(v),
        DType::I32 => typed::<i32>(v),
        DType::U8 => typed::<u8>(v),
        DType::Bool => typed::<bool>(v),
    }
}

fn check_shape(b: &Block, want: &[usize]) -> Result<(), TaskFailure> {
    if b.shape() == want {
        Ok(())
    } else {
        Err(TaskFailure::msg(format!(
            "the function returned a block of shape {:?} where {:?} was declared; pass the output chunks if it changes block shapes",
            b.shape(),
            want
        )))
    }
}

/// Runs a registered function on blocks (the kernel behind [`ops::apply`](crate::ops::apply)).
pub(crate) fn apply_registered(
    spec: &ApplySpec,
    pos: &BlockPos,
    blocks: Vec<Block>,
) -> Result<Block, TaskFailure> {
    let op = oxidask_core::op::lookup(&spec.op).ok_or_else(|| {
        TaskFailure::unavailable(format!(
            "operation `{}` is not registered in this binary; run workers built from the program that defines it",
            spec.op
        ))
    })?;
    let mut inputs: Vec<Input> = blocks
        .into_iter()
        .map(|b| Input::Value(block_value(b)))
        .collect();
    if spec.with_pos {
        inputs.push(Input::Value(Value::new(pos.clone())));
    }
    let out = op.call(&mut Args::new(inputs))?;
    let block = value_block(out, spec.output)?;
    check_shape(&block, &pos.shape)?;
    Ok(block)
}

fn block_pos(chunks: &Chunks, shape: &[usize], idx: &[usize]) -> BlockPos {
    BlockPos {
        shape: chunks.block_shape(idx),
        offset: chunks.block_offset(idx),
        total: shape.to_vec(),
    }
}

/// One task per output block over aligned input blocks.
fn blockwise_node(
    name: &'static str,
    inputs: &[Arc<Node>],
    out_dtype: DType,
    out_chunks: Chunks,
    token: oxidask_core::Token,
    task: impl Fn(&BlockPos, Vec<Arg>) -> Task,
) -> Arc<Node> {
    let shape: Vec<usize> = out_chunks.0.iter().map(|a| a.iter().sum()).collect();
    let grid = out_chunks.grid();
    let mut tasks = Vec::with_capacity(out_chunks.nblocks());
    let mut outputs = Vec::with_capacity(out_chunks.nblocks());
    for idx in out_chunks.indices() {
        let args: Vec<Arg> = inputs.iter().map(|n| Arg::Key(n.block(&idx))).collect();
        let key = block_key(name, token, &idx, &grid);
        tasks.push((key, task(&block_pos(&out_chunks, &shape, &idx), args)));
        outputs.push(key);
    }
    let layer = Arc::new(Layer {
        tasks,
        outputs,
        deps: inputs.iter().map(|n| n.layer()).collect(),
    });
    Node::new(
        name,
        shape,
        out_chunks,
        out_dtype,
        token,
        Source::Layer(layer),
    )
}

fn aligned_inputs<T: Element>(
    arrays: &[&Array<T>],
    op: &'static str,
) -> Result<Vec<Arc<Node>>, ArrayError> {
    let nodes: Vec<Arc<Node>> = arrays
        .iter()
        .map(|a| a.node().cloned())
        .collect::<Result<_, _>>()?;
    let first = nodes.first().ok_or(ArrayError::Argument {
        op,
        detail: "needs at least one array".into(),
    })?;
    nodes
        .iter()
        .map(|n| {
            if n.shape != first.shape {
                Err(ArrayError::Shapes {
                    op,
                    detail: format!(
                        "inputs must have one shape, got {:?} and {:?}",
                        first.shape, n.shape
                    ),
                })
            } else {
                crate::rechunk::rechunk_node(n, first.chunks.clone())
            }
        })
        .collect()
}

fn out_chunks_for(
    first: &Node,
    chunks: Option<crate::chunks::ChunkSpec>,
    dtype: DType,
) -> Result<Chunks, ArrayError> {
    match chunks {
        None => Ok(first.chunks.clone()),
        Some(crate::chunks::ChunkSpec::Explicit(c)) => {
            if c.iter().map(Vec::len).collect::<Vec<_>>() != first.chunks.grid() {
                return Err(ArrayError::Shapes {
                    op: "map_blocks",
                    detail: format!(
                        "output chunks {c:?} must have the input's block grid {:?}",
                        first.chunks.grid()
                    ),
                });
            }
            Ok(Chunks(c))
        }
        Some(other) => {
            let _ = dtype;
            Err(ArrayError::Argument {
                op: "map_blocks",
                detail: format!(
                    "output chunks must be explicit block lengths per axis, got {other:?}"
                ),
            })
        }
    }
}

fn registered_token(
    op: &OpDef,
    nodes: &[Arc<Node>],
    chunks: &Chunks,
    extra: &str,
) -> oxidask_core::Token {
    let mut t = Tokenizer::new();
    t.write_str("map_blocks");
    t.write_str(op.name());
    t.write_str(op.signature());
    t.write_str(extra);
    for n in nodes {
        t.write_token(n.token);
    }
    t.write_data(chunks);
    t.finish()
}

/// A registered function of one block per input, over arrays of one shape (their blocks
/// aligned): Dask's `blockwise` for elementwise-aligned inputs.
///
/// The function takes one `ArrayD<T>` per input, optionally then a [`BlockPos`], and returns
/// an `ArrayD<U>` of the block's shape (or of `chunks`, when given).
pub fn blockwise<T: Element, U: Element>(
    op: &'static OpDef,
    inputs: &[&Array<T>],
    chunks: Option<Vec<Vec<usize>>>,
) -> Array<U> {
    let go = || -> Result<Arc<Node>, ArrayError> {
        let nodes = aligned_inputs(inputs, "blockwise")?;
        let with_pos = match op.params().len() {
            n if n == nodes.len() => false,
            n if n == nodes.len() + 1 => true,
            n => {
                return Err(ArrayError::Argument {
                    op: "blockwise",
                    detail: format!(
                        "`{}` takes {n} arguments; it needs one per input array ({}), optionally then the block position",
                        op.name(),
                        nodes.len()
                    ),
                })
            }
        };
        let out_chunks = out_chunks_for(
            &nodes[0],
            chunks.map(crate::chunks::ChunkSpec::Explicit),
            U::DTYPE,
        )?;
        let spec = Value::new(ApplySpec {
            op: op.name().to_owned(),
            input: T::DTYPE,
            output: U::DTYPE,
            with_pos,
        });
        let token = registered_token(op, &nodes, &out_chunks, "");
        Ok(blockwise_node(
            op.short_name(),
            &nodes,
            U::DTYPE,
            out_chunks,
            token,
            |pos, args| {
                Task::call(
                    crate::ops::apply::op(),
                    [
                        Arg::Value(spec.clone()),
                        Arg::Value(Value::new(pos.clone())),
                        Arg::List(args),
                    ],
                )
            },
        ))
    };
    Array::from_result(go())
}

impl<T: Element> Array<T> {
    /// A registered function applied to every block (`fn(ArrayD<T>) -> ArrayD<U>`, or with a
    /// [`BlockPos`] second argument). Blocks keep their shapes.
    pub fn map_blocks<U: Element>(&self, op: &'static OpDef) -> Array<U> {
        blockwise(op, &[self], None)
    }

    /// Like [`Array::map_blocks`] for functions that change block shapes: `chunks` gives the
    /// output's block lengths per axis (same block grid).
    pub fn map_blocks_to<U: Element>(
        &self,
        op: &'static OpDef,
        chunks: impl IntoChunks,
    ) -> Array<U> {
        match chunks.into_spec() {
            crate::chunks::ChunkSpec::Explicit(c) => blockwise(op, &[self], Some(c)),
            other => Array::error(ArrayError::Argument {
                op: "map_blocks_to",
                detail: format!(
                    "output chunks must be explicit block lengths per axis, got {other:?}"
                ),
            }),
        }
    }

    /// A closure applied to every block, on the local schedulers (it cannot be sent to other
    /// processes; register a function for that).
    pub fn map_blocks_local<U: Element>(
        &self,
        f: impl Fn(&ArrayD<T>) -> ArrayD<U> + Send + Sync + 'static,
    ) -> Array<U> {
        self.then(|n| {
            let op = LocalOp::new("map_blocks", move |args: &mut Args| {
                let block: Block = args.take(0, "block")?;
                let pos: BlockPos = args.take(1, "pos")?;
                let chunk = T::unwrap(block)
                    .map_err(|b| TaskFailure::type_mismatch(T::DTYPE.name(), b.dtype().name()))?;
                let out = f(&chunk.into_dense());
                let out = U::wrap(Chunk::Dense(out));
                check_shape(&out, &pos.shape)?;
                Ok(Value::new(out))
            });
            let token = oxidask_core::Token::unique();
            Ok(blockwise_node(
                "map_blocks",
                std::slice::from_ref(n),
                U::DTYPE,
                n.chunks.clone(),
                token,
                |pos, mut args| {
                    Task::local(
                        op.clone(),
                        [args.remove(0), Arg::Value(Value::new(pos.clone()))],
                    )
                },
            ))
        })
    }

    /// A registered function applied to every block extended by `depth` elements of its
    /// neighbours per axis; the result is trimmed back to the block. At the array's edges
    /// `boundary` says what the extension holds.
    pub fn map_overlap(&self, op: &'static OpDef, depth: &[usize], boundary: Boundary) -> Array<T> {
        let depth = depth.to_vec();
        self.then(|n| {
            if depth.len() != n.shape.len() {
                return Err(ArrayError::Argument {
                    op: "map_overlap",
                    detail: format!("depth {depth:?} needs one entry per axis of shape {:?}", n.shape),
                });
            }
            for (a, (&d, axis)) in depth.iter().zip(&n.chunks.0).enumerate() {
                if let Some(&small) = axis.iter().filter(|&&c| c > 0).min() {
                    if d > small {
                        return Err(ArrayError::Argument {
                            op: "map_overlap",
                            detail: format!(
                                "depth {d} on axis {a} is larger than its smallest block ({small}) of chunks {:?}; rechunk to larger blocks",
                                n.chunks.0
                            ),
                        });
                    }
                }
            }
            let extended = overlap_node(n, &depth, &boundary)?;
            let applied: Array<T> = blockwise(op, &[&Array::<T>::from_node(extended.clone())], Some(extended.chunks.0.clone()));
            let applied = applied.node()?.clone();
            trim_node(&applied, n, &depth, &boundary)
        })
    }
}

impl<T: Element> Array<T> {
    /// Every block extended by `depth` elements of its neighbours per axis (Dask's
    /// `da.overlap.overlap`); at the array's edges `boundary` says what the extension holds.
    /// Apply a function to the blocks, then [`Array::trim_overlap`] cuts the extension off.
    pub fn overlap(&self, depth: &[usize], boundary: Boundary) -> Array<T> {
        let depth = depth.to_vec();
        self.then(|n| {
            if depth.len() != n.shape.len() {
                return Err(ArrayError::Argument {
                    op: "overlap",
                    detail: format!(
                        "depth {depth:?} needs one entry per axis of shape {:?}",
                        n.shape
                    ),
                });
            }
            overlap_node(n, &depth, &boundary)
        })
    }

    /// Cuts what [`Array::overlap`] added off `self`, blocks computed from `original`
    /// overlapped by `depth` with `boundary` (Dask's `trim_internal`): the result has
    /// `original`'s chunks.
    pub fn trim_overlap<U: Element>(
        &self,
        original: &Array<U>,
        depth: &[usize],
        boundary: Boundary,
    ) -> Array<T> {
        let depth = depth.to_vec();
        let original = match original.node() {
            Ok(o) => o.clone(),
            Err(e) => return Array::error(e),
        };
        self.then(|n| {
            let trimmed = trim_node(n, &original, &depth, &boundary)?;
            Ok(Node::new(
                trimmed.name,
                trimmed.shape.clone(),
                trimmed.chunks.clone(),
                n.dtype,
                trimmed.token,
                Source::Layer(trimmed.layer()),
            ))
        })
    }
}

/// What a [`Array::map_overlap`] extension holds beyond the array's edges.
#[derive(Clone, Debug, PartialEq, oxidask_core::Data)]
#[data(crate = oxidask_core)]
pub enum Boundary {
    /// No extension at the edges (edge blocks are extended inward only).
    None,
    /// A constant.
    Constant(f64),
    /// The edge value repeated.
    Nearest,
    /// Mirrored, edge included (`[a b c] -> [b a | a b c | c b]`).
    Reflect,
    /// Wrapped around from the other end.
    Periodic,
}

/// How one extended block is assembled.
#[derive(Clone, Debug, PartialEq, oxidask_core::Data)]
#[data(crate = oxidask_core)]
pub struct OverlapPlan {
    /// The extended block's shape.
    pub shape: Vec<usize>,
    /// Pieces: (input part index, ranges in it, offset in the output), in input order.
    pub pieces: Vec<(usize, crate::rechunk::Piece)>,
    /// The value of positions no piece covers (constant boundary).
    pub fill: f64,
}

pub(crate) fn overlap_block(parts: &[&Block], plan: &OverlapPlan) -> Result<Block, String> {
    fn go<T: Element>(parts: &[&Block], plan: &OverlapPlan) -> Result<Chunk<T>, String> {
        let mut out = ArrayD::from_elem(IxDyn(&plan.shape), T::from_f64(plan.fill));
        for (i, (ranges, offset)) in &plan.pieces {
            let part = parts.get(*i).ok_or("missing overlap part")?;
            let chunk = T::unwrap_ref(part).ok_or("overlap parts of different dtypes")?;
            place(&mut out, offset, &chunk.slice(ranges));
        }
        Ok(Chunk::Dense(out))
    }
    let first = parts.first().ok_or("no parts")?;
    Ok(match first {
        Block::F64(_) => Block::F64(go(parts, plan)?),
        Block::F32(_) => Block::F32(go(parts, plan)?),
        Block::I64(_) => Block::I64(go(parts, plan)?),
        Block::I32(_) => Block::I32(go(parts, plan)?),
        Block::U8(_) => Block::U8(go(parts, plan)?),
        Block::Bool(_) => Block::Bool(go(parts, plan)?),
    })
}

/// Per axis: runs of the extended range as (input block, start, stop, step, out offset, len),
/// `None` block for constant fill. Also the extended length.
#[allow(clippy::type_complexity)]
fn axis_runs(
    bounds: &[usize],
    b: usize,
    d: usize,
    boundary: &Boundary,
) -> (
    Vec<(Option<usize>, isize, isize, isize, usize, usize)>,
    usize,
    usize,
) {
    let n = *bounds.last().expect("bounds") as isize;
    let (lo, hi) = (bounds[b] as isize, bounds[b + 1] as isize);
    let (mut e0, mut e1) = (lo - d as isize, hi + d as isize);
    if matches!(boundary, Boundary::None) {
        e0 = e0.max(0);
        e1 = e1.min(n);
    }
    let map = |e: isize| -> Option<isize> {
        if (0..n).contains(&e) {
            return Some(e);
        }
        match boundary {
            Boundary::None | Boundary::Constant(_) => None,
            Boundary::Nearest => Some(e.clamp(0, n - 1)),
            Boundary::Reflect => Some(if e < 0 { -1 - e } else { 2 * n - 1 - e }.clamp(0, n - 1)),
            Boundary::Periodic => Some(e.rem_euclid(n)),
        }
    };
    let block_of = |i: isize| -> usize { bounds.partition_point(|&x| x as isize <= i) - 1 };
    let mapped: Vec<Option<(usize, isize)>> = (e0..e1)
        .map(|e| {
            map(e).map(|m| {
                let blk = block_of(m);
                (blk, m - bounds[blk] as isize)
            })
        })
        .collect();
    let mut runs: Vec<(Option<usize>, isize, isize, isize, usize, usize)> = Vec::new();
    let mut i = 0;
    while i < mapped.len() {
        match mapped[i] {
            None => {
                let mut j = i;
                while j < mapped.len() && mapped[j].is_none() {
                    j += 1;
                }
                runs.push((None, 0, 0, 1, i, j - i));
                i = j;
            }
            Some((blk, local)) => {
                let step = match mapped.get(i + 1) {
                    Some(Some((b2, l2))) if *b2 == blk && *l2 == local - 1 => -1,
                    _ => 1,
                };
                let mut j = i + 1;
                while j < mapped.len() && mapped[j] == Some((blk, local + step * (j - i) as isize))
                {
                    j += 1;
                }
                let last = local + step * (j - i - 1) as isize;
                let stop = if step > 0 { last + 1 } else { last - 1 };
                runs.push((Some(blk), local, stop, step, i, j - i));
                i = j;
            }
        }
    }
    let ext = (e1 - e0) as usize;
    let shift = (lo - e0) as usize;
    (runs, ext, shift)
}

fn overlap_node(
    n: &Arc<Node>,
    depth: &[usize],
    boundary: &Boundary,
) -> Result<Arc<Node>, ArrayError> {
    let mut t = Tokenizer::new();
    t.write_str("overlap");
    t.write_token(n.token);
    t.write_data(&depth.to_vec());
    t.write_data(boundary);
    let token = t.finish();
    let fill = match boundary {
        Boundary::Constant(c) => *c,
        _ => 0.0,
    };
    let grid = n.chunks.grid();
    let bounds: Vec<Vec<usize>> = (0..n.shape.len()).map(|a| n.chunks.boundaries(a)).collect();
    let mut ext_chunks: Vec<Vec<usize>> = n.chunks.0.iter().map(|a| vec![0; a.len()]).collect();
    let mut tasks = Vec::new();
    let mut outputs = Vec::new();
    for idx in n.chunks.indices() {
        let per_axis: Vec<_> = idx
            .iter()
            .enumerate()
            .map(|(a, &b)| axis_runs(&bounds[a], b, depth[a], boundary))
            .collect();
        let shape: Vec<usize> = per_axis.iter().map(|r| r.1).collect();
        for (a, &len) in shape.iter().enumerate() {
            ext_chunks[a][idx[a]] = len;
        }
        let counts: Vec<usize> = per_axis.iter().map(|r| r.0.len()).collect();
        let mut parts: Vec<oxidask_core::Key> = Vec::new();
        let mut pieces = Vec::new();
        for combo in crate::chunks::block_indices(counts) {
            let runs: Vec<_> = combo
                .iter()
                .enumerate()
                .map(|(a, &c)| per_axis[a].0[c])
                .collect();
            if runs.iter().any(|r| r.0.is_none()) {
                continue; // constant fill
            }
            let in_idx: Vec<usize> = runs.iter().map(|r| r.0.expect("checked")).collect();
            let key = n.block(&in_idx);
            let part = match parts.iter().position(|k| *k == key) {
                Some(p) => p,
                None => {
                    parts.push(key);
                    parts.len() - 1
                }
            };
            pieces.push((
                part,
                (
                    runs.iter().map(|r| (r.1, r.2, r.3)).collect(),
                    runs.iter().map(|r| r.4).collect(),
                ),
            ));
        }
        let key = block_key("overlap", token, &idx, &grid);
        let plan = OverlapPlan {
            shape,
            pieces,
            fill,
        };
        tasks.push((
            key,
            Task::call(
                crate::ops::overlap::op(),
                [
                    Arg::Value(Value::new(plan)),
                    Arg::List(parts.into_iter().map(Arg::Key).collect()),
                ],
            ),
        ));
        outputs.push(key);
    }
    let layer = Arc::new(Layer {
        tasks,
        outputs,
        deps: vec![n.layer()],
    });
    let chunks = Chunks(ext_chunks);
    let shape = chunks.0.iter().map(|a| a.iter().sum()).collect();
    Ok(Node::new(
        "overlap",
        shape,
        chunks,
        n.dtype,
        token,
        Source::Layer(layer),
    ))
}

/// Cuts each extended block back to its original extent.
fn trim_node(
    applied: &Arc<Node>,
    original: &Arc<Node>,
    depth: &[usize],
    boundary: &Boundary,
) -> Result<Arc<Node>, ArrayError> {
    let mut t = Tokenizer::new();
    t.write_str("trim");
    t.write_token(applied.token);
    let token = t.finish();
    let grid = original.chunks.grid();
    let bounds: Vec<Vec<usize>> = (0..original.shape.len())
        .map(|a| original.chunks.boundaries(a))
        .collect();
    let mut tasks = Vec::new();
    let mut outputs = Vec::new();
    for idx in original.chunks.indices() {
        let ranges: Vec<(isize, isize, isize)> = idx
            .iter()
            .enumerate()
            .map(|(a, &b)| {
                let (_, _, shift) = axis_runs(&bounds[a], b, depth[a], boundary);
                let len = original.chunks.0[a][b];
                (shift as isize, (shift + len) as isize, 1)
            })
            .collect();
        let item = crate::indexing::GetItem {
            ranges,
            drop: Vec::new(),
            new_axes: Vec::new(),
        };
        let key = block_key("trim", token, &idx, &grid);
        tasks.push((
            key,
            Task::call(
                crate::ops::getitem::op(),
                [Arg::Value(Value::new(item)), Arg::Key(applied.block(&idx))],
            ),
        ));
        outputs.push(key);
    }
    let layer = Arc::new(Layer {
        tasks,
        outputs,
        deps: vec![applied.layer()],
    });
    Ok(Node::new(
        "trim",
        original.shape.clone(),
        original.chunks.clone(),
        original.dtype,
        token,
        Source::Layer(layer),
    ))
}
