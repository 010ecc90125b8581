"""The ``processes`` scheduler: oxidask's threaded scheduler sends each Python call to a pool
of worker processes (started with the ``spawn`` method, as Dask does), for code that holds
the GIL. Arguments and results are pickled (cloudpickle) between processes."""

import atexit
import concurrent.futures
import multiprocessing
import os
import pickle
import threading

import cloudpickle

from oxidask import _remote, config

_pools = {}
_lock = threading.Lock()


def _pool(n):
    with _lock:
        pool = _pools.get(n)
        if pool is None:
            ctx = multiprocessing.get_context(config.get("multiprocessing.context", "spawn"))
            pool = concurrent.futures.ProcessPoolExecutor(n, mp_context=ctx)
            _pools[n] = pool
        return pool


@atexit.register
def _shutdown():
    """Stops the pools before the interpreter tears modules down."""
    with _lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.shutdown(wait=True, cancel_futures=True)


def _forget(n, pool):
    with _lock:
        if _pools.get(n) is pool:
            del _pools[n]


def _execute(payload):
    """Runs in a pool process: unpickles the call, runs it, pickles the outcome."""
    func, args, kwargs = pickle.loads(payload)
    try:
        result = func(*args, **(kwargs or {}))
    except BaseException as e:  # noqa: BLE001 - sent back and raised in the caller
        return False, _remote.capture(e)
    return True, cloudpickle.dumps(result, protocol=5)


def runner(num_workers=None):
    """``(run, n)``: ``run(func, args, kwargs)`` calls in the pool of ``n`` processes."""
    n = int(num_workers or config.get("num_workers", None) or os.cpu_count() or 1)
    pool = _pool(n)

    def run(func, args, kwargs):
        payload = cloudpickle.dumps((func, args, kwargs), protocol=5)
        try:
            ok, out = pool.submit(_execute, payload).result()
        except concurrent.futures.process.BrokenProcessPool as e:
            _forget(n, pool)
            raise RuntimeError(
                f"a worker process of the processes scheduler died running {func!r} "
                "(killed, or crashed the interpreter); the pool is replaced for the next computation"
            ) from e
        if ok:
            return pickle.loads(out)
        summary, detail = out
        raise _remote.rebuild(detail, summary, getattr(func, "__name__", "task"))

    return run, n


def get(dsk, keys, num_workers=None, **kwargs):
    """Computes ``keys`` of the raw graph ``dsk`` with a pool of processes."""
    from oxidask.base import get as _get

    return _get(dsk, keys, scheduler="processes", num_workers=num_workers, **kwargs)
