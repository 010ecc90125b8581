//! Dask's coordination objects: named, cluster-wide [`Variable`], [`Queue`], [`Lock`],
//! [`Semaphore`], [`Event`], [`Pub`]/[`Sub`], published datasets
//! ([`Client::publish_dataset`]) and the event log ([`Client::log_event`]).
//!
//! They live in the scheduler: every process holding a client of the cluster (tasks too,
//! through [`crate::get_client`]) sees the same object under the same name. Blocking calls
//! wait in the scheduler, whose clock runs their timeouts; a task that blocks gives its worker
//! thread up meanwhile. A lock or lease is held by the client connection that took it and is
//! returned when that connection closes (its process exits or dies). Values are encoded with
//! their `Data` codec; futures may be stored as they are, and stay computed while stored.
//!
//! ```
//! use oxidask_client::{LocalCluster, Queue, Variable};
//! use std::time::Duration;
//!
//! let cluster = LocalCluster::builder().workers(1).start().unwrap();
//! let client = cluster.client().unwrap();
//! let x = Variable::new("x", &client);
//! x.set(&42i64).unwrap();
//! assert_eq!(x.get::<i64>(None).unwrap().into_value().unwrap(), 42);
//!
//! let q = Queue::new("jobs", &client, 0).unwrap();
//! q.put(&"a".to_string(), None).unwrap();
//! assert_eq!(q.get::<String>(Some(Duration::from_secs(1))).unwrap().into_value().unwrap(), "a");
//! assert!(q.get::<String>(Some(Duration::ZERO)).unwrap_err().to_string().contains("timed out"));
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::Duration;

use oxidask_core::codec::Reader;
use oxidask_core::{Data, Error, Key};
use oxidask_protocol::frame::{catch_decode, encode_detached};
use oxidask_protocol::{
    CoordErrorKind, CoordOp, CoordReply, CoordValue, Payload, ToClient, ToScheduler, WireKey,
};

use crate::client::{Client, ClientState, KeyEntry, KeyStatus, Outgoing, Shared};
use crate::error::{scheduler_error, ClientError};
use crate::future::Future;

/// Why a coordination request did not succeed; carried by
/// `oxidask_core::Error::Scheduler` (see [`coord_error`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoordError {
    /// The timeout passed before the request could complete.
    #[error("timed out after {after:?} waiting on {what}")]
    Timeout {
        /// The object waited on (`Variable 'x'`).
        what: String,
        /// The timeout given.
        after: Duration,
    },
    /// No dataset of that name is published.
    #[error("{0}")]
    NotFound(String),
    /// A dataset of that name is published already.
    #[error("{0}")]
    AlreadyExists(String),
    /// A lock or lease released by someone who does not hold it.
    #[error("{0}")]
    NotHeld(String),
    /// A stored future is not known to the scheduler.
    #[error("{0}")]
    UnknownFuture(String),
    /// A scheduler limit would be passed (items in a queue, bytes held); the message says
    /// what to do.
    #[error("{0}")]
    Limit(String),
    /// Arguments the object cannot honour.
    #[error("{0}")]
    Invalid(String),
    /// The stored value is not of the type asked for.
    #[error("{what} holds a value that is not a `{expected}`: {reason}")]
    WrongType {
        /// The object.
        what: String,
        /// The type asked for.
        expected: &'static str,
        /// What the decoder said.
        reason: String,
    },
    /// The caller was interrupted while waiting (the request was withdrawn).
    #[error("interrupted while waiting on {0}")]
    Interrupted(String),
}

/// The [`CoordError`] inside an error, if it is one.
pub fn coord_error(e: &Error) -> Option<&CoordError> {
    match e {
        Error::Scheduler { source, .. } => source.downcast_ref::<CoordError>(),
        _ => None,
    }
}

fn err(e: CoordError) -> Error {
    Error::Scheduler {
        scheduler: "distributed",
        source: Box::new(e),
    }
}

/// What a coordination object handed back: a value, or a future stored in it.
#[derive(Debug)]
pub enum Stored<T> {
    /// A value.
    Value(T),
    /// A future (held by this client from now on).
    Future(Future<T>),
}

impl<T: Data> Stored<T> {
    /// The value, waiting for and fetching a future's result if it is one.
    pub fn into_value(self) -> Result<T, Error> {
        match self {
            Stored::Value(v) => Ok(v),
            Stored::Future(f) => f.result(),
        }
    }
}

fn encode<T: Data>(value: &T) -> CoordValue {
    let head = encode_detached(&std::any::type_name::<T>().to_owned());
    let body = encode_detached(value);
    let mut data = Vec::with_capacity(head.0.len() + body.0.len());
    data.extend_from_slice(&head.0);
    data.extend_from_slice(&body.0);
    CoordValue {
        data: Payload(data.into()),
        keys: Vec::new(),
    }
}

fn future_value(key: Key) -> CoordValue {
    CoordValue {
        data: Payload::default(),
        keys: vec![WireKey::from(&key)],
    }
}

fn decode<T: Data>(what: &str, data: &Payload) -> Result<T, Error> {
    let wrong = |reason: String| {
        err(CoordError::WrongType {
            what: what.to_owned(),
            expected: std::any::type_name::<T>(),
            reason,
        })
    };
    let (name, value) = catch_decode("coordination value", || {
        let mut r = Reader::new(&data.0);
        let name = String::decode(&mut r)?;
        if name != std::any::type_name::<T>() {
            return Ok((name, None));
        }
        let v = T::decode(&mut r)?;
        r.finish()?;
        Ok((name, Some(v)))
    })
    .map_err(|e| wrong(format!("{e} (was it stored by a Python client?)")))?;
    value.ok_or_else(|| wrong(format!("it holds a `{name}`")))
}

/// The next id for lock holders, leases and subscribers of this process.
fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn timeout_ms(t: Option<Duration>) -> Option<u64> {
    t.map(|t| t.as_millis().min(u64::MAX as u128) as u64)
}

/// A reply routed by the client's I/O thread: the keys it hands over are held from here on
/// (created as pending if this client did not know them, and claimed again with
/// `CoordOp::Hold` so that a release this client sent before the reply arrived cannot leave
/// them unheld).
pub(crate) fn arrived(shared: &Shared, st: &mut ClientState, request: u64, reply: CoordReply) {
    let keys: Vec<Key> = reply.keys().filter_map(|k| k.to_key().ok()).collect();
    let Some(tx) = st.replies.remove(&request) else {
        // Nobody waits (the request was withdrawn): give back what the scheduler handed over.
        for k in keys {
            if !st.keys.contains_key(&k) {
                let _ = shared.tx.send(Outgoing::Release(WireKey::from(&k)));
            }
        }
        return;
    };
    let mut claim = Vec::new();
    for &k in &keys {
        match st.keys.get_mut(&k) {
            Some(e) => e.refs += 1,
            None => {
                st.keys.insert(
                    k,
                    KeyEntry {
                        refs: 1,
                        status: KeyStatus::Pending,
                    },
                );
                claim.push(WireKey::from(&k));
            }
        }
    }
    if !claim.is_empty() {
        // Not an UpdateGraph: that could end a graph another thread is sending in parts.
        let _ = shared.tx.send(Outgoing::Msg(ToScheduler::Coord {
            request: 0,
            op: CoordOp::Hold { keys: claim },
        }));
    }
    if tx.send(ToClient::Coord { request, reply }).is_err() {
        for k in keys {
            unhold_locked(shared, st, k);
        }
    }
}

fn unhold_locked(shared: &Shared, st: &mut ClientState, k: Key) {
    if let Some(e) = st.keys.get_mut(&k) {
        e.refs -= 1;
        if e.refs == 0 {
            st.keys.remove(&k);
            let _ = shared.tx.send(Outgoing::Release(WireKey::from(&k)));
        }
    }
}

impl Client {
    /// Sends a coordination request and waits for its answer (the scheduler runs the
    /// timeout). `interrupted` is polled every 50 ms; when it says so the request is withdrawn.
    /// Returns the reply and the keys it handed over, each already held once by this client
    /// (the caller adopts them as futures).
    fn coord_raw(
        &self,
        op: CoordOp,
        interrupted: Option<&dyn Fn() -> bool>,
        what: &dyn Fn() -> String,
    ) -> Result<(CoordReply, Vec<Key>), Error> {
        let shared = self.shared();
        let id = shared.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel();
        shared.lock().replies.insert(id, tx);
        if let Err(e) = self.send(ToScheduler::Coord { request: id, op }) {
            shared.lock().replies.remove(&id);
            return Err(e);
        }
        let got = oxidask_worker::seceded(|| loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(r) => return Ok(r),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(l) = &shared.lock().lost {
                        return Err(scheduler_error(ClientError::Lost(l.clone())));
                    }
                    if interrupted.is_some_and(|f| f()) {
                        shared.lock().replies.remove(&id);
                        let _ = self.send(ToScheduler::Coord {
                            request: 0,
                            op: CoordOp::Abandon { request: id },
                        });
                        // A reply routed before the withdrawal: give its keys back.
                        if let Ok(ToClient::Coord { reply, .. }) = rx.try_recv() {
                            let mut st = shared.lock();
                            for k in reply.keys().filter_map(|k| k.to_key().ok()) {
                                unhold_locked(shared, &mut st, k);
                            }
                        }
                        return Err(err(CoordError::Interrupted(what())));
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let l = shared.lock().lost.clone().unwrap_or_default();
                    return Err(scheduler_error(ClientError::Lost(l)));
                }
            }
        })?;
        let ToClient::Coord { reply, .. } = got else {
            return Err(scheduler_error(ClientError::Rejected(format!(
                "the scheduler answered a coordination request with {got:?}"
            ))));
        };
        let keys = reply.keys().filter_map(|k| k.to_key().ok()).collect();
        Ok((reply, keys))
    }

    /// A coordination request as it is on the wire (what the typed objects and the Python
    /// bindings are made of). Returns the reply and a future for each key it hands over, in
    /// order; `Failed` and `TimedOut` replies are returned, not turned into errors.
    /// `interrupted` is polled every 50 ms while waiting; when it returns true the request is
    /// withdrawn and [`CoordError::Interrupted`] returned.
    pub fn coordinate(
        &self,
        op: CoordOp,
        interrupted: Option<&dyn Fn() -> bool>,
    ) -> Result<(CoordReply, Vec<Future<()>>), Error> {
        let (reply, keys) = self.coord_raw(op, interrupted, &|| "a coordination object".into())?;
        let futures = keys
            .into_iter()
            .map(|k| Future::adopt(self.clone(), k))
            .collect();
        Ok((reply, futures))
    }

    /// A request whose `Failed` replies become errors and `TimedOut` a [`CoordError::Timeout`].
    fn coord(
        &self,
        op: CoordOp,
        what: &dyn Fn() -> String,
        timeout: Option<Duration>,
    ) -> Result<(CoordReply, Vec<Key>), Error> {
        let (reply, keys) = self.coord_raw(op, None, what)?;
        match reply {
            CoordReply::Failed { kind, message } => Err(err(match kind {
                CoordErrorKind::NotFound => CoordError::NotFound(message),
                CoordErrorKind::AlreadyExists => CoordError::AlreadyExists(message),
                CoordErrorKind::NotHeld => CoordError::NotHeld(message),
                CoordErrorKind::UnknownKey => CoordError::UnknownFuture(message),
                CoordErrorKind::Limit => CoordError::Limit(message),
                CoordErrorKind::Invalid => CoordError::Invalid(message),
            })),
            CoordReply::TimedOut => Err(err(CoordError::Timeout {
                what: what(),
                after: timeout.unwrap_or_default(),
            })),
            r => Ok((r, keys)),
        }
    }

    fn stored<T: Data>(&self, what: &str, v: CoordValue) -> Result<Stored<T>, Error> {
        if v.data.0.is_empty() && v.keys.len() == 1 {
            if let Ok(k) = v.keys[0].to_key() {
                return Ok(Stored::Future(Future::adopt(self.clone(), k)));
            }
        }
        // Keys inside a value stored by another runtime are released with it.
        for k in v.keys.iter().filter_map(|k| k.to_key().ok()) {
            drop(Future::<()>::adopt(self.clone(), k));
        }
        decode(what, &v.data).map(Stored::Value)
    }

    /// Publishes `value` under `name` for other clients ([`Client::get_dataset`]); fails with
    /// [`CoordError::AlreadyExists`] if the name is taken (unpublish it first).
    pub fn publish_dataset<T: Data>(&self, name: &str, value: &T) -> Result<(), Error> {
        self.publish(name, encode(value))
    }

    /// Publishes a future: its result stays on the cluster while it is published, even after
    /// every client lets its futures go.
    pub fn publish_dataset_future<T>(&self, name: &str, future: &Future<T>) -> Result<(), Error> {
        self.publish(name, future_value(future.key()))
    }

    fn publish(&self, name: &str, value: CoordValue) -> Result<(), Error> {
        let op = CoordOp::DatasetPublish {
            name: name.to_owned(),
            value,
            overwrite: false,
        };
        self.coord(op, &|| format!("dataset '{name}'"), None)
            .map(drop)
    }

    /// A published dataset; [`CoordError::NotFound`] if there is none of that name.
    pub fn get_dataset<T: Data>(&self, name: &str) -> Result<Stored<T>, Error> {
        let what = format!("dataset '{name}'");
        match self.coord(
            CoordOp::DatasetGet {
                name: name.to_owned(),
            },
            &|| what.clone(),
            None,
        )? {
            (CoordReply::Value(v), _) => self.stored(&what, v),
            (r, _) => Err(unexpected(r)),
        }
    }

    /// Removes a published dataset (its futures are released if nothing else holds them).
    pub fn unpublish_dataset(&self, name: &str) -> Result<(), Error> {
        let op = CoordOp::DatasetUnpublish {
            name: name.to_owned(),
        };
        self.coord(op, &|| format!("dataset '{name}'"), None)
            .map(drop)
    }

    /// Names of the published datasets, sorted.
    pub fn list_datasets(&self) -> Result<Vec<String>, Error> {
        match self.coord(CoordOp::DatasetList, &|| "datasets".into(), None)? {
            (CoordReply::Names(n), _) => Ok(n),
            (r, _) => Err(unexpected(r)),
        }
    }

    /// Appends `msg` to `topic` of the cluster's event log, stamped with this machine's clock.
    /// The scheduler keeps the latest 100,000 entries per topic.
    pub fn log_event<T: Data>(&self, topic: &str, msg: &T) -> Result<(), Error> {
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let op = CoordOp::LogEvent {
            topic: topic.to_owned(),
            time,
            msg: encode(msg).data,
        };
        self.coord(op, &|| format!("event topic '{topic}'"), None)
            .map(drop)
    }

    /// The events logged under `topic`, oldest first, with their times (seconds since the
    /// Unix epoch).
    pub fn get_events<T: Data>(&self, topic: &str) -> Result<Vec<(f64, T)>, Error> {
        let what = format!("event topic '{topic}'");
        let op = CoordOp::GetEvents {
            topic: Some(topic.to_owned()),
        };
        match self.coord(op, &|| what.clone(), None)? {
            (CoordReply::Events(e), _) => e
                .into_iter()
                .map(|e| Ok((e.time, decode(&what, &e.msg)?)))
                .collect(),
            (r, _) => Err(unexpected(r)),
        }
    }
}

fn unexpected(r: CoordReply) -> Error {
    scheduler_error(ClientError::Rejected(format!(
        "unexpected reply from the scheduler: {r:?}; are the client and scheduler of the same build?"
    )))
}

/// A named value every client of the cluster can set and get (Dask's `Variable`); `get`
/// waits until it is set. A stored future stays computed until the variable is set again or
/// deleted.
///
/// ```
/// # use oxidask_client::{LocalCluster, Variable, Stored};
/// # let cluster = LocalCluster::builder().workers(1).start().unwrap();
/// # let client = cluster.client().unwrap();
/// let v = Variable::new("stop", &client);
/// v.set(&false).unwrap();
/// assert!(!v.get::<bool>(None).unwrap().into_value().unwrap());
/// ```
#[derive(Clone, Debug)]
pub struct Variable {
    client: Client,
    name: String,
}

impl Variable {
    /// The variable `name` of `client`'s cluster.
    pub fn new(name: impl Into<String>, client: &Client) -> Variable {
        Variable {
            client: client.clone(),
            name: name.into(),
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn what(&self) -> String {
        format!("Variable '{}'", self.name)
    }

    fn set_value(&self, value: CoordValue) -> Result<(), Error> {
        let op = CoordOp::VariableSet {
            name: self.name.clone(),
            value,
        };
        self.client.coord(op, &|| self.what(), None).map(drop)
    }

    /// Sets the value (waking everyone waiting in `get`).
    pub fn set<T: Data>(&self, value: &T) -> Result<(), Error> {
        self.set_value(encode(value))
    }

    /// Stores a future: its result stays on the cluster while the variable holds it.
    pub fn set_future<T>(&self, future: &Future<T>) -> Result<(), Error> {
        self.set_value(future_value(future.key()))
    }

    /// The value, waiting until it is set — at most `timeout` (then
    /// [`CoordError::Timeout`]).
    pub fn get<T: Data>(&self, timeout: Option<Duration>) -> Result<Stored<T>, Error> {
        let op = CoordOp::VariableGet {
            name: self.name.clone(),
            timeout_ms: timeout_ms(timeout),
        };
        match self.client.coord(op, &|| self.what(), timeout)? {
            (CoordReply::Value(v), _) => self.client.stored(&self.what(), v),
            (r, _) => Err(unexpected(r)),
        }
    }

    /// Deletes the value (a stored future is released).
    pub fn delete(&self) -> Result<(), Error> {
        let op = CoordOp::VariableDelete {
            name: self.name.clone(),
        };
        self.client.coord(op, &|| self.what(), None).map(drop)
    }
}

/// A named first-in first-out queue shared by the cluster (Dask's `Queue`); items may be
/// values or futures (kept computed while queued). With a `maxsize`, `put` waits for room.
#[derive(Clone, Debug)]
pub struct Queue {
    client: Client,
    name: String,
}

impl Queue {
    /// The queue `name` (made with `maxsize` items at most, 0 for no bound but the
    /// scheduler's, unless it exists).
    pub fn new(name: impl Into<String>, client: &Client, maxsize: u64) -> Result<Queue, Error> {
        let q = Queue {
            client: client.clone(),
            name: name.into(),
        };
        let op = CoordOp::QueueCreate {
            name: q.name.clone(),
            maxsize,
        };
        q.client.coord(op, &|| q.what(), None)?;
        Ok(q)
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn what(&self) -> String {
        format!("Queue '{}'", self.name)
    }

    fn put_value(&self, value: CoordValue, timeout: Option<Duration>) -> Result<(), Error> {
        let op = CoordOp::QueuePut {
            name: self.name.clone(),
            value,
            timeout_ms: timeout_ms(timeout),
        };
        self.client.coord(op, &|| self.what(), timeout).map(drop)
    }

    /// Appends a value, waiting at most `timeout` for room in a bounded queue.
    pub fn put<T: Data>(&self, value: &T, timeout: Option<Duration>) -> Result<(), Error> {
        self.put_value(encode(value), timeout)
    }

    /// Appends a future.
    pub fn put_future<T>(
        &self,
        future: &Future<T>,
        timeout: Option<Duration>,
    ) -> Result<(), Error> {
        self.put_value(future_value(future.key()), timeout)
    }

    fn take<T: Data>(
        &self,
        count: u32,
        timeout: Option<Duration>,
    ) -> Result<Vec<Stored<T>>, Error> {
        let op = CoordOp::QueueGet {
            name: self.name.clone(),
            count,
            timeout_ms: timeout_ms(timeout),
        };
        match self.client.coord(op, &|| self.what(), timeout)? {
            (CoordReply::Values(vs), _) => {
                // Adopt every item's keys before decoding any, so an error releases them all.
                let what = self.what();
                let mut out = Vec::with_capacity(vs.len());
                let mut first_err = None;
                for v in vs {
                    match self.client.stored(&what, v) {
                        Ok(s) => out.push(s),
                        Err(e) => first_err = first_err.or(Some(e)),
                    }
                }
                first_err.map_or(Ok(out), Err)
            }
            (r, _) => Err(unexpected(r)),
        }
    }

    /// The next item, waiting at most `timeout`.
    pub fn get<T: Data>(&self, timeout: Option<Duration>) -> Result<Stored<T>, Error> {
        Ok(self
            .take(1, timeout)?
            .pop()
            .expect("the scheduler answers a get of one with one item"))
    }

    /// The next `n` items, waiting until there are that many (at most `timeout`).
    pub fn get_batch<T: Data>(
        &self,
        n: u32,
        timeout: Option<Duration>,
    ) -> Result<Vec<Stored<T>>, Error> {
        if n == 0 {
            return Ok(Vec::new());
        }
        self.take(n, timeout)
    }

    /// Every item there is now, without waiting (Dask's `get(batch=True)`).
    pub fn get_all<T: Data>(&self) -> Result<Vec<Stored<T>>, Error> {
        self.take(0, None)
    }

    /// Items in the queue now.
    pub fn qsize(&self) -> Result<u64, Error> {
        let op = CoordOp::QueueSize {
            name: self.name.clone(),
        };
        match self.client.coord(op, &|| self.what(), None)? {
            (CoordReply::Count(n), _) => Ok(n),
            (r, _) => Err(unexpected(r)),
        }
    }
}

/// A named cluster-wide lock (Dask's `Lock`). Held by this object on this client's
/// connection: released by [`Lock::release`], or when the connection closes.
#[derive(Debug)]
pub struct Lock {
    client: Client,
    name: String,
    id: u64,
}

impl Lock {
    /// The lock `name`.
    pub fn new(name: impl Into<String>, client: &Client) -> Lock {
        Lock {
            client: client.clone(),
            name: name.into(),
            id: next_id(),
        }
    }

    fn what(&self) -> String {
        format!("Lock '{}'", self.name)
    }

    /// Acquires it, waiting at most `timeout` (`None`: as long as it takes); false if the
    /// time passed first.
    pub fn acquire(&self, timeout: Option<Duration>) -> Result<bool, Error> {
        self.acquire_op(true, timeout)
    }

    /// Acquires it if it is free now.
    pub fn try_acquire(&self) -> Result<bool, Error> {
        self.acquire_op(false, None)
    }

    fn acquire_op(&self, blocking: bool, timeout: Option<Duration>) -> Result<bool, Error> {
        let op = CoordOp::LockAcquire {
            name: self.name.clone(),
            holder: self.id,
            blocking,
            timeout_ms: timeout_ms(timeout),
        };
        flag(self.client.coord(op, &|| self.what(), timeout)?.0)
    }

    /// Releases it; [`CoordError::NotHeld`] unless this object holds it.
    pub fn release(&self) -> Result<(), Error> {
        let op = CoordOp::LockRelease {
            name: self.name.clone(),
            holder: self.id,
        };
        self.client.coord(op, &|| self.what(), None).map(drop)
    }

    /// Whether anyone holds it.
    pub fn locked(&self) -> Result<bool, Error> {
        let op = CoordOp::LockLocked {
            name: self.name.clone(),
        };
        flag(self.client.coord(op, &|| self.what(), None)?.0)
    }
}

fn flag(r: CoordReply) -> Result<bool, Error> {
    match r {
        CoordReply::Flag(b) => Ok(b),
        r => Err(unexpected(r)),
    }
}

/// A named cluster-wide semaphore (Dask's `Semaphore`): at most `max_leases` holders at
/// once. A lease lives as long as the connection of the client that took it, so the leases of
/// a process that dies return at once.
#[derive(Debug)]
pub struct Semaphore {
    client: Client,
    name: String,
    leases: Mutex<Vec<u64>>,
}

impl Semaphore {
    /// The semaphore `name` granting `max_leases` leases (every user must give the same
    /// number).
    pub fn new(
        max_leases: u32,
        name: impl Into<String>,
        client: &Client,
    ) -> Result<Semaphore, Error> {
        let s = Semaphore {
            client: client.clone(),
            name: name.into(),
            leases: Mutex::new(Vec::new()),
        };
        let op = CoordOp::SemaphoreCreate {
            name: s.name.clone(),
            max_leases,
        };
        s.client.coord(op, &|| s.what(), None)?;
        Ok(s)
    }

    fn what(&self) -> String {
        format!("Semaphore '{}'", self.name)
    }

    /// Takes a lease, waiting at most `timeout`; false if the time passed first.
    pub fn acquire(&self, timeout: Option<Duration>) -> Result<bool, Error> {
        let lease = next_id();
        let op = CoordOp::SemaphoreAcquire {
            name: self.name.clone(),
            lease,
            blocking: true,
            timeout_ms: timeout_ms(timeout),
        };
        let got = flag(self.client.coord(op, &|| self.what(), timeout)?.0)?;
        if got {
            self.leases
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(lease);
        }
        Ok(got)
    }

    /// Returns the lease this object took last; [`CoordError::NotHeld`] if it holds none.
    pub fn release(&self) -> Result<(), Error> {
        let lease = self.leases.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let Some(lease) = lease else {
            return Err(err(CoordError::NotHeld(format!(
                "{}: released too often (this Semaphore object holds no lease)",
                self.what()
            ))));
        };
        let op = CoordOp::SemaphoreRelease {
            name: self.name.clone(),
            lease,
        };
        self.client.coord(op, &|| self.what(), None).map(drop)
    }

    /// Leases held now, by anyone.
    pub fn get_value(&self) -> Result<u64, Error> {
        let op = CoordOp::SemaphoreValue {
            name: self.name.clone(),
        };
        match self.client.coord(op, &|| self.what(), None)?.0 {
            CoordReply::Count(n) => Ok(n),
            r => Err(unexpected(r)),
        }
    }
}

/// A named cluster-wide event flag (Dask's `Event`).
#[derive(Clone, Debug)]
pub struct Event {
    client: Client,
    name: String,
}

impl Event {
    /// The event `name`.
    pub fn new(name: impl Into<String>, client: &Client) -> Event {
        Event {
            client: client.clone(),
            name: name.into(),
        }
    }

    fn what(&self) -> String {
        format!("Event '{}'", self.name)
    }

    fn simple(&self, op: CoordOp) -> Result<CoordReply, Error> {
        Ok(self.client.coord(op, &|| self.what(), None)?.0)
    }

    /// Sets it, waking every waiter.
    pub fn set(&self) -> Result<(), Error> {
        self.simple(CoordOp::EventSet {
            name: self.name.clone(),
        })
        .map(drop)
    }

    /// Clears it.
    pub fn clear(&self) -> Result<(), Error> {
        self.simple(CoordOp::EventClear {
            name: self.name.clone(),
        })
        .map(drop)
    }

    /// Whether it is set.
    pub fn is_set(&self) -> Result<bool, Error> {
        flag(self.simple(CoordOp::EventIsSet {
            name: self.name.clone(),
        })?)
    }

    /// Waits until it is set, at most `timeout`: true if set, false if the time passed.
    pub fn wait(&self, timeout: Option<Duration>) -> Result<bool, Error> {
        let op = CoordOp::EventWait {
            name: self.name.clone(),
            timeout_ms: timeout_ms(timeout),
        };
        flag(self.client.coord(op, &|| self.what(), timeout)?.0)
    }
}

/// Publishes messages on a topic (Dask's `Pub`). Messages go through the scheduler to every
/// [`Sub`] of the topic that exists when they are sent; with none they are dropped.
#[derive(Clone, Debug)]
pub struct Pub {
    client: Client,
    topic: String,
}

impl Pub {
    /// A publisher on `topic`.
    pub fn new(topic: impl Into<String>, client: &Client) -> Pub {
        Pub {
            client: client.clone(),
            topic: topic.into(),
        }
    }

    /// Sends `msg` to every subscriber; returns how many there were.
    pub fn put<T: Data>(&self, msg: &T) -> Result<u64, Error> {
        let op = CoordOp::Publish {
            topic: self.topic.clone(),
            msg: encode(msg).data,
        };
        match self
            .client
            .coord(op, &|| format!("Pub '{}'", self.topic), None)?
            .0
        {
            CoordReply::Count(n) => Ok(n),
            r => Err(unexpected(r)),
        }
    }
}

/// Receives the messages published on a topic from its creation on (Dask's `Sub`); they are
/// buffered in the scheduler until read. Dropping it ends the subscription.
#[derive(Debug)]
pub struct Sub {
    client: Client,
    topic: String,
    id: u64,
}

impl Sub {
    /// A subscriber of `topic`.
    pub fn new(topic: impl Into<String>, client: &Client) -> Result<Sub, Error> {
        let s = Sub {
            client: client.clone(),
            topic: topic.into(),
            id: next_id(),
        };
        let op = CoordOp::Subscribe {
            topic: s.topic.clone(),
            subscriber: s.id,
        };
        s.client.coord(op, &|| s.what(), None)?;
        Ok(s)
    }

    fn what(&self) -> String {
        format!("Sub '{}'", self.topic)
    }

    fn take<T: Data>(&self, count: u32, timeout: Option<Duration>) -> Result<Vec<T>, Error> {
        let op = CoordOp::SubGet {
            topic: self.topic.clone(),
            subscriber: self.id,
            count,
            timeout_ms: timeout_ms(timeout),
        };
        match self.client.coord(op, &|| self.what(), timeout)?.0 {
            CoordReply::Messages(m) => m.iter().map(|m| decode(&self.what(), m)).collect(),
            r => Err(unexpected(r)),
        }
    }

    /// The next message, waiting at most `timeout`.
    pub fn get<T: Data>(&self, timeout: Option<Duration>) -> Result<T, Error> {
        Ok(self
            .take(1, timeout)?
            .pop()
            .expect("the scheduler answers a get of one with one message"))
    }

    /// Every message buffered now, without waiting.
    pub fn drain<T: Data>(&self) -> Result<Vec<T>, Error> {
        self.take(0, None)
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        // Not waited for: the reply, if any, finds no one and is dropped.
        let _ = self.client.send(ToScheduler::Coord {
            request: 0,
            op: CoordOp::Unsubscribe {
                topic: std::mem::take(&mut self.topic),
                subscriber: self.id,
            },
        });
    }
}
