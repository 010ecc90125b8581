//! The worker's bookkeeping as a pure reactor: tasks it was given, results it holds (in memory
//! or spilled), dependencies it fetches, memory decisions.
//!
//! [`WorkerState::handle`] is the only way it changes: an [`Event`] (a scheduler message, a
//! finished task, a fetch's or a disk operation's outcome, a memory sample) goes in, the
//! [`Effect`]s to carry out come back. Nothing here reads a clock (events carry the time),
//! touches a file or a socket, or starts a thread: the shell (`shell.rs`, `execute.rs`,
//! `transfer.rs`, `memory.rs`) does, and feeds the outcomes back as events. One mutex guards
//! the state; since files are written and read outside it, executor threads, heartbeats and
//! the data port never wait on a disk.
//!
//! # Invariants (checked by [`WorkerState::validate`] after every step of the simulation)
//! - `memory` is the sum of the sizes of results in memory, `spilled_now` of those on disk,
//!   `writing` of those whose spill file is being written;
//! - a result's `readers` is the number of tasks here that list it among their dependencies
//!   and are not fetching it; its `pins`, the number of such tasks an executor claimed
//!   (unspilling their inputs, ready to run with them, running): a pinned result never spills;
//! - a task fetching a dependency is in that fetch's waiting list, one unspilling a
//!   dependency in that read's list; `missing` and the unspilling count match those lists;
//! - `executing` counts tasks in [`Phase::Executing`]; while `paused`, no `Execute`,
//!   `ReadSpill` or `Fetch` effect is emitted.
//!
//! Spilling: results past the memory target (and what the memory monitor asks for) go to disk
//! least recently used first, those no local task waits for before those one does
//! ([`crate::memory::spill_order`]). The file is written outside the lock (`WriteSpill`); the
//! result moves to disk when `SpillWritten` says so, unless it was used meanwhile. A task
//! whose inputs are on disk is *unspilling*: an executor thread reads them (`ReadSpill`,
//! outside the lock) and the task becomes ready again when every read is back.
//!
//! Files: this one holds the types and the task transitions, `spill.rs` spilling, unspilling
//! and memory samples, `validate.rs` the invariants, `simulate.rs` the simulation (tests).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::PathBuf;
use std::time::Duration;

use oxidask_core::{Key, Value};
use oxidask_protocol::{Activity, ActivityKind, FromWorker, Payload, WireError, WireKey};
use rustc_hash::FxHashMap;

use crate::memory::MemoryManager;

#[cfg(test)]
mod simulate;
mod spill;
#[cfg(test)]
mod validate;

pub(crate) use spill::{read_spill, Served, SpillJob};

/// Where a task is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Fetching dependencies (`missing` of them).
    Fetching,
    /// In the ready heap.
    Ready,
    /// Claimed by an executor; waiting for `reads` of its inputs to come back from disk.
    Unspilling { reads: u32 },
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
    /// Its inputs are pinned in memory (an executor claimed it).
    pub pinned: bool,
    /// Freed by the scheduler (or forgotten with a lost one) while executing: discard the
    /// result, unless the key is assigned again before it finishes.
    pub cancelled: bool,
}

/// Where a held value is: in memory, or spilled to the worker's local directory.
pub(crate) enum Slot {
    Memory(Value),
    Disk {
        path: PathBuf,
        type_name: String,
        /// The file's size (smaller than the value's when compressed).
        file_bytes: u64,
        /// A `ReadSpill` of it is under way.
        reading: bool,
    },
}

/// Spilling: values beyond `target` bytes in memory go to files in `dir`, least recently
/// used first (Dask's `distributed.worker.memory.target`, 60% of the memory limit).
pub(crate) struct Spill {
    pub dir: PathBuf,
    pub target: u64,
    pub files: u64,
    /// Compress spill files when it pays (`spillfile.rs`).
    pub compress: bool,
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
    /// Local tasks claimed by an executor that read it: it stays in memory.
    pub pins: u32,
    /// Its spill file is being written (`used` when it was picked).
    pub writing: Option<u64>,
}

/// Ready tasks: lowest (priority, arrival) first.
pub(crate) type ReadyHeap = BinaryHeap<Reverse<((i64, u64), u64, Key)>>;

/// A dependency being fetched: the tasks waiting for it.
pub(crate) struct Fetch {
    pub waiting: Vec<Key>,
}

/// Microseconds since the Unix epoch: the task stream's clock (read by the shell only).
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

/// A fetch the network side must start: `key` from `addresses`.
pub(crate) type FetchOrder = (Key, WireKey, Vec<String>);

/// A task an executor thread runs with its inputs.
pub(crate) struct Execution {
    pub key: Key,
    pub spec: Payload,
    pub deps: Vec<(Key, Value)>,
}

/// What happened: everything that changes the worker's state.
pub(crate) enum Event {
    /// The scheduler assigns a task (`who_has`: where its missing inputs are).
    Compute {
        key: Key,
        wire_key: WireKey,
        spec: Payload,
        deps: Vec<(Key, WireKey)>,
        who_has: FxHashMap<Key, Vec<String>>,
        priority: (i64, u64),
    },
    /// The scheduler releases `key` (a task here, a result held here, or both).
    Free { key: Key },
    /// The scheduler asks for a task back.
    Steal { wire_key: WireKey },
    /// Values the scheduler (a client's scatter) gives this worker to hold.
    Store { values: Vec<(WireKey, Key, Value)> },
    /// A result the scheduler asked this worker to hold arrived (`acquire`).
    Acquired { key: Key, value: Value },
    /// A dependency arrived from a peer.
    Fetched { key: Key, value: Value },
    /// No holder had the dependency.
    FetchFailed {
        key: Key,
        wire_key: WireKey,
        tried: Vec<String>,
    },
    /// The dependency exists but cannot be used here: its waiting tasks fail with `why`.
    FetchUnusable {
        key: Key,
        wire_key: WireKey,
        why: String,
    },
    /// An executor thread has a free slot and asks for work.
    ThreadFree,
    /// A task ran to a result.
    TaskFinished { key: Key, value: Value, run: Run },
    /// A task failed.
    TaskFailed { key: Key, error: WireError },
    /// A `WriteSpill` ended (`Ok(bytes on disk)`), having started at `started_us`.
    SpillWritten {
        key: Key,
        used: u64,
        path: PathBuf,
        outcome: Result<u64, String>,
        started_us: u64,
    },
    /// A `ReadSpill` ended, having started at `started_us`.
    UnspillRead {
        key: Key,
        path: PathBuf,
        outcome: Result<Value, String>,
        started_us: u64,
    },
    /// The memory monitor measured the process's resident memory (`at`: since it started).
    MemorySample { rss: u64, at: Duration },
    /// The worker registered with a (restarted) scheduler that knows none of its tasks.
    NewScheduler,
}

/// What the shell must do.
pub(crate) enum Effect {
    /// Queue this message for the scheduler.
    Send(FromWorker),
    /// Fetch a dependency from its holders.
    Fetch(FetchOrder),
    /// Run this task (only ever returned for a [`Event::ThreadFree`]).
    Execute(Execution),
    /// Write this value's spill file, then report [`Event::SpillWritten`].
    WriteSpill(SpillJob),
    /// Read this spill file, then report [`Event::UnspillRead`] (only ever returned for a
    /// [`Event::ThreadFree`]: the executor thread that asked reads it).
    ReadSpill {
        key: Key,
        path: PathBuf,
        type_name: String,
    },
    /// Delete a spill file nothing refers to any more.
    RemoveFile(PathBuf),
    /// Tasks became ready: wake executor threads.
    WakeExecutors,
    /// The memory monitor paused (true) or resumed (false) the worker.
    Paused(bool),
    /// The process is past the terminate threshold.
    Terminate,
    /// Ask the allocator to return freed memory to the system, after this batch's spill
    /// files are written ([`crate::memory::MemoryAction::ReleaseFreed`]).
    ReleaseFreedMemory,
    /// Log this line (`warn`: at WARN level).
    Log { warn: bool, line: String },
}

#[derive(Default)]
pub(crate) struct WorkerState {
    pub tasks: FxHashMap<Key, TaskEntry>,
    pub data: FxHashMap<Key, Stored>,
    pub ready: ReadyHeap,
    pub fetching: FxHashMap<Key, Fetch>,
    /// Spilled results being read back, and the claimed tasks waiting for them.
    pub unspilling: FxHashMap<Key, Vec<Key>>,
    pub seq: u64,
    pub memory: u64,
    /// Bytes of in-memory results whose spill file is being written.
    pub writing: u64,
    pub executing: u32,
    pub outbox: Vec<FromWorker>,
    /// The shell's executor-thread accounting (not the reactor's): tasks running that hold a
    /// thread slot (not seceded), threads waiting for work, threads alive.
    pub active: usize,
    pub idle_threads: usize,
    pub threads: usize,
    /// Set when the worker stops.
    pub stopping: bool,
    /// Where values spill when memory passes its target (none without a memory limit).
    pub spill: Option<Spill>,
    /// Bytes on disk now (as held in memory), and ever spilled.
    pub spilled_now: u64,
    pub spilled_total: u64,
    /// Bytes of spill files on disk now (compressed where it paid).
    pub spilled_file_bytes: u64,
    /// Transfers and spills since the last heartbeat (for the task stream).
    pub activity: Vec<Activity>,
    /// Counts since the start (for `/metrics`).
    pub totals: crate::metrics::Totals,
    /// Paused by the memory monitor: no task starts, no fetch begins.
    pub paused: bool,
    /// Fetches held back while paused.
    pub deferred: Vec<FetchOrder>,
    /// The memory monitor's decisions (a worker that owns its process, with a limit).
    pub monitor: Option<MemoryManager>,
    /// The time of the event being handled (µs since the epoch).
    now: u64,
    /// Effects of the event being handled.
    effects: Vec<Effect>,
}

/// Activity records kept between heartbeats, at most (older ones are dropped).
const ACTIVITY_CAP: usize = 1_000;

impl Stored {
    /// The held value's type name.
    pub fn type_name(&self) -> &str {
        match &self.slot {
            Slot::Memory(v) => v.type_name(),
            Slot::Disk { type_name, .. } => type_name,
        }
    }
}

impl WorkerState {
    /// The only way the state changes (besides the shell's thread counts): applies `event`
    /// at `now_us` (µs since the epoch) and returns what to do. No I/O, no clock.
    pub fn handle(&mut self, event: Event, now_us: u64) -> Vec<Effect> {
        self.now = now_us.max(self.now);
        match event {
            Event::Compute {
                key,
                wire_key,
                spec,
                deps,
                who_has,
                priority,
            } => self.add_task(key, wire_key, spec, deps, &who_has, priority),
            Event::Free { key } => self.free(key),
            Event::Steal { wire_key } => {
                let given_back = wire_key.to_key().is_ok_and(|k| self.steal(k));
                self.send(FromWorker::StealResponse {
                    key: wire_key,
                    given_back,
                });
            }
            Event::Store { values } => {
                let mut stored = Vec::with_capacity(values.len());
                for (wk, k, v) in values {
                    stored.push((wk, v.type_name().to_owned(), v.nbytes() as u64));
                    self.store(k, v, true);
                }
                self.send(FromWorker::Stored { keys: stored });
            }
            Event::Acquired { key, value } => self.store(key, value, true),
            Event::Fetched { key, value } => self.fetched(key, value),
            Event::FetchFailed {
                key,
                wire_key,
                tried,
            } => self.drop_waiting(key, |wk| FromWorker::MissingData {
                key: wk,
                missing: wire_key,
                tried: tried.clone(),
            }),
            Event::FetchUnusable { key, wire_key, why } => {
                self.drop_waiting(key, |wk| FromWorker::Erred {
                    key: wk,
                    error: WireError {
                        key: Some(wk),
                        op: String::new(),
                        kind: oxidask_protocol::ErrorKind::Unavailable,
                        message: format!("{wk} could not run: {why}"),
                        causes: vec![format!("dependency {wire_key}")],
                        detail: None,
                    },
                })
            }
            Event::ThreadFree => self.next_task(),
            Event::TaskFinished { key, value, run } => self.finish(key, value, run),
            Event::TaskFailed { key, error } => self.fail(key, error),
            Event::SpillWritten {
                key,
                used,
                path,
                outcome,
                started_us,
            } => self.spill_written(key, used, path, outcome, started_us),
            Event::UnspillRead {
                key,
                path,
                outcome,
                started_us,
            } => self.unspill_read(key, path, outcome, started_us),
            Event::MemorySample { rss, at } => self.memory_sample(rss, at),
            Event::NewScheduler => self.reset_for_new_scheduler(),
        }
        std::mem::take(&mut self.effects)
    }

    fn send(&mut self, msg: FromWorker) {
        self.effects.push(Effect::Send(msg));
    }

    /// Records a transfer or a spill for the next heartbeat (or the next result, if sooner).
    pub fn record(&mut self, kind: ActivityKind, start_us: u64, stop_us: u64, nbytes: u64, n: u32) {
        if self.activity.len() >= ACTIVITY_CAP {
            self.activity.remove(0);
        }
        let stop_us = stop_us.max(start_us);
        self.totals
            .add(kind, nbytes, (stop_us - start_us) as f64 / 1e6);
        self.activity.push(Activity {
            kind,
            start_us,
            stop_us,
            nbytes,
            count: n,
        });
    }

    fn add_task(
        &mut self,
        key: Key,
        wire_key: WireKey,
        spec: Payload,
        deps: Vec<(Key, WireKey)>,
        who_has: &FxHashMap<Key, Vec<String>>,
        priority: (i64, u64),
    ) {
        if let Some(e) = self.tasks.get_mut(&key) {
            // Assigned again while it runs after a free, or after a new scheduler registered
            // this worker: its result is wanted again (Dask: cancelled -> executing). A task
            // not cancelled is a repeated assignment, already under way.
            if e.cancelled {
                e.cancelled = false;
                e.wire_key = wire_key;
                e.priority = priority;
            }
            return;
        }
        if let Some(s) = self.data.get(&key).filter(|s| s.owned) {
            // Already computed here (a repeated assignment): report it again.
            let msg = FromWorker::Finished {
                key: wire_key,
                type_name: s.type_name().to_owned(),
                nbytes: s.nbytes,
                duration_us: 0,
                start_us: self.now,
                thread: 0,
            };
            self.send(msg);
            return;
        }
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
                    let order = (d, wd, who_has.get(&d).cloned().unwrap_or_default());
                    if self.paused {
                        self.deferred.push(order);
                    } else {
                        self.effects.push(Effect::Fetch(order));
                    }
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
                pinned: false,
                cancelled: false,
            },
        );
        if missing == 0 {
            self.push_ready(key, priority);
        }
    }

    fn push_ready(&mut self, key: Key, priority: (i64, u64)) {
        self.seq += 1;
        self.ready.push(Reverse((priority, self.seq, key)));
        if !matches!(self.effects.last(), Some(Effect::WakeExecutors)) {
            self.effects.push(Effect::WakeExecutors);
        }
    }

    fn fetched(&mut self, key: Key, value: Value) {
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

    /// Drops the tasks still fetching `key` and reports each with `report(its key)`.
    fn drop_waiting(&mut self, key: Key, mut report: impl FnMut(WireKey) -> FromWorker) {
        // The entry stays while its tasks go, so that they are not taken for readers of
        // `key` (which may be held meanwhile, scattered here).
        let Some(waiting) = self.fetching.get(&key).map(|f| f.waiting.clone()) else {
            return;
        };
        for t in waiting {
            let Some(e) = self.tasks.get(&t) else {
                continue;
            };
            if e.phase != Phase::Fetching {
                continue;
            }
            let wk = e.wire_key;
            self.drop_task(t);
            self.send(report(wk));
        }
        self.fetching.remove(&key);
    }

    /// Removes a task that is not running, releasing what it read.
    fn drop_task(&mut self, t: Key) {
        let Some(e) = self.tasks.remove(&t) else {
            return;
        };
        self.release_inputs(t, &e);
    }

    /// A task left (dropped, finished, failed): its inputs lose a reader (and a pin).
    fn release_inputs(&mut self, t: Key, e: &TaskEntry) {
        for &d in &e.deps {
            // One entry per listing: a task may read the same input twice.
            if e.phase == Phase::Fetching {
                if let Some(f) = self.fetching.get_mut(&d) {
                    if let Some(i) = f.waiting.iter().position(|x| *x == t) {
                        f.waiting.swap_remove(i);
                        continue;
                    }
                }
            }
            if let Some(w) = self.unspilling.get_mut(&d) {
                if let Some(i) = w.iter().position(|x| *x == t) {
                    w.swap_remove(i);
                }
            }
            if let Some(s) = self.data.get_mut(&d) {
                if e.pinned {
                    s.pins -= 1;
                }
                s.readers = s.readers.saturating_sub(1);
                if s.readers == 0 && !s.owned {
                    self.remove_value(d);
                }
            }
        }
    }

    /// An executor asks for work: the most urgent ready task, with its inputs if they are all
    /// in memory; otherwise the task waits for the reads of its spilled inputs, which this
    /// executor makes. Nothing while paused.
    fn next_task(&mut self) {
        if self.paused || self.stopping {
            return;
        }
        while let Some(Reverse((_, _, k))) = self.ready.pop() {
            let Some(e) = self.tasks.get_mut(&k) else {
                continue;
            };
            if e.phase != Phase::Ready {
                continue;
            }
            let pin = !e.pinned;
            e.pinned = true;
            let deps = e.deps.clone();
            let mut reads = Vec::new();
            let mut values = Vec::with_capacity(deps.len());
            self.seq += 1;
            for &d in &deps {
                let s = self
                    .data
                    .get_mut(&d)
                    .expect("a ready task's inputs are held");
                if pin {
                    s.pins += 1;
                }
                match &mut s.slot {
                    Slot::Memory(v) => {
                        s.used = self.seq;
                        values.push((d, v.clone()));
                    }
                    Slot::Disk {
                        path,
                        type_name,
                        reading,
                        ..
                    } => {
                        if !*reading {
                            *reading = true;
                            reads.push(Effect::ReadSpill {
                                key: d,
                                path: path.clone(),
                                type_name: type_name.clone(),
                            });
                        }
                        self.unspilling.entry(d).or_default().push(k);
                    }
                }
            }
            let e = self.tasks.get_mut(&k).expect("checked");
            let waiting = deps
                .iter()
                .filter(|d| self.unspilling.get(d).is_some_and(|w| w.contains(&k)))
                .count() as u32;
            if waiting > 0 {
                e.phase = Phase::Unspilling { reads: waiting };
                self.effects.extend(reads);
                return;
            }
            e.phase = Phase::Executing;
            self.executing += 1;
            let exe = Execution {
                key: k,
                spec: e.spec.clone(),
                deps: values,
            };
            self.effects.push(Effect::Execute(exe));
            return;
        }
    }

    fn finish(&mut self, key: Key, value: Value, run: Run) {
        self.totals.finished += 1;
        let Some(e) = self.tasks.remove(&key) else {
            return;
        };
        self.executing -= 1;
        self.release_inputs(key, &e);
        if e.cancelled {
            return;
        }
        let nbytes = value.nbytes() as u64;
        let type_name = value.type_name().to_owned();
        self.store(key, value, true);
        // What fed the task (transfers, reads from disk) goes first.
        if !self.activity.is_empty() {
            let activity = std::mem::take(&mut self.activity);
            self.send(FromWorker::Activity { activity });
        }
        self.send(FromWorker::Finished {
            key: e.wire_key,
            type_name,
            nbytes,
            duration_us: run.duration_us,
            start_us: run.start_us,
            thread: run.thread,
        });
    }

    fn fail(&mut self, key: Key, error: WireError) {
        self.totals.failed += 1;
        let Some(e) = self.tasks.remove(&key) else {
            return;
        };
        if e.phase == Phase::Executing {
            self.executing -= 1;
        }
        self.release_inputs(key, &e);
        if !e.cancelled {
            self.send(FromWorker::Erred {
                key: e.wire_key,
                error,
            });
        }
    }

    /// Holds `value` under `key`; `owned` if the scheduler counts this worker as its holder.
    fn store(&mut self, key: Key, value: Value, owned: bool) {
        let nbytes = value.nbytes() as u64;
        match self.data.get_mut(&key) {
            Some(s) => s.owned |= owned,
            None => self.insert_value(key, value, nbytes, owned, 0),
        }
    }

    fn free(&mut self, key: Key) {
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

    /// Tasks not started are dropped, running ones' results will be discarded (unless the
    /// new scheduler assigns the same key before they finish: `add_task` takes them back),
    /// and the results it holds are reported (key, type name, size).
    fn reset_for_new_scheduler(&mut self) {
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
        // Fetches under way may still arrive: nothing waits for them now.
        self.fetching.clear();
        self.ready.clear();
        self.deferred.clear();
        let mut held: Vec<(WireKey, String, u64)> = self
            .data
            .iter()
            .filter(|(_, s)| s.owned)
            .map(|(k, s)| (WireKey::from(k), s.type_name().to_owned(), s.nbytes))
            .collect();
        held.sort_by_key(|(k, _, _)| *k);
        if !held.is_empty() {
            self.send(FromWorker::Holding { keys: held });
        }
    }

    /// True if the task had not started (it is dropped).
    fn steal(&mut self, key: Key) -> bool {
        match self.tasks.get(&key).map(|e| e.phase) {
            Some(Phase::Executing) => false,
            Some(_) => {
                self.drop_task(key);
                true
            }
            None => !self.data.get(&key).is_some_and(|s| s.owned),
        }
    }
}
