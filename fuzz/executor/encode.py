"""Program -> the executor's wire format, and the executor's output -> OpResults.

The wire format is the executor's own C structs laid end to end (see
executor.h), so the guest turns it into pointers with no per-op Python work:

    header (HEADER) | fz_buffer[] | fz_hole[] | fz_call[] | fz_reloc[] | arena

The arena holds each op's ioctl struct at its own offset, plus side arrays
(IOVA range lists) and the prologue's struct. After the run the guest returns
the arena as the kernel left it, and decode() reads every output field back.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from fuzz import uapi
from fuzz.executor.wire import (
    BUF_KIND,
    BUFFER,
    CALL,
    CALL_CLOSE,
    CALL_PTR,
    CALL_VAL,
    HEADER,
    HOLE,
    KCOV_OFF,
    KCOV_TRACE_PC,
    MAGIC,
    RELOC,
    RELOC_ARENA,
    RELOC_BUFFER,
    RELOC_FIELD,
    RELOC_RET,
    RESULT,
)
from fuzz.ops import CLOSE, IOMMUFD, TEST, VFIO_STRUCT, VFIO_VAL, OpSpec
from fuzz.prog import BufPtr, Program, Ref, buffer_address
from fuzz.result import OpResult

WIDTH = {"u16": 2, "u32": 4, "u64": 8, "uptr": 8, "ranges": 8, "capacity": 4}

MAX_STRUCT = 1 << 16  # an oversized "size" is clamped to this much real memory
MAX_SIDE_ENTRIES = 4096  # IOVA range arrays bigger than this are not materialized
DEFAULT_IOVA_RANGES_CAPACITY = 8
GET_INFO_CAP_SPACE = 4096
CAPTURE_MAX = 1 << 16
TEST_MEMORY_LIMIT_DEFAULT = 65536  # drivers/iommu/iommufd/selftest.c


@dataclass
class StructPlan:
    """How one struct op is laid out: the decisions the encoder makes and the
    emitted reproducers must make identically (so they are made here, once)."""

    natural: int  # sizeof the struct
    size: Any  # the value put in size/argsz (int or Ref)
    size_is_default: bool
    real: int  # bytes of memory actually provided for the struct
    tail: int = 0  # byte written past the natural size (E2BIG path)
    tail_len: int = 0
    allow_ranges: list[list[int]] | None = None  # IOAS_ALLOW_IOVAS side array contents
    allow_entries: int = 0  # ... and its length in entries
    ranges_entries: int | None = None  # IOAS_IOVA_RANGES side array capacity
    ranges_points: bool = False  # allowed_iovas points at that side array
    args: dict[str, Any] = field(default_factory=dict)  # struct fields still to set


def plan_struct(op: Any) -> StructPlan:
    spec = op.spec
    args = dict(op.args)
    natural = uapi.sizeof(spec.struct)
    size_key = "argsz" if spec.kind == VFIO_STRUCT else "size"
    default = natural + (GET_INFO_CAP_SPACE if spec.name == "VFIO_IOMMU_GET_INFO" else 0)
    size_is_default = size_key not in args
    size = args.pop(size_key, default)
    tail = args.pop("tail", 0)
    real = min(max(natural, size if isinstance(size, int) else natural, default), MAX_STRUCT)
    p = StructPlan(natural, size, size_is_default, real)
    if tail and isinstance(size, int) and size > natural:
        p.tail = tail & 0xFF
        p.tail_len = min(size, real) - natural
    if spec.name == "IOAS_ALLOW_IOVAS":
        ranges = args.pop("allowed_iovas", [])
        if isinstance(ranges, list):
            num = args.get("num_iovas", len(ranges))
            n = len(ranges)
            if isinstance(num, int) and num <= MAX_SIDE_ENTRIES:
                n = max(n, num)  # extra entries the count claims are zeros
            p.allow_ranges = [list(r) for r in ranges]
            p.allow_entries = max(n, 1)
            args.setdefault("num_iovas", len(ranges))
        else:
            args["allowed_iovas"] = ranges
    if spec.name == "IOAS_IOVA_RANGES":
        cap = args.setdefault("num_iovas", DEFAULT_IOVA_RANGES_CAPACITY)
        # a Ref capacity is only known in the guest: room for the most it may ask
        p.ranges_entries = min(cap, MAX_SIDE_ENTRIES) if isinstance(cap, int) \
            else MAX_SIDE_ENTRIES
        p.ranges_points = "allowed_iovas" not in args
    p.args = args
    return p


@dataclass
class Layout:
    """Where each op's fields landed, for decoding."""

    struct_off: list[int] = field(default_factory=list)
    struct_len: list[int] = field(default_factory=list)
    side: dict[int, tuple[int, int]] = field(default_factory=dict)  # op -> (offset, entries)


@dataclass
class Encoded:
    wire: bytes
    layout: Layout
    arena_len: int
    nr_calls: int


def _resolve_path(spec: OpSpec, name: str) -> str:
    for a in spec.args:
        if a.name == name:
            return a.path
    return name


class _Arena:
    def __init__(self) -> None:
        self.buf = bytearray()

    def alloc(self, n: int, align: int = 8) -> int:
        off = (len(self.buf) + align - 1) // align * align
        self.buf.extend(b"\0" * (off + n - len(self.buf)))
        return off

    def put(self, off: int, width: int, value: int) -> None:
        self.buf[off:off + width] = (value % (1 << (8 * width))).to_bytes(width, "little")



def encode(prog: Program, kcov: bool = True, kcov_mode: int = KCOV_TRACE_PC,
           pcs_cap: int = 1 << 20, cap_cap: int = 1 << 22) -> Encoded:
    arena = _Arena()
    layout = Layout()
    calls: list[bytes] = []
    relocs: list[bytes] = []

    def reloc(dst: int, width: int, kind: int, src: int, src_width: int = 8, add: int = 0) -> None:
        relocs.append(RELOC.pack(dst, width, kind, src_width, src, add % (1 << 64)))

    def place(spec: OpSpec, i: int, base: int, name: str, kind: str, v: Any) -> None:
        path = _resolve_path(spec, name)
        off, width = (0, WIDTH[kind]) if not path else uapi.field_offset(spec.struct, path)
        if width != WIDTH.get(kind, width) and kind not in ("ranges", "capacity"):
            raise ValueError(f"op {i} ({spec.name}).{name}: width mismatch")
        dst = base + off
        if isinstance(v, Ref) and v.field == "ret":  # an ioctl's return value, not a field
            reloc(dst, width, RELOC_RET, v.op, 8, v.add)
        elif isinstance(v, Ref):
            src_spec = prog.ops[v.op].spec
            src_path = _resolve_path(src_spec, v.field)
            soff, swidth = uapi.field_offset(src_spec.struct, src_path)
            reloc(dst, width, RELOC_FIELD, layout.struct_off[v.op] + soff, swidth, v.add)
        elif isinstance(v, BufPtr):
            reloc(dst, width, RELOC_BUFFER, v.buf, 8, v.offset)
        elif isinstance(v, int):
            arena.put(dst, width, v)
        else:
            raise ValueError(f"op {i} ({spec.name}).{name}: cannot place {v!r}")

    # The prologue resets the selftest's global temp memory limit.
    pro_len = uapi.sizeof("struct iommu_test_cmd")
    pro_off = arena.alloc(pro_len)
    arena.put(pro_off, 4, pro_len)
    arena.put(pro_off + uapi.field_offset("struct iommu_test_cmd", "op")[0], 4,
              uapi.test_op("IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT"))
    arena.put(pro_off + uapi.field_offset("struct iommu_test_cmd", "memory_limit.limit")[0], 4,
              TEST_MEMORY_LIMIT_DEFAULT)

    for i, op in enumerate(prog.ops):
        spec = op.spec
        first_reloc = len(relocs)
        args = dict(op.args)
        fd_out = cap_ptr = cap_len = cap_max = 0
        if spec.kind in (IOMMUFD, TEST, VFIO_STRUCT):
            sp = plan_struct(op)
            args = sp.args
            base = arena.alloc(sp.real)
            layout.struct_off.append(base)
            layout.struct_len.append(sp.real)
            if sp.tail_len:
                arena.buf[base + sp.natural:base + sp.natural + sp.tail_len] = \
                    bytes([sp.tail]) * sp.tail_len
            place(spec, i, base, spec.size_field, "u32", sp.size)
            if spec.kind == TEST:
                arena.put(base + uapi.field_offset(spec.struct, "op")[0], 4,
                          uapi.test_op(spec.test_op))
            kinds = {a.name: a.kind for a in spec.args}
            if sp.allow_ranges is not None:
                side = arena.alloc(16 * sp.allow_entries)
                for k, (s, last) in enumerate(sp.allow_ranges):
                    arena.put(side + 16 * k, 8, s)
                    arena.put(side + 16 * k + 8, 8, last)
                off, _ = uapi.field_offset(spec.struct, "allowed_iovas")
                reloc(base + off, 8, RELOC_ARENA, side)
            if sp.ranges_entries is not None:
                side = arena.alloc(16 * max(sp.ranges_entries, 1))
                layout.side[i] = (side, sp.ranges_entries)
                if sp.ranges_points:
                    off, _ = uapi.field_offset(spec.struct, "allowed_iovas")
                    reloc(base + off, 8, RELOC_ARENA, side)
            for name, v in args.items():
                place(spec, i, base, name, kinds.get(name, "u32"), v)
            kind, arg_off = CALL_PTR, base
            if spec.name == "TEST_CREATE_ACCESS":
                fd_out = base + uapi.field_offset(spec.struct, "create_access.out_access_fd")[0]
            if spec.name == "TEST_ACCESS_RW":
                cap_ptr = base + uapi.field_offset(spec.struct, "access_rw.uptr")[0]
                cap_len = base + uapi.field_offset(spec.struct, "access_rw.length")[0]
                cap_max = CAPTURE_MAX
        else:
            base = arena.alloc(8)
            layout.struct_off.append(base)
            layout.struct_len.append(8)
            for name, v in args.items():
                place(spec, i, base, name, "u64" if spec.kind == VFIO_VAL else "u32", v)
            kind = CALL_VAL if spec.kind == VFIO_VAL else CALL_CLOSE
            arg_off = base
        req = uapi.request(spec.request) if spec.kind != CLOSE else 0
        calls.append(CALL.pack(kind, req, arg_off, first_reloc, len(relocs) - first_reloc,
                               fd_out, cap_ptr, cap_len, cap_max, 0))

    holes: list[bytes] = []
    bufs: list[bytes] = []
    for bi, b in enumerate(prog.buffers):
        bufs.append(BUFFER.pack(buffer_address(bi), b.size, BUF_KIND[b.kind], b.seed & 0xFF,
                                len(holes), len(b.holes)))
        holes += [HOLE.pack(o, n) for o, n in b.holes]
    header = HEADER.pack(MAGIC, len(bufs), len(holes), len(calls), len(relocs), len(arena.buf),
                         uapi.request("IOMMU_TEST_CMD"), pro_off, pro_len,
                         kcov_mode if kcov else KCOV_OFF, pcs_cap,
                         cap_cap)
    wire = b"".join([header, *bufs, *holes, *calls, *relocs, bytes(arena.buf)])
    return Encoded(wire, layout, len(arena.buf), len(calls))


def decode(prog: Program, enc: Encoded, arena: bytes, results: bytes,
           captures: bytes) -> list[OpResult]:
    """Turn the executor's arena and per-call results back into OpResults."""
    out: list[OpResult] = []
    for i, op in enumerate(prog.ops):
        spec = op.spec
        err, _pad, ret, _pf, _pc, cap_first, cap_len = RESULT.unpack_from(results, i * RESULT.size)
        r = OpResult(errno=err, ret=ret)
        base = enc.layout.struct_off[i]
        for name in spec.outputs:
            if name == "ret":
                r.out["ret"] = ret
            elif name == "data":
                r.out["data"] = captures[cap_first:cap_first + cap_len]
            elif name == "ranges":
                side, entries = enc.layout.side[i]
                n = min(r.out.get("num_iovas", 0), entries)
                r.out["ranges"] = ([list(struct.unpack_from("<QQ", arena, side + 16 * k))
                                    for k in range(n)] if err in (0, 90) else [])  # 90: EMSGSIZE
            elif name == "caps":
                r.out["caps"] = _decode_caps(arena, base, enc.layout.struct_len[i],
                                             r.out.get("cap_offset", 0)) if err == 0 else []
            else:
                off, width = uapi.field_offset(spec.struct, _resolve_path(spec, name))
                r.out[name] = int.from_bytes(arena[base + off:base + off + width], "little")
        out.append(r)
    return out


def _decode_caps(arena: bytes, base: int, length: int, cap_offset: int) -> list[dict[str, Any]]:
    """Walk a vfio_info_cap_header chain (offsets are from the struct start)."""
    caps: list[dict[str, Any]] = []
    off, seen = cap_offset, set()
    while off and off + 8 <= length and off not in seen and len(caps) < 16:
        seen.add(off)
        cid, ver, nxt = struct.unpack_from("<HHI", arena, base + off)
        cap: dict[str, Any] = {"id": cid, "version": ver}
        if cid == 1 and off + 16 <= length:  # VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE
            (nr,) = struct.unpack_from("<I", arena, base + off + 8)
            nr_fit = max(0, min(nr, (length - off - 16) // 16))
            cap["ranges"] = [list(struct.unpack_from("<QQ", arena, base + off + 16 + 16 * k))
                             for k in range(nr_fit)]
        elif cid == 3 and off + 12 <= length:  # VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL
            (cap["avail"],) = struct.unpack_from("<I", arena, base + off + 8)
        caps.append(cap)
        off = nxt
    return caps
