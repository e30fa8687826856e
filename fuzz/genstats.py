"""`iommufd-fuzz gen --stats`: what the generator makes from nothing, and what of
it the kernel accepts.

Programs are generated from an empty corpus (no seeds), run on a backend (the VM,
or the model alone), and tabulated: for each op, how many calls there were, what
share succeeded, and in what share of programs it succeeded at least once; for
each argument, which kinds of value the generator drew (an object of the right
kind, one made for it, a wrong kind, a made-up id, a mapping's IOVA, a boundary,
a raw address...). An op that almost never succeeds is a state the generator does
not know how to reach.

The boundary table counts the boundary values ("edge: ..." categories of
fuzz.prog.gen) over all ops: how many ops drew one, and what share of those ops
succeeded anyway. The value table shows, for ops with enum arguments (OPTION's
option and op, say), every combination of named values drawn with the state of the
IOAS it names (with mappings or empty), and how many of those calls succeeded.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from fuzz.prog.descriptions import OPS
from fuzz.prog.gen import generate
from fuzz.prog.types import EDGE, Counts, Entries, Enum, InSide


@dataclass
class GenStats:
    programs: int = 0
    calls: Counter = field(default_factory=Counter)
    ok: Counter = field(default_factory=Counter)
    ok_programs: Counter = field(default_factory=Counter)  # programs where the op succeeded
    unsure: Counter = field(default_factory=Counter)
    crashes: int = 0
    counts: Counts = field(default_factory=Counts)
    edge_ops: Counter = field(default_factory=Counter)  # boundary category -> ops drawing it
    edge_ok: Counter = field(default_factory=Counter)  # ... of which succeeded
    combos: Counter = field(default_factory=Counter)  # (op, values) -> calls
    combos_ok: Counter = field(default_factory=Counter)

    def add(self, prog: Any, results: list[Any]) -> None:
        self.programs += 1
        seen = set()
        drawn = self.counts.take_ops()
        for i, (op, r) in enumerate(zip(prog.ops, results)):
            self.calls[op.name] += 1
            ok = not getattr(r, "unsure", None) and r.errno == 0
            if getattr(r, "unsure", None):
                self.unsure[op.name] += 1
            elif r.errno == 0:
                self.ok[op.name] += 1
                seen.add(op.name)
            cats = drawn.get(i, [])
            for cat in {c for _, c in cats if c.startswith(EDGE)}:
                self.edge_ops[cat] += 1
                self.edge_ok[cat] += ok
            combo = _combo(op.name, cats)
            if combo:
                self.combos[(op.name, combo)] += 1
                self.combos_ok[(op.name, combo)] += ok
        self.ok_programs.update(seen)


COMBOS_SHOWN = 24


def _combo(name: str, cats: list[tuple[str, str]]) -> str:
    """The named enum values and listed integers an op drew, and the IOAS state, for
    ops with enum arguments."""
    d = OPS[name]
    enums = {a.name for a in d.args if isinstance(a.type, Enum)}
    if not enums:
        return ""
    inside = {a.name for a in d.args if isinstance(a.type, (InSide, Entries))}
    parts = []
    for arg, cat in cats:
        if not arg and cat.startswith(("form: ", EDGE)):
            parts.append(f"[{cat.removeprefix('form: ').removeprefix(EDGE)}]")
        elif arg in enums or cat.startswith("listed ") and arg not in inside or "IOAS" in cat:
            parts.append(f"{arg}={cat.removeprefix('named ').removeprefix('listed ')}")
    return " ".join(parts)


def collect(count: int, seed: int, max_ops: int, run: Any) -> GenStats:
    """`run(prog)` -> list of OpResults (empty when the run crashed)."""
    st = GenStats()
    for k in range(count):
        prog = generate(seed + k, max_ops, st.counts)
        results = run(prog)
        if not results:
            st.crashes += 1
            continue
        st.add(prog, results)
    return st


def table(st: GenStats, where: str) -> str:
    lines = [f"{st.programs} programs generated from nothing, run on {where}"
             + (f" ({st.crashes} crashed the guest)" if st.crashes else ""),
             "", f"{'op':<28} {'calls':>7} {'ok':>6} {'ok share':>8} {'programs':>8}"]
    for name in sorted(st.calls):
        n = st.calls[name]
        lines.append(f"{name:<28} {n:>7} {st.ok[name]:>6} {st.ok[name] / n:>8.2f} "
                     f"{st.ok_programs[name] / max(st.programs, 1):>8.2f}")
    total = sum(st.calls.values())
    lines.append(f"{'(all)':<28} {total:>7} {sum(st.ok.values()):>6} "
                 f"{sum(st.ok.values()) / max(total, 1):>8.2f}")
    if st.unsure:
        lines.append(f"model unsure on {sum(st.unsure.values())} calls")
    lines += ["", "Boundary values (ops that drew one, and the share of those that succeeded):",
              f"  {'value':<58} {'ops':>6} {'ok':>6} {'ok share':>8}"]
    for cat, n in sorted(st.edge_ops.items(), key=lambda t: t[0]):
        lines.append(f"  {cat.removeprefix(EDGE):<58} {n:>6} {st.edge_ok[cat]:>6} "
                     f"{st.edge_ok[cat] / n:>8.2f}")
    lines.append(f"  {'(ops with a boundary value)':<58} {sum(st.edge_ops.values()):>6}")
    lines += ["", "Named values drawn together (ops with enum arguments; the most frequent "
              f"{COMBOS_SHOWN} of each op):"]
    per_op: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for (op, combo), n in st.combos.items():
        per_op[op].append((combo, n))
    for op in sorted(per_op):
        rows = sorted(per_op[op], key=lambda t: (-t[1], t[0]))
        for combo, n in rows[:COMBOS_SHOWN]:
            lines.append(f"  {op} {combo}: {n} calls, {st.combos_ok[(op, combo)]} ok")
        if len(rows) > COMBOS_SHOWN:
            lines.append(f"  {op} ({len(rows) - COMBOS_SHOWN} more combinations)")
    lines += ["", "What the generator drew, per argument:"]
    per: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for (op, arg, cat), n in st.counts.drawn.items():
        per[(op, arg)][cat] = n
    for (op, arg), cats in sorted(per.items()):
        total_arg = sum(cats.values())
        shown = ", ".join(f"{c} {100 * n / total_arg:.0f}%"
                          for c, n in sorted(cats.items(), key=lambda t: -t[1]))
        lines.append(f"  {op}.{arg or '(needs)'}: {shown}")
    return "\n".join(lines)
