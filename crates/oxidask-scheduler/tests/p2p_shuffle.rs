//! P2P shuffle restarts in the state machine: an unpack task that reports lost shards sends
//! the shuffle's transfers and barrier back to run again (every copy forgotten) and itself
//! back to wait, without an error reaching the client; unpacks already done keep their
//! results; after `MAX_RESTARTS` the error stands.

mod common;

use common::*;
use oxidask_core::{Key, Token};
use oxidask_protocol::*;
use oxidask_scheduler::{Event, TState};

fn k(prefix: &str, i: u32) -> WireKey {
    WireKey::from(&Key::block(prefix, Token::from_u128(77), &[i]))
}

fn barrier() -> WireKey {
    WireKey::from(&Key::new("s-p2p-barrier", Token::from_u128(77)))
}

fn t(key: WireKey, deps: Vec<WireKey>) -> WireTask {
    WireTask::new(
        key,
        &WireSpec::Call {
            op: "test::op".into(),
            args: deps.iter().map(|d| WireArg::Key(*d)).collect(),
        },
        deps,
    )
}

/// Two transfers, a barrier, two unpacks wanted by client 10; workers 1 and 2.
fn shuffle_sim() -> Sim {
    let mut sim = Sim::new();
    sim.add_worker(1, "w1", 1);
    sim.add_worker(2, "w2", 1);
    sim.add_client(10);
    let tasks = vec![
        t(k("s-p2p-transfer", 0), vec![]),
        t(k("s-p2p-transfer", 1), vec![]),
        t(
            barrier(),
            vec![k("s-p2p-transfer", 0), k("s-p2p-transfer", 1)],
        ),
        t(k("s", 0), vec![barrier()]),
        t(k("s", 1), vec![barrier()]),
    ];
    sim.step(Event::FromClient {
        conn: 10,
        msg: ToScheduler::UpdateGraph {
            tasks,
            wanted: vec![k("s", 0), k("s", 1)],
            options: SubmitOptions::default(),
            more: false,
        },
    });
    sim
}

fn state(sim: &Sim, key: WireKey) -> Option<TState> {
    sim.s.state_of(&key.to_key().unwrap())
}

fn where_assigned(sim: &Sim, key: WireKey) -> Option<u64> {
    sim.workers
        .iter()
        .find(|(_, w)| w.assigned.contains(&key))
        .map(|(c, _)| *c)
}

fn lost(sim: &mut Sim, conn: u64, key: WireKey) {
    sim.workers
        .get_mut(&conn)
        .unwrap()
        .assigned
        .retain(|a| *a != key);
    sim.step(Event::FromWorker {
        conn,
        msg: FromWorker::Erred {
            key,
            error: WireError {
                key: Some(key),
                op: "p2p_unpack".into(),
                kind: ErrorKind::Task,
                message: format!(
                    "{}: the worker at w2:1 no longer has the shards of inputs [1] for output 1",
                    oxidask_core::shuffle::SHARDS_LOST
                ),
                causes: Vec::new(),
                detail: None,
            },
        },
    });
}

/// Runs everything assigned except `hold` (left assigned).
fn run_all_but(sim: &mut Sim, hold: WireKey) {
    for _ in 0..1000 {
        let next = sim
            .workers
            .iter()
            .find_map(|(c, w)| w.assigned.iter().find(|a| **a != hold).map(|a| (*c, *a)));
        match next {
            Some((c, a)) => sim.finish_key(c, a),
            None => return,
        }
    }
    panic!("did not converge");
}

#[test]
fn lost_shards_restart_the_shuffle_and_the_client_sees_no_error() {
    let mut sim = shuffle_sim();
    run_all_but(&mut sim, k("s", 1));
    assert_eq!(state(&sim, k("s", 0)), Some(TState::Memory));
    let on = where_assigned(&sim, k("s", 1)).expect("unpack 1 assigned");
    let computes_before: usize = sim.workers.values().map(|w| w.computes).sum();
    lost(&mut sim, on, k("s", 1));
    // The transfers run again, the barrier and unpack 1 wait; unpack 0 keeps its result.
    for i in 0..2 {
        assert!(
            matches!(
                state(&sim, k("s-p2p-transfer", i)),
                Some(TState::Processing(_))
            ),
            "transfer {i}: {:?}",
            state(&sim, k("s-p2p-transfer", i))
        );
    }
    assert_eq!(state(&sim, barrier()), Some(TState::Waiting));
    assert_eq!(state(&sim, k("s", 1)), Some(TState::Waiting));
    assert_eq!(state(&sim, k("s", 0)), Some(TState::Memory));
    sim.drain();
    assert_eq!(state(&sim, k("s", 1)), Some(TState::Memory));
    assert!(
        sim.clients[&10].erred.is_empty(),
        "{:?}",
        sim.clients[&10].erred
    );
    assert!(sim.clients[&10].in_memory.contains(&k("s", 1)));
    // Two transfers, the barrier and the unpack ran again.
    let computes_after: usize = sim.workers.values().map(|w| w.computes).sum();
    assert_eq!(computes_after - computes_before, 4);
}

#[test]
fn a_shuffle_that_keeps_losing_shards_fails_after_the_restart_limit() {
    let mut sim = shuffle_sim();
    for _ in 0..oxidask_scheduler::P2P_MAX_RESTARTS {
        run_all_but(&mut sim, k("s", 1));
        let on = where_assigned(&sim, k("s", 1)).expect("unpack 1 assigned");
        lost(&mut sim, on, k("s", 1));
        assert!(sim.clients[&10].erred.is_empty());
    }
    run_all_but(&mut sim, k("s", 1));
    let on = where_assigned(&sim, k("s", 1)).expect("unpack 1 assigned");
    lost(&mut sim, on, k("s", 1));
    let e = &sim.clients[&10].erred[&k("s", 1)];
    assert!(e.message.contains("shards lost"), "{}", e.message);
}

#[test]
fn other_errors_of_an_unpack_task_stand() {
    let mut sim = shuffle_sim();
    run_all_but(&mut sim, k("s", 1));
    let on = where_assigned(&sim, k("s", 1)).expect("unpack 1 assigned");
    sim.workers.get_mut(&on).unwrap().assigned.clear();
    sim.step(Event::FromWorker {
        conn: on,
        msg: FromWorker::Erred {
            key: k("s", 1),
            error: WireError::invalid("a bad shard"),
        },
    });
    assert!(sim.clients[&10].erred.contains_key(&k("s", 1)));
    // Nothing restarted: no transfer runs again (the barrier, needed by nothing, is released).
    for i in 0..2 {
        assert!(!matches!(
            state(&sim, k("s-p2p-transfer", i)),
            Some(TState::Processing(_) | TState::Waiting)
        ));
    }
    assert_eq!(state(&sim, barrier()), Some(TState::Released));
}

/// Regression: when a shuffle was released only the barrier's holders were told to free it,
/// so a worker that ran transfers but never held the barrier kept the shards of outputs never
/// asked for (or left by a restart) until it stopped. Now every worker is told.
#[test]
fn a_released_shuffle_tells_every_worker_to_free_its_barrier() {
    let mut sim = shuffle_sim();
    run_all_but(&mut sim, k("s", 1));
    // A worker that holds nothing of the shuffle (as one that ran only transfers).
    sim.add_worker(3, "w3", 1);
    let on = where_assigned(&sim, k("s", 1)).expect("unpack 1 assigned");
    assert_ne!(on, 3);
    sim.workers.get_mut(&on).unwrap().assigned.clear();
    // The last unpack finishes: nothing needs the barrier any more.
    let effects = sim.s.handle(
        Event::FromWorker {
            conn: on,
            msg: FromWorker::Finished {
                key: k("s", 1),
                type_name: "i64".into(),
                nbytes: 8,
                duration_us: 1000,
                start_us: 0,
                thread: 0,
            },
        },
        sim.now,
    );
    sim.s.validate().unwrap();
    assert_eq!(state(&sim, barrier()), Some(TState::Released));
    let mut told: Vec<u64> = effects
        .iter()
        .filter_map(|e| match e {
            oxidask_scheduler::Effect::ToWorker {
                conn,
                msg: ToWorker::Free { keys },
            } if keys.contains(&barrier()) => Some(*conn),
            _ => None,
        })
        .collect();
    told.sort_unstable();
    assert_eq!(told, vec![1, 2, 3], "every worker frees the barrier");
}
