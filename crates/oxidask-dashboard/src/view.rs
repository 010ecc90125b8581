//! The dashboard's view of the scheduler, built from the snapshots its core publishes: the
//! latest counts and workers, a window of the task stream, the history of the system's
//! gauges. Each snapshot becomes one JSON "tick" message, made once and sent to every
//! browser as it is (no per-browser work).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use oxidask_protocol::StreamRecord;
use oxidask_scheduler::server::Published;
use oxidask_scheduler::state::observe::STATES;
use serde_json::{json, Value};

/// Task-stream records the dashboard keeps (the tasks page shows them all).
pub const STREAM_KEEP: usize = 50_000;
/// Records a newly connected page gets at once.
const STREAM_INITIAL: usize = 20_000;
/// Points of system history kept (at one per publication, 200 ms: 10 minutes).
const HISTORY_KEEP: usize = 3_000;

/// One point of the system page's history.
#[derive(Clone, Copy, Debug)]
pub struct SystemPoint {
    /// Milliseconds since the Unix epoch.
    pub t_ms: f64,
    /// Scheduler process CPU, percent of one core.
    pub cpu: f64,
    /// Scheduler process resident memory.
    pub rss: u64,
    /// Fraction of the time the core was busy.
    pub busy: f64,
    /// The core's longest batch, milliseconds.
    pub latency_ms: f64,
    /// Open connections.
    pub connections: u64,
    /// Tasks known.
    pub tasks: u64,
}

/// What the pages show; updated by the aggregator, read by HTTP handlers.
#[derive(Default)]
pub struct View {
    /// The latest snapshot.
    pub latest: Option<Arc<Published>>,
    /// The task stream window.
    pub stream: VecDeque<StreamRecord>,
    /// System history.
    pub history: VecDeque<SystemPoint>,
    /// Snapshots received.
    pub ticks: u64,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

pub(crate) fn record_json(r: &StreamRecord) -> Value {
    // Compact: [worker, thread, start_ms, stop_ms, prefix, kind, key, nbytes].
    json!([
        r.worker,
        r.thread,
        r.start_us as f64 / 1e3,
        r.stop_us as f64 / 1e3,
        r.key.0.prefix_str(),
        r.kind.name(),
        r.key.0.to_string(),
        r.nbytes
    ])
}

fn point_json(p: &SystemPoint) -> Value {
    json!({
        "t": p.t_ms, "cpu": p.cpu, "rss": p.rss, "busy": p.busy,
        "latency_ms": p.latency_ms, "connections": p.connections, "tasks": p.tasks,
    })
}

impl View {
    /// Takes in a snapshot with the scheduler process's gauges; returns the tick message.
    pub fn update(&mut self, p: Arc<Published>, cpu: f64, rss: u64) -> String {
        for r in &p.snapshot.stream {
            if self.stream.len() == STREAM_KEEP {
                self.stream.pop_front();
            }
            self.stream.push_back(r.clone());
        }
        let point = SystemPoint {
            t_ms: now_ms(),
            cpu,
            rss,
            busy: if p.core.seconds > 0.0 {
                (p.core.busy_seconds / p.core.seconds).min(1.0)
            } else {
                0.0
            },
            latency_ms: p.core.max_batch_seconds * 1e3,
            connections: p.core.connections,
            tasks: p.snapshot.tasks,
        };
        if self.history.len() == HISTORY_KEEP {
            self.history.pop_front();
        }
        self.history.push_back(point);
        self.ticks += 1;
        let msg = self.state_json(&p, p.snapshot.stream.iter(), &point, false);
        self.latest = Some(p);
        msg.to_string()
    }

    /// The whole state a page starts from (also sent again to a page that fell behind).
    pub fn full_json(&self) -> String {
        let Some(p) = &self.latest else {
            return json!({"type": "full", "now": now_ms(), "empty": true}).to_string();
        };
        let point = self.history.back().copied().unwrap_or(SystemPoint {
            t_ms: now_ms(),
            cpu: 0.0,
            rss: 0,
            busy: 0.0,
            latency_ms: 0.0,
            connections: 0,
            tasks: 0,
        });
        let skip = self.stream.len().saturating_sub(STREAM_INITIAL);
        let mut v = self.state_json(p, self.stream.iter().skip(skip), &point, true);
        v["history"] = Value::Array(self.history.iter().map(point_json).collect());
        v.to_string()
    }

    fn state_json<'a>(
        &self,
        p: &Published,
        stream: impl Iterator<Item = &'a StreamRecord>,
        point: &SystemPoint,
        full: bool,
    ) -> Value {
        let s = &p.snapshot;
        let prefixes: Vec<Value> = s
            .prefixes
            .iter()
            .filter(|(_, st)| st.states.iter().any(|&c| c > 0) || st.finished > 0)
            .map(|(name, st)| {
                json!({
                    "name": name, "states": st.states, "finished": st.finished,
                    "erred": st.erred, "compute": st.compute_seconds, "bytes": st.output_bytes,
                })
            })
            .collect();
        let workers: Vec<Value> = s
            .workers
            .iter()
            .map(|w| {
                json!({
                    "name": w.name, "address": w.address, "nthreads": w.nthreads,
                    "limit": w.memory_limit, "managed": w.managed, "rss": w.rss,
                    "spilled": w.spilled, "cpu": w.cpu, "processing": w.processing,
                    "executing": w.executing, "keys": w.keys, "last_seen": w.last_seen,
                    "resources": w.resources, "paused": w.paused,
                })
            })
            .collect();
        let errors: Vec<Value> = s
            .errors
            .iter()
            .rev()
            .take(200)
            .map(|e| json!({"key": e.key, "message": e.message, "at": e.at}))
            .collect();
        json!({
            "type": if full { "full" } else { "tick" },
            "now": now_ms(),
            "uptime": s.at,
            "states": STATES,
            "prefixes": prefixes,
            "workers": workers,
            "clients": s.clients,
            "tasks": s.tasks,
            "forgotten": s.forgotten,
            "transitions": s.transitions,
            "errors": errors,
            "error_count": s.errors.len(),
            "stream": stream.map(record_json).collect::<Vec<_>>(),
            "stream_skipped": s.stream_skipped,
            "system": point_json(point),
            "dropped": p.core.dropped,
        })
    }
}
