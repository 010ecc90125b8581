//! A simulation of the worker's reactor ([`WorkerState::handle`]) without threads, sockets,
//! files or sleeps: a seeded random walk issues scheduler messages, runs and finishes tasks,
//! answers fetches and disk operations out of order (and sometimes with failures), races
//! frees and steals with execution, and samples memory across the target, spill, pause and
//! terminate thresholds on a simulated clock. After every step it checks
//! [`WorkerState::validate`] and what the effects may and may not say.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use oxidask_core::{Key, Token, Value};
use oxidask_protocol::{FromWorker, Payload, WireError, WireKey};
use rustc_hash::FxHashMap;

use super::{Effect, Event, FetchOrder, Phase, Run, Slot, Spill, SpillJob, WorkerState};
use crate::memory::{MemoryManager, Thresholds};

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn take<T>(&mut self, xs: &mut Vec<T>) -> Option<T> {
        (!xs.is_empty()).then(|| xs.swap_remove(self.below(xs.len() as u64) as usize))
    }
}

const KEYS: u128 = 48;
const LIMIT: u64 = 20_000;

fn key(i: u128) -> Key {
    Key::new("sim", Token::from_u128(i + 1))
}

fn value(i: u64, len: usize) -> Value {
    Value::new(vec![i as f64; len])
}

/// The world around the state: what the shell would be doing.
struct Sim {
    st: WorkerState,
    rng: Rng,
    now_us: u64,
    at: Duration,
    /// Fetches in flight.
    fetches: Vec<FetchOrder>,
    /// Tasks running, and those freed while running (their results must be discarded).
    running: Vec<Key>,
    cancelled: BTreeSet<Key>,
    /// Keys assigned (`Compute`) and not answered yet (finished, failed, missing data, given
    /// back), freed, or forgotten with the scheduler: the scheduler waits for each of them.
    owed: BTreeSet<Key>,
    writes: Vec<SpillJob>,
    reads: Vec<(Key, PathBuf)>,
    /// The simulated spill directory.
    files: BTreeMap<PathBuf, Value>,
    steps: u64,
    stats: BTreeMap<&'static str, u64>,
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut st = spilling((LIMIT as f64 * 0.6) as u64);
        st.monitor = Some(MemoryManager::new(LIMIT, Thresholds::default()));
        Sim {
            st,
            rng: Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
            now_us: 1_000_000,
            at: Duration::ZERO,
            fetches: Vec::new(),
            running: Vec::new(),
            cancelled: BTreeSet::new(),
            owed: BTreeSet::new(),
            writes: Vec::new(),
            reads: Vec::new(),
            files: BTreeMap::new(),
            steps: 0,
            stats: BTreeMap::new(),
        }
    }

    fn count(&mut self, what: &'static str) {
        *self.stats.entry(what).or_default() += 1;
    }

    /// Handles one event, checks everything, and takes its effects on board.
    fn step(&mut self, event: Event) {
        self.steps += 1;
        self.now_us += 1 + self.rng.below(1000);
        let seq_before = self.st.seq;
        let finishing = match &event {
            Event::TaskFinished { key, .. } | Event::TaskFailed { key, .. } => Some(*key),
            _ => None,
        };
        match &event {
            Event::Compute { key, .. } => {
                self.owed.insert(*key);
            }
            Event::Free { key } => {
                self.owed.remove(key);
            }
            Event::NewScheduler => self.owed.clear(),
            _ => {}
        }
        let effects = self.st.handle(event, self.now_us);
        if let Err(e) = self.st.validate() {
            panic!("step {}: {e}", self.steps);
        }
        self.check_effects(&effects, seq_before, finishing);
        for e in &effects {
            let answered = match e {
                Effect::Send(FromWorker::Finished { key, .. })
                | Effect::Send(FromWorker::Erred { key, .. })
                | Effect::Send(FromWorker::MissingData { key, .. })
                | Effect::Send(FromWorker::StealResponse {
                    key,
                    given_back: true,
                }) => key.to_key().ok(),
                _ => None,
            };
            if let Some(k) = answered {
                self.owed.remove(&k);
            }
        }
        for e in effects {
            match e {
                Effect::Send(_)
                | Effect::WakeExecutors
                | Effect::Paused(_)
                | Effect::Log { .. }
                | Effect::ReleaseFreedMemory => {}
                Effect::Terminate => panic!("the walk stays under the terminate threshold"),
                Effect::Fetch(order) => self.fetches.push(order),
                Effect::Execute(x) => {
                    self.count("execute");
                    // The task runs with its inputs' values.
                    let e = &self.st.tasks[&x.key];
                    assert_eq!(x.deps.len(), e.deps.len());
                    for (d, v) in &x.deps {
                        let s = &self.st.data[d];
                        assert_eq!(v.nbytes() as u64, s.nbytes, "input {d} of {}", x.key);
                    }
                    self.running.push(x.key);
                }
                Effect::WriteSpill(job) => {
                    self.count("write");
                    self.writes.push(job)
                }
                Effect::ReadSpill { key, path, .. } => {
                    self.count("read");
                    self.reads.push((key, path))
                }
                Effect::RemoveFile(path) => {
                    assert!(self.files.remove(&path).is_some(), "removed {path:?} twice");
                }
            }
        }
        // The spill directory holds exactly the files of spilled results.
        let disk: BTreeSet<&PathBuf> = self
            .st
            .data
            .values()
            .filter_map(|s| match &s.slot {
                Slot::Disk { path, .. } => Some(path),
                Slot::Memory(_) => None,
            })
            .collect();
        let files: BTreeSet<&PathBuf> = self.files.keys().collect();
        assert_eq!(disk, files, "step {}: spilled results vs files", self.steps);
    }

    fn check_effects(&mut self, effects: &[Effect], seq_before: u64, finishing: Option<Key>) {
        let st = &self.st;
        let mut picks = Vec::new();
        for e in effects {
            match e {
                Effect::Execute(x) => {
                    assert!(!st.paused, "a task started while paused");
                    assert_eq!(st.tasks[&x.key].phase, Phase::Executing);
                }
                Effect::ReadSpill { key, .. } => {
                    assert!(!st.paused, "a spill was read while paused");
                    assert!(
                        matches!(st.data[key].slot, Slot::Disk { reading: true, .. }),
                        "a read of {key}, which is not on disk"
                    );
                }
                Effect::Fetch((k, _, _)) => {
                    assert!(!st.paused, "a fetch began while paused");
                    assert!(st.fetching.contains_key(k), "a fetch of forgotten {k}");
                }
                Effect::WriteSpill(job) => {
                    let s = &st.data[&job.key];
                    assert_eq!(s.writing, Some(job.used));
                    assert!(s.pins == 0, "pinned {} spills", job.key);
                    picks.push((s.readers > 0, s.used, job.key));
                }
                Effect::Send(FromWorker::Finished { key, .. }) => {
                    let k = key.to_key().unwrap();
                    assert!(!self.cancelled.contains(&k), "a cancelled {k} reported");
                    assert!(
                        st.data.get(&k).is_some_and(|s| s.owned),
                        "{k} reported, not held"
                    );
                }
                Effect::Send(FromWorker::Erred { key, .. }) => {
                    let k = key.to_key().unwrap();
                    assert!(
                        !(self.cancelled.contains(&k) && finishing == Some(k)),
                        "a cancelled {k} reported as failed"
                    );
                }
                _ => {}
            }
        }
        // Least recently used first, unwanted before wanted: every result that could still
        // spill (and was not touched by this step) comes after every pick.
        if let Some(last) = picks.iter().max() {
            for c in st.spill_candidates(None) {
                if c.used > seq_before {
                    continue;
                }
                assert!(
                    (c.wanted, c.used, c.key) > *last,
                    "step {}: {} ({}, {}) stayed while {:?} spilled",
                    self.steps,
                    c.key,
                    c.wanted,
                    c.used,
                    picks
                );
            }
            self.count("spill picks checked");
        }
    }

    fn random_step(&mut self) {
        let r = self.rng.below(100);
        match r {
            0..=17 => self.compute(),
            18..=25 => {
                let k = self.some_key();
                if self.running.contains(&k) {
                    self.cancelled.insert(k);
                    self.count("free while running");
                }
                self.step(Event::Free { key: k });
            }
            26..=29 => {
                let k = self.some_key();
                if self.running.contains(&k) {
                    self.count("steal while running");
                }
                let wire_key = WireKey::from(&k);
                self.step(Event::Steal { wire_key });
            }
            30..=44 => {
                if self.running.len() < 3 {
                    self.step(Event::ThreadFree);
                }
            }
            45..=56 => {
                if let Some(k) = self.rng.take(&mut self.running) {
                    let event = if self.rng.chance(85) {
                        let len = 10 + self.rng.below(300) as usize;
                        Event::TaskFinished {
                            key: k,
                            value: value(k.token().as_u128() as u64, len),
                            run: Run::default(),
                        }
                    } else {
                        Event::TaskFailed {
                            key: k,
                            error: WireError::invalid("boom".to_owned()),
                        }
                    };
                    self.step(event);
                    self.cancelled.remove(&k);
                }
            }
            57..=66 => {
                if let Some((k, wk, tried)) = self.rng.take(&mut self.fetches) {
                    let event = match self.rng.below(10) {
                        0 => Event::FetchFailed {
                            key: k,
                            wire_key: wk,
                            tried,
                        },
                        1 => Event::FetchUnusable {
                            key: k,
                            wire_key: wk,
                            why: "unreadable".into(),
                        },
                        _ => Event::Fetched {
                            key: k,
                            value: value(7, 10 + self.rng.below(300) as usize),
                        },
                    };
                    self.step(event);
                }
            }
            67..=76 => {
                if let Some(job) = self.rng.take(&mut self.writes) {
                    let outcome = if self.rng.chance(95) {
                        self.files.insert(job.path.clone(), job.value.clone());
                        Ok(job.value.nbytes() as u64 / 2)
                    } else {
                        Err("disk full".to_owned())
                    };
                    self.step(Event::SpillWritten {
                        key: job.key,
                        used: job.used,
                        path: job.path,
                        outcome,
                        started_us: self.now_us,
                    });
                }
            }
            77..=84 => {
                if let Some((k, path)) = self.rng.take(&mut self.reads) {
                    let outcome = match self.files.get(&path) {
                        Some(v) if self.rng.chance(97) => Ok(v.clone()),
                        Some(_) => Err("corrupt".to_owned()),
                        None => Err("no such file".to_owned()),
                    };
                    self.step(Event::UnspillRead {
                        key: k,
                        path,
                        outcome,
                        started_us: self.now_us,
                    });
                }
            }
            85..=94 => {
                // Process memory: managed bytes plus unmanaged noise, crossing thresholds.
                self.at += Duration::from_millis(100);
                let managed = self.st.memory;
                let unmanaged = self.rng.below(LIMIT * 3 / 4);
                let rss = (managed + unmanaged).min(LIMIT * 94 / 100);
                let at = self.at;
                self.step(Event::MemorySample { rss, at });
                if self.st.paused {
                    self.count("paused samples");
                }
            }
            95..=97 => {
                let n = 1 + self.rng.below(3);
                let values = (0..n)
                    .map(|_| {
                        let k = key(self.rng.below(KEYS as u64) as u128);
                        (
                            WireKey::from(&k),
                            k,
                            value(3, 10 + self.rng.below(200) as usize),
                        )
                    })
                    .collect();
                self.step(Event::Store { values });
            }
            98 => {
                let k = key(self.rng.below(KEYS as u64) as u128);
                let value = value(5, 50);
                self.step(Event::Acquired { key: k, value });
            }
            _ => {
                if self.rng.chance(20) {
                    self.cancelled.extend(self.running.iter().copied());
                    self.step(Event::NewScheduler);
                }
            }
        }
    }

    /// Any key, or one running now (to race frees and steals with execution).
    fn some_key(&mut self) -> Key {
        if !self.running.is_empty() && self.rng.chance(30) {
            self.running[self.rng.below(self.running.len() as u64) as usize]
        } else {
            key(self.rng.below(KEYS as u64) as u128)
        }
    }

    fn compute(&mut self) {
        let k = self.some_key();
        if self.cancelled.remove(&k) {
            // Assigned again while it runs cancelled: its result is wanted again.
            self.count("assigned again while cancelled");
        }
        let ndeps = self.rng.below(4);
        let mut deps = Vec::new();
        let mut who_has = FxHashMap::default();
        for _ in 0..ndeps {
            let d = key(self.rng.below(KEYS as u64) as u128);
            // Now and then a task reads the same input twice.
            if d == k || (deps.iter().any(|(x, _)| *x == d) && !self.rng.chance(15)) {
                continue;
            }
            if self.rng.chance(80) {
                who_has.insert(d, vec!["peer:1".to_owned()]);
            }
            deps.push((d, WireKey::from(&d)));
        }
        let priority = (self.rng.below(5) as i64, self.rng.below(100));
        self.step(Event::Compute {
            key: k,
            wire_key: WireKey::from(&k),
            spec: Payload::default(),
            deps,
            who_has,
            priority,
        });
    }

    /// Finishes everything in flight (resuming, writing, reading, running), frees every key,
    /// and checks that nothing is left.
    fn drain(&mut self) {
        for _ in 0..100_000 {
            if self.st.paused {
                self.at += Duration::from_millis(100);
                let at = self.at;
                self.step(Event::MemorySample { rss: 0, at });
            }
            if let Some(job) = self.writes.pop() {
                self.files.insert(job.path.clone(), job.value.clone());
                self.step(Event::SpillWritten {
                    key: job.key,
                    used: job.used,
                    path: job.path,
                    outcome: Ok(1),
                    started_us: self.now_us,
                });
            } else if let Some((k, path)) = self.reads.pop() {
                let outcome = self
                    .files
                    .get(&path)
                    .cloned()
                    .ok_or_else(|| "gone".to_owned());
                self.step(Event::UnspillRead {
                    key: k,
                    path,
                    outcome,
                    started_us: self.now_us,
                });
            } else if let Some((k, _, _)) = self.fetches.pop() {
                self.step(Event::Fetched {
                    key: k,
                    value: value(1, 20),
                });
            } else if let Some(k) = self.running.pop() {
                self.step(Event::TaskFinished {
                    key: k,
                    value: value(2, 20),
                    run: Run::default(),
                });
            } else if !self.st.tasks.is_empty() {
                let before = self.st.tasks.len();
                self.step(Event::ThreadFree);
                if self.running.is_empty() && self.reads.is_empty() {
                    // Nothing could start: a task is left that no executor can take.
                    assert!(
                        self.st.tasks.len() < before,
                        "stuck: {:?}",
                        self.st
                            .tasks
                            .iter()
                            .map(|(k, e)| (*k, e.phase, e.missing, e.deps.clone()))
                            .collect::<Vec<_>>()
                    );
                }
            } else {
                break;
            }
        }
        // Every assignment still standing was answered: the scheduler waits for nothing.
        assert!(
            self.owed.is_empty(),
            "assigned, never answered: {:?}",
            self.owed
        );
        for i in 0..KEYS {
            self.step(Event::Free { key: key(i) });
        }
        for job in std::mem::take(&mut self.writes) {
            self.files.insert(job.path.clone(), job.value.clone());
            self.step(Event::SpillWritten {
                key: job.key,
                used: job.used,
                path: job.path,
                outcome: Ok(1),
                started_us: self.now_us,
            });
        }
        assert!(self.st.tasks.is_empty() && self.st.data.is_empty());
        assert_eq!(
            (self.st.memory, self.st.spilled_now, self.st.writing),
            (0, 0, 0)
        );
        assert!(self.files.is_empty(), "files left: {:?}", self.files.keys());
    }
}

#[test]
fn random_walks_keep_every_invariant() {
    let mut totals: BTreeMap<&'static str, u64> = BTreeMap::new();
    for seed in 0..12 {
        let mut sim = Sim::new(seed);
        for _ in 0..3_000 {
            sim.random_step();
        }
        sim.drain();
        for (k, v) in sim.stats {
            *totals.entry(k).or_default() += v;
        }
    }
    eprintln!("simulation: {totals:?}");
    // The walk reached what it is meant to test.
    for what in [
        "execute",
        "write",
        "read",
        "spill picks checked",
        "free while running",
        "steal while running",
        "assigned again while cancelled",
        "paused samples",
    ] {
        assert!(
            totals.get(what).copied().unwrap_or(0) > 0,
            "never: {what} ({totals:?})"
        );
    }
}

/// One worker state with a spill target of `target` bytes.
fn spilling(target: u64) -> WorkerState {
    WorkerState {
        spill: Some(Spill {
            dir: PathBuf::from("/sim"),
            target,
            files: 0,
            compress: false,
        }),
        ..WorkerState::default()
    }
}

fn compute(k: Key, deps: &[Key]) -> Event {
    Event::Compute {
        key: k,
        wire_key: WireKey::from(&k),
        spec: Payload::default(),
        deps: deps.iter().map(|d| (*d, WireKey::from(d))).collect(),
        who_has: FxHashMap::default(),
        priority: (0, 0),
    }
}

#[test]
fn a_task_with_a_spilled_input_waits_for_its_read_then_runs_with_it() {
    let mut st = spilling(100);
    let (a, b, t) = (key(0), key(1), key(2));
    let store = |k: Key| Event::Store {
        values: vec![(WireKey::from(&k), k, value(1, 10))],
    };
    assert!(st
        .handle(store(a), 1)
        .iter()
        .all(|e| !matches!(e, Effect::WriteSpill(_))));
    // 160 bytes past a 100-byte target: the least recently used (a) is written out.
    let fx = st.handle(store(b), 2);
    let job = fx
        .into_iter()
        .find_map(|e| match e {
            Effect::WriteSpill(j) => Some(j),
            _ => None,
        })
        .expect("a spill");
    assert_eq!(job.key, a);
    st.handle(
        Event::SpillWritten {
            key: a,
            used: job.used,
            path: job.path.clone(),
            outcome: Ok(80),
            started_us: 2,
        },
        3,
    );
    assert_eq!((st.memory, st.spilled_now), (104, 104));
    st.handle(compute(t, &[a, b]), 4);
    // The executor that asks gets the read to make, not the task.
    let fx = st.handle(Event::ThreadFree, 5);
    assert!(matches!(&fx[..], [Effect::ReadSpill { key, .. }] if *key == a));
    assert_eq!(st.tasks[&t].phase, Phase::Unspilling { reads: 1 });
    st.validate().unwrap();
    // Meanwhile the other executor finds nothing to do.
    assert!(st.handle(Event::ThreadFree, 6).is_empty());
    let fx = st.handle(
        Event::UnspillRead {
            key: a,
            path: job.path.clone(),
            outcome: Ok(value(1, 10)),
            started_us: 6,
        },
        7,
    );
    assert!(fx
        .iter()
        .any(|e| matches!(e, Effect::RemoveFile(p) if *p == job.path)));
    // Both inputs are pinned: memory is past the target but neither spills.
    assert!(fx.iter().all(|e| !matches!(e, Effect::WriteSpill(_))));
    let fx = st.handle(Event::ThreadFree, 8);
    match &fx[..] {
        [Effect::Execute(x)] => assert_eq!(x.deps.len(), 2),
        _ => panic!("expected the task to run"),
    }
    st.validate().unwrap();
}

#[test]
fn a_result_used_while_its_file_is_written_stays_in_memory() {
    let mut st = spilling(100);
    let (a, b, t) = (key(0), key(1), key(2));
    for (i, k) in [a, b].into_iter().enumerate() {
        let values = vec![(WireKey::from(&k), k, value(1, 10))];
        st.handle(Event::Store { values }, i as u64);
    }
    let job_used = st.data[&a].writing.expect("a is being written");
    st.handle(compute(t, &[a]), 3);
    assert!(matches!(
        &st.handle(Event::ThreadFree, 4)[..],
        [Effect::Execute(_)]
    ));
    let fx = st.handle(
        Event::SpillWritten {
            key: a,
            used: job_used,
            path: PathBuf::from("/sim/1.spill"),
            outcome: Ok(80),
            started_us: 4,
        },
        5,
    );
    assert!(matches!(&fx[..], [Effect::RemoveFile(_)]));
    assert!(matches!(st.data[&a].slot, Slot::Memory(_)));
    assert_eq!((st.memory, st.spilled_now, st.writing), (208, 0, 0));
    st.validate().unwrap();
}

/// A worker running `t` (assigned at 1, started at 2).
fn running(t: Key) -> WorkerState {
    let mut st = WorkerState::default();
    st.handle(compute(t, &[]), 1);
    assert!(matches!(
        &st.handle(Event::ThreadFree, 2)[..],
        [Effect::Execute(_)]
    ));
    st
}

#[test]
fn a_task_freed_while_running_reports_nothing() {
    let t = key(0);
    let mut st = running(t);
    st.handle(Event::Free { key: t }, 3);
    let fx = st.handle(
        Event::TaskFinished {
            key: t,
            value: value(1, 4),
            run: Run::default(),
        },
        4,
    );
    assert!(fx.is_empty());
    assert!(st.data.is_empty() && st.tasks.is_empty() && st.executing == 0);
    st.validate().unwrap();
}

#[test]
fn paused_workers_defer_fetches_and_start_nothing_until_they_resume() {
    let mut st = spilling(u64::MAX);
    st.monitor = Some(MemoryManager::new(1000, Thresholds::default()));
    let (a, t, u) = (key(0), key(1), key(2));
    let sample = |st: &mut WorkerState, rss: u64, s: u64| {
        st.handle(
            Event::MemorySample {
                rss,
                at: Duration::from_secs(s),
            },
            s,
        )
    };
    let fx = sample(&mut st, 850, 1);
    assert!(fx.iter().any(|e| matches!(e, Effect::Paused(true))));
    assert!(fx
        .iter()
        .any(|e| matches!(e, Effect::Send(FromWorker::Paused { paused: true }))));
    // A task needing a fetch, and one ready to run: neither goes anywhere while paused.
    let mut needs_a = compute(t, &[a]);
    if let Event::Compute { who_has, .. } = &mut needs_a {
        who_has.insert(a, vec!["peer:1".into()]);
    }
    assert!(st.handle(needs_a, 2).is_empty());
    st.handle(compute(u, &[]), 3);
    assert!(st.handle(Event::ThreadFree, 4).is_empty());
    st.validate().unwrap();
    // Back at the pause threshold: resumed, the fetch goes out, the ready task runs.
    let fx = sample(&mut st, 800, 5);
    assert!(fx.iter().any(|e| matches!(e, Effect::Paused(false))));
    assert!(fx
        .iter()
        .any(|e| matches!(e, Effect::Fetch((k, _, addrs)) if *k == a && addrs == &["peer:1"])));
    assert!(matches!(&st.handle(Event::ThreadFree, 6)[..], [Effect::Execute(x)] if x.key == u));
    st.validate().unwrap();
    // Past terminate: the shell is told to end the process, once.
    assert!(sample(&mut st, 960, 7)
        .iter()
        .any(|e| matches!(e, Effect::Terminate)));
    assert!(sample(&mut st, 990, 8).is_empty());
}

#[test]
fn a_steal_gives_back_only_what_has_not_started() {
    let mut st = WorkerState::default();
    let (t, u) = (key(0), key(1));
    st.handle(compute(t, &[]), 1);
    st.handle(compute(u, &[]), 2);
    let running = match &st.handle(Event::ThreadFree, 3)[..] {
        [Effect::Execute(x)] => x.key,
        _ => panic!("expected a task to run"),
    };
    let waiting = if running == t { u } else { t };
    let answer = |st: &mut WorkerState, k: Key| match &st.handle(
        Event::Steal {
            wire_key: WireKey::from(&k),
        },
        4,
    )[..]
    {
        [Effect::Send(FromWorker::StealResponse { given_back, .. })] => *given_back,
        _ => panic!("expected a steal response"),
    };
    assert!(!answer(&mut st, running));
    assert!(answer(&mut st, waiting));
    assert!(!st.tasks.contains_key(&waiting) && st.tasks.contains_key(&running));
    st.validate().unwrap();
}

#[test]
fn a_task_reading_an_input_twice_releases_exactly_what_it_held() {
    // t reads a twice and waits for its fetch; a is scattered here meanwhile and u reads it.
    let mut st = WorkerState::default();
    let (a, t, u) = (key(0), key(1), key(2));
    let mut fetch_a = compute(t, &[a, a]);
    if let Event::Compute { who_has, .. } = &mut fetch_a {
        who_has.insert(a, vec!["peer:1".into()]);
    }
    st.handle(fetch_a, 1);
    let values = vec![(WireKey::from(&a), a, value(1, 4))];
    st.handle(Event::Store { values }, 2);
    st.handle(compute(u, &[a]), 3);
    st.validate().unwrap();
    // Freeing t leaves u's input alone, and the late fetch feeds nobody.
    st.handle(Event::Free { key: t }, 4);
    st.handle(Event::Free { key: a }, 5);
    assert_eq!(st.data.get(&a).map(|s| s.readers), Some(1));
    st.handle(
        Event::Fetched {
            key: a,
            value: value(1, 4),
        },
        6,
    );
    st.validate().unwrap();
    assert!(matches!(&st.handle(Event::ThreadFree, 7)[..], [Effect::Execute(x)] if x.key == u));
}

/// The hang seen once in `reconnect`'s scheduler-restart test: a task still running when the
/// worker registered with a restarted scheduler was cancelled (its result would be about the
/// old scheduler), the new scheduler — given the graph again by the client — assigned that
/// same key to this worker before it finished, and the assignment was ignored (the key was
/// still among the tasks) while the result was then discarded as cancelled: the new
/// scheduler waited for it forever. The new assignment takes the running task back.
#[test]
fn a_task_running_when_a_new_scheduler_assigns_it_again_is_reported_to_it() {
    let mut st = WorkerState::default();
    let (done, t) = (key(0), key(1));
    st.handle(compute(done, &[]), 1);
    st.handle(compute(t, &[]), 2);
    for now in [3, 4] {
        assert!(matches!(
            &st.handle(Event::ThreadFree, now)[..],
            [Effect::Execute(_)]
        ));
    }
    st.handle(
        Event::TaskFinished {
            key: done,
            value: value(1, 4),
            run: Run::default(),
        },
        5,
    );
    // The scheduler is lost and a new one registers this worker: it is told what is held.
    let fx = st.handle(Event::NewScheduler, 6);
    assert!(matches!(
        &fx[..],
        [Effect::Send(FromWorker::Holding { keys })] if keys.len() == 1 && keys[0].0 == WireKey::from(&done)
    ));
    st.validate().unwrap();
    // The new scheduler assigns the running key (the client sent its graph again).
    st.handle(compute(t, &[]), 7);
    st.validate().unwrap();
    let fx = st.handle(
        Event::TaskFinished {
            key: t,
            value: value(2, 4),
            run: Run::default(),
        },
        8,
    );
    assert!(
        fx.iter().any(
            |e| matches!(e, Effect::Send(FromWorker::Finished { key, .. }) if *key == WireKey::from(&t))
        ),
        "the new scheduler hears the result it assigned"
    );
    assert!(st.data[&t].owned && st.tasks.is_empty() && st.executing == 0);
    st.validate().unwrap();
}

/// The same without a reconnection: freed while running (a client released it), then
/// assigned again (submitted again) before it finished. Dask's worker takes a cancelled
/// task back on a new `compute-task` (cancelled → executing).
#[test]
fn a_task_freed_while_running_then_assigned_again_is_reported() {
    let t = key(0);
    let mut st = running(t);
    st.handle(Event::Free { key: t }, 3);
    st.handle(compute(t, &[]), 4);
    // Taken back, it is not started twice.
    assert!(st.handle(Event::ThreadFree, 5).is_empty());
    let fx = st.handle(
        Event::TaskFinished {
            key: t,
            value: value(1, 4),
            run: Run::default(),
        },
        6,
    );
    assert!(fx
        .iter()
        .any(|e| matches!(e, Effect::Send(FromWorker::Finished { .. }))));
    assert!(st.data[&t].owned);
    st.validate().unwrap();
}
