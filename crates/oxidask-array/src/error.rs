//! Errors in building an array computation; each names the shapes, axes or chunks involved.

/// Why an array operation is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArrayError {
    /// Chunking has a different number of axes than the shape.
    #[error("chunks {chunks} have a different number of axes than shape {shape:?}")]
    ChunksRank {
        /// The array's shape.
        shape: Vec<usize>,
        /// The chunking asked for.
        chunks: String,
    },
    /// A block length of zero on a non-empty axis.
    #[error("a block length of 0 cannot cut shape {shape:?}; use a positive length or -1 for the whole axis")]
    ZeroChunk {
        /// The array's shape.
        shape: Vec<usize>,
    },
    /// Explicit block lengths do not add up to the axis length.
    #[error("chunks {chunks:?} do not tile axis {axis} of shape {shape:?} (they must add up to {len})", len = shape[*axis])]
    ChunksDontTile {
        /// The array's shape.
        shape: Vec<usize>,
        /// The axis.
        axis: usize,
        /// The block lengths given.
        chunks: Vec<usize>,
    },
    /// Operand shapes do not broadcast.
    #[error("operands could not be broadcast together in `{op}`: shapes {a:?} and {b:?}")]
    Broadcast {
        /// The operation.
        op: &'static str,
        /// One shape.
        a: Vec<usize>,
        /// The other.
        b: Vec<usize>,
    },
    /// An axis beyond the array's dimensions.
    #[error("axis {axis} is out of bounds for an array of dimension {ndim} (shape {shape:?})")]
    AxisOutOfRange {
        /// The axis asked for (as given).
        axis: isize,
        /// The number of dimensions.
        ndim: usize,
        /// The array's shape.
        shape: Vec<usize>,
    },
    /// The same axis given twice.
    #[error("axis {axis} is repeated in {axes:?}")]
    RepeatedAxis {
        /// The axis.
        axis: usize,
        /// All axes given.
        axes: Vec<isize>,
    },
    /// An index beyond an axis.
    #[error("index {index} is out of bounds for axis {axis} with size {len} (shape {shape:?})")]
    IndexOutOfRange {
        /// The index.
        index: isize,
        /// The axis.
        axis: usize,
        /// The axis length.
        len: usize,
        /// The array's shape.
        shape: Vec<usize>,
    },
    /// More indices than dimensions.
    #[error("too many indices for an array of shape {shape:?}: {given} were given")]
    TooManyIndices {
        /// The array's shape.
        shape: Vec<usize>,
        /// How many indices.
        given: usize,
    },
    /// A zero slice step.
    #[error("slice step cannot be zero (axis {axis} of shape {shape:?})")]
    ZeroStep {
        /// The axis.
        axis: usize,
        /// The array's shape.
        shape: Vec<usize>,
    },
    /// A boolean mask of the wrong shape.
    #[error("boolean mask of shape {mask:?} does not match array shape {shape:?}")]
    MaskShape {
        /// The mask's shape.
        mask: Vec<usize>,
        /// The array's shape.
        shape: Vec<usize>,
    },
    /// A reshape that changes the number of elements.
    #[error("cannot reshape an array of shape {from:?} ({from_len} elements) into shape {to:?} ({to_len} elements)", from_len = from.iter().product::<usize>(), to_len = to.iter().product::<usize>())]
    ReshapeSize {
        /// The current shape.
        from: Vec<usize>,
        /// The shape asked for.
        to: Vec<usize>,
    },
    /// A reshape the chunk boundaries do not allow.
    #[error("cannot reshape {from:?} (chunks {chunks:?}) into {to:?} without moving data across blocks; rechunk first (e.g. `.rechunk(-1)` on the axes being merged or split)")]
    ReshapeChunks {
        /// The current shape.
        from: Vec<usize>,
        /// Its chunks.
        chunks: Vec<Vec<usize>>,
        /// The shape asked for.
        to: Vec<usize>,
    },
    /// Operand shapes that do not fit an operation (matmul, concatenate, stack, where).
    #[error("`{op}`: {detail}")]
    Shapes {
        /// The operation.
        op: &'static str,
        /// What did not fit, with the shapes.
        detail: String,
    },
    /// An operation that does not apply to a dtype.
    #[error("`{op}` does not apply to arrays of {dtype}")]
    DType {
        /// The operation.
        op: &'static str,
        /// The dtype.
        dtype: crate::element::DType,
    },
    /// More block dimensions than a key can carry.
    #[error("an array of {ndim} dimensions is not supported (at most {max})")]
    TooManyDims {
        /// The number of dimensions.
        ndim: usize,
        /// The maximum.
        max: usize,
    },
    /// An invalid argument value (k of topk, ddof, a negative count…).
    #[error("`{op}`: {detail}")]
    Argument {
        /// The operation.
        op: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// Reading or writing a file.
    #[error("{path}: {detail}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        detail: String,
    },
}

impl From<ArrayError> for oxidask_core::Error {
    fn from(e: ArrayError) -> Self {
        oxidask_core::Error::Collection(Box::new(e))
    }
}
