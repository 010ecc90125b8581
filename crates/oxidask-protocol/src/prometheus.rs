//! Prometheus's text exposition format (version 0.0.4), written by the scheduler's dashboard
//! and by workers for their `/metrics`.
//!
//! ```
//! let mut t = oxidask_protocol::prometheus::Text::default();
//! t.family("dask_worker_threads", "gauge", "Threads running tasks.");
//! t.sample("dask_worker_threads", &[("worker", "w\"1")], 2.0);
//! assert_eq!(
//!     t.finish(),
//!     "# HELP dask_worker_threads Threads running tasks.\n# TYPE dask_worker_threads gauge\n\
//!      dask_worker_threads{worker=\"w\\\"1\"} 2\n"
//! );
//! ```

use std::fmt::Write;

/// A metrics page being written.
#[derive(Debug, Default)]
pub struct Text(String);

impl Text {
    /// Starts a metric family: its help line and type (`gauge`, `counter`).
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample with its labels (values escaped as the format requires).
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let v = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.0, "{k}=\"{v}\"");
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    /// The page.
    pub fn finish(self) -> String {
        self.0
    }
}
