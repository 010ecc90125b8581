//! `oxidask scheduler [options]`: the scheduler's command line, shared by the Rust `oxidask`
//! binary and the Python package's `oxidask` command.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::server::Scheduler;
use crate::Config;

/// Options of `oxidask scheduler`.
#[derive(Parser, Debug, Clone)]
#[command(name = "scheduler", about = "Run an oxidask scheduler")]
pub struct SchedulerArgs {
    /// The interface to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// The port to listen on.
    #[arg(long, default_value_t = 8786)]
    pub port: u16,
    /// Seconds without a heartbeat before a worker is removed.
    #[arg(long, default_value_t = 30.0)]
    pub heartbeat_timeout: f64,
    /// Seconds a task that no connected worker can run waits before it fails.
    #[arg(long, default_value_t = 5.0)]
    pub no_worker_timeout: f64,
    /// Times a task may be on a worker that dies before it is failed as the likely cause.
    #[arg(long, default_value_t = 3)]
    pub allowed_failures: u16,
    /// Do not log connections to stderr.
    #[arg(long)]
    pub quiet: bool,
}

impl SchedulerArgs {
    /// The scheduler configuration these options describe; durations must be finite and
    /// not negative.
    pub fn config(&self) -> Result<Config, String> {
        let secs = |name: &str, v: f64| {
            Duration::try_from_secs_f64(v)
                .map_err(|_| format!("--{name} must be a number of seconds ≥ 0, got {v}"))
        };
        Ok(Config {
            heartbeat_timeout: secs("heartbeat-timeout", self.heartbeat_timeout)?,
            no_worker_timeout: secs("no-worker-timeout", self.no_worker_timeout)?,
            allowed_failures: self.allowed_failures,
            ..Default::default()
        })
    }
}

/// Runs a scheduler from command-line arguments (without the program name and the
/// `scheduler` word) until it stops.
pub fn main_with_args(args: impl IntoIterator<Item = String>) -> ExitCode {
    let args =
        match SchedulerArgs::try_parse_from(std::iter::once("scheduler".to_owned()).chain(args)) {
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
    let config = match args.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("oxidask-scheduler: {e}");
            return ExitCode::from(2);
        }
    };
    match Scheduler::builder()
        .address(format!("{}:{}", args.host, args.port))
        .config(config)
        .quiet(args.quiet)
        .start()
    {
        Ok(s) => {
            eprintln!("oxidask-scheduler: listening at {}", s.url());
            s.wait();
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "oxidask-scheduler: cannot listen on {}:{}: {e}",
                args.host, args.port
            );
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_or_nan_durations_are_refused_by_name() {
        let a = SchedulerArgs::try_parse_from(["scheduler", "--heartbeat-timeout=-1"]).unwrap();
        assert!(a.config().unwrap_err().contains("--heartbeat-timeout"));
        let a = SchedulerArgs::try_parse_from(["scheduler", "--no-worker-timeout", "NaN"]).unwrap();
        assert!(a.config().unwrap_err().contains("--no-worker-timeout"));
        let a = SchedulerArgs::try_parse_from(["scheduler", "--port", "0"]).unwrap();
        assert_eq!(a.config().unwrap().allowed_failures, 3);
    }
}
