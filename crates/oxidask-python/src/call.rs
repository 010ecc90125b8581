//! Python calls as tasks: [`PyCall`] (a function, its arguments with placeholders for other
//! tasks' results) and the registered operation that runs one.
//!
//! A Python task is a call of the registered operation `oxidask_python::call` whose first
//! argument is a [`PyCall`] value and whose other arguments are the keys it reads, in order;
//! [`Dep`] placeholders in the call's arguments (at any depth of lists, tuples, dicts and
//! sets) stand for those keys' values. In one process nothing is pickled; a `PyCall` that
//! goes to a worker is pickled there and then, the function once per function (cached by
//! [`PyFunc`]) and unpickled once per worker (cached by content hash).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use oxidask_core::codec::{CodecError, Reader, Writer};
use oxidask_core::op::{Args, Input, OpDef, OpRegistration, TaskFailure};
use oxidask_core::{Encoded, Foreign, Value};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyFrozenSet, PyList, PySet, PyTuple};

use crate::gil;
use crate::pyvalue::{describe_error, dumps_into, loads, value_to_py, PyValue};

/// The codec name of [`PyCall`] values.
pub const PY_CALL: &str = "oxidask_python::PyCall";

/// The registered operation every Python task runs.
pub static CALL_OP: OpDef = OpDef::new(
    "oxidask_python::call",
    "call",
    "(PyCall, dependencies...) -> PyObject",
    &["call"],
    true,
    run_registered,
);

oxidask_core::__private::inventory::submit! { OpRegistration(&CALL_OP) }

/// A placeholder for the value of a task's `index`-th dependency.
#[pyclass(frozen, module = "oxidask._oxidask")]
pub struct Dep {
    /// Which dependency.
    #[pyo3(get)]
    pub index: u32,
}

#[pymethods]
impl Dep {
    #[new]
    fn new(index: u32) -> Dep {
        Dep { index }
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, (u32,))> {
        Ok((slf.get_type().into_any(), (slf.get().index,)))
    }

    fn __repr__(&self) -> String {
        format!("Dep({})", self.index)
    }
}

/// A Python function, with its key prefix and its pickled form (made once, when first sent).
pub struct PyFunc {
    obj: Py<PyAny>,
    name: String,
    pickled: OnceLock<Result<Bytes, String>>,
    /// Dask's token of the function (its import path, or its pickle), made once.
    token: OnceLock<u128>,
}

impl PyFunc {
    /// Wraps `obj`; its name (Dask's `funcname`) becomes the prefix of its tasks' keys.
    pub fn new(obj: &Bound<'_, PyAny>) -> Arc<PyFunc> {
        Arc::new(PyFunc::with_name(obj, funcname(obj)))
    }

    /// Wraps `obj` under the key prefix `name`.
    pub fn with_name(obj: &Bound<'_, PyAny>, name: String) -> PyFunc {
        PyFunc {
            obj: obj.clone().unbind(),
            name,
            pickled: OnceLock::new(),
            token: OnceLock::new(),
        }
    }

    /// The function.
    pub fn bind<'py>(&self, py: Python<'py>) -> &Bound<'py, PyAny> {
        self.obj.bind(py)
    }

    /// The function's token for content keys, computed once by `make`.
    pub fn token(&self, make: impl FnOnce() -> PyResult<u128>) -> PyResult<u128> {
        if let Some(t) = self.token.get() {
            return Ok(*t);
        }
        let t = make()?;
        Ok(*self.token.get_or_init(|| t))
    }

    /// The key prefix (`inc`, `lambda`, `sum`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The function cloudpickled (by value for lambdas, closures and `__main__`; by
    /// reference for importable functions), made once.
    ///
    /// Pickling runs Python, which lets other threads take the GIL: two threads may pickle the
    /// same function at once, and the first to finish sets the result (waiting for another
    /// thread's pickling while holding the GIL would deadlock).
    pub fn pickled(&self, py: Python<'_>) -> Result<&Bytes, String> {
        if let Some(done) = self.pickled.get() {
            return done.as_ref().map_err(Clone::clone);
        }
        let made = cloudpickle_dumps(py, self.obj.bind(py))
            .map(|b| Bytes::copy_from_slice(b.as_bytes()))
            .map_err(|e| {
                format!(
                    "cannot send the function {} to the workers: {}",
                    repr(self.obj.bind(py)),
                    describe_error(py, &e)
                )
            });
        // Setting only moves the value in: no thread waits on it for long.
        let _ = self.pickled.set(made);
        self.pickled
            .get()
            .expect("set above")
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// A short `repr` for messages.
pub fn repr(obj: &Bound<'_, PyAny>) -> String {
    let r = obj
        .repr()
        .map(|s| s.to_string())
        .unwrap_or_else(|_| "<object>".into());
    if r.chars().count() > 80 {
        let cut: String = r.chars().take(77).collect();
        format!("{cut}...")
    } else {
        r
    }
}

/// Dask's `funcname`: the name keys of a function's tasks start with.
pub fn funcname(obj: &Bound<'_, PyAny>) -> String {
    let mut f = obj.clone();
    // functools.partial and friends: the wrapped function's name.
    for _ in 0..8 {
        match f.getattr("func") {
            Ok(inner) if inner.is_callable() && !f.hasattr("__name__").unwrap_or(false) => {
                f = inner
            }
            _ => break,
        }
    }
    let name = f
        .getattr("__name__")
        .and_then(|n| n.extract::<String>())
        .unwrap_or_else(|_| {
            f.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_else(|_| "call".into())
        });
    let name = if name == "<lambda>" {
        "lambda".to_owned()
    } else {
        name
    };
    sanitize_prefix(&name)
}

/// A key prefix from free text: short, no characters that break keys.
pub fn sanitize_prefix(name: &str) -> String {
    let s: String = name
        .chars()
        .filter(|c| !c.is_control() && *c != '<' && *c != '>')
        .take(64)
        .collect();
    if s.is_empty() {
        "call".into()
    } else {
        s
    }
}

fn cloudpickle_dumps<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    static DUMPS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let f = DUMPS.get_or_try_init(py, || {
        Ok::<_, PyErr>(py.import("cloudpickle")?.getattr("dumps")?.unbind())
    })?;
    Ok(f.bind(py).call1((obj, 5))?.cast_into::<PyBytes>()?)
}

fn cloudpickle_loads<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    static LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let f = LOADS.get_or_try_init(py, || {
        Ok::<_, PyErr>(py.import("cloudpickle")?.getattr("loads")?.unbind())
    })?;
    f.bind(py).call1((PyBytes::new(py, bytes),))
}

/// A Python call: the function, positional arguments, keyword arguments, with [`Dep`]
/// placeholders for the values of the task's dependencies.
pub struct PyCall {
    func: Arc<PyFunc>,
    args: Py<PyTuple>,
    kwargs: Option<Py<PyDict>>,
    /// Placeholders sit inside containers (not only at the top level of the arguments).
    nested: bool,
}

impl PyCall {
    /// A call; `nested` says whether placeholders may sit inside containers.
    pub fn new(
        func: Arc<PyFunc>,
        args: Bound<'_, PyTuple>,
        kwargs: Option<Bound<'_, PyDict>>,
        nested: bool,
    ) -> PyCall {
        PyCall {
            func,
            args: args.unbind(),
            kwargs: kwargs.map(Bound::unbind),
            nested,
        }
    }

    /// The function.
    pub fn func(&self) -> &Arc<PyFunc> {
        &self.func
    }

    /// Runs the call with `deps` in place of the placeholders; through `runner(func, args,
    /// kwargs)` instead of calling the function here, if given (a process pool).
    pub fn call<'py>(
        &self,
        py: Python<'py>,
        deps: &[Bound<'py, PyAny>],
        runner: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let args = self.args.bind(py);
        let args = if deps.is_empty() {
            args.clone()
        } else {
            let items = args
                .iter()
                .map(|a| substitute(&a, deps, self.nested, 1))
                .collect::<PyResult<Vec<_>>>()?;
            PyTuple::new(py, items)?
        };
        let kwargs = match &self.kwargs {
            None => None,
            Some(k) if deps.is_empty() => Some(k.bind(py).clone()),
            Some(k) => {
                let out = PyDict::new(py);
                for (name, v) in k.bind(py).iter() {
                    out.set_item(name, substitute(&v, deps, self.nested, 1)?)?;
                }
                Some(out)
            }
        };
        match runner {
            Some(r) => r.call1((self.func.bind(py), args, kwargs)),
            None => self.func.bind(py).call(args, kwargs.as_ref()),
        }
    }
}

fn dep_value<'py>(d: &Bound<'py, Dep>, deps: &[Bound<'py, PyAny>]) -> PyResult<Bound<'py, PyAny>> {
    let i = d.get().index as usize;
    deps.get(i).cloned().ok_or_else(|| {
        pyo3::exceptions::PyRuntimeError::new_err(format!(
            "placeholder Dep({i}) refers to a dependency the task does not have ({} given)",
            deps.len()
        ))
    })
}

/// How deep lists, tuples, dicts and sets may nest in a task's arguments (about CPython's
/// default recursion limit). Deeper structures raise `RecursionError`, as Dask does, instead of
/// overflowing the stack of the thread walking them.
pub const MAX_NESTING: u32 = 1000;

/// Stack a walk of nested arguments leaves to the rest of the thread (Python calls it makes
/// included): threads with small stacks (a pool's, 2 MiB) reach it before [`MAX_NESTING`].
const STACK_MARGIN: usize = 256 * 1024;

/// `RecursionError` if a walk of nested arguments may not go one level deeper than `depth`.
pub fn check_nesting(depth: u32) -> PyResult<()> {
    if depth > MAX_NESTING || stacker::remaining_stack().is_some_and(|left| left < STACK_MARGIN) {
        return Err(pyo3::exceptions::PyRecursionError::new_err(format!(
            "maximum recursion depth exceeded while walking a task's arguments: their lists, \
             tuples, dicts and sets nest too deep (at most {MAX_NESTING} levels, fewer on \
             threads with small stacks); pass such a structure inside another object, or \
             flatten it"
        )));
    }
    Ok(())
}

/// `obj` with placeholders replaced by dependency values (containers rebuilt only if
/// `nested` and they hold placeholders); `depth` is how deep in the arguments `obj` sits.
fn substitute<'py>(
    obj: &Bound<'py, PyAny>,
    deps: &[Bound<'py, PyAny>],
    nested: bool,
    depth: u32,
) -> PyResult<Bound<'py, PyAny>> {
    if let Ok(d) = obj.cast::<Dep>() {
        return dep_value(d, deps);
    }
    if !nested {
        return Ok(obj.clone());
    }
    check_nesting(depth)?;
    let py = obj.py();
    let inner = |x: Bound<'py, PyAny>| substitute(&x, deps, true, depth + 1);
    if let Ok(l) = obj.cast_exact::<PyList>() {
        let items = l.iter().map(inner).collect::<PyResult<Vec<_>>>()?;
        return Ok(PyList::new(py, items)?.into_any());
    }
    if let Ok(t) = obj.cast_exact::<PyTuple>() {
        let items = t.iter().map(inner).collect::<PyResult<Vec<_>>>()?;
        return Ok(PyTuple::new(py, items)?.into_any());
    }
    if let Ok(d) = obj.cast_exact::<PyDict>() {
        let out = PyDict::new(py);
        for (k, v) in d.iter() {
            out.set_item(k, inner(v)?)?;
        }
        return Ok(out.into_any());
    }
    if let Ok(s) = obj.cast_exact::<PySet>() {
        let items = s.iter().map(inner).collect::<PyResult<Vec<_>>>()?;
        return Ok(PySet::new(py, items)?.into_any());
    }
    if let Ok(s) = obj.cast_exact::<PyFrozenSet>() {
        let items = s.iter().map(inner).collect::<PyResult<Vec<_>>>()?;
        return Ok(PyFrozenSet::new(py, items)?.into_any());
    }
    Ok(obj.clone())
}

/// Wire layout of a [`PyCall`]: `u8 version | u8 flags | varint len | function | arguments`,
/// the arguments pickled as `(args, kwargs)` with their buffers out of band.
const CALL_FORMAT: u8 = 1;
const FLAG_NESTED: u8 = 1;

impl Foreign for PyCall {
    fn nbytes(&self) -> usize {
        256
    }

    fn codec_name(&self) -> &'static str {
        PY_CALL
    }

    fn encode(&self, out: &mut Encoded) -> Result<(), CodecError> {
        let fail = |message: String| CodecError::Foreign {
            type_name: "Python task".into(),
            message,
        };
        gil::attach(|py| {
            let func = self.func.pickled(py).map_err(fail)?;
            out.head.push(CALL_FORMAT);
            out.head.push(if self.nested { FLAG_NESTED } else { 0 });
            {
                let mut w = Writer::new(&mut out.head);
                w.put_len(func.len());
            }
            out.head.extend_from_slice(func);
            let kwargs: Bound<'_, PyAny> = match &self.kwargs {
                Some(k) => k.bind(py).clone().into_any(),
                None => py.None().into_bound(py),
            };
            let pair = PyTuple::new(py, [self.args.bind(py).clone().into_any(), kwargs])
                .map_err(|e| fail(describe_error(py, &e)))?;
            dumps_into(pair.as_any(), out).map_err(|e| {
                fail(format!(
                    "cannot send the arguments of {} to the workers: {e}",
                    self.func.name()
                ))
            })
        })
        .unwrap_or_else(|e| Err(fail(e.to_string())))
    }
}

/// Functions unpickled in this process, by the hash of their pickle.
fn function_cache() -> &'static Mutex<HashMap<u128, Arc<PyFunc>>> {
    static CACHE: OnceLock<Mutex<HashMap<u128, Arc<PyFunc>>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// Most functions kept unpickled; the cache starts over when full.
const FUNCTION_CACHE_SIZE: usize = 4096;

/// The decoder registered for [`PY_CALL`].
pub fn decode_py_call(head: &[u8], bufs: Vec<Bytes>) -> Result<Value, CodecError> {
    let invalid = |detail: String| CodecError::Invalid {
        what: "Python task",
        detail,
    };
    let mut r = Reader::new(head);
    let version = r.get_u8("format")?;
    if version != CALL_FORMAT {
        return Err(invalid(format!(
            "format {version}; this worker reads format {CALL_FORMAT} (run the same oxidask version everywhere)"
        )));
    }
    let nested = r.get_u8("flags")? & FLAG_NESTED != 0;
    let len = r.get_len("function", 1)?;
    let func_bytes = r.take(len, "function")?;
    let rest = &head[head.len() - r.remaining()..];
    let hash = xxhash_rust::xxh3::xxh3_128(func_bytes);
    gil::attach(|py| {
        let cached = function_cache()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&hash)
            .cloned();
        let func = match cached {
            Some(f) => f,
            None => {
                let obj = cloudpickle_loads(py, func_bytes).map_err(|e| {
                    invalid(format!(
                        "the task's function cannot be loaded here: {}",
                        describe_error(py, &e)
                    ))
                })?;
                let f = Arc::new(PyFunc {
                    name: funcname(&obj),
                    obj: obj.unbind(),
                    pickled: OnceLock::from(Ok(Bytes::copy_from_slice(func_bytes))),
                    token: OnceLock::new(),
                });
                // Functions dropped here may run Python (a decref), which may switch threads:
                // they are dropped after the lock is released, never under it.
                let (f, _unused, _evicted) = {
                    let mut cache = function_cache().lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(other) = cache.get(&hash) {
                        // Another thread loaded it meanwhile: use theirs.
                        (other.clone(), Some(f), HashMap::new())
                    } else {
                        let evicted = if cache.len() >= FUNCTION_CACHE_SIZE {
                            std::mem::take(&mut *cache)
                        } else {
                            HashMap::new()
                        };
                        cache.insert(hash, f.clone());
                        (f, None, evicted)
                    }
                };
                f
            }
        };
        let pair = loads(py, rest, bufs).map_err(|e| {
            invalid(format!(
                "the arguments of {} cannot be loaded here: {}",
                func.name(),
                describe_error(py, &e)
            ))
        })?;
        let (args, kwargs): (Bound<'_, PyTuple>, Option<Bound<'_, PyDict>>) = pair
            .extract()
            .map_err(|e: PyErr| invalid(describe_error(py, &e)))?;
        Ok(Value::foreign(PyCall::new(func, args, kwargs, nested)))
    })
    .unwrap_or_else(|e| Err(invalid(e.to_string())))
}

/// How the Python calls of a local computation through a process pool run.
pub struct RunContext {
    /// Calls go through this (`runner(func, args, kwargs)`).
    pub runner: Py<PyAny>,
}

fn run_registered(args: &mut Args) -> Result<Value, TaskFailure> {
    run_call(args, None)
}

/// Runs the Python call in `args` (a [`PyCall`] then the dependencies' values), through the
/// process pool of `ctx` if given.
pub fn run_call(args: &mut Args, ctx: Option<&RunContext>) -> Result<Value, TaskFailure> {
    let call = match args.take_input(0) {
        Some(Input::Value(v)) => v,
        _ => return Err(TaskFailure::argument("a Python task without its call")),
    };
    let Some(pycall) = call.downcast_ref::<PyCall>() else {
        return Err(TaskFailure::type_mismatch("PyCall", call.type_name()));
    };
    let mut deps = Vec::with_capacity(args.len().saturating_sub(1));
    for i in 1..args.len() {
        match args.take_input(i) {
            Some(Input::Value(v)) => deps.push(v),
            _ => {
                return Err(TaskFailure::argument(
                    "a Python task's dependency is missing",
                ))
            }
        }
    }
    let attach = |f: &mut dyn FnMut(Python<'_>) -> Result<Value, TaskFailure>| {
        if oxidask_local::on_any_pool_thread() {
            // The local pool keeps the GIL between this thread's consecutive Python tasks.
            gil::attach_sticky(f)
        } else {
            gil::attach(f)
        }
    };
    attach(&mut |py| {
        let objs = deps
            .iter()
            .map(|v| value_to_py(py, v))
            .collect::<PyResult<Vec<_>>>()
            .map_err(|e| failure(py, e))?;
        let runner = ctx.map(|c| c.runner.bind(py));
        let out = pycall.call(py, &objs, runner).map_err(|e| failure(py, e))?;
        // The arguments are dropped here, while attached: no deferred decrefs.
        drop(objs);
        deps.clear();
        PyValue::new(out)
            .map(Value::foreign)
            .map_err(|e| failure(py, e))
    })
    .unwrap_or_else(|e| Err(TaskFailure::unavailable(e.to_string())))
}

/// A task failure from a Python exception: its type and message, with the exception and its
/// traceback pickled as the failure's detail so the caller can re-raise it.
pub fn failure(py: Python<'_>, e: PyErr) -> TaskFailure {
    static CAPTURE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let captured = CAPTURE
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(py.import("oxidask._remote")?.getattr("capture")?.unbind())
        })
        .and_then(|f| f.bind(py).call1((e.value(py), e.traceback(py))))
        .and_then(|r| r.extract::<(String, Bound<'_, PyBytes>)>());
    match captured {
        Ok((summary, detail)) => {
            TaskFailure::msg(summary).with_detail(Bytes::copy_from_slice(detail.as_bytes()))
        }
        Err(_) => TaskFailure::msg(describe_error(py, &e)),
    }
}
