"""The `python` benchmark suite: one script per case, run with `--impl dask` (`import dask`)
and `--impl oxidask` (`import oxidask as dask`), the code otherwise identical.

Cases (n = tasks, or round trips):
  map           client.map of n no-op tasks on a LocalCluster of 2 worker processes x 1 thread,
                then gather (the cluster's start-up is not timed)
  delayed-tree  a tree of ~n delayed tasks (n/2 leaves, pairwise adds) built and computed on
                the local threaded scheduler
  roundtrip     n sequential submit -> result on the same cluster; p50/p99 in ms
  startup       LocalCluster(2 worker processes x 1 thread) + Client until both workers joined
  bag-word-count  dask.bag word count over n generated lines in 8 text files (written before
                the clock starts): read_text, str.split, flatten, frequencies, topk(10) and
                count computed together with each library's default scheduler for bags (Dask:
                processes; oxidask: threads)

Prints one JSON line: {"seconds", "check", extra fields}.
"""

import argparse
import json
import statistics
import sys
import time


def noop(x):
    return x


def inc(x):
    return x + 1


def add(x, y):
    return x + y


def load(impl):
    if impl == "dask":
        import dask
        from dask.distributed import Client, LocalCluster
    else:
        import oxidask as dask
        from oxidask.distributed import Client, LocalCluster
    return dask, Client, LocalCluster


def cluster(Client, LocalCluster, impl):
    kwargs = dict(n_workers=2, threads_per_worker=1, processes=True)
    if impl == "dask":
        kwargs["dashboard_address"] = None
    c = LocalCluster(**kwargs)
    client = Client(c)
    client.wait_for_workers(2)
    return c, client


def case_map(dask, Client, LocalCluster, impl, n):
    c, client = cluster(Client, LocalCluster, impl)
    try:
        t0 = time.perf_counter()
        futures = client.map(noop, range(n))
        values = client.gather(futures)
        seconds = time.perf_counter() - t0
    finally:
        client.close()
        c.close()
    return {"seconds": seconds, "check": sum(values), "tasks_per_s": n / seconds}


def case_delayed_tree(dask, Client, LocalCluster, impl, n):
    t0 = time.perf_counter()
    d_inc = dask.delayed(inc)
    d_add = dask.delayed(add)
    layer = [d_inc(i) for i in range(n // 2)]
    while len(layer) > 1:
        nxt = [d_add(layer[i], layer[i + 1]) for i in range(0, len(layer) - 1, 2)]
        if len(layer) % 2:
            nxt.append(layer[-1])
        layer = nxt
    (total,) = dask.compute(layer[0], scheduler="threads")
    seconds = time.perf_counter() - t0
    tasks = n // 2 + (n // 2 - 1)
    return {"seconds": seconds, "check": total, "tasks_per_s": tasks / seconds}


def case_roundtrip(dask, Client, LocalCluster, impl, n):
    c, client = cluster(Client, LocalCluster, impl)
    try:
        client.submit(inc, -1).result()  # warm up
        times = []
        total = 0
        t0 = time.perf_counter()
        for i in range(n):
            s = time.perf_counter()
            total += client.submit(inc, i, pure=False).result()
            times.append(time.perf_counter() - s)
        seconds = time.perf_counter() - t0
    finally:
        client.close()
        c.close()
    times.sort()
    return {
        "seconds": seconds,
        "check": total,
        "p50_ms": statistics.median(times) * 1e3,
        "p99_ms": times[int(len(times) * 0.99) - 1] * 1e3,
    }


def case_startup(dask, Client, LocalCluster, impl, n):
    t0 = time.perf_counter()
    c, client = cluster(Client, LocalCluster, impl)
    seconds = time.perf_counter() - t0
    workers = len(client.scheduler_info()["workers"])
    client.close()
    c.close()
    return {"seconds": seconds, "check": workers}


BAG_WORDS = ("the quick brown fox jumps over lazy dog dask bag rust python oxidask count "
             "words lines files partitions tasks workers scheduler graph").split()


def case_bag_word_count(dask, Client, LocalCluster, impl, n):
    import importlib
    import os
    import random
    import shutil
    import tempfile

    db = importlib.import_module(dask.__name__ + ".bag")
    rng = random.Random(0)
    weights = [1 / (i + 1) for i in range(len(BAG_WORDS))]
    directory = tempfile.mkdtemp(prefix="bag-word-count-")
    try:
        for i in range(8):
            with open(os.path.join(directory, f"part-{i}.txt"), "w") as f:
                for _ in range(n // 8):
                    f.write(" ".join(rng.choices(BAG_WORDS, weights, k=rng.randint(1, 12))) + "\n")
        t0 = time.perf_counter()
        words = db.read_text(os.path.join(directory, "*.txt")).str.split().flatten()
        counts = words.frequencies()
        top = counts.topk(10, key=lambda kv: kv[1])
        freq, top10, total = dask.compute(counts, top, words.count())
        seconds = time.perf_counter() - t0
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return {"seconds": seconds, "check": [total, len(freq), [c for _, c in top10]],
            "words_per_s": total / seconds}


CASES = {
    "bag-word-count": case_bag_word_count,
    "map": case_map,
    "delayed-tree": case_delayed_tree,
    "roundtrip": case_roundtrip,
    "startup": case_startup,
}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("case", choices=sorted(CASES))
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--impl", choices=["dask", "oxidask"], required=True)
    a = p.parse_args()
    dask, Client, LocalCluster = load(a.impl)
    out = CASES[a.case](dask, Client, LocalCluster, a.impl, a.n)
    print(json.dumps(out))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
