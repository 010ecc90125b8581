//! The coordination invariants (see the [module docs](super)), checked by
//! `SchedulerState::validate` after every event in tests.

use std::time::Instant;

use oxidask_protocol::CoordValue;
use rustc_hash::FxHashMap;

use super::{event_size, size, SchedulerState, TaskId};

impl SchedulerState {
    /// Checks the coordination invariants (see the [module docs](super)).
    pub(crate) fn validate_coord(&self) -> Result<(), String> {
        let co = &self.coord;
        let mut held: FxHashMap<TaskId, u32> = FxHashMap::default();
        let mut bytes = 0;
        let mut waiting = 0;
        let mut timers = 0;
        let mut count = |v: &CoordValue, bytes: &mut usize| {
            *bytes += size(v);
            for k in &v.keys {
                if let Some(t) = self.lookup(k) {
                    *held.entry(t).or_default() += 1;
                }
            }
        };
        let mut wait = |d: Option<(Instant, u64)>| -> Result<(), String> {
            waiting += 1;
            if let Some(d) = d {
                timers += 1;
                if !co.timers.contains_key(&d) {
                    return Err(format!("coordination waiter {d:?} has no timer"));
                }
            }
            Ok(())
        };
        for var in co.variables.values() {
            if let Some(v) = &var.value {
                count(v, &mut bytes);
            }
            for w in &var.getters {
                wait(w.deadline)?;
            }
        }
        for q in co.queues.values() {
            for v in &q.items {
                count(v, &mut bytes);
            }
            for w in &q.putters {
                count(&w.what, &mut bytes);
                wait(w.deadline)?;
            }
            for w in &q.getters {
                wait(w.deadline)?;
            }
        }
        for v in co.datasets.values() {
            count(v, &mut bytes);
        }
        for l in co.locks.values() {
            for w in &l.waiters {
                wait(w.deadline)?;
            }
            if let Some((c, _)) = l.holder {
                if !matches!(self.clients.get(c.0 as usize), Some(Some(_))) {
                    return Err(format!("a lock is held by departed client {c:?}"));
                }
            }
        }
        for s in co.semaphores.values() {
            for w in &s.waiters {
                wait(w.deadline)?;
            }
            if s.leases.len() > s.max_leases as usize {
                return Err("a semaphore grants more leases than it has".into());
            }
            for (c, _) in &s.leases {
                if !matches!(self.clients.get(c.0 as usize), Some(Some(_))) {
                    return Err(format!(
                        "a semaphore lease is held by departed client {c:?}"
                    ));
                }
            }
        }
        for e in co.events.values() {
            for w in &e.waiters {
                wait(w.deadline)?;
            }
        }
        for subs in co.topics.values() {
            for s in subs {
                bytes += s.buffer.iter().map(|m| m.0.len() + 64).sum::<usize>();
                for w in &s.getters {
                    wait(w.deadline)?;
                }
            }
        }
        for log in co.log.values() {
            bytes += log.iter().map(event_size).sum::<usize>();
        }
        if held != co.held {
            return Err(format!(
                "coordination holds keys {:?}, its values refer to {held:?}",
                co.held
            ));
        }
        if let Some(h) = co.holder {
            let wanted = &self.clients[h.0 as usize]
                .as_ref()
                .ok_or("the coordination holder has no record")?
                .wanted;
            if wanted.len() != held.len() || !held.keys().all(|t| wanted.contains(t)) {
                return Err("the coordination holder wants other keys than it holds".into());
            }
        }
        if bytes != co.bytes {
            return Err(format!(
                "coordination counts {} bytes, holds {bytes}",
                co.bytes
            ));
        }
        if waiting != co.waiting || timers != co.timers.len() {
            return Err(format!(
                "coordination counts {} waiters and {} timers, has {waiting} and {timers}",
                co.waiting,
                co.timers.len()
            ));
        }
        Ok(())
    }
}
