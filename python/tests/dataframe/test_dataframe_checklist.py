"""The rest of issue 14's dataframe list against pandas on the same data, across partition
counts: ``apply(axis=1)`` with inferred meta, ``describe``, ``nunique``, ``join`` on the
index, ``drop_duplicates``, ``between``, ``isin``, ``repartition``, ``divisions`` after
``set_index``, ``to_csv`` names (directory, ``*``, ``single_file``) and ``to_parquet``."""

import os

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

import oxidask.dataframe as dd


def test_row_functions_and_summaries(pdf, npartitions):
    df = dd.from_pandas(pdf, npartitions=npartitions)
    got = df.apply(lambda r: r.x * 2 + r.g, axis=1).compute()
    pdt.assert_series_equal(got, pdf.apply(lambda r: r.x * 2 + r.g, axis=1))
    got = df.apply(lambda r: r.k + "!", axis=1, meta=("k", "str")).compute()
    assert got.tolist() == (pdf.k + "!").tolist()
    d = df.describe().compute()
    want = pdf[["g", "x", "y"]].describe()
    for stat in ("count", "mean", "std", "min", "max"):
        np.testing.assert_allclose(d.loc[stat, ["g", "x", "y"]].astype(float),
                                   want.loc[stat].astype(float), rtol=1e-12)
    pdt.assert_series_equal(df.nunique().compute(), pdf.nunique(), check_dtype=False)
    assert df.k.nunique().compute() == pdf.k.nunique()
    got = df[["k", "g"]].drop_duplicates().compute().sort_values(["k", "g"])
    pdt.assert_frame_equal(got.reset_index(drop=True), pdf[["k", "g"]].drop_duplicates()
                           .sort_values(["k", "g"]).reset_index(drop=True))
    assert len(df.drop_duplicates(subset=["k"]).compute()) == pdf.k.nunique()
    pdt.assert_series_equal(df.x.between(-10, 10).compute(), pdf.x.between(-10, 10))
    pdt.assert_series_equal(df.x.between(-10, 10, inclusive="neither").compute(),
                            pdf.x.between(-10, 10, inclusive="neither"))
    pdt.assert_series_equal(df.k.isin(["apple", "date"]).compute(),
                            pdf.k.isin(["apple", "date"]))
    pdt.assert_frame_equal(df[["g", "x"]].isin([1, 2]).compute(), pdf[["g", "x"]].isin([1, 2]))
    r = df.repartition(npartitions=5)
    assert r.npartitions == 5 and r.divisions == (None,) * 6
    pdt.assert_frame_equal(r.compute(), pdf)


@pytest.mark.parametrize("how", ["left", "inner", "outer", "right"])
def test_join_on_the_index(pdf, npartitions, how):
    right = pd.DataFrame({"k": ["apple", "cherry", "fig"], "z": [1.5, 2.5, 3.5],
                          "y": [0.0, 1.0, 2.0]})
    left = dd.from_pandas(pdf, npartitions=npartitions).set_index("k")
    rd = dd.from_pandas(right, npartitions=2).set_index("k")
    got = left.join(rd, how=how, rsuffix="_r").compute()
    want = pdf.set_index("k").join(right.set_index("k"), how=how, suffixes=("", "_r"))
    assert got.index.name == "k"
    key = ["k", "x", "t"]
    pdt.assert_frame_equal(got.reset_index().sort_values(key).reset_index(drop=True),
                           want.reset_index().sort_values(key).reset_index(drop=True),
                           check_dtype=False)
    # on= a column of the left frame.
    got = dd.from_pandas(pdf, npartitions=npartitions).join(rd[["z"]], on="k", how=how)
    want = pdf.join(right.set_index("k")[["z"]], on="k", how=how)
    pdt.assert_frame_equal(got.compute().sort_values(key).reset_index(drop=True),
                           want.sort_values(key).reset_index(drop=True), check_dtype=False)
    with pytest.raises(ValueError, match="no suffix"):
        left.join(rd)


@pytest.mark.parametrize("how", ["left", "inner", "outer", "right"])
def test_join_on_numeric_indexes_of_different_divisions_aligns_without_a_shuffle(how, capsys):
    # As Dask's align_partitions: both sides cut at the union of their divisions, joined
    # partition by partition; the result keeps the index and known divisions.
    rng = np.random.default_rng(7)
    a = pd.DataFrame({"id": rng.permutation(300), "x": rng.normal(size=300),
                      "v": np.arange(300)})
    b = pd.DataFrame({"id": np.arange(0, 450, 3), "y": np.arange(150) * 2.0,
                      "v": np.arange(150) * 10})
    left = dd.from_pandas(a, npartitions=3).set_index("id", divisions=[0, 100, 200, 299])
    right = dd.from_pandas(b, npartitions=2).set_index("id", divisions=[0, 150, 447])
    got = left.join(right, how=how, suffixes=("_l", "_r"))
    got.pprint()
    plan = capsys.readouterr().out
    assert "Aligned" in plan and "Partitionwise" not in plan, plan
    assert got.known_divisions and got.npartitions == 4, got.divisions
    want = a.set_index("id").join(b.set_index("id"), how=how, suffixes=("_l", "_r"))
    out = got.compute()
    assert list(out.columns) == list(want.columns)
    pdt.assert_frame_equal(out.sort_index(), want.sort_index(), check_dtype=False)
    # merge(left_index=True, right_index=True) takes the same path, pandas' suffixes.
    m = left.merge(right, how=how, left_index=True, right_index=True)
    assert m.known_divisions
    wm = a.set_index("id").merge(b.set_index("id"), how=how, left_index=True, right_index=True)
    pdt.assert_frame_equal(m.compute().sort_index(), wm.sort_index(), check_dtype=False)


def test_divisions_after_set_index(pdf, npartitions):
    df = dd.from_pandas(pdf, npartitions=npartitions)
    assert df.divisions == (None,) * (npartitions + 1) and not df.known_divisions
    si = df.set_index("x")
    div = si.divisions
    assert len(div) == si.npartitions + 1 and si.known_divisions
    assert div[0] == pdf.x.min() and div[-1] == pdf.x.max()
    assert list(div) == sorted(div)
    for i in range(si.npartitions):
        idx = si.get_partition(i).compute().index
        if len(idx):
            assert div[i] <= idx.min()
            assert idx.max() < div[i + 1] or (i == si.npartitions - 1 and idx.max() == div[-1])
    given = df.set_index("x", divisions=[-50, -10, 20, 49])
    assert given.divisions == (-50, -10, 20, 49)
    t = df.set_index("t")
    assert t.divisions[0] == pdf.t.min() and t.divisions[-1] == pdf.t.max()


def test_to_csv_names_and_to_parquet(pdf, tmp_path):
    p = pdf.drop(columns=["t"])
    df = dd.from_pandas(p, npartitions=3)
    names = df.to_csv(str(tmp_path / "dir"))
    assert names == [str(tmp_path / "dir" / f"part.{i}.csv") for i in range(3)]
    back = pd.concat([pd.read_csv(f) for f in names], ignore_index=True)
    pdt.assert_frame_equal(back, p, check_dtype=False)
    names = df.to_csv(str(tmp_path / "out-*.csv"), name_function=lambda i: f"{i:02d}")
    assert names == [str(tmp_path / f"out-{i:02d}.csv") for i in range(3)]
    pdt.assert_frame_equal(pd.concat([pd.read_csv(f) for f in names], ignore_index=True), p,
                           check_dtype=False)
    one = df.to_csv(str(tmp_path / "all.csv"), single_file=True)
    assert one == [str(tmp_path / "all.csv")]
    pdt.assert_frame_equal(pd.read_csv(one[0]), p, check_dtype=False)
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".oxidask")]
    df.to_parquet(str(tmp_path / "pq"))
    pdt.assert_frame_equal(dd.read_parquet(str(tmp_path / "pq")).compute(), p,
                           check_dtype=False)
