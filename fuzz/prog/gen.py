"""Programs from the descriptions: mostly well-formed, often not.

Generation draws every decision from a Chooser, so the same code serves
`iommufd-fuzz gen` (a seeded random.Random), the atheris engine (bytes from
libFuzzer), the mutator and the hypothesis machine (draws from hypothesis).

It knows what state each op needs, the way syzkaller creates resources: an
argument that takes an object of some kind gets one an earlier op made, and when
there is none the generator first appends an op that makes one (an IOAS before a
map, a mock domain before MD_CHECK_MAP, VFIO_IOAS SET and VFIO_SET_IOMMU before a
vfio MAP_DMA); IOVAs and lengths are drawn from the mappings made so far in the
same IOVA space, user pointers from the buffers. Every so often it does the
opposite on purpose: a wrong kind of object, a made-up id, a boundary value.

Boundary values ("edge: ..." categories, counted by `gen --stats` and the campaign's
stats lines) reach every argument: user addresses anywhere (NULL, unmapped, the
last page below 2^64, past and across a buffer's end, in a hole), IOVAs, lengths
and user addresses that are not page multiples where the IOAS has no domain or
access and so maps at byte granularity (and later ops on such areas), every
enum value and flag, refs in every integer slot (the struct size, capacities and
counts included), and forms that only work on an empty iommufd as a program's
first op. `edge()` draws one for any argument: the mutator uses it too.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any, Protocol

from fuzz import uapi
from fuzz.model import Model
from fuzz.prog.descriptions import OPS
from fuzz.prog.ir import (
    BUF_BASE,
    BUF_STRIDE,
    BUFFER_KINDS,
    HUGE_PAGE,
    MAX_BUFFERS,
    PAGE,
    Buffer,
    BufPtr,
    Creds,
    Op,
    Program,
    Ref,
    Value,
    list_widths,
    wrap64,
)
from fuzz.prog.types import (
    EDGE,
    Arg,
    Capacity,
    Const,
    Count,
    Counts,
    Entries,
    Enum,
    Flags,
    InSide,
    Int,
    Iova,
    Len,
    OpDesc,
    Output,
    Ranges,
    Res,
    Reserved,
    Uptr,
    is_kind,
)

U32_MAX = (1 << 32) - 1
U64_MAX = (1 << 64) - 1
MOCK_PAGE = PAGE // 2  # selftest.c MOCK_IO_PAGE_SIZE
MOCK_HUGE_PAGE = 512 * MOCK_PAGE  # selftest.c MOCK_HUGE_PAGE_SIZE (HUGE_IOVA devices)
APERTURE_START = uapi.MOCK_APERTURE_START
APERTURE_LAST = uapi.MOCK_APERTURE_LAST

# Boundary values by what an argument means; INTERESTING_U64 is the generic set.
IOVAS = (0, 1, MOCK_PAGE, PAGE - 1, PAGE, PAGE + MOCK_PAGE, HUGE_PAGE, APERTURE_START,
         APERTURE_START - PAGE, APERTURE_START + 1, APERTURE_START + MOCK_PAGE, APERTURE_LAST,
         APERTURE_LAST + 1, APERTURE_LAST - PAGE + 1, 1 << 32, 1 << 47, U32_MAX, U64_MAX,
         U64_MAX - PAGE + 1, U64_MAX - 1, 1 << 63)
LENGTHS = (PAGE, 2 * PAGE, 16 * PAGE, MOCK_PAGE, 3 * MOCK_PAGE, HUGE_PAGE, 0, 1, PAGE - 1,
           PAGE + 1, 100, U64_MAX, U64_MAX - PAGE + 1, PAGE * 256, 1 << 20, 1 << 32)
INTERESTING_U64 = tuple(sorted(set(IOVAS) | {2, 3, 16, 64, 255, 256, 65535, 65536,
                                             0x7FFFFFFF, 1 << 31, (1 << 63) - 1}))
# Raw user addresses: NULL, an address nothing maps (a buffer slot far beyond any
# program's), the last page below 2^64, the last user page of x86_64, non-canonical.
UPTR_EDGES = (("NULL", 0), ("address 1", 1),
              ("an unmapped buffer slot", BUF_BASE + (MAX_BUFFERS - 1) * BUF_STRIDE),
              ("the last page below 2^64", U64_MAX - PAGE + 1),
              ("the last user page", (1 << 47) - PAGE), ("non-canonical", 1 << 63),
              ("2^64 - 1", U64_MAX), ("the last byte below 2^64", U64_MAX - 1))
RAW_UPTRS = tuple(v for _, v in UPTR_EDGES)
# Byte offsets that are not page multiples (an IOAS without a domain or access maps
# at byte granularity: iova_alignment 1)
BYTE_OFFSETS = (1, 3, 100, MOCK_PAGE + 1, PAGE - 1)
BYTES = "<bytes>"  # picked[BYTES]: this op maps at byte granularity
ID_LITERALS = (0, 1, 2, 3, 100, U32_MAX)
MAX_DEPTH = 8  # a fault response needs eight ops built before it, then give up
ALL = (1 << 64) - 1
Force = dict[str, tuple[int, int]]  # argument -> (mask, value) it must have


class Chooser(Protocol):
    def below(self, n: int) -> int:
        """An integer in [0, n)."""

    def bits(self, k: int) -> int:
        """A k-bit integer."""


class RandomChooser:
    def __init__(self, seed: int | None = None) -> None:
        self.rng = random.Random(seed)

    def below(self, n: int) -> int:
        return self.rng.randrange(n) if n > 0 else 0

    def bits(self, k: int) -> int:
        return self.rng.getrandbits(k)


# -- what the program has made so far -------------------------------------------------
@dataclass(frozen=True)
class Obj:
    ref: Ref
    kind: str
    space: Value | None  # the IOAS it lives on (a Ref to it), if any
    live: bool = True  # its op succeeded (as far as the model can tell)


@dataclass(frozen=True)
class MapRec:
    space: Value | str  # the IOAS (a Ref) or "compat"
    iova: Value
    length: Value
    uptr: Value | None
    live: bool = True
    unaligned: bool = False  # some of its IOVA, length or user address is not page aligned


@dataclass(frozen=True)
class Picked:
    """The mapping an Iova argument was drawn from, and the offset added to its IOVA."""

    map: MapRec
    off: int


@dataclass
class Context:
    """The objects, mappings and program-wide states the ops so far leave.

    The reference model is stepped along as ops are added, so an object whose op
    fails (a map of unmapped memory, a device on an IOAS with a reserved range in
    the aperture...) is known to be dead: generation builds on what exists, and
    uses what does not only on purpose. Where the model is unsure the op counts as
    having worked; the kernel decides when the program runs."""

    objs: list[Obj] = field(default_factory=list)
    maps: list[MapRec] = field(default_factory=list)
    states: set[str] = field(default_factory=set)
    compat: Value | None = None  # the IOAS VFIO_IOAS SET made the compat IOAS
    model: Model | None = None

    @classmethod
    def of(cls, prog: Program, upto: int | None = None) -> Context:
        ctx = cls(model=Model(prog))
        for i in range(len(prog.ops) if upto is None else upto):
            ctx.record(prog, i)
        return ctx

    def of_kinds(self, kinds: tuple[str, ...], live: bool = True) -> list[Obj]:
        return [o for o in self.objs if o.live == live and any(is_kind(o.kind, k)
                                                                for k in kinds)]

    def space_of(self, v: Value | None) -> Value | None:
        """The IOAS an argument value stands for: the IOAS itself, or the IOAS an
        object (HWPT, access, device) lives on."""
        if not isinstance(v, Ref):
            return v
        for o in self.objs:
            if o.ref == v:
                return o.ref if is_kind(o.kind, "ioas") else o.space
        return v

    def alignment(self, space: Value | str | None) -> int:
        """The IOVA alignment of the IOAS a space stands for, as the model has it (1: no
        domain, access or disabled large pages: maps at byte granularity); PAGE if the
        model cannot tell."""
        m = self.model
        if m is None or not isinstance(space, Ref) or space.op >= len(m.results):
            return PAGE
        oid = m.results[space.op].out.get(space.field)
        obj = m.objects.get(oid) if isinstance(oid, int) else None
        iopt = getattr(obj, "iopt", None)
        return iopt.iova_alignment if iopt is not None else PAGE

    def has_maps(self, ref: Ref) -> bool:
        return any(mp.space == ref and mp.live for mp in self.maps)

    def worked(self, prog: Program, i: int) -> bool:
        if self.model is None:
            return True
        if self.model.program is not prog or len(self.model.results) != i:
            self.model = Model(prog)  # an edited program: replay the prefix
            for j in range(i):
                self.model.step(j)
        r = self.model.step(i)
        return r.errno == 0 or r.unsure is not None

    def record(self, prog: Program, i: int) -> None:
        op = prog.ops[i]
        d = op.desc
        live = self.worked(prog, i)
        for out in d.outs:
            if not out.kind:
                continue
            kind = out.kind
            for r in out.refine:
                if all(isinstance(op.args.get(a, 0), int)
                       and op.args.get(a, 0) & mask == value  # type: ignore[operator]
                       for a, mask, value in r.when):
                    kind = r.kind
            space = self.space_of(op.args.get(out.on)) if out.on else None
            self.objs.append(Obj(Ref(i, out.name), kind, space, live))
        if d.maps is not None:
            m = d.maps
            space: Value | str | None = self.compat if m.space == "compat" else \
                self.space_of(op.args.get(m.space))
            iova = Ref(i, m.iova) if d.out(m.iova) is not None else op.args.get(m.iova, 0)
            src = op.args.get(m.uptr) if m.uptr else None
            length = op.args.get(m.length, 0)
            unaligned = any(isinstance(v, int) and v % PAGE for v in (iova, length)) or \
                isinstance(src, BufPtr) and src.offset % PAGE != 0
            if space is not None:
                self.maps.append(MapRec(space, iova, length, src, live, unaligned))
        for p in d.provides:
            if live and all(op.args.get(k) == v for k, v in p.when) and all(
                    any(o.ref == op.args.get(k) and is_kind(o.kind, kind) for o in self.objs)
                    for k, kind in p.kinds):
                self.states.add(p.state)
                if p.state == "compat_ioas":
                    self.compat = op.args.get("ioas_id")


WEIGHTED = sorted(OPS)


class Generator:
    """Builds programs, or single ops onto a program, from the descriptions."""

    def __init__(self, ch: Chooser, max_ops: int = 24, counts: Counts | None = None,
                 build: bool = True) -> None:
        self.ch = ch
        self.max_ops = max_ops
        self.counts = counts
        # build: append what an op needs (objects, mappings, states) when it is missing.
        # The hypothesis machine says no: its own rules make those, one step each, so
        # its shrinker can take any of them away.
        self.build = build
        self.careful = False  # set while appending an op another one needs
        self.drawn: list[list[tuple[str, str]]] = []  # per op being appended: (arg, category)
        self.cum: list[int] = []
        total = 0
        for n in WEIGHTED:
            total += OPS[n].weight
            self.cum.append(total)

    # small helpers ------------------------------------------------------------------
    def chance(self, num: int, den: int) -> bool:
        """True with probability num/den. A draw of 0 gives the likelier outcome, so a
        shrinking chooser (hypothesis) moves towards the ordinary program."""
        r = self.ch.below(den)
        return r < num if 2 * num >= den else r >= den - num

    def odd(self, num: int, den: int) -> bool:
        """A deliberate oddity (a wrong kind, a made-up id, an unknown bit, a malformed
        size...) with probability num/den - never while building what another op
        needs, which should simply work."""
        return not self.careful and self.chance(num, den)

    def pick(self, seq: Any) -> Any:
        return seq[self.ch.below(len(seq))]

    def pick_op(self) -> str:
        r = self.ch.below(self.cum[-1])
        for n, c in zip(WEIGHTED, self.cum):
            if r < c:
                return n
        return WEIGHTED[-1]

    def count(self, d: OpDesc, arg: str, category: str) -> None:
        if self.counts is not None:
            self.counts.add(d.name, arg, category)
            if self.drawn:
                self.drawn[-1].append((arg, category))

    # programs -------------------------------------------------------------------------
    def program(self) -> Program:
        # buffer 0 is plain memory every op can pin; the others are any kind
        first = Buffer(PAGE * self.pick((16, 4, 64, 256)), "anon", self.ch.below(256)) \
            if not self.chance(1, 8) else Buffer(HUGE_PAGE, "hugetlb", self.ch.below(256))
        prog = Program([], [first] + [self.buffer() for _ in range(self.ch.below(3))])
        if self.odd(1, 8):
            prog.creds = self.creds()
        ctx = Context(model=Model(prog))
        n = 1 + self.ch.below(self.max_ops)
        firsts = [(d, f) for d in OPS.values() for f in d.forms if f.first]
        if firsts and self.odd(1, 24):  # what only works on an empty iommufd
            d, f = self.pick(firsts)
            self.drawn.append([])
            self.count(d, "", f"{EDGE}the program's first op: {f.name}")
            first = self.drawn.pop()
            i = self.append(prog, ctx, d.name, types=dict(f.args))
            if self.counts is not None:
                self.counts.mark(i, first)
        # Most programs start with an IOAS: nearly everything needs one.
        if self.chance(7, 8):
            self.append(prog, ctx, "IOAS_ALLOC")
        while len(prog.ops) < n:
            self.append(prog, ctx, self.pick_op())
        return prog

    def creds(self) -> Creds:
        """Who runs the program: without CAP_IPC_LOCK its pins are charged to an
        RLIMIT_MEMLOCK of a few pages (pages.c's accounting, ENOMEM past it); now and
        then without CAP_SYS_RESOURCE too (IOMMU_OPTION_RLIMIT_MODE's EPERM)."""
        drop = ("CAP_IPC_LOCK",) if not self.chance(1, 4) else \
            self.pick((("CAP_IPC_LOCK", "CAP_SYS_RESOURCE"), ("CAP_SYS_RESOURCE",)))
        memlock = self.pick((PAGE * 4, PAGE * 16, PAGE, 0, PAGE * 64, PAGE * 3 + 1, U64_MAX))
        return Creds(drop, memlock)

    def buffer(self) -> Buffer:
        # hugetlb now and then on its own: the one memory whose physical contiguity is
        # known, so large IO pages (a HUGE_IOVA mock domain's 1M) are predictable
        kind = "hugetlb" if self.chance(1, 8) else \
            self.pick(BUFFER_KINDS) if self.chance(1, 3) else "anon"
        unit = HUGE_PAGE if kind == "hugetlb" else PAGE
        # Small buffers mostly: every page is faulted in and filled in the guest,
        # which under TCG with KASAN costs far more than the ioctls themselves.
        size = unit * self.pick((1, 2, 4, 8, 16, 16, 64, 256) if unit == PAGE else (1,))
        holes = []
        if kind != "hole" and size >= 4 * unit and self.chance(1, 6):
            off = unit * (1 + self.ch.below(size // unit - 2))
            holes.append((off, unit))
        return Buffer(size, kind, self.ch.below(256), holes)

    def append(self, prog: Program, ctx: Context, name: str, force: Force | None = None,
               depth: int = 0, preset: dict[str, Value] | None = None,
               types: dict[str, Any] | None = None) -> int:
        """Append op `name` (after whatever it needs, when that is missing); returns
        its index. `force`: argument -> (mask, value) the caller needs the argument to
        have; `preset`: argument values decided elsewhere (the hypothesis machine's
        objects); `types`: argument types to draw from instead of the description's
        (a form's, or what a state needs)."""
        d = OPS[name]
        careful, self.careful = self.careful, depth > 0
        self.drawn.append([])
        try:
            i = self._append(prog, ctx, d, force or {}, depth, preset, types)
            if self.counts is not None:
                self.counts.mark(i, self.drawn[-1])
            return i
        finally:
            self.drawn.pop()
            self.careful = careful

    def form(self, d: OpDesc, force: Force, types: dict[str, Any] | None) -> dict[str, Any]:
        """A form of the op (its arguments' types) that agrees with what is forced, or
        none: mostly a form, sometimes the plain description, which mixes them."""
        if types is not None or not d.forms or self.odd(1, 4):
            return dict(types or {})
        fits = [f for f in d.forms if not f.first
                and all(not isinstance(t, Const) or k not in force
                        or t.value & force[k][0] == force[k][1] for k, t in f.args)]
        if not fits:
            return {}
        r = self.ch.below(sum(f.weight for f in fits))
        for f in fits:
            r -= f.weight
            if r < 0:
                self.count(d, "", f"form: {f.name}")
                return dict(f.args)
        return {}

    def _append(self, prog: Program, ctx: Context, d: OpDesc, force: Force, depth: int,
                preset: dict[str, Value] | None, types: dict[str, Any] | None) -> int:
        name = d.name
        for state in d.needs:
            if state not in ctx.states and self.build and depth < MAX_DEPTH \
                    and self.chance(7, 8):
                self.provide(prog, ctx, state, depth + 1)
                self.count(d, "", f"need {state}: built")
        overrides = self.form(d, force, types)
        args: dict[str, Value] = {}
        picked: dict[str, Picked | tuple[int, int]] = {}  # what related arguments drew
        for arg in sorted(d.args, key=_order):
            if preset and arg.name in preset:
                args[arg.name] = preset[arg.name]
                continue
            if arg.name in overrides:
                t = overrides[arg.name]
                if isinstance(t, Const) and isinstance(arg.type, Enum):
                    self.count(d, arg.name, f"named {arg.type.enum.spell(t.value) or t.value}")
                arg = replace(arg, type=t)
            v = self.arg(prog, ctx, d, arg, args, picked, depth)
            if isinstance(v, int):
                v %= 1 << (8 * arg.width)  # sums and offsets wrap as the field does
            if v is not None:
                args[arg.name] = v
        for k, (mask, value) in force.items():
            old = args.get(k, 0)
            args[k] = ((old if isinstance(old, int) else 0) & ~mask) | value
        self.fixed_iova(d, args)
        self.malform(d, args)
        prog.ops.append(Op(name, {a.name: args[a.name] for a in d.args if a.name in args}
                           | {k: v for k, v in args.items() if d.arg(k) is None}))
        i = len(prog.ops) - 1
        ctx.record(prog, i)
        return i

    def provide(self, prog: Program, ctx: Context, state: str, depth: int) -> None:
        cands = [(d, p) for d in OPS.values() for p in d.provides if p.state == state]
        if cands:
            d, p = self.pick(cands)
            self.append(prog, ctx, d.name, {k: (ALL, v) for k, v in p.when}, depth,
                        types={k: Res((kind,)) for k, kind in p.kinds} or None)

    def produce(self, prog: Program, ctx: Context, kinds: tuple[str, ...],
                depth: int) -> Obj | None:
        """Append an op that creates an object of one of `kinds`; the new object."""
        cands: list[tuple[OpDesc, Force]] = []
        for d in OPS.values():
            for out in d.outs:
                if out.kind is None:
                    continue
                if any(is_kind(out.kind, k) for k in kinds):
                    cands.append((d, {}))
                for r in out.refine:
                    if any(is_kind(r.kind, k) for k in kinds):
                        cands.append((d, {a: (mask, value) for a, mask, value in r.when}))
        if not cands:
            return None
        r = self.ch.below(sum(d.weight for d, _ in cands))
        k = 0
        while r >= cands[k][0].weight:
            r -= cands[k][0].weight
            k += 1
        d, force = cands[k]
        before = len(ctx.objs)
        self.append(prog, ctx, d.name, force, depth)
        made = [o for o in ctx.objs[before:] if any(is_kind(o.kind, k) for k in kinds)]
        return made[0] if made else None

    def produce_mapping(self, prog: Program, ctx: Context, space: Value | str,
                        depth: int) -> MapRec | None:
        """Append an op that maps something into IOVA space `space` (an IOAS ref, or
        "compat"); the new mapping."""
        cands = [d for d in OPS.values() if d.maps is not None
                 and (d.maps.space == "compat") == (space == "compat")
                 and not any(isinstance(a.type, Iova) and a.name != d.maps.iova
                             for a in d.args)]
        if not cands:
            return None
        d = self.pick(cands)
        assert d.maps is not None
        preset = {} if space == "compat" else {d.maps.space: space}
        before = len(ctx.maps)
        self.append(prog, ctx, d.name, depth=depth, preset=preset)  # type: ignore[arg-type]
        return ctx.maps[before] if len(ctx.maps) > before else None

    # arguments ------------------------------------------------------------------------
    def arg(self, prog: Program, ctx: Context, d: OpDesc, arg: Arg, args: dict[str, Value],
            picked: dict[str, Any], depth: int) -> Value | None:
        t = arg.type
        top = (1 << (8 * arg.width)) - 1
        if isinstance(t, INT_SLOTS) and self.odd(1, 50 if isinstance(t, USUAL_REF_SLOTS) else 80):
            ref = self.int_ref(prog)
            if ref is not None:  # a ref in an integer slot: any output, as any integer
                self.count(d, arg.name, f"{EDGE}a ref in {_slot(t)}")
                return ref
        if isinstance(t, Reserved):
            if self.odd(1, 40):
                self.count(d, arg.name, f"{EDGE}a reserved field set")
                return self.pick((1, 1 << (8 * arg.width - 1), top))
            return None
        if isinstance(t, Output):
            if self.odd(1, 40):
                self.count(d, arg.name, f"{EDGE}an output set on input")
                return self.pick((1, top))
            return None
        if isinstance(t, Const):
            return t.value
        if arg.name in filled_in(d) and not self.odd(1, 8):
            self.count(d, arg.name, "filled in by the executor")
            return None  # a count, length or pointer the executor sets to match its arrays
        if isinstance(t, InSide):  # a field of a side array: a value like any other
            inner = replace(arg, type=t.type if t.type is not None else Int())
            return self.arg(prog, ctx, d, inner, args, picked, depth)
        if isinstance(t, Entries):
            return self.entries(d, arg, t)
        if isinstance(t, Count):
            if not self.odd(1, 4):
                self.count(d, arg.name, "default")
                return None
            esize = _esize(d, t.of)
            v = self.pick((0, 1, esize - 1, esize, 2 * esize, esize + 1, 1 << 20, top))
            self.count(d, arg.name, "a whole entry" if v == esize else f"{EDGE}count {v:#x}")
            return v
        if isinstance(t, Res):
            return self.res(prog, ctx, d, arg, t, depth)
        if isinstance(t, Flags):
            v = 0
            for _, bit in t.flags.bits:
                if self.careful and not bit & (t.usual | t.free):
                    continue  # what another op needs: the plain call, forced bits aside
                if self.odd(1, 8) if bit & t.rare else \
                        self.chance(7, 8) if bit & t.usual else self.chance(2, 3):
                    v |= bit
            cat = "known bits" if v else "0"
            if t.flags.bits and v == t.flags.mask:
                cat = "all known bits"
            if self.odd(1, 20):
                v |= 1 << self.ch.below(8 * arg.width)
                cat = f"{EDGE}an unknown bit"
            elif self.odd(1, 40):
                v = top
                cat = f"{EDGE}all bits"
            self.count(d, arg.name, cat)
            return v
        if isinstance(t, Enum):
            if t.enum.values and not self.odd(1, 8):
                name, v = self.pick(t.enum.values)
                self.count(d, arg.name, f"named {name}")
                return v
            v = self.pick((0, 1, 2, 3, 16, top, top >> 1, len(t.enum.values)))
            self.count(d, arg.name, f"{EDGE}an unnamed enum value")
            return v
        if isinstance(t, Uptr) and (t.side or t.scratch) and not self.odd(1, 6):
            self.count(d, arg.name, "the executor's memory")
            return None  # the side array or scratch mapping it defaults to
        if isinstance(t, Uptr):
            return self.uptr(prog, d, arg, t, picked)
        if isinstance(t, Ranges):
            self.count(d, arg.name, "ranges")
            return [self.range() for _ in range(self.ch.below(3))]
        if isinstance(t, Capacity):
            if self.chance(1, 2):
                self.count(d, arg.name, "default")
                return None
            v = self.pick((0, 1, 2, 8, 4096, top))
            self.count(d, arg.name, f"{EDGE}capacity {v:#x}" if v in (0, top) else "value")
            return v
        if isinstance(t, Iova):
            return self.iova(prog, ctx, d, arg, t, args, picked, depth)
        if isinstance(t, Len):
            return self.length(prog, d, arg, t, picked)
        assert isinstance(t, Int), t
        if t.values and not self.odd(1, 4):
            # the first listed value is the usual one (the mock's 2K page, a whole entry)
            v = t.values[0] if self.careful or self.chance(1, 2) else self.pick(t.values)
            self.count(d, arg.name, f"listed {v:#x}")
            return v
        v = self.pick(INTERESTING_U64) if arg.width == 8 else self.pick((0, 1, 2, top, top - 1))
        self.count(d, arg.name, f"{EDGE}integer {_int_edge(v & top, top)}")
        return v & top

    def int_ref(self, prog: Program) -> Ref | None:
        """A ref to some integer output of an earlier op, plus a small addend."""
        ints = [(j, o.name) for j, op in enumerate(prog.ops) for o in op.desc.outs if o.is_int]
        if not ints:
            return None
        j, name = self.pick(ints)
        return Ref(j, name, self.pick((0, 0, 1, -1, PAGE)))

    def edge(self, prog: Program, d: OpDesc, arg: Arg) -> Value | None:
        """A boundary value for any argument, without context (the mutator's): a raw or
        buffer-relative user address, an IOVA or length off the usual grid, an unknown
        flag or enum value, a reserved field set, or a ref."""
        t = arg.type.type if isinstance(arg.type, InSide) and arg.type.type else arg.type
        top = (1 << (8 * arg.width)) - 1
        if isinstance(t, INT_SLOTS) and self.chance(1, 6):
            ref = self.int_ref(prog)
            if ref is not None:
                self.count(d, arg.name, f"{EDGE}a ref in {_slot(t)}")
                return ref
        if isinstance(t, Uptr):
            return self.uptr_edge(prog, d, arg, {})
        if isinstance(t, Iova):
            if self.chance(1, 2):
                v = APERTURE_START + PAGE * self.ch.below(64) + self.pick(BYTE_OFFSETS)
                self.count(d, arg.name, f"{EDGE}a byte-granular IOVA")
                return v
            v = self.pick(IOVAS)
            self.count(d, arg.name, f"{EDGE}IOVA {_int_edge(v, top)}")
            return v
        if isinstance(t, Len):
            if self.chance(1, 2):
                v = PAGE * self.ch.below(4) + self.pick(BYTE_OFFSETS)
                self.count(d, arg.name, f"{EDGE}a byte-granular length")
                return v
            v = self.pick(LENGTHS)
            self.count(d, arg.name, f"{EDGE}length {_int_edge(v, top)}")
            return v
        if isinstance(t, Reserved):
            self.count(d, arg.name, f"{EDGE}a reserved field set")
            return self.pick((1, top))
        if isinstance(t, Flags):
            self.count(d, arg.name, f"{EDGE}an unknown bit")
            return (1 << self.ch.below(8 * arg.width)) | (t.flags.mask if self.chance(1, 2) else 0)
        if isinstance(t, Enum):
            self.count(d, arg.name, f"{EDGE}an unnamed enum value")
            return self.pick((len(t.enum.values), top, top >> 1, 16))
        if isinstance(t, (Int, Capacity, Count, Output)):
            v = self.pick(INTERESTING_U64) & top
            self.count(d, arg.name, f"{EDGE}integer {_int_edge(v, top)}")
            return v
        return None

    def res(self, prog: Program, ctx: Context, d: OpDesc, arg: Arg, t: Res,
            depth: int) -> Value:
        have = ctx.of_kinds(t.kinds)
        if self.careful and self.build and have and "ioas" in t.kinds and depth < MAX_DEPTH \
                and self.chance(1, 2):
            # what another op needs is built on a fresh IOAS half the time: one that
            # earlier ops filled is often no place for it (a mapping below the mock
            # aperture keeps a mock domain out, unaligned areas keep an access out)
            made = self.produce(prog, ctx, ("ioas",), depth + 1)
            if made is not None:
                self.count(d, arg.name, "a fresh IOAS made for it")
                return made.ref
        if have and not self.odd(1, 16):
            o = self.pick(have)
            self.count(d, arg.name, "object" if not is_kind(o.kind, "ioas") else
                       "an IOAS with mappings" if ctx.has_maps(o.ref) else "an empty IOAS")
            return o.ref
        if not have and self.build and depth < MAX_DEPTH and not self.odd(1, 4):
            made = self.produce(prog, ctx, t.kinds, depth + 1)
            if made is not None:
                self.count(d, arg.name, "object made for it")
                return made.ref
        dead = ctx.of_kinds(t.kinds, live=False)
        if dead and self.chance(1, 3):
            self.count(d, arg.name, "an object that failed to be made")
            return self.pick(dead).ref
        others = [o.ref for o in ctx.objs]
        if others and self.chance(1, 2):
            self.count(d, arg.name, "object of another kind")
            return self.pick(others)
        self.count(d, arg.name, "made-up id")
        return self.pick(ID_LITERALS)

    def iova(self, prog: Program, ctx: Context, d: OpDesc, arg: Arg, t: Iova,
             args: dict[str, Value], picked: dict[str, Any], depth: int) -> Value | None:
        if t.fixed and self.chance(1, 2):
            self.count(d, arg.name, "automatic")
            return None
        space = ctx.compat if t.space == "compat" else ctx.space_of(args.get(t.space))
        if t.new and ctx.alignment(space) == 1 and self.odd(1, 5):
            # the IOAS maps at byte granularity: IOVA, length and user address off the
            # page grid (the IOVA only if it is given)
            picked[BYTES] = True
            if t.fixed and self.chance(1, 3):
                self.count(d, arg.name, f"{EDGE}automatic, at byte granularity")
                return None
            self.count(d, arg.name, f"{EDGE}a byte-granular IOVA")
            return APERTURE_START + PAGE * self.ch.below(256) + self.pick(BYTE_OFFSETS)
        maps = [m for m in ctx.maps if m.space == space and (m.live or self.odd(1, 4))] \
            if space is not None else []
        if not maps and space is not None and self.build and depth < MAX_DEPTH \
                and not self.odd(1, 4):
            made = self.produce_mapping(prog, ctx, space, depth + 1)
            if made is not None:
                maps = [made]
                self.count(d, arg.name, "a mapping made for it")
        if t.new and maps and not self.odd(1, 8):
            m = self.pick(maps)
            if isinstance(m.length, int) and isinstance(m.iova, Ref):
                self.count(d, arg.name, "just past a mapping")
                return Ref(m.iova.op, m.iova.field, wrap64(m.iova.add + m.length))
        if t.new and not self.odd(1, 4):
            if self.chance(1, 4):  # where a large IO page can go (MOCK_HUGE_PAGE_SIZE, 2M)
                self.count(d, arg.name, "in the mock aperture, huge page aligned")
                return APERTURE_START + MOCK_HUGE_PAGE * self.ch.below(64)
            self.count(d, arg.name, "in the mock aperture")
            return APERTURE_START + PAGE * self.ch.below(1024)
        if maps and not self.odd(1, 4):
            m = self.pick(maps)
            off = self.pick((PAGE, MOCK_PAGE, -PAGE, 1)) if self.odd(1, 8) else 0
            picked[arg.name] = Picked(m, off)
            self.count(d, arg.name, f"{EDGE}a byte-granular mapping's IOVA" if m.unaligned else
                       "a mapping's" if not off else "a mapping's + offset")
            if isinstance(m.iova, Ref):
                return Ref(m.iova.op, m.iova.field, wrap64(m.iova.add + off))
            return (m.iova + off) % (1 << 64) if isinstance(m.iova, int) else m.iova
        if not self.odd(1, 4):
            self.count(d, arg.name, "in the mock aperture")
            return APERTURE_START + PAGE * self.ch.below(64)
        v = self.pick(IOVAS)
        self.count(d, arg.name, f"{EDGE}IOVA {_int_edge(v, U64_MAX)}")
        return v

    def length(self, prog: Program, d: OpDesc, arg: Arg, t: Len,
               picked: dict[str, Any]) -> Value:
        """Mostly the extent of what the related argument picked. The branch and a page
        count are one decision, branch 0 taking the page count: a shrinker lowering
        that one value lands on the smallest page count that matters, not on another
        branch that happens to need fewer decisions."""
        rel = picked.get(t.of)
        r, count = divmod(self.ch.below(256), 64)
        if picked.get(BYTES) and r < 3:
            self.count(d, arg.name, f"{EDGE}a byte-granular length")
            return PAGE * (count % 4) + self.pick(BYTE_OFFSETS)
        if isinstance(rel, Picked) and r < 3 and isinstance(rel.map.length, int):
            self.count(d, arg.name, "the mapping's")
            left = max(rel.map.length - max(rel.off, 0), 1)  # from the IOVA to the end
            return (PAGE * (1 + count % max(left // PAGE, 1)), left, left,
                    self.pick((left + PAGE, max(left - MOCK_PAGE, 1))))[r]
        if isinstance(rel, Picked) and r < 3:
            self.count(d, arg.name, "the mapping's")
            return rel.map.length
        if isinstance(rel, tuple) and r < 3:  # (buffer size, offset) of a Uptr
            size, off = rel
            rest = max(size - off, 1)
            self.count(d, arg.name, "the buffer's")
            return (PAGE * (1 + count % max(rest // PAGE, 1)), rest,
                    self.pick((rest >> 1, rest + PAGE, rest - MOCK_PAGE)))[r]
        if r == 0:
            self.count(d, arg.name, "pages")
            return PAGE * (1 + count)
        if prog.buffers and r < 3:
            self.count(d, arg.name, "a buffer's size")
            return prog.buffers[self.ch.below(len(prog.buffers))].size >> self.ch.below(3)
        v = self.pick(LENGTHS)
        self.count(d, arg.name, f"{EDGE}length {_int_edge(v, U64_MAX)}")
        return v

    def uptr(self, prog: Program, d: OpDesc, arg: Arg, t: Uptr,
             picked: dict[str, Any]) -> Value:
        rel = picked.get(t.of)
        if isinstance(rel, Picked) and rel.map.uptr is not None and self.chance(3, 4):
            self.count(d, arg.name, "the mapping's memory")
            u = rel.map.uptr
            if isinstance(u, BufPtr) and rel.off:
                return BufPtr(u.buf, u.offset + rel.off)  # the same place the IOVA moved to
            return u
        if not prog.buffers or self.odd(1, 10):
            return self.uptr_edge(prog, d, arg, picked)
        good = [i for i, b in enumerate(prog.buffers) if b.kind in ("anon", "memfd", "hugetlb")
                and not b.holes]
        b = self.pick(good) if self.careful and good else self.ch.below(len(prog.buffers))
        size = prog.buffers[b].size
        if picked.get(BYTES):
            self.count(d, arg.name, f"{EDGE}a byte-granular user address")
            off = self.pick(BYTE_OFFSETS)
        elif self.chance(3, 4):
            self.count(d, arg.name, "a buffer")
            off = 0
        else:
            self.count(d, arg.name, "inside a buffer")
            off = self.pick((PAGE, MOCK_PAGE, 1, 64, size // 2 // PAGE * PAGE))
        picked[arg.name] = (size, off)
        return BufPtr(b, off)

    def uptr_edge(self, prog: Program, d: OpDesc, arg: Arg, picked: dict[str, Any]) -> Value:
        """A user address off the usual: a raw one (NULL, unmapped, the top of the address
        space, non-canonical) or one at a program buffer's edge (across or just past its
        end, in a hole, a buffer that is all hole)."""
        edges: list[tuple[str, Any]] = []
        for i, b in enumerate(prog.buffers):
            edges.append(("crossing a buffer's end",
                          (i, b.size, b.size - self.pick((PAGE, MOCK_PAGE, 1)))))
            edges.append(("just past a buffer's end", (i, b.size, b.size)))
            if b.holes:
                edges.append(("in a buffer's hole", (i, b.size, b.holes[0][0])))
            if b.kind == "hole":
                edges.append(("a buffer of nothing", (i, b.size, 0)))
            if b.kind == "readonly":
                edges.append(("a read-only buffer", (i, b.size, 0)))
        if not edges or self.chance(1, 2):
            name, v = self.pick(UPTR_EDGES)
            self.count(d, arg.name, f"{EDGE}uptr: {name}")
            return v
        name, (i, size, off) = self.pick(edges)
        self.count(d, arg.name, f"{EDGE}uptr: {name}")
        picked[arg.name] = (size, off)
        return BufPtr(i, off)

    def entries(self, d: OpDesc, arg: Arg, t: Entries) -> list[list[int]]:
        """A few entries for a side array, each field drawn by its type."""
        widths = list_widths(d, arg.name) or ()
        out = []
        careful = self.careful
        for _ in range(self.ch.below(4)):
            entry = []
            # one odd entry spoils the whole array: most entries are plain ones
            self.careful = careful or not self.odd(1, 4)
            for k, w in enumerate(widths):
                ft = t.fields[k] if k < len(t.fields) else Int()
                v = self.arg(Program(), Context(), d, Arg(f"{arg.name}[{k}]", "", ft, w), {},
                             {}, MAX_DEPTH)
                entry.append((v if isinstance(v, int) else 0) % (1 << (8 * w)))
            out.append(entry)
        self.careful = careful
        self.count(d, arg.name, f"{len(out)} entries")
        return out

    def range(self) -> list[int]:
        start = self.pick((0, APERTURE_START, 1 << 32, PAGE, HUGE_PAGE, MOCK_PAGE, 1))
        length = self.pick((PAGE, 1 << 20, 1 << 30, MOCK_PAGE, 1, U64_MAX))
        return [start, min(start + length - 1, U64_MAX)]

    def fixed_iova(self, d: OpDesc, args: dict[str, Value]) -> None:
        """An IOVA left out goes with the flag that says "choose one"; one given goes
        with the flag that says "use it" - mostly; the mismatched pairs are paths too."""
        for arg in d.args:
            t = arg.type
            if not isinstance(t, Iova) or not t.fixed:
                continue
            flag_arg, bit = t.fixed
            flags = args.get(flag_arg)
            if not isinstance(flags, int) or self.odd(1, 8):
                continue
            args[flag_arg] = flags | bit if arg.name in args else flags & ~bit

    def malform(self, d: OpDesc, args: dict[str, Value]) -> None:
        if d.call in ("iommufd", "test") and self.odd(1, 30):
            args["size"] = self.pick((0, 4, 8, 16, 200))
            self.count(d, "size", f"{EDGE}a struct size of {args['size']}")
            if self.chance(1, 2):
                args["tail"] = 1


INT_SLOTS = (Int, Len, Capacity, Iova, Flags, Enum, Count, Reserved, Output)
USUAL_REF_SLOTS = (Int, Len, Capacity, Iova)  # where refs make the most sense: more often


def _slot(t: object) -> str:
    return {Int: "an integer", Len: "a length", Capacity: "a capacity", Iova: "an IOVA",
            Flags: "flags", Enum: "an enum", Count: "a byte count", Reserved: "a reserved field",
            Output: "an output"}.get(type(t), "an integer")


def _int_edge(v: int, top: int) -> str:
    """A bucket for a boundary integer (the tables stay short)."""
    if v == 0:
        return "0"
    if v == top:
        return "all ones"
    if v == top - 1 or v == top - PAGE + 1:
        return "near all ones"
    if v & (v - 1) == 0:
        return "a power of two"
    if v & (v + 1) == 0:
        return "2^k - 1"
    if v < PAGE:
        return "small, unaligned"
    return "page aligned" if v % PAGE == 0 else "other"


def _order(arg: Arg) -> int:
    """Objects first, then IOVAs (which look at the objects), then user pointers and
    lengths (which look at both), then the rest."""
    t = arg.type
    if isinstance(t, Res):
        return 0
    if isinstance(t, Iova):
        return 1
    if isinstance(t, Uptr):
        return 2
    if isinstance(t, Len):
        return 3
    return 4


@cache
def filled_in(d: OpDesc) -> frozenset[str]:
    """Arguments the executor fills in to match its side arrays when they are left
    out (counts, entry lengths, the pointer a capacity is for): left out mostly."""
    out: set[str] = set()
    for a in d.args:
        t = a.type
        if isinstance(t, Ranges):
            out.add(t.count)
        elif isinstance(t, Entries):
            out.update(x for x in (t.count, t.length) if x)
        elif isinstance(t, Capacity):
            out.add(t.array)
    return frozenset(out)


def _esize(d: OpDesc, pointer: str) -> int:
    a = d.arg(pointer)
    t = a.type if a is not None else None
    return uapi.sizeof(t.side) if isinstance(t, Uptr) and t.side else 8


def _ref_parts(r: Ref) -> tuple[int, str]:
    return r.op, r.field


def generate(seed: int, max_ops: int = 24, counts: Counts | None = None) -> Program:
    return Generator(RandomChooser(seed), max_ops, counts).program()
