//! `LocalCluster`: a scheduler and workers on this machine, in this process or as worker
//! processes, for laptops, tests and benchmarks.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use oxidask_core::Error;
use oxidask_scheduler::server::Scheduler;
use oxidask_scheduler::Config;
use oxidask_worker::Worker;

use crate::adaptive::{Adaptive, AdaptiveOptions};
use crate::client::{Client, Security};
use crate::error::{scheduler_error, ClientError};
use crate::lifecycle::Retire;

/// Builds a [`LocalCluster`].
#[derive(Clone, Debug)]
pub struct LocalClusterBuilder {
    workers: usize,
    threads_per_worker: usize,
    memory_limit: u64,
    processes: bool,
    program: Option<PathBuf>,
    program_args: Vec<String>,
    env: Vec<(String, String)>,
    host: String,
    port: u16,
    config: Option<Config>,
    zero_work: bool,
    quiet: bool,
    dashboard: Option<String>,
    security: Security,
}

use oxidask_protocol::transport::TOKEN_ENV;

/// Set in the environment of the worker processes a [`LocalCluster`] starts (to its pid), so
/// that a program which forgot [`run_if_worker`](oxidask_worker::run_if_worker) fails at once
/// instead of starting clusters recursively.
pub const SPAWNED_ENV: &str = "OXIDASK_LOCALCLUSTER_WORKER_OF";

impl LocalClusterBuilder {
    /// TLS and token for every connection in the cluster, e.g. [`Security::temporary`] (as
    /// Dask's `LocalCluster(security=Security.temporary())`). Worker processes get the
    /// credentials as files in a private temporary directory and the token through
    /// [`TOKEN_ENV`]; the cluster's [`LocalCluster::client`] uses them too.
    pub fn security(mut self, security: Security) -> Self {
        self.security = security;
        self
    }

    /// Number of workers (default: 2, or 1 on a single core).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// Threads per worker (default: cores / workers, at least 1).
    pub fn threads_per_worker(mut self, n: usize) -> Self {
        self.threads_per_worker = n.max(1);
        self
    }

    /// Memory limit per worker in bytes (0: none).
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.memory_limit = bytes;
        self
    }

    /// Run workers as separate processes of this program (which must call
    /// `oxidask::distributed::run_if_worker()` first thing in `main`) instead of threads.
    pub fn processes(mut self, on: bool) -> Self {
        self.processes = on;
        self
    }

    /// The program to start worker processes from (default: this program). It is started as
    /// `PROGRAM worker ADDRESS --nthreads N --name NAME ...`.
    pub fn worker_program(mut self, path: impl Into<PathBuf>) -> Self {
        self.program = Some(path.into());
        self.processes = true;
        self
    }

    /// The command to start worker processes with when the worker is not a program of its
    /// own: `PROGRAM ARGS... worker ADDRESS ...` (Python workers: `python -m oxidask`).
    pub fn worker_command(mut self, program: impl Into<PathBuf>, args: Vec<String>) -> Self {
        self.program = Some(program.into());
        self.program_args = args;
        self.processes = true;
        self
    }

    /// Environment variables set for worker processes (in addition to this process's).
    pub fn worker_env(mut self, env: Vec<(String, String)>) -> Self {
        self.env = env;
        self
    }

    /// The host the scheduler and the workers listen on (default `127.0.0.1`; `::1` or
    /// `[::1]` for IPv6 loopback, as Dask's `LocalCluster(host=...)`).
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = host.into();
        self
    }

    /// The scheduler's port (default 0: any free port).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Where the dashboard listens (default `127.0.0.1:8787`, or another free port if that is
    /// taken); `None` for no dashboard.
    pub fn dashboard_address(mut self, address: Option<String>) -> Self {
        self.dashboard = address;
        self
    }

    /// Scheduler policy settings (default: from the configuration, `distributed.scheduler.*`).
    pub fn scheduler_config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
    }

    /// Workers acknowledge tasks without running them (to measure the scheduler alone).
    pub fn zero_work(mut self, on: bool) -> Self {
        self.zero_work = on;
        self
    }

    /// Whether the scheduler and workers log to stderr (default: quiet).
    pub fn quiet(mut self, quiet: bool) -> Self {
        self.quiet = quiet;
        self
    }

    /// Starts the scheduler and the workers; returns once every worker has joined.
    pub fn start(self) -> Result<LocalCluster, Error> {
        let io = |e: std::io::Error| scheduler_error(ClientError::Rejected(e.to_string()));
        let bound = self
            .dashboard
            .as_ref()
            .map(|a| {
                oxidask_dashboard::Dashboard::builder()
                    .address(a.clone())
                    .bind()
            })
            .transpose()
            .map_err(io)?;
        let mut sb = Scheduler::builder()
            .security(self.security.clone())
            .address(oxidask_protocol::join_host_port(&self.host, self.port))
            .config(match &self.config {
                Some(c) => c.clone(),
                None => Config::from_config(
                    &*oxidask_config::global()
                        .map_err(|e| scheduler_error(ClientError::Rejected(e.to_string())))?,
                ),
            })
            .quiet(self.quiet);
        if let Some(b) = &bound {
            sb = sb.dashboard_link(b.link());
        }
        let scheduler = sb.start().map_err(io)?;
        let dashboard = bound.map(|b| b.serve(&scheduler)).transpose().map_err(io)?;
        let url = scheduler.url();
        let mut tls_dir = None;
        let mut tls_args = Vec::new();
        if self.processes && self.security.is_tls() {
            let dir = std::env::temp_dir().join(format!(
                "oxidask-tls-{}-{}",
                std::process::id(),
                scheduler.address().port()
            ));
            if let Some(f) = self.security.write_files(&dir).map_err(io)? {
                tls_args.push("--tls-ca-file".into());
                tls_args.push(f.ca.into_os_string());
                if let (Some(c), Some(k)) = (f.cert, f.key) {
                    tls_args.push("--tls-cert".into());
                    tls_args.push(c.into_os_string());
                    tls_args.push("--tls-key".into());
                    tls_args.push(k.into_os_string());
                }
            }
            tls_dir = Some(dir);
        }
        let program = if self.processes {
            if self.program.is_none() && std::env::var_os(SPAWNED_ENV).is_some() {
                // This process is a worker this program's LocalCluster started, and it got
                // here instead of becoming a worker: starting workers again would recurse.
                return Err(scheduler_error(ClientError::Rejected(format!(
                    "this process was started as a worker of a LocalCluster, but its main did not call oxidask::distributed::run_if_worker() before starting a LocalCluster; call it first thing in main (it returns at once unless the process is a worker) — {SPAWNED_ENV} is set"
                ))));
            }
            match &self.program {
                Some(p) => p.clone(),
                None => std::env::current_exe().map_err(io)?,
            }
        } else {
            PathBuf::new()
        };
        let spawn = Spawn {
            processes: self.processes,
            program,
            program_args: self.program_args.clone(),
            env: self.env.clone(),
            threads: self.threads_per_worker,
            memory_limit: self.memory_limit,
            host: self.host.clone(),
            zero_work: self.zero_work,
            quiet: self.quiet,
            tls_args,
            security: self.security.clone(),
            url: url.clone(),
        };
        let mut pool = Pool::default();
        let started: Result<(), Error> = (0..self.workers).try_for_each(|_| {
            spawn.start_one(&mut pool)?;
            Ok(())
        });
        let cluster = LocalCluster {
            scheduler,
            pool: Mutex::new(pool),
            spawn,
            dashboard,
            security: self.security,
            tls_dir: Mutex::new(tls_dir),
            events: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        };
        started?;
        if self.processes {
            cluster.wait_for_processes(self.workers, Duration::from_secs(30))?;
        }
        Ok(cluster)
    }
}

/// How [`LocalCluster`] starts one more worker.
struct Spawn {
    processes: bool,
    program: PathBuf,
    program_args: Vec<String>,
    env: Vec<(String, String)>,
    threads: usize,
    memory_limit: u64,
    host: String,
    zero_work: bool,
    quiet: bool,
    tls_args: Vec<std::ffi::OsString>,
    security: Security,
    url: String,
}

/// The workers a [`LocalCluster`] started and has not retired.
#[derive(Default)]
struct Pool {
    /// In-process workers.
    workers: Vec<Worker>,
    /// Worker processes, by worker name.
    children: Vec<(String, Child)>,
    /// The number in the next worker's name (`worker-N`); names are never reused.
    next: usize,
}

impl Spawn {
    /// Starts one worker named `worker-N`; returns its name.
    fn start_one(&self, pool: &mut Pool) -> Result<String, Error> {
        let io = |e: std::io::Error| scheduler_error(ClientError::Rejected(e.to_string()));
        let name = format!("worker-{}", pool.next);
        pool.next += 1;
        if !self.processes {
            let w = Worker::builder(self.url.clone())
                .security(self.security.clone())
                .nthreads(self.threads)
                .name(name.clone())
                .host(self.host.clone())
                .memory_limit(self.memory_limit)
                .zero_work(self.zero_work)
                .quiet(self.quiet)
                .start()
                .map_err(io)?;
            pool.workers.push(w);
            return Ok(name);
        }
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.program_args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .arg("worker")
            .arg(&self.url)
            .arg("--nthreads")
            .arg(self.threads.to_string())
            .arg("--name")
            .arg(&name)
            .arg("--host")
            .arg(&self.host)
            .arg("--memory-limit")
            .arg(self.memory_limit.to_string())
            .args(&self.tls_args)
            .stdin(Stdio::null());
        if self.zero_work {
            cmd.arg("--zero-work");
        }
        if let Some(t) = self.security.token() {
            cmd.env(TOKEN_ENV, t);
        }
        cmd.env(SPAWNED_ENV, std::process::id().to_string());
        if self.quiet {
            cmd.stderr(Stdio::null()).stdout(Stdio::null());
        }
        let child = cmd.spawn().map_err(|e| {
            scheduler_error(ClientError::Rejected(format!(
                "cannot start worker process {}: {e}",
                self.program.display()
            )))
        })?;
        pool.children.push((name.clone(), child));
        Ok(name)
    }

    fn hint(&self) -> String {
        if self.program_args.is_empty() {
            format!(
                "does {} call oxidask::distributed::run_if_worker() first thing in main?",
                self.program.display()
            )
        } else {
            format!(
                "does `{} {} worker ADDRESS` start a worker? (run it by hand to see its errors)",
                self.program.display(),
                self.program_args.join(" ")
            )
        }
    }
}

/// What every deployment offers, as Dask's `Cluster`: a scheduler address (and the
/// credentials to reach it), the workers asked for, scaling (up by starting workers, down by
/// retiring them gracefully), adaptive scaling, logs, and closing.
///
/// ```
/// use std::sync::Arc;
/// use oxidask_client::{AdaptiveOptions, Cluster, LocalCluster};
/// let cluster = Arc::new(LocalCluster::builder().workers(1).dashboard_address(None).start().unwrap());
/// cluster.scale(2).unwrap();
/// assert_eq!(cluster.plan().len(), 2);
/// let adaptive = cluster.clone().adapt(AdaptiveOptions { minimum: 1, maximum: 2, ..Default::default() }).unwrap();
/// adaptive.stop();
/// Cluster::close(&*cluster);
/// ```
pub trait Cluster: Send + Sync {
    /// The scheduler's address (`tcp://host:port`).
    fn scheduler_address(&self) -> String;
    /// The dashboard's status page, if one is served.
    fn dashboard_link(&self) -> Option<String>;
    /// Credentials for clients of this cluster.
    fn security(&self) -> Security {
        Security::default()
    }
    /// Names of the workers asked for: connected or still starting.
    fn plan(&self) -> Vec<String>;
    /// Asks for `n` workers: starts more, or retires the surplus gracefully (the scheduler
    /// picks idle workers holding the least data only they hold; their results move first).
    fn scale(&self, n: usize) -> Result<(), Error>;
    /// Retires these workers (names) gracefully and stops them.
    fn scale_down(&self, names: &[String]) -> Result<(), Error>;
    /// The cluster's own event log (workers started, retired, stopped), oldest first.
    fn logs(&self) -> Vec<String>;
    /// Stops the workers and the scheduler.
    fn close(&self);
    /// A client of this cluster, made the default for `compute()`.
    fn client(&self) -> Result<Client, Error> {
        Client::builder()
            .address(self.scheduler_address())
            .security(self.security())
            .connect()
    }
    /// A client for the cluster's own use (not made the default).
    fn client_for_adapt(&self) -> Result<Client, Error> {
        Client::builder()
            .address(self.scheduler_address())
            .security(self.security())
            .set_as_default(false)
            .connect()
    }
    /// Starts adaptive scaling (see [`Adaptive`]); stop it with [`Adaptive::stop`].
    fn adapt(self: Arc<Self>, options: AdaptiveOptions) -> Result<Adaptive, Error>
    where
        Self: Sized + 'static,
    {
        Adaptive::start(self, options)
    }
}

/// A scheduler and workers on this machine.
///
/// ```
/// use oxidask_client::LocalCluster;
/// let cluster = LocalCluster::builder().workers(2).threads_per_worker(1).start().unwrap();
/// let client = cluster.client().unwrap();
/// assert_eq!(client.summary().unwrap().workers.len(), 2);
/// ```
pub struct LocalCluster {
    scheduler: Scheduler,
    pool: Mutex<Pool>,
    spawn: Spawn,
    dashboard: Option<oxidask_dashboard::Dashboard>,
    security: Security,
    tls_dir: Mutex<Option<PathBuf>>,
    events: Mutex<Vec<String>>,
    closed: AtomicBool,
}

/// The in-process workers of a [`LocalCluster`] (a lock on its pool; drop it soon).
pub struct WorkersGuard<'a>(MutexGuard<'a, Pool>);

impl std::ops::Deref for WorkersGuard<'_> {
    type Target = [Worker];
    fn deref(&self) -> &[Worker] {
        &self.0.workers
    }
}

impl LocalCluster {
    /// A builder with the defaults.
    pub fn builder() -> LocalClusterBuilder {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let workers = if cores >= 2 { 2 } else { 1 };
        LocalClusterBuilder {
            workers,
            threads_per_worker: (cores / workers).max(1),
            memory_limit: 0,
            processes: false,
            program: None,
            program_args: Vec::new(),
            env: Vec::new(),
            host: "127.0.0.1".into(),
            port: 0,
            config: None,
            zero_work: false,
            quiet: true,
            dashboard: Some("127.0.0.1:8787".into()),
            security: Security::default(),
        }
    }

    /// The dashboard's status page, if it serves one.
    pub fn dashboard_link(&self) -> Option<&str> {
        self.dashboard.as_ref().map(|d| d.link())
    }

    /// The scheduler's address (`tcp://127.0.0.1:PORT`, `tls://…` with TLS).
    pub fn address(&self) -> String {
        self.scheduler.url()
    }

    /// A client of this cluster, made the default for `compute()`.
    pub fn client(&self) -> Result<Client, Error> {
        Cluster::client(self)
    }

    /// The cluster's TLS credentials and token, for clients of it.
    pub fn security(&self) -> &Security {
        &self.security
    }

    /// The in-process workers (empty with worker processes).
    pub fn workers(&self) -> WorkersGuard<'_> {
        WorkersGuard(self.lock_pool())
    }

    /// Process ids of the worker processes (empty with in-process workers).
    pub fn worker_pids(&self) -> Vec<u32> {
        self.lock_pool()
            .children
            .iter()
            .map(|(_, c)| c.id())
            .collect()
    }

    /// Stops the workers and the scheduler.
    pub fn close(self) {
        self.stop();
    }

    fn lock_pool(&self) -> MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn event(&self, line: String) {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(line);
    }

    /// Waits until `n` workers are connected, failing at once when a worker process exits.
    fn wait_for_processes(&self, n: usize, timeout: Duration) -> Result<(), Error> {
        let probe = Cluster::client_for_adapt(self)?;
        let deadline = std::time::Instant::now() + timeout;
        let joined = loop {
            match probe.wait_for_workers(n, Duration::from_millis(200)) {
                Ok(()) => break Ok(()),
                Err(e) => {
                    let exited = self
                        .lock_pool()
                        .children
                        .iter_mut()
                        .find_map(|(_, c)| c.try_wait().ok().flatten());
                    if let Some(status) = exited {
                        break Err(format!("a worker process exited ({status})"));
                    }
                    if std::time::Instant::now() >= deadline {
                        break Err(format!(
                            "they did not join within {} s ({e})",
                            timeout.as_secs()
                        ));
                    }
                }
            }
        };
        joined.map_err(|e| {
            for (_, c) in &mut self.lock_pool().children {
                let _ = c.kill();
            }
            scheduler_error(ClientError::Rejected(format!(
                "worker processes did not start: {e}; {}",
                self.spawn.hint()
            )))
        })
    }

    /// Forgets worker processes that have exited (retired, or crashed).
    fn reap(&self) {
        let mut pool = self.lock_pool();
        let mut gone = Vec::new();
        pool.children.retain_mut(|(name, c)| match c.try_wait() {
            Ok(Some(status)) => {
                gone.push(format!("{name} exited ({status})"));
                false
            }
            _ => true,
        });
        drop(pool);
        for g in gone {
            self.event(g);
        }
    }

    fn stop(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(d) = &self.dashboard {
            d.shutdown();
        }
        let (workers, children) = {
            let mut pool = self.lock_pool();
            (
                std::mem::take(&mut pool.workers),
                std::mem::take(&mut pool.children),
            )
        };
        for w in workers {
            w.shutdown();
        }
        self.scheduler.shutdown();
        for (_, mut c) in children {
            stop_child(&mut c, Duration::from_secs(5));
        }
        if let Some(d) = self
            .tls_dir
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Waits up to `grace` for `c` to exit, then kills it.
fn stop_child(c: &mut Child, grace: Duration) {
    let deadline = std::time::Instant::now() + grace;
    loop {
        match c.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            _ => {
                let _ = c.kill();
                let _ = c.wait();
                break;
            }
        }
    }
}

impl Cluster for LocalCluster {
    fn scheduler_address(&self) -> String {
        self.address()
    }

    fn dashboard_link(&self) -> Option<String> {
        self.dashboard.as_ref().map(|d| d.link().to_owned())
    }

    fn security(&self) -> Security {
        self.security.clone()
    }

    fn plan(&self) -> Vec<String> {
        self.reap();
        let pool = self.lock_pool();
        pool.workers
            .iter()
            .map(|w| w.name().to_owned())
            .chain(pool.children.iter().map(|(n, _)| n.clone()))
            .collect()
    }

    fn scale(&self, n: usize) -> Result<(), Error> {
        if self.closed.load(Ordering::Acquire) {
            return Err(scheduler_error(ClientError::Rejected(
                "the LocalCluster is closed".into(),
            )));
        }
        let have = self.plan().len();
        if n > have {
            for _ in have..n {
                let name = self.spawn.start_one(&mut self.lock_pool())?;
                self.event(format!("started {name}"));
            }
            return Ok(());
        }
        if n < have {
            let client = Cluster::client_for_adapt(self)?;
            let (retired, error) = client.retire_workers_detailed(Retire::Count(have - n))?;
            let names: Vec<String> = retired.into_iter().map(|w| w.name).collect();
            self.finish_retire(&names);
            if let Some(e) = error {
                return Err(scheduler_error(ClientError::Rejected(e)));
            }
        }
        Ok(())
    }

    fn scale_down(&self, names: &[String]) -> Result<(), Error> {
        if names.is_empty() {
            return Ok(());
        }
        let client = Cluster::client_for_adapt(self)?;
        let (retired, error) = client.retire_workers_detailed(Retire::Workers(names.to_vec()))?;
        let retired: Vec<String> = retired.into_iter().map(|w| w.name).collect();
        // Workers asked for but not connected yet cannot be retired: stop them.
        let connected: Vec<String> = client
            .summary()?
            .workers
            .into_iter()
            .map(|w| w.name)
            .collect();
        let mut done = retired;
        done.extend(
            names
                .iter()
                .filter(|n| !connected.contains(n) && !done.contains(n))
                .cloned()
                .collect::<Vec<_>>(),
        );
        self.finish_retire(&done);
        match error {
            Some(e) => Err(scheduler_error(ClientError::Rejected(e))),
            None => Ok(()),
        }
    }

    fn logs(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn close(&self) {
        self.stop();
    }
}

impl LocalCluster {
    /// After the scheduler retired `names`: stops their in-process workers and waits for
    /// their processes to exit (killing those still there after 10 s).
    fn finish_retire(&self, names: &[String]) {
        let (workers, children) = {
            let mut pool = self.lock_pool();
            let (w, keep): (Vec<Worker>, Vec<Worker>) = std::mem::take(&mut pool.workers)
                .into_iter()
                .partition(|w| names.iter().any(|n| n == w.name()));
            pool.workers = keep;
            let (c, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut pool.children)
                .into_iter()
                .partition(|(n, _)| names.contains(n));
            pool.children = keep;
            (w, c)
        };
        for w in workers {
            self.event(format!("retired {}", w.name()));
            w.shutdown();
        }
        for (name, mut c) in children {
            stop_child(&mut c, Duration::from_secs(10));
            self.event(format!("retired {name}"));
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.stop();
    }
}
