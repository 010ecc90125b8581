"""Client reconnection with real processes.

The client reaches an ``oxidask scheduler`` through a TCP proxy this test controls (plain
threads). Cutting the proxy's connections while tasks run, the client reconnects, keeps its
futures and sends what was submitted meanwhile; results are exact. Cut for longer than a
short grace, its futures fail with an error saying how long the scheduler was unreachable,
and the scheduler releases what the client held.
"""

import os
import socket
import subprocess
import sys
import threading
import time

import pytest

import oxidask
from oxidask.distributed import Client
from oxidask.exceptions import ClusterError

GRACE_ENV = "OXIDASK_DISTRIBUTED__SCHEDULER__CLIENT_RECONNECT_GRACE"


def slow_square(x):
    time.sleep(0.05)
    return x * x


def inc(x):
    return x + 1


def poll(condition, timeout=60.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


class Proxy:
    """Forwards TCP connections to ``target``; ``cut()`` closes them, ``refuse`` drops new ones."""

    def __init__(self, target):
        host, port = target.replace("tcp://", "").rsplit(":", 1)
        self.target = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = "tcp://127.0.0.1:%d" % self.listener.getsockname()[1]
        self.refuse = False
        self.accepted = 0
        self.live = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                down, _ = self.listener.accept()
            except OSError:
                return
            if self.refuse:
                down.close()
                continue
            try:
                up = socket.create_connection(self.target)
            except OSError:
                down.close()
                continue
            with self.lock:
                self.accepted += 1
                self.live += [down, up]
            for a, b in ((down, up), (up, down)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(1 << 16)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        with self.lock:
            live, self.live = self.live, []
        for s in live:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        self.cut()
        self.listener.close()


def start_cluster(grace):
    """``oxidask scheduler`` (client grace ``grace``) and one two-thread worker."""
    env = dict(os.environ, **{GRACE_ENV: grace})
    sched = subprocess.Popen(
        [sys.executable, "-m", "oxidask", "scheduler", "--port", "0", "--no-dashboard"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    address = None
    deadline = time.monotonic() + 30
    while address is None and time.monotonic() < deadline:
        line = sched.stderr.readline()
        if "listening at" in line:
            address = line.split()[-1]
    assert address, "the scheduler did not start"
    threading.Thread(target=lambda: sched.stderr.read(), daemon=True).start()
    worker = subprocess.Popen(
        [sys.executable, "-m", "oxidask", "worker", address, "--nthreads", "2", "--no-dashboard"],
        env=dict(env, OXIDASK_WORKER_SYS_PATH=os.pathsep.join(p for p in sys.path if p)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return address, [worker, sched]


def stop(procs):
    for p in procs:
        p.kill()
        p.wait(timeout=10)


def test_a_cut_mid_graph_keeps_the_futures_and_results_are_exact():
    address, procs = start_cluster("30s")
    proxy = Proxy(address)
    try:
        with Client(address, set_as_default=False) as observer, Client(
            proxy.address, set_as_default=False
        ) as c:
            c.wait_for_workers(1, timeout=30)
            futures = c.map(slow_square, range(60))
            assert poll(lambda: sum(f.done() for f in futures) >= 4)
            assert not all(f.done() for f in futures), "cut while the tasks run"
            proxy.refuse = True
            proxy.cut()
            assert poll(lambda: observer._core.summary()["clients"] == 1), "the scheduler saw it go"
            later = c.submit(inc, 41)  # sent once the client is back
            proxy.refuse = False
            assert c.gather(futures) == [x * x for x in range(60)]
            assert later.result(timeout=60) == 42
            assert all(f.status == "finished" for f in futures)
            assert proxy.accepted >= 2, "the client reconnected"
    finally:
        proxy.close()
        stop(procs)


def test_a_cut_longer_than_the_grace_fails_saying_so_and_releases_the_keys():
    address, procs = start_cluster("2s")
    proxy = Proxy(address)
    try:
        with oxidask.config.set({"distributed.scheduler.client-reconnect-grace": "2s"}):
            c = Client(proxy.address, set_as_default=False)
        with Client(address, set_as_default=False) as observer:
            c.wait_for_workers(1, timeout=30)
            done = c.submit(inc, 1)
            assert done.result(timeout=60) == 2
            pending = c.map(slow_square, range(200))
            assert poll(lambda: observer._core.summary()["tasks"] > 1)
            proxy.refuse = True
            proxy.cut()
            with pytest.raises(ClusterError, match="unreachable for 2 s"):
                pending[-1].result(timeout=60)
            assert poll(lambda: observer._core.summary()["tasks"] == 0), "the keys were released"
            c.close()
    finally:
        proxy.close()
        stop(procs)
