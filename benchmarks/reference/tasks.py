"""Reference side of suite `tasks`: the same graph shapes as oxidask-bench, run by Dask's
threaded scheduler on low-level (dict) graphs. Prints {"seconds": ..., "check": ...}.

The timed region includes building the graph, as ours does.
"""
import argparse
import json
import time

import dask
from dask.threaded import get


def inc(x):
    return x + 1


def total(xs):
    return sum(xs)


def independent(n):
    dsk = {("inc", i): (inc, i) for i in range(n)}
    keys = [("inc", i) for i in range(n)]
    return sum(get(dsk, keys))


def chain(n):
    dsk = {("inc", 0): (inc, 0)}
    for i in range(1, n):
        dsk[("inc", i)] = (inc, ("inc", i - 1))
    return get(dsk, ("inc", n - 1))


def tree(n):
    dsk = {("inc", i): (inc, i) for i in range(n)}
    level = [("inc", i) for i in range(n)]
    depth = 0
    while len(level) > 1:
        depth += 1
        name = f"total-{depth}"
        nxt = []
        for j in range(0, len(level), 2):
            key = (name, j // 2)
            dsk[key] = (total, list(level[j : j + 2]))
            nxt.append(key)
        level = nxt
    return get(dsk, level[0])


def delayed_independent(n):
    lazy_inc = dask.delayed(inc, pure=True)
    parts = [lazy_inc(i) for i in range(n)]
    return sum(dask.compute(*parts, scheduler="threads"))


CASES = {
    "independent": independent,
    "chain": chain,
    "tree": tree,
    "delayed-independent": delayed_independent,
}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("case", choices=sorted(CASES))
    p.add_argument("--n", type=int, required=True)
    a = p.parse_args()
    get({"warm": (inc, 1)}, "warm")  # start the thread pool outside the timed region
    start = time.perf_counter()
    check = CASES[a.case](a.n)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "check": check}))


if __name__ == "__main__":
    main()
