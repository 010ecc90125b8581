"""Small functions tasks call (kept in a module so they pickle by reference)."""


def apply(func, *args, **kwargs):
    """``func(*args, **kwargs)``: what calling a ``Delayed`` value runs."""
    return func(*args, **kwargs)


def call_method(obj, name, *args, **kwargs):
    """``obj.name(*args, **kwargs)``: what ``delayed_obj.method(...)`` runs."""
    return getattr(obj, name)(*args, **kwargs)
