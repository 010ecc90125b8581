"""Fixtures of the dataframe tests.

- ``pdf``: a pandas DataFrame of generated data (ints, floats with NaN, strings, datetimes),
  the oracle every test compares with.
- ``npartitions``: each test that takes it runs on 1, 3 and 7 partitions.
- ``scheduler``: ``sync`` and ``threads``.
- ``client``: a distributed client on ``LocalCluster(n_workers=2, threads_per_worker=1)``
  (real worker processes), one per test module.
"""

import numpy as np
import pandas as pd
import pytest


@pytest.fixture(scope="session")
def pdf():
    rng = np.random.default_rng(42)
    n = 200
    y = rng.normal(size=n)
    y[::17] = np.nan
    return pd.DataFrame(
        {
            "k": rng.choice(["apple", "Banana", "cherry", "date"], size=n),
            "g": rng.integers(0, 5, size=n),
            "x": rng.integers(-50, 50, size=n),
            "y": y,
            "t": pd.date_range("2024-01-01", periods=n, freq="37min"),
        }
    )


@pytest.fixture(params=[1, 3, 7])
def npartitions(request):
    return request.param


@pytest.fixture(params=["sync", "threads"])
def scheduler(request):
    return request.param


@pytest.fixture(scope="module")
def client():
    from oxidask.distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1)
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()
