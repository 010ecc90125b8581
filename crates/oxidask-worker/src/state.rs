//! The worker's bookkeeping: tasks it was given, results it holds, dependencies it fetches.
//!
//! One mutex guards it; executor threads and the network tasks take it briefly. Every change
//! that the scheduler must hear about is pushed to the outbox, sent in batches by the writer.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use oxidask_core::{Key, Value};
use oxidask_protocol::{Activity, ActivityKind, FromWorker, Payload, WireKey};
use rustc_hash::FxHashMap;

/// Where a task is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Fetching dependencies.
    Fetching,
    /// In the ready heap.
    Ready,
    /// On an executor thread.
    Executing,
}

pub(crate) struct TaskEntry {
    pub wire_key: WireKey,
    pub spec: Payload,
    pub deps: Vec<Key>,
    pub missing: usize,
    pub phase: Phase,
    pub priority: (i64, u64),
    /// Freed by the scheduler while executing: discard the result.
    pub cancelled: bool,
}

/// Where a held value is: in memory, or spilled to the worker's local directory.
pub(crate) enum Slot {
    Memory(Value),
    Disk {
        path: std::path::PathBuf,
        type_name: String,
    },
}

/// Spilling: values beyond `target` bytes in memory go to files in `dir`, least recently
/// used first (Dask's `distributed.worker.memory.target`, 60% of the memory limit).
pub(crate) struct Spill {
    pub dir: std::path::PathBuf,
    pub target: u64,
    pub files: u64,
}

pub(crate) struct Stored {
    pub slot: Slot,
    /// When it was last stored or read (for least-recently-used spilling).
    pub used: u64,
    pub nbytes: u64,
    /// The scheduler counts this worker as a holder (a result computed or stored here).
    pub owned: bool,
    /// Local tasks (waiting, ready or running) that read it.
    pub readers: u32,
}

/// A dependency being fetched: the tasks waiting for it and where it may be.
/// Ready tasks: lowest (priority, arrival) first.
pub(crate) type ReadyHeap = BinaryHeap<Reverse<((i64, u64), u64, Key)>>;

pub(crate) struct Fetch {
    pub waiting: Vec<Key>,
}

#[derive(Default)]
pub(crate) struct WorkerState {
    pub tasks: FxHashMap<Key, TaskEntry>,
    pub data: FxHashMap<Key, Stored>,
    pub ready: ReadyHeap,
    pub fetching: FxHashMap<Key, Fetch>,
    pub seq: u64,
    pub memory: u64,
    pub executing: u32,
    pub outbox: Vec<FromWorker>,
    /// Tasks running on executor threads that hold a thread slot (not seceded).
    pub active: usize,
    /// Executor threads waiting for work.
    pub idle_threads: usize,
    /// Executor threads alive.
    pub threads: usize,
    /// Set when the worker stops.
    pub stopping: bool,
    /// Where values spill when memory passes its target (none without a memory limit).
    pub spill: Option<Spill>,
    /// Bytes on disk now, and ever spilled.
    pub spilled_now: u64,
    pub spilled_total: u64,
    /// Transfers and spills since the last heartbeat (for the task stream).
    pub activity: Vec<Activity>,
    /// Counts since the start (for `/metrics`).
    pub totals: crate::metrics::Totals,
    /// Paused by the memory monitor: no task starts, no fetch begins.
    pub paused: bool,
}

/// Activity records kept between heartbeats, at most (older ones are dropped).
const ACTIVITY_CAP: usize = 1_000;

/// Microseconds since the Unix epoch: the task stream's clock.
pub(crate) fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// When and where a task ran.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Run {
    pub start_us: u64,
    pub duration_us: u64,
    pub thread: u32,
}

impl Stored {
    /// The held value's type name.
    pub fn type_name(&self) -> &str {
        match &self.slot {
            Slot::Memory(v) => v.type_name(),
            Slot::Disk { type_name, .. } => type_name,
        }
    }
}

/// A fetch the network side must start: `key` from `addresses`.
pub(crate) type FetchOrder = (Key, WireKey, Vec<String>);

impl WorkerState {
    /// Records a transfer or a spill for the next heartbeat (or the next result, if sooner).
    pub fn record(&mut self, kind: ActivityKind, start_us: u64, nbytes: u64, count: u32) {
        if self.activity.len() >= ACTIVITY_CAP {
            self.activity.remove(0);
        }
        let stop_us = now_us().max(start_us);
        self.totals
            .add(kind, nbytes, (stop_us - start_us) as f64 / 1e6);
        self.activity.push(Activity {
            kind,
            start_us,
            stop_us,
            nbytes,
            count,
        });
    }

    /// A new task; returns the fetches to start.
    pub fn add_task(
        &mut self,
        key: Key,
        wire_key: WireKey,
        spec: Payload,
        deps: Vec<(Key, WireKey)>,
        who_has: &FxHashMap<Key, Vec<String>>,
        priority: (i64, u64),
    ) -> Vec<FetchOrder> {
        if self.tasks.contains_key(&key) {
            return Vec::new();
        }
        if self.data.get(&key).is_some_and(|s| s.owned) {
            // Already computed here (a repeated assignment): report it again.
            let s = &self.data[&key];
            self.outbox.push(FromWorker::Finished {
                key: wire_key,
                type_name: s.type_name().to_owned(),
                nbytes: s.nbytes,
                duration_us: 0,
                start_us: now_us(),
                thread: 0,
            });
            return Vec::new();
        }
        let mut fetches = Vec::new();
        let mut missing = 0;
        let mut dep_keys = Vec::with_capacity(deps.len());
        for (d, wd) in deps {
            dep_keys.push(d);
            if let Some(s) = self.data.get_mut(&d) {
                s.readers += 1;
                continue;
            }
            missing += 1;
            match self.fetching.get_mut(&d) {
                Some(f) => f.waiting.push(key),
                None => {
                    self.fetching.insert(d, Fetch { waiting: vec![key] });
                    let addrs = who_has.get(&d).cloned().unwrap_or_default();
                    fetches.push((d, wd, addrs));
                }
            }
        }
        let phase = if missing == 0 {
            Phase::Ready
        } else {
            Phase::Fetching
        };
        self.tasks.insert(
            key,
            TaskEntry {
                wire_key,
                spec,
                deps: dep_keys,
                missing,
                phase,
                priority,
                cancelled: false,
            },
        );
        if missing == 0 {
            self.push_ready(key, priority);
        }
        fetches
    }

    fn push_ready(&mut self, key: Key, priority: (i64, u64)) {
        self.seq += 1;
        self.ready.push(Reverse((priority, self.seq, key)));
    }

    /// A fetched dependency arrived.
    pub fn fetched(&mut self, key: Key, value: Value) {
        let Some(f) = self.fetching.remove(&key) else {
            return;
        };
        let nbytes = value.nbytes() as u64;
        let mut readers = 0;
        let mut now_ready = Vec::new();
        for t in f.waiting {
            if let Some(e) = self.tasks.get_mut(&t) {
                // `waiting` lists only tasks that read `key` (drop_task keeps it so).
                if e.phase == Phase::Fetching {
                    readers += 1;
                    e.missing -= 1;
                    if e.missing == 0 {
                        e.phase = Phase::Ready;
                        now_ready.push((t, e.priority));
                    }
                }
            }
        }
        if readers > 0 {
            match self.data.get_mut(&key) {
                Some(s) => s.readers += readers,
                None => self.insert_value(key, value, nbytes, false, readers),
            }
        }
        for (t, p) in now_ready {
            self.push_ready(t, p);
        }
    }

    /// A dependency could not be fetched from any of `tried`: its waiting tasks are dropped
    /// and the scheduler is told.
    pub fn fetch_failed(&mut self, key: Key, wire_key: &WireKey, tried: Vec<String>) {
        self.drop_waiting(key, |wk| FromWorker::MissingData {
            key: wk,
            missing: *wire_key,
            tried: tried.clone(),
        });
    }

    /// Drops the tasks still fetching `key` and reports each with `report(its key)`.
    fn drop_waiting(&mut self, key: Key, mut report: impl FnMut(WireKey) -> FromWorker) {
        let Some(f) = self.fetching.remove(&key) else {
            return;
        };
        for t in f.waiting {
            let Some(e) = self.tasks.get(&t) else {
                continue;
            };
            if e.phase != Phase::Fetching {
                continue;
            }
            let wk = e.wire_key;
            self.drop_task(t);
            self.outbox.push(report(wk));
        }
    }

    /// A dependency arrived (or exists) but cannot be used: the tasks waiting for it fail
    /// with `why` rather than asking for it again.
    pub fn fetch_error(&mut self, key: Key, wire_key: &WireKey, why: String) {
        self.drop_waiting(key, |wk| FromWorker::Erred {
            key: wk,
            error: oxidask_protocol::WireError {
                key: Some(wk),
                op: String::new(),
                kind: oxidask_protocol::ErrorKind::Unavailable,
                message: format!("{wk} could not run: {why}"),
                causes: vec![format!("dependency {wire_key}")],
                detail: None,
            },
        });
    }

    /// Removes a task that has not started, releasing what it read.
    pub fn drop_task(&mut self, t: Key) {
        let Some(e) = self.tasks.remove(&t) else {
            return;
        };
        for d in e.deps {
            if let Some(f) = self.fetching.get_mut(&d) {
                f.waiting.retain(|x| *x != t);
                continue;
            }
            self.release_reader(d);
        }
    }

    /// One reader of `d` is done.
    pub fn release_reader(&mut self, d: Key) {
        if let Some(s) = self.data.get_mut(&d) {
            s.readers = s.readers.saturating_sub(1);
            if s.readers == 0 && !s.owned {
                self.remove_value(d);
            }
        }
    }

    /// The next ready task, highest priority first, skipping entries of dropped tasks.
    pub fn pop_ready(&mut self) -> Option<Key> {
        while let Some(Reverse((_, _, k))) = self.ready.pop() {
            if let Some(e) = self.tasks.get_mut(&k) {
                if e.phase == Phase::Ready {
                    e.phase = Phase::Executing;
                    self.executing += 1;
                    return Some(k);
                }
            }
        }
        None
    }

    /// Stores a result computed here.
    pub fn finish(&mut self, key: Key, value: Value, run: Run) {
        self.totals.finished += 1;
        self.executing = self.executing.saturating_sub(1);
        let Some(e) = self.tasks.remove(&key) else {
            return;
        };
        for &d in &e.deps {
            self.release_reader(d);
        }
        if e.cancelled {
            return;
        }
        let nbytes = value.nbytes() as u64;
        let type_name = value.type_name().to_owned();
        self.store(key, value, true);
        // What fed the task (transfers, reads from disk) goes first.
        if !self.activity.is_empty() {
            let activity = std::mem::take(&mut self.activity);
            self.outbox.push(FromWorker::Activity { activity });
        }
        self.outbox.push(FromWorker::Finished {
            key: e.wire_key,
            type_name,
            nbytes,
            duration_us: run.duration_us,
            start_us: run.start_us,
            thread: run.thread,
        });
    }

    /// A task failed.
    pub fn fail(&mut self, key: Key, error: oxidask_protocol::WireError) {
        self.totals.failed += 1;
        self.executing = self.executing.saturating_sub(1);
        let Some(e) = self.tasks.remove(&key) else {
            return;
        };
        for &d in &e.deps {
            self.release_reader(d);
        }
        if !e.cancelled {
            self.outbox.push(FromWorker::Erred {
                key: e.wire_key,
                error,
            });
        }
    }

    /// Holds `value` under `key`; `owned` if the scheduler counts this worker as its holder.
    pub fn store(&mut self, key: Key, value: Value, owned: bool) {
        let nbytes = value.nbytes() as u64;
        match self.data.get_mut(&key) {
            Some(s) => s.owned |= owned,
            None => self.insert_value(key, value, nbytes, owned, 0),
        }
    }

    /// The scheduler says: drop these.
    pub fn free(&mut self, key: Key) {
        if let Some(e) = self.tasks.get_mut(&key) {
            match e.phase {
                Phase::Executing => e.cancelled = true,
                _ => self.drop_task(key),
            }
        }
        if let Some(s) = self.data.get_mut(&key) {
            s.owned = false;
            if s.readers == 0 {
                self.remove_value(key);
            }
        }
    }

    /// The worker registered with a (restarted) scheduler that knows none of its tasks:
    /// tasks not started are dropped, running ones' results will be discarded, and the
    /// results it holds are returned (key, type name, size) to report to the scheduler.
    pub fn reset_for_new_scheduler(&mut self) -> Vec<(WireKey, String, u64)> {
        let keys: Vec<Key> = self.tasks.keys().copied().collect();
        for k in keys {
            match self.tasks.get(&k).map(|e| e.phase) {
                Some(Phase::Executing) => {
                    if let Some(e) = self.tasks.get_mut(&k) {
                        e.cancelled = true;
                    }
                }
                Some(_) => self.drop_task(k),
                None => {}
            }
        }
        self.fetching.clear();
        self.ready.clear();
        let mut held: Vec<(WireKey, String, u64)> = self
            .data
            .iter()
            .filter(|(_, s)| s.owned)
            .map(|(k, s)| (WireKey::from(k), s.type_name().to_owned(), s.nbytes))
            .collect();
        held.sort_by_key(|(k, _, _)| *k);
        held
    }

    /// The scheduler asks for a task back; true if it had not started.
    pub fn steal(&mut self, key: Key) -> bool {
        match self.tasks.get(&key).map(|e| e.phase) {
            Some(Phase::Executing) => false,
            Some(_) => {
                self.drop_task(key);
                true
            }
            None => !self.data.get(&key).is_some_and(|s| s.owned),
        }
    }

    /// Holds a new value in memory, then spills if memory passed its target.
    fn insert_value(&mut self, key: Key, value: Value, nbytes: u64, owned: bool, readers: u32) {
        self.seq += 1;
        self.memory += nbytes;
        self.data.insert(
            key,
            Stored {
                slot: Slot::Memory(value),
                used: self.seq,
                nbytes,
                owned,
                readers,
            },
        );
        self.maybe_spill(Some(key));
    }

    /// Forgets a value, in memory or on disk.
    fn remove_value(&mut self, key: Key) {
        if let Some(s) = self.data.remove(&key) {
            match s.slot {
                Slot::Memory(_) => self.memory = self.memory.saturating_sub(s.nbytes),
                Slot::Disk { path, .. } => {
                    let _ = std::fs::remove_file(path);
                    self.spilled_now = self.spilled_now.saturating_sub(s.nbytes);
                }
            }
        }
    }

    /// The value of `key`, read back from disk if it was spilled (then it is in memory again).
    pub fn value(&mut self, key: &Key) -> Option<Result<Value, String>> {
        self.seq += 1;
        let seq = self.seq;
        let s = self.data.get_mut(key)?;
        s.used = seq;
        let (path, type_name) = match &s.slot {
            Slot::Memory(v) => return Some(Ok(v.clone())),
            Slot::Disk { path, type_name } => (path.clone(), type_name.clone()),
        };
        let started = now_us();
        let loaded = std::fs::read(&path)
            .map_err(|e| format!("{}: {e}", path.display()))
            .and_then(|bytes| read_spilled(&type_name, bytes::Bytes::from(bytes)));
        let v = match loaded {
            Ok(v) => v,
            Err(e) => {
                return Some(Err(format!(
                    "the spilled value of {key} could not be read back: {e}"
                )))
            }
        };
        let _ = std::fs::remove_file(&path);
        s.slot = Slot::Memory(v.clone());
        let nbytes = s.nbytes;
        self.spilled_now = self.spilled_now.saturating_sub(nbytes);
        self.memory += nbytes;
        self.record(ActivityKind::SpillIn, started, nbytes, 1);
        self.maybe_spill(Some(*key));
        Some(Ok(v))
    }

    /// Results in memory that could go to disk (not `keep`, with a codec).
    fn spill_candidates(&self, keep: Option<Key>) -> Vec<crate::memory::SpillCandidate<Key>> {
        self.data
            .iter()
            .filter(|(k, s)| {
                Some(**k) != keep && matches!(&s.slot, Slot::Memory(v) if v.is_encodable())
            })
            .map(|(k, s)| crate::memory::SpillCandidate {
                key: *k,
                used: s.used,
                wanted: s.readers > 0,
                nbytes: s.nbytes,
            })
            .collect()
    }

    /// The memory monitor's spill, part 1 (under the lock): picks results worth `bytes`,
    /// least recently used first, and names their files. The values are written outside the
    /// lock, then [`WorkerState::spill_done`] moves each that did not change meanwhile.
    pub fn spill_pick(&mut self, bytes: u64) -> Vec<SpillJob> {
        let Some(dir) = self.spill.as_ref().map(|s| s.dir.clone()) else {
            return Vec::new();
        };
        let picks = crate::memory::spill_order(self.spill_candidates(None), bytes);
        let mut jobs = Vec::with_capacity(picks.len());
        for k in picks {
            let s = &self.data[&k];
            let Slot::Memory(v) = &s.slot else { continue };
            let spill = self.spill.as_mut().expect("checked");
            spill.files += 1;
            jobs.push(SpillJob {
                key: k,
                used: s.used,
                value: v.clone(),
                path: dir.join(format!("{}.spill", spill.files)),
            });
        }
        jobs
    }

    /// The memory monitor's spill, part 2: `job`'s file is written; the value goes to disk
    /// unless it was used, spilled or dropped while the file was written (then the file goes).
    pub fn spill_done(&mut self, job: SpillJob) -> Option<u64> {
        let unchanged = self
            .data
            .get(&job.key)
            .is_some_and(|s| s.used == job.used && matches!(s.slot, Slot::Memory(_)));
        if !unchanged {
            let _ = std::fs::remove_file(&job.path);
            return None;
        }
        let s = self.data.get_mut(&job.key).expect("checked");
        s.slot = Slot::Disk {
            path: job.path,
            type_name: job.value.type_name().to_owned(),
        };
        let n = s.nbytes;
        self.memory = self.memory.saturating_sub(n);
        self.spilled_now += n;
        self.spilled_total += n;
        Some(n)
    }

    /// Spills least recently used values (those no local task waits for first) until memory
    /// is back under the target; `keep` stays in memory.
    pub fn maybe_spill(&mut self, keep: Option<Key>) {
        let Some(target) = self.spill.as_ref().map(|s| s.target) else {
            return;
        };
        if self.memory <= target {
            return;
        }
        let candidates = self.spill_candidates(keep);
        let excess = self.memory - target;
        let candidates = crate::memory::spill_order(candidates, excess);
        let started = now_us();
        let (mut written, mut count) = (0u64, 0u32);
        for k in candidates {
            if self.memory <= target {
                break;
            }
            let Some(spill) = self.spill.as_mut() else {
                return;
            };
            let s = self.data.get_mut(&k).expect("listed");
            let Slot::Memory(v) = &s.slot else {
                continue;
            };
            let Ok(parts) = v.encode_parts() else {
                continue;
            };
            let buf = spill_file(&parts);
            spill.files += 1;
            let path = spill.dir.join(format!("{}.spill", spill.files));
            if std::fs::write(&path, &buf).is_err() {
                // A full or missing disk: keep values in memory rather than lose them.
                let _ = std::fs::remove_file(&path);
                return;
            }
            let type_name = v.type_name().to_owned();
            s.slot = Slot::Disk { path, type_name };
            self.memory = self.memory.saturating_sub(s.nbytes);
            self.spilled_now += s.nbytes;
            self.spilled_total += s.nbytes;
            written += s.nbytes;
            count += 1;
        }
        if count > 0 {
            self.record(ActivityKind::SpillOut, started, written, count);
        }
    }
}

/// A value the memory monitor writes to disk outside the worker's lock.
pub(crate) struct SpillJob {
    pub key: Key,
    /// Its use counter when picked (a later use cancels the move).
    pub used: u64,
    pub value: Value,
    pub path: std::path::PathBuf,
}

impl SpillJob {
    /// Encodes and writes the value's file (no lock held).
    pub fn write(&self) -> Result<(), String> {
        let parts = self.value.encode_parts().map_err(|e| e.to_string())?;
        std::fs::write(&self.path, spill_file(&parts)).map_err(|e| {
            let _ = std::fs::remove_file(&self.path);
            format!("{}: {e}", self.path.display())
        })
    }
}

/// A spill file: `u32 n_buffers | u64 head_len | n × u64 buffer_len | head | buffers`.
fn spill_file(parts: &oxidask_core::Encoded) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + 8 * parts.buffers.len() + parts.len());
    out.extend_from_slice(&(parts.buffers.len() as u32).to_le_bytes());
    out.extend_from_slice(&(parts.head.len() as u64).to_le_bytes());
    for b in &parts.buffers {
        out.extend_from_slice(&(b.len() as u64).to_le_bytes());
    }
    out.extend_from_slice(&parts.head);
    for b in &parts.buffers {
        out.extend_from_slice(b);
    }
    out
}

/// Decodes what [`spill_file`] wrote; buffers are slices of the file's bytes.
fn read_spilled(type_name: &str, file: bytes::Bytes) -> Result<Value, String> {
    let bad = || "the spill file is truncated or corrupt".to_owned();
    let u64_at = |at: usize| -> Result<usize, String> {
        file.get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
            .ok_or_else(bad)
    };
    let n = file
        .get(..4)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
        .ok_or_else(bad)?;
    let head_len = u64_at(4)?;
    let mut at = 12 + 8 * n;
    let head = file
        .get(at..at.checked_add(head_len).ok_or_else(bad)?)
        .ok_or_else(bad)?;
    at += head_len;
    let mut buffers = Vec::with_capacity(n.min(1024));
    for i in 0..n {
        let len = u64_at(12 + 8 * i)?;
        let end = at
            .checked_add(len)
            .filter(|&e| e <= file.len())
            .ok_or_else(bad)?;
        buffers.push(file.slice(at..end));
        at = end;
    }
    oxidask_core::codecs::decode_parts(type_name, head, buffers).map_err(|e| e.to_string())
}

#[cfg(test)]
mod spill_format_tests {
    use super::*;

    #[test]
    fn spill_files_round_trip_and_refuse_truncation() {
        let v = Value::new(vec![1.5f64, 2.5]);
        let file = spill_file(&v.encode_parts().unwrap());
        let back = read_spilled(v.type_name(), bytes::Bytes::from(file.clone())).unwrap();
        assert_eq!(back.downcast_ref::<Vec<f64>>(), Some(&vec![1.5, 2.5]));
        for cut in 0..file.len() {
            assert!(
                read_spilled(v.type_name(), bytes::Bytes::copy_from_slice(&file[..cut])).is_err()
            );
        }
    }
}
