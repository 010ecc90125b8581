"""Reference side of suite `distributed`: Dask's LocalCluster (two worker processes, one
thread each, no dashboard) on the same shapes as oxidask-bench. Prints
{"seconds": ..., "check": ..., ...}. The cluster starts outside the timed region except in
`startup`.
"""
import argparse
import json
import logging
import time

import dask
from distributed import Client, LocalCluster, wait


def inc(x):
    return x + 1


def total(xs):
    return sum(xs)


def cluster():
    return LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )


def tree_graph(n):
    leaves = max(n // 2, 1)
    dsk = {("inc", i): (inc, i) for i in range(leaves)}
    level = [("inc", i) for i in range(leaves)]
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
    return dsk, level[0]


def worker_startup(n, nanny):
    """`dask worker` started n times (with its nanny or --no-nanny): spawn to registered with
    the scheduler, polled every millisecond; the median."""
    import os
    import signal
    import subprocess
    import sys

    dask_cmd = os.path.join(os.path.dirname(sys.executable), "dask")
    times = []
    with LocalCluster(
        n_workers=0, processes=True, dashboard_address=None, silence_logs=logging.ERROR
    ) as c, Client(c) as client:
        for i in range(max(n, 1)):
            args = [dask_cmd, "worker", c.scheduler_address, "--nthreads", "1",
                    "--no-dashboard", "--name", f"s{i}"]
            if not nanny:
                args.append("--no-nanny")
            start = time.perf_counter()
            p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            while not client.scheduler_info()["workers"]:
                if time.perf_counter() - start > 60:
                    p.kill()
                    raise SystemExit("the worker did not register within 60 s")
                time.sleep(0.001)
            times.append(time.perf_counter() - start)
            p.send_signal(signal.SIGTERM)
            p.wait()
            while client.scheduler_info()["workers"]:
                time.sleep(0.001)
    times.sort()
    print(json.dumps({"seconds": times[len(times) // 2], "check": len(times),
                      "min_s": times[0], "max_s": times[-1]}))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("case")
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--no-nanny", action="store_true")
    a = p.parse_args()
    n = a.n
    if a.case == "worker-startup":
        worker_startup(n, nanny=not a.no_nanny)
        return
    if a.case == "startup":
        start = time.perf_counter()
        with cluster() as c, Client(c) as client:
            client.wait_for_workers(2)
            seconds = time.perf_counter() - start
            check = len(client.scheduler_info()["workers"])
        print(json.dumps({"seconds": seconds, "check": check}))
        return
    with cluster() as c, Client(c) as client:
        client.wait_for_workers(2)
        wait(client.map(inc, range(10), pure=False))  # warm up
        extra = {}
        start = time.perf_counter()
        if a.case == "map":
            check = sum(client.gather(client.map(inc, range(n))))
        elif a.case == "tree":
            dsk, root = tree_graph(n)
            check = client.get(dsk, root)
        elif a.case == "roundtrip":
            lat = []
            check = 0
            for i in range(n):
                t = time.perf_counter()
                check += client.submit(inc, i).result()
                lat.append((time.perf_counter() - t) * 1e3)
            lat.sort()
            extra = {"p50_ms": lat[len(lat) // 2], "p99_ms": lat[len(lat) * 99 // 100]}
        elif a.case == "scheduler-alone":
            # Dask has no zero-work workers: no-op tasks are the closest shape.
            futures = client.map(inc, range(n))
            wait(futures)
            check = len(futures)
        else:
            raise SystemExit(f"unknown case {a.case}")
        seconds = time.perf_counter() - start
        tasks = (max(n // 2, 1) * 2 - 1) if a.case == "tree" else n
        print(json.dumps({"seconds": seconds, "check": check, "tasks_per_s": tasks / seconds, **extra}))


if __name__ == "__main__":
    main()
