"""The `python-collections` benchmark suite, dataframe cases: the `dataframe` suite's queries
written once as a Dask user writes them (`dd.read_parquet(...)`, no hand-placed column
selection), run with `--impl dask` (`import dask.dataframe as dd`) and `--impl oxidask`
(`import oxidask.dataframe as dd`), both on their threaded scheduler, or with
`--impl pandas` / `--impl polars` as single-machine references (eager pandas, lazy Polars).

Data: the synthetic 2019 taxi year of taxi_gen.py in $OXIDASK_BENCH_DATA/taxi-{n}
(n = scale per mille). The "check" of each case is the one benchmarks/reference/dataframe_ref.py
and `oxidask-bench dataframe CASE` print, so the Rust API's run of the same query is
compared too.

Cases:
  dataframe-value-counts   df.passenger_count.value_counts(dropna=False)
  dataframe-groupby-mean   df.groupby("VendorID").total_amount.mean()
  dataframe-groupby-agg    df.groupby("PULocationID").agg({...: [sum, mean, max], ...})
  dataframe-filter-count   len(df[df.trip_distance > 10])
  dataframe-merge-count    df.merge(zones, ...).Borough.value_counts() (zones: a small pandas table)
  dataframe-set-index      january.set_index("tpep_pickup_datetime").persist(), then len and a sum

Prints one JSON line: {"seconds", "check", "peak_mib"}.
"""

import argparse
import glob
import json
import os
import resource
import sys
import time


def data_dir(n):
    root = os.environ.get("OXIDASK_BENCH_DATA",
                          os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data"))
    return os.path.join(root, f"taxi-{n}")


def counts_check(s):
    values, counts = list(s.index), list(s.values)
    pairs = sorted(zip([-1 if v is None or v != v else int(v) for v in values],
                       [int(c) for c in counts]))
    return [len(pairs), sum(c for _, c in pairs), sum((v + 2) * c for v, c in pairs)]


# One implementation of each query, for dask.dataframe and oxidask.dataframe alike (and pandas,
# whose eager frames have the same methods; `done` is `.compute()` or nothing).
def q_value_counts(dd, pd, d, done):
    df = dd.read_parquet(os.path.join(d, "parquet"))
    return counts_check(done(df.passenger_count.value_counts(dropna=False)))


def q_groupby_mean(dd, pd, d, done):
    df = dd.read_parquet(os.path.join(d, "parquet"))
    r = done(df.groupby("VendorID").total_amount.mean())
    return [int(len(r)), round(float(r.sum()), 6)]


def q_groupby_agg(dd, pd, d, done):
    df = dd.read_parquet(os.path.join(d, "parquet"))
    r = done(df.groupby("PULocationID").agg({"total_amount": ["sum", "mean", "max"],
                                             "trip_distance": ["mean"],
                                             "tip_amount": ["count"]}))
    return [int(len(r)), round(float(r[("total_amount", "sum")].sum()), 2),
            int(r[("tip_amount", "count")].sum())]


def q_filter_count(dd, pd, d, done):
    df = dd.read_parquet(os.path.join(d, "parquet"))
    return int(len(df[df.trip_distance > 10]))


def q_merge_count(dd, pd, d, done):
    zones = pd.read_parquet(os.path.join(d, "zones.parquet"))
    df = dd.read_parquet(os.path.join(d, "parquet"))
    m = df.merge(zones, left_on="PULocationID", right_on="LocationID", how="inner")
    r = done(m.Borough.value_counts())
    return sorted([str(k), int(v)] for k, v in r.items())


def q_set_index(dd, pd, d, done):
    df = dd.read_parquet(os.path.join(d, "parquet", "yellow_tripdata_2019-01.parquet"))
    s = df.set_index("tpep_pickup_datetime")
    s = s.persist() if hasattr(s, "persist") else s
    return [int(len(s)), round(float(done(s.total_amount.sum())), 2)]


CASES = {
    "dataframe-value-counts": q_value_counts,
    "dataframe-groupby-mean": q_groupby_mean,
    "dataframe-groupby-agg": q_groupby_agg,
    "dataframe-filter-count": q_filter_count,
    "dataframe-merge-count": q_merge_count,
    "dataframe-set-index": q_set_index,
}


class _PandasDD:
    """pandas as the eager single-machine reference: read_parquet of a directory reads every file."""

    def __init__(self, pd):
        self.pd = pd

    def read_parquet(self, path):
        files = sorted(glob.glob(os.path.join(path, "*.parquet"))) if os.path.isdir(path) else [path]
        return self.pd.concat([self.pd.read_parquet(f) for f in files], ignore_index=True)


def run_polars(case, d):
    import polars as pl
    pq = os.path.join(d, "parquet", "*.parquet")
    df = pl.scan_parquet(pq)

    def counts(r, key, c):
        return counts_check(_Series(r[key].to_list(), r[c].to_list()))

    if case == "dataframe-value-counts":
        r = df.group_by("passenger_count").len().collect()
        return counts(r, "passenger_count", "len")
    if case == "dataframe-groupby-mean":
        r = df.group_by("VendorID").agg(pl.col("total_amount").mean()).collect()
        return [r.height, round(float(r["total_amount"].sum()), 6)]
    if case == "dataframe-groupby-agg":
        r = (df.group_by("PULocationID")
             .agg(pl.col("total_amount").sum().alias("s"), pl.col("total_amount").mean().alias("m"),
                  pl.col("total_amount").max().alias("x"), pl.col("trip_distance").mean().alias("d"),
                  pl.col("tip_amount").count().alias("c"))
             .collect())
        return [r.height, round(float(r["s"].sum()), 2), int(r["c"].sum())]
    if case == "dataframe-filter-count":
        return int(df.filter(pl.col("trip_distance") > 10).select(pl.len()).collect().item())
    if case == "dataframe-merge-count":
        zones = pl.scan_parquet(os.path.join(d, "zones.parquet"))
        r = (df.join(zones, left_on="PULocationID", right_on="LocationID", how="inner")
             .group_by("Borough").len().collect())
        return sorted([str(k), int(v)] for k, v in zip(r["Borough"], r["len"]))
    if case == "dataframe-set-index":
        r = (pl.scan_parquet(os.path.join(d, "parquet", "yellow_tripdata_2019-01.parquet"))
             .sort("tpep_pickup_datetime").collect())
        return [r.height, round(float(r["total_amount"].sum()), 2)]
    raise SystemExit(f"unknown case {case}")


class _Series:
    def __init__(self, index, values):
        self.index, self.values = index, values


def main():
    p = argparse.ArgumentParser()
    p.add_argument("case", choices=sorted(CASES))
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--impl", choices=["dask", "oxidask", "pandas", "polars"], required=True)
    a = p.parse_args()
    d = data_dir(a.n)
    # Imports outside the timed region.
    import pandas as pd
    if a.impl == "dask":
        import dask
        import dask.dataframe as dd
        dask.config.set(scheduler="threads")
    elif a.impl == "oxidask":
        import oxidask as dask
        import oxidask.dataframe as dd
        dask.config.set(scheduler="threads")
    elif a.impl == "pandas":
        dd = _PandasDD(pd)
    else:
        import polars  # noqa: F401
    start = time.perf_counter()
    if a.impl == "polars":
        check = run_polars(a.case, d)
    elif a.impl == "pandas":
        check = CASES[a.case](dd, pd, d, lambda r: r)
    else:
        check = CASES[a.case](dd, pd, d, lambda r: r.compute())
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"seconds": seconds, "check": check, "peak_mib": round(peak, 1)}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
