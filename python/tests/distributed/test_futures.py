"""Futures on a cluster, as ``dask.distributed`` has them: ``submit``, ``map``, ``gather``,
``scatter``, ``compute``/``persist``, ``cancel``, ``wait``, ``as_completed``,
``fire_and_forget``, ``progress``, the ``Future`` methods, tasks that submit tasks
(``get_client``, ``secede``/``rejoin``, ``worker_client``, ``get_worker``) and the release of
results no future refers to any more.

Most tests share one ``LocalCluster`` of two worker processes with one thread each. Tasks that
must stay running while the test looks at them wait for a "gate" file in ``tmp_path`` that the
test creates when it is done looking (with a deadline, so a broken test never blocks a worker
for long).
"""

import gc
import os
import threading
import time

import pytest

import oxidask
from oxidask.distributed import (
    ALL_COMPLETED,
    FIRST_COMPLETED,
    CancelledError,
    Client,
    Future,
    LocalCluster,
    as_completed,
    fire_and_forget,
    futures_of,
    get_client,
    get_worker,
    progress,
    rejoin,
    secede,
    wait,
    worker_client,
)

WORKER_NAMES = {"worker-0", "worker-1"}


# -- functions the tasks run (module level: the workers import this file by path) ----------


def inc(x):
    return x + 1


def add(x, y):
    return x + y


def add3(x, y, z=0):
    return x + y + z


def double(x):
    return 2 * x


def nested_total(obj):
    """The sum of the numbers in nested lists, tuples and dict values."""
    if isinstance(obj, dict):
        return sum(nested_total(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(nested_total(v) for v in obj)
    return obj


def describe(obj):
    """The structure of ``obj`` with the type of each leaf, to check what a task received."""
    if isinstance(obj, dict):
        return {k: describe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(describe(v) for v in obj)
    return (type(obj).__name__, obj)


def fail(x):
    raise ValueError(f"bad value {x}")


def worker_name(_=None):
    return get_worker().name


def worker_identity():
    w = get_worker()
    return w.name, w.address


def wait_for_file(path, timeout=30.0):
    """Blocks until ``path`` exists (at most ``timeout`` seconds); True if it appeared."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def gated(gate, value):
    """Returns ``value`` once ``gate`` exists."""
    if not wait_for_file(gate):
        raise RuntimeError(f"gate {gate} never opened")
    return value


def flaky(counter, failures):
    """Fails on its first ``failures`` attempts (counted in the file ``counter``, which every
    worker process can see)."""
    with open(counter, "a") as f:
        f.write("attempt\n")
    with open(counter) as f:
        attempt = len(f.readlines())
    if attempt <= failures:
        raise RuntimeError(f"attempt {attempt} fails")
    return attempt


def logged(log, label):
    """Appends ``label`` to the file ``log`` (the order in which tasks ran)."""
    with open(log, "a") as f:
        f.write(f"{label}\n")
    return label


def write_after_gate(gate, out, text):
    if not wait_for_file(gate):
        raise RuntimeError("gate never opened")
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, out)
    return text


def sum_of_incs(n):
    """A task that submits tasks and waits for them through ``get_client``."""
    client = get_client()
    futures = client.map(inc, range(n), pure=False)
    return sum(client.gather(futures))


def fib(n):
    """Recursive Fibonacci: each call submits its two sub-calls (Dask's ``worker_client``
    example); only ever finishes if waiting tasks give their thread up."""
    if n < 2:
        return n
    with worker_client() as client:
        a = client.submit(fib, n - 1)
        b = client.submit(fib, n - 2)
        return a.result() + b.result()


def fib_get_client(n):
    """Recursive Fibonacci through ``get_client``, seceding while it waits."""
    if n < 2:
        return n
    client = get_client()
    a = client.submit(fib_get_client, n - 1)
    b = client.submit(fib_get_client, n - 2)
    secede()
    total = a.result() + b.result()
    rejoin()
    return total


def seceded_until(gate):
    """Gives its worker thread up, then waits for ``gate`` (others run meanwhile)."""
    secede()
    opened = wait_for_file(gate)
    rejoin()
    return opened


def map_with_worker_client(n):
    with worker_client() as client:
        futures = client.map(double, range(n))
        return sum(client.gather(futures))


def scatter_from_task(values):
    client = get_client()
    futures = client.scatter(values)
    return sum(client.gather(client.map(double, futures)))


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
    """A gate file path, opened (created) at the end of the test whatever happens, so that
    tasks waiting on it free their worker."""
    path = str(tmp_path / "gate")
    try:
        yield path
    finally:
        open(path, "w").close()


def poll(condition, timeout=10.0, interval=0.02):
    """Calls ``condition()`` until it is true or ``timeout`` seconds passed; returns its last
    value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


# -- submit --------------------------------------------------------------------------------


def test_submit_passes_args_and_kwargs(client):
    f = client.submit(add3, 1, 2, z=10)
    assert isinstance(f, Future)
    assert f.result() == 13
    assert client.submit(add3, 1, y=5).result() == 6


def test_submit_key_names_the_task(client):
    f = client.submit(add, 20, 22, key="the-answer-task")
    assert f.key == "the-answer-task"
    assert f.result() == 42


def test_pure_calls_share_a_key_and_impure_calls_do_not(client):
    a = client.submit(add, 1, 2)
    b = client.submit(add, 1, 2)
    c = client.submit(add, 1, 3)
    assert a.key == b.key
    assert a.key != c.key
    d = client.submit(add, 1, 2, pure=False)
    e = client.submit(add, 1, 2, pure=False)
    assert len({a.key, d.key, e.key}) == 3
    assert client.gather([a, b, c, d, e]) == [3, 3, 4, 3, 3]


def test_retries_rerun_a_failing_task(client, tmp_path):
    counter = str(tmp_path / "attempts")
    f = client.submit(flaky, counter, 2, retries=2)
    assert f.result(timeout=30) == 3
    with open(counter) as fh:
        assert len(fh.readlines()) == 3


def test_too_few_retries_give_the_last_error(client, tmp_path):
    counter = str(tmp_path / "attempts")
    f = client.submit(flaky, counter, 3, retries=1)
    with pytest.raises(RuntimeError, match="attempt 2 fails"):
        f.result(timeout=30)
    with open(counter) as fh:
        assert len(fh.readlines()) == 2


def test_resources_no_worker_has_fail_with_a_clear_error_instead_of_hanging(client):
    # Dask would wait for a worker with a GPU forever (no-workers-timeout is off by default);
    # oxidask's scheduler fails such a task after its no-worker timeout (5 s) and says why.
    f = client.submit(inc, 1, resources={"GPU": 1}, pure=False)
    with pytest.raises(Exception) as info:
        f.result(timeout=60)
    assert not isinstance(info.value, TimeoutError), "the task hung"
    message = str(info.value)
    assert "GPU" in message and "resources" in message, message
    assert f.status == "error"
    assert f.done()


def test_workers_restrict_where_tasks_run(client):
    on_0 = client.map(worker_name, range(6), workers="worker-0", pure=False)
    on_1 = client.map(worker_name, range(6), workers=["worker-1"], pure=False)
    assert client.gather(on_0) == ["worker-0"] * 6
    assert client.gather(on_1) == ["worker-1"] * 6
    assert client.submit(worker_name, workers="worker-1", pure=False).result() == "worker-1"


def test_workers_restriction_by_address(client):
    name, address = client.submit(worker_identity, pure=False).result()
    others = client.map(worker_name, range(4), workers=[address], pure=False)
    assert client.gather(others) == [name] * 4


def test_allow_other_workers_loosens_the_restriction(client):
    f = client.submit(worker_name, workers="no-such-worker", allow_other_workers=True, pure=False)
    assert f.result(timeout=30) in WORKER_NAMES


def test_priority_runs_higher_priority_tasks_first(client, tmp_path, gate):
    log = str(tmp_path / "order")
    # Occupy worker-0's only thread, queue tasks behind it, then let it go.
    blocker = client.submit(gated, gate, "blocker", workers="worker-0", pure=False)
    low = [
        client.submit(logged, log, f"low-{i}", workers="worker-0", priority=0, pure=False)
        for i in range(4)
    ]
    high = client.submit(logged, log, "high", workers="worker-0", priority=10, pure=False)
    client._core.summary()  # a round trip: the scheduler has every task
    assert not blocker.done()
    open(gate, "w").close()
    wait([blocker, high, *low], timeout=30)
    with open(log) as fh:
        order = fh.read().split()
    assert sorted(order) == sorted(["high"] + [f"low-{i}" for i in range(4)])
    # Submitted last, run first (Dask); a worker may already hold the next task it will run
    # (oxidask sends one task ahead), so allow one low-priority task before it. In
    # submission order it would be last.
    assert order.index("high") <= 1, order


# -- map -----------------------------------------------------------------------------------


def test_map_zips_several_iterables(client):
    futures = client.map(add, [1, 2, 3], [10, 20, 30])
    assert len(futures) == 3
    assert client.gather(futures) == [11, 22, 33]
    # The shortest iterable wins, as with the builtin map.
    assert client.gather(client.map(add, [1, 2, 3], [10, 20])) == [11, 22]


def test_map_passes_kwargs_to_every_call(client):
    futures = client.map(add3, range(5), range(5), z=100)
    assert client.gather(futures) == [100 + 2 * i for i in range(5)]


def test_map_key_is_a_prefix(client):
    futures = client.map(inc, range(4), key="incrementer")
    assert all(f.key.startswith("incrementer") for f in futures)
    assert len({f.key for f in futures}) == 4
    assert client.gather(futures) == [1, 2, 3, 4]
    # Pure: the same call gets the same key again.
    assert [f.key for f in client.map(inc, range(4), key="incrementer")] == [f.key for f in futures]


def test_map_keys_as_a_list(client):
    keys = ["mapped-a", "mapped-b"]
    futures = client.map(inc, [5, 6], key=keys)
    assert [f.key for f in futures] == keys
    assert client.gather(futures) == [6, 7]


def test_map_over_futures(client):
    first = client.map(inc, range(5))
    second = client.map(double, first)
    assert client.gather(second) == [2 * (i + 1) for i in range(5)]


# -- futures as arguments ------------------------------------------------------------------


def test_futures_as_arguments_are_replaced_by_their_results(client):
    x = client.submit(inc, 1)
    y = client.submit(inc, x)
    z = client.submit(add, x, y=y)
    assert z.result() == 5


def test_futures_nested_in_lists_and_dicts_are_replaced(client):
    a = client.submit(inc, 10)
    b = client.submit(double, 4)
    arg = {"xs": [a, b, 1], "pair": (a, 5), "deep": {"b": [b]}}
    got = client.submit(describe, arg).result()
    assert got == {
        "xs": [("int", 11), ("int", 8), ("int", 1)],
        "pair": (("int", 11), ("int", 5)),
        "deep": {"b": [("int", 8)]},
    }
    assert client.submit(nested_total, arg).result() == 11 + 8 + 1 + 11 + 5 + 8


# -- gather --------------------------------------------------------------------------------


def test_gather_keeps_the_shape_of_nested_structures(client):
    a, b, c = client.map(double, [1, 2, 3])
    got = client.gather({"list": [a, b], "tuple": (c, "plain"), "deep": {"x": [a, {"y": c}]}})
    assert got == {"list": [2, 4], "tuple": (6, "plain"), "deep": {"x": [2, {"y": 6}]}}
    assert client.gather(a) == 2
    assert client.gather([]) == []


def test_gather_raises_the_first_error_by_default(client):
    futures = [client.submit(inc, 1), client.submit(fail, 2), client.submit(inc, 3)]
    with pytest.raises(ValueError, match="bad value 2"):
        client.gather(futures)


def test_gather_errors_skip_leaves_failed_futures_out(client):
    futures = [client.submit(inc, 1), client.submit(fail, 2), client.submit(inc, 3)]
    assert client.gather(futures, errors="skip") == [2, 4]


# -- scatter -------------------------------------------------------------------------------


def test_scatter_a_list(client):
    futures = client.scatter([1, 2, 3])
    assert isinstance(futures, list) and len(futures) == 3
    assert all(isinstance(f, Future) for f in futures)
    assert client.gather(futures) == [1, 2, 3]
    assert client.gather(client.map(double, futures)) == [2, 4, 6]


def test_scatter_a_dict_names_the_futures_by_its_keys(client):
    futures = client.scatter({"scattered-x": 10, "scattered-y": 20})
    assert set(futures) == {"scattered-x", "scattered-y"}
    assert futures["scattered-x"].key == "scattered-x"
    assert futures["scattered-y"].result() == 20
    assert client.submit(add, futures["scattered-x"], futures["scattered-y"]).result() == 30


def test_scatter_a_single_value(client):
    single = client.scatter(12345)
    assert isinstance(single, Future)
    assert single.result() == 12345
    assert client.submit(inc, single).result() == 12346
    text = client.scatter("some text")
    assert isinstance(text, Future)
    assert client.submit(len, text).result() == 9


def test_scatter_broadcast_is_usable_on_every_worker(client):
    [big] = client.scatter([list(range(100))], broadcast=True)
    on_each = [
        client.submit(nested_total, big, workers=name, pure=False) for name in sorted(WORKER_NAMES)
    ]
    assert client.gather(on_each) == [sum(range(100))] * 2


def test_scatter_broadcast_puts_the_data_on_every_worker(client):
    f = client.scatter("broadcast me", broadcast=True)
    holders = client.who_has([f])[f.key]
    assert len(holders) == 2


# -- compute and persist of delayed values -------------------------------------------------


def test_client_compute_of_delayed_gives_futures(client):
    x = oxidask.delayed(inc)(1)
    y = oxidask.delayed(add)(x, 10)
    f = client.compute(y)
    assert isinstance(f, Future)
    assert f.result() == 12
    fx, fy = client.compute([x, y])
    assert client.gather([fx, fy]) == [2, 12]
    assert client.compute([x, y], sync=True) == [2, 12]


def test_client_persist_of_delayed_keeps_the_result_on_the_cluster(client):
    x = oxidask.delayed(inc)(41)
    y = oxidask.delayed(double)(x)
    p = client.persist(y)
    assert p.key == y.key
    (f,) = futures_of(p)
    assert f.key == y.key
    assert f.result() == 84
    assert p.compute() == 84
    # Later lazy work starts from the persisted result.
    assert oxidask.delayed(inc)(p).compute() == 85


# -- cancel --------------------------------------------------------------------------------


def test_client_cancel_stops_a_pending_future(client, gate):
    f = client.submit(gated, gate, "never", pure=False)
    client.cancel([f])
    # Dask's cancel returns once the future is marked cancelled.
    assert f.status == "cancelled"
    assert f.cancelled()
    assert f.done()
    with pytest.raises(CancelledError):
        f.result(timeout=10)


def test_future_cancel(client, gate):
    f = client.submit(gated, gate, "never", pure=False)
    f.cancel()
    assert f.cancelled()
    assert f.status == "cancelled"
    with pytest.raises(CancelledError):
        f.result(timeout=10)


def test_cancel_of_a_finished_future(client):
    futures = client.map(inc, range(10), pure=False)
    assert client.gather(futures) == list(range(1, 11))
    statuses = []
    for f in futures:
        client.cancel([f])
        statuses.append(f.status)  # right after cancel returned
    assert statuses == ["cancelled"] * 10
    assert all(f.cancelled() for f in futures)
    with pytest.raises(CancelledError):
        futures[0].result(timeout=10)


def test_cancel_of_a_finished_future_drops_its_result(client):
    f = client.submit(inc, 78, pure=False)
    assert f.result(timeout=30) == 79
    f.cancel()
    assert poll(lambda: f.status == "cancelled", timeout=5), f.status
    with pytest.raises(CancelledError):
        f.result(timeout=10)


# -- wait ----------------------------------------------------------------------------------


def test_wait_all_completed(client):
    futures = client.map(inc, range(8), pure=False)
    result = wait(futures, return_when=ALL_COMPLETED)
    done, not_done = result
    assert result.done == done and result.not_done == not_done
    assert done == set(futures)
    assert not_done == set()
    assert all(f.done() and f.status == "finished" for f in futures)


def test_wait_first_completed(client, gate):
    slow = client.submit(gated, gate, "slow", pure=False)
    fast = client.submit(inc, 1, pure=False)
    done, not_done = wait([slow, fast], return_when=FIRST_COMPLETED, timeout=30)
    assert fast in done
    assert slow in not_done
    assert not slow.done()


def test_wait_timeout_raises_timeout_error(client, gate):
    slow = client.submit(gated, gate, "slow", pure=False)
    with pytest.raises(TimeoutError):
        wait([slow], timeout=0.2)
    assert not slow.done()


def test_wait_counts_failed_futures_as_done(client):
    futures = [client.submit(fail, 1, pure=False), client.submit(inc, 1, pure=False)]
    done, not_done = wait(futures, timeout=30)
    assert done == set(futures) and not not_done
    assert [f.status for f in futures] == ["error", "finished"]


# -- as_completed --------------------------------------------------------------------------


def test_as_completed_yields_in_the_order_of_completion(client, gate):
    slow = client.submit(gated, gate, "slow", pure=False)
    fast = client.submit(inc, 1, pure=False)
    ac = as_completed([slow, fast])
    first = next(ac)
    assert first is fast or first == fast
    assert first.result() == 2
    open(gate, "w").close()
    second = next(ac)
    assert second == slow
    assert second.result() == "slow"
    with pytest.raises(StopIteration):
        next(ac)


def test_as_completed_gives_every_future_once(client):
    futures = client.map(double, range(20), pure=False)
    seen = list(as_completed(futures))
    assert len(seen) == 20
    assert set(seen) == set(futures)
    assert all(f.done() for f in seen)


def test_as_completed_with_results(client):
    futures = client.map(double, range(10), pure=False)
    pairs = list(as_completed(futures, with_results=True))
    assert len(pairs) == 10
    assert all(f.result() == r for f, r in pairs)
    assert sorted(r for _, r in pairs) == [2 * i for i in range(10)]


def test_as_completed_add_while_iterating(client):
    ac = as_completed([client.submit(inc, 0, pure=False)])
    results = []
    for f in ac:
        results.append(f.result())
        if len(results) < 5:
            ac.add(client.submit(inc, f.result(), pure=False))
    assert results == [1, 2, 3, 4, 5]


def test_as_completed_add_before_iterating(client):
    ac = as_completed()
    a = client.submit(inc, 100, pure=False)
    b = client.submit(inc, 200, pure=False)
    ac.add(a)
    ac.add(b)
    assert ac.count() == 2
    assert {f.result() for f in ac} == {101, 201}
    assert ac.is_empty()


# -- fire_and_forget -----------------------------------------------------------------------


def test_fire_and_forget_keeps_running_once_the_future_is_dropped(client, tmp_path, gate):
    out = str(tmp_path / "written")
    f = client.submit(write_after_gate, gate, out, "done", pure=False)
    fire_and_forget(f)
    del f
    gc.collect()
    client._core.summary()  # a round trip: the release has reached the scheduler
    open(gate, "w").close()
    assert poll(lambda: os.path.exists(out), timeout=30), "the forgotten task never ran"
    with open(out) as fh:
        assert fh.read() == "done"


# -- progress ------------------------------------------------------------------------------


def test_progress_returns_once_the_futures_are_done(client):
    futures = client.map(double, range(10), pure=False)
    progress(futures)
    assert all(f.done() for f in futures)
    assert client.gather(futures) == [2 * i for i in range(10)]


# -- Future methods ------------------------------------------------------------------------


def test_future_result_with_timeout(client, gate):
    f = client.submit(inc, 41, pure=False)
    assert f.result(timeout=30) == 42
    slow = client.submit(gated, gate, "slow", pure=False)
    with pytest.raises(TimeoutError):
        slow.result(timeout=0.2)


def test_future_result_timeout_as_a_string(client):
    assert client.submit(inc, 1, pure=False).result(timeout="10s") == 2


def test_wait_timeout_as_a_string(client):
    f = client.submit(inc, 1, pure=False)
    done, not_done = wait([f], timeout="10s")
    assert done == {f} and not not_done


def test_future_status_and_done(client, gate):
    slow = client.submit(gated, gate, 7, pure=False)
    assert slow.status == "pending"
    assert not slow.done()
    open(gate, "w").close()
    assert slow.result(timeout=30) == 7
    assert slow.done()
    assert slow.status == "finished"
    bad = client.submit(fail, 3, pure=False)
    wait([bad], timeout=30)
    assert bad.status == "error"
    assert bad.done()


def test_future_key_is_a_string(client):
    f = client.submit(inc, 2)
    assert isinstance(f.key, str)
    assert f.key.startswith("inc-")
    assert f.key in repr(f)


def test_future_exception_and_traceback(client):
    ok = client.submit(inc, 1, pure=False)
    assert ok.exception(timeout=30) is None
    assert ok.traceback(timeout=30) is None
    bad = client.submit(fail, 5, pure=False)
    exc = bad.exception(timeout=30)
    assert isinstance(exc, ValueError)
    assert str(exc) == "bad value 5"
    tb = bad.traceback(timeout=30)
    import traceback as tb_module

    names = [frame.name for frame in tb_module.extract_tb(tb)]
    assert "fail" in names


def test_future_add_done_callback(client, gate):
    called = []
    event = threading.Event()

    def callback(future):
        called.append(future)
        event.set()

    f = client.submit(gated, gate, "cb", pure=False)
    f.add_done_callback(callback)
    assert not called
    open(gate, "w").close()
    assert event.wait(timeout=30), "the callback never ran"
    assert len(called) == 1
    assert called[0] == f
    assert called[0].result() == "cb"


def test_future_add_done_callback_on_a_finished_future_runs_it(client):
    f = client.submit(inc, 9, pure=False)
    f.result(timeout=30)
    event = threading.Event()
    seen = []
    f.add_done_callback(lambda fut: (seen.append(fut.status), event.set()))
    assert event.wait(timeout=30)
    assert seen == ["finished"]


# -- tasks that submit tasks ---------------------------------------------------------------


def test_get_client_in_a_task_submits_and_gathers(client):
    assert client.submit(sum_of_incs, 10, pure=False).result(timeout=60) == sum(range(1, 11))


def test_get_client_outside_tasks_is_the_default_client(client):
    assert get_client() is client


def test_recursive_fib_with_worker_client(client):
    assert client.submit(fib, 8, pure=False).result(timeout=60) == 21


def test_recursive_fib_with_get_client_and_secede(client):
    assert client.submit(fib_get_client, 7, pure=False).result(timeout=60) == 13


def test_secede_frees_the_worker_thread(client, gate):
    waiting = client.submit(seceded_until, gate, workers="worker-0", pure=False)
    # worker-0 has one thread; these can only run while `waiting` has seceded.
    others = client.map(worker_name, range(4), workers="worker-0", pure=False)
    assert client.gather(others) == ["worker-0"] * 4
    assert not waiting.done()
    open(gate, "w").close()
    assert waiting.result(timeout=30) is True


def test_worker_client(client):
    assert client.submit(map_with_worker_client, 10, pure=False).result(timeout=60) == 90


def test_scatter_from_a_task(client):
    assert client.submit(scatter_from_task, [1, 2, 3], pure=False).result(timeout=60) == 12


def test_get_worker_in_a_task(client):
    workers = {w["name"]: w["address"] for w in client._core.summary()["workers"]}
    results = client.gather(
        [client.submit(worker_identity, workers=name, pure=False) for name in sorted(workers)]
    )
    assert dict(results) == workers
    assert set(workers) == WORKER_NAMES


def test_get_worker_outside_a_task_raises_value_error():
    with pytest.raises(ValueError):
        get_worker()


# -- releasing results ---------------------------------------------------------------------


@pytest.fixture
def own_client():
    """A client on a cluster of its own, so that its task count is this test's alone."""
    cluster = LocalCluster(n_workers=1, threads_per_worker=1)
    c = Client(cluster, set_as_default=False)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


def scheduler_tasks(c):
    return c._core.summary()["tasks"]


def test_deleting_the_last_future_releases_the_task(own_client):
    assert scheduler_tasks(own_client) == 0
    f = own_client.submit(inc, 1)
    assert f.result(timeout=30) == 2
    assert scheduler_tasks(own_client) == 1
    del f
    gc.collect()
    assert poll(lambda: scheduler_tasks(own_client) == 0, timeout=5), scheduler_tasks(own_client)


def test_a_key_is_released_only_when_every_future_of_it_is_gone(own_client):
    a = own_client.submit(add, 2, 3)
    b = own_client.submit(add, 2, 3)
    assert a.key == b.key
    assert a.result(timeout=30) == 5
    del a
    gc.collect()
    own_client._core.summary()  # the release (if any) has reached the scheduler
    assert b.result(timeout=30) == 5
    assert scheduler_tasks(own_client) == 1
    del b
    gc.collect()
    assert poll(lambda: scheduler_tasks(own_client) == 0, timeout=5), scheduler_tasks(own_client)


def worker_keys(c):
    return sum(w["keys"] for w in c._core.summary()["workers"])


def test_dependencies_are_released_with_their_dependents(own_client):
    xs = own_client.map(inc, range(10))
    total = own_client.submit(sum, xs)
    assert total.result(timeout=30) == 55
    assert scheduler_tasks(own_client) == 11
    assert poll(lambda: worker_keys(own_client) == 11, timeout=5), worker_keys(own_client)
    del xs
    gc.collect()
    # The sum still holds its result; the inputs nobody wants leave the workers' memory
    # (Dask keeps them in the scheduler, released, as long as their dependent is there).
    assert poll(lambda: worker_keys(own_client) == 1, timeout=5), worker_keys(own_client)
    assert total.result() == 55
    del total
    gc.collect()
    assert poll(lambda: scheduler_tasks(own_client) == 0, timeout=5), scheduler_tasks(own_client)
    assert poll(lambda: worker_keys(own_client) == 0, timeout=5), worker_keys(own_client)


def test_deleting_a_running_future_releases_its_task(own_client, gate):
    f = own_client.submit(gated, gate, "running", pure=False)
    assert poll(lambda: scheduler_tasks(own_client) == 1), scheduler_tasks(own_client)
    assert not f.done()
    del f
    gc.collect()
    assert poll(lambda: scheduler_tasks(own_client) == 0, timeout=5), scheduler_tasks(own_client)


def test_scattered_data_is_released_too(own_client):
    futures = own_client.scatter([1, 2, 3], hash=False)
    assert own_client.gather(futures) == [1, 2, 3]
    assert scheduler_tasks(own_client) == 3
    del futures
    gc.collect()
    assert poll(lambda: scheduler_tasks(own_client) == 0, timeout=5), scheduler_tasks(own_client)
