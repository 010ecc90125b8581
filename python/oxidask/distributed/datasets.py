"""The client's published datasets and event log: ``publish_dataset``, ``get_dataset``,
``list_datasets``, ``unpublish_dataset``, the ``datasets`` mapping, ``log_event`` and
``get_events`` (mixed into ``Client``)."""

import pickle
import time
from collections.abc import MutableMapping

import cloudpickle

from oxidask.distributed._coord import loads, request

_no_default = object()


class Datasets(MutableMapping):
    """The published datasets as a mapping (``client.datasets["name"]``)."""

    def __init__(self, client):
        self._client = client

    def __getitem__(self, name):
        return self._client.get_dataset(name)

    def __setitem__(self, name, value):
        self._client.publish_dataset(value, name=name, override=True)

    def __delitem__(self, name):
        self._client.unpublish_dataset(name)

    def __iter__(self):
        return iter(self._client.list_datasets())

    def __len__(self):
        return len(self._client.list_datasets())


class CoordinationMixin:
    """What ``Client`` adds for datasets and events (see the module)."""

    def publish_dataset(self, *args, name=None, override=False, **kwargs):
        """Publishes objects under names for other clients: ``publish_dataset(x, name="x")``
        or ``publish_dataset(x=x, y=y)``. Futures inside stay computed while published, even
        after this client leaves. A taken name raises ``KeyError`` unless ``override=True``.

        >>> from oxidask.distributed import Client
        >>> with Client(n_workers=1, threads_per_worker=1) as client:
        ...     client.publish_dataset(total=client.submit(sum, [1, 2]))
        ...     client.list_datasets(), client.get_dataset("total").result()
        (['total'], 3)
        """
        data = dict(kwargs)
        if name is not None:
            if len(args) != 1:
                raise ValueError(
                    "If name is provided, expecting call signature like publish_dataset(df, name='ds')"
                )
            data[name] = args[0]
        elif args:
            if len(args) == 1 and isinstance(args[0], dict):
                data.update(args[0])
            else:
                raise TypeError(
                    "publish_dataset takes objects as name=value keywords, a {name: value} dict, "
                    "or one object with name='...'"
                )
        for key, value in data.items():
            request(self, "dataset_publish", str(key), value, overwrite=override)

    def get_dataset(self, name, default=_no_default, **kwargs):
        """The dataset published as ``name``; ``KeyError`` if there is none (or ``default``)."""
        try:
            return loads(request(self, "dataset_get", str(name)))
        except KeyError:
            if default is _no_default:
                raise
            return default

    def unpublish_dataset(self, name, **kwargs):
        """Removes a published dataset (``KeyError`` if there is none)."""
        for n in name if isinstance(name, list) else [name]:
            request(self, "dataset_unpublish", str(n))

    def list_datasets(self, **kwargs):
        """Names of the published datasets, sorted."""
        return request(self, "dataset_list", "")

    @property
    def datasets(self):
        """The published datasets as a mutable mapping."""
        return Datasets(self)

    def log_event(self, topic, msg):
        """Logs ``msg`` (any picklable object) under ``topic`` (or each of several topics),
        stamped with this machine's time; the scheduler keeps the latest 100,000 per topic."""
        topics = [topic] if isinstance(topic, str) else list(topic)
        raw = cloudpickle.dumps(msg)
        now = time.time()
        for t in topics:
            request(self, "log_event", t, raw=raw, time=now)

    def get_events(self, topic=None):
        """The events of ``topic`` as a tuple of ``(timestamp, msg)``, oldest first; with no
        topic a dict of every topic's."""
        events = request(self, "get_events", "" if topic is None else topic)
        if topic is not None:
            return tuple((t, pickle.loads(m)) for _, t, m in events)
        out = {}
        for tp, t, m in events:
            out.setdefault(tp, []).append((t, pickle.loads(m)))
        return {tp: tuple(v) for tp, v in out.items()}
