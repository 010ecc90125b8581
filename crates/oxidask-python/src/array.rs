//! Dask's array for Python (`oxidask.array`) over `oxidask-array`: a [`PyArrayNode`] is a
//! handle on an untyped array of the Rust crate (any of its dtypes), so every operation builds
//! the crate's graph of registered kernels and stock workers run it. The Python package
//! (`python/oxidask/array`) gives it Dask's names, broadcasting and dtype promotion.
//!
//! Blocks meet Python at two registered operations: [`TO_NUMPY_OP`] turns a block into a
//! `numpy.ndarray` over the block's own memory (no copy for dense blocks), [`FROM_NUMPY_OP`]
//! turns a Python result (a block computed by a Python function) back into a block, so one
//! graph mixes Rust kernels and Python functions on every scheduler.

use bytes::Bytes;
use ndarray::{ArrayD, ArrayViewD, IxDyn, SliceInfoElem};
use oxidask::array::{
    self as da, Array, ArrayError, BinaryOp, Block, Boundary, Chunk, ChunkSpec, Chunks, DType,
    Element, Reduce, UnaryOp,
};
use oxidask_core::op::{Args, Input, OpDef, OpRegistration, TaskFailure};
use oxidask_core::tokenize::Tokenizer;
use oxidask_core::{Arg, Collection, Delayed, Key, Task, Value};
use pyo3::exceptions::{PyIndexError, PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use rustc_hash::FxHashMap;

use crate::delayed::PyDelayed;
use crate::gil;
use crate::pyvalue::PyValue;

/// An array of any of the crate's dtypes.
#[derive(Clone)]
pub enum AnyArray {
    /// float64
    F64(Array<f64>),
    /// float32
    F32(Array<f32>),
    /// int64
    I64(Array<i64>),
    /// int32
    I32(Array<i32>),
    /// uint8
    U8(Array<u8>),
    /// bool
    Bool(Array<bool>),
}

/// Element types with their variant of [`AnyArray`].
pub trait El: Element {
    /// Wraps a typed array.
    fn any(a: Array<Self>) -> AnyArray;
    /// The typed array, if `a` holds this type.
    fn get(a: &AnyArray) -> Option<&Array<Self>>;
    /// A Python scalar as this type.
    fn scalar(v: &Bound<'_, PyAny>) -> PyResult<Self>;
}

macro_rules! el {
    ($t:ty, $v:ident, $ex:ty, $conv:expr) => {
        impl El for $t {
            fn any(a: Array<Self>) -> AnyArray {
                AnyArray::$v(a)
            }
            fn get(a: &AnyArray) -> Option<&Array<Self>> {
                match a {
                    AnyArray::$v(x) => Some(x),
                    _ => None,
                }
            }
            fn scalar(v: &Bound<'_, PyAny>) -> PyResult<Self> {
                let x: $ex = v.extract()?;
                Ok($conv(x))
            }
        }
    };
}

el!(f64, F64, f64, |x: f64| x);
el!(f32, F32, f64, |x: f64| x as f32);
el!(i64, I64, i64, |x: i64| x);
el!(i32, I32, i64, |x: i64| x as i32);
el!(u8, U8, i64, |x: i64| x as u8);
el!(bool, Bool, bool, |x: bool| x);

/// Runs `$e` with `$x` bound to the typed array, whatever its dtype.
macro_rules! each {
    ($a:expr, $x:ident => $e:expr) => {
        match $a {
            AnyArray::F64($x) => $e,
            AnyArray::F32($x) => $e,
            AnyArray::I64($x) => $e,
            AnyArray::I32($x) => $e,
            AnyArray::U8($x) => $e,
            AnyArray::Bool($x) => $e,
        }
    };
}

/// Runs `$e` for numeric dtypes; bool raises a TypeError naming `$op`.
macro_rules! numeric {
    ($a:expr, $op:expr, $x:ident => $e:expr) => {
        match $a {
            AnyArray::F64($x) => $e,
            AnyArray::F32($x) => $e,
            AnyArray::I64($x) => $e,
            AnyArray::I32($x) => $e,
            AnyArray::U8($x) => $e,
            AnyArray::Bool(_) => {
                return Err(PyTypeError::new_err(format!(
                    "{} is not supported for boolean arrays; use .astype(int) first",
                    $op
                )))
            }
        }
    };
}

/// The dtype for NumPy's name of it.
pub fn dtype_of(name: &str) -> PyResult<DType> {
    Ok(match name {
        "float64" => DType::F64,
        "float32" => DType::F32,
        "int64" => DType::I64,
        "int32" => DType::I32,
        "uint8" => DType::U8,
        "bool" => DType::Bool,
        other => {
            return Err(PyTypeError::new_err(format!(
                "dtype {other} is not supported by oxidask.array (supported: float64, float32, int64, int32, uint8, bool)"
            )))
        }
    })
}

/// Calls `$f::<T>($args)` for the element type of `$dt`, wrapping the result.
macro_rules! typed {
    ($dt:expr, $T:ident => $e:expr) => {
        match $dt {
            DType::F64 => {
                type $T = f64;
                El::any($e)
            }
            DType::F32 => {
                type $T = f32;
                El::any($e)
            }
            DType::I64 => {
                type $T = i64;
                El::any($e)
            }
            DType::I32 => {
                type $T = i32;
                El::any($e)
            }
            DType::U8 => {
                type $T = u8;
                El::any($e)
            }
            DType::Bool => {
                type $T = bool;
                El::any($e)
            }
        }
    };
}

/// Like `typed!` for numeric element types; `None` for bool.
macro_rules! typed_numeric {
    ($dt:expr, $T:ident => $e:expr) => {
        match $dt {
            DType::F64 => {
                type $T = f64;
                Some(El::any($e))
            }
            DType::F32 => {
                type $T = f32;
                Some(El::any($e))
            }
            DType::I64 => {
                type $T = i64;
                Some(El::any($e))
            }
            DType::I32 => {
                type $T = i32;
                Some(El::any($e))
            }
            DType::U8 => {
                type $T = u8;
                Some(El::any($e))
            }
            DType::Bool => None,
        }
    };
}

impl AnyArray {
    fn dtype(&self) -> DType {
        each!(self, a => a.dtype())
    }

    fn error(&self) -> Option<ArrayError> {
        each!(self, a => a.check().err())
    }

    fn keys(&self) -> Vec<Key> {
        each!(self, a => a.keys())
    }

    fn graph(&self) -> oxidask_core::Graph {
        each!(self, a => a.graph())
    }

    fn astype(&self, dt: DType) -> AnyArray {
        each!(self, a => typed!(dt, T => a.astype::<T>()))
    }
}

/// The Python exception for an invalid array operation (what NumPy and Dask raise).
pub fn array_err(py: Python<'_>, e: &ArrayError) -> PyErr {
    let msg = e.to_string();
    match e {
        ArrayError::AxisOutOfRange { .. } => {
            match py
                .import("numpy.exceptions")
                .and_then(|m| m.getattr("AxisError"))
                .and_then(|c| c.call1((msg.clone(),)))
            {
                Ok(exc) => PyErr::from_value(exc),
                Err(_) => PyValueError::new_err(msg),
            }
        }
        ArrayError::IndexOutOfRange { .. } | ArrayError::TooManyIndices { .. } => {
            PyIndexError::new_err(msg)
        }
        ArrayError::DType { .. } => PyTypeError::new_err(msg),
        ArrayError::Io { .. } => PyOSError::new_err(msg),
        _ => PyValueError::new_err(msg),
    }
}

/// A lazily computed chunked array of the Rust crate (`oxidask.array.Array` holds one).
///
/// An array built on results held on a cluster (a persisted array) keeps the futures of those
/// results alive (`keep`), and so does every array computed from it.
#[pyclass(frozen, module = "oxidask._oxidask", name = "ArrayNode")]
pub struct PyArrayNode {
    pub(crate) a: AnyArray,
    keep: Option<Py<PyAny>>,
}

fn node(py: Python<'_>, a: AnyArray) -> PyResult<PyArrayNode> {
    node_k(py, a, None)
}

fn node_k(py: Python<'_>, a: AnyArray, keep: Option<Py<PyAny>>) -> PyResult<PyArrayNode> {
    if let Some(e) = a.error() {
        return Err(array_err(py, &e));
    }
    Ok(PyArrayNode { a, keep })
}

/// What several inputs keep alive, together (`None` when nothing).
fn keeps<'a>(
    py: Python<'_>,
    parts: impl IntoIterator<Item = &'a Option<Py<PyAny>>>,
) -> Option<Py<PyAny>> {
    let held: Vec<Py<PyAny>> = parts
        .into_iter()
        .flatten()
        .map(|k| k.clone_ref(py))
        .collect();
    match held.len() {
        0 => None,
        1 => held.into_iter().next(),
        _ => pyo3::types::PyList::new(py, held)
            .ok()
            .map(|l| l.into_any().unbind()),
    }
}

fn kept(py: Python<'_>, mut d: PyDelayed, keep: &Option<Py<PyAny>>) -> PyDelayed {
    if let Some(k) = keep {
        d.keep = Some(k.clone_ref(py));
    }
    d
}

fn spec_of(chunks: &Bound<'_, PyAny>) -> PyResult<ChunkSpec> {
    if let Ok(n) = chunks.extract::<usize>() {
        return Ok(ChunkSpec::Bytes(n));
    }
    let explicit: Vec<Vec<usize>> = chunks.extract().map_err(|_| {
        PyValueError::new_err("chunks must be a byte count or block lengths per axis")
    })?;
    Ok(ChunkSpec::Explicit(explicit))
}

fn unary_op(name: &str) -> Option<UnaryOp> {
    use UnaryOp::*;
    [
        Neg, Abs, Square, Sign, Not, Sqrt, Exp, Expm1, Log, Log2, Log10, Log1p, Sin, Cos, Tan,
        Arcsin, Arccos, Arctan, Sinh, Cosh, Tanh, Floor, Ceil, Round, IsNan, IsFinite,
    ]
    .into_iter()
    .find(|o| o.name() == name)
}

fn binary_op(name: &str) -> Option<BinaryOp> {
    use BinaryOp::*;
    [
        Add, Sub, Mul, Div, Rem, Pow, Maximum, Minimum, Eq, Ne, Lt, Le, Gt, Ge, And, Or, Xor,
    ]
    .into_iter()
    .find(|o| o.name() == name)
}

fn binary_typed<T: El>(a: &Array<T>, op: BinaryOp, b: &AnyArray) -> PyResult<AnyArray> {
    let b = T::get(b).ok_or_else(|| {
        PyTypeError::new_err(format!(
            "{}: operands of {} and {} (promote first)",
            op.name(),
            T::DTYPE,
            b.dtype()
        ))
    })?;
    let out = op.result(T::DTYPE).ok_or_else(|| {
        PyTypeError::new_err(format!(
            "ufunc '{}' not supported for arrays of {}",
            op.name(),
            T::DTYPE
        ))
    })?;
    Ok(typed!(out, U => a.apply_binary::<U>(op, b)))
}

fn binary_scalar_typed<T: El>(
    a: &Array<T>,
    op: BinaryOp,
    v: &Bound<'_, PyAny>,
    first: bool,
) -> PyResult<AnyArray> {
    let out = op.result(T::DTYPE).ok_or_else(|| {
        PyTypeError::new_err(format!(
            "ufunc '{}' not supported for arrays of {}",
            op.name(),
            T::DTYPE
        ))
    })?;
    let v = T::scalar(v)?;
    Ok(typed!(out, U => a.apply_binary_scalar::<U>(op, v, first)))
}

fn reduce_typed<T: El>(a: &Array<T>, kind: &str, opts: Reduce, ddof: u32) -> PyResult<AnyArray>
where
    T::Sum: El,
    T::Float: El,
{
    Ok(match kind {
        "sum" => El::any(a.sum_with(opts)),
        "prod" => El::any(a.prod_with(opts)),
        "min" => El::any(a.min_with(opts)),
        "max" => El::any(a.max_with(opts)),
        "any" => El::any(a.any_with(opts)),
        "all" => El::any(a.all_with(opts)),
        "nansum" => El::any(a.nansum_with(opts)),
        "mean" => El::any(a.mean_with(opts)),
        "nanmean" => El::any(a.nanmean_with(opts)),
        "var" => El::any(a.var_with(ddof, opts)),
        "std" => El::any(a.std_with(ddof, opts)),
        "argmin" => El::any(a.argmin_with(opts)),
        "argmax" => El::any(a.argmax_with(opts)),
        "cumsum" => {
            return Err(PyValueError::new_err("cumsum is not a reduction"));
        }
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown reduction {other:?}"
            )))
        }
    })
}

fn cumsum_typed<T: El>(a: &Array<T>, axis: isize) -> AnyArray
where
    T::Sum: El,
{
    El::any(a.cumsum(axis))
}

/// Python's slice, normalized by `slice.indices`, as ndarray's (which counts a negative step
/// from the end of the range).
fn slice_elem(start: isize, stop: isize, step: isize) -> SliceInfoElem {
    if step > 0 {
        let end = stop.max(start);
        SliceInfoElem::Slice {
            start,
            end: Some(end),
            step,
        }
    } else {
        let lo = (stop + 1).max(0);
        let hi = (start + 1).max(lo);
        SliceInfoElem::Slice {
            start: lo,
            end: Some(hi),
            step,
        }
    }
}

/// The handle of every task of `graph` that `outputs` need, each reading its inputs' handles.
/// Keys the graph lacks are results held on a cluster (a persisted array's blocks), read as
/// they are.
pub(crate) fn handles(
    graph: &oxidask_core::Graph,
    outputs: &[Key],
) -> PyResult<FxHashMap<Key, Delayed<()>>> {
    let mut made: FxHashMap<Key, Delayed<()>> = FxHashMap::default();
    // Iterative post-order: dependencies before their readers, no recursion.
    let mut stack: Vec<(Key, bool)> = outputs.iter().rev().map(|k| (*k, false)).collect();
    while let Some((k, expanded)) = stack.pop() {
        if made.contains_key(&k) {
            continue;
        }
        let Some(task) = graph.get(&k) else {
            continue;
        };
        let deps = task.dependencies();
        if !expanded {
            stack.push((k, true));
            for d in deps.iter().rev() {
                if !made.contains_key(d) && graph.contains(d) {
                    stack.push((*d, false));
                }
            }
            continue;
        }
        let inputs: Vec<Delayed<()>> = deps.iter().filter_map(|d| made.get(d).cloned()).collect();
        made.insert(k, Delayed::from_task(k, task.clone(), inputs));
    }
    for k in outputs {
        if !made.contains_key(k) {
            return Err(PyValueError::new_err(format!(
                "{k} is not in the collection's graph"
            )));
        }
    }
    Ok(made)
}

fn block_handles(a: &AnyArray) -> PyResult<Vec<Delayed<()>>> {
    let keys = a.keys();
    let graph = a.graph();
    let made = handles(&graph, &keys)?;
    Ok(keys.iter().map(|k| made[k].clone()).collect())
}

/// A handle on a task whose result is a Rust value (not converted to Python).
pub(crate) fn rust_handle(d: Delayed<()>) -> PyDelayed {
    let mut p = PyDelayed::from_node(d, None, None);
    p.python_result = false;
    p
}

fn to_numpy_handle(d: &Delayed<()>) -> PyDelayed {
    let mut t = Tokenizer::new();
    t.write_str("to_numpy");
    t.write_str(d.key().prefix_str());
    t.write_token(d.key().token());
    let idx: Vec<u32> = d.key().index().to_vec();
    // Pure Python calls tokenize their arguments' keys by prefix and token only, so the
    // block coordinates go into the token too (blocks of one array share a token).
    for i in &idx {
        t.write_u64(u64::from(*i));
    }
    let key = Key::block(d.key().prefix_str(), t.finish(), &idx);
    let n = Delayed::<()>::from_task(
        key,
        Task::call(&TO_NUMPY_OP, [Arg::Key(d.key())]),
        [d.clone()],
    );
    PyDelayed::from_node(n, None, None)
}

fn rust_node_of(d: &PyDelayed) -> PyResult<Delayed<()>> {
    d.node.clone().ok_or_else(|| {
        PyValueError::new_err(format!(
            "{} is held on a cluster; wrap it in a task first",
            d.key_string()
        ))
    })
}

#[pymethods]
impl PyArrayNode {
    /// The shape.
    #[getter]
    fn shape(&self) -> Vec<usize> {
        each!(&self.a, a => a.shape())
    }

    /// Block lengths per axis.
    #[getter]
    fn chunks(&self) -> Vec<Vec<usize>> {
        each!(&self.a, a => a.chunk_lengths())
    }

    /// NumPy's name of the dtype.
    #[getter]
    fn dtype(&self) -> &'static str {
        self.a.dtype().name()
    }

    /// The operation's name (key prefix).
    #[getter]
    fn name(&self) -> &'static str {
        each!(&self.a, a => a.name())
    }

    /// Tasks in the graph.
    fn ntasks(&self) -> usize {
        each!(&self.a, a => a.ntasks())
    }

    /// The block keys, row-major, as text.
    fn keys(&self) -> Vec<String> {
        self.a.keys().iter().map(|k| k.to_string()).collect()
    }

    /// `(function, *args)` descriptions of every task, by key (Dask's graph, for display).
    fn graph_keys(&self) -> Vec<(String, String)> {
        self.a
            .graph()
            .iter()
            .map(|(k, t)| (k.to_string(), t.label().to_string()))
            .collect()
    }

    /// A creation function: `kind` of `ones`, `zeros`, `full`, `arange`, `linspace`, `eye`,
    /// `uniform`, `normal`, `integers`.
    #[staticmethod]
    #[pyo3(signature = (kind, dtype, shape, chunks, params, seed = None, fill = None))]
    #[allow(clippy::too_many_arguments)]
    fn create(
        py: Python<'_>,
        kind: &str,
        dtype: &str,
        shape: Vec<usize>,
        chunks: &Bound<'_, PyAny>,
        params: Vec<f64>,
        seed: Option<u64>,
        fill: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyArrayNode> {
        let dt = dtype_of(dtype)?;
        let spec = spec_of(chunks)?;
        let p = |i: usize| params.get(i).copied().unwrap_or(0.0);
        let rs = seed.map(da::random::RandomState::new);
        let a: AnyArray = match kind {
            "ones" => numeric_create(
                dt,
                "ones",
                |t| typed_numeric!(t, T => da::ones::<T>(shape.clone())),
            )?,
            "zeros" => numeric_create(
                dt,
                "zeros",
                |t| typed_numeric!(t, T => da::zeros::<T>(shape.clone())),
            )?,
            "full" => {
                let fill = fill.ok_or_else(|| PyValueError::new_err("full needs fill_value"))?;
                match dt {
                    DType::F64 => El::any(da::full(shape.clone(), f64::scalar(fill)?)),
                    DType::F32 => El::any(da::full(shape.clone(), f32::scalar(fill)?)),
                    DType::I64 => El::any(da::full(shape.clone(), i64::scalar(fill)?)),
                    DType::I32 => El::any(da::full(shape.clone(), i32::scalar(fill)?)),
                    DType::U8 => El::any(da::full(shape.clone(), u8::scalar(fill)?)),
                    DType::Bool => El::any(da::full(shape.clone(), bool::scalar(fill)?)),
                }
            }
            "arange" => numeric_create(
                dt,
                "arange",
                |t| typed_numeric!(t, T => da::arange::<T>(p(0), p(1), p(2))),
            )?,
            "linspace" => match dt {
                DType::F64 => El::any(da::linspace::<f64>(p(0), p(1), p(2) as usize, p(3) != 0.0)),
                DType::F32 => El::any(da::linspace::<f32>(p(0), p(1), p(2) as usize, p(3) != 0.0)),
                _ => {
                    El::any(da::linspace::<f64>(p(0), p(1), p(2) as usize, p(3) != 0.0)).astype(dt)
                }
            },
            "eye" if shape.len() != 2 => {
                return Err(PyValueError::new_err(format!(
                    "eye makes 2-d arrays, not shape {shape:?}"
                )))
            }
            "eye" => numeric_create(
                dt,
                "eye",
                |t| typed_numeric!(t, T => da::eye::<T>(shape[0], shape[1], p(0) as i64)),
            )?,
            "uniform" | "normal" => {
                let rs = rs.unwrap_or_else(da::random::RandomState::fresh);
                let f = match kind {
                    "uniform" => El::any(rs.uniform::<f64>(shape.clone(), p(0), p(1))),
                    _ => El::any(rs.normal::<f64>(shape.clone(), p(0), p(1))),
                };
                if dt == DType::F64 {
                    f
                } else if dt == DType::F32 {
                    match kind {
                        "uniform" => El::any(rs.uniform::<f32>(shape.clone(), p(0), p(1))),
                        _ => El::any(rs.normal::<f32>(shape.clone(), p(0), p(1))),
                    }
                } else {
                    return Err(PyTypeError::new_err(format!(
                        "random floats of dtype {dtype}: use float64 or float32"
                    )));
                }
            }
            "integers" => {
                let rs = rs.unwrap_or_else(da::random::RandomState::fresh);
                numeric_create(
                    dt,
                    "randint",
                    |t| typed_numeric!(t, T => rs.integers::<T>(shape.clone(), p(0) as i64, p(1) as i64)),
                )?
            }
            other => return Err(PyValueError::new_err(format!("unknown creation {other:?}"))),
        };
        let a = each!(&a, x => El::any(x.chunks(spec)));
        node(py, a)
    }

    /// An array from a C-contiguous NumPy array of a supported dtype, cut into `chunks`
    /// (explicit block lengths). The data is copied once, into the blocks.
    #[staticmethod]
    fn from_numpy(
        py: Python<'_>,
        arr: &Bound<'_, PyAny>,
        chunks: Vec<Vec<usize>>,
    ) -> PyResult<PyArrayNode> {
        let dtype: String = arr.getattr("dtype")?.getattr("name")?.extract()?;
        let dt = dtype_of(&dtype)?;
        let shape: Vec<usize> = arr.getattr("shape")?.extract()?;
        let chunks = Chunks(chunks);
        let bytes = crate::buffers::bytes_of(arr)?;
        let a = typed!(dt, T => blocks_from_bytes::<T>(&bytes, &shape, chunks.clone())?);
        node(py, a)
    }

    /// An array read lazily from an `.npy` file.
    #[staticmethod]
    fn from_npy(py: Python<'_>, path: &str, chunks: &Bound<'_, PyAny>) -> PyResult<PyArrayNode> {
        let header = da::read_npy_header(path).map_err(|e| array_err(py, &e))?;
        let spec = spec_of(chunks)?;
        let a = typed!(header.dtype, T => da::from_npy::<T>(path, spec.clone()));
        node(py, a)
    }

    /// An array read lazily from the Zarr v3 array directory at `path` (its stored chunks,
    /// or `chunks`: explicit block lengths or a byte count).
    #[staticmethod]
    #[pyo3(signature = (path, chunks = None))]
    fn from_zarr(
        py: Python<'_>,
        path: &str,
        chunks: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyArrayNode> {
        let dt = da::zarr_dtype(path).map_err(|e| array_err(py, &e))?;
        let spec = chunks.map(spec_of).transpose()?;
        let a = typed!(dt, T => da::from_zarr::<T>(path, spec.clone()));
        node(py, a)
    }

    /// Creates the Zarr v3 array directory `path` for this array (whose blocks must be
    /// regular: one chunk shape) and returns one task per block writing it (each results in
    /// the bytes written), for the caller to compute on any scheduler.
    fn zarr_write_handles(&self, py: Python<'_>, path: &str) -> PyResult<Vec<PyDelayed>> {
        let shape = self.shape();
        let chunks = Chunks(self.chunks());
        let chunk_shape = chunks.max_block();
        da::create_zarr(path, &shape, &chunk_shape, self.a.dtype())
            .map_err(|e| array_err(py, &e))?;
        let blocks = block_handles(&self.a)?;
        let path_v = Value::new(path.to_owned());
        let mut t = Tokenizer::new();
        t.write_str("to_zarr");
        t.write_str(path);
        let token = t.finish();
        let mut out = Vec::with_capacity(blocks.len());
        for (idx, b) in chunks.indices().zip(blocks) {
            let coords: Vec<u32> = idx.iter().map(|&i| i as u32).collect();
            let key = Key::block("to-zarr", token, &coords[..coords.len().min(4)]);
            let pos = da::BlockPos {
                shape: chunks.block_shape(&idx),
                offset: chunks.block_offset(&idx),
                total: shape.clone(),
            };
            let task = Task::call(
                oxidask::array::ops::write_zarr::op(),
                [
                    Arg::Value(path_v.clone()),
                    Arg::Value(Value::new(pos)),
                    Arg::Key(b.key()),
                ],
            );
            let mut tk = Tokenizer::new();
            tk.write_token(token);
            for i in &idx {
                tk.write_u64(*i as u64);
            }
            let key = Key::block("to-zarr", tk.finish(), key.index());
            out.push(kept(
                py,
                rust_handle(Delayed::<()>::from_task(key, task, [b])),
                &self.keep,
            ));
        }
        Ok(out)
    }

    /// An array whose blocks are Python results (NumPy arrays) of the given chunks.
    #[staticmethod]
    fn from_numpy_blocks(
        py: Python<'_>,
        blocks: Vec<PyRef<'_, PyDelayed>>,
        chunks: Vec<Vec<usize>>,
        dtype: &str,
    ) -> PyResult<PyArrayNode> {
        let dt = dtype_of(dtype)?;
        let chunks = Chunks(chunks);
        if blocks.len() != chunks.nblocks() {
            return Err(PyValueError::new_err(format!(
                "{} blocks for a grid of {:?} blocks",
                blocks.len(),
                chunks.grid()
            )));
        }
        let mut parts = Vec::with_capacity(blocks.len());
        for (b, idx) in blocks.iter().zip(chunks.indices()) {
            let n = rust_node_of(b)?;
            let shape: Vec<i64> = chunks.block_shape(&idx).iter().map(|&s| s as i64).collect();
            let mut t = Tokenizer::new();
            t.write_str("from_numpy");
            t.write_str(dt.name());
            t.write_str(n.key().prefix_str());
            t.write_token(n.key().token());
            for i in n.key().index() {
                t.write_u64(u64::from(*i));
            }
            for s in &shape {
                t.write_u64(*s as u64);
            }
            let key = Key::new("from_numpy", t.finish());
            let task = Task::call(
                &FROM_NUMPY_OP,
                [
                    Arg::Value(Value::new(dt)),
                    Arg::Value(Value::new(shape)),
                    Arg::Key(n.key()),
                ],
            );
            parts.push(Delayed::<()>::from_task(key, task, [n]));
        }
        let a = typed!(dt, T => da::from_block_delayed::<T>(parts.clone(), chunks.clone()));
        node_k(py, a, keeps(py, blocks.iter().map(|b| &b.keep)))
    }

    /// An array whose blocks are Rust blocks (handles from `block_handles`, `mask_select`) of
    /// the given chunks.
    #[staticmethod]
    fn from_block_handles(
        py: Python<'_>,
        blocks: Vec<PyRef<'_, PyDelayed>>,
        chunks: Vec<Vec<usize>>,
        dtype: &str,
    ) -> PyResult<PyArrayNode> {
        let dt = dtype_of(dtype)?;
        let nodes = blocks
            .iter()
            .map(|b| rust_node_of(b))
            .collect::<PyResult<Vec<_>>>()?;
        let chunks = Chunks(chunks);
        let a = typed!(dt, T => da::from_block_delayed::<T>(nodes.clone(), chunks.clone()));
        node_k(py, a, keeps(py, blocks.iter().map(|b| &b.keep)))
    }

    /// One handle per block (row-major) whose result is the block as a `numpy.ndarray`.
    fn numpy_handles(&self, py: Python<'_>) -> PyResult<Vec<PyDelayed>> {
        Ok(block_handles(&self.a)?
            .iter()
            .map(|d| kept(py, to_numpy_handle(d), &self.keep))
            .collect())
    }

    /// One handle per block (row-major) on the Rust block itself.
    fn block_handles(&self, py: Python<'_>) -> PyResult<Vec<PyDelayed>> {
        Ok(block_handles(&self.a)?
            .into_iter()
            .map(|d| kept(py, rust_handle(d), &self.keep))
            .collect())
    }

    /// A handle converting a Rust block's handle to a `numpy.ndarray`.
    #[staticmethod]
    fn to_numpy_handle(py: Python<'_>, h: PyRef<'_, PyDelayed>) -> PyResult<PyDelayed> {
        Ok(kept(py, to_numpy_handle(&rust_node_of(&h)?), &h.keep))
    }

    /// Per block of `self` (row-major): handles selecting the elements where `mask` (same
    /// shape, bool) is true, and handles counting them.
    fn mask_select(
        &self,
        py: Python<'_>,
        mask: &PyArrayNode,
    ) -> PyResult<(Vec<PyDelayed>, Vec<PyDelayed>)> {
        let AnyArray::Bool(m) = &mask.a else {
            return Err(PyTypeError::new_err("a boolean mask is needed"));
        };
        let chunks = self.chunks();
        let m = m.rechunk(Chunks(chunks));
        if let Err(e) = m.check() {
            return Err(array_err(py, &e));
        }
        let xs = block_handles(&self.a)?;
        let ms = block_handles(&AnyArray::Bool(m))?;
        let mut picked = Vec::with_capacity(xs.len());
        let mut counts = Vec::with_capacity(xs.len());
        for (x, m) in xs.iter().zip(&ms) {
            let sel = oxidask::array::ops::mask_select::op();
            let mut t = Tokenizer::new();
            t.write_token(x.key().token());
            t.write_token(m.key().token());
            let tok = t.finish();
            let idx: Vec<u32> = x.key().index().to_vec();
            let k = Key::block("getitem", tok, &idx);
            let both = keeps(py, [&self.keep, &mask.keep]);
            picked.push(kept(
                py,
                rust_handle(Delayed::<()>::from_task(
                    k,
                    Task::call(sel, [Arg::Key(x.key()), Arg::Key(m.key())]),
                    [x.clone(), m.clone()],
                )),
                &both,
            ));
            let kc = Key::block("count_true", m.key().token(), &idx);
            counts.push(kept(
                py,
                rust_handle(Delayed::<()>::from_task(
                    kc,
                    Task::call(oxidask::array::ops::count_true::op(), [Arg::Key(m.key())]),
                    [m.clone()],
                )),
                &mask.keep,
            ));
        }
        Ok((picked, counts))
    }

    /// `op(self)` elementwise (`op` is NumPy's ufunc name).
    fn unary(&self, py: Python<'_>, op: &str) -> PyResult<PyArrayNode> {
        let u = unary_op(op).ok_or_else(|| {
            PyTypeError::new_err(format!("ufunc '{op}' is not supported by oxidask.array"))
        })?;
        let dt = self.a.dtype();
        let out = u.result(dt).ok_or_else(|| {
            PyTypeError::new_err(format!("ufunc '{op}' not supported for arrays of {dt}"))
        })?;
        let a = each!(&self.a, a => typed!(out, U => a.apply_unary::<U>(u)));
        node_k(py, a, keeps(py, [&self.keep]))
    }

    /// `self op other` elementwise with broadcasting (both of one dtype).
    fn binary(&self, py: Python<'_>, op: &str, other: &PyArrayNode) -> PyResult<PyArrayNode> {
        let b = binary_op(op).ok_or_else(|| {
            PyTypeError::new_err(format!("ufunc '{op}' is not supported by oxidask.array"))
        })?;
        let a = each!(&self.a, a => binary_typed(a, b, &other.a)?);
        node_k(py, a, keeps(py, [&self.keep, &other.keep]))
    }

    /// `self op v` (or `v op self` when `scalar_first`) elementwise.
    fn binary_scalar(
        &self,
        py: Python<'_>,
        op: &str,
        v: &Bound<'_, PyAny>,
        scalar_first: bool,
    ) -> PyResult<PyArrayNode> {
        let b = binary_op(op).ok_or_else(|| {
            PyTypeError::new_err(format!("ufunc '{op}' is not supported by oxidask.array"))
        })?;
        let a = each!(&self.a, a => binary_scalar_typed(a, b, v, scalar_first)?);
        node_k(py, a, keeps(py, [&self.keep]))
    }

    /// `cond ? a : b` elementwise, broadcast (`self` is the bool condition; `a`, `b` of one
    /// dtype).
    fn where_(&self, py: Python<'_>, a: &PyArrayNode, b: &PyArrayNode) -> PyResult<PyArrayNode> {
        let AnyArray::Bool(c) = &self.a else {
            return Err(PyTypeError::new_err("where: the condition must be boolean"));
        };
        let out = each!(&a.a, x => {
            let y = El::get(&b.a).ok_or_else(|| PyTypeError::new_err("where: branches of different dtypes (promote first)"))?;
            El::any(da::where_(c, x, y))
        });
        node_k(py, out, keeps(py, [&self.keep, &a.keep, &b.keep]))
    }

    /// Every element converted (NumPy's `astype`).
    fn astype(&self, py: Python<'_>, dtype: &str) -> PyResult<PyArrayNode> {
        let dt = dtype_of(dtype)?;
        node_k(py, self.a.astype(dt), keeps(py, [&self.keep]))
    }

    /// A reduction (`sum`, `prod`, `min`, `max`, `any`, `all`, `nansum`, `mean`, `nanmean`,
    /// `var`, `std`, `argmin`, `argmax`).
    #[pyo3(signature = (kind, axes = None, keepdims = false, split_every = None, ddof = 0))]
    fn reduce(
        &self,
        py: Python<'_>,
        kind: &str,
        axes: Option<Vec<isize>>,
        keepdims: bool,
        split_every: Option<usize>,
        ddof: u32,
    ) -> PyResult<PyArrayNode> {
        let mut opts = match axes {
            None => Reduce::all(),
            Some(a) => Reduce::axes(a),
        }
        .keepdims(keepdims);
        if let Some(n) = split_every {
            opts = opts.split_every(n);
        }
        let a = each!(&self.a, a => reduce_typed(a, kind, opts.clone(), ddof)?);
        node_k(py, a, keeps(py, [&self.keep]))
    }

    /// Cumulative sum along `axis`.
    fn cumsum(&self, py: Python<'_>, axis: isize) -> PyResult<PyArrayNode> {
        let a = each!(&self.a, a => cumsum_typed(a, axis));
        node_k(py, a, keeps(py, [&self.keep]))
    }

    /// The `k` largest (`k < 0`: smallest) along `axis`.
    fn topk(&self, py: Python<'_>, k: i64, axis: isize) -> PyResult<PyArrayNode> {
        let a = each!(&self.a, a => El::any(a.topk(k, axis)));
        node_k(py, a, keeps(py, [&self.keep]))
    }

    /// Rechunked to explicit block lengths or about `n` bytes per block.
    fn rechunk(&self, py: Python<'_>, chunks: &Bound<'_, PyAny>) -> PyResult<PyArrayNode> {
        let spec = spec_of(chunks)?;
        let a = each!(&self.a, a => El::any(a.rechunk(spec)));
        node_k(py, a, keeps(py, [&self.keep]))
    }

    /// Axes permuted.
    fn transpose(&self, py: Python<'_>, perm: Vec<isize>) -> PyResult<PyArrayNode> {
        let a = each!(&self.a, a => El::any(a.transpose(&perm)));
        node_k(py, a, keeps(py, [&self.keep]))
    }

    /// Reshaped (the crate's rule: the blocks must allow it).
    fn reshape(&self, py: Python<'_>, shape: Vec<usize>) -> PyResult<PyArrayNode> {
        let a = each!(&self.a, a => El::any(a.reshape(shape.clone())));
        node_k(py, a, keeps(py, [&self.keep]))
    }

    /// Basic indexing: items `("slice", start, stop, step)` (normalized by `slice.indices`),
    /// `("index", i)`, `("newaxis",)`, one per axis (all axes given).
    fn getitem(
        &self,
        py: Python<'_>,
        items: Vec<(String, isize, isize, isize)>,
    ) -> PyResult<PyArrayNode> {
        let mut elems = Vec::with_capacity(items.len());
        for (kind, a, b, c) in items {
            elems.push(match kind.as_str() {
                "slice" => slice_elem(a, b, c),
                "index" => SliceInfoElem::Index(a),
                "newaxis" => SliceInfoElem::NewAxis,
                other => {
                    return Err(PyValueError::new_err(format!(
                        "unknown index item {other:?}"
                    )))
                }
            });
        }
        let a = each!(&self.a, a => El::any(a.slice(elems.clone())));
        node_k(py, a, keeps(py, [&self.keep]))
    }

    /// Matrix product (NumPy's `matmul`).
    fn matmul(&self, py: Python<'_>, other: &PyArrayNode) -> PyResult<PyArrayNode> {
        let a = numeric!(&self.a, "matmul", a => {
            let b = El::get(&other.a).ok_or_else(|| PyTypeError::new_err("matmul: operands of different dtypes (promote first)"))?;
            El::any(da::matmul(a, b))
        });
        node_k(py, a, keeps(py, [&self.keep, &other.keep]))
    }

    /// NumPy's `dot`.
    fn dot(&self, py: Python<'_>, other: &PyArrayNode) -> PyResult<PyArrayNode> {
        let a = numeric!(&self.a, "dot", a => {
            let b = El::get(&other.a).ok_or_else(|| PyTypeError::new_err("dot: operands of different dtypes (promote first)"))?;
            El::any(da::dot(a, b))
        });
        node_k(py, a, keeps(py, [&self.keep, &other.keep]))
    }

    /// NumPy's `tensordot` over one axis of each.
    fn tensordot(
        &self,
        py: Python<'_>,
        other: &PyArrayNode,
        a_axis: isize,
        b_axis: isize,
    ) -> PyResult<PyArrayNode> {
        let a = numeric!(&self.a, "tensordot", a => {
            let b = El::get(&other.a).ok_or_else(|| PyTypeError::new_err("tensordot: operands of different dtypes (promote first)"))?;
            El::any(da::tensordot(a, b, (a_axis, b_axis)))
        });
        node_k(py, a, keeps(py, [&self.keep, &other.keep]))
    }

    /// Arrays (of one dtype) joined along an existing axis.
    #[staticmethod]
    fn concatenate(
        py: Python<'_>,
        arrays: Vec<PyRef<'_, PyArrayNode>>,
        axis: isize,
    ) -> PyResult<PyArrayNode> {
        join(py, arrays, axis, false)
    }

    /// Arrays (of one dtype and shape) joined along a new axis.
    #[staticmethod]
    fn stack(
        py: Python<'_>,
        arrays: Vec<PyRef<'_, PyArrayNode>>,
        axis: isize,
    ) -> PyResult<PyArrayNode> {
        join(py, arrays, axis, true)
    }

    /// Every block extended by its neighbours (Dask's `overlap`): `boundary` one of `none`,
    /// `nearest`, `reflect`, `periodic`, `constant` (with `value`).
    fn overlap(
        &self,
        py: Python<'_>,
        depth: Vec<usize>,
        boundary: &str,
        value: f64,
    ) -> PyResult<PyArrayNode> {
        let b = boundary_of(boundary, value)?;
        let a = each!(&self.a, a => El::any(a.overlap(&depth, b.clone())));
        node_k(py, a, keeps(py, [&self.keep]))
    }

    /// `self` (computed from `original` overlapped) with the overlap cut off.
    fn trim_overlap(
        &self,
        py: Python<'_>,
        original: &PyArrayNode,
        depth: Vec<usize>,
        boundary: &str,
        value: f64,
    ) -> PyResult<PyArrayNode> {
        let b = boundary_of(boundary, value)?;
        let a = each!(&self.a, a => each!(&original.a, o => El::any(a.trim_overlap(o, &depth, b.clone()))));
        node_k(py, a, keeps(py, [&self.keep, &original.keep]))
    }

    fn __repr__(&self) -> String {
        each!(&self.a, a => a.to_string())
    }
}

fn boundary_of(name: &str, value: f64) -> PyResult<Boundary> {
    Ok(match name {
        "none" => Boundary::None,
        "nearest" => Boundary::Nearest,
        "reflect" => Boundary::Reflect,
        "periodic" => Boundary::Periodic,
        "constant" => Boundary::Constant(value),
        other => {
            return Err(PyValueError::new_err(format!(
                "boundary {other:?} is not one of 'none', 'nearest', 'reflect', 'periodic', 'constant' (or a number)"
            )))
        }
    })
}

fn join(
    py: Python<'_>,
    arrays: Vec<PyRef<'_, PyArrayNode>>,
    axis: isize,
    new: bool,
) -> PyResult<PyArrayNode> {
    let Some(first) = arrays.first() else {
        return Err(PyValueError::new_err("need at least one array to join"));
    };
    let a = each!(&first.a, f => {
        let mut typed = vec![f.clone()];
        for o in &arrays[1..] {
            typed.push(El::get(&o.a).cloned().ok_or_else(|| PyTypeError::new_err("arrays of different dtypes (promote first)"))?);
        }
        if new { El::any(da::stack(&typed, axis)) } else { El::any(da::concatenate(&typed, axis)) }
    });
    node_k(py, a, keeps(py, arrays.iter().map(|x| &x.keep)))
}

fn numeric_create(
    dt: DType,
    name: &str,
    f: impl FnOnce(DType) -> Option<AnyArray>,
) -> PyResult<AnyArray> {
    match f(dt) {
        Some(a) => Ok(a),
        None => Err(PyTypeError::new_err(format!(
            "{name} of dtype bool is not supported; create an int array and compare"
        ))),
    }
}

/// Copies a C-contiguous buffer of `shape` into blocks.
fn blocks_from_bytes<T: El>(bytes: &Bytes, shape: &[usize], chunks: Chunks) -> PyResult<Array<T>> {
    let n: usize = shape.iter().product();
    let size = std::mem::size_of::<T>();
    if bytes.len() != n * size {
        return Err(PyValueError::new_err(format!(
            "the buffer holds {} bytes, shape {shape:?} of {} needs {}",
            bytes.len(),
            T::DTYPE,
            n * size
        )));
    }
    let fits = chunks.0.len() == shape.len()
        && chunks
            .0
            .iter()
            .zip(shape)
            .all(|(c, &n)| c.iter().sum::<usize>() == n);
    if !fits {
        return Err(PyValueError::new_err(format!(
            "chunks {:?} do not tile shape {shape:?}",
            chunks.0
        )));
    }
    let blocks = |view: ArrayViewD<'_, T>| -> Vec<ArrayD<T>> {
        if shape.is_empty() {
            return vec![view.to_owned()];
        }
        chunks
            .indices()
            .map(|idx| {
                let off = chunks.block_offset(&idx);
                let sh = chunks.block_shape(&idx);
                let info: Vec<SliceInfoElem> = off
                    .iter()
                    .zip(&sh)
                    .map(|(&o, &s)| SliceInfoElem::Slice {
                        start: o as isize,
                        end: Some((o + s) as isize),
                        step: 1,
                    })
                    .collect();
                view.slice(info.as_slice()).to_owned()
            })
            .collect()
    };
    let out = if T::DTYPE == DType::Bool {
        let v: Vec<T> = bytes
            .iter()
            .map(|&b| T::from_i64((b != 0) as i64))
            .collect();
        let a = ArrayD::from_shape_vec(IxDyn(shape), v).expect("length checked");
        if chunks.nblocks() == 1 {
            vec![a]
        } else {
            blocks(a.view())
        }
    } else if (bytes.as_ptr() as usize) % std::mem::align_of::<T>() == 0 || n == 0 {
        // SAFETY: the buffer holds `n` initialized values of `T` (checked length, a numeric
        // dtype where every bit pattern is valid), is aligned (checked), and outlives the view.
        let view = unsafe {
            if n == 0 {
                ArrayViewD::from_shape(IxDyn(shape), &[][..]).expect("empty")
            } else {
                ArrayViewD::from_shape_ptr(IxDyn(shape), bytes.as_ptr() as *const T)
            }
        };
        blocks(view)
    } else {
        let mut v: Vec<T> = Vec::with_capacity(n);
        // SAFETY: `v` has room for `n` values; every bit pattern is a valid numeric value.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), v.as_mut_ptr() as *mut u8, n * size);
            v.set_len(n);
        }
        let a = ArrayD::from_shape_vec(IxDyn(shape), v).expect("length checked");
        blocks(a.view())
    };
    Ok(da::from_blocks(out, chunks))
}

/// A vector's bytes, shared without copying.
struct VecBytes<T: Element> {
    data: Vec<T>,
    start: usize,
    len: usize,
}

impl<T: Element> AsRef<[u8]> for VecBytes<T> {
    fn as_ref(&self) -> &[u8] {
        let s = &self.data[self.start..self.start + self.len];
        // SAFETY: a slice of numeric values viewed as its bytes (u8 has no alignment needs).
        unsafe { std::slice::from_raw_parts(s.as_ptr() as *const u8, std::mem::size_of_val(s)) }
    }
}

fn numpy_module(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    static NP: pyo3::sync::PyOnceLock<Py<PyModule>> = pyo3::sync::PyOnceLock::new();
    NP.get_or_try_init(py, || Ok(py.import("numpy")?.unbind()))
        .map(|m| m.bind(py))
}

fn chunk_to_numpy<'py, T: Element + for<'a> IntoPyObject<'a>>(
    py: Python<'py>,
    c: Chunk<T>,
) -> PyResult<Bound<'py, PyAny>> {
    let np = numpy_module(py)?;
    match c {
        Chunk::Full { shape, value } => np.getattr("full")?.call1((shape, value, T::DTYPE.name())),
        Chunk::Dense(a) => {
            let shape = a.shape().to_vec();
            let a = if a.is_standard_layout() {
                a
            } else {
                a.as_standard_layout().into_owned()
            };
            let len = a.len();
            let (data, off) = a.into_raw_vec_and_offset();
            let start = off.unwrap_or(0);
            let bytes = Bytes::from_owner(VecBytes { data, start, len });
            let buf = crate::buffers::python_buffer(py, bytes)?;
            np.getattr("frombuffer")?
                .call1((buf, T::DTYPE.name()))?
                .call_method1("reshape", (shape,))
        }
    }
}

/// A block as a `numpy.ndarray` (over the block's memory when it is dense).
pub fn block_to_numpy<'py>(py: Python<'py>, b: Block) -> PyResult<Bound<'py, PyAny>> {
    match b {
        Block::F64(c) => chunk_to_numpy(py, c),
        Block::F32(c) => chunk_to_numpy(py, c),
        Block::I64(c) => chunk_to_numpy(py, c),
        Block::I32(c) => chunk_to_numpy(py, c),
        Block::U8(c) => chunk_to_numpy(py, c),
        Block::Bool(c) => chunk_to_numpy(py, c),
    }
}

/// Turns an array block into a `numpy.ndarray` (a Python result).
pub static TO_NUMPY_OP: OpDef = OpDef::new(
    "oxidask_python::array::to_numpy",
    "to_numpy",
    "(Block) -> PyObject",
    &["block"],
    true,
    to_numpy,
);

oxidask_core::__private::inventory::submit! { OpRegistration(&TO_NUMPY_OP) }

fn to_numpy(args: &mut Args) -> Result<Value, TaskFailure> {
    let v = match args.take_input(0) {
        Some(Input::Value(v)) => v,
        _ => return Err(TaskFailure::argument("to_numpy needs one block")),
    };
    let block: Block = v
        .take::<Block>()
        .map_err(|e| TaskFailure::argument(format!("to_numpy: {e}")))?;
    gil::attach(|py| {
        block_to_numpy(py, block)
            .and_then(PyValue::new)
            .map(Value::foreign)
            .map_err(|e| TaskFailure::msg(crate::pyvalue::describe_error(py, &e)))
    })
    .unwrap_or_else(|e| Err(TaskFailure::unavailable(e.to_string())))
}

/// Turns a Python result (anything `numpy.asarray` accepts) into a block of the dtype given
/// (cast as `astype` does), checked against the shape the array declared for it.
pub static FROM_NUMPY_OP: OpDef = OpDef::new(
    "oxidask_python::array::from_numpy",
    "from_numpy",
    "(DType, Vec<i64>, PyObject) -> Block",
    &["dtype", "shape", "value"],
    true,
    from_numpy,
);

oxidask_core::__private::inventory::submit! { OpRegistration(&FROM_NUMPY_OP) }

fn numpy_to_block<T: El>(obj: &Bound<'_, PyAny>) -> PyResult<Block> {
    let py = obj.py();
    let np = numpy_module(py)?;
    // `require` keeps 0-d results 0-d (`ascontiguousarray` makes them 1-d).
    let a = np.getattr("require")?.call1((obj, T::DTYPE.name(), "C"))?;
    let shape: Vec<usize> = a.getattr("shape")?.extract()?;
    let n: usize = shape.iter().product();
    let v: Vec<T> = if n == 0 {
        Vec::new()
    } else {
        let bytes = crate::buffers::bytes_of(&a)?;
        if T::DTYPE == DType::Bool {
            bytes
                .iter()
                .map(|&b| T::from_i64((b != 0) as i64))
                .collect()
        } else {
            let mut v: Vec<T> = Vec::with_capacity(n);
            let size = std::mem::size_of::<T>();
            if bytes.len() != n * size {
                return Err(PyValueError::new_err(
                    "buffer size does not match the shape",
                ));
            }
            // SAFETY: room for `n` values; every bit pattern is a valid numeric value.
            unsafe {
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), v.as_mut_ptr() as *mut u8, n * size);
                v.set_len(n);
            }
            v
        }
    };
    Ok(T::wrap(Chunk::Dense(
        ArrayD::from_shape_vec(IxDyn(&shape), v).expect("length checked"),
    )))
}

fn from_numpy(args: &mut Args) -> Result<Value, TaskFailure> {
    args.expect_len(3)?;
    let dt: DType = args.take(0, "dtype")?;
    let shape: Vec<i64> = args.take(1, "shape")?;
    let v = match args.take_input(2) {
        Some(Input::Value(v)) => v,
        _ => return Err(TaskFailure::argument("from_numpy needs one value")),
    };
    let Some(p) = v.downcast_ref::<PyValue>() else {
        return Err(TaskFailure::argument(format!(
            "from_numpy: a Rust `{}` where a Python result was expected",
            v.type_name()
        )));
    };
    let block = gil::attach(|py| {
        let obj = p.bind(py);
        let r = match dt {
            DType::F64 => numpy_to_block::<f64>(obj),
            DType::F32 => numpy_to_block::<f32>(obj),
            DType::I64 => numpy_to_block::<i64>(obj),
            DType::I32 => numpy_to_block::<i32>(obj),
            DType::U8 => numpy_to_block::<u8>(obj),
            DType::Bool => numpy_to_block::<bool>(obj),
        };
        r.map_err(|e| {
            TaskFailure::msg(format!(
                "a block function's result could not be read as {dt}: {}",
                crate::pyvalue::describe_error(py, &e)
            ))
        })
    })
    .unwrap_or_else(|e| Err(TaskFailure::unavailable(e.to_string())))?;
    let want: Vec<usize> = shape.iter().map(|&s| s.max(0) as usize).collect();
    if block.shape() != want.as_slice() {
        return Err(TaskFailure::msg(format!(
            "a block has shape {:?}, but the array declared {want:?} for it; give map_blocks \
             the chunks= the function makes (or from_delayed the right shape=)",
            block.shape()
        )));
    }
    Ok(Value::new(block))
}

/// Registers the array classes in the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyArrayNode>()?;
    Ok(())
}
