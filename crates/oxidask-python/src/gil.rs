//! Attaching Rust threads to the interpreter cheaply, and never while it exits.
//!
//! A thread without a Python thread state pays ~8 µs to create one each time it attaches and
//! throws it away when it detaches. Executor threads (the local pool, a worker's threads) run
//! Python tasks back to back, so the first attach on such a thread creates a state that lives
//! as long as the thread; later attaches only take the GIL (~80 ns uncontended). When the
//! thread ends, a reaper thread deletes the state: an ending thread never waits for the GIL,
//! since whoever joins it may hold the GIL (a cluster dropped by Python's garbage collector).
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
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

use pyo3::ffi;
use pyo3::prelude::*;

thread_local! {
    /// Whether this thread made its Python state (or found one it did not make).
    static KEPT: Cell<Kept> = const { Cell::new(Kept::No) };
    /// The thread state this thread keeps (made by `keep_thread_state`), if it made one;
    /// deleted when the thread ends.
    static TSTATE: KeptState = const { KeptState(Cell::new(std::ptr::null_mut())) };
    /// When this thread took the GIL it still holds between tasks (see [`attach_sticky`]).
    static STICKY_SINCE: Cell<Option<Instant>> = const { Cell::new(None) };
    /// Depth of [`detached_for_nested`] regions on this thread: a task computing inside a
    /// task released the GIL its thread holds; tasks run meanwhile attach and detach in pairs.
    static NESTED: Cell<u32> = const { Cell::new(0) };
}

/// Where a thread is with its Python state.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kept {
    /// Not attached yet.
    No,
    /// Attached once: the state made then (if any) is kept.
    Yes,
    /// The thread is ending and its state went to the reaper: it attaches no more.
    Ended,
}

/// The Python thread state a Rust thread made for itself, deleted once the thread ends (an
/// executor thread that seceded ends after its task; without this, each left its state, and
/// the frames' memory it holds, in the interpreter).
///
/// An ending thread does not take the GIL: the thread joining it may hold the GIL (a cluster
/// dropped by Python's garbage collector stops its workers there), and would wait for it for
/// ever. It hands its state to the reaper thread ([`reap`]) instead.
struct KeptState(Cell<*mut ffi::PyThreadState>);

impl KeptState {
    fn get(&self) -> *mut ffi::PyThreadState {
        self.0.get()
    }
}

impl Drop for KeptState {
    fn drop(&mut self) {
        let tstate = self.0.replace(std::ptr::null_mut());
        if tstate.is_null() {
            return;
        }
        // Python still finds the state from this thread: attaching again (from another
        // thread-local's destructor) would use it while the reaper deletes it.
        let _ = KEPT.try_with(|k| k.set(Kept::Ended));
        // A thread that ends holding the GIL it keeps between tasks still has it.
        let held = STICKY_SINCE
            .try_with(|s| s.take().is_some())
            .unwrap_or(false);
        if held {
            // SAFETY: this thread holds the GIL with its own state, made by
            // `PyGILState_Ensure` (use count one) in `keep_thread_state`. Once the interpreter
            // exits the state is only detached (leaked); otherwise the `Release` matching that
            // `Ensure` brings the count to zero, which clears and deletes the state and
            // releases the GIL, without waiting for anything.
            unsafe {
                if exiting() {
                    ffi::PyEval_SaveThread();
                } else {
                    ffi::PyGILState_Release(ffi::PyGILState_STATE::PyGILState_UNLOCKED);
                }
            }
            return;
        }
        if !exiting() {
            reap(tstate);
        }
    }
}

/// A thread state of an ended thread, on its way to the reaper.
struct Reaped(*mut ffi::PyThreadState);

// SAFETY: the state's thread has ended; only the reaper uses it from then on.
unsafe impl Send for Reaped {}

extern "C" {
    /// Deletes the current thread state (cleared first) and releases the GIL. Not in the
    /// limited API, but exported by every CPython 3 (public since 3.9).
    fn PyThreadState_DeleteCurrent();
}

/// Hands the detached state of an ended thread to the reaper thread, which deletes it: it
/// takes the GIL with that state (it has none of its own, so no `PyGILState` binding of its
/// own to disturb), clears it and deletes it, as CPython does for its own threads as they end.
fn reap(tstate: *mut ffi::PyThreadState) {
    static REAPER: OnceLock<Option<mpsc::Sender<Reaped>>> = OnceLock::new();
    let tx = REAPER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Reaped>();
        let spawned = std::thread::Builder::new()
            .name("oxidask-tstate-reaper".into())
            .spawn(move || {
                for Reaped(t) in rx {
                    // Once the interpreter exits, the states are left to it.
                    let Ok(_flight) = InFlight::enter() else {
                        continue;
                    };
                    // SAFETY: `t` is a detached state whose thread ended; this thread has no
                    // state, so restoring `t` takes the GIL with it; it is then cleared and
                    // deleted while current, which releases the GIL. `_flight` holds
                    // `at_exit` back until this is done.
                    unsafe {
                        ffi::PyEval_RestoreThread(t);
                        ffi::PyThreadState_Clear(t);
                        PyThreadState_DeleteCurrent();
                    }
                }
            });
        spawned.ok().map(|_| tx)
    });
    // Without a reaper (it could not be started) the state is leaked.
    if let Some(tx) = tx {
        let _ = tx.send(Reaped(tstate));
    }
}

/// One attachment in flight (counted for [`at_exit`]) while it lives, also if what it runs
/// panics.
struct InFlight(());

impl InFlight {
    /// Counts an attachment; refused once the interpreter is exiting.
    fn enter() -> Result<InFlight, Exiting> {
        if exiting() {
            return Err(Exiting);
        }
        IN_FLIGHT.fetch_add(1, Ordering::AcqRel);
        let flight = InFlight(());
        // `at_exit` sets `EXITING` and then waits for the count: seen here, it is not waiting
        // for this one; not seen, it waits for it.
        if exiting() {
            return Err(Exiting);
        }
        Ok(flight)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How long a local pool thread keeps the GIL across consecutive Python tasks.
const STICKY_BUDGET: Duration = Duration::from_micros(500);

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
    let _flight = InFlight::enter()?;
    keep_thread_state()?;
    Ok(Python::attach(|py| {
        crate::buffers::release_pending();
        f(py)
    }))
}

/// [`attach`] for the local pool's threads, which run Python tasks back to back: the GIL is
/// kept when `f` returns, for the thread's next Python task, and given up after
/// [`STICKY_BUDGET`] or when the thread runs out of work (the pool's idle hook,
/// [`release_sticky`]). Two pool threads taking turns at the GIL for every task spend more time
/// handing it over than running Python; taking turns every half millisecond does not.
///
/// Only for threads whose pool calls [`release_sticky`] before sleeping and that run nothing
/// else that waits on other threads' Python while holding it.
pub fn attach_sticky<R>(f: impl for<'py> FnOnce(Python<'py>) -> R) -> Result<R, Exiting> {
    let Ok(_flight) = InFlight::enter() else {
        release_sticky();
        return Err(Exiting);
    };
    keep_thread_state()?;
    let tstate = TSTATE
        .try_with(KeptState::get)
        .unwrap_or(std::ptr::null_mut());
    if tstate.is_null() || NESTED.with(Cell::get) > 0 {
        // A thread Python made: no state of ours to hold on to.
        return attach(f);
    }
    let held = STICKY_SINCE.with(Cell::get);
    let since = match held {
        Some(t) => t,
        None => {
            // SAFETY: `tstate` is this thread's own state, detached (the thread does not hold
            // the GIL outside the sticky window).
            unsafe { ffi::PyEval_RestoreThread(tstate) };
            let now = Instant::now();
            STICKY_SINCE.with(|s| s.set(Some(now)));
            now
        }
    };
    let r = Python::attach(|py| {
        crate::buffers::release_pending();
        f(py)
    });
    if since.elapsed() >= STICKY_BUDGET {
        release_sticky();
    }
    Ok(r)
}

/// Gives up the GIL if this thread kept it after a Python task (the pool's idle hook).
pub fn release_sticky() {
    if NESTED.with(Cell::get) > 0 {
        return; // the GIL is released already, by the region's detach
    }
    if STICKY_SINCE.with(|s| s.take()).is_some() {
        // SAFETY: this thread holds the GIL with its own state (taken in `attach_sticky`).
        unsafe {
            ffi::PyEval_SaveThread();
        }
    }
}

/// Runs `f`, which releases the GIL (`py.detach`) and may run pool jobs on this thread (a
/// computation inside a task): meanwhile this thread's Python tasks attach and detach in
/// pairs, since the GIL it may hold between tasks belongs to the region's caller.
pub fn detached_for_nested<R>(f: impl FnOnce() -> R) -> R {
    NESTED.with(|n| n.set(n.get() + 1));
    struct Restore;
    impl Drop for Restore {
        fn drop(&mut self) {
            NESTED.with(|n| n.set(n.get() - 1));
        }
    }
    let _restore = Restore;
    f()
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

/// Makes this thread's Python state on its first attach (see the module doc); refused on a
/// thread that is ending.
fn keep_thread_state() -> Result<(), Exiting> {
    match KEPT.with(Cell::get) {
        Kept::Yes => return Ok(()),
        Kept::Ended => return Err(Exiting),
        Kept::No => {}
    }
    // Thread-locals are being destroyed: this thread is ending.
    if TSTATE.try_with(|_| ()).is_err() {
        return Err(Exiting);
    }
    KEPT.with(|k| k.set(Kept::Yes));
    // SAFETY: the interpreter is initialized (this module was imported into it). A thread with
    // no Python state of its own gets one here: `PyGILState_Ensure` creates it and takes the
    // GIL, `PyEval_SaveThread` releases the GIL and keeps the state, whose use count stays at
    // one, so the `Ensure`/`Release` pairs of later attaches never delete it. Threads Python
    // made (or that already have a state) are left alone.
    unsafe {
        if ffi::PyGILState_GetThisThreadState().is_null() {
            let _ = ffi::PyGILState_Ensure();
            let tstate = ffi::PyEval_SaveThread();
            TSTATE.with(|t| t.0.set(tstate));
        }
    }
    Ok(())
}
