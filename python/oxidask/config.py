"""Configuration, as Dask's ``dask.config``: a nested dictionary read with dotted keys and
changed for good or for a ``with`` block.

    >>> import oxidask as dask
    >>> with dask.config.set(scheduler="sync"):
    ...     dask.config.get("scheduler")
    'sync'

Keys treat ``-`` and ``_`` alike; in ``set(**kwargs)`` a double underscore stands for a dot
(``distributed__worker__daemon=False``).

The keys the engine reads (``distributed.comm.timeouts.connect``,
``distributed.scheduler.allowed-failures``, ``array.split-every``, ... — ``oxidask config``
lists them) go to its layered configuration: YAML files (``~/.config/oxidask/*.yaml``,
``/etc/oxidask/``, ``$OXIDASK_CONFIG``) < environment variables
(``OXIDASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT=5s``) < ``set`` here < command-line flags.
A wrong type or an out-of-range value raises ``ValueError`` naming the key.

    >>> with dask.config.set({"distributed.comm.timeouts.connect": "5s"}):
    ...     dask.config.get("distributed.comm.timeouts.connect")
    '5s'
"""

import threading

_lock = threading.Lock()

config = {}
"""The configuration in effect."""

defaults = {
    "num_workers": None,
    "delayed_pure": False,
    "multiprocessing": {"context": "spawn"},
}


class _NoDefault:
    def __repr__(self):
        return "<no default>"


no_default = _NoDefault()


def canonical_name(k):
    """A key as stored: ``-`` where the user may write ``_``."""
    return k.replace("_", "-") if isinstance(k, str) else k


def _parts(key):
    return [canonical_name(p) for p in key.split(".")]


def _engine():
    from oxidask import _oxidask

    return _oxidask


def _engine_key(key):
    """Whether the engine reads ``key``. Top-level keys (``scheduler``, ``num_workers``)
    stay Python's: they also take Python objects (a client, a ``get`` function)."""
    return isinstance(key, str) and "." in key and _engine().config_known(key)


def get(key, default=no_default, config=config):
    """The value at dotted ``key``; ``default`` if absent (a ``KeyError`` without one)."""
    if config is globals()["config"] and _engine_key(key):
        return _engine().config_get(key)
    node = config
    for part in _parts(key):
        if isinstance(node, dict) and part in node:
            node = node[part]
            continue
        d = defaults
        for p in _parts(key):
            if isinstance(d, dict) and canonical_name(p) in d:
                d = d[canonical_name(p)]
            else:
                if default is not no_default:
                    return default
                raise KeyError(key)
        return d if default is no_default or d is not None else default
    return node


def _assign(cfg, parts, value, record):
    node = cfg
    path = []
    for p in parts[:-1]:
        path.append(p)
        if p not in node or not isinstance(node[p], dict):
            record.append((tuple(path), node.get(p, _missing), p in node))
            node[p] = {}
        node = node[p]
    last = parts[-1]
    record.append((tuple(parts), node.get(last, _missing), last in node))
    node[last] = value


_missing = object()

# Engine settings made outside a ``with`` block: kept (their guards never released).
_kept = []


def render():
    """The engine's effective configuration: each key, its value and where it came from
    (what ``oxidask config`` prints)."""
    return _engine().config_render()


class set:  # noqa: A001 - Dask's name
    """Sets configuration values; as a context manager, only for the ``with`` block.

    ``set({"a.b": 1})``, ``set(scheduler="threads")``, ``set(a__b=1)``.
    """

    def __init__(self, arg=None, config=config, lock=_lock, **kwargs):
        self._config = config
        self._record = []
        self._guards = []
        items = dict(arg or {})
        items.update({k.replace("__", "."): v for k, v in kwargs.items()})
        engine = config is globals()["config"]
        try:
            # The engine's keys first: a bad value raises before anything changed.
            for key, value in items.items():
                if engine and _engine_key(key):
                    self._guards.append(_engine().config_set(key, value))
        except BaseException:
            self._release()
            raise
        with lock:
            for key, value in items.items():
                if not (engine and _engine_key(key)):
                    _assign(config, _parts(key), value, self._record)
        # Without ``with``, the values hold for good, as in Dask.
        _kept.extend(self._guards)

    def _release(self):
        for g in reversed(self._guards):
            g.release()
        self._guards = []

    def __enter__(self):
        return self._config

    def __exit__(self, *exc):
        for g in self._guards:
            if g in _kept:
                _kept.remove(g)
        self._release()
        with _lock:
            for path, old, existed in reversed(self._record):
                node = self._config
                for p in path[:-1]:
                    node = node.setdefault(p, {})
                if existed and old is not _missing:
                    node[path[-1]] = old
                else:
                    node.pop(path[-1], None)
        return False


def update(old, new):
    """Merges ``new`` into ``old`` (nested), returning ``old``."""
    for k, v in new.items():
        k = canonical_name(k)
        if isinstance(v, dict) and isinstance(old.get(k), dict):
            update(old[k], v)
        else:
            old[k] = v
    return old


def refresh():
    """Forgets values set without a ``with`` block."""
    config.clear()
