//! The `oxidask` command, as a library: the Rust binary and the Python package both run it.
//!
//! - `oxidask demo`: runs the tour of the Dask tutorial on the local threaded scheduler and
//!   prints what it measured.
//! - `oxidask ops`: lists the operations registered in this binary and their fingerprint
//!   (what a distributed handshake compares).
//! - `oxidask scheduler [--host H] [--port 8786]`: runs a distributed scheduler.
//! - `oxidask worker tcp://HOST:PORT [--nthreads N --memory-limit 4GiB --resources GPU=2
//!   --name NAME]`: runs a worker of that scheduler (the address may also come from
//!   `OXIDASK_SCHEDULER_ADDRESS`).
//! - `oxidask gateway --tokens-file FILE [--address 127.0.0.1:8000]`: runs a multi-tenant
//!   gateway that starts, scales and stops clusters for its users (see `oxidask_gateway`).
//! - `oxidask config [--defaults]`: prints the effective configuration (files < `OXIDASK_*`
//!   variables), a `key: value   # source` line per key, or the built-in defaults; a bad
//!   configuration is an error saying what to fix.

mod demo;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
// Links the dataframe operations, so the stock worker runs dataframe tasks.
#[cfg(feature = "dataframe")]
use oxidask::dataframe as _;

#[derive(Parser)]
#[command(
    name = "oxidask",
    version,
    about = "Parallel computing with task graphs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the demo workload (the Dask tutorial, on the threaded scheduler).
    Demo {
        /// Threads for the scheduler (default: one per core).
        #[arg(long)]
        threads: Option<usize>,
        /// Tasks in the scheduler-overhead part of the demo.
        #[arg(long, default_value_t = 1_000_000)]
        tasks: usize,
        /// Where to write the graph picture (`.svg` needs Graphviz; `.dot` never does);
        /// default: `oxidask-demo-graph.dot` in the system's temporary directory.
        #[arg(long)]
        graph: Option<std::path::PathBuf>,
        /// Seconds to keep the demo's cluster busy (watch it on the dashboard).
        #[arg(long, default_value_t = 20.0)]
        duration: f64,
        /// Where the demo cluster's dashboard listens.
        #[arg(long, default_value = "127.0.0.1:8787")]
        dashboard_address: String,
        /// Skip the cluster part.
        #[arg(long)]
        no_cluster: bool,
    },
    /// List the registered operations and the registry fingerprint.
    Ops,
    /// Print the effective configuration: a `key: value   # source` line per key (YAML that
    /// reads back), from the built-in defaults, the YAML files (`/etc/oxidask`,
    /// `~/.config/oxidask`, `OXIDASK_CONFIG`) and the `OXIDASK_*` variables (see
    /// docs/CONFIG.md).
    Config {
        /// Print the built-in defaults instead.
        #[arg(long)]
        defaults: bool,
    },
    /// Keep a running cluster busy (for its dashboard, tests and benchmarks).
    #[command(hide = true)]
    Load {
        /// The scheduler.
        address: String,
        /// Seconds to keep it busy.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Also submit a task that fails.
        #[arg(long)]
        fail: bool,
        /// Write a performance report of the run to this HTML file.
        #[arg(long)]
        report: Option<std::path::PathBuf>,
        /// Instead of waves, submit one tree reduction of this many tasks and wait for it.
        #[arg(long)]
        tree: Option<usize>,
    },
    /// Run a distributed scheduler: `oxidask scheduler [--host H] [--port 8786]` (see
    /// `oxidask scheduler --help`).
    #[command(disable_help_flag = true)]
    Scheduler {
        /// The scheduler's arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run a multi-tenant gateway that starts, scales and stops clusters for its users over
    /// a REST API: `oxidask gateway --tokens-file tokens.txt` (see `oxidask gateway --help`).
    #[command(disable_help_flag = true)]
    Gateway {
        /// The gateway's arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run a worker: `oxidask worker tcp://HOST:PORT [--nthreads N] [--memory-limit 4GiB]
    /// [--resources GPU=2] [--name NAME]` (see `oxidask worker --help`).
    #[command(disable_help_flag = true)]
    Worker {
        /// The worker's arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// Tunes mimalloc for a program whose global allocator it is (the `oxidask` binary, the
/// Python extension), unless the environment sets the option (`MIMALLOC_PURGE_DELAY`,
/// `MIMALLOC_ALLOW_THP`). Safe to call at any time, any number of times.
///
/// - Freed memory is kept for a second before it goes back to the system (mimalloc's default
///   is 10 ms). Dataframe shuffles and task graphs allocate and free in waves; returning the
///   pages at once and faulting them in again cost a third of a 100k-task `client.map` and
///   half of a set_index of randomly ordered rows (BENCHMARKS.md).
/// - mimalloc no longer asks the kernel for transparent huge pages for its own mappings
///   (`allow_thp` off). With them, each first touch of fresh memory zeroes 2 MiB: a set_index
///   of a month of randomly ordered trips spent 2.5–5.6 s of system time zeroing pages, 1.1 s
///   without. Other allocators of the process (NumPy's arrays in a Python program) keep
///   asking for them as they choose.
pub fn tune_mimalloc() {
    /// `mi_option_purge_delay` in mimalloc's option enum (the same in v2 and v3).
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: setting an option is thread-safe and allowed at any time.
        unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 1000) };
    }
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: `mi_version` only returns a constant.
        let version = unsafe { libmimalloc_sys::mi_version() };
        // `mi_option_allow_thp` in mimalloc's option enum: v3 inserted options before it.
        let allow_thp: libmimalloc_sys::mi_option_t = if version >= 300 { 43 } else { 37 };
        // SAFETY: as above; mappings made from now on are not advised as huge.
        unsafe { libmimalloc_sys::mi_option_set(allow_thp, 0) };
    }
}

/// Turns transparent huge pages off for the whole process, for processes that are ours alone
/// (the `oxidask` binary; scheduler, worker and gateway processes however started), as
/// `MIMALLOC_ALLOW_THP=0` does: beyond [`tune_mimalloc`], the kernel stops granting them to
/// any mapping (those made before, other allocators'), and processes started afterwards
/// inherit the setting. A `MIMALLOC_ALLOW_THP` in the environment wins
/// (`MIMALLOC_ALLOW_THP=1` keeps huge pages). Not called by the Python extension: a user's
/// own Python process keeps its settings.
pub fn disable_transparent_huge_pages() {
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
        return;
    }
    tune_mimalloc();
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE only sets a flag of this process's memory map.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// Runs the `oxidask` command with `args` (the first is the program name), as the binary does;
/// the Python package's `oxidask` command calls this too.
pub fn main_with_args(args: impl IntoIterator<Item = String>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        Command::Worker { args } => {
            disable_transparent_huge_pages();
            oxidask_dashboard::logging::init();
            return oxidask::distributed::worker_main(args);
        }
        Command::Scheduler { args } => {
            disable_transparent_huge_pages();
            oxidask_dashboard::logging::init();
            return scheduler_main(args);
        }
        Command::Gateway { args } => {
            disable_transparent_huge_pages();
            oxidask_dashboard::logging::init();
            return oxidask_gateway::gateway_main(args);
        }
        Command::Config { defaults } => {
            let env = oxidask_config::Environment::from_process();
            return match config_text(defaults, &env) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("oxidask: {e}");
                    ExitCode::from(2)
                }
            };
        }
        _ => {}
    }
    let result = match cli.command {
        Command::Demo {
            threads,
            tasks,
            graph,
            duration,
            dashboard_address,
            no_cluster,
        } => match std::time::Duration::try_from_secs_f64(duration) {
            Err(_) => {
                eprintln!("oxidask: --duration must be a number of seconds ≥ 0, got {duration}");
                return ExitCode::from(2);
            }
            Ok(duration) => demo::run(
                threads,
                tasks,
                &graph.unwrap_or_else(|| std::env::temp_dir().join("oxidask-demo-graph.dot")),
                demo::ClusterDemo {
                    duration,
                    dashboard: (!no_cluster).then_some(dashboard_address),
                },
            ),
        },
        Command::Worker { .. }
        | Command::Scheduler { .. }
        | Command::Config { .. }
        | Command::Gateway { .. } => {
            unreachable!("handled above")
        }
        Command::Load {
            address,
            duration,
            fail,
            report,
            tree,
        } => match std::time::Duration::try_from_secs_f64(duration) {
            Ok(d) => match tree {
                Some(n) => demo::load_tree(&address, n),
                None => demo::load(&address, d, fail, report.as_deref()),
            },
            Err(_) => {
                eprintln!("oxidask: --duration must be a number of seconds ≥ 0, got {duration}");
                return ExitCode::from(2);
            }
        },
        Command::Ops => {
            for op in oxidask::op::registered_ops() {
                println!("{:<40} {}", op.name(), op.signature());
            }
            println!("fingerprint {}", oxidask::op::registry_fingerprint());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("oxidask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What `oxidask config` prints: the configuration loaded from `env` (or the defaults), the
/// files read as comments first.
fn config_text(
    defaults: bool,
    env: &oxidask_config::Environment,
) -> Result<String, oxidask_config::ConfigError> {
    let config = if defaults {
        oxidask_config::Config::defaults()
    } else {
        oxidask_config::Config::load_from(env)?
    };
    let mut text = String::new();
    for file in config.files() {
        text.push_str(&format!("# read {}\n", file.display()));
    }
    text.push_str(&config.render());
    Ok(text)
}

/// The dashboard link clients are told: `link` with the host of `--contact-address`, when
/// the scheduler has one (the address it listens on is not the one they reach).
fn contact_link(link: &str, contact: Option<&str>) -> String {
    let host = contact.map(|c| {
        let hp = oxidask_protocol::strip_any_scheme(c);
        if hp.parse::<std::net::Ipv6Addr>().is_ok() {
            return hp.to_owned();
        }
        oxidask_protocol::split_host_port(hp)
            .map_or(hp, |(h, _)| h)
            .to_owned()
    });
    let port = link
        .strip_prefix("http://")
        .and_then(|r| r.split('/').next())
        .and_then(oxidask_protocol::split_host_port)
        .and_then(|(_, p)| p.parse::<u16>().ok());
    match (host, port) {
        (Some(h), Some(p)) => format!("http://{}/status", oxidask_protocol::join_host_port(&h, p)),
        _ => link.to_owned(),
    }
}

/// `oxidask scheduler [options]`: a scheduler and its dashboard, until stopped.
fn scheduler_main(args: Vec<String>) -> ExitCode {
    use oxidask_scheduler::cli::SchedulerArgs;
    let args = match SchedulerArgs::parse_args(args) {
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
    // The command line is the top layer of the process's configuration.
    let configured = args.flags().and_then(|flags| {
        oxidask_config::set_flags(flags);
        let cfg = oxidask_config::global().map_err(|e| e.to_string())?;
        let security = oxidask_protocol::transport::Security::from_config(
            &cfg,
            oxidask_protocol::transport::Party::Scheduler,
        )
        .map_err(|e| e.to_string())?;
        Ok((oxidask_scheduler::Config::from_config(&cfg), security))
    });
    let configured = configured.and_then(|c| {
        args.contact_address(args.port)?;
        Ok((c, args.listen_address()?))
    });
    let ((config, security), listen) = match configured {
        Ok(c) => c,
        Err(e) => {
            eprintln!("oxidask-scheduler: {e}");
            return ExitCode::from(2);
        }
    };
    let bound = match args.dashboard() {
        Some(addr) => match oxidask_dashboard::Dashboard::builder().address(addr).bind() {
            Ok(b) => Some(b),
            Err(e) => {
                eprintln!("oxidask-scheduler: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let mut builder = oxidask::distributed::Scheduler::builder()
        .address(listen)
        .security(security)
        .config(config)
        .quiet(args.quiet)
        .log_source(std::sync::Arc::new(oxidask_dashboard::logging::recent));
    if let Some(b) = &bound {
        builder = builder.dashboard_link(contact_link(b.link(), args.contact_address.as_deref()));
    }
    let scheduler = match builder.start() {
        Ok(s) => std::sync::Arc::new(s),
        Err(e) => {
            eprintln!("oxidask-scheduler: {e}");
            return ExitCode::FAILURE;
        }
    };
    scheduler.shut_down_on_signals();
    let dashboard = match bound.map(|b| b.serve(&scheduler)).transpose() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("oxidask-scheduler: the dashboard cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("oxidask-scheduler: listening at {}", scheduler.url());
    match args.contact_address(scheduler.address().port()) {
        Ok(Some(contact)) => eprintln!(
            "oxidask-scheduler: contact address {}",
            oxidask_protocol::with_scheme(&contact, oxidask_protocol::scheme_of(&scheduler.url()))
        ),
        Ok(None) => {}
        Err(e) => {
            eprintln!("oxidask-scheduler: {e}");
            return ExitCode::from(2);
        }
    }
    if let Some(d) = &dashboard {
        eprintln!("oxidask-scheduler: dashboard at {}", d.link());
    }
    tracing::info!("scheduler at {}", scheduler.url());
    scheduler.wait();
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxidask_config::Environment;

    fn env(vars: &[(&str, &str)]) -> Environment {
        let root = [("OXIDASK_ROOT_CONFIG", "/nonexistent/oxidask")];
        Environment::from_vars(root.iter().chain(vars).map(|(k, v)| (*k, *v)))
    }

    #[test]
    fn config_prints_every_key_with_its_source() {
        let text = config_text(
            false,
            &env(&[("OXIDASK_DISTRIBUTED__WORKER__MEMORY__TARGET", "0.5")]),
        )
        .unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with("distributed.worker.memory.target:"))
            .unwrap();
        assert!(
            line.starts_with("distributed.worker.memory.target: 0.5 ")
                && line.ends_with(
                    "# environment variable OXIDASK_DISTRIBUTED__WORKER__MEMORY__TARGET"
                ),
            "{line}"
        );
        assert!(text.contains("array.chunk-size: 128MiB"), "{text}");
        let defaults = config_text(true, &env(&[("OXIDASK_NUM_WORKERS", "3")])).unwrap();
        assert!(defaults.contains("num-workers: null"), "{defaults}");
    }

    #[test]
    fn config_refuses_a_bad_configuration_saying_what_to_fix() {
        let e = config_text(false, &env(&[("OXIDASK_NUM_WORKERS", "-2")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`num-workers` is -2 in environment variable OXIDASK_NUM_WORKERS, which is negative; \
             expected a whole number ≥ 1, or null"
        );
    }

    #[test]
    fn the_dashboard_link_takes_the_contact_host() {
        let link = "http://127.0.0.1:8787/status";
        assert_eq!(contact_link(link, None), link);
        assert_eq!(
            contact_link(link, Some("tcp://sched.example:8786")),
            "http://sched.example:8787/status"
        );
        assert_eq!(
            contact_link(link, Some("fd00::1")),
            "http://[fd00::1]:8787/status"
        );
    }

    #[test]
    fn config_command_parses() {
        assert!(matches!(
            Cli::try_parse_from(["oxidask", "config", "--defaults"]).map(|c| c.command),
            Ok(Command::Config { defaults: true })
        ));
    }
}
