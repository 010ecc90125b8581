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
    /// Where clusters keep their token files and spill directories.
    pub work_dir: PathBuf,
}

/// A worker process of a cluster.
#[derive(Debug)]
struct WorkerProcess {
    name: String,
    child: Child,
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

    /// Worker processes alive (started and not yet exited).
    pub fn workers(&mut self) -> usize {
        self.workers
            .retain_mut(|w| !matches!(w.child.try_wait(), Ok(Some(_))));
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
        // Retired workers exit by themselves (code 0; their nannies with them).
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let gone = self
                .workers
                .iter_mut()
                .filter(|w| names.contains(&w.name))
                .all(|w| matches!(w.child.try_wait(), Ok(Some(_))));
            if gone || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for w in self.workers.iter_mut().filter(|w| names.contains(&w.name)) {
            if matches!(w.child.try_wait(), Ok(None)) {
                // Retired (its data moved) but still running: stop it.
                let _ = w.child.kill();
                let _ = w.child.wait();
            }
        }
        self.workers();
        Ok(())
    }

    fn spawn_worker(&mut self) -> Result<(), String> {
        self.next_worker += 1;
        let name = format!("{}-w{}", self.name, self.next_worker);
        let mut cmd = self.launcher.command("worker");
        cmd.arg(&self.address)
            .args([
                "--name",
                &name,
                "--host",
                &self.launcher.host,
                "--no-dashboard",
            ])
            .arg("--nthreads")
            .arg(self.options.worker_threads.to_string())
            .arg("--memory-limit")
            .arg(self.options.worker_memory.to_string())
            .arg("--local-directory")
            .arg(&self.dir)
            .arg("--auth-token-file")
            .arg(&self.token_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {:?}: {e}", self.launcher.worker_command))?;
        if let Some(err) = child.stderr.take() {
            keep_lines(err, format!("{name}: "), self.logs.clone(), None);
        }
        self.workers.push(WorkerProcess { name, child });
        Ok(())
    }

    /// The newest log lines of the scheduler and workers.
    pub fn logs(&self) -> Vec<String> {
        self.logs
            .lock()
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Stops every process (workers first) and removes the cluster's directory.
    pub fn stop(&mut self) {
        for w in &mut self.workers {
            let _ = w.child.kill();
        }
        for w in &mut self.workers {
            let _ = w.child.wait();
        }
        self.workers.clear();
        let _ = self.scheduler.kill();
        let _ = self.scheduler.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
