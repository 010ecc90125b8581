"""Rust operations (registered with ``#[oxidask::task]`` in the build) and Python functions in
one graph."""

import pytest

import oxidask as dask
from oxidask import delayed, rust_call

FAST_INC = "oxidask_cli::demo::fast_inc"


def double(x):
    return 2 * x


def test_registered_ops_include_the_python_call_and_the_stock_operations():
    names = dict(dask.registered_ops())
    assert "oxidask_python::call" in names
    assert FAST_INC in names and "i64" in names[FAST_INC]


@pytest.mark.parametrize("scheduler", ["sync", "threads"])
def test_python_and_rust_tasks_feed_each_other(scheduler):
    x = delayed(double)(20)  # Python: 40
    y = rust_call(FAST_INC, x)  # Rust reads a Python result: 41
    z = delayed(double)(y)  # Python reads a Rust result: 82
    w = rust_call(FAST_INC, 1)  # literal Python int -> i64
    assert dask.compute(z, y, w, scheduler=scheduler) == (82, 41, 2)
    assert rust_call(FAST_INC, 5).key == rust_call(FAST_INC, 5).key  # pure: content keys


def test_bad_rust_calls_are_clear_errors():
    with pytest.raises(ValueError, match="no Rust operation is registered"):
        rust_call("no::such::op", 1)
    with pytest.raises(ValueError, match="takes 1 arguments"):
        rust_call(FAST_INC, 1, 2)
    with pytest.raises(TypeError, match="cannot be passed to a Rust operation"):
        rust_call(FAST_INC, object())
    # A Python result of the wrong type fails when the graph runs, naming the types.
    with pytest.raises(Exception, match="i64"):
        rust_call(FAST_INC, delayed(str)(1)).compute()
