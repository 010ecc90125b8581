//! # oxidask-array
//!
//! Chunked n-dimensional arrays: Dask's array collection on [`ndarray`].
//!
//! An [`Array<T>`] (`T` one of `f64`, `f32`, `i64`, `i32`, `u8`, `bool`) is lazy: operations
//! build a task graph over its blocks, and `compute()` runs it on any oxidask scheduler and
//! returns an `ndarray::ArrayD<T>`.
//!
//! - Creation: [`ones`], [`zeros`], [`full`], [`arange`], [`linspace`], [`eye`],
//!   [`from_array`], [`from_vec`], [`from_delayed`], [`random`](random::RandomState).
//! - Elementwise arithmetic with NumPy broadcasting, comparisons, [`where_`], math
//!   functions, `astype` — chained steps fuse into one task per block; constant blocks
//!   (`ones`, `zeros`, `full`) are never allocated unless something needs dense data.
//! - Reductions (`sum`, `mean`, `var`, `std`, `min`, `max`, `argmin`, …) over any axes as
//!   tree reductions with a `split_every` knob ([`Reduce`]).
//! - [`Array::chunks`] / [`Array::rechunk`].
//!
//! ```
//! use oxidask_array as da;
//! use oxidask_core::Collection;
//! # oxidask_core::compute::with_scheduler(std::sync::Arc::new(oxidask_core::compute::Inline), || {
//! let ones = da::ones::<f64>((1000, 4000)).chunks((1000, 1000));
//! let fancy = (&ones * &ones).mean();
//! assert_eq!(fancy.compute_scalar().unwrap(), 1.0);
//! # });
//! ```

mod array;
mod block;
mod blockwise;
mod chunks;
mod creation;
mod element;
mod elementwise;
mod error;
mod expr;
mod indexing;
mod linalg;
mod manipulation;
mod npy;
pub mod ops;
mod rechunk;
mod reduce_kernels;
mod reduction;
mod scan;
#[cfg(feature = "zarr")]
mod zarr;
pub mod random_numbers {
    //! The counter-based generator behind [`RandomState`](crate::random::RandomState).
    pub use crate::random_impl::*;
}
#[path = "random.rs"]
mod random_impl;

pub use array::Array;
pub use block::{Block, Chunk};
pub use blockwise::{blockwise, ApplySpec, Boundary, OverlapPlan};
pub use chunks::{Auto, ChunkBytes, ChunkSpec, Chunks, IntoChunks, IntoShape, DEFAULT_CHUNK_BYTES};
pub use creation::{
    arange, eye, from_array, from_block_delayed, from_blocks, from_delayed, from_vec, full,
    linspace, ones, zeros, BlockPos, Creation, Distribution,
};
pub use element::{DType, Element, Float, Number};
pub use elementwise::{where_, where_scalar};
pub use error::ArrayError;
pub use expr::{BinaryOp, Expr, UnaryOp};
pub use indexing::GetItem;
pub use linalg::{dot, matmul, outer, tensordot};
pub use manipulation::{concatenate, stack, Relayout};
pub use ndarray::{s, NewAxis};
pub use npy::{
    from_npy, parse_header_bytes as parse_npy_header, read_header as read_npy_header, NpyHeader,
};
pub use reduce_kernels::{Partial, Reduction};
pub use reduction::{Reduce, DEFAULT_SPLIT_EVERY};
#[cfg(feature = "zarr")]
pub use zarr::{create_zarr, from_zarr, zarr_dtype};

/// Random arrays (`da.random`).
pub mod random {
    pub use crate::creation::{random, RandomState};
}
