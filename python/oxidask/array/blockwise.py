"""``map_blocks`` and ``map_overlap``: Python functions over the blocks of arrays.

Each output block is one Python task: it reads the input blocks as ``numpy.ndarray``\\ s
(converted by the registered ``to_numpy`` operation, without copying dense blocks), calls
the function, and a ``from_numpy`` task turns its result back into a block of the engine.
The rest of the graph stays Rust kernels, so one graph mixes both on every scheduler.
"""

import inspect
import itertools
import numbers

import numpy as np

from oxidask.array.core import Array, _dtype, _numpy_blocks_node, asarray, normalize_chunks
from oxidask.delayed import delayed


def _accepts(func, name):
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _infer_dtype(func, arrays, args, kwargs):
    """The dtype of ``func`` applied to tiny blocks of the inputs' dtypes, as Dask infers it
    from meta arrays; ``None`` when the function cannot be called that way."""
    metas = [np.ones((1,) * a.ndim, dtype=a.dtype) if isinstance(a, Array) else a for a in args]
    try:
        with np.errstate(all="ignore"):
            out = func(*metas, **kwargs)
        return np.asarray(out).dtype
    except Exception:
        return None


def map_blocks(func, *args, dtype=None, chunks=None, drop_axis=None, new_axis=None,
               name=None, token=None, meta=None, enforce_ndim=False, **kwargs):
    """``func`` applied to every block of the array arguments (Dask's ``map_blocks``).

    Array arguments must have the same number of blocks per axis (arrays of one shape are
    rechunked like the first); other arguments and ``kwargs`` are passed to every call.
    ``chunks`` gives the output's block lengths (a tuple of tuples) or one block shape
    (a tuple of ints) when ``func`` changes shapes; ``drop_axis`` and ``new_axis`` remove or
    add axes. A function taking ``block_id`` or ``block_info`` receives them, as in Dask.

    >>> import numpy as np, oxidask.array as da
    >>> x = da.arange(10, chunks=5)
    >>> x.map_blocks(lambda b: b * 2, dtype=x.dtype).compute()
    array([ 0,  2,  4,  6,  8, 10, 12, 14, 16, 18])
    """
    if not callable(func):
        raise TypeError(f"map_blocks needs a function first, got {type(func).__name__}")
    arrays = [a for a in args if isinstance(a, Array)]
    if not arrays:
        raise ValueError("map_blocks needs at least one dask array among the arguments")
    first = arrays[0]
    for a in arrays:
        a._known()
    if drop_axis is not None:
        drop = drop_axis if isinstance(drop_axis, (list, tuple)) else [drop_axis]
        drop = sorted(d % first.ndim for d in drop)
        # A dropped axis is handed to the function whole.
        for i, a in enumerate(args):
            if isinstance(a, Array) and any(len(a.chunks[d]) > 1 for d in drop if d < a.ndim):
                spec = {d: -1 for d in drop}
                args = args[:i] + (a.rechunk(spec),) + args[i + 1:]
        arrays = [a for a in args if isinstance(a, Array)]
        first = arrays[0]
    else:
        drop = []
    # Align arrays of one shape to the first one's chunks.
    aligned = []
    for a in args:
        if isinstance(a, Array) and a is not first and a.shape == first.shape and a.chunks != first.chunks:
            a = a.rechunk(first.chunks)
        aligned.append(a)
    args = tuple(aligned)
    arrays = [a for a in args if isinstance(a, Array)]
    grid = first.numblocks
    for a in arrays[1:]:
        if a.ndim != first.ndim:
            raise ValueError(
                f"map_blocks: arrays of {first.ndim} and {a.ndim} dimensions; give them the "
                "same number of axes (e.g. with x[None, :])"
            )
        for ax, (n, m) in enumerate(zip(a.numblocks, grid)):
            if n != m and n != 1:
                raise ValueError(
                    f"map_blocks: arrays with {grid} and {a.numblocks} blocks cannot be matched "
                    f"(axis {ax}); rechunk them alike"
                )
    if dtype is None and meta is not None:
        dtype = meta.dtype
    if dtype is None:
        dtype = _infer_dtype(func, arrays, args, kwargs) or first.dtype
    dt = _dtype(dtype)
    # Output chunks.
    if chunks is not None:
        if all(isinstance(c, numbers.Integral) for c in chunks):
            out_chunks = tuple(
                (int(c),) * (grid[i] if i < len(grid) else 1) for i, c in enumerate(chunks)
            )
            if new_axis is None and drop_axis is None and len(chunks) != len(grid):
                out_chunks = tuple((int(c),) for c in chunks)
        else:
            out_chunks = tuple(tuple(int(x) for x in c) for c in chunks)
    else:
        out_chunks = [c for i, c in enumerate(first.chunks) if i not in drop]
        if new_axis is not None:
            new = new_axis if isinstance(new_axis, (list, tuple)) else [new_axis]
            nd = len(out_chunks) + len(new)
            for ax in sorted(n % nd for n in new):
                out_chunks.insert(ax, (1,))
        out_chunks = tuple(out_chunks)
    out_grid = [len(c) for c in out_chunks]
    in_axes = [i for i in range(first.ndim) if i not in drop]
    handles_of = {id(a): a.to_delayed() for a in arrays}
    fn = delayed(func, pure=True, name=name)
    want_id = _accepts(func, "block_id")
    want_info = _accepts(func, "block_info")
    out_handles = []
    for out_idx in itertools.product(*[range(n) for n in out_grid]):
        # The input block of each array: output axes that came from inputs index them.
        if len(out_grid) == len(grid) + 0 and not drop and new_axis is None:
            in_idx = out_idx
        else:
            kept = [i for i in range(len(out_grid))]
            if new_axis is not None:
                new = new_axis if isinstance(new_axis, (list, tuple)) else [new_axis]
                newset = {n % len(out_grid) for n in new}
                kept = [i for i in kept if i not in newset]
            pos = dict(zip(in_axes, [out_idx[i] for i in kept]))
            in_idx = tuple(pos.get(i, 0) for i in range(first.ndim))
        call_args = []
        for a in args:
            if isinstance(a, Array):
                blocks = handles_of[id(a)]
                idx = tuple(i if n > 1 else 0 for i, n in zip(in_idx, a.numblocks))
                call_args.append(blocks[idx])
            else:
                call_args.append(a)
        kw = dict(kwargs)
        if want_id:
            kw["block_id"] = out_idx
        if want_info:
            kw["block_info"] = _block_info(args, in_idx, out_idx, out_chunks, dt)
        out_handles.append(fn(*call_args, **kw))
    return Array(_numpy_blocks_node(out_handles, [list(c) for c in out_chunks], dt.name),
                 label=name or getattr(func, "__name__", "map_blocks"))


def _block_info(args, in_idx, out_idx, out_chunks, dt):
    info = {}
    k = 0
    for a in args:
        if isinstance(a, Array):
            idx = tuple(i if n > 1 else 0 for i, n in zip(in_idx, a.numblocks))
            info[k] = {
                "shape": a.shape,
                "num-chunks": a.numblocks,
                "chunk-location": idx,
                "array-location": [
                    (int(sum(a.chunks[ax][:i])), int(sum(a.chunks[ax][: i + 1])))
                    for ax, i in enumerate(idx)
                ],
            }
            k += 1
    info[None] = {
        "shape": tuple(sum(c) for c in out_chunks),
        "num-chunks": tuple(len(c) for c in out_chunks),
        "chunk-location": out_idx,
        "chunk-shape": tuple(c[i] for c, i in zip(out_chunks, out_idx)),
        "array-location": [
            (int(sum(c[:i])), int(sum(c[: i + 1]))) for c, i in zip(out_chunks, out_idx)
        ],
        "dtype": dt,
    }
    return info


def _boundary(boundary):
    if boundary is None:
        return "none", 0.0
    if isinstance(boundary, dict):
        values = set(boundary.values())
        if len(values) > 1:
            raise NotImplementedError("different boundaries per axis are not supported")
        boundary = values.pop() if values else "none"
    if isinstance(boundary, str):
        if boundary not in ("none", "reflect", "periodic", "nearest"):
            raise ValueError(
                f"boundary {boundary!r} is not one of 'none', 'reflect', 'periodic', "
                "'nearest' or a constant"
            )
        return boundary, 0.0
    if isinstance(boundary, numbers.Number):
        return "constant", float(boundary)
    raise ValueError(f"boundary {boundary!r} is not a string or a number")


def _depth(depth, ndim):
    if isinstance(depth, dict):
        return [int(depth.get(i, depth.get(i - ndim, 0))) for i in range(ndim)]
    if isinstance(depth, numbers.Integral):
        return [int(depth)] * ndim
    depth = [int(d) for d in depth]
    if len(depth) != ndim:
        raise ValueError(f"depth {depth} needs one entry per axis ({ndim})")
    return depth


def overlap(x, depth, boundary):
    """Every block extended by ``depth`` elements of its neighbours (Dask's
    ``da.overlap.overlap``)."""
    x = asarray(x)
    b, value = _boundary(boundary)
    return Array(x._known().overlap(_depth(depth, x.ndim), b, value), label="overlap")


def trim_internal(x, original, depth, boundary):
    """``x`` (computed from ``original`` overlapped by ``depth``) with the overlap cut off."""
    b, value = _boundary(boundary)
    return Array(x._node.trim_overlap(original._node, _depth(depth, original.ndim), b, value),
                 label="trim")


def map_overlap(func, *args, depth=None, boundary=None, trim=True, align_arrays=True,
                allow_rechunk=True, dtype=None, **kwargs):
    """``func`` applied to every block extended by ``depth`` elements of its neighbours,
    the extension cut off afterwards (Dask's ``map_overlap``). ``boundary`` says what lies
    beyond the array's edges: ``'none'`` (the default, as in Dask), ``'reflect'``,
    ``'periodic'``, ``'nearest'`` or a constant.

    >>> import numpy as np, oxidask.array as da
    >>> x = da.from_array(np.array([1, 1, 2, 3, 3, 3, 2, 1, 1]), chunks=5)
    >>> x.map_overlap(lambda b: np.gradient(b), depth=1, boundary='none', dtype=float).compute()
    array([ 0. ,  0.5,  1. ,  0.5,  0. , -0.5, -1. , -0.5,  0. ])
    """
    if isinstance(func, Array) and callable(args[0] if args else None):
        func, args = args[0], (func,) + args[1:]
    arrays = [a for a in args if isinstance(a, Array)]
    if len(arrays) != 1:
        raise NotImplementedError("map_overlap over more than one array")
    x = arrays[0]._known() and arrays[0]
    if depth is None:
        depth = 0
    d = _depth(depth, x.ndim)
    for ax, (dd, c) in enumerate(zip(d, x.chunks)):
        small = min((n for n in c if n > 0), default=0)
        if dd > small and allow_rechunk:
            x = x.rechunk({ax: max(dd, small * ((dd + small - 1) // small))})
    ext = overlap(x, d, boundary)
    if dtype is None:
        dtype = _infer_dtype(func, [x], [x if isinstance(a, Array) else a for a in args], kwargs) \
            or x.dtype
    call = tuple(ext if isinstance(a, Array) else a for a in args)
    applied = map_blocks(func, *call, dtype=dtype, chunks=ext.chunks, **kwargs)
    if not trim:
        return applied
    return trim_internal(applied, x, d, boundary)
