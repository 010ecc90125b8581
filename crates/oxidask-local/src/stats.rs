//! What a run did: tasks, fused steps, and how many results were held at once.

use std::time::Duration;

/// Measurements of one computation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Tasks in the culled plan.
    pub tasks: usize,
    /// Units of work scheduled on their own (tasks minus later steps of fused chains).
    pub units: usize,
    /// The most results held at the same time (intermediates and outputs not yet returned).
    pub peak_live_values: usize,
    /// The most bytes held at the same time, by the values' `nbytes`.
    pub peak_live_bytes: usize,
    /// Wall-clock time from plan to results.
    pub elapsed: Duration,
}
