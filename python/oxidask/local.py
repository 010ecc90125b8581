"""The synchronous scheduler's ``get`` (Dask's ``dask.local.get_sync``), for debugging: one
task at a time on the calling thread, so ``pdb`` and profilers see everything."""


def get_sync(dsk, keys, **kwargs):
    """Computes ``keys`` of the raw graph ``dsk`` one task at a time on this thread."""
    from oxidask.base import get as _get

    return _get(dsk, keys, scheduler="sync", **kwargs)
