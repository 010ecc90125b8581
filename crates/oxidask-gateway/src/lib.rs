//! `oxidask gateway`: a multi-tenant service that starts, scales and stops clusters for
//! authenticated users over a REST API — Dask Gateway's role (the seed's DestinE deployment)
//! for oxidask.
//!
//! Users authenticate with a bearer token or a password ([`auth`]); each gets their own
//! clusters, invisible to others, within per-user limits ([`registry::Limits`]). A cluster is
//! a scheduler and its workers started as processes on the gateway's host ([`backend`]), its
//! scheduler requiring a token of its own that only the cluster's owner is told. Clusters
//! scale on request or adaptively: the gateway asks each adaptive cluster's scheduler how many
//! workers its queued and running work needs and retires the idle ones it names after a few
//! consistent answers (their results move to the workers that stay).
//!
//! ```no_run
//! use oxidask_gateway::{Gateway, Auth};
//!
//! // A gateway started with `oxidask gateway --tokens-file tokens.txt`.
//! let gw = Gateway::new("http://127.0.0.1:8000", Auth::Bearer("alice-token-0123456789".into()));
//! let cluster = gw.new_cluster(&serde_json::json!({"worker_threads": 1}))?;
//! cluster.scale(2)?;
//! let client = cluster.client()?;          // an oxidask Client of that cluster
//! # drop(client);
//! cluster.shutdown()?;
//! # Ok::<(), oxidask_gateway::GatewayError>(())
//! ```

pub mod auth;
pub mod backend;
mod client;
pub mod registry;
pub mod server;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

pub use auth::Authenticator;
pub use client::{Auth, Gateway, GatewayCluster};
pub use registry::Limits;
pub use server::{serve, AdaptSettings, RunningGateway};

/// What went wrong, with the HTTP status the API answers it with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// 400: the request is malformed or asks for something that does not exist.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// 401: missing or wrong credentials.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// 403: over a limit.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// 404: no such cluster (of this user).
    #[error("not found: {0}")]
    NotFound(String),
    /// 409: the cluster is not running.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The gateway or the connection to it failed.
    #[error("gateway error: {0}")]
    Backend(String),
}

/// Options of `oxidask gateway`.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "gateway",
    about = "Run a multi-tenant gateway that manages clusters for its users"
)]
pub struct GatewayArgs {
    /// Where the REST API listens (`host:port`).
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub address: String,
    /// A file of `USER TOKEN` lines: bearer tokens and the users they are.
    #[arg(long, value_name = "PATH")]
    pub tokens_file: Option<PathBuf>,
    /// A file of `USER:sha256:HEX` lines: users and the SHA-256 of their passwords (basic
    /// authentication).
    #[arg(long, value_name = "PATH")]
    pub password_file: Option<PathBuf>,
    /// Accept every request as the user `anonymous` (only where nobody else can reach the
    /// gateway).
    #[arg(long)]
    pub no_auth: bool,
    /// The interface clusters' schedulers and workers listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub cluster_host: String,
    /// The command that runs `scheduler` and `worker` (default: this program, or
    /// `$OXIDASK_SELF_COMMAND`, which `python -m oxidask` sets so workers run Python tasks).
    #[arg(long, value_name = "COMMAND")]
    pub cluster_command: Option<String>,
    /// The command that runs workers, if not `--cluster-command` (a program with its own
    /// registered tasks, say).
    #[arg(long, value_name = "COMMAND")]
    pub worker_command: Option<String>,
    /// Where clusters keep their token files and spilled data (default: a directory under
    /// the system's temporary directory).
    #[arg(long, value_name = "PATH")]
    pub work_dir: Option<PathBuf>,
    /// Clusters one user may run at once (0: no limit).
    #[arg(long, default_value_t = 4)]
    pub max_clusters_per_user: usize,
    /// Workers per cluster (0: no limit).
    #[arg(long, default_value_t = 16)]
    pub max_workers_per_cluster: usize,
    /// Workers over all of one user's clusters (0: no limit).
    #[arg(long, default_value_t = 32)]
    pub max_workers_per_user: usize,
    /// Threads per worker (0: no limit).
    #[arg(long, default_value_t = 8)]
    pub max_worker_threads: usize,
    /// Memory limit per worker (`16GiB`; 0: no limit).
    #[arg(long, default_value = "16GiB")]
    pub max_worker_memory: String,
    /// Where workers run: `local` (processes on this host) or `slurm` (a job per worker,
    /// submitted with `sbatch`; `--work-dir` must be on a file system the nodes share).
    #[arg(long, default_value = "local", value_parser = ["local", "slurm"])]
    pub worker_backend: String,
    /// SLURM partition of worker jobs.
    #[arg(long)]
    pub slurm_partition: Option<String>,
    /// SLURM account of worker jobs.
    #[arg(long)]
    pub slurm_account: Option<String>,
    /// Wall-clock limit of worker jobs (`HH:MM:SS`).
    #[arg(long)]
    pub slurm_walltime: Option<String>,
    /// Another `#SBATCH` line for worker jobs (repeatable): `--slurm-directive=--qos=low`.
    #[arg(long = "slurm-directive", allow_hyphen_values = true)]
    pub slurm_directives: Vec<String>,
    /// Seconds between adaptive-scaling decisions.
    #[arg(long, default_value_t = 1.0)]
    pub adapt_interval: f64,
    /// Consecutive scale-down recommendations before workers are retired.
    #[arg(long, default_value_t = 3)]
    pub adapt_wait_count: u32,
}

impl GatewayArgs {
    fn build(&self) -> Result<(std::sync::Arc<server::Gateway>, String), String> {
        let mut auth = if self.no_auth {
            Authenticator::anonymous()
        } else {
            Authenticator::new()
        };
        if let Some(p) = &self.tokens_file {
            auth = auth.with_token_file(p)?;
        }
        if let Some(p) = &self.password_file {
            auth = auth.with_password_file(p)?;
        }
        if !auth.is_configured() {
            return Err(
                "no users: pass --tokens-file and/or --password-file (or --no-auth for a gateway \
                 nobody else can reach)"
                    .into(),
            );
        }
        let max_worker_memory = oxidask_config::units::parse_size(&self.max_worker_memory)
            .map_err(|e| format!("--max-worker-memory: {e}"))?;
        let limits = Limits {
            max_clusters_per_user: self.max_clusters_per_user,
            max_workers_per_cluster: self.max_workers_per_cluster,
            max_workers_per_user: self.max_workers_per_user,
            max_worker_threads: self.max_worker_threads,
            max_worker_memory,
        };
        let command = match (&self.cluster_command, std::env::var("OXIDASK_SELF_COMMAND")) {
            (Some(c), _) => c.split_whitespace().map(str::to_owned).collect(),
            (None, Ok(c)) if !c.trim().is_empty() => {
                c.split_whitespace().map(str::to_owned).collect()
            }
            _ => vec![std::env::current_exe()
                .map_err(|e| format!("cannot find this program: {e}"))?
                .to_string_lossy()
                .into_owned()],
        };
        if command.is_empty() {
            return Err("--cluster-command is empty".into());
        }
        let worker_command = match &self.worker_command {
            Some(c) => c.split_whitespace().map(str::to_owned).collect(),
            None => command.clone(),
        };
        if worker_command.is_empty() {
            return Err("--worker-command is empty".into());
        }
        let work_dir = self.work_dir.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!("oxidask-gateway-{}", std::process::id()))
        });
        let interval = Duration::try_from_secs_f64(self.adapt_interval)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or("--adapt-interval must be a positive number of seconds")?;
        let workers = match self.worker_backend.as_str() {
            "slurm" => backend::WorkerBackend::Slurm(backend::SlurmOptions {
                partition: self.slurm_partition.clone(),
                account: self.slurm_account.clone(),
                walltime: self.slurm_walltime.clone(),
                directives: self.slurm_directives.clone(),
            }),
            _ => backend::WorkerBackend::Local,
        };
        let launcher = backend::Launcher {
            command,
            worker_command,
            host: self.cluster_host.clone(),
            work_dir,
            workers,
        };
        let adapt = AdaptSettings {
            interval,
            wait_count: self.adapt_wait_count.max(1),
            ..AdaptSettings::default()
        };
        Ok((
            server::Gateway::new(auth, limits, launcher, adapt),
            self.address.clone(),
        ))
    }
}

/// Runs `oxidask gateway` with `args` (after the `gateway` word) until the process is stopped.
pub fn gateway_main(args: Vec<String>) -> ExitCode {
    let parsed =
        match GatewayArgs::try_parse_from(std::iter::once("gateway".to_owned()).chain(args)) {
            Ok(a) => a,
            Err(e) => {
                let _ = e.print();
                return if e.use_stderr() {
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                };
            }
        };
    let (gw, address) = match parsed.build() {
        Ok(x) => x,
        Err(e) => {
            eprintln!("oxidask-gateway: {e}");
            return ExitCode::from(2);
        }
    };
    let running = match serve(gw, &address) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("oxidask-gateway: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("oxidask-gateway: listening at {}", running.url);
    // SIGTERM or Ctrl-C stops every cluster before the gateway exits.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("oxidask-gateway: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let Ok(mut term) = signal(SignalKind::terminate()) else {
                let _ = tokio::signal::ctrl_c().await;
                return;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    });
    eprintln!("oxidask-gateway: stopping every cluster");
    running.stop();
    ExitCode::SUCCESS
}
