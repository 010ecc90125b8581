"""``da.random``'s distributions against the distributions themselves: the sample mean and
variance of N draws must lie within 5 standard errors of the true mean and variance, the
standard errors derived from N and the distribution's own moments (sd/sqrt(N) for the mean,
sqrt((mu4 - sigma^4)/N) for the variance). Each case runs for the module's functions,
``RandomState`` and ``default_rng()`` over several chunkings. Also: shapes, chunks, dtypes,
reprs, reproducibility across schedulers, distinct streams per block, array parameters,
``choice`` and ``permutation``, and NumPy's errors for bad parameters."""

import math

import numpy as np
import pytest

import oxidask.array as da

N = 120_000
Z = 5.0  # standard errors allowed: a two-sided normal tail of 6e-7 per check
EULER = 0.5772156649015329
EPS = np.finfo(np.float64).eps


def moments_of_pmf(k, pmf):
    """Mean, variance and 4th central moment of a discrete distribution given on ``k``."""
    pmf = pmf / pmf.sum()
    mean = float((k * pmf).sum())
    var = float(((k - mean) ** 2 * pmf).sum())
    mu4 = float(((k - mean) ** 4 * pmf).sum())
    return mean, var, mu4


def from_kurtosis(mean, var, excess):
    """(mean, var, mu4) from the excess kurtosis."""
    return mean, var, (excess + 3.0) * var * var


def beta_moments(a, b):
    var = a * b / ((a + b) ** 2 * (a + b + 1))
    ex = 6 * ((a - b) ** 2 * (a + b + 1) - a * b * (a + b + 2)) / (
        a * b * (a + b + 2) * (a + b + 3))
    return from_kurtosis(a / (a + b), var, ex)


def weibull_moments(k):
    g = [math.gamma(1 + i / k) for i in range(5)]
    var = g[2] - g[1] ** 2
    mu4 = g[4] - 4 * g[1] * g[3] + 6 * g[1] ** 2 * g[2] - 3 * g[1] ** 4
    return g[1], var, mu4


def lognormal_moments(mu, s):
    var = (math.exp(s * s) - 1) * math.exp(2 * mu + s * s)
    ex = math.exp(4 * s * s) + 2 * math.exp(3 * s * s) + 3 * math.exp(2 * s * s) - 6
    return from_kurtosis(math.exp(mu + s * s / 2), var, ex)


def binomial_pmf_moments(n, p):
    k = np.arange(n + 1, dtype=float)
    pmf = np.array([math.comb(n, int(i)) * p ** i * (1 - p) ** (n - i) for i in k])
    return moments_of_pmf(k, pmf)


def hypergeometric_moments(good, bad, nsample):
    k = np.arange(nsample + 1, dtype=float)
    pmf = np.array([math.comb(good, int(i)) * math.comb(bad, nsample - int(i)) for i in k],
                   dtype=float)
    return moments_of_pmf(k, pmf)


def triangular_moments(a, c, b):
    mean = (a + b + c) / 3
    var = (a * a + b * b + c * c - a * b - a * c - b * c) / 18
    return from_kurtosis(mean, var, -0.6)


# name -> (parameters, (mean, variance, 4th central moment), integer-valued)
CASES = {
    "beta": ((2.0, 5.0), beta_moments(2.0, 5.0), False),
    "binomial": ((10, 0.3), binomial_pmf_moments(10, 0.3), True),
    "chisquare": ((4.0,), from_kurtosis(4.0, 8.0, 3.0), False),
    "exponential": ((2.0,), from_kurtosis(2.0, 4.0, 6.0), False),
    "f": ((5.0, 10.0), from_kurtosis(1.25, 2 * 100 * 13 / (5 * 64 * 6),
                                     12 * (5 * 28 * 13 + 6 * 64) / (5 * 4 * 2 * 13)), False),
    "gamma": ((2.0, 3.0), from_kurtosis(6.0, 18.0, 3.0), False),
    "geometric": ((0.25,), from_kurtosis(4.0, 12.0, 6 + 0.25 ** 2 / 0.75), True),
    "gumbel": ((1.0, 2.0), from_kurtosis(1 + 2 * EULER, math.pi ** 2 / 6 * 4, 2.4), False),
    "hypergeometric": ((7, 13, 5), hypergeometric_moments(7, 13, 5), True),
    "laplace": ((1.0, 2.0), from_kurtosis(1.0, 8.0, 3.0), False),
    "logistic": ((1.0, 2.0), from_kurtosis(1.0, 4 * math.pi ** 2 / 3, 1.2), False),
    "lognormal": ((0.0, 0.5), lognormal_moments(0.0, 0.5), False),
    "logseries": ((0.5,), moments_of_pmf(np.arange(1, 200.0),
                                        0.5 ** np.arange(1, 200.0) / np.arange(1, 200.0)), True),
    "negative_binomial": ((5, 0.4), from_kurtosis(7.5, 18.75, 6 / 5 + 0.16 / 3), True),
    "pareto": ((5.0,), from_kurtosis(0.25, 5 / 48, 6 * 118 / 10), False),
    "poisson": ((4.0,), from_kurtosis(4.0, 4.0, 0.25), True),
    "power": ((3.0,), beta_moments(3.0, 1.0), False),
    "rayleigh": ((2.0,), from_kurtosis(2 * math.sqrt(math.pi / 2), (4 - math.pi) / 2 * 4,
                                       -(6 * math.pi ** 2 - 24 * math.pi + 16) / (4 - math.pi) ** 2),
                 False),
    "standard_exponential": ((), from_kurtosis(1.0, 1.0, 6.0), False),
    "standard_gamma": ((3.0,), from_kurtosis(3.0, 3.0, 2.0), False),
    "standard_t": ((10.0,), from_kurtosis(0.0, 1.25, 1.0), False),
    "triangular": ((0.0, 1.0, 3.0), triangular_moments(0.0, 1.0, 3.0), False),
    "wald": ((1.0, 2.0), from_kurtosis(1.0, 0.5, 7.5), False),
    "weibull": ((2.0,), weibull_moments(2.0), False),
    "zipf": ((6.0,), moments_of_pmf(np.arange(1, 200_000.0), np.arange(1, 200_000.0) ** -6.0),
             True),
}

SOURCES = {
    "module": lambda seed: (da.random.seed(seed), da.random)[1],
    "RandomState": lambda seed: da.random.RandomState(seed),
    "Generator": lambda seed: da.random.default_rng(seed),
}


def check_moments(sample, mean, var, mu4):
    n = sample.size
    se_mean = math.sqrt(var / n)
    se_var = math.sqrt((mu4 - var * var) / n)
    got_mean = sample.mean()
    got_var = sample.var(ddof=1)
    assert abs(got_mean - mean) <= Z * se_mean, (got_mean, mean, se_mean)
    assert abs(got_var - var) <= Z * se_var, (got_var, var, se_var)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("source,chunks", [("module", 30_000), ("RandomState", ((50_000, 7_000, 63_000),)),
                                           ("Generator", -1), ("Generator", 40_000)])
def test_distribution_moments(name, source, chunks):
    params, (mean, var, mu4), integer = CASES[name]
    rng = SOURCES[source](sorted(CASES).index(name) + 1)
    x = getattr(rng, name)(*params, size=N, chunks=chunks)
    assert x.shape == (N,)
    assert x.chunks == da.normalize_chunks(chunks, (N,))
    assert x.dtype == np.dtype(np.int64 if integer else np.float64)
    assert repr(x).startswith(f"dask.array<{name}, shape=({N},), dtype={x.dtype.name}")
    sample = x.compute()
    assert sample.shape == (N,) and sample.dtype == x.dtype
    check_moments(sample, mean, var, mu4)


def test_distributions_without_finite_moments():
    # Cauchy: the sample median's standard error is pi / (2 sqrt(N)).
    x = da.random.default_rng(5).standard_cauchy(size=N, chunks=25_000).compute()
    assert abs(np.median(x)) <= Z * math.pi / (2 * math.sqrt(N))
    v = da.random.RandomState(6).vonmises(0.5, 2.0, size=(300, 400), chunks=(100, 150))
    assert v.dtype == np.float64 and v.chunks == ((100,) * 3, (150, 150, 100))
    vals = v.compute()
    assert (np.abs(vals) <= math.pi).all()
    nc = da.random.RandomState(7).noncentral_chisquare(3.0, 2.0, size=N, chunks=N // 3)
    # mean df + nonc, variance 2 (df + 2 nonc), 4th moment via cumulants k4 = 48 (df + 4 nonc).
    k2, k4 = 2 * (3 + 4), 48 * (3 + 8)
    check_moments(nc.compute(), 5.0, k2, k4 + 3 * k2 * k2)
    nf = da.random.default_rng(8).noncentral_f(5.0, 20.0, 1.0, size=1000, chunks=300)
    assert nf.dtype == np.float64 and (nf.compute() > 0).all()


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_reproducible_across_schedulers_and_distinct_blocks(source, client):
    arrays = []
    for scheduler in ("sync", "threads", "processes", client):
        rng = SOURCES[source](2024)
        kwargs = {"scheduler": scheduler} if isinstance(scheduler, str) else {}
        x = rng.gamma(2.0, size=(40, 30), chunks=(10, 15))
        arrays.append(x.compute(**kwargs) if kwargs else client.compute(x).result())
    for other in arrays[1:]:
        np.testing.assert_array_equal(arrays[0], other)
    blocks = [arrays[0][i:i + 10, j:j + 15] for i in range(0, 40, 10) for j in (0, 15)]
    for i in range(len(blocks)):
        for j in range(i):
            assert not np.array_equal(blocks[i], blocks[j])
    # Another call of the same state gives other numbers; a new state gives them again.
    rng = SOURCES[source](2024)
    first = rng.beta(2, 3, size=500, chunks=100).compute()
    second = rng.beta(2, 3, size=500, chunks=100).compute()
    again = SOURCES[source](2024).beta(2, 3, size=500, chunks=100).compute()
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(first, again)


def test_unseeded_calls_differ():
    a = da.random.poisson(3.0, size=1000, chunks=500).compute()
    b = da.random.poisson(3.0, size=1000, chunks=500).compute()
    assert not np.array_equal(a, b)
    rng = da.random.default_rng()
    assert not np.array_equal(rng.laplace(size=100).compute(), rng.laplace(size=100).compute())


@pytest.mark.parametrize("chunks", [(4, 3), (2, 6), -1])
def test_array_parameters_broadcast(chunks, scheduler):
    lam = np.array([1.0, 10.0, 100.0, 1000.0, 5.0, 0.5])
    rng = da.random.default_rng(11)
    x = rng.poisson(lam, size=(8000, 6), chunks=(2000, 3) if chunks != -1 else -1)
    got = x.compute(scheduler=scheduler)
    assert got.shape == (8000, 6) and got.dtype == np.int64
    for j, l in enumerate(lam):
        assert abs(got[:, j].mean() - l) <= Z * math.sqrt(l / 8000)
    # A dask array parameter, shape from the parameters when size is omitted.
    scale = da.from_array(np.array([[1.0], [3.0]]), chunks=1)
    y = rng.exponential(scale, size=(2, 20000), chunks=(1, 5000))
    vals = y.compute(scheduler=scheduler)
    assert abs(vals[0].mean() - 1.0) <= Z * 1.0 / math.sqrt(20000)
    assert abs(vals[1].mean() - 3.0) <= Z * 3.0 / math.sqrt(20000)
    z = da.random.RandomState(3).normal(size=(3,))  # the engine's generator, unchanged
    assert z.shape == (3,)
    w = da.random.RandomState(4).beta(np.full((5, 2), 2.0), 3.0, chunks=chunks if chunks != -1
                                      else -1)
    assert w.shape == (5, 2)


def test_choice_and_permutation(scheduler):
    rng = da.random.RandomState(9)
    p = np.array([0.1, 0.2, 0.3, 0.4])
    c = rng.choice(4, size=N, p=p, chunks=N // 4)
    assert c.dtype == np.int64 and c.chunks == ((N // 4,) * 4,)
    counts = np.bincount(c.compute(scheduler=scheduler), minlength=4)
    for k in range(4):
        assert abs(counts[k] - N * p[k]) <= Z * math.sqrt(N * p[k] * (1 - p[k]))
    letters = np.array([3.5, 7.25, -1.0])
    d = da.random.default_rng(1).choice(letters, size=(50, 40), chunks=(20, 25))
    assert d.dtype == np.float64 and set(np.unique(d.compute())) <= set(letters)
    pool = da.arange(10, chunks=3)
    e = da.random.default_rng(2).choice(pool, size=7, replace=False, chunks=-1).compute()
    assert len(set(e.tolist())) == 7 and set(e.tolist()) <= set(range(10))
    with pytest.raises(NotImplementedError, match="one block"):
        rng.choice(10, size=6, replace=False, chunks=3)
    perm = da.random.default_rng(4).permutation(1000)
    assert perm.shape == (1000,) and perm.dtype == np.int64
    vals = perm.compute(scheduler=scheduler)
    np.testing.assert_array_equal(np.sort(vals), np.arange(1000))
    assert not np.array_equal(vals, np.arange(1000))
    m = np.arange(60.0).reshape(20, 3)
    pm = da.random.RandomState(5).permutation(da.from_array(m, chunks=(6, 2)))
    assert pm.chunks == ((6, 6, 6, 2), (2, 1))
    got = pm.compute(scheduler=scheduler)
    np.testing.assert_array_equal(got[np.argsort(got[:, 0])], m)  # rows move whole


@pytest.mark.parametrize("call,error,match", [
    (lambda: da.random.beta(0.0, 1.0, size=3), ValueError, "a <= 0"),
    (lambda: da.random.default_rng(1).poisson(-1.0, size=3), ValueError, "lam < 0"),
    (lambda: da.random.triangular(2.0, 1.0, 3.0, size=3), ValueError, "left > mode"),
    (lambda: da.random.binomial(10, 1.5, size=3), ValueError, "p > 1"),
    (lambda: da.random.beta(size=3), TypeError, "missing required arguments: 'a', 'b'"),
    (lambda: da.random.gamma(2.0, size="x"), TypeError, "size must be"),
    (lambda: da.random.beta("x", 1.0), ValueError, "could not convert"),
    (lambda: da.random.poisson(np.ones(3), size=(2, 2)), ValueError, r"\(3,\).*\(2, 2\)"),
    (lambda: da.random.choice([1, 2], p=[0.5, 0.6]), ValueError, "do not sum to 1"),
    (lambda: da.random.choice([1, 2], p=[0.5, 0.3, 0.2]), ValueError, "same size"),
    (lambda: da.random.RandomState(0).gamma(1.0, 1.0, 5, 5, 5), TypeError, "at most"),
])
def test_bad_parameters_raise_numpys_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_docstrings_and_signatures():
    import inspect

    for name in CASES:
        for f in (getattr(da.random, name), getattr(da.random.RandomState, name)):
            assert f.__doc__ and "size" in str(inspect.signature(f))
    assert "chunks" in str(inspect.signature(da.random.beta))


def test_seed_book_example_beta_times_arccos(scheduler):
    # The seeds' performance-report example (Example 12-9/12-10), at the small size.
    da.random.seed(12)
    gnarl = da.random.beta(1, 2, size=(100, 100, 10), chunks=(100, 100, 5))
    x = da.random.random((100, 100, 10), chunks=(100, 100, 5))
    y = (da.arccos(x) * gnarl).sum(axis=(1, 2))
    assert y.shape == (100,) and y.dtype == np.float64
    yv, gv, xv = da.compute(y, gnarl, x, scheduler=scheduler)
    terms = np.arccos(xv) * gv
    # The same blocks summed by the engine: within the rounding of 1000-term sums.
    assert (np.abs(yv - terms.sum(axis=(1, 2))) <= 1000 * EPS * terms.sum(axis=(1, 2))).all()
    # E[arccos U] = 1, E[Beta(1,2)] = 1/3; E[arccos(U)^2] = pi - 2, E[B^2] = 1/6.
    var = (math.pi - 2) / 6 - 1 / 9
    assert abs(terms.mean() - 1 / 3) <= Z * math.sqrt(var / terms.size)
