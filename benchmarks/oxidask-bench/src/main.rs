//! `oxidask-bench SUITE CASE --n N`: runs one benchmark case once and prints
//! `{"seconds": …, "check": …, …}` on stdout. The harness (`benchmarks/harness.py`) runs this
//! and the reference implementation alternately and compares.
//!
//! The timed region includes building the graph, as the reference's does.

mod array;
mod bag;
mod collections;
mod dataframe;
mod distributed;
mod procs;
mod tasks;

use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!("usage: oxidask-bench SUITE CASE [--n N] [--threads T]\n  suites: tasks (independent | chain | tree | delayed-independent)
          array (ones-sum | ones-fancy | random-expr | random-std | matmul-sum | big-sum)
          distributed (map | tree | roundtrip | startup | scheduler-alone | big-graph)
          dataframe, dataframe-distributed (value-counts | groupby-mean | groupby-agg | filter-count
            | merge-count | merge-count-all | set-index | set-index-unsorted | set-index-string | read-csv)
          bag (word-count | json-records)
          collections (array-expr-mean | array-std | array-matmul | array-mask-sum | array-map-blocks | array-to-numpy)");
    ExitCode::from(2)
}

/// Options common to every case.
pub struct Opts {
    /// Problem size (tasks, leaves, …).
    pub n: usize,
    /// Threads for the threaded scheduler (0: one per core).
    pub threads: usize,
}

fn main() -> ExitCode {
    // As the `oxidask` binary: freed memory stays a second before it goes back to the system
    // and no transparent huge pages, unless the environment says (the worker and scheduler
    // processes of the distributed suite are this binary too).
    oxidask_cli::tune_mimalloc();
    oxidask_cli::disable_transparent_huge_pages();
    // The distributed suite starts this binary as its workers and scheduler.
    oxidask::distributed::run_if_worker();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("serve-scheduler") {
        distributed::serve_scheduler(&args[1..]);
    }
    if args.len() < 2 {
        return usage();
    }
    let (suite, case) = (args[0].as_str(), args[1].as_str());
    let mut opts = Opts {
        n: 1_000_000,
        threads: 0,
    };
    let mut rest = args[2..].iter();
    while let Some(flag) = rest.next() {
        let value = rest.next().and_then(|v| v.parse::<usize>().ok());
        match (flag.as_str(), value) {
            ("--n", Some(v)) => opts.n = v,
            ("--threads", Some(v)) => opts.threads = v,
            _ => return usage(),
        }
    }
    let result = match suite {
        "tasks" => tasks::run(case, &opts),
        "array" => array::run(case, &opts),
        "distributed" => distributed::run(case, &opts),
        "dataframe" => dataframe::run(case, &opts),
        "dataframe-distributed" => dataframe::run_distributed(case, &opts),
        "bag" => bag::run(case, &opts),
        "collections" => collections::run(case, &opts),
        _ => return usage(),
    };
    match result {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("oxidask-bench {suite} {case}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// mimalloc: fewer page faults and faster small allocations than the system allocator, as
/// the `oxidask` binary uses.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
