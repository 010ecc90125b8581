"""``Adaptive``: a thread that sizes a cluster to its work, as Dask's ``Adaptive``.

Every ``interval`` it asks the scheduler how many workers the queued and running work needs
(``Client.adaptive_target``: work against ``target_duration``, memory pressure) and which
workers it would retire first (idle, least unique data). The decision goes through the Rust
``AdaptiveCore`` (the same hysteresis as Rust's ``Cluster::adapt``): the cluster grows at
once, and a worker is retired (gracefully: its results move first) only once it was named
``wait_count`` rounds in a row.

# Invariants
- Only the thread started by ``__init__`` (or a caller of ``step``) changes the cluster.
- ``log`` holds every decision other than "same", and every failed round.
"""

import math
import threading
import time

from oxidask._oxidask import AdaptiveCore
from oxidask.utils import parse_timedelta


def _config(key, default):
    from oxidask import config

    return config.get(f"distributed.adaptive.{key}", default)


class Adaptive:
    """Adaptive scaling of ``cluster`` between ``minimum`` and ``maximum`` workers.

    Made by ``cluster.adapt(...)``; ``stop()`` ends it (the cluster keeps its workers).
    Defaults as Dask's ``distributed.adaptive.*``: ``interval="1s"``, ``wait_count=3``,
    ``target_duration="5s"``, ``minimum=0``, ``maximum=inf``.

    >>> adaptive = cluster.adapt(minimum=1, maximum=4)  # doctest: +SKIP
    >>> adaptive.stop()  # doctest: +SKIP
    """

    def __init__(
        self,
        cluster,
        minimum=None,
        maximum=None,
        interval=None,
        wait_count=None,
        target_duration=None,
        start=True,
    ):
        minimum = _config("minimum", 0) if minimum is None else minimum
        maximum = _config("maximum", math.inf) if maximum is None else maximum
        for what, v in (("minimum", minimum), ("maximum", maximum)):
            if not (isinstance(v, int) or v == math.inf) or v < 0:
                raise ValueError(f"adapt: {what} must be a non-negative integer (or inf), got {v!r}")
        if minimum > maximum:
            raise ValueError(
                f"adapt: minimum ({minimum}) is larger than maximum ({maximum}); give minimum <= maximum"
            )
        self.cluster = cluster
        self.minimum = minimum
        self.maximum = maximum
        self.interval = parse_timedelta(_config("interval", "1s") if interval is None else interval)
        self.wait_count = int(_config("wait-count", 3) if wait_count is None else wait_count)
        self.target_duration = parse_timedelta(
            _config("target-duration", "5s") if target_duration is None else target_duration
        )
        if not self.interval or self.interval <= 0:
            raise ValueError(f"adapt: interval must be a positive duration, got {interval!r}")
        if not self.target_duration or self.target_duration <= 0:
            raise ValueError(f"adapt: target_duration must be a positive duration, got {target_duration!r}")
        if self.wait_count < 1:
            raise ValueError(f"adapt: wait_count must be at least 1, got {wait_count!r}")
        big = 2**62
        self._core = AdaptiveCore(
            int(minimum), big if maximum == math.inf else int(maximum), self.wait_count
        )
        self.log = []
        self._stop = threading.Event()
        self._client = None
        self._thread = None
        if start:
            self._thread = threading.Thread(target=self._run, name="oxidask-adaptive", daemon=True)
            self._thread.start()

    def _get_client(self):
        if self._client is None:
            from oxidask.distributed.client import Client

            self._client = Client(
                self.cluster.scheduler_address,
                security=getattr(self.cluster, "security", None),
                set_as_default=False,
            )
        return self._client

    def recommendations(self):
        """One round's decision without applying it: ``("same", None)``, ``("up", n)`` or
        ``("down", [job names])``; ``n`` and the names count the cluster's jobs (a job runs
        ``cluster.processes`` workers)."""
        client = self._get_client()
        rec = client.adaptive_target(self.target_duration)
        workers = client.scheduler_info()["workers"]
        bare = lambda a: a.split("://")[-1]  # noqa: E731
        name_of = {bare(a): w["name"] for a, w in workers.items()}
        job_of = self.cluster._job_of
        per_job = max(1, int(getattr(self.cluster, "_workers_per_job", 1)))
        target_jobs = math.ceil(rec["target"] / per_job)
        observed = []
        for w in workers.values():
            j = job_of(str(w["name"]))
            if j is not None and j not in observed:
                observed.append(j)
        to_close = []
        for a in rec["workers_to_close"]:
            j = job_of(str(name_of.get(bare(a), "")))
            if j is not None and j not in to_close:
                to_close.append(j)
        plan = list(self.cluster.plan)
        return self._core.recommend(target_jobs, plan, observed, to_close)

    def step(self):
        """Runs one round now (the thread calls this every ``interval``); returns its
        decision."""
        decision = self.recommendations()
        kind, arg = decision
        if kind == "up":
            self.cluster._scale_to_jobs(arg)
        elif kind == "down":
            self.cluster.scale_down(arg)
        if kind != "same":
            self.log.append((time.time(), kind, arg))
        return decision

    def _run(self):
        while not self._stop.is_set():
            try:
                self.step()
            except Exception as e:  # a failed round is logged; the next one tries again
                if self._stop.is_set():
                    break
                self.log.append((time.time(), "error", repr(e)))
            self._stop.wait(self.interval)

    def stop(self):
        """Stops adapting; the cluster keeps its current workers."""
        self._stop.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join()
        self._thread = None
        if self._client is not None:
            try:
                self._client.close()
            except Exception:
                pass
            self._client = None

    def __repr__(self):
        state = "running" if self._thread is not None else "stopped"
        return f"<Adaptive minimum={self.minimum} maximum={self.maximum} {state}>"
