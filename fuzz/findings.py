"""Findings: splats, guest crashes and model/kernel mismatches, deduplicated by
signature and stored atomically, one directory each:

    <findings>/<slug>/finding.json   title, signature, kind, count, first/last seen,
                                     the later splats of the same run
                     /program.json   the program that showed it (first one seen)
                     /history.json   the programs the VM ran before it since its last
                                     restore (at most MAX_HISTORY), oldest first
                     /kernel.log     kernel log lines / console tail of that run
                     /manifest.json  the kernel build's manifest

finding.json is written last: a directory without it is an interrupted record,
never listed. One program run is one finding, titled by its first splat as syzbot
does; later splats (a KASAN report's follow-ups, the "Fatal exception" panic), a
crash and a mismatch of the same run are listed in its `also`. Splats logged
before a program started (deferred work of the program before it, see
fuzz.channel.split_kmsg) are that program's finding, not this one's.

A finding that is a known kernel bug (fuzz.known, reproducers/known.json) is stored
and counted like any other, with `known` naming its report, but never counts as new.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
from dataclasses import asdict, dataclass, fields
from dataclasses import field as dc_field
from pathlib import Path
from typing import Any

from fuzz import known
from fuzz.prog import Program, atomic_write
from fuzz.prog.jsonio import InputError, from_json_value, read_json, read_text, to_json_value
from fuzz.prog.limits import MAX_HISTORY
from fuzz.result import OpResult, errno_name

HISTORY_VERSION = 1


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
    also: list[str] = dc_field(default_factory=list)  # the run's later splats, crash, mismatch
    deferred: bool = False  # logged after its program's results, before the next one started

    @property
    def slug(self) -> str:
        words = re.sub(r"[^A-Za-z0-9]+", "-", self.title).strip("-")[:60]
        return f"{words}-{hashlib.sha1(self.signature.encode()).hexdigest()[:8]}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: Any, where: str) -> Finding:
        """A finding.json document; keys this version does not know are ignored."""
        if not isinstance(doc, dict):
            raise InputError(f"{where}: expected a JSON object, got {type(doc).__name__}")
        types: dict[str, tuple[type, ...]] = {
            "title": (str,), "signature": (str,), "kind": (str,), "count": (int,),
            "first_seen": (str,), "last_seen": (str,), "op": (int, type(None)),
            "field": (str, type(None)), "detail": (str,), "known": (str,), "also": (list,),
            "deferred": (bool,)}
        for k in ("title", "signature", "kind"):
            if k not in doc:
                raise InputError(f"{where}: not a finding record (no {k!r})")
        kw = {}
        for f in fields(cls):
            if f.name not in doc:
                continue
            v = doc[f.name]
            ok = isinstance(v, types[f.name]) and (f.name == "deferred"
                                                   or not isinstance(v, bool))
            if not ok or (f.name == "also" and not all(isinstance(x, str) for x in v)):
                raise InputError(f"{where}: {f.name!r} has the wrong type ({_short(v)})")
            kw[f.name] = v
        return cls(**kw)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _short(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 60 else s[:57] + "..."


@dataclass
class Evidence:
    """One finding of a run and what to store with it: the program it is put on
    and the programs the VM ran before that one."""

    finding: Finding
    prog: Program
    history: list[Program]
    results: list[OpResult] = dc_field(default_factory=list)  # the kernel's, of prog


def _splat_finding(reports: list[Any]) -> Finding:
    """Titled by the first report that is not a follow-up panic ("Fatal exception",
    "panic_on_warn set"), as syzbot titles a crash; the others are listed."""
    first = next((r for r in reports if not getattr(r, "secondary", False)), reports[0])
    text = first.text if isinstance(first.text, str) else "\n".join(first.text)
    also = list(dict.fromkeys(r.title for r in reports if r is not first and
                              r.title != first.title))
    return Finding(first.title, first.signature, "splat", detail="\n".join(text.splitlines()[:3]),
                   also=also)


def mismatch_finding(m: Any) -> Finding:
    if m.field == "model_error":  # the model's own bug, with the kernel's results kept
        return Finding(f"model error in {m.name}: {m.model[0]}", m.signature, "mismatch",
                       op=m.op, field=m.field, detail=m.describe())
    sig = m.signature + (f" kernel={errno_name(m.kernel)} model={errno_name(m.model)}"
                         if m.field == "errno" else "")
    return Finding(f"model/kernel mismatch in {m.name}.{m.field}", sig, "mismatch", op=m.op,
                   field=m.field, detail=m.describe())


def crash_finding(what: str) -> Finding:
    title = f"guest crash: {what.split(' while ')[0]}"
    return Finding(title, hashlib.sha1(title.encode()).hexdigest()[:16], "crash", detail=what)


def attribute(outcome: Any) -> list[Evidence]:
    """The findings of one differential run (fuzz.differential.Outcome), each with
    the program it belongs to: at most one for the program itself (its first splat,
    else its crash, else its first mismatch; the rest in `also`) and one for the
    program before it when deferred work of that one splatted before this started."""
    ex = outcome.execution
    history = list(getattr(ex, "history", []))
    prior_ids = {id(r) for r in getattr(ex, "prior_reports", [])}
    prior = [r for r in ex.reports if id(r) in prior_ids]
    own = [r for r in ex.reports if id(r) not in prior_ids]
    out: list[Evidence] = []
    if prior and history:
        f = _splat_finding(prior)
        f.deferred = True
        f.detail += "\n(logged after this program's results, before the next program started)"
        out.append(Evidence(f, history[-1], history[:-1]))
    else:
        own = prior + own  # nothing ran before it since the restore: it can only be this one's
    # the first mismatch that is not a known bug's is the run's; known bugs' go apart
    firsts = [m for m in outcome.mismatches if not m.bug][:1]
    bugs = list({m.bug: m for m in reversed(outcome.mismatches) if m.bug}.values())
    if not firsts and bugs and not own and not ex.crash:
        firsts, bugs = bugs[:1], bugs[1:]
    if own:
        f = _splat_finding(own)
        if ex.crash:
            f.also.append(f"guest crash: {ex.crash}")
    elif ex.crash:
        f = crash_finding(ex.crash)
    elif firsts:
        f = mismatch_finding(firsts[0])  # later ones usually follow from it
    else:
        return _tag_known(out)
    if f.kind != "mismatch" and firsts:
        f.also.append(mismatch_finding(firsts[0]).title)
    results = list(ex.results)
    out.append(Evidence(f, outcome.prog, history, results))
    # a known bug's mismatch is counted on its own (as known), never instead of the run's
    # own finding: after it the model follows the state the kernel left
    seen = {f.signature}
    for m in bugs:
        k = mismatch_finding(m)
        if k.signature not in seen:
            seen.add(k.signature)
            out.append(Evidence(k, outcome.prog, history, results))
    return _tag_known(out)


def _tag_known(found: list[Evidence]) -> list[Evidence]:
    for e in found:
        bug = known.match(e.finding.signature)
        if bug is not None:
            e.finding.known = bug.report
            e.finding.title = f"known: {bug.title}"
    return found


def from_outcome(outcome: Any) -> list[Finding]:
    """Every finding of one differential run (see attribute)."""
    return [e.finding for e in attribute(outcome)]


def recheck_verdict(finding: Finding, outcome: Any) -> str:
    """`recheck`'s verdict on a stored finding, the model run again on its recorded
    results: still a mismatch (at which op), the model agrees now, or only known kernel
    bugs disagree - then which op is which known bug, and that the finding's own op
    agrees (a known bug's mismatch is not the finding's: attribute)."""
    new: Any = None  # the first mismatch no known bug explains
    bugs: dict[tuple[int, str], str] = {}  # (op, name) -> the known bug's id
    for m in outcome.mismatches:
        bug = known.match(mismatch_finding(m).signature)
        if bug is None:
            new = new or m
        else:
            bugs.setdefault((m.op, m.name), bug.id)
    if outcome.failed_new:
        return "still a mismatch" + (f" at op {new.op} ({new.name})" if new else "")
    if not outcome.failed:
        return "the model agrees now"
    parts = "; ".join(f"op {op} ({name}) is known bug {bug}" for (op, name), bug in bugs.items())
    own = finding.op
    if own is None or any(op == own for op, _ in bugs) or not 0 <= own < len(outcome.prog.ops):
        return f"only known bugs: {parts}" if parts else "a known bug"
    return f"agrees at op {own} ({outcome.prog.ops[own].name}); {parts}"


def run_log(outcome: Any) -> str:
    ex = outcome.execution
    return (ex.raw.kmsg if ex.raw else "") + ex.console_tail


RESULTS_FILE = "kernel-results.json"  # what the kernel returned for each op of program.json
RESULTS_VERSION = 1


def results_json(results: list[OpResult]) -> bytes:
    """The kernel's result of each op, as the executor reported it: so that a finding
    that does not reproduce (a race, a fault) can be checked again against a changed
    model (`iommufd-fuzz recheck`)."""
    ops = [{"errno": r.errno, "ret": r.ret, "out": to_json_value(r.out), "injected": r.injected,
            "thread": r.thread, "t_start": r.t_start, "t_end": r.t_end} for r in results]
    return (json.dumps({"version": RESULTS_VERSION, "ops": ops}) + "\n").encode()


def load_results(path: Path, n_ops: int) -> list[OpResult]:
    doc = read_json(path)
    if not isinstance(doc, dict) or doc.get("version") != RESULTS_VERSION or \
            not isinstance(doc.get("ops"), list) or len(doc["ops"]) > n_ops:
        raise InputError(f"{path}: not the kernel's results of the finding's program "
                         f"(version {RESULTS_VERSION}, at most {n_ops} ops)")
    out = []
    for i, r in enumerate(doc["ops"]):
        try:
            out.append(OpResult(errno=int(r["errno"]), ret=int(r["ret"]),
                                out=from_json_value(dict(r["out"])), injected=bool(r["injected"]),
                                thread=int(r["thread"]), t_start=int(r["t_start"]),
                                t_end=int(r["t_end"])))
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"{path}: op {i}: {e!r}") from None
    return out


def history_json(history: list[Program]) -> bytes:
    doc = {"version": HISTORY_VERSION, "programs": [p.to_json() for p in history]}
    return (json.dumps(doc) + "\n").encode()


def load_history(path: Path) -> list[Program]:
    """history.json: the programs before the finding's, oldest first ([] if absent)."""
    if not path.exists():
        return []
    doc = read_json(path)
    if not isinstance(doc, dict) or doc.get("version") != HISTORY_VERSION or \
            not isinstance(doc.get("programs"), list):
        raise InputError(f"{path}: not a history record (version {HISTORY_VERSION} with "
                         "a list of programs)")
    if len(doc["programs"]) > MAX_HISTORY:
        raise InputError(f"{path}: {len(doc['programs'])} programs, at most {MAX_HISTORY}")
    return [Program.from_json(p, f"{path}: program {i}") for i, p in enumerate(doc["programs"])]


@dataclass
class StoredFinding:
    dir: Path
    finding: Finding
    prog: Program
    history: list[Program]
    manifest: dict[str, Any]
    log: str
    results: list[OpResult] = dc_field(default_factory=list)  # the kernel's ([]: not kept)


def load_finding(d: Path) -> StoredFinding:
    """A finding directory, every file checked; errors name the file."""
    d = Path(d)
    if not d.is_dir():
        raise InputError(f"{d}: no such finding directory")
    meta = d / "finding.json"
    if not meta.exists():
        raise InputError(f"{d}: not a finding (no finding.json; an interrupted record, or "
                         "the wrong directory)")
    f = Finding.from_json(read_json(meta), str(meta))
    prog = Program.load(d / "program.json")  # a ProgramError names the file, op and field
    history = load_history(d / "history.json")
    manifest: dict[str, Any] = {}
    if (d / "manifest.json").exists():
        m = read_json(d / "manifest.json")
        if not isinstance(m, dict):
            raise InputError(f"{d / 'manifest.json'}: expected a JSON object")
        manifest = m
    log = read_text(d / "kernel.log") if (d / "kernel.log").exists() else ""
    results = load_results(d / RESULTS_FILE, len(prog.ops)) if (d / RESULTS_FILE).exists() \
        else []
    return StoredFinding(d, f, prog, history, manifest, log, results)


class FindingStore:
    """Findings under root. Nothing is created until the first finding is recorded."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def record(self, f: Finding, prog: Program, log: str, manifest: dict | None,
               history: list[Program] | None = None, results: list[Any] | None = None
               ) -> bool:
        """Store or count a finding; True if it is new (a known bug never is)."""
        d = self.root / f.slug
        meta = d / "finding.json"
        now = _now()
        if meta.exists():
            try:
                old = Finding.from_json(read_json(meta), str(meta))
                f.count = old.count + 1
                f.first_seen = old.first_seen or now
                # where and what describe the stored program, the first occurrence's
                f.op, f.field, f.detail, f.also, f.deferred = \
                    old.op, old.field, old.detail, old.also, old.deferred
            except InputError:
                f.first_seen = now  # a damaged record is rewritten whole
            f.last_seen = now
            atomic_write(meta, (json.dumps(f.to_json(), indent=1) + "\n").encode())
            return False
        f.first_seen = f.last_seen = now
        d.mkdir(parents=True, exist_ok=True)
        # everything else first: finding.json appearing last marks the record complete
        prog.save(d / "program.json")
        if history:
            atomic_write(d / "history.json", history_json(history[-MAX_HISTORY:]))
        atomic_write(d / "kernel.log", log.encode())
        if results:
            atomic_write(d / RESULTS_FILE, results_json(results))
        atomic_write(d / "manifest.json", (json.dumps(manifest or {}, indent=1) + "\n").encode())
        atomic_write(meta, (json.dumps(f.to_json(), indent=1) + "\n").encode())
        return not f.known

    def record_outcome(self, outcome: Any, manifest: dict | None) -> list[tuple[Finding, bool]]:
        """Store every finding of a differential run; (finding, new) each."""
        log = run_log(outcome)
        return [(e.finding, self.record(e.finding, e.prog, log, manifest, e.history, e.results))
                for e in attribute(outcome)]

    def list(self) -> list[tuple[Finding, Path]]:
        out = []
        if not self.root.is_dir():
            return out
        for meta in sorted(self.root.glob("*/finding.json")):
            try:
                out.append((Finding.from_json(read_json(meta), str(meta)), meta.parent))
            except InputError as e:
                print(f"iommufd-fuzz: skipping damaged finding: {e}", file=sys.stderr)
        return out
