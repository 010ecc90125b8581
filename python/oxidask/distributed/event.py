"""``Event``: a named flag shared by the cluster."""

import uuid

from oxidask.distributed._coord import request, resolve_client, seconds


class Event:
    """A cluster-wide event (Dask's ``Event``): ``wait`` blocks until some client or task
    calls ``set``.

    >>> from oxidask.distributed import Client, Event
    >>> with Client(n_workers=1, threads_per_worker=1) as client:
    ...     ready = Event("ready")
    ...     ready.wait(timeout=0.1), ready.set(), ready.wait()
    (False, None, True)
    """

    def __init__(self, name=None, client=None):
        self.name = name or f"event-{uuid.uuid4().hex}"
        self._client = client

    @property
    def client(self):
        """The client it talks through (the default one unless given)."""
        self._client = resolve_client(self._client)
        return self._client

    def wait(self, timeout=None):
        """Waits until the event is set, at most ``timeout`` seconds; returns whether it is."""
        return request(self.client, "event_wait", self.name, timeout=seconds(timeout))

    def set(self):
        """Sets the event, waking every waiter."""
        request(self.client, "event_set", self.name)

    def clear(self):
        """Clears the event."""
        request(self.client, "event_clear", self.name)

    def is_set(self):
        """Whether the event is set."""
        return request(self.client, "event_is_set", self.name)

    def __reduce__(self):
        return Event, (self.name,)

    def __repr__(self):
        return f"<Event: {self.name}>"
