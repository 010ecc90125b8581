//! Performance reports and task streams for Python (`performance_report`,
//! `get_task_stream`): [`PyRecording`] records a run on the cluster, [`PyRun`] is the run.

use std::sync::Mutex;

use oxidask_client::{PerformanceReport, Report};
use oxidask_protocol::StreamRecord;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::errors::to_pyerr;

/// A task-stream record as a dict: `key`, `prefix`, `action` (`compute`, `transfer`,
/// `disk-write`, `disk-read`), `worker` (its name), `thread`, `start`/`stop` (seconds since
/// the epoch), `nbytes`.
pub fn record_dict<'py>(py: Python<'py>, r: &StreamRecord) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("key", r.key.0.to_string())?;
    d.set_item("prefix", r.key.0.prefix_str())?;
    d.set_item("action", r.kind.name())?;
    d.set_item("worker", &r.worker)?;
    d.set_item("thread", r.thread)?;
    d.set_item("start", r.start_us as f64 / 1e6)?;
    d.set_item("stop", r.stop_us as f64 / 1e6)?;
    d.set_item("nbytes", r.nbytes)?;
    Ok(d)
}

/// A recording in progress (Rust's `PerformanceReport`); `finish()` ends it.
#[pyclass(frozen, module = "oxidask._oxidask", name = "Recording")]
pub struct PyRecording {
    pub(crate) inner: Mutex<Option<PerformanceReport>>,
}

#[pymethods]
impl PyRecording {
    /// Stops recording; returns the run.
    fn finish(&self, py: Python<'_>) -> PyResult<PyRun> {
        let rec = self
            .inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| PyRuntimeError::new_err("this recording has already finished"))?;
        let report = py.detach(|| rec.finish()).map_err(|e| to_pyerr(py, e))?;
        Ok(PyRun { report })
    }
}

/// One recorded run.
#[pyclass(frozen, module = "oxidask._oxidask", name = "Run")]
pub struct PyRun {
    pub(crate) report: Report,
}

#[pymethods]
impl PyRun {
    /// Its task-stream records (see `record_dict`).
    fn records<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        for r in &self.report.stream {
            out.append(record_dict(py, r)?)?;
        }
        Ok(out)
    }

    /// The self-contained HTML page of the run.
    fn html(&self, py: Python<'_>) -> String {
        py.detach(|| self.report.render())
    }

    /// Compute time per task prefix: `[(prefix, tasks, seconds, nbytes)]`, most time first.
    fn prefix_times(&self) -> Vec<(String, u64, f64, u64)> {
        self.report
            .prefix_times()
            .into_iter()
            .map(|p| (p.prefix, p.tasks, p.seconds, p.nbytes))
            .collect()
    }

    /// Memory samples taken.
    #[getter]
    fn samples(&self) -> usize {
        self.report.memory.len()
    }

    /// Records the scheduler dropped before they were read.
    #[getter]
    fn lost(&self) -> u64 {
        self.report.lost
    }
}
