"""``LocalCluster``: a scheduler in this process and workers on this machine."""

import os
import sys

from oxidask._oxidask import LocalClusterCore
from oxidask.distributed.deploy.cluster import Cluster
from oxidask.utils import parse_bytes

def _total_memory():
    """This machine's memory, or its container's cgroup limit when smaller (as Dask's
    ``memory_limit="auto"``; the same rule as ``oxidask worker --memory-limit auto``)."""
    machine = 0
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    machine = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit() and (machine == 0 or int(text) < machine):
            return int(text)
        break
    return machine


def _cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _processes_and_threads(n):
    """Dask's split of ``n`` cores into worker processes and threads per worker."""
    if n <= 4:
        return n, 1
    factors = [f for f in range(1, n + 1) if n % f == 0 and f * f >= n]
    p = min(factors)
    return p, n // p


class LocalCluster(Cluster):
    """A scheduler (in this process) and workers on this machine.

    Workers are processes running ``python -m oxidask worker`` (``processes=True``, the
    default: Python code holding the GIL runs in parallel) or threads of this process.
    Defaults as Dask's: one worker process per core up to four cores; memory divided among
    them; a dashboard on port 8787 (``dashboard_address=None`` for none; loopback only by
    default, ``":8787"`` for every interface). ``security=Security.temporary()`` (or
    ``security=True``) makes every connection TLS, as in Dask; clients made with
    ``Client(cluster)`` use the cluster's credentials.

    ``scale(n)`` starts worker processes (or threads) or retires the surplus gracefully
    (results they hold move to the others first); ``adapt(minimum=, maximum=)`` sizes the
    cluster to its work (see :class:`~oxidask.distributed.deploy.Cluster`).

    >>> from oxidask.distributed import Client, LocalCluster
    >>> cluster = LocalCluster(n_workers=2, threads_per_worker=1)
    >>> client = Client(cluster)
    >>> cluster.scale(3)
    """

    def __init__(
        self,
        n_workers=None,
        threads_per_worker=None,
        processes=True,
        memory_limit="auto",
        scheduler_port=0,
        host=None,
        silence_logs=True,
        dashboard_address="127.0.0.1:8787",
        worker_class=None,
        security=None,
        **kwargs,
    ):
        unknown = set(kwargs) - {"asynchronous", "loop", "protocol", "interface", "worker_dashboard_address", "name"}
        if unknown:
            raise TypeError(f"LocalCluster got unexpected arguments: {sorted(unknown)}")
        cores = _cpu_count()
        if n_workers is None and threads_per_worker is None:
            if processes:
                n_workers, threads_per_worker = _processes_and_threads(cores)
            else:
                n_workers, threads_per_worker = 1, cores
        elif n_workers is None:
            n_workers = max(1, cores // threads_per_worker)
        elif threads_per_worker is None:
            threads_per_worker = max(1, cores // max(n_workers, 1))
        if memory_limit in (None, 0, "0"):
            limit = 0
        elif memory_limit == "auto":
            limit = _total_memory() // max(n_workers, 1)
        elif isinstance(memory_limit, float) and 0 < memory_limit <= 1:
            limit = int(_total_memory() * memory_limit)
        else:
            limit = parse_bytes(memory_limit)
        command = None
        env = []
        if processes:
            command = [sys.executable, "-m", "oxidask"]
            # Workers see the modules this process sees (as multiprocessing's spawn does).
            env = [("OXIDASK_WORKER_SYS_PATH", os.pathsep.join(p for p in sys.path if p))]
        if security is True:
            from oxidask.distributed.security import Security

            security = Security.temporary()
        self.security = security or None
        self._core = LocalClusterCore(
            n_workers,
            threads_per_worker,
            memory_limit=limit,
            worker_command=command,
            env=env,
            port=int(scheduler_port or 0),
            quiet=bool(silence_logs),
            dashboard_address=dashboard_address,
            security=None if self.security is None else self.security._core("cluster"),
            host=host,
        )
        self.n_workers = n_workers
        self.threads_per_worker = threads_per_worker
        self.processes = processes
        self.memory_limit = limit

    @property
    def scheduler_address(self):
        """The scheduler's address (``tcp://127.0.0.1:PORT``)."""
        return self._core.scheduler_address

    @property
    def dashboard_link(self):
        """The dashboard's status page (``http://127.0.0.1:8787/status``; another port if that
        one was taken), or ``None`` with ``dashboard_address=None``."""
        return self._core.dashboard_link

    @property
    def status(self):
        """``"running"`` or ``"closed"``."""
        return "closed" if self._core.closed else "running"

    @property
    def _closed(self):
        return self._core.closed

    @property
    def _worker_threads(self):
        return self.threads_per_worker

    @property
    def _worker_memory(self):
        return self.memory_limit

    def worker_pids(self):
        """Process ids of the worker processes (empty with ``processes=False``)."""
        return self._core.worker_pids()

    @property
    def plan(self):
        """Names of the workers asked for (``worker-0``, ...; connected or starting)."""
        return list(self._core.plan())

    def _scale_to_jobs(self, n):
        self._core.scale(int(n))

    def scale_down(self, workers):
        """Retires these workers (names) gracefully and stops them.

        >>> cluster.scale_down(["worker-1"])  # doctest: +SKIP
        """
        names = [str(w) for w in workers]
        if names:
            self._core.scale_down(names)

    def _events(self):
        return list(self._core.logs())

    def _close(self):
        self._core.close()

    def close(self, timeout=None):
        """Stops adaptive scaling, the workers and the scheduler."""
        if self._adaptive is not None:
            self._adaptive.stop()
            self._adaptive = None
        self._core.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        kind = "processes" if self.processes else "threads"
        n = 0 if self._core.closed else len(self.plan)
        return (
            f"LocalCluster({self.scheduler_address!r}, workers={n}, "
            f"threads={n * self.threads_per_worker}, {kind}, status={self.status})"
        )
