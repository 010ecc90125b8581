//! # oxidask-python
//!
//! The native module of the `oxidask` Python package (`oxidask._oxidask`): Dask's delayed,
//! local schedulers and futures for Python code, on oxidask's engine. The pure-Python
//! modules in `python/oxidask` give it Dask's names and signatures; this crate stays thin —
//! conversions and dispatch — over the Rust crates that do the work:
//!
//! - [`call`]: a Python call as a task (`PyCall`, the `oxidask_python::call` operation);
//! - [`pyvalue`]: Python objects as task results, pickled only when they leave the process;
//! - [`buffers`]: out-of-band pickle buffers sent and received without copies;
//! - [`delayed`]: `Delayed`, `delayed(func)`, `tokenize`;
//! - [`local`]: the `sync`, `threads` and `processes` schedulers;
//! - [`client`]: `Client`, `Future`, `LocalCluster`, and what tasks on workers call;
//! - [`rust_ops`]: registered Rust operations called from Python graphs;
//! - [`errors`]: oxidask errors as the exceptions Dask users expect.
//!
//! Worker processes are this module too: `python -m oxidask worker ADDRESS` runs the Rust
//! worker inside the interpreter, so it knows the same operations and sees the user's
//! environment (blueprint §8).

pub mod actor;
pub mod array;
pub mod buffers;
pub mod call;
pub mod client;
pub mod config;
pub mod coord;
#[cfg(feature = "dataframe")]
pub mod dataframe;
pub mod delayed;
pub mod errors;
pub mod gil;
pub mod local;
pub mod pyvalue;
pub mod report;
pub mod rust_ops;

use pyo3::prelude::*;

/// mimalloc for the Rust side (graphs, keys, frames), as in the `oxidask` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The version of the extension (and of the package built with it).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Declares this process's Python runtime for the handshake: a cluster refuses members whose
/// Python minor version, cloudpickle or oxidask package differ.
fn declare_runtime(py: Python<'_>) -> PyResult<()> {
    let v = py.version_info();
    oxidask_protocol::declare_runtime("python", &format!("{}.{}", v.major, v.minor));
    oxidask_protocol::declare_runtime("oxidask-python", VERSION);
    let cloudpickle: String = py
        .import("cloudpickle")?
        .getattr("__version__")?
        .extract()?;
    oxidask_protocol::declare_runtime("cloudpickle", &cloudpickle);
    Ok(())
}

#[pymodule(gil_used = true)]
fn _oxidask(m: &Bound<'_, PyModule>) -> PyResult<()> {
    oxidask_cli::tune_mimalloc();
    declare_runtime(m.py())?;
    oxidask_local::set_idle_hook(gil::release_sticky);
    oxidask_core::codecs::register_foreign(pyvalue::PY_OBJECT, pyvalue::decode_py_object);
    oxidask_core::codecs::register_foreign(call::PY_CALL, call::decode_py_call);
    m.add("__version__", VERSION)?;
    array::register(m)?;
    #[cfg(feature = "dataframe")]
    dataframe::register(m)?;
    actor::register(m)?;
    m.add_class::<call::Dep>()?;
    m.add_class::<delayed::PyDelayed>()?;
    m.add_class::<delayed::DelayedFunction>()?;
    m.add_class::<client::PyFuture>()?;
    m.add_class::<client::PyClient>()?;
    m.add_class::<client::PyLocalCluster>()?;
    m.add_class::<client::PyAdaptiveCore>()?;
    m.add_class::<report::PyRecording>()?;
    m.add_class::<report::PyRun>()?;
    m.add_function(wrap_pyfunction!(delayed::delayed_value, m)?)?;
    m.add_function(wrap_pyfunction!(delayed::tokenize, m)?)?;
    m.add_function(wrap_pyfunction!(delayed::delayed_on_cluster, m)?)?;
    m.add_function(wrap_pyfunction!(delayed::py_funcname, m)?)?;
    m.add_function(wrap_pyfunction!(local::compute_local, m)?)?;
    m.add_function(wrap_pyfunction!(local::persist_local, m)?)?;
    m.add_function(wrap_pyfunction!(local::visualize_graph, m)?)?;
    m.add_function(wrap_pyfunction!(client::get_client, m)?)?;
    m.add_function(wrap_pyfunction!(coord::coord, m)?)?;
    m.add_function(wrap_pyfunction!(client::secede, m)?)?;
    m.add_function(wrap_pyfunction!(client::rejoin, m)?)?;
    m.add_function(wrap_pyfunction!(client::worker_context, m)?)?;
    m.add_function(wrap_pyfunction!(client::cli_main, m)?)?;
    m.add_function(wrap_pyfunction!(client::temporary_credentials, m)?)?;
    m.add_class::<config::ConfigGuard>()?;
    m.add_function(wrap_pyfunction!(config::config_known, m)?)?;
    m.add_function(wrap_pyfunction!(config::config_set, m)?)?;
    m.add_function(wrap_pyfunction!(config::config_get, m)?)?;
    m.add_function(wrap_pyfunction!(config::config_render, m)?)?;
    m.add_function(wrap_pyfunction!(gil::at_exit, m)?)?;
    m.add_function(wrap_pyfunction!(rust_ops::rust_call, m)?)?;
    m.add_function(wrap_pyfunction!(rust_ops::registered_ops, m)?)?;
    Ok(())
}
