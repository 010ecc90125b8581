"""SQL databases as dataframes (Dask's ``read_sql_table``, ``read_sql_query``, ``read_sql``
and ``to_sql``), through SQLAlchemy.

The query is split on ``index_col``: its smallest and largest values are read first, the range
is cut into ``npartitions`` pieces (or at the given ``divisions``), and each partition is one
query with ``index_col >= low AND index_col < high`` run by a task, which connects with the
URI ``con`` itself (connections never travel in task graphs). Partitions are indexed by
``index_col``, as in Dask.

>>> import sqlite3, tempfile, os
>>> import oxidask.dataframe as dd
>>> path = os.path.join(tempfile.mkdtemp(), "school.db")
>>> with sqlite3.connect(path) as db:
...     _ = db.execute("create table transcripts (student_number int, grade real)")
...     _ = db.executemany("insert into transcripts values (?, ?)", [(i, i / 10) for i in range(100)])
>>> df = dd.read_sql_table("transcripts", f"sqlite:///{path}", index_col="student_number",
...                        npartitions=4)
>>> df.npartitions, round(float(df.grade.sum().compute()), 6)
(4, 495.0)
"""

import math

import numpy as np
import pandas as pd


def _sqlalchemy():
    try:
        import sqlalchemy as sa
    except ImportError:
        raise ImportError(
            "oxidask.dataframe's SQL functions need SQLAlchemy: pip install sqlalchemy"
        ) from None
    return sa


def _check_con(con):
    if not isinstance(con, str):
        raise TypeError(
            "con must be a SQLAlchemy database URI string (such as 'sqlite:///path.db'); "
            f"got {type(con).__name__}: each task opens its own connection from it"
        )


def _engine(con, engine_kwargs):
    return _sqlalchemy().create_engine(con, **(engine_kwargs or {}))


def _read(query, con, index_name, engine_kwargs, kwargs):
    engine = _engine(con, engine_kwargs)
    try:
        with engine.connect() as conn:
            df = pd.read_sql(query, conn, **kwargs)
    finally:
        engine.dispose()
    return df.set_index(index_name) if index_name in df.columns else df


def _bounds(lo, hi, npartitions):
    if isinstance(lo, (pd.Timestamp, np.datetime64)) or hasattr(lo, "isoformat"):
        lo, hi = pd.Timestamp(lo), pd.Timestamp(hi)
        return list(pd.date_range(lo, hi, periods=npartitions + 1))
    if isinstance(lo, (int, np.integer)) and isinstance(hi, (int, np.integer)):
        cuts = np.linspace(int(lo), int(hi), npartitions + 1)
        out = sorted({int(round(c)) for c in cuts})
        return out if len(out) > 1 else [int(lo), int(hi)]
    if isinstance(lo, (float, np.floating, int, np.integer)):
        return list(np.linspace(float(lo), float(hi), npartitions + 1))
    raise TypeError(
        f"index_col values must be numbers or datetimes to split on, got {type(lo).__name__}; "
        "pass divisions= (sorted index values) instead"
    )


def read_sql_query(sql, con, index_col, divisions=None, npartitions=None, limits=None,
                   bytes_per_chunk="256 MiB", head_rows=5, meta=None, engine_kwargs=None,
                   **kwargs):
    """A dataframe of a SQLAlchemy ``Select`` (``sql``) against the database at URI ``con``,
    partitioned on ``index_col`` (a column name or SQLAlchemy column): at ``divisions``, into
    ``npartitions`` equal ranges between ``limits`` (default: the column's min and max), or
    into pieces of about ``bytes_per_chunk`` estimated from ``head_rows`` rows."""
    sa = _sqlalchemy()
    _check_con(con)
    if isinstance(sql, str):
        raise TypeError(
            "read_sql_query takes a SQLAlchemy Select (sqlalchemy.select(...)); for a table "
            "name use read_sql_table"
        )
    if index_col is None:
        raise ValueError("read_sql_query needs index_col= to split the query on")
    from oxidask.dataframe.io import _from_results
    from oxidask.delayed import delayed
    from oxidask.utils import parse_bytes

    sub = sql.subquery()
    name = index_col if isinstance(index_col, str) else index_col.name
    if name not in sub.c:
        raise KeyError(f"index_col {name!r} is not a column of the query ({list(sub.c.keys())})")
    index = sub.c[name]
    query = sa.select(sub)
    engine = _engine(con, engine_kwargs)
    try:
        with engine.connect() as conn:
            head = pd.read_sql(query.limit(head_rows), conn, **kwargs)
            if divisions is None:
                if limits is None:
                    lo, hi = conn.execute(sa.select(sa.func.min(index), sa.func.max(index))).one()
                else:
                    lo, hi = limits
                if lo is None:
                    divisions = None
                else:
                    if npartitions is None:
                        rows = conn.execute(sa.select(sa.func.count()).select_from(sub)).scalar()
                        per_row = head.memory_usage(deep=True).sum() / max(len(head), 1)
                        npartitions = max(1, math.ceil(rows * per_row / parse_bytes(bytes_per_chunk)))
                    if isinstance(head[name].dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(head[name]):
                        lo, hi = pd.Timestamp(lo), pd.Timestamp(hi)
                    divisions = _bounds(lo, hi, int(npartitions))
    finally:
        engine.dispose()
    if meta is None:
        meta = head.set_index(name).iloc[:0]
    read = delayed(_read, pure=False)
    if divisions is None:  # an empty result: one empty partition
        parts = [read(query, con, name, engine_kwargs, kwargs)]
    else:
        divisions = list(divisions)
        if len(divisions) < 2:
            raise ValueError("divisions needs at least two values")
        parts = []
        for i, (lo, hi) in enumerate(zip(divisions, divisions[1:])):
            last = i == len(divisions) - 2
            cond = sa.and_(index >= lo, index <= hi if last else index < hi)
            parts.append(read(query.where(cond), con, name, engine_kwargs, kwargs))
    return _from_results(parts, meta)


def read_sql_table(table_name, con, index_col, divisions=None, npartitions=None, limits=None,
                   columns=None, bytes_per_chunk="256 MiB", head_rows=5, schema=None,
                   meta=None, engine_kwargs=None, **kwargs):
    """A dataframe of the table ``table_name`` of the database at URI ``con`` (``columns=``
    to read only some), partitioned on ``index_col`` as in ``read_sql_query``."""
    sa = _sqlalchemy()
    _check_con(con)
    if not isinstance(table_name, str):
        raise TypeError(f"table_name must be a string, got {type(table_name).__name__}")
    engine = _engine(con, engine_kwargs)
    try:
        table = sa.Table(table_name, sa.MetaData(), autoload_with=engine, schema=schema)
    except sa.exc.NoSuchTableError:
        raise KeyError(f"no table {table_name!r} in {con}") from None
    finally:
        engine.dispose()
    name = index_col if isinstance(index_col, str) else index_col.name
    if name not in table.c:
        raise KeyError(f"index_col {name!r} is not a column of {table_name!r}")
    if columns is None:
        cols = list(table.c)
    else:
        missing = [c for c in columns if (c if isinstance(c, str) else c.name) not in table.c]
        if missing:
            raise KeyError(f"columns not in {table_name!r}: {missing}")
        cols = [table.c[c if isinstance(c, str) else c.name] for c in columns]
        if name not in [c.name for c in cols]:
            cols = [table.c[name]] + cols
    return read_sql_query(sa.select(*cols), con, name, divisions=divisions,
                          npartitions=npartitions, limits=limits,
                          bytes_per_chunk=bytes_per_chunk, head_rows=head_rows, meta=meta,
                          engine_kwargs=engine_kwargs, **kwargs)


def read_sql(sql, con, index_col, **kwargs):
    """``read_sql_table`` for a table name, ``read_sql_query`` for a SQLAlchemy Select."""
    if isinstance(sql, str):
        return read_sql_table(sql, con, index_col, **kwargs)
    return read_sql_query(sql, con, index_col, **kwargs)


def _write(part, previous, name, uri, if_exists, index, engine_kwargs, kwargs):
    engine = _engine(uri, engine_kwargs)
    try:
        part.to_sql(name, engine, if_exists=if_exists, index=index, **kwargs)
    finally:
        engine.dispose()
    return len(part)


def to_sql(df, name, uri, if_exists="fail", index=True, compute=True, engine_kwargs=None,
           **kwargs):
    """Writes the frame's partitions into the table ``name`` at URI ``uri``, one after the
    other (the first with ``if_exists``, the rest appending), as Dask's ``to_sql``; returns
    the rows written (or a Delayed with ``compute=False``)."""
    _sqlalchemy()
    _check_con(uri)
    if if_exists not in ("fail", "replace", "append"):
        raise ValueError(f"if_exists must be 'fail', 'replace' or 'append', got {if_exists!r}")
    from oxidask.delayed import delayed

    write = delayed(_write, pure=False)
    previous, counts = None, []
    for i, h in enumerate(df._handles()):
        # Each write waits for the one before (``previous``): one writer at a time.
        previous = write(h, previous, name, uri, if_exists if i == 0 else "append", index,
                         engine_kwargs, kwargs)
        counts.append(previous)
    result = delayed(_total, pure=True)(*counts)
    return result.compute() if compute else result


def _total(*counts):
    return int(sum(counts))
