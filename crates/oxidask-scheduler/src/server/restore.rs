//! The core thread's side of the journal ([`crate::journal`]): recording events, and the
//! resumption of a restarted scheduler.
//!
//! After a replay the scheduler knows the graphs but holds nothing. Workers that were
//! connected reconnect and report what they hold (`Holding`); if the first of them were
//! handled at once it would be given tasks whose results the others hold, and compute them
//! again. So the workers' events are held back (the [`Gate`]) until every worker the journal
//! named has reconnected and spoken, or [`WORKER_WAIT`] passed; then they are handled in one
//! batch, and a task given to one worker and taken back in the same batch (another worker
//! reported holding it) is never sent ([`drop_cancelled_computes`]).
//!
//! Restored clients are kept as connected for [`CLIENT_GRACE`], so their futures keep their
//! tasks alive until they (or another client) ask for them again; then they are released.

use std::time::{Duration, Instant};

use oxidask_protocol::{ToWorker, WireKey};
use rustc_hash::{FxHashMap, FxHashSet};

use super::Inbound;
use crate::journal::Journal;
use crate::state::{Effect, Event, SchedulerState};

/// How long a restarted scheduler waits for the workers the journal named before it
/// schedules with those that came back.
pub const WORKER_WAIT: Duration = Duration::from_secs(10);

/// How long a restored client's futures are kept for it to reconnect.
pub const CLIENT_GRACE: Duration = Duration::from_secs(60);

/// Handles one event, recording it in the journal first (if there is one).
pub(crate) fn feed(
    state: &mut SchedulerState,
    journal: &mut Option<Journal>,
    e: Event,
    now: Instant,
    effects: &mut Vec<Effect>,
) {
    match journal.as_mut() {
        Some(j) => {
            j.record(&e);
            state.handle_into(e, now, effects);
            j.after(state);
        }
        None => state.handle_into(e, now, effects),
    }
}

/// Holds workers' events back while a restarted scheduler waits for its workers.
pub(crate) struct Gate {
    expected: FxHashSet<String>,
    arrived: FxHashSet<String>,
    conns: FxHashMap<u64, String>,
    deadline: Instant,
    pub(crate) held: Vec<Inbound>,
}

impl Gate {
    /// A gate waiting for `workers` until `now + WORKER_WAIT`; `None` if there are none.
    pub(crate) fn new(workers: &[String], now: Instant) -> Option<Gate> {
        (!workers.is_empty()).then(|| Gate {
            expected: workers.iter().cloned().collect(),
            arrived: FxHashSet::default(),
            conns: FxHashMap::default(),
            deadline: now + WORKER_WAIT,
            held: Vec::new(),
        })
    }

    /// Keeps a worker's message (returning `None`), or gives anything else back.
    pub(crate) fn intercept(&mut self, msg: Inbound) -> Option<Inbound> {
        let conn = match &msg {
            Inbound::Open {
                event: Event::WorkerJoined { conn, info },
                ..
            } => {
                self.conns.insert(*conn, info.name.clone());
                Some(*conn)
            }
            Inbound::Events(es, _) => match es.first() {
                Some(Event::FromWorker { conn, .. }) if self.conns.contains_key(conn) => {
                    // A worker's first batch after its hello carries what it holds (or,
                    // holding nothing, its first heartbeat): it has spoken.
                    if let Some(name) = self.conns.get(conn) {
                        self.arrived.insert(name.clone());
                    }
                    Some(*conn)
                }
                _ => None,
            },
            Inbound::Event(Event::FromWorker { conn, .. })
            | Inbound::Event(Event::WorkerLeft { conn, .. }) => {
                self.conns.contains_key(conn).then_some(*conn)
            }
            _ => None,
        };
        match conn {
            Some(_) => {
                self.held.push(msg);
                None
            }
            None => Some(msg),
        }
    }

    /// Whether to stop waiting: every expected worker spoke, or the wait is over.
    pub(crate) fn ready(&self, now: Instant) -> bool {
        now >= self.deadline || self.expected.iter().all(|w| self.arrived.contains(w))
    }

    /// The expected workers that did not come back.
    pub(crate) fn missing(&self) -> Vec<String> {
        let mut m: Vec<String> = self
            .expected
            .iter()
            .filter(|w| !self.arrived.contains(*w))
            .cloned()
            .collect();
        m.sort();
        m
    }
}

/// Drops each `Compute` whose key a later `Free` to the same worker in the same batch takes
/// back (with that key from the `Free`): the worker would start it only to drop it.
pub(crate) fn drop_cancelled_computes(effects: &mut Vec<Effect>) {
    let mut computes: FxHashMap<(u64, WireKey), usize> = FxHashMap::default();
    let mut dead = vec![false; effects.len()];
    for (i, e) in effects.iter_mut().enumerate() {
        match e {
            Effect::ToWorker {
                conn,
                msg: ToWorker::Compute { task, .. },
            } => {
                computes.insert((*conn, task.key), i);
            }
            Effect::ToWorker {
                conn,
                msg: ToWorker::Free { keys },
            } => {
                let c = *conn;
                keys.retain(|k| match computes.remove(&(c, *k)) {
                    Some(j) => {
                        dead[j] = true;
                        false
                    }
                    None => true,
                });
                if keys.is_empty() {
                    dead[i] = true;
                }
            }
            _ => {}
        }
    }
    let mut i = 0;
    effects.retain(|_| {
        let keep = !dead[i];
        i += 1;
        keep
    });
}
