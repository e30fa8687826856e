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

from fuzz import sidearrays, uapi
from fuzz.executor.wire import (
    BUF_KIND,
    BUFFER,
    CALL,
    CALL_CLOSE,
    CALL_PTR,
    CALL_READ,
    CALL_VAL,
    CALL_WRITE,
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
from fuzz.ops import CLOSE, FDIO, IOMMUFD, TEST, VFIO_STRUCT, VFIO_VAL, OpSpec
from fuzz.prog import BufPtr, Program, Ref, buffer_address
from fuzz.result import OpResult

WIDTH = {"u8": 1, "u16": 2, "u32": 4, "u64": 8, "uptr": 8, "ranges": 8, "capacity": 4}
# fdio calls (READ / WRITE): {u32 fd; u32 pad; u64 buf; u64 count} in the arena
FDIO_FIELDS = {"fd": (0, 4), "buf": (8, 8), "count": (16, 8)}
FDIO_SIZE = 24
# fds an op returns that the executor then owns (closes at the end; READ/WRITE/CLOSE
# only act on these)
FD_OUTPUTS = {"TEST_CREATE_ACCESS": "create_access.out_access_fd",
              "FAULT_QUEUE_ALLOC": "out_fault_fd"}

MAX_STRUCT = 1 << 16  # an oversized "size" is clamped to this much real memory
PGFAULT = struct.Struct("<IIIIIIQII")  # struct iommu_hwpt_pgfault, as READ returns them
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
    side: SideArray | None = None  # the HWPT/fault ops' side array (fuzz/sidearrays.py)
    capture: tuple[str, Any] | None = None  # (pointer field, length value) captured after
    args: dict[str, Any] = field(default_factory=dict)  # struct fields still to set


@dataclass
class SideArray:
    """Memory of the executor's that a pointer field defaults to: `size` bytes of
    `data` (zero-padded), values (int or Ref) placed at run time at (offset, width),
    and the field that gets its address ("" for none)."""

    size: int
    data: bytes = b""
    values: list[tuple[int, int, Any]] = field(default_factory=list)
    points: str = ""


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
    _plan_hwpt_sides(spec.name, args, p)
    p.args = args
    return p


def _pairs(pairs: Any, stride: int) -> bytes:
    out = bytearray()
    for a, b in pairs if isinstance(pairs, list) else []:
        out += (a % (1 << 32)).to_bytes(4, "little") + (b % (1 << 32)).to_bytes(4, "little")
        out += bytes(stride - 8)
    return bytes(out)


def _plan_hwpt_sides(name: str, args: dict[str, Any], p: StructPlan) -> None:
    """The side arrays and captures of the HWPT / hw info / fault ops."""
    if name == "HWPT_ALLOC":
        iotlb = args.pop("iotlb", 0)
        p.side = SideArray(sidearrays.HWPT_DATA_SIDE, values=[(0, 4, iotlb)],
                           points="" if "data_uptr" in args else "data_uptr")
    elif name == "GET_HW_INFO":
        args.setdefault("data_uptr", sidearrays.HW_INFO_SCRATCH)
        p.capture = ("data_uptr", args.get("data_len", 0))
    elif name == "HWPT_GET_DIRTY_BITMAP":
        p.capture = ("data", sidearrays.dirty_bitmap_bytes(args.get("length"),
                                                           args.get("page_size")))
    elif name == "HWPT_INVALIDATE":
        entries = args.pop("entries", [])
        n = sidearrays.invalidate_entries(entries, args.get("entry_num"))
        args.setdefault("entry_len", sidearrays.INVALIDATE_ENTRY_SIZE)
        args.setdefault("entry_num", len(entries) if isinstance(entries, list) else 0)
        p.side = SideArray(n * sidearrays.INVALIDATE_ENTRY_SIZE,
                           _pairs(entries, sidearrays.INVALIDATE_ENTRY_SIZE),
                           points="" if "data_uptr" in args else "data_uptr")


def plan_fdio(op: Any) -> tuple[dict[str, Any], SideArray]:
    """READ / WRITE: the fields of the call and the side array buf defaults to."""
    args = dict(op.args)
    if op.name == "READ":
        args.setdefault("count", sidearrays.READ_DEFAULT_COUNT)
        side = SideArray(sidearrays.read_side(args["count"]))
    else:
        responses = args.pop("responses", [])
        cookie, code = args.pop("cookie", 0), args.pop("code", 0)
        args.setdefault("count", sidearrays.write_default_count(responses))
        n = sidearrays.write_entries(responses, args["count"])
        side = SideArray(n * sidearrays.RESPONSE_SIZE,
                         bytes(8) + _pairs(responses, sidearrays.RESPONSE_SIZE),
                         values=[(0, 4, cookie), (4, 4, code)])
    side.points = "" if "buf" in args else "buf"
    return args, side


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

    def place_at(dst: int, width: int, v: Any, where: str) -> None:
        """A value at an arena offset: a literal, or a relocation at run time."""
        if isinstance(v, Ref) and v.field == "ret":  # an ioctl's return value, not a field
            reloc(dst, width, RELOC_RET, v.op, 8, v.add)
        elif isinstance(v, Ref):
            src_off, swidth = _output_slot(prog, layout, v)
            reloc(dst, width, RELOC_FIELD, src_off, swidth, v.add)
        elif isinstance(v, BufPtr):
            reloc(dst, width, RELOC_BUFFER, v.buf, 8, v.offset)
        elif isinstance(v, int):
            arena.put(dst, width, v)
        else:
            raise ValueError(f"{where}: cannot place {v!r}")

    def place_side(side: SideArray, ptr_at: int | None, where: str) -> int:
        """The side array in the arena; ptr_at: where its address goes (if it does)."""
        off = arena.alloc(max(side.size, 1))
        arena.buf[off:off + len(side.data)] = side.data
        for voff, width, v in side.values:
            place_at(off + voff, width, v, where)
        if side.points and ptr_at is not None:
            reloc(ptr_at, 8, RELOC_ARENA, off)
        return off

    def place(spec: OpSpec, i: int, base: int, name: str, kind: str, v: Any) -> None:
        path = _resolve_path(spec, name)
        off, width = (0, WIDTH[kind]) if not path else uapi.field_offset(spec.struct, path)
        if width != WIDTH.get(kind, width) and kind not in ("ranges", "capacity"):
            raise ValueError(f"op {i} ({spec.name}).{name}: width mismatch")
        place_at(base + off, width, v, f"op {i} ({spec.name}).{name}")

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
        if spec.kind == FDIO:
            fargs, side = plan_fdio(op)
            base = arena.alloc(FDIO_SIZE)
            layout.struct_off.append(base)
            layout.struct_len.append(FDIO_SIZE)
            for name, v in fargs.items():
                off, width = FDIO_FIELDS[name]
                place_at(base + off, width, v, f"op {i} ({spec.name}).{name}")
            side_off = place_side(side, base + FDIO_FIELDS["buf"][0],
                                  f"op {i} ({spec.name}) side array")
            layout.side[i] = (side_off, side.size)
            kind = CALL_READ if spec.name == "READ" else CALL_WRITE
            arg_off = base
            if spec.name == "READ":  # the records read go to (or are copied into) the side
                cap_ptr, cap_max = side_off, side.size
        elif spec.kind in (IOMMUFD, TEST, VFIO_STRUCT):
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
            if sp.side is not None:
                ptr_at = base + uapi.field_offset(spec.struct, sp.side.points)[0] \
                    if sp.side.points else None
                side_off = place_side(sp.side, ptr_at, f"op {i} ({spec.name}) side array")
                layout.side[i] = (side_off, sp.side.size)
            kind, arg_off = CALL_PTR, base
            if spec.name in FD_OUTPUTS:
                fd_out = base + uapi.field_offset(spec.struct, FD_OUTPUTS[spec.name])[0]
            if sp.capture is not None:
                ptr_field, length = sp.capture
                cap_ptr = base + uapi.field_offset(spec.struct, ptr_field)[0]
                cap_len = arena.alloc(8)
                place_at(cap_len, 8, length, f"op {i} ({spec.name}) capture length")
                cap_max = CAPTURE_MAX
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
        req = uapi.request(spec.request) if spec.kind not in (CLOSE, FDIO) else 0
        calls.append(CALL.pack(kind, req, arg_off, first_reloc, len(relocs) - first_reloc,
                               fd_out, cap_ptr, cap_len, cap_max, 0))

    holes: list[bytes] = []
    bufs: list[bytes] = []
    for bi, b in enumerate(prog.buffers):
        bufs.append(BUFFER.pack(buffer_address(bi), b.size, BUF_KIND[b.kind], b.seed & 0xFF,
                                len(holes), len(b.holes)))
        holes += [HOLE.pack(o, n) for o, n in b.holes]
    if any(op.name == "GET_HW_INFO" and "data_uptr" not in op.args for op in prog.ops):
        bufs.append(BUFFER.pack(sidearrays.HW_INFO_SCRATCH, sidearrays.HW_INFO_SCRATCH_SIZE,
                                BUF_KIND["anon"], 0, len(holes), 0))
    header = HEADER.pack(MAGIC, len(bufs), len(holes), len(calls), len(relocs), len(arena.buf),
                         uapi.request("IOMMU_TEST_CMD"), pro_off, pro_len,
                         kcov_mode if kcov else KCOV_OFF, pcs_cap,
                         cap_cap)
    wire = b"".join([header, *bufs, *holes, *calls, *relocs, bytes(arena.buf)])
    return Encoded(wire, layout, len(arena.buf), len(calls))


def _output_slot(prog: Program, layout: Layout, v: Ref) -> tuple[int, int]:
    """Arena offset and width of an earlier op's integer output (a Ref's source)."""
    src = prog.ops[v.op]
    if src.spec.kind == FDIO:  # READ.cookie: the first record's, in its side array
        side, _n = layout.side[v.op]
        return side + uapi.field_offset("struct iommu_hwpt_pgfault", "cookie")[0], 4
    soff, swidth = uapi.field_offset(src.spec.struct, _resolve_path(src.spec, v.field))
    return layout.struct_off[v.op] + soff, swidth


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
            elif name in ("data", "bitmap"):
                r.out[name] = captures[cap_first:cap_first + cap_len]
            elif name in ("records", "cookie"):
                side, size = enc.layout.side[i]
                n = min(max(ret, 0), size) // PGFAULT.size if err == 0 else 0
                recs = [list(PGFAULT.unpack_from(arena, side + PGFAULT.size * k))
                        for k in range(n)]
                r.out[name] = recs if name == "records" else (recs[0][8] if recs else 0)
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
