"""read_parquet / read_csv over local globs, to_parquet / to_csv round trips."""

import pandas as pd
import pandas.testing as pdt

import oxidask.dataframe as dd


def _write(pdf, tmp_path, n, kind):
    step = len(pdf) // n
    for i in range(n):
        part = pdf.iloc[i * step:(i + 1) * step if i < n - 1 else len(pdf)]
        if kind == "parquet":
            part.to_parquet(tmp_path / f"part-{i:02d}.parquet", index=False)
        else:
            part.to_csv(tmp_path / f"part-{i:02d}.csv", index=False)


def test_read_parquet_glob(pdf, tmp_path, npartitions):
    _write(pdf, tmp_path, npartitions, "parquet")
    df = dd.read_parquet(str(tmp_path / "*.parquet"))
    assert df.npartitions == npartitions
    got = df.compute()
    pdt.assert_frame_equal(got, pdf, check_dtype=False)
    sub = dd.read_parquet(str(tmp_path / "*.parquet"), columns=["k", "x"])
    assert list(sub.columns) == ["k", "x"]
    vc = df.k.value_counts().compute()
    pdt.assert_series_equal(vc.sort_index(), pdf.k.value_counts().sort_index())


def test_read_csv_glob(pdf, tmp_path, npartitions):
    p = pdf.drop(columns=["t"])
    _write(p, tmp_path, npartitions, "csv")
    df = dd.read_csv(str(tmp_path / "*.csv"))
    got = df.compute()
    pdt.assert_frame_equal(got, p, check_dtype=False)
    assert df[df.x > 0].g.sum().compute() == p[p.x > 0].g.sum()
    typed = dd.read_csv(str(tmp_path / "*.csv"), dtype={"g": "float64"})
    assert typed.g.dtype == "float64"


def test_write_round_trip(pdf, tmp_path):
    df = dd.from_pandas(pdf, npartitions=3)
    df[df.x > 0].to_parquet(str(tmp_path / "pq"))
    back = dd.read_parquet(str(tmp_path / "pq"))
    want = pdf[pdf.x > 0].reset_index(drop=True)
    got = back.compute().sort_values("t").reset_index(drop=True)
    pdt.assert_frame_equal(got, want, check_dtype=False)
    p = pdf.drop(columns=["t"])
    dd.from_pandas(p, npartitions=2).to_csv(str(tmp_path / "csv"))
    back = dd.read_csv(str(tmp_path / "csv") + "/*.csv").compute()
    pdt.assert_frame_equal(back.sort_values(["x", "y", "k", "g"]).reset_index(drop=True),
                           p.sort_values(["x", "y", "k", "g"]).reset_index(drop=True),
                           check_dtype=False)
