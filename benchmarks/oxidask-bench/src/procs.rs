//! A cluster of processes started from this binary (a scheduler, `serve-scheduler`, and
//! worker processes, `worker`, under their nannies) for suites that run collections on the
//! distributed scheduler, and the peak memory of a process tree.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use oxidask::distributed::Client;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// A scheduler process and worker processes of one thread each, killed when dropped.
pub struct Cluster {
    scheduler: Child,
    workers: Vec<Child>,
    address: String,
}

impl Cluster {
    /// Starts the scheduler, then `workers` workers of one thread each.
    pub fn start(workers: usize) -> Result<Cluster, String> {
        let exe = std::env::current_exe().map_err(err)?;
        let mut scheduler = Command::new(&exe)
            .arg("serve-scheduler")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(err)?;
        let mut line = String::new();
        BufReader::new(scheduler.stdout.take().expect("piped"))
            .read_line(&mut line)
            .map_err(err)?;
        let address = line
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned();
        let mut cluster = Cluster {
            scheduler,
            workers: Vec::new(),
            address,
        };
        if cluster.address.is_empty() {
            return Err("the scheduler process printed no address".into());
        }
        for i in 0..workers {
            let child = Command::new(&exe)
                .args(["worker", &cluster.address, "--nthreads", "1", "--name"])
                .arg(format!("w{i}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(err)?;
            cluster.workers.push(child);
        }
        Ok(cluster)
    }

    /// A client connected once every worker has joined.
    pub fn client(&self) -> Result<Client, String> {
        let client = Client::builder()
            .address(self.address.clone())
            .set_as_default(false)
            .connect()
            .map_err(err)?;
        client
            .wait_for_workers(self.workers.len(), Duration::from_secs(60))
            .map_err(err)?;
        Ok(client)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self.workers.iter_mut().chain([&mut self.scheduler]) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A `/proc/PID/status` field in KiB (`VmHWM:`, `PPid:` …).
fn status_field(pid: u32, name: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with(name))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The sum of the peak resident memory (VmHWM) of `root` and every process descending from
/// it, MiB — the same measure as `dataframe_ref.py`'s for Dask's cluster.
pub fn tree_peak_mib(root: u32) -> f64 {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(ppid) = status_field(pid, "PPid:") {
            children.entry(ppid as u32).or_default().push(pid);
        }
    }
    let (mut stack, mut kib) = (vec![root], 0u64);
    while let Some(pid) = stack.pop() {
        kib += status_field(pid, "VmHWM:").unwrap_or(0);
        stack.extend(children.get(&pid).into_iter().flatten());
    }
    kib as f64 / 1024.0
}
