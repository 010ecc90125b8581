"""Random arrays (``da.random``): reproducible from a seed whatever the chunking.

The numbers come from oxidask's counter-based generator, computed per block from the
element's position, so they differ from NumPy's for the same seed (as Dask's differ from
NumPy's too); the distributions are the same.
"""

import numbers

import numpy as np

from oxidask.array.core import Array, _create


def _size(size):
    if size is None:
        return ()
    if isinstance(size, numbers.Integral):
        return (int(size),)
    return tuple(int(s) for s in size)


class RandomState:
    """Random arrays from one seed (Dask's ``da.random.RandomState``); without a seed each
    call draws fresh numbers."""

    def __init__(self, seed=None):
        if seed is not None and not isinstance(seed, numbers.Integral):
            seed = int(np.random.SeedSequence(seed).generate_state(1, dtype=np.uint64)[0])
        self._seed = None if seed is None else int(seed) % 2**64
        self._calls = 0

    def _next_seed(self):
        if self._seed is None:
            return None
        self._calls += 1
        return (self._seed * 0x9E3779B97F4A7C15 + self._calls) % 2**64

    def seed(self, seed=None):
        """Seeds the module's functions."""
        self.__init__(seed)

    def random_sample(self, size=None, chunks="auto", dtype=float):
        """Uniform floats in ``[0, 1)``."""
        return self.uniform(0.0, 1.0, size=size, chunks=chunks, dtype=dtype)

    random = random_sample

    def uniform(self, low=0.0, high=1.0, size=None, chunks="auto", dtype=float):
        """Uniform floats in ``[low, high)``."""
        return _create("uniform", _size(size), dtype, chunks, params=(low, high),
                       seed=self._next_seed(), label="uniform")

    def normal(self, loc=0.0, scale=1.0, size=None, chunks="auto", dtype=float):
        """Normally distributed floats with mean ``loc`` and deviation ``scale``."""
        if scale < 0:
            raise ValueError("scale < 0")
        return _create("normal", _size(size), dtype, chunks, params=(loc, scale),
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
        return _create("integers", _size(size), dtype, chunks, params=(low, high),
                       seed=self._next_seed(), label="randint")

    def integers(self, low, high=None, size=None, chunks="auto", dtype=np.int64, endpoint=False):
        """``Generator.integers``: ``[low, high)`` (or ``[low, high]`` with ``endpoint``)."""
        if high is None:
            low, high = 0, low
        if endpoint:
            high = high + 1
        return self.randint(low, high, size=size, chunks=chunks, dtype=dtype)


class Generator(RandomState):
    """NumPy's ``Generator`` interface (``da.random.default_rng(seed)``)."""


def default_rng(seed=None):
    """A :class:`Generator` from ``seed``."""
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


__all__ = [
    "Generator", "RandomState", "default_rng", "normal", "randint", "random",
    "random_sample", "seed", "standard_normal", "uniform",
]
