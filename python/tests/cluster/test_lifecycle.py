"""Graceful lifecycle from Python with real processes: SIGTERM retires a worker without losing
or recomputing its results (its nanny does not restart it), `Client.retire_workers`,
`wait_for_workers`, `replicate`, `rebalance`, `adaptive_target`, and `--death-timeout`."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from oxidask.distributed import Client, wait

BIN = os.path.join(os.path.dirname(sys.executable), "oxidask")


class Proc:
    """A process whose stderr is collected on a thread."""

    def __init__(self, args):
        self.p = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        self.lines = []
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self):
        for line in self.p.stderr:
            self.lines.append(line)

    def log(self):
        return "".join(self.lines)

    def wait_for(self, text, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if text in line:
                    return line
            time.sleep(0.01)
        raise AssertionError(f"{text!r} not seen; stderr so far:\n{self.log()}")

    def wait(self, timeout=60):
        code = self.p.wait(timeout=timeout)
        self._t.join(timeout=10)
        return code

    def stop(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()


@pytest.fixture
def scheduler():
    s = Proc([BIN, "scheduler", "--port", "0", "--no-dashboard"])
    address = s.wait_for("listening at").rsplit(" ", 1)[1].strip()
    yield address
    s.stop()


def _worker(address, name, *extra):
    return Proc([BIN, "worker", address, "--nthreads", "1", "--name", name, "--heartbeat-ms", "200", *extra])


def _addresses(client):
    return {w["name"]: a for a, w in client.scheduler_info()["workers"].items()}


def test_sigterm_moves_a_workers_results_and_its_nanny_does_not_restart_it(scheduler, tmp_path):
    runs = str(tmp_path / "runs")

    def _counted(path, i):  # defined here so it travels by value (workers do not import tests)
        # Appends a line per run, so the test can tell how often it ran.
        with open(path, "a") as f:
            f.write(f"{i}\n")
        return list(range(i, i + 1000))

    a = _worker(scheduler, "a")  # under a nanny
    b = _worker(scheduler, "b")
    try:
        with Client(scheduler) as client:
            client.wait_for_workers(2, timeout=60)
            futures = [client.submit(_counted, runs, i, workers=["a"]) for i in range(6)]
            wait(futures)
            names = _addresses(client)
            assert all(v == [names["a"]] for v in client.who_has(futures).values())
            a.p.send_signal(signal.SIGTERM)  # the nanny forwards it to its worker
            assert a.wait() == 0, a.log()
            assert "closing gracefully" in a.log()
            assert "restarting worker" not in a.log()
            deadline = time.monotonic() + 60
            while "a" in _addresses(client):
                assert time.monotonic() < deadline, "worker a did not leave"
                time.sleep(0.02)
            assert all(v == [names["b"]] for v in client.who_has(futures).values())
            assert client.gather(futures) == [list(range(i, i + 1000)) for i in range(6)]
            with open(runs) as f:
                assert len(f.read().split()) == 6, "no task ran twice"
    finally:
        a.stop()
        b.stop()


def test_retire_replicate_rebalance_wait_for_workers_and_adaptive_target(scheduler):
    with Client(scheduler) as client:
        workers = [_worker(scheduler, n) for n in ("a", "b", "c")]
        try:
            client.wait_for_workers(3)
            assert len(client.scheduler_info()["workers"]) == 3
            with pytest.raises(TimeoutError):
                client.wait_for_workers(4, timeout="200ms")
            futures = [client.submit(lambda i: bytes(50_000) + bytes([i]), i, workers=["a"]) for i in range(6)]
            wait(futures)
            names = _addresses(client)

            rec = client.adaptive_target("5s")
            assert set(rec) == {"target", "workers_to_close"}
            assert rec["target"] < 3 and names["a"] not in rec["workers_to_close"]
            with pytest.raises(ValueError):
                client.adaptive_target(0)

            client.rebalance()
            held = {}
            for addrs in client.who_has(futures).values():
                assert len(addrs) == 1
                held[addrs[0]] = held.get(addrs[0], 0) + 1
            assert sorted(held.values()) == [2, 2, 2], held

            client.replicate(futures[:1])
            assert sorted(client.who_has(futures[:1])[futures[0].key]) == sorted(names.values())
            client.replicate(futures[:1], n=1)
            assert len(client.who_has(futures[:1])[futures[0].key]) == 1

            out = client.retire_workers(workers=["a"])
            assert list(out) == [names["a"]]
            assert out[names["a"]]["name"] == "a" and out[names["a"]]["nthreads"] == 1
            assert workers[0].wait() == 0, workers[0].log()
            assert client.gather(futures) == [bytes(50_000) + bytes([i]) for i in range(6)]
            out = client.retire_workers(n=1)
            assert len(out) == 1
            remaining = list(_addresses(client))
            assert len(remaining) == 1
            with pytest.raises(RuntimeError, match="no other worker"):
                client.retire_workers(workers=remaining)
            assert client.gather(futures) == [bytes(50_000) + bytes([i]) for i in range(6)]
            with pytest.raises(ValueError):
                client.retire_workers(workers=remaining, close_workers=False)
        finally:
            for w in workers:
                w.stop()


def test_death_timeout_exits_non_zero_after_logged_attempts():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    w = Proc([BIN, "worker", f"tcp://127.0.0.1:{port}", "--no-nanny", "--death-timeout", "1s"])
    try:
        assert w.wait() == 1, w.log()
        assert w.log().count("retrying in") >= 2, w.log()
        assert "--death-timeout" in w.log()
    finally:
        w.stop()
