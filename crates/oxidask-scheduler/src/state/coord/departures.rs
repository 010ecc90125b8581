//! Time and departures: waiters whose deadline passed are answered (`TimedOut`, or
//! `Flag(false)` for locks, semaphores and events); a client that leaves loses its waiters,
//! locks, leases and subscriptions; an abandoned request is dropped.

use oxidask_protocol::{CoordReply, CoordValue};

use super::{take_seq, take_waiters, ClientId, Deadline, Kind, SchedulerState};

impl SchedulerState {
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
    pub(crate) fn coord_forget_waiters(&mut self, c: ClientId, request: Option<u64>) {
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
}
