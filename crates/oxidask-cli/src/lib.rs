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
    },
    /// List the registered operations and the registry fingerprint.
    Ops,
    /// Run a distributed scheduler: `oxidask scheduler [--host H] [--port 8786]` (see
    /// `oxidask scheduler --help`).
    #[command(disable_help_flag = true)]
    Scheduler {
        /// The scheduler's arguments.
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
        Command::Worker { args } => return oxidask::distributed::worker_main(args),
        Command::Scheduler { args } => return oxidask::distributed::scheduler_main(args),
        _ => {}
    }
    let result = match cli.command {
        Command::Demo {
            threads,
            tasks,
            graph,
        } => demo::run(
            threads,
            tasks,
            &graph.unwrap_or_else(|| std::env::temp_dir().join("oxidask-demo-graph.dot")),
        ),
        Command::Worker { .. } | Command::Scheduler { .. } => unreachable!("handled above"),
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
