"""Hunt bench_oracle's surviving mutants with the model itself: is there a program at all
that tells the mutant from the model?

    .venv/bin/python bench/hunt_mutants.py --survivors BENCH.json [--files a.py,...]
        [--gen-seeds N] [--max-ops 8,24,48] [--mutations N] [--budget S] [--jobs J]
        [--scheduled N] [--out DIR] [--kernel [DIR]] [--race-runs N] [--json]
    .venv/bin/python bench/hunt_mutants.py --mutants N --seed S [--files ...] ...
    .venv/bin/python bench/hunt_mutants.py --results HUNT.json --kernel   # no hunt

The mutants: the survivors of a bench_oracle --json run (their file, kind and index are
the mutant's identity in bench_oracle.sites), or the ones bench_oracle samples for
--mutants/--seed/--files. No kernel is needed to hunt: each program runs on the unmutated
model alone (its results stand in for a kernel that agrees with the model), and the
oracle (fuzz.differential.model_alongside, as bench_oracle replays it) steps the mutant
along those results. A program where the mutant's mismatches differ from the unmutated
model's distinguishes the mutant: if the real kernel agrees with the unmutated model
there, the program kills it in the bench.

The programs: the corpus (corpus/seeds, corpus/oracle, corpus/faults, corpus/campaign),
the generator's (gen seeds 0..N-1 at each --max-ops), bench_oracle's --scheduled ones
(mutated until they inject a fault or race), each also on a stand-in kernel that took
another way where it can (its race groups in another order that keeps each thread's, an
op with fail_nth failed by its fault: Base.variant); then - the search kept near the
mutated line - fuzz.prog.mutate mutations of the programs whose replay runs that line
(traced as bench_oracle traces the corpus), up to --mutations or --budget seconds per
mutant. The first distinguishing program is shrunk (cut after the op that differs, then
runs of ops and unused buffers dropped with fuzz.prog.edits) while it still distinguishes.
A program that differs only at or after an op the model alone is unsure of (its result
there is a guess), or only in how many ops are unsure (more: the bench's "unsure", not a
kill; fewer: the mutant is surer, which the kernel may show wrong), is kept as "only where
the model guesses" and the hunt goes on.

--kernel runs the distinguishing programs on the real kernel in the VM (bench_oracle's
cache of kernel results) and says, per mutant, whether the kernel agrees with the
unmutated model there (a kill), with the mutant (a model error or a kernel bug: triage
it), or with neither. --out DIR writes each distinguishing program (hunt-<file>-<line>-
<kind>-<index>.json).
"""

from __future__ import annotations

import argparse
import copy
import errno
import json
import multiprocessing as mp
import random
import signal
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO))

import bench_oracle as bo  # noqa: E402

from fuzz.prog import Program  # noqa: E402
from fuzz.result import OpResult  # noqa: E402

# per race group (its first op) the order its ops ran in; per op the errno an injected
# fault failed it with
Variant = tuple[dict[int, tuple[int, ...]], dict[int, int]]
# a program found: its name, itself, the variant it was judged in, how it differs
Cand = tuple[str, Program, "Variant | None", dict[str, Any]]

PROGRAM_TIMEOUT = 10.0  # seconds one program may take on a mutant (a mutant may loop)


def _use(mods: dict[str, Any]) -> None:
    # a model function's import at call time (iopt.py imports mock there) finds its own
    sys.modules.update(mods)


# -- the unmutated model's side ------------------------------------------------------------
class Base:
    """The unmutated model: a program's results on it alone, the oracle's verdicts on those
    results, and the model lines that replay runs."""

    def __init__(self) -> None:
        self.import_lines: set[tuple[str, int]] = set()
        self.oracle = bo._traced(lambda: bo._fresh_model(None), self.import_lines)
        self.mods = bo.model_modules()

    def results(self, prog: Program, variant: Variant | None = None) -> list[Any]:
        """The model's results alone: in program order, or as `variant` says (race
        groups in another order, injected faults that failed their ops)."""
        _use(self.mods)
        orders, inject = variant or ({}, {})
        m = self.oracle.Model(prog)
        faults = self.oracle.faults
        res: list[Any] = [None] * len(prog.ops)
        i = 0
        while i < len(prog.ops):
            order = orders.get(i)
            if order is not None:
                m.begin_group(range(i, i + len(order)))
            for k in order or (i,):
                if k in inject:  # what faults.step leaves for a kernel's injected failure
                    r = faults.step(m, k, OpResult(inject[k], -1, injected=True))
                    res[k] = replace(r, injected=True, fault_errnos=())
                else:
                    res[k] = m.step(k, None)
            i += len(order or (i,))
        return res

    def variant(self, prog: Program, rng: random.Random) -> Variant | None:
        """A kernel that took another way than program order: each racing group in an
        order of its own (one that keeps each thread's order, not program order where
        there is another), and one op with fail_nth failed by its fault with an errno
        an injected failure may give it; None for a program with neither."""
        races, faults = self.oracle.races, self.oracle.faults
        orders = {}
        for g in prog.groups():
            if races.racing(prog, g):
                perms = races.orders(prog, g)
                orders[g.start] = rng.choice(perms[1:] or perms)
        inject = {}
        faulted = [k for k, op in enumerate(prog.ops) if op.fail_nth
                   and faults.allowed(op.name)]
        if faulted:
            k = rng.choice(faulted)
            inject[k] = rng.choice(faults.allowed(prog.ops[k].name))
        return (orders, inject) if orders or inject else None

    def judge(self, prog: Program, variant: Variant | None = None
              ) -> tuple[list[Any], tuple[list[tuple], int], set[tuple[str, int]]]:
        """(results alone, the oracle's verdicts on them, the lines that replay ran)."""
        res = self.results(prog, variant)
        ran: set[tuple[str, int]] = set()
        v = bo._traced(lambda: bo.verdicts(self.oracle, prog, res), ran)
        return res, v, ran


# -- one mutant ------------------------------------------------------------------------------
_STATE: dict[str, Any] = {}


def _init(base: Base, programs: list[tuple[str, Program]], judged: list[tuple],
          variants: list[Variant | None], opts: dict[str, Any]) -> None:
    _STATE.update(base=base, programs=programs, judged=judged, variants=variants, opts=opts)
    signal.signal(signal.SIGALRM, bo._alarm)


def _differs(oracle: Any, mods: dict[str, Any], prog: Program, res: list[Any],
             base_v: tuple[list[tuple], list[int]]) -> dict[str, Any] | None:
    """How the mutant's verdicts on `res` differ from the unmutated model's, or None.
    "sure" is False where every difference is at or after an op the unmutated model
    alone was unsure of (its result there is a guess that a kernel's replaces), and
    for a mutant that only makes the model unsure of more ops (the bench's "unsure":
    not a kill)."""
    _use(mods)
    signal.setitimer(signal.ITIMER_REAL, PROGRAM_TIMEOUT)
    try:
        v, unsure = bo.verdicts(oracle, prog, res)
    except bo._Timeout:
        return {"what": "timeout", "sure": True}
    except Exception as e:  # the mutant raises: bench_oracle counts that a kill
        return {"what": f"raises {type(e).__name__}: {str(e)[:80]}", "sure": True}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    if v == base_v[0]:
        # surer than the model where it guesses: the kernel's result there may show the
        # mutant wrong (a kill) or right (the model could be surer)
        if unsure == base_v[1]:
            return None
        more, fewer = set(unsure) - set(base_v[1]), set(base_v[1]) - set(unsure)
        what = " and ".join(f"{len(x)} {w} ops unsure" for x, w in ((more, "more"),
                                                                    (fewer, "fewer")) if x)
        return {"what": what, "sure": False}
    guessed = next((k for k, r in enumerate(res) if r.unsure), len(res))
    new = [x for x in v if x not in base_v[0]]
    gone = [x for x in base_v[0] if x not in v]
    sure = [x for x in new + gone if x[0] < guessed]
    first = min(sure or new + gone)
    op, field, mval = first
    r = res[op]
    if first in new:
        kval = r.errno if field == "errno" else r.out.get(field)
        return {"what": "new mismatch", "op": op, "name": prog.ops[op].name, "field": field,
                "model": kval if field != "unsure" else None, "mutant": mval,
                "sure": bool(sure)}
    return {"what": "mismatch gone", "op": op, "name": prog.ops[op].name, "field": field,
            "model": mval, "mutant": None, "sure": bool(sure)}


def _shrink(base: Base, oracle: Any, mods: dict[str, Any], prog: Program,
            deadline: float, var: Variant | None = None) -> tuple[Program, dict[str, Any]]:
    """prog cut after the first op that differs, then with runs of ops (halves, quarters,
    ..., single ops, last first) and unused buffers dropped while it still
    distinguishes. With a variant (it names ops by index) only the cut."""
    from fuzz.prog import edits

    def still(p: Program) -> dict[str, Any] | None:
        try:
            p.validate()
            res, v, _ = base.judge(p, var)
        except Exception:
            return None
        d = _differs(oracle, mods, p, res, v)
        return d if d is not None and d["sure"] >= want else None

    best = prog
    why = _differs(oracle, mods, prog, *base.judge(prog, var)[:2])
    assert why is not None
    want = why["sure"]
    named = [k + len(o) - 1 for k, o in var[0].items()] + list(var[1]) if var else []
    if "op" in why and max([why["op"], *named]) + 1 < len(best.ops):
        cand = edits.remove_ops(best, set(range(max([why["op"], *named]) + 1, len(best.ops))))
        d = still(cand)
        if d is not None:
            best, why = cand, d
    if var is not None:
        return best, why
    size = max(1, len(best.ops) // 2)
    while time.monotonic() < deadline:
        i = len(best.ops) - size
        while i >= 0 and time.monotonic() < deadline:
            cand = edits.remove_ops(best, set(range(i, i + size)))
            d = still(cand)
            if d is not None:
                best, why = cand, d
            i -= size
        if size == 1:
            break
        size = max(1, size // 2)
    unused = set(range(len(best.buffers))) - edits.used_buffers(best)
    if unused:
        cand = edits.remove_buffers(best, unused)
        d = still(cand)
        if d is not None:
            best, why = cand, d
    return best, why


def _reshrink(args: tuple[bo.Mutant, str, Variant | None, float]
              ) -> tuple[str, dict[str, Any]]:
    """An earlier hunt's program shrunk again (in a child: the mutant's modules)."""
    m, text, var, seconds = args
    base = _STATE["base"]
    oracle = bo._fresh_model(m)
    small, why = _shrink(base, oracle, bo.model_modules(), Program.loads(text),
                         time.monotonic() + seconds, var)
    return small.dumps(), why


def variant_of(r: dict[str, Any]) -> Variant | None:
    """The variant a hunt's --json result names (its keys are strings there)."""
    v = r.get("variant")
    if not v:
        return None
    return ({int(g): tuple(o) for g, o in v["orders"].items()},
            {int(k): e for k, e in v["inject"].items()})


def hunt(m: bo.Mutant) -> dict[str, Any]:
    base: Base = _STATE["base"]
    programs, judged, opts = _STATE["programs"], _STATE["judged"], _STATE["opts"]
    variants = _STATE["variants"]
    t0 = time.monotonic()
    out: dict[str, Any] = asdict(m) | {"where": m.where}
    try:
        oracle = bo._fresh_model(m)
    except Exception as e:
        return out | {"verdict": "distinguished", "by": "import",
                      "diff": {"what": f"raises {type(e).__name__}: {e}"}, "tried": 0,
                      "ran_line": 0}
    mods = bo.model_modules()
    site = (m.file, m.line)
    at_import = site in base.import_lines
    runs = [k for k, (_, _, ran) in enumerate(judged) if at_import or site in ran]
    # a program whose replay does not run the line cannot tell the mutant apart
    tried, ran_line = len(programs), len(runs)
    found: Cand | None = None
    # the first program that differs only where the model alone guesses, or only in
    # what the model is unsure of: kept, and the hunt goes on
    weak: Cand | None = None
    for k in sorted(runs, key=lambda k: len(programs[k][1].ops)):
        name, prog = programs[k]
        res, v, _ = judged[k]
        d = _differs(oracle, mods, prog, res, v)
        if d is not None and d["sure"]:
            found = (name, prog, variants[k], d)
            break
        weak = weak or (d and (name, prog, variants[k], d))
    # near the line: mutations of the programs that run it (of any, where none does), in
    # program order and on a kernel that took another way
    rng = random.Random(f"{m.file}:{m.kind}:{m.index}")
    pool = [programs[k] for k in (runs or range(len(programs)))]
    budget_end = t0 + opts["budget"]
    n = 0
    while found is None and pool and n < opts["mutations"] and time.monotonic() < budget_end:
        name, prog = rng.choice(pool)
        p = prog
        for _ in range(rng.randint(1, 3)):
            p = _mutate(p, rng)
        n += 1
        try:
            p.validate()
            var = base.variant(p, rng)
        except Exception:
            continue
        for vr in (None, var) if var is not None else (None,):
            try:
                res, v, ran = base.judge(p, vr)
            except Exception:
                continue
            tried += 1
            hits = at_import or site in ran
            ran_line += hits
            if hits and vr is None and len(pool) < 4 * len(runs or programs) \
                    and len(p.ops) <= 64:
                pool.append((f"{name} mutated", p))  # keep the search near the line
            label = f"{name} mutated" + (f" {_variant_name(vr)}" if vr else "")
            d = _differs(oracle, mods, p, res, v)
            if d is not None and d["sure"]:
                found = (label, p, vr, d)
                break
            weak = weak or (d and (label, p, vr, d))
    out |= {"tried": tried, "ran_line": ran_line, "mutated": n,
            "seconds": round(time.monotonic() - t0, 1)}
    if found is None and weak is None:
        return out | {"verdict": "not distinguished"}
    name, prog, var, d = found or weak  # type: ignore[misc]
    small, d = _shrink(base, oracle, mods, prog, time.monotonic() + opts["shrink"], var)
    return out | {"verdict": "distinguished" if found else "only where the model guesses",
                  "by": name, "ops": len(small.ops), "ops_before_shrink": len(prog.ops),
                  "diff": d, "program": small.dumps(),
                  "variant": None if var is None else
                  {"orders": {str(g): list(o) for g, o in var[0].items()},
                   "inject": {str(k): e for k, e in var[1].items()}}}


def hunt_all(ms: list[bo.Mutant], progs: list[tuple[str, Program]], opts: dict[str, Any],
             jobs: int = 1, log: bool = False) -> tuple[Base, list[dict[str, Any]]]:
    """Each mutant hunted in a worker process of its own (its modules stay there); opts:
    mutations, budget and shrink (see --help)."""
    t0 = time.monotonic()
    base = Base()
    judged = [base.judge(p) for _, p in progs]
    variants: list[Variant | None] = [None] * len(progs)
    progs = list(progs)
    for name, p in list(progs):  # the same programs on a kernel that took another way
        v = base.variant(p, random.Random(name))
        if v is not None:
            progs.append((f"{name} {_variant_name(v)}", p))
            judged.append(base.judge(p, v))
            variants.append(v)
    if log:
        print(f"hunt: {len(ms)} mutants, {len(progs)} programs judged on the model in "
              f"{time.monotonic() - t0:.0f} s", file=sys.stderr)
    found = []
    ctx = mp.get_context("fork")
    with ctx.Pool(jobs, _init, (base, progs, judged, variants, opts),
                  maxtasksperchild=1) as pool:
        for r in pool.imap(hunt, ms, chunksize=1):
            found.append(r)
            if log:
                print(_line(r), file=sys.stderr, flush=True)
    return base, found


def _variant_name(v: Variant) -> str:
    orders, inject = v
    parts = [f"group at op {g} in order {list(o)}" for g, o in orders.items()]
    parts += [f"op {k} failed by its fault ({errno.errorcode.get(e, e)})"
              for k, e in inject.items()]
    return "(" + ", ".join(parts) + ")"


def _mutate(p: Program, rng: random.Random) -> Program:
    from fuzz.prog.mutate import mutate

    try:
        return mutate(p, rng)
    except Exception:
        return copy.deepcopy(p)


# -- on the real kernel ----------------------------------------------------------------------
def kernel_verdict(m: bo.Mutant, prog: Program, kernel: list[Any]) -> dict[str, Any]:
    """The unmutated model's and the mutant's verdicts on the kernel's results."""
    base = _STATE["base"]
    _use(base.mods)
    bv = bo.verdicts(base.oracle, prog, kernel)
    oracle = bo._fresh_model(m)
    try:
        mv = bo.verdicts(oracle, prog, kernel)
    except Exception as e:
        return {"kernel": "kills (the mutant raises)", "base_mismatches": bv[0],
                "error": f"{type(e).__name__}: {e}"}
    finally:
        _use(base.mods)
    if mv[0] == bv[0]:
        what = "the kernel cannot tell them apart" + (
            f" (the mutant is unsure of {len(set(mv[1]) - set(bv[1]))} more ops)"
            if set(mv[1]) - set(bv[1]) else "")
    elif not bv[0]:
        what = "kills: the kernel agrees with the unmutated model"
    elif not mv[0]:
        what = "MODEL ERROR? the kernel agrees with the mutant"
    else:
        what = "kills, but the kernel agrees with neither"
    return {"kernel": what, "base_mismatches": [list(x) for x in bv[0]],
            "mutant_mismatches": [list(x) for x in mv[0]]}


def _kernel_one(args: tuple[bo.Mutant, str, list[Any]]) -> dict[str, Any]:
    m, text, kernel = args
    return kernel_verdict(m, Program.loads(text), kernel)


# -- programs --------------------------------------------------------------------------------
def programs(dirs: list[Path], gen_seeds: int, max_ops: list[int],
             scheduled: int = 0) -> list[tuple[str, Program]]:
    """The corpus, generated programs, and bench_oracle's scheduled ones (mutated until
    they inject a fault or race)."""
    from fuzz.prog.gen import generate

    out = bo.corpus_programs(dirs)
    for n in max_ops:
        out += [(f"gen seed {k} max-ops {n}", generate(k, n)) for k in range(gen_seeds)]
    return out + [(f"scheduled {k}", bo.scheduled(k, max(max_ops or [24])))
                  for k in range(scheduled)]


def mutants(a: argparse.Namespace) -> list[bo.Mutant]:
    cands = bo.all_sites()
    keep = set(a.files.split(",")) if a.files else None
    if a.survivors:
        by_id = {(m.file, m.kind, m.index): m for m in cands}
        out = []
        for s in json.loads(a.survivors.read_text())["survivors"]:
            m = by_id.get((s["file"], s["kind"], s["index"]))
            if m is None or (m.line, m.was, m.now) != (s["line"], s["was"], s["now"]):
                raise SystemExit(f"hunt_mutants: {a.survivors}: survivor {s['where']} "
                                 f"{s['kind']} {s['index']} is not a site of the model now "
                                 "(the model changed since that run)")
            out.append(m)
    else:
        out = bo.sample(cands, a.mutants, a.seed)
    return [m for m in out if keep is None or m.file in keep]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--survivors", type=Path, help="a bench_oracle --json output")
    ap.add_argument("--mutants", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--files", default="", help="only these model files (comma separated)")
    ap.add_argument("--corpus", type=Path, action="append")
    ap.add_argument("--gen-seeds", type=int, default=300)
    ap.add_argument("--max-ops", default="8,24,48")
    ap.add_argument("--scheduled", type=int, default=300,
                    help="bench_oracle's scheduled programs (they inject faults or race)")
    ap.add_argument("--mutations", type=int, default=400,
                    help="mutated programs tried per mutant after the corpus")
    ap.add_argument("--budget", type=float, default=90.0, help="seconds per mutant")
    ap.add_argument("--shrink", type=float, default=30.0, help="seconds to shrink a program")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--out", type=Path, help="write the distinguishing programs here")
    ap.add_argument("--kernel", nargs="?", const="", type=str,
                    help="run the distinguishing programs on the kernel in the VM")
    ap.add_argument("--race-runs", type=int, default=4,
                    help="--kernel: VM runs of a racing program (each kept, as the bench)")
    ap.add_argument("--results", type=Path,
                    help="no hunt: a hunt_mutants --json output's programs, for --kernel")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    t0 = time.monotonic()
    if a.results:
        return _kernel_only(a, t0)
    ms = mutants(a)
    dirs = a.corpus or [d for d in (REPO / "corpus" / n for n in ("seeds", "oracle", "faults",
                                                                    "campaign")) if d.is_dir()]
    progs = programs(dirs, a.gen_seeds, [int(x) for x in a.max_ops.split(",") if x],
                     a.scheduled)
    opts = {"mutations": a.mutations, "budget": a.budget, "shrink": a.shrink}
    base, found = hunt_all(ms, progs, opts, a.jobs, log=True)
    _write(a, found)
    if a.kernel is not None:
        _on_kernel(a, base, ms, found)
    out = {"mutants": len(found),
           "distinguished": sum(r["verdict"] == "distinguished" for r in found),
           "programs": len(progs), "seconds": round(time.monotonic() - t0, 1),
           "results": found}
    if a.json:
        print(json.dumps(out, indent=1, default=str))
    else:
        print(f"{out['distinguished']} of {out['mutants']} mutants distinguished "
              f"({len(progs)} programs and their mutations; {out['seconds']:.0f} s)")
        for r in found:
            print(_line(r))
    return 0


def _write(a: argparse.Namespace, found: list[dict[str, Any]]) -> None:
    if not a.out:
        return
    from fuzz.prog import atomic_write

    a.out.mkdir(parents=True, exist_ok=True)
    for r in found:
        if "program" in r:
            path = a.out / f"hunt-{r['file'].removesuffix('.py')}-{r['line']}-{r['kind']}-" \
                f"{r['index']}.json"
            atomic_write(path, r["program"].encode())
            r["path"] = str(path)


def _kernel_only(a: argparse.Namespace, t0: float) -> int:
    """--results: the distinguishing programs of an earlier hunt, on the kernel."""
    prev = json.loads(a.results.read_text())
    by_id = {(m.file, m.kind, m.index): m for m in bo.all_sites()}
    found = [r for r in prev["results"] if not a.files or r["file"] in a.files.split(",")]
    ms = [by_id[(r["file"], r["kind"], r["index"])] for r in found]
    base = Base()
    _STATE["base"] = base
    signal.signal(signal.SIGALRM, bo._alarm)
    for m, r in zip(ms, found):
        if "program" in r:
            with mp.get_context("fork").Pool(1) as pool:
                text, r["diff"] = pool.apply(_reshrink, ((m, r["program"], variant_of(r),
                                                          a.shrink),))
            if text != r["program"]:
                r["program"], r["ops"] = text, len(Program.loads(text).ops)
                print(_line(r), file=sys.stderr, flush=True)
    _write(a, found)
    if a.kernel is not None:
        _on_kernel(a, base, ms, found)
    out = prev | {"results": found, "seconds": round(time.monotonic() - t0, 1)}
    if a.json:
        print(json.dumps(out, indent=1, default=str))
    else:
        for r in found:
            print(_line(r))
    return 0


def _on_kernel(a: argparse.Namespace, base: Base, ms: list[bo.Mutant],
               found: list[dict[str, Any]]) -> None:
    """Each distinguishing program on the kernel (a racing one --race-runs times: the
    interleaving the hunt found is the kernel's to take), judged by both models."""
    from fuzz import kernel as K

    kdir = Path(a.kernel) if a.kernel else K.default_kernel()
    todo = [r for r in found if "program" in r]
    named = [(r["where"], Program.loads(r["program"])) for r in todo]
    runs, kernel = bo.record(named, kdir, False, a.race_runs)
    by_where = {(m.file, m.kind, m.index): m for m in ms}
    _STATE["base"] = base
    at = 0
    for r in todo:
        m = by_where[(r["file"], r["kind"], r["index"])]
        verdicts = []
        while at < len(runs) and (runs[at][0] == r["where"]
                                  or runs[at][0].startswith(f"{r['where']} (run ")):
            res = kernel[at]
            at += 1
            if not res:
                verdicts.append({"kernel": "not usable on the VM (crash or setup error)"})
                continue
            with mp.get_context("fork").Pool(1) as pool:  # the mutant's modules stay there
                verdicts.append(pool.apply(_kernel_one, ((m, r["program"], res),)))
        # the run that kills it, if one does
        r["on_kernel"] = next((v for v in verdicts if v["kernel"].startswith("kills")),
                              verdicts[0] if verdicts else {"kernel": "not run"})
        r["kernel_runs"] = len(verdicts)
        print(f"  {m.where} {m.kind} {m.index}: {r['on_kernel']['kernel']} "
              f"({len(verdicts)} runs)", file=sys.stderr)


def _line(r: dict[str, Any]) -> str:
    head = f"{r['where']:<30} {r['kind']:<10} {r['index']:>3} {r['was']} -> {r['now']}:"
    if "diff" in r:
        d = r["diff"]
        what = d["what"] if "op" not in d else \
            f"{d['what']} at op {d['op']} {d['name']}.{d['field']} model {d['model']!r} " \
            f"mutant {d['mutant']!r}"
        k = f" [kernel: {r['on_kernel']['kernel']}]" if "on_kernel" in r else ""
        return f"{head} {r['verdict']}: by {r['by']} ({r.get('ops', '?')} ops): {what}{k}"
    return f"{head} not distinguished by {r['tried']} programs ({r['ran_line']} of them " \
        "ran the line)"


if __name__ == "__main__":
    sys.exit(main())
