//! Graceful lifecycle with real processes: SIGTERM retires a worker without losing its
//! results (its nanny does not restart it), `Client::retire_workers`, `wait_for_workers`,
//! `replicate`, `rebalance`, the adaptive recommendation, `--death-timeout`, a worker
//! reconnecting to a scheduler restarted at the same address, and the scheduler's SIGTERM.
//! The `oxidask` binary is the scheduler; this test binary is the worker program (its `main`
//! runs a worker when started as `... worker ADDRESS`); the test process is the client.
//!
//! Runs without libtest (`harness = false`). Pass a substring to run matching tests only.

use std::process::Command;
use std::time::Duration;

use oxidask::distributed::{Client, Retire, ReturnWhen, SubmitOptions};

mod common;
use common::*;

// ---- operations the workers run --------------------------------------------------------

/// `n` floats, each `seed + i`.
#[oxidask::task]
fn block(seed: i64, n: i64) -> Vec<f64> {
    (0..n).map(|i| (seed + i) as f64).collect()
}

// ---- processes ---------------------------------------------------------------------------

fn scheduler(port: u16) -> (Proc, String) {
    start_scheduler(scheduler_command(port))
}

/// `this-test-binary worker ADDRESS ARGS...` (under a nanny unless ARGS say otherwise).
fn worker(address: &str, args: &[&str]) -> Proc {
    let mut cmd = worker_command(address);
    cmd.args(["--heartbeat-ms", "200", "--nthreads", "1"])
        .args(args);
    Proc::spawn(cmd)
}

/// Name → data address of the connected workers.
fn addresses(client: &Client) -> std::collections::BTreeMap<String, String> {
    client
        .summary()
        .unwrap()
        .workers
        .into_iter()
        .map(|w| (w.name, w.address))
        .collect()
}

fn on(worker: &str) -> SubmitOptions {
    SubmitOptions {
        workers: vec![worker.to_owned()],
        ..SubmitOptions::default()
    }
}

fn expected(seed: i64, n: i64) -> Vec<f64> {
    (0..n).map(|i| (seed + i) as f64).collect()
}

/// How many times the scheduler's story shows `key` computed (sent to memory by a worker's
/// result, not by a copy).
fn computed_times(client: &Client, key: &oxidask::Key) -> usize {
    client
        .story(key)
        .unwrap()
        .iter()
        .filter(|l| l.contains("processing") && l.contains("memory") && l.contains("task-finished"))
        .count()
}

const LONG: Duration = Duration::from_secs(60);

// ---- tests ---------------------------------------------------------------------------------

fn sigterm_retires_a_worker_without_losing_or_recomputing_its_results() {
    let (_s, address) = scheduler(0);
    let mut a = worker(&address, &["--name", "a"]); // under a nanny
    let _b = worker(&address, &["--name", "b", "--no-nanny"]);
    let client = Client::connect(&address).unwrap();
    client.wait_for_workers(2, LONG).unwrap();
    let futures: Vec<_> = (0..8)
        .map(|i| client.submit_with(&block(i * 10, 1000), on("a")).unwrap())
        .collect();
    client
        .wait(&futures, Some(LONG), ReturnWhen::AllCompleted)
        .unwrap();
    let names = addresses(&client);
    let keys: Vec<_> = futures.iter().map(|f| f.key()).collect();
    for holders in client.who_has(&keys).unwrap() {
        assert_eq!(holders, vec![names["a"].clone()]);
    }
    a.signal("TERM"); // the nanny forwards it
    assert_eq!(a.wait_exit(LONG), Some(0), "{}", a.log());
    assert!(a.count("closing gracefully") >= 1, "{}", a.log());
    assert_eq!(a.count("restarting worker"), 0, "{}", a.log());
    wait_until("a gone", LONG, || !addresses(&client).contains_key("a"));
    for holders in client.who_has(&keys).unwrap() {
        assert_eq!(holders, vec![names["b"].clone()]);
    }
    for (i, f) in futures.iter().enumerate() {
        assert_eq!(f.result().unwrap(), expected(i as i64 * 10, 1000));
        assert_eq!(
            computed_times(&client, &f.key()),
            1,
            "{:?}",
            client.story(&f.key())
        );
    }
}

fn client_retire_workers_moves_data_and_refuses_to_lose_it() {
    let (_s, address) = scheduler(0);
    let mut a = worker(&address, &["--name", "a"]);
    let b = worker(&address, &["--name", "b"]);
    let client = Client::connect(&address).unwrap();
    client.wait_for_workers(2, LONG).unwrap();
    let futures: Vec<_> = (0..4)
        .map(|i| client.submit_with(&block(i, 100), on("a")).unwrap())
        .collect();
    client
        .wait(&futures, Some(LONG), ReturnWhen::AllCompleted)
        .unwrap();
    let names = addresses(&client);
    let retired = client
        .retire_workers(Retire::Workers(vec!["a".into()]))
        .unwrap();
    assert_eq!(retired, vec![names["a"].clone()]);
    // The retired process exits cleanly and its nanny does not restart it.
    assert_eq!(a.wait_exit(LONG), Some(0), "{}", a.log());
    assert_eq!(a.count("restarting worker"), 0, "{}", a.log());
    let keys: Vec<_> = futures.iter().map(|f| f.key()).collect();
    for holders in client.who_has(&keys).unwrap() {
        assert_eq!(holders, vec![names["b"].clone()]);
    }
    // The last worker holds the only copies: retiring it fails and it keeps working.
    let e = client
        .retire_workers(Retire::Workers(vec![names["b"].clone()]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no other worker"), "{e}");
    for (i, f) in futures.iter().enumerate() {
        assert_eq!(f.result().unwrap(), expected(i as i64, 100));
        assert_eq!(computed_times(&client, &f.key()), 1);
    }
    assert_eq!(
        client.submit(&block(5, 3)).unwrap().result().unwrap(),
        expected(5, 3)
    );
    drop(b);
}

fn wait_for_workers_replicate_rebalance_and_adaptive_target() {
    let (_s, address) = scheduler(0);
    let client = Client::connect(&address).unwrap();
    let _ws: Vec<Proc> = ["a", "b", "c"]
        .iter()
        .map(|n| worker(&address, &["--name", n, "--no-nanny"]))
        .collect();
    client.wait_for_workers(3, LONG).unwrap();
    assert_eq!(client.summary().unwrap().workers.len(), 3);
    // Six blocks of 80 kB, all on a.
    let futures: Vec<_> = (0..6)
        .map(|i| {
            client
                .submit_with(&block(i * 1000, 10_000), on("a"))
                .unwrap()
        })
        .collect();
    client
        .wait(&futures, Some(LONG), ReturnWhen::AllCompleted)
        .unwrap();
    let keys: Vec<_> = futures.iter().map(|f| f.key()).collect();
    // Idle, with data on a only: b and c could go, a keeps the data.
    let rec = client.adaptive_target(Duration::from_secs(5)).unwrap();
    let names = addresses(&client);
    assert!(rec.target < 3, "{rec:?}");
    assert!(!rec.workers_to_close.contains(&names["a"]), "{rec:?}");
    client.rebalance(None).unwrap();
    let summary = client.summary().unwrap();
    for w in &summary.workers {
        assert_eq!(w.keys, 2, "{summary:?}");
    }
    for holders in client.who_has(&keys).unwrap() {
        assert_eq!(holders.len(), 1);
    }
    client.replicate(&keys[..1], None).unwrap();
    let mut holders = client.who_has(&keys[..1]).unwrap().remove(0);
    holders.sort();
    let mut all: Vec<String> = names.values().cloned().collect();
    all.sort();
    assert_eq!(holders, all);
    client.replicate(&keys[..1], Some(1)).unwrap();
    assert_eq!(client.who_has(&keys[..1]).unwrap()[0].len(), 1);
    for (i, f) in futures.iter().enumerate() {
        assert_eq!(f.result().unwrap(), expected(i as i64 * 1000, 10_000));
        assert_eq!(computed_times(&client, &f.key()), 1);
    }
    // A key that is not computed cannot be replicated.
    let e = client
        .replicate(
            &[oxidask::Key::new("nothing", oxidask::Token::from_u128(7))],
            None,
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("not in memory"), "{e}");
}

fn death_timeout_exits_non_zero_after_logged_attempts() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut w = worker(
        &format!("tcp://127.0.0.1:{port}"),
        &["--no-nanny", "--death-timeout", "1500ms"],
    );
    assert_eq!(w.wait_exit(LONG), Some(1), "{}", w.log());
    assert!(w.count("retrying in") >= 2, "{}", w.log());
    assert!(w.count("--death-timeout") >= 1, "{}", w.log());
    // Without the flag: `distributed.comm.timeouts.connect`.
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["worker", &format!("tcp://127.0.0.1:{port}"), "--no-nanny"])
        .env("OXIDASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT", "500ms");
    let mut w = Proc::spawn(cmd);
    assert_eq!(w.wait_exit(LONG), Some(1), "{}", w.log());
    assert!(w.log().contains("giving up after 0.5 s"), "{}", w.log());
}

fn a_worker_reconnects_to_a_restarted_scheduler_and_sigterm_stops_both() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (mut s1, address) = scheduler(port);
    let mut w = worker(
        &address,
        &["--name", "r", "--no-nanny", "--death-timeout", "30s"],
    );
    {
        let client = Client::connect(&address).unwrap();
        client.wait_for_workers(1, LONG).unwrap();
        let futures: Vec<_> = (0..3)
            .map(|i| client.submit(&block(i, 10)).unwrap())
            .collect();
        client
            .wait(&futures, Some(LONG), ReturnWhen::AllCompleted)
            .unwrap();
        s1.signal("KILL");
        let _ = s1.wait_exit(LONG);
    }
    w.wait_for_line("reconnecting", LONG);
    let (mut s2, address2) = scheduler(port);
    assert_eq!(address2, address);
    w.wait_for_line("registered again", LONG);
    // It reported its three results; the new scheduler knows none of them and frees them.
    assert!(w.log().contains("it holds 3 result(s)"), "{}", w.log());
    let client = Client::connect(&address).unwrap();
    client.wait_for_workers(1, LONG).unwrap();
    wait_until("the unknown results freed", LONG, || {
        client.summary().unwrap().workers[0].keys == 0
    });
    assert_eq!(
        client.submit(&block(7, 2)).unwrap().result().unwrap(),
        expected(7, 2)
    );
    drop(client);
    // SIGTERM: the scheduler tells the worker to stop and exits cleanly; so does the worker.
    s2.signal("TERM");
    assert_eq!(s2.wait_exit(LONG), Some(0), "{}", s2.log());
    assert_eq!(w.wait_exit(LONG), Some(0), "{}", w.log());
}

fn sigterm_while_the_scheduler_is_gone_stops_at_once() {
    let (mut s, address) = scheduler(0);
    let mut w = worker(
        &address,
        &["--name", "g", "--no-nanny", "--death-timeout", "60s"],
    );
    Client::connect(&address)
        .unwrap()
        .wait_for_workers(1, LONG)
        .unwrap();
    s.signal("KILL");
    let _ = s.wait_exit(LONG);
    w.wait_for_line("reconnecting", LONG);
    w.signal("TERM");
    // Exit 0 (stopped), not 1 (gave up after the death timeout).
    assert_eq!(w.wait_exit(LONG), Some(0), "{}", w.log());
    assert!(
        w.log().contains("not connected to a scheduler"),
        "{}",
        w.log()
    );
}

/// `THP_enabled` of a process's `/proc/PID/status` (0: transparent huge pages off for it).
fn thp_enabled(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("THP_enabled:"))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| panic!("no THP_enabled line in /proc/{pid}/status"))
}

/// The `oxidask` binary's scheduler and workers (a nanny too; its workers inherit) run without
/// transparent huge pages (page zeroing cost set_index half its time), unless
/// `MIMALLOC_ALLOW_THP` says otherwise.
fn server_processes_turn_transparent_huge_pages_off() {
    let ours = thp_enabled(std::process::id());
    let (s, address) = scheduler(0);
    assert_eq!(thp_enabled(s.child.id()), "0");
    let oxidask_worker = |extra: &[(&str, &str)], args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_oxidask"));
        cmd.args(["worker", &address, "--nthreads", "1"]).args(args);
        cmd.envs(extra.iter().copied());
        Proc::spawn(cmd)
    };
    let plain = oxidask_worker(&[], &["--name", "plain", "--no-nanny"]);
    let kept = oxidask_worker(
        &[("MIMALLOC_ALLOW_THP", "1")],
        &["--name", "kept", "--no-nanny"],
    );
    let nanny = oxidask_worker(&[], &["--name", "nannied"]);
    // Registered: past start-up, where the setting is made.
    for w in [&plain, &kept, &nanny] {
        w.wait_for_line("registered with the scheduler", LONG);
    }
    assert_eq!(thp_enabled(plain.child.id()), "0");
    assert_eq!(thp_enabled(nanny.child.id()), "0");
    // The environment wins: the process keeps what it inherited.
    assert_eq!(thp_enabled(kept.child.id()), ours);
}

const TESTS: &[Test] = &[
    (
        "sigterm_retires_a_worker_without_losing_or_recomputing_its_results",
        sigterm_retires_a_worker_without_losing_or_recomputing_its_results,
    ),
    (
        "client_retire_workers_moves_data_and_refuses_to_lose_it",
        client_retire_workers_moves_data_and_refuses_to_lose_it,
    ),
    (
        "wait_for_workers_replicate_rebalance_and_adaptive_target",
        wait_for_workers_replicate_rebalance_and_adaptive_target,
    ),
    (
        "death_timeout_exits_non_zero_after_logged_attempts",
        death_timeout_exits_non_zero_after_logged_attempts,
    ),
    (
        "a_worker_reconnects_to_a_restarted_scheduler_and_sigterm_stops_both",
        a_worker_reconnects_to_a_restarted_scheduler_and_sigterm_stops_both,
    ),
    (
        "sigterm_while_the_scheduler_is_gone_stops_at_once",
        sigterm_while_the_scheduler_is_gone_stops_at_once,
    ),
    (
        "server_processes_turn_transparent_huge_pages_off",
        server_processes_turn_transparent_huge_pages_off,
    ),
];

fn main() {
    oxidask::distributed::run_if_worker();
    run_tests(TESTS);
}
