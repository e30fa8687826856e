"""Systematic fault injection: fail the 1st, 2nd, ... fault point of one op of a
program until the op passes them all, the way the kernel's iommufd_fail_nth walks
its sequences, with a probe suffix after the op so that whatever state a failure
leaves behind shows against the model.

    w = walk(prog, op_index, backend)        # one Point per N
    w.points[-1].injected is False            # the walk ended: w.fault_points points

Every run goes through the oracle (fuzz.differential): an op an injected fault
failed must fail with an errno the kernel may return there and leave the state as
if it had never run (fuzz.model.faults); splats are the kernel checkers'. With
sites=True the kernel logs each injected fault with a stack trace (the fault
attributes' verbose=2) and each point names where it was (fault_site).

The campaign runs the same walk a step at a time between its other programs
(Walker), on corpus programs.
"""

from __future__ import annotations

import copy
import random
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fuzz import corpus, differential
from fuzz.model import Model
from fuzz.model.objects import OBJ_HWPT_PAGING, OBJ_IOAS
from fuzz.model.selftest import pin_counts
from fuzz.prog import Op, Program, buffer_address
from fuzz.prog.limits import MAX_FAIL_NTH
from fuzz.result import errno_name

MAX_N = 400  # as iommufd_fail_nth: more fault points than this on one op is a walk cut short
MAX_PROBES = 24


# -- the probe suffix ------------------------------------------------------------------
def _ids(m: Model, typ: str) -> set[int]:
    return {o.id for o in m.objects.objs.values() if o.finalized and o.type == typ}


def probes(prog: Program, index: int) -> list[Op]:
    """Ops that show the state after op `index` whether it ran or not: the IOVA ranges
    of every IOAS, MD_CHECK_MAP of every area on every mock domain, MD_CHECK_REFS of
    every run of pages with one pin count (in either state), the op again if it maps
    (a leftover mapping answers EEXIST), and an IOAS_ALLOC (a leaked id shifts it).
    Literal ids and addresses: the probes come after op `index` and nothing after them."""
    before = Model(prog)
    for i in range(index):
        before.step(i)
    after = before.clone()
    after.step(index)
    out: list[Op] = []
    for ioas in sorted(_ids(before, OBJ_IOAS) | _ids(after, OBJ_IOAS)):
        out.append(Op("IOAS_IOVA_RANGES", {"ioas_id": ioas, "num_iovas": 8}))
    maps: set[tuple[int, int, int, int]] = set()
    for m in (before, after):
        for obj in m.objects.objs.values():
            if obj.type != OBJ_HWPT_PAGING or not obj.finalized:
                continue
            for area in obj.ioas.iopt.areas:  # type: ignore[attr-defined]
                maps.add((obj.id, area.iova, area.length, area.uaddr(area.iova)))
    for hwpt, iova, length, uptr in sorted(maps):
        out.append(Op("TEST_MD_CHECK_MAP", {"id": hwpt, "iova": iova, "length": length,
                                            "uptr": uptr}))
    refs: set[tuple[int, int, int]] = set()
    for bi, b in enumerate(prog.buffers):
        if b.kind in ("hole", "hugetlb"):  # nothing to pin; compound pages are skipped
            continue
        lo = buffer_address(bi)
        for m in (before, after):
            for s, e, cnt in pin_counts(m, lo, lo + b.size):
                refs.add((s, e - s, cnt))
    ioas_any = min(_ids(before, OBJ_IOAS) | _ids(after, OBJ_IOAS), default=0)
    for s, length, cnt in sorted(refs):
        out.append(Op("TEST_MD_CHECK_REFS", {"id": ioas_any, "uptr": s, "length": length,
                                             "refs": cnt}))
    op = prog.ops[index]
    if op.desc.maps is not None:
        out.append(Op(op.name, copy.deepcopy(op.args)))
    out = out[:MAX_PROBES]
    out.append(Op("IOAS_ALLOC"))
    return out


def with_fault(prog: Program, index: int, nth: int, probe: bool = True) -> Program:
    """The program up to op `index`, that op failing its `nth` fault point, then the
    probe suffix (built from the model's two possible states after the op)."""
    p = Program(copy.deepcopy(prog.ops[:index + 1]), copy.deepcopy(prog.buffers), prog.creds)
    tail = probes(p, index) if probe else []
    p.ops[index].fail_nth = nth
    p.ops += tail  # after the op's race group (if any) has been joined: no barrier
    return p


# -- fault sites from the kernel log -----------------------------------------------------
_FORCING = re.compile(r"FAULT_INJECTION: forcing a failure")
_NAME = re.compile(r"name (\w+), interval")
_FRAME = re.compile(r"^\s*(?:\? )?([A-Za-z_][\w.]*)\+0x[0-9a-f]+/0x[0-9a-f]+")
# frames of the fault machinery and the allocators, above the code that asked
_MACHINERY = re.compile(
    r"^(dump_stack|fail_dump|should_fail|should_failslab|__should_failslab|"
    r"should_fail_alloc_page|iommufd_should_fail|prepare_alloc_pages|__alloc_pages|"
    r"alloc_pages|__alloc_frozen_pages|alloc_frozen_pages|__folio_alloc|folio_alloc|"
    r"alloc_pages_mpol|__get_free_pages|get_free_pages|get_zeroed_page|slab_pre_alloc_hook|"
    r"slab_alloc_node|kmem_cache_alloc|__kmalloc|kmalloc|__kvmalloc|kvmalloc|kzalloc|"
    r"kmemdup|kstrdup|krealloc|__do_kmalloc|___slab_alloc|new_slab|allocate_slab|"
    r"alloc_slab_page|xas_alloc|xas_nomem|xas_create|xas_store|__xa_|xa_|idr_|ida_|"
    r"kasan_|kmsan_|__kasan|alloc_pages_bulk|__alloc_pages_bulk|memcg_|obj_cgroup_)")


def fault_sites(kmsg: str) -> list[tuple[str, str, list[str]]]:
    """Each injected fault the kernel logged with verbose 2: (attribute, the first
    frame past the fault and allocation machinery, the frames from there)."""
    out: list[tuple[str, str, list[str]]] = []
    lines = kmsg.splitlines()
    for k, ln in enumerate(lines):
        if not _FORCING.search(ln):
            continue
        m = _NAME.search(ln)  # /dev/kmsg escapes the record's inner newline (\x0a)
        attr = m.group(1) if m else ""
        frames: list[str] = []
        for nxt in lines[k + 1:k + 80]:
            msg = re.sub(r"^\[[^\]]*\](?:\[[^\]]*\])?\s?", "", nxt)
            if _FORCING.search(msg):
                break
            m = _NAME.search(msg)
            if m and not attr:
                attr = m.group(1)
            f = _FRAME.match(msg)
            if f and not msg.lstrip().startswith("?"):
                frames.append(f.group(1))
            if "</TASK>" in msg:
                break
        rest = [f for f in frames if not _MACHINERY.match(f)]
        start = frames.index(rest[0]) if rest else len(frames)
        out.append((attr, rest[0] if rest else "", frames[start:start + 8]))
    return out


# -- one op's walk ---------------------------------------------------------------------
@dataclass
class Point:
    nth: int
    injected: bool
    errno: int
    mismatches: list[str] = field(default_factory=list)
    unsure: list[str] = field(default_factory=list)
    splats: list[str] = field(default_factory=list)
    crash: str | None = None
    attr: str = ""  # the fault attribute that failed (with sites)
    site: str = ""
    frames: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in ("", [], None)}


@dataclass
class Walk:
    prog: Program
    op: int
    points: list[Point] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def name(self) -> str:
        return self.prog.ops[self.op].name

    @property
    def complete(self) -> bool:
        """The last N was past the op's last fault point."""
        return bool(self.points) and not self.points[-1].injected

    @property
    def fault_points(self) -> int:
        return sum(p.injected for p in self.points)

    def errnos(self) -> Counter[str]:
        """What the op answered with its fault points failed (0: a tolerated failure)."""
        return Counter(errno_name(p.errno) if p.errno else "ok" for p in self.points
                       if p.injected)

    def summary(self) -> str:
        bad = sum(bool(p.mismatches) for p in self.points)
        splat = sum(bool(p.splats or p.crash) for p in self.points)
        errs = ", ".join(f"{k} {v}" for k, v in sorted(self.errnos().items()))
        more = "" if self.complete else f" (stopped at N={len(self.points)}: not all)"
        return (f"op {self.op} {self.name}: {self.fault_points} fault points{more}; "
                f"{errs or 'none failed'}; mismatches at {bad} N, splats at {splat} N")

    def to_json(self) -> dict[str, Any]:
        return {"op": self.op, "name": self.name, "fault_points": self.fault_points,
                "complete": self.complete, "errnos": dict(self.errnos()),
                "seconds": round(self.seconds, 2), "points": [p.to_json() for p in self.points]}


def point_of(nth: int, index: int, out: differential.Outcome, sites: bool) -> Point:
    ex = out.execution
    r = ex.results[index] if index < len(ex.results) else None
    pt = Point(nth, bool(r and r.injected), r.errno if r else -1,
               [m.describe() for m in out.mismatches], [u.describe() for u in out.unsure],
               [s.title for s in ex.reports], ex.crash or ex.setup_error)
    if sites and ex.raw is not None and pt.injected:
        found = fault_sites(ex.raw.kmsg)
        if found:
            pt.attr, pt.site, pt.frames = found[-1]
    return pt


def walk(prog: Program, index: int, run: Callable[[Program], differential.Outcome],
         max_n: int = MAX_N, probe: bool = True, sites: bool = False,
         on_point: Callable[[Point, differential.Outcome], None] | None = None) -> Walk:
    """Fail op `index`'s 1st, 2nd, ... fault point (each in a fresh run of the program
    up to that op, plus the probe suffix) until the op passes them all or max_n.
    `run` is one differential run (differential.run on a backend, or a campaign
    worker's). With sites, the caller has set the VM's fault verbosity to 2."""
    w = Walk(prog, index)
    t0 = time.monotonic()
    for nth in range(1, min(max_n, MAX_FAIL_NTH) + 1):
        out = run(with_fault(prog, index, nth, probe))
        pt = point_of(nth, index, out, sites)
        w.points.append(pt)
        if on_point is not None:
            on_point(pt, out)
        if not pt.injected:
            break
    w.seconds = time.monotonic() - t0
    return w


# -- the campaign's share ------------------------------------------------------------------
class Walker:
    """Walks corpus programs' ops one N at a time, for a campaign worker to interleave
    with its other programs: next_program() gives the next run, done() what it showed."""

    def __init__(self, corpus_dirs: list[Path], rng: random.Random, max_n: int = MAX_N) -> None:
        self.dirs = corpus_dirs
        self.rng = rng
        self.max_n = max_n
        self.prog: Program | None = None
        self.op = 0
        self.nth = 0
        self.walks = 0  # finished
        self.points = 0

    def _pick(self) -> bool:
        from fuzz import corpus

        files = [f for d in self.dirs for f in corpus.files(d)]
        self.rng.shuffle(files)
        for f in files[:8]:
            try:
                prog = Program.load(f)
            except Exception:  # a damaged corpus file is the corpus loader's to report
                continue
            cands = [i for i, op in enumerate(prog.ops) if not op.fail_nth]
            if prog.ops and cands:
                self.prog, self.op, self.nth = prog, self.rng.choice(cands), 0
                return True
        return False

    def next_program(self) -> Program | None:
        if self.prog is None and not self._pick():
            return None
        assert self.prog is not None
        self.nth += 1
        return with_fault(self.prog, self.op, self.nth)

    def done(self, out: differential.Outcome) -> None:
        """The run of next_program()'s program: the walk goes on while the op's fault
        was injected, else (or at max_n) it is over and the next one starts."""
        r = out.execution.results[self.op] if self.op < len(out.execution.results) else None
        self.points += 1
        if r is None or not r.injected or self.nth >= self.max_n:
            self.walks += 1
            self.prog = None


def scan_leaks(vm: Any) -> list[Any]:
    """kmemleak's reports of what the runs so far leaked: it lists objects at least 5 s
    old, so it waits that long first."""
    from fuzz.report import parse

    time.sleep(5.5)
    return [r for r in parse(vm.scan_leaks()) if r.kind == "LEAK"]


# -- `iommufd-fuzz faults` -------------------------------------------------------------------
def add_arguments(p: Any) -> None:
    p.add_argument("program", nargs="*", help="program files (default: corpus/seeds/*.json)")
    p.add_argument("--op", type=int, action="append", help="only these op indexes (repeatable)")
    p.add_argument("--max-n", type=int, default=MAX_N)
    p.add_argument("--no-probes", action="store_true", help="no probe suffix after the op")
    p.add_argument("--sites", action="store_true",
                   help="have the kernel log each injected fault's stack: name the fault site")
    p.add_argument("--json", help="write every walk's points here")
    p.add_argument("--markdown", help="write a table of every walked op's fault points here")
    p.add_argument("--findings", help="record mismatches and splats as findings here")
    p.add_argument("--keep-new", metavar="CORPUS",
                   help="add every walked program that agrees with the model and reaches "
                        "drivers/iommu/iommufd lines (KCOV) that the programs themselves and "
                        "the ones kept before do not to this corpus")
    p.add_argument("--kmemleak", action="store_true", help="boot with kmemleak=on and scan "
                   "after each program's walks: leaked memory is a finding")
    p.add_argument("--kernel")


def command(a: Any) -> int:
    """Walk every (or the given) op of each program: its fault points, what each answered,
    and every mismatch or splat (exit 1 if there was one)."""
    import json
    import sys

    from fuzz import kernel
    from fuzz.backend import VMBackend
    from fuzz.findings import Finding, FindingStore, from_outcome
    from fuzz.prog import atomic_write
    from fuzz.vm import VMConfig

    paths = [Path(p) for p in a.program] or sorted(Path("corpus/seeds").glob("*.json"))
    progs = [(p, Program.load(p)) for p in paths]
    kdir = Path(a.kernel) if a.kernel else kernel.default_kernel()
    be = VMBackend(kdir, VMConfig(kernel=kdir, kmemleak=a.kmemleak))
    store = FindingStore(Path(a.findings)) if a.findings else None
    manifest = kernel.manifest(kdir) if store else {}
    walks: list[tuple[Path, Walk]] = []
    bad = 0
    news = NewLines(be, kdir, [p for _, p in progs]) if a.keep_new else None

    def keep(pt: Point, out: differential.Outcome) -> None:
        nonlocal bad
        bad += bool(out.failed)
        if news is not None and not out.failed and news.new(out):
            corpus.add(Path(a.keep_new), out.prog)
        if store is not None and out.failed:
            log = (out.execution.raw.kmsg if out.execution.raw else "") + \
                out.execution.console_tail
            for f in from_outcome(out):
                store.record(f, out.prog, log, manifest)

    try:
        if a.sites:
            be.vm.set_fault_verbose(2)
        for path, prog in progs:
            print(f"== {path}", flush=True)
            for i in a.op if a.op else range(len(prog.ops)):
                if not 0 <= i < len(prog.ops):
                    print(f"iommufd-fuzz: {path}: no op {i}", file=sys.stderr)
                    return 2
                w = walk(prog, i, lambda p: differential.run(p, be), a.max_n,
                         not a.no_probes, a.sites, keep)
                walks.append((path, w))
                print("  " + w.summary(), flush=True)
                for pt in w.points:
                    if pt.mismatches or pt.splats or pt.crash:
                        print(f"    N={pt.nth}: " + "; ".join(pt.mismatches[:2] + pt.splats[:2]
                                                           + [pt.crash or ""]).strip("; "))
                    if a.sites and pt.injected:
                        print(f"    N={pt.nth} {pt.attr or '?'} at {pt.site or '?'} -> "
                              f"{errno_name(pt.errno) if pt.errno else 'ok'}"
                              + (f"  ({' < '.join(pt.frames[:4])})" if pt.frames else ""))
            if a.kmemleak:
                leaks = scan_leaks(be.vm)
                print(f"  kmemleak: {len(leaks)} leak(s)" + "".join(
                    f"\n    {r.title}" for r in leaks), flush=True)
                bad += len(leaks)
                if store is not None:
                    for r in leaks:
                        store.record(Finding(r.title, r.signature, "splat",
                                             detail=f"kmemleak after walking {path}"),
                                     prog, "\n".join(r.text) if isinstance(r.text, list)
                                     else str(r.text), manifest)
        if a.sites:
            be.vm.set_fault_verbose(0)
    finally:
        be.close()
    if a.json:
        doc = [{"program": str(p), **w.to_json()} for p, w in walks]
        atomic_write(Path(a.json), (json.dumps(doc, indent=1) + "\n").encode())
    if a.markdown:
        atomic_write(Path(a.markdown), markdown(walks).encode())
    total = sum(w.fault_points for _, w in walks)
    if news is not None:
        print(f"kept {news.kept} programs reaching {news.added} iommufd lines the programs "
              f"did not (of {news.base} they reach) in {a.keep_new}")
    print(f"{len(walks)} ops walked, {total} fault points, "
          f"{sum(len(w.points) for _, w in walks)} runs, {bad} runs with a mismatch or splat")
    return 1 if bad else 0


class NewLines:
    """The iommufd lines (the KCOV line map) the walk's programs reach that the walked
    programs themselves, and the ones kept so far, do not."""

    def __init__(self, be: Any, kdir: Path, progs: list[Program]) -> None:
        from fuzz.coverage.lines import line_map

        self.map = line_map(kdir)
        self.seen: set[tuple[str, int]] = set()
        for p in progs:
            self.seen |= self._lines(be.run(p))
        self.base = len(self.seen)
        self.kept = self.added = 0

    def _lines(self, ex: Any) -> set[tuple[str, int]]:
        from fuzz import coverage

        return {(f, n) for f, ns in self.map.lines_of(coverage.pcs(ex)).items() for n in ns}

    def new(self, out: differential.Outcome) -> bool:
        more = self._lines(out.execution) - self.seen
        if more:
            self.seen |= more
            self.kept += 1
            self.added += len(more)
        return bool(more)


def markdown(walks: list[tuple[Path, Walk]]) -> str:
    """Per op name: how many fault points its instances have and what failing them gave;
    then every walked op."""
    by: dict[str, list[Walk]] = {}
    for _, w in walks:
        by.setdefault(w.name, []).append(w)
    L = ["| op | walked | fault points (min-max) | what failing them gave | mismatches | splats |",
         "| --- | ---: | ---: | --- | ---: | ---: |"]
    for name, ws in sorted(by.items()):
        pts = [w.fault_points for w in ws]
        errs: Counter[str] = Counter()
        for w in ws:
            errs.update(w.errnos())
        bad = sum(bool(p.mismatches) for w in ws for p in w.points)
        splat = sum(bool(p.splats or p.crash) for w in ws for p in w.points)
        L.append(f"| {name} | {len(ws)} | {min(pts)}-{max(pts)} | "
                 + ", ".join(f"{k} {v}" for k, v in errs.most_common()) + f" | {bad} | {splat} |")
    L += ["", "| program | op | fault points | errnos | sites (first ones) |",
          "| --- | --- | ---: | --- | --- |"]
    for path, w in walks:
        sites = Counter(p.site for p in w.points if p.injected and p.site)
        L.append(f"| {path.name} | {w.op} {w.name} | {w.fault_points}"
                 + ("" if w.complete else "+") + " | "
                 + ", ".join(f"{k} {v}" for k, v in sorted(w.errnos().items())) + " | "
                 + ", ".join(f"{k} {v}" for k, v in sites.most_common(4)) + " |")
    return "\n".join(L) + "\n"
