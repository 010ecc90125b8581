//! # oxidask-dashboard
//!
//! The scheduler's dashboard, as Dask users know it: live pages (status with the task
//! stream, progress per task prefix, worker memory and tasks; workers and a page per worker;
//! the task graph; a longer task stream; the scheduler's system gauges; a key's story; errors;
//! logs), `/metrics` for Prometheus with Dask's metric names, and the process's logging.
//!
//! The scheduler's core publishes a snapshot every 200 ms to a bounded channel it never
//! waits on ([`Scheduler::subscribe`]); one thread here turns each into one JSON message for
//! every browser (a tokio broadcast channel); browsers that fall behind get the whole state
//! again. Questions (a story, the graph) go to the core between its batches of events.
//!
//! ```no_run
//! use oxidask_dashboard::Dashboard;
//! use oxidask_scheduler::server::Scheduler;
//! let bound = Dashboard::builder().address("127.0.0.1:8787").bind().unwrap();
//! let scheduler = Scheduler::builder().dashboard_link(bound.link()).start().unwrap();
//! let dashboard = bound.serve(&scheduler).unwrap();
//! println!("dashboard at {}", dashboard.link());
//! ```

mod http;
pub mod logging;
pub mod metrics;
pub mod report;
mod system;
pub mod view;

use std::io;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use oxidask_scheduler::server::Scheduler;
use tokio::sync::broadcast;

use crate::view::View;

/// Builds a [`Dashboard`].
#[derive(Clone, Debug)]
pub struct DashboardBuilder {
    address: String,
}

impl DashboardBuilder {
    /// Where to listen: `host:port` (default `127.0.0.1:8787`); `:8787` means every
    /// interface. If the port is taken, another free port is used, as Dask does.
    pub fn address(mut self, address: impl Into<String>) -> Self {
        self.address = address.into();
        self
    }

    /// Binds the port (so the scheduler can tell clients the link before serving).
    pub fn bind(self) -> io::Result<BoundDashboard> {
        let addr = if self.address.starts_with(':') {
            format!("0.0.0.0{}", self.address)
        } else {
            self.address.clone()
        };
        let listener = match TcpListener::bind(&addr) {
            Ok(l) => l,
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                let host = addr.rsplit_once(':').map_or("127.0.0.1", |(h, _)| h);
                let l = TcpListener::bind((host, 0))?;
                tracing::warn!(
                    "port {addr} is in use; the dashboard is at port {} instead",
                    l.local_addr()?.port()
                );
                l
            }
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("the dashboard cannot listen on {addr}: {e}; pass another --dashboard-address or --no-dashboard"),
                ))
            }
        };
        listener.set_nonblocking(true)?;
        let local = listener.local_addr()?;
        let host = if local.ip().is_unspecified() {
            "127.0.0.1".to_owned()
        } else {
            local.ip().to_string()
        };
        Ok(BoundDashboard {
            listener,
            link: format!("http://{host}:{}/status", local.port()),
        })
    }
}

/// A dashboard whose port is bound but which serves nothing yet.
pub struct BoundDashboard {
    listener: TcpListener,
    link: String,
}

impl BoundDashboard {
    /// The status page's address (`http://host:port/status`).
    pub fn link(&self) -> &str {
        &self.link
    }

    /// Starts serving the pages of `scheduler`.
    pub fn serve(self, scheduler: &Scheduler) -> io::Result<Dashboard> {
        self.serve_with_logs(scheduler, logging::recent)
    }

    /// [`BoundDashboard::serve`] with the scheduler's logs from `logs`.
    pub fn serve_with_logs(
        self,
        scheduler: &Scheduler,
        logs: fn() -> Vec<String>,
    ) -> io::Result<Dashboard> {
        let view = Arc::new(Mutex::new(View::default()));
        let (ticks, _) = broadcast::channel::<Arc<str>>(16);
        let snapshots = scheduler.subscribe();
        let agg_view = view.clone();
        let agg_ticks = ticks.clone();
        let aggregator = std::thread::Builder::new()
            .name("oxidask-dashboard".into())
            .spawn(move || {
                let mut meter = system::ProcessMeter::new();
                for p in snapshots {
                    let (cpu, rss) = meter.sample();
                    let msg = agg_view
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .update(p, cpu, rss);
                    // No browser: nothing to send to (not an error).
                    let _ = agg_ticks.send(Arc::from(msg));
                }
            })?;
        let state = http::AppState {
            view,
            ticks,
            monitor: scheduler.monitor(),
            logs,
        };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let listener = self.listener;
        let server = std::thread::Builder::new()
            .name("oxidask-dashboard-http".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!("the dashboard cannot start: {e}");
                        return;
                    }
                };
                rt.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!("the dashboard cannot listen: {e}");
                            return;
                        }
                    };
                    let app = http::router(state);
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = stop_rx.await;
                        })
                        .await;
                });
            })?;
        Ok(Dashboard {
            link: self.link,
            stop: Mutex::new(Some(stop_tx)),
            threads: Mutex::new(vec![aggregator, server]),
        })
    }
}

/// A dashboard being served.
pub struct Dashboard {
    link: String,
    stop: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Dashboard {
    /// A builder with the defaults.
    pub fn builder() -> DashboardBuilder {
        DashboardBuilder {
            address: "127.0.0.1:8787".into(),
        }
    }

    /// The status page's address.
    pub fn link(&self) -> &str {
        &self.link
    }

    /// Stops serving (the aggregator ends with the scheduler).
    pub fn shutdown(&self) {
        if let Some(tx) = self.stop.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = tx.send(());
        }
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for t in threads {
            // The aggregator ends when the scheduler stops publishing; do not wait for it.
            if t.thread().name() == Some("oxidask-dashboard-http") {
                let _ = t.join();
            }
        }
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        self.shutdown();
    }
}
