"""``Pub`` and ``Sub``: messages on a named topic, from publishers to every subscriber.

Dask sends them worker to worker once the scheduler has introduced the two sides (and
recent Dask releases dropped them); here they go through the scheduler, which buffers each
subscriber's messages until it reads them (the latest 100,000)."""

import pickle

import cloudpickle

from oxidask.distributed._coord import next_id, request, resolve_client, seconds


class Pub:
    """Publishes messages (picklable objects) on a topic; a message reaches the ``Sub``s of
    the topic that exist when it is sent, and is dropped if there are none.

    >>> from oxidask.distributed import Client, Pub, Sub
    >>> with Client(n_workers=1, threads_per_worker=1) as client:
    ...     sub = Sub("news")
    ...     Pub("news").put("hello")
    ...     sub.get(timeout=5)
    'hello'
    """

    def __init__(self, name, worker=None, client=None):
        self.name = name
        self._client = client

    @property
    def client(self):
        """The client it talks through (the default one unless given)."""
        self._client = resolve_client(self._client)
        return self._client

    def put(self, msg):
        """Sends ``msg`` to every current subscriber."""
        request(self.client, "publish", self.name, raw=cloudpickle.dumps(msg))

    def __reduce__(self):
        return Pub, (self.name,)

    def __repr__(self):
        return f"<Pub: {self.name}>"


class Sub:
    """Receives the messages published on a topic from its creation on (see ``Pub``).
    Iterating waits for message after message."""

    def __init__(self, name, worker=None, client=None):
        self.name = name
        self._id = next_id()
        self._client = resolve_client(client)
        request(self._client, "subscribe", self.name, id=self._id)

    @property
    def client(self):
        """The client it talks through."""
        return self._client

    def get(self, timeout=None):
        """The next message, waiting at most ``timeout`` seconds (then ``TimeoutError``)."""
        msgs = request(self._client, "sub_get", self.name, id=self._id, count=1, timeout=seconds(timeout))
        return pickle.loads(msgs[0])

    @property
    def buffer(self):
        """Every message waiting now (taken)."""
        msgs = request(self._client, "sub_get", self.name, id=self._id, count=0)
        return [pickle.loads(m) for m in msgs]

    def __iter__(self):
        while True:
            yield self.get()

    def close(self):
        """Ends the subscription (messages buffered for it are dropped)."""
        if self._id is not None and not self._client._core.closed:
            request(self._client, "unsubscribe", self.name, id=self._id)
        self._id = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __reduce__(self):
        return Sub, (self.name,)

    def __repr__(self):
        return f"<Sub: {self.name}>"
