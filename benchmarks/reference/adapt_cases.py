"""The `adapt` benchmark suite: adaptive scaling under a bursty workload, the same script with
`--impl dask` (`distributed.LocalCluster(...).adapt(...)`) and `--impl oxidask`
(`oxidask.distributed.LocalCluster(...).adapt(...)`), written as a user would.

Case `bursty` (n = tasks in the first burst):
  a LocalCluster of worker processes x 1 thread, no workers at the start, adapt(minimum=1,
  maximum=4) with Dask's defaults otherwise (interval 1 s, wait_count 3, target_duration 5 s);
  idle 5 s; n tasks of 0.1 s (time.sleep, so the 2-core machine is not the limit) submitted at
  once; idle 15 s after they finish; a second burst of n // 2 + n // 10 tasks; idle until
  the cluster is back at its minimum (at most 40 s). A thread samples the number of workers
  the scheduler knows (`client.scheduler_info()["workers"]`) every 0.25 s.

Reports (seconds from the burst's submission unless said):
  first_scale_up_s   until the first sample with more workers than at submission (burst 1)
  peak_workers       the most workers seen
  burst1_s, burst2_s submission to all results gathered
  scale_down_s       from the second burst's completion to the first sample at the minimum
                     after which it stays there
  worker_seconds     workers integrated over the run (start to scaled down after burst 2)
  seconds            burst1_s + burst2_s (the harness's ratio is Dask's over ours)
  check              the sum of all results (exact integers)
and writes the whole run, samples included, to $OXIDASK_BENCH_DATA/adapt-<impl>.json.

`adapt_cases.py timeline` renders the two files as the markdown timeline (workers per second)
of BENCHMARKS.md.

`--impl oxidask-gateway` runs the same workload on a cluster of an `oxidask gateway` started
by the script (the gateway adapts it from the scheduler's adaptive_target, as LocalCluster does).

Prints one JSON line: {"seconds", "check", extra fields}.
"""

import argparse
import json
import os
import sys
import threading
import time

MINIMUM = 1
MAXIMUM = 4
TASK_S = 0.1
IDLE_BEFORE = 5.0
IDLE_BETWEEN = 15.0
SCALE_DOWN_LIMIT = 40.0
SAMPLE_EVERY = 0.25


def local_cluster(impl):
    """LocalCluster(n_workers=0).adapt(minimum, maximum) as a user writes it; (client,
    sampling client, close)."""
    if impl == "dask":
        from distributed import Client, LocalCluster
    else:
        from oxidask.distributed import Client, LocalCluster
    cluster = LocalCluster(
        n_workers=0, threads_per_worker=1, processes=True, dashboard_address=None
    )
    cluster.adapt(minimum=MINIMUM, maximum=MAXIMUM)
    client = Client(cluster)
    sampler_client = Client(cluster.scheduler_address, set_as_default=False)

    def close():
        sampler_client.close()
        client.close()
        cluster.close()

    return client, sampler_client, close


def gateway_cluster(impl):
    """An `oxidask gateway` (local worker processes, its default adapt interval 1 s and
    wait count 3) started here; a cluster of 1-thread workers adapting between minimum and
    maximum, as examples/python/gateway_cluster.py does; (client, sampling client, close)."""
    import subprocess
    import tempfile
    from pathlib import Path

    from oxidask.distributed import Client
    from oxidask.gateway import BearerAuth, Gateway

    workdir = tempfile.TemporaryDirectory()
    token = "bench-0123456789abcdef"
    tokens = Path(workdir.name) / "tokens"
    tokens.write_text(f"bench {token}\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "oxidask", "gateway", "--address", "127.0.0.1:0",
         "--tokens-file", str(tokens), "--work-dir", str(Path(workdir.name) / "clusters")],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    found = []
    ready = threading.Event()

    def read():
        for line in proc.stderr:
            if "listening at" in line and not found:
                found.append(line.rsplit(" ", 1)[1].strip())
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(60):
        proc.kill()
        raise RuntimeError("the gateway did not start")
    gateway = Gateway(address=found[0], auth=BearerAuth(token))
    cluster = gateway.new_cluster(worker_threads=1)
    cluster.adapt(minimum=MINIMUM, maximum=MAXIMUM)
    client = cluster.get_client()
    sampler_client = Client(cluster.scheduler_address, security=cluster.security,
                            set_as_default=False)

    def close():
        sampler_client.close()
        client.close()
        cluster.shutdown()
        gateway.close()
        proc.terminate()
        proc.wait(30)
        workdir.cleanup()

    return client, sampler_client, close


IMPLS = {"dask": local_cluster, "oxidask": local_cluster, "oxidask-gateway": gateway_cluster}


def work(i):
    """One task of the burst: 0.1 s of waiting, then a result to check."""
    time.sleep(TASK_S)
    return i * i


class Sampler(threading.Thread):
    """Counts the scheduler's workers every SAMPLE_EVERY seconds: [(t, workers)]."""

    def __init__(self, client, t0):
        super().__init__(daemon=True)
        self.client = client
        self.t0 = t0
        self.samples = []
        self.stopped = threading.Event()

    def run(self):
        tick = 0
        while not self.stopped.is_set():
            n = len(self.client.scheduler_info()["workers"])
            self.samples.append((round(time.perf_counter() - self.t0, 3), n))
            tick += 1
            delay = self.t0 + tick * SAMPLE_EVERY - time.perf_counter()
            if delay > 0:
                self.stopped.wait(delay)

    def now(self):
        return self.samples[-1][1] if self.samples else 0


def burst(client, start, count, t0):
    """Submits `count` tasks at once, gathers them; (submitted at, done at, sum)."""
    submitted = time.perf_counter() - t0
    futures = client.map(work, range(start, start + count), pure=False)
    total = sum(client.gather(futures))
    done = time.perf_counter() - t0
    del futures
    return submitted, done, total


def first_above(samples, since, level):
    for t, n in samples:
        if t >= since and n > level:
            return t - since
    return None


def settled_at_minimum(samples, since):
    """The first time after `since` from which every sample is at the minimum."""
    at = None
    for t, n in samples:
        if t < since:
            continue
        if n == MINIMUM:
            at = t if at is None else at
        else:
            at = None
    return at


def case_bursty(impl, n):
    client, sampler_client, close = IMPLS[impl](impl)
    t0 = time.perf_counter()
    sampler = Sampler(sampler_client, t0)
    sampler.start()
    try:
        time.sleep(IDLE_BEFORE)
        workers_before1 = sampler.now()
        s1, d1, sum1 = burst(client, 0, n, t0)
        time.sleep(IDLE_BETWEEN)
        workers_before2 = sampler.now()
        n2 = n // 2 + n // 10
        s2, d2, sum2 = burst(client, n, n2, t0)
        deadline = time.perf_counter() + SCALE_DOWN_LIMIT
        while time.perf_counter() < deadline:
            if sampler.now() == MINIMUM and len(sampler.samples) > 0 and sampler.samples[-1][0] > d2:
                break
            time.sleep(SAMPLE_EVERY)
        time.sleep(1.0)  # a few samples at the minimum, so "stays there" is seen
    finally:
        sampler.stopped.set()
        sampler.join()
        close()
    samples = sampler.samples
    expected = sum(i * i for i in range(n + n2))
    down_at = settled_at_minimum(samples, d2)
    end = down_at if down_at is not None else samples[-1][0]
    worker_seconds = 0.0
    for (t, k), (t_next, _) in zip(samples, samples[1:]):
        if t >= end:
            break
        worker_seconds += k * (min(t_next, end) - t)
    out = {
        "seconds": (d1 - s1) + (d2 - s2),
        "check": sum1 + sum2,
        "expected": expected,
        "exact": sum1 + sum2 == expected,
        "first_scale_up_s": first_above(samples, s1, workers_before1),
        "first_scale_up2_s": first_above(samples, s2, workers_before2),
        "workers_at_burst1": workers_before1,
        "workers_at_burst2": workers_before2,
        "peak_workers": max(k for _, k in samples),
        "burst1_s": d1 - s1,
        "burst2_s": d2 - s2,
        "scale_down_s": None if down_at is None else down_at - d2,
        "worker_seconds": worker_seconds,
        "n1": n,
        "n2": n2,
        "events": {"burst1": [s1, d1], "burst2": [s2, d2], "scaled_down": down_at},
    }
    # None (never scaled up/down) is left out: the harness takes medians of numbers.
    out = {k: round(v, 3) if isinstance(v, float) else v for k, v in out.items() if v is not None}
    out["events"] = {k: [round(x, 3) for x in v] if isinstance(v, list) else v
                     for k, v in out["events"].items()}
    data = os.environ.get("OXIDASK_BENCH_DATA", os.path.join(os.path.dirname(__file__), "..", "data"))
    os.makedirs(data, exist_ok=True)
    with open(os.path.join(data, f"adapt-{impl}.json"), "w") as f:
        json.dump({**out, "impl": impl, "samples": samples}, f)
    return out


CASES = {"bursty": case_bursty}


def timeline(paths):
    """Markdown: one row per second, each side's workers (the most seen in that second) and
    the burst running then, if any."""
    runs = []
    for p in paths:
        with open(p) as f:
            runs.append(json.load(f))
    last = max(int(r["samples"][-1][0]) for r in runs)
    head = "| t (s) | " + " | ".join(f"{r['impl']} workers" for r in runs) + " |"
    lines = [head, "|" + "---|" * (1 + len(runs))]

    def phase(r, sec):
        (s1, d1), (s2, d2) = r["events"]["burst1"], r["events"]["burst2"]
        for name, s, d in (("burst 1", s1, d1), ("burst 2", s2, d2)):
            if s < sec + 1 and d > sec:
                return name
        return "idle"

    for sec in range(last + 1):
        cells = []
        for r in runs:
            ks = [k for t, k in r["samples"] if sec <= t < sec + 1]
            if not ks:
                cells.append("")
                continue
            k = max(ks)
            doing = phase(r, sec)
            cells.append(f"{'#' * k} {k}" + ("" if doing == "idle" else f" ({doing})"))
        lines.append(f"| {sec} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "timeline":
        data = os.environ.get("OXIDASK_BENCH_DATA", os.path.join(os.path.dirname(__file__), "..", "data"))
        paths = sys.argv[2:] or [
            os.path.join(data, f"adapt-{i}.json")
            for i in ("oxidask", "dask", "oxidask-gateway")
            if os.path.exists(os.path.join(data, f"adapt-{i}.json"))
        ]
        print(timeline(paths))
        return 0
    p = argparse.ArgumentParser()
    p.add_argument("case", choices=sorted(CASES))
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--impl", choices=sorted(IMPLS), required=True)
    a = p.parse_args()
    out = CASES[a.case](a.impl, a.n)
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
