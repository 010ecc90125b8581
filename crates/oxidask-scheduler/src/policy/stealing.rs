//! Work stealing: moving assigned, not-yet-started tasks from overloaded workers to idle ones.
//!
//! On each tick, for every idle worker (fewer assigned tasks than threads), the scheduler
//! looks at the most loaded workers for tasks beyond what their threads are running and asks
//! the victim to give back those that are cheap to move: the bytes the thief would fetch,
//! at the assumed bandwidth plus a round trip, must cost less than the task's expected run
//! time. The victim answers; only a task it had not started moves.

use oxidask_protocol::{ToWorker, WireKey};

use crate::state::{SchedulerState, TaskId, WorkerId};

/// Network latency charged to every move (seconds).
const MOVE_LATENCY: f64 = 0.001;

impl SchedulerState {
    /// One round of stealing.
    pub(crate) fn balance(&mut self) {
        if self.idle.is_empty() {
            return;
        }
        let mut victims: Vec<(f64, WorkerId)> = self
            .live_workers()
            .filter(|(_, r)| r.busy() > r.info.nthreads.max(1) as usize)
            .map(|(w, r)| (r.occupancy / r.info.nthreads.max(1) as f64, w))
            .collect();
        if victims.is_empty() {
            return;
        }
        victims.sort_by(|a, b| b.0.total_cmp(&a.0));
        let thieves: Vec<WorkerId> = self.idle.iter().copied().collect();
        for thief in thieves {
            let room = {
                let r = self.worker(thief);
                (r.info.nthreads.max(1) as usize).saturating_sub(r.busy()) * 2
            };
            let mut taken = 0;
            for &(_, victim) in &victims {
                if taken >= room || victim == thief {
                    continue;
                }
                let vr = self.worker(victim);
                let surplus = vr.busy().saturating_sub(vr.info.nthreads.max(1) as usize);
                // The tasks that would run last on the victim.
                let mut candidates: Vec<TaskId> = vr
                    .processing
                    .iter()
                    .copied()
                    .filter(|&t| self.task(t).stealing.is_none() && !vr.long_running.contains(&t))
                    .collect();
                candidates.sort_unstable_by_key(|&t| std::cmp::Reverse(self.task(t).priority));
                candidates.truncate(surplus);
                for t in candidates {
                    if taken >= room {
                        break;
                    }
                    if !self.worth_moving(t, thief) {
                        continue;
                    }
                    self.task_mut(t).stealing = Some(thief);
                    let key = WireKey::from(&self.task(t).key);
                    self.send_worker(victim, ToWorker::Steal { key });
                    taken += 1;
                }
            }
        }
    }

    fn worth_moving(&self, t: TaskId, thief: WorkerId) -> bool {
        let task = self.task(t);
        let tr = self.worker(thief);
        if !tr.could_run(task) || !tr.resources_free(task) {
            return false;
        }
        let bytes: u64 = task
            .deps
            .iter()
            .map(|&d| self.task(d))
            .filter(|d| !d.who_has.contains(&thief))
            .map(|d| d.nbytes)
            .sum();
        let transfer = bytes as f64 / self.cfg.bandwidth + MOVE_LATENCY;
        transfer < task.cost as f64
    }
}
