"""Every bag operation against a plain-Python oracle (lists, Counter, itertools), over several
seeds and partitionings (one partition, one record per partition, random cuts with empty
partitions, skew), on the sync and threaded schedulers."""

import itertools
import operator
import statistics
from collections import Counter

import pytest

import oxidask
import oxidask.bag as db
from bag_oracle import make_data, make_words, partitionings

SEEDS = [0, 1, 2, 3]


def bag_of(parts):
    """A bag with exactly these partitions."""
    return db.concat([db.from_sequence(p, npartitions=1) for p in parts])


def cases(make):
    out = []
    for seed in SEEDS:
        data = make(seed)
        for desc, parts in partitionings(data, seed):
            out.append(pytest.param(data, parts, id=f"s{seed}-{desc}-n{len(data)}"))
    for desc, parts in partitionings([], 0)[:3]:  # no records at all
        out.append(pytest.param([], parts, id=f"empty-{desc}"))
    return out


def test_bag_of_keeps_the_partitions(scheduler):
    parts = [[], [1, 2], [], [3]]
    b = bag_of(parts)
    assert b.npartitions == 4
    assert [p.compute(scheduler=scheduler) for p in b.to_delayed()] == parts


@pytest.mark.parametrize("data,parts", cases(make_data))
def test_elementwise(data, parts, scheduler):
    b = bag_of(parts)
    other = bag_of([[x * 10 for x in p] for p in parts])
    top = b.max() if data else None

    def add3(x, y, z=0):
        return x + y + z

    got = oxidask.compute(
        b.map(lambda x: x * 2),
        b.map(operator.add, other),
        b.map(add3, 5, z=other),
        b.map(add3, y=1, z=2),
        b.filter(lambda x: x % 3 == 0),
        b.remove(lambda x: x % 3 == 0),
        b.map(lambda x: [x] * (abs(x) % 3)).flatten(),
        b.map(lambda x: (x, -x)).starmap(add3, z=7),
        b.map(lambda x: str(x)).str.zfill(4),
        scheduler=scheduler,
    )
    assert got[0] == [x * 2 for x in data]
    assert got[1] == [x + x * 10 for x in data]
    assert got[2] == [x + 5 + x * 10 for x in data]
    assert got[3] == [x + 3 for x in data]
    assert got[4] == [x for x in data if x % 3 == 0]
    assert got[5] == [x for x in data if x % 3 != 0]
    assert got[6] == list(itertools.chain.from_iterable([x] * (abs(x) % 3) for x in data))
    assert got[7] == [x - x + 7 for x in data]
    assert got[8] == [str(x).zfill(4) for x in data]
    if data:
        assert b.map(add3, top).compute(scheduler=scheduler) == [x + max(data) for x in data]
        pairs = b.map(lambda x: (x, 1))
        assert pairs.starmap(add3, z=top).compute(scheduler=scheduler) == [x + 1 + max(data) for x in data]


@pytest.mark.parametrize("data,parts", cases(make_data))
def test_map_partitions_and_layout(data, parts, scheduler):
    b = bag_of(parts)
    sums = b.map_partitions(lambda p: [sum(p)])
    scaled = b.map_partitions(lambda p, k, off=0: (x * k + off for x in p), 3, off=b.count())
    k = 4
    got = oxidask.compute(
        sums,
        scaled,
        b.take(k, npartitions=-1, compute=False),
        b.repartition(npartitions=3),
        b.repartition(npartitions=max(len(parts) * 2, 1) + 1),
        b.accumulate(operator.add),
        b.accumulate(operator.add, initial=100),
        scheduler=scheduler,
    )
    assert got[0] == [sum(p) for p in parts]
    assert got[1] == [x * 3 + len(data) for x in data]
    assert got[2] == data[:k]
    assert got[3] == data
    assert got[4] == data
    assert got[5] == list(itertools.accumulate(data))
    assert got[6] == list(itertools.accumulate(data, initial=100))
    assert b.repartition(npartitions=3).npartitions == 3
    assert b.repartition(npartitions=len(parts) * 2 + 1).npartitions == len(parts) * 2 + 1
    # take from the first partition only (the default), as Dask: what it holds, up to k.
    with pytest.warns(UserWarning) if len(parts[0]) < k else _no_warning():
        assert b.take(k) == tuple(parts[0][:k])


class _no_warning:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("data,parts", cases(make_data))
@pytest.mark.parametrize("split_every", [None, 2, False])
def test_reductions(data, parts, split_every, scheduler):
    b = bag_of(parts)
    got = oxidask.compute(
        b.count(split_every=split_every),
        b.sum(split_every=split_every),
        b.any(split_every=split_every),
        b.all(split_every=split_every),
        b.map(lambda x: x > -15).all(split_every=split_every),
        b.reduction(len, sum, split_every=split_every),
        b.reduction(lambda p: sorted(p)[-1:], lambda ps: sorted(x for p in ps for x in p)[-1:],
                    split_every=split_every),
        scheduler=scheduler,
    )
    assert got[0] == len(data)
    assert got[1] == sum(data)
    assert got[2] == any(data)
    assert got[3] == all(data)
    assert got[4] == all(x > -15 for x in data)
    assert got[5] == len(data)
    assert got[6] == ([max(data)] if data else [])
    fold_sum = b.fold(operator.add, initial=0, split_every=split_every)
    fold_set = b.fold(lambda acc, x: acc | {x}, set.union, initial=set(), split_every=split_every)
    if data or len(parts) == 1:
        assert fold_sum.compute(scheduler=scheduler) == sum(data)
        assert fold_set.compute(scheduler=scheduler) == set(data)
    else:
        # As Dask: empty partitions give no result, and combine (no initial) has nothing.
        with pytest.raises(TypeError, match="reduce"):
            fold_sum.compute(scheduler=scheduler)
    if data:
        mn, mx, mean, var, std, var1, fold = oxidask.compute(
            b.min(split_every=split_every), b.max(split_every=split_every), b.mean(), b.var(),
            b.std(), b.var(ddof=1) if len(data) > 1 else b.var(),
            b.fold(operator.add, split_every=split_every),
            scheduler=scheduler,
        )
        assert (mn, mx, fold) == (min(data), max(data), sum(data))
        assert mean == pytest.approx(statistics.fmean(data))
        assert var == pytest.approx(statistics.pvariance(data))
        assert std == pytest.approx(statistics.pstdev(data))
        if len(data) > 1:
            assert var1 == pytest.approx(statistics.variance(data))
    else:
        # Python's own errors on empty input, as Dask gives them.
        with pytest.raises(ValueError):
            b.max(split_every=split_every).compute(scheduler=scheduler)
        with pytest.raises(ValueError):
            b.min().compute(scheduler=scheduler)
        # As Dask: 0/0 from one empty partition; nothing to unpack from several.
        with pytest.raises(ZeroDivisionError if len(parts) == 1 else ValueError):
            b.mean().compute(scheduler=scheduler)
        with pytest.raises(TypeError):  # reduce() of an empty sequence with no initial value
            b.fold(operator.add).compute(scheduler=scheduler)


@pytest.mark.parametrize("data,parts", cases(make_words))
def test_frequencies_topk_distinct(data, parts, scheduler):
    b = bag_of(parts)
    lengths = b.map(len)
    got = oxidask.compute(
        b.frequencies(),
        b.frequencies(sort=True, split_every=2),
        b.distinct(),
        b.distinct(key=len),
        b.map(lambda w: {"w": w, "n": len(w)}).distinct(key="n").pluck("n"),
        b.topk(3),
        b.topk(3, key=lambda w: (len(w), w)),
        b.map(lambda w: (len(w), w)).topk(2, key=lambda n, w: (n, w), split_every=2),
        lengths.topk(5, split_every=2),
        scheduler=scheduler,
    )
    freq, freq_sorted, distinct, by_len, by_n, top, top_key, top_star, top_len = got
    assert Counter(dict(freq)) == Counter(data) and len(freq) == len(set(data))
    assert Counter(dict(freq_sorted)) == Counter(data)
    assert [c for _, c in freq_sorted] == sorted(Counter(data).values(), reverse=True)
    assert sorted(distinct) == sorted(set(data)) and len(distinct) == len(set(data))
    assert sorted(map(len, by_len)) == sorted({len(w) for w in data})
    # The first record of each key is kept.
    assert set(by_len) <= set(data)
    assert sorted(by_n) == sorted({len(w) for w in data})
    assert top == sorted(data, reverse=True)[:3]
    assert top_key == sorted(data, key=lambda w: (len(w), w), reverse=True)[:3]
    assert top_star == sorted(((len(w), w) for w in data), reverse=True)[:2]
    assert top_len == sorted(map(len, data), reverse=True)[:5]


@pytest.mark.parametrize("data,parts", cases(make_data))
def test_foldby_and_groupby(data, parts, scheduler):
    b = bag_of(parts)
    key = lambda x: x % 4  # noqa: E731
    expect_sums = {}
    expect_groups = {}
    for x in data:
        expect_sums[key(x)] = expect_sums.get(key(x), 0) + x
        expect_groups.setdefault(key(x), []).append(x)
    got = oxidask.compute(
        b.foldby(key, operator.add, 0),
        b.foldby(key, operator.add, 0, operator.add, 0, split_every=2),
        b.foldby(key, lambda acc, x: acc + [x], [], lambda a, c: a + c, [], split_every=3),
        b.foldby(key, max),
        b.map(lambda x: {"k": x % 4, "v": x}).foldby("k", lambda acc, r: acc + r["v"], 0, operator.add),
        b.groupby(key),
        b.groupby(key, npartitions=2),
        b.groupby(key, shuffle="disk"),
        scheduler=scheduler,
    )
    sums, sums2, lists, maxes, by_field, groups, groups2, groups_disk = got
    assert dict(sums) == expect_sums and len(sums) == len(expect_sums)
    assert dict(sums2) == expect_sums
    assert {k: sorted(v) for k, v in lists} == {k: sorted(v) for k, v in expect_groups.items()}
    assert dict(maxes) == {k: max(v) for k, v in expect_groups.items()}
    assert dict(by_field) == expect_sums
    for g in (groups, groups2, groups_disk):
        assert len(g) == len(expect_groups)  # each key in exactly one output partition
        assert {k: sorted(v) for k, v in g} == {k: sorted(v) for k, v in expect_groups.items()}
    assert b.groupby(key, npartitions=2).npartitions == 2


def test_pluck_forms(scheduler):
    recs = [{"name": "Alice", "credits": [1, 2, 3], "age": 30}, {"name": "Bob", "credits": [10, 20]}]
    b = db.from_sequence(recs, npartitions=2)
    got = oxidask.compute(
        b.pluck("name"),
        b.pluck("credits").pluck(0),
        b.pluck(["name", "credits"]),
        b.pluck("age", default=None),
        b.pluck(["name", "age"], default=-1),
        scheduler=scheduler,
    )
    assert got[0] == ["Alice", "Bob"]
    assert got[1] == [1, 10]
    assert got[2] == [("Alice", [1, 2, 3]), ("Bob", [10, 20])]
    assert got[3] == [30, None]
    assert got[4] == [("Alice", 30), ("Bob", -1)]
    with pytest.raises(KeyError):
        b.pluck("age").compute(scheduler=scheduler)
    first, second = db.from_sequence([(i, i * i) for i in range(5)]).unzip(2)
    assert first.compute(scheduler=scheduler) == list(range(5))
    assert second.compute(scheduler=scheduler) == [i * i for i in range(5)]


def test_str_accessor(scheduler):
    b = db.from_sequence(["Alice Smith", "Bob Jones", "Charlie Smith"], npartitions=2)
    assert b.str.lower().compute(scheduler=scheduler) == ["alice smith", "bob jones", "charlie smith"]
    assert b.str.match("*Smith").compute(scheduler=scheduler) == ["Alice Smith", "Charlie Smith"]
    assert b.str.split(" ").compute(scheduler=scheduler) == [s.split(" ") for s in
                                                              ["Alice Smith", "Bob Jones", "Charlie Smith"]]
    assert b.str.split().flatten().count().compute(scheduler=scheduler) == 6
    assert b.str.replace("Smith", "S.").compute(scheduler=scheduler)[0] == "Alice S."
    with pytest.raises(AttributeError, match="not_a_method"):
        b.str.not_a_method()


@pytest.mark.parametrize(
    "n,kwargs,expect",
    [
        (0, {}, 1),
        (5, {}, 5),
        (100, {}, 100),
        (1000, {}, 250),
        (10, {"npartitions": 3}, 3),
        (10, {"npartitions": 4}, 4),
        (1000, {"npartitions": 7}, 8),
        (10, {"partition_size": 3}, 4),
        (3, {"npartitions": 10}, 3),
    ],
)
def test_from_sequence_partitions_as_dask(n, kwargs, expect):
    # The expected counts are what dask.bag.from_sequence 2026.8 gives for the same input.
    b = db.from_sequence(range(n), **kwargs)
    assert b.npartitions == expect
    parts = [p.compute(scheduler="sync") for p in b.to_delayed()]
    assert list(itertools.chain.from_iterable(parts)) == list(range(n))


def test_range_zip_concat_product_join(scheduler):
    r = db.range(10, npartitions=3)
    assert r.npartitions == 3
    assert r.compute(scheduler=scheduler) == list(range(10))
    a = db.from_sequence(range(6), npartitions=2)
    c = db.from_sequence("abcdef", npartitions=2)
    assert db.zip(a, c).compute(scheduler=scheduler) == list(zip(range(6), "abcdef"))
    both = db.concat([a, c, db.from_sequence([], npartitions=1)])
    assert both.npartitions == 5
    assert both.compute(scheduler=scheduler) == list(range(6)) + list("abcdef")
    p = db.from_sequence([1, 2], npartitions=2).product(db.from_sequence("xy", npartitions=1))
    assert sorted(p.compute(scheduler=scheduler)) == sorted(itertools.product([1, 2], "xy"))
    people = db.from_sequence(["Alice", "Bob", "Charlie"], npartitions=2)
    fruit = ["Apple", "Apricot", "Banana"]
    joined = people.join(fruit, lambda x: x[0]).compute(scheduler=scheduler)
    assert sorted(joined) == [("Apple", "Alice"), ("Apricot", "Alice"), ("Banana", "Bob")]
    assert db.map(operator.add, a, 1).compute(scheduler=scheduler) == [x + 1 for x in range(6)]
    assert db.map_partitions(len, a).compute(scheduler=scheduler) == [3, 3]


def test_collection_protocol(scheduler, tmp_path):
    b = db.from_sequence(range(8), npartitions=4)
    m = b.map(lambda x: x + 1)
    assert repr(b) == "dask.bag<from_sequence, npartitions=4>"
    assert repr(m) == "dask.bag<lambda, npartitions=4>"
    assert repr(b.filter(bool)) == "dask.bag<filter-bool, npartitions=4>"
    assert str(m.frequencies()).startswith("dask.bag<dictitems, npartitions=1>")
    assert oxidask.is_dask_collection(b) and oxidask.is_dask_collection(b.count())
    assert m.__dask_keys__() == [(m.name, i) for i in range(4)]
    assert len(m.dask) >= 8  # the map's tasks and the data they read
    # Several collections at once; plain values pass through; a Delayed too.
    total = m.sum()
    d = oxidask.delayed(lambda x: x * 2)(5)
    got = oxidask.compute(m, total, 7, d, b.count(), scheduler=scheduler)
    assert got == (list(range(1, 9)), 36, 7, 10, 8)
    # Item: compute, int(), apply, to_delayed, usable as an argument.
    assert int(total) == 36 and float(total) == 36.0 and bool(total)
    assert total.apply(lambda t: t // 2).compute(scheduler=scheduler) == 18
    assert total.to_delayed().compute(scheduler=scheduler) == 36
    assert db.Item.from_delayed(d).compute(scheduler=scheduler) == 10
    # persist: the same bag, backed by results.
    (p,) = oxidask.persist(m, scheduler=scheduler)
    assert isinstance(p, db.Bag) and p.npartitions == 4 and p.name == m.name
    assert p.compute(scheduler=scheduler) == list(range(1, 9))
    assert m.persist(scheduler=scheduler).sum().compute(scheduler=scheduler) == 36
    assert total.persist(scheduler=scheduler).compute(scheduler=scheduler) == 36
    # to_delayed / from_delayed round trip; iterators become lists.
    parts = m.to_delayed()
    assert [x.compute(scheduler=scheduler) for x in parts] == [[1, 2], [3, 4], [5, 6], [7, 8]]
    back = db.from_delayed(parts)
    assert back.compute(scheduler=scheduler) == list(range(1, 9))
    gen = db.from_delayed([oxidask.delayed(lambda n: (i for i in range(n)))(k) for k in (2, 3)])
    assert gen.compute(scheduler=scheduler) == [0, 1, 0, 1, 2]
    # Iterating computes.
    assert list(m) == list(range(1, 9))
    # Dask's expert constructor: a raw graph.
    raw = db.Bag({("x", 0): (range, 3), ("x", 1): (range, 2)}, "x", npartitions=2)
    assert sorted(raw.map(lambda x: x * 10).compute(scheduler=scheduler)) == [0, 0, 10, 10, 20]
    # visualize writes a Graphviz file (.dot needs no Graphviz installed).
    out = tmp_path / "bag.dot"
    oxidask.visualize(m.frequencies(), filename=str(out))
    assert out.exists() and "frequencies" in out.read_text()
    b.count().visualize(filename=str(tmp_path / "count.dot"))
    assert (tmp_path / "count.dot").exists()


def test_same_operations_share_keys():
    b = db.from_sequence(range(10), npartitions=3)
    assert b.map(str).name == b.map(str).name
    assert b.count().key == b.count().key
    assert b.map(str).name != b.map(repr).name
    assert db.from_sequence(range(10), npartitions=3).name == b.name
    assert db.from_sequence(range(11), npartitions=3).name != b.name


def test_processes_scheduler():
    b = db.from_sequence(make_words(7, 50), npartitions=3)
    expect = Counter(make_words(7, 50))
    got = dict(b.frequencies().compute(scheduler="processes"))
    assert got == dict(expect)
    assert b.map(len).sum().compute(scheduler="processes") == sum(map(len, make_words(7, 50)))


def test_partition_size_repartition(scheduler):
    b = db.from_sequence(list(range(200)), npartitions=2)
    r = b.repartition(partition_size=600)
    assert r.npartitions > 2
    assert r.compute(scheduler=scheduler) == list(range(200))
    with pytest.raises(ValueError, match="exactly one"):
        b.repartition()


@pytest.mark.parametrize("data,parts", cases(make_data))
def test_random_sample(data, parts, scheduler):
    b = bag_of(parts)
    s1 = b.random_sample(0.5, 43).compute(scheduler=scheduler)
    assert s1 == b.random_sample(0.5, 43).compute(scheduler=scheduler)  # repeatable
    # A sub-sequence of the records, in order.
    it = iter(data)
    assert all(any(x == y for y in it) for x in s1)
    assert b.random_sample(0.0).compute(scheduler=scheduler) == []
    assert b.random_sample(1.0).compute(scheduler=scheduler) == data
    with pytest.raises(ValueError, match="prob"):
        b.random_sample(1.5)


@pytest.mark.parametrize("nparts,npartitions,max_branch", [(40, None, None), (9, 30, 4), (50, 5, 2), (3, 17, 3)])
def test_staged_groupby(nparts, npartitions, max_branch, scheduler):
    data = make_data(99, 300)
    b = db.from_sequence(data, npartitions=nparts)
    key = lambda x: x % 11  # noqa: E731
    g = b.groupby(key, npartitions=npartitions, max_branch=max_branch)
    out = npartitions or nparts
    if out > (max_branch or 32):
        assert g.npartitions >= out  # k**stages partitions, as Dask's task shuffle
    got = g.compute(scheduler=scheduler)
    expect = {}
    for x in data:
        expect.setdefault(key(x), []).append(x)
    assert len(got) == len(expect)
    assert {k: sorted(v) for k, v in got} == {k: sorted(v) for k, v in expect.items()}


def test_iterators_become_lists(scheduler):
    b = db.from_sequence(range(4), npartitions=2)
    assert b.map(lambda x: iter([x, x])).compute(scheduler=scheduler) == [[0, 0], [1, 1], [2, 2], [3, 3]]
    assert b.map(lambda x: iter(range(x))).flatten().compute(scheduler="processes") == [0, 0, 1, 0, 1, 2]


@pytest.mark.parametrize("was_enabled", [True, False])
def test_str_methods_leave_the_cycle_collector_as_they_found_it(was_enabled, scheduler):
    import gc

    b = db.from_sequence([f"w{i} x{i % 3}" for i in range(500)], npartitions=8)
    if not was_enabled:
        gc.disable()
    try:
        got = oxidask.compute(b.str.split(), b.str.upper().str.split("X"), scheduler=scheduler)
        assert got[0] == [f"w{i} x{i % 3}".split() for i in range(500)]
        assert got[1] == [f"w{i} x{i % 3}".upper().split("X") for i in range(500)]
        assert gc.isenabled() == was_enabled
    finally:
        gc.enable()


def test_compute_collections_inside_lists(scheduler):
    b = db.from_sequence(range(4), npartitions=2)
    d = oxidask.delayed(lambda x: x + 1)(1)
    got = oxidask.compute([b, b.count()], (b.sum(), [d, 3]), {"k": d}, scheduler=scheduler)
    assert got == ([[0, 1, 2, 3], 4], (6, [2, 3]), {"k": 2})
    assert oxidask.compute([b], traverse=False, scheduler=scheduler)[0][0] is b


def test_bags_and_items_as_delayed_arguments(scheduler):
    b = db.from_sequence(range(6), npartitions=3)
    total = b.sum()
    # As Dask: a delayed call receives a bag's records (one list) and an item's value.
    assert oxidask.delayed(len)(b).compute(scheduler=scheduler) == 6
    assert oxidask.delayed(lambda xs, t: [x / t for x in xs])(b, total).compute(scheduler=scheduler) == [
        x / 15 for x in range(6)
    ]
    assert oxidask.delayed(sorted)({"a": b.map(str)}).compute(scheduler=scheduler) == ["a"]
    assert oxidask.delayed(lambda d: d["n"])({"n": b.count()}).compute(scheduler=scheduler) == 6
    nested = oxidask.delayed(lambda pair: pair[0] + pair[1][0])((total, [b.max()]))
    assert nested.compute(scheduler=scheduler) == 20
    # Pure calls key on the bag's name.
    f = oxidask.delayed(len, pure=True)
    assert f(b).key == f(b).key and f(b).key != f(b.map(str)).key


def test_reachable_from_the_package():
    import oxidask as dask

    assert dask.bag is db and dask.bag.Bag is db.Bag
