"""The container image and seed 004's compose stack, on a real Docker daemon from Debian's
packages (``.ci/setup-containers.sh``: docker.io's dockerd, docker-compose 1.29, a base image
imported from a debootstrapped Debian minbase). The image is built from this tree's binary and
installed Python package (``deploy/docker/build.sh``); the stack runs a scheduler, four workers
limited to half a CPU and 1 GiB each by the runtime, and a client container. Without a working
runtime these tests fail, they never skip."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import oxidask

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = ROOT / "deploy" / "docker" / "docker-compose.yml"
DOCKER = "/usr/bin/docker"  # Debian's client (docker.io), whatever else is on PATH


def _rust_binary():
    path = os.environ.get("OXIDASK_RUST_BIN") or os.path.join(
        os.environ.get("CARGO_TARGET_DIR") or str(ROOT / "target"), "debug", "oxidask"
    )
    if not os.path.exists(path):
        pytest.fail(
            f"the Rust oxidask binary is needed and was not found at {path}; "
            "build it with `cargo build -p oxidask-cli` and set OXIDASK_RUST_BIN"
        )
    return path


def _run(cmd, env, check=True, timeout=300):
    p = subprocess.run(
        [str(c) for c in cmd], env=env, capture_output=True, text=True, timeout=timeout
    )
    if check and p.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, cmd))} exited {p.returncode}\n"
            f"stdout:\n{p.stdout[-3000:]}\nstderr:\n{p.stderr[-3000:]}"
        )
    return p


@pytest.fixture(scope="module")
def image():
    """Starts the runtime (setup script) and builds the image; yields (env, tag)."""
    subprocess.run(["bash", str(ROOT / ".ci" / "setup-containers.sh")], check=True)
    env = dict(os.environ, DOCKER_HOST="unix:///var/run/docker.sock")
    env["PATH"] = "/usr/bin:" + env.get("PATH", "")
    tag = f"oxidask-test/oxidask:{os.getpid()}"
    site = os.path.dirname(os.path.dirname(oxidask.__file__))
    _run(
        [
            ROOT / "deploy" / "docker" / "build.sh",
            "--python",
            "--tag",
            tag,
            "--binary",
            _rust_binary(),
            "--site-packages",
            site,
        ],
        env,
    )
    try:
        yield env, tag
    finally:
        _run([DOCKER, "rmi", "-f", tag], env, check=False)


def test_image_runs_as_an_unprivileged_user_with_python_and_the_binary(image):
    env, tag = image
    user = _run([DOCKER, "image", "inspect", "-f", "{{.Config.User}}", tag], env).stdout.strip()
    assert user == "10001:10001"
    out = _run(
        [
            DOCKER,
            "run",
            "--rm",
            "--entrypoint",
            "sh",
            tag,
            "-c",
            "id -u; oxidask-rust --version; python -c 'import oxidask; print(oxidask.__name__)'",
        ],
        env,
    ).stdout.split()
    assert out == ["10001", "oxidask", oxidask.__version__, "oxidask"], out


def test_a_worker_of_one_and_a_half_cpus_runs_two_threads_as_dask(image):
    """Dask rounds a CPU quota up (1.5 CPUs: 2 threads); the memory limit is the cgroup's."""
    env, tag = image
    assert os.cpu_count() >= 2, "this check needs a machine of at least 2 cores"
    script = (
        "oxidask scheduler --port 8786 --no-dashboard >/tmp/s.log 2>&1 & "
        "oxidask worker tcp://127.0.0.1:8786 --no-dashboard >/tmp/w.log 2>&1 & "
        "until python -c 'import socket; socket.create_connection((\"127.0.0.1\", 8786))' "
        "2>/dev/null; do sleep 0.1; done; "
        "python -c 'from oxidask.distributed import Client; c = Client(\"tcp://127.0.0.1:8786\"); "
        "c.wait_for_workers(1, timeout=60); "
        "print([(w[\"nthreads\"], w[\"memory_limit\"]) for w in c.scheduler_info()[\"workers\"].values()])'"
    )
    out = _run(
        [DOCKER, "run", "--rm", "--cpus", "1.5", "--memory", "512m", "--entrypoint", "sh", tag,
         "-c", script],
        env,
    ).stdout
    assert out.strip().splitlines()[-1] == f"[(2, {512 << 20})]", out


def test_compose_stack_four_limited_workers_and_a_client(image):
    env, tag = image
    project = f"oxidasktest{os.getpid()}"
    env = dict(env, OXIDASK_IMAGE=tag, OXIDASK_NETWORK=f"{project}-net")
    compose = ["docker-compose", "--compatibility", "-p", project, "-f", COMPOSE]
    try:
        _run(compose + ["up", "-d", "scheduler", "worker"], env)
        deadline = time.monotonic() + 60
        while "listening at" not in _run(compose + ["logs", "scheduler"], env).stdout:
            assert time.monotonic() < deadline, _run(compose + ["logs"], env).stdout
            time.sleep(0.2)
        client = _run(compose + ["run", "--rm", "-T", "client"], env)
        report = json.loads(client.stdout.strip().splitlines()[-1])
        assert report["result"] == sum(x * x + 1 for x in range(1000))
        assert report["scheduler"] == "tcp://scheduler:8786"
        workers = report["workers"]
        # Threads from the 0.5-CPU quota (rounded up to 1; this machine has more cores) and
        # the memory limit from the 1 GiB cgroup limit: nothing was passed on the command line.
        assert len(workers) == 4, workers
        assert {w["nthreads"] for w in workers.values()} == {1}, workers
        assert {w["memory_limit"] for w in workers.values()} == {1 << 30}, workers
        assert os.cpu_count() > 1 and os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") > 1 << 30
        assert set(report["ran_on"]) <= set(workers)

        # The runtime really limited the four worker containers, and each worker advertises
        # its container's eth0 address (--interface eth0).
        ids = _run(compose + ["ps", "-q", "worker"], env).stdout.split()
        assert len(ids) == 4
        fmt = (
            "{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}} {{.Config.User}} "
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
        )
        inspected = [_run([DOCKER, "inspect", "-f", fmt, i], env).stdout.split() for i in ids]
        assert {tuple(x[:3]) for x in inspected} == {("500000000", "1073741824", "10001:10001")}
        assert {x[3] for x in inspected} == {a.split("//")[-1].rsplit(":", 1)[0] for a in workers}
    finally:
        logs = _run(compose + ["logs", "--no-color"], env, check=False).stdout
        _run(compose + ["down", "-v", "--remove-orphans", "-t", "5"], env, check=False)
        print(logs[-5000:], file=sys.stderr)
    leftover = _run(
        [DOCKER, "ps", "-aq", "--filter", f"label=com.docker.compose.project={project}"], env
    ).stdout.split()
    assert leftover == []
