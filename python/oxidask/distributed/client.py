"""``Client``, futures, and the functions that wait on them, as in ``dask.distributed``."""

import os
import queue
import threading
import uuid
from collections import namedtuple

from oxidask import _oxidask, config
from oxidask._oxidask import ClientCore, Delayed, Future
from oxidask.base import persist_parts, tokenize
from oxidask.distributed.datasets import CoordinationMixin

FIRST_COMPLETED = "FIRST_COMPLETED"
ALL_COMPLETED = "ALL_COMPLETED"

DoneAndNotDoneFutures = namedtuple("DoneAndNotDoneFutures", ["done", "not_done"])

_default = None
_default_lock = threading.Lock()


def _current_default():
    """The default client if one is connected, else ``None``."""
    c = _default
    if c is not None and not c._core.closed:
        return c
    return None


def default_client(c=None):
    """The client ``compute()`` uses by default (the most recently made); raises
    ``ValueError`` if none is connected."""
    c = c or _current_default()
    if c is None:
        raise ValueError(
            "No clients found. Start a client and point it to the scheduler address:\n"
            "  from oxidask.distributed import Client\n"
            "  client = Client('ip-addr-of-scheduler:8786')"
        )
    return c


def _epoch(t):
    """Seconds since the epoch from a number or a ``datetime`` (``None`` stays ``None``)."""
    if t is None or isinstance(t, (int, float)):
        return t
    if hasattr(t, "timestamp"):
        return t.timestamp()
    raise TypeError(f"expected seconds since the epoch or a datetime, got {type(t).__name__}")


def _flatten(obj, out, collections=False):
    """Futures anywhere in ``obj`` (lists, tuples, sets, dict values) appended to ``out``;
    returns a function rebuilding ``obj`` from their results. With ``collections``, the
    futures behind collections' pieces too (for ``futures_of``)."""
    if isinstance(obj, Future):
        i = len(out)
        out.append(obj)
        return lambda values: values[i]
    t = type(obj)
    if t in (list, tuple, set, frozenset):
        parts = [_flatten(x, out, collections) for x in obj]
        return lambda values: t(p(values) for p in parts)
    if t is dict:
        parts = {k: _flatten(v, out, collections) for k, v in obj.items()}
        return lambda values: {k: p(values) for k, p in parts.items()}
    if isinstance(obj, Delayed) and obj._futures is not None:
        return _flatten(obj._futures, out, collections)
    if collections and _is_collection(obj):
        # Pieces a persisted collection reads (a dataframe's partitions on the cluster).
        held = getattr(obj, "__oxidask_held__", None)
        pieces = list(held()) if callable(held) else []
        _flatten(list(obj.__oxidask_collection__()[0]) + pieces, out, collections)
    return lambda values: obj


def _resources(resources):
    if resources is None:
        return None
    return [(str(k), float(v)) for k, v in dict(resources).items()]


def _workers(workers):
    if workers is None:
        return None
    if isinstance(workers, str):
        return [workers]
    return [str(w) for w in workers]


class Client(CoordinationMixin):
    """A connection to a cluster: submit functions, hold their results as futures, gather them,
    and run ``compute()`` of lazy values on the cluster.

    ``Client()`` starts a :class:`LocalCluster` of worker processes on this machine (as Dask
    does; its keyword arguments go to the cluster); ``Client("tcp://host:8786")`` connects to a
    running scheduler; ``Client(cluster)`` to a cluster object. The newest client is the
    default for ``compute()``.

    >>> from oxidask.distributed import Client
    >>> with Client(processes=False, n_workers=1) as client:
    ...     client.submit(sum, [1, 2, 3]).result()
    6
    """

    def __init__(
        self,
        address=None,
        loop=None,
        timeout=None,
        set_as_default=True,
        scheduler_file=None,
        security=None,
        asynchronous=False,
        name=None,
        heartbeat_interval=None,
        serializers=None,
        deserializers=None,
        direct_to_workers=None,
        connection_limit=512,
        **kwargs,
    ):
        if asynchronous:
            raise NotImplementedError("asynchronous clients are not available in oxidask yet")
        self.cluster = None
        self._own_cluster = False
        if address is None and scheduler_file is not None:
            import json

            with open(scheduler_file) as f:
                address = json.load(f)["address"]
        if address is None:
            address = config.get("scheduler-address", None) or os.environ.get(
                "OXIDASK_SCHEDULER_ADDRESS"
            )
        if address is None:
            from oxidask.distributed.cluster import LocalCluster

            self.cluster = LocalCluster(security=security, **kwargs)
            security = self.cluster.security
            self._own_cluster = True
            address = self.cluster.scheduler_address
        elif not isinstance(address, str):
            if not hasattr(address, "scheduler_address"):
                raise TypeError(
                    f"Client(address) takes an address like 'tcp://host:8786' or a cluster, "
                    f"not {type(address).__name__}"
                )
            self.cluster = address
            if security is None:
                security = getattr(address, "security", None)
            address = address.scheduler_address
        elif kwargs:
            raise TypeError(
                f"unexpected arguments {sorted(kwargs)}: cluster options are only used when "
                "Client() starts its own LocalCluster"
            )
        t = 10.0 if timeout is None else float(timeout)
        try:
            if security is True:
                raise ValueError(
                    "security=True only makes sense when Client() starts its own LocalCluster"
                )
            self._core = ClientCore.connect(
                address,
                name=name,
                timeout=t,
                security=None if security is None else security._core("client"),
                direct_to_workers=direct_to_workers,
            )
        except BaseException:
            if self._own_cluster:
                self.cluster.close()
            raise
        self._closed = False
        if set_as_default:
            global _default
            with _default_lock:
                _default = self

    @classmethod
    def _wrap(cls, core):
        """A client around an existing connection (inside a task on a worker)."""
        self = cls.__new__(cls)
        self.cluster = None
        self._own_cluster = False
        self._core = core
        self._closed = False
        return self

    @property
    def scheduler_address(self):
        """The scheduler's address (``tcp://host:port``)."""
        return self._core.address

    @property
    def status(self):
        """``running`` or ``closed``."""
        return "closed" if self._closed or self._core.closed else "running"

    @property
    def dashboard_link(self):
        """The scheduler's dashboard (``http://host:8787/status``), or ``None`` if it serves none."""
        return self._core.dashboard_link

    def get_task_stream(self, start=None, stop=None, count=None, plot=False, filename="task-stream.html"):
        """What ran where and when, as Dask's ``get_task_stream``: one dict per task run,
        transfer or spill still kept by the scheduler (its last 100,000), with ``key``,
        ``worker`` (address), ``thread``, ``nbytes``, ``status`` and ``startstops`` (a tuple
        of ``{"action", "start", "stop"}``, seconds since the epoch; actions ``compute``,
        ``transfer``, ``disk-write``, ``disk-read``). ``start``/``stop`` filter by time
        (seconds since the epoch, or datetimes), ``count`` keeps the last records.
        With ``plot=True`` also returns a figure (shown in Jupyter; ``plot="save"`` writes
        it to ``filename``)::

            records = client.get_task_stream(count=100)
        """
        from oxidask.distributed.diagnostics import _dask_records, _figure

        records = _dask_records(self, self._core.task_stream(0)[0])
        start, stop = _epoch(start), _epoch(stop)
        if start is not None:
            records = [r for r in records if r["startstops"][0]["stop"] >= start]
        if stop is not None:
            records = [r for r in records if r["startstops"][0]["start"] <= stop]
        if count is not None:
            records = records[-count:] if count else []
        if not plot:
            return records
        return records, _figure(self, records, plot, filename)

    def get_scheduler_logs(self, n=None):
        """The scheduler's latest log lines."""
        lines = self._core.logs(None)
        return lines if n is None else lines[-n:]

    def get_worker_logs(self, n=None, workers=None):
        """Each worker's latest log lines: ``{address: [line, ...]}``."""
        out = {}
        for address in self.scheduler_info()["workers"]:
            if workers is not None and address not in workers:
                continue
            lines = self._core.logs(address)
            out[address] = lines if n is None else lines[-n:]
        return out

    def __repr__(self):
        try:
            info = self._core.summary()
        except Exception:
            return f"<Client: {self.scheduler_address!r} ({self.status})>"
        workers = info["workers"]
        threads = sum(w["nthreads"] for w in workers)
        mem = sum(w["memory_limit"] for w in workers) / 2**30
        return (
            f"<Client: {self.scheduler_address!r} processes={len(workers)} "
            f"threads={threads}, memory={mem:.2f} GiB>"
        )

    # -- submitting work ------------------------------------------------------------------

    def submit(
        self,
        func,
        *args,
        key=None,
        workers=None,
        resources=None,
        retries=None,
        priority=0,
        fifo_timeout="100 ms",
        allow_other_workers=False,
        actor=False,
        actors=False,
        pure=True,
        **kwargs,
    ):
        """Runs ``func(*args, **kwargs)`` on the cluster; returns a :class:`Future`.

        Futures (also inside lists, tuples and dicts) and lazy values among the arguments are
        replaced by their results, computed on the cluster. ``pure=True`` (the default) gives
        equal calls one key, computed once; ``key=`` names the task; ``retries``, ``resources``
        (``{"GPU": 1}``), ``workers`` (names or addresses) and ``priority`` as in Dask.
        """
        if not callable(func):
            raise TypeError("First input to submit must be a callable function")
        actor = bool(actor or actors)
        if actor:
            # A stateful object on one worker (see oxidask.distributed.actor): never pure.
            from oxidask.distributed.actor import _ActorNew, _funcname, _note_submitter

            func, pure = _ActorNew(func), False
            _note_submitter(self)
            if key is None:
                # 24 hex digits: the key's text is the engine's key (the proxy's key).
                key = f"{_funcname(func.cls)}-{uuid.uuid4().hex[:24]}"
        return self._core.submit(
            func,
            args,
            kwargs or None,
            key=key,
            actor=actor,
            pure=pure,
            retries=retries,
            resources=_resources(resources),
            workers=_workers(workers),
            allow_other_workers=bool(allow_other_workers),
            priority=priority,
            owner=self,
        )

    def map(
        self,
        func,
        *iterables,
        key=None,
        workers=None,
        retries=None,
        resources=None,
        priority=0,
        allow_other_workers=False,
        fifo_timeout="100 ms",
        actor=False,
        actors=False,
        pure=True,
        batch_size=None,
        **kwargs,
    ):
        """One task per item (``func(a, b)`` for items ``a``, ``b`` of the iterables, zipped),
        submitted as one graph; returns a list of futures. ``key`` is a key prefix or a list
        of keys."""
        if not callable(func):
            raise TypeError("First input to map must be a callable function")
        actor = bool(actor or actors)
        if actor:
            from oxidask.distributed.actor import _ActorNew, _funcname, _note_submitter

            func, pure = _ActorNew(func), False
            _note_submitter(self)
        if not iterables:
            raise TypeError("map needs at least one iterable")
        if any(isinstance(it, Future) for it in iterables):
            raise TypeError("map takes iterables of arguments, not a single future")
        args_list = list(zip(*iterables))
        if actor and key is None:
            key = [f"{_funcname(func.cls)}-{uuid.uuid4().hex[:24]}" for _ in args_list]
        keys = None
        if isinstance(key, (list, tuple)):
            keys = list(key)
        elif isinstance(key, str):
            if pure:
                keys = [f"{key}-{tokenize(func, kwargs, *a)}" for a in args_list]
            else:
                keys = [f"{key}-{uuid.uuid4().hex}" for _ in args_list]
        return self._core.map(
            func,
            args_list,
            kwargs or None,
            keys=keys,
            pure=pure,
            retries=retries,
            resources=_resources(resources),
            workers=_workers(workers),
            allow_other_workers=bool(allow_other_workers),
            priority=priority,
            owner=self,
            actor=actor,
        )

    def compute(
        self,
        collections,
        sync=False,
        optimize_graph=True,
        workers=None,
        allow_other_workers=False,
        resources=None,
        retries=0,
        priority=0,
        fifo_timeout="60s",
        actors=None,
        traverse=True,
        **kwargs,
    ):
        """Starts computing lazy values on the cluster: a future for each (a list for a list or
        tuple, a dict for a dict), or, with ``sync=True``, their results.

        Collections (bags, arrays, dataframes: anything with ``__oxidask_collection__``) give
        one future of their finished value (a NumPy array, a list, a pandas frame), put
        together on a worker from the collection's pieces. Other values come back as they are.
        """
        items, repack = _items(collections)
        lazy = [_to_delayed(x) for x in items]
        handles = [h for h in lazy if h is not None]
        futures = iter(
            self._core.compute(
                handles,
                retries=retries,
                resources=_resources(resources),
                workers=_workers(workers),
                allow_other_workers=bool(allow_other_workers),
                priority=priority,
                owner=self,
            )
            if handles
            else []
        )
        out = [next(futures) if h is not None else x for x, h in zip(items, lazy)]
        if sync:
            out = self.gather(out)
        return repack(out)

    def persist(self, collections, optimize_graph=True, workers=None, resources=None, retries=None, priority=0, **kwargs):
        """Computes lazy values on the cluster and returns them backed by the results there
        (same keys), for later work to start from: a ``Delayed`` or a collection (bag, array,
        dataframe) for each, in the shape given (one value, a list or tuple, a dict).

        The pieces stay on the workers, held by the returned values (``futures_of`` lists the
        futures); graphs built on them refer to them by key, so they are neither recomputed
        nor sent again, and dropping the last value using them releases them. Returns at once,
        while the pieces compute."""
        items, repack = _items(collections)
        handles = []
        rebuilds = []
        for x in items:
            if isinstance(x, Delayed):
                handles.append(x)
            elif _is_collection(x):
                parts, rebuild = persist_parts(x)
                handles.extend(parts)
                rebuilds.append((parts, rebuild))
        futures = iter(
            self._core.compute(
                handles,
                retries=retries,
                resources=_resources(resources),
                workers=_workers(workers),
                priority=priority,
                owner=self,
            )
            if handles
            else []
        )
        out = []
        rebuilt = iter(rebuilds)
        for x in items:
            if isinstance(x, Delayed):
                out.append(_oxidask.delayed_on_cluster(next(futures), x))
            elif _is_collection(x):
                parts, rebuild = next(rebuilt)
                out.append(rebuild([_oxidask.delayed_on_cluster(next(futures), h) for h in parts]))
            else:
                out.append(x)
        return repack(out)

    def _compute_values(self, handles):
        futures = self._core.compute(handles, owner=self)
        return self._core.gather(futures)

    def get(self, dsk, keys, **kwargs):
        """Computes ``keys`` of a raw task graph on the cluster (Dask's ``client.get``)."""
        from oxidask.base import get as _get

        return _get(dsk, keys, scheduler=self, **kwargs)

    # -- results --------------------------------------------------------------------------

    def gather(self, futures, errors="raise", direct=None, asynchronous=None):
        """The results of futures (a future, or futures in lists, tuples, sets and dicts, whose
        shape is kept); ``errors="skip"`` leaves out failed ones."""
        flat = []
        rebuild = _flatten(futures, flat)
        if not flat:
            return futures
        if errors == "raise":
            values = self._core.gather(flat)
        elif errors == "skip":
            self._core.wait(flat)
            ok = [f for f in flat if f.status == "finished"]
            got = dict(zip((id(f) for f in ok), self._core.gather(ok)))
            if isinstance(futures, (list, tuple)) and all(isinstance(f, Future) for f in futures):
                return type(futures)(got[id(f)] for f in futures if id(f) in got)
            values = [got.get(id(f)) for f in flat]
        else:
            raise ValueError(f"errors must be 'raise' or 'skip', not {errors!r}")
        return rebuild(values)

    def scatter(self, data, workers=None, broadcast=False, direct=None, hash=True, timeout=None, asynchronous=None):
        """Stores data on the workers; returns futures in the shape of ``data`` (one value, a
        list, or a dict whose keys name the futures). ``broadcast=True`` puts it on every
        worker."""
        if isinstance(data, dict):
            names = [str(k) for k in data]
            values = list(data.values())
        elif type(data) in (list, tuple, set, frozenset):
            values = list(data)
            names = None
        else:
            values = [data]
            names = None
        if names is None:
            names = [
                f"{type(v).__name__}-{tokenize(v) if hash else uuid.uuid4().hex}" for v in values
            ]
        futures = self._core.scatter(values, names, broadcast=broadcast, owner=self)
        if isinstance(data, dict):
            return dict(zip(data, futures))
        if type(data) in (list, tuple, set, frozenset):
            return type(data)(futures) if type(data) is not set else futures
        return futures[0]

    def cancel(self, futures, asynchronous=None, force=False):
        """Stops computing futures (and what only they need)."""
        flat = []
        _flatten(futures, flat)
        self._core.cancel(flat)

    def who_has(self, futures=None):
        """The addresses of the workers holding each future's result: ``{key: [address]}``."""
        if futures is None:
            raise NotImplementedError("who_has() of every key is not available; pass futures")
        flat = []
        _flatten(futures, flat)
        return {f.key: addrs for f, addrs in zip(flat, self._core.who_has(flat))}

    def scheduler_info(self, **kwargs):
        """The cluster's workers and their resources, in Dask's shape."""
        info = self._core.summary()
        return {
            "type": "Scheduler",
            "address": self.scheduler_address,
            "workers": {
                w["address"]: {
                    "name": w["name"],
                    "nthreads": w["nthreads"],
                    "memory_limit": w["memory_limit"],
                    "metrics": {
                        "memory": w["rss"],
                        "managed_bytes": w["memory"],
                        "spilled_bytes": {"memory": 0, "disk": w["spilled"]},
                        "cpu": w["cpu"],
                        "executing": w["processing"],
                    },
                    "resources": dict(w["resources"]),
                }
                for w in info["workers"]
            },
        }

    def nthreads(self):
        """Threads per worker address."""
        return {a: w["nthreads"] for a, w in self.scheduler_info()["workers"].items()}

    ncores = nthreads

    def wait_for_workers(self, n_workers=0, timeout=None):
        """Blocks until ``n_workers`` workers are connected, as Dask's
        ``Client.wait_for_workers``: ``TimeoutError`` after ``timeout`` (seconds or a string
        such as ``"30s"``; default: wait as long as it takes).

        >>> client.wait_for_workers(2, timeout="60s")  # doctest: +SKIP
        """
        from oxidask.utils import parse_timedelta

        if not isinstance(n_workers, int) or n_workers < 0:
            raise ValueError(f"n_workers must be a non-negative integer, got {n_workers!r}")
        seconds = parse_timedelta(timeout)
        # "As long as it takes": ten years.
        self._core.wait_for_workers(n_workers, timeout=3.15e8 if seconds is None else seconds)

    def retire_workers(self, workers=None, close_workers=True, n=None, **kwargs):
        """Retires workers gracefully, as Dask's ``Client.retire_workers``.

        ``workers`` (names or addresses) — or else ``n`` workers the scheduler picks (idle
        ones holding the least data first), or with neither, the idle workers the cluster's
        data can spare — are given no new task; every result only they hold is copied to
        another worker; then each is told to stop (an ``oxidask worker`` process exits and its
        nanny does not restart it). Returns ``{address: {"name", "nthreads",
        "memory_limit"}}`` of the retired workers. Raises ``RuntimeError`` naming any worker
        that could not be retired (no other worker to take its data, an unknown name); those
        keep running.

        >>> client.retire_workers(workers=["worker-1"])  # doctest: +SKIP
        {'tcp://127.0.0.1:40123': {'name': 'worker-1', 'nthreads': 2, 'memory_limit': ...}}
        """
        if not close_workers:
            raise ValueError(
                "retire_workers(close_workers=False) is not supported: retired workers always "
                "stop; use replicate()/rebalance() to move data without retiring"
            )
        unknown = set(kwargs) - {"remove", "names"}
        if unknown:
            raise TypeError(f"retire_workers() got unexpected keyword arguments {sorted(unknown)}")
        if kwargs.get("names") is not None:
            workers = list(kwargs["names"])
        if isinstance(workers, str):
            workers = [workers]
        if workers is not None:
            workers = [str(w) for w in workers]
            if not workers:
                return {}
        if n is not None and (not isinstance(n, int) or n < 0):
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        retired = self._core.retire_workers(workers=workers, n=n)
        return {
            w["address"]: {
                "name": w["name"],
                "nthreads": w["nthreads"],
                "memory_limit": w["memory_limit"],
            }
            for w in retired
        }

    def adaptive_target(self, target_duration="5s"):
        """How many workers the current work needs, and which could close (an oxidask
        extension exposing Dask's ``Scheduler.adaptive_target`` and ``workers_to_close``).

        The target is the queued and running work (per-task-prefix duration estimates)
        divided by ``target_duration``, scaled to the workers' threads and capped by the
        number of tasks; more workers when results fill more than
        ``distributed.worker.memory.target`` of the memory limits. When fewer workers are
        wanted than are connected, ``workers_to_close`` lists the idle ones to retire first.

        >>> client.adaptive_target("5s")  # doctest: +SKIP
        {'target': 1, 'workers_to_close': ['tcp://127.0.0.1:40123']}
        """
        from oxidask.utils import parse_timedelta

        seconds = parse_timedelta(target_duration)
        if seconds is None or seconds <= 0:
            raise ValueError(f"target_duration must be a positive duration, got {target_duration!r}")
        return dict(self._core.adaptive_target(seconds))

    def replicate(self, futures, n=None, workers=None, branching_factor=2, **kwargs):
        """Copies futures' results onto ``n`` workers (default: every worker), as Dask's
        ``Client.replicate``; copies beyond ``n`` are dropped. Returns once the copies exist.

        >>> x = client.scatter(1)  # doctest: +SKIP
        >>> client.replicate([x], n=2)  # doctest: +SKIP
        >>> len(client.who_has([x])[x.key])  # doctest: +SKIP
        2
        """
        if workers is not None:
            raise NotImplementedError("replicate(workers=...) is not supported; pass n")
        if n is not None and (not isinstance(n, int) or n < 1):
            raise ValueError(f"n must be a positive integer, got {n!r}")
        flat = []
        _flatten(futures, flat)
        self._core.replicate(flat, n=n)

    def rebalance(self, futures=None, workers=None, **kwargs):
        """Moves results between workers so each holds about the same bytes, never filling
        a worker past its memory target, as Dask's ``Client.rebalance``; ``futures``: only
        these may move (default: any result).

        >>> client.rebalance()  # doctest: +SKIP
        """
        if workers is not None:
            raise NotImplementedError("rebalance(workers=...) is not supported")
        flat = None
        if futures is not None:
            flat = []
            _flatten(futures, flat)
        self._core.rebalance(flat)

    def restart(self, timeout=None, wait_for_workers=True):
        """Restarts every worker and forgets every task, as Dask's ``Client.restart``.

        The futures of every client become cancelled (``result()`` raises
        ``CancelledError``); each worker process exits and its nanny starts a fresh one
        (workers started with ``--no-nanny`` just exit). Returns once as many workers as there
        were are back, or raises ``TimeoutError`` after ``timeout`` seconds (default 60); with
        ``wait_for_workers=False`` it returns without waiting.
        """
        if not wait_for_workers:
            try:
                self._core.restart(timeout=0.0)
            except TimeoutError:
                pass
            return
        self._core.restart(timeout=60.0 if timeout is None else float(timeout))

    # -- lifetime -------------------------------------------------------------------------

    def close(self, timeout=None):
        """Closes the connection, and the cluster if this client started it."""
        global _default
        if self._closed:
            return
        self._closed = True
        with _default_lock:
            if _default is self:
                _default = None
        self._core.close()
        if self._own_cluster and self.cluster is not None:
            self.cluster.close()

    shutdown = close

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def as_current(self):
        """Makes this client the default (a context manager in Dask; here it stays the
        default until another client is made)."""
        global _default
        with _default_lock:
            _default = self
        return self


def get_client(address=None, timeout=None, resolve_address=True):
    """Inside a task on a worker: a client of that worker's cluster (waiting on its futures
    gives the worker thread up, so tasks that submit tasks never deadlock); elsewhere the
    default client."""
    if _oxidask.worker_context() is not None:
        return Client._wrap(_oxidask.get_client())
    c = _current_default()
    if c is not None and (address is None or c.scheduler_address == address):
        return c
    if address is not None:
        return Client(address, timeout=timeout)
    raise ValueError("No global client found and no address provided")


def wait(fs, timeout=None, return_when=ALL_COMPLETED):
    """Waits until all (or, with ``return_when=FIRST_COMPLETED``, one) of the futures are
    done; returns ``(done, not_done)`` sets. ``timeout`` in seconds raises ``TimeoutError``."""
    if isinstance(fs, Future):
        fs = [fs]
    flat = []
    _flatten(fs, flat)
    if not flat:
        return DoneAndNotDoneFutures(set(), set())
    if return_when not in (ALL_COMPLETED, FIRST_COMPLETED):
        raise ValueError(f"return_when must be ALL_COMPLETED or FIRST_COMPLETED, not {return_when!r}")
    client = flat[0].client
    core = client._core if client is not None else None
    if core is None:
        raise ValueError("these futures have no client")
    done, not_done = core.wait(flat, timeout=timeout, first_completed=return_when == FIRST_COMPLETED)
    return DoneAndNotDoneFutures({flat[i] for i in done}, {flat[i] for i in not_done})


class as_completed:
    """Futures in the order they finish, whatever the order they were submitted in.

    ``with_results=True`` yields ``(future, result)`` pairs; ``add``/``update`` take more
    futures while iterating; ``raise_errors`` (with results) re-raises a failed task's
    exception.
    """

    def __init__(self, futures=None, loop=None, with_results=False, raise_errors=True, *, timeout=None):
        from oxidask.utils import parse_timedelta

        timeout = parse_timedelta(timeout)
        self._queue = queue.SimpleQueue()
        self._pending = 0
        self._lock = threading.Lock()
        self.with_results = with_results
        self.raise_errors = raise_errors
        self._timeout = timeout
        if futures is not None:
            self.update(futures)

    def _done(self, future):
        self._queue.put(future)

    def add(self, future):
        """Waits for one more future."""
        with self._lock:
            self._pending += 1
        future.add_done_callback(self._done)

    def update(self, futures):
        """Waits for more futures."""
        for f in futures:
            self.add(f)

    def count(self):
        """Futures not yet yielded."""
        return self._pending

    def is_empty(self):
        return self._pending == 0

    def __len__(self):
        return self._pending

    def __iter__(self):
        return self

    def _get(self):
        import time

        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        while True:
            wait = 0.1
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    raise TimeoutError(f"as_completed: nothing finished within {self._timeout} s")
            try:
                return self._queue.get(timeout=wait)
            except queue.Empty:
                continue

    def __next__(self):
        with self._lock:
            if self._pending == 0:
                raise StopIteration
        f = self._get()
        with self._lock:
            self._pending -= 1
        if self.with_results:
            if f.status == "error" and not self.raise_errors:
                return f, f.exception()
            return f, f.result()
        return f

    def next_batch(self, block=True):
        """Every future finished so far (at least one if ``block``)."""
        out = []
        if block and self._pending:
            out.append(next(self))
        while self._pending:
            try:
                f = self._queue.get_nowait()
            except queue.Empty:
                break
            with self._lock:
                self._pending -= 1
            out.append((f, f.result()) if self.with_results else f)
        return out

    def batches(self):
        """Batches of finished futures until all are done."""
        while self._pending:
            yield self.next_batch()


def fire_and_forget(obj):
    """Keeps computing these futures even once no handle to them is left."""
    flat = []
    _flatten(obj, flat)
    by_client = {}
    for f in flat:
        by_client.setdefault(id(f.client), (f.client, []))[1].append(f)
    for client, fs in by_client.values():
        client._core.fire_and_forget(fs)


def progress(*futures, notebook=None, multi=True, complete=True, blocking=None, **kwargs):
    """Shows the progress of futures, as Dask's ``progress``.

    In Jupyter with ``ipywidgets`` (or ``notebook=True``): a bar per task prefix
    (``multi=False``: one bar), updated as futures finish, returned at once so the
    notebook stays free. In a terminal: a text bar on stderr. ``blocking=True`` waits until
    the futures are done (Dask's behaviour, the default in a script); ``blocking=False``
    (the default in a REPL or IPython) draws it from a background thread and returns a
    :class:`~oxidask.distributed.diagnostics.TextProgressBar` whose ``wait()`` blocks.

    >>> progress(client.map(inc, range(100)))                  # doctest: +SKIP
    >>> bar = progress(futures, blocking=False); bar.wait()    # doctest: +SKIP
    """
    flat = []
    _flatten(list(futures), flat)
    if not flat:
        return None
    from oxidask.distributed.diagnostics import (
        ProgressWidget,
        TextProgressBar,
        _in_notebook,
        _interactive,
    )

    if notebook is None:
        notebook = _in_notebook()
    if notebook:
        widget = ProgressWidget(flat, multi=multi, complete=complete)
        try:
            from IPython.display import display

            display(widget)
        except ImportError:
            pass
        return widget
    if blocking is None:
        blocking = not _interactive()
    if not blocking:
        return TextProgressBar(flat)
    flat[0].client._core.progress(flat)
    return None


def futures_of(obj):
    """The futures in ``obj``, each once: futures themselves, and those holding the pieces
    of values and collections persisted on a cluster (``Delayed``, bags, arrays,
    dataframes), inside lists, tuples, sets and dicts (Dask's ``futures_of``).

    >>> futures_of([1, 2])
    []
    """
    flat = []
    _flatten(obj, flat, collections=True)
    seen = set()
    out = []
    for f in flat:
        if f.key not in seen:
            seen.add(f.key)
            out.append(f)
    return out


def _is_collection(x):
    return not isinstance(x, type) and callable(getattr(x, "__oxidask_collection__", None))


def _items(collections):
    """The values of ``client.compute``/``persist``'s argument, and how to put results back
    in its shape (one value, a list, tuple or set, or a dict)."""
    if isinstance(collections, (list, tuple, set, frozenset)):
        t = type(collections)
        return list(collections), (list if t is set or t is frozenset else t)
    if isinstance(collections, dict):
        names = list(collections)
        return list(collections.values()), lambda out: dict(zip(names, out))
    return [collections], lambda out: out[0]


def _to_delayed(x):
    """The one lazy value whose result is ``x``'s computed value, or ``None`` if ``x`` is not
    lazy: a collection's pieces put together by its ``finalize`` in one task."""
    if isinstance(x, Delayed):
        return x
    if not _is_collection(x):
        return None
    own = getattr(x, "__oxidask_delayed__", None)
    if callable(own):
        return own()
    from oxidask.delayed import delayed

    parts, finalize, _ = x.__oxidask_collection__()
    return delayed(finalize, pure=False)(list(parts), dask_key_name=f"finalize-{uuid.uuid4().hex}")
