//! Graceful lifecycle from the client: retiring workers, the adaptive recommendation,
//! `replicate` and `rebalance` (Dask's `Client.retire_workers`, `Scheduler.adaptive_target`,
//! `Client.replicate`, `Client.rebalance`).

use std::time::Duration;

use oxidask_core::{Error, Key};
use oxidask_protocol::{ToClient, ToScheduler, WireKey};

use crate::error::{scheduler_error, ClientError};
use crate::Client;

/// Which workers [`Client::retire_workers`] retires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Retire {
    /// These, by name or data address (`host:port`, as [`crate::WorkerSummary::address`]).
    Workers(Vec<String>),
    /// This many, picked by the scheduler: idle workers holding the least data only they
    /// hold first (Dask's `workers_to_close`).
    Count(usize),
    /// What Dask's `retire_workers()` without arguments retires: idle workers, least data
    /// first, while those left keep memory limits of twice the data the cluster holds.
    Idle,
}

/// The scheduler's recommendation for the cluster's size (Dask's
/// `Scheduler.adaptive_target` and `workers_to_close`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdaptiveTarget {
    /// Workers wanted.
    pub target: usize,
    /// Data addresses of the workers to retire to get there, first to close first (empty
    /// unless fewer workers are wanted than are connected).
    pub workers_to_close: Vec<String>,
}

fn unexpected(what: &str) -> Error {
    scheduler_error(ClientError::Rejected(format!("unexpected reply to {what}")))
}

impl Client {
    /// Retires workers gracefully, as Dask's `Client.retire_workers`: they are given no new
    /// task, every result only they hold is copied to another worker, then each is told to
    /// stop (an `oxidask worker` process exits 0 and its nanny does not restart it). Returns
    /// the data addresses of the workers retired. Fails with [`ClientError::Rejected`] naming
    /// the workers that could not be retired — no other worker to take their data, an
    /// unknown name — which keep running (the others are retired).
    ///
    /// ```no_run
    /// # let client = oxidask_client::Client::connect("tcp://127.0.0.1:8786").unwrap();
    /// use oxidask_client::Retire;
    /// let gone = client.retire_workers(Retire::Count(1)).unwrap();
    /// assert_eq!(gone.len(), 1);
    /// ```
    pub fn retire_workers(&self, which: Retire) -> Result<Vec<String>, Error> {
        let (workers, n) = match which {
            Retire::Workers(w) => {
                if w.is_empty() {
                    return Ok(Vec::new());
                }
                (w, 0)
            }
            Retire::Count(0) => return Ok(Vec::new()),
            Retire::Count(n) => (Vec::new(), n.min(u32::MAX as usize) as u32),
            Retire::Idle => (Vec::new(), 0),
        };
        match self.request(|request| ToScheduler::RetireWorkers {
            request,
            workers,
            n,
        })? {
            ToClient::Retired { error: Some(e), .. } => {
                Err(scheduler_error(ClientError::Rejected(e)))
            }
            ToClient::Retired { workers, .. } => {
                Ok(workers.into_iter().map(|w| w.address).collect())
            }
            _ => Err(unexpected("retire-workers")),
        }
    }

    /// Like [`Client::retire_workers`], returning what each retired worker was (name,
    /// threads, memory limit...) and the error, if any, separately.
    pub fn retire_workers_detailed(
        &self,
        which: Retire,
    ) -> Result<(Vec<oxidask_protocol::WorkerSummary>, Option<String>), Error> {
        let (workers, n) = match which {
            Retire::Workers(w) if w.is_empty() => return Ok((Vec::new(), None)),
            Retire::Count(0) => return Ok((Vec::new(), None)),
            Retire::Workers(w) => (w, 0),
            Retire::Count(n) => (Vec::new(), n.min(u32::MAX as usize) as u32),
            Retire::Idle => (Vec::new(), 0),
        };
        match self.request(|request| ToScheduler::RetireWorkers {
            request,
            workers,
            n,
        })? {
            ToClient::Retired { workers, error, .. } => Ok((workers, error)),
            _ => Err(unexpected("retire-workers")),
        }
    }

    /// How many workers the current work needs to finish in about `target_duration`, and
    /// which to retire first when fewer are needed (Dask's `Scheduler.adaptive_target`).
    ///
    /// ```no_run
    /// # let client = oxidask_client::Client::connect("tcp://127.0.0.1:8786").unwrap();
    /// let rec = client.adaptive_target(std::time::Duration::from_secs(5)).unwrap();
    /// println!("want {} workers; could close {:?}", rec.target, rec.workers_to_close);
    /// ```
    pub fn adaptive_target(&self, target_duration: Duration) -> Result<AdaptiveTarget, Error> {
        let us = target_duration.as_micros().clamp(1, u64::MAX as u128) as u64;
        match self.request(|request| ToScheduler::AdaptiveTarget {
            request,
            target_duration_us: us,
        })? {
            ToClient::AdaptiveTarget {
                target,
                workers_to_close,
                ..
            } => Ok(AdaptiveTarget {
                target: target as usize,
                workers_to_close,
            }),
            _ => Err(unexpected("adaptive-target")),
        }
    }

    /// Copies each key's result onto `n` workers (`None`: every worker), dropping copies
    /// beyond `n` (Dask's `Client.replicate`); returns once the copies exist. Fails naming
    /// keys that are not in memory.
    ///
    /// ```no_run
    /// # let client = oxidask_client::Client::connect("tcp://127.0.0.1:8786").unwrap();
    /// # let key: oxidask_core::Key = todo!();
    /// client.replicate(&[key], Some(2)).unwrap();
    /// assert_eq!(client.who_has(&[key]).unwrap()[0].len(), 2);
    /// ```
    pub fn replicate(&self, keys: &[Key], n: Option<usize>) -> Result<(), Error> {
        let keys: Vec<WireKey> = keys.iter().map(WireKey::from).collect();
        let n = match n {
            Some(0) => {
                return Err(scheduler_error(ClientError::Rejected(
                    "replicate needs n >= 1 copies (or None for every worker)".into(),
                )))
            }
            Some(n) => n.min(u32::MAX as usize) as u32,
            None => 0,
        };
        self.moved(
            |request| ToScheduler::Replicate { request, keys, n },
            "replicate",
        )
    }

    /// Moves results between workers so that each holds about the same bytes, never filling
    /// a recipient past its memory target (Dask's `Client.rebalance`); `keys`: only these may
    /// move (`None`: any). Returns once the moves are done.
    ///
    /// ```no_run
    /// # let client = oxidask_client::Client::connect("tcp://127.0.0.1:8786").unwrap();
    /// client.rebalance(None).unwrap();
    /// ```
    pub fn rebalance(&self, keys: Option<&[Key]>) -> Result<(), Error> {
        let keys: Vec<WireKey> = keys
            .map(|k| k.iter().map(WireKey::from).collect())
            .unwrap_or_default();
        self.moved(
            |request| ToScheduler::Rebalance { request, keys },
            "rebalance",
        )
    }

    fn moved(&self, make: impl FnOnce(u64) -> ToScheduler, what: &str) -> Result<(), Error> {
        match self.request(make)? {
            ToClient::Moved { error: None, .. } => Ok(()),
            ToClient::Moved { error: Some(e), .. } => Err(scheduler_error(ClientError::Rejected(
                format!("{what}: {e}"),
            ))),
            _ => Err(unexpected(what)),
        }
    }
}
