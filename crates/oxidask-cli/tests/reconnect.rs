//! Client reconnection with real processes: the client reaches the scheduler through a TCP
//! proxy this test controls (std threads). Cutting the proxy's connections mid-graph, the
//! client reconnects, keeps its futures, sends what it submitted meanwhile, and every result
//! is exact; cut for longer than a short grace, its futures fail with an error naming how
//! long the scheduler was unreachable, and the scheduler has released its keys. A scheduler
//! killed and started again at the same address (no journal): the client keeps trying
//! through refused connections and its pending graph is computed on the new scheduler,
//! including a task the worker still runs for the old scheduler when the new one assigns it
//! (held running by a file gate until then: the ordering that once hung CI).
//! The `oxidask` binary is the scheduler; this test binary is the worker program.
//!
//! Runs without libtest (`harness = false`). Pass a substring to run matching tests only.

use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oxidask::distributed::Client;

mod common;
use common::*;
use oxidask::Delayed;

#[oxidask::task]
fn leaf(x: i64, micros: u64) -> i64 {
    std::thread::sleep(Duration::from_micros(micros));
    x + 1
}

#[oxidask::task]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

/// Creates the file `started`, waits until the file `go` exists (at most 120 s), and
/// returns `x + 1`: a task the test keeps running while it restarts the scheduler.
#[oxidask::task]
fn gated(x: i64, started: String, go: String) -> i64 {
    std::fs::write(&started, b"").expect("the started marker");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !std::path::Path::new(&go).exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    x + 1
}

/// A path in the temporary directory for this run's `name` (removed if left over).
fn temp_path(name: &str) -> String {
    let p = std::env::temp_dir().join(format!(
        "oxidask-reconnect-test-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&p);
    p.to_string_lossy().into_owned()
}

/// A pairwise sum over `leaves` leaves (about `2 * leaves` tasks) of `seed + i + 1`.
fn tree(seed: i64, leaves: i64, micros: u64) -> Delayed<i64> {
    let mut level: Vec<Delayed<i64>> = (0..leaves).map(|i| leaf(seed + i, micros)).collect();
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(2));
        let mut it = level.into_iter();
        while let Some(a) = it.next() {
            next.push(match it.next() {
                Some(b) => add(a, b),
                None => a,
            });
        }
        level = next;
    }
    level.pop().unwrap()
}

fn tree_sum(seed: i64, leaves: i64) -> i64 {
    (0..leaves).map(|i| seed + i + 1).sum()
}

// ---- the proxy -------------------------------------------------------------------------------

/// Forwards connections to `target`; can cut them all and refuse new ones.
struct Proxy {
    address: String,
    refuse: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    live: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(target: &str) -> Proxy {
        let target = target.trim_start_matches("tcp://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = format!("tcp://{}", listener.local_addr().unwrap());
        let refuse = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let live: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (r, a, l) = (refuse.clone(), accepted.clone(), live.clone());
        std::thread::spawn(move || {
            for down in listener.incoming() {
                let Ok(down) = down else { continue };
                if r.load(Ordering::SeqCst) {
                    let _ = down.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(up) = TcpStream::connect(&target) else {
                    continue;
                };
                a.fetch_add(1, Ordering::SeqCst);
                let mut live = l.lock().unwrap();
                live.push(down.try_clone().unwrap());
                live.push(up.try_clone().unwrap());
                for (mut from, mut to) in [
                    (down.try_clone().unwrap(), up.try_clone().unwrap()),
                    (up, down),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Both);
                        let _ = from.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Proxy {
            address,
            refuse,
            accepted,
            live,
        }
    }

    /// Closes every forwarded connection (both sides).
    fn cut(&self) {
        for s in self.live.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn refuse(&self, on: bool) {
        self.refuse.store(on, Ordering::SeqCst);
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

// ---- processes -------------------------------------------------------------------------------

/// A scheduler whose client grace is `grace`.
fn scheduler(grace: &str) -> (Proc, String) {
    scheduler_at(0, grace)
}

/// A scheduler on `port` (0: any) whose client grace is `grace`.
fn scheduler_at(port: u16, grace: &str) -> (Proc, String) {
    let mut cmd = scheduler_command(port);
    cmd.env(
        "OXIDASK_DISTRIBUTED__SCHEDULER__CLIENT_RECONNECT_GRACE",
        grace,
    );
    start_scheduler(cmd)
}

fn worker(address: &str, name: &str) -> Proc {
    let mut cmd = worker_command(address);
    cmd.args(["--no-nanny", "--nthreads", "2", "--name", name]);
    Proc::spawn(cmd)
}

const LONG: Duration = Duration::from_secs(120);

// ---- tests -----------------------------------------------------------------------------------

fn a_cut_mid_graph_is_survived_with_exact_results() {
    let (_s, address) = scheduler("30s");
    let _w = [worker(&address, "a"), worker(&address, "b")];
    let proxy = Proxy::start(&address);
    let client = Client::builder()
        .address(proxy.address.clone())
        .reconnect_grace(Duration::from_secs(30))
        .set_as_default(false)
        .connect()
        .unwrap();
    let observer = Client::builder()
        .address(address.clone())
        .set_as_default(false)
        .connect()
        .unwrap();
    client.wait_for_workers(2, LONG).unwrap();
    // About 1000 tasks, 2 ms per leaf on 4 threads.
    let first = client.submit(&tree(0, 512, 2000)).unwrap();
    wait_until("the graph to be running", LONG, || {
        observer
            .summary()
            .unwrap()
            .workers
            .iter()
            .any(|w| w.keys > 0)
    });
    assert!(!first.done(), "cut while the graph runs");
    proxy.refuse(true);
    proxy.cut();
    wait_until("the scheduler to see the client go", LONG, || {
        observer.summary().unwrap().clients == 1
    });
    // Submitted while the connection is down: sent after reconnecting.
    let second = client.submit(&tree(1000, 256, 100)).unwrap();
    let progress = observer.summary().unwrap().tasks;
    assert!(
        progress > 0,
        "the scheduler keeps the graph while the client is away"
    );
    proxy.refuse(false);
    assert_eq!(
        client.gather(std::slice::from_ref(&first)).unwrap(),
        vec![tree_sum(0, 512)]
    );
    assert_eq!(client.gather(&[second]).unwrap(), vec![tree_sum(1000, 256)]);
    assert!(proxy.accepted() >= 2, "the client reconnected");
    // A second cut after everything finished: the futures stay usable.
    proxy.cut();
    assert_eq!(
        client.gather(std::slice::from_ref(&first)).unwrap(),
        vec![tree_sum(0, 512)]
    );
    wait_until("the client to be back", LONG, || {
        observer.summary().unwrap().clients == 2
    });
}

fn a_cut_longer_than_the_grace_fails_clearly_and_releases_the_keys() {
    let (_s, address) = scheduler("2s");
    let _w = worker(&address, "a");
    let proxy = Proxy::start(&address);
    let client = Client::builder()
        .address(proxy.address.clone())
        .reconnect_grace(Duration::from_secs(2))
        .set_as_default(false)
        .connect()
        .unwrap();
    let observer = Client::builder()
        .address(address.clone())
        .set_as_default(false)
        .connect()
        .unwrap();
    client.wait_for_workers(1, LONG).unwrap();
    let done = client.submit(&leaf(1, 0)).unwrap();
    assert_eq!(client.gather(&[done]).unwrap(), vec![2]);
    let slow = client.submit(&tree(0, 64, 200_000)).unwrap();
    wait_until("tasks on the scheduler", LONG, || {
        observer.summary().unwrap().tasks > 1
    });
    proxy.refuse(true);
    proxy.cut();
    let e = client.gather(&[slow]).unwrap_err().to_string();
    assert!(
        e.contains("unreachable for 2 s") && e.contains(&proxy.address.replace("tcp://", "")),
        "{e}"
    );
    assert!(client.is_closed());
    // The scheduler released everything the client held once the grace ended.
    wait_until("the keys to be released", LONG, || {
        observer.summary().unwrap().tasks == 0
    });
}

fn a_client_outlives_a_scheduler_restarted_at_the_same_address() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (mut s1, address) = scheduler_at(port, "30s");
    let _w = worker(&address, "a");
    let client = Client::builder()
        .address(address.clone())
        .reconnect_grace(Duration::from_secs(30))
        .set_as_default(false)
        .connect()
        .unwrap();
    client.wait_for_workers(1, LONG).unwrap();
    let done = client.submit(&leaf(1, 0)).unwrap();
    assert_eq!(client.gather(std::slice::from_ref(&done)).unwrap(), vec![2]);
    // One input of the graph runs on the worker until the test lets it finish.
    let (started, go) = (temp_path("started"), temp_path("go"));
    let held = gated(1000, started.clone(), go.clone());
    let running = client
        .submit(&add(tree(0, 64, 20_000), held.clone()))
        .unwrap();
    wait_until("the gated task to run on the worker", LONG, || {
        std::path::Path::new(&started).exists()
    });
    assert!(!running.done());
    // SIGKILL: no journal, so the new scheduler knows nothing; connections are refused
    // until it listens, and the client and the worker keep trying.
    let _ = s1.child.kill();
    let _ = s1.child.wait();
    let (_s2, address2) = scheduler_at(port, "30s");
    assert_eq!(address2, address);
    // The graph still pending is sent again; the new scheduler assigns the gated task to the
    // worker, where it still runs for the old scheduler (the ordering that hung: the worker
    // ignored the assignment and then discarded the result as the old scheduler's).
    wait_until("the new scheduler to assign the gated task", LONG, || {
        client
            .story(&held.key())
            .is_ok_and(|s| s.iter().any(|l| l.contains("-> processing")))
    });
    std::fs::write(&go, b"go").unwrap();
    assert_eq!(
        running.result_timeout(Some(LONG)).unwrap(),
        tree_sum(0, 64) + 1001
    );
    // A result the old scheduler held is gone with it: asked again, it fails clearly.
    let e = client.gather(&[done]).unwrap_err().to_string();
    assert!(e.contains("not known to the scheduler"), "{e}");
    for p in [started, go] {
        let _ = std::fs::remove_file(p);
    }
}

/// The same worker path without a reconnection: a running task released by its client (the
/// worker is told to free it and will discard its result) and submitted again before it
/// finishes is assigned to the same worker, which takes the running task back.
fn a_task_released_and_submitted_again_while_it_runs_completes() {
    let (_s, address) = scheduler("30s");
    let _w = worker(&address, "a");
    let client = Client::builder()
        .address(address.clone())
        .set_as_default(false)
        .connect()
        .unwrap();
    client.wait_for_workers(1, LONG).unwrap();
    let (started, go) = (temp_path("resubmit-started"), temp_path("resubmit-go"));
    let g = gated(7, started.clone(), go.clone());
    let first = client.submit(&g).unwrap();
    wait_until("the gated task to run on the worker", LONG, || {
        std::path::Path::new(&started).exists()
    });
    drop(first);
    wait_until("the scheduler to forget it", LONG, || {
        client.summary().unwrap().tasks == 0
    });
    let again = client.submit(&g).unwrap();
    wait_until("the task to be assigned again", LONG, || {
        client.summary().unwrap().workers[0].processing == 1
    });
    std::fs::write(&go, b"go").unwrap();
    assert_eq!(again.result_timeout(Some(LONG)).unwrap(), 8);
    for p in [started, go] {
        let _ = std::fs::remove_file(p);
    }
}

const TESTS: &[Test] = &[
    (
        "a_cut_mid_graph_is_survived_with_exact_results",
        a_cut_mid_graph_is_survived_with_exact_results,
    ),
    (
        "a_cut_longer_than_the_grace_fails_clearly_and_releases_the_keys",
        a_cut_longer_than_the_grace_fails_clearly_and_releases_the_keys,
    ),
    (
        "a_client_outlives_a_scheduler_restarted_at_the_same_address",
        a_client_outlives_a_scheduler_restarted_at_the_same_address,
    ),
    (
        "a_task_released_and_submitted_again_while_it_runs_completes",
        a_task_released_and_submitted_again_while_it_runs_completes,
    ),
];

fn main() {
    oxidask::distributed::run_if_worker();
    run_tests(TESTS);
}
