"""Dask's DataFrame and Series over oxidask's Rust dataframes (Polars partitions).

A :class:`DataFrame` is a handle on a lazy Rust plan (``FrameNode``) plus, for frames whose
pandas index is made of columns (after ``set_index`` or a groupby), the names of those
columns. A :class:`Series` is an expression over the frame it came from, so ``df.x + df.y``,
``df[df.x > 1]`` and ``df.assign(z=df.x * 2)`` stay one Polars query per partition.
Computing gives pandas objects: each partition is turned into pandas on the worker that
holds it (Arrow IPC, read by pyarrow without a copy) and the pieces are concatenated.
"""

import copy
import numbers

import numpy as np
import pandas as pd

from oxidask import base
from oxidask._oxidask import FrameNode
from oxidask.dataframe import _arrow

_SEP = _arrow._SEP

_BINOPS = {
    "__add__": "add",
    "__sub__": "sub",
    "__mul__": "mul",
    "__truediv__": "truediv",
    "__floordiv__": "floordiv",
    "__mod__": "mod",
    "__pow__": "pow",
    "__eq__": "eq",
    "__ne__": "ne",
    "__lt__": "lt",
    "__le__": "le",
    "__gt__": "gt",
    "__ge__": "ge",
    "__and__": "and",
    "__or__": "or",
    "__xor__": "xor",
}
_COUNTS = ("count", "nunique", "size")
_REFLECTED = {"add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "and", "or", "xor"}


def _scalar_ok(x):
    return x is None or isinstance(x, (numbers.Number, str, bool, np.generic))


def _lit(x):
    if isinstance(x, np.generic):
        x = x.item()
    return ("lit", x)


def _is_numeric(dtype):
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)


class _Collection:
    """What frames, series and reduced values share: the collection protocol."""

    def _handles(self):
        raise NotImplementedError

    def _finalize(self, parts):
        raise NotImplementedError

    def __oxidask_collection__(self):
        handles = self._handles()
        # The finalize function may run elsewhere (client.compute runs it on a worker): a
        # copy without engine handles, its metadata computed now.
        return handles, self._detached()._finalize, self._rebuild

    def _prepare(self):
        """Computes the metadata finalize needs (before detaching)."""

    def _detached(self):
        self._prepare()
        c = copy.copy(self)
        for k, v in list(vars(c).items()):
            if isinstance(v, FrameNode) or k == "_keep":
                setattr(c, k, None)
            elif isinstance(v, _Collection):
                setattr(c, k, v._detached())
        return c

    def _rebuild(self, persisted):
        return self

    def compute(self, engine="pandas", **kwargs):
        """Computes the value: a pandas object (``scheduler=`` as in Dask), or with
        ``engine="polars"`` a Polars DataFrame (an index becomes leading columns) or Series
        (scalars stay scalars).

        >>> import pandas as pd
        >>> import oxidask.dataframe as dd
        >>> df = dd.from_pandas(pd.DataFrame({"x": [1, 2]}), npartitions=2)
        >>> df.compute(engine="polars").shape
        (2, 1)
        """
        if engine not in ("pandas", "polars"):
            raise ValueError(f"compute engine must be 'pandas' or 'polars', got {engine!r}")
        out = base.compute(self, **kwargs)[0]
        return _to_polars(out) if engine == "polars" else out

    def persist(self, **kwargs):
        """The same collection backed by its computed partitions."""
        return base.persist(self, **kwargs)[0]

    def pprint(self):
        """Prints the plan as the optimizer leaves it (dask-expr's ``pprint``): one step a
        line with its inputs indented below it, its partitions and columns; reads show the
        columns they read from the files (projection pushdown), joins their strategy.

        >>> import pandas as pd
        >>> import oxidask.dataframe as dd
        >>> df = dd.from_pandas(pd.DataFrame({"x": [1, 2], "y": [3, 4]}), npartitions=2)
        >>> df[df.x > 1].y.sum().pprint()  # doctest: +SKIP
        """
        print(self._node_for_keys().explain())

    def explain(self):
        """Prints the optimized plan, as :meth:`pprint` (Dask draws it with graphviz; the
        text says the same: steps, partitions, columns read, join strategies)."""
        self.pprint()

    def __dask_tokenize__(self):
        return (type(self).__name__, tuple(self._node_for_keys().keys()))

    @property
    def dask(self):
        """The task graph: keys to descriptions of their tasks."""
        return dict(self._node_for_keys().graph_keys())

    def __dask_graph__(self):
        return self.dask

    def __dask_keys__(self):
        return self._node_for_keys().keys()


def _shuffle_method(shuffle_method, n_in, n_out):
    """The method a shuffle of ``n_in`` partitions into ``n_out`` uses: ``shuffle_method``
    when given; else, unless ``dataframe.shuffle.method`` says, ``"p2p"`` when it would run on
    a cluster (a default ``Client``) and has at least 256 input x output pairs (the engine's
    rule, as Dask defaults to p2p on a cluster); ``None`` leaves the choice to the engine."""
    if shuffle_method is not None:
        return shuffle_method
    from oxidask import config

    if config.get("dataframe.shuffle.method", None) is not None:
        return None
    if n_in < 2 or n_out < 2 or n_in * n_out < 256:
        return None
    try:
        on_cluster = base.get_scheduler()[0] == "client"
    except ValueError:
        on_cluster = False
    return "p2p" if on_cluster else None


def _to_polars(out):
    """A computed pandas value as Polars (frames keep a non-default index as columns)."""
    if not isinstance(out, (pd.DataFrame, pd.Series)):
        return out
    try:
        import polars as pl
    except ImportError:
        raise ImportError("compute(engine='polars') needs polars: pip install polars") from None
    if isinstance(out, pd.Series):
        return pl.from_pandas(out.reset_index(drop=True))
    if not (isinstance(out.index, pd.RangeIndex) and out.index.name is None):
        out = out.reset_index()
    return pl.from_pandas(out)


def _concat(parts, index):
    parts = list(parts)
    if not parts:
        return None
    if len(parts) == 1:
        out = parts[0]
    else:
        out = pd.concat(parts, ignore_index=not index)
    if not index:
        out = out.reset_index(drop=True)
    return out


class DataFrame(_Collection):
    """A lazy, partitioned pandas-like DataFrame (Dask's ``dask.dataframe.DataFrame``).

    >>> import pandas as pd
    >>> import oxidask.dataframe as dd
    >>> df = dd.from_pandas(pd.DataFrame({"x": [1, 2, 3], "y": [1.0, 2.0, 3.0]}), npartitions=2)
    >>> df[df.x > 1].y.sum().compute()
    np.float64(5.0)
    """

    def __init__(self, node, index=None, keep=None):
        self._node = node
        self._index = list(index) if index else []
        self._meta_cache = None
        # Cluster results (futures) a persisted frame reads: alive as long as the frame.
        self._keep = keep

    # ---- structure

    def _wrap(self, node, index=None):
        return DataFrame(node, self._index if index is None else index, self._keep)

    @property
    def _meta(self):
        """An empty pandas DataFrame with this frame's columns, dtypes and index."""
        if self._meta_cache is None:
            self._meta_cache = _arrow.ipc_to_pandas(self._node.meta_ipc(), _SEP.join(self._index))
        return self._meta_cache

    @property
    def columns(self):
        """The column names (a pandas Index)."""
        return self._meta.columns

    @property
    def dtypes(self):
        """The columns' pandas dtypes."""
        return self._meta.dtypes

    @property
    def npartitions(self):
        """The number of partitions."""
        return self._node.npartitions

    @property
    def divisions(self):
        """Index boundaries of the partitions (``npartitions + 1`` values, ``None`` when
        unknown, as in Dask)."""
        d = self._node.divisions
        n = self.npartitions
        if (d is None or len(d) not in (n + 1, n - 1) or self._node.index is None
                or self._index != [self._node.index]):
            return (None,) * (n + 1)
        d = list(d)
        if len(d) == n - 1:
            # The engine keeps the cut points between partitions; the outer bounds are the
            # ones set_index was given, or the index's minimum and maximum (computed once).
            outer = getattr(self, "_outer", None)
            if outer is None:
                col = self._index[0]
                lo_hi = self._node.select([("lo", ("col", col)), ("hi", ("col", col))]).agg(
                    [("lo", "min", "lo"), ("hi", "max", "hi")])
                row = DataFrame(lo_hi).compute().iloc[0]
                outer = (row["lo"], row["hi"])
                self._outer = outer
            d = [outer[0]] + d + [outer[1]]
        return tuple(_logical(v, self._meta.index.dtype) for v in d)

    @property
    def known_divisions(self):
        """Whether the divisions are known."""
        return self.divisions[0] is not None

    @property
    def index(self):
        """The index as a lazy Series (only for frames indexed by a column)."""
        if len(self._index) != 1:
            raise NotImplementedError(
                "oxidask.dataframe: .index is available on frames indexed by one column "
                "(after set_index); use reset_index()/the column instead"
            )
        return Series(DataFrame(self._node, keep=self._keep), ("col", self._index[0]),
                      self._index[0])

    def _node_for_keys(self):
        return self._node

    def __repr__(self):
        meta = self._meta
        n = self.npartitions
        cols = list(meta.columns)
        header = [str(c) for c in cols]
        types = [str(t) for t in meta.dtypes]
        widths = [max(len(h), len(t), 3) for h, t in zip(header, types)]
        label = "npartitions=" + str(n)
        lw = max(len(label), 3)

        def row(first, cells):
            return first.ljust(lw) + "".join("  " + c.rjust(w) for c, w in zip(cells, widths))

        lines = [
            "Dask DataFrame Structure:",
            row("", header),
            row(label, [""] * len(cols)),
            row("", types),
            row("", ["..."] * len(cols)),
            f"Dask Name: frame, {len(self.dask)} tasks",
        ]
        return "\n".join(lines)

    def __len__(self):
        return self._node.len()

    def __iter__(self):
        return iter(self.columns)

    def __dir__(self):
        return list(super().__dir__()) + [c for c in self.columns if str(c).isidentifier()]

    # ---- protocol

    def _handles(self):
        return self._node.pandas_handles(_SEP.join(self._index))

    def _prepare(self):
        self._meta

    def _finalize(self, parts):
        out = _concat(parts, self._index)
        return self._meta.copy() if out is None else out

    def __oxidask_persist__(self):
        # The partitions stay Polars frames: converting them to pandas and back made a
        # persisted frame slower to use than recomputing it.
        return self._node.partition_handles(), self._over_persisted

    def __oxidask_held__(self):
        """The persisted partitions this frame reads (what ``futures_of`` lists)."""
        return list(self._keep or [])

    def _over_persisted(self, persisted):
        return DataFrame(self._node.persisted(persisted), self._index, keep=list(persisted))

    def _rebuild(self, persisted):
        meta = _arrow.pandas_to_ipc(self._meta)
        try:
            node = FrameNode.from_pandas_handles(persisted, meta)
        except ValueError:
            # Results held on a cluster: a task reading each names it in the graph.
            from oxidask.delayed import delayed

            node = FrameNode.from_pandas_handles([delayed(_same)(h) for h in persisted], meta)
        return DataFrame(node, self._index, keep=list(persisted))

    # ---- columns and rows

    def _check_columns(self, names):
        cols = set(self._node.columns)
        for n in names:
            if n not in cols or n in self._index:
                raise KeyError(n)

    def __getitem__(self, key):
        if isinstance(key, str):
            self._check_columns([key])
            return Series(self, ("col", key), key)
        if isinstance(key, (list, pd.Index)):
            key = list(key)
            self._check_columns(key)
            return self._wrap(self._node.columns_subset(self._index + key))
        if isinstance(key, Series):
            return self._wrap(self._node.filter(key._expr_over(self)))
        if isinstance(key, slice):
            raise NotImplementedError("oxidask.dataframe: row slices are not supported; use head()")
        raise KeyError(key)

    @property
    def loc(self):
        """Label-based selection (Dask's ``DataFrame.loc``): ``df.loc[mask]`` with a boolean
        Series of this frame, ``df.loc[rows, columns]`` (``df.loc[:, "x"]`` is a Series), and
        on a frame indexed by one column (``set_index``) labels: ``df.loc[a:b]`` (both ends
        included; ``a:``/``:b`` open), ``df.loc[label]`` (a DataFrame of the rows equal to
        it) and ``df.loc[[l1, l2]]``. With known divisions only the partitions that can hold
        the labels are read. A datetime index takes timestamps or strings; a string selects
        the period it names (``"2019-01-05"`` is the whole day), as in pandas.

        >>> import pandas as pd
        >>> import oxidask.dataframe as dd
        >>> pdf = pd.DataFrame({"k": [1, 2, 3, 4, 5, 6], "x": [10, 20, 30, 40, 50, 60]})
        >>> df = dd.from_pandas(pdf, npartitions=3).set_index("k")
        >>> df.loc[2:4].compute().x.tolist()
        [20, 30, 40]
        >>> df.loc[5:].npartitions < df.npartitions
        True
        >>> df.loc[df.x > 40, "x"].compute().tolist()
        [50, 60]
        """
        from oxidask.dataframe.indexing import LocIndexer

        return LocIndexer(self)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            cols = self._node.columns
        except Exception:  # pragma: no cover
            raise AttributeError(name) from None
        if name in cols and name not in self._index:
            return Series(self, ("col", name), name)
        raise AttributeError(f"'DataFrame' object has no attribute {name!r}")

    def __setitem__(self, key, value):
        new = self.assign(**{key: value})
        self._node = new._node
        self._meta_cache = None

    def _value_expr(self, value):
        if isinstance(value, Series):
            return value._expr_over(self)
        if _scalar_ok(value):
            return _lit(value)
        raise TypeError(
            f"cannot assign a {type(value).__name__}; assign a Series of this frame or a scalar"
        )

    def assign(self, **kwargs):
        """Adds or replaces columns (Series of this frame, scalars or functions of the frame)."""
        out = self
        for name, value in kwargs.items():
            if callable(value) and not isinstance(value, Series):
                value = value(out)
            out = out._wrap(out._node.with_columns([(name, out._value_expr(value))]))
        return out

    def rename(self, columns=None, **kwargs):
        """Renames columns (``columns=`` a dict or a function)."""
        if columns is None:
            raise TypeError("rename takes columns= (a dict or a function)")
        if callable(columns):
            pairs = [(c, columns(c)) for c in self.columns]
        else:
            pairs = [(k, v) for k, v in columns.items() if k in set(self._node.columns)]
        index = [dict(pairs).get(i, i) for i in self._index]
        return DataFrame(self._node.rename(pairs), index)

    def drop(self, labels=None, axis=0, columns=None):
        """Drops columns (``columns=`` or ``axis=1``)."""
        cols = columns if columns is not None else labels
        if columns is None and axis not in (1, "columns"):
            raise NotImplementedError("oxidask.dataframe drops columns only (axis=1)")
        if isinstance(cols, str):
            cols = [cols]
        self._check_columns(cols)
        return self._wrap(self._node.drop(list(cols)))

    def astype(self, dtype):
        """Casts columns: a dtype for every column or a dict of column to dtype."""
        items = dtype.items() if isinstance(dtype, dict) else [(c, dtype) for c in self.columns]
        exprs = []
        for c, t in items:
            self._check_columns([c])
            exprs.append((c, ("cast", ("col", c), _dtype_name(t))))
        return self._wrap(self._node.with_columns(exprs))

    def fillna(self, value):
        """Fills nulls/NaN with a scalar or a dict of column to scalar."""
        items = value.items() if isinstance(value, dict) else [(c, value) for c in self.columns]
        exprs = []
        dtypes = self.dtypes
        for c, v in items:
            self._check_columns([c])
            if not _scalar_ok(v):
                raise TypeError("fillna takes a scalar or a dict of scalars")
            if isinstance(v, str) and _is_numeric(dtypes[c]):
                continue
            exprs.append((c, _fill_nan(c, v, dtypes[c])))
        return self._wrap(self._node.with_columns(exprs)) if exprs else self

    def dropna(self, subset=None, how="any"):
        """Drops rows with a missing value (in ``subset``)."""
        if how != "any":
            raise NotImplementedError("oxidask.dataframe dropna supports how='any'")
        if isinstance(subset, str):
            subset = [subset]
        if subset is not None:
            self._check_columns(subset)
        cols = list(subset) if subset is not None else list(self.columns)
        out = self._node.drop_nulls(cols)
        # pandas treats NaN as missing too.
        dtypes = self.dtypes
        for c in cols:
            if pd.api.types.is_float_dtype(dtypes[c]):
                out = out.filter(("un", "not", ("isnan", ("col", c))))
        return self._wrap(out)

    def isin(self, values):
        """Whether each value is in ``values`` (a list), column by column."""
        return self._wrap(
            self._node.with_columns(
                [(c, ("isin", ("col", c), list(values))) for c in self.columns]
            )
        )

    def head(self, n=5, npartitions=1, compute=True):
        """The first ``n`` rows as a pandas DataFrame (reading only what is needed)."""
        out = self._node.head(n, _SEP.join(self._index))
        if not self._index:
            out = out.reset_index(drop=True)
        return out

    def get_partition(self, n):
        """The ``n``-th partition as a one-partition frame."""
        return self._wrap(self._node.partitions([n]))

    @property
    def partitions(self):
        """``df.partitions[i]`` / ``df.partitions[a:b]``: a frame of some partitions."""
        frame = self

        class _P:
            def __getitem__(self, i):
                idx = list(range(frame.npartitions))[i]
                idx = [idx] if isinstance(idx, int) else idx
                return frame._wrap(frame._node.partitions(idx))

        return _P()

    def reset_index(self, drop=False):
        """The index columns back as columns (or dropped with ``drop=True``)."""
        if not self._index:
            return self
        if drop:
            return DataFrame(self._node.drop(self._index), keep=self._keep)
        return DataFrame(self._node, keep=self._keep)

    # ---- reductions

    def _numeric(self):
        return [c for c, t in self.dtypes.items() if _is_numeric(t) or pd.api.types.is_bool_dtype(t)]

    def _reduce(self, kind, numeric_only=None):
        cols = self._numeric() if kind in ("mean", "std", "var", "sum") else list(self.columns)
        if numeric_only:
            cols = self._numeric()
        sub = self._node.columns_subset(cols)
        if kind in ("mean", "std", "var"):
            sub = sub.with_columns([(c, ("cast", ("col", c), "float64")) for c in cols])
        out = sub.reduce(kind)
        if kind in _COUNTS:
            out = out.with_columns([(c, ("cast", ("col", c), "int64")) for c in cols])
        r = _Reduced(out, kind, cols)
        r._keep = self._keep
        return r

    def sum(self, numeric_only=None):
        """Column sums (lazy; ``compute()`` gives a pandas Series)."""
        return self._reduce("sum", numeric_only)

    def mean(self, numeric_only=None):
        """Column means of the numeric columns."""
        return self._reduce("mean", numeric_only)

    def count(self):
        """Non-null values per column."""
        return self._reduce("count")

    def min(self, numeric_only=None):
        """Column minima."""
        return self._reduce("min", numeric_only)

    def max(self, numeric_only=None):
        """Column maxima."""
        return self._reduce("max", numeric_only)

    def std(self, ddof=1, numeric_only=None):
        """Sample standard deviations of the numeric columns."""
        if ddof != 1:
            raise NotImplementedError("oxidask.dataframe std supports ddof=1")
        return self._reduce("std", numeric_only)

    def var(self, ddof=1, numeric_only=None):
        """Sample variances of the numeric columns."""
        if ddof != 1:
            raise NotImplementedError("oxidask.dataframe var supports ddof=1")
        return self._reduce("var", numeric_only)

    def nunique(self):
        """Distinct non-null values per column."""
        return self._reduce("nunique")

    def describe(self, percentiles=None):
        """Summary statistics of the numeric columns: count, mean, std, min, the 25/50/75%
        quantiles (approximate, from per-partition samples, as Dask's) and max. Computed
        when called; ``compute()`` gives the pandas DataFrame."""
        if percentiles is not None and list(percentiles) != [0.25, 0.5, 0.75]:
            raise NotImplementedError("oxidask.dataframe describe gives the 25/50/75% quantiles")
        out = self._node.describe()
        if "statistic" in out.columns:
            out = out.set_index("statistic")
            out.index.name = None
        return _Value(out)

    def clear_divisions(self):
        """The frame with unknown divisions (as Dask's)."""
        return DataFrame(self._node, self._index) if not self._index else self.reset_index()

    # ---- reshaping

    def groupby(self, by, sort=None, dropna=None, **kwargs):
        """Groups rows by one or more columns (Dask's ``groupby``). As pandas and Dask, rows
        whose key is missing (null or NaN) belong to no group unless ``dropna=False``."""
        from oxidask.dataframe.groupby import GroupBy

        drop = dropna is None or bool(dropna)
        if callable(by) and not isinstance(by, Series):
            # A function of the index labels (as Dask's and pandas'), as a hidden column.
            from oxidask.dataframe.aggregation import add_function_key

            frame, key = add_function_key(self, by)
            return GroupBy(frame.dropna(subset=[key]) if drop else frame, [key])
        keys = [by] if isinstance(by, str) else list(by)
        if isinstance(by, Series):
            keys = [by._name]
        self._check_columns(keys)
        return GroupBy(self.dropna(subset=keys) if drop else self, keys)

    def merge(self, right, how="inner", on=None, left_on=None, right_on=None, suffixes=None,
              left_index=False, right_index=False, shuffle_method=None):
        """Joins with ``right`` on key columns (Dask's ``merge``); sides that must be
        shuffled move by ``shuffle_method`` (see :meth:`shuffle`)."""
        if isinstance(right, pd.DataFrame):
            # As Dask: an in-memory pandas frame joins as a one-partition frame.
            from oxidask.dataframe.io import from_pandas

            right = from_pandas(right, npartitions=1)
        if left_index and right_index and left_on is None and right_on is None and on is None:
            sx, sy = suffixes or ("_x", "_y")
            joined = self._index_join(right, how, sx, sy)
            if joined is not None:
                return joined
        if left_index or right_index:
            left = self.reset_index() if left_index else self
            rght = right.reset_index() if right_index else right
            lo = self._index if left_index else (left_on or on)
            ro = right._index if right_index else (right_on or on)
            return left._merge(rght, how, lo, ro, suffixes, shuffle_method, keep_key_pairs=False)
        if on is None and left_on is None:
            on = [c for c in self.columns if c in set(right.columns)]
            if not on:
                raise ValueError("no common columns to merge on; pass on= or left_on=/right_on=")
        lo = left_on if left_on is not None else on
        ro = right_on if right_on is not None else on
        lo = [lo] if isinstance(lo, str) else list(lo)
        ro = [ro] if isinstance(ro, str) else list(ro)
        self._check_columns(lo)
        right._check_columns(ro)
        return self._merge(right, how, lo, ro, suffixes, shuffle_method, keep_key_pairs=True)

    def _merge(self, right, how, lo, ro, suffixes, shuffle_method, keep_key_pairs):
        """The merge proper on key columns ``lo``/``ro``. With ``keep_key_pairs``, a key pair
        of two names stays two columns, as in pandas (``left_on="k", right_on="kk"`` keeps
        ``k`` and ``kk``, each null where its side had no row; the engine would coalesce them
        into one): such pairs join on copies of the keys, dropped afterwards."""
        lo = [lo] if isinstance(lo, str) else list(lo)
        ro = [ro] if isinstance(ro, str) else list(ro)
        a = self.reset_index()
        b = right.reset_index()
        meta_a, meta_b = a._meta, b._meta
        jl, jr, copies = list(lo), list(ro), []
        if keep_key_pairs and len(lo) == len(ro):
            for i, (l, r) in enumerate(zip(lo, ro)):
                if l != r:
                    jl[i], jr[i] = f"__oxidask_lkey{i}", f"__oxidask_rkey{i}"
                    a = a.assign(**{jl[i]: a[l]})
                    b = b.assign(**{jr[i]: b[r]})
                    copies.append(i)
        n = max(a.npartitions, b.npartitions)
        node = a._node.merge(b._node, jl, jr, how, _shuffle_method(shuffle_method, n, n))
        out = DataFrame(node)
        if copies:
            # The engine keeps one coalesced key column, named after the left copy (the right
            # one for how="right").
            out = out.drop(columns=[c for c in out.columns if c.startswith("__oxidask_")])
        # pandas suffixes clashing columns with _x/_y; the engine names the right one `_right`.
        sx, sy = suffixes or ("_x", "_y")
        clash = [c for c in meta_a.columns if c in set(meta_b.columns) and c not in jl]
        if clash:
            pairs = {}
            for c in clash:
                pairs[c] = c + sx
                pairs[c + "_right"] = c + sy
            out = out.rename(columns=pairs)
        # pandas' column order (how="right" puts the keys elsewhere in the engine's result).
        try:
            order = list(pd.merge(meta_a, meta_b, how=how, left_on=lo, right_on=ro,
                                  suffixes=(sx, sy)).columns)
        except Exception:  # pragma: no cover - pandas refuses what the engine did
            order = None
        if order and list(out.columns) != order and sorted(out.columns) == sorted(order):
            out = out[order]
        return out

    def join(self, other, on=None, how="left", lsuffix="", rsuffix="", *, suffixes=None):
        """Joins with ``other`` on its index (Dask's ``join``): on this frame's index too
        (both indexed, the result keeps the index), or on this frame's columns ``on``.
        Clashing columns need ``lsuffix``/``rsuffix`` or ``suffixes=(l, r)`` (pandas 3's
        spelling), as in pandas. Two frames indexed by one column of the same name with
        known divisions are joined partition by partition (different divisions are aligned
        first, as Dask's ``align_partitions``), without a shuffle.

        >>> import pandas as pd
        >>> import oxidask.dataframe as dd
        >>> a = dd.from_pandas(pd.DataFrame({"k": [1, 2], "x": [3, 4]})).set_index("k")
        >>> b = dd.from_pandas(pd.DataFrame({"k": [1, 2], "y": [5, 6]})).set_index("k")
        >>> a.join(b).compute().y.tolist()
        [5, 6]
        """
        if not other._index:
            raise ValueError("join needs the right frame indexed (set_index) by the join key")
        if suffixes is not None:
            lsuffix, rsuffix = suffixes
        clash = [c for c in self.columns if c in set(other.columns)]
        if clash and not (lsuffix or rsuffix):
            raise ValueError(f"columns overlap but no suffix specified: {clash}")
        suffixes = (lsuffix, rsuffix)
        if on is None:
            if not self._index:
                raise ValueError("join needs this frame indexed (set_index) or on= columns")
            joined = self._index_join(other, how, lsuffix, rsuffix)
            if joined is not None:
                return joined
            out = self.merge(other, how=how, left_index=True, right_index=True,
                             suffixes=suffixes)
            return DataFrame(out._node, self._index)
        return self.merge(other, how=how, left_on=on, right_index=True, suffixes=suffixes)

    def _index_join(self, other, how, lsuffix, rsuffix):
        """The engine's join on the two frames' indexes, when both are indexed by one column
        of the same name (else ``None``): partitions of equal divisions pair up as they are,
        different known divisions are aligned first (Dask's ``align_partitions``), and the
        result keeps the index and its divisions. Clashing columns get the suffixes."""
        if len(self._index) != 1 or self._index != other._index:
            return None
        # (An unknown ``how`` is the engine's ValueError.)
        node = self._node.join(other._node, how)
        key = self._index[0]
        clash = [c for c in self.columns if c in set(other.columns)]
        if clash:
            # The engine names the right one `<name>_right`.
            pairs = []
            for c in clash:
                pairs += [(c, c + lsuffix), (c + "_right", c + rsuffix)]
            node = node.rename(pairs)
        out = DataFrame(node, [key])
        # pandas' column order: the left's columns, then the right's.
        order = [c + lsuffix if c in clash else c for c in self.columns]
        order += [c + rsuffix if c in clash else c for c in other.columns]
        if list(out.columns) != order and sorted(out.columns) == sorted(order):
            out = out[order]
        return out

    def set_index(self, other, divisions=None, sorted=False, npartitions=None, drop=True,
                  shuffle_method=None):
        """Sorts by a column and makes it the index (divisions from sampled quantiles); rows
        move by ``shuffle_method`` (see :meth:`shuffle`)."""
        if not isinstance(other, str):
            raise NotImplementedError("oxidask.dataframe set_index takes one column name")
        self._check_columns([other])
        if divisions is not None:
            divisions = _physical_divisions(list(divisions), self.dtypes[other], other)
        # As pandas: the new index replaces the old one (its columns are dropped).
        method = _shuffle_method(shuffle_method, self.npartitions, self.npartitions)
        node = self.reset_index(drop=True)._node.set_index(other, divisions, method)
        out = DataFrame(node, [other])
        if divisions is not None and node.divisions is not None and len(
                node.divisions) == len(divisions) - 2:
            out._outer = (divisions[0], divisions[-1])
        return out

    def shuffle(self, on, ignore_index=False, npartitions=None, shuffle_method=None):
        """Moves rows so that equal values of ``on`` (a column or list of columns) share a
        partition (Dask's ``shuffle``): a hash shuffle into ``npartitions`` partitions (default:
        as many as now). ``shuffle_method`` is ``"tasks"`` (a task per input and output
        partition) or ``"p2p"`` (a task per partition; the workers move the rows, spilling
        past ``distributed.p2p.memory-budget``); default: ``dataframe.shuffle.method``, else
        p2p on a cluster for shuffles of at least 256 input x output pairs. The index is kept
        (``ignore_index`` is accepted for Dask's signature).

        >>> import pandas as pd
        >>> import oxidask.dataframe as dd
        >>> df = dd.from_pandas(pd.DataFrame({"k": [1, 2, 1, 2], "x": [1, 2, 3, 4]}),
        ...                     npartitions=2)
        >>> s = df.shuffle("k", shuffle_method="p2p")
        >>> sorted(s.compute()["x"].tolist())
        [1, 2, 3, 4]
        """
        on = [on] if isinstance(on, str) else list(on)
        self._check_columns(on)
        n = self.npartitions if npartitions is None else int(npartitions)
        if n < 1:
            raise ValueError(f"npartitions must be at least 1, got {npartitions}")
        method = _shuffle_method(shuffle_method, self.npartitions, n)
        return self._wrap(self._node.shuffle(on, n, method))

    def sort_values(self, by, ascending=True, npartitions=None, shuffle_method=None):
        """Rows sorted by ``by`` (a column or list); rows move by ``shuffle_method`` (see
        :meth:`shuffle`)."""
        by = [by] if isinstance(by, str) else list(by)
        self._check_columns(by)
        if not isinstance(ascending, bool):
            if len(set(ascending)) != 1:
                raise NotImplementedError("oxidask.dataframe sorts all columns one way")
            ascending = list(ascending)[0]
        method = _shuffle_method(shuffle_method, self.npartitions, self.npartitions)
        return self._wrap(self._node.sort_values(by, not ascending, method))

    def repartition(self, npartitions=None, divisions=None, partition_size=None):
        """The same rows in ``npartitions`` partitions, cut at new ``divisions`` of the index,
        or in partitions of about ``partition_size`` bytes (``"100MB"``; measuring the sizes
        computes the frame, as in Dask)."""
        given = [x is not None for x in (npartitions, divisions, partition_size)]
        if sum(given) != 1:
            raise ValueError("repartition takes one of npartitions=, divisions= or partition_size=")
        if partition_size is not None:
            from oxidask.dataframe.repartition import by_size

            return by_size(self, partition_size)
        if divisions is not None:
            if len(self._index) != 1:
                raise ValueError("repartition(divisions=) needs a frame indexed by one column "
                                 "(set_index first)")
            return self.reset_index().set_index(self._index[0], divisions=divisions)
        return self._wrap(self._node.repartition(int(npartitions)))

    def drop_duplicates(self, subset=None, keep="first"):
        """Distinct rows (of ``subset``)."""
        if isinstance(subset, str):
            subset = [subset]
        if subset is not None:
            self._check_columns(subset)
        return self._wrap(self._node.drop_duplicates(list(subset) if subset else None))

    # ---- Python functions

    def map_partitions(self, func, *args, meta=None, **kwargs):
        """Applies ``func`` (pandas DataFrame → pandas DataFrame or Series) to each partition
        as Python tasks; ``meta`` (an empty pandas object, a dict of column to dtype, or a
        ``(name, dtype)`` tuple) gives the result's columns, otherwise it is inferred by
        running ``func`` on a small made-up frame."""
        from oxidask.dataframe.io import _map_partitions

        return _map_partitions(self, func, args, kwargs, meta)

    def apply(self, func, axis=0, meta=None, args=(), **kwargs):
        """Applies ``func`` to each row (``axis=1``), through ``map_partitions``."""
        if axis not in (1, "columns"):
            raise NotImplementedError("oxidask.dataframe apply supports axis=1")

        def rows(part):
            return part.apply(func, axis=1, args=args, **kwargs)

        return self.map_partitions(rows, meta=meta)

    def map_overlap(self, func, before, after, *args, meta=None, **kwargs):
        """``func`` over each partition joined with the last ``before`` rows (or a time span
        over a datetime index) of the previous partition and the first ``after`` of the next;
        the borrowed rows are cut from the result (Dask's ``map_overlap``)."""
        from oxidask.dataframe.rolling import map_overlap

        return map_overlap(self, func, before, after, args, kwargs, meta)

    def rolling(self, window, min_periods=None, center=False, win_type=None, axis=0):
        """Moving windows of ``window`` rows or a time span (``"5D"``) over a sorted index."""
        from oxidask.dataframe.rolling import Rolling

        return Rolling(self, window, min_periods, center, win_type, axis)

    def to_delayed(self):
        """One Delayed per partition, each computing to a pandas DataFrame."""
        return list(self._handles())

    def to_parquet(self, path, **kwargs):
        """Writes a Parquet file per partition in the directory ``path``."""
        return self.reset_index()._node.to_parquet(str(path))

    def to_csv(self, filename, single_file=False, name_function=None, index=False, **kwargs):
        """Writes a CSV file per partition (the index's columns included) and returns their
        names, as Dask: ``filename`` is a directory (``part.0.csv``, ``part.1.csv``…), or a
        local path with ``*`` replaced by ``name_function(i)`` (``str(i)`` by default); with
        ``single_file=True`` one file ``filename`` holds every partition in order.

        >>> import os, tempfile
        >>> import pandas as pd
        >>> import oxidask.dataframe as dd
        >>> d = tempfile.mkdtemp()
        >>> df = dd.from_pandas(pd.DataFrame({"x": [1, 2, 3]}), npartitions=2)
        >>> [os.path.basename(f) for f in df.to_csv(os.path.join(d, "out-*.csv"))]
        ['out-0.csv', 'out-1.csv']
        """
        import glob
        import os
        import shutil
        import tempfile

        filename = os.fspath(filename)
        node = self.reset_index()._node
        if not single_file and "*" not in filename:
            node.to_csv(filename)
            if filename.startswith("s3://"):
                return [f"{filename.rstrip('/')}/part.{i}.csv" for i in range(self.npartitions)]
            return [os.path.join(filename, f"part.{i}.csv") for i in range(self.npartitions)]
        if filename.startswith("s3://"):
            raise NotImplementedError(
                "oxidask.dataframe to_csv writes s3:// directories (part.N.csv); "
                "'*' names and single_file=True are for local paths"
            )
        if single_file and "*" in filename:
            raise ValueError("to_csv single_file=True takes a file name without '*'")
        target = os.path.dirname(os.path.abspath(filename))
        os.makedirs(target, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".oxidask-csv-", dir=target)
        try:
            node.to_csv(tmp)
            parts = [os.path.join(tmp, f"part.{i}.csv") for i in range(self.npartitions)]
            parts = [p for p in parts if os.path.exists(p)] or sorted(
                glob.glob(os.path.join(tmp, "*.csv")))
            if single_file:
                with open(filename, "wb") as out:
                    for i, p in enumerate(parts):
                        with open(p, "rb") as f:
                            if i:
                                f.readline()  # the header, written once
                            shutil.copyfileobj(f, out)
                return [filename]
            names = []
            for i, p in enumerate(parts):
                label = name_function(i) if name_function is not None else str(i)
                dest = filename.replace("*", str(label))
                os.replace(p, dest)
                names.append(dest)
            return names
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def to_sql(self, name, uri, if_exists="fail", index=True, compute=True, **kwargs):
        """Writes the rows into the SQL table ``name`` at the SQLAlchemy URI ``uri``, a
        partition at a time (Dask's ``to_sql``)."""
        from oxidask.dataframe.sql import to_sql

        return to_sql(self, name, uri, if_exists=if_exists, index=index, compute=compute,
                      **kwargs)

    def to_polars(self, **kwargs):
        """The computed frame as a Polars DataFrame (needs polars installed), the same as
        ``compute(engine="polars")``: an index (after ``set_index``) becomes leading columns.

        >>> import pandas as pd
        >>> import oxidask.dataframe as dd
        >>> dd.from_pandas(pd.DataFrame({"x": [1, 2]})).to_polars()["x"].to_list()
        [1, 2]
        """
        return self.compute(engine="polars", **kwargs)


def _same(x):
    return x


def _logical(v, dtype):
    """A division the engine keeps (a number) as a value of the index's dtype."""
    if isinstance(v, (pd.Timestamp, np.datetime64)) or v is None:
        return pd.Timestamp(v) if v is not None else None
    if pd.api.types.is_datetime64_any_dtype(dtype):
        unit = np.datetime_data(np.dtype(getattr(dtype, "base", dtype)))[0]
        return pd.Timestamp(np.datetime64(int(v), unit))
    if pd.api.types.is_integer_dtype(dtype) and float(v).is_integer():
        return int(v)
    return v.item() if isinstance(v, np.generic) else v


def _physical_divisions(divisions, dtype, column):
    """User divisions as the numbers the engine compares keys with (datetimes as counts of
    the column's time unit)."""
    if len(divisions) < 2:
        raise ValueError("divisions needs at least two values (the first and last bounds)")
    if pd.api.types.is_datetime64_any_dtype(dtype):
        unit = np.datetime_data(np.dtype(getattr(dtype, "base", dtype)))[0]
        try:
            out = [float(np.datetime64(pd.Timestamp(d).tz_localize(None), unit).astype(np.int64))
                   for d in divisions]
        except (TypeError, ValueError) as e:
            raise TypeError(
                f"divisions for the datetime column {column!r} must be timestamps: {e}"
            ) from None
    else:
        try:
            out = [float(d) for d in divisions]
        except (TypeError, ValueError):
            raise TypeError(
                f"divisions for column {column!r} ({dtype}) must be numbers, got {divisions[:3]!r}"
            ) from None
    if any(b < a for a, b in zip(out, out[1:])):
        raise ValueError("divisions must be sorted")
    return out


def _fill_nan(c, v, dtype):
    if pd.api.types.is_float_dtype(dtype):
        return ("fill", ("fillnan", ("col", c), _lit(v)), _lit(v))
    return ("fill", ("col", c), _lit(v))


def _dtype_name(t):
    if isinstance(t, str) and t in ("str", "string", "object", "O"):
        return "str"
    if t is str or t is object:
        return "str"
    if t is float:
        return "float64"
    if t is int:
        return "int64"
    if t is bool:
        return "bool"
    try:
        return str(np.dtype(t))
    except TypeError:
        return str(t)


class Series(_Collection):
    """A lazy column: an expression over the frame it came from (Dask's ``Series``)."""

    def __init__(self, frame, expr, name):
        self._frame = frame
        self._expr = expr
        self._name = name
        self._dtype = None

    @property
    def name(self):
        """The series' name."""
        return None if self._name == "__series__" else self._name

    def _node_for_keys(self):
        return self._selected()

    def _selected(self):
        f = self._frame
        cols = [(i, ("col", i)) for i in f._index] + [(self._name, self._expr)]
        return f._node.select(cols)

    def _expr_over(self, frame):
        f = self._frame
        if f is frame or f._node.keys() == frame._node.keys() or self._derived_from(frame):
            return self._expr
        raise ValueError(
            "oxidask.dataframe combines series only with series of the frame they come from "
            "(partitions have no index to align on); assign the columns to one frame first"
        )

    def _derived_from(self, frame):
        # A filtered frame's series can filter/assign the frame it was filtered from? No:
        # rows differ. Only the identical plan qualifies.
        return False

    def _with(self, expr, name=None):
        return Series(self._frame, expr, self._name if name is None else name)

    @property
    def dtype(self):
        """The pandas dtype."""
        if self._dtype is None:
            meta = _arrow.ipc_to_pandas(self._selected().meta_ipc(), "")
            self._dtype = meta[self._name].dtype
        return self._dtype

    @property
    def npartitions(self):
        """The number of partitions."""
        return self._frame.npartitions

    @property
    def divisions(self):
        """Partition boundaries (unknown unless indexed)."""
        return self._frame.divisions

    @property
    def _meta(self):
        return pd.Series([], dtype=self.dtype, name=self.name)

    def __repr__(self):
        return (
            "Dask Series Structure:\n"
            f"npartitions={self.npartitions}\n    {self.dtype}\n    ...\n"
            f"Name: {self.name}, dtype: {self.dtype}\n"
            f"Dask Name: series, {len(self.dask)} tasks"
        )

    def __len__(self):
        return self._frame._node.len()

    def __getitem__(self, key):
        """``s[mask]``: the values where ``mask`` (a boolean Series of the same frame) is
        true."""
        if isinstance(key, Series):
            f = self._frame
            return Series(f._wrap(f._node.filter(key._expr_over(f))), self._expr, self._name)
        raise NotImplementedError(
            "oxidask.dataframe Series take boolean masks (s[s > 0]); select by label with s.loc[...]"
        )

    @property
    def loc(self):
        """Label-based selection of rows (Dask's ``Series.loc``): ``s.loc[mask]`` with a
        boolean Series of the same frame, and on an indexed frame ``s.loc[a:b]`` (both ends
        included), ``s.loc[label]`` and ``s.loc[[l1, l2]]``, reading only the partitions that
        can hold the labels when the divisions are known.

        >>> import pandas as pd
        >>> import oxidask.dataframe as dd
        >>> pdf = pd.DataFrame({"k": [1, 2, 3, 4], "x": [10, 20, 30, 40]})
        >>> s = dd.from_pandas(pdf, npartitions=2).set_index("k").x
        >>> s.loc[3:].compute().tolist()
        [30, 40]
        """
        from oxidask.dataframe.indexing import LocIndexer

        return LocIndexer(self)

    def __bool__(self):
        raise ValueError(
            "The truth value of a Series is ambiguous; use a.any(), a.all() or compute() first"
        )

    # ---- protocol

    def _handles(self):
        return self._selected().pandas_handles(_SEP.join(self._frame._index))

    def _prepare(self):
        self.dtype

    def _finalize(self, parts):
        out = _concat(parts, self._frame._index)
        if out is None:
            return self._meta
        s = out[self._name]
        s.name = self.name
        return s

    def _rebuild(self, persisted):
        f = DataFrame(self._selected(), self._frame._index, self._frame._keep)
        p = f._rebuild(persisted)
        return Series(p, ("col", self._name), self._name)

    def __oxidask_held__(self):
        return self._frame.__oxidask_held__()

    def __oxidask_persist__(self):
        f = DataFrame(self._selected(), self._frame._index, self._frame._keep)
        handles, over = f.__oxidask_persist__()
        return handles, lambda persisted: Series(over(persisted), ("col", self._name), self._name)

    def to_frame(self, name=None):
        """A one-column DataFrame."""
        n = name or self._name
        return DataFrame(
            self._frame._node.select(
                [(i, ("col", i)) for i in self._frame._index] + [(n, self._expr)]
            ),
            self._frame._index,
            self._frame._keep,
        )

    # ---- operators

    def _operand(self, other):
        if isinstance(other, Series):
            return other._expr_over(self._frame)
        if _scalar_ok(other):
            return _lit(other)
        return NotImplemented

    def _check_binop(self, op, other):
        if op in ("and", "or", "xor", "eq", "ne"):
            return
        mine = self.dtype
        theirs = other.dtype if isinstance(other, Series) else None
        if pd.api.types.is_string_dtype(mine) or pd.api.types.is_object_dtype(mine):
            other_str = isinstance(other, str) or (
                theirs is not None and pd.api.types.is_string_dtype(theirs)
            )
            if op == "add" and other_str:
                return
            if op in ("lt", "le", "gt", "ge") and other_str:
                return
            raise TypeError(
                f"unsupported operand for {op}: a {mine} column and "
                f"{theirs if theirs is not None else type(other).__name__}"
            )
        if isinstance(other, str) and op not in ("eq", "ne"):
            raise TypeError(f"unsupported operand for {op}: a {mine} column and 'str'")

    def _binop(self, op, other, reflected=False):
        e = self._operand(other)
        if e is NotImplemented:
            return NotImplemented
        self._check_binop(op, other)
        if reflected:
            return self._with(("bin", op, e, self._expr))
        return self._with(("bin", op, self._expr, e))

    def __neg__(self):
        return self._with(("un", "neg", self._expr))

    def __invert__(self):
        return self._with(("un", "not", self._expr))

    def __abs__(self):
        return self.abs()

    def abs(self):
        """Absolute values."""
        return self._with(("un", "abs", self._expr))

    # ---- element-wise methods

    def isin(self, values):
        """Whether each value is one of ``values``."""
        return self._with(("isin", self._expr, list(values)))

    def between(self, left, right, inclusive="both"):
        """Whether each value lies between ``left`` and ``right``."""
        return self._with(
            ("between", self._expr, self._operand(left), self._operand(right), inclusive)
        )

    def isnull(self):
        """Whether each value is missing (null or NaN)."""
        e = ("un", "isnull", self._expr)
        if pd.api.types.is_float_dtype(self.dtype):
            e = ("bin", "or", e, ("isnan", self._expr))
        return self._with(e)

    isna = isnull

    def notnull(self):
        """Whether each value is present."""
        return ~self.isnull()

    notna = notnull

    def fillna(self, value):
        """Missing values replaced by ``value``."""
        if isinstance(value, Series):
            return self._with(("fill", self._expr, value._expr_over(self._frame)))
        e = self._expr
        if pd.api.types.is_float_dtype(self.dtype):
            e = ("fillnan", e, _lit(value))
        return self._with(("fill", e, _lit(value)))

    def astype(self, dtype):
        """Values cast to ``dtype``."""
        return self._with(("cast", self._expr, _dtype_name(dtype)))

    def rename(self, name):
        """The series under another name."""
        return self._with(self._expr, name)

    @property
    def dt(self):
        """Datetime fields (``.dt.hour``, ``.dt.year``, …)."""
        return _Dt(self)

    @property
    def str(self):
        """String methods (``.str.lower()``, ``.str.contains(...)``, …)."""
        return _Str(self)

    # ---- reductions

    def _reduce(self, kind):
        e = self._expr
        if kind in ("mean", "std", "var"):
            if not (_is_numeric(self.dtype) or pd.api.types.is_bool_dtype(self.dtype)):
                raise TypeError(f"cannot compute the {kind} of a {self.dtype} column")
            e = ("cast", e, "float64")
        if kind == "sum" and not (_is_numeric(self.dtype) or pd.api.types.is_bool_dtype(self.dtype)):
            raise TypeError(f"cannot sum a {self.dtype} column in oxidask.dataframe")
        node = self._frame._node.select([("v", e)]).agg([("v", kind, "v")])
        if kind in _COUNTS:
            node = node.with_columns([("v", ("cast", ("col", "v"), "int64"))])
        sc = Scalar(node, "v")
        sc._keep = self._frame._keep
        return sc

    def sum(self):
        """The sum (a lazy Scalar)."""
        return self._reduce("sum")

    def mean(self):
        """The mean."""
        return self._reduce("mean")

    def count(self):
        """Non-null values."""
        return self._reduce("count")

    def min(self):
        """The smallest value."""
        return self._reduce("min")

    def max(self):
        """The largest value."""
        return self._reduce("max")

    def std(self, ddof=1):
        """The sample standard deviation."""
        return self._reduce("std")

    def var(self, ddof=1):
        """The sample variance."""
        return self._reduce("var")

    def nunique(self):
        """Distinct non-null values."""
        return self._reduce("nunique")

    def any(self):
        """Whether any value is true."""
        return Scalar(self._frame._node.select([("v", ("cast", self._expr, "int64"))]).agg(
            [("v", "max", "v")]), "v", post=lambda x: bool(x) if x is not None else False)

    def all(self):
        """Whether every value is true."""
        return Scalar(self._frame._node.select([("v", ("cast", self._expr, "int64"))]).agg(
            [("v", "min", "v")]), "v", post=lambda x: bool(x) if x is not None else True)

    def value_counts(self, sort=True, ascending=False, dropna=True):
        """Occurrences of each value, most frequent first (a lazy Series named ``count``)."""
        name = self._name
        node = self._frame._node.select([(name, self._expr)])
        if dropna:
            node = node.drop_nulls([name])
        vc = node.value_counts(name)
        vc = vc.with_columns([("count", ("cast", ("col", "count"), "int64"))])
        counts = DataFrame(vc, [name], keep=self._frame._keep)
        s = Series(counts, ("col", "count"), "count")
        s._post = lambda out: out.sort_values(ascending=ascending, kind="stable") if sort else out
        return _PostSeries(s, s._post)

    def unique(self):
        """Distinct values."""
        node = self._frame._node.select([(self._name, self._expr)]).drop_duplicates(None)
        return Series(DataFrame(node, keep=self._frame._keep), ("col", self._name), self._name)

    def drop_duplicates(self):
        """Distinct values."""
        return self.unique()

    def head(self, n=5, npartitions=1, compute=True):
        """The first ``n`` values as a pandas Series."""
        out = self.to_frame().head(n)
        return out[self._name].rename(self.name)

    def map_partitions(self, func, *args, meta=None, **kwargs):
        """Applies ``func`` to each partition (a pandas Series) as Python tasks."""
        name = self._name

        def on_frame(part, *a, **k):
            return func(part[name].rename(None if name == "__series__" else name), *a, **k)

        return self.to_frame()._map(on_frame, args, kwargs, meta, series_meta=self._meta)

    def apply(self, func, meta=None, args=(), **kwargs):
        """Applies ``func`` to each value, through ``map_partitions``."""
        return self.map_partitions(lambda s: s.apply(func, args=args, **kwargs), meta=meta)

    def map_overlap(self, func, before, after, *args, meta=None, **kwargs):
        """``func`` over each partition (a pandas Series) with rows borrowed from its
        neighbours, as ``DataFrame.map_overlap``."""
        from oxidask.dataframe.rolling import map_overlap

        return map_overlap(self, func, before, after, args, kwargs, meta)

    def rolling(self, window, min_periods=None, center=False, win_type=None, axis=0):
        """Moving windows of ``window`` rows or a time span over a sorted index."""
        from oxidask.dataframe.rolling import Rolling

        return Rolling(self, window, min_periods, center, win_type, axis)

    def to_delayed(self):
        """One Delayed per partition (of one-column pandas DataFrames)."""
        return list(self._handles())

    def groupby(self, by, **kwargs):
        """Not supported on a Series: group the frame instead."""
        raise NotImplementedError("oxidask.dataframe: use df.groupby(col)[name]")


def _install_binops():
    for dunder, op in _BINOPS.items():

        def f(self, other, op=op):
            return self._binop(op, other)

        f.__name__ = dunder
        setattr(Series, dunder, f)
        if op in _REFLECTED:
            rname = "__r" + dunder[2:]

            def r(self, other, op=op):
                return self._binop(op, other, reflected=True)

            r.__name__ = rname
            setattr(Series, rname, r)


_install_binops()
Series.__hash__ = object.__hash__


def _map(self, func, args, kwargs, meta, series_meta=None):
    from oxidask.dataframe.io import _map_partitions

    return _map_partitions(self, func, args, kwargs, meta, series_meta=series_meta)


DataFrame._map = _map


class _PostSeries(Series):
    """A series whose computed pandas value is post-processed (value_counts' order)."""

    def __init__(self, inner, post):
        super().__init__(inner._frame, inner._expr, inner._name)
        self._post_fn = post

    def _finalize(self, parts):
        return self._post_fn(super()._finalize(parts))


def _listify(s):
    """List values computed through Arrow (NumPy arrays) back to Python lists, missing ones
    to NaN, as pandas' ``str.split`` gives them."""
    return s.map(lambda v: list(v) if isinstance(v, np.ndarray) else
                 (np.nan if v is None else v))


class _Accessor:
    """What ``.dt`` and ``.str`` share: pandas' accessor method run on each partition (a
    Python task) for what the engine has no expression for."""

    _kind = ""

    def __init__(self, s):
        self._s = s

    def _pandas(self, method, *args, meta=None, attr=False, **kwargs):
        kind = self._kind
        name = self._s.name

        def run(part):
            acc = getattr(part, kind)
            out = getattr(acc, method)
            return out if attr else out(*args, **kwargs)

        run.__name__ = f"{kind}-{method}"
        if meta is None:
            sample = pd.Series(self._sample(), name=name)
            try:
                out = run(sample)
            except Exception as e:  # pragma: no cover - pandas rejects the arguments
                raise type(e)(f".{kind}.{method}: {e}") from None
            meta = out.iloc[:0]
            if pd.api.types.is_object_dtype(meta.dtype):
                # An empty object column says nothing of its values: their Arrow type.
                import pyarrow as pa

                t = pa.array(out, from_pandas=True).type
                meta = pd.Series([], dtype=pd.ArrowDtype(t), name=meta.name)
        return self._s.map_partitions(run, meta=meta)


class _Dt(_Accessor):
    """Datetime fields and methods of a datetime Series (pandas' ``.dt``): the fields the
    engine computes (``year``, ``month``, ``day``, ``hour``, ``minute``, ``second``,
    ``dayofweek``/``weekday``, ``quarter``, ``dayofyear``) are Polars expressions; the rest
    (``date``, ``time``, ``microsecond``, ``days_in_month``, ``is_month_start``…,
    ``strftime``, ``floor``/``ceil``/``round``, ``normalize``, ``day_name``,
    ``month_name``) run pandas on each partition.

    >>> import pandas as pd
    >>> import oxidask.dataframe as dd
    >>> s = dd.from_pandas(pd.Series(pd.to_datetime(["2024-01-01 10:30"]), name="t"))
    >>> s.dt.hour.compute().tolist(), s.dt.strftime("%d/%m").compute().tolist()
    ([10], ['01/01'])
    """

    _kind = "dt"
    _ENGINE = ("year", "month", "day", "hour", "minute", "second", "weekday", "dayofweek",
               "day_of_week", "quarter", "dayofyear", "day_of_year")
    _PANDAS = ("date", "time", "microsecond", "nanosecond", "days_in_month", "daysinmonth",
               "is_month_start", "is_month_end", "is_quarter_start", "is_quarter_end",
               "is_year_start", "is_year_end", "is_leap_year")

    def __init__(self, s):
        if not pd.api.types.is_datetime64_any_dtype(s.dtype):
            raise AttributeError("Can only use .dt accessor with datetimelike values")
        super().__init__(s)

    def _sample(self):
        return pd.Series([pd.Timestamp("2000-01-01 10:20:30.5"), pd.Timestamp("2001-02-28 23:59:01")],
                         dtype=self._s.dtype)

    def __getattr__(self, field):
        if field in self._ENGINE:
            return self._s._with(("dt", field, self._s._expr))
        if field in ("date", "time"):
            import pyarrow as pa

            t = pa.date32() if field == "date" else pa.time64("us")
            # Python date/time objects cross as Arrow dates/times (object dtype in pandas).
            meta = pd.Series([], dtype=pd.ArrowDtype(t), name=self._s.name)
            return self._pandas(field, attr=True, meta=meta)
        if field in self._PANDAS:
            return self._pandas(field, attr=True)
        raise AttributeError(f"'.dt' has no attribute {field!r} in oxidask.dataframe")

    def strftime(self, date_format):
        """The values formatted with ``date_format`` (``"%Y-%m-%d"``), as strings."""
        return self._pandas("strftime", date_format)

    def floor(self, freq):
        """The values rounded down to ``freq`` (``"h"``, ``"15min"``, ``"D"``)."""
        return self._pandas("floor", freq)

    def ceil(self, freq):
        """The values rounded up to ``freq``."""
        return self._pandas("ceil", freq)

    def round(self, freq):
        """The values rounded to the nearest ``freq``."""
        return self._pandas("round", freq)

    def normalize(self):
        """The values at midnight."""
        return self._pandas("normalize")

    def day_name(self):
        """The names of the days (``"Monday"``…)."""
        return self._pandas("day_name")

    def month_name(self):
        """The names of the months (``"January"``…)."""
        return self._pandas("month_name")


class _Str(_Accessor):
    """String methods of a string Series (pandas' ``.str``): ``lower``, ``upper``, ``len``,
    ``strip``/``lstrip``/``rstrip``, ``contains``, ``startswith``, ``endswith`` and literal
    ``replace`` are Polars expressions; ``split``/``rsplit``, ``slice``, ``get``, regular
    expression ``replace``, ``cat`` with other series and pandas' other common methods run
    pandas on each partition.

    >>> import pandas as pd
    >>> import oxidask.dataframe as dd
    >>> s = dd.from_pandas(pd.Series(["a b", "c d e"], name="s"), npartitions=2)
    >>> s.str.split().compute().tolist()
    [['a', 'b'], ['c', 'd', 'e']]
    """

    _kind = "str"

    def __init__(self, s):
        dtype = s.dtype
        if not (pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype)):
            raise AttributeError("Can only use .str accessor with string values!")
        super().__init__(s)

    def _sample(self):
        if isinstance(self._s.dtype, pd.ArrowDtype):
            # Lists (from split): pandas' .str works on them as Python lists.
            return pd.Series([["a", "b"], ["c"]], dtype=object)
        return pd.Series(["a b,c", "d e"], dtype=self._s.dtype)

    def _bool(self, e):
        # pandas' str dtype answers False for missing values in these tests.
        return self._s._with(("fill", e, ("lit", False)))

    def _f(self, name, *args):
        return self._s._with(("str", name, self._s._expr) + args)

    def lower(self):
        """Lower-cased."""
        return self._f("lower")

    def upper(self):
        """Upper-cased."""
        return self._f("upper")

    def len(self):
        """Length in characters."""
        return self._f("len")

    def strip(self, to_strip=None):
        """Whitespace (or the characters of ``to_strip``) removed at both ends."""
        return self._f("strip") if to_strip is None else self._pandas("strip", to_strip)

    def lstrip(self, to_strip=None):
        """Whitespace (or the characters of ``to_strip``) removed at the start."""
        return self._f("lstrip") if to_strip is None else self._pandas("lstrip", to_strip)

    def rstrip(self, to_strip=None):
        """Whitespace (or the characters of ``to_strip``) removed at the end."""
        return self._f("rstrip") if to_strip is None else self._pandas("rstrip", to_strip)

    def contains(self, pat, case=True, flags=0, na=None, regex=True):
        """Whether each value contains ``pat`` (a regular expression unless ``regex=False``)."""
        if flags or na is not None:
            return self._pandas("contains", pat, case=case, flags=flags, na=na, regex=regex)
        if not case:
            if regex:
                return self._bool(("str", "contains", self._s._expr, "(?i)" + pat))
            return self._bool(("str", "contains_literal", ("str", "lower", self._s._expr),
                               pat.lower()))
        return self._bool(("str", "contains" if regex else "contains_literal", self._s._expr,
                           pat))

    def startswith(self, pat):
        """Whether each value starts with ``pat`` (a string or a tuple of strings)."""
        if isinstance(pat, tuple):
            return self._pandas("startswith", pat)
        return self._bool(("str", "startswith", self._s._expr, pat))

    def endswith(self, pat):
        """Whether each value ends with ``pat`` (a string or a tuple of strings)."""
        if isinstance(pat, tuple):
            return self._pandas("endswith", pat)
        return self._bool(("str", "endswith", self._s._expr, pat))

    def replace(self, pat, repl, n=-1, case=None, flags=0, regex=False):
        """``pat`` replaced by ``repl`` (``n`` times, all by default): a literal string by
        default, a regular expression with ``regex=True`` (pandas' semantics)."""
        if regex or n != -1 or case is not None or flags or callable(repl):
            return self._pandas("replace", pat, repl, n=n, case=case, flags=flags, regex=regex)
        return self._f("replace", pat, repl)

    def _split(self, method, pat, n, expand, regex):
        kw = {"pat": pat, "n": n, "expand": expand}
        if regex is not None:
            kw["regex"] = regex
        if not expand:
            import pyarrow as pa

            meta = pd.Series([], dtype=pd.ArrowDtype(pa.list_(pa.string())), name=self._s.name)
            out = self._pandas(method, meta=meta, **kw)
            return _PostSeries(out, _listify)
        if n is None or n < 0:
            raise NotImplementedError(
                f"To use the expand parameter you must specify the number of expected "
                f"splits with the n= parameter (as Dask). Usually n splits result in "
                f"n+1 output columns."
            )
        cols = list(range(n + 1))
        name = self._s._name

        def run(part):
            s = part[name]
            return getattr(s.str, method)(**kw).reindex(columns=cols)

        run.__name__ = f"str-{method}"
        meta = pd.DataFrame({str(c): pd.Series([], dtype=self._s.dtype) for c in cols})
        return self._s.to_frame()._map(run, (), {}, meta)

    def split(self, pat=None, n=-1, expand=False, regex=None):
        """Values split at ``pat`` (whitespace by default) at most ``n`` times: lists
        (``expand=False``, as pandas), or with ``expand=True`` (needs ``n``, as Dask) a
        DataFrame of ``n + 1`` columns named ``"0"``…``str(n)`` (oxidask frames name their
        columns with strings)."""
        return self._split("split", pat, n, expand, regex)

    def rsplit(self, pat=None, n=-1, expand=False):
        """As :meth:`split`, from the right."""
        return self._split("rsplit", pat, n, expand, None)

    def slice(self, start=None, stop=None, step=None):
        """Characters ``start:stop:step`` of each value."""
        return self._pandas("slice", start, stop, step)

    def get(self, i):
        """Element ``i`` of each value (a character of strings, an item of lists)."""
        return self._pandas("get", i)

    def __getitem__(self, key):
        if isinstance(key, slice):
            return self.slice(key.start, key.stop, key.step)
        return self.get(key)

    def cat(self, others=None, sep=None, na_rep=None):
        """The values concatenated element-wise with ``others`` (a Series of the same frame
        or a list of them), joined by ``sep``; missing if any part is (``na_rep=None``).
        Without ``others`` pandas gives one string: compute first, as in Dask."""
        if others is None:
            raise NotImplementedError(
                "oxidask.dataframe str.cat needs others= (series to join with); for one "
                "string of all values use .compute().str.cat()"
            )
        if na_rep is not None:
            raise NotImplementedError("oxidask.dataframe str.cat supports na_rep=None")
        others = [others] if isinstance(others, Series) else list(others)
        out = self._s
        for o in others:
            if not isinstance(o, Series):
                raise TypeError("str.cat others= takes Series of the same frame")
            out = out + sep + o if sep else out + o
        return out

    def __getattr__(self, method):
        if method in ("title", "capitalize", "swapcase", "casefold", "isalpha", "isdigit",
                      "isalnum", "isnumeric", "isspace", "islower", "isupper", "istitle",
                      "isdecimal", "zfill", "pad", "center", "ljust", "rjust", "find",
                      "rfind", "count", "match", "fullmatch", "repeat", "removeprefix",
                      "removesuffix", "extract", "normalize", "wrap"):
            def f(*args, **kwargs):
                if method == "extract" and kwargs.get("expand", True):
                    raise NotImplementedError(
                        "oxidask.dataframe str.extract supports expand=False")
                out = self._pandas(method, *args, **kwargs)
                return out
            f.__name__ = method
            f.__doc__ = f"pandas' ``Series.str.{method}`` on each partition."
            return f
        if method.startswith("_"):
            raise AttributeError(method)
        raise AttributeError(f"'.str' has no attribute {method!r} in oxidask.dataframe")


class Scalar(_Collection):
    """A lazy single value (Dask's ``Scalar``): ``compute()`` gives a NumPy/Python scalar."""

    def __init__(self, node, column, post=None):
        self._node = node
        self._column = column
        self._post = post

    def _node_for_keys(self):
        return self._node

    def _handles(self):
        return self._node.pandas_handles("")

    def _finalize(self, parts):
        out = _concat(parts, [])
        v = out[self._column].iloc[0] if out is not None and len(out) else None
        if v is not None and pd.isna(v):
            v = np.nan
        return self._post(v) if self._post else v

    def __repr__(self):
        return "dd.Scalar<reduction>"

    def _binop(self, other, f):
        from oxidask.delayed import delayed

        return delayed(f)(self, other)

    def __add__(self, o):
        return self._binop(o, lambda a, b: a + b)

    def __sub__(self, o):
        return self._binop(o, lambda a, b: a - b)

    def __mul__(self, o):
        return self._binop(o, lambda a, b: a * b)

    def __truediv__(self, o):
        return self._binop(o, lambda a, b: a / b)


class _Reduced(_Collection):
    """A lazy per-column reduction of a frame: ``compute()`` gives a pandas Series indexed by
    the column names."""

    def __init__(self, node, kind, cols):
        self._node = node
        self._kind = kind
        self._cols = cols

    def _node_for_keys(self):
        return self._node

    def _handles(self):
        return self._node.pandas_handles("")

    def _finalize(self, parts):
        out = _concat(parts, [])
        if out is None or not len(out):
            return pd.Series([], dtype="float64")
        out = out.iloc[0]
        out.name = None
        return out

    def __repr__(self):
        return f"Dask Series Structure: {self._kind} of {len(self._cols)} columns"


class _Value(_Collection):
    """An already computed pandas value behind Dask's lazy interface (``describe``)."""

    def __init__(self, value):
        self._value = value

    def compute(self, **kwargs):
        """The value."""
        return self._value

    def __oxidask_collection__(self):
        from oxidask._oxidask import delayed_value

        return [delayed_value(self._value)], lambda v: v[0], lambda p: self
