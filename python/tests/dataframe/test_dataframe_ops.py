"""oxidask.dataframe against pandas on the same data, over several partition counts."""

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

import oxidask.dataframe as dd


def same(got, want, **kw):
    if isinstance(want, pd.DataFrame):
        pdt.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True), **kw)
    else:
        pdt.assert_series_equal(got.reset_index(drop=True), want.reset_index(drop=True), **kw)


def test_structure(pdf, npartitions):
    df = dd.from_pandas(pdf, npartitions=npartitions)
    assert list(df.columns) == list(pdf.columns)
    assert df.npartitions == npartitions
    assert df.divisions == (None,) * (npartitions + 1)
    assert list(df.dtypes.index) == list(pdf.dtypes.index)
    assert df.x.dtype == pdf.x.dtype and df.y.dtype == pdf.y.dtype
    assert len(df) == len(pdf)
    r = repr(df)
    assert r.startswith("Dask DataFrame Structure:") and f"npartitions={npartitions}" in r
    same(df.compute(), pdf, check_dtype=False)
    same(df.head(7), pdf.head(7), check_dtype=False)


def test_columns_filters_arithmetic(pdf, npartitions, scheduler):
    df = dd.from_pandas(pdf, npartitions=npartitions)
    same(df[["x", "k"]].compute(scheduler=scheduler), pdf[["x", "k"]], check_dtype=False)
    same(df.x.compute(scheduler=scheduler), pdf.x)
    same(df["y"].compute(scheduler=scheduler), pdf["y"])
    same(df[df.x > 10].compute(scheduler=scheduler), pdf[pdf.x > 10], check_dtype=False)
    sel = (df.x > 0) & ~(df.k == "apple") | (df.g == 3)
    psel = (pdf.x > 0) & ~(pdf.k == "apple") | (pdf.g == 3)
    same(df[sel].compute(scheduler=scheduler), pdf[psel], check_dtype=False)
    same((df.x * 2 + df.g - 1).compute(scheduler=scheduler), pdf.x * 2 + pdf.g - 1,
         check_names=False)
    same((df.x / 4).compute(scheduler=scheduler), pdf.x / 4, check_names=False)
    same((10 - df.x).compute(scheduler=scheduler), 10 - pdf.x, check_names=False)
    same((df.x % 7).compute(scheduler=scheduler), pdf.x % 7, check_names=False)
    same((df.x // 7).compute(scheduler=scheduler), pdf.x // 7, check_names=False)
    same((-df.x).abs().compute(scheduler=scheduler), (-pdf.x).abs(), check_names=False)


def test_assign_rename_astype(pdf, npartitions):
    df = dd.from_pandas(pdf, npartitions=npartitions)
    got = df.assign(z=df.x * df.g, c=1).compute()
    want = pdf.assign(z=pdf.x * pdf.g, c=1)
    same(got, want, check_dtype=False)
    df2 = dd.from_pandas(pdf, npartitions=npartitions)
    df2["w"] = df2.x + 1
    same(df2.w.compute(), pdf.x + 1, check_names=False)
    same(df.rename(columns={"x": "xx"}).compute(), pdf.rename(columns={"x": "xx"}),
         check_dtype=False)
    same(df.astype({"x": "float64"}).x.compute(), pdf.x.astype("float64"))
    same(df.g.astype("int32").compute(), pdf.g.astype("int32"))
    assert df.drop(columns=["t"]).columns.tolist() == ["k", "g", "x", "y"]


def test_missing_values(pdf, npartitions):
    df = dd.from_pandas(pdf, npartitions=npartitions)
    same(df.y.fillna(0).compute(), pdf.y.fillna(0))
    same(df.fillna({"y": -1.0}).compute(), pdf.fillna({"y": -1.0}), check_dtype=False)
    same(df.dropna().compute(), pdf.dropna(), check_dtype=False)
    same(df.y.isnull().compute(), pdf.y.isnull())
    same(df.y.notnull().compute(), pdf.y.notnull())
    assert df.y.count().compute() == pdf.y.count()


def test_isin_between_dt_str(pdf, npartitions):
    df = dd.from_pandas(pdf, npartitions=npartitions)
    same(df.k.isin(["apple", "date"]).compute(), pdf.k.isin(["apple", "date"]))
    same(df.x.isin([1, 2, 3]).compute(), pdf.x.isin([1, 2, 3]))
    same(df.x.between(-5, 5).compute(), pdf.x.between(-5, 5))
    same(df[df.x.between(-5, 5)].compute(), pdf[pdf.x.between(-5, 5)], check_dtype=False)
    for f in ("year", "month", "day", "hour", "minute", "day_of_week"):
        same(getattr(df.t.dt, f).compute(), getattr(pdf.t.dt, f), check_dtype=False)
    same(df.k.str.lower().compute(), pdf.k.str.lower(), check_dtype=False)
    same(df.k.str.upper().compute(), pdf.k.str.upper(), check_dtype=False)
    same(df.k.str.contains("an").compute(), pdf.k.str.contains("an"), check_dtype=False)
    same(df.k.str.startswith("ch").compute(), pdf.k.str.startswith("ch"), check_dtype=False)
    same(df.k.str.len().compute(), pdf.k.str.len(), check_dtype=False)


def test_reductions(pdf, npartitions, scheduler):
    df = dd.from_pandas(pdf, npartitions=npartitions)
    assert df.x.sum().compute(scheduler=scheduler) == pdf.x.sum()
    assert df.x.mean().compute(scheduler=scheduler) == pytest.approx(pdf.x.mean())
    assert df.y.mean().compute(scheduler=scheduler) == pytest.approx(pdf.y.mean())
    assert df.y.std().compute(scheduler=scheduler) == pytest.approx(pdf.y.std())
    assert df.x.min().compute() == pdf.x.min() and df.x.max().compute() == pdf.x.max()
    assert df.k.nunique().compute() == pdf.k.nunique()
    num = pdf[["g", "x", "y"]]
    ddn = df[["g", "x", "y"]]
    pdt.assert_series_equal(ddn.sum().compute(), num.sum(), check_dtype=False)
    pdt.assert_series_equal(ddn.mean().compute(), num.mean())
    pdt.assert_series_equal(ddn.max().compute(), num.max(), check_dtype=False)
    pdt.assert_series_equal(df.count().compute(), pdf.count())
    vc = df.k.value_counts().compute()
    pvc = pdf.k.value_counts()
    pdt.assert_series_equal(vc.sort_index(), pvc.sort_index())
    assert vc.tolist() == pvc.tolist()


@pytest.mark.parametrize(
    "spec",
    [
        "sum",
        ["sum", "mean"],
        {"x": "sum", "y": "mean"},
        {"x": ["min", "max"], "y": "count"},
    ],
)
def test_groupby_agg(pdf, npartitions, spec):
    df = dd.from_pandas(pdf, npartitions=npartitions)
    cols = ["x", "y"]
    got = df[["k"] + cols].groupby("k").agg(spec).compute().sort_index()
    want = pdf[["k"] + cols].groupby("k").agg(spec).sort_index()
    pdt.assert_frame_equal(got, want, check_dtype=False)


def test_groupby_forms(pdf, npartitions):
    df = dd.from_pandas(pdf, npartitions=npartitions)
    pdt.assert_series_equal(df.groupby("k").x.mean().compute().sort_index(),
                            pdf.groupby("k").x.mean())
    pdt.assert_series_equal(df.groupby("k")["y"].std().compute().sort_index(),
                            pdf.groupby("k")["y"].std())
    pdt.assert_series_equal(df.groupby(["k", "g"]).x.sum().compute().sort_index(),
                            pdf.groupby(["k", "g"]).x.sum())
    got = df.groupby("g").agg(total=("x", "sum"), n=("y", "count")).compute().sort_index()
    want = pdf.groupby("g").agg(total=("x", "sum"), n=("y", "count"))
    pdt.assert_frame_equal(got, want, check_dtype=False)
    pdt.assert_series_equal(df.groupby("k").x.nunique().compute().sort_index(),
                            pdf.groupby("k").x.nunique(), check_dtype=False)


def test_merge_sort_set_index(pdf, npartitions):
    df = dd.from_pandas(pdf, npartitions=npartitions)
    right = pd.DataFrame({"k": ["apple", "Banana", "cherry"], "price": [1.5, 0.25, 3.0]})
    dr = dd.from_pandas(right, npartitions=2)
    for how in ("inner", "left"):
        got = df.merge(dr, on="k", how=how).compute()
        want = pdf.merge(right, on="k", how=how)
        cols = list(want.columns)
        got = got[cols].sort_values(["t", "k"]).reset_index(drop=True)
        want = want.sort_values(["t", "k"]).reset_index(drop=True)
        pdt.assert_frame_equal(got, want, check_dtype=False)
    s = df.sort_values("x").compute()
    assert s.x.tolist() == sorted(pdf.x.tolist())
    si = df.set_index("x")
    assert si.npartitions >= 1
    got = si.compute()
    assert got.index.name == "x" and got.index.is_monotonic_increasing
    assert sorted(got.index.tolist()) == sorted(pdf.x.tolist())
    assert len(si.divisions) == si.npartitions + 1


def test_repartition_drop_duplicates(pdf, npartitions):
    df = dd.from_pandas(pdf, npartitions=npartitions)
    r = df.repartition(npartitions=4)
    assert r.npartitions == 4
    same(r.compute(), pdf, check_dtype=False)
    got = df[["k", "g"]].drop_duplicates().compute().sort_values(["k", "g"])
    want = pdf[["k", "g"]].drop_duplicates().sort_values(["k", "g"])
    same(got, want, check_dtype=False)


def test_map_partitions_apply(pdf, npartitions, scheduler):
    df = dd.from_pandas(pdf, npartitions=npartitions)
    out = df.map_partitions(lambda p: p.assign(z=p.x * 2 + p.g))
    same(out.compute(scheduler=scheduler), pdf.assign(z=pdf.x * 2 + pdf.g), check_dtype=False)
    s = df.map_partitions(lambda p: p.x + p.g, meta=("s", "int64"))
    same(s.compute(scheduler=scheduler), pdf.x + pdf.g, check_names=False)
    rows = df.apply(lambda r: r["x"] * 10 + r["g"], axis=1, meta=(None, "int64"))
    same(rows.compute(scheduler=scheduler), pdf.apply(lambda r: r["x"] * 10 + r["g"], axis=1),
         check_names=False)


def test_from_dict_and_delayed(pdf):
    import oxidask

    df = dd.from_dict({"a": [1, 2, 3, 4], "b": ["w", "x", "y", "z"]}, npartitions=2)
    same(df.compute(), pd.DataFrame({"a": [1, 2, 3, 4], "b": ["w", "x", "y", "z"]}),
         check_dtype=False)
    parts = [oxidask.delayed(lambda i: pdf.iloc[i * 50:(i + 1) * 50])(i) for i in range(4)]
    fd = dd.from_delayed(parts, meta=pdf.iloc[:0])
    assert fd.npartitions == 4
    same(fd.compute(), pdf, check_dtype=False)
    assert fd.x.sum().compute() == pdf.x.sum()


def test_persist(pdf, npartitions, scheduler):
    df = dd.from_pandas(pdf, npartitions=npartitions)
    p = df[df.x > 0].persist(scheduler=scheduler)
    assert p.npartitions == npartitions
    same(p.compute(), pdf[pdf.x > 0], check_dtype=False)
    assert p.x.sum().compute() == pdf[pdf.x > 0].x.sum()
