//! `.npy` files: read lazily block by block, written one row of blocks at a time.
//!
//! Reading never loads the whole file: each block's task reads only its rows from the file
//! (row-major runs), so arrays larger than memory can be processed. Writing computes one row of
//! blocks at a time and appends it, so memory holds one row of blocks. Format: NumPy's NPY
//! version 1.0/2.0, little-endian, C order.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::Arc;

use ndarray::{ArrayD, IxDyn};
use oxidask_core::tokenize::Tokenizer;
use oxidask_core::{Arg, Collection, Task, Value};

use crate::array::{block_key, Array, Layer, Node, Source};
use crate::block::{Block, Chunk};
use crate::chunks::{normalize, IntoChunks};
use crate::creation::BlockPos;
use crate::element::{DType, Element};
use crate::error::ArrayError;

const MAGIC: &[u8] = b"\x93NUMPY";

fn descr(d: DType) -> &'static str {
    match d {
        DType::F64 => "<f8",
        DType::F32 => "<f4",
        DType::I64 => "<i8",
        DType::I32 => "<i4",
        DType::U8 => "|u1",
        DType::Bool => "|b1",
    }
}

fn parse_descr(s: &str) -> Option<DType> {
    Some(match s {
        "<f8" => DType::F64,
        "<f4" => DType::F32,
        "<i8" => DType::I64,
        "<i4" => DType::I32,
        "|u1" | "<u1" => DType::U8,
        "|b1" | "<b1" => DType::Bool,
        _ => return None,
    })
}

/// What an `.npy` header says.
#[derive(Clone, Debug, PartialEq, oxidask_core::Data)]
#[data(crate = oxidask_core)]
pub struct NpyHeader {
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<usize>,
    /// Where the data starts.
    pub data_offset: u64,
}

fn io(path: &str, e: impl std::fmt::Display) -> ArrayError {
    ArrayError::Io {
        path: path.to_owned(),
        detail: e.to_string(),
    }
}

/// Reads and checks an `.npy` header.
pub fn read_header(path: &str) -> Result<NpyHeader, ArrayError> {
    let mut f = File::open(path).map_err(|e| io(path, e))?;
    let file_len = f.metadata().map_err(|e| io(path, e))?.len();
    parse_header(&mut f, file_len, path)
}

/// Checks the `.npy` header of bytes held in memory (the start of a file of `bytes.len()`
/// bytes, e.g. received or fuzzed): the same checks as [`read_header`], which reads a file.
pub fn parse_header_bytes(bytes: &[u8]) -> Result<NpyHeader, ArrayError> {
    parse_header(&mut &bytes[..], bytes.len() as u64, "<bytes>")
}

/// Reads and checks the header at the start of `f`, a file of `file_len` bytes named `path`.
fn parse_header(f: &mut impl Read, file_len: u64, path: &str) -> Result<NpyHeader, ArrayError> {
    let mut pre = [0u8; 10];
    f.read_exact(&mut pre)
        .map_err(|_| io(path, "too short to be an .npy file"))?;
    if &pre[..6] != MAGIC {
        return Err(io(path, "not an .npy file (bad magic)"));
    }
    let (len, start) = match pre[6] {
        1 => (u16::from_le_bytes([pre[8], pre[9]]) as usize, 10u64),
        2 | 3 => {
            let mut more = [0u8; 2];
            f.read_exact(&mut more).map_err(|e| io(path, e))?;
            (
                u32::from_le_bytes([pre[8], pre[9], more[0], more[1]]) as usize,
                12u64,
            )
        }
        v => return Err(io(path, format!("unsupported .npy version {v}"))),
    };
    if len > 1 << 20 {
        return Err(io(path, "implausibly long .npy header"));
    }
    let mut header = vec![0u8; len];
    f.read_exact(&mut header)
        .map_err(|_| io(path, "truncated .npy header"))?;
    let text = String::from_utf8_lossy(&header);
    let field = |name: &str| -> Option<String> {
        let at = text.find(&format!("'{name}'"))?;
        let rest = &text[at + name.len() + 2..];
        let colon = rest.find(':')?;
        Some(rest[colon + 1..].trim_start().to_owned())
    };
    let descr_text = field("descr").ok_or_else(|| io(path, "header has no 'descr'"))?;
    let descr_val = descr_text
        .trim_start_matches('\'')
        .split('\'')
        .next()
        .unwrap_or("");
    let dtype = parse_descr(descr_val).ok_or_else(|| {
        io(
            path,
            format!(
                "element type {descr_val} is not supported (f8, f4, i8, i4, u1, b1 little-endian)"
            ),
        )
    })?;
    let fortran =
        field("fortran_order").ok_or_else(|| io(path, "header has no 'fortran_order'"))?;
    if fortran.starts_with("True") {
        return Err(io(
            path,
            "Fortran-ordered .npy files are not supported; save with order='C'",
        ));
    }
    let shape_text = field("shape").ok_or_else(|| io(path, "header has no 'shape'"))?;
    let inner = shape_text
        .trim_start_matches('(')
        .split(')')
        .next()
        .unwrap_or("");
    let shape: Vec<usize> = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| io(path, format!("bad shape entry `{s}`")))
        })
        .collect::<Result<_, _>>()?;
    let data_offset = start + len as u64;
    // Checked: a header may declare a shape whose size overflows.
    let want = shape
        .iter()
        .try_fold(dtype.size() as u64, |acc, &d| acc.checked_mul(d as u64))
        .and_then(|bytes| bytes.checked_add(data_offset))
        .ok_or_else(|| {
            io(
                path,
                format!("shape {shape:?} is too large: its size overflows 64 bits"),
            )
        })?;
    let have = file_len;
    if have < want {
        return Err(io(
            path,
            format!("truncated: shape {shape:?} needs {want} bytes, the file has {have}"),
        ));
    }
    Ok(NpyHeader {
        dtype,
        shape,
        data_offset,
    })
}

fn header_bytes(dtype: DType, shape: &[usize]) -> Vec<u8> {
    let shape_text = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape_text}, }}",
        descr(dtype)
    );
    // Pad so magic + version + length + dict + newline is a multiple of 64.
    let total = 10 + dict.len() + 1;
    dict.push_str(&" ".repeat((64 - total % 64) % 64));
    dict.push('\n');
    let mut out = Vec::with_capacity(10 + dict.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

fn to_le<T: Element>(values: &[T], out: &mut Vec<u8>) {
    let mut w = oxidask_core::codec::Writer::new(out);
    T::encode_slice(values, &mut w);
}

fn read_block<T: Element>(
    path: &str,
    header: &NpyHeader,
    pos: &BlockPos,
) -> Result<Chunk<T>, String> {
    let size = std::mem::size_of::<T>() as u64;
    let mut f = File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let nd = pos.shape.len();
    let count: usize = pos.shape.iter().product();
    let mut values: Vec<T> = Vec::with_capacity(count);
    if nd == 0 {
        let mut buf = vec![0u8; size as usize];
        f.seek(SeekFrom::Start(header.data_offset))
            .map_err(|e| format!("{path}: {e}"))?;
        f.read_exact(&mut buf).map_err(|e| format!("{path}: {e}"))?;
        let mut r = oxidask_core::codec::Reader::new(&buf);
        values.extend(T::decode_vec(&mut r, 1).map_err(|e| format!("{path}: {e}"))?);
    } else {
        let mut strides = vec![1u64; nd];
        for a in (0..nd - 1).rev() {
            strides[a] = strides[a + 1] * pos.total[a + 1] as u64;
        }
        let inner = pos.shape[nd - 1];
        let rows: usize = pos.shape[..nd - 1].iter().product();
        let mut idx = vec![0usize; nd - 1];
        let mut buf = vec![0u8; inner * size as usize];
        for _ in 0..rows {
            let mut start = pos.offset[nd - 1] as u64;
            for a in 0..nd - 1 {
                start += (pos.offset[a] + idx[a]) as u64 * strides[a];
            }
            f.seek(SeekFrom::Start(header.data_offset + start * size))
                .map_err(|e| format!("{path}: {e}"))?;
            f.read_exact(&mut buf)
                .map_err(|e| format!("{path}: reading block at {:?}: {e}", pos.offset))?;
            let mut r = oxidask_core::codec::Reader::new(&buf);
            values.extend(T::decode_vec(&mut r, inner).map_err(|e| format!("{path}: {e}"))?);
            for a in (0..nd - 1).rev() {
                idx[a] += 1;
                if idx[a] < pos.shape[a] {
                    break;
                }
                idx[a] = 0;
            }
        }
    }
    Ok(Chunk::Dense(
        ArrayD::from_shape_vec(IxDyn(&pos.shape), values).map_err(|e| e.to_string())?,
    ))
}

/// Reads one block of an `.npy` file (the kernel behind [`ops::read_npy`](crate::ops::read_npy)).
pub(crate) fn read_npy_block(
    path: &str,
    header: &NpyHeader,
    pos: &BlockPos,
) -> Result<Block, String> {
    Ok(match header.dtype {
        DType::F64 => Block::F64(read_block(path, header, pos)?),
        DType::F32 => Block::F32(read_block(path, header, pos)?),
        DType::I64 => Block::I64(read_block(path, header, pos)?),
        DType::I32 => Block::I32(read_block(path, header, pos)?),
        DType::U8 => Block::U8(read_block(path, header, pos)?),
        DType::Bool => Block::Bool(read_block(path, header, pos)?),
    })
}

/// An array backed by an `.npy` file, read block by block when computed.
///
/// The file's element type must be `T`; the error names both otherwise.
pub fn from_npy<T: Element>(
    path: impl AsRef<std::path::Path>,
    chunks: impl IntoChunks,
) -> Array<T> {
    let path = path.as_ref().to_string_lossy().into_owned();
    let go = || -> Result<Arc<Node>, ArrayError> {
        let header = read_header(&path)?;
        if header.dtype != T::DTYPE {
            return Err(ArrayError::Io {
                path: path.clone(),
                detail: format!(
                    "holds {} but the array was declared {}",
                    header.dtype,
                    T::DTYPE
                ),
            });
        }
        let chunks = normalize(&header.shape, chunks.into_spec(), T::DTYPE.size())?;
        let modified = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as u64);
        let mut t = Tokenizer::new();
        t.write_str("from_npy");
        t.write_str(&path);
        t.write_u64(modified);
        t.write_data(&chunks);
        let token = t.finish();
        let grid = chunks.grid();
        let path_v = Value::new(path.clone());
        let header_v = Value::new(header.clone());
        let mut tasks = Vec::new();
        let mut outputs = Vec::new();
        for idx in chunks.indices() {
            let key = block_key("from-npy", token, &idx, &grid);
            let pos = BlockPos {
                shape: chunks.block_shape(&idx),
                offset: chunks.block_offset(&idx),
                total: header.shape.clone(),
            };
            tasks.push((
                key,
                Task::call(
                    crate::ops::read_npy::op(),
                    [
                        Arg::Value(path_v.clone()),
                        Arg::Value(header_v.clone()),
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
            "from-npy",
            header.shape.clone(),
            chunks,
            T::DTYPE,
            token,
            Source::Layer(layer),
        ))
    };
    Array::from_result(go())
}

impl<T: Element> Array<T> {
    /// Writes the array to an `.npy` file, computing one row of blocks at a time (so memory
    /// holds one row of blocks, whatever the array's size). Written to a temporary name and
    /// renamed at the end: a failure leaves no partial file.
    pub fn to_npy(&self, path: impl AsRef<std::path::Path>) -> Result<(), oxidask_core::Error> {
        let path = path.as_ref();
        let shown = path.to_string_lossy().into_owned();
        let node = self.node()?.clone();
        let tmp = path.with_extension("npy.partial");
        let result = (|| -> Result<(), oxidask_core::Error> {
            let mut f = std::io::BufWriter::new(File::create(&tmp).map_err(|e| io(&shown, e))?);
            f.write_all(&header_bytes(T::DTYPE, &node.shape))
                .map_err(|e| io(&shown, e))?;
            let block_rows = node.chunks.0.first().map_or(1, Vec::len);
            let mut buf = Vec::new();
            for r in 0..block_rows {
                let part = if node.shape.is_empty() {
                    self.clone()
                } else {
                    let (start, len) = (node.chunks.block_offset(&[r])[0], node.chunks.0[0][r]);
                    self.slice([ndarray::SliceInfoElem::Slice {
                        start: start as isize,
                        end: Some((start + len) as isize),
                        step: 1,
                    }])
                };
                let slab: ArrayD<T> = part.compute()?;
                let slab = slab.as_standard_layout();
                buf.clear();
                to_le(slab.as_slice().expect("standard layout"), &mut buf);
                f.write_all(&buf).map_err(|e| io(&shown, e))?;
            }
            f.flush().map_err(|e| io(&shown, e))?;
            Ok(())
        })();
        match result {
            Ok(()) => std::fs::rename(&tmp, path).map_err(|e| io(&shown, e).into()),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }
}
