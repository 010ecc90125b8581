//! What the scheduler keeps for people watching it (the dashboard, `/metrics`,
//! `get_task_stream`, the logs): counts of tasks per key prefix and state, the task stream
//! (tasks run, transfers and spills, per worker thread), recent failures and workers' log
//! lines. All bounded; updated in place by the handlers (a few array writes per transition,
//! no allocation), read only by [`SchedulerState::snapshot`] and the client requests.

use std::collections::VecDeque;

use oxidask_core::Prefix;
use oxidask_protocol::{ActivityKind, StreamRecord, WireKey};
use rustc_hash::FxHashMap;

use super::{SchedulerState, TState, TaskId, WorkerId};

/// The task states counted per prefix, in this order.
pub const STATES: [&str; 7] = [
    "released",
    "waiting",
    "queued",
    "no-worker",
    "processing",
    "memory",
    "erred",
];

fn slot(s: TState) -> usize {
    match s {
        TState::Released => 0,
        TState::Waiting => 1,
        TState::Queued => 2,
        TState::NoWorker => 3,
        TState::Processing(_) => 4,
        TState::Memory => 5,
        TState::Erred => 6,
    }
}

/// Counts and totals of one key prefix.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PrefixStats {
    /// Tasks in each of [`STATES`] now.
    pub states: [u32; 7],
    /// Tasks that reached memory (ever).
    pub finished: u64,
    /// Tasks that failed (ever).
    pub erred: u64,
    /// Seconds spent computing them on workers (ever).
    pub compute_seconds: f64,
    /// Bytes of results produced (ever).
    pub output_bytes: u64,
}

/// A failed task, for the errors page.
#[derive(Clone, Debug, PartialEq)]
pub struct ErrorRecord {
    /// The task.
    pub key: String,
    /// The message.
    pub message: String,
    /// Seconds since the scheduler started.
    pub at: f64,
}

/// Bounded observation state; see the module docs.
pub struct Observations {
    prefixes: Vec<Option<(Prefix, PrefixStats)>>,
    stream: VecDeque<StreamRecord>,
    stream_next: u64,
    stream_capacity: usize,
    errors: VecDeque<ErrorRecord>,
    worker_logs: FxHashMap<String, VecDeque<String>>,
    /// Tasks forgotten (ever).
    pub forgotten: u64,
    /// Transitions (ever).
    pub transitions: u64,
}

/// Records of the task stream kept (Dask keeps 100,000 too).
pub const STREAM_CAPACITY: usize = 100_000;
const ERRORS_CAPACITY: usize = 1_000;
const LOG_LINES: usize = 1_000;

impl Default for Observations {
    fn default() -> Self {
        Observations {
            prefixes: Vec::new(),
            stream: VecDeque::new(),
            stream_next: 0,
            stream_capacity: STREAM_CAPACITY,
            errors: VecDeque::new(),
            worker_logs: FxHashMap::default(),
            forgotten: 0,
            transitions: 0,
        }
    }
}

impl Observations {
    fn stats(&mut self, p: Prefix) -> &mut PrefixStats {
        let i = p.index();
        if i >= self.prefixes.len() {
            self.prefixes.resize(i + 1, None);
        }
        &mut self.prefixes[i]
            .get_or_insert((p, PrefixStats::default()))
            .1
    }

    /// A task of prefix `p` appeared in `s`.
    pub(crate) fn added(&mut self, p: Prefix, s: TState) {
        self.stats(p).states[slot(s)] += 1;
    }

    /// A task of prefix `p` moved.
    #[inline]
    pub(crate) fn moved(&mut self, p: Prefix, from: TState, to: TState) {
        self.transitions += 1;
        let st = self.stats(p);
        st.states[slot(from)] = st.states[slot(from)].saturating_sub(1);
        st.states[slot(to)] += 1;
        if to == TState::Memory {
            st.finished += 1;
        }
        if to == TState::Erred {
            st.erred += 1;
        }
    }

    /// A task of prefix `p` in state `s` was forgotten.
    pub(crate) fn removed(&mut self, p: Prefix, s: TState) {
        self.forgotten += 1;
        let st = self.stats(p);
        st.states[slot(s)] = st.states[slot(s)].saturating_sub(1);
    }

    /// One record of the task stream.
    pub(crate) fn record(&mut self, r: StreamRecord) {
        if self.stream.len() == self.stream_capacity {
            self.stream.pop_front();
        }
        self.stream.push_back(r);
        self.stream_next += 1;
    }

    /// Time and output of a finished task of prefix `p`.
    pub(crate) fn computed(&mut self, p: Prefix, seconds: f64, nbytes: u64) {
        let st = self.stats(p);
        st.compute_seconds += seconds;
        st.output_bytes += nbytes;
    }

    /// A task failed.
    pub(crate) fn failed(&mut self, r: ErrorRecord) {
        if self.errors.len() == ERRORS_CAPACITY {
            self.errors.pop_front();
        }
        self.errors.push_back(r);
    }

    /// Log lines from a worker.
    pub(crate) fn worker_logged(&mut self, worker: &str, lines: Vec<String>) {
        if lines.is_empty() {
            return;
        }
        let ring = self.worker_logs.entry(worker.to_owned()).or_default();
        for l in lines {
            if ring.len() == LOG_LINES {
                ring.pop_front();
            }
            ring.push_back(l);
        }
    }

    /// Prefixes seen and their stats, by name.
    pub fn prefixes(&self) -> impl Iterator<Item = (&'static str, &PrefixStats)> {
        self.prefixes.iter().flatten().map(|(p, s)| (p.as_str(), s))
    }

    /// Task-stream records from sequence number `since` on (as many as are still kept), and
    /// the sequence number after the last. A cursor past the end (from another scheduler,
    /// or `u64::MAX` to ask where the stream is now) counts as the end.
    pub fn stream_since(&self, since: u64, limit: usize) -> (Vec<StreamRecord>, u64) {
        let first = self.stream_next - self.stream.len() as u64;
        let from = since.clamp(first, self.stream_next);
        let skip = (from - first) as usize;
        let out: Vec<StreamRecord> = self.stream.iter().skip(skip).take(limit).cloned().collect();
        let next = from + out.len() as u64;
        (out, next)
    }

    /// The newest task-stream records after `since`, at most `limit` of them (older ones
    /// in between are skipped: a watcher wants now, not a backlog), the sequence number
    /// after the last, and how many were skipped.
    pub fn stream_latest(&self, since: u64, limit: usize) -> (Vec<StreamRecord>, u64, u64) {
        let first = self.stream_next - self.stream.len() as u64;
        let since = since.clamp(first, self.stream_next);
        let from = since.max(self.stream_next.saturating_sub(limit as u64));
        let (out, next) = self.stream_since(from, limit);
        (out, next, from - since)
    }

    /// The latest failures, oldest first.
    pub fn errors(&self) -> impl Iterator<Item = &ErrorRecord> {
        self.errors.iter()
    }

    /// A worker's latest log lines (by name).
    pub fn worker_logs(&self, worker: &str) -> Vec<String> {
        self.worker_logs
            .get(worker)
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// One worker as the dashboard shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerView {
    /// Name.
    pub name: String,
    /// Data address.
    pub address: String,
    /// Threads.
    pub nthreads: u32,
    /// Memory limit (0: none).
    pub memory_limit: u64,
    /// Bytes of results held in memory (managed).
    pub managed: u64,
    /// Resident memory of the process.
    pub rss: u64,
    /// Bytes of results spilled to disk.
    pub spilled: u64,
    /// CPU, percent of one core.
    pub cpu: f64,
    /// Tasks assigned.
    pub processing: u32,
    /// Tasks running now.
    pub executing: u32,
    /// Results held.
    pub keys: u64,
    /// Seconds since its last message.
    pub last_seen: f64,
    /// Resources it offers.
    pub resources: Vec<(String, f64)>,
    /// Paused by its memory monitor (Dask's status `paused`): given no new tasks.
    pub paused: bool,
    /// Retiring (Dask's status `closing_gracefully`): given no new tasks while the results
    /// only it holds are copied to other workers.
    pub retiring: bool,
}

/// One task in a [`GraphView`].
#[derive(Clone, Debug, PartialEq)]
pub struct GraphNode {
    /// Key.
    pub key: String,
    /// Prefix.
    pub prefix: &'static str,
    /// State name.
    pub state: &'static str,
}

/// Part of the task graph the scheduler holds now.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GraphView {
    /// Tasks, at most the limit asked for.
    pub nodes: Vec<GraphNode>,
    /// Dependency edges `(dependency, dependent)` between shown tasks, as node indices.
    pub edges: Vec<(u32, u32)>,
    /// Tasks the scheduler knows in all.
    pub total: u64,
}

/// What the scheduler shows at one moment; see [`SchedulerState::snapshot`].
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// Seconds since the scheduler started.
    pub at: f64,
    /// Per prefix: name and stats (prefixes with any task now or ever).
    pub prefixes: Vec<(&'static str, PrefixStats)>,
    /// Live workers.
    pub workers: Vec<WorkerView>,
    /// Connected clients.
    pub clients: u64,
    /// Tasks known.
    pub tasks: u64,
    /// Tasks forgotten, ever.
    pub forgotten: u64,
    /// Transitions, ever.
    pub transitions: u64,
    /// New task-stream records since the cursor asked for.
    pub stream: Vec<StreamRecord>,
    /// The cursor to ask from next time.
    pub stream_next: u64,
    /// Records between the cursor and `stream` that were skipped (more than the limit
    /// happened since the last snapshot).
    pub stream_skipped: u64,
    /// The latest failures.
    pub errors: Vec<ErrorRecord>,
}

impl SchedulerState {
    /// What a dashboard shows now: counts per prefix and state, the workers, and the newest
    /// task-stream records after `stream_since` (at most `stream_limit`). Reads only.
    pub fn snapshot(&self, stream_since: u64, stream_limit: usize) -> Snapshot {
        let (stream, stream_next, stream_skipped) =
            self.obs.stream_latest(stream_since, stream_limit);
        Snapshot {
            at: (self.now - self.start).as_secs_f64(),
            prefixes: self.obs.prefixes().map(|(n, s)| (n, *s)).collect(),
            workers: self
                .live_workers()
                .map(|(w, r)| self.worker_view(w, r))
                .collect(),
            clients: self.client_by_conn.len() as u64,
            tasks: self.index.len() as u64,
            forgotten: self.obs.forgotten,
            transitions: self.obs.transitions,
            stream,
            stream_next,
            stream_skipped,
            errors: self.obs.errors().cloned().collect(),
        }
    }

    fn worker_view(&self, w: WorkerId, r: &super::WorkerRec) -> WorkerView {
        WorkerView {
            name: r.info.name.clone(),
            address: r.info.data_address.clone(),
            nthreads: r.info.nthreads,
            memory_limit: r.info.memory_limit,
            managed: r.metrics.memory.max(r.nbytes),
            rss: r.metrics.rss,
            spilled: r.metrics.spilled,
            cpu: r.metrics.cpu,
            processing: r.processing.len() as u32,
            executing: r.metrics.executing,
            keys: r.has_what.len() as u64,
            last_seen: self
                .now
                .saturating_duration_since(r.last_seen)
                .as_secs_f64(),
            resources: r.info.resources.clone(),
            paused: self.paused.contains(&w),
            retiring: self.life.retiring.contains_key(&w),
        }
    }

    /// Up to `limit` tasks of the graph the scheduler holds, with the edges between them.
    pub fn graph_view(&self, limit: usize) -> GraphView {
        let mut nodes = Vec::new();
        let mut index: FxHashMap<u32, u32> = FxHashMap::default();
        let mut shown: Vec<TaskId> = Vec::new();
        for (i, slot) in self.tasks.iter().enumerate() {
            if nodes.len() >= limit {
                break;
            }
            if let Some(rec) = slot {
                index.insert(i as u32, nodes.len() as u32);
                shown.push(TaskId(i as u32));
                nodes.push(GraphNode {
                    key: rec.key.to_string(),
                    prefix: rec.key.prefix_str(),
                    state: rec.state.name(),
                });
            }
        }
        let mut edges = Vec::new();
        for t in shown {
            let to = index[&t.0];
            for d in &self.task(t).deps {
                if let Some(&from) = index.get(&d.0) {
                    edges.push((from, to));
                }
            }
        }
        GraphView {
            nodes,
            edges,
            total: self.index.len() as u64,
        }
    }

    /// A task finished on worker `w`: its task-stream record and time per prefix.
    pub(crate) fn observe_finished(
        &mut self,
        w: WorkerId,
        key: WireKey,
        nbytes: u64,
        start_us: u64,
        duration_us: u64,
        thread: u32,
    ) {
        let worker = self.worker(w).info.name.clone();
        self.obs
            .computed(key.0.prefix(), duration_us as f64 * 1e-6, nbytes);
        self.obs.record(StreamRecord {
            key,
            kind: ActivityKind::Compute,
            worker,
            thread,
            start_us,
            stop_us: start_us + duration_us,
            nbytes,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxidask_core::{Key, Token};
    use oxidask_protocol::{ActivityKind, WireKey};

    fn rec(i: u64) -> StreamRecord {
        StreamRecord {
            key: WireKey(Key::new("t", Token::from_u128(i as u128))),
            kind: ActivityKind::Compute,
            worker: "w".into(),
            thread: 0,
            start_us: i,
            stop_us: i + 1,
            nbytes: 0,
        }
    }

    #[test]
    fn stream_cursor_past_the_end_counts_as_the_end() {
        let mut o = Observations {
            stream_capacity: 4,
            ..Observations::default()
        };
        for i in 0..6 {
            o.record(rec(i));
        }
        // Records 0 and 1 fell out of the ring; a cursor before them starts at 2.
        let (r, next) = o.stream_since(0, 100);
        assert_eq!(
            r.iter().map(|r| r.start_us).collect::<Vec<_>>(),
            [2, 3, 4, 5]
        );
        assert_eq!(next, 6);
        // A cursor from the future (another scheduler, or "where are we") is the end, so
        // the records that come next are not skipped.
        let (r, next) = o.stream_since(u64::MAX, 100);
        assert!(r.is_empty());
        assert_eq!(next, 6);
        o.record(rec(6));
        let (r, next) = o.stream_since(next, 100);
        assert_eq!(r.iter().map(|r| r.start_us).collect::<Vec<_>>(), [6]);
        assert_eq!(next, 7);
        // A limit leaves the rest for the next call.
        let (r, next) = o.stream_since(3, 2);
        assert_eq!(r.len(), 2);
        assert_eq!(next, 5);
        // A watcher gets the newest: 3, 4 and 5 skipped, 6 sent.
        let (r, next, skipped) = o.stream_latest(3, 1);
        assert_eq!(r.iter().map(|r| r.start_us).collect::<Vec<_>>(), [6]);
        assert_eq!((next, skipped), (7, 3));
        let (r, next, skipped) = o.stream_latest(next, 10);
        assert!(r.is_empty());
        assert_eq!((next, skipped), (7, 0));
    }
}
