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
//!   scheduler process's memory per task;
//! - `dashboard-open` / `dashboard-closed`: `big-graph`'s tree with the scheduler serving
//!   its dashboard to two open pages (websockets read as fast as they are fed) and a
//!   `/metrics` scrape every second, or serving no dashboard: the dashboard's cost;
//! - `map-tls` / `roundtrip-tls`: `map` and `roundtrip` with TLS (temporary credentials)
//!   and a token on every connection — client, scheduler, workers' data ports.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use oxidask::distributed::{Client, LocalCluster, ReturnWhen, Security, TOKEN_ENV};
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
    /// Starts a scheduler process, with a dashboard (its link is returned too) or without,
    /// and with the TLS credentials in `tls` (and the token in the environment) if given.
    fn start(
        dashboard: bool,
        tls: Option<&Tls>,
    ) -> Result<(SchedulerProc, Option<String>), String> {
        let mut cmd = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
        cmd.arg("serve-scheduler");
        if dashboard {
            cmd.arg("--dashboard");
        }
        if let Some(t) = tls {
            cmd.args(t.args()).env(TOKEN_ENV, TOKEN);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let mut words = line.split_whitespace();
        let address = words.next().unwrap_or_default().to_owned();
        let link = words.next().map(str::to_owned);
        Ok((SchedulerProc { child, address }, link))
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

/// Runs a scheduler in this process and prints its address (the `serve-scheduler` mode),
/// and with `--dashboard` its dashboard on a free port (printed after the address); TLS and
/// token options as `oxidask scheduler`'s.
pub fn serve_scheduler(args: &[String]) -> ! {
    let dashboard = args.iter().any(|a| a == "--dashboard");
    let security = security_from_args(args);
    let bound = dashboard.then(|| {
        oxidask_dashboard::Dashboard::builder()
            .address("127.0.0.1:0")
            .bind()
            .expect("dashboard port")
    });
    let mut builder = oxidask::distributed::Scheduler::builder()
        .address("127.0.0.1:0")
        .security(security)
        .quiet(true);
    if let Some(b) = &bound {
        builder = builder.dashboard_link(b.link());
    }
    let s = builder.start().expect("scheduler");
    let served = bound.map(|b| b.serve(&s).expect("dashboard"));
    match &served {
        Some(d) => println!("{} {}", s.url(), d.link()),
        None => println!("{}", s.url()),
    }
    s.wait();
    std::process::exit(0)
}

/// The token every connection of the TLS cases presents.
const TOKEN: &str = "benchmark-token";

/// Temporary TLS credentials written to files, for the `-tls` cases.
struct Tls {
    dir: std::path::PathBuf,
    files: oxidask::distributed::TlsFiles,
}

impl Tls {
    fn new() -> Result<Tls, String> {
        let dir = std::env::temp_dir().join(format!("oxidask-bench-tls-{}", std::process::id()));
        let files = Security::temporary()
            .map_err(err)?
            .write_files(&dir)
            .map_err(err)?
            .ok_or("no TLS files")?;
        Ok(Tls { dir, files })
    }

    fn args(&self) -> Vec<std::ffi::OsString> {
        let f = &self.files;
        let mut a: Vec<std::ffi::OsString> = vec!["--tls-ca-file".into(), f.ca.clone().into()];
        if let (Some(c), Some(k)) = (&f.cert, &f.key) {
            a.extend([
                "--tls-cert".into(),
                c.clone().into(),
                "--tls-key".into(),
                k.clone().into(),
            ]);
        }
        a
    }

    fn security(&self) -> Result<Security, String> {
        let f = &self.files;
        Ok(
            Security::tls_from_files(&f.ca, f.cert.as_deref(), f.key.as_deref())
                .map_err(err)?
                .with_token(TOKEN),
        )
    }
}

impl Drop for Tls {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `--tls-ca-file A --tls-cert B --tls-key C` (and the token from the environment).
fn security_from_args(args: &[String]) -> Security {
    let get = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .map(std::path::PathBuf::from)
    };
    let mut s = match get("--tls-ca-file") {
        Some(ca) => Security::tls_from_files(
            &ca,
            get("--tls-cert").as_deref(),
            get("--tls-key").as_deref(),
        )
        .expect("TLS credentials"),
        None => Security::plain(),
    };
    if let Ok(t) = std::env::var(TOKEN_ENV) {
        s = s.with_token(t);
    }
    s
}

/// What two open dashboards and a Prometheus scraper ask of a scheduler: two websocket
/// connections to `/ws` read as fast as the scheduler sends, and `/metrics` every second.
struct Viewers {
    stop: Arc<AtomicBool>,
    received: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Viewers {
    fn open(link: &str) -> Result<Viewers, String> {
        let host = link
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(AtomicU64::new(0));
        let mut threads = Vec::new();
        for i in 0..3 {
            let mut conn = TcpStream::connect(&host).map_err(err)?;
            conn.set_read_timeout(Some(Duration::from_millis(200)))
                .map_err(err)?;
            let (stop, received, host) = (stop.clone(), received.clone(), host.clone());
            threads.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 1 << 16];
                if i < 2 {
                    // A browser's websocket: the upgrade, then frames until the end.
                    let _ = write!(
                        conn,
                        "GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
                    );
                    while !stop.load(Ordering::Relaxed) {
                        match conn.read(&mut buf) {
                            Ok(0) => return,
                            Ok(k) => {
                                received.fetch_add(k as u64, Ordering::Relaxed);
                            }
                            Err(_) => {}
                        }
                    }
                } else {
                    drop(conn);
                    while !stop.load(Ordering::Relaxed) {
                        if let Ok(mut c) = TcpStream::connect(&host) {
                            let _ = write!(
                                c,
                                "GET /metrics HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
                            );
                            let mut body = Vec::new();
                            let _ = c.read_to_end(&mut body);
                            received.fetch_add(body.len() as u64, Ordering::Relaxed);
                        }
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
            }));
        }
        Ok(Viewers {
            stop,
            received,
            threads,
        })
    }

    /// Stops; returns the bytes the viewers received.
    fn close(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        self.received.load(Ordering::Relaxed)
    }
}

struct Workers(Vec<Child>);

impl Workers {
    fn start(address: &str, zero_work: bool, tls: Option<&Tls>) -> Result<Workers, String> {
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
            if let Some(t) = tls {
                cmd.args(t.args()).env(TOKEN_ENV, TOKEN);
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
    if let Some(rest) = case.strip_prefix("worker-startup") {
        return worker_startup(n, rest != "-no-nanny");
    }
    if case == "state-machine" {
        return state_machine(n);
    }
    let zero_work = matches!(
        case,
        "scheduler-alone" | "big-graph" | "dashboard-open" | "dashboard-closed"
    );
    let tls = match case.strip_suffix("-tls") {
        Some(_) => Some(Tls::new()?),
        None => None,
    };
    let case = case.strip_suffix("-tls").unwrap_or(case);
    let (scheduler, link) = SchedulerProc::start(case == "dashboard-open", tls.as_ref())?;
    let _workers = Workers::start(&scheduler.address, zero_work, tls.as_ref())?;
    let security = match &tls {
        Some(t) => t.security()?,
        None => Security::plain(),
    };
    let client = Client::builder()
        .address(scheduler.address.clone())
        .security(security)
        .connect()
        .map_err(err)?;
    client
        .wait_for_workers(2, Duration::from_secs(30))
        .map_err(err)?;
    // Warm up connections outside the timed region.
    let warm = client.map(0..10i64, inc).map_err(err)?;
    client
        .wait(&warm, None, ReturnWhen::AllCompleted)
        .map_err(err)?;
    drop(warm);
    let viewers = match &link {
        Some(link) => {
            let v = Viewers::open(link)?;
            // Both pages have their whole state before the clock starts.
            std::thread::sleep(Duration::from_millis(500));
            Some(v)
        }
        None => None,
    };
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
        "big-graph" | "dashboard-open" | "dashboard-closed" => {
            let f = client.submit(&tree_graph(n)).map_err(err)?;
            f.wait(None).map_err(err)?;
            ((n / 2).max(1) * 2 - 1) as i64
        }
        other => return Err(format!("unknown case `{other}`")),
    };
    let seconds = start.elapsed().as_secs_f64();
    if let Some(v) = viewers {
        let bytes = v.close();
        if bytes == 0 {
            return Err("the dashboard viewers received nothing".into());
        }
        extra.insert("viewer_bytes".into(), json!(bytes));
    }
    let (peak, _) = scheduler.memory();
    let tasks = match case {
        "tree" | "big-graph" | "dashboard-open" | "dashboard-closed" => (n / 2).max(1) * 2 - 1,
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

/// The start-up cost of `oxidask worker` (this binary as the worker program) under its
/// nanny, or with `--no-nanny`: `n` times, the time from spawning the command to the worker
/// registered with the scheduler (polled every millisecond); the median, then each worker is
/// stopped with SIGTERM and gone before the next starts.
fn worker_startup(n: usize, nanny: bool) -> Result<serde_json::Value, String> {
    let (scheduler, _) = SchedulerProc::start(false, None)?;
    let client = Client::connect(&scheduler.address).map_err(err)?;
    let exe = std::env::current_exe().map_err(err)?;
    let workers = |client: &Client| client.summary().map(|s| s.workers.len()).map_err(err);
    let mut times = Vec::with_capacity(n);
    for i in 0..n.max(1) {
        let mut cmd = Command::new(&exe);
        cmd.args([
            "worker",
            &scheduler.address,
            "--nthreads",
            "1",
            "--no-dashboard",
        ])
        .arg("--name")
        .arg(format!("s{i}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        if !nanny {
            cmd.arg("--no-nanny");
        }
        let start = Instant::now();
        let mut child = cmd.spawn().map_err(err)?;
        while workers(&client)? == 0 {
            if start.elapsed() > std::time::Duration::from_secs(60) {
                let _ = child.kill();
                return Err("the worker did not register within 60 s".into());
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        times.push(start.elapsed().as_secs_f64());
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
        while workers(&client)? != 0 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(json!({
        "seconds": times[times.len() / 2],
        "check": times.len(),
        "min_s": times[0],
        "max_s": times[times.len() - 1],
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
