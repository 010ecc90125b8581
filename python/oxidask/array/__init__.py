"""``oxidask.array``: Dask's array (``import oxidask.array as da``) on oxidask's Rust arrays.

Arrays are lazy and chunked; operations build graphs of registered Rust kernels (stock
workers run them), ``compute()`` returns ``numpy.ndarray``\\ s::

    >>> import oxidask.array as da
    >>> x = da.random.random((1000, 1000), chunks=(250, 250))
    >>> y = (x + x.T).mean(axis=0)
    >>> y.shape
    (1000,)

Supported dtypes: float64, float32, int64, int32, uint8 and bool (complex results of
``da.fft`` and of complex arithmetic keep NumPy blocks in Python tasks). NumPy ufuncs
(``np.sqrt(x)``) and functions (``np.sum(x)``, ``np.concatenate``) work on arrays through
NumPy's protocols; what the engine cannot compute raises ``NotImplementedError`` naming it.
"""

from oxidask.array import fft, linalg, random
from oxidask.array.blockwise import map_blocks, map_overlap, overlap
from oxidask.array.core import (
    Array,
    arange,
    array,
    asarray,
    dot,
    elemwise,
    empty,
    empty_like,
    eye,
    from_array,
    from_delayed,
    from_npy,
    from_zarr,
    full,
    full_like,
    linspace,
    matmul,
    normalize_chunks,
    ones,
    ones_like,
    outer,
    tensordot,
    to_npy,
    to_zarr,
    zeros,
    zeros_like,
)
from oxidask.array.routines import *  # noqa: F401,F403 (NumPy's function names)
from oxidask.array.routines import (  # noqa: F401 (shadowing builtins on purpose, as Dask)
    abs,
    all,
    any,
    max,
    min,
    round,
    sum,
)


def asanyarray(a, dtype=None, chunks="auto", **kwargs):
    """Same as :func:`asarray`."""
    return asarray(a, dtype=dtype, chunks=chunks)


def compute(*args, **kwargs):
    """:func:`oxidask.compute`."""
    from oxidask import compute as _compute

    return _compute(*args, **kwargs)
