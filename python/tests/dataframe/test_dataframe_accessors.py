"""``.str`` and ``.dt`` against pandas' accessors on the same data, across partition counts;
``from_polars`` / ``compute(engine="polars")`` / ``to_polars`` against Polars."""

import numpy as np
import pandas as pd
import pandas.testing as pdt
import polars as pl
import polars.testing as plt_
import pytest

import oxidask.dataframe as dd


@pytest.fixture(scope="module")
def sdf():
    rng = np.random.default_rng(11)
    n = 60
    words = np.array(["alpha beta", "  Gamma ", "delta-epsilon zeta", "a.b.c", "x", "",
                      "Hello World", "tab\tsep"], dtype=object)
    s = words[rng.integers(0, len(words), size=n)]
    s[::9] = None
    return pd.DataFrame({
        "s": pd.Series(s, dtype="str"),
        "t": pd.Series(pd.date_range("2023-12-30 22:47:13", periods=n, freq="7h31min")),
        "x": np.arange(n),
    })


def _cmp(got, want):
    got = got.compute()
    assert got.name == want.name
    pdt.assert_series_equal(got, want, check_names=True)


def test_engine_string_methods(sdf, npartitions):
    df = dd.from_pandas(sdf, npartitions=npartitions)
    s, p = df.s, sdf.s
    for name in ("lower", "upper", "strip", "lstrip", "rstrip"):
        _cmp(getattr(s.str, name)(), getattr(p.str, name)())
    pdt.assert_series_equal(s.str.len().compute(), p.str.len(), check_dtype=False)
    _cmp(s.str.endswith("a"), p.str.endswith("a"))
    _cmp(s.str.startswith("a"), p.str.startswith("a"))
    _cmp(s.str.contains("a.b", regex=False), p.str.contains("a.b", regex=False))
    _cmp(s.str.contains("^[a-z]+ "), p.str.contains("^[a-z]+ "))
    _cmp(s.str.contains("GAMMA", case=False), p.str.contains("GAMMA", case=False))
    _cmp(s.str.contains("A.B", case=False, regex=False),
         p.str.contains("A.B", case=False, regex=False))
    # Literal replace: "." is not a pattern.
    _cmp(s.str.replace(".", "!"), p.str.replace(".", "!"))
    _cmp(s[s.str.len() > 3].str.upper(), p[p.str.len() > 3].str.upper().reset_index(drop=True))


def test_pandas_string_methods(sdf, npartitions):
    df = dd.from_pandas(sdf, npartitions=npartitions)
    s, p = df.s, sdf.s
    _cmp(s.str.split(), p.str.split())
    _cmp(s.str.split(" "), p.str.split(" "))
    _cmp(s.str.split(n=1), p.str.split(n=1))
    _cmp(s.str.rsplit(".", n=1), p.str.rsplit(".", n=1))
    got = s.str.split(" ", n=2, expand=True).compute()
    want = p.str.split(" ", n=2, expand=True).reindex(columns=range(3))
    want.columns = ["0", "1", "2"]
    pdt.assert_frame_equal(got, want)
    with pytest.raises(NotImplementedError, match="n="):
        s.str.split(expand=True)
    _cmp(s.str.slice(1, 4), p.str.slice(1, 4))
    _cmp(s.str.slice(step=2), p.str.slice(step=2))
    _cmp(s.str[:3], p.str[:3])
    _cmp(s.str.get(0), p.str.get(0))
    # pandas gives object here; strings come back from Arrow as pandas' str dtype.
    pdt.assert_series_equal(s.str.split().str.get(-1).compute(),
                            p.str.split().str.get(-1).astype("str"))
    _cmp(s.str.replace(r"[aeiou]", "_", regex=True), p.str.replace(r"[aeiou]", "_", regex=True))
    _cmp(s.str.replace("a", "A", n=1), p.str.replace("a", "A", n=1))
    _cmp(s.str.strip(" a"), p.str.strip(" a"))
    _cmp(s.str.title(), p.str.title())
    _cmp(s.str.zfill(8), p.str.zfill(8))
    _cmp(s.str.count("a"), p.str.count("a"))
    _cmp(s.str.startswith(("a", "x")), p.str.startswith(("a", "x")))
    _cmp(s.str.extract(r"(\w+)", expand=False), p.str.extract(r"(\w+)", expand=False))
    _cmp(s.str.cat(s.str.upper(), sep="-"), p.str.cat(p.str.upper(), sep="-"))
    with pytest.raises(AttributeError, match="no attribute 'frobnicate'"):
        s.str.frobnicate()
    with pytest.raises(AttributeError, match="string values"):
        df.x.str


def test_datetime_fields_and_methods(sdf, npartitions):
    df = dd.from_pandas(sdf, npartitions=npartitions)
    t, p = df.t, sdf.t
    same = {"dayofweek": "day_of_week", "weekday": "day_of_week", "dayofyear": "day_of_year"}
    for f in ("year", "month", "day", "hour", "minute", "second", "dayofweek", "weekday",
              "day_of_week", "dayofyear", "day_of_year", "quarter"):
        _cmp(getattr(t.dt, f), getattr(p.dt, same.get(f, f)))
    for f in ("date", "time", "days_in_month", "is_month_start", "is_leap_year"):
        _cmp(getattr(t.dt, f), getattr(p.dt, f))
    _cmp(t.dt.strftime("%Y-%m-%d %H"), p.dt.strftime("%Y-%m-%d %H"))
    for freq in ("h", "15min", "D"):
        _cmp(t.dt.floor(freq), p.dt.floor(freq))
        _cmp(t.dt.ceil(freq), p.dt.ceil(freq))
        _cmp(t.dt.round(freq), p.dt.round(freq))
    _cmp(t.dt.normalize(), p.dt.normalize())
    _cmp(t.dt.day_name(), p.dt.day_name())
    got = df[df.t.dt.hour.between(8, 17)].x.sum().compute()
    assert got == p[sdf.t.dt.hour.between(8, 17)].index.to_series().sum()
    with pytest.raises(AttributeError, match="datetimelike"):
        df.x.dt


def test_from_polars_and_polars_results(npartitions):
    rng = np.random.default_rng(5)
    n = 50
    pol = pl.DataFrame({
        "k": rng.choice(["a", "b", "c"], n).tolist(),
        "x": rng.integers(0, 100, n),
        "y": [None if i % 6 == 0 else float(i) / 3 for i in range(n)],
    })
    df = dd.from_polars(pol, npartitions=npartitions)
    assert df.npartitions == npartitions
    plt_.assert_frame_equal(df.compute(engine="polars"), pol)
    plt_.assert_frame_equal(df.to_polars(), pol)
    pdt.assert_frame_equal(df.compute(), pol.to_pandas())
    by = dd.from_polars(pol, chunksize=12)
    assert by.npartitions == 5
    got = by.groupby("k").agg({"x": "sum", "y": "mean"}).compute(engine="polars").sort("k")
    want = pol.group_by("k").agg(pl.col("x").sum(), pl.col("y").mean()).sort("k")
    plt_.assert_frame_equal(got, want, check_dtypes=False)
    s = df[df.x > 50].x.compute(engine="polars")
    assert isinstance(s, pl.Series)
    assert s.to_list() == pol.filter(pl.col("x") > 50)["x"].to_list()
    ser = dd.from_polars(pol["x"], npartitions=npartitions)
    assert ser.sum().compute() == pol["x"].sum()
    with pytest.raises(ValueError, match="engine"):
        df.compute(engine="arrow")
    with pytest.raises(TypeError, match="Polars DataFrame"):
        dd.from_polars(pol.to_pandas())
