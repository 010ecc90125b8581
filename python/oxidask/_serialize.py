"""Pickling for values that leave the process, as Dask does it.

Plain pickle (protocol 5, large buffers out of band) when it works and the result does not
refer to ``__main__`` (which another process cannot import); cloudpickle otherwise, which
pickles functions and classes of ``__main__`` by value.
"""

import pickle

import cloudpickle


def dumps(obj):
    """``(header bytes, [contiguous memoryviews])`` for ``obj``."""
    buffers = []
    try:
        head = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
        if b"__main__" in head:
            raise pickle.PicklingError("refers to __main__")
    except Exception:
        buffers.clear()
        head = cloudpickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    return head, [b.raw() for b in buffers]


def loads(head, buffers):
    """What :func:`dumps` made, back (buffers are used in place, not copied)."""
    return pickle.loads(head, buffers=buffers)
