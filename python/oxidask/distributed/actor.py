"""Actors, as ``dask.distributed``'s: a stateful object living on one worker.

``client.submit(Counter, actor=True)`` builds a ``Counter`` on a worker and gives a future
whose result is an :class:`Actor`, a proxy. Calling a method of the proxy returns an
:class:`ActorFuture` at once; the call travels straight to the worker holding the object
(never through the scheduler), and the calls on one actor run one at a time, in the order
they were made, on a thread of the actor's own, so its methods need no locks. Reading an
attribute that is not a method returns its value. A method's exception is raised again by
``ActorFuture.result()``.

The proxy pickles, so it can be passed to tasks, which call the actor directly from their
worker. As in Dask, actors are not resilient: if the worker holding one dies, its state is
lost and calls raise ``OSError`` saying so; actors are never recomputed or moved.

    >>> from oxidask.distributed import Client
    >>> class Counter:
    ...     n = 0
    ...     def __init__(self):
    ...         self.n = 0
    ...     def increment(self):
    ...         self.n += 1
    ...         return self.n
    >>> with Client(n_workers=1, threads_per_worker=1) as client:   # doctest: +SKIP
    ...     counter = client.submit(Counter, actor=True).result()
    ...     [counter.increment() for _ in range(3)][-1].result(), counter.n
    (3, 3)
"""

import functools
import pickle

import cloudpickle

from oxidask import _oxidask

__all__ = ["Actor", "ActorFuture", "BaseActorFuture"]


def _dumps(obj):
    """Pickles ``obj``: the standard pickler, cloudpickle for what it cannot do (lambdas,
    classes defined in ``__main__``)."""
    try:
        return pickle.dumps(obj, protocol=5)
    except Exception:
        return cloudpickle.dumps(obj, protocol=5)


def _execute(obj, name, attribute, data):
    """Runs one call on the actor ``obj`` (on the worker, on the actor's thread) and returns
    the pickled ``(ok, value)``: the result, or the exception the method raised."""
    try:
        if attribute:
            value = getattr(obj, name)
        else:
            args, kwargs = pickle.loads(data)
            value = getattr(obj, name)(*args, **kwargs)
        ok = True
    except Exception as e:
        value, ok = e, False
    try:
        return _dumps((ok, value))
    except Exception as e:
        if ok:
            exc = TypeError(
                f"the result of {type(obj).__name__}.{name} ({type(value).__name__}) cannot be "
                f"pickled to send it back: {e}; return something picklable"
            )
        else:
            exc = RuntimeError(
                f"{type(obj).__name__}.{name} raised {type(value).__name__}: {value} "
                f"(the exception itself cannot be pickled: {e})"
            )
        return pickle.dumps((False, exc), protocol=5)


class _ActorNew:
    """The task that builds an actor: ``cls(*args, **kwargs)`` made the actor of the task
    running it, whose result is the :class:`Actor` proxy."""

    def __init__(self, cls):
        self.cls = cls

    def __call__(self, *args, **kwargs):
        obj = self.cls(*args, **kwargs)
        address, key = _oxidask.actor_register(obj, _execute)
        return Actor(self.cls, address, key)


_submitters = []


def _note_submitter(client):
    """Remembers (weakly) a client that submitted actors, for proxies to fall back on."""
    import weakref

    _submitters[:] = [r for r in _submitters if r() is not None and r() is not client]
    _submitters.append(weakref.ref(client))


def _live_submitter():
    for r in reversed(_submitters):
        c = r()
        if c is not None and not c._core.closed:
            return c
    return None


def _funcname(cls):
    return getattr(cls, "__name__", None) or type(cls).__name__


class Actor:
    """Controls an object on a remote worker (Dask's ``Actor``).

    Method calls return :class:`ActorFuture` objects at once; ``.result()`` waits for the
    call's result. Attributes that are not methods are read from the remote object and
    returned directly. Obtained as the result of ``client.submit(cls, actor=True)``.
    """

    def __init__(self, cls, address, key):
        self._cls = cls
        self._address = address
        self._key = key
        self._client = None
        self._future = None
        if _oxidask.worker_context() is None:
            # In a client process the proxy holds the actor's future, as Dask's does: the
            # actor lives while a proxy or a future for it does.
            try:
                self._bind()
            except ValueError:
                pass  # no client in this process yet: bound on first use

    def _bind(self):
        from oxidask.distributed.client import get_client

        try:
            client = get_client()
        except ValueError:
            # The default client closed: a live client that made actors (as Dask falls
            # back to another live client).
            client = _live_submitter()
            if client is None:
                raise
        if _oxidask.worker_context() is None:
            self._future = client._core.future(self._key, owner=client)
        self._client = client
        return client

    @property
    def key(self):
        """The key of the task that made the actor."""
        return self._key

    def __repr__(self):
        return f"<Actor: {_funcname(self._cls)}, key={self._key}>"

    def __reduce__(self):
        return (Actor, (self._cls, self._address, self._key))

    def __dir__(self):
        names = set(dir(type(self)))
        names.update(a for a in dir(self._cls) if not a.startswith("_"))
        return sorted(names)

    def _core(self):
        client = self._client
        if client is None or client._core.closed:
            client = self._bind()
        return client._core

    def _send(self, name, attribute, data):
        return _oxidask.actor_call(self._core(), self._address, self._key, name, attribute, data)

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        cls = self.__dict__.get("_cls")
        if cls is None:
            raise AttributeError(name)
        try:
            attr = getattr(cls, name)
        except AttributeError:
            attr = None
        if attr is not None and callable(attr):

            @functools.wraps(attr)
            def call(*args, **kwargs):
                try:
                    data = _dumps((args, kwargs))
                except Exception as e:
                    raise TypeError(
                        f"the arguments of {_funcname(cls)}.{name} cannot be pickled to send "
                        f"them to the actor: {e}"
                    ) from e
                return ActorFuture(self._send(name, False, data), f"{_funcname(cls)}.{name}")

            return call
        # Not a method of the class: the object's attribute (raises AttributeError if it
        # has none).
        return ActorFuture(self._send(name, True, b""), f"{_funcname(cls)}.{name}").result()


class BaseActorFuture:
    """Future to an actor's method call (Dask's ``BaseActorFuture``): ``result()`` blocks
    for the value, ``done()`` says whether it is there; ``await`` works too."""

    __slots__ = ()

    def result(self, timeout=None):
        raise NotImplementedError

    def done(self):
        raise NotImplementedError

    def __repr__(self):
        return "<ActorFuture>"


_PENDING = object()


class ActorFuture(BaseActorFuture):
    """The pending result of one call on an :class:`Actor`.

    ``result(timeout=None)`` returns the method's return value or raises its exception (the
    same type); ``TimeoutError`` if it did not come in time; ``OSError`` if the worker
    holding the actor died or cannot be reached. Not picklable (call ``.result()`` and pass
    the value instead), as in Dask.
    """

    __slots__ = ("_handle", "_what", "_out")

    def __init__(self, handle, what):
        self._handle = handle
        self._what = what
        self._out = _PENDING

    def done(self):
        """True once the call has been answered."""
        return self._out is not _PENDING or self._handle.done()

    def result(self, timeout=None):
        """The call's result (see the class)."""
        if self._out is _PENDING:
            from oxidask.utils import parse_timedelta

            got = self._handle.wait(parse_timedelta(timeout))
            if got is None:
                from oxidask.exceptions import TimeoutError

                raise TimeoutError(f"{self._what} did not answer within {timeout} s")
            status, payload = got
            if status == 0:
                self._out = pickle.loads(payload)
            elif status == 1:
                self._out = (False, OSError(payload))
            else:
                self._out = (False, RuntimeError(payload))
        ok, value = self._out
        if ok:
            return value
        raise value

    def __await__(self):
        import asyncio

        if self.done():
            return self._async_ready().__await__()
        return asyncio.get_running_loop().run_in_executor(None, self.result).__await__()

    async def _async_ready(self):
        return self.result()

    def __reduce__(self):
        raise TypeError(
            "an ActorFuture cannot be pickled: call .result() and pass the value instead"
        )
