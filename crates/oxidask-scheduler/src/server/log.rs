//! The scheduler's own log: what happens to connections (joins, refusals, departures), kept
//! in a ring that clients read (`get_scheduler_logs`) and emitted as `tracing` events unless
//! the scheduler is quiet.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Where a client's request for the scheduler's logs is answered from.
pub type LogSource = Arc<dyn Fn() -> Vec<String> + Send + Sync>;

/// Lines kept.
const KEEP: usize = 1_000;

pub(crate) struct SchedulerLog {
    quiet: bool,
    ring: Mutex<VecDeque<String>>,
}

impl SchedulerLog {
    pub(crate) fn new(quiet: bool) -> Arc<SchedulerLog> {
        Arc::new(SchedulerLog {
            quiet,
            ring: Mutex::new(VecDeque::new()),
        })
    }

    /// Logs one line.
    pub(crate) fn log(&self, msg: impl AsRef<str>) {
        let msg = msg.as_ref();
        if !self.quiet {
            tracing::info!("{msg}");
        }
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        if ring.len() == KEEP {
            ring.pop_front();
        }
        ring.push_back(format!("{secs:.3} INFO oxidask_scheduler: {msg}"));
    }

    /// The kept lines as a log source.
    pub(crate) fn source(self: &Arc<Self>) -> LogSource {
        let me = self.clone();
        Arc::new(move || {
            me.ring
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .cloned()
                .collect()
        })
    }
}
