"""Dask's coordination objects on a ``LocalCluster`` of worker processes: ``Variable``,
``Queue``, ``Lock``, ``Semaphore``, ``Event``, ``Pub``/``Sub``, published datasets and the
event log — from the client and from tasks (``get_client``/``worker_client``), futures as
values, timeouts raising ``TimeoutError`` as Dask's do, and a holder process dying.
"""

import os
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from oxidask.distributed import (
    Client,
    Event,
    LocalCluster,
    Lock,
    Pub,
    Queue,
    Semaphore,
    Sub,
    Variable,
    get_client,
    worker_client,
)

# -- functions the tasks run (module level: the workers import this file by path) ----------


def produce(name, n):
    q = Queue(name)
    for i in range(n):
        q.put(i, timeout=60)
    return n


def consume(name, n):
    q = Queue(name)
    return sum(q.get(timeout=60) for _ in range(n))


def locked_increment(name, i):
    lock = Lock(name)
    var = Variable(name)
    with lock:
        v = var.get(timeout=60)
        time.sleep(0.002)  # widen the read-modify-write window
        var.set(v + 1)
    return v


def wait_for_event_then_read(event_name, var_name):
    with worker_client():
        assert Event(event_name).wait(timeout=60)
        return Variable(var_name).get(timeout=5)


def bounded_by_semaphore(sem, counter_name, i):
    with sem:
        c = Variable(counter_name)
        with Lock(counter_name):
            now = c.get() + 1
            c.set(now)
        time.sleep(0.05)
        with Lock(counter_name):
            c.set(c.get() - 1)
    return now


def square(x):
    return x * x


def submit_and_share(name):
    client = get_client()
    Variable(name).set(client.submit(square, 7))
    return True


def publish_from_task(topic, n):
    pub = Pub(topic)
    for i in range(n):
        pub.put(i)
    return n


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


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# -- Variable --------------------------------------------------------------------------------


def test_variable_set_get_delete_and_timeout(client):
    name = unique("v")
    x = Variable(name)
    with pytest.raises(TimeoutError):
        x.get(timeout=0.2)
    x.set({"a": [1, 2]})
    # Two variables of the same name are the same variable (the book's tip).
    assert Variable(name, client=client).get(timeout="1s") == {"a": [1, 2]}
    x.delete()
    with pytest.raises(TimeoutError):
        x.get(timeout=0)


def test_variable_holds_a_future_after_its_submitter_drops_it(client):
    name = unique("v")
    f = client.submit(square, 12)
    Variable(name).set(f)
    key = f.key
    del f
    g = Variable(name).get(timeout=5)
    assert g.key == key
    assert g.result() == 144
    # A future set by a task, read by the client.
    name2 = unique("v")
    assert client.submit(submit_and_share, name2).result()
    assert Variable(name2).get(timeout=30).result() == 49


def test_variable_counter_under_a_lock_across_worker_processes(client):
    name = unique("counter")
    Variable(name).set(0)
    futures = client.map(locked_increment, [name] * 16, range(16))
    seen = sorted(client.gather(futures))
    assert seen == list(range(16)), "each task saw a distinct count"
    assert Variable(name).get() == 16


# -- Queue ----------------------------------------------------------------------------------


def test_queue_fifo_batch_qsize_and_timeouts(client):
    q = Queue(unique("q"))
    for i in range(5):
        q.put(i)
    assert q.qsize() == 5
    assert q.get() == 0
    assert q.get(batch=2) == [1, 2]
    assert q.get(batch=True) == [3, 4]
    assert q.get(batch=True) == []
    with pytest.raises(TimeoutError):
        q.get(timeout=0.1)
    bounded = Queue(unique("q"), maxsize=1)
    bounded.put("a")
    with pytest.raises(TimeoutError):
        bounded.put("b", timeout=0.1)
    assert bounded.get() == "a"


def test_tasks_produce_and_consume_through_a_bounded_queue(client):
    name = unique("jobs")
    Queue(name, maxsize=2)  # made bounded before the tasks use it
    p = client.submit(produce, name, 40)
    c = client.submit(consume, name, 40)
    assert c.result(timeout=120) == sum(range(40))
    assert p.result() == 40


def test_futures_as_queue_items_stay_alive(client):
    q = Queue(unique("q"))
    fs = client.map(square, range(5))
    for f in fs:
        q.put(f)
    keys = [f.key for f in fs]
    del fs, f
    got = [q.get(timeout=5) for _ in range(5)]
    assert [g.key for g in got] == keys
    assert client.gather(got) == [0, 1, 4, 9, 16]
    # Futures nested inside a value travel too.
    q.put({"futures": client.map(square, [10, 11]), "tag": "x"})
    item = q.get(timeout=5)
    assert item["tag"] == "x" and client.gather(item["futures"]) == [100, 121]


# -- Lock, Semaphore, Event ------------------------------------------------------------------


def test_lock_acquire_timeout_release_rules(client):
    name = unique("lock")
    a, b = Lock(name), Lock(name)
    assert a.acquire()
    assert a.locked()
    assert b.acquire(blocking=False) is False
    assert b.acquire(timeout=0.1) is False
    with pytest.raises(RuntimeError, match="Released too often"):
        b.release()
    with pytest.raises(ValueError):
        b.acquire(blocking=False, timeout=1)
    a.release()
    assert b.acquire(timeout=5)
    b.release()
    assert not a.locked()


def test_semaphore_bounds_concurrent_tasks(client):
    name = unique("sem")
    counter = unique("running")
    Variable(counter).set(0)
    sem = Semaphore(max_leases=1, name=name)
    futures = client.map(bounded_by_semaphore, [sem] * 6, [counter] * 6, range(6))
    assert client.gather(futures) == [1] * 6, "never two holders at once"
    assert sem.get_value() == 0
    with pytest.raises(ValueError, match="max_leases"):
        Semaphore(max_leases=3, name=name).acquire()
    with pytest.raises(RuntimeError, match="Released too often"):
        sem.release()


def test_event_wakes_a_waiting_task(client):
    ev, var = unique("ev"), unique("v")
    f = client.submit(wait_for_event_then_read, ev, var)
    assert Event(ev).wait(timeout=0.1) is False
    Variable(var).set("payload")
    Event(ev).set()
    assert Event(ev).is_set()
    assert f.result(timeout=60) == "payload"
    Event(ev).clear()
    assert not Event(ev).is_set()


# -- Pub/Sub, datasets, events ---------------------------------------------------------------


def test_pub_sub_from_a_task(client):
    topic = unique("topic")
    sub = Sub(topic)
    other = Sub(topic)
    assert client.submit(publish_from_task, topic, 5).result() == 5
    assert [sub.get(timeout=10) for _ in range(5)] == list(range(5))
    assert other.buffer == list(range(5))
    with pytest.raises(TimeoutError):
        sub.get(timeout=0.1)
    Pub(topic).put({"x": 1})
    assert next(iter(sub)) == {"x": 1}


def test_published_datasets(client):
    name = unique("ds")
    f = client.submit(square, 9)
    client.publish_dataset(f, name=name)
    with pytest.raises(KeyError):
        client.publish_dataset(f, name=name)
    client.publish_dataset(f, name=name, override=True)
    del f
    assert name in client.list_datasets()
    assert client.get_dataset(name).result() == 81
    assert client.datasets[name].result() == 81
    client.unpublish_dataset(name)
    with pytest.raises(KeyError):
        client.get_dataset(name)
    assert client.get_dataset(name, default="none") == "none"
    client.datasets[name] = [1, 2, 3]
    assert client.get_dataset(name) == [1, 2, 3]
    del client.datasets[name]
    assert name not in client.datasets


def test_log_event_and_get_events(client):
    topic = unique("t")
    before = time.time()
    client.log_event(topic, {"step": 1})
    client.log_event([topic, topic + "-b"], "two")
    events = client.get_events(topic)
    assert [m for _, m in events] == [{"step": 1}, "two"]
    assert all(t >= before - 1 for t, _ in events)
    assert client.get_events()[topic + "-b"][0][1] == "two"


# -- departures ------------------------------------------------------------------------------


HOLDER = textwrap.dedent(
    """
    import sys, time
    from oxidask.distributed import Client, Lock, Queue, Variable
    client = Client(sys.argv[1])
    Lock(sys.argv[2]).acquire()
    Variable(sys.argv[2]).set(client.submit(pow, 2, 10))
    client.publish_dataset(answer=client.submit(pow, 3, 3), override=True)
    print("held", flush=True)
    time.sleep(600)
    """
)


def test_a_lock_holder_process_dies_and_its_futures_in_coordination_objects_survive(client):
    name = unique("lock")
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, client.scheduler_address, name],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert proc.stdout.readline().strip() == "held"
        lock = Lock(name)
        assert lock.acquire(blocking=False) is False
        proc.kill()
        proc.wait()
        assert lock.acquire(timeout=60), "released when its holder died"
        lock.release()
        # What it stored outlives it: the variable and the dataset hold their futures.
        assert Variable(name).get(timeout=5).result() == 1024
        assert client.get_dataset("answer").result() == 27
        client.unpublish_dataset("answer")
    finally:
        proc.kill()
        proc.wait()


# -- docstrings ------------------------------------------------------------------------------


def test_docstring_examples():
    import doctest

    import oxidask.distributed.datasets
    import oxidask.distributed.event
    import oxidask.distributed.lock
    import oxidask.distributed.pubsub
    import oxidask.distributed.queues
    import oxidask.distributed.semaphore
    import oxidask.distributed.variable

    for module in [
        oxidask.distributed.variable,
        oxidask.distributed.queues,
        oxidask.distributed.lock,
        oxidask.distributed.semaphore,
        oxidask.distributed.event,
        oxidask.distributed.pubsub,
        oxidask.distributed.datasets,
    ]:
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0, module.__name__
        assert result.failed == 0, module.__name__
