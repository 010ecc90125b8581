//! The `oxidask` command.
//!
//! - `oxidask demo`: runs the tour of the Dask tutorial on the local threaded scheduler and
//!   prints what it measured.
//! - `oxidask ops`: lists the operations registered in this binary and their fingerprint
//!   (what a distributed handshake compares).

mod demo;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo {
            threads,
            tasks,
            graph,
        } => demo::run(threads, tasks, &graph),
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
