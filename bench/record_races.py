"""Record racing programs' runs on the real kernel that needed the oracle's race rules.

    .venv/bin/python bench/record_races.py --from DIR [--from DIR]... [--programs N]
        [--runs R] [--per-rule K] [--seed S] [--kernel DIR] [--out bench/recorded]

A race group's results depend on the interleaving the kernel took, and a transient
(an op failing on another thread's half-done work, ids taken one at a time, a page
walk meeting a half-done pin) shows in only a few runs of a program. The rules of
fuzz/model/races.py that accept them are tested against the kernel only where such a
run was kept: bench/bench_oracle.py replays the runs kept here (--recorded), with the
kernel's results as the kernel returned them.

Racing programs (several threads) from the --from dirs (corpus dirs, or finding dirs
holding */program.json) are sampled and each is run --runs times on the VM. A run is
kept when the oracle's verdict on it (fuzz.differential.model_alongside: mismatches
and unsure ops) changes with one of the race rules turned off: that rule was needed
to judge what the kernel did. At most --per-rule runs are kept per rule and the op
and errno it judged otherwise (rule:OP:ERRNO). Each kept run is a directory under
--out: program.json, kernel-results.json (fuzz.findings format) and about.json (the
kernel's manifest, when it was recorded, where the program came from, the rules it
needs). Nothing is ever edited by hand there.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import hashlib
import json
import random
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fuzz import differential  # noqa: E402
from fuzz.model import races  # noqa: E402
from fuzz.prog import Program, atomic_write  # noqa: E402
from fuzz.result import OpResult  # noqa: E402

OUT = REPO / "bench" / "recorded"
# each race rule, and what it returns turned off (the whole-call orders only)
RULES: dict[str, Any] = {
    "transient": lambda *a, **k: False,
    "adopt_ids": lambda *a, **k: False,
    "adopt_fds": lambda *a, **k: False,
    "taken_one_at_a_time": lambda *a, **k: None,
    "seen_mid_op": lambda *a, **k: None,
    "free_choice": lambda *a, **k: False,
    "not_whole_calls": lambda *a, **k: None,
    "forget_dirty": lambda *a, **k: None,
    "may_meet_failed_map": lambda *a, **k: False,
    "in_time": lambda perms, kernel: perms,
    "read_back_late": lambda *a, **k: None,
    "captured_late": lambda *a, **k: None,
    "first_id_early": lambda *a, **k: [],
}


# rules that explain some of the same runs: an early first id (the kernel's order of a
# mock domain's steps, computed) where adopting the kernel's ids or a transient errno
# would do too; such a run needs one of the pair, and "a+b" names the pair turned off
OVERLAPS = ("first_id_early",)


@contextlib.contextmanager
def rule_off(names: str) -> Iterator[None]:
    """The rule (or the rules "a+b") turned off."""
    was = {n: getattr(races, n) for n in names.split("+")}
    for n in was:
        setattr(races, n, RULES[n])
    try:
        yield
    finally:
        for n, f in was.items():
            setattr(races, n, f)


def verdict(prog: Program, results: list[OpResult]) -> tuple[list[tuple], list[tuple]]:
    _, mism, unsure = differential.model_alongside(prog, results)
    return ([(d.op, d.field, repr(d.model)) for d in mism],
            [(d.op, d.field) for d in unsure])


def rules_needed(prog: Program, results: list[OpResult]) -> list[str]:
    """The race rules without which the oracle would judge this run otherwise, each as
    rule:OP:ERRNO of the first op judged otherwise (what the kernel returned there); and
    the pairs "a+b" of overlapping rules (OVERLAPS) of which the run needs one, where
    neither turned off alone changes the verdict."""
    full = verdict(prog, results)
    out = []
    singles = list(RULES)
    pairs = [f"{a}+{b}" for a in OVERLAPS for b in RULES if b not in OVERLAPS]
    for name in singles + pairs:
        if "+" in name and any(x.split(":")[0] in name.split("+") for x in out):
            continue  # one of the pair is needed on its own already
        with rule_off(name):
            try:
                v = verdict(prog, results)
            except Exception:  # noqa: BLE001 - a rule the model cannot do without
                out.append(f"{name}:raises")
                continue
        if v != full:
            ops = sorted({x[0] for x in set(v[0]) ^ set(full[0])} |
                         {x[0] for x in set(v[1]) ^ set(full[1])})
            k = ops[0] if ops else 0
            e = results[k].errno
            out.append(f"{name}:{prog.ops[k].name}:{errno.errorcode.get(e, e) if e else 0}")
    return out


def racing(prog: Program) -> bool:
    return len({op.thread for op in prog.ops}) > 1


def candidates(dirs: list[Path]) -> list[tuple[str, Program]]:
    from fuzz import corpus

    out = []
    for d in dirs:
        found = sorted(d.glob("*/program.json"))
        if found:  # finding dirs
            out += [(str(p.parent), Program.load(p)) for p in found]
        else:
            out += [(str(p), prog) for p, prog in corpus.load(d, quarantine_bad=False)]
    return [(n, p) for n, p in out if racing(p)]


def keep(out: Path, prog: Program, res: bytes, need: list[str], name: str, run: int,
         recorded_at: str, manifest: dict[str, Any],
         by: str = "bench/record_races.py (a real VM run, kept as is)") -> None:
    text = prog.dumps()
    key = hashlib.sha256(text.encode() + res).hexdigest()[:12]
    d = out / f"{need[0].split(':')[0]}-{key}"
    d.mkdir(parents=True, exist_ok=True)
    atomic_write(d / "program.json", text.encode())
    atomic_write(d / "kernel-results.json", res)
    about = {"rules": need, "from": name, "run": run, "recorded_at": recorded_at,
             "kernel": {k: manifest.get(k) for k in
                        ("key", "source", "kernel_version", "config_sha256")},
             "recorded_by": by}
    atomic_write(d / "about.json", (json.dumps(about, indent=1) + "\n").encode())
    print(f"  kept {d.name}: {', '.join(need)}", file=sys.stderr)


def as_recorded(dirs: list[Path], out: Path) -> int:
    """The run a campaign's finding recorded (a real VM run: its kernel-results.json,
    the kernel named by its manifest.json) kept where it needs a race rule."""
    from fuzz.findings import load_results, results_json

    n = 0
    for d in dirs:
        for f in sorted([d] if (d / "program.json").exists() else d.glob("*/")):
            if not (f / "kernel-results.json").exists() or not (f / "manifest.json").exists():
                continue
            prog = Program.load(f / "program.json")
            res = load_results(f / "kernel-results.json", len(prog.ops))
            need = rules_needed(prog, res) if racing(prog) else []
            if not need:
                continue
            seen = json.loads((f / "finding.json").read_text()).get("last_seen", "")
            keep(out, prog, results_json(res), need, str(f), 1, seen,
                 json.loads((f / "manifest.json").read_text()),
                 "bench/record_races.py --as-recorded (a campaign finding's own VM run)")
            n += 1
    print(f"{n} finding runs kept", file=sys.stderr)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--from", dest="dirs", type=Path, action="append", required=True)
    ap.add_argument("--programs", type=int, default=500, help="racing programs sampled")
    ap.add_argument("--runs", type=int, default=3, help="VM runs of each")
    ap.add_argument("--per-rule", type=int, default=6, help="runs kept per rule")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kernel", type=Path)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--as-recorded", action="store_true",
                    help="finding dirs only: keep the run each finding recorded (its "
                         "kernel-results.json and manifest.json), no VM")
    a = ap.parse_args()
    if a.as_recorded:
        return as_recorded(a.dirs, a.out)
    from fuzz import kernel as K
    from fuzz.backend import VMBackend
    from fuzz.findings import results_json

    kdir = a.kernel or K.default_kernel()
    manifest = K.manifest_or_empty(kdir)
    cands = candidates(a.dirs)
    rng = random.Random(a.seed)
    rng.shuffle(cands)
    cands = cands[:a.programs]
    kept: dict[str, int] = {}
    for d in a.out.glob("*/about.json"):
        for r in json.loads(d.read_text())["rules"]:
            kept[r] = kept.get(r, 0) + 1
    print(f"{len(cands)} racing programs, {a.runs} runs each, on {kdir}", file=sys.stderr)
    t0 = time.monotonic()
    be = VMBackend(kdir)
    runs = 0
    try:
        for name, prog in cands:
            for r in range(a.runs):
                ex = be.run(prog, kcov=False)
                runs += 1
                if ex.crash or ex.setup_error or len(ex.results) != len(prog.ops):
                    continue
                need = rules_needed(prog, ex.results)
                if not need or all(kept.get(n, 0) >= a.per_rule for n in need):
                    continue
                keep(a.out, prog, results_json(ex.results), need, name, r + 1,
                     datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), manifest)
                for n in need:
                    kept[n] = kept.get(n, 0) + 1
    finally:
        be.close()
    print(f"{runs} runs in {time.monotonic() - t0:.0f} s; kept per rule: {kept}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
