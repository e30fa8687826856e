"""Logs a campaign appends to for hours, kept to a bounded size: JSON-lines stats
are thinned (the recent quarter kept whole, every other older line dropped, so a
plot still spans the whole run), text logs rotate to <name>.1."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from fuzz.prog import atomic_write


def append_line(path: Path, line: str, max_bytes: int) -> None:
    """Append one line (the only writer of path); past max_bytes, thin the file."""
    with open(path, "a") as f:
        f.write(line + "\n")
        size = f.tell()
    if size > max_bytes:
        thin(path)


def thin(path: Path) -> None:
    """Keep the first line, every other line of the older three quarters and the
    newest quarter whole: about 5/8 of the lines, the whole span of time."""
    lines = path.read_text(errors="replace").splitlines()
    cut = len(lines) * 3 // 4
    kept = lines[:cut:2] + lines[cut:]
    atomic_write(path, ("\n".join(kept) + "\n").encode())


def rotate(path: Path, max_bytes: int) -> bool:
    """A text log another process appends to (O_APPEND): past max_bytes, copy it to
    <name>.1 and truncate it (the writer's next line lands at the start)."""
    try:
        if path.stat().st_size <= max_bytes:
            return False
        shutil.copyfile(path, path.with_name(path.name + ".1"))
        os.truncate(path, 0)
        return True
    except OSError:
        return False


def last_json(path: Path, tail: int = 16384) -> dict[str, Any]:
    """The last complete JSON line of a log ({} if none): a line cut short by a
    kill or a full disk is skipped, not taken for the whole file's last word."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - tail))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return {}
    for line in reversed(lines):
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict):
            return doc
    return {}
