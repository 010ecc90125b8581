"""The `python-collections` benchmark suite, array cases: the same dask.array script run with
`--impl dask` (`import dask.array as da`) and `--impl oxidask` (`import oxidask.array as da`),
both on their threaded scheduler.

Cases (n = side of the square float64 input, made with NumPy before the clock starts and
handed to `da.from_array(..., chunks=(n // 8, n // 8))` inside the timed region — Dask wraps
it lazily, oxidask copies it into its blocks):
  array-expr-mean    ((x + x.T) * 2 - 1).mean(axis=0), summed
  array-std          x.std(axis=0), summed
  array-matmul       (y @ y.T) summed, y = x[: n // 2] (a quarter of the data)
  array-mask-sum     x[x > 0.5].sum() (a boolean mask: unknown chunk sizes)
  array-map-blocks   x.map_blocks(np.sin).sum() (a Python function on every block)
  array-to-numpy     (x * 2).compute(): the whole array back as one numpy.ndarray

Prints one JSON line: {"seconds", "check", "peak_mib"}.
"""

import argparse
import json
import resource
import sys
import time

import numpy as np


def data(n):
    i = np.arange(n * n, dtype=np.float64)
    return ((np.sin(i * 0.7) + 1.0) / 2.0).reshape(n, n)


def case_expr_mean(da, x, n):
    return float(((x + x.T) * 2 - 1).mean(axis=0).sum().compute())


def case_std(da, x, n):
    return float(x.std(axis=0).sum().compute())


def case_matmul(da, x, n):
    y = x[: n // 2]
    return float((y @ y.T).sum().compute())


def case_mask_sum(da, x, n):
    return float(x[x > 0.5].sum().compute())


def case_map_blocks(da, x, n):
    return float(x.map_blocks(np.sin).sum().compute())


def case_to_numpy(da, x, n):
    out = (x * 2).compute()
    assert isinstance(out, np.ndarray) and out.shape == (n, n)
    return float(out[::97, ::89].sum())


CASES = {
    "array-expr-mean": case_expr_mean,
    "array-std": case_std,
    "array-matmul": case_matmul,
    "array-mask-sum": case_mask_sum,
    "array-map-blocks": case_map_blocks,
    "array-to-numpy": case_to_numpy,
}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("case", choices=sorted(CASES))
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--impl", choices=["dask", "oxidask"], required=True)
    a = p.parse_args()
    if a.impl == "dask":
        import dask
        import dask.array as da

        dask.config.set(scheduler="threads")
    else:
        import oxidask as dask
        import oxidask.array as da

        dask.config.set(scheduler="threads")
    values = data(a.n)
    start = time.perf_counter()
    x = da.from_array(values, chunks=(max(1, a.n // 8), max(1, a.n // 8)))
    check = CASES[a.case](da, x, a.n)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"seconds": seconds, "check": round(check, 6), "peak_mib": peak}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
