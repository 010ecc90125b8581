"""Arrays whose blocks are computed by Python functions on NumPy blocks.

``random``'s distributions, ``linalg``'s factorizations, ``fft`` and the order statistics
(``percentile``, ``median``) call NumPy once per block in a Python task (a ``Delayed``), as
``map_blocks`` does; this module turns those per-block tasks back into an :class:`Array`
(engine blocks, for the dtypes the engine holds) or a :class:`PyArray` (blocks that stay
NumPy arrays: complex results, which the Rust engine does not hold).

Invariant: a task's result is the block of the declared shape and dtype (the ``from_numpy``
step checks it when the graph runs).
"""

import itertools

import numpy as np

from oxidask.array.core import SUPPORTED, Array, _dtype, _finalize_blocks, _numpy_blocks_node, _tup
from oxidask.delayed import delayed


def bounds(chunks):
    """Start offsets of the blocks of every axis, with the axis length last."""
    return [np.concatenate([[0], np.cumsum(c)]).astype(int) for c in chunks]


def block_slices(chunks):
    """``(block index, tuple of slices)`` for every block, in C order."""
    b = bounds(chunks)
    for idx in itertools.product(*[range(len(c)) for c in chunks]):
        yield idx, tuple(slice(int(b[a][i]), int(b[a][i + 1])) for a, i in enumerate(idx))


def from_tasks(handles, chunks, dtype, label):
    """An array from one ``Delayed`` NumPy block per block of ``chunks`` (C order): an engine
    :class:`Array` for the engine's dtypes, else a :class:`PyArray`."""
    dt = np.dtype(dtype)
    chunks = tuple(tuple(int(n) for n in c) for c in chunks)
    if dt.name in SUPPORTED:
        return Array(_numpy_blocks_node(list(handles), [list(c) for c in chunks], dt.name),
                     label=label)
    return PyArray(list(handles), chunks, dt, label)


def _cast(block, to):
    return np.asarray(block).astype(to, copy=False)


def _rechunk_block(dtype, shape, pieces_at, *pieces):
    out = np.empty(shape, dtype=dtype)
    for where, piece in zip(pieces_at, pieces):
        out[where] = piece
    return out


def _cut(block, sl):
    return block[sl]


def rechunk_py(x, chunks):
    """``x`` (a :class:`PyArray`) cut into ``chunks`` (a tuple of tuples): each new block is
    one task gathering the pieces of the old blocks it overlaps."""
    chunks = tuple(tuple(int(n) for n in c) for c in chunks)
    if chunks == x.chunks:
        return x
    old = bounds(x.chunks)
    new = bounds(chunks)
    grid = x.to_delayed()
    out = []
    for idx, sl in block_slices(chunks):
        # The old blocks overlapping this new block, axis by axis.
        ranges = []
        for a, s in enumerate(sl):
            lo = int(np.searchsorted(old[a], s.start, side="right")) - 1
            hi = int(np.searchsorted(old[a], s.stop, side="left"))
            ranges.append(range(max(lo, 0), max(hi, lo + 1)))
        pieces, at = [], []
        for oidx in itertools.product(*ranges):
            inner, dest = [], []
            for a, (s, i) in enumerate(zip(sl, oidx)):
                a0, a1 = int(old[a][i]), int(old[a][i + 1])
                lo, hi = max(a0, s.start), min(a1, s.stop)
                inner.append(slice(lo - a0, hi - a0))
                dest.append(slice(lo - s.start, hi - s.start))
            if any(d.stop <= d.start for d in dest):
                continue
            pieces.append(delayed(_cut, pure=True)(grid[oidx], tuple(inner)))
            at.append(tuple(dest))
        shape = tuple(s.stop - s.start for s in sl)
        out.append(delayed(_rechunk_block, pure=True)(x.dtype, shape, at, *pieces))
    return PyArray(out, chunks, x.dtype, "rechunk")


def _apply(func, kwargs, *blocks):
    return func(*blocks, **kwargs)


def map_py(func, x, dtype, label, **kwargs):
    """``func`` on every block of ``x`` (blocks keep their shapes)."""
    grid = x.to_delayed().ravel()
    out = [delayed(_apply, pure=True)(func, kwargs, b) for b in grid]
    return from_tasks(out, x.chunks, dtype, label)


class PyArray(Array):
    """An :class:`Array` whose blocks are NumPy arrays held by Python tasks: the complex
    results of :mod:`oxidask.array.fft` (the Rust engine holds real dtypes only).

    It computes, persists and gives its blocks (``to_delayed``) like any array; it supports
    ``real``, ``imag``, ``conj()``, ``abs()``, ``astype``, elementwise arithmetic and NumPy
    ufuncs (one Python task per block), basic indexing (slices, integers, ``None``,
    ``...``), ``rechunk``, ``map_blocks`` and the ``fft`` functions. Other operations raise ``NotImplementedError`` saying to take ``.real``,
    ``.imag`` or ``abs()`` first.

    >>> import numpy as np, oxidask.array as da
    >>> z = da.fft.fft(da.ones(4, chunks=4))
    >>> z.dtype
    dtype('complex128')
    >>> z.real.compute()
    array([4., 0., 0., 0.])
    """

    def __init__(self, handles, chunks, dtype, label):
        super().__init__(None, label=label, blocks=list(handles), chunks=tuple(chunks),
                         dtype=dtype)
        self._py_blocks = True

    # ---- the collection protocol

    def __oxidask_collection__(self):
        shape, chunks, dtype, label = self.shape, self.chunks, self.dtype, self._label
        finalize_blocks = _finalize_blocks(shape, chunks, dtype)

        def finalize(values):
            out = finalize_blocks(values)
            return out[()] if out.ndim == 0 else out

        def rebuild(persisted):
            return PyArray(persisted, chunks, dtype, label)

        return list(self._blocks), finalize, rebuild

    def __dask_graph__(self):
        g = {}
        for h in self._blocks:
            g.update(h.dask)
        return g

    def _known(self):
        raise NotImplementedError(
            f"this operation is not supported on {self.dtype} arrays by oxidask.array (the "
            "engine holds real dtypes); take .real, .imag or abs() first, or use map_blocks"
        )

    _require = _known

    def compute_chunk_sizes(self):
        """Chunk sizes are known: the array itself."""
        return self

    def __repr__(self):
        return (
            f"dask.array<{self._label}, shape={_tup(self.shape)}, dtype={self.dtype.name}, "
            f"chunksize={_tup(self.chunksize)}, chunktype=numpy.ndarray>"
        )

    # ---- conversions

    @property
    def real(self):
        """The real part (an engine array)."""
        return map_py(np.real, self, np.empty(0, self.dtype).real.dtype, "real")

    @property
    def imag(self):
        """The imaginary part (an engine array)."""
        return map_py(np.imag, self, np.empty(0, self.dtype).imag.dtype, "imag")

    def conj(self):
        """The complex conjugate."""
        return map_py(np.conj, self, self.dtype, "conj")

    conjugate = conj

    def astype(self, dtype, casting="unsafe", copy=True):
        """Elements converted to ``dtype`` (complex to real drops the imaginary part, as
        NumPy does, with NumPy's ``ComplexWarning``)."""
        dt = np.dtype(dtype)
        if dt == self.dtype:
            return self
        if not np.can_cast(self.dtype, dt, casting=casting):
            raise TypeError(
                f"Cannot cast array data from dtype('{self.dtype}') to dtype('{dt}') "
                f"according to the rule '{casting}'"
            )
        if dt.name not in SUPPORTED and dt.kind != "c":
            _dtype(dt)
        return map_py(_cast, self, dt, "astype", to=dt)

    def rechunk(self, chunks="auto", threshold=None, block_size_limit=None, balance=False):
        """The same values in other blocks."""
        from oxidask.array.core import normalize_chunks

        return rechunk_py(self, normalize_chunks(chunks, self.shape, self.dtype,
                                                 previous=self.chunks))

    def map_blocks(self, func, *args, dtype=None, **kwargs):
        """``func`` on every block, blocks keeping their shapes (the other arguments passed
        to every call)."""
        if dtype is None:
            with np.errstate(all="ignore"):
                dtype = np.asarray(func(np.ones((1,) * self.ndim, self.dtype), *args,
                                        **kwargs)).dtype
        return map_py(lambda b: func(b, *args, **kwargs), self, dtype,
                      getattr(func, "__name__", "map_blocks"))

    # ---- elementwise

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__" or kwargs.get("out") is not None:
            raise NotImplementedError(f"{ufunc.__name__}.{method} on complex arrays")
        return _elementwise(ufunc, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        from oxidask.array import fft

        impl = getattr(fft, func.__name__, None) if "fft" in (func.__module__ or "") else None
        if impl is None:
            raise NotImplementedError(
                f"np.{func.__name__} on {self.dtype} arrays is not supported by oxidask.array; "
                "take .real, .imag or abs() first"
            )
        return impl(*args, **kwargs)

    def __getitem__(self, index):
        """Basic indexing: slices with positive steps, integers, ``None`` and ``...``; each
        output block is a piece of one block."""
        return _getitem(self, index)

    def __abs__(self):
        return _elementwise(np.absolute, (self,), {})

    def __neg__(self):
        return _elementwise(np.negative, (self,), {})

    def __pos__(self):
        return self


def _index_block(index, block):
    return block[index]


def _getitem(x, index):
    if not isinstance(index, tuple):
        index = (index,)
    if sum(v is Ellipsis for v in index) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    real = sum(v is not None and v is not Ellipsis for v in index)
    if real > x.ndim:
        raise IndexError(
            f"too many indices for array: array is {x.ndim}-dimensional, but {real} were indexed"
        )
    if Ellipsis in index:
        at = index.index(Ellipsis)
        index = index[:at] + (slice(None),) * (x.ndim - real) + index[at + 1:]
    else:
        index = index + (slice(None),) * (x.ndim - real)
    # Per input axis: for every block, its local index (or None: no element) and out length.
    per_axis, out_axes = [], []
    axis = 0
    for v in index:
        if v is None:
            out_axes.append(("new", None))
            continue
        n = x.shape[axis]
        starts = bounds(x.chunks)[axis]
        parts = []
        if isinstance(v, slice):
            start, stop, step = v.indices(n)
            if step < 0:
                raise NotImplementedError("negative steps on complex arrays")
            count = len(range(start, stop, step))
            for b0, b1 in zip(starts[:-1], starts[1:]):
                first = max(0, -(-(int(b0) - start) // step))
                last = min(count - 1, (int(b1) - 1 - start) // step)
                if first > last:
                    parts.append(None)
                    continue
                lo = start + first * step - int(b0)
                parts.append((slice(lo, lo + (last - first) * step + 1, step), last - first + 1))
            out_axes.append(("axis", axis))
        else:
            try:
                i = int(np.asarray(v).item()) if np.ndim(v) == 0 and not isinstance(
                    v, (float, bool)) else None
            except (TypeError, ValueError):
                i = None
            if i is None or isinstance(v, (np.ndarray, list, Array)):
                raise NotImplementedError(
                    "complex arrays take slices, integers, None and ... as indices"
                )
            if not -n <= i < n:
                raise IndexError(f"index {i} is out of bounds for axis {axis} with size {n}")
            i %= n
            for b0, b1 in zip(starts[:-1], starts[1:]):
                parts.append((i - int(b0), 0) if b0 <= i < b1 else None)
        per_axis.append(parts)
        axis += 1
    grid = x.to_delayed()
    kept = [[b for b, p in enumerate(parts) if p is not None] for parts in per_axis]
    handles = []
    for idx in itertools.product(*kept):
        local = []
        it = iter(idx)
        ax = 0
        for v in index:
            if v is None:
                local.append(None)
                continue
            b = next(it)
            local.append(per_axis[ax][b][0])
            ax += 1
        handles.append(delayed(_index_block, pure=True, name="getitem")(tuple(local), grid[idx]))
    chunks = []
    for kind, ax in out_axes:
        if kind == "new":
            chunks.append((1,))
        else:
            lengths = tuple(per_axis[ax][b][1] for b in kept[ax])
            chunks.append(lengths or (0,))
    # Output block order: C order over the kept blocks of the non-integer axes.
    if any(len(c) == 1 and c == (0,) for c in chunks):
        return from_tasks([delayed(np.zeros, pure=True)(tuple(sum(c) for c in chunks),
                                                        x.dtype)],
                          tuple((sum(c),) for c in chunks), x.dtype, "getitem")
    return from_tasks(handles, tuple(chunks), x.dtype, "getitem")


def _binop(ufunc, reflected=False):
    def op(self, other):
        args = (other, self) if reflected else (self, other)
        return _elementwise(ufunc, args, {})

    return op


for _name, _uf in [("add", np.add), ("sub", np.subtract), ("mul", np.multiply),
                   ("truediv", np.true_divide), ("pow", np.power), ("eq", np.equal),
                   ("ne", np.not_equal)]:
    setattr(PyArray, f"__{_name}__", _binop(_uf))
    if _name not in ("eq", "ne"):
        setattr(PyArray, f"__r{_name}__", _binop(_uf, reflected=True))
PyArray.__hash__ = object.__hash__


def _ufunc_block(ufunc, kwargs, layout, *blocks):
    it = iter(blocks)
    args = [next(it) if is_block else value for is_block, value in layout]
    return ufunc(*args, **kwargs)


def is_complex(ufunc, ops):
    """Whether ``ufunc(*ops)`` involves complex numbers (a :class:`PyArray` operand or a
    complex result): then :func:`elementwise` computes it, not the engine."""
    if any(isinstance(o, PyArray) for o in ops):
        return True
    metas = [np.ones((1,) * o.ndim, o.dtype) if isinstance(o, Array) else o for o in ops]
    try:
        with np.errstate(all="ignore"):
            return np.asarray(ufunc(*metas)).dtype.kind == "c"
    except TypeError:
        return False  # the engine's path reports unsupported types


def elementwise(ufunc, ops):
    """``ufunc(*ops)`` one Python task per block (complex operands or results)."""
    return _elementwise(ufunc, ops, {})


def _elementwise(ufunc, inputs, kwargs):
    """``ufunc(*inputs)`` one task per block; array operands of one shape (broadcasting of
    other shapes is not supported on complex arrays)."""
    arrays = [a for a in inputs if isinstance(a, Array)]
    ref = next((a for a in inputs if isinstance(a, PyArray)), arrays[0])
    for a in arrays:
        if a.shape != ref.shape:
            raise NotImplementedError(
                f"{ufunc.__name__} of complex arrays of shapes {a.shape} and {ref.shape}: "
                "broadcasting complex arrays is not supported by oxidask.array"
            )
    metas = [np.ones((1,) * a.ndim, a.dtype) if isinstance(a, Array) else a for a in inputs]
    with np.errstate(all="ignore"):
        dtype = np.asarray(ufunc(*metas, **kwargs)).dtype
    grids = []
    layout = []
    for a in inputs:
        if isinstance(a, Array):
            if a.chunks != ref.chunks:
                a = a.rechunk(ref.chunks)
            grids.append(a.to_delayed())
            layout.append((True, None))
        else:
            if np.ndim(a) != 0:
                raise NotImplementedError(
                    f"{ufunc.__name__} of a complex array with a NumPy array: wrap it with "
                    "da.from_array first"
                )
            layout.append((False, a))
    out = []
    for idx in itertools.product(*[range(n) for n in ref.numblocks]):
        out.append(delayed(_ufunc_block, pure=True)(ufunc, kwargs, layout,
                                                    *[g[idx] for g in grids]))
    return from_tasks(out, ref.chunks, dtype, ufunc.__name__)
