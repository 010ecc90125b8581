"""Repartitioning by size (Dask's ``repartition(partition_size=...)``).

The partitions' in-memory sizes are measured first (this computes the frame, as Dask's does),
partitions larger than the target are cut into equal row ranges, and neighbouring pieces are
joined while they fit, so each new partition holds about ``partition_size`` bytes.

>>> import pandas as pd
>>> import oxidask.dataframe as dd
>>> df = dd.from_pandas(pd.DataFrame({"x": range(10_000)}), npartitions=2)
>>> df.repartition(partition_size="25kB").npartitions
4
"""

import math


def _memory(part):
    return int(part.memory_usage(deep=True, index=True).sum())


def _rows(part):
    return len(part)


def _piece(part, start, stop):
    return part.iloc[start:stop]


def _join(pieces):
    import pandas as pd

    return pd.concat(pieces) if len(pieces) > 1 else pieces[0]


def plan(sizes, rows, target):
    """New partitions as lists of ``(partition, start_row, stop_row)`` pieces: partitions
    over ``target`` bytes cut into equal row ranges, then neighbours joined while their
    total stays within ``target``."""
    pieces = []
    for i, (size, n) in enumerate(zip(sizes, rows)):
        k = max(1, min(n, math.ceil(size / target))) if n else 1
        bounds = [round(j * n / k) for j in range(k + 1)]
        per = size / k
        pieces.extend((i, a, b, per) for a, b in zip(bounds, bounds[1:]))
    out, current, total = [], [], 0.0
    for i, a, b, size in pieces:
        if current and total + size > target:
            out.append(current)
            current, total = [], 0.0
        current.append((i, a, b))
        total += size
    if current:
        out.append(current)
    return out


def by_size(frame, partition_size):
    """``frame`` repartitioned into pieces of about ``partition_size`` bytes (an int or a
    string such as ``"100MB"``)."""
    from oxidask import base
    from oxidask.dataframe.io import _from_results
    from oxidask.delayed import delayed
    from oxidask.utils import parse_bytes

    target = parse_bytes(partition_size) if isinstance(partition_size, str) else partition_size
    if not isinstance(target, (int, float)) or target <= 0:
        raise ValueError(f"partition_size must be a positive size, got {partition_size!r}")
    handles = list(frame._handles())
    measured = base.compute(*[delayed(_memory)(h) for h in handles],
                            *[delayed(_rows)(h) for h in handles])
    sizes, rows = measured[: len(handles)], measured[len(handles):]
    piece, join = delayed(_piece, pure=True), delayed(_join, pure=True)
    parts = [join([piece(handles[i], a, b) for i, a, b in group])
             for group in plan(sizes, rows, target)]
    return _from_results(parts, frame._meta)
