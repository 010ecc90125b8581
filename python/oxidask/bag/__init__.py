"""``oxidask.bag``: Dask's bag — parallel lists of Python objects — on oxidask's engine.

``import oxidask.bag as db`` in place of ``import dask.bag as db``::

    >>> import oxidask.bag as db
    >>> words = db.from_sequence(["a b", "b c", "c"], npartitions=2).str.split().flatten()
    >>> words.frequencies(sort=True).compute()
    [('b', 2), ('c', 2), ('a', 1)]
    >>> words.count().compute()
    5

A bag is partitions of Python records, each a Python list made by one Python task, so it runs
on every scheduler (``threads`` by default, ``sync``, ``processes``, a distributed
``Client``) and mixes with ``oxidask.delayed`` (``from_delayed``, ``to_delayed``).
"""

from oxidask.bag.core import (
    Bag,
    Item,
    bag_map as map,
    bag_range as range,
    bag_zip as zip,
    concat,
    from_delayed,
    from_sequence,
    map_partitions,
)
from oxidask.bag.text import from_url, read_text, to_textfiles

__all__ = [
    "Bag",
    "Item",
    "concat",
    "from_delayed",
    "from_sequence",
    "from_url",
    "map",
    "map_partitions",
    "range",
    "read_text",
    "to_textfiles",
    "zip",
]
