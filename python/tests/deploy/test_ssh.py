"""SSHCluster against a real OpenSSH server on loopback (.ci/setup-sshd.sh: 127.0.0.1:2222,
keys under ~/.cache/oxidask-ssh). The server is started by the fixture when it is not
running; without it (or without ssh) these tests fail, they never skip."""

import os
import socket
import subprocess
from pathlib import Path

import pytest

from oxidask.distributed import Client, Cluster, SSHCluster

ROOT = Path(__file__).resolve().parents[3]
SSH_DIR = Path(os.environ.get("OXIDASK_SSH_DIR", Path.home() / ".cache" / "oxidask-ssh"))
SSH_PORT = int(os.environ.get("OXIDASK_SSH_PORT", "2222"))


@pytest.fixture(scope="module")
def connect_options():
    """Starts (or finds) the loopback sshd and returns the options to reach it."""
    subprocess.run(["bash", str(ROOT / ".ci" / "setup-sshd.sh")], check=True, capture_output=True)
    return {
        "port": SSH_PORT,
        "client_keys": [str(SSH_DIR / "id_ed25519")],
        "known_hosts": str(SSH_DIR / "known_hosts"),
    }


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _processes_mentioning(port):
    """Process ids (and command lines) on this machine whose command line names the port:
    the scheduler (``--port P``), the workers (``tcp://127.0.0.1:P``), their nanny's
    children and the remote shell wrappers."""
    out = subprocess.run(
        ["pgrep", "-af", "--", f"(--port {port}( |$))|(127\\.0\\.0\\.1:{port}( |$))"],
        capture_output=True,
        text=True,
    ).stdout
    me = {str(os.getpid())}
    return [line for line in out.splitlines() if line.split()[0] not in me and "pgrep" not in line]


def test_scheduler_and_two_workers_compute_and_close_leaves_nothing(connect_options):
    port = _free_port()
    cluster = SSHCluster(
        ["127.0.0.1", "127.0.0.1", "127.0.0.1"],
        connect_options=connect_options,
        scheduler_options={"port": port, "dashboard_address": None},
        worker_options={"nthreads": 1, "memory_limit": "1GiB"},
    )
    try:
        assert cluster.scheduler_address == f"tcp://127.0.0.1:{port}"
        running = _processes_mentioning(port)
        # scheduler + 2 nannies + 2 worker processes, each under a remote shell wrapper
        assert len([p for p in running if "-m oxidask" in p and "sh -c" not in p]) == 5, running
        with Client(cluster) as client:
            info = client.scheduler_info()["workers"]
            assert sorted(w["name"] for w in info.values()) == ["0", "1"]
            assert all(w["nthreads"] == 1 for w in info.values())
            futures = client.map(lambda x: x * x + 1, range(200))
            total = client.submit(sum, futures)
            assert total.result() == sum(x * x + 1 for x in range(200))
            # Both workers ran tasks: the work really went over the two SSH-started processes.
            who = client.who_has(futures)
            assert len({a for addrs in who.values() for a in addrs}) == 2
        logs = cluster.get_logs()
        assert "listening at" in logs["Scheduler"]
        assert "connected to the scheduler" in logs["0"] and "connected to the scheduler" in logs["1"]
        assert "starting worker 1 on 127.0.0.1" in logs["Cluster"]
    finally:
        cluster.close()
    assert cluster.status == "closed"
    assert _processes_mentioning(port) == []
    assert "stopping (signal)" in cluster.get_logs()["0"]


def test_scale_down_and_up(connect_options):
    port = _free_port()
    with SSHCluster(
        ["127.0.0.1", "127.0.0.1"],
        connect_options=connect_options,
        scheduler_options={"port": port, "dashboard_address": None},
        worker_options={"nthreads": 1, "memory_limit": "1GiB"},
    ) as cluster, Client(cluster) as client:
        assert isinstance(cluster, Cluster)
        assert cluster.plan == ["0"]
        cluster.scale(2)
        client.wait_for_workers(2, timeout=30)
        assert sorted(cluster.workers) == ["0", "1"]
        # Results held only by worker "1", which scale(1) stops: SIGTERM retires it
        # gracefully, so they move to worker "0" first.
        held = client.map(lambda x: x * 7, range(20), workers=["1"])
        client.gather(held)
        addresses = {w["name"]: a for a, w in client.scheduler_info()["workers"].items()}
        assert {a for addrs in client.who_has(held).values() for a in addrs} == {addresses["1"]}
        cluster.scale(1)
        assert list(cluster.workers) == ["0"]
        assert not [p for p in _processes_mentioning(port) if "--name 1" in p]
        assert {a for addrs in client.who_has(held).values() for a in addrs} == {addresses["0"]}
        assert client.gather(held) == [x * 7 for x in range(20)]
        assert client.submit(sum, [1, 2, 3]).result() == 6
    assert _processes_mentioning(port) == []


def test_refused_host_is_a_clear_error_and_nothing_is_left(connect_options):
    port = _free_port()
    refused = dict(connect_options, port=_free_port())  # nothing listens there
    with pytest.raises(ConnectionError, match=r"cannot log in to '127\.0\.0\.1' with ssh.*refused"):
        SSHCluster(
            ["127.0.0.1", "127.0.0.1"],
            connect_options=[connect_options, refused],
            scheduler_options={"port": port, "dashboard_address": None},
            timeout=30,
        )
    # The scheduler started on the first host was stopped again.
    assert _processes_mentioning(port) == []


def test_unknown_host_is_a_clear_error(connect_options):
    with pytest.raises(ConnectionError, match=r"cannot log in to 'no-such-host\.invalid'"):
        SSHCluster(["no-such-host.invalid", "127.0.0.1"], connect_options=connect_options)


def test_missing_python_on_the_remote_is_a_clear_error(connect_options):
    with pytest.raises(FileNotFoundError, match=r"(?s)'/nonexistent/python3' was not found on '127\.0\.0\.1'.*remote_python="):
        SSHCluster(
            ["127.0.0.1", "127.0.0.1"],
            connect_options=connect_options,
            remote_python="/nonexistent/python3",
        )


def test_python_without_oxidask_on_the_remote_is_a_clear_error(connect_options):
    with pytest.raises(ModuleNotFoundError, match=r"oxidask is not installed for '/usr/bin/python3'"):
        SSHCluster(["127.0.0.1", "127.0.0.1"], connect_options=connect_options, remote_python="/usr/bin/python3")


def test_bad_arguments_fail_before_anything_starts():
    with pytest.raises(ValueError, match="non-empty list"):
        SSHCluster([])
    with pytest.raises(ValueError, match="one dict per host"):
        SSHCluster(["a", "b"], connect_options=[{}])
    with pytest.raises(TypeError, match="keys only"):
        SSHCluster(["a"], connect_options={"password": "x"})
    with pytest.raises(TypeError, match=r"unknown connect_options \['bogus'\]"):
        SSHCluster(["a"], connect_options={"bogus": 1})
    with pytest.raises(FileNotFoundError, match="client key"):
        SSHCluster(["a"], connect_options={"client_keys": ["/nonexistent/key"]})
    with pytest.raises(ValueError, match="worker_class"):
        SSHCluster(["a"], worker_class="dask_cuda.CUDAWorker")


def test_a_crash_of_the_python_process_leaves_nothing_running(connect_options, tmp_path):
    """SIGKILL to the process that made the cluster: its ssh clients see EOF, the remote
    wrappers stop the scheduler and the workers."""
    import signal
    import sys
    import time

    port = _free_port()
    script = tmp_path / "make_cluster.py"
    script.write_text(
        "import sys, time\n"
        "from oxidask.distributed import SSHCluster\n"
        f"c = SSHCluster(['127.0.0.1'] * 2, connect_options={connect_options!r},\n"
        f"               scheduler_options={{'port': {port}, 'dashboard_address': None}},\n"
        "               worker_options={'nthreads': 1, 'memory_limit': '1GiB'})\n"
        "print('ready', flush=True)\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert len([p for p in _processes_mentioning(port) if "-m oxidask" in p and "sh -c" not in p]) == 3
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # The stop is asynchronous here (nobody waits for it): poll until it is done.
    deadline = time.monotonic() + 60
    while _processes_mentioning(port) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_mentioning(port) == []


def test_adapt_and_scale_down_by_name(connect_options):
    """The Cluster interface's adapt() grows an SSHCluster to its minimum through
    _scale_to_jobs; scale_down takes a job's name."""
    port = _free_port()
    with SSHCluster(
        ["127.0.0.1", "127.0.0.1"],
        connect_options=connect_options,
        scheduler_options={"port": port, "dashboard_address": None},
        worker_options={"nthreads": 1, "memory_limit": "1GiB"},
    ) as cluster, Client(cluster) as client:
        adaptive = cluster.adapt(minimum=3, maximum=3, interval="100ms")
        client.wait_for_workers(3, timeout=60)
        adaptive.stop()
        assert cluster.plan == ["0", "1", "2"]
        cluster.scale_down(["1"])
        assert cluster.plan == ["0", "2"]
        assert sorted(w["name"] for w in client.scheduler_info()["workers"].values()) == ["0", "2"]
        assert client.submit(sum, [4, 5]).result() == 9
    assert _processes_mentioning(port) == []
