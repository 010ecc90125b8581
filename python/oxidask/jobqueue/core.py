"""``JobQueueCluster``: workers as batch jobs of an HPC job queue, as dask-jobqueue.

The scheduler runs in this process (as LocalCluster's), bound to an address the compute
nodes reach (``host=`` or ``interface=``). Each job runs one ``python -m oxidask worker``
(a nanny and ``processes`` worker processes sharing the job's ``cores`` and ``memory``); its
script comes from one template whose directive lines differ per queue system
(``#SBATCH``, ``#PBS``, ``#$``). ``scale``/``adapt`` submit jobs (``sbatch``/``qsub``) and
cancel them (``scancel``/``qdel``) after their workers were retired gracefully.

Settings come from the arguments, else from the configuration ``jobqueue.<system>.<key>``
(``oxidask.config.set``, or the environment: ``OXIDASK_JOBQUEUE__SLURM__CORES=8``), else the
defaults below (dask-jobqueue's).

# Invariants
- ``job_script()`` is exactly what is submitted for a job, but for the job's name.
- A job is in ``plan`` from its submission until it is cancelled.
"""

import ast
import math
import os
import re
import shlex
import socket
import subprocess
import sys
import tempfile

from oxidask.distributed.cluster import _processes_and_threads
from oxidask.distributed.deploy.cluster import JobCluster
from oxidask.utils import parse_bytes, parse_timedelta

_DEFAULTS = {
    "name": "oxidask-worker",
    "cores": None,
    "memory": None,
    "processes": None,
    "interface": None,
    "death-timeout": 60,
    "local-directory": None,
    "worker-extra-args": [],
    "shebang": "#!/usr/bin/env bash",
    "queue": None,
    "account": None,
    "project": None,
    "walltime": "00:30:00",
    "job-script-prologue": [],
    "job-extra-directives": [],
    "job-directives-skip": [],
    "submit-command-extra": [],
    "cancel-command-extra": [],
    "log-directory": None,
    "resource-spec": None,
    "job-cpu": None,
    "job-mem": None,
    "python": None,
    "scheduler-options": {},
}


def _parse_env_value(text):
    try:
        import yaml

        return yaml.safe_load(text)
    except Exception:
        try:
            return ast.literal_eval(text)
        except Exception:
            return text


def config_value(system, key, default=None):
    """``jobqueue.<system>.<key>`` from ``oxidask.config`` or the environment
    (``OXIDASK_JOBQUEUE__<SYSTEM>__<KEY>``, ``-`` as ``_``), else ``default``.

    >>> config_value("slurm", "walltime", "00:30:00")  # doctest: +SKIP
    '00:30:00'
    """
    from oxidask import config

    value = config.get(f"jobqueue.{system}.{key}", None)
    if value is not None:
        return value
    env = f"OXIDASK_JOBQUEUE__{system.upper()}__{key.upper().replace('-', '_')}"
    if env in os.environ:
        return _parse_env_value(os.environ[env])
    return default


def _interface_address(name):
    """The IPv4 address of network interface ``name``."""
    import fcntl
    import struct

    names = [n for _, n in socket.if_nameindex()]
    if name not in names:
        raise ValueError(f"interface {name!r} not found; this host has {names}")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        packed = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))  # SIOCGIFADDR
    except OSError as e:
        raise ValueError(f"interface {name!r} has no IPv4 address ({e})") from None
    finally:
        s.close()
    return socket.inet_ntoa(packed[20:24])


def _default_host():
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


def _lines(v, what):
    if v is None:
        return []
    if isinstance(v, str):
        raise TypeError(f"{what} must be a list of strings, not a string ({v!r}); write [{v!r}]")
    return [str(x) for x in v]


class JobQueueCluster(JobCluster):
    """Workers as jobs of a batch queue (base of :class:`SlurmCluster`, :class:`PBSCluster`,
    :class:`SGECluster`). ``cores`` and ``memory`` are per job; a job runs ``processes``
    workers, each with ``cores // processes`` threads and ``memory // processes``.

    >>> from oxidask.jobqueue import SlurmCluster
    >>> cluster = SlurmCluster(cores=4, memory="8GiB", walltime="01:00:00")  # doctest: +SKIP
    >>> print(cluster.job_script())  # doctest: +SKIP
    """

    #: The configuration section (``jobqueue.<config_name>``) and the queue system's words.
    config_name = None
    _directive = None  # directive prefix, e.g. "#SBATCH"
    submit_command = None
    cancel_command = None
    _job_id = re.compile(r"(\d+)")

    def __init__(
        self,
        n_workers=0,
        cores=None,
        memory=None,
        processes=None,
        walltime=None,
        queue=None,
        account=None,
        project=None,
        name=None,
        job_name=None,
        job_extra_directives=None,
        job_directives_skip=None,
        job_script_prologue=None,
        log_directory=None,
        shebang=None,
        python=None,
        interface=None,
        host=None,
        scheduler_options=None,
        death_timeout=None,
        local_directory=None,
        worker_extra_args=None,
        submit_command_extra=None,
        cancel_command_extra=None,
        resource_spec=None,
        job_cpu=None,
        job_mem=None,
        config_name=None,
        dashboard_address=None,
        security=None,
        **kwargs,
    ):
        if kwargs:
            raise TypeError(f"{type(self).__name__} got unexpected arguments {sorted(kwargs)}")
        system = config_name or self.config_name

        def get(key, given):
            return given if given is not None else config_value(system, key, _DEFAULTS[key])

        cores = get("cores", cores)
        memory = get("memory", memory)
        if cores is None or memory is None:
            raise ValueError(
                f"You must specify how many cores and how much memory per job you want to use, "
                f"for example: cluster = {type(self).__name__}(cores=8, memory='24GB') "
                f"(or set jobqueue.{system}.cores and jobqueue.{system}.memory)"
            )
        if not isinstance(cores, int) or cores < 1:
            raise ValueError(f"cores must be a positive integer, got {cores!r}")
        self.cores = cores
        self.memory = parse_bytes(memory)
        processes = get("processes", processes)
        if processes is None:
            processes, _ = _processes_and_threads(cores)
        if not isinstance(processes, int) or not 1 <= processes <= cores:
            raise ValueError(f"processes must be an integer between 1 and cores ({cores}), got {processes!r}")
        self.processes = processes
        self.walltime = get("walltime", walltime)
        self.queue = get("queue", queue)
        self.account = get("account", account)
        if self.account is None:
            self.account = get("project", project)
        self.job_name = job_name or get("name", name)
        self.job_extra_directives = _lines(get("job-extra-directives", job_extra_directives), "job_extra_directives")
        self.job_directives_skip = _lines(get("job-directives-skip", job_directives_skip), "job_directives_skip")
        self.job_script_prologue = _lines(get("job-script-prologue", job_script_prologue), "job_script_prologue")
        self.log_directory = get("log-directory", log_directory)
        self.shebang = get("shebang", shebang)
        self.python = get("python", python) or sys.executable
        self.interface = get("interface", interface)
        self.death_timeout = get("death-timeout", death_timeout)
        self.local_directory = get("local-directory", local_directory)
        self.worker_extra_args = _lines(get("worker-extra-args", worker_extra_args), "worker_extra_args")
        self.submit_command_extra = _lines(get("submit-command-extra", submit_command_extra), "submit_command_extra")
        self.cancel_command_extra = _lines(get("cancel-command-extra", cancel_command_extra), "cancel_command_extra")
        self.resource_spec = get("resource-spec", resource_spec)
        self.job_cpu = get("job-cpu", job_cpu) or cores
        self.job_mem = get("job-mem", job_mem)
        if security is not None:
            raise ValueError(
                f"{type(self).__name__} does not support security= yet: its workers connect over plain TCP"
            )
        if self.log_directory is not None:
            self.log_directory = os.path.abspath(os.path.expanduser(str(self.log_directory)))
            os.makedirs(self.log_directory, exist_ok=True)
        options = dict(get("scheduler-options", scheduler_options) or {})
        if host is None:
            host = options.get("host")
        if host is None:
            iface = options.get("interface", self.interface)
            host = _interface_address(iface) if iface else _default_host()
        self._workers_per_job = processes
        self._worker_threads = max(1, cores // processes)
        self._worker_memory = self.memory // processes
        self._name_prefix = self.job_name
        super().__init__(
            host=host,
            scheduler_port=options.get("port", 0),
            dashboard_address=options.get("dashboard_address", dashboard_address),
            name=self.job_name,
        )
        if n_workers:
            self.scale(n_workers)

    def _check_commands(self):
        from shutil import which

        for cmd in (self.submit_command, self.cancel_command):
            if which(cmd) is None:
                raise RuntimeError(
                    f"{type(self).__name__}: the command {cmd!r} is not on PATH; run this on a "
                    f"login node of a {self.config_name.upper()} cluster (or install its client tools)"
                )

    # -- the job script ------------------------------------------------------------------

    def _directives(self, name):
        """The queue system's directive lines (without the skipped ones)."""
        raise NotImplementedError

    def worker_command(self, name):
        """The command a job runs."""
        argv = [
            self.python,
            "-m",
            "oxidask",
            "worker",
            self.scheduler_address if hasattr(self, "_core") else "SCHEDULER_ADDRESS",
            "--nthreads",
            str(self._worker_threads),
            "--nworkers",
            str(self.processes),
            "--memory-limit",
            str(self._worker_memory),
            "--name",
            name,
            "--death-timeout",
            f"{parse_timedelta(self.death_timeout):g}s",
        ]
        if self.interface:
            argv += ["--interface", self.interface]
        else:
            argv += ["--host", "0.0.0.0"]
        if self.local_directory:
            argv += ["--local-directory", str(self.local_directory)]
        argv += self.worker_extra_args
        return " ".join(shlex.quote(a) for a in argv)

    def job_script(self, name=None):
        """The job script submitted for each job (``name``: the job's; default the base
        name).

        >>> print(cluster.job_script())  # doctest: +SKIP
        #!/usr/bin/env bash
        <BLANKLINE>
        #SBATCH -J oxidask-worker
        ...
        """
        name = name or self.job_name
        directives = [
            d for d in self._directives(name) if not any(skip in d for skip in self.job_directives_skip)
        ]
        directives += [f"{self._directive} {d}" for d in self.job_extra_directives]
        parts = [self.shebang, "", *directives, ""]
        if self.job_script_prologue:
            parts += [*self.job_script_prologue, ""]
        parts.append(self.worker_command(name))
        return "\n".join(parts) + "\n"

    # -- jobs ----------------------------------------------------------------------------

    def _run(self, argv):
        out = subprocess.run(argv, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(
                f"{' '.join(map(shlex.quote, argv))} failed (exit {out.returncode}): "
                f"{(out.stderr or out.stdout).strip()}"
            )
        return out.stdout

    def _start_job(self, name):
        self._check_commands()
        with tempfile.NamedTemporaryFile("w", suffix=".sh", prefix=f"{name}-", delete=False) as f:
            f.write(self.job_script(name))
            path = f.name
        try:
            out = self._run([self.submit_command, *self.submit_command_extra, path])
        finally:
            os.unlink(path)
        m = self._job_id.search(out)
        if not m:
            raise RuntimeError(f"could not find the job id in {self.submit_command}'s output: {out!r}")
        return m.group(1)

    def _stop_job(self, name, job_id):
        try:
            self._run([self.cancel_command, *self.cancel_command_extra, job_id])
        except RuntimeError as e:  # finished already
            self._log.append(f"cancel {name} ({job_id}): {e}")

    @property
    def job_ids(self):
        """The queue's ids of the jobs in ``plan``, by job name."""
        with self._lock:
            return dict(self._jobs)

    def _job_log(self, name, job_id):
        if self.log_directory is None:
            return None
        texts = []
        for ext in ("out", "err"):
            path = os.path.join(self.log_directory, f"{name}-{job_id}.{ext}")
            try:
                with open(path) as f:
                    texts.append(f.read())
            except OSError:
                pass
        return "".join(texts)

    def __repr__(self):
        jobs = 0 if self._closed else len(self.plan)
        return (
            f"{type(self).__name__}({self.scheduler_address!r}, jobs={jobs}, "
            f"workers={jobs * self.processes}, cores={self.cores}, memory={self.memory}, status={self.status})"
        )


def _mem_mib(n):
    return math.ceil(n / 2**20)
