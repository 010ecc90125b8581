"""The `coordination` benchmark suite: Dask's distributed data structures driven from a
client, the same script with `--impl dask` (`import dask.distributed`) and `--impl oxidask`
(`import oxidask.distributed`).

Cases (n = operations):
  queue-put-get   n Queue.put of small ints, then n Queue.get, from the client on a LocalCluster
                  of 2 worker processes x 1 thread (the cluster's start-up is not timed);
                  reports puts+gets per second
  queue-tasks     a producer task puts n ints on a Queue(maxsize=100) while a consumer task on
                  the other worker gets and sums them (both through the worker's client)
  lock-roundtrip  n Lock.acquire + release pairs from the client; p50 ms per pair

Prints one JSON line: {"seconds", "check", extra fields}.
"""

import argparse
import json
import statistics
import sys
import time


def load(impl):
    if impl == "dask":
        from dask.distributed import Client, LocalCluster, Lock, Queue
    else:
        from oxidask.distributed import Client, LocalCluster, Lock, Queue
    return Client, LocalCluster, Lock, Queue


def cluster(Client, LocalCluster, impl):
    kwargs = dict(n_workers=2, threads_per_worker=1, processes=True)
    if impl == "dask":
        kwargs["dashboard_address"] = None
    c = LocalCluster(**kwargs)
    client = Client(c)
    client.wait_for_workers(2)
    return c, client


def produce(impl, name, n):
    Queue = load(impl)[3]
    q = Queue(name, maxsize=100)
    for i in range(n):
        q.put(i)
    return n


def consume(impl, name, n):
    Queue = load(impl)[3]
    q = Queue(name, maxsize=100)
    return sum(q.get() for _ in range(n))


def case_queue_put_get(impl, n):
    Client, LocalCluster, Lock, Queue = load(impl)
    c, client = cluster(Client, LocalCluster, impl)
    try:
        q = Queue("bench")
        t0 = time.perf_counter()
        for i in range(n):
            q.put(i)
        total = sum(q.get() for _ in range(n))
        seconds = time.perf_counter() - t0
    finally:
        client.close()
        c.close()
    return {"seconds": seconds, "check": total, "tasks_per_s": 2 * n / seconds}


def case_queue_tasks(impl, n):
    Client, LocalCluster, Lock, Queue = load(impl)
    c, client = cluster(Client, LocalCluster, impl)
    try:
        t0 = time.perf_counter()
        p = client.submit(produce, impl, "jobs", n, pure=False)
        s = client.submit(consume, impl, "jobs", n, pure=False)
        total = s.result()
        assert p.result() == n
        seconds = time.perf_counter() - t0
    finally:
        client.close()
        c.close()
    return {"seconds": seconds, "check": total, "tasks_per_s": 2 * n / seconds}


def case_lock_roundtrip(impl, n):
    Client, LocalCluster, Lock, Queue = load(impl)
    c, client = cluster(Client, LocalCluster, impl)
    try:
        lock = Lock("bench")
        times = []
        t0 = time.perf_counter()
        for _ in range(n):
            s = time.perf_counter()
            lock.acquire()
            lock.release()
            times.append(time.perf_counter() - s)
        seconds = time.perf_counter() - t0
    finally:
        client.close()
        c.close()
    times.sort()
    return {
        "seconds": seconds,
        "check": n,
        "p50_ms": statistics.median(times) * 1e3,
        "p99_ms": times[int(len(times) * 0.99) - 1] * 1e3,
    }


CASES = {
    "queue-put-get": case_queue_put_get,
    "queue-tasks": case_queue_tasks,
    "lock-roundtrip": case_lock_roundtrip,
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
