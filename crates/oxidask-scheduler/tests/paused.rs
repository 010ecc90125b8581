//! Workers paused by their memory monitor (Dask's status `paused`): given nothing new while
//! paused, filled again when they resume; with every worker paused, ready work waits.

mod common;

use common::*;
use oxidask_protocol::FromWorker;
use oxidask_scheduler::{Event, TState};

fn pause(sim: &mut Sim, conn: u64, paused: bool) {
    sim.step(Event::FromWorker {
        conn,
        msg: FromWorker::Paused { paused },
    });
}

#[test]
fn a_paused_worker_gets_no_new_tasks_and_is_filled_when_it_resumes() {
    let mut sim = Sim::new();
    sim.add_worker(1, "w1", 1);
    sim.add_worker(2, "w2", 1);
    sim.add_client(10);
    pause(&mut sim, 1, true);
    let roots: Vec<String> = (0..40).map(|i| format!("r-{i}")).collect();
    let tasks = roots.iter().map(|r| task(r, &[])).collect();
    let wanted: Vec<&str> = roots.iter().map(String::as_str).collect();
    sim.submit(10, tasks, &wanted);
    assert!(sim.assigned(1).is_empty(), "paused w1 got work");
    assert!(!sim.assigned(2).is_empty());
    // w2 works through the queue; w1 still gets nothing.
    for _ in 0..3 {
        let k = sim.assigned(2)[0];
        sim.finish_key(2, k);
        assert!(sim.assigned(1).is_empty());
    }
    // A dependent of a result on w2 goes to w2, never to paused w1.
    sim.submit(10, vec![task("d-0", &["r-0"])], &["d-0"]);
    assert!(sim.assigned(1).is_empty());
    pause(&mut sim, 1, false);
    assert!(
        !sim.assigned(1).is_empty(),
        "resumed w1 is filled from the queue"
    );
    sim.drain();
    for r in &wanted {
        assert_eq!(sim.state(r), Some(TState::Memory), "{r}");
    }
    assert_eq!(sim.state("d-0"), Some(TState::Memory));
}

#[test]
fn with_every_worker_paused_ready_work_waits_instead_of_failing() {
    let mut sim = Sim::new();
    sim.add_worker(1, "w1", 1);
    sim.add_client(10);
    sim.submit(10, vec![task("a-0", &[])], &["a-0"]);
    sim.finish(1, "a-0");
    pause(&mut sim, 1, true);
    sim.submit(
        10,
        vec![task("b-0", &[]), task("c-0", &["a-0"])],
        &["b-0", "c-0"],
    );
    assert!(sim.assigned(1).is_empty());
    assert_eq!(sim.state("a-0"), Some(TState::Memory));
    assert_eq!(sim.state("b-0"), Some(TState::Queued));
    assert_eq!(sim.state("c-0"), Some(TState::Queued));
    // Past the no-worker timeout (the paused worker still heartbeating): nothing fails
    // while its only worker is paused.
    for _ in 0..4 {
        sim.advance(std::time::Duration::from_secs(2));
        sim.step(Event::FromWorker {
            conn: 1,
            msg: FromWorker::Heartbeat {
                memory: 0,
                executing: 0,
                keys: 1,
                cpu: 0.0,
                rss: 0,
                spilled: 0,
                activity: Vec::new(),
                logs: Vec::new(),
            },
        });
        sim.step(Event::Tick);
    }
    assert_eq!(sim.state("c-0"), Some(TState::Queued));
    // Pausing twice, or a resume repeated, changes nothing.
    pause(&mut sim, 1, true);
    pause(&mut sim, 1, false);
    pause(&mut sim, 1, false);
    sim.drain();
    assert_eq!(sim.state("b-0"), Some(TState::Memory));
    assert_eq!(sim.state("c-0"), Some(TState::Memory));
    // A paused worker that leaves is forgotten with its pause.
    pause(&mut sim, 1, true);
    sim.kill_worker(1);
    sim.add_worker(2, "w1", 1);
    sim.submit(10, vec![task("e-0", &[])], &["e-0"]);
    assert!(!sim.assigned(2).is_empty(), "the new worker is not paused");
    sim.drain();
    assert_eq!(sim.state("e-0"), Some(TState::Memory));
}
