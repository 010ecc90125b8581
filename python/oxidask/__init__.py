"""oxidask: Dask's API on a Rust engine.

``import oxidask as dask`` is enough for the delayed API::

    >>> import oxidask as dask
    >>> @dask.delayed
    ... def inc(x):
    ...     return x + 1
    >>> total = dask.delayed(sum)([inc(i) for i in range(10)])
    >>> total.compute()
    55

Futures and clusters live in :mod:`oxidask.distributed`, and bags (parallel lists of Python
objects) in :mod:`oxidask.bag` (``import oxidask.bag as db``), as in Dask.
"""

import atexit as _atexit

from oxidask._oxidask import Delayed, __version__, registered_ops, rust_call
from oxidask._oxidask import at_exit as _at_exit
from oxidask import config
from oxidask.base import compute, get, is_dask_collection, persist, tokenize, visualize
from oxidask.delayed import delayed

# Rust threads still running Python tasks finish before the interpreter goes away.
_atexit.register(_at_exit)

__all__ = [
    "Delayed",
    "__version__",
    "compute",
    "config",
    "delayed",
    "get",
    "is_dask_collection",
    "persist",
    "registered_ops",
    "rust_call",
    "tokenize",
    "visualize",
]
