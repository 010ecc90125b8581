"""oxidask: Dask's API on a Rust engine.

``import oxidask as dask`` is enough for the delayed API::

    >>> import oxidask as dask
    >>> @dask.delayed
    ... def inc(x):
    ...     return x + 1
    >>> total = dask.delayed(sum)([inc(i) for i in range(10)])
    >>> total.compute()
    55

Futures and clusters live in :mod:`oxidask.distributed`, as in Dask.
"""

from oxidask._oxidask import Delayed, __version__
from oxidask import config
from oxidask.base import compute, get, is_dask_collection, persist, tokenize, visualize
from oxidask.delayed import delayed

__all__ = [
    "Delayed",
    "__version__",
    "compute",
    "config",
    "delayed",
    "get",
    "is_dask_collection",
    "persist",
    "tokenize",
    "visualize",
]
