"""Bags on a LocalCluster of worker processes (one cluster for the module): results equal the
plain-Python oracle, persist keeps partitions on the workers, exceptions come back as they
were raised, and read_text/to_textfiles run on the workers."""

import json
import os
from collections import Counter

import pytest

import oxidask
import oxidask.bag as db
from bag_oracle import make_data, make_words


def test_operations_on_the_cluster(client):
    words = make_words(11, 300)
    data = make_data(12, 200)
    w = db.from_sequence(words, npartitions=7)
    b = db.from_sequence(data, npartitions=5)
    key = lambda x: x % 3  # noqa: E731
    got = oxidask.compute(
        w.frequencies(sort=True),
        w.topk(4, key=len),
        w.distinct(),
        b.map(lambda x: x * 2).filter(lambda x: x > 0),
        b.sum(split_every=2),
        b.mean(),
        b.foldby(key, lambda acc, x: acc + x, 0, split_every=2),
        b.groupby(key),
        b.map(lambda x, m: x - m, b.min()),
        b.count(),
    )
    freq, top, distinct, pos, total, mean, folded, groups, shifted, n = got
    assert dict(freq) == dict(Counter(words))
    assert [c for _, c in freq] == sorted(Counter(words).values(), reverse=True)
    assert [len(x) for x in top] == sorted(map(len, words), reverse=True)[:4]
    assert sorted(distinct) == sorted(set(words))
    assert pos == [x * 2 for x in data if x * 2 > 0]
    assert total == sum(data) and n == len(data)
    assert mean == pytest.approx(sum(data) / len(data))
    expect = {}
    for x in data:
        expect.setdefault(key(x), []).append(x)
    assert dict(folded) == {k: sum(v) for k, v in expect.items()}
    assert {k: sorted(v) for k, v in groups} == {k: sorted(v) for k, v in expect.items()}
    assert len(groups) == len(expect)
    assert shifted == [x - min(data) for x in data]


def test_tasks_run_on_the_workers(client):
    pids = db.from_sequence(range(8), npartitions=4).map(lambda _: os.getpid()).distinct().compute()
    assert pids and os.getpid() not in pids


def test_persist_keeps_partitions_on_the_cluster(client):
    b = db.from_sequence(range(100), npartitions=4).map(lambda x: x * x)
    p = b.persist()
    assert isinstance(p, db.Bag) and p.npartitions == 4
    assert all(d._futures is not None for d in p.to_delayed())
    assert p.sum().compute() == sum(x * x for x in range(100))
    assert p.compute() == [x * x for x in range(100)]
    item = b.count().persist()
    assert item.compute() == 100


def test_exceptions_come_back_as_raised(client):
    def bad(x):
        if x == 3:
            raise KeyError(f"no record {x}")
        return x

    with pytest.raises(KeyError, match="no record 3"):
        db.from_sequence(range(6), npartitions=3).map(bad).compute()
    with pytest.raises(json.JSONDecodeError):
        db.from_sequence(['{"a": 1}', "{oops"], npartitions=2).map(json.loads).compute()
    # The cluster keeps serving.
    assert db.from_sequence(range(6), npartitions=3).sum().compute() == 15


def test_text_files_on_the_workers(client, tmp_path):
    lines = [f"{i} {'x' * (i % 5)}" for i in range(40)]
    paths = db.from_sequence(lines, npartitions=3).to_textfiles(str(tmp_path / "*.txt.gz"))
    assert len(paths) == 3 and all(os.path.exists(p) for p in paths)
    back = db.read_text(str(tmp_path / "*.txt.gz")).map(lambda line: line.rstrip("\n"))
    assert back.compute() == lines
    assert back.compute(scheduler=client) == lines
    assert back.compute(scheduler="sync") == lines


def test_from_delayed_with_futures(client):
    futures = client.map(lambda i: list(range(i)), [2, 3, 0, 4])
    b = db.from_delayed(futures)
    assert b.npartitions == 4
    assert b.compute() == [0, 1, 0, 1, 2, 0, 1, 2, 3]
    assert b.map(lambda x: x * 10).sum().compute() == 10 * (1 + 3 + 6)
    scattered = client.scatter([["a", "b"], ["c"]])
    assert db.from_delayed(scattered).frequencies().compute() == [("a", 1), ("b", 1), ("c", 1)]


def test_bags_and_items_as_task_arguments(client):
    b = db.from_sequence(range(10), npartitions=4)
    assert client.submit(lambda xs, m: [x - m for x in xs], b, b.min()).result() == list(range(10))
    assert client.submit(len, b.filter(lambda x: x % 2)).result() == 5
    assert oxidask.delayed(sum)(b).compute() == 45
