"""Order statistics and counting against NumPy on the same data over many chunkings:
``median``/``nanmedian`` (axis made one block: equal to NumPy's to the bit), ``percentile``
(exact: one block), ``bincount`` and ``einsum`` (blocked contraction summed by the engine;
agreement within the floating-point bound of a sum of k products, k * eps * sum |terms|).
Shapes and chunkings are drawn from a seeded generator (a fixed sample of the space)."""

import warnings

import numpy as np
import pytest

import oxidask.array as da

RNG = np.random.default_rng(2026)
EPS = np.finfo(np.float64).eps


def random_chunks(shape, rng):
    """A random blocking of ``shape``: uneven block lengths per axis."""
    out = []
    for n in shape:
        cuts = np.sort(rng.choice(np.arange(1, n), size=rng.integers(0, min(n - 1, 4) + 1),
                                  replace=False)) if n > 1 else np.array([], int)
        edges = np.concatenate([[0], cuts, [n]])
        out.append(tuple(int(b - a) for a, b in zip(edges[:-1], edges[1:])))
    return tuple(out)


SHAPES = [(7,), (6, 9), (4, 5, 3), (1, 8), (11, 1)]
CASES = [(shape, random_chunks(shape, RNG), seed) for seed, shape in enumerate(SHAPES * 3)]


@pytest.mark.parametrize("shape,chunks,seed", CASES)
def test_median_and_nanmedian_match_numpy(shape, chunks, seed, scheduler):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=shape)
    n = a.copy()
    n[rng.random(shape) < 0.3] = np.nan
    x = da.from_array(a, chunks=chunks)
    y = da.from_array(n, chunks=chunks)
    axes = [None] + list(range(len(shape))) + ([(0, len(shape) - 1)] if len(shape) > 1 else [])
    for axis in axes:
        for keepdims in (False, True):
            m = da.median(x, axis=axis, keepdims=keepdims)
            want = np.median(a, axis=axis, keepdims=keepdims)
            assert m.shape == want.shape and m.dtype == want.dtype
            np.testing.assert_array_equal(m.compute(scheduler=scheduler), want)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices
                want = np.nanmedian(n, axis=axis, keepdims=keepdims)
            got = da.nanmedian(y, axis=axis, keepdims=keepdims)
            assert got.shape == want.shape
            np.testing.assert_array_equal(got.compute(scheduler=scheduler), want)
    # Through NumPy's protocol, and integer input (a float64 median).
    np.testing.assert_array_equal(np.median(x, axis=0).compute(), np.median(a, axis=0))
    i = (a * 10).astype(np.int64)
    np.testing.assert_array_equal(da.median(da.from_array(i, chunks=chunks), axis=-1).compute(),
                                  np.median(i, axis=-1))


def test_median_keeps_other_blocks():
    x = da.ones((40, 30), chunks=(10, 7))
    m = da.median(x, axis=0)
    assert m.chunks == ((7, 7, 7, 7, 2),)
    assert repr(m).startswith("dask.array<")
    assert da.median(x.astype(np.float32), axis=1).dtype == np.float32


@pytest.mark.parametrize("n,chunks", [(1, 1), (10, 3), (101, 25), (1000, 77), (257, 257)])
@pytest.mark.parametrize("method", ["linear", "lower", "higher", "nearest", "midpoint"])
def test_percentile_exact(n, chunks, method, scheduler):
    data = np.random.default_rng(n).standard_t(3, size=n)
    x = da.from_array(data, chunks=chunks)
    q = [0, 1, 12.5, 50, 93, 100]
    p = da.percentile(x, q, method=method)
    assert p.shape == (6,) and p.chunks == ((6,),) and p.dtype == np.float64
    np.testing.assert_array_equal(p.compute(scheduler=scheduler),
                                  np.percentile(data, q, method=method))
    one = da.percentile(x, 30, method=method)
    assert one.shape == (1,)
    np.testing.assert_array_equal(one.compute(), [np.percentile(data, 30, method=method)])
    ints = da.from_array(np.arange(n), chunks=chunks)
    np.testing.assert_array_equal(da.percentile(ints, q).compute(),
                                  np.percentile(np.arange(n), q))


@pytest.mark.parametrize("chunks", [1, 4, 13, 50])
def test_bincount(chunks, scheduler):
    data = np.random.default_rng(chunks).integers(0, 20, size=50)
    x = da.from_array(data, chunks=chunks)
    b = da.bincount(x)
    assert b.dtype == np.int64 and np.isnan(b.shape[0])
    np.testing.assert_array_equal(b.compute(scheduler=scheduler), np.bincount(data))
    b = da.bincount(x, minlength=30)
    assert b.shape == (30,) and b.chunks == ((30,),)
    np.testing.assert_array_equal(b.compute(scheduler=scheduler), np.bincount(data, minlength=30))
    w = np.random.default_rng(1).random(50)
    got = da.bincount(x, weights=da.from_array(w, chunks=7), minlength=20)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got.compute(scheduler=scheduler),
                               np.bincount(data, weights=w, minlength=20), rtol=0,
                               atol=50 * EPS * w.sum())
    np.testing.assert_array_equal(np.bincount(x).compute(), np.bincount(data))
    small = da.bincount(x, minlength=5)
    with pytest.raises(ValueError, match="minlength=5"):
        small.compute(scheduler=scheduler)


EINSUM_CASES = [
    ("ij,jk->ik", [(6, 9), (9, 4)]),
    ("ij,jk", [(5, 7), (7, 3)]),
    ("ij,ij->i", [(8, 5), (8, 5)]),
    ("ij->", [(6, 7)]),
    ("ij->ji", [(4, 6)]),
    ("ii->i", [(6, 6)]),
    ("ii", [(5, 5)]),
    ("i,j->ij", [(5,), (4,)]),
    ("ijk,jl->ikl", [(3, 6, 4), (6, 5)]),
    ("bij,bjk->bik", [(3, 4, 5), (3, 5, 2)]),
    ("ij,jk,kl->il", [(4, 5), (5, 6), (6, 3)]),
]


@pytest.mark.parametrize("spec,shapes", EINSUM_CASES)
@pytest.mark.parametrize("draw", range(3))
def test_einsum_matches_numpy(spec, shapes, draw, scheduler):
    rng = np.random.default_rng(hash((spec, draw)) % 2**32)
    arrays = [rng.normal(size=s) for s in shapes]
    lazy = [da.from_array(a, chunks=random_chunks(a.shape, rng)) for a in arrays]
    got = da.einsum(spec, *lazy)
    want = np.einsum(spec, *arrays)
    bound = np.einsum(spec, *[np.abs(a) for a in arrays])
    terms = max(1, np.prod(arrays[0].shape) * max(1, len(arrays)))
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_less(np.abs(got.compute(scheduler=scheduler) - want),
                                 terms * EPS * bound + 1e-300)
    np.testing.assert_array_less(np.abs(np.einsum(spec, *lazy).compute() - want),
                                 terms * EPS * bound + 1e-300)


def test_einsum_integers_are_exact():
    a = np.arange(24).reshape(4, 6)
    x = da.from_array(a, chunks=(3, 4))
    got = da.einsum("ij,kj->ik", x, x)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got.compute(), np.einsum("ij,kj->ik", a, a))


@pytest.mark.parametrize("call,error,match", [
    (lambda: da.einsum("ij,jk->ik", da.ones((2, 3)), da.ones((4, 5))), ValueError,
     "label 'j'"),
    (lambda: da.einsum("ijk,jk->ik", da.ones((2, 3)), da.ones((3, 4))), ValueError,
     "correct number of indices"),
    (lambda: da.einsum("ij,jk->ik", da.ones((2, 3))), ValueError, "2 operand subscripts"),
    (lambda: da.einsum(["i"], da.ones(2)), TypeError, "string"),
    (lambda: da.percentile(da.ones((2, 3)), 50), NotImplementedError, "1-d"),
    (lambda: da.percentile(da.ones(3), 101), ValueError, r"\[0, 100\]"),
    (lambda: da.percentile(da.ones(3), 50, method="bogus"), ValueError, "method"),
    (lambda: da.bincount(da.ones(3)), TypeError, "Cannot cast"),
    (lambda: da.bincount(da.ones((2, 2), dtype=int)), ValueError, "too deep"),
    (lambda: da.bincount(da.ones(3, dtype=int), weights=da.ones(4)), ValueError, "same length"),
    (lambda: da.median(da.ones((2, 3)), axis=2), ValueError, "axis 2"),
])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()
