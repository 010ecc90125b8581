"""The reference side of the `dataframe` suites: Dask DataFrame (threaded scheduler, or with
--impl dask-distributed a LocalCluster of 2 worker processes of one thread each) or Polars
(lazy, one machine) on the synthetic 2019 taxi data (taxi_gen.py); OXIDASK_BENCH_LAYOUT=random
reads taxi-N-random (rows in random order, the Parquet writer's default row groups).

  python dataframe_ref.py CASE --n SCALE_PER_MILLE --impl dask|dask-distributed|polars

Prints one JSON line: {"seconds", "peak_mib", "check", ...}; "check" must equal ours. With
dask-distributed, peak_mib sums the peaks of this process (client and scheduler) and every
process below it (nannies, workers), read before the cluster closes.
"""
import argparse
import json
import os
import resource
import time


def data_root():
    return os.environ.get("OXIDASK_BENCH_DATA", os.path.join(os.path.dirname(__file__), "..", "data"))


def data_dir(n):
    """The data of the layout OXIDASK_BENCH_LAYOUT names (sorted, the default, or random)."""
    if os.environ.get("OXIDASK_BENCH_LAYOUT") == "random":
        return random_dir(n)
    return os.path.join(data_root(), f"taxi-{n}")


def random_dir(n):
    """The data with rows in random order, whatever the layout."""
    return os.path.join(data_root(), f"taxi-{n}-random")


def tree_peak_mib(root):
    """Sum of the peak resident memory (VmHWM) of `root` and every process below it, MiB."""
    children = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            ppid = status_field(int(name), "PPid:")
            if ppid is not None:
                children.setdefault(ppid, []).append(int(name))
    stack, kib = [root], 0
    while stack:
        pid = stack.pop()
        kib += status_field(pid, "VmHWM:") or 0
        stack.extend(children.get(pid, []))
    return kib / 1024


def status_field(pid, name):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(name):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def counts_check(values, counts):
    pairs = sorted(zip([-1 if v is None or v != v else int(v) for v in values], [int(c) for c in counts]))
    return [len(pairs), sum(c for _, c in pairs), sum((v + 2) * c for v, c in pairs)]


def run_dask(case, d, n, extra):
    import dask.dataframe as dd
    pq = os.path.join(d, "parquet")
    if case == "value-counts":
        s = dd.read_parquet(pq, columns=["passenger_count"])["passenger_count"].value_counts(dropna=False).compute()
        return counts_check(list(s.index), list(s.values))
    if case == "groupby-mean":
        r = dd.read_parquet(pq).groupby("VendorID")["total_amount"].mean().compute().sort_index()
        return [int(len(r)), round(float(r.sum()), 6)]
    if case == "groupby-agg":
        r = (dd.read_parquet(pq).groupby("PULocationID")
             .agg({"total_amount": ["sum", "mean", "max"], "trip_distance": ["mean"], "tip_amount": ["count"]})
             .compute())
        return [int(len(r)), round(float(r[("total_amount", "sum")].sum()), 2),
                int(r[("tip_amount", "count")].sum())]
    if case == "filter-count":
        df = dd.read_parquet(pq)
        return int(len(df[df.trip_distance > 10]))
    if case == "merge-count":
        import pandas as pd
        zones = pd.read_parquet(os.path.join(d, "zones.parquet"))
        df = dd.read_parquet(pq, columns=["PULocationID"])
        m = df.merge(zones, left_on="PULocationID", right_on="LocationID", how="inner")
        r = m.Borough.value_counts().compute()
        return sorted([str(k), int(v)] for k, v in r.items())
    if case == "merge-count-all":
        # As a new user writes it: no column selection before the merge.
        import pandas as pd
        zones = pd.read_parquet(os.path.join(d, "zones.parquet"))
        m = dd.read_parquet(pq).merge(zones, left_on="PULocationID", right_on="LocationID", how="inner")
        r = m.Borough.value_counts().compute()
        return sorted([str(k), int(v)] for k, v in r.items())
    if case in ("set-index", "set-index-unsorted"):
        src = d if case == "set-index" else random_dir(n)
        df = dd.read_parquet(os.path.join(src, "parquet", "yellow_tripdata_2019-01.parquet"))
        s = df.set_index("tpep_pickup_datetime").persist()
        return [int(len(s)), round(float(s.total_amount.sum().compute()), 2)]
    if case == "set-index-string":
        import pandas as pd
        zones = pd.read_parquet(os.path.join(d, "zones.parquet"))
        df = dd.read_parquet(os.path.join(pq, "yellow_tripdata_2019-01.parquet"))
        s = (df.merge(zones, left_on="PULocationID", right_on="LocationID", how="inner")
             .set_index("Zone").persist())
        lens = s.map_partitions(len).compute().tolist()
        extra["max_partition_share"] = round(max(lens) * len(lens) / max(1, sum(lens)), 2)
        return [int(sum(lens)), round(float(s.total_amount.sum().compute()), 2)]
    if case == "read-csv":
        df = dd.read_csv(os.path.join(d, "csv", "*.csv"), dtype={"store_and_fwd_flag": "object", "RatecodeID": "float64", "passenger_count": "float64", "payment_type": "float64", "congestion_surcharge": "float64"})
        s = df["passenger_count"].value_counts(dropna=False).compute()
        return counts_check(list(s.index), list(s.values))
    raise SystemExit(f"unknown case {case}")


def run_polars(case, d, n, extra):
    import polars as pl
    pq = os.path.join(d, "parquet", "*.parquet")
    if case == "value-counts":
        r = pl.scan_parquet(pq).select(pl.col("passenger_count").value_counts()).unnest("passenger_count").collect()
        return counts_check(r["passenger_count"].to_list(), r["count"].to_list())
    if case == "groupby-mean":
        r = pl.scan_parquet(pq).group_by("VendorID").agg(pl.col("total_amount").mean()).collect()
        return [r.height, round(float(r["total_amount"].sum()), 6)]
    if case == "groupby-agg":
        r = (pl.scan_parquet(pq).group_by("PULocationID")
             .agg(pl.col("total_amount").sum().alias("s"), pl.col("total_amount").mean().alias("m"),
                  pl.col("total_amount").max().alias("x"), pl.col("trip_distance").mean().alias("d"),
                  pl.col("tip_amount").count().alias("c"))
             .collect())
        return [r.height, round(float(r["s"].sum()), 2), int(r["c"].sum())]
    if case == "filter-count":
        return int(pl.scan_parquet(pq).filter(pl.col("trip_distance") > 10).select(pl.len()).collect().item())
    if case == "merge-count":
        zones = pl.scan_parquet(os.path.join(d, "zones.parquet"))
        r = (pl.scan_parquet(pq).select("PULocationID")
             .join(zones, left_on="PULocationID", right_on="LocationID", how="inner")
             .group_by("Borough").len().collect())
        return sorted([str(k), int(v)] for k, v in zip(r["Borough"], r["len"]))
    if case == "merge-count-all":
        zones = pl.scan_parquet(os.path.join(d, "zones.parquet"))
        r = (pl.scan_parquet(pq)
             .join(zones, left_on="PULocationID", right_on="LocationID", how="inner")
             .group_by("Borough").len().collect())
        return sorted([str(k), int(v)] for k, v in zip(r["Borough"], r["len"]))
    if case in ("set-index", "set-index-unsorted"):
        src = d if case == "set-index" else random_dir(n)
        r = pl.scan_parquet(os.path.join(src, "parquet", "yellow_tripdata_2019-01.parquet")).sort("tpep_pickup_datetime").collect()
        return [r.height, round(float(r["total_amount"].sum()), 2)]
    if case == "set-index-string":
        zones = pl.scan_parquet(os.path.join(d, "zones.parquet"))
        r = (pl.scan_parquet(os.path.join(d, "parquet", "yellow_tripdata_2019-01.parquet"))
             .join(zones, left_on="PULocationID", right_on="LocationID", how="inner")
             .sort("Zone").collect())
        return [r.height, round(float(r["total_amount"].sum()), 2)]
    if case == "read-csv":
        r = (pl.scan_csv(os.path.join(d, "csv", "*.csv"), infer_schema_length=10000)
             .select(pl.col("passenger_count").value_counts()).unnest("passenger_count").collect())
        return counts_check(r["passenger_count"].to_list(), r["count"].to_list())
    raise SystemExit(f"unknown case {case}")


def _import_dataframe_stack():
    import dask.dataframe  # noqa: F401
    import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401


def main():
    p = argparse.ArgumentParser()
    p.add_argument("case")
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--impl", choices=["dask", "dask-distributed", "polars"], required=True)
    a = p.parse_args()
    d = data_dir(a.n)
    extra = {}
    # Imports and the cluster outside the timed region (later imports inside the cases are
    # cache hits).
    if a.impl == "polars":
        import polars  # noqa: F401
        t0 = time.perf_counter()
        check = run_polars(a.case, d, a.n, extra)
        seconds = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    elif a.impl == "dask":
        import dask
        import dask.dataframe  # noqa: F401
        import pandas  # noqa: F401
        with dask.config.set(scheduler="threads"):
            t0 = time.perf_counter()
            check = run_dask(a.case, d, a.n, extra)
            seconds = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    else:
        import dask.dataframe  # noqa: F401
        import pandas  # noqa: F401
        from distributed import Client, LocalCluster
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            client.wait_for_workers(2)
            # The workers' imports outside the timed region too, as this process's.
            client.run(_import_dataframe_stack)
            t0 = time.perf_counter()
            check = run_dask(a.case, d, a.n, extra)
            seconds = time.perf_counter() - t0
            # Every process's peak, read while they all still run.
            peak = tree_peak_mib(os.getpid())
    print(json.dumps({"seconds": seconds, "peak_mib": round(peak, 1), "check": check, **extra}))


if __name__ == "__main__":
    main()
