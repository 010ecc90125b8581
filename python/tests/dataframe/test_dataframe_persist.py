"""``persist`` of dataframes keeps the engine's partitions (Polars frames) and the index with
its divisions, locally and on a cluster, as Dask's persist keeps partitions and divisions."""

import numpy as np
import pandas as pd
import pytest

import oxidask
import oxidask.dataframe as dd
from oxidask.distributed import Client, LocalCluster, futures_of


def _frame():
    rng = np.random.default_rng(7)
    return pd.DataFrame({
        "k": rng.permutation(400).astype(float),
        "v": np.arange(400),
        "s": [f"name-{i % 13}" for i in range(400)],
    })


def _no_pandas_round_trip(df):
    keys = " ".join(str(k) for k in df.dask)
    return "to-pandas" not in keys and "from-pandas" not in keys


@pytest.mark.parametrize("scheduler", ["sync", "threads"])
def test_persisted_set_index_keeps_divisions_and_engine_partitions(scheduler):
    pdf = _frame()
    df = dd.from_pandas(pdf, npartitions=4).set_index("k")
    p = df.persist(scheduler=scheduler)
    assert p.known_divisions and p.divisions == df.divisions
    assert p.npartitions == df.npartitions
    # The graph reads the computed partitions: no conversion to pandas and back.
    assert _no_pandas_round_trip(p[p.v > 10])
    assert len(p) == len(pdf)
    assert p.v.sum().compute() == pdf.v.sum()
    pd.testing.assert_frame_equal(p.compute(), pdf.set_index("k").sort_index())
    # Later work on it: a groupby.
    got = p.groupby("s").v.sum().compute().sort_index()
    pd.testing.assert_series_equal(got, pdf.groupby("s").v.sum().sort_index())


def test_persisted_series_computes_as_pandas():
    pdf = _frame()
    s = dd.from_pandas(pdf, npartitions=3).v.persist()
    assert isinstance(s, dd.Series)
    assert s.sum().compute() == pdf.v.sum()
    pd.testing.assert_series_equal(s.compute(), pdf.v)


def test_persist_on_a_cluster_keeps_divisions_and_holds_the_pieces_there():
    pdf = _frame()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True) as cluster, \
            Client(cluster) as client:
        df = dd.from_pandas(pdf, npartitions=4).set_index("k")
        for p in (df.persist(), client.persist(df)):
            assert p.known_divisions and p.divisions == df.divisions
            assert len(futures_of(p)) == 4
            assert len(p) == len(pdf)
            pd.testing.assert_frame_equal(p.compute(), pdf.set_index("k").sort_index())
            assert p[p.v > 10].v.sum().compute() == pdf.v[pdf.v > 10].sum()
        s = client.persist(df.v)
        assert s.max().compute() == pdf.v.max()
