"""SLURM, PBS and SGE: the directive lines and commands of each queue system (the rest is
:class:`~oxidask.jobqueue.core.JobQueueCluster`)."""

from oxidask.jobqueue.core import JobQueueCluster, _mem_mib


class SlurmCluster(JobQueueCluster):
    """Workers as SLURM jobs (``sbatch``/``scancel``), as dask-jobqueue's ``SLURMCluster``.
    Config: ``jobqueue.slurm.*``.

    >>> from oxidask.jobqueue import SlurmCluster
    >>> cluster = SlurmCluster(cores=8, memory="16GiB", queue="normal", account="proj")  # doctest: +SKIP
    >>> cluster.scale(jobs=2)  # doctest: +SKIP
    """

    config_name = "slurm"
    _directive = "#SBATCH"
    submit_command = "sbatch"
    cancel_command = "scancel"

    def _directives(self, name):
        p = self._directive
        lines = [f"{p} -J {name}"]
        if self.log_directory is not None:
            lines += [f"{p} -e {self.log_directory}/{name}-%j.err", f"{p} -o {self.log_directory}/{name}-%j.out"]
        if self.queue:
            lines.append(f"{p} -p {self.queue}")
        if self.account:
            lines.append(f"{p} -A {self.account}")
        lines += [f"{p} -n 1", f"{p} --cpus-per-task={self.job_cpu}"]
        mem = self.job_mem if self.job_mem is not None else f"{_mem_mib(self.memory)}M"
        lines.append(f"{p} --mem={mem}")
        if self.walltime:
            lines.append(f"{p} -t {self.walltime}")
        return lines


class PBSCluster(JobQueueCluster):
    """Workers as PBS/Torque jobs (``qsub``/``qdel``), as dask-jobqueue's ``PBSCluster``.
    Config: ``jobqueue.pbs.*``; ``resource_spec`` defaults to
    ``select=1:ncpus=CORES:mem=MEMORY``.

    >>> from oxidask.jobqueue import PBSCluster
    >>> print(PBSCluster(cores=4, memory="8GB").job_script())  # doctest: +SKIP
    """

    config_name = "pbs"
    _directive = "#PBS"
    submit_command = "qsub"
    cancel_command = "qdel"

    def _directives(self, name):
        p = self._directive
        lines = [f"{p} -N {name}"]
        if self.queue:
            lines.append(f"{p} -q {self.queue}")
        if self.account:
            lines.append(f"{p} -A {self.account}")
        spec = self.resource_spec or f"select=1:ncpus={self.job_cpu}:mem={_mem_mib(self.memory)}MB"
        lines.append(f"{p} -l {spec}")
        if self.walltime:
            lines.append(f"{p} -l walltime={self.walltime}")
        if self.log_directory is not None:
            lines += [f"{p} -e {self.log_directory}/", f"{p} -o {self.log_directory}/"]
        return lines


class SGECluster(JobQueueCluster):
    """Workers as Sun/Son of/Univa Grid Engine jobs (``qsub``/``qdel``), as dask-jobqueue's
    ``SGECluster``. Config: ``jobqueue.sge.*``; ``account`` (or ``project``) becomes ``-P``.

    >>> from oxidask.jobqueue import SGECluster
    >>> print(SGECluster(cores=4, memory="8GB", resource_spec="h_vmem=8G").job_script())  # doctest: +SKIP
    """

    config_name = "sge"
    _directive = "#$"
    submit_command = "qsub"
    cancel_command = "qdel"

    def _directives(self, name):
        p = self._directive
        lines = [f"{p} -N {name}"]
        if self.queue:
            lines.append(f"{p} -q {self.queue}")
        if self.account:
            lines.append(f"{p} -P {self.account}")
        if self.resource_spec:
            lines.append(f"{p} -l {self.resource_spec}")
        if self.walltime:
            lines.append(f"{p} -l h_rt={self.walltime}")
        if self.log_directory is not None:
            lines += [f"{p} -e {self.log_directory}/", f"{p} -o {self.log_directory}/"]
        lines += [f"{p} -cwd", f"{p} -j y"]
        return lines


#: dask-jobqueue's spelling.
SLURMCluster = SlurmCluster
