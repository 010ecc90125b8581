//! The network shell around the state machine.
//!
//! Two threads: an I/O thread running a single-threaded tokio runtime (accepting, the
//! handshake, one reader and one writer task per connection) and the core thread that owns the
//! [`SchedulerState`] and feeds it events. Readers turn frames into [`Event`]s; the core
//! handles every event that is waiting before it sends anything, then sends each connection
//! its effects as one batch (one frame). A peer that sends garbage, a truncated or an
//! oversized frame loses its connection; nothing else is affected.

mod conn;

use std::io;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use oxidask_protocol::{ToClient, ToWorker};
use rustc_hash::FxHashMap;
use tokio::sync::mpsc::UnboundedSender;

use crate::state::{Config, Effect, Event, SchedulerState};

/// What the core sends to a connection's writer.
#[derive(Debug)]
pub(crate) enum Outbound {
    Client(Vec<ToClient>),
    Worker(Vec<ToWorker>),
    Close(String),
}

/// What readers send to the core.
pub(crate) enum Inbound {
    /// A connection passed the handshake; its writer listens on `tx`.
    Open {
        conn: u64,
        tx: UnboundedSender<Outbound>,
        event: Event,
    },
    Event(Event),
    Events(Vec<Event>),
    Shutdown,
}

/// Builds a [`Scheduler`].
#[derive(Clone, Debug)]
pub struct SchedulerBuilder {
    address: String,
    config: Config,
    tick: Duration,
    quiet: bool,
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

    /// Whether to stay silent on stderr (connections, refusals). Default: log.
    pub fn quiet(mut self, quiet: bool) -> Self {
        self.quiet = quiet;
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
        let (tx, rx) = mpsc::channel::<Inbound>();
        let shared = Arc::new(conn::Shared::new(self.quiet));
        let io_tx = tx.clone();
        let io_shared = shared.clone();
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
                        _ = conn::accept_loop(listener, io_tx, io_shared) => {}
                        _ = stop_rx => {}
                    }
                });
            })?;
        let config = self.config;
        let tick = self.tick;
        let quiet = self.quiet;
        let core = std::thread::Builder::new()
            .name("oxidask-scheduler-core".into())
            .spawn(move || run_core(config, tick, rx, quiet))?;
        Ok(Scheduler {
            address,
            tx: Mutex::new(tx),
            threads: Mutex::new(Some((core, io, stop_tx))),
        })
    }
}

/// A running scheduler.
pub struct Scheduler {
    address: SocketAddr,
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
        }
    }

    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The address as clients and workers are given it: `tcp://host:port`.
    pub fn url(&self) -> String {
        format!("tcp://{}", self.address)
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

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Events handled before effects are sent, at most.
const MAX_BATCH: usize = 4096;

fn run_core(config: Config, tick: Duration, rx: mpsc::Receiver<Inbound>, quiet: bool) {
    let mut state = SchedulerState::new(config, Instant::now());
    let mut writers: FxHashMap<u64, (UnboundedSender<Outbound>, bool)> = FxHashMap::default();
    let mut effects = Vec::new();
    let mut next_tick = Instant::now() + tick;
    let mut shutting_down = false;
    loop {
        let timeout = next_tick.saturating_duration_since(Instant::now());
        let first = match rx.recv_timeout(timeout) {
            Ok(m) => Some(m),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let now = Instant::now();
        let mut handled = 0;
        let mut next = first;
        while let Some(msg) = next {
            match msg {
                Inbound::Open { conn, tx, event } => {
                    let is_worker = matches!(event, Event::WorkerJoined { .. });
                    writers.insert(conn, (tx, is_worker));
                    state.handle_into(event, now, &mut effects);
                }
                Inbound::Event(e) => {
                    let closing = match &e {
                        Event::ClientLeft { conn } | Event::WorkerLeft { conn, .. } => Some(*conn),
                        _ => None,
                    };
                    state.handle_into(e, now, &mut effects);
                    if let Some(c) = closing {
                        writers.remove(&c);
                    }
                }
                Inbound::Events(es) => {
                    for e in es {
                        state.handle_into(e, now, &mut effects);
                    }
                }
                Inbound::Shutdown => shutting_down = true,
            }
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
        }
        dispatch(&mut effects, &writers, quiet);
        if shutting_down {
            for (tx, is_worker) in writers.values() {
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

/// Sends each connection its effects as one batch, in order.
fn dispatch(
    effects: &mut Vec<Effect>,
    writers: &FxHashMap<u64, (UnboundedSender<Outbound>, bool)>,
    quiet: bool,
) {
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
    for (conn, msgs) in to_clients {
        if let Some((tx, _)) = writers.get(&conn) {
            let _ = tx.send(Outbound::Client(msgs));
        }
    }
    for (conn, msgs) in to_workers {
        if let Some((tx, _)) = writers.get(&conn) {
            let _ = tx.send(Outbound::Worker(msgs));
        }
    }
    for (conn, reason) in closes {
        if !quiet {
            eprintln!("oxidask-scheduler: closing connection {conn}: {reason}");
        }
        if let Some((tx, is_worker)) = writers.get(&conn) {
            if *is_worker {
                let _ = tx.send(Outbound::Worker(vec![ToWorker::Stop {
                    reason: reason.clone(),
                }]));
            }
            let _ = tx.send(Outbound::Close(reason));
        }
    }
}
