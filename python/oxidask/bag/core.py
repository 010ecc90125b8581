"""The ``Bag`` collection and its ``Item`` results, as Dask's ``dask.bag.core``.

A bag is a list of partitions, each a lazy Python list made by one Python task
(:class:`oxidask.Delayed`), so every scheduler runs it: ``threads``, ``sync``, ``processes``
and a distributed ``Client``. A bag's operations add tasks over its partitions; reductions
add a tree of tasks (``split_every`` partitions per task, 8 by default, as in Dask).
"""

import builtins
import inspect
import itertools
import math
from fnmatch import fnmatch
from functools import partial

from oxidask import base
from oxidask._oxidask import Delayed, DelayedFunction, delayed_value, funcname
from oxidask.bag import _chunk
from oxidask.bag._chunk import no_default

tokenize = base.tokenize

_SPLIT_EVERY = 8


def _task_fn(func):
    """A function whose calls are tasks with the key given at each call."""
    return DelayedFunction(func, pure=False)


def _key_split(name):
    words = name.split("-")
    while len(words) > 1:
        last = words[-1]
        if last and (all(c in "0123456789abcdef" for c in last) or last.isdigit()):
            words.pop()
        else:
            break
    return "-".join(words)


def _split_every(split_every, npartitions):
    if split_every is None:
        return _SPLIT_EVERY
    if split_every is False:
        return max(npartitions, 2)
    if not isinstance(split_every, int) or isinstance(split_every, bool) or split_every < 2:
        raise ValueError(f"split_every must be an integer >= 2 (or False for one step), not {split_every!r}")
    return split_every


def _lazy(x):
    """The lazy value behind an ``Item`` or ``Delayed`` argument, else ``None``."""
    if isinstance(x, Item):
        return x._value
    if isinstance(x, Delayed):
        return x
    return None


def _unlazy_arg(x):
    """An argument passed to every call: an ``Item`` becomes its lazy value (the task gets its
    result); a ``Bag`` here is an error."""
    if isinstance(x, Bag):
        raise TypeError("a Bag cannot be passed here; pass it as an argument of map or map_partitions")
    lazy = _lazy(x)
    return x if lazy is None else lazy


def _takes_multiple_arguments(func):
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return False
    required = [
        p
        for p in sig.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    return len(required) > 1


def finalize(results):
    """A bag's computed value from its computed partitions: one list of all records (Dask's
    ``finalize``; partitions that are not sequences, made by ``map_partitions``, are listed
    as they are)."""
    if not results:
        return results
    if isinstance(results[0], (list, tuple, set, frozenset, dict, range)) or (
        hasattr(results[0], "__iter__") and not isinstance(results[0], (str, bytes))
    ):
        return list(itertools.chain.from_iterable(results))
    return list(results)


class Item:
    """One lazy value made from a bag, like the result of ``Bag.count()`` or ``Bag.sum()``.

    ``compute()`` gives the value; an ``Item`` can be passed to ``Bag.map``,
    ``Bag.map_partitions`` and ``Bag.starmap`` as an argument (every call gets its value).
    ``int(item)``, ``float(item)`` and ``bool(item)`` compute it, as in Dask.

    >>> import oxidask.bag as db
    >>> b = db.from_sequence([1, 2, 3, 4], npartitions=2)
    >>> total = b.sum()
    >>> total.compute()
    10
    >>> b.map(lambda x, t: x / t, total).compute()
    [0.1, 0.2, 0.3, 0.4]
    """

    def __init__(self, dsk, key):
        from oxidask._graphs import from_dict

        (value,) = from_dict(dsk, [key])
        self._value = value
        self.key = key

    @classmethod
    def _from(cls, value, key):
        item = cls.__new__(cls)
        item._value = value
        item.key = key
        return item

    @staticmethod
    def from_delayed(value):
        """An ``Item`` standing for a ``Delayed`` value."""
        if not isinstance(value, Delayed):
            raise TypeError(f"Item.from_delayed takes a Delayed, not {type(value).__name__}")
        return Item._from(value, value.key)

    @property
    def name(self):
        return self.key

    @property
    def dask(self):
        return self.__dask_graph__()

    def __dask_graph__(self):
        return self._value.__dask_graph__()

    def __dask_keys__(self):
        return [self.key]

    def __dask_tokenize__(self):
        return self.key

    def __oxidask_collection__(self):
        return [self._value], _finalize_item, partial(_rebuild_item, self.key)

    def __oxidask_delayed__(self):
        """The lazy value a delayed call or ``client.submit`` receives for this item."""
        return self._value

    def __repr__(self):
        return f"Item('{self.key}')"

    def __reduce__(self):
        raise TypeError(
            f"an Item ({self.key}) cannot be pickled; compute it first, or pass it to a delayed "
            "function or client.submit (which receive its value), or pass item.to_delayed()"
        )

    def compute(self, **kwargs):
        """The value (keywords as :func:`oxidask.compute`: ``scheduler=``, ...)."""
        return base.compute(self, **kwargs)[0]

    def persist(self, **kwargs):
        """An ``Item`` backed by the computed value (kept on the cluster with a ``Client``)."""
        return base.persist(self, **kwargs)[0]

    def visualize(self, filename="mydask", format=None, **kwargs):
        """Draws the graph with Graphviz (see :func:`oxidask.visualize`)."""
        return base.visualize(self, filename=filename, format=format, **kwargs)

    def apply(self, func):
        """A new ``Item``: ``func`` of this one's value."""
        key = f"{funcname(func)}-{tokenize(self, func, 'apply')}"
        return Item._from(_task_fn(func)(self._value, dask_key_name=key), key)

    def to_delayed(self, optimize_graph=True):
        """The ``Delayed`` value behind this item."""
        return self._value

    def __int__(self):
        return int(self.compute())

    def __float__(self):
        return float(self.compute())

    def __complex__(self):
        return complex(self.compute())

    def __bool__(self):
        return bool(self.compute())


def _finalize_item(results):
    return results[0]


def _rebuild_item(key, values):
    return Item._from(values[0], key)


def _rebuild_bag(name, cls, values):
    return cls._new(values, name)


class StringAccessor:
    """``bag.str``: the methods of ``str`` mapped over a bag of strings, and ``match``.

    >>> import oxidask.bag as db
    >>> b = db.from_sequence(['Alice Smith', 'Bob Jones', 'Charlie Smith'])
    >>> b.str.lower().compute()
    ['alice smith', 'bob jones', 'charlie smith']
    >>> b.str.match('*Smith').compute()
    ['Alice Smith', 'Charlie Smith']
    >>> b.str.split(' ').compute()
    [['Alice', 'Smith'], ['Bob', 'Jones'], ['Charlie', 'Smith']]
    """

    def __init__(self, bag):
        self._bag = bag

    def __dir__(self):
        return sorted(set(dir(type(self)) + dir(str)))

    def _strmap(self, key, *args, **kwargs):
        b = self._bag
        name = f"{key}-{tokenize(b, key, 'str', args, kwargs)}"
        return b._with(name, _chunk.str_method_chunk, key, args, kwargs)

    def __getattr__(self, key):
        if not key.startswith("_") and key in dir(str):
            method = partial(self._strmap, key)
            method.__doc__ = getattr(str, key).__doc__
            return method
        raise AttributeError(f"'str' has no method {key!r} to map over a bag")

    def match(self, pattern):
        """The strings that match the shell-style ``pattern`` (``fnmatch``)."""
        return self._bag.filter(partial(fnmatch, pat=pattern))


class Bag:
    """A parallel collection of Python objects, in partitions.

    Build one with :func:`from_sequence`, :func:`read_text`, :func:`from_delayed` or
    :func:`range`; its methods return new bags (lazy) or :class:`Item` values; ``compute()``
    gives a list of the records.

    >>> import oxidask.bag as db
    >>> b = db.from_sequence(range(5))
    >>> b.filter(lambda x: x % 2 == 0).map(lambda x: x * 10).compute()
    [0, 20, 40]

    ``Bag(dsk, name, npartitions)`` makes a bag of the raw graph ``dsk`` whose keys
    ``(name, 0)`` ... ``(name, npartitions - 1)`` are the partitions (Dask's expert form).
    """

    def __init__(self, dsk, name, npartitions):
        from oxidask._graphs import from_dict

        self._parts = from_dict(dsk, [(name, i) for i in builtins.range(npartitions)])
        self.name = name
        self.npartitions = npartitions

    @classmethod
    def _new(cls, parts, name):
        bag = cls.__new__(cls)
        bag._parts = list(parts)
        bag.name = name
        bag.npartitions = len(bag._parts)
        return bag

    # -- the collection protocol ---------------------------------------------------------

    def __dask_graph__(self):
        out = {}
        for p in self._parts:
            out.update(p.__dask_graph__())
        return out

    @property
    def dask(self):
        return self.__dask_graph__()

    def __dask_keys__(self):
        return [(self.name, i) for i in builtins.range(self.npartitions)]

    def __dask_tokenize__(self):
        return self.name

    def __oxidask_collection__(self):
        return list(self._parts), finalize, partial(_rebuild_bag, self.name, type(self))

    def __oxidask_delayed__(self):
        """The lazy value a delayed call or ``client.submit`` receives for this bag: its
        records as one list (as Dask passes a bag's computed value)."""
        return _task_fn(finalize)(self._parts, dask_key_name=f"finalize-{self.name}")

    def __str__(self):
        return f"dask.bag<{_key_split(self.name)}, npartitions={self.npartitions}>"

    __repr__ = __str__

    def __reduce__(self):
        raise TypeError(
            f"a Bag ({self.name}) cannot be pickled; compute it first, or pass it to a delayed "
            "function or client.submit (which receive its records), or pass bag.to_delayed()"
        )

    def compute(self, **kwargs):
        """The records, as one list (keywords as :func:`oxidask.compute`: ``scheduler=``...)."""
        return base.compute(self, **kwargs)[0]

    def persist(self, **kwargs):
        """The same bag backed by its computed partitions (kept on the workers when a
        ``Client`` runs it), so later work starts from them."""
        return base.persist(self, **kwargs)[0]

    def visualize(self, filename="mydask", format=None, **kwargs):
        """Draws the graph with Graphviz (see :func:`oxidask.visualize`)."""
        return base.visualize(self, filename=filename, format=format, **kwargs)

    def to_delayed(self, optimize_graph=True):
        """One ``Delayed`` per partition, each computing to a list of records.

        >>> import oxidask.bag as db
        >>> parts = db.from_sequence(range(4), npartitions=2).to_delayed()
        >>> [p.compute() for p in parts]
        [[0, 1], [2, 3]]
        """
        return list(self._parts)

    def __iter__(self):
        return iter(self.compute())

    str = property(fget=StringAccessor, doc="String methods mapped over the records.")

    def _with(self, name, func, *args, parts=None):
        """A bag of ``func(*args, partition)`` per partition, keys ``(name, i)``."""
        f = _task_fn(partial(func, *args) if args else func)
        parts = self._parts if parts is None else parts
        return Bag._new([f(p, dask_key_name=(name, i)) for i, p in enumerate(parts)], name)

    # -- element-wise --------------------------------------------------------------------

    def map(self, func, *args, **kwargs):
        """``func`` applied to each record; extra arguments may be bags (taken record by
        record, partitioned alike), ``Item``/``Delayed`` values or plain objects (passed to
        every call).

        >>> import oxidask.bag as db
        >>> b = db.from_sequence(range(5), npartitions=2)
        >>> b.map(lambda x: x + 1).compute()
        [1, 2, 3, 4, 5]
        >>> from operator import add
        >>> b.map(add, db.from_sequence(range(5, 10), npartitions=2)).compute()
        [5, 7, 9, 11, 13]
        >>> b.map(add, b.max()).compute()
        [4, 5, 6, 7, 8]
        """
        return bag_map(func, self, *args, **kwargs)

    def starmap(self, func, **kwargs):
        """``func(*record, **kwargs)`` for each record (a tuple); keyword values may be
        ``Item`` or ``Delayed``.

        >>> import oxidask.bag as db
        >>> db.from_sequence([(1, 2), (3, 4)]).starmap(lambda x, y, z=0: x + y + z, z=10).compute()
        [13, 17]
        """
        name = f"{funcname(func)}-{tokenize(self, func, 'starmap', **kwargs)}"
        kw = {k: _unlazy_arg(v) for k, v in kwargs.items()}
        f = _task_fn(partial(_chunk.starmap_chunk, func))
        parts = [f(p, kw, dask_key_name=(name, i)) for i, p in enumerate(self._parts)]
        return Bag._new(parts, name)

    def filter(self, predicate):
        """The records for which ``predicate`` is true.

        >>> import oxidask.bag as db
        >>> db.from_sequence(range(5)).filter(lambda x: x % 2 == 0).compute()
        [0, 2, 4]
        """
        name = f"filter-{funcname(predicate)}-{tokenize(self, predicate)}"
        return self._with(name, _chunk.filter_chunk, predicate)

    def random_sample(self, prob, random_state=None):
        """Each record kept with probability ``prob``; ``random_state`` (an int or a
        ``random.Random``) makes the sample repeatable.

        >>> import oxidask.bag as db
        >>> b = db.from_sequence(range(10), npartitions=2)
        >>> b.random_sample(0.5, 43).compute() == b.random_sample(0.5, 43).compute()
        True
        """
        if not 0 <= prob <= 1:
            raise ValueError("prob must be a number in the interval [0, 1]")
        import random

        if not isinstance(random_state, random.Random):
            random_state = random.Random(random_state)
        seeds = [random_state.getrandbits(64) for _ in self._parts]
        name = f"random-sample-{tokenize(self, prob, seeds)}"
        f = _task_fn(partial(_chunk.random_sample, prob))
        return Bag._new([f(seed, p, dask_key_name=(name, i)) for i, (seed, p) in enumerate(zip(seeds, self._parts))], name)

    def remove(self, predicate):
        """The records for which ``predicate`` is false.

        >>> import oxidask.bag as db
        >>> db.from_sequence(range(5)).remove(lambda x: x % 2 == 0).compute()
        [1, 3]
        """
        name = f"remove-{funcname(predicate)}-{tokenize(self, predicate)}"
        return self._with(name, _chunk.remove_chunk, predicate)

    def map_partitions(self, func, *args, **kwargs):
        """``func`` applied to each whole partition (a list); it returns the new partition
        (any iterable). Extra arguments may be bags (their partition), ``Item``/``Delayed``
        values or plain objects.

        >>> import oxidask.bag as db
        >>> b = db.from_sequence(range(1, 7), npartitions=3)
        >>> b.map_partitions(lambda part: [sum(part)]).compute()
        [3, 7, 11]
        """
        return map_partitions(func, self, *args, **kwargs)

    def pluck(self, key, default=no_default):
        """``record[key]`` of each record; a list of keys gives tuples; with ``default``,
        records missing the key give it.

        >>> import oxidask.bag as db
        >>> b = db.from_sequence([{'name': 'Alice', 'credits': [1, 2]}, {'name': 'Bob', 'credits': [10]}])
        >>> b.pluck('name').compute()
        ['Alice', 'Bob']
        >>> b.pluck('credits').pluck(0).compute()
        [1, 10]
        """
        name = f"pluck-{tokenize(self, key, default)}"
        return self._with(name, _chunk.pluck_chunk, key, default)

    def unzip(self, n):
        """``n`` bags: the first, second, ... element of each record (a tuple)."""
        return tuple(self.pluck(i) for i in builtins.range(n))

    def flatten(self):
        """The elements of each record (a sequence), one after another.

        >>> import oxidask.bag as db
        >>> db.from_sequence([[1], [2, 3]]).flatten().compute()
        [1, 2, 3]
        """
        name = f"flatten-{tokenize(self)}"
        return self._with(name, _chunk.flatten_chunk)

    # -- reductions ----------------------------------------------------------------------

    def reduction(self, perpartition, aggregate, split_every=None, out_type=Item, name=None):
        """A reduction: ``perpartition`` of each partition, then ``aggregate`` of lists of
        those results, in a tree of ``split_every`` (8) results per task. Returns an
        ``Item`` (``out_type=Bag``: a one-partition bag whose partition is the result).

        >>> import oxidask.bag as db
        >>> db.from_sequence(range(10), npartitions=4).reduction(sum, sum).compute()
        45
        """
        split_every = _split_every(split_every, self.npartitions)
        token = tokenize(self, perpartition, aggregate, split_every)
        a = f"{name or funcname(perpartition)}-part-{token}"
        is_last = self.npartitions == 1
        part = _task_fn(partial(_chunk.empty_safe_apply, perpartition))
        level = [part(p, is_last, dask_key_name=(a, i)) for i, p in enumerate(self._parts)]
        fmt = f"{name or funcname(aggregate)}-aggregate-{token}"
        agg = _task_fn(partial(_chunk.empty_safe_aggregate, aggregate))
        depth = 0
        while len(level) > split_every:
            c = fmt + str(depth)
            level = [
                agg(level[j : j + split_every], False, dask_key_name=(c, i))
                for i, j in enumerate(builtins.range(0, len(level), split_every))
            ]
            depth += 1
        if out_type is Item:
            return Item._from(agg(level, True, dask_key_name=fmt), fmt)
        return Bag._new([agg(level, True, dask_key_name=(fmt, 0))], fmt)

    def fold(self, binop, combine=None, initial=no_default, split_every=None, out_type=Item):
        """A parallel ``functools.reduce``: ``binop`` folds each partition (starting from
        ``initial`` if given), ``combine`` (default ``binop``) folds those results.

        >>> import oxidask.bag as db
        >>> from operator import add
        >>> db.from_sequence(range(5), npartitions=2).fold(add).compute()
        10
        >>> db.from_sequence(range(5)).fold(lambda acc, x: acc | {x}, set.union, initial=set()).compute()
        {0, 1, 2, 3, 4}
        """
        combine = combine or binop
        return self.reduction(
            partial(_chunk.fold_part, binop, initial),
            partial(_chunk.fold_aggregate, combine),
            split_every=split_every,
            out_type=out_type,
            name=funcname(binop),
        )

    def frequencies(self, split_every=None, sort=False):
        """``(record, count)`` for each distinct record; ``sort=True`` orders them by count,
        largest first.

        >>> import oxidask.bag as db
        >>> db.from_sequence(['Alice', 'Bob', 'Alice']).frequencies(sort=True).compute()
        [('Alice', 2), ('Bob', 1)]
        """
        result = self.reduction(
            _chunk.frequencies,
            _chunk.merge_frequencies,
            out_type=Bag,
            split_every=split_every,
            name="frequencies",
        ).map_partitions(_chunk.dictitems)
        if sort:
            result = result.map_partitions(_chunk.sort_by_count)
        return result

    def topk(self, k, key=None, split_every=None):
        """The ``k`` largest records (by ``key`` if given; a key taking several arguments
        gets the record unpacked), largest first.

        >>> import oxidask.bag as db
        >>> b = db.from_sequence([10, 3, 5, 7, 11, 4])
        >>> b.topk(2).compute()
        [11, 10]
        >>> b.topk(2, lambda x: -x).compute()
        [3, 4]
        """
        if key is not None and callable(key) and _takes_multiple_arguments(key):
            key = partial(_chunk.apply_star, key)
        return self.reduction(
            partial(_chunk.topk, k, key),
            partial(_chunk.topk_aggregate, k, key),
            out_type=Bag,
            split_every=split_every,
            name="topk",
        )

    def distinct(self, key=None):
        """The distinct records (the first of each; by ``key``, a function or an item key).

        >>> import oxidask.bag as db
        >>> sorted(db.from_sequence(['Alice', 'Bob', 'Alice']).distinct())
        ['Alice', 'Bob']
        >>> db.from_sequence([{'name': 'Alice'}, {'name': 'Alice'}]).distinct(key='name').compute()
        [{'name': 'Alice'}]
        """
        return self.reduction(
            partial(_chunk.distinct, key),
            partial(_chunk.distinct_aggregate, key),
            out_type=Bag,
            name="distinct",
        )

    def sum(self, split_every=None):
        """The sum of the records."""
        return self.reduction(sum, sum, split_every=split_every)

    def max(self, split_every=None):
        """The largest record."""
        return self.reduction(max, max, split_every=split_every)

    def min(self, split_every=None):
        """The smallest record."""
        return self.reduction(min, min, split_every=split_every)

    def any(self, split_every=None):
        """Whether any record is true."""
        return self.reduction(any, any, split_every=split_every)

    def all(self, split_every=None):
        """Whether every record is true."""
        return self.reduction(all, all, split_every=split_every)

    def count(self, split_every=None):
        """The number of records.

        >>> import oxidask.bag as db
        >>> db.from_sequence([1, 2, 3]).count().compute()
        3
        """
        return self.reduction(_chunk.count, sum, split_every=split_every)

    def mean(self):
        """The arithmetic mean of the records (a float)."""
        return self.reduction(_chunk.mean_chunk, _chunk.mean_aggregate, split_every=False, name="mean")

    def var(self, ddof=0):
        """The variance of the records (``ddof`` as NumPy's)."""
        return self.reduction(
            _chunk.var_chunk, partial(_chunk.var_aggregate, ddof), split_every=False, name="var"
        )

    def std(self, ddof=0):
        """The standard deviation of the records (``ddof`` as NumPy's)."""
        return self.var(ddof=ddof).apply(math.sqrt)

    def foldby(self, key, binop, initial=no_default, combine=None, combine_initial=no_default, split_every=None):
        """A group-by and fold in one: ``(k, folded)`` for each key ``k = key(record)``
        (``key`` not callable: ``record[key]``), where ``binop(total, record)`` folds the
        records of a key in each partition (from ``initial`` if given) and
        ``combine(total, total)`` (default ``binop``) merges partitions (from
        ``combine_initial`` if given). Much cheaper than ``groupby``: no shuffle.

        >>> import oxidask.bag as db
        >>> b = db.from_sequence(range(10), npartitions=3)
        >>> sorted(b.foldby(lambda x: x % 2 == 0, lambda acc, x: acc + x, 0).compute())
        [(False, 25), (True, 20)]
        """
        split_every = _split_every(split_every, self.npartitions)
        if combine is None:
            combine = binop
        token = tokenize(self, key, binop, initial, combine, combine_initial)
        a = f"foldby-a-{token}"
        f = _task_fn(partial(_chunk.reduceby, key, binop, initial))
        level = [f(p, dask_key_name=(a, i)) for i, p in enumerate(self._parts)]
        merge = _task_fn(partial(_chunk.foldby_merge, combine, combine_initial))
        depth = 0
        while len(level) > split_every:
            c = f"{a}{depth}"
            level = [
                merge(level[j : j + split_every], dask_key_name=(c, i))
                for i, j in enumerate(builtins.range(0, len(level), split_every))
            ]
            depth += 1
        e = f"foldby-b-{token}"
        final = _task_fn(partial(_chunk.foldby_final, combine, combine_initial))
        return Bag._new([final(level, dask_key_name=(e, 0))], e)

    def groupby(self, grouper, method=None, npartitions=None, blocksize=2**20, max_branch=None, shuffle=None):
        """``(key, [records])`` for each key ``grouper(record)``, through a shuffle of tasks:
        each partition splits its records by a hash of their key (the same in every
        process), and each output partition gathers its share. Up to ``max_branch`` (32)
        output partitions, one stage (each output reads every input); more, Dask's
        multi-stage shuffle (each stage splits ``k`` ways, ``k**stages`` outputs), so the
        task count grows as ``n * k`` rather than ``n**2``. ``npartitions``: how many output
        partitions (default: as many as the input; rounded up to ``k**stages`` when staged).
        ``shuffle='disk'`` and ``'tasks'`` both run this task shuffle; prefer ``foldby``
        when you can.

        >>> import oxidask.bag as db
        >>> b = db.from_sequence(range(10), npartitions=3)
        >>> sorted(b.groupby(lambda x: x % 2 == 0).compute())
        [(False, [1, 3, 5, 7, 9]), (True, [0, 2, 4, 6, 8])]
        """
        if method is not None:
            raise Exception("The method= keyword has been moved to shuffle=")
        if shuffle not in (None, "tasks", "disk"):
            raise NotImplementedError("Shuffle must be 'disk' or 'tasks'")
        n = self.npartitions if npartitions is None else int(npartitions)
        if n < 1:
            raise ValueError(f"npartitions must be at least 1, not {npartitions!r}")
        max_branch = max_branch or 32
        if max_branch < 2:
            raise ValueError(f"max_branch must be at least 2, not {max_branch!r}")
        if n > max_branch:
            return self._groupby_staged(grouper, n, max_branch)
        token = tokenize(self, grouper, n)
        split_name = f"shuffle-split-{token}"
        pick_name = f"shuffle-pick-{token}"
        name = f"groupby-collect-{token}"
        split = _task_fn(partial(_chunk.shuffle_split, grouper, n))
        splits = [split(p, dask_key_name=(split_name, i)) for i, p in enumerate(self._parts)]
        pick = _task_fn(_chunk.getitem)
        collect = _task_fn(partial(_chunk.shuffle_collect, grouper))
        parts = []
        for j in builtins.range(n):
            pieces = [pick(s, j, dask_key_name=(pick_name, i, j)) for i, s in enumerate(splits)]
            parts.append(collect(pieces, dask_key_name=(name, j)))
        return Bag._new(parts, name)

    def _groupby_staged(self, grouper, n_out, max_branch):
        stages = max(1, math.ceil(math.log(n_out) / math.log(max_branch)))
        k = math.ceil(n_out ** (1 / stages))
        while (k - 1) ** stages >= n_out:  # float error in the root
            k -= 1
        n = k**stages
        src = self if self.npartitions <= n else self.repartition(npartitions=n)
        token = tokenize(src, grouper, n, max_branch)
        tag = _task_fn(partial(_chunk.shuffle_tag, grouper, n))
        current = [tag(p, dask_key_name=(f"shuffle-tag-{token}", i)) for i, p in enumerate(src._parts)]
        current += [[] for _ in builtins.range(n - len(current))]
        pick = _task_fn(_chunk.getitem)
        join = _task_fn(_chunk.concat_lists)
        for stage in builtins.range(stages):
            split = _task_fn(partial(_chunk.shuffle_split_digit, k, stage))
            splits = [
                split(c, dask_key_name=(f"shuffle-split-{token}", stage, i)) for i, c in enumerate(current)
            ]
            div = k**stage
            nxt = []
            for i in builtins.range(n):
                digit = (i // div) % k
                base = i - digit * div
                pieces = [
                    pick(splits[base + j * div], digit,
                         dask_key_name=(f"shuffle-pick-{token}", stage, base + j * div, digit))
                    for j in builtins.range(k)
                ]
                nxt.append(join(pieces, dask_key_name=(f"shuffle-join-{token}", stage, i)))
            current = nxt
        name = f"groupby-collect-{token}"
        collect = _task_fn(partial(_chunk.shuffle_collect_tagged, grouper))
        return Bag._new([collect(c, dask_key_name=(name, i)) for i, c in enumerate(current)], name)

    # -- selection and layout ------------------------------------------------------------

    def take(self, k, npartitions=1, compute=True, warn=True):
        """The first ``k`` records of the first ``npartitions`` partitions (``-1``: all), as
        a tuple (``compute=False``: a one-partition bag). Warns when there are fewer.

        >>> import oxidask.bag as db
        >>> db.from_sequence(range(10), npartitions=2).take(3)
        (0, 1, 2)
        """
        if npartitions <= -1:
            npartitions = self.npartitions
        if npartitions > self.npartitions:
            raise ValueError(f"only {self.npartitions} partitions, take received {npartitions}")
        token = tokenize(self, k, npartitions)
        name = f"take-{token}"
        if npartitions > 1:
            name_p = f"take-partial-{token}"
            f = _task_fn(partial(_chunk.take_chunk, k))
            pieces = [f(self._parts[i], dask_key_name=(name_p, i)) for i in builtins.range(npartitions)]
            last = _task_fn(partial(_chunk.take_concat, k))(pieces, dask_key_name=(name, 0))
        else:
            last = _task_fn(partial(_chunk.take_chunk, k))(self._parts[0], dask_key_name=(name, 0))
        b = Bag._new([last], name)
        if not compute:
            return b
        out = tuple(b.compute())
        if len(out) != k and warn:
            import warnings

            warnings.warn(
                f"Insufficient elements for `take`. {k} elements requested, only {len(out)} "
                "elements available. Try passing larger `npartitions` to `take`."
            )
        return out

    def repartition(self, npartitions=None, partition_size=None):
        """The same records in ``npartitions`` partitions (fewer: neighbours concatenated;
        more: partitions split evenly), or in partitions of about ``partition_size`` bytes
        (``"5MB"``; computes the sizes first).

        >>> import oxidask.bag as db
        >>> db.from_sequence(range(10), npartitions=5).repartition(2).npartitions
        2
        """
        if (partition_size is not None) + (npartitions is not None) != 1:
            raise ValueError(
                "Please provide exactly one ``npartitions`` or ``partition_size`` keyword arguments"
            )
        if npartitions is not None:
            return _repartition_npartitions(self, int(npartitions))
        return _repartition_size(self, partition_size)

    def accumulate(self, binop, initial=no_default):
        """Running totals: ``binop`` applied cumulatively over the records in order
        (``itertools.accumulate``), starting from ``initial`` if given.

        >>> import oxidask.bag as db
        >>> db.from_sequence([1, 2, 3, 4, 5], npartitions=2).accumulate(lambda a, b: a + b).compute()
        [1, 3, 6, 10, 15]
        """
        token = tokenize(self, binop, initial)
        bname = funcname(binop)
        a, b, c = f"{bname}-part-{token}", f"{bname}-first-{token}", f"{bname}-second-{token}"
        acc = _task_fn(partial(_chunk.accumulate_part, binop))
        first, second = _task_fn(_chunk.first), _task_fn(_chunk.second)
        parts = []
        carry = initial
        for i, p in enumerate(self._parts):
            pair = acc(p, carry, i == 0, dask_key_name=(a, i))
            parts.append(first(pair, dask_key_name=(b, i)))
            carry = second(pair, dask_key_name=(c, i))
        return Bag._new(parts, b)

    def join(self, other, on_self, on_other=None):
        """``(other_record, record)`` pairs whose keys match: ``other`` is an iterable, a
        ``Delayed`` or a one-partition bag, held whole by every task; ``on_self`` and
        ``on_other`` (default ``on_self``) are key functions."""
        if isinstance(other, Bag):
            if other.npartitions != 1:
                raise NotImplementedError(
                    "Multi-bag joins are not implemented. We recommend Dask dataframe if appropriate"
                )
            other_value = other._parts[0]
        elif isinstance(other, Delayed):
            other_value = other
        elif hasattr(other, "__iter__"):
            other_value = other
        else:
            raise TypeError(
                "Joined argument must be single-partition Bag, delayed object, or Iterable, "
                f"got {type(other).__name__}"
            )
        if on_other is None:
            on_other = on_self
        name = f"join-{tokenize(self, other, on_self, on_other)}"
        f = _task_fn(partial(_chunk.join_chunk, on_other))
        parts = [f(other_value, on_self, p, dask_key_name=(name, i)) for i, p in enumerate(self._parts)]
        return Bag._new(parts, name)

    def product(self, other):
        """The Cartesian product of two bags: ``(a, b)`` for every pair of records."""
        if not isinstance(other, Bag):
            raise TypeError(f"product takes a Bag, not {type(other).__name__}")
        name = f"product-{tokenize(self, other)}"
        f = _task_fn(_chunk.product_chunk)
        m = other.npartitions
        parts = [
            f(p, q, dask_key_name=(name, i * m + j))
            for i, p in enumerate(self._parts)
            for j, q in enumerate(other._parts)
        ]
        return Bag._new(parts, name)

    def to_textfiles(self, path, name_function=None, compression="infer", encoding="utf-8",
                     compute=True, storage_options=None, last_endline=False, **kwargs):
        """Writes one text file per partition, one record (a string) per line; see
        :func:`oxidask.bag.to_textfiles`."""
        from oxidask.bag.text import to_textfiles

        return to_textfiles(self, path, name_function, compression, encoding, compute,
                            storage_options=storage_options, last_endline=last_endline, **kwargs)

    def to_dataframe(self, meta=None, columns=None, optimize_graph=True):
        """An ``oxidask.dataframe.DataFrame`` of the records (dicts, or tuples/lists with
        ``columns=`` naming their fields), a partition per bag partition, as Dask's.

        Without ``meta`` the columns and dtypes come from the first record (computed now,
        as Dask does); ``meta`` (an empty pandas DataFrame, a dict of column to dtype or a
        list of ``(column, dtype)`` pairs) gives them instead, and cannot go with
        ``columns``. Every partition is cast to those dtypes.

        >>> import oxidask.bag as db
        >>> b = db.from_sequence([{"x": 1, "y": "a"}, {"x": 2, "y": "b"}], npartitions=2)
        >>> b.to_dataframe().x.sum().compute()
        np.int64(3)
        """
        import pandas as pd

        from oxidask.dataframe.io import _from_results, _meta_frame

        if meta is None:
            head = self.take(1, warn=False)
            if len(head) == 0:
                raise ValueError(
                    "Bag.to_dataframe failed to infer the columns (the first partition is "
                    "empty); pass them with meta="
                )
            meta = pd.DataFrame(list(head), columns=columns).iloc[:0]
        elif columns is not None:
            raise ValueError("Can't specify both `meta` and `columns`")
        else:
            meta = _meta_frame(meta)
            if not isinstance(meta, pd.DataFrame):
                raise TypeError("Bag.to_dataframe meta= must describe a DataFrame (not a Series)")
        cols = [str(c) for c in meta.columns]
        meta.columns = cols
        dtypes = {c: t for c, t in meta.dtypes.items()}
        name = f"to_dataframe-{tokenize(self, cols, repr(dtypes))}"
        f = _task_fn(partial(_records_frame, cols, dtypes))
        parts = [f(p, dask_key_name=(name, i)) for i, p in enumerate(self._parts)]
        return _from_results(parts, meta)


def _records_frame(columns, dtypes, seq):
    """A bag partition's records as a pandas DataFrame with ``columns`` and ``dtypes``."""
    import pandas as pd

    seq = seq if isinstance(seq, list) else list(seq)
    out = pd.DataFrame(seq, columns=list(columns)) if seq else pd.DataFrame(columns=columns)
    try:
        return out.astype(dtypes)
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"Bag.to_dataframe: a partition's records do not fit the dtypes {dict(dtypes)} "
            f"({e}); pass meta= with dtypes that fit every record"
        ) from None


# -- functions over bags ----------------------------------------------------------------


def _partition_args(args, kwargs, what):
    """Split map/map_partitions arguments: bags (record by record or partition by
    partition), lazy values and plain objects."""
    bags = [a for a in args if isinstance(a, Bag)] + [v for v in kwargs.values() if isinstance(v, Bag)]
    if not bags:
        raise ValueError("At least one argument must be a Bag.")
    counts = {b.npartitions for b in bags}
    if len(counts) > 1:
        raise ValueError(
            f"All bags must have the same number of partitions ({what} got bags of "
            f"{sorted(counts)} partitions); repartition them alike first."
        )
    return counts.pop(), type(bags[0]) if len({type(b) for b in bags}) == 1 else Bag


def bag_map(func, *args, **kwargs):
    """``func`` over the records of one or more bags (all partitioned alike); other arguments
    are ``Item``/``Delayed`` values or plain objects passed to every call (Dask's
    ``dask.bag.map``).

    >>> import oxidask.bag as db
    >>> from operator import add
    >>> b = db.from_sequence(range(5), npartitions=2)
    >>> db.map(add, b, 1).compute()
    [1, 2, 3, 4, 5]
    """
    npartitions, out_type = _partition_args(args, kwargs, "map")
    name = f"{funcname(func)}-{tokenize(func, 'map', *args, **kwargs)}"
    flags = [isinstance(a, Bag) for a in args]
    static = [None if f else _unlazy_arg(a) for f, a in zip(flags, args)]
    kw_bags = {k: v for k, v in kwargs.items() if isinstance(v, Bag)}
    kw_other = {k: _unlazy_arg(v) for k, v in kwargs.items() if not isinstance(v, Bag)}
    f = _task_fn(partial(_chunk.map_chunk, func, flags))
    parts = []
    for n in builtins.range(npartitions):
        call_args = [a._parts[n] if flag else s for flag, a, s in zip(flags, args, static)]
        call_kw_bags = {k: v._parts[n] for k, v in kw_bags.items()}
        parts.append(f(call_args, call_kw_bags, kw_other, dask_key_name=(name, n)))
    return out_type._new(parts, name)


def map_partitions(func, *args, **kwargs):
    """``func`` over whole partitions of one or more bags (all partitioned alike): it gets
    each bag's partition (a list) and the other arguments (``Item``/``Delayed`` values
    computed, plain objects as they are), and returns the new partition.

    >>> import oxidask.bag as db
    >>> b = db.from_sequence(range(1, 101), npartitions=10)
    >>> def div(nums, den=1):
    ...     return [num / den for num in nums]
    >>> b.map_partitions(div, den=b.max()).take(3)
    (0.01, 0.02, 0.03)
    """
    npartitions, out_type = _partition_args(args, kwargs, "map_partitions")
    token_name = kwargs.pop("token", None) or funcname(func)
    name = f"{token_name}-{tokenize(func, 'map-partitions', *args, **kwargs)}"
    flags = [isinstance(a, Bag) for a in args]
    static = [None if f else _unlazy_arg(a) for f, a in zip(flags, args)]
    kw_bags = {k: v for k, v in kwargs.items() if isinstance(v, Bag)}
    kw_other = {k: _unlazy_arg(v) for k, v in kwargs.items() if not isinstance(v, Bag)}
    f = _task_fn(partial(_map_partitions_task, func, flags))
    parts = []
    for n in builtins.range(npartitions):
        call_args = [a._parts[n] if flag else s for flag, a, s in zip(flags, args, static)]
        call_kw = dict(kw_other)
        call_kw.update({k: v._parts[n] for k, v in kw_bags.items()})
        parts.append(f(call_args, call_kw, dask_key_name=(name, n)))
    return out_type._new(parts, name)


def _map_partitions_task(func, flags, args, kwargs):
    return _chunk.reify(func(*args, **kwargs))


def _repartition_npartitions(bag, npartitions):
    if npartitions < 1:
        raise ValueError(f"npartitions must be at least 1, not {npartitions}")
    if npartitions == bag.npartitions:
        return bag
    new_name = f"repartition-{npartitions}-{tokenize(bag, npartitions)}"
    if bag.npartitions > npartitions:
        ratio = bag.npartitions / npartitions
        bounds = [int(i * ratio) for i in builtins.range(npartitions + 1)]
        return _repartition_from_boundaries(bag, bounds, new_name)
    div, mod = divmod(npartitions, bag.npartitions)
    nsplits = [div] * bag.npartitions
    nsplits[-1] += mod
    return _split_partitions(bag, nsplits, new_name)


def _repartition_size(bag, size):
    from oxidask.sizeof import sizeof
    from oxidask.utils import parse_bytes

    size = parse_bytes(size) if isinstance(size, str) else int(size)
    if size <= 0:
        raise ValueError(f"partition_size must be a positive number of bytes, not {size!r}")
    usages = bag.map_partitions(_partition_bytes, sizeof).compute()
    nsplits = [1 + u // size for u in usages]
    if any(n > 1 for n in nsplits):
        bag = _split_partitions(bag, nsplits, f"repartition-split-{tokenize(bag, size)}")
        usages = [u / n for u, n in zip(usages, nsplits) for _ in builtins.range(n)]
    bounds = [0]
    total = 0
    for i, u in enumerate(usages):
        if total and total + u > size:
            bounds.append(i)
            total = 0
        total += u
    bounds.append(len(usages))
    return _repartition_from_boundaries(bag, bounds, f"repartition-{tokenize(bag, size)}")


def _partition_bytes(part, sizeof):
    return [sizeof(part)]


def _split_partitions(bag, nsplits, new_name):
    split_name = f"split-{tokenize(bag, nsplits)}"
    split = _task_fn(_chunk.split_list)
    pick = _task_fn(_chunk.getitem)
    parts = []
    for i, (p, k) in enumerate(zip(bag._parts, nsplits)):
        if k == 1:
            parts.append(p)
        else:
            pieces = split(p, k, dask_key_name=(split_name, i))
            for jj in builtins.range(k):
                parts.append(pick(pieces, jj, dask_key_name=(new_name, len(parts))))
    return Bag._new(parts, new_name)


def _repartition_from_boundaries(bag, bounds, new_name):
    if bounds[0] > 0:
        bounds.insert(0, 0)
    if bounds[-1] < bag.npartitions:
        bounds.append(bag.npartitions)
    cat = _task_fn(_chunk.concat_lists)
    parts = [
        cat(bag._parts[bounds[i] : bounds[i + 1]], dask_key_name=(new_name, i))
        for i in builtins.range(len(bounds) - 1)
    ]
    return Bag._new(parts, new_name)


def from_sequence(seq, partition_size=None, npartitions=None):
    """A bag of the elements of ``seq``, in partitions of ``partition_size`` elements or in
    about ``npartitions`` partitions (as Dask chooses: up to 100 elements, one per partition
    by default; more, about ``sqrt(n) / 10`` per partition).

    >>> import oxidask.bag as db
    >>> b = db.from_sequence(['Alice', 'Bob', 'Chuck'], partition_size=2)
    >>> b.npartitions
    2
    """
    seq = list(seq)
    if npartitions is not None and (not isinstance(npartitions, int) or npartitions < 1):
        raise ValueError(f"npartitions must be a positive integer, not {npartitions!r}")
    if partition_size is not None and (not isinstance(partition_size, int) or partition_size < 1):
        raise ValueError(f"partition_size must be a positive integer, not {partition_size!r}")
    if npartitions and not partition_size:
        if len(seq) <= 100:
            partition_size = int(math.ceil(len(seq) / npartitions))
        else:
            partition_size = max(1, int(math.floor(len(seq) / npartitions)))
    if npartitions is None and partition_size is None:
        if len(seq) <= 100:
            partition_size = 1
        else:
            partition_size = max(1, math.ceil(math.sqrt(len(seq)) / math.sqrt(100)))
    partition_size = max(1, partition_size)
    parts = [seq[i : i + partition_size] for i in builtins.range(0, len(seq), partition_size)] or [[]]
    name = f"from_sequence-{tokenize(seq, partition_size)}"
    values = [
        delayed_value(p, name=repr((name, i)), traverse=False) for i, p in enumerate(parts)
    ]
    return Bag._new(values, name)


def from_delayed(values):
    """A bag whose partitions are ``Delayed`` values or futures of a ``Client`` (each
    computing to a list or another sequence; iterators become lists).

    >>> import oxidask as dask
    >>> import oxidask.bag as db
    >>> load = dask.delayed(lambda i: [i] * i)
    >>> db.from_delayed([load(1), load(2)]).compute()
    [1, 2, 2]
    """
    from oxidask._oxidask import Future, delayed_on_cluster

    if isinstance(values, (Delayed, Future)):
        values = [values]
    values = list(values)
    for i, v in enumerate(values):
        if isinstance(v, Future):
            # A result held on a cluster (client.scatter, client.map): read in place there.
            values[i] = delayed_on_cluster(v, delayed_value(None, name=v.key))
        elif not isinstance(v, Delayed):
            raise TypeError(
                f"from_delayed takes Delayed values or futures (one per partition), got "
                f"{type(v).__name__}; wrap plain lists with from_sequence"
            )
    if not values:
        raise ValueError("from_delayed needs at least one Delayed value")
    name = f"bag-from-delayed-{tokenize(*values)}"
    f = _task_fn(_chunk.reify)
    return Bag._new([f(v, dask_key_name=(name, i)) for i, v in enumerate(values)], name)


def concat(bags):
    """One bag of the partitions of several bags, one after another.

    >>> import oxidask.bag as db
    >>> db.concat([db.from_sequence([1, 2]), db.from_sequence([3])]).compute()
    [1, 2, 3]
    """
    bags = list(bags)
    if not bags:
        raise ValueError("concat needs at least one bag")
    name = f"concat-{tokenize(*bags)}"
    return Bag._new([p for b in bags for p in b._parts], name)


def bag_range(n, npartitions):
    """The numbers ``0 .. n-1`` in ``npartitions`` partitions.

    >>> import oxidask.bag as db
    >>> db.range(5, npartitions=2).compute()
    [0, 1, 2, 3, 4]
    """
    if npartitions < 1:
        raise ValueError(f"npartitions must be at least 1, not {npartitions}")
    size = max(n // npartitions, 1)
    name = f"range-{n}-npartitions-{npartitions}"
    starts = list(itertools.islice(builtins.range(0, max(n, 1), size), npartitions))
    f = _task_fn(_chunk.range_chunk)
    parts = []
    for i, j in enumerate(starts):
        stop = n if i == len(starts) - 1 else builtins.min(j + size, n)
        parts.append(f(j, stop, dask_key_name=(name, i)))
    return Bag._new(parts, name)


def bag_zip(*bags):
    """Partition-wise zip of bags with the same number of partitions: tuples of their
    records (a longer partition's extra records are dropped, as ``zip`` does).

    >>> import oxidask.bag as db
    >>> a = db.from_sequence([1, 2, 3], npartitions=1)
    >>> b = db.from_sequence('abc', npartitions=1)
    >>> db.zip(a, b).compute()
    [(1, 'a'), (2, 'b'), (3, 'c')]
    """
    if not bags:
        raise ValueError("zip needs at least one bag")
    counts = {b.npartitions for b in bags}
    if len(counts) > 1:
        raise ValueError(f"zip needs bags with the same number of partitions, got {sorted(counts)}")
    name = f"zip-{tokenize(*bags)}"
    f = _task_fn(_chunk.zip_chunk)
    parts = [f(*ps, dask_key_name=(name, i)) for i, ps in enumerate(builtins.zip(*(b._parts for b in bags)))]
    return Bag._new(parts, name)
