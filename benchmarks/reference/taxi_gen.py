"""Synthetic 2019 NYC yellow-taxi trips: the 18 columns of the real files, with realistic
distributions and nulls, 12 monthly Parquet files (84.4 million rows at scale 1), the first two
months also as CSV, and the 265-row taxi-zone table. Fixed seed: the same bytes every time.

  python taxi_gen.py OUT_DIR [--scale 1.0]

Distributions follow published 2019 figures: ~7M trips a month, two vendors (plus a rare 4),
1 passenger in ~70% of trips, lognormal distances (median ~1.6 mi), fares from the metered
rate, card tips around 18%, congestion surcharge from 2019-02. About 0.4% of rows have nulls
in passenger_count, RatecodeID, store_and_fwd_flag, payment_type and congestion_surcharge,
as the real data's unregistered trips.
"""
import argparse
import os

import numpy as np
import polars as pl

MONTH_ROWS = [7_667_792, 7_019_375, 7_832_545, 7_433_139, 7_565_261, 6_941_024,
              6_310_419, 6_073_357, 6_567_788, 7_213_891, 6_878_111, 6_896_317]
BOROUGHS = ["Manhattan", "Brooklyn", "Queens", "Bronx", "Staten Island", "EWR", "Unknown"]


def zones():
    rng = np.random.default_rng(265)
    # Roughly the real split: 69 Manhattan, 61 Brooklyn, 69 Queens, 43 Bronx, 20 Staten
    # Island, 1 EWR, 2 Unknown.
    counts = [69, 61, 69, 43, 20, 1, 2]
    borough = [b for b, c in zip(BOROUGHS, counts) for _ in range(c)]
    order = rng.permutation(265)
    borough = [borough[i] for i in order]
    return pl.DataFrame({
        "LocationID": np.arange(1, 266, dtype=np.int64),
        "Borough": borough,
        "Zone": [f"Zone {i}" for i in range(1, 266)],
        "service_zone": ["Yellow Zone" if b == "Manhattan" else "Boro Zone" for b in borough],
    })


def month(m, rows, seed):
    rng = np.random.default_rng(seed)
    start = np.datetime64(f"2019-{m:02d}-01T00:00:00", "us").astype(np.int64)
    end_m = np.datetime64(f"2019-{m + 1:02d}-01" if m < 12 else "2020-01-01", "us").astype(np.int64)
    pickup = np.sort(rng.integers(start, end_m, rows))
    distance = np.round(rng.lognormal(0.5, 0.9, rows), 2)
    distance[rng.random(rows) < 0.01] = 0.0
    minutes = distance * rng.uniform(2.5, 5.0, rows) + rng.exponential(3.0, rows)
    dropoff = pickup + (minutes * 60e6).astype(np.int64)
    vendor = rng.choice(np.array([1, 2, 4], dtype=np.int64), rows, p=[0.36, 0.639, 0.001])
    passengers = rng.choice(np.arange(0, 7, dtype=np.float64), rows,
                            p=[0.02, 0.70, 0.14, 0.04, 0.02, 0.05, 0.03])
    ratecode = rng.choice(np.array([1, 2, 3, 4, 5, 99], dtype=np.float64), rows,
                          p=[0.970, 0.020, 0.002, 0.002, 0.005, 0.001])
    flag = rng.choice(np.array(["N", "Y"]), rows, p=[0.99, 0.01])
    # Pick-ups concentrate in a few zones (Manhattan, airports): a Zipf-like skew.
    weights = 1.0 / np.arange(1, 266) ** 1.1
    weights /= weights.sum()
    zone_order = np.random.default_rng(7).permutation(265) + 1
    pu = zone_order[rng.choice(265, rows, p=weights)].astype(np.int64)
    do = zone_order[rng.choice(265, rows, p=weights)].astype(np.int64)
    payment = rng.choice(np.array([1, 2, 3, 4], dtype=np.int64), rows, p=[0.72, 0.27, 0.007, 0.003])
    fare = np.round(2.5 + 2.5 * distance + 0.5 * minutes * rng.uniform(0.0, 0.4, rows), 2)
    extra = rng.choice(np.array([0.0, 0.5, 1.0, 2.5]), rows, p=[0.45, 0.30, 0.20, 0.05])
    mta = np.full(rows, 0.5)
    tip = np.where(payment == 1, np.round(fare * rng.normal(0.18, 0.05, rows).clip(0, 1), 2), 0.0)
    tolls = np.where(rng.random(rows) < 0.05, 6.12, 0.0)
    improvement = np.full(rows, 0.3)
    congestion = np.where(m >= 2, rng.choice(np.array([0.0, 2.5]), rows, p=[0.1, 0.9]), 0.0)
    total = np.round(fare + extra + mta + tip + tolls + improvement + congestion, 2)
    df = pl.DataFrame({
        "VendorID": vendor,
        "tpep_pickup_datetime": pl.Series(pickup).cast(pl.Datetime("us")),
        "tpep_dropoff_datetime": pl.Series(dropoff).cast(pl.Datetime("us")),
        "passenger_count": passengers,
        "trip_distance": distance,
        "RatecodeID": ratecode,
        "store_and_fwd_flag": flag,
        "PULocationID": pu,
        "DOLocationID": do,
        "payment_type": payment,
        "fare_amount": fare,
        "extra": extra,
        "mta_tax": mta,
        "tip_amount": tip,
        "tolls_amount": tolls,
        "improvement_surcharge": improvement,
        "total_amount": total,
        "congestion_surcharge": congestion,
    })
    # Unregistered trips: nulls in the five columns the real files leave empty.
    missing = pl.Series(rng.random(rows) < 0.004)
    return df.with_columns([
        pl.when(missing).then(None).otherwise(pl.col(c)).alias(c)
        for c in ["passenger_count", "RatecodeID", "store_and_fwd_flag", "payment_type",
                  "congestion_surcharge"]
    ])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--scale", type=float, default=1.0)
    # As other generators write the files: rows in random time order (a fixed seed), and
    # other row-group sizes (0: the Parquet writer's default).
    p.add_argument("--random-order", action="store_true")
    p.add_argument("--row-group-size", type=int, default=1_000_000)
    a = p.parse_args()
    os.makedirs(os.path.join(a.out, "parquet"), exist_ok=True)
    os.makedirs(os.path.join(a.out, "csv"), exist_ok=True)
    zones().write_parquet(os.path.join(a.out, "zones.parquet"))
    for m, rows in enumerate(MONTH_ROWS, start=1):
        n = max(1, int(rows * a.scale))
        df = month(m, n, seed=2019_00 + m)
        if a.random_order:
            df = df.sample(fraction=1.0, shuffle=True, seed=2019_00 + m)
        name = f"yellow_tripdata_2019-{m:02d}"
        df.write_parquet(os.path.join(a.out, "parquet", name + ".parquet"),
                         row_group_size=a.row_group_size or None)
        if m <= 2:
            df.write_csv(os.path.join(a.out, "csv", name + ".csv"))
        print(f"{name}: {n} rows", flush=True)
    open(os.path.join(a.out, "DONE"), "w").write(str(a.scale))


if __name__ == "__main__":
    main()
