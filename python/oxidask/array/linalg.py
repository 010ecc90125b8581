"""``da.linalg``: norms (the engine's reductions) and factorizations as Dask builds them,
NumPy's LAPACK per block in Python tasks:

- :func:`tsqr` / :func:`qr` / :func:`svd`: tall-and-skinny arrays (one column of blocks) by
  the direct TSQR of Benson, Gleich and Demmel (each row block's QR, one QR of the stacked
  R factors, Q blocks multiplied back); short-and-fat arrays (one row of blocks) by QR of
  the leading square and ``Q^T`` times the other column blocks (Dask's ``sfqr``).
- :func:`cholesky`: blocked right-looking Cholesky over square diagonal blocks.
- :func:`solve`, :func:`inv`, :func:`lstsq`: ``a`` in one block, one ``numpy.linalg.solve``
  per column block of ``b`` (``inv`` solves against the identity, as Dask); ``lstsq`` as
  Dask's: QR of ``a``, then ``R x = Q^T b``.

Errors are NumPy's: ``LinAlgError`` (a ``ValueError``) for singular or non-definite
matrices when computed, ``ValueError`` naming the shapes when they do not fit.
"""

import numbers

import numpy as np

from oxidask.array import _pyblocks
from oxidask.array.core import _dtype, asarray, dot
from oxidask.delayed import delayed

LinAlgError = np.linalg.LinAlgError


def _float(a, what):
    a = asarray(a)
    if a.dtype.kind in "iub":
        a = a.astype(np.float64)
    elif a.dtype.kind != "f":
        raise TypeError(f"{what}: array type {a.dtype} is unsupported in linalg")
    return a


def _matrix(a, what):
    a = _float(a, what)
    if a.ndim != 2:
        raise LinAlgError(
            f"{a.ndim}-dimensional array given. Array must be two-dimensional ({what} of "
            f"shape {a.shape})"
        )
    return a


def _square(a, what):
    a = _matrix(a, what)
    if a.shape[0] != a.shape[1]:
        raise LinAlgError(f"Last 2 dimensions of the array must be square ({what} of shape "
                          f"{a.shape})")
    return a


# --------------------------------------------------------------------------------------------
# per-block NumPy (module level: workers unpickle them by reference)


def _qr(block):
    return np.linalg.qr(block)


def _item(pair, i):
    return pair[i]


def _stacked_qr(*rs):
    return np.linalg.qr(np.concatenate(rs, axis=0))


def _q_block(q, stacked, start, stop):
    return q @ stacked[0][start:stop]


def _r_of(stacked):
    return stacked[1]


def _svd_of_r(stacked):
    return np.linalg.svd(stacked[1], full_matrices=False)


def _times(left, right):
    return left @ right


def _transpose_times(q, block):
    return q.T @ block


def _solve_block(a, b):
    return np.linalg.solve(a, b)


def _chol_diagonal(a_kk, *left):
    s = a_kk.copy()
    for l_kj in left:
        s -= l_kj @ l_kj.T
    return np.linalg.cholesky(s)


def _chol_below(a_ik, l_kk, n, *left):
    s = a_ik.copy()
    for l_ij, l_kj in zip(left[:n], left[n:]):
        s -= l_ij @ l_kj.T
    return np.linalg.solve(l_kk, s.T).T


def _zeros(shape, dtype):
    return np.zeros(shape, dtype=dtype)


def _rank(m):
    return np.asarray(np.linalg.matrix_rank(m), dtype=np.int64)


def _singular_values(m):
    return np.linalg.svd(m, compute_uv=False)


# --------------------------------------------------------------------------------------------
# QR and SVD


def _tsqr_parts(a):
    """The pieces of TSQR: per-block QR results, the QR of the stacked R's, k."""
    m, n = a.shape
    blocks = a.to_delayed()[:, 0]
    pairs = [delayed(_qr, pure=True, name="qr-block")(b) for b in blocks]
    rs = [delayed(_item, pure=True, name="r-block")(p, 1) for p in pairs]
    stacked = delayed(_stacked_qr, pure=True, name="qr-stacked")(*rs)
    rows = [min(c, n) for c in a.chunks[0]]
    return pairs, stacked, rows, min(m, n)


def tsqr(data, compute_svd=False, _max_vchunk_size=None):
    """QR (or SVD with ``compute_svd=True``) of a tall-and-skinny array: one column of
    blocks, any number of row blocks (Dask's ``tsqr``). Returns ``q, r`` or ``u, s, v``.

    >>> import numpy as np, oxidask.array as da
    >>> a = da.from_array(np.arange(40.0).reshape(10, 4) ** 0.5, chunks=(3, 4))
    >>> q, r = da.linalg.tsqr(a)
    >>> q.shape, r.shape
    ((10, 4), (4, 4))
    >>> bool(np.allclose((q @ r).compute(), a.compute()))
    True
    """
    a = _matrix(data, "tsqr")
    if len(a.chunks[1]) != 1:
        raise ValueError(
            "Input must have the following properties:\n  1. Have two dimensions\n  2. Have "
            f"only one column of blocks (shape {a.shape}, chunks {a.chunks}); rechunk with "
            "{1: -1}"
        )
    m, n = a.shape
    pairs, stacked, rows, k = _tsqr_parts(a)
    dt = a.dtype
    offsets = np.concatenate([[0], np.cumsum(rows)]).astype(int)
    if compute_svd:
        usv = delayed(_svd_of_r, pure=True, name="svd-r")(stacked)
        u_r = delayed(_item, pure=True)(usv, 0)
    q_blocks = []
    for i, p in enumerate(pairs):
        q_i = delayed(_item, pure=True, name="q-block")(p, 0)
        qb = delayed(_q_block, pure=True, name="q")(q_i, stacked, int(offsets[i]),
                                                    int(offsets[i + 1]))
        if compute_svd:
            qb = delayed(_times, pure=True, name="u")(qb, u_r)
        q_blocks.append(qb)
    left = _pyblocks.from_tasks(q_blocks, (a.chunks[0], (k,)), dt, "u" if compute_svd else "q")
    if not compute_svd:
        r = _pyblocks.from_tasks([delayed(_r_of, pure=True, name="r")(stacked)], ((k,), (n,)),
                                 dt, "r")
        return left, r
    s = _pyblocks.from_tasks([delayed(_item, pure=True, name="s")(usv, 1)], ((k,),), dt, "s")
    v = _pyblocks.from_tasks([delayed(_item, pure=True, name="v")(usv, 2)], ((k,), (n,)), dt,
                             "v")
    return left, s, v


def sfqr(data, name=None):
    """QR of a short-and-fat array: one row of blocks (Dask's ``sfqr``): the QR of the
    leading ``m`` columns, then ``Q^T`` times every column block.

    >>> import numpy as np, oxidask.array as da
    >>> a = da.from_array(np.arange(24.0).reshape(3, 8) ** 0.5, chunks=(3, 4))
    >>> q, r = da.linalg.sfqr(a)
    >>> bool(np.allclose((q @ r).compute(), a.compute()))
    True
    """
    a = _matrix(data, "sfqr")
    if len(a.chunks[0]) != 1:
        raise ValueError(
            f"sfqr needs one row of blocks (shape {a.shape}, chunks {a.chunks}); rechunk "
            "with {0: -1}"
        )
    m, n = a.shape
    k = min(m, n)
    cols = list(a.chunks[1])
    if cols[0] < k:  # the first block must hold the leading square
        width, j = 0, 0
        while width < k:
            width += cols[j]
            j += 1
        cols = [width] + cols[j:]
        a = a.rechunk((a.chunks[0], tuple(cols)))
    blocks = a.to_delayed()[0]
    pair = delayed(_qr, pure=True, name="qr-block")(blocks[0])
    q = delayed(_item, pure=True, name="q")(pair, 0)
    r_blocks = [delayed(_item, pure=True, name="r")(pair, 1)]
    r_blocks += [delayed(_transpose_times, pure=True, name="r")(q, b) for b in blocks[1:]]
    dt = a.dtype
    q_arr = _pyblocks.from_tasks([q], ((m,), (k,)), dt, "q")
    r_arr = _pyblocks.from_tasks(r_blocks, ((k,), a.chunks[1]), dt, "r")
    return q_arr, r_arr


def qr(a):
    """The reduced QR factorization ``q, r`` (``q @ r == a``, ``q`` orthonormal columns, ``r``
    upper triangular) of a tall-and-skinny array (one column of blocks: :func:`tsqr`) or a
    short-and-fat one (one row of blocks: :func:`sfqr`), as Dask. The signs of ``r``'s
    diagonal may differ from NumPy's (QR is unique up to them).

    >>> import numpy as np, oxidask.array as da
    >>> a = da.from_array(np.random.default_rng(0).normal(size=(100, 5)), chunks=(25, 5))
    >>> q, r = da.linalg.qr(a)
    >>> bool(np.allclose((q.T @ q).compute(), np.eye(5)))
    True
    """
    a = _matrix(a, "qr")
    if len(a.chunks[1]) == 1:
        return tsqr(a)
    if len(a.chunks[0]) == 1:
        return sfqr(a)
    raise NotImplementedError(
        "qr currently supports only tall-and-skinny (single column chunk/block; however, can "
        "have multiple row chunks/blocks) or short-and-fat (single row chunk/block; however, "
        f"can have multiple column chunks/blocks) input; got chunks {a.chunks}"
    )


def _flip_signs(u, v):
    """Dask's ``svd_flip``: each singular pair signed so that ``u``'s column sums are >= 0."""
    signs = (u.sum(axis=0, keepdims=True) >= 0).astype(u.dtype) * 2.0 - 1.0
    return u * signs, v * signs.T


def svd(a, coerce_signs=True):
    """The reduced singular value decomposition ``u, s, v`` (``(u * s) @ v == a``; ``v`` is
    NumPy's ``vh``) of a tall-and-skinny array (one column of blocks; TSQR then the SVD of
    R) or a short-and-fat one (through its transpose), as Dask. ``coerce_signs`` signs
    each singular pair so that ``u``'s columns sum to >= 0 (deterministic signs).

    >>> import numpy as np, oxidask.array as da
    >>> m = np.random.default_rng(1).normal(size=(60, 4))
    >>> u, s, v = da.linalg.svd(da.from_array(m, chunks=(20, 4)))
    >>> bool(np.allclose(s.compute(), np.linalg.svd(m, compute_uv=False)))
    True
    """
    a = _matrix(a, "svd")
    if len(a.chunks[1]) == 1:
        u, s, v = tsqr(a, compute_svd=True)
    elif len(a.chunks[0]) == 1:
        vt, s, ut = tsqr(a.T, compute_svd=True)
        u, v = ut.T, vt.T
    else:
        raise NotImplementedError(
            "Array must be chunked in one dimension only. This function (svd) only supports "
            "tall-and-skinny or short-and-fat matrices; for others use "
            f"da.linalg.svd_compressed (got chunks {a.chunks})"
        )
    if coerce_signs:
        u, v = _flip_signs(u, v)
    return u, s, v


# --------------------------------------------------------------------------------------------
# Cholesky, solve, inverse, least squares


def cholesky(a, lower=False):
    """The Cholesky factor of a symmetric positive-definite matrix: upper triangular ``u``
    with ``u.T @ u == a`` (``lower=True``: ``l`` with ``l @ l.T == a``, NumPy's result), as
    Dask's ``cholesky``. Blocked: one task per block of the lower triangle; the column
    blocks are made those of the rows first. Not positive definite: NumPy's ``LinAlgError``
    when computed.

    >>> import numpy as np, oxidask.array as da
    >>> m = np.array([[4.0, 2.0], [2.0, 3.0]])
    >>> da.linalg.cholesky(da.from_array(m, chunks=1), lower=True).compute()
    array([[2.        , 0.        ],
           [1.        , 1.41421356]])
    """
    a = _square(a, "cholesky")
    if a.chunks[1] != a.chunks[0]:
        a = a.rechunk((a.chunks[0], a.chunks[0]))
    grid = a.to_delayed()
    nb = len(a.chunks[0])
    sizes = a.chunks[0]
    dt = a.dtype
    low = {}
    for k in range(nb):
        left = [low[k, j] for j in range(k)]
        low[k, k] = delayed(_chol_diagonal, pure=True, name="cholesky")(grid[k, k], *left)
        for i in range(k + 1, nb):
            low[i, k] = delayed(_chol_below, pure=True, name="cholesky")(
                grid[i, k], low[k, k], k, *[low[i, j] for j in range(k)],
                *[low[k, j] for j in range(k)])
    handles = []
    for i in range(nb):
        for j in range(nb):
            handles.append(low[i, j] if j <= i else
                           delayed(_zeros, pure=True)((sizes[i], sizes[j]), dt))
    out = _pyblocks.from_tasks(handles, a.chunks, dt, "cholesky")
    return out if lower else out.T


def solve(a, b, sym_pos=None, assume_a="gen"):
    """The solution ``x`` of ``a @ x == b`` (NumPy's ``linalg.solve``) for square ``a`` and
    ``b`` of shape ``(n,)`` or ``(n, k)``: ``a`` in one block, one ``numpy.linalg.solve``
    per column block of ``b``; ``x``'s rows are blocked as ``a``'s columns. A singular ``a``
    raises NumPy's ``LinAlgError`` when computed.

    >>> import numpy as np, oxidask.array as da
    >>> a = da.from_array(np.array([[3.0, 1.0], [1.0, 2.0]]), chunks=1)
    >>> da.linalg.solve(a, da.from_array(np.array([9.0, 8.0]), chunks=1)).compute()
    array([2., 3.])
    """
    a = _square(a, "solve")
    b = _float(b, "solve")
    if b.ndim not in (1, 2) or b.shape[0] != a.shape[0]:
        raise ValueError(
            f"solve: a of shape {a.shape} and b of shape {b.shape} do not fit: b must be "
            f"({a.shape[0]},) or ({a.shape[0]}, k)"
        )
    dt = np.result_type(a.dtype, b.dtype)
    _dtype(dt)
    whole = a.astype(dt).rechunk(-1).to_delayed()[0, 0]
    n = a.shape[0]
    if b.ndim == 1:
        one = b.astype(dt).rechunk(-1).to_delayed()[0]
        x = _pyblocks.from_tasks([delayed(_solve_block, pure=True, name="solve")(whole, one)],
                                 ((n,),), dt, "solve")
        return x.rechunk((a.chunks[1],))
    cols = b.astype(dt).rechunk({0: -1}).to_delayed()[0]
    handles = [delayed(_solve_block, pure=True, name="solve")(whole, c) for c in cols]
    x = _pyblocks.from_tasks(handles, ((n,), b.chunks[1]), dt, "solve")
    return x.rechunk((a.chunks[1], b.chunks[1]))


def inv(a):
    """The inverse of a square matrix (NumPy's ``linalg.inv``): :func:`solve` against the
    identity, blocked as ``a``, as Dask.

    >>> import numpy as np, oxidask.array as da
    >>> da.linalg.inv(da.from_array(np.array([[2.0, 0.0], [0.0, 4.0]]), chunks=1)).compute()
    array([[0.5 , 0.  ],
           [0.  , 0.25]])
    """
    from oxidask.array.core import eye

    a = _square(a, "inv")
    return solve(a, eye(a.shape[0], chunks=(a.chunks[0], a.chunks[0]), dtype=a.dtype))


def lstsq(a, b, rcond=None):
    """The least-squares solution of ``a @ x == b`` as Dask computes it: ``q, r = qr(a)``,
    then ``r x = q.T b``. Returns ``x, residuals, rank, s`` (the residuals' squared sums,
    shape ``(1,)`` for 1-d ``b``; ``r``'s rank; ``r``'s singular values, which are ``a``'s).
    Needs ``a`` of full column rank (a singular ``r`` raises ``LinAlgError``).

    >>> import numpy as np, oxidask.array as da
    >>> a = da.from_array(np.array([[1.0, 0.0], [1.0, 1.0], [1.0, 2.0]]), chunks=(2, 2))
    >>> x, res, rank, s = da.linalg.lstsq(a, da.from_array(np.array([1.0, 2.0, 4.0]), chunks=2))
    >>> np.round(x.compute(), 6)
    array([0.833333, 1.5     ])
    """
    a = _matrix(a, "lstsq")
    b = _float(b, "lstsq")
    if b.ndim not in (1, 2) or b.shape[0] != a.shape[0]:
        raise ValueError(
            f"Incompatible dimensions: a of shape {a.shape} and b of shape {b.shape} (b must "
            f"have {a.shape[0]} rows)"
        )
    if a.shape[0] < a.shape[1]:
        raise NotImplementedError(
            f"lstsq of an underdetermined system (shape {a.shape}): oxidask.array solves "
            "tall systems (rows >= columns) through QR, as Dask"
        )
    q, r = qr(a.rechunk({1: -1}))
    x = solve(r, dot(q.T, b))  # dot: the engine's matmul takes no 1-d operand
    resid = b - dot(a, x)
    residuals = (resid * resid).sum(axis=0, keepdims=b.ndim == 1)
    r_whole = r.to_delayed()[0, 0]
    rank = _pyblocks.from_tasks([delayed(_rank, pure=True, name="rank")(r_whole)], (),
                                np.int64, "rank")
    s = _pyblocks.from_tasks([delayed(_singular_values, pure=True, name="s")(r_whole)],
                             ((a.shape[1],),), r.dtype, "s")
    return x, residuals, rank, s


# --------------------------------------------------------------------------------------------
# norms


def norm(x, ord=None, axis=None, keepdims=False):
    """Vector or matrix norm (NumPy's ``linalg.norm``) for ``ord`` None/'fro', 1, 2 (vectors),
    inf, -inf, 0 and other p-norms of vectors, 1/inf/'fro' of matrices.

    >>> import numpy as np, oxidask.array as da
    >>> float(da.linalg.norm(da.from_array(np.array([3.0, 4.0]), chunks=1)).compute())
    5.0
    """
    x = asarray(x)
    if x.dtype.kind in "iub":
        x = x.astype(float)
    if axis is None:
        if ord is None or ord == "fro" and x.ndim == 2:
            return np.sqrt((x * x).sum(keepdims=keepdims))
        axis = tuple(range(x.ndim))
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    if len(axes) == 1:
        a = axes[0]
        if ord is None or ord == 2:
            return np.sqrt((x * x).sum(axis=a, keepdims=keepdims))
        if ord == np.inf:
            return abs(x).max(axis=a, keepdims=keepdims)
        if ord == -np.inf:
            return abs(x).min(axis=a, keepdims=keepdims)
        if ord == 0:
            return (x != 0).astype(x.dtype).sum(axis=a, keepdims=keepdims)
        if ord == 1:
            return abs(x).sum(axis=a, keepdims=keepdims)
        if isinstance(ord, str):
            raise ValueError(f"Invalid norm order '{ord}' for vectors")
        return (abs(x) ** ord).sum(axis=a, keepdims=keepdims) ** (1.0 / ord)
    if len(axes) == 2:
        r, c = axes
        if ord is None or ord == "fro":
            return np.sqrt((x * x).sum(axis=axes, keepdims=keepdims))
        if ord == 1:
            return abs(x).sum(axis=r, keepdims=True).max(axis=c, keepdims=True) if keepdims \
                else abs(x).sum(axis=r).max(axis=c - 1 if c > r else c)
        if ord == np.inf:
            return abs(x).sum(axis=c, keepdims=True).max(axis=r, keepdims=True) if keepdims \
                else abs(x).sum(axis=c).max(axis=r if r < c else r - 1)
        raise NotImplementedError(f"matrix norm of ord={ord!r}")
    raise ValueError("Improper number of dimensions to norm.")


__all__ = ["LinAlgError", "cholesky", "inv", "lstsq", "norm", "qr", "sfqr", "solve", "svd",
           "tsqr"]
