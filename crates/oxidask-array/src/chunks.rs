//! How an array is cut into blocks.
//!
//! [`Chunks`] lists, per axis, the lengths of its blocks (`((1000, 1000, 500), (2000,))`, as
//! Dask writes it). Users describe chunking with anything that is [`IntoChunks`]: one size for
//! every axis, a size per axis (`(1000, 1000)`, `-1` or `usize::MAX` for the whole axis),
//! explicit block lengths per axis, or [`Auto`] / [`ChunkBytes`] to aim at a block size in
//! bytes.

use crate::error::ArrayError;

/// Block lengths per axis.
#[derive(Clone, Debug, PartialEq, Eq, Hash, oxidask_core::Data)]
#[data(crate = oxidask_core)]
pub struct Chunks(pub Vec<Vec<usize>>);

/// The default block size in bytes for [`Auto`] chunking (Dask's `array.chunk-size`).
pub const DEFAULT_CHUNK_BYTES: usize = 128 << 20;

impl Chunks {
    /// The number of axes.
    pub fn ndim(&self) -> usize {
        self.0.len()
    }

    /// Blocks per axis.
    pub fn grid(&self) -> Vec<usize> {
        self.0.iter().map(Vec::len).collect()
    }

    /// The total number of blocks.
    pub fn nblocks(&self) -> usize {
        self.0.iter().map(Vec::len).product()
    }

    /// The largest block's shape (what Dask's `chunksize` shows).
    pub fn max_block(&self) -> Vec<usize> {
        self.0
            .iter()
            .map(|a| a.iter().copied().max().unwrap_or(0))
            .collect()
    }

    /// The shape of block `idx`.
    pub fn block_shape(&self, idx: &[usize]) -> Vec<usize> {
        idx.iter().zip(&self.0).map(|(&i, axis)| axis[i]).collect()
    }

    /// Where block `idx` starts, per axis.
    pub fn block_offset(&self, idx: &[usize]) -> Vec<usize> {
        idx.iter()
            .zip(&self.0)
            .map(|(&i, axis)| axis[..i].iter().sum())
            .collect()
    }

    /// Start offsets of every block along `axis`, plus the axis length at the end.
    pub fn boundaries(&self, axis: usize) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.0[axis].len() + 1);
        let mut at = 0;
        out.push(0);
        for &c in &self.0[axis] {
            at += c;
            out.push(at);
        }
        out
    }

    /// Every block index in row-major order.
    pub fn indices(&self) -> impl Iterator<Item = Vec<usize>> {
        block_indices(self.grid())
    }

    /// Uniform blocks of `size` along an axis of length `len` (the last one shorter); one
    /// empty block for an empty axis.
    pub fn regular(len: usize, size: usize) -> Vec<usize> {
        if len == 0 {
            return vec![0];
        }
        let size = size.clamp(1, len);
        let mut out = vec![size; len / size];
        if len % size != 0 {
            out.push(len % size);
        }
        out
    }
}

/// Every index of a grid in row-major order.
pub fn block_indices(grid: Vec<usize>) -> impl Iterator<Item = Vec<usize>> {
    let total: usize = grid.iter().product();
    (0..total).map(move |mut flat| {
        let mut idx = vec![0; grid.len()];
        for axis in (0..grid.len()).rev() {
            idx[axis] = flat % grid[axis];
            flat /= grid[axis];
        }
        idx
    })
}

/// Chunking chosen to aim at a block size in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkBytes(pub usize);

/// Automatic chunking: blocks of about [`DEFAULT_CHUNK_BYTES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Auto;

/// A chunking request, resolved against a shape and an element size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChunkSpec {
    /// About this many bytes per block, blocks as close to cubes as the shape allows.
    Bytes(usize),
    /// One block length per axis (`None`: the whole axis).
    PerAxis(Vec<Option<usize>>),
    /// The same block length on every axis.
    Every(usize),
    /// Explicit block lengths per axis.
    Explicit(Vec<Vec<usize>>),
}

/// Anything that describes chunking.
pub trait IntoChunks {
    /// The request.
    fn into_spec(self) -> ChunkSpec;
}

impl IntoChunks for ChunkSpec {
    fn into_spec(self) -> ChunkSpec {
        self
    }
}
impl IntoChunks for Auto {
    fn into_spec(self) -> ChunkSpec {
        ChunkSpec::Bytes(DEFAULT_CHUNK_BYTES)
    }
}
impl IntoChunks for ChunkBytes {
    fn into_spec(self) -> ChunkSpec {
        ChunkSpec::Bytes(self.0)
    }
}
impl IntoChunks for usize {
    fn into_spec(self) -> ChunkSpec {
        ChunkSpec::Every(self)
    }
}
impl IntoChunks for Chunks {
    fn into_spec(self) -> ChunkSpec {
        ChunkSpec::Explicit(self.0)
    }
}
impl IntoChunks for Vec<Vec<usize>> {
    fn into_spec(self) -> ChunkSpec {
        ChunkSpec::Explicit(self)
    }
}

/// A per-axis block length: `-1` (or `usize::MAX`) means the whole axis.
pub trait AxisChunk {
    /// `None` for the whole axis.
    fn length(self) -> Option<usize>;
}
impl AxisChunk for usize {
    fn length(self) -> Option<usize> {
        (self != usize::MAX).then_some(self)
    }
}
impl AxisChunk for i64 {
    fn length(self) -> Option<usize> {
        (self >= 0).then_some(self as usize)
    }
}
impl AxisChunk for i32 {
    fn length(self) -> Option<usize> {
        (self >= 0).then_some(self as usize)
    }
}

impl<C: AxisChunk + Copy> IntoChunks for Vec<C> {
    fn into_spec(self) -> ChunkSpec {
        ChunkSpec::PerAxis(self.into_iter().map(AxisChunk::length).collect())
    }
}
impl<C: AxisChunk + Copy> IntoChunks for &[C] {
    fn into_spec(self) -> ChunkSpec {
        ChunkSpec::PerAxis(self.iter().map(|c| c.length()).collect())
    }
}
impl<C: AxisChunk + Copy, const N: usize> IntoChunks for [C; N] {
    fn into_spec(self) -> ChunkSpec {
        ChunkSpec::PerAxis(self.iter().map(|c| c.length()).collect())
    }
}
macro_rules! tuple_chunks {
    ($($name:ident),+) => {
        impl<$($name: AxisChunk),+> IntoChunks for ($($name,)+) {
            #[allow(non_snake_case)]
            fn into_spec(self) -> ChunkSpec {
                let ($($name,)+) = self;
                ChunkSpec::PerAxis(vec![$($name.length()),+])
            }
        }
    };
}
tuple_chunks!(A);
tuple_chunks!(A, B);
tuple_chunks!(A, B, C);
tuple_chunks!(A, B, C, D);
tuple_chunks!(A, B, C, D, E);
tuple_chunks!(A, B, C, D, E, F);

/// Anything that is a shape: `(20_000, 20_000)`, `[3, 4]`, `vec![5]`, `10`.
pub trait IntoShape {
    /// The shape.
    fn into_shape(self) -> Vec<usize>;
}
impl IntoShape for usize {
    fn into_shape(self) -> Vec<usize> {
        vec![self]
    }
}
impl IntoShape for Vec<usize> {
    fn into_shape(self) -> Vec<usize> {
        self
    }
}
impl IntoShape for &[usize] {
    fn into_shape(self) -> Vec<usize> {
        self.to_vec()
    }
}
impl<const N: usize> IntoShape for [usize; N] {
    fn into_shape(self) -> Vec<usize> {
        self.to_vec()
    }
}
impl IntoShape for () {
    fn into_shape(self) -> Vec<usize> {
        Vec::new()
    }
}
macro_rules! tuple_shape {
    ($($name:ident),+) => {
        impl IntoShape for ($(tuple_shape!(@usize $name),)+) {
            fn into_shape(self) -> Vec<usize> {
                let ($($name,)+) = self;
                vec![$($name),+]
            }
        }
    };
    (@usize $name:ident) => { usize };
}
tuple_shape!(a);
tuple_shape!(a, b);
tuple_shape!(a, b, c);
tuple_shape!(a, b, c, d);
tuple_shape!(a, b, c, d, e);
tuple_shape!(a, b, c, d, e, f);

/// Resolves a request into block lengths for `shape` with elements of `itemsize` bytes.
pub fn normalize(shape: &[usize], spec: ChunkSpec, itemsize: usize) -> Result<Chunks, ArrayError> {
    let per_axis = |lens: Vec<Option<usize>>| -> Result<Chunks, ArrayError> {
        if lens.len() != shape.len() {
            return Err(ArrayError::ChunksRank {
                shape: shape.to_vec(),
                chunks: format!("{lens:?}"),
            });
        }
        Ok(Chunks(
            shape
                .iter()
                .zip(lens)
                .map(|(&len, c)| match c {
                    Some(0) if len > 0 => Err(ArrayError::ZeroChunk {
                        shape: shape.to_vec(),
                    }),
                    Some(c) => Ok(Chunks::regular(len, c)),
                    None => Ok(Chunks::regular(len, len)),
                })
                .collect::<Result<_, _>>()?,
        ))
    };
    match spec {
        ChunkSpec::Every(c) => per_axis(vec![Some(c); shape.len()]),
        ChunkSpec::PerAxis(lens) => per_axis(lens),
        ChunkSpec::Explicit(axes) => {
            if axes.len() != shape.len() {
                return Err(ArrayError::ChunksRank {
                    shape: shape.to_vec(),
                    chunks: format!("{axes:?}"),
                });
            }
            for (axis, (blocks, &len)) in axes.iter().zip(shape).enumerate() {
                if blocks.iter().sum::<usize>() != len || (len > 0 && blocks.contains(&0)) {
                    return Err(ArrayError::ChunksDontTile {
                        shape: shape.to_vec(),
                        axis,
                        chunks: blocks.clone(),
                    });
                }
            }
            let axes = axes
                .into_iter()
                .zip(shape)
                .map(|(b, &len)| if b.is_empty() && len == 0 { vec![0] } else { b })
                .collect();
            Ok(Chunks(axes))
        }
        ChunkSpec::Bytes(bytes) => Ok(auto(shape, bytes, itemsize)),
    }
}

/// Blocks of about `bytes`, as close to cubes as the shape allows.
fn auto(shape: &[usize], bytes: usize, itemsize: usize) -> Chunks {
    let target = (bytes / itemsize.max(1)).max(1) as f64;
    let mut sizes: Vec<usize> = shape.to_vec();
    // Shrink the largest axes until the block is small enough.
    let mut free: Vec<usize> = (0..shape.len()).filter(|&a| shape[a] > 1).collect();
    loop {
        let elems: f64 = sizes.iter().map(|&s| s.max(1) as f64).product();
        if elems <= target || free.is_empty() {
            break;
        }
        // The side a cube of `target` elements would have over the free axes.
        let fixed: f64 = (0..shape.len())
            .filter(|a| !free.contains(a))
            .map(|a| sizes[a].max(1) as f64)
            .product();
        let side = (target / fixed)
            .powf(1.0 / free.len() as f64)
            .floor()
            .max(1.0) as usize;
        let small: Vec<usize> = free.iter().copied().filter(|&a| shape[a] <= side).collect();
        if small.is_empty() {
            for &a in &free {
                sizes[a] = side;
            }
            break;
        }
        free.retain(|a| !small.contains(a));
    }
    Chunks(
        shape
            .iter()
            .zip(sizes)
            .map(|(&len, s)| Chunks::regular(len, s))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_and_irregular_chunks() {
        let c = normalize(&[10, 7], (4, -1i64).into_spec(), 8).unwrap();
        assert_eq!(c.0, vec![vec![4, 4, 2], vec![7]]);
        assert_eq!(c.grid(), vec![3, 1]);
        assert_eq!(c.block_offset(&[2, 0]), vec![8, 0]);
        let c = normalize(&[5], vec![vec![2, 3]].into_spec(), 8).unwrap();
        assert_eq!(c.0, vec![vec![2, 3]]);
        assert_eq!(
            normalize(&[0, 3], 2usize.into_spec(), 8).unwrap().0,
            vec![vec![0], vec![2, 1]]
        );
    }

    #[test]
    fn chunks_that_do_not_tile_name_the_shapes() {
        let err = normalize(&[5, 5], vec![vec![2, 2], vec![5]].into_spec(), 8).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("[5, 5]") && msg.contains("[2, 2]"), "{msg}");
        assert!(normalize(&[5, 5], (2,).into_spec(), 8).is_err());
        assert!(normalize(&[5], (0,).into_spec(), 8).is_err());
    }

    #[test]
    fn auto_chunks_aim_at_the_byte_target() {
        let c = normalize(&[20_000, 20_000], ChunkSpec::Bytes(128 << 20), 8).unwrap();
        let block: usize = c.max_block().iter().product::<usize>() * 8;
        assert!(
            block <= 128 << 20 && block > 32 << 20,
            "{:?}",
            c.max_block()
        );
        let c = normalize(&[10, 1_000_000_000], ChunkSpec::Bytes(1 << 20), 8).unwrap();
        assert_eq!(c.max_block()[0], 10);
        assert!(c.max_block().iter().product::<usize>() * 8 <= 1 << 20);
        let c = normalize(&[100], ChunkSpec::Bytes(1 << 30), 8).unwrap();
        assert_eq!(c.0, vec![vec![100]]);
    }

    #[test]
    fn block_indices_are_row_major() {
        let v: Vec<_> = block_indices(vec![2, 3]).collect();
        assert_eq!(v[0], vec![0, 0]);
        assert_eq!(v[1], vec![0, 1]);
        assert_eq!(v[3], vec![1, 0]);
        assert_eq!(v.len(), 6);
        assert_eq!(block_indices(vec![]).count(), 1);
    }
}
