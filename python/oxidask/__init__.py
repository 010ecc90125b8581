"""oxidask: Dask's API on a Rust engine.

``import oxidask as dask`` is enough for the delayed API::

    >>> import oxidask as dask
    >>> @dask.delayed
    ... def inc(x):
    ...     return x + 1
    >>> total = dask.delayed(sum)([inc(i) for i in range(10)])
    >>> total.compute()
    55

Futures and clusters live in :mod:`oxidask.distributed`, bags (parallel lists of Python
objects) in :mod:`oxidask.bag` (``import oxidask.bag as db``) and chunked n-dimensional arrays
in :mod:`oxidask.array` (``import oxidask.array as da``; ``oxidask.bag`` and ``oxidask.array``
also work after ``import oxidask``, imported on first use), as in Dask.
"""

import atexit as _atexit

from oxidask._oxidask import Delayed, __version__, registered_ops, rust_call
from oxidask._oxidask import at_exit as _at_exit
from oxidask import config
from oxidask.base import compute, get, is_dask_collection, persist, tokenize, visualize
from oxidask.delayed import delayed



def __getattr__(name):
    # Collections imported on first use, so `import oxidask` stays light.
    if name in ("array", "bag", "dataframe"):
        import importlib

        return importlib.import_module(f"oxidask.{name}")
    raise AttributeError(f"module 'oxidask' has no attribute {name!r}")


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
