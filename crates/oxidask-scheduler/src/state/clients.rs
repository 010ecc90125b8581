//! What clients ask for: new graphs, releases, cancellation, scatter, queries.

use oxidask_protocol::{
    ClusterSummary, SubmitOptions, ToClient, ToScheduler, ToWorker, WireError, WireKey, WireTask,
    WireValue, WorkerSummary,
};
use rustc_hash::FxHashSet;

use super::{ClientId, ClientRec, Constraints, SchedulerState, TState, TaskId, TaskList, WorkerId};

impl SchedulerState {
    pub(crate) fn client_joined(&mut self, conn: u64, name: String) {
        let c = ClientId(self.clients.len() as u32);
        self.clients.push(Some(ClientRec {
            conn,
            name,
            wanted: FxHashSet::default(),
            staged: Vec::new(),
            staged_broken: Vec::new(),
        }));
        self.client_by_conn.insert(conn, c);
    }

    pub(crate) fn client_left(&mut self, conn: u64) {
        let Some(c) = self.client_by_conn.remove(&conn) else {
            return;
        };
        self.coord_client_left(c);
        let rec = self.clients[c.0 as usize]
            .take()
            .expect("a connected client has a record");
        self.release_queue.extend(rec.staged);
        let mut wanted: Vec<TaskId> = rec.wanted.into_iter().collect();
        wanted.sort();
        for t in wanted {
            self.unwant(c, t);
        }
    }

    pub(crate) fn client_message(&mut self, c: ClientId, msg: ToScheduler) {
        match msg {
            ToScheduler::UpdateGraph {
                tasks,
                wanted,
                options,
                more,
            } => self.update_graph(c, tasks, wanted, options, more),
            ToScheduler::Release { keys } => {
                for k in keys {
                    if let Some(t) = self.lookup(&k) {
                        self.unwant(c, t);
                    }
                }
            }
            ToScheduler::Pin { keys } => {
                for k in keys {
                    if let Some(t) = self.lookup(&k) {
                        if self.task(t).state.is_active() {
                            self.task_mut(t).pinned = true;
                        }
                    }
                }
            }
            ToScheduler::Cancel { keys } => self.cancel(c, keys),
            ToScheduler::WhoHas { request, keys } => {
                let locations = keys
                    .into_iter()
                    .map(|k| {
                        let addrs = self.lookup(&k).map_or_else(Vec::new, |t| {
                            self.task(t)
                                .who_has
                                .iter()
                                .map(|&w| self.worker(w).info.data_address.clone())
                                .collect()
                        });
                        (k, addrs)
                    })
                    .collect();
                self.send_client(c, ToClient::WhoHas { request, locations });
            }
            ToScheduler::Scatter { values, broadcast } => self.scatter(c, values, broadcast),
            ToScheduler::Summary { request } => {
                let summary = self.summary();
                self.send_client(c, ToClient::Summary { request, summary });
            }
            ToScheduler::Story { request, key } => {
                let lines = match key.to_key() {
                    Ok(k) => self.story(&k).iter().map(|t| t.line()).collect(),
                    Err(_) => Vec::new(),
                };
                self.send_client(c, ToClient::Story { request, lines });
            }
            ToScheduler::TaskStream { request, since } => {
                let (records, next) = self.obs.stream_since(since, 1_000_000);
                self.send_client(
                    c,
                    ToClient::TaskStream {
                        request,
                        records,
                        next,
                    },
                );
            }
            // The connection layer answers these; the core never sees them.
            ToScheduler::Gather { .. } => {}
            ToScheduler::Coord { request, op } => self.coord_message(c, request, op),
            ToScheduler::Restart { request } => self.restart(c, request),
            ToScheduler::RetireWorkers {
                request,
                workers,
                n,
            } => self.retire_workers(super::lifecycle::Requester::Client(c, request), workers, n),
            ToScheduler::AdaptiveTarget {
                request,
                target_duration_us,
            } => self.adaptive_reply(c, request, target_duration_us),
            ToScheduler::Replicate { request, keys, n } => self.replicate(c, request, keys, n),
            ToScheduler::Rebalance { request, keys } => self.rebalance(c, request, keys),
            ToScheduler::Logs { request, worker } => {
                let lines = match worker {
                    None => self.log_source.as_ref().map(|f| f()).unwrap_or_default(),
                    Some(w) => {
                        let w = oxidask_protocol::strip_scheme(&w);
                        let name = self
                            .live_workers()
                            .find(|(_, r)| r.info.name == w || r.info.data_address == w)
                            .map(|(_, r)| r.info.name.clone())
                            .unwrap_or_else(|| w.to_owned());
                        self.obs.worker_logs(&name)
                    }
                };
                self.send_client(c, ToClient::Logs { request, lines });
            }
        }
    }

    /// The cluster at a glance.
    pub fn summary(&self) -> ClusterSummary {
        ClusterSummary {
            workers: self
                .live_workers()
                .map(|(_, w)| WorkerSummary {
                    name: w.info.name.clone(),
                    address: w.info.data_address.clone(),
                    nthreads: w.info.nthreads,
                    memory_limit: w.info.memory_limit,
                    memory: w.metrics.memory.max(w.nbytes),
                    processing: w.processing.len() as u64,
                    keys: w.has_what.len() as u64,
                    cpu: w.metrics.cpu,
                    resources: w.info.resources.clone(),
                    rss: w.metrics.rss,
                    spilled: w.metrics.spilled,
                })
                .collect(),
            tasks: self.index.len() as u64,
            clients: self.client_by_conn.len() as u64,
        }
    }

    fn update_graph(
        &mut self,
        c: ClientId,
        tasks: Vec<WireTask>,
        wanted: Vec<WireKey>,
        options: SubmitOptions,
        more: bool,
    ) {
        debug_assert!(self.release_queue.is_empty());
        let mut workers = options.workers.clone();
        if options.allow_other_workers
            && !self.live_workers().any(|(_, w)| {
                workers
                    .iter()
                    .any(|r| *r == w.info.name || *r == w.info.data_address)
            })
        {
            workers.clear(); // a preference none of the connected workers matches
        }
        let constraints = (!options.resources.is_empty() || !workers.is_empty()).then(|| {
            Box::new(Constraints {
                resources: options.resources.clone(),
                workers,
            })
        });
        let mut new = Vec::with_capacity(tasks.len());
        self.index.reserve(tasks.len(), &self.tasks);
        self.tasks
            .reserve(tasks.len().saturating_sub(self.free_slots.len()));
        let mut broken = Vec::new();
        for wt in tasks {
            let key = match wt.key.to_key() {
                Ok(k) => k,
                Err(e) => {
                    self.send_client(
                        c,
                        ToClient::KeyErred {
                            key: wt.key,
                            error: e,
                        },
                    );
                    continue;
                }
            };
            if self.index.get(&key, &self.tasks).is_some() {
                continue;
            }
            let mut deps = TaskList::new();
            let mut missing = None;
            for d in &wt.deps {
                match self.lookup(d) {
                    Some(id) => {
                        if !deps.contains(&id) {
                            deps.push(id)
                        }
                    }
                    None => missing = Some(*d),
                }
            }
            self.seq += 1;
            // Saturating: a client may send any i64 (i64::MIN has no negation).
            let priority = (options.priority.saturating_neg(), self.seq);
            let t = self.insert_task(
                key,
                Some(wt.spec),
                deps,
                priority,
                options.retries,
                constraints.clone(),
            );
            if let Some(d) = missing {
                broken.push((t, d));
            }
            new.push(t);
        }
        if options.actor {
            for wk in &wanted {
                if let Some(t) = self.lookup(wk) {
                    self.task_mut(t).actor = true;
                }
            }
        }
        if let Some(Some(client)) = self.clients.get_mut(c.0 as usize) {
            if more {
                client.staged.extend(new);
                client.staged_broken.extend(broken);
                return;
            }
            new.append(&mut client.staged);
            broken.append(&mut client.staged_broken);
        }
        let mut wanted_ids = Vec::with_capacity(wanted.len());
        for k in wanted {
            match self.lookup(&k) {
                Some(t) => {
                    self.want(c, t);
                    wanted_ids.push(t);
                }
                None => self.send_client(
                    c,
                    ToClient::KeyErred {
                        error: WireError {
                            key: Some(k),
                            ..WireError::invalid(format!(
                                "{k} is not known to the scheduler: submit its task with it"
                            ))
                        },
                        key: k,
                    },
                ),
            }
        }
        for (t, d) in broken {
            let key = self.task(t).key;
            self.fail(
                t,
                WireError {
                    key: Some(WireKey::from(&key)),
                    ..WireError::invalid(format!(
                        "task {key} depends on {d}, which the scheduler does not hold: it was never submitted, or every future for it was released before this task arrived"
                    ))
                },
            );
        }
        for t in wanted_ids {
            self.need(t);
        }
        self.release_queue.extend(new);
    }

    /// Client `c` holds a future for `t`; tells it at once if the result is already there.
    pub(crate) fn want(&mut self, c: ClientId, t: TaskId) {
        let rec = self.task_mut(t);
        if !rec.wanted_by.contains(&c) {
            rec.wanted_by.push(c);
        }
        if let Some(Some(client)) = self.clients.get_mut(c.0 as usize) {
            client.wanted.insert(t);
        }
        let rec = self.task(t);
        match rec.state {
            TState::Memory => {
                let msg = ToClient::KeyInMemory {
                    key: WireKey::from(&rec.key),
                    type_name: self.type_name(rec.type_name).to_owned(),
                    nbytes: rec.nbytes,
                };
                self.send_client(c, msg);
            }
            TState::Erred => {
                let msg = ToClient::KeyErred {
                    key: WireKey::from(&rec.key),
                    error: self.dependency_error(t),
                };
                self.send_client(c, msg);
            }
            _ => {}
        }
    }

    /// Client `c` no longer holds a future for `t`.
    pub(crate) fn unwant(&mut self, c: ClientId, t: TaskId) {
        if !self.exists(t) {
            return;
        }
        let rec = self.task_mut(t);
        if let Some(i) = rec.wanted_by.iter().position(|&x| x == c) {
            rec.wanted_by.swap_remove(i);
        }
        if let Some(Some(client)) = self.clients.get_mut(c.0 as usize) {
            client.wanted.remove(&t);
        }
        self.release_queue.push(t);
    }

    /// Cancels keys and everything of this client's that depends on them.
    fn cancel(&mut self, c: ClientId, keys: Vec<WireKey>) {
        let mut stack: Vec<TaskId> = keys.iter().filter_map(|k| self.lookup(k)).collect();
        let mut seen = FxHashSet::default();
        while let Some(t) = stack.pop() {
            if !seen.insert(t) {
                continue;
            }
            let rec = self.task(t);
            stack.extend(rec.dependents.iter().copied());
            if rec.wanted_by.contains(&c) {
                let key = WireKey::from(&rec.key);
                self.unwant(c, t);
                self.send_client(
                    c,
                    ToClient::KeyErred {
                        key,
                        error: WireError {
                            key: Some(key),
                            op: String::new(),
                            kind: oxidask_protocol::ErrorKind::Cancelled,
                            message: format!("{key} was cancelled"),
                            causes: Vec::new(),
                            detail: None,
                        },
                    },
                );
            }
        }
    }

    fn scatter(&mut self, c: ClientId, values: Vec<(WireKey, WireValue)>, broadcast: bool) {
        let mut targets: Vec<WorkerId> = self.live_workers().map(|(w, _)| w).collect();
        if targets.is_empty() {
            for (k, _) in values {
                let error = WireError {
                    key: Some(k),
                    op: "scatter".into(),
                    kind: oxidask_protocol::ErrorKind::Unavailable,
                    message: "no workers are connected to hold scattered data; start workers (or wait for them) and scatter again".into(),
                    causes: Vec::new(),
                    detail: None,
                };
                self.send_client(c, ToClient::KeyErred { key: k, error });
            }
            return;
        }
        // Least loaded first.
        targets.sort_by_key(|&w| (self.worker(w).nbytes, w));
        let mut batches: Vec<Vec<(WireKey, WireValue)>> = vec![Vec::new(); targets.len()];
        for (i, (wk, v)) in values.into_iter().enumerate() {
            let key = match wk.to_key() {
                Ok(k) => k,
                Err(error) => {
                    self.send_client(c, ToClient::KeyErred { key: wk, error });
                    continue;
                }
            };
            let t = match self.index.get(&key, &self.tasks) {
                Some(t) => t,
                None => {
                    self.seq += 1;
                    let p = (0, self.seq);
                    self.insert_task(key, None, TaskList::new(), p, 0, None)
                }
            };
            self.want(c, t);
            let state = self.task(t).state;
            if state == TState::Memory {
                continue;
            }
            if state.is_active() && self.task(t).storing == 0 {
                // Being computed already: the computation will deliver it.
                continue;
            }
            let chosen: Vec<usize> = if broadcast {
                (0..targets.len()).collect()
            } else {
                vec![i % targets.len()]
            };
            if state != TState::Waiting {
                if state == TState::Erred {
                    self.task_mut(t).error = None;
                }
                self.set_state(t, TState::Waiting);
                self.task_mut(t).waiting_on = 0;
            }
            for j in chosen {
                if self.pending_stores.entry(targets[j]).or_default().insert(t) {
                    self.task_mut(t).storing += 1;
                    batches[j].push((wk, v.clone()));
                }
            }
        }
        for (j, values) in batches.into_iter().enumerate() {
            if !values.is_empty() {
                self.send_worker(targets[j], ToWorker::Store { values });
            }
        }
    }
}
