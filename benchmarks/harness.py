"""Runs our side and the reference side(s) of a benchmark suite alternately (A B A B …),
checks that they agree, and prints one JSON object per case and reference:

  {"suite", "case", "ours_s", "reference", "reference_s", "ratio", "check", ...}

ratio = reference_s / ours_s (higher is better for us); times are medians over the runs.
Each run is a fresh process; the timed region is measured inside it. Peak memory (whole
process, MiB) is reported where the sides measure it.
"""
import argparse
import datetime
import json
import math
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

DASK = ("dask-threaded", ["tasks.py"])
DASK_ARRAY = ("dask-threaded", ["array_ref.py", "--impl", "dask"])
NUMPY = ("numpy", ["array_ref.py", "--impl", "numpy"])
DASK_DISTRIBUTED = ("dask-localcluster", ["distributed_ref.py"])
DASK_DF = ("dask-dataframe-threaded", ["dataframe_ref.py", "--impl", "dask"])
POLARS = ("polars-lazy", ["dataframe_ref.py", "--impl", "polars"])
DASK_DF_CLUSTER = ("dask-dataframe-localcluster", ["dataframe_ref.py", "--impl", "dask-distributed"])
DASK_PY = ("dask", ["python_cases.py", "--impl", "dask"])
DASK_COORD = ("dask", ["coordination_cases.py", "--impl", "dask"])
DASK_ACTORS = ("dask", ["actor_cases.py", "--impl", "dask"])
DASK_ARRAY_PY = ("dask", ["array_collections.py", "--impl", "dask"])
DASK_DF_PY = ("dask", ["dataframe_collections.py", "--impl", "dask"])
PANDAS_DF_PY = ("pandas", ["dataframe_collections.py", "--impl", "pandas"])
POLARS_DF_PY = ("polars-lazy", ["dataframe_collections.py", "--impl", "polars"])
DASK_BAG = ("dask-bag-threaded", ["bag_ref.py"])
DASK_ADAPT = ("dask-localcluster-adapt", ["adapt_cases.py", "--impl", "dask"])
# A reference that is our Python package in another deployment (run by --ours-python).
GATEWAY_ADAPT = ("oxidask-gateway-adapt", ["@ours-python", "adapt_cases.py", "--impl", "oxidask-gateway"])
# A reference that is ourselves in another configuration: (name, ["@ours", case]).
NO_DASHBOARD = ("oxidask-no-dashboard", ["@ours", "dashboard-closed"])
NO_NANNY = ("oxidask-no-nanny", ["@ours", "worker-startup-no-nanny"])
DASK_WORKER = ("dask-worker", ["distributed_ref.py"])
DASK_WORKER_NO_NANNY = ("dask-worker-no-nanny", ["distributed_ref.py", "--no-nanny"])
PLAIN_MAP = ("oxidask-plain-tcp", ["@ours", "map"])
PLAIN_ROUNDTRIP = ("oxidask-plain-tcp", ["@ours", "roundtrip"])
# The churn case's clean run (no worker killed), against the same under churn (churn.py).
CLEAN_CHURN = ("oxidask-clean", ["churn.py", "--mode", "clean"])
# The same query through the Rust API (oxidask-bench SUITE CASE): ["@ours", suite, case].
def RUST_API(suite, case):
    return ("oxidask-rust-api", ["@ours", suite, case])

# Suites whose "ours" side is a Python script (the oxidask package) rather than oxidask-bench.
PYTHON_OURS = {
    "python": ["python_cases.py", "--impl", "oxidask"],
    "coordination": ["coordination_cases.py", "--impl", "oxidask"],
    "actors": ["actor_cases.py", "--impl", "oxidask"],
    "python-collections": ["array_collections.py", "--impl", "oxidask"],
    "adapt": ["adapt_cases.py", "--impl", "oxidask"],
}

# Cases of other suites whose "ours" side is a script too: (suite, case) -> script and arguments.
OURS_BY_CASE = {
    ("distributed", "churn"): ["churn.py", "--mode", "churn"],
}

# Cases of those suites whose "ours" script is another: case prefix -> script and arguments.
PYTHON_OURS_BY_PREFIX = {
    "dataframe-": ["dataframe_collections.py", "--impl", "oxidask"],
}

# Suites whose runs are long (a fixed timeline): one run each unless --reps says otherwise.
SUITE_REPS = {"adapt": 1}

# suite -> [(case, full size, quick size, [references])]
SUITES = {
    "tasks": [
        ("independent", 1_000_000, 10_000, [DASK]),
        ("chain", 1_000_000, 10_000, [DASK]),
        ("tree", 1_000_000, 10_000, [DASK]),
        # Dask's delayed merges one graph per handle: 100k handles took 20 minutes here.
        ("delayed-independent", 20_000, 2_000, [("dask-delayed-threaded", ["tasks.py"])]),
    ],
    "array": [
        ("ones-sum", 20_000, 2_000, [DASK_ARRAY, NUMPY]),
        ("ones-fancy", 20_000, 2_000, [DASK_ARRAY, NUMPY]),
        ("random-expr", 20_000, 2_000, [DASK_ARRAY, NUMPY]),
        ("random-std", 20_000, 2_000, [DASK_ARRAY, NUMPY]),
        ("matmul-sum", 20_000, 2_000, [DASK_ARRAY, NUMPY]),
        # n = GiB of random f64 summed; ours only (the references would need the RAM).
        ("big-sum", 64, 1, []),
    ],
    # Two worker processes of one thread each on loopback, both sides.
    "distributed": [
        ("startup", 2, 2, [DASK_DISTRIBUTED]),
        # n worker start-ups, one at a time: spawn to registered, median; under the nanny
        # (the default) against --no-nanny, ours and Dask's `dask worker`.
        ("worker-startup", 7, 3, [DASK_WORKER, DASK_WORKER_NO_NANNY, NO_NANNY]),
        ("roundtrip", 1_000, 100, [DASK_DISTRIBUTED]),
        ("map", 100_000, 2_000, [DASK_DISTRIBUTED]),
        ("tree", 100_000, 2_000, [DASK_DISTRIBUTED]),
        ("scheduler-alone", 100_000, 2_000, [DASK_DISTRIBUTED]),
        # Ours only: the scheduler's state machine alone (no sockets, no encoding).
        ("state-machine", 1_000_000, 20_000, []),
        # Ours only: a million-task graph on zero-work workers, scheduler memory per task.
        ("big-graph", 1_000_000, 20_000, []),
        # The dashboard's cost: big-graph's tree with two pages open and /metrics scraped,
        # against the same with no dashboard (ratio ≥ 0.95 is the target).
        ("dashboard-open", 1_000_000, 20_000, [NO_DASHBOARD]),
        # TLS's cost: map and roundtrip with TLS and a token on every connection, against
        # the same over plain TCP (target: within 10%).
        ("map-tls", 100_000, 2_000, [PLAIN_MAP]),
        ("roundtrip-tls", 1_000, 100, [PLAIN_ROUNDTRIP]),
        # Churn: n = leaves of a tree reduction (~2n tasks) submitted with a 2n/5-task map,
        # a worker SIGKILLed and a fresh one started every 3 s, against the clean run
        # (target: ratio >= 0.5, churn within 2x clean). Results checked exactly.
        ("churn", 50_000, 2_000, [CLEAN_CHURN]),
    ],
    # The Python package against Dask, the same script with either import (python_cases.py).
    "python": [
        ("startup", 2, 2, [DASK_PY]),
        ("roundtrip", 1_000, 100, [DASK_PY]),
        ("delayed-tree", 100_000, 2_000, [DASK_PY]),
        ("map", 100_000, 2_000, [DASK_PY]),
        # n = lines of text (~6 words each); dask.bag against oxidask.bag, same script.
        ("bag-word-count", 1_000_000, 50_000, [DASK_PY]),
    ],
    # Dask's distributed data structures from Python (coordination_cases.py), both sides on a
    # LocalCluster of 2 worker processes; n = operations.
    "coordination": [
        ("queue-put-get", 10_000, 500, [DASK_COORD]),
        ("queue-tasks", 10_000, 500, [DASK_COORD]),
        ("lock-roundtrip", 2_000, 200, [DASK_COORD]),
    ],
    # Dask's actors from Python (actor_cases.py), both sides on a LocalCluster of 2 worker
    # processes; n = calls on one Counter actor.
    "actors": [
        ("actor-roundtrip", 2_000, 200, [DASK_ACTORS]),
        ("actor-pipelined", 10_000, 500, [DASK_ACTORS]),
    ],
    # Dask's collections from Python, the same script with either import, threaded on both
    # sides, and the same query through the Rust API (oxidask-bench) as a reference: its
    # "ratio" is Rust time / Python time (target ≥ 0.91, Python within 10% of Rust).
    # Array cases: n = side of a square float64 array (array_collections.py; the Rust side is
    # oxidask-bench `collections`).
    "python-collections": [
        ("array-expr-mean", 6000, 1000, [DASK_ARRAY_PY, RUST_API("collections", "array-expr-mean")]),
        ("array-std", 6000, 1000, [DASK_ARRAY_PY, RUST_API("collections", "array-std")]),
        ("array-matmul", 4000, 800, [DASK_ARRAY_PY, RUST_API("collections", "array-matmul")]),
        ("array-mask-sum", 6000, 1000, [DASK_ARRAY_PY, RUST_API("collections", "array-mask-sum")]),
        ("array-map-blocks", 6000, 1000, [DASK_ARRAY_PY, RUST_API("collections", "array-map-blocks")]),
        ("array-to-numpy", 6000, 1000, [DASK_ARRAY_PY, RUST_API("collections", "array-to-numpy")]),
        # Dataframe cases: n = taxi data scale per mille (dataframe_collections.py; the Rust side
        # is the `dataframe` suite's same query; the merge is `merge-count-all`, no column
        # selected by hand). `dataframe_collections.py CASE --impl pandas` runs eager pandas
        # (not in the suite: the full year needs ~10 GB in pandas).
        ("dataframe-value-counts", 1000, 10, [DASK_DF_PY, POLARS_DF_PY, RUST_API("dataframe", "value-counts")]),
        ("dataframe-groupby-mean", 1000, 10, [DASK_DF_PY, POLARS_DF_PY, RUST_API("dataframe", "groupby-mean")]),
        ("dataframe-groupby-agg", 1000, 10, [DASK_DF_PY, POLARS_DF_PY, RUST_API("dataframe", "groupby-agg")]),
        ("dataframe-filter-count", 1000, 10, [DASK_DF_PY, POLARS_DF_PY, RUST_API("dataframe", "filter-count")]),
        ("dataframe-merge-count", 1000, 10, [DASK_DF_PY, POLARS_DF_PY, RUST_API("dataframe", "merge-count-all")]),
        ("dataframe-set-index", 1000, 10, [DASK_DF_PY, POLARS_DF_PY, RUST_API("dataframe", "set-index")]),
    ],
    # Adaptive scaling under bursts (adapt_cases.py): LocalCluster(n_workers=0).adapt(1..4) on
    # both sides, idle 5 s, n tasks of 0.1 s, idle 15 s, a smaller burst, idle until scaled
    # down; n = tasks in the first burst; also on a cluster of `oxidask gateway`.
    # `adapt_cases.py timeline` prints workers per second.
    "adapt": [
        ("bursty", 200, 100, [DASK_ADAPT, GATEWAY_ADAPT]),
    ],
    # Dask's bag on generated files (oxidask-bench makes them under $OXIDASK_BENCH_DATA),
    # threaded on both sides; n = megabytes of text / of JSON lines.
    "bag": [
        ("word-count", 200, 10, [DASK_BAG]),
        ("json-records", 100, 5, [DASK_BAG]),
    ],
    # n = data scale per mille of the 84.4M-row 2019 taxi year (benchmarks/run makes the data).
    "dataframe": [
        ("value-counts", 1000, 10, [DASK_DF, POLARS]),
        ("groupby-mean", 1000, 10, [DASK_DF, POLARS]),
        ("groupby-agg", 1000, 10, [DASK_DF, POLARS]),
        ("filter-count", 1000, 10, [DASK_DF, POLARS]),
        ("merge-count", 1000, 10, [DASK_DF, POLARS]),
        # The same merge written without selecting the column first (projection pushdown).
        ("merge-count-all", 1000, 10, [DASK_DF, POLARS]),
        ("set-index", 1000, 10, [DASK_DF, POLARS]),
        # set_index of January with its rows in random order (taxi_gen --random-order,
        # whatever --layout says).
        ("set-index-unsorted", 1000, 10, [DASK_DF, POLARS]),
        # January merged with the zones and indexed by the zone's name (a string key);
        # max_partition_share = largest partition's rows / mean partition's (reported).
        ("set-index-string", 1000, 10, [DASK_DF, POLARS]),
        ("read-csv", 1000, 10, [DASK_DF, POLARS]),
    ],
}

# Every dataframe query on a scheduler and 2 worker processes of one thread each, ours
# (oxidask-bench's processes) against Dask's LocalCluster(n_workers=2, threads_per_worker=1);
# peak memory sums every process of the cluster. Polars (one process) beside it.
SUITES["dataframe-distributed"] = [
    (case, full_n, quick_n, [DASK_DF_CLUSTER, POLARS])
    for case, full_n, quick_n, _ in SUITES["dataframe"]
]

# Suites reading the taxi data, which --layout chooses (sorted: taxi-N, rows in time order
# in 1M-row groups; random: taxi-N-random, rows in random order in the writer's default
# row groups).
LAYOUT_SUITES = {"dataframe", "dataframe-distributed"}

# Extra numeric fields a side may report (medians are printed as ours_X / reference_X).
EXTRA_FIELDS = ["p50_ms", "p99_ms", "tasks_per_s", "in_process_s", "scheduler_peak_mib",
                "scheduler_bytes_per_task", "scheduler_cpu_s", "tasks_per_scheduler_cpu_s",
                "first_scale_up_s", "peak_workers", "burst1_s", "burst2_s", "scale_down_s",
                "worker_seconds", "max_partition_share", "kills", "task_runs", "redone"]


def run_json(cmd, timeout):
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stderr.strip()}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def agree(a, b):
    if isinstance(a, float) or isinstance(b, float):
        a, b = float(a), float(b)
        if math.isnan(a) and math.isnan(b):
            return True
        return abs(a - b) <= 1e-6 * max(1.0, abs(a), abs(b))
    return a == b


def median(runs, field):
    vals = [r[field] for r in runs if field in r]
    return round(statistics.median(vals), 6) if vals else None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("suite", choices=sorted(SUITES))
    p.add_argument("--quick", action="store_true")
    p.add_argument("--ours", required=True, help="path of the oxidask-bench binary")
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--ours-python", default=None,
                   help="interpreter of a Python 'ours' side (default: --python)")
    p.add_argument("--reps", type=int, default=None)
    p.add_argument("--case", action="append", help="only these cases")
    p.add_argument("--timeout", type=int, default=1800)
    p.add_argument("--layout", choices=["sorted", "random"], default="sorted",
                   help="the taxi data's layout (dataframe suites)")
    a = p.parse_args()
    os.environ["OXIDASK_BENCH_LAYOUT"] = a.layout
    # Quick mode is a smoke test: two runs each keep it under a minute.
    reps = a.reps or SUITE_REPS.get(a.suite) or (2 if a.quick else 3)
    failed = False
    for case, full_n, quick_n, refs in SUITES[a.suite]:
        if a.case and case not in a.case:
            continue
        n = quick_n if a.quick else full_n
        if (a.suite, case) in OURS_BY_CASE:
            script, *extra = OURS_BY_CASE[(a.suite, case)]
            ours_cmd = [a.python, os.path.join(HERE, "reference", script), case,
                        "--n", str(n)] + extra
        elif a.suite in PYTHON_OURS:
            script, *extra = next((v for k, v in PYTHON_OURS_BY_PREFIX.items()
                                   if case.startswith(k)), PYTHON_OURS[a.suite])
            ours_cmd = [a.ours_python or a.python, os.path.join(HERE, "reference", script), case,
                        "--n", str(n)] + extra
        else:
            ours_cmd = [a.ours, a.suite, case, "--n", str(n)]
        ref_cmds = [
            (name, [a.ours] + ([a.suite] + extra if len(extra) == 1 else extra) + ["--n", str(n)])
            if script == "@ours" else
            (name, [a.ours_python or a.python, os.path.join(HERE, "reference", extra[0]), case,
                    "--n", str(n)] + extra[1:]) if script == "@ours-python" else
            (name, [a.python, os.path.join(HERE, "reference", script), case, "--n", str(n)] + extra)
            for name, (script, *extra) in refs
        ]
        ours, theirs = [], {name: [] for name, _ in ref_cmds}
        for _ in range(reps):
            ours.append(run_json(ours_cmd, a.timeout))
            for name, cmd in ref_cmds:
                theirs[name].append(run_json(cmd, a.timeout))
        ours_s = median(ours, "seconds")
        base = {
            "suite": a.suite,
            "case": case,
            "n": n,
            "ours_s": ours_s,
            "ours_peak_mib": median(ours, "peak_mib"),
            "reps": reps,
            "date": datetime.date.today().isoformat(),
        }
        if a.suite in LAYOUT_SUITES:
            base["layout"] = a.layout
        for f in EXTRA_FIELDS:
            if median(ours, f) is not None:
                base["ours_" + f] = median(ours, f)
        ours_checks = [r["check"] for r in ours]
        consistent = all(agree(c, ours_checks[0]) for c in ours_checks)
        if not ref_cmds:
            print(json.dumps({**base, "reference": None, "reference_s": None, "ratio": None,
                              "check": "ok" if consistent else f"UNSTABLE ours={ours_checks}",
                              "ours_value": ours_checks[0]}), flush=True)
            failed |= not consistent
            continue
        for name, runs in theirs.items():
            ref_s = median(runs, "seconds")
            ref_checks = [r["check"] for r in runs]
            ok = consistent and all(agree(c, ours_checks[0]) for c in ref_checks)
            check = "ok" if ok else f"MISMATCH ours={ours_checks} reference={ref_checks}"
            failed |= not ok
            extra = {"reference_" + f: median(runs, f) for f in EXTRA_FIELDS
                     if median(runs, f) is not None}
            print(json.dumps({**base, "reference": name, "reference_s": ref_s, **extra,
                              "reference_peak_mib": median(runs, "peak_mib"),
                              "ratio": round(ref_s / ours_s, 2) if ours_s else None,
                              "check": check}), flush=True)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
