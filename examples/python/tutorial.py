"""The Dask tutorial's delayed and futures sections, on oxidask.

Run it with `python examples/python/tutorial.py` after `pip install ./python`. The code is the
tutorial's, with `import dask` changed to `import oxidask as dask` (and the distributed
import likewise); sleeps are shortened so the demo takes a few seconds.
"""

import time

import oxidask as dask
from oxidask.distributed import Client, as_completed, progress, wait


def inc(x):
    time.sleep(0.1)
    return x + 1


def dec(x):
    time.sleep(0.1)
    return x - 1


def add(x, y):
    time.sleep(0.2)
    return x + y


def timed(label, f):
    start = time.perf_counter()
    value = f()
    print(f"{label:<46} {value!r:>12}   {time.perf_counter() - start:6.3f} s")
    return value


def main():
    print("== delayed: the same code, sequential then parallel")
    timed("sequential inc(1) + inc(2)", lambda: add(inc(1), inc(2)))
    x = dask.delayed(inc)(1)
    y = dask.delayed(inc)(2)
    z = dask.delayed(add)(x, y)
    timed("lazy: build the graph (no work yet)", lambda: len(z.dask))
    timed("z.compute() on the threaded scheduler", z.compute)

    print("== a lazy for-loop, persisted")
    data = list(range(8))
    results = []
    for v in data:
        results.append(dask.delayed(add)(dask.delayed(inc)(v), dask.delayed(dec)(v)))
    total = dask.delayed(sum)(results)
    (total,) = dask.persist(total)
    timed("sum of the loop (persisted)", total.compute)
    assert total.compute() == sum(2 * v for v in data)

    print("== the overhead itself: 100,000 tiny tasks")
    start = time.perf_counter()
    leaves = [dask.delayed(abs)(-i) for i in range(100_000)]
    built = time.perf_counter()
    (values,) = dask.compute(leaves)
    done = time.perf_counter()
    assert sum(values) == sum(range(100_000))
    print(f"{'built in':<46} {built - start:19.3f} s")
    print(f"{'computed in':<46} {done - built:19.3f} s ({100_000 / (done - built):,.0f} tasks/s)")

    print("== futures on a local cluster of worker processes")
    with Client(n_workers=2, threads_per_worker=2) as client:
        print(client)
        future = client.submit(inc, 10)
        timed("submit(inc, 10).result()", future.result)
        futures = client.map(inc, range(20))
        progress(futures)
        wait(futures)
        timed("gather(map(inc, range(20)))", lambda: sum(client.gather(futures)))
        timed("submit(sum, futures): futures as arguments", client.submit(sum, futures).result)
        order = [f.result() for f in as_completed(client.map(dec, range(5)))]
        print(f"{'as_completed(map(dec, range(5)))':<46} {sorted(order)!r}")
        timed("z.compute() on the cluster", z.compute)


if __name__ == "__main__":
    main()
