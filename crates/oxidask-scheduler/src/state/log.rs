//! The transition log: every state change with the stimulus that caused it, kept in a ring of
//! bounded size so a long-running scheduler does not grow.

use std::collections::VecDeque;

use oxidask_core::Key;

/// What caused a batch of transitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stimulus {
    /// Increases with every event the scheduler handles.
    pub id: u64,
    /// What kind of event.
    pub kind: &'static str,
    /// The connection it came from (0: the scheduler itself).
    pub conn: u64,
}

/// One transition.
#[derive(Clone, Copy, Debug)]
pub struct Transition {
    /// The task.
    pub key: Key,
    /// State before.
    pub from: &'static str,
    /// State after (`forgotten` when the record was dropped).
    pub to: &'static str,
    /// What caused it.
    pub stimulus: Stimulus,
    /// Seconds since the scheduler started.
    pub at: f64,
}

/// A ring of the latest transitions.
pub struct TransitionLog {
    ring: VecDeque<Transition>,
    capacity: usize,
}

impl TransitionLog {
    /// A log keeping the last `capacity` transitions.
    pub fn new(capacity: usize) -> TransitionLog {
        TransitionLog {
            ring: VecDeque::with_capacity(capacity.min(1 << 16)),
            capacity,
        }
    }

    /// Records one transition.
    #[inline]
    pub fn push(&mut self, t: Transition) {
        if self.capacity == 0 {
            return;
        }
        if self.ring.len() == self.capacity {
            self.ring.pop_front();
        }
        self.ring.push_back(t);
    }

    /// The transitions of `key` still in the log, oldest first.
    pub fn story(&self, key: &Key) -> Vec<Transition> {
        self.ring
            .iter()
            .filter(|t| t.key == *key)
            .copied()
            .collect()
    }

    /// Every transition still in the log, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Transition> {
        self.ring.iter()
    }
}

impl Transition {
    /// One line: `key: from -> to (stimulus kind #id from conn) at t`.
    pub fn line(&self) -> String {
        format!(
            "{}: {} -> {} ({} #{} conn {}) at {:.6}s",
            self.key,
            self.from,
            self.to,
            self.stimulus.kind,
            self.stimulus.id,
            self.stimulus.conn,
            self.at
        )
    }
}
