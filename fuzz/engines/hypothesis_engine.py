"""The hypothesis engine: a RuleBasedStateMachine whose rules are the ops.

The machine is derived from the op descriptions: one bundle per object kind the
uAPI hands out (IOAS ids, HWPT ids, device ids, access fds, access pages...), one
rule per op, whose object arguments are drawn from the bundles of the kinds the
description accepts and whose other arguments are drawn by the generator
(fuzz.prog.gen) from a list of choices hypothesis draws, and whose outputs go into the bundles of
the kinds they create (an op whose output kind depends on a flag gets one rule per
kind, with the flag set). `any_call` adds any op with anything as its objects,
malformed calls included. `fault_last` has the last op fail one of its fault
points (fail_nth), `race_last` makes the last few ops a race group on several
threads, released together. Each rule appends one op to the program being built; on
teardown the whole program runs once on the kernel with the model stepped
alongside, and every op's result is compared (one kernel run per example: the
executor gives each program a fresh /dev/iommu, so a per-step run would replay the
prefix). A disagreement or splat fails the example; hypothesis then shrinks it to a
minimal op sequence, which is printed and saved as a program JSON.

It runs as a pytest test (tests/test_engines.py) and as a campaign worker
(`iommufd-fuzz fuzz --engine hypothesis`).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule

from fuzz import differential
from fuzz.backend import Backend
from fuzz.prog import HUGE_PAGE, Buffer, Op, Program, Ref
from fuzz.prog import gen as G
from fuzz.prog.descriptions import OPS
from fuzz.prog.edits import repair_groups
from fuzz.prog.limits import MAX_BARRIER, MAX_THREADS
from fuzz.prog.types import KIND_PARENT, Const, Counts, Res, is_kind


@dataclass(frozen=True)
class Made:
    """What an op left in the bundles: the objects it created, by kind."""

    op: int
    outs: tuple[tuple[str, str], ...]  # (kind, output field)

    def ref(self, kinds: tuple[str, ...]) -> Ref:
        for kind, name in self.outs:
            if any(is_kind(kind, k) for k in kinds):
                return Ref(self.op, name)
        return Ref(self.op, self.outs[0][1])


# One step's decisions: a short list of 32-bit words, four 8-bit decisions each,
# that the generator consumes in order, then zeros (the ordinary choice). One list
# per step keeps a step a single span of the choice sequence, so the shrinker can
# delete whole steps and zero a step's decisions without the rest of the sequence
# shifting under it; packing four to a word lets an average list of a few words
# reach the decisions an op makes late (its lengths, its flags).
CHOICES = st.lists(st.integers(0, (1 << 32) - 1), max_size=16)


class ListChooser:
    """Lets the generator draw from hypothesis (which then shrinks every choice)."""

    def __init__(self, words: list[int]) -> None:
        self.words = words
        self.k = 0

    def below(self, n: int) -> int:
        word, digit = divmod(self.k, 4)
        if word >= len(self.words):
            return 0
        self.k += 1
        v = self.words[word] >> (24 - 8 * digit) & 0xFF
        return v % n if n > 1 else 0

    def bits(self, k: int) -> int:
        v = 0
        for _ in range((k + 7) // 8):
            v = v << 8 | self.below(1 << 8)
        return v & ((1 << k) - 1)


class Context:
    """Where the machine sends its programs; set before running it."""

    backend: Backend | None = None
    # How a program is run differentially: differential.run on `backend` unless set
    # (the campaign worker runs through its WorkerState, which also keeps stats,
    # corpus and findings: one kernel run and one model pass per example).
    run: Callable[[Program], differential.Outcome] | None = None
    on_failure: list = []  # callbacks(outcome) for the campaign's finding store
    counts: Counts | None = None  # what the generator drew (the campaign's stats lines)
    last_failure: differential.Outcome | None = None
    schedule = True  # fault_last and race_last change how ops run (False: for comparison)


BUFFERS = [Buffer(1 << 18, "anon", 11), Buffer(1 << 16, "readonly", 12),
           Buffer(1 << 16, "hole"), Buffer(1 << 16, "memfd", 13), Buffer(HUGE_PAGE, "hugetlb", 14)]
BUNDLES = {kind: Bundle(kind) for kind in KIND_PARENT}


def _ancestors(kind: str) -> list[str]:
    out = []
    while kind:
        out.append(kind)
        kind = KIND_PARENT[kind]
    return out


class _Machine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.prog = Program([], list(BUFFERS))

    def add(self, choices: list[int], name: str, force: G.Force | None = None,
            preset: dict[str, Any] | None = None,
            types: dict[str, Any] | None = None) -> Made | None:
        gen = G.Generator(ListChooser(choices), build=False, counts=Context.counts)
        ctx = G.Context.of(self.prog)
        before = len(ctx.objs)
        i = gen.append(self.prog, ctx, name, force, preset=preset, types=types)
        made = tuple((o.kind, o.ref.field) for o in ctx.objs[before:] if o.ref.op == i)
        return Made(i, made) if made else None

    # Nearly every path needs an IOAS (the generator starts most programs with one too).
    @initialize(target=BUNDLES["ioas"])
    def first_ioas(self) -> Made | None:
        return self.add([], "IOAS_ALLOC")

    # -- anything, malformed included ----------------------------------------------------
    @rule(name=st.sampled_from(sorted(OPS)), choices=CHOICES)
    def any_call(self, name: str, choices: list[int]) -> None:
        self.add(choices, name)

    # -- how the ops run: faults and races --------------------------------------------------
    @rule(nth=st.integers(1, 48))
    def fault_last(self, nth: int) -> None:
        if self.prog.ops and Context.schedule:
            self.prog.ops[-1].fail_nth = nth

    @rule(n=st.integers(2, 4), threads=st.lists(st.integers(0, MAX_THREADS - 1), min_size=4,
                                                 max_size=4))
    def race_last(self, n: int, threads: list[int]) -> None:
        ops = self.prog.ops[-n:]
        if not Context.schedule or len(ops) < 2 or len(set(threads[:len(ops)])) < 2:
            return
        used = {op.barrier for op in self.prog.ops}
        label = next((b for b in range(1, MAX_BARRIER + 1) if b not in used), 1)
        for op, t in zip(ops, threads):
            op.barrier, op.thread = label, t
        repair_groups(self.prog)  # an op that refers into the group starts a new one

    # -- probes -------------------------------------------------------------------------------
    @invariant()
    def probe_iova_ranges_now_and_then(self) -> None:
        # Every 8th op, read back the first IOAS's allowed ranges: cheap state checks that
        # the comparison then holds against the model.
        n = len(self.prog.ops)
        if n and n % 8 == 0 and self.prog.ops[0].name == "IOAS_ALLOC":
            self.prog.ops.append(Op("IOAS_IOVA_RANGES", {"ioas_id": Ref(0, "out_ioas_id")}))

    def teardown(self) -> None:
        if not self.prog.ops or (Context.run is None and Context.backend is None):
            return
        out = (Context.run(self.prog) if Context.run
               else differential.run(self.prog, Context.backend))  # type: ignore[arg-type]
        if out.failed_new:  # a known kernel bug (fuzz.known) is counted, not shrunk again
            Context.last_failure = out
            for cb in Context.on_failure:
                cb(out)
            from fuzz.table import format_table

            raise AssertionError("kernel and model disagree (or the kernel splatted):\n"
                                 + format_table(out) + "\n\nprogram:\n" + self.prog.dumps())


def _op_rule(name: str, suffix: str, force: G.Force, types: dict[str, Any],
             kinds: list[str]) -> Callable[..., Any]:
    """The rule for op `name` (in a form, with arguments forced): its object
    arguments from the bundles, the rest drawn."""
    d = OPS[name]
    objs = {}
    for a in d.args:
        t = types.get(a.name, a.type)
        if isinstance(t, Res):
            objs[a.name] = st.one_of(*(BUNDLES[k] for k in t.kinds))
    targets = tuple(BUNDLES[k] for k in dict.fromkeys(x for k in kinds for x in _ancestors(k)))

    def op(self: _Machine, choices: list[int], **picked: Made) -> Made | None:
        preset = {k: v.ref(types[k].kinds if k in types else d.arg(k).type.kinds)  # type: ignore
                  for k, v in picked.items()}
        made = self.add(choices, name, force, preset, types or None)
        return made if targets else None

    op.__name__ = "op_" + name.lower() + suffix
    return rule(targets=targets, choices=CHOICES, **objs)(op) if targets else \
        rule(choices=CHOICES, **objs)(op)


def _slug(text: str) -> str:
    return "_" + "_".join("".join(c if c.isalnum() else " " for c in text.lower()).split())


def _form_kinds(d: Any, types: dict[str, Any]) -> list[str]:
    """What a form's call makes: the last refinement its constant arguments satisfy
    (as the generator's context decides), else the outputs' own kinds."""
    kinds = []
    for o in d.outs:
        if not o.kind:
            continue
        kind = o.kind
        for r in o.refine:
            if all(isinstance(types.get(a), Const) and types[a].value & m == v
                   for a, m, v in r.when):
                kind = r.kind
        kinds.append(kind)
    return kinds


def _op_rules() -> dict[str, Callable[..., Any]]:
    """One rule per op, per refinement of what it makes (its flags set so), and per
    form (a nested HWPT_ALLOC takes its parent from the nest-parent bundle)."""
    rules = {}
    for name, d in OPS.items():
        made = [o.kind for o in d.outs if o.kind]
        variants: list[tuple[str, G.Force, dict[str, Any], list[str]]] = [("", {}, {}, made)]
        for o in d.outs:
            for r in o.refine:
                variants.append((_slug(r.kind), {a: (m, v) for a, m, v in r.when}, {},
                                 [r.kind]))
        for f in d.forms:
            variants.append((_slug(f.name), {}, dict(f.args), _form_kinds(d, dict(f.args))))
        for suffix, force, types, kinds in variants:
            r = _op_rule(name, suffix, force, types, kinds)
            rules[r.__name__] = r
    return rules


IommufdMachine = type("IommufdMachine", (_Machine,), _op_rules())


def machine_settings(max_examples: int, seed_db: Path | None = None) -> settings:
    from hypothesis.database import DirectoryBasedExampleDatabase

    return settings(max_examples=max_examples, deadline=None, stateful_step_count=20,
                    suppress_health_check=list(HealthCheck),
                    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
                    database=DirectoryBasedExampleDatabase(str(seed_db)) if seed_db else None,
                    print_blob=True)


def main(argv: list[str] | None = None) -> None:
    """Campaign worker: run the machine in batches until the time is up."""
    from hypothesis.stateful import run_state_machine_as_test

    from fuzz.backend import VMBackend
    from fuzz.cluster.exchange import store_for
    from fuzz.engines.common import WorkerState
    from fuzz.vm import VMConfig

    ap = argparse.ArgumentParser()
    for name in ("--kernel", "--corpus", "--findings", "--stats", "--workdir"):
        ap.add_argument(name, type=Path, required=True)
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--worker", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=120.0,
                    help="seconds a program may take before it counts as a hang")
    ap.add_argument("--seeds", type=Path, action="append", default=[],
                    help="read-only corpus dirs the fault walk also takes programs from")
    ap.add_argument("--cpus", type=int, default=1)
    ap.add_argument("--kmemleak", action="store_true")
    ap.add_argument("--leak-scan-s", type=float, default=0.0)
    ap.add_argument("--fault-walk-every", type=int, default=0)
    ap.add_argument("--no-schedule", action="store_true",
                    help="no injected faults, no threads (for comparison)")
    ap.add_argument("--exchange", type=Path, help="cluster campaigns: the directory shared "
                    "with the node's actor (fuzz.cluster.exchange; findings only)")
    a = ap.parse_args(argv)
    backend = VMBackend(a.kernel, VMConfig(kernel=a.kernel, cpus=a.cpus, kmemleak=a.kmemleak),
                        workdir=a.workdir / "vm", timeout=a.timeout)
    Context.counts = Counts()
    state = WorkerState(backend, a.corpus, store_for(a.findings, a.exchange), a.stats, a.kernel,
                        a.worker, exchange=a.exchange, counts=Context.counts)
    state.walk_every, state.leak_scan_s = a.fault_walk_every, a.leak_scan_s
    state.walk_dirs = list(getattr(a, "seeds", []))
    Context.run = lambda prog: state.run(prog)[0]
    Context.schedule = not a.no_schedule
    end = time.monotonic() + a.seconds
    try:
        while time.monotonic() < end:
            try:
                run_state_machine_as_test(IommufdMachine,
                                          settings=machine_settings(50, a.workdir / "hypo-db"))
            except AssertionError as e:
                out = Context.last_failure
                if out is not None:
                    # hypothesis replays the shrunk example last: this is the minimal program
                    from fuzz.findings import from_outcome

                    for f in from_outcome(out):
                        if (state.store.root / f.slug).is_dir():
                            out.prog.save(state.store.root / f.slug / "shrunk.json")
                    out.prog.save(a.workdir / f"shrunk-{int(time.time())}.json")
                print(str(e)[:4000], flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        state.write_stats(final=True)
        backend.close()


if __name__ == "__main__":
    main()
