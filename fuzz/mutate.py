"""Program-level mutation and crossover, for the atheris engine's custom mutator.

Every mutation keeps the program valid: after ops move or vanish, repair()
points each dangling ref at another earlier op with the same output field, or
turns it into a literal.
"""

from __future__ import annotations

import copy
import random

from fuzz.gen import INTERESTING_U64, Generator, RandomChooser
from fuzz.ops import OPS
from fuzz.prog import BufPtr, Program, Ref, Value

MAX_OPS = 64


def repair(prog: Program, rng: random.Random) -> Program:
    for i, op in enumerate(prog.ops):
        for k, v in list(op.args.items()):
            if isinstance(v, Ref):
                ok = 0 <= v.op < i and v.field in OPS[prog.ops[v.op].name].outputs
                if not ok:
                    same = [j for j in range(i) if v.field in OPS[prog.ops[j].name].outputs]
                    op.args[k] = Ref(rng.choice(same), v.field, v.add) if same else 0
            elif isinstance(v, BufPtr) and not 0 <= v.buf < len(prog.buffers):
                op.args[k] = BufPtr(0, v.offset) if prog.buffers else 0
    return prog


def _refs_available(prog: Program, i: int) -> list[Ref]:
    return [Ref(j, f) for j in range(i) for f in OPS[prog.ops[j].name].ref_outputs]


def mutate(prog: Program, rng: random.Random, hints: list[int] | None = None) -> Program:
    p = copy.deepcopy(prog)
    gen = Generator(RandomChooser(rng.getrandbits(32)))
    choice = rng.randrange(8) if p.ops else 7
    if choice == 7 and len(p.ops) < MAX_OPS:  # append a freshly generated sequence
        objs = {}
        for j, op in enumerate(p.ops):
            for out, kind in OPS[op.name].ref_outputs.items():
                objs.setdefault(kind, []).append(Ref(j, out))
        if not objs.get("ioas"):
            gen.append(p, objs, "IOAS_ALLOC")  # nearly every path needs an IOAS
        for _ in range(rng.randint(1, 6)):
            gen.append(p, objs, gen.pick_op())
        del p.ops[MAX_OPS:]
    elif choice == 0 and len(p.ops) < MAX_OPS:  # insert a fresh op
        tmp = Program(p.ops[: rng.randint(0, len(p.ops))], p.buffers)
        at = len(tmp.ops)
        objs: dict[str, list[Ref]] = {}
        for j, op in enumerate(tmp.ops):
            for out, kind in OPS[op.name].ref_outputs.items():
                objs.setdefault(kind, []).append(Ref(j, out))
        gen.append(tmp, objs, gen.pick_op())
        p.ops.insert(at, tmp.ops[at])
        # ops after the insertion point: refs at or past it shift by one
        for op in p.ops[at + 1:]:
            for k, v in op.args.items():
                if isinstance(v, Ref) and v.op >= at:
                    op.args[k] = Ref(v.op + 1, v.field, v.add)
    elif choice == 1 and p.ops:  # delete
        at = rng.randrange(len(p.ops))
        del p.ops[at]
        for op in p.ops[at:]:
            for k, v in op.args.items():
                if isinstance(v, Ref) and v.op > at:
                    op.args[k] = Ref(v.op - 1, v.field, v.add)
                elif isinstance(v, Ref) and v.op == at:
                    op.args[k] = Ref(-1, v.field, v.add)  # repaired below
    elif choice == 2 and p.ops and len(p.ops) < MAX_OPS:  # duplicate
        at = rng.randrange(len(p.ops))
        p.ops.append(copy.deepcopy(p.ops[at]))
    elif choice == 3 and len(p.ops) > 1:  # swap two ops
        a, b = rng.sample(range(len(p.ops)), 2)
        p.ops[a], p.ops[b] = p.ops[b], p.ops[a]
    elif choice == 4 and p.ops:  # retarget a ref
        at = rng.randrange(len(p.ops))
        op = p.ops[at]
        refs = [k for k, v in op.args.items() if isinstance(v, Ref)]
        avail = _refs_available(p, at)
        if refs and avail:
            k = rng.choice(refs)
            op.args[k] = rng.choice(avail)
    else:  # mutate an argument toward an interesting value
        at = rng.randrange(len(p.ops))
        op = p.ops[at]
        spec = OPS[op.name]
        names = [a.name for a in spec.args if a.kind != "ranges"]
        if names:
            k = rng.choice(names)
            op.args[k] = _interesting(rng, op.args.get(k, 0), hints)
    return repair(p, rng)


def _interesting(rng: random.Random, old: Value, hints: list[int] | None) -> Value:
    r = rng.randrange(6)
    if r == 0 and hints:
        return rng.choice(hints)
    if isinstance(old, Ref):
        return Ref(old.op, old.field, rng.choice((0, 2048, 4096, -4096, 1, -1)))
    if isinstance(old, BufPtr):
        return BufPtr(old.buf, rng.choice((0, 1, 2048, 4096, old.offset + 4096)))
    if isinstance(old, int):
        if r == 1:
            return (old + rng.choice((1, -1, 2048, 4096, -4096))) % (1 << 64)
        if r == 2:
            return old ^ (1 << rng.randrange(64))
    return rng.choice(INTERESTING_U64)


def crossover(a: Program, b: Program, rng: random.Random) -> Program:
    """A prefix of a, then a slice of b whose refs are shifted to their new place."""
    cut = rng.randint(0, len(a.ops))
    start = rng.randint(0, len(b.ops))
    end = rng.randint(start, len(b.ops))
    p = Program(copy.deepcopy(a.ops[:cut]), copy.deepcopy(a.buffers or b.buffers))
    shift = cut - start
    for op in copy.deepcopy(b.ops[start:end]):
        for k, v in op.args.items():
            if isinstance(v, Ref):
                op.args[k] = Ref(v.op + shift if v.op >= start else -1, v.field, v.add)
        p.ops.append(op)
    p.ops = p.ops[:MAX_OPS]
    return repair(p, rng)


