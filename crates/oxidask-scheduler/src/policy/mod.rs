//! Scheduling policies: where a ready task runs, when root tasks wait, and work stealing.
//!
//! Kept from Dask because they are proven:
//! - **Earliest start time**: a task with dependencies goes to the worker where it can start
//!   soonest, estimated as its queued work per thread (occupancy) plus the time to fetch the
//!   dependency bytes it lacks. This is data locality with load balance.
//! - **Root-task queuing**: tasks without dependencies (the roots of wide graphs) are given to
//!   workers only while they have room; the rest wait in the scheduler in priority order. Wide
//!   graphs then run branch by branch instead of loading every root into worker memory.
//! - **Work stealing** ([`stealing`]): assigned tasks that have not started move from
//!   overloaded workers to idle ones when moving their inputs costs less than the wait.

mod stealing;

use crate::state::{SchedulerState, TState, TaskId, WorkerId};

/// Where a ready task goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// To this worker now.
    Assign(WorkerId),
    /// Into the queue until a worker has room (or its resources are free).
    Queue,
    /// No connected worker may run it.
    NoWorker,
}

/// How many queued tasks to look past for one a worker can run (restrictions, resources).
const QUEUE_SCAN: usize = 64;

/// Candidate workers considered beside the holders of a task's dependencies.
const EXTRA_IDLE_CANDIDATES: usize = 8;

impl SchedulerState {
    /// True if `w` should not be given more root tasks.
    pub(crate) fn saturated(&self, w: WorkerId) -> bool {
        if self.closed_to_work(w) {
            return true;
        }
        let rec = self.worker(w);
        let threads = rec.info.nthreads.max(1) as f64;
        let n = rec.busy() as f64;
        if n >= threads * self.cfg.max_assigned_per_thread as f64 {
            return true;
        }
        n >= (threads * self.cfg.worker_saturation).ceil()
            && rec.occupancy >= threads * self.cfg.min_assigned_seconds
    }

    /// Keeps the idle and unsaturated sets current after `w`'s assignments changed.
    pub(crate) fn update_worker_sets(&mut self, w: WorkerId) {
        let rec = self.worker(w);
        let idle = rec.busy() < rec.info.nthreads.max(1) as usize && !self.closed_to_work(w);
        let saturated = self.saturated(w);
        if idle {
            self.idle.insert(w);
        } else {
            self.idle.remove(&w);
        }
        if saturated {
            self.unsaturated.remove(&w);
        } else {
            self.unsaturated.insert(w);
        }
    }

    /// Estimated seconds until `t` could start on `w`.
    fn start_time(&self, t: TaskId, w: WorkerId) -> f64 {
        let rec = self.worker(w);
        let mut bytes = 0u64;
        for &d in &self.task(t).deps {
            let dep = self.task(d);
            if !dep.who_has.contains(&w) {
                bytes += dep.nbytes;
            }
        }
        rec.occupancy / rec.info.nthreads.max(1) as f64 + bytes as f64 / self.cfg.bandwidth
    }

    /// Actors held by or being built on `w` (counted only when placing an actor).
    fn actors_on(&self, w: WorkerId) -> usize {
        let r = self.worker(w);
        r.has_what
            .iter()
            .chain(r.processing.iter())
            .filter(|&&t| self.task(t).actor)
            .count()
    }

    /// Where a ready task goes.
    pub(crate) fn decide(&self, t: TaskId) -> Decision {
        let task = self.task(t);
        if task.deps.is_empty() {
            // A root: to the least-loaded worker with room, else wait in the queue.
            let best = self
                .unsaturated
                .iter()
                .copied()
                .filter(|&w| {
                    let r = self.worker(w);
                    r.could_run(task) && r.resources_free(task)
                })
                .min_by(|&a, &b| {
                    let (ra, rb) = (self.worker(a), self.worker(b));
                    let la = ra.occupancy / ra.info.nthreads.max(1) as f64;
                    let lb = rb.occupancy / rb.info.nthreads.max(1) as f64;
                    // Actors go to the worker holding the fewest (as in Dask), so a pool of
                    // them spreads over the cluster.
                    let actors = |w| if task.actor { self.actors_on(w) } else { 0 };
                    actors(a)
                        .cmp(&actors(b))
                        .then(la.total_cmp(&lb))
                        .then(ra.busy().cmp(&rb.busy()))
                });
            return match best {
                Some(w) => Decision::Assign(w),
                None if self.live_workers().any(|(_, r)| r.could_run(task)) => Decision::Queue,
                None => Decision::NoWorker,
            };
        }
        let mut candidates: Vec<WorkerId> = Vec::new();
        for &d in &task.deps {
            for &h in &self.task(d).who_has {
                if !candidates.contains(&h) {
                    candidates.push(h);
                }
            }
        }
        for &w in self.idle.iter().take(EXTRA_IDLE_CANDIDATES) {
            if !candidates.contains(&w) {
                candidates.push(w);
            }
        }
        candidates.retain(|&w| self.worker(w).could_run(task) && !self.closed_to_work(w));
        if candidates.is_empty() {
            let runnable: Vec<WorkerId> = self
                .live_workers()
                .filter(|(_, r)| r.could_run(task))
                .map(|(w, _)| w)
                .collect();
            if runnable.is_empty() {
                return Decision::NoWorker;
            }
            // Paused workers take nothing new: wait for one to resume (or another to join).
            candidates = runnable
                .into_iter()
                .filter(|w| !self.closed_to_work(*w))
                .collect();
            if candidates.is_empty() {
                return Decision::Queue;
            }
        }
        let best = candidates
            .into_iter()
            .filter(|&w| self.worker(w).resources_free(task))
            .map(|w| (self.start_time(t, w), self.worker(w).busy(), w))
            .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        match best {
            Some((_, _, w)) => Decision::Assign(w),
            None => Decision::Queue,
        }
    }

    /// Gives `w` queued tasks while it has room.
    pub(crate) fn fill(&mut self, w: WorkerId) {
        if self.workers.get(w.0 as usize).is_none_or(|r| r.is_none()) {
            return;
        }
        while !self.queued.is_empty() && !self.saturated(w) {
            let rec = self.worker(w);
            let pick = self
                .queued
                .iter()
                .take(QUEUE_SCAN)
                .find(|(_, t)| {
                    let task = self.task(*t);
                    rec.could_run(task) && rec.resources_free(task)
                })
                .copied();
            let Some(entry) = pick else { break };
            self.queued.remove(&entry);
            debug_assert_eq!(self.task(entry.1).state, TState::Queued);
            self.assign(entry.1, w);
        }
    }
}
