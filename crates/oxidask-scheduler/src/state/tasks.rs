//! Task life: becoming needed, ready, assigned, finished, failed, released and forgotten.
//!
//! Recursive walks (computing what a key needs, failing everything that depends on an error,
//! releasing a long chain) use explicit stacks: a million-long chain must not overflow the
//! scheduler's stack.

use oxidask_core::Key;
use oxidask_protocol::{Payload, ToClient, ToWorker, WireError, WireKey, WireTask};
use smallvec::SmallVec;

use super::{observe, Constraints, SchedulerState, TState, TaskId, TaskList, TaskRec, WorkerId};
use crate::policy::Decision;

impl SchedulerState {
    /// Adds a task in the released state.
    pub(crate) fn insert_task(
        &mut self,
        key: Key,
        spec: Option<Payload>,
        deps: TaskList,
        priority: (i64, u64),
        retries: u32,
        constraints: Option<Box<Constraints>>,
    ) -> TaskId {
        let rec = TaskRec {
            key,
            spec,
            deps,
            dependents: TaskList::new(),
            state: TState::Released,
            waiting_on: 0,
            storing: 0,
            suspicious: 0,
            lineage: 0.0,
            retries_left: retries,
            who_has: SmallVec::new(),
            wanted_by: SmallVec::new(),
            pinned: false,
            priority,
            cost: 0.0,
            nbytes: 0,
            type_name: 0,
            constraints,
            error: None,
            stealing: None,
            actor: false,
        };
        let t = match self.free_slots.pop() {
            Some(i) => {
                self.tasks[i as usize] = Some(rec);
                TaskId(i)
            }
            None => {
                self.tasks.push(Some(rec));
                TaskId(self.tasks.len() as u32 - 1)
            }
        };
        self.obs.added(key.prefix(), TState::Released);
        let deps = std::mem::take(&mut self.task_mut(t).deps);
        for &d in &deps {
            self.task_mut(d).dependents.push(t);
        }
        self.task_mut(t).deps = deps;
        self.index.insert(t, &self.tasks);
        t
    }

    /// True if something still needs `t`: a client, fire-and-forget, or a dependent on its way
    /// to being computed.
    pub(crate) fn needed(&self, t: TaskId) -> bool {
        let rec = self.task(t);
        !rec.wanted_by.is_empty()
            || rec.pinned
            || rec
                .dependents
                .iter()
                .any(|&d| self.task(d).state.is_active())
    }

    /// Makes a released task (and the released tasks it needs) compute.
    pub(crate) fn need(&mut self, root: TaskId) {
        if self.task(root).state != TState::Released {
            return;
        }
        let mut stack = vec![(root, false)];
        let mut order = Vec::new();
        while let Some((t, expanded)) = stack.pop() {
            if expanded {
                order.push(t);
                continue;
            }
            if self.task(t).state != TState::Released {
                continue;
            }
            if self.task(t).spec.is_none() {
                let key = self.task(t).key;
                self.fail(
                    t,
                    WireError {
                        key: Some(WireKey::from(&key)),
                        op: "scatter".into(),
                        kind: oxidask_protocol::ErrorKind::Unavailable,
                        message: format!(
                            "the scattered data of {key} was lost (its worker left) and cannot be recomputed; scatter it again"
                        ),
                        causes: Vec::new(),
                        detail: None,
                    },
                );
                continue;
            }
            self.set_state(t, TState::Waiting);
            stack.push((t, true));
            for i in 0..self.task(t).deps.len() {
                let d = self.task(t).deps[i];
                if self.task(d).state == TState::Released {
                    stack.push((d, false));
                }
            }
        }
        for t in order {
            if self.task(t).state != TState::Waiting {
                continue;
            }
            let mut waiting = 0;
            let mut erred = None;
            for &d in &self.task(t).deps {
                match self.task(d).state {
                    TState::Memory => {}
                    TState::Erred => erred = Some(d),
                    _ => waiting += 1,
                }
            }
            if let Some(d) = erred {
                let e = self.dependency_error(d);
                self.fail(t, e);
                continue;
            }
            self.task_mut(t).waiting_on = waiting;
            if waiting == 0 && self.task(t).storing == 0 {
                self.ready(t);
            }
        }
    }

    /// The error a task inherits from a failed dependency.
    pub(crate) fn dependency_error(&self, d: TaskId) -> WireError {
        let rec = self.task(d);
        rec.error.as_deref().cloned().unwrap_or_else(|| WireError {
            key: Some(WireKey::from(&rec.key)),
            op: String::new(),
            kind: oxidask_protocol::ErrorKind::Task,
            message: format!("dependency {} failed", rec.key),
            causes: Vec::new(),
            detail: None,
        })
    }

    /// A task whose dependencies are all in memory: assign, queue or park it.
    pub(crate) fn ready(&mut self, t: TaskId) {
        match self.decide(t) {
            Decision::Assign(w) => self.assign(t, w),
            Decision::Queue => {
                self.set_state(t, TState::Queued);
                let p = self.task(t).priority;
                self.queued.insert((p, t));
            }
            Decision::NoWorker => {
                self.set_state(t, TState::NoWorker);
                let p = self.task(t).priority;
                self.no_worker.insert((p, t), self.now);
            }
        }
    }

    /// Takes a task out of the queued or no-worker sets (before it changes state).
    pub(crate) fn unpark(&mut self, t: TaskId) {
        let rec = self.task(t);
        match rec.state {
            TState::Queued => {
                self.queued.remove(&(rec.priority, t));
            }
            TState::NoWorker => {
                let p = rec.priority;
                self.no_worker.remove(&(p, t));
            }
            _ => {}
        }
    }

    /// Seconds of work a task is expected to take.
    pub(crate) fn estimate(&self, t: TaskId) -> f64 {
        self.durations
            .get(&self.task(t).key.prefix())
            .copied()
            .unwrap_or(self.cfg.default_task_duration)
    }

    /// Assigns a ready task to a worker and sends it.
    pub(crate) fn assign(&mut self, t: TaskId, w: WorkerId) {
        let cost = self.estimate(t);
        self.set_state(t, TState::Processing(w));
        let rec = self.task_mut(t);
        rec.cost = cost as f32;
        let resources = rec.constraints.as_ref().map(|c| c.resources.clone());
        let worker = self.worker_mut(w);
        worker.processing.insert(t);
        worker.occupancy += cost;
        if let Some(r) = resources {
            worker.adjust_resources(&r, 1.0);
        }
        self.update_worker_sets(w);
        self.send_compute(t, w);
    }

    /// Sends a processing task to its worker, with where to fetch what it lacks.
    pub(crate) fn send_compute(&mut self, t: TaskId, w: WorkerId) {
        let rec = self.task(t);
        let mut deps = Vec::with_capacity(rec.deps.len());
        let mut who_has = Vec::new();
        for &d in &rec.deps {
            let dep = self.task(d);
            let wk = WireKey::from(&dep.key);
            if !dep.who_has.contains(&w) {
                let addrs = dep
                    .who_has
                    .iter()
                    .map(|&h| self.worker(h).info.data_address.clone())
                    .collect();
                who_has.push((wk, addrs));
            }
            deps.push(wk);
        }
        let task = WireTask {
            key: WireKey::from(&rec.key),
            spec: rec.spec.clone().unwrap_or_default(),
            deps,
        };
        let priority = rec.priority;
        self.send_worker(
            w,
            ToWorker::Compute {
                task,
                who_has,
                priority,
            },
        );
    }

    /// Undoes the bookkeeping of `assign` (the task left worker `w`).
    pub(crate) fn unassign(&mut self, t: TaskId, w: WorkerId) {
        let rec = self.task_mut(t);
        let cost = rec.cost as f64;
        rec.cost = 0.0;
        rec.stealing = None;
        let resources = rec.constraints.as_ref().map(|c| c.resources.clone());
        // The worker may be gone (its removal reschedules what it held).
        let Some(Some(worker)) = self.workers.get_mut(w.0 as usize) else {
            return;
        };
        worker.long_running.remove(&t);
        if worker.processing.remove(&t) {
            worker.occupancy = (worker.occupancy - cost).max(0.0);
            if worker.processing.is_empty() {
                worker.occupancy = 0.0;
            }
            if let Some(r) = resources {
                worker.adjust_resources(&r, -1.0);
            }
        }
        self.update_worker_sets(w);
    }

    /// Learns how long tasks of this kind take.
    pub(crate) fn learn_duration(&mut self, t: TaskId, seconds: f64) {
        let prefix = self.task(t).key.prefix();
        let e = self.durations.entry(prefix).or_insert(seconds);
        *e = 0.5 * *e + 0.5 * seconds;
    }

    /// `t`'s result is now held by `w`.
    pub(crate) fn put_in_memory(&mut self, t: TaskId, w: WorkerId, type_name: u32, nbytes: u64) {
        self.set_state(t, TState::Memory);
        let rec = self.task_mut(t);
        rec.who_has.clear();
        rec.who_has.push(w);
        rec.nbytes = nbytes;
        rec.type_name = type_name;
        rec.pinned = false;
        rec.error = None;
        let worker = self.worker_mut(w);
        if worker.has_what.insert(t) {
            worker.nbytes += nbytes;
        }
        self.notify_memory(t);
        for i in 0..self.task(t).dependents.len() {
            let d = self.task(t).dependents[i];
            let dep = self.task_mut(d);
            if dep.state == TState::Waiting {
                dep.waiting_on = dep.waiting_on.saturating_sub(1);
                if dep.waiting_on == 0 && dep.storing == 0 {
                    self.ready(d);
                }
            }
        }
        let deps = self.task(t).deps.clone();
        self.release_queue.extend(deps);
        self.release_queue.push(t);
    }

    /// Tells every client wanting `t` that it is in memory.
    pub(crate) fn notify_memory(&mut self, t: TaskId) {
        let rec = self.task(t);
        if rec.wanted_by.is_empty() {
            return;
        }
        let key = WireKey::from(&rec.key);
        let type_name = self.type_name(rec.type_name).to_owned();
        let nbytes = rec.nbytes;
        let clients = rec.wanted_by.clone();
        for c in clients {
            self.send_client(
                c,
                ToClient::KeyInMemory {
                    key,
                    type_name: type_name.clone(),
                    nbytes,
                },
            );
        }
    }

    /// Adds `w` as another holder of `t`'s result.
    pub(crate) fn add_replica(&mut self, t: TaskId, w: WorkerId, nbytes: u64) {
        let rec = self.task_mut(t);
        if !rec.who_has.contains(&w) {
            rec.who_has.push(w);
            self.no_longer_at_risk(t);
            let worker = self.worker_mut(w);
            if worker.has_what.insert(t) {
                worker.nbytes += nbytes;
            }
        }
    }

    /// Fails `t` and every task on its way to being computed that depends on it.
    pub(crate) fn fail(&mut self, t: TaskId, error: WireError) {
        let error = Box::new(error);
        let mut stack = vec![t];
        while let Some(x) = stack.pop() {
            let state = self.task(x).state;
            if x != t && !state.is_active() {
                continue;
            }
            self.unpark(x);
            if let TState::Processing(w) = state {
                self.unassign(x, w);
                let key = WireKey::from(&self.task(x).key);
                self.free_on(w, key);
                self.fill(w);
            }
            self.set_state(x, TState::Erred);
            if x == t {
                let at = (self.now - self.start).as_secs_f64();
                let key = self.task(x).key.to_string();
                self.obs.failed(observe::ErrorRecord {
                    key,
                    message: error.message.clone(),
                    at,
                });
            }
            let rec = self.task_mut(x);
            rec.error = Some(error.clone());
            rec.pinned = false;
            rec.waiting_on = 0;
            let key = WireKey::from(&rec.key);
            let clients = rec.wanted_by.clone();
            for c in clients {
                self.send_client(
                    c,
                    ToClient::KeyErred {
                        key,
                        error: (*error).clone(),
                    },
                );
            }
            let rec = self.task(x);
            stack.extend(rec.dependents.iter().copied());
            let deps = rec.deps.clone();
            self.release_queue.extend(deps);
            self.release_queue.push(x);
        }
    }

    /// Stops working on `t`: takes it off its worker or out of the queues. It becomes
    /// released; the caller decides what next.
    pub(crate) fn stop(&mut self, t: TaskId) {
        let state = self.task(t).state;
        self.unpark(t);
        if let TState::Processing(w) = state {
            self.unassign(t, w);
            let key = WireKey::from(&self.task(t).key);
            self.free_on(w, key);
            self.fill(w);
        }
        self.task_mut(t).waiting_on = 0;
        self.set_state(t, TState::Released);
    }

    /// Releases what nothing needs and forgets what nothing refers to, for every task in the
    /// release queue (and, in turn, their dependencies).
    pub(crate) fn process_releases(&mut self) {
        while let Some(t) = self.release_queue.pop() {
            if !self.exists(t) || self.needed(t) {
                continue;
            }
            match self.task(t).state {
                TState::Memory => {
                    self.no_longer_at_risk(t);
                    let rec = self.task_mut(t);
                    let holders = std::mem::take(&mut rec.who_has);
                    let nbytes = rec.nbytes;
                    let key = WireKey::from(&rec.key);
                    for &w in &holders {
                        let worker = self.worker_mut(w);
                        if worker.has_what.remove(&t) {
                            worker.nbytes = worker.nbytes.saturating_sub(nbytes);
                        }
                        self.free_on(w, key);
                    }
                    self.shuffle_released(t, &holders);
                    self.set_state(t, TState::Released);
                }
                s if s.is_active() => {
                    if self.task(t).storing > 0 {
                        continue;
                    }
                    self.stop(t);
                    let deps = self.task(t).deps.clone();
                    self.release_queue.extend(deps);
                }
                _ => {}
            }
            let rec = self.task(t);
            if rec.dependents.is_empty()
                && rec.wanted_by.is_empty()
                && !rec.pinned
                && rec.storing == 0
            {
                self.forget(t);
            }
        }
    }

    /// Drops a task's record.
    fn forget(&mut self, t: TaskId) {
        let key = self.task(t).key;
        self.index.remove(&key, &self.tasks);
        let rec = self.tasks[t.0 as usize]
            .take()
            .expect("forgetting a live task");
        debug_assert!(!rec.state.is_active() && rec.state != TState::Memory);
        self.free_slots.push(t.0);
        for &d in &rec.deps {
            let dep = self.task_mut(d);
            if let Some(i) = dep.dependents.iter().position(|&x| x == t) {
                dep.dependents.swap_remove(i);
            }
            self.release_queue.push(d);
        }
        self.obs.removed(rec.key.prefix(), rec.state);
        self.log_forgotten(rec.key, rec.state);
    }

    /// `t` was in memory and its last holder is gone: recompute it if it is still needed.
    pub(crate) fn lose(&mut self, t: TaskId) {
        if self.task(t).actor {
            // Actors are not resilient (as in Dask): their state went with the worker.
            let key = self.task(t).key;
            self.set_state(t, TState::Released);
            self.fail(
                t,
                WireError {
                    key: Some(WireKey::from(&key)),
                    op: "actor".into(),
                    kind: oxidask_protocol::ErrorKind::Unavailable,
                    message: format!(
                        "actor {key} was lost: the worker holding it left, and actors are not recomputed (their state is gone); submit the actor again"
                    ),
                    causes: Vec::new(),
                    detail: None,
                },
            );
            if !self.needed(t) {
                self.release_queue.push(t);
            }
            return;
        }
        self.set_state(t, TState::Released);
        if !self.needed(t) {
            self.release_queue.push(t);
            return;
        }
        // Dependents that were ready must wait again.
        for i in 0..self.task(t).dependents.len() {
            let d = self.task(t).dependents[i];
            match self.task(d).state {
                TState::Waiting => self.task_mut(d).waiting_on += 1,
                TState::Queued | TState::NoWorker => {
                    self.unpark(d);
                    self.set_state(d, TState::Waiting);
                    self.task_mut(d).waiting_on = 1;
                }
                TState::Processing(w) => {
                    // Its input is gone; whatever the worker does with it is discarded.
                    self.unassign(d, w);
                    let key = WireKey::from(&self.task(d).key);
                    self.free_on(w, key);
                    self.set_state(d, TState::Waiting);
                    self.task_mut(d).waiting_on = 1;
                    self.fill(w);
                }
                _ => {}
            }
        }
        self.need(t);
    }

    /// Sends an active task back to be scheduled again (its worker died or lacked data).
    pub(crate) fn reschedule(&mut self, t: TaskId) {
        self.unpark(t);
        self.task_mut(t).waiting_on = 0;
        self.set_state(t, TState::Released);
        if self.needed(t) {
            self.need(t);
        } else {
            self.release_queue.push(t);
        }
    }
}
