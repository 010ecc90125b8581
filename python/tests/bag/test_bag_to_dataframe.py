"""``Bag.to_dataframe`` against pandas' DataFrame of the same records: dicts and tuples,
``columns=``, ``meta=`` in its forms, a partition per bag partition, across partitionings and
schedulers (and a cluster), and the errors."""

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

import oxidask.bag as db


def _records(n=37):
    rng = np.random.default_rng(2)
    return [{"id": i, "name": str(rng.choice(["ann", "bob", "cy"])), "v": float(i) / 4,
             "ok": bool(i % 3)} for i in range(n)]


@pytest.mark.parametrize("npartitions", [1, 3, 8])
def test_dict_records(npartitions, scheduler):
    recs = _records()
    b = db.from_sequence(recs, npartitions=npartitions)
    df = b.to_dataframe()
    assert df.npartitions == b.npartitions
    want = pd.DataFrame(recs)
    pdt.assert_frame_equal(df.compute(scheduler=scheduler), want)
    assert list(df.columns) == ["id", "name", "v", "ok"]
    # A frame like any other: lazy operations agree with pandas.
    pdt.assert_series_equal(df[df.ok].groupby("name").v.sum().compute().sort_index(),
                            want[want.ok].groupby("name").v.sum().sort_index())
    # Bag operations before: map/filter records, then a frame.
    sub = b.filter(lambda r: r["id"] % 2 == 0).map(lambda r: {"id": r["id"], "w": r["v"] * 2})
    pdt.assert_frame_equal(
        sub.to_dataframe().compute(),
        pd.DataFrame([{"id": r["id"], "w": r["v"] * 2} for r in recs if r["id"] % 2 == 0]))


@pytest.mark.parametrize("npartitions", [1, 4])
def test_tuples_with_columns_and_meta(npartitions):
    rows = [(i, f"k{i % 4}", i * 1.5) for i in range(21)]
    b = db.from_sequence(rows, npartitions=npartitions)
    df = b.to_dataframe(columns=["a", "b", "c"])
    pdt.assert_frame_equal(df.compute(), pd.DataFrame(rows, columns=["a", "b", "c"]))
    # Without names the columns are the positions (as strings: oxidask names columns so).
    unnamed = b.to_dataframe().compute()
    want = pd.DataFrame(rows)
    want.columns = ["0", "1", "2"]
    pdt.assert_frame_equal(unnamed, want)
    # meta= gives the dtypes every partition is cast to: dict, pairs, or an empty frame.
    want = pd.DataFrame(rows, columns=["a", "b", "c"]).astype({"a": "float64"})
    for meta in ({"a": "float64", "b": "str", "c": "float64"},
                 [("a", "float64"), ("b", "str"), ("c", "float64")],
                 want.iloc[:0]):
        pdt.assert_frame_equal(b.to_dataframe(meta=meta).compute(), want)


def test_empty_partitions_and_missing_keys():
    recs = [{"x": 1, "y": "a"}, {"x": 2}, {"x": 3, "y": "c"}]
    b = db.from_sequence(recs, npartitions=3).filter(lambda r: r["x"] != 2)
    df = b.to_dataframe()
    assert df.npartitions == 3
    pdt.assert_frame_equal(df.compute(), pd.DataFrame([recs[0], recs[2]]))
    # A key missing from a record is a missing value, as in pandas.
    got = db.from_sequence(recs, npartitions=2).to_dataframe().compute()
    pdt.assert_frame_equal(got, pd.DataFrame(recs))


def test_on_a_cluster(client):
    recs = _records(50)
    df = db.from_sequence(recs, npartitions=5).to_dataframe()
    pdt.assert_frame_equal(df.compute(), pd.DataFrame(recs))
    assert df.v.sum().compute() == sum(r["v"] for r in recs)


def test_errors():
    b = db.from_sequence([{"x": 1}], npartitions=1)
    with pytest.raises(ValueError, match="both `meta` and `columns`"):
        b.to_dataframe(meta={"x": "int64"}, columns=["x"])
    with pytest.raises(ValueError, match="meta="):
        db.from_sequence([], npartitions=1).to_dataframe()
    with pytest.raises(ValueError, match="meta="):
        b.map(lambda r: {"x": "text"}).to_dataframe(meta={"x": "int64"}).compute()
    with pytest.raises(TypeError, match="DataFrame"):
        b.to_dataframe(meta=("x", "int64"))
