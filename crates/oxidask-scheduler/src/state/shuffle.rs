//! Restarting P2P shuffles (Dask's shuffle scheduler plugin, reduced to what this design
//! needs).
//!
//! A P2P shuffle is ordinary tasks to the scheduler: transfers (one per input partition,
//! each storing its shards in the shuffle service of the worker it ran on), a barrier (key
//! prefix ending in [`BARRIER_SUFFIX`], depending on every transfer) and unpacks (one per
//! output, depending on the barrier), which take their shards from the holders. Shards are
//! not task results, so lineage alone cannot bring back the shards of a worker that died
//! after the barrier ran (the barrier's copy of the transfers' results outlives it). Instead
//! an unpack that finds shards gone fails with [`SHARDS_LOST`], and the scheduler restarts
//! the shuffle: every copy of the transfers' and the barrier's results is forgotten, so they
//! run again (a transfer stores its input's shards anew, replacing any left from before),
//! and unpacks on their way are sent back to wait for the new barrier. Unpacks already in
//! memory keep their results. After [`MAX_RESTARTS`] restarts of one shuffle the error fails
//! the unpack as any task error does.
//!
//! Workers drop a run's shards when told to free its barrier (its value names the run's
//! stamps): a restart frees every copy, and when nothing needs the shuffle any more
//! ([`SchedulerState::shuffle_released`]) every worker is told, not only the barrier's
//! holders, so the shards of outputs never asked for, or left by a worker's earlier run, go
//! from the workers that ran transfers too.

use oxidask_core::shuffle::{BARRIER_SUFFIX, SHARDS_LOST};
use oxidask_core::Key;
use oxidask_protocol::{WireError, WireKey};
use rustc_hash::FxHashMap;

use super::{SchedulerState, TState, TaskId};

/// Restarts of one shuffle before a lost-shards error fails its unpack task.
pub const MAX_RESTARTS: u32 = 10;

/// Restarts so far, by barrier key.
#[derive(Debug, Default)]
pub(crate) struct Shuffles {
    restarts: FxHashMap<Key, u32>,
}

impl SchedulerState {
    /// `t` erred with `error` on a worker and was unassigned from it. If it is an unpack task
    /// of a P2P shuffle reporting lost shards, restarts the shuffle, sends `t` back to wait
    /// for it and returns true; otherwise returns false (the error stands).
    pub(crate) fn shuffle_shards_lost(&mut self, t: TaskId, error: &WireError) -> bool {
        if !error.message.contains(SHARDS_LOST) {
            return false;
        }
        let Some(barrier) = self
            .task(t)
            .deps
            .iter()
            .copied()
            .find(|&d| self.task(d).key.prefix_str().ends_with(BARRIER_SUFFIX))
        else {
            return false;
        };
        let key = self.task(barrier).key;
        let n = self.shuffles.restarts.entry(key).or_insert(0);
        if *n >= MAX_RESTARTS {
            return false;
        }
        *n += 1;
        // `t` waits again (it is not processing anywhere any more).
        self.unpark(t);
        self.task_mut(t).waiting_on = 0;
        self.set_state(t, TState::Released);
        // Every copy of the transfers' results goes: they run again.
        for i in 0..self.task(barrier).deps.len() {
            let d = self.task(barrier).deps[i];
            if self.task(d).state == TState::Memory {
                self.drop_every_copy(d);
                self.lose(d);
            }
        }
        // And the barrier's: unpacks on their way wait for the new one.
        if self.task(barrier).state == TState::Memory {
            self.drop_every_copy(barrier);
            self.lose(barrier);
        }
        if self.needed(t) {
            self.need(t);
        } else {
            self.release_queue.push(t);
        }
        true
    }

    /// `t` was released with its result's copies freed on `freed`: if it is a P2P shuffle's
    /// barrier, every other worker is told to free it too (a worker that ran transfers but
    /// never held the barrier then drops the shuffle's shards; nothing of the shuffle is on
    /// its way, so no later run's shards are there yet).
    pub(crate) fn shuffle_released(&mut self, t: TaskId, freed: &[super::WorkerId]) {
        let key = self.task(t).key;
        if !key.prefix_str().ends_with(BARRIER_SUFFIX) {
            return;
        }
        self.shuffles.restarts.remove(&key);
        let others: Vec<_> = self
            .live_workers()
            .map(|(w, _)| w)
            .filter(|w| !freed.contains(w))
            .collect();
        let wk = WireKey::from(&key);
        for w in others {
            self.free_on(w, wk);
        }
    }

    /// Forgets every worker's copy of `t`'s result (telling them to drop it).
    fn drop_every_copy(&mut self, t: TaskId) {
        let nbytes = self.task(t).nbytes;
        let key = WireKey::from(&self.task(t).key);
        let holders: Vec<_> = self.task_mut(t).who_has.drain(..).collect();
        for h in holders {
            let worker = self.worker_mut(h);
            if worker.has_what.remove(&t) {
                worker.nbytes = worker.nbytes.saturating_sub(nbytes);
            }
            self.free_on(h, key);
        }
    }
}
