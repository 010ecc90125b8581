"""``df.shuffle(on, shuffle_method=...)`` and the ``shuffle_method`` of sort_values, set_index
and merge (Dask's keyword): p2p and tasks agree with each other and with pandas, on the local
schedulers (in-process shard store) and on a LocalCluster of two worker processes (the
workers' shuffle services)."""

import pandas as pd
import pandas.testing as pdt
import pytest

import oxidask.dataframe as dd


def _rows(df):
    """Rows in a canonical order (shuffles do not keep row order)."""
    return df.sort_values(list(df.columns)).reset_index(drop=True)


def _check_shuffles(pdf, nparts, scheduler=None):
    df = dd.from_pandas(pdf, npartitions=nparts)
    kw = {} if scheduler is None else {"scheduler": scheduler}
    for on in ["k", ["g", "k"]]:
        p2p = df.shuffle(on, npartitions=5, shuffle_method="p2p")
        tasks = df.shuffle(on, npartitions=5, shuffle_method="tasks")
        assert p2p.npartitions == 5
        got = p2p.compute(**kw)
        # Same partitions, same rows in the same order as the task shuffle.
        pdt.assert_frame_equal(got, tasks.compute(**kw))
        pdt.assert_frame_equal(_rows(got), _rows(pdf), check_dtype=False)
        # Equal keys share a partition.
        keys = [on] if isinstance(on, str) else on
        owners = {}
        for i in range(p2p.npartitions):
            part = p2p.get_partition(i).compute(**kw)
            for key in part[keys].drop_duplicates().itertuples(index=False):
                assert owners.setdefault(tuple(key), i) == i
    for col in ["x", "t", "k"]:
        got = df.sort_values(col, shuffle_method="p2p").compute(**kw)
        assert got[col].tolist() == pdf.sort_values(col)[col].tolist()
    got = df.set_index("x", shuffle_method="p2p").compute(**kw)
    assert got.index.tolist() == sorted(pdf.x.tolist())
    right = dd.from_pandas(pd.DataFrame({"g": range(5), "name": list("abcde")}), npartitions=2)
    got = df.merge(right, on="g", shuffle_method="p2p").compute(**kw)
    want = pdf.merge(pd.DataFrame({"g": range(5), "name": list("abcde")}), on="g")
    pdt.assert_frame_equal(_rows(got), _rows(want), check_dtype=False)


def test_p2p_and_tasks_agree_with_pandas_locally(pdf, npartitions, scheduler):
    _check_shuffles(pdf, npartitions, scheduler)


def test_p2p_on_a_cluster(client, pdf):
    _check_shuffles(pdf, 6)


def test_unknown_shuffle_method_is_a_value_error(pdf):
    df = dd.from_pandas(pdf, npartitions=2)
    with pytest.raises(ValueError, match="disk"):
        df.shuffle("k", shuffle_method="disk")
    with pytest.raises(KeyError):
        df.shuffle("nope")


def test_p2p_is_the_default_on_a_cluster_for_large_shuffles(client, pdf):
    import oxidask

    df = dd.from_pandas(pdf, npartitions=20)
    base = len(df.dask)
    # 20 x 20 pairs on a cluster: p2p (20 transfers, a barrier, 20 unpacks).
    s = df.shuffle("k", npartitions=20)
    assert len(s.dask) - base == 20 + 1 + 20
    pdt.assert_frame_equal(_rows(s.compute()), _rows(pdf), check_dtype=False)
    # Small shuffles, or the threaded scheduler: a split and a pick per pair.
    assert len(df.shuffle("k", npartitions=5).dask) - base == 20 + 20 * 5 + 5
    with oxidask.config.set(scheduler="threads"):
        assert len(df.shuffle("k", npartitions=20).dask) - base == 20 + 400 + 20
    # The configuration decides when set.
    with oxidask.config.set({"dataframe.shuffle.method": "tasks"}):
        assert len(df.shuffle("k", npartitions=20).dask) - base == 20 + 400 + 20


def _has_p2p(collection):
    return any("p2p-barrier" in str(k) for k in collection.dask)


def test_groupby_split_out_uses_p2p_on_a_cluster_when_the_rule_says(client, pdf):
    """Regression: a split_out groupby always shuffled with tasks from Python, whatever the
    rule DataFrame.shuffle follows (p2p on a cluster from 256 input x output pairs)."""
    import oxidask

    df = dd.from_pandas(pdf, npartitions=20)
    want = pdf.groupby("k")["x"].sum().sort_index()
    big = df.groupby("k").x.sum(split_out=20)
    assert _has_p2p(big)
    got = big.compute().sort_index()
    pdt.assert_series_equal(got, want, check_dtype=False, check_names=False)
    # Small, on the threaded scheduler, or configured: tasks.
    assert not _has_p2p(df.groupby("k").x.sum(split_out=4))
    with oxidask.config.set(scheduler="threads"):
        assert not _has_p2p(df.groupby("k").x.sum(split_out=20))
    with oxidask.config.set({"dataframe.shuffle.method": "tasks"}):
        assert not _has_p2p(df.groupby("k").x.sum(split_out=20))
