//! What the scheduler's journal ([`crate::journal`]) needs from the state: a description of
//! the live graph to write as a snapshot, an error to restore without recomputing, and a
//! held result of a task still waiting for its dependencies (a worker that reconnects to a
//! restarted scheduler holds results whose inputs the new scheduler has not seen yet).

use std::time::Instant;

use oxidask_protocol::{SubmitOptions, ToScheduler, WireError, WireKey, WireTask};
use rustc_hash::FxHashSet;

use super::{coord, Effect, SchedulerState, Stimulus, TState, TaskId, WorkerId};

/// The live graph as messages that rebuild it: what [`SchedulerState::live_graph`] returns.
#[derive(Debug, Default)]
pub struct LiveGraph {
    /// Every task with lineage, dependencies first, as `UpdateGraph` parts with the options
    /// it runs with (`more: true`); the caller sends them from one client and then its
    /// `wanted` (every key a client or fire-and-forget holds) in a last part.
    pub parts: Vec<ToScheduler>,
    /// Keys wanted by someone (the last part's wanted keys).
    pub wanted: Vec<WireKey>,
    /// Fire-and-forget keys.
    pub pinned: Vec<WireKey>,
    /// Each client (connected, or parked waiting to reconnect) and the keys it wants.
    pub clients: Vec<LiveClient>,
    /// Failed tasks whose dependencies did not fail (the rest fail again from them).
    pub erred: Vec<(WireKey, WireError)>,
}

/// A client as [`SchedulerState::live_graph`] describes it.
#[derive(Debug)]
pub struct LiveClient {
    /// Its connection (the last one, for a parked client).
    pub conn: u64,
    /// Its name.
    pub name: String,
    /// The id it made for itself (0: anonymous).
    pub id: u128,
    /// Its connection dropped and it may reconnect.
    pub parked: bool,
    /// The keys it wants.
    pub wanted: Vec<WireKey>,
}

impl SchedulerState {
    /// The graph as messages that rebuild it (see [`LiveGraph`]). Scattered data (no
    /// lineage) and the coordination objects' futures are left out.
    pub fn live_graph(&self) -> LiveGraph {
        let mut g = LiveGraph::default();
        // Dependencies first: a depth-first walk from every task, in submission order.
        let mut ids: Vec<TaskId> = (0..self.tasks.len() as u32)
            .map(TaskId)
            .filter(|&t| self.exists(t) && self.task(t).spec.is_some())
            .collect();
        ids.sort_by_key(|&t| self.task(t).priority.1);
        let mut done: FxHashSet<TaskId> = FxHashSet::default();
        let mut order = Vec::with_capacity(ids.len());
        for root in ids {
            let mut stack = vec![(root, false)];
            while let Some((t, expanded)) = stack.pop() {
                if expanded {
                    order.push(t);
                    continue;
                }
                if !done.insert(t) {
                    continue;
                }
                stack.push((t, true));
                for &d in self.task(t).deps.iter().rev() {
                    if !done.contains(&d) && self.task(d).spec.is_some() {
                        stack.push((d, false));
                    }
                }
            }
        }
        let options_of = |t: TaskId| {
            let rec = self.task(t);
            let c = rec.constraints.as_deref();
            SubmitOptions {
                retries: rec.retries_left,
                resources: c.map(|c| c.resources.clone()).unwrap_or_default(),
                workers: c.map(|c| c.workers.clone()).unwrap_or_default(),
                allow_other_workers: false,
                priority: rec.priority.0.saturating_neg(),
                actor: false,
            }
        };
        let mut tasks = Vec::new();
        let mut current: Option<SubmitOptions> = None;
        for t in order {
            let opts = options_of(t);
            if current.as_ref().is_some_and(|c| *c != opts) || tasks.len() >= 10_000 {
                g.parts.push(ToScheduler::UpdateGraph {
                    tasks: std::mem::take(&mut tasks),
                    wanted: Vec::new(),
                    options: current.take().unwrap_or_default(),
                    more: true,
                });
            }
            current = Some(opts);
            let rec = self.task(t);
            tasks.push(WireTask {
                key: WireKey::from(&rec.key),
                spec: rec.spec.clone().unwrap_or_default(),
                deps: rec
                    .deps
                    .iter()
                    .map(|&d| WireKey::from(&self.task(d).key))
                    .collect(),
            });
            if rec.pinned {
                g.pinned.push(WireKey::from(&rec.key));
            }
            if !rec.wanted_by.is_empty() || rec.pinned {
                g.wanted.push(WireKey::from(&rec.key));
            }
            if rec.state == TState::Erred
                && !rec
                    .deps
                    .iter()
                    .any(|&d| self.task(d).state == TState::Erred)
            {
                if let Some(e) = rec.error.as_deref() {
                    g.erred.push((WireKey::from(&rec.key), e.clone()));
                }
            }
        }
        if !tasks.is_empty() {
            g.parts.push(ToScheduler::UpdateGraph {
                tasks,
                wanted: Vec::new(),
                options: current.unwrap_or_default(),
                more: true,
            });
        }
        for c in self.clients.iter() {
            let Some(c) = c else { continue };
            if c.conn == coord::HOLDER_CONN {
                continue;
            }
            let mut wanted: Vec<TaskId> = c
                .wanted
                .iter()
                .copied()
                .filter(|&t| self.task(t).spec.is_some())
                .collect();
            wanted.sort_by_key(|&t| self.task(t).priority.1);
            g.clients.push(LiveClient {
                conn: c.conn,
                name: c.name.clone(),
                id: c.id,
                parked: c.parked_until.is_some(),
                wanted: wanted
                    .into_iter()
                    .map(|t| WireKey::from(&self.task(t).key))
                    .collect(),
            });
        }
        g
    }

    /// Connections of the clients connected (restored ones included).
    pub fn live_graph_clients(&self) -> Vec<u64> {
        self.clients
            .iter()
            .flatten()
            .map(|c| c.conn)
            .filter(|&c| c != coord::HOLDER_CONN)
            .collect()
    }

    /// Fails `key` with `error` as the journal recorded it (its dependents fail with it), so
    /// a restarted scheduler does not run it again. Unknown or finished keys are left alone.
    pub fn restore_erred(&mut self, key: &WireKey, error: WireError, now: Instant) -> Vec<Effect> {
        self.now = now;
        self.stimulus = Stimulus {
            id: self.stimulus.id + 1,
            kind: "journal-replay",
            conn: 0,
        };
        if let Some(t) = self.lookup(key) {
            if !matches!(self.task(t).state, TState::Erred | TState::Memory) {
                self.fail(t, error);
            }
        }
        self.process_releases();
        self.flush_frees();
        std::mem::take(&mut self.out)
    }

    /// A worker holds the result of `t`, which still waits for its dependencies: the
    /// result is taken (it is not computed again) and the dependencies are released unless
    /// something else needs them.
    pub(crate) fn take_held_waiting(
        &mut self,
        t: TaskId,
        w: WorkerId,
        type_name: String,
        nbytes: u64,
    ) {
        self.task_mut(t).waiting_on = 0;
        let type_id = self.type_id(type_name);
        self.put_in_memory(t, w, type_id, nbytes);
    }
}
