"""Dask's ``groupby`` over the engine's tree (or shuffle) aggregations."""

import pandas as pd

from oxidask.dataframe.aggregation import (
    as_aggregation,
    custom_groupby_agg,
    is_custom,
    result_index_name,
)
from oxidask.dataframe.core import (
    DataFrame, Series, _Collection, _concat, _SEP, _shuffle_method,
)

_FUNCS = ("sum", "mean", "count", "size", "min", "max", "std", "var", "nunique", "first", "last")


def _fname(f):
    if isinstance(f, str):
        return f
    name = getattr(f, "__name__", None)
    if name in _FUNCS:
        return name
    raise NotImplementedError(
        f"oxidask.dataframe groupby aggregates with {', '.join(_FUNCS)}; got {f!r}"
    )


class _GroupResult(_Collection):
    """A lazy groupby result: computes to a pandas DataFrame (or Series) indexed by the keys,
    with Dask's column names."""

    def __init__(self, frame, keys, columns, squeeze=None):
        self._frame = frame  # DataFrame indexed by the keys
        self._keys = keys
        self._columns = columns  # engine column -> pandas column label
        self._squeeze = squeeze  # engine column of a Series result

    def _node_for_keys(self):
        return self._frame._node

    def _handles(self):
        return self._frame._handles()

    def _prepare(self):
        self._frame._meta

    def _finalize(self, parts):
        out = _concat(parts, self._keys)
        if out is None:
            out = self._frame._meta
        name = result_index_name(self._keys)
        if name is not False:
            out.index.name = name
        if self._squeeze is not None:
            s = out[self._squeeze]
            s.name = self._columns[self._squeeze]
            return s
        labels = [self._columns[c] for c in out.columns]
        if any(isinstance(x, tuple) for x in labels):
            out.columns = pd.MultiIndex.from_tuples(labels)
        else:
            out.columns = labels
        return out

    def _rebuild(self, persisted):
        return _GroupResult(self._frame._rebuild(persisted), self._keys, self._columns,
                            self._squeeze)

    def to_frame(self):
        """The result as a lazy DataFrame indexed by the keys (engine column names)."""
        return self._frame

    def reset_index(self):
        """The result with the keys as columns (a lazy DataFrame)."""
        f = self._frame.rename(columns={c: str(v) if not isinstance(v, tuple) else "_".join(v)
                                        for c, v in self._columns.items()})
        return f.reset_index()

    def __repr__(self):
        kind = "Series" if self._squeeze is not None else "DataFrame"
        return f"Dask {kind} Structure: groupby({self._keys}) result, npartitions={self._frame.npartitions}"


class GroupBy:
    """``df.groupby(keys)``: aggregations per group."""

    def __init__(self, frame, keys, column=None):
        self._frame = frame
        self._keys = keys
        self._column = column  # for SeriesGroupBy

    def __getitem__(self, col):
        if isinstance(col, list):
            self._frame._check_columns(col)
            sub = self._frame[self._keys + [c for c in col if c not in self._keys]]
            return GroupBy(sub, self._keys)
        self._frame._check_columns([col])
        return GroupBy(self._frame, self._keys, col)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        if name in set(self._frame.columns) and name not in self._keys:
            return self[name]
        raise AttributeError(f"'GroupBy' object has no attribute {name!r}")

    def _values(self):
        if self._column is not None:
            return [self._column]
        return [c for c in self._frame.columns if c not in self._keys]

    def _run(self, specs, squeeze=None, split_out=None):
        """specs: list of (column, function, pandas label)."""
        aggs, labels = [], {}
        for i, (c, f, label) in enumerate(specs):
            name = f"__agg{i}"
            aggs.append((c, f, name))
            labels[name] = label
        frame = self._frame.reset_index()
        # A split_out groupby shuffles its partial aggregates: p2p when the rule of
        # DataFrame.shuffle says (a cluster, at least 256 input x output pairs).
        method = None
        if split_out is not None and split_out > 1:
            method = _shuffle_method(None, frame.npartitions, split_out)
        node = frame._node.groupby_agg(self._keys, aggs, split_out, method)
        counts = [(n, ("cast", ("col", n), "int64")) for (_, f, n) in aggs
                  if f in ("count", "size", "nunique")]
        if counts:
            node = node.with_columns(counts)
        frame = DataFrame(node, self._keys, keep=self._frame._keep)
        return _GroupResult(frame, self._keys, labels,
                            squeeze=None if squeeze is None else "__agg0")

    def _simple(self, f, split_out=None):
        if self._column is not None:
            return self._run([(self._column, f, self._column)], squeeze=True, split_out=split_out)
        cols = self._values()
        if f in ("mean", "std", "var", "sum"):
            dtypes = self._frame.dtypes
            cols = [c for c in cols if pd.api.types.is_numeric_dtype(dtypes[c])]
        return self._run([(c, f, c) for c in cols], split_out=split_out)

    def sum(self, split_out=None):
        """Sum per group."""
        return self._simple("sum", split_out)

    def mean(self, split_out=None):
        """Mean per group."""
        return self._simple("mean", split_out)

    def count(self, split_out=None):
        """Non-null values per group."""
        return self._simple("count", split_out)

    def min(self, split_out=None):
        """Smallest value per group."""
        return self._simple("min", split_out)

    def max(self, split_out=None):
        """Largest value per group."""
        return self._simple("max", split_out)

    def std(self, split_out=None):
        """Sample standard deviation per group."""
        return self._simple("std", split_out)

    def var(self, split_out=None):
        """Sample variance per group."""
        return self._simple("var", split_out)

    def nunique(self, split_out=None):
        """Distinct non-null values per group."""
        return self._simple("nunique", split_out)

    def first(self, split_out=None):
        """First value per group."""
        return self._simple("first", split_out)

    def last(self, split_out=None):
        """Last value per group."""
        return self._simple("last", split_out)

    def size(self, split_out=None):
        """Rows per group (a Series)."""
        r = self._run([(self._keys[0], "size", None)], squeeze=True, split_out=split_out)
        return r

    def agg(self, arg=None, split_out=None, split_every=None, **named):
        """Aggregations in pandas' forms: a function name, a list of them (columns
        ``(column, function)``), a dict of column to function(s), or named aggregations
        ``name=(column, function)``; any of them may be a ``dd.Aggregation``."""
        if is_custom(arg):
            return self._custom(arg, split_every)
        if named:
            specs = []
            for label, spec in named.items():
                c, f = (spec.column, spec.aggfunc) if hasattr(spec, "aggfunc") else spec
                self._frame._check_columns([c])
                specs.append((c, _fname(f), label))
            return self._run(specs, split_out=split_out)
        if isinstance(arg, (str,)) or callable(arg):
            return self._simple(_fname(arg), split_out)
        if isinstance(arg, list):
            fs = [_fname(f) for f in arg]
            if self._column is not None:
                return self._run([(self._column, f, f) for f in fs], split_out=split_out)
            return self._run([(c, f, (c, f)) for c in self._values() for f in fs],
                             split_out=split_out)
        if isinstance(arg, dict):
            specs = []
            multi = any(isinstance(v, list) for v in arg.values())
            for c, fs in arg.items():
                self._frame._check_columns([c])
                for f in (fs if isinstance(fs, list) else [fs]):
                    specs.append((c, _fname(f), (c, _fname(f)) if multi else c))
            return self._run(specs, split_out=split_out)
        raise TypeError("agg takes a function name, a list, a dict or name=(column, function)")

    aggregate = agg

    def _custom(self, arg, split_every):
        """``agg`` with ``dd.Aggregation``s: Python tasks over pandas partitions."""

        def one(f):
            a = as_aggregation(f)
            if a is None:
                raise NotImplementedError(
                    f"groupby aggregations mixing dd.Aggregation with {f!r} are not supported"
                )
            return a

        squeeze = False
        if isinstance(arg, dict):
            multi = any(isinstance(v, list) for v in arg.values())
            specs = []
            for c, fs in arg.items():
                self._frame._check_columns([c])
                for f in (fs if isinstance(fs, list) else [fs]):
                    a = one(f)
                    specs.append((c, a, (c, a.__name__) if multi else c))
        elif isinstance(arg, (list, tuple)):
            aggs = [one(f) for f in arg]
            if self._column is not None:
                specs = [(self._column, a, a.__name__) for a in aggs]
            else:
                specs = [(c, a, (c, a.__name__)) for c in self._values() for a in aggs]
        else:
            a = one(arg)
            if self._column is not None:
                specs, squeeze = [(self._column, a, self._column)], True
            else:
                specs = [(c, a, c) for c in self._values()]
        return custom_groupby_agg(self._frame, self._keys, specs, squeeze, split_every)
