//! Indexing: slices with steps (negative too), integers, new axes, boolean masks.
//!
//! Slicing follows ndarray's `s![]` semantics (what Rust users write; for whole-axis
//! reversal `..;-1` it is NumPy's `[::-1]`). Each output block is a slice of exactly one
//! input block, so slicing never moves data between blocks; a block taken whole keeps its key.

use std::sync::Arc;

use ndarray::{ArrayD, IxDyn, SliceInfoElem};
use oxidask_core::tokenize::Tokenizer;
use oxidask_core::{Arg, Task, Value};

use crate::array::{block_key, Array, Layer, Node, Source};
use crate::block::{Block, Chunk};
use crate::chunks::Chunks;
use crate::element::Element;
use crate::error::ArrayError;

/// How to cut one block: per input axis (start, stop, step) in NumPy form, the input axes
/// to drop (integer indices), and where to insert new axes in the output.
#[derive(Clone, Debug, PartialEq, oxidask_core::Data)]
#[data(crate = oxidask_core)]
pub struct GetItem {
    /// Per input axis.
    pub ranges: Vec<(isize, isize, isize)>,
    /// Input axes removed (each has one selected element).
    pub drop: Vec<usize>,
    /// Output positions of new length-1 axes.
    pub new_axes: Vec<usize>,
}

/// Applies a [`GetItem`] to a block (the kernel behind [`ops::getitem`](crate::ops::getitem)).
pub(crate) fn getitem_block(block: &Block, item: &GetItem) -> Block {
    crate::block::map_chunk!(block, c => reshape_after(c.slice(&item.ranges), item))
}

fn reshape_after<T: Element>(c: Chunk<T>, item: &GetItem) -> Chunk<T> {
    if item.drop.is_empty() && item.new_axes.is_empty() {
        return c;
    }
    let kept: Vec<usize> = c
        .shape()
        .iter()
        .enumerate()
        .filter(|(a, _)| !item.drop.contains(a))
        .map(|(_, &d)| d)
        .collect();
    let mut shape = kept;
    for &p in &item.new_axes {
        shape.insert(p.min(shape.len()), 1);
    }
    match c {
        Chunk::Full { value, .. } => Chunk::Full { shape, value },
        Chunk::Dense(a) => {
            let a = a.as_standard_layout().into_owned();
            Chunk::Dense(
                a.into_shape_with_order(IxDyn(&shape))
                    .expect("same number of elements"),
            )
        }
    }
}

/// One axis of a selection: indices `first, first + step, …` (`count` of them).
#[derive(Clone, Copy, Debug)]
struct Progression {
    first: isize,
    step: isize,
    count: usize,
}

fn resolve(
    elem: &SliceInfoElem,
    len: usize,
    axis: usize,
    shape: &[usize],
) -> Result<Option<Progression>, ArrayError> {
    let n = len as isize;
    match *elem {
        SliceInfoElem::Slice { start, end, step } => {
            if step == 0 {
                return Err(ArrayError::ZeroStep {
                    axis,
                    shape: shape.to_vec(),
                });
            }
            let clamp = |v: isize| if v < 0 { (v + n).max(0) } else { v.min(n) };
            let s = clamp(start);
            let e = clamp(end.unwrap_or(n));
            let width = (e - s).max(0);
            let count = ((width + step.abs() - 1) / step.abs()).max(0) as usize;
            // ndarray: the range [s, e), walked from its end for negative steps.
            Ok(Some(if step > 0 {
                Progression {
                    first: s,
                    step,
                    count,
                }
            } else {
                Progression {
                    first: e - 1,
                    step,
                    count,
                }
            }))
        }
        SliceInfoElem::Index(i) => {
            let j = if i < 0 { i + n } else { i };
            if j < 0 || j >= n {
                return Err(ArrayError::IndexOutOfRange {
                    index: i,
                    axis,
                    len,
                    shape: shape.to_vec(),
                });
            }
            Ok(Some(Progression {
                first: j,
                step: 1,
                count: 1,
            }))
        }
        SliceInfoElem::NewAxis => Ok(None),
    }
}

/// For one axis: the output blocks as (input block, range in it, length), in output order.
fn axis_plan(p: Progression, bounds: &[usize]) -> Vec<(usize, (isize, isize, isize), usize)> {
    let mut out = Vec::new();
    let nblocks = bounds.len() - 1;
    let order: Vec<usize> = if p.step > 0 {
        (0..nblocks).collect()
    } else {
        (0..nblocks).rev().collect()
    };
    for b in order {
        let (lo, hi) = (bounds[b] as isize, bounds[b + 1] as isize);
        // Selected k with lo <= first + k*step < hi.
        let (kmin, kmax) = if p.step > 0 {
            let kmin = if p.first >= lo {
                0
            } else {
                (lo - p.first + p.step - 1) / p.step
            };
            let kmax = if hi - 1 < p.first {
                -1
            } else {
                (hi - 1 - p.first) / p.step
            };
            (kmin, kmax)
        } else {
            let s = -p.step;
            let kmin = if p.first < hi {
                0
            } else {
                (p.first - (hi - 1) + s - 1) / s
            };
            let kmax = if p.first < lo { -1 } else { (p.first - lo) / s };
            (kmin, kmax)
        };
        let kmax = kmax.min(p.count as isize - 1);
        if kmin > kmax {
            continue;
        }
        let count = (kmax - kmin + 1) as usize;
        let start = p.first + kmin * p.step - lo;
        // Exclusive stop just past the last selected element (inside the block).
        let last = start + p.step * (count as isize - 1);
        let stop = if p.step > 0 { last + 1 } else { last - 1 };
        out.push((b, (start, stop, p.step), count));
    }
    if out.is_empty() {
        // An empty selection: one empty block, cut from the first input block.
        out.push((0, (0, 0, 1), 0));
    }
    out
}

fn getitem_node(node: &Arc<Node>, elems: &[SliceInfoElem]) -> Result<Arc<Node>, ArrayError> {
    let consumed = elems
        .iter()
        .filter(|e| !matches!(e, SliceInfoElem::NewAxis))
        .count();
    if consumed > node.shape.len() {
        return Err(ArrayError::TooManyIndices {
            shape: node.shape.clone(),
            given: consumed,
        });
    }
    // Pad with full slices.
    let mut all: Vec<SliceInfoElem> = elems.to_vec();
    for _ in consumed..node.shape.len() {
        all.push(SliceInfoElem::Slice {
            start: 0,
            end: None,
            step: 1,
        });
    }
    let mut axis = 0;
    let mut plans = Vec::new(); // per input axis
    let mut drop = Vec::new();
    let mut new_axes = Vec::new();
    let mut out_pos = 0;
    let mut out_shape = Vec::new();
    let mut out_chunks = Vec::new();
    for e in &all {
        match resolve(
            e,
            node.shape.get(axis).copied().unwrap_or(0),
            axis,
            &node.shape,
        )? {
            None => {
                new_axes.push(out_pos);
                out_shape.push(1);
                out_chunks.push(vec![1]);
                out_pos += 1;
            }
            Some(p) => {
                let plan = axis_plan(p, &node.chunks.boundaries(axis));
                if matches!(e, SliceInfoElem::Index(_)) {
                    drop.push(axis);
                } else {
                    out_shape.push(p.count);
                    out_chunks.push(plan.iter().map(|x| x.2).collect());
                    out_pos += 1;
                }
                plans.push(plan);
                axis += 1;
            }
        }
    }
    let mut t = Tokenizer::new();
    t.write_str("getitem");
    t.write_token(node.token);
    for e in &all {
        match *e {
            SliceInfoElem::Slice { start, end, step } => {
                t.write_u64(0);
                t.write_u64(start as u64);
                t.write_u64(end.map_or(u64::MAX, |e| e as u64));
                t.write_u64(step as u64);
            }
            SliceInfoElem::Index(i) => {
                t.write_u64(1);
                t.write_u64(i as u64);
            }
            SliceInfoElem::NewAxis => t.write_u64(2),
        }
    }
    let token = t.finish();
    let name = "getitem";
    let out_chunks = Chunks(out_chunks);
    let grid = out_chunks.grid();
    let input = node.layer();
    let mut tasks = Vec::new();
    let mut outputs = Vec::with_capacity(out_chunks.nblocks());
    // Iterate output blocks over the input axes' plans (new axes have one block).
    let per_axis_counts: Vec<usize> = plans.iter().map(Vec::len).collect();
    for combo in crate::chunks::block_indices(per_axis_counts) {
        let mut in_idx = Vec::with_capacity(plans.len());
        let mut ranges = Vec::with_capacity(plans.len());
        let mut whole = drop.is_empty() && new_axes.is_empty();
        for (a, &c) in combo.iter().enumerate() {
            let (b, r, len) = plans[a][c];
            in_idx.push(b);
            ranges.push(r);
            whole &= r.2 == 1 && r.0 == 0 && len == node.chunks.0[a][b];
        }
        // The output block index: kept input axes' positions with new axes (index 0) inserted.
        let mut out_idx: Vec<usize> = combo
            .iter()
            .enumerate()
            .filter(|(a, _)| !drop.contains(a))
            .map(|(_, &c)| c)
            .collect();
        for &p in &new_axes {
            out_idx.insert(p.min(out_idx.len()), 0);
        }
        let in_key = node.block(&in_idx);
        if whole {
            outputs.push((out_idx, in_key));
            continue;
        }
        let key = block_key(name, token, &out_idx, &grid);
        let item = GetItem {
            ranges,
            drop: drop.clone(),
            new_axes: new_axes.clone(),
        };
        tasks.push((
            key,
            Task::call(
                crate::ops::getitem::op(),
                [Arg::Value(Value::new(item)), Arg::Key(in_key)],
            ),
        ));
        outputs.push((out_idx, key));
    }
    // Outputs must be row-major over the output grid.
    outputs.sort_by_key(|(idx, _)| crate::array::flat_index(idx, &grid));
    let layer = Arc::new(Layer {
        tasks,
        outputs: outputs.into_iter().map(|(_, k)| k).collect(),
        deps: vec![input],
    });
    Ok(Node::new(
        name,
        out_shape,
        out_chunks,
        node.dtype,
        token,
        Source::Layer(layer),
    ))
}

impl<T: Element> Array<T> {
    /// Indexing with ndarray's `s![]` syntax: ranges with steps (`..;-1` reverses an axis),
    /// integers (which drop their axis) and `NewAxis`.
    ///
    /// ```
    /// use ndarray::s;
    /// use oxidask_array as da;
    /// let x = da::ones::<f64>((10, 10)).chunks(4);
    /// let y = x.slice(s![..;-1, 2..8;2]);
    /// assert_eq!(y.shape(), vec![10, 3]);
    /// assert_eq!(x.slice(s![3, ..]).shape(), vec![10]);
    /// ```
    pub fn slice(&self, info: impl AsRef<[SliceInfoElem]>) -> Array<T> {
        let elems = info.as_ref().to_vec();
        self.then(|n| getitem_node(n, &elems))
    }

    /// Every axis reversed (`x[::-1, ::-1, …]`).
    pub fn reversed(&self) -> Array<T> {
        let elems = vec![
            SliceInfoElem::Slice {
                start: 0,
                end: None,
                step: -1,
            };
            self.ndim()
        ];
        self.slice(elems)
    }

    /// The elements where `mask` is true, in row-major order, as a 1-d array (NumPy's
    /// `x[mask]`).
    ///
    /// The result's length depends on the mask's values, so this computes how many elements
    /// each block of the mask selects (one small pass over the mask, on the current
    /// scheduler) before building the rest of the graph lazily.
    pub fn masked(&self, mask: &Array<bool>) -> Array<T> {
        let (node, m) = match (self.node(), mask.node()) {
            (Ok(n), Ok(m)) => (n.clone(), m.clone()),
            (Err(e), _) | (_, Err(e)) => return Array::error(e),
        };
        if node.shape != m.shape {
            return Array::error(ArrayError::MaskShape {
                mask: m.shape.clone(),
                shape: node.shape.clone(),
            });
        }
        let m = match crate::rechunk::rechunk_node(&m, node.chunks.clone()) {
            Ok(m) => m,
            Err(e) => return Array::error(e),
        };
        // Per-block counts of selected elements, computed now.
        let counts: Vec<usize> = match block_counts(&m) {
            Ok(c) => c,
            Err(e) => {
                return Array::error(ArrayError::Argument {
                    op: "masked",
                    detail: format!("computing the mask's counts failed: {e}"),
                })
            }
        };
        let total: usize = counts.iter().sum();
        let mut t = Tokenizer::new();
        t.write_str("masked");
        t.write_token(node.token);
        t.write_token(m.token);
        let token = t.finish();
        let name = "masked";
        let nonempty: Vec<(usize, Vec<usize>)> = node
            .chunks
            .indices()
            .zip(counts.iter().copied())
            .filter(|(_, c)| *c > 0)
            .map(|(i, c)| (c, i))
            .collect();
        let chunks = if nonempty.is_empty() {
            Chunks(vec![vec![0]])
        } else {
            Chunks(vec![nonempty.iter().map(|(c, _)| *c).collect()])
        };
        let mut tasks = Vec::new();
        let mut outputs = Vec::new();
        let grid = chunks.grid();
        if nonempty.is_empty() {
            let key = block_key(name, token, &[0], &grid);
            tasks.push((
                key,
                Task::value(Value::new(T::wrap(Chunk::Dense(ArrayD::from_elem(
                    IxDyn(&[0]),
                    T::default(),
                ))))),
            ));
            outputs.push(key);
        }
        for (o, (_, idx)) in nonempty.iter().enumerate() {
            let key = block_key(name, token, &[o], &grid);
            tasks.push((
                key,
                Task::call(
                    crate::ops::mask_select::op(),
                    [Arg::Key(node.block(idx)), Arg::Key(m.block(idx))],
                ),
            ));
            outputs.push(key);
        }
        let layer = Arc::new(Layer {
            tasks,
            outputs,
            deps: vec![node.layer(), m.layer()],
        });
        Array::from_node(Node::new(
            name,
            vec![total],
            chunks,
            T::DTYPE,
            token,
            Source::Layer(layer),
        ))
    }
}

/// How many elements each block of a boolean array selects, computed now.
fn block_counts(m: &Arc<Node>) -> Result<Vec<usize>, oxidask_core::Error> {
    let layer = m.layer();
    let mut tasks = Vec::new();
    let mut keys = Vec::new();
    let mut t = Tokenizer::new();
    t.write_str("mask-count");
    t.write_token(m.token);
    let token = t.finish();
    for (i, k) in layer.outputs.iter().enumerate() {
        let key = oxidask_core::Key::block("mask-count", token, &[i as u32]);
        tasks.push((
            key,
            Task::call(crate::ops::count_true::op(), [Arg::Key(*k)]),
        ));
        keys.push(key);
    }
    let mut graph = oxidask_core::Graph::new();
    crate::array::add_layer(&mut graph, &layer);
    for (k, t) in tasks {
        graph.insert(k, t);
    }
    let scheduler = oxidask_core::compute::current_scheduler()?;
    let values = scheduler.compute(graph, &keys)?;
    values
        .into_iter()
        .map(|v| {
            v.take::<u64>()
                .map(|c| c as usize)
                .map_err(|e| oxidask_core::Error::Collection(e.to_string().into()))
        })
        .collect()
}

/// Selects the elements of `block` where `mask` is true (row-major), as a 1-d block.
pub(crate) fn mask_select_block(block: &Block, mask: &Block) -> Result<Block, String> {
    let Block::Bool(m) = mask else {
        return Err(format!("a mask of {} instead of bool", mask.dtype()));
    };
    if block.shape() != m.shape() {
        return Err(format!(
            "mask block {:?} does not match block {:?}",
            m.shape(),
            block.shape()
        ));
    }
    let m = m.to_dense();
    Ok(crate::block::map_chunk!(block, c => {
        let d = c.to_dense();
        let picked: Vec<_> = d.iter().zip(m.iter()).filter(|(_, &k)| k).map(|(v, _)| *v).collect();
        let n = picked.len();
        Chunk::Dense(ArrayD::from_shape_vec(IxDyn(&[n]), picked).expect("1-d"))
    }))
}

/// Counts true elements (for [`Array::masked`]).
pub(crate) fn count_true_block(block: &Block) -> Result<u64, String> {
    match block {
        Block::Bool(Chunk::Full { shape, value }) => Ok(if *value {
            shape.iter().product::<usize>() as u64
        } else {
            0
        }),
        Block::Bool(Chunk::Dense(a)) => Ok(a.iter().filter(|v| **v).count() as u64),
        other => Err(format!("a mask of {} instead of bool", other.dtype())),
    }
}
