"""``Queue``: a named first-in first-out queue shared by the cluster."""

import uuid

from oxidask.distributed._coord import loads, request, resolve_client, seconds


class Queue:
    """A cluster-wide queue (Dask's ``Queue``): any client or task puts and gets items —
    picklable objects or futures (kept computed while queued). With ``maxsize`` a ``put``
    waits for room. Items go through the scheduler, so keep them small: pass large data as
    futures.

    >>> from oxidask.distributed import Client, Queue
    >>> with Client(n_workers=1, threads_per_worker=1) as client:
    ...     q = Queue("jobs")
    ...     q.put(1); q.put(2)
    ...     q.get(), q.qsize(), q.get(batch=True)
    (1, 1, [2])
    """

    def __init__(self, name=None, client=None, maxsize=0):
        self.name = name or f"queue-{uuid.uuid4().hex}"
        self.maxsize = maxsize
        self._client = client
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
            request(self._client, "queue_create", self.name, size=int(self.maxsize))
            self._made = True
        return self._client

    def put(self, value, timeout=None, **kwargs):
        """Appends ``value``; in a full bounded queue waits for room, at most ``timeout``
        (then ``TimeoutError``)."""
        request(self.client, "queue_put", self.name, value, timeout=seconds(timeout))

    def get(self, timeout=None, batch=False, **kwargs):
        """The next item, waiting at most ``timeout`` (then ``TimeoutError``).
        ``batch=True`` returns every item there is now (a list, maybe empty); ``batch=n``
        waits for ``n`` items and returns them as a list."""
        if batch is True:
            count = 0
        elif batch is False:
            count = 1
        elif isinstance(batch, int) and batch > 0:
            count = batch
        else:
            raise ValueError(f"batch must be True, False or a positive int, not {batch!r}")
        items = request(self.client, "queue_get", self.name, timeout=seconds(timeout), count=count)
        values = [loads(i) for i in items]
        return values[0] if batch is False else values

    def qsize(self, **kwargs):
        """Items in the queue now."""
        return request(self.client, "queue_size", self.name)

    def __reduce__(self):
        return type(self), (self.name, None, self.maxsize)

    def __repr__(self):
        return f"<Queue: {self.name} maxsize={self.maxsize}>"
