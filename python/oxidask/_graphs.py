"""Raw Dask graphs (dicts of keys to tasks) as oxidask lazy values."""

from oxidask._oxidask import DelayedFunction, delayed_value

_functions = {}


def _is_task(x):
    return type(x) is tuple and len(x) > 0 and callable(x[0])


def _is_key(x, dsk):
    try:
        return x in dsk
    except TypeError:  # unhashable
        return False


def _deps(value, dsk, out):
    if _is_key(value, dsk):
        out.append(value)
    elif _is_task(value):
        for a in value[1:]:
            _deps(a, dsk, out)
    elif type(value) is list:
        for a in value:
            _deps(a, dsk, out)
    return out


def _function(func):
    f = _functions.get(id(func))
    if f is None or f[0] is not func:
        f = (func, DelayedFunction(func, pure=True))
        _functions[id(func)] = f
    return f[1]


def from_dict(dsk, keys):
    """Lazy values for ``keys`` of the graph ``dsk`` (each key keeps its name)."""
    order = _topological(dsk, keys)
    made = {}

    def arg(a):
        if _is_key(a, dsk):
            return made[a]
        if _is_task(a):
            return _function(a[0])(*[arg(x) for x in a[1:]])
        if type(a) is list:
            return [arg(x) for x in a]
        return a

    for key in order:
        value = dsk[key]
        name = key if isinstance(key, (str, tuple)) else str(key)
        if _is_task(value):
            made[key] = _function(value[0])(*[arg(x) for x in value[1:]], dask_key_name=name)
        elif _is_key(value, dsk):
            made[key] = made[value]
        else:
            made[key] = delayed_value(arg(value), name=name if isinstance(name, str) else repr(name))
    return [made[k] for k in keys]


def _topological(dsk, keys):
    """The keys ``keys`` need, dependencies first, without recursion."""
    for k in keys:
        if not _is_key(k, dsk):
            raise KeyError(f"{k!r} is not a key of the graph")
    order, state = [], {}
    for root in keys:
        stack = [(root, False)]
        while stack:
            key, expanded = stack.pop()
            if expanded:
                state[key] = 2
                order.append(key)
                continue
            if state.get(key) == 2:
                continue
            if state.get(key) == 1:
                raise ValueError(f"the graph has a cycle through {key!r}")
            state[key] = 1
            stack.append((key, True))
            for d in _deps(dsk[key], dsk, []):
                if state.get(d) != 2:
                    if state.get(d) == 1:
                        raise ValueError(f"the graph has a cycle through {d!r}")
                    stack.append((d, False))
    return order
