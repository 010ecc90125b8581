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
        };
        if let Some(r) = reply {
            self.coord_reply(c, request, r);
        }
    }

    // ---- variables -----------------------------------------------------------------------

    fn variable_set(&mut self, name: String, value: CoordValue) -> Option<CoordReply> {
        let exists = self.coord.variables.contains_key(&name);
        let old = self
            .coord
            .variables
            .get(&name)
            .and_then(|v| v.value.as_ref())
            .map_or(0, size);
        if let Err(r) = self
            .coord
            .admit_object(exists, "variable", &name)
            .and_then(|_| self.check_keys(&value))
            .and_then(|_| {
                self.coord
                    .admit_bytes(size(&value).saturating_sub(old), "variable value")
            })
        {
            return Some(r);
        }
        self.coord_store(&value);
        let var = self.coord.variables.entry(name).or_default();
        let old = var.value.replace(value.clone());
        let getters: Vec<_> = var.getters.drain(..).collect();
        for g in getters {
            self.coord.unpark(&g);
            // Each getter holds its own reference on the keys from here.
            self.coord_store(&value);
            self.coord_deliver(g.client, g.request, value.clone());
        }
        if let Some(old) = old {
            self.coord_drop(&old);
        }
        Some(CoordReply::Done)
    }

    fn variable_get(
        &mut self,
        c: ClientId,
        request: u64,
        name: String,
        at: Option<Instant>,
    ) -> Option<CoordReply> {
        if let Some(v) = self
            .coord
            .variables
            .get(&name)
            .and_then(|v| v.value.clone())
        {
            return Some(CoordReply::Value(v));
        }
        if at.is_some_and(|at| at <= self.now) {
            return Some(CoordReply::TimedOut);
        }
        let exists = self.coord.variables.contains_key(&name);
        if let Err(r) = self
            .coord
            .admit_object(exists, "variable", &name)
            .and_then(|_| self.coord.admit_waiter())
        {
            return Some(r);
        }
        let w = self.coord.park(c, request, at, Kind::Variable, &name, ());
        self.coord
            .variables
            .entry(name)
            .or_default()
            .getters
            .push_back(w);
        None
    }

    // ---- queues --------------------------------------------------------------------------

    fn queue_create(&mut self, name: &str, maxsize: u64) -> Option<CoordReply> {
        if self.coord.queues.contains_key(name) {
            return Some(CoordReply::Done);
        }
        if maxsize as usize > self.coord.limits.queue_items {
            return Some(failed(
                CoordErrorKind::Limit,
                format!(
                    "Queue '{name}' asks for maxsize={maxsize}, but the scheduler holds at most {} items per queue; use a smaller maxsize (or 0 for that limit)",
                    self.coord.limits.queue_items
                ),
            ));
        }
        if let Err(r) = self.coord.admit_object(false, "queue", name) {
            return Some(r);
        }
        self.coord.queues.insert(
            name.to_owned(),
            Queue {
                maxsize: maxsize as usize,
                ..Queue::default()
            },
        );
        Some(CoordReply::Done)
    }

    fn queue_put(
        &mut self,
        c: ClientId,
        request: u64,
        name: String,
        value: CoordValue,
        at: Option<Instant>,
    ) -> Option<CoordReply> {
        if !self.coord.queues.contains_key(&name) {
            if let Some(r @ CoordReply::Failed { .. }) = self.queue_create(&name, 0) {
                return Some(r);
            }
        }
        if let Err(r) = self
            .check_keys(&value)
            .and_then(|_| self.coord.admit_bytes(size(&value), "queue item"))
        {
            return Some(r);
        }
        let limit = self.coord.limits.queue_items;
        let q = &self.coord.queues[&name];
        let room = if q.maxsize == 0 { limit } else { q.maxsize };
        if q.items.len() < room && q.putters.is_empty() {
            self.coord_store(&value);
            self.coord
                .queues
                .get_mut(&name)
                .expect("created above")
                .items
                .push_back(value);
            self.queue_pump(&name);
            return Some(CoordReply::Done);
        }
        if q.maxsize == 0 {
            return Some(failed(
                CoordErrorKind::Limit,
                format!(
                    "Queue '{name}' holds {limit} items, the scheduler's limit per queue; take items out (Queue.get) or give the queue a maxsize so producers wait for room"
                ),
            ));
        }
        if at.is_some_and(|at| at <= self.now) {
            return Some(CoordReply::TimedOut);
        }
        if let Err(r) = self.coord.admit_waiter() {
            return Some(r);
        }
        self.coord_store(&value);
        let w = self
            .coord
            .park(c, request, at, Kind::QueuePut, &name, value);
        self.coord
            .queues
            .get_mut(&name)
            .expect("created above")
            .putters
            .push_back(w);
        None
    }

    fn queue_get(
        &mut self,
        c: ClientId,
        request: u64,
        name: String,
        count: u32,
        at: Option<Instant>,
    ) -> Option<CoordReply> {
        if !self.coord.queues.contains_key(&name) {
            if let Some(r @ CoordReply::Failed { .. }) = self.queue_create(&name, 0) {
                return Some(r);
            }
        }
        if count == 0 {
            let q = self.coord.queues.get_mut(&name).expect("created above");
            let items: Vec<CoordValue> = q.items.drain(..).collect();
            self.coord_values(c, request, items);
            self.queue_pump(&name);
            return None;
        }
        if count as usize > self.coord.limits.queue_items {
            return Some(failed(
                CoordErrorKind::Limit,
                format!(
                    "Queue.get(batch={count}) waits for more items than a queue may hold ({})",
                    self.coord.limits.queue_items
                ),
            ));
        }
        if at.is_some_and(|at| at <= self.now) {
            let q = &self.coord.queues[&name];
            if !(q.getters.is_empty() && q.items.len() >= count as usize) {
                return Some(CoordReply::TimedOut);
            }
        }
        if let Err(r) = self.coord.admit_waiter() {
            return Some(r);
        }
        let w = self
            .coord
            .park(c, request, at, Kind::QueueGet, &name, count);
        self.coord
            .queues
            .get_mut(&name)
            .expect("created above")
            .getters
            .push_back(w);
        self.queue_pump(&name);
        None
    }

    /// Replies `items` (taken from a queue) to a getter.
    fn coord_values(&mut self, c: ClientId, request: u64, items: Vec<CoordValue>) {
        // Keys are dropped only after they are handed over, so they are never unheld between.
        self.coord_reply(c, request, CoordReply::Values(items.clone()));
        for v in &items {
            self.coord_drop(v);
        }
    }

    /// Serves getters and admits waiting puts while it can.
    fn queue_pump(&mut self, name: &str) {
        loop {
            let Some(q) = self.coord.queues.get_mut(name) else {
                return;
            };
            let mut progress = false;
            if let Some(g) = q.getters.front() {
                if q.items.len() >= g.what as usize {
                    let g = q.getters.pop_front().expect("front exists");
                    let items: Vec<CoordValue> = q.items.drain(..g.what as usize).collect();
                    self.coord.unpark(&g);
                    self.coord_values(g.client, g.request, items);
                    continue;
                }
            }
            let q = self.coord.queues.get_mut(name).expect("checked above");
            let room = if q.maxsize == 0 {
                self.coord.limits.queue_items
            } else {
                q.maxsize
            };
            let mut admitted = Vec::new();
            while q.items.len() < room {
                let Some(p) = q.putters.pop_front() else {
                    break;
                };
                q.items.push_back(p.what.clone());
                admitted.push(p);
                progress = true;
            }
            for p in admitted {
                self.coord.unpark(&p);
                self.coord_reply(p.client, p.request, CoordReply::Done);
            }
            if !progress {
                return;
            }
        }
    }

    // ---- locks and semaphores ------------------------------------------------------------

    fn lock_acquire(
        &mut self,
        c: ClientId,
        request: u64,
        name: String,
        holder: u64,
        at: Option<Instant>,
    ) -> Option<CoordReply> {
        let exists = self.coord.locks.contains_key(&name);
        if let Err(r) = self.coord.admit_object(exists, "lock", &name) {
            return Some(r);
        }
        let lock = self.coord.locks.entry(name.clone()).or_default();
        if lock.holder.is_none() && lock.waiters.is_empty() {
            lock.holder = Some((c, holder));
            return Some(CoordReply::Flag(true));
        }
        if at.is_some_and(|at| at <= self.now) {
            return Some(CoordReply::Flag(false));
        }
        if let Err(r) = self.coord.admit_waiter() {
            return Some(r);
        }
        let w = self.coord.park(c, request, at, Kind::Lock, &name, holder);
        self.coord
            .locks
            .get_mut(&name)
            .expect("made above")
            .waiters
            .push_back(w);
        None
    }

    fn lock_release(&mut self, c: ClientId, name: &str, holder: u64) -> CoordReply {
        let held = self
            .coord
            .locks
            .get(name)
            .is_some_and(|l| l.holder == Some((c, holder)));
        if !held {
            return failed(
                CoordErrorKind::NotHeld,
                format!("Lock '{name}' is not acquired by this Lock object; only its holder may release it"),
            );
        }
        self.lock_pass(name);
        CoordReply::Done
    }

    /// The lock's holder lets go: the next waiter takes it.
    fn lock_pass(&mut self, name: &str) {
        let Some(lock) = self.coord.locks.get_mut(name) else {
            return;
        };
        lock.holder = None;
        match lock.waiters.pop_front() {
            Some(w) => {
                lock.holder = Some((w.client, w.what));
                self.coord.unpark(&w);
                self.coord_reply(w.client, w.request, CoordReply::Flag(true));
            }
            None => {
                self.coord.locks.remove(name);
            }
        }
    }

    fn semaphore_create(&mut self, name: &str, max_leases: u32) -> CoordReply {
        if max_leases == 0 {
            return failed(
                CoordErrorKind::Invalid,
                format!("Semaphore '{name}': max_leases must be at least 1"),
            );
        }
        if let Some(s) = self.coord.semaphores.get(name) {
            if s.max_leases != max_leases {
                return failed(
                    CoordErrorKind::Invalid,
                    format!(
                        "Semaphore '{name}' exists with max_leases={}, not {max_leases}; use the same number everywhere, or another name",
                        s.max_leases
                    ),
                );
            }
            return CoordReply::Done;
        }
        if let Err(r) = self.coord.admit_object(false, "semaphore", name) {
            return r;
        }
        self.coord.semaphores.insert(
            name.to_owned(),
            Semaphore {
                max_leases,
                ..Semaphore::default()
            },
        );
        CoordReply::Done
    }

    fn semaphore_acquire(
        &mut self,
        c: ClientId,
        request: u64,
        name: String,
        lease: u64,
        at: Option<Instant>,
    ) -> Option<CoordReply> {
        let Some(s) = self.coord.semaphores.get_mut(&name) else {
            return Some(failed(
                CoordErrorKind::Invalid,
                format!("Semaphore '{name}' was not created: make it with Semaphore(max_leases, name) first"),
            ));
        };
        if s.leases.len() < s.max_leases as usize && s.waiters.is_empty() {
            s.leases.push((c, lease));
            return Some(CoordReply::Flag(true));
        }
        if at.is_some_and(|at| at <= self.now) {
            return Some(CoordReply::Flag(false));
        }
        if let Err(r) = self.coord.admit_waiter() {
            return Some(r);
        }
        let w = self
            .coord
            .park(c, request, at, Kind::Semaphore, &name, lease);
        self.coord
            .semaphores
            .get_mut(&name)
            .expect("checked above")
            .waiters
            .push_back(w);
        None
    }

    fn semaphore_release(&mut self, c: ClientId, name: &str, lease: u64) -> CoordReply {
        let Some(s) = self.coord.semaphores.get_mut(name) else {
            return failed(
                CoordErrorKind::NotHeld,
                format!("Semaphore '{name}' does not exist, so no lease of it is held"),
            );
        };
        let Some(i) = s.leases.iter().position(|&l| l == (c, lease)) else {
            return failed(
                CoordErrorKind::NotHeld,
                format!("Semaphore '{name}': released too often (this lease is not held, or it expired when its holder left)"),
            );
        };
        s.leases.swap_remove(i);
        self.semaphore_pump(name);
        CoordReply::Done
    }

    fn semaphore_pump(&mut self, name: &str) {
        let Some(s) = self.coord.semaphores.get_mut(name) else {
            return;
        };
        let mut granted = Vec::new();
        while s.leases.len() < s.max_leases as usize {
            let Some(w) = s.waiters.pop_front() else {
                break;
            };
            s.leases.push((w.client, w.what));
            granted.push(w);
        }
        for w in granted {
            self.coord.unpark(&w);
            self.coord_reply(w.client, w.request, CoordReply::Flag(true));
        }
    }

    // ---- events --------------------------------------------------------------------------

    fn event_set(&mut self, name: String) -> CoordReply {
        let exists = self.coord.events.contains_key(&name);
        if let Err(r) = self.coord.admit_object(exists, "event", &name) {
            return r;
        }
        let e = self.coord.events.entry(name).or_default();
        e.set = true;
        let waiters: Vec<_> = e.waiters.drain(..).collect();
        for w in waiters {
            self.coord.unpark(&w);
            self.coord_reply(w.client, w.request, CoordReply::Flag(true));
        }
        CoordReply::Done
    }

    fn event_wait(
        &mut self,
        c: ClientId,
        request: u64,
        name: String,
        at: Option<Instant>,
    ) -> Option<CoordReply> {
        if self.coord.events.get(&name).is_some_and(|e| e.set) {
            return Some(CoordReply::Flag(true));
        }
        if at.is_some_and(|at| at <= self.now) {
            return Some(CoordReply::Flag(false));
        }
        let exists = self.coord.events.contains_key(&name);
        if let Err(r) = self
            .coord
            .admit_object(exists, "event", &name)
            .and_then(|_| self.coord.admit_waiter())
        {
            return Some(r);
        }
        let w = self.coord.park(c, request, at, Kind::Event, &name, ());
        self.coord
            .events
            .entry(name)
            .or_default()
            .waiters
            .push_back(w);
        None
    }

    // ---- pub/sub -------------------------------------------------------------------------

    fn subscribe(&mut self, c: ClientId, topic: String, id: u64) -> CoordReply {
        let exists = self.coord.topics.contains_key(&topic);
        if let Err(r) = self.coord.admit_object(exists, "topic", &topic) {
            return r;
        }
        let subs = self.coord.topics.entry(topic).or_default();
        if !subs.iter().any(|s| s.client == c && s.id == id) {
            subs.push(Subscriber {
                client: c,
                id,
                buffer: VecDeque::new(),
                getters: VecDeque::new(),
            });
        }
        CoordReply::Done
    }

    /// Ends `c`'s subscriptions to `topic` (one, or all of them); their waiters get no reply.
    fn unsubscribe(&mut self, c: ClientId, topic: &str, id: Option<u64>) {
        let Some(subs) = self.coord.topics.get_mut(topic) else {
            return;
        };
        let mut gone = Vec::new();
        subs.retain_mut(|s| {
            let hit = s.client == c && id.is_none_or(|i| s.id == i);
            if hit {
                gone.push((
                    s.buffer.iter().map(|m| m.0.len() + 64).sum::<usize>(),
                    std::mem::take(&mut s.getters),
                ));
            }
            !hit
        });
        if subs.is_empty() {
            self.coord.topics.remove(topic);
        }
        for (bytes, getters) in gone {
            self.coord.bytes -= bytes;
            for g in &getters {
                self.coord.unpark(g);
            }
        }
    }

    fn publish(&mut self, topic: &str, msg: Payload) -> CoordReply {
        let Some(subs) = self.coord.topics.get(topic) else {
            return CoordReply::Count(0);
        };
        let n = msg.0.len() + 64;
        let total = n * subs.len();
        if let Err(r) = self.coord.admit_bytes(total, "message") {
            return r;
        }
        let cap = self.coord.limits.subscriber_buffer;
        let mut replies = Vec::new();
        let mut freed = 0;
        let subs = self.coord.topics.get_mut(topic).expect("checked above");
        for s in subs.iter_mut() {
            if let Some(g) = s.getters.pop_front() {
                replies.push((g, vec![msg.clone()]));
                continue;
            }
            s.buffer.push_back(msg.clone());
            self.coord.bytes += n;
            if s.buffer.len() > cap {
                let old = s.buffer.pop_front().expect("over the cap");
                freed += old.0.len() + 64;
            }
        }
        let reached = subs.len() as u64;
        self.coord.bytes -= freed;
        for (g, msgs) in replies {
            self.coord.unpark(&g);
            self.coord_reply(g.client, g.request, CoordReply::Messages(msgs));
        }
        CoordReply::Count(reached)
    }

    fn sub_get(
        &mut self,
        c: ClientId,
        request: u64,
        topic: String,
        id: u64,
        count: u32,
        at: Option<Instant>,
    ) -> Option<CoordReply> {
        let Some(s) = self
            .coord
            .topics
            .get_mut(&topic)
            .and_then(|subs| subs.iter_mut().find(|s| s.client == c && s.id == id))
        else {
            return Some(failed(
                CoordErrorKind::Invalid,
                format!("this Sub is not subscribed to '{topic}' (it was closed): make a new Sub"),
            ));
        };
        let take = if count == 0 {
            s.buffer.len()
        } else {
            count as usize
        };
        if s.buffer.len() >= take && (count == 0 || s.getters.is_empty()) {
            let msgs: Vec<Payload> = s.buffer.drain(..take).collect();
            self.coord.bytes -= msgs.iter().map(|m| m.0.len() + 64).sum::<usize>();
            return Some(CoordReply::Messages(msgs));
        }
        if at.is_some_and(|at| at <= self.now) {
            return Some(CoordReply::TimedOut);
        }
        if let Err(r) = self.coord.admit_waiter() {
            return Some(r);
        }
        let w = self.coord.park(c, request, at, Kind::Sub, &topic, ());
        let s = self
            .coord
            .topics
            .get_mut(&topic)
            .and_then(|subs| subs.iter_mut().find(|s| s.client == c && s.id == id))
            .expect("found above");
        s.getters.push_back(w);
        None
    }

    // ---- datasets and the event log ------------------------------------------------------

    fn dataset_publish(&mut self, name: String, value: CoordValue, overwrite: bool) -> CoordReply {
        let exists = self.coord.datasets.contains_key(&name);
        if exists && !overwrite {
            return failed(
                CoordErrorKind::AlreadyExists,
                format!("Dataset {name} already exists: unpublish it first, or publish with override=True"),
            );
        }
        if let Err(r) = self
            .coord
            .admit_object(exists, "dataset", &name)
            .and_then(|_| self.check_keys(&value))
            .and_then(|_| self.coord.admit_bytes(size(&value), "dataset"))
        {
            return r;
        }
        self.coord_store(&value);
        if let Some(old) = self.coord.datasets.insert(name, value) {
            self.coord_drop(&old);
        }
        CoordReply::Done
    }

    fn log_event(&mut self, topic: String, time: f64, msg: Payload) -> CoordReply {
        let e = LoggedEvent { topic, time, msg };
        let n = event_size(&e);
        let exists = self.coord.log.contains_key(&e.topic);
        if let Err(r) = self
            .coord
            .admit_object(exists, "event-log topic", &e.topic)
            .and_then(|_| self.coord.admit_bytes(n, "logged event"))
        {
            return r;
        }
        let cap = self.coord.limits.events_per_topic;
        let log = self.coord.log.entry(e.topic.clone()).or_default();
        log.push_back(e);
        self.coord.bytes += n;
        if log.len() > cap {
            let old = log.pop_front().expect("over the cap");
            self.coord.bytes -= event_size(&old);
        }
        CoordReply::Done
    }

    // ---- time and departures -------------------------------------------------------------

    /// Times out every waiter whose deadline has passed.
    pub(crate) fn coord_expire(&mut self) {
        while let Some((&(at, seq), _)) = self.coord.timers.first_key_value() {
            if at > self.now {
                return;
            }
            let (kind, name) = self
                .coord
                .timers
                .remove(&(at, seq))
                .expect("first entry exists");
            self.coord.waiting -= 1;
            let c = &mut self.coord;
            let (client, request, reply) = match kind {
                Kind::Variable => {
                    let Some(w) = c
                        .variables
                        .get_mut(&name)
                        .and_then(|v| take_seq(&mut v.getters, seq))
                    else {
                        continue;
                    };
                    if c.variables
                        .get(&name)
                        .is_some_and(|v| v.value.is_none() && v.getters.is_empty())
                    {
                        c.variables.remove(&name);
                    }
                    (w.client, w.request, CoordReply::TimedOut)
                }
                Kind::QueueGet => {
                    let Some(w) = c
                        .queues
                        .get_mut(&name)
                        .and_then(|q| take_seq(&mut q.getters, seq))
                    else {
                        continue;
                    };
                    (w.client, w.request, CoordReply::TimedOut)
                }
                Kind::QueuePut => {
                    let Some(w) = c
                        .queues
                        .get_mut(&name)
                        .and_then(|q| take_seq(&mut q.putters, seq))
                    else {
                        continue;
                    };
                    self.coord_drop(&w.what);
                    (w.client, w.request, CoordReply::TimedOut)
                }
                Kind::Lock => {
                    let Some(w) = c
                        .locks
                        .get_mut(&name)
                        .and_then(|l| take_seq(&mut l.waiters, seq))
                    else {
                        continue;
                    };
                    if c.locks
                        .get(&name)
                        .is_some_and(|l| l.holder.is_none() && l.waiters.is_empty())
                    {
                        c.locks.remove(&name);
                    }
                    (w.client, w.request, CoordReply::Flag(false))
                }
                Kind::Semaphore => {
                    let Some(w) = c
                        .semaphores
                        .get_mut(&name)
                        .and_then(|s| take_seq(&mut s.waiters, seq))
                    else {
                        continue;
                    };
                    (w.client, w.request, CoordReply::Flag(false))
                }
                Kind::Event => {
                    let Some(w) = c
                        .events
                        .get_mut(&name)
                        .and_then(|e| take_seq(&mut e.waiters, seq))
                    else {
                        continue;
                    };
                    if c.events
                        .get(&name)
                        .is_some_and(|e| !e.set && e.waiters.is_empty())
                    {
                        c.events.remove(&name);
                    }
                    (w.client, w.request, CoordReply::Flag(false))
                }
                Kind::Sub => {
                    let Some(w) = c.topics.get_mut(&name).and_then(|subs| {
                        subs.iter_mut().find_map(|s| take_seq(&mut s.getters, seq))
                    }) else {
                        continue;
                    };
                    (w.client, w.request, CoordReply::TimedOut)
                }
            };
            self.coord_reply(client, request, reply);
        }
    }

    /// Drops the waiters of client `c` (one request, or all), without replying.
    fn coord_forget_waiters(&mut self, c: ClientId, request: Option<u64>) {
        let co = &mut self.coord;
        let mut gone: Vec<(Deadline, Option<CoordValue>)> = Vec::new();
        let mut locks = Vec::new();
        for var in co.variables.values_mut() {
            gone.extend(
                take_waiters(&mut var.getters, c, request)
                    .into_iter()
                    .map(|w| (w.deadline, None)),
            );
        }
        let mut queues = Vec::new();
        for (name, q) in co.queues.iter_mut() {
            gone.extend(
                take_waiters(&mut q.getters, c, request)
                    .into_iter()
                    .map(|w| (w.deadline, None)),
            );
            let puts = take_waiters(&mut q.putters, c, request);
            if !puts.is_empty() {
                queues.push(name.clone());
            }
            gone.extend(puts.into_iter().map(|w| (w.deadline, Some(w.what))));
        }
        for (name, l) in co.locks.iter_mut() {
            let ws = take_waiters(&mut l.waiters, c, request);
            if !ws.is_empty() {
                locks.push(name.clone());
            }
            gone.extend(ws.into_iter().map(|w| (w.deadline, None)));
        }
        let mut sems = Vec::new();
        for (name, s) in co.semaphores.iter_mut() {
            let ws = take_waiters(&mut s.waiters, c, request);
            if !ws.is_empty() {
                sems.push(name.clone());
            }
            gone.extend(ws.into_iter().map(|w| (w.deadline, None)));
        }
        for e in co.events.values_mut() {
            gone.extend(
                take_waiters(&mut e.waiters, c, request)
                    .into_iter()
                    .map(|w| (w.deadline, None)),
            );
        }
        for subs in co.topics.values_mut() {
            for s in subs.iter_mut() {
                gone.extend(
                    take_waiters(&mut s.getters, c, request)
                        .into_iter()
                        .map(|w| (w.deadline, None)),
                );
            }
        }
        for (d, value) in gone {
            self.coord.waiting -= 1;
            if let Some(d) = d {
                self.coord.timers.remove(&d);
            }
            if let Some(v) = value {
                self.coord_drop(&v);
            }
        }
        for name in locks {
            if self
                .coord
                .locks
                .get(&name)
                .is_some_and(|l| l.holder.is_none() && l.waiters.is_empty())
            {
                self.coord.locks.remove(&name);
            }
        }
        for name in queues {
            self.queue_pump(&name);
        }
        for name in sems {
            self.semaphore_pump(&name);
        }
    }

    /// Client `c` left: its waiters go, its locks and leases return, its subscriptions end.
    pub(crate) fn coord_client_left(&mut self, c: ClientId) {
        if self.coord.objects() == 0 {
            return;
        }
        self.coord_forget_waiters(c, None);
        let held: Vec<String> = self
            .coord
            .locks
            .iter()
            .filter(|(_, l)| l.holder.is_some_and(|(hc, _)| hc == c))
            .map(|(n, _)| n.clone())
            .collect();
        for name in held {
            self.lock_pass(&name);
        }
        let sems: Vec<String> = self
            .coord
            .semaphores
            .iter_mut()
            .filter_map(|(n, s)| {
                let before = s.leases.len();
                s.leases.retain(|&(lc, _)| lc != c);
                (s.leases.len() != before).then(|| n.clone())
            })
            .collect();
        for name in sems {
            self.semaphore_pump(&name);
        }
        let topics: Vec<String> = self
            .coord
            .topics
            .iter()
            .filter(|(_, subs)| subs.iter().any(|s| s.client == c))
            .map(|(t, _)| t.clone())
            .collect();
        for t in topics {
            self.unsubscribe(c, &t, None);
        }
    }

    /// Checks the coordination invariants (see the [module docs](self)).
    pub(crate) fn validate_coord(&self) -> Result<(), String> {
        let co = &self.coord;
        let mut held: FxHashMap<TaskId, u32> = FxHashMap::default();
        let mut bytes = 0;
        let mut waiting = 0;
        let mut timers = 0;
        let mut count = |v: &CoordValue, bytes: &mut usize| {
            *bytes += size(v);
            for k in &v.keys {
                if let Some(t) = self.lookup(k) {
                    *held.entry(t).or_default() += 1;
                }
            }
        };
        let mut wait = |d: Option<(Instant, u64)>| -> Result<(), String> {
            waiting += 1;
            if let Some(d) = d {
                timers += 1;
                if !co.timers.contains_key(&d) {
                    return Err(format!("coordination waiter {d:?} has no timer"));
                }
            }
            Ok(())
        };
        for var in co.variables.values() {
            if let Some(v) = &var.value {
                count(v, &mut bytes);
            }
            for w in &var.getters {
                wait(w.deadline)?;
            }
        }
        for q in co.queues.values() {
            for v in &q.items {
                count(v, &mut bytes);
            }
            for w in &q.putters {
                count(&w.what, &mut bytes);
                wait(w.deadline)?;
            }
            for w in &q.getters {
                wait(w.deadline)?;
            }
        }
        for v in co.datasets.values() {
            count(v, &mut bytes);
        }
        for l in co.locks.values() {
            for w in &l.waiters {
                wait(w.deadline)?;
            }
            if let Some((c, _)) = l.holder {
                if !matches!(self.clients.get(c.0 as usize), Some(Some(_))) {
                    return Err(format!("a lock is held by departed client {c:?}"));
                }
            }
        }
        for s in co.semaphores.values() {
            for w in &s.waiters {
                wait(w.deadline)?;
            }
            if s.leases.len() > s.max_leases as usize {
                return Err("a semaphore grants more leases than it has".into());
            }
            for (c, _) in &s.leases {
                if !matches!(self.clients.get(c.0 as usize), Some(Some(_))) {
                    return Err(format!(
                        "a semaphore lease is held by departed client {c:?}"
                    ));
                }
            }
        }
        for e in co.events.values() {
            for w in &e.waiters {
                wait(w.deadline)?;
            }
        }
        for subs in co.topics.values() {
            for s in subs {
                bytes += s.buffer.iter().map(|m| m.0.len() + 64).sum::<usize>();
                for w in &s.getters {
                    wait(w.deadline)?;
                }
            }
        }
        for log in co.log.values() {
            bytes += log.iter().map(event_size).sum::<usize>();
        }
        if held != co.held {
            return Err(format!(
                "coordination holds keys {:?}, its values refer to {held:?}",
                co.held
            ));
        }
        if let Some(h) = co.holder {
            let wanted = &self.clients[h.0 as usize]
                .as_ref()
                .ok_or("the coordination holder has no record")?
                .wanted;
            if wanted.len() != held.len() || !held.keys().all(|t| wanted.contains(t)) {
                return Err("the coordination holder wants other keys than it holds".into());
            }
        }
        if bytes != co.bytes {
            return Err(format!(
                "coordination counts {} bytes, holds {bytes}",
                co.bytes
            ));
        }
        if waiting != co.waiting || timers != co.timers.len() {
            return Err(format!(
                "coordination counts {} waiters and {} timers, has {waiting} and {timers}",
                co.waiting,
                co.timers.len()
            ));
        }
        Ok(())
    }
}

fn not_found(name: &str) -> CoordReply {
    failed(
        CoordErrorKind::NotFound,
        format!("Dataset '{name}' not found: list_datasets() shows the published ones"),
    )
}
