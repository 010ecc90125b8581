//! `/metrics` in Prometheus's text format, with Dask's metric names where Dask has them (the
//! mapping is in the README): dashboards and alerts written for Dask keep working.

use oxidask_protocol::ActivityKind;
use oxidask_scheduler::state::observe::STATES;

use crate::view::View;

type Out = oxidask_protocol::prometheus::Text;

/// The metrics page for the latest state of `view`.
pub fn render(view: &View) -> String {
    let mut o = Out::default();
    let Some(p) = &view.latest else {
        o.family(
            "dask_scheduler_workers",
            "gauge",
            "Workers connected to the scheduler.",
        );
        o.sample("dask_scheduler_workers", &[], 0.0);
        return o.finish();
    };
    let s = &p.snapshot;
    o.family(
        "dask_scheduler_clients",
        "gauge",
        "Clients connected to the scheduler.",
    );
    o.sample("dask_scheduler_clients", &[], s.clients as f64);

    o.family(
        "dask_scheduler_workers",
        "gauge",
        "Workers connected, by how busy they are.",
    );
    let (mut idle, mut partial, mut saturated, mut paused) = (0, 0, 0, 0);
    for w in &s.workers {
        if w.paused {
            paused += 1;
        } else if w.processing == 0 {
            idle += 1;
        } else if w.processing >= w.nthreads {
            saturated += 1;
        } else {
            partial += 1;
        }
    }
    o.sample("dask_scheduler_workers", &[("state", "idle")], idle as f64);
    o.sample(
        "dask_scheduler_workers",
        &[("state", "partially_saturated")],
        partial as f64,
    );
    o.sample(
        "dask_scheduler_workers",
        &[("state", "saturated")],
        saturated as f64,
    );
    o.sample(
        "dask_scheduler_workers",
        &[("state", "paused_or_retiring")],
        paused as f64,
    );

    o.family(
        "dask_scheduler_tasks",
        "gauge",
        "Tasks known to the scheduler, by state.",
    );
    for (i, state) in STATES.iter().enumerate() {
        let n: u64 = s.prefixes.iter().map(|(_, st)| st.states[i] as u64).sum();
        o.sample("dask_scheduler_tasks", &[("state", state)], n as f64);
    }
    o.family(
        "dask_scheduler_tasks_forgotten_total",
        "counter",
        "Tasks the scheduler forgot (no client or task needed them any more).",
    );
    o.sample(
        "dask_scheduler_tasks_forgotten_total",
        &[],
        s.forgotten as f64,
    );

    o.family(
        "dask_scheduler_prefix_state_totals_total",
        "counter",
        "Tasks of each prefix that reached memory or failed.",
    );
    for (name, st) in &s.prefixes {
        o.sample(
            "dask_scheduler_prefix_state_totals_total",
            &[("task_prefix_name", name), ("state", "memory")],
            st.finished as f64,
        );
        o.sample(
            "dask_scheduler_prefix_state_totals_total",
            &[("task_prefix_name", name), ("state", "erred")],
            st.erred as f64,
        );
    }
    o.family(
        "dask_scheduler_tasks_compute_seconds_total",
        "counter",
        "Seconds workers spent computing tasks, by prefix.",
    );
    for (name, st) in &s.prefixes {
        o.sample(
            "dask_scheduler_tasks_compute_seconds_total",
            &[("task_prefix_name", name)],
            st.compute_seconds,
        );
    }
    o.family(
        "dask_scheduler_tasks_output_bytes_total",
        "counter",
        "Bytes of results produced, by prefix (oxidask's name; Dask reports bytes in memory).",
    );
    for (name, st) in &s.prefixes {
        o.sample(
            "dask_scheduler_tasks_output_bytes_total",
            &[("task_prefix_name", name)],
            st.output_bytes as f64,
        );
    }

    o.family(
        "dask_worker_memory_bytes",
        "gauge",
        "Worker memory: results held (managed), the rest of the process (unmanaged), spilled to disk.",
    );
    for w in &s.workers {
        let unmanaged = w.rss.saturating_sub(w.managed);
        o.sample(
            "dask_worker_memory_bytes",
            &[("worker", &w.name), ("type", "managed")],
            w.managed as f64,
        );
        o.sample(
            "dask_worker_memory_bytes",
            &[("worker", &w.name), ("type", "unmanaged")],
            unmanaged as f64,
        );
        o.sample(
            "dask_worker_memory_bytes",
            &[("worker", &w.name), ("type", "spilled")],
            w.spilled as f64,
        );
    }
    o.family(
        "dask_worker_memory_limit_bytes",
        "gauge",
        "Worker memory limit (0: none).",
    );
    for w in &s.workers {
        o.sample(
            "dask_worker_memory_limit_bytes",
            &[("worker", &w.name)],
            w.memory_limit as f64,
        );
    }
    o.family(
        "dask_worker_threads",
        "gauge",
        "Threads running tasks, per worker.",
    );
    for w in &s.workers {
        o.sample(
            "dask_worker_threads",
            &[("worker", &w.name)],
            w.nthreads as f64,
        );
    }
    o.family(
        "dask_worker_tasks",
        "gauge",
        "Tasks per worker: assigned (processing) and running (executing).",
    );
    for w in &s.workers {
        o.sample(
            "dask_worker_tasks",
            &[("worker", &w.name), ("state", "processing")],
            w.processing as f64,
        );
        o.sample(
            "dask_worker_tasks",
            &[("worker", &w.name), ("state", "executing")],
            w.executing as f64,
        );
    }
    o.family(
        "dask_worker_cpu",
        "gauge",
        "Worker process CPU, percent of one core.",
    );
    for w in &s.workers {
        o.sample("dask_worker_cpu", &[("worker", &w.name)], w.cpu);
    }

    let (mut transfer, mut disk_write, mut disk_read) = (0u64, 0u64, 0u64);
    for r in &view.stream {
        match r.kind {
            ActivityKind::Transfer => transfer += r.nbytes,
            ActivityKind::SpillOut => disk_write += r.nbytes,
            ActivityKind::SpillIn => disk_read += r.nbytes,
            _ => {}
        }
    }
    o.family(
        "dask_scheduler_stream_bytes",
        "gauge",
        "Bytes moved by the transfers and spills in the dashboard's task-stream window (oxidask's name).",
    );
    o.sample(
        "dask_scheduler_stream_bytes",
        &[("activity", "transfer")],
        transfer as f64,
    );
    o.sample(
        "dask_scheduler_stream_bytes",
        &[("activity", "disk-write")],
        disk_write as f64,
    );
    o.sample(
        "dask_scheduler_stream_bytes",
        &[("activity", "disk-read")],
        disk_read as f64,
    );

    if let Some(pt) = view.history.back() {
        o.family(
            "dask_scheduler_tick_duration_maximum_seconds",
            "gauge",
            "The scheduler core's longest batch of events in the last period: its latency.",
        );
        o.sample(
            "dask_scheduler_tick_duration_maximum_seconds",
            &[],
            pt.latency_ms / 1e3,
        );
        o.family(
            "dask_scheduler_busy_ratio",
            "gauge",
            "Fraction of the time the scheduler core was busy (oxidask's name).",
        );
        o.sample("dask_scheduler_busy_ratio", &[], pt.busy);
        o.family(
            "dask_scheduler_connections",
            "gauge",
            "Open connections (clients and workers; oxidask's name).",
        );
        o.sample("dask_scheduler_connections", &[], pt.connections as f64);
        o.family(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory of the scheduler process.",
        );
        o.sample("process_resident_memory_bytes", &[], pt.rss as f64);
        o.family(
            "dask_scheduler_process_cpu_percent",
            "gauge",
            "Scheduler process CPU, percent of one core (oxidask's name).",
        );
        o.sample("dask_scheduler_process_cpu_percent", &[], pt.cpu);
    }
    o.family(
        "dask_scheduler_dashboard_dropped_total",
        "counter",
        "Snapshots the dashboard was too slow to take (oxidask's name).",
    );
    o.sample(
        "dask_scheduler_dashboard_dropped_total",
        &[],
        p.core.dropped as f64,
    );
    o.finish()
}
