"""Seed 000 (the NYC-taxi walk-through: read_parquet of twelve monthly Parquet files and a
``value_counts``) and the dataframe examples of seed 002, "Scaling Python with Dask" chapter 4
(/work/shared/seeds/002_a4585d93fb05fa64.txt L1706-2816), run with only the import changed
(``import dask.dataframe as dd`` -> ``import oxidask.dataframe as dd``,
``import dask`` -> ``import oxidask as dask``) on small generated data.

Tests and the document lines they come from:
- test_taxi_walkthrough_value_counts       000 (read_parquet of a directory, value_counts)
- test_example_4_1_many_chunks             L1791-1795  read_csv(url, blocksize="1kb")
- test_example_4_3_dtype                   L1809-1813  read_csv(..., dtype={...})
- test_example_4_7_indexing                L1996-2001  boolean filter then a column list
- test_example_4_9_max_and_mean            L2094-2100  dask.compute(grouped[[c]].max(), .mean())
- test_example_4_15_fillna                 L2364-2372  map_partitions(fillna), clear_divisions
- test_example_4_17_describe               L2700-2709  describe(percentiles=[.25, .5, .75])

Changes beyond the imports:
- Files are generated in a temporary directory instead of downloaded (the tests may not use
  the network); ``url`` is a local path.
- Example 4-1 evaluates ``many_chunks.index``: oxidask.dataframe has no index for frames read
  from CSV (their rows are numbered per partition), so the test checks the partitioning.
- Example 4-9 groups with ``groupby(lambda x: 0)`` (a function of the index); oxidask groups by
  columns only, so the test groups by a constant column (one group, the same numbers).

Skipped on purpose: Example 4-4 (SQL), 4-5/4-6 (fsspec, MinIO), 4-8 and 4-13 (rolling windows
over a datetime index: map_overlap and datetime divisions are not supported), 4-10/4-12
(dd.Aggregation), 4-14 (repartition by size), 4-16 (split_row_groups), 4-18 (plotting).
"""

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

import oxidask as dask
import oxidask.dataframe as dd


@pytest.fixture(scope="module")
def taxi_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("nyc_taxi")
    rng = np.random.default_rng(7)
    frames = []
    for month in range(1, 13):
        n = 50 + month * 3
        start = pd.Timestamp(2019, month, 1)
        pickup = start + pd.to_timedelta(rng.integers(0, 27 * 24 * 3600, size=n), unit="s")
        f = pd.DataFrame(
            {
                "VendorID": rng.integers(1, 3, size=n),
                "tpep_pickup_datetime": pickup,
                "tpep_dropoff_datetime": pickup + pd.to_timedelta(
                    rng.integers(60, 3600, size=n), unit="s"),
                "passenger_count": rng.integers(0, 7, size=n),
                "trip_distance": rng.gamma(2.0, 1.5, size=n).round(2),
                "total_amount": rng.gamma(3.0, 6.0, size=n).round(2),
            }
        )
        f.to_parquet(d / f"2019-{month:02d}.parquet", index=False)
        frames.append(f)
    return d, pd.concat(frames, ignore_index=True)


def test_taxi_walkthrough_value_counts(taxi_dir):
    d, whole = taxi_dir
    df = dd.read_parquet(str(d))
    assert df.npartitions == 12
    counts = df.passenger_count.value_counts().compute()
    pdt.assert_series_equal(counts.sort_index(), whole.passenger_count.value_counts().sort_index())


def test_example_4_1_many_chunks(tmp_path):
    url = str(tmp_path / "data.csv")
    pd.DataFrame({"a": np.arange(500), "b": np.arange(500) * 0.5}).to_csv(url, index=False)
    many_chunks = dd.read_csv(url, blocksize="1kb")
    assert many_chunks.npartitions > 3
    assert many_chunks.a.sum().compute() == sum(range(500))


def test_example_4_3_dtype(tmp_path):
    url = str(tmp_path / "paygap.csv")
    pd.DataFrame(
        {"CompanyNumber": ["01234", "SC999", "00042"], "DiffMeanHourlyPercent": [1, 2.5, -3]}
    ).to_csv(url, index=False)
    df = dd.read_csv(
        url,
        dtype={'CompanyNumber': 'str', 'DiffMeanHourlyPercent': 'float64'})
    out = df.compute()
    assert out.CompanyNumber.tolist() == ["01234", "SC999", "00042"]
    assert df.DiffMeanHourlyPercent.dtype == "float64"


@pytest.fixture
def sf_covid_df():
    rng = np.random.default_rng(3)
    n = 120
    pdf = pd.DataFrame(
        {
            "specimen_collection_date": pd.date_range("2021-01-01", periods=n, freq="D").repeat(1),
            "vaccination_status": rng.choice(["All", "Vaccinated", "Unvaccinated"], size=n),
            "new_cases": rng.integers(0, 500, size=n),
            "one": 0,
        }
    )
    return pdf, dd.from_pandas(pdf, npartitions=4)


def test_example_4_7_indexing(sf_covid_df):
    pdf, sf_covid_df = sf_covid_df
    mini_sf_covid_df = (sf_covid_df
                        [sf_covid_df['vaccination_status'] == 'All']
                        [['specimen_collection_date', 'new_cases']])
    want = pdf[pdf["vaccination_status"] == "All"][["specimen_collection_date", "new_cases"]]
    pdt.assert_frame_equal(mini_sf_covid_df.compute(), want.reset_index(drop=True),
                           check_dtype=False)


def test_example_4_9_max_and_mean(sf_covid_df):
    pdf, sf_covid_df = sf_covid_df
    raw_grouped = sf_covid_df.groupby("one")
    mx, mean = dask.compute(
        raw_grouped[["new_cases"]].max(),
        raw_grouped[["new_cases"]].mean())
    assert mx.new_cases.tolist() == [pdf.new_cases.max()]
    assert mean.new_cases.tolist() == pytest.approx([pdf.new_cases.mean()])


def test_example_4_15_fillna():
    pdf = pd.DataFrame({"PostCode": ["AB1", None, "CD2", None], "Employees": [1.0, None, 3.0, 4.0]})
    df = dd.from_pandas(pdf, npartitions=2)

    def fillna(df):
        return df.fillna(value={"PostCode": "UNKNOWN"}).fillna(value=0)

    new_df = df.map_partitions(fillna)
    # Since there could be an NA in the index clear the partition / division
    # information
    new_df.clear_divisions()
    pdt.assert_frame_equal(new_df.compute(), fillna(pdf), check_dtype=False)


def test_example_4_17_describe(taxi_dir):
    d, whole = taxi_dir
    df = dd.read_parquet(str(d))[["trip_distance", "total_amount"]]
    pd.set_option('display.float_format', lambda x: '%.5f' % x)
    try:
        out = df.describe(percentiles=[.25, .5, .75]).compute()
    finally:
        pd.reset_option('display.float_format')
    want = whole[["trip_distance", "total_amount"]].describe()
    assert list(out.index) == list(want.index)
    for s in ("count", "mean", "std", "min", "max"):
        assert out.loc[s].tolist() == pytest.approx(want.loc[s].tolist())
    # Quantiles are approximate (sampled per partition, as Dask's): ordered, within the range.
    for c in out.columns:
        q = out.loc[["min", "25%", "50%", "75%", "max"], c].tolist()
        assert q == sorted(q)
