//! `oxidask scheduler [options]`: the scheduler's command-line options (the `oxidask` command
//! runs it, with its dashboard).

use std::time::Duration;

use clap::Parser;

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
    /// Where the dashboard listens (`host:port`; `:8787` is every interface). Default: the
    /// scheduler's host, port 8787 (another free port if it is taken).
    #[arg(long)]
    pub dashboard_address: Option<String>,
    /// Serve no dashboard.
    #[arg(long)]
    pub no_dashboard: bool,
    /// TLS and authentication.
    #[command(flatten)]
    pub security: oxidask_protocol::transport::SecurityArgs,
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

impl SchedulerArgs {
    /// Parses the options (without the program name and the `scheduler` word).
    pub fn parse_args(
        args: impl IntoIterator<Item = String>,
    ) -> Result<SchedulerArgs, clap::Error> {
        SchedulerArgs::try_parse_from(std::iter::once("scheduler".to_owned()).chain(args))
    }

    /// Where the dashboard listens, if it does.
    pub fn dashboard(&self) -> Option<String> {
        if self.no_dashboard {
            return None;
        }
        Some(
            self.dashboard_address
                .clone()
                .unwrap_or_else(|| format!("{}:8787", self.host)),
        )
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
