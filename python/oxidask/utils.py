"""Parsing sizes and durations the way Dask users write them."""

import datetime

_BYTE_UNITS = {
    "": 1, "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "pb": 10**15,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "pib": 2**50,
    "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15,
}

_TIME_UNITS = {
    "": 1.0, "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
    "ms": 1e-3, "millisecond": 1e-3, "milliseconds": 1e-3,
    "us": 1e-6, "µs": 1e-6, "microsecond": 1e-6, "microseconds": 1e-6,
    "ns": 1e-9, "nanosecond": 1e-9, "nanoseconds": 1e-9,
    "m": 60.0, "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hr": 3600.0, "hour": 3600.0, "hours": 3600.0,
    "d": 86400.0, "day": 86400.0, "days": 86400.0,
    "w": 604800.0, "week": 604800.0, "weeks": 604800.0,
}


def _split(text):
    text = text.strip().lower().replace(" ", "").replace("_", "")
    i = len(text)
    while i > 0 and (text[i - 1].isalpha() or text[i - 1] == "µ"):
        i -= 1
    return text[:i], text[i:]


def parse_bytes(s):
    """``"4GiB"`` → 4294967296, ``"5 kB"`` → 5000, ``"1e9"`` → 1000000000; numbers pass
    through. Negative or NaN sizes are refused."""
    if isinstance(s, (int, float)):
        value = float(s)
    else:
        number, unit = _split(str(s))
        if unit not in _BYTE_UNITS:
            raise ValueError(f"unknown unit {unit!r} in {s!r}; use B, kB, MB, GB, KiB, MiB or GiB")
        try:
            value = (float(number) if number else 1.0) * _BYTE_UNITS[unit]
        except ValueError:
            raise ValueError(f"cannot read the size {s!r}; write e.g. '4GiB' or 4e9") from None
    if not value >= 0:
        raise ValueError(f"a size must be a number of bytes ≥ 0, not {s!r}")
    return int(value)


def parse_timedelta(s, default="seconds"):
    """Seconds from ``"10s"``, ``"250ms"``, ``"1 minute"``, a ``timedelta`` or a number (in
    ``default`` units). Negative or NaN durations are refused."""
    if s is None:
        return None
    if isinstance(s, datetime.timedelta):
        value = s.total_seconds()
    elif isinstance(s, (int, float)):
        value = float(s) * _TIME_UNITS[default]
    else:
        number, unit = _split(str(s))
        unit = unit or default
        if unit not in _TIME_UNITS:
            raise ValueError(f"unknown time unit {unit!r} in {s!r}; use ms, s, m, h or d")
        try:
            value = (float(number) if number else 1.0) * _TIME_UNITS[unit]
        except ValueError:
            raise ValueError(f"cannot read the duration {s!r}; write e.g. '10s' or 2.5") from None
    if not value >= 0:
        raise ValueError(f"a duration must be ≥ 0, not {s!r}")
    return value
