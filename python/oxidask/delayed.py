"""``delayed``: lazy calls of Python functions, as Dask's ``dask.delayed``."""

import functools
from collections import OrderedDict

from oxidask._oxidask import Delayed, DelayedFunction, delayed_value
from oxidask import config

# `delayed(f)` inside a loop is the common way to write it: wrap each function once.
_wrapped = OrderedDict()
_WRAPPED_MAX = 256


def _wrap(func, pure, nout, name):
    try:
        key = (id(func), pure, nout, name)
    except TypeError:
        return DelayedFunction(func, pure=pure, nout=nout, name=name)
    hit = _wrapped.get(key)
    if hit is not None and hit[0] is func:
        _wrapped.move_to_end(key)
        return hit[1]
    d = DelayedFunction(func, pure=pure, nout=nout, name=name)
    _wrapped[key] = (func, d)
    if len(_wrapped) > _WRAPPED_MAX:
        _wrapped.popitem(last=False)
    return d


def delayed(obj=None, name=None, pure=None, nout=None, traverse=True):
    """Wraps a function or a value so that using it builds a task graph instead of running.

    ``delayed(func)`` (or ``@delayed``) returns a function whose calls are lazy: each returns a
    :class:`Delayed` whose ``compute()`` runs the graph. ``delayed(value)`` wraps a value;
    lists, tuples, dicts and sets holding lazy values become a task that builds them.

    - ``pure=True``: equal calls share one key (and run once); by default each call is new.
    - ``nout=n``: the result can be unpacked into ``n`` lazy values.
    - ``name``: the key (of a value) or the key prefix (of a function's calls).
    - Calls take ``dask_key_name=`` (the key) and ``pure=`` too.

    >>> from oxidask import delayed
    >>> @delayed(pure=True)
    ... def add(x, y):
    ...     return x + y
    >>> add(1, 2).compute()
    3
    >>> a, b = delayed(divmod, nout=2)(7, 2)
    >>> (a + b).compute()
    4
    """
    if obj is None and name is None and pure is None and nout is None:
        return functools.partial(delayed, pure=pure, nout=nout, name=name, traverse=traverse)
    if obj is None and (pure is not None or nout is not None or name is not None):
        return functools.partial(delayed, pure=pure, nout=nout, name=name, traverse=traverse)
    if isinstance(obj, (Delayed, DelayedFunction)):
        return obj
    if pure is None:
        pure = bool(config.get("delayed_pure", False))
    if callable(obj):
        return _wrap(obj, pure, nout, name)
    if not traverse:
        return delayed_value(obj, name=name, pure=pure, traverse=False)
    return delayed_value(obj, name=name, pure=pure)


__all__ = ["Delayed", "delayed"]
