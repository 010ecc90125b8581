"""``da.linalg`` factorizations and ``da.fft`` against NumPy on the same data over several
chunkings. Tolerances are the backward-error bounds of the algorithms, not ad hoc: for QR,
SVD, Cholesky and solves a residual within c * n * eps * (the norms involved), with c the
dimensions of the products; FFTs within 16 eps times the sum of |x| along the axis (every
output is a sum of n rounded terms); order-free results (``fftfreq``, shifts) bit-equal.
Also: complex arrays (``PyArray``) in arithmetic, ``real``/``imag``/``abs``, rechunk and
persist; Dask's errors; the docstring examples of the new modules."""

import doctest

import numpy as np
import pytest

import oxidask.array as da
import oxidask.array._pyblocks
import oxidask.array.fft
import oxidask.array.linalg
import oxidask.array.random
import oxidask.array.routines

EPS = np.finfo(np.float64).eps
RNG = np.random.default_rng(77)


def fro(a):
    return float(np.linalg.norm(a))


# ---- QR and SVD


TALL = [((60, 5), (15, 5)), ((60, 5), ((3, 20, 30, 7), 5)), ((9, 9), (4, 9)), ((7, 4), (7, 4))]
FAT = [((5, 60), (5, 15)), ((4, 30), (4, (2, 10, 18))), ((6, 6), (6, 4))]


@pytest.mark.parametrize("shape,chunks", TALL + FAT)
def test_qr(shape, chunks, scheduler):
    a = RNG.normal(size=shape)
    m, n = shape
    k = min(m, n)
    q, r = da.linalg.qr(da.from_array(a, chunks=chunks))
    assert q.shape == (m, k) and r.shape == (k, n)
    assert q.dtype == r.dtype == np.float64
    assert repr(q).startswith("dask.array<q, shape=")
    if len(da.normalize_chunks(chunks, shape)[1]) == 1:
        assert q.chunks[0] == da.normalize_chunks(chunks, shape)[0]
    qv, rv = q.compute(scheduler=scheduler), r.compute(scheduler=scheduler)
    bound = m * n * EPS
    assert fro(qv @ rv - a) <= bound * fro(a)
    assert fro(qv.T @ qv - np.eye(k)) <= bound
    np.testing.assert_array_equal(np.tril(rv, -1), 0)
    # R is NumPy's up to the signs of its rows (QR is unique up to them).
    r_np = np.linalg.qr(a)[1]
    assert fro(np.abs(rv) - np.abs(r_np)) <= bound * fro(a) * k


@pytest.mark.parametrize("shape,chunks", TALL + FAT)
def test_svd(shape, chunks, scheduler):
    a = RNG.normal(size=shape)
    m, n = shape
    k = min(m, n)
    u, s, v = da.linalg.svd(da.from_array(a, chunks=chunks))
    assert u.shape == (m, k) and s.shape == (k,) and v.shape == (k, n)
    uv, sv, vv = (x.compute(scheduler=scheduler) for x in (u, s, v))
    bound = m * n * EPS
    s_np = np.linalg.svd(a, compute_uv=False)
    assert np.abs(sv - s_np).max() <= bound * s_np[0]  # Weyl: |ds| <= ||dA||
    assert fro((uv * sv) @ vv - a) <= bound * fro(a)
    assert fro(uv.T @ uv - np.eye(k)) <= bound
    assert (uv.sum(axis=0) >= 0).all()  # coerce_signs


def test_qr_and_svd_refuse_two_dimensional_blocking():
    x = da.ones((20, 20), chunks=10)
    with pytest.raises(NotImplementedError, match="tall-and-skinny"):
        da.linalg.qr(x)
    with pytest.raises(NotImplementedError, match="chunked in one dimension"):
        da.linalg.svd(x)
    with pytest.raises(ValueError, match="one column of blocks"):
        da.linalg.tsqr(x)
    with pytest.raises(np.linalg.LinAlgError, match="two-dimensional"):
        da.linalg.qr(da.ones(5))


# ---- Cholesky, solve, inverse, least squares


def spd(n, rng):
    g = rng.normal(size=(n, n))
    return g @ g.T + n * np.eye(n)


@pytest.mark.parametrize("n,chunks", [(1, 1), (8, 8), (9, 3), (10, (4, 6)), (7, (2, 3))])
def test_cholesky(n, chunks, scheduler):
    a = spd(n, RNG)
    x = da.from_array(a, chunks=chunks)
    low = da.linalg.cholesky(x, lower=True)
    up = da.linalg.cholesky(x)
    assert low.shape == up.shape == (n, n) and low.dtype == np.float64
    lv, uv = low.compute(scheduler=scheduler), up.compute(scheduler=scheduler)
    np.testing.assert_array_equal(np.triu(lv, 1), 0)
    np.testing.assert_array_equal(uv, lv.T)
    assert np.abs(lv @ lv.T - a).max() <= 4 * n * EPS * (np.abs(lv) @ np.abs(lv.T)).max()
    ref = np.linalg.cholesky(a)
    assert np.abs(lv - ref).max() <= 4 * n * EPS * np.linalg.cond(a) * np.abs(ref).max()


def test_cholesky_not_positive_definite():
    bad = da.from_array(np.array([[1.0, 2.0], [2.0, 1.0]]), chunks=1)
    with pytest.raises(np.linalg.LinAlgError, match="not positive definite"):
        da.linalg.cholesky(bad).compute()


@pytest.mark.parametrize("n,a_chunks,b_cols,b_chunks", [
    (6, 6, None, 6), (9, 4, None, 2), (8, (3, 5), 5, (8, 2)), (10, 5, 3, (4, 1)),
])
def test_solve_and_inv(n, a_chunks, b_cols, b_chunks, scheduler):
    a = RNG.normal(size=(n, n)) + n * np.eye(n)
    b = RNG.normal(size=(n,) if b_cols is None else (n, b_cols))
    x = da.linalg.solve(da.from_array(a, chunks=a_chunks), da.from_array(b, chunks=b_chunks))
    assert x.shape == b.shape and x.dtype == np.float64
    xv = x.compute(scheduler=scheduler)
    norm_a = np.linalg.norm(a, 2)
    assert np.linalg.norm(a @ xv - b) <= 16 * n * EPS * norm_a * np.linalg.norm(xv)
    inv = da.linalg.inv(da.from_array(a, chunks=a_chunks))
    rows, cols = da.normalize_chunks(a_chunks, (n, n))
    assert inv.chunks == (cols, rows)  # x's rows follow a's columns, as in solve
    iv = inv.compute(scheduler=scheduler)
    assert np.linalg.norm(a @ iv - np.eye(n)) <= 16 * n * EPS * norm_a * np.linalg.norm(iv)
    ints = np.arange(4).reshape(2, 2) + np.eye(2, dtype=int) * 3
    np.testing.assert_allclose(da.linalg.solve(da.from_array(ints, chunks=1), np.ones(2)),
                               np.linalg.solve(ints, np.ones(2)), rtol=8 * EPS)


def test_solve_errors():
    with pytest.raises(np.linalg.LinAlgError, match="square"):
        da.linalg.solve(da.ones((3, 4)), da.ones(3))
    with pytest.raises(ValueError, match=r"\(3, 3\).*\(4,\)"):
        da.linalg.solve(da.ones((3, 3)), da.ones(4))
    with pytest.raises(np.linalg.LinAlgError, match="Singular"):
        da.linalg.solve(da.ones((3, 3)), da.ones(3)).compute()
    with pytest.raises(np.linalg.LinAlgError, match="Singular"):
        da.linalg.inv(da.zeros((2, 2))).compute()


@pytest.mark.parametrize("m,n,chunks,b_cols", [(40, 4, (10, 4), None), (30, 3, (7, 2), 2),
                                               (5, 5, 5, None)])
def test_lstsq(m, n, chunks, b_cols, scheduler):
    a = RNG.normal(size=(m, n))
    b = RNG.normal(size=(m,) if b_cols is None else (m, b_cols))
    x, res, rank, s = da.linalg.lstsq(da.from_array(a, chunks=chunks),
                                      da.from_array(b, chunks=chunks[0] if isinstance(
                                          chunks, tuple) else chunks))
    xv, rv, kv, sv = (t.compute(scheduler=scheduler) for t in (x, res, rank, s))
    x_np, r_np, k_np, s_np = np.linalg.lstsq(a, b, rcond=None)
    norm_a = np.linalg.norm(a, 2)
    # The normal equations hold to the backward error of QR.
    bound = m * n * EPS * norm_a * (norm_a * np.linalg.norm(xv) + np.linalg.norm(b))
    assert np.linalg.norm(a.T @ (b - a @ xv)) <= bound
    assert int(kv) == k_np and rank.shape == () and rank.dtype == np.int64
    assert np.abs(sv - s_np).max() <= m * n * EPS * s_np[0]
    assert rv.shape == ((1,) if b.ndim == 1 else (b_cols,))
    # The residuals: each element of b - a x is computed within d = (n + 2) eps (|a||x| + |b|)
    # of this one, so their squared sum within 2 d sum|r| + m d^2 (plus its own rounding).
    r = b - a @ xv
    d = (n + 2) * EPS * (np.abs(a) @ np.abs(xv) + np.abs(b)).max(axis=0)
    full = (r ** 2).sum(axis=0)
    tol = 2 * d * np.abs(r).sum(axis=0) + m * d * d + m * EPS * full
    assert (np.abs(rv - np.atleast_1d(full)) <= np.atleast_1d(tol)).all()
    if m > n:
        np.testing.assert_allclose(rv, r_np, rtol=m * n * EPS * np.linalg.cond(a) ** 2)


def test_lstsq_errors():
    with pytest.raises(ValueError, match=r"\(4, 2\).*\(3,\)"):
        da.linalg.lstsq(da.ones((4, 2)), da.ones(3))
    with pytest.raises(NotImplementedError, match="underdetermined"):
        da.linalg.lstsq(da.ones((2, 4)), da.ones(2))


def test_linalg_on_a_cluster(client):
    a = RNG.normal(size=(40, 3))
    q, r = da.linalg.qr(da.from_array(a, chunks=(10, 3)))
    qv, rv = client.compute([q, r], sync=True)
    assert fro(qv @ rv - a) <= 40 * 3 * EPS * fro(a)
    z = da.fft.fft(da.from_array(a, chunks=(10, 3)), axis=1)
    np.testing.assert_allclose(client.compute(z, sync=True), np.fft.fft(a, axis=1),
                               rtol=0, atol=16 * EPS * np.abs(a).sum())


# ---- FFT


def fft_bound(x, axes):
    """16 eps times the sum of |x| over the transformed axes (kept as length-1 axes)."""
    return 16 * EPS * np.abs(x).sum(axis=tuple(axes), keepdims=True) + 1e-300


ONE_AXIS = [("fft", {}), ("ifft", {}), ("rfft", {}), ("irfft", {}), ("hfft", {}),
            ("ihfft", {}), ("fft", {"n": 13}), ("rfft", {"n": 7}), ("irfft", {"n": 11}),
            ("ifft", {"norm": "ortho"}), ("fft", {"norm": "forward"})]


@pytest.mark.parametrize("name,kwargs", ONE_AXIS)
@pytest.mark.parametrize("chunks,axis", [((2, 10), -1), ((6, 10), 1), ((6, 3), 0),
                                         (((1, 5), 10), 1)])
def test_one_axis_transforms(name, kwargs, chunks, axis, scheduler):
    a = RNG.normal(size=(6, 10))
    if name in ("irfft", "hfft"):
        a = np.fft.rfft(RNG.normal(size=(6, 18)), axis=1)[:, :10] if axis in (1, -1) else \
            np.fft.rfft(RNG.normal(size=(10, 10)), axis=0)[:6]
    x = da.from_array(a, chunks=chunks) if a.dtype.kind == "f" else _complex(a, chunks)
    got = getattr(da.fft, name)(x, axis=axis, **kwargs)
    want = getattr(np.fft, name)(a, axis=axis, **kwargs)
    assert got.shape == want.shape and got.dtype == want.dtype
    ax = axis % 2
    assert got.chunks[ax] == (want.shape[ax],)
    assert got.chunks[1 - ax] == x.chunks[1 - ax]
    diff = np.abs(got.compute(scheduler=scheduler) - want)
    scale = np.abs(a).sum(axis=ax, keepdims=True)
    assert (diff <= 16 * EPS * scale + 1e-300).all()


def _complex(a, chunks):
    """A complex dask array (a PyArray) holding ``a``: real and imaginary parts joined."""
    re = da.from_array(np.ascontiguousarray(a.real), chunks=chunks)
    im = da.from_array(np.ascontiguousarray(a.imag), chunks=chunks)
    z = re + 1j * im
    assert isinstance(z, oxidask.array._pyblocks.PyArray)
    return z


MANY = [("fft2", {}), ("ifft2", {}), ("rfft2", {}), ("irfft2", {}), ("fftn", {}),
        ("ifftn", {"axes": (0, 2)}), ("rfftn", {"s": (4, 6), "axes": (1, 2)}), ("irfftn", {"axes": (1, 2)}),
        ("fftn", {"s": (3, 5, 7), "axes": (0, 1, 2)})]


@pytest.mark.parametrize("name,kwargs", MANY)
def test_many_axes_transforms(name, kwargs, scheduler):
    a = RNG.normal(size=(4, 5, 6))
    axes = kwargs.get("axes") or ((-2, -1) if name.endswith("2") else
                                  tuple(range(3 - len(kwargs.get("s", (0, 0, 0))), 3)))
    axes = tuple(ax % 3 for ax in axes)
    chunks = tuple(-1 if i in axes else 2 for i in range(3))
    x = da.from_array(a, chunks=chunks)
    got = getattr(da.fft, name)(x, **kwargs)
    want = getattr(np.fft, name)(a, **kwargs)
    assert got.shape == want.shape and got.dtype == want.dtype
    diff = np.abs(got.compute(scheduler=scheduler) - want)
    scale = np.abs(a).sum(axis=axes, keepdims=True)
    assert (diff <= 16 * EPS * scale * len(axes) + 1e-300).all()


def test_fft_needs_whole_axes_and_checks_input():
    x = da.ones((6, 10), chunks=(3, 5))
    with pytest.raises(ValueError, match=r"FFT along an axis that \nhas a single chunk.*axis 1"):
        da.fft.fft(x)
    with pytest.raises(ValueError, match="axis 0"):
        da.fft.fft2(x.rechunk({1: -1}))
    with pytest.raises(ValueError, match=r"Invalid number of FFT data points \(0\)"):
        da.fft.fft(x.rechunk(-1), n=0)
    with pytest.raises(ValueError, match="Shape and axes"):
        da.fft.fftn(x.rechunk(-1), s=(2,), axes=(0, 1))
    with pytest.raises(TypeError):
        da.fft.rfft(da.fft.fft(x.rechunk(-1)))  # rfft of complex input, as NumPy
    with pytest.raises(ValueError, match="unknown `kind`"):
        da.fft.fft_wrap(np.fft.fft, kind="dct")


def test_fft_of_float32_is_complex64_and_roundtrips():
    a = RNG.normal(size=(3, 16)).astype(np.float32)
    z = da.fft.fft(da.from_array(a, chunks=(1, 16)))
    assert z.dtype == np.complex64 == np.fft.fft(a).dtype
    back = da.fft.ifft(z).real
    assert back.dtype == np.float32
    eps32 = np.finfo(np.float32).eps
    assert (np.abs(back.compute() - a) <= 32 * eps32 * np.abs(a).sum(axis=1, keepdims=True)).all()


@pytest.mark.parametrize("n,d,chunks", [(1, 1.0, 1), (8, 0.1, 3), (9, 2.5, 4), (100, 1e-3, 17)])
def test_frequencies_are_numpys(n, d, chunks, scheduler):
    f = da.fft.fftfreq(n, d=d, chunks=chunks)
    assert f.dtype == np.float64 and f.chunks == da.normalize_chunks(chunks, (n,))
    np.testing.assert_array_equal(f.compute(scheduler=scheduler), np.fft.fftfreq(n, d))
    r = da.fft.rfftfreq(n, d=d, chunks=chunks)
    np.testing.assert_array_equal(r.compute(scheduler=scheduler), np.fft.rfftfreq(n, d))
    with pytest.raises(ValueError, match="integer"):
        da.fft.fftfreq(2.5)


@pytest.mark.parametrize("shape,chunks", [((9,), 4), ((6, 7), (4, 3)), ((5, 8), (5, 8))])
@pytest.mark.parametrize("axes", [None, 0, -1])
def test_shifts(shape, chunks, axes, scheduler):
    a = np.arange(np.prod(shape), dtype=float).reshape(shape)
    x = da.from_array(a, chunks=chunks)
    for name in ("fftshift", "ifftshift"):
        got = getattr(da.fft, name)(x, axes=axes)
        assert got.chunks == x.chunks or got.shape == x.shape
        np.testing.assert_array_equal(got.compute(scheduler=scheduler),
                                      getattr(np.fft, name)(a, axes=axes))
        z = _complex(a + 1j * a[::-1], chunks)
        np.testing.assert_array_equal(getattr(da.fft, name)(z, axes=axes).compute(),
                                      getattr(np.fft, name)(a + 1j * a[::-1], axes=axes))


# ---- complex arrays


def test_complex_array_operations(scheduler):
    a = RNG.normal(size=(6, 8))
    x = da.from_array(a, chunks=(3, 8))
    z = da.fft.fft(x)
    want = np.fft.fft(a)
    assert repr(z) == ("dask.array<fft, shape=(6, 8), dtype=complex128, chunksize=(3, 8), "
                       "chunktype=numpy.ndarray>")
    assert z.shape == (6, 8) and z.ndim == 2 and z.numblocks == (2, 1)
    res = np.abs(want)  # every result below is exact or within one rounding of these
    tol = 4 * EPS * (res + np.abs(a) + 1)

    def close(lazy, expected):
        got = lazy.compute(scheduler=scheduler)
        assert got.shape == expected.shape and got.dtype == expected.dtype
        assert (np.abs(got - expected) <= np.abs(expected) * 4 * EPS + tol).all()

    np.testing.assert_array_equal(z.real.compute(scheduler=scheduler), want.real)
    np.testing.assert_array_equal(z.imag.compute(scheduler=scheduler), want.imag)
    assert z.real.dtype == np.float64 and not isinstance(z.real, oxidask.array._pyblocks.PyArray)
    close(abs(z), np.abs(want))
    close(z.conj(), want.conj())
    close(z * 2 - 1j, want * 2 - 1j)
    close(x * z, a * want)
    close(z / (z + 1), want / (want + 1))
    close(-z, -want)
    close(np.exp(z / 100), np.exp(want / 100))
    close(z.astype(np.complex64), want.astype(np.complex64))
    close(x * 1j + x, a * 1j + a)  # an engine array times a complex scalar: complex blocks
    close(np.exp(1j * x), np.exp(1j * a))
    close(np.fft.fft(x), want)  # NumPy's fft functions reach da.fft through the protocol
    close(np.fft.ifft(z), np.fft.ifft(want))
    close(z.rechunk((4, 5)), want)
    assert z.rechunk((4, 5)).chunks == ((4, 2), (5, 3))
    close(z.map_blocks(np.conj), want.conj())
    p = z.persist(scheduler=scheduler)
    close(p, want)
    blocks = z.to_delayed()
    assert blocks.shape == (2, 1)
    np.testing.assert_array_equal(blocks[1, 0].compute(), want[3:])
    with pytest.raises(NotImplementedError, match=r"\.real, \.imag or abs\(\)"):
        z.sum()
    with pytest.raises(NotImplementedError, match="broadcasting complex"):
        z + da.ones(8)


@pytest.mark.parametrize("module", [oxidask.array.random, oxidask.array.linalg,
                                    oxidask.array.fft, oxidask.array._pyblocks,
                                    oxidask.array.routines])
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


INDICES = [np.s_[:, :5], np.s_[2], np.s_[1:6:2, ::3], np.s_[..., 4], np.s_[None, 2:4],
           np.s_[-1, -2], np.s_[5:5], np.s_[:, 9:], np.s_[3:, None, 1:8:4]]


@pytest.mark.parametrize("chunks", [(3, 4), (7, 10), (1, 3)])
def test_complex_basic_indexing(chunks, scheduler):
    a = RNG.normal(size=(7, 10))
    want = np.fft.fft(a)
    z = da.fft.fft(da.from_array(a, chunks=(chunks[0], 10))).rechunk(chunks)
    for index in INDICES:
        got = z[index]
        assert got.shape == want[index].shape and got.dtype == want.dtype
        np.testing.assert_array_equal(got.compute(scheduler=scheduler), want[index])
    with pytest.raises(IndexError, match="out of bounds"):
        z[7]
    with pytest.raises(NotImplementedError, match="slices, integers"):
        z[[0, 1]]
    with pytest.raises(NotImplementedError, match=r"np.sum on complex128"):
        np.sum(z)
