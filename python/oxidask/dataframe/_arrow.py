"""Partitions between the Rust engine and pandas, through Arrow IPC and pyarrow.

The engine writes a partition as one Arrow IPC file into a buffer that Python sees without a
copy; pyarrow maps the columns over that buffer (no copy) and ``to_pandas`` builds the pandas
frame (numeric columns without nulls are one copy into pandas' blocks; strings become pandas'
string dtype). The other way, a pandas result becomes an IPC file the engine reads.
"""

import pandas as pd

try:
    import pyarrow as pa
    import pyarrow.ipc as ipc
except ImportError:  # pragma: no cover - pyarrow is a requirement of oxidask.dataframe
    pa = None

_SEP = "\x1f"


def _need_pyarrow():
    if pa is None:
        raise ImportError(
            "oxidask.dataframe needs pyarrow to move partitions to pandas: pip install pyarrow"
        )


def ipc_to_pandas(buf, index):
    """The pandas DataFrame of an Arrow IPC file; ``index`` names the columns (joined by
    ``\\x1f``) that become its index, or is empty/None."""
    _need_pyarrow()
    table = ipc.open_file(pa.py_buffer(buf)).read_all()
    df = table.to_pandas()
    if index:
        df = df.set_index(index.split(_SEP))
    return df


def pandas_to_ipc(obj):
    """An Arrow IPC file (bytes) of a pandas DataFrame or Series; a named or non-default
    index becomes leading columns, a default ``RangeIndex`` is dropped."""
    _need_pyarrow()
    if isinstance(obj, pd.Series):
        obj = obj.to_frame(name=obj.name if obj.name is not None else "__series__")
    if not isinstance(obj, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame or Series, got {type(obj).__name__}")
    idx = obj.index
    keep = not (isinstance(idx, pd.RangeIndex) and idx.name is None)
    if keep:
        obj = obj.reset_index()
    obj.columns = [str(c) for c in obj.columns]
    table = pa.Table.from_pandas(obj, preserve_index=False)
    sink = pa.BufferOutputStream()
    with ipc.new_file(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue()
