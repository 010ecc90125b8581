"""The exceptions oxidask raises, named as Dask names them."""

import builtins
from concurrent.futures import CancelledError

TimeoutError = builtins.TimeoutError


class KilledWorker(Exception):
    """A task was running on workers that died, too many times: it may be what kills them
    (the scheduler's ``allowed_failures``)."""


class FutureCancelledError(CancelledError):
    """The result was cancelled before it was computed."""


class ClusterError(RuntimeError):
    """The cluster could not do what was asked: the connection to the scheduler was lost, a
    value could not be sent, no worker could run a task. The message says what to do."""


class TaskError(RuntimeError):
    """A task that was not a Python function (a Rust operation) failed."""


class RemoteError(Exception):
    """Stands for an exception raised in a task that could not be sent back as itself (it
    cannot be pickled); the message names its type and says what it said."""


__all__ = [
    "CancelledError",
    "ClusterError",
    "FutureCancelledError",
    "KilledWorker",
    "RemoteError",
    "TaskError",
    "TimeoutError",
]
