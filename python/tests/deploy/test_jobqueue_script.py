"""Job scripts of SlurmCluster, PBSCluster and SGECluster: directives from arguments and from
configuration (oxidask.config and OXIDASK_JOBQUEUE__* environment variables), the worker
command (its flags exist in `oxidask worker`), and clear errors."""

import shlex
import subprocess
import sys

import pytest

import oxidask
from oxidask.jobqueue import PBSCluster, SGECluster, SLURMCluster, SlurmCluster


def _command(script):
    return script.strip().splitlines()[-1]


def test_slurm_directives_from_arguments(tmp_path):
    with SlurmCluster(
        cores=8,
        memory="16GiB",
        processes=2,
        walltime="02:00:00",
        queue="gpu",
        account="proj42",
        job_extra_directives=["--exclusive", "--gres=gpu:1"],
        job_script_prologue=["module load python", "source env/bin/activate"],
        log_directory=str(tmp_path),
        name="ox",
        dashboard_address=None,
    ) as cluster:
        script = cluster.job_script()
        lines = script.splitlines()
        assert lines[0] == "#!/usr/bin/env bash"
        for d in [
            "#SBATCH -J ox",
            f"#SBATCH -e {tmp_path}/ox-%j.err",
            f"#SBATCH -o {tmp_path}/ox-%j.out",
            "#SBATCH -p gpu",
            "#SBATCH -A proj42",
            "#SBATCH -n 1",
            "#SBATCH --cpus-per-task=8",
            "#SBATCH --mem=16384M",
            "#SBATCH -t 02:00:00",
            "#SBATCH --exclusive",
            "#SBATCH --gres=gpu:1",
            "module load python",
            "source env/bin/activate",
        ]:
            assert d in lines, (d, script)
        assert lines.index("source env/bin/activate") < len(lines) - 1
        argv = shlex.split(_command(script))
        assert argv[:5] == [sys.executable, "-m", "oxidask", "worker", cluster.scheduler_address]
        flags = dict(zip(argv[5::2], argv[6::2]))
        assert flags["--nthreads"] == "4" and flags["--nworkers"] == "2"
        assert flags["--memory-limit"] == str(8 * 2**30)
        assert flags["--name"] == "ox" and flags["--death-timeout"] == "60s"
        assert SLURMCluster is SlurmCluster
        assert "jobs=0" in repr(cluster)


def test_worker_command_flags_exist():
    with SlurmCluster(cores=2, memory="1GB", local_directory="/tmp", dashboard_address=None) as cluster:
        argv = shlex.split(_command(cluster.job_script()))
    help_text = subprocess.run(
        [sys.executable, "-m", "oxidask", "worker", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for flag in [a for a in argv if a.startswith("--")]:
        assert flag in help_text, flag


def test_directives_from_config_and_environment(monkeypatch):
    monkeypatch.setenv("OXIDASK_JOBQUEUE__SLURM__CORES", "6")
    monkeypatch.setenv("OXIDASK_JOBQUEUE__SLURM__JOB_EXTRA_DIRECTIVES", "['--qos=high']")
    with oxidask.config.set(
        {"jobqueue.slurm.memory": "12GB", "jobqueue.slurm.queue": "batch", "jobqueue.slurm.walltime": "00:05:00"}
    ):
        with SlurmCluster(dashboard_address=None) as cluster:
            script = cluster.job_script()
    assert "#SBATCH --cpus-per-task=6" in script
    assert "#SBATCH -p batch" in script and "#SBATCH -t 00:05:00" in script
    assert "#SBATCH --qos=high" in script
    assert f"#SBATCH --mem={-(-12 * 10**9 // 2**20)}M" in script
    # Arguments win over configuration; skipped directives disappear.
    with oxidask.config.set({"jobqueue.slurm.memory": "12GB"}):
        with SlurmCluster(cores=1, queue="other", job_directives_skip=["-t "], dashboard_address=None) as cluster:
            script = cluster.job_script()
    assert "#SBATCH -p other" in script and "#SBATCH -t" not in script


def test_pbs_and_sge_scripts():
    with PBSCluster(
        cores=4, memory="8GB", processes=1, queue="workq", account="acct", walltime="01:00:00", dashboard_address=None
    ) as pbs:
        s = pbs.job_script()
    for d in ["#PBS -N oxidask-worker", "#PBS -q workq", "#PBS -A acct",
              f"#PBS -l select=1:ncpus=4:mem={-(-8 * 10**9 // 2**20)}MB", "#PBS -l walltime=01:00:00"]:
        assert d in s.splitlines(), (d, s)
    with oxidask.config.set({"jobqueue.sge.resource-spec": "h_vmem=8G", "jobqueue.sge.project": "p1"}):
        with SGECluster(cores=4, memory="8GB", queue="all.q", dashboard_address=None) as sge:
            s = sge.job_script()
    for d in ["#$ -N oxidask-worker", "#$ -q all.q", "#$ -P p1", "#$ -l h_vmem=8G",
              "#$ -l h_rt=00:30:00", "#$ -cwd", "#$ -j y"]:
        assert d in s.splitlines(), (d, s)
    assert "--nthreads 1 --nworkers 4" in _command(s), "4 cores: 4 processes of 1 thread, as dask-jobqueue"


def test_clear_errors():
    with pytest.raises(ValueError, match="cores and how much memory"):
        SlurmCluster(dashboard_address=None)
    with pytest.raises(ValueError, match="processes"):
        SlurmCluster(cores=2, memory="1GB", processes=3, dashboard_address=None)
    with pytest.raises(TypeError, match="list of strings"):
        SlurmCluster(cores=2, memory="1GB", job_extra_directives="--exclusive", dashboard_address=None)
    with pytest.raises(ValueError, match="interface 'nope0' not found"):
        SlurmCluster(cores=1, memory="1GB", interface="nope0", dashboard_address=None)
    with pytest.raises(TypeError, match="unexpected"):
        SlurmCluster(cores=1, memory="1GB", bogus=1, dashboard_address=None)
    with PBSCluster(cores=1, memory="1GB", dashboard_address=None) as pbs:
        with pytest.raises(RuntimeError, match="'qsub' is not on PATH"):
            pbs.scale(1)
