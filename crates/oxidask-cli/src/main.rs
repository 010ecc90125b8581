//! The `oxidask` command.
//!
//! - `oxidask demo`: runs the tour of the Dask tutorial on the local threaded scheduler and
//!   prints what it measured.
//! - `oxidask ops`: lists the operations registered in this binary and their fingerprint
//!   (what a distributed handshake compares).
//! - `oxidask scheduler [--host H] [--port 8786]`: runs a distributed scheduler.
//! - `oxidask worker tcp://HOST:PORT [--nthreads N --memory-limit 4GiB --resources GPU=2
//!   --name NAME]`: runs a worker of that scheduler (the address may also come from
//!   `OXIDASK_SCHEDULER_ADDRESS`).

mod demo;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
// Links the dataframe operations, so the stock worker runs dataframe tasks.
#[cfg(feature = "dataframe")]
use oxidask::dataframe as _;

/// mimalloc: faster small allocations and far fewer page faults on big graphs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        /// Where to write the graph picture (`.svg` needs Graphviz; `.dot` never does).
        #[arg(long, default_value = "oxidask-demo-graph.dot")]
        graph: std::path::PathBuf,
    },
    /// List the registered operations and the registry fingerprint.
    Ops,
    /// Run a distributed scheduler.
    Scheduler {
        /// The interface to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// The port to listen on.
        #[arg(long, default_value_t = 8786)]
        port: u16,
        /// Seconds without a heartbeat before a worker is removed.
        #[arg(long, default_value_t = 30.0)]
        heartbeat_timeout: f64,
        /// Seconds a task that no connected worker can run waits before it fails.
        #[arg(long, default_value_t = 5.0)]
        no_worker_timeout: f64,
        /// Times a task may be on a worker that dies before it is failed as the likely cause.
        #[arg(long, default_value_t = 3)]
        allowed_failures: u16,
        /// Do not log connections to stderr.
        #[arg(long)]
        quiet: bool,
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Worker { args } = cli.command {
        return oxidask::distributed::worker_main(args);
    }
    let result = match cli.command {
        Command::Demo {
            threads,
            tasks,
            graph,
        } => demo::run(threads, tasks, &graph),
        Command::Scheduler {
            host,
            port,
            heartbeat_timeout,
            no_worker_timeout,
            allowed_failures,
            quiet,
        } => run_scheduler(
            format!("{host}:{port}"),
            oxidask::distributed::SchedulerConfig {
                heartbeat_timeout: std::time::Duration::from_secs_f64(heartbeat_timeout),
                no_worker_timeout: std::time::Duration::from_secs_f64(no_worker_timeout),
                allowed_failures,
                ..Default::default()
            },
            quiet,
        ),
        Command::Worker { .. } => unreachable!("handled above"),
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

fn run_scheduler(
    address: String,
    config: oxidask::distributed::SchedulerConfig,
    quiet: bool,
) -> Result<(), oxidask::Error> {
    let s = oxidask::distributed::Scheduler::builder()
        .address(address)
        .config(config)
        .quiet(quiet)
        .start()
        .map_err(|e| oxidask::Error::Scheduler {
            scheduler: "distributed",
            source: Box::new(e),
        })?;
    eprintln!("oxidask-scheduler: listening at {}", s.url());
    s.wait();
    Ok(())
}
