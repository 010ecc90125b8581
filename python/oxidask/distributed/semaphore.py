"""``Semaphore``: a named semaphore shared by the cluster."""

import collections
import uuid

from oxidask.distributed._coord import next_id, request, resolve_client, seconds


class Semaphore:
    """At most ``max_leases`` holders at once across the cluster (Dask's ``Semaphore``), e.g.
    to limit tasks hitting a database. A lease lives as long as the connection of the client
    that took it (a task's: its worker's), so leases of a process that dies return at once —
    where Dask expires them after ``distributed.scheduler.locks.lease-timeout``.

    >>> from oxidask.distributed import Client, Semaphore
    >>> with Client(n_workers=1, threads_per_worker=1) as client:
    ...     sem = Semaphore(max_leases=2, name="database")
    ...     with sem:
    ...         sem.get_value()
    1
    """

    def __init__(self, max_leases=1, name=None, scheduler_rpc=None, loop=None, client=None):
        self.name = name or f"semaphore-{uuid.uuid4().hex}"
        self.max_leases = max_leases
        self._client = client
        self._leases = collections.deque()
        self._made = False
        try:
            self.client  # made now, as Dask does, when a client is connected
        except ValueError:
            pass  # no client yet: made on first use

    @property
    def client(self):
        """The client it talks through (the default one unless given)."""
        self._client = resolve_client(self._client)
        if not self._made:
            request(self._client, "semaphore_create", self.name, size=int(self.max_leases))
            self._made = True
        return self._client

    def acquire(self, timeout=None):
        """Takes a lease, waiting at most ``timeout`` seconds; returns whether it got one."""
        lease = next_id()
        got = request(self.client, "semaphore_acquire", self.name, id=lease, timeout=seconds(timeout))
        if got:
            self._leases.append(lease)
        return got

    def release(self):
        """Returns this object's oldest lease; ``RuntimeError`` if it holds none."""
        if not self._leases:
            raise RuntimeError("Released too often")
        request(self.client, "semaphore_release", self.name, id=self._leases.popleft())
        return True

    def get_value(self):
        """Leases held now, by anyone."""
        return request(self.client, "semaphore_value", self.name)

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()

    def __reduce__(self):
        return Semaphore, (self.max_leases, self.name)

    def __repr__(self):
        return f"<Semaphore: {self.name} max_leases={self.max_leases}>"
