"""What the tasks of a bag run: functions of whole partitions (lists of records).

They live at module level so that worker processes import them by name instead of receiving
them pickled. Every partition a task returns is a list (or, after ``map_partitions`` or
``from_delayed``, whatever the user's function gave, iterators made lists).
"""

import contextlib
import gc
import heapq
import itertools
import operator
import threading
from collections import Counter
from collections.abc import Iterator
from functools import reduce


_gc_lock = threading.Lock()
_gc_depth = 0
_gc_owned = False


@contextlib.contextmanager
def gc_paused():
    """Python's cycle collector held off while one of our own partition functions runs.

    Only around code of ours that calls no user function (``str`` methods, flattening):
    building a partition of many small lists (``str.split``) otherwise runs collections that
    traverse every list still alive, which took half the time of a word count. Collection
    resumes as soon as no such function runs (at the latest when the partition is done), so
    cyclic garbage that user code makes on other threads meanwhile waits at most that long.
    """
    global _gc_depth, _gc_owned
    with _gc_lock:
        if _gc_depth == 0:
            _gc_owned = gc.isenabled()
            if _gc_owned:
                gc.disable()
        _gc_depth += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_depth -= 1
            if _gc_depth == 0 and _gc_owned:
                _gc_owned = False
                gc.enable()


def str_method_chunk(method, args, kwargs, part):
    """``str`` method ``method`` on each record (the ``bag.str`` accessor)."""
    call = operator.methodcaller(method, *args, **kwargs)
    with gc_paused():
        return [call(x) for x in part]


class _NoResult:
    """What a reduction's first step gives for an empty partition that is not the only one:
    the next steps skip it (so ``max`` of a bag with empty partitions works, as in Dask)."""

    __slots__ = ()

    def __reduce__(self):
        return "no_result"

    def __repr__(self):
        return "no_result"


no_result = _NoResult()


class _NoDefault:
    __slots__ = ()

    def __reduce__(self):
        return "no_default"

    def __repr__(self):
        return "<no_default>"


no_default = _NoDefault()


def reify(seq):
    """A partition as a concrete sequence: iterators (and iterators inside) become lists."""
    if isinstance(seq, Iterator):
        seq = list(seq)
    if isinstance(seq, list) and seq and isinstance(seq[0], Iterator):
        seq = [list(x) for x in seq]
    return seq


def map_chunk(func, bag_flags, args, kw_bags, kwargs):
    """``func`` over the records of a partition: ``args[i]`` is a partition when
    ``bag_flags[i]``, else a value passed to every call; ``kw_bags`` are keyword arguments
    taken record by record from partitions, ``kwargs`` the others."""
    iters = [a if flag else itertools.repeat(a) for flag, a in zip(bag_flags, args)]
    names = list(kw_bags)
    iters.extend(kw_bags[n] for n in names)
    parts = [a for flag, a in zip(bag_flags, args) if flag] + [kw_bags[n] for n in names]
    lengths = {len(p) for p in parts if hasattr(p, "__len__")}
    if len(lengths) > 1:
        raise ValueError(
            f"map over several bags needs partitions of equal lengths, got lengths {sorted(lengths)}; "
            "repartition the bags alike (the same from_sequence arguments) or use zip"
        )
    out = []
    if names:
        k = len(args)
        for values in zip(*iters):
            kw = dict(kwargs)
            kw.update(zip(names, values[k:]))
            out.append(func(*values[:k], **kw))
    elif kwargs:
        for values in zip(*iters):
            out.append(func(*values, **kwargs))
    elif len(iters) == 1:
        out = [func(x) for x in args[0]]
    else:
        out = [func(*values) for values in zip(*iters)]
    return reify(out)


def map_partitions_chunk(func, bag_flags, args, kwargs):
    """``func`` over whole partitions: ``args[i]`` is a partition when ``bag_flags[i]``."""
    return reify(func(*args, **kwargs))


def starmap_chunk(func, part, kwargs):
    if kwargs:
        return [func(*x, **kwargs) for x in part]
    return [func(*x) for x in part]


def filter_chunk(predicate, part):
    return [x for x in part if predicate(x)]


def remove_chunk(predicate, part):
    return [x for x in part if not predicate(x)]


def random_sample(prob, seed, part):
    import random

    rng = random.Random(seed)
    return [x for x in part if rng.random() < prob]


def flatten_chunk(part):
    return list(itertools.chain.from_iterable(part))


def _getter(key, default):
    if isinstance(key, list):
        if default is no_default:
            return lambda x: tuple(x[k] for k in key)
        return lambda x: tuple(_get(x, k, default) for k in key)
    if default is no_default:
        return operator.itemgetter(key)
    return lambda x: _get(x, key, default)


def _get(x, key, default):
    try:
        return x[key]
    except (KeyError, IndexError, TypeError):
        return default


def pluck_chunk(key, default, part):
    get = _getter(key, default)
    return [get(x) for x in part]


def identity(x):
    return x


def concat_lists(parts):
    return list(itertools.chain.from_iterable(parts))


def split_list(part, n):
    """``part`` cut into ``n`` pieces of nearly equal lengths (Dask's ``split``)."""
    part = part if isinstance(part, (list, tuple)) else list(part)
    size = len(part) / n
    return [list(part[int(size * i) : int(size * (i + 1))]) for i in range(n - 1)] + [
        list(part[int(size * (n - 1)) :])
    ]


def getitem(x, i):
    return x[i]


def take_chunk(k, part):
    return list(itertools.islice(part, k))


def take_concat(k, parts):
    return list(itertools.islice(itertools.chain.from_iterable(parts), k))


# -- reductions -------------------------------------------------------------------------


def _is_empty(part):
    try:
        return len(part) == 0
    except TypeError:
        return False


def empty_safe_apply(func, part, is_last):
    """``func(part)``, or ``no_result`` for an empty partition unless it is the last step."""
    if isinstance(part, Iterator):
        part = list(part)
    if not is_last and _is_empty(part):
        return no_result
    return func(part)


def empty_safe_aggregate(func, parts, is_last):
    return empty_safe_apply(func, [p for p in parts if not isinstance(p, _NoResult)], is_last)


def count(part):
    try:
        return len(part)
    except TypeError:
        return sum(1 for _ in part)


def fold_part(binop, initial, part):
    if initial is no_default:
        return reduce(binop, part)
    return reduce(binop, part, initial)


def fold_aggregate(combine, parts):
    return reduce(combine, parts)


def frequencies(part):
    # Counter counts in C; a plain dict goes on (first-seen order, as Dask's).
    return dict(Counter(part))


def merge_frequencies(dicts):
    dicts = list(dicts)
    if not dicts:
        return {}
    out = Counter(dicts[0])
    for d in dicts[1:]:
        out.update(d)
    return dict(out)


def dictitems(d):
    return list(d.items())


def sort_by_count(items):
    return sorted(items, key=operator.itemgetter(1), reverse=True)


def topk(k, key, part):
    if key is None:
        return heapq.nlargest(k, part)
    return heapq.nlargest(k, part, key=key)


def topk_aggregate(k, key, parts):
    return topk(k, key, itertools.chain.from_iterable(parts))


def apply_star(func, x):
    return func(*x)


def _key_func(key):
    if key is None or callable(key):
        return key
    return operator.itemgetter(key)


def distinct(key, part):
    key = _key_func(key)
    seen = set()
    out = []
    for x in part:
        k = x if key is None else key(x)
        if k not in seen:
            seen.add(k)
            out.append(x)
    return out


def distinct_aggregate(key, parts):
    return distinct(key, itertools.chain.from_iterable(parts))


def mean_chunk(part):
    total, n = 0.0, 0
    for x in part:
        total += x
        n += 1
    return total, n


def mean_aggregate(parts):
    totals, counts = list(zip(*parts))
    return 1.0 * sum(totals) / sum(counts)


def var_chunk(part):
    squares, total, n = 0.0, 0.0, 0
    for x in part:
        squares += x**2
        total += x
        n += 1
    return squares, total, n


def var_aggregate(ddof, parts):
    squares, totals, counts = list(zip(*parts))
    x2, x, n = float(sum(squares)), float(sum(totals)), sum(counts)
    result = (x2 / n) - (x / n) ** 2
    return result * n / (n - ddof)


def apply(func, x):
    return func(x)


# -- foldby and groupby -----------------------------------------------------------------


def reduceby(key, binop, initial, part):
    """``{key(x): binop-fold of the records with that key}`` (toolz's ``reduceby``)."""
    key = _key_func(key)
    out = {}
    if initial is no_default:
        for x in part:
            k = key(x)
            out[k] = binop(out[k], x) if k in out else x
    else:
        for x in part:
            k = key(x)
            out[k] = binop(out[k] if k in out else initial, x)
    return out


def foldby_merge(combine, combine_initial, dicts):
    """The per-partition results of a foldby combined key by key."""
    out = {}
    if combine_initial is no_default:
        for d in dicts:
            for k, v in d.items():
                out[k] = combine(out[k], v) if k in out else v
    else:
        for d in dicts:
            for k, v in d.items():
                out[k] = combine(out[k] if k in out else combine_initial, v)
    return out


def foldby_final(combine, combine_initial, dicts):
    return dictitems(foldby_merge(combine, combine_initial, dicts))


def _stable_hash(k):
    from oxidask import tokenize

    return int(tokenize(k)[:16], 16)


def shuffle_split(grouper, n, part):
    """The records of ``part`` in ``n`` buckets by a hash of their group (the same in every
    process, unlike ``hash()`` of strings)."""
    buckets = [[] for _ in range(n)]
    cache = {}
    for x in part:
        k = grouper(x)
        try:
            h = cache.get(k)
            if h is None:
                h = cache[k] = _stable_hash(k) % n
        except TypeError:  # unhashable group key
            h = _stable_hash(k) % n
        buckets[h].append(x)
    return buckets


def shuffle_tag(grouper, n, part):
    """``(destination partition, record)`` pairs: the first step of a multi-stage shuffle."""
    out = []
    cache = {}
    for x in part:
        k = grouper(x)
        try:
            h = cache.get(k)
            if h is None:
                h = cache[k] = _stable_hash(k) % n
        except TypeError:
            h = _stable_hash(k) % n
        out.append((h, x))
    return out


def shuffle_split_digit(k, stage, part):
    """Tagged records in ``k`` buckets by digit ``stage`` (base ``k``) of their destination."""
    buckets = [[] for _ in range(k)]
    div = k**stage
    for pair in part:
        buckets[(pair[0] // div) % k].append(pair)
    return buckets


def shuffle_collect_tagged(grouper, part):
    groups = {}
    for _, x in part:
        groups.setdefault(grouper(x), []).append(x)
    return list(groups.items())


def shuffle_collect(grouper, pieces):
    """One output partition of a groupby: ``[(group, [records]), ...]``."""
    groups = {}
    for piece in pieces:
        for x in piece:
            groups.setdefault(grouper(x), []).append(x)
    return list(groups.items())


# -- several bags -----------------------------------------------------------------------


def zip_chunk(*parts):
    return list(zip(*parts))


def product_chunk(a, b):
    return list(itertools.product(a, b))


def accumulate_part(binop, part, initial, is_first):
    """``(accumulated records, last value)`` of one partition, carrying on from ``initial``."""
    if is_first:
        if initial is no_default:
            res = list(itertools.accumulate(part, binop))
        else:
            res = list(itertools.accumulate(part, binop, initial=initial))
        return res, (res[-1] if res else initial)
    if initial is no_default:  # nothing before this partition
        res = list(itertools.accumulate(part, binop))
        return res, (res[-1] if res else no_default)
    res = list(itertools.accumulate(part, binop, initial=initial))
    return res[1:], res[-1]


def first(x):
    return x[0]


def second(x):
    return x[1]


def join_chunk(on_other, other, on_self, part):
    on_other = _key_func(on_other)
    on_self = _key_func(on_self)
    index = {}
    for y in other:
        index.setdefault(on_other(y), []).append(y)
    out = []
    for x in part:
        for y in index.get(on_self(x), ()):
            out.append((y, x))
    return out


def range_chunk(start, stop):
    return list(range(start, stop))
