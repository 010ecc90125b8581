//! Spare copies of expensive results (`distributed.scheduler.replicate-expensive`): a result
//! tasks still wait for, whose loss would redo more work than the threshold (its lineage),
//! gets a second copy on another worker, so a worker's death costs a fetch instead of a
//! recomputation.

mod common;

use common::*;
use oxidask_protocol::SubmitOptions;
use oxidask_scheduler::{Config, TState};

/// Each simulated task runs 1 ms: a two-task lineage (2 ms) passes 1.5 ms, one task does not.
fn sim_with(threshold_s: f64) -> Sim {
    Sim::with_config(Config {
        replicate_expensive_s: threshold_s,
        ..Config::default()
    })
}

fn on(name: &str) -> SubmitOptions {
    SubmitOptions {
        workers: vec![name.to_owned()],
        ..Default::default()
    }
}

/// x then y (reading x) on w1; z reads y and a slow task on w2 that has not finished.
fn chain_waiting_on_slow(sim: &mut Sim) {
    sim.add_client(100);
    sim.add_worker(1, "w1", 1);
    sim.add_worker(2, "w2", 1);
    sim.submit_with(
        100,
        vec![task("x-0", &[]), task("y-0", &["x-0"])],
        &["y-0"],
        on("w1"),
    );
    sim.submit_with(100, vec![task("slow-0", &[])], &["slow-0"], on("w2"));
    sim.submit(100, vec![task("z-0", &["y-0", "slow-0"])], &["z-0"]);
    sim.finish(1, "x-0");
    sim.finish(1, "y-0");
}

#[test]
fn an_expensive_result_still_awaited_gets_a_spare_copy_and_survives_its_holder() {
    let mut sim = sim_with(0.0015);
    chain_waiting_on_slow(&mut sim);
    // x (1 ms) got no spare; y (its run + x's, released after it: 2 ms) did, on w2.
    assert_eq!(
        sim.workers[&2].acquires,
        vec![(wk("y-0"), vec!["w1:1".to_owned()])]
    );
    assert!(sim.workers[&1].acquires.is_empty());
    sim.acquire_all(2);
    let computes_before = sim.workers[&1].computes;
    sim.kill_worker(1);
    // y is still in memory (on w2): nothing of its lineage runs again.
    assert_eq!(sim.state("y-0"), Some(TState::Memory));
    sim.drain();
    assert_eq!(sim.state("z-0"), Some(TState::Memory));
    assert_eq!(sim.workers[&2].computes, 2, "slow and z only");
    assert_eq!(computes_before, 2);
    assert!(sim.clients[&100].erred.is_empty());
}

#[test]
fn without_the_option_a_result_has_one_copy_and_its_lineage_is_recomputed() {
    let mut sim = sim_with(0.0);
    chain_waiting_on_slow(&mut sim);
    assert!(sim.workers[&2].acquires.is_empty());
    sim.kill_worker(1);
    sim.add_worker(3, "w1", 1);
    sim.drain();
    assert_eq!(sim.state("z-0"), Some(TState::Memory));
    // x and y ran again on the new w1 (and z, where y is).
    assert_eq!(sim.workers[&3].computes, 3);
}

#[test]
fn a_spare_lost_with_its_worker_is_made_again_on_a_worker_that_joins() {
    let mut sim = sim_with(0.0015);
    chain_waiting_on_slow(&mut sim);
    sim.acquire_all(2);
    // w2 (holding the spare and running slow) dies: y is down to one copy, and no other
    // worker can take a spare until one joins.
    sim.kill_worker(2);
    assert_eq!(sim.state("y-0"), Some(TState::Memory));
    assert!(sim.workers[&1].acquires.is_empty());
    sim.add_worker(3, "w2", 1);
    assert_eq!(
        sim.workers[&3].acquires,
        vec![(wk("y-0"), vec!["w1:1".to_owned()])]
    );
    sim.acquire_all(3);
    sim.drain();
    assert_eq!(sim.state("z-0"), Some(TState::Memory));
    assert!(sim.clients[&100].erred.is_empty());
}

#[test]
fn a_spare_that_cannot_be_fetched_leaves_the_result_as_it_was() {
    let mut sim = sim_with(0.0015);
    chain_waiting_on_slow(&mut sim);
    let w = sim.workers.get_mut(&2).unwrap();
    let asked: Vec<_> = w.acquires.drain(..).map(|(k, _)| k).collect();
    sim.step(oxidask_scheduler::Event::FromWorker {
        conn: 2,
        msg: oxidask_protocol::FromWorker::Acquired {
            keys: Vec::new(),
            missing: asked,
        },
    });
    assert_eq!(sim.state("y-0"), Some(TState::Memory));
    sim.drain();
    assert_eq!(sim.state("z-0"), Some(TState::Memory));
    assert!(sim.clients[&100].erred.is_empty());
}

#[test]
fn a_worker_holds_at_most_the_threshold_of_awaited_work_only_it_has() {
    // Five 1 ms results a client waits for, on w1; the budget is 2.5 ms: the first two are
    // at risk on w1 alone, the other three get a spare on w2. Losing w1 then redoes two.
    let mut sim = sim_with(0.0025);
    sim.add_client(100);
    sim.add_worker(1, "w1", 1);
    sim.add_worker(2, "w2", 1);
    let names: Vec<String> = (0..5).map(|i| format!("m-{i}")).collect();
    let wanted: Vec<&str> = names.iter().map(String::as_str).collect();
    sim.submit_with(
        100,
        names.iter().map(|n| task(n, &[])).collect(),
        &wanted,
        on("w1"),
    );
    sim.drain();
    let mut spared: Vec<_> = sim.workers[&2].acquires.iter().map(|(k, _)| *k).collect();
    spared.sort();
    let mut want = vec![wk("m-2"), wk("m-3"), wk("m-4")];
    want.sort();
    assert_eq!(spared, want);
    sim.acquire_all(2);
    sim.kill_worker(1);
    sim.add_worker(3, "w1", 1);
    sim.drain();
    assert_eq!(sim.workers[&3].computes, 2);
    for n in &names {
        assert_eq!(sim.state(n), Some(TState::Memory), "{n}");
    }
}

#[test]
fn released_results_leave_the_budget() {
    // Results consumed and released no longer count: a long chain on one worker with a
    // 2.5 ms budget never needs a spare for its 1 ms links (each released once read).
    let mut sim = sim_with(0.0025);
    sim.add_client(100);
    sim.add_worker(1, "w1", 1);
    sim.add_worker(2, "w2", 1);
    let mut tasks = vec![task("c-0", &[])];
    for i in 1..20 {
        let (name, prev) = (format!("c-{i}"), format!("c-{}", i - 1));
        tasks.push(task(&name, &[&prev]));
    }
    // A chain's lineage grows: c-2 (3 ms) passes 2.5 ms and is copied, and so are the
    // later links; without the release accounting the cheap links would be copied too.
    sim.submit_with(100, tasks, &["c-19"], on("w1"));
    sim.drain();
    let spared: Vec<_> = sim.workers[&2].acquires.iter().map(|(k, _)| *k).collect();
    assert!(!spared.contains(&wk("c-0")) && !spared.contains(&wk("c-1")));
    assert!(spared.contains(&wk("c-2")), "{spared:?}");
}
