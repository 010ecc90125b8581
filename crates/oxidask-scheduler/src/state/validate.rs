//! The invariant checker: tests call it after every event.

use super::{SchedulerState, TState, TaskId, WorkerId};

impl SchedulerState {
    /// The per-prefix state counts the dashboard shows equal a count of the records.
    fn validate_observations(&self) -> Result<(), String> {
        let mut counted: rustc_hash::FxHashMap<&'static str, [u32; 7]> = Default::default();
        for t in self.tasks.iter().flatten() {
            let slot = super::observe::STATES
                .iter()
                .position(|s| *s == t.state.name())
                .expect("every state is counted");
            counted.entry(t.key.prefix_str()).or_default()[slot] += 1;
        }
        for (name, stats) in self.obs.prefixes() {
            let want = counted.remove(name).unwrap_or_default();
            if stats.states != want {
                return Err(format!(
                    "prefix {name}: observed counts {:?}, records hold {want:?}",
                    stats.states
                ));
            }
        }
        if let Some((name, want)) = counted.into_iter().next() {
            return Err(format!("prefix {name} is not observed ({want:?} held)"));
        }
        Ok(())
    }

    /// Checks every invariant of the records; returns the first broken one, described.
    pub fn validate(&self) -> Result<(), String> {
        self.validate_observations()?;
        self.validate_coord()?;
        self.validate_clients()?;
        let staged: rustc_hash::FxHashSet<TaskId> = self
            .clients
            .iter()
            .flatten()
            .flat_map(|c| c.staged.iter().copied())
            .collect();
        for (i, slot) in self.tasks.iter().enumerate() {
            let Some(t) = slot else { continue };
            let id = TaskId(i as u32);
            let key = t.key;
            let err = |m: String| Err(format!("task {key} ({}): {m}", t.state.name()));
            if self.index.get(&key, &self.tasks) != Some(id) {
                return err("not indexed under its key".into());
            }
            for &d in &t.deps {
                if !self.exists(d) {
                    return err(format!("dependency {d:?} was forgotten"));
                }
                if !self.task(d).dependents.contains(&id) {
                    return err(format!("dependency {} does not list it", self.task(d).key));
                }
            }
            for &d in &t.dependents {
                if !self.exists(d) || !self.task(d).deps.contains(&id) {
                    return err(format!("dependent {d:?} does not list it as a dependency"));
                }
            }
            for &w in &t.who_has {
                if !self.live(w) || !self.worker(w).has_what.contains(&id) {
                    return err(format!("holder {w:?} does not know it holds it"));
                }
            }
            for &c in &t.wanted_by {
                match self.clients.get(c.0 as usize) {
                    Some(Some(cr)) if cr.wanted.contains(&id) => {}
                    _ => return err(format!("client {c:?} does not know it wants it")),
                }
            }
            let deps_not_in_memory = t
                .deps
                .iter()
                .filter(|&&d| self.task(d).state != TState::Memory)
                .count() as u32;
            let in_queue = self.queued.contains(&(t.priority, id));
            let in_no_worker = self.no_worker.contains_key(&(t.priority, id));
            if in_queue != (t.state == TState::Queued) {
                return err("queue membership disagrees with its state".into());
            }
            if in_no_worker != (t.state == TState::NoWorker) {
                return err("no-worker membership disagrees with its state".into());
            }
            if t.state == TState::Memory && t.who_has.is_empty() {
                return err("in memory but held by no worker".into());
            }
            if t.state != TState::Memory && !t.who_has.is_empty() {
                return err(format!("not in memory but held by {:?}", t.who_has));
            }
            if t.state.is_active() && !self.needed(id) {
                return err("being computed though nothing needs it".into());
            }
            if t.state == TState::Memory && !self.needed(id) {
                return err("kept in memory though nothing needs it".into());
            }
            if t.state == TState::Erred && t.error.is_none() {
                return err("erred without an error".into());
            }
            match t.state {
                TState::Waiting => {
                    if t.waiting_on != deps_not_in_memory {
                        return err(format!(
                            "waiting on {} but {} dependencies are not in memory",
                            t.waiting_on, deps_not_in_memory
                        ));
                    }
                    if t.waiting_on == 0 && t.storing == 0 {
                        return err("waiting on nothing".into());
                    }
                }
                TState::Queued | TState::NoWorker | TState::Processing(_)
                    if deps_not_in_memory != 0 =>
                {
                    return err(format!(
                        "ready though {deps_not_in_memory} dependencies are not in memory"
                    ));
                }
                TState::Released
                    if t.dependents.is_empty()
                        && t.wanted_by.is_empty()
                        && t.storing == 0
                        && !staged.contains(&id) =>
                {
                    return err("released with nothing referring to it (not forgotten)".into());
                }
                _ => {}
            }
            if let TState::Processing(w) = t.state {
                if !self.live(w) || !self.worker(w).processing.contains(&id) {
                    return err(format!("processing on {w:?}, which does not list it"));
                }
            }
        }
        for (w, r) in self.live_workers() {
            for &t in &r.processing {
                if !self.exists(t) || self.task(t).state != TState::Processing(w) {
                    return Err(format!("worker {} lists {t:?} as processing", r.info.name));
                }
            }
            for &t in &r.has_what {
                if !self.exists(t) || !self.task(t).who_has.contains(&w) {
                    return Err(format!("worker {} lists {t:?} as held", r.info.name));
                }
            }
            if r.occupancy < -1e-9 {
                return Err(format!("worker {} has negative occupancy", r.info.name));
            }
            if !r.long_running.is_subset(&r.processing) {
                return Err(format!(
                    "worker {} has long-running tasks it is not processing",
                    r.info.name
                ));
            }
            let idle = r.busy() < r.info.nthreads.max(1) as usize && !self.closed_to_work(w);
            if idle != self.idle.contains(&w) {
                return Err(format!(
                    "worker {} idle set membership is stale",
                    r.info.name
                ));
            }
            if self.saturated(w) == self.unsaturated.contains(&w) {
                return Err(format!(
                    "worker {} saturation set membership is stale",
                    r.info.name
                ));
            }
            if self.worker_by_conn.get(&r.conn) != Some(&w) {
                return Err(format!(
                    "worker {} is not indexed by its connection",
                    r.info.name
                ));
            }
        }
        if self.index.len() != self.tasks.iter().flatten().count() {
            return Err("index and task table disagree on the number of tasks".into());
        }
        if !self.queued.is_empty() {
            // Queued tasks wait only while every worker that could run them is busy.
            for &(_, t) in self.queued.iter().take(1) {
                let task = self.task(t);
                if task.deps.is_empty() && task.constraints.is_none() {
                    if let Some(&w) = self.unsaturated.iter().next() {
                        return Err(format!(
                            "{} is queued while worker {} has room",
                            task.key,
                            self.worker(w).info.name
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    fn live(&self, w: WorkerId) -> bool {
        self.workers.get(w.0 as usize).is_some_and(|w| w.is_some())
    }

    /// Connections, ids and parked clients agree with the clients' records.
    fn validate_clients(&self) -> Result<(), String> {
        for (&conn, &c) in &self.client_by_conn {
            match self.clients.get(c.0 as usize) {
                Some(Some(r)) if r.conn == conn && r.parked_until.is_none() => {}
                _ => {
                    return Err(format!(
                        "connection {conn} names client {c:?}, which is not connected on it"
                    ))
                }
            }
        }
        for (&id, &c) in &self.client_by_id {
            match self.clients.get(c.0 as usize) {
                Some(Some(r)) if r.id == id && id != 0 => {}
                _ => {
                    return Err(format!(
                        "client id {id:x} names client {c:?}, whose record has another id"
                    ))
                }
            }
        }
        for (i, r) in self.clients.iter().enumerate() {
            let Some(r) = r else { continue };
            let c = super::ClientId(i as u32);
            if r.id != 0 && self.client_by_id.get(&r.id) != Some(&c) {
                return Err(format!("client {} ({c:?}) is not found by its id", r.name));
            }
            if r.parked_until.is_some() {
                if !self.parked_clients.contains(&c) {
                    return Err(format!(
                        "parked client {} ({c:?}) has no deadline watch",
                        r.name
                    ));
                }
                if self.client_by_conn.get(&r.conn) == Some(&c) {
                    return Err(format!(
                        "parked client {} ({c:?}) is still connected",
                        r.name
                    ));
                }
            }
        }
        Ok(())
    }
}
