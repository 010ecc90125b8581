"""Failures on a cluster, as ``dask.distributed`` reports them: a task's exception comes back
as itself with the task's frames in its traceback; what cannot be pickled is refused with a
message saying what and why; a task that keeps killing its workers ends as ``KilledWorker``;
cancelled futures raise ``CancelledError``, timeouts the builtin ``TimeoutError``; a worker
killed in the middle of a graph loses nothing.
"""

import concurrent.futures
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback

import pytest

import oxidask
from oxidask.distributed import (
    CancelledError,
    Client,
    KilledWorker,
    LocalCluster,
    as_completed,
)
from oxidask.exceptions import RemoteError

# The console script of the environment running the tests.
OXIDASK = os.path.join(os.path.dirname(sys.executable), "oxidask")
if not os.path.exists(OXIDASK):
    OXIDASK = shutil.which("oxidask") or OXIDASK


# -- exceptions and functions the tasks use (module level: workers import this file) -------


class CustomError(Exception):
    """An exception class of this test module."""

    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code

    def __reduce__(self):
        return (type(self), (self.args[0], self.code))


class UnpicklableError(Exception):
    """Holds a lock, so it cannot be pickled."""

    def __init__(self, message):
        super().__init__(message)
        self.lock = threading.Lock()


def raise_value_error(x):
    raise ValueError(f"bad input {x}")


def raise_zero_division(x):
    return x / 0


def raise_custom(x):
    raise CustomError(f"custom failure {x}", code=x * 10)


def raise_unpicklable():
    raise UnpicklableError("it holds a lock")


def call_raiser(x):
    """Fails two frames deep."""
    return raise_value_error(x)


def identity(x):
    return x


def make_lock():
    return threading.Lock()


def inc(x):
    return x + 1


def crash_worker(x):
    """Kills the worker process running it."""
    os._exit(1)


def wait_for_file(path, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def gated(gate, value):
    if not wait_for_file(gate):
        raise RuntimeError(f"gate {gate} never opened")
    return value


def slow_inc(x):
    time.sleep(0.01)
    return x + 1


def slow_add(x, y):
    time.sleep(0.01)
    return x + y


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client():
    cluster = LocalCluster(n_workers=2, threads_per_worker=1)
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


@pytest.fixture
def gate(tmp_path):
    path = str(tmp_path / "gate")
    try:
        yield path
    finally:
        open(path, "w").close()


def poll(condition, timeout=10.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def frames(exc):
    return [(os.path.basename(f.filename), f.name) for f in traceback.extract_tb(exc.__traceback__)]


def full_message(exc):
    """The exception's text with that of its causes and context."""
    parts = []
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        parts.append(f"{type(exc).__name__}: {exc}")
        exc = exc.__cause__ or exc.__context__
    return " <- ".join(parts)


HERE = os.path.basename(__file__)


# -- a task's exception, re-raised in the client -------------------------------------------


def test_builtin_exception_keeps_its_type_and_message(client):
    f = client.submit(raise_value_error, 3)
    with pytest.raises(ValueError, match="bad input 3") as info:
        f.result(timeout=30)
    assert type(info.value) is ValueError
    assert f.status == "error"
    with pytest.raises(ZeroDivisionError):
        client.submit(raise_zero_division, 1).result(timeout=30)


def test_traceback_contains_the_task_functions_frames(client):
    f = client.submit(call_raiser, 4)
    with pytest.raises(ValueError) as info:
        f.result(timeout=30)
    got = frames(info.value)
    assert (HERE, "call_raiser") in got, got
    assert (HERE, "raise_value_error") in got, got
    # The innermost frame is where the exception was raised.
    assert got[-1] == (HERE, "raise_value_error"), got
    # Line numbers point into this file.
    innermost = traceback.extract_tb(info.value.__traceback__)[-1]
    with open(__file__) as fh:
        line = fh.readlines()[innermost.lineno - 1]
    assert "raise ValueError" in line, line


def test_custom_exception_class_keeps_its_type_and_attributes(client):
    f = client.submit(raise_custom, 7)
    with pytest.raises(CustomError, match="custom failure 7") as info:
        f.result(timeout=30)
    assert type(info.value) is CustomError
    assert info.value.code == 70
    assert (HERE, "raise_custom") in frames(info.value)


def test_exception_and_traceback_methods_agree_with_result(client):
    f = client.submit(raise_custom, 2)
    exc = f.exception(timeout=30)
    assert isinstance(exc, CustomError) and exc.code == 20
    tb = f.traceback()
    assert (HERE, "raise_custom") in [
        (os.path.basename(fr.filename), fr.name) for fr in traceback.extract_tb(tb)
    ]


def test_errors_propagate_to_dependents(client):
    bad = client.submit(raise_value_error, 1)
    dependent = client.submit(inc, bad)
    with pytest.raises(ValueError, match="bad input 1"):
        dependent.result(timeout=30)
    assert dependent.status == "error"


def test_errors_of_delayed_computed_on_the_cluster(client):
    value = oxidask.delayed(raise_custom)(5)
    with pytest.raises(CustomError, match="custom failure 5"):
        client.compute(value).result(timeout=30)
    with pytest.raises(CustomError):
        oxidask.compute(oxidask.delayed(inc)(value))


def test_as_completed_with_results_raises_the_tasks_error(client):
    futures = [client.submit(inc, 1, pure=False), client.submit(raise_value_error, 9, pure=False)]
    with pytest.raises(ValueError, match="bad input 9"):
        for _ in as_completed(futures, with_results=True):
            pass


def test_an_exception_that_cannot_be_pickled_comes_back_as_remote_error(client):
    f = client.submit(raise_unpicklable)
    with pytest.raises(RemoteError) as info:
        f.result(timeout=30)
    message = str(info.value)
    assert "UnpicklableError" in message, message
    assert "it holds a lock" in message, message


# -- what cannot be pickled ----------------------------------------------------------------


def test_an_unpicklable_function_fails_at_submit_naming_it(client):
    lock = threading.Lock()
    with pytest.raises(Exception) as info:
        client.submit(lambda: lock.locked())
    message = full_message(info.value)
    assert "lambda" in message, message
    assert "pickle" in message and "lock" in message, message


def test_an_unpicklable_argument_fails_at_submit_naming_it(client):
    with pytest.raises(Exception) as info:
        client.submit(identity, threading.Lock())
    message = full_message(info.value)
    assert "identity" in message, message
    assert "pickle" in message and "lock" in message, message


def test_an_unpicklable_submission_raises_type_error_as_dask_does(client):
    with pytest.raises(TypeError):
        client.submit(identity, threading.Lock())


def test_a_result_that_cannot_be_pickled_fails_at_result(client):
    f = client.submit(make_lock, pure=False)
    with pytest.raises(Exception) as info:
        f.result(timeout=30)
    message = full_message(info.value)
    assert "pickl" in message.lower(), message
    assert "lock" in message, message


# -- cancelled futures and timeouts --------------------------------------------------------


def test_cancelled_error_is_concurrent_futures_cancelled_error():
    assert CancelledError is concurrent.futures.CancelledError


def test_result_of_a_cancelled_future_raises_cancelled_error(client, gate):
    f = client.submit(gated, gate, "never", pure=False)
    f.cancel()
    with pytest.raises(CancelledError):
        f.result(timeout=30)
    with pytest.raises(concurrent.futures.CancelledError):
        client.gather([f])


def test_result_timeout_raises_builtin_timeout_error(client, gate):
    f = client.submit(gated, gate, "slow", pure=False)
    with pytest.raises(TimeoutError) as info:
        f.result(timeout=0.2)
    assert isinstance(info.value, TimeoutError)
    assert issubclass(oxidask.distributed.TimeoutError, TimeoutError)
    # The future is still there, and finishes once let go.
    assert not f.done()
    open(gate, "w").close()
    assert f.result(timeout=30) == "slow"


# -- workers that die ----------------------------------------------------------------------


def test_killed_worker_on_a_local_cluster():
    # The scheduler fails a task once it was running on more workers that died than its
    # allowed failures (3 by default, as in Dask): the 4th death. LocalCluster restarts no
    # worker (no nanny), so it needs 4 workers.
    with LocalCluster(n_workers=4, threads_per_worker=1) as cluster:
        with Client(cluster, set_as_default=False) as c:
            f = c.submit(crash_worker, 1)
            with pytest.raises(KilledWorker) as info:
                f.result(timeout=60)
            message = str(info.value)
            assert f.key in message, message
            assert f.status == "error"
            assert poll(lambda: len(c._core.summary()["workers"]) == 0)


def _start(args, env=None):
    return subprocess.Popen(
        [OXIDASK, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )


def _scheduler_address(proc, timeout=30.0):
    """The address in the scheduler's "listening at tcp://..." line on stderr."""
    lines = []
    found = []

    def read():
        for line in proc.stderr:
            lines.append(line)
            if "listening at " in line and not found:
                found.append(line.split("listening at ", 1)[1].strip())

    threading.Thread(target=read, daemon=True).start()
    if not poll(lambda: found or proc.poll() is not None, timeout=timeout) or not found:
        raise RuntimeError(f"the scheduler did not start: {''.join(lines)}")
    return found[0]


def test_killed_worker_with_allowed_failures_1_on_a_cli_cluster():
    procs = []
    try:
        scheduler = _start(["scheduler", "--port", "0", "--allowed-failures", "1"])
        procs.append(scheduler)
        address = _scheduler_address(scheduler)
        assert address.startswith("tcp://")
        env = dict(os.environ, OXIDASK_WORKER_SYS_PATH=os.pathsep.join(p for p in sys.path if p))
        for i in range(2):
            procs.append(_start(["worker", address, "--nthreads", "1", "--name", f"cli-{i}"], env))
        with Client(address, set_as_default=False) as c:
            c.wait_for_workers(2, timeout=30)
            assert c.submit(inc, 1).result(timeout=30) == 2
            f = c.submit(crash_worker, 2)
            with pytest.raises(KilledWorker) as info:
                f.result(timeout=60)
            message = str(info.value)
            assert f.key in message, message
            assert "Allowed failures: 1" in message, message
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)


def tree_sum(client, n):
    """A few hundred 10 ms tasks: n leaves and a binary tree adding them up."""
    leaves = client.map(slow_inc, range(n), pure=False)
    level = leaves
    while len(level) > 1:
        nxt = [client.submit(slow_add, a, b, pure=False) for a, b in zip(level[::2], level[1::2])]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return leaves, level[0]


def test_a_worker_killed_mid_graph_loses_nothing():
    n = 128  # 255 tasks
    with LocalCluster(n_workers=2, threads_per_worker=1) as cluster:
        with Client(cluster, set_as_default=False) as c:
            pids = cluster.worker_pids()
            assert len(pids) == 2
            leaves, root = tree_sum(c, n)
            ac = as_completed(leaves)
            for _ in range(20):  # some leaves are done: some results live on each worker
                next(ac)
            os.kill(pids[0], signal.SIGKILL)
            assert root.result(timeout=60) == sum(range(1, n + 1))
            # The leaves the client still holds are all there (recomputed if they were lost).
            assert c.gather(leaves) == list(range(1, n + 1))
            assert poll(lambda: len(c._core.summary()["workers"]) == 1)
