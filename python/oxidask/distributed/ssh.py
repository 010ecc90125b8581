"""``SSHCluster``: a scheduler and workers started over SSH on a list of hosts, as Dask's.

The first host runs ``python -m oxidask scheduler``, every other host one ``python -m oxidask
worker`` process (a nanny and its workers). Each runs under the OpenSSH client (``ssh``, a
subprocess, ``BatchMode=yes``: keys only, never a password prompt) inside a small remote
shell wrapper that

- starts the command in its own session (``setsid``) and reports its process id;
- waits on the SSH channel's standard input: when this side closes it, or the ``ssh``
  client dies, or the connection drops, it sends the process SIGTERM (the nanny forwards it
  to its workers), and SIGKILL to the whole session if it is still there after 10 s.

So ``close()`` (and a crash of this process) leaves no remote process behind, and ``close()``
returns once every ``ssh`` client has exited, which happens only after everything holding
the remote output (the scheduler, the nanny, its workers) is gone.

# Invariants
- ``_workers`` holds the running worker processes in start order; ``scale`` stops the newest.
- Every ``_Remote`` started is either running, in ``_workers``/``_scheduler``, or closed:
  a failed start closes what it had started before raising.
"""

import collections
import itertools
import os
import re
import shlex
import subprocess
import sys
import threading
import time

from oxidask.distributed.deploy.cluster import Cluster
from oxidask.utils import parse_bytes

# Runs on the remote host under `sh -c`, with the command as "$@". Prints our marker line
# with the process id, then waits for EOF on the SSH channel (fd 3) to stop the command.
_WRAPPER = r"""
exec 3<&0
setsid "$@" </dev/null &
pid=$!
echo "oxidask-ssh: pid $pid" >&2
(
    read -r _line <&3 || true
    kill -TERM "$pid" 2>/dev/null
    i=0
    while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    kill -KILL -- "-$pid" 2>/dev/null
) </dev/null &
watcher=$!
wait "$pid"
status=$?
kill "$watcher" 2>/dev/null
wait "$watcher" 2>/dev/null
exit "$status"
"""

_CONNECT_OPTIONS = {
    "port": "the SSH port (default: 22 or the ssh configuration's)",
    "username": "the remote user (default: this user or the ssh configuration's)",
    "client_keys": "private key file(s) to log in with",
    "known_hosts": "a known_hosts file, or None to accept any host key (as asyncssh)",
    "connect_timeout": "seconds to wait for the connection (default 10)",
    "config": "an ssh configuration file (ssh -F)",
    "options": "more ssh options, {'Name': 'value'} (ssh -o Name=value)",
}

_SCHEDULER_LINE = re.compile(r"listening at (\S+)")
_DASHBOARD_LINE = re.compile(r"dashboard at (\S+)")
_WORKER_LINE = re.compile(r"oxidask-worker (\S+): serving data at (\S+), connected to the scheduler")
_PID_LINE = re.compile(r"^oxidask-ssh: pid (\d+)$")


def _ssh_argv(host, connect_options):
    """The ``ssh`` command line (without the remote command) for ``host``."""
    if not isinstance(connect_options, dict):
        raise TypeError(
            f"SSHCluster: connect_options must be a dict (or a list of one dict per host), "
            f"not {type(connect_options).__name__}"
        )
    if "password" in connect_options:
        raise TypeError(
            "SSHCluster logs in with keys only (ssh BatchMode): give connect_options="
            "{'client_keys': ['~/.ssh/id_ed25519']} instead of a password"
        )
    unknown = sorted(set(connect_options) - set(_CONNECT_OPTIONS))
    if unknown:
        known = "; ".join(f"{k}: {v}" for k, v in _CONNECT_OPTIONS.items())
        raise TypeError(f"SSHCluster: unknown connect_options {unknown}; supported: {known}")
    argv = ["ssh", "-T", "-x", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"]
    timeout = connect_options.get("connect_timeout", 10)
    argv += ["-o", f"ConnectTimeout={int(timeout)}", "-o", "ServerAliveInterval=15"]
    if connect_options.get("config"):
        argv += ["-F", os.path.expanduser(str(connect_options["config"]))]
    if connect_options.get("port") is not None:
        argv += ["-p", str(int(connect_options["port"]))]
    if connect_options.get("username"):
        argv += ["-l", str(connect_options["username"])]
    keys = connect_options.get("client_keys")
    if keys:
        if isinstance(keys, (str, os.PathLike)):
            keys = [keys]
        for key in keys:
            path = os.path.expanduser(os.fspath(key))
            if not os.path.exists(path):
                raise FileNotFoundError(f"SSHCluster: the client key {path!r} does not exist")
            argv += ["-i", path]
        argv += ["-o", "IdentitiesOnly=yes"]
    if "known_hosts" in connect_options:
        known = connect_options["known_hosts"]
        if known is None:
            argv += ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
        else:
            argv += ["-o", f"UserKnownHostsFile={os.path.expanduser(os.fspath(known))}"]
    for name, value in (connect_options.get("options") or {}).items():
        argv += ["-o", f"{name}={value}"]
    return argv + [host]


def _cli_flags(options, what):
    """``{"memory_limit": "2GiB", "no_nanny": True}`` → ``--memory-limit 2GiB --no-nanny``."""
    flags = []
    for key, value in options.items():
        if value is None or value is False:
            continue
        flag = "--" + str(key).replace("_", "-")
        if value is True:
            flags.append(flag)
        elif isinstance(value, dict):
            flags += [flag, ",".join(f"{k}={v}" for k, v in value.items())]
        else:
            flags += [flag, str(value)]
    if not all(isinstance(k, str) and k.isidentifier() for k in options):
        raise TypeError(f"SSHCluster: {what} keys must be option names like 'nthreads'")
    return flags


class _Remote:
    """One command running on a host under ``ssh``, its output kept as its log."""

    def __init__(self, host, connect_options, command, name):
        self.host = host
        self.name = name
        self.command = command
        remote = "sh -c " + shlex.quote(_WRAPPER) + " oxidask-ssh " + shlex.join(command)
        self.argv = _ssh_argv(host, connect_options) + [remote]
        self.remote_pid = None
        self._lines = []
        self._cond = threading.Condition()
        self._proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in this terminal goes to Python, not to ssh
        )
        self._reader = threading.Thread(target=self._read, name=f"oxidask-ssh-{name}", daemon=True)
        self._reader.start()

    def _read(self):
        for raw in self._proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            with self._cond:
                m = _PID_LINE.match(line)
                if m and self.remote_pid is None:
                    self.remote_pid = int(m.group(1))
                else:
                    self._lines.append(line)
                self._cond.notify_all()
        self._proc.wait()
        with self._cond:
            self._cond.notify_all()

    @property
    def log(self):
        """What the remote command (and ``ssh``) printed so far."""
        with self._cond:
            return "\n".join(self._lines)

    def running(self):
        return self._proc.poll() is None

    def wait_for(self, pattern, count, timeout):
        """The first ``count`` matches of ``pattern`` in the output; raises a clear error if
        the process ends first or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [m for m in map(pattern.search, self._lines) if m]
                if len(found) >= count:
                    return found[:count]
                if self._proc.poll() is not None and not self._reader.is_alive():
                    raise self._failure()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"SSHCluster: {self.name} on {self.host!r} did not start within "
                        f"{timeout:g} s; its output so far:\n{self.log or '(none)'}"
                    )
                self._cond.wait(min(left, 1.0))

    def _failure(self):
        code = self._proc.returncode
        output = "\n".join(self._lines) or "(no output)"
        if code == 255 and self.remote_pid is None:
            return ConnectionError(
                f"SSHCluster: cannot log in to {self.host!r} with ssh (exit 255): {output}\n"
                "Check the host name, connect_options={'port': ..., 'username': ..., "
                "'client_keys': [...]} and that the host's sshd accepts this key (ssh runs "
                "with BatchMode=yes: no password prompts)."
            )
        program = self.command[0]
        if code == 127 or "No such file or directory" in output and program in output:
            return FileNotFoundError(
                f"SSHCluster: {program!r} was not found on {self.host!r} (exit {code}): "
                f"{output}\nPass remote_python= with the path of a Python that has oxidask "
                "installed on that host."
            )
        if "No module named" in output and "oxidask" in output:
            return ModuleNotFoundError(
                f"SSHCluster: oxidask is not installed for {program!r} on {self.host!r}: "
                f"{output}\nInstall oxidask there or pass remote_python= with another Python."
            )
        return RuntimeError(
            f"SSHCluster: {self.name} on {self.host!r} exited with code {code} while "
            f"starting; its output:\n{output}"
        )

    def begin_close(self):
        """Closes the channel's standard input: the remote wrapper stops the command."""
        try:
            if self._proc.stdin and not self._proc.stdin.closed:
                self._proc.stdin.close()
        except OSError:
            pass

    def finish_close(self, timeout):
        """Waits for ``ssh`` to exit (the remote command and its children have); past
        ``timeout`` seconds, ends ``ssh``: the dropped connection stops the remote side too."""
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._reader.join(5)


class SSHCluster(Cluster):
    """A scheduler and workers started over SSH, as Dask's ``SSHCluster``.

    ``hosts[0]`` runs the scheduler and every other host one worker process (repeat a host to
    run several there, or pass ``worker_options={"n_workers": 2}``). SSH is the OpenSSH
    client with ``BatchMode=yes``: logins use keys (an agent, ``~/.ssh`` or
    ``connect_options={"client_keys": [...]}``), never a password. ``connect_options``:
    ``port``, ``username``, ``client_keys``, ``known_hosts`` (a file, or ``None`` to accept
    any host key), ``connect_timeout``, ``config`` (an ssh configuration file) and ``options``
    (more ``ssh -o`` options); a list gives one dict per host. ``scheduler_options`` and
    ``worker_options`` become the flags of ``oxidask scheduler`` / ``oxidask worker``
    (``{"port": 0, "dashboard_address": ":8797"}``, ``{"nthreads": 2, "memory_limit":
    "4GiB", "n_workers": 2}``); the scheduler listens on ``hosts[0]`` and each worker on its
    host unless ``host`` is given. ``remote_python`` is the Python that has oxidask on the
    hosts (default: this one's path; a list gives one per host).

    ``close()`` stops every remote process and returns when they are gone; ``get_logs()``
    returns what each printed. The rest is the :class:`~oxidask.distributed.Cluster`
    interface: ``scale(n)`` (or ``jobs=``, ``cores=``, ``memory=``), ``adapt()``,
    ``scale_down(names)``; a job is one ``oxidask worker`` process (its nanny and
    ``n_workers`` workers), named ``0``, ``1``, ...

    >>> from oxidask.distributed import Client, SSHCluster
    >>> cluster = SSHCluster(
    ...     ["node0", "node1", "node2"],
    ...     connect_options={"known_hosts": None},
    ...     worker_options={"nthreads": 2},
    ...     scheduler_options={"port": 0, "dashboard_address": ":8797"},
    ... )                                              # doctest: +SKIP
    >>> client = Client(cluster)                       # doctest: +SKIP
    """

    def __init__(
        self,
        hosts=None,
        connect_options=None,
        worker_options=None,
        scheduler_options=None,
        worker_class="distributed.Nanny",
        remote_python=None,
        timeout=60,
        **kwargs,
    ):
        if kwargs:
            raise TypeError(f"SSHCluster got unexpected arguments: {sorted(kwargs)}")
        if not hosts or isinstance(hosts, str):
            raise ValueError(
                f"SSHCluster: hosts must be a non-empty list of host names, the first for the "
                f"scheduler, not {hosts!r}"
            )
        hosts = [str(h) for h in hosts]
        connect_options = {} if connect_options is None else connect_options
        if isinstance(connect_options, list) and len(connect_options) != len(hosts):
            raise ValueError(
                f"SSHCluster: connect_options is a list of {len(connect_options)} but there "
                f"are {len(hosts)} hosts: give one dict per host (or one dict for all)"
            )
        if isinstance(remote_python, list) and len(remote_python) != len(hosts):
            raise ValueError(
                f"SSHCluster: remote_python is a list of {len(remote_python)} but there are "
                f"{len(hosts)} hosts: give one path per host (or one for all)"
            )
        if worker_class in (None, "distributed.Nanny", "nanny"):
            nanny = True
        elif worker_class in ("distributed.Worker", "worker"):
            nanny = False
        else:
            raise ValueError(
                f"SSHCluster: worker_class {worker_class!r} is not available in oxidask; use "
                "'distributed.Nanny' (default) or 'distributed.Worker' (no nanny)"
            )
        self.hosts = hosts
        self._connect = [
            connect_options[i] if isinstance(connect_options, list) else connect_options
            for i in range(len(hosts))
        ]
        for c in self._connect:
            _ssh_argv("check", c)  # bad options fail here, before anything starts
        self._python = [
            (remote_python[i] if isinstance(remote_python, list) else remote_python) or sys.executable
            for i in range(len(hosts))
        ]
        self.scheduler_options = dict(scheduler_options or {})
        self.worker_options = dict(worker_options or {})
        if "n_workers" in self.worker_options or "nprocs" in self.worker_options:
            n = self.worker_options.pop("n_workers", None) or self.worker_options.pop("nprocs")
            self.worker_options["nworkers"] = int(n)
        if not nanny:
            self.worker_options["no_nanny"] = True
        _cli_flags(self.scheduler_options, "scheduler_options")
        _cli_flags(self.worker_options, "worker_options")
        self.timeout = float(timeout)
        self.security = None
        self._workers_per_job = int(self.worker_options.get("nworkers", 1))
        self._worker_threads = int(self.worker_options.get("nthreads") or 1)
        memory = self.worker_options.get("memory_limit")
        self._worker_memory = 0 if memory in (None, "auto", 0, "0") else parse_bytes(memory)
        self._scheduler_address = None
        self._dashboard_link = None
        self._scheduler = None
        self._workers = []
        self._names = itertools.count()
        self._closed_log = collections.OrderedDict()
        self._event_log = []
        self._closed = False
        try:
            self._start_scheduler()
            self._start_workers([(h, i + 1) for i, h in enumerate(hosts[1:])])
        except BaseException:
            self.close()
            raise

    def _event(self, text):
        self._event_log.append(f"{time.strftime('%H:%M:%S')} {text}")

    def _start_scheduler(self):
        opts = dict(self.scheduler_options)
        opts.setdefault("host", self.hosts[0])
        if "dashboard_address" in opts and opts["dashboard_address"] is None:
            del opts["dashboard_address"]  # as Dask: None means no dashboard
            opts["no_dashboard"] = True
        command = [self._python[0], "-m", "oxidask", "scheduler"] + _cli_flags(opts, "scheduler_options")
        self._event(f"starting the scheduler on {self.hosts[0]}: {shlex.join(command)}")
        self._scheduler = _Remote(self.hosts[0], self._connect[0], command, "Scheduler")
        (m,) = self._scheduler.wait_for(_SCHEDULER_LINE, 1, self.timeout)
        self._scheduler_address = m.group(1)
        if not opts.get("no_dashboard"):
            (d,) = self._scheduler.wait_for(_DASHBOARD_LINE, 1, self.timeout)
            self._dashboard_link = d.group(1)
        self._event(f"scheduler at {self.scheduler_address}")

    def _start_workers(self, placements):
        """Starts a worker process on each ``(host, host index)``, then waits for all."""
        started = []
        for host, index in placements:
            opts = dict(self.worker_options)
            opts.setdefault("host", host)
            name = str(opts.pop("name", "")) + str(next(self._names))
            opts["name"] = name
            command = [self._python[index], "-m", "oxidask", "worker", self.scheduler_address]
            command += _cli_flags(opts, "worker_options")
            self._event(f"starting worker {name} on {host}: {shlex.join(command)}")
            w = _Remote(host, self._connect[index], command, name)
            w.index = index
            self._workers.append(w)
            started.append(w)
        per_process = int(self.worker_options.get("nworkers", 1))
        for w in started:
            w.wait_for(_WORKER_LINE, per_process, self.timeout)
            self._event(f"worker {w.name} on {w.host} connected")

    @property
    def scheduler_address(self):
        """The scheduler's address, as it reported it (``tcp://host:port``)."""
        return self._scheduler_address

    @property
    def dashboard_link(self):
        """The scheduler's dashboard (``http://host:8787/status``), or ``None`` without one."""
        return self._dashboard_link

    @property
    def plan(self):
        """Names of the running worker processes (jobs), oldest first."""
        return [w.name for w in self._workers]

    @property
    def workers(self):
        """The running worker processes: ``{name: host}``."""
        return {w.name: w.host for w in self._workers}

    def _scale_to_jobs(self, n):
        """Stops the newest worker processes (SIGTERM: each worker retires gracefully, the
        results only it holds moved to the others first), or starts more on the worker hosts
        in turn (``hosts[1:]``, round robin)."""
        if n < len(self._workers):
            stop, self._workers = self._workers[n:], self._workers[:n]
            self._stop(stop[::-1])
        elif n > len(self._workers):
            slots = [(h, i + 1) for i, h in enumerate(self.hosts[1:])] or [(self.hosts[0], 0)]
            have = len(self._workers)
            self._start_workers([slots[(have + k) % len(slots)] for k in range(n - have)])

    def scale_down(self, workers):
        """Stops these worker processes (by job name, or a worker name ``N-i`` of job ``N``);
        each worker retires gracefully first.

        >>> cluster.scale_down(["1"])                      # doctest: +SKIP
        """
        jobs = {self._job_of(str(w)) for w in workers} - {None}
        stop = [w for w in self._workers if w.name in jobs]
        self._workers = [w for w in self._workers if w.name not in jobs]
        self._stop(stop)

    def _stop(self, remotes, timeout=30):
        for r in remotes:
            r.begin_close()
        for r in remotes:
            r.finish_close(timeout)
            if r is not self._scheduler:
                self._closed_log[r.name] = r.log
            self._event(f"{r.name} on {r.host} stopped")

    def _events(self):
        return list(self._event_log)

    def _job_logs(self):
        logs = dict(self._closed_log)
        logs.update((w.name, w.log) for w in self._workers)
        return logs

    def get_logs(self, cluster=True, scheduler=True, workers=True):
        """What the processes printed, as Dask's: ``{"Cluster": ..., "Scheduler": ...,
        worker name: ...}`` (stopped workers included).

        >>> print(cluster.get_logs()["Scheduler"])         # doctest: +SKIP
        """
        logs = super().get_logs(cluster=cluster, scheduler=False, workers=workers)
        if scheduler and self._scheduler is not None:
            logs["Scheduler"] = self._scheduler.log
        return logs

    def close(self, timeout=30):
        """Stops adaptive scaling, the workers, then the scheduler, and waits until every
        remote process and ``ssh`` client is gone (past ``timeout`` seconds each, the
        connection is cut, which stops the remote side too)."""
        self._close_timeout = timeout
        super().close()

    def _close(self):
        timeout = getattr(self, "_close_timeout", 30)
        workers, self._workers = self._workers, []
        self._stop(workers, timeout)
        if self._scheduler is not None:
            self._stop([self._scheduler], timeout)
