"""The one layout plan of an op's struct: how big the memory behind it is, what goes
past its natural size, which side arrays sit next to it and what they hold. The
encoder lays the arena out by it, the reproducer emitters print the same layout in
Python and C, and the model replays the kernel's copies on it, so the three agree
by construction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fuzz import uapi
from fuzz.prog.ir import Op
from fuzz.prog.limits import MAX_SIDE_ENTRIES, MAX_STRUCT
from fuzz.prog.types import Capacity, Ranges


@dataclass
class Side:
    """A side array the executor provides next to an op's struct."""

    field: str  # the struct field that holds (or may hold) its address
    ctype: str  # its element type, e.g. "struct iommu_iova_range"
    entries: int  # entries the op works with
    items: list[list[int]]  # initial entries, each its fields in order (the rest zero)
    points: bool  # the executor sets `field` to its address (else the program gave one)

    @property
    def alloc(self) -> int:
        """Entries of real memory: at least one, so the address is always valid."""
        return max(self.entries, 1)


@dataclass
class StructPlan:
    """How one struct op is laid out: the decisions the encoder makes and the
    emitted reproducers must make identically (so they are made here, once)."""

    natural: int  # sizeof the struct
    size: Any  # the value put in size/argsz (int or Ref)
    size_is_default: bool
    real: int  # bytes of memory actually provided for the struct
    extra: int = 0  # bytes past sizeof the default size includes (vfio cap space)
    tail: int = 0  # byte written past the natural size (E2BIG path)
    tail_len: int = 0
    sides: list[Side] = field(default_factory=list)
    args: dict[str, Any] = field(default_factory=dict)  # struct fields still to set

    def side(self, field_name: str) -> Side | None:
        for s in self.sides:
            if s.field == field_name:
                return s
        return None


def plan_struct(op: Op) -> StructPlan:
    d = op.desc
    args = dict(op.args)
    natural = uapi.sizeof(d.struct)
    default = natural + d.extra_space
    size_is_default = d.size_field not in args
    size = args.pop(d.size_field, default)
    tail = args.pop("tail", 0)
    real = min(max(natural, size if isinstance(size, int) else natural, default), MAX_STRUCT)
    p = StructPlan(natural, size, size_is_default, real, d.extra_space)
    if tail and isinstance(size, int) and size > natural:
        p.tail = tail & 0xFF
        p.tail_len = min(size, real) - natural
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
            p.sides.append(Side(a.path, t.ctype, n, [list(r) for r in ranges], True))
            args.setdefault(t.count, len(ranges))
        elif isinstance(t, Capacity):
            cap = args.setdefault(a.name, t.default)
            # a Ref capacity is only known in the guest: room for the most it may ask
            entries = min(cap, MAX_SIDE_ENTRIES) if isinstance(cap, int) else MAX_SIDE_ENTRIES
            array = d.arg(t.array)
            assert array is not None, (d.name, t.array)
            p.sides.append(Side(array.path, t.ctype, max(entries, 0), [],
                                t.array not in args))
    p.args = args
    return p


def entry_fields(ctype: str) -> list[tuple[int, int]]:
    """(offset, width) of each top-level field of a side array's element type."""
    return [uapi.field_offset(ctype, f) for f in uapi.fields(ctype) if "." not in f]


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
