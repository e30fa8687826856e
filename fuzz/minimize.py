"""Shrink a finding's program while the same signature still shows, then hand it to
fuzz.emit for a standalone reproducer, and verify the reproducer in the VM.

    res = minimize(finding_dir, backend)          # or minimize((prog, signature), backend)
    res.prog, res.stats()                         # smaller program, runs/rate/op counts
    res.history                                   # earlier programs it needs ([] mostly)

A finding that does not reproduce from its program alone may need what the VM ran
before it in the same boot (the finding keeps those programs, fuzz.findings). Then,
as syzkaller's repro does, the minimizer tries the history: suffixes of growing
length first (the last 1, 2, 4, ... programs, then all of them), then bisection
drops the earlier programs that are not needed; every candidate is then the kept
programs replayed in order on a freshly restored kernel, then the candidate.

Every candidate runs on the real kernel through fuzz.differential.run. "Same
signature" means: the same splat title signature, the same crash, or a mismatch
with the same op name and field (and, for errno mismatches, the same kernel/model
errno pair, as fuzz.findings.from_outcome spells it) at any op: op indices shift as
ops are deleted, so they are not part of the match.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fuzz.findings import from_outcome, load_finding
from fuzz.prog import HUGE_PAGE, PAGE, BufPtr, Op, Program, Ref, Value
from fuzz.prog.edits import remove_buffers, remove_ops, used_buffers
from fuzz.report import splat_keys
from fuzz.repro.expect import Expectation
from fuzz.result import errno_name

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
    deferred: bool = False  # logged by deferred work after the program's results


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
    for r in outcome.execution.reports:  # the later splats of a run too
        out.setdefault(r.signature, ("splat", r.title))
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
    history: list[Program] = field(default_factory=list)  # replayed before prog, in order
    history_searched: int = 0  # programs of the finding's history the search started from
    extra_reports: list[Any] = field(default_factory=list)  # splats of the history, settling

    @property
    def rate(self) -> float:
        return self.hits / self.rate_runs if self.rate_runs else 0.0

    def stats(self) -> dict[str, Any]:
        return {"runs": self.runs, "hits": self.hits, "rate_runs": self.rate_runs,
                "rate": round(self.rate, 3), "tries": self.tries,
                "original_ops": len(self.original.ops), "minimized_ops": len(self.prog.ops),
                "original_buffers": len(self.original.buffers),
                "minimized_buffers": len(self.prog.buffers), "seconds": round(self.seconds, 1),
                "history_programs": len(self.history), "history_searched": self.history_searched}

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
        return Expectation(t.kind, t.signature, t.title, keys=keys, deferred=t.deferred)

    def splat_text(self) -> str:
        for r in [*self.outcome.execution.reports, *self.extra_reports]:
            if r.signature == self.target.signature:
                return r.text if isinstance(r.text, str) else "\n".join(r.text)
        return self.outcome.execution.console_tail[-4000:] if self.target.kind == "crash" \
            else ""


# ---------------------------------------------------------------------------
# Argument edits. Each returns a new program; the original is never changed.


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
                 deadline: float | None = None, log: Callable[[str], None] | None = None,
                 prefix: list[Program] | None = None) -> None:
        self.backend = backend
        self.target = target
        self.tries = tries
        self.max_runs = max_runs
        self.deadline = deadline
        self.runs = 0
        self.log_lines: list[str] = []
        self._log = log
        self.best_outcome: Outcome | None = None
        # replayed, in order, on a freshly restored kernel before every candidate
        self.prefix: list[Program] = list(prefix or [])
        # every run on a freshly restored kernel (once history matters: what one run
        # leaves in the kernel must not make the next one reproduce)
        self.fresh = bool(prefix)
        self.extra: list[Any] = []  # reports of the last run's prefix and settling
        self.best_extra: list[Any] = []

    def log(self, msg: str) -> None:
        self.log_lines.append(msg)
        if self._log:
            self._log(msg)

    def out_of_budget(self) -> bool:
        return self.runs >= self.max_runs or (self.deadline is not None
                                              and time.monotonic() > self.deadline)

    def run_once(self, prog: Program) -> Outcome | None:
        """One run (after the prefix, on a fresh kernel, when there is one); the
        outcome, or None if the model (or anything) broke on it."""
        from fuzz import differential  # the model: imported only when something runs
        from fuzz.repro.verify import settle

        self.runs += 1
        self.extra = []
        vm = getattr(self.backend, "vm", None)
        try:
            prog.validate()
            if self.fresh:
                if vm is None:
                    raise MinimizeError("replaying a finding's history needs the VM backend")
                vm.restart()
                for h in self.prefix:
                    self.extra += self.backend.run(h).reports
            out = differential.run(prog, self.backend)
            if self.target.deferred:
                self.extra += settle(self.backend)
        except MinimizeError:
            raise
        except Exception as e:  # noqa: BLE001 - a candidate the model chokes on is a miss
            self.log(f"  run {self.runs}: {type(e).__name__}: {e}")
            return None
        ex = out.execution
        if (ex.reports or self.extra) and not ex.crash and vm is not None and not self.fresh:
            # a splat may leave the kernel tainted or locked: next candidate on a fresh boot
            vm.restart()
        return out

    def shows(self, out: Outcome) -> dict[str, tuple[str, str]]:
        """signatures(out) plus the splats of its prefix and of the settling after it."""
        sigs = signatures(out)
        for r in self.extra:
            sigs.setdefault(r.signature, ("splat", r.title))
        return sigs

    def reproduces(self, prog: Program) -> Outcome | None:
        for _ in range(self.tries):
            if self.out_of_budget():
                return None
            out = self.run_once(prog)
            if out is not None and self.target.signature in self.shows(out):
                self.best_extra = self.extra
                return out
        return None

    def accept(self, prog: Program, what: str) -> bool:
        out = self.reproduces(prog)
        if out is None:
            return False
        self.best_outcome = out
        self.log(f"  {what}: {len(prog.ops)} ops, {len(prog.buffers)} buffers")
        return True

    # -- history --------------------------------------------------------------------
    def find_history(self, prog: Program, history: list[Program]) -> list[Program] | None:
        """The earlier programs prog needs: the shortest reproducing suffix of the
        last 1, 2, 4, ... programs (then all), as syzkaller tries them, then
        bisection over that suffix. None if even the whole history does not help."""
        n = len(history)
        self.fresh = True
        sizes = [1 << k for k in range(n.bit_length()) if 1 << k < n] + [n]
        suffix: list[Program] | None = None
        for k in sizes:
            self.prefix = history[-k:]
            out = self.reproduces(prog)
            self.log(f"  the last {k} earlier program(s), then the program: "
                     f"{'reproduces' if out else 'no'}")
            if out is not None:
                self.best_outcome, suffix = out, history[-k:]
                break
            if self.out_of_budget():
                break
        if suffix is None:
            self.prefix = []
            return None
        self.prefix = self.bisect_history(prog, suffix)
        return self.prefix

    def bisect_history(self, prog: Program, progs: list[Program]) -> list[Program]:
        """Delta debugging over earlier programs (their order kept): drop halves,
        then quarters, ..., then single programs, while it still reproduces."""
        keep = list(progs)
        chunk = max(1, len(keep) // 2)
        while keep and not self.out_of_budget():
            changed = False
            start = 0
            while start < len(keep) and not self.out_of_budget():
                cand = keep[:start] + keep[start + chunk:]
                self.prefix = cand
                out = self.reproduces(prog)
                if out is not None:
                    self.best_outcome = out
                    self.log(f"  dropped earlier programs {start}..{start + chunk - 1}: "
                             f"{len(cand)} left")
                    keep, changed = cand, True
                else:
                    start += chunk
            if chunk == 1 and not changed:
                break
            chunk = max(1, chunk // 2) if not changed else max(1, min(chunk, len(keep) // 2))
        self.prefix = keep
        return keep

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

    def simplify_schedule(self, prog: Program) -> Program:
        """How the ops run: all on one thread with no race group, else each group run
        one op at a time and each op moved to the main thread; then each fault
        injection dropped. What stays is what the finding needs (the log says so)."""
        def sched(p: Program, ops: range | list[int], **keys: int) -> Program:
            c = copy.deepcopy(p)
            for i in ops:
                for k, v in keys.items():
                    setattr(c.ops[i], k, v)
            return c

        def attempt(cand: Program, what: str) -> bool:
            nonlocal prog
            if self.out_of_budget() or not self.accept(cand, what):
                return False
            prog = cand
            return True

        if prog.threaded and not attempt(sched(prog, range(len(prog.ops)), thread=0, barrier=0),
                                         "no threads, no race groups"):
            self.log("  the finding needs threads")
            for g in prog.groups():
                attempt(sched(prog, g, barrier=0), f"ops {g.start}..{g.stop - 1} one at a time")
            for i in range(len(prog.ops)):
                if prog.ops[i].thread:
                    attempt(sched(prog, [i], thread=0), f"op {i} on thread 0")
        for i in range(len(prog.ops)):
            op = prog.ops[i]
            if op.fail_nth and not attempt(sched(prog, [i], fail_nth=0),
                                           f"op {i} {op.name}: no fault injected"):
                self.log(f"  op {i} {op.name} needs its fault (fail_nth {op.fail_nth})")
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


def minimize(source: Path | str | tuple[Program, str], backend: Any, *,
             rate_runs: int = RATE_RUNS, max_runs: int = 2000,
             time_limit: float | None = None, rounds: int = 3,
             log: Callable[[str], None] | None = None,
             history: list[Program] | None = None) -> MinimizeResult:
    """Shrink the program of a finding directory, or of (program, signature) with
    the programs run before it (history, oldest first) if there are any."""
    t0 = time.monotonic()
    if isinstance(source, tuple):
        prog, target = source[0], Target(source[1])
        history = list(history or [])
    else:
        st = load_finding(Path(source))
        prog, f, history = st.prog, st.finding, st.history
        target = Target(f.signature, f.kind, f.title, f.deferred)
    m = Minimizer(backend, target, max_runs=max_runs,
                  deadline=None if time_limit is None else t0 + time_limit, log=log)
    n = max(1, rate_runs)

    def rate_of() -> tuple[int, Outcome | None]:
        hits, first = 0, None
        for _ in range(n):
            out = m.run_once(prog)
            if out is not None and target.signature in (sigs := m.shows(out)):
                hits += 1
                if first is None:
                    first, m.best_extra = out, m.extra
                target.kind = target.kind or sigs[target.signature][0]
                target.title = target.title or sigs[target.signature][1]
        return hits, first

    hits, first = rate_of()
    if first is None and history:
        m.log(f"does not reproduce alone in {n} runs: trying the {len(history)} program(s) "
              "the VM ran before it")
        if m.find_history(prog, history) is not None:
            m.log(f"needs {len(m.prefix)} earlier program(s); measuring its rate with them")
            hits, first = rate_of()
    if first is None:
        why = f" (last: {m.log_lines[-1].strip()})" if m.log_lines else ""
        more = f", alone or after the {len(history)} program(s) before it" if history else ""
        raise MinimizeError(f"{target.title or target.signature!r} did not reproduce in {n} "
                            f"runs{more}{why}")
    rate = hits / n
    m.tries = 1 if hits == n else min(MAX_TRIES, math.ceil(
        math.log(MISS_PROBABILITY) / math.log(1 - rate)))
    m.best_outcome = first
    m.log(f"reproduces {hits}/{n}; {m.tries} tries per candidate")
    best = m.cut_after_mismatch(prog)
    for r in range(rounds):
        before = best.dumps()
        best = m.delete_ops(best)
        if r == 0:
            best = m.simplify_schedule(best)
        best = m.simplify_buffers(best)
        best = m.simplify_args(best)
        if best.dumps() == before or m.out_of_budget():
            break
        m.log(f"round {r + 1} done: {len(best.ops)} ops")
    assert m.best_outcome is not None
    res = MinimizeResult(best, prog, target, m.best_outcome, runs=m.runs, hits=hits,
                         rate_runs=n, tries=m.tries, seconds=time.monotonic() - t0,
                         log=m.log_lines, history=list(m.prefix),
                         history_searched=len(history))
    res.extra_reports = m.best_extra
    if best is not prog and m.best_outcome.prog is not best:
        # the kept outcome must be a run of the final program (its op numbering)
        out = m.reproduces(best)
        if out is not None:
            res.outcome = out
            res.extra_reports = m.best_extra
        res.runs = m.runs
    return res
