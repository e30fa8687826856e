"""Checks of what a user hands the command line, made before anything is built,
booted or written: durations, counts, directories, and the JSON records the tool
reads back. Each failure is an InputError naming the argument or file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fuzz.prog.jsonio import InputError, read_json

__all__ = ["InputError", "at_least", "duration", "existing_dir", "json_object",
           "writable_dir"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_DURATION = 366 * 86400


def duration(s: str, what: str = "--time") -> int:
    """Whole seconds from "90", "90s", "10m", "1.5h", "1d": at least 1 s, at most a year."""
    t = str(s).strip()
    num, unit = (t[:-1], t[-1]) if t and t[-1] in _UNITS else (t, "s")
    try:
        v = float(num) * _UNITS[unit]
    except ValueError:
        raise InputError(f"{what} {s!r}: not a duration (say 90s, 10m, 2h or 1d)") from None
    if v != v or not 1 <= v <= MAX_DURATION:  # NaN, negative, zero, "inf"
        raise InputError(f"{what} {s!r}: give a duration from 1s to {MAX_DURATION // 86400}d")
    return int(v)


def at_least(v: float | None, least: float, what: str) -> None:
    if v is not None and not v >= least:  # "not >=" also refuses NaN
        raise InputError(f"{what} {v}: give at least {least}")


def existing_dir(p: str | os.PathLike[str], what: str) -> Path:
    path = Path(p)
    if not path.exists():
        raise InputError(f"{what} {path}: no such directory")
    if not path.is_dir():
        raise InputError(f"{what} {path}: not a directory")
    return path


def writable_dir(p: str | os.PathLike[str], what: str) -> Path:
    """A directory that exists and is writable, or could be made (nothing is made here)."""
    path = Path(p)
    if path.exists():
        if not path.is_dir():
            raise InputError(f"{what} {path}: exists and is not a directory")
        if not os.access(path, os.W_OK | os.X_OK):
            raise InputError(f"{what} {path}: not writable")
        return path
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{what} {path}: cannot be created ({parent} is not a writable "
                         "directory)")
    return path


def json_object(p: str | os.PathLike[str], types: dict[str, type | tuple[type, ...]],
                required: tuple[str, ...] = ()) -> dict[str, Any]:
    """A JSON object (file p) with the required keys, and the listed keys, where
    present and not null, of the listed types (a bool is not an int here)."""
    doc = read_json(p)
    if not isinstance(doc, dict):
        raise InputError(f"{p}: expected a JSON object, got {type(doc).__name__}")
    missing = [k for k in required if k not in doc]
    if missing:
        raise InputError(f"{p}: missing {', '.join(map(repr, missing))}")
    for k, t in types.items():
        v = doc.get(k)
        ts = t if isinstance(t, tuple) else (t,)
        if v is not None and (not isinstance(v, ts) or (isinstance(v, bool) and bool not in ts)):
            want = " or ".join(x.__name__ for x in ts)
            raise InputError(f"{p}: {k!r} must be {want}, got {_short(v)}")
    return doc


def _short(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 60 else s[:57] + "..."
