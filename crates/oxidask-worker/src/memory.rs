//! Memory management decisions, as Dask's worker makes them, on the process's memory.
//!
//! [`MemoryManager::observe`] is pure: given the process's resident memory, the bytes of
//! results held in memory ("managed" memory) and the time, it says what to do
//! ([`MemoryAction`]s). The worker samples `/proc/self/statm` every
//! `distributed.worker.memory.monitor-interval` on a thread of its own; each sample is an event
//! of the worker's state (which holds the manager and turns its actions into effects: spill
//! files to write, pause, resume, exit), and the thread carries the effects out — writing spill
//! files without the worker's lock; [`spill_order`] picks which results go to disk. Nothing here reads a clock or touches a file, so the thresholds, the
//! hysteresis and the pick order are tested with synthetic series.
//!
//! The thresholds are fractions of the memory limit (Dask's keys and defaults):
//! - `target` (0.6): results held beyond it spill, least recently used first (applied when a
//!   result is stored, by managed bytes);
//! - `spill` (0.7): when the *process* passes it, results spill until the process's memory,
//!   estimated as its resident memory minus what was spilled, is back under `target`;
//! - `pause` (0.8): above it the worker starts no task and fetches no data; it resumes once
//!   back at or below it;
//! - `terminate` (0.95): the worker exits so its nanny starts a fresh one.
//!
//! ```
//! use oxidask_worker::memory::{MemoryAction, MemoryManager, Thresholds};
//! use std::time::Duration;
//!
//! let mut m = MemoryManager::new(1000, Thresholds::default());
//! let t = Duration::ZERO;
//! assert_eq!(m.observe(500, 400, t), vec![]);
//! // Past 70% of the limit: spill 150 bytes of results (from 750 back to 600).
//! assert_eq!(m.observe(750, 400, t), vec![MemoryAction::Spill { bytes: 150 }]);
//! ```

use std::time::Duration;

/// Dask's memory thresholds, as fractions of the memory limit; `None` disables one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Thresholds {
    /// `distributed.worker.memory.target`: managed memory spills past it.
    pub target: Option<f64>,
    /// `distributed.worker.memory.spill`: process memory at which spilling starts.
    pub spill: Option<f64>,
    /// `distributed.worker.memory.pause`: process memory at which the worker pauses.
    pub pause: Option<f64>,
    /// `distributed.worker.memory.terminate`: process memory at which the worker exits.
    pub terminate: Option<f64>,
}

impl Default for Thresholds {
    /// Dask's defaults: 0.6, 0.7, 0.8, 0.95.
    fn default() -> Self {
        Thresholds {
            target: Some(0.6),
            spill: Some(0.7),
            pause: Some(0.8),
            terminate: Some(0.95),
        }
    }
}

impl Thresholds {
    /// The thresholds a configuration sets (`distributed.worker.memory.*`; `false` disables).
    pub fn from_config(cfg: &oxidask_config::Config) -> Thresholds {
        let f = |k: &str| cfg.fraction(&format!("distributed.worker.memory.{k}"));
        Thresholds {
            target: f("target"),
            spill: f("spill"),
            pause: f("pause"),
            terminate: f("terminate"),
        }
    }
}

/// What the worker must do after a memory sample.
#[derive(Clone, Debug, PartialEq)]
pub enum MemoryAction {
    /// Spill this many bytes of results to disk, least recently used first.
    Spill {
        /// Bytes to take out of memory (as many results as it takes, or all there are).
        bytes: u64,
    },
    /// Stop starting tasks and fetching data; tell the scheduler.
    Pause,
    /// Start tasks and fetch data again; tell the scheduler.
    Resume,
    /// Exit: the process is past the terminate threshold.
    Terminate,
    /// Log this warning (rate-limited).
    Warn(String),
    /// Ask the allocator to hand memory it holds freed back to the system (glibc's
    /// `malloc_trim`): the process is past `spill` with too few results in memory to get
    /// under it by spilling, and freed heap pages count in its resident memory until returned.
    /// Carried out after this sample's spill files are written; rate-limited.
    ReleaseFreed,
}

/// How often the same kind of warning is logged, at most.
const WARN_EVERY: Duration = Duration::from_secs(5);

/// How often the allocator is asked to return freed memory, at most (a trim walks the heap).
const RELEASE_EVERY: Duration = Duration::from_millis(500);

/// The decisions of the worker's memory monitor (see the module documentation).
#[derive(Clone, Debug)]
pub struct MemoryManager {
    limit: u64,
    thresholds: Thresholds,
    paused: bool,
    terminated: bool,
    last_unmanaged_warning: Option<Duration>,
    last_release: Option<Duration>,
}

impl MemoryManager {
    /// A manager for a process allowed `limit` bytes (0: no limit, never acts).
    pub fn new(limit: u64, thresholds: Thresholds) -> MemoryManager {
        MemoryManager {
            limit,
            thresholds,
            paused: false,
            terminated: false,
            last_unmanaged_warning: None,
            last_release: None,
        }
    }

    /// Whether the last sample left the worker paused.
    pub fn paused(&self) -> bool {
        self.paused
    }

    fn at(&self, fraction: Option<f64>) -> Option<u64> {
        fraction.map(|f| (self.limit as f64 * f) as u64)
    }

    /// One sample: the process's resident memory `rss`, the bytes of results held in memory
    /// `managed`, at time `now` (any monotonic origin). Returns what to do, in order.
    pub fn observe(&mut self, rss: u64, managed: u64, now: Duration) -> Vec<MemoryAction> {
        let mut out = Vec::new();
        if self.limit == 0 || self.terminated {
            return out;
        }
        let frac = rss as f64 / self.limit as f64;
        if self.at(self.thresholds.terminate).is_some_and(|t| rss > t) {
            self.terminated = true;
            out.push(MemoryAction::Terminate);
            return out;
        }
        if let Some(spill) = self.at(self.thresholds.spill) {
            if rss > spill {
                // Spill until the estimate (rss minus what goes to disk) is under target;
                // without a target, under the spill threshold itself.
                let goal = self.at(self.thresholds.target).unwrap_or(spill).min(spill);
                let excess = rss - goal;
                let bytes = excess.min(managed);
                if bytes > 0 {
                    out.push(MemoryAction::Spill { bytes });
                }
                if excess > managed && due(&mut self.last_release, now, RELEASE_EVERY) {
                    out.push(MemoryAction::ReleaseFreed);
                }
                if excess > managed && due(&mut self.last_unmanaged_warning, now, WARN_EVERY) {
                    out.push(MemoryAction::Warn(format!(
                        "unmanaged memory use is high: the process uses {} of its {} limit ({:.0}%) and only {} of it are results that can spill; this may be a memory leak or memory the allocator has not returned to the system",
                        human(rss),
                        human(self.limit),
                        frac * 100.0,
                        human(managed)
                    )));
                }
            }
        }
        if let Some(pause) = self.at(self.thresholds.pause) {
            if rss > pause && !self.paused {
                self.paused = true;
                out.push(MemoryAction::Pause);
            } else if rss <= pause && self.paused {
                self.paused = false;
                out.push(MemoryAction::Resume);
            }
        } else if self.paused {
            self.paused = false;
            out.push(MemoryAction::Resume);
        }
        out
    }
}

/// Whether `every` has passed since `last` (then `last` becomes `now`).
fn due(last: &mut Option<Duration>, now: Duration, every: Duration) -> bool {
    let due = last.is_none_or(|t| now.saturating_sub(t) >= every);
    if due {
        *last = Some(now);
    }
    due
}

/// A result that may spill: when it was last used, whether a local task still waits to read
/// it, its size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpillCandidate<K> {
    /// Its key.
    pub key: K,
    /// Use counter when it was last stored or read (larger: more recent).
    pub used: u64,
    /// A task on this worker still has to read it.
    pub wanted: bool,
    /// Bytes in memory.
    pub nbytes: u64,
}

/// The results to spill to free `bytes`: those no local task waits for before those that
/// one does, least recently used first within each group, as few as it takes.
///
/// ```
/// use oxidask_worker::memory::{spill_order, SpillCandidate};
/// let c = |key, used, wanted| SpillCandidate { key, used, wanted, nbytes: 10 };
/// let picks = spill_order(vec![c('a', 3, false), c('b', 1, true), c('c', 2, false)], 15);
/// assert_eq!(picks, vec!['c', 'a']);
/// ```
pub fn spill_order<K: Copy + Ord>(mut candidates: Vec<SpillCandidate<K>>, bytes: u64) -> Vec<K> {
    candidates.sort_unstable_by_key(|c| (c.wanted, c.used, c.key));
    let mut freed = 0u64;
    let mut picks = Vec::new();
    for c in candidates {
        if freed >= bytes {
            break;
        }
        freed += c.nbytes;
        picks.push(c.key);
    }
    picks
}

/// `1.5 GiB`-style sizes for log lines.
pub(crate) fn human(bytes: u64) -> String {
    let b = bytes as f64;
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut i = 0;
    let mut v = b;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.2} {}", units[i])
    }
}

/// Settings of a worker's memory monitor thread.
#[derive(Clone, Debug)]
pub(crate) struct MonitorConfig {
    pub limit: u64,
    pub thresholds: Thresholds,
    pub interval: Duration,
    /// Past `terminate`, exit the process (code [`crate::nanny::EXIT_MEMORY`]) rather than
    /// only stopping this worker (the CLI sets it; workers inside other programs do not).
    pub exit_process: bool,
}

/// Starts the thread that samples the process's memory every `interval` and carries out the
/// [`MemoryManager`]'s decisions; it ends when the worker stops.
pub(crate) fn spawn_monitor(
    shared: std::sync::Arc<crate::Shared>,
    cfg: MonitorConfig,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("oxidask-worker-memory".into())
        .spawn(move || monitor(&shared, cfg))
        .map(|_| ())
}

fn monitor(shared: &std::sync::Arc<crate::Shared>, cfg: MonitorConfig) {
    use crate::state::{Effect, Event};
    let start = std::time::Instant::now();
    shared.lock().monitor = Some(MemoryManager::new(cfg.limit, cfg.thresholds));
    loop {
        std::thread::sleep(cfg.interval);
        let rss = crate::cli::resident_bytes();
        let describe = || {
            format!(
                "process memory {} is {:.0}% of the {} limit",
                human(rss),
                rss as f64 * 100.0 / cfg.limit as f64,
                human(cfg.limit)
            )
        };
        let mut st = shared.lock();
        if st.stopping {
            return;
        }
        let event = Event::MemorySample {
            rss,
            at: start.elapsed(),
        };
        let effects = st.handle(event, crate::state::now_us());
        let mut terminating = false;
        for e in &effects {
            match e {
                Effect::Paused(true) => shared.log_at(
                    tracing::Level::WARN,
                    format!(
                        "pausing: {}; no task starts and no data is fetched until it is back under distributed.worker.memory.pause",
                        describe()
                    ),
                ),
                Effect::Paused(false) => shared.log(format!("resuming: {}", describe())),
                Effect::Terminate => terminating = true,
                _ => {}
            }
        }
        // Spill files are written on this thread, without the lock.
        shared.carry_out(st, effects);
        if terminating {
            let why = format!("{}, past distributed.worker.memory.terminate", describe());
            terminate(shared, &cfg, &why);
            return;
        }
    }
}

/// Past the terminate threshold: the process exits with the code its nanny restarts on (the
/// spill directory removed first), or — a worker inside another program — the worker stops.
fn terminate(shared: &crate::Shared, cfg: &MonitorConfig, why: &str) {
    if cfg.exit_process {
        let nanny = std::env::var_os(crate::nanny::NANNY_ENV).is_some();
        let line = if nanny {
            format!(
                "{}: exiting: {why}; its nanny starts a fresh worker",
                shared.name
            )
        } else {
            format!(
                "{}: exiting: {why}; no nanny restarts it (run `oxidask worker` without --no-nanny to have one)",
                shared.name
            )
        };
        tracing::error!("{line}");
        eprintln!("oxidask-worker {line}");
        if let Some(dir) = shared.lock().spill.as_ref().map(|s| s.dir.clone()) {
            let _ = std::fs::remove_dir_all(dir);
        }
        std::process::exit(crate::nanny::EXIT_MEMORY);
    }
    shared.log_at(tracing::Level::WARN, format!("stopping: {why}"));
    shared.stop.notify_one();
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn actions(m: &mut MemoryManager, series: &[(u64, u64)]) -> Vec<Vec<MemoryAction>> {
        series
            .iter()
            .enumerate()
            .map(|(i, &(rss, managed))| m.observe(rss, managed, S * i as u32))
            .collect()
    }

    #[test]
    fn below_the_spill_threshold_nothing_happens() {
        let mut m = MemoryManager::new(1000, Thresholds::default());
        for rss in [0, 100, 600, 699, 700] {
            assert_eq!(m.observe(rss, rss, Duration::ZERO), vec![], "rss {rss}");
        }
        let mut none = MemoryManager::new(0, Thresholds::default());
        assert_eq!(none.observe(u64::MAX, 10, Duration::ZERO), vec![]);
    }

    #[test]
    fn past_spill_it_spills_back_to_target_as_far_as_results_allow() {
        let mut m = MemoryManager::new(1000, Thresholds::default());
        // 750 of 1000: 150 over the 600 target, 500 bytes of results to take it from.
        assert_eq!(
            m.observe(750, 500, Duration::ZERO),
            vec![MemoryAction::Spill { bytes: 150 }]
        );
        // Hysteresis: once between target and spill, no more spilling.
        assert_eq!(m.observe(650, 350, S), vec![]);
        // Too little managed memory: spill what there is, ask the allocator for freed
        // memory, and warn, once per 5 s.
        let r = m.observe(760, 40, S * 2);
        assert_eq!(r[0], MemoryAction::Spill { bytes: 40 });
        assert_eq!(r[1], MemoryAction::ReleaseFreed);
        assert!(matches!(&r[2], MemoryAction::Warn(w) if w.contains("unmanaged memory")));
        assert_eq!(
            m.observe(760, 0, S * 3),
            vec![MemoryAction::ReleaseFreed],
            "no results, warning rate-limited"
        );
        assert!(matches!(
            &m.observe(760, 0, S * 8)[..],
            [MemoryAction::ReleaseFreed, MemoryAction::Warn(_)]
        ));
    }

    /// The bug: a worker of a program on glibc's allocator spilled every result, yet freed
    /// heap pages kept its resident memory past `pause`, so it stayed paused and its graph
    /// never finished (seen in `p2p_processes`). Past `spill` with too few results to spill,
    /// the manager asks the allocator to return freed memory, at most every 500 ms, and the
    /// worker resumes once the process is back under `pause`.
    #[test]
    fn a_worker_paused_by_freed_but_unreturned_memory_stayed_paused() {
        let mut m = MemoryManager::new(1000, Thresholds::default());
        let ms = Duration::from_millis;
        let r = m.observe(850, 0, ms(0));
        assert!(r.contains(&MemoryAction::ReleaseFreed) && r.contains(&MemoryAction::Pause));
        // 100 ms later: still high, but the last request is too recent.
        assert!(!m
            .observe(850, 0, ms(100))
            .contains(&MemoryAction::ReleaseFreed));
        assert!(m
            .observe(850, 0, ms(600))
            .contains(&MemoryAction::ReleaseFreed));
        // Enough results to spill back under target: spilling alone does it.
        assert_eq!(
            m.observe(850, 400, ms(1200)),
            vec![MemoryAction::Spill { bytes: 250 }]
        );
        // The allocator returned the memory: the worker resumes.
        assert_eq!(m.observe(500, 0, ms(1300)), vec![MemoryAction::Resume]);
        assert!(!m.paused());
    }

    #[test]
    fn pause_above_80_percent_resume_at_or_below_it_with_no_repeats() {
        let mut m = MemoryManager::new(1000, Thresholds::default());
        let got = actions(
            &mut m,
            &[
                (500, 0),
                (810, 0),
                (900, 0),
                (801, 0),
                (800, 0),
                (790, 0),
                (850, 0),
            ],
        );
        let pauses: Vec<(usize, &MemoryAction)> = got
            .iter()
            .enumerate()
            .flat_map(|(i, a)| a.iter().map(move |a| (i, a)))
            .filter(|(_, a)| matches!(a, MemoryAction::Pause | MemoryAction::Resume))
            .collect();
        assert_eq!(
            pauses,
            vec![
                (1, &MemoryAction::Pause),
                (4, &MemoryAction::Resume),
                (6, &MemoryAction::Pause)
            ]
        );
        assert!(m.paused());
    }

    #[test]
    fn terminate_above_95_percent_once() {
        let mut m = MemoryManager::new(1000, Thresholds::default());
        let got = actions(&mut m, &[(940, 400), (951, 400), (990, 0), (100, 0)]);
        assert_eq!(
            got[0],
            vec![MemoryAction::Spill { bytes: 340 }, MemoryAction::Pause]
        );
        assert_eq!(got[1], vec![MemoryAction::Terminate]);
        assert!(got[2].is_empty() && got[3].is_empty(), "{got:?}");
    }

    #[test]
    fn disabled_thresholds_do_nothing() {
        let off = Thresholds {
            target: None,
            spill: None,
            pause: None,
            terminate: None,
        };
        let mut m = MemoryManager::new(1000, off);
        assert_eq!(m.observe(2000, 1000, Duration::ZERO), vec![]);
        // Spill without a target spills back to the spill threshold.
        let mut m = MemoryManager::new(
            1000,
            Thresholds {
                target: None,
                ..Thresholds::default()
            },
        );
        assert_eq!(
            m.observe(750, 500, Duration::ZERO),
            vec![MemoryAction::Spill { bytes: 50 }]
        );
    }

    #[test]
    fn spill_picks_unwanted_least_recently_used_first_and_stops_when_enough() {
        let c = |key: u32, used, wanted, nbytes| SpillCandidate {
            key,
            used,
            wanted,
            nbytes,
        };
        let cands = vec![
            c(1, 50, false, 100),
            c(2, 10, true, 100),
            c(3, 30, false, 100),
            c(4, 20, false, 100),
            c(5, 5, true, 100),
        ];
        assert_eq!(spill_order(cands.clone(), 0), Vec::<u32>::new());
        assert_eq!(spill_order(cands.clone(), 1), vec![4]);
        assert_eq!(spill_order(cands.clone(), 250), vec![4, 3, 1]);
        assert_eq!(spill_order(cands.clone(), 10_000), vec![4, 3, 1, 5, 2]);
    }

    #[test]
    fn thresholds_come_from_the_configuration() {
        let t = Thresholds::from_config(&oxidask_config::Config::defaults());
        assert_eq!(t, Thresholds::default());
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human(10), "10 B");
        assert_eq!(human(3 << 29), "1.50 GiB");
    }
}
