"""A groupby or value_counts after merging a Parquet fact table with a small lookup table, as
pandas computes it. The engine aggregates the fact rows per join key below the join when the
Parquet statistics promise few keys (eager aggregation), and groups by one numeric key with its
own kernel: the results must not change."""

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

import oxidask.dataframe as dd


@pytest.fixture(scope="module")
def trips_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("trips")
    rng = np.random.default_rng(7)
    for f in range(3):
        n = 4000
        trips = pd.DataFrame(
            {
                "PULocationID": rng.integers(1, 60, n),
                "passenger_count": np.where(rng.random(n) < 0.05, np.nan, rng.integers(0, 6, n).astype(float)),
                "fare": np.round(rng.random(n) * 50, 2),
                "tip": np.where(rng.random(n) < 0.1, np.nan, np.round(rng.random(n) * 5, 2)),
            }
        )
        trips.to_parquet(d / f"trips-{f}.parquet", index=False)
    return d


def zones():
    ids = np.arange(1, 55)  # locations 55..59 have no zone: dropped by inner joins
    return pd.DataFrame(
        {
            "LocationID": ids,
            "Borough": [["Queens", "Bronx", "Manhattan", "Brooklyn", None][i % 5] for i in ids],
        }
    )


def all_trips(d):
    return pd.concat([pd.read_parquet(d / f"trips-{f}.parquet") for f in range(3)], ignore_index=True)


@pytest.mark.parametrize("how", ["inner", "left"])
def test_groupby_after_merge_matches_pandas(trips_dir, how):
    df = dd.read_parquet(str(trips_dir / "trips-*.parquet"))
    got = (
        df.merge(zones(), left_on="PULocationID", right_on="LocationID", how=how)
        .groupby("Borough")
        .agg({"fare": ["sum", "mean", "max"], "tip": ["count", "min"]})
        .compute()
        .sort_index()
    )
    joined = all_trips(trips_dir).merge(zones(), left_on="PULocationID", right_on="LocationID", how=how)
    want = joined.groupby("Borough").agg({"fare": ["sum", "mean", "max"], "tip": ["count", "min"]}).sort_index()
    pdt.assert_frame_equal(got, want, check_dtype=False, rtol=1e-9)


def test_value_counts_after_merge_matches_pandas(trips_dir):
    df = dd.read_parquet(str(trips_dir / "trips-*.parquet"))
    got = df.merge(zones(), left_on="PULocationID", right_on="LocationID").Borough.value_counts().compute()
    joined = all_trips(trips_dir).merge(zones(), left_on="PULocationID", right_on="LocationID")
    pdt.assert_series_equal(got.sort_index(), joined.Borough.value_counts().sort_index(), check_dtype=False)


def test_groupby_drops_missing_keys_as_pandas_regression(trips_dir):
    # The null (NaN) passenger_count was a group of its own; pandas and Dask drop it unless
    # dropna=False. value_counts(dropna=False) keeps it.
    df = dd.read_parquet(str(trips_dir / "trips-*.parquet"))
    pdf = all_trips(trips_dir)
    got = df.groupby("passenger_count").fare.mean().compute().sort_index()
    pdt.assert_series_equal(got, pdf.groupby("passenger_count").fare.mean().sort_index(), check_dtype=False, rtol=1e-9)
    kept = df.groupby("passenger_count", dropna=False).fare.count().compute()
    want = pdf.groupby("passenger_count", dropna=False).fare.count()
    assert len(kept) == len(want) == 7
    assert kept.sum() == want.sum() == len(pdf)
    assert kept[kept.index.isna()].iloc[0] == want[want.index.isna()].iloc[0] > 0
    got = df.passenger_count.value_counts(dropna=False).compute()
    want = pdf.passenger_count.value_counts(dropna=False)
    pdt.assert_series_equal(got.sort_index(), want.sort_index(), check_dtype=False)
