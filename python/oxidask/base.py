"""``compute``, ``persist``, ``visualize``, ``tokenize`` and the choice of scheduler, as Dask's
``dask.base``."""

import hashlib
import os
import pickle
import sys
import types
import uuid

import cloudpickle

from oxidask import _oxidask, config
from oxidask._oxidask import Delayed, DelayedFunction

tokenize = _oxidask.tokenize

_LOCAL = {
    "threads": "threads",
    "threading": "threads",
    "sync": "sync",
    "synchronous": "sync",
    "single-threaded": "sync",
    "processes": "processes",
    "multiprocessing": "processes",
}


def is_dask_collection(x):
    """True for lazy values (``Delayed``) and other objects with a task graph."""
    if isinstance(x, type):
        return False
    return callable(getattr(x, "__dask_graph__", None))


def _client_class():
    from oxidask.distributed.client import Client

    return Client


def get_scheduler(scheduler=None, get=None):
    """Where a computation runs: ``("local", "threads"|"processes"|"sync")`` or
    ``("client", client)``.

    In order: the ``scheduler=`` (or ``get=``) argument; ``config.set(scheduler=...)``; inside
    a task on a worker, that worker's cluster; the default ``Client`` if one is connected;
    the threaded scheduler.
    """
    if get is not None and scheduler is None:
        scheduler = get
    if scheduler is None:
        scheduler = config.get("scheduler", None)
    if scheduler is not None:
        if isinstance(scheduler, str):
            name = scheduler.lower()
            if name in _LOCAL:
                return "local", _LOCAL[name]
            if name in ("distributed", "dask.distributed"):
                from oxidask.distributed.client import default_client

                return "client", default_client()
            raise ValueError(
                f"unknown scheduler {scheduler!r}; use 'threads', 'processes', 'sync', "
                "'distributed' or a Client"
            )
        Client = _client_class()
        if isinstance(scheduler, Client):
            return "client", scheduler
        owner = getattr(scheduler, "__self__", None)
        if isinstance(owner, Client):
            return "client", owner
        for name, getter in _local_getters().items():
            if scheduler is getter:
                return "local", name
        raise ValueError(
            f"scheduler {scheduler!r} is not one oxidask can run: pass 'threads', "
            "'processes', 'sync', a Client or its get method"
        )
    if _oxidask.worker_context() is not None:
        from oxidask.distributed.client import get_client

        return "client", get_client()
    from oxidask.distributed.client import _current_default

    client = _current_default()
    if client is not None:
        return "client", client
    return "local", "threads"


def _local_getters():
    from oxidask import local, multiprocessing, threaded

    return {"threads": threaded.get, "processes": multiprocessing.get, "sync": local.get_sync}


def _unpack(args, traverse):
    """The lazy values among ``args`` (containers of lazy values as one task each), and how to
    put their results back in place."""
    handles = []

    def slot(a):
        if isinstance(a, Delayed):
            handles.append(a)
            return True, len(handles) - 1
        if _is_collection(a):
            # A collection of several lazy values (oxidask.bag): computed together, its
            # results put together by its own function.
            parts, finalize, _ = a.__oxidask_collection__()
            handles.extend(parts)
            return finalize, (len(handles) - len(parts), len(parts))
        if traverse and type(a) in (list, tuple) and any(_is_collection(x) for x in a):
            # Collections inside a list or tuple: each in its place.
            return type(a), [slot(x) for x in a]
        if traverse and type(a) in (list, tuple, dict, set, frozenset):
            h = _oxidask.delayed_value(a, lazy_only=True)
            if h is not None:
                handles.append(h)
                return True, len(handles) - 1
        return False, a

    def fill(kind, s, values):
        if kind is True:
            return values[s]
        if kind is False:
            return s
        if kind in (list, tuple):
            return kind(fill(k, x, values) for k, x in s)
        return kind(list(values[s[0] : s[0] + s[1]]))

    slots = [slot(a) for a in args]

    def repack(values):
        return tuple(fill(kind, s, values) for kind, s in slots)

    return handles, repack


def persist_parts(collection):
    """The lazy values ``persist`` computes for ``collection`` and how to rebuild it over
    their results: ``__oxidask_persist__()`` when the collection has one (a dataframe keeps
    its partitions in the engine's form instead of converting them to pandas), else the
    values and rebuild of ``__oxidask_collection__()``."""
    custom = getattr(collection, "__oxidask_persist__", None)
    if callable(custom):
        return custom()
    parts, _, rebuild = collection.__oxidask_collection__()
    return parts, rebuild


def _is_collection(x):
    """True for collections made of several lazy values: they have
    ``__oxidask_collection__()`` returning ``(lazy values, finalize, rebuild)``, where
    ``finalize(results)`` is the collection's computed value and ``rebuild(persisted)`` the
    collection backed by the persisted values."""
    return not isinstance(x, type) and callable(getattr(x, "__oxidask_collection__", None))


def _run(handles, scheduler, get, kwargs):
    kind, target = get_scheduler(scheduler, get)
    if kind == "client":
        return target._compute_values(handles)
    num_workers = kwargs.get("num_workers", config.get("num_workers", None))
    runner = None
    if target == "processes":
        from oxidask.multiprocessing import runner as make_runner

        runner, num_workers = make_runner(num_workers)
    return _oxidask.compute_local(handles, target, num_workers, runner)


def compute(*args, traverse=True, optimize_graph=True, scheduler=None, get=None, **kwargs):
    """Computes several lazy values at once, sharing what they have in common.

    Lists, tuples, dicts and sets holding lazy values are computed too (``traverse=False``
    passes them through); other arguments come back unchanged. Returns a tuple.

    >>> import oxidask as dask
    >>> x = dask.delayed(1) + 1
    >>> dask.compute(x, [x * 2, 5])
    (2, [4, 5])
    """
    handles, repack = _unpack(args, traverse)
    if not handles:
        return args
    return repack(_run(handles, scheduler, get, kwargs))


def persist(*args, traverse=True, optimize_graph=True, scheduler=None, **kwargs):
    """Computes lazy values and returns them backed by their results (on a cluster, the
    results stay there), so later work starts from the results. Returns a tuple."""
    kind, target = get_scheduler(scheduler, kwargs.pop("get", None))
    handles = []
    rebuilds = []
    for a in args:
        if isinstance(a, Delayed):
            handles.append(a)
        elif _is_collection(a):
            parts, rebuild = persist_parts(a)
            rebuilds.append((rebuild, len(parts)))
            handles.extend(parts)
    if not handles:
        return args
    if kind == "client":
        persisted = target.persist(handles)
    else:
        runner = None
        num_workers = kwargs.get("num_workers", config.get("num_workers", None))
        if target == "processes":
            from oxidask.multiprocessing import runner as make_runner

            runner, num_workers = make_runner(num_workers)
        persisted = _oxidask.persist_local(handles, target, num_workers, runner)
    it = iter(persisted)
    rebuilt = iter(rebuilds)
    out = []
    for a in args:
        if isinstance(a, Delayed):
            out.append(next(it))
        elif _is_collection(a):
            rebuild, n = next(rebuilt)
            out.append(rebuild([next(it) for _ in range(n)]))
        else:
            out.append(a)
    return tuple(out)


def visualize(*args, filename="mydask", format=None, rankdir="BT", traverse=True, **kwargs):
    """Draws the graph of lazy values with Graphviz: ``filename`` gets the extension of
    ``format`` (``png`` by default) unless it has one; ``.dot`` needs no Graphviz. Returns an
    IPython image when IPython is available, else ``None``."""
    handles, _ = _unpack(args, traverse)
    if filename is None:
        return None
    root, ext = os.path.splitext(os.fspath(filename))
    if not ext:
        fmt = (format or "png").lower()
        path = f"{root}.{fmt}"
    else:
        path = os.fspath(filename)
        fmt = ext[1:].lower()
    _oxidask.visualize_graph(handles, path, rankdir)
    try:
        from IPython import display
    except ImportError:
        return None
    if fmt == "svg":
        return display.SVG(filename=path)
    if fmt in ("png", "jpeg", "jpg", "gif"):
        return display.Image(filename=path)
    return None


def _token_bytes(obj):
    """Deterministic bytes for an object Rust could not tokenize itself (Dask's
    ``normalize_token``)."""
    tok = getattr(obj, "__dask_tokenize__", None)
    if tok is not None and not isinstance(obj, type):
        return b"dt" + repr((type(obj).__qualname__, tok())).encode()
    t = type(obj)
    module = t.__module__.split(".", 1)[0]
    if module == "numpy" and hasattr(obj, "dtype") and hasattr(obj, "shape"):
        import numpy as np

        a = np.ascontiguousarray(obj)
        if a.dtype.hasobject:
            return b"npo" + pickle.dumps(a.tolist(), protocol=5)
        # The raw bytes, viewed as bytes (datetimes and empty arrays cannot be cast directly).
        data = a.reshape(-1).view(np.uint8) if a.size else b""
        h = hashlib.blake2b(memoryview(data), digest_size=16).digest()
        return b"np" + a.dtype.str.encode() + repr(a.shape).encode() + h
    if isinstance(obj, types.MethodType):
        # A bound method: the function and the object it is bound to (Dask does the same), so
        # methods of different instances differ.
        return b"m" + tokenize(obj.__func__, obj.__self__).encode()
    if callable(obj):
        path = _import_path(obj)
        if path is not None:
            return b"fn" + path.encode()
    try:
        data = pickle.dumps(obj, protocol=5)
        if b"__main__" in data:
            raise pickle.PicklingError
        return b"p" + data
    except Exception:
        try:
            return b"c" + cloudpickle.dumps(obj, protocol=5)
        except Exception:
            # Not picklable: never equal to anything else, as Dask does.
            return b"u" + uuid.uuid4().bytes


def _import_path(obj):
    """``module.qualname`` of ``obj`` if importing that gives back ``obj`` itself (so the name
    alone stands for it), else ``None``: closures made by a decorator copy the wrapped
    function's names (``functools.wraps``), callable objects may carry any, and a function
    of ``__main__`` may be redefined under the same name."""
    name = getattr(obj, "__qualname__", None)
    mod = getattr(obj, "__module__", None)
    if not isinstance(name, str) or not isinstance(mod, str) or mod == "__main__" or "<" in name:
        return None
    found = sys.modules.get(mod)
    for part in name.split("."):
        found = getattr(found, part, None)
        if found is None:
            return None
    return f"{mod}.{name}" if found is obj else None


def get(dsk, keys, scheduler=None, **kwargs):
    """Computes ``keys`` of a raw task graph: a dict from keys to values or tasks, a task
    being a tuple ``(function, *args)`` whose arguments may be keys of the graph, tasks, or
    lists of them (Dask's graph specification). ``keys`` may be one key or a (nested) list."""
    from oxidask._graphs import from_dict

    flat = []
    shape = _flatten_keys(keys, flat)
    handles = from_dict(dsk, flat)
    values = _run(handles, scheduler, None, kwargs)
    return _fill(shape, values)


def _flatten_keys(keys, flat):
    """Positions in ``flat`` (where the keys are appended), in the shape of ``keys``."""
    if isinstance(keys, list):
        return [_flatten_keys(k, flat) for k in keys]
    flat.append(keys)
    return len(flat) - 1


def _fill(shape, values):
    if isinstance(shape, list):
        return [_fill(s, values) for s in shape]
    return values[shape]


__all__ = [
    "Delayed",
    "DelayedFunction",
    "compute",
    "get",
    "get_scheduler",
    "is_dask_collection",
    "persist",
    "tokenize",
    "visualize",
]
