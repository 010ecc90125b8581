"""Workers under the nanny that `oxidask worker` runs by default, from Python: the worker is
the nanny's child, `Client.restart()` cancels every future and gives fresh worker processes,
and a worker past its memory limit is restarted while the task that caused it is blamed."""

import os
import subprocess
import sys
import time

import pytest

from oxidask.distributed import CancelledError, Client, KilledWorker

BIN = os.path.join(os.path.dirname(sys.executable), "oxidask")


class Proc:
    def __init__(self, args):
        self.p = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        self.lines = []

    def wait_for(self, text, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.p.stderr.readline()
            if not line:
                if self.p.poll() is not None:
                    break
                continue
            self.lines.append(line)
            if text in line:
                return line
        raise AssertionError(f"{text!r} not seen; stderr so far:\n{''.join(self.lines)}")

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()  # the nanny stops its workers, then itself
            try:
                self.p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.p.kill()
        self.p.wait()
        self.p.stderr.close()


@pytest.fixture
def scheduler():
    s = Proc([BIN, "scheduler", "--port", "0", "--no-dashboard"])
    address = s.wait_for("listening at").rsplit(" ", 1)[1].strip()
    yield address
    s.stop()


def _parent(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def test_restart_cancels_futures_and_brings_fresh_worker_processes(scheduler):
    nannies = [Proc([BIN, "worker", scheduler, "--nthreads", "1", "--name", f"w{i}"]) for i in range(2)]
    try:
        with Client(scheduler) as client:
            client.wait_for_workers(2, timeout=60)
            before = set(client.gather(client.map(lambda i: os.getpid(), range(20), pure=False)))
            assert {_parent(pid) for pid in before} <= {n.p.pid for n in nannies}
            held = client.submit(lambda x: x + 1, 1)
            assert held.result() == 2
            client.restart(timeout=60)
            assert held.status == "cancelled"
            with pytest.raises(CancelledError):
                held.result()
            assert len(client.scheduler_info()["workers"]) == 2
            after = client.submit(os.getpid, pure=False).result()
            assert after not in before and _parent(after) in {n.p.pid for n in nannies}
            # The same computation again is computed afresh.
            assert client.submit(lambda x: x + 1, 1).result() == 2
    finally:
        for n in nannies:
            n.stop()


def test_a_task_past_the_memory_limit_is_killed_worker_while_others_finish(scheduler):
    # allowed-failures is the scheduler's (3 by default): the task kills 4 workers in turn.
    nanny = Proc([BIN, "worker", scheduler, "--nthreads", "2", "--memory-limit", "400MiB", "--name", "m"])

    def _allocate(mib):  # defined here so it travels by value (workers do not import tests)
        import time

        blocks = [bytearray(b"\x01" * (1 << 20)) for _ in range(mib)]
        time.sleep(120)
        return len(blocks)

    try:
        with Client(scheduler) as client:
            client.wait_for_workers(1, timeout=60)
            hog = client.submit(_allocate, 600)
            others = client.map(lambda x: x * 2, range(50))
            with pytest.raises(KilledWorker) as e:
                hog.result(timeout=120)
            assert hog.key in str(e.value)
            assert client.gather(others) == [x * 2 for x in range(50)]
            nanny.wait_for("passed its memory limit's terminate threshold")
    finally:
        nanny.stop()
