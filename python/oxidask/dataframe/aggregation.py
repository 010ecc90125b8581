"""User-defined groupby aggregations (Dask's ``dd.Aggregation``) and grouping by a function.

A custom aggregation is three pandas functions run as Python tasks, as in Dask:

- ``chunk(grouped)`` on each partition, given the pandas ``SeriesGroupBy`` of one column,
  returns a Series indexed by the group keys (or a tuple of them);
- ``agg(*parts)`` combines chunk results: it is given the concatenated chunk (or earlier
  ``agg``) outputs, each grouped by the keys, and returns the same shape as ``chunk`` — it
  runs in a tree, so it must be associative;
- ``finalize(*parts)`` (optional) turns the combined parts into the result per group.

>>> import pandas as pd
>>> import oxidask.dataframe as dd
>>> custom_mean = dd.Aggregation(
...     "custom_mean",
...     lambda s: (s.count(), s.sum()),
...     lambda count, total: (count.sum(), total.sum()),
...     lambda count, total: total / count,
... )
>>> df = dd.from_pandas(pd.DataFrame({"k": [1, 1, 2], "x": [1.0, 3.0, 5.0]}), npartitions=2)
>>> df.groupby("k").agg(custom_mean).compute().x.tolist()
[2.0, 5.0]
"""

import pandas as pd

# The hidden column holding a grouping function's value per row (``groupby(callable)``),
# followed by the name of the index the function was applied to (pandas keeps it).
BY_FUNCTION = "__oxidask_by__"


def result_index_name(keys):
    """For results grouped by a function, the index name pandas gives them; else ``False``."""
    if len(keys) == 1 and keys[0].startswith(BY_FUNCTION):
        return keys[0][len(BY_FUNCTION):] or None
    return False

_BUILTIN = ("sum", "count", "min", "max", "first", "last", "mean", "size", "prod")


class Aggregation:
    """A user-defined groupby aggregation (Dask's ``dd.Aggregation``): ``chunk`` per
    partition on a pandas ``SeriesGroupBy``, ``agg`` to combine chunk results (grouped by
    the keys), optional ``finalize``. Use it in ``groupby(...).agg(aggregation)``, in a list
    or as a dict value; ``name`` labels the result columns of list forms."""

    def __init__(self, name, chunk, agg, finalize=None):
        if not callable(chunk) or not callable(agg):
            raise TypeError("Aggregation needs callable chunk= and agg= functions")
        if finalize is not None and not callable(finalize):
            raise TypeError("Aggregation finalize= must be callable or None")
        self.__name__ = name
        self.chunk = chunk
        self.agg = agg
        self.finalize = finalize

    def __repr__(self):
        return f"Aggregation({self.__name__!r})"


def _builtin(name):
    """A built-in aggregation as an ``Aggregation`` (for specs mixing both)."""
    if name == "mean":
        return Aggregation(
            "mean",
            lambda s: (s.sum(), s.count()),
            lambda t, c: (t.sum(), c.sum()),
            lambda t, c: t / c,
        )
    if name in ("count", "size"):
        return Aggregation(name, lambda s: getattr(s, name)(), lambda c: c.sum())
    if name in ("first", "last", "min", "max", "sum", "prod"):
        return Aggregation(name, lambda s: getattr(s, name)(), lambda c: getattr(c, name)())
    raise NotImplementedError(
        f"groupby aggregations mixing dd.Aggregation with {name!r} are not supported; "
        f"mix them with {', '.join(_BUILTIN)}"
    )


def as_aggregation(f):
    """``f`` as an ``Aggregation`` (itself, or a built-in by name), else ``None``."""
    if isinstance(f, Aggregation):
        return f
    if isinstance(f, str) and f in _BUILTIN:
        return _builtin(f)
    return None


def is_custom(arg):
    """Whether a groupby ``agg`` argument holds a ``dd.Aggregation`` anywhere."""
    if isinstance(arg, Aggregation):
        return True
    if isinstance(arg, (list, tuple)):
        return any(isinstance(f, Aggregation) for f in arg)
    if isinstance(arg, dict):
        return any(is_custom(v) for v in arg.values())
    return False


def _tuple(x):
    return x if isinstance(x, tuple) else (x,)


def _chunk(part, keys, specs):
    grouped = part.groupby(keys, sort=False)
    return [_tuple(agg.chunk(grouped[column])) for column, agg, _ in specs]


def _levels(s):
    return list(range(s.index.nlevels))


def _combine(pieces, specs):
    out = []
    for i, (_, agg, _) in enumerate(specs):
        width = len(pieces[0][i])
        cats = [pd.concat([p[i][j] for p in pieces]) for j in range(width)]
        grouped = [c.groupby(level=_levels(c), sort=False) for c in cats]
        out.append(_tuple(agg.agg(*grouped)))
    return out


def _finish(combined, keys, specs):
    cols = {}
    for i, ((_, agg, _), parts) in enumerate(zip(specs, combined)):
        cols[f"__agg{i}"] = agg.finalize(*parts) if agg.finalize is not None else parts[0]
    out = pd.DataFrame(cols).sort_index()
    out.index.names = keys
    return out



def custom_groupby_agg(frame, keys, specs, squeeze=False, split_every=8):
    """A lazy groupby result of ``specs`` (``(column, Aggregation, label)``) over ``frame``
    grouped by ``keys``: chunk per partition, a tree of ``agg`` steps ``split_every`` wide,
    then ``finalize``; one partition, indexed by the keys, columns labelled as pandas does."""
    from oxidask.dataframe.io import _from_results, _nonempty
    from oxidask.delayed import delayed

    from oxidask.dataframe.groupby import _GroupResult

    # The result's columns, from the pipeline run on a made-up frame (as Dask's meta).
    sample = _nonempty(frame._meta)
    try:
        meta = _finish(_combine([_chunk(sample, keys, specs)], specs), keys, specs)
    except Exception as e:
        raise ValueError(
            "groupby(...).agg with a dd.Aggregation could not run on a made-up frame "
            f"({type(e).__name__}: {e}): check chunk, agg and finalize"
        ) from e
    meta = meta.iloc[:0]
    chunk = delayed(_chunk, pure=True)
    combine = delayed(_combine, pure=True)
    level = [chunk(h, keys, specs) for h in frame._handles()]
    split_every = max(2, int(split_every or 8))
    while len(level) > 1:
        level = [combine(level[i:i + split_every], specs)
                 for i in range(0, len(level), split_every)]
    if len(level) == 1 and frame.npartitions == 1:
        level = [combine(level, specs)]
    result = delayed(_finish, pure=True)(level[0], keys, specs)
    labels = {f"__agg{i}": label for i, (_, _, label) in enumerate(specs)}
    return _GroupResult(_from_results([result], meta), keys, labels,
                        squeeze="__agg0" if squeeze else None)


def add_function_key(frame, by):
    """``frame`` with a hidden key column (``BY_FUNCTION`` + the index name): ``by`` applied
    to each partition's index labels (Dask's grouping by a function of the index); returns
    the frame and the key column's name."""
    from oxidask.dataframe.io import _nonempty

    index = frame._meta.index
    key = BY_FUNCTION + (str(index.name) if len(frame._index) == 1 and index.name else "")
    key_dtype = _nonempty(frame._meta).index.map(by).dtype

    def with_key(part):
        return part.assign(**{key: part.index.map(by)})

    meta = frame._meta.assign(**{key: pd.Series([], dtype=key_dtype)})
    return frame.map_partitions(with_key, meta=meta), key
