//! `LocalCluster`: a scheduler and workers on this machine, in this process or as worker
//! processes, for laptops, tests and benchmarks.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use oxidask_core::Error;
use oxidask_scheduler::server::Scheduler;
use oxidask_scheduler::Config;
use oxidask_worker::Worker;

use crate::client::{Client, Security};
use crate::error::{scheduler_error, ClientError};

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
        let mut workers = Vec::new();
        let mut children = Vec::new();
        let mut tls_dir = None;
        if self.processes {
            let tls_files = if self.security.is_tls() {
                let dir = std::env::temp_dir().join(format!(
                    "oxidask-tls-{}-{}",
                    std::process::id(),
                    scheduler.address().port()
                ));
                let files = self.security.write_files(&dir).map_err(io)?;
                tls_dir = Some(dir);
                files
            } else {
                None
            };
            if self.program.is_none() && std::env::var_os(SPAWNED_ENV).is_some() {
                // This process is a worker this program's LocalCluster started, and it got
                // here instead of becoming a worker: starting workers again would recurse.
                return Err(scheduler_error(ClientError::Rejected(format!(
                    "this process was started as a worker of a LocalCluster, but its main did not call oxidask::distributed::run_if_worker() before starting a LocalCluster; call it first thing in main (it returns at once unless the process is a worker) — {SPAWNED_ENV} is set"
                ))));
            }
            let program = match &self.program {
                Some(p) => p.clone(),
                None => std::env::current_exe().map_err(io)?,
            };
            for i in 0..self.workers {
                let mut cmd = Command::new(&program);
                cmd.args(&self.program_args)
                    .envs(self.env.iter().map(|(k, v)| (k, v)))
                    .arg("worker")
                    .arg(&url)
                    .arg("--nthreads")
                    .arg(self.threads_per_worker.to_string())
                    .arg("--name")
                    .arg(format!("worker-{i}"))
                    .arg("--host")
                    .arg(&self.host)
                    .arg("--memory-limit")
                    .arg(self.memory_limit.to_string())
                    .stdin(Stdio::null());
                if self.zero_work {
                    cmd.arg("--zero-work");
                }
                if let Some(f) = &tls_files {
                    cmd.arg("--tls-ca-file").arg(&f.ca);
                    if let (Some(c), Some(k)) = (&f.cert, &f.key) {
                        cmd.arg("--tls-cert").arg(c).arg("--tls-key").arg(k);
                    }
                }
                if let Some(t) = self.security.token() {
                    cmd.env(TOKEN_ENV, t);
                }
                cmd.env(SPAWNED_ENV, std::process::id().to_string());
                if self.quiet {
                    cmd.stderr(Stdio::null()).stdout(Stdio::null());
                }
                children.push(cmd.spawn().map_err(|e| {
                    scheduler_error(ClientError::Rejected(format!(
                        "cannot start worker process {}: {e}",
                        program.display()
                    )))
                })?);
            }
            let probe = Client::builder()
                .security(self.security.clone())
                .address(url.clone())
                .set_as_default(false)
                .connect()?;
            // Wait for the workers, noticing at once a worker process that exited instead.
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            let joined = loop {
                match probe.wait_for_workers(self.workers, Duration::from_millis(200)) {
                    Ok(()) => break Ok(()),
                    Err(e) => {
                        let exited = children
                            .iter_mut()
                            .find_map(|c| c.try_wait().ok().flatten());
                        if let Some(status) = exited {
                            break Err(format!("a worker process exited ({status})"));
                        }
                        if std::time::Instant::now() >= deadline {
                            break Err(format!("they did not join within 30 s ({e})"));
                        }
                    }
                }
            };
            if let Err(e) = joined {
                for c in &mut children {
                    let _ = c.kill();
                }
                let hint = if self.program_args.is_empty() {
                    format!(
                        "does {} call oxidask::distributed::run_if_worker() first thing in main?",
                        program.display()
                    )
                } else {
                    format!(
                        "does `{} {} worker ADDRESS` start a worker? (run it by hand to see its errors)",
                        program.display(),
                        self.program_args.join(" ")
                    )
                };
                return Err(scheduler_error(ClientError::Rejected(format!(
                    "worker processes did not start: {e}; {hint}"
                ))));
            }
        } else {
            for i in 0..self.workers {
                let w = Worker::builder(url.clone())
                    .security(self.security.clone())
                    .nthreads(self.threads_per_worker)
                    .name(format!("worker-{i}"))
                    .host(self.host.clone())
                    .memory_limit(self.memory_limit)
                    .zero_work(self.zero_work)
                    .quiet(self.quiet)
                    .start()
                    .map_err(io)?;
                workers.push(w);
            }
        }
        Ok(LocalCluster {
            scheduler,
            workers,
            children,
            dashboard,
            security: self.security,
            tls_dir,
        })
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
    workers: Vec<Worker>,
    children: Vec<Child>,
    dashboard: Option<oxidask_dashboard::Dashboard>,
    security: Security,
    tls_dir: Option<PathBuf>,
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
        Client::builder()
            .address(self.address())
            .security(self.security.clone())
            .connect()
    }

    /// The cluster's TLS credentials and token, for clients of it.
    pub fn security(&self) -> &Security {
        &self.security
    }

    /// The in-process workers (empty with worker processes).
    pub fn workers(&self) -> &[Worker] {
        &self.workers
    }

    /// Process ids of the worker processes (empty with in-process workers).
    pub fn worker_pids(&self) -> Vec<u32> {
        self.children.iter().map(|c| c.id()).collect()
    }

    /// Stops the workers and the scheduler.
    pub fn close(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(d) = self.dashboard.take() {
            d.shutdown();
        }
        for w in self.workers.drain(..) {
            w.shutdown();
        }
        self.scheduler.shutdown();
        for mut c in self.children.drain(..) {
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
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
        if let Some(d) = self.tls_dir.take() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.stop();
    }
}
