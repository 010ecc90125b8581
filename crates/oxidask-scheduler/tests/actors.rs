//! Actor tasks in the scheduler's state machine (the invariant checker runs after each event):
//! an actor whose worker leaves fails with an actor-lost error instead of being recomputed,
//! while an ordinary result on the same worker is recomputed; a released actor is freed on
//! its worker.

mod common;

use common::*;
use oxidask_protocol::*;
use oxidask_scheduler::TState;

fn actor_options() -> SubmitOptions {
    SubmitOptions {
        actor: true,
        ..Default::default()
    }
}

#[test]
fn an_actor_lost_with_its_worker_fails_and_is_not_recomputed() {
    let mut sim = Sim::new();
    sim.add_worker(1, "w1", 1);
    sim.add_client(100);
    sim.submit_with(
        100,
        vec![task("counter", &[])],
        &["counter"],
        actor_options(),
    );
    sim.submit(100, vec![task("plain", &[])], &["plain"]);
    sim.finish(1, "counter");
    sim.finish(1, "plain");
    assert_eq!(sim.state("counter"), Some(TState::Memory));
    sim.add_worker(2, "w2", 1);
    sim.kill_worker(1);
    assert_eq!(sim.state("counter"), Some(TState::Erred));
    let e = &sim.clients[&100].erred[&wk("counter")];
    assert!(
        e.message.contains("actors are not recomputed"),
        "{}",
        e.message
    );
    // The ordinary result is recomputed on the surviving worker; the actor is not.
    assert_eq!(sim.assigned(2), vec![wk("plain")]);
}

#[test]
fn a_task_reading_a_lost_actor_fails_too() {
    let mut sim = Sim::new();
    sim.add_worker(1, "w1", 1);
    sim.add_worker(2, "w2", 1);
    sim.add_client(100);
    sim.submit_with(
        100,
        vec![task("counter", &[])],
        &["counter"],
        actor_options(),
    );
    let holder = if sim.assigned(1).is_empty() { 2 } else { 1 };
    sim.finish(holder, "counter");
    sim.submit(100, vec![task("use", &["counter"])], &["use"]);
    sim.kill_worker(holder);
    assert_eq!(sim.state("counter"), Some(TState::Erred));
    assert_eq!(sim.state("use"), Some(TState::Erred));
}

#[test]
fn only_wanted_keys_of_an_actor_submission_are_actors() {
    let mut sim = Sim::new();
    sim.add_worker(1, "w1", 1);
    sim.add_client(100);
    // The actor's constructor argument is an ordinary task of the same graph.
    sim.submit_with(
        100,
        vec![task("start", &[]), task("counter", &["start"])],
        &["counter"],
        actor_options(),
    );
    sim.submit(100, vec![task("keep", &["start"])], &["keep"]);
    sim.finish(1, "start");
    sim.finish(1, "counter");
    sim.add_worker(2, "w2", 1);
    sim.kill_worker(1);
    assert_eq!(sim.state("counter"), Some(TState::Erred));
    // `start` is still needed (by `keep`) and is recomputed: it is not an actor.
    assert!(
        sim.assigned(2).contains(&wk("start")),
        "{:?}",
        sim.assigned(2)
    );
}

#[test]
fn releasing_an_actor_frees_it_on_its_worker() {
    let mut sim = Sim::new();
    sim.add_worker(1, "w1", 1);
    sim.add_client(100);
    sim.submit_with(
        100,
        vec![task("counter", &[])],
        &["counter"],
        actor_options(),
    );
    sim.finish(1, "counter");
    assert!(sim.workers[&1].holds.contains(&wk("counter")));
    sim.client_msg(
        100,
        ToScheduler::Release {
            keys: vec![wk("counter")],
        },
    );
    assert_eq!(sim.state("counter"), None);
    assert!(!sim.workers[&1].holds.contains(&wk("counter")));
}

#[test]
fn actors_spread_over_the_workers() {
    let mut sim = Sim::new();
    sim.add_worker(1, "w1", 2);
    sim.add_worker(2, "w2", 2);
    sim.add_client(100);
    // A pool of actors made one after the other (the book's HashActorPool): each goes to the
    // worker holding the fewest, even though both are idle.
    let mut placed = Vec::new();
    for i in 0..6 {
        let name = format!("bank-{i}");
        sim.submit_with(
            100,
            vec![task(&name, &[])],
            &[name.as_str()],
            actor_options(),
        );
        let w = if sim.assigned(1).contains(&wk(&name)) {
            1
        } else {
            2
        };
        sim.finish(w, &name);
        placed.push(w);
    }
    assert_eq!(placed.iter().filter(|&&w| w == 1).count(), 3, "{placed:?}");
    assert_eq!(placed.iter().filter(|&&w| w == 2).count(), 3, "{placed:?}");
}
