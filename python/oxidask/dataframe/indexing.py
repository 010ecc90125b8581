"""Label-based selection: Dask's ``DataFrame.loc`` and ``Series.loc``.

``df.loc[rows]``, ``df.loc[rows, columns]`` and ``s.loc[rows]`` become a filter on the frame's
plan (one Polars expression per partition) and, where the index's divisions are known, a
subset of the partitions: only the partitions whose index range can hold the labels are read
(Dask's ``LocSlice``/``LocElement``/``LocList`` lowering to ``Partitions``).

Rows are chosen by a boolean Series of the same frame (as ``df[mask]``), a callable of the
frame, or labels of the index (a frame indexed by one column, after ``set_index``): a label,
an inclusive slice ``a:b`` with open ends, or a list of labels. On a datetime index, labels
may be ``pd.Timestamp``/``datetime``/``np.datetime64`` or strings; strings select the whole
period they name (``"2019-01-05"`` is that day, ``"2019-01"`` that month), as pandas'
partial string indexing does.

The index column keeps its values in the partitions (Polars), and the engine's divisions are
physical numbers (timestamps as counts of the column's time unit), so labels are turned into
the same physical numbers before they are compared.
"""

import datetime
import math
import numbers

import numpy as np
import pandas as pd
from pandas.errors import IndexingError

_NS_PER_UNIT = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}


class LocIndexer:
    """What ``df.loc`` / ``s.loc`` return: label-based selection with ``[...]``.

    >>> import pandas as pd
    >>> import oxidask.dataframe as dd
    >>> pdf = pd.DataFrame({"k": [1, 2, 3, 4], "x": [10, 20, 30, 40]})
    >>> df = dd.from_pandas(pdf, npartitions=2).set_index("k")
    >>> df.loc[2:3].compute().x.tolist()
    [20, 30]
    >>> df.x.loc[[1, 4]].compute().tolist()
    [10, 40]
    """

    def __init__(self, obj):
        self._obj = obj

    def __getitem__(self, key):
        from oxidask.dataframe.core import DataFrame, Series

        obj = self._obj
        if isinstance(obj, Series):
            if isinstance(key, tuple):
                raise IndexingError("Too many indexers")
            return Series(select_rows(obj._frame, key), obj._expr, obj._name)
        assert isinstance(obj, DataFrame)
        cols = None
        if isinstance(key, tuple):
            if len(key) > 2:
                raise IndexingError("Too many indexers")
            if len(key) == 2:
                cols = _column_labels(obj, key[1])
            key = key[0]
        out = select_rows(obj, key)
        if cols is None:
            return out
        if isinstance(cols, list):
            return out._wrap(out._node.columns_subset(out._index + cols))
        return Series(out, ("col", cols), cols)

    def __setitem__(self, key, value):
        raise TypeError(
            "oxidask.dataframe: .loc does not support item assignment (frames are lazy and "
            "immutable, as in Dask); use df.assign(...) or df[column] = value instead"
        )


def _column_labels(frame, cindexer):
    """The columns ``cindexer`` names (a list), or one column's name for a single label;
    ``KeyError`` for unknown columns, as pandas gives (resolved on the empty meta frame)."""
    if cindexer is None:
        return None
    if isinstance(cindexer, np.generic):
        cindexer = cindexer.item()
    if isinstance(cindexer, slice) and cindexer == slice(None):
        return list(frame.columns)
    sel = frame._meta.loc[:, cindexer]
    if isinstance(sel, pd.DataFrame):
        return list(sel.columns)
    return sel.name


def select_rows(frame, key):
    """``frame`` with the rows ``key`` chooses (the row part of ``frame.loc[key]``).

    >>> import pandas as pd
    >>> import oxidask.dataframe as dd
    >>> df = dd.from_pandas(pd.DataFrame({"x": [1, 2, 3]}), npartitions=2)
    >>> select_rows(df, df.x > 1).compute().x.tolist()
    [2, 3]
    """
    from oxidask.dataframe.core import DataFrame, Series

    if key is None or (isinstance(key, slice) and key == slice(None)):
        return frame
    if isinstance(key, Series):
        if not pd.api.types.is_bool_dtype(key.dtype):
            raise KeyError(
                "Cannot index with non-boolean dask Series. Try passing computed values "
                "instead (e.g. ``ddf.loc[iindexer.compute()]``)"
            )
        return frame._wrap(frame._node.filter(key._expr_over(frame)))
    if isinstance(key, DataFrame):
        raise TypeError("oxidask.dataframe: .loc rows take a boolean Series, not a DataFrame")
    if callable(key):
        return select_rows(frame, key(frame))
    index = _Index(frame)
    if isinstance(key, slice):
        if key.step not in (None, 1):
            raise NotImplementedError(
                "oxidask.dataframe: .loc label slices take no step (got step="
                f"{key.step!r}); select the range and sort or sample afterwards"
            )
        return index.select([(index.bound(key.start, "left"), index.bound(key.stop, "right"))])
    if isinstance(key, (list, np.ndarray, pd.Index, pd.Series)):
        if pd.api.types.is_bool_dtype(getattr(key, "dtype", None)) or (
            isinstance(key, list) and key and all(isinstance(v, (bool, np.bool_)) for v in key)
        ):
            raise NotImplementedError(
                "oxidask.dataframe: .loc takes boolean masks as a Series of the same frame "
                "(df.loc[df.x > 0]), not as lists or arrays"
            )
        return index.select_labels(list(key))
    return index.select([index.label_range(key)])


class _Index:
    """The index of a frame indexed by one column: label conversion and selection."""

    def __init__(self, frame):
        if len(frame._index) != 1:
            if not frame._index:
                raise NotImplementedError(
                    "oxidask.dataframe: .loc by labels needs an index, and this frame has none "
                    "(a default RangeIndex is not kept); call set_index(column) first, or "
                    "select rows with a boolean Series (df.loc[df.x > 0])"
                )
            raise NotImplementedError(
                "oxidask.dataframe: .loc by labels needs a frame indexed by one column; this "
                f"one is indexed by {frame._index!r}: reset_index() and set_index(column)"
            )
        self.frame = frame
        self.name = frame._index[0]
        self.dtype = frame._meta.index.dtype
        if pd.api.types.is_datetime64_any_dtype(self.dtype):
            if getattr(self.dtype, "tz", None) is not None:
                raise NotImplementedError(
                    "oxidask.dataframe: .loc on a timezone-aware index is not supported"
                )
            self.kind = "datetime"
            self.unit = np.datetime_data(np.dtype(self.dtype))[0]
            # Compared as counts of the column's unit, as the divisions are kept.
            self.column = ("cast", ("col", self.name), "int64")
        elif pd.api.types.is_bool_dtype(self.dtype):
            raise NotImplementedError("oxidask.dataframe: .loc on a boolean index is not supported")
        elif pd.api.types.is_numeric_dtype(self.dtype):
            self.kind = "number"
            self.column = ("col", self.name)
        elif pd.api.types.is_string_dtype(self.dtype) or self.dtype == object:
            self.kind = "string"
            self.column = ("col", self.name)
        else:
            raise NotImplementedError(
                f"oxidask.dataframe: .loc on an index of dtype {self.dtype} is not supported"
            )

    # ---- labels to physical values

    def _timestamp_ns(self, label):
        try:
            ts = pd.Timestamp(label)
        except (TypeError, ValueError):
            return None
        if ts is pd.NaT or ts.tz is not None:
            return None
        return ts.as_unit("ns").value

    def _period_ns(self, text):
        """A datetime string's period (pandas' partial string indexing): first and last
        nanosecond, or ``None`` when it is not a date."""
        try:
            p = pd.Period(text)
        except (TypeError, ValueError):
            return None
        return p.start_time.as_unit("ns").value, (p + 1).start_time.as_unit("ns").value - 1

    def _to_unit(self, ns, side):
        f = _NS_PER_UNIT[self.unit]
        return -(-ns // f) if side == "left" else ns // f

    def _number(self, label):
        if isinstance(label, np.generic):
            label = label.item()
        if isinstance(label, bool) or not isinstance(label, numbers.Real):
            return None
        return label

    def bound(self, label, side):
        """A slice end as the physical value it is compared with (``None``: open)."""
        if label is None:
            return None
        if self.kind == "datetime":
            if isinstance(label, str):
                period = self._period_ns(label)
                if period is not None:
                    return self._to_unit(period[0] if side == "left" else period[1], side)
            ns = self._timestamp_ns(label) if _datelike(label) else None
            if ns is not None:
                return self._to_unit(ns, side)
        elif self.kind == "number":
            v = self._number(label)
            if v is not None and not (isinstance(v, float) and math.isnan(v)):
                return v
        elif isinstance(label, str):
            return label
        raise TypeError(
            f"cannot do slice indexing on the {self.dtype} index {self.name!r} with "
            f"{label!r} of type {type(label).__name__}"
        )

    def label_range(self, label):
        """One label as the closed range of physical values it selects (``KeyError`` for
        a label the index cannot hold)."""
        if self.kind == "datetime" and isinstance(label, str):
            period = self._period_ns(label)
            if period is not None:
                return self._to_unit(period[0], "left"), self._to_unit(period[1], "right")
        try:
            return self.bound(label, "left"), self.bound(label, "right")
        except TypeError:
            raise KeyError(label) from None

    # ---- selection

    def select(self, ranges):
        """Rows whose index lies in one of the closed ``ranges`` of physical values (an end
        ``None`` is open), reading only the partitions that can hold them."""
        exprs = []
        for lo, hi in ranges:
            if lo is not None and hi is not None:
                exprs.append(("between", self.column, ("lit", lo), ("lit", hi), "both"))
            elif lo is not None:
                exprs.append(("bin", "ge", self.column, ("lit", lo)))
            elif hi is not None:
                exprs.append(("bin", "le", self.column, ("lit", hi)))
        node = self._pruned(ranges)
        if exprs:
            cond = exprs[0]
            for e in exprs[1:]:
                cond = ("bin", "or", cond, e)
            node = node.filter(cond)
        return self.frame._wrap(node)

    def select_labels(self, labels):
        """Rows whose index equals one of ``labels`` (in index order)."""
        values = []
        for label in labels:
            if self.kind == "datetime":
                ns = self._timestamp_ns(label) if _datelike(label) else None
                if ns is None:
                    raise KeyError(label)
                f = _NS_PER_UNIT[self.unit]
                if ns % f == 0:
                    values.append(ns // f)
            elif self.kind == "number":
                v = self._number(label)
                if v is None:
                    raise KeyError(label)
                if pd.api.types.is_integer_dtype(self.dtype):
                    if float(v).is_integer():
                        values.append(int(v))
                elif not (isinstance(v, float) and math.isnan(v)):
                    values.append(float(v))
            else:
                if not isinstance(label, str):
                    raise KeyError(label)
                values.append(label)
        if not values:
            # Dask's LocEmpty: no rows, one partition.
            return self.frame._wrap(self.frame._node.partitions([0]).filter(("lit", False)))
        node = self._pruned([(v, v) for v in values])
        return self.frame._wrap(node.filter(("isin", self.column, values)))

    def _pruned(self, ranges):
        """The frame's node, limited to the partitions whose index range meets one of
        ``ranges`` when the divisions are known (else all of them)."""
        node = self.frame._node
        n = node.npartitions
        d = node.divisions
        if d is None or node.index != self.name or self.kind == "string":
            return node
        if len(d) == n - 1:
            cuts = list(d)
        elif len(d) == n + 1:
            cuts = list(d[1:-1])
        else:
            return node
        # Partition j holds [cuts[j-1], cuts[j]). Ends are compared inclusively so a label
        # on a cut keeps both neighbours: never wrong, whichever side equal keys went.
        lower = [-math.inf] + cuts
        upper = cuts + [math.inf]
        keep = [
            j for j in range(n)
            if any((lo is None or upper[j] >= lo) and (hi is None or lower[j] <= hi)
                   for lo, hi in ranges)
        ]
        if len(keep) == n:
            return node
        return node.partitions(keep or [0])


def _datelike(label):
    return isinstance(label, (str, datetime.date, np.datetime64))
