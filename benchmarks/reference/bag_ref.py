"""The reference side of the `bag` suite: Dask bag on the threaded scheduler, reading the files
our side generated into $OXIDASK_BENCH_DATA/bag-{text|json}-{n} (oxidask-bench bag makes them
first; the harness runs our side first).

  python bag_ref.py CASE --n MEGABYTES

Prints one JSON line: {"seconds", "peak_mib", "check"}; "check" must equal ours.
"""
import argparse
import json
import os
import resource
import time


def data_dir(kind, n):
    root = os.environ.get("OXIDASK_BENCH_DATA", os.path.join(os.path.dirname(__file__), "..", "data"))
    d = os.path.join(root, f"bag-{kind}-{n}")
    if not os.path.exists(os.path.join(d, "DONE")):
        raise SystemExit(f"{d}: no data; run our side first (oxidask-bench bag CASE --n {n}) to generate it")
    return d


def main():
    p = argparse.ArgumentParser()
    p.add_argument("case")
    p.add_argument("--n", type=int, required=True)
    a = p.parse_args()
    import dask
    import dask.bag as db
    dask.config.set(scheduler="threads")
    if a.case == "word-count":
        d = data_dir("text", a.n)
        start = time.perf_counter()
        freq = db.read_text(os.path.join(d, "*.txt")).str.split().flatten().frequencies()
        top, distinct = dask.compute(freq.topk(10, key=lambda wc: (wc[1], [-ord(ch) for ch in wc[0]] + [1])), freq.count())
        seconds = time.perf_counter() - start
        check = [int(distinct), [[w, int(c)] for w, c in top]]
    elif a.case == "json-records":
        d = data_dir("json", a.n)
        start = time.perf_counter()
        records = db.read_text(os.path.join(d, "*.txt")).map(json.loads)
        purchases = records.filter(lambda r: r["kind"] == "purchase")
        by_user = purchases.foldby(lambda r: r["user"], lambda acc, r: acc + r["amount"], 0,
                                   lambda x, y: x + y, 0)
        groups, total = dask.compute(by_user, purchases.pluck("amount").sum())
        seconds = time.perf_counter() - start
        amounts = [v for _, v in groups]
        check = [len(groups), int(sum(amounts)), int(total), int(max(amounts, default=0))]
    else:
        raise SystemExit(f"unknown case {a.case}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mib": round(peak, 1), "check": check}))


if __name__ == "__main__":
    main()
