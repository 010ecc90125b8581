"""How many bytes a Python object holds, for the workers' memory accounting (Dask's
``sizeof``): exact for buffers (NumPy, Arrow, pandas, Polars), estimated from a sample for
containers, ``sys.getsizeof`` otherwise."""

import sys
from itertools import islice

_SAMPLE = 10


def sizeof(obj):
    """Bytes held by ``obj`` (never negative)."""
    try:
        return max(int(_sizeof(obj)), 0)
    except Exception:
        return sys.getsizeof(obj, 64)


def _sizeof(obj):
    t = type(obj)
    if t in (bytes, bytearray):
        return len(obj) + 33
    if t is memoryview:
        return obj.nbytes + 184
    if t in (list, tuple, set, frozenset):
        n = len(obj)
        base = sys.getsizeof(obj)
        if n == 0:
            return base
        sample = list(islice(iter(obj), _SAMPLE))
        return base + int(sum(map(sizeof, sample)) * n / len(sample))
    if t is dict:
        n = len(obj)
        base = sys.getsizeof(obj)
        if n == 0:
            return base
        sample = list(islice(iter(obj.items()), _SAMPLE))
        items = sum(sizeof(k) + sizeof(v) for k, v in sample)
        return base + int(items * n / len(sample))
    module = t.__module__.split(".", 1)[0]
    if module == "numpy":
        return getattr(obj, "nbytes", 0) + 112
    if module == "pandas":
        usage = obj.memory_usage(deep=True)
        return int(usage.sum()) if hasattr(usage, "sum") else int(usage)
    if module == "polars":
        return int(obj.estimated_size())
    if module == "pyarrow":
        return int(getattr(obj, "nbytes", 0)) + 64
    return sys.getsizeof(obj)
