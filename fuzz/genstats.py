"""`iommufd-fuzz gen --stats`: what the generator makes from nothing, and what of
it the kernel accepts.

Programs are generated from an empty corpus (no seeds), run on a backend (the VM,
or the model alone), and tabulated: for each op, how many calls there were, what
share succeeded, and in what share of programs it succeeded at least once; for
each argument, which kinds of value the generator drew (an object of the right
kind, one made for it, a wrong kind, a made-up id, a mapping's IOVA, a boundary,
a raw address...). An op that almost never succeeds is a state the generator does
not know how to reach.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from fuzz.prog.gen import generate
from fuzz.prog.types import Counts


@dataclass
class GenStats:
    programs: int = 0
    calls: Counter = field(default_factory=Counter)
    ok: Counter = field(default_factory=Counter)
    ok_programs: Counter = field(default_factory=Counter)  # programs where the op succeeded
    unsure: Counter = field(default_factory=Counter)
    crashes: int = 0
    counts: Counts = field(default_factory=Counts)

    def add(self, prog: Any, results: list[Any]) -> None:
        self.programs += 1
        seen = set()
        for op, r in zip(prog.ops, results):
            self.calls[op.name] += 1
            if getattr(r, "unsure", None):
                self.unsure[op.name] += 1
            elif r.errno == 0:
                self.ok[op.name] += 1
                seen.add(op.name)
        self.ok_programs.update(seen)


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
