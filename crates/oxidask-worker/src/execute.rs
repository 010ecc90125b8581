//! The executor: threads running ready tasks in priority order, and secede/rejoin for tasks
//! that wait on other tasks (a task calling `get_client()` and gathering).

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Instant;

use oxidask_core::exec::{execute, DepValues};
use oxidask_core::{Key, Task, Value};
use oxidask_protocol::{frame::decode_detached, spec_from_wire, FromWorker, WireError, WireSpec};

use crate::state::{Event, Execution};

use crate::Shared;

/// The worker an executor thread belongs to, whether its task seceded, and the task.
struct Current {
    shared: Arc<Shared>,
    seceded: bool,
    task: Option<Key>,
}

thread_local! {
    static CURRENT: RefCell<Option<Current>> = const { RefCell::new(None) };
}

/// What a task running on a worker can know about where it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerContext {
    /// The scheduler's address (`host:port`).
    pub scheduler: String,
    /// The worker's name.
    pub name: String,
    /// The worker's data address.
    pub data_address: String,
}

/// The worker running the current task, if this thread is a worker's executor.
pub fn current() -> Option<WorkerContext> {
    CURRENT.with(|c| {
        c.borrow().as_ref().map(|c| WorkerContext {
            scheduler: c.shared.scheduler.clone(),
            name: c.shared.name.clone(),
            data_address: c.shared.data_address.clone(),
        })
    })
}

/// The worker and the task running on this thread, if it is a worker's executor running one
/// (for [`crate::actor::register`]).
pub(crate) fn current_task() -> Option<(Arc<Shared>, Key)> {
    CURRENT.with(|c| {
        let c = c.borrow();
        let cur = c.as_ref()?;
        Some((cur.shared.clone(), cur.task?))
    })
}

/// Makes this thread (an actor's) belong to the worker, running no task: [`current`] and
/// `get_client()` work there, so an actor's methods can call other actors and submit tasks.
pub(crate) fn enter_actor_thread(shared: Arc<Shared>) {
    CURRENT.with(|c| {
        *c.borrow_mut() = Some(Current {
            shared,
            seceded: false,
            task: None,
        })
    });
}

/// Gives up this task's thread slot while it waits (Dask's `secede`): the worker starts
/// another task in its place. Returns false if not on a worker thread or already seceded.
pub fn secede() -> bool {
    CURRENT.with(|c| {
        let mut c = c.borrow_mut();
        let Some(cur) = c.as_mut() else {
            return false;
        };
        if cur.seceded || cur.task.is_none() {
            return false;
        }
        cur.seceded = true;
        let shared = &cur.shared;
        let mut st = shared.lock();
        st.active = st.active.saturating_sub(1);
        if let Some(k) = cur.task {
            // The scheduler stops counting it against this worker's threads.
            st.outbox.push(FromWorker::LongRunning { key: k.into() });
        }
        shared.wake_writer();
        if st.idle_threads == 0 && !st.stopping {
            st.threads += 1;
            let s = shared.clone();
            drop(st);
            spawn_executor(s);
        } else {
            drop(st);
            shared.cv.notify_one();
        }
        true
    })
}

/// Takes the thread slot back after [`secede`] (Dask's `rejoin`).
pub fn rejoin() {
    CURRENT.with(|c| {
        let mut c = c.borrow_mut();
        if let Some(cur) = c.as_mut() {
            if cur.seceded {
                cur.seceded = false;
                cur.shared.lock().active += 1;
            }
        }
    })
}

/// Runs `f` seceded from the worker's pool (a no-op outside a worker).
pub fn seceded<R>(f: impl FnOnce() -> R) -> R {
    let did = secede();
    let r = f();
    if did {
        rejoin();
    }
    r
}

pub(crate) fn spawn_executor(shared: Arc<Shared>) {
    let name = format!("oxidask-worker-{}", shared.name);
    let index = shared
        .next_thread
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::thread::Builder::new()
        .name(name)
        .spawn(move || run(shared, index))
        .expect("spawning an executor thread");
}

fn run(shared: Arc<Shared>, thread: u32) {
    CURRENT.with(|c| {
        *c.borrow_mut() = Some(Current {
            shared: shared.clone(),
            seceded: false,
            task: None,
        })
    });
    let set_task = |k: Option<Key>| {
        CURRENT.with(|c| {
            if let Some(cur) = c.borrow_mut().as_mut() {
                cur.task = k;
            }
        })
    };
    let mut st = shared.lock();
    loop {
        if st.stopping {
            st.threads -= 1;
            return;
        }
        if st.active < shared.nthreads && !st.paused {
            // A slot is free: ask for work (spilled inputs are read back on this thread,
            // without the lock, before their task runs).
            let effects = st.handle(Event::ThreadFree, crate::state::now_us());
            if !effects.is_empty() {
                st.active += 1;
                let work = shared.carry_out(st, effects);
                let Some(Execution { key: k, spec, deps }) = work else {
                    st = shared.lock();
                    st.active -= 1;
                    continue;
                };
                let start = Instant::now();
                let start_us = crate::state::now_us();
                set_task(Some(k));
                let result = if shared.zero_work {
                    Ok(Value::new(()))
                } else {
                    run_task(&k, &spec, deps)
                };
                set_task(None);
                let us = start.elapsed().as_micros() as u64;
                let event = match result {
                    Ok(value) => Event::TaskFinished {
                        key: k,
                        value,
                        run: crate::state::Run {
                            start_us,
                            duration_us: us,
                            thread,
                        },
                    },
                    Err(error) => {
                        shared.log_at(
                            tracing::Level::WARN,
                            format!("task {k} failed: {}", error.message),
                        );
                        Event::TaskFailed { key: k, error }
                    }
                };
                st = shared.lock();
                st.active -= 1;
                let effects = st.handle(event, crate::state::now_us());
                shared.carry_out(st, effects);
                st = shared.lock();
                // Look for more work before thinking of ending: a thread that ended here
                // left ready tasks behind while the idle threads slept (nothing wakes them
                // for work that was ready before they went to sleep).
                continue;
            }
        }
        // No task this thread may take now. A thread beyond `nthreads` (started when a task
        // seceded) ends here, not after its task: while the ready queue holds work and a slot
        // is free it never gets here, and a slot freed later is taken by the thread freeing
        // it (it loops) or by a thread `secede` starts or wakes.
        if st.threads > shared.nthreads && st.idle_threads >= shared.nthreads {
            st.threads -= 1;
            return;
        }
        st.idle_threads += 1;
        st = shared.cv.wait(st).unwrap_or_else(|p| p.into_inner());
        st.idle_threads -= 1;
    }
}

fn run_task(
    key: &Key,
    spec: &oxidask_protocol::Payload,
    deps: Vec<(Key, Value)>,
) -> Result<Value, WireError> {
    let wire: WireSpec = decode_detached(spec).map_err(|e| WireError {
        key: Some(key.into()),
        ..WireError::invalid(format!("the spec of {key} is malformed: {e}"))
    })?;
    let spec = spec_from_wire(&wire).map_err(|mut e| {
        e.key = Some(key.into());
        e
    })?;
    let task = Task::from_spec(spec);
    let mut dv = DepValues::new();
    for (k, v) in deps {
        dv.push(k, v);
    }
    execute(key, &task, dv).map_err(|e| WireError::from_task_error(&e))
}
