"""What a task running on a worker can call: ``secede``/``rejoin``, ``worker_client`` and
``get_worker``."""

import contextlib

from oxidask import _oxidask


def secede():
    """Gives up this task's worker thread while it waits on other tasks (the worker starts
    another task in its place). Outside a worker's task it does nothing."""
    _oxidask.secede()


def rejoin():
    """Takes the worker thread back after :func:`secede`."""
    _oxidask.rejoin()


@contextlib.contextmanager
def worker_client(timeout=None, separate_thread=True):
    """Inside a task: a client of the worker's cluster, with the task seceded from the
    worker's threads while the block runs (so it may wait on the tasks it submits)."""
    from oxidask.distributed.client import get_client

    client = get_client()
    did = _oxidask.secede()
    try:
        yield client
    finally:
        if did:
            _oxidask.rejoin()


class WorkerInfo:
    """The worker a task runs on: ``name``, ``address`` and ``scheduler`` address."""

    def __init__(self, ctx):
        self.name = ctx["name"]
        self.address = ctx["address"]
        self.scheduler_address = ctx["scheduler"]

    def __repr__(self):
        return f"<Worker {self.name!r} at {self.address}>"


def get_worker():
    """The worker running the current task; ``ValueError`` outside a task on a worker."""
    ctx = _oxidask.worker_context()
    if ctx is None:
        raise ValueError("No worker found: get_worker() works inside a task running on a worker")
    return WorkerInfo(ctx)
