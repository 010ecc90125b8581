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

    /// CPU seconds the scheduler process has used.
    fn cpu_seconds(&self) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .ok()
            .and_then(|s| {
                let rest = &s[s.rfind(')')? + 2..];
                let f: Vec<&str> = rest.split_whitespace().collect();
                Some(f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?)
            })
            .map_or(0.0, |ticks| ticks / 100.0)
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
    if case == "state-machine" {
        return state_machine(n);
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
    let cpu_before = scheduler.cpu_seconds();
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
    // The scheduler's own capacity: tasks per second of its CPU time (the client and the
    // workers share this machine's two cores with it during the run).
    let cpu = scheduler.cpu_seconds() - cpu_before;
    if cpu > 0.0 {
        extra.insert("scheduler_cpu_s".into(), json!(cpu));
        extra.insert(
            "tasks_per_scheduler_cpu_s".into(),
            json!(tasks as f64 / cpu),
        );
    }
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

/// The pure state machine alone: `n` independent tasks submitted in one message, two
/// simulated one-thread workers acknowledging every assignment at once, until the client has
/// been told about every result. No sockets, no encoding: the scheduler's own cost.
pub fn state_machine(n: usize) -> Result<serde_json::Value, String> {
    use oxidask_protocol::{
        FromWorker, SubmitOptions, ToClient, ToScheduler, ToWorker, WireArg, WireKey, WireSpec,
        WireTask, WorkerInfo,
    };
    use oxidask_scheduler::{Effect, Event, SchedulerState};

    let tasks: Vec<WireTask> = (0..n)
        .map(|i| {
            let k = WireKey::from(&oxidask::Key::block(
                "inc",
                oxidask::Token::from_u128(7),
                &[i as u32],
            ));
            WireTask::new(
                k,
                &WireSpec::Call {
                    op: "inc".into(),
                    args: vec![WireArg::List(Vec::new())],
                },
                Vec::new(),
            )
        })
        .collect();
    let wanted: Vec<WireKey> = tasks.iter().map(|t| t.key).collect();
    let now = Instant::now();
    let mut s = SchedulerState::new(oxidask_scheduler::Config::default(), now);
    let start = Instant::now();
    let mut out = Vec::new();
    s.handle_into(
        Event::ClientJoined {
            conn: 1,
            name: "c".into(),
        },
        now,
        &mut out,
    );
    for w in 0..2u64 {
        let info = WorkerInfo {
            name: format!("w{w}"),
            data_address: format!("w{w}:1"),
            nthreads: 1,
            memory_limit: 0,
            resources: Vec::new(),
        };
        s.handle_into(Event::WorkerJoined { conn: 10 + w, info }, now, &mut out);
    }
    s.handle_into(
        Event::FromClient {
            conn: 1,
            msg: ToScheduler::UpdateGraph {
                tasks,
                wanted,
                options: SubmitOptions::default(),
                more: false,
            },
        },
        now,
        &mut out,
    );
    let mut told = 0usize;
    let mut pending = Vec::new();
    while told < n {
        for e in out.drain(..) {
            match e {
                Effect::ToWorker {
                    conn,
                    msg: ToWorker::Compute { task, .. },
                } => pending.push((conn, task.key)),
                Effect::ToClient {
                    msg: ToClient::KeyInMemory { .. },
                    ..
                } => told += 1,
                _ => {}
            }
        }
        if pending.is_empty() && told < n {
            return Err(format!("stalled after {told} of {n}"));
        }
        for (conn, key) in pending.drain(..) {
            s.handle_into(
                Event::FromWorker {
                    conn,
                    msg: FromWorker::Finished {
                        key,
                        type_name: "()".into(),
                        nbytes: 0,
                        duration_us: 1,
                        start_us: 0,
                        thread: 0,
                    },
                },
                now,
                &mut out,
            );
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(json!({
        "seconds": seconds,
        "check": told,
        "tasks_per_s": n as f64 / seconds,
        "table_bytes_per_task": s.task_table_bytes() as f64 / n as f64,
    }))
}
