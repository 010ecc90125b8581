"""The `actors` benchmark suite: Dask's actors driven from a client, the same script with
`--impl dask` (`import dask.distributed`) and `--impl oxidask` (`import oxidask.distributed`),
both on a LocalCluster of 2 worker processes x 1 thread (start-up not timed).

Cases (n = calls):
  actor-roundtrip  n sequential `counter.increment().result()` calls; p50 and p99 ms per call
                   (target for oxidask: p50 <= 0.5 ms)
  actor-pipelined  n calls made without waiting, then their results; calls per second

Prints one JSON line: {"seconds", "check", extra fields}.
"""

import argparse
import json
import statistics
import sys
import time


class Counter:
    n = 0

    def __init__(self):
        self.n = 0

    def increment(self):
        self.n += 1
        return self.n


def load(impl):
    if impl == "dask":
        from dask.distributed import Client, LocalCluster
    else:
        from oxidask.distributed import Client, LocalCluster
    return Client, LocalCluster


def start(impl):
    Client, LocalCluster = load(impl)
    kwargs = dict(n_workers=2, threads_per_worker=1, processes=True)
    if impl == "dask":
        kwargs["dashboard_address"] = None
    c = LocalCluster(**kwargs)
    client = Client(c)
    client.wait_for_workers(2)
    counter = client.submit(Counter, actor=True).result()
    counter.increment().result()  # the connection to its worker is open
    return c, client, counter


def case_actor_roundtrip(impl, n):
    c, client, counter = start(impl)
    try:
        times = []
        t0 = time.perf_counter()
        for _ in range(n):
            s = time.perf_counter()
            counter.increment().result()
            times.append(time.perf_counter() - s)
        seconds = time.perf_counter() - t0
        check = counter.n
    finally:
        client.close()
        c.close()
    times.sort()
    return {
        "seconds": seconds,
        "check": check,
        "p50_ms": statistics.median(times) * 1e3,
        "p99_ms": times[int(len(times) * 0.99) - 1] * 1e3,
    }


def case_actor_pipelined(impl, n):
    c, client, counter = start(impl)
    try:
        t0 = time.perf_counter()
        futures = [counter.increment() for _ in range(n)]
        last = [f.result() for f in futures][-1]
        seconds = time.perf_counter() - t0
    finally:
        client.close()
        c.close()
    return {"seconds": seconds, "check": last, "tasks_per_s": n / seconds}


CASES = {
    "actor-roundtrip": case_actor_roundtrip,
    "actor-pipelined": case_actor_pipelined,
}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("case", choices=sorted(CASES))
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--impl", choices=["dask", "oxidask"], required=True)
    a = p.parse_args()
    out = CASES[a.case](a.impl, a.n)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    sys.exit(main())
