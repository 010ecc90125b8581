"""``oxidask.dataframe``: Dask's DataFrame (``import oxidask.dataframe as dd``) on oxidask's
Rust dataframes (Polars partitions).

Frames are lazy and partitioned; column expressions, filters, reductions, groupbys, joins and
sorts are the engine's registered operations (stock workers run them, one Polars query per
partition where possible); ``compute()`` returns pandas objects::

    >>> import pandas as pd
    >>> import oxidask.dataframe as dd
    >>> df = dd.from_pandas(pd.DataFrame({"k": ["a", "b", "a"], "x": [1, 2, 3]}), npartitions=2)
    >>> df.groupby("k").x.sum().compute().sort_index().tolist()
    [4, 2]

Partitions reach pandas through Arrow IPC and pyarrow (a requirement of this module).
Polars users pass Polars in with :func:`from_polars` and get Polars out with
``compute(engine="polars")`` (or ``DataFrame.to_polars()``). :func:`read_json` reads JSON
(lines) files, local or ``s3://``, with pandas in a task per file or block.
"""

from oxidask.dataframe.aggregation import Aggregation
from oxidask.dataframe.core import DataFrame, Scalar, Series
from oxidask.dataframe.groupby import GroupBy
from oxidask.dataframe.io import (
    concat,
    from_delayed,
    from_dict,
    from_pandas,
    from_polars,
    read_csv,
    read_json,
    read_parquet,
)
from oxidask.dataframe.sql import read_sql, read_sql_query, read_sql_table, to_sql


def compute(*args, **kwargs):
    """``oxidask.compute`` (as ``dask.dataframe`` re-exports it)."""
    from oxidask import base

    return base.compute(*args, **kwargs)


__all__ = [
    "Aggregation",
    "DataFrame",
    "GroupBy",
    "Scalar",
    "Series",
    "compute",
    "concat",
    "from_delayed",
    "from_dict",
    "from_pandas",
    "from_polars",
    "read_csv",
    "read_json",
    "read_parquet",
    "read_sql",
    "read_sql_query",
    "read_sql_table",
    "to_sql",
]
