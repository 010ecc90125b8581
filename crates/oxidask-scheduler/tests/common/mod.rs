//! A simulated cluster around the pure scheduler state: events in, effects recorded, the
//! invariants checked after every step.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use oxidask_core::{Key, Token};
use oxidask_protocol::*;
use oxidask_scheduler::{Config, Effect, Event, SchedulerState, TState};

/// A key named `name`.
pub fn key(name: &str) -> Key {
    Key::new(
        name.split('-').next().unwrap(),
        Token::from_u128(oxidask_core::tokenize::tokenize(&name.to_owned()).as_u128()),
    )
}

pub fn wk(name: &str) -> WireKey {
    WireKey::from(&key(name))
}

/// A task reading `deps`.
pub fn task(name: &str, deps: &[&str]) -> WireTask {
    WireTask::new(
        wk(name),
        &WireSpec::Call {
            op: "test::op".into(),
            args: deps.iter().map(|d| WireArg::Key(wk(d))).collect(),
        },
        deps.iter().map(|d| wk(d)).collect(),
    )
}

pub fn info(name: &str, nthreads: u32) -> WorkerInfo {
    WorkerInfo {
        name: name.into(),
        data_address: format!("{name}:1"),
        nthreads,
        memory_limit: 0,
        resources: Vec::new(),
    }
}

/// What a simulated worker was told.
#[derive(Default, Debug)]
pub struct SimWorker {
    /// Assigned and not finished, in arrival order.
    pub assigned: Vec<WireKey>,
    /// Results it holds.
    pub holds: BTreeSet<WireKey>,
    pub steals: Vec<WireKey>,
    pub stores: Vec<WireKey>,
    pub computes: usize,
    /// Keys it was told to fetch and hold, with where from (not yet answered).
    pub acquires: Vec<(WireKey, Vec<String>)>,
    /// Told to stop or restart.
    pub stopped: bool,
}

/// A client's view.
#[derive(Default, Debug)]
pub struct SimClient {
    pub in_memory: BTreeSet<WireKey>,
    pub erred: BTreeMap<WireKey, WireError>,
    pub replies: Vec<ToClient>,
}

pub struct Sim {
    pub s: SchedulerState,
    pub now: Instant,
    pub workers: BTreeMap<u64, SimWorker>,
    pub clients: BTreeMap<u64, SimClient>,
    pub closed: Vec<(u64, String)>,
    pub effects: usize,
}

impl Sim {
    pub fn new() -> Sim {
        Sim::with_config(Config::default())
    }

    pub fn with_config(cfg: Config) -> Sim {
        let now = Instant::now();
        Sim {
            s: SchedulerState::new(cfg, now),
            now,
            workers: BTreeMap::new(),
            clients: BTreeMap::new(),
            closed: Vec::new(),
            effects: 0,
        }
    }

    pub fn step(&mut self, e: Event) {
        if std::env::var_os("SIM_TRACE").is_some() {
            eprintln!("{e:?}");
        }
        let effects = self.s.handle(e, self.now);
        if let Err(m) = self.s.validate() {
            panic!("invariant broken: {m}");
        }
        self.effects += effects.len();
        for eff in effects {
            if std::env::var_os("SIM_TRACE").is_some() {
                eprintln!("  {eff:?}");
            }
            match eff {
                Effect::ToWorker { conn, msg } => {
                    let w = self.workers.entry(conn).or_default();
                    match msg {
                        ToWorker::Compute { task, .. } => {
                            w.computes += 1;
                            if !w.assigned.contains(&task.key) {
                                w.assigned.push(task.key)
                            }
                        }
                        ToWorker::Free { keys } => {
                            for k in keys {
                                w.assigned.retain(|a| *a != k);
                                w.holds.remove(&k);
                            }
                        }
                        ToWorker::Steal { key } => w.steals.push(key),
                        ToWorker::Store { values } => {
                            w.stores.extend(values.into_iter().map(|(k, _)| k))
                        }
                        ToWorker::Stop { .. } | ToWorker::Restart { .. } => w.stopped = true,
                        ToWorker::Acquire { who_has } => w.acquires.extend(who_has),
                    }
                }
                Effect::ToClient { conn, msg } => {
                    let c = self.clients.entry(conn).or_default();
                    match &msg {
                        ToClient::KeyInMemory { key, .. } => {
                            c.in_memory.insert(*key);
                        }
                        ToClient::KeyErred { key, error } => {
                            c.erred.insert(*key, error.clone());
                        }
                        _ => {}
                    }
                    c.replies.push(msg);
                }
                Effect::Close { conn, reason } => self.closed.push((conn, reason)),
            }
        }
    }

    pub fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    pub fn add_worker(&mut self, conn: u64, name: &str, nthreads: u32) {
        self.add_worker_info(conn, info(name, nthreads));
    }

    pub fn add_worker_info(&mut self, conn: u64, info: WorkerInfo) {
        self.workers.insert(conn, SimWorker::default());
        self.step(Event::WorkerJoined { conn, info });
    }

    pub fn kill_worker(&mut self, conn: u64) {
        self.workers.remove(&conn);
        self.step(Event::WorkerLeft {
            conn,
            reason: "killed by the test".into(),
        });
    }

    pub fn add_client(&mut self, conn: u64) {
        self.clients.insert(conn, SimClient::default());
        self.step(Event::ClientJoined {
            conn,
            name: format!("client-{conn}"),
        });
    }

    pub fn submit(&mut self, client: u64, tasks: Vec<WireTask>, wanted: &[&str]) {
        self.submit_with(client, tasks, wanted, SubmitOptions::default());
    }

    pub fn submit_with(
        &mut self,
        client: u64,
        tasks: Vec<WireTask>,
        wanted: &[&str],
        options: SubmitOptions,
    ) {
        self.step(Event::FromClient {
            conn: client,
            msg: ToScheduler::UpdateGraph {
                tasks,
                wanted: wanted.iter().map(|w| wk(w)).collect(),
                options,
                more: false,
            },
        });
    }

    pub fn client_msg(&mut self, client: u64, msg: ToScheduler) {
        self.step(Event::FromClient { conn: client, msg });
    }

    /// Worker `conn` finishes `name`.
    pub fn finish(&mut self, conn: u64, name: &str) {
        self.finish_key(conn, wk(name));
    }

    pub fn finish_key(&mut self, conn: u64, k: WireKey) {
        let w = self.workers.get_mut(&conn).expect("live worker");
        assert!(
            w.assigned.contains(&k),
            "worker {conn} was not assigned {k}: {:?}",
            w.assigned
        );
        w.assigned.retain(|a| *a != k);
        w.holds.insert(k);
        self.step(Event::FromWorker {
            conn,
            msg: FromWorker::Finished {
                key: k,
                type_name: "i64".into(),
                nbytes: 8,
                duration_us: 1000,
                start_us: 0,
                thread: 0,
            },
        });
    }

    pub fn err(&mut self, conn: u64, name: &str, message: &str) {
        let k = wk(name);
        let w = self.workers.get_mut(&conn).expect("live worker");
        w.assigned.retain(|a| *a != k);
        self.step(Event::FromWorker {
            conn,
            msg: FromWorker::Erred {
                key: k,
                error: WireError {
                    key: Some(k),
                    op: "test::op".into(),
                    kind: oxidask_protocol::ErrorKind::Task,
                    message: message.into(),
                    causes: vec!["the cause".into()],
                    detail: None,
                },
            },
        });
    }

    /// Worker `conn` fetches everything it was told to acquire (each succeeds).
    pub fn acquire_all(&mut self, conn: u64) {
        let w = self.workers.get_mut(&conn).expect("live worker");
        let got: Vec<(WireKey, String, u64)> = w
            .acquires
            .drain(..)
            .map(|(k, _)| (k, "i64".to_owned(), 8))
            .collect();
        w.holds.extend(got.iter().map(|(k, _, _)| *k));
        self.step(Event::FromWorker {
            conn,
            msg: FromWorker::Acquired {
                keys: got,
                missing: Vec::new(),
            },
        });
    }

    pub fn state(&self, name: &str) -> Option<TState> {
        self.s.state_of(&key(name))
    }

    pub fn assigned(&self, conn: u64) -> Vec<WireKey> {
        self.workers[&conn].assigned.clone()
    }

    /// Finishes whatever is assigned anywhere until nothing is.
    pub fn drain(&mut self) {
        for _ in 0..100_000 {
            let next = self
                .workers
                .iter()
                .find_map(|(c, w)| w.assigned.first().map(|k| (*c, *k)));
            match next {
                Some((c, k)) => self.finish_key(c, k),
                None => return,
            }
        }
        panic!("drain did not converge");
    }
}
