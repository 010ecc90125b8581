"""What the coordination objects share: the client they talk through, values pickled with
the futures inside them kept as references (so the scheduler keeps those futures computed
while the value is stored), and unique ids for lock holders, leases and subscribers."""

import io
import itertools
import pickle

import cloudpickle

from oxidask import _oxidask
from oxidask._oxidask import Future
from oxidask.utils import parse_timedelta

_ids = itertools.count(1)


def next_id():
    """An id unique in this process (a lock holder, a lease, a subscriber)."""
    return next(_ids)


def resolve_client(client):
    """``client``, or the client of this process (the worker's inside a task)."""
    if client is not None:
        return client
    from oxidask.distributed.client import get_client

    return get_client()


def seconds(timeout):
    """A timeout in seconds (numbers, ``"200ms"``, ``timedelta``); ``None`` waits for ever."""
    return None if timeout is None else float(parse_timedelta(timeout))


class _Pickler(cloudpickle.Pickler):
    def __init__(self, f, futures):
        super().__init__(f, protocol=5)
        self._futures = futures

    def persistent_id(self, obj):
        if isinstance(obj, Future):
            self._futures.append(obj)
            return len(self._futures) - 1
        return None


class _Unpickler(pickle.Unpickler):
    def __init__(self, f, futures):
        super().__init__(f)
        self._futures = futures

    def persistent_load(self, pid):
        return self._futures[pid]


def dumps(value):
    """``(bytes, [Future])``: a future on its own travels as just its key (as Rust clients
    store one); futures anywhere else in the value as references into the list."""
    if isinstance(value, Future):
        return b"", [value]
    futures = []
    f = io.BytesIO()
    _Pickler(f, futures).dump(value)
    return f.getvalue(), futures


def loads(pair):
    """The value ``dumps`` made, with the futures the scheduler handed over."""
    data, futures = pair
    if not data and len(futures) == 1:
        return futures[0]
    return _Unpickler(io.BytesIO(data), futures).load()


_NOTHING = object()


def request(client, op, name, value=_NOTHING, raw=None, **kw):
    """One coordination request on ``client``'s connection (see ``_oxidask.coord``):
    ``value`` is pickled with its futures, ``raw`` is sent as the bytes it is."""
    pair = (raw, []) if raw is not None else None if value is _NOTHING else dumps(value)
    return _oxidask.coord(client._core, op, name, pair, owner=client, **kw)
