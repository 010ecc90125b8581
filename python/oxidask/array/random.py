"""Random arrays (``da.random``): Dask's ``RandomState``, ``default_rng()`` ``Generator`` and
the module's functions, reproducible from a seed.

Two kinds of blocks:

- ``random``/``random_sample``, ``uniform``, ``normal``, ``standard_normal``, ``randint`` and
  ``integers`` come from oxidask's counter-based generator in Rust, computed per block from
  each element's position: the same seed gives the same array whatever the chunking.
- Every other distribution (``beta``, ``gamma``, ``poisson``, ``choice`` …) runs NumPy once
  per block in a Python task, as Dask does: block ``i`` of a call draws from its own stream,
  ``numpy.random.SeedSequence(call_seed, spawn_key=(i,))`` (NumPy's recipe for independent
  streams) through MT19937 for ``RandomState`` and PCG64 for ``Generator``. The same seed
  and chunks give the same array on every scheduler; other chunks give other numbers, as in
  Dask.

The numbers differ from NumPy's for the same seed (Dask's do too); the distributions are
NumPy's. Parameters may be scalars, NumPy arrays or dask arrays, broadcast against ``size``
as NumPy broadcasts them; invalid parameters raise NumPy's own errors when the array is
made.

>>> import oxidask.array as da
>>> x = da.random.default_rng(42).beta(2.0, 5.0, size=(1000, 1000), chunks=250)
>>> x.chunks[0]
(250, 250, 250, 250)
"""

import inspect
import numbers
import operator

import numpy as np

from oxidask.array import _pyblocks
from oxidask.array.core import Array, _create, _dtype, asarray, normalize_chunks
from oxidask.delayed import delayed

_REQUIRED = inspect.Parameter.empty

#: Distributions run by NumPy per block: name -> (parameters with defaults, integer result).
_DISTRIBUTIONS = {
    "beta": ((("a", _REQUIRED), ("b", _REQUIRED)), False),
    "binomial": ((("n", _REQUIRED), ("p", _REQUIRED)), True),
    "chisquare": ((("df", _REQUIRED),), False),
    "exponential": ((("scale", 1.0),), False),
    "f": ((("dfnum", _REQUIRED), ("dfden", _REQUIRED)), False),
    "gamma": ((("shape", _REQUIRED), ("scale", 1.0)), False),
    "geometric": ((("p", _REQUIRED),), True),
    "gumbel": ((("loc", 0.0), ("scale", 1.0)), False),
    "hypergeometric": ((("ngood", _REQUIRED), ("nbad", _REQUIRED), ("nsample", _REQUIRED)),
                       True),
    "laplace": ((("loc", 0.0), ("scale", 1.0)), False),
    "logistic": ((("loc", 0.0), ("scale", 1.0)), False),
    "lognormal": ((("mean", 0.0), ("sigma", 1.0)), False),
    "logseries": ((("p", _REQUIRED),), True),
    "negative_binomial": ((("n", _REQUIRED), ("p", _REQUIRED)), True),
    "noncentral_chisquare": ((("df", _REQUIRED), ("nonc", _REQUIRED)), False),
    "noncentral_f": ((("dfnum", _REQUIRED), ("dfden", _REQUIRED), ("nonc", _REQUIRED)), False),
    "pareto": ((("a", _REQUIRED),), False),
    "poisson": ((("lam", 1.0),), True),
    "power": ((("a", _REQUIRED),), False),
    "rayleigh": ((("scale", 1.0),), False),
    "standard_cauchy": ((), False),
    "standard_exponential": ((), False),
    "standard_gamma": ((("shape", _REQUIRED),), False),
    "standard_t": ((("df", _REQUIRED),), False),
    "triangular": ((("left", _REQUIRED), ("mode", _REQUIRED), ("right", _REQUIRED)), False),
    "vonmises": ((("mu", _REQUIRED), ("kappa", _REQUIRED)), False),
    "wald": ((("mean", _REQUIRED), ("scale", _REQUIRED)), False),
    "weibull": ((("a", _REQUIRED),), False),
    "zipf": ((("a", _REQUIRED),), True),
}


def _size(size):
    if size is None:
        return None
    if isinstance(size, numbers.Integral):
        return (int(size),)
    try:
        return tuple(operator.index(s) for s in size)
    except TypeError:
        raise TypeError(
            f"size must be an int or a tuple of ints, got {size!r}"
        ) from None


def _shape(p):
    return tuple(p.shape) if isinstance(p, Array) else tuple(np.shape(p))


def _stream(family, entropy, block):
    """The NumPy generator of one block: its own stream of the call's seed."""
    seq = np.random.SeedSequence(entropy, spawn_key=(block,))
    if family == "generator":
        return np.random.Generator(np.random.PCG64(seq))
    return np.random.RandomState(np.random.MT19937(seq))


def _draw(family, entropy, block, name, dtype, shape, layout, *arrays):
    """One block of distribution ``name``: ``layout`` holds the scalar parameters and marks
    where the block's slices of array parameters (``arrays``) go."""
    it = iter(arrays)
    params = [next(it) if is_array else value for is_array, value in layout]
    out = getattr(_stream(family, entropy, block), name)(*params, size=shape)
    return np.asarray(out).astype(dtype, copy=False).reshape(shape)


def _choice_block(family, entropy, block, shape, replace, a, p):
    out = _stream(family, entropy, block).choice(a, size=shape, replace=replace, p=p)
    return np.asarray(out).reshape(shape)


def _take_rows(index, dtype, shape, starts, *blocks):
    """Rows ``index`` of an array given as the blocks (along axis 0) that hold them."""
    out = np.empty(shape, dtype=dtype)
    for pos, (lo, block) in enumerate(zip(starts, blocks)):
        hi = lo + len(block)
        sel = (index >= lo) & (index < hi)
        out[np.nonzero(sel)[0]] = block[index[sel] - lo]
    return out


class RandomState:
    """Random arrays from one seed (Dask's ``da.random.RandomState``); without a seed each
    call draws fresh numbers. Each call takes the next seed of the state, so two calls give
    different arrays and a state made again from the same seed gives them again.

    >>> import oxidask.array as da
    >>> rs = da.random.RandomState(7)
    >>> g = rs.gamma(2.0, 3.0, size=10_000, chunks=2_500)
    >>> g
    dask.array<gamma, shape=(10000,), dtype=float64, chunksize=(2500,), chunktype=numpy.ndarray>
    >>> bool(abs(g.mean().compute() - 6.0) < 0.2)
    True
    """

    _family = "random_state"

    def __init__(self, seed=None):
        if isinstance(seed, np.random.RandomState):
            seed = int(seed.randint(0, 2**63 - 1, dtype=np.int64))
        elif isinstance(seed, np.random.Generator):
            seed = int(seed.integers(0, 2**63 - 1))
        elif isinstance(seed, np.random.BitGenerator):
            seed = int(np.random.Generator(seed).integers(0, 2**63 - 1))
        if seed is not None and not isinstance(seed, numbers.Integral):
            seed = int(np.random.SeedSequence(seed).generate_state(1, dtype=np.uint64)[0])
        if seed is not None and seed < 0:
            raise ValueError("Seed must be between 0 and 2**32 - 1 (or any non-negative int)")
        self._seed = None if seed is None else int(seed) % 2**64
        self._calls = 0

    def _next_seed(self):
        if self._seed is None:
            return None
        self._calls += 1
        return (self._seed * 0x9E3779B97F4A7C15 + self._calls) % 2**64

    def _entropy(self):
        """The seed of one call of a NumPy-per-block distribution (fresh without a seed)."""
        s = self._next_seed()
        return np.random.SeedSequence().entropy if s is None else s

    def seed(self, seed=None):
        """Seeds the module's functions."""
        self.__init__(seed)

    # ---- the engine's generators

    def random_sample(self, size=None, chunks="auto", dtype=float):
        """Uniform floats in ``[0, 1)``."""
        return self.uniform(0.0, 1.0, size=size, chunks=chunks, dtype=dtype)

    random = random_sample

    def uniform(self, low=0.0, high=1.0, size=None, chunks="auto", dtype=float):
        """Uniform floats in ``[low, high)``."""
        return _create("uniform", _size(size) or (), dtype, chunks, params=(low, high),
                       seed=self._next_seed(), label="uniform")

    def normal(self, loc=0.0, scale=1.0, size=None, chunks="auto", dtype=float):
        """Normally distributed floats with mean ``loc`` and deviation ``scale``."""
        if scale < 0:
            raise ValueError("scale < 0")
        return _create("normal", _size(size) or (), dtype, chunks, params=(loc, scale),
                       seed=self._next_seed(), label="normal")

    def standard_normal(self, size=None, chunks="auto", dtype=float):
        """Normal with mean 0 and deviation 1."""
        return self.normal(0.0, 1.0, size=size, chunks=chunks, dtype=dtype)

    def randint(self, low, high=None, size=None, chunks="auto", dtype=int):
        """Integers in ``[low, high)`` (``[0, low)`` when ``high`` is omitted)."""
        if high is None:
            low, high = 0, low
        if high <= low:
            raise ValueError("low >= high")
        return _create("integers", _size(size) or (), dtype, chunks, params=(low, high),
                       seed=self._next_seed(), label="randint")

    def integers(self, low, high=None, size=None, chunks="auto", dtype=np.int64, endpoint=False):
        """``Generator.integers``: ``[low, high)`` (or ``[low, high]`` with ``endpoint``)."""
        if high is None:
            low, high = 0, low
        if endpoint:
            high = high + 1
        return self.randint(low, high, size=size, chunks=chunks, dtype=dtype)

    # ---- NumPy's distributions, per block

    def _wrap(self, name, params, size, chunks, dtype):
        """The array of distribution ``name`` with ``params`` (scalars or arrays)."""
        integer = _DISTRIBUTIONS[name][1]
        dt = _dtype(np.int64 if integer else (dtype or np.float64))
        arrays = [p for p in params if isinstance(p, Array) or np.ndim(p) > 0]
        size = _size(size)
        if size is not None:
            shape = size
            if arrays:
                try:
                    np.broadcast_shapes(size, *[_shape(p) for p in arrays])
                except ValueError:
                    raise ValueError(
                        f"shape mismatch: objects cannot be broadcast to a single shape: "
                        f"parameters of shapes {[_shape(p) for p in arrays]} and "
                        f"size {size}"
                    ) from None
                if np.broadcast_shapes(size, *[_shape(p) for p in arrays]) != size:
                    raise ValueError(
                        f"output size {size} is not compatible with the parameters' shapes "
                        f"{[_shape(p) for p in arrays]}"
                    )
        else:
            try:
                shape = np.broadcast_shapes(*[_shape(p) for p in arrays]) if arrays else ()
            except ValueError:
                raise ValueError(
                    "shape mismatch: objects cannot be broadcast to a single shape: "
                    f"parameters of shapes {[_shape(p) for p in arrays]}"
                ) from None
        # NumPy's own checks (and errors) of parameters held in memory (dask arrays' values
        # are checked when their blocks are drawn).
        if not any(isinstance(p, Array) for p in params):
            local = [np.asarray(p) if np.ndim(p) else p for p in params]
            probe = _stream(self._family, 0, 0)
            getattr(probe, name)(*local, size=None if arrays else 0)
        chunks = normalize_chunks(chunks, shape, dt)
        entropy = self._entropy()
        # Array parameters keep their own shapes (left-padded with length-1 axes): a block
        # gets the piece of them it broadcasts against, NumPy broadcasts inside the task.
        nd = len(shape)
        layout, per_block = [], []
        for p in params:
            if isinstance(p, Array) or np.ndim(p) > 0:
                pshape = (1,) * (nd - len(_shape(p))) + _shape(p)
                whole = [n == 1 and m != 1 for n, m in zip(pshape, shape)]
                if isinstance(p, Array):
                    p = p.reshape(pshape) if p.shape != pshape else p
                    p = p.rechunk(tuple((1,) if w else c for w, c in zip(whole, chunks)))
                    per_block.append(("blocks", p.to_delayed(), whole))
                else:
                    per_block.append(("numpy", np.asarray(p).reshape(pshape), whole))
                layout.append((True, None))
            else:
                layout.append((False, p.item() if isinstance(p, np.generic) else p))
        handles = []
        for flat, (idx, sl) in enumerate(_pyblocks.block_slices(chunks)):
            block_args = []
            for kind, g, whole in per_block:
                if kind == "blocks":
                    block_args.append(g[tuple(0 if w else i for w, i in zip(whole, idx))])
                else:
                    part = tuple(slice(None) if w else t for w, t in zip(whole, sl))
                    block_args.append(np.ascontiguousarray(g[part]))
            bshape = tuple(s.stop - s.start for s in sl)
            handles.append(delayed(_draw, pure=True, name=name)(
                self._family, entropy, flat, name, dt, bshape, layout, *block_args))
        return _pyblocks.from_tasks(handles, chunks, dt, name)

    def choice(self, a, size=None, replace=True, p=None, chunks="auto"):
        """Samples of ``a`` (an int ``n`` for ``arange(n)``, or a 1-d array) with
        probabilities ``p``; ``replace=False`` needs the output in one block (the blocks
        would repeat each other's picks otherwise).

        >>> import oxidask.array as da
        >>> da.random.RandomState(1).choice(5, size=8, chunks=4).dtype
        dtype('int64')
        """
        if isinstance(a, Array):
            if a.ndim != 1:
                raise ValueError("a must be one dimensional")
            pool = a.rechunk(-1).to_delayed()[0]
            pool_len, dtype = a.shape[0], a.dtype
            probe_a = np.zeros(pool_len, dtype=dtype)
        elif isinstance(a, numbers.Integral) and not isinstance(a, bool):
            pool, pool_len, dtype = int(a), int(a), np.dtype(np.int64)
            probe_a = pool
        else:
            pool = np.asarray(a)
            if pool.ndim != 1:
                raise ValueError("a must be one dimensional")
            pool_len, dtype = len(pool), pool.dtype
            probe_a = pool
        if p is not None:
            p = np.asarray(p.compute() if isinstance(p, Array) else p, dtype=float)
        shape = _size(size) or ()
        # NumPy's checks: a positive pool, p of a's length summing to one, enough values.
        np.random.RandomState(0).choice(probe_a, size=shape if not replace else 0,
                                        replace=replace, p=p)
        chunks = normalize_chunks(chunks, shape, dtype)
        if not replace and any(len(c) > 1 for c in chunks):
            raise NotImplementedError(
                "choice(replace=False) of several blocks: give chunks=-1 (one block)"
            )
        entropy = self._entropy()
        handles = []
        for flat, (idx, sl) in enumerate(_pyblocks.block_slices(chunks)):
            bshape = tuple(s.stop - s.start for s in sl)
            handles.append(delayed(_choice_block, pure=True, name="choice")(
                self._family, entropy, flat, bshape, replace, pool, p))
        return _pyblocks.from_tasks(handles, chunks, dtype, "choice")

    def permutation(self, x):
        """``x`` with its first axis shuffled (``arange(x)`` shuffled for an int), as Dask:
        the order is drawn when the array is made, each output block gathers its rows.

        >>> import oxidask.array as da
        >>> sorted(da.random.RandomState(0).permutation(5).compute().tolist())
        [0, 1, 2, 3, 4]
        """
        from oxidask.array.core import arange

        if isinstance(x, numbers.Integral) and not isinstance(x, bool):
            x = arange(int(x), chunks="auto")
        x = asarray(x)
        if x.ndim == 0:
            raise ValueError("x must be an integer or at least 1-dimensional")
        n = x.shape[0]
        index = _stream(self._family, self._entropy(), 0).permutation(n)
        starts = _pyblocks.bounds(x.chunks)[0]
        rows = x.rechunk({a: -1 for a in range(1, x.ndim)}) if x.ndim > 1 else x
        grid = rows.to_delayed().reshape(-1)
        handles = []
        for lo, hi in zip(starts[:-1], starts[1:]):
            want = index[lo:hi]
            need = sorted({int(np.searchsorted(starts, i, side="right")) - 1 for i in want})
            shape = (int(hi - lo),) + tuple(x.shape[1:])
            handles.append(delayed(_take_rows, pure=True, name="permutation")(
                want, x.dtype, shape, [int(starts[b]) for b in need], *[grid[b] for b in need]))
        out = _pyblocks.from_tasks(handles, (x.chunks[0],) + rows.chunks[1:], x.dtype,
                                   "permutation")
        return out.rechunk(x.chunks) if x.ndim > 1 and out.chunks != x.chunks else out


def _bind(name, params):
    """A method drawing from NumPy's ``name`` with NumPy's signature plus ``chunks``."""
    names = [p for p, _ in params]

    def method(self, *args, size=None, chunks="auto", dtype=None, **kwargs):
        values = dict(params)
        if len(args) > len(names) + 2:
            raise TypeError(f"{name}() takes at most {len(names) + 2} positional arguments")
        for k, v in zip(names + ["size", "chunks"], args):
            if k in kwargs:
                raise TypeError(f"{name}() got multiple values for argument '{k}'")
            kwargs[k] = v
        size = kwargs.pop("size", size)
        chunks = kwargs.pop("chunks", chunks)
        for k in list(kwargs):
            if k not in values:
                raise TypeError(f"{name}() got an unexpected keyword argument '{k}'")
            values[k] = kwargs.pop(k)
        missing = [k for k in names if values[k] is _REQUIRED]
        if missing:
            raise TypeError(
                f"{name}() missing required argument{'s' if len(missing) > 1 else ''}: "
                + ", ".join(repr(k) for k in missing)
            )
        return self._wrap(name, [values[k] for k in names], size, chunks, dtype)

    method.__name__ = method.__qualname__ = name
    sig = ", ".join(k if d is _REQUIRED else f"{k}={d!r}" for k, d in params)
    method.__doc__ = (
        f"Samples of NumPy's ``{name}({sig}{', ' if sig else ''}size=None)`` distribution, "
        f"one NumPy call per block (``chunks`` as for every array; parameters scalars or "
        f"arrays broadcast against ``size``).\n\n"
        f"    >>> import oxidask.array as da\n"
        f"    >>> da.random.RandomState(0).{name}("
        + ", ".join(_EXAMPLE.get(k, "2.0") for k, d in params if d is _REQUIRED)
        + f"{', ' if any(d is _REQUIRED for _, d in params) else ''}size=(4, 6), chunks=2).shape\n"
        f"    (4, 6)\n"
    )
    method.__signature__ = inspect.Signature(
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        + [inspect.Parameter(k, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=d)
           for k, d in params]
        + [inspect.Parameter("size", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None),
           inspect.Parameter("chunks", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                             default="auto")]
    )
    return method


#: Example values of required parameters in the docstrings (valid for every distribution).
_EXAMPLE = {"p": "0.3", "n": "10", "ngood": "5", "nbad": "5", "nsample": "3", "left": "0.0",
            "mode": "1.0", "right": "2.0", "mu": "0.0", "kappa": "1.0", "mean": "1.0",
            "scale": "1.0", "nonc": "1.0"}

for _name, (_params, _) in _DISTRIBUTIONS.items():
    setattr(RandomState, _name, _bind(_name, _params))


class Generator(RandomState):
    """NumPy's ``Generator`` interface (``da.random.default_rng(seed)``): the same
    distributions, each block drawing from its own PCG64 stream.

    >>> import oxidask.array as da
    >>> rng = da.random.default_rng(42)
    >>> rng.poisson(3.0, size=(100, 100), chunks=50).dtype
    dtype('int64')
    """

    _family = "generator"


def default_rng(seed=None):
    """A :class:`Generator` from ``seed`` (an int, a sequence of ints, a NumPy ``Generator``
    or ``None`` for fresh entropy)."""
    if isinstance(seed, Generator):
        return seed
    return Generator(seed)


_global = RandomState()


def seed(seed=None):
    """Seeds the module's functions."""
    _global.seed(seed)


def random(size=None, chunks="auto", **kwargs):
    """Uniform floats in ``[0, 1)`` of shape ``size``."""
    return _global.random_sample(size, chunks=chunks, **kwargs)


def random_sample(size=None, chunks="auto", **kwargs):
    """Uniform floats in ``[0, 1)`` of shape ``size``."""
    return _global.random_sample(size, chunks=chunks, **kwargs)


def uniform(low=0.0, high=1.0, size=None, chunks="auto", **kwargs):
    """Uniform floats in ``[low, high)``."""
    return _global.uniform(low, high, size, chunks=chunks, **kwargs)


def normal(loc=0.0, scale=1.0, size=None, chunks="auto", **kwargs):
    """Normally distributed floats."""
    return _global.normal(loc, scale, size, chunks=chunks, **kwargs)


def standard_normal(size=None, chunks="auto", **kwargs):
    """Normal floats with mean 0 and deviation 1."""
    return _global.standard_normal(size, chunks=chunks, **kwargs)


def randint(low, high=None, size=None, chunks="auto", dtype=int, **kwargs):
    """Integers in ``[low, high)``."""
    return _global.randint(low, high, size, chunks=chunks, dtype=dtype)


def choice(a, size=None, replace=True, p=None, chunks="auto"):
    """Samples of ``a`` (see :meth:`RandomState.choice`)."""
    return _global.choice(a, size=size, replace=replace, p=p, chunks=chunks)


def permutation(x):
    """``x`` with its first axis shuffled (see :meth:`RandomState.permutation`)."""
    return _global.permutation(x)


def _module_function(name):
    method = getattr(RandomState, name)

    def f(*args, **kwargs):
        return method(_global, *args, **kwargs)

    f.__name__ = f.__qualname__ = name
    f.__doc__ = method.__doc__
    f.__signature__ = inspect.Signature(list(method.__signature__.parameters.values())[1:])
    return f


for _name in _DISTRIBUTIONS:
    globals()[_name] = _module_function(_name)

__all__ = [
    "Generator", "RandomState", "choice", "default_rng", "normal", "permutation", "randint",
    "random", "random_sample", "seed", "standard_normal", "uniform",
] + sorted(_DISTRIBUTIONS)
