"""One differential run: the program on a kernel, the model stepped alongside,
every op compared. This is the oracle every engine and the minimizer call.

Two things make the model step more than one way:
- an op whose injected fault failed it (fuzz.model.faults) leaves the state as it
  was before it;
- the ops of a race group may have run in any order that keeps each thread's own
  (fuzz.model.races; the ids the ops' new objects got are the kernel's choice): the
  model tries each order from each state it still holds
  possible and keeps the states whose results agree with the kernel's. Several may
  (two orders with the same results, different states: say, two memory limits set
  at once); later ops tell them apart, and an op agrees if it agrees with one.
  An op is "unsure" only where no state agrees and some cannot tell.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

from fuzz.backend import Backend, Execution
from fuzz.compare import Mismatch, compare_op
from fuzz.executor.wire import KCOV_TRACE_PC
from fuzz.model import Model, faults, races
from fuzz.model.file import AGENT_FDS, FdLayout
from fuzz.prog import Program
from fuzz.result import OpResult

MAX_STATES = 16  # states held possible at once; past that the rest are dropped


@dataclass
class Outcome:
    prog: Program
    execution: Execution
    model: list[OpResult] = field(default_factory=list)
    mismatches: list[Mismatch] = field(default_factory=list)  # real disagreements
    unsure: list[Mismatch] = field(default_factory=list)  # where the model said it cannot tell
    # per racing group (its first op): the order the reported results are the model's
    # for, how many orders agreed with the kernel, and the ops of that order that took
    # their first id early (races.first_id_early)
    orders: dict[int, tuple[tuple[int, ...], int, tuple[int, ...]]] = \
        field(default_factory=dict)
    model_s: float = 0.0  # the host's time stepping the model and comparing
    waited: float = 0.0  # the host's time waiting for the guest's results (a worker's)
    new_edges: int = 0  # kernel edges the worker had not seen before this run (a worker's)

    @property
    def failed(self) -> bool:
        """A finding: a splat, a crash, or a model/kernel mismatch."""
        ex = self.execution
        return bool(self.mismatches or ex.reports or ex.crash)

    @property
    def failed_new(self) -> bool:
        """A finding that is not only known kernel bugs (fuzz.known)."""
        from fuzz.findings import from_outcome

        return self.failed and any(not f.known for f in from_outcome(self))


@dataclass
class _Try:
    model: Model
    order: tuple[int, ...]
    results: dict[int, OpResult]
    diffs: list[Mismatch]
    early: tuple[int, ...] = ()  # ops that took their first id early (races.first_id_early)

    @property
    def tier(self) -> int:
        """0: agrees, 1: agrees where the model can tell, 2: disagrees. A result a known
        kernel bug gives agrees: the state that led there is as likely as one where the
        kernel did what the uAPI says (a state left for it would lose the real one)."""
        if self.wrong:
            return 2
        return 1 if any(d.field == "unsure" for d in self.diffs) else 0

    @property
    def wrong(self) -> int:
        return sum(d.field != "unsure" and not d.bug for d in self.diffs)


def _try(prog: Program, base: Model, span: range, order: tuple[int, ...], group: bool,
         kernel: list[OpResult], in_place: bool, early: tuple[int, ...] = ()) -> _Try:
    """One order of span's ops from base. early: ops whose first id is taken as soon
    as their thread's op before them returned (races.first_id_early)."""
    forced: set[int] = set()  # ops that failed on a racing op's half-done work
    held: set[int] = set()  # automatic IOVAs taken while a racing map's failed areas were in
    # the objects before a race group, for adopt_ids (base is stepped itself when
    # in_place); outside a group nothing reads them
    before = dict(base.objects.objs) if group else {}
    while True:
        m = base if in_place else base.clone()
        if group:
            m.begin_group(span)
        res = {}
        reserved: dict[int, int] = {}  # early op -> the id it holds
        _reserve_after(m, prog, span, early, None, reserved)
        for k in order:
            if k in reserved:
                m.objects.unreserve(reserved.pop(k))
            with races.meeting_failed_maps(m, k in held):
                res[k] = (races.fail_early(m, k, kernel[k]) if k in forced else
                          faults.step(m, k, kernel[k]) if prog.ops[k].fail_nth else
                          m.step(k, kernel[k]))
            _reserve_after(m, prog, span, early, k, reserved)
        if group:  # a capture read after racing ops later in the order wrote there
            for k in order:
                late = races.captured_late(m, prog, span, order, k, kernel)
                if late is not None and late == kernel[k].out.get("data"):
                    res[k].out["data"] = late
        diffs = [d for k in span for d in compare_op(k, prog.ops[k].name, kernel[k], res[k])]
        # a result a known kernel bug gives agrees (_Try.tier): no race explains it
        real = [d for d in diffs if not d.bug]
        more = {d.op for d in real if d.field == "errno" and d.op not in forced
                and races.transient(base, prog, span, d.op, kernel[d.op])} if group else set()
        meets = {d.op for d in real if d.op not in held
                 and races.may_meet_failed_map(prog, span, d.op, d.field, kernel)} \
            if group else set()
        if not more and not meets:
            break
        forced |= more
        held |= meets
    if group and races.adopt_ids(m, prog, span, kernel, res, diffs,
                                 m.objects.kept_from(before)):
        diffs = [d for k in span for d in compare_op(k, prog.ops[k].name, kernel[k], res[k])]
    return _Try(m, order, res, diffs, early)


def _reserve_after(m: Model, prog: Program, span: range, early: tuple[int, ...],
                   j: int | None, reserved: dict[int, int]) -> None:
    """The early ops whose thread's op before them is j (None: none) take their first
    id now."""
    for e in early:
        if races.thread_before(prog, span, e) == j:
            reserved[e] = m.objects.reserve()


def model_error(prog: Program, i: int, e: Exception) -> Mismatch:
    """The model raised stepping op i: where (the innermost frame in fuzz/model/, or
    the innermost of all), and what. The field is "model_error"; its model value is
    (where, the exception's text)."""
    frames = traceback.extract_tb(e.__traceback__)  # never empty: it was raised below
    f = ([x for x in frames if "/fuzz/model/" in x.filename] or frames)[-1]
    where = f"{type(e).__name__} in {f.name} ({Path(f.filename).name})"
    return Mismatch(i, prog.ops[i].name, "model_error", None, (where, f"{e}:{f.lineno}"))


def _best_tries(tries: Iterable[_Try]) -> tuple[list[_Try], int, bool]:
    """The tries of the best tier, in order: at most MAX_STATES (and whether more were
    dropped), or the closest one (the first on ties) when none agrees. Taken one at a
    time: a six-op race group from several states is thousands of model copies, and
    holding them all at once was a worker's largest transient (tens of MB, kept by
    the allocator afterwards)."""
    keep: list[_Try] = []
    tier, more = 3, False
    for t in tries:
        if t.tier < tier:
            keep, tier, more = [t], t.tier, False
        elif t.tier == tier:
            if tier == 2:
                if t.wrong < keep[0].wrong:
                    keep = [t]
            elif len(keep) < MAX_STATES:
                keep.append(t)
            else:
                more = True
    # the first is the one reported: one with no known bug to show, where there is one
    keep.sort(key=lambda t: any(d.bug for d in t.diffs))
    return keep, tier, more


def _race_leeway(prog: Program, span: range, start: int, kernel: list[OpResult],
                     before: list[Model], keep: list[_Try]) -> None:
    """After a racing group, what no whole-call order gives but the kernel may: an op
    that read, page by page, what another thread's op changed step by step is unsure
    (races.seen_mid_op); ids and fds the ops took one at a time are the kernel's
    free choice (races.taken_one_at_a_time). Where the only disagreements left are
    such outputs, each given once and none held by an object or file that lived
    through the whole group (an id or fd in use given out again stays a mismatch),
    they are unsure; and where they (or ids no output shows) may differ, ids and fd
    numbers stay unknown from here on (the model then takes the kernel's where they
    are free: Model._take_kernel_ids, FdTable.alloc)."""
    why = races.taken_one_at_a_time(prog, span, kernel)
    open_fds = {fd for m in before for fd in m.fds.open}
    given = [kernel[k].out.get(f) for k in span if not kernel[k].errno
             for f in races.resource_outputs(prog, k)]

    def free(d: Mismatch, kept_ids: set[int], kept_fds: set[int]) -> bool:
        v = d.kernel
        if not races.free_choice(prog, span, d.op, d.field) or type(v) is not int \
                or given.count(v) > 1:
            return False
        out = prog.ops[d.op].desc.out(d.field)
        if out is not None and out.is_fd:
            return v >= 0 and v not in kept_fds
        return 0 < v < 1 << 31 and v not in kept_ids

    for t in keep:
        diffs = []
        for d in t.diffs:
            mid = None if d.field == "unsure" else races.seen_mid_op(prog, span, d.op)
            if d.field not in ("unsure", "errno", "ret") and mid is None:
                mid = races.read_back_late(before[0], prog, span, d.op)
                if mid is not None:  # what the model put there is not known to be there
                    t.model.mem.taint(*races.user_writes(before[0], prog, d.op))
            diffs.append(d if mid is None else
                         Mismatch(d.op, d.name, "unsure", d.describe(), mid))
        t.diffs = diffs
        # held through the group by the objects that held them before it: an id a racing
        # op freed (a DESTROY; a TEST_MOCK_DOMAIN_REPLACE putting the auto domain it left,
        # device.c:793) and another's new object took is not one of them
        lived = {i for m in before for i in t.model.objects.kept_from(m.objects.objs)}
        kept = (lived, open_fds & set(t.model.fds.open))
        real = [d for d in t.diffs if d.field != "unsure"]
        if real and all(free(d, *kept) for d in real):
            reason = (f"ids and fds taken while other threads of the race group at op "
                      f"{start} took or gave back theirs: the kernel's choice")
            t.diffs = [d if d.field == "unsure" else
                       Mismatch(d.op, d.name, "unsure", d.describe(), reason) for d in t.diffs]
            why = why or reason
            # the files the group made take the kernel's numbers (later ops name them by
            # those); where they cannot, every file the group made is unknown, as a
            # lookup by number may find another one
            if not races.adopt_fds(t.model, prog, span, kernel, t.results, open_fds):
                for fd, f in t.model.fds.open.items():
                    if fd not in open_fds and f.unknown is None:  # type: ignore[attr-defined]
                        f.unknown = f"{reason}: its fd number may be another's"  # type: ignore
        races.forget_dirty(t.model, prog, span, start)
        if why is not None:
            root = f"since the race group at op {start}: {why}"
            objs = t.model.objects
            objs.ids_unknown = objs.ids_unknown or root
            t.model.fds.unknown = t.model.fds.unknown or root
            for k, o in objs.objs.items():
                if k not in lived:  # made by the group: its id is the model's guess
                    o.id_guessed = True


def model_alongside(prog: Program, kernel: list[OpResult],
                    fds: FdLayout | None = AGENT_FDS,
                    orders: dict[int, tuple[tuple[int, ...], int, tuple[int, ...]]] | None
                    = None
                    ) -> tuple[list[OpResult], list[Mismatch], list[Mismatch]]:
    """fds: the fd table the backend's executor starts a program with; orders gets,
    per race group, the order the predicted results are those of (see Outcome)."""
    states = [Model(prog, fds)]
    dropped = False
    predicted: list[OpResult] = []
    mism: list[Mismatch] = []
    unsure: list[Mismatch] = []
    groups = {g.start: g for g in prog.groups() if races.racing(prog, g)}
    i = 0
    while i < len(kernel):
        g = groups.get(i)
        span = g if g is not None and g.stop <= len(kernel) else range(i, i + 1)
        group = span is g
        perms = races.in_time(races.orders(prog, span), kernel) if group else [(i,)]
        # Each state is stepped in place where it has one try: an op outside a race
        # group (its try uses the state only for itself, and the states are replaced by
        # the tries' below). A racing group's tries each start from a copy, even where
        # there is one order from one state: a try stepped again (an op failed on a
        # racing op's half-done work) starts from the state before the group, which
        # races.transient reads too.
        in_place = not group
        try:
            keep, tier, more = _best_tries(
                _try(prog, s, span, o, group, kernel, in_place) for s in states for o in perms)
            early = tuple(races.first_id_early(prog, span, kernel)) if group and tier == 2 else ()
            if early:  # no order agrees: the mock domains' first ids taken early
                keep, tier, more = _best_tries(chain(keep, (
                    _try(prog, s, span, o, group, kernel, in_place, early)
                    for s in states for o in perms)))
        except Exception as e:  # a bug of the model: a finding, not the end of a campaign
            mism.append(model_error(prog, i, e))
            predicted += kernel[i:]
            unsure += [Mismatch(k, prog.ops[k].name, "unsure", None,
                                f"not compared after the model's error at op {i}")
                       for k in range(i + 1, len(kernel))]
            break
        dropped = dropped or more
        best = keep[0]
        why = races.not_whole_calls(prog, span) if tier == 2 and group else None
        if group and why is None:
            _race_leeway(prog, span, i, kernel, states, keep)
        if why is not None:
            # unsure, and so is every later op: the objects the group left are unknown
            best.diffs = [d if d.field == "unsure" else
                          Mismatch(d.op, d.name, "unsure", d.describe(), why)
                          for d in best.diffs]
            best.model.poisoned = f"after the race group at op {i}: {why}"
        states = [t.model for t in keep]
        if group and orders is not None:
            orders[i] = (best.order, len(keep), best.early)
        predicted += [best.results[k] for k in span]
        for d in best.diffs:
            if d.field != "unsure" and dropped:
                d = Mismatch(d.op, d.name, "unsure", d.describe(),
                             f"more than {MAX_STATES} states were possible after racing ops "
                             "and some were dropped")
            (unsure if d.field == "unsure" else mism).append(d)
        i = span.stop
    return predicted, mism, unsure


def run(prog: Program, backend: Backend, kcov: bool = True,
        kcov_mode: int = KCOV_TRACE_PC) -> Outcome:
    ex = backend.run(prog, kcov=kcov, kcov_mode=kcov_mode)
    return compare(Outcome(prog, ex), getattr(backend, "fd_layout", AGENT_FDS))


def compare(out: Outcome, fds: FdLayout | None = AGENT_FDS) -> Outcome:
    """The model stepped along the kernel's results of out, every op compared. It needs
    only those results: a worker may compare one program while the guest runs the next
    (fuzz.engines.common.WorkerState)."""
    if out.execution.results:
        t0 = time.perf_counter()
        out.model, out.mismatches, out.unsure = model_alongside(
            out.prog, out.execution.results, fds, out.orders)
        out.model_s = time.perf_counter() - t0
    return out
