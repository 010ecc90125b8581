"""oxidask.array, the way Dask's array tutorial uses dask.array: only the import differs.

Runs the tutorial's steps (ones in chunks, sum, a fancy calculation), then a small analysis
(random data, a boolean mask with unknown chunk sizes, a Python function over blocks, a
matrix product), each checked against NumPy, on the threaded scheduler and on a LocalCluster
of worker processes.

    python examples/python/array_tutorial.py
"""

import numpy as np

import oxidask
import oxidask.array as da
from oxidask.distributed import Client, LocalCluster


def tutorial():
    shape = (1000, 4000)
    ones = da.ones(shape, chunks=(1000, 1000))
    print(ones)
    assert ones.sum().compute() == 4_000_000
    fancy = (ones * ones[::-1, ::-1]).mean()
    print("fancy_calculation:", fancy.compute())


def analysis(where):
    x = da.random.RandomState(0).normal(10, 2, size=(2000, 1500), chunks=(500, 500))
    data = x.compute()  # the same numbers, as NumPy, to check against

    mean, std = oxidask.compute(x.mean(axis=0), x.std(axis=0, ddof=1))
    np.testing.assert_allclose(mean, data.mean(axis=0))
    np.testing.assert_allclose(std, data.std(axis=0, ddof=1))

    high = x[x > 14]  # chunk sizes unknown until computed, as in Dask
    print(f"{where}: x[x > 14] is {high!r}")
    np.testing.assert_array_equal(high.compute(), data[data > 14])

    z = x.map_blocks(lambda b: (b - b.mean()) / b.std(), dtype=float)  # Python on each block
    gram = (z.T @ z)[:3, :3]
    blocks = [
        [(data[i:i + 500, j:j + 500] - data[i:i + 500, j:j + 500].mean())
         / data[i:i + 500, j:j + 500].std() for j in range(0, 1500, 500)]
        for i in range(0, 2000, 500)
    ]
    zn = np.block(blocks)
    np.testing.assert_allclose(gram.compute(), (zn.T @ zn)[:3, :3])
    print(f"{where}: mean/std/mask/map_blocks/matmul match NumPy")


if __name__ == "__main__":
    tutorial()
    analysis("threaded scheduler")
    with LocalCluster(n_workers=2, threads_per_worker=1) as cluster, Client(cluster):
        analysis("LocalCluster (2 worker processes)")
