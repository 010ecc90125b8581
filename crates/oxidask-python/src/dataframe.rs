//! Dask's DataFrame for Python (`oxidask.dataframe`) over `oxidask-dataframe` (Polars): a
//! [`PyFrameNode`] is a handle on a Rust `DataFrame`, so reads, projections, filters,
//! expressions, aggregations, shuffles and joins are the crate's registered operations and
//! stock workers run them. The Python package (`python/oxidask/dataframe`) gives it pandas'
//! and Dask's names; column expressions come from Python as small tuples (see [`expr_of`]).
//!
//! Partitions meet Python at two registered operations: [`TO_PANDAS_OP`] writes a partition
//! as an Arrow IPC file into one buffer handed to Python without copying, where pyarrow reads
//! it (zero-copy) and makes the pandas frame; [`FROM_PANDAS_OP`] turns a Python result (a
//! partition made by a Python function) back into a partition through the same format.

use std::io::Cursor;

use bytes::Bytes;
use oxidask::dataframe::polars::prelude::{
    self as pl, CompatLevel, IpcReader, IpcWriter, NamedFrom, SerReader, SerWriter,
};
use oxidask::dataframe::{
    self as odf, col, lit, Agg, AggFn, CsvOptions, DataFrame, DataType, Expr, FrameError,
    ParquetOptions, Partition,
};
use oxidask_core::op::{Args, Input, OpDef, OpRegistration, TaskFailure};
use oxidask_core::tokenize::Tokenizer;
use oxidask_core::{Arg, Collection, Delayed, Key, Task, TaskSpec, Value};
use pyo3::exceptions::{PyFileNotFoundError, PyKeyError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyFloat, PyInt, PyList, PyString, PyTuple};

use crate::delayed::PyDelayed;
use crate::gil;
use crate::pyvalue::PyValue;

/// The Python exception a pandas/Dask user expects for a dataframe error: `KeyError` naming
/// an unknown column, `TypeError` for operations the column types do not support,
/// `FileNotFoundError` for paths that match nothing, `ValueError` otherwise.
fn frame_err(e: &oxidask_core::Error) -> PyErr {
    if let oxidask_core::Error::Collection(inner) = e {
        if let Some(fe) = inner.downcast_ref::<FrameError>() {
            return frame_error(fe);
        }
    }
    PyValueError::new_err(e.to_string())
}

fn frame_error(fe: &FrameError) -> PyErr {
    let msg = fe.to_string();
    match fe {
        FrameError::UnknownColumn { column, .. } => PyKeyError::new_err(column.clone()),
        FrameError::NoFiles(_) => PyFileNotFoundError::new_err(msg),
        FrameError::Io { .. } => pyo3::exceptions::PyOSError::new_err(msg),
        FrameError::Polars { detail, .. } => {
            if let Some(name) = not_found_column(detail) {
                PyKeyError::new_err(name)
            } else if detail.contains("not found") {
                PyKeyError::new_err(msg)
            } else {
                PyTypeError::new_err(msg)
            }
        }
        FrameError::MissingSecret { .. } | FrameError::Invalid(_) => PyValueError::new_err(msg),
    }
}

/// The column of Polars' "unable to find column \"x\"" / "x not found" messages.
fn not_found_column(detail: &str) -> Option<String> {
    for pat in ["unable to find column \"", "column \""] {
        if let Some(i) = detail.find(pat) {
            let rest = &detail[i + pat.len()..];
            if let Some(j) = rest.find('"') {
                if detail.contains("not found") || pat.starts_with("unable") {
                    return Some(rest[..j].to_owned());
                }
            }
        }
    }
    None
}

fn checked(df: DataFrame) -> PyResult<PyFrameNode> {
    df.check().map_err(|e| frame_err(&e))?;
    Ok(PyFrameNode { df })
}

/// A Polars data type from its pandas/NumPy name (`"float64"`, `"int32"`, `"str"`,
/// `"bool"`, `"datetime64[ns]"`, `"category"` is read as a string).
pub fn dtype_of(name: &str) -> PyResult<DataType> {
    use pl::TimeUnit;
    Ok(match name {
        "float64" | "float" | "f8" | "double" | "Float64" => DataType::Float64,
        "float32" | "f4" | "Float32" => DataType::Float32,
        "int64" | "int" | "i8" | "Int64" => DataType::Int64,
        "int32" | "i4" | "Int32" => DataType::Int32,
        "int16" | "Int16" => DataType::Int16,
        "int8" | "Int8" => DataType::Int8,
        "uint64" | "UInt64" => DataType::UInt64,
        "uint32" | "UInt32" => DataType::UInt32,
        "uint16" | "UInt16" => DataType::UInt16,
        "uint8" | "UInt8" => DataType::UInt8,
        "bool" | "boolean" => DataType::Boolean,
        "str" | "string" | "object" | "category" | "String" => DataType::String,
        "datetime64[ns]" => DataType::Datetime(TimeUnit::Nanoseconds, None),
        "datetime64[us]" | "datetime64" => DataType::Datetime(TimeUnit::Microseconds, None),
        "datetime64[ms]" => DataType::Datetime(TimeUnit::Milliseconds, None),
        "date" => DataType::Date,
        other => {
            return Err(PyTypeError::new_err(format!(
                "dtype {other:?} is not supported by oxidask.dataframe; use one of float64, \
                 float32, int64, int32, int16, int8, uint64..uint8, bool, str, datetime64[ns|us|ms]"
            )))
        }
    })
}

fn lit_of(v: &Bound<'_, PyAny>) -> PyResult<Expr> {
    if v.is_none() {
        return Ok(lit(pl::NULL));
    }
    if v.is_instance_of::<PyBool>() {
        return Ok(lit(v.extract::<bool>()?));
    }
    if v.is_instance_of::<PyInt>() {
        return Ok(lit(v.extract::<i64>()?));
    }
    if v.is_instance_of::<PyFloat>() {
        return Ok(lit(v.extract::<f64>()?));
    }
    if v.is_instance_of::<PyString>() {
        return Ok(lit(v.extract::<String>()?));
    }
    // NumPy scalars and the like.
    if let Ok(x) = v.extract::<i64>() {
        return Ok(lit(x));
    }
    if let Ok(x) = v.extract::<f64>() {
        return Ok(lit(x));
    }
    Err(PyTypeError::new_err(format!(
        "cannot use a {} as a dataframe value; use numbers, strings, booleans or None",
        crate::pyvalue::type_name(v)
    )))
}

fn series_of(values: &Bound<'_, PyAny>) -> PyResult<pl::Series> {
    let list = values
        .cast::<PyList>()
        .map_err(|_| PyTypeError::new_err("isin takes a list of values (strings or numbers)"))?;
    if list.iter().all(|x| x.is_instance_of::<PyString>()) {
        let v: Vec<String> = list.extract()?;
        return Ok(pl::Series::new("values".into(), v));
    }
    if list
        .iter()
        .all(|x| x.is_instance_of::<PyInt>() && !x.is_instance_of::<PyBool>())
    {
        let v: Vec<i64> = list.extract()?;
        return Ok(pl::Series::new("values".into(), v));
    }
    if list.iter().all(|x| x.is_instance_of::<PyBool>()) {
        let v: Vec<bool> = list.extract()?;
        return Ok(pl::Series::new("values".into(), v));
    }
    let v: Vec<f64> = list
        .extract()
        .map_err(|_| PyTypeError::new_err("isin values must all be strings, or all numbers"))?;
    Ok(pl::Series::new("values".into(), v))
}

/// A Polars expression from its Python form: `("col", name)`, `("lit", value)`,
/// `("bin", op, a, b)` with op one of add sub mul truediv floordiv mod pow eq ne lt le gt ge
/// and or xor, `("un", op, a)` with op neg not abs isnull notnull, `("cast", a, dtype)`,
/// `("isin", a, [values])`, `("between", a, lo, hi, inclusive)`, `("fill", a, b)` (nulls),
/// `("fillnan", a, b)`, `("isnan", a)`,
/// `("dt", field, a)`, `("str", fn, a, arg?)`.
pub fn expr_of(t: &Bound<'_, PyAny>) -> PyResult<Expr> {
    let t = t
        .cast::<PyTuple>()
        .map_err(|_| PyTypeError::new_err("an expression is a tuple"))?;
    let tag: String = t.get_item(0)?.extract()?;
    let arg = |i: usize| -> PyResult<Expr> { expr_of(&t.get_item(i)?) };
    Ok(match tag.as_str() {
        "col" => col(t.get_item(1)?.extract::<String>()?),
        "lit" => lit_of(&t.get_item(1)?)?,
        "bin" => {
            let op: String = t.get_item(1)?.extract()?;
            let (a, b) = (arg(2)?, arg(3)?);
            match op.as_str() {
                "add" => a + b,
                "sub" => a - b,
                "mul" => a * b,
                "truediv" => a.cast(DataType::Float64) / b.cast(DataType::Float64),
                "floordiv" => a.floor_div(b),
                "mod" => a % b,
                "pow" => a.pow(b),
                "eq" => a.eq(b),
                "ne" => a.neq(b),
                "lt" => a.lt(b),
                "le" => a.lt_eq(b),
                "gt" => a.gt(b),
                "ge" => a.gt_eq(b),
                "and" => a.and(b),
                "or" => a.or(b),
                "xor" => a.xor(b),
                _ => return Err(PyValueError::new_err(format!("unknown operator {op}"))),
            }
        }
        "un" => {
            let op: String = t.get_item(1)?.extract()?;
            let a = arg(2)?;
            match op.as_str() {
                "neg" => lit(0) - a,
                "not" => a.not(),
                "abs" => a.abs(),
                "isnull" => a.is_null(),
                "notnull" => a.is_not_null(),
                _ => return Err(PyValueError::new_err(format!("unknown operator {op}"))),
            }
        }
        "cast" => arg(1)?.strict_cast(dtype_of(&t.get_item(2)?.extract::<String>()?)?),
        "isin" => arg(1)?.is_in(lit(series_of(&t.get_item(2)?)?).implode(false), false),
        "between" => {
            let (a, lo, hi) = (arg(1)?, arg(2)?, arg(3)?);
            let inclusive: String = t.get_item(4)?.extract()?;
            let l = if inclusive == "both" || inclusive == "left" {
                a.clone().gt_eq(lo)
            } else {
                a.clone().gt(lo)
            };
            let r = if inclusive == "both" || inclusive == "right" {
                a.lt_eq(hi)
            } else {
                a.lt(hi)
            };
            l.and(r)
        }
        "fill" => arg(1)?.fill_null(arg(2)?),
        "fillnan" => arg(1)?.fill_nan(arg(2)?),
        "isnan" => arg(1)?.is_nan(),
        "dt" => {
            let field: String = t.get_item(1)?.extract()?;
            let a = arg(2)?.dt();
            let e = match field.as_str() {
                "year" => a.year(),
                "month" => a.month(),
                "day" => a.day(),
                "hour" => a.hour(),
                "minute" => a.minute(),
                "second" => a.second(),
                "weekday" | "dayofweek" | "day_of_week" => {
                    // pandas: Monday=0; Polars: Monday=1.
                    return Ok((a.weekday().cast(DataType::Int32) - lit(1)).cast(DataType::Int32));
                }
                "date" => a.date(),
                "quarter" => a.quarter(),
                "dayofyear" | "day_of_year" => a.ordinal_day(),
                _ => {
                    return Err(PyAttributeError::new_err(format!(
                        "'.dt' has no attribute {field:?} in oxidask.dataframe"
                    )))
                }
            };
            e.cast(DataType::Int32)
        }
        "str" => {
            let f: String = t.get_item(1)?.extract()?;
            let a = arg(2)?;
            let s = a.str();
            let text = || -> PyResult<String> { t.get_item(3)?.extract() };
            match f.as_str() {
                "lower" => s.to_lowercase(),
                "upper" => s.to_uppercase(),
                "len" => s.len_chars().cast(DataType::Int64),
                "contains" => s.contains(lit(text()?), true),
                "contains_literal" => s.contains_literal(lit(text()?)),
                "startswith" => s.starts_with(lit(text()?)),
                "endswith" => s.ends_with(lit(text()?)),
                "strip" => s.strip_chars(lit(pl::NULL)),
                "lstrip" => s.strip_chars_start(lit(pl::NULL)),
                "rstrip" => s.strip_chars_end(lit(pl::NULL)),
                "replace" => {
                    let to: String = t.get_item(4)?.extract()?;
                    s.replace_all(lit(text()?), lit(to), true)
                }
                _ => {
                    return Err(PyAttributeError::new_err(format!(
                        "'.str' has no attribute {f:?} in oxidask.dataframe"
                    )))
                }
            }
        }
        _ => return Err(PyValueError::new_err(format!("unknown expression {tag}"))),
    })
}

use pyo3::exceptions::PyAttributeError;

fn agg_fn(name: &str) -> PyResult<AggFn> {
    Ok(match name {
        "sum" => AggFn::Sum,
        "mean" => AggFn::Mean,
        "count" => AggFn::Count,
        "size" => AggFn::Size,
        "min" => AggFn::Min,
        "max" => AggFn::Max,
        "std" => AggFn::Std(1),
        "var" => AggFn::Var(1),
        "nunique" => AggFn::NUnique,
        "first" => AggFn::First,
        "last" => AggFn::Last,
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown aggregation {other:?}; use sum, mean, count, size, min, max, std, var, \
                 nunique, first or last"
            )))
        }
    })
}

/// Encodes a frame as an Arrow IPC file readable by any Arrow (plain strings, not views).
fn to_ipc(df: &pl::DataFrame) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    let mut df = df.clone();
    IpcWriter::new(&mut buf)
        .with_compat_level(CompatLevel::oldest())
        .finish(&mut df)
        .map_err(|e| e.to_string())?;
    Ok(buf)
}

fn from_ipc(bytes: &[u8]) -> Result<pl::DataFrame, String> {
    IpcReader::new(Cursor::new(bytes))
        .finish()
        .map_err(|e| e.to_string())
}

fn convert_module(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    py.import("oxidask.dataframe._arrow")
}

/// A pandas frame from a Polars frame (through Arrow IPC and pyarrow).
fn frame_to_pandas<'py>(
    py: Python<'py>,
    df: &pl::DataFrame,
    index: Option<&str>,
) -> PyResult<Bound<'py, PyAny>> {
    let ipc = to_ipc(df).map_err(PyValueError::new_err)?;
    let buf = crate::buffers::python_buffer(py, Bytes::from(ipc))?;
    convert_module(py)?
        .getattr("ipc_to_pandas")?
        .call1((buf, index))
}

/// Turns a partition into a pandas DataFrame (a Python result).
pub static TO_PANDAS_OP: OpDef = OpDef::new(
    "oxidask_python::dataframe::to_pandas",
    "to_pandas",
    "(String, Partition) -> PyObject",
    &["index", "partition"],
    true,
    to_pandas,
);

oxidask_core::__private::inventory::submit! { OpRegistration(&TO_PANDAS_OP) }

fn to_pandas(args: &mut Args) -> Result<Value, TaskFailure> {
    args.expect_len(2)?;
    let index: String = args.take(0, "index")?;
    let v = match args.take_input(1) {
        Some(Input::Value(v)) => v,
        _ => return Err(TaskFailure::argument("to_pandas needs one partition")),
    };
    let part: Partition = v
        .take::<Partition>()
        .map_err(|e| TaskFailure::argument(format!("to_pandas: {e}")))?;
    let df = part.into_inner();
    gil::attach(|py| {
        let idx = (!index.is_empty()).then_some(index.as_str());
        frame_to_pandas(py, &df, idx)
            .and_then(PyValue::new)
            .map(Value::foreign)
            .map_err(|e| TaskFailure::msg(crate::pyvalue::describe_error(py, &e)))
    })
    .unwrap_or_else(|e| Err(TaskFailure::unavailable(e.to_string())))
}

/// Turns a Python result (a pandas DataFrame or Series) into a partition.
pub static FROM_PANDAS_OP: OpDef = OpDef::new(
    "oxidask_python::dataframe::from_pandas",
    "from_pandas",
    "(PyObject) -> Partition",
    &["value"],
    true,
    from_pandas,
);

oxidask_core::__private::inventory::submit! { OpRegistration(&FROM_PANDAS_OP) }

fn from_pandas(args: &mut Args) -> Result<Value, TaskFailure> {
    args.expect_len(1)?;
    let v = match args.take_input(0) {
        Some(Input::Value(v)) => v,
        _ => return Err(TaskFailure::argument("from_pandas needs one value")),
    };
    let Some(p) = v.downcast_ref::<PyValue>() else {
        return Err(TaskFailure::argument(format!(
            "from_pandas: a Rust `{}` where a Python result was expected",
            v.type_name()
        )));
    };
    let bytes = gil::attach(|py| {
        let r = convert_module(py)
            .and_then(|m| m.getattr("pandas_to_ipc"))
            .and_then(|f| f.call1((p.bind(py),)))
            .and_then(|b| crate::buffers::bytes_of(&b));
        r.map_err(|e| {
            TaskFailure::msg(format!(
                "a partition function's result is not a pandas DataFrame: {}",
                crate::pyvalue::describe_error(py, &e)
            ))
        })
    })
    .unwrap_or_else(|e| Err(TaskFailure::unavailable(e.to_string())))?;
    let df = from_ipc(&bytes).map_err(TaskFailure::msg)?;
    Ok(Value::new(Partition(df)))
}

/// A dataframe of oxidask-dataframe: a lazy plan of partitions (Polars frames).
#[pyclass(frozen, module = "oxidask._oxidask", name = "FrameNode")]
pub struct PyFrameNode {
    df: DataFrame,
}

fn handles_of(df: &DataFrame) -> PyResult<Vec<Delayed<()>>> {
    let keys = df.keys();
    let made = crate::array::handles(&df.graph(), &keys)?;
    Ok(keys.iter().map(|k| made[k].clone()).collect())
}

fn pandas_handle(d: &Delayed<()>, index: &str) -> PyDelayed {
    let mut t = Tokenizer::new();
    t.write_str("to_pandas");
    t.write_str(index);
    t.write_str(d.key().prefix_str());
    t.write_token(d.key().token());
    let idx: Vec<u32> = d.key().index().to_vec();
    for i in &idx {
        t.write_u64(u64::from(*i));
    }
    let key = Key::block("to-pandas", t.finish(), &idx);
    let n = Delayed::<()>::from_task(
        key,
        Task::call(
            &TO_PANDAS_OP,
            [Arg::Value(Value::new(index.to_owned())), Arg::Key(d.key())],
        ),
        [d.clone()],
    );
    PyDelayed::from_node(n, None, None)
}

fn schema_of_ipc(bytes: &[u8]) -> PyResult<pl::Schema> {
    let df = from_ipc(bytes).map_err(PyValueError::new_err)?;
    Ok(df.schema().as_ref().clone())
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[pymethods]
impl PyFrameNode {
    /// Reads Parquet files (globs, directories, lists, `s3://`). `split` says how files
    /// become partitions: `"infer"` or `"adaptive"` with `blocksize` bytes, `"every"` with
    /// `every` row groups, or `"file"` (a partition per file); see `RowGroupSplit`.
    #[staticmethod]
    #[pyo3(signature = (paths, columns = None, endpoint = None, region = None, split = "infer", blocksize = odf::DEFAULT_PARQUET_BLOCKSIZE, every = 1))]
    #[allow(clippy::too_many_arguments)]
    fn read_parquet(
        py: Python<'_>,
        paths: Vec<String>,
        columns: Option<Vec<String>>,
        endpoint: Option<String>,
        region: Option<String>,
        split: &str,
        blocksize: u64,
        every: usize,
    ) -> PyResult<PyFrameNode> {
        let split_row_groups = match split {
            "infer" => odf::RowGroupSplit::Infer { blocksize },
            "adaptive" => odf::RowGroupSplit::Blocksize(blocksize),
            "every" => odf::RowGroupSplit::Every(every),
            "file" => odf::RowGroupSplit::PerFile,
            other => {
                return Err(PyValueError::new_err(format!(
                "read_parquet split must be 'infer', 'adaptive', 'every' or 'file', got {other:?}"
            )))
            }
        };
        let mut o = ParquetOptions {
            columns,
            split_row_groups,
            ..Default::default()
        };
        if let Some(e) = endpoint {
            o.storage = odf::StorageOptions::endpoint(e);
        }
        if let Some(r) = region {
            o.storage = o.storage.region(r);
        }
        checked(py.detach(|| odf::read_parquet_with(paths, o)))
    }

    /// Reads CSV files (globs, directories, lists, `s3://`), `blocksize` bytes per partition.
    #[staticmethod]
    #[pyo3(signature = (paths, blocksize = None, dtypes = Vec::new(), sep = ",", endpoint = None, region = None, per_file = false))]
    #[allow(clippy::too_many_arguments)]
    fn read_csv(
        py: Python<'_>,
        paths: Vec<String>,
        blocksize: Option<u64>,
        dtypes: Vec<(String, String)>,
        sep: &str,
        endpoint: Option<String>,
        region: Option<String>,
        per_file: bool,
    ) -> PyResult<PyFrameNode> {
        let mut o = CsvOptions::default();
        if per_file {
            o.blocksize = None;
        } else if blocksize.is_some() {
            o.blocksize = blocksize;
        }
        for (c, d) in &dtypes {
            o.dtypes.insert(c.clone(), dtype_of(d)?);
        }
        if sep.len() != 1 {
            return Err(PyValueError::new_err("sep must be one character"));
        }
        o.separator = sep.as_bytes()[0];
        if let Some(e) = endpoint {
            o.storage = odf::StorageOptions::endpoint(e);
        }
        if let Some(r) = region {
            o.storage = o.storage.region(r);
        }
        checked(py.detach(|| odf::read_csv_with(paths, o)))
    }

    /// A frame of `npartitions` row ranges of the frame in the Arrow IPC file `data`.
    #[staticmethod]
    fn from_ipc(data: &Bound<'_, PyAny>, npartitions: usize) -> PyResult<PyFrameNode> {
        let bytes = crate::buffers::bytes_of(data)?;
        let df = from_ipc(&bytes).map_err(PyValueError::new_err)?;
        checked(odf::from_polars(df, npartitions))
    }

    /// A frame whose partitions are the pandas results of `handles`, all with the schema of
    /// the Arrow IPC file `meta` (checked on each).
    #[staticmethod]
    fn from_pandas_handles(
        handles: Vec<PyRef<'_, PyDelayed>>,
        meta: &Bound<'_, PyAny>,
    ) -> PyResult<PyFrameNode> {
        let schema = schema_of_ipc(&crate::buffers::bytes_of(meta)?)?;
        let mut parts = Vec::with_capacity(handles.len());
        for h in &handles {
            let node = h.node.clone().ok_or_else(|| {
                PyValueError::new_err(format!(
                    "{} is held on a cluster; wrap it in a task first",
                    h.key_string()
                ))
            })?;
            let mut t = Tokenizer::new();
            t.write_str("from_pandas");
            t.write_str(node.key().prefix_str());
            t.write_token(node.key().token());
            let key = Key::new("from-pandas", t.finish());
            parts.push(Delayed::<Partition>::from_task(
                key,
                Task::call(&FROM_PANDAS_OP, [Arg::Key(node.key())]),
                [node],
            ));
        }
        checked(odf::from_delayed(parts, schema))
    }

    /// Frames concatenated along rows.
    #[staticmethod]
    fn concat(frames: Vec<PyRef<'_, PyFrameNode>>) -> PyResult<PyFrameNode> {
        let fs: Vec<DataFrame> = frames.iter().map(|f| f.df.clone()).collect();
        checked(odf::concat(&fs))
    }

    /// Column names.
    #[getter]
    fn columns(&self) -> Vec<String> {
        self.df.columns()
    }

    /// The number of partitions.
    #[getter]
    fn npartitions(&self) -> usize {
        self.df.npartitions()
    }

    /// The index column, if the frame has one (after `set_index`).
    #[getter]
    fn index(&self) -> Option<String> {
        self.df.index()
    }

    /// Partition boundaries of the index, when known.
    #[getter]
    fn divisions(&self) -> Option<Vec<f64>> {
        self.df.divisions()
    }

    /// An empty frame of this schema as an Arrow IPC file (the meta).
    fn meta_ipc<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let empty = pl::DataFrame::empty_with_schema(&self.df.schema());
        let ipc = to_ipc(&empty).map_err(PyValueError::new_err)?;
        Ok(PyBytes::new(py, &ipc))
    }

    /// Output keys as text.
    fn keys(&self) -> Vec<String> {
        self.df.keys().iter().map(|k| k.to_string()).collect()
    }

    /// The graph: keys (text) to a description of their task.
    fn graph_keys(&self) -> Vec<(String, String)> {
        self.df
            .graph()
            .iter()
            .map(|(k, t)| (k.to_string(), format!("{t:?}")))
            .collect()
    }

    /// One handle per partition whose result is the partition as a pandas DataFrame, with
    /// the columns `index` names (joined by `\x1f`; empty for none) as its index.
    fn pandas_handles(&self, index: &str) -> PyResult<Vec<PyDelayed>> {
        Ok(handles_of(&self.df)?
            .iter()
            .map(|d| pandas_handle(d, index))
            .collect())
    }

    /// One handle per partition whose result is the engine's partition (a Polars frame, not
    /// converted to pandas): what `persist` computes, so later work reads the partitions as
    /// they are.
    fn partition_handles(&self) -> PyResult<Vec<PyDelayed>> {
        Ok(handles_of(&self.df)?
            .into_iter()
            .map(crate::array::rust_handle)
            .collect())
    }

    /// This frame over its persisted partitions: `handles` are `partition_handles()` after
    /// `persist` (values in this process, or results held on a cluster), in partition order.
    /// The schema, the index and its divisions stay.
    fn persisted(
        &self,
        py: Python<'_>,
        handles: Vec<PyRef<'_, PyDelayed>>,
    ) -> PyResult<PyFrameNode> {
        let parts = handles
            .iter()
            .map(|h| match &h.node {
                // A result on a cluster: the future `persist` made keeps it.
                None => h
                    .keep
                    .as_ref()
                    .and_then(|k| k.bind(py).cast::<crate::client::PyFuture>().ok())
                    .map(|f| Arg::Value(f.get().future().as_persisted_piece()))
                    .ok_or_else(|| {
                        PyValueError::new_err(format!(
                            "{} is held on a cluster without a future keeping it",
                            h.key_string()
                        ))
                    }),
                Some(node) => match node.task().spec() {
                    TaskSpec::Value(v) => Ok(Arg::Value(v.clone())),
                    _ => Err(PyValueError::new_err(format!(
                        "{} is not computed: persist the partition handles first",
                        h.key_string()
                    ))),
                },
            })
            .collect::<PyResult<Vec<_>>>()?;
        checked(self.df.over_computed(parts))
    }

    /// The first `n` rows as a pandas DataFrame, reading only the partitions needed.
    fn head<'py>(&self, py: Python<'py>, n: usize, index: &str) -> PyResult<Bound<'py, PyAny>> {
        let df = self.df.clone();
        let out = py.detach(|| df.head(n)).map_err(|e| frame_err(&e))?;
        frame_to_pandas(py, &out, (!index.is_empty()).then_some(index))
    }

    /// The number of rows.
    fn len(&self, py: Python<'_>) -> PyResult<usize> {
        let df = self.df.clone();
        py.detach(|| df.len()).map_err(|e| frame_err(&e))
    }

    /// The columns these expressions (`(name, expr)`) give.
    fn select(&self, exprs: Vec<(String, Bound<'_, PyAny>)>) -> PyResult<PyFrameNode> {
        let es = exprs
            .iter()
            .map(|(n, e)| Ok(expr_of(e)?.alias(n.as_str())))
            .collect::<PyResult<Vec<_>>>()?;
        checked(self.df.select(es))
    }

    /// Adds or replaces columns (`(name, expr)`).
    fn with_columns(&self, exprs: Vec<(String, Bound<'_, PyAny>)>) -> PyResult<PyFrameNode> {
        let es = exprs
            .iter()
            .map(|(n, e)| Ok(expr_of(e)?.alias(n.as_str())))
            .collect::<PyResult<Vec<_>>>()?;
        checked(self.df.with_columns(es))
    }

    /// Rows where the boolean expression holds.
    fn filter(&self, expr: &Bound<'_, PyAny>) -> PyResult<PyFrameNode> {
        checked(self.df.filter(expr_of(expr)?))
    }

    /// Keeps these columns, in this order.
    fn columns_subset(&self, names: Vec<String>) -> PyResult<PyFrameNode> {
        checked(self.df.columns_subset(names))
    }

    /// Renames columns.
    fn rename(&self, pairs: Vec<(String, String)>) -> PyResult<PyFrameNode> {
        checked(
            self.df
                .rename(pairs.iter().map(|(a, b)| (a.as_str(), b.as_str()))),
        )
    }

    /// Drops columns.
    fn drop(&self, columns: Vec<String>) -> PyResult<PyFrameNode> {
        checked(self.df.drop(strs(&columns)))
    }

    /// Drops rows with a null in `subset` (every column when `None`).
    #[pyo3(signature = (subset = None))]
    fn drop_nulls(&self, subset: Option<Vec<String>>) -> PyResult<PyFrameNode> {
        let s = subset.as_ref().map(|v| strs(v));
        checked(self.df.drop_nulls(s.as_deref()))
    }

    /// Some partitions.
    fn partitions(&self, indices: Vec<usize>) -> PyResult<PyFrameNode> {
        let n = self.df.npartitions();
        if let Some(i) = indices.iter().find(|&&i| i >= n) {
            return Err(pyo3::exceptions::PyIndexError::new_err(format!(
                "partition {i} out of range: the frame has {n} partitions"
            )));
        }
        checked(self.df.partitions(indices))
    }

    /// A whole-frame reduction to one row: `kind` over every column.
    fn reduce(&self, kind: &str) -> PyResult<PyFrameNode> {
        let aggs: Vec<Agg> = self
            .df
            .columns()
            .into_iter()
            .map(|c| Ok(Agg::new(c.clone(), agg_fn(kind)?).alias(c)))
            .collect::<PyResult<_>>()?;
        checked(self.df.agg(aggs))
    }

    /// Aggregations `(column, function, result name)` to one row.
    fn agg(&self, aggs: Vec<(String, String, String)>) -> PyResult<PyFrameNode> {
        let a = aggs
            .iter()
            .map(|(c, f, n)| Ok(Agg::new(c.clone(), agg_fn(f)?).alias(n.clone())))
            .collect::<PyResult<Vec<_>>>()?;
        checked(self.df.agg(a))
    }

    /// Group-by aggregations `(column, function, result name)`; `split_out` output partitions,
    /// shuffled by `shuffle_method` ("tasks" or "p2p") when given.
    #[pyo3(signature = (keys, aggs, split_out = None, shuffle_method = None))]
    fn groupby_agg(
        &self,
        keys: Vec<String>,
        aggs: Vec<(String, String, String)>,
        split_out: Option<usize>,
        shuffle_method: Option<&str>,
    ) -> PyResult<PyFrameNode> {
        let a = aggs
            .iter()
            .map(|(c, f, n)| Ok(Agg::new(c.clone(), agg_fn(f)?).alias(n.clone())))
            .collect::<PyResult<Vec<_>>>()?;
        checked(with_method(shuffle_method, || {
            let mut g = self.df.groupby(&keys);
            if let Some(n) = split_out {
                g = g.split_out(n);
            }
            g.agg(a)
        })?)
    }

    /// Value counts of the column `name`, most frequent first.
    fn value_counts(&self, name: &str) -> PyResult<PyFrameNode> {
        checked(self.df.column(name).value_counts())
    }

    /// Distinct rows (of `subset`).
    #[pyo3(signature = (subset = None))]
    fn drop_duplicates(&self, subset: Option<Vec<String>>) -> PyResult<PyFrameNode> {
        let s = subset.as_ref().map(|v| strs(v));
        checked(self.df.drop_duplicates(s.as_deref()))
    }

    /// A join with `right` (shuffled by `shuffle_method`, "tasks" or "p2p", when given).
    #[pyo3(signature = (right, left_on, right_on, how, shuffle_method = None))]
    fn merge(
        &self,
        right: &PyFrameNode,
        left_on: Vec<String>,
        right_on: Vec<String>,
        how: &str,
        shuffle_method: Option<&str>,
    ) -> PyResult<PyFrameNode> {
        let how = parse_how(how)?;
        checked(with_method(shuffle_method, || {
            self.df
                .merge(&right.df, &strs(&left_on), &strs(&right_on), how)
        })?)
    }

    /// A join with `right` on both frames' indexes (`set_index` on each): equal divisions
    /// pair partitions up as they are, different known divisions are aligned first; the
    /// result keeps the index when both have the same name.
    fn join(&self, right: &PyFrameNode, how: &str) -> PyResult<PyFrameNode> {
        checked(self.df.join(&right.df, parse_how(how)?))
    }

    /// The plan as the optimizer leaves it, one step a line (Dask's `explain`/`pprint`).
    fn explain(&self) -> String {
        self.df.explain()
    }

    /// Rows hash-shuffled by `on` into `npartitions` partitions.
    #[pyo3(signature = (on, npartitions, shuffle_method = None))]
    fn shuffle(
        &self,
        on: Vec<String>,
        npartitions: usize,
        shuffle_method: Option<&str>,
    ) -> PyResult<PyFrameNode> {
        checked(with_method(shuffle_method, || {
            self.df.shuffle(&on, npartitions)
        })?)
    }

    /// Rows sorted by `by`.
    #[pyo3(signature = (by, descending, shuffle_method = None))]
    fn sort_values(
        &self,
        py: Python<'_>,
        by: Vec<String>,
        descending: bool,
        shuffle_method: Option<&str>,
    ) -> PyResult<PyFrameNode> {
        let df = self.df.clone();
        let by = strs(&by);
        checked(with_method(shuffle_method, || {
            py.detach(|| df.sort_values(&by, descending))
        })?)
    }

    /// Sorted by `column`, which becomes the index.
    #[pyo3(signature = (column, divisions = None, shuffle_method = None))]
    fn set_index(
        &self,
        py: Python<'_>,
        column: &str,
        divisions: Option<Vec<f64>>,
        shuffle_method: Option<&str>,
    ) -> PyResult<PyFrameNode> {
        let df = self.df.clone();
        checked(with_method(shuffle_method, || {
            py.detach(|| df.set_index(column, divisions))
        })?)
    }

    /// The same rows in `npartitions` partitions.
    fn repartition(&self, npartitions: usize) -> PyResult<PyFrameNode> {
        checked(self.df.repartition(npartitions))
    }

    /// Writes a Parquet file per partition under `dir`; returns the rows written.
    fn to_parquet(&self, py: Python<'_>, dir: &str) -> PyResult<u64> {
        let df = self.df.clone();
        py.detach(|| df.to_parquet(dir)).map_err(|e| frame_err(&e))
    }

    /// Writes a CSV file per partition under `dir`; returns the rows written.
    fn to_csv(&self, py: Python<'_>, dir: &str) -> PyResult<u64> {
        let df = self.df.clone();
        py.detach(|| df.to_csv(dir)).map_err(|e| frame_err(&e))
    }

    /// `describe()` computed now, as a pandas DataFrame.
    fn describe<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let df = self.df.clone();
        let out = py.detach(|| df.describe()).map_err(|e| frame_err(&e))?;
        frame_to_pandas(py, &out, None)
    }

    fn __repr__(&self) -> String {
        format!("{}", self.df)
    }
}

/// A join type from its pandas name.
fn parse_how(how: &str) -> PyResult<odf::How> {
    Ok(match how {
        "inner" => odf::How::Inner,
        "left" => odf::How::Left,
        "right" => odf::How::Right,
        "outer" => odf::How::Outer,
        other => {
            return Err(PyValueError::new_err(format!(
                "how={other:?}: use inner, left, right or outer"
            )))
        }
    })
}

/// Registers the dataframe classes in the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyFrameNode>()?;
    Ok(())
}

/// Runs `f` with shuffles made by `method` ("tasks" or "p2p") when given.
fn with_method<R>(method: Option<&str>, f: impl FnOnce() -> R) -> PyResult<R> {
    match method {
        None => Ok(f()),
        Some(m) => {
            let m: odf::ShuffleMethod = m
                .parse()
                .map_err(|e: FrameError| PyValueError::new_err(e.to_string()))?;
            Ok(odf::with_shuffle_method(m, f))
        }
    }
}
