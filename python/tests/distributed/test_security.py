"""TLS and token authentication from Python, on real worker processes: Security.temporary()
for a LocalCluster, clients with and without the cluster's credentials, and a scheduler and
workers started as `oxidask` commands with certificate files and a token."""

import os
import subprocess
import sys
import time

import pytest

from oxidask.distributed import Client, LocalCluster, Security


def square(x):
    return x * x


def test_a_local_cluster_with_temporary_credentials_speaks_tls():
    sec = Security.temporary()
    assert "token" not in repr(Security.temporary(token="hush")) or "hush" not in repr(
        Security.temporary(token="hush")
    )
    with LocalCluster(n_workers=2, threads_per_worker=1, security=sec, dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tls://")
        with Client(cluster) as client:
            futures = client.map(square, range(20))
            total = client.submit(sum, futures)
            assert total.result() == sum(x * x for x in range(20))
        # Without credentials: a clear error, not a hang.
        with pytest.raises(Exception, match="no TLS credentials"):
            Client(cluster.scheduler_address, timeout=2)
        # Credentials from another CA: refused.
        with pytest.raises(Exception, match="TLS handshake"):
            Client(cluster.scheduler_address, security=Security.temporary(), timeout=2)
        # Still serving.
        with Client(cluster) as client:
            assert client.submit(square, 7).result() == 49


def test_client_security_true_starts_a_tls_cluster():
    with Client(n_workers=1, threads_per_worker=1, security=True, dashboard_address=None) as client:
        assert client.scheduler_address.startswith("tls://")
        assert client.submit(square, 3).result() == 9


def test_security_reads_pem_files_and_names_missing_ones(tmp_path):
    sec = Security.temporary()
    (tmp_path / "ca.pem").write_text(sec.tls_ca_file)
    s = Security(tls_ca_file=str(tmp_path / "ca.pem"))
    assert s.tls_ca_file == sec.tls_ca_file
    with pytest.raises(FileNotFoundError, match="nowhere.pem"):
        Security(tls_ca_file=str(tmp_path / "nowhere.pem"))
    with pytest.raises(ValueError, match="together"):
        Client("tls://127.0.0.1:1", security=Security(tls_ca_file=sec.tls_ca_file, tls_client_cert=sec.tls_client_cert), timeout=1)


@pytest.fixture
def token_cluster(tmp_path):
    """`oxidask scheduler` and `oxidask worker` processes that require a token (no TLS)."""
    env = dict(os.environ, OXIDASK_DISTRIBUTED__COMM__AUTH__TOKEN="s3cret-token")
    sched = subprocess.Popen(
        [sys.executable, "-m", "oxidask", "scheduler", "--port", "0", "--no-dashboard"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    address = None
    lines = []
    deadline = time.monotonic() + 30
    while address is None and time.monotonic() < deadline:
        line = sched.stderr.readline()
        lines.append(line)
        if "listening at" in line:
            address = line.split()[-1]
    assert address, lines
    worker = subprocess.Popen(
        [sys.executable, "-m", "oxidask", "worker", address, "--nthreads", "1", "--no-dashboard"],
        env=dict(env, OXIDASK_WORKER_SYS_PATH=os.pathsep.join(sys.path)),
        stderr=subprocess.DEVNULL,
    )
    try:
        yield address, sched, lines
    finally:
        for p in (worker, sched):
            p.kill()
            p.wait()


def test_a_token_protected_scheduler_refuses_clients_without_it(token_cluster, monkeypatch):
    address, sched, lines = token_cluster
    monkeypatch.delenv("OXIDASK_DISTRIBUTED__COMM__AUTH__TOKEN", raising=False)
    with pytest.raises(Exception, match="requires an authentication token"):
        Client(address, timeout=2)
    with pytest.raises(Exception, match="refused the authentication token"):
        Client(address, security=Security(token="guess"), timeout=2)
    with Client(address, security=Security(token="s3cret-token")) as client:
        client.wait_for_workers(1)
        assert client.submit(square, 12).result() == 144
        logs = "\n".join(client.get_scheduler_logs() if hasattr(client, "get_scheduler_logs") else [])
    assert "wrong authentication token" in logs and "127.0.0.1" in logs
    assert "guess" not in logs
