//! Suite `distributed`: the scheduler, workers and client on loopback.
//!
//! Every case runs a scheduler process and two worker processes (one thread each), started
//! from this binary (`serve-scheduler`, `worker`) outside the timed region, with the client
//! in this process — the same layout as Dask's `LocalCluster(n_workers=2,
//! threads_per_worker=1)` in `benchmarks/reference/distributed_ref.py`.
//!
//! - `map`: `client.map(inc, range(n))` and gather, summed;
//! - `tree`: a tree reduction of `n` tasks (`n/2` leaves `inc(i)`, pairwise `total`s);
//! - `roundtrip`: `n` sequential submit → result of `inc(i)`; p50/p99 latency reported;
//! - `startup`: starting a `LocalCluster` of two worker processes until both joined
//!   (in-process start-up reported beside it);
//! - `scheduler-alone`: `map` of `n` tasks on workers that acknowledge without executing;
//! - `big-graph`: a tree of `n` tasks on zero-work workers (ours only): throughput and the
//!   scheduler process's memory per task.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oxidask::distributed::{Client, LocalCluster, ReturnWhen};
use oxidask::Delayed;
use serde_json::json;

use crate::Opts;

#[oxidask::task]
fn inc(x: i64) -> i64 {
    x + 1
}

#[oxidask::task]
fn total(xs: &[i64]) -> i64 {
    xs.iter().sum()
}

/// A scheduler process started from this binary.
struct SchedulerProc {
    child: Child,
    address: String,
}

impl SchedulerProc {
    fn start() -> Result<SchedulerProc, String> {
        let mut child = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
            .arg("serve-scheduler")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        Ok(SchedulerProc {
            child,
            address: line.trim().to_owned(),
        })
    }

    /// (peak, current) resident memory of the scheduler process, bytes.
    fn memory(&self) -> (u64, u64) {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            s.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
                .map_or(0, |kb| kb * 1024)
        };
        (field("VmHWM:"), field("VmRSS:"))
    }
}

impl Drop for SchedulerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a scheduler in this process and prints its address (the `serve-scheduler` mode).
pub fn serve_scheduler() -> ! {
    let s = oxidask::distributed::Scheduler::builder()
        .address("127.0.0.1:0")
        .quiet(true)
        .start()
        .expect("scheduler");
    println!("{}", s.url());
    s.wait();
    std::process::exit(0)
}

struct Workers(Vec<Child>);

impl Workers {
    fn start(address: &str, zero_work: bool) -> Result<Workers, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut children = Vec::new();
        for i in 0..2 {
            let mut cmd = Command::new(&exe);
            cmd.args(["worker", address, "--nthreads", "1", "--name"])
                .arg(format!("w{i}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if zero_work {
                cmd.arg("--zero-work");
            }
            children.push(cmd.spawn().map_err(|e| e.to_string())?);
        }
        Ok(Workers(children))
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn tree_graph(n: usize) -> Delayed<i64> {
    let mut level: Vec<Delayed<i64>> = (0..(n / 2).max(1) as i64).map(inc).collect();
    while level.len() > 1 {
        level = level.chunks(2).map(|c| total(c.to_vec())).collect();
    }
    level.pop().expect("one root")
}

pub fn run(case: &str, opts: &Opts) -> Result<serde_json::Value, String> {
    let n = opts.n;
    if case == "startup" {
        return startup();
    }
    let zero_work = matches!(case, "scheduler-alone" | "big-graph");
    let scheduler = SchedulerProc::start()?;
    let _workers = Workers::start(&scheduler.address, zero_work)?;
    let client = Client::connect(&scheduler.address).map_err(err)?;
    client
        .wait_for_workers(2, Duration::from_secs(30))
        .map_err(err)?;
    // Warm up connections outside the timed region.
    let warm = client.map(0..10i64, inc).map_err(err)?;
    client
        .wait(&warm, None, ReturnWhen::AllCompleted)
        .map_err(err)?;
    drop(warm);
    let (_, rss_before) = scheduler.memory();
    let start = Instant::now();
    let mut extra = serde_json::Map::new();
    let check: i64 = match case {
        "map" => {
            let futures = client.map(0..n as i64, inc).map_err(err)?;
            client.gather(&futures).map_err(err)?.into_iter().sum()
        }
        "tree" => client
            .submit(&tree_graph(n))
            .map_err(err)?
            .result()
            .map_err(err)?,
        "roundtrip" => {
            let mut lat = Vec::with_capacity(n);
            let mut sum = 0;
            for i in 0..n as i64 {
                let t = Instant::now();
                sum += client.submit(&inc(i)).map_err(err)?.result().map_err(err)?;
                lat.push(t.elapsed().as_secs_f64() * 1e3);
            }
            lat.sort_by(f64::total_cmp);
            extra.insert("p50_ms".into(), json!(lat[lat.len() / 2]));
            extra.insert("p99_ms".into(), json!(lat[lat.len() * 99 / 100]));
            sum
        }
        "scheduler-alone" => {
            let futures = client.map(0..n as i64, inc).map_err(err)?;
            let r = client
                .wait(&futures, None, ReturnWhen::AllCompleted)
                .map_err(err)?;
            r.done.len() as i64
        }
        "big-graph" => {
            let f = client.submit(&tree_graph(n)).map_err(err)?;
            f.wait(None).map_err(err)?;
            ((n / 2).max(1) * 2 - 1) as i64
        }
        other => return Err(format!("unknown case `{other}`")),
    };
    let seconds = start.elapsed().as_secs_f64();
    let (peak, _) = scheduler.memory();
    let tasks = match case {
        "tree" | "big-graph" => (n / 2).max(1) * 2 - 1,
        _ => n,
    };
    extra.insert("tasks_per_s".into(), json!(tasks as f64 / seconds));
    extra.insert(
        "scheduler_peak_mib".into(),
        json!(peak as f64 / (1 << 20) as f64),
    );
    extra.insert(
        "scheduler_bytes_per_task".into(),
        json!(peak.saturating_sub(rss_before) as f64 / tasks as f64),
    );
    let mut out = json!({ "seconds": seconds, "check": check });
    out.as_object_mut().expect("object").extend(extra);
    Ok(out)
}

fn startup() -> Result<serde_json::Value, String> {
    let start = Instant::now();
    let cluster = LocalCluster::builder()
        .workers(2)
        .threads_per_worker(1)
        .processes(true)
        .start()
        .map_err(err)?;
    let processes = start.elapsed().as_secs_f64();
    let n = cluster
        .client()
        .map_err(err)?
        .summary()
        .map_err(err)?
        .workers
        .len();
    cluster.close();
    let start = Instant::now();
    let cluster = LocalCluster::builder()
        .workers(2)
        .threads_per_worker(1)
        .start()
        .map_err(err)?;
    let in_process = start.elapsed().as_secs_f64();
    cluster.close();
    Ok(json!({
        "seconds": processes,
        "check": n,
        "in_process_s": in_process,
    }))
}
