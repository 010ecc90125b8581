//! Performance reports: one run of a cluster (its task stream, the time spent per task
//! prefix, the workers' memory over time, the transfers and spills) as a single
//! self-contained HTML file that opens offline, as Dask's `performance_report` writes.
//!
//! A client records the run (see `Client::performance_report` in `oxidask-client`); this
//! module summarises the records and renders the page (the same drawing code as the live
//! dashboard, inlined with the data).
//!
//! ```
//! use oxidask_dashboard::report::{Report, ReportWorker};
//! let report = Report {
//!     title: "my run".into(),
//!     start_ms: 0.0,
//!     stop_ms: 1000.0,
//!     workers: vec![ReportWorker { name: "w0".into(), nthreads: 2, memory_limit: 0 }],
//!     ..Report::default()
//! };
//! let html = report.render();
//! assert!(html.contains("my run") && !html.contains("<script src"));
//! ```

use std::collections::BTreeMap;

use oxidask_protocol::{ActivityKind, StreamRecord};
use serde_json::{json, Value};

use crate::http::{DRAW_JS, STYLE_CSS};

const REPORT_HTML: &str = include_str!("../assets/report.html");
const REPORT_JS: &str = include_str!("../assets/report.js");

/// A worker that took part.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReportWorker {
    /// Its name.
    pub name: String,
    /// Its threads.
    pub nthreads: u32,
    /// Its memory limit in bytes (0: none).
    pub memory_limit: u64,
}

/// One worker's memory at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkerMemory {
    /// The worker's name.
    pub worker: String,
    /// Bytes of results held in memory.
    pub managed: u64,
    /// The process's resident memory.
    pub rss: u64,
    /// Bytes of results spilled to disk.
    pub spilled: u64,
}

/// The cluster's memory at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MemorySample {
    /// When, in milliseconds since the Unix epoch.
    pub t_ms: f64,
    /// Each worker's memory.
    pub workers: Vec<WorkerMemory>,
}

/// One run, as recorded; [`Report::render`] makes the page.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// The page's title.
    pub title: String,
    /// When recording started, milliseconds since the Unix epoch.
    pub start_ms: f64,
    /// When it stopped.
    pub stop_ms: f64,
    /// The workers seen.
    pub workers: Vec<ReportWorker>,
    /// Everything that ran, moved or spilled, oldest first.
    pub stream: Vec<StreamRecord>,
    /// The workers' memory, sampled.
    pub memory: Vec<MemorySample>,
    /// Records the scheduler had already dropped from its task stream (its ring of 100,000)
    /// before they could be read; not in `stream`.
    pub lost: u64,
}

/// Time spent on the tasks of one prefix.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PrefixTime {
    /// The key prefix (`inc`, `read-parquet`…).
    pub prefix: String,
    /// Tasks run.
    pub tasks: u64,
    /// Seconds of compute, summed over the tasks.
    pub seconds: f64,
    /// Bytes of results.
    pub nbytes: u64,
}

/// Data movement of one kind (transfers between workers, or spills).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Movement {
    /// Times it happened.
    pub count: u64,
    /// Bytes moved.
    pub bytes: u64,
    /// Seconds spent, summed.
    pub seconds: f64,
}

impl Movement {
    fn add(&mut self, r: &StreamRecord) {
        self.count += 1;
        self.bytes += r.nbytes;
        self.seconds += seconds(r);
    }
}

fn seconds(r: &StreamRecord) -> f64 {
    r.stop_us.saturating_sub(r.start_us) as f64 / 1e6
}

impl Report {
    /// Compute time per task prefix, the most time first.
    pub fn prefix_times(&self) -> Vec<PrefixTime> {
        let mut by: BTreeMap<&str, PrefixTime> = BTreeMap::new();
        for r in self
            .stream
            .iter()
            .filter(|r| r.kind == ActivityKind::Compute)
        {
            let p = r.key.0.prefix_str();
            let e = by.entry(p).or_insert_with(|| PrefixTime {
                prefix: p.to_owned(),
                ..PrefixTime::default()
            });
            e.tasks += 1;
            e.seconds += seconds(r);
            e.nbytes += r.nbytes;
        }
        let mut out: Vec<PrefixTime> = by.into_values().collect();
        out.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
        out
    }

    /// Transfers into each worker, by worker name.
    pub fn transfers(&self) -> BTreeMap<String, Movement> {
        self.movement(|k| k == ActivityKind::Transfer)
    }

    /// Spills (writes and reads back) on each worker, by worker name.
    pub fn spills(&self) -> BTreeMap<String, Movement> {
        self.movement(|k| matches!(k, ActivityKind::SpillOut | ActivityKind::SpillIn))
    }

    fn movement(&self, which: impl Fn(ActivityKind) -> bool) -> BTreeMap<String, Movement> {
        let mut out: BTreeMap<String, Movement> = BTreeMap::new();
        for r in self.stream.iter().filter(|r| which(r.kind)) {
            out.entry(r.worker.clone()).or_default().add(r);
        }
        out
    }

    /// The page: one HTML file with its data, styles and scripts inlined (no network).
    pub fn render(&self) -> String {
        // `</` cannot end the script element early once escaped.
        let data = self.data().to_string().replace("</", "<\\/");
        REPORT_HTML
            .replace("{{TITLE}}", &crate::http::html_escape(&self.title))
            .replace("{{STYLE}}", STYLE_CSS)
            .replace("{{DRAW}}", DRAW_JS)
            .replace("{{REPORT}}", REPORT_JS)
            .replace("{{DATA}}", &data)
    }

    /// The data the page draws, as JSON.
    pub fn data(&self) -> Value {
        let movement = |m: BTreeMap<String, Movement>| -> Vec<Value> {
            m.into_iter()
                .map(|(w, m)| json!({"worker": w, "count": m.count, "bytes": m.bytes, "seconds": m.seconds}))
                .collect()
        };
        let mut memory: BTreeMap<&str, Vec<[u64; 3]>> = BTreeMap::new();
        for (i, s) in self.memory.iter().enumerate() {
            for w in &s.workers {
                // A worker that joined late has zeros before it was seen.
                let series = memory.entry(&w.worker).or_insert_with(|| vec![[0; 3]; i]);
                series.resize(i, [0; 3]);
                series.push([w.managed, w.rss, w.spilled]);
            }
        }
        for series in memory.values_mut() {
            series.resize(self.memory.len(), [0; 3]);
        }
        let compute: f64 = self
            .stream
            .iter()
            .filter(|r| r.kind == ActivityKind::Compute)
            .map(seconds)
            .sum();
        json!({
            "title": self.title,
            "start": self.start_ms,
            "stop": self.stop_ms,
            "lost": self.lost,
            "compute_seconds": compute,
            "workers": self.workers.iter().map(|w| json!([w.name, w.nthreads, w.memory_limit])).collect::<Vec<_>>(),
            "stream": self.stream.iter().map(crate::view::record_json).collect::<Vec<_>>(),
            "prefixes": self.prefix_times().iter().map(|p| json!({
                "prefix": p.prefix, "tasks": p.tasks, "seconds": p.seconds, "nbytes": p.nbytes,
            })).collect::<Vec<_>>(),
            "transfers": movement(self.transfers()),
            "spills": movement(self.spills()),
            "memory": {
                "t": self.memory.iter().map(|s| s.t_ms).collect::<Vec<_>>(),
                "workers": memory,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxidask_core::{Key, Token};
    use oxidask_protocol::WireKey;

    fn rec(
        prefix: &str,
        i: u128,
        kind: ActivityKind,
        worker: &str,
        ms: (u64, u64),
    ) -> StreamRecord {
        StreamRecord {
            key: WireKey(Key::new(prefix, Token::from_u128(i))),
            kind,
            worker: worker.into(),
            thread: 0,
            start_us: ms.0 * 1000,
            stop_us: ms.1 * 1000,
            nbytes: 100,
        }
    }

    fn sample() -> Report {
        use ActivityKind::*;
        Report {
            title: "a <b> run".into(),
            start_ms: 0.0,
            stop_ms: 100.0,
            workers: vec![ReportWorker {
                name: "a".into(),
                nthreads: 1,
                memory_limit: 0,
            }],
            stream: vec![
                rec("inc", 1, Compute, "a", (0, 10)),
                rec("inc", 2, Compute, "b", (0, 30)),
                rec("sum", 3, Compute, "a", (30, 35)),
                rec("inc", 2, Transfer, "a", (20, 28)),
                rec("inc", 1, SpillOut, "a", (40, 41)),
            ],
            memory: vec![
                MemorySample {
                    t_ms: 0.0,
                    workers: vec![WorkerMemory {
                        worker: "a".into(),
                        managed: 1,
                        ..WorkerMemory::default()
                    }],
                },
                MemorySample {
                    t_ms: 50.0,
                    workers: vec![
                        WorkerMemory {
                            worker: "a".into(),
                            managed: 2,
                            ..WorkerMemory::default()
                        },
                        WorkerMemory {
                            worker: "b".into(),
                            managed: 5,
                            ..WorkerMemory::default()
                        },
                    ],
                },
            ],
            lost: 0,
        }
    }

    #[test]
    fn time_per_prefix_counts_compute_only() {
        let p = sample().prefix_times();
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].prefix.as_str(), p[0].tasks), ("inc", 2));
        assert!((p[0].seconds - 0.040).abs() < 1e-9);
        assert_eq!((p[1].prefix.as_str(), p[1].tasks), ("sum", 1));
        let t = sample().transfers();
        assert_eq!(t.len(), 1);
        assert_eq!(t["a"].count, 1);
        assert!((t["a"].seconds - 0.008).abs() < 1e-9);
        assert_eq!(sample().spills()["a"].bytes, 100);
    }

    #[test]
    fn memory_series_line_up_with_the_samples() {
        let d = sample().data();
        assert_eq!(d["memory"]["t"].as_array().unwrap().len(), 2);
        // b joined at the second sample: a zero before.
        assert_eq!(d["memory"]["workers"]["b"], json!([[0, 0, 0], [5, 0, 0]]));
        assert_eq!(d["memory"]["workers"]["a"], json!([[1, 0, 0], [2, 0, 0]]));
    }

    #[test]
    fn the_page_is_self_contained_and_escaped() {
        let mut r = sample();
        r.stream.push(rec(
            "x</script><script>alert(1)",
            9,
            ActivityKind::Compute,
            "a",
            (1, 2),
        ));
        let html = r.render();
        assert!(html.contains("a &lt;b&gt; run"));
        assert!(!html.contains("</script><script>alert"));
        assert!(!html.contains("src=\"http") && !html.contains("<script src"));
        assert!(html.contains("function drawStream"));
    }
}
