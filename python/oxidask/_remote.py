"""Exceptions raised in tasks, sent back to the caller and raised again there with the
traceback of where they happened (as Dask does with tblib)."""

import pickle
import traceback

import cloudpickle

from oxidask.exceptions import RemoteError


def capture(exc, tb=None):
    """``(summary, payload)`` for an exception a task raised (``tb``: its traceback, when the
    exception does not carry it yet)."""
    tb = tb if tb is not None else exc.__traceback__
    summary = f"{type(exc).__name__}: {exc}"
    frames = [(f.filename, f.lineno or 1, f.name) for f in traceback.extract_tb(tb)]
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    try:
        payload = cloudpickle.dumps((exc, frames, text), protocol=5)
        pickle.loads(payload)  # an exception that pickles but cannot be rebuilt is sent as text
    except Exception:
        stand_in = RemoteError(f"{summary} (raised in a task; the exception could not be pickled)")
        payload = cloudpickle.dumps((stand_in, frames, text), protocol=5)
    return summary, payload


def rebuild(payload, summary, key):
    """The exception in ``payload`` with its remote traceback, ready to raise."""
    try:
        exc, frames, text = pickle.loads(payload)
    except Exception as e:  # a class the caller cannot import
        exc, frames = RemoteError(f"{summary} (in task {key}; not importable here: {e})"), []
    if not isinstance(exc, BaseException):
        exc = RemoteError(summary)
    try:
        return exc.with_traceback(_traceback(frames))
    except Exception:
        return exc


class _Frame(Exception):
    pass


def _traceback(frames):
    """A real traceback object whose frames show the remote file, line and function."""
    tb = None
    for filename, lineno, name in reversed(frames):
        try:
            code = compile("\n" * (max(lineno, 1) - 1) + "raise __frame__", filename, "exec")
            code = code.replace(co_name=name)
            try:
                exec(code, {"__frame__": _Frame(), "__name__": "__remote__"})
            except _Frame as e:
                t = e.__traceback__.tb_next
        except Exception:
            continue
        if t is None:
            continue
        t.tb_next = tb
        tb = t
    return tb
