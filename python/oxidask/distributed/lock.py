"""``Lock``: a named lock shared by the cluster."""

import uuid

from oxidask.distributed._coord import next_id, request, resolve_client, seconds


class Lock:
    """A cluster-wide lock (Dask's ``Lock``). It is held by this object on its client's
    connection: ``release`` lets it go, and so does the connection closing (the process
    exiting or dying), so a dead holder never blocks the others. Locks pass to tasks.

    >>> from oxidask.distributed import Client, Lock
    >>> with Client(n_workers=1, threads_per_worker=1) as client:
    ...     lock = Lock("resource")
    ...     with lock:
    ...         lock.locked()
    True
    """

    def __init__(self, name=None, client=None, scheduler_rpc=None, loop=None):
        self.name = name or f"lock-{uuid.uuid4().hex}"
        self._client = client
        self._id = next_id()
        self._held = False

    @property
    def client(self):
        """The client it talks through (the default one unless given)."""
        self._client = resolve_client(self._client)
        return self._client

    def acquire(self, blocking=True, timeout=None):
        """Acquires the lock, waiting at most ``timeout`` seconds (``None``: as long as it
        takes; ``blocking=False``: not at all). Returns whether it was acquired."""
        if not blocking and timeout is not None:
            raise ValueError("can't specify a timeout for a non-blocking call")
        got = request(
            self.client, "lock_acquire", self.name, id=self._id, blocking=blocking, timeout=seconds(timeout)
        )
        self._held = self._held or got
        return got

    def release(self):
        """Releases the lock; ``RuntimeError`` if this object does not hold it."""
        if not self._held:
            raise RuntimeError("Released too often")
        request(self.client, "lock_release", self.name, id=self._id)
        self._held = False
        return True

    def locked(self):
        """Whether anyone holds the lock."""
        return request(self.client, "lock_locked", self.name)

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()

    def __reduce__(self):
        return Lock, (self.name,)

    def __repr__(self):
        return f"<Lock: {self.name}>"
