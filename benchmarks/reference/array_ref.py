"""Reference side of suite `array`: the same workloads with Dask (threaded) or NumPy.

Random data comes from a NumPy port of oxidask's counter-based generator (SplitMix64 indexed
by position), so both sides compute on identical numbers; as on our side it is generated
before the timed region. Prints {"seconds", "check", "peak_mib"}.
"""
import argparse
import json
import resource
import time

import numpy as np

SEED = 42
GAMMA = np.uint64(0x9E3779B97F4A7C15)


def splitmix_uniform(seed, start, count):
    with np.errstate(over="ignore"):
        i = np.arange(start, start + count, dtype=np.uint64)
        z = np.uint64(seed) + (i + np.uint64(1)) * GAMMA
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def random(n):
    out = np.empty((n, n), dtype=np.float64)
    rows = max(1, (1 << 24) // n)
    for r in range(0, n, rows):
        k = min(rows, n - r)
        out[r : r + k] = splitmix_uniform(SEED, r * n, k * n).reshape(k, n)
    return out


def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_numpy(case, n):
    x = random(n) if case in ("random-expr", "random-std", "matmul-sum") else None
    start = time.perf_counter()
    if case == "ones-sum":
        check = np.ones((n, n)).sum()
    elif case == "ones-fancy":
        ones = np.ones((n, n))
        check = (ones * ones[::-1, ::-1]).mean()
    elif case == "random-expr":
        check = (x + x.T - x.mean(axis=0)).sum()
    elif case == "random-std":
        check = x.std()
    elif case == "matmul-sum":
        m = n // 5
        y = x[:m, :m]
        check = (y @ y).sum()
    else:
        raise SystemExit(f"unknown case {case}")
    return time.perf_counter() - start, float(check)


def run_dask(case, n):
    import dask
    import dask.array as da

    dask.config.set(scheduler="threads")
    chunk = max(1, n // 10)
    x = None
    if case in ("random-expr", "random-std", "matmul-sum"):
        x = da.from_array(random(n), chunks=chunk)
    start = time.perf_counter()
    if case == "ones-sum":
        check = da.ones((n, n), chunks=chunk).sum().compute()
    elif case == "ones-fancy":
        ones = da.ones((n, n), chunks=chunk)
        check = (ones * ones[::-1, ::-1]).mean().compute()
    elif case == "random-expr":
        check = (x + x.T - x.mean(axis=0)).sum().compute()
    elif case == "random-std":
        check = x.std().compute()
    elif case == "matmul-sum":
        m = n // 5
        y = x[:m, :m]
        check = (y @ y).sum().compute()
    else:
        raise SystemExit(f"unknown case {case}")
    return time.perf_counter() - start, float(check)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("case")
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--impl", choices=["dask", "numpy"], required=True)
    a = p.parse_args()
    seconds, check = (run_dask if a.impl == "dask" else run_numpy)(a.case, a.n)
    print(json.dumps({"seconds": seconds, "check": check, "peak_mib": peak_mib()}))


if __name__ == "__main__":
    main()
