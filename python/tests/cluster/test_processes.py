"""A cluster of real processes started with the `oxidask` command that `pip install`
installs: a scheduler, Python workers, and what the handshake refuses (a worker without
Python support, a client whose runtime versions differ)."""

import os
import re
import subprocess
import sys
import textwrap
import time

import pytest

from oxidask.distributed import Client

BIN = os.path.join(os.path.dirname(sys.executable), "oxidask")


def _rust_binary():
    """The stock Rust `oxidask` binary (cargo-built, no Python support)."""
    path = os.environ.get("OXIDASK_RUST_BIN")
    if not path:
        target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(
            os.path.dirname(__file__), "..", "..", "..", "target"
        )
        path = os.path.join(target, "debug", "oxidask")
    if not os.path.exists(path):
        pytest.fail(
            f"the Rust oxidask binary is needed for this test and was not found at {path}; "
            "build it with `cargo build -p oxidask-cli` and set OXIDASK_RUST_BIN"
        )
    return path


class Proc:
    def __init__(self, args, **kw):
        self.p = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, **kw)
        self.lines = []

    def wait_for(self, pattern, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.p.stderr.readline()
            if not line:
                if self.p.poll() is not None:
                    break
                continue
            self.lines.append(line)
            m = re.search(pattern, line)
            if m:
                return m
        raise AssertionError(f"{pattern!r} not seen; stderr so far:\n{''.join(self.lines)}")

    def stop(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()
        self.p.stderr.close()


@pytest.fixture
def scheduler():
    s = Proc([BIN, "scheduler", "--port", "0"])
    address = s.wait_for(r"listening at (tcp://\S+)").group(1)
    yield address
    s.stop()


def test_the_oxidask_command_runs_a_scheduler_and_python_workers(scheduler):
    workers = [Proc([BIN, "worker", scheduler, "--nthreads", "1", "--name", f"w{i}"]) for i in range(2)]
    try:
        for w in workers:
            w.wait_for("connected to the scheduler")
        with Client(scheduler) as client:
            client.wait_for_workers(2)
            futures = client.map(lambda x: x * 3, range(20))
            assert client.gather(futures) == [x * 3 for x in range(20)]
            # A lambda travels by value: these workers do not import the test module.
            pid, argv = client.submit(lambda: (os.getpid(), sys.argv[:]), workers=["w1"]).result()
            # The worker runs under its nanny, the process `oxidask worker` started.
            with open(f"/proc/{pid}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
            assert parent == workers[1].p.pid
            info = client.scheduler_info()["workers"]
            assert sorted(w["name"] for w in info.values()) == ["w0", "w1"]
    finally:
        for w in workers:
            w.stop()


def test_python_m_oxidask_worker_is_the_same_worker(scheduler):
    w = Proc([sys.executable, "-m", "oxidask.worker", scheduler, "--nthreads", "1"])
    try:
        w.wait_for("connected to the scheduler")
        with Client(scheduler) as client:
            assert client.submit(sum, [1, 2, 3]).result() == 6
    finally:
        w.stop()


def test_a_worker_without_python_support_is_refused_saying_so(scheduler):
    with Client(scheduler) as client:  # the first to join pins the cluster's runtime
        rust = Proc([_rust_binary(), "worker", scheduler, "--nthreads", "1"])
        try:
            rust.p.wait(timeout=60)
            message = "".join(rust.lines) + rust.p.stderr.read()
        finally:
            rust.stop()
        assert rust.p.returncode != 0
        assert "has no Python support" in message, message
        assert "python -m oxidask worker" in message, message
        assert client.scheduler_info()["workers"] == {}


OTHER_CLOUDPICKLE = textwrap.dedent(
    """
    import sys
    import cloudpickle
    cloudpickle.__version__ = "0.0.1"   # as a client with another cloudpickle release
    from oxidask.distributed import Client
    try:
        Client(sys.argv[1], timeout=10)
    except Exception as e:
        print(type(e).__name__, e)
    else:
        print("admitted")
    """
)


def test_a_client_with_another_cloudpickle_is_refused_naming_it(scheduler, tmp_path):
    w = Proc([BIN, "worker", scheduler, "--nthreads", "1"])
    try:
        w.wait_for("connected to the scheduler")
        script = tmp_path / "other.py"
        script.write_text(OTHER_CLOUDPICKLE)
        out = subprocess.run([sys.executable, str(script), scheduler], capture_output=True, text=True, timeout=60)
        assert "admitted" not in out.stdout
        assert "cloudpickle 0.0.1 here" in out.stdout, out.stdout + out.stderr
        # The cluster still serves its own members.
        with Client(scheduler) as client:
            assert client.submit(abs, -4).result() == 4
    finally:
        w.stop()
