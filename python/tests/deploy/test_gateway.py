"""``oxidask gateway`` from Python, with real processes: the gateway started as
``python -m oxidask gateway`` (so its clusters' workers run Python tasks), users reaching it
through ``oxidask.gateway.Gateway`` with bearer tokens, basic authentication and a custom
``GatewayAuth`` shaped like the DestinE notebook's (seed 001)."""

import hashlib
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from oxidask.gateway import BasicAuth, BearerAuth, Gateway, GatewayAuth

ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-0123456789abcdef"


@pytest.fixture
def gateway(tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text(f"alice {ALICE}\nbob {BOB}\n")
    passwords = tmp_path / "passwords"
    passwords.write_text("carol:sha256:" + hashlib.sha256(b"carol's secret").hexdigest() + "\n")
    env = dict(os.environ)
    env["OXIDASK_WORKER_SYS_PATH"] = os.pathsep.join(p for p in sys.path if p)
    proc = subprocess.Popen(
        [sys.executable, "-m", "oxidask", "gateway", "--address", "127.0.0.1:0",
         "--tokens-file", str(tokens), "--password-file", str(passwords),
         "--work-dir", str(tmp_path / "clusters"),
         "--adapt-interval", "0.3", "--adapt-wait-count", "2"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env=env,
    )
    lines = []
    ready = threading.Event()

    def read():
        for line in proc.stderr:
            lines.append(line)
            if "listening at" in line:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    assert ready.wait(30), f"the gateway did not start: {lines}"
    url = next(l for l in lines if "listening at" in l).rsplit(" ", 1)[1].strip()
    yield url, proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def _reachable(address):
    host, port = address.replace("tcp://", "").rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
        return True
    except OSError:
        return False


def _wait(what, pred, timeout=30):
    deadline = time.time() + timeout
    while not pred():
        assert time.time() < deadline, f"timed out waiting until {what}"
        time.sleep(0.1)


class DESPAuth(GatewayAuth):
    """The seed's custom authentication class, with the token given instead of fetched from
    DESP's identity service."""

    def __init__(self, access_token):
        self.access_token = access_token

    def pre_request(self, _):
        headers = {"Authorization": "Bearer " + self.access_token}
        return headers, None


def test_seed_workflow_with_a_custom_auth_class(gateway):
    url, proc = gateway
    gw = Gateway(address=url, proxy_address="tcp://127.0.0.1:80", auth=DESPAuth(ALICE))
    cluster = gw.new_cluster()
    client = cluster.get_client()
    cluster.scale(2)
    client.wait_for_workers(2, timeout=60)

    def inc(x):
        return x + 1

    futures = client.map(inc, range(20))
    assert client.gather(futures) == list(range(1, 21))
    assert client.submit(sum, futures).result() == sum(range(1, 21))
    assert [c.name for c in gw.list_clusters()] == [cluster.name]
    logs = cluster.get_logs()
    assert "scheduler" in logs and logs["scheduler"]
    address = cluster.scheduler_address
    cluster.shutdown()
    _wait("the scheduler is gone", lambda: not _reachable(address))
    assert gw.list_clusters() == []


def test_users_are_isolated_and_authenticated(gateway):
    url, proc = gateway
    alice = Gateway(url, auth=BearerAuth(ALICE))
    bob = Gateway(url, auth=BearerAuth(BOB))
    with pytest.raises(PermissionError):
        Gateway(url, auth=BearerAuth("wrong-token-000000000000")).list_clusters()
    with pytest.raises(PermissionError):
        Gateway(url, auth=BasicAuth("carol", "guess")).list_clusters()
    cluster = alice.new_cluster(worker_threads=1, workers=1)
    assert bob.list_clusters() == []
    with pytest.raises(ValueError):
        bob.connect(cluster.name)
    with pytest.raises(ValueError):
        bob.stop_cluster(cluster.name)
    # Without the cluster's token its scheduler refuses the connection.
    from oxidask.distributed import Client

    with pytest.raises(Exception):
        Client(cluster.scheduler_address, timeout=3)
    carol = Gateway(url, auth=BasicAuth("carol", "carol's secret"))
    hers = carol.new_cluster(workers=1)
    with hers.get_client(set_as_default=False) as c:
        c.wait_for_workers(1, timeout=60)
        assert c.submit(lambda: "carol's").result() == "carol's"
    with pytest.raises(ValueError, match="gpus"):
        alice.new_cluster(gpus=1)
    hers.shutdown()
    cluster.shutdown()


def test_adapt_scales_up_for_a_burst_and_back_down_without_losing_results(gateway):
    url, proc = gateway
    gw = Gateway(url, auth=BearerAuth(ALICE))
    cluster = gw.new_cluster(worker_threads=1)
    cluster.adapt(minimum=1, maximum=3)
    client = cluster.get_client(set_as_default=False)
    client.wait_for_workers(1, timeout=60)
    kept = client.map(lambda x: x * 2, range(40))
    assert client.gather(kept) == [x * 2 for x in range(40)]

    def slow(x):
        time.sleep(0.25)
        return x

    burst = client.map(slow, range(24), pure=False)
    _wait("adapt asks for more workers", lambda: cluster.report().workers > 1, timeout=30)
    assert client.gather(burst) == list(range(24))
    _wait("adapt retires idle workers",
          lambda: cluster.report().workers == 1
          and len(client.scheduler_info()["workers"]) == 1, timeout=60)
    assert client.gather(kept) == [x * 2 for x in range(40)]
    client.close()
    # SIGTERM to the gateway stops its clusters.
    address = cluster.scheduler_address
    proc.terminate()
    assert proc.wait(30) == 0
    _wait("the cluster of the stopped gateway is gone", lambda: not _reachable(address))
