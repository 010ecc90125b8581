"""NumPy functions built from the engine's operations (ptp, diff, flip, roll, tril/triu,
nan-reductions, average, count_nonzero, histogram) and edge cases (0-d and empty arrays,
division by zero, integer promotion), against NumPy, called as ``np.f(x)`` (through
``__array_function__``) and as ``da.f(x)``."""

import warnings

import numpy as np
import pytest

import oxidask.array as da

RNG = np.random.default_rng(11)
A = RNG.normal(size=(6, 10))
N = A.copy()
N[1, 2] = np.nan
N[:, 4] = np.nan  # an all-NaN column
I = np.arange(-5, 7).reshape(3, 4)


def same(lazy, expected, scheduler):
    got = np.asarray(lazy.compute(scheduler=scheduler))
    expected = np.asarray(expected)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    np.testing.assert_allclose(got, expected)


@pytest.mark.parametrize("chunks", [(6, 10), (4, 3), (1, 7)])
def test_composed_functions(chunks, scheduler):
    x = da.from_array(A, chunks=chunks)
    same(np.ptp(x, axis=0), np.ptp(A, axis=0), scheduler)
    same(np.diff(x, axis=1), np.diff(A, axis=1), scheduler)
    same(da.diff(x, n=2, axis=0, prepend=0), np.diff(A, n=2, axis=0, prepend=0), scheduler)
    same(np.flip(x), np.flip(A), scheduler)
    same(np.fliplr(x), np.fliplr(A), scheduler)
    same(np.roll(x, 3, axis=1), np.roll(A, 3, axis=1), scheduler)
    same(np.roll(x, -7), np.roll(A, -7), scheduler)
    same(np.tril(x, -1), np.tril(A, -1), scheduler)
    same(np.triu(x, 2), np.triu(A, 2), scheduler)
    same(np.count_nonzero(x > 0, axis=1), np.count_nonzero(A > 0, axis=1), scheduler)
    w = np.arange(1.0, 11.0)
    same(np.average(x, axis=1, weights=w), np.average(A, axis=1, weights=w), scheduler)
    counts, edges = da.histogram(x, bins=5, range=(-2, 2))
    want, want_edges = np.histogram(A, bins=5, range=(-2, 2))
    np.testing.assert_array_equal(counts.compute(scheduler=scheduler), want)
    np.testing.assert_allclose(edges, want_edges)


@pytest.mark.parametrize("chunks", [(6, 10), (4, 3)])
def test_nan_reductions_with_all_nan_slices(chunks, scheduler):
    x = da.from_array(N, chunks=chunks)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy warns on all-NaN slices
        same(np.nanmin(x, axis=0), np.nanmin(N, axis=0), scheduler)
        same(da.nanmax(x, axis=1), np.nanmax(N, axis=1), scheduler)
        same(np.nanvar(x, axis=0, ddof=1), np.nanvar(N, axis=0, ddof=1), scheduler)
        same(np.nanstd(x), np.nanstd(N), scheduler)
        same(np.nansum(x, axis=0), np.nansum(N, axis=0), scheduler)


def test_zero_d_and_empty(scheduler):
    z = da.from_array(np.array(5.0))
    assert z.shape == () and z.chunks == ()
    assert (z + 1).compute(scheduler=scheduler) == 6.0
    e = da.from_array(np.zeros((0, 3)))
    same(e, np.zeros((0, 3)), scheduler)
    same(da.zeros((0, 3)).sum(axis=0), np.zeros((0, 3)).sum(axis=0), scheduler)
    with pytest.raises(ValueError, match="zero-size"):
        da.zeros((0, 3)).max()


def test_division_by_zero_like_numpy(scheduler):
    x = da.from_array(I, chunks=2)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal((x // 0).compute(scheduler=scheduler), I // 0)
        np.testing.assert_array_equal((x % 0).compute(scheduler=scheduler), I % 0)
        np.testing.assert_array_equal((x / 0).compute(scheduler=scheduler), I / 0)
        f = x.astype(float)
        np.testing.assert_array_equal((f // 0).compute(scheduler=scheduler), I.astype(float) // 0)
        zeros = da.zeros_like(f)
        np.testing.assert_array_equal((f // zeros).compute(scheduler=scheduler),
                                      I.astype(float) // np.zeros_like(I, dtype=float))
    np.testing.assert_array_equal((f // -3.5).compute(), I.astype(float) // -3.5)
    np.testing.assert_array_equal((f % -3.5).compute(), I.astype(float) % -3.5)
    with pytest.raises(ValueError, match="negative integer powers"):
        x ** -1  # NumPy raises the same


def test_bool_and_small_int_arithmetic(scheduler):
    x = da.from_array(I, chunks=2)
    np.testing.assert_array_equal(((x > 0) + (x < 2)).compute(scheduler=scheduler),
                                  (I > 0) + (I < 2))
    u = da.from_array(I.astype(np.uint8), chunks=2)
    got = (u + 250).compute(scheduler=scheduler)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, I.astype(np.uint8) + 250)  # wraps, as NumPy
    np.testing.assert_allclose((x > 0).mean(axis=0).compute(scheduler=scheduler),
                               (I > 0).mean(axis=0))


B = np.random.default_rng(0).integers(-3, 4, size=(6, 10)).astype(float)


def _same_all(got, want, scheduler):
    got = [np.asarray(g.compute(scheduler=scheduler)) for g in got]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("chunks", [(6, 10), (4, 3)])
def test_unique_nonzero_isin(chunks, scheduler):
    x = da.from_array(B, chunks=chunks)
    u = np.unique(x)
    assert np.isnan(u.shape[0])  # unknown length, as Dask
    same(u, np.unique(B), scheduler)
    same(da.flatnonzero(x), np.flatnonzero(B), scheduler)
    _same_all(np.nonzero(x), np.nonzero(B), scheduler)
    same(np.argwhere(x), np.argwhere(B), scheduler)
    same(np.isin(x, [1, 2]), np.isin(B, [1, 2]), scheduler)
    same(da.isin(x, [0], invert=True), np.isin(B, [0], invert=True), scheduler)


def test_broadcast_meshgrid_indices_repeat_tile(scheduler):
    x = da.from_array(B, chunks=(4, 3))
    same(np.broadcast_to(x[0], (3, 10)), np.broadcast_to(B[0], (3, 10)), scheduler)
    with pytest.raises(ValueError, match="broadcast"):
        da.broadcast_to(x, (3, 10))
    _same_all(np.meshgrid(da.arange(3), da.arange(4)), np.meshgrid(np.arange(3), np.arange(4)),
              scheduler)
    _same_all(da.meshgrid(da.arange(3), da.arange(4), indexing="ij"),
              np.meshgrid(np.arange(3), np.arange(4), indexing="ij"), scheduler)
    same(da.indices((2, 3)), np.indices((2, 3)), scheduler)
    same(np.repeat(x, 2, axis=1), np.repeat(B, 2, axis=1), scheduler)
    same(np.repeat(x, 3), np.repeat(B, 3), scheduler)
    same(np.tile(x, (2, 3)), np.tile(B, (2, 3)), scheduler)
    same(np.tile(x[0], 3), np.tile(B[0], 3), scheduler)


@pytest.mark.parametrize("ord", [None, 1, 2, np.inf, -np.inf, 0, 3])
def test_vector_norms(ord, scheduler):
    x = da.from_array(B, chunks=(4, 3))
    same(np.linalg.norm(x[1], ord=ord), np.linalg.norm(B[1], ord=ord), scheduler)
    same(da.linalg.norm(x, ord=ord, axis=1), np.linalg.norm(B, ord=ord, axis=1), scheduler)


@pytest.mark.parametrize("ord", [None, "fro", 1, np.inf])
def test_matrix_norms(ord, scheduler):
    x = da.from_array(B, chunks=(4, 3))
    same(np.linalg.norm(x, ord=ord), np.linalg.norm(B, ord=ord), scheduler)
    same(np.linalg.norm(x, ord=ord, axis=(1, 0), keepdims=True),
         np.linalg.norm(B, ord=ord, axis=(1, 0), keepdims=True), scheduler)


@pytest.mark.parametrize("chunks", [(6, 10), (4, 3)])
def test_linear_algebra_helpers(chunks, scheduler):
    x = da.from_array(A, chunks=chunks)
    for k in (0, 2, -1):
        same(np.diag(x[0], k), np.diag(A[0], k), scheduler)
        same(np.diag(x, k), np.diag(A, k), scheduler)
        same(np.diagonal(x, k), np.diagonal(A, k), scheduler)
        same(np.trace(x, k), np.trace(A, k), scheduler)
    same(np.cov(x), np.cov(A), scheduler)
    same(np.cov(x, rowvar=False), np.cov(A, rowvar=False), scheduler)
    same(da.cov(x[0], x[1]), np.cov(A[0], A[1]), scheduler)
    same(np.corrcoef(x), np.corrcoef(A), scheduler)


@pytest.mark.parametrize("chunks", [(6, 10), (4, 3)])
def test_python_function_helpers(chunks, scheduler):
    x = da.from_array(A, chunks=chunks)
    same(da.apply_along_axis(np.sort, 1, x), np.apply_along_axis(np.sort, 1, A), scheduler)
    same(np.apply_along_axis(np.median, 0, x), np.apply_along_axis(np.median, 0, A), scheduler)
    same(np.digitize(x, [-1, 0, 1]), np.digitize(A, [-1, 0, 1]), scheduler)
    same(da.fromfunction(lambda i, j: i * 10 + j, (5, 7), chunks=3),
         np.fromfunction(lambda i, j: i * 10 + j, (5, 7)), scheduler)
    same(x.argtopk(3, axis=1), np.argsort(-A, axis=1)[:, :3], scheduler)
    same(da.argtopk(x, -2, axis=0), np.argsort(A, axis=0)[:2], scheduler)
    same(da.reduction(x, np.sum, np.sum, axis=0, dtype=float), A.sum(axis=0), scheduler)
    same(da.reduction(x, np.max, np.max, axis=1, keepdims=True, dtype=float),
         A.max(axis=1, keepdims=True), scheduler)
    same(da.reduction(x, np.sum, np.sum, dtype=float), A.sum(), scheduler)
    same(x.imag, A.imag, scheduler)
    assert x.real is x and x.conj() is x


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "symmetric", "wrap"])
@pytest.mark.parametrize("width", [2, ((1, 2), (3, 0))])
def test_pad(mode, width, scheduler):
    x = da.from_array(A, chunks=(4, 3))
    same(np.pad(x, width, mode=mode), np.pad(A, width, mode=mode), scheduler)
    if mode == "constant":
        same(da.pad(x, width, constant_values=9.5), np.pad(A, width, constant_values=9.5),
             scheduler)


def test_item_assignment(scheduler):
    x = da.from_array(A, chunks=(4, 3))
    want = A.copy()
    x[x > 0.5] = 0
    want[want > 0.5] = 0
    x[1:4, ::3] = 7
    want[1:4, ::3] = 7
    x[..., -1] = -1
    want[..., -1] = -1
    x[2] = np.arange(10.0)
    want[2] = np.arange(10.0)
    same(x, want, scheduler)
    with pytest.raises(IndexError, match="out of bounds"):
        x[9] = 1


def test_store_into_numpy_targets(scheduler):
    t1 = np.zeros((6, 10))
    t2 = np.zeros((6, 10))
    da.store([da.from_array(A, chunks=(4, 3)), da.from_array(A, chunks=2).map_blocks(np.cos)],
             [t1, t2], scheduler=scheduler)
    np.testing.assert_array_equal(t1, A)
    np.testing.assert_allclose(t2, np.cos(A))
    t3 = np.zeros((6, 10))
    (da.from_array(A, chunks=5) * 2).store(t3, scheduler=scheduler)
    np.testing.assert_array_equal(t3, A * 2)
    with pytest.raises(ValueError, match="shape"):
        da.store(da.ones(3), np.zeros(4))


@pytest.mark.parametrize("chunks", [(6, 10), (4, 3), (1, 1), ((1, 2, 3), (7, 3))])
@pytest.mark.parametrize("axis", [None, 0, 1, -1])
def test_cumprod(chunks, axis, scheduler):
    data = np.random.default_rng(8).uniform(0.5, 1.5, size=(6, 10))
    x = da.from_array(data, chunks=chunks)
    same(x.cumprod(axis=axis), data.cumprod(axis=axis), scheduler)
    same(np.cumprod(x, axis=axis), np.cumprod(data, axis=axis), scheduler)


def test_integer_cumprod_and_nan_scans(scheduler):
    ints = np.arange(1, 13).reshape(3, 4)
    same(np.cumprod(da.from_array(ints, chunks=2), axis=1), ints.cumprod(axis=1), scheduler)
    x = da.from_array(N, chunks=(4, 3))
    same(np.nancumsum(x, axis=1), np.nancumsum(N, axis=1), scheduler)
    same(np.nancumprod(x, axis=0), np.nancumprod(N, axis=0), scheduler)
