"""The files a campaign worker process shares with the Ray actor that runs it, in
one directory per worker on the worker's node. The engines use them without Ray:

    <dir>/inbox/<name>        corpus entries from the hub, named by content; a file's
                              mtime is when some worker found the entry (wall clock),
                              so the worker that runs it can tell the latency
    <dir>/outbox/<id>.json    one finding occurrence each: what FindingStore.record
                              was given (the programs before it, history.json,
                              with the node's first occurrence only); the actor
                              ships them to the hub, then removes them
    <dir>/imports.jsonl       the imported entries the worker ran: name, latency, and
                              whether it arrived while the worker was still starting
                              (moved to imports.jsonl.1 past IMPORTS_MAX_BYTES)

Files appear by rename, so neither side ever reads half of one.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from fuzz.findings import Finding, FindingStore
from fuzz.prog import Program, atomic_write

INBOX, OUTBOX, IMPORTS = "inbox", "outbox", "imports.jsonl"
POLL_S = 0.25  # how often the engine looks into its inbox
IMPORTS_MAX_BYTES = 256 << 10  # imports.jsonl moves to imports.jsonl.1 past this


@dataclass
class Entry:
    """A corpus entry on its way between workers."""

    name: str  # fuzz.corpus.content_name(data)
    data: bytes
    found_at: float  # wall clock, when the first worker wrote it to its corpus


# -- inbox: hub -> engine ---------------------------------------------------------------
def put(inbox: Path, e: Entry) -> None:
    """The actor's side. No fsync: if the node dies the hub still has the entry."""
    inbox.mkdir(parents=True, exist_ok=True)
    tmp = inbox / f".{e.name}.tmp"
    tmp.write_bytes(e.data)
    os.utime(tmp, (e.found_at, e.found_at))
    os.replace(tmp, inbox / e.name)


class Inbox:
    """The engine's side: entries in the order they were found, the directory read
    at most every POLL_S (a scandir of an empty directory: microseconds)."""

    def __init__(self, d: Path) -> None:
        self.dir = d
        self.dir.mkdir(parents=True, exist_ok=True)
        self.queue: deque[Entry] = deque()
        self.next_poll = 0.0

    def take(self) -> Entry | None:
        if not self.queue and time.monotonic() >= self.next_poll:
            self.next_poll = time.monotonic() + POLL_S
            self._poll()
        return self.queue.popleft() if self.queue else None

    def _poll(self) -> None:
        got = []
        try:
            with os.scandir(self.dir) as it:
                for de in it:
                    if de.name.startswith(".") or not de.is_file():
                        continue
                    try:
                        got.append(Entry(de.name, Path(de.path).read_bytes(),
                                         de.stat().st_mtime))
                        os.unlink(de.path)
                    except OSError:
                        continue
        except OSError:
            return
        self.queue.extend(sorted(got, key=lambda e: e.found_at))


def log_import(d: Path, name: str, latency_s: float, startup: bool = False) -> None:
    """startup: the entry arrived before the engine was ready for it (its latency is
    the worker's start, not the exchange's). Past IMPORTS_MAX_BYTES the file moves
    to imports.jsonl.1 (the one before goes) and a new one starts: a campaign of days
    keeps at most twice that."""
    p = d / IMPORTS
    try:
        if p.stat().st_size > IMPORTS_MAX_BYTES:
            p.replace(p.with_name(IMPORTS + ".1"))
    except OSError:
        pass
    with open(p, "a") as f:
        f.write(json.dumps({"name": name, "latency_s": round(latency_s, 3), "startup": startup,
                            "t": round(time.time(), 3)}) + "\n")


def _read_from(path: Path, offset: int) -> tuple[list[dict], int, int]:
    """Whole lines of path from byte offset on; (lines, new offset, inode)."""
    try:
        with open(path, "rb") as f:
            ino = os.fstat(f.fileno()).st_ino
            f.seek(offset)
            data = f.read()
    except OSError:
        return [], offset, -1
    end = data.rfind(b"\n") + 1
    out = []
    for line in data[:end].splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out, offset + end, ino


def read_imports(d: Path, cursor: tuple[int, int] = (-1, 0)) -> tuple[list[dict], tuple[int, int]]:
    """Lines of imports.jsonl past cursor (inode, byte offset; whole lines only) and
    the new cursor. When the engine has moved the file to imports.jsonl.1 since the
    last read, the rest of that one comes first."""
    ino, offset = cursor
    out: list[dict] = []
    try:
        moved = ino >= 0 and os.stat(d / IMPORTS).st_ino != ino
    except OSError:
        moved = False
    if moved:
        old, _, old_ino = _read_from(d / (IMPORTS + ".1"), offset)
        if old_ino == ino:
            out += old
        ino, offset = -1, 0  # the new file from its start
    lines, new_offset, new_ino = _read_from(d / IMPORTS, offset)
    if new_ino < 0:
        return out, (ino, offset)
    return out + lines, (new_ino, new_offset)


# -- outbox: engine -> hub ----------------------------------------------------------------
def _enc(v: Any) -> Any:
    if isinstance(v, Program):
        return {"__program__": v.dumps()}
    if isinstance(v, list | tuple):
        return [_enc(x) for x in v]
    return v


def _dec(v: Any) -> Any:
    if isinstance(v, dict) and set(v) == {"__program__"}:
        return Program.loads(v["__program__"], "<hub occurrence>")
    if isinstance(v, list):
        return [_dec(x) for x in v]
    return v


class OutboxStore(FindingStore):
    """A FindingStore that also spools every occurrence for the hub: the node keeps
    a store of its own, and the cluster's one store gets each occurrence once."""

    def __init__(self, root: Path, outbox: Path) -> None:
        super().__init__(root)
        self.outbox = outbox
        self.outbox.mkdir(parents=True, exist_ok=True)
        self.seq = 0

    def record(self, f: Finding, prog: Program, log: str, manifest: dict | None,
               history: list[Program] | None = None, results: list[Any] | None = None
               ) -> bool:
        # the node's own store keeps the kernel's results (the hub's copy does not yet)
        new = super().record(f, prog, log, manifest, history, results)
        self.seq += 1
        # the history goes with the node's first occurrence only: the hub keeps the
        # first occurrence's files and only counts the later ones
        doc = {"finding": asdict(f), "program": prog.dumps(), "log": log,
               "manifest": manifest or {}, "args": _enc([history]) if new and history else [],
               "kw": {}}
        atomic_write(self.outbox / f"{time.time_ns()}-{os.getpid()}-{self.seq}.json",
                     json.dumps(doc).encode())
        return new


def read_outbox(d: Path, limit: int = 64) -> list[tuple[Path, dict]]:
    """The oldest occurrences waiting (a damaged file is named and set aside)."""
    try:
        names = sorted(n for n in os.listdir(d) if n.endswith(".json") and n[0] != ".")
    except OSError:
        return []
    out = []
    for n in names[:limit]:
        p = d / n
        try:
            out.append((p, json.loads(p.read_bytes())))
        except (OSError, ValueError) as e:
            print(f"outbox: setting aside damaged {p}: {e}", file=sys.stderr)
            p.replace(p.with_name(f".{n}.bad"))
    return out


def replay(store: FindingStore, doc: dict) -> bool:
    """Record a shipped occurrence in the cluster's store, exactly as the worker's
    own record() call was made; True if the finding is new there."""
    known = {f.name for f in fields(Finding)}
    f = Finding(**{k: v for k, v in doc["finding"].items() if k in known})
    f.count = 1  # the node's own count is the node's; the store counts occurrences
    prog = Program.loads(doc["program"], "<hub occurrence>")
    return store.record(f, prog, doc["log"], doc["manifest"], *_dec(doc.get("args", [])),
                        **{k: _dec(v) for k, v in doc.get("kw", {}).items()})


def store_for(findings: Path, exchange_dir: Path | None) -> FindingStore:
    """An engine's finding store: the plain one, or in a cluster campaign the
    node's own that also spools for the hub."""
    if exchange_dir is None:
        return FindingStore(findings)
    return OutboxStore(findings, exchange_dir / OUTBOX)
