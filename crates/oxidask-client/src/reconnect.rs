//! What a client needs to pick up after its connection to the scheduler drops: the graphs
//! it sent whose results it still waits for, the requests it still waits on, and the
//! backoff between attempts to reconnect.
//!
//! The scheduler keeps a client's futures for `distributed.scheduler.client-reconnect-grace`
//! after its connection drops. Whatever was on the wire when it dropped may or may not have
//! arrived, so on reconnection the client sends again: every graph with a future still
//! pending (tasks the scheduler knows are skipped, so this is idempotent), then every other
//! key it holds (the scheduler answers with the status of those finished or failed), then
//! the parts of a graph it was in the middle of sending, then the idempotent requests still
//! unanswered. Requests that are not idempotent (coordination, restart, retire...) fail
//! with an error instead of being repeated.
//!
//! Known gap: a release written just before the drop may be lost; the scheduler then keeps
//! that key for this client until the client closes.

use std::time::Duration;

use oxidask_core::Key;
use oxidask_protocol::{SubmitOptions, ToScheduler, WireKey};
use rustc_hash::FxHashMap;

use crate::client::{ClientState, KeyStatus};

/// The first wait between attempts to reconnect; doubled after each failure.
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between attempts to reconnect.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The wait after `d`.
pub(crate) fn next_backoff(d: Duration) -> Duration {
    (d * 2).min(MAX_BACKOFF)
}

/// Graphs sent on this client's connections whose results may still be needed.
#[derive(Default)]
pub(crate) struct ResendLog {
    /// Complete graphs (their parts, the last one carrying the wanted keys), oldest first.
    graphs: Vec<Vec<ToScheduler>>,
    /// Parts of the graph being sent (`more: true`), its last part still to come.
    current: Vec<ToScheduler>,
    /// `graphs.len()` after the last pruning (pruned again once it has doubled).
    pruned_len: usize,
}

impl ResendLog {
    /// Notes a message as it is written; only graphs are kept.
    pub(crate) fn record(&mut self, msg: &ToScheduler, st: &ClientState) {
        let ToScheduler::UpdateGraph { more, .. } = msg else {
            return;
        };
        self.current.push(msg.clone());
        if !*more {
            let graph = std::mem::take(&mut self.current);
            self.graphs.push(graph);
            if self.graphs.len() > 2 * self.pruned_len + 16 {
                self.prune(st);
            }
        }
    }

    /// Forgets graphs none of whose wanted keys is still held and pending.
    fn prune(&mut self, st: &ClientState) {
        self.graphs.retain(|g| !still_wanted(g, st).is_empty());
        self.pruned_len = self.graphs.len();
    }

    /// What to send on a new connection, in order (see the module doc).
    pub(crate) fn replay(&mut self, st: &ClientState) -> Vec<ToScheduler> {
        self.prune(st);
        let mut out = Vec::new();
        for g in &self.graphs {
            let wanted = still_wanted(g, st);
            let (last, parts) = g.split_last().expect("a graph has a last part");
            out.extend(parts.iter().cloned());
            if let ToScheduler::UpdateGraph { tasks, options, .. } = last {
                out.push(ToScheduler::UpdateGraph {
                    tasks: tasks.clone(),
                    wanted,
                    options: options.clone(),
                    more: false,
                });
            }
        }
        // Finished or failed keys (the pending ones of sent graphs are wanted again above;
        // those of graphs still queued would be unknown before their graph arrives).
        let mut held: Vec<WireKey> = st
            .keys
            .iter()
            .filter(|(_, e)| e.status != KeyStatus::Pending)
            .map(|(k, _)| WireKey::from(k))
            .collect();
        held.sort();
        if !held.is_empty() {
            out.push(ToScheduler::UpdateGraph {
                tasks: Vec::new(),
                wanted: held,
                options: SubmitOptions::default(),
                more: false,
            });
        }
        out.extend(self.current.iter().cloned());
        out
    }
}

/// The wanted keys of graph `g` that this client still holds and waits for.
fn still_wanted(g: &[ToScheduler], st: &ClientState) -> Vec<WireKey> {
    let Some(ToScheduler::UpdateGraph { wanted, .. }) = g.last() else {
        return Vec::new();
    };
    wanted
        .iter()
        .filter(|wk| {
            wk.to_key().is_ok_and(|k: Key| {
                st.keys
                    .get(&k)
                    .is_some_and(|e| e.status == KeyStatus::Pending)
            })
        })
        .copied()
        .collect()
}

/// Whether a request may be sent again after a reconnection without changing its effect
/// (it only asks): such requests are repeated, the others fail.
pub(crate) fn idempotent(msg: &ToScheduler) -> bool {
    matches!(
        msg,
        ToScheduler::WhoHas { .. }
            | ToScheduler::Summary { .. }
            | ToScheduler::Story { .. }
            | ToScheduler::TaskStream { .. }
            | ToScheduler::Logs { .. }
            | ToScheduler::Gather { .. }
            | ToScheduler::AdaptiveTarget { .. }
    )
}

/// Unanswered idempotent requests by request id (sent again on a new connection).
pub(crate) type PendingRequests = FxHashMap<u64, ToScheduler>;

/// A random id for a new client (the same on every connection it makes).
pub(crate) fn new_client_id() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let half = |salt: u64| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(salt);
        h.write_u32(std::process::id());
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.finish() as u128
    };
    (half(1) << 64 | half(2)).max(1)
}
