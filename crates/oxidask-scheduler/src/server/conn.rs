//! Connections: accept, handshake, one reader and one writer task each.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use oxidask_protocol::frame::read_frame_admitting;
use oxidask_protocol::peer::PeerPool;
use oxidask_protocol::transport::{
    accept_next, configured_limits, PeerLimit, ReadHalf, Security, Stream, WriteHalf,
};
use oxidask_protocol::wire::PrefixAdmission;
use oxidask_protocol::{
    hello, read_hello, reply_hello, write_frame, FromWorker, Hello, Role, ToClient, ToScheduler,
    PROTOCOL_VERSION,
};
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpListener;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use super::log::SchedulerLog;
use super::{Backlog, Inbound, Outbound};
use crate::state::Event;

/// What the first participant of a cluster pinned.
struct Pinned {
    registry: u128,
    runtime: Vec<(String, String)>,
    first: String,
}

/// State shared by connection tasks: connection ids and the cluster's operation registry.
pub(crate) struct Shared {
    next_id: AtomicU64,
    /// The registry and runtimes every client and worker must share, pinned by the first
    /// to join, and how many are connected.
    pin: Mutex<(Option<Pinned>, usize)>,
    log: Arc<SchedulerLog>,
    /// The dashboard's address, told to everyone who joins (empty: none).
    dashboard: String,
    /// Data addresses of connected workers: the only places `Gather` may fetch from.
    workers: Mutex<std::collections::HashSet<String>>,
    /// Connections to workers' data ports, for clients that cannot reach them.
    pool: Arc<PeerPool>,
}

impl Shared {
    pub(crate) fn new(log: Arc<SchedulerLog>, dashboard: String, security: Security) -> Shared {
        Shared {
            next_id: AtomicU64::new(1),
            pin: Mutex::new((None, 0)),
            log,
            dashboard,
            workers: Mutex::default(),
            pool: Arc::new(PeerPool::new(security)),
        }
    }

    fn log(&self, msg: impl AsRef<str>) {
        self.log.log(msg);
    }

    /// Admits a participant with `registry`, or says why not.
    fn admit(&self, theirs: &Hello, who: &str) -> Option<String> {
        let ours = hello(Role::Peer);
        if theirs.protocol != PROTOCOL_VERSION {
            return oxidask_protocol::compatibility(&ours, theirs);
        }
        if theirs.is_control() {
            // Manages the cluster, computes nothing: pins nothing (see `serve`).
            return None;
        }
        if matches!(theirs.role, Role::Peer) {
            return Some(
                "this is a scheduler: it does not serve data; fetch data from a worker's data address".into(),
            );
        }
        let mut pin = self.pin.lock().unwrap_or_else(|p| p.into_inner());
        match &pin.0 {
            Some(p) => {
                let kind = who.split_whitespace().next().unwrap_or("participant");
                if let Some(why) = oxidask_protocol::runtime_mismatch(
                    &p.runtime,
                    &format!("this cluster (first joined by {})", p.first),
                    &theirs.runtime,
                    kind,
                ) {
                    return Some(why);
                }
                if p.registry != theirs.registry {
                    return Some(format!(
                        "operation registry mismatch: this cluster runs programs with registry {:032x} (first joined by {}), but this {who} ({}) has {:032x}; build the workers and clients from the same program (a program with its own #[oxidask::task] functions runs its workers with `my-program worker ADDRESS`)",
                        p.registry, p.first, theirs.build, theirs.registry
                    ));
                }
            }
            None => {
                pin.0 = Some(Pinned {
                    registry: theirs.registry,
                    runtime: theirs.runtime.clone(),
                    first: who.to_owned(),
                })
            }
        }
        pin.1 += 1;
        None
    }

    fn leave(&self) {
        let mut pin = self.pin.lock().unwrap_or_else(|p| p.into_inner());
        pin.1 = pin.1.saturating_sub(1);
        if pin.1 == 0 {
            pin.0 = None;
        }
    }
}

pub(crate) async fn accept_loop(
    listener: TcpListener,
    security: Security,
    tx: mpsc::Sender<Inbound>,
    shared: std::sync::Arc<Shared>,
) {
    let limit = PeerLimit::configured();
    loop {
        let (tcp, peer, permit) = accept_next(&listener, &limit, |m| shared.log(m)).await;
        let conn = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let tx = tx.clone();
        let shared = shared.clone();
        let security = security.clone();
        tokio::spawn(async move {
            let _permit = permit;
            // TLS and the token are checked before any message is read.
            let stream = match security.accept(tcp, peer).await {
                Ok(s) => s,
                Err(e) => {
                    shared.log(format!("refused connection {conn} from {e}"));
                    return;
                }
            };
            if let Err(e) = serve(stream, conn, tx, &shared).await {
                shared.log(format!("connection {conn} from {peer}: {e}"));
            }
        });
    }
}

async fn serve(
    mut stream: Stream,
    conn: u64,
    tx: mpsc::Sender<Inbound>,
    shared: &Shared,
) -> Result<(), oxidask_protocol::ProtocolError> {
    let theirs = tokio::time::timeout(std::time::Duration::from_secs(10), read_hello(&mut stream))
        .await
        .map_err(|_| {
            oxidask_protocol::ProtocolError::Unexpected("no hello within 10 s".into())
        })??;
    let who = match &theirs.role {
        Role::Client {
            name,
            reconnect: true,
            ..
        } => format!("client {name} (reconnecting)"),
        Role::Client { name, .. } => format!("client {name}"),
        Role::Worker(info) => format!("worker {} ({})", info.name, info.data_address),
        Role::Peer => "peer".to_owned(),
    };
    let refusal = shared.admit(&theirs, &who);
    let admitted = refusal.is_none();
    if let Some(r) = &refusal {
        shared.log(format!("refused {who}: {r}"));
    }
    reply_hello(&mut stream, conn, refusal, &shared.dashboard).await?;
    debug_assert!(admitted);
    let pinned = !theirs.is_control();
    let result = run_connection(stream, conn, tx, theirs, &who, shared).await;
    if pinned {
        shared.leave();
    }
    result
}

async fn run_connection(
    stream: Stream,
    conn: u64,
    tx: mpsc::Sender<Inbound>,
    theirs: Hello,
    who: &str,
    shared: &Shared,
) -> Result<(), oxidask_protocol::ProtocolError> {
    let (rd, wr) = stream.into_split();
    let (out_tx, out_rx) = unbounded_channel();
    let backlog = Arc::new(Backlog::new());
    let is_worker = matches!(theirs.role, Role::Worker(_));
    let control = theirs.is_control();
    let data_address = match &theirs.role {
        Role::Worker(info) => Some(info.data_address.clone()),
        _ => None,
    };
    if let Some(a) = &data_address {
        shared.lock_workers().insert(a.clone());
    }
    let replies = out_tx.clone();
    let reply_backlog = backlog.clone();
    let mut identified = None;
    let event = match theirs.role {
        Role::Client {
            name,
            id,
            reconnect,
        } => {
            if id != 0 {
                identified = Some(Event::ClientIdentified {
                    conn,
                    id,
                    reconnect,
                });
            }
            Event::ClientJoined { conn, name }
        }
        Role::Worker(info) => Event::WorkerJoined { conn, info },
        Role::Peer => unreachable!("peers are refused"),
    };
    shared.log(format!("{who} connected (connection {conn})"));
    let _ = tx.send(Inbound::Open {
        conn,
        tx: out_tx,
        event,
        backlog: backlog.clone(),
    });
    if let Some(e) = identified {
        // Right behind the join, on the same channel: the core sees them in this order.
        let _ = tx.send(Inbound::Event(e));
    }
    let writer = tokio::spawn(write_loop(wr, out_rx, backlog.clone()));
    let result = if is_worker {
        read_loop::<FromWorker>(rd, conn, &tx, &backlog, |conn, msg| {
            Some(Event::FromWorker { conn, msg })
        })
        .await
    } else {
        read_loop::<ToScheduler>(rd, conn, &tx, &backlog, |conn, msg| match msg {
            ToScheduler::Gather {
                request,
                worker,
                keys,
            } => {
                gather_for_client(
                    shared,
                    replies.clone(),
                    reply_backlog.clone(),
                    request,
                    worker,
                    keys,
                );
                None
            }
            ToScheduler::UpdateGraph { .. } | ToScheduler::Scatter { .. } if control => {
                // A control connection's programs were never checked against the cluster's.
                shared.log(format!(
                    "{who} is a control connection: its tasks and data are refused"
                ));
                None
            }
            msg => Some(Event::FromClient { conn, msg }),
        })
        .await
    };
    if let Some(a) = &data_address {
        shared.lock_workers().remove(a);
    }
    let reason = match &result {
        Ok(()) => "connection closed".to_owned(),
        Err(e) => e.to_string(),
    };
    shared.log(format!("{who} left: {reason}"));
    let _ = tx.send(Inbound::Event(if is_worker {
        Event::WorkerLeft { conn, reason }
    } else {
        Event::ClientLeft { conn }
    }));
    writer.abort();
    result
}

async fn read_loop<M: oxidask_core::Data>(
    rd: ReadHalf,
    conn: u64,
    tx: &mpsc::Sender<Inbound>,
    backlog: &Arc<Backlog>,
    mut wrap: impl FnMut(u64, M) -> Option<Event>,
) -> Result<(), oxidask_protocol::ProtocolError> {
    let mut rd = BufReader::with_capacity(1 << 16, rd);
    let limits = configured_limits();
    // Key prefixes are interned for the life of the process: each connection may add only
    // so many, so one peer cannot fill the table for everyone.
    let mut admission = PrefixAdmission::per_connection();
    loop {
        match read_frame_admitting::<_, M>(&mut rd, &limits, &mut admission).await? {
            None => return Ok(()),
            Some(msgs) => {
                let events: Vec<Event> = msgs.into_iter().filter_map(|m| wrap(conn, m)).collect();
                if events.is_empty() {
                    continue;
                }
                // Backpressure: at most MAX_INBOUND_BATCHES of this connection's batches
                // wait for the core; past that this reader (and so the peer, through TCP)
                // waits, and no other connection does.
                match backlog.inbound.acquire().await {
                    Ok(p) => p.forget(),
                    Err(_) => return Ok(()),
                }
                if tx.send(Inbound::Events(events, backlog.clone())).is_err() {
                    return Ok(());
                }
            }
        }
    }
}

impl Shared {
    fn lock_workers(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.workers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Fetches `keys` from the worker at `worker` for a client that cannot reach it, and replies
/// on the client's connection. Only connected workers' data addresses are asked.
fn gather_for_client(
    shared: &Shared,
    replies: tokio::sync::mpsc::UnboundedSender<Outbound>,
    backlog: Arc<Backlog>,
    request: u64,
    worker: String,
    keys: Vec<oxidask_protocol::WireKey>,
) {
    let known = shared.lock_workers().contains(&worker);
    let pool = shared.pool.clone();
    tokio::spawn(async move {
        let (values, error) = if !known {
            (
                Vec::new(),
                Some(format!(
                    "{worker} is not the data address of a connected worker"
                )),
            )
        } else {
            match pool.get(&worker, keys).await {
                Ok(v) => (v, None),
                Err(e) => (
                    Vec::new(),
                    Some(format!("the scheduler cannot reach {worker}: {e}")),
                ),
            }
        };
        // Counted as queued, as the core's messages are: the writer uncounts it when sent
        // (uncounted, the count wrapped below zero and the core closed the client).
        backlog.outbound.fetch_add(1, Ordering::Relaxed);
        let _ = replies.send(Outbound::Client(vec![ToClient::Gathered {
            request,
            values,
            error,
        }]));
    });
}

async fn write_loop(wr: WriteHalf, mut rx: UnboundedReceiver<Outbound>, backlog: Arc<Backlog>) {
    let mut wr = BufWriter::with_capacity(1 << 16, wr);
    while let Some(first) = rx.recv().await {
        backlog.sent(&first);
        let mut clients = Vec::new();
        let mut workers = Vec::new();
        let mut close = None;
        let mut next = Some(first);
        while let Some(o) = next {
            match o {
                Outbound::Client(m) => clients.extend(m),
                Outbound::Worker(m) => workers.extend(m),
                Outbound::Close(r) => {
                    close = Some(r);
                    break;
                }
            }
            next = rx.try_recv().ok();
            if let Some(n) = &next {
                backlog.sent(n);
            }
        }
        let ok = if !clients.is_empty() {
            write_frame(&mut wr, &clients).await.is_ok()
        } else if !workers.is_empty() {
            write_frame(&mut wr, &workers).await.is_ok()
        } else {
            true
        };
        if !ok || close.is_some() {
            let _ = wr.shutdown().await;
            return;
        }
    }
}
