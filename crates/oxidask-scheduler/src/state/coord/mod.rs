//! Coordination objects: Dask's named, cluster-wide `Variable`, `Queue`, `Lock`, `Semaphore`,
//! `Event`, `Pub`/`Sub`, published datasets and the event log, as part of the pure state
//! machine.
//!
//! Each request ([`CoordOp`]) is answered at once or parks a *waiter* (the client, its request
//! id, an optional deadline) on the object; a later request completes it, the clock
//! ([`crate::Event::Tick`] with `now` past the deadline) times it out, and its client leaving
//! drops it. Values are opaque bytes; the keys they refer to are held for the cluster by a
//! pseudo-client (Dask's `variable-…`/`queue-…` clients) so they stay computed while stored,
//! and are handed to the client that receives them (it wants them from the reply on).
//!
//! Pub/Sub goes through the scheduler (Dask sends messages worker to worker once subscribers
//! are known); a subscriber's buffer lives here until it reads.
//!
//! # Invariants
//! - every key of every stored value is counted once per storage in `held`, and the holder
//!   pseudo-client wants exactly the keys of `held` (checked by `validate_coord`);
//! - `bytes` is the size of everything stored (values, waiting puts, buffers, logs) and never
//!   passes [`CoordLimits::bytes`];
//! - every waiter with a deadline has exactly one entry in `timers`, and no other entry exists.
//! - a lock is held, and a semaphore's leases are taken, only by connected clients.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use oxidask_protocol::{
    CoordErrorKind, CoordOp, CoordReply, CoordValue, LoggedEvent, Payload, ToClient,
};
use rustc_hash::{FxHashMap, FxHashSet};

mod departures;
mod objects;
mod validate;

use super::{ClientId, ClientRec, SchedulerState, TState, TaskId};

/// The connection id of the pseudo-client that holds stored futures (never a real one).
pub(crate) const HOLDER_CONN: u64 = u64::MAX;

/// Bounds on what peers may make the scheduler hold.
#[derive(Clone, Debug)]
pub struct CoordLimits {
    /// Items one queue may hold.
    pub queue_items: usize,
    /// Entries kept per event-log topic (the oldest go first).
    pub events_per_topic: usize,
    /// Messages buffered per subscriber (the oldest go first).
    pub subscriber_buffer: usize,
    /// Bytes of values, items, messages and events held in all.
    pub bytes: usize,
    /// Named objects of all kinds.
    pub objects: usize,
    /// Requests waiting at once.
    pub waiters: usize,
}

impl Default for CoordLimits {
    fn default() -> Self {
        CoordLimits {
            queue_items: 100_000,
            events_per_topic: 100_000,
            subscriber_buffer: 100_000,
            bytes: 1 << 30,
            objects: 100_000,
            waiters: 100_000,
        }
    }
}

/// When a waiter times out, and its timer's sequence number.
type Deadline = Option<(Instant, u64)>;

/// A parked request.
#[derive(Debug)]
struct Wait<T> {
    client: ClientId,
    request: u64,
    deadline: Deadline,
    what: T,
}

#[derive(Default)]
struct Variable {
    value: Option<CoordValue>,
    getters: VecDeque<Wait<()>>,
}

#[derive(Default)]
struct Queue {
    maxsize: usize,
    items: VecDeque<CoordValue>,
    /// Items wanted by each.
    getters: VecDeque<Wait<u32>>,
    /// Items waiting for room.
    putters: VecDeque<Wait<CoordValue>>,
}

#[derive(Default)]
struct Lock {
    holder: Option<(ClientId, u64)>,
    waiters: VecDeque<Wait<u64>>,
}

#[derive(Default)]
struct Semaphore {
    max_leases: u32,
    leases: Vec<(ClientId, u64)>,
    waiters: VecDeque<Wait<u64>>,
}

#[derive(Default)]
struct EventRec {
    set: bool,
    waiters: VecDeque<Wait<()>>,
}

struct Subscriber {
    client: ClientId,
    id: u64,
    buffer: VecDeque<Payload>,
    getters: VecDeque<Wait<()>>,
}

/// Which map a timer points into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Variable,
    QueueGet,
    QueuePut,
    Lock,
    Semaphore,
    Event,
    Sub,
}

/// Every coordination object. See the [module docs](self).
#[derive(Default)]
pub struct Coord {
    limits: CoordLimits,
    variables: FxHashMap<String, Variable>,
    queues: FxHashMap<String, Queue>,
    locks: FxHashMap<String, Lock>,
    semaphores: FxHashMap<String, Semaphore>,
    events: FxHashMap<String, EventRec>,
    topics: FxHashMap<String, Vec<Subscriber>>,
    datasets: BTreeMap<String, CoordValue>,
    log: BTreeMap<String, VecDeque<LoggedEvent>>,
    /// Storages of each held key.
    held: FxHashMap<TaskId, u32>,
    /// The pseudo-client wanting held keys.
    holder: Option<ClientId>,
    /// Deadlines of waiters: (when, sequence) → where the waiter is.
    timers: BTreeMap<(Instant, u64), (Kind, String)>,
    seq: u64,
    bytes: usize,
    waiting: usize,
}

fn size(v: &CoordValue) -> usize {
    v.data.0.len() + 32 * v.keys.len() + 64
}

fn event_size(e: &LoggedEvent) -> usize {
    e.msg.0.len() + e.topic.len() + 64
}

fn failed(kind: CoordErrorKind, message: String) -> CoordReply {
    CoordReply::Failed { kind, message }
}

/// Removes the waiter of `client`'s `request` (or, with `request == None`, every waiter of
/// `client`) from `list`, returning them.
fn take_waiters<T>(
    list: &mut VecDeque<Wait<T>>,
    client: ClientId,
    request: Option<u64>,
) -> Vec<Wait<T>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < list.len() {
        if list[i].client == client && request.is_none_or(|r| list[i].request == r) {
            out.extend(list.remove(i));
        } else {
            i += 1;
        }
    }
    out
}

fn take_seq<T>(list: &mut VecDeque<Wait<T>>, seq: u64) -> Option<Wait<T>> {
    let i = list
        .iter()
        .position(|w| w.deadline.is_some_and(|(_, s)| s == seq))?;
    list.remove(i)
}

impl Coord {
    /// Coordination objects bounded by `limits`.
    pub fn with_limits(limits: CoordLimits) -> Coord {
        Coord {
            limits,
            ..Coord::default()
        }
    }

    fn objects(&self) -> usize {
        self.variables.len()
            + self.queues.len()
            + self.locks.len()
            + self.semaphores.len()
            + self.events.len()
            + self.topics.len()
            + self.datasets.len()
            + self.log.len()
    }

    /// `Err` when one more named object would pass the limit (`exists`: it is not new).
    fn admit_object(&self, exists: bool, what: &str, name: &str) -> Result<(), CoordReply> {
        if exists || self.objects() < self.limits.objects {
            return Ok(());
        }
        Err(failed(
            CoordErrorKind::Limit,
            format!(
                "cannot create {what} '{name}': the scheduler holds {} coordination objects, its limit; delete variables, unpublish datasets or reuse names",
                self.limits.objects
            ),
        ))
    }

    fn admit_bytes(&self, n: usize, what: &str) -> Result<(), CoordReply> {
        if self.bytes + n <= self.limits.bytes {
            return Ok(());
        }
        Err(failed(
            CoordErrorKind::Limit,
            format!(
                "{what} of {n} bytes refused: coordination objects already hold {} bytes and the scheduler's limit is {}; consume queue items, delete variables or unpublish datasets, and pass large data as futures (scatter it) rather than as values",
                self.bytes, self.limits.bytes
            ),
        ))
    }

    fn admit_waiter(&self) -> Result<(), CoordReply> {
        if self.waiting < self.limits.waiters {
            return Ok(());
        }
        Err(failed(
            CoordErrorKind::Limit,
            format!(
                "{} requests already wait on coordination objects, the scheduler's limit; use timeouts, or fewer concurrent waits",
                self.limits.waiters
            ),
        ))
    }

    /// A new waiter, with its timer registered.
    fn park<T>(
        &mut self,
        client: ClientId,
        request: u64,
        timeout: Option<Instant>,
        kind: Kind,
        name: &str,
        what: T,
    ) -> Wait<T> {
        self.waiting += 1;
        let deadline = timeout.map(|at| {
            self.seq += 1;
            self.timers.insert((at, self.seq), (kind, name.to_owned()));
            (at, self.seq)
        });
        Wait {
            client,
            request,
            deadline,
            what,
        }
    }

    /// A waiter leaves its list: forget its timer.
    fn unpark<T>(&mut self, w: &Wait<T>) {
        self.waiting -= 1;
        if let Some(d) = w.deadline {
            self.timers.remove(&d);
        }
    }
}

/// What a request to an absent or empty object leaves behind.
fn deadline(now: Instant, timeout_ms: Option<u64>) -> Option<Instant> {
    timeout_ms.map(|ms| now + Duration::from_millis(ms))
}

impl SchedulerState {
    /// The limits on what coordination objects hold.
    pub fn set_coord_limits(&mut self, limits: CoordLimits) {
        self.coord.limits = limits;
    }

    /// Answers `request` of client `c`; the keys of the values it carries become `c`'s.
    fn coord_reply(&mut self, c: ClientId, request: u64, reply: CoordReply) {
        let keys: Vec<TaskId> = reply.keys().filter_map(|k| self.lookup(k)).collect();
        self.send_client(c, ToClient::Coord { request, reply });
        for t in keys {
            // After the reply, so the client knows the key before it hears its status.
            self.want(c, t);
        }
    }

    /// The pseudo-client holding stored keys, made on first use.
    fn coord_holder(&mut self) -> ClientId {
        if let Some(h) = self.coord.holder {
            return h;
        }
        let h = ClientId(self.clients.len() as u32);
        self.clients.push(Some(ClientRec {
            conn: HOLDER_CONN,
            name: "coordination".into(),
            wanted: FxHashSet::default(),
            staged: Vec::new(),
            staged_broken: Vec::new(),
            id: 0,
            parked_until: None,
        }));
        self.coord.holder = Some(h);
        h
    }

    /// Checks that every key `v` refers to is known.
    fn check_keys(&self, v: &CoordValue) -> Result<(), CoordReply> {
        for k in &v.keys {
            if self.lookup(k).is_none() {
                return Err(failed(
                    CoordErrorKind::UnknownKey,
                    format!(
                        "the future {k} is not known to the scheduler (released, or from another cluster): store futures this cluster holds"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// `v` is now stored: hold its keys and count its bytes.
    fn coord_store(&mut self, v: &CoordValue) {
        self.coord.bytes += size(v);
        let holder = self.coord_holder();
        for k in &v.keys {
            let Some(t) = self.lookup(k) else { continue };
            let n = self.coord.held.entry(t).or_insert(0);
            *n += 1;
            if *n == 1 {
                let rec = self.task_mut(t);
                rec.wanted_by.push(holder);
                if let Some(Some(h)) = self.clients.get_mut(holder.0 as usize) {
                    h.wanted.insert(t);
                }
                if self.task(t).state == TState::Released {
                    self.need(t);
                }
            }
        }
    }

    /// `v` is no longer stored: release its keys (after handing them over, if it was
    /// delivered) and uncount its bytes.
    fn coord_drop(&mut self, v: &CoordValue) {
        self.coord.bytes -= size(v);
        for k in &v.keys {
            let Some(t) = self.lookup(k) else { continue };
            let Some(n) = self.coord.held.get_mut(&t) else {
                continue;
            };
            *n -= 1;
            if *n == 0 {
                self.coord.held.remove(&t);
                let holder = self.coord_holder();
                self.unwant(holder, t);
            }
        }
    }

    /// Hands a stored value to a waiter.
    fn coord_deliver(&mut self, c: ClientId, request: u64, v: CoordValue) {
        self.coord_reply(c, request, CoordReply::Value(v.clone()));
        self.coord_drop(&v);
    }

    /// A coordination request from client `c`.
    pub(crate) fn coord_message(&mut self, c: ClientId, request: u64, op: CoordOp) {
        self.coord_expire();
        let now = self.now;
        let reply = match op {
            CoordOp::VariableSet { name, value } => self.variable_set(name, value),
            CoordOp::VariableGet { name, timeout_ms } => {
                self.variable_get(c, request, name, deadline(now, timeout_ms))
            }
            CoordOp::VariableDelete { name } => {
                if let Some(var) = self.coord.variables.get_mut(&name) {
                    if let Some(old) = var.value.take() {
                        if var.getters.is_empty() {
                            self.coord.variables.remove(&name);
                        }
                        self.coord_drop(&old);
                    }
                }
                Some(CoordReply::Done)
            }
            CoordOp::QueueCreate { name, maxsize } => self.queue_create(&name, maxsize),
            CoordOp::QueuePut {
                name,
                value,
                timeout_ms,
            } => self.queue_put(c, request, name, value, deadline(now, timeout_ms)),
            CoordOp::QueueGet {
                name,
                count,
                timeout_ms,
            } => self.queue_get(c, request, name, count, deadline(now, timeout_ms)),
            CoordOp::QueueSize { name } => Some(CoordReply::Count(
                self.coord
                    .queues
                    .get(&name)
                    .map_or(0, |q| q.items.len() as u64),
            )),
            CoordOp::LockAcquire {
                name,
                holder,
                blocking,
                timeout_ms,
            } => {
                let at = if blocking {
                    deadline(now, timeout_ms)
                } else {
                    Some(now)
                };
                self.lock_acquire(c, request, name, holder, at)
            }
            CoordOp::LockRelease { name, holder } => Some(self.lock_release(c, &name, holder)),
            CoordOp::LockLocked { name } => Some(CoordReply::Flag(
                self.coord
                    .locks
                    .get(&name)
                    .is_some_and(|l| l.holder.is_some()),
            )),
            CoordOp::SemaphoreCreate { name, max_leases } => {
                Some(self.semaphore_create(&name, max_leases))
            }
            CoordOp::SemaphoreAcquire {
                name,
                lease,
                blocking,
                timeout_ms,
            } => {
                let at = if blocking {
                    deadline(now, timeout_ms)
                } else {
                    Some(now)
                };
                self.semaphore_acquire(c, request, name, lease, at)
            }
            CoordOp::SemaphoreRelease { name, lease } => {
                Some(self.semaphore_release(c, &name, lease))
            }
            CoordOp::SemaphoreValue { name } => Some(CoordReply::Count(
                self.coord
                    .semaphores
                    .get(&name)
                    .map_or(0, |s| s.leases.len() as u64),
            )),
            CoordOp::EventSet { name } => Some(self.event_set(name)),
            CoordOp::EventClear { name } => {
                if let Some(e) = self.coord.events.get_mut(&name) {
                    e.set = false;
                    if e.waiters.is_empty() {
                        self.coord.events.remove(&name);
                    }
                }
                Some(CoordReply::Done)
            }
            CoordOp::EventWait { name, timeout_ms } => {
                self.event_wait(c, request, name, deadline(now, timeout_ms))
            }
            CoordOp::EventIsSet { name } => Some(CoordReply::Flag(
                self.coord.events.get(&name).is_some_and(|e| e.set),
            )),
            CoordOp::Publish { topic, msg } => Some(self.publish(&topic, msg)),
            CoordOp::Subscribe { topic, subscriber } => Some(self.subscribe(c, topic, subscriber)),
            CoordOp::Unsubscribe { topic, subscriber } => {
                self.unsubscribe(c, &topic, Some(subscriber));
                Some(CoordReply::Done)
            }
            CoordOp::SubGet {
                topic,
                subscriber,
                count,
                timeout_ms,
            } => self.sub_get(
                c,
                request,
                topic,
                subscriber,
                count,
                deadline(now, timeout_ms),
            ),
            CoordOp::DatasetPublish {
                name,
                value,
                overwrite,
            } => Some(self.dataset_publish(name, value, overwrite)),
            CoordOp::DatasetGet { name } => Some(match self.coord.datasets.get(&name) {
                Some(v) => CoordReply::Value(v.clone()),
                None => not_found(&name),
            }),
            CoordOp::DatasetUnpublish { name } => Some(match self.coord.datasets.remove(&name) {
                Some(v) => {
                    self.coord_drop(&v);
                    CoordReply::Done
                }
                None => not_found(&name),
            }),
            CoordOp::DatasetList => Some(CoordReply::Names(
                self.coord.datasets.keys().cloned().collect(),
            )),
            CoordOp::LogEvent { topic, time, msg } => Some(self.log_event(topic, time, msg)),
            CoordOp::GetEvents { topic } => Some(CoordReply::Events(match topic {
                Some(t) => self
                    .coord
                    .log
                    .get(&t)
                    .map_or_else(Vec::new, |l| l.iter().cloned().collect()),
                None => self.coord.log.values().flatten().cloned().collect(),
            })),
            CoordOp::Abandon { request } => {
                self.coord_forget_waiters(c, Some(request));
                None
            }
            CoordOp::Hold { keys } => {
                for k in keys {
                    match self.lookup(&k) {
                        Some(t) => self.want(c, t),
                        None => {
                            let error = oxidask_protocol::WireError {
                                key: Some(k),
                                ..oxidask_protocol::WireError::invalid(format!(
                                    "{k} was released by every holder before this client's claim on it arrived; it is lost"
                                ))
                            };
                            self.send_client(c, ToClient::KeyErred { key: k, error });
                        }
                    }
                }
                None
            }
        };
        if let Some(r) = reply {
            self.coord_reply(c, request, r);
        }
    }
}

fn not_found(name: &str) -> CoordReply {
    failed(
        CoordErrorKind::NotFound,
        format!("Dataset '{name}' not found: list_datasets() shows the published ones"),
    )
}
