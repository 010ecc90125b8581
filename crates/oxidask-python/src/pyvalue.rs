//! [`PyValue`]: a Python object as a task result, and conversions between Rust values and
//! Python objects.
//!
//! A Python task's result stays a Python object in the process that made it (a local
//! scheduler's pool, a worker's store); it is pickled only when it leaves the process: with
//! protocol 5, large buffers (NumPy arrays, Arrow data, pandas blocks) go out of band as
//! separate frame parts, and cloudpickle takes over when plain pickle cannot (lambdas,
//! classes defined in `__main__`).

use bytes::Bytes;
use oxidask_core::codec::CodecError;
use oxidask_core::{Encoded, Foreign, Value};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyFloat, PyInt, PyList, PyString, PyTuple};

use crate::buffers;
use crate::gil;

/// The name Python results are registered and sent under.
pub const PY_OBJECT: &str = "oxidask_python::PyObject";

/// A Python object held as a task result, with its size measured when it was made.
pub struct PyValue {
    obj: Py<PyAny>,
    nbytes: usize,
}

impl PyValue {
    /// Wraps `obj`, measuring it (exactly for buffers, `sys.getsizeof`-like otherwise).
    pub fn new(obj: Bound<'_, PyAny>) -> PyResult<PyValue> {
        let nbytes = sizeof(&obj)?;
        Ok(PyValue {
            obj: obj.unbind(),
            nbytes,
        })
    }

    /// The object.
    pub fn bind<'py>(&self, py: Python<'py>) -> &Bound<'py, PyAny> {
        self.obj.bind(py)
    }

    /// A new reference to the object.
    pub fn object(&self, py: Python<'_>) -> Py<PyAny> {
        self.obj.clone_ref(py)
    }
}

impl Foreign for PyValue {
    fn nbytes(&self) -> usize {
        self.nbytes
    }

    fn codec_name(&self) -> &'static str {
        PY_OBJECT
    }

    fn encode(&self, out: &mut Encoded) -> Result<(), CodecError> {
        gil::attach(|py| {
            dumps_into(self.obj.bind(py), out).map_err(|message| CodecError::Foreign {
                type_name: type_name(self.obj.bind(py)),
                message,
            })
        })
        .unwrap_or_else(|e| {
            Err(CodecError::Foreign {
                type_name: "Python object".into(),
                message: e.to_string(),
            })
        })
    }
}

/// The decoder registered for [`PY_OBJECT`].
pub fn decode_py_object(head: &[u8], bufs: Vec<Bytes>) -> Result<Value, CodecError> {
    gil::attach(|py| {
        loads(py, head, bufs)
            .and_then(|obj| Ok(Value::foreign(PyValue::new(obj)?)))
            .map_err(|e| CodecError::Invalid {
                what: "Python object",
                detail: describe_error(py, &e),
            })
    })
    .unwrap_or_else(|e| {
        Err(CodecError::Invalid {
            what: "Python object",
            detail: e.to_string(),
        })
    })
}

/// `module.qualname` of an object's type, for messages.
pub fn type_name(obj: &Bound<'_, PyAny>) -> String {
    let t = obj.get_type();
    let module = t
        .module()
        .map(|m| m.to_string())
        .unwrap_or_else(|_| "?".into());
    let name = t
        .qualname()
        .map(|m| m.to_string())
        .unwrap_or_else(|_| "?".into());
    if module == "builtins" {
        name
    } else {
        format!("{module}.{name}")
    }
}

/// `TypeName: message` of a Python error.
pub fn describe_error(py: Python<'_>, e: &PyErr) -> String {
    let v = e.value(py);
    format!("{}: {}", type_name(v.as_any()), v)
}

fn serialize_module(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    static MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    MODULE
        .get_or_try_init(py, || Ok(py.import("oxidask._serialize")?.unbind()))
        .map(|m| m.bind(py))
}

fn pickle_dumps(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static DUMPS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    DUMPS
        .get_or_try_init(py, || Ok(py.import("pickle")?.getattr("dumps")?.unbind()))
        .map(|f| f.bind(py))
}

fn pickle_loads(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    LOADS
        .get_or_try_init(py, || Ok(py.import("pickle")?.getattr("loads")?.unbind()))
        .map(|f| f.bind(py))
}

/// True for objects that pickle to a few bytes with no buffers and need no helper.
fn is_scalar(obj: &Bound<'_, PyAny>) -> bool {
    obj.is_none()
        || obj.is_exact_instance_of::<PyInt>()
        || obj.is_exact_instance_of::<PyFloat>()
        || obj.is_exact_instance_of::<PyBool>()
        || obj.is_exact_instance_of::<PyString>()
        || obj.is_exact_instance_of::<PyBytes>()
}

/// Pickles `obj` (protocol 5; cloudpickle when plain pickle cannot) into `out`, its large
/// buffers out of band. Errors name the object's type and pickle's reason.
pub fn dumps_into(obj: &Bound<'_, PyAny>, out: &mut Encoded) -> Result<(), String> {
    let py = obj.py();
    if is_scalar(obj) {
        let b = pickle_dumps(py)
            .and_then(|d| d.call1((obj, 5)))
            .map_err(|e| describe_error(py, &e))?;
        let b = b.cast::<PyBytes>().map_err(|e| e.to_string())?;
        out.head.extend_from_slice(b.as_bytes());
        return Ok(());
    }
    let r = serialize_module(py)
        .and_then(|m| m.getattr("dumps")?.call1((obj,)))
        .map_err(|e| describe_error(py, &e))?;
    let (head, bufs): (Bound<'_, PyBytes>, Bound<'_, PyList>) =
        r.extract().map_err(|e: PyErr| e.to_string())?;
    out.head.extend_from_slice(head.as_bytes());
    for b in bufs.iter() {
        out.buffers
            .push(buffers::bytes_of(&b).map_err(|e| describe_error(py, &e))?);
    }
    Ok(())
}

/// Unpickles what [`dumps_into`] wrote.
pub fn loads<'py>(py: Python<'py>, head: &[u8], bufs: Vec<Bytes>) -> PyResult<Bound<'py, PyAny>> {
    let head = PyBytes::new(py, head);
    if bufs.is_empty() {
        return pickle_loads(py)?.call1((head,));
    }
    let views = bufs
        .into_iter()
        .map(|b| buffers::python_buffer(py, b))
        .collect::<PyResult<Vec<_>>>()?;
    serialize_module(py)?
        .getattr("loads")?
        .call1((head, PyList::new(py, views)?))
}

/// Bytes an object holds: exact for scalars, Python's `oxidask.sizeof` (buffers, containers,
/// pandas) otherwise.
pub fn sizeof(obj: &Bound<'_, PyAny>) -> PyResult<usize> {
    if obj.is_none() || obj.is_exact_instance_of::<PyBool>() {
        return Ok(16);
    }
    if obj.is_exact_instance_of::<PyInt>() {
        return Ok(32);
    }
    if obj.is_exact_instance_of::<PyFloat>() {
        return Ok(24);
    }
    if let Ok(s) = obj.cast_exact::<PyString>() {
        return Ok(49 + s.len()?);
    }
    if let Ok(b) = obj.cast_exact::<PyBytes>() {
        return Ok(33 + b.as_bytes().len());
    }
    static SIZEOF: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let f = SIZEOF.get_or_try_init(obj.py(), || {
        Ok::<_, PyErr>(
            obj.py()
                .import("oxidask.sizeof")?
                .getattr("sizeof")?
                .unbind(),
        )
    })?;
    let n: i64 = f.bind(obj.py()).call1((obj,))?.extract()?;
    Ok(n.max(0) as usize)
}

/// A Rust value as a Python object: Python results as themselves, Rust numbers, strings and
/// their vectors as Python numbers, strings and lists.
pub fn value_to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    if let Some(p) = v.downcast_ref::<PyValue>() {
        return Ok(p.bind(py).clone());
    }
    macro_rules! try_types {
        ($($t:ty),*) => {$(
            if let Some(x) = v.downcast_ref::<$t>() {
                return Ok(x.clone().into_pyobject(py)?.into_any());
            }
        )*};
    }
    if let Some(b) = v.downcast_ref::<bool>() {
        return Ok(PyBool::new(py, *b).to_owned().into_any());
    }
    try_types!(
        i64,
        i32,
        u64,
        u32,
        usize,
        u8,
        f64,
        f32,
        String,
        Vec<i64>,
        Vec<f64>,
        Vec<String>,
        Vec<bool>,
        Vec<u8>,
        Option<i64>,
        Option<f64>,
        Option<String>
    );
    if v.downcast_ref::<()>().is_some() {
        return Ok(py.None().into_bound(py));
    }
    Err(PyTypeError::new_err(format!(
        "a Rust value of type `{}` cannot be turned into a Python object",
        v.type_name()
    )))
}

/// A Python object as a Rust value for a registered Rust operation: `int` → `i64`, `float` →
/// `f64`, `bool`, `str` → `String`, `None` → `()`, lists of those → `Vec`s.
pub fn py_to_value(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    if obj.is_none() {
        return Ok(Value::new(()));
    }
    if obj.is_exact_instance_of::<PyBool>() {
        return Ok(Value::new(obj.extract::<bool>()?));
    }
    if obj.is_instance_of::<PyInt>() {
        return Ok(Value::new(obj.extract::<i64>()?));
    }
    if obj.is_instance_of::<PyFloat>() {
        return Ok(Value::new(obj.extract::<f64>()?));
    }
    if obj.is_instance_of::<PyString>() {
        return Ok(Value::new(obj.extract::<String>()?));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        if let Ok(v) = obj.extract::<Vec<i64>>() {
            return Ok(Value::new(v));
        }
        if let Ok(v) = obj.extract::<Vec<f64>>() {
            return Ok(Value::new(v));
        }
        if let Ok(v) = obj.extract::<Vec<String>>() {
            return Ok(Value::new(v));
        }
    }
    Err(PyTypeError::new_err(format!(
        "a `{}` cannot be passed to a Rust operation; use ints, floats, bools, strings, None or lists of one of them",
        type_name(obj)
    )))
}
