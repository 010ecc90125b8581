//! The client: a connection to the scheduler, the keys it holds futures for, and the calls
//! that submit work and gather results.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use oxidask_core::compute::Compute;
use oxidask_core::{Collection, Data, Delayed, Error, Graph, Key, PlanOptions, Value};
use oxidask_protocol::peer::PeerPool;
use oxidask_protocol::transport::Party;
pub use oxidask_protocol::transport::Security;
use oxidask_protocol::transport::Stream;
use oxidask_protocol::ProtocolError;
use oxidask_protocol::{
    handshake_connect, hello, read_frame, spec_to_wire, write_frame, ClusterSummary, Fetched,
    Limits, Role, SubmitOptions, ToClient, ToScheduler, WireError, WireKey, WireTask, WireValue,
};
use rustc_hash::FxHashMap;
use tokio::io::{BufReader, BufWriter};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::Notify;

use crate::error::{from_wire, scheduler_error, ClientError};
use crate::future::Future;

/// Tasks per `UpdateGraph` part.
const GRAPH_PART: usize = 16_384;

/// A key's status as this client knows it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum KeyStatus {
    Pending,
    Finished,
    Erred(Box<WireError>),
    Cancelled,
}

pub(crate) struct KeyEntry {
    pub refs: usize,
    pub status: KeyStatus,
}

#[derive(Default)]
pub(crate) struct ClientState {
    pub keys: FxHashMap<Key, KeyEntry>,
    pub lost: Option<String>,
    pub replies: FxHashMap<u64, mpsc::Sender<ToClient>>,
    /// Bumped on every status change (for waiters).
    pub generation: u64,
    /// Keys whose status changed, in order, kept while anyone waits, so a waiter looks only
    /// at what changed since it last looked (not at every key it waits for).
    pub changes: Vec<Key>,
    /// Position of `changes[0]` in the sequence of all changes.
    pub changes_base: u64,
    /// Threads in `wait_keys`.
    pub waiters: usize,
    /// Callbacks to run once a key is no longer pending (`Future::add_done_callback`).
    pub callbacks: FxHashMap<Key, Vec<DoneCallback>>,
    /// Unanswered requests that are sent again after a reconnection.
    pub(crate) pending_requests: crate::reconnect::PendingRequests,
}

/// A function run once, when a key stops being pending (finished, erred, cancelled or
/// lost); it runs on the client's I/O thread, so it must not block.
pub type DoneCallback = Box<dyn FnOnce() + Send>;

impl ClientState {
    /// Takes the callbacks of `key` if it is no longer pending.
    fn take_done_callbacks(&mut self, key: &Key, out: &mut Vec<DoneCallback>) {
        let pending = self
            .keys
            .get(key)
            .is_some_and(|e| e.status == KeyStatus::Pending);
        if !pending && self.lost.is_none() {
            if let Some(cbs) = self.callbacks.remove(key) {
                out.extend(cbs);
            }
        }
    }
}

/// What the writer sends; releases are merged into one message.
pub(crate) enum Outgoing {
    Msg(ToScheduler),
    Release(WireKey),
}

/// State shared with the connection's tasks.
pub(crate) struct Shared {
    pub state: Mutex<ClientState>,
    pub cv: Condvar,
    pub notify: Notify,
    pub tx: UnboundedSender<Outgoing>,
    pub pool: PeerPool,
    pub(crate) next_request: AtomicU64,
    /// `Some(false)`: always gather through the scheduler; `Some(true)`: only directly;
    /// `None`: directly, through the scheduler for workers that cannot be reached.
    direct_to_workers: Option<bool>,
    /// Data addresses this client failed to reach; gathered through the scheduler.
    unreachable: Mutex<std::collections::HashSet<String>>,
    /// Connections to workers for actor calls.
    pub(crate) actors: crate::actor::ActorCaller,
    /// Graphs to send again after a reconnection.
    pub(crate) resend: Mutex<crate::reconnect::ResendLog>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, ClientState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn changed(&self, st: &mut ClientState) {
        st.generation += 1;
        self.cv.notify_all();
        self.notify.notify_waiters();
    }
}

pub(crate) struct Inner {
    pub shared: Arc<Shared>,
    pub address: String,
    /// The scheduler's dashboard, as its welcome said (empty: none).
    pub dashboard: String,
    pub rt: tokio::runtime::Handle,
    stop: Arc<Notify>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // If this was the default client, `compute()` goes back to the local scheduler.
        {
            let mut last = LAST_CLIENT.lock().unwrap_or_else(|p| p.into_inner());
            if last
                .as_ref()
                .is_some_and(|w| std::ptr::eq(w.as_ptr(), self as *const Inner))
            {
                *last = None;
                oxidask_core::compute::set_global_scheduler(None);
            }
        }
        self.stop.notify_one();
        let t = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = t {
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

/// A connection to a cluster's scheduler: submit work, hold futures, gather results.
///
/// Cloning is cheap (a handle); the connection closes when the last clone and the last
/// future drop.
///
/// ```no_run
/// use oxidask_client::Client;
/// let client = Client::connect("tcp://127.0.0.1:8786").unwrap();
/// println!("{:?}", client.summary().unwrap());
/// ```
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Client({})", self.inner.address)
    }
}

/// Builds a [`Client`].
#[derive(Clone, Debug)]
pub struct ClientBuilder {
    address: Option<String>,
    name: String,
    timeout: Option<Duration>,
    set_as_default: bool,
    security: Option<Security>,
    direct_to_workers: Option<bool>,
    control: bool,
    reconnect_grace: Option<Duration>,
}

impl ClientBuilder {
    /// A control connection (for a gateway or an operator's tool): it may ask the scheduler
    /// about the cluster and manage its workers (summary, adaptive recommendations, retiring)
    /// but not submit tasks or data, and the scheduler admits it whatever programs the cluster
    /// runs, without tying the cluster to this program's operations.
    pub fn control(mut self, on: bool) -> Self {
        self.control = on;
        self
    }

    /// How results are gathered, as Dask's `direct_to_workers`: `Some(true)` only from the
    /// workers' data ports, `Some(false)` only through the scheduler's connection (for a
    /// client that reaches nothing but the scheduler's port, e.g. over an SSH tunnel),
    /// `None` (default) directly, falling back to the scheduler for workers it cannot reach.
    pub fn direct_to_workers(mut self, direct: Option<bool>) -> Self {
        self.direct_to_workers = direct;
        self
    }

    /// TLS credentials and the authentication token, for the scheduler connection and for
    /// gathering from workers' data ports. Default: what the configuration says
    /// (`distributed.comm.tls.ca-file`, `distributed.comm.tls.client.{cert,key}`,
    /// `distributed.comm.auth.token`), else plain TCP without a token.
    pub fn security(mut self, security: Security) -> Self {
        self.security = Some(security);
        self
    }

    /// The scheduler's address (`tcp://host:port`); default `$OXIDASK_SCHEDULER_ADDRESS`.
    pub fn address(mut self, a: impl Into<String>) -> Self {
        self.address = Some(a.into());
        self
    }

    /// A name shown in the scheduler's logs.
    pub fn name(mut self, n: impl Into<String>) -> Self {
        self.name = n.into();
        self
    }

    /// How long to keep trying to reconnect after the connection to the scheduler drops (the
    /// scheduler keeps this client's futures as long; default
    /// `distributed.scheduler.client-reconnect-grace`, 30 s). Past it the futures fail.
    pub fn reconnect_grace(mut self, t: Duration) -> Self {
        self.reconnect_grace = Some(t);
        self
    }

    /// How long to keep trying to connect (default `distributed.comm.timeouts.connect`,
    /// 30 s).
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }

    /// Whether `compute()` on collections uses this client from now on (default true, as
    /// Dask's `Client()` does).
    pub fn set_as_default(mut self, on: bool) -> Self {
        self.set_as_default = on;
        self
    }

    /// Connects.
    pub fn connect(self) -> Result<Client, Error> {
        let address = self
            .address
            .or_else(|| std::env::var("OXIDASK_SCHEDULER_ADDRESS").ok())
            .ok_or_else(|| {
                scheduler_error(ClientError::Connect {
                    address: String::new(),
                    reason: "no address given and OXIDASK_SCHEDULER_ADDRESS is not set".into(),
                })
            })?;
        // What the builder was not told comes from the configuration.
        let (security, timeout, grace) =
            match (self.security.clone(), self.timeout, self.reconnect_grace) {
                (Some(s), Some(t), Some(g)) => (s, t, g),
                (security, timeout, grace) => {
                    let cfg = oxidask_config::global().map_err(|e| {
                        scheduler_error(ClientError::Connect {
                            address: address.clone(),
                            reason: e.to_string(),
                        })
                    })?;
                    let security = match security {
                        Some(s) => s,
                        None => Security::from_config(&cfg, Party::Client).map_err(|e| {
                            scheduler_error(ClientError::Connect {
                                address: address.clone(),
                                reason: e.to_string(),
                            })
                        })?,
                    };
                    let timeout = timeout
                        .or_else(|| cfg.duration("distributed.comm.timeouts.connect"))
                        .unwrap_or(Duration::from_secs(30));
                    let grace = grace
                        .or_else(|| cfg.duration("distributed.scheduler.client-reconnect-grace"))
                        .unwrap_or(Duration::ZERO);
                    (security, timeout, grace)
                }
            };
        let addr = address.clone();
        let (tx, rx) = unbounded_channel();
        let shared = Arc::new(Shared {
            state: Mutex::new(ClientState::default()),
            cv: Condvar::new(),
            notify: Notify::new(),
            tx,
            pool: PeerPool::new(security.clone()),
            next_request: AtomicU64::new(1),
            direct_to_workers: self.direct_to_workers,
            unreachable: Mutex::default(),
            actors: crate::actor::ActorCaller::new(security.clone()),
            resend: Mutex::default(),
        });
        let stop = Arc::new(Notify::new());
        let (ready_tx, ready_rx) =
            mpsc::channel::<Result<(tokio::runtime::Handle, String), String>>();
        let task_shared = shared.clone();
        let task_stop = stop.clone();
        let name = self.name.clone();
        let control = self.control;
        let thread_addr = addr.clone();
        let thread = std::thread::Builder::new()
            .name("oxidask-client".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let handle = rt.handle().clone();
                rt.block_on(async move {
                    let session = Session {
                        security,
                        addr: thread_addr,
                        name,
                        // A control connection is anonymous: released as soon as it leaves.
                        id: if control {
                            0
                        } else {
                            crate::reconnect::new_client_id()
                        },
                        control,
                        grace,
                    };
                    let (stream, dashboard) = match session.connect(timeout, false).await {
                        Ok(s) => s,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok((handle, dashboard)));
                    run(session, stream, task_shared, rx, task_stop).await;
                });
            })
            .map_err(|e| {
                scheduler_error(ClientError::Connect {
                    address: address.clone(),
                    reason: e.to_string(),
                })
            })?;
        let (rt, dashboard) = match ready_rx.recv() {
            Ok(Ok(h)) => h,
            Ok(Err(reason)) => {
                let _ = thread.join();
                return Err(scheduler_error(ClientError::Connect { address, reason }));
            }
            Err(_) => {
                let _ = thread.join();
                return Err(scheduler_error(ClientError::Connect {
                    address,
                    reason: "the client's I/O thread ended".into(),
                }));
            }
        };
        let client = Client {
            inner: Arc::new(Inner {
                shared,
                address: addr,
                dashboard,
                rt,
                stop,
                thread: Mutex::new(Some(thread)),
            }),
        };
        if self.set_as_default {
            client.set_as_default();
        }
        Ok(client)
    }
}

/// What the I/O thread needs to (re)connect.
struct Session {
    security: Security,
    addr: String,
    name: String,
    /// This client's id (0 for a control connection: never resumed).
    id: u128,
    control: bool,
    /// How long to keep trying to reconnect after a drop.
    grace: Duration,
}

/// How a connection ended.
enum Ended {
    /// The client was closed (or dropped): the scheduler was told.
    Closed,
    /// The connection dropped, for this reason.
    Dropped(String),
}

impl Session {
    fn hello(&self, reconnect: bool) -> oxidask_protocol::Hello {
        if self.control {
            oxidask_protocol::Hello::control(self.name.clone())
        } else {
            hello(Role::Client {
                name: self.name.clone(),
                id: self.id,
                reconnect,
            })
        }
    }

    /// Connects and says hello, trying again every 50 ms for `timeout`.
    async fn connect(
        &self,
        timeout: Duration,
        reconnect: bool,
    ) -> Result<(Stream, String), String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let last = match self.try_once(reconnect).await {
                Ok(s) => return Ok(s),
                Err((true, why)) => return Err(why),
                Err((false, why)) => why,
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "{last}; is a scheduler running there? Start one with `oxidask scheduler`"
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// One attempt; `Err((final, why))`, final when trying again will not help.
    async fn try_once(&self, reconnect: bool) -> Result<(Stream, String), (bool, String)> {
        match self.security.connect(&self.addr).await {
            // Refused by TLS or the token: trying again will not help.
            Err(ProtocolError::Refused(why)) => Err((true, why)),
            Ok(mut s) => handshake_connect(&mut s, self.hello(reconnect))
                .await
                .map(|w| (s, w.dashboard))
                .map_err(|e| (matches!(e, ProtocolError::Refused(_)), e.to_string())),
            Err(e) => Err((false, e.to_string())),
        }
    }

    /// Reconnects after a drop, with backoff, for up to the grace; `Err` says why not.
    async fn reconnect(&self, stop: &Notify, why: &str) -> Result<Stream, Option<String>> {
        let started = tokio::time::Instant::now();
        let deadline = started + self.grace;
        let mut wait = crate::reconnect::FIRST_BACKOFF;
        let mut last = why.to_owned();
        loop {
            let now = tokio::time::Instant::now();
            if now >= deadline || self.id == 0 {
                return Err(Some(if self.id == 0 || self.grace.is_zero() {
                    last
                } else {
                    format!(
                        "the scheduler at {} was unreachable for {:.0} s (distributed.scheduler.client-reconnect-grace): {last}; this client's futures are lost",
                        self.addr,
                        self.grace.as_secs_f64()
                    )
                }));
            }
            tokio::select! {
                _ = tokio::time::sleep(wait.min(deadline - now)) => {}
                _ = stop.notified() => return Err(None),
            }
            let attempt = tokio::time::timeout(
                deadline
                    .saturating_duration_since(tokio::time::Instant::now())
                    .max(Duration::from_millis(100)),
                self.try_once(true),
            );
            let attempt = tokio::select! {
                r = attempt => r,
                _ = stop.notified() => return Err(None),
            };
            match attempt {
                Ok(Ok((s, _))) => {
                    eprintln!(
                        "oxidask client {}: reconnected to the scheduler at {} after {:.1} s",
                        self.name,
                        self.addr,
                        started.elapsed().as_secs_f64()
                    );
                    return Ok(s);
                }
                // Even a refusal is tried again: a proxy or a restarting scheduler closes
                // connections at once; the last reason is in the error past the grace.
                Ok(Err((_, why))) => last = why,
                Err(_) => last = "connecting timed out".into(),
            }
            wait = crate::reconnect::next_backoff(wait);
        }
    }
}

/// The client's I/O: one connection after another until the client closes or the
/// scheduler stays unreachable past the grace.
async fn run(
    session: Session,
    stream: Stream,
    shared: Arc<Shared>,
    mut rx: UnboundedReceiver<Outgoing>,
    stop: Arc<Notify>,
) {
    let mut stream = stream;
    let mut replay = Vec::new();
    let reason = loop {
        match connection(stream, &shared, &mut rx, &stop, std::mem::take(&mut replay)).await {
            Ended::Closed => break None,
            Ended::Dropped(why) => {
                if session.id != 0 && !session.grace.is_zero() {
                    eprintln!(
                        "oxidask client {}: the connection to the scheduler at {} dropped ({why}); reconnecting for up to {:.0} s",
                        session.name,
                        session.addr,
                        session.grace.as_secs_f64()
                    );
                }
                fail_unrepeatable_requests(&shared);
                match session.reconnect(&stop, &why).await {
                    Ok(s) => {
                        stream = s;
                        let st = shared.lock();
                        let mut log = shared.resend.lock().unwrap_or_else(|p| p.into_inner());
                        replay = log.replay(&st);
                        let mut pending: Vec<_> = st.pending_requests.iter().collect();
                        pending.sort_by_key(|(id, _)| **id);
                        replay.extend(pending.into_iter().map(|(_, m)| m.clone()));
                    }
                    Err(why) => break why,
                }
            }
        }
    };
    let mut st = shared.lock();
    st.lost = Some(reason.unwrap_or_else(|| "the client was closed".into()));
    st.replies.clear();
    st.pending_requests.clear();
    let callbacks: Vec<DoneCallback> = st.callbacks.drain().flat_map(|(_, v)| v).collect();
    shared.changed(&mut st);
    drop(st);
    for cb in callbacks {
        cb();
    }
}

/// Requests that may not be repeated fail when the connection drops (their waiters see the
/// reply channel close); the others stay to be sent again.
fn fail_unrepeatable_requests(shared: &Shared) {
    let mut st = shared.lock();
    let st = &mut *st;
    let pending = &st.pending_requests;
    st.replies.retain(|id, _| pending.contains_key(id));
}

/// One connection: writes what the client sends (after `replay`), applies what arrives.
async fn connection(
    stream: Stream,
    shared: &Arc<Shared>,
    rx: &mut UnboundedReceiver<Outgoing>,
    stop: &Notify,
    replay: Vec<ToScheduler>,
) -> Ended {
    let (rd, wr) = stream.into_split();
    let mut wr = BufWriter::with_capacity(1 << 16, wr);
    let writer = async {
        if !replay.is_empty() {
            if let Err(e) = write_frame(&mut wr, &replay).await {
                return e.to_string();
            }
        }
        while let Some(first) = rx.recv().await {
            let mut batch = Vec::new();
            let mut releases = Vec::new();
            let mut next = Some(first);
            while let Some(o) = next {
                match o {
                    Outgoing::Msg(m) => {
                        if !releases.is_empty() {
                            batch.push(ToScheduler::Release {
                                keys: std::mem::take(&mut releases),
                            });
                        }
                        batch.push(m);
                    }
                    Outgoing::Release(k) => releases.push(k),
                }
                next = if batch.len() < 1024 {
                    rx.try_recv().ok()
                } else {
                    None
                };
            }
            if !releases.is_empty() {
                batch.push(ToScheduler::Release { keys: releases });
            }
            // Noted before writing: a batch cut off by a drop is sent again.
            if batch
                .iter()
                .any(|m| matches!(m, ToScheduler::UpdateGraph { .. }))
            {
                let st = shared.lock();
                let mut log = shared.resend.lock().unwrap_or_else(|p| p.into_inner());
                for m in &batch {
                    log.record(m, &st);
                }
            }
            if let Err(e) = write_frame(&mut wr, &batch).await {
                return e.to_string();
            }
        }
        // Every sender is gone: the client is being dropped.
        std::future::pending().await
    };
    let mut rd = BufReader::with_capacity(1 << 16, rd);
    let limits = Limits::default();
    let reader = async {
        loop {
            match read_frame::<_, ToClient>(&mut rd, &limits).await {
                Ok(Some(msgs)) => apply(shared, msgs),
                Ok(None) => break "the scheduler closed the connection".to_owned(),
                Err(e) => break e.to_string(),
            }
        }
    };
    let ended = tokio::select! {
        why = reader => Ended::Dropped(why),
        why = writer => Ended::Dropped(why),
        _ = stop.notified() => Ended::Closed,
    };
    if let Ended::Closed = ended {
        // Tell the scheduler this is a close, not a drop: it releases the futures now.
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            write_frame(&mut wr, &[ToScheduler::Close]),
        )
        .await;
    }
    ended
}

fn apply(shared: &Shared, msgs: Vec<ToClient>) {
    let mut done = Vec::new();
    let mut st = shared.lock();
    for m in msgs {
        match m {
            ToClient::KeyInMemory { key, .. } => {
                let Ok(k) = key.to_key() else { continue };
                if let Some(e) = st.keys.get_mut(&k) {
                    e.status = KeyStatus::Finished;
                    if st.waiters > 0 {
                        st.changes.push(k);
                    }
                }
                if !st.callbacks.is_empty() {
                    st.take_done_callbacks(&k, &mut done);
                }
            }
            ToClient::KeyErred { key, error } => {
                let Ok(k) = key.to_key() else { continue };
                if let Some(e) = st.keys.get_mut(&k) {
                    if e.status != KeyStatus::Cancelled {
                        e.status = if error.kind == oxidask_protocol::ErrorKind::Cancelled {
                            KeyStatus::Cancelled
                        } else {
                            KeyStatus::Erred(Box::new(error))
                        };
                    }
                    if st.waiters > 0 {
                        st.changes.push(k);
                    }
                }
                if !st.callbacks.is_empty() {
                    st.take_done_callbacks(&k, &mut done);
                }
            }
            ToClient::Coord { request, reply } => {
                crate::coord::arrived(shared, &mut st, request, reply)
            }
            reply @ (ToClient::WhoHas { .. }
            | ToClient::Summary { .. }
            | ToClient::Story { .. }
            | ToClient::TaskStream { .. }
            | ToClient::Logs { .. }
            | ToClient::Restarted { .. }
            | ToClient::Retired { .. }
            | ToClient::AdaptiveTarget { .. }
            | ToClient::Moved { .. }
            | ToClient::Gathered { .. }) => {
                let request = match &reply {
                    ToClient::WhoHas { request, .. }
                    | ToClient::Summary { request, .. }
                    | ToClient::Story { request, .. }
                    | ToClient::TaskStream { request, .. }
                    | ToClient::Logs { request, .. }
                    | ToClient::Restarted { request, .. }
                    | ToClient::Retired { request, .. }
                    | ToClient::AdaptiveTarget { request, .. }
                    | ToClient::Moved { request, .. }
                    | ToClient::Gathered { request, .. } => *request,
                    _ => unreachable!(),
                };
                st.pending_requests.remove(&request);
                if let Some(tx) = st.replies.remove(&request) {
                    let _ = tx.send(reply);
                }
            }
        }
    }
    shared.changed(&mut st);
    drop(st);
    for cb in done {
        cb();
    }
}

/// A client that `compute()` may use without keeping it alive.
struct DefaultClient(Weak<Inner>);

impl DefaultClient {
    fn client(&self) -> Result<Client, Error> {
        match self.0.upgrade() {
            Some(inner) => Ok(Client { inner }),
            None => Err(scheduler_error(ClientError::Lost(
                "the default client was closed; connect a new one".into(),
            ))),
        }
    }
}

impl Compute for DefaultClient {
    fn compute(&self, graph: Graph, outputs: &[Key]) -> Result<Vec<Value>, Error> {
        self.client()?.compute_graph(graph, outputs)
    }

    fn persist(&self, graph: Graph, outputs: &[Key]) -> Result<Vec<Value>, Error> {
        self.client()?.persist_graph(graph, outputs)
    }

    fn resolve_remote(&self, graph: Graph) -> Result<Graph, Error> {
        // Resolved when sent (`send_graph`): this cluster's pieces by key, others fetched.
        Ok(graph)
    }

    fn name(&self) -> &'static str {
        "distributed"
    }
}

impl Compute for Client {
    fn compute(&self, graph: Graph, outputs: &[Key]) -> Result<Vec<Value>, Error> {
        self.compute_graph(graph, outputs)
    }

    fn persist(&self, graph: Graph, outputs: &[Key]) -> Result<Vec<Value>, Error> {
        self.persist_graph(graph, outputs)
    }

    fn resolve_remote(&self, graph: Graph) -> Result<Graph, Error> {
        // Resolved when sent (`send_graph`): this cluster's pieces by key, others fetched.
        Ok(graph)
    }

    fn name(&self) -> &'static str {
        "distributed"
    }
}

static LAST_CLIENT: Mutex<Option<Weak<Inner>>> = Mutex::new(None);

/// The client to use from here: inside a task running on a worker, a client of that worker's
/// scheduler (shared by the worker's tasks); elsewhere the most recently connected client.
///
/// A task that waits on the futures it submits gives up its worker thread while it waits
/// (Dask's secede/rejoin), so nested submits never deadlock the worker.
pub fn get_client() -> Result<Client, Error> {
    if let Some(ctx) = oxidask_worker::current() {
        static WORKER_CLIENT: Mutex<Option<(String, Client)>> = Mutex::new(None);
        let mut slot = WORKER_CLIENT.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((addr, c)) = slot.as_ref() {
            if *addr == ctx.scheduler && c.inner.shared.lock().lost.is_none() {
                return Ok(c.clone());
            }
        }
        let c = Client::builder()
            .address(ctx.scheduler.clone())
            .name(format!("{}-tasks", ctx.name))
            .set_as_default(false)
            .connect()?;
        *slot = Some((ctx.scheduler, c.clone()));
        return Ok(c);
    }
    LAST_CLIENT
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .and_then(|w| w.upgrade())
        .map(|inner| Client { inner })
        .ok_or_else(|| {
            scheduler_error(ClientError::Connect {
                address: String::new(),
                reason: "no client is connected in this process; use Client::connect first".into(),
            })
        })
}

/// Which futures [`Client::wait`] waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReturnWhen {
    /// Until every future is done.
    AllCompleted,
    /// Until at least one is done.
    FirstCompleted,
}

/// The outcome of [`Client::wait`]: indices into the futures passed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DoneAndNotDone {
    /// Finished, failed or cancelled.
    pub done: Vec<usize>,
    /// Still pending.
    pub not_done: Vec<usize>,
}

impl Client {
    /// A builder.
    pub fn builder() -> ClientBuilder {
        ClientBuilder {
            address: None,
            name: format!("client-{}", std::process::id()),
            timeout: None,
            set_as_default: true,
            security: None,
            direct_to_workers: None,
            control: false,
            reconnect_grace: None,
        }
    }

    /// Connects to the scheduler at `address` (`tcp://host:port`) and makes this client the
    /// one `compute()` uses.
    pub fn connect(address: impl Into<String>) -> Result<Client, Error> {
        Client::builder().address(address).connect()
    }

    /// Closes the connection now (the futures of this client stop being valid), without
    /// waiting for every handle to drop.
    pub fn close(&self) {
        self.inner.stop.notify_one();
    }

    /// True once the connection is closed or lost.
    pub fn is_closed(&self) -> bool {
        self.shared().lock().lost.is_some()
    }

    /// The scheduler's dashboard (`http://host:8787/status`), if it serves one.
    pub fn dashboard_link(&self) -> Option<&str> {
        Some(self.inner.dashboard.as_str()).filter(|d| !d.is_empty())
    }

    /// Task-stream records from sequence number `since` on (0: the oldest the scheduler
    /// keeps) and the number to ask from next time (Dask's `get_task_stream`).
    pub fn task_stream(
        &self,
        since: u64,
    ) -> Result<(Vec<oxidask_protocol::StreamRecord>, u64), Error> {
        match self.request(|request| ToScheduler::TaskStream { request, since })? {
            ToClient::TaskStream { records, next, .. } => Ok((records, next)),
            _ => Err(scheduler_error(ClientError::Rejected(
                "unexpected reply to task-stream".into(),
            ))),
        }
    }

    /// Recent log lines of the scheduler (`worker: None`) or of a worker (name or address).
    pub fn logs(&self, worker: Option<&str>) -> Result<Vec<String>, Error> {
        let worker = worker.map(str::to_owned);
        match self.request(|request| ToScheduler::Logs { request, worker })? {
            ToClient::Logs { lines, .. } => Ok(lines),
            _ => Err(scheduler_error(ClientError::Rejected(
                "unexpected reply to logs".into(),
            ))),
        }
    }

    /// The scheduler's address.
    pub fn address(&self) -> &str {
        &self.inner.address
    }

    /// Makes `compute()` on collections (in any thread) run on this client's cluster.
    pub fn set_as_default(&self) {
        let weak = Arc::downgrade(&self.inner);
        *LAST_CLIENT.lock().unwrap_or_else(|p| p.into_inner()) = Some(weak.clone());
        oxidask_core::compute::set_global_scheduler(Some(Arc::new(DefaultClient(weak))));
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    pub(crate) fn send(&self, msg: ToScheduler) -> Result<(), Error> {
        if let Some(l) = &self.shared().lock().lost {
            return Err(scheduler_error(ClientError::Lost(l.clone())));
        }
        self.shared()
            .tx
            .send(Outgoing::Msg(msg))
            .map_err(|_| scheduler_error(ClientError::Lost("the connection is closed".into())))
    }

    /// Whether to fetch from the worker at `addr` directly (else through the scheduler).
    fn direct(&self, addr: &str) -> bool {
        match self.inner.shared.direct_to_workers {
            Some(d) => d,
            None => !self
                .inner
                .shared
                .unreachable
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(addr),
        }
    }

    /// Sends a request and waits for its reply.
    pub(crate) fn request(&self, make: impl FnOnce(u64) -> ToScheduler) -> Result<ToClient, Error> {
        let id = self.shared().next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel();
        let msg = make(id);
        {
            let mut st = self.shared().lock();
            st.replies.insert(id, tx);
            if crate::reconnect::idempotent(&msg) {
                st.pending_requests.insert(id, msg.clone());
            }
        }
        self.send(msg)?;
        oxidask_worker::seceded(|| loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(r) => return Ok(r),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(l) = &self.shared().lock().lost {
                        return Err(scheduler_error(ClientError::Lost(l.clone())));
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let l = self.shared().lock().lost.clone().unwrap_or_else(|| {
                        "the connection to the scheduler dropped before it answered; the request was not repeated (it may or may not have taken effect)".into()
                    });
                    return Err(scheduler_error(ClientError::Lost(l)));
                }
            }
        })
    }

    /// Takes a reference on `key` (creating its entry as pending).
    pub(crate) fn hold(&self, key: Key) {
        let mut st = self.shared().lock();
        st.keys
            .entry(key)
            .and_modify(|e| e.refs += 1)
            .or_insert(KeyEntry {
                refs: 1,
                status: KeyStatus::Pending,
            });
    }

    /// Drops a reference on `key`; the last one releases it on the cluster.
    pub(crate) fn unhold(&self, key: Key) {
        let mut st = self.shared().lock();
        let last = match st.keys.get_mut(&key) {
            Some(e) => {
                e.refs -= 1;
                e.refs == 0
            }
            None => false,
        };
        if last {
            st.keys.remove(&key);
            drop(st);
            let _ = self
                .shared()
                .tx
                .send(Outgoing::Release(WireKey::from(&key)));
        }
    }

    /// Sends the tasks of `graph` that `wanted` need (in priority order) and holds `wanted`.
    pub(crate) fn send_graph(
        &self,
        graph: &Graph,
        wanted: &[Key],
        options: SubmitOptions,
    ) -> Result<(), Error> {
        // Pieces of collections persisted on this cluster are referenced by key.
        let resolved = crate::persist::resolve_in_place(self, graph)?;
        let graph = resolved.as_ref().unwrap_or(graph);
        let in_graph: Vec<Key> = wanted
            .iter()
            .filter(|k| graph.contains(k))
            .copied()
            .collect();
        let plan = graph.plan(
            &in_graph,
            PlanOptions {
                fuse: false,
                external_ok: true,
            },
        )?;
        // Large graphs go in parts, encoded and sent while the rest is still being converted.
        let mut tasks = Vec::with_capacity(plan.len().min(GRAPH_PART));
        for i in 0..plan.len() as u32 {
            let pos = plan.graph_position(i);
            let key = graph.key_at(pos);
            let task = graph.task_at(pos);
            if oxidask_core::remote::is_held_in_place(key, task, self.address()) {
                continue; // the scheduler has it
            }
            let spec = match spec_to_wire(key, task.spec()) {
                Ok(s) => s,
                Err(e) => {
                    if i as usize >= GRAPH_PART {
                        // Parts were sent: tell the scheduler the graph ends here, empty.
                        let _ = self.send(ToScheduler::UpdateGraph {
                            tasks: Vec::new(),
                            wanted: Vec::new(),
                            options,
                            more: false,
                        });
                    }
                    return Err(scheduler_error(ClientError::Unportable(e.message)));
                }
            };
            let deps = task.dependencies().iter().map(WireKey::from).collect();
            tasks.push(WireTask::new(WireKey::from(key), &spec, deps));
            if tasks.len() == GRAPH_PART && (i as usize) + 1 < plan.len() {
                let part = std::mem::replace(&mut tasks, Vec::with_capacity(GRAPH_PART));
                self.send(ToScheduler::UpdateGraph {
                    tasks: part,
                    wanted: Vec::new(),
                    options: options.clone(),
                    more: true,
                })?;
            }
        }
        {
            let mut st = self.shared().lock();
            for k in wanted {
                st.keys
                    .entry(*k)
                    .and_modify(|e| {
                        e.refs += 1;
                        // Submitted again after a cancel or a restart: computed afresh.
                        if e.status == KeyStatus::Cancelled {
                            e.status = KeyStatus::Pending;
                        }
                    })
                    .or_insert(KeyEntry {
                        refs: 1,
                        status: KeyStatus::Pending,
                    });
            }
        }
        let result = self.send(ToScheduler::UpdateGraph {
            tasks,
            wanted: wanted.iter().map(WireKey::from).collect(),
            options,
            more: false,
        });
        if result.is_err() {
            for k in wanted {
                self.unhold(*k);
            }
        }
        result
    }

    /// Starts computing `d` on the cluster; the future holds its result there.
    pub fn submit<T: Data + Clone>(&self, d: &Delayed<T>) -> Result<Future<T>, Error> {
        self.submit_with(d, SubmitOptions::default())
    }

    /// [`Client::submit`] with retries, resources, worker restrictions or a priority.
    pub fn submit_with<T: Data + Clone>(
        &self,
        d: &Delayed<T>,
        options: SubmitOptions,
    ) -> Result<Future<T>, Error> {
        let mut g = Graph::new();
        d.build_graph(&mut g);
        self.send_graph(&g, &[d.key()], options)?;
        Ok(Future::adopt(self.clone(), d.key()))
    }

    /// Submits one task per item, as one graph: `client.map(0..100, |i| inc(i))`.
    pub fn map<I, T: Data + Clone>(
        &self,
        items: impl IntoIterator<Item = I>,
        f: impl FnMut(I) -> Delayed<T>,
    ) -> Result<Vec<Future<T>>, Error> {
        self.map_with(items, f, SubmitOptions::default())
    }

    /// [`Client::map`] with options.
    pub fn map_with<I, T: Data + Clone>(
        &self,
        items: impl IntoIterator<Item = I>,
        f: impl FnMut(I) -> Delayed<T>,
        options: SubmitOptions,
    ) -> Result<Vec<Future<T>>, Error> {
        let ds: Vec<Delayed<T>> = items.into_iter().map(f).collect();
        let mut g = Graph::with_capacity(ds.len());
        for d in &ds {
            d.build_graph(&mut g);
        }
        let keys: Vec<Key> = ds.iter().map(|d| d.key()).collect();
        self.send_graph(&g, &keys, options)?;
        Ok(keys
            .into_iter()
            .map(|k| Future::adopt(self.clone(), k))
            .collect())
    }

    /// Submits the tasks of `graph` that `keys` need and returns a future for each key, in
    /// order: the untyped form of [`Client::submit`] and [`Client::map`], for front ends
    /// (Python) that build graphs themselves.
    pub fn submit_graph(
        &self,
        graph: &Graph,
        keys: &[Key],
        options: SubmitOptions,
    ) -> Result<Vec<Future<()>>, Error> {
        self.send_graph(graph, keys, options)?;
        Ok(keys
            .iter()
            .map(|k| Future::adopt(self.clone(), *k))
            .collect())
    }

    /// A new future for `key`, which the cluster holds for some other future or client (Dask's
    /// `Future(key)`); it keeps the key alive while it lives.
    pub fn future_of(&self, key: Key) -> Future<()> {
        self.hold(key);
        Future::adopt(self.clone(), key)
    }

    /// The values of futures of any type, as type-erased values decoded by type name.
    pub fn gather_values<T>(
        &self,
        futures: &[Future<T>],
        timeout: Option<Duration>,
    ) -> Result<Vec<Value>, Error> {
        let keys: Vec<Key> = futures.iter().map(|f| f.key()).collect();
        self.gather_keys(&keys, timeout)
    }

    /// Stores type-erased values on workers under the given keys (see [`Client::scatter`]).
    pub fn scatter_values(
        &self,
        values: Vec<(Key, Value)>,
        broadcast: bool,
    ) -> Result<Vec<Future<()>>, Error> {
        let mut pairs = Vec::with_capacity(values.len());
        let mut keys = Vec::with_capacity(values.len());
        for (key, v) in values {
            let wv = WireValue::from_value(&v)
                .map_err(|e| scheduler_error(ClientError::Unportable(e.message)))?;
            keys.push(key);
            pairs.push((WireKey::from(&key), wv));
        }
        self.scatter_wire(keys, pairs, broadcast)
    }

    fn scatter_wire<T>(
        &self,
        keys: Vec<Key>,
        pairs: Vec<(WireKey, WireValue)>,
        broadcast: bool,
    ) -> Result<Vec<Future<T>>, Error> {
        for k in &keys {
            self.hold(*k);
        }
        let futures: Vec<Future<T>> = keys
            .iter()
            .map(|k| Future::adopt(self.clone(), *k))
            .collect();
        self.send(ToScheduler::Scatter {
            values: pairs,
            broadcast,
        })?;
        let statuses = self.wait_keys(&keys, None, ReturnWhen::AllCompleted)?;
        for (k, s) in keys.iter().zip(statuses) {
            if let KeyStatus::Erred(e) = s {
                return Err(from_wire(*k, &e));
            }
        }
        Ok(futures)
    }

    /// Runs a graph and returns the values of `outputs` (the `Compute` implementation).
    pub fn compute_graph(&self, graph: Graph, outputs: &[Key]) -> Result<Vec<Value>, Error> {
        let mut distinct: Vec<Key> = Vec::with_capacity(outputs.len());
        let mut seen = rustc_hash::FxHashSet::default();
        for k in outputs {
            if seen.insert(*k) {
                distinct.push(*k);
            }
        }
        self.send_graph(&graph, &distinct, SubmitOptions::default())?;
        // Held while gathering; dropping them releases the keys on the cluster.
        let futures: Vec<Future<()>> = distinct
            .iter()
            .map(|k| Future::adopt(self.clone(), *k))
            .collect();
        let values = self.gather_keys(&distinct, None)?;
        drop(futures);
        let by_key: FxHashMap<Key, Value> = distinct.into_iter().zip(values).collect();
        Ok(outputs.iter().map(|k| by_key[k].clone()).collect())
    }

    /// Waits for `keys`; returns the status of each once none is pending.
    pub(crate) fn wait_keys(
        &self,
        keys: &[Key],
        timeout: Option<Duration>,
        when: ReturnWhen,
    ) -> Result<Vec<KeyStatus>, Error> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let is_pending = |st: &ClientState, k: &Key| {
            st.keys
                .get(k)
                .is_some_and(|e| e.status == KeyStatus::Pending)
        };
        let statuses = |st: &ClientState| -> Vec<KeyStatus> {
            keys.iter()
                .map(|k| {
                    st.keys
                        .get(k)
                        .map_or(KeyStatus::Cancelled, |e| e.status.clone())
                })
                .collect()
        };
        oxidask_worker::seceded(|| {
            let shared = self.shared();
            let mut st = shared.lock();
            let mut pending: rustc_hash::FxHashSet<Key> = keys
                .iter()
                .filter(|k| is_pending(&st, k))
                .copied()
                .collect();
            let distinct = keys.iter().collect::<rustc_hash::FxHashSet<_>>().len();
            let satisfied = |pending: usize| match when {
                ReturnWhen::AllCompleted => pending == 0,
                ReturnWhen::FirstCompleted => pending < distinct || distinct == 0,
            };
            if satisfied(pending.len()) {
                return Ok(statuses(&st));
            }
            st.waiters += 1;
            let mut seen = st.changes_base + st.changes.len() as u64;
            let result = loop {
                if let Some(l) = &st.lost {
                    break Err(scheduler_error(ClientError::Lost(l.clone())));
                }
                let wait = match deadline {
                    Some(d) => {
                        let now = Instant::now();
                        if now >= d {
                            break Err(scheduler_error(ClientError::Timeout(
                                timeout.unwrap_or_default(),
                            )));
                        }
                        d - now
                    }
                    None => Duration::from_secs(3600),
                };
                st = shared
                    .cv
                    .wait_timeout(st, wait)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
                let from = (seen - st.changes_base) as usize;
                for k in &st.changes[from..] {
                    if pending.contains(k) && !is_pending(&st, k) {
                        pending.remove(k);
                    }
                }
                seen = st.changes_base + st.changes.len() as u64;
                // Keys cancelled or released locally change without a message.
                if pending.len() < 64 {
                    pending.retain(|k| is_pending(&st, k));
                }
                if satisfied(pending.len()) {
                    break Ok(statuses(&st));
                }
            };
            st.waiters -= 1;
            if st.waiters == 0 {
                st.changes_base += st.changes.len() as u64;
                st.changes.clear();
            }
            result
        })
    }

    /// Waits for futures (Dask's `wait`): all of them, or the first, within `timeout`.
    pub fn wait<T>(
        &self,
        futures: &[Future<T>],
        timeout: Option<Duration>,
        when: ReturnWhen,
    ) -> Result<DoneAndNotDone, Error> {
        let keys: Vec<Key> = futures.iter().map(|f| f.key()).collect();
        let statuses = self.wait_keys(&keys, timeout, when)?;
        let mut out = DoneAndNotDone::default();
        for (i, s) in statuses.iter().enumerate() {
            if *s == KeyStatus::Pending {
                out.not_done.push(i);
            } else {
                out.done.push(i);
            }
        }
        Ok(out)
    }

    /// The raw values of finished keys, fetched from the workers holding them.
    pub(crate) fn fetch_wire(
        &self,
        keys: &[Key],
        timeout: Option<Duration>,
    ) -> Result<Vec<WireValue>, Error> {
        let deadline = Instant::now() + timeout.unwrap_or(Duration::from_secs(300));
        let mut out: Vec<Option<WireValue>> = vec![None; keys.len()];
        loop {
            let statuses = self.wait_keys(keys, timeout, ReturnWhen::AllCompleted)?;
            for (k, s) in keys.iter().zip(&statuses) {
                match s {
                    KeyStatus::Finished => {}
                    KeyStatus::Erred(e) => return Err(from_wire(*k, e)),
                    KeyStatus::Cancelled => {
                        return Err(scheduler_error(ClientError::Cancelled(*k)))
                    }
                    KeyStatus::Pending => unreachable!("waited for all"),
                }
            }
            let missing: Vec<usize> = (0..keys.len()).filter(|&i| out[i].is_none()).collect();
            if missing.is_empty() {
                return Ok(out.into_iter().map(|v| v.expect("all fetched")).collect());
            }
            let wks: Vec<WireKey> = missing.iter().map(|&i| WireKey::from(&keys[i])).collect();
            let reply = self.request(|request| ToScheduler::WhoHas {
                request,
                keys: wks.clone(),
            })?;
            let ToClient::WhoHas { locations, .. } = reply else {
                return Err(scheduler_error(ClientError::Rejected(
                    "unexpected reply to who-has".into(),
                )));
            };
            let mut by_addr: FxHashMap<String, Vec<(usize, WireKey)>> = FxHashMap::default();
            for (&i, (wk, addrs)) in missing.iter().zip(locations) {
                if let Some(a) = addrs.into_iter().next() {
                    by_addr.entry(a).or_default().push((i, wk));
                }
            }
            let shared = self.shared().clone();
            let (tx, rx) = mpsc::channel();
            let mut via_scheduler = Vec::new();
            let mut n = 0;
            for (addr, items) in by_addr {
                if !self.direct(&addr) {
                    via_scheduler.push((addr, items));
                    continue;
                }
                n += 1;
                let shared = shared.clone();
                let tx = tx.clone();
                self.inner.rt.spawn(async move {
                    let keys: Vec<WireKey> = items.iter().map(|(_, k)| *k).collect();
                    let got = shared.pool.get(&addr, keys).await;
                    let _ = tx.send((addr, items, got));
                });
            }
            drop(tx);
            let mut received: Vec<_> = Vec::new();
            for (addr, items, got) in
                oxidask_worker::seceded(|| rx.iter().take(n).collect::<Vec<_>>())
            {
                match got {
                    Ok(got) => received.push((items, got)),
                    // Cannot reach the worker (a firewall, a tunnel to the scheduler only):
                    // ask the scheduler to fetch it, and from now on for this worker.
                    Err(ProtocolError::Io(_)) if self.inner.shared.direct_to_workers.is_none() => {
                        self.inner
                            .shared
                            .unreachable
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(addr.clone());
                        via_scheduler.push((addr, items));
                    }
                    // The holder left or refused: ask who has it again.
                    Err(_) => {}
                }
            }
            for (addr, items) in via_scheduler {
                let keys: Vec<WireKey> = items.iter().map(|(_, k)| *k).collect();
                let reply = self.request(|request| ToScheduler::Gather {
                    request,
                    worker: addr.clone(),
                    keys,
                })?;
                if let ToClient::Gathered { values, .. } = reply {
                    received.push((items, values));
                }
            }
            for (items, got) in received {
                let mut got: FxHashMap<WireKey, Fetched> = got.into_iter().collect();
                for (i, wk) in items {
                    match got.remove(&wk) {
                        Some(Fetched::Value(v)) => out[i] = Some(v),
                        Some(Fetched::Unsendable(why)) => {
                            return Err(scheduler_error(ClientError::Unportable(format!(
                                "the result of {} cannot be sent from its worker: {why}",
                                keys[i]
                            ))))
                        }
                        Some(Fetched::Missing) | None => {}
                    }
                }
            }
            if out.iter().any(|v| v.is_none()) {
                // A holder died after reporting: the scheduler recomputes; ask again shortly.
                if Instant::now() >= deadline {
                    return Err(scheduler_error(ClientError::Lost(
                        "no worker holds some results any more".into(),
                    )));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Values of finished keys as type-erased values (decoded by type name).
    pub(crate) fn gather_keys(
        &self,
        keys: &[Key],
        timeout: Option<Duration>,
    ) -> Result<Vec<Value>, Error> {
        let wire = self.fetch_wire(keys, timeout)?;
        wire.iter()
            .map(|w| {
                w.to_value()
                    .map_err(|e| scheduler_error(ClientError::Rejected(e.message)))
            })
            .collect()
    }

    /// The results of futures, fetched directly from the workers holding them.
    pub fn gather<T: Data>(&self, futures: &[Future<T>]) -> Result<Vec<T>, Error> {
        let keys: Vec<Key> = futures.iter().map(|f| f.key()).collect();
        let wire = self.fetch_wire(&keys, None)?;
        keys.iter()
            .zip(wire)
            .map(|(k, w)| crate::future::decode_typed::<T>(*k, &w))
            .collect()
    }

    /// Stores values on workers (spread over them, or on every worker with `broadcast`) and
    /// returns futures for them.
    pub fn scatter<T: Data + Clone>(
        &self,
        values: Vec<T>,
        broadcast: bool,
    ) -> Result<Vec<Future<T>>, Error> {
        let mut pairs = Vec::with_capacity(values.len());
        let mut keys = Vec::with_capacity(values.len());
        for v in values {
            let d = Delayed::value(v.clone());
            let key = d.key();
            let wv = WireValue::from_value(&Value::new(v))
                .map_err(|e| scheduler_error(ClientError::Unportable(e.message)))?;
            keys.push(key);
            pairs.push((WireKey::from(&key), wv));
        }
        self.scatter_wire(keys, pairs, broadcast)
    }

    /// Stops computing these futures (and this client's work that depends on them).
    pub fn cancel<T>(&self, futures: &[Future<T>]) -> Result<(), Error> {
        let keys: Vec<Key> = futures.iter().map(|f| f.key()).collect();
        self.cancel_keys(&keys)
    }

    /// [`Client::cancel`] by key (the keys must be held by futures of this client).
    pub fn cancel_keys(&self, keys: &[Key]) -> Result<(), Error> {
        let mut done = Vec::new();
        {
            let mut st = self.shared().lock();
            for k in keys {
                if let Some(e) = st.keys.get_mut(k) {
                    // Finished or failed futures are cancelled too (their results released),
                    // as in Dask.
                    if e.status != KeyStatus::Cancelled {
                        let was_pending = e.status == KeyStatus::Pending;
                        e.status = KeyStatus::Cancelled;
                        if was_pending && st.waiters > 0 {
                            st.changes.push(*k);
                        }
                    }
                }
                st.take_done_callbacks(k, &mut done);
            }
            self.shared().changed(&mut st);
        }
        for cb in done {
            cb();
        }
        self.send(ToScheduler::Cancel {
            keys: keys.iter().map(WireKey::from).collect(),
        })
    }

    /// Runs `callback` once `key` is no longer pending: at once (on this thread) if it is
    /// already done, else on the client's I/O thread when it finishes, fails, is cancelled
    /// or the connection is lost. The key must be held by a future of this client.
    pub fn on_done(&self, key: Key, callback: DoneCallback) {
        let mut st = self.shared().lock();
        let pending = st
            .keys
            .get(&key)
            .is_some_and(|e| e.status == KeyStatus::Pending);
        if pending && st.lost.is_none() {
            st.callbacks.entry(key).or_default().push(callback);
        } else {
            drop(st);
            callback();
        }
    }

    /// Keeps computing these futures even after every handle is dropped (Dask's
    /// `fire_and_forget`).
    pub fn fire_and_forget<T>(&self, futures: &[Future<T>]) -> Result<(), Error> {
        let keys = futures.iter().map(|f| WireKey::from(&f.key())).collect();
        self.send(ToScheduler::Pin { keys })
    }

    /// Where each key's value is held: the data addresses of the workers holding it.
    pub fn who_has(&self, keys: &[Key]) -> Result<Vec<Vec<String>>, Error> {
        let wks: Vec<WireKey> = keys.iter().map(WireKey::from).collect();
        match self.request(|request| ToScheduler::WhoHas {
            request,
            keys: wks.clone(),
        })? {
            ToClient::WhoHas { locations, .. } => {
                Ok(locations.into_iter().map(|(_, addrs)| addrs).collect())
            }
            _ => Err(scheduler_error(ClientError::Rejected(
                "unexpected reply to who-has".into(),
            ))),
        }
    }

    /// The cluster at a glance: workers, threads, memory, tasks.
    pub fn summary(&self) -> Result<ClusterSummary, Error> {
        match self.request(|request| ToScheduler::Summary { request })? {
            ToClient::Summary { summary, .. } => Ok(summary),
            _ => Err(scheduler_error(ClientError::Rejected(
                "unexpected reply to summary".into(),
            ))),
        }
    }

    /// The transitions the scheduler logged for `key`, oldest first.
    pub fn story(&self, key: &Key) -> Result<Vec<String>, Error> {
        let key = WireKey::from(key);
        match self.request(|request| ToScheduler::Story { request, key })? {
            ToClient::Story { lines, .. } => Ok(lines),
            _ => Err(scheduler_error(ClientError::Rejected(
                "unexpected reply to story".into(),
            ))),
        }
    }

    /// Restarts the cluster, as Dask's `Client.restart`: the scheduler forgets every task
    /// (the futures of every client fail as cancelled), tells every worker to restart — each
    /// worker process exits and its nanny starts a fresh one — and this returns once as many
    /// workers as there were have joined again, or fails with
    /// [`ClientError::RestartTimeout`] after `timeout`. Workers started with `--no-nanny`
    /// just exit (something else must start them again).
    ///
    /// ```no_run
    /// # let client = oxidask_client::Client::connect("tcp://127.0.0.1:8786").unwrap();
    /// client.restart(std::time::Duration::from_secs(60)).unwrap();
    /// ```
    pub fn restart(&self, timeout: Duration) -> Result<(), Error> {
        let n = match self.request(|request| ToScheduler::Restart { request })? {
            ToClient::Restarted { workers, .. } => workers as usize,
            _ => {
                return Err(scheduler_error(ClientError::Rejected(
                    "unexpected reply to restart".into(),
                )))
            }
        };
        let deadline = Instant::now() + timeout;
        loop {
            let back = self.summary()?.workers.len();
            if back >= n {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(scheduler_error(ClientError::RestartTimeout(format!(
                    "waited {:.1} s for {n} worker(s) to come back after restarting, but only {back} did; workers started with --no-nanny do not come back by themselves (start them again), or give restart a longer timeout",
                    timeout.as_secs_f64()
                ))));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until at least `n` workers are connected.
    pub fn wait_for_workers(&self, n: usize, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.summary()?.workers.len() >= n {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(scheduler_error(ClientError::Timeout(timeout)));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Shows a progress bar until every future is done.
    pub fn progress<T>(&self, futures: &[Future<T>]) -> Result<(), Error> {
        let bar = indicatif::ProgressBar::new(futures.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "[{elapsed_precise}] {bar:40} {pos}/{len} tasks ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let keys: Vec<Key> = futures.iter().map(|f| f.key()).collect();
        loop {
            let done = {
                let st = self.shared().lock();
                keys.iter()
                    .filter(|k| {
                        st.keys
                            .get(k)
                            .is_some_and(|e| e.status != KeyStatus::Pending)
                    })
                    .count()
            };
            bar.set_position(done as u64);
            if done == keys.len() {
                bar.finish();
                return Ok(());
            }
            if let Some(l) = &self.shared().lock().lost {
                bar.abandon();
                return Err(scheduler_error(ClientError::Lost(l.clone())));
            }
            let _ = self.wait_keys(
                &keys,
                Some(Duration::from_millis(100)),
                ReturnWhen::AllCompleted,
            );
        }
    }
}
