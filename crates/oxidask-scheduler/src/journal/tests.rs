//! The journal's format and replay: a graph half computed is journalled, the "process" is
//! dropped without compaction (as SIGKILL would), and a replay plus the worker's `Holding`
//! gives back the same state without computing what the worker held; torn tails are dropped,
//! damaged records refused by offset, snapshots replay to the same graph.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use oxidask_core::{Key, Token};
use oxidask_protocol::*;

use super::*;
use crate::state::{Effect, Event, SchedulerState, TState};

fn key(name: &str) -> Key {
    Key::new(
        name.split('-').next().unwrap(),
        Token::from_u128(oxidask_core::tokenize::tokenize(&name.to_owned()).as_u128()),
    )
}

fn wk(name: &str) -> WireKey {
    WireKey::from(&key(name))
}

fn task(name: &str, deps: &[&str]) -> WireTask {
    WireTask::new(
        wk(name),
        &WireSpec::Call {
            op: "test::op".into(),
            args: deps.iter().map(|d| WireArg::Key(wk(d))).collect(),
        },
        deps.iter().map(|d| wk(d)).collect(),
    )
}

fn info(name: &str) -> WorkerInfo {
    WorkerInfo {
        name: name.into(),
        data_address: format!("{name}:1"),
        nthreads: 2,
        memory_limit: 0,
        resources: Vec::new(),
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "oxidask-journal-unit-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A scheduler with a journal, driven like the core thread drives it.
struct Driven {
    s: SchedulerState,
    j: Journal,
    now: Instant,
    /// Computes sent, by key.
    computes: BTreeMap<WireKey, usize>,
    /// Assigned and not yet answered.
    assigned: Vec<WireKey>,
    /// Keys clients were told are in memory, by connection.
    told: Vec<(u64, WireKey)>,
}

impl Driven {
    fn open(dir: &Path) -> (Driven, Replayed) {
        let now = Instant::now();
        let o = Journal::open(dir, Config::default(), now).expect("open");
        o.state.validate().expect("valid after replay");
        let d = Driven {
            s: o.state,
            j: o.journal,
            now,
            computes: BTreeMap::new(),
            assigned: Vec::new(),
            told: Vec::new(),
        };
        (d, o.replayed)
    }

    fn step(&mut self, e: Event) {
        self.j.record(&e);
        let effects = self.s.handle(e, self.now);
        self.j.after(&self.s);
        self.j.flush();
        self.s.validate().expect("valid");
        for eff in effects {
            match eff {
                Effect::ToWorker {
                    msg: ToWorker::Compute { task, .. },
                    ..
                } => {
                    *self.computes.entry(task.key).or_default() += 1;
                    self.assigned.push(task.key);
                }
                Effect::ToClient {
                    conn,
                    msg: ToClient::KeyInMemory { key, .. },
                } => self.told.push((conn, key)),
                _ => {}
            }
        }
    }

    /// The worker on connection 100 answers `n` of its assigned tasks (`bad` fails).
    fn work(&mut self, n: usize) {
        for _ in 0..n {
            if self.assigned.is_empty() {
                return;
            }
            let k = self.assigned.remove(0);
            let msg = if k == wk("bad") {
                FromWorker::Erred {
                    key: k,
                    error: WireError::invalid("bad input".to_owned()),
                }
            } else {
                FromWorker::Finished {
                    key: k,
                    type_name: "i64".into(),
                    nbytes: 8,
                    duration_us: 10,
                    start_us: 0,
                    thread: 0,
                }
            };
            self.step(Event::FromWorker { conn: 100, msg });
        }
    }

    fn in_memory(&self) -> BTreeSet<WireKey> {
        self.all_keys()
            .into_iter()
            .filter(|k| self.s.state_of(&k.to_key().unwrap()) == Some(TState::Memory))
            .collect()
    }

    fn erred(&self) -> BTreeSet<WireKey> {
        self.all_keys()
            .into_iter()
            .filter(|k| self.s.state_of(&k.to_key().unwrap()) == Some(TState::Erred))
            .collect()
    }

    fn all_keys(&self) -> Vec<WireKey> {
        graph_keys()
            .into_iter()
            .filter(|k| self.s.state_of(&k.to_key().unwrap()).is_some())
            .collect()
    }
}

fn graph() -> Vec<WireTask> {
    let mut tasks = vec![task("bad", &[])];
    for i in 0..8 {
        tasks.push(task(&format!("a-{i}"), &[]));
    }
    for i in 0..4 {
        let (x, y) = (format!("a-{}", 2 * i), format!("a-{}", 2 * i + 1));
        tasks.push(task(&format!("b-{i}"), &[&x, &y]));
    }
    tasks.push(task("c", &["b-0", "b-1", "b-2", "b-3"]));
    tasks.push(task("after-bad", &["bad", "a-0"]));
    tasks
}

fn graph_keys() -> Vec<WireKey> {
    graph().iter().map(|t| t.key).collect()
}

const ALICE: u128 = 0x5eed_a11ce;

/// Submits the graph, joins a worker and computes part of it; returns the driven state.
fn half_computed(dir: &Path) -> Driven {
    let (mut d, replayed) = Driven::open(dir);
    assert!(replayed.clients.is_empty() && replayed.workers.is_empty());
    d.step(Event::ClientJoined {
        conn: 1,
        name: "alice".into(),
    });
    d.step(Event::ClientIdentified {
        conn: 1,
        id: ALICE,
        reconnect: false,
    });
    d.step(Event::FromClient {
        conn: 1,
        msg: ToScheduler::UpdateGraph {
            tasks: graph(),
            wanted: vec![wk("c"), wk("after-bad")],
            options: SubmitOptions::default(),
            more: false,
        },
    });
    d.step(Event::WorkerJoined {
        conn: 100,
        info: info("w1"),
    });
    // bad is a root task: it runs among the first.
    d.work(9);
    assert!(d.erred().contains(&wk("bad")), "bad failed");
    assert!(!d.in_memory().is_empty());
    assert!(
        d.s.state_of(&key("c")) != Some(TState::Memory),
        "c not done yet"
    );
    d
}

#[test]
fn replay_and_holding_resume_without_recomputing() {
    let dir = temp_dir("resume");
    let d = half_computed(&dir);
    let held = d.in_memory();
    assert!(
        held.contains(&wk("b-0")),
        "a task that waits for its inputs after the replay is held: {held:?}"
    );
    let erred = d.erred();
    let keys: BTreeSet<WireKey> = d.all_keys().into_iter().collect();
    drop(d); // killed: no compaction, no goodbye

    let (mut r, replayed) = Driven::open(&dir);
    assert_eq!(replayed.workers, vec!["w1".to_owned()]);
    assert_eq!(replayed.clients.len(), 1);
    assert_eq!(replayed.clients[0].1, "alice");
    assert_eq!(replayed.clients[0].2, ALICE);
    assert_eq!(
        r.s.n_clients(),
        0,
        "the restored client is parked, not connected"
    );
    assert!(
        r.in_memory().is_empty(),
        "nothing is in memory before workers report"
    );
    assert_eq!(r.erred(), erred, "errors are restored, not recomputed");
    let rkeys: BTreeSet<WireKey> = r.all_keys().into_iter().collect();
    assert!(keys.is_subset(&rkeys), "every live task is back");
    // The worker reconnects and reports what it holds.
    r.step(Event::WorkerJoined {
        conn: 100,
        info: info("w1"),
    });
    r.step(Event::FromWorker {
        conn: 100,
        msg: FromWorker::Holding {
            keys: held.iter().map(|k| (*k, "i64".into(), 8)).collect(),
        },
    });
    // Its results are taken (the tasks it was given meanwhile are taken back).
    for k in &held {
        assert_eq!(
            r.s.state_of(&k.to_key().unwrap()),
            Some(TState::Memory),
            "{k} taken from Holding"
        );
    }
    r.assigned.retain(|k| !held.contains(k));
    // The client reconnects by its id and takes its futures back.
    r.step(Event::ClientJoined {
        conn: 7,
        name: "alice".into(),
    });
    r.step(Event::ClientIdentified {
        conn: 7,
        id: ALICE,
        reconnect: true,
    });
    r.work(100);
    assert!(
        r.told.contains(&(7, wk("c"))),
        "the reconnected client is told c is in memory: {:?}",
        r.told
    );
    assert_eq!(r.s.state_of(&key("c")), Some(TState::Memory), "c finished");
    assert_eq!(r.s.state_of(&key("after-bad")), Some(TState::Erred));
    assert!(
        !r.computes.contains_key(&wk("bad")),
        "the error was not recomputed"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn snapshots_replay_to_the_same_graph() {
    let dir = temp_dir("snapshot");
    let d = half_computed(&dir);
    drop(d);
    let (a, _) = Driven::open(&dir); // replays the log, writes a snapshot
    let (a_keys, a_erred) = (a.all_keys(), a.erred());
    let a_states: Vec<_> = a_keys
        .iter()
        .map(|k| a.s.state_of(&k.to_key().unwrap()))
        .collect();
    drop(a);
    let (b, replayed) = Driven::open(&dir); // replays the snapshot
    assert_eq!(replayed.clients.len(), 1);
    assert_eq!(replayed.workers, vec!["w1".to_owned()]);
    assert_eq!(b.all_keys(), a_keys);
    assert_eq!(b.erred(), a_erred);
    let b_states: Vec<_> = a_keys
        .iter()
        .map(|k| b.s.state_of(&k.to_key().unwrap()))
        .collect();
    assert_eq!(b_states, a_states);
    for k in [wk("c"), wk("after-bad")] {
        let t = b.s.task_by_key(&k.to_key().unwrap()).unwrap();
        assert_eq!(t.wanted_by.len(), 1, "{k} wanted by the restored client");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_torn_tail_is_dropped_and_damage_is_refused_by_offset() {
    let dir = temp_dir("torn");
    drop(half_computed(&dir));
    let path = dir.join(FILE_NAME);
    let whole = std::fs::read(&path).unwrap();
    let full = read(&path).unwrap();
    assert!(full.torn.is_none());
    // Every cut inside the last record drops just that record.
    let mut last = MAGIC.len();
    let mut at = MAGIC.len();
    while at < whole.len() {
        last = at;
        let len = u32::from_le_bytes(whole[at..at + 4].try_into().unwrap()) as usize;
        at += 8 + len;
    }
    for cut in [last + 1, last + 5, last + 9, whole.len() - 1] {
        let l = parse(&path, &whole[..cut]).unwrap();
        assert_eq!(l.records.len(), full.records.len() - 1, "cut at {cut}");
        assert_eq!(l.torn, Some((last as u64, cut - last)));
    }
    // A damaged last record is a torn one too.
    let mut bad_tail = whole.clone();
    *bad_tail.last_mut().unwrap() ^= 0xff;
    assert!(parse(&path, &bad_tail).unwrap().torn.is_some());
    // A damaged record before the end is an error naming the file and the offset.
    let mut bad = whole.clone();
    bad[MAGIC.len() + 8] ^= 0xff;
    let e = parse(&path, &bad).unwrap_err().to_string();
    assert!(
        e.contains(&path.display().to_string())
            && e.contains("byte 8")
            && e.contains("move the file aside"),
        "{e}"
    );
    let e = parse(&path, b"not a journal at all")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not an oxidask scheduler journal"), "{e}");
    // A torn journal opens: the state has everything but the last record.
    std::fs::write(&path, &whole[..whole.len() - 3]).unwrap();
    let (d, _) = Driven::open(&dir);
    assert!(d.s.state_of(&key("c")).is_some());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_journal_is_compacted_when_it_outgrows_the_live_graph() {
    let dir = temp_dir("compact");
    let (mut d, _) = Driven::open(&dir);
    d.j.set_compaction(2, 0);
    d.step(Event::ClientJoined {
        conn: 1,
        name: "alice".into(),
    });
    let mut compactions = 0;
    for round in 0..20 {
        let k = format!("x-{round}");
        d.step(Event::FromClient {
            conn: 1,
            msg: ToScheduler::UpdateGraph {
                tasks: vec![task(&k, &[])],
                wanted: vec![wk(&k)],
                options: SubmitOptions::default(),
                more: false,
            },
        });
        d.step(Event::FromClient {
            conn: 1,
            msg: ToScheduler::Release { keys: vec![wk(&k)] },
        });
        if d.j.wants_compaction() {
            d.j.compact(&d.s).unwrap();
            compactions += 1;
        }
    }
    assert!(compactions >= 3, "{compactions} compactions");
    assert!(d.j.bytes() < 2_000, "{} bytes", d.j.bytes());
    assert_eq!(std::fs::metadata(d.j.path()).unwrap().len(), d.j.bytes());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_journal_path_that_is_a_file_is_refused_by_name() {
    let dir = temp_dir("file");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let e = Journal::open(&file, Config::default(), Instant::now())
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains("not-a-dir") && e.contains("not a directory") && e.contains("--journal"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn crc32_is_the_ieee_checksum() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(crc32(b""), 0);
}

/// What journalling costs the core on a large graph, printed (`--nocapture`) with no
/// threshold: handling a 50,000-task UpdateGraph with and without recording and writing it.
#[test]
fn the_cost_of_journalling_a_large_graph_is_printed() {
    let n = 50_000;
    let tasks: Vec<WireTask> = (0..n)
        .map(|i| {
            if i == 0 {
                task("big-0", &[])
            } else {
                task(&format!("big-{i}"), &[&format!("big-{}", i / 2)])
            }
        })
        .collect();
    let msg = || ToScheduler::UpdateGraph {
        tasks: tasks.clone(),
        wanted: tasks.iter().map(|t| t.key).collect(),
        options: SubmitOptions::default(),
        more: false,
    };
    let now = Instant::now();
    let mut plain = SchedulerState::new(Config::default(), now);
    plain.handle(
        Event::ClientJoined {
            conn: 1,
            name: "c".into(),
        },
        now,
    );
    let e = Event::FromClient {
        conn: 1,
        msg: msg(),
    };
    let t0 = Instant::now();
    plain.handle(e, now);
    let without = t0.elapsed();

    let dir = temp_dir("cost");
    let (mut d, _) = Driven::open(&dir);
    d.step(Event::ClientJoined {
        conn: 1,
        name: "c".into(),
    });
    let e = Event::FromClient {
        conn: 1,
        msg: msg(),
    };
    let t0 = Instant::now();
    d.j.record(&e);
    let recorded = t0.elapsed();
    d.s.handle(e, d.now);
    d.j.after(&d.s);
    let t1 = Instant::now();
    d.j.flush();
    let flushed = t1.elapsed();
    let t2 = Instant::now();
    d.j.compact(&d.s).unwrap();
    let compacted = t2.elapsed();
    assert_eq!(d.s.n_tasks(), n);
    println!(
        "journal cost, {n}-task graph: handling {:.1} ms; recording {:.1} ms, writing {:.1} ms ({} KiB); a snapshot {:.1} ms",
        without.as_secs_f64() * 1e3,
        recorded.as_secs_f64() * 1e3,
        flushed.as_secs_f64() * 1e3,
        d.j.bytes() / 1024,
        compacted.as_secs_f64() * 1e3,
    );
    let _ = std::fs::remove_dir_all(&dir);
}
