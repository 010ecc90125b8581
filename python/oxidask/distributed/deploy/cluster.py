"""``Cluster``: what every deployment shares (Dask's ``distributed.deploy.Cluster`` and
``SpecCluster``), and ``JobCluster``: a scheduler in this process and workers started as
"jobs" by a subclass that only says how to start and stop one job.

A *job* is one unit the deployment starts and stops: a worker process of a LocalCluster, a
batch job of SLURM/PBS/SGE running ``cluster.processes`` workers. ``plan`` lists the jobs
asked for (running or still queued); workers are matched to their job by name (a job named
``N`` runs the worker ``N``, or ``N-0``, ``N-1``, ... with several processes).

Scaling down is graceful: the workers of a job are retired through the scheduler
(``Client.retire_workers``: no new tasks, results only they hold are copied to other workers)
before the job is stopped, so no result is lost and nothing is recomputed.

# Invariants
- ``_jobs`` (JobCluster) holds every job started and not yet stopped, in start order.
- Job names are never reused within one cluster.
"""

import math
import re
import threading

from oxidask.utils import parse_bytes

_SUFFIX = re.compile(r"^(.*)-(\d+)$")


class Cluster:
    """The interface of every oxidask deployment (Dask's ``Cluster``).

    Subclasses provide ``scheduler_address``, ``plan``, ``_scale_to_jobs(n)``,
    ``scale_down(names)``, ``_close()``; the rest comes from here: ``scale``, ``adapt``,
    ``close``, ``get_logs``, ``Client(cluster)``, the context manager and the repr.

    >>> from oxidask.distributed import Client, LocalCluster
    >>> with LocalCluster(n_workers=1, dashboard_address=None) as cluster:
    ...     cluster.scale(2)
    ...     with Client(cluster) as client:
    ...         client.wait_for_workers(2)
    ...         len(client.scheduler_info()["workers"])
    2
    """

    #: Workers each job runs (``processes`` of a job queue).
    _workers_per_job = 1
    #: Threads and memory of one worker, for ``scale(cores=, memory=)``.
    _worker_threads = 1
    _worker_memory = 0
    security = None
    _adaptive = None
    _closed = False

    @property
    def scheduler_address(self):
        """The scheduler's address (``tcp://host:port``)."""
        raise NotImplementedError

    @property
    def dashboard_link(self):
        """The dashboard's status page, or ``None``."""
        return None

    @property
    def plan(self):
        """Names of the jobs asked for (running or starting)."""
        raise NotImplementedError

    @property
    def status(self):
        """``"running"`` or ``"closed"``."""
        return "closed" if self._closed else "running"

    def _job_of(self, worker_name):
        """The job running the worker ``worker_name`` (``None``: not one of ours)."""
        plan = self.plan
        if worker_name in plan:
            return worker_name
        m = _SUFFIX.match(worker_name)
        if m and m.group(1) in plan:
            return m.group(1)
        return None

    def _scale_to_jobs(self, n):
        raise NotImplementedError

    def scale(self, n=None, jobs=None, memory=None, cores=None):
        """Asks for ``n`` workers (or ``jobs`` jobs, or enough workers for ``cores`` threads or
        ``memory`` bytes): starts jobs, or retires the surplus gracefully — jobs not started
        yet first, then the workers the scheduler picks (idle, least data only they hold).
        Stops adaptive scaling if it was on.

        >>> cluster.scale(4)  # doctest: +SKIP
        >>> cluster.scale(cores=8)  # doctest: +SKIP
        """
        given = [k for k, v in (("n", n), ("jobs", jobs), ("memory", memory), ("cores", cores)) if v is not None]
        if len(given) > 1:
            raise TypeError(f"scale() takes one of n, jobs, memory, cores; got {given}")
        per_job = max(1, self._workers_per_job)
        if jobs is not None:
            target = jobs
        else:
            if memory is not None:
                if not self._worker_memory:
                    raise ValueError("scale(memory=...) needs workers with a memory limit")
                n = math.ceil(parse_bytes(memory) / self._worker_memory)
            elif cores is not None:
                n = math.ceil(cores / max(1, self._worker_threads))
            n = 0 if n is None else n
            if not isinstance(n, int) or n < 0:
                raise ValueError(f"scale: n must be a non-negative integer, got {n!r}")
            target = math.ceil(n / per_job)
        if not isinstance(target, int) or target < 0:
            raise ValueError(f"scale: jobs must be a non-negative integer, got {target!r}")
        if self._closed:
            raise RuntimeError(f"{type(self).__name__} is closed")
        if self._adaptive is not None:
            self._adaptive.stop()
            self._adaptive = None
        self._scale_to_jobs(target)

    def scale_up(self, n):
        """Asks for at least ``n`` workers (Dask's ``scale_up``)."""
        jobs = math.ceil(n / max(1, self._workers_per_job))
        if jobs > len(self.plan):
            self._scale_to_jobs(jobs)

    def scale_down(self, workers):
        """Retires these jobs (or workers, by name) gracefully and stops them."""
        raise NotImplementedError

    def adapt(
        self,
        minimum=None,
        maximum=None,
        interval=None,
        wait_count=None,
        target_duration=None,
        minimum_jobs=None,
        maximum_jobs=None,
        **kwargs,
    ):
        """Sizes the cluster to its work between ``minimum`` and ``maximum`` workers (Dask's
        ``adapt``): every ``interval`` the scheduler recommends a size (work against
        ``target_duration``, memory pressure); the cluster grows at once and retires a
        worker gracefully only after ``wait_count`` rounds naming it. Returns the
        :class:`~oxidask.distributed.deploy.Adaptive` (``stop()`` ends it).

        >>> adaptive = cluster.adapt(minimum=1, maximum=4)  # doctest: +SKIP
        """
        from oxidask.distributed.deploy.adaptive import Adaptive

        if kwargs:
            raise TypeError(f"adapt() got unexpected arguments {sorted(kwargs)}")
        per_job = max(1, self._workers_per_job)
        if minimum_jobs is not None:
            minimum = minimum_jobs * per_job
        if maximum_jobs is not None:
            maximum = maximum_jobs * per_job
        if self._adaptive is not None:
            self._adaptive.stop()
        self._adaptive = Adaptive(
            self,
            minimum=minimum,
            maximum=maximum,
            interval=interval,
            wait_count=wait_count,
            target_duration=target_duration,
        )
        return self._adaptive

    def get_logs(self, cluster=True, scheduler=True, workers=True):
        """Logs by source (``"Cluster"`` events, and each job's output when the deployment
        keeps it), as Dask's ``get_logs``."""
        out = {}
        if cluster:
            out["Cluster"] = "\n".join(self._events())
        if workers:
            out.update(self._job_logs())
        return out

    def _events(self):
        return []

    def _job_logs(self):
        return {}

    def _close(self):
        raise NotImplementedError

    def close(self, timeout=None):
        """Stops adaptive scaling, every job and the scheduler."""
        if self._closed:
            return
        if self._adaptive is not None:
            self._adaptive.stop()
            self._adaptive = None
        self._close()
        self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            if not self._closed:
                self.close()
        except Exception:
            pass

    def __repr__(self):
        try:
            jobs = len(self.plan) if not self._closed else 0
        except Exception:
            jobs = "?"
        return (
            f"{type(self).__name__}({self.scheduler_address!r}, workers={jobs if self._workers_per_job == 1 else f'{jobs} jobs'}, "
            f"status={self.status})"
        )


class JobCluster(Cluster):
    """A scheduler in this process and workers started as jobs: a subclass defines
    ``_start_job(name)`` (returns a handle) and ``_stop_job(name, handle)`` and optionally
    ``_job_log(name, handle)``.

    ``host``: the address the scheduler listens on and workers connect to (default: this
    host's address, or ``interface``'s).
    """

    _name_prefix = "job"

    def __init__(self, host=None, scheduler_port=0, dashboard_address=None, security=None, name=None):
        from oxidask._oxidask import LocalClusterCore

        self._lock = threading.RLock()
        self._jobs = {}
        self._next = 0
        self._log = []
        self.security = security
        self._prefix = name or self._name_prefix
        self._core = LocalClusterCore(
            0,
            1,
            port=int(scheduler_port or 0),
            quiet=True,
            dashboard_address=dashboard_address,
            security=None if security is None else security._core("cluster"),
            host=host or "127.0.0.1",
        )
        self._client = None

    @property
    def scheduler_address(self):
        return self._core.scheduler_address

    @property
    def dashboard_link(self):
        return self._core.dashboard_link

    @property
    def plan(self):
        with self._lock:
            return list(self._jobs)

    def _private_client(self):
        if self._client is None:
            from oxidask.distributed.client import Client

            self._client = Client(self.scheduler_address, security=self.security, set_as_default=False)
        return self._client

    def _connected(self):
        """Worker names connected, by job."""
        by_job = {}
        for w in self._private_client().scheduler_info()["workers"].values():
            j = self._job_of(str(w["name"]))
            if j is not None:
                by_job.setdefault(j, []).append(str(w["name"]))
        return by_job

    def _start_job(self, name):
        raise NotImplementedError

    def _stop_job(self, name, handle):
        raise NotImplementedError

    def _job_log(self, name, handle):
        return None

    def _events(self):
        return list(self._log)

    def _job_logs(self):
        out = {}
        with self._lock:
            jobs = dict(self._jobs)
        for name, handle in jobs.items():
            text = self._job_log(name, handle)
            if text is not None:
                out[name] = text
        return out

    def _scale_to_jobs(self, n):
        with self._lock:
            have = len(self._jobs)
            if n > have:
                for _ in range(n - have):
                    name = f"{self._prefix}-{self._next}"
                    self._next += 1
                    handle = self._start_job(name)
                    self._jobs[name] = handle
                    self._log.append(f"started {name}: {handle}")
                return
            if n == have:
                return
            excess = have - n
            connected = self._connected()
            # Jobs whose workers have not arrived go first (newest first): nothing to lose.
            waiting = [j for j in reversed(list(self._jobs)) if j not in connected][:excess]
            chosen = list(waiting)
            left = excess - len(chosen)
            if left > 0:
                if self._workers_per_job == 1:
                    retired = self._private_client().retire_workers(n=left)
                    chosen += [self._job_of(str(w["name"])) for w in retired.values()]
                    chosen = [c for c in chosen if c is not None]
                    self._stop_jobs(chosen)
                    return
                chosen += [j for j in reversed(list(self._jobs)) if j in connected and j not in chosen][:left]
        self.scale_down(chosen)

    def scale_down(self, workers):
        """Retires these jobs (or workers, by name) gracefully, then stops the jobs.

        >>> cluster.scale_down(["slurm-3"])  # doctest: +SKIP
        """
        jobs = []
        for w in workers:
            j = self._job_of(str(w))
            if j is not None and j not in jobs:
                jobs.append(j)
        if not jobs:
            return
        connected = self._connected()
        names = [w for j in jobs for w in connected.get(j, [])]
        failed = None
        if names:
            try:
                self._private_client().retire_workers(workers=names)
            except RuntimeError as e:  # those with no peer to take their data keep running
                failed = e
                self._log.append(f"retire failed: {e}")
        still = set()
        if failed is not None:
            now = self._connected()
            still = {j for j in jobs if j in now}
        self._stop_jobs([j for j in jobs if j not in still])

    def _stop_jobs(self, names):
        with self._lock:
            handles = [(n, self._jobs.pop(n)) for n in names if n in self._jobs]
        for name, handle in handles:
            self._stop_job(name, handle)
            self._log.append(f"stopped {name}")

    def _close(self):
        with self._lock:
            names = list(self._jobs)
        self._stop_jobs(names)
        if self._client is not None:
            try:
                self._client.close()
            except Exception:
                pass
            self._client = None
        self._core.close()
