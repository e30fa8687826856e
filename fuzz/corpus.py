"""The corpus: content-addressed program files (name = sha1 of the bytes, as
libFuzzer names its units), seeds included. Loading never loses a file: a
corrupt one (not a program, or bytes that no longer match its content name) is
reported by name and moved to <corpus>/.quarantine/, where neither this module
nor libFuzzer (which skips dot-directories) picks it up again; what a write killed
half-way left behind is removed."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
from pathlib import Path

from fuzz.prog import Program, ProgramError, atomic_write
from fuzz.prog.ir import remove_stale_temps

QUARANTINE = ".quarantine"
_CONTENT_NAME = re.compile(r"[0-9a-f]{40}")


def content_name(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def add(corpus: Path, prog: Program) -> Path:
    data = prog.dumps().encode()
    path = corpus / content_name(data)
    if not path.exists():
        atomic_write(path, data)
    return path


def _hidden(p: Path, corpus: Path) -> bool:
    parts = p.relative_to(corpus).parts
    # "quarantine": where versions before .quarantine set files aside
    return any(x.startswith(".") or x == "quarantine" for x in parts)


def files(corpus: Path) -> list[Path]:
    if not corpus.is_dir():
        return []
    return sorted(p for p in corpus.rglob("*") if not _hidden(p, corpus)
                  and not p.is_dir())


def count(corpus: Path) -> int:
    """len(files(corpus)) without building and sorting the paths (stats lines count the
    corpus every few seconds, and it grows to thousands of files)."""
    n = 0
    for _, dirs, names in os.walk(corpus):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "quarantine"]
        n += sum(1 for x in names if not x.startswith(".") and x != "quarantine")
    return n


def quarantine(corpus: Path, p: Path) -> Path:
    q = corpus / QUARANTINE
    q.mkdir(exist_ok=True)
    dest = q / p.name
    k = 1
    while dest.exists() or dest.is_symlink():
        dest = q / f"{p.name}.{k}"
        k += 1
    shutil.move(str(p), dest)
    return dest


def check(p: Path) -> Program:
    """A corpus file's program; ProgramError if it is not one or no longer has the
    bytes its content name says (a flipped digit can leave valid JSON behind)."""
    if not p.is_file():
        raise ProgramError(f"{p}: not a regular file")
    prog = Program.load(p)
    if _CONTENT_NAME.fullmatch(p.name) and content_name(p.read_bytes()) != p.name:
        raise ProgramError(f"{p}: its bytes do not match its content name (damaged)")
    return prog


def load(corpus: Path, quarantine_bad: bool = True) -> list[tuple[Path, Program]]:
    """Every readable program; corrupt files are named on stderr and set aside."""
    if quarantine_bad and corpus.is_dir() and os.access(corpus, os.W_OK):
        remove_stale_temps(corpus)
        old = corpus / "quarantine"
        if old.is_dir() and not (corpus / QUARANTINE).exists():
            old.rename(corpus / QUARANTINE)  # libFuzzer reads plain subdirectories
    out = []
    for p in files(corpus):
        try:
            out.append((p, check(p)))
        except ProgramError as e:
            print(f"iommufd-fuzz: corpus: skipping corrupt file: {e}", file=sys.stderr)
            if quarantine_bad:
                try:
                    dest = quarantine(corpus, p)
                    print(f"iommufd-fuzz: corpus: {p.name} moved to {dest}", file=sys.stderr)
                except OSError as err:
                    print(f"iommufd-fuzz: corpus: could not set {p} aside: {err}",
                          file=sys.stderr)
    return out


def check_units(d: Path) -> list[Path]:
    """libFuzzer's own unit directory (a worker's scratch corpus): libFuzzer writes
    its units in place, not atomically, so a kill can leave one cut short; such a
    unit (its bytes no longer match its content name) is set aside. Units need not
    be programs: any bytes decode to one."""
    bad = []
    if not d.is_dir() or not os.access(d, os.W_OK):
        return bad
    remove_stale_temps(d)
    for p in files(d):
        try:
            if p.is_file() and (not _CONTENT_NAME.fullmatch(p.name)
                                or content_name(p.read_bytes()) == p.name):
                continue
        except OSError:
            pass
        print(f"iommufd-fuzz: corpus: {p}: cut short (its bytes do not match its name)",
              file=sys.stderr)
        try:
            bad.append(quarantine(d, p))
        except OSError as err:
            print(f"iommufd-fuzz: corpus: could not set {p} aside: {err}", file=sys.stderr)
    return bad


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
