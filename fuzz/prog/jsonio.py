"""Reading files a user (or a crash) may have damaged: regular files only, a size
cap, UTF-8, JSON nested at most MAX_JSON_DEPTH deep, integers short enough to
convert. Every failure is an InputError, one line naming the file; program files
(fuzz.prog.ir) and the records the tool reads back (findings, reproducers, stats)
share this."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

from fuzz.prog.limits import MAX_JSON_BYTES, MAX_JSON_DEPTH


class InputError(ValueError):
    """Bad input: the message names the file or argument and the problem."""


def read_bytes(p: str | os.PathLike[str], max_bytes: int = MAX_JSON_BYTES,
               error: type[InputError] = InputError) -> bytes:
    """A regular file's bytes, at most max_bytes of them (no FIFOs, devices or
    directories: those would block or never end)."""
    path = Path(p)
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{path}: not a regular file")
        if st.st_size > max_bytes:
            raise error(f"{path}: {st.st_size} bytes, a file here has at most {max_bytes}")
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except OSError as e:
        raise error(f"{path}: cannot read: {e.strerror}") from None
    if len(data) > max_bytes:  # grew while we read it
        raise error(f"{path}: more than {max_bytes} bytes")
    return data


def read_text(p: str | os.PathLike[str], max_bytes: int = MAX_JSON_BYTES,
              error: type[InputError] = InputError) -> str:
    data = read_bytes(p, max_bytes, error)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{p}: not UTF-8 text (byte {e.start})") from None


def loads(text: str, where: str, error: type[InputError] = InputError,
          depth: int = MAX_JSON_DEPTH) -> Any:
    """json.loads with what a hostile file can do named: bad syntax, nesting past
    `depth`, integers too long to convert."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise error(f"{where}: not valid JSON: {e}") from None
    except RecursionError:
        raise error(f"{where}: nested deeper than {depth} levels") from None
    except ValueError as e:  # "Exceeds the limit (4300 digits) for integer string conversion"
        if "digits" in str(e):
            raise error(f"{where}: an integer with more than {sys.get_int_max_str_digits()} "
                        "digits (values are at most 64 bits)") from None
        raise error(f"{where}: not valid JSON: {e}") from None
    check_depth(doc, where, error, depth)
    return doc


def check_depth(doc: Any, where: str, error: type[InputError] = InputError,
                limit: int = MAX_JSON_DEPTH) -> None:
    """Nesting of at most `limit` levels (walked iteratively: a deep document must
    not exhaust the stack here either)."""
    stack = [(doc, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            items: Any = v.values()
        elif isinstance(v, list):
            items = v
        else:
            continue
        if d > limit:
            raise error(f"{where}: nested deeper than {limit} levels")
        stack.extend((x, d + 1) for x in items)


def read_json(p: str | os.PathLike[str], max_bytes: int = MAX_JSON_BYTES,
              error: type[InputError] = InputError) -> Any:
    return loads(read_text(p, max_bytes, error), str(p), error)


def to_json_value(v: Any) -> Any:
    """A result value as JSON: bytes (captured memory) as {"hex": ...}, at any depth."""
    if isinstance(v, (bytes, bytearray)):
        return {"hex": bytes(v).hex()}
    if isinstance(v, dict):
        return {k: to_json_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [to_json_value(x) for x in v]
    return v


def from_json_value(v: Any) -> Any:
    """to_json_value undone."""
    if isinstance(v, dict):
        if set(v) == {"hex"} and isinstance(v["hex"], str):
            return bytes.fromhex(v["hex"])
        return {k: from_json_value(x) for k, x in v.items()}
    if isinstance(v, list):
        return [from_json_value(x) for x in v]
    return v
