"""Functions over partitions with rows borrowed from their neighbours: Dask's
``map_overlap`` and the ``rolling`` windows built on it.

Each partition is given the last rows of the partition before it (``before``: a row count,
or a time span over a datetime index) and the first rows of the one after (``after``); the
function runs on the joined pandas frame and the borrowed rows are cut from its result. As
in Dask, windows never reach past the neighbouring partition: a partition shorter than an
integer window raises, so repartition to larger partitions first.

>>> import pandas as pd
>>> import oxidask.dataframe as dd
>>> pdf = pd.DataFrame({"x": range(10)}, index=pd.date_range("2021-01-01", periods=10))
>>> df = dd.from_pandas(pdf, npartitions=3)
>>> df.rolling("3D").x.sum().compute().tolist()[:4]
[0.0, 1.0, 3.0, 6.0]
"""

import numbers

import pandas as pd

_ROLLING = ("count", "sum", "mean", "median", "min", "max", "std", "var", "skew", "kurt")


def _window(value, what):
    if value is None or value == 0:
        return 0
    if isinstance(value, str):
        value = pd.Timedelta(value)
    if isinstance(value, (pd.Timedelta,)) or hasattr(value, "to_timedelta64"):
        return pd.Timedelta(value)
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 0:
        return int(value)
    raise TypeError(f"map_overlap {what}= takes a non-negative integer or a timedelta, got {value!r}")


def _as_pandas(part, series_name):
    if series_name is None:
        return part
    s = part[series_name]
    s.name = None if series_name == "__series__" else series_name
    return s


def _check_rows(neighbour, n, which):
    if len(neighbour) < n:
        raise NotImplementedError(
            f"Partition size is less than overlapping window size ({len(neighbour)} rows in the "
            f"{which} partition, window {n}). Try using df.repartition to increase the "
            "partition size."
        )


def _overlap_task(prev, cur, nxt, func, before, after, series_name, args, kwargs):
    cur = _as_pandas(cur, series_name)
    pieces, head = [], 0
    if prev is not None and before:
        prev = _as_pandas(prev, series_name)
        if isinstance(before, pd.Timedelta):
            if len(cur):
                prev = prev[prev.index > cur.index.min() - before]
            else:
                prev = prev.iloc[:0]
        else:
            _check_rows(prev, before, "previous")
            prev = prev.iloc[len(prev) - before:]
        head = len(prev)
        pieces.append(prev)
    pieces.append(cur)
    tail = 0
    if nxt is not None and after:
        nxt = _as_pandas(nxt, series_name)
        if isinstance(after, pd.Timedelta):
            if len(cur):
                nxt = nxt[nxt.index < cur.index.max() + after]
            else:
                nxt = nxt.iloc[:0]
        else:
            _check_rows(nxt, after, "next")
            nxt = nxt.iloc[:after]
        tail = len(nxt)
        pieces.append(nxt)
    joined = pd.concat(pieces) if len(pieces) > 1 else cur
    out = func(joined, *args, **kwargs)
    return out.iloc[head:len(out) - tail]


def map_overlap(collection, func, before, after, args=(), kwargs=None, meta=None):
    """``func`` over each partition of a DataFrame or Series joined with ``before`` rows (or
    a time span) of the previous partition and ``after`` of the next; see the module."""
    from oxidask.dataframe.core import DataFrame
    from oxidask.dataframe.io import _from_results, _meta_frame, _nonempty
    from oxidask.delayed import delayed

    before = _window(before, "before")
    after = _window(after, "after")
    kwargs = dict(kwargs or {})
    if isinstance(collection, DataFrame):
        frame, series_name, sample = collection, None, _nonempty(collection._meta)
    else:
        frame = collection.to_frame()
        series_name = collection._name
        sample = _as_pandas(_nonempty(frame._meta), series_name)
    if (isinstance(before, pd.Timedelta) or isinstance(after, pd.Timedelta)) and not (
        pd.api.types.is_datetime64_any_dtype(frame._meta.index.dtype)
    ):
        raise TypeError(
            "map_overlap with a time span needs a datetime index: set_index on a datetime "
            "column first, or pass row counts"
        )
    if meta is None:
        try:
            meta = func(sample, *args, **kwargs)
        except Exception as e:
            raise ValueError(
                "map_overlap could not infer the result by running the function on a made-up "
                f"frame ({type(e).__name__}: {e}); pass meta="
            ) from e
    meta = _meta_frame(meta)
    handles = list(frame._handles())
    task = delayed(_overlap_task, pure=False)
    results = []
    for i, h in enumerate(handles):
        prev = handles[i - 1] if i > 0 else None
        nxt = handles[i + 1] if i + 1 < len(handles) else None
        results.append(task(prev, h, nxt, func, before, after, series_name, tuple(args), kwargs))
    return _from_results(results, meta)


class Rolling:
    """``df.rolling(window)``: moving-window aggregations (Dask's ``Rolling``), computed
    with ``map_overlap`` so each partition borrows the rows its first windows need."""

    def __init__(self, obj, window, min_periods=None, center=False, win_type=None, axis=0):
        if axis not in (0, "index"):
            raise NotImplementedError("rolling supports axis=0")
        if isinstance(window, numbers.Integral) and not isinstance(window, bool):
            if window < 0:
                raise ValueError("window must be an integer 0 or greater")
            half = window // 2 if center else 0
            self._before = window - 1 - half if center else max(window - 1, 0)
            self._after = half if center else 0
        else:
            try:
                span = pd.Timedelta(window)
            except (ValueError, TypeError):
                raise ValueError(
                    f"window must be an integer or an offset string like '5D', got {window!r}"
                ) from None
            if center:
                raise NotImplementedError("center=True needs an integer window")
            self._before, self._after = span, 0
        self.obj = obj
        self.window = window
        self.min_periods = min_periods
        self.center = center
        self.win_type = win_type

    def _call(self, method, *args, **kwargs):
        opts = dict(window=self.window, min_periods=self.min_periods, center=self.center,
                    win_type=self.win_type)

        def run(part):
            return getattr(part.rolling(**opts), method)(*args, **kwargs)

        run.__name__ = f"rolling-{method}"
        return map_overlap(self.obj, run, self._before, self._after)

    def apply(self, func, raw=False, args=(), kwargs=None):
        """A Python function of each window."""
        return self._call("apply", func, raw=raw, args=args, kwargs=kwargs or {})

    def aggregate(self, func, *args, **kwargs):
        """Several aggregations of each window (pandas' ``Rolling.agg``)."""
        return self._call("aggregate", func, *args, **kwargs)

    agg = aggregate

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        from oxidask.dataframe.core import DataFrame

        if isinstance(self.obj, DataFrame) and name in set(self.obj.columns):
            return Rolling(self.obj[name], self.window, self.min_periods, self.center,
                           self.win_type)
        raise AttributeError(f"'Rolling' object has no attribute {name!r}")

    def __getitem__(self, key):
        return Rolling(self.obj[key], self.window, self.min_periods, self.center, self.win_type)

    def __repr__(self):
        return f"Rolling [window={self.window},center={self.center}]"


def _install():
    for method in _ROLLING:

        def f(self, *args, _m=method, **kwargs):
            return self._call(_m, *args, **kwargs)

        f.__name__ = method
        f.__doc__ = f"The rolling {method} (as pandas' ``Rolling.{method}``)."
        setattr(Rolling, method, f)


_install()
