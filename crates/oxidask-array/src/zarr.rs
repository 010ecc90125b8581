//! Zarr v3 on the local filesystem, through the `zarrs` crate.
//!
//! `to_zarr` writes one task per block (blocks are made regular first, so each block is one
//! Zarr chunk and no two tasks touch the same chunk) into a temporary directory renamed into
//! place when every block is written: a failed write leaves nothing behind. `from_zarr`
//! reads each block's region lazily, whatever the stored chunking.

use std::sync::Arc;

use ndarray::{ArrayD, IxDyn};
use oxidask_core::tokenize::Tokenizer;
use oxidask_core::{Arg, Collection, Task, Value};
use zarrs::array::{data_type, ArrayBuilder, ArraySubset};
use zarrs::filesystem::FilesystemStore;

use crate::array::{block_key, Array, Layer, Node, Source};
use crate::block::{Block, Chunk};
use crate::chunks::{normalize, ChunkSpec};
use crate::creation::BlockPos;
use crate::element::{DType, Element};
use crate::error::ArrayError;

fn zarr_type(d: DType) -> zarrs::array::DataType {
    match d {
        DType::F64 => data_type::float64(),
        DType::F32 => data_type::float32(),
        DType::I64 => data_type::int64(),
        DType::I32 => data_type::int32(),
        DType::U8 => data_type::uint8(),
        DType::Bool => data_type::bool(),
    }
}

fn our_type(t: &zarrs::array::DataType) -> Option<DType> {
    [
        DType::F64,
        DType::F32,
        DType::I64,
        DType::I32,
        DType::U8,
        DType::Bool,
    ]
    .into_iter()
    .find(|d| &zarr_type(*d) == t)
}

fn open(path: &str) -> Result<zarrs::array::Array<FilesystemStore>, String> {
    let store = Arc::new(FilesystemStore::new(path).map_err(|e| format!("{path}: {e}"))?);
    zarrs::array::Array::open(store, "/").map_err(|e| format!("{path}: {e}"))
}

fn subset(pos: &BlockPos) -> ArraySubset {
    let ranges: Vec<std::ops::Range<u64>> = pos
        .offset
        .iter()
        .zip(&pos.shape)
        .map(|(&o, &n)| o as u64..(o + n) as u64)
        .collect();
    ArraySubset::new_with_ranges(&ranges)
}

fn read_typed<T: Element + zarrs::array::ElementOwned>(
    path: &str,
    pos: &BlockPos,
) -> Result<Chunk<T>, String> {
    let array = open(path)?;
    let values: Vec<T> = array
        .retrieve_array_subset::<Vec<T>>(&subset(pos))
        .map_err(|e| format!("{path}: reading block at {:?}: {e}", pos.offset))?;
    ArrayD::from_shape_vec(IxDyn(&pos.shape), values)
        .map(Chunk::Dense)
        .map_err(|e| e.to_string())
}

/// Reads one block of a Zarr array (the kernel behind [`ops::read_zarr`](crate::ops::read_zarr)).
pub(crate) fn read_zarr_block(path: &str, dtype: DType, pos: &BlockPos) -> Result<Block, String> {
    Ok(match dtype {
        DType::F64 => Block::F64(read_typed(path, pos)?),
        DType::F32 => Block::F32(read_typed(path, pos)?),
        DType::I64 => Block::I64(read_typed(path, pos)?),
        DType::I32 => Block::I32(read_typed(path, pos)?),
        DType::U8 => Block::U8(read_typed(path, pos)?),
        DType::Bool => Block::Bool(read_typed(path, pos)?),
    })
}

fn write_typed<T: Element + zarrs::array::Element>(
    path: &str,
    pos: &BlockPos,
    c: &Chunk<T>,
) -> Result<u64, String> {
    let array = open(path)?;
    let dense = c.to_dense();
    let dense = dense.as_standard_layout();
    let values = dense.as_slice().expect("standard layout");
    array
        .store_array_subset(&subset(pos), values)
        .map_err(|e| format!("{path}: writing block at {:?}: {e}", pos.offset))?;
    Ok(std::mem::size_of_val(values) as u64)
}

/// Writes one block into a Zarr array (the kernel behind [`ops::write_zarr`](crate::ops::write_zarr)).
pub(crate) fn write_zarr_block(path: &str, pos: &BlockPos, block: &Block) -> Result<u64, String> {
    match block {
        Block::F64(c) => write_typed(path, pos, c),
        Block::F32(c) => write_typed(path, pos, c),
        Block::I64(c) => write_typed(path, pos, c),
        Block::I32(c) => write_typed(path, pos, c),
        Block::U8(c) => write_typed(path, pos, c),
        Block::Bool(c) => write_typed(path, pos, c),
    }
}

/// An array backed by a Zarr v3 array directory, read lazily; `chunks` defaults to the stored
/// chunking.
pub fn from_zarr<T: Element>(
    path: impl AsRef<std::path::Path>,
    chunks: Option<ChunkSpec>,
) -> Array<T> {
    let path = path.as_ref().to_string_lossy().into_owned();
    let go = || -> Result<Arc<Node>, ArrayError> {
        let err = |detail: String| ArrayError::Io {
            path: path.clone(),
            detail,
        };
        let array = open(&path).map_err(err)?;
        let dtype = our_type(array.data_type()).ok_or_else(|| {
            err(format!(
                "element type {:?} is not supported",
                array.data_type()
            ))
        })?;
        if dtype != T::DTYPE {
            return Err(err(format!(
                "holds {dtype} but the array was declared {}",
                T::DTYPE
            )));
        }
        let shape: Vec<usize> = array.shape().iter().map(|&d| d as usize).collect();
        let spec = match chunks {
            Some(c) => c,
            None => {
                let stored = array
                    .chunk_shape(&vec![0; shape.len()])
                    .map_err(|e| err(e.to_string()))?;
                ChunkSpec::PerAxis(stored.iter().map(|c| Some(c.get() as usize)).collect())
            }
        };
        let chunks = normalize(&shape, spec, T::DTYPE.size())?;
        let mut t = Tokenizer::new();
        t.write_str("from_zarr");
        t.write_str(&path);
        let modified = std::fs::metadata(std::path::Path::new(&path).join("zarr.json"))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as u64);
        t.write_u64(modified);
        t.write_data(&chunks);
        let token = t.finish();
        let grid = chunks.grid();
        let (path_v, dtype_v) = (Value::new(path.clone()), Value::new(dtype));
        let mut tasks = Vec::new();
        let mut outputs = Vec::new();
        for idx in chunks.indices() {
            let key = block_key("from-zarr", token, &idx, &grid);
            let pos = BlockPos {
                shape: chunks.block_shape(&idx),
                offset: chunks.block_offset(&idx),
                total: shape.clone(),
            };
            tasks.push((
                key,
                Task::call(
                    crate::ops::read_zarr::op(),
                    [
                        Arg::Value(path_v.clone()),
                        Arg::Value(dtype_v.clone()),
                        Arg::Value(Value::new(pos)),
                    ],
                ),
            ));
            outputs.push(key);
        }
        let layer = Arc::new(Layer {
            tasks,
            outputs,
            deps: Vec::new(),
        });
        Ok(Node::new(
            "from-zarr",
            shape,
            chunks,
            T::DTYPE,
            token,
            Source::Layer(layer),
        ))
    };
    Array::from_result(go())
}

impl<T: Element> Array<T> {
    /// Writes the array as a Zarr v3 array directory at `path` (which must not exist), one
    /// task per block on the current scheduler. Irregular chunks are first made regular (Zarr
    /// needs one chunk shape).
    pub fn to_zarr(&self, path: impl AsRef<std::path::Path>) -> Result<(), oxidask_core::Error> {
        let path = path.as_ref();
        let shown = path.to_string_lossy().into_owned();
        let err = |detail: String| -> oxidask_core::Error {
            ArrayError::Io {
                path: shown.clone(),
                detail,
            }
            .into()
        };
        if path.exists() {
            return Err(err("already exists; choose a new path or remove it".into()));
        }
        let node = self.node()?.clone();
        // Regular chunks: the largest block length on every axis.
        let regular: Vec<Option<usize>> = node
            .chunks
            .max_block()
            .into_iter()
            .map(|c| Some(c.max(1)))
            .collect();
        let arr = self.rechunk(ChunkSpec::PerAxis(regular.clone()));
        let node = arr.node()?.clone();
        let tmp = path.with_extension("zarr-partial");
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| err(e.to_string()))?;
        let tmp_s = tmp.to_string_lossy().into_owned();
        let result = (|| -> Result<(), oxidask_core::Error> {
            let store = Arc::new(FilesystemStore::new(&tmp).map_err(|e| err(e.to_string()))?);
            let chunk_shape: Vec<u64> = regular.iter().map(|c| c.unwrap_or(1) as u64).collect();
            let shape: Vec<u64> = node.shape.iter().map(|&d| d as u64).collect();
            let fill = Block::full::<T>(Vec::new(), T::default());
            let array = match fill {
                Block::F64(_) => ArrayBuilder::new(shape, chunk_shape, zarr_type(T::DTYPE), 0.0f64)
                    .build(store, "/"),
                Block::F32(_) => ArrayBuilder::new(shape, chunk_shape, zarr_type(T::DTYPE), 0.0f32)
                    .build(store, "/"),
                Block::I64(_) => ArrayBuilder::new(shape, chunk_shape, zarr_type(T::DTYPE), 0i64)
                    .build(store, "/"),
                Block::I32(_) => ArrayBuilder::new(shape, chunk_shape, zarr_type(T::DTYPE), 0i32)
                    .build(store, "/"),
                Block::U8(_) => ArrayBuilder::new(shape, chunk_shape, zarr_type(T::DTYPE), 0u8)
                    .build(store, "/"),
                Block::Bool(_) => ArrayBuilder::new(
                    shape,
                    chunk_shape,
                    zarr_type(T::DTYPE),
                    zarrs::array::FillValue::from(false),
                )
                .build(store, "/"),
            }
            .map_err(|e| err(e.to_string()))?;
            array.store_metadata().map_err(|e| err(e.to_string()))?;
            // One write task per block, computed together.
            let mut graph = oxidask_core::Graph::new();
            arr.build_graph(&mut graph);
            let mut t = Tokenizer::new();
            t.write_str("to_zarr");
            t.write_str(&tmp_s);
            t.write_token(node.token);
            let token = t.finish();
            let grid = node.chunks.grid();
            let path_v = Value::new(tmp_s.clone());
            let mut keys = Vec::new();
            for idx in node.chunks.indices() {
                let key = block_key("to-zarr", token, &idx, &grid);
                let pos = BlockPos {
                    shape: node.chunks.block_shape(&idx),
                    offset: node.chunks.block_offset(&idx),
                    total: node.shape.clone(),
                };
                graph.insert(
                    key,
                    Task::call(
                        crate::ops::write_zarr::op(),
                        [
                            Arg::Value(path_v.clone()),
                            Arg::Value(Value::new(pos)),
                            Arg::Key(node.block(&idx)),
                        ],
                    ),
                );
                keys.push(key);
            }
            oxidask_core::compute::current_scheduler()?.compute(graph, &keys)?;
            Ok(())
        })();
        match result {
            Ok(()) => std::fs::rename(&tmp, path).map_err(|e| err(e.to_string())),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                Err(e)
            }
        }
    }
}

/// The element type stored in the Zarr v3 array at `path` (to pick the `T` of
/// [`from_zarr`] at run time).
pub fn zarr_dtype(path: impl AsRef<std::path::Path>) -> Result<DType, ArrayError> {
    let path = path.as_ref().to_string_lossy().into_owned();
    let err = |detail: String| ArrayError::Io {
        path: path.clone(),
        detail,
    };
    let array = open(&path).map_err(err)?;
    our_type(array.data_type()).ok_or_else(|| {
        err(format!(
            "element type {:?} is not supported",
            array.data_type()
        ))
    })
}

/// Creates an empty Zarr v3 array directory at `path` (its metadata only) of `shape`, chunk
/// shape `chunk_shape` and `dtype`, for blocks written by [`ops::write_zarr`](crate::ops::write_zarr)
/// tasks scheduled by the caller (what [`Array::to_zarr`] does on the current scheduler).
pub fn create_zarr(
    path: impl AsRef<std::path::Path>,
    shape: &[usize],
    chunk_shape: &[usize],
    dtype: DType,
) -> Result<(), ArrayError> {
    let path = path.as_ref();
    let err = |detail: String| ArrayError::Io {
        path: path.to_string_lossy().into_owned(),
        detail,
    };
    std::fs::create_dir_all(path).map_err(|e| err(e.to_string()))?;
    let store = Arc::new(FilesystemStore::new(path).map_err(|e| err(e.to_string()))?);
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let chunk_shape: Vec<u64> = chunk_shape.iter().map(|&c| c.max(1) as u64).collect();
    let t = zarr_type(dtype);
    let array = match dtype {
        DType::F64 => ArrayBuilder::new(shape, chunk_shape, t, 0.0f64).build(store, "/"),
        DType::F32 => ArrayBuilder::new(shape, chunk_shape, t, 0.0f32).build(store, "/"),
        DType::I64 => ArrayBuilder::new(shape, chunk_shape, t, 0i64).build(store, "/"),
        DType::I32 => ArrayBuilder::new(shape, chunk_shape, t, 0i32).build(store, "/"),
        DType::U8 => ArrayBuilder::new(shape, chunk_shape, t, 0u8).build(store, "/"),
        DType::Bool => {
            ArrayBuilder::new(shape, chunk_shape, t, zarrs::array::FillValue::from(false))
                .build(store, "/")
        }
    }
    .map_err(|e| err(e.to_string()))?;
    array.store_metadata().map_err(|e| err(e.to_string()))
}
