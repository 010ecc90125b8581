"""oxidask.dataframe, the way the NYC-taxi walk-through uses dask.dataframe: only the import
differs.

Writes twelve monthly Parquet files of made-up taxi trips into a temporary directory, reads
them back with ``dd.read_parquet``, counts trips per passenger count (the walk-through's
``value_counts``), then a little more analysis (a filter, a derived column, a groupby with
named aggregations, the hour of day) — each checked against pandas on the same data — on the
threaded scheduler and on a LocalCluster of two worker processes.

    python examples/python/dataframe_taxi.py
"""

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

import oxidask.dataframe as dd
from oxidask.distributed import Client, LocalCluster


def make_trips(directory):
    rng = np.random.default_rng(2019)
    months = []
    for month in range(1, 13):
        n = 2000
        pickup = pd.Timestamp(2019, month, 1) + pd.to_timedelta(
            rng.integers(0, 27 * 24 * 3600, size=n), unit="s")
        trips = pd.DataFrame(
            {
                "tpep_pickup_datetime": pickup,
                "passenger_count": rng.choice([0, 1, 1, 1, 2, 2, 3, 4, 5, 6], size=n),
                "trip_distance": rng.gamma(2.0, 1.5, size=n).round(2),
                "payment_type": rng.choice(["card", "cash", "other"], size=n, p=[.7, .28, .02]),
                "total_amount": rng.gamma(3.0, 6.0, size=n).round(2),
            }
        )
        trips.to_parquet(Path(directory) / f"2019-{month:02d}.parquet", index=False)
        months.append(trips)
    return pd.concat(months, ignore_index=True)


def analysis(directory, pdf, where):
    df = dd.read_parquet(directory)
    counts = df.passenger_count.value_counts().compute()
    assert counts.sort_index().equals(pdf.passenger_count.value_counts().sort_index())
    if where == "threaded scheduler":
        print(df)
        print(counts)

    long = df[df.trip_distance > 5]
    long = long.assign(per_mile=long.total_amount / long.trip_distance)
    by_payment = long.groupby("payment_type").agg(
        trips=("per_mile", "count"), mean_per_mile=("per_mile", "mean")).compute()
    pl = pdf[pdf.trip_distance > 5]
    pl = pl.assign(per_mile=pl.total_amount / pl.trip_distance)
    want = pl.groupby("payment_type").agg(
        trips=("per_mile", "count"), mean_per_mile=("per_mile", "mean"))
    pd.testing.assert_frame_equal(by_payment.sort_index(), want, check_dtype=False)

    hours = df.tpep_pickup_datetime.dt.hour.value_counts().compute()
    assert hours.sort_index().tolist() == pdf.tpep_pickup_datetime.dt.hour.value_counts().sort_index().tolist()
    print(f"{where}: value_counts, filter/assign/groupby and dt.hour match pandas")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        pdf = make_trips(tmp)
        analysis(tmp, pdf, "threaded scheduler")
        with LocalCluster(n_workers=2, threads_per_worker=1) as cluster, Client(cluster):
            analysis(tmp, pdf, "LocalCluster (2 worker processes)")


if __name__ == "__main__":
    main()
