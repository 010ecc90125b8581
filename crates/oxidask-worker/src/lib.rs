//! # oxidask-worker
//!
//! A worker: connects to a scheduler, runs the registered operations it is assigned on a
//! thread pool in priority order, holds their results with exact byte accounting, fetches
//! dependencies directly from the peers that hold them, serves its results to peers and
//! clients on its data port, and reports liveness and metrics in heartbeats.
//!
//! A program with its own `#[oxidask::task]` functions runs as a worker with one call at the
//! top of `main` ([`run_if_worker`]), so its workers know its operations:
//!
//! ```no_run
//! // First thing in `main`: `my-program worker tcp://127.0.0.1:8786 --nthreads 2` runs a
//! // worker and exits; any other invocation returns and the program goes on.
//! oxidask_worker::run_if_worker();
//! ```

// Wire errors are built on failure paths only.
#![allow(clippy::result_large_err)]

pub mod actor;
mod cli;
mod execute;
pub mod memory;
mod metrics;
pub mod nanny;
mod shell;
pub mod shuffle;
mod spillfile;
mod state;
mod transfer;

use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use oxidask_core::Key;
pub use oxidask_protocol::transport::Security;
use oxidask_protocol::transport::Stream;
use oxidask_protocol::{
    handshake_connect, hello, read_frame, write_frame, FromWorker, Limits, ProtocolError, Role,
    ToWorker, WireKey, WorkerInfo,
};
use rustc_hash::FxHashMap;
use tokio::io::{BufReader, BufWriter};
use tokio::sync::Notify;

pub use actor::{ActorInstance, ActorPlacement};
pub use cli::{cpu_count, main_with_args, run_if_worker, WorkerArgs};
pub use execute::{current, rejoin, secede, seceded, WorkerContext};
#[doc(hidden)]
pub use oxidask_core::__private::inventory as __private_inventory;

use state::WorkerState;

/// State shared by the worker's threads.
pub(crate) struct Shared {
    state: Mutex<WorkerState>,
    cv: Condvar,
    nthreads: usize,
    zero_work: bool,
    name: String,
    data_address: String,
    scheduler: String,
    writer_wake: Notify,
    stop: Notify,
    pool: oxidask_protocol::peer::PeerPool,
    quiet: bool,
    /// Numbers executor threads (for the task stream).
    next_thread: std::sync::atomic::AtomicU32,
    /// Log lines since the last heartbeat (their own lock: logging happens under the state's).
    log_lines: Mutex<Vec<String>>,
    /// The actors this worker holds (outside the data store: never spilled or sent).
    actors: actor::Actors,
    /// Woken when the memory monitor resumes a paused worker (fetches wait on it).
    resumed: Notify,
    /// The scheduler asked for a restart (`ToWorker::Restart`).
    restart_requested: std::sync::atomic::AtomicBool,
    /// The worker asked to be retired (SIGTERM): it leaves once the scheduler says so, and
    /// does not reconnect if the connection drops meanwhile.
    retiring: std::sync::atomic::AtomicBool,
    /// It gave up on its scheduler (unreachable for longer than the death timeout).
    lost_scheduler: std::sync::atomic::AtomicBool,
    /// It lost its scheduler and is trying to reach it again.
    reconnecting: std::sync::atomic::AtomicBool,
    /// The worker has its process to itself (`oxidask worker`): lifecycle lines also go to
    /// stderr.
    owns_process: bool,
    /// The I/O runtime, for fetches ordered from other threads (a resume).
    runtime: std::sync::OnceLock<tokio::runtime::Handle>,
}

/// Log lines kept between heartbeats, at most.
const LOG_LINES_CAP: usize = 200;

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, WorkerState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn wake_writer(&self) {
        self.writer_wake.notify_one();
    }

    /// Logs a line (kept for the scheduler's copy of this worker's log, and emitted as a
    /// `tracing` event unless quiet).
    pub(crate) fn log(&self, msg: impl AsRef<str>) {
        self.log_at(tracing::Level::INFO, msg);
    }

    /// Logs a lifecycle line (connecting, reconnecting, retiring): also on stderr when the
    /// worker has its process to itself.
    pub(crate) fn say(&self, level: tracing::Level, msg: impl AsRef<str>) {
        // A process with a `tracing` subscriber shows the line through it already.
        if self.owns_process && !tracing::dispatcher::has_been_set() {
            eprintln!("oxidask-worker {}: {}", self.name, msg.as_ref());
        }
        self.log_at(level, msg);
    }

    /// Logs a line at a level of its own (`WARN` for failures).
    pub(crate) fn log_at(&self, level: tracing::Level, msg: impl AsRef<str>) {
        let line = format!("{}: {}", self.name, msg.as_ref());
        if !self.quiet {
            if level == tracing::Level::WARN {
                tracing::warn!("{line}");
            } else {
                tracing::info!("{line}");
            }
        }
        let line = format!("{:.3} {level} {line}", crate::state::now_us() as f64 / 1e6);
        let mut lines = self.log_lines.lock().unwrap_or_else(|p| p.into_inner());
        if lines.len() < LOG_LINES_CAP {
            lines.push(line);
        }
    }
}

/// Builds a [`Worker`].
#[derive(Clone, Debug)]
pub struct WorkerBuilder {
    scheduler: String,
    name: Option<String>,
    host: String,
    port: u16,
    contact_address: Option<String>,
    nthreads: usize,
    memory_limit: u64,
    resources: Vec<(String, f64)>,
    heartbeat: Duration,
    connect_timeout: Duration,
    zero_work: bool,
    metrics_address: Option<String>,
    quiet: bool,
    local_directory: Option<std::path::PathBuf>,
    security: Security,
    memory_target: Option<f64>,
    memory_thresholds: memory::Thresholds,
    memory_monitor_interval: Duration,
    exit_on_memory_terminate: bool,
    spill_compression: bool,
}

impl WorkerBuilder {
    /// The fraction of the memory limit that results may hold before the least recently used
    /// spill to disk (`distributed.worker.memory.target`, default 0.6; `None`: never spill).
    pub fn memory_target(mut self, fraction: Option<f64>) -> Self {
        self.memory_target = fraction.map(|f| f.clamp(0.0, 1.0));
        self.memory_thresholds.target = self.memory_target;
        self
    }

    /// Dask's memory thresholds on the process's memory (spill, pause, terminate; default
    /// 0.7, 0.8, 0.95 of the memory limit; see [`memory`]). The target set here replaces
    /// [`WorkerBuilder::memory_target`]'s. Applied only with a memory limit.
    pub fn memory_thresholds(mut self, thresholds: memory::Thresholds) -> Self {
        self.memory_target = thresholds.target.map(|f| f.clamp(0.0, 1.0));
        self.memory_thresholds = thresholds;
        self
    }

    /// Whether spill files are compressed (zstd) when a sample of the value shows it pays
    /// (`distributed.worker.memory.spill-compression`; default on).
    pub fn spill_compression(mut self, on: bool) -> Self {
        self.spill_compression = on;
        self
    }

    /// How often the process's memory is measured
    /// (`distributed.worker.memory.monitor-interval`, default 100 ms).
    pub fn memory_monitor_interval(mut self, every: Duration) -> Self {
        self.memory_monitor_interval = every.max(Duration::from_millis(1));
        self
    }

    /// The worker has its process to itself (the `oxidask worker` command sets this): with a
    /// memory limit, it watches the process's resident memory against the spill, pause and
    /// terminate thresholds, and past terminate exits the process with
    /// [`nanny::EXIT_MEMORY`] so that its nanny restarts it. Default: off — a worker inside
    /// another program (a `LocalCluster` in one process, tests) cannot tell its share of the
    /// process's memory, so only the target applies, to its results.
    pub fn owns_process(mut self, on: bool) -> Self {
        self.exit_on_memory_terminate = on;
        self
    }

    /// TLS credentials and the authentication token for every connection: to the scheduler,
    /// to peers' data ports, and on its own data port (default: plain TCP, no token).
    pub fn security(mut self, security: Security) -> Self {
        self.security = security;
        self
    }

    /// Its name (unique in the cluster; used by `workers=` restrictions). Default: its data
    /// address.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The interface its data port listens on (default `127.0.0.1`).
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = host.into();
        self
    }

    /// The port its data port listens on (default 0: a free one).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// The address it tells the scheduler, peers and clients to reach it at, when that is not
    /// where it listens (NAT, a container's published port): `tcp://HOST:PORT`, or `HOST` for
    /// the listening port (Dask's `contact_address`). Default: the listening address.
    pub fn contact_address(mut self, address: Option<String>) -> Self {
        self.contact_address = address;
        self
    }

    /// Threads running tasks (default: [`cpu_count`], the cores or the container's CPU quota
    /// rounded up).
    pub fn nthreads(mut self, n: usize) -> Self {
        self.nthreads = n.max(1);
        self
    }

    /// Memory limit in bytes (0: none), reported to the scheduler. Results beyond 60% of it
    /// spill to files in the local directory, least recently used first, and are read back
    /// when a task or a peer needs them (Dask's `distributed.worker.memory.target`).
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.memory_limit = bytes;
        self
    }

    /// Where spilled results go (default: the system's temporary directory); a directory of
    /// its own is made inside and removed when the worker stops.
    pub fn local_directory(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.local_directory = Some(dir.into());
        self
    }

    /// Abstract resources it offers (`("GPU", 2.0)`).
    pub fn resources(mut self, resources: Vec<(String, f64)>) -> Self {
        self.resources = resources;
        self
    }

    /// Heartbeat interval (default 1 s).
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every;
        self
    }

    /// How long to keep trying to reach the scheduler — at start, and again after losing
    /// it — before giving up (Dask's `death_timeout`, the `--death-timeout` flag; default
    /// 30 s). Attempts are logged and retried with a doubling delay (0.1 s up to 5 s). A
    /// worker that loses its scheduler reconnects (to a scheduler restarted at the same
    /// address), registers again and reports the results it holds; one that gives up stops
    /// ([`Worker::lost_scheduler`]; the `oxidask worker` command exits with code 1).
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    /// Same as [`WorkerBuilder::connect_timeout`], by Dask's name.
    pub fn death_timeout(self, t: Duration) -> Self {
        self.connect_timeout(t)
    }

    /// Acknowledge tasks without running them (for measuring the scheduler alone).
    pub fn zero_work(mut self, on: bool) -> Self {
        self.zero_work = on;
        self
    }

    /// Serve `/metrics` (Prometheus, Dask's worker metric names) and `/health` over HTTP
    /// at `host:port` (port 0: a free one); see [`Worker::metrics_link`]. Default: none.
    pub fn metrics_address(mut self, address: Option<String>) -> Self {
        self.metrics_address = address;
        self
    }

    /// Stay silent on stderr.
    pub fn quiet(mut self, quiet: bool) -> Self {
        self.quiet = quiet;
        self
    }

    /// Starts the worker; returns once the scheduler has accepted it.
    pub fn start(self) -> io::Result<Worker> {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        let listener = std::net::TcpListener::bind((host, self.port)).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot open the data port on {host}: {e}; give --host an address of this machine"),
            )
        })?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let data_address = match &self.contact_address {
            Some(c) => oxidask_protocol::netif::contact_host_port(c, port)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
            None => {
                oxidask_protocol::join_host_port(&advertised_host(host, &self.scheduler)?, port)
            }
        };
        let name = self.name.clone().unwrap_or_else(|| data_address.clone());
        let metrics_listener = match &self.metrics_address {
            Some(a) => {
                let l = std::net::TcpListener::bind(a.as_str()).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("cannot serve worker metrics on {a}: {e}; choose another address"),
                    )
                })?;
                l.set_nonblocking(true)?;
                Some(l)
            }
            None => None,
        };
        let metrics_link = match &metrics_listener {
            Some(l) => Some(format!("http://{}/metrics", l.local_addr()?)),
            None => None,
        };
        let scheduler = self.scheduler.clone();
        let info = WorkerInfo {
            name: name.clone(),
            data_address: data_address.clone(),
            nthreads: self.nthreads as u32,
            memory_limit: self.memory_limit,
            resources: self.resources.clone(),
        };
        let mut state = WorkerState::default();
        let spill_dir = if let (true, Some(target)) = (self.memory_limit > 0, self.memory_target) {
            static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let dir = self
                .local_directory
                .clone()
                .unwrap_or_else(std::env::temp_dir)
                .join(format!("oxidask-worker-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            state.spill = Some(state::Spill {
                dir: dir.clone(),
                target: (self.memory_limit as f64 * target) as u64,
                files: 0,
                compress: self.spill_compression,
            });
            Some(dir)
        } else {
            None
        };
        shuffle::worker_started(&data_address, self.memory_limit);
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            cv: Condvar::new(),
            nthreads: self.nthreads,
            zero_work: self.zero_work,
            name,
            data_address,
            scheduler: scheduler.clone(),
            writer_wake: Notify::new(),
            stop: Notify::new(),
            pool: oxidask_protocol::peer::PeerPool::new(self.security.clone()),
            quiet: self.quiet,
            next_thread: std::sync::atomic::AtomicU32::new(0),
            log_lines: Mutex::new(Vec::new()),
            actors: actor::Actors::default(),
            resumed: Notify::new(),
            restart_requested: std::sync::atomic::AtomicBool::new(false),
            retiring: std::sync::atomic::AtomicBool::new(false),
            lost_scheduler: std::sync::atomic::AtomicBool::new(false),
            reconnecting: std::sync::atomic::AtomicBool::new(false),
            owns_process: self.exit_on_memory_terminate,
            runtime: std::sync::OnceLock::new(),
        });
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let io_shared = shared.clone();
        let heartbeat = self.heartbeat;
        let connect_timeout = self.connect_timeout;
        let security = self.security.clone();
        let exit_reason = Arc::new(Mutex::new(None::<String>));
        let exit = exit_reason.clone();
        let io = std::thread::Builder::new()
            .name("oxidask-worker-io".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a tokio runtime");
                let task_shared = io_shared.clone();
                let _ = io_shared.runtime.set(rt.handle().clone());
                let reason = rt.block_on(async move {
                    let io_shared = task_shared;
                    let logger = io_shared.clone();
                    let log = move |m: String| logger.say(tracing::Level::WARN, m);
                    let stream = match connect(&security, &scheduler, info.clone(), connect_timeout, &log).await {
                        Ok(s) => {
                            let _ = ready_tx.send(Ok(()));
                            s
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.clone()));
                            return e;
                        }
                    };
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .expect("a listener registered with tokio");
                    let server = tokio::spawn(transfer::serve_data(
                        listener,
                        security.clone(),
                        io_shared.clone(),
                    ));
                    let metrics = metrics_listener.map(|l| {
                        let l = tokio::net::TcpListener::from_std(l)
                            .expect("a listener registered with tokio");
                        tokio::spawn(metrics::serve(l, io_shared.clone()))
                    });
                    let mut stream = stream;
                    let reason = loop {
                        let (reason, lost) = run(stream, io_shared.clone(), heartbeat).await;
                        let retiring = io_shared
                            .retiring
                            .load(std::sync::atomic::Ordering::SeqCst);
                        if !lost || retiring {
                            break reason;
                        }
                        io_shared.say(
                            tracing::Level::WARN,
                            format!(
                                "{reason}; reconnecting (giving up after {:.1} s)",
                                connect_timeout.as_secs_f64()
                            ),
                        );
                        io_shared
                            .reconnecting
                            .store(true, std::sync::atomic::Ordering::SeqCst);
                        let reconnect = tokio::select! {
                            r = connect(&security, &scheduler, info.clone(), connect_timeout, &log) => r,
                            _ = io_shared.stop.notified() => break "stopped".to_owned(),
                        };
                        match reconnect {
                            Ok(s) => {
                                io_shared
                                    .reconnecting
                                    .store(false, std::sync::atomic::Ordering::SeqCst);
                                stream = s;
                                let mut st = io_shared.lock();
                                let effects = st.handle(state::Event::NewScheduler, state::now_us());
                                let held = effects.iter().map(|e| match e {
                                    state::Effect::Send(FromWorker::Holding { keys }) => keys.len(),
                                    _ => 0,
                                }).sum::<usize>();
                                io_shared.say(tracing::Level::INFO, format!(
                                    "registered again with the scheduler at {}; it holds {held} result(s)",
                                    io_shared.scheduler,
                                ));
                                io_shared.carry_out(st, effects);
                            }
                            Err(e) => {
                                io_shared
                                    .lost_scheduler
                                    .store(true, std::sync::atomic::Ordering::SeqCst);
                                break format!("{reason}, and {e}");
                            }
                        }
                    };
                    server.abort();
                    if let Some(m) = metrics {
                        m.abort();
                    }
                    reason
                });
                io_shared.lock().stopping = true;
                io_shared.actors.clear();
                shuffle::worker_stopped(&io_shared);
                io_shared.cv.notify_all();
                *exit.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = io.join();
                return Err(io::Error::other(e));
            }
            Err(_) => {
                let _ = io.join();
                return Err(io::Error::other("the worker's I/O thread ended"));
            }
        }
        {
            let mut st = shared.lock();
            st.threads = self.nthreads;
        }
        for _ in 0..self.nthreads {
            execute::spawn_executor(shared.clone());
        }
        if self.memory_limit > 0 && self.exit_on_memory_terminate {
            memory::spawn_monitor(
                shared.clone(),
                memory::MonitorConfig {
                    limit: self.memory_limit,
                    thresholds: self.memory_thresholds,
                    interval: self.memory_monitor_interval,
                    exit_process: self.exit_on_memory_terminate,
                },
            )?;
        }
        Ok(Worker {
            shared,
            io: Mutex::new(Some(io)),
            exit_reason,
            spill_dir,
            metrics_link,
        })
    }
}

/// The host peers reach this worker at: `host` itself, or — when it listens on every
/// interface (`0.0.0.0`, `::`) — the address of the interface that routes to the scheduler.
fn advertised_host(host: &str, scheduler: &str) -> io::Result<String> {
    use std::net::{IpAddr, ToSocketAddrs, UdpSocket};
    match host.parse::<IpAddr>() {
        Ok(ip) if ip.is_unspecified() => {
            let explain = |e: io::Error| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "the worker listens on every interface (--host {host}) and cannot tell which address its peers reach it at ({e}); give --host the address of this machine that the scheduler and other workers can reach"
                    ),
                )
            };
            let target = oxidask_protocol::strip_any_scheme(scheduler)
                .to_socket_addrs()
                .map_err(explain)?
                .next()
                .ok_or_else(|| {
                    explain(io::Error::other(
                        "the scheduler's address resolves to nothing",
                    ))
                })?;
            // A UDP "connection" sends nothing; it only asks the kernel for the route.
            let probe = UdpSocket::bind(if target.is_ipv6() {
                "[::]:0"
            } else {
                "0.0.0.0:0"
            })
            .map_err(explain)?;
            probe.connect(target).map_err(explain)?;
            Ok(probe.local_addr().map_err(explain)?.ip().to_string())
        }
        _ => Ok(host.to_owned()),
    }
}

/// `tcp://host:port` or `host:port` → `host:port`.
pub fn strip_scheme(address: &str) -> &str {
    oxidask_protocol::strip_scheme(address)
}

async fn connect(
    security: &Security,
    scheduler: &str,
    info: WorkerInfo,
    timeout: Duration,
    log: &(dyn Fn(String) + Sync),
) -> Result<Stream, String> {
    let start = tokio::time::Instant::now();
    let deadline = start + timeout;
    let mut delay = Duration::from_millis(100);
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let last = match security.connect(scheduler).await {
            // Refused by TLS or the token: trying again will not help.
            Err(ProtocolError::Refused(why)) => {
                return Err(format!(
                    "the scheduler at {scheduler} refused this worker: {why}"
                ))
            }
            Ok(mut s) => {
                return match handshake_connect(&mut s, hello(Role::Worker(info.clone()))).await {
                    Ok(_) => Ok(s),
                    Err(e) => Err(format!(
                        "the scheduler at {scheduler} refused this worker: {e}"
                    )),
                };
            }
            Err(e) => e.to_string(),
        };
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err(format!(
                "cannot reach the scheduler at {scheduler} after {attempt} attempt(s) in {:.1} s ({last}); start it with `oxidask scheduler`, check the address, or give a longer --death-timeout",
                now.saturating_duration_since(start).as_secs_f64()
            ));
        }
        let wait = delay.min(deadline.saturating_duration_since(now));
        log(format!(
            "cannot reach the scheduler at {scheduler} (attempt {attempt}: {last}); retrying in {:.1} s, giving up after {:.1} s",
            wait.as_secs_f64(),
            timeout.as_secs_f64()
        ));
        tokio::time::sleep(wait).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// Serves the scheduler connection until it closes; returns why, and whether the scheduler
/// was lost (rather than the worker told or asked to stop).
async fn run(stream: Stream, shared: Arc<Shared>, heartbeat: Duration) -> (String, bool) {
    shared.log(format!(
        "registered with the scheduler at {}; serving data at {} with {} threads",
        shared.scheduler, shared.data_address, shared.nthreads
    ));
    let (rd, wr) = stream.into_split();
    let writer_shared = shared.clone();
    let writer = tokio::spawn(async move {
        let mut wr = BufWriter::with_capacity(1 << 16, wr);
        loop {
            writer_shared.writer_wake.notified().await;
            let batch: Vec<FromWorker> = std::mem::take(&mut writer_shared.lock().outbox);
            if batch.is_empty() {
                continue;
            }
            if write_frame(&mut wr, &batch).await.is_err() {
                return;
            }
        }
    });
    let hb_shared = shared.clone();
    let heartbeats = tokio::spawn(async move {
        let mut cpu = cli::CpuMeter::new();
        let mut tick = tokio::time::interval(heartbeat);
        loop {
            tick.tick().await;
            let c = cpu.percent();
            let rss = cli::resident_bytes();
            let logs = std::mem::take(
                &mut *hb_shared
                    .log_lines
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()),
            );
            let mut st = hb_shared.lock();
            let msg = FromWorker::Heartbeat {
                memory: st.memory,
                executing: st.executing,
                keys: st.data.len() as u64,
                cpu: c,
                rss,
                spilled: st.spilled_now,
                activity: std::mem::take(&mut st.activity),
                logs,
            };
            st.outbox.push(msg);
            drop(st);
            hb_shared.wake_writer();
        }
    });
    let mut rd = BufReader::with_capacity(1 << 16, rd);
    let limits = Limits::default();
    // What was queued for a scheduler that went away goes (it is about the old one).
    shared
        .lock()
        .outbox
        .retain(|m| matches!(m, FromWorker::Holding { .. } | FromWorker::Retire));
    shared.wake_writer();
    let reason = loop {
        let frame = tokio::select! {
            f = read_frame::<_, ToWorker>(&mut rd, &limits) => f,
            _ = shared.stop.notified() => break ("stopped".to_owned(), false),
        };
        match frame {
            Ok(Some(msgs)) => {
                if let Some(reason) = handle(&shared, msgs) {
                    break (reason, false);
                }
            }
            Ok(None) => break ("the scheduler closed the connection".to_owned(), true),
            Err(e) => break (format!("lost the scheduler: {e}"), true),
        }
    };
    writer.abort();
    heartbeats.abort();
    reason
}

/// Applies a batch of scheduler messages; `Some(reason)` if told to stop.
fn handle(shared: &Arc<Shared>, msgs: Vec<ToWorker>) -> Option<String> {
    use state::Event;
    let mut acquires = Vec::new();
    let mut stop = None;
    let mut events = Vec::with_capacity(msgs.len());
    for m in msgs {
        match m {
            ToWorker::Compute {
                task,
                who_has,
                priority,
            } => {
                let Ok(key) = task.key.to_key() else { continue };
                let deps: Vec<(Key, WireKey)> = task
                    .deps
                    .into_iter()
                    .filter_map(|d| d.to_key().ok().map(|k| (k, d)))
                    .collect();
                let who_has: FxHashMap<Key, Vec<String>> = who_has
                    .into_iter()
                    .filter_map(|(k, a)| k.to_key().ok().map(|k| (k, a)))
                    .collect();
                events.push(Event::Compute {
                    key,
                    wire_key: task.key,
                    spec: task.spec,
                    deps,
                    who_has,
                    priority,
                });
            }
            ToWorker::Free { keys } => {
                for k in keys {
                    if let Ok(key) = k.to_key() {
                        shared.actors.free(&key);
                        shuffle::key_freed(shared, &key);
                        events.push(Event::Free { key });
                    }
                }
            }
            ToWorker::Steal { key } => events.push(Event::Steal { wire_key: key }),
            ToWorker::Store { values } => {
                let mut decoded = Vec::with_capacity(values.len());
                for (wk, wv) in values {
                    match (wk.to_key(), wv.to_value()) {
                        (Ok(k), Ok(v)) => decoded.push((wk, k, v)),
                        (_, Err(e)) | (Err(e), _) => {
                            shared.log(format!("cannot store scattered {wk}: {e}"));
                        }
                    }
                }
                events.push(Event::Store { values: decoded });
            }
            ToWorker::Stop { reason } => stop = Some(format!("stopped by the scheduler: {reason}")),
            ToWorker::Acquire { who_has } => acquires.extend(who_has),
            ToWorker::Restart { reason } => {
                shared
                    .restart_requested
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                stop = Some(format!("restarting: {reason}"))
            }
        }
    }
    // One lock for the batch; its effects are carried out after it is released.
    let mut st = shared.lock();
    let now = state::now_us();
    let mut effects = Vec::new();
    for e in events {
        effects.extend(st.handle(e, now));
    }
    shared.carry_out(st, effects);
    shared.wake_writer();
    if !acquires.is_empty() {
        tokio::spawn(transfer::acquire(shared.clone(), acquires));
    }
    stop
}

/// A running worker.
pub struct Worker {
    shared: Arc<Shared>,
    io: Mutex<Option<JoinHandle<()>>>,
    exit_reason: Arc<Mutex<Option<String>>>,
    spill_dir: Option<std::path::PathBuf>,
    metrics_link: Option<String>,
}

impl Worker {
    /// A builder for a worker of the scheduler at `scheduler` (`tcp://host:port`).
    pub fn builder(scheduler: impl Into<String>) -> WorkerBuilder {
        WorkerBuilder {
            scheduler: scheduler.into(),
            name: None,
            host: "127.0.0.1".into(),
            port: 0,
            contact_address: None,
            nthreads: cli::cpu_count(),
            memory_limit: 0,
            resources: Vec::new(),
            heartbeat: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(30),
            zero_work: false,
            metrics_address: None,
            quiet: false,
            local_directory: None,
            security: Security::default(),
            memory_target: Some(0.6),
            memory_thresholds: memory::Thresholds::default(),
            memory_monitor_interval: Duration::from_millis(100),
            exit_on_memory_terminate: false,
            spill_compression: true,
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Its data address (`host:port`).
    pub fn data_address(&self) -> &str {
        &self.shared.data_address
    }

    /// Where it serves `/metrics` (`http://host:port/metrics`), if it does.
    pub fn metrics_link(&self) -> Option<&str> {
        self.metrics_link.as_deref()
    }

    /// Bytes of results it holds in memory now.
    pub fn memory(&self) -> u64 {
        self.shared.lock().memory
    }

    /// Whether its memory monitor paused it (process memory past
    /// `distributed.worker.memory.pause`).
    pub fn paused(&self) -> bool {
        self.shared.lock().paused
    }

    /// Whether the scheduler asked it to restart (`Client::restart`): it stopped, and the
    /// `oxidask worker` command exits with [`nanny::EXIT_RESTART`].
    pub fn restart_requested(&self) -> bool {
        self.shared
            .restart_requested
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Bytes of results spilled to disk: held there now, and ever.
    pub fn spilled(&self) -> (u64, u64) {
        let st = self.shared.lock();
        (st.spilled_now, st.spilled_total)
    }

    /// Bytes its spill files take on disk now: less than [`Worker::spilled`]'s first number
    /// when compression paid (spill files are zstd-compressed when a sample shrinks by 10%).
    pub fn spill_file_bytes(&self) -> u64 {
        self.shared.lock().spilled_file_bytes
    }

    /// Blocks until the worker stops; returns why.
    pub fn wait(&self) -> String {
        let io = self.io.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(io) = io {
            let _ = io.join();
        }
        self.exit_reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_default()
    }

    /// Asks the worker to stop and returns at once; [`Worker::wait`] returns once it has.
    pub fn stop(&self) {
        self.shared.stop.notify_one();
    }

    /// Asks the scheduler to retire this worker gracefully (what SIGTERM does): it is given
    /// no new task, the results only it holds are copied to other workers, then the scheduler
    /// tells it to stop. Returns at once; [`Worker::wait`] returns once it has stopped.
    pub fn retire(&self) {
        self.shared
            .retiring
            .store(true, std::sync::atomic::Ordering::SeqCst);
        if self
            .shared
            .reconnecting
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            // No scheduler to move its results: stop now rather than wait for one.
            self.shared.say(
                tracing::Level::INFO,
                "stopping: not connected to a scheduler that could move its results",
            );
            self.stop();
            return;
        }
        self.shared.say(
            tracing::Level::INFO,
            "asking the scheduler to retire this worker",
        );
        self.shared.lock().outbox.push(FromWorker::Retire);
        self.shared.wake_writer();
    }

    /// Whether it gave up on its scheduler: unreachable for longer than its death timeout
    /// ([`WorkerBuilder::death_timeout`]).
    pub fn lost_scheduler(&self) -> bool {
        self.shared
            .lost_scheduler
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stops the worker (running tasks finish on their threads; their results are dropped).
    pub fn shutdown(&self) {
        self.shared.stop.notify_one();
        self.wait();
        if let Some(dir) = &self.spill_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.shutdown();
    }
}
