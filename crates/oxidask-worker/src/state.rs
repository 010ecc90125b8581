//! The worker's bookkeeping: tasks it was given, results it holds, dependencies it fetches.
//!
//! One mutex guards it; executor threads and the network tasks take it briefly. Every change
//! that the scheduler must hear about is pushed to the outbox, sent in batches by the writer.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use oxidask_core::{Key, Value};
use oxidask_protocol::{FromWorker, Payload, WireKey};
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

pub(crate) struct Stored {
    pub value: Value,
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
}

/// A fetch the network side must start: `key` from `addresses`.
pub(crate) type FetchOrder = (Key, WireKey, Vec<String>);

impl WorkerState {
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
                type_name: s.value.type_name().to_owned(),
                nbytes: s.nbytes,
                duration_us: 0,
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
                if e.phase == Phase::Fetching && e.deps.contains(&key) {
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
                None => {
                    self.memory += nbytes;
                    self.data.insert(
                        key,
                        Stored {
                            value,
                            nbytes,
                            owned: false,
                            readers,
                        },
                    );
                }
            }
        }
        for (t, p) in now_ready {
            self.push_ready(t, p);
        }
    }

    /// A dependency could not be fetched from any of `tried`: its waiting tasks are dropped
    /// and the scheduler is told.
    pub fn fetch_failed(&mut self, key: Key, wire_key: &WireKey, tried: Vec<String>) {
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
            self.outbox.push(FromWorker::MissingData {
                key: wk,
                missing: *wire_key,
                tried: tried.clone(),
            });
        }
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
                let s = self.data.remove(&d).expect("present");
                self.memory = self.memory.saturating_sub(s.nbytes);
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
    pub fn finish(&mut self, key: Key, value: Value, duration_us: u64) {
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
        self.outbox.push(FromWorker::Finished {
            key: e.wire_key,
            type_name,
            nbytes,
            duration_us,
        });
    }

    /// A task failed.
    pub fn fail(&mut self, key: Key, error: oxidask_protocol::WireError) {
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
            None => {
                self.memory += nbytes;
                self.data.insert(
                    key,
                    Stored {
                        value,
                        nbytes,
                        owned,
                        readers: 0,
                    },
                );
            }
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
                let s = self.data.remove(&key).expect("present");
                self.memory = self.memory.saturating_sub(s.nbytes);
            }
        }
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
}
