//! oxidask-array against plain ndarray (the oracle), on every scheduler.

mod creation;
mod elementwise;
mod errors;
mod indexing;
mod manipulation;
mod more_ops;
mod npy;
mod reductions;
mod streaming;
mod support;
mod zarr;
