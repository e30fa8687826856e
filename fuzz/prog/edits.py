"""Edits that keep a program valid: remove ops, insert an op, remove buffers, and
repair refs that a move left dangling. The mutator, the minimizer and the engines
all edit programs through these, so "renumber the refs" is written once.

A ref whose op is gone is pointed at another earlier op with the same output field,
preferring one of the same op name and then the nearest - or, with none, at an output
that makes the same kind of object (IOAS_ALLOC's out_ioas_id for VFIO_IOAS's ioas_id);
`pick` chooses among the candidates (the first, for the minimizer's deterministic
edits; a random one, for the mutator); with no candidate the argument becomes 0.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

from fuzz.prog.descriptions import OPS
from fuzz.prog.ir import BufPtr, Op, Program, Ref
from fuzz.prog.limits import MAX_BARRIER, MAX_GROUP_OPS

Pick = Callable[[Sequence[int]], int]


def first(cands: Sequence[int]) -> int:
    return cands[0]


def candidates(prog: Program, before: int, field: str, want_name: str | None = None,
               among: Sequence[int] | None = None) -> list[int]:
    """Ops before `before` (optionally only those in `among`) with output `field`,
    the same op name first, then nearest first."""
    pool = range(before) if among is None else [j for j in among if j < before]
    cands = [j for j in pool if OPS[prog.ops[j].name].out(field) is not None]
    cands.sort(key=lambda j: (prog.ops[j].name != want_name, -j))
    return cands


def _of_kind(prog: Program, before: int, v: Ref, among: Sequence[int]) -> list[tuple[int, str]]:
    """(op, output) pairs before `before`, among `among`, nearest first, whose output
    makes the kind of object the output v names does."""
    src = OPS[prog.ops[v.op].name].out(v.field) if 0 <= v.op < len(prog.ops) else None
    if src is None or src.kind is None:
        return []
    return [(j, o.name) for j in sorted((j for j in among if j < before), reverse=True)
            for o in OPS[prog.ops[j].name].outs if o.kind == src.kind]


def remove_ops(prog: Program, drop: set[int], pick: Pick = first) -> Program:
    """A copy without the ops in `drop`; refs to later ops are renumbered, refs to
    dropped ops retargeted (see the module docstring)."""
    keep = [i for i in range(len(prog.ops)) if i not in drop]
    new_index = {old: new for new, old in enumerate(keep)}
    ops: list[Op] = []
    for old in keep:
        op = copy.deepcopy(prog.ops[old])
        for k, v in op.args.items():
            if not isinstance(v, Ref):
                continue
            if v.op in new_index:
                op.args[k] = Ref(new_index[v.op], v.field, v.add)
                continue
            want = prog.ops[v.op].name if 0 <= v.op < len(prog.ops) else None
            cands = candidates(prog, old, v.field, want, keep)
            if cands:
                op.args[k] = Ref(new_index[pick(cands)], v.field, v.add)
                continue
            kin = _of_kind(prog, old, v, keep)
            if kin:
                j, name = kin[pick(range(len(kin)))]
                op.args[k] = Ref(new_index[j], name, v.add)
            else:
                op.args[k] = 0
        ops.append(op)
    # two race groups with one label that the dropped ops kept apart are one now
    return repair_groups(Program(ops, copy.deepcopy(prog.buffers), prog.creds))


def insert_op(prog: Program, at: int, op: Op) -> Program:
    """A copy with `op` at index `at` (its refs must point before `at`); refs of the
    ops after it that point at or past `at` move up by one."""
    p = Program(copy.deepcopy(prog.ops), copy.deepcopy(prog.buffers), prog.creds)
    p.ops.insert(at, copy.deepcopy(op))
    for later in p.ops[at + 1:]:
        for k, v in later.args.items():
            if isinstance(v, Ref) and v.op >= at:
                later.args[k] = Ref(v.op + 1, v.field, v.add)
    return p


def used_buffers(prog: Program) -> set[int]:
    return {v.buf for op in prog.ops for v in op.args.values() if isinstance(v, BufPtr)}


def remove_buffers(prog: Program, drop: set[int]) -> Program:
    """A copy without those buffers; BufPtrs are renumbered (later buffers move to
    lower fixed addresses), BufPtrs into a dropped buffer become 0."""
    keep = [i for i in range(len(prog.buffers)) if i not in drop]
    new_index = {old: new for new, old in enumerate(keep)}
    p = Program(copy.deepcopy(prog.ops), [copy.deepcopy(prog.buffers[i]) for i in keep],
                prog.creds)
    for op in p.ops:
        for k, v in op.args.items():
            if isinstance(v, BufPtr):
                op.args[k] = BufPtr(new_index[v.buf], v.offset) if v.buf in new_index else 0
    return p


def repair(prog: Program, pick: Pick = first) -> Program:
    """In place: every ref that does not point at an earlier op's output of that name
    is retargeted; every BufPtr past the last buffer goes to buffer 0 (or 0)."""
    for i, op in enumerate(prog.ops):
        for k, v in list(op.args.items()):
            if isinstance(v, Ref):
                ok = 0 <= v.op < i and OPS[prog.ops[v.op].name].out(v.field) is not None
                if not ok:
                    cands = candidates(prog, i, v.field)
                    op.args[k] = Ref(pick(cands), v.field, v.add) if cands else 0
            elif isinstance(v, BufPtr) and not 0 <= v.buf < len(prog.buffers):
                op.args[k] = BufPtr(0, v.offset) if prog.buffers else 0
    return repair_groups(prog)


def _cuts(prog: Program, g: range) -> int | None:
    """Where race group g must be cut: at an op that refers into the group or past
    MAX_GROUP_OPS ops; None if it is fine as it is."""
    for i in g:
        if i - g.start >= MAX_GROUP_OPS:
            return i
        if any(isinstance(v, Ref) and v.op >= g.start for v in prog.ops[i].args.values()):
            return i  # never g.start itself: refs point back
    return None


def repair_groups(prog: Program) -> Program:
    """In place: race groups that edits made invalid are cut in two (the part from the
    offending op on gets another barrier label), until every group is valid."""
    changed = True
    while changed:
        changed = False
        for g in prog.groups():
            at = _cuts(prog, g)
            if at is None:
                continue
            taken = {prog.ops[g.start].barrier,
                     prog.ops[g.stop].barrier if g.stop < len(prog.ops) else 0}
            label = next(b for b in range(1, MAX_BARRIER + 1) if b not in taken)
            for i in range(at, g.stop):
                prog.ops[i].barrier = label
            changed = True
            break
    return prog
