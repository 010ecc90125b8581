//! Attaching Rust threads to the interpreter cheaply, and never while it exits.
//!
//! A thread without a Python thread state pays ~8 µs to create one each time it attaches and
//! throws it away when it detaches. Executor threads (the local pool, a worker's threads) run
//! Python tasks back to back, so the first attach on such a thread creates a state that lives
//! as long as the thread; later attaches only take the GIL (~80 ns uncontended).
//!
//! At interpreter exit, Rust threads may still be running tasks or moving values; a thread
//! that takes the GIL while Python finalizes crashes the process. So attaching goes through
//! [`attach`], which refuses once [`at_exit`] has begun and counts the attachments in flight,
//! and `at_exit` (registered with Python's `atexit`) waits for them to end.
//!
//! # Invariant
//! No Rust lock that a GIL-holding thread may wait for is held while attaching: code called
//! from Python releases the GIL (`py.detach`) before it blocks on the client, the worker or a
//! scheduler, so a thread that holds such a lock and needs the GIL (to pickle a value it spills,
//! say) always gets it.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pyo3::ffi;
use pyo3::prelude::*;

thread_local! {
    static KEPT: Cell<bool> = const { Cell::new(false) };
}

static EXITING: AtomicBool = AtomicBool::new(false);
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// The interpreter is exiting: Python code can no longer run on Rust threads.
#[derive(Debug, Clone, Copy)]
pub struct Exiting;

impl std::fmt::Display for Exiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the Python interpreter is exiting")
    }
}

/// True once the interpreter began to exit.
pub fn exiting() -> bool {
    EXITING.load(Ordering::Acquire)
}

/// Runs `f` attached to the interpreter, keeping this thread's Python state for next time;
/// refused once the interpreter is exiting.
pub fn attach<R>(f: impl for<'py> FnOnce(Python<'py>) -> R) -> Result<R, Exiting> {
    if exiting() {
        return Err(Exiting);
    }
    IN_FLIGHT.fetch_add(1, Ordering::AcqRel);
    if exiting() {
        IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
        return Err(Exiting);
    }
    keep_thread_state();
    let r = Python::attach(|py| {
        crate::buffers::release_pending();
        f(py)
    });
    IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
    Ok(r)
}

/// Called by `atexit`: stops Rust threads from starting Python code and waits (up to
/// `timeout` seconds) for those running it to finish. Later tasks fail instead of running.
#[pyfunction]
#[pyo3(signature = (timeout = 60.0))]
pub fn at_exit(py: Python<'_>, timeout: f64) {
    EXITING.store(true, Ordering::Release);
    let deadline = Instant::now() + Duration::try_from_secs_f64(timeout).unwrap_or(Duration::ZERO);
    py.detach(|| {
        while IN_FLIGHT.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    });
}

fn keep_thread_state() {
    if KEPT.with(Cell::get) {
        return;
    }
    KEPT.with(|k| k.set(true));
    // SAFETY: the interpreter is initialized (this module was imported into it). A thread with
    // no Python state of its own gets one here: `PyGILState_Ensure` creates it and takes the
    // GIL, `PyEval_SaveThread` releases the GIL and keeps the state, whose use count stays at
    // one, so the `Ensure`/`Release` pairs of later attaches never delete it. Threads Python
    // made (or that already have a state) are left alone.
    unsafe {
        if ffi::PyGILState_GetThisThreadState().is_null() {
            let _ = ffi::PyGILState_Ensure();
            ffi::PyEval_SaveThread();
        }
    }
}
