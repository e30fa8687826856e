"""Findings: splats, guest crashes and model/kernel mismatches, deduplicated by
signature and stored atomically, one directory each:

    <findings>/<slug>/finding.json   title, signature, kind, count, first/last seen
                     /program.json   the program that showed it (first one seen)
                     /kernel.log     kernel log lines / console tail of that run
                     /manifest.json  the kernel build's manifest

A finding that is a known kernel bug (fuzz.known, reproducers/known.json) is stored
and counted like any other, with `known` naming its report, but never counts as new.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fuzz import known
from fuzz.prog import Program, atomic_write
from fuzz.result import errno_name


@dataclass
class Finding:
    title: str
    signature: str
    kind: str  # splat | crash | mismatch
    count: int = 1
    first_seen: str = ""
    last_seen: str = ""
    op: int | None = None
    field: str | None = None
    detail: str = ""
    known: str = ""  # the report of the known kernel bug it is (fuzz.known), if any

    @property
    def slug(self) -> str:
        words = re.sub(r"[^A-Za-z0-9]+", "-", self.title).strip("-")[:60]
        return f"{words}-{hashlib.sha1(self.signature.encode()).hexdigest()[:8]}"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def from_outcome(outcome: Any) -> list[Finding]:
    """Every distinct finding in one differential run (fuzz.differential.Outcome)."""
    ex = outcome.execution
    found: list[Finding] = []
    for r in ex.reports:
        found.append(Finding(r.title, r.signature, "splat", detail="\n".join(r.text[:3])
                             if isinstance(r.text, list) else str(r.text)[:300]))
    if ex.crash and not ex.reports:
        title = f"guest crash: {ex.crash.split(' while ')[0]}"
        found.append(Finding(title, hashlib.sha1(title.encode()).hexdigest()[:16], "crash",
                             detail=ex.crash))
    if outcome.mismatches:
        # later ones usually follow from the first - but not from a known bug's, after
        # which the model keeps the state the kernel left: the first other one counts
        firsts = [m for m in outcome.mismatches if not m.bug][:1]
        firsts += list({m.bug: m for m in reversed(outcome.mismatches) if m.bug}.values())
        for m in firsts:
            sig = m.signature + (f" kernel={errno_name(m.kernel)} model={errno_name(m.model)}"
                                 if m.field == "errno" else "")
            title = f"model/kernel mismatch in {m.name}.{m.field}"
            found.append(Finding(title, sig, "mismatch", op=m.op, field=m.field,
                                 detail=m.describe()))
    for f in found:
        bug = known.match(f.signature)
        if bug is not None:
            f.known = bug.report
            f.title = f"known: {bug.title}"
    return found


class FindingStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def record(self, f: Finding, prog: Program, log: str, manifest: dict | None) -> bool:
        """Store or count a finding; True if it is new (a known bug never is)."""
        d = self.root / f.slug
        meta = d / "finding.json"
        now = _now()
        if meta.exists():
            try:
                old = json.loads(meta.read_text())
                f.count = int(old.get("count", 0)) + 1
                f.first_seen = old.get("first_seen", now)
            except (OSError, ValueError):
                f.first_seen = now  # a damaged record is rewritten whole
            f.last_seen = now
            atomic_write(meta, (json.dumps(asdict(f), indent=1) + "\n").encode())
            return False
        f.first_seen = f.last_seen = now
        d.mkdir(parents=True, exist_ok=True)
        # program and log first: finding.json appearing last marks the record complete
        prog.save(d / "program.json")
        atomic_write(d / "kernel.log", log.encode())
        atomic_write(d / "manifest.json", (json.dumps(manifest or {}, indent=1) + "\n").encode())
        atomic_write(meta, (json.dumps(asdict(f), indent=1) + "\n").encode())
        return not f.known

    def list(self) -> list[tuple[Finding, Path]]:
        out = []
        for meta in sorted(self.root.glob("*/finding.json")):
            try:
                out.append((Finding(**json.loads(meta.read_text())), meta.parent))
            except (OSError, ValueError, TypeError) as e:
                print(f"iommufd-fuzz: skipping damaged finding {meta}: {e}")
        return out
