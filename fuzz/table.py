"""The side-by-side view of one differential run: kernel and model, op by op."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fuzz.result import OpResult

if TYPE_CHECKING:
    from fuzz.differential import Outcome
    from fuzz.prog import Program


def model_cell(r: OpResult) -> str:
    """An op the model was unsure of is not compared: it says so, not `ok`."""
    return f"unsure ({r.describe()})" if r.unsure else r.describe()


def _inside(prog: Program, order: tuple[int, ...], k: int) -> list[int]:
    """The ops an order puts between op k's thread's op before it and k: those that ran
    after k took its first id, where it took it early (races.first_id_early)."""
    before = order[:order.index(k)]
    mine = [p for p, j in enumerate(before) if prog.ops[j].thread == prog.ops[k].thread]
    return list(before[mine[-1] + 1 if mine else 0:])


def format_table(outcome: Outcome) -> str:
    """Side by side, one line per op; under each disagreeing op a mismatch line
    (marked !=), under each op the model was unsure of the reason (marked ??)."""
    prog, ex = outcome.prog, outcome.execution
    bad: dict[int, list[str]] = {}
    for m in outcome.mismatches:
        bad.setdefault(m.op, []).append(m.describe())
    unsure: dict[int, list[str]] = {}
    for m in outcome.unsure:
        unsure.setdefault(m.op, []).append(m.describe())
    kern = [r.describe() for r in ex.results]
    model = [model_cell(r) for r in outcome.model]
    w = min(60, max(map(len, kern + model + ["kernel"])))

    def cell(s: str) -> str:
        return (s if len(s) <= w else s[:w - 1] + "…").ljust(w)

    rows = [f"{'#':>3}  {'op':<26} {cell('kernel')} {cell('model')}"]
    for i, op in enumerate(prog.ops):
        k = kern[i] if i < len(kern) else "-"
        m = model[i] if i < len(model) else "-"
        mark = "!=" if i in bad else "??" if i in unsure else "  "
        # how it ran: thread, race group (barrier), fault point failed
        how = "".join(f" {c}{v}" for c, v in (("t", op.thread), ("b", op.barrier),
                                               ("n", op.fail_nth)) if v)
        rows.append(f"{i:>3}  {op.name + how:<26} {cell(k)} {cell(m)} {mark}".rstrip())
        rows += [f"       ^ {d}" for d in bad.get(i, []) + unsure.get(i, [])]
        if i in outcome.orders:
            order, n, early = outcome.orders[i]
            rows.append(f"       race group: the model's results are those of order "
                        f"{', '.join(map(str, order))} ({n} order(s) agree)"
                        + "".join(f"; op {k} took its first id before op(s) "
                                  f"{', '.join(map(str, _inside(outcome.prog, order, k)))}"
                                  " ran" for k in early))
    if ex.setup_error:
        rows.append(f"setup: {ex.setup_error}")
    if ex.crash:
        rows.append(f"guest crashed: {ex.crash}")
    for r in ex.reports:
        rows.append(f"splat: {r.title}")
    return "\n".join(rows)
