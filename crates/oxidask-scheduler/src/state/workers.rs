//! Workers: joining, reporting, dying; and the clock.

use oxidask_protocol::{FromWorker, WireError, WireKey, WorkerInfo};
use rustc_hash::FxHashSet;

use super::{Effect, SchedulerState, TState, TaskId, WorkerId, WorkerMetrics, WorkerRec};

impl SchedulerState {
    pub(crate) fn worker_joined(&mut self, conn: u64, info: WorkerInfo) {
        let clash = self
            .live_workers()
            .find(|(_, w)| w.info.name == info.name)
            .map(|(_, w)| w.info.data_address.clone());
        if let Some(other) = clash {
            let reason = format!(
                "a worker named `{}` is already connected (at {other}); give each worker a unique --name",
                info.name
            );
            self.out.push(Effect::Close { conn, reason });
            return;
        }
        let rec = WorkerRec {
            conn,
            info,
            processing: FxHashSet::default(),
            long_running: FxHashSet::default(),
            occupancy: 0.0,
            has_what: FxHashSet::default(),
            nbytes: 0,
            used_resources: Vec::new(),
            last_seen: self.now,
            metrics: WorkerMetrics::default(),
        };
        let w = match self.workers.iter().position(|w| w.is_none()) {
            Some(i) => {
                self.workers[i] = Some(rec);
                WorkerId(i as u32)
            }
            None => {
                self.workers.push(Some(rec));
                WorkerId(self.workers.len() as u32 - 1)
            }
        };
        self.worker_by_conn.insert(conn, w);
        self.update_worker_sets(w);
        // Tasks no worker could run may run here.
        let parked: Vec<TaskId> = self
            .no_worker
            .keys()
            .map(|&(_, t)| t)
            .filter(|&t| self.worker(w).could_run(self.task(t)))
            .collect();
        for t in parked {
            self.unpark(t);
            self.ready(t);
        }
        self.fill(w);
        self.protect_exposed();
    }

    pub(crate) fn worker_message(&mut self, w: WorkerId, msg: FromWorker) {
        self.worker_mut(w).last_seen = self.now;
        match msg {
            FromWorker::Finished {
                key,
                type_name,
                nbytes,
                duration_us,
                start_us,
                thread,
            } => {
                self.observe_finished(w, key, nbytes, start_us, duration_us, thread);
                self.task_finished(w, key, type_name, nbytes, duration_us)
            }
            FromWorker::Erred { key, error } => self.task_erred(w, key, error),
            FromWorker::MissingData {
                key,
                missing,
                tried,
            } => self.missing_data(w, key, missing, tried),
            FromWorker::StealResponse { key, given_back } => {
                self.steal_response(w, key, given_back)
            }
            FromWorker::Stored { keys } => {
                for (k, type_name, nbytes) in keys {
                    self.stored(w, k, type_name, nbytes);
                }
            }
            FromWorker::LongRunning { key } => {
                if let Some(t) = self.lookup(&key) {
                    if self.task(t).state == TState::Processing(w) {
                        let cost = self.task(t).cost as f64;
                        self.task_mut(t).cost = 0.0;
                        let rec = self.worker_mut(w);
                        if rec.long_running.insert(t) {
                            rec.occupancy = (rec.occupancy - cost).max(0.0);
                        }
                        self.update_worker_sets(w);
                        self.fill(w);
                    }
                }
            }
            FromWorker::Heartbeat {
                memory,
                executing,
                keys: _,
                cpu,
                rss,
                spilled,
                activity,
                logs,
            } => {
                self.worker_mut(w).metrics = WorkerMetrics {
                    memory,
                    executing,
                    cpu,
                    rss,
                    spilled,
                };
                self.worker_activity(w, activity);
                let name = self.worker(w).info.name.clone();
                self.obs.worker_logged(&name, logs);
            }
            FromWorker::Activity { activity } => self.worker_activity(w, activity),
            FromWorker::Paused { paused } => self.worker_paused(w, paused),
            FromWorker::Acquired { keys, missing } => self.acquired(w, keys, missing),
            FromWorker::Retire => {
                let name = self.worker(w).info.name.clone();
                self.retire_workers(super::lifecycle::Requester::Worker, vec![name], 0)
            }
            FromWorker::Holding { keys } => self.holding(w, keys),
        }
    }

    /// Worker `w` paused (memory) or resumed: a paused worker is given nothing new, and its
    /// queued work goes elsewhere as other workers ask for it; a resumed one is filled again.
    fn worker_paused(&mut self, w: WorkerId, paused: bool) {
        let changed = if paused {
            self.paused.insert(w)
        } else {
            self.paused.remove(&w)
        };
        if !changed {
            return;
        }
        self.update_worker_sets(w);
        if !paused {
            self.fill(w);
        }
    }

    /// Transfers and spills on worker `w`, into the task stream.
    fn worker_activity(&mut self, w: WorkerId, activity: Vec<oxidask_protocol::Activity>) {
        if activity.is_empty() {
            return;
        }
        let name = self.worker(w).info.name.clone();
        for a in activity {
            let key = oxidask_core::Key::new(a.kind.name(), oxidask_core::Token::from_u128(0));
            self.obs.record(oxidask_protocol::StreamRecord {
                key: WireKey::from(key),
                kind: a.kind,
                worker: name.clone(),
                thread: 0,
                start_us: a.start_us,
                stop_us: a.stop_us,
                nbytes: a.nbytes,
            });
        }
    }

    fn task_finished(
        &mut self,
        w: WorkerId,
        key: WireKey,
        type_name: String,
        nbytes: u64,
        duration_us: u64,
    ) {
        let Some(t) = self.lookup(&key) else {
            self.free_on(w, key);
            return;
        };
        let type_id = self.type_id(type_name);
        match self.task(t).state {
            TState::Processing(p) => {
                // A task that waited on others ran long for reasons of its own.
                let waited = self.worker(p).long_running.contains(&t);
                self.unassign(t, p);
                if p != w {
                    // It ran here although it was moved elsewhere: keep this result.
                    self.free_on(p, key);
                }
                if !waited {
                    self.learn_duration(t, duration_us as f64 * 1e-6);
                }
                let lineage = self.lineage_after_run(t, duration_us as f64 * 1e-6);
                self.task_mut(t).lineage = lineage;
                self.put_in_memory(t, w, type_id, nbytes);
                self.protect(t);
                self.fill(p);
                if p != w {
                    self.fill(w);
                }
            }
            TState::Memory => self.add_replica(t, w, nbytes),
            _ => self.free_on(w, key),
        }
    }

    /// The work losing `t`'s result would redo, now that it ran for `seconds`: that plus the
    /// lineage of each input nothing else will read (it is released after this run, and its
    /// work leaves its holder's budget of work at risk: `t` carries it now).
    fn lineage_after_run(&mut self, t: TaskId, seconds: f64) -> f32 {
        let mut lineage = seconds as f32;
        for i in 0..self.task(t).deps.len() {
            let d = self.task(t).deps[i];
            let dep = self.task(d);
            let last_reader = dep.wanted_by.is_empty()
                && !dep.pinned
                && dep
                    .dependents
                    .iter()
                    .all(|&o| o == t || !self.task(o).state.is_active());
            if last_reader {
                lineage += dep.lineage;
                self.no_longer_at_risk(d);
            }
        }
        lineage
    }

    fn task_erred(&mut self, w: WorkerId, key: WireKey, error: WireError) {
        let Some(t) = self.lookup(&key) else {
            return;
        };
        if self.task(t).state != TState::Processing(w) {
            return;
        }
        self.unassign(t, w);
        if self.shuffle_shards_lost(t, &error) {
            self.fill(w);
            return;
        }
        if self.task(t).retries_left > 0 {
            self.task_mut(t).retries_left -= 1;
            self.set_state(t, TState::Released);
            self.need(t);
        } else {
            self.fail(t, error);
        }
        self.fill(w);
    }

    fn missing_data(&mut self, w: WorkerId, key: WireKey, missing: WireKey, tried: Vec<String>) {
        let Some(m) = self.lookup(&missing) else {
            return;
        };
        // The holders that were tried do not have it (any more).
        let gone: Vec<WorkerId> = self
            .task(m)
            .who_has
            .iter()
            .copied()
            .filter(|&h| tried.contains(&self.worker(h).info.data_address))
            .collect();
        let nbytes = self.task(m).nbytes;
        for h in gone {
            self.task_mut(m).who_has.retain(|x| *x != h);
            let worker = self.worker_mut(h);
            if worker.has_what.remove(&m) {
                worker.nbytes = worker.nbytes.saturating_sub(nbytes);
            }
            self.free_on(h, missing);
        }
        if self.task(m).state == TState::Memory && self.task(m).who_has.is_empty() {
            self.lose(m);
        }
        let Some(t) = self.lookup(&key) else {
            return;
        };
        if self.task(t).state != TState::Processing(w) {
            return;
        }
        if self.task(m).state == TState::Memory {
            // Other holders remain: try again with fresh locations.
            self.send_compute(t, w);
        } else {
            self.unassign(t, w);
            self.reschedule(t);
            self.fill(w);
        }
    }

    fn steal_response(&mut self, victim: WorkerId, key: WireKey, given_back: bool) {
        let Some(t) = self.lookup(&key) else {
            return;
        };
        let Some(thief) = self.task_mut(t).stealing.take() else {
            return;
        };
        if !given_back || self.task(t).state != TState::Processing(victim) {
            return;
        }
        self.unassign(t, victim);
        let thief_ok = self.workers.get(thief.0 as usize).is_some_and(|w| {
            w.as_ref()
                .is_some_and(|w| w.could_run(self.task(t)) && w.resources_free(self.task(t)))
        });
        if thief_ok {
            self.assign(t, thief);
        } else {
            self.reschedule(t);
        }
        self.fill(victim);
    }

    fn stored(&mut self, w: WorkerId, key: WireKey, type_name: String, nbytes: u64) {
        let Some(t) = self.lookup(&key) else {
            self.free_on(w, key);
            return;
        };
        let pending = self
            .pending_stores
            .get_mut(&w)
            .is_some_and(|s| s.remove(&t));
        if pending {
            self.task_mut(t).storing -= 1;
        }
        let type_id = self.type_id(type_name);
        match self.task(t).state {
            TState::Waiting if self.task(t).waiting_on == 0 && pending => {
                self.put_in_memory(t, w, type_id, nbytes)
            }
            TState::Memory => self.add_replica(t, w, nbytes),
            _ => {
                self.free_on(w, key);
                self.release_queue.push(t);
            }
        }
    }

    /// Removes a worker: reschedules its tasks, recomputes results only it held, and blames
    /// tasks that keep dying with their workers (not when the worker asked to leave itself,
    /// nor tasks queued behind the `nthreads` it could have been running).
    pub(crate) fn remove_worker(&mut self, w: WorkerId, reason: &str, close: bool) {
        let voluntary = self.leaving_voluntarily(w);
        self.lifecycle_worker_removed(w, reason);
        self.forget_risk_of(w);
        let rec = self.workers[w.0 as usize]
            .take()
            .expect("removing a live worker");
        self.worker_by_conn.remove(&rec.conn);
        self.idle.remove(&w);
        self.unsaturated.remove(&w);
        self.paused.remove(&w);
        self.pending_free.remove(&w);
        if close {
            self.out.push(Effect::Close {
                conn: rec.conn,
                reason: reason.to_owned(),
            });
        }
        let mut lost = Vec::new();
        let mut held: Vec<TaskId> = rec.has_what.into_iter().collect();
        held.sort_unstable();
        let mut single = Vec::new();
        for t in held {
            let task = self.task_mut(t);
            task.who_has.retain(|x| *x != w);
            if task.who_has.is_empty() && task.state == TState::Memory {
                lost.push(t);
            } else if task.who_has.len() == 1 && task.lineage > 0.0 {
                single.push(t);
            }
        }
        let mut unconfirmed: Vec<TaskId> = self
            .pending_stores
            .remove(&w)
            .map(|s| s.into_iter().collect())
            .unwrap_or_default();
        unconfirmed.sort_unstable();
        for t in unconfirmed {
            self.task_mut(t).storing -= 1;
            let task = self.task(t);
            if task.storing == 0 && task.state == TState::Waiting && task.spec.is_none() {
                let key = task.key;
                self.fail(
                    t,
                    WireError {
                        key: Some(WireKey::from(&key)),
                        op: "scatter".into(),
                        kind: oxidask_protocol::ErrorKind::Unavailable,
                        message: format!(
                            "worker {} left before storing the scattered data of {key} ({reason}); scatter it again",
                            rec.info.name
                        ),
                        causes: Vec::new(),
                        detail: None,
                    },
                );
            }
        }
        let mut processing: Vec<TaskId> = rec.processing.into_iter().collect();
        processing.sort_unstable_by_key(|&t| self.task(t).priority);
        for t in lost {
            if self.task(t).state == TState::Memory {
                self.lose(t);
            }
        }
        let allowed_failures = self.cfg.allowed_failures;
        // Evidence against a task: only the tasks the worker could have been running (its
        // first `nthreads` by priority, executing or still fetching inputs: the scheduler
        // cannot tell, and Dask counts every processing task) are suspected. The rest were
        // queued behind them: a death under churn is no evidence against them. A worker that
        // asked to leave itself (retiring on SIGTERM, its retirement finished, given up or
        // cut short) did not die: nothing is suspected.
        let mut running = if voluntary {
            0
        } else {
            (rec.info.nthreads as usize).max(1)
        };
        for t in processing {
            if self.task(t).state != TState::Processing(w) {
                continue;
            }
            let suspect = running > 0;
            running = running.saturating_sub(1);
            let task = self.task_mut(t);
            task.suspicious += u16::from(suspect);
            task.stealing = None;
            task.cost = 0.0;
            if task.suspicious > allowed_failures {
                let key = task.key;
                let n = task.suspicious;
                self.fail(
                    t,
                    WireError {
                        key: Some(WireKey::from(&key)),
                        op: String::new(),
                        kind: oxidask_protocol::ErrorKind::KilledWorker,
                        message: format!(
                            "KilledWorker: task {key} was running on {n} workers that died (the last, {}: {reason}); it may be crashing them. Allowed failures: {}",
                            rec.info.name, self.cfg.allowed_failures
                        ),
                        causes: Vec::new(),
                        detail: None,
                    },
                );
            } else {
                self.reschedule(t);
            }
        }
        // Expensive results down to one copy get a new spare.
        for t in single {
            self.protect(t);
        }
    }

    /// The clock: heartbeat timeouts, tasks no worker can run, work stealing.
    pub(crate) fn tick(&mut self) {
        let now = self.now;
        let timeout = self.cfg.heartbeat_timeout;
        let silent: Vec<(WorkerId, f64)> = self
            .live_workers()
            .filter(|(_, r)| now.saturating_duration_since(r.last_seen) > timeout)
            .map(|(w, r)| (w, now.saturating_duration_since(r.last_seen).as_secs_f64()))
            .collect();
        for (w, secs) in silent {
            let reason = format!("no heartbeat for {secs:.1} s");
            self.remove_worker(w, &reason, true);
        }
        if self.n_workers() > 0 {
            let limit = self.cfg.no_worker_timeout;
            let expired: Vec<TaskId> = self
                .no_worker
                .iter()
                .filter(|(_, &since)| now.saturating_duration_since(since) >= limit)
                .map(|(&(_, t), _)| t)
                .collect();
            for t in expired {
                let e = self.unrunnable_error(t);
                self.fail(t, e);
            }
        }
        self.balance();
    }

    fn unrunnable_error(&self, t: TaskId) -> WireError {
        let task = self.task(t);
        let offers: Vec<String> = self
            .live_workers()
            .map(|(_, w)| {
                let res: Vec<String> = w
                    .info
                    .resources
                    .iter()
                    .map(|(n, v)| format!("{n}={v}"))
                    .collect();
                format!("{} [{}]", w.info.name, res.join(", "))
            })
            .collect();
        let mut wants = Vec::new();
        let mut hints = Vec::new();
        if !task.resources().is_empty() {
            hints.push("start a worker offering them (`oxidask worker ADDRESS --resources GPU=1`)");
            let r: Vec<String> = task
                .resources()
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect();
            wants.push(format!("resources {}", r.join(", ")));
        }
        if !task.allowed_workers().is_empty() {
            wants.push(format!("workers {}", task.allowed_workers().join(", ")));
            hints.push("name workers by their `--name` or `host:port` data address (or allow other workers)");
        }
        WireError {
            key: Some(WireKey::from(&task.key)),
            op: String::new(),
            kind: oxidask_protocol::ErrorKind::NoWorker,
            message: format!(
                "no connected worker can run {}: it asks for {}, and the workers offer: {}. To run it, {}, or relax the request",
                task.key,
                wants.join(" and "),
                offers.join("; "),
                hints.join("; ")
            ),
            causes: Vec::new(),
            detail: None,
        }
    }
}
