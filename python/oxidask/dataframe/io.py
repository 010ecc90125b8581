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


#: Dask's default ``blocksize`` of ``read_parquet`` (its pyarrow engine's): 256 MiB.
PARQUET_BLOCKSIZE = 256 * 2**20


def _parquet_split(split_row_groups, blocksize):
    """The engine's ``(split, blocksize, every)`` for Dask's ``split_row_groups`` and
    ``blocksize`` arguments of ``read_parquet``: Dask's meanings and, where Dask raises, its
    exception types; a negative size or count, or a fractional count (which Dask takes
    silently), is an error too.

    >>> _parquet_split("infer", "128 MiB")
    ('infer', 134217728, 1)
    """
    if isinstance(split_row_groups, str):
        if split_row_groups not in ("infer", "adaptive"):
            raise ValueError(
                f"split_row_groups must be 'infer', 'adaptive', True, False or a number of row "
                f"groups per partition; got {split_row_groups!r}"
            )
        if isinstance(blocksize, str) and blocksize == "default":
            size = PARQUET_BLOCKSIZE
        elif blocksize is None:
            size = 0
        elif isinstance(blocksize, bool) or not isinstance(blocksize, (int, float, str, np.integer)):
            raise TypeError(
                f"blocksize must be a number of bytes, a size such as '128 MiB', 'default' or "
                f"None; got {type(blocksize).__name__}"
            )
        else:
            from oxidask.utils import parse_bytes

            size = parse_bytes(blocksize)
        # Without a blocksize Dask reads a partition per file.
        return (split_row_groups if size else "file"), size, 1
    if split_row_groups is True:
        return "every", 0, 1
    if split_row_groups is False:
        return "file", 0, 1
    if isinstance(split_row_groups, (int, np.integer)):
        if split_row_groups < 0:
            raise ValueError(
                f"split_row_groups must be a number of row groups per partition ≥ 0 (or 'infer', "
                f"'adaptive', True, False); got {split_row_groups!r}"
            )
        n = int(split_row_groups)
        return ("every", 0, n) if n else ("file", 0, 1)
    raise TypeError(
        f"split_row_groups must be 'infer', 'adaptive', True, False or an int; got "
        f"{type(split_row_groups).__name__}"
    )


def read_parquet(path, columns=None, storage_options=None, split_row_groups="infer",
                 blocksize="default", **kwargs):
    """Reads Parquet files (a path, glob, directory, list, or ``s3://`` URL) lazily;
    ``columns=`` reads only those.

    Partitions as Dask's: by default (``split_row_groups="infer"``) a partition per file,
    unless the first file's row groups hold more than twice ``blocksize`` (256 MiB by
    default, uncompressed sizes from the footer): then every file is cut into runs of
    consecutive row groups of at most ``blocksize`` bytes. ``"adaptive"`` always cuts so,
    ``True`` makes a partition per row group, an int ``N`` per ``N`` row groups, ``False``
    (or ``blocksize=None``) a partition per file. ``s3://`` files stay whole.

    >>> import oxidask.dataframe as dd
    >>> df = dd.read_parquet("yellow_tripdata_2019-01.parquet")  # doctest: +SKIP
    >>> df.npartitions  # 62 row groups, 781 MiB uncompressed  # doctest: +SKIP
    4
    >>> dd.read_parquet("yellow_tripdata_2019-01.parquet", blocksize="64 MiB").npartitions  # doctest: +SKIP
    13
    """
    endpoint, region = _storage(storage_options)
    if isinstance(columns, str):
        columns = [columns]
    split, size, every = _parquet_split(split_row_groups, blocksize)
    return DataFrame(
        FrameNode.read_parquet(_paths(path), list(columns) if columns else None, endpoint, region,
                               split, size, every)
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


def from_polars(df, npartitions=None, chunksize=None, sort=True):
    """A dataframe of ``npartitions`` row ranges (or ranges of ``chunksize`` rows) of a
    Polars DataFrame (or Series), handed to the engine through Arrow without pandas. Polars
    frames have no index, so the result has none (``sort`` is accepted for symmetry with
    :func:`from_pandas`). ``compute(engine="polars")`` or ``to_polars()`` gives Polars back.

    >>> import polars as pl
    >>> import oxidask.dataframe as dd
    >>> df = dd.from_polars(pl.DataFrame({"x": [1, 2, 3]}), npartitions=2)
    >>> df.x.sum().compute()
    np.int64(6)
    """
    try:
        import polars as pl
    except ImportError:
        raise ImportError("from_polars needs polars: pip install polars") from None
    if isinstance(df, pl.Series):
        name = df.name or "__series__"
        frame = from_polars(df.to_frame(name), npartitions=npartitions, chunksize=chunksize)
        return Series(frame, ("col", name), name if df.name else "__series__")
    if isinstance(df, pl.LazyFrame):
        df = df.collect()
    if not isinstance(df, pl.DataFrame):
        raise TypeError(f"from_polars takes a Polars DataFrame or Series, got {type(df).__name__}")
    if npartitions is not None and chunksize is not None:
        raise ValueError("from_polars takes npartitions= or chunksize=, not both")
    if npartitions is None:
        npartitions = 1 if chunksize is None else max(1, -(-df.height // int(chunksize)))
    if int(npartitions) < 1:
        raise ValueError(f"npartitions must be at least 1, got {npartitions!r}")
    import pyarrow as pa
    import pyarrow.ipc as ipc

    table = df.to_arrow(compat_level=pl.CompatLevel.oldest())
    sink = pa.BufferOutputStream()
    with ipc.new_file(sink, table.schema) as w:
        w.write_table(table)
    return DataFrame(FrameNode.from_ipc(sink.getvalue(), int(npartitions)))


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


# ---- JSON

_GLOB_CHARS = set("*?[")
_COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz"}


def _json_fs(path, endpoint, region):
    """The pyarrow filesystem and in-filesystem path of a local path or an ``s3://`` URL
    (S3 keys come from the environment of the process that reads)."""
    import pyarrow.fs as pafs

    if path.startswith("s3://"):
        kw = {}
        if endpoint:
            from urllib.parse import urlparse

            u = urlparse(endpoint)
            if u.scheme:
                kw["scheme"] = u.scheme
                kw["endpoint_override"] = u.netloc
            else:
                kw["endpoint_override"] = endpoint
        if region:
            kw["region"] = region
        return pafs.S3FileSystem(**kw), path[len("s3://"):]
    return pafs.LocalFileSystem(), os.path.abspath(path)


def _json_expand(paths, endpoint, region):
    """The files of paths, globs and directories, with their sizes (sorted per pattern, as
    Dask's ``read_bytes``)."""
    import fnmatch

    import pyarrow.fs as pafs

    out = []
    for p in paths:
        fs, fp = _json_fs(p, endpoint, region)
        prefix = "s3://" if p.startswith("s3://") else ""
        if any(c in _GLOB_CHARS for c in fp):
            parts = fp.split("/")
            k = next(i for i, s in enumerate(parts) if any(c in _GLOB_CHARS for c in s))
            base = "/".join(parts[:k]) or "/"
            infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
            found = sorted(i.path for i in infos
                           if i.type == pafs.FileType.File and fnmatch.fnmatchcase(i.path, fp))
            if not found:
                raise FileNotFoundError(f"read_json: no files match {p!r}")
            out.extend((prefix + f, fs.get_file_info(f).size) for f in found)
            continue
        info = fs.get_file_info(fp)
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(f"read_json: no such file {p!r}")
        if info.type == pafs.FileType.Directory:
            infos = fs.get_file_info(pafs.FileSelector(fp, recursive=True))
            out.extend((prefix + i.path, i.size) for i in sorted(infos, key=lambda i: i.path)
                       if i.type == pafs.FileType.File)
        else:
            out.append((p if prefix else fp, info.size))
    if not out:
        raise FileNotFoundError(f"read_json: no files in {paths!r}")
    return out


def _json_compression(path, compression):
    if compression == "infer":
        return _COMPRESSIONS.get(os.path.splitext(path)[1].lower())
    if compression in (None, "gzip", "bz2", "xz"):
        return compression
    raise ValueError(
        f"read_json compression={compression!r} is not supported; use 'infer', None, "
        "'gzip', 'bz2' or 'xz'"
    )


def _decompress(data, compression):
    if compression == "gzip":
        import gzip

        return gzip.decompress(data)
    if compression == "bz2":
        import bz2

        return bz2.decompress(data)
    if compression == "xz":
        import lzma

        return lzma.decompress(data)
    return data


def _line_start(f, pos, size):
    """Where a block cut at ``pos`` starts: the byte after the first newline at ``pos`` or
    later (0 for 0, ``size`` at the end), as Dask's ``read_block`` cuts blocks, so every line
    belongs to exactly one block."""
    if pos <= 0:
        return 0
    if pos >= size:
        return size
    at = pos
    while at < size:
        chunk = f.read_at(min(1 << 16, size - at), at)
        i = chunk.find(b"\n")
        if i >= 0:
            return at + i + 1
        at += len(chunk)
    return size


def _json_block(path, start, length, size, orient, lines, compression, endpoint, region,
                kwargs, dtypes, path_column=None):
    """One partition: the JSON of ``path`` (the lines of the block ``[start, start+length)``
    when ``length`` is given) as a pandas DataFrame with ``dtypes`` (when known)."""
    import io as _io

    fs, fp = _json_fs(path, endpoint, region)
    with fs.open_input_file(fp) as f:
        if length is None:
            begin = 0
            data = _decompress(f.read(), compression)
        else:
            begin = _line_start(f, start, size)
            end = _line_start(f, start + length, size)
            data = f.read_at(end - begin, begin) if end > begin else b""
    if not data.strip():
        if dtypes is None:
            return pd.DataFrame()
        return pd.DataFrame({c: pd.Series([], dtype=t) for c, t in dtypes.items()})
    try:
        out = pd.read_json(_io.BytesIO(data), orient=orient, lines=lines, **kwargs)
    except ValueError as e:
        raise ValueError(_json_error(path, fs, fp, begin, data, lines, e)) from None
    if path_column is not None:
        out[path_column] = pd.Series([path] * len(out), index=out.index, dtype="str")
    if dtypes is not None:
        if list(out.columns) != list(dtypes):
            missing = [c for c in dtypes if c not in out.columns]
            extra = [c for c in out.columns if c not in dtypes]
            raise ValueError(
                f"read_json: {path} has columns {list(out.columns)}, not the expected "
                f"{list(dtypes)} (missing {missing}, unexpected {extra}); pass meta= with "
                "all the columns"
            )
        try:
            out = out.astype(dtypes)
        except (TypeError, ValueError) as e:
            raise ValueError(
                f"read_json: the values of {path} do not fit the dtypes {dict(dtypes)} of the "
                f"first partition ({e}); pass meta= with dtypes that fit every file"
            ) from None
    return out


def _json_error(path, fs, fp, begin, data, lines, err):
    """A message naming the file (and, for JSON lines, the first malformed line)."""
    import json

    if not lines:
        return f"read_json: malformed JSON in {path}: {err}"
    for i, line in enumerate(data.split(b"\n")):
        if not line.strip():
            continue
        try:
            json.loads(line)
        except ValueError as e:
            before = 0
            if begin:
                with fs.open_input_file(fp) as f:
                    before = f.read_at(begin, 0).count(b"\n")
            return f"read_json: malformed JSON in {path} at line {before + i + 1}: {e}"
    return f"read_json: could not read {path}: {err}"


def read_json(url_path, orient="records", lines=None, blocksize=None, compression="infer",
              storage_options=None, meta=None, include_path_column=False, **kwargs):
    """Reads JSON files lazily into a dataframe (Dask's ``read_json``), with pandas'
    ``read_json`` in a task per partition.

    ``url_path`` is a path, a glob, a directory, a list of them or ``s3://`` URLs (with
    ``storage_options={"endpoint_url": ..., "region": ...}``; keys come from each reading
    process's environment, as for :func:`read_csv`). ``lines`` defaults to
    ``orient == "records"`` (JSON lines). A partition per file, or with ``blocksize=`` (bytes
    or ``"64MB"``; JSON lines only, uncompressed) ``max(1, size // blocksize)`` partitions
    per file (as Dask), cut at line boundaries. ``compression`` is ``"infer"`` (from ``.gz``/``.bz2``/``.xz``), ``None``,
    ``"gzip"``, ``"bz2"`` or ``"xz"``. ``meta`` gives the columns and dtypes (otherwise the
    first partition is read now); every partition is cast to them.
    ``include_path_column=True`` (or a column name) adds a ``"path"`` column naming each row's
    file (strings; Dask makes it categorical). Other keywords go to ``pandas.read_json``. A malformed line raises ``ValueError`` naming the file and line.

    >>> import os, tempfile
    >>> import oxidask.dataframe as dd
    >>> d = tempfile.mkdtemp()
    >>> with open(os.path.join(d, "a.json"), "w") as f:
    ...     _ = f.write('{"x": 1, "y": "a"}\\n{"x": 2, "y": "b"}\\n')
    >>> dd.read_json(os.path.join(d, "*.json")).x.sum().compute()
    np.int64(3)
    """
    from oxidask.delayed import delayed

    if lines is None:
        lines = orient == "records"
    if orient not in ("records", "split", "index", "columns", "values", "table"):
        raise ValueError(f"read_json orient={orient!r} is not one of pandas' orients")
    if lines and orient != "records":
        raise ValueError("read_json lines=True needs orient='records' (as pandas)")
    if blocksize is not None:
        if isinstance(blocksize, str):
            from oxidask.utils import parse_bytes

            blocksize = parse_bytes(blocksize)
        if not lines:
            raise ValueError("read_json blocksize= needs line-delimited JSON "
                             "(orient='records', lines=True)")
        if not isinstance(blocksize, int) or blocksize <= 0:
            raise ValueError(f"read_json blocksize must be a positive number of bytes, "
                             f"got {blocksize!r}")
    endpoint, region = _storage(storage_options)
    files = _json_expand(_paths(url_path), endpoint, region)
    blocks = []
    for path, size in files:
        comp = _json_compression(path, compression)
        if blocksize is not None and comp is not None:
            raise ValueError(
                f"read_json cannot cut the compressed file {path} into blocks; "
                "pass blocksize=None (a partition per file)"
            )
        if blocksize is None:
            blocks.append((path, 0, None, size, comp))
        else:
            # As Dask's read_bytes: max(1, size // blocksize) blocks of equal length, so the
            # last one is not a small remainder.
            step = size / (size // blocksize) if size % blocksize and size > blocksize \
                else blocksize
            cuts, place = [0], 0
            while size - place > 2 * step - 1:
                place += step
                cuts.append(int(place))
            cuts.append(size)
            blocks.extend((path, a, b - a, size, comp) for a, b in zip(cuts, cuts[1:]))
    path_column = None
    if include_path_column:
        path_column = "path" if include_path_column is True else str(include_path_column)
    dtypes = None
    if meta is not None:
        meta = _meta_frame(meta)
        if path_column is not None and path_column not in meta.columns:
            meta = meta.assign(**{path_column: pd.Series([], dtype="str")})
        dtypes = meta.dtypes.to_dict()
    else:
        p, s, n, size, comp = blocks[0]
        first = _json_block(p, s, n, size, orient, lines, comp, endpoint, region, kwargs, None,
                            path_column)
        meta = first.iloc[:0]
        dtypes = meta.dtypes.to_dict()
    read = delayed(_json_block, pure=True)
    parts = [read(p, s, n, size, orient, lines, comp, endpoint, region, kwargs, dtypes,
                  path_column)
             for p, s, n, size, comp in blocks]
    return _from_results(parts, meta)
