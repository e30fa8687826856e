"""The one layout plan of an op's call: how big the memory behind its struct is, what
goes past its natural size, which side arrays sit next to it and what they hold,
which arguments the executor fills in, what it captures after the call. The encoder
lays the arena out by it, the reproducer emitters print the same layout in Python
and C, and the model replays the kernel's copies on it, so the three agree by
construction.

Calls without a struct (by-value ioctls, close, read/write) are planned the same
way: their "struct" is the block of arguments the executor reads (Arg.offset).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fuzz import uapi
from fuzz.prog.ir import SCRATCH_ADDR, Op, pattern_bytes
from fuzz.prog.limits import MAX_SIDE_BYTES, MAX_SIDE_ENTRIES, MAX_STRUCT
from fuzz.prog.types import (
    Capacity,
    Count,
    Entries,
    InSide,
    OpDesc,
    Ranges,
    Uptr,
)


@dataclass
class Side:
    """A side array the executor provides next to an op's struct."""

    arg: str  # the argument whose default it is (a pointer, or a Ranges list)
    field: str  # the struct field that holds its address ("" in a call without a struct)
    ctype: str  # its element type, e.g. "struct iommu_iova_range"
    entries: int  # entries the op works with
    items: list[list[Any]]  # initial entries, each its fields in order (ints or Refs)
    points: bool  # the executor sets the pointer to it (else the program gave one)
    nbytes: int | None = None  # its size when that is not whole entries (read buffers)

    @property
    def alloc(self) -> int:
        """Entries of real memory: at least one, so the address is always valid."""
        return max(self.entries, 1)

    @property
    def size(self) -> int:
        return self.nbytes if self.nbytes is not None else uapi.sizeof(self.ctype) * self.alloc


@dataclass
class Scratch:
    """A mapping of the executor's own that an argument defaults to (Uptr.scratch)."""

    arg: str
    size: int


@dataclass
class StructPlan:
    """How one call is laid out: the decisions the encoder makes and the emitted
    reproducers must make identically (so they are made here, once)."""

    natural: int  # sizeof the struct (or of the argument block)
    size: Any  # the value put in size/argsz (int or Ref)
    size_is_default: bool
    real: int  # bytes of memory actually provided for the struct
    extra: int = 0  # bytes past sizeof the default size includes (vfio cap space)
    tail: int = 0  # byte written past the natural size (E2BIG path)
    tail_len: int = 0
    sides: list[Side] = field(default_factory=list)
    scratch: list[Scratch] = field(default_factory=list)
    capture_len: Any = None  # bytes the executor captures after the call (int or Ref)
    args: dict[str, Any] = field(default_factory=dict)  # fields still to set

    def side(self, name: str) -> Side | None:
        """The side array behind argument (or struct field) `name`."""
        for s in self.sides:
            if name in (s.arg, s.field):
                return s
        return None


def entry_fields(ctype: str) -> list[tuple[int, int]]:
    """(offset, width) of each top-level field of a side array's element type."""
    return [uapi.field_offset(ctype, f) for f in entry_names(ctype)]


def entry_names(ctype: str) -> list[str]:
    return [f for f in uapi.fields(ctype) if "." not in f]


def block_size(d: OpDesc) -> int:
    """The argument block of a call without a struct."""
    return max([8] + [a.offset + a.width for a in d.args if not _in_side(a.type)])


def where(d: OpDesc, name: str) -> tuple[int, int]:
    """(offset, width) of an argument in the call's struct or argument block."""
    if d.is_struct:
        return uapi.field_offset(d.struct, d.path(name))
    a = d.arg(name)
    assert a is not None, (d.name, name)
    return a.offset, a.width


def _in_side(t: object) -> bool:
    return isinstance(t, (InSide, Entries))


def plan_struct(op: Op) -> StructPlan:
    d = op.desc
    args = dict(op.args)
    if d.is_struct:
        natural = uapi.sizeof(d.struct)
        default = natural + d.extra_space
        size_is_default = d.size_field not in args
        size = args.pop(d.size_field, default)
        tail = args.pop("tail", 0)
        real = min(max(natural, size if isinstance(size, int) else natural, default),
                   MAX_STRUCT)
        p = StructPlan(natural, size, size_is_default, real, d.extra_space)
        if tail and isinstance(size, int) and size > natural:
            p.tail = tail & 0xFF
            p.tail_len = min(size, real) - natural
    else:
        natural = block_size(d)
        p = StructPlan(natural, natural, True, natural)
    for a in d.args:
        t = a.type
        if isinstance(t, Ranges):
            ranges = args.get(a.name, [])
            if not isinstance(ranges, list):
                continue  # a literal address, ref or BufPtr: the program points it
            args.pop(a.name, None)
            num = args.get(t.count, len(ranges))
            n = len(ranges)
            if isinstance(num, int) and num <= MAX_SIDE_ENTRIES:
                n = max(n, num)  # extra entries the count claims are zeros
            p.sides.append(Side(a.name, a.path, t.ctype, n, [list(r) for r in ranges], True))
            args.setdefault(t.count, len(ranges))
        elif isinstance(t, Capacity):
            cap = args.setdefault(a.name, t.default)
            # a Ref capacity is only known in the guest: room for the most it may ask
            entries = min(cap, MAX_SIDE_ENTRIES) if isinstance(cap, int) else MAX_SIDE_ENTRIES
            array = d.arg(t.array)
            assert array is not None, (d.name, t.array)
            p.sides.append(Side(array.name, array.path, t.ctype, max(entries, 0), [],
                                t.array not in args))
        elif isinstance(t, Uptr) and t.side:
            p.sides.append(_plan_side(d, a.name, a.path, t, args))
        elif isinstance(t, Uptr) and t.scratch and a.name not in args:
            args[a.name] = SCRATCH_ADDR
            p.scratch.append(Scratch(a.name, t.scratch))
    if d.capture is not None:
        c = d.capture
        if c.bitmap:
            p.capture_len = dirty_bitmap_bytes(args.get(_named(d, c.bitmap[0])),
                                               args.get(_named(d, c.bitmap[1])))
        else:
            p.capture_len = args.get(_named(d, c.length), 0)
    p.args = args
    return p


def _named(d: OpDesc, field_or_arg: str) -> str:
    """The argument behind a struct field path (a capture names fields)."""
    for a in d.args:
        if field_or_arg in (a.name, a.path):
            return a.name
    return field_or_arg


def _plan_side(d: OpDesc, name: str, path: str, t: Uptr, args: dict[str, Any]) -> Side:
    """The side array a Uptr argument defaults to, filled by its InSide and Entries
    arguments; their counts and lengths filled in when the program leaves them out."""
    ctype = t.side
    esize = uapi.sizeof(ctype)
    names = entry_names(ctype)
    items: list[list[Any]] = []
    inside = [a for a in d.args if isinstance(a.type, InSide) and a.type.pointer == name]
    if inside:
        first: list[Any] = [0] * len(names)
        for a in inside:
            first[names.index(a.type.field)] = args.pop(a.name, 0)  # type: ignore[union-attr]
        items.append(first)
    n_claimed = 0
    for a in d.args:
        e = a.type
        if not isinstance(e, Entries) or e.pointer != name:
            continue
        listed = args.pop(a.name, [])
        listed = listed if isinstance(listed, list) else []
        items += [list(x) for x in listed]
        if e.count:
            default = len(items) * esize if e.count_bytes else len(listed)
            claimed = args.setdefault(e.count, default)
            if isinstance(claimed, int):
                k = math.ceil(claimed / esize) if e.count_bytes else claimed
                if 0 <= (claimed if e.count_bytes else k) <= (
                        MAX_SIDE_BYTES if e.count_bytes else MAX_SIDE_ENTRIES):
                    n_claimed = max(n_claimed, k + (0 if e.count_bytes else e.after))
        if e.length:
            args.setdefault(e.length, esize)
    for a in d.args:  # a read/write count left out: the side array's worth
        c = a.type
        if isinstance(c, Count) and c.of == name and a.name not in args:
            args[a.name] = (c.entries or max(len(items), 1)) * esize
    nbytes = None
    if t.size_by:
        v = args.get(t.size_by)
        nbytes = min(max(v, esize), MAX_SIDE_BYTES) if isinstance(v, int) else MAX_SIDE_BYTES
    return Side(name, path, ctype, max(len(items), n_claimed), items, name not in args, nbytes)


def arg_defaults(op: Op) -> dict[str, Any]:
    """The values the executor gives arguments the program leaves out."""
    p = plan_struct(op)
    return {k: v for k, v in p.args.items() if k not in op.args}


def side_image(s: Side, value: Callable[[Any, int], int]) -> bytearray:
    """A side array's initial bytes; `value(v, width)` gives a Ref's (or any value's)
    integer at run time."""
    out = bytearray(s.size)
    esize = uapi.sizeof(s.ctype)
    fields = entry_fields(s.ctype)
    for k, item in enumerate(s.items):
        for (off, width), v in zip(fields, item):
            at = esize * k + off
            if at + width <= len(out):
                out[at:at + width] = (value(v, width) % (1 << (8 * width))).to_bytes(width,
                                                                                     "little")
    return out


def scratch_image(size: int) -> bytes:
    """A scratch mapping's contents before the call (the executor fills every
    mapping with the seed pattern, seed 0 for its own)."""
    return pattern_bytes(0, 0, size)


def dirty_bitmap_bytes(length: Any, page_size: Any) -> int:
    """Bytes of the dirty bitmap the kernel writes for literal length and page_size:
    ((length - 1) >> __ffs(page_size)) / 8 + 1 (iova_bitmap.c); else 0 (nothing is
    captured)."""
    if type(length) is not int or type(page_size) is not int or not length or not page_size:
        return 0
    length %= 1 << 64
    page_size %= 1 << 64
    shift = (page_size & -page_size).bit_length() - 1
    return ((length - 1) >> shift) // 8 + 1


def decode_caps(buf: bytes, cap_offset: int) -> list[dict[str, Any]]:
    """Walk a vfio_info_cap_header chain in buf (offsets are from the struct start)."""
    hdr = uapi.sizeof("struct vfio_info_cap_header")
    rng_hdr = uapi.sizeof("struct vfio_iommu_type1_info_cap_iova_range")
    rng = uapi.sizeof("struct vfio_iova_range")
    length = len(buf)
    caps: list[dict[str, Any]] = []
    off, seen = cap_offset, set()
    while off and off + hdr <= length and off not in seen and len(caps) < 16:
        seen.add(off)
        cid = int.from_bytes(buf[off:off + 2], "little")
        ver = int.from_bytes(buf[off + 2:off + 4], "little")
        nxt = int.from_bytes(buf[off + 4:off + 8], "little")
        cap: dict[str, Any] = {"id": cid, "version": ver}
        if cid == uapi.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE and off + rng_hdr <= length:
            nr = int.from_bytes(buf[off + hdr:off + hdr + 4], "little")
            nr_fit = max(0, min(nr, (length - off - rng_hdr) // rng))
            cap["ranges"] = [[int.from_bytes(buf[p:p + 8], "little"),
                              int.from_bytes(buf[p + 8:p + 16], "little")]
                             for p in (off + rng_hdr + rng * k for k in range(nr_fit))]
        elif cid == uapi.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL and off + hdr + 4 <= length:
            cap["avail"] = int.from_bytes(buf[off + hdr:off + hdr + 4], "little")
        caps.append(cap)
        off = nxt
    return caps
