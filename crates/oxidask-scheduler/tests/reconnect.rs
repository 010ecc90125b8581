//! Client reconnection in the state machine, on the simulated clock: a client whose
//! connection drops is parked with its futures until `client_reconnect_grace` ends; one that
//! says hello with the same id before then takes its record back and is told again the
//! status of every key it wants; after the grace (or on an explicit close) its keys go.
//! A scheduler restarted without a journal knows nothing: the worker registers again
//! reporting what it holds (`Holding`) and the client sends its pending graph again, in
//! either order; every key of the graph reaches memory and the client hears it.
//! `validate()` runs after every step (the harness does it).

mod common;

use std::time::Duration;

use common::*;
use oxidask_protocol::{FromWorker, ToClient, ToScheduler};
use oxidask_scheduler::state::{Config, Event, TState};

const ID: u128 = 0x5eed_0000_0000_0000_0000_0000_0000_0001;

fn sim() -> Sim {
    let mut s = Sim::with_config(Config {
        client_reconnect_grace: Duration::from_secs(30),
        // The simulated worker sends no heartbeats: keep it while the clock runs.
        heartbeat_timeout: Duration::from_secs(3600),
        ..Config::default()
    });
    s.add_worker(100, "w", 1);
    s
}

/// Client `conn` joins and names its id (as the connection layer does for a hello).
fn join(s: &mut Sim, conn: u64, id: u128, reconnect: bool) {
    s.add_client(conn);
    s.step(Event::ClientIdentified {
        conn,
        id,
        reconnect,
    });
}

fn chain() -> Vec<oxidask_protocol::WireTask> {
    vec![task("a", &[]), task("b", &["a"]), task("c", &["b"])]
}

fn tick_at(s: &mut Sim, after: Duration) {
    s.advance(after);
    s.step(Event::Tick);
}

#[test]
fn a_dropped_client_reconnecting_within_the_grace_keeps_its_futures_and_hears_their_status() {
    let mut s = sim();
    join(&mut s, 1, ID, false);
    s.submit(1, chain(), &["b", "c"]);
    s.finish(100, "a");
    s.finish(100, "b");
    assert!(s.clients[&1].in_memory.contains(&wk("b")));
    s.step(Event::ClientLeft { conn: 1 });
    assert_eq!(
        s.s.n_clients(),
        0,
        "a parked client is not counted as connected"
    );
    // The graph goes on while the client is away, its results are kept.
    s.finish(100, "c");
    tick_at(&mut s, Duration::from_secs(29));
    assert_eq!(s.state("b"), Some(TState::Memory));
    assert_eq!(s.state("c"), Some(TState::Memory));
    assert!(
        s.clients.get(&2).is_none_or(|c| c.replies.is_empty()),
        "nothing is sent before it reconnects"
    );
    join(&mut s, 2, ID, true);
    assert_eq!(s.s.n_clients(), 1);
    let told = &s.clients[&2].in_memory;
    assert!(
        told.contains(&wk("b")) && told.contains(&wk("c")),
        "the status of every wanted key is sent again: {told:?}"
    );
    // Well past the first grace: the record is connected again, nothing is released.
    tick_at(&mut s, Duration::from_secs(60));
    assert_eq!(s.state("c"), Some(TState::Memory));
    // The client re-sends the graph it was not sure arrived: nothing is computed twice.
    let computes = s.workers[&100].computes;
    s.submit(2, chain(), &["b", "c"]);
    assert_eq!(s.workers[&100].computes, computes);
    assert!(s.assigned(100).is_empty());
    // And it releases normally over the new connection.
    s.client_msg(
        2,
        ToScheduler::Release {
            keys: vec![wk("b"), wk("c")],
        },
    );
    assert_eq!(s.state("c"), None);
}

#[test]
fn an_error_reached_while_away_is_sent_on_reconnection() {
    let mut s = sim();
    join(&mut s, 1, ID, false);
    s.submit(1, vec![task("x", &[])], &["x"]);
    s.step(Event::ClientLeft { conn: 1 });
    s.err(100, "x", "boom");
    assert_eq!(s.state("x"), Some(TState::Erred));
    join(&mut s, 2, ID, true);
    let e = &s.clients[&2].erred[&wk("x")];
    assert!(e.message.contains("boom"), "{e:?}");
}

#[test]
fn the_grace_ends_on_the_tick_after_its_deadline_and_releases_the_keys() {
    let mut s = sim();
    join(&mut s, 1, ID, false);
    s.submit(1, chain(), &["c"]);
    s.step(Event::ClientLeft { conn: 1 });
    tick_at(&mut s, Duration::from_millis(29_900));
    assert!(s.state("c").is_some(), "kept within the grace");
    tick_at(&mut s, Duration::from_millis(200));
    assert_eq!(s.state("a"), None, "released after the grace");
    assert_eq!(s.state("c"), None);
    // Reconnecting later: a fresh record; keys asked for again are unknown.
    join(&mut s, 2, ID, true);
    s.submit(2, Vec::new(), &["c"]);
    let e = &s.clients[&2].erred[&wk("c")];
    assert!(e.message.contains("not known to the scheduler"), "{e:?}");
}

#[test]
fn an_explicit_close_or_an_anonymous_client_releases_at_once() {
    let mut s = sim();
    join(&mut s, 1, ID, false);
    s.submit(1, chain(), &["c"]);
    s.client_msg(1, ToScheduler::Close);
    assert_eq!(s.state("c"), None, "closed: released now");
    s.step(Event::ClientLeft { conn: 1 });
    assert_eq!(s.s.n_clients(), 0);

    s.add_client(3); // no id: a control connection or an old-style client
    s.submit(3, chain(), &["c"]);
    s.step(Event::ClientLeft { conn: 3 });
    assert_eq!(s.state("c"), None, "anonymous: released now");
}

#[test]
fn a_reconnection_before_the_old_connection_is_seen_to_close_takes_the_record_over() {
    let mut s = sim();
    join(&mut s, 1, ID, false);
    s.submit(1, chain(), &["c"]);
    join(&mut s, 2, ID, true);
    assert_eq!(s.s.n_clients(), 1, "one client, on its new connection");
    // The old connection's close arrives late: it no longer speaks for the client.
    s.step(Event::ClientLeft { conn: 1 });
    tick_at(&mut s, Duration::from_secs(120));
    assert!(s.state("c").is_some());
    s.drain();
    assert!(s.clients[&2].in_memory.contains(&wk("c")));
    assert!(!s
        .clients
        .get(&1)
        .is_some_and(|c| c.in_memory.contains(&wk("c"))));
}

#[test]
fn a_graph_arriving_in_parts_resumes_after_a_reconnection() {
    let mut s = sim();
    join(&mut s, 1, ID, false);
    let part = |tasks, wanted: &[&str], more| ToScheduler::UpdateGraph {
        tasks,
        wanted: wanted.iter().map(|n| wk(n)).collect(),
        options: Default::default(),
        more,
    };
    s.client_msg(1, part(vec![task("a", &[])], &[], true));
    s.step(Event::ClientLeft { conn: 1 });
    join(&mut s, 2, ID, true);
    // The client sends the whole graph again, first part included.
    s.client_msg(2, part(vec![task("a", &[])], &[], true));
    s.client_msg(2, part(vec![task("b", &["a"])], &["b"], false));
    s.drain();
    assert!(s.clients[&2].in_memory.contains(&wk("b")));
    assert_eq!(s.workers[&100].computes, 2);
}

#[test]
fn a_client_restored_from_a_journal_takes_its_futures_back_by_id() {
    let mut s = sim();
    s.add_client(9);
    s.submit(9, chain(), &["c"]);
    s.drain();
    // As a journal replay would: the graph is known, the client is restored parked.
    s.s.restore_client(ID, "restored".into(), &[wk("c"), wk("unknown")]);
    s.step(Event::ClientLeft { conn: 9 });
    s.step(Event::Tick);
    assert_eq!(
        s.state("c"),
        Some(TState::Memory),
        "the restored client holds it"
    );
    join(&mut s, 2, ID, true);
    assert!(s.clients[&2].in_memory.contains(&wk("c")));
    s.client_msg(2, ToScheduler::Close);
    assert_eq!(s.state("c"), None);
}

#[test]
fn a_restored_client_that_never_returns_is_released_after_the_grace() {
    let mut s = sim();
    s.add_client(9);
    s.submit(9, chain(), &["c"]);
    s.s.restore_client(ID, "restored".into(), &[wk("c")]);
    s.step(Event::ClientLeft { conn: 9 });
    tick_at(&mut s, Duration::from_secs(31));
    assert_eq!(s.state("c"), None);
}

#[test]
fn messages_for_a_parked_client_are_not_sent_to_its_dead_connection() {
    let mut s = sim();
    join(&mut s, 1, ID, false);
    s.submit(1, vec![task("x", &[])], &["x"]);
    s.step(Event::ClientLeft { conn: 1 });
    let before = s.clients[&1].replies.len();
    s.finish(100, "x");
    assert_eq!(s.clients[&1].replies.len(), before);
    join(&mut s, 2, ID, true);
    assert!(matches!(
        s.clients[&2].replies.as_slice(),
        [ToClient::KeyInMemory { .. }]
    ));
}

/// A pairwise sum over four leaves: `l0..l3`, `a01`, `a23`, `root`.
fn tree() -> Vec<oxidask_protocol::WireTask> {
    vec![
        task("l0", &[]),
        task("l1", &[]),
        task("l2", &[]),
        task("l3", &[]),
        task("a01", &["l0", "l1"]),
        task("a23", &["l2", "l3"]),
        task("root", &["a01", "a23"]),
    ]
}

/// Worker `conn` (re)registered holding `names` (its first batch, as after a reconnection).
fn holding(s: &mut Sim, conn: u64, names: &[&str]) {
    s.workers
        .get_mut(&conn)
        .expect("live worker")
        .holds
        .extend(names.iter().map(|n| wk(n)));
    s.step(Event::FromWorker {
        conn,
        msg: FromWorker::Holding {
            keys: names.iter().map(|n| (wk(n), "i64".into(), 8)).collect(),
        },
    });
}

/// A scheduler restarted without a journal (no worker yet, no task).
fn restarted() -> Sim {
    Sim::with_config(Config {
        client_reconnect_grace: Duration::from_secs(30),
        heartbeat_timeout: Duration::from_secs(3600),
        ..Config::default()
    })
}

#[test]
fn a_restarted_scheduler_given_the_graph_before_the_worker_returns_takes_what_it_holds() {
    let mut s = restarted();
    // The client is back first: its pending graph, then a key the old scheduler held.
    join(&mut s, 1, ID, true);
    s.submit(1, tree(), &["root"]);
    s.submit(1, Vec::new(), &["done"]);
    assert!(s.clients[&1].erred[&wk("done")]
        .message
        .contains("not known to the scheduler"));
    assert_eq!(s.state("l0"), Some(TState::NoWorker));
    // The worker registers: it is given leaves at once, then its report arrives (l0 was
    // assigned and is held: it is taken; a01 waits for l1: it is taken, l1 is not needed).
    s.add_worker(100, "w", 2);
    assert!(s.assigned(100).contains(&wk("l0")));
    holding(&mut s, 100, &["l0", "a01", "unknown"]);
    assert_eq!(s.state("a01"), Some(TState::Memory));
    assert!(!s.workers[&100].holds.contains(&wk("unknown")), "freed");
    // The worker answers a repeated assignment of a result it holds with `Finished` again.
    s.drain();
    assert_eq!(s.state("root"), Some(TState::Memory));
    assert!(s.clients[&1].in_memory.contains(&wk("root")));
    // Only the result wanted stays on the worker (the rest is kept as lineage).
    assert_eq!(
        s.workers[&100].holds.iter().collect::<Vec<_>>(),
        vec![&wk("root")]
    );
    assert_eq!(s.state("l0"), Some(TState::Released));
}

#[test]
fn a_restarted_scheduler_hearing_the_worker_before_the_graph_frees_and_recomputes() {
    let mut s = restarted();
    s.add_worker(100, "w", 2);
    // Nothing is known yet: what the worker holds is freed on it.
    holding(&mut s, 100, &["l0", "a01"]);
    assert!(s.workers[&100].holds.is_empty());
    join(&mut s, 1, ID, true);
    s.submit(1, tree(), &["root"]);
    s.drain();
    assert_eq!(s.state("root"), Some(TState::Memory));
    assert!(s.clients[&1].in_memory.contains(&wk("root")));
    assert_eq!(s.workers[&100].computes, 7, "the whole graph, once");
}

#[test]
fn a_worker_report_between_the_parts_of_a_resent_graph_is_taken_or_freed() {
    let mut s = restarted();
    s.add_worker(100, "w", 2);
    join(&mut s, 1, ID, true);
    let part = |tasks, wanted: &[&str], more| ToScheduler::UpdateGraph {
        tasks,
        wanted: wanted.iter().map(|n| wk(n)).collect(),
        options: Default::default(),
        more,
    };
    let mut t = tree();
    let rest = t.split_off(4);
    s.client_msg(1, part(t, &[], true));
    // The leaves are staged, not yet known to the graph: a report now frees them.
    holding(&mut s, 100, &["l0"]);
    assert!(s.workers[&100].holds.is_empty());
    s.client_msg(1, part(rest, &["root"], false));
    s.drain();
    assert_eq!(s.state("root"), Some(TState::Memory));
    assert!(s.clients[&1].in_memory.contains(&wk("root")));
}
