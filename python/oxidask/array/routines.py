"""Functions over arrays (``da.sum``, ``da.concatenate``, ``da.where`` …), Dask's and NumPy's
names; NumPy's own functions reach them through ``Array.__array_function__``."""

import builtins as _b
import math
import numbers

import numpy as np

from oxidask.array.core import (
    Array,
    ArrayNode,
    _axis,
    _dtype,
    _meta_of,
    _no_out,
    _operand,
    _tup,
    _UNARY,
    _as_bool,
    asarray,
    dot,
    elemwise,
    empty_like,
    full,
    full_like,
    matmul,
    ones_like,
    outer,
    tensordot,
    zeros_like,
)

def where(condition, x=None, y=None):
    """``x`` where ``condition`` is true, else ``y`` (broadcast; NumPy's dtype rules)."""
    if x is None and y is None:
        raise NotImplementedError("where(condition) (nonzero) is not supported by oxidask.array")
    cond = _operand(condition)
    if not isinstance(cond, Array):
        return x if bool(cond) else y
    cond = _as_bool(cond)
    ox, oy = _operand(x), _operand(y)
    dt = np.result_type(_meta_of(ox), _meta_of(oy))
    _dtype(dt)
    arrays = [a for a in (cond, ox, oy) if isinstance(a, Array)]
    try:
        shape = np.broadcast_shapes(*[a.shape for a in arrays])
    except ValueError:
        raise ValueError(
            "operands could not be broadcast together with shapes "
            + " ".join(_tup(a.shape) for a in arrays)
        ) from None

    def arr(v):
        if isinstance(v, Array):
            return v.astype(dt)
        return full((), v, dtype=dt)

    node = cond._node.where_(arr(ox)._node, arr(oy)._node)
    out = Array(node)
    if out.shape != tuple(shape):  # pragma: no cover
        raise ValueError(f"where: shapes {[a.shape for a in arrays]}")
    return out


# --------------------------------------------------------------------------------------------
# functions over arrays


def _reduction(kind):
    def f(a, axis=None, dtype=None, keepdims=False, split_every=None, out=None, **kwargs):
        a = asarray(a)
        method = getattr(a, kind)
        if kind in ("min", "max", "any", "all", "argmin", "argmax"):
            return method(axis=axis, keepdims=keepdims, split_every=split_every, out=out)
        return method(axis=axis, dtype=dtype, keepdims=keepdims, split_every=split_every, out=out)

    f.__name__ = kind
    f.__doc__ = f"NumPy's ``{kind}`` as a lazy tree reduction (``axis``, ``keepdims``)."
    return f


sum = _reduction("sum")
prod = _reduction("prod")
mean = _reduction("mean")
min = _reduction("min")
max = _reduction("max")
any = _reduction("any")
all = _reduction("all")
argmin = _reduction("argmin")
argmax = _reduction("argmax")
amin = min
amax = max


def var(a, axis=None, dtype=None, keepdims=False, ddof=0, split_every=None, out=None):
    """Variance with ``ddof`` delta degrees of freedom."""
    return asarray(a).var(axis=axis, dtype=dtype, keepdims=keepdims, ddof=ddof,
                          split_every=split_every, out=out)


def std(a, axis=None, dtype=None, keepdims=False, ddof=0, split_every=None, out=None):
    """Standard deviation with ``ddof`` delta degrees of freedom."""
    return asarray(a).std(axis=axis, dtype=dtype, keepdims=keepdims, ddof=ddof,
                          split_every=split_every, out=out)


def nansum(a, axis=None, dtype=None, keepdims=False, split_every=None, out=None):
    """Sum treating NaN as zero."""
    _no_out(out)
    return asarray(a)._reduce("nansum", axis, keepdims, split_every, dtype=dtype)


def nanmean(a, axis=None, dtype=None, keepdims=False, split_every=None, out=None):
    """Mean ignoring NaN."""
    _no_out(out)
    return asarray(a)._reduce("nanmean", axis, keepdims, split_every, dtype=dtype)


def cumsum(x, axis=None, dtype=None, out=None):
    """Cumulative sum along ``axis``."""
    return asarray(x).cumsum(axis=axis, dtype=dtype, out=out)


def topk(a, k, axis=-1, split_every=None):
    """The ``k`` largest elements along ``axis`` (Dask's ``topk``)."""
    return asarray(a).topk(k, axis=axis, split_every=split_every)


def transpose(a, axes=None):
    """Axes reversed or permuted."""
    return asarray(a).transpose(axes)


def swapaxes(a, axis1, axis2):
    """Two axes exchanged."""
    a = asarray(a)
    perm = list(range(a.ndim))
    i, j = _axis(axis1, a.ndim), _axis(axis2, a.ndim)
    perm[i], perm[j] = perm[j], perm[i]
    return a.transpose(perm)


def moveaxis(a, source, destination):
    """An axis moved to another position."""
    a = asarray(a)
    s, d = _axis(source, a.ndim), _axis(destination, a.ndim)
    order = [n for n in range(a.ndim) if n != s]
    order.insert(d, s)
    return a.transpose(order)


def reshape(a, shape, merge_chunks=True, limit=None):
    """The array with a new shape."""
    return asarray(a).reshape(shape)


def ravel(a):
    """The array flattened."""
    return asarray(a).ravel()


def squeeze(a, axis=None):
    """Length-1 axes removed."""
    a = asarray(a)
    if axis is None:
        axes = [i for i, n in enumerate(a.shape) if n == 1]
    else:
        axes = [_axis(x, a.ndim) for x in (axis if isinstance(axis, (tuple, list)) else [axis])]
        for x in axes:
            if a.shape[x] != 1:
                raise ValueError("cannot select an axis to squeeze out which has size not equal to one")
    index = tuple(0 if i in axes else slice(None) for i in range(a.ndim))
    return a[index]


def expand_dims(a, axis):
    """A length-1 axis inserted at ``axis``."""
    a = asarray(a)
    axes = axis if isinstance(axis, (tuple, list)) else [axis]
    nd = a.ndim + len(axes)
    axes = sorted(_axis(x, nd) for x in axes)
    index = []
    it = iter(range(a.ndim))
    for i in range(nd):
        if i in axes:
            index.append(None)
        else:
            next(it)
            index.append(slice(None))
    return a[tuple(index)]


def atleast_1d(*arys):
    """The arrays with at least one dimension."""
    out = [asarray(a) if asarray(a).ndim >= 1 else asarray(a)[None] for a in arys]
    return out[0] if len(out) == 1 else out


def atleast_2d(*arys):
    """The arrays with at least two dimensions."""
    out = []
    for a in arys:
        a = asarray(a)
        if a.ndim == 0:
            a = a[None, None]
        elif a.ndim == 1:
            a = a[None, :]
        out.append(a)
    return out[0] if len(out) == 1 else out


def _common(arrays):
    arrays = [asarray(a) for a in arrays]
    if not arrays:
        raise ValueError("need at least one array to concatenate")
    dt = np.result_type(*[a.dtype for a in arrays])
    _dtype(dt)
    return [a.astype(dt) for a in arrays]


def concatenate(seq, axis=0, allow_unknown_chunksizes=False):
    """Arrays joined along an existing axis."""
    arrays = _common(seq)
    nd = arrays[0].ndim
    if nd == 0:
        raise ValueError("zero-dimensional arrays cannot be concatenated")
    ax = _axis(axis, nd)
    for a in arrays[1:]:
        if a.ndim != nd:
            raise ValueError(
                "all the input array dimensions except for the concatenation axis must match "
                f"exactly, but arrays have {nd} and {a.ndim} dimensions"
            )
        if _b.any(a.shape[i] != arrays[0].shape[i] for i in range(nd) if i != ax):
            raise ValueError(
                "all the input array dimensions except for the concatenation axis must match "
                f"exactly: shapes {arrays[0].shape} and {a.shape} along axis {ax}"
            )
    if len(arrays) == 1:
        return arrays[0]
    return Array(ArrayNode.concatenate([a._known() for a in arrays], ax))


def stack(seq, axis=0, allow_unknown_chunksizes=False):
    """Arrays of one shape joined along a new axis."""
    arrays = _common(seq)
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise ValueError("all input arrays must have the same shape")
    ax = _axis(axis, arrays[0].ndim + 1)
    return Array(ArrayNode.stack([a._known() for a in arrays], ax))


def vstack(tup, allow_unknown_chunksizes=False):
    """Arrays stacked along the first axis (1-d arrays as rows)."""
    return concatenate(atleast_2d(*tup) if len(tup) > 1 else [atleast_2d(tup[0])], axis=0)


def hstack(tup, allow_unknown_chunksizes=False):
    """Arrays stacked along the second axis (1-d arrays joined)."""
    arrays = [asarray(a) for a in tup]
    if _b.all(a.ndim == 1 for a in arrays):
        return concatenate(arrays, axis=0)
    return concatenate(arrays, axis=1)


def dstack(tup, allow_unknown_chunksizes=False):
    """Arrays stacked along the third axis."""
    return stack(tup, axis=-1) if _b.all(asarray(a).ndim == 2 for a in tup) else concatenate(tup, axis=2)


def block(arrays):
    """Arrays assembled from nested lists of blocks (NumPy's ``block``)."""
    def depth(x):
        return 1 + depth(x[0]) if isinstance(x, list) else 0

    d = depth(arrays)

    def go(x, level):
        if not isinstance(x, list):
            return asarray(x)
        parts = [go(p, level + 1) for p in x]
        return concatenate(parts, axis=-(d - level))

    return go(arrays, 0)


def clip(a, a_min=None, a_max=None, **kwargs):
    """Values limited to ``[a_min, a_max]``."""
    a = asarray(a)
    if a_min is not None:
        a = elemwise(np.maximum, a, a_min)
    if a_max is not None:
        a = elemwise(np.minimum, a, a_max)
    return a


def round(a, decimals=0):
    """Rounded to ``decimals`` decimals (ties to even, as NumPy)."""
    a = asarray(a)
    if a.dtype.kind in "iub":
        return a
    if decimals == 0:
        return np.rint(a)
    f = 10.0 ** decimals
    return np.rint(a * f) / f


around = round


def isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """Elementwise ``|a - b| <= atol + rtol * |b|``."""
    a, b = _operand(a), _operand(b)
    out = _b.abs(a - b) <= atol + rtol * _b.abs(b)
    if equal_nan:
        out = out | (np.isnan(a) & np.isnan(b))
    return out


def allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """Whether every element is close (lazy 0-d bool array, as Dask)."""
    return isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan).all()


def array_equal(a1, a2):
    """Whether the arrays have the same shape and elements (computes)."""
    a1, a2 = asarray(a1), asarray(a2)
    if a1.shape != a2.shape:
        return False
    return bool((a1 == a2).all().compute())


def rechunk(x, chunks="auto", threshold=None, block_size_limit=None, balance=False):
    """Same values, other blocks."""
    return asarray(x).rechunk(chunks, block_size_limit=block_size_limit)


def ptp(a, axis=None, keepdims=False):
    """Range of values (maximum minus minimum) along ``axis``."""
    a = asarray(a)
    return a.max(axis=axis, keepdims=keepdims) - a.min(axis=axis, keepdims=keepdims)


def count_nonzero(a, axis=None):
    """Number of non-zero elements along ``axis``."""
    return (asarray(a) != 0).sum(axis=axis)


def average(a, axis=None, weights=None, returned=False, keepdims=False):
    """Weighted mean along ``axis`` (NumPy's ``average``)."""
    a = asarray(a)
    if weights is None:
        avg = a.mean(axis=axis, keepdims=keepdims)
        scl = full_like(avg, a.size / _b.max(avg.size, 1), dtype=avg.dtype)
    else:
        w = asarray(weights)
        if w.shape != a.shape:
            if axis is None or w.ndim != 1 or w.shape[0] != a.shape[axis]:
                raise ValueError("weights must have the shape of a, or be 1-d along axis")
            shape = [1] * a.ndim
            shape[_axis(axis, a.ndim)] = w.shape[0]
            w = w.reshape(shape)
        dt = np.result_type(a.dtype, w.dtype, np.float64 if a.dtype.kind in "iub" else a.dtype)
        scl = (w + 0 * a).astype(dt).sum(axis=axis, keepdims=keepdims)
        avg = (a.astype(dt) * w.astype(dt)).sum(axis=axis, keepdims=keepdims) / scl
    return (avg, scl) if returned else avg


def diff(a, n=1, axis=-1, prepend=None, append=None):
    """``n``-th discrete difference along ``axis``."""
    a = asarray(a)
    ax = _axis(axis, a.ndim)
    parts = []
    for extra, first in ((prepend, True), (append, False)):
        if extra is None:
            continue
        e = asarray(extra)
        if e.ndim == 0:
            shape = list(a.shape)
            shape[ax] = 1
            e = full(tuple(shape), e.compute()[()] if isinstance(e, Array) else e, dtype=a.dtype)
        parts.append((first, e))
    if parts:
        seq = [e for f, e in parts if f] + [a] + [e for f, e in parts if not f]
        a = concatenate(seq, axis=ax)
    for _ in range(n):
        hi = [slice(None)] * a.ndim
        lo = [slice(None)] * a.ndim
        hi[ax] = slice(1, None)
        lo[ax] = slice(None, -1)
        a = a[tuple(hi)] - a[tuple(lo)]
    return a


def flip(m, axis=None):
    """Elements reversed along ``axis`` (all axes when ``None``)."""
    m = asarray(m)
    axes = range(m.ndim) if axis is None else [
        _axis(x, m.ndim) for x in (axis if isinstance(axis, (tuple, list)) else [axis])
    ]
    index = [slice(None)] * m.ndim
    for x in axes:
        index[x] = slice(None, None, -1)
    return m[tuple(index)]


def flipud(m):
    """Rows reversed."""
    return flip(m, 0)


def fliplr(m):
    """Columns reversed."""
    return flip(m, 1)


def roll(a, shift, axis=None):
    """Elements shifted along ``axis`` with wrap-around (NumPy's ``roll``)."""
    a = asarray(a)
    if axis is None:
        return roll(a.ravel(), shift, 0).reshape(a.shape)
    shifts = shift if isinstance(shift, (tuple, list)) else [shift]
    axes = axis if isinstance(axis, (tuple, list)) else [axis]
    if len(shifts) == 1 and len(axes) > 1:
        shifts = shifts * len(axes)
    for s, ax in zip(shifts, axes):
        ax = _axis(ax, a.ndim)
        n = a.shape[ax]
        if n == 0:
            continue
        s = int(s) % n
        if s == 0:
            continue
        head = [slice(None)] * a.ndim
        tail = [slice(None)] * a.ndim
        head[ax] = slice(n - s, None)
        tail[ax] = slice(None, n - s)
        a = concatenate([a[tuple(head)], a[tuple(tail)]], axis=ax)
    return a


def _tri_mask(shape, k, lower, chunks):
    from oxidask.array.core import arange

    rows = arange(shape[0], chunks=(chunks[0],))[:, None]
    cols = arange(shape[1], chunks=(chunks[1],))[None, :]
    return (cols - rows <= k) if lower else (cols - rows >= k)


def tril(m, k=0):
    """The lower triangle (elements above the ``k``-th diagonal zeroed)."""
    m = asarray(m)
    mask = _tri_mask(m.shape[-2:], k, True, m.chunks[-2:])
    return where(mask, m, _zero_of(m))


def triu(m, k=0):
    """The upper triangle (elements below the ``k``-th diagonal zeroed)."""
    m = asarray(m)
    mask = _tri_mask(m.shape[-2:], k, False, m.chunks[-2:])
    return where(mask, m, _zero_of(m))


def _zero_of(m):
    return np.zeros((), dtype=m.dtype)[()]


def _nanfill(a, value):
    return where(np.isnan(a), value, a) if a.dtype.kind == "f" else a


def nanmin(a, axis=None, keepdims=False, split_every=None):
    """Minimum ignoring NaN (NaN where a slice is all NaN, as NumPy, which also warns)."""
    a = asarray(a)
    out = _nanfill(a, np.inf).min(axis=axis, keepdims=keepdims, split_every=split_every)
    if a.dtype.kind != "f":
        return out
    return where(np.isnan(a).all(axis=axis, keepdims=keepdims), np.nan, out)


def nanmax(a, axis=None, keepdims=False, split_every=None):
    """Maximum ignoring NaN."""
    a = asarray(a)
    out = _nanfill(a, -np.inf).max(axis=axis, keepdims=keepdims, split_every=split_every)
    if a.dtype.kind != "f":
        return out
    return where(np.isnan(a).all(axis=axis, keepdims=keepdims), np.nan, out)


def nanvar(a, axis=None, dtype=None, keepdims=False, ddof=0, split_every=None):
    """Variance ignoring NaN (two passes: the mean, then the squared deviations)."""
    a = asarray(a)
    if dtype is not None:
        a = a.astype(dtype)
    if a.dtype.kind != "f":
        return a.var(axis=axis, keepdims=keepdims, ddof=ddof)
    ok = ~np.isnan(a)
    count = ok.sum(axis=axis, keepdims=True)
    mean = nanmean(a, axis=axis, keepdims=True)
    dev = where(ok, (a - mean) ** 2, 0)
    out = dev.sum(axis=axis, keepdims=True) / (count - ddof)
    out = where(count - ddof > 0, out, np.nan)  # NumPy: NaN (with a warning) without data
    if not keepdims:
        out = squeeze(out, axis=tuple(range(a.ndim)) if axis is None else axis)
    return out.astype(a.dtype)


def nanstd(a, axis=None, dtype=None, keepdims=False, ddof=0, split_every=None):
    """Standard deviation ignoring NaN."""
    return np.sqrt(nanvar(a, axis=axis, dtype=dtype, keepdims=keepdims, ddof=ddof))


def histogram(a, bins=10, range=None, weights=None, density=False):
    """Counts of ``a`` in ``bins`` (NumPy's ``histogram``): lazy counts and the bin edges.

    The edges must be known without computing: give ``bins`` as edges, or ``range=``.
    """
    from oxidask.array.blockwise import map_blocks

    a = asarray(a)
    if np.ndim(bins) == 0:
        if range is None:
            raise ValueError("histogram needs range= or explicit bin edges (as Dask's)")
        edges = np.linspace(range[0], range[1], int(bins) + 1)
    else:
        edges = np.asarray(bins, dtype=float)
    flat = a.ravel()
    w = None if weights is None else asarray(weights).ravel().rechunk(flat.chunks)

    def block_hist(x, *ws):
        h, _ = np.histogram(x, bins=edges, weights=ws[0] if ws else None)
        return h[None, :]

    nb = len(flat.chunks[0])
    args = (flat,) if w is None else (flat, w)
    per = map_blocks(block_hist, *args, chunks=((1,) * nb, (len(edges) - 1,)),
                     new_axis=1, dtype=np.int64 if w is None else np.float64)
    counts = per.sum(axis=0)
    if density:
        db = np.diff(edges)
        counts = counts / db / counts.sum()
    return counts, edges


def _unknown_from_python(handles, dtype, label):
    """A 1-d array of unknown chunk sizes whose blocks are NumPy results of ``handles``."""
    out = Array(None, label=label, blocks=list(handles),
                chunks=((float("nan"),) * len(handles),), dtype=dtype)
    out._py_blocks = True
    return out


def _np_unique_merge(*parts):
    return np.unique(np.concatenate(parts)) if parts else np.empty(0)


def unique(ar, return_index=False, return_inverse=False, return_counts=False):
    """The sorted unique values (one block of unknown length, as Dask's)."""
    from oxidask.delayed import delayed

    if return_index or return_inverse or return_counts:
        raise NotImplementedError("unique with return_index/inverse/counts")
    ar = asarray(ar)
    parts = [delayed(np.unique, pure=True)(h) for h in ar.to_delayed().ravel()]
    merged = delayed(_np_unique_merge, pure=True)(*parts)
    return _unknown_from_python([merged], ar.dtype, "unique")


def flatnonzero(a):
    """Indices of the non-zero elements of the flattened array (unknown chunk sizes)."""
    from oxidask.array.core import arange

    a = asarray(a).ravel()
    return arange(a.shape[0], chunks=(a.chunks[0],))[a != 0]


def nonzero(a):
    """Indices of the non-zero elements, one array per axis (chunk sizes computed)."""
    a = asarray(a)
    flat = flatnonzero(a).compute_chunk_sizes()
    if a.ndim <= 1:
        return (flat,)
    out = []
    stride = 1
    strides = []
    for n in reversed(a.shape):
        strides.append(stride)
        stride *= n
    for ax, n in enumerate(a.shape):
        out.append((flat // strides[a.ndim - 1 - ax]) % n)
    return tuple(out)


def argwhere(a):
    """Indices of the non-zero elements, one row per element."""
    parts = nonzero(a)
    return stack(parts, axis=1)


def isin(element, test_elements, assume_unique=False, invert=False):
    """Whether each element is in ``test_elements`` (a small, known set of values)."""
    element = asarray(element)
    test = np.unique(np.asarray(test_elements).ravel())
    if test.size == 0:
        out = full_like(element, False, dtype=bool)
    else:
        out = (element[..., None] == test).any(axis=-1)
    return ~out if invert else out


def broadcast_to(x, shape, chunks=None):
    """``x`` repeated to ``shape`` (NumPy's broadcasting rules)."""
    x = asarray(x)
    shape = tuple(int(s) for s in shape)
    try:
        np.broadcast_shapes(x.shape, shape)
    except ValueError:
        raise ValueError(
            f"operands could not be broadcast together with remapped shapes "
            f"[original->remapped]: {x.shape} and requested shape {shape}"
        ) from None
    if np.broadcast_shapes(x.shape, shape) != shape:
        raise ValueError(f"cannot broadcast {x.shape} to {shape}")
    from oxidask.array.core import zeros

    if x.dtype == np.bool_:
        out = x | zeros(shape, dtype=bool, chunks=chunks or "auto")
    else:
        out = x + zeros(shape, dtype=x.dtype, chunks=chunks or "auto")
    return out if chunks is None else out.rechunk(chunks)


def meshgrid(*xi, indexing="xy", sparse=False):
    """Coordinate arrays from 1-d coordinate vectors (NumPy's ``meshgrid``)."""
    xi = [asarray(x).ravel() for x in xi]
    nd = len(xi)
    shaped = []
    for i, x in enumerate(xi):
        index = [None] * nd
        index[i] = slice(None)
        shaped.append(x[tuple(index)])
    if indexing == "xy" and nd > 1:
        shaped = [x.swapaxes(0, 1) for x in shaped]
    elif indexing != "ij" and indexing != "xy":
        raise ValueError("Valid values for `indexing` are 'xy' and 'ij'.")
    if sparse:
        return shaped
    shape = np.broadcast_shapes(*[x.shape for x in shaped])
    return [broadcast_to(x, shape) for x in shaped]


def indices(dimensions, dtype=int, chunks="auto"):
    """An array of grid indices (NumPy's ``indices``)."""
    from oxidask.array.core import arange

    dimensions = tuple(int(d) for d in dimensions)
    grids = []
    for i, n in enumerate(dimensions):
        index = [None] * len(dimensions)
        index[i] = slice(None)
        r = arange(n, dtype=dtype)[tuple(index)]
        grids.append(broadcast_to(r, dimensions))
    out = stack(grids) if grids else asarray(np.empty((0,), dtype=dtype))
    return out.rechunk(chunks) if chunks != "auto" else out


def repeat(a, repeats, axis=None):
    """Each element repeated ``repeats`` times along ``axis`` (an int count)."""
    from oxidask.array.blockwise import map_blocks

    a = asarray(a)
    if not isinstance(repeats, numbers.Integral):
        raise NotImplementedError("repeat with a count per element")
    if axis is None:
        a = a.ravel()
        axis = 0
    ax = _axis(axis, a.ndim)
    chunks = list(a.chunks)
    chunks[ax] = tuple(c * int(repeats) for c in chunks[ax])
    return map_blocks(np.repeat, a, int(repeats), axis=ax, chunks=tuple(chunks), dtype=a.dtype)


def tile(A, reps):
    """``A`` repeated ``reps`` times (per axis), NumPy's ``tile``."""
    A = asarray(A)
    reps = (reps,) if isinstance(reps, numbers.Integral) else tuple(reps)
    if len(reps) > A.ndim:
        A = A[(None,) * (len(reps) - A.ndim)]
    reps = (1,) * (A.ndim - len(reps)) + reps
    for ax, r in enumerate(reps):
        if r < 0:
            raise ValueError("negative dimensions are not allowed")
        if r == 0:
            index = [slice(None)] * A.ndim
            index[ax] = slice(0, 0)
            A = A[tuple(index)]
        elif r > 1:
            A = concatenate([A] * r, axis=ax)
    return A


def apply_along_axis(func1d, axis, arr, *args, dtype=None, shape=None, **kwargs):
    """``func1d`` applied to 1-d slices along ``axis`` (NumPy's ``apply_along_axis``); the
    axis is first made one block. ``shape``/``dtype`` of one result are found by calling the
    function on ones unless given."""
    from oxidask.array.blockwise import map_blocks

    arr = asarray(arr)
    ax = _axis(axis, arr.ndim)
    if shape is None or dtype is None:
        probe = np.asarray(func1d(np.ones(arr.shape[ax], dtype=arr.dtype), *args, **kwargs))
        shape = probe.shape if shape is None else shape
        dtype = probe.dtype if dtype is None else dtype
    shape = tuple(shape)
    x = arr.rechunk({ax: -1})
    chunks = list(x.chunks[:ax]) + [(n,) for n in shape] + list(x.chunks[ax + 1:])
    nd_out = arr.ndim - 1 + len(shape)

    def apply(block):
        return np.apply_along_axis(func1d, ax, block, *args, **kwargs)

    kw = {}
    if len(shape) == 0:
        kw["drop_axis"] = ax
    elif len(shape) > 1:
        kw["new_axis"] = list(range(ax + 1, ax + len(shape)))
    out = map_blocks(apply, x, dtype=dtype, chunks=tuple(chunks), **kw)
    assert out.ndim == nd_out
    return out


def diag(v, k=0):
    """A 1-d array's values on the ``k``-th diagonal of a square array, or a 2-d array's
    ``k``-th diagonal (NumPy's ``diag``)."""
    from oxidask.array.core import eye

    v = asarray(v)
    if v.ndim == 1:
        n = v.shape[0] + _b.abs(k)
        mask = eye(n, k=k, dtype=bool, chunks=n)
        if k >= 0:
            row = concatenate([_zeros_of(v, k), v]) if k else v
        else:
            row = concatenate([v, _zeros_of(v, -k)])
        return where(mask, row[None, :], _zero_of(v))
    if v.ndim == 2:
        return diagonal(v, k)
    raise ValueError("Input must be 1- or 2-d.")


def _zeros_of(v, n):
    from oxidask.array.core import zeros

    return zeros((n,), dtype=v.dtype)


def diagonal(a, offset=0, axis1=0, axis2=1):
    """The ``offset``-th diagonal of a 2-d array (NumPy's ``diagonal``)."""
    from oxidask.array.core import eye

    a = asarray(a)
    if a.ndim != 2 or (axis1, axis2) not in ((0, 1), (-2, -1), (0, -1), (-2, 1)):
        raise NotImplementedError("diagonal of 2-d arrays over their two axes")
    n, m = a.shape
    mask = eye(n, M=m, k=offset, dtype=bool, chunks=a.chunks)
    sums = where(mask, a, _zero_of(a)).sum(axis=1)
    lo, hi = _b.max(0, -offset), _b.max(0, _b.min(n, m - offset))
    if hi <= lo:
        return sums[0:0]
    return sums[lo:hi].astype(a.dtype)


def trace(a, offset=0, axis1=0, axis2=1, dtype=None):
    """Sum of the ``offset``-th diagonal."""
    d = diagonal(a, offset, axis1, axis2)
    return d.sum(dtype=dtype)


def cov(m, y=None, rowvar=True, bias=False, ddof=None):
    """Covariance matrix of variables (rows, or columns when ``rowvar=False``)."""
    x = asarray(m)
    if x.ndim == 1:
        x = x[None, :]
    if not rowvar:
        x = x.T
    if y is not None:
        yy = asarray(y)
        if yy.ndim == 1:
            yy = yy[None, :]
        if not rowvar:
            yy = yy.T
        x = concatenate([x, yy], axis=0)
    if ddof is None:
        ddof = 0 if bias else 1
    x = x.astype(np.result_type(x.dtype, np.float64))
    n = x.shape[1]
    centred = x - x.mean(axis=1, keepdims=True)
    c = (centred @ centred.T) / (n - ddof)
    return c[0, 0] if c.shape == (1, 1) else c


def corrcoef(x, y=None, rowvar=True):
    """Pearson correlation coefficients."""
    c = cov(x, y, rowvar)
    if c.ndim == 0:
        return c / c
    d = diagonal(c)
    s = np.sqrt(d)
    out = c / s[:, None] / s[None, :]
    return clip(out, -1, 1)


def digitize(x, bins, right=False):
    """Indices of the bins each value falls in (``bins`` a known 1-d sequence)."""
    from oxidask.array.blockwise import map_blocks

    bins = np.asarray(bins)
    return map_blocks(np.digitize, asarray(x), bins, right=right, dtype=np.int64)


def fromfunction(function, shape, *, dtype=float, chunks="auto", **kwargs):
    """An array whose element at index ``i`` is ``function(*i)``, called block by block on
    index arrays (NumPy's ``fromfunction``)."""
    from oxidask.array.blockwise import map_blocks
    from oxidask.array.core import normalize_chunks, zeros

    shape = tuple(int(s) for s in shape)
    norm = normalize_chunks(chunks, shape, dtype)
    base = zeros(shape, dtype=dtype, chunks=norm)

    def block(b, block_info=None):
        loc = block_info[None]["array-location"]
        idx = np.meshgrid(*[np.arange(lo, hi, dtype=dtype) for lo, hi in loc], indexing="ij")
        return np.asarray(function(*idx, **kwargs), dtype=dtype)

    return map_blocks(block, base, dtype=dtype)


def argtopk(a, k, axis=-1, split_every=None):
    """Indices of the ``k`` largest elements along ``axis`` (``k < 0``: of the ``-k``
    smallest), ordered as :func:`topk` orders the values."""
    from oxidask.array.blockwise import map_blocks

    a = asarray(a)
    ax = _axis(axis, a.ndim)
    x = a.rechunk({ax: -1})
    kk = int(k)

    def pick(b):
        if kk >= 0:
            order = np.argsort(-b, axis=ax, kind="stable")[(slice(None),) * ax + (slice(0, kk),)]
        else:
            order = np.argsort(b, axis=ax, kind="stable")[(slice(None),) * ax + (slice(0, -kk),)]
        return order.astype(np.int64)

    chunks = list(x.chunks)
    chunks[ax] = (_b.min(_b.abs(kk), a.shape[ax]),)
    return map_blocks(pick, x, dtype=np.int64, chunks=tuple(chunks))


def reduction(x, chunk, aggregate, axis=None, keepdims=False, dtype=None, split_every=None,
              combine=None, name=None, concatenate=True, output_size=1, meta=None, **kwargs):
    """A custom reduction (Dask's ``da.reduction``): ``chunk(block, axis=, keepdims=True)`` on
    every block, the partials joined along the reduced axes, then ``aggregate(partials,
    axis=, keepdims=)`` once (``combine`` is not used: one aggregation step)."""
    from oxidask.array.blockwise import map_blocks
    from oxidask.delayed import delayed

    x = asarray(x)
    axes = tuple(range(x.ndim)) if axis is None else tuple(
        _axis(a, x.ndim) for a in (axis if isinstance(axis, (tuple, list)) else [axis])
    )
    if dtype is None:
        raise ValueError("reduction needs dtype=")

    def part(b):
        return chunk(b, axis=axes, keepdims=True)

    grid = x.numblocks
    chunks = tuple(
        (1,) * grid[i] if i in axes else x.chunks[i] for i in range(x.ndim)
    )
    partials = map_blocks(part, x, dtype=dtype, chunks=chunks)
    merged = partials.rechunk({i: -1 for i in axes})

    def agg(b):
        return aggregate(b, axis=axes, keepdims=keepdims)

    out_chunks = tuple(
        c for i, c in enumerate(merged.chunks) if i not in axes or keepdims
    )
    out_chunks = tuple((1,) if i in axes else c for i, c in enumerate(merged.chunks)) \
        if keepdims else out_chunks
    kw = {} if keepdims else {"drop_axis": list(axes)}
    return map_blocks(agg, merged, dtype=dtype, chunks=out_chunks if keepdims else None, **kw)


def pad(array, pad_width, mode="constant", **kwargs):
    """The array padded on each axis (NumPy's ``pad``) with ``mode`` ``'constant'``
    (``constant_values=``), ``'edge'``, ``'reflect'``, ``'symmetric'`` or ``'wrap'``."""
    from oxidask.array.core import full

    x = asarray(array)
    widths = np.broadcast_to(np.asarray(pad_width, dtype=int), (x.ndim, 2)) \
        if np.ndim(pad_width) else np.full((x.ndim, 2), int(pad_width))
    if (widths < 0).any():
        raise ValueError("index can't contain negative values")
    const = np.broadcast_to(np.asarray(kwargs.get("constant_values", 0)), (x.ndim, 2)) \
        if np.ndim(kwargs.get("constant_values", 0)) else np.full(
            (x.ndim, 2), kwargs.get("constant_values", 0))
    for ax in range(x.ndim):
        before, after = int(widths[ax][0]), int(widths[ax][1])
        if not before and not after:
            continue
        n = x.shape[ax]

        def take(sl):
            index = [slice(None)] * x.ndim
            index[ax] = sl
            return x[tuple(index)]

        def edge_part(w, first):
            shape = list(x.shape)
            shape[ax] = w
            one = take(slice(0, 1) if first else slice(n - 1, n))
            return broadcast_to(one, tuple(shape))

        parts = []
        for w, first in ((before, True), (after, False)):
            if w == 0:
                parts.append(None)
                continue
            if mode == "constant":
                shape = list(x.shape)
                shape[ax] = w
                part = full(tuple(shape), const[ax][0 if first else 1], dtype=x.dtype)
            elif mode == "edge":
                part = edge_part(w, first)
            elif mode in ("reflect", "symmetric"):
                shift = 1 if mode == "reflect" else 0
                if w > n - shift:
                    raise NotImplementedError(f"pad {mode} wider than the axis")
                if first:
                    part = flip(take(slice(shift, shift + w)), ax)
                else:
                    part = take(slice(n - shift - w, n - shift))
                    part = flip(part, ax)
            elif mode == "wrap":
                if w > n:
                    raise NotImplementedError("pad wrap wider than the axis")
                part = take(slice(n - w, n)) if first else take(slice(0, w))
            else:
                raise NotImplementedError(f"pad mode {mode!r}")
            parts.append(part)
        seq = [p for p in (parts[0], x, parts[1]) if p is not None]
        x = concatenate(seq, axis=ax)
    return x


def store(sources, targets, lock=True, compute=True, return_stored=False, **kwargs):
    """Writes arrays into array-likes supporting ``target[slices] = block`` (NumPy arrays,
    memory maps, HDF5 datasets…), one task per block. The targets must be reachable from
    where the tasks run (the local schedulers share them with the caller)."""
    import threading

    from oxidask import base
    from oxidask.delayed import delayed

    if isinstance(sources, Array):
        sources, targets = [sources], [targets]
    if len(sources) != len(targets):
        raise ValueError(f"{len(sources)} sources and {len(targets)} targets")
    guard = threading.Lock() if lock is True else lock

    def put(target, index, block):
        if guard:
            with guard:
                target[index] = block
        else:
            target[index] = block
        return None

    tasks = []
    for src, tgt in zip(sources, targets):
        src = asarray(src)
        if tuple(np.shape(tgt)) != src.shape:
            raise ValueError(f"target shape {np.shape(tgt)} differs from source {src.shape}")
        blocks = src.to_delayed()
        bounds = [np.concatenate([[0], np.cumsum(c)]).astype(int) for c in src.chunks]
        for idx in np.ndindex(*src.numblocks):
            index = tuple(slice(int(b[i]), int(b[i + 1])) for b, i in zip(bounds, idx))
            tasks.append(delayed(put, pure=False)(tgt, index, blocks[idx]))
    if compute:
        base.compute(*tasks, **kwargs)
        return None
    return tasks


def cumprod(x, axis=None, dtype=None, out=None):
    """Cumulative product along ``axis`` (of the flattened array when ``None``): each block's
    own running product, times the product of the blocks before it."""
    from oxidask.array.blockwise import map_blocks

    _no_out(out)
    x = asarray(x)
    if dtype is not None:
        x = x.astype(dtype)
    if axis is None:
        x = x.ravel()
        axis = 0
    ax = _axis(axis, x.ndim)
    rdt = np.cumprod(np.ones(1, dtype=x.dtype)).dtype
    _dtype(rdt)
    x = x.astype(rdt)
    local = map_blocks(np.cumprod, x, axis=ax, dtype=rdt)
    nb = len(x.chunks[ax])
    if nb == 1:
        return local
    ends = np.cumsum(x.chunks[ax])

    def along(a, sl):
        index = [slice(None)] * a.ndim
        index[ax] = sl
        return a[tuple(index)]

    # The running product at the end of every block but the last, then their running product.
    lasts = concatenate([along(local, slice(int(e) - 1, int(e))) for e in ends[:-1]], axis=ax)
    carry = map_blocks(np.cumprod, lasts.rechunk({ax: -1}), axis=ax, dtype=rdt)
    pieces = [along(local, slice(0, int(ends[0])))]
    for j in range(1, nb):
        block = along(local, slice(int(ends[j - 1]), int(ends[j])))
        pieces.append(block * along(carry, slice(j - 1, j)))
    return concatenate(pieces, axis=ax)


def nancumsum(x, axis=None, dtype=None, out=None):
    """Cumulative sum treating NaN as zero."""
    x = asarray(x)
    return _nanfill(x, 0).cumsum(axis=axis, dtype=dtype, out=out)


def nancumprod(x, axis=None, dtype=None, out=None):
    """Cumulative product treating NaN as one."""
    return cumprod(_nanfill(asarray(x), 1), axis=axis, dtype=dtype, out=out)


def _unary_function(name):
    ufunc = getattr(np, name)

    def f(x, *args, **kwargs):
        return elemwise(ufunc, x, *args)

    f.__name__ = name
    f.__doc__ = f"NumPy's ``{name}``, elementwise and lazy."
    return f


for _n in list(_UNARY) + ["isinf", "trunc", "fix", "exp2", "reciprocal", "deg2rad", "rad2deg",
                          "degrees", "radians", "fabs", "invert", "logical_not", "negative",
                          "positive", "floor_divide", "true_divide", "divide", "remainder", "mod",
                          "power", "maximum", "minimum", "add", "subtract", "multiply", "equal",
                          "not_equal", "less", "less_equal", "greater", "greater_equal",
                          "logical_and", "logical_or", "logical_xor"]:
    globals()[_n] = _unary_function(_n)
abs = absolute = globals()["absolute"]

_ARRAY_FUNCTIONS = {
    np.sum: sum, np.prod: prod, np.mean: mean, np.min: min, np.max: max, np.amin: min,
    np.amax: max, np.any: any, np.all: all, np.argmin: argmin, np.argmax: argmax,
    np.var: var, np.std: std, np.nansum: nansum, np.nanmean: nanmean, np.cumsum: cumsum,
    np.transpose: transpose, np.reshape: reshape, np.ravel: ravel, np.squeeze: squeeze,
    np.expand_dims: expand_dims, np.concatenate: concatenate, np.stack: stack,
    np.vstack: vstack, np.hstack: hstack, np.where: where, np.dot: dot, np.matmul: matmul,
    np.tensordot: tensordot, np.outer: outer, np.clip: clip, np.round: round,
    np.swapaxes: swapaxes, np.moveaxis: moveaxis, np.isclose: isclose, np.allclose: allclose,
    np.array_equal: array_equal, np.block: block, np.atleast_1d: atleast_1d,
    np.atleast_2d: atleast_2d, np.ones_like: ones_like, np.zeros_like: zeros_like,
    np.full_like: full_like, np.empty_like: empty_like,
}

__all__ = [
    "abs",
    "absolute",
    "add",
    "all",
    "allclose",
    "amax",
    "amin",
    "any",
    "apply_along_axis",
    "arccos",
    "arcsin",
    "arctan",
    "argmax",
    "argmin",
    "argtopk",
    "argwhere",
    "around",
    "array_equal",
    "atleast_1d",
    "atleast_2d",
    "average",
    "block",
    "broadcast_to",
    "ceil",
    "clip",
    "concatenate",
    "corrcoef",
    "cos",
    "cosh",
    "count_nonzero",
    "cov",
    "cumprod",
    "cumsum",
    "deg2rad",
    "degrees",
    "diag",
    "diagonal",
    "diff",
    "digitize",
    "divide",
    "dot",
    "dstack",
    "empty_like",
    "equal",
    "exp",
    "exp2",
    "expand_dims",
    "expm1",
    "fabs",
    "fix",
    "flatnonzero",
    "flip",
    "fliplr",
    "flipud",
    "floor",
    "floor_divide",
    "fromfunction",
    "full_like",
    "greater",
    "greater_equal",
    "histogram",
    "hstack",
    "indices",
    "invert",
    "isclose",
    "isfinite",
    "isin",
    "isinf",
    "isnan",
    "less",
    "less_equal",
    "log",
    "log10",
    "log1p",
    "log2",
    "logical_and",
    "logical_not",
    "logical_or",
    "logical_xor",
    "matmul",
    "max",
    "maximum",
    "mean",
    "meshgrid",
    "min",
    "minimum",
    "mod",
    "moveaxis",
    "multiply",
    "nancumprod",
    "nancumsum",
    "nanmax",
    "nanmean",
    "nanmin",
    "nanstd",
    "nansum",
    "nanvar",
    "negative",
    "nonzero",
    "not_equal",
    "ones_like",
    "outer",
    "pad",
    "positive",
    "power",
    "prod",
    "ptp",
    "rad2deg",
    "radians",
    "ravel",
    "rechunk",
    "reciprocal",
    "reduction",
    "remainder",
    "repeat",
    "reshape",
    "rint",
    "roll",
    "round",
    "sign",
    "sin",
    "sinh",
    "sqrt",
    "square",
    "squeeze",
    "stack",
    "std",
    "store",
    "subtract",
    "sum",
    "swapaxes",
    "tan",
    "tanh",
    "tensordot",
    "tile",
    "topk",
    "trace",
    "transpose",
    "tril",
    "triu",
    "true_divide",
    "trunc",
    "unique",
    "var",
    "vstack",
    "where",
    "zeros_like",
]


# --------------------------------------------------------------------------------------------
# order statistics, counting and einsum (NumPy per block in Python tasks)


def _whole_axes(a, axes):
    """``a`` with the axes in ``axes`` made one block each (the others keep their blocks)."""
    return a.rechunk({ax: -1 for ax in axes}) if axes else a


def _along_axes(func, name, a, axis, keepdims, **kwargs):
    """``func(block, axis=, keepdims=)`` on ``a`` with the reduced axes whole (Dask's
    approach for ``median``): one task per block of the other axes."""
    from oxidask.array import _pyblocks
    from oxidask.delayed import delayed

    a = asarray(a)
    if axis is None:
        x = a.ravel().rechunk(-1)
        axes = (0,)
    else:
        axes = tuple(sorted({_axis(ax, a.ndim) for ax in
                             (axis if isinstance(axis, (tuple, list)) else [axis])}))
        x = _whole_axes(a, axes)
    with np.errstate(all="ignore"):
        meta = func(np.ones((1,) * x.ndim, x.dtype), axis=axes, **kwargs)
    dt = np.asarray(meta).dtype
    _dtype(dt)
    grid = x.to_delayed()
    handles = []
    for idx in np.ndindex(*x.numblocks):
        handles.append(delayed(_reduce_block, pure=True, name=name)(
            func, axes, kwargs, grid[idx]))
    chunks = tuple((1,) if i in axes else c for i, c in enumerate(x.chunks))
    out = _pyblocks.from_tasks(handles, chunks, dt, name)
    if axis is None:
        out = out.reshape(()) if not keepdims else out.reshape((1,) * a.ndim)
    elif not keepdims:
        out = out[tuple(0 if i in axes else slice(None) for i in range(x.ndim))]
    return out


def _reduce_block(func, axes, kwargs, block):
    if func is np.nanmedian and block.dtype.kind == "f":
        # All-NaN slices give NaN, as in NumPy, without its warning from a worker thread
        # (warnings filters are not thread-safe): they are filled, then set to NaN.
        empty = np.isnan(block).all(axis=axes, keepdims=True)
        if empty.any():
            out = np.asarray(func(np.where(empty, 0, block), axis=axes, keepdims=True))
            out[empty] = np.nan
            return out
    return np.asarray(func(block, axis=axes, keepdims=True, **kwargs))


def median(a, axis=None, keepdims=False, out=None, overwrite_input=False):
    """The median along ``axis`` (NumPy's ``median``), as Dask computes it: the axes reduced
    are made one block each, then NumPy's median runs on every block. ``axis=None`` takes the
    median of all elements in one task (Dask refuses it; NumPy users expect it).

    >>> import numpy as np, oxidask.array as da
    >>> x = da.from_array(np.array([[1.0, 5.0, 2.0], [4.0, 3.0, 6.0]]), chunks=1)
    >>> da.median(x, axis=1).compute()
    array([2., 4.])
    """
    _no_out(out)
    return _along_axes(np.median, "median", a, axis, keepdims)


def nanmedian(a, axis=None, keepdims=False, out=None, overwrite_input=False):
    """The median along ``axis`` ignoring NaN (NumPy's ``nanmedian``; NaN for all-NaN
    slices), computed as :func:`median` is.

    >>> import numpy as np, oxidask.array as da
    >>> x = da.from_array(np.array([[1.0, np.nan, 2.0], [4.0, 3.0, np.nan]]), chunks=1)
    >>> da.nanmedian(x, axis=1).compute()
    array([1.5, 3.5])
    """
    _no_out(out)
    return _along_axes(np.nanmedian, "nanmedian", a, axis, keepdims)


def _percentile_block(q, method, block):
    return np.asarray(np.percentile(block, q, method=method)).reshape(-1)


def percentile(a, q, method="linear", internal_method="default", **kwargs):
    """The ``q``-th percentiles of a 1-d array (Dask's ``percentile``; a 1-d result of
    ``len(q)`` values, also for one ``q``), with NumPy's ``method`` names.

    Exact, unlike Dask's default (which merges per-block percentiles approximately): the
    array is made one block and NumPy's ``percentile`` runs once, so the result equals
    NumPy's to the bit. ``internal_method`` is accepted for Dask's signature and ignored.

    >>> import numpy as np, oxidask.array as da
    >>> x = da.from_array(np.arange(101.0), chunks=25)
    >>> da.percentile(x, [10, 50, 95]).compute()
    array([10., 50., 95.])
    """
    from oxidask.array import _pyblocks
    from oxidask.delayed import delayed

    if "interpolation" in kwargs:
        method = kwargs.pop("interpolation")
    if kwargs:
        raise TypeError(f"percentile() got unexpected keyword arguments {sorted(kwargs)}")
    a = asarray(a)
    if a.ndim != 1:
        raise NotImplementedError(
            f"Percentiles only implemented for 1-d arrays (got shape {a.shape}); "
            "ravel() it, or use median along an axis"
        )
    qs = np.atleast_1d(np.asarray(q, dtype=float))
    if qs.ndim != 1:
        raise ValueError(f"q must be a scalar or a 1-d sequence, got shape {qs.shape}")
    if ((qs < 0) | (qs > 100)).any() or np.isnan(qs).any():
        raise ValueError("Percentiles must be in the range [0, 100]")
    if a.shape[0] == 0:
        raise IndexError("cannot do a non-empty take from an empty axes.")
    dt = np.percentile(np.ones(1, a.dtype), qs, method=method).dtype  # checks method too
    _dtype(dt)
    one = a.rechunk(-1).to_delayed()[0]
    h = delayed(_percentile_block, pure=True, name="percentile")(qs, method, one)
    return _pyblocks.from_tasks([h], ((len(qs),),), dt, "percentile")


def _bincount_block(minlength, x, *w):
    return np.bincount(x, weights=w[0] if w else None, minlength=minlength)


def _bincount_merge(minlength, *parts):
    n = _b.max([len(p) for p in parts] + [minlength])
    if minlength and n > minlength:
        raise ValueError(
            f"bincount: the values reach {n - 1}, beyond minlength={minlength} that fixed the "
            "result's length; give a larger minlength, or minlength=0 (length unknown until "
            "computed)"
        )
    out = np.zeros(n, dtype=parts[0].dtype if parts else np.int64)
    for p in parts:
        out[: len(p)] += p
    return out


def bincount(x, weights=None, minlength=0, split_every=None):
    """Occurrences of each non-negative integer in ``x`` (NumPy's ``bincount``): one
    ``np.bincount`` per block, then a sum. With ``minlength`` the result has that length
    (as in Dask; values reaching past it raise when computed); without, its length is
    unknown (``nan``) until computed, as in Dask.

    >>> import numpy as np, oxidask.array as da
    >>> x = da.from_array(np.array([0, 1, 1, 3, 1]), chunks=2)
    >>> da.bincount(x, minlength=4).compute()
    array([1, 3, 0, 1])
    """
    from oxidask.array import _pyblocks
    from oxidask.delayed import delayed

    x = asarray(x)
    if x.ndim != 1:
        raise ValueError(f"object too deep for desired array (bincount of shape {x.shape})")
    if x.dtype.kind not in "iub":
        raise TypeError(
            f"Cannot cast array data from dtype('{x.dtype}') to dtype('int64') according to "
            "the rule 'safe'"
        )
    minlength = int(minlength)
    if minlength < 0:
        raise ValueError("'minlength' must not be negative")
    blocks = list(x.to_delayed())
    if weights is not None:
        w = asarray(weights)
        if w.shape != x.shape:
            raise ValueError(
                f"The weights and list don't have the same length (shapes {w.shape} and "
                f"{x.shape})"
            )
        wblocks = list(w.rechunk(x.chunks).to_delayed())
        dt = np.bincount(np.zeros(1, np.int64), weights=np.ones(1, w.dtype)).dtype
    else:
        wblocks = None
        dt = np.dtype(np.int64)
    parts = [delayed(_bincount_block, pure=True, name="bincount-chunk")(
        minlength, b, *([wblocks[i]] if wblocks else [])) for i, b in enumerate(blocks)]
    merged = delayed(_bincount_merge, pure=True, name="bincount")(minlength, *parts)
    if minlength:
        return _pyblocks.from_tasks([merged], ((minlength,),), dt, "bincount")
    return _unknown_from_python([merged], dt, "bincount")


def _einsum_block(spec, ncontract, *blocks):
    out = np.asarray(np.einsum(spec, *blocks))
    return out.reshape(out.shape + (1,) * ncontract)


def einsum(subscripts, *operands, dtype=None, optimize=False, split_every=None, **kwargs):
    """Einstein summation (NumPy's ``einsum``), as Dask builds it: the operands' blocks are
    aligned per index, every combination of blocks runs ``np.einsum`` in one task, and the
    partial results along the contracted indices are summed by the engine's tree reduction.
    Explicit (``'ij,jk->ik'``) and implicit (``'ij,jk'``) forms; no ellipsis.

    >>> import numpy as np, oxidask.array as da
    >>> a = da.from_array(np.arange(6.0).reshape(2, 3), chunks=1)
    >>> da.einsum("ij,ij->i", a, a).compute()
    array([ 5., 50.])
    """
    from oxidask.array import _pyblocks
    from oxidask.delayed import delayed

    if not isinstance(subscripts, str):
        raise TypeError("einsum: the subscripts must be a string (the sublist form is not "
                        "supported by oxidask.array)")
    if kwargs.get("out") is not None:
        _no_out(kwargs["out"])
    spec = subscripts.replace(" ", "")
    if "." in spec:
        raise NotImplementedError("einsum with an ellipsis ('...') is not supported by "
                                  "oxidask.array; name every axis")
    arrays = [asarray(o) for o in operands]
    lhs, _, rhs = spec.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(arrays):
        raise ValueError(
            f"einsum: {len(terms)} operand subscripts ({lhs!r}) for {len(arrays)} operands"
        )
    # NumPy's own checks of the subscripts and shapes (zero-stride stand-ins: no data).
    stand_ins = [np.broadcast_to(np.zeros((), a.dtype), a.shape) for a in arrays]
    np.einsum_path(spec, *stand_ins, optimize=False)
    if "->" not in spec:
        letters = "".join(terms)
        rhs = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    dt = np.dtype(dtype) if dtype is not None else np.result_type(*[a.dtype for a in arrays])
    _dtype(dt)
    arrays = [a.astype(dt) for a in arrays]
    # One blocking per index: the first operand's, the others rechunked to it.
    chunks_of = {}
    for term, a in zip(terms, arrays):
        for c, ch in zip(term, a.chunks):
            chunks_of.setdefault(c, ch)
    arrays = [a.rechunk(tuple(chunks_of[c] for c in term)) for term, a in zip(terms, arrays)]
    contracted = [c for c in dict.fromkeys("".join(terms)) if c not in rhs]
    grids = [a.to_delayed() for a in arrays]
    letters = list(rhs) + contracted
    sizes = [len(chunks_of[c]) for c in letters]
    block_spec = f"{lhs}->{rhs}"
    handles = []
    for combo in np.ndindex(*sizes):
        at = dict(zip(letters, combo))
        blocks = [g[tuple(at[c] for c in term)] for term, g in zip(terms, grids)]
        handles.append(delayed(_einsum_block, pure=True, name="einsum")(
            block_spec, len(contracted), *blocks))
    chunks = tuple(chunks_of[c] for c in rhs) + tuple((1,) * len(chunks_of[c])
                                                      for c in contracted)
    out = _pyblocks.from_tasks(handles, chunks, dt, "einsum")
    if contracted:
        axes = tuple(range(len(rhs), len(letters)))
        out = out.any(axis=axes) if dt == np.bool_ else \
            out.sum(axis=axes, dtype=dt, split_every=split_every)
    return out


__all__ += ["bincount", "einsum", "median", "nanmedian", "percentile"]
