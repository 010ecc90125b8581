"""The interface every deployment shares, as Dask's ``distributed.deploy``: :class:`Cluster`
(``scale``, ``adapt``, ``close``, ``dashboard_link``, ``get_logs``, ``Client(cluster)``) and
:class:`Adaptive`.

    >>> from oxidask.distributed import LocalCluster, Client
    >>> with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster:
    ...     adaptive = cluster.adapt(minimum=1, maximum=2)
    ...     with Client(cluster) as client:
    ...         client.submit(sum, [1, 2]).result()
    3
"""

from oxidask.distributed.deploy.adaptive import Adaptive
from oxidask.distributed.deploy.cluster import Cluster, JobCluster

__all__ = ["Adaptive", "Cluster", "JobCluster"]
