//! Coordination objects in the pure state machine: every step is checked by `validate()`,
//! time is simulated (`Sim::advance` then a tick), nothing sleeps.

mod common;

use std::time::Duration;

use common::*;
use oxidask_protocol::*;
use oxidask_scheduler::{CoordLimits, Event, TState};

fn val(s: &str) -> CoordValue {
    CoordValue {
        data: Payload(bytes::Bytes::copy_from_slice(s.as_bytes())),
        keys: Vec::new(),
    }
}

fn fut(name: &str) -> CoordValue {
    CoordValue {
        data: Payload::default(),
        keys: vec![wk(name)],
    }
}

/// Sends `op` as request `request` of client `conn`.
fn op(sim: &mut Sim, conn: u64, request: u64, op: CoordOp) {
    sim.client_msg(conn, ToScheduler::Coord { request, op });
}

/// The reply to `request` client `conn` got, if any (taken).
fn reply(sim: &mut Sim, conn: u64, request: u64) -> Option<CoordReply> {
    let replies = &mut sim.clients.get_mut(&conn).unwrap().replies;
    let i = replies
        .iter()
        .position(|m| matches!(m, ToClient::Coord { request: r, .. } if *r == request))?;
    match replies.remove(i) {
        ToClient::Coord { reply, .. } => Some(reply),
        _ => unreachable!(),
    }
}

fn tick(sim: &mut Sim, d: Duration) {
    sim.advance(d);
    sim.step(Event::Tick);
}

fn s(n: &str) -> String {
    n.to_owned()
}

#[test]
fn variable_get_waits_for_set_and_times_out() {
    let mut sim = Sim::new();
    sim.add_client(1);
    sim.add_client(2);
    op(
        &mut sim,
        1,
        1,
        CoordOp::VariableGet {
            name: s("x"),
            timeout_ms: None,
        },
    );
    op(
        &mut sim,
        1,
        2,
        CoordOp::VariableGet {
            name: s("y"),
            timeout_ms: Some(500),
        },
    );
    assert_eq!(reply(&mut sim, 1, 1), None);
    tick(&mut sim, Duration::from_millis(400));
    assert_eq!(reply(&mut sim, 1, 2), None, "not yet timed out");
    tick(&mut sim, Duration::from_millis(100));
    assert_eq!(reply(&mut sim, 1, 2), Some(CoordReply::TimedOut));
    op(
        &mut sim,
        2,
        1,
        CoordOp::VariableSet {
            name: s("x"),
            value: val("one"),
        },
    );
    assert_eq!(reply(&mut sim, 2, 1), Some(CoordReply::Done));
    assert_eq!(reply(&mut sim, 1, 1), Some(CoordReply::Value(val("one"))));
    // Set now: answered at once; a timeout of 0 does not wait.
    op(
        &mut sim,
        1,
        3,
        CoordOp::VariableGet {
            name: s("x"),
            timeout_ms: Some(0),
        },
    );
    assert_eq!(reply(&mut sim, 1, 3), Some(CoordReply::Value(val("one"))));
    op(&mut sim, 1, 4, CoordOp::VariableDelete { name: s("x") });
    op(
        &mut sim,
        1,
        5,
        CoordOp::VariableGet {
            name: s("x"),
            timeout_ms: Some(0),
        },
    );
    assert_eq!(reply(&mut sim, 1, 5), Some(CoordReply::TimedOut));
}

#[test]
fn variable_keeps_its_future_alive_until_replaced() {
    let mut sim = Sim::new();
    sim.add_worker(10, "w", 1);
    sim.add_client(1);
    sim.add_client(2);
    sim.submit(1, vec![task("a-1", &[]), task("b-1", &[])], &["a-1", "b-1"]);
    sim.drain();
    op(
        &mut sim,
        1,
        1,
        CoordOp::VariableSet {
            name: s("v"),
            value: fut("a-1"),
        },
    );
    assert_eq!(reply(&mut sim, 1, 1), Some(CoordReply::Done));
    // The client drops its future: the variable still holds the key.
    sim.client_msg(
        1,
        ToScheduler::Release {
            keys: vec![wk("a-1")],
        },
    );
    assert_eq!(sim.state("a-1"), Some(TState::Memory));
    // Another client gets it and, from the reply on, wants it (hears it is in memory).
    op(
        &mut sim,
        2,
        1,
        CoordOp::VariableGet {
            name: s("v"),
            timeout_ms: None,
        },
    );
    assert_eq!(reply(&mut sim, 2, 1), Some(CoordReply::Value(fut("a-1"))));
    assert!(sim.clients[&2].in_memory.contains(&wk("a-1")));
    sim.client_msg(
        2,
        ToScheduler::Release {
            keys: vec![wk("a-1")],
        },
    );
    assert_eq!(
        sim.state("a-1"),
        Some(TState::Memory),
        "the variable holds it"
    );
    // Replaced: the old key goes.
    op(
        &mut sim,
        1,
        2,
        CoordOp::VariableSet {
            name: s("v"),
            value: fut("b-1"),
        },
    );
    assert_eq!(sim.state("a-1"), None);
    sim.client_msg(
        1,
        ToScheduler::Release {
            keys: vec![wk("b-1")],
        },
    );
    assert_eq!(sim.state("b-1"), Some(TState::Memory));
    op(&mut sim, 1, 3, CoordOp::VariableDelete { name: s("v") });
    assert_eq!(sim.state("b-1"), None, "deleted: nothing holds it");
}

#[test]
fn a_future_that_is_not_known_is_refused() {
    let mut sim = Sim::new();
    sim.add_client(1);
    op(
        &mut sim,
        1,
        1,
        CoordOp::VariableSet {
            name: s("v"),
            value: fut("nope-1"),
        },
    );
    assert!(matches!(
        reply(&mut sim, 1, 1),
        Some(CoordReply::Failed {
            kind: CoordErrorKind::UnknownKey,
            ..
        })
    ));
}

#[test]
fn queue_fifo_batch_and_timeouts() {
    let mut sim = Sim::new();
    sim.add_client(1);
    sim.add_client(2);
    op(
        &mut sim,
        1,
        1,
        CoordOp::QueueGet {
            name: s("q"),
            count: 1,
            timeout_ms: Some(1000),
        },
    );
    op(
        &mut sim,
        2,
        1,
        CoordOp::QueuePut {
            name: s("q"),
            value: val("a"),
            timeout_ms: None,
        },
    );
    assert_eq!(reply(&mut sim, 2, 1), Some(CoordReply::Done));
    assert_eq!(
        reply(&mut sim, 1, 1),
        Some(CoordReply::Values(vec![val("a")]))
    );
    for (i, v) in ["b", "c", "d"].iter().enumerate() {
        op(
            &mut sim,
            2,
            2 + i as u64,
            CoordOp::QueuePut {
                name: s("q"),
                value: val(v),
                timeout_ms: None,
            },
        );
    }
    op(&mut sim, 1, 2, CoordOp::QueueSize { name: s("q") });
    assert_eq!(reply(&mut sim, 1, 2), Some(CoordReply::Count(3)));
    // A batch of 2 comes at once, in order; batch=True (count 0) takes the rest.
    op(
        &mut sim,
        1,
        3,
        CoordOp::QueueGet {
            name: s("q"),
            count: 2,
            timeout_ms: None,
        },
    );
    assert_eq!(
        reply(&mut sim, 1, 3),
        Some(CoordReply::Values(vec![val("b"), val("c")]))
    );
    op(
        &mut sim,
        1,
        4,
        CoordOp::QueueGet {
            name: s("q"),
            count: 0,
            timeout_ms: None,
        },
    );
    assert_eq!(
        reply(&mut sim, 1, 4),
        Some(CoordReply::Values(vec![val("d")]))
    );
    op(
        &mut sim,
        1,
        5,
        CoordOp::QueueGet {
            name: s("q"),
            count: 0,
            timeout_ms: None,
        },
    );
    assert_eq!(reply(&mut sim, 1, 5), Some(CoordReply::Values(vec![])));
    // Empty: a get times out.
    op(
        &mut sim,
        1,
        6,
        CoordOp::QueueGet {
            name: s("q"),
            count: 1,
            timeout_ms: Some(200),
        },
    );
    tick(&mut sim, Duration::from_millis(199));
    assert_eq!(reply(&mut sim, 1, 6), None);
    tick(&mut sim, Duration::from_millis(1));
    assert_eq!(reply(&mut sim, 1, 6), Some(CoordReply::TimedOut));
    // A timed-out getter does not take the next item.
    op(
        &mut sim,
        2,
        9,
        CoordOp::QueuePut {
            name: s("q"),
            value: val("e"),
            timeout_ms: None,
        },
    );
    op(&mut sim, 1, 7, CoordOp::QueueSize { name: s("q") });
    assert_eq!(reply(&mut sim, 1, 7), Some(CoordReply::Count(1)));
}

#[test]
fn bounded_queue_blocks_puts_until_room() {
    let mut sim = Sim::new();
    sim.add_client(1);
    sim.add_client(2);
    op(
        &mut sim,
        1,
        1,
        CoordOp::QueueCreate {
            name: s("q"),
            maxsize: 2,
        },
    );
    op(
        &mut sim,
        1,
        2,
        CoordOp::QueuePut {
            name: s("q"),
            value: val("a"),
            timeout_ms: None,
        },
    );
    op(
        &mut sim,
        1,
        3,
        CoordOp::QueuePut {
            name: s("q"),
            value: val("b"),
            timeout_ms: None,
        },
    );
    op(
        &mut sim,
        1,
        4,
        CoordOp::QueuePut {
            name: s("q"),
            value: val("c"),
            timeout_ms: None,
        },
    );
    op(
        &mut sim,
        1,
        5,
        CoordOp::QueuePut {
            name: s("q"),
            value: val("d"),
            timeout_ms: Some(300),
        },
    );
    assert_eq!(reply(&mut sim, 1, 3), Some(CoordReply::Done));
    assert_eq!(reply(&mut sim, 1, 4), None, "full: the put waits");
    tick(&mut sim, Duration::from_millis(300));
    assert_eq!(reply(&mut sim, 1, 5), Some(CoordReply::TimedOut));
    op(
        &mut sim,
        2,
        1,
        CoordOp::QueueGet {
            name: s("q"),
            count: 1,
            timeout_ms: None,
        },
    );
    assert_eq!(
        reply(&mut sim, 2, 1),
        Some(CoordReply::Values(vec![val("a")]))
    );
    assert_eq!(
        reply(&mut sim, 1, 4),
        Some(CoordReply::Done),
        "room: the put goes in"
    );
    op(
        &mut sim,
        2,
        2,
        CoordOp::QueueGet {
            name: s("q"),
            count: 0,
            timeout_ms: None,
        },
    );
    assert_eq!(
        reply(&mut sim, 2, 2),
        Some(CoordReply::Values(vec![val("b"), val("c")]))
    );
    // A non-blocking put on a full queue times out at once.
    op(
        &mut sim,
        1,
        6,
        CoordOp::QueuePut {
            name: s("q"),
            value: val("e"),
            timeout_ms: None,
        },
    );
    op(
        &mut sim,
        1,
        7,
        CoordOp::QueuePut {
            name: s("q"),
            value: val("f"),
            timeout_ms: None,
        },
    );
    op(
        &mut sim,
        1,
        8,
        CoordOp::QueuePut {
            name: s("q"),
            value: val("g"),
            timeout_ms: Some(0),
        },
    );
    assert_eq!(reply(&mut sim, 1, 8), Some(CoordReply::TimedOut));
    // The putter leaves: its waiting put is dropped, its queued items stay.
    op(
        &mut sim,
        1,
        9,
        CoordOp::QueuePut {
            name: s("q"),
            value: val("h"),
            timeout_ms: None,
        },
    );
    sim.step(Event::ClientLeft { conn: 1 });
    op(
        &mut sim,
        2,
        3,
        CoordOp::QueueGet {
            name: s("q"),
            count: 0,
            timeout_ms: None,
        },
    );
    assert_eq!(
        reply(&mut sim, 2, 3),
        Some(CoordReply::Values(vec![val("e"), val("f")]))
    );
}

#[test]
fn queued_futures_stay_alive_and_pass_to_the_getter() {
    let mut sim = Sim::new();
    sim.add_worker(10, "w", 1);
    sim.add_client(1);
    sim.add_client(2);
    sim.submit(1, vec![task("a-1", &[])], &["a-1"]);
    // Put while still computing, then released by its submitter.
    op(
        &mut sim,
        1,
        1,
        CoordOp::QueuePut {
            name: s("q"),
            value: fut("a-1"),
            timeout_ms: None,
        },
    );
    sim.client_msg(
        1,
        ToScheduler::Release {
            keys: vec![wk("a-1")],
        },
    );
    assert!(
        matches!(sim.state("a-1"), Some(TState::Processing(_))),
        "still computed"
    );
    sim.drain();
    assert_eq!(sim.state("a-1"), Some(TState::Memory));
    op(
        &mut sim,
        2,
        1,
        CoordOp::QueueGet {
            name: s("q"),
            count: 1,
            timeout_ms: None,
        },
    );
    assert_eq!(
        reply(&mut sim, 2, 1),
        Some(CoordReply::Values(vec![fut("a-1")]))
    );
    assert_eq!(
        sim.state("a-1"),
        Some(TState::Memory),
        "the getter holds it now"
    );
    sim.step(Event::ClientLeft { conn: 2 });
    assert_eq!(sim.state("a-1"), None, "the getter left: released");
}

#[test]
fn queue_item_limit_is_a_clear_error() {
    let mut sim = Sim::new();
    sim.s.set_coord_limits(CoordLimits {
        queue_items: 3,
        ..CoordLimits::default()
    });
    sim.add_client(1);
    for i in 0..3 {
        op(
            &mut sim,
            1,
            i,
            CoordOp::QueuePut {
                name: s("q"),
                value: val("x"),
                timeout_ms: None,
            },
        );
    }
    op(
        &mut sim,
        1,
        9,
        CoordOp::QueuePut {
            name: s("q"),
            value: val("x"),
            timeout_ms: None,
        },
    );
    match reply(&mut sim, 1, 9) {
        Some(CoordReply::Failed {
            kind: CoordErrorKind::Limit,
            message,
        }) => {
            assert!(message.contains("maxsize"), "{message}")
        }
        r => panic!("{r:?}"),
    }
    op(
        &mut sim,
        1,
        10,
        CoordOp::QueueCreate {
            name: s("r"),
            maxsize: 4,
        },
    );
    assert!(matches!(
        reply(&mut sim, 1, 10),
        Some(CoordReply::Failed {
            kind: CoordErrorKind::Limit,
            ..
        })
    ));
}

#[test]
fn byte_limit_refuses_values_and_says_what_to_do() {
    let mut sim = Sim::new();
    sim.s.set_coord_limits(CoordLimits {
        bytes: 1000,
        ..CoordLimits::default()
    });
    sim.add_client(1);
    let big = CoordValue {
        data: Payload(bytes::Bytes::from(vec![0u8; 2000])),
        keys: Vec::new(),
    };
    op(
        &mut sim,
        1,
        1,
        CoordOp::VariableSet {
            name: s("v"),
            value: big,
        },
    );
    match reply(&mut sim, 1, 1) {
        Some(CoordReply::Failed {
            kind: CoordErrorKind::Limit,
            message,
        }) => {
            assert!(message.contains("scatter"), "{message}")
        }
        r => panic!("{r:?}"),
    }
}

#[test]
fn lock_holder_release_timeout_and_departure() {
    let mut sim = Sim::new();
    sim.add_client(1);
    sim.add_client(2);
    sim.add_client(3);
    op(
        &mut sim,
        1,
        1,
        CoordOp::LockAcquire {
            name: s("l"),
            holder: 7,
            blocking: true,
            timeout_ms: None,
        },
    );
    assert_eq!(reply(&mut sim, 1, 1), Some(CoordReply::Flag(true)));
    op(
        &mut sim,
        2,
        1,
        CoordOp::LockAcquire {
            name: s("l"),
            holder: 1,
            blocking: false,
            timeout_ms: None,
        },
    );
    assert_eq!(reply(&mut sim, 2, 1), Some(CoordReply::Flag(false)));
    op(
        &mut sim,
        2,
        2,
        CoordOp::LockAcquire {
            name: s("l"),
            holder: 1,
            blocking: true,
            timeout_ms: Some(100),
        },
    );
    op(
        &mut sim,
        3,
        1,
        CoordOp::LockAcquire {
            name: s("l"),
            holder: 1,
            blocking: true,
            timeout_ms: None,
        },
    );
    tick(&mut sim, Duration::from_millis(100));
    assert_eq!(
        reply(&mut sim, 2, 2),
        Some(CoordReply::Flag(false)),
        "timed out"
    );
    // Only the holder may release.
    op(
        &mut sim,
        2,
        3,
        CoordOp::LockRelease {
            name: s("l"),
            holder: 1,
        },
    );
    assert!(matches!(
        reply(&mut sim, 2, 3),
        Some(CoordReply::Failed {
            kind: CoordErrorKind::NotHeld,
            ..
        })
    ));
    op(
        &mut sim,
        1,
        2,
        CoordOp::LockRelease {
            name: s("l"),
            holder: 8,
        },
    );
    assert!(matches!(
        reply(&mut sim, 1, 2),
        Some(CoordReply::Failed {
            kind: CoordErrorKind::NotHeld,
            ..
        })
    ));
    op(&mut sim, 1, 3, CoordOp::LockLocked { name: s("l") });
    assert_eq!(reply(&mut sim, 1, 3), Some(CoordReply::Flag(true)));
    // The holder dies: the waiter gets the lock.
    sim.step(Event::ClientLeft { conn: 1 });
    assert_eq!(reply(&mut sim, 3, 1), Some(CoordReply::Flag(true)));
    op(
        &mut sim,
        3,
        2,
        CoordOp::LockRelease {
            name: s("l"),
            holder: 1,
        },
    );
    assert_eq!(reply(&mut sim, 3, 2), Some(CoordReply::Done));
    op(&mut sim, 3, 3, CoordOp::LockLocked { name: s("l") });
    assert_eq!(reply(&mut sim, 3, 3), Some(CoordReply::Flag(false)));
}

#[test]
fn semaphore_leases_return_when_their_holder_leaves() {
    let mut sim = Sim::new();
    sim.add_client(1);
    sim.add_client(2);
    op(
        &mut sim,
        1,
        1,
        CoordOp::SemaphoreCreate {
            name: s("s"),
            max_leases: 2,
        },
    );
    assert_eq!(reply(&mut sim, 1, 1), Some(CoordReply::Done));
    op(
        &mut sim,
        2,
        1,
        CoordOp::SemaphoreCreate {
            name: s("s"),
            max_leases: 3,
        },
    );
    assert!(matches!(
        reply(&mut sim, 2, 1),
        Some(CoordReply::Failed {
            kind: CoordErrorKind::Invalid,
            ..
        })
    ));
    for lease in 1..=2 {
        op(
            &mut sim,
            1,
            10 + lease,
            CoordOp::SemaphoreAcquire {
                name: s("s"),
                lease,
                blocking: true,
                timeout_ms: None,
            },
        );
        assert_eq!(reply(&mut sim, 1, 10 + lease), Some(CoordReply::Flag(true)));
    }
    op(
        &mut sim,
        2,
        2,
        CoordOp::SemaphoreAcquire {
            name: s("s"),
            lease: 1,
            blocking: true,
            timeout_ms: Some(50),
        },
    );
    tick(&mut sim, Duration::from_millis(50));
    assert_eq!(reply(&mut sim, 2, 2), Some(CoordReply::Flag(false)));
    op(
        &mut sim,
        2,
        3,
        CoordOp::SemaphoreAcquire {
            name: s("s"),
            lease: 2,
            blocking: true,
            timeout_ms: None,
        },
    );
    op(
        &mut sim,
        2,
        4,
        CoordOp::SemaphoreAcquire {
            name: s("s"),
            lease: 3,
            blocking: true,
            timeout_ms: None,
        },
    );
    op(&mut sim, 2, 5, CoordOp::SemaphoreValue { name: s("s") });
    assert_eq!(reply(&mut sim, 2, 5), Some(CoordReply::Count(2)));
    op(
        &mut sim,
        1,
        3,
        CoordOp::SemaphoreRelease {
            name: s("s"),
            lease: 1,
        },
    );
    assert_eq!(reply(&mut sim, 1, 3), Some(CoordReply::Done));
    assert_eq!(reply(&mut sim, 2, 3), Some(CoordReply::Flag(true)));
    op(
        &mut sim,
        1,
        4,
        CoordOp::SemaphoreRelease {
            name: s("s"),
            lease: 1,
        },
    );
    assert!(
        matches!(
            reply(&mut sim, 1, 4),
            Some(CoordReply::Failed {
                kind: CoordErrorKind::NotHeld,
                ..
            })
        ),
        "released too often"
    );
    // Client 1 dies holding lease 2: it expires and the waiter gets it.
    sim.step(Event::ClientLeft { conn: 1 });
    assert_eq!(reply(&mut sim, 2, 4), Some(CoordReply::Flag(true)));
}

#[test]
fn event_wait_set_clear() {
    let mut sim = Sim::new();
    sim.add_client(1);
    sim.add_client(2);
    op(
        &mut sim,
        1,
        1,
        CoordOp::EventWait {
            name: s("e"),
            timeout_ms: None,
        },
    );
    op(
        &mut sim,
        1,
        2,
        CoordOp::EventWait {
            name: s("f"),
            timeout_ms: Some(10),
        },
    );
    tick(&mut sim, Duration::from_millis(10));
    assert_eq!(reply(&mut sim, 1, 2), Some(CoordReply::Flag(false)));
    assert_eq!(reply(&mut sim, 1, 1), None);
    op(&mut sim, 2, 1, CoordOp::EventSet { name: s("e") });
    assert_eq!(reply(&mut sim, 1, 1), Some(CoordReply::Flag(true)));
    op(&mut sim, 1, 3, CoordOp::EventIsSet { name: s("e") });
    assert_eq!(reply(&mut sim, 1, 3), Some(CoordReply::Flag(true)));
    op(
        &mut sim,
        1,
        4,
        CoordOp::EventWait {
            name: s("e"),
            timeout_ms: Some(0),
        },
    );
    assert_eq!(reply(&mut sim, 1, 4), Some(CoordReply::Flag(true)));
    op(&mut sim, 2, 2, CoordOp::EventClear { name: s("e") });
    op(&mut sim, 1, 5, CoordOp::EventIsSet { name: s("e") });
    assert_eq!(reply(&mut sim, 1, 5), Some(CoordReply::Flag(false)));
    // A waiter whose client leaves is dropped without a reply (and without a timer left).
    op(
        &mut sim,
        1,
        6,
        CoordOp::EventWait {
            name: s("e"),
            timeout_ms: Some(1000),
        },
    );
    sim.step(Event::ClientLeft { conn: 1 });
    tick(&mut sim, Duration::from_secs(2));
}

#[test]
fn pub_sub_fans_out_to_subscribers() {
    let mut sim = Sim::new();
    sim.add_client(1);
    sim.add_client(2);
    sim.add_client(3);
    let m = |t: &str| Payload(bytes::Bytes::copy_from_slice(t.as_bytes()));
    op(
        &mut sim,
        1,
        1,
        CoordOp::Publish {
            topic: s("t"),
            msg: m("lost"),
        },
    );
    assert_eq!(
        reply(&mut sim, 1, 1),
        Some(CoordReply::Count(0)),
        "no subscriber: dropped"
    );
    op(
        &mut sim,
        2,
        1,
        CoordOp::Subscribe {
            topic: s("t"),
            subscriber: 1,
        },
    );
    op(
        &mut sim,
        3,
        1,
        CoordOp::Subscribe {
            topic: s("t"),
            subscriber: 1,
        },
    );
    op(
        &mut sim,
        3,
        2,
        CoordOp::SubGet {
            topic: s("t"),
            subscriber: 1,
            count: 1,
            timeout_ms: None,
        },
    );
    op(
        &mut sim,
        1,
        2,
        CoordOp::Publish {
            topic: s("t"),
            msg: m("hello"),
        },
    );
    assert_eq!(reply(&mut sim, 1, 2), Some(CoordReply::Count(2)));
    assert_eq!(
        reply(&mut sim, 3, 2),
        Some(CoordReply::Messages(vec![m("hello")]))
    );
    op(
        &mut sim,
        1,
        3,
        CoordOp::Publish {
            topic: s("t"),
            msg: m("again"),
        },
    );
    op(
        &mut sim,
        2,
        2,
        CoordOp::SubGet {
            topic: s("t"),
            subscriber: 1,
            count: 0,
            timeout_ms: None,
        },
    );
    assert_eq!(
        reply(&mut sim, 2, 2),
        Some(CoordReply::Messages(vec![m("hello"), m("again")]))
    );
    op(
        &mut sim,
        2,
        3,
        CoordOp::SubGet {
            topic: s("t"),
            subscriber: 1,
            count: 1,
            timeout_ms: Some(100),
        },
    );
    tick(&mut sim, Duration::from_millis(100));
    assert_eq!(reply(&mut sim, 2, 3), Some(CoordReply::TimedOut));
    // A subscriber leaving frees its buffer.
    sim.step(Event::ClientLeft { conn: 3 });
    op(
        &mut sim,
        1,
        4,
        CoordOp::Publish {
            topic: s("t"),
            msg: m("x"),
        },
    );
    assert_eq!(reply(&mut sim, 1, 4), Some(CoordReply::Count(1)));
    op(
        &mut sim,
        2,
        4,
        CoordOp::Unsubscribe {
            topic: s("t"),
            subscriber: 1,
        },
    );
    op(
        &mut sim,
        2,
        5,
        CoordOp::SubGet {
            topic: s("t"),
            subscriber: 1,
            count: 1,
            timeout_ms: None,
        },
    );
    assert!(matches!(
        reply(&mut sim, 2, 5),
        Some(CoordReply::Failed { .. })
    ));
}

#[test]
fn datasets_publish_get_list_unpublish() {
    let mut sim = Sim::new();
    sim.add_worker(10, "w", 1);
    sim.add_client(1);
    sim.add_client(2);
    sim.submit(1, vec![task("a-1", &[])], &["a-1"]);
    sim.drain();
    op(
        &mut sim,
        1,
        1,
        CoordOp::DatasetPublish {
            name: s("d"),
            value: fut("a-1"),
            overwrite: false,
        },
    );
    assert_eq!(reply(&mut sim, 1, 1), Some(CoordReply::Done));
    op(
        &mut sim,
        1,
        2,
        CoordOp::DatasetPublish {
            name: s("d"),
            value: val("x"),
            overwrite: false,
        },
    );
    assert!(matches!(
        reply(&mut sim, 1, 2),
        Some(CoordReply::Failed {
            kind: CoordErrorKind::AlreadyExists,
            ..
        })
    ));
    sim.step(Event::ClientLeft { conn: 1 });
    assert_eq!(
        sim.state("a-1"),
        Some(TState::Memory),
        "published: outlives its client"
    );
    op(&mut sim, 2, 1, CoordOp::DatasetList);
    assert_eq!(reply(&mut sim, 2, 1), Some(CoordReply::Names(vec![s("d")])));
    op(&mut sim, 2, 2, CoordOp::DatasetGet { name: s("d") });
    assert_eq!(reply(&mut sim, 2, 2), Some(CoordReply::Value(fut("a-1"))));
    op(&mut sim, 2, 3, CoordOp::DatasetGet { name: s("zz") });
    assert!(matches!(
        reply(&mut sim, 2, 3),
        Some(CoordReply::Failed {
            kind: CoordErrorKind::NotFound,
            ..
        })
    ));
    op(&mut sim, 2, 4, CoordOp::DatasetUnpublish { name: s("d") });
    assert_eq!(reply(&mut sim, 2, 4), Some(CoordReply::Done));
    assert_eq!(sim.state("a-1"), Some(TState::Memory), "client 2 got it");
    sim.client_msg(
        2,
        ToScheduler::Release {
            keys: vec![wk("a-1")],
        },
    );
    assert_eq!(sim.state("a-1"), None);
    op(&mut sim, 2, 5, CoordOp::DatasetUnpublish { name: s("d") });
    assert!(matches!(
        reply(&mut sim, 2, 5),
        Some(CoordReply::Failed {
            kind: CoordErrorKind::NotFound,
            ..
        })
    ));
}

#[test]
fn event_log_is_bounded_per_topic() {
    let mut sim = Sim::new();
    sim.s.set_coord_limits(CoordLimits {
        events_per_topic: 3,
        ..CoordLimits::default()
    });
    sim.add_client(1);
    for i in 0..5u8 {
        op(
            &mut sim,
            1,
            i as u64,
            CoordOp::LogEvent {
                topic: s("t"),
                time: i as f64,
                msg: Payload(bytes::Bytes::from(vec![i])),
            },
        );
    }
    op(
        &mut sim,
        1,
        9,
        CoordOp::LogEvent {
            topic: s("u"),
            time: 9.0,
            msg: Payload::default(),
        },
    );
    op(
        &mut sim,
        1,
        10,
        CoordOp::GetEvents {
            topic: Some(s("t")),
        },
    );
    match reply(&mut sim, 1, 10) {
        Some(CoordReply::Events(e)) => {
            assert_eq!(
                e.iter().map(|e| e.time).collect::<Vec<_>>(),
                vec![2.0, 3.0, 4.0]
            )
        }
        r => panic!("{r:?}"),
    }
    op(&mut sim, 1, 11, CoordOp::GetEvents { topic: None });
    assert!(matches!(reply(&mut sim, 1, 11), Some(CoordReply::Events(e)) if e.len() == 4));
}

#[test]
fn abandoned_get_does_not_take_the_next_item() {
    let mut sim = Sim::new();
    sim.add_client(1);
    op(
        &mut sim,
        1,
        1,
        CoordOp::QueueGet {
            name: s("q"),
            count: 1,
            timeout_ms: Some(5000),
        },
    );
    op(&mut sim, 1, 2, CoordOp::Abandon { request: 1 });
    op(
        &mut sim,
        1,
        3,
        CoordOp::QueuePut {
            name: s("q"),
            value: val("a"),
            timeout_ms: None,
        },
    );
    assert_eq!(reply(&mut sim, 1, 1), None);
    op(&mut sim, 1, 4, CoordOp::QueueSize { name: s("q") });
    assert_eq!(reply(&mut sim, 1, 4), Some(CoordReply::Count(1)));
}

/// A random walk over every operation from three clients that come and go, with time
/// passing: the invariants hold after every step (checked by `Sim::step`), and at the end,
/// with every client gone and every object emptied, nothing is held.
#[test]
fn random_walk_keeps_the_invariants() {
    let mut rng = 0x9e3779b97f4a7c15u64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut sim = Sim::new();
    sim.add_worker(10, "w", 2);
    let names = ["a", "b"];
    let mut live = vec![1u64, 2, 3];
    for c in &live {
        sim.add_client(*c);
    }
    let mut next_conn = 4;
    let mut n_task = 0;
    for step in 0..3000u64 {
        let c = live[next(live.len() as u64) as usize];
        let name = s(names[next(2) as usize]);
        let timeout_ms = [None, Some(0), Some(50), Some(300)][next(4) as usize];
        let value = if next(3) == 0 {
            n_task += 1;
            let k = format!("t-{n_task}");
            sim.submit(c, vec![task(&k, &[])], &[&k]);
            fut(&k)
        } else {
            val("v")
        };
        let o = match next(16) {
            0 => CoordOp::VariableSet { name, value },
            1 => CoordOp::VariableGet { name, timeout_ms },
            2 => CoordOp::VariableDelete { name },
            3 => CoordOp::QueueCreate {
                name,
                maxsize: next(3),
            },
            4 => CoordOp::QueuePut {
                name,
                value,
                timeout_ms,
            },
            5 => CoordOp::QueueGet {
                name,
                count: next(3) as u32,
                timeout_ms,
            },
            6 => CoordOp::LockAcquire {
                name,
                holder: next(2),
                blocking: next(2) == 0,
                timeout_ms,
            },
            7 => CoordOp::LockRelease {
                name,
                holder: next(2),
            },
            8 => CoordOp::SemaphoreCreate {
                name,
                max_leases: 2,
            },
            9 => CoordOp::SemaphoreAcquire {
                name,
                lease: next(4),
                blocking: true,
                timeout_ms,
            },
            10 => CoordOp::SemaphoreRelease {
                name,
                lease: next(4),
            },
            11 => CoordOp::EventWait { name, timeout_ms },
            12 => [
                CoordOp::EventSet { name: name.clone() },
                CoordOp::EventClear { name },
            ][next(2) as usize]
                .clone(),
            13 => CoordOp::Subscribe {
                topic: name,
                subscriber: next(2),
            },
            14 => CoordOp::Publish {
                topic: name,
                msg: Payload::default(),
            },
            _ => CoordOp::DatasetPublish {
                name,
                value,
                overwrite: true,
            },
        };
        op(&mut sim, c, step, o);
        if next(4) == 0 {
            sim.client_msg(
                c,
                ToScheduler::Release {
                    keys: vec![wk(&format!("t-{n_task}"))],
                },
            );
        }
        match next(20) {
            0 => sim.drain(),
            1 => tick(&mut sim, Duration::from_millis(next(200))),
            2 if live.len() > 1 => {
                let i = next(live.len() as u64) as usize;
                let gone = live.swap_remove(i);
                sim.step(Event::ClientLeft { conn: gone });
                live.push(next_conn);
                sim.add_client(next_conn);
                next_conn += 1;
            }
            _ => {}
        }
    }
    // Empty every object, then everyone leaves: no key may stay.
    let c = live[0];
    for name in names {
        op(
            &mut sim,
            c,
            1 << 40,
            CoordOp::VariableDelete { name: s(name) },
        );
        op(
            &mut sim,
            c,
            1 << 40,
            CoordOp::QueueGet {
                name: s(name),
                count: 0,
                timeout_ms: None,
            },
        );
        op(
            &mut sim,
            c,
            1 << 40,
            CoordOp::DatasetUnpublish { name: s(name) },
        );
    }
    for c in live {
        sim.step(Event::ClientLeft { conn: c });
    }
    tick(&mut sim, Duration::from_secs(1));
    // Puts that waited may have entered the queues once room was made: empty them again.
    sim.add_client(99);
    for name in names {
        op(
            &mut sim,
            99,
            1,
            CoordOp::QueueGet {
                name: s(name),
                count: 0,
                timeout_ms: None,
            },
        );
    }
    sim.step(Event::ClientLeft { conn: 99 });
    sim.drain();
    assert_eq!(sim.s.n_tasks(), 0, "every key released");
}

/// A client releases a key while a reply handing it the same key is on its way: its `Hold`
/// claim (sent because it no longer held the key when the reply came) keeps it wanted.
#[test]
fn hold_reclaims_a_key_released_while_a_reply_was_in_flight() {
    let mut sim = Sim::new();
    sim.add_worker(10, "w", 1);
    sim.add_client(1);
    sim.submit(1, vec![task("a-1", &[])], &["a-1"]);
    sim.drain();
    op(
        &mut sim,
        1,
        1,
        CoordOp::VariableSet {
            name: s("v"),
            value: fut("a-1"),
        },
    );
    // The get is answered (handing a-1 over), then the release sent before the answer came.
    op(
        &mut sim,
        1,
        2,
        CoordOp::VariableGet {
            name: s("v"),
            timeout_ms: None,
        },
    );
    sim.client_msg(
        1,
        ToScheduler::Release {
            keys: vec![wk("a-1")],
        },
    );
    op(&mut sim, 1, 3, CoordOp::VariableDelete { name: s("v") });
    assert_eq!(sim.state("a-1"), None, "without the claim it is gone");
    // With the claim it stays.
    sim.submit(1, vec![task("b-1", &[])], &["b-1"]);
    sim.drain();
    op(
        &mut sim,
        1,
        4,
        CoordOp::VariableSet {
            name: s("v"),
            value: fut("b-1"),
        },
    );
    op(
        &mut sim,
        1,
        5,
        CoordOp::VariableGet {
            name: s("v"),
            timeout_ms: None,
        },
    );
    sim.client_msg(
        1,
        ToScheduler::Release {
            keys: vec![wk("b-1")],
        },
    );
    op(
        &mut sim,
        1,
        0,
        CoordOp::Hold {
            keys: vec![wk("b-1")],
        },
    );
    op(&mut sim, 1, 6, CoordOp::VariableDelete { name: s("v") });
    assert_eq!(sim.state("b-1"), Some(TState::Memory));
    // A claim on a key nobody holds any more fails that key, saying so.
    op(
        &mut sim,
        1,
        0,
        CoordOp::Hold {
            keys: vec![wk("a-1")],
        },
    );
    assert!(sim.clients[&1].erred.contains_key(&wk("a-1")));
}
