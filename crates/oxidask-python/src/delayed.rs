//! Dask's `Delayed` for Python: lazy calls of Python functions, building an oxidask graph.
//!
//! A [`PyDelayed`] is a handle on a node of oxidask's delayed DAG (`oxidask_core::Delayed`)
//! whose task is a [`PyCall`](crate::call::PyCall), a literal Python value, or nothing at all
//! for a result held on a cluster (a persisted future). Building one costs a key and a small
//! allocation: no pickling, no graph copies; the flat graph is assembled only to compute.

use std::sync::{Arc, Mutex, OnceLock};

use oxidask_core::tokenize::Tokenizer;
use oxidask_core::{Arg, Delayed, Graph, Key, Task, Token, Value};
use pyo3::exceptions::{PyAttributeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBool, PyBytes, PyDict, PyFloat, PyFrozenSet, PyInt, PyList, PySet, PyString, PyTuple,
};
use rustc_hash::FxHashMap;

use crate::call::{check_nesting, funcname, repr, sanitize_prefix, Dep, PyCall, PyFunc, CALL_OP};
use crate::pyvalue::PyValue;

/// A lazy result of a Python call (Dask's `Delayed`).
#[pyclass(frozen, weakref, module = "oxidask._oxidask", name = "Delayed")]
pub struct PyDelayed {
    /// The key.
    pub(crate) key: Key,
    /// The task and what it reads; `None` for a result held on a cluster.
    pub(crate) node: Option<Delayed<()>>,
    /// Keeps a cluster result alive (the future a persisted value stands for).
    pub(crate) keep: Option<Py<PyAny>>,
    /// The key as the user gave it, if they did.
    pub(crate) key_text: Option<String>,
    /// Known number of outputs (`nout`), for unpacking.
    length: Option<usize>,
    /// For `obj.attr`: the object and the attribute, so `obj.attr(...)` is one task.
    attr: Option<(Py<PyDelayed>, String)>,
    /// The result is a Python object (false for a Rust operation's result).
    pub(crate) python_result: bool,
}

impl PyDelayed {
    /// A handle on a task node.
    pub fn from_node(node: Delayed<()>, key_text: Option<String>, length: Option<usize>) -> Self {
        PyDelayed {
            key: node.key(),
            node: Some(node),
            keep: None,
            key_text,
            length,
            attr: None,
            python_result: true,
        }
    }

    /// A handle on a result held elsewhere (a cluster), kept alive by `keep`.
    pub fn external(key: Key, keep: Py<PyAny>, key_text: Option<String>) -> Self {
        PyDelayed {
            key,
            node: None,
            keep: Some(keep),
            key_text,
            length: None,
            attr: None,
            python_result: true,
        }
    }

    /// The key as Python shows it.
    pub fn key_string(&self) -> String {
        self.key_text
            .clone()
            .unwrap_or_else(|| self.key.to_string())
    }
}

/// The key of user text (`dask_key_name="x-1"`, a key shown by Python): the key itself if
/// the text is how a key shows (`inc-<24 hex digits>`, `('x-<24 hex digits>', 0, 1)`), so a key
/// read back names the same result as in Dask; else Dask's `key_split` as prefix and the text's
/// hash as token.
pub fn key_from_text(text: &str) -> Key {
    if let Ok(key) = text.parse::<Key>() {
        if key.to_string() == text {
            return key;
        }
    }
    Key::new(
        &sanitize_prefix(&key_split(text)),
        Token::from_u128(xxhash_rust::xxh3::xxh3_128(text.as_bytes())),
    )
}

/// Dask's `key_split`: `"inc-1f2e…"` → `"inc"`, `"x-1"` → `"x"`, `"x"` → `"x"`.
pub fn key_split(text: &str) -> String {
    let mut words = text.split('-').collect::<Vec<_>>();
    while words.len() > 1 {
        let last = words[words.len() - 1];
        let is_token = last.chars().all(|c| c.is_ascii_hexdigit()) && !last.is_empty()
            || last.chars().all(|c| c.is_ascii_digit());
        if is_token {
            words.pop();
        } else {
            break;
        }
    }
    words.join("-")
}

/// One dependency of a packed call.
pub struct PackedDep {
    /// Its key.
    pub key: Key,
    /// Its task and what that reads; `None` for a result held on a cluster.
    pub node: Option<Delayed<()>>,
    /// What keeps a cluster result alive (a future).
    pub keep: Option<Py<PyAny>>,
}

/// What an argument structure turns into: placeholders, dependencies and (for pure calls)
/// a token.
pub struct Packer {
    /// Distinct dependencies, in the order of their placeholders.
    pub deps: Vec<PackedDep>,
    index: FxHashMap<Key, u32>,
    /// Placeholders inside containers.
    pub nested: bool,
    /// Futures (cluster results) may be arguments.
    futures: bool,
    token: Option<Tokenizer>,
}

impl Packer {
    /// A packer; `pure` computes a content token as it goes; `futures` accepts futures.
    pub fn new(pure: bool, futures: bool) -> Packer {
        Packer {
            deps: Vec::new(),
            index: FxHashMap::default(),
            nested: false,
            futures,
            token: pure.then(Tokenizer::new),
        }
    }

    fn dep(&mut self, key: Key, node: Option<Delayed<()>>, keep: Option<Py<PyAny>>) -> u32 {
        // A scan while there are few (most calls read one to three values), a hash index after.
        if self.deps.len() <= 8 {
            if let Some(i) = self.deps.iter().position(|d| d.key == key) {
                return i as u32;
            }
        } else {
            if self.index.is_empty() {
                for (i, d) in self.deps.iter().enumerate() {
                    self.index.insert(d.key, i as u32);
                }
            }
            if let Some(&i) = self.index.get(&key) {
                return i;
            }
        }
        let i = self.deps.len() as u32;
        self.deps.push(PackedDep { key, node, keep });
        if !self.index.is_empty() {
            self.index.insert(key, i);
        }
        i
    }

    fn token_key(&mut self, key: &Key) {
        if let Some(t) = &mut self.token {
            t.write_bytes(b"k");
            t.write_str(key.prefix_str());
            t.write_token(key.token());
            // Blocks of one collection may share a prefix and token and differ by index only.
            t.write_u64(key.index().len() as u64);
            for i in key.index() {
                t.write_u64(u64::from(*i));
            }
        }
    }

    /// The template of `obj`: itself if it holds no lazy values, a [`Dep`] for a lazy value,
    /// a rebuilt container otherwise. `depth` is how deep in the arguments `obj` sits; past
    /// [`MAX_NESTING`](crate::call::MAX_NESTING), or near the end of the stack, `RecursionError`.
    pub fn pack<'py>(
        &mut self,
        obj: &Bound<'py, PyAny>,
        depth: u32,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = obj.py();
        if let Ok(d) = obj.cast::<PyDelayed>() {
            let d = d.get();
            self.token_key(&d.key);
            let keep = d.keep.as_ref().map(|k| k.clone_ref(py));
            let i = self.dep(d.key, d.node.clone(), keep);
            self.nested |= depth > 0;
            return placeholder(py, i);
        }
        if let Ok(f) = obj.cast::<crate::client::PyFuture>() {
            if !self.futures {
                return Err(PyTypeError::new_err(format!(
                    "a future ({}) cannot be an argument here: futures live on a cluster; pass them to client.submit or compute on the cluster",
                    f.get().key_string()
                )));
            }
            let key = f.get().key();
            self.token_key(&key);
            let i = self.dep(key, None, Some(obj.clone().unbind()));
            self.nested |= depth > 0;
            return placeholder(py, i);
        }
        if let Some(t) = &mut self.token {
            if token_scalar(t, obj) {
                return Ok(obj.clone());
            }
        } else if is_leaf(obj) {
            return Ok(obj.clone());
        }
        // Not a scalar: walking it may go deeper.
        check_nesting(depth)?;
        macro_rules! container {
            ($ty:ty, $tag:expr, $build:expr) => {
                if let Ok(c) = obj.cast_exact::<$ty>() {
                    if let Some(t) = &mut self.token {
                        t.write_bytes($tag);
                        t.write_u64(c.len() as u64);
                    }
                    let before = (self.deps.len(), self.nested);
                    let mut changed = false;
                    let mut items = Vec::with_capacity(c.len());
                    for x in c.iter() {
                        let p = self.pack(&x, depth + 1)?;
                        changed |= !p.is(&x);
                        items.push(p);
                    }
                    let _ = before;
                    return if changed {
                        $build(py, items)
                    } else {
                        Ok(obj.clone())
                    };
                }
            };
        }
        container!(PyTuple, b"t", |py, items: Vec<Bound<'py, PyAny>>| Ok::<
            _,
            PyErr,
        >(
            PyTuple::new(py, items)?.into_any()
        ));
        container!(PyList, b"l", |py, items: Vec<Bound<'py, PyAny>>| Ok::<
            _,
            PyErr,
        >(
            PyList::new(py, items)?.into_any()
        ));
        // Sets and dicts: order-independent tokens (each item tokenized alone, sorted).
        if let Ok(c) = obj.cast_exact::<PySet>() {
            let items: Vec<Bound<'py, PyAny>> = c.iter().collect();
            let (packed, changed) = self.pack_unordered(b"s", &items, false, depth)?;
            return if changed {
                Ok(PySet::new(py, packed)?.into_any())
            } else {
                Ok(obj.clone())
            };
        }
        if let Ok(c) = obj.cast_exact::<PyFrozenSet>() {
            let items: Vec<Bound<'py, PyAny>> = c.iter().collect();
            let (packed, changed) = self.pack_unordered(b"f", &items, false, depth)?;
            return if changed {
                Ok(PyFrozenSet::new(py, packed)?.into_any())
            } else {
                Ok(obj.clone())
            };
        }
        if let Ok(d) = obj.cast_exact::<PyDict>() {
            let pairs: Vec<Bound<'py, PyAny>> = d
                .iter()
                .map(|(k, v)| Ok(PyTuple::new(py, [k, v])?.into_any()))
                .collect::<PyResult<_>>()?;
            let (packed, changed) = self.pack_unordered(b"d", &pairs, true, depth)?;
            if !changed {
                return Ok(obj.clone());
            }
            let out = PyDict::new(py);
            for p in packed {
                let p = p.cast_into::<PyTuple>()?;
                out.set_item(p.get_item(0)?, p.get_item(1)?)?;
            }
            return Ok(out.into_any());
        }
        // A collection standing for a lazy value (oxidask.bag's `Bag` and `Item`): its type's
        // `__oxidask_delayed__(obj)` gives the `Delayed` to depend on, as Dask passes a
        // collection's computed value to a delayed call.
        if let Ok(hook) = obj
            .get_type()
            .getattr(pyo3::intern!(py, "__oxidask_delayed__"))
        {
            let d = hook.call1((obj,))?;
            if d.cast::<PyDelayed>().is_ok() {
                return self.pack(&d, depth);
            }
        }
        if let Some(t) = &mut self.token {
            let b = token_bytes(py, obj)?;
            t.write_bytes(b"o");
            t.write_u64(b.len() as u64);
            t.write_bytes(&b);
        }
        Ok(obj.clone())
    }

    /// Packs `items` whose order does not matter to a token: each is tokenized on its own and
    /// the tokens are sorted (Dask sorts dict items and set members too). Dict items arrive
    /// as `(key, value)` pairs; a lazy value as a dict key is not supported (Dask neither).
    fn pack_unordered<'py>(
        &mut self,
        tag: &[u8],
        items: &[Bound<'py, PyAny>],
        pairs: bool,
        depth: u32,
    ) -> PyResult<(Vec<Bound<'py, PyAny>>, bool)> {
        let mut tokens = Vec::with_capacity(if self.token.is_some() { items.len() } else { 0 });
        let outer = self.token.take();
        let mut packed = Vec::with_capacity(items.len());
        let mut changed = false;
        let result = (|| {
            for x in items {
                if outer.is_some() {
                    self.token = Some(Tokenizer::new());
                }
                let p = if let (true, Ok(pair)) = (pairs, x.cast::<PyTuple>()) {
                    // A dict item: the key as is, the value packed.
                    let (k, v) = (pair.get_item(0)?, pair.get_item(1)?);
                    if let Some(t) = &mut self.token {
                        if !token_scalar(t, &k) {
                            let b = token_bytes(x.py(), &k)?;
                            t.write_bytes(&b);
                        }
                    }
                    let pv = self.pack(&v, depth + 1)?;
                    if pv.is(&v) {
                        x.clone()
                    } else {
                        PyTuple::new(x.py(), [k, pv])?.into_any()
                    }
                } else {
                    self.pack(x, depth + 1)?
                };
                changed |= !p.is(x);
                packed.push(p);
                if let Some(t) = self.token.take() {
                    tokens.push(t.finish().as_u128());
                }
            }
            Ok::<_, PyErr>(())
        })();
        self.token = outer;
        result?;
        if let Some(t) = &mut self.token {
            tokens.sort_unstable();
            t.write_bytes(tag);
            t.write_u64(tokens.len() as u64);
            for tok in tokens {
                t.write_token(Token::from_u128(tok));
            }
        }
        Ok((packed, changed))
    }

    /// The token of everything packed (pure calls only).
    pub fn finish(&self) -> Option<Token> {
        self.token.as_ref().map(Tokenizer::finish)
    }

    /// The task's argument list: the call, then each dependency's key.
    pub fn task_args(&self, call: Value) -> Vec<Arg> {
        std::iter::once(Arg::Value(call))
            .chain(self.deps.iter().map(|d| Arg::Key(d.key)))
            .collect()
    }

    /// The nodes the task reads (cluster results have none).
    pub fn nodes(&self) -> Vec<Delayed<()>> {
        self.deps.iter().filter_map(|d| d.node.clone()).collect()
    }

    /// The keep-alives of cluster results among the dependencies.
    pub fn keeps(&self, py: Python<'_>) -> Vec<Py<PyAny>> {
        self.deps
            .iter()
            .filter_map(|d| d.keep.as_ref().map(|k| k.clone_ref(py)))
            .collect()
    }
}

/// The placeholder for dependency `i`; the first few are made once and shared (they are
/// immutable), so packing allocates no Python object for them.
fn placeholder(py: Python<'_>, i: u32) -> PyResult<Bound<'_, PyAny>> {
    const SHARED: usize = 64;
    static CACHE: PyOnceLock<Vec<Py<Dep>>> = PyOnceLock::new();
    if (i as usize) < SHARED {
        let all = CACHE.get_or_try_init(py, || {
            (0..SHARED as u32)
                .map(|j| Py::new(py, Dep { index: j }))
                .collect::<PyResult<Vec<_>>>()
        })?;
        return Ok(all[i as usize].bind(py).clone().into_any());
    }
    Ok(Bound::new(py, Dep { index: i })?.into_any())
}

/// A new Python handle for `d`, not tracked by Python's cycle collector: a handle cannot be
/// part of a reference cycle (it refers to no Python object that could refer back to it,
/// except futures, whose clients do not hold handles), and a graph-building loop makes
/// hundreds of thousands of them, each of which would make the collector's passes longer.
pub fn untracked(py: Python<'_>, d: PyDelayed) -> PyResult<Bound<'_, PyDelayed>> {
    let b = Bound::new(py, d)?;
    // SAFETY: `b` is a live object of a GC type, not yet seen by any other code; untracking
    // an object is allowed when it cannot be part of a cycle (see above), and its dealloc
    // handles an untracked object.
    unsafe { pyo3::ffi::PyObject_GC_UnTrack(b.as_ptr().cast()) };
    Ok(b)
}

/// True for objects that are never containers of lazy values.
fn is_leaf(obj: &Bound<'_, PyAny>) -> bool {
    obj.is_none()
        || obj.is_exact_instance_of::<PyInt>()
        || obj.is_exact_instance_of::<PyFloat>()
        || obj.is_exact_instance_of::<PyString>()
        || obj.is_exact_instance_of::<PyBool>()
        || obj.is_exact_instance_of::<PyBytes>()
}

/// Writes the token of a scalar; false if `obj` is not one.
fn token_scalar(t: &mut Tokenizer, obj: &Bound<'_, PyAny>) -> bool {
    if obj.is_none() {
        t.write_bytes(b"N");
    } else if obj.is_exact_instance_of::<PyBool>() {
        t.write_bytes(if obj.is_truthy().unwrap_or(false) {
            b"T"
        } else {
            b"F"
        });
    } else if obj.is_exact_instance_of::<PyInt>() {
        match obj.extract::<i64>() {
            Ok(v) => {
                t.write_bytes(b"i");
                t.write_u64(v as u64);
            }
            Err(_) => {
                let s = obj.str().map(|s| s.to_string()).unwrap_or_default();
                t.write_bytes(b"I");
                t.write_str(&s);
            }
        }
    } else if obj.is_exact_instance_of::<PyFloat>() {
        t.write_bytes(b"r");
        t.write_u64(obj.extract::<f64>().unwrap_or(0.0).to_bits());
    } else if let Ok(s) = obj.cast_exact::<PyString>() {
        match s.to_str() {
            Ok(text) => {
                t.write_bytes(b"u");
                t.write_str(text);
            }
            Err(_) => {
                // Lone surrogates (file names decoded with `surrogateescape`): their code
                // points, as UTF-8 with `surrogatepass`, which no valid string encodes to.
                let raw = s
                    .call_method1("encode", ("utf-8", "surrogatepass"))
                    .ok()
                    .and_then(|b| b.cast_into::<PyBytes>().ok());
                match raw {
                    Some(b) => {
                        t.write_bytes(b"U");
                        t.write_u64(b.as_bytes().len() as u64);
                        t.write_bytes(b.as_bytes());
                    }
                    None => return false,
                }
            }
        }
    } else if let Ok(b) = obj.cast_exact::<PyBytes>() {
        t.write_bytes(b"b");
        t.write_u64(b.as_bytes().len() as u64);
        t.write_bytes(b.as_bytes());
    } else {
        return false;
    }
    true
}

/// Deterministic bytes standing for any other object (Dask's `normalize_token`), from
/// `oxidask.base`.
fn token_bytes(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    static F: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let f = F.get_or_try_init(py, || {
        Ok::<_, PyErr>(py.import("oxidask.base")?.getattr("_token_bytes")?.unbind())
    })?;
    let b = f.bind(py).call1((obj,))?;
    Ok(b.cast::<PyBytes>()?.as_bytes().to_vec())
}

/// The token of a function: its import path when that leads back to it, else its pickle (made
/// once per wrapped function: `client.map` tokenizes one function for many calls).
fn function_token(py: Python<'_>, func: &PyFunc) -> PyResult<u128> {
    func.token(|| {
        let b = token_bytes(py, func.bind(py))?;
        Ok(xxhash_rust::xxh3::xxh3_128(&b))
    })
}

/// Writes the token of a function (see [`function_token`]).
fn token_function(py: Python<'_>, t: &mut Tokenizer, func: &PyFunc) -> PyResult<()> {
    let tok = function_token(py, func)?;
    t.write_bytes(b"fn");
    t.write_token(Token::from_u128(tok));
    Ok(())
}

/// A Python call made into a task, with what it reads.
pub struct BuiltCall {
    /// Its key.
    pub key: Key,
    /// The task.
    pub task: Task,
    /// The lazy values it reads (their graphs come with it).
    pub nodes: Vec<Delayed<()>>,
    /// Futures it reads, kept alive until it is submitted.
    pub keeps: Vec<Py<PyAny>>,
}

/// Makes the task `func(*args, **kwargs)`: placeholders for lazy values (and, if `futures`,
/// futures) anywhere in the arguments; a content key for pure calls, a unique one otherwise,
/// `key_text` if given.
#[allow(clippy::too_many_arguments)]
pub fn build_call(
    py: Python<'_>,
    func: &Arc<PyFunc>,
    prefix: Option<&str>,
    args: &Bound<'_, PyTuple>,
    kwargs: Option<&Bound<'_, PyDict>>,
    pure: bool,
    key_text: Option<&str>,
    futures: bool,
) -> PyResult<BuiltCall> {
    let mut p = Packer::new(pure && key_text.is_none(), futures);
    if let Some(t) = &mut p.token {
        token_function(py, t, func)?;
    }
    let packed_args = p.pack(args.as_any(), 0)?;
    let packed_args = packed_args.cast_into::<PyTuple>()?;
    let packed_kwargs = match kwargs {
        Some(k) if !k.is_empty() => {
            let out = PyDict::new(py);
            if let Some(t) = &mut p.token {
                t.write_bytes(b"kw");
            }
            let mut sorted: Vec<(String, Bound<'_, PyAny>)> = k
                .iter()
                .map(|(n, v)| Ok((n.extract::<String>()?, v)))
                .collect::<PyResult<_>>()?;
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            for (name, v) in sorted {
                if let Some(t) = &mut p.token {
                    t.write_str(&name);
                }
                // A keyword's value is a top-level argument: a lazy value there is not nested.
                let packed = p.pack(&v, 0)?;
                out.set_item(name, packed)?;
            }
            Some(out)
        }
        _ => None,
    };
    let key = match key_text {
        Some(text) => key_from_text(text),
        None => {
            let token = p.finish().unwrap_or_else(Token::unique);
            Key::new(prefix.unwrap_or(func.name()), token)
        }
    };
    let call = PyCall::new(func.clone(), packed_args, packed_kwargs, p.nested);
    let task = Task::call(&CALL_OP, p.task_args(Value::foreign(call)));
    Ok(BuiltCall {
        key,
        task,
        nodes: p.nodes(),
        keeps: p.keeps(py),
    })
}

/// Builds the lazy call `func(*args, **kwargs)`.
#[allow(clippy::too_many_arguments)]
pub fn make_call(
    py: Python<'_>,
    func: &Arc<PyFunc>,
    prefix: Option<&str>,
    args: &Bound<'_, PyTuple>,
    kwargs: Option<&Bound<'_, PyDict>>,
    pure: bool,
    key_text: Option<String>,
    length: Option<usize>,
) -> PyResult<PyDelayed> {
    let b = build_call(
        py,
        func,
        prefix,
        args,
        kwargs,
        pure,
        key_text.as_deref(),
        false,
    )?;
    let node = Delayed::<()>::from_task(b.key, b.task, b.nodes);
    let mut d = PyDelayed::from_node(node, key_text, length);
    d.keep = keep_list(py, b.keeps)?;
    Ok(d)
}

/// What keeps the cluster results a handle reads alive, if it reads any.
fn keep_list(py: Python<'_>, keeps: Vec<Py<PyAny>>) -> PyResult<Option<Py<PyAny>>> {
    if keeps.is_empty() {
        return Ok(None);
    }
    Ok(Some(PyList::new(py, keeps)?.into_any().unbind()))
}

/// Functions of the `operator` module and of `oxidask._utils`, wrapped once.
fn named_function(py: Python<'_>, module: &str, name: &str) -> PyResult<Arc<PyFunc>> {
    static CACHE: OnceLock<Mutex<FxHashMap<String, Arc<PyFunc>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let id = format!("{module}.{name}");
    if let Some(f) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(&id) {
        return Ok(f.clone());
    }
    let f = PyFunc::new(&py.import(module)?.getattr(name)?);
    // A replaced entry (another thread wrapped it meanwhile) is dropped after the lock is
    // released: dropping a Python object may run Python, which may switch threads.
    let _replaced = cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(id, f.clone());
    Ok(f)
}

fn operator_call(py: Python<'_>, op: &str, args: Vec<Bound<'_, PyAny>>) -> PyResult<PyDelayed> {
    let f = named_function(py, "operator", op)?;
    make_call(
        py,
        &f,
        None,
        &PyTuple::new(py, args)?,
        None,
        true,
        None,
        None,
    )
}

#[pymethods]
impl PyDelayed {
    /// The key of the result.
    #[getter]
    fn key(&self) -> String {
        self.key_string()
    }

    fn __repr__(&self) -> String {
        format!("Delayed('{}')", self.key_string())
    }

    fn __hash__(&self) -> u64 {
        self.key.hash64()
    }

    fn __bool__(&self) -> PyResult<bool> {
        Err(PyTypeError::new_err(
            "Truth of Delayed objects is not supported",
        ))
    }

    fn __len__(&self) -> PyResult<usize> {
        self.length.ok_or_else(|| {
            PyTypeError::new_err("Delayed objects of unspecified length have no len()")
        })
    }

    fn __iter__(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let Some(n) = slf.get().length else {
            return Err(PyTypeError::new_err(
                "Delayed objects of unspecified length are not iterable; give nout= to delayed to unpack them",
            ));
        };
        let items = (0..n)
            .map(|i| {
                Ok(Bound::new(
                    py,
                    operator_call(
                        py,
                        "getitem",
                        vec![slf.clone().into_any(), i.into_pyobject(py)?.into_any()],
                    )?,
                )?
                .into_any())
            })
            .collect::<PyResult<Vec<_>>>()?;
        Ok(PyList::new(py, items)?.call_method0("__iter__")?.unbind())
    }

    fn __getitem__(slf: &Bound<'_, Self>, index: &Bound<'_, PyAny>) -> PyResult<PyDelayed> {
        operator_call(
            slf.py(),
            "getitem",
            vec![slf.clone().into_any(), index.clone()],
        )
    }

    fn __add__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<PyDelayed> {
        operator_call(slf.py(), "add", vec![slf.clone().into_any(), other.clone()])
    }

    fn __radd__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<PyDelayed> {
        operator_call(slf.py(), "add", vec![other.clone(), slf.clone().into_any()])
    }

    fn __sub__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<PyDelayed> {
        operator_call(slf.py(), "sub", vec![slf.clone().into_any(), other.clone()])
    }

    fn __rsub__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<PyDelayed> {
        operator_call(slf.py(), "sub", vec![other.clone(), slf.clone().into_any()])
    }

    fn __mul__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<PyDelayed> {
        operator_call(slf.py(), "mul", vec![slf.clone().into_any(), other.clone()])
    }

    fn __rmul__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<PyDelayed> {
        operator_call(slf.py(), "mul", vec![other.clone(), slf.clone().into_any()])
    }

    fn __truediv__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<PyDelayed> {
        operator_call(
            slf.py(),
            "truediv",
            vec![slf.clone().into_any(), other.clone()],
        )
    }

    fn __rtruediv__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<PyDelayed> {
        operator_call(
            slf.py(),
            "truediv",
            vec![other.clone(), slf.clone().into_any()],
        )
    }

    fn __floordiv__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<PyDelayed> {
        operator_call(
            slf.py(),
            "floordiv",
            vec![slf.clone().into_any(), other.clone()],
        )
    }

    fn __rfloordiv__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<PyDelayed> {
        operator_call(
            slf.py(),
            "floordiv",
            vec![other.clone(), slf.clone().into_any()],
        )
    }

    fn __mod__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<PyDelayed> {
        operator_call(slf.py(), "mod", vec![slf.clone().into_any(), other.clone()])
    }

    fn __rmod__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<PyDelayed> {
        operator_call(slf.py(), "mod", vec![other.clone(), slf.clone().into_any()])
    }

    fn __matmul__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<PyDelayed> {
        operator_call(
            slf.py(),
            "matmul",
            vec![slf.clone().into_any(), other.clone()],
        )
    }

    fn __rmatmul__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<PyDelayed> {
        operator_call(
            slf.py(),
            "matmul",
            vec![other.clone(), slf.clone().into_any()],
        )
    }

    fn __lshift__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<PyDelayed> {
        operator_call(
            slf.py(),
            "lshift",
            vec![slf.clone().into_any(), other.clone()],
        )
    }

    fn __rlshift__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<PyDelayed> {
        operator_call(
            slf.py(),
            "lshift",
            vec![other.clone(), slf.clone().into_any()],
        )
    }

    fn __rshift__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<PyDelayed> {
        operator_call(
            slf.py(),
            "rshift",
            vec![slf.clone().into_any(), other.clone()],
        )
    }

    fn __rrshift__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<PyDelayed> {
        operator_call(
            slf.py(),
            "rshift",
            vec![other.clone(), slf.clone().into_any()],
        )
    }

    fn __and__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<PyDelayed> {
        operator_call(
            slf.py(),
            "and_",
            vec![slf.clone().into_any(), other.clone()],
        )
    }

    fn __rand__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<PyDelayed> {
        operator_call(
            slf.py(),
            "and_",
            vec![other.clone(), slf.clone().into_any()],
        )
    }

    fn __or__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<PyDelayed> {
        operator_call(slf.py(), "or_", vec![slf.clone().into_any(), other.clone()])
    }

    fn __ror__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<PyDelayed> {
        operator_call(slf.py(), "or_", vec![other.clone(), slf.clone().into_any()])
    }

    fn __xor__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<PyDelayed> {
        operator_call(slf.py(), "xor", vec![slf.clone().into_any(), other.clone()])
    }

    fn __rxor__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<PyDelayed> {
        operator_call(slf.py(), "xor", vec![other.clone(), slf.clone().into_any()])
    }

    fn __pow__(
        slf: &Bound<'_, Self>,
        other: &Bound<'_, PyAny>,
        _modulo: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyDelayed> {
        operator_call(slf.py(), "pow", vec![slf.clone().into_any(), other.clone()])
    }

    fn __rpow__(
        slf: &Bound<'_, Self>,
        other: &Bound<'_, PyAny>,
        _modulo: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyDelayed> {
        operator_call(slf.py(), "pow", vec![other.clone(), slf.clone().into_any()])
    }

    fn __neg__(slf: &Bound<'_, Self>) -> PyResult<PyDelayed> {
        operator_call(slf.py(), "neg", vec![slf.clone().into_any()])
    }

    fn __pos__(slf: &Bound<'_, Self>) -> PyResult<PyDelayed> {
        operator_call(slf.py(), "pos", vec![slf.clone().into_any()])
    }

    fn __abs__(slf: &Bound<'_, Self>) -> PyResult<PyDelayed> {
        operator_call(slf.py(), "abs", vec![slf.clone().into_any()])
    }

    fn __invert__(slf: &Bound<'_, Self>) -> PyResult<PyDelayed> {
        operator_call(slf.py(), "invert", vec![slf.clone().into_any()])
    }

    fn __richcmp__(
        slf: &Bound<'_, Self>,
        other: &Bound<'_, PyAny>,
        op: pyo3::basic::CompareOp,
    ) -> PyResult<PyDelayed> {
        use pyo3::basic::CompareOp::*;
        let name = match op {
            Lt => "lt",
            Le => "le",
            Eq => "eq",
            Ne => "ne",
            Gt => "gt",
            Ge => "ge",
        };
        operator_call(slf.py(), name, vec![slf.clone().into_any(), other.clone()])
    }

    fn __getattr__(slf: &Bound<'_, Self>, name: &str) -> PyResult<PyDelayed> {
        if name.starts_with('_') {
            return Err(PyAttributeError::new_err(format!(
                "Delayed objects have no attribute {name:?}"
            )));
        }
        let py = slf.py();
        let f = named_function(py, "builtins", "getattr")?;
        let mut d = make_call(
            py,
            &f,
            None,
            &PyTuple::new(
                py,
                [slf.clone().into_any(), PyString::new(py, name).into_any()],
            )?,
            None,
            true,
            None,
            None,
        )?;
        d.attr = Some((slf.clone().unbind(), name.to_owned()));
        Ok(d)
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn __call__(
        slf: &Bound<'_, Self>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyDelayed> {
        let py = slf.py();
        let (pure, key_text, kwargs) = call_options(kwargs)?;
        match &slf.get().attr {
            Some((obj, name)) => {
                // obj.method(...): one task calling the method, named after it.
                let f = named_function(py, "oxidask._utils", "call_method")?;
                let f = Arc::new(f.renamed(py, name));
                let mut all = vec![
                    obj.bind(py).clone().into_any(),
                    PyString::new(py, name).into_any(),
                ];
                all.extend(args.iter());
                make_call(
                    py,
                    &f,
                    None,
                    &PyTuple::new(py, all)?,
                    kwargs.as_ref(),
                    pure.unwrap_or(false),
                    key_text,
                    None,
                )
            }
            None => {
                let f = named_function(py, "oxidask._utils", "apply")?;
                let mut all = vec![slf.clone().into_any()];
                all.extend(args.iter());
                make_call(
                    py,
                    &f,
                    None,
                    &PyTuple::new(py, all)?,
                    kwargs.as_ref(),
                    pure.unwrap_or(false),
                    key_text,
                    None,
                )
            }
        }
    }

    /// A picture of the graph (Dask's `visualize`).
    #[pyo3(signature = (filename = "mydask", format = None, rankdir = "BT", **_kwargs))]
    fn visualize(
        slf: &Bound<'_, Self>,
        filename: Option<&str>,
        format: Option<&str>,
        rankdir: &str,
        _kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let base = py.import("oxidask.base")?;
        let kw = PyDict::new(py);
        kw.set_item("filename", filename)?;
        kw.set_item("format", format)?;
        kw.set_item("rankdir", rankdir)?;
        Ok(base.getattr("visualize")?.call((slf,), Some(&kw))?.unbind())
    }

    /// Computes the result (Dask's `compute`); keywords as `oxidask.compute`.
    #[pyo3(signature = (**kwargs))]
    fn compute(slf: &Bound<'_, Self>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let r = py
            .import("oxidask.base")?
            .getattr("compute")?
            .call((slf,), kwargs)?;
        Ok(r.get_item(0)?.unbind())
    }

    /// Computes the result and returns a `Delayed` backed by it (Dask's `persist`).
    #[pyo3(signature = (**kwargs))]
    fn persist(slf: &Bound<'_, Self>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let r = py
            .import("oxidask.base")?
            .getattr("persist")?
            .call((slf,), kwargs)?;
        Ok(r.get_item(0)?.unbind())
    }

    /// The graph: task keys mapped to a description of each task.
    #[getter]
    fn dask<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.__dask_graph__(py)
    }

    fn __dask_graph__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let g = graph_of(std::slice::from_ref(&self.node));
        let out = PyDict::new(py);
        for (k, t) in g.iter() {
            out.set_item(k.to_string(), describe_task(t))?;
        }
        if self.node.is_none() {
            out.set_item(self.key_string(), "<held on the cluster>")?;
        }
        Ok(out)
    }

    /// The cluster results this value stands for or reads (kept alive by it), if any.
    #[getter]
    fn _futures(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.keep.as_ref().map(|k| k.clone_ref(py))
    }

    fn __dask_keys__(&self) -> Vec<String> {
        vec![self.key_string()]
    }

    fn __dask_tokenize__(&self) -> String {
        self.key_string()
    }

    fn __reduce__(&self) -> PyResult<()> {
        Err(PyTypeError::new_err(format!(
            "Delayed objects cannot be pickled ({}); compute it first, or submit it to a cluster and pass the future",
            self.key_string()
        )))
    }
}

impl PyFunc {
    /// The same function under another key prefix.
    pub fn renamed(&self, py: Python<'_>, name: &str) -> PyFunc {
        PyFunc::with_name(self.bind(py), sanitize_prefix(name))
    }
}

/// `pure=` and `dask_key_name=` taken out of a call's keywords.
#[allow(clippy::type_complexity)]
pub fn call_options<'py>(
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<(Option<bool>, Option<String>, Option<Bound<'py, PyDict>>)> {
    let Some(k) = kwargs else {
        return Ok((None, None, None));
    };
    if !k.contains("pure")? && !k.contains("dask_key_name")? {
        return Ok((None, None, Some(k.clone())));
    }
    let k = k.copy()?;
    let pure = match k.get_item("pure")? {
        Some(p) => {
            k.del_item("pure")?;
            if p.is_none() {
                None
            } else {
                Some(p.is_truthy()?)
            }
        }
        None => None,
    };
    let key = match k.get_item("dask_key_name")? {
        Some(n) => {
            k.del_item("dask_key_name")?;
            if n.is_none() {
                None
            } else {
                Some(key_text_of(&n)?)
            }
        }
        None => None,
    };
    Ok((pure, key, Some(k)))
}

/// A key given by the user: a string, or a tuple like `("x", 0)` (shown as Dask does).
pub fn key_text_of(obj: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(s.to_string());
    }
    if obj.is_instance_of::<PyTuple>() {
        return Ok(obj.repr()?.to_string());
    }
    Err(PyTypeError::new_err(format!(
        "a key must be a string or a tuple, not {}",
        crate::pyvalue::type_name(obj)
    )))
}

/// `delayed(func)`: calling it builds lazy calls (Dask's `DelayedLeaf`).
#[pyclass(frozen, module = "oxidask._oxidask")]
pub struct DelayedFunction {
    func: Arc<PyFunc>,
    pure: bool,
    nout: Option<usize>,
    name: Option<String>,
}

#[pymethods]
impl DelayedFunction {
    #[new]
    #[pyo3(signature = (func, pure = false, nout = None, name = None))]
    fn new(
        func: &Bound<'_, PyAny>,
        pure: bool,
        nout: Option<usize>,
        name: Option<String>,
    ) -> PyResult<Self> {
        if !func.is_callable() {
            return Err(PyTypeError::new_err(format!(
                "{} is not callable",
                repr(func)
            )));
        }
        Ok(DelayedFunction {
            func: PyFunc::new(func),
            pure,
            nout,
            name,
        })
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyDelayed>> {
        let (pure, key_text, kwargs) = call_options(kwargs)?;
        let prefix = self.name.as_deref().map(sanitize_prefix);
        let d = make_call(
            py,
            &self.func,
            prefix.as_deref(),
            args,
            kwargs.as_ref(),
            pure.unwrap_or(self.pure),
            key_text,
            self.nout,
        )?;
        untracked(py, d)
    }

    /// The wrapped function.
    #[getter]
    fn func(&self, py: Python<'_>) -> Py<PyAny> {
        self.func.bind(py).clone().unbind()
    }

    #[getter]
    fn __name__(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| self.func.name().to_owned())
    }

    #[getter]
    fn __wrapped__(&self, py: Python<'_>) -> Py<PyAny> {
        self.func(py)
    }

    /// What Dask's `tokenize` sees: the wrapped function's token and the options, so delayed
    /// functions of different functions (same name or not) have different tokens.
    #[allow(clippy::type_complexity)]
    fn __dask_tokenize__(
        &self,
        py: Python<'_>,
    ) -> PyResult<(String, bool, Option<usize>, Option<String>)> {
        let tok = function_token(py, &self.func)?;
        Ok((
            format!("{tok:032x}"),
            self.pure,
            self.nout,
            self.name.clone(),
        ))
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!("Delayed({})", repr(self.func.bind(py)))
    }

    /// Pickles as the function and its options (a task may call a delayed function, e.g. a
    /// recursive crawler).
    #[allow(clippy::type_complexity)]
    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(
        Bound<'py, PyAny>,
        (Py<PyAny>, bool, Option<usize>, Option<String>),
    )> {
        let py = slf.py();
        let me = slf.get();
        Ok((
            slf.get_type().into_any(),
            (me.func(py), me.pure, me.nout, me.name.clone()),
        ))
    }
}

/// `delayed(value)`: a literal, or for a list/tuple/dict/set holding lazy values, a task that
/// builds the container from their results (unless `traverse` is false). With `lazy_only`,
/// `None` instead of a literal (for `compute`, which passes literals through).
#[pyfunction]
#[pyo3(signature = (obj, name = None, pure = false, traverse = true, lazy_only = false))]
pub fn delayed_value(
    py: Python<'_>,
    obj: &Bound<'_, PyAny>,
    name: Option<String>,
    pure: bool,
    traverse: bool,
    lazy_only: bool,
) -> PyResult<Option<PyDelayed>> {
    let mut p = Packer::new(pure && name.is_none(), false);
    let packed = if traverse {
        p.pack(obj, 1)?
    } else {
        obj.clone()
    };
    if lazy_only && p.deps.is_empty() {
        return Ok(None);
    }
    if !p.deps.is_empty() {
        let builder = if obj.is_exact_instance_of::<PyList>() {
            "list"
        } else if obj.is_exact_instance_of::<PyTuple>() {
            "tuple"
        } else if obj.is_exact_instance_of::<PyDict>() {
            "dict"
        } else if obj.is_exact_instance_of::<PySet>() {
            "set"
        } else {
            "frozenset"
        };
        let f = named_function(py, "builtins", builder)?;
        let key = match &name {
            Some(n) => key_from_text(n),
            None => Key::new(builder, p.finish().unwrap_or_else(Token::unique)),
        };
        let call = PyCall::new(f, PyTuple::new(py, [packed])?, None, true);
        let task = Task::call(&CALL_OP, p.task_args(Value::foreign(call)));
        let node = Delayed::<()>::from_task(key, task, p.nodes());
        let mut d = PyDelayed::from_node(node, name, None);
        d.keep = keep_list(py, p.keeps(py))?;
        return Ok(Some(d));
    }
    let key = match &name {
        Some(n) => key_from_text(n),
        None => {
            let prefix = obj
                .getattr("__name__")
                .and_then(|n| n.extract::<String>())
                .unwrap_or_else(|_| {
                    obj.get_type()
                        .name()
                        .map(|n| n.to_string())
                        .unwrap_or_else(|_| "value".into())
                });
            Key::new(
                &sanitize_prefix(&prefix),
                p.finish().unwrap_or_else(Token::unique),
            )
        }
    };
    let task = Task::value(Value::foreign(PyValue::new(obj.clone())?));
    Ok(Some(PyDelayed::from_node(
        Delayed::from_task(key, task, []),
        name,
        None,
    )))
}

/// Dask's `tokenize(*args, **kwargs)`: a deterministic hex token of the arguments.
#[pyfunction]
#[pyo3(signature = (*args, **kwargs))]
pub fn tokenize(args: &Bound<'_, PyTuple>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<String> {
    let mut p = Packer::new(true, true);
    p.pack(args.as_any(), 0)?;
    if let Some(k) = kwargs {
        let mut sorted: Vec<(String, Bound<'_, PyAny>)> = k
            .iter()
            .map(|(n, v)| Ok((n.extract::<String>()?, v)))
            .collect::<PyResult<_>>()?;
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, v) in sorted {
            if let Some(t) = &mut p.token {
                t.write_str(&name);
            }
            p.pack(&v, 0)?;
        }
    }
    Ok(format!("{:032x}", p.finish().expect("pure").as_u128()))
}

/// The graph of several handles (shared parts once).
pub fn graph_of(nodes: &[Option<Delayed<()>>]) -> Graph {
    let mut g = Graph::new();
    for n in nodes.iter().flatten() {
        oxidask_core::Collection::build_graph(n, &mut g);
    }
    g
}

fn describe_task(t: &Task) -> String {
    use oxidask_core::TaskSpec;
    match t.spec() {
        TaskSpec::Call { args, .. } => {
            let deps: Vec<String> = t.dependencies().iter().map(|k| k.to_string()).collect();
            let what = match args.first() {
                Some(Arg::Value(v)) => match v.downcast_ref::<PyCall>() {
                    Some(c) => c.func().name().to_owned(),
                    None => t.label().to_owned(),
                },
                _ => t.label().to_owned(),
            };
            format!("({what}, {})", deps.join(", "))
        }
        TaskSpec::Value(_) => "<value>".into(),
        TaskSpec::Alias(k) => format!("<alias of {k}>"),
        TaskSpec::Fused { .. } => "<fused>".into(),
    }
}

/// Dask's `funcname`, for Python.
#[pyfunction(name = "funcname")]
pub fn py_funcname(func: &Bound<'_, PyAny>) -> String {
    funcname(func)
}

/// A lazy value standing for a result held on a cluster by `future` (what `client.persist`
/// returns), under the key of `like`.
#[pyfunction]
pub fn delayed_on_cluster(
    future: &Bound<'_, crate::client::PyFuture>,
    like: &Bound<'_, PyDelayed>,
) -> PyDelayed {
    PyDelayed::external(
        future.get().key(),
        future.clone().into_any().unbind(),
        like.get().key_text.clone(),
    )
}
