//! `oxidask scheduler [options]`: the scheduler's command-line options (the `oxidask` command
//! runs it, with its dashboard).

use clap::Parser;

use crate::Config;

/// Options of `oxidask scheduler`.
#[derive(Parser, Debug, Clone)]
#[command(name = "scheduler", about = "Run an oxidask scheduler")]
pub struct SchedulerArgs {
    /// The address to listen on (default `127.0.0.1`; `0.0.0.0` is every interface).
    #[arg(long)]
    pub host: Option<String>,
    /// The port to listen on.
    #[arg(long, default_value_t = 8786)]
    pub port: u16,
    /// Listen on this network interface's IPv4 address (`eth0`, `ib0`), instead of `--host`.
    #[arg(long, value_name = "NAME")]
    pub interface: Option<String>,
    /// The address clients and workers reach the scheduler at when it differs from where it
    /// listens (a container's published port, NAT, a tunnel): `tcp://HOST:PORT`, or `HOST`
    /// for the listening port. It is printed as the scheduler's address and its host is the
    /// dashboard link's.
    #[arg(long, value_name = "ADDRESS")]
    pub contact_address: Option<String>,
    /// How long a silent worker is kept before it is removed (`30s`, `5 minutes`;
    /// `distributed.scheduler.worker-ttl`, default 5 minutes).
    #[arg(long, value_name = "DURATION")]
    pub heartbeat_timeout: Option<String>,
    /// How long a task that no connected worker can run waits before it fails
    /// (`distributed.scheduler.no-workers-timeout`, default 5 s).
    #[arg(long, value_name = "DURATION")]
    pub no_worker_timeout: Option<String>,
    /// Times a task may be on a worker that dies before it is failed as the likely cause
    /// (`distributed.scheduler.allowed-failures`, default 3).
    #[arg(long)]
    pub allowed_failures: Option<u16>,
    /// Journal the graphs, clients' futures and errors in this directory (created if
    /// missing), so that a scheduler restarted with the same `--journal` (and port) after a
    /// crash, even SIGKILL, resumes them: workers and clients reconnect, workers report the
    /// results they hold, and only what was lost is computed
    /// (`distributed.scheduler.journal`; default: no journal).
    #[arg(long, value_name = "DIR")]
    pub journal: Option<String>,
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
    /// The configuration keys these options set, as a command line's layer over the
    /// configuration files and environment.
    pub fn flags(&self) -> Result<oxidask_config::Flags, String> {
        let mut f = oxidask_config::Flags::new();
        let e = |e: oxidask_config::ConfigError| e.to_string();
        f.set_some(
            "--heartbeat-timeout",
            "distributed.scheduler.worker-ttl",
            self.heartbeat_timeout.as_deref(),
        )
        .map_err(e)?;
        f.set_some(
            "--no-worker-timeout",
            "distributed.scheduler.no-workers-timeout",
            self.no_worker_timeout.as_deref(),
        )
        .map_err(e)?;
        f.set_some(
            "--allowed-failures",
            "distributed.scheduler.allowed-failures",
            self.allowed_failures.map(i64::from),
        )
        .map_err(e)?;
        f.set_some(
            "--journal",
            "distributed.scheduler.journal",
            self.journal.as_deref(),
        )
        .map_err(e)?;
        self.security
            .add_flags(&mut f, oxidask_protocol::transport::Party::Scheduler)?;
        Ok(f)
    }

    /// The scheduler policy these options and the process's configuration describe.
    pub fn config(&self) -> Result<Config, String> {
        let cfg = oxidask_config::Config::load()
            .map_err(|e| e.to_string())?
            .with_flags(&self.flags()?);
        Ok(Config::from_config(&cfg))
    }
}

impl SchedulerArgs {
    /// Parses the options (without the program name and the `scheduler` word).
    pub fn parse_args(
        args: impl IntoIterator<Item = String>,
    ) -> Result<SchedulerArgs, clap::Error> {
        SchedulerArgs::try_parse_from(std::iter::once("scheduler".to_owned()).chain(args))
    }

    /// Where the scheduler listens (`host:port`): `--interface`'s address or `--host`, and
    /// `--port`; an error for an unknown interface or both options given.
    pub fn listen_address(&self) -> Result<String, String> {
        let (host, port) = oxidask_protocol::netif::listen_host_port(
            self.host.as_deref(),
            self.interface.as_deref(),
            None,
            "127.0.0.1",
            self.port,
        )?;
        Ok(oxidask_protocol::join_host_port(&host, port))
    }

    /// The `host:port` clients and workers are told (`--contact-address`), if given;
    /// `listening_port` fills in a missing port.
    pub fn contact_address(&self, listening_port: u16) -> Result<Option<String>, String> {
        self.contact_address
            .as_deref()
            .map(|c| oxidask_protocol::netif::contact_host_port(c, listening_port))
            .transpose()
    }

    /// Where the dashboard listens, if it does.
    pub fn dashboard(&self) -> Option<String> {
        if self.no_dashboard {
            return None;
        }
        Some(self.dashboard_address.clone().unwrap_or_else(|| {
            let listen = self
                .listen_address()
                .unwrap_or_else(|_| "127.0.0.1:0".into());
            let host = oxidask_protocol::split_host_port(&listen).map_or("127.0.0.1", |(h, _)| h);
            oxidask_protocol::join_host_port(host, 8787)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_or_nan_durations_are_refused_by_name() {
        let a = SchedulerArgs::try_parse_from(["scheduler", "--heartbeat-timeout=-1"]).unwrap();
        let e = a.config().unwrap_err();
        assert!(
            e.contains("--heartbeat-timeout") && e.contains("worker-ttl"),
            "{e}"
        );
        let a = SchedulerArgs::try_parse_from(["scheduler", "--no-worker-timeout", "NaN"]).unwrap();
        assert!(a.config().unwrap_err().contains("--no-worker-timeout"));
        let a = SchedulerArgs::try_parse_from(["scheduler", "--port", "0"]).unwrap();
        assert_eq!(a.config().unwrap().allowed_failures, 3);
        let a = SchedulerArgs::try_parse_from(["scheduler", "--interface", "lo"]).unwrap();
        assert_eq!(a.listen_address().unwrap(), "127.0.0.1:8786");
        assert_eq!(a.dashboard().unwrap(), "127.0.0.1:8787");
        let a = SchedulerArgs::try_parse_from(["scheduler", "--interface", "nosuch9"]).unwrap();
        assert!(a
            .listen_address()
            .unwrap_err()
            .contains("its interfaces are"));
        let a = SchedulerArgs::try_parse_from(["scheduler", "--contact-address", "sched"]).unwrap();
        assert_eq!(a.contact_address(8786).unwrap().unwrap(), "sched:8786");
        let a = SchedulerArgs::try_parse_from(["scheduler", "--journal", "/var/j"]).unwrap();
        assert_eq!(
            a.config().unwrap().journal,
            Some(std::path::PathBuf::from("/var/j"))
        );
        let a = SchedulerArgs::try_parse_from(["scheduler"]).unwrap();
        assert_eq!(a.config().unwrap().journal, None);
        let a = SchedulerArgs::try_parse_from(["scheduler", "--heartbeat-timeout", "2s"]).unwrap();
        assert_eq!(
            a.config().unwrap().heartbeat_timeout,
            std::time::Duration::from_secs(2)
        );
    }
}
