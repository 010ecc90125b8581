//! Every message, by direction. Closed enums carrying their data: no string-keyed handlers.

use crate::wire::{WireError, WireKey, WireTask, WireValue};

/// Who is connecting.
#[derive(Clone, Debug, PartialEq, oxidask_core::Data)]
#[data(crate = oxidask_core)]
pub enum Role {
    /// A client.
    Client {
        /// A name for logs and the dashboard.
        name: String,
        /// A random id the client made once, the same on every connection it makes, so
        /// that the scheduler gives a client whose connection dropped its futures back when
        /// it reconnects within `distributed.scheduler.client-reconnect-grace`. 0: an
        /// anonymous client (a control connection, a test), released as soon as it leaves.
        id: u128,
        /// This connection replaces one that dropped (the client reconnects).
        reconnect: bool,
    },
    /// A worker.
    Worker(WorkerInfo),
    /// A worker or client fetching data from a worker.
    Peer,
}

/// What a worker offers.
#[derive(Clone, Debug, PartialEq, oxidask_core::Data)]
#[data(crate = oxidask_core)]
pub struct WorkerInfo {
    /// Its name (for `workers=` restrictions).
    pub name: String,
    /// Where peers and clients fetch data from it (`host:port`).
    pub data_address: String,
    /// Threads running tasks.
    pub nthreads: u32,
    /// Memory limit in bytes (0: none).
    pub memory_limit: u64,
    /// Abstract resources (`GPU = 2`).
    pub resources: Vec<(String, f64)>,
}

/// The first message on every connection.
#[derive(Clone, Debug, PartialEq, oxidask_core::Data)]
#[data(crate = oxidask_core)]
pub struct Hello {
    /// [`crate::PROTOCOL_VERSION`].
    pub protocol: u32,
    /// The sender's build ([`crate::build_id`]).
    pub build: String,
    /// The sender's operation-registry fingerprint.
    pub registry: u128,
    /// Language runtimes the sender hosts, with their versions (`python 3.11`, `cloudpickle
    /// 3.1.2`, `oxidask-python 0.1.0`); empty for a plain Rust program. Everyone in a cluster
    /// must agree on them, since tasks of one are run by another.
    pub runtime: Vec<(String, String)>,
    /// Who is connecting.
    pub role: Role,
}

/// The registry fingerprint of a control connection: a client that manages a cluster (a
/// gateway, an operator's tool) rather than computing on it. The scheduler admits it whatever
/// programs the cluster runs, it fixes nothing for later participants, and tasks or data it
/// submits are refused.
pub const CONTROL_REGISTRY: u128 = 0;

impl Hello {
    /// The hello of a control connection named `name` (see [`CONTROL_REGISTRY`]).
    pub fn control(name: String) -> Hello {
        Hello {
            protocol: crate::PROTOCOL_VERSION,
            build: crate::build_id(),
            registry: CONTROL_REGISTRY,
            runtime: Vec::new(),
            role: Role::Client {
                name,
                id: 0,
                reconnect: false,
            },
        }
    }

    /// Whether this is a control connection's hello.
    pub fn is_control(&self) -> bool {
        self.registry == CONTROL_REGISTRY && matches!(self.role, Role::Client { .. })
    }
}

/// The answer to a [`Hello`].
#[derive(Clone, Debug, PartialEq, oxidask_core::Data)]
#[data(crate = oxidask_core)]
pub enum HelloReply {
    /// Accepted; the id the scheduler knows the connection by.
    Welcome {
        /// Connection id.
        id: u64,
        /// The scheduler's dashboard (`http://host:port/status`), empty if it serves none.
        dashboard: String,
    },
    /// Refused, with the reason (which side differs and what to do).
    Refused {
        /// Why.
        reason: String,
    },
}

/// How submitted tasks run.
#[derive(Clone, Debug, Default, PartialEq, oxidask_core::Data)]
#[data(crate = oxidask_core)]
pub struct SubmitOptions {
    /// Times a failing task is retried.
    pub retries: u32,
    /// Resources each task needs (`GPU = 1`).
    pub resources: Vec<(String, f64)>,
    /// Workers (names or addresses) the tasks may run on; empty: any.
    pub workers: Vec<String>,
    /// `workers` is a preference: if none of them is connected when the tasks arrive, any
    /// worker may run them (Dask's `allow_other_workers`).
    pub allow_other_workers: bool,
    /// Higher runs first among ready tasks.
    pub priority: i64,
    /// The wanted keys are actors (Dask's `actor=True`): each result stays on the worker
    /// that computed it, is never recomputed, and fails with an actor-lost error when that
    /// worker leaves.
    pub actor: bool,
}

/// Client → scheduler.
#[derive(Clone, Debug, PartialEq, oxidask_core::Data)]
#[data(crate = oxidask_core)]
pub enum ToScheduler {
    /// New tasks (in priority order: dependencies first) and the keys the client wants.
    UpdateGraph {
        /// The tasks.
        tasks: Vec<WireTask>,
        /// Keys the client holds futures for.
        wanted: Vec<WireKey>,
        /// How they run.
        options: SubmitOptions,
        /// More tasks of the same graph follow in later messages: the scheduler holds these
        /// until the last part (`more: false`), which carries the wanted keys. Large graphs
        /// travel in parts so neither side holds the whole encoded graph at once.
        more: bool,
    },
    /// The client no longer needs these keys.
    Release {
        /// The keys.
        keys: Vec<WireKey>,
    },
    /// Keep computing these keys even when no client wants them (fire and forget).
    Pin {
        /// The keys.
        keys: Vec<WireKey>,
    },
    /// Stop computing these keys (and what only they need).
    Cancel {
        /// The keys.
        keys: Vec<WireKey>,
    },
    /// Where these keys' values are.
    WhoHas {
        /// Matches the reply.
        request: u64,
        /// The keys.
        keys: Vec<WireKey>,
    },
    /// Store these values on workers.
    Scatter {
        /// Key and value pairs.
        values: Vec<(WireKey, WireValue)>,
        /// On every worker.
        broadcast: bool,
    },
    /// The cluster's state.
    Summary {
        /// Matches the reply.
        request: u64,
    },
    /// A key's transitions.
    Story {
        /// Matches the reply.
        request: u64,
        /// The key.
        key: WireKey,
    },
    /// Task-stream records from `since` on (Dask's `get_task_stream`).
    TaskStream {
        /// Matches the reply.
        request: u64,
        /// The sequence number to start from (0: the oldest kept).
        since: u64,
    },
    /// Recent log lines of the scheduler, or of a worker (by name or address).
    Logs {
        /// Matches the reply.
        request: u64,
        /// `None`: the scheduler's own.
        worker: Option<String>,
    },
    /// Values held by the worker at data address `worker`, fetched by the scheduler for a
    /// client that cannot reach the worker's data port itself (behind a tunnel to the
    /// scheduler's port, or a firewall). Answered by the scheduler's connection layer, not
    /// its core.
    Gather {
        /// Matches the reply.
        request: u64,
        /// The worker's data address, as `WhoHas` gave it.
        worker: String,
        /// The keys.
        keys: Vec<WireKey>,
    },
    /// A request to a coordination object (a `Variable`, `Queue`, `Lock` …); see
    /// [`crate::coord`].
    Coord {
        /// Matches the reply.
        request: u64,
        /// What to do.
        op: crate::coord::CoordOp,
    },
    /// Restart the cluster (Dask's `Client.restart`): every task is forgotten (clients'
    /// keys are cancelled) and every worker is told to restart ([`ToWorker::Restart`]; its
    /// nanny starts a fresh process). Answered by [`ToClient::Restarted`] at once; the client
    /// then waits for the workers to come back.
    Restart {
        /// Matches the reply.
        request: u64,
    },
    /// Retire workers gracefully (Dask's `retire_workers`): they get no new tasks, every
    /// result only they hold is copied to another worker first, then each is told to stop
    /// (its nanny does not restart it). Answered by [`ToClient::Retired`] once done.
    RetireWorkers {
        /// Matches the reply.
        request: u64,
        /// Workers by name or data address; empty: the scheduler picks `n` (idle workers
        /// holding the least data first, Dask's `workers_to_close`).
        workers: Vec<String>,
        /// How many to pick when `workers` is empty; 0 with no `workers`: what Dask's
        /// `retire_workers()` without arguments retires (idle workers, while those left
        /// have memory limits of twice the data held).
        n: u32,
    },
    /// How many workers the current load needs (Dask's `Scheduler.adaptive_target`), and
    /// which to close first if fewer. Answered by [`ToClient::AdaptiveTarget`].
    AdaptiveTarget {
        /// Matches the reply.
        request: u64,
        /// The wanted time to finish the queued and running work, microseconds.
        target_duration_us: u64,
    },
    /// Copy these results onto `n` workers (0: every worker); extra copies are dropped
    /// (Dask's `replicate`). Answered by [`ToClient::Moved`] once the copies exist.
    Replicate {
        /// Matches the reply.
        request: u64,
        /// The keys (in memory).
        keys: Vec<WireKey>,
        /// Copies wanted.
        n: u32,
    },
    /// Move results between workers so each holds about the same bytes, keeping recipients
    /// under their memory target (Dask's `rebalance`). Answered by [`ToClient::Moved`].
    Rebalance {
        /// Matches the reply.
        request: u64,
        /// Only these keys may move; empty: any result.
        keys: Vec<WireKey>,
    },
    /// The client is closing (its program closed or dropped it): release its futures now,
    /// rather than keeping them for it to reconnect as when its connection merely drops.
    Close,
}

/// What a record of the task stream shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ActivityKind {
    /// A task ran.
    Compute,
    /// Dependencies were fetched from a peer.
    Transfer,
    /// Results were written to disk.
    SpillOut,
    /// Spilled results were read back.
    SpillIn,
}

impl oxidask_core::Data for ActivityKind {
    fn encode(&self, w: &mut oxidask_core::codec::Writer<'_>) {
        w.put_u8(match self {
            ActivityKind::Compute => 0,
            ActivityKind::Transfer => 1,
            ActivityKind::SpillOut => 2,
            ActivityKind::SpillIn => 3,
        })
    }

    fn decode(r: &mut oxidask_core::codec::Reader<'_>) -> Result<Self, oxidask_core::CodecError> {
        Ok(match r.get_u8("activity kind")? {
            0 => ActivityKind::Compute,
            1 => ActivityKind::Transfer,
            2 => ActivityKind::SpillOut,
            3 => ActivityKind::SpillIn,
            k => {
                return Err(oxidask_core::CodecError::Invalid {
                    what: "activity kind",
                    detail: format!("kind {k}"),
                })
            }
        })
    }
}

impl ActivityKind {
    /// Dask's name (`compute`, `transfer`, `disk-write`, `disk-read`).
    pub fn name(self) -> &'static str {
        match self {
            ActivityKind::Compute => "compute",
            ActivityKind::Transfer => "transfer",
            ActivityKind::SpillOut => "disk-write",
            ActivityKind::SpillIn => "disk-read",
        }
    }
}

/// Something a worker spent time on besides tasks, reported with its heartbeat.
#[derive(Clone, Debug, PartialEq, oxidask_core::Data)]
#[data(crate = oxidask_core)]
pub struct Activity {
    /// What.
    pub kind: ActivityKind,
    /// Start, microseconds since the Unix epoch (the worker's clock).
    pub start_us: u64,
    /// End, likewise.
    pub stop_us: u64,
    /// Bytes moved.
    pub nbytes: u64,
    /// Values moved.
    pub count: u32,
}

/// One record of the task stream: a task run, a transfer or a spill, on a worker's thread.
#[derive(Clone, Debug, PartialEq, oxidask_core::Data)]
#[data(crate = oxidask_core)]
pub struct StreamRecord {
    /// The task (for transfers and spills, the prefix names the activity).
    pub key: WireKey,
    /// What it was.
    pub kind: ActivityKind,
    /// The worker's name.
    pub worker: String,
    /// The executor thread (compute), 0 otherwise.
    pub thread: u32,
    /// Start, microseconds since the Unix epoch.
    pub start_us: u64,
    /// End, likewise.
    pub stop_us: u64,
    /// Bytes (result size, or bytes moved).
    pub nbytes: u64,
}

/// One worker in a [`ClusterSummary`].
#[derive(Clone, Debug, PartialEq, oxidask_core::Data)]
#[data(crate = oxidask_core)]
pub struct WorkerSummary {
    /// Name.
    pub name: String,
    /// Data address.
    pub address: String,
    /// Threads.
    pub nthreads: u32,
    /// Memory limit.
    pub memory_limit: u64,
    /// Bytes of results held (last heartbeat).
    pub memory: u64,
    /// Tasks assigned and not finished.
    pub processing: u64,
    /// Results held.
    pub keys: u64,
    /// CPU use, percent of one core (last heartbeat).
    pub cpu: f64,
    /// Abstract resources it offers.
    pub resources: Vec<(String, f64)>,
    /// The worker process's resident memory (last heartbeat).
    pub rss: u64,
    /// Bytes of results spilled to disk (last heartbeat).
    pub spilled: u64,
}

/// The cluster at a glance.
#[derive(Clone, Debug, PartialEq, oxidask_core::Data)]
#[data(crate = oxidask_core)]
pub struct ClusterSummary {
    /// Workers.
    pub workers: Vec<WorkerSummary>,
    /// Tasks the scheduler knows.
    pub tasks: u64,
    /// Connected clients.
    pub clients: u64,
}

/// Scheduler → client.
#[derive(Clone, Debug, PartialEq, oxidask_core::Data)]
#[data(crate = oxidask_core)]
pub enum ToClient {
    /// A wanted key is computed.
    KeyInMemory {
        /// The key.
        key: WireKey,
        /// Its value's type.
        type_name: String,
        /// Its size.
        nbytes: u64,
    },
    /// A wanted key failed (or a dependency did).
    KeyErred {
        /// The key.
        key: WireKey,
        /// Why.
        error: WireError,
    },
    /// Reply to [`ToScheduler::WhoHas`]: data addresses per key.
    WhoHas {
        /// The request.
        request: u64,
        /// Keys and the addresses holding them.
        locations: Vec<(WireKey, Vec<String>)>,
    },
    /// Reply to [`ToScheduler::Summary`].
    Summary {
        /// The request.
        request: u64,
        /// The summary.
        summary: ClusterSummary,
    },
    /// Reply to [`ToScheduler::Story`].
    Story {
        /// The request.
        request: u64,
        /// One line per transition.
        lines: Vec<String>,
    },
    /// Reply to [`ToScheduler::TaskStream`].
    TaskStream {
        /// The request.
        request: u64,
        /// The records, oldest first.
        records: Vec<StreamRecord>,
        /// The sequence number to ask from next time.
        next: u64,
    },
    /// Reply to [`ToScheduler::Logs`].
    Logs {
        /// The request.
        request: u64,
        /// The lines, oldest first.
        lines: Vec<String>,
    },
    /// Reply to [`ToScheduler::Gather`]: what the worker had for each key, or why it could
    /// not be asked.
    Gathered {
        /// The request.
        request: u64,
        /// Per key.
        values: Vec<(WireKey, Fetched)>,
        /// Set when the worker could not be asked at all.
        error: Option<String>,
    },
    /// Reply to [`ToScheduler::Coord`] (possibly long after it, when it waited).
    Coord {
        /// The request.
        request: u64,
        /// The answer.
        reply: crate::coord::CoordReply,
    },
    /// Reply to [`ToScheduler::Restart`]: the tasks are forgotten and the workers told.
    Restarted {
        /// The request.
        request: u64,
        /// Workers that were connected (and were told to restart).
        workers: u32,
    },
    /// Reply to [`ToScheduler::RetireWorkers`]: the workers retired (as they were just
    /// before), and why any asked for could not be.
    Retired {
        /// The request.
        request: u64,
        /// The retired workers.
        workers: Vec<WorkerSummary>,
        /// Set when a worker could not be retired (it keeps running), saying why.
        error: Option<String>,
    },
    /// Reply to [`ToScheduler::AdaptiveTarget`].
    AdaptiveTarget {
        /// The request.
        request: u64,
        /// Workers wanted.
        target: u32,
        /// Data addresses of the workers to retire to get there (empty unless fewer are
        /// wanted than connected).
        workers_to_close: Vec<String>,
    },
    /// Reply to [`ToScheduler::Replicate`] and [`ToScheduler::Rebalance`]: the copies were
    /// made (or why not).
    Moved {
        /// The request.
        request: u64,
        /// Copies made.
        copies: u64,
        /// Set when some could not be made, saying why.
        error: Option<String>,
    },
}

/// Scheduler → worker.
#[derive(Clone, Debug, PartialEq, oxidask_core::Data)]
#[data(crate = oxidask_core)]
pub enum ToWorker {
    /// Run a task; `who_has` says where each dependency is.
    Compute {
        /// The task.
        task: WireTask,
        /// Dependency locations (data addresses).
        who_has: Vec<(WireKey, Vec<String>)>,
        /// Order among this worker's ready tasks (lower first).
        priority: (i64, u64),
    },
    /// Drop these results (and tasks not started).
    Free {
        /// The keys.
        keys: Vec<WireKey>,
    },
    /// Give back a task that has not started, if possible.
    Steal {
        /// The key.
        key: WireKey,
    },
    /// Store scattered values.
    Store {
        /// Key and value pairs.
        values: Vec<(WireKey, WireValue)>,
    },
    /// Finish and exit.
    Stop {
        /// Why (shown by the worker).
        reason: String,
    },
    /// Exit so that the nanny starts a fresh worker process (`Client::restart`); a worker
    /// without a nanny just exits.
    Restart {
        /// Why (shown by the worker).
        reason: String,
    },
    /// Fetch these results from the peers holding them and keep them (a replica: for a
    /// retiring worker, `replicate` or `rebalance`). Answered by [`FromWorker::Acquired`].
    Acquire {
        /// Keys and the data addresses holding them.
        who_has: Vec<(WireKey, Vec<String>)>,
    },
}

/// Worker → scheduler.
#[derive(Clone, Debug, PartialEq, oxidask_core::Data)]
#[data(crate = oxidask_core)]
pub enum FromWorker {
    /// A task finished; its result is held.
    Finished {
        /// The key.
        key: WireKey,
        /// Result type.
        type_name: String,
        /// Result size.
        nbytes: u64,
        /// Run time in microseconds.
        duration_us: u64,
        /// When it started, microseconds since the Unix epoch (the worker's clock).
        start_us: u64,
        /// Which executor thread ran it.
        thread: u32,
    },
    /// A task failed.
    Erred {
        /// The key.
        key: WireKey,
        /// Why.
        error: WireError,
    },
    /// A dependency could not be fetched from any holder.
    MissingData {
        /// The task that needed it.
        key: WireKey,
        /// The missing key.
        missing: WireKey,
        /// The data addresses that were tried and did not have it.
        tried: Vec<String>,
    },
    /// Reply to [`ToWorker::Steal`].
    StealResponse {
        /// The key.
        key: WireKey,
        /// True if given back (it will not run here).
        given_back: bool,
    },
    /// Scattered values stored.
    Stored {
        /// The keys.
        keys: Vec<(WireKey, String, u64)>,
    },
    /// A running task gave up its thread to wait on other tasks (it secedes, as a task
    /// gathering the results of tasks it submitted does): it no longer occupies a thread.
    LongRunning {
        /// The key.
        key: WireKey,
    },
    /// Liveness and metrics.
    Heartbeat {
        /// Bytes of results held.
        memory: u64,
        /// Tasks running now.
        executing: u32,
        /// Results held.
        keys: u64,
        /// CPU use of the worker process since the last heartbeat, percent of one core.
        cpu: f64,
        /// Resident memory of the worker process (bytes).
        rss: u64,
        /// Bytes of results spilled to disk.
        spilled: u64,
        /// Transfers and spills since the last heartbeat (bounded).
        activity: Vec<Activity>,
        /// Log lines since the last heartbeat (bounded).
        logs: Vec<String>,
    },
    /// Transfers and spills since the last report, sent ahead of a task's result so the
    /// task stream holds what fed the task by the time its result is known.
    Activity {
        /// What happened (bounded).
        activity: Vec<Activity>,
    },
    /// The worker paused (its process passed `distributed.worker.memory.pause` of its memory
    /// limit: it starts no task and fetches no data) or resumed. The scheduler assigns a
    /// paused worker nothing new (Dask's worker status `paused`).
    Paused {
        /// True when pausing, false when resuming.
        paused: bool,
    },
    /// Reply to [`ToWorker::Acquire`].
    Acquired {
        /// Held now: key, type name, size.
        keys: Vec<(WireKey, String, u64)>,
        /// No holder had them (or they could not be read).
        missing: Vec<WireKey>,
    },
    /// The worker wants to leave (it got SIGTERM): retire it gracefully, then tell it to
    /// stop.
    Retire,
    /// Sent right after joining by a worker that reconnected: the results it still holds.
    /// The scheduler keeps those of keys in memory (another replica) and frees the rest.
    Holding {
        /// Key, type name, size.
        keys: Vec<(WireKey, String, u64)>,
    },
}

/// Peer → worker data port.
#[derive(Clone, Debug, PartialEq, oxidask_core::Data)]
#[data(crate = oxidask_core)]
pub enum DataRequest {
    /// Send these values.
    Get {
        /// The keys.
        keys: Vec<WireKey>,
    },
    /// Call a method of (or read an attribute of) the actor held under `key`. Answered by a
    /// [`DataResponse::Actor`] with the same `call`, possibly after replies to later requests:
    /// calls on one actor run one at a time in the order they arrive.
    Actor {
        /// Matches the reply (chosen by the caller, unique on its connection).
        call: u64,
        /// The actor's key.
        key: WireKey,
        /// The method or attribute name.
        name: String,
        /// Read the attribute `name` instead of calling it.
        attribute: bool,
        /// The arguments, encoded by the actor's runtime (pickled for Python).
        args: crate::frame::Payload,
    },
    /// Take (send, then drop) the shards of one output partition of a P2P shuffle that
    /// this worker holds for `inputs`. Answered by [`DataResponse::Shards`].
    ShuffleTake {
        /// The shuffle (its barrier's token).
        shuffle: (u64, u64),
        /// The output partition.
        output: u32,
        /// The input partitions whose shards are wanted from this worker.
        inputs: Vec<u32>,
        /// One per input: the stamp the worker gave when it stored that input's shards (the
        /// run of the shuffle the asking unpack belongs to); shards stored under another
        /// stamp are answered missing and left in place.
        stamps: Vec<u64>,
    },
}

/// Worker data port → peer.
#[derive(Clone, Debug, PartialEq, oxidask_core::Data)]
#[data(crate = oxidask_core)]
pub enum DataResponse {
    /// What the worker has for each key asked.
    Values {
        /// Keys and what was found.
        values: Vec<(WireKey, Fetched)>,
    },
    /// Reply to [`DataRequest::Actor`].
    Actor {
        /// The request's `call`.
        call: u64,
        /// What came of it.
        outcome: ActorOutcome,
    },
    /// Reply to [`DataRequest::ShuffleTake`]: the shards held (input, bytes; an input whose
    /// shard for that output had no rows is absent) and the inputs this worker knows
    /// nothing of (their shards were lost: the shuffle must run again).
    Shards {
        /// Input partition and shard bytes.
        shards: Vec<(u32, crate::frame::Payload)>,
        /// Inputs whose shards are not here.
        missing: Vec<u32>,
    },
}

/// What came of an actor call.
#[derive(Clone, Debug, PartialEq, oxidask_core::Data)]
#[data(crate = oxidask_core)]
pub enum ActorOutcome {
    /// The method returned (or the attribute was read): the reply, encoded by the actor's
    /// runtime. A Python method that raised also answers here (the pickled exception, which
    /// the caller re-raises).
    Value(crate::frame::Payload),
    /// The call could not run: the error says why (no such actor on this worker, its queue
    /// is full, the runtime failed to encode the reply).
    Error(WireError),
}

/// What a data port has for one key.
#[derive(Clone, Debug, PartialEq, oxidask_core::Data)]
#[data(crate = oxidask_core)]
pub enum Fetched {
    /// The value.
    Value(WireValue),
    /// The worker does not hold the key (any more).
    Missing,
    /// The worker holds it but cannot send it: its codec failed (an object that cannot be
    /// pickled); the reason says why. Asking another holder gives the same answer.
    Unsendable(String),
}
