"""``Variable``: a named value every client and task of the cluster can set and get."""

import uuid

from oxidask.distributed._coord import loads, request, resolve_client, seconds


class Variable:
    """A named value shared by the cluster (Dask's ``Variable``). ``get`` waits until the
    value is set; a stored future stays computed until the variable is set again or deleted.
    Variables pass to tasks, which reach the same value through their worker's client.

    >>> from oxidask.distributed import Client, Variable
    >>> with Client(n_workers=1, threads_per_worker=1) as client:
    ...     stop = Variable("stop")
    ...     stop.set(False)
    ...     stop.get()
    False
    """

    def __init__(self, name=None, client=None):
        self.name = name or f"variable-{uuid.uuid4().hex}"
        self._client = client

    @property
    def client(self):
        """The client it talks through (the default one unless given)."""
        self._client = resolve_client(self._client)
        return self._client

    def set(self, value, timeout="30 s", **kwargs):
        """Sets the value: any picklable object, or a future (kept computed while stored)."""
        request(self.client, "variable_set", self.name, value)

    def get(self, timeout=None, **kwargs):
        """The value, waiting until it is set; ``TimeoutError`` after ``timeout`` (seconds or
        ``"200ms"``)."""
        return loads(request(self.client, "variable_get", self.name, timeout=seconds(timeout)))

    def delete(self):
        """Deletes the value (a stored future is released)."""
        request(self.client, "variable_delete", self.name)

    def __reduce__(self):
        return Variable, (self.name,)

    def __repr__(self):
        return f"<Variable: {self.name}>"
