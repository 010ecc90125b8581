"""Making dataframes: files, pandas, dicts, delayed partitions, and Python functions over
partitions."""

import glob as _glob
import os

import numpy as np
import pandas as pd

from oxidask._oxidask import FrameNode
from oxidask.dataframe import _arrow
from oxidask.dataframe.core import DataFrame, Series


def _paths(path):
    if isinstance(path, (list, tuple)):
        return [os.fspath(p) for p in path]
    return [os.fspath(path)]


def _storage(storage_options):
    so = dict(storage_options or {})
    endpoint = so.pop("endpoint_url", None) or so.pop("endpoint", None)
    client_kwargs = so.pop("client_kwargs", None) or {}
    endpoint = endpoint or client_kwargs.get("endpoint_url")
    region = so.pop("region", None) or client_kwargs.get("region_name")
    so.pop("anon", None)
    for k in ("key", "secret", "token"):
        if k in so:
            raise ValueError(
                f"storage_options[{k!r}]: oxidask reads S3 keys from the environment of each "
                "process (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), so they never travel in "
                "task graphs; set them there"
            )
    if so:
        raise ValueError(f"unsupported storage_options: {sorted(so)}")
    return endpoint, region


def read_parquet(path, columns=None, storage_options=None, split_row_groups="infer", **kwargs):
    """Reads Parquet files (a path, glob, directory, list, or ``s3://`` URL) lazily, a
    partition per file; ``columns=`` reads only those. ``split_row_groups=N`` (or ``True``
    for one) makes a partition of every ``N`` row groups of local files instead (Dask's
    option; ``"infer"``/``"adaptive"``/``False``: a partition per file)."""
    endpoint, region = _storage(storage_options)
    if isinstance(columns, str):
        columns = [columns]
    if split_row_groups is True:
        per = 1
    elif split_row_groups in (False, None, "infer", "adaptive"):
        per = None
    elif isinstance(split_row_groups, int) and split_row_groups > 0:
        per = split_row_groups
    else:
        raise ValueError(
            f"split_row_groups must be a positive integer, True, False, 'infer' or 'adaptive'; "
            f"got {split_row_groups!r}"
        )
    return DataFrame(
        FrameNode.read_parquet(_paths(path), list(columns) if columns else None, endpoint, region,
                               per)
    )


def read_csv(path, blocksize="default", dtype=None, sep=",", storage_options=None,
             usecols=None, **kwargs):
    """Reads CSV files (paths, globs, ``s3://``) lazily, split into ``blocksize``-byte
    partitions (``None``: a partition per file)."""
    if kwargs:
        raise NotImplementedError(f"read_csv options not supported: {sorted(kwargs)}")
    endpoint, region = _storage(storage_options)
    dtypes = []
    if isinstance(dtype, dict):
        from oxidask.dataframe.core import _dtype_name

        dtypes = [(c, _dtype_name(t)) for c, t in dtype.items()]
    elif dtype is not None:
        raise NotImplementedError("read_csv dtype= takes a dict of column to dtype")
    bs = None
    per_file = blocksize is None
    if isinstance(blocksize, str) and blocksize != "default":
        from oxidask.utils import parse_bytes

        bs = parse_bytes(blocksize)
    elif isinstance(blocksize, int):
        bs = blocksize
    df = DataFrame(FrameNode.read_csv(_paths(path), bs, dtypes, sep, endpoint, region, per_file))
    if usecols is not None:
        df = df[list(usecols)]
    return df


def from_pandas(data, npartitions=None, chunksize=None, sort=True):
    """A dataframe of ``npartitions`` row ranges of a pandas DataFrame (or Series). A named
    or non-default index is kept as the index."""
    if npartitions is None:
        if chunksize is None:
            npartitions = 1
        else:
            npartitions = max(1, -(-len(data) // chunksize))
    if isinstance(data, pd.Series):
        name = data.name if data.name is not None else "__series__"
        frame = from_pandas(data.to_frame(name=name), npartitions=npartitions)
        return Series(frame, ("col", name), name)
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"from_pandas takes a pandas DataFrame or Series, got {type(data).__name__}")
    index = [] if isinstance(data.index, pd.RangeIndex) and data.index.name is None else [
        n if n is not None else "index" for n in data.index.names]
    if index and data.index.names == [None]:
        data = data.rename_axis("index")
    node = FrameNode.from_ipc(_arrow.pandas_to_ipc(data), int(npartitions))
    return DataFrame(node, index)


def from_dict(data, npartitions, orient="columns", dtype=None, columns=None):
    """A dataframe from a dict of columns (``pd.DataFrame.from_dict``) in ``npartitions``."""
    return from_pandas(pd.DataFrame.from_dict(data, orient=orient, dtype=dtype, columns=columns),
                       npartitions=npartitions)


def _meta_frame(meta):
    if isinstance(meta, (pd.DataFrame, pd.Series)):
        return meta.iloc[:0]
    if isinstance(meta, dict):
        return pd.DataFrame({c: pd.Series([], dtype=t) for c, t in meta.items()})
    if isinstance(meta, tuple) and len(meta) == 2:
        return pd.Series([], dtype=meta[1], name=meta[0])
    if isinstance(meta, list):
        return pd.DataFrame({c: pd.Series([], dtype=t) for c, t in meta})
    raise TypeError("meta must be an empty pandas object, a dict, a list of pairs or (name, dtype)")


def _nonempty(meta):
    """A two-row pandas frame of made-up values with ``meta``'s dtypes (to infer a function's
    output, as Dask's ``meta_nonempty``)."""
    def values(t, increasing=False):
        if pd.api.types.is_bool_dtype(t):
            return [False, True]
        if pd.api.types.is_integer_dtype(t):
            return [1, 2] if increasing else [1, 1]
        if pd.api.types.is_float_dtype(t):
            return [1.0, 2.0] if increasing else [1.0, 1.0]
        if pd.api.types.is_datetime64_any_dtype(t):
            return [pd.Timestamp("2000-01-01"), pd.Timestamp("2000-01-02" if increasing else "2000-01-01")]
        return ["foo", "goo"] if increasing else ["foo", "foo"]

    cols = {c: pd.Series(values(t), dtype=t) for c, t in meta.dtypes.items()}
    out = pd.DataFrame(cols)
    idx = meta.index
    if isinstance(idx, pd.MultiIndex):
        out.index = pd.MultiIndex.from_arrays(
            [pd.Index(values(lv.dtype, True), dtype=lv.dtype) for lv in idx.levels], names=idx.names)
    elif idx.name is not None or not isinstance(idx, pd.RangeIndex):
        out.index = pd.Index(values(idx.dtype, True), dtype=idx.dtype, name=idx.name)
    return out


def _map_partitions(frame, func, args, kwargs, meta, series_meta=None):
    from oxidask.delayed import delayed

    if meta is None:
        sample = _nonempty(frame._meta)
        if series_meta is not None:
            pass
        try:
            meta = func(sample, *args, **kwargs)
        except Exception as e:
            raise ValueError(
                "map_partitions could not infer the result's columns by running the function "
                f"on a made-up frame ({type(e).__name__}: {e}); pass meta="
            ) from e
        if not isinstance(meta, (pd.DataFrame, pd.Series)):
            raise ValueError("map_partitions functions must return pandas DataFrames or Series; "
                             "pass meta= for other results")
    meta = _meta_frame(meta)
    if isinstance(meta, pd.Series):
        name = meta.name

        def run(part, *a, **k):
            out = func(part, *a, **k)
            # As Dask: a Series result takes the name meta gives.
            return out.rename(name) if isinstance(out, pd.Series) else out

        run.__name__ = getattr(func, "__name__", "map_partitions")
        f = delayed(run, pure=False)
    else:
        f = delayed(func, pure=False)
    results = [f(h, *args, **kwargs) for h in frame._handles()]
    return _from_results(results, meta)


def _from_results(results, meta):
    is_series = isinstance(meta, pd.Series)
    ipc = _arrow.pandas_to_ipc(meta)
    node = FrameNode.from_pandas_handles(results, ipc)
    index = [] if isinstance(meta.index, pd.RangeIndex) and meta.index.name is None else [
        n if n is not None else "index" for n in meta.index.names]
    df = DataFrame(node, index)
    if is_series:
        name = meta.name if meta.name is not None else "__series__"
        return Series(df, ("col", name), name)
    return df


def from_delayed(dfs, meta=None, verify_meta=True):
    """A dataframe whose partitions are delayed pandas DataFrames; ``meta`` gives the
    columns (computed from the first partition when missing)."""
    dfs = list(dfs)
    if not dfs:
        raise ValueError("from_delayed needs at least one partition")
    if meta is None:
        meta = dfs[0].compute()
    meta = _meta_frame(meta)
    return _from_results(dfs, meta)


def concat(dfs):
    """Frames concatenated along rows (same columns)."""
    dfs = list(dfs)
    return DataFrame(FrameNode.concat([d.reset_index()._node for d in dfs]), dfs[0]._index)
