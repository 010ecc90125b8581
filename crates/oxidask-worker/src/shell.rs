//! The shell around [`WorkerState::handle`]: feeds it events and carries its effects out.
//!
//! [`Shared::apply`] takes the lock, handles one event, queues the messages for the scheduler
//! and releases the lock before any other effect runs: spill files are written, read and
//! removed, fetches started and executor threads woken with no lock held. Disk work runs on
//! the calling thread when that is an executor or the memory monitor (plain threads), and on
//! tokio's blocking pool when the caller is the I/O runtime, whose thread must keep serving
//! the scheduler, heartbeats and the data port. `Execute` effects go back to the executor
//! that asked (`execute.rs`).

use std::sync::Arc;

use crate::state::{now_us, Effect, Event, Execution, WorkerState};
use crate::Shared;

impl Shared {
    /// Handles `event` and carries out its effects; returns the task to run, if the event
    /// was an executor's [`Event::ThreadFree`] and it got one.
    pub(crate) fn apply(self: &Arc<Self>, event: Event) -> Option<Execution> {
        let mut st = self.lock();
        let effects = st.handle(event, now_us());
        self.carry_out(st, effects)
    }

    /// Queues `effects`' messages under the lock `st` holds, releases it, then does the rest.
    pub(crate) fn carry_out(
        self: &Arc<Self>,
        mut st: std::sync::MutexGuard<'_, WorkerState>,
        effects: Vec<Effect>,
    ) -> Option<Execution> {
        let mut rest = Vec::with_capacity(effects.len());
        let mut sent = false;
        for e in effects {
            match e {
                Effect::Send(m) => {
                    st.outbox.push(m);
                    sent = true;
                }
                e => rest.push(e),
            }
        }
        drop(st);
        if sent {
            self.wake_writer();
        }
        let mut run = None;
        let mut fetches = Vec::new();
        let (mut removes, mut writes) = (Vec::new(), Vec::new());
        let mut release_freed = false;
        for e in rest {
            match e {
                Effect::Send(_) => unreachable!("queued above"),
                Effect::Execute(x) => run = Some(x),
                Effect::Fetch(order) => fetches.push(order),
                Effect::WakeExecutors => self.cv.notify_all(),
                Effect::RemoveFile(path) => removes.push(path),
                Effect::WriteSpill(job) => writes.push(job),
                // Only an executor's `ThreadFree` returns these: that thread reads.
                Effect::ReadSpill {
                    key,
                    path,
                    type_name,
                } => {
                    let started_us = now_us();
                    let outcome = crate::state::read_spill(&path, &type_name);
                    self.apply(Event::UnspillRead {
                        key,
                        path,
                        outcome,
                        started_us,
                    });
                }
                // The memory monitor that sampled logs these with the numbers it measured.
                Effect::Paused(paused) => {
                    if !paused {
                        self.cv.notify_all();
                        self.resumed.notify_waiters();
                    }
                }
                Effect::Terminate => {}
                Effect::ReleaseFreedMemory => release_freed = true,
                Effect::Log { warn: true, line } => self.log_at(tracing::Level::WARN, line),
                Effect::Log { warn: false, line } => self.log(line),
            }
        }
        if !removes.is_empty() {
            self.disk(move |_| {
                for path in removes {
                    let _ = std::fs::remove_file(path);
                }
            });
        }
        if !writes.is_empty() {
            self.disk(move |shared| {
                for job in writes {
                    let started_us = now_us();
                    let outcome = job.write();
                    shared.apply(Event::SpillWritten {
                        key: job.key,
                        used: job.used,
                        path: job.path,
                        outcome,
                        started_us,
                    });
                }
            });
        }
        if release_freed {
            // After the writes above: on the monitor's thread (a plain thread) they ran
            // inline, so the results they spilled are freed by now.
            self.disk(|_| release_freed_memory());
        }
        if !fetches.is_empty() {
            match tokio::runtime::Handle::try_current()
                .ok()
                .or_else(|| self.runtime.get().cloned())
            {
                Some(rt) => {
                    rt.spawn(crate::transfer::fetch(self.clone(), fetches));
                }
                None => self.log_at(
                    tracing::Level::WARN,
                    "fetches were ordered before the worker's I/O runtime started (a bug)",
                ),
            }
        }
        run
    }

    /// Runs disk work off the I/O runtime's thread: inline on a plain thread, on tokio's
    /// blocking pool from the runtime.
    fn disk(self: &Arc<Self>, work: impl FnOnce(&Arc<Shared>) + Send + 'static) {
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                let shared = self.clone();
                rt.spawn_blocking(move || work(&shared));
            }
            Err(_) => work(self),
        }
    }
}

/// Asks the C allocator to return the free memory it holds to the system. Only glibc's
/// allocator keeps large freed regions resident (its heap top and arenas, until trimmed);
/// Rust programs here on mimalloc return theirs on their own, but what C libraries and
/// Python's extensions allocate goes through glibc's `malloc`.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only takes glibc's allocator lock and returns pages; it has
    // no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}
