//! Chunks: what array tasks pass each other.
//!
//! A [`Chunk<T>`] is either dense ndarray data or a constant of a given shape that has not been
//! allocated (`ones`, `zeros`, `full`, and anything computed only from constants). A [`Block`]
//! is a chunk of any dtype: kernels are registered once and dispatch on it.
//!
//! # Invariants
//! - A `Full` chunk's value stands for every element; it is allocated only when something
//!   needs dense data ([`Chunk::to_dense`]).
//! - Shapes are `Vec<usize>` in logical (row-major) order.

use ndarray::{ArrayD, IxDyn, Slice, SliceInfoElem};

use crate::element::{DType, Element};

/// One chunk of an array of `T`.
#[derive(Clone, Debug, PartialEq, oxidask_core::Data)]
#[data(crate = oxidask_core)]
pub enum Chunk<T> {
    /// Every element equal to `value`; nothing allocated.
    Full {
        /// The chunk's shape.
        shape: Vec<usize>,
        /// The value of every element.
        value: T,
    },
    /// Dense data.
    Dense(ArrayD<T>),
}

impl<T: Element> Chunk<T> {
    /// The chunk's shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            Chunk::Full { shape, .. } => shape,
            Chunk::Dense(a) => a.shape(),
        }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.shape().iter().product()
    }

    /// True if the chunk has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Dense data (allocating a constant chunk).
    pub fn into_dense(self) -> ArrayD<T> {
        match self {
            Chunk::Full { shape, value } => ArrayD::from_elem(IxDyn(&shape), value),
            Chunk::Dense(a) => a,
        }
    }

    /// Dense data, borrowed when already dense.
    pub fn to_dense(&self) -> std::borrow::Cow<'_, ArrayD<T>> {
        match self {
            Chunk::Full { shape, value } => {
                std::borrow::Cow::Owned(ArrayD::from_elem(IxDyn(shape), *value))
            }
            Chunk::Dense(a) => std::borrow::Cow::Borrowed(a),
        }
    }

    /// Visits every element in logical order without allocating a constant chunk.
    pub fn for_each(&self, mut f: impl FnMut(T)) {
        match self {
            Chunk::Full { value, .. } => (0..self.len()).for_each(|_| f(*value)),
            Chunk::Dense(a) => a.iter().for_each(|v| f(*v)),
        }
    }

    /// A sub-chunk: `ranges[axis]` = (start, stop, step) with a possibly negative step, as
    /// produced by the slicing planner (start/stop already clamped, stop exclusive).
    pub fn slice(&self, ranges: &[(isize, isize, isize)]) -> Chunk<T> {
        match self {
            Chunk::Full { value, .. } => Chunk::Full {
                shape: ranges.iter().map(|&(a, b, s)| slice_len(a, b, s)).collect(),
                value: *value,
            },
            Chunk::Dense(a) => {
                let info: Vec<SliceInfoElem> = ranges
                    .iter()
                    .map(|&(start, stop, step)| slice_elem(start, stop, step))
                    .collect();
                Chunk::Dense(a.slice(info.as_slice()).to_owned())
            }
        }
    }
}

/// Length of `start..stop` by `step` (stop exclusive; for negative steps, start > stop).
pub fn slice_len(start: isize, stop: isize, step: isize) -> usize {
    if step > 0 {
        if stop > start {
            ((stop - start + step - 1) / step) as usize
        } else {
            0
        }
    } else if start > stop {
        ((start - stop + (-step) - 1) / (-step)) as usize
    } else {
        0
    }
}

/// An ndarray slice for `start..stop` by `step` in NumPy's sense (negative steps walk down
/// from `start`).
fn slice_elem(start: isize, stop: isize, step: isize) -> SliceInfoElem {
    if step > 0 {
        SliceInfoElem::Slice {
            start,
            end: Some(stop),
            step,
        }
    } else {
        // NumPy: x[start:stop:-k] visits start, start-k, … > stop. ndarray: the range
        // [stop+1, start+1) is taken and then walked from its end with step -k.
        let len = slice_len(start, stop, step) as isize;
        let lo = start + step * (len - 1);
        let s = Slice::new(lo, Some(start + 1), step);
        SliceInfoElem::Slice {
            start: s.start,
            end: s.end,
            step: s.step,
        }
    }
}

/// One chunk of any dtype.
#[derive(Clone, Debug, PartialEq, oxidask_core::Data)]
#[data(crate = oxidask_core)]
pub enum Block {
    /// `f64` elements.
    F64(Chunk<f64>),
    /// `f32` elements.
    F32(Chunk<f32>),
    /// `i64` elements.
    I64(Chunk<i64>),
    /// `i32` elements.
    I32(Chunk<i32>),
    /// `u8` elements.
    U8(Chunk<u8>),
    /// `bool` elements.
    Bool(Chunk<bool>),
}

/// Runs `$body` with `$c` bound to the block's chunk, whatever its dtype.
macro_rules! with_chunk {
    ($block:expr, $c:ident => $body:expr) => {
        match $block {
            $crate::block::Block::F64($c) => $body,
            $crate::block::Block::F32($c) => $body,
            $crate::block::Block::I64($c) => $body,
            $crate::block::Block::I32($c) => $body,
            $crate::block::Block::U8($c) => $body,
            $crate::block::Block::Bool($c) => $body,
        }
    };
}
pub(crate) use with_chunk;

/// Like `with_chunk!`, mapping the chunk to a new chunk of the same dtype.
macro_rules! map_chunk {
    ($block:expr, $c:ident => $body:expr) => {
        match $block {
            $crate::block::Block::F64($c) => $crate::block::Block::F64($body),
            $crate::block::Block::F32($c) => $crate::block::Block::F32($body),
            $crate::block::Block::I64($c) => $crate::block::Block::I64($body),
            $crate::block::Block::I32($c) => $crate::block::Block::I32($body),
            $crate::block::Block::U8($c) => $crate::block::Block::U8($body),
            $crate::block::Block::Bool($c) => $crate::block::Block::Bool($body),
        }
    };
}
pub(crate) use map_chunk;

impl Block {
    /// The block's dtype.
    pub fn dtype(&self) -> DType {
        match self {
            Block::F64(_) => DType::F64,
            Block::F32(_) => DType::F32,
            Block::I64(_) => DType::I64,
            Block::I32(_) => DType::I32,
            Block::U8(_) => DType::U8,
            Block::Bool(_) => DType::Bool,
        }
    }

    /// The block's shape.
    pub fn shape(&self) -> &[usize] {
        with_chunk!(self, c => c.shape())
    }

    /// A constant block.
    pub fn full<T: Element>(shape: Vec<usize>, value: T) -> Block {
        T::wrap(Chunk::Full { shape, value })
    }

    /// A sub-block (see [`Chunk::slice`]).
    pub fn slice(&self, ranges: &[(isize, isize, isize)]) -> Block {
        map_chunk!(self, c => c.slice(ranges))
    }
}

/// Copies `part` into `out` at `offset` (per-axis start positions).
pub fn place<T: Element>(out: &mut ArrayD<T>, offset: &[usize], part: &Chunk<T>) {
    let info: Vec<SliceInfoElem> = offset
        .iter()
        .zip(part.shape())
        .map(|(&o, &n)| SliceInfoElem::Slice {
            start: o as isize,
            end: Some((o + n) as isize),
            step: 1,
        })
        .collect();
    let mut view = out.slice_mut(info.as_slice());
    match part {
        Chunk::Full { value, .. } => view.fill(*value),
        Chunk::Dense(a) => view.assign(a),
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{Array, IxDyn};

    use super::*;

    #[test]
    fn slicing_matches_numpy_for_negative_steps() {
        let a = Array::from_iter(0..10i64).into_dyn();
        let c = Chunk::Dense(a);
        // x[8:2:-2] == [8, 6, 4]
        let s = c.slice(&[(8, 2, -2)]).into_dense();
        assert_eq!(s.iter().copied().collect::<Vec<_>>(), vec![8, 6, 4]);
        // x[9:-11:-1] (stop before 0) == 9..=0
        let s = c.slice(&[(9, -1, -1)]).into_dense();
        assert_eq!(
            s.iter().copied().collect::<Vec<_>>(),
            (0..10).rev().collect::<Vec<_>>()
        );
        // x[1:8:3] == [1, 4, 7]
        let s = c.slice(&[(1, 8, 3)]).into_dense();
        assert_eq!(s.iter().copied().collect::<Vec<_>>(), vec![1, 4, 7]);
        assert_eq!(slice_len(5, 5, 1), 0);
        assert_eq!(slice_len(5, 5, -1), 0);
    }

    #[test]
    fn full_chunks_stay_unallocated_through_slicing() {
        let c = Chunk::Full {
            shape: vec![4, 6],
            value: 2.5f64,
        };
        let s = c.slice(&[(3, -1, -1), (0, 6, 2)]);
        assert_eq!(
            s,
            Chunk::Full {
                shape: vec![4, 3],
                value: 2.5
            }
        );
        let mut out = ArrayD::zeros(IxDyn(&[5, 5]));
        place(
            &mut out,
            &[1, 1],
            &Chunk::Full {
                shape: vec![2, 2],
                value: 1.0,
            },
        );
        assert_eq!(out.sum(), 4.0);
    }
}
