//! Rust operations in Python graphs: `oxidask.rust_call("name", *args)` calls an operation
//! registered with `#[oxidask::task]` (in this build) lazily, with Python values and lazy
//! Python results as arguments; Python tasks can read its result. One graph mixes both, on
//! every scheduler.
//!
//! Python values become Rust values (`int` → `i64`, `float` → `f64`, `str` → `String`, lists
//! of them → `Vec`s); a lazy Python result read by a Rust operation goes through a small
//! conversion task (`oxidask_python::to_rust`). Rust results are turned into Python objects
//! where Python reads them.

use oxidask_core::op::{Args, Input, OpDef, OpRegistration, TaskFailure};
use oxidask_core::tokenize::Tokenizer;
use oxidask_core::{Arg, Delayed, Key, Task, Token, Value};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::delayed::PyDelayed;
use crate::gil;
use crate::pyvalue::{py_to_value, PyValue};

/// Turns a Python result into the Rust value a Rust operation reads.
pub static TO_RUST_OP: OpDef = OpDef::new(
    "oxidask_python::to_rust",
    "to_rust",
    "(PyObject) -> i64 | f64 | bool | String | () | Vec<...>",
    &["value"],
    true,
    to_rust,
);

oxidask_core::__private::inventory::submit! { OpRegistration(&TO_RUST_OP) }

fn to_rust(args: &mut Args) -> Result<Value, TaskFailure> {
    let v = match args.take_input(0) {
        Some(Input::Value(v)) => v,
        _ => return Err(TaskFailure::argument("to_rust needs one value")),
    };
    let Some(p) = v.downcast_ref::<PyValue>() else {
        return Ok(v); // already a Rust value
    };
    gil::attach(|py| {
        py_to_value(p.bind(py))
            .map_err(|e| TaskFailure::argument(crate::pyvalue::describe_error(py, &e)))
    })
    .unwrap_or_else(|e| Err(TaskFailure::unavailable(e.to_string())))
}

/// The argument for one Python object passed to a Rust operation, and the node it reads.
fn rust_arg(
    obj: &Bound<'_, PyAny>,
    t: Option<&mut Tokenizer>,
) -> PyResult<(Arg, Option<Delayed<()>>)> {
    if let Ok(d) = obj.cast::<PyDelayed>() {
        let d = d.get();
        let Some(node) = d.node.clone() else {
            return Err(PyValueError::new_err(format!(
                "{} is held on a cluster; a Rust operation reads lazy values of this process's graph",
                d.key_string()
            )));
        };
        if !d.python_result {
            if let Some(t) = t {
                t.write_token(d.key.token());
            }
            return Ok((Arg::Key(d.key), Some(node)));
        }
        // A Python result: convert it in a task of its own (shared by every reader).
        let key = Key::new("to_rust", {
            let mut tk = Tokenizer::new();
            tk.write_str(d.key.prefix_str());
            tk.write_token(d.key.token());
            tk.finish()
        });
        if let Some(t) = t {
            t.write_token(key.token());
        }
        let conv =
            Delayed::<()>::from_task(key, Task::call(&TO_RUST_OP, [Arg::Key(d.key)]), [node]);
        return Ok((Arg::Key(key), Some(conv)));
    }
    let v = py_to_value(obj)?;
    if let Some(t) = t {
        if !v.tokenize_into(t) {
            t.write_token(Token::unique());
        }
    }
    Ok((Arg::Value(v), None))
}

/// `rust_call(name, *args, pure=True)`: a lazy call of the registered Rust operation `name`.
#[pyfunction]
#[pyo3(signature = (name, *args, **kwargs))]
pub fn rust_call(
    name: &str,
    args: &Bound<'_, PyTuple>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<PyDelayed> {
    let pure = match kwargs {
        Some(k) => {
            let mut pure = true;
            for (n, v) in k.iter() {
                let n: String = n.extract()?;
                if n == "pure" {
                    pure = v.is_truthy()?;
                } else {
                    return Err(PyValueError::new_err(format!(
                        "Rust operations take positional arguments; unexpected keyword {n:?}"
                    )));
                }
            }
            pure
        }
        None => true,
    };
    let Some(op) = oxidask_core::op::lookup(name) else {
        let mut near: Vec<&str> = oxidask_core::op::registered_ops()
            .into_iter()
            .map(|o| o.name())
            .filter(|n| n.ends_with(name.rsplit("::").next().unwrap_or(name)))
            .collect();
        near.truncate(5);
        return Err(PyValueError::new_err(format!(
            "no Rust operation is registered as {name:?} in this build{}; oxidask.registered_ops() lists them",
            if near.is_empty() { String::new() } else { format!(" (did you mean {}?)", near.join(", ")) }
        )));
    };
    if op.params().len() != args.len() {
        return Err(PyValueError::new_err(format!(
            "{name} takes {} arguments ({}), {} given",
            op.params().len(),
            op.signature(),
            args.len()
        )));
    }
    let mut tok = (pure && op.is_pure()).then(|| {
        let mut t = Tokenizer::new();
        t.write_str(op.name());
        t.write_str(op.signature());
        t
    });
    let mut task_args = Vec::with_capacity(args.len());
    let mut nodes = Vec::new();
    for a in args.iter() {
        let (arg, node) = rust_arg(&a, tok.as_mut())?;
        task_args.push(arg);
        nodes.extend(node);
    }
    let token = tok.map(|t| t.finish()).unwrap_or_else(Token::unique);
    let key = Key::from_parts(op.prefix(), token, &[]);
    let node = Delayed::<()>::from_task(key, Task::call(op, task_args), nodes);
    let mut d = PyDelayed::from_node(node, None, None);
    d.python_result = false;
    Ok(d)
}

/// `(name, signature)` of every Rust operation registered in this build.
#[pyfunction]
pub fn registered_ops() -> Vec<(String, String)> {
    oxidask_core::op::registered_ops()
        .into_iter()
        .map(|o| (o.name().to_owned(), o.signature().to_owned()))
        .collect()
}
