"""Shrink a finding's program while the same signature still shows, then hand it to
fuzz.emit for a standalone reproducer, and verify the reproducer in the VM.

    res = minimize(finding_dir, backend)          # or minimize((prog, signature), backend)
    res.prog, res.stats()                         # smaller program, runs/rate/op counts

Every candidate runs on the real kernel through fuzz.differential.run. "Same
signature" means: the same splat title signature, the same crash, or a mismatch
with the same op name and field (and, for errno mismatches, the same kernel/model
errno pair, as fuzz.findings.from_outcome spells it) at any op: op indices shift as
ops are deleted, so they are not part of the match.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fuzz.emit import Expectation, splat_keys, write_reproducer
from fuzz.findings import Finding, from_outcome
from fuzz.ops import OPS
from fuzz.paths import REPO
from fuzz.prog import HUGE_PAGE, PAGE, BufPtr, Op, Program, Ref, Value
from fuzz.result import OpResult, errno_name

if TYPE_CHECKING:
    from fuzz.differential import Outcome

RATE_RUNS = 3  # runs of the original to measure how reliably it reproduces
MAX_TRIES = 8  # cap on tries per candidate for flaky findings
MISS_PROBABILITY = 0.05  # how often a flaky-but-good candidate may be wrongly rejected


class MinimizeError(RuntimeError):
    """The finding cannot be minimized (e.g. it does not reproduce at all)."""


@dataclass
class Target:
    signature: str
    kind: str = ""  # splat | crash | mismatch; "" until a run shows which
    title: str = ""


def mismatch_signature(m: Any) -> str:
    """fuzz.findings.from_outcome's signature for one Mismatch."""
    sig = m.signature
    if m.field == "errno":
        sig += f" kernel={errno_name(m.kernel)} model={errno_name(m.model)}"
    return sig


def signatures(outcome: Outcome) -> dict[str, tuple[str, str]]:
    """signature -> (kind, title) of everything an outcome shows: every splat, the
    crash, and every mismatch (not only the first, which from_outcome records)."""
    out: dict[str, tuple[str, str]] = {}
    for f in from_outcome(outcome):
        out.setdefault(f.signature, (f.kind, f.title))
    for m in outcome.mismatches:
        out.setdefault(mismatch_signature(m), ("mismatch",
                                                f"model/kernel mismatch in {m.name}.{m.field}"))
    return out


@dataclass
class MinimizeResult:
    prog: Program
    original: Program
    target: Target
    outcome: Outcome  # a reproducing run of prog
    runs: int = 0
    hits: int = 0  # reproductions of the original in rate_runs runs
    rate_runs: int = 0
    tries: int = 1  # runs per candidate before calling it a miss
    seconds: float = 0.0
    log: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.hits / self.rate_runs if self.rate_runs else 0.0

    def stats(self) -> dict[str, Any]:
        return {"runs": self.runs, "hits": self.hits, "rate_runs": self.rate_runs,
                "rate": round(self.rate, 3), "tries": self.tries,
                "original_ops": len(self.original.ops), "minimized_ops": len(self.prog.ops),
                "original_buffers": len(self.original.buffers),
                "minimized_buffers": len(self.prog.buffers), "seconds": round(self.seconds, 1)}

    def expectation(self) -> Expectation:
        """What the reproducers check, from the final reproducing run."""
        t = self.target
        if t.kind == "mismatch":
            for m in self.outcome.mismatches:
                if mismatch_signature(m) == t.signature:
                    return Expectation("mismatch", t.signature, t.title, op=m.op, name=m.name,
                                       field=m.field, kernel=m.kernel, model=m.model)
            raise MinimizeError("the final run does not show the mismatch")
        title = t.title.removeprefix("guest crash: ")
        keys = splat_keys(title) if t.kind == "splat" else ["Kernel panic"]
        return Expectation(t.kind, t.signature, t.title, keys=keys)

    def splat_text(self) -> str:
        for r in self.outcome.execution.reports:
            if r.signature == self.target.signature:
                return r.text if isinstance(r.text, str) else "\n".join(r.text)
        return self.outcome.execution.console_tail[-4000:] if self.target.kind == "crash" \
            else ""


# ---------------------------------------------------------------------------
# Program edits. Each returns a new program; the original is never changed.


def remove_ops(prog: Program, drop: set[int]) -> Program:
    """Delete ops; refs to later ops are renumbered, refs to deleted ops go to the
    nearest earlier kept op with the same output field (preferring the same op
    name, as fuzz.mutate.repair does but deterministically), else become 0."""
    keep = [i for i in range(len(prog.ops)) if i not in drop]
    new_index = {old: new for new, old in enumerate(keep)}
    ops: list[Op] = []
    for old in keep:
        op = copy.deepcopy(prog.ops[old])
        for k, v in op.args.items():
            if isinstance(v, Ref):
                if v.op in new_index:
                    op.args[k] = Ref(new_index[v.op], v.field, v.add)
                    continue
                want = prog.ops[v.op].name
                cands = [j for j in keep if j < old and v.field in OPS[prog.ops[j].name].outputs]
                cands.sort(key=lambda j: (prog.ops[j].name != want, -j))
                op.args[k] = Ref(new_index[cands[0]], v.field, v.add) if cands else 0
        ops.append(op)
    return Program(ops, copy.deepcopy(prog.buffers))


def used_buffers(prog: Program) -> set[int]:
    return {v.buf for op in prog.ops for v in op.args.values() if isinstance(v, BufPtr)}


def remove_buffers(prog: Program, drop: set[int]) -> Program:
    """Delete buffers no op points into; BufPtrs are renumbered (later buffers move
    to lower fixed addresses, which is why candidates are re-run)."""
    keep = [i for i in range(len(prog.buffers)) if i not in drop]
    new_index = {old: new for new, old in enumerate(keep)}
    p = Program(copy.deepcopy(prog.ops), [copy.deepcopy(prog.buffers[i]) for i in keep])
    for op in p.ops:
        for k, v in op.args.items():
            if isinstance(v, BufPtr):
                op.args[k] = BufPtr(new_index[v.buf], v.offset) if v.buf in new_index else 0
    return p


def with_arg(prog: Program, i: int, name: str, value: Value | None) -> Program:
    p = copy.deepcopy(prog)
    if value is None:
        p.ops[i].args.pop(name, None)
    else:
        p.ops[i].args[name] = value
    return p


_LENGTH_ARGS = {"length", "limit"}


def arg_candidates(op: Op, name: str, v: Value) -> list[Value | None]:
    """Simpler values to try, simplest first; None deletes the argument (default 0,
    or the natural struct size for "size"/"argsz")."""
    out: list[Value | None] = [None]
    if isinstance(v, Ref):
        if v.add:
            out.append(Ref(v.op, v.field))
    elif isinstance(v, BufPtr):
        if v.offset:
            out.append(BufPtr(v.buf, 0))
            if v.offset % PAGE:
                out.append(BufPtr(v.buf, v.offset - v.offset % PAGE))
    elif isinstance(v, list):
        out += [v[:k] + v[k + 1:] for k in range(len(v))] if len(v) > 1 else []
    elif isinstance(v, int) and name not in ("size", "argsz", "tail"):
        is_len = name in _LENGTH_ARGS or (op.name.startswith("VFIO_IOMMU") and name == "size")
        if "flags" in name and 0 < v < (1 << 32) and v & (v - 1):
            # fewer flag bits, highest first
            out += [v & ~(1 << b) for b in range(31, -1, -1) if v >> b & 1]
        elif is_len and v > PAGE:
            out.append(PAGE)
            lower = v // 2 - (v // 2) % PAGE
            if PAGE < lower < v:
                out.append(lower)
        elif v not in (0, 1) and v % PAGE and v > PAGE:
            out.append(v - v % PAGE)  # zero the in-page offset
    return out


# ---------------------------------------------------------------------------
# The minimizer.


class Minimizer:
    def __init__(self, backend: Any, target: Target, *, tries: int = 1, max_runs: int = 2000,
                 deadline: float | None = None, log: Callable[[str], None] | None = None) -> None:
        self.backend = backend
        self.target = target
        self.tries = tries
        self.max_runs = max_runs
        self.deadline = deadline
        self.runs = 0
        self.log_lines: list[str] = []
        self._log = log
        self.best_outcome: Outcome | None = None

    def log(self, msg: str) -> None:
        self.log_lines.append(msg)
        if self._log:
            self._log(msg)

    def out_of_budget(self) -> bool:
        return self.runs >= self.max_runs or (self.deadline is not None
                                              and time.monotonic() > self.deadline)

    def run_once(self, prog: Program) -> Outcome | None:
        """One run; the outcome, or None if the model (or anything) broke on it."""
        from fuzz import differential  # the model: imported only when something runs

        self.runs += 1
        try:
            prog.validate()
            out = differential.run(prog, self.backend)
        except Exception as e:  # noqa: BLE001 - a candidate the model chokes on is a miss
            self.log(f"  run {self.runs}: {type(e).__name__}: {e}")
            return None
        ex = out.execution
        if ex.reports and not ex.crash and hasattr(self.backend, "vm"):
            # a splat may leave the kernel tainted or locked: next candidate on a fresh boot
            self.backend.vm.restart()
        return out

    def reproduces(self, prog: Program) -> Outcome | None:
        for _ in range(self.tries):
            if self.out_of_budget():
                return None
            out = self.run_once(prog)
            if out is not None and self.target.signature in signatures(out):
                return out
        return None

    def accept(self, prog: Program, what: str) -> bool:
        out = self.reproduces(prog)
        if out is None:
            return False
        self.best_outcome = out
        self.log(f"  {what}: {len(prog.ops)} ops, {len(prog.buffers)} buffers")
        return True

    # -- passes --------------------------------------------------------------------
    def cut_after_mismatch(self, prog: Program) -> Program:
        """Ops after the mismatching op cannot change its answer: drop them at once."""
        out = self.best_outcome
        if self.target.kind != "mismatch" or out is None:
            return prog
        at = [m.op for m in out.mismatches if mismatch_signature(m) == self.target.signature]
        if at and at[0] + 1 < len(prog.ops):
            cand = remove_ops(prog, set(range(at[0] + 1, len(prog.ops))))
            if self.accept(cand, f"cut after op {at[0]}"):
                return cand
        return prog

    def delete_ops(self, prog: Program) -> Program:
        """Delta debugging: chunks of halving size, last chunk first (later ops
        depend on earlier ones, not the reverse), then single ops until none goes."""
        chunk = max(1, len(prog.ops) // 2)
        while not self.out_of_budget():
            changed = False
            start = (len(prog.ops) - 1) // chunk * chunk
            while start >= 0 and not self.out_of_budget():
                drop = set(range(start, min(start + chunk, len(prog.ops))))
                if drop and len(drop) < len(prog.ops):
                    cand = remove_ops(prog, drop)
                    if self.accept(cand, f"deleted ops {min(drop)}..{max(drop)}"):
                        prog, changed = cand, True
                start -= chunk
            if chunk == 1 and not changed:
                break
            if not changed:
                chunk = max(1, chunk // 2)
            else:
                chunk = max(1, min(chunk, len(prog.ops) // 2))
        return prog

    def simplify_buffers(self, prog: Program) -> Program:
        unused = set(range(len(prog.buffers))) - used_buffers(prog)
        if unused:
            cand = remove_buffers(prog, unused)
            if self.accept(cand, f"dropped unused buffers {sorted(unused)}"):
                prog = cand
            else:
                for b in sorted(unused, reverse=True):
                    cand = remove_buffers(prog, {b})
                    if self.accept(cand, f"dropped unused buffer {b}"):
                        prog = cand
        for b in range(len(prog.buffers)):
            buf = prog.buffers[b]
            edits: list[tuple[str, dict[str, Any]]] = []
            if buf.holes:
                edits.append(("no holes", {"holes": []}))
            if buf.kind not in ("anon", "hole"):
                edits.append(("anon", {"kind": "anon"}))
            if buf.seed:
                edits.append(("seed 0", {"seed": 0}))
            for what, change in edits:
                if self.out_of_budget():
                    return prog
                cand = copy.deepcopy(prog)
                for k, v in change.items():
                    setattr(cand.buffers[b], k, v)
                if self.accept(cand, f"buffer {b}: {what}"):
                    prog = cand
            while not self.out_of_budget():
                buf = prog.buffers[b]
                unit = HUGE_PAGE if buf.kind == "hugetlb" else PAGE
                half = buf.size // 2 - (buf.size // 2) % unit
                if half < unit:
                    break
                cand = copy.deepcopy(prog)
                cand.buffers[b].size = half
                cand.buffers[b].holes = [h for h in buf.holes if h[0] + h[1] <= half]
                if not self.accept(cand, f"buffer {b}: size {half:#x}"):
                    break
                prog = cand
        return prog

    def simplify_args(self, prog: Program) -> Program:
        for i in range(len(prog.ops) - 1, -1, -1):
            for name in list(prog.ops[i].args):
                progress = True
                while progress and not self.out_of_budget():
                    progress = False
                    v = prog.ops[i].args.get(name)
                    if v is None:
                        break
                    for c in arg_candidates(prog.ops[i], name, v):
                        cand = with_arg(prog, i, name, c)
                        shown = "deleted" if c is None else c
                        if self.accept(cand, f"op {i} {prog.ops[i].name}.{name}: {shown}"):
                            prog = cand
                            progress = c is not None  # a smaller value may shrink further
                            break
        return prog


def load_finding(d: Path) -> tuple[Program, Finding, dict[str, Any], str]:
    meta = json.loads((d / "finding.json").read_text())
    f = Finding(**meta)
    prog = Program.load(d / "program.json")
    try:
        manifest = json.loads((d / "manifest.json").read_text())
    except (OSError, ValueError):
        manifest = {}
    log = (d / "kernel.log").read_text(errors="replace") if (d / "kernel.log").exists() else ""
    return prog, f, manifest, log


def minimize(source: Path | str | tuple[Program, str], backend: Any, *,
             rate_runs: int = RATE_RUNS, max_runs: int = 2000,
             time_limit: float | None = None, rounds: int = 3,
             log: Callable[[str], None] | None = None) -> MinimizeResult:
    """Shrink the program of a finding directory, or of (program, signature)."""
    t0 = time.monotonic()
    if isinstance(source, tuple):
        prog, target = source[0], Target(source[1])
    else:
        prog, f, _, _ = load_finding(Path(source))
        target = Target(f.signature, f.kind, f.title)
    m = Minimizer(backend, target, max_runs=max_runs,
                  deadline=None if time_limit is None else t0 + time_limit, log=log)
    hits = 0
    first: Outcome | None = None
    for _ in range(max(1, rate_runs)):
        out = m.run_once(prog)
        if out is not None and target.signature in (sigs := signatures(out)):
            hits += 1
            first = first or out
            target.kind, target.title = target.kind or sigs[target.signature][0], \
                target.title or sigs[target.signature][1]
    n = max(1, rate_runs)
    if first is None:
        why = f" (last: {m.log_lines[-1].strip()})" if m.log_lines else ""
        raise MinimizeError(f"{target.signature!r} did not reproduce in {n} runs{why}")
    rate = hits / n
    m.tries = 1 if hits == n else min(MAX_TRIES, math.ceil(
        math.log(MISS_PROBABILITY) / math.log(1 - rate)))
    m.best_outcome = first
    m.log(f"reproduces {hits}/{n}; {m.tries} tries per candidate")
    best = m.cut_after_mismatch(prog)
    for r in range(rounds):
        before = best.dumps()
        best = m.delete_ops(best)
        best = m.simplify_buffers(best)
        best = m.simplify_args(best)
        if best.dumps() == before or m.out_of_budget():
            break
        m.log(f"round {r + 1} done: {len(best.ops)} ops")
    assert m.best_outcome is not None
    res = MinimizeResult(best, prog, target, m.best_outcome, runs=m.runs, hits=hits,
                         rate_runs=n, tries=m.tries, seconds=time.monotonic() - t0,
                         log=m.log_lines)
    if best is not prog and m.best_outcome.prog is not best:
        # the kept outcome must be a run of the final program (its op numbering)
        out = m.reproduces(best)
        if out is not None:
            res.outcome = out
        res.runs = m.runs
    return res


# ---------------------------------------------------------------------------
# Verifying a reproducer directory in the VM.


def expectation_of(d: Path) -> Expectation:
    return Expectation.from_json(json.loads((d / "repro.json").read_text())["expectation"])


def check_results(exp: Expectation, results: list[OpResult], reports: list[Any]) -> bool:
    """Does one executor run of program.json show the expectation?"""
    if exp.kind != "mismatch":
        return any(r.signature == exp.signature for r in reports)
    if exp.op is None or exp.op >= len(results):
        return False
    r = results[exp.op]
    if exp.field == "errno":
        return r.errno == exp.kernel and r.errno != exp.model
    if exp.field == "ret":
        return r.ret != exp.model
    got = r.out.get(exp.field or "")
    if isinstance(got, (bytes, bytearray)) or isinstance(exp.model, (bytes, bytearray)):
        return bytes(got or b"") != bytes(exp.model or b"")
    return got != exp.model


def _guest_python() -> str:
    return "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable


def _stage(d: Path) -> Path:
    """A fresh copy of the reproducer for the guest: its 9p mount caches file
    contents, so a rewritten repro.py at an old path might be read stale."""
    run = REPO / "workdir" / "repro-runs" / f"{d.name[:40]}-{time.time_ns()}"
    run.mkdir(parents=True)
    for n in ("repro.py", "repro.c", "program.json"):
        shutil.copy2(d / n, run / n)
    return run


def verify(d: Path, backend: Any, log: Callable[[str], None] | None = None
           ) -> dict[str, tuple[bool, str]]:
    """Run program.json through the executor, repro.py with the guest's python and
    repro.c built with gcc (on the host; the guest runs host binaries) on the VM's
    kernel. name -> (reproduced, how it was run + what it said)."""
    from fuzz.report import parse
    from fuzz.vm import GuestCrash

    exp = expectation_of(d)
    prog = Program.load(d / "program.json")
    res: dict[str, tuple[bool, str]] = {}
    ex = backend.run(prog)
    ok = check_results(exp, ex.results, ex.reports)
    got = ""
    if exp.kind == "mismatch" and exp.op is not None and exp.op < len(ex.results):
        r = ex.results[exp.op]
        got = f"errno {errno_name(r.errno)}" if exp.field == "errno" else \
            f"{exp.field}={r.out.get(exp.field or '', r.ret)!r}"[:120]
    elif ex.reports:
        got = "; ".join(r.title for r in ex.reports)
    res["program.json"] = (ok, f"executor run of program.json: {got or ex.crash or 'nothing'}")
    if (ex.reports and not ex.crash) and hasattr(backend, "vm"):
        backend.vm.restart()

    run = _stage(d)
    binary = run / "repro"
    cc = subprocess.run(["gcc", "-O1", "-o", str(binary), str(run / "repro.c")],
                        capture_output=True, text=True)
    py = _guest_python()
    # shown relative to the reproducer: the staged copy is byte-identical
    cmds: list[tuple[str, list[str] | None, str]] = [
        ("repro.py", [py, "-I", str(run / "repro.py")], f"{py} -I repro.py (in the guest)"),
        ("repro.c", [str(binary)] if cc.returncode == 0 else None,
         "gcc -O1 -o repro repro.c (host) && ./repro (in the guest)"),
    ]
    for name, argv, shown in cmds:
        if argv is None:
            res[name] = (False, f"{shown}: gcc failed: {cc.stderr.strip()[:500]}")
            continue
        try:
            out = backend.vm.run_command(argv, timeout=300)
        except GuestCrash as crash:
            reps = crash.reports
            hit = exp.kind != "mismatch" and (any(r.signature == exp.signature for r in reps)
                                              or exp.kind == "crash")
            res[name] = (hit, f"{shown}: guest crashed: {crash.what}")
            backend.vm.restart()
            continue
        lines = out.get("stdout", "").strip().splitlines()
        said = next((ln for ln in reversed(lines) if "REPRODUCED" in ln), lines[-1] if lines
                    else out.get("stderr", "").strip()[-300:])
        hit = out.get("rc") == 1 and any(ln.startswith("REPRODUCED:") for ln in lines)
        if exp.kind != "mismatch":
            hit = hit or any(r.signature == exp.signature for r in parse(out.get("kmsg", "")))
            if parse(out.get("kmsg", "")):
                backend.vm.restart()
        res[name] = (hit, f"{shown}: exit {out.get('rc')}: {said}")
        if log:
            log(f"{name}: {'REPRODUCED' if hit else 'not reproduced'} ({shown})")
    shutil.rmtree(run, ignore_errors=True)
    return res


# ---------------------------------------------------------------------------
# CLI: `iommufd-fuzz minimize` and `iommufd-fuzz repro`.


def _kernel_dir(arg: str | None) -> Path:
    from fuzz.cli import _kernel_dir as resolve

    return resolve(arg)


def cmd_minimize(a: Any) -> int:
    from fuzz.backend import VMBackend
    from fuzz.vm import VMConfig

    d = Path(a.finding)
    prog, f, manifest, _ = load_finding(d)
    kdir = _kernel_dir(a.kernel)
    if not manifest:
        from fuzz import kernel

        manifest = kernel.manifest(kdir)
    be = VMBackend(kdir, VMConfig(kernel=kdir))
    try:
        res = minimize(d, be, rate_runs=a.rate_runs, max_runs=a.max_runs,
                       time_limit=a.time_limit, log=lambda s: print(s, flush=True))
        exp = res.expectation()
        slug = d.name if (d / "finding.json").exists() else Finding(
            exp.title, exp.signature, exp.kind).slug
        out = Path(a.out) / slug
        kw: dict[str, Any] = {"expected": res.outcome.model, "splat_text": res.splat_text(),
                              "stats": res.stats()}
        write_reproducer(out, res.prog, exp, manifest, **kw)
        checks = verify(out, be)
    finally:
        be.close()
    verified = [f"{'REPRODUCED' if ok else 'NOT reproduced'}  {n}: {how}"
                for n, (ok, how) in checks.items()]
    verified.append(f"kernel: {kdir}; whole check: iommufd-fuzz repro {out} --kernel {kdir}")
    write_reproducer(out, res.prog, exp, manifest, verified=verified, **kw)
    s = res.stats()
    print(f"{exp.title}\n  signature {exp.signature}\n  ops {s['original_ops']} -> "
          f"{s['minimized_ops']}, buffers {s['original_buffers']} -> {s['minimized_buffers']}, "
          f"{s['runs']} runs in {s['seconds']:.0f} s, original reproduced {s['hits']}/"
          f"{s['rate_runs']}")
    for line in verified:
        print("  " + line)
    print(f"reproducer: {out}")
    return 0 if all(ok for ok, _ in checks.values()) else 1


def cmd_repro(a: Any) -> int:
    from fuzz.backend import VMBackend
    from fuzz.vm import VMConfig

    d = Path(a.dir)
    kdir = _kernel_dir(a.kernel)
    be = VMBackend(kdir, VMConfig(kernel=kdir))
    try:
        checks = verify(d, be)
    finally:
        be.close()
    exp = expectation_of(d)
    print(f"{exp.title} ({exp.signature}) on {kdir}")
    for n, (ok, how) in checks.items():
        print(f"  {'REPRODUCED    ' if ok else 'NOT REPRODUCED'}  {n}: {how}")
    return 0 if all(ok for ok, _ in checks.values()) else 1


def add_repro_commands(sub: Any) -> None:
    """The `minimize` and `repro` subcommands (called from fuzz.cli.build_parser)."""
    mn = sub.add_parser("minimize", help="shrink a finding and write a standalone reproducer")
    mn.add_argument("finding", help="a finding directory (findings/<slug>)")
    mn.add_argument("--kernel", help="kernel dir (default: the default kernel)")
    mn.add_argument("--out", default="reproducers", help="reproducers root (default: %(default)s)")
    mn.add_argument("--rate-runs", type=int, default=RATE_RUNS,
                    help="runs of the original to measure flakiness (default: %(default)s)")
    mn.add_argument("--max-runs", type=int, default=2000)
    mn.add_argument("--time-limit", type=float, default=None, help="seconds")
    mn.set_defaults(fn=cmd_minimize)
    rp = sub.add_parser("repro", help="check that a reproducer directory still reproduces")
    rp.add_argument("dir")
    rp.add_argument("--kernel", help="kernel dir (default: the default kernel)")
    rp.set_defaults(fn=cmd_repro)
