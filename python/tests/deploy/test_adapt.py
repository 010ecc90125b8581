"""The Cluster interface on LocalCluster (real worker processes): scale up/down keeps every
result, adapt grows under a burst and shrinks after the wait count once idle, and the
hysteresis (the Rust AdaptiveCore behind Python's Adaptive) round by round."""

import math
import time

import pytest

from oxidask._oxidask import AdaptiveCore
from oxidask.distributed import Client, LocalCluster
from oxidask.distributed.deploy import Adaptive, Cluster


def _wait_until(what, ok, timeout=60):
    deadline = time.monotonic() + timeout
    while not ok():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def _slow_square(x):
    time.sleep(0.2)
    return x * x


def test_hysteresis_round_by_round():
    core = AdaptiveCore(1, 4, 3)
    plan = ["w0", "w1", "w2"]
    assert core.recommend(10, plan, plan, []) == ("up", 4)
    assert core.recommend(3, plan, plan, []) == ("same", None)
    for _ in range(2):
        assert core.recommend(1, plan, plan, ["w2", "w1"]) == ("same", None)
    assert core.recommend(1, plan, plan, ["w2", "w1"]) == ("down", ["w2", "w1"])
    # Not-yet-arrived jobs go first; the minimum holds.
    core = AdaptiveCore(2, 8, 1)
    assert core.recommend(0, ["a", "b", "c"], ["a", "b"], ["a"]) == ("down", ["c"])
    with pytest.raises(ValueError, match="minimum"):
        AdaptiveCore(3, 1, 1)


def test_local_cluster_is_a_cluster_and_scales_keeping_results():
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster:
        assert isinstance(cluster, Cluster)
        assert "workers=1" in repr(cluster)
        with Client(cluster) as client:
            cluster.scale(3)
            assert cluster.plan == ["worker-0", "worker-1", "worker-2"]
            client.wait_for_workers(3)
            futures = client.map(_slow_square, range(12))
            assert [f.result() for f in futures] == [x * x for x in range(12)]
            holders = {a for addrs in client.who_has(futures).values() for a in addrs}
            assert len(holders) >= 2, "results spread over the workers"
            cluster.scale(1)
            assert len(cluster.plan) == 1
            assert len(client.scheduler_info()["workers"]) == 1
            # Held across the scale-down: moved, not recomputed (still exact).
            assert [f.result() for f in futures] == [x * x for x in range(12)]
            logs = cluster.get_logs()["Cluster"]
            assert logs.count("retired") == 2, logs
            with pytest.raises(TypeError, match="one of"):
                cluster.scale(2, cores=4)
            with pytest.raises(ValueError, match="non-negative"):
                cluster.scale(-1)
    assert cluster.status == "closed"


def test_adapt_follows_a_bursty_workload():
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            adaptive = cluster.adapt(minimum=1, maximum=4, interval="100ms", wait_count=3, target_duration="1s")
            assert isinstance(adaptive, Adaptive)
            kept = client.map(_slow_square, range(100, 104))
            for burst in range(2):
                futures = client.map(_slow_square, range(burst * 40, burst * 40 + 40))
                _wait_until("four workers", lambda: len(client.scheduler_info()["workers"]) == 4)
                assert [f.result() for f in futures] == [x * x for x in range(burst * 40, burst * 40 + 40)]
                _wait_until("back to one worker", lambda: len(cluster.plan) == 1)
                _wait_until("one connected", lambda: len(client.scheduler_info()["workers"]) == 1)
                assert [f.result() for f in futures] == [x * x for x in range(burst * 40, burst * 40 + 40)]
                assert [f.result() for f in kept] == [x * x for x in range(100, 104)]
            kinds = [k for _, k, _ in adaptive.log]
            assert "error" not in kinds, adaptive.log
            assert kinds.count("up") >= 2 and kinds.count("down") >= 2, adaptive.log
            adaptive.stop()
            with pytest.raises(ValueError, match="minimum"):
                cluster.adapt(minimum=3, maximum=1)


def test_adapt_waits_wait_count_rounds_before_retiring():
    with LocalCluster(n_workers=3, threads_per_worker=1, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            client.wait_for_workers(3)
            adaptive = Adaptive(cluster, minimum=1, maximum=3, wait_count=3, start=False)
            # Idle: the scheduler wants 1; nothing is retired before the third round.
            assert adaptive.step() == ("same", None)
            assert adaptive.step() == ("same", None)
            assert len(cluster.plan) == 3
            kind, names = adaptive.step()
            assert kind == "down" and len(names) == 2
            assert len(cluster.plan) == 1
            _wait_until("one connected", lambda: len(client.scheduler_info()["workers"]) == 1)
            assert client.submit(sum, [1, 2, 3]).result() == 6
            adaptive.stop()
