//! The network shell around the state machine.
//!
//! Two threads: an I/O thread running a single-threaded tokio runtime (accepting, the
//! handshake, one reader and one writer task per connection) and the core thread that owns the
//! [`SchedulerState`] and feeds it events. Readers turn frames into [`Event`]s; the core
//! handles every event that is waiting before it sends anything, then sends each connection
//! its effects as one batch (one frame). A peer that sends garbage, a truncated or an
//! oversized frame loses its connection; nothing else is affected.

mod conn;
mod log;
mod restore;

use std::io;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use oxidask_protocol::transport::Security;
use oxidask_protocol::{ToClient, ToWorker};
use rustc_hash::FxHashMap;
use tokio::sync::mpsc::UnboundedSender;

pub use log::LogSource;
use log::SchedulerLog;

use crate::state::observe::{GraphView, Snapshot};
use crate::state::{Config, Effect, Event, SchedulerState};

/// What the core sends to a connection's writer.
#[derive(Debug)]
pub(crate) enum Outbound {
    Client(Vec<ToClient>),
    Worker(Vec<ToWorker>),
    Close(String),
}

/// Batches of one connection's messages that may wait for the core at once; past that its
/// reader waits (and, through TCP, the peer), never anyone else.
pub(crate) const MAX_INBOUND_BATCHES: usize = 64;

/// Messages that may wait for one connection's writer; a peer that stops reading beyond this
/// is disconnected rather than buffered without bound.
pub(crate) const MAX_OUTBOUND_MESSAGES: usize = 1 << 20;

/// How far one connection's reader is ahead of the core, and its writer behind it.
pub(crate) struct Backlog {
    /// Permits for batches on their way to the core (returned once handled).
    pub inbound: tokio::sync::Semaphore,
    /// Messages queued for the writer.
    pub outbound: std::sync::atomic::AtomicUsize,
}

impl Backlog {
    pub(crate) fn new() -> Backlog {
        Backlog {
            inbound: tokio::sync::Semaphore::new(MAX_INBOUND_BATCHES),
            outbound: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The writer took `o` off its queue.
    pub(crate) fn sent(&self, o: &Outbound) {
        let n = match o {
            Outbound::Client(m) => m.len(),
            Outbound::Worker(m) => m.len(),
            Outbound::Close(_) => 0,
        };
        self.outbound
            .fetch_sub(n, std::sync::atomic::Ordering::Relaxed);
    }
}

/// What readers send to the core.
pub(crate) enum Inbound {
    /// A connection passed the handshake; its writer listens on `tx`.
    Open {
        conn: u64,
        tx: UnboundedSender<Outbound>,
        event: Event,
        backlog: Arc<Backlog>,
    },
    Event(Event),
    /// A batch of one connection's messages; its permit goes back to `Backlog::inbound`.
    Events(Vec<Event>, Arc<Backlog>),
    /// A watcher (the dashboard) wants snapshots.
    Subscribe(mpsc::SyncSender<Arc<Published>>),
    /// A question from a watcher, answered between batches of events.
    Query(Query, mpsc::Sender<Answer>),
    Shutdown,
}

/// What the core publishes to watchers every [`SchedulerBuilder::publish_every`].
#[derive(Clone, Debug)]
pub struct Published {
    /// The scheduler's state.
    pub snapshot: Snapshot,
    /// How busy the core was since the last publication.
    pub core: CoreStats,
}

/// How the core thread spent its time since the last publication.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CoreStats {
    /// Seconds covered.
    pub seconds: f64,
    /// Seconds spent handling events and sending effects (the rest it waited for work).
    pub busy_seconds: f64,
    /// The longest single batch (events and their effects), seconds: the core's latency.
    pub max_batch_seconds: f64,
    /// Events handled.
    pub events: u64,
    /// Snapshots watchers were too slow to take (dropped, not queued).
    pub dropped: u64,
    /// Connections open (clients and workers).
    pub connections: u64,
}

/// A question a watcher asks the core.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Query {
    /// The transitions of a key (its text, as `str(key)` shows it).
    Story(String),
    /// At most this many tasks of the current graph.
    Graph(usize),
    /// Recent log lines of a worker (by name or address).
    WorkerLogs(String),
}

/// The answer to a [`Query`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Answer {
    /// The key's transitions, one line each, oldest first (empty if unknown).
    Story(Vec<String>),
    /// Part of the graph.
    Graph(GraphView),
    /// Log lines.
    WorkerLogs(Vec<String>),
}

/// Builds a [`Scheduler`].
#[derive(Clone)]
pub struct SchedulerBuilder {
    address: String,
    config: Config,
    tick: Duration,
    quiet: bool,
    dashboard: String,
    publish_every: Duration,
    log_source: Option<LogSource>,
    security: Security,
}

impl std::fmt::Debug for SchedulerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchedulerBuilder")
            .field("address", &self.address)
            .field("config", &self.config)
            .field("tick", &self.tick)
            .field("quiet", &self.quiet)
            .field("dashboard", &self.dashboard)
            .field("publish_every", &self.publish_every)
            .field("log_source", &self.log_source.as_ref().map(|_| "custom"))
            .field("security", &self.security)
            .finish()
    }
}

impl SchedulerBuilder {
    /// Where to listen (`host:port`; port 0 picks a free one). Default `127.0.0.1:8786`.
    pub fn address(mut self, address: impl Into<String>) -> Self {
        self.address = address.into();
        self
    }

    /// Policy settings.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// How often timeouts are checked and work is stolen (default 100 ms).
    pub fn tick(mut self, tick: Duration) -> Self {
        self.tick = tick;
        self
    }

    /// Whether to keep connection events (joins, refusals, departures) out of `tracing`;
    /// they are kept for clients' `get_scheduler_logs` either way. Default: log.
    pub fn quiet(mut self, quiet: bool) -> Self {
        self.quiet = quiet;
        self
    }

    /// The dashboard's address, told to clients in the handshake (`Client::dashboard_link`).
    pub fn dashboard_link(mut self, link: impl Into<String>) -> Self {
        self.dashboard = link.into();
        self
    }

    /// How often watchers get a snapshot (default 200 ms). With no watcher, none is made.
    pub fn publish_every(mut self, every: Duration) -> Self {
        self.publish_every = every;
        self
    }

    /// Where clients' `get_scheduler_logs` read from: by default the scheduler's own ring of
    /// lines about connections; a process with a `tracing` subscriber of its own (the
    /// `oxidask scheduler` command) passes its ring of every event instead.
    pub fn log_source(mut self, source: LogSource) -> Self {
        self.log_source = Some(source);
        self
    }

    /// TLS credentials and the authentication token peers must present (default: plain
    /// TCP, no token). With TLS the scheduler's address is `tls://…`.
    pub fn security(mut self, security: Security) -> Self {
        self.security = security;
        self
    }

    /// Binds and starts serving.
    pub fn start(self) -> io::Result<Scheduler> {
        let std_listener = std::net::TcpListener::bind(&self.address).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot listen on {}: {e}; choose another --port or stop what uses it",
                    self.address
                ),
            )
        })?;
        std_listener.set_nonblocking(true)?;
        let address = std_listener.local_addr()?;
        let log = SchedulerLog::new(self.quiet);
        let opened = match &self.config.journal {
            Some(dir) => Some(
                crate::journal::Journal::open(dir, self.config.clone(), Instant::now())
                    .map_err(|e| io::Error::other(e.to_string()))?,
            ),
            None => None,
        };
        if let Some(o) = &opened {
            if let Some((at, n)) = o.torn {
                tracing::warn!(
                    "the scheduler journal {} ended in a torn record (byte {at}, {n} bytes: the scheduler died while writing it); it was dropped",
                    o.journal.path().display()
                );
            }
            log.log(format!(
                "journal {}: {} records replayed, {} tasks, {} clients restored; waiting up to {} s for workers [{}]",
                o.journal.path().display(),
                o.records,
                o.state.n_tasks(),
                o.replayed.clients.len(),
                restore::WORKER_WAIT.as_secs(),
                o.replayed.workers.join(", ")
            ));
        }
        let (tx, rx) = mpsc::channel::<Inbound>();
        let shared = Arc::new(conn::Shared::new(
            log.clone(),
            self.dashboard.clone(),
            self.security.clone(),
        ));
        let io_tx = tx.clone();
        let io_shared = shared.clone();
        let security = self.security.clone();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let io = std::thread::Builder::new()
            .name("oxidask-scheduler-io".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a tokio runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(std_listener)
                        .expect("a listener registered with tokio");
                    tokio::select! {
                        _ = conn::accept_loop(listener, security, io_tx, io_shared) => {}
                        _ = stop_rx => {
                            // Let the writers send what the core queued last (workers told
                            // to stop, clients told the scheduler is going) before the
                            // runtime drops them.
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                });
            })?;
        let core_cfg = CoreConfig {
            config: self.config,
            tick: self.tick,
            log: log.clone(),
            publish_every: self.publish_every,
            log_source: self.log_source.unwrap_or_else(|| log.source()),
            opened,
        };
        let core = std::thread::Builder::new()
            .name("oxidask-scheduler-core".into())
            .spawn(move || run_core(core_cfg, rx))?;
        Ok(Scheduler {
            address,
            scheme: self.security.scheme(),
            tx: Mutex::new(tx),
            threads: Mutex::new(Some((core, io, stop_tx))),
        })
    }
}

/// A running scheduler.
pub struct Scheduler {
    address: SocketAddr,
    scheme: &'static str,
    tx: Mutex<mpsc::Sender<Inbound>>,
    #[allow(clippy::type_complexity)]
    threads: Mutex<
        Option<(
            JoinHandle<()>,
            JoinHandle<()>,
            tokio::sync::oneshot::Sender<()>,
        )>,
    >,
}

impl Scheduler {
    /// A builder with the defaults.
    pub fn builder() -> SchedulerBuilder {
        SchedulerBuilder {
            address: "127.0.0.1:8786".into(),
            config: Config::default(),
            tick: Duration::from_millis(100),
            quiet: false,
            dashboard: String::new(),
            publish_every: Duration::from_millis(200),
            log_source: None,
            security: Security::default(),
        }
    }

    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The address as clients and workers are given it: `tcp://host:port`.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.address)
    }

    /// Snapshots of the scheduler's state, one every `publish_every` (a watcher that falls
    /// behind misses snapshots; the core never waits for it).
    pub fn subscribe(&self) -> mpsc::Receiver<Arc<Published>> {
        let (tx, rx) = mpsc::sync_channel(2);
        let _ = self
            .tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(Inbound::Subscribe(tx));
        rx
    }

    /// A handle for asking the core questions (stories, the graph) from other threads.
    pub fn monitor(&self) -> Monitor {
        Monitor {
            tx: self.tx.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }

    /// Blocks until the scheduler stops.
    pub fn wait(&self) {
        let threads = self
            .threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some((core, io, stop)) = threads {
            let _ = core.join();
            let _ = stop.send(());
            let _ = io.join();
        }
    }

    /// Tells every worker to stop, then stops serving.
    pub fn shutdown(&self) {
        let _ = self
            .tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(Inbound::Shutdown);
        self.wait();
    }
}

impl Scheduler {
    /// SIGTERM or SIGINT shuts the scheduler down cleanly (what `oxidask scheduler` does):
    /// workers are told to stop, clients' connections close, and [`Scheduler::wait`]
    /// returns. A second signal exits the process at once with code 1.
    pub fn shut_down_on_signals(self: &Arc<Self>) {
        let scheduler = self.clone();
        oxidask_protocol::signals::on_termination("oxidask-scheduler", move || {
            eprintln!("oxidask-scheduler: shutting down (signal): telling the workers to stop");
            scheduler.shutdown();
        });
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Asks a running scheduler's core questions; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct Monitor {
    tx: mpsc::Sender<Inbound>,
}

impl Monitor {
    /// Asks `q`; `None` if the scheduler stopped or did not answer within `timeout`.
    pub fn ask(&self, q: Query, timeout: Duration) -> Option<Answer> {
        let (tx, rx) = mpsc::channel();
        self.tx.send(Inbound::Query(q, tx)).ok()?;
        rx.recv_timeout(timeout).ok()
    }
}

/// Task-stream records a snapshot carries, at most: the newest (10,000 a second at one
/// snapshot per 200 ms — more than a page can draw; a busier cluster's stream is sampled).
pub const STREAM_PER_SNAPSHOT: usize = 2_000;

/// Events handled before effects are sent, at most.
const MAX_BATCH: usize = 4096;

/// What the core thread runs with.
struct CoreConfig {
    config: Config,
    tick: Duration,
    log: Arc<SchedulerLog>,
    publish_every: Duration,
    log_source: LogSource,
    opened: Option<crate::journal::Opened>,
}

/// Watchers and the core's own accounting for them.
#[derive(Default)]
struct Watchers {
    subscribers: Vec<mpsc::SyncSender<Arc<Published>>>,
    stream_next: u64,
    stats: CoreStats,
    since: Option<Instant>,
}

impl Watchers {
    /// Publishes a snapshot to every watcher (dropping it for those still busy with the
    /// last one) and starts a new accounting period.
    fn publish(&mut self, state: &SchedulerState, now: Instant, connections: usize) {
        if self.subscribers.is_empty() {
            self.since = Some(now);
            return;
        }
        let snapshot = state.snapshot(self.stream_next, STREAM_PER_SNAPSHOT);
        self.stream_next = snapshot.stream_next;
        self.stats.seconds = self
            .since
            .map_or(0.0, |s| now.saturating_duration_since(s).as_secs_f64());
        self.stats.connections = connections as u64;
        let published = Arc::new(Published {
            snapshot,
            core: self.stats,
        });
        let mut dropped = 0;
        self.subscribers
            .retain(|s| match s.try_send(published.clone()) {
                Ok(()) => true,
                Err(mpsc::TrySendError::Full(_)) => {
                    dropped += 1;
                    true
                }
                Err(mpsc::TrySendError::Disconnected(_)) => false,
            });
        self.stats = CoreStats {
            dropped: self.stats.dropped + dropped,
            ..CoreStats::default()
        };
        self.since = Some(now);
    }
}

fn answer(state: &SchedulerState, q: Query) -> Answer {
    match q {
        Query::Story(text) => Answer::Story(match text.trim().parse::<oxidask_core::Key>() {
            Ok(k) => state.story(&k).iter().map(|t| t.line()).collect(),
            Err(_) => Vec::new(),
        }),
        Query::Graph(limit) => Answer::Graph(state.graph_view(limit)),
        Query::WorkerLogs(w) => Answer::WorkerLogs(state.observations().worker_logs(&w)),
    }
}

fn run_core(cfg: CoreConfig, rx: mpsc::Receiver<Inbound>) {
    let CoreConfig {
        config,
        tick,
        log,
        publish_every,
        log_source,
        opened,
    } = cfg;
    // With a journal: the replayed state, workers' events held back until the workers the
    // journal named are back, restored clients kept for a while (server/restore.rs).
    let (mut state, mut journal, mut gate, mut restored) = match opened {
        Some(o) => {
            let gate = restore::Gate::new(&o.replayed.workers, Instant::now());
            // Anonymous clients cannot reconnect: their futures are kept a while for others.
            let restored: Vec<u64> = o
                .replayed
                .clients
                .iter()
                .filter(|(_, _, id)| *id == 0)
                .map(|(c, _, _)| *c)
                .collect();
            (o.state, Some(o.journal), gate, restored)
        }
        None => (
            SchedulerState::new(config, Instant::now()),
            None,
            None,
            Vec::new(),
        ),
    };
    let restored_until = Instant::now() + restore::CLIENT_GRACE;
    let mut pending: std::collections::VecDeque<Inbound> = Default::default();
    state.set_log_source(log_source);
    let mut writers: Writers = FxHashMap::default();
    let mut effects = Vec::new();
    let mut next_tick = Instant::now() + tick;
    let mut next_publish = Instant::now() + publish_every;
    let mut watchers = Watchers::default();
    let mut shutting_down = false;
    loop {
        let timeout = next_tick
            .min(next_publish)
            .saturating_duration_since(Instant::now());
        let first = match pending.pop_front() {
            Some(m) => Some(m),
            None => match rx.recv_timeout(timeout) {
                Ok(m) => Some(m),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            },
        };
        let now = Instant::now();
        let mut handled = 0;
        let mut next = first;
        let mut resumed = false;
        loop {
            if gate.as_ref().is_some_and(|g| g.ready(now)) {
                let g = gate.take().expect("a gate");
                let missing = g.missing();
                log.log(format!(
                    "journal: resuming with the workers that came back{}",
                    if missing.is_empty() {
                        String::new()
                    } else {
                        format!(" (not back: {})", missing.join(", "))
                    }
                ));
                pending.extend(g.held);
                resumed = true;
            }
            let Some(mut msg) = next.take().or_else(|| pending.pop_front()) else {
                break;
            };
            if let Some(g) = gate.as_mut() {
                match g.intercept(msg) {
                    Some(m) => msg = m,
                    None => {
                        next = if handled < MAX_BATCH {
                            rx.try_recv().ok()
                        } else {
                            None
                        };
                        continue;
                    }
                }
            }
            match msg {
                Inbound::Open {
                    conn,
                    tx,
                    event,
                    backlog,
                } => {
                    let is_worker = matches!(event, Event::WorkerJoined { .. });
                    writers.insert(conn, (tx, is_worker, backlog));
                    restore::feed(&mut state, &mut journal, event, now, &mut effects);
                }
                Inbound::Event(e) => {
                    let closing = match &e {
                        Event::ClientLeft { conn } | Event::WorkerLeft { conn, .. } => Some(*conn),
                        _ => None,
                    };
                    restore::feed(&mut state, &mut journal, e, now, &mut effects);
                    if let Some(c) = closing {
                        writers.remove(&c);
                    }
                }
                Inbound::Events(es, backlog) => {
                    watchers.stats.events += (es.len() as u64).saturating_sub(1);
                    for e in es {
                        restore::feed(&mut state, &mut journal, e, now, &mut effects);
                    }
                    backlog.inbound.add_permits(1);
                }
                Inbound::Subscribe(tx) => watchers.subscribers.push(tx),
                Inbound::Query(q, reply) => {
                    let _ = reply.send(answer(&state, q));
                }
                Inbound::Shutdown => shutting_down = true,
            }
            watchers.stats.events += 1;
            handled += 1;
            next = if handled < MAX_BATCH {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        if now >= next_tick {
            state.handle_into(Event::Tick, now, &mut effects);
            next_tick = now + tick;
            if !restored.is_empty() && now >= restored_until {
                for conn in std::mem::take(&mut restored) {
                    restore::feed(
                        &mut state,
                        &mut journal,
                        Event::ClientLeft { conn },
                        now,
                        &mut effects,
                    );
                }
            }
        }
        if resumed {
            restore::drop_cancelled_computes(&mut effects);
        }
        if let Some(j) = journal.as_mut() {
            j.flush();
            if j.wants_compaction() {
                if let Err(e) = j.compact(&state) {
                    tracing::error!("{e}: journalling stops");
                    journal = None;
                }
            }
        }
        dispatch(&mut effects, &writers, &log);
        if handled > 0 {
            let busy = now.elapsed().as_secs_f64();
            watchers.stats.busy_seconds += busy;
            watchers.stats.max_batch_seconds = watchers.stats.max_batch_seconds.max(busy);
        }
        let after = Instant::now();
        if after >= next_publish {
            watchers.publish(&state, after, writers.len());
            next_publish = after + publish_every;
        }
        if shutting_down {
            for (tx, is_worker, _) in writers.values() {
                if *is_worker {
                    let _ = tx.send(Outbound::Worker(vec![ToWorker::Stop {
                        reason: "the scheduler is shutting down".into(),
                    }]));
                }
                let _ = tx.send(Outbound::Close("the scheduler is shutting down".into()));
            }
            return;
        }
    }
}

/// The core's side of each connection: its writer, whether it is a worker, its backlog.
type Writers = FxHashMap<u64, (UnboundedSender<Outbound>, bool, Arc<Backlog>)>;

/// Sends each connection its effects as one batch, in order. A connection whose writer has
/// more than [`MAX_OUTBOUND_MESSAGES`] waiting (its peer stopped reading) is closed instead.
fn dispatch(effects: &mut Vec<Effect>, writers: &Writers, log: &SchedulerLog) {
    if effects.is_empty() {
        return;
    }
    let mut to_clients: FxHashMap<u64, Vec<ToClient>> = FxHashMap::default();
    let mut to_workers: FxHashMap<u64, Vec<ToWorker>> = FxHashMap::default();
    let mut closes = Vec::new();
    for e in effects.drain(..) {
        match e {
            Effect::ToClient { conn, msg } => to_clients.entry(conn).or_default().push(msg),
            Effect::ToWorker { conn, msg } => to_workers.entry(conn).or_default().push(msg),
            Effect::Close { conn, reason } => closes.push((conn, reason)),
        }
    }
    let queue = |conn: u64, n: usize, closes: &mut Vec<(u64, String)>| -> bool {
        let Some((_, _, backlog)) = writers.get(&conn) else {
            return false;
        };
        let before = backlog
            .outbound
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        if before > MAX_OUTBOUND_MESSAGES {
            closes.push((
                conn,
                format!("it stopped reading ({before} messages waiting to be sent)"),
            ));
            return false;
        }
        true
    };
    for (conn, msgs) in to_clients {
        if queue(conn, msgs.len(), &mut closes) {
            let _ = writers[&conn].0.send(Outbound::Client(msgs));
        }
    }
    for (conn, msgs) in to_workers {
        if queue(conn, msgs.len(), &mut closes) {
            let _ = writers[&conn].0.send(Outbound::Worker(msgs));
        }
    }
    for (conn, reason) in closes {
        log.log(format!("closing connection {conn}: {reason}"));
        if let Some((tx, is_worker, _)) = writers.get(&conn) {
            if *is_worker {
                let _ = tx.send(Outbound::Worker(vec![ToWorker::Stop {
                    reason: reason.clone(),
                }]));
            }
            let _ = tx.send(Outbound::Close(reason));
        }
    }
}
