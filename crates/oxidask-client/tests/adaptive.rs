//! The `Cluster` interface on a LocalCluster of in-process workers: `scale` up starts
//! workers, `scale` down retires them gracefully (results they held survive), and adaptive
//! scaling grows the cluster under a burst and shrinks it back once idle.

use std::sync::Arc;
use std::time::{Duration, Instant};

use oxidask_client::{AdaptiveOptions, Client, Cluster, LocalCluster};
use oxidask_local as _;

#[oxidask_core::task(crate = oxidask_core)]
fn nap(x: i64, millis: u64) -> i64 {
    std::thread::sleep(Duration::from_millis(millis));
    x * x
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ok() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn private_client(cluster: &LocalCluster) -> Client {
    Client::builder()
        .address(cluster.address())
        .set_as_default(false)
        .connect()
        .unwrap()
}

#[test]
fn scale_up_and_down_keeps_every_result() {
    let cluster = LocalCluster::builder()
        .workers(1)
        .threads_per_worker(1)
        .dashboard_address(None)
        .start()
        .unwrap();
    let client = private_client(&cluster);
    Cluster::scale(&cluster, 3).unwrap();
    assert_eq!(cluster.plan(), vec!["worker-0", "worker-1", "worker-2"]);
    client.wait_for_workers(3, Duration::from_secs(30)).unwrap();
    let futures: Vec<_> = (0..12)
        .map(|i| client.submit(&nap(i, 30)).unwrap())
        .collect();
    for (i, f) in futures.iter().enumerate() {
        assert_eq!(f.result().unwrap(), (i * i) as i64);
    }
    let holders = client
        .summary()
        .unwrap()
        .workers
        .iter()
        .filter(|w| w.keys > 0)
        .count();
    assert!(holders >= 2, "results spread over the workers");
    Cluster::scale(&cluster, 1).unwrap();
    assert_eq!(cluster.plan().len(), 1);
    assert_eq!(client.summary().unwrap().workers.len(), 1);
    for (i, f) in futures.iter().enumerate() {
        assert_eq!(
            f.result().unwrap(),
            (i * i) as i64,
            "held across the scale-down"
        );
    }
    let logs = cluster.logs();
    assert_eq!(
        logs.iter().filter(|l| l.starts_with("retired")).count(),
        2,
        "{logs:?}"
    );
}

#[test]
fn adapt_grows_under_a_burst_and_shrinks_when_idle() {
    let cluster = Arc::new(
        LocalCluster::builder()
            .workers(1)
            .threads_per_worker(1)
            .dashboard_address(None)
            .start()
            .unwrap(),
    );
    let client = private_client(&cluster);
    let adaptive = cluster
        .clone()
        .adapt(AdaptiveOptions {
            minimum: 1,
            maximum: 3,
            interval: Duration::from_millis(100),
            wait_count: 3,
            target_duration: Duration::from_millis(500),
        })
        .unwrap();
    let burst: Vec<_> = (0..40)
        .map(|i| client.submit(&nap(i, 150)).unwrap())
        .collect();
    wait_until("three workers", || {
        client.summary().unwrap().workers.len() == 3
    });
    for (i, f) in burst.iter().enumerate() {
        assert_eq!(f.result().unwrap(), (i * i) as i64);
    }
    wait_until("back to one worker", || cluster.plan().len() == 1);
    wait_until("one connected", || {
        client.summary().unwrap().workers.len() == 1
    });
    for (i, f) in burst.iter().enumerate() {
        assert_eq!(
            f.result().unwrap(),
            (i * i) as i64,
            "held across the scale-down"
        );
    }
    let log = adaptive.log();
    assert!(log.iter().any(|l| l.contains("Up(3)")), "{log:?}");
    assert!(log.iter().any(|l| l.contains("Down")), "{log:?}");
    assert!(!log.iter().any(|l| l.contains("failed")), "{log:?}");
    adaptive.stop();
    Cluster::close(&*cluster);
}
