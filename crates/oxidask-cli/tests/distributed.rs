//! The distributed runtime with real processes: the `oxidask` binary as the scheduler, this
//! test binary as the workers (it runs as a worker when started as `... worker ADDRESS`, so the
//! workers know the operations defined here), and the test process as the client.
//!
//! Runs without libtest (`harness = false`): `main` must first give the worker processes
//! their entry point. Pass a substring to run matching tests only.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use oxidask::distributed::{
    as_completed, get_client, Client, ClientError, ReturnWhen, Status, SubmitOptions,
};
use oxidask::prelude::*;

mod common;
use common::*;

// ---- operations the workers run --------------------------------------------------------

#[oxidask::task]
fn inc(x: i64) -> i64 {
    x + 1
}

#[oxidask::task]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[oxidask::task]
fn total(xs: &[i64]) -> i64 {
    xs.iter().sum()
}

#[oxidask::task]
fn slow_inc(x: i64, micros: u64) -> i64 {
    std::thread::sleep(Duration::from_micros(micros));
    x + 1
}

#[derive(Debug)]
struct Cause;
impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the disk was full")
    }
}
impl std::error::Error for Cause {}

#[derive(Debug)]
struct Failure(Cause);
impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "could not write the partition")
    }
}
impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[oxidask::task]
fn must_be_positive(x: i64) -> Result<i64, Failure> {
    if x > 0 {
        Ok(x)
    } else {
        Err(Failure(Cause))
    }
}

/// Fails until it has been attempted `fails + 1` times (attempts counted in a file).
#[oxidask::task(pure = false)]
fn flaky(counter: String, fails: i64) -> Result<i64, String> {
    let n: i64 = std::fs::read_to_string(&counter)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
        + 1;
    std::fs::write(&counter, n.to_string()).map_err(|e| e.to_string())?;
    if n <= fails {
        Err(format!("attempt {n} failed"))
    } else {
        Ok(n)
    }
}

#[oxidask::task]
fn worker_name(_x: i64) -> String {
    oxidask::distributed::worker_context().map_or_else(|| "not on a worker".into(), |c| c.name)
}

#[oxidask::task]
fn crash(_x: i64) -> i64 {
    std::process::abort()
}

/// Submits `n` tasks from inside a task and waits for them.
#[oxidask::task]
fn fan_out(n: i64) -> Result<i64, String> {
    let client = get_client().map_err(|e| e.to_string())?;
    let futures = client.map(0..n, inc).map_err(|e| e.to_string())?;
    let values = client.gather(&futures).map_err(|e| e.to_string())?;
    Ok(values.into_iter().sum())
}

// ---- cluster of real processes -----------------------------------------------------------

struct Cluster {
    scheduler: Proc,
    workers: Vec<(String, Proc)>,
    address: String,
}

impl Cluster {
    fn start(scheduler_args: &[&str], workers: &[(&str, &[&str])]) -> Cluster {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_oxidask"));
        cmd.args(["scheduler", "--port", "0"]).args(scheduler_args);
        let scheduler = Proc::spawn(cmd);
        let line = scheduler.wait_for_line("listening at", Duration::from_secs(20));
        let address = line.rsplit(' ').next().unwrap().to_owned();
        let mut c = Cluster {
            scheduler,
            workers: Vec::new(),
            address,
        };
        for (name, args) in workers {
            c.add_worker(name, args);
        }
        c
    }

    fn add_worker(&mut self, name: &str, args: &[&str]) {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "worker",
            &self.address,
            "--name",
            name,
            "--heartbeat-ms",
            "200",
        ])
        .args(args);
        let p = Proc::spawn(cmd);
        p.wait_for_line("connected to the scheduler", Duration::from_secs(20));
        self.workers.push((name.to_owned(), p));
    }

    fn client(&self) -> Client {
        Client::connect(&self.address).expect("connect")
    }

    fn kill_worker(&mut self, name: &str) {
        let i = self.workers.iter().position(|(n, _)| n == name).unwrap();
        let (_, mut p) = self.workers.remove(i);
        p.child.kill().unwrap(); // SIGKILL
        let _ = p.child.wait();
    }

    fn scheduler_port(&self) -> String {
        self.address.trim_start_matches("tcp://").to_owned()
    }
}

fn two_workers() -> Cluster {
    Cluster::start(
        &[],
        &[("w1", &["--nthreads", "1"]), ("w2", &["--nthreads", "1"])],
    )
}

// ---- tests ---------------------------------------------------------------------------------

/// GET `path` from `host:port` over plain HTTP/1.1; returns (status line, body).
fn http_get(host: &str, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(host).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or("").to_owned(),
        body.to_owned(),
    )
}

/// The value of one Prometheus sample (`name{labels}`), which must be there.
fn metric(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {sample} in\n{text}"))
}

fn each_worker_serves_its_own_metrics() {
    let cluster = two_workers();
    let hosts: Vec<String> = cluster
        .workers
        .iter()
        .map(|(_, p)| {
            let line = p.wait_for_line("metrics at http://", Duration::from_secs(5));
            let link = line.rsplit("metrics at http://").next().unwrap();
            link.trim_end_matches("/metrics").to_owned()
        })
        .collect();
    let client = cluster.client();
    let futures = client.map(0..40i64, inc).unwrap();
    // One task needs them all: the other worker's results travel.
    let sum = client.submit(&total(&futures[..])).unwrap();
    assert_eq!(sum.result().unwrap(), (1..=40).sum::<i64>());
    let bad = client.submit(&must_be_positive(-1)).unwrap();
    assert!(bad.result().is_err());
    let texts: Vec<String> = hosts
        .iter()
        .map(|h| {
            let (status, body) = http_get(h, "/metrics");
            assert!(status.contains("200"), "{status}");
            body
        })
        .collect();
    let finished: f64 = texts
        .iter()
        .map(|t| metric(t, "oxidask_worker_tasks_total{outcome=\"finished\"}"))
        .sum();
    assert_eq!(finished, 41.0, "40 incs and the total");
    let failed: f64 = texts
        .iter()
        .map(|t| metric(t, "oxidask_worker_tasks_total{outcome=\"failed\"}"))
        .sum();
    assert_eq!(failed, 1.0);
    let fetched: f64 = texts
        .iter()
        .map(|t| metric(t, "dask_worker_transfer_incoming_bytes_total"))
        .sum();
    assert!(
        fetched > 0.0,
        "the total's worker fetched the other's results"
    );
    for t in &texts {
        assert_eq!(metric(t, "dask_worker_threads"), 1.0);
        // The futures are held: results in memory on the workers.
        assert!(metric(t, "process_resident_memory_bytes") > 0.0);
        for line in t.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "bad line {line}");
        }
    }
    let held: f64 = texts
        .iter()
        .map(|t| metric(t, "dask_worker_tasks{state=\"memory\"}"))
        .sum();
    assert!(held >= 41.0, "{held}");
    // Anything else is refused without harm.
    assert!(http_get(&hosts[0], "/nope").0.contains("404"));
    let mut s = TcpStream::connect(&hosts[0]).unwrap();
    s.write_all(&[0xff; 20_000]).unwrap_or(());
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert_eq!(http_get(&hosts[0], "/health").1, "ok\n");
    drop(futures);
}

fn delayed_graphs_compute_on_the_cluster() {
    let cluster = two_workers();
    let _client = cluster.client(); // the default scheduler from now on
    let parts: Vec<Delayed<i64>> = (0..100).map(|i| add(inc(i), inc(i * 2))).collect();
    let z = total(parts);
    let expected: i64 = (0..100).map(|i| (i + 1) + (i * 2 + 1)).sum();
    assert_eq!(z.compute().unwrap(), expected);
    // Several collections over one merged graph, shared parts once.
    let a = inc(41);
    let b = add(a.clone(), 1);
    assert_eq!(oxidask::compute((&a, &b)).unwrap(), (42, 43));
    // Closures cannot travel: a clear error saying how to fix it.
    let c = a.map(|x| x * 2);
    let e = c.compute().unwrap_err().to_string();
    assert!(
        e.contains("closure") && e.contains("#[oxidask::task]"),
        "{e}"
    );
}

fn futures_submit_map_gather_and_pass_as_arguments() {
    let cluster = two_workers();
    let client = cluster.client();
    let futures = client.map(0..1000i64, inc).unwrap();
    let values = client.gather(&futures).unwrap();
    assert_eq!(values, (1..=1000).collect::<Vec<i64>>());
    let s = client.submit(&total(&futures)).unwrap();
    assert_eq!(s.result().unwrap(), (1..=1000).sum::<i64>());
    let y = client.submit(&add(&futures[0], &futures[9])).unwrap();
    assert_eq!(y.result().unwrap(), 11);
    // The same call submitted twice is one key, computed once.
    let again = client.submit(&inc(0)).unwrap();
    assert_eq!(again.key(), futures[0].key());
    // Both workers took part.
    let names: Vec<String> = client
        .gather(&client.map(0..50i64, worker_name).unwrap())
        .unwrap();
    assert!(
        names.contains(&"w1".to_string()) && names.contains(&"w2".to_string()),
        "{names:?}"
    );
    let summary = client.summary().unwrap();
    assert_eq!(summary.workers.len(), 2);
    assert_eq!(summary.workers.iter().map(|w| w.nthreads).sum::<u32>(), 2);
    assert!(summary.workers.iter().all(|w| w.memory_limit > 0));
}

fn wait_as_completed_cancel_and_fire_and_forget() {
    let cluster = two_workers();
    let client = cluster.client();
    // Completion order, not submission order (the 300 ms task is stolen by the idle worker
    // if it was placed behind the 1 s one).
    let durations = [1_000_000u64, 1_000, 300_000];
    let order: Vec<i64> = as_completed(client.map(durations, |m| slow_inc(m as i64, m)).unwrap())
        .map(|f| f.unwrap().result().unwrap())
        .collect();
    assert_eq!(order, vec![1_001, 300_001, 1_000_001]);
    let slow = client.submit(&slow_inc(1, 2_000_000)).unwrap();
    let fast = client.submit(&slow_inc(2, 1_000)).unwrap();
    let both = vec![slow.clone(), fast.clone()];
    let r = client
        .wait(
            &both,
            Some(Duration::from_secs(20)),
            ReturnWhen::FirstCompleted,
        )
        .unwrap();
    assert_eq!(r.done, vec![1], "{r:?}");
    let e = client
        .wait(
            &both,
            Some(Duration::from_millis(50)),
            ReturnWhen::AllCompleted,
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("timed out"), "{e}");
    slow.cancel().unwrap();
    assert_eq!(slow.status(), Status::Cancelled);
    let e = slow.result().unwrap_err().to_string();
    assert!(e.contains("cancelled"), "{e}");
    // Fire and forget: runs although every handle is dropped.
    let dir = tempdir();
    let counter = format!("{dir}/fired");
    let f = client.submit(&flaky(counter.clone(), 0)).unwrap();
    client.fire_and_forget(std::slice::from_ref(&f)).unwrap();
    drop(f);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(&counter).is_err() {
        assert!(
            Instant::now() < deadline,
            "the fire-and-forget task never ran"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn scatter_and_broadcast() {
    let cluster = two_workers();
    let client = cluster.client();
    let data = client.scatter(vec![10i64, 20, 30], false).unwrap();
    assert_eq!(client.gather(&data).unwrap(), vec![10, 20, 30]);
    let s = client.submit(&total(&data)).unwrap();
    assert_eq!(s.result().unwrap(), 60);
    let b = client.scatter(vec![vec![1.5f64; 1000]], true).unwrap();
    let summary = client.summary().unwrap();
    assert!(
        summary.workers.iter().all(|w| w.keys >= 1),
        "broadcast reached every worker: {summary:?}"
    );
    assert_eq!(b[0].result().unwrap().len(), 1000);
}

fn tasks_submit_tasks_without_deadlocking_their_worker() {
    // One thread per worker: a task waiting on its own subtasks must give up its thread.
    let cluster = two_workers();
    let client = cluster.client();
    let outer = client.map([10i64, 20, 30], fan_out).unwrap();
    let sums = client.gather(&outer).unwrap();
    assert_eq!(sums, vec![55, 210, 465]);
}

fn task_errors_reach_the_client_with_their_cause_chain_and_retries_rerun() {
    let cluster = two_workers();
    let client = cluster.client();
    let bad = client.submit(&must_be_positive(-1)).unwrap();
    let dependent = client.submit(&inc(must_be_positive(-1))).unwrap();
    let e = bad.result().unwrap_err();
    let te = e.task_error().expect("a task error");
    assert_eq!(te.key, bad.key());
    let text = format!("{e}");
    assert!(text.contains("could not write the partition"), "{text}");
    assert!(
        te.failure
            .causes()
            .iter()
            .any(|c| c.contains("disk was full")),
        "{te:?}"
    );
    let e = dependent.result().unwrap_err();
    assert_eq!(
        e.task_error().unwrap().key,
        bad.key(),
        "the dependent names the failed task"
    );
    assert_eq!(dependent.status(), Status::Error);

    let dir = tempdir();
    let ok = client
        .submit_with(
            &flaky(format!("{dir}/a"), 2),
            SubmitOptions {
                retries: 2,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(ok.result().unwrap(), 3, "third attempt succeeds");
    let failing = client
        .submit_with(
            &flaky(format!("{dir}/b"), 5),
            SubmitOptions {
                retries: 1,
                ..Default::default()
            },
        )
        .unwrap();
    let e = failing.result().unwrap_err().to_string();
    assert!(e.contains("attempt 2 failed"), "{e}");
}

fn a_worker_killed_mid_graph_loses_nothing() {
    let mut cluster = Cluster::start(
        &[],
        &[
            ("w1", &["--nthreads", "1"]),
            ("w2", &["--nthreads", "1"]),
            ("w3", &["--nthreads", "1"]),
        ],
    );
    let client = cluster.client();
    // 20 000 leaves of 100 µs each, summed by a two-level tree: 20 202 tasks.
    let leaves: Vec<Delayed<i64>> = (0..20_000).map(|i| slow_inc(i, 100)).collect();
    let groups: Vec<Delayed<i64>> = leaves.chunks(100).map(|c| total(c.to_vec())).collect();
    let supers: Vec<Delayed<i64>> = groups.chunks(10).map(|c| total(c.to_vec())).collect();
    let root = total(supers);
    let f = client.submit(&root).unwrap();
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(f.status(), Status::Pending, "killed before the end");
    cluster.kill_worker("w2");
    let expected: i64 = (1..=20_000).sum();
    assert_eq!(
        f.result_timeout(Some(Duration::from_secs(120))).unwrap(),
        expected
    );
    assert_eq!(client.summary().unwrap().workers.len(), 2);
    let story = client.story(&f.key()).unwrap();
    assert!(story.last().unwrap().contains("-> memory"), "{story:?}");
}

fn a_task_that_kills_its_workers_is_blamed() {
    let cluster = Cluster::start(
        &["--allowed-failures", "1"],
        &[("w1", &["--nthreads", "1"]), ("w2", &["--nthreads", "1"])],
    );
    let client = cluster.client();
    let f = client.submit(&crash(1)).unwrap();
    let e = f
        .result_timeout(Some(Duration::from_secs(60)))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("KilledWorker") && e.contains(&f.key().to_string()),
        "{e}"
    );
}

fn resources_and_restrictions() {
    let cluster = Cluster::start(
        &["--no-worker-timeout", "1"],
        &[
            ("gpu", &["--nthreads", "2", "--resources", "GPU=2"]),
            ("cpu", &["--nthreads", "2"]),
        ],
    );
    let client = cluster.client();
    let on_gpu = client
        .map_with(
            0..6i64,
            worker_name,
            SubmitOptions {
                resources: vec![("GPU".into(), 1.0)],
                ..Default::default()
            },
        )
        .unwrap();
    assert!(client.gather(&on_gpu).unwrap().iter().all(|n| n == "gpu"));
    let pinned = client
        .map_with(
            100..106i64,
            worker_name,
            SubmitOptions {
                workers: vec!["cpu".into()],
                ..Default::default()
            },
        )
        .unwrap();
    assert!(client.gather(&pinned).unwrap().iter().all(|n| n == "cpu"));
    let impossible = client
        .submit_with(
            &worker_name(7),
            SubmitOptions {
                resources: vec![("GPU".into(), 5.0)],
                ..Default::default()
            },
        )
        .unwrap();
    let e = impossible
        .result_timeout(Some(Duration::from_secs(30)))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no connected worker can run") && e.contains("GPU=5"),
        "{e}"
    );
}

fn released_futures_are_forgotten_by_the_scheduler() {
    let cluster = two_workers();
    let client = cluster.client();
    let futures = client.map(0..500i64, inc).unwrap();
    client.gather(&futures).unwrap();
    assert!(client.summary().unwrap().tasks >= 500);
    drop(futures);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = client.summary().unwrap();
        if s.tasks == 0 && s.workers.iter().all(|w| w.keys == 0) {
            break;
        }
        assert!(Instant::now() < deadline, "still held: {s:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Another client's keys are its own: a second client holding a key keeps it alive.
    let other = Client::builder()
        .address(cluster.address.clone())
        .set_as_default(false)
        .connect()
        .unwrap();
    let mine = client.submit(&inc(1000)).unwrap();
    let theirs = other.submit(&inc(1000)).unwrap();
    assert_eq!(mine.result().unwrap(), theirs.result().unwrap());
    drop(mine);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(theirs.result().unwrap(), 1001);
}

fn a_silent_worker_is_removed_after_its_heartbeat_timeout() {
    let mut cluster = Cluster::start(
        &["--heartbeat-timeout", "1.5"],
        // Without nannies: the processes stopped below are the workers themselves.
        &[
            ("w1", &["--nthreads", "1", "--no-nanny"]),
            ("w2", &["--nthreads", "1", "--no-nanny"]),
        ],
    );
    let client = cluster.client();
    let pid = cluster.workers[1].1.child.id();
    // SIGSTOP: the connection stays open but the worker goes silent.
    assert!(Command::new("kill")
        .args(["-STOP", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(20);
    while client.summary().unwrap().workers.len() != 1 {
        assert!(
            Instant::now() < deadline,
            "the silent worker was never removed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let futures = client.map(0..20i64, inc).unwrap();
    assert_eq!(client.gather(&futures).unwrap().len(), 20);
    let _ = Command::new("kill")
        .args(["-CONT", &pid.to_string()])
        .status();
    cluster.kill_worker("w2");
}

fn mismatched_peers_are_refused_saying_which_side_differs() {
    let cluster = two_workers();
    let addr = cluster.scheduler_port();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use oxidask_protocol::*;
        let mut h = hello(Role::Client {
            name: "old".into(),
            id: 0,
            reconnect: false,
        });
        h.protocol = 999;
        let mut s = transport::Security::plain().connect(&addr).await.unwrap();
        let e = handshake_connect(&mut s, h).await.unwrap_err().to_string();
        assert!(
            e.contains("protocol version mismatch") && e.contains("999"),
            "{e}"
        );
        let mut h = hello(Role::Client {
            name: "other-program".into(),
            id: 0,
            reconnect: false,
        });
        h.registry ^= 0xdead;
        let mut s = transport::Security::plain().connect(&addr).await.unwrap();
        let e = handshake_connect(&mut s, h).await.unwrap_err().to_string();
        assert!(
            e.contains("registry mismatch") && e.contains("same program"),
            "{e}"
        );
    });
    // The cluster still serves.
    let client = cluster.client();
    assert_eq!(client.submit(&inc(1)).unwrap().result().unwrap(), 2);
}

fn garbage_on_every_socket_is_rejected_without_harm() {
    let cluster = two_workers();
    let client = cluster.client();
    let summary = client.summary().unwrap();
    let mut sockets = vec![cluster.scheduler_port()];
    sockets.extend(summary.workers.iter().map(|w| w.address.clone()));
    let payloads: Vec<Vec<u8>> = vec![
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        vec![0xff; 64],                                     // huge lengths
        [64u32.to_le_bytes(), 0u32.to_le_bytes()].concat(), // truncated header
        [16u32.to_le_bytes(), 1u32.to_le_bytes()]
            .concat()
            .into_iter()
            .chain(u64::MAX.to_le_bytes())
            .collect(), // absurd part length
        (0..4096).map(|i| (i * 7919 % 251) as u8).collect(), // noise
    ];
    for addr in &sockets {
        for p in &payloads {
            let mut s = TcpStream::connect(addr).unwrap();
            let _ = s.write_all(p);
            let _ = s.shutdown(std::net::Shutdown::Write);
            let mut sink = Vec::new();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = s.read_to_end(&mut sink);
        }
        // A valid hello followed by garbage frames.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            use oxidask_protocol::*;
            use tokio::io::AsyncWriteExt;
            let mut s = transport::Security::plain().connect(addr).await.unwrap();
            let role = if *addr == sockets[0] {
                Role::Client {
                    name: "garbage".into(),
                    id: 0,
                    reconnect: false,
                }
            } else {
                Role::Peer
            };
            handshake_connect(&mut s, hello(role)).await.unwrap();
            s.write_all(&[5, 0, 0, 0, 0, 0, 0, 0, 9, 9, 9, 9, 9])
                .await
                .unwrap();
            let _ = s.shutdown().await;
        });
    }
    // Every process is alive and the cluster computes.
    let futures = client.map(0..100i64, inc).unwrap();
    assert_eq!(client.gather(&futures).unwrap().iter().sum::<i64>(), 5050);
    assert_eq!(client.summary().unwrap().workers.len(), 2);
    assert!(
        cluster.scheduler.log().contains("malformed")
            || cluster.scheduler.log().contains("exceeds")
    );
}

fn a_tls_cluster_with_a_token_computes_and_refuses_strangers() {
    use oxidask_protocol::transport::Security;
    let dir = std::path::PathBuf::from(tempdir());
    let files = Security::temporary()
        .unwrap()
        .write_files(&dir)
        .unwrap()
        .unwrap();
    let token_file = dir.join("token");
    std::fs::write(&token_file, "correct horse battery staple\n").unwrap();
    let (ca, cert, key, tok) = (
        files.ca.display().to_string(),
        files.cert.as_ref().unwrap().display().to_string(),
        files.key.as_ref().unwrap().display().to_string(),
        token_file.display().to_string(),
    );
    let secure: Vec<&str> = vec![
        "--tls-ca-file",
        &ca,
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--auth-token-file",
        &tok,
    ];
    let worker_args: Vec<&str> = ["--nthreads", "1"]
        .iter()
        .copied()
        .chain(secure.iter().copied())
        .collect();
    let cluster = Cluster::start(&secure, &[("w1", &worker_args), ("w2", &worker_args)]);
    assert!(cluster.address.starts_with("tls://"), "{}", cluster.address);
    let security = Security::tls_from_files(&files.ca, files.cert.as_deref(), files.key.as_deref())
        .unwrap()
        .with_token("correct horse battery staple");
    let client = Client::builder()
        .address(cluster.address.clone())
        .security(security.clone())
        .set_as_default(false)
        .connect()
        .unwrap();
    // Results move between the two workers and back to the client, all over TLS.
    let futures = client.map(0..200i64, inc).unwrap();
    assert_eq!(
        client.gather(&futures).unwrap(),
        (1..=200).collect::<Vec<i64>>()
    );
    let s = client.submit(&total(&futures)).unwrap();
    assert_eq!(s.result().unwrap(), (1..=200).sum::<i64>());
    let names: Vec<String> = client
        .gather(&client.map(0..50i64, worker_name).unwrap())
        .unwrap();
    assert!(
        names.contains(&"w1".to_string()) && names.contains(&"w2".to_string()),
        "{names:?}"
    );

    let connect = |s: Security| {
        Client::builder()
            .address(cluster.address.clone())
            .security(s)
            .timeout(Duration::from_secs(2))
            .set_as_default(false)
            .connect()
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    let tls_only =
        Security::tls_from_files(&files.ca, files.cert.as_deref(), files.key.as_deref()).unwrap();
    let e = connect(tls_only);
    assert!(e.contains("requires an authentication token"), "{e}");
    let e = connect(security.clone().with_token("guess"));
    assert!(e.contains("refused the authentication token"), "{e}");
    let e = connect(
        Security::temporary()
            .unwrap()
            .with_token("correct horse battery staple"),
    );
    assert!(e.contains("TLS handshake"), "{e}");
    let e = connect(Security::plain());
    assert!(e.contains("no TLS credentials"), "{e}");
    cluster
        .scheduler
        .wait_for_line("wrong authentication token", Duration::from_secs(5));
    let refused = cluster
        .scheduler
        .wait_for_line("no authentication token", Duration::from_secs(5));
    assert!(
        refused.contains("127.0.0.1"),
        "the refusal names the peer: {refused}"
    );
    assert!(
        !cluster.scheduler.log().contains("guess"),
        "tokens are not logged"
    );

    // A worker's data port refuses a peer without the cluster's credentials.
    let data = client.summary().unwrap().workers[0].address.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let e = Security::plain()
            .connect(&format!(
                "tcp://{}",
                oxidask_protocol::strip_any_scheme(&data)
            ))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("TLS listener"), "{e}");
    });
    let worker_name = client.summary().unwrap().workers[0].name.clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines = client.logs(Some(&worker_name)).unwrap();
        if lines.iter().any(|l| {
            l.contains("WARN") && l.contains("data port: refused connection from 127.0.0.1")
        }) {
            break;
        }
        assert!(Instant::now() < deadline, "no refusal in {lines:?}");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Still serving the cluster's own.
    let futures = client.map(0..50i64, inc).unwrap();
    assert_eq!(client.gather(&futures).unwrap().iter().sum::<i64>(), 1275);

    // A client that reaches only the scheduler's port gathers through it.
    let tunnelled = Client::builder()
        .address(cluster.address.clone())
        .security(security.clone())
        .direct_to_workers(Some(false))
        .set_as_default(false)
        .connect()
        .unwrap();
    let futures = tunnelled.map(100..150i64, inc).unwrap();
    assert_eq!(
        tunnelled.gather(&futures).unwrap(),
        (101..=150).collect::<Vec<i64>>()
    );
    // And keeps its connection afterwards (the scheduler once miscounted its replies to
    // gathers and closed the client at the next message).
    let more = tunnelled.map(200..210i64, inc).unwrap();
    assert_eq!(
        tunnelled.gather(&more).unwrap(),
        (201..=210).collect::<Vec<i64>>()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn configuration_reaches_every_process_and_bad_values_are_named() {
    use oxidask_protocol::transport::Security;
    // A bad value in the environment: the scheduler refuses to start, naming key and source.
    let out = Command::new(env!("CARGO_BIN_EXE_oxidask"))
        .args(["scheduler", "--port", "0", "--no-dashboard"])
        .env("OXIDASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES", "-2")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("distributed.scheduler.allowed-failures")
            && err.contains("OXIDASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES"),
        "{err}"
    );
    // A file < the environment < a flag.
    let dir = std::path::PathBuf::from(tempdir());
    std::fs::write(
        dir.join("a.yaml"),
        "distributed:\n  scheduler:\n    allowed-failures: 7\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_oxidask"))
        .args(["config"])
        .env("OXIDASK_CONFIG", dir.join("a.yaml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("allowed-failures"))
        .unwrap()
        .to_owned();
    assert!(line.contains('7') && line.contains("a.yaml"), "{line}");

    // TLS and a token configured through the environment alone, for scheduler and workers.
    let files = Security::temporary()
        .unwrap()
        .write_files(&dir)
        .unwrap()
        .unwrap();
    let env: Vec<(&str, String)> = vec![
        (
            "OXIDASK_DISTRIBUTED__COMM__TLS__CA_FILE",
            files.ca.display().to_string(),
        ),
        (
            "OXIDASK_DISTRIBUTED__COMM__TLS__SCHEDULER__CERT",
            files.cert.as_ref().unwrap().display().to_string(),
        ),
        (
            "OXIDASK_DISTRIBUTED__COMM__TLS__SCHEDULER__KEY",
            files.key.as_ref().unwrap().display().to_string(),
        ),
        (
            "OXIDASK_DISTRIBUTED__COMM__TLS__WORKER__CERT",
            files.cert.as_ref().unwrap().display().to_string(),
        ),
        (
            "OXIDASK_DISTRIBUTED__COMM__TLS__WORKER__KEY",
            files.key.as_ref().unwrap().display().to_string(),
        ),
        (
            "OXIDASK_DISTRIBUTED__COMM__AUTH__TOKEN",
            "from-the-environment".into(),
        ),
    ];
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_oxidask"));
    cmd.args(["scheduler", "--port", "0", "--no-dashboard"])
        .envs(env.iter().map(|(k, v)| (k, v)));
    let scheduler = Proc::spawn(cmd);
    let line = scheduler.wait_for_line("listening at", Duration::from_secs(20));
    let address = line.rsplit(' ').next().unwrap().to_owned();
    assert!(address.starts_with("tls://"), "{address}");
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["worker", &address, "--name", "w-env", "--nthreads", "1"])
        .envs(env.iter().map(|(k, v)| (k, v)));
    let worker = Proc::spawn(cmd);
    worker.wait_for_line("connected to the scheduler", Duration::from_secs(20));
    let client = Client::builder()
        .address(address.clone())
        .security(
            Security::tls_from_files(&files.ca, files.cert.as_deref(), files.key.as_deref())
                .unwrap()
                .with_token("from-the-environment"),
        )
        .set_as_default(false)
        .connect()
        .unwrap();
    let futures = client.map(0..20i64, inc).unwrap();
    assert_eq!(client.gather(&futures).unwrap().iter().sum::<i64>(), 210);
    drop((client, worker, scheduler));
    let _ = std::fs::remove_dir_all(&dir);
}

fn a_client_flooding_requests_without_reading_does_not_stall_others() {
    let cluster = two_workers();
    let addr = cluster.scheduler_port();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // 200,000 summary requests in 2,000 frames, and never a read of the replies.
    let flooder = rt.block_on(async {
        use oxidask_protocol::*;
        let mut s = transport::Security::plain().connect(&addr).await.unwrap();
        handshake_connect(
            &mut s,
            hello(Role::Client {
                name: "flood".into(),
                id: 0,
                reconnect: false,
            }),
        )
        .await
        .unwrap();
        for batch in 0..2_000u64 {
            let msgs: Vec<ToScheduler> = (0..100)
                .map(|i| ToScheduler::Summary {
                    request: batch * 100 + i,
                })
                .collect();
            if write_frame(&mut s, &msgs).await.is_err() {
                break;
            }
        }
        s
    });
    // Everyone else is served meanwhile.
    let client = cluster.client();
    let futures = client.map(0..2_000i64, inc).unwrap();
    assert_eq!(
        client.gather(&futures).unwrap().iter().sum::<i64>(),
        (1..=2_000).sum::<i64>()
    );
    drop(flooder);
    assert_eq!(client.summary().unwrap().workers.len(), 2);
}

fn a_client_flooding_distinct_key_prefixes_is_cut_off_and_others_compute() {
    let cluster = two_workers();
    let addr = cluster.scheduler_port();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // 100,000 keys with distinct prefixes, in frames of 10,000: past the 65,536 new
    // prefixes one connection may add to the scheduler's interner.
    let (sent, closed) = rt.block_on(async {
        use oxidask_protocol::*;
        let mut s = transport::Security::plain().connect(&addr).await.unwrap();
        handshake_connect(
            &mut s,
            hello(Role::Client {
                name: "prefix-flood".into(),
                id: 0,
                reconnect: false,
            }),
        )
        .await
        .unwrap();
        let mut sent = 0;
        for frame in 0..10u64 {
            let wanted: Vec<WireKey> = (0..10_000u64)
                .map(|i| {
                    WireKey(oxidask::Key::new(
                        &format!("flood{frame}x{i}"),
                        oxidask::Token::from_u128(i as u128),
                    ))
                })
                .collect();
            let msg = ToScheduler::UpdateGraph {
                tasks: Vec::new(),
                wanted,
                options: SubmitOptions::default(),
                more: false,
            };
            if write_frame(&mut s, &[msg]).await.is_err() {
                break;
            }
            sent += 1;
        }
        // The scheduler closes the connection; whatever it sent before is read, then EOF.
        let closed = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                match read_frame::<_, ToClient>(&mut s, &Limits::default()).await {
                    Ok(Some(_)) => continue,
                    Ok(None) | Err(_) => return true,
                }
            }
        })
        .await
        .unwrap_or(false);
        (sent, closed)
    });
    assert!(
        closed,
        "the flooding connection was not closed ({sent} frames sent)"
    );
    let why = cluster
        .scheduler
        .wait_for_line("distinct key prefixes", Duration::from_secs(10));
    assert!(
        why.contains("prefix-flood") && why.contains("token or block index"),
        "{why}"
    );
    // Everyone else is served, and the scheduler still takes keys.
    let client = cluster.client();
    let futures = client.map(0..200i64, inc).unwrap();
    assert_eq!(
        client.gather(&futures).unwrap().iter().sum::<i64>(),
        (1..=200).sum::<i64>()
    );
    assert_eq!(client.summary().unwrap().workers.len(), 2);
}

fn ipv6_hosts_and_workers_on_every_interface_work() {
    // A worker listening on every interface advertises the address that reaches the scheduler.
    let cluster = Cluster::start(
        &[],
        &[
            ("any1", &["--host", "0.0.0.0", "--nthreads", "1"]),
            ("any2", &["--host", "0.0.0.0", "--nthreads", "1"]),
        ],
    );
    let client = cluster.client();
    for w in client.summary().unwrap().workers {
        assert!(w.address.starts_with("127.0.0.1:"), "{}", w.address);
    }
    let futures = client.map(0..100i64, inc).unwrap();
    assert_eq!(
        client.submit(&total(&futures)).unwrap().result().unwrap(),
        5050
    );
    drop(client);
    drop(cluster);

    let has_ipv6_loopback = std::fs::read_to_string("/proc/net/if_inet6")
        .map(|t| {
            t.lines()
                .any(|l| l.starts_with("00000000000000000000000000000001"))
        })
        .unwrap_or(false);
    assert!(
        has_ipv6_loopback,
        "this test needs IPv6 on loopback (::1 in /proc/net/if_inet6)"
    );
    let cluster = Cluster::start(
        &["--host", "::1", "--no-dashboard"],
        &[
            ("v6a", &["--host", "::1", "--nthreads", "1"]),
            ("v6b", &["--host", "::1", "--nthreads", "1"]),
        ],
    );
    assert!(
        cluster.address.starts_with("tcp://[::1]:"),
        "{}",
        cluster.address
    );
    let client = cluster.client();
    for w in client.summary().unwrap().workers {
        assert!(w.address.starts_with("[::1]:"), "{}", w.address);
    }
    let futures = client.map(0..100i64, inc).unwrap();
    assert_eq!(
        client.submit(&total(&futures)).unwrap().result().unwrap(),
        5050
    );
    assert_eq!(client.gather(&futures).unwrap().len(), 100);
}

/// A frame as `write_frame` puts it on the wire.
fn frame_bytes<M: oxidask::Data>(msgs: &[M]) -> Vec<u8> {
    let (header, parts) = oxidask_protocol::frame::encode_batch(msgs);
    let mut out = Vec::new();
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&(parts.len() as u32).to_le_bytes());
    for p in &parts {
        out.extend_from_slice(&(p.len() as u64).to_le_bytes());
    }
    out.extend_from_slice(&header);
    for p in &parts {
        out.extend_from_slice(p);
    }
    out
}

struct FuzzRng(u64);

impl FuzzRng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Structure-aware fuzzing of every listening socket of a real cluster for a bounded time
/// (`OXIDASK_FUZZ_SECS`, default 5; `OXIDASK_FUZZ_SEED` replays): raw noise; the preamble
/// and a valid hello followed by mutated frames (bit flips, truncation, declared header,
/// part-count and part lengths set to extremes, appended noise); specs nested far past the
/// decoder's limit; and slow-loris connections that send a byte and stall. Afterwards every
/// process is alive and the cluster computes correctly.
fn fuzz_every_socket_for_a_bounded_time() {
    use oxidask_protocol::*;
    let mut cluster = two_workers();
    let client = cluster.client();
    let mut sockets = vec![(cluster.scheduler_port(), true)];
    sockets.extend(
        client
            .summary()
            .unwrap()
            .workers
            .iter()
            .map(|w| (w.address.clone(), false)),
    );
    let secs: u64 = std::env::var("OXIDASK_FUZZ_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let seed: u64 = std::env::var("OXIDASK_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::process::id() as u64);
    eprintln!(
        "    fuzzing {} sockets for {secs} s (seed {seed})",
        sockets.len()
    );
    let mut rng = FuzzRng(seed);
    let preamble = b"OXDK\x01\x00\x00".to_vec();
    let client_hello = frame_bytes(&[hello(Role::Client {
        name: "fuzz".into(),
        id: 0,
        reconnect: false,
    })]);
    let peer_hello = frame_bytes(&[hello(Role::Peer)]);
    let key = |i: u64| {
        WireKey(oxidask::Key::block(
            "inc",
            oxidask::Token::from_u128(0xF0 + i as u128),
            &[i as u32],
        ))
    };
    let spec = WireSpec::Call {
        op: "distributed::inc".into(),
        args: vec![
            WireArg::Key(key(1)),
            WireArg::List(vec![WireArg::Key(key(2))]),
        ],
    };
    let graph = frame_bytes(&[ToScheduler::UpdateGraph {
        tasks: vec![WireTask::new(key(3), &spec, vec![key(1), key(2)])],
        wanted: vec![key(3)],
        options: SubmitOptions::default(),
        more: false,
    }]);
    let get = frame_bytes(&[DataRequest::Get {
        keys: vec![key(1), key(2)],
    }]);
    // A task whose spec nests lists 300 deep, past the decoders' limit of 256: the scheduler
    // passes the spec on undecoded and the worker that decodes it must refuse it cleanly.
    let deep = |k: u64| {
        let mut arg = WireArg::Key(key(1));
        for _ in 0..300 {
            arg = WireArg::List(vec![arg]);
        }
        let spec = WireSpec::Call {
            op: "distributed::inc".into(),
            args: vec![arg],
        };
        frame_bytes(&[ToScheduler::UpdateGraph {
            tasks: vec![WireTask::new(key(k), &spec, vec![])],
            wanted: vec![key(k)],
            options: SubmitOptions::default(),
            more: false,
        }])
    };
    let mut stalled = Vec::new();
    let mut runs = 0u64;
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        runs += 1;
        let (addr, is_scheduler) = &sockets[rng.below(sockets.len())];
        let Ok(mut s) = TcpStream::connect(addr) else {
            continue;
        };
        let _ = s.set_write_timeout(Some(Duration::from_millis(500)));
        let mut bytes = Vec::new();
        match rng.below(5) {
            0 => bytes.extend((0..rng.below(4096)).map(|_| rng.next() as u8)),
            1 | 2 => {
                bytes.extend_from_slice(&preamble);
                bytes.extend_from_slice(if *is_scheduler {
                    &client_hello
                } else {
                    &peer_hello
                });
                let mut f = if *is_scheduler {
                    graph.clone()
                } else {
                    get.clone()
                };
                match rng.below(5) {
                    0 => {
                        for _ in 0..1 + rng.below(8) {
                            let i = rng.below(f.len());
                            f[i] ^= 1 << rng.below(8);
                        }
                    }
                    1 => f.truncate(rng.below(f.len())),
                    2 => f[..4].copy_from_slice(&(rng.next() as u32).to_le_bytes()),
                    3 => f[4..8].copy_from_slice(&(rng.next() as u32 | 0xFFFF).to_le_bytes()),
                    _ => f.extend((0..rng.below(512)).map(|_| rng.next() as u8)),
                }
                bytes.extend_from_slice(&f);
            }
            3 => {
                bytes.extend_from_slice(&preamble);
                if *is_scheduler {
                    bytes.extend_from_slice(&client_hello);
                    bytes.extend_from_slice(&deep(1_000 + runs));
                } else {
                    bytes.extend_from_slice(&peer_hello);
                    bytes.extend_from_slice(&get);
                }
            }
            _ => {
                // Slow loris: one byte, then nothing (kept open until the end).
                let _ = s.write_all(&preamble[..1]);
                if stalled.len() < 50 {
                    stalled.push(s);
                }
                continue;
            }
        }
        let _ = s.write_all(&bytes);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
    }
    eprintln!("    {runs} connections, {} stalled", stalled.len());
    // Every process is alive, and the cluster computes.
    assert!(
        cluster.scheduler.child.try_wait().unwrap().is_none(),
        "the scheduler died"
    );
    for (name, w) in &mut cluster.workers {
        assert!(w.child.try_wait().unwrap().is_none(), "worker {name} died");
    }
    let futures = client.map(0..500i64, inc).unwrap();
    assert_eq!(
        client.submit(&total(&futures)).unwrap().result().unwrap(),
        (1..=500).sum::<i64>()
    );
    assert_eq!(client.summary().unwrap().workers.len(), 2);
    drop(stalled);
}

/// SIGTERM used to kill a worker at once, leaving its spill directory behind.
fn sigterm_stops_a_worker_cleanly_and_removes_its_spill_directory() {
    let mut cluster = two_workers();
    let dir = tempdir();
    cluster.add_worker(
        "w3",
        &[
            "--nthreads",
            "1",
            "--memory-limit",
            "1GiB",
            "--local-directory",
            &dir,
        ],
    );
    let spill_dirs = || {
        std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("oxidask-worker-")
            })
            .count()
    };
    assert_eq!(spill_dirs(), 1, "the worker made its spill directory");
    let (_, mut w3) = cluster.workers.pop().unwrap();
    let pid = w3.child.id();
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let status = w3.child.wait().unwrap();
    assert!(status.success(), "{status:?}: {}", w3.log());
    assert!(w3.log().contains("stopping (signal)"), "{}", w3.log());
    assert_eq!(spill_dirs(), 0, "the spill directory is gone");
    // The cluster carries on with the others.
    let client = cluster.client();
    let futures = client.map(0..50i64, inc).unwrap();
    assert_eq!(client.gather(&futures).unwrap().iter().sum::<i64>(), 1275);
    let _ = std::fs::remove_dir_all(&dir);
}

fn worker_cli_errors_are_clear() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["worker", "tcp://127.0.0.1:1", "--memory-limit", "lots"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("memory limit"), "{err}");
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["worker"])
        .env_remove("OXIDASK_SCHEDULER_ADDRESS")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("OXIDASK_SCHEDULER_ADDRESS"), "{err}");
    let e = Client::builder()
        .address("tcp://127.0.0.1:1")
        .timeout(Duration::from_millis(200))
        .set_as_default(false)
        .connect()
        .unwrap_err()
        .to_string();
    assert!(e.contains("oxidask scheduler"), "{e}");
    let _ = ClientError::Timeout(Duration::ZERO); // the type is public
}

fn tempdir() -> String {
    let d = std::env::temp_dir().join(format!(
        "oxidask-dist-{}-{}",
        std::process::id(),
        oxidask::Token::unique()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d.to_string_lossy().into_owned()
}

// ---- harness -------------------------------------------------------------------------------

const TESTS: &[Test] = &[
    (
        "delayed_graphs_compute_on_the_cluster",
        delayed_graphs_compute_on_the_cluster,
    ),
    (
        "futures_submit_map_gather_and_pass_as_arguments",
        futures_submit_map_gather_and_pass_as_arguments,
    ),
    (
        "wait_as_completed_cancel_and_fire_and_forget",
        wait_as_completed_cancel_and_fire_and_forget,
    ),
    ("scatter_and_broadcast", scatter_and_broadcast),
    (
        "tasks_submit_tasks_without_deadlocking_their_worker",
        tasks_submit_tasks_without_deadlocking_their_worker,
    ),
    (
        "task_errors_reach_the_client_with_their_cause_chain_and_retries_rerun",
        task_errors_reach_the_client_with_their_cause_chain_and_retries_rerun,
    ),
    (
        "a_worker_killed_mid_graph_loses_nothing",
        a_worker_killed_mid_graph_loses_nothing,
    ),
    (
        "a_task_that_kills_its_workers_is_blamed",
        a_task_that_kills_its_workers_is_blamed,
    ),
    ("resources_and_restrictions", resources_and_restrictions),
    (
        "released_futures_are_forgotten_by_the_scheduler",
        released_futures_are_forgotten_by_the_scheduler,
    ),
    (
        "a_silent_worker_is_removed_after_its_heartbeat_timeout",
        a_silent_worker_is_removed_after_its_heartbeat_timeout,
    ),
    (
        "mismatched_peers_are_refused_saying_which_side_differs",
        mismatched_peers_are_refused_saying_which_side_differs,
    ),
    (
        "garbage_on_every_socket_is_rejected_without_harm",
        garbage_on_every_socket_is_rejected_without_harm,
    ),
    ("worker_cli_errors_are_clear", worker_cli_errors_are_clear),
    (
        "sigterm_stops_a_worker_cleanly_and_removes_its_spill_directory",
        sigterm_stops_a_worker_cleanly_and_removes_its_spill_directory,
    ),
    (
        "fuzz_every_socket_for_a_bounded_time",
        fuzz_every_socket_for_a_bounded_time,
    ),
    (
        "ipv6_hosts_and_workers_on_every_interface_work",
        ipv6_hosts_and_workers_on_every_interface_work,
    ),
    (
        "a_client_flooding_requests_without_reading_does_not_stall_others",
        a_client_flooding_requests_without_reading_does_not_stall_others,
    ),
    (
        "a_client_flooding_distinct_key_prefixes_is_cut_off_and_others_compute",
        a_client_flooding_distinct_key_prefixes_is_cut_off_and_others_compute,
    ),
    (
        "configuration_reaches_every_process_and_bad_values_are_named",
        configuration_reaches_every_process_and_bad_values_are_named,
    ),
    (
        "a_tls_cluster_with_a_token_computes_and_refuses_strangers",
        a_tls_cluster_with_a_token_computes_and_refuses_strangers,
    ),
    (
        "each_worker_serves_its_own_metrics",
        each_worker_serves_its_own_metrics,
    ),
];

fn main() {
    oxidask::distributed::run_if_worker();
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let selected: Vec<&Test> = TESTS
        .iter()
        .filter(|(n, _)| filter.is_empty() || filter.iter().any(|f| n.contains(f.as_str())))
        .collect();
    println!("running {} tests", selected.len());
    let mut failed = Vec::new();
    for (name, f) in selected {
        let start = Instant::now();
        let (tx, rx) = std::sync::mpsc::channel();
        let f = *f;
        std::thread::spawn(move || {
            let r = std::panic::catch_unwind(f);
            let _ = tx.send(r.is_ok());
        });
        let ok = match rx.recv_timeout(Duration::from_secs(180)) {
            Ok(ok) => ok,
            Err(_) => {
                eprintln!("test {name} timed out");
                false
            }
        };
        println!(
            "test {name} ... {} ({:.2}s)",
            if ok { "ok" } else { "FAILED" },
            start.elapsed().as_secs_f64()
        );
        if !ok {
            failed.push(*name);
        }
    }
    kill_all();
    if failed.is_empty() {
        println!("test result: ok");
    } else {
        println!("test result: FAILED: {failed:?}");
        std::process::exit(1);
    }
}
