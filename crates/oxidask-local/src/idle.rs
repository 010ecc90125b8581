//! A hook run by a pool thread before it sleeps for lack of work.
//!
//! Front ends that hold a resource across tasks for speed release it here: the Python
//! package keeps the GIL between consecutive Python tasks of a thread and gives it up when
//! the thread runs out of work, so a sleeping thread never holds what others need.

use std::sync::OnceLock;

static HOOK: OnceLock<fn()> = OnceLock::new();

/// Sets the hook (once per process; later calls are ignored). It runs on the pool thread that
/// is about to sleep, must not block, and must not run jobs.
pub fn set_idle_hook(hook: fn()) {
    let _ = HOOK.set(hook);
}

pub(crate) fn before_sleep() {
    if let Some(h) = HOOK.get() {
        h();
    }
}
