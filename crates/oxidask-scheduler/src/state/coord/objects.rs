//! The objects' operations: variables, queues, locks and semaphores, events, pub/sub,
//! datasets and the event log. Each answers at once (`Some(reply)`) or parks a waiter
//! (`None`) that a later operation, the clock or a departure completes.

use std::collections::VecDeque;
use std::time::Instant;

use oxidask_protocol::{CoordErrorKind, CoordReply, CoordValue, LoggedEvent, Payload};

use super::{
    event_size, failed, size, ClientId, Kind, Queue, SchedulerState, Semaphore, Subscriber,
};

impl SchedulerState {
    // ---- variables -----------------------------------------------------------------------

    pub(super) fn variable_set(&mut self, name: String, value: CoordValue) -> Option<CoordReply> {
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

    pub(super) fn variable_get(
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

    pub(super) fn queue_create(&mut self, name: &str, maxsize: u64) -> Option<CoordReply> {
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

    pub(super) fn queue_put(
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

    pub(super) fn queue_get(
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
    pub(super) fn coord_values(&mut self, c: ClientId, request: u64, items: Vec<CoordValue>) {
        // Keys are dropped only after they are handed over, so they are never unheld between.
        self.coord_reply(c, request, CoordReply::Values(items.clone()));
        for v in &items {
            self.coord_drop(v);
        }
    }

    /// Serves getters and admits waiting puts while it can.
    pub(super) fn queue_pump(&mut self, name: &str) {
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

    pub(super) fn lock_acquire(
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

    pub(super) fn lock_release(&mut self, c: ClientId, name: &str, holder: u64) -> CoordReply {
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
    pub(super) fn lock_pass(&mut self, name: &str) {
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

    pub(super) fn semaphore_create(&mut self, name: &str, max_leases: u32) -> CoordReply {
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

    pub(super) fn semaphore_acquire(
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

    pub(super) fn semaphore_release(&mut self, c: ClientId, name: &str, lease: u64) -> CoordReply {
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

    pub(super) fn semaphore_pump(&mut self, name: &str) {
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

    pub(super) fn event_set(&mut self, name: String) -> CoordReply {
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

    pub(super) fn event_wait(
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

    pub(super) fn subscribe(&mut self, c: ClientId, topic: String, id: u64) -> CoordReply {
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
    pub(super) fn unsubscribe(&mut self, c: ClientId, topic: &str, id: Option<u64>) {
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

    pub(super) fn publish(&mut self, topic: &str, msg: Payload) -> CoordReply {
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

    pub(super) fn sub_get(
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

    pub(super) fn dataset_publish(
        &mut self,
        name: String,
        value: CoordValue,
        overwrite: bool,
    ) -> CoordReply {
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

    pub(super) fn log_event(&mut self, topic: String, time: f64, msg: Payload) -> CoordReply {
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
}
