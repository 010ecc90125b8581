"""Workers as batch jobs of HPC job queues, as ``dask_jobqueue``: ``SlurmCluster``
(``SLURMCluster``), ``PBSCluster``, ``SGECluster``.

    >>> from oxidask.jobqueue import SlurmCluster
    >>> from oxidask.distributed import Client
    >>> cluster = SlurmCluster(cores=4, memory="8GiB", walltime="01:00:00")  # doctest: +SKIP
    >>> cluster.adapt(minimum=1, maximum=10)  # doctest: +SKIP
    >>> client = Client(cluster)  # doctest: +SKIP
"""

from oxidask.jobqueue.clusters import PBSCluster, SGECluster, SLURMCluster, SlurmCluster
from oxidask.jobqueue.core import JobQueueCluster, config_value

__all__ = ["JobQueueCluster", "PBSCluster", "SGECluster", "SLURMCluster", "SlurmCluster", "config_value"]
