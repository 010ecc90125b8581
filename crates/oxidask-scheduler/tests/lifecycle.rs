//! Graceful lifecycle in the state machine: retiring workers without losing data, replicate,
//! rebalance, and the adaptive recommendation.

mod common;

use common::*;
use oxidask_protocol::{FromWorker, ToClient, ToScheduler, WorkerInfo};
use oxidask_scheduler::{Event, TState};

fn retired(sim: &Sim, client: u64, request: u64) -> Option<(Vec<String>, Option<String>)> {
    sim.clients[&client].replies.iter().find_map(|r| match r {
        ToClient::Retired {
            request: q,
            workers,
            error,
        } if *q == request => Some((
            workers.iter().map(|w| w.name.clone()).collect(),
            error.clone(),
        )),
        _ => None,
    })
}

fn moved(sim: &Sim, client: u64, request: u64) -> Option<(u64, Option<String>)> {
    sim.clients[&client].replies.iter().find_map(|r| match r {
        ToClient::Moved {
            request: q,
            copies,
            error,
        } if *q == request => Some((*copies, error.clone())),
        _ => None,
    })
}

fn retire(sim: &mut Sim, client: u64, request: u64, workers: &[&str], n: u32) {
    sim.client_msg(
        client,
        ToScheduler::RetireWorkers {
            request,
            workers: workers.iter().map(|w| w.to_string()).collect(),
            n,
        },
    );
}

/// w1 computes `names` alone, then w2 joins.
fn two_workers_data_on_first(names: &[&str]) -> Sim {
    let mut sim = Sim::new();
    sim.add_worker(1, "w1", 1);
    sim.add_client(10);
    sim.submit(10, names.iter().map(|n| task(n, &[])).collect(), names);
    sim.drain();
    sim.add_worker(2, "w2", 1);
    sim
}

#[test]
fn retiring_copies_unique_results_to_a_peer_before_closing_the_worker() {
    let mut sim = two_workers_data_on_first(&["a-0", "b-0"]);
    retire(&mut sim, 10, 1, &["w1"], 0);
    // w2 is told to fetch both from w1; w1 stays until they arrived.
    let mut asked: Vec<_> = sim.workers[&2].acquires.clone();
    asked.sort();
    let mut want = vec![
        (wk("a-0"), vec!["w1:1".to_owned()]),
        (wk("b-0"), vec!["w1:1".to_owned()]),
    ];
    want.sort();
    assert_eq!(asked, want);
    assert!(sim.closed.is_empty());
    assert_eq!(retired(&sim, 10, 1), None);
    // A retiring worker is given no new task.
    sim.submit(10, vec![task("c-0", &["a-0"])], &["c-0"]);
    assert!(sim.assigned(1).is_empty(), "{:?}", sim.assigned(1));
    assert_eq!(sim.assigned(2), vec![wk("c-0")]);
    sim.acquire_all(2);
    assert_eq!(sim.closed.len(), 1, "{:?}", sim.closed);
    assert_eq!(sim.closed[0].0, 1);
    assert!(sim.closed[0].1.contains("retired"), "{}", sim.closed[0].1);
    assert_eq!(retired(&sim, 10, 1), Some((vec!["w1".to_owned()], None)));
    // Nothing was lost or recomputed: the results are on w2.
    for k in ["a-0", "b-0"] {
        assert_eq!(sim.state(k), Some(TState::Memory));
        assert_eq!(sim.s.who_has(&key(k)), vec!["w2".to_owned()]);
    }
    assert_eq!(sim.workers[&2].computes, 1, "only c-0 ran on w2");
    sim.kill_worker(1);
    sim.drain();
    assert_eq!(sim.state("c-0"), Some(TState::Memory));
}

#[test]
fn retiring_the_last_holder_fails_clearly_and_the_worker_keeps_working() {
    let mut sim = Sim::new();
    sim.add_worker(1, "w1", 1);
    sim.add_client(10);
    sim.submit(10, vec![task("a-0", &[])], &["a-0"]);
    sim.drain();
    retire(&mut sim, 10, 3, &["w1"], 0);
    let (names, error) = retired(&sim, 10, 3).expect("answered at once");
    assert!(names.is_empty());
    let error = error.expect("an error");
    assert!(
        error.contains("w1") && error.contains("no other worker"),
        "{error}"
    );
    assert!(sim.closed.is_empty());
    assert_eq!(sim.state("a-0"), Some(TState::Memory));
    sim.submit(10, vec![task("b-0", &["a-0"])], &["b-0"]);
    assert_eq!(sim.assigned(1), vec![wk("b-0")]);
    // Unknown names are reported too.
    retire(&mut sim, 10, 4, &["nobody"], 0);
    let (_, error) = retired(&sim, 10, 4).unwrap();
    assert!(error.unwrap().contains("nobody"));
}

#[test]
fn a_worker_asking_to_leave_with_no_peer_leaves_anyway() {
    let mut sim = Sim::new();
    sim.add_worker(1, "w1", 1);
    sim.add_client(10);
    sim.submit(10, vec![task("a-0", &[])], &["a-0"]);
    sim.drain();
    sim.step(Event::FromWorker {
        conn: 1,
        msg: FromWorker::Retire,
    });
    assert_eq!(sim.closed.len(), 1);
    assert!(
        sim.closed[0].1.contains("leaves anyway"),
        "{}",
        sim.closed[0].1
    );
}

#[test]
fn a_worker_asking_to_leave_is_retired_gracefully() {
    let mut sim = two_workers_data_on_first(&["a-0"]);
    sim.step(Event::FromWorker {
        conn: 1,
        msg: FromWorker::Retire,
    });
    assert!(sim.closed.is_empty());
    sim.acquire_all(2);
    assert_eq!(sim.closed.len(), 1);
    assert_eq!(sim.s.who_has(&key("a-0")), vec!["w2".to_owned()]);
}

#[test]
fn a_recipient_leaving_mid_retirement_sends_the_data_elsewhere() {
    let mut sim = two_workers_data_on_first(&["a-0"]);
    sim.add_worker(3, "w3", 1);
    retire(&mut sim, 10, 1, &["w1"], 0);
    let first = if sim.workers[&2].acquires.is_empty() {
        3
    } else {
        2
    };
    let other = 5 - first;
    sim.kill_worker(first);
    assert_eq!(sim.workers[&other].acquires.len(), 1);
    sim.acquire_all(other);
    assert_eq!(retired(&sim, 10, 1), Some((vec!["w1".to_owned()], None)));
    assert_eq!(sim.state("a-0"), Some(TState::Memory));
}

#[test]
fn a_failed_copy_is_retried_then_the_retirement_gives_up() {
    let mut sim = two_workers_data_on_first(&["a-0"]);
    retire(&mut sim, 10, 1, &["w1"], 0);
    for _ in 0..3 {
        let asked = std::mem::take(&mut sim.workers.get_mut(&2).unwrap().acquires);
        assert_eq!(asked.len(), 1);
        sim.step(Event::FromWorker {
            conn: 2,
            msg: FromWorker::Acquired {
                keys: Vec::new(),
                missing: vec![wk("a-0")],
            },
        });
    }
    let (names, error) = retired(&sim, 10, 1).expect("given up");
    assert!(names.is_empty());
    assert!(error.unwrap().contains("could not be copied"));
    assert!(sim.closed.is_empty());
}

#[test]
fn retiring_by_count_picks_idle_workers_holding_the_least_data() {
    let mut sim = two_workers_data_on_first(&["a-0"]);
    sim.add_worker(3, "w3", 1);
    retire(&mut sim, 10, 1, &[], 1);
    let (names, error) = retired(&sim, 10, 1).expect("nothing to move");
    assert_eq!(error, None);
    assert_eq!(names.len(), 1);
    assert_ne!(names[0], "w1", "w1 holds the only copy of a-0");
}

#[test]
fn replicate_copies_onto_n_workers_and_drops_extras() {
    let mut sim = two_workers_data_on_first(&["a-0"]);
    sim.add_worker(3, "w3", 1);
    sim.client_msg(
        10,
        ToScheduler::Replicate {
            request: 5,
            keys: vec![wk("a-0")],
            n: 0,
        },
    );
    assert_eq!(moved(&sim, 10, 5), None);
    sim.acquire_all(2);
    assert_eq!(moved(&sim, 10, 5), None, "one copy still on its way");
    sim.acquire_all(3);
    assert_eq!(moved(&sim, 10, 5), Some((2, None)));
    let mut holders = sim.s.who_has(&key("a-0"));
    holders.sort();
    assert_eq!(holders, vec!["w1", "w2", "w3"]);
    sim.client_msg(
        10,
        ToScheduler::Replicate {
            request: 6,
            keys: vec![wk("a-0"), wk("zzz-0")],
            n: 1,
        },
    );
    let (copies, error) = moved(&sim, 10, 6).expect("nothing to copy");
    assert_eq!(copies, 0);
    assert!(error.unwrap().contains("not in memory"));
    assert_eq!(sim.s.who_has(&key("a-0")).len(), 1);
}

#[test]
fn rebalance_moves_results_until_workers_hold_about_the_same() {
    let names: Vec<String> = (0..6).map(|i| format!("a-{i}")).collect();
    let refs: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
    let mut sim = two_workers_data_on_first(&refs);
    sim.add_worker(3, "w3", 1);
    sim.client_msg(
        10,
        ToScheduler::Rebalance {
            request: 8,
            keys: Vec::new(),
        },
    );
    assert_eq!(sim.workers[&2].acquires.len(), 2);
    assert_eq!(sim.workers[&3].acquires.len(), 2);
    sim.acquire_all(2);
    sim.acquire_all(3);
    assert_eq!(moved(&sim, 10, 8), Some((4, None)));
    let summary = sim.s.summary();
    for w in &summary.workers {
        assert_eq!(w.keys, 2, "{summary:?}");
    }
    // Moved, not copied: each key has one holder.
    for n in &refs {
        assert_eq!(sim.s.who_has(&key(n)).len(), 1);
    }
}

#[test]
fn adaptive_target_follows_queued_work_memory_and_idleness() {
    let mut sim = Sim::new();
    sim.add_worker(1, "w1", 1);
    sim.add_worker(2, "w2", 1);
    sim.add_client(10);
    let names: Vec<String> = (0..10).map(|i| format!("r-{i}")).collect();
    let refs: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
    sim.submit(10, refs.iter().map(|n| task(n, &[])).collect(), &refs);
    // 10 tasks of 0.5 s (the default estimate) to finish in 1 s: 5 one-thread workers.
    let rec = sim.s.adaptive_target(std::time::Duration::from_secs(1));
    assert_eq!(rec.target, 5);
    assert!(rec.workers_to_close.is_empty());
    // Capped by the tasks there are.
    let rec = sim.s.adaptive_target(std::time::Duration::from_millis(10));
    assert_eq!(rec.target, 10);
    sim.drain();
    // Idle: one worker may go (the one holding less); the last keeps the data.
    let rec = sim.s.adaptive_target(std::time::Duration::from_secs(1));
    assert_eq!(rec.target, 1);
    let summary = sim.s.summary();
    let lighter = summary.workers.iter().min_by_key(|w| w.keys).unwrap();
    assert_eq!(rec.workers_to_close, vec![lighter.address.clone()]);
    // Through the protocol too.
    sim.client_msg(
        10,
        ToScheduler::AdaptiveTarget {
            request: 9,
            target_duration_us: 1_000_000,
        },
    );
    assert!(sim.clients[&10].replies.iter().any(|r| matches!(
        r,
        ToClient::AdaptiveTarget { request: 9, target: 1, workers_to_close } if workers_to_close.len() == 1
    )));
}

#[test]
fn adaptive_target_asks_for_more_workers_under_memory_pressure() {
    let mut sim = Sim::new();
    for (conn, name) in [(1, "w1"), (2, "w2")] {
        sim.add_worker_info(
            conn,
            WorkerInfo {
                memory_limit: 100,
                ..info(name, 1)
            },
        );
    }
    sim.add_client(10);
    // 16 results of 8 bytes: 128 bytes, past 60% of the 200-byte limits.
    let names: Vec<String> = (0..16).map(|i| format!("m-{i}")).collect();
    let refs: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
    sim.submit(10, refs.iter().map(|n| task(n, &[])).collect(), &refs);
    sim.drain();
    let rec = sim.s.adaptive_target(std::time::Duration::from_secs(5));
    assert_eq!(rec.target, 4);
}

#[test]
fn a_reconnected_worker_reporting_its_results_becomes_a_holder_again() {
    let mut sim = two_workers_data_on_first(&["a-0", "b-0"]);
    sim.client_msg(
        10,
        ToScheduler::Replicate {
            request: 1,
            keys: vec![wk("a-0")],
            n: 0,
        },
    );
    sim.acquire_all(2);
    // w1's connection drops: a-0 survives on w2, b-0 is lost and recomputed on w2.
    sim.kill_worker(1);
    assert_eq!(sim.assigned(2), vec![wk("b-0")]);
    // w1 comes back (new connection) holding both, and an unknown key.
    sim.add_worker(3, "w1", 1);
    sim.workers.get_mut(&3).unwrap().holds.insert(wk("zzz-0"));
    sim.step(Event::FromWorker {
        conn: 3,
        msg: FromWorker::Holding {
            keys: vec![
                (wk("a-0"), "i64".into(), 8),
                (wk("b-0"), "i64".into(), 8),
                (wk("zzz-0"), "i64".into(), 8),
            ],
        },
    });
    let mut holders = sim.s.who_has(&key("a-0"));
    holders.sort();
    assert_eq!(holders, vec!["w1", "w2"]);
    // b-0 was being recomputed: the reported copy is taken and the computation dropped.
    assert_eq!(sim.state("b-0"), Some(TState::Memory));
    assert_eq!(sim.s.who_has(&key("b-0")), vec!["w1".to_owned()]);
    assert!(sim.assigned(2).is_empty());
    // The unknown key is freed on the worker.
    assert!(!sim.workers[&3].holds.contains(&wk("zzz-0")));
}

#[test]
fn retire_without_arguments_retires_idle_workers_the_data_can_spare() {
    let mut sim = two_workers_data_on_first(&["a-0"]);
    sim.add_worker(3, "w3", 1);
    retire(&mut sim, 10, 1, &[], 0);
    // Without memory limits each remaining worker counts as unlimited: both idle workers
    // without data go; w1, holding the only copy of a-0, stays (the last worker is kept
    // while it holds data).
    let (mut names, error) = retired(&sim, 10, 1).expect("nothing to move");
    names.sort();
    assert_eq!(error, None);
    assert_eq!(names, vec!["w2", "w3"]);
}
