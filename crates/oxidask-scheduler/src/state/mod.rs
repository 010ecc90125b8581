//! The scheduler's state machine.
//!
//! [`SchedulerState`] owns every record and changes only through [`SchedulerState::handle`]:
//! an [`Event`] (a message from a client or worker, a connection coming or going, a clock
//! tick) goes in, [`Effect`]s (messages to send, connections to close) come out. No I/O, no
//! clock reads, no threads: the network shell in [`crate::server`] feeds it, and tests drive
//! it directly with [`SchedulerState::validate`] after every step.
//!
//! Task states are Dask's: released, waiting, queued, no-worker, processing, memory, erred
//! (and forgotten: the record is dropped). Every change goes through one function that logs
//! it with the stimulus that caused it, so [`SchedulerState::story`] explains any key.

mod clients;
mod coord;
mod index;
mod lifecycle;
mod log;
pub mod observe;
mod records;
mod restart;
mod restore;
mod shuffle;
mod tasks;
mod validate;
mod workers;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use oxidask_core::{Key, Prefix};
use oxidask_protocol::{FromWorker, ToClient, ToScheduler, ToWorker, WireKey, WorkerInfo};
use rustc_hash::FxHashMap;

pub use coord::{Coord, CoordLimits};
pub use lifecycle::Recommendation;
pub use log::{Stimulus, Transition, TransitionLog};
pub use records::{
    ClientId, ClientRec, Constraints, TState, TaskId, TaskList, TaskRec, WorkerId, WorkerMetrics,
    WorkerRec,
};
pub use restore::{LiveClient, LiveGraph};
pub use shuffle::MAX_RESTARTS as P2P_MAX_RESTARTS;

/// Tunables of the scheduler's policies.
#[derive(Clone, Debug)]
pub struct Config {
    /// A worker counts as saturated once it has this many assigned tasks per thread (Dask's
    /// `worker-saturation`) and at least [`Config::min_assigned_seconds`] of work per thread.
    /// Root tasks beyond that wait in the scheduler's queue.
    pub worker_saturation: f64,
    /// Seconds of estimated work per thread a worker may be given before it counts as
    /// saturated, so very short tasks keep the pipeline full across the network round trip.
    pub min_assigned_seconds: f64,
    /// Hard cap on assigned tasks per thread, whatever their estimated durations.
    pub max_assigned_per_thread: u32,
    /// Duration assumed for a task whose kind has not run yet (seconds).
    pub default_task_duration: f64,
    /// Assumed network bandwidth for placement and stealing decisions (bytes per second).
    pub bandwidth: f64,
    /// Times a task may be on a worker that dies before it is blamed and failed.
    pub allowed_failures: u16,
    /// A worker not heard from for this long is removed.
    pub heartbeat_timeout: Duration,
    /// A task that no connected worker may run fails after this long (while workers exist).
    pub no_worker_timeout: Duration,
    /// Transitions kept for `story`.
    pub log_capacity: usize,
    /// The fraction of the workers' memory limits that results may fill before the adaptive
    /// target asks for more workers, and that `rebalance` fills a recipient to at most
    /// (`distributed.worker.memory.target`, default 0.6).
    pub memory_target_fraction: f64,
    /// Seconds of awaited work (the lineage of results dependents or clients wait for) a
    /// worker may be the only one to hold; results past that get a second copy on another
    /// worker (`distributed.scheduler.replicate-expensive`); 0: never (as Dask).
    pub replicate_expensive_s: f64,
    /// How long the futures of a client whose connection dropped are kept for it to
    /// reconnect (`distributed.scheduler.client-reconnect-grace`, default 30 s); an explicit
    /// close releases them at once.
    pub client_reconnect_grace: Duration,
    /// Where the network shell journals the graph state so a restarted scheduler resumes
    /// (`distributed.scheduler.journal`, `--journal DIR`; see [`crate::journal`]); the state
    /// machine itself never reads it. `None`: no journal.
    pub journal: Option<std::path::PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            worker_saturation: 1.1,
            min_assigned_seconds: 0.005,
            max_assigned_per_thread: 1000,
            default_task_duration: 0.5,
            bandwidth: 100e6,
            allowed_failures: 3,
            heartbeat_timeout: Duration::from_secs(30),
            no_worker_timeout: Duration::from_secs(5),
            log_capacity: 200_000,
            memory_target_fraction: 0.6,
            replicate_expensive_s: 1.0,
            client_reconnect_grace: Duration::from_secs(30),
            journal: None,
        }
    }
}

impl Config {
    /// The policy the configuration describes: `distributed.scheduler.allowed-failures`,
    /// `.worker-ttl` (a silent worker's removal; null: never) and `.no-workers-timeout`; the
    /// rest as [`Config::default`] (the transition log for `story` keeps 200,000 entries;
    /// `distributed.admin.log-length` is about log lines, not transitions).
    pub fn from_config(cfg: &oxidask_config::Config) -> Config {
        let d = Config::default();
        Config {
            allowed_failures: cfg
                .int("distributed.scheduler.allowed-failures")
                .map_or(d.allowed_failures, |n| n.clamp(0, u16::MAX as i64) as u16),
            heartbeat_timeout: cfg
                .duration("distributed.scheduler.worker-ttl")
                .unwrap_or(Duration::from_secs(u32::MAX as u64)),
            no_worker_timeout: cfg
                .duration("distributed.scheduler.no-workers-timeout")
                .unwrap_or(Duration::from_secs(u32::MAX as u64)),
            memory_target_fraction: cfg
                .fraction("distributed.worker.memory.target")
                .unwrap_or(d.memory_target_fraction),
            replicate_expensive_s: cfg
                .duration("distributed.scheduler.replicate-expensive")
                .map_or(0.0, |t| t.as_secs_f64()),
            client_reconnect_grace: cfg
                .duration("distributed.scheduler.client-reconnect-grace")
                .unwrap_or(d.client_reconnect_grace),
            journal: cfg
                .path("distributed.scheduler.journal")
                .map(std::path::Path::to_path_buf),
            ..d
        }
    }
}

/// Something that happened.
#[derive(Debug)]
pub enum Event {
    /// A client connected.
    ClientJoined {
        /// Its connection.
        conn: u64,
        /// Its name.
        name: String,
    },
    /// A client sent a message.
    FromClient {
        /// Its connection.
        conn: u64,
        /// The message.
        msg: ToScheduler,
    },
    /// A client that joined on `conn` named the id it made for itself (`Role::Client`'s
    /// `id`, never 0): if a client with that id is parked (its connection dropped within
    /// [`Config::client_reconnect_grace`]), this connection takes its record back, and the
    /// status of every key it wants is sent again.
    ClientIdentified {
        /// The new connection.
        conn: u64,
        /// The client's id.
        id: u128,
        /// The client says it is reconnecting (a record not found is then logged).
        reconnect: bool,
    },
    /// A client disconnected: an identified client's futures are kept for
    /// [`Config::client_reconnect_grace`] (it may reconnect), an anonymous one's released.
    ClientLeft {
        /// Its connection.
        conn: u64,
    },
    /// A worker connected.
    WorkerJoined {
        /// Its connection.
        conn: u64,
        /// What it offers.
        info: WorkerInfo,
    },
    /// A worker sent a message.
    FromWorker {
        /// Its connection.
        conn: u64,
        /// The message.
        msg: FromWorker,
    },
    /// A worker's connection closed.
    WorkerLeft {
        /// Its connection.
        conn: u64,
        /// Why, for the log and for errors naming it.
        reason: String,
    },
    /// Time passed: heartbeat and no-worker timeouts, work stealing.
    Tick,
}

impl Event {
    fn kind(&self) -> &'static str {
        match self {
            Event::ClientJoined { .. } => "client-joined",
            Event::FromClient { msg, .. } => match msg {
                ToScheduler::UpdateGraph { .. } => "update-graph",
                ToScheduler::Release { .. } => "client-releases-keys",
                ToScheduler::Pin { .. } => "fire-and-forget",
                ToScheduler::Cancel { .. } => "cancel",
                ToScheduler::WhoHas { .. } => "who-has",
                ToScheduler::Scatter { .. } => "scatter",
                ToScheduler::Summary { .. } => "summary",
                ToScheduler::Story { .. } => "story",
                ToScheduler::TaskStream { .. } => "task-stream",
                ToScheduler::Logs { .. } => "logs",
                ToScheduler::Gather { .. } => "gather",
                ToScheduler::Coord { .. } => "coordination",
                ToScheduler::Restart { .. } => "restart",
                ToScheduler::RetireWorkers { .. } => "retire-workers",
                ToScheduler::AdaptiveTarget { .. } => "adaptive-target",
                ToScheduler::Replicate { .. } => "replicate",
                ToScheduler::Rebalance { .. } => "rebalance",
                ToScheduler::Close => "client-closes",
            },
            Event::ClientIdentified { .. } => "client-identified",
            Event::ClientLeft { .. } => "client-left",
            Event::WorkerJoined { .. } => "worker-joined",
            Event::FromWorker { msg, .. } => match msg {
                FromWorker::Finished { .. } => "task-finished",
                FromWorker::Erred { .. } => "task-erred",
                FromWorker::MissingData { .. } => "missing-data",
                FromWorker::StealResponse { .. } => "steal-response",
                FromWorker::Stored { .. } => "stored",
                FromWorker::Heartbeat { .. } => "heartbeat",
                FromWorker::Activity { .. } => "activity",
                FromWorker::LongRunning { .. } => "long-running",
                FromWorker::Paused { .. } => "paused",
                FromWorker::Acquired { .. } => "acquired",
                FromWorker::Retire => "worker-retires",
                FromWorker::Holding { .. } => "worker-holds",
            },
            Event::WorkerLeft { .. } => "worker-left",
            Event::Tick => "tick",
        }
    }

    fn conn(&self) -> u64 {
        match self {
            Event::ClientJoined { conn, .. }
            | Event::FromClient { conn, .. }
            | Event::ClientIdentified { conn, .. }
            | Event::ClientLeft { conn }
            | Event::WorkerJoined { conn, .. }
            | Event::FromWorker { conn, .. }
            | Event::WorkerLeft { conn, .. } => *conn,
            Event::Tick => 0,
        }
    }
}

/// Something to do.
#[derive(Debug, PartialEq)]
pub enum Effect {
    /// Send to a client.
    ToClient {
        /// Its connection.
        conn: u64,
        /// The message.
        msg: ToClient,
    },
    /// Send to a worker.
    ToWorker {
        /// Its connection.
        conn: u64,
        /// The message.
        msg: ToWorker,
    },
    /// Close a connection (a worker that timed out or was refused).
    Close {
        /// The connection.
        conn: u64,
        /// Why.
        reason: String,
    },
}

/// Everything the scheduler knows. See the [module docs](self).
pub struct SchedulerState {
    pub(crate) cfg: Config,
    pub(crate) tasks: Vec<Option<TaskRec>>,
    pub(crate) free_slots: Vec<u32>,
    pub(crate) index: index::KeyIndex,
    pub(crate) workers: Vec<Option<WorkerRec>>,
    pub(crate) worker_by_conn: FxHashMap<u64, WorkerId>,
    pub(crate) clients: Vec<Option<ClientRec>>,
    pub(crate) client_by_conn: FxHashMap<u64, ClientId>,
    /// Identified clients (connected or parked) by the id they made for themselves.
    pub(crate) client_by_id: FxHashMap<u128, ClientId>,
    /// Clients whose connection dropped, waiting for their grace to end (some may have
    /// reconnected since: their record says so).
    pub(crate) parked_clients: Vec<ClientId>,
    /// Ready tasks held back, in priority order.
    pub(crate) queued: BTreeSet<((i64, u64), TaskId)>,
    /// Ready tasks no connected worker may run, in priority order.
    /// Ready tasks no connected worker may run, in priority order, with when they arrived.
    pub(crate) no_worker: std::collections::BTreeMap<((i64, u64), TaskId), Instant>,
    /// Workers with fewer assigned tasks than threads.
    pub(crate) idle: BTreeSet<WorkerId>,
    /// Workers that may be given more root tasks.
    pub(crate) unsaturated: BTreeSet<WorkerId>,
    /// Workers paused by their memory monitor (Dask's status `paused`): given nothing new.
    pub(crate) paused: BTreeSet<WorkerId>,
    /// Average run time per key prefix (seconds).
    pub(crate) durations: FxHashMap<Prefix, f64>,
    pub(crate) type_names: Vec<String>,
    pub(crate) type_ids: FxHashMap<String, u32>,
    /// Scatters each worker has not confirmed.
    pub(crate) pending_stores: FxHashMap<WorkerId, rustc_hash::FxHashSet<TaskId>>,
    /// Keys to tell each worker to drop, sent at the end of the event.
    pub(crate) pending_free: FxHashMap<WorkerId, Vec<WireKey>>,
    /// Tasks whose release or forgetting should be checked.
    pub(crate) release_queue: Vec<TaskId>,
    pub(crate) seq: u64,
    pub(crate) log: TransitionLog,
    pub(crate) stimulus: Stimulus,
    pub(crate) start: Instant,
    pub(crate) now: Instant,
    pub(crate) out: Vec<Effect>,
    /// What the dashboard and `/metrics` read (bounded).
    pub(crate) obs: observe::Observations,
    /// The scheduler process's recent log lines (set by the server; none in tests).
    pub(crate) log_source: Option<crate::server::LogSource>,
    /// Variables, queues, locks and the other coordination objects.
    pub(crate) coord: coord::Coord,
    /// Retirements and data moves in progress.
    pub(crate) life: lifecycle::Lifecycle,
    /// P2P shuffle restarts (`shuffle.rs`).
    pub(crate) shuffles: shuffle::Shuffles,
}

impl SchedulerState {
    /// An empty scheduler.
    pub fn new(cfg: Config, now: Instant) -> SchedulerState {
        SchedulerState {
            log: TransitionLog::new(cfg.log_capacity),
            cfg,
            tasks: Vec::new(),
            free_slots: Vec::new(),
            index: index::KeyIndex::default(),
            workers: Vec::new(),
            worker_by_conn: FxHashMap::default(),
            clients: Vec::new(),
            client_by_conn: FxHashMap::default(),
            client_by_id: FxHashMap::default(),
            parked_clients: Vec::new(),
            queued: BTreeSet::new(),
            no_worker: std::collections::BTreeMap::new(),
            idle: BTreeSet::new(),
            unsaturated: BTreeSet::new(),
            paused: BTreeSet::new(),
            durations: FxHashMap::default(),
            type_names: vec![String::new()],
            type_ids: FxHashMap::default(),
            pending_stores: FxHashMap::default(),
            pending_free: FxHashMap::default(),
            release_queue: Vec::new(),
            seq: 0,
            stimulus: Stimulus {
                id: 0,
                kind: "start",
                conn: 0,
            },
            start: now,
            now,
            out: Vec::new(),
            obs: observe::Observations::default(),
            log_source: None,
            coord: coord::Coord::default(),
            life: lifecycle::Lifecycle::default(),
            shuffles: shuffle::Shuffles::default(),
        }
    }

    /// Handles one event and returns what to do.
    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Effect> {
        let mut out = Vec::new();
        self.handle_into(event, now, &mut out);
        out
    }

    /// Handles one event, appending what to do to `out` (reusing its allocation).
    pub fn handle_into(&mut self, event: Event, now: Instant, out: &mut Vec<Effect>) {
        self.now = now;
        self.stimulus = Stimulus {
            id: self.stimulus.id + 1,
            kind: event.kind(),
            conn: event.conn(),
        };
        match event {
            Event::ClientJoined { conn, name } => self.client_joined(conn, name),
            Event::FromClient { conn, msg } => {
                if let Some(&c) = self.client_by_conn.get(&conn) {
                    self.client_message(c, msg)
                }
            }
            Event::ClientIdentified {
                conn,
                id,
                reconnect,
            } => self.client_identified(conn, id, reconnect),
            Event::ClientLeft { conn } => self.client_left(conn),
            Event::WorkerJoined { conn, info } => self.worker_joined(conn, info),
            Event::FromWorker { conn, msg } => {
                if let Some(&w) = self.worker_by_conn.get(&conn) {
                    self.worker_message(w, msg)
                }
            }
            Event::WorkerLeft { conn, reason } => {
                if let Some(&w) = self.worker_by_conn.get(&conn) {
                    self.remove_worker(w, &reason, false)
                }
            }
            Event::Tick => {
                self.expire_parked_clients();
                self.tick();
                self.coord_expire();
            }
        }
        self.process_releases();
        if !self.life.is_idle() {
            self.advance_lifecycle();
            self.process_releases();
        }
        self.flush_frees();
        out.append(&mut self.out);
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Number of tasks known (not forgotten).
    pub fn n_tasks(&self) -> usize {
        self.index.len()
    }

    /// Number of connected workers.
    pub fn n_workers(&self) -> usize {
        self.worker_by_conn.len()
    }

    /// Number of connected clients.
    pub fn n_clients(&self) -> usize {
        self.client_by_conn.len()
    }

    /// A task's state by key, `None` if forgotten or never known.
    pub fn state_of(&self, key: &Key) -> Option<TState> {
        self.index.get(key, &self.tasks).map(|t| self.task(t).state)
    }

    /// A task's record by key.
    pub fn task_by_key(&self, key: &Key) -> Option<&TaskRec> {
        self.index.get(key, &self.tasks).map(|t| self.task(t))
    }

    /// Names of the workers holding a key's result.
    pub fn who_has(&self, key: &Key) -> Vec<String> {
        self.task_by_key(key).map_or_else(Vec::new, |t| {
            t.who_has
                .iter()
                .map(|&w| self.worker(w).info.name.clone())
                .collect()
        })
    }

    /// A worker's record by its connection.
    pub fn worker_by_conn(&self, conn: u64) -> Option<&WorkerRec> {
        self.worker_by_conn.get(&conn).map(|&w| self.worker(w))
    }

    /// The transitions of `key` still in the log.
    pub fn story(&self, key: &Key) -> Vec<Transition> {
        self.log.story(key)
    }

    /// The transition log.
    pub fn transitions(&self) -> &TransitionLog {
        &self.log
    }

    /// Approximate heap bytes of the task table and its index (for the 1 KiB-per-task target).
    pub fn task_table_bytes(&self) -> usize {
        let per_slot = std::mem::size_of::<Option<TaskRec>>();
        let index = self.index.capacity() * (std::mem::size_of::<TaskId>() + 1);
        let mut heap = 0;
        for t in self.tasks.iter().flatten() {
            heap += t.spec.as_ref().map_or(0, |s| s.0.len());
            if t.deps.spilled() {
                heap += t.deps.capacity() * 4;
            }
            if t.dependents.spilled() {
                heap += t.dependents.capacity() * 4;
            }
        }
        self.tasks.capacity() * per_slot + index + heap
    }

    // ---- record access -------------------------------------------------------------------

    #[inline]
    pub(crate) fn task(&self, t: TaskId) -> &TaskRec {
        self.tasks[t.0 as usize]
            .as_ref()
            .expect("a live task id refers to a record")
    }

    #[inline]
    pub(crate) fn task_mut(&mut self, t: TaskId) -> &mut TaskRec {
        self.tasks[t.0 as usize]
            .as_mut()
            .expect("a live task id refers to a record")
    }

    #[inline]
    pub(crate) fn exists(&self, t: TaskId) -> bool {
        self.tasks.get(t.0 as usize).is_some_and(|t| t.is_some())
    }

    #[inline]
    pub(crate) fn worker(&self, w: WorkerId) -> &WorkerRec {
        self.workers[w.0 as usize]
            .as_ref()
            .expect("a live worker id refers to a record")
    }

    #[inline]
    pub(crate) fn worker_mut(&mut self, w: WorkerId) -> &mut WorkerRec {
        self.workers[w.0 as usize]
            .as_mut()
            .expect("a live worker id refers to a record")
    }

    pub(crate) fn live_workers(&self) -> impl Iterator<Item = (WorkerId, &WorkerRec)> {
        self.workers
            .iter()
            .enumerate()
            .filter_map(|(i, w)| w.as_ref().map(|w| (WorkerId(i as u32), w)))
    }

    pub(crate) fn lookup(&self, key: &WireKey) -> Option<TaskId> {
        key.to_key()
            .ok()
            .and_then(|k| self.index.get(&k, &self.tasks))
    }

    pub(crate) fn type_id(&mut self, name: String) -> u32 {
        if let Some(&id) = self.type_ids.get(&name) {
            return id;
        }
        let id = self.type_names.len() as u32;
        self.type_names.push(name.clone());
        self.type_ids.insert(name, id);
        id
    }

    pub(crate) fn type_name(&self, id: u32) -> &str {
        &self.type_names[id as usize]
    }

    /// Changes a task's state, logging the transition.
    pub(crate) fn set_state(&mut self, t: TaskId, to: TState) {
        let stimulus = self.stimulus;
        let at = (self.now - self.start).as_secs_f64();
        let rec = self.task_mut(t);
        let from = rec.state;
        rec.state = to;
        let key = rec.key;
        self.obs.moved(key.prefix(), from, to);
        self.log.push(Transition {
            key,
            from: from.name(),
            to: to.name(),
            stimulus,
            at,
        });
    }

    /// Where the scheduler's own log lines come from (the server's log ring), for clients'
    /// `get_scheduler_logs`.
    pub fn set_log_source(&mut self, source: crate::server::LogSource) {
        self.log_source = Some(source);
    }

    /// What the dashboard and `/metrics` read.
    pub fn observations(&self) -> &observe::Observations {
        &self.obs
    }

    pub(crate) fn log_forgotten(&mut self, key: Key, from: TState) {
        let at = (self.now - self.start).as_secs_f64();
        self.log.push(Transition {
            key,
            from: from.name(),
            to: "forgotten",
            stimulus: self.stimulus,
            at,
        });
    }

    pub(crate) fn send_client(&mut self, c: ClientId, msg: ToClient) {
        if let Some(Some(rec)) = self.clients.get(c.0 as usize) {
            if rec.conn == coord::HOLDER_CONN {
                return; // the pseudo-client holding coordination objects' futures
            }
            if rec.parked_until.is_some() {
                return; // gone for now: what it wants is sent again when it reconnects
            }
            self.out.push(Effect::ToClient {
                conn: rec.conn,
                msg,
            });
        }
    }

    pub(crate) fn send_worker(&mut self, w: WorkerId, msg: ToWorker) {
        let conn = self.worker(w).conn;
        // Frees decided earlier go first: a key freed and then computed again must not be
        // dropped by the worker after it was recomputed.
        if !self.pending_free.is_empty() {
            if let Some(keys) = self.pending_free.remove(&w) {
                self.out.push(Effect::ToWorker {
                    conn,
                    msg: ToWorker::Free { keys },
                });
            }
        }
        self.out.push(Effect::ToWorker { conn, msg });
    }

    /// Tells `w` to drop `key` (batched per worker until the end of the event).
    pub(crate) fn free_on(&mut self, w: WorkerId, key: WireKey) {
        self.pending_free.entry(w).or_default().push(key);
    }

    fn flush_frees(&mut self) {
        if self.pending_free.is_empty() {
            return;
        }
        let mut frees: Vec<_> = self.pending_free.drain().collect();
        frees.sort_by_key(|(w, _)| *w);
        for (w, keys) in frees {
            if let Some(Some(rec)) = self.workers.get(w.0 as usize) {
                self.out.push(Effect::ToWorker {
                    conn: rec.conn,
                    msg: ToWorker::Free { keys },
                });
            }
        }
    }
}
