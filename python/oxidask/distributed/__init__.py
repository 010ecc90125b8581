"""Futures and clusters, as ``dask.distributed``: ``from oxidask.distributed import Client``.

    >>> from oxidask.distributed import Client, wait
    >>> with Client(n_workers=2, threads_per_worker=1) as client:
    ...     futures = client.map(lambda x: x * x, range(10))
    ...     total = client.submit(sum, futures)
    ...     total.result()
    285
"""

from oxidask._oxidask import Future
from oxidask.distributed.actor import Actor, ActorFuture, BaseActorFuture
from oxidask.distributed.client import (
    ALL_COMPLETED,
    FIRST_COMPLETED,
    Client,
    as_completed,
    default_client,
    fire_and_forget,
    futures_of,
    get_client,
    progress,
    wait,
)
from oxidask.distributed.cluster import LocalCluster
from oxidask.distributed.deploy import Adaptive, Cluster
from oxidask.distributed.event import Event
from oxidask.distributed.lock import Lock
from oxidask.distributed.pubsub import Pub, Sub
from oxidask.distributed.queues import Queue
from oxidask.distributed.semaphore import Semaphore
from oxidask.distributed.ssh import SSHCluster
from oxidask.distributed.variable import Variable
from oxidask.distributed.diagnostics import MemorySampler, get_task_stream, performance_report
from oxidask.distributed.security import Security
from oxidask.distributed.worker import get_worker, rejoin, secede, worker_client
from oxidask.exceptions import CancelledError, KilledWorker, TimeoutError

__all__ = [
    "ALL_COMPLETED",
    "Actor",
    "Adaptive",
    "ActorFuture",
    "BaseActorFuture",
    "CancelledError",
    "Event",
    "Client",
    "Cluster",
    "FIRST_COMPLETED",
    "Future",
    "KilledWorker",
    "LocalCluster",
    "Lock",
    "MemorySampler",
    "Pub",
    "SSHCluster",
    "Queue",
    "Security",
    "Semaphore",
    "Sub",
    "TimeoutError",
    "Variable",
    "as_completed",
    "default_client",
    "fire_and_forget",
    "futures_of",
    "get_client",
    "get_task_stream",
    "get_worker",
    "performance_report",
    "progress",
    "rejoin",
    "secede",
    "wait",
    "worker_client",
]
