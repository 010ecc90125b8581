"""``da.linalg``: the norms (built from the engine's reductions). Decompositions (QR, SVD,
solve, …) are not there yet."""

import numpy as np

from oxidask.array.core import asarray


def norm(x, ord=None, axis=None, keepdims=False):
    """Vector or matrix norm (NumPy's ``linalg.norm``) for ``ord`` None/'fro', 1, 2 (vectors),
    inf, -inf, 0 and other p-norms of vectors, 1/inf/'fro' of matrices."""
    x = asarray(x)
    if x.dtype.kind in "iub":
        x = x.astype(float)
    if axis is None:
        if ord is None or ord == "fro" and x.ndim == 2:
            return np.sqrt((x * x).sum(keepdims=keepdims))
        axis = tuple(range(x.ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
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


__all__ = ["norm"]
