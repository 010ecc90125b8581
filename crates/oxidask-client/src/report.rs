//! Recording one run for a performance report (Dask's `performance_report`) or its task
//! stream (Dask's `get_task_stream`).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use oxidask_core::Error;
use oxidask_dashboard::report::{MemorySample, Report, ReportWorker, WorkerMemory};
use oxidask_protocol::StreamRecord;

use crate::client::Client;
use crate::error::{scheduler_error, ClientError};

/// How often the recorder samples the workers' memory and drains the task stream.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

#[derive(Default)]
struct Recorded {
    cursor: u64,
    stream: Vec<StreamRecord>,
    memory: Vec<MemorySample>,
    workers: Vec<ReportWorker>,
    lost: u64,
    error: Option<String>,
}

impl Recorded {
    /// Reads the task stream from the cursor on, noting records the scheduler dropped.
    fn drain(&mut self, client: &Client) -> Result<(), Error> {
        loop {
            let (records, next) = client.task_stream(self.cursor)?;
            let got = records.len() as u64;
            // The scheduler starts from its oldest record if ours fell out of its ring.
            self.lost += next.saturating_sub(self.cursor).saturating_sub(got);
            self.cursor = next;
            self.stream.extend(records);
            if got == 0 {
                return Ok(());
            }
        }
    }

    fn sample(&mut self, client: &Client) -> Result<(), Error> {
        let s = client.summary()?;
        for w in &s.workers {
            if !self.workers.iter().any(|k| k.name == w.name) {
                self.workers.push(ReportWorker {
                    name: w.name.clone(),
                    nthreads: w.nthreads,
                    memory_limit: w.memory_limit,
                });
            }
        }
        self.memory.push(MemorySample {
            t_ms: now_ms(),
            workers: s
                .workers
                .iter()
                .map(|w| WorkerMemory {
                    worker: w.name.clone(),
                    managed: w.memory,
                    rss: w.rss,
                    spilled: w.spilled,
                })
                .collect(),
        });
        Ok(())
    }
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

/// Records what a cluster does from its start until [`finish`](Self::finish) or
/// [`save`](Self::save): every task run, transfer and spill (the scheduler's task stream,
/// read often enough that its ring of 100,000 records does not drop any in most runs), and
/// the workers' memory four times a second. Made by [`Client::performance_report`].
///
/// ```
/// use oxidask_client::LocalCluster;
///
/// #[oxidask_core::task(crate = oxidask_core)]
/// fn inc(x: i64) -> i64 {
///     x + 1
/// }
///
/// let cluster = LocalCluster::builder().workers(1).dashboard_address(None).start().unwrap();
/// let client = cluster.client().unwrap();
/// let recording = client.performance_report().unwrap();
/// let futures = client.map(0..10i64, |i| inc(i)).unwrap();
/// client.gather(&futures).unwrap();
/// let path = std::env::temp_dir().join(format!("oxidask-doc-report-{}.html", std::process::id()));
/// let report = recording.save(&path).unwrap();
/// assert_eq!(report.prefix_times()[0].tasks, 10);
/// # std::fs::remove_file(path).unwrap();
/// ```
pub struct PerformanceReport {
    client: Client,
    recorded: Arc<Mutex<Recorded>>,
    stop: Arc<AtomicBool>,
    sampler: Option<JoinHandle<()>>,
    start_ms: f64,
    title: String,
}

impl Client {
    /// Starts recording a performance report of what the cluster does from now on (see
    /// [`PerformanceReport`]).
    pub fn performance_report(&self) -> Result<PerformanceReport, Error> {
        let start_ms = now_ms();
        // A cursor past the end asks where the stream is now.
        let (_, cursor) = self.task_stream(u64::MAX)?;
        let mut recorded = Recorded {
            cursor,
            ..Recorded::default()
        };
        recorded.sample(self)?;
        let recorded = Arc::new(Mutex::new(recorded));
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (client, recorded, stop) = (self.clone(), recorded.clone(), stop.clone());
            std::thread::Builder::new()
                .name("oxidask-report".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::park_timeout(SAMPLE_EVERY);
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let mut r = recorded.lock().unwrap_or_else(|e| e.into_inner());
                        if let Err(e) = r.sample(&client).and_then(|_| r.drain(&client)) {
                            r.error = Some(e.to_string());
                            break;
                        }
                    }
                })
                .map_err(|e| scheduler_error(ClientError::Rejected(e.to_string())))?
        };
        Ok(PerformanceReport {
            client: self.clone(),
            recorded,
            stop,
            sampler: Some(sampler),
            start_ms,
            title: "oxidask run".into(),
        })
    }
}

impl Client {
    /// The task stream the scheduler still keeps (its last 100,000 records) between two
    /// moments (milliseconds since the epoch), as a report with the workers' memory now.
    pub fn task_stream_report(&self, start_ms: f64, stop_ms: f64) -> Result<Report, Error> {
        let mut r = Recorded::default();
        r.drain(self)?;
        r.sample(self)?;
        let mut stream = r.stream;
        stream.retain(|s| s.stop_us as f64 / 1e3 >= start_ms && s.start_us as f64 / 1e3 <= stop_ms);
        Ok(Report {
            title: "task stream".into(),
            start_ms,
            stop_ms,
            workers: r.workers,
            stream,
            memory: r.memory,
            lost: 0,
        })
    }
}

impl PerformanceReport {
    /// Names the run (the page's title).
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = title.into();
        self
    }

    fn stop_sampler(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.sampler.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }

    /// Stops recording and returns the run.
    pub fn finish(mut self) -> Result<Report, Error> {
        self.stop_sampler();
        let mut r = std::mem::take(&mut *self.recorded.lock().unwrap_or_else(|e| e.into_inner()));
        if let Some(e) = r.error.take() {
            return Err(scheduler_error(ClientError::Lost(format!(
                "recording the performance report: {e}"
            ))));
        }
        r.sample(&self.client)?;
        r.drain(&self.client)?;
        Ok(Report {
            title: std::mem::take(&mut self.title),
            start_ms: self.start_ms,
            stop_ms: now_ms(),
            workers: r.workers,
            stream: r.stream,
            memory: r.memory,
            lost: r.lost,
        })
    }

    /// Stops recording and writes the report to `path` as one self-contained HTML file.
    pub fn save(self, path: impl AsRef<Path>) -> Result<Report, Error> {
        let report = self.finish()?;
        write_report(&report, path.as_ref())?;
        Ok(report)
    }
}

/// Writes `report` to `path` as HTML.
pub fn write_report(report: &Report, path: &Path) -> Result<(), Error> {
    std::fs::write(path, report.render()).map_err(|e| {
        scheduler_error(ClientError::Report {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    })
}

impl Drop for PerformanceReport {
    fn drop(&mut self) {
        self.stop_sampler();
    }
}
