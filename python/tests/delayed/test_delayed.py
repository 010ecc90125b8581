"""The delayed API, as Dask's ``dask.delayed``: wrapping, keys, containers, attribute access,
operators, ``compute``/``persist``/``visualize`` and configuration."""

import functools
import operator
import os
import shutil

import pytest

import oxidask as dask
from oxidask import delayed


def inc(x):
    return x + 1


def add(x, y):
    return x + y


class Counter:
    """Counts its calls in a file, so repeated computation shows across threads."""

    def __init__(self, path):
        self.path = path

    def __call__(self, x):
        with open(self.path, "a") as f:
            f.write("x")
        return x * 10

    def count(self):
        return len(open(self.path).read()) if os.path.exists(self.path) else 0


def test_decorator_forms_and_wrapping_any_callable():
    @delayed
    def double(x):
        return 2 * x

    @delayed()
    def triple(x):
        return 3 * x

    @delayed(pure=True, nout=2)
    def split(x):
        return x // 10, x % 10

    a, b = split(42)
    assert dask.compute(double(2), triple(2), a, b) == (4, 6, 4, 2)
    assert delayed(sum)([1, 2, 3]).compute() == 6  # builtin
    assert delayed(lambda x: x * x)(7).compute() == 49  # lambda
    assert delayed("abc".upper)().compute() == "ABC"  # bound method
    k = 5
    assert delayed(lambda x: x + k)(1).compute() == 6  # closure
    assert delayed(functools.partial(add, 100))(1).compute() == 101
    assert delayed(dict)(a=1, b=2).compute() == {"a": 1, "b": 2}  # keyword arguments
    assert delayed(add)(1, y=delayed(inc)(1)).compute() == 3  # lazy keyword argument


def test_keys_are_deterministic_for_pure_calls_and_fresh_otherwise():
    f = delayed(inc, pure=True)
    assert f(1).key == f(1).key
    assert f(1).key != f(2).key
    assert f(1).key.startswith("inc-")
    g = delayed(inc)
    assert g(1).key != g(1).key  # impure by default, as in Dask
    assert delayed(inc)(1, pure=True).key == delayed(inc)(1, pure=True).key
    assert delayed(lambda x: x)(1).key.startswith("lambda-")
    named = delayed(inc)(1, dask_key_name="my-key")
    assert named.key == "my-key" and named.compute() == 2
    assert dask.tokenize(1, "a", [1, 2], {"b": 3.0}) == dask.tokenize(1, "a", [1, 2], {"b": 3.0})
    assert dask.tokenize({"a": 1, "b": 2}) == dask.tokenize({"b": 2, "a": 1})
    assert dask.tokenize([1, 2]) != dask.tokenize([2, 1])
    assert dask.tokenize(inc) == dask.tokenize(inc)


def test_lazy_values_inside_containers_are_computed():
    x = delayed(inc)(1)
    y = delayed(inc)(2)
    assert delayed(sum)([x, y, 10]).compute() == 15
    assert delayed(len)((x, y, [x])).compute() == 3
    assert delayed(lambda d: d["a"] + d["b"][0])({"a": x, "b": [y]}).compute() == 5
    assert delayed(sorted)({x, y}).compute() == [2, 3]
    nested = delayed([x, {"k": (y, 1)}])
    assert nested.compute() == [2, {"k": (3, 1)}]
    assert delayed(5).compute() == 5
    assert dask.compute([x, y], {"s": x}) == ([2, 3], {"s": 2})
    assert dask.compute([x, y], traverse=False)[0][0] is x


def test_attribute_access_indexing_method_calls_and_operators():
    d = delayed({"a": [1, 2, 3]})
    assert d["a"][1].compute() == 2
    s = delayed("Hello World")
    assert s.lower().split().compute() == ["hello", "world"]
    assert s.upper().key.startswith("upper-")
    c = delayed(complex)(3, 4)
    assert c.real.compute() == 3.0
    x, y = delayed(5), delayed(3)
    assert dask.compute(x + y, x - y, x * y, x / y, x // y, x % y, x**y) == (8, 2, 15, 5 / 3, 1, 2, 125)
    assert dask.compute(-x, abs(-x), x > y, x == 5, 1 + x, 10 - x) == (-5, 5, True, True, 6, 5)
    with pytest.raises(TypeError, match="Truth"):
        bool(x)
    with pytest.raises(TypeError):
        iter(delayed(inc)(1))
    with pytest.raises(AttributeError):
        x._private
    assert delayed(operator.getitem)([1, 2], 0).compute() == 1


def test_shared_parts_of_several_computations_run_once(tmp_path):
    counter = Counter(str(tmp_path / "calls"))
    base = delayed(counter)(1)
    a = delayed(inc)(base)
    b = delayed(add)(base, base)
    assert dask.compute(a, b, base) == (11, 20, 10)
    assert counter.count() == 1


def test_persist_keeps_results_and_later_work_starts_from_them(tmp_path):
    counter = Counter(str(tmp_path / "calls"))
    x = delayed(counter)(4)
    (xp,) = dask.persist(x)
    assert counter.count() == 1
    assert xp.key == x.key
    assert delayed(inc)(xp).compute() == 41
    assert xp.compute() == 40
    assert counter.count() == 1
    assert x.persist().compute() == 40


def test_visualize_writes_the_graph(tmp_path):
    z = delayed(add)(delayed(inc)(1), delayed(inc)(2))
    dot = tmp_path / "graph.dot"
    z.visualize(filename=str(dot))
    text = dot.read_text()
    assert "digraph" in text and text.count("->") >= 2
    dask.visualize(z, filename=str(tmp_path / "lr.dot"), rankdir="LR")
    assert "rankdir=LR" in (tmp_path / "lr.dot").read_text()
    if shutil.which("dot"):
        z.visualize(filename=str(tmp_path / "mydask"), format="svg", rankdir="LR")
        assert "<svg" in (tmp_path / "mydask.svg").read_text()
    else:
        with pytest.raises(RuntimeError, match="Graphviz"):
            z.visualize(filename=str(tmp_path / "mydask"), format="svg")
    with pytest.raises(ValueError, match="rankdir"):
        z.visualize(filename=str(tmp_path / "x.dot"), rankdir="diagonal")


def test_config_set_chooses_the_scheduler_globally_and_in_a_block():
    import threading

    here = threading.get_ident()
    where = delayed(threading.get_ident)
    with dask.config.set(scheduler="sync"):
        assert dask.config.get("scheduler") == "sync"
        assert where().compute() == here  # the synchronous scheduler runs on this thread
    assert dask.config.get("scheduler", None) is None
    dask.config.set(scheduler="threads")
    try:
        assert where().compute() != here
    finally:
        dask.config.set(scheduler=None)
    with pytest.raises(ValueError, match="unknown scheduler"):
        where().compute(scheduler="fast-please")


def test_dask_graph_and_collection_protocol():
    z = delayed(add)(delayed(inc)(1), 2)
    g = z.__dask_graph__()
    assert len(g) == 2 and z.key in g
    assert z.__dask_keys__() == [z.key]
    assert dask.is_dask_collection(z) and not dask.is_dask_collection(5)
    assert repr(z) == f"Delayed('{z.key}')"


def test_raw_dask_graphs_run_on_every_scheduler():
    dsk = {
        "x": 1,
        "y": (inc, "x"),
        "z": (add, "y", (inc, 10)),
        "w": (sum, ["x", "y", "z"]),
        "alias": "w",
    }
    for scheduler in ("sync", "threads"):
        assert dask.get(dsk, "w", scheduler=scheduler) == 1 + 2 + 13
        assert dask.get(dsk, ["y", ["z", "alias"]], scheduler=scheduler) == [2, [13, 16]]
    from oxidask.threaded import get

    assert get(dsk, "z") == 13
    with pytest.raises(ValueError, match="cycle"):
        dask.get({"a": (inc, "b"), "b": (inc, "a")}, "a")
