"""The corpus: content-addressed program files (name = sha1 of the bytes, as
libFuzzer names its units), seeds included. Loading never loses a file: a
corrupt one is reported by name and moved to <corpus>/quarantine/."""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

from fuzz.prog import Program, ProgramError, atomic_write


def content_name(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def add(corpus: Path, prog: Program) -> Path:
    data = prog.dumps().encode()
    path = corpus / content_name(data)
    if not path.exists():
        atomic_write(path, data)
    return path


def files(corpus: Path) -> list[Path]:
    if not corpus.exists():
        return []
    return sorted(p for p in corpus.rglob("*") if p.is_file() and "quarantine" not in p.parts
                  and not p.name.startswith("."))


def load(corpus: Path, quarantine: bool = True) -> list[tuple[Path, Program]]:
    """Every readable program; corrupt files are named on stderr and set aside."""
    out = []
    for p in files(corpus):
        try:
            out.append((p, Program.load(p)))
        except ProgramError as e:
            print(f"iommufd-fuzz: corpus: skipping corrupt file: {e}", file=sys.stderr)
            if quarantine:
                q = corpus / "quarantine"
                q.mkdir(exist_ok=True)
                shutil.move(str(p), q / p.name)
    return out


def minimize(entries: list[tuple[Path, Program, set[int]]]) -> list[Path]:
    """The smallest set (greedy set cover, smallest programs first among equals)
    that keeps every edge any entry reaches."""
    need: set[int] = set().union(*(e for _, _, e in entries)) if entries else set()
    keep: list[Path] = []
    pool = sorted(entries, key=lambda t: (-len(t[2]), len(t[1].ops)))
    while need and pool:
        best = max(pool, key=lambda t: (len(t[2] & need), -len(t[1].ops)))
        gain = best[2] & need
        if not gain:
            break
        keep.append(best[0])
        need -= gain
        pool.remove(best)
    return keep
