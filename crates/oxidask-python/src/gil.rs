//! Attaching Rust threads to the interpreter cheaply.
//!
//! A thread without a Python thread state pays ~8 µs to create one each time it attaches and
//! throws it away when it detaches. Executor threads (the local pool, a worker's threads) run
//! Python tasks back to back, so the first attach on such a thread creates a state that lives
//! as long as the thread; later attaches only take the GIL (~80 ns uncontended).
//!
//! # Invariant
//! No Rust lock that a GIL-holding thread may wait for is held while attaching: code called
//! from Python releases the GIL (`py.detach`) before it blocks on the client, the worker or a
//! scheduler, so a thread that holds such a lock and needs the GIL (to pickle a value it spills,
//! say) always gets it.

use std::cell::Cell;

use pyo3::ffi;
use pyo3::prelude::*;

thread_local! {
    static KEPT: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` attached to the interpreter, keeping this thread's Python state for next time.
pub fn attach<R>(f: impl for<'py> FnOnce(Python<'py>) -> R) -> R {
    keep_thread_state();
    Python::attach(|py| {
        crate::buffers::release_pending();
        f(py)
    })
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
