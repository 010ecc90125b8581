"""Configuration, as Dask's ``dask.config``: a nested dictionary read with dotted keys and
changed for good or for a ``with`` block.

    >>> import oxidask as dask
    >>> with dask.config.set(scheduler="sync"):
    ...     dask.config.get("scheduler")
    'sync'

Keys treat ``-`` and ``_`` alike; in ``set(**kwargs)`` a double underscore stands for a dot
(``distributed__worker__daemon=False``). The layered files and environment variables of
Dask's configuration are not read yet.
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


def get(key, default=no_default, config=config):
    """The value at dotted ``key``; ``default`` if absent (a ``KeyError`` without one)."""
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


class set:  # noqa: A001 - Dask's name
    """Sets configuration values; as a context manager, only for the ``with`` block.

    ``set({"a.b": 1})``, ``set(scheduler="threads")``, ``set(a__b=1)``.
    """

    def __init__(self, arg=None, config=config, lock=_lock, **kwargs):
        self._config = config
        self._record = []
        with lock:
            items = dict(arg or {})
            items.update({k.replace("__", "."): v for k, v in kwargs.items()})
            for key, value in items.items():
                _assign(config, _parts(key), value, self._record)

    def __enter__(self):
        return self._config

    def __exit__(self, *exc):
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
