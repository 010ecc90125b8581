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
