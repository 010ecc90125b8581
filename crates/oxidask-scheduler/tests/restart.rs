//! `Client::restart` in the state machine: every client's keys cancelled, every worker told to
//! restart and removed, the reply counting them; the cluster works again once workers rejoin.

mod common;

use common::*;
use oxidask_protocol::{ErrorKind, ToClient, ToScheduler};
use oxidask_scheduler::TState;

#[test]
fn restart_cancels_every_future_removes_the_workers_and_counts_them() {
    let mut sim = Sim::new();
    sim.add_worker(1, "w1", 1);
    sim.add_worker(2, "w2", 1);
    sim.add_client(10);
    sim.add_client(11);
    sim.submit(10, vec![task("a-0", &[])], &["a-0"]);
    sim.drain();
    sim.submit(
        11,
        vec![task("b-0", &["a-0"]), task("c-0", &[])],
        &["b-0", "c-0"],
    );
    sim.client_msg(
        11,
        ToScheduler::Pin {
            keys: vec![wk("c-0")],
        },
    );
    sim.client_msg(10, ToScheduler::Restart { request: 7 });
    // Both workers were told, then closed; none is left.
    assert_eq!(sim.closed.len(), 2, "{:?}", sim.closed);
    assert!(sim.s.summary().workers.is_empty());
    // Every client's futures are cancelled, and the scheduler holds no task.
    for (client, keys) in [(10, vec!["a-0"]), (11, vec!["b-0", "c-0"])] {
        for k in keys {
            let e = &sim.clients[&client].erred[&wk(k)];
            assert_eq!(e.kind, ErrorKind::Cancelled, "{k}");
            assert!(e.message.contains("restarted"), "{}", e.message);
            assert_eq!(sim.state(k), None, "{k} is forgotten");
        }
    }
    assert!(sim.clients[&10].replies.iter().any(|r| matches!(
        r,
        ToClient::Restarted {
            request: 7,
            workers: 2
        }
    )));
    // Their connections then close (the server reports it): nothing more happens.
    sim.kill_worker(1);
    sim.kill_worker(2);
    // Fresh workers join and the cluster computes again.
    sim.add_worker(3, "w1", 1);
    sim.add_worker(4, "w2", 1);
    sim.submit(10, vec![task("a-0", &[])], &["a-0"]);
    sim.drain();
    assert_eq!(sim.state("a-0"), Some(TState::Memory));
}
