//! What clients ask for: new graphs, releases, cancellation, scatter, queries.

use oxidask_protocol::{
    ClusterSummary, SubmitOptions, ToClient, ToScheduler, ToWorker, WireError, WireKey, WireTask,
    WireValue, WorkerSummary,
};
use rustc_hash::FxHashSet;

use super::{ClientId, ClientRec, Constraints, SchedulerState, TState, TaskId, TaskList, WorkerId};

/// The connection a restored client's record names until it reconnects: never a live
/// connection, and not the coordination objects' holder (`coord::HOLDER_CONN`, `u64::MAX`),
/// which `restart` and the journal's snapshot treat specially.
const RESTORED_CONN: u64 = u64::MAX - 1;

impl SchedulerState {
    pub(crate) fn client_joined(&mut self, conn: u64, name: String) {
        let c = ClientId(self.clients.len() as u32);
        self.clients.push(Some(ClientRec {
            conn,
            name,
            wanted: FxHashSet::default(),
            staged: Vec::new(),
            staged_broken: Vec::new(),
            id: 0,
            parked_until: None,
        }));
        self.client_by_conn.insert(conn, c);
    }

    /// The client on `conn` made itself the id `id`: it takes back the record of a client
    /// with that id (parked, or still connected on a connection the scheduler has not yet
    /// seen drop), or becomes that client.
    pub(crate) fn client_identified(&mut self, conn: u64, id: u128, reconnect: bool) {
        let Some(&fresh) = self.client_by_conn.get(&conn) else {
            return;
        };
        if id == 0 {
            return;
        }
        let Some(&old) = self.client_by_id.get(&id) else {
            // Reconnecting, but its record is gone (away longer than the grace, or the
            // scheduler restarted without a journal): what it asks for again is computed
            // again, and keys nobody holds any more fail as unknown.
            let _ = reconnect;
            self.client_mut(fresh).id = id;
            self.client_by_id.insert(id, fresh);
            return;
        };
        if old == fresh {
            return;
        }
        // The new connection's record is empty (it was made by this hello): drop it.
        let rec = self.clients[fresh.0 as usize]
            .take()
            .expect("a connected client has a record");
        debug_assert!(rec.wanted.is_empty() && rec.staged.is_empty());
        let previous = self.client(old).conn;
        if self.client(old).parked_until.is_none() {
            // Its old connection has not been seen to close yet: it no longer speaks for it.
            self.client_by_conn.remove(&previous);
            self.coord_forget_waiters(old, None);
        }
        let r = self.client_mut(old);
        r.conn = conn;
        r.parked_until = None;
        r.name = rec.name;
        self.client_by_conn.insert(conn, old);
        self.resend_wanted(old);
    }

    /// Sends client `c` the status of every key it wants that is no longer pending, so its
    /// waiters wake after a reconnection.
    fn resend_wanted(&mut self, c: ClientId) {
        let mut wanted: Vec<TaskId> = self.client(c).wanted.iter().copied().collect();
        wanted.sort();
        for t in wanted {
            let rec = self.task(t);
            let msg = match rec.state {
                TState::Memory => ToClient::KeyInMemory {
                    key: WireKey::from(&rec.key),
                    type_name: self.type_name(rec.type_name).to_owned(),
                    nbytes: rec.nbytes,
                },
                TState::Erred => ToClient::KeyErred {
                    key: WireKey::from(&rec.key),
                    error: self.dependency_error(t),
                },
                _ => continue,
            };
            self.send_client(c, msg);
        }
    }

    /// The connection `conn` closed. An identified client is parked until its grace ends (it
    /// may reconnect); an anonymous one is released now.
    pub(crate) fn client_left(&mut self, conn: u64) {
        let Some(c) = self.client_by_conn.remove(&conn) else {
            return;
        };
        if self.client(c).id == 0 {
            self.release_client(c);
            return;
        }
        // Its pending coordination requests fail on the client's side when the connection
        // drops; what it holds (locks, leases) stays until it comes back or the grace ends.
        self.coord_forget_waiters(c, None);
        let until = self.now + self.cfg.client_reconnect_grace;
        self.client_mut(c).parked_until = Some(until);
        self.parked_clients.push(c);
    }

    /// The client closed on purpose ([`ToScheduler::Close`]): released now, not parked.
    fn client_closed(&mut self, c: ClientId) {
        let conn = self.client(c).conn;
        self.client_by_conn.remove(&conn);
        self.release_client(c);
    }

    /// Releases the parked clients whose grace has ended (on the clock tick).
    pub(crate) fn expire_parked_clients(&mut self) {
        if self.parked_clients.is_empty() {
            return;
        }
        let now = self.now;
        let mut expired = Vec::new();
        self.parked_clients.retain(|&c| {
            match self.clients.get(c.0 as usize) {
                Some(Some(r)) => match r.parked_until {
                    Some(t) if t <= now => {
                        expired.push(c);
                        false
                    }
                    Some(_) => true,
                    None => false, // reconnected
                },
                _ => false,
            }
        });
        for c in expired {
            self.release_client(c);
        }
    }

    /// Restores a client as the journal knew it: parked (as if its connection had just
    /// dropped) with the id it made, wanting `wanted`, so that it takes its futures back if
    /// it reconnects within the grace. Keys the scheduler does not know are skipped.
    pub fn restore_client(&mut self, id: u128, name: String, wanted: &[WireKey]) {
        let c = ClientId(self.clients.len() as u32);
        self.clients.push(Some(ClientRec {
            conn: RESTORED_CONN,
            name,
            wanted: FxHashSet::default(),
            staged: Vec::new(),
            staged_broken: Vec::new(),
            id,
            parked_until: Some(self.now + self.cfg.client_reconnect_grace),
        }));
        if id != 0 {
            if let Some(old) = self.client_by_id.insert(id, c) {
                self.client_by_id.insert(id, old);
                self.clients[c.0 as usize] = None;
                return;
            }
        }
        self.parked_clients.push(c);
        for k in wanted {
            if let Some(t) = self.lookup(k) {
                let rec = self.task_mut(t);
                if !rec.wanted_by.contains(&c) {
                    rec.wanted_by.push(c);
                }
                self.client_mut(c).wanted.insert(t);
                self.need(t);
            }
        }
    }

    /// Forgets client `c`'s record and releases everything it holds.
    fn release_client(&mut self, c: ClientId) {
        self.coord_client_left(c);
        let rec = self.clients[c.0 as usize]
            .take()
            .expect("a client being released has a record");
        if rec.id != 0 && self.client_by_id.get(&rec.id) == Some(&c) {
            self.client_by_id.remove(&rec.id);
        }
        self.release_queue.extend(rec.staged);
        let mut wanted: Vec<TaskId> = rec.wanted.into_iter().collect();
        wanted.sort();
        for t in wanted {
            self.unwant(c, t);
        }
    }

    fn client(&self, c: ClientId) -> &ClientRec {
        self.clients[c.0 as usize]
            .as_ref()
            .expect("a client in use has a record")
    }

    fn client_mut(&mut self, c: ClientId) -> &mut ClientRec {
        self.clients[c.0 as usize]
            .as_mut()
            .expect("a client in use has a record")
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
            ToScheduler::Close => self.client_closed(c),
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
