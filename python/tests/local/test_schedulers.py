"""The local schedulers: ``threads`` (oxidask's pool; Python runs with the GIL, the rest
without), ``processes`` (a pool of worker processes) and ``sync`` (the calling thread)."""

import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

import oxidask as dask
from oxidask import delayed


def inc(x):
    return x + 1


def rendezvous(barrier, x):
    # Passes only if another task reaches the barrier at the same time.
    barrier.wait(timeout=20)
    return x


class Boom(Exception):
    pass


def explode(x):
    raise Boom(f"bad input {x}")


def test_threads_run_python_tasks_concurrently():
    barrier = threading.Barrier(2)
    tasks = [delayed(rendezvous)(barrier, i) for i in range(2)]
    assert dask.compute(tasks, scheduler="threads", num_workers=2) == ([0, 1],)


def test_tasks_that_compute_inside_tasks_never_deadlock_a_one_thread_pool():
    def outer(i):
        inner = [delayed(inc)(i * 10 + j) for j in range(3)]
        return sum(dask.compute(inner, scheduler="threads", num_workers=1)[0])

    results = dask.compute([delayed(outer)(i) for i in range(4)], scheduler="threads", num_workers=1)[0]
    assert results == [sum(i * 10 + j + 1 for j in range(3)) for i in range(4)]


def test_processes_run_tasks_in_other_processes():
    pids = dask.compute([delayed(os.getpid)() for _ in range(8)], scheduler="processes", num_workers=2)[0]
    assert os.getpid() not in pids
    assert 1 <= len(set(pids)) <= 2
    square = delayed(lambda x: x * x)  # pickled by value
    assert dask.compute([square(i) for i in range(10)], scheduler="processes")[0] == [i * i for i in range(10)]
    with dask.config.set(scheduler="processes", num_workers=2):
        assert delayed(sum)([delayed(inc)(i) for i in range(5)]).compute() == 15


def test_errors_keep_their_type_on_every_scheduler():
    for scheduler in ("sync", "threads", "processes"):
        with pytest.raises(Boom, match="bad input 3") as info:
            delayed(explode)(3).compute(scheduler=scheduler)
        names = [f.name for f in __import__("traceback").extract_tb(info.value.__traceback__)]
        assert "explode" in names, (scheduler, names)


def test_the_first_error_stops_the_computation(tmp_path):
    log = tmp_path / "ran"

    def record(i):
        with open(log, "a") as f:
            f.write(f"{i}\n")
        return i

    # A chain where the failure comes first: nothing after it runs.
    x = delayed(explode)(0)
    y = delayed(record)(x)
    with pytest.raises(Boom):
        dask.compute(y, scheduler="threads")
    assert not log.exists()


INTERRUPTED = textwrap.dedent(
    """
    import os, sys, time
    import oxidask as dask

    LOG = sys.argv[1]

    def slow(i):
        with open(LOG, "a") as f:
            f.write("x")
        time.sleep(0.05)
        return i

    if __name__ == "__main__":
        tasks = [dask.delayed(slow)(i) for i in range(400)]
        print("started", flush=True)
        try:
            dask.compute(tasks, scheduler="threads", num_workers=2)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        else:
            print("finished", flush=True)
    """
)


def test_ctrl_c_returns_promptly_and_stops_what_has_not_started(tmp_path):
    script = tmp_path / "interrupted.py"
    script.write_text(INTERRUPTED)
    log = tmp_path / "ran"
    p = subprocess.Popen([sys.executable, str(script), str(log)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "started"
    # Interrupt once some tasks ran.
    while not log.exists() or len(log.read_text()) < 4:
        pass
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=60)
    assert out.strip() == "interrupted"
    assert p.returncode == 0
    ran = len(log.read_text())
    assert ran < 400, f"all {ran} tasks ran: the interrupt did not stop the computation"
