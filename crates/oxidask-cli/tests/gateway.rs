//! `oxidask gateway` with real processes: the `oxidask` binary as the gateway (and its
//! clusters' schedulers), this test binary as the clusters' workers (so they know the tasks
//! defined here), the test process as the users. Checks authentication, per-user isolation and
//! limits, scaling, adaptive scaling that loses no held result, logs, and that stopping a
//! cluster or the gateway leaves no process behind.
//!
//! Runs without libtest (`harness = false`): `main` first gives worker processes their entry
//! point.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oxidask::distributed::Client;
use oxidask_gateway::{Auth, Gateway, GatewayError};
use serde_json::json;

#[oxidask::task]
fn inc(x: i64) -> i64 {
    x + 1
}

#[oxidask::task]
fn total(xs: &[i64]) -> i64 {
    xs.iter().sum()
}

#[oxidask::task(pure = false)]
fn slow_inc(x: i64, millis: u64) -> i64 {
    std::thread::sleep(Duration::from_millis(millis));
    x + 1
}

const ALICE: &str = "alice-token-0123456789abcdef";
const BOB: &str = "bob-token-0123456789abcdef";

struct GatewayProcess {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    url: String,
    _dir: tempfile::TempDir,
}

impl GatewayProcess {
    fn start(extra: &[&str]) -> GatewayProcess {
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::write(&tokens, format!("alice {ALICE}\nbob {BOB}\n")).unwrap();
        let passwords = dir.path().join("passwords");
        let digest: String = oxidask_gateway::auth::sha256(b"carol's password")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        std::fs::write(&passwords, format!("carol:sha256:{digest}\n")).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_oxidask"));
        cmd.args(["gateway", "--address", "127.0.0.1:0", "--tokens-file"])
            .arg(&tokens)
            .arg("--password-file")
            .arg(&passwords)
            .arg("--work-dir")
            .arg(dir.path().join("clusters"))
            .arg("--worker-command")
            .arg(std::env::current_exe().unwrap())
            .args(["--adapt-interval", "0.3", "--adapt-wait-count", "2"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn the gateway");
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = log.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                l.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let url = loop {
            if let Some(l) = log
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains("listening at"))
            {
                break l.rsplit(' ').next().unwrap().to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no gateway: {:?}",
                log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        GatewayProcess {
            child,
            log,
            url,
            _dir: dir,
        }
    }

    fn as_user(&self, auth: Auth) -> Gateway {
        Gateway::new(&self.url, auth)
    }

    /// SIGTERM, then waits for the gateway to exit (it stops its clusters first).
    fn terminate(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(
                    status.success(),
                    "gateway exited {status}: {:?}",
                    self.log.lock().unwrap()
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the gateway did not exit after SIGTERM");
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn reachable(address: &str) -> bool {
    std::net::TcpStream::connect(address.trim_start_matches("tcp://")).is_ok()
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn workers_asked(cluster: &oxidask_gateway::GatewayCluster) -> u64 {
    cluster.report().unwrap()["workers"].as_u64().unwrap()
}

fn users_clusters_and_limits() {
    let gw = GatewayProcess::start(&[
        "--max-clusters-per-user",
        "1",
        "--max-workers-per-cluster",
        "3",
    ]);
    let alice = gw.as_user(Auth::Bearer(ALICE.into()));
    let bob = gw.as_user(Auth::Bearer(BOB.into()));

    // Credentials are required and checked.
    for stranger in [Auth::None, Auth::Bearer("not-a-token-at-all-000".into())] {
        let e = gw.as_user(stranger).list_clusters().unwrap_err();
        assert!(matches!(e, GatewayError::Unauthorized(_)), "{e}");
    }

    let cluster = alice
        .new_cluster(&json!({"worker_threads": 1, "worker_memory": "512MiB"}))
        .unwrap();
    assert!(cluster.scheduler_address.starts_with("tcp://"));
    cluster.scale(2).unwrap();
    let client = cluster.client().unwrap();
    client.wait_for_workers(2, Duration::from_secs(30)).unwrap();
    let futures: Vec<_> = (0..20).map(|i| client.submit(&inc(i)).unwrap()).collect();
    let sum = client.submit(&total(&futures)).unwrap();
    assert_eq!(sum.result().unwrap(), (1..=20).sum::<i64>());

    // Alice sees her cluster; Bob sees nothing of it, and cannot use its scheduler without
    // its token.
    assert!(alice.list_clusters().unwrap().contains_key(&cluster.name));
    assert!(bob.list_clusters().unwrap().is_empty());
    assert!(matches!(
        bob.connect(&cluster.name),
        Err(GatewayError::NotFound(_))
    ));
    assert!(matches!(
        bob.stop_cluster(&cluster.name),
        Err(GatewayError::NotFound(_))
    ));
    let stranger = Client::builder()
        .address(cluster.scheduler_address.clone())
        .timeout(Duration::from_secs(2))
        .set_as_default(false)
        .connect();
    assert!(
        stranger.is_err(),
        "a client without the cluster's token was let in"
    );

    // Limits: one cluster per user, three workers per cluster.
    let e = alice.new_cluster(&json!({})).unwrap_err();
    assert!(
        matches!(e, GatewayError::Forbidden(ref m) if m.contains("limit")),
        "{e}"
    );
    let e = cluster.scale(4).unwrap_err();
    assert!(matches!(e, GatewayError::Forbidden(_)), "{e}");
    let e = alice.new_cluster(&json!({"gpus": 2})).unwrap_err();
    assert!(
        matches!(e, GatewayError::BadRequest(ref m) if m.contains("gpus")),
        "{e}"
    );

    // Basic authentication: Carol has her own cluster.
    let carol = gw.as_user(Auth::Basic {
        user: "carol".into(),
        password: "carol's password".into(),
    });
    let hers = carol.new_cluster(&json!({"workers": 1})).unwrap();
    let c2 = hers.client().unwrap();
    c2.wait_for_workers(1, Duration::from_secs(30)).unwrap();
    assert_eq!(c2.submit(&inc(41)).unwrap().result().unwrap(), 42);
    let wrong = gw.as_user(Auth::Basic {
        user: "carol".into(),
        password: "guess".into(),
    });
    assert!(matches!(
        wrong.list_clusters(),
        Err(GatewayError::Unauthorized(_))
    ));

    // Logs, then stopping: the scheduler's port closes.
    assert!(cluster
        .logs()
        .unwrap()
        .iter()
        .any(|l| l.starts_with("scheduler: ")));
    drop(client);
    let address = cluster.scheduler_address.clone();
    cluster.shutdown().unwrap();
    wait_until("alice's scheduler is gone", Duration::from_secs(20), || {
        !reachable(&address)
    });
    assert!(alice.list_clusters().unwrap().is_empty());
    // Her slot is free again.
    let again = alice.new_cluster(&json!({})).unwrap();

    // SIGTERM to the gateway stops every cluster it runs.
    drop(c2);
    let addresses = [
        again.scheduler_address.clone(),
        hers.scheduler_address.clone(),
    ];
    gw.terminate();
    for a in addresses {
        wait_until(
            "a cluster of the stopped gateway is gone",
            Duration::from_secs(10),
            || !reachable(&a),
        );
    }
}

fn adaptive_scaling_keeps_results() {
    let gw = GatewayProcess::start(&[]);
    let alice = gw.as_user(Auth::Bearer(ALICE.into()));
    let cluster = alice.new_cluster(&json!({"worker_threads": 1})).unwrap();
    cluster.adapt(1, 3).unwrap();
    let client = cluster.client().unwrap();
    client.wait_for_workers(1, Duration::from_secs(30)).unwrap();
    // Results held by the client across the scale-down that follows.
    let kept: Vec<_> = (0..30).map(|i| client.submit(&inc(i)).unwrap()).collect();
    for f in &kept {
        f.result().unwrap();
    }
    // A burst: 24 tasks of 250 ms on one thread is 6 s of work, over the 5 s target.
    let burst: Vec<_> = (0..24)
        .map(|i| client.submit(&slow_inc(i, 250)).unwrap())
        .collect();
    wait_until(
        "adapt asks for more workers",
        Duration::from_secs(20),
        || workers_asked(&cluster) > 1,
    );
    let done: Vec<i64> = burst.iter().map(|f| f.result().unwrap()).collect();
    assert_eq!(done, (1..=24).collect::<Vec<_>>());
    // Idle again: back to the minimum, after the wait count, gracefully.
    wait_until(
        "adapt retires the idle workers",
        Duration::from_secs(40),
        || {
            workers_asked(&cluster) == 1
                && client
                    .summary()
                    .map(|s| s.workers.len() == 1)
                    .unwrap_or(false)
        },
    );
    let values: Vec<i64> = kept.iter().map(|f| f.result().unwrap()).collect();
    assert_eq!(values, (1..=30).collect::<Vec<_>>());
    let sum = client.submit(&total(&kept)).unwrap();
    assert_eq!(sum.result().unwrap(), (1..=30).sum::<i64>());
    drop(client);
    cluster.shutdown().unwrap();
}

/// A running single-node SLURM (`.ci/setup-slurm.sh` starts one when `sinfo` cannot reach
/// any): the test fails, never skips, when none can be had.
fn ensure_slurm() {
    let up = Command::new("sinfo")
        .args(["-h", "-o", "%T"])
        .output()
        .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("idle"))
        .unwrap_or(false);
    if !up {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.ci/setup-slurm.sh");
        let status = Command::new("bash")
            .arg(script)
            .status()
            .expect("run setup-slurm.sh");
        assert!(status.success(), "no SLURM: .ci/setup-slurm.sh failed");
    }
}

/// Jobs in SLURM's queue whose name starts with `prefix`, with their states.
fn jobs_named(prefix: &str) -> Vec<(String, String)> {
    let out = Command::new("squeue")
        .args(["-h", "-o", "%j %T"])
        .output()
        .expect("squeue");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(n, _)| n.starts_with(prefix))
        .map(|(n, s)| (n.to_owned(), s.to_owned()))
        .collect()
}

fn slurm_backend_runs_workers_as_jobs() {
    ensure_slurm();
    let gw = GatewayProcess::start(&[
        "--worker-backend",
        "slurm",
        "--slurm-walltime",
        "00:10:00",
        "--slurm-directive=--comment=oxidask-gateway-test",
    ]);
    let alice = gw.as_user(Auth::Bearer(ALICE.into()));
    let cluster = alice
        .new_cluster(&json!({"worker_threads": 1, "worker_memory": "256MiB"}))
        .unwrap();
    cluster.scale(2).unwrap();
    let client = cluster.client().unwrap();
    client
        .wait_for_workers(2, Duration::from_secs(120))
        .unwrap();
    let jobs = jobs_named(&cluster.name);
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    assert!(jobs.iter().all(|(_, s)| s == "RUNNING"), "{jobs:?}");
    let kept: Vec<_> = (0..20).map(|i| client.submit(&inc(i)).unwrap()).collect();
    let sum = client.submit(&total(&kept)).unwrap();
    assert_eq!(sum.result().unwrap(), (1..=20).sum::<i64>());
    // Scaling down retires a worker (its results move) and its job ends.
    cluster.scale(1).unwrap();
    wait_until("one worker job is left", Duration::from_secs(60), || {
        jobs_named(&cluster.name)
            .iter()
            .filter(|(_, s)| s == "RUNNING" || s == "PENDING")
            .count()
            == 1
    });
    let values: Vec<i64> = kept.iter().map(|f| f.result().unwrap()).collect();
    assert_eq!(values, (1..=20).collect::<Vec<_>>());
    assert!(cluster.logs().unwrap().iter().any(|l| l.contains("-w")));
    drop(client);
    cluster.shutdown().unwrap();
    wait_until(
        "no job of the cluster is left",
        Duration::from_secs(60),
        || {
            jobs_named(&cluster.name)
                .iter()
                .all(|(_, s)| s != "RUNNING" && s != "PENDING")
        },
    );
}

type Test = (&'static str, fn());

const TESTS: &[Test] = &[
    ("users_clusters_and_limits", users_clusters_and_limits),
    (
        "adaptive_scaling_keeps_results",
        adaptive_scaling_keeps_results,
    ),
    (
        "slurm_backend_runs_workers_as_jobs",
        slurm_backend_runs_workers_as_jobs,
    ),
];

fn main() {
    oxidask::distributed::run_if_worker();
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let mut failed = Vec::new();
    for (name, f) in TESTS {
        if !filter.is_empty() && !filter.iter().any(|x| name.contains(x.as_str())) {
            continue;
        }
        let start = Instant::now();
        let ok = std::panic::catch_unwind(f).is_ok();
        println!(
            "test {name} ... {} ({:.2}s)",
            if ok { "ok" } else { "FAILED" },
            start.elapsed().as_secs_f64()
        );
        if !ok {
            failed.push(*name);
        }
    }
    if !failed.is_empty() {
        eprintln!("failed: {failed:?}");
        std::process::exit(1);
    }
}
