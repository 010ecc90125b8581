//! The registered operations behind every array task. Each is one kernel that dispatches on
//! the block's dtype, so a stock worker runs any array workload.

#![allow(clippy::ptr_arg)]

use ndarray::ArrayD;
use oxidask_core::op::{Args, OpDef, OpRegistration, TaskFailure};
use oxidask_core::{task, Value};

use crate::block::{Block, Chunk};
use crate::blockwise::{apply_registered, overlap_block, ApplySpec, OverlapPlan};
use crate::creation::{create_block, BlockPos, Creation};
use crate::element::{DType, Element};
use crate::expr::{evaluate_with, EvalError, Expr};
use crate::indexing::{count_true_block, getitem_block, mask_select_block, GetItem};
use crate::manipulation::{relayout_block, Relayout};
use crate::rechunk::{merge as merge_blocks, MergePlan};
use crate::reduce_kernels::{combine, finish, reduce_block, Partial, Reduction};

/// Fills one block of a creation array.
#[task(crate = oxidask_core)]
pub fn create(recipe: &Creation, dtype: &DType, pos: &BlockPos) -> Block {
    create_block(recipe, *dtype, pos)
}

/// Evaluates a fused elementwise expression on one block of each input (some read with
/// permuted axes).
#[task(crate = oxidask_core)]
pub fn elemwise(
    spec: &(Expr, Vec<Option<Vec<usize>>>),
    inputs: &[&Block],
) -> Result<Block, EvalError> {
    evaluate_with(&spec.0, inputs, &spec.1)
}

/// Builds one block from pieces of others (rechunking).
#[task(crate = oxidask_core)]
pub fn merge(plan: &MergePlan, parts: &[&Block]) -> Result<Block, String> {
    merge_blocks(parts, plan)
}

/// Reduces one block to a partial result.
#[task(crate = oxidask_core)]
pub fn reduce_partial(
    kind: &Reduction,
    axes: &Vec<usize>,
    pos: &BlockPos,
    block: &Block,
) -> Partial {
    reduce_block(*kind, axes, block, pos)
}

/// Reduces an elementwise expression over one block, tile by tile, never building the block.
#[task(crate = oxidask_core)]
pub fn reduce_expr_partial(
    kind: &Reduction,
    axes: &Vec<usize>,
    pos: &BlockPos,
    spec: &(Expr, Vec<Option<Vec<usize>>>),
    inputs: &[&Block],
) -> Result<Partial, String> {
    crate::reduce_kernels::reduce_expr_block(*kind, axes, pos, &spec.0, &spec.1, inputs)
}

/// Combines partial results.
#[task(crate = oxidask_core)]
pub fn reduce_combine(kind: &Reduction, parts: &[&Partial]) -> Result<Partial, String> {
    combine(*kind, parts)
}

/// Combines the last partials and finishes them into the output block.
#[task(crate = oxidask_core)]
pub fn reduce_aggregate(
    spec: &(Reduction, Vec<usize>, bool, DType),
    parts: &[&Partial],
) -> Result<Block, String> {
    let (kind, axes, keepdims, out) = spec;
    let combined = combine(*kind, parts)?;
    finish(*kind, axes, *keepdims, *out, combined)
}

/// Slices one block (indexing).
#[task(crate = oxidask_core)]
pub fn getitem(item: &GetItem, block: &Block) -> Block {
    getitem_block(block, item)
}

/// Transposes or reshapes one block.
#[task(crate = oxidask_core)]
pub fn relayout(how: &Relayout, block: Block) -> Block {
    relayout_block(block, how)
}

/// The elements of a block where its mask block is true.
#[task(crate = oxidask_core)]
pub fn mask_select(block: &Block, mask: &Block) -> Result<Block, String> {
    mask_select_block(block, mask)
}

/// How many elements of a boolean block are true.
#[task(crate = oxidask_core)]
pub fn count_true(mask: &Block) -> Result<u64, String> {
    count_true_block(mask)
}

/// Sum over pairs of block matrix products.
#[task(crate = oxidask_core)]
pub fn matmul_blocks(a: &[&Block], b: &[&Block]) -> Result<Block, String> {
    crate::linalg::matmul_blocks(a, b)
}

/// Elementwise sum of blocks.
#[task(crate = oxidask_core)]
pub fn add_blocks(parts: &[&Block]) -> Result<Block, String> {
    crate::linalg::add_blocks(parts)
}

/// Calls a registered block function by name (map_blocks, blockwise, map_overlap).
#[task(crate = oxidask_core)]
pub fn apply(spec: &ApplySpec, pos: &BlockPos, blocks: Vec<Block>) -> Result<Block, TaskFailure> {
    apply_registered(spec, pos, blocks)
}

/// Assembles a block extended by its neighbours' edges.
#[task(crate = oxidask_core)]
pub fn overlap(plan: &OverlapPlan, parts: &[&Block]) -> Result<Block, String> {
    overlap_block(parts, plan)
}

/// Cumulative sum within one block.
#[task(crate = oxidask_core)]
pub fn cumsum_block(axis: &usize, block: &Block) -> Block {
    crate::scan::cumsum_block(*axis, block)
}

/// Top-k of blocks concatenated along an axis.
#[task(crate = oxidask_core)]
pub fn topk(k: &i64, axis: &usize, parts: &[&Block]) -> Result<Block, String> {
    crate::scan::topk_blocks(*k, *axis, parts)
}

/// Reads one block of an `.npy` file.
#[task(crate = oxidask_core)]
pub fn read_npy(
    path: &str,
    header: &crate::npy::NpyHeader,
    pos: &BlockPos,
) -> Result<Block, String> {
    crate::npy::read_npy_block(path, header, pos)
}

/// Reads one block of a Zarr array.
#[cfg(feature = "zarr")]
#[task(crate = oxidask_core)]
pub fn read_zarr(path: &str, dtype: &DType, pos: &BlockPos) -> Result<Block, String> {
    crate::zarr::read_zarr_block(path, *dtype, pos)
}

/// Writes one block into a Zarr array; returns the bytes written.
#[cfg(feature = "zarr")]
#[task(crate = oxidask_core)]
pub fn write_zarr(path: &str, pos: &BlockPos, block: &Block) -> Result<u64, String> {
    crate::zarr::write_zarr_block(path, pos, block)
}

fn wrap_typed<T: Element>(args: &mut Args, expect: &BlockPos) -> Result<Block, TaskFailure> {
    let a: ArrayD<T> = args.take(2, "block")?;
    if a.shape() != expect.shape.as_slice() {
        return Err(TaskFailure::msg(format!(
            "a delayed block has shape {:?}, but the array declared {:?} for the block at offset {:?}",
            a.shape(),
            expect.shape,
            expect.offset
        )));
    }
    Ok(T::wrap(Chunk::Dense(a)))
}

fn wrap_block_call(args: &mut Args) -> Result<Value, TaskFailure> {
    args.expect_len(3)?;
    let dtype: DType = args.take(0, "dtype")?;
    let expect: BlockPos = args.take(1, "expect")?;
    let block = match dtype {
        DType::F64 => wrap_typed::<f64>(args, &expect)?,
        DType::F32 => wrap_typed::<f32>(args, &expect)?,
        DType::I64 => wrap_typed::<i64>(args, &expect)?,
        DType::I32 => wrap_typed::<i32>(args, &expect)?,
        DType::U8 => wrap_typed::<u8>(args, &expect)?,
        DType::Bool => wrap_typed::<bool>(args, &expect)?,
    };
    Ok(Value::new(block))
}

/// Checks a delayed block against its declared shape and wraps it as a [`Block`]; its element
/// type is chosen by the `dtype` argument, so one operation serves every dtype.
#[allow(non_camel_case_types)]
pub struct wrap_block {}

static WRAP_BLOCK: OpDef = OpDef::new(
    concat!(module_path!(), "::wrap_block"),
    "wrap_block",
    "DType, BlockPos, ArrayD<dtype> -> Block",
    &["dtype", "expect", "block"],
    true,
    wrap_block_call,
);

oxidask_core::__private::inventory::submit! { OpRegistration(&WRAP_BLOCK) }

impl wrap_block {
    /// The registered operation.
    pub fn op() -> &'static OpDef {
        &WRAP_BLOCK
    }
}
