//! Dask's futures for Python: [`PyClient`] (a connection to a scheduler), [`PyFuture`] (a
//! result on the cluster), [`PyLocalCluster`], and the functions tasks call on a worker
//! (`get_client`, `secede`, `rejoin`).
//!
//! The Python classes in `oxidask.distributed` wrap these with Dask's signatures. Every call
//! that waits releases the GIL and wakes every 50 ms to let Ctrl-C through; an interrupted
//! wait cancels what it was waiting for.

use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use oxidask_client::{
    Client, ClientError, Cluster, Future, LocalCluster, ReturnWhen, Security, SubmitOptions,
    TemporaryCa, TlsCredentials,
};
use oxidask_core::{Error, Graph, Key, Value};
use oxidask_protocol::{scheme_of, with_scheme};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use crate::call::PyFunc;
use crate::delayed::{build_call, graph_of, key_from_text, key_text_of, PyDelayed};
use crate::errors::to_pyerr;
use crate::pyvalue::{value_to_py, PyValue};

/// A result being computed, or held, on a cluster (Dask's `Future`).
#[pyclass(frozen, weakref, module = "oxidask.distributed", name = "Future")]
pub struct PyFuture {
    inner: Future<()>,
    key_text: Option<String>,
    /// The Python `Client` it belongs to.
    owner: Option<Py<PyAny>>,
}

impl PyFuture {
    /// The client's future inside (a persisted dataframe's pieces are rebuilt from it).
    #[cfg(feature = "dataframe")]
    pub(crate) fn future(&self) -> &Future<()> {
        &self.inner
    }

    pub(crate) fn new(
        inner: Future<()>,
        key_text: Option<String>,
        owner: Option<Py<PyAny>>,
    ) -> PyFuture {
        PyFuture {
            inner,
            key_text,
            owner,
        }
    }

    /// The key.
    pub fn key(&self) -> Key {
        self.inner.key()
    }

    /// The key as Python shows it.
    pub fn key_string(&self) -> String {
        self.key_text
            .clone()
            .unwrap_or_else(|| self.inner.key().to_string())
    }
}

fn is_timeout(e: &Error) -> bool {
    matches!(e, Error::Scheduler { source, .. }
        if matches!(source.downcast_ref::<ClientError>(), Some(ClientError::Timeout(_))))
}

fn timeout_error(py: Python<'_>, t: Duration) -> PyErr {
    to_pyerr(
        py,
        Error::Scheduler {
            scheduler: "distributed",
            source: Box::new(ClientError::Timeout(t)),
        },
    )
}

/// A timeout: seconds as a number, or a duration as Dask writes it (`"10s"`, `"250ms"`,
/// a `timedelta`); `None` waits for ever.
fn seconds(t: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Duration>> {
    let Some(t) = t else { return Ok(None) };
    if t.is_none() {
        return Ok(None);
    }
    let s: f64 = match t.extract::<f64>() {
        Ok(v) => v,
        Err(_) => t
            .py()
            .import("oxidask.utils")?
            .getattr("parse_timedelta")?
            .call1((t,))?
            .extract()?,
    };
    Duration::try_from_secs_f64(s)
        .map(Some)
        .map_err(|_| PyValueError::new_err(format!("timeout must be ≥ 0 seconds, got {s}")))
}

/// Waits for `futures` in slices of 50 ms, letting Ctrl-C through (an interrupt cancels them);
/// `None` if `timeout` passed first.
fn wait_or_timeout(
    py: Python<'_>,
    client: &Client,
    futures: &[Future<()>],
    timeout: Option<Duration>,
    when: ReturnWhen,
) -> PyResult<Option<oxidask_client::DoneAndNotDone>> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let slice = Duration::from_millis(50);
    loop {
        let step = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()).min(slice),
            None => slice,
        };
        match py.detach(|| client.wait(futures, Some(step), when)) {
            Ok(r) => return Ok(Some(r)),
            Err(e) if is_timeout(&e) => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Ok(None);
                }
                if let Err(interrupt) = py.check_signals() {
                    let keys: Vec<Key> = futures.iter().map(|f| f.key()).collect();
                    let _ = client.cancel_keys(&keys);
                    return Err(interrupt);
                }
            }
            Err(e) => return Err(to_pyerr(py, e)),
        }
    }
}

/// [`wait_or_timeout`], raising `TimeoutError` when the time is up.
fn wait_interruptible(
    py: Python<'_>,
    client: &Client,
    futures: &[Future<()>],
    timeout: Option<Duration>,
    when: ReturnWhen,
) -> PyResult<oxidask_client::DoneAndNotDone> {
    wait_or_timeout(py, client, futures, timeout, when)?
        .ok_or_else(|| timeout_error(py, timeout.unwrap_or_default()))
}

/// A done-callback and the future it is called with.
type Callback = (Py<PyAny>, Py<PyAny>);

/// Callbacks of finished futures run here, one at a time, holding the GIL only to call them.
fn callback_sender() -> &'static Mutex<mpsc::Sender<Callback>> {
    static TX: OnceLock<Mutex<mpsc::Sender<Callback>>> = OnceLock::new();
    TX.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Callback>();
        std::thread::Builder::new()
            .name("oxidask-callbacks".into())
            .spawn(move || {
                for (f, arg) in rx {
                    let ran = crate::gil::attach(|py| {
                        if let Err(e) = f.bind(py).call1((arg.bind(py),)) {
                            e.print(py);
                        }
                    });
                    if ran.is_err() {
                        // Exiting: leak the objects rather than touch a finalizing interpreter.
                        std::mem::forget((f, arg));
                        return;
                    }
                }
            })
            .expect("spawning the callback thread");
        Mutex::new(tx)
    })
}

#[pymethods]
impl PyFuture {
    /// The key.
    #[getter(key)]
    fn py_key(&self) -> String {
        self.key_string()
    }

    /// `pending`, `finished`, `error` or `cancelled`.
    #[getter]
    fn status(&self) -> &'static str {
        match self.inner.status() {
            oxidask_client::Status::Pending => "pending",
            oxidask_client::Status::Finished => "finished",
            oxidask_client::Status::Error => "error",
            oxidask_client::Status::Cancelled => "cancelled",
        }
    }

    /// True once finished, failed or cancelled.
    fn done(&self) -> bool {
        self.inner.done()
    }

    /// True if cancelled.
    fn cancelled(&self) -> bool {
        self.inner.status() == oxidask_client::Status::Cancelled
    }

    /// Waits until done (at most `timeout` seconds); false if it is still pending.
    #[pyo3(signature = (timeout = None))]
    fn wait(&self, py: Python<'_>, timeout: Option<&Bound<'_, PyAny>>) -> PyResult<bool> {
        let client = self.inner.client().clone();
        Ok(wait_or_timeout(
            py,
            &client,
            std::slice::from_ref(&self.inner),
            seconds(timeout)?,
            ReturnWhen::AllCompleted,
        )?
        .is_some())
    }

    /// The result, fetched from the worker holding it; raises the task's exception.
    #[pyo3(signature = (timeout = None))]
    fn result(&self, py: Python<'_>, timeout: Option<&Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
        let timeout = seconds(timeout)?;
        let client = self.inner.client().clone();
        wait_interruptible(
            py,
            &client,
            std::slice::from_ref(&self.inner),
            timeout,
            ReturnWhen::AllCompleted,
        )?;
        let v = py
            .detach(|| self.inner.value(timeout))
            .map_err(|e| to_pyerr(py, e))?;
        Ok(value_to_py(py, &v)?.unbind())
    }

    /// The exception the task raised (waiting for it to finish), or `None`.
    #[pyo3(signature = (timeout = None))]
    fn exception(
        &self,
        py: Python<'_>,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Option<Py<PyAny>>> {
        let client = self.inner.client().clone();
        wait_interruptible(
            py,
            &client,
            std::slice::from_ref(&self.inner),
            seconds(timeout)?,
            ReturnWhen::AllCompleted,
        )?;
        Ok(self
            .inner
            .exception()
            .map(|e| to_pyerr(py, e).into_value(py).into_any()))
    }

    /// Stops computing it.
    fn cancel(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.inner.cancel())
            .map_err(|e| to_pyerr(py, e))
    }

    /// Calls `fn(future)` once done, on a callback thread (at once if done already).
    fn add_done_callback(slf: &Bound<'_, Self>, callback: Py<PyAny>) {
        let arg: Py<PyAny> = slf.clone().into_any().unbind();
        let tx = callback_sender()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        slf.get().inner.add_done_callback(Box::new(move || {
            let _ = tx.send((callback, arg));
        }));
    }

    /// The client it belongs to.
    #[getter]
    fn client(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.owner.as_ref().map(|o| o.clone_ref(py))
    }

    /// The traceback of the task's exception (waiting for it to finish), or `None`.
    #[pyo3(signature = (timeout = None))]
    fn traceback(
        &self,
        py: Python<'_>,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Option<Py<PyAny>>> {
        match self.exception(py, timeout)? {
            Some(e) => {
                let tb = e.bind(py).getattr("__traceback__")?;
                Ok((!tb.is_none()).then(|| tb.unbind()))
            }
            None => Ok(None),
        }
    }

    fn __repr__(&self) -> String {
        format!("<Future: {}, key: {}>", self.status(), self.key_string())
    }

    fn __hash__(&self) -> u64 {
        self.inner.key().hash64()
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<PyFuture>()
            .is_ok_and(|o| o.get().inner.key() == self.inner.key())
    }
}

/// How submitted tasks run (Dask's `submit` options); `workers` as names or addresses,
/// `tcp://` accepted.
fn options(
    retries: Option<u32>,
    resources: Option<Vec<(String, f64)>>,
    workers: Option<Vec<String>>,
    allow_other_workers: bool,
    priority: i64,
) -> SubmitOptions {
    SubmitOptions {
        retries: retries.unwrap_or(0),
        resources: resources.unwrap_or_default(),
        workers: workers
            .unwrap_or_default()
            .into_iter()
            .map(|w| oxidask_worker::strip_scheme(&w).to_owned())
            .collect(),
        allow_other_workers,
        priority,
        actor: false,
    }
}

/// Functions wrapped for sending, by identity, so a function is pickled once per client.
///
/// Wrapping a function runs Python (its name is looked up) and so does dropping one (a
/// decref), and Python may switch threads meanwhile: the lock is held only to look up and to
/// insert, never while Python runs (see [`PyClient::function`]).
struct FunctionCache {
    entries: Vec<(Py<PyAny>, Arc<PyFunc>)>,
}

/// Most functions a client keeps wrapped; the oldest goes first.
const FUNCTION_CACHE_SIZE: usize = 256;

/// Entries taken out of a [`FunctionCache`], to drop once its lock is released.
type Dropped = Vec<(Option<Py<PyAny>>, Arc<PyFunc>)>;

impl FunctionCache {
    fn find(&self, f: &Bound<'_, PyAny>) -> Option<Arc<PyFunc>> {
        self.entries
            .iter()
            .find(|(o, _)| o.is(f))
            .map(|(_, pf)| pf.clone())
    }

    /// Keeps `pf` as the wrapper of `f`, unless another thread wrapped `f` meanwhile (theirs
    /// is kept). Returns the wrapper to use and what was taken out.
    fn insert(&mut self, f: &Bound<'_, PyAny>, pf: Arc<PyFunc>) -> (Arc<PyFunc>, Dropped) {
        if let Some(theirs) = self.find(f) {
            return (theirs, vec![(None, pf)]);
        }
        let mut dropped = Dropped::new();
        if self.entries.len() >= FUNCTION_CACHE_SIZE {
            let (o, old) = self.entries.remove(0);
            dropped.push((Some(o), old));
        }
        self.entries.push((f.clone().unbind(), pf.clone()));
        (pf, dropped)
    }
}

/// A connection to a scheduler (the engine under `oxidask.distributed.Client`).
#[pyclass(frozen, module = "oxidask._oxidask", name = "ClientCore")]
pub struct PyClient {
    client: Client,
    functions: Mutex<FunctionCache>,
}

impl PyClient {
    /// The Rust client underneath.
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    fn wrap(client: Client) -> PyClient {
        PyClient {
            client,
            functions: Mutex::new(FunctionCache {
                entries: Vec::new(),
            }),
        }
    }

    /// The wrapper of `f` for sending, made once per function. The cache's lock is never held
    /// while Python runs: a thread holding it and waiting for the GIL would deadlock with one
    /// holding the GIL and waiting for it.
    fn function(&self, f: &Bound<'_, PyAny>) -> Arc<PyFunc> {
        let lock = || self.functions.lock().unwrap_or_else(|p| p.into_inner());
        let hit = lock().find(f);
        if let Some(pf) = hit {
            return pf;
        }
        let made = PyFunc::new(f); // runs Python
        let (pf, dropped) = lock().insert(f, made);
        drop(dropped); // may run Python: after the lock is released
        pf
    }

    fn futures_of(list: &[Bound<'_, PyFuture>]) -> Vec<Future<()>> {
        list.iter().map(|f| f.get().inner.clone()).collect()
    }

    fn submit_graph(
        &self,
        py: Python<'_>,
        graph: &Graph,
        keys: &[Key],
        opts: SubmitOptions,
    ) -> PyResult<Vec<Future<()>>> {
        py.detach(|| self.client.submit_graph(graph, keys, opts))
            .map_err(|e| to_pyerr(py, e))
    }
}

#[pymethods]
impl PyClient {
    /// Connects to the scheduler at `address` (`tcp://host:port`).
    #[staticmethod]
    #[pyo3(signature = (address, name = None, timeout = 10.0, security = None, direct_to_workers = None))]
    fn connect(
        py: Python<'_>,
        address: String,
        name: Option<String>,
        timeout: f64,
        security: Option<&Bound<'_, PyDict>>,
        direct_to_workers: Option<bool>,
    ) -> PyResult<PyClient> {
        let timeout = Duration::try_from_secs_f64(timeout).map_err(|_| {
            PyValueError::new_err(format!("timeout must be ≥ 0 seconds, got {timeout}"))
        })?;
        let mut b = Client::builder()
            .address(address)
            .timeout(timeout)
            .direct_to_workers(direct_to_workers)
            .set_as_default(false);
        // Without `security=`, the configuration's (distributed.comm.tls.*, the token).
        if security.is_some() {
            b = b.security(security_from(security)?);
        }
        if let Some(n) = name {
            b = b.name(n);
        }
        let client = py.detach(|| b.connect()).map_err(|e| to_pyerr(py, e))?;
        Ok(PyClient::wrap(client))
    }

    /// The scheduler's dashboard (`http://host:8787/status`), if it serves one.
    #[getter]
    fn dashboard_link(&self) -> Option<String> {
        self.client.dashboard_link().map(str::to_owned)
    }

    /// Task-stream records from `since` on, as dicts (Dask's `get_task_stream`), and the
    /// cursor to ask from next time.
    #[pyo3(signature = (since = 0))]
    fn task_stream<'py>(&self, py: Python<'py>, since: u64) -> PyResult<(Bound<'py, PyList>, u64)> {
        let (records, next) = py
            .detach(|| self.client.task_stream(since))
            .map_err(|e| to_pyerr(py, e))?;
        let out = PyList::empty(py);
        for r in &records {
            out.append(crate::report::record_dict(py, r)?)?;
        }
        Ok((out, next))
    }

    /// The kept task stream between two moments (seconds since the epoch) as a run.
    fn stream_report(
        &self,
        py: Python<'_>,
        start: f64,
        stop: f64,
    ) -> PyResult<crate::report::PyRun> {
        let report = py
            .detach(|| self.client.task_stream_report(start * 1e3, stop * 1e3))
            .map_err(|e| to_pyerr(py, e))?;
        Ok(crate::report::PyRun { report })
    }

    /// Starts recording a run for a performance report or a task stream.
    #[pyo3(signature = (title = "oxidask run".to_owned()))]
    fn performance_report(
        &self,
        py: Python<'_>,
        title: String,
    ) -> PyResult<crate::report::PyRecording> {
        let rec = py
            .detach(|| self.client.performance_report())
            .map_err(|e| to_pyerr(py, e))?
            .title(title);
        Ok(crate::report::PyRecording {
            inner: Mutex::new(Some(rec)),
        })
    }

    /// Recent log lines of the scheduler (`worker=None`) or of a worker.
    #[pyo3(signature = (worker = None))]
    fn logs(&self, py: Python<'_>, worker: Option<String>) -> PyResult<Vec<String>> {
        py.detach(|| self.client.logs(worker.as_deref()))
            .map_err(|e| to_pyerr(py, e))
    }

    /// The scheduler's address (`tcp://host:port`).
    #[getter]
    fn address(&self) -> String {
        with_scheme(self.client.address(), "tcp")
    }

    /// True once closed or disconnected.
    #[getter]
    fn closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Closes the connection.
    fn close(&self, py: Python<'_>) {
        py.detach(|| self.client.close())
    }

    /// `func(*args, **kwargs)` on the cluster.
    #[pyo3(signature = (func, args, kwargs = None, key = None, pure = true, retries = None, resources = None, workers = None, allow_other_workers = false, priority = 0, owner = None, actor = false))]
    #[allow(clippy::too_many_arguments)]
    fn submit(
        &self,
        py: Python<'_>,
        func: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
        key: Option<&Bound<'_, PyAny>>,
        pure: bool,
        retries: Option<u32>,
        resources: Option<Vec<(String, f64)>>,
        workers: Option<Vec<String>>,
        allow_other_workers: bool,
        priority: i64,
        owner: Option<Py<PyAny>>,
        actor: bool,
    ) -> PyResult<PyFuture> {
        let f = self.function(func);
        let key_text = key.map(key_text_of).transpose()?;
        let b = build_call(py, &f, None, args, kwargs, pure, key_text.as_deref(), true)?;
        let mut g = Graph::new();
        for n in &b.nodes {
            oxidask_core::Collection::build_graph(n, &mut g);
        }
        g.insert(b.key, b.task);
        let mut fs = self.submit_graph(
            py,
            &g,
            &[b.key],
            SubmitOptions {
                actor,
                ..options(retries, resources, workers, allow_other_workers, priority)
            },
        )?;
        drop(b.keeps);
        Ok(PyFuture::new(
            fs.pop().expect("one future"),
            key_text,
            owner,
        ))
    }

    /// One task per item of `args_list` (each a tuple of positional arguments), with the same
    /// keyword arguments; `keys` names them if given.
    #[pyo3(signature = (func, args_list, kwargs = None, keys = None, pure = true, retries = None, resources = None, workers = None, allow_other_workers = false, priority = 0, owner = None, actor = false))]
    #[allow(clippy::too_many_arguments)]
    fn map(
        &self,
        py: Python<'_>,
        func: &Bound<'_, PyAny>,
        args_list: &Bound<'_, PyList>,
        kwargs: Option<&Bound<'_, PyDict>>,
        keys: Option<Vec<Bound<'_, PyAny>>>,
        pure: bool,
        retries: Option<u32>,
        resources: Option<Vec<(String, f64)>>,
        workers: Option<Vec<String>>,
        allow_other_workers: bool,
        priority: i64,
        owner: Option<Py<PyAny>>,
        actor: bool,
    ) -> PyResult<Vec<PyFuture>> {
        let f = self.function(func);
        let n = args_list.len();
        if let Some(k) = &keys {
            if k.len() != n {
                return Err(PyValueError::new_err(format!(
                    "{} keys for {n} tasks",
                    k.len()
                )));
            }
        }
        let mut g = Graph::with_capacity(n);
        let mut out_keys = Vec::with_capacity(n);
        let mut texts = Vec::with_capacity(n);
        let mut keeps = Vec::new();
        for (i, args) in args_list.iter().enumerate() {
            let args = args.cast_into::<PyTuple>()?;
            let key_text = match &keys {
                Some(k) => Some(key_text_of(&k[i])?),
                None => None,
            };
            let b = build_call(py, &f, None, &args, kwargs, pure, key_text.as_deref(), true)?;
            for node in &b.nodes {
                oxidask_core::Collection::build_graph(node, &mut g);
            }
            g.insert(b.key, b.task);
            out_keys.push(b.key);
            texts.push(key_text);
            keeps.extend(b.keeps);
        }
        let fs = self.submit_graph(
            py,
            &g,
            &out_keys,
            SubmitOptions {
                actor,
                ..options(retries, resources, workers, allow_other_workers, priority)
            },
        )?;
        drop(keeps);
        Ok(fs
            .into_iter()
            .zip(texts)
            .map(|(f, t)| PyFuture::new(f, t, owner.as_ref().map(|o| o.clone_ref(py))))
            .collect())
    }

    /// Starts computing lazy values on the cluster; a future for each.
    #[pyo3(signature = (handles, retries = None, resources = None, workers = None, allow_other_workers = false, priority = 0, owner = None))]
    #[allow(clippy::too_many_arguments)]
    fn compute(
        &self,
        py: Python<'_>,
        handles: Vec<Bound<'_, PyDelayed>>,
        retries: Option<u32>,
        resources: Option<Vec<(String, f64)>>,
        workers: Option<Vec<String>>,
        allow_other_workers: bool,
        priority: i64,
        owner: Option<Py<PyAny>>,
    ) -> PyResult<Vec<PyFuture>> {
        let nodes: Vec<_> = handles.iter().map(|h| h.get().node.clone()).collect();
        let graph = graph_of(&nodes);
        let keys: Vec<Key> = handles.iter().map(|h| h.get().key).collect();
        let fs = self.submit_graph(
            py,
            &graph,
            &keys,
            options(retries, resources, workers, allow_other_workers, priority),
        )?;
        Ok(fs
            .into_iter()
            .zip(&handles)
            .map(|(f, h)| {
                PyFuture::new(
                    f,
                    h.get().key_text.clone(),
                    owner.as_ref().map(|o| o.clone_ref(py)),
                )
            })
            .collect())
    }

    /// The results of futures (waiting for them); raises the first failure.
    #[pyo3(signature = (futures, timeout = None))]
    fn gather(
        &self,
        py: Python<'_>,
        futures: Vec<Bound<'_, PyFuture>>,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Vec<Py<PyAny>>> {
        let timeout = seconds(timeout)?;
        let fs = PyClient::futures_of(&futures);
        wait_interruptible(py, &self.client, &fs, timeout, ReturnWhen::AllCompleted)?;
        let values: Vec<Value> = py
            .detach(|| self.client.gather_values(&fs, timeout))
            .map_err(|e| to_pyerr(py, e))?;
        values
            .iter()
            .map(|v| Ok(value_to_py(py, v)?.unbind()))
            .collect()
    }

    /// Stores values on workers under `keys` (spread, or on every worker with `broadcast`).
    #[pyo3(signature = (values, keys, broadcast = false, owner = None))]
    fn scatter(
        &self,
        py: Python<'_>,
        values: Vec<Bound<'_, PyAny>>,
        keys: Vec<String>,
        broadcast: bool,
        owner: Option<Py<PyAny>>,
    ) -> PyResult<Vec<PyFuture>> {
        if values.len() != keys.len() {
            return Err(PyValueError::new_err("one key per value"));
        }
        let pairs = values
            .into_iter()
            .zip(&keys)
            .map(|(v, k)| Ok((key_from_text(k), Value::foreign(PyValue::new(v)?))))
            .collect::<PyResult<Vec<_>>>()?;
        let fs = py
            .detach(|| self.client.scatter_values(pairs, broadcast))
            .map_err(|e| to_pyerr(py, e))?;
        Ok(fs
            .into_iter()
            .zip(keys)
            .map(|(f, k)| PyFuture::new(f, Some(k), owner.as_ref().map(|o| o.clone_ref(py))))
            .collect())
    }

    /// Stops computing these futures.
    fn cancel(&self, py: Python<'_>, futures: Vec<Bound<'_, PyFuture>>) -> PyResult<()> {
        let keys: Vec<Key> = futures.iter().map(|f| f.get().key()).collect();
        py.detach(|| self.client.cancel_keys(&keys))
            .map_err(|e| to_pyerr(py, e))
    }

    /// Keeps computing these futures even once every handle is dropped.
    fn fire_and_forget(&self, py: Python<'_>, futures: Vec<Bound<'_, PyFuture>>) -> PyResult<()> {
        let fs = PyClient::futures_of(&futures);
        py.detach(|| self.client.fire_and_forget(&fs))
            .map_err(|e| to_pyerr(py, e))
    }

    /// Waits for all (or the first of) `futures`; returns the indices done and not done.
    #[pyo3(signature = (futures, timeout = None, first_completed = false))]
    fn wait(
        &self,
        py: Python<'_>,
        futures: Vec<Bound<'_, PyFuture>>,
        timeout: Option<&Bound<'_, PyAny>>,
        first_completed: bool,
    ) -> PyResult<(Vec<usize>, Vec<usize>)> {
        let fs = PyClient::futures_of(&futures);
        let when = if first_completed {
            ReturnWhen::FirstCompleted
        } else {
            ReturnWhen::AllCompleted
        };
        let r = wait_interruptible(py, &self.client, &fs, seconds(timeout)?, when)?;
        Ok((r.done, r.not_done))
    }

    /// Shows a progress bar until every future is done.
    fn progress(&self, py: Python<'_>, futures: Vec<Bound<'_, PyFuture>>) -> PyResult<()> {
        let fs = PyClient::futures_of(&futures);
        py.detach(|| self.client.progress(&fs))
            .map_err(|e| to_pyerr(py, e))
    }

    /// The cluster at a glance: workers with their threads, memory and tasks.
    fn summary<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let scheme = scheme_of(self.client.address());
        let s = py
            .detach(|| self.client.summary())
            .map_err(|e| to_pyerr(py, e))?;
        let out = PyDict::new(py);
        let workers = PyList::empty(py);
        for w in &s.workers {
            let d = PyDict::new(py);
            d.set_item("name", &w.name)?;
            d.set_item("address", with_scheme(&w.address, scheme))?;
            d.set_item("nthreads", w.nthreads)?;
            d.set_item("memory_limit", w.memory_limit)?;
            d.set_item("memory", w.memory)?;
            d.set_item("processing", w.processing)?;
            d.set_item("keys", w.keys)?;
            d.set_item("cpu", w.cpu)?;
            d.set_item("resources", w.resources.clone())?;
            d.set_item("rss", w.rss)?;
            d.set_item("spilled", w.spilled)?;
            workers.append(d)?;
        }
        out.set_item("workers", workers)?;
        out.set_item("tasks", s.tasks)?;
        out.set_item("clients", s.clients)?;
        Ok(out)
    }

    /// Waits until `n` workers are connected.
    #[pyo3(signature = (n, timeout = 30.0))]
    fn wait_for_workers(&self, py: Python<'_>, n: usize, timeout: f64) -> PyResult<()> {
        let t = Duration::try_from_secs_f64(timeout).map_err(|_| {
            PyValueError::new_err(format!("timeout must be ≥ 0 seconds, got {timeout}"))
        })?;
        py.detach(|| self.client.wait_for_workers(n, t))
            .map_err(|e| to_pyerr(py, e))
    }

    /// Restarts every worker and forgets every task (Dask's `Client.restart`); returns once
    /// the workers are back (`TimeoutError` after `timeout` seconds).
    #[pyo3(signature = (timeout = 60.0))]
    fn restart(&self, py: Python<'_>, timeout: f64) -> PyResult<()> {
        let t = Duration::try_from_secs_f64(timeout).map_err(|_| {
            PyValueError::new_err(format!("timeout must be ≥ 0 seconds, got {timeout}"))
        })?;
        py.detach(|| self.client.restart(t))
            .map_err(|e| to_pyerr(py, e))
    }

    /// Where each future's result is held (the data addresses of the workers holding it).
    fn who_has(
        &self,
        py: Python<'_>,
        futures: Vec<Bound<'_, PyFuture>>,
    ) -> PyResult<Vec<Vec<String>>> {
        let scheme = scheme_of(self.client.address());
        let keys: Vec<Key> = futures.iter().map(|f| f.get().key()).collect();
        let out = py
            .detach(|| self.client.who_has(&keys))
            .map_err(|e| to_pyerr(py, e))?;
        Ok(out
            .into_iter()
            .map(|addrs| addrs.into_iter().map(|a| with_scheme(&a, scheme)).collect())
            .collect())
    }

    /// Retires workers gracefully (Dask's `Client.retire_workers`): `workers` by name or
    /// address, or else `n` picked by the scheduler. Their unique results move to other
    /// workers first. Returns one dict per retired worker (name, address, nthreads,
    /// memory_limit); raises `RuntimeError` naming any worker that could not be retired.
    #[pyo3(signature = (workers = None, n = None))]
    fn retire_workers<'py>(
        &self,
        py: Python<'py>,
        workers: Option<Vec<String>>,
        n: Option<usize>,
    ) -> PyResult<Bound<'py, PyList>> {
        let which = match (workers, n) {
            (Some(w), _) => oxidask_client::Retire::Workers(w),
            (None, Some(n)) => oxidask_client::Retire::Count(n),
            (None, None) => oxidask_client::Retire::Idle,
        };
        let scheme = scheme_of(self.client.address());
        let (retired, error) = py
            .detach(|| self.client.retire_workers_detailed(which))
            .map_err(|e| to_pyerr(py, e))?;
        if let Some(e) = error {
            let done: Vec<&str> = retired.iter().map(|w| w.name.as_str()).collect();
            let also = if done.is_empty() {
                String::new()
            } else {
                format!(" (retired: {})", done.join(", "))
            };
            return Err(PyRuntimeError::new_err(format!("{e}{also}")));
        }
        let out = PyList::empty(py);
        for w in &retired {
            let d = PyDict::new(py);
            d.set_item("name", &w.name)?;
            d.set_item("address", with_scheme(&w.address, scheme))?;
            d.set_item("nthreads", w.nthreads)?;
            d.set_item("memory_limit", w.memory_limit)?;
            out.append(d)?;
        }
        Ok(out)
    }

    /// The workers the current load needs to finish in about `target_duration` seconds, and
    /// which to retire first when fewer are needed (Dask's `Scheduler.adaptive_target`).
    fn adaptive_target<'py>(
        &self,
        py: Python<'py>,
        target_duration: f64,
    ) -> PyResult<Bound<'py, PyDict>> {
        let t = Duration::try_from_secs_f64(target_duration)
            .ok()
            .filter(|t| !t.is_zero())
            .ok_or_else(|| {
                PyValueError::new_err(format!(
                    "target_duration must be > 0 seconds, got {target_duration}"
                ))
            })?;
        let scheme = scheme_of(self.client.address());
        let rec = py
            .detach(|| self.client.adaptive_target(t))
            .map_err(|e| to_pyerr(py, e))?;
        let d = PyDict::new(py);
        d.set_item("target", rec.target)?;
        let close: Vec<String> = rec
            .workers_to_close
            .iter()
            .map(|a| with_scheme(a, scheme))
            .collect();
        d.set_item("workers_to_close", close)?;
        Ok(d)
    }

    /// Copies each future's result onto `n` workers (`None`: every worker), dropping extra
    /// copies (Dask's `Client.replicate`).
    #[pyo3(signature = (futures, n = None))]
    fn replicate(
        &self,
        py: Python<'_>,
        futures: Vec<Bound<'_, PyFuture>>,
        n: Option<usize>,
    ) -> PyResult<()> {
        let keys: Vec<Key> = futures.iter().map(|f| f.get().key()).collect();
        py.detach(|| self.client.replicate(&keys, n))
            .map_err(|e| to_pyerr(py, e))
    }

    /// Moves results so each worker holds about the same bytes (Dask's `Client.rebalance`);
    /// `futures`: only these may move (`None`: any).
    #[pyo3(signature = (futures = None))]
    fn rebalance(&self, py: Python<'_>, futures: Option<Vec<Bound<'_, PyFuture>>>) -> PyResult<()> {
        let keys: Option<Vec<Key>> = futures.map(|fs| fs.iter().map(|f| f.get().key()).collect());
        py.detach(|| self.client.rebalance(keys.as_deref()))
            .map_err(|e| to_pyerr(py, e))
    }

    /// A future for a key the cluster holds (Dask's `Future(key, client)`).
    #[pyo3(signature = (key, owner = None))]
    fn future(&self, key: String, owner: Option<Py<PyAny>>) -> PyFuture {
        PyFuture::new(self.client.future_of(key_from_text(&key)), Some(key), owner)
    }
}

/// A scheduler and workers on this machine (the engine under `oxidask.distributed.LocalCluster`).
#[pyclass(frozen, module = "oxidask._oxidask", name = "LocalClusterCore")]
pub struct PyLocalCluster {
    inner: Mutex<Option<std::sync::Arc<LocalCluster>>>,
    address: String,
    dashboard: Option<String>,
}

#[pymethods]
impl PyLocalCluster {
    /// Starts a scheduler in this process and `n_workers` workers: processes started with
    /// `worker_command` (`[python, "-m", "oxidask"]`), or threads of this process.
    #[new]
    #[pyo3(signature = (n_workers, threads_per_worker, memory_limit = 0, worker_command = None, env = Vec::new(), port = 0, quiet = true, dashboard_address = None, security = None, host = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        n_workers: usize,
        threads_per_worker: usize,
        memory_limit: u64,
        worker_command: Option<Vec<String>>,
        env: Vec<(String, String)>,
        port: u16,
        quiet: bool,
        dashboard_address: Option<String>,
        security: Option<&Bound<'_, PyDict>>,
        host: Option<String>,
    ) -> PyResult<Self> {
        let mut b = LocalCluster::builder()
            .security(security_from(security)?)
            .workers(n_workers)
            .threads_per_worker(threads_per_worker)
            .memory_limit(memory_limit)
            .port(port)
            .quiet(quiet)
            .dashboard_address(dashboard_address);
        if let Some(h) = host {
            b = b.host(h);
        }
        if let Some(cmd) = worker_command {
            let Some((program, args)) = cmd.split_first() else {
                return Err(PyValueError::new_err("worker_command is empty"));
            };
            b = b.worker_command(program, args.to_vec()).worker_env(env);
        }
        let cluster = py.detach(|| b.start()).map_err(|e| to_pyerr(py, e))?;
        let address = cluster.address();
        let dashboard = cluster.dashboard_link().map(str::to_owned);
        Ok(PyLocalCluster {
            inner: Mutex::new(Some(std::sync::Arc::new(cluster))),
            address,
            dashboard,
        })
    }

    /// The scheduler's address.
    #[getter]
    fn scheduler_address(&self) -> String {
        self.address.clone()
    }

    /// The dashboard's status page, if it serves one.
    #[getter]
    fn dashboard_link(&self) -> Option<String> {
        self.dashboard.clone()
    }

    /// Process ids of the worker processes (empty with in-process workers).
    fn worker_pids(&self) -> Vec<u32> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|c| c.worker_pids())
            .unwrap_or_default()
    }

    /// Stops the workers and the scheduler.
    fn close(&self, py: Python<'_>) {
        let c = self.inner.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(c) = c {
            py.detach(|| Cluster::close(&*c));
        }
    }

    /// True once closed.
    #[getter]
    fn closed(&self) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }

    /// Names of the workers asked for (connected or starting).
    fn plan(&self) -> Vec<String> {
        self.with_cluster(Cluster::plan).unwrap_or_default()
    }

    /// Asks for `n` workers: starts more, or retires the surplus gracefully.
    fn scale(&self, py: Python<'_>, n: usize) -> PyResult<()> {
        let c = self.shared()?;
        py.detach(|| Cluster::scale(&*c, n))
            .map_err(|e| to_pyerr(py, e))
    }

    /// Retires these workers (names) gracefully and stops them.
    fn scale_down(&self, py: Python<'_>, names: Vec<String>) -> PyResult<()> {
        let c = self.shared()?;
        py.detach(|| Cluster::scale_down(&*c, &names))
            .map_err(|e| to_pyerr(py, e))
    }

    /// The cluster's event log (workers started, retired, exited).
    fn logs(&self) -> Vec<String> {
        self.with_cluster(Cluster::logs).unwrap_or_default()
    }
}

impl PyLocalCluster {
    fn with_cluster<T>(&self, f: impl FnOnce(&LocalCluster) -> T) -> Option<T> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|c| f(c))
    }

    /// The running cluster (shared, so scaling runs without holding the lock).
    fn shared(&self) -> PyResult<std::sync::Arc<LocalCluster>> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| PyValueError::new_err("the LocalCluster is closed"))
    }
}

/// The hysteresis of adaptive scaling (the Rust `AdaptiveCore`): `recommend(target, plan,
/// observed, to_close)` returns `("same", None)`, `("up", n)` or `("down", [names])`.
#[pyclass(module = "oxidask._oxidask", name = "AdaptiveCore")]
pub struct PyAdaptiveCore {
    core: oxidask_client::AdaptiveCore,
}

#[pymethods]
impl PyAdaptiveCore {
    /// A core keeping between `minimum` and `maximum` workers, retiring a worker once named
    /// `wait_count` rounds in a row.
    #[new]
    fn new(minimum: usize, maximum: usize, wait_count: usize) -> PyResult<Self> {
        oxidask_client::AdaptiveCore::new(minimum, maximum, wait_count)
            .map(|core| PyAdaptiveCore { core })
            .map_err(PyValueError::new_err)
    }

    /// One round (see the Rust `AdaptiveCore::recommend`).
    fn recommend<'py>(
        &mut self,
        py: Python<'py>,
        target: usize,
        plan: Vec<String>,
        observed: Vec<String>,
        to_close: Vec<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        use pyo3::IntoPyObjectExt;
        match self.core.recommend(target, &plan, &observed, &to_close) {
            oxidask_client::Decision::Same => ("same", py.None()).into_bound_py_any(py),
            oxidask_client::Decision::Up(n) => ("up", n).into_bound_py_any(py),
            oxidask_client::Decision::Down(names) => ("down", names).into_bound_py_any(py),
        }
    }

    /// `target` clamped to `[minimum, maximum]`.
    fn clamp(&self, target: usize) -> usize {
        self.core.clamp(target)
    }
}

/// Inside a task on a worker: a client of the worker's scheduler; elsewhere the most recent.
#[pyfunction]
pub fn get_client(py: Python<'_>) -> PyResult<PyClient> {
    let c = py
        .detach(oxidask_client::get_client)
        .map_err(|e| to_pyerr(py, e))?;
    Ok(PyClient::wrap(c))
}

/// Gives up this task's worker thread while it waits (Dask's `secede`); false outside a
/// worker's task.
#[pyfunction]
pub fn secede(py: Python<'_>) -> bool {
    py.detach(oxidask_worker::secede)
}

/// Takes the worker thread back after `secede` (Dask's `rejoin`).
#[pyfunction]
pub fn rejoin(py: Python<'_>) {
    py.detach(oxidask_worker::rejoin)
}

/// Where the current task runs: `{"scheduler", "name", "address"}` on a worker, else `None`.
#[pyfunction]
pub fn worker_context<'py>(py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
    let Some(ctx) = oxidask_worker::current() else {
        return Ok(None);
    };
    let d = PyDict::new(py);
    let scheduler = with_scheme(&ctx.scheduler, "tcp");
    let scheme = scheme_of(&scheduler).to_owned();
    d.set_item("scheduler", &scheduler)?;
    d.set_item("name", ctx.name)?;
    d.set_item("address", with_scheme(&ctx.data_address, &scheme))?;
    Ok(Some(d))
}

/// A [`Security`] from the dict `oxidask.distributed.Security` hands over: PEM text under
/// `ca`, `cert`, `key`, and `token`, `require_encryption`.
fn security_from(d: Option<&Bound<'_, PyDict>>) -> PyResult<Security> {
    let Some(d) = d else {
        return Ok(Security::default());
    };
    let text = |k: &str| -> PyResult<Option<String>> {
        match d.get_item(k)? {
            Some(v) if !v.is_none() => Ok(Some(v.extract()?)),
            _ => Ok(None),
        }
    };
    let mut s = match text("ca")? {
        Some(ca) => Security::tls(TlsCredentials {
            ca,
            cert: text("cert")?,
            key: text("key")?,
        })
        .map_err(|e| PyValueError::new_err(e.to_string()))?,
        None if text("cert")?.is_some() => {
            return Err(PyValueError::new_err(
                "a TLS certificate needs the CA that signed the cluster's certificates: give tls_ca_file",
            ))
        }
        None => Security::default(),
    };
    if let Some(t) = text("token")? {
        s = s.with_token(t);
    }
    if let Some(r) = d.get_item("require_encryption")? {
        s = s.require_encryption(r.is_truthy()?);
    }
    Ok(s)
}

/// A fresh CA and a certificate it signed, as PEM text `(ca, cert, key)`
/// (`Security.temporary()`).
#[pyfunction]
pub fn temporary_credentials() -> PyResult<(String, String, String)> {
    let c = TemporaryCa::new()
        .and_then(|ca| ca.issue())
        .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    Ok((c.ca, c.cert.unwrap_or_default(), c.key.unwrap_or_default()))
}

/// The `oxidask` command (scheduler, worker, ...) with `argv` (program name first); returns
/// the exit status.
#[pyfunction]
pub fn cli_main(py: Python<'_>, argv: Vec<String>) -> i32 {
    let code = py.detach(|| oxidask_cli::main_with_args(argv));
    if code == std::process::ExitCode::SUCCESS {
        0
    } else {
        1
    }
}
