//! Computing on this process's schedulers: `sync` (one task at a time, on the caller's
//! thread), `threads` (oxidask's work-stealing pool; the GIL is taken only while Python runs)
//! and `processes` (the same pool, each Python call sent to a pool of worker processes).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use oxidask_core::task::{LocalOp, Op};
use oxidask_core::{Compute, Delayed, Error, Graph, Key, Task, TaskSpec, Value};
use oxidask_local::{Synchronous, Threaded};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use crate::call::{run_call, RunContext, CALL_OP};
use crate::delayed::{graph_of, PyDelayed};
use crate::errors::to_pyerr;
use crate::pyvalue::value_to_py;

/// One threaded pool per size, made on first use and kept.
fn pool(threads: Option<usize>) -> Threaded {
    let Some(n) = threads else {
        return Threaded::global();
    };
    static POOLS: OnceLock<Mutex<HashMap<usize, Threaded>>> = OnceLock::new();
    POOLS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(n.max(1))
        .or_insert_with(|| Threaded::new(n.max(1)))
        .clone()
}

/// Python calls in `graph` run through `ctx`'s process pool.
fn route_calls(graph: &mut Graph, ctx: &Arc<RunContext>) {
    let op = {
        let ctx = ctx.clone();
        LocalOp::new("call", move |args| run_call(args, Some(&ctx)))
    };
    graph.rewrite(|_, t| match t.spec() {
        TaskSpec::Call {
            op: Op::Registered(def),
            args,
        } if std::ptr::eq(*def, &CALL_OP) => Some(Task::local(op.clone(), args.iter().cloned())),
        _ => None,
    });
}

/// True on the interpreter's main thread (the one that receives Ctrl-C).
fn on_main_thread(py: Python<'_>) -> PyResult<bool> {
    static MAIN: PyOnceLock<u64> = PyOnceLock::new();
    let threading = py.import("threading")?;
    let main = *MAIN.get_or_try_init(py, || {
        threading
            .call_method0("main_thread")?
            .getattr("ident")?
            .extract::<u64>()
    })?;
    Ok(threading.call_method0("get_ident")?.extract::<u64>()? == main)
}

/// Runs `work` without the GIL. On the main thread it runs on a helper thread while this one
/// watches for Ctrl-C: an interrupt raises `KeyboardInterrupt` at once and `on_interrupt` stops
/// what has not started. Elsewhere (a task computing inside a task) it runs right here, so a
/// pool thread that waits keeps helping its pool.
pub fn interruptible<T: Send + 'static>(
    py: Python<'_>,
    work: impl FnOnce() -> T + Send + 'static,
    on_interrupt: impl FnOnce(),
) -> PyResult<T> {
    if !on_main_thread(py)? {
        return Ok(crate::gil::detached_for_nested(|| py.detach(work)));
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let rx = Mutex::new(rx);
    std::thread::Builder::new()
        .name("oxidask-compute".into())
        .spawn(move || {
            let _ = tx.send(work());
        })
        .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))?;
    loop {
        let got = py.detach(|| {
            rx.lock()
                .unwrap_or_else(|p| p.into_inner())
                .recv_timeout(Duration::from_millis(50))
        });
        match got {
            Ok(v) => return Ok(v),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if let Err(e) = py.check_signals() {
                    on_interrupt();
                    return Err(e);
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(pyo3::exceptions::PyRuntimeError::new_err(
                    "the computation's thread ended without a result",
                ))
            }
        }
    }
}

/// The nodes of `handles`, refusing results held on a cluster.
fn nodes(handles: &[Bound<'_, PyDelayed>]) -> PyResult<Vec<Option<Delayed<()>>>> {
    handles
        .iter()
        .map(|h| {
            let d = h.get();
            if d.node.is_none() {
                return Err(PyValueError::new_err(format!(
                    "{} is held on a cluster (it was persisted there); compute it with that cluster's client",
                    d.key_string()
                )));
            }
            Ok(d.node.clone())
        })
        .collect()
}

/// Runs the graph of `handles` on a local scheduler and returns the raw values.
fn run_local(
    py: Python<'_>,
    handles: &[Bound<'_, PyDelayed>],
    scheduler: &str,
    num_workers: Option<usize>,
    runner: Option<Py<PyAny>>,
) -> PyResult<Vec<Value>> {
    let nodes = nodes(handles)?;
    let keys: Vec<Key> = handles.iter().map(|h| h.get().key).collect();
    let mut graph = graph_of(&nodes);
    // Only the processes scheduler changes how Python calls run; the others run the graph
    // as it is.
    let ctx = runner.map(|runner| Arc::new(RunContext { runner }));
    if let Some(ctx) = &ctx {
        route_calls(&mut graph, ctx);
    }
    if matches!(scheduler, "sync" | "synchronous" | "single-threaded") {
        // On this thread, as Dask does (debuggers and profilers see the tasks); a Ctrl-C
        // interrupts the Python task running and fails the computation with it.
        let result = crate::gil::detached_for_nested(|| {
            py.detach(|| Synchronous::new().compute(graph, &keys))
        });
        drop(ctx);
        return result.map_err(|e| to_pyerr(py, e));
    }
    // An interrupt stops this computation only: its tasks not started are skipped, while other
    // computations on the same pool (started before or after) go on.
    let stop = Arc::new(AtomicBool::new(false));
    let sched: Arc<dyn Compute> = match scheduler {
        "threads" | "threading" | "processes" | "multiprocessing" => {
            Arc::new(pool(num_workers).stop_on(stop.clone()))
        }
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown local scheduler {other:?}; use 'threads', 'processes' or 'sync'"
            )))
        }
    };
    // After an interrupt the computation ends in the background.
    let result: Result<Vec<Value>, Error> = interruptible(
        py,
        move || sched.compute(graph, &keys),
        move || stop.store(true, Ordering::Release),
    )?;
    // The context holds Python objects (the runner): drop it while attached.
    drop(ctx);
    result.map_err(|e| to_pyerr(py, e))
}

/// Computes `handles` on a local scheduler; returns their values.
#[pyfunction]
#[pyo3(signature = (handles, scheduler = "threads", num_workers = None, runner = None))]
pub fn compute_local(
    py: Python<'_>,
    handles: Vec<Bound<'_, PyDelayed>>,
    scheduler: &str,
    num_workers: Option<usize>,
    runner: Option<Py<PyAny>>,
) -> PyResult<Vec<Py<PyAny>>> {
    let values = run_local(py, &handles, scheduler, num_workers, runner)?;
    values
        .iter()
        .map(|v| Ok(value_to_py(py, v)?.unbind()))
        .collect()
}

/// Computes `handles` on a local scheduler; returns handles backed by their values (same
/// keys), so later work starts from the results.
#[pyfunction]
#[pyo3(signature = (handles, scheduler = "threads", num_workers = None, runner = None))]
pub fn persist_local(
    py: Python<'_>,
    handles: Vec<Bound<'_, PyDelayed>>,
    scheduler: &str,
    num_workers: Option<usize>,
    runner: Option<Py<PyAny>>,
) -> PyResult<Vec<PyDelayed>> {
    let values = run_local(py, &handles, scheduler, num_workers, runner)?;
    Ok(handles
        .iter()
        .zip(values)
        .map(|(h, v)| {
            let d = h.get();
            let node = Delayed::<()>::from_task(d.key, Task::value(v), []);
            let mut p = PyDelayed::from_node(node, d.key_text.clone(), None);
            p.python_result = d.python_result;
            p
        })
        .collect())
}

/// Writes a picture of the graph of `handles` (`.svg`/`.png`/`.pdf` through Graphviz, or
/// `.dot`).
#[pyfunction]
#[pyo3(signature = (handles, path, rankdir = "BT"))]
pub fn visualize_graph(
    py: Python<'_>,
    handles: Vec<Bound<'_, PyDelayed>>,
    path: std::path::PathBuf,
    rankdir: &str,
) -> PyResult<()> {
    let nodes: Vec<_> = handles.iter().map(|h| h.get().node.clone()).collect();
    let graph = graph_of(&nodes);
    let rankdir = match rankdir {
        "LR" => "LR",
        "RL" => "RL",
        "TB" => "TB",
        "BT" => "BT",
        other => {
            return Err(PyValueError::new_err(format!(
                "rankdir must be one of 'TB', 'BT', 'LR', 'RL', not {other:?}"
            )))
        }
    };
    let options = oxidask_core::DotOptions {
        rankdir,
        ..Default::default()
    };
    py.detach(|| graph.visualize(&path, &options))
        .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))
}
