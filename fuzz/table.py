"""The side-by-side view of one differential run: kernel and model, op by op."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fuzz.differential import Outcome


def format_table(outcome: Outcome) -> str:
    """Side by side, one line per op; a mismatch line under each disagreeing op."""
    prog, ex = outcome.prog, outcome.execution
    bad: dict[int, list[str]] = {}
    for m in outcome.mismatches + outcome.unsure:
        bad.setdefault(m.op, []).append(m.describe())
    kern = [r.describe() for r in ex.results]
    model = [r.describe() for r in outcome.model]
    w = min(60, max(map(len, kern + model + ["kernel"])))

    def cell(s: str) -> str:
        return (s if len(s) <= w else s[:w - 1] + "…").ljust(w)

    rows = [f"{'#':>3}  {'op':<26} {cell('kernel')} {cell('model')}"]
    for i, op in enumerate(prog.ops):
        k = kern[i] if i < len(kern) else "-"
        m = model[i] if i < len(model) else "-"
        mark = "!=" if i in bad else "  "
        # how it ran: thread, race group (barrier), fault point failed
        how = "".join(f" {c}{v}" for c, v in (("t", op.thread), ("b", op.barrier),
                                               ("n", op.fail_nth)) if v)
        rows.append(f"{i:>3}  {op.name + how:<26} {cell(k)} {cell(m)} {mark}".rstrip())
        rows += [f"       ^ {d}" for d in bad.get(i, [])]
        if i in outcome.orders:
            order, n = outcome.orders[i]
            rows.append(f"       race group: the model's results are those of order "
                        f"{', '.join(map(str, order))} ({n} order(s) agree)")
    if ex.setup_error:
        rows.append(f"setup: {ex.setup_error}")
    if ex.crash:
        rows.append(f"guest crashed: {ex.crash}")
    for r in ex.reports:
        rows.append(f"splat: {r.title}")
    return "\n".join(rows)
