//! The scheduler process's own CPU and memory, read from `/proc` (zero where it is missing).

use std::time::Instant;

/// CPU use between calls, percent of one core, and resident memory.
pub(crate) struct ProcessMeter {
    last: Option<(Instant, u64)>,
    ticks_per_second: f64,
}

impl ProcessMeter {
    pub(crate) fn new() -> ProcessMeter {
        ProcessMeter {
            last: None,
            // Linux's USER_HZ is 100 on every platform Rust supports there.
            ticks_per_second: 100.0,
        }
    }

    /// `(cpu percent of one core since the last call, resident bytes)`.
    pub(crate) fn sample(&mut self) -> (f64, u64) {
        let now = Instant::now();
        let ticks = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| {
                let rest = &s[s.rfind(')')? + 2..];
                let f: Vec<&str> = rest.split_whitespace().collect();
                Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
            });
        let rss = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
            .map_or(0, |pages| pages * 4096);
        let Some(ticks) = ticks else {
            return (0.0, rss);
        };
        let cpu = match self.last {
            Some((t0, k0)) => {
                let secs = now.duration_since(t0).as_secs_f64();
                if secs > 0.0 {
                    ticks.saturating_sub(k0) as f64 / self.ticks_per_second / secs * 100.0
                } else {
                    0.0
                }
            }
            None => 0.0,
        };
        self.last = Some((now, ticks));
        (cpu, rss)
    }
}
