//! Clusters as processes on the gateway's machine: a scheduler (`oxidask scheduler`) and its
//! workers (`oxidask worker`, each under its nanny), started with the command the gateway was
//! given (the Rust binary, or `python -m oxidask` for clusters whose workers run Python). Each
//! cluster's scheduler requires its own token, so one user cannot use another's cluster.
//! Workers are removed by retiring them through the scheduler (their results move to the
//! workers that stay), never by killing them while they hold data.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use oxidask_client::{Client, Retire, Security};

use crate::registry::ClusterOptions;

/// Lines of a cluster's logs kept (scheduler and workers together).
const LOG_LINES: usize = 2_000;

/// How clusters' processes are started.
#[derive(Debug, Clone)]
pub struct Launcher {
    /// The program and its leading arguments that run schedulers (`["/usr/bin/oxidask"]`,
    /// or `["python3", "-m", "oxidask"]`); `scheduler` follows.
    pub command: Vec<String>,
    /// The same for workers (`worker ADDRESS ...` follows): workers that run Python tasks
    /// are `python -m oxidask`, a Rust program's own tasks need its own binary.
    pub worker_command: Vec<String>,
    /// The interface schedulers and workers listen on.
    pub host: String,
    /// Where clusters keep their token files and spill directories (for SLURM workers: a
    /// directory the compute nodes see at the same path).
    pub work_dir: PathBuf,
    /// Where workers run.
    pub workers: WorkerBackend,
}

/// Where a cluster's workers run.
#[derive(Debug, Clone, Default)]
pub enum WorkerBackend {
    /// Processes on the gateway's host.
    #[default]
    Local,
    /// One SLURM job per worker (`sbatch`), cancelled with `scancel`.
    Slurm(SlurmOptions),
}

/// How worker jobs are submitted to SLURM (as dask-jobqueue's `SLURMCluster` options).
#[derive(Debug, Clone, Default)]
pub struct SlurmOptions {
    /// `#SBATCH --partition`.
    pub partition: Option<String>,
    /// `#SBATCH --account`.
    pub account: Option<String>,
    /// `#SBATCH --time` (`HH:MM:SS`).
    pub walltime: Option<String>,
    /// More `#SBATCH` lines (`--qos=low`, `--constraint=cpu`).
    pub directives: Vec<String>,
}

/// A worker: a local process or a SLURM job.
#[derive(Debug)]
enum Handle {
    Process(Child),
    Job(String),
}

/// A worker of a cluster.
#[derive(Debug)]
struct WorkerProcess {
    name: String,
    handle: Handle,
    exited: bool,
}

impl WorkerProcess {
    fn kill(&mut self) {
        match &mut self.handle {
            Handle::Process(c) => {
                let _ = c.kill();
                let _ = c.wait();
            }
            Handle::Job(id) => {
                let _ = Command::new("scancel").arg(id.as_str()).status();
            }
        }
        self.exited = true;
    }
}

/// Marks the workers whose process exited or whose job ended.
fn poll_exits(workers: &mut [WorkerProcess]) {
    let mut jobs = Vec::new();
    for w in workers.iter_mut().filter(|w| !w.exited) {
        match &mut w.handle {
            Handle::Process(c) => w.exited = matches!(c.try_wait(), Ok(Some(_))),
            Handle::Job(id) => jobs.push(id.clone()),
        }
    }
    if jobs.is_empty() {
        return;
    }
    // One squeue for every job: those it lists as queued or running are alive.
    let out = Command::new("squeue")
        .args(["-h", "-o", "%i %T", "-j", &jobs.join(",")])
        .stderr(Stdio::null())
        .output();
    let Ok(out) = out else { return };
    if !out.status.success() && !out.stdout.is_empty() {
        return;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let alive: Vec<&str> = text
        .lines()
        .filter_map(|l| {
            let (id, state) = l.trim().split_once(' ')?;
            matches!(
                state,
                "PENDING" | "RUNNING" | "CONFIGURING" | "SUSPENDED" | "REQUEUED" | "RESIZING"
            )
            .then_some(id)
        })
        .collect();
    for w in workers.iter_mut() {
        if let Handle::Job(id) = &w.handle {
            if !w.exited && !alive.contains(&id.as_str()) {
                w.exited = true;
            }
        }
    }
}

/// The processes of one running cluster.
#[derive(Debug)]
pub struct ClusterProcesses {
    name: String,
    scheduler: Child,
    workers: Vec<WorkerProcess>,
    address: String,
    dashboard: Option<String>,
    token: String,
    token_file: PathBuf,
    dir: PathBuf,
    options: ClusterOptions,
    next_worker: usize,
    logs: Arc<Mutex<VecDeque<String>>>,
    launcher: Launcher,
}

fn keep_lines(
    source: impl Read + Send + 'static,
    prefix: String,
    logs: Arc<Mutex<VecDeque<String>>>,
    tell: Option<mpsc::Sender<String>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(source).lines() {
            let Ok(line) = line else { break };
            if let Some(t) = &tell {
                let _ = t.send(line.clone());
            }
            let mut l = logs.lock().unwrap_or_else(|e| e.into_inner());
            if l.len() == LOG_LINES {
                l.pop_front();
            }
            l.push_back(format!("{prefix}{line}"));
        }
    });
}

impl Launcher {
    fn command(&self, role: &str) -> Command {
        let base = if role == "worker" {
            &self.worker_command
        } else {
            &self.command
        };
        let mut c = Command::new(&base[0]);
        c.args(&base[1..]).arg(role);
        c
    }

    /// Starts the scheduler of cluster `name`, requiring `token`; returns once it listens
    /// (its address and dashboard known) or says why it could not start.
    pub fn start(
        &self,
        name: &str,
        options: &ClusterOptions,
        token: &str,
    ) -> Result<ClusterProcesses, String> {
        let dir = self.work_dir.join(name);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let token_file = dir.join("token");
        write_private(&token_file, token)?;
        let mut cmd = self.command("scheduler");
        cmd.args(["--host", &self.host, "--port", "0", "--dashboard-address"])
            .arg(format!("{}:0", self.host))
            .arg("--auth-token-file")
            .arg(&token_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut scheduler = cmd
            .spawn()
            .map_err(|e| format!("cannot run {:?}: {e}", self.command))?;
        let logs = Arc::new(Mutex::new(VecDeque::new()));
        let (tx, rx) = mpsc::channel();
        let stderr = scheduler.stderr.take().expect("piped");
        keep_lines(stderr, "scheduler: ".into(), logs.clone(), Some(tx));
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut address = None;
        let mut dashboard = None;
        while address.is_none() || (dashboard.is_none() && Instant::now() < deadline) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok(line) => {
                    if let Some(a) = line.split("listening at ").nth(1) {
                        address = Some(a.trim().to_owned());
                    } else if let Some(d) = line.split("dashboard at ").nth(1) {
                        dashboard = Some(d.trim().to_owned());
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(status)) = scheduler.try_wait() {
                        return Err(format!("the scheduler exited at start ({status})"));
                    }
                    if Instant::now() >= deadline {
                        break;
                    }
                    // The dashboard line comes right after the address, if at all.
                    if address.is_some() {
                        break;
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        let Some(address) = address else {
            let _ = scheduler.kill();
            let _ = scheduler.wait();
            let tail: Vec<String> = logs
                .lock()
                .map(|l| l.iter().rev().take(5).cloned().collect())
                .unwrap_or_default();
            return Err(format!(
                "the scheduler did not start within 30 s: {}",
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ));
        };
        Ok(ClusterProcesses {
            name: name.to_owned(),
            scheduler,
            workers: Vec::new(),
            address,
            dashboard,
            token: token.to_owned(),
            token_file,
            dir,
            options: options.clone(),
            next_worker: 0,
            logs,
            launcher: self.clone(),
        })
    }
}

fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    o.mode(0o600);
    let mut f = o
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    f.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

impl ClusterProcesses {
    /// The scheduler's address.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The scheduler's dashboard, if it serves one.
    pub fn dashboard(&self) -> Option<&str> {
        self.dashboard.as_deref()
    }

    /// Workers alive (processes not exited, jobs queued or running).
    pub fn workers(&mut self) -> usize {
        poll_exits(&mut self.workers);
        self.workers.retain(|w| !w.exited);
        self.workers.len()
    }

    /// Whether the scheduler process still runs.
    pub fn scheduler_alive(&mut self) -> bool {
        matches!(self.scheduler.try_wait(), Ok(None))
    }

    /// A client of this cluster's scheduler (with its token).
    pub fn client(&self) -> Result<Client, String> {
        Client::builder()
            .address(self.address.clone())
            .security(Security::plain().with_token(self.token.clone()))
            .name(format!("gateway:{}", self.name))
            .control(true)
            .timeout(Duration::from_secs(10))
            .set_as_default(false)
            .connect()
            .map_err(|e| format!("cannot reach the scheduler of {}: {e}", self.name))
    }

    /// The names of the worker processes alive, oldest first.
    pub fn worker_names(&mut self) -> Vec<String> {
        self.workers();
        self.workers.iter().map(|w| w.name.clone()).collect()
    }

    /// Starts workers, or retires the newest, until `n` run.
    pub fn set_workers(&mut self, n: usize, client: Option<&Client>) -> Result<(), String> {
        let have = self.workers();
        if n > have {
            for _ in have..n {
                self.spawn_worker()?;
            }
            return Ok(());
        }
        let newest: Vec<String> = self
            .workers
            .iter()
            .rev()
            .take(have - n)
            .map(|w| w.name.clone())
            .collect();
        self.retire(&newest, client)
    }

    /// Retires the workers named `names` through the scheduler (their results move to the
    /// others) and waits for their processes to exit. Without a scheduler connection, or if
    /// the scheduler cannot retire them (no other worker can take their data), they keep
    /// running and the error says why.
    pub fn retire(&mut self, names: &[String], client: Option<&Client>) -> Result<(), String> {
        if names.is_empty() {
            return Ok(());
        }
        let client = client.ok_or("no connection to the scheduler to retire workers through")?;
        client
            .retire_workers(Retire::Workers(names.to_vec()))
            .map_err(|e| format!("retiring {names:?}: {e}"))?;
        // Retired workers exit by themselves (code 0; their nannies, or their jobs, with them).
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            poll_exits(&mut self.workers);
            let gone = self
                .workers
                .iter()
                .filter(|w| names.contains(&w.name))
                .all(|w| w.exited);
            if gone || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        for w in self.workers.iter_mut().filter(|w| names.contains(&w.name)) {
            if !w.exited {
                // Retired (its data moved) but still running: stop it.
                w.kill();
            }
        }
        self.workers();
        Ok(())
    }

    fn worker_args(&self, name: &str) -> Vec<String> {
        let mut a = vec![
            "worker".to_owned(),
            self.address.clone(),
            "--name".into(),
            name.to_owned(),
            "--host".into(),
            self.launcher.host.clone(),
            "--no-dashboard".into(),
            "--nthreads".into(),
            self.options.worker_threads.to_string(),
            "--memory-limit".into(),
            self.options.worker_memory.to_string(),
            "--local-directory".into(),
        ];
        a.push(self.dir.to_string_lossy().into_owned());
        a.push("--auth-token-file".into());
        a.push(self.token_file.to_string_lossy().into_owned());
        a
    }

    fn spawn_worker(&mut self) -> Result<(), String> {
        self.next_worker += 1;
        let name = format!("{}-w{}", self.name, self.next_worker);
        let handle = match &self.launcher.workers {
            WorkerBackend::Local => {
                let mut cmd = Command::new(&self.launcher.worker_command[0]);
                cmd.args(&self.launcher.worker_command[1..])
                    .args(self.worker_args(&name))
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped());
                let mut child = cmd
                    .spawn()
                    .map_err(|e| format!("cannot run {:?}: {e}", self.launcher.worker_command))?;
                if let Some(err) = child.stderr.take() {
                    keep_lines(err, format!("{name}: "), self.logs.clone(), None);
                }
                Handle::Process(child)
            }
            WorkerBackend::Slurm(o) => Handle::Job(self.submit_job(&name, o)?),
        };
        self.workers.push(WorkerProcess {
            name,
            handle,
            exited: false,
        });
        Ok(())
    }

    /// The job script of worker `name` (shown by [`ClusterProcesses::job_script`]).
    fn job_script_for(&self, name: &str, o: &SlurmOptions) -> String {
        let mut s = String::from("#!/usr/bin/env bash\n");
        let memory_mb = self.options.worker_memory.div_ceil(1 << 20);
        s += &format!("#SBATCH --job-name={name}\n");
        s += "#SBATCH --ntasks=1\n";
        s += &format!("#SBATCH --cpus-per-task={}\n", self.options.worker_threads);
        if memory_mb > 0 {
            s += &format!("#SBATCH --mem={memory_mb}M\n");
        }
        if let Some(p) = &o.partition {
            s += &format!("#SBATCH --partition={p}\n");
        }
        if let Some(a) = &o.account {
            s += &format!("#SBATCH --account={a}\n");
        }
        if let Some(t) = &o.walltime {
            s += &format!("#SBATCH --time={t}\n");
        }
        s += &format!(
            "#SBATCH --output={}\n",
            self.dir.join(format!("{name}.log")).display()
        );
        for d in &o.directives {
            s += &format!("#SBATCH {d}\n");
        }
        let words: Vec<String> = self
            .launcher
            .worker_command
            .iter()
            .cloned()
            .chain(self.worker_args(name))
            .map(|w| shell_quote(&w))
            .collect();
        s += &format!("exec {}\n", words.join(" "));
        s
    }

    fn submit_job(&self, name: &str, o: &SlurmOptions) -> Result<String, String> {
        let script = self.dir.join(format!("{name}.sh"));
        std::fs::write(&script, self.job_script_for(name, o))
            .map_err(|e| format!("cannot write {}: {e}", script.display()))?;
        let out = Command::new("sbatch")
            .arg("--parsable")
            .arg(&script)
            .output()
            .map_err(|e| format!("cannot run sbatch (is SLURM installed?): {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "sbatch refused the job of {name}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let id = text.trim().split(';').next().unwrap_or("").to_owned();
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit() || c == '_') {
            return Err(format!("sbatch answered {text:?}, not a job id"));
        }
        Ok(id)
    }

    /// The job script workers are submitted with (SLURM backend), as dask-jobqueue's
    /// `job_script()`.
    pub fn job_script(&self) -> Option<String> {
        match &self.launcher.workers {
            WorkerBackend::Slurm(o) => Some(self.job_script_for(&format!("{}-wN", self.name), o)),
            WorkerBackend::Local => None,
        }
    }

    /// SLURM job ids of the workers (empty for local workers).
    pub fn job_ids(&self) -> Vec<String> {
        self.workers
            .iter()
            .filter_map(|w| match &w.handle {
                Handle::Job(id) if !w.exited => Some(id.clone()),
                _ => None,
            })
            .collect()
    }

    /// The newest log lines of the scheduler and workers.
    pub fn logs(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .logs
            .lock()
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default();
        // SLURM workers write to their job's output file.
        for w in &self.workers {
            if let Handle::Job(_) = w.handle {
                let path = self.dir.join(format!("{}.log", w.name));
                if let Ok(text) = std::fs::read_to_string(path) {
                    let lines: Vec<&str> = text.lines().collect();
                    let tail = &lines[lines.len().saturating_sub(200)..];
                    out.extend(tail.iter().map(|l| format!("{}: {l}", w.name)));
                }
            }
        }
        out
    }

    /// Stops every process (workers first) and removes the cluster's directory.
    pub fn stop(&mut self) {
        for w in &mut self.workers {
            w.kill();
        }
        self.workers.clear();
        let _ = self.scheduler.kill();
        let _ = self.scheduler.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `w` quoted for a POSIX shell.
fn shell_quote(w: &str) -> String {
    if !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+".contains(c))
    {
        return w.to_owned();
    }
    format!("'{}'", w.replace('\'', "'\\''"))
}
