//! Blame under churn in the state machine: which worker deaths count against the tasks a
//! worker was processing (Dask's `suspicious` count, `KilledWorker` past
//! `distributed.scheduler.allowed-failures`).
//!
//! Rules checked here: a worker removed without warning (killed, connection lost, heartbeat
//! missed) counts against the tasks it could have been running (its first `nthreads`
//! processing tasks by priority, whether executing or still fetching inputs, as Dask counts
//! every task in `WorkerState.processing`); a worker that leaves on its own (it asked to
//! retire, whether the retirement finished, was given up, or it left before it finished) or
//! that held no processing task counts against nothing.

mod common;

use common::*;
use oxidask_protocol::FromWorker;
use oxidask_scheduler::{Config, Event, TState};

/// No failure allowed: the first death counted against a task fails it.
fn strict() -> Sim {
    Sim::with_config(Config {
        allowed_failures: 0,
        ..Config::default()
    })
}

fn ask_to_retire(sim: &mut Sim, conn: u64) {
    sim.step(Event::FromWorker {
        conn,
        msg: FromWorker::Retire,
    });
}

#[test]
fn fast_churn_blamed_a_task_whose_worker_left_through_an_aborted_retirement() {
    // Under fast churn a worker asked to leave (SIGTERM) while it held the only copy of a
    // result and no peer was connected to take it: its retirement was given up and it left
    // anyway, and that voluntary leave was counted as a death against the task it was
    // running, failing it with KilledWorker.
    let mut sim = strict();
    sim.add_client(100);
    sim.add_worker(1, "w1", 1);
    sim.submit(100, vec![task("x-0", &[])], &["x-0"]);
    sim.drain();
    // y does not read x (a task reading a result lost with its worker goes back to waiting
    // before blame is counted).
    sim.submit(100, vec![task("y-0", &[])], &["y-0"]);
    assert_eq!(sim.assigned(1), vec![wk("y-0")]);
    ask_to_retire(&mut sim, 1);
    // Nobody can take x-0: the retirement is given up and w1 leaves anyway.
    assert_eq!(sim.closed.len(), 1, "{:?}", sim.closed);
    assert!(
        sim.closed[0].1.contains("leaves anyway"),
        "{}",
        sim.closed[0].1
    );
    assert_ne!(
        sim.state("y-0"),
        Some(TState::Erred),
        "{:?}",
        sim.clients[&100].erred.get(&wk("y-0"))
    );
    sim.workers.remove(&1);
    sim.add_worker(2, "w2", 1);
    sim.drain();
    assert_eq!(sim.state("y-0"), Some(TState::Memory));
    assert!(sim.clients[&100].erred.is_empty());
}

#[test]
fn a_worker_that_asked_to_leave_and_disconnects_before_its_retirement_ends_blames_nothing() {
    let mut sim = strict();
    sim.add_client(100);
    sim.add_worker(1, "w1", 1);
    sim.submit(100, vec![task("x-0", &[])], &["x-0"]);
    sim.drain();
    sim.add_worker(2, "w2", 1);
    sim.submit_with(100, vec![task("y-0", &[])], &["y-0"], on("w1"));
    assert_eq!(sim.assigned(1), vec![wk("y-0")]);
    ask_to_retire(&mut sim, 1);
    // x-0 is on its way to w2; w1 exits before the copy arrived.
    assert_eq!(sim.workers[&2].acquires.len(), 1);
    sim.kill_worker(1);
    assert_ne!(
        sim.state("y-0"),
        Some(TState::Erred),
        "{:?}",
        sim.clients[&100].erred.get(&wk("y-0"))
    );
    sim.workers.get_mut(&2).unwrap().acquires.clear();
    sim.add_worker(3, "w1", 1);
    sim.drain();
    assert_eq!(sim.state("y-0"), Some(TState::Memory));
    assert_eq!(sim.state("x-0"), Some(TState::Memory));
    assert!(sim.clients[&100].erred.is_empty());
}

/// Options restricting tasks to worker `name`.
fn on(name: &str) -> oxidask_protocol::SubmitOptions {
    oxidask_protocol::SubmitOptions {
        workers: vec![name.to_owned()],
        ..Default::default()
    }
}

#[test]
fn a_worker_killed_while_idle_blames_nothing() {
    let mut sim = strict();
    sim.add_client(100);
    sim.add_worker(1, "w1", 1);
    sim.submit(100, vec![task("x-0", &[])], &["x-0"]);
    sim.drain();
    sim.add_worker(2, "w2", 1);
    // y reads x (held by w1) and runs on w2 (w1 is occupied by z, then idle).
    sim.submit(
        100,
        vec![task("y-0", &["x-0"]), task("z-0", &[])],
        &["y-0", "z-0"],
    );
    let mut all: Vec<_> = sim.assigned(1);
    all.extend(sim.assigned(2));
    assert_eq!(all.len(), 2);
    // Finish what w1 runs: it is idle now, holding x and maybe z.
    while let Some(&k) = sim.assigned(1).first() {
        sim.finish_key(1, k);
    }
    assert!(sim.assigned(1).is_empty());
    sim.kill_worker(1);
    // Nothing on w1 was processing: nothing is blamed; lost results are recomputed.
    assert!(
        sim.clients[&100].erred.is_empty(),
        "{:?}",
        sim.clients[&100].erred
    );
    sim.drain();
    assert_eq!(sim.state("y-0"), Some(TState::Memory));
    assert_eq!(sim.state("z-0"), Some(TState::Memory));
    assert!(sim.clients[&100].erred.is_empty());
}

#[test]
fn a_task_still_fetching_its_inputs_counts_a_death_as_dask_does() {
    // The scheduler does not know whether a processing task was executing or still fetching
    // its inputs; like Dask (every task in `WorkerState.processing`), a death unexpected by
    // the scheduler counts against it when it is among the worker's first `nthreads`.
    let mut sim = strict();
    sim.add_client(100);
    sim.add_worker(1, "w1", 1);
    sim.submit(100, vec![task("x-0", &[])], &["x-0"]);
    sim.drain();
    sim.add_worker(2, "w2", 1);
    // y runs on w2 and must fetch x from w1 first.
    sim.submit_with(100, vec![task("y-0", &["x-0"])], &["y-0"], on("w2"));
    assert_eq!(sim.assigned(2), vec![wk("y-0")]);
    sim.kill_worker(2);
    assert_eq!(sim.state("y-0"), Some(TState::Erred));
    let e = &sim.clients[&100].erred[&wk("y-0")];
    assert_eq!(e.kind, oxidask_protocol::ErrorKind::KilledWorker);
}
