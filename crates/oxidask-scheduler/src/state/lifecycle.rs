//! Graceful lifecycle: retiring workers without losing data (Dask's `retire_workers` and its
//! `RetireWorker` policy), `replicate`, `rebalance`, and the adaptive recommendation (Dask's
//! `Scheduler.adaptive_target` and `workers_to_close`).
//!
//! Data moves the way dependencies do: the scheduler tells a recipient to fetch a key from
//! the workers holding it ([`ToWorker::Acquire`]); the recipient answers
//! [`FromWorker::Acquired`], and only then is it counted as a holder. A retiring worker
//! (Dask's status `closing_gracefully`) is given no new task; each result only it holds is
//! copied to the connected worker holding the fewest bytes; once it holds no result that
//! exists nowhere else it is told to stop and removed (tasks it was still running are
//! rescheduled without blame). If no other worker is left to take its data, the retirement
//! fails and the worker stays (a worker that asked to leave itself, on SIGTERM, leaves anyway).
//! A worker that asked to leave itself is never blamed for leaving: whether its retirement
//! finished, was given up, or it disconnected before the end, the tasks it was running are
//! rescheduled without counting a death against them.

use std::collections::BTreeMap;

use oxidask_core::Key;
use oxidask_protocol::{ToClient, ToWorker, WireKey, WorkerSummary};
use rustc_hash::{FxHashMap, FxHashSet};

use super::{ClientId, SchedulerState, TState, TaskId, WorkerId};

/// Times a retiring worker's result may fail to arrive at a recipient before the retirement
/// is given up.
const MAX_EVACUATION_FAILURES: u8 = 3;

/// Who waits for an operation's end.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Requester {
    /// A client's request.
    Client(ClientId, u64),
    /// A worker retiring itself (SIGTERM).
    Worker,
}

/// What an operation is.
#[derive(Debug)]
enum OpKind {
    /// Retiring these workers; each gets an outcome.
    Retire {
        workers: Vec<WorkerId>,
        outcomes: FxHashMap<WorkerId, Result<WorkerSummary, String>>,
    },
    /// Copies (replicate, rebalance).
    Move { copies: u64, errors: Vec<String> },
}

#[derive(Debug)]
struct Op {
    requester: Requester,
    kind: OpKind,
    /// Copies still on their way (moves).
    pending: usize,
}

/// One copy on its way to a recipient.
#[derive(Clone, Copy, Debug)]
struct Transfer {
    /// The move operation it belongs to (`None`: evacuating a retiring worker, or a spare).
    op: Option<u64>,
    /// Drop this holder's copy once the recipient has it (rebalance).
    drop_from: Option<WorkerId>,
    /// A spare copy of an expensive result ([`SchedulerState::protect`]).
    spare: bool,
}

/// The lifecycle's bookkeeping inside [`SchedulerState`].
#[derive(Default)]
pub(crate) struct Lifecycle {
    /// Workers closing gracefully.
    pub(crate) retiring: BTreeMap<WorkerId, ()>,
    /// Copies on their way, by key and recipient.
    transfers: FxHashMap<(Key, WorkerId), Transfer>,
    /// Keys of retiring workers with a copy on its way.
    evacuating: FxHashSet<Key>,
    /// Failed evacuations per key.
    failures: FxHashMap<Key, u8>,
    /// Expensive results with one copy that found no other worker to keep a spare: tried
    /// again when a worker joins.
    unprotected: FxHashSet<TaskId>,
    /// Awaited single-copy results counted against their holder's budget of work at risk,
    /// with the holder and the lineage counted.
    at_risk: FxHashMap<TaskId, (WorkerId, f32)>,
    /// Per worker: seconds of awaited work only it holds (the sum of its `at_risk`).
    risk: FxHashMap<WorkerId, f64>,
    ops: BTreeMap<u64, Op>,
    next_op: u64,
}

impl Lifecycle {
    /// Nothing in progress.
    pub(crate) fn is_idle(&self) -> bool {
        self.retiring.is_empty() && self.transfers.is_empty() && self.ops.is_empty()
    }
}

/// The adaptive recommendation.
#[derive(Clone, Debug, PartialEq)]
pub struct Recommendation {
    /// Workers wanted.
    pub target: usize,
    /// Data addresses of the workers to retire to get there, first to close first.
    pub workers_to_close: Vec<String>,
}

impl SchedulerState {
    /// Whether `w` takes no new tasks (paused by its memory monitor, or retiring).
    pub(crate) fn closed_to_work(&self, w: WorkerId) -> bool {
        self.paused.contains(&w) || self.life.retiring.contains_key(&w)
    }

    /// Whether `w` is closing gracefully.
    pub fn is_retiring(&self, conn: u64) -> bool {
        self.worker_by_conn
            .get(&conn)
            .is_some_and(|w| self.life.retiring.contains_key(w))
    }

    fn worker_summary(&self, w: WorkerId) -> WorkerSummary {
        let r = self.worker(w);
        WorkerSummary {
            name: r.info.name.clone(),
            address: r.info.data_address.clone(),
            nthreads: r.info.nthreads,
            memory_limit: r.info.memory_limit,
            memory: r.metrics.memory.max(r.nbytes),
            processing: r.processing.len() as u64,
            keys: r.has_what.len() as u64,
            cpu: r.metrics.cpu,
            resources: r.info.resources.clone(),
            rss: r.metrics.rss,
            spilled: r.metrics.spilled,
        }
    }

    fn find_worker(&self, name: &str) -> Option<WorkerId> {
        let name = oxidask_protocol::strip_scheme(name);
        self.live_workers()
            .find(|(_, r)| r.info.name == name || r.info.data_address == name)
            .map(|(w, _)| w)
    }

    /// Bytes of results only `w` holds.
    fn unique_bytes(&self, w: WorkerId) -> u64 {
        self.worker(w)
            .has_what
            .iter()
            .filter(|&&t| self.task(t).who_has.len() == 1)
            .map(|&t| self.task(t).nbytes)
            .sum()
    }

    // ---- retiring ------------------------------------------------------------------------

    /// Retires `names` (names or data addresses), or — when empty — `n` workers the scheduler
    /// picks ([`SchedulerState::workers_to_close`]).
    pub(crate) fn retire_workers(&mut self, requester: Requester, names: Vec<String>, n: u32) {
        let mut workers = Vec::new();
        let mut outcomes = FxHashMap::default();
        let mut unknown = Vec::new();
        if names.is_empty() && n == 0 {
            workers = self.workers_to_close(None, Some(2.0));
        } else if names.is_empty() {
            workers = self.workers_to_close(Some(n as usize), None);
        } else {
            for name in names {
                match self.find_worker(&name) {
                    Some(w) if !workers.contains(&w) => workers.push(w),
                    Some(_) => {}
                    None => unknown.push(name),
                }
            }
        }
        let id = self.life.next_op;
        self.life.next_op += 1;
        if !unknown.is_empty() {
            // Reported with the outcome; a placeholder id keeps them apart from real workers.
            outcomes.insert(
                WorkerId(u32::MAX),
                Err(format!(
                    "no connected worker is named {} (give names or data addresses as `scheduler_info()` lists them)",
                    unknown.join(", ")
                )),
            );
        }
        self.life.ops.insert(
            id,
            Op {
                requester,
                kind: OpKind::Retire {
                    workers: workers.clone(),
                    outcomes,
                },
                pending: 0,
            },
        );
        for w in workers {
            if self.life.retiring.insert(w, ()).is_none() {
                self.update_worker_sets(w);
                // Queued work it had not started goes elsewhere as other workers ask for it.
            }
        }
        self.advance_lifecycle();
    }

    /// Plans copies of retiring workers' unique results, finishes retirements that are done,
    /// and replies to operations that are over. Called after every event while anything is
    /// in progress.
    pub(crate) fn advance_lifecycle(&mut self) {
        if self.life.is_idle() {
            return;
        }
        let retiring: Vec<WorkerId> = self.life.retiring.keys().copied().collect();
        for w in retiring {
            if !self.life.retiring.contains_key(&w) {
                continue;
            }
            let mut unique: Vec<TaskId> = self
                .worker(w)
                .has_what
                .iter()
                .copied()
                .filter(|&t| self.task(t).who_has.len() == 1)
                .collect();
            if unique.is_empty() {
                self.finish_retirement(w);
                continue;
            }
            unique.retain(|&t| !self.life.evacuating.contains(&self.task(t).key));
            if unique.is_empty() {
                continue;
            }
            let failed = unique.iter().find(|&&t| {
                self.life
                    .failures
                    .get(&self.task(t).key)
                    .is_some_and(|&n| n >= MAX_EVACUATION_FAILURES)
            });
            if let Some(&t) = failed {
                let why = format!(
                    "worker {} could not be retired: its result {} could not be copied to another worker {MAX_EVACUATION_FAILURES} times",
                    self.worker(w).info.name,
                    self.task(t).key
                );
                self.abort_retirement(w, why);
                continue;
            }
            self.evacuate(w, unique);
        }
        self.finish_ops();
    }

    /// Sends each of `keys` (held only by retiring `w`) to the open worker holding the fewest
    /// bytes; gives the retirement up if there is none.
    fn evacuate(&mut self, w: WorkerId, mut keys: Vec<TaskId>) {
        let mut recipients: Vec<(bool, u64, WorkerId)> = self
            .live_workers()
            .filter(|(r, _)| *r != w && !self.life.retiring.contains_key(r))
            .map(|(r, rec)| (self.paused.contains(&r), rec.nbytes, r))
            .collect();
        if recipients.is_empty() {
            let rec = self.worker(w);
            let why = format!(
                "worker {} could not be retired: it holds {} result(s) that exist nowhere else and no other worker is connected to take them; start another worker first (or release the results)",
                rec.info.name,
                keys.len()
            );
            self.abort_retirement(w, why);
            return;
        }
        // Largest first, each to the least loaded (paused workers last).
        keys.sort_by_key(|&t| std::cmp::Reverse(self.task(t).nbytes));
        let source = self.worker(w).info.data_address.clone();
        let mut batches: BTreeMap<WorkerId, Vec<(WireKey, Vec<String>)>> = BTreeMap::new();
        for t in keys {
            let i = (0..recipients.len())
                .min_by_key(|&i| (recipients[i].0, recipients[i].1, recipients[i].2))
                .expect("not empty");
            let r = recipients[i].2;
            recipients[i].1 += self.task(t).nbytes;
            let key = self.task(t).key;
            self.life.evacuating.insert(key);
            self.life.transfers.insert(
                (key, r),
                Transfer {
                    op: None,
                    drop_from: None,
                    spare: false,
                },
            );
            batches
                .entry(r)
                .or_default()
                .push((WireKey::from(&key), vec![source.clone()]));
        }
        for (r, who_has) in batches {
            self.send_worker(r, ToWorker::Acquire { who_has });
        }
    }

    /// `w` holds nothing unique any more: it is told to stop and removed.
    fn finish_retirement(&mut self, w: WorkerId) {
        let summary = self.worker_summary(w);
        self.life.retiring.remove(&w);
        self.record_outcome(w, Ok(summary));
        let mut processing: Vec<TaskId> = self.worker(w).processing.iter().copied().collect();
        processing.sort_unstable_by_key(|&t| self.task(t).priority);
        for &t in &processing {
            self.unassign(t, w);
        }
        self.remove_worker(
            w,
            "retired gracefully (its results were copied to other workers)",
            true,
        );
        for t in processing {
            if self.exists(t) && self.task(t).state == TState::Processing(w) {
                self.reschedule(t);
            }
        }
    }

    /// The retirement of `w` failed: it works again (or, if it asked to leave itself, it
    /// leaves anyway and its unique results are recomputed).
    fn abort_retirement(&mut self, w: WorkerId, why: String) {
        self.life.retiring.remove(&w);
        let self_requested = self.leaving_voluntarily(w);
        self.record_outcome(w, Err(why.clone()));
        if self_requested {
            self.remove_worker(
                w,
                &format!("{why}; it leaves anyway (it was asked to stop)"),
                true,
            );
        } else {
            self.update_worker_sets(w);
            self.fill(w);
        }
    }

    /// Whether `w` asked to retire itself (SIGTERM) and that retirement is not over: its
    /// leaving now, through the retirement or not, is voluntary and no evidence against the
    /// tasks it was running.
    pub(crate) fn leaving_voluntarily(&self, w: WorkerId) -> bool {
        self.life.ops.values().any(|op| {
            matches!(op.requester, Requester::Worker)
                && matches!(&op.kind, OpKind::Retire { workers, .. } if workers.contains(&w))
        })
    }

    fn record_outcome(&mut self, w: WorkerId, outcome: Result<WorkerSummary, String>) {
        for op in self.life.ops.values_mut() {
            if let OpKind::Retire { workers, outcomes } = &mut op.kind {
                if workers.contains(&w) && !outcomes.contains_key(&w) {
                    outcomes.insert(w, outcome.clone());
                }
            }
        }
    }

    /// Replies to every operation that is over.
    fn finish_ops(&mut self) {
        let done: Vec<u64> = self
            .life
            .ops
            .iter()
            .filter(|(_, op)| match &op.kind {
                OpKind::Retire { workers, outcomes } => {
                    workers.iter().all(|w| outcomes.contains_key(w))
                }
                OpKind::Move { .. } => op.pending == 0,
            })
            .map(|(&id, _)| id)
            .collect();
        for id in done {
            let op = self.life.ops.remove(&id).expect("listed");
            let Requester::Client(c, request) = op.requester else {
                continue;
            };
            let msg = match op.kind {
                OpKind::Retire { workers, outcomes } => {
                    let mut retired = Vec::new();
                    let mut errors = Vec::new();
                    let mut order: Vec<WorkerId> = workers;
                    order.push(WorkerId(u32::MAX));
                    for w in order {
                        match outcomes.get(&w) {
                            Some(Ok(s)) => retired.push(s.clone()),
                            Some(Err(e)) => errors.push(e.clone()),
                            None => {}
                        }
                    }
                    ToClient::Retired {
                        request,
                        workers: retired,
                        error: (!errors.is_empty()).then(|| errors.join("; ")),
                    }
                }
                OpKind::Move { copies, errors } => ToClient::Moved {
                    request,
                    copies,
                    error: (!errors.is_empty()).then(|| errors.join("; ")),
                },
            };
            self.send_client(c, msg);
        }
    }

    /// Worker `r` fetched (or failed to fetch) what it was told to acquire.
    pub(crate) fn acquired(
        &mut self,
        r: WorkerId,
        keys: Vec<(WireKey, String, u64)>,
        missing: Vec<WireKey>,
    ) {
        for (wk, type_name, nbytes) in keys {
            let transfer = wk.to_key().ok().and_then(|k| self.end_transfer(k, r, None));
            let Some(t) = self.lookup(&wk) else {
                self.free_on(r, wk);
                continue;
            };
            match self.task(t).state {
                TState::Memory => {}
                // Being computed on `r` meanwhile (it was released and submitted again): the
                // copy is its result (freeing the key would cancel the computation).
                TState::Processing(p) if p == r => {
                    self.unassign(t, r);
                    let type_id = self.type_id(type_name);
                    self.put_in_memory(t, r, type_id, nbytes);
                    self.fill(r);
                    continue;
                }
                _ => {
                    self.free_on(r, wk);
                    continue;
                }
            }
            self.add_replica(t, r, nbytes.max(self.task(t).nbytes));
            if let Some(tr) = transfer {
                if let Some(op) = tr.op.and_then(|id| self.life.ops.get_mut(&id)) {
                    if let OpKind::Move { copies, .. } = &mut op.kind {
                        *copies += 1;
                    }
                }
                if let Some(s) = tr.drop_from {
                    self.drop_replica(t, s);
                }
            }
        }
        for wk in missing {
            if let Ok(k) = wk.to_key() {
                let why = format!("{wk} could not be fetched from any of its holders");
                self.end_transfer(k, r, Some(why));
            }
        }
        self.advance_lifecycle();
    }

    /// A copy of `key` to `r` arrived (`failed: None`) or did not; returns its record.
    fn end_transfer(&mut self, key: Key, r: WorkerId, failed: Option<String>) -> Option<Transfer> {
        let tr = self.life.transfers.remove(&(key, r))?;
        if tr.op.is_none() && !tr.spare {
            self.life.evacuating.remove(&key);
            if failed.is_some() {
                *self.life.failures.entry(key).or_default() += 1;
            } else {
                self.life.failures.remove(&key);
            }
        }
        if let Some(op) = tr.op.and_then(|id| self.life.ops.get_mut(&id)) {
            op.pending = op.pending.saturating_sub(1);
            if let (Some(why), OpKind::Move { errors, .. }) = (failed, &mut op.kind) {
                if errors.len() < 10 {
                    errors.push(why);
                }
            }
        }
        Some(tr)
    }

    /// `s` no longer holds `t` (another worker does).
    fn drop_replica(&mut self, t: TaskId, s: WorkerId) {
        if !self.workers.get(s.0 as usize).is_some_and(|w| w.is_some()) {
            return;
        }
        let task = self.task(t);
        if task.who_has.len() < 2 || !task.who_has.contains(&s) {
            return;
        }
        let (nbytes, key) = (task.nbytes, WireKey::from(&task.key));
        self.task_mut(t).who_has.retain(|x| *x != s);
        let worker = self.worker_mut(s);
        if worker.has_what.remove(&t) {
            worker.nbytes = worker.nbytes.saturating_sub(nbytes);
        }
        self.free_on(s, key);
    }

    /// Worker `w` is being removed: copies to it will not arrive, and a retirement of it
    /// that had not finished is over.
    pub(crate) fn lifecycle_worker_removed(&mut self, w: WorkerId, reason: &str) {
        if self.life.is_idle() {
            return;
        }
        let lost: Vec<Key> = self
            .life
            .transfers
            .keys()
            .filter(|(_, r)| *r == w)
            .map(|(k, _)| *k)
            .collect();
        for k in lost {
            self.end_transfer(
                k,
                w,
                Some(format!("the worker receiving {k} left ({reason})")),
            );
        }
        for tr in self.life.transfers.values_mut() {
            if tr.drop_from == Some(w) {
                tr.drop_from = None;
            }
        }
        if self.life.retiring.remove(&w).is_some() {
            let name = self.worker(w).info.name.clone();
            self.record_outcome(
                w,
                Err(format!(
                    "worker {name} left before its retirement finished ({reason})"
                )),
            );
        }
    }

    // ---- spare copies of expensive results ------------------------------------------------

    /// Keeps what a worker's death can cost under [`super::Config::replicate_expensive_s`]:
    /// each worker may hold that many seconds of awaited work (the lineage of single-copy
    /// results that dependents or clients still wait for) only it has; a result past that
    /// budget, or whose own lineage exceeds it, gets a second copy on another worker, so a
    /// death costs a fetch from the survivor instead of recomputing. Results cheaper to
    /// recompute than ten times their transfer time are never copied (large data stays
    /// single). Dask keeps one copy; this is bounded because each result's lineage counts
    /// only inputs released after it ran. The recipient is the open worker holding the
    /// fewest bytes, within its memory target.
    pub(crate) fn protect(&mut self, t: TaskId) {
        let threshold = self.cfg.replicate_expensive_s;
        if threshold <= 0.0 || !self.exists(t) {
            return;
        }
        let task = self.task(t);
        let awaited = !task.wanted_by.is_empty()
            || task
                .dependents
                .iter()
                .any(|&d| self.task(d).state.is_active());
        let lineage = task.lineage as f64;
        if task.state != TState::Memory
            || task.who_has.len() != 1
            || task.actor
            || task.spec.is_none()
            || !awaited
            || lineage < 10.0 * task.nbytes as f64 / self.cfg.bandwidth
            || self.life.at_risk.contains_key(&t)
        {
            return;
        }
        let key = task.key;
        let holder = task.who_has[0];
        let nbytes = task.nbytes;
        let risk = self.life.risk.get(&holder).copied().unwrap_or(0.0);
        if risk + lineage <= threshold {
            // Cheap enough to lose: counted against the holder's budget.
            *self.life.risk.entry(holder).or_default() += lineage;
            self.life.at_risk.insert(t, (holder, lineage as f32));
            return;
        }
        if self.life.transfers.keys().any(|(k, _)| *k == key) {
            return;
        }
        let target = self.cfg.memory_target_fraction;
        let recipient = self
            .live_workers()
            .filter(|&(r, rec)| {
                r != holder
                    && !self.closed_to_work(r)
                    && (rec.info.memory_limit == 0
                        || (rec.nbytes + nbytes) as f64 <= target * rec.info.memory_limit as f64)
            })
            .min_by_key(|&(r, rec)| (rec.nbytes, r))
            .map(|(r, _)| r);
        let Some(r) = recipient else {
            self.life.unprotected.insert(t);
            return;
        };
        self.life.unprotected.remove(&t);
        self.life.transfers.insert(
            (key, r),
            Transfer {
                op: None,
                drop_from: None,
                spare: true,
            },
        );
        let source = self.worker(holder).info.data_address.clone();
        self.send_worker(
            r,
            ToWorker::Acquire {
                who_has: vec![(WireKey::from(&key), vec![source])],
            },
        );
    }

    /// `t` is no longer awaited work only one worker holds (released, copied, or lost): its
    /// lineage leaves its holder's budget.
    pub(crate) fn no_longer_at_risk(&mut self, t: TaskId) {
        if let Some((w, lineage)) = self.life.at_risk.remove(&t) {
            if let Some(r) = self.life.risk.get_mut(&w) {
                *r = (*r - lineage as f64).max(0.0);
            }
        }
    }

    /// Worker `w` is gone: nothing is at risk on it any more.
    pub(crate) fn forget_risk_of(&mut self, w: WorkerId) {
        if self.life.risk.remove(&w).is_some() {
            self.life.at_risk.retain(|_, (h, _)| *h != w);
        }
    }

    /// A worker joined: expensive results that found no recipient for a spare copy try again.
    pub(crate) fn protect_exposed(&mut self) {
        if self.life.unprotected.is_empty() {
            return;
        }
        let mut exposed: Vec<TaskId> = self.life.unprotected.drain().collect();
        exposed.sort_unstable();
        for t in exposed {
            self.protect(t);
        }
    }

    // ---- replicate and rebalance ---------------------------------------------------------

    /// Copies each key onto `n` workers (0: all), dropping extra copies (Dask's `replicate`).
    pub(crate) fn replicate(&mut self, c: ClientId, request: u64, keys: Vec<WireKey>, n: u32) {
        let id = self.new_move_op(c, request);
        let open: Vec<WorkerId> = self
            .live_workers()
            .filter(|(w, _)| !self.life.retiring.contains_key(w))
            .map(|(w, _)| w)
            .collect();
        let n = if n == 0 {
            open.len()
        } else {
            (n as usize).min(open.len())
        };
        let mut load: FxHashMap<WorkerId, u64> =
            open.iter().map(|&w| (w, self.worker(w).nbytes)).collect();
        let mut errors = Vec::new();
        let mut batches: BTreeMap<WorkerId, Vec<(WireKey, Vec<String>)>> = BTreeMap::new();
        let mut pending = 0;
        for wk in keys {
            let t = match self.lookup(&wk) {
                Some(t) if self.task(t).state == TState::Memory => t,
                _ => {
                    errors.push(format!(
                        "{wk} is not in memory on the cluster (wait for its future first)"
                    ));
                    continue;
                }
            };
            let key = self.task(t).key;
            let holders: Vec<WorkerId> = self.task(t).who_has.iter().copied().collect();
            let on_way = open
                .iter()
                .filter(|&&r| self.life.transfers.contains_key(&(key, r)))
                .count();
            let have = holders.len() + on_way;
            if have < n {
                let mut candidates: Vec<WorkerId> = open
                    .iter()
                    .copied()
                    .filter(|r| {
                        !holders.contains(r) && !self.life.transfers.contains_key(&(key, *r))
                    })
                    .collect();
                candidates.sort_by_key(|r| (load[r], *r));
                let sources: Vec<String> = holders
                    .iter()
                    .map(|&h| self.worker(h).info.data_address.clone())
                    .collect();
                for r in candidates.into_iter().take(n - have) {
                    *load.get_mut(&r).expect("open") += self.task(t).nbytes;
                    self.life.transfers.insert(
                        (key, r),
                        Transfer {
                            op: Some(id),
                            drop_from: None,
                            spare: false,
                        },
                    );
                    pending += 1;
                    batches.entry(r).or_default().push((wk, sources.clone()));
                }
            } else if holders.len() > n && n > 0 {
                // Extra copies go from the most loaded holders.
                let mut extra = holders.clone();
                extra.sort_by_key(|h| std::cmp::Reverse((self.worker(*h).nbytes, *h)));
                for h in extra.into_iter().take(holders.len() - n) {
                    self.drop_replica(t, h);
                }
            }
        }
        for (r, who_has) in batches {
            self.send_worker(r, ToWorker::Acquire { who_has });
        }
        self.set_move_op(id, pending, errors);
    }

    /// Moves results from workers holding more than the mean to those holding less, so each
    /// ends near the mean, never filling a recipient past its memory target (Dask's
    /// `rebalance`; the measure is the bytes of results each holds). `keys`: only these may
    /// move (empty: any).
    pub(crate) fn rebalance(&mut self, c: ClientId, request: u64, keys: Vec<WireKey>) {
        let id = self.new_move_op(c, request);
        let only: Option<FxHashSet<TaskId>> =
            (!keys.is_empty()).then(|| keys.iter().filter_map(|k| self.lookup(k)).collect());
        let open: Vec<WorkerId> = self
            .live_workers()
            .filter(|(w, _)| !self.life.retiring.contains_key(w))
            .map(|(w, _)| w)
            .collect();
        let mut pending = 0;
        if open.len() >= 2 {
            let mut load: BTreeMap<WorkerId, u64> =
                open.iter().map(|&w| (w, self.worker(w).nbytes)).collect();
            let total: u64 = load.values().sum();
            let mean = total as f64 / open.len() as f64;
            let target = self.cfg.memory_target_fraction;
            let half_gap = |w: WorkerId, s: &Self| {
                let limit = s.worker(w).info.memory_limit;
                if limit > 0 {
                    (0.05 * limit as f64).min(0.05 * mean.max(1.0)).max(1.0)
                } else {
                    0.05 * mean
                }
            };
            let mut senders: Vec<WorkerId> = open
                .iter()
                .copied()
                .filter(|&w| load[&w] as f64 > mean + half_gap(w, self))
                .collect();
            senders.sort_by_key(|w| std::cmp::Reverse((load[w], *w)));
            let mut batches: BTreeMap<WorkerId, Vec<(WireKey, Vec<String>)>> = BTreeMap::new();
            for s in senders {
                let mut held: Vec<TaskId> = self
                    .worker(s)
                    .has_what
                    .iter()
                    .copied()
                    .filter(|t| only.as_ref().is_none_or(|o| o.contains(t)))
                    .filter(|&t| self.task(t).state == TState::Memory)
                    .collect();
                held.sort_by_key(|&t| (std::cmp::Reverse(self.task(t).nbytes), t));
                let source = self.worker(s).info.data_address.clone();
                for t in held {
                    if load[&s] as f64 <= mean + half_gap(s, self) {
                        break;
                    }
                    let (key, nb) = (self.task(t).key, self.task(t).nbytes);
                    let recipient = open
                        .iter()
                        .copied()
                        .filter(|&r| {
                            r != s
                                && !self.task(t).who_has.contains(&r)
                                && !self.life.transfers.contains_key(&(key, r))
                        })
                        .min_by_key(|r| (load[r], *r));
                    let Some(r) = recipient else { continue };
                    let limit = self.worker(r).info.memory_limit;
                    let fits_mean = (load[&r] + nb) as f64 <= mean + half_gap(r, self);
                    let fits_limit = limit == 0 || (load[&r] + nb) as f64 <= target * limit as f64;
                    if !fits_mean || !fits_limit {
                        continue;
                    }
                    *load.get_mut(&s).expect("open") -= nb;
                    *load.get_mut(&r).expect("open") += nb;
                    self.life.transfers.insert(
                        (key, r),
                        Transfer {
                            op: Some(id),
                            drop_from: Some(s),
                            spare: false,
                        },
                    );
                    pending += 1;
                    batches
                        .entry(r)
                        .or_default()
                        .push((WireKey::from(&key), vec![source.clone()]));
                }
            }
            for (r, who_has) in batches {
                self.send_worker(r, ToWorker::Acquire { who_has });
            }
        }
        self.set_move_op(id, pending, Vec::new());
    }

    fn new_move_op(&mut self, c: ClientId, request: u64) -> u64 {
        let id = self.life.next_op;
        self.life.next_op += 1;
        self.life.ops.insert(
            id,
            Op {
                requester: Requester::Client(c, request),
                kind: OpKind::Move {
                    copies: 0,
                    errors: Vec::new(),
                },
                pending: usize::MAX, // set once planned
            },
        );
        id
    }

    fn set_move_op(&mut self, id: u64, pending: usize, errs: Vec<String>) {
        if let Some(op) = self.life.ops.get_mut(&id) {
            op.pending = pending;
            if let OpKind::Move { errors, .. } = &mut op.kind {
                errors.extend(errs);
            }
        }
        self.finish_ops();
    }

    // ---- a worker that reconnected ---------------------------------------------------------

    /// Worker `w` (re)joined holding these results: keys in memory gain it as a holder, keys
    /// lost and not yet recomputed take its copy, the rest are freed on it.
    pub(crate) fn holding(&mut self, w: WorkerId, keys: Vec<(WireKey, String, u64)>) {
        for (wk, type_name, nbytes) in keys {
            let Some(t) = self.lookup(&wk) else {
                self.free_on(w, wk);
                continue;
            };
            match self.task(t).state {
                TState::Memory => self.add_replica(t, w, nbytes),
                TState::Queued | TState::NoWorker => {
                    self.unpark(t);
                    let type_id = self.type_id(type_name);
                    self.put_in_memory(t, w, type_id, nbytes);
                }
                TState::Processing(p) => {
                    self.unassign(t, p);
                    if p != w {
                        self.free_on(p, wk);
                    }
                    let type_id = self.type_id(type_name);
                    self.put_in_memory(t, w, type_id, nbytes);
                    self.fill(p);
                }
                TState::Waiting if self.task(t).storing == 0 => {
                    self.take_held_waiting(t, w, type_name, nbytes)
                }
                _ => self.free_on(w, wk),
            }
        }
    }

    // ---- adaptive ------------------------------------------------------------------------

    /// Dask's `Scheduler.adaptive_target`: the workers needed to finish the queued and
    /// running work in `target_duration` (per-prefix duration estimates, scaled by the
    /// average threads per worker, capped by the tasks there are), more when results fill
    /// more than the memory target of the workers' limits; when fewer than connected, the
    /// idle workers that can go without leaving the rest short of memory
    /// ([`SchedulerState::workers_to_close`]).
    pub fn adaptive_target(&self, target_duration: std::time::Duration) -> Recommendation {
        let td = target_duration.as_secs_f64().max(1e-3);
        let parked: Vec<TaskId> = self
            .queued
            .iter()
            .map(|&(_, t)| t)
            .chain(self.no_worker.keys().map(|&(_, t)| t))
            .collect();
        let tasks_ready = parked.len();
        let mut queued_occupancy: f64 = parked.iter().take(100).map(|&t| self.estimate(t)).sum();
        if tasks_ready > 100 {
            queued_occupancy *= tasks_ready as f64 / 100.0;
        }
        let workers: Vec<(WorkerId, &super::WorkerRec)> = self
            .live_workers()
            .filter(|(w, _)| !self.life.retiring.contains_key(w))
            .collect();
        let total_occupancy: f64 = workers.iter().map(|(_, r)| r.occupancy).sum();
        let mut cpu = ((total_occupancy + queued_occupancy) / td).ceil() as usize;
        // A few long tasks do not ask for many workers: no more than there are tasks.
        let in_flight = tasks_ready
            + workers
                .iter()
                .map(|(_, r)| r.processing.len())
                .sum::<usize>();
        cpu = cpu.min(in_flight);
        if !workers.is_empty() {
            let nthreads: usize = workers
                .iter()
                .map(|(_, r)| r.info.nthreads.max(1) as usize)
                .sum();
            cpu = (cpu as f64 / nthreads as f64 * workers.len() as f64).ceil() as usize;
        }
        if tasks_ready > 0 && workers.is_empty() {
            cpu = cpu.max(1);
        }
        let limit: u64 = workers.iter().map(|(_, r)| r.info.memory_limit).sum();
        let used: u64 = workers.iter().map(|(_, r)| r.nbytes).sum();
        let limited = workers.iter().all(|(_, r)| r.info.memory_limit > 0);
        let memory =
            if limited && limit > 0 && used as f64 > self.cfg.memory_target_fraction * limit as f64
            {
                2 * workers.len()
            } else {
                0
            };
        let target = cpu.max(memory);
        if target >= workers.len() {
            return Recommendation {
                target,
                workers_to_close: Vec::new(),
            };
        }
        let close = self.workers_to_close(None, Some(2.0));
        let close: Vec<WorkerId> = close.into_iter().take(workers.len() - target).collect();
        Recommendation {
            target: workers.len() - close.len(),
            workers_to_close: close
                .into_iter()
                .map(|w| self.worker(w).info.data_address.clone())
                .collect(),
        }
    }

    /// Dask's `workers_to_close`: workers that could be retired, idle ones holding the least
    /// data only they hold first. With `n`, exactly `n` (busy ones too if needed); without,
    /// only idle workers, and only while those left keep `memory_ratio` times the bytes the
    /// cluster holds in their limits (a worker without a memory limit counts as unlimited).
    pub fn workers_to_close(&self, n: Option<usize>, memory_ratio: Option<f64>) -> Vec<WorkerId> {
        let mut open: Vec<WorkerId> = self
            .live_workers()
            .filter(|(w, _)| !self.life.retiring.contains_key(w))
            .map(|(w, _)| w)
            .collect();
        if n.is_none() && open.iter().all(|&w| !self.worker(w).processing.is_empty()) {
            return Vec::new();
        }
        let ratio = if n.is_none() {
            memory_ratio.or(Some(2.0))
        } else {
            memory_ratio
        };
        let total: u64 = open.iter().map(|&w| self.worker(w).nbytes).sum();
        let unlimited = open.iter().any(|&w| self.worker(w).info.memory_limit == 0);
        let mut limit: u64 = open.iter().map(|&w| self.worker(w).info.memory_limit).sum();
        open.sort_by_key(|&w| {
            let r = self.worker(w);
            (!r.processing.is_empty(), self.unique_bytes(w), r.nbytes, w)
        });
        let mut out = Vec::new();
        for w in open {
            let r = self.worker(w);
            if let Some(n) = n {
                if out.len() >= n {
                    break;
                }
            } else if !r.processing.is_empty() {
                break;
            }
            limit = limit.saturating_sub(r.info.memory_limit);
            let memory_ok = match ratio {
                None => true,
                Some(ratio) => {
                    let others_unlimited = unlimited
                        && self.live_workers().any(|(o, or)| {
                            o != w && !out.contains(&o) && or.info.memory_limit == 0
                        });
                    others_unlimited || limit as f64 >= ratio * total as f64
                }
            };
            if n.is_some() || memory_ok {
                out.push(w);
            } else {
                break;
            }
        }
        out
    }

    /// The adaptive reply to a client.
    pub(crate) fn adaptive_reply(&mut self, c: ClientId, request: u64, target_duration_us: u64) {
        let rec = self.adaptive_target(std::time::Duration::from_micros(target_duration_us));
        self.send_client(
            c,
            ToClient::AdaptiveTarget {
                request,
                target: rec.target as u32,
                workers_to_close: rec.workers_to_close,
            },
        );
    }
}
