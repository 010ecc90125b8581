"""A journalled scheduler SIGKILLed mid-graph resumes it, with the Python client.

``oxidask scheduler --journal DIR`` and two worker processes run a graph of quick tasks
followed by slow ones; the scheduler is killed with SIGKILL once some slow tasks finished and
started again on the same port with the same journal. The workers and the client reconnect by
themselves, the client's futures complete with the exact results, and no task whose run had
finished before the kill runs again (each run leaves a file named after its task).
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

from oxidask.distributed import Client

LEAVES = 400
GROUP = 4


def leaf(i, runs):
    time.sleep(0.002)
    open(os.path.join(runs, "leaf-%d.%s" % (i, uuid.uuid4().hex)), "w").close()
    return i


def slow(a, b, c, d, j, runs):
    time.sleep(0.05)
    open(os.path.join(runs, "slow-%d.%s" % (j, uuid.uuid4().hex)), "w").close()
    return a + b + c + d


def runs_by_task(runs):
    counts = {}
    for name in os.listdir(runs):
        label = name.split(".")[0]
        counts[label] = counts.get(label, 0) + 1
    return counts


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_scheduler(port, journal):
    sched = subprocess.Popen(
        [sys.executable, "-m", "oxidask", "scheduler", "--port", str(port), "--no-dashboard",
         "--journal", journal],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = sched.stderr.readline()
        if not line:
            break
        lines.append(line)
        if "listening at" in line:
            break
    assert any("listening at" in l for l in lines), "the scheduler did not start: %s" % lines

    def drain():
        for line in sched.stderr:
            lines.append(line)

    threading.Thread(target=drain, daemon=True).start()
    return sched, lines


def start_worker(address, name):
    return subprocess.Popen(
        [sys.executable, "-m", "oxidask", "worker", address, "--name", name, "--nthreads", "2",
         "--no-dashboard", "--death-timeout", "60s"],
        env=dict(os.environ, OXIDASK_WORKER_SYS_PATH=os.pathsep.join(p for p in sys.path if p)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def poll(condition, timeout=60.0, interval=0.01):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def test_a_sigkilled_journalled_scheduler_resumes_the_graph_exactly(tmp_path):
    journal = str(tmp_path / "journal")
    runs = str(tmp_path / "runs")
    os.mkdir(runs)
    port = free_port()
    address = "tcp://127.0.0.1:%d" % port
    sched, _ = start_scheduler(port, journal)
    procs = [sched, start_worker(address, "pj-0"), start_worker(address, "pj-1")]
    try:
        with Client(address, set_as_default=False) as c:
            c.wait_for_workers(2, timeout=30)
            leaves = [c.submit(leaf, i, runs, pure=False) for i in range(LEAVES)]
            groups = [
                c.submit(slow, *leaves[j * GROUP:(j + 1) * GROUP], j, runs, pure=False)
                for j in range(LEAVES // GROUP)
            ]
            del leaves
            assert poll(
                lambda: sum(k.startswith("slow-") for k in runs_by_task(runs)) >= 20
            ), "the slow stage started"
            sched.send_signal(signal.SIGKILL)
            sched.wait(timeout=10)
            before = runs_by_task(runs)
            assert sum(k.startswith("slow-") for k in before) < LEAVES // GROUP, "killed mid-graph"

            sched, lines = start_scheduler(port, journal)
            procs[0] = sched
            assert poll(lambda: any("resuming with the workers" in l for l in lines), 30)
            assert not any("not back" in l for l in lines), lines

            got = c.gather(groups)
            assert got == [sum(range(j * GROUP, (j + 1) * GROUP)) for j in range(LEAVES // GROUP)]
            after = runs_by_task(runs)
            rerun = {k: after[k] for k in before if after[k] > 1}
            assert not rerun, "tasks that had finished before the kill ran again: %s" % rerun
    finally:
        for p in procs:
            p.kill()
            p.wait(timeout=10)
