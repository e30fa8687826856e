"""Program-level mutation and crossover (the atheris engine's custom mutator).

Structural mutations go through fuzz.prog.edits (so refs stay valid); argument
mutations read the argument's type from the descriptions: a flag set flips one of
its bits, an enum takes another named value, an object ref moves to another object
of an accepted kind, an IOVA or a length moves by pages, a user pointer moves within
or past its buffer, and any integer may take a comparison operand the kernel was
seen to compare against (KCOV CMP hints) or a boundary value of its type
(Generator.edge: raw user addresses, byte-granular IOVAs and lengths, unknown bits,
refs in any integer slot...). Every value fits its field.

How ops run is mutated too (fuzz.prog.ir): a fault injected into an op (fail_nth),
moved to another op, or to the next or previous fault point; an op moved to another
thread; a run of ops made a race group (their threads released together), or a
group dissolved. edits.repair cuts groups that the edits made invalid.
"""

from __future__ import annotations

import copy
import random

from fuzz.prog import edits
from fuzz.prog.gen import (
    INTERESTING_U64,
    IOVAS,
    LENGTHS,
    MOCK_PAGE,
    RAW_UPTRS,
    Context,
    Generator,
    RandomChooser,
)
from fuzz.prog.ir import PAGE, BufPtr, Op, Program, Ref, Value, list_widths, wrap64
from fuzz.prog.limits import MAX_BARRIER, MAX_FAIL_NTH, MAX_THREADS
from fuzz.prog.types import (
    Arg,
    Counts,
    Entries,
    Enum,
    Flags,
    InSide,
    Int,
    Iova,
    Len,
    Ranges,
    Res,
    Uptr,
)

MAX_OPS = 64
# fault points worth trying first: most ops have a few; map and attach paths dozens
FAIL_NTHS = (1, 1, 1, 2, 2, 3, 4, 5, 6, 8, 10, 12, 16, 24, 32)


def _pick(rng: random.Random) -> edits.Pick:
    return lambda cands: rng.choice(list(cands))


def mutate(prog: Program, rng: random.Random, hints: list[int] | None = None,
           counts: Counts | None = None, schedule: bool = True) -> Program:
    """One mutation; `counts` tallies what the generator drew (the campaign's stats);
    schedule False: never touch how ops run (no faults, no threads: for comparison)."""
    p = copy.deepcopy(prog)
    gen = Generator(RandomChooser(rng.getrandbits(32)), counts=counts)
    choice = rng.randrange(11 if schedule else 9) if p.ops else 7
    if choice == 7 and len(p.ops) < MAX_OPS:  # append a freshly generated sequence
        ctx = Context.of(p)
        if not ctx.of_kinds(("ioas",)):
            gen.append(p, ctx, "IOAS_ALLOC")  # nearly every path needs an IOAS
        for _ in range(rng.randint(1, 6)):
            gen.append(p, ctx, gen.pick_op())
        del p.ops[MAX_OPS:]
    elif choice == 0 and len(p.ops) < MAX_OPS:  # insert a fresh op (and what it needs)
        at = rng.randint(0, len(p.ops))
        head = Program(copy.deepcopy(p.ops[:at]), p.buffers, p.creds)
        gen.append(head, Context.of(head), gen.pick_op())
        for k, op in enumerate(head.ops[at:]):
            p = edits.insert_op(p, at + k, op)
        del p.ops[MAX_OPS:]
    elif choice == 1 and p.ops:  # delete an op
        p = edits.remove_ops(p, {rng.randrange(len(p.ops))}, _pick(rng))
    elif choice == 2 and len(p.ops) < MAX_OPS:  # repeat an op at the end
        p.ops.append(copy.deepcopy(p.ops[rng.randrange(len(p.ops))]))
    elif choice == 3 and len(p.ops) > 1:  # swap two ops
        a, b = rng.sample(range(len(p.ops)), 2)
        p.ops[a], p.ops[b] = p.ops[b], p.ops[a]
    elif choice == 4:  # retarget an object ref
        at = rng.randrange(len(p.ops))
        op = p.ops[at]
        refs = [arg for arg in op.desc.args if isinstance(op.args.get(arg.name), Ref)]
        if refs:
            arg = rng.choice(refs)
            ctx = Context.of(p, at)
            kinds = arg.type.kinds if isinstance(arg.type, Res) else ()
            objs = ctx.of_kinds(kinds) or ctx.objs
            if objs:
                op.args[arg.name] = rng.choice(objs).ref
    elif choice == 8:  # mutate a buffer, or who runs the program
        if rng.randrange(4):
            _mutate_buffer(p, rng)
        else:
            p.creds = None if p.creds is not None and rng.randrange(2) else gen.creds()
    elif choice == 9:  # inject, move or drop a fault
        _mutate_fault(p, rng)
    elif choice == 10:  # threads and race groups
        _mutate_threads(p, rng)
    else:  # mutate an argument by its type
        at = rng.randrange(len(p.ops))
        op = p.ops[at]
        args = list(op.desc.args)
        if args:
            arg = rng.choice(args)
            v = _mutate_arg(p, at, op, arg, rng, hints, gen)
            if v is None:
                op.args.pop(arg.name, None)
            else:
                op.args[arg.name] = v
    return edits.repair(p, _pick(rng))


def _fit(v: int, width: int) -> int:
    return v % (1 << (8 * width))


def _mutate_arg(p: Program, at: int, op: Op, arg: Arg, rng: random.Random,
                hints: list[int] | None, gen: Generator) -> Value | None:
    old = op.args.get(arg.name)
    t = arg.type
    w = arg.width
    if isinstance(t, InSide):  # a field of a side array: mutated as its own type
        t = t.type if t.type is not None else Int()
    if isinstance(t, Entries):
        return _mutate_entries(op, arg, old, rng, hints)
    if rng.randrange(5) == 0:  # a boundary value of the argument's type
        v = gen.edge(Program(p.ops[:at], p.buffers, p.creds), op.desc, arg)
        if v is not None:
            return _fit(v, w) if isinstance(v, int) else v
    if hints and rng.randrange(6) == 0:
        return _fit(rng.choice(hints), w)
    if isinstance(t, Ranges):
        ranges = [list(r) for r in old] if isinstance(old, list) else []
        r = rng.randrange(3)
        if r == 0 or not ranges:
            ranges.append(Generator(RandomChooser(rng.getrandbits(32))).range())
        elif r == 1:
            del ranges[rng.randrange(len(ranges))]
        else:
            k = rng.randrange(len(ranges))
            ranges[k][rng.randrange(2)] = _fit(ranges[k][rng.randrange(2)]
                                               + rng.choice((1, -1, PAGE, -PAGE)), 8)
        return ranges
    if isinstance(old, Ref):
        if rng.randrange(3) == 0:
            return None
        return Ref(old.op, old.field,
                   wrap64(old.add + rng.choice((0, MOCK_PAGE, PAGE, -PAGE, 1, -1))))
    if isinstance(old, BufPtr):
        r = rng.randrange(4)
        if r == 0:
            return _fit(rng.choice(RAW_UPTRS), w)
        size = p.buffers[old.buf].size if old.buf < len(p.buffers) else PAGE
        return BufPtr(old.buf, rng.choice((0, 1, MOCK_PAGE, PAGE, old.offset + PAGE,
                                           size - PAGE, size)))
    if isinstance(t, Flags):
        v = old if isinstance(old, int) else 0
        bits = [b for _, b in t.flags.bits]
        if bits and rng.randrange(4):
            return v ^ rng.choice(bits)
        return _fit(v ^ (1 << rng.randrange(8 * w)), w)
    if isinstance(t, Enum) and t.enum.values and rng.randrange(4):
        return rng.choice(t.enum.values)[1]
    if isinstance(t, Res):
        objs = Context.of(p, at).of_kinds(t.kinds)
        if objs and rng.randrange(3):
            return rng.choice(objs).ref
    if isinstance(t, Uptr) and p.buffers and rng.randrange(2):
        return BufPtr(rng.randrange(len(p.buffers)), rng.choice((0, PAGE, MOCK_PAGE)))
    v = old if isinstance(old, int) else 0
    r = rng.randrange(4)
    if r == 0:
        return _fit(v + rng.choice((1, -1, MOCK_PAGE, PAGE, -PAGE, -MOCK_PAGE)), w)
    if r == 1:
        return _fit(v ^ (1 << rng.randrange(8 * w)), w)
    if r == 2 and isinstance(t, Iova):
        return _fit(rng.choice(IOVAS), w)
    if r == 2 and isinstance(t, Len):
        return _fit(rng.choice(LENGTHS), w)
    return _fit(rng.choice(INTERESTING_U64), w)


def _mutate_entries(op: Op, arg: Arg, old: Value | None, rng: random.Random,
                    hints: list[int] | None) -> list[list[int]]:
    """Add an entry, drop one, or change one field of one."""
    entries = [list(e) for e in old] if isinstance(old, list) else []
    widths = list_widths(op.desc, arg.name) or ()
    r = rng.randrange(3)
    if r == 0 or not entries:
        gen = Generator(RandomChooser(rng.getrandbits(32)))
        entries += gen.entries(op.desc, arg, arg.type)[:1] or [[0] * len(widths)]  # type: ignore
    elif r == 1:
        del entries[rng.randrange(len(entries))]
    elif widths:
        e = entries[rng.randrange(len(entries))]
        k = rng.randrange(min(len(e), len(widths)))
        e[k] = _fit(rng.choice(hints) if hints and rng.randrange(3) == 0 else
                    e[k] + rng.choice((1, -1)) if rng.randrange(2) else
                    rng.choice(INTERESTING_U64), widths[k])
    return entries


def _mutate_fault(p: Program, rng: random.Random) -> None:
    faulted = [i for i, op in enumerate(p.ops) if op.fail_nth]
    r = rng.randrange(4)
    if not faulted or r == 0:  # a fault on some op
        p.ops[rng.randrange(len(p.ops))].fail_nth = rng.choice(FAIL_NTHS)
        return
    op = p.ops[rng.choice(faulted)]
    if r == 1:  # the next or the previous fault point
        op.fail_nth = min(MAX_FAIL_NTH, max(1, op.fail_nth + rng.choice((1, -1, 1, 2))))
    elif r == 2:  # moved to another op
        p.ops[rng.randrange(len(p.ops))].fail_nth, op.fail_nth = op.fail_nth, 0
    else:
        op.fail_nth = 0


def _mutate_threads(p: Program, rng: random.Random) -> None:
    r = rng.randrange(4)
    groups = p.groups()
    if r == 0 or (r == 3 and not groups):  # a run of ops made a race group
        n = rng.randint(2, min(4, len(p.ops))) if len(p.ops) > 1 else 1
        start = rng.randrange(len(p.ops) - n + 1)
        used = {op.barrier for op in p.ops}
        label = next((b for b in range(1, MAX_BARRIER + 1) if b not in used), 1)
        threads = rng.sample(range(MAX_THREADS), min(n, MAX_THREADS))
        for k in range(n):
            op = p.ops[start + k]
            op.barrier = label
            op.thread = threads[k % len(threads)]
    elif r == 1:  # an op on another thread
        p.ops[rng.randrange(len(p.ops))].thread = rng.randrange(MAX_THREADS)
    elif r == 2 and groups:  # a group grows by the op after it
        g = rng.choice(groups)
        if g.stop < len(p.ops):
            p.ops[g.stop].barrier = p.ops[g.start].barrier
            p.ops[g.stop].thread = rng.randrange(MAX_THREADS)
    elif groups:  # a group dissolved: its ops run one at a time again
        for i in rng.choice(groups):
            p.ops[i].barrier = 0


def _mutate_buffer(p: Program, rng: random.Random) -> None:
    if not p.buffers:
        return
    b = p.buffers[rng.randrange(len(p.buffers))]
    r = rng.randrange(3)
    if r == 0 and b.kind != "hugetlb":  # another kind of memory of the same size
        b.kind = rng.choice(("anon", "memfd", "readonly", "hole"))
    elif r == 1 and b.kind not in ("hugetlb", "hole") and b.size >= 4 * PAGE:
        off = PAGE * rng.randrange(1, b.size // PAGE - 1)
        if all(off + PAGE <= o or o + n <= off for o, n in b.holes):
            b.holes.append((off, PAGE))
    else:
        b.seed = rng.randrange(256)


def crossover(a: Program, b: Program, rng: random.Random) -> Program:
    """A prefix of a, then a slice of b whose refs are shifted to their new place."""
    cut = rng.randint(0, len(a.ops))
    start = rng.randint(0, len(b.ops))
    end = rng.randint(start, len(b.ops))
    p = Program(copy.deepcopy(a.ops[:cut]), copy.deepcopy(a.buffers or b.buffers), a.creds)
    shift = cut - start
    for op in copy.deepcopy(b.ops[start:end]):
        for k, v in op.args.items():
            if isinstance(v, Ref):
                op.args[k] = Ref(v.op + shift if v.op >= start else -1, v.field, v.add)
        p.ops.append(op)
    p.ops = p.ops[:MAX_OPS]
    return edits.repair(p, _pick(rng))

