//! `oxidask worker ADDRESS [options]`, and the entry point user programs call.

use std::process::ExitCode;

use clap::Parser;

use crate::Worker;

/// Options of `oxidask worker`.
#[derive(Parser, Debug, Clone)]
#[command(name = "worker", about = "Run an oxidask worker")]
pub struct WorkerArgs {
    /// The scheduler (`tcp://host:port`); default: $OXIDASK_SCHEDULER_ADDRESS.
    pub address: Option<String>,
    /// Threads running tasks (default: the number of cores, or the container's CPU quota
    /// rounded up if smaller, as Dask).
    #[arg(long)]
    pub nthreads: Option<usize>,
    /// Memory limit: bytes or with a unit (`4GiB`, `512MB`), `auto` (this machine's memory,
    /// or its container's cgroup limit if smaller) or 0 for none. Results beyond
    /// `distributed.worker.memory.target` of it (60%) spill to the local directory.
    #[arg(long, default_value = "auto")]
    pub memory_limit: String,
    /// Where spilled results go (default: the system's temporary directory).
    #[arg(long)]
    pub local_directory: Option<std::path::PathBuf>,
    /// Abstract resources: `GPU=2,FPGA=1`.
    #[arg(long, default_value = "")]
    pub resources: String,
    /// A unique name (default: the data address).
    #[arg(long)]
    pub name: Option<String>,
    /// The address the data port listens on and, unless `--contact-address` says otherwise,
    /// the one peers are told (default `127.0.0.1`; with `0.0.0.0` it advertises the address
    /// of the interface that routes to the scheduler).
    #[arg(long)]
    pub host: Option<String>,
    /// Listen on this network interface's IPv4 address (`eth0`, `ib0`), instead of `--host`.
    #[arg(long, value_name = "NAME")]
    pub interface: Option<String>,
    /// Where the data port listens, with its port: `tcp://0.0.0.0:9000` (instead of `--host`
    /// and a free port).
    #[arg(long, value_name = "ADDRESS")]
    pub listen_address: Option<String>,
    /// The address the scheduler, peers and clients are told to reach this worker at, when it
    /// differs from where it listens (a container's published port, NAT): `tcp://HOST:PORT`,
    /// or `HOST` for the listening port.
    #[arg(long, value_name = "ADDRESS")]
    pub contact_address: Option<String>,
    /// Where to serve this worker's `/metrics` and `/health` (default: the `--host`
    /// interface, a free port).
    #[arg(long)]
    pub dashboard_address: Option<String>,
    /// Serve no `/metrics`.
    #[arg(long)]
    pub no_dashboard: bool,
    /// Heartbeat interval in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub heartbeat_ms: u64,
    /// Acknowledge tasks without running them (benchmarks of the scheduler alone).
    #[arg(long, hide = true)]
    pub zero_work: bool,
    /// Run the worker in this process, without a nanny (by default a small supervisor
    /// process runs it and restarts it when it crashes or passes its memory limit).
    #[arg(long)]
    pub no_nanny: bool,
    /// Worker processes to start on this host, each under the nanny (`--memory-limit auto`
    /// and the default thread count are divided among them; `--name NAME` becomes
    /// `NAME-0`, `NAME-1`, ...).
    #[arg(long, default_value_t = 1)]
    pub nworkers: usize,
    /// Close the worker after this long (`1 hour`, `30s`); default:
    /// `distributed.worker.lifetime.duration` (none).
    #[arg(long)]
    pub lifetime: Option<String>,
    /// Random amount by which lifetimes differ (`5 minutes`), so workers do not all close at
    /// once; default: `distributed.worker.lifetime.stagger`.
    #[arg(long)]
    pub lifetime_stagger: Option<String>,
    /// When the lifetime ends, have the nanny start a fresh worker
    /// (`distributed.worker.lifetime.restart`).
    #[arg(long)]
    pub lifetime_restart: bool,
    /// How long to keep trying to reach the scheduler, at start and after losing it, before
    /// exiting with code 1 (`60s`, `5 minutes`; Dask's `--death-timeout`). Default:
    /// `distributed.comm.timeouts.connect` (30 s).
    #[arg(long)]
    pub death_timeout: Option<String>,
    /// TLS and authentication.
    #[command(flatten)]
    pub security: oxidask_protocol::transport::SecurityArgs,
}

/// Runs a worker from command-line arguments (without the program name and the `worker`
/// word) until it stops.
pub fn main_with_args(args: impl IntoIterator<Item = String>) -> ExitCode {
    let raw: Vec<String> = args.into_iter().collect();
    let args = match WorkerArgs::try_parse_from(
        std::iter::once("worker".to_owned()).chain(raw.iter().cloned()),
    ) {
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
    if !args.no_nanny && std::env::var_os(crate::nanny::NANNY_ENV).is_none() {
        match nanny_main(&raw, &args) {
            Ok(Some(code)) => return ExitCode::from(code.clamp(0, 255) as u8),
            Ok(None) => {}
            Err(e) => {
                eprintln!("oxidask-worker: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    match run(args) {
        Ok(reason) => {
            eprintln!("oxidask-worker: {reason}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("oxidask-worker: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `--nworkers` worker processes under the nanny; `None` if this process's command line
/// cannot be told (then the worker runs in this process).
fn nanny_main(raw: &[String], args: &WorkerArgs) -> Result<Option<i32>, String> {
    if args.address.is_none() && std::env::var_os("OXIDASK_SCHEDULER_ADDRESS").is_none() {
        return Err("no scheduler address: pass it (`worker tcp://host:8786`) or set OXIDASK_SCHEDULER_ADDRESS".into());
    }
    if args.nworkers == 0 {
        return Err("--nworkers must be at least 1".into());
    }
    let limit = parse_memory(&args.memory_limit)?;
    let (_, port) = listen(args)?;
    if args.nworkers > 1 {
        let fixed_contact = match &args.contact_address {
            Some(c) => oxidask_protocol::netif::contact_host_port(c, 0)?.ends_with(":0"),
            None => true,
        };
        if port != 0 || !fixed_contact {
            return Err(format!(
                "--nworkers {} processes cannot share one port: drop the port from --listen-address/--contact-address (or run one worker per port)",
                args.nworkers
            ));
        }
    }
    if let Some(l) = &args.lifetime {
        parse_duration_arg("--lifetime", l)?;
    }
    if let Some(l) = &args.lifetime_stagger {
        parse_duration_arg("--lifetime-stagger", l)?;
    }
    let Some((program, prefix)) = crate::nanny::own_command(raw) else {
        eprintln!("oxidask-worker: cannot tell this process's command line to start workers under a nanny; running the worker in this process (as --no-nanny)");
        return Ok(None);
    };
    let n = args.nworkers;
    let base = crate::nanny::strip_nanny_options(raw);
    let nthreads = (args.nthreads.is_none() && n > 1).then(|| (cpu_count() / n).max(1));
    let workers = (0..n)
        .map(|i| {
            let mut a = base.clone();
            a.extend(["--no-nanny".to_owned(), "--memory-limit".into()]);
            a.push((limit / n as u64).to_string());
            let name = args.name.as_ref().map(|name| {
                if n > 1 {
                    format!("{name}-{i}")
                } else {
                    name.clone()
                }
            });
            if let Some(name) = &name {
                a.extend(["--name".to_owned(), name.clone()]);
            }
            if let Some(t) = nthreads {
                a.extend(["--nthreads".to_owned(), t.to_string()]);
            }
            crate::nanny::WorkerCommand {
                program: program.clone(),
                prefix: prefix.clone(),
                args: a,
                label: name.unwrap_or_else(|| format!("#{i}")),
            }
        })
        .collect();
    eprintln!(
        "oxidask-nanny {}: supervising {n} worker process{}",
        std::process::id(),
        if n == 1 { "" } else { "es" }
    );
    Ok(Some(crate::nanny::supervise(workers)))
}

/// Where the data port listens (`host`, `port`; port 0: a free one), from `--listen-address`,
/// `--interface` or `--host`; the contact address checked too.
fn listen(args: &WorkerArgs) -> Result<(String, u16), String> {
    let (host, port) = oxidask_protocol::netif::listen_host_port(
        args.host.as_deref(),
        args.interface.as_deref(),
        args.listen_address.as_deref(),
        "127.0.0.1",
        0,
    )?;
    if let Some(c) = &args.contact_address {
        oxidask_protocol::netif::contact_host_port(c, port.max(1))?;
    }
    Ok((host, port))
}

fn parse_duration_arg(flag: &str, text: &str) -> Result<std::time::Duration, String> {
    oxidask_config::units::parse_duration(text).map_err(|e| {
        format!("{flag} `{text}` {e}: give a duration such as `30s`, `10 minutes` or `1h`")
    })
}

/// When this worker's lifetime ends: `lifetime` plus or minus a random part of `stagger`
/// (`unit` in [0, 1) picks it), as Dask's `--lifetime-stagger`.
fn lifetime_with_stagger(
    lifetime: std::time::Duration,
    stagger: std::time::Duration,
    unit: f64,
) -> std::time::Duration {
    let offset = (unit * 2.0 - 1.0) * stagger.as_secs_f64();
    std::time::Duration::from_secs_f64((lifetime.as_secs_f64() + offset).max(0.0))
}

/// A number in [0, 1) that differs between processes (for the lifetime stagger).
fn process_unit() -> f64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut x = t ^ (u64::from(std::process::id()) << 32) ^ 0x9E37_79B9_7F4A_7C15;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

fn run(args: WorkerArgs) -> Result<String, String> {
    let (host, port) = listen(&args)?;
    let address = args
        .address
        .clone()
        .or_else(|| std::env::var("OXIDASK_SCHEDULER_ADDRESS").ok())
        .ok_or("no scheduler address: pass it (`worker tcp://host:8786`) or set OXIDASK_SCHEDULER_ADDRESS")?;
    let memory_limit = parse_memory(&args.memory_limit)?;
    let resources = parse_resources(&args.resources)?;
    let metrics = (!args.no_dashboard).then(|| {
        args.dashboard_address
            .clone()
            .unwrap_or_else(|| oxidask_protocol::join_host_port(&host, 0))
    });
    // The command line is the top layer of the process's configuration.
    let mut flags = oxidask_config::Flags::new();
    args.security
        .add_flags(&mut flags, oxidask_protocol::transport::Party::Worker)?;
    oxidask_config::set_flags(flags);
    let cfg = oxidask_config::global().map_err(|e| e.to_string())?;
    let security = oxidask_protocol::transport::Security::from_config(
        &cfg,
        oxidask_protocol::transport::Party::Worker,
    )
    .map_err(|e| e.to_string())?;
    let lifetime = match &args.lifetime {
        Some(l) => Some(parse_duration_arg("--lifetime", l)?),
        None => cfg.duration("distributed.worker.lifetime.duration"),
    };
    let stagger = match &args.lifetime_stagger {
        Some(l) => parse_duration_arg("--lifetime-stagger", l)?,
        None => cfg
            .duration("distributed.worker.lifetime.stagger")
            .unwrap_or_default(),
    };
    let lifetime_restart =
        args.lifetime_restart || cfg.bool("distributed.worker.lifetime.restart") == Some(true);
    let death_timeout = args
        .death_timeout
        .as_deref()
        .map(|d| parse_duration_arg("--death-timeout", d))
        .transpose()?
        .or_else(|| cfg.duration("distributed.comm.timeouts.connect"));
    let mut b = Worker::builder(address)
        .security(security)
        .memory_thresholds(crate::memory::Thresholds::from_config(&cfg))
        .memory_monitor_interval(
            cfg.duration("distributed.worker.memory.monitor-interval")
                .unwrap_or(std::time::Duration::from_millis(100)),
        )
        .owns_process(true)
        .spill_compression(
            cfg.string("distributed.worker.memory.spill-compression")
                .is_some(),
        )
        .metrics_address(metrics)
        .memory_limit(memory_limit)
        .resources(resources)
        .host(host)
        .port(port)
        .contact_address(args.contact_address.clone())
        .heartbeat(std::time::Duration::from_millis(args.heartbeat_ms.max(10)))
        .zero_work(args.zero_work);
    if let Some(n) = args.nthreads {
        b = b.nthreads(n);
    }
    if let Some(d) = death_timeout {
        b = b.death_timeout(d);
    }
    if let Some(d) = args.local_directory {
        b = b.local_directory(d);
    }
    if let Some(n) = args.name {
        b = b.name(n);
    }
    let w = std::sync::Arc::new(b.start().map_err(|e| e.to_string())?);
    stop_on_signals(w.clone());
    eprintln!(
        "oxidask-worker {}: serving data at {}, connected to the scheduler{}",
        w.name(),
        w.data_address(),
        w.metrics_link()
            .map(|l| format!("; metrics at {l}"))
            .unwrap_or_default()
    );
    let lifetime_over = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    if let Some(l) = lifetime {
        let l = lifetime_with_stagger(l, stagger, process_unit());
        let (w, over) = (w.clone(), lifetime_over.clone());
        let _ = std::thread::Builder::new()
            .name("oxidask-worker-lifetime".into())
            .spawn(move || {
                std::thread::sleep(l);
                over.store(true, std::sync::atomic::Ordering::SeqCst);
                eprintln!(
                    "oxidask-worker {}: closing gracefully: its lifetime of {:.1} s is over (its results move to other workers){}",
                    w.name(),
                    l.as_secs_f64(),
                    if lifetime_restart {
                        "; its nanny starts a fresh worker"
                    } else {
                        ""
                    }
                );
                w.retire();
            });
    }
    let reason = w.wait();
    // The signal thread holds the worker too: clean up here, not on the last drop.
    w.shutdown();
    if w.lost_scheduler() {
        return Err(reason);
    }
    let over = lifetime_over.load(std::sync::atomic::Ordering::SeqCst);
    let supervised = std::env::var_os(crate::nanny::NANNY_ENV).is_some();
    if supervised && (w.restart_requested() || (over && lifetime_restart)) {
        // The nanny starts a fresh worker on this code.
        eprintln!("oxidask-worker: {reason}");
        std::process::exit(crate::nanny::EXIT_RESTART);
    }
    Ok(reason)
}

/// SIGTERM or SIGINT retires the worker gracefully (Dask's `close_gracefully`): the scheduler
/// copies the results only it holds to other workers, then tells it to stop; it exits 0 and
/// its spill directory is removed. A second signal exits at once.
fn stop_on_signals(w: std::sync::Arc<Worker>) {
    oxidask_protocol::signals::on_termination("oxidask-worker", move || {
        eprintln!(
            "oxidask-worker {}: closing gracefully (signal): asking the scheduler to move its results to other workers; a second signal exits at once",
            w.name()
        );
        w.retire();
    });
}

/// If this process was started as `PROGRAM worker ...`, runs the worker and exits; otherwise
/// returns at once. Call it first thing in `main` of a program whose `#[oxidask::task]`
/// functions should run on its workers.
pub fn run_if_worker() {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some("worker") {
        let code = main_with_args(args);
        // ExitCode has no integer view; map the two outcomes used.
        std::process::exit(if code == ExitCode::SUCCESS { 0 } else { 1 });
    }
}

/// `4GiB`, `512MB`, `1e9`, `auto`, `0`.
pub fn parse_memory(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("auto") {
        return Ok(total_memory());
    }
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("cannot read memory limit `{s}`: use e.g. 4GiB, 512MB or 0"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "kib" | "k" => 1024.0,
        "mib" | "m" => 1024.0 * 1024.0,
        "gib" | "g" => 1024.0 * 1024.0 * 1024.0,
        "tib" | "t" => 1024f64.powi(4),
        u => {
            return Err(format!(
                "unknown memory unit `{u}` in `{s}`: use B, KB, MB, GB, KiB, MiB, GiB"
            ))
        }
    };
    Ok((n * mult) as u64)
}

/// The memory this process may use: the machine's, or its container's limit when smaller
/// (cgroup v2 `memory.max`, v1 `memory.limit_in_bytes`), as Dask's `memory_limit="auto"`.
pub fn total_memory() -> u64 {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let cgroup = read("/sys/fs/cgroup/memory.max")
        .or_else(|| read("/sys/fs/cgroup/memory/memory.limit_in_bytes"));
    usable_memory(
        &read("/proc/meminfo").unwrap_or_default(),
        cgroup.as_deref(),
    )
}

/// The cores this process may use, as Dask's `distributed.system.cpu_count`: the CPUs it may
/// run on (its affinity), or its container's CPU quota rounded up when smaller (cgroup v2
/// `cpu.max`, v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`: half a CPU is 1, 1.5 CPUs are 2).
/// Without a container quota, the standard library's count (which also sees the quota of a
/// nested cgroup, rounded down).
pub fn cpu_count() -> usize {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let v1 = ["cpu", "cpu,cpuacct", "cpuacct,cpu"].iter().find_map(|d| {
        Some((
            read(&format!("/sys/fs/cgroup/{d}/cpu.cfs_quota_us"))?,
            read(&format!("/sys/fs/cgroup/{d}/cpu.cfs_period_us"))?,
        ))
    });
    let allowed = read("/proc/self/status").and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .and_then(|l| count_cpu_list(l.trim()))
    });
    let std_count = std::thread::available_parallelism().map_or(1, |n| n.get());
    cpus(
        allowed,
        cgroup_cpu_quota(read("/sys/fs/cgroup/cpu.max").as_deref(), v1),
        std_count,
    )
}

/// The cores from the affinity count, a container's quota (in CPUs) and the standard
/// library's count.
fn cpus(allowed: Option<usize>, quota: Option<f64>, std_count: usize) -> usize {
    match quota {
        Some(q) => allowed.unwrap_or(std_count).min(q.ceil() as usize).max(1),
        None => std_count.max(1),
    }
}

/// A cgroup's CPU quota in CPUs, from v2's `cpu.max` (`150000 100000`, `max 100000`) or v1's
/// quota and period (`-1`: none).
fn cgroup_cpu_quota(v2: Option<&str>, v1: Option<(String, String)>) -> Option<f64> {
    let ratio = |q: &str, p: &str| {
        let (q, p) = (q.trim().parse::<f64>().ok()?, p.trim().parse::<f64>().ok()?);
        (q > 0.0 && p > 0.0).then_some(q / p)
    };
    match v2 {
        Some(text) => {
            let mut f = text.split_whitespace();
            ratio(f.next()?, f.next()?)
        }
        None => v1.and_then(|(q, p)| ratio(&q, &p)),
    }
}

/// The number of CPUs in a list such as `0-3,8,10-11`.
fn count_cpu_list(list: &str) -> Option<usize> {
    list.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('-') {
            Some((a, b)) => Some(b.parse::<usize>().ok()?.checked_sub(a.parse().ok()?)? + 1),
            None => p.parse::<usize>().ok().map(|_| 1),
        })
        .sum()
}

/// The smaller of `MemTotal` in `meminfo` and the cgroup limit `cgroup` (`max` or a byte
/// count; v1's "unlimited" is a huge count, larger than any machine).
fn usable_memory(meminfo: &str, cgroup: Option<&str>) -> u64 {
    let machine = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb.saturating_mul(1024));
    let limit = cgroup.and_then(|t| t.trim().parse::<u64>().ok());
    match limit {
        Some(l) if machine == 0 || l < machine => l,
        _ => machine,
    }
}

/// `GPU=2,FPGA=1` → pairs.
pub fn parse_resources(s: &str) -> Result<Vec<(String, f64)>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (n, v) = p
                .split_once('=')
                .ok_or_else(|| format!("resource `{p}` should be NAME=AMOUNT, e.g. GPU=2"))?;
            let v: f64 = v
                .trim()
                .parse()
                .map_err(|_| format!("resource amount `{v}` in `{p}` is not a number"))?;
            Ok((n.trim().to_owned(), v))
        })
        .collect()
}

/// Resident memory of this process (bytes; 0 where /proc is not readable).
pub(crate) fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// CPU use of this process between calls, percent of one core.
pub(crate) struct CpuMeter {
    last: Option<(std::time::Instant, u64)>,
}

impl CpuMeter {
    pub(crate) fn new() -> CpuMeter {
        CpuMeter { last: None }
    }

    pub(crate) fn percent(&mut self) -> f64 {
        let ticks = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| {
                let rest = &s[s.rfind(')')? + 2..];
                let f: Vec<&str> = rest.split_whitespace().collect();
                Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
            });
        let now = std::time::Instant::now();
        let Some(ticks) = ticks else { return 0.0 };
        let pct = match self.last {
            Some((t0, k0)) => {
                let secs = now.duration_since(t0).as_secs_f64();
                if secs > 0.0 {
                    (ticks.saturating_sub(k0)) as f64 / 100.0 / secs * 100.0
                } else {
                    0.0
                }
            }
            None => 0.0,
        };
        self.last = Some((now, ticks));
        pct
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_memory_is_the_smaller_of_the_machine_and_its_cgroup_limit() {
        let meminfo = "MemTotal:       16384000 kB\nMemFree: 1 kB\n";
        let machine = 16_384_000 * 1024;
        assert_eq!(usable_memory(meminfo, None), machine);
        assert_eq!(
            usable_memory(meminfo, Some("max\n")),
            machine,
            "v2: no limit"
        );
        assert_eq!(
            usable_memory(meminfo, Some("2147483648\n")),
            2 << 30,
            "a container's limit"
        );
        assert_eq!(
            usable_memory(meminfo, Some("9223372036854771712\n")),
            machine,
            "v1's unlimited"
        );
        assert_eq!(usable_memory("", Some("1073741824")), 1 << 30, "no meminfo");
        assert!(total_memory() > 0, "this machine reports its memory");
    }

    #[test]
    fn cpus_are_the_affinity_or_the_container_quota_rounded_up() {
        assert_eq!(count_cpu_list("0-3,8,10-11"), Some(7));
        assert_eq!(count_cpu_list("0"), Some(1));
        assert_eq!(count_cpu_list("3-1"), None);
        let v1 = |q: &str| Some((q.to_owned(), "100000\n".to_owned()));
        assert_eq!(cgroup_cpu_quota(Some("50000 100000\n"), None), Some(0.5));
        assert_eq!(cgroup_cpu_quota(Some("max 100000\n"), v1("50000")), None);
        assert_eq!(cgroup_cpu_quota(None, v1("150000\n")), Some(1.5));
        assert_eq!(cgroup_cpu_quota(None, v1("-1\n")), None);
        assert_eq!(cpus(Some(8), Some(0.5), 1), 1, "half a CPU: one thread");
        assert_eq!(cpus(Some(8), Some(1.5), 1), 2, "rounded up, as Dask");
        assert_eq!(cpus(Some(2), Some(4.0), 2), 2, "the affinity when smaller");
        assert_eq!(
            cpus(Some(8), None, 3),
            3,
            "no container quota: the standard count"
        );
        assert!(cpu_count() >= 1);
    }

    #[test]
    fn lifetimes_are_staggered_within_the_stagger() {
        let s = std::time::Duration::from_secs;
        assert_eq!(lifetime_with_stagger(s(60), s(10), 0.0), s(50));
        assert_eq!(lifetime_with_stagger(s(60), s(10), 0.5), s(60));
        assert_eq!(lifetime_with_stagger(s(5), s(10), 0.0), s(0));
        let u = process_unit();
        assert!((0.0..1.0).contains(&u));
        assert!(parse_duration_arg("--lifetime", "soon")
            .unwrap_err()
            .contains("--lifetime `soon`"));
    }

    #[test]
    fn memory_limits_and_resources_parse_or_explain() {
        assert_eq!(parse_memory("4GiB").unwrap(), 4 << 30);
        assert_eq!(parse_memory("512MB").unwrap(), 512_000_000);
        assert_eq!(parse_memory("0").unwrap(), 0);
        assert!(parse_memory("auto").unwrap() > 0);
        assert!(parse_memory("lots").unwrap_err().contains("4GiB"));
        assert!(parse_memory("3 parsecs")
            .unwrap_err()
            .contains("unknown memory unit"));
        assert_eq!(
            parse_resources("GPU=2, FPGA=0.5").unwrap(),
            vec![("GPU".into(), 2.0), ("FPGA".into(), 0.5)]
        );
        assert!(parse_resources("GPU").unwrap_err().contains("NAME=AMOUNT"));
    }
}
