"""``da.fft``: NumPy's FFTs on the blocks of an array, as ``dask.array.fft`` computes them.

A transform runs ``numpy.fft`` once per block, so every transformed axis must be one block
(the other axes keep their blocks); otherwise the call raises Dask's ``ValueError`` saying to
rechunk. Complex results are :class:`~oxidask.array._pyblocks.PyArray`\\ s (their blocks stay
NumPy arrays: the Rust engine holds real dtypes): they compute, give ``.real``/``.imag``/
``abs()`` as engine arrays, take arithmetic and go through the inverse transforms.
``fftfreq``/``rfftfreq`` are built lazily from ``arange``; ``fftshift``/``ifftshift`` are
rolls by half of each axis and take any chunking.

>>> import numpy as np, oxidask.array as da
>>> x = da.from_array(np.arange(8.0).reshape(2, 4), chunks=(1, 4))
>>> X = da.fft.rfft(x)
>>> X.chunks
((1, 1), (3,))
>>> np.allclose(da.fft.irfft(X, n=4).compute(), x.compute())
True
"""

import numbers

import numpy as np

from oxidask.array import _pyblocks
from oxidask.array.core import Array, _axis, arange, asarray
from oxidask.delayed import delayed

_CHUNK_ERROR = (
    "Dask array only supports taking an FFT along an axis that \n"
    "has a single chunk. An FFT operation was tried on axis {} \n"
    "which has chunks {}. To change the array's chunks use dask.Array.rechunk."
)


def _fft_block(func, kwargs, block):
    return func(block, **kwargs)


def _as_array(a):
    if isinstance(a, Array):
        return a
    return asarray(a)


def _out_length(kind, m, n, last):
    """Length of a transformed axis of length ``m`` (``n`` asked, or None)."""
    if kind in ("r", "ih") and last:
        return (n if n is not None else m) // 2 + 1
    if kind in ("ir", "h") and last:
        return n if n is not None else 2 * (m - 1)
    return n if n is not None else m


def _check_points(n):
    if n is not None and n < 1:
        raise ValueError(f"Invalid number of FFT data points ({n}) specified.")


def _transform(func, kind, a, lengths, axes, kwargs, name):
    """``func(a, **kwargs)`` block by block over ``axes`` (each one block), the transformed
    axes getting ``lengths``."""
    for ax in axes:
        if len(a.chunks[ax]) != 1:
            raise ValueError(_CHUNK_ERROR.format(ax, a.chunks[ax]))
    for n in lengths:
        _check_points(n)
    # NumPy's dtype and axis checks on a tiny stand-in.
    meta_kwargs = {k: v for k, v in kwargs.items() if k not in ("n", "s")}
    meta = func(np.ones((2,) * a.ndim, a.dtype), **meta_kwargs)
    chunks = list(a.chunks)
    for i, ax in enumerate(axes):
        chunks[ax] = (lengths[i],)
    grid = a.to_delayed()
    handles = [delayed(_fft_block, pure=True, name=name)(func, kwargs, grid[idx])
               for idx in np.ndindex(*a.numblocks)]
    return _pyblocks.from_tasks(handles, tuple(chunks), meta.dtype, name)


def _one_axis(func, kind):
    name = func.__name__

    def f(a, n=None, axis=-1, norm=None):
        a = _as_array(a)
        if a.ndim == 0:
            raise ValueError(f"{name}: a 0-d array has no axis to transform")
        if n is not None and not isinstance(n, numbers.Integral):
            raise TypeError(f"n must be an integer, got {type(n).__name__}")
        ax = _axis(axis, a.ndim)
        length = _out_length(kind, a.shape[ax], n, True)
        if kind in ("ir", "h") and n is None and a.shape[ax] < 2:
            raise ValueError(f"Invalid number of FFT data points ({length}) specified.")
        return _transform(func, kind, a, [length], [ax], {"n": n, "axis": ax, "norm": norm},
                          name)

    f.__name__ = f.__qualname__ = name
    f.__doc__ = (
        f"NumPy's ``fft.{name}`` along ``axis``, which must be one block (Dask's "
        f"``da.fft.{name}``; ``ValueError`` otherwise: rechunk it).\n\n"
        f"    >>> import numpy as np, oxidask.array as da\n"
        f"    >>> x = da.from_array(np.arange(12.0).reshape(3, 4), chunks=(1, 4))\n"
        f"    >>> np.allclose(da.fft.{name}(x).compute(), np.fft.{name}(np.arange(12.0)"
        f".reshape(3, 4)))\n"
        f"    True\n"
    )
    return f


def _many_axes(func, kind, default_axes):
    name = func.__name__

    def f(a, s=None, axes=default_axes, norm=None):
        a = _as_array(a)
        if axes is None:
            axes = tuple(range(a.ndim)) if s is None else tuple(range(a.ndim - len(s), a.ndim))
        axes = tuple(_axis(ax, a.ndim) for ax in axes)
        if len(set(axes)) != len(axes):
            raise ValueError(f"{name}: repeated axes {axes} are not supported by oxidask.array")
        if s is not None:
            s = tuple(s)
            if len(s) != len(axes):
                raise ValueError("Shape and axes have different lengths.")
        lengths = [
            _out_length(kind, a.shape[ax], None if s is None else s[i], i == len(axes) - 1)
            for i, ax in enumerate(axes)
        ]
        return _transform(func, kind, a, lengths, list(axes), {"s": s, "axes": axes,
                                                                "norm": norm}, name)

    f.__name__ = f.__qualname__ = name
    what = "the last two axes" if default_axes == (-2, -1) else "all axes"
    f.__doc__ = (
        f"NumPy's ``fft.{name}`` over ``axes`` ({what} by default), each one block "
        f"(Dask's ``da.fft.{name}``).\n\n"
        f"    >>> import numpy as np, oxidask.array as da\n"
        f"    >>> m = np.arange(24.0).reshape(2, 3, 4)\n"
        f"    >>> x = da.from_array(m, chunks=(1, 3, 4))\n"
        f"    >>> np.allclose(da.fft.{name}(x, axes=(1, 2)).compute(), np.fft.{name}(m, "
        f"axes=(1, 2)))\n"
        f"    True\n"
    )
    return f


fft = _one_axis(np.fft.fft, "c")
ifft = _one_axis(np.fft.ifft, "c")
rfft = _one_axis(np.fft.rfft, "r")
irfft = _one_axis(np.fft.irfft, "ir")
hfft = _one_axis(np.fft.hfft, "h")
ihfft = _one_axis(np.fft.ihfft, "ih")
fft2 = _many_axes(np.fft.fft2, "c", (-2, -1))
ifft2 = _many_axes(np.fft.ifft2, "c", (-2, -1))
rfft2 = _many_axes(np.fft.rfft2, "r", (-2, -1))
irfft2 = _many_axes(np.fft.irfft2, "ir", (-2, -1))
fftn = _many_axes(np.fft.fftn, "c", None)
ifftn = _many_axes(np.fft.ifftn, "c", None)
rfftn = _many_axes(np.fft.rfftn, "r", None)
irfftn = _many_axes(np.fft.irfftn, "ir", None)


def fftfreq(n, d=1.0, chunks="auto"):
    """The sample frequencies of an ``n``-point FFT with spacing ``d`` (NumPy's
    ``fftfreq``: equal to it to the bit), built lazily from ``arange``.

    >>> import oxidask.array as da
    >>> da.fft.fftfreq(5, d=0.5).compute()
    array([ 0. ,  0.4,  0.8, -0.8, -0.4])
    """
    n = _points(n)
    r = arange(n, chunks=chunks)
    half = (n - 1) // 2 + 1
    from oxidask.array.routines import where

    return where(r < half, r, r - n).astype(np.float64) * (1.0 / (n * d))


def rfftfreq(n, d=1.0, chunks="auto"):
    """The sample frequencies of ``rfft`` (NumPy's ``rfftfreq``), built lazily.

    >>> import oxidask.array as da
    >>> da.fft.rfftfreq(5, d=0.5).compute()
    array([0. , 0.4, 0.8])
    """
    n = _points(n)
    return arange(n // 2 + 1, chunks=chunks).astype(np.float64) * (1.0 / (n * d))


def _points(n):
    if not isinstance(n, numbers.Integral) or isinstance(n, bool):
        raise ValueError("n should be an integer")
    if n < 1:
        raise ValueError(f"Invalid number of FFT data points ({n}) specified.")
    return int(n)


def _shift(x, axes, sign, name):
    x = _as_array(x)
    if axes is None:
        axes = tuple(range(x.ndim))
    elif isinstance(axes, numbers.Integral):
        axes = (axes,)
    axes = tuple(_axis(ax, x.ndim) for ax in axes)
    if isinstance(x, _pyblocks.PyArray):
        # Complex blocks: the shifted axes made whole, NumPy's shift per block, blocks back.
        whole = x.rechunk({ax: -1 for ax in axes})
        out = _pyblocks.map_py(getattr(np.fft, name), whole, x.dtype, name, axes=axes)
        return _pyblocks.rechunk_py(out, x.chunks)
    from oxidask.array.routines import roll

    shifts = [sign * (x.shape[ax] // 2) for ax in axes]
    return roll(x, shifts, axes) if axes else x


def fftshift(x, axes=None):
    """The zero frequency moved to the middle (NumPy's ``fftshift``): a roll by half of
    each axis, on any chunking.

    >>> import oxidask.array as da
    >>> da.fft.fftshift(da.fft.fftfreq(5)).compute()
    array([-0.4, -0.2,  0. ,  0.2,  0.4])
    """
    return _shift(x, axes, 1, "fftshift")


def ifftshift(x, axes=None):
    """The inverse of :func:`fftshift`.

    >>> import oxidask.array as da
    >>> da.fft.ifftshift(da.fft.fftshift(da.arange(5))).compute()
    array([0, 1, 2, 3, 4])
    """
    return _shift(x, axes, -1, "ifftshift")


def fft_wrap(fft_func, kind=None, dtype=None):
    """A blocked version of an FFT function with NumPy's signature (Dask's ``fft_wrap``):
    ``kind`` one of ``'fft'``, ``'ifft'``, ``'rfft'``, ``'irfft'``, ``'hfft'``, ``'ihfft'``
    and their ``2``/``n`` forms (by default the function's name).

    >>> import numpy as np, oxidask.array as da
    >>> f = da.fft.fft_wrap(np.fft.fft)
    >>> f(da.ones(4, chunks=4)).real.compute()
    array([4., 0., 0., 0.])
    """
    kind = kind or fft_func.__name__
    base = kind.rstrip("2n")
    code = {"fft": "c", "ifft": "c", "rfft": "r", "irfft": "ir", "hfft": "h", "ihfft": "ih"}
    if base not in code:
        raise ValueError(f"Given unknown `kind` {kind}.")
    if kind.endswith("2"):
        return _many_axes(fft_func, code[base], (-2, -1))
    if kind.endswith("n"):
        return _many_axes(fft_func, code[base], None)
    return _one_axis(fft_func, code[base])


__all__ = [
    "fft", "fft2", "fft_wrap", "fftfreq", "fftn", "fftshift", "hfft", "ifft", "ifft2",
    "ifftn", "ifftshift", "ihfft", "irfft", "irfft2", "irfftn", "rfft", "rfft2", "rfftfreq",
    "rfftn",
]
