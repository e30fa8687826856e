"""How good is the oracle? Mutation testing of the model against recorded kernel results.

    .venv/bin/python bench/bench_oracle.py [--mutants N] [--seed S] [--jobs J] [--json]
        [--corpus DIR]... [--generate N] [--record] [--kernel DIR] [--files iopt.py,...]
        [--race-runs N] [--findings DIR]... [--recorded DIR]

1. The corpus (corpus/seeds, corpus/oracle - the seed programs longer than seeds may
   be -, corpus/faults - the programs with injected faults and races that
   tests/test_differential.py checks on the kernel - and corpus/campaign if present,
   or the --corpus dirs),
   --generate programs of the generator (gen seeds 0..N-1, as check-model makes
   them) and --scheduled ones mutated until they inject a fault or race, runs once
   on the real kernel in the VM (a racing program --race-runs times, each run kept: its
   interleavings differ); every op's result is kept in a cache
   (workdir/bench_oracle/, one file per kernel, a result per program text), so later
   runs only run new or changed programs on the VM. --record runs them all again.
   Replayed as they were recorded, not run again: findings under --findings that kept
   the kernel's results, and the runs under --recorded (default bench/recorded/, made
   by bench/record_races.py): racing programs' runs on the real kernel (6.12.117, the
   default test kernel; each run's about.json names the kernel's build key and when it
   was recorded) in which the kernel's results showed a transient that one of
   fuzz/model/races.py's rules is needed to judge. Their results are the kernel's as it
   returned them in that run, never edited; a run on the VM now may interleave
   otherwise, which is why they are kept.
2. A few hundred small mutations of the model's source (fuzz/model/*.py, at the AST):
   an errno swapped for another, a comparison flipped (< and <=, == and !=, in and
   not in), an integer constant in a comparison or an arithmetic one off by one,
   `and` for `or`, a check dropped (an `if` whose body raises, removed).
3. Each mutant replaces its module (imported afresh, in a worker process) and the
   model is stepped through every recorded program with the kernel's results by
   fuzz.differential.model_alongside (imported afresh too), the oracle itself. A
   mutant is killed when some op compares differently against the kernel than with
   the unmutated model (a mismatch that was not there, or one that went away), or
   when the model raises or runs past --timeout seconds.
   A surviving mutant is a rule no program of the corpus tests against the kernel
   (or an equivalent mutant: the change cannot matter). Survivors are marked when no
   recorded program runs their line at all (the unmutated replay is traced), and when
   they only make the model unsure of more ops (the oracle stops comparing those).
   On the seeds and oracle programs an op the model is unsure of must be one the seed's
   builder declares so, or tests/test_differential.py fails on the kernel: a mutant that
   makes another op of theirs unsure is killed there ("killed_by_seed_unsure"), and so
   is one unsure of more ops in the generated programs that test runs than it allows.

4. Next to each recorded race run, and each recorded program with an injected fault,
   up to --wrong-kernels runs of a wrong kernel: one result of a racing or faulted op
   changed (another errno, an id, fd or IOVA one off) where the unmutated oracle rejects
   it. A race or fault rule's mutants mostly widen the rule, and on runs that agree a
   wider rule cannot be told from the right one; it accepts a wrong kernel the right one
   rejects. These are the only results not from the kernel, and the kill rate by the
   real runs alone is printed beside the whole.

Prints the kill rate, per model file, and the survivors (file:line, what changed);
--json prints {"kill_rate", "per_file", "survivors", ...}.
"""

from __future__ import annotations

import argparse
import ast
import errno
import hashlib
import importlib
import importlib.abc
import importlib.util
import json
import multiprocessing as mp
import pickle
import random
import resource
import signal
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fuzz.prog import Program  # noqa: E402

MODEL_DIR = REPO / "fuzz" / "model"
CACHE = REPO / "workdir" / "bench_oracle"
# errnos the model raises, and the one each is swapped for
ERRNOS = ("EINVAL", "ENOENT", "EFAULT", "EOPNOTSUPP", "EBUSY", "EOVERFLOW", "E2BIG",
          "EADDRINUSE", "ENOMEM", "EPERM", "ESPIPE", "EBADF", "ERANGE", "EMSGSIZE",
          "ENOSPC", "ENODEV", "EEXIST", "EIO", "EAGAIN", "ENXIO", "EBADFD", "EDEADLK",
          "ENOTTY")
FLIP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
        ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot,
        ast.IsNot: ast.Is}


# -- mutation sites ---------------------------------------------------------------------
@dataclass(frozen=True)
class Mutant:
    file: str  # fuzz/model/<file>
    kind: str  # errno | compare | constant | boolop | drop-check
    index: int  # the index-th site of that kind in the file (ast.walk order)
    line: int
    was: str
    now: str

    @property
    def where(self) -> str:
        return f"fuzz/model/{self.file}:{self.line}"


def _raises(body: list[ast.stmt]) -> bool:
    return any(isinstance(n, ast.Raise) for s in body for n in ast.walk(s))


def _in_compare_or_arith(tree: ast.AST) -> set[int]:
    """ids of int constants that are an operand of a comparison or arithmetic."""
    out: set[int] = set()
    for n in ast.walk(tree):
        operands: list[ast.AST] = []
        if isinstance(n, ast.Compare):
            operands = [n.left, *n.comparators]
        elif isinstance(n, ast.BinOp) and isinstance(n.op, (ast.Add, ast.Sub, ast.Mult,
                                                             ast.FloorDiv, ast.Mod,
                                                             ast.LShift, ast.RShift)):
            operands = [n.left, n.right]
        for o in operands:
            if isinstance(o, ast.Constant) and type(o.value) is int:
                out.add(id(o))
    return out


def sites(file: str, tree: ast.AST) -> list[Mutant]:
    """Every mutation of one module, in a fixed order."""
    out: list[Mutant] = []
    counts = dict.fromkeys(("errno", "compare", "constant", "boolop", "drop-check"), 0)
    consts = _in_compare_or_arith(tree)

    def add(kind: str, node: ast.AST, was: str, now: str) -> None:
        out.append(Mutant(file, kind, counts[kind], getattr(node, "lineno", 0), was, now))
        counts[kind] += 1

    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef)) and n.body
                  and isinstance(n.body[0], ast.Expr)}
    for n in ast.walk(tree):
        if isinstance(n, ast.Name) and n.id in ERRNOS and isinstance(n.ctx, ast.Load):
            add("errno", n, n.id, _swap_errno(n.id))
        elif isinstance(n, ast.Compare):
            for op in n.ops:
                if type(op) in FLIP:
                    add("compare", n, type(op).__name__, FLIP[type(op)].__name__)
        elif isinstance(n, ast.Constant) and id(n) in consts and id(n) not in docstrings:
            add("constant", n, repr(n.value), repr(n.value + 1))
        elif isinstance(n, ast.BoolOp):
            add("boolop", n, type(n.op).__name__, "Or" if isinstance(n.op, ast.And) else "And")
        elif isinstance(n, ast.If) and _raises(n.body):
            add("drop-check", n, "if ...: raise", "(dropped)")
    return out


def _swap_errno(name: str) -> str:
    return ERRNOS[(ERRNOS.index(name) + 1) % len(ERRNOS)]


def apply(m: Mutant, tree: ast.Module) -> ast.Module:
    """The module's tree with the mutant's change (sites are counted in the same
    ast.walk order as sites() counts them)."""
    consts = _in_compare_or_arith(tree)
    k = 0
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef)) and n.body
                  and isinstance(n.body[0], ast.Expr)}
    for n in list(ast.walk(tree)):
        if m.kind == "errno" and isinstance(n, ast.Name) and n.id in ERRNOS \
                and isinstance(n.ctx, ast.Load):
            if k == m.index:
                n.id = f"__errno_{m.now}"  # bound by _fix: it may not be imported there
                break
            k += 1
        elif m.kind == "compare" and isinstance(n, ast.Compare):
            for j, op in enumerate(n.ops):
                if type(op) in FLIP:
                    if k == m.index:
                        n.ops[j] = FLIP[type(op)]()
                        return _fix(tree, m)
                    k += 1
        elif m.kind == "constant" and isinstance(n, ast.Constant) and id(n) in consts \
                and id(n) not in docstrings:
            if k == m.index:
                n.value = n.value + 1
                break
            k += 1
        elif m.kind == "boolop" and isinstance(n, ast.BoolOp):
            if k == m.index:
                n.op = ast.Or() if isinstance(n.op, ast.And) else ast.And()
                break
            k += 1
        elif m.kind == "drop-check" and isinstance(n, ast.If) and _raises(n.body):
            if k == m.index:
                # the check goes: its test is never true (an else branch still runs)
                n.test = ast.copy_location(ast.Constant(False), n.test)
                break
            k += 1
    return _fix(tree, m)


def _fix(tree: ast.Module, m: Mutant) -> ast.Module:
    if m.kind == "errno":
        # bind the swapped-in name at the top of the module, after its docstring and
        # __future__ imports
        at = 0
        while at < len(tree.body) and (
                isinstance(tree.body[at], ast.Expr) and at == 0
                or isinstance(tree.body[at], ast.ImportFrom)
                and tree.body[at].module == "__future__"):
            at += 1
        tree.body.insert(at, ast.parse(f"__errno_{m.now} = {getattr(errno, m.now)}").body[0])
    return ast.fix_missing_locations(tree)


def all_sites() -> list[Mutant]:
    out: list[Mutant] = []
    for path in sorted(MODEL_DIR.glob("*.py")):
        out += sites(path.name, ast.parse(path.read_text(), str(path)))
    return out


def sample(cands: list[Mutant], n: int, seed: int) -> list[Mutant]:
    """n mutants, spread over the files in proportion to their sites (at least three
    per file that has any). Within a file they are the lowest by a hash of each one's
    identity (its line's text, not its number), so an edit of the model moves the
    sample only by the sites it adds or removes, and runs before and after compare."""
    from equivalent import identity  # bench/, beside this file

    by_file: dict[str, list[Mutant]] = {}
    for m in cands:
        by_file.setdefault(m.file, []).append(m)
    total = len(cands)
    out: list[Mutant] = []
    for _, ms in sorted(by_file.items()):
        k = min(len(ms), max(3, round(n * len(ms) / total)))
        rank = {m: hashlib.sha256(f"{seed}:{identity(m, ms)!r}".encode()).digest() for m in ms}
        out += sorted(ms, key=rank.__getitem__)[:k]
    return sorted(out, key=lambda m: (m.file, m.line, m.kind, m.index))


# -- the kernel's results, recorded once --------------------------------------------------
def scheduled(k: int, max_ops: int) -> Program:
    """gen seed k mutated (fuzz.prog.mutate, as the campaign mutates) until some op runs
    under fault injection or in a race group on several threads: the programs
    fuzz/model/faults.py and races.py judge."""
    from fuzz.prog.gen import generate
    from fuzz.prog.mutate import mutate

    rng = random.Random(k)
    p = generate(k, max_ops)
    for _ in range(64):
        p = mutate(p, rng)
        if any(op.fail_nth for op in p.ops) or len({op.thread for op in p.ops}) > 1:
            break
    return p


def corpus_programs(dirs: list[Path]) -> list[tuple[str, Program]]:
    from fuzz import corpus

    out = []
    for d in dirs:
        for path, prog in corpus.load(d, quarantine_bad=False):
            out.append((str(path.relative_to(REPO) if path.is_relative_to(REPO) else path),
                        prog))
    return out


def finding_programs(dirs: list[Path]) -> tuple[list[tuple[str, Program]], list[list[Any]]]:
    """Findings that kept the kernel's results (kernel-results.json): a racing program's
    interleaving or a fault's path as the kernel really took it, which a run on the VM
    now may not take again. Replayed as recorded."""
    from fuzz.findings import RESULTS_FILE, load_finding

    named, results = [], []
    for root in dirs:
        for d in sorted(p.parent for p in root.glob(f"*/{RESULTS_FILE}")):
            sf = load_finding(d)
            if len(sf.results) == len(sf.prog.ops):
                named.append((f"finding {d.name}", sf.prog))
                results.append(sf.results)
    return named, results


def recorded_programs(root: Path) -> tuple[list[tuple[str, Program]], list[list[Any]]]:
    """The racing runs bench/record_races.py kept under root (program.json and the
    kernel's kernel-results.json of that run), replayed as recorded."""
    from fuzz.findings import RESULTS_FILE, load_results

    named, results = [], []
    for d in sorted(p.parent for p in root.glob(f"*/{RESULTS_FILE}")):
        prog = Program.load(d / "program.json")
        named.append((f"recorded {d.name}", prog))
        results.append(load_results(d / RESULTS_FILE, len(prog.ops)))
    return named, results


def record(progs: list[tuple[str, Program]], kernel: Path, force: bool,
           race_runs: int = 1) -> tuple[list[tuple[str, Program]], list[list[Any]]]:
    """The kernel's OpResults for every program: from the cache (one file per kernel, a
    result per program text, so new seeds only run the new programs), or one VM run each.
    A program with a race group on several threads runs race_runs times, each run a
    recorded program of its own (its interleavings differ from run to run): the runs'
    names and programs, and their results."""
    kh = hashlib.sha256(str(kernel.resolve()).encode()).hexdigest()[:16]
    cache = CACHE / f"kernel-results-{kh}.pickle"
    known: dict[str, list[Any]] = {} if force or not cache.exists() else \
        pickle.loads(cache.read_bytes())
    runs = [(name if r == 0 else f"{name} (run {r + 1})", p, r) for name, p in progs
            for r in range(race_runs if len({op.thread for op in p.ops}) > 1 else 1)]
    keys = [hashlib.sha256(p.dumps().encode()).hexdigest() + (f":{r}" if r else "")
            for _, p, r in runs]
    todo = [(k, name, p) for k, (name, p, _) in zip(keys, runs) if k not in known]
    print(f"kernel results: {cache} ({len(runs) - len(todo)} cached; --record runs the VM "
          "again)", file=sys.stderr)
    if todo:
        from fuzz.backend import VMBackend
        from fuzz.prog import atomic_write

        print(f"recording {len(todo)} programs on {kernel} ...", file=sys.stderr)
        t0 = time.monotonic()
        be = VMBackend(kernel)
        try:
            for k, name, p in todo:
                ex = be.run(p, kcov=False)
                if ex.crash or ex.setup_error or len(ex.results) != len(p.ops):
                    print(f"  {name}: not usable ({ex.crash or ex.setup_error or 'short'})",
                          file=sys.stderr)
                    known[k] = []
                else:
                    known[k] = ex.results
        finally:
            be.close()
        CACHE.mkdir(parents=True, exist_ok=True)
        atomic_write(cache, pickle.dumps(known))
        print(f"recorded in {time.monotonic() - t0:.0f} s: {cache}", file=sys.stderr)
    return [(name, p) for name, p, _ in runs], [known[k] for k in keys]


# -- replay ---------------------------------------------------------------------------------
class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves one model module from a mutated code object."""

    def __init__(self, name: str, code: Any, path: str) -> None:
        self.name, self.code, self.path = name, code, path

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != self.name:
            return None
        return importlib.util.spec_from_loader(fullname, self, origin=self.path)

    def create_module(self, spec: Any) -> None:
        return None

    def exec_module(self, module: Any) -> None:
        module.__file__ = self.path
        exec(self.code, module.__dict__)


def model_modules() -> dict[str, Any]:
    """The model's modules and the oracle as sys.modules has them now."""
    return {n: m for n, m in sys.modules.items()
            if n in ("fuzz.model", "fuzz.differential") or n.startswith("fuzz.model.")}


def _fresh_model(m: Mutant | None) -> Any:
    """fuzz.model and fuzz.differential (the oracle that steps it) imported afresh, with
    the mutant's module in place of its file; returns fuzz.differential."""
    for name in model_modules():
        del sys.modules[name]
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _Finder)]
    if m is not None:
        path = MODEL_DIR / m.file
        tree = apply(m, ast.parse(path.read_text(), str(path)))
        finder = _Finder(f"fuzz.model.{m.file.removesuffix('.py')}",
                         compile(tree, str(path), "exec"), str(path))
        sys.meta_path.insert(0, finder)
    importlib.import_module("fuzz.model")
    return importlib.import_module("fuzz.differential")


def verdicts(oracle: Any, prog: Program, kernel: list[Any]) -> tuple[list[tuple], list[int]]:
    """What the oracle (fuzz.differential.model_alongside: race groups in every order,
    injected faults) says about each op: (op, field, model value) per mismatch, and the
    ops the model was unsure of (those are not compared)."""
    _, mism, unsure = oracle.model_alongside(prog, kernel)
    return [(d.op, d.field, repr(d.model)) for d in mism], [u.op for u in unsure]


def declared_unsure(named: list[tuple[str, Program]]
                    ) -> tuple[list[frozenset[int] | None], list[int], int]:
    """Where tests/test_differential.py holds the model to being sure on the kernel:
    per program, a seed's or oracle program's ops its builder declares unsure
    (tests/model_cases/dsl.py), None for the rest; and the generated programs that test
    runs, with the most ops it lets the model be unsure of in all of them. A mutant that
    makes another op of a seed unsure, or more generated ops than that, fails that test,
    so the bench counts it killed."""
    sys.path.insert(0, str(REPO / "tests"))
    from model_cases.seeds import ORACLE_PROGRAMS, SEEDS
    from test_differential import GENERATED

    declared = {}
    for build in SEEDS + ORACLE_PROGRAMS:
        p = build()
        declared[p.name] = frozenset(i for i, u in enumerate(p.unsure) if u)
    held = {f"corpus/{d}/" for d in ("seeds", "oracle")}
    per = [declared.get(Path(name).stem, frozenset())
           if any(name.startswith(h) for h in held) else None for name, _ in named]
    generated = [k for k, (name, _) in enumerate(named)
                 if name in {f"gen seed {s}" for s in range(GENERATED)}]
    return per, generated, GENERATED // 20


def _traced(fn: Any, ran: set[tuple[str, int]]) -> Any:
    """fn() with the (model file, line) pairs it ran added to `ran`: a survivor on a line
    no recorded program runs is a rule the corpus never reaches (or dead code)."""
    prefix = str(MODEL_DIR) + "/"

    def local(frame: Any, event: str, arg: Any) -> Any:
        if event == "line":
            ran.add((frame.f_code.co_filename[len(prefix):], frame.f_lineno))
        return local

    def glob(frame: Any, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename.startswith(prefix):
            ran.add((frame.f_code.co_filename[len(prefix):], frame.f_lineno))
            return local
        return None

    sys.settrace(glob)
    try:
        return fn()
    finally:
        sys.settrace(None)


class _Timeout(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _Timeout()


_STATE: dict[str, Any] = {}


def _init(progs: list[Program], kernel: list[list[Any]], base: list[tuple[list[tuple], list[int]]],
          held: tuple[list[frozenset[int] | None], list[int], int], timeout: float,
          real: int) -> None:
    _STATE.update(progs=progs, kernel=kernel, base=base, held=held, timeout=timeout, real=real)
    signal.signal(signal.SIGALRM, _alarm)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (min(4 << 30, hard) if hard > 0 else 4 << 30, hard))


# what a wrong kernel may answer in a race group or a faulted op instead of what this one did
WRONG_ERRNOS = (0, errno.EBUSY, errno.ENOENT, errno.EINVAL, errno.EEXIST, errno.ENOMEM)


def wrong_kernels(oracle: Any, named: list[tuple[str, Program]], results: list[list[Any]],
                  per_run: int, seed: int) -> list[tuple[str, Program, list[Any]]]:
    """Recorded race runs and fault programs with one result of a racing or faulted op
    changed (another errno, an id, fd or IOVA one off) where the unmutated oracle rejects
    the change: a wrong kernel next to a real run. A race or fault rule's mutant that
    widens it (the most of them) cannot be told apart on runs that agree; it is where it
    accepts one of these. At most per_run per run, chosen with `seed`."""
    rng = random.Random(seed)
    out = []
    for (name, prog), res in zip(named, results):
        if not res:
            continue
        seen = set(verdicts(oracle, prog, res)[0])
        racing = [k for g in prog.groups() if oracle.races.racing(prog, g) for k in g]
        racing += [k for k, op in enumerate(prog.ops) if op.fail_nth and k not in racing]
        cands = [(k, "errno", e) for k in racing for e in WRONG_ERRNOS if e != res[k].errno]
        cands += [(k, f, v + 1) for k in racing if not res[k].errno
                  for f, v in res[k].out.items() if type(v) is int and v > 0]
        rng.shuffle(cands)
        kept = 0
        for k, f, v in cands:
            if kept == per_run:
                break
            wrong = list(res)
            wrong[k] = replace(res[k], errno=v, ret=-1 if v else 0) if f == "errno" else \
                replace(res[k], out={**res[k].out, f: v})
            if set(verdicts(oracle, prog, wrong)[0]) - seen:
                out.append((f"{name}, wrong kernel: op {k} {f} {v}", prog, wrong))
                kept += 1
    return out


def check(m: Mutant) -> tuple[Mutant, str, str]:
    """(mutant, verdict, why): killed by the first program that tells it apart, or by
    a seed's op it makes unsure that the seed does not declare so (test_differential
    fails on that); "unsure" when it survives but makes the model unsure of more ops
    elsewhere (the oracle stops comparing them: not a kill, but not unseen either)."""
    progs, kernel, base = _STATE["progs"], _STATE["kernel"], _STATE["base"]
    held, generated, limit = _STATE["held"]
    gen_unsure = {k: len(base[k][1]) for k in generated}
    signal.setitimer(signal.ITIMER_REAL, _STATE["timeout"])
    more_unsure = 0
    try:
        oracle = _fresh_model(m)
        for k, (prog, res) in enumerate(zip(progs, kernel)):
            if not res:
                continue
            v, unsure = verdicts(oracle, prog, res)
            more_unsure += max(0, len(unsure) - len(base[k][1]))
            if k < len(held) and held[k] is not None:
                new_unsure = set(unsure) - held[k] - set(base[k][1])
                if new_unsure:
                    return m, "killed-unsure", \
                        f"program {k}: op {min(new_unsure)} unsure, its seed says sure"
            if k in gen_unsure:
                gen_unsure[k] = len(unsure)
            if v != base[k][0]:
                new = [x for x in v if x not in base[k][0]]
                gone = [x for x in base[k][0] if x not in v]
                what = f"new mismatch op {new[0][0]} {new[0][1]}" if new else \
                    f"no mismatch at op {gone[0][0]} {gone[0][1]}"
                # the wrong kernels come last: a kill there no real run made
                return m, "killed" if k < _STATE["real"] else "killed-wrong", \
                    f"program {k}: {what}"
        if sum(gen_unsure.values()) > limit >= sum(len(base[k][1]) for k in generated):
            return m, "killed-unsure", f"{sum(gen_unsure.values())} ops unsure in the " \
                f"generated programs test_differential runs, which allows {limit}"
        if more_unsure:
            return m, "unsure", f"{more_unsure} more ops unsure"
        return m, "survived", ""
    except _Timeout:
        return m, "killed", "timeout"
    except Exception as e:  # a model that raises is told apart at once
        return m, "killed", f"raises {type(e).__name__}: {str(e)[:80]}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mutants", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per mutant")
    ap.add_argument("--corpus", type=Path, action="append",
                    help="corpus dirs (default corpus/seeds, corpus/oracle, corpus/faults, "
                    "corpus/campaign)")
    ap.add_argument("--generate", type=int, default=2000,
                    help="generated programs recorded with the corpus (0: the corpus only)")
    ap.add_argument("--scheduled", type=int, default=300,
                    help="generated programs mutated until they inject a fault or race")
    ap.add_argument("--max-ops", type=int, default=24, help="ops per generated program")
    ap.add_argument("--race-runs", type=int, default=1,
                    help="VM runs of each racing program, each kept (default 1)")
    ap.add_argument("--findings", type=Path, action="append", default=[],
                    help="finding dirs whose kernel-results.json are replayed as recorded")
    ap.add_argument("--recorded", type=Path, default=REPO / "bench" / "recorded",
                    help="racing runs replayed as recorded (bench/record_races.py)")
    ap.add_argument("--kernel", type=Path)
    ap.add_argument("--record", action="store_true", help="run the corpus on the VM again")
    ap.add_argument("--wrong-kernels", type=int, default=8,
                    help="per recorded race run, runs with one racing result changed that "
                         "the oracle must reject (0: none)")
    ap.add_argument("--files", default="", help="only these model files (comma separated)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    t0 = time.monotonic()
    dirs = a.corpus or [d for d in (REPO / "corpus" / n for n in ("seeds", "oracle", "faults",
                                                                    "campaign"))
                        if d.is_dir()]
    named = corpus_programs(dirs)
    if a.generate:
        from fuzz.prog.gen import generate

        named += [(f"gen seed {k}", generate(k, a.max_ops)) for k in range(a.generate)]
    named += [(f"scheduled {k}", scheduled(k, a.max_ops)) for k in range(a.scheduled)]
    if not named:
        raise SystemExit(f"bench_oracle: no programs in {', '.join(map(str, dirs))}")
    from fuzz import kernel as K

    kdir = a.kernel or K.default_kernel()
    named, kernel = record(named, kdir, a.record, a.race_runs)
    found, found_results = finding_programs(a.findings)
    named += found
    kernel += found_results
    rec, rec_results = recorded_programs(a.recorded) if a.recorded.is_dir() else ([], [])
    named += rec
    kernel += rec_results
    progs = [p for _, p in named]
    ran: set[tuple[str, int]] = set()
    # traced from the import on: a module-level constant's line runs there
    oracle = _traced(lambda: _fresh_model(None), ran)
    base = _traced(lambda: [verdicts(oracle, p, r) if r else ([], [])
                            for p, r in zip(progs, kernel)], ran)
    held = declared_unsure(named)
    real = len(progs)
    # the recorded programs with injected faults (corpus/faults, the scheduled ones)
    faulted = [(i, n) for i, n in enumerate(named[:real - len(rec)])
               if kernel[i] and n[1].faulted]
    wrong = wrong_kernels(oracle, rec + [n for _, n in faulted],
                          rec_results + [kernel[i] for i, _ in faulted],
                          a.wrong_kernels, a.seed) if a.wrong_kernels else []
    named += [(n, p) for n, p, _ in wrong]
    progs += [p for _, p, _ in wrong]
    kernel += [r for _, _, r in wrong]
    base += [verdicts(oracle, p, r) for _, p, r in wrong]
    cands = all_sites()
    if a.files:
        keep = set(a.files.split(","))
        cands = [m for m in cands if m.file in keep]
    mutants = sample(cands, a.mutants, a.seed)
    ctx = mp.get_context("fork")
    with ctx.Pool(a.jobs, _init, (progs, kernel, base, held, a.timeout, real)) as pool:
        results = pool.map(check, mutants, chunksize=1)
    per: dict[str, dict[str, Any]] = {}
    survivors = []
    for m, verdict, why in results:
        f = per.setdefault(m.file, {"mutants": 0, "killed": 0, "killed_by_real_runs": 0})
        f["mutants"] += 1
        f["killed"] += verdict.startswith("killed")
        f["killed_by_real_runs"] += verdict in ("killed", "killed-unsure")
        if not verdict.startswith("killed"):
            survivors.append((m, why or ("" if (m.file, m.line) in ran
                                         else "line never run by the corpus")))
    for f in per.values():
        f["kill_rate"] = round(f["killed"] / f["mutants"], 3)
    from equivalent import reviewed  # bench/, beside this file

    equiv = {m: e for m, _ in survivors if (e := reviewed(m))}
    wrongly = [m.where for m, v, _ in results if v.startswith("killed") and reviewed(m)]
    not_run = sum(1 for _, why in survivors if why == "line never run by the corpus")
    killed = sum(f["killed"] for f in per.values())
    by_real = sum(f["killed_by_real_runs"] for f in per.values())
    out = {"kill_rate": round(killed / max(len(mutants), 1), 3), "mutants": len(mutants),
           "killed": killed, "kill_rate_real_runs_only": round(by_real / max(len(mutants), 1), 3),
           "wrong_kernels": len(wrong), "survived_not_run": not_run,
           "survived_only_unsure": sum(1 for _, v, _ in results if v == "unsure"),
           "sites": len(cands), "programs": len(progs),
           "programs_recorded": sum(1 for r in kernel if r),
           "baseline_mismatches": sum(len(b[0]) for b in base[:real]),
           "baseline_unsure_ops": sum(len(b[1]) for b in base[:real]),
           "killed_by_seed_unsure": sum(1 for _, v, _ in results if v == "killed-unsure"),
           # past --timeout: a mutant that loops, or one slowed by a loaded machine
           "killed_by_timeout": [m.where for m, v, w in results
                                 if v.startswith("killed") and w == "timeout"],
           "baseline_undeclared_unsure": sum(len(set(b[1]) - h) for b, h in zip(base, held[0])
                                             if h is not None),
           "baseline_generated_unsure": sum(len(base[k][1]) for k in held[1]),
           "corpus": [str(d) for d in dirs], "generated": a.generate,
           "scheduled": a.scheduled, "race_runs": a.race_runs, "findings": len(found),
           "recorded": len(rec),
           "per_file": per,
           "equivalent_reviewed": len(equiv),
           "kill_rate_without_equivalent": round(killed / max(len(mutants) - len(equiv), 1), 3),
           "listed_equivalent_but_killed": wrongly,
           "survivors": [asdict(m) | {"where": m.where, "note": why,
                                      "equivalent": equiv[m].reason if m in equiv else ""}
                         for m, why in survivors],
           "seconds": round(time.monotonic() - t0, 1)}
    if a.json:
        print(json.dumps(out, indent=1))
        return 0
    print(f"{len(mutants)} mutants of {len(cands)} sites in fuzz/model/, replayed on "
          f"{out['programs_recorded']} recorded programs ({', '.join(out['corpus'])}, "
          f"{a.generate} generated, {a.scheduled} scheduled); "
          f"{out['baseline_mismatches']} mismatches of the unmutated model (known bugs), "
          f"{out['baseline_unsure_ops']} ops it is unsure of")
    print(f"\n{'file':<16} {'mutants':>7} {'killed':>7} {'kill rate':>9}")
    for file, f in sorted(per.items()):
        print(f"{file:<16} {f['mutants']:>7} {f['killed']:>7} {f['kill_rate']:>9.2f}")
    print(f"{'(all)':<16} {len(mutants):>7} {killed:>7} {out['kill_rate']:>9.2f}")
    print(f"{out['killed_by_seed_unsure']} of them by a seed's op made unsure that its "
          f"builder does not declare so")
    if out["killed_by_timeout"]:
        print(f"{len(out['killed_by_timeout'])} of them past --timeout {a.timeout:.0f} s "
              f"(a loop, or a loaded machine): {', '.join(out['killed_by_timeout'])}")
    print(f"{by_real} killed by the real runs alone ({out['kill_rate_real_runs_only']:.2f}); "
          f"the rest by the {len(wrong)} wrong kernels next to recorded race and fault runs")
    print(f"{len(equiv)} survivors reviewed as equivalent (bench/equivalent.py): "
          f"{out['kill_rate_without_equivalent']:.2f} of the rest killed")
    for where in wrongly:
        print(f"  listed as equivalent but killed, its reason is wrong: {where}")
    print(f"\nsurvivors ({len(survivors)}: {not_run} on lines no recorded program runs, "
          f"{out['survived_only_unsure']} that only make the model unsure of more ops; "
          f"the {len(equiv)} reviewed as equivalent last):")
    for m, why in survivors:
        if m not in equiv:
            print(f"  {m.where:<30} {m.kind:<10} {m.was} -> {m.now}  {why}")
    if equiv:
        print("\nequivalent (reviewed):")
        for m, e in equiv.items():
            print(f"  {m.where:<30} {m.kind:<10} {m.was} -> {m.now}  {e.reason}")
    print(f"\n{out['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
