"""The threaded scheduler's ``get`` (Dask's ``dask.threaded.get``)."""


def get(dsk, keys, num_workers=None, **kwargs):
    """Computes ``keys`` of the raw graph ``dsk`` on oxidask's threaded pool."""
    from oxidask.base import get as _get

    return _get(dsk, keys, scheduler="threads", num_workers=num_workers, **kwargs)
