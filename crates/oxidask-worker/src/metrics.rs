//! The worker's own `/metrics` (Prometheus text format, with Dask's worker metric names
//! where Dask has them) and `/health`, on an HTTP port of its own.
//!
//! A deliberately small server on the worker's I/O runtime: one request per connection, at
//! most 8 KiB of request head read within 5 s, `GET` only; anything else gets a 4xx and the
//! connection closes. Nothing here touches the worker's state beyond one short lock to copy
//! counters.

use std::sync::Arc;
use std::time::Duration;

use oxidask_protocol::ActivityKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::Shared;

/// Cumulative counts since the worker started, for `/metrics`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Totals {
    /// Tasks that finished, and that failed.
    pub finished: u64,
    pub failed: u64,
    /// Per activity (transfer, spill out, spill in): count, bytes, seconds.
    pub activity: [(u64, u64, f64); 3],
}

impl Totals {
    pub(crate) fn add(&mut self, kind: ActivityKind, nbytes: u64, seconds: f64) {
        let i = match kind {
            ActivityKind::Transfer => 0,
            ActivityKind::SpillOut => 1,
            ActivityKind::SpillIn => 2,
            _ => return,
        };
        let a = &mut self.activity[i];
        a.0 += 1;
        a.1 += nbytes;
        a.2 += seconds;
    }
}

/// What `/metrics` shows, copied under the state's lock.
struct Sample {
    executing: u64,
    ready: u64,
    waiting: u64,
    fetching: u64,
    memory_keys: u64,
    managed: u64,
    spilled: u64,
    totals: Totals,
}

fn sample(shared: &Shared) -> Sample {
    let st = shared.lock();
    let waiting = st.tasks.len() as u64;
    Sample {
        executing: st.executing as u64,
        ready: st.ready.len() as u64,
        waiting: waiting.saturating_sub(st.ready.len() as u64 + st.executing as u64),
        fetching: st.fetching.len() as u64,
        memory_keys: st.data.len() as u64,
        managed: st.memory,
        spilled: st.spilled_now,
        totals: st.totals,
    }
}

/// The Prometheus text of this worker now.
pub(crate) fn render(shared: &Shared) -> String {
    let s = sample(shared);
    let rss = crate::cli::resident_bytes();
    let mut o = oxidask_protocol::prometheus::Text::default();
    o.family(
        "dask_worker_tasks",
        "gauge",
        "Tasks on this worker, by state.",
    );
    for (state, n) in [
        ("executing", s.executing),
        ("ready", s.ready),
        ("waiting", s.waiting),
        ("fetch", s.fetching),
        ("memory", s.memory_keys),
    ] {
        o.sample("dask_worker_tasks", &[("state", state)], n as f64);
    }
    o.family("dask_worker_threads", "gauge", "Threads running tasks.");
    o.sample("dask_worker_threads", &[], shared.nthreads as f64);
    o.family(
        "dask_worker_memory_bytes",
        "gauge",
        "Memory: results held (managed), the rest of the process (unmanaged), results on disk (spilled).",
    );
    o.sample(
        "dask_worker_memory_bytes",
        &[("type", "managed")],
        s.managed as f64,
    );
    let (shards_memory, shards_disk) = crate::shuffle::shard_bytes(shared);
    o.sample(
        "dask_worker_memory_bytes",
        &[("type", "unmanaged")],
        rss.saturating_sub(s.managed + shards_memory) as f64,
    );
    o.family(
        "dask_worker_p2p_shards_bytes",
        "gauge",
        "P2P shuffle shards held for unpack tasks: in memory (out of unmanaged above) and in spill files.",
    );
    o.sample(
        "dask_worker_p2p_shards_bytes",
        &[("type", "memory")],
        shards_memory as f64,
    );
    o.sample(
        "dask_worker_p2p_shards_bytes",
        &[("type", "disk")],
        shards_disk as f64,
    );
    o.sample(
        "dask_worker_memory_bytes",
        &[("type", "spilled")],
        s.spilled as f64,
    );
    let [transfer, out, back] = s.totals.activity;
    o.family(
        "dask_worker_transfer_incoming_count_total",
        "counter",
        "Fetches of dependencies from other workers.",
    );
    o.sample(
        "dask_worker_transfer_incoming_count_total",
        &[],
        transfer.0 as f64,
    );
    o.family(
        "dask_worker_transfer_incoming_bytes_total",
        "counter",
        "Bytes fetched from other workers.",
    );
    o.sample(
        "dask_worker_transfer_incoming_bytes_total",
        &[],
        transfer.1 as f64,
    );
    o.family(
        "dask_worker_transfer_incoming_seconds_total",
        "counter",
        "Time spent fetching from other workers.",
    );
    o.sample(
        "dask_worker_transfer_incoming_seconds_total",
        &[],
        transfer.2,
    );
    o.family(
        "dask_worker_spill_count_total",
        "counter",
        "Spills to and reads back from disk.",
    );
    o.sample(
        "dask_worker_spill_count_total",
        &[("activity", "disk_write")],
        out.0 as f64,
    );
    o.sample(
        "dask_worker_spill_count_total",
        &[("activity", "disk_read")],
        back.0 as f64,
    );
    o.family(
        "dask_worker_spill_bytes_total",
        "counter",
        "Bytes spilled to and read back from disk.",
    );
    o.sample(
        "dask_worker_spill_bytes_total",
        &[("activity", "disk_write")],
        out.1 as f64,
    );
    o.sample(
        "dask_worker_spill_bytes_total",
        &[("activity", "disk_read")],
        back.1 as f64,
    );
    o.family(
        "dask_worker_spill_time_seconds_total",
        "counter",
        "Time spent spilling to and reading back from disk.",
    );
    o.sample(
        "dask_worker_spill_time_seconds_total",
        &[("activity", "disk_write")],
        out.2,
    );
    o.sample(
        "dask_worker_spill_time_seconds_total",
        &[("activity", "disk_read")],
        back.2,
    );
    o.family(
        "oxidask_worker_tasks_total",
        "counter",
        "Tasks run to the end on this worker, by outcome.",
    );
    o.sample(
        "oxidask_worker_tasks_total",
        &[("outcome", "finished")],
        s.totals.finished as f64,
    );
    o.sample(
        "oxidask_worker_tasks_total",
        &[("outcome", "failed")],
        s.totals.failed as f64,
    );
    o.family(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory of the worker process.",
    );
    o.sample("process_resident_memory_bytes", &[], rss as f64);
    o.finish()
}

/// Serves `/metrics` and `/health` until the task is dropped.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((conn, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(5), answer(conn, &shared)).await;
        });
    }
}

/// Longest request head read.
const MAX_HEAD: usize = 8 << 10;

async fn answer(mut conn: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > MAX_HEAD {
            return respond(
                &mut conn,
                "431 Request Header Fields Too Large",
                "text/plain",
                "request head too large\n",
            )
            .await;
        }
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method != "GET" {
        return respond(
            &mut conn,
            "405 Method Not Allowed",
            "text/plain",
            "only GET is served\n",
        )
        .await;
    }
    match path.split('?').next().unwrap_or("") {
        "/metrics" => {
            let body = render(shared);
            respond(
                &mut conn,
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                &body,
            )
            .await
        }
        "/health" => respond(&mut conn, "200 OK", "text/plain", "ok\n").await,
        _ => {
            respond(
                &mut conn,
                "404 Not Found",
                "text/plain",
                "this worker serves /metrics and /health\n",
            )
            .await
        }
    }
}

async fn respond(
    conn: &mut TcpStream,
    status: &str,
    kind: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(body.as_bytes()).await?;
    conn.shutdown().await
}
