//! The scheduler's state machine driven through every transition, with the invariant checker
//! run after each event (inside `Sim::step`).

mod common;

use std::time::Duration;

use common::*;
use oxidask_protocol::*;
use oxidask_scheduler::{Config, Event, TState};
use proptest::prelude::*;

#[test]
fn chain_runs_in_order_releases_intermediates_and_forgets_on_release() {
    let mut sim = Sim::new();
    sim.add_worker(1, "w1", 2);
    sim.add_client(100);
    sim.submit(
        100,
        vec![task("a", &[]), task("b", &["a"]), task("c", &["b"])],
        &["c"],
    );
    assert_eq!(
        sim.state("a"),
        Some(TState::Processing(oxidask_scheduler::state::WorkerId(0)))
    );
    assert_eq!(sim.state("b"), Some(TState::Waiting));
    assert_eq!(sim.state("c"), Some(TState::Waiting));
    sim.finish(1, "a");
    assert_eq!(sim.state("a"), Some(TState::Memory));
    assert!(matches!(sim.state("b"), Some(TState::Processing(_))));
    sim.finish(1, "b");
    assert_eq!(
        sim.state("a"),
        Some(TState::Released),
        "a is no longer needed"
    );
    assert!(
        !sim.workers[&1].holds.contains(&wk("a")),
        "the worker was told to drop a"
    );
    sim.finish(1, "c");
    assert_eq!(sim.state("c"), Some(TState::Memory));
    assert_eq!(sim.state("b"), Some(TState::Released), "kept as lineage");
    assert!(sim.clients[&100].in_memory.contains(&wk("c")));
    sim.client_msg(
        100,
        ToScheduler::Release {
            keys: vec![wk("c")],
        },
    );
    assert_eq!(sim.s.n_tasks(), 0, "everything forgotten");
    assert!(sim.workers[&1].holds.is_empty());
    let story: Vec<String> = sim
        .s
        .story(&key("b"))
        .iter()
        .map(|t| t.to.to_owned())
        .collect();
    assert_eq!(
        story,
        ["waiting", "processing", "memory", "released", "forgotten"],
        "{story:?}"
    );
}

#[test]
fn root_tasks_are_queued_while_workers_are_saturated() {
    let mut sim = Sim::new();
    sim.add_worker(1, "w1", 2);
    sim.add_client(100);
    let names: Vec<String> = (0..50).map(|i| format!("r-{i}")).collect();
    let tasks = names.iter().map(|n| task(n, &[])).collect();
    let wanted: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
    sim.submit(100, tasks, &wanted);
    // 2 threads × 1.1 saturation → 3 assigned (unknown durations count as 0.5 s each).
    assert_eq!(sim.assigned(1).len(), 3);
    assert_eq!(sim.state("r-3"), Some(TState::Queued));
    assert_eq!(
        sim.assigned(1),
        vec![wk("r-0"), wk("r-1"), wk("r-2")],
        "in priority order"
    );
    sim.finish(1, "r-0");
    assert!(
        sim.assigned(1).contains(&wk("r-3")),
        "the next in priority order"
    );
    sim.drain();
    assert_eq!(sim.clients[&100].in_memory.len(), 50);
}

#[test]
fn short_tasks_keep_more_in_flight_once_their_duration_is_known() {
    let mut sim = Sim::new();
    sim.add_worker(1, "w1", 1);
    sim.add_client(100);
    sim.submit(100, vec![task("warm-0", &[])], &["warm-0"]);
    sim.finish(1, "warm-0"); // 1 ms observed
    let names: Vec<String> = (0..100).map(|i| format!("warm-{}", i + 1)).collect();
    let wanted: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
    sim.submit(100, names.iter().map(|n| task(n, &[])).collect(), &wanted);
    let n = sim.assigned(1).len();
    assert!(
        (5..100).contains(&n),
        "about 5 ms of 1 ms tasks in flight, got {n}"
    );
}

#[test]
fn keys_shared_by_two_clients_are_computed_once_and_kept_until_both_release() {
    let mut sim = Sim::new();
    sim.add_worker(1, "w1", 2);
    sim.add_client(100);
    sim.add_client(200);
    sim.submit(100, vec![task("x", &[]), task("y", &["x"])], &["y"]);
    sim.submit(200, vec![task("x", &[]), task("y", &["x"])], &["y"]);
    sim.drain();
    assert_eq!(sim.workers[&1].computes, 2, "x and y once each");
    assert!(sim.clients[&100].in_memory.contains(&wk("y")));
    assert!(sim.clients[&200].in_memory.contains(&wk("y")));
    sim.client_msg(
        100,
        ToScheduler::Release {
            keys: vec![wk("y")],
        },
    );
    assert_eq!(
        sim.state("y"),
        Some(TState::Memory),
        "client 200 still holds it"
    );
    sim.step(Event::ClientLeft { conn: 200 });
    assert_eq!(sim.state("y"), None);
    assert_eq!(sim.s.n_tasks(), 0);
}

#[test]
fn a_late_client_gets_a_key_already_in_memory_at_once() {
    let mut sim = Sim::new();
    sim.add_worker(1, "w1", 1);
    sim.add_client(100);
    sim.submit(100, vec![task("x", &[])], &["x"]);
    sim.finish(1, "x");
    sim.add_client(200);
    sim.submit(200, vec![task("x", &[])], &["x"]);
    assert!(sim.clients[&200].in_memory.contains(&wk("x")));
    assert_eq!(sim.workers[&1].computes, 1);
}

#[test]
fn lost_results_are_recomputed_from_lineage_when_a_worker_dies() {
    let mut sim = Sim::new();
    sim.add_worker(1, "w1", 1);
    sim.add_client(100);
    sim.submit(
        100,
        vec![task("a", &[]), task("b", &["a"]), task("c", &["b"])],
        &["c", "a"],
    );
    sim.finish(1, "a");
    sim.finish(1, "b");
    sim.add_worker(2, "w2", 1);
    // c is processing on w1; a and b are in memory on w1 only.
    sim.kill_worker(1);
    // a (wanted) and b (needed by c) must be recomputed on w2, then c.
    assert!(matches!(sim.state("a"), Some(TState::Processing(_))));
    assert_eq!(sim.state("b"), Some(TState::Waiting));
    sim.drain();
    assert_eq!(sim.state("c"), Some(TState::Memory));
    assert_eq!(sim.state("a"), Some(TState::Memory));
    assert_eq!(sim.s.who_has(&key("c")), vec!["w2".to_string()]);
}

#[test]
fn lost_released_lineage_is_recomputed_recursively() {
    let mut sim = Sim::new();
    sim.add_worker(1, "w1", 1);
    sim.add_client(100);
    let mut tasks = vec![task("n-0", &[])];
    let names: Vec<String> = (0..20).map(|i| format!("n-{i}")).collect();
    for i in 1..20 {
        tasks.push(task(&names[i], &[&names[i - 1]]));
    }
    sim.submit(100, tasks, &["n-19"]);
    sim.drain();
    sim.add_worker(2, "w2", 1);
    sim.submit(100, vec![task("tail", &["n-19"])], &["tail"]);
    // tail goes to w1 (holds n-19); kill w1 before it runs: the whole chain reruns on w2.
    sim.kill_worker(1);
    sim.drain();
    assert_eq!(sim.state("tail"), Some(TState::Memory));
    assert_eq!(sim.workers[&2].computes, 21);
}

#[test]
fn a_task_that_keeps_killing_workers_is_blamed_after_the_allowed_failures() {
    let mut sim = Sim::with_config(Config {
        allowed_failures: 2,
        ..Config::default()
    });
    sim.add_client(100);
    sim.submit(100, vec![task("bomb", &[])], &["bomb"]);
    for i in 0..3u64 {
        sim.add_worker(10 + i, &format!("w{i}"), 1);
        assert!(matches!(sim.state("bomb"), Some(TState::Processing(_))));
        sim.kill_worker(10 + i);
    }
    assert_eq!(sim.state("bomb"), Some(TState::Erred));
    let e = &sim.clients[&100].erred[&wk("bomb")];
    assert_eq!(e.kind, oxidask_protocol::ErrorKind::KilledWorker);
    assert!(
        e.message.contains("KilledWorker") && e.message.contains("3 workers"),
        "{}",
        e.message
    );
}

#[test]
fn churn_blamed_an_innocent_queued_task() {
    // Under churn (a worker SIGKILLed every 200 ms) a task assigned to worker after worker
    // but queued behind others there was failed with KilledWorker. Only the tasks a worker
    // could have been running (its first `nthreads` by priority) count a death against them.
    let mut sim = Sim::with_config(Config {
        allowed_failures: 1,
        worker_saturation: 100.0,
        max_assigned_per_thread: 100,
        ..Config::default()
    });
    sim.add_client(100);
    let names: Vec<String> = (0..4).map(|i| format!("d-{i}")).collect();
    let tasks: Vec<_> = names.iter().map(|n| task(n, &[])).collect();
    let wanted: Vec<&str> = names.iter().map(String::as_str).collect();
    sim.submit(100, tasks, &wanted);
    for i in 0..2u64 {
        sim.add_worker(10 + i, &format!("w{i}"), 1);
        for n in &names {
            assert!(matches!(sim.state(n), Some(TState::Processing(_))), "{n}");
        }
        // Four tasks processing on a one-thread worker: at most one was running.
        sim.kill_worker(10 + i);
    }
    let erred = names
        .iter()
        .filter(|n| sim.state(n) == Some(TState::Erred))
        .count();
    assert!(
        erred <= 1,
        "{erred} tasks blamed for two deaths of one-thread workers"
    );
    sim.add_worker(20, "w-last", 1);
    sim.drain();
    let done = names
        .iter()
        .filter(|n| sim.state(n) == Some(TState::Memory))
        .count();
    assert_eq!(done + erred, 4);
    assert!(done >= 3);
}

#[test]
fn retries_rerun_a_failing_task_then_report_its_error() {
    let mut sim = Sim::new();
    sim.add_worker(1, "w1", 1);
    sim.add_client(100);
    sim.submit_with(
        100,
        vec![task("flaky", &[])],
        &["flaky"],
        SubmitOptions {
            retries: 2,
            ..Default::default()
        },
    );
    sim.err(1, "flaky", "boom 1");
    assert!(
        matches!(sim.state("flaky"), Some(TState::Processing(_))),
        "retry 1"
    );
    sim.err(1, "flaky", "boom 2");
    assert!(
        matches!(sim.state("flaky"), Some(TState::Processing(_))),
        "retry 2"
    );
    sim.err(1, "flaky", "boom 3");
    assert_eq!(sim.state("flaky"), Some(TState::Erred));
    let e = &sim.clients[&100].erred[&wk("flaky")];
    assert_eq!(e.message, "boom 3");
    assert_eq!(e.causes, vec!["the cause".to_string()]);
}

#[test]
fn retries_succeed_when_the_task_recovers() {
    let mut sim = Sim::new();
    sim.add_worker(1, "w1", 1);
    sim.add_client(100);
    sim.submit_with(
        100,
        vec![task("flaky", &[])],
        &["flaky"],
        SubmitOptions {
            retries: 1,
            ..Default::default()
        },
    );
    sim.err(1, "flaky", "once");
    sim.finish(1, "flaky");
    assert!(sim.clients[&100].in_memory.contains(&wk("flaky")));
    assert!(sim.clients[&100].erred.is_empty());
}

#[test]
fn errors_reach_dependents_naming_the_failed_task() {
    let mut sim = Sim::new();
    sim.add_worker(1, "w1", 2);
    sim.add_client(100);
    sim.submit(
        100,
        vec![
            task("a", &[]),
            task("ok", &[]),
            task("b", &["a", "ok"]),
            task("c", &["b"]),
        ],
        &["c"],
    );
    sim.finish(1, "ok");
    sim.err(1, "a", "bad input");
    assert_eq!(sim.state("c"), Some(TState::Erred));
    let e = &sim.clients[&100].erred[&wk("c")];
    assert_eq!(e.key, Some(wk("a")), "the error names the task that failed");
    assert_eq!(
        sim.state("ok"),
        Some(TState::Released),
        "inputs of failed work are released"
    );
    // A new task on an erred key fails at once.
    sim.submit(100, vec![task("d", &["c"])], &["d"]);
    assert_eq!(sim.state("d"), Some(TState::Erred));
    sim.client_msg(
        100,
        ToScheduler::Release {
            keys: vec![wk("c"), wk("d")],
        },
    );
    assert_eq!(sim.s.n_tasks(), 0);
}

#[test]
fn resources_limit_concurrency_and_unsatisfiable_requests_are_reported() {
    let mut sim = Sim::new();
    let mut gpu = info("gpu", 8);
    gpu.resources = vec![("GPU".into(), 2.0)];
    sim.add_worker_info(1, gpu);
    sim.add_worker(2, "cpu", 8);
    sim.add_client(100);
    let names: Vec<String> = (0..5).map(|i| format!("g-{i}")).collect();
    let wanted: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
    sim.submit_with(
        100,
        names.iter().map(|n| task(n, &[])).collect(),
        &wanted,
        SubmitOptions {
            resources: vec![("GPU".into(), 1.0)],
            ..Default::default()
        },
    );
    assert_eq!(sim.assigned(1).len(), 2, "two GPUs, two at a time");
    assert!(sim.assigned(2).is_empty(), "the CPU worker has no GPU");
    sim.drain();
    assert_eq!(sim.clients[&100].in_memory.len(), 5);

    sim.submit_with(
        100,
        vec![task("huge", &[])],
        &["huge"],
        SubmitOptions {
            resources: vec![("GPU".into(), 4.0)],
            ..Default::default()
        },
    );
    assert_eq!(sim.state("huge"), Some(TState::NoWorker));
    sim.advance(Duration::from_secs(6));
    sim.step(Event::Tick);
    // Heartbeats are not simulated here; the workers stayed within the 30 s timeout.
    let e = &sim.clients[&100].erred[&wk("huge")];
    assert_eq!(e.kind, oxidask_protocol::ErrorKind::NoWorker);
    assert!(
        e.message.contains("GPU=4") && e.message.contains("gpu [GPU=2]"),
        "{}",
        e.message
    );
}

#[test]
fn restricted_tasks_wait_for_their_worker() {
    let mut sim = Sim::new();
    sim.add_worker(1, "w1", 1);
    sim.add_client(100);
    sim.submit_with(
        100,
        vec![task("pinned", &[])],
        &["pinned"],
        SubmitOptions {
            workers: vec!["w2".into()],
            ..Default::default()
        },
    );
    assert_eq!(sim.state("pinned"), Some(TState::NoWorker));
    sim.add_worker(2, "w2", 1);
    assert_eq!(sim.assigned(2), vec![wk("pinned")]);
}

#[test]
fn cancel_stops_work_and_frees_it_on_the_worker() {
    let mut sim = Sim::new();
    sim.add_worker(1, "w1", 1);
    sim.add_client(100);
    sim.submit(100, vec![task("a", &[]), task("b", &["a"])], &["a", "b"]);
    sim.client_msg(
        100,
        ToScheduler::Cancel {
            keys: vec![wk("a")],
        },
    );
    assert!(sim.assigned(1).is_empty(), "the worker was told to drop a");
    assert_eq!(
        sim.clients[&100].erred[&wk("a")].kind,
        oxidask_protocol::ErrorKind::Cancelled
    );
    assert_eq!(
        sim.clients[&100].erred[&wk("b")].kind,
        oxidask_protocol::ErrorKind::Cancelled,
        "dependents are cancelled too"
    );
    assert_eq!(sim.s.n_tasks(), 0);
}

#[test]
fn scatter_stores_on_workers_and_broadcast_on_all() {
    let mut sim = Sim::new();
    sim.add_worker(1, "w1", 1);
    sim.add_worker(2, "w2", 1);
    sim.add_client(100);
    let v = WireValue {
        type_name: "i64".into(),
        bytes: Payload(bytes::Bytes::from_static(&[1, 0, 0, 0, 0, 0, 0, 0])),
        buffers: Vec::new(),
    };
    sim.client_msg(
        100,
        ToScheduler::Scatter {
            values: vec![(wk("data-1"), v.clone())],
            broadcast: true,
        },
    );
    assert_eq!(sim.workers[&1].stores, vec![wk("data-1")]);
    assert_eq!(sim.workers[&2].stores, vec![wk("data-1")]);
    assert_eq!(sim.state("data-1"), Some(TState::Waiting));
    sim.submit(100, vec![task("use", &["data-1"])], &["use"]);
    assert_eq!(
        sim.state("use"),
        Some(TState::Waiting),
        "waits for the store"
    );
    for conn in [1, 2] {
        sim.step(Event::FromWorker {
            conn,
            msg: FromWorker::Stored {
                keys: vec![(wk("data-1"), "i64".into(), 8)],
            },
        });
    }
    assert_eq!(sim.s.who_has(&key("data-1")).len(), 2);
    assert!(sim.clients[&100].in_memory.contains(&wk("data-1")));
    assert!(matches!(sim.state("use"), Some(TState::Processing(_))));
}

#[test]
fn scattered_data_lost_with_its_only_worker_is_an_error() {
    let mut sim = Sim::new();
    sim.add_worker(1, "w1", 1);
    sim.add_client(100);
    let v = WireValue {
        type_name: "i64".into(),
        bytes: Payload(bytes::Bytes::from_static(&[1, 0, 0, 0, 0, 0, 0, 0])),
        buffers: Vec::new(),
    };
    sim.client_msg(
        100,
        ToScheduler::Scatter {
            values: vec![(wk("data-1"), v)],
            broadcast: false,
        },
    );
    sim.step(Event::FromWorker {
        conn: 1,
        msg: FromWorker::Stored {
            keys: vec![(wk("data-1"), "i64".into(), 8)],
        },
    });
    sim.submit(100, vec![task("use", &["data-1"])], &["use"]);
    sim.add_worker(2, "w2", 1);
    sim.kill_worker(1);
    assert_eq!(sim.state("data-1"), Some(TState::Erred));
    let e = &sim.clients[&100].erred[&wk("use")];
    assert!(e.message.contains("scatter it again"), "{}", e.message);
}

#[test]
fn missing_data_sends_the_task_back_and_recomputes_the_dependency() {
    let mut sim = Sim::new();
    sim.add_worker(1, "w1", 1);
    sim.add_client(100);
    sim.submit(100, vec![task("a", &[])], &["a"]);
    sim.finish(1, "a");
    sim.add_worker(2, "w2", 4);
    // A task that must go to w2: restricted there.
    sim.submit_with(
        100,
        vec![task("b", &["a"])],
        &["b"],
        SubmitOptions {
            workers: vec!["w2".into()],
            ..Default::default()
        },
    );
    assert_eq!(sim.assigned(2), vec![wk("b")]);
    // w2 could not fetch a from w1 (its data port is gone).
    sim.workers.get_mut(&2).unwrap().assigned.clear();
    sim.step(Event::FromWorker {
        conn: 2,
        msg: FromWorker::MissingData {
            key: wk("b"),
            missing: wk("a"),
            tried: vec!["w1:1".into()],
        },
    });
    assert!(
        matches!(sim.state("a"), Some(TState::Processing(_))),
        "recomputed"
    );
    assert_eq!(sim.state("b"), Some(TState::Waiting));
    sim.drain();
    assert_eq!(sim.state("b"), Some(TState::Memory));
}

#[test]
fn idle_workers_steal_unstarted_tasks() {
    let mut sim = Sim::new();
    sim.add_worker(1, "w1", 1);
    sim.add_client(100);
    sim.submit(100, vec![task("src", &[])], &["src"]);
    sim.finish(1, "src");
    // Ten slow dependents of src all land on w1 (the holder).
    let names: Vec<String> = (0..10).map(|i| format!("dep-{i}")).collect();
    let wanted: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
    sim.submit(
        100,
        names.iter().map(|n| task(n, &["src"])).collect(),
        &wanted,
    );
    assert_eq!(sim.assigned(1).len(), 10);
    sim.add_worker(2, "w2", 2);
    sim.step(Event::Tick);
    let steals = sim.workers[&1].steals.clone();
    assert!(!steals.is_empty() && steals.len() <= 4, "{steals:?}");
    for k in steals {
        sim.workers
            .get_mut(&1)
            .unwrap()
            .assigned
            .retain(|a| *a != k);
        sim.step(Event::FromWorker {
            conn: 1,
            msg: FromWorker::StealResponse {
                key: k,
                given_back: true,
            },
        });
    }
    assert!(!sim.assigned(2).is_empty(), "the thief got the tasks");
    sim.drain();
    assert_eq!(sim.clients[&100].in_memory.len(), 11);
}

#[test]
fn a_steal_refused_leaves_the_task_where_it_is() {
    let mut sim = Sim::new();
    sim.add_worker(1, "w1", 1);
    sim.add_client(100);
    sim.submit(100, vec![task("src", &[])], &["src"]);
    sim.finish(1, "src");
    sim.submit(
        100,
        vec![task("d-1", &["src"]), task("d-2", &["src"])],
        &["d-1", "d-2"],
    );
    sim.add_worker(2, "w2", 1);
    sim.step(Event::Tick);
    let k = sim.workers[&1].steals[0];
    sim.step(Event::FromWorker {
        conn: 1,
        msg: FromWorker::StealResponse {
            key: k,
            given_back: false,
        },
    });
    assert!(sim.assigned(1).contains(&k));
    sim.drain();
}

#[test]
fn silent_workers_are_removed_and_their_work_rescheduled() {
    let mut sim = Sim::new();
    sim.add_worker(1, "w1", 1);
    sim.add_worker(2, "w2", 1);
    sim.add_client(100);
    sim.submit(100, vec![task("a", &[]), task("b", &[])], &["a", "b"]);
    sim.advance(Duration::from_secs(20));
    sim.step(Event::FromWorker {
        conn: 2,
        msg: FromWorker::Heartbeat {
            memory: 0,
            executing: 1,
            keys: 0,
            cpu: 50.0,
            rss: 1 << 20,
            spilled: 0,
            activity: Vec::new(),
            logs: vec!["hello from w2".into()],
        },
    });
    sim.advance(Duration::from_secs(15));
    sim.step(Event::Tick);
    assert_eq!(sim.closed.len(), 1);
    assert_eq!(sim.closed[0].0, 1);
    assert!(sim.closed[0].1.contains("no heartbeat"));
    assert_eq!(sim.s.n_workers(), 1);
    sim.workers.remove(&1);
    sim.drain();
    assert_eq!(sim.clients[&100].in_memory.len(), 2);
}

#[test]
fn a_second_worker_with_the_same_name_is_refused() {
    let mut sim = Sim::new();
    sim.add_worker(1, "same", 1);
    sim.add_worker(2, "same", 1);
    assert_eq!(sim.closed.len(), 1);
    assert!(sim.closed[0].1.contains("unique --name"));
    assert_eq!(sim.s.n_workers(), 1);
}

#[test]
fn fire_and_forget_runs_after_the_client_leaves() {
    let mut sim = Sim::new();
    sim.add_worker(1, "w1", 1);
    sim.add_client(100);
    sim.submit(100, vec![task("a", &[]), task("side", &["a"])], &["side"]);
    sim.client_msg(
        100,
        ToScheduler::Pin {
            keys: vec![wk("side")],
        },
    );
    sim.step(Event::ClientLeft { conn: 100 });
    assert!(sim.state("side").is_some());
    sim.drain();
    assert_eq!(sim.workers[&1].computes, 2);
    assert_eq!(sim.s.n_tasks(), 0, "forgotten once done");
}

#[test]
fn unknown_dependencies_and_keys_are_reported_to_the_client() {
    let mut sim = Sim::new();
    sim.add_worker(1, "w1", 1);
    sim.add_client(100);
    sim.submit(
        100,
        vec![task("orphan", &["never-sent"])],
        &["orphan", "ghost"],
    );
    let e = &sim.clients[&100].erred;
    assert_eq!(e[&wk("orphan")].kind, oxidask_protocol::ErrorKind::Invalid);
    assert!(e[&wk("orphan")].message.contains("never submitted"));
    assert!(e[&wk("ghost")].message.contains("not known"));
}

#[test]
fn tasks_nobody_wants_are_not_run() {
    let mut sim = Sim::new();
    sim.add_worker(1, "w1", 1);
    sim.add_client(100);
    sim.submit(100, vec![task("a", &[]), task("unused", &[])], &["a"]);
    assert_eq!(sim.state("unused"), None);
    assert_eq!(sim.assigned(1), vec![wk("a")]);
}

#[test]
fn who_has_summary_and_story_answer_queries() {
    let mut sim = Sim::new();
    sim.add_worker(1, "w1", 3);
    sim.add_client(100);
    sim.submit(100, vec![task("a", &[])], &["a"]);
    sim.finish(1, "a");
    sim.client_msg(
        100,
        ToScheduler::WhoHas {
            request: 1,
            keys: vec![wk("a")],
        },
    );
    sim.client_msg(100, ToScheduler::Summary { request: 2 });
    sim.client_msg(
        100,
        ToScheduler::Story {
            request: 3,
            key: wk("a"),
        },
    );
    let replies = &sim.clients[&100].replies;
    assert!(replies.contains(&ToClient::WhoHas {
        request: 1,
        locations: vec![(wk("a"), vec!["w1:1".into()])]
    }));
    let summary = replies
        .iter()
        .find_map(|r| match r {
            ToClient::Summary { summary, .. } => Some(summary.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(summary.workers.len(), 1);
    assert_eq!(summary.workers[0].nthreads, 3);
    assert_eq!(summary.tasks, 1);
    let story = replies
        .iter()
        .find_map(|r| match r {
            ToClient::Story { lines, .. } => Some(lines.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(story.len(), 3, "{story:?}");
    assert!(story[2].contains("processing -> memory") && story[2].contains("task-finished"));
}

#[test]
fn a_million_task_graph_uses_under_a_kibibyte_per_task() {
    let mut sim = Sim::new();
    sim.add_client(100);
    let n = 200_000;
    let names: Vec<String> = (0..n).map(|i| format!("m-{i}")).collect();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let deps: Vec<&str> = if i >= 2 {
            vec![&names[i - 1], &names[i - 2]]
        } else {
            vec![]
        };
        tasks.push(task(&names[i], &deps));
    }
    // No workers: everything waits, nothing is freed.
    let effects = sim.s.handle(
        Event::FromClient {
            conn: 100,
            msg: ToScheduler::UpdateGraph {
                tasks,
                wanted: vec![wk(&names[n - 1])],
                options: SubmitOptions::default(),
                more: false,
            },
        },
        sim.now,
    );
    drop(effects);
    sim.s.validate().unwrap();
    assert_eq!(sim.s.n_tasks(), n);
    let per_task = sim.s.task_table_bytes() / n;
    assert!(per_task < 1024, "{per_task} bytes per task");
}

// ---- random walks ----------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Op {
    Finish(usize),
    Fail(usize),
    Kill(usize),
    AddWorker,
    Release(usize),
    Tick,
    Steal(usize, bool),
    LongRunning(usize),
    /// Client 100 retires a worker.
    Retire(usize),
    /// A worker answers what it was told to acquire (all arrive, or none).
    Acquire(usize, bool),
    /// Client 100 replicates a key onto n workers (0: all).
    Replicate(usize, u32),
    Rebalance,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0usize..64).prop_map(Op::Finish),
        1 => (0usize..64).prop_map(Op::Fail),
        1 => (0usize..4).prop_map(Op::Kill),
        1 => Just(Op::AddWorker),
        1 => (0usize..64).prop_map(Op::Release),
        1 => Just(Op::Tick),
        1 => (0usize..64, any::<bool>()).prop_map(|(i, b)| Op::Steal(i, b)),
        1 => (0usize..64).prop_map(Op::LongRunning),
        1 => (0usize..4).prop_map(Op::Retire),
        2 => (0usize..4, any::<bool>()).prop_map(|(i, ok)| Op::Acquire(i, ok)),
        1 => (0usize..64, 0u32..3).prop_map(|(i, n)| Op::Replicate(i, n)),
        1 => Just(Op::Rebalance),
    ]
}

fn dag() -> impl Strategy<Value = Vec<Vec<usize>>> {
    (2usize..40).prop_flat_map(|n| {
        prop::collection::vec(prop::collection::vec(0usize..1000, 0..3), n).prop_map(|raw| {
            raw.into_iter()
                .enumerate()
                .map(|(i, ds)| {
                    let mut d: Vec<usize> = if i == 0 {
                        vec![]
                    } else {
                        ds.into_iter().map(|x| x % i).collect()
                    };
                    d.sort();
                    d.dedup();
                    d
                })
                .collect()
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Any interleaving of finishes, failures, worker deaths and arrivals, releases, ticks
    /// and steal answers keeps every invariant, and once the cluster is stable every key a
    /// client still wants ends in memory or erred.
    #[test]
    fn random_events_keep_the_invariants(graph in dag(), ops in prop::collection::vec(op(), 0..120)) {
        random_walk(graph, ops)?;
    }
}

fn random_walk(graph: Vec<Vec<usize>>, ops: Vec<Op>) -> Result<(), TestCaseError> {
    {
        let mut sim = Sim::new();
        sim.add_worker(1, "w1", 2);
        sim.add_worker(2, "w2", 1);
        sim.add_client(100);
        sim.add_client(200);
        let names: Vec<String> = (0..graph.len()).map(|i| format!("t-{i}")).collect();
        let tasks: Vec<WireTask> = graph
            .iter()
            .enumerate()
            .map(|(i, ds)| {
                let deps: Vec<&str> = ds.iter().map(|&d| names[d].as_str()).collect();
                task(&names[i], &deps)
            })
            .collect();
        // Client 100 wants the sinks and a few others; client 200 shares some.
        let wanted: Vec<&str> = names.iter().step_by(3).map(|s| s.as_str()).collect();
        sim.submit(100, tasks.clone(), &wanted);
        let wanted2: Vec<&str> = names
            .iter()
            .skip(1)
            .step_by(4)
            .map(|s| s.as_str())
            .collect();
        sim.submit(200, tasks, &wanted2);
        let mut next_worker = 3u64;
        let mut released = std::collections::BTreeSet::new();
        for op in ops {
            match op {
                Op::Finish(i) | Op::Fail(i) => {
                    let all: Vec<(u64, WireKey)> = sim
                        .workers
                        .iter()
                        .flat_map(|(c, w)| w.assigned.iter().map(move |k| (*c, *k)))
                        .collect();
                    if all.is_empty() {
                        continue;
                    }
                    let (c, k) = all[i % all.len()];
                    if matches!(op, Op::Finish(_)) {
                        sim.finish_key(c, k);
                    } else {
                        sim.workers
                            .get_mut(&c)
                            .unwrap()
                            .assigned
                            .retain(|a| *a != k);
                        sim.step(Event::FromWorker {
                            conn: c,
                            msg: FromWorker::Erred {
                                key: k,
                                error: WireError {
                                    key: Some(k),
                                    op: "t".into(),
                                    kind: oxidask_protocol::ErrorKind::Task,
                                    message: "x".into(),
                                    causes: vec![],
                                    detail: None,
                                },
                            },
                        });
                    }
                }
                Op::Kill(i) => {
                    if sim.workers.len() > 1 {
                        let c = *sim.workers.keys().nth(i % sim.workers.len()).unwrap();
                        sim.kill_worker(c);
                    }
                }
                Op::AddWorker => {
                    let c = next_worker;
                    next_worker += 1;
                    sim.add_worker(c, &format!("w{c}"), 1 + (c % 3) as u32);
                }
                Op::Release(i) => {
                    let k = &names[i % names.len()];
                    released.insert(wk(k));
                    sim.client_msg(100, ToScheduler::Release { keys: vec![wk(k)] });
                }
                Op::Tick => sim.step(Event::Tick),
                Op::LongRunning(i) => {
                    let all: Vec<(u64, WireKey)> = sim
                        .workers
                        .iter()
                        .flat_map(|(c, w)| w.assigned.iter().map(move |k| (*c, *k)))
                        .collect();
                    if all.is_empty() {
                        continue;
                    }
                    let (c, k) = all[i % all.len()];
                    sim.step(Event::FromWorker {
                        conn: c,
                        msg: FromWorker::LongRunning { key: k },
                    });
                }
                Op::Steal(i, given_back) => {
                    let all: Vec<(u64, WireKey)> = sim
                        .workers
                        .iter()
                        .flat_map(|(c, w)| w.steals.iter().map(move |k| (*c, *k)))
                        .collect();
                    if all.is_empty() {
                        continue;
                    }
                    let (c, k) = all[i % all.len()];
                    let w = sim.workers.get_mut(&c).unwrap();
                    w.steals.retain(|s| *s != k);
                    if given_back {
                        w.assigned.retain(|a| *a != k);
                    }
                    sim.step(Event::FromWorker {
                        conn: c,
                        msg: FromWorker::StealResponse { key: k, given_back },
                    });
                }
                Op::Retire(i) => {
                    if sim.workers.len() < 2 {
                        continue;
                    }
                    let c = *sim.workers.keys().nth(i % sim.workers.len()).unwrap();
                    sim.client_msg(
                        100,
                        ToScheduler::RetireWorkers {
                            request: 1,
                            workers: vec![format!("w{c}")],
                            n: 0,
                        },
                    );
                }
                Op::Acquire(i, ok) => {
                    if sim.workers.is_empty() {
                        continue;
                    }
                    let c = *sim.workers.keys().nth(i % sim.workers.len()).unwrap();
                    if ok {
                        sim.acquire_all(c);
                    } else {
                        let asked: Vec<WireKey> = sim
                            .workers
                            .get_mut(&c)
                            .unwrap()
                            .acquires
                            .drain(..)
                            .map(|(k, _)| k)
                            .collect();
                        sim.step(Event::FromWorker {
                            conn: c,
                            msg: FromWorker::Acquired {
                                keys: vec![],
                                missing: asked,
                            },
                        });
                    }
                }
                Op::Replicate(i, n) => {
                    let k = wk(&names[i % names.len()]);
                    sim.client_msg(
                        100,
                        ToScheduler::Replicate {
                            request: 2,
                            keys: vec![k],
                            n,
                        },
                    );
                }
                Op::Rebalance => sim.client_msg(
                    100,
                    ToScheduler::Rebalance {
                        request: 3,
                        keys: vec![],
                    },
                ),
            }
            // Retired workers are gone (the server closes their connections).
            for (c, _) in std::mem::take(&mut sim.closed) {
                sim.workers.remove(&c);
            }
        }
        // Answer outstanding copies.
        let copying: Vec<u64> = sim
            .workers
            .iter()
            .filter(|(_, w)| !w.acquires.is_empty())
            .map(|(c, _)| *c)
            .collect();
        for c in copying {
            if sim.workers.contains_key(&c) {
                sim.acquire_all(c);
            }
            for (c, _) in std::mem::take(&mut sim.closed) {
                sim.workers.remove(&c);
            }
        }
        // Answer outstanding steals, then run everything to completion.
        let pending: Vec<(u64, WireKey)> = sim
            .workers
            .iter()
            .flat_map(|(c, w)| w.steals.iter().map(move |k| (*c, *k)))
            .collect();
        for (c, k) in pending {
            sim.step(Event::FromWorker {
                conn: c,
                msg: FromWorker::StealResponse {
                    key: k,
                    given_back: false,
                },
            });
        }
        sim.drain();
        for (client, wanted) in [(100u64, &wanted), (200, &wanted2)] {
            for k in wanted.iter() {
                let k = wk(k);
                if client == 100 && released.contains(&k) {
                    continue;
                }
                let c = &sim.clients[&client];
                prop_assert!(
                    c.in_memory.contains(&k) || c.erred.contains_key(&k),
                    "client {} never heard about {}",
                    client,
                    k
                );
            }
        }
        // Release everything: nothing may remain.
        sim.step(Event::ClientLeft { conn: 100 });
        sim.step(Event::ClientLeft { conn: 200 });
        prop_assert_eq!(sim.s.n_tasks(), 0);
        // Workers retired meanwhile stopped (holding whatever they held).
        for (c, _) in std::mem::take(&mut sim.closed) {
            sim.workers.remove(&c);
        }
        for w in sim.workers.values() {
            prop_assert!(w.holds.is_empty(), "worker still holds {:?}", w.holds);
        }
    }
    Ok(())
}

#[test]
fn graphs_in_parts_wait_for_their_last_part() {
    let mut sim = Sim::new();
    sim.add_worker(1, "w1", 1);
    sim.add_client(100);
    let part = |tasks, wanted: Vec<WireKey>, more| ToScheduler::UpdateGraph {
        tasks,
        wanted,
        options: SubmitOptions::default(),
        more,
    };
    sim.client_msg(
        100,
        part(vec![task("p-1", &[]), task("p-2", &["p-1"])], vec![], true),
    );
    assert!(
        sim.assigned(1).is_empty(),
        "nothing runs before the last part"
    );
    assert_eq!(
        sim.state("p-1"),
        Some(TState::Released),
        "held, not forgotten"
    );
    sim.client_msg(
        100,
        part(vec![task("p-3", &["p-2"])], vec![wk("p-3")], false),
    );
    sim.drain();
    assert!(sim.clients[&100].in_memory.contains(&wk("p-3")));
    // A client that leaves mid-graph leaves nothing behind.
    sim.client_msg(100, part(vec![task("q-1", &[])], vec![], true));
    sim.step(Event::ClientLeft { conn: 100 });
    assert_eq!(sim.s.n_tasks(), 0);
}

#[test]
fn long_running_tasks_free_their_thread_for_the_tasks_they_wait_on() {
    let mut sim = Sim::new();
    sim.add_worker(1, "w1", 1);
    sim.add_client(100);
    let names: Vec<String> = (0..3).map(|i| format!("outer-{i}")).collect();
    let wanted: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
    sim.submit(100, names.iter().map(|n| task(n, &[])).collect(), &wanted);
    assert_eq!(sim.assigned(1).len(), 2, "saturated at 2 for one thread");
    sim.add_client(200); // the tasks' own client
    sim.submit(200, vec![task("inner-1", &[])], &["inner-1"]);
    assert_eq!(sim.state("inner-1"), Some(TState::Queued), "no room yet");
    // outer-0 waits on inner-1: it secedes.
    sim.step(Event::FromWorker {
        conn: 1,
        msg: FromWorker::LongRunning { key: wk("outer-0") },
    });
    assert!(
        sim.assigned(1).len() >= 3,
        "room again: {:?}",
        sim.assigned(1)
    );
    sim.drain();
    assert_eq!(sim.clients[&100].in_memory.len(), 3);
}

#[test]
fn what_watchers_see_follows_the_tasks() {
    use oxidask_protocol::{Activity, ActivityKind};
    let mut sim = Sim::new();
    sim.add_worker(1, "w1", 2);
    sim.add_client(100);
    sim.submit(
        100,
        vec![task("a", &[]), task("b", &["a"]), task("c", &[])],
        &["b", "c"],
    );
    let snap = sim.s.snapshot(0, 100);
    let counts: u32 = snap
        .prefixes
        .iter()
        .map(|(_, s)| s.states.iter().sum::<u32>())
        .sum();
    assert_eq!(counts, 3);
    assert_eq!(snap.workers.len(), 1);
    assert_eq!(snap.workers[0].name, "w1");
    sim.finish(1, "a");
    sim.err(1, "c", "boom");
    sim.step(Event::FromWorker {
        conn: 1,
        msg: FromWorker::Heartbeat {
            memory: 8,
            executing: 1,
            keys: 1,
            cpu: 10.0,
            rss: 1 << 20,
            spilled: 0,
            activity: vec![Activity {
                kind: ActivityKind::Transfer,
                start_us: 5,
                stop_us: 9,
                nbytes: 100,
                count: 1,
            }],
            logs: vec!["fetched".into()],
        },
    });
    let snap = sim.s.snapshot(0, 100);
    // One task ran (a), one transfer: both in the stream, with the worker's name.
    assert_eq!(snap.stream.len(), 2, "{:?}", snap.stream);
    assert!(snap.stream.iter().all(|r| r.worker == "w1"));
    assert_eq!(snap.stream[1].kind, ActivityKind::Transfer);
    assert_eq!(snap.errors.len(), 1);
    assert!(snap.errors[0].message.contains("boom"));
    assert_eq!(snap.workers[0].rss, 1 << 20);
    assert_eq!(
        sim.s.observations().worker_logs("w1"),
        vec!["fetched".to_owned()]
    );
    // A watcher that already saw the stream gets only what is new.
    let again = sim.s.snapshot(snap.stream_next, 100);
    assert!(again.stream.is_empty());
    // The graph view shows the tasks and the edge a -> b.
    let g = sim.s.graph_view(10);
    assert_eq!(g.nodes.len() as u64, g.total);
    assert_eq!(g.edges.len(), 1);
    sim.drain();
}

/// Found by fuzzing the scheduler's port: a priority of `i64::MIN` overflowed when negated
/// and killed the scheduler's core.
#[test]
fn extreme_priorities_from_a_client_do_not_overflow() {
    let mut sim = Sim::new();
    sim.add_worker(1, "w1", 1);
    sim.add_client(100);
    for (name, priority) in [("lowest", i64::MIN), ("highest", i64::MAX)] {
        sim.submit_with(
            100,
            vec![task(name, &[])],
            &[name],
            SubmitOptions {
                priority,
                ..Default::default()
            },
        );
    }
    sim.finish(1, "highest");
    sim.finish(1, "lowest");
    assert_eq!(sim.state("lowest"), Some(TState::Memory));
    assert_eq!(sim.state("highest"), Some(TState::Memory));
}
