"""Bad input raises what pandas/Dask users expect, and the process keeps working."""

import pandas as pd
import pytest

import oxidask.dataframe as dd


@pytest.fixture
def df(pdf):
    return dd.from_pandas(pdf, npartitions=3)


def test_unknown_column_is_key_error(df):
    with pytest.raises(KeyError, match="nope"):
        df["nope"]
    with pytest.raises(KeyError, match="nope"):
        df[["x", "nope"]]
    with pytest.raises(AttributeError):
        df.nope
    with pytest.raises(KeyError, match="nope"):
        df.groupby("nope")
    with pytest.raises(KeyError, match="nope"):
        df.sort_values("nope")
    with pytest.raises(KeyError, match="nope"):
        df.groupby("k").agg({"nope": "sum"})


def test_wrong_dtype_is_type_error(df):
    with pytest.raises(TypeError):
        df.k + 1
    with pytest.raises(TypeError):
        df.x + "a"
    with pytest.raises(TypeError):
        df.k.mean()
    with pytest.raises(AttributeError, match="str accessor"):
        df.x.str.lower()
    with pytest.raises(TypeError):
        df.astype({"x": "complex128"})


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        dd.read_parquet(str(tmp_path / "none-*.parquet"))
    with pytest.raises(FileNotFoundError):
        dd.read_csv(str(tmp_path / "none-*.csv"))


def test_failing_partition_function_raises_and_process_survives(df, pdf):
    def boom(p):
        raise ZeroDivisionError("boom in a partition")

    bad = df.map_partitions(boom, meta=pdf.iloc[:0])
    with pytest.raises(ZeroDivisionError, match="boom"):
        bad.compute()
    # Not a frame: a clear error, not a crash.
    wrong = df.map_partitions(lambda p: 42, meta=pdf.iloc[:0])
    with pytest.raises(Exception, match="pandas"):
        wrong.compute()
    assert df.x.sum().compute() == pdf.x.sum()


def test_series_from_other_frame(df):
    other = df[df.x > 0]
    with pytest.raises(ValueError, match="frame they come from"):
        df.x + other.x
