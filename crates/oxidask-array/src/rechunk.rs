//! Changing how an array is cut into blocks.
//!
//! Creation arrays are simply re-cut (their blocks are computed from positions), elementwise
//! arrays rechunk their inputs, and anything else gets one merge task per output block that
//! reads only the input blocks overlapping it. An output block that is exactly an input block
//! is that input's key: no task, no copy.

use std::sync::Arc;

use oxidask_core::tokenize::Tokenizer;
use oxidask_core::{Arg, Key, Task, Value};

use crate::array::{Layer, Node, Source};
use crate::block::{place, Block, Chunk};
use crate::chunks::Chunks;
use crate::element::Element;
use crate::error::ArrayError;

/// One input part of a merge: (start, stop, step) ranges to take from it, and where the piece
/// goes in the output block.
pub type Piece = (Vec<(isize, isize, isize)>, Vec<usize>);

/// How to build one output block from pieces of input blocks.
#[derive(Clone, Debug, PartialEq, oxidask_core::Data)]
#[data(crate = oxidask_core)]
pub struct MergePlan {
    /// The output block's shape.
    pub shape: Vec<usize>,
    /// For each input part: the (start, stop, step) ranges to take from it and where the
    /// piece goes in the output.
    pub pieces: Vec<Piece>,
}

/// Runs a merge plan (the kernel behind [`ops::merge`](crate::ops::merge)).
pub(crate) fn merge(parts: &[&Block], plan: &MergePlan) -> Result<Block, String> {
    if parts.len() != plan.pieces.len() || parts.is_empty() {
        return Err(format!(
            "merge got {} parts for {} pieces",
            parts.len(),
            plan.pieces.len()
        ));
    }
    let dtype = parts[0].dtype();
    if parts.iter().any(|p| p.dtype() != dtype) {
        return Err("merge of blocks of different dtypes".into());
    }
    fn go<T: Element>(parts: &[&Block], plan: &MergePlan) -> Chunk<T> {
        let pieces: Vec<Chunk<T>> = parts
            .iter()
            .zip(&plan.pieces)
            .map(|(p, (ranges, _))| T::unwrap_ref(p).expect("dtype checked").slice(ranges))
            .collect();
        if pieces.len() == 1 {
            return pieces.into_iter().next().expect("one piece");
        }
        if let Some(Chunk::Full { value, .. }) = pieces.first() {
            let v = *value;
            if pieces
                .iter()
                .all(|p| matches!(p, Chunk::Full { value, .. } if *value == v))
            {
                return Chunk::Full {
                    shape: plan.shape.clone(),
                    value: v,
                };
            }
        }
        let mut out = ndarray::ArrayD::from_elem(ndarray::IxDyn(&plan.shape), T::default());
        for (piece, (_, offset)) in pieces.iter().zip(&plan.pieces) {
            place(&mut out, offset, piece);
        }
        Chunk::Dense(out)
    }
    Ok(crate::block::map_chunk!(parts[0], c => { let _ = c; go(parts, plan) }))
}

/// `node` cut into `chunks`.
pub(crate) fn rechunk_node(node: &Arc<Node>, chunks: Chunks) -> Result<Arc<Node>, ArrayError> {
    if chunks == node.chunks {
        return Ok(node.clone());
    }
    if chunks.ndim() != node.shape.len() {
        return Err(ArrayError::ChunksRank {
            shape: node.shape.clone(),
            chunks: format!("{:?}", chunks.0),
        });
    }
    match &node.source {
        Source::Creation(c) => Ok(crate::creation::creation_node(
            c.clone(),
            node.dtype,
            node.shape.clone(),
            chunks,
        )),
        Source::Transpose { input, perm } => {
            let mut want = vec![Vec::new(); perm.len()];
            for (k, &a) in perm.iter().enumerate() {
                want[a] = chunks.0[k].clone();
            }
            let rechunked = rechunk_node(input, Chunks(want))?;
            Ok(crate::manipulation::transpose_node(
                &rechunked,
                perm.clone(),
            ))
        }
        Source::Elementwise { expr, inputs } => {
            let nd = node.shape.len();
            let mut rechunked = Vec::with_capacity(inputs.len());
            for (n, perm) in inputs {
                let n = &match perm {
                    Some(p) => crate::manipulation::transpose_node(n, p.clone()),
                    None => n.clone(),
                };
                let off = nd - n.shape.len();
                let want: Vec<Vec<usize>> = (0..n.shape.len())
                    .map(|a| {
                        if n.shape[a] == node.shape[a + off] {
                            chunks.0[a + off].clone()
                        } else {
                            n.chunks.0[a].clone()
                        }
                    })
                    .collect();
                rechunked.push(rechunk_node(n, Chunks(want))?);
            }
            crate::elementwise::elementwise_node(node.name, expr.clone(), rechunked, node.dtype)
        }
        Source::Layer(_) => Ok(general(node, chunks)),
    }
}

/// Per axis, for each output block: the input blocks overlapping it as
/// (input block, start in it, stop in it, offset in the output block).
fn overlaps(old: &[usize], new: &[usize]) -> Vec<Vec<(usize, usize, usize, usize)>> {
    let mut old_bounds = Vec::with_capacity(old.len() + 1);
    let mut at = 0;
    old_bounds.push(0);
    for &c in old {
        at += c;
        old_bounds.push(at);
    }
    let mut out = Vec::with_capacity(new.len());
    let mut start = 0;
    for &len in new {
        let end = start + len;
        let mut parts = Vec::new();
        for b in 0..old.len() {
            let (lo, hi) = (old_bounds[b], old_bounds[b + 1]);
            let (s, e) = (start.max(lo), end.min(hi));
            if s < e || (len == 0 && b == 0) {
                parts.push((b, s - lo, e.max(s) - lo, s - start));
            }
        }
        out.push(parts);
        start = end;
    }
    out
}

fn general(node: &Arc<Node>, chunks: Chunks) -> Arc<Node> {
    let mut t = Tokenizer::new();
    t.write_str("rechunk");
    t.write_token(node.token);
    t.write_data(&chunks);
    let token = t.finish();
    let name = "rechunk-merge";
    let per_axis: Vec<_> = node
        .chunks
        .0
        .iter()
        .zip(&chunks.0)
        .map(|(old, new)| overlaps(old, new))
        .collect();
    let input = node.layer();
    let grid = chunks.grid();
    let mut tasks = Vec::new();
    let mut outputs = Vec::with_capacity(chunks.nblocks());
    for idx in chunks.indices() {
        let axis_parts: Vec<&Vec<(usize, usize, usize, usize)>> = idx
            .iter()
            .enumerate()
            .map(|(a, &i)| &per_axis[a][i])
            .collect();
        let combos: usize = axis_parts.iter().map(|p| p.len()).product();
        let shape = chunks.block_shape(&idx);
        let mut keys: Vec<Arg> = Vec::with_capacity(combos);
        let mut pieces = Vec::with_capacity(combos);
        let mut single_whole: Option<Key> = None;
        for c in 0..combos {
            let mut rest = c;
            let mut in_idx = vec![0; idx.len()];
            let mut ranges = Vec::with_capacity(idx.len());
            let mut offset = Vec::with_capacity(idx.len());
            for a in (0..idx.len()).rev() {
                let n = axis_parts[a].len();
                let (b, s, e, o) = axis_parts[a][rest % n];
                rest /= n;
                in_idx[a] = b;
                ranges.push((s as isize, e as isize, 1isize));
                offset.push(o);
            }
            ranges.reverse();
            offset.reverse();
            let in_key = node.block(&in_idx);
            let whole = ranges
                .iter()
                .zip(node.chunks.block_shape(&in_idx))
                .all(|(&(s, e, _), len)| s == 0 && e as usize == len);
            if combos == 1 && whole {
                single_whole = Some(in_key);
            }
            keys.push(Arg::Key(in_key));
            pieces.push((ranges, offset));
        }
        if let Some(k) = single_whole {
            outputs.push(k);
            continue;
        }
        let key = crate::array::block_key(name, token, &idx, &grid);
        let plan = MergePlan { shape, pieces };
        tasks.push((
            key,
            Task::call(
                crate::ops::merge::op(),
                [Arg::Value(Value::new(plan)), Arg::List(keys)],
            ),
        ));
        outputs.push(key);
    }
    let layer = Arc::new(Layer {
        tasks,
        outputs,
        deps: vec![input],
    });
    Node::new(
        name,
        node.shape.clone(),
        chunks,
        node.dtype,
        token,
        Source::Layer(layer),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlaps_cover_each_output_block_exactly() {
        let o = overlaps(&[4, 4, 2], &[3, 3, 3, 1]);
        assert_eq!(o[0], vec![(0, 0, 3, 0)]);
        assert_eq!(o[1], vec![(0, 3, 4, 0), (1, 0, 2, 1)]);
        assert_eq!(o[2], vec![(1, 2, 4, 0), (2, 0, 1, 2)]);
        assert_eq!(o[3], vec![(2, 1, 2, 0)]);
    }
}
