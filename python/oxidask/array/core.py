"""The :class:`Array` collection: Dask's ``dask.array.Array`` over oxidask's Rust arrays.

An :class:`Array` holds a handle on a lazy array of the Rust crate ``oxidask-array``
(``ArrayNode``): every operation adds registered Rust kernels to its graph, so the threaded,
synchronous and process schedulers and the workers of a cluster run them without Python.
Python meets the blocks only where it must: results come back as ``numpy.ndarray`` blocks
(over the blocks' own memory), and ``map_blocks`` runs Python functions on blocks turned
into NumPy arrays.

Arrays from a boolean mask (``x[x > 0]``) have unknown chunk sizes, shown as ``nan`` as in
Dask, until :meth:`Array.compute_chunk_sizes`.
"""

import inspect
import math
import numbers
import operator
import re

import numpy as np

from oxidask import base
from oxidask._oxidask import ArrayNode, Delayed

#: Bytes per block that ``chunks="auto"`` aims at (Dask's ``array.chunk-size``).
AUTO_CHUNK_BYTES = 128 * 2**20

SUPPORTED = ("float64", "float32", "int64", "int32", "uint8", "bool")


# --------------------------------------------------------------------------------------------
# dtypes and chunks


def _dtype(dtype):
    """``numpy.dtype`` of ``dtype``, checked against what the engine holds."""
    dt = np.dtype(dtype)
    if dt.name not in SUPPORTED:
        raise TypeError(
            f"dtype {dt.name} is not supported by oxidask.array (supported: "
            f"{', '.join(SUPPORTED)}); convert with .astype() first"
        )
    return dt


_SIZE = re.compile(r"^\s*([0-9.]+)\s*([kKmMgGtT]?i?[bB]?)\s*$")
_UNITS = {
    "": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "k": 10**3, "m": 10**6,
    "g": 10**9, "t": 10**12, "ki": 2**10, "mi": 2**20, "gi": 2**30,
}


def _parse_bytes(text):
    m = _SIZE.match(text)
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f"chunks={text!r} is not a size like '128MiB' or 'auto'")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def _auto_chunks(shape, itemsize, limit, auto_axes, fixed):
    """Block lengths for the axes in ``auto_axes`` so a block holds about ``limit`` bytes,
    as square as the shape allows (``fixed``: lengths already chosen for other axes)."""
    out = dict(fixed)
    elems = max(1, limit // max(itemsize, 1))
    for a, n in fixed.items():
        elems = max(1, elems // max(n, 1))
    todo = [a for a in auto_axes]
    # Axes shorter than the ideal side take their whole length; the rest share what is left.
    while todo:
        side = max(1, int(round(elems ** (1.0 / len(todo)))))
        short = [a for a in todo if shape[a] <= side]
        if not short:
            for a in todo:
                out[a] = side
            break
        for a in short:
            out[a] = max(shape[a], 1)
            elems = max(1, elems // max(shape[a], 1))
            todo.remove(a)
    return out


def _blocks_of(n, size):
    if n == 0:
        return (0,)
    size = max(int(size), 1)
    full, rest = divmod(n, size)
    return (size,) * full + ((rest,) if rest else ())


def normalize_chunks(chunks, shape, dtype=np.float64, previous=None, limit=None):
    """Dask's ``normalize_chunks``: block lengths per axis (a tuple of tuples) for
    ``chunks`` given as ``"auto"``, a size (``"64MiB"``), one int for every axis, a tuple
    with an int, ``-1``/``None`` (whole axis) or ``"auto"`` per axis, explicit lengths, or a
    dict ``{axis: spec}`` (other axes keep ``previous`` chunks, else the whole axis)."""
    shape = tuple(int(s) for s in shape)
    nd = len(shape)
    itemsize = np.dtype(dtype).itemsize
    if limit is None:
        limit = AUTO_CHUNK_BYTES
    if chunks is None:
        chunks = "auto"
    if isinstance(chunks, str):
        if chunks != "auto":
            limit = _parse_bytes(chunks)
        chunks = ("auto",) * nd
    if isinstance(chunks, dict):
        spec = []
        for a in range(nd):
            v = chunks.get(a, chunks.get(a - nd))
            if v is None and (a in chunks or a - nd in chunks):
                v = -1
            if v is None:
                v = previous[a] if previous is not None else -1
            spec.append(v)
        chunks = tuple(spec)
    if isinstance(chunks, numbers.Integral) and not isinstance(chunks, bool):
        chunks = (int(chunks),) * nd
    chunks = tuple(chunks)
    if len(chunks) != nd:
        raise ValueError(
            f"chunks {chunks} have {len(chunks)} entries but the shape {shape} has {nd} axes"
        )
    fixed = {}
    auto_axes = []
    out = [None] * nd
    for a, (c, n) in enumerate(zip(chunks, shape)):
        if isinstance(c, str):
            if c != "auto":
                limit = _parse_bytes(c)
            auto_axes.append(a)
        elif c is None or (isinstance(c, numbers.Integral) and c == -1):
            out[a] = (n,)
            fixed[a] = max(n, 1)
        elif isinstance(c, numbers.Number):
            if math.isnan(c):
                out[a] = (c,)
                continue
            c = int(c)
            if c <= 0 and n > 0:
                raise ValueError(
                    f"a block length of {c} cannot cut axis {a} of shape {shape}; "
                    "use a positive length or -1 for the whole axis"
                )
            out[a] = _blocks_of(n, c)
            fixed[a] = min(c, max(n, 1))
        else:
            lengths = tuple(int(x) if not (isinstance(x, float) and math.isnan(x)) else x
                            for x in c)
            if not any(isinstance(x, float) for x in lengths) and sum(lengths) != n:
                raise ValueError(
                    f"chunks {lengths} do not add up to the length {n} of axis {a} "
                    f"of shape {shape}"
                )
            out[a] = lengths
            fixed[a] = max(lengths) if lengths else 1
    if auto_axes:
        sizes = _auto_chunks(shape, itemsize, limit, auto_axes, fixed)
        for a in auto_axes:
            out[a] = _blocks_of(shape[a], sizes[a])
    return tuple(out)


# --------------------------------------------------------------------------------------------
# the collection


def _finalize_blocks(shape, chunks, dtype):
    def finalize(values):
        if len(values) == 1:
            v = np.asarray(values[0])
            if v.shape != tuple(shape):
                v = v.reshape(shape)
            return v
        out = np.empty(shape, dtype=dtype)
        grid = [len(c) for c in chunks]
        starts = [np.concatenate([[0], np.cumsum(c)]).astype(int) for c in chunks]
        for flat, v in enumerate(values):
            idx = np.unravel_index(flat, grid)
            sl = tuple(slice(starts[a][i], starts[a][i + 1]) for a, i in enumerate(idx))
            out[sl] = v
        return out

    return finalize


def _identity(x):
    return x


def _materialized(handles):
    """Handles a Rust task may read: results held on a cluster (persisted) go through a
    Python task first."""
    from oxidask.delayed import delayed

    return [delayed(_identity, pure=True)(h) for h in handles]


def _numpy_blocks_node(handles, chunks, dtype):
    try:
        return ArrayNode.from_numpy_blocks(handles, chunks, dtype)
    except ValueError as e:
        if "held on a cluster" not in str(e):
            raise
        return ArrayNode.from_numpy_blocks(_materialized(handles), chunks, dtype)


class Array:
    """A lazy, chunked n-dimensional array (Dask's ``dask.array.Array``).

    Build one with :func:`from_array`, :func:`ones`, :func:`arange`, ``random`` …; operations
    return new lazy arrays; :meth:`compute` returns a ``numpy.ndarray``.

    >>> import oxidask.array as da
    >>> x = da.ones((4, 6), chunks=(2, 3))
    >>> x
    dask.array<ones, shape=(4, 6), dtype=float64, chunksize=(2, 3), chunktype=numpy.ndarray>
    >>> (x + 1).sum().compute()
    np.float64(48.0)
    """

    __array_priority__ = 11  # NumPy defers binary operators to us

    def __init__(self, node=None, *, label=None, blocks=None, chunks=None, dtype=None, keep=None):
        self._node = node
        self._label = label
        self._blocks = blocks  # block handles when chunk sizes are unknown
        self._py_blocks = False  # those handles are NumPy results (else engine blocks)
        self._counts = None  # handles of the blocks' lengths, when known how to count
        self._unknown_chunks = chunks
        self._unknown_dtype = None if dtype is None else np.dtype(dtype)
        self._keep = keep

    # ---- metadata

    def _require(self, what="this operation"):
        if self._node is None:
            raise ValueError(
                f"Array chunk sizes are unknown: {what} needs them. A possible solution: "
                "x.compute_chunk_sizes()"
            )
        return self._node

    def _known(self):
        """The node, computing unknown chunk sizes first when needed."""
        if self._node is None:
            self.compute_chunk_sizes()
        return self._node

    @property
    def chunks(self):
        """Block lengths per axis, a tuple of tuples (``nan`` where unknown)."""
        if self._node is None:
            return self._unknown_chunks
        return tuple(tuple(c) for c in self._node.chunks)

    @property
    def shape(self):
        """The shape (``nan`` on axes of unknown length)."""
        if self._node is None:
            return tuple(
                float("nan") if any(isinstance(x, float) and math.isnan(x) for x in c) else sum(c)
                for c in self._unknown_chunks
            )
        return tuple(self._node.shape)

    @property
    def dtype(self):
        """The NumPy dtype of the elements."""
        if self._node is None:
            return self._unknown_dtype
        return np.dtype(self._node.dtype)

    @property
    def ndim(self):
        """The number of dimensions."""
        return len(self.chunks)

    @property
    def size(self):
        """The number of elements (``nan`` if unknown)."""
        s = self.shape
        return math.prod(s) if s else 1

    @property
    def itemsize(self):
        """Bytes per element."""
        return self.dtype.itemsize

    @property
    def nbytes(self):
        """Bytes of the whole array (``nan`` if its shape is unknown)."""
        return self.size * self.itemsize

    @property
    def chunksize(self):
        """The largest block's shape."""
        return tuple(max(c) if c else 0 for c in self.chunks)

    @property
    def numblocks(self):
        """Blocks per axis."""
        return tuple(len(c) for c in self.chunks)

    @property
    def npartitions(self):
        """The number of blocks."""
        return math.prod(self.numblocks)

    @property
    def name(self):
        """The key prefix of the blocks (``'add-…'``)."""
        keys = self.__dask_keys_flat()
        k = keys[0] if keys else "array"
        m = re.match(r"^\('([^']*)'", k)
        return m.group(1) if m else k

    @property
    def _meta(self):
        return np.empty((0,) * self.ndim, dtype=self.dtype)

    def __repr__(self):
        label = self._label or (self._node.name if self._node is not None else "getitem")
        shape = self.shape
        chunksize = self.chunksize
        return (
            f"dask.array<{label}, shape={_tup(shape)}, dtype={self.dtype.name}, "
            f"chunksize={_tup(chunksize)}, chunktype=numpy.ndarray>"
        )

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of unsized object")
        n = self.shape[0]
        if isinstance(n, float):
            raise ValueError("len() of an array of unknown length; use compute_chunk_sizes()")
        return n

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    # ---- the collection protocol

    def __oxidask_collection__(self):
        if self._node is None:
            if self._py_blocks:
                handles = list(self._blocks)
            else:
                handles = [ArrayNode.to_numpy_handle(b) for b in self._blocks]
            dtype = self._unknown_dtype
            ndim = self.ndim

            def finalize(values):
                if not values:
                    return np.empty((0,) * ndim, dtype=dtype)
                return np.concatenate([np.asarray(v) for v in values])

            def rebuild(persisted):
                return _from_numpy_handles(persisted, None, dtype, unknown=True)

            return handles, finalize, rebuild
        node = self._node
        handles = node.numpy_handles()
        shape = tuple(node.shape)
        chunks = self.chunks
        dtype = self.dtype
        label = self._label

        def finalize_scalar(values):
            out = _finalize_blocks(shape, chunks, dtype)(values)
            return out[()] if out.ndim == 0 else out

        def rebuild(persisted):
            a = _from_numpy_handles(persisted, chunks, dtype)
            a._label = label
            return a

        return handles, finalize_scalar, rebuild

    def __dask_keys_flat(self):
        if self._node is None:
            return [b.key for b in self._blocks]
        return self._node.keys()

    def __dask_graph__(self):
        """The task graph: keys (as text) to a description of their task."""
        if self._node is not None:
            return dict(self._node.graph_keys())
        g = {}
        for h in self._blocks:
            g.update(h.dask)
        return g

    def __dask_keys__(self):
        keys = self.__dask_keys_flat()
        grid = self.numblocks
        if not grid:
            return keys
        arr = np.empty(len(keys), dtype=object)
        arr[:] = keys
        return arr.reshape(grid).tolist()

    def __dask_tokenize__(self):
        return ("oxidask.array", tuple(self.__dask_keys_flat()))

    @property
    def dask(self):
        """The task graph (keys to task descriptions)."""
        return self.__dask_graph__()

    def compute(self, **kwargs):
        """The array's values as a ``numpy.ndarray`` (a NumPy scalar for 0-d arrays)."""
        return base.compute(self, **kwargs)[0]

    def persist(self, **kwargs):
        """The array backed by its computed blocks (on a cluster they stay there)."""
        return base.persist(self, **kwargs)[0]

    def visualize(self, filename="mydask", format=None, **kwargs):
        """Draws the task graph with Graphviz (see :func:`oxidask.visualize`)."""
        return base.visualize(self, filename=filename, format=format, **kwargs)

    def __array__(self, dtype=None, copy=None):
        x = np.asarray(self.compute())
        if dtype is not None:
            x = x.astype(dtype)
        return x

    def __bool__(self):
        if self.size != 1:
            raise ValueError(
                f"The truth value of an array with more than one element is ambiguous "
                f"(shape {self.shape}). Use a.any() or a.all()"
            )
        return bool(self.compute())

    def __float__(self):
        return float(self.compute())

    def __int__(self):
        return int(self.compute())

    def __index__(self):
        return operator.index(self.compute()[()])

    def compute_chunk_sizes(self):
        """Computes unknown chunk sizes (after boolean-mask indexing) in place and returns the
        array, as Dask's."""
        if self._node is not None:
            return self
        if self._py_blocks:
            from oxidask.delayed import delayed

            counts = base.compute(*[delayed(len, pure=True)(b) for b in self._blocks])
        else:
            counts = base.compute(*self._counts)
        lengths = tuple(int(c) for c in counts)
        chunks = [list(lengths) if lengths else [0]]
        if not lengths:
            node = ArrayNode.from_numpy(np.empty(0, dtype=self._unknown_dtype), [[0]])
        elif self._py_blocks:
            node = _numpy_blocks_node(self._blocks, chunks, self._unknown_dtype.name)
        else:
            node = ArrayNode.from_block_handles(self._blocks, chunks, self._unknown_dtype.name)
        self._node = node
        self._blocks = None
        self._label = self._label or "getitem"
        return self

    # ---- elementwise

    def __add__(self, other):
        return elemwise(np.add, self, other)

    def __radd__(self, other):
        return elemwise(np.add, other, self)

    def __sub__(self, other):
        return elemwise(np.subtract, self, other)

    def __rsub__(self, other):
        return elemwise(np.subtract, other, self)

    def __mul__(self, other):
        return elemwise(np.multiply, self, other)

    def __rmul__(self, other):
        return elemwise(np.multiply, other, self)

    def __truediv__(self, other):
        return elemwise(np.true_divide, self, other)

    def __rtruediv__(self, other):
        return elemwise(np.true_divide, other, self)

    def __floordiv__(self, other):
        return elemwise(np.floor_divide, self, other)

    def __rfloordiv__(self, other):
        return elemwise(np.floor_divide, other, self)

    def __mod__(self, other):
        return elemwise(np.remainder, self, other)

    def __rmod__(self, other):
        return elemwise(np.remainder, other, self)

    def __pow__(self, other):
        return elemwise(np.power, self, other)

    def __rpow__(self, other):
        return elemwise(np.power, other, self)

    def __eq__(self, other):
        return elemwise(np.equal, self, other)

    def __ne__(self, other):
        return elemwise(np.not_equal, self, other)

    def __lt__(self, other):
        return elemwise(np.less, self, other)

    def __le__(self, other):
        return elemwise(np.less_equal, self, other)

    def __gt__(self, other):
        return elemwise(np.greater, self, other)

    def __ge__(self, other):
        return elemwise(np.greater_equal, self, other)

    def __and__(self, other):
        return elemwise(np.bitwise_and, self, other)

    def __rand__(self, other):
        return elemwise(np.bitwise_and, other, self)

    def __or__(self, other):
        return elemwise(np.bitwise_or, self, other)

    def __ror__(self, other):
        return elemwise(np.bitwise_or, other, self)

    def __xor__(self, other):
        return elemwise(np.bitwise_xor, self, other)

    def __rxor__(self, other):
        return elemwise(np.bitwise_xor, other, self)

    def __invert__(self):
        return elemwise(np.invert, self)

    def __neg__(self):
        return elemwise(np.negative, self)

    def __pos__(self):
        return self

    def __abs__(self):
        return elemwise(np.absolute, self)

    def __matmul__(self, other):
        return matmul(self, other)

    def __rmatmul__(self, other):
        return matmul(other, self)

    __hash__ = object.__hash__

    def __reduce__(self):
        raise TypeError(
            "an oxidask.array Array cannot be pickled (its graph lives in this process); "
            "compute it (or persist it on a cluster) first, or split it with to_delayed()"
        )

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__":
            raise NotImplementedError(
                f"{ufunc.__name__}.{method} is not supported by oxidask.array"
            )
        if kwargs.get("out") is not None:
            raise NotImplementedError(f"{ufunc.__name__}(..., out=) is not supported by oxidask.array")
        dtype = kwargs.pop("dtype", None)
        kwargs.pop("out", None)
        if kwargs:
            raise NotImplementedError(
                f"{ufunc.__name__}: arguments {sorted(kwargs)} are not supported by oxidask.array"
            )
        out = elemwise(ufunc, *inputs)
        return out.astype(dtype) if dtype is not None else out

    def __array_function__(self, func, types, args, kwargs):
        from oxidask import array as da

        from oxidask.array.routines import _ARRAY_FUNCTIONS

        impl = _ARRAY_FUNCTIONS.get(func)
        if impl is None:
            module = getattr(func, "__module__", "") or ""
            ns = da.linalg if module.endswith("linalg") else da.fft if module.endswith("fft") \
                else da
            impl = getattr(ns, func.__name__, None)
        if impl is None or not callable(impl):
            return NotImplemented
        return impl(*args, **kwargs)

    def astype(self, dtype, casting="unsafe", copy=True):
        """Elements converted to ``dtype`` (NumPy's ``astype``)."""
        dt = _dtype(dtype)
        if dt == self.dtype:
            return self
        if not np.can_cast(self.dtype, dt, casting=casting):
            raise TypeError(
                f"Cannot cast array data from dtype('{self.dtype}') to dtype('{dt}') "
                f"according to the rule '{casting}'"
            )
        if self._node is None:
            self._known()
        return Array(self._node.astype(dt.name))

    # ---- reductions

    def _reduce(self, kind, axis=None, keepdims=False, split_every=None, ddof=0, dtype=None):
        if (self._node is None and not self._py_blocks and dtype is None
                and kind in _LENGTH_FREE and _axes(axis, self.ndim) in (None, [0])
                and not (kind in ("var", "std") and ddof > 0)):
            # A whole reduction of engine blocks of unknown lengths needs no lengths: the
            # kernels read each block's own shape (placeholder lengths only name the blocks).
            if isinstance(split_every, dict):
                split_every = max(split_every.values()) if split_every else None
            node = ArrayNode.from_block_handles(
                self._blocks, [[1] * len(self._blocks)], self._unknown_dtype.name
            )
            return Array(node.reduce(kind, None, bool(keepdims), split_every, int(ddof)))
        x = self if dtype is None else self.astype(dtype)
        node = x._known()
        axes = _axes(axis, self.ndim)
        if isinstance(split_every, dict):
            split_every = max(split_every.values()) if split_every else None
        out = Array(node.reduce(kind, axes, bool(keepdims), split_every, int(ddof)))
        if kind in ("var", "std") and ddof > 0:
            n = math.prod(x.shape[a] for a in (range(x.ndim) if axes is None else axes))
            if n - ddof < 0:
                out = out * np.nan  # NumPy: NaN (with a warning) for ddof past the count
        return out

    def sum(self, axis=None, dtype=None, keepdims=False, split_every=None, out=None):
        """Sum over ``axis`` (an int, a tuple, or ``None`` for all)."""
        _no_out(out)
        return self._reduce("sum", axis, keepdims, split_every, dtype=dtype)

    def prod(self, axis=None, dtype=None, keepdims=False, split_every=None, out=None):
        """Product over ``axis``."""
        _no_out(out)
        return self._reduce("prod", axis, keepdims, split_every, dtype=dtype)

    def mean(self, axis=None, dtype=None, keepdims=False, split_every=None, out=None):
        """Mean over ``axis``."""
        _no_out(out)
        return self._reduce("mean", axis, keepdims, split_every, dtype=dtype)

    def min(self, axis=None, keepdims=False, split_every=None, out=None):
        """Minimum over ``axis`` (NaN if any is NaN)."""
        _no_out(out)
        self._nonempty("min", axis)
        return self._reduce("min", axis, keepdims, split_every)

    def max(self, axis=None, keepdims=False, split_every=None, out=None):
        """Maximum over ``axis`` (NaN if any is NaN)."""
        _no_out(out)
        self._nonempty("max", axis)
        return self._reduce("max", axis, keepdims, split_every)

    def _nonempty(self, what, axis):
        if self._node is not None and self.size == 0:
            raise ValueError(
                f"zero-size array to reduction operation {what}imum which has no identity"
            )

    def any(self, axis=None, keepdims=False, split_every=None, out=None):
        """Whether any element is true over ``axis``."""
        _no_out(out)
        return self._reduce("any", axis, keepdims, split_every)

    def all(self, axis=None, keepdims=False, split_every=None, out=None):
        """Whether every element is true over ``axis``."""
        _no_out(out)
        return self._reduce("all", axis, keepdims, split_every)

    def var(self, axis=None, dtype=None, keepdims=False, ddof=0, split_every=None, out=None):
        """Variance over ``axis`` with ``ddof`` delta degrees of freedom."""
        _no_out(out)
        return self._reduce("var", axis, keepdims, split_every, ddof, dtype=dtype)

    def std(self, axis=None, dtype=None, keepdims=False, ddof=0, split_every=None, out=None):
        """Standard deviation over ``axis`` with ``ddof`` delta degrees of freedom."""
        _no_out(out)
        return self._reduce("std", axis, keepdims, split_every, ddof, dtype=dtype)

    def argmin(self, axis=None, keepdims=False, split_every=None, out=None):
        """Index of the minimum (flat when ``axis`` is ``None``)."""
        _no_out(out)
        return self._reduce("argmin", axis, keepdims, split_every)

    def argmax(self, axis=None, keepdims=False, split_every=None, out=None):
        """Index of the maximum (flat when ``axis`` is ``None``)."""
        _no_out(out)
        return self._reduce("argmax", axis, keepdims, split_every)

    def cumsum(self, axis=None, dtype=None, out=None):
        """Cumulative sum along ``axis`` (of the flattened array when ``None``)."""
        _no_out(out)
        x = self if dtype is None else self.astype(dtype)
        if axis is None:
            x = x.ravel()
            axis = 0
        return Array(x._known().cumsum(int(axis)))

    def cumprod(self, axis=None, dtype=None, out=None):
        """Cumulative product along ``axis`` (of the flattened array when ``None``)."""
        from oxidask.array.routines import cumprod

        return cumprod(self, axis=axis, dtype=dtype, out=out)

    def topk(self, k, axis=-1, split_every=None):
        """The ``k`` largest elements along ``axis``, largest first (``k < 0``: the ``-k``
        smallest, smallest first)."""
        return Array(self._known().topk(int(k), int(axis)))

    @property
    def real(self):
        """The real part (the array itself: its dtypes are real)."""
        return self

    @property
    def imag(self):
        """The imaginary part (zeros: its dtypes are real)."""
        return zeros_like(self)

    def conj(self):
        """The complex conjugate (the array itself: its dtypes are real)."""
        return self

    def argtopk(self, k, axis=-1, split_every=None):
        """Indices of the ``k`` largest elements along ``axis`` (see :func:`topk`)."""
        from oxidask.array.routines import argtopk

        return argtopk(self, k, axis=axis, split_every=split_every)

    def dot(self, other):
        """NumPy's ``dot`` with ``other``."""
        return dot(self, other)

    def round(self, decimals=0):
        """Rounded to ``decimals`` decimals."""
        from oxidask.array import routines

        return routines.round(self, decimals)

    def clip(self, min=None, max=None):
        """Values limited to ``[min, max]``."""
        from oxidask.array import routines

        return routines.clip(self, min, max)

    # ---- shape

    @property
    def T(self):
        """The array with its axes reversed."""
        return self.transpose()

    def transpose(self, *axes):
        """Axes reversed, or permuted as ``axes`` says."""
        if len(axes) == 1 and (axes[0] is None or isinstance(axes[0], (tuple, list))):
            axes = axes[0]
        if not axes:
            axes = tuple(range(self.ndim))[::-1]
        node = self._require("transpose")
        if sorted(_axis(a, self.ndim) for a in axes) != list(range(self.ndim)):
            raise ValueError("axes don't match array")
        return Array(node.transpose([int(a) for a in axes]))

    def swapaxes(self, axis1, axis2):
        """Two axes exchanged."""
        from oxidask.array import routines

        return routines.swapaxes(self, axis1, axis2)

    def reshape(self, *shape, merge_chunks=True, limit=None):
        """The array with a new shape (one ``-1`` allowed); blocks are rechunked when the
        reshape needs data from several blocks, as Dask does."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = shape[0]
        node = self._require("reshape")
        shape = _fill_shape(shape, self.size, self.shape)
        if shape == self.shape:
            return self
        try:
            return Array(node.reshape(list(shape)))
        except ValueError as e:
            if "without moving data" not in str(e):
                raise
        # Merge the trailing axes into single blocks, then everything.
        for keep in range(self.ndim - 1, -1, -1):
            chunks = [list(c) for c in self.chunks[:keep]] + [
                [n] for n in self.shape[keep:]
            ]
            try:
                return Array(node.rechunk(chunks).reshape(list(shape)))
            except ValueError:
                continue
        raise ValueError(f"cannot reshape {self.shape} into {shape}")

    def ravel(self):
        """The array flattened (row-major)."""
        return self.reshape(-1)

    flatten = ravel

    def squeeze(self, axis=None):
        """Length-1 axes removed."""
        from oxidask.array import routines

        return routines.squeeze(self, axis)

    def rechunk(self, chunks="auto", threshold=None, block_size_limit=None, balance=False):
        """The same values cut into other blocks (:func:`normalize_chunks` forms)."""
        node = self._require("rechunk")
        new = normalize_chunks(
            chunks, self.shape, self.dtype, previous=self.chunks, limit=block_size_limit
        )
        if new == self.chunks:
            return self
        return Array(node.rechunk([list(c) for c in new]))

    # ---- indexing

    def __getitem__(self, index):
        return _getitem(self, index)

    def __setitem__(self, key, value):
        """``x[mask] = v`` or ``x[2:5, ::2] = v`` with a scalar (or broadcastable array) ``v``:
        the array now stands for the result (its graph is replaced, as in Dask)."""
        from oxidask.array.routines import where

        if isinstance(key, Array) and key.dtype == np.bool_:
            mask = key
        elif isinstance(key, np.ndarray) and key.dtype == np.bool_:
            mask = from_array(key, chunks=self.chunks if key.shape == self.shape else "auto")
        else:
            mask = _index_mask(self, key)
        if isinstance(value, Array):
            if value.shape != self.shape and mask.shape == self.shape and not isinstance(
                key, Array
            ):
                raise NotImplementedError(
                    "assigning an array into a slice; assign a scalar, or an array of the "
                    "whole shape with a boolean mask"
                )
        elif np.ndim(value) != 0:
            value = asarray(np.asarray(value))
        out = where(mask, value, self)
        if out.dtype != self.dtype:
            out = out.astype(self.dtype)
        self._node = out._known()
        self._label = "setitem"

    @property
    def blocks(self):
        """Indexing by blocks: ``x.blocks[i, j]`` is the array of those blocks."""
        return _BlockView(self)

    def map_blocks(self, func, *args, **kwargs):
        """``func`` on every block (see :func:`oxidask.array.map_blocks`)."""
        from oxidask.array.blockwise import map_blocks

        return map_blocks(func, self, *args, **kwargs)

    def map_overlap(self, func, depth, boundary=None, trim=True, **kwargs):
        """``func`` on every block with its neighbours' edges (see :func:`oxidask.array.map_overlap`)."""
        from oxidask.array.blockwise import map_overlap

        return map_overlap(func, self, depth=depth, boundary=boundary, trim=trim, **kwargs)

    def __oxidask_delayed__(self):
        """The lazy value a delayed call or ``client.submit`` receives for this array: the
        whole NumPy array (as Dask computes a collection passed to a delayed function)."""
        from oxidask.delayed import delayed

        handles, finalize, _ = self.__oxidask_collection__()
        return delayed(finalize, pure=True)(handles, dask_key_name=f"finalize-{self.name}")

    def to_delayed(self):
        """The blocks as ``Delayed`` NumPy arrays (an object array of the block grid)."""
        handles, _, _ = self.__oxidask_collection__()
        arr = np.empty(len(handles), dtype=object)
        arr[:] = handles
        return arr.reshape(self.numblocks)

    def store(self, target, lock=True, compute=True, **kwargs):
        """Writes the blocks into ``target`` (see :func:`oxidask.array.store`)."""
        from oxidask.array.routines import store

        return store(self, target, lock=lock, compute=compute, **kwargs)

    def to_zarr(self, url, component=None, overwrite=False, **kwargs):
        """Writes the array as a Zarr v3 directory (see :func:`to_zarr`)."""
        return to_zarr(self, url, component=component, overwrite=overwrite, **kwargs)

    def to_npy(self, path):
        """Computes the array and writes it to ``path`` in NumPy's ``.npy`` format."""
        np.save(path, np.asarray(self.compute()))


def _index_mask(x, key):
    """A boolean array of ``x``'s shape, true where basic index ``key`` selects."""
    x._require("item assignment")
    probe = np.zeros(x.shape, dtype=bool)
    try:
        probe[key] = True  # checks the key as NumPy would (IndexError, …)
    except (IndexError, ValueError, TypeError):
        raise
    # Per-axis selections, so the mask is an outer AND of 1-d masks (no big NumPy array).
    if not isinstance(key, tuple):
        key = (key,)
    if any(k is None for k in key):
        raise IndexError("None (newaxis) is not valid in an assignment index")
    n_ell = sum(1 for k in key if k is Ellipsis)
    if n_ell:
        at = key.index(Ellipsis)
        key = key[:at] + (slice(None),) * (x.ndim - len(key) + 1) + key[at + 1:]
    key = key + (slice(None),) * (x.ndim - len(key))
    mask = None
    for ax, k in enumerate(key):
        sel = np.zeros(x.shape[ax], dtype=bool)
        sel[k] = True
        shape = [1] * x.ndim
        shape[ax] = x.shape[ax]
        part = from_array(sel.reshape(shape), chunks=tuple(
            x.chunks[a] if a == ax else (1,) for a in range(x.ndim)
        ))
        mask = part if mask is None else (mask & part)
    return mask


class _BlockView:
    """``x.blocks[i, j]``: the array made of the selected blocks."""

    def __init__(self, array):
        self._array = array

    def __getitem__(self, index):
        x = self._array
        if not isinstance(index, tuple):
            index = (index,)
        index = index + (slice(None),) * (x.ndim - len(index))
        slices = []
        for a, i in enumerate(index):
            bounds = np.concatenate([[0], np.cumsum(x.chunks[a])]).astype(int)
            if isinstance(i, slice):
                start, stop, step = i.indices(len(x.chunks[a]))
                if step != 1:
                    raise NotImplementedError("block slices with a step")
                slices.append(slice(int(bounds[start]), int(bounds[max(stop, start)])))
            else:
                i = operator.index(i)
                if i < 0:
                    i += len(x.chunks[a])
                if not 0 <= i < len(x.chunks[a]):
                    raise IndexError(f"block index {i} out of range for axis {a}")
                slices.append(slice(int(bounds[i]), int(bounds[i + 1])))
        return x[tuple(slices)]


# Reductions whose kernels never read a block's position (argmin/argmax do) and that are
# defined on empty input (min/max are not): computable over blocks of unknown lengths.
_LENGTH_FREE = {"sum", "prod", "any", "all", "nansum", "mean", "nanmean", "var", "std"}


def _tup(t):
    parts = [("nan" if isinstance(v, float) and math.isnan(v) else str(v)) for v in t]
    if len(parts) == 1:
        return f"({parts[0]},)"
    return "(" + ", ".join(parts) + ")"


def _no_out(out):
    if out is not None:
        raise NotImplementedError("out= is not supported by oxidask.array")


def _axis(a, ndim):
    a = operator.index(a)
    if not -ndim <= a < ndim:
        raise np.exceptions.AxisError(a, ndim)
    return a % ndim if ndim else a


def _axes(axis, ndim):
    if axis is None:
        return None
    if isinstance(axis, (tuple, list)):
        return [_axis(a, ndim) for a in axis]
    return [_axis(axis, ndim)]


def _fill_shape(shape, size, old):
    shape = [operator.index(s) for s in shape]
    if shape.count(-1) > 1:
        raise ValueError("can only specify one unknown dimension")
    if -1 in shape:
        rest = math.prod(s for s in shape if s != -1)
        if rest == 0 or size % rest:
            raise ValueError(f"cannot reshape array of size {size} into shape {tuple(shape)}")
        shape[shape.index(-1)] = size // rest
    if math.prod(shape) != size:
        raise ValueError(f"cannot reshape array of size {size} into shape {tuple(shape)}")
    return tuple(shape)


# --------------------------------------------------------------------------------------------
# making arrays


def _from_numpy_handles(handles, chunks, dtype, unknown=False):
    dtype = np.dtype(dtype)
    if unknown:
        from oxidask.delayed import delayed

        lengths = base.compute(*[delayed(len, pure=True)(h) for h in handles])
        chunks = ((tuple(int(n) for n in lengths) or (0,)),)
    return Array(_numpy_blocks_node(handles, [list(c) for c in chunks], dtype.name))


def asarray(a, dtype=None, chunks="auto", **kwargs):
    """``a`` as an :class:`Array`: arrays as they are, anything else through
    :func:`from_array`."""
    if isinstance(a, Array):
        return a if dtype is None else a.astype(dtype)
    return from_array(np.asarray(a, dtype=dtype), chunks=chunks)


def array(a, dtype=None, copy=None, chunks="auto", **kwargs):
    """Same as :func:`asarray`."""
    return asarray(a, dtype=dtype, chunks=chunks)


def from_array(x, chunks="auto", name=None, lock=False, asarray=None, fancy=True, getitem=None,
               meta=None, inline_array=False):
    """An :class:`Array` over a NumPy array (or anything ``numpy.asarray`` reads), cut into
    ``chunks``. The data is copied once, into the blocks (the Rust engine owns its memory).

    >>> import numpy as np, oxidask.array as da
    >>> x = da.from_array(np.arange(10), chunks=4)
    >>> x.chunks
    ((4, 4, 2),)
    """
    if isinstance(x, Array):
        return x.rechunk(chunks)
    a = np.asarray(x)
    if a.dtype.name not in SUPPORTED:
        a_dtype = a.dtype
        _dtype(a_dtype)
    chunks = normalize_chunks(chunks, a.shape, a.dtype)
    a = np.require(a, requirements="C")  # keeps 0-d arrays 0-d, unlike ascontiguousarray
    node = ArrayNode.from_numpy(a, [list(c) for c in chunks])
    return Array(node, label="array")


def from_delayed(value, shape, dtype=None, meta=None, name=None):
    """An array of one block: the NumPy array a ``Delayed`` value computes to, declared of
    ``shape`` and ``dtype`` (a block of another shape fails when computed)."""
    if not isinstance(value, Delayed):
        from oxidask.delayed import delayed

        value = delayed(value)
    if dtype is None and meta is not None:
        dtype = meta.dtype
    if dtype is None:
        raise ValueError("from_delayed needs dtype=")
    dt = _dtype(dtype)
    shape = tuple(int(s) for s in shape)
    chunks = [[s] for s in shape]
    node = _numpy_blocks_node([value], chunks, dt.name)
    return Array(node, label="from-value")


def _create(kind, shape, dtype, chunks, params=(), seed=None, fill=None, label=None):
    if isinstance(shape, numbers.Integral):
        shape = (int(shape),)
    shape = tuple(operator.index(s) for s in shape)
    if any(s < 0 for s in shape):
        raise ValueError(f"negative dimensions are not allowed: {shape}")
    dt = _dtype(dtype)
    chunks = normalize_chunks(chunks, shape, dt)
    node = ArrayNode.create(
        kind, dt.name, list(shape), [list(c) for c in chunks], [float(p) for p in params],
        seed, fill,
    )
    return Array(node, label=label or kind)


def ones(shape, dtype=float, chunks="auto", **kwargs):
    """An array of ones (no block is allocated until something needs dense data)."""
    dt = np.dtype(dtype)
    if dt == np.bool_:
        return full(shape, True, dtype=bool, chunks=chunks)
    return _create("ones", shape, dt, chunks, label="ones")


def zeros(shape, dtype=float, chunks="auto", **kwargs):
    """An array of zeros."""
    dt = np.dtype(dtype)
    if dt == np.bool_:
        return full(shape, False, dtype=bool, chunks=chunks)
    return _create("zeros", shape, dt, chunks, label="zeros")


def empty(shape, dtype=float, chunks="auto", **kwargs):
    """An array with unspecified values (zeros here)."""
    return zeros(shape, dtype=dtype, chunks=chunks)


def full(shape, fill_value, dtype=None, chunks="auto", **kwargs):
    """An array filled with ``fill_value``."""
    if np.ndim(fill_value) != 0:
        raise ValueError(f"fill_value must be scalar. Received {type(fill_value).__name__} instead.")
    if dtype is None:
        dtype = np.array(fill_value).dtype
    dt = _dtype(dtype)
    fill = np.array(fill_value).astype(dt).item()
    return _create("full", shape, dt, chunks, fill=fill, label="full")


def _like(a, dtype, chunks, shape):
    shape = a.shape if shape is None else shape
    dtype = a.dtype if dtype is None else dtype
    if chunks is None:
        chunks = a.chunks if isinstance(a, Array) and tuple(shape) == a.shape else "auto"
    return shape, dtype, chunks


def ones_like(a, dtype=None, chunks=None, shape=None, **kwargs):
    """An array of ones with the shape (and, unless given, dtype and chunks) of ``a``."""
    shape, dtype, chunks = _like(a, dtype, chunks, shape)
    return ones(shape, dtype=dtype, chunks=chunks)


def zeros_like(a, dtype=None, chunks=None, shape=None, **kwargs):
    """An array of zeros shaped like ``a``."""
    shape, dtype, chunks = _like(a, dtype, chunks, shape)
    return zeros(shape, dtype=dtype, chunks=chunks)


def empty_like(a, dtype=None, chunks=None, shape=None, **kwargs):
    """An array shaped like ``a`` (zeros here)."""
    shape, dtype, chunks = _like(a, dtype, chunks, shape)
    return empty(shape, dtype=dtype, chunks=chunks)


def full_like(a, fill_value, dtype=None, chunks=None, shape=None, **kwargs):
    """An array of ``fill_value`` shaped like ``a``."""
    shape, dtype, chunks = _like(a, dtype, chunks, shape)
    return full(shape, fill_value, dtype=dtype, chunks=chunks)


def arange(start=0, stop=None, step=1, *, chunks="auto", like=None, dtype=None, **kwargs):
    """Evenly spaced values in ``[start, stop)`` (NumPy's ``arange``)."""
    if stop is None:
        start, stop = 0, start
    if step == 0:
        raise ValueError("arange: step must not be zero")
    if dtype is None:
        dtype = np.result_type(*[np.asarray(v) for v in (start, stop, step)])
    dt = _dtype(dtype)
    n = max(0, math.ceil((stop - start) / step))
    chunks = normalize_chunks(chunks, (n,), dt)
    node = ArrayNode.create("arange", dt.name, [n], [list(c) for c in chunks],
                            [float(start), float(stop), float(step)], None, None)
    return Array(node, label="arange")


def linspace(start, stop, num=50, endpoint=True, retstep=False, chunks="auto", dtype=None):
    """``num`` evenly spaced values from ``start`` to ``stop`` (NumPy's ``linspace``)."""
    num = operator.index(num)
    if num < 0:
        raise ValueError(f"Number of samples, {num}, must be non-negative.")
    dt = _dtype(float if dtype is None else dtype)
    chunks = normalize_chunks(chunks, (num,), dt)
    node = ArrayNode.create("linspace", dt.name, [num], [list(c) for c in chunks],
                            [float(start), float(stop), float(num), 1.0 if endpoint else 0.0],
                            None, None)
    out = Array(node, label="linspace")
    if retstep:
        div = (num - 1) if endpoint else num
        return out, (stop - start) / div if div > 0 else float("nan")
    return out


def eye(N, chunks="auto", M=None, k=0, dtype=float):
    """A 2-d array with ones on the ``k``-th diagonal."""
    M = N if M is None else M
    dt = np.dtype(dtype)
    if dt == np.bool_:
        return eye(N, chunks=chunks, M=M, k=k, dtype=np.uint8).astype(bool)
    return _create("eye", (N, M), dt, chunks, params=(k,), label="eye")


def from_npy(path, chunks="auto"):
    """An array read lazily, block by block, from a ``.npy`` file."""
    shape, dtype = _npy_header(path)
    _dtype(dtype)
    chunks = normalize_chunks(chunks, shape, dtype)
    return Array(ArrayNode.from_npy(str(path), [list(c) for c in chunks]), label="from-npy")


def from_zarr(url, component=None, chunks=None, storage_options=None, **kwargs):
    """An array read lazily from a Zarr v3 array directory on the local filesystem (its
    stored chunking unless ``chunks`` says otherwise)."""
    import os

    if storage_options:
        raise NotImplementedError("from_zarr: storage_options (remote stores) are not supported")
    path = os.fspath(url)
    if component:
        path = os.path.join(path, component)
    if chunks is not None:
        from oxidask._oxidask import ArrayNode as _N

        probe = Array(_N.from_zarr(path))
        norm = normalize_chunks(chunks, probe.shape, probe.dtype, previous=probe.chunks)
        return Array(_N.from_zarr(path, [list(c) for c in norm]), label="from-zarr")
    return Array(ArrayNode.from_zarr(path), label="from-zarr")


def to_zarr(arr, url, component=None, storage_options=None, overwrite=False, compute=True,
            **kwargs):
    """Writes ``arr`` as a Zarr v3 array directory at ``url`` (local filesystem), one task per
    block on the current scheduler (irregular blocks are made regular first: Zarr has one
    chunk shape). The directory appears only once every block is written."""
    import os
    import shutil
    import uuid

    if storage_options:
        raise NotImplementedError("to_zarr: storage_options (remote stores) are not supported")
    if not compute:
        raise NotImplementedError("to_zarr(compute=False) is not supported; it writes at once")
    arr = asarray(arr)
    path = os.fspath(url)
    if component:
        path = os.path.join(path, component)
    if os.path.exists(path):
        if not overwrite:
            raise FileExistsError(
                f"{path} already exists; pass overwrite=True or choose another path"
            )
        shutil.rmtree(path)
    regular = arr.rechunk(arr.chunksize)
    tmp = f"{path}.partial-{uuid.uuid4().hex[:8]}"
    try:
        writes = regular._known().zarr_write_handles(tmp)
        base.compute(*writes, **kwargs)
        os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return None


def _npy_header(path):
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    return shape, dtype


def to_npy(path, x):
    """Computes ``x`` and writes it to ``path`` as ``.npy``."""
    asarray(x).to_npy(path)


# --------------------------------------------------------------------------------------------
# elementwise


_UNARY = {
    "negative": "negative", "absolute": "absolute", "square": "square", "sign": "sign",
    "sqrt": "sqrt", "exp": "exp", "expm1": "expm1", "log": "log", "log2": "log2",
    "log10": "log10", "log1p": "log1p", "sin": "sin", "cos": "cos", "tan": "tan",
    "arcsin": "arcsin", "arccos": "arccos", "arctan": "arctan", "sinh": "sinh", "cosh": "cosh",
    "tanh": "tanh", "floor": "floor", "ceil": "ceil", "rint": "round", "isnan": "isnan",
    "isfinite": "isfinite",
}

_BINARY = {
    "add": "add", "subtract": "subtract", "multiply": "multiply", "divide": "divide",
    "true_divide": "divide", "remainder": "mod", "mod": "mod", "power": "power",
    "maximum": "maximum", "minimum": "minimum", "equal": "equal", "not_equal": "not_equal",
    "less": "less", "less_equal": "less_equal", "greater": "greater",
    "greater_equal": "greater_equal", "logical_and": "logical_and",
    "logical_or": "logical_or", "logical_xor": "logical_xor",
}

_COMPARE = {"equal", "not_equal", "less", "less_equal", "greater", "greater_equal"}


def _meta_of(x):
    if isinstance(x, Array):
        return np.empty((1,) * x.ndim, dtype=x.dtype)
    return x


def _result_dtype(ufunc, args):
    """The dtype NumPy gives ``ufunc(*args)`` (from tiny stand-ins of the arrays)."""
    with np.errstate(all="ignore"):
        try:
            return np.asarray(ufunc(*[_meta_of(a) for a in args])).dtype
        except TypeError as e:
            names = ", ".join(
                a.dtype.name if isinstance(a, Array) else type(a).__name__ for a in args
            )
            raise TypeError(f"ufunc '{ufunc.__name__}' not supported for the input types ({names}): {e}") from None


def _broadcast_check(ufunc, arrays):
    shapes = [a.shape for a in arrays]
    try:
        np.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError(
            f"operands could not be broadcast together with shapes "
            f"{' '.join(_tup(s) for s in shapes)} (in {ufunc.__name__})"
        ) from None


def _operand(x):
    """An operand: an Array, a Python/NumPy scalar, or a NumPy array made an Array."""
    if isinstance(x, Array):
        return x
    if isinstance(x, (bool, numbers.Number, np.generic)) and np.ndim(x) == 0:
        return x
    if isinstance(x, Delayed):
        raise TypeError("combine a Delayed with an array through da.from_delayed first")
    a = np.asarray(x)
    if a.dtype == object:
        return NotImplemented
    if a.ndim == 0:
        return a[()]
    return from_array(a, chunks=-1)


def elemwise(ufunc, *args):
    """``ufunc(*args)`` lazily, with NumPy's broadcasting and dtype rules, for the ufuncs the
    engine computes (others raise ``NotImplementedError`` naming the ufunc)."""
    ops = [_operand(a) for a in args]
    if any(o is NotImplemented for o in ops):
        return NotImplemented
    from oxidask.array import _pyblocks

    if _pyblocks.is_complex(ufunc, ops):  # complex results: NumPy per block (see _pyblocks)
        return _pyblocks.elementwise(ufunc, ops)
    name = ufunc.__name__
    arrays = [o for o in ops if isinstance(o, Array)]
    for i, a in enumerate(arrays):
        if a._node is None:
            a._known()
    if len(arrays) > 1:
        _broadcast_check(ufunc, arrays)
    out_dt = _result_dtype(ufunc, ops)
    fn = _COMPOSED.get(name)
    if fn is not None:
        return fn(out_dt, *ops)
    if len(ops) == 1:
        return _unary(name, ops[0], out_dt)
    if len(ops) == 2:
        return _binary(name, ops[0], ops[1], out_dt)
    raise NotImplementedError(f"ufunc '{name}' is not supported by oxidask.array")


def _unary(name, x, out_dt):
    if name == "invert" or name == "logical_not":
        if x.dtype == np.bool_:
            return Array(x._node.unary("invert"))
        if name == "logical_not":
            return x == 0
        raise NotImplementedError(
            f"ufunc '{name}' (bitwise) on {x.dtype} is not supported by oxidask.array; "
            "it works on boolean arrays"
        )
    if name == "positive":
        return x
    if name == "absolute" and x.dtype == np.bool_:
        return x
    op = _UNARY.get(name)
    if op is None:
        raise NotImplementedError(f"ufunc '{name}' is not supported by oxidask.array")
    _dtype(out_dt)
    in_dt = out_dt if op not in ("isnan", "isfinite") else np.result_type(x.dtype, np.float32)
    if op in ("isnan", "isfinite") and x.dtype.kind in "iub":
        return full_like(x, op == "isfinite", dtype=bool)
    if op in ("floor", "ceil", "round") and x.dtype.kind in "iu":
        return x
    if op == "sign" and x.dtype == np.bool_:
        return x
    x = x.astype(in_dt)
    return Array(x._node.unary(op))


def _binary(name, a, b, out_dt):
    if name in ("bitwise_and", "bitwise_or", "bitwise_xor"):
        kinds = {(_dt_of(a)).kind, (_dt_of(b)).kind}
        if kinds != {"b"}:
            raise NotImplementedError(
                f"ufunc '{name}' on integers is not supported by oxidask.array; it works on "
                "boolean arrays"
            )
        name = {"bitwise_and": "logical_and", "bitwise_or": "logical_or",
                "bitwise_xor": "logical_xor"}[name]
    if name in ("logical_and", "logical_or", "logical_xor"):
        a = _as_bool(a)
        b = _as_bool(b)
        return _apply2(name, a, b, np.dtype(bool))
    if name in ("add", "multiply") and out_dt == np.bool_:
        return _binary("logical_or" if name == "add" else "logical_and", a, b, out_dt)
    op = _BINARY.get(name)
    if op is None:
        raise NotImplementedError(f"ufunc '{name}' is not supported by oxidask.array")
    _dtype(out_dt)
    if name in _COMPARE:
        common = np.result_type(_meta_of(a), _meta_of(b))
        if common == np.bool_ and name not in ("equal", "not_equal"):
            common = np.dtype(np.uint8)
        _dtype(common)
        return _apply2(op, a, b, common)
    return _apply2(op, a, b, out_dt)


def _dt_of(x):
    return x.dtype if isinstance(x, Array) else np.asarray(x).dtype


def _as_bool(x):
    if isinstance(x, Array):
        return x if x.dtype == np.bool_ else x != 0
    return bool(x)


def _apply2(op, a, b, dt):
    """``a op b`` with both operands converted to ``dt``."""
    if isinstance(a, Array) and isinstance(b, Array):
        return Array(a.astype(dt)._node.binary(op, b.astype(dt)._node))
    if isinstance(a, Array):
        return Array(a.astype(dt)._node.binary_scalar(op, _scalar(b, dt), False))
    if isinstance(b, Array):
        return Array(b.astype(dt)._node.binary_scalar(op, _scalar(a, dt), True))
    return np.asarray(getattr(np, op)(a, b))


def _scalar(v, dt):
    """A scalar operand as a Python value of ``dt`` (the array's dtype after promotion)."""
    v = np.asarray(v).astype(dt)
    return bool(v) if dt.kind == "b" else v.item()


def _floor_divide(out_dt, a, b):
    if out_dt.kind in "iu":
        a = a.astype(out_dt) if isinstance(a, Array) else a
        b = b.astype(out_dt) if isinstance(b, Array) else b
        r = elemwise(np.remainder, a, b)
        return _apply2("divide", elemwise(np.subtract, a, r), b, out_dt)
    # NumPy's floor_divide: the quotient of a - (a mod b), rounded; a / b where b is 0.
    if not isinstance(b, Array) and b == 0:
        return _apply2("divide", a, b, out_dt)
    r = elemwise(np.remainder, a, b)
    q = _apply2("divide", elemwise(np.subtract, a, r), b, out_dt)
    q = Array(q._node.unary("round"))
    if isinstance(b, Array):
        from oxidask.array.routines import where

        q = where(b == 0, _apply2("divide", a, b, out_dt), q)
    return q


def _true_divide(out_dt, a, b):
    return _binary("divide", a, b, out_dt)


def _trunc(out_dt, x):
    if x.dtype.kind in "iub":
        return x
    from oxidask.array.routines import where

    return where(x < 0, np.ceil(x), np.floor(x))


def _isinf(out_dt, x):
    if x.dtype.kind in "iub":
        return full_like(x, False, dtype=bool)
    return ~(np.isfinite(x) | np.isnan(x))


def _reciprocal(out_dt, x):
    return (1 / x).astype(out_dt) if out_dt.kind == "f" else elemwise(np.floor_divide, 1, x)


def _exp2(out_dt, x):
    return elemwise(np.power, 2.0, x.astype(out_dt)).astype(out_dt)


def _deg2rad(out_dt, x):
    return x.astype(out_dt) * (math.pi / 180)


def _rad2deg(out_dt, x):
    return x.astype(out_dt) * (180 / math.pi)


def _fabs(out_dt, x):
    return abs(x.astype(out_dt))


_COMPOSED = {
    "floor_divide": _floor_divide,
    "true_divide": _true_divide,
    "divide": _true_divide,
    "trunc": _trunc,
    "fix": _trunc,
    "isinf": _isinf,
    "reciprocal": _reciprocal,
    "exp2": _exp2,
    "deg2rad": _deg2rad,
    "radians": _deg2rad,
    "rad2deg": _rad2deg,
    "degrees": _rad2deg,
    "fabs": _fabs,
}


def matmul(a, b):
    """Matrix product (NumPy's ``matmul``)."""
    a, b = asarray(a), asarray(b)
    dt = np.result_type(a.dtype, b.dtype)
    if dt == np.bool_:
        raise NotImplementedError("matmul of boolean arrays is not supported by oxidask.array")
    _dtype(dt)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError("matmul: Input operand does not have enough dimensions")
    ka = a.shape[-1]
    kb = b.shape[-2] if b.ndim >= 2 else b.shape[0]
    if ka != kb:
        raise ValueError(
            f"matmul: Input operand 1 has a mismatch in its core dimension 0 (size {kb} is "
            f"different from {ka}); shapes {a.shape} and {b.shape}"
        )
    if a.ndim == 1 or b.ndim == 1:
        # A 1-d operand gains a unit axis and loses it again (NumPy's rule); that is exactly
        # `dot`, which contracts a 1-d side's only axis.
        return dot(a, b)
    return Array(a.astype(dt)._node.matmul(b.astype(dt)._node))


def dot(a, b):
    """NumPy's ``dot``."""
    a, b = asarray(a), asarray(b)
    dt = np.result_type(a.dtype, b.dtype)
    _dtype(dt)
    if a.ndim and b.ndim:
        ka = a.shape[-1]
        kb = b.shape[-2] if b.ndim >= 2 else b.shape[0]
        if ka != kb:
            raise ValueError(
                f"shapes {a.shape} and {b.shape} not aligned: {ka} (dim {a.ndim - 1}) != "
                f"{kb} (dim {max(b.ndim - 2, 0)})"
            )
    return Array(a.astype(dt)._node.dot(b.astype(dt)._node))


def tensordot(a, b, axes=2):
    """NumPy's ``tensordot`` over one pair of axes."""
    a, b = asarray(a), asarray(b)
    if isinstance(axes, numbers.Integral):
        if axes != 1:
            if axes == 2 and a.ndim == 2 and b.ndim == 2:
                return (a * b).sum()
            raise NotImplementedError("tensordot with axes other than 1 or one pair of axes")
        pair = (-1, 0)
    else:
        xa, xb = axes
        xa = [xa] if isinstance(xa, numbers.Integral) else list(xa)
        xb = [xb] if isinstance(xb, numbers.Integral) else list(xb)
        if len(xa) != 1 or len(xb) != 1:
            raise NotImplementedError("tensordot over more than one pair of axes")
        pair = (xa[0], xb[0])
    dt = np.result_type(a.dtype, b.dtype)
    _dtype(dt)
    return Array(a.astype(dt)._node.tensordot(b.astype(dt)._node, int(pair[0]), int(pair[1])))


def outer(a, b):
    """Outer product of two 1-d arrays."""
    a, b = asarray(a).ravel(), asarray(b).ravel()
    return a[:, None] * b[None, :]


# --------------------------------------------------------------------------------------------
# indexing


def _getitem(x, index):
    if not isinstance(index, tuple):
        index = (index,)
    # A boolean mask.
    if len(index) == 1 and (
        (isinstance(index[0], Array) and index[0].dtype == np.bool_)
        or (isinstance(index[0], np.ndarray) and index[0].dtype == np.bool_)
    ):
        return _mask(x, index[0])
    x._require("indexing")
    # Integer arrays (one axis) go through slices and concatenate.
    fancy = [i for i, v in enumerate(index) if isinstance(v, (list, np.ndarray, Array))]
    if fancy:
        if len(fancy) > 1:
            raise NotImplementedError("indexing with more than one integer array")
        return _take(x, index, fancy[0])
    n_new = sum(1 for v in index if v is None)
    n_ell = sum(1 for v in index if v is Ellipsis)
    if n_ell > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    real = len(index) - n_new - n_ell
    if real > x.ndim:
        raise IndexError(
            f"too many indices for array: array is {x.ndim}-dimensional, but {real} were indexed"
        )
    if n_ell:
        at = index.index(Ellipsis)
        index = index[:at] + (slice(None),) * (x.ndim - real) + index[at + 1:]
    else:
        index = index + (slice(None),) * (x.ndim - real)
    items = []
    axis = 0
    for v in index:
        if v is None:
            items.append(("newaxis", 0, 0, 0))
            continue
        n = x.shape[axis]
        if isinstance(v, slice):
            start, stop, step = v.indices(n)
            items.append(("slice", start, stop, step))
        else:
            try:
                i = operator.index(v)
            except TypeError:
                raise IndexError(
                    "only integers, slices (`:`), ellipsis (`...`), numpy.newaxis (`None`) "
                    f"and integer or boolean arrays are valid indices (got {type(v).__name__})"
                ) from None
            if not -n <= i < n:
                raise IndexError(f"index {i} is out of bounds for axis {axis} with size {n}")
            items.append(("index", i % n, 0, 0))
        axis += 1
    if all(it[0] == "slice" and it[1] == 0 and it[2] == x.shape[k] and it[3] == 1
           for k, it in enumerate(items)) and len(items) == x.ndim:
        return x
    return Array(x._node.getitem(items))


def _take(x, index, at):
    idx = index[at]
    if isinstance(idx, Array):
        idx = idx.compute()
    idx = np.asarray(idx)
    if idx.dtype == np.bool_:
        if idx.ndim != 1:
            raise NotImplementedError("boolean arrays along one of several axes must be 1-d")
        idx = np.nonzero(idx)[0]
    if idx.dtype.kind not in "iu":
        raise IndexError("arrays used as indices must be of integer (or boolean) type")
    if idx.ndim != 1:
        raise NotImplementedError("integer index arrays must be 1-d")
    rest = index[:at] + (slice(None),) + index[at + 1:]
    # The axis the integer array indexes, counted among x's axes.
    axis = sum(1 for v in index[:at] if v is not None and v is not Ellipsis)
    if Ellipsis in index[:at]:
        axis = x.ndim - sum(1 for v in index[at + 1:] if v is not None and v is not Ellipsis) - 1
    n = x.shape[axis]
    bad = idx[(idx < -n) | (idx >= n)]
    if bad.size:
        raise IndexError(f"index {int(bad[0])} is out of bounds for axis {axis} with size {n}")
    idx = idx % n if n else idx
    base_x = x[rest] if any(v is not None and not (isinstance(v, slice) and v == slice(None))
                            for v in rest) else x
    # Runs of consecutive indices become one slice each.
    pieces = []
    start = 0
    for k in range(1, len(idx) + 1):
        if k == len(idx) or idx[k] != idx[k - 1] + 1:
            sl = [slice(None)] * base_x.ndim
            sl[axis] = slice(int(idx[start]), int(idx[k - 1]) + 1)
            pieces.append(base_x[tuple(sl)])
            start = k
    if not pieces:
        sl = [slice(None)] * base_x.ndim
        sl[axis] = slice(0, 0)
        return base_x[tuple(sl)]
    if len(pieces) == 1:
        return pieces[0]
    from oxidask.array.routines import concatenate

    return concatenate(pieces, axis=axis)


def _mask(x, mask):
    if not isinstance(mask, Array):
        mask = from_array(mask, chunks=x.chunks if mask.shape == x.shape else "auto")
    x._require("boolean indexing")
    mask._known()
    if mask.shape != x.shape:
        if mask.ndim == 1 and x.ndim > 1 and mask.shape[0] == x.shape[0]:
            return _take(x, (mask.compute(),), 0)
        raise IndexError(
            f"boolean index did not match indexed array along axis 0; size of axis is "
            f"{x.shape[0] if x.shape else 0} but size of corresponding boolean axis is "
            f"{mask.shape[0] if mask.shape else 0} (shapes {x.shape} and {mask.shape})"
        )
    if x.ndim > 1:
        # Row-major order, as NumPy (and Dask for known shapes) give it.
        x, mask = x.ravel(), mask.ravel()
    picked, counts = x._node.mask_select(mask._node)
    out = Array(
        None,
        label="getitem",
        blocks=picked,
        chunks=((float("nan"),) * len(picked),),
        dtype=x.dtype,
    )
    out._counts = counts
    return out


