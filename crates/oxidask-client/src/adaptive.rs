//! Adaptive scaling, as Dask's `Adaptive`: every `interval` the scheduler recommends how many
//! workers the current work needs ([`Client::adaptive_target`]); the cluster scales up at once
//! and retires workers only once the scheduler has named them `wait_count` times in a row
//! (hysteresis, so a short pause between bursts does not tear workers down).
//!
//! The decision is the pure [`AdaptiveCore`] (tested with simulated rounds, no clock); the
//! [`Adaptive`] driver is a thread that asks the scheduler and applies the decisions to a
//! [`Cluster`].
//!
//! # Invariants
//! - `close_counts` only holds workers named for closing in the latest round; a round that
//!   scales up or keeps the size clears it.
//! - A worker is retired only after `wait_count` consecutive rounds naming it.

use std::collections::HashMap;
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use oxidask_core::Error;

use crate::cluster::Cluster;
use crate::error::{scheduler_error, ClientError};

/// Options of adaptive scaling (Dask's `adapt(minimum=, maximum=, interval=, wait_count=,
/// target_duration=)`; defaults as Dask's `distributed.adaptive.*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdaptiveOptions {
    /// Never fewer workers than this.
    pub minimum: usize,
    /// Never more workers than this.
    pub maximum: usize,
    /// Time between two recommendations.
    pub interval: Duration,
    /// Consecutive recommendations naming a worker before it is retired.
    pub wait_count: usize,
    /// How long the queued work should take on the recommended workers.
    pub target_duration: Duration,
}

impl Default for AdaptiveOptions {
    fn default() -> Self {
        AdaptiveOptions {
            minimum: 0,
            maximum: usize::MAX,
            interval: Duration::from_secs(1),
            wait_count: 3,
            target_duration: Duration::from_secs(5),
        }
    }
}

impl AdaptiveOptions {
    /// Checks the options, naming what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.minimum > self.maximum {
            return Err(format!(
                "adapt: minimum ({}) is larger than maximum ({}); give minimum <= maximum",
                self.minimum, self.maximum
            ));
        }
        if self.interval.is_zero() {
            return Err("adapt: interval must be positive".into());
        }
        if self.target_duration.is_zero() {
            return Err("adapt: target_duration must be positive".into());
        }
        Ok(())
    }
}

/// What one round of adaptive scaling decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Keep the cluster as it is.
    Same,
    /// Grow the cluster to this many workers.
    Up(usize),
    /// Retire these workers (names).
    Down(Vec<String>),
}

/// The hysteresis of adaptive scaling (Dask's `AdaptiveCore.recommendations`), with no clock:
/// each call of [`AdaptiveCore::recommend`] is one round.
///
/// ```
/// use oxidask_client::{AdaptiveCore, Decision};
/// let mut core = AdaptiveCore::new(1, 4, 2).unwrap();
/// let plan: Vec<String> = vec!["a".into(), "b".into()];
/// assert_eq!(core.recommend(3, &plan, &plan, &[]), Decision::Up(3));
/// let close = vec!["b".to_string()];
/// assert_eq!(core.recommend(1, &plan, &plan, &close), Decision::Same);
/// assert_eq!(core.recommend(1, &plan, &plan, &close), Decision::Down(close));
/// ```
#[derive(Clone, Debug)]
pub struct AdaptiveCore {
    minimum: usize,
    maximum: usize,
    wait_count: usize,
    close_counts: HashMap<String, usize>,
}

impl AdaptiveCore {
    /// A core keeping between `minimum` and `maximum` workers, retiring a worker after
    /// `wait_count` consecutive rounds (at least one).
    pub fn new(minimum: usize, maximum: usize, wait_count: usize) -> Result<Self, String> {
        if minimum > maximum {
            return Err(format!(
                "adapt: minimum ({minimum}) is larger than maximum ({maximum}); give minimum <= maximum"
            ));
        }
        Ok(AdaptiveCore {
            minimum,
            maximum,
            wait_count: wait_count.max(1),
            close_counts: HashMap::new(),
        })
    }

    /// `target` clamped to `[minimum, maximum]`.
    pub fn clamp(&self, target: usize) -> usize {
        target.clamp(self.minimum, self.maximum)
    }

    /// One round: `target` is the scheduler's recommendation (clamped here), `plan` the
    /// workers asked for (started or starting), `observed` those of them connected, and
    /// `to_close` the connected workers the scheduler would retire first.
    pub fn recommend(
        &mut self,
        target: usize,
        plan: &[String],
        observed: &[String],
        to_close: &[String],
    ) -> Decision {
        let target = self.clamp(target);
        if target >= plan.len() {
            self.close_counts.clear();
            return if target > plan.len() {
                Decision::Up(target)
            } else {
                Decision::Same
            };
        }
        let excess = plan.len() - target;
        // Workers not yet arrived go first (nothing to lose), then the scheduler's picks.
        let mut chosen: Vec<String> = plan
            .iter()
            .filter(|w| !observed.contains(w))
            .take(excess)
            .cloned()
            .collect();
        for w in to_close {
            if chosen.len() >= excess {
                break;
            }
            if plan.contains(w) && !chosen.contains(w) {
                chosen.push(w.clone());
            }
        }
        let mut counts = HashMap::new();
        let mut firm = Vec::new();
        for w in chosen {
            let c = self.close_counts.get(&w).copied().unwrap_or(0) + 1;
            if c >= self.wait_count {
                firm.push(w);
            } else {
                counts.insert(w, c);
            }
        }
        self.close_counts = counts;
        if firm.is_empty() {
            Decision::Same
        } else {
            Decision::Down(firm)
        }
    }
}

/// A running adaptive-scaling loop; [`Adaptive::stop`] (or dropping it) ends it.
pub struct Adaptive {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Adaptive {
    /// Starts adapting `cluster` with `options`: every `interval` the scheduler's
    /// recommendation goes through an [`AdaptiveCore`] and the decision is applied with
    /// [`Cluster::scale`] / [`Cluster::scale_down`] (which retires gracefully).
    pub fn start<C: Cluster + ?Sized + 'static>(
        cluster: Arc<C>,
        options: AdaptiveOptions,
    ) -> Result<Adaptive, Error> {
        options
            .validate()
            .map_err(|e| scheduler_error(ClientError::Rejected(e)))?;
        let client = cluster.client_for_adapt()?;
        let mut core = AdaptiveCore::new(options.minimum, options.maximum, options.wait_count)
            .map_err(|e| scheduler_error(ClientError::Rejected(e)))?;
        let (tx, rx) = channel::<()>();
        let log = Arc::new(Mutex::new(Vec::new()));
        let thread_log = log.clone();
        let thread = std::thread::Builder::new()
            .name("oxidask-adaptive".into())
            .spawn(move || loop {
                let mut round = || -> Result<Decision, Error> {
                    let rec = client.adaptive_target(options.target_duration)?;
                    let workers = client.summary()?.workers;
                    let name_of = |addr: &str| {
                        let bare = addr.split("://").last().unwrap_or(addr);
                        workers
                            .iter()
                            .find(|w| w.address.split("://").last() == Some(bare))
                            .map(|w| w.name.clone())
                    };
                    let observed: Vec<String> = workers.iter().map(|w| w.name.clone()).collect();
                    let to_close: Vec<String> = rec
                        .workers_to_close
                        .iter()
                        .filter_map(|a| name_of(a))
                        .collect();
                    let plan = cluster.plan();
                    let decision = core.recommend(rec.target, &plan, &observed, &to_close);
                    match &decision {
                        Decision::Same => {}
                        Decision::Up(n) => cluster.scale(*n)?,
                        Decision::Down(names) => cluster.scale_down(names)?,
                    }
                    Ok(decision)
                };
                let line = match round() {
                    Ok(Decision::Same) => None,
                    Ok(d) => Some(format!("adaptive: {d:?}")),
                    Err(e) => Some(format!("adaptive: round failed: {e}")),
                };
                if let Some(line) = line {
                    thread_log
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(line);
                }
                match rx.recv_timeout(options.interval) {
                    Err(RecvTimeoutError::Timeout) => {}
                    _ => break,
                }
            })
            .map_err(|e| scheduler_error(ClientError::Rejected(e.to_string())))?;
        Ok(Adaptive {
            stop: Some(tx),
            thread: Some(thread),
            log,
        })
    }

    /// The decisions taken so far (and failed rounds), oldest first.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Stops adapting (the cluster keeps its current workers); waits for a round under way.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Adaptive {
    fn drop(&mut self) {
        self.halt();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn scales_up_at_once_and_clamps() {
        let mut core = AdaptiveCore::new(1, 4, 3).unwrap();
        let plan = names(&["w0"]);
        assert_eq!(core.recommend(10, &plan, &plan, &[]), Decision::Up(4));
        assert_eq!(core.recommend(0, &[], &[], &[]), Decision::Up(1));
        let four = names(&["w0", "w1", "w2", "w3"]);
        assert_eq!(core.recommend(4, &four, &four, &[]), Decision::Same);
    }

    #[test]
    fn retires_only_after_wait_count_consecutive_rounds() {
        let mut core = AdaptiveCore::new(1, 4, 3).unwrap();
        let plan = names(&["w0", "w1", "w2"]);
        let close = names(&["w2", "w1"]);
        assert_eq!(core.recommend(1, &plan, &plan, &close), Decision::Same);
        assert_eq!(core.recommend(1, &plan, &plan, &close), Decision::Same);
        assert_eq!(
            core.recommend(1, &plan, &plan, &close),
            Decision::Down(names(&["w2", "w1"]))
        );
    }

    #[test]
    fn a_burst_between_idle_rounds_resets_the_count() {
        let mut core = AdaptiveCore::new(0, 4, 2).unwrap();
        let plan = names(&["w0", "w1"]);
        let close = names(&["w1"]);
        assert_eq!(core.recommend(1, &plan, &plan, &close), Decision::Same);
        // Work arrives: the size is right again, the count starts over.
        assert_eq!(core.recommend(2, &plan, &plan, &[]), Decision::Same);
        assert_eq!(core.recommend(1, &plan, &plan, &close), Decision::Same);
        assert_eq!(
            core.recommend(1, &plan, &plan, &close),
            Decision::Down(close.clone())
        );
    }

    #[test]
    fn a_worker_no_longer_named_starts_over() {
        let mut core = AdaptiveCore::new(0, 4, 2).unwrap();
        let plan = names(&["w0", "w1", "w2"]);
        assert_eq!(
            core.recommend(2, &plan, &plan, &names(&["w1"])),
            Decision::Same
        );
        // The scheduler now prefers w2 (w1 got data): w2 has been named once only.
        assert_eq!(
            core.recommend(2, &plan, &plan, &names(&["w2"])),
            Decision::Same
        );
        assert_eq!(
            core.recommend(2, &plan, &plan, &names(&["w2"])),
            Decision::Down(names(&["w2"]))
        );
    }

    #[test]
    fn workers_not_yet_arrived_go_first_and_minimum_holds() {
        let mut core = AdaptiveCore::new(2, 8, 1).unwrap();
        let plan = names(&["w0", "w1", "w2", "w3"]);
        let observed = names(&["w0", "w1", "w2"]);
        // Target 0 is clamped to 2: w3 (not arrived) then one scheduler pick.
        assert_eq!(
            core.recommend(0, &plan, &observed, &names(&["w1", "w0", "w2"])),
            Decision::Down(names(&["w3", "w1"]))
        );
    }

    #[test]
    fn rejects_minimum_above_maximum() {
        let e = AdaptiveCore::new(5, 2, 3).unwrap_err();
        assert!(e.contains("minimum (5)"), "{e}");
        let o = AdaptiveOptions {
            interval: Duration::ZERO,
            ..Default::default()
        };
        assert!(o.validate().unwrap_err().contains("interval"));
    }
}
