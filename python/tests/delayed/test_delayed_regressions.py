"""Regression tests for bugs found in ``delayed``, ``tokenize`` and the local schedulers, each
named after the bug. A check that used to crash the interpreter runs in a subprocess, so a crash
fails the test instead of ending pytest."""

import functools
import os
import signal
import subprocess
import sys
import textwrap

import pytest

import oxidask
from oxidask import delayed, tokenize


def run_python(source, timeout=120):
    """Runs ``source`` in a new interpreter; returns the completed process (output as text)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# -- deeply nested arguments overflowed the Rust stack -----------------------------------


DEEP = """
    import oxidask
    from oxidask import delayed, tokenize

    def nest(depth, inner=None):
        x = [] if inner is None else [inner]
        for _ in range(depth):
            x = [x]
        return x

    def outcome(f):
        try:
            return repr(f())
        except RecursionError:
            return "RecursionError"

    deep = nest(2000)
    print("tokenize", outcome(lambda: tokenize(deep)), flush=True)
    print("pure", outcome(lambda: delayed(len, pure=True)(deep)), flush=True)
    print("impure", outcome(lambda: delayed(len)(deep).compute(scheduler="sync")), flush=True)
    print("value", outcome(lambda: delayed(deep)), flush=True)
    print("set", outcome(lambda: tokenize({frozenset([nest_tuple(2000)])})), flush=True)
    print("dict", outcome(lambda: tokenize(nest_dict(2000))), flush=True)
"""

NESTERS = """
    def nest_tuple(depth):
        t = ()
        for _ in range(depth):
            t = (t,)
        return t

    def nest_dict(depth):
        d = {}
        for _ in range(depth):
            d = {"k": d}
        return d
"""


def test_deeply_nested_arguments_raise_recursion_error_instead_of_crashing():
    r = run_python(NESTERS + DEEP)
    assert r.returncode == 0, f"crashed ({r.returncode}): {r.stdout}{r.stderr}"
    lines = dict(line.split(" ", 1) for line in r.stdout.splitlines())
    assert lines == {
        "tokenize": "RecursionError",
        "pure": "RecursionError",
        "impure": "RecursionError",
        "value": "RecursionError",
        "set": "RecursionError",
        "dict": "RecursionError",
    }, r.stdout


def test_nested_arguments_on_pool_threads_work_or_raise_recursion_error_never_crash():
    # Pool threads have smaller stacks (2 MiB) than the main thread: a task that builds and
    # computes a graph packs and substitutes there. Moderately deep arguments work; very deep
    # ones raise RecursionError before the stack ends.
    r = run_python(
        """
        import oxidask
        from oxidask import delayed, tokenize

        def nest(depth, inner):
            x = [inner]
            for _ in range(depth):
                x = [x]
            return x

        def depth_of(x):
            n = 0
            while isinstance(x, list):
                x, n = x[0], n + 1
            return n, x

        def inner_task(depth):
            deep = nest(depth, delayed(7))
            try:
                token = tokenize(nest(depth, 7))
                return len(token), delayed(depth_of)(deep).compute(scheduler="threads")
            except RecursionError:
                return "RecursionError"

        for depth in (100, 990, 5000):
            print(depth, delayed(inner_task)(depth).compute(scheduler="threads"), flush=True)
        """
    )
    assert r.returncode == 0, f"crashed ({r.returncode}): {r.stdout}{r.stderr}"
    lines = r.stdout.splitlines()
    assert lines[0] == "100 (32, (101, 7))", r.stdout + r.stderr
    assert lines[1] in ("990 (32, (991, 7))", "990 RecursionError"), r.stdout + r.stderr
    assert lines[2] == "5000 RecursionError", r.stdout + r.stderr


# -- tokenize's name shortcut made different callables equal -----------------------------


class Model:
    def __init__(self, k):
        self.k = k

    def predict(self, x):
        return self.k * x


def _scale(n):
    def deco(f):
        @functools.wraps(f)
        def inner(x):
            return f(x) * n

        return inner

    return deco


def _base(x):
    return x


_by2 = _scale(2)(_base)
_by10 = _scale(10)(_base)


def test_bound_methods_of_different_instances_tokenize_differently():
    a, b = Model(1), Model(100)
    assert tokenize(a.predict) != tokenize(b.predict)
    assert tokenize(a.predict) == tokenize(a.predict)
    x = delayed(a.predict, pure=True)(5)
    y = delayed(b.predict, pure=True)(5)
    assert x.key != y.key
    assert oxidask.compute(x, y, scheduler="sync") == (5, 500)


def test_wrapped_closures_tokenize_differently_from_each_other_and_the_wrapped_function():
    assert tokenize(_by2) != tokenize(_by10)
    assert tokenize(_by2) != tokenize(_base)
    assert oxidask.compute(
        delayed(_by2, pure=True)(1), delayed(_by10, pure=True)(1), scheduler="sync"
    ) == (2, 10)


def test_importable_functions_keep_their_token_by_name():
    # The shortcut still applies where the name leads back to the object itself.
    assert tokenize(_base) == tokenize(_base)
    assert tokenize(Model.predict) == tokenize(Model.predict)
    assert tokenize(len) == tokenize(len)


def test_delayed_functions_of_different_functions_tokenize_differently(tmp_path, monkeypatch):
    (tmp_path / "regr_moda.py").write_text("def process(x):\n    return x + 1\n")
    (tmp_path / "regr_modb.py").write_text("def process(x):\n    return x * 100\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import regr_moda
    import regr_modb

    assert tokenize(delayed(regr_moda.process)) != tokenize(delayed(regr_modb.process))
    assert tokenize(delayed(lambda x: x + 1)) != tokenize(delayed(lambda x: x * 100))
    assert tokenize(delayed(regr_moda.process)) == tokenize(delayed(regr_moda.process))
    # The options are part of it too.
    assert tokenize(delayed(regr_moda.process, pure=True)) != tokenize(
        delayed(regr_moda.process, pure=False)
    )
    # A pure call taking a delayed function as an argument.
    run = delayed(lambda f, x: f(x), pure=True)
    a = run(delayed(regr_moda.process), 1)
    b = run(delayed(regr_modb.process), 1)
    assert a.key != b.key


# -- strings with lone surrogates tokenized equal ----------------------------------------


def test_strings_with_lone_surrogates_tokenize_differently():
    a, b = os.fsdecode(b"data_\xff.csv"), os.fsdecode(b"data_\xfe.csv")
    assert tokenize(a) != tokenize(b)
    assert tokenize({a: 1}) != tokenize({b: 1})
    assert tokenize("\ud800") != tokenize("\ud801")
    assert tokenize("\ud800") != tokenize("\ufffd")
    assert tokenize(a) == tokenize(os.fsdecode(b"data_\xff.csv"))
    assert oxidask.compute(
        delayed(os.fsencode, pure=True)(a), delayed(os.fsencode, pure=True)(b), scheduler="sync"
    ) == (b"data_\xff.csv", b"data_\xfe.csv")


# -- an interrupted compute cancelled every later local compute --------------------------


@pytest.mark.skipif(not hasattr(signal, "SIGINT"), reason="needs SIGINT")
def test_an_interrupted_compute_does_not_cancel_later_computes():
    r = run_python(
        """
        import os, signal, threading, time
        from oxidask import delayed

        def slow():
            time.sleep(3)
            return 1

        threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
        try:
            delayed(slow)().compute()
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        # The interrupted task is still running on the pool: this is another computation.
        print("next", delayed(lambda: 42)().compute(), flush=True)
        """,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.split() == ["interrupted", "next", "42"], r.stdout + r.stderr


# -- pure calls on different blocks of one collection got one key -----------------------


def test_pure_calls_on_different_blocks_of_one_collection_get_different_keys():
    # Partitions of a bag share a name and differ by their block index only; a pure call's
    # key ignored the index, so every partition's call was the first one's.
    import oxidask.bag as db

    parts = db.from_sequence([1, 2, 3, 4, 5, 6], npartitions=3).to_delayed()
    totals = [delayed(sum, pure=True)(p) for p in parts]
    assert len({t.key for t in totals}) == 3
    assert oxidask.compute(*totals, scheduler="sync") == (3, 7, 11)


# -- an array passed to a delayed function arrived as the lazy array --------------------


def test_array_passed_to_a_delayed_function_arrives_computed():
    import numpy as np

    import oxidask.array as da

    x = da.arange(10, chunks=3) * 2
    seen = delayed(lambda a: (type(a).__name__, float(a.sum())))(x)
    assert seen.compute(scheduler="sync") == ("ndarray", 90.0)
    assert delayed(np.sum)(x).compute() == np.arange(10).sum() * 2
