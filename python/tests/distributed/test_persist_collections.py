"""Collections persisted on a cluster stay there: ``client.persist(collection)`` and
``collection.persist()`` with a client return the collection backed by futures on the workers
(``futures_of`` lists them); later computations refer to those pieces (each computed once, not
moved, not sent from the client), give what NumPy and plain Python give, and dropping the
collection releases them. ``client.compute(collection)`` is a future of the finished value.

One ``LocalCluster`` of two worker processes for the module, not the default client's, so
that its task counts are this module's alone.
"""

import gc
import time

import numpy as np
import pytest

import oxidask.array as da
import oxidask.bag as db
from oxidask.distributed import Client, Future, LocalCluster, futures_of


def square(x):
    return x * x


def is_even(x):
    return x % 2 == 0


@pytest.fixture(scope="module")
def client():
    cluster = LocalCluster(n_workers=2, threads_per_worker=1)
    c = Client(cluster, set_as_default=False)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


def poll(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def computed(client, keys):
    """How many times the scheduler's task stream saw each of ``keys`` computed."""
    counts = dict.fromkeys(keys, 0)
    for r in client.get_task_stream():
        if not any(s["action"] == "compute" for s in r["startstops"]):
            continue
        for k in keys:
            # The stream names a key given as text by that text and the key's token.
            if r["key"] == k or r["key"].startswith(k + "-"):
                counts[k] += 1
    return counts


def released(client):
    gc.collect()
    return poll(lambda: client._core.summary()["tasks"] == 0)


def test_a_persisted_bag_stays_on_the_workers(client):
    b = db.from_sequence(range(100), npartitions=4).map(square)
    p = client.persist(b)
    assert isinstance(p, db.Bag)
    futures = futures_of(p)
    assert len(futures) == 4 and all(isinstance(f, Future) for f in futures)
    keys = [f.key for f in futures]
    client.gather(futures)
    holders = client.who_has(futures)

    total = client.compute(p.sum())
    assert isinstance(total, Future)
    assert total.result() == sum(i * i for i in range(100))
    evens = client.compute(p.filter(is_even).count(), sync=True)
    assert evens == sum(1 for i in range(100) if (i * i) % 2 == 0)
    assert client.compute(p, sync=True) == [i * i for i in range(100)]

    assert client.who_has(futures) == holders, "the partitions did not move"
    assert computed(client, keys) == dict.fromkeys(keys, 1), "each partition computed once"

    del p, futures, total
    assert released(client), "dropping the persisted bag releases its partitions"


def test_a_persisted_array_stays_on_the_workers(client):
    data = np.random.default_rng(3).random((60, 40))
    x = da.from_array(data, chunks=(20, 20))
    y = np.sqrt(x * 2 + 1)
    want = np.sqrt(data * 2 + 1)

    p = client.persist(y)
    assert isinstance(p, da.Array) and p.chunks == y.chunks
    futures = futures_of(p)
    assert len(futures) == 6
    keys = [f.key for f in futures]
    client.gather(futures)
    holders = client.who_has(futures)

    s = client.compute(p.sum())
    np.testing.assert_allclose(s.result(), want.sum(), rtol=1e-12)
    m = client.compute((p - p.mean(axis=0)).std(axis=1), sync=True)
    np.testing.assert_allclose(m, (want - want.mean(axis=0)).std(axis=1), rtol=1e-12)
    np.testing.assert_array_equal(client.compute(p).result(), want)

    assert client.who_has(futures) == holders, "the blocks did not move"
    assert computed(client, keys) == dict.fromkeys(keys, 1), "each block computed once"

    del p, futures, s
    assert released(client), "dropping the persisted array releases its blocks"


def test_compute_and_persist_keep_the_shape_of_what_they_are_given(client):
    b = db.from_sequence([1, 2, 3], npartitions=2)
    x = da.arange(6, chunks=3)
    fs = client.compute([b, x.sum(), 7])
    assert isinstance(fs, list) and isinstance(fs[0], Future) and fs[2] == 7
    assert client.gather(fs) == [[1, 2, 3], 15, 7]
    d = client.compute({"bag": b, "total": x.sum()}, sync=True)
    assert d == {"bag": [1, 2, 3], "total": 15}

    pb, px = client.persist((b, x))
    assert len(futures_of([pb, px])) == 2 + 2
    assert len(futures_of({"b": pb, "again": [pb]})) == 2, "each future once"
    assert pb.compute(scheduler=client) == [1, 2, 3]
    np.testing.assert_array_equal(px.compute(scheduler=client), np.arange(6))
    del fs, pb, px
    assert released(client)


def test_persist_with_the_client_as_scheduler_matches_client_persist(client):
    b = db.from_sequence(range(10), npartitions=2).map(square)
    p = b.persist(scheduler=client)
    futures = futures_of(p)
    assert len(futures) == 2
    assert client.compute(p.sum(), sync=True) == sum(i * i for i in range(10))
    keys = [f.key for f in futures]
    assert computed(client, keys) == dict.fromkeys(keys, 1)
    assert futures_of(b) == [], "a collection not persisted has no futures"
    del p, futures
    assert released(client)
