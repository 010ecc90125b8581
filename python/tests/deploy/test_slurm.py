"""SlurmCluster against a real single-node SLURM (Debian's slurm-wlm with munge, started by
.ci/setup-slurm.sh, which this test runs itself when SLURM is not up): jobs submitted with
sbatch become workers, a computation is exact, adapt scales down when idle (results held
survive), and close cancels every job."""

import os
import shutil
import subprocess
import time

import pytest

from oxidask.distributed import Client
from oxidask.jobqueue import SlurmCluster

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SETUP = os.path.join(ROOT, ".ci", "setup-slurm.sh")


def _slurm_up():
    if shutil.which("sinfo") is None:
        return False
    out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
    return out.returncode == 0 and any(s in out.stdout for s in ("idle", "mix", "alloc"))


@pytest.fixture(scope="module")
def slurm():
    if not _slurm_up():
        # Not a skip: without SLURM this test fails, with the setup script's own error.
        subprocess.run(["bash", SETUP], check=True, timeout=900)
    assert _slurm_up(), "SLURM is not running even after .ci/setup-slurm.sh"


def _queued(ids):
    out = subprocess.run(["squeue", "-h", "-o", "%i %T"], capture_output=True, text=True, check=True)
    states = dict(line.split() for line in out.stdout.splitlines() if line.strip())
    return {i: states[i] for i in ids if i in states}


def _wait_until(what, ok, timeout=120):
    deadline = time.monotonic() + timeout
    while not ok():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.2)


def test_slurm_jobs_scale_compute_adapt_and_close(slurm, tmp_path):
    cluster = SlurmCluster(
        cores=1,
        memory="1GiB",
        processes=1,
        walltime="00:10:00",
        log_directory=str(tmp_path),
        death_timeout="30s",
        dashboard_address=None,
    )
    try:
        script = cluster.job_script()
        assert "#SBATCH --cpus-per-task=1" in script and "#SBATCH --mem=1024M" in script
        cluster.scale(2)
        ids = cluster.job_ids
        assert sorted(ids) == ["oxidask-worker-0", "oxidask-worker-1"]
        assert all(i.isdigit() for i in ids.values())
        assert set(_queued(ids.values())) == set(ids.values()), "both are real SLURM jobs"
        with Client(cluster) as client:
            client.wait_for_workers(2, timeout=120)
            names = sorted(w["name"] for w in client.scheduler_info()["workers"].values())
            assert names == sorted(ids)
            futures = client.map(pow, range(40), [3] * 40)
            total = client.submit(sum, futures)
            assert total.result() == sum(x**3 for x in range(40))
            assert len({a for addrs in client.who_has(futures).values() for a in addrs}) == 2
            # Idle: adapt retires one worker (after wait_count rounds) and cancels its job.
            adaptive = cluster.adapt(minimum=1, maximum=2, interval="200ms", wait_count=2, target_duration="1s")
            _wait_until("one job left", lambda: len(cluster.plan) == 1)
            gone = (set(ids) - set(cluster.plan)).pop()
            _wait_until("its job gone", lambda: ids[gone] not in _queued([ids[gone]]))
            _wait_until("one worker connected", lambda: len(client.scheduler_info()["workers"]) == 1)
            assert [f.result() for f in futures] == [x**3 for x in range(40)], "held across the scale-down"
            assert total.result() == sum(x**3 for x in range(40))
            assert not [e for e in adaptive.log if e[1] == "error"], adaptive.log
            logs = cluster.get_logs()
            assert set(logs) == {"Cluster", cluster.plan[0]}
            assert f"stopped {gone}" in logs["Cluster"]
    finally:
        cluster.close()
    _wait_until("every job cancelled", lambda: not _queued(ids.values()))
    assert cluster.status == "closed"


def test_slurm_submission_errors_are_clear(slurm):
    with SlurmCluster(cores=1, memory="1GiB", queue="no-such-partition", dashboard_address=None) as cluster:
        with pytest.raises(RuntimeError, match="sbatch.*no-such-partition|partition"):
            cluster.scale(1)
        assert cluster.plan == []
