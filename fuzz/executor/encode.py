"""Program -> the executor's wire format, and the executor's output -> OpResults.

The wire format is the executor's own C structs laid end to end (see
executor.h), so the guest turns it into pointers with no per-op Python work:

    header (HEADER) | fz_buffer[] | fz_hole[] | fz_call[] | fz_reloc[] | arena

The arena holds each op's ioctl struct at its own offset, plus side arrays
(IOVA range lists) and the prologue's struct. After the run the guest returns
the arena as the kernel left it, and decode() reads every output field back.
Everything about an op comes from its description (fuzz.prog.descriptions).
"""

from __future__ import annotations

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
from fuzz.prog import BufPtr, Program, Ref, buffer_address
from fuzz.prog.layout import Side, decode_caps, entry_fields, plan_struct
from fuzz.prog.limits import CAPTURE_MAX, CAPTURE_ROOM, PCS_CAP, TEST_MEMORY_LIMIT_DEFAULT
from fuzz.prog.types import CLOSE, TEST, VFIO_VAL, OpDesc
from fuzz.result import OpResult


@dataclass
class Layout:
    """Where each op's struct and side arrays landed, for decoding."""

    struct_off: list[int] = field(default_factory=list)
    struct_len: list[int] = field(default_factory=list)
    side: dict[tuple[int, str], tuple[int, Side]] = field(default_factory=dict)


@dataclass
class Encoded:
    wire: bytes
    layout: Layout
    arena_len: int
    nr_calls: int


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
           pcs_cap: int = PCS_CAP, cap_cap: int = CAPTURE_ROOM) -> Encoded:
    arena = _Arena()
    layout = Layout()
    calls: list[bytes] = []
    relocs: list[bytes] = []

    def reloc(dst: int, width: int, kind: int, src: int, src_width: int = 8, add: int = 0) -> None:
        relocs.append(RELOC.pack(dst, width, kind, src_width, src, add % (1 << 64)))

    def place(d: OpDesc, i: int, dst: int, width: int, name: str, v: Any) -> None:
        if isinstance(v, Ref) and v.field == "ret":  # an ioctl's return value, not a field
            reloc(dst, width, RELOC_RET, v.op, 8, v.add)
        elif isinstance(v, Ref):
            src = prog.ops[v.op].desc
            soff, swidth = uapi.field_offset(src.struct, src.path(v.field))
            reloc(dst, width, RELOC_FIELD, layout.struct_off[v.op] + soff, swidth, v.add)
        elif isinstance(v, BufPtr):
            reloc(dst, width, RELOC_BUFFER, v.buf, 8, v.offset)
        elif isinstance(v, int):
            arena.put(dst, width, v)
        else:
            raise ValueError(f"op {i} ({d.name}).{name}: cannot place {v!r}")

    # The prologue resets the selftest's global temp memory limit.
    cmd = "struct iommu_test_cmd"
    pro_len = uapi.sizeof(cmd)
    pro_off = arena.alloc(pro_len)
    arena.put(pro_off, 4, pro_len)
    arena.put(pro_off + uapi.field_offset(cmd, "op")[0], 4,
              uapi.test_op("IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT"))
    arena.put(pro_off + uapi.field_offset(cmd, "memory_limit.limit")[0], 4,
              TEST_MEMORY_LIMIT_DEFAULT)

    for i, op in enumerate(prog.ops):
        d = op.desc
        first_reloc = len(relocs)
        fd_out = cap_ptr = cap_len = cap_max = 0
        if d.is_struct:
            sp = plan_struct(op)
            base = arena.alloc(sp.real)
            layout.struct_off.append(base)
            layout.struct_len.append(sp.real)
            if sp.tail_len:
                arena.buf[base + sp.natural:base + sp.natural + sp.tail_len] = \
                    bytes([sp.tail]) * sp.tail_len
            place(d, i, base, 4, d.size_field, sp.size)
            if d.call == TEST:
                arena.put(base + uapi.field_offset(d.struct, "op")[0], 4, uapi.test_op(d.test_op))
            for s in sp.sides:
                esize = uapi.sizeof(s.ctype)
                side = arena.alloc(esize * s.alloc)
                fields = entry_fields(s.ctype)
                for k, item in enumerate(s.items):
                    for (off, width), v in zip(fields, item):
                        arena.put(side + esize * k + off, width, v)
                layout.side[(i, s.field)] = (side, s)
                if s.points:
                    reloc(base + uapi.field_offset(d.struct, s.field)[0], 8, RELOC_ARENA, side)
            for name, v in sp.args.items():
                arg = d.arg(name)
                path = arg.path if arg is not None else name
                off, width = uapi.field_offset(d.struct, path)
                place(d, i, base + off, width, name, v)
            kind, arg_off = CALL_PTR, base
            for o in d.outs:
                if o.is_fd:
                    fd_out = base + uapi.field_offset(d.struct, d.path(o.name))[0]
            if d.capture is not None:
                cap_ptr = base + uapi.field_offset(d.struct, d.capture.uptr)[0]
                cap_len = base + uapi.field_offset(d.struct, d.capture.length)[0]
                cap_max = CAPTURE_MAX
        else:
            base = arena.alloc(8)
            layout.struct_off.append(base)
            layout.struct_len.append(8)
            for arg in d.args:
                if arg.name in op.args:
                    place(d, i, base, arg.width, arg.name, op.args[arg.name])
            kind = CALL_VAL if d.call == VFIO_VAL else CALL_CLOSE
            arg_off = base
        req = uapi.request(d.request) if d.call != CLOSE else 0
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


def read_side(arena: bytes, off: int, s: Side, n: int) -> list[list[int]]:
    """The first n entries of a side array, each as the list of its fields."""
    esize = uapi.sizeof(s.ctype)
    fields = entry_fields(s.ctype)
    return [[int.from_bytes(arena[off + esize * k + fo:off + esize * k + fo + fw], "little")
             for fo, fw in fields] for k in range(n)]


def decode(prog: Program, enc: Encoded, arena: bytes, results: bytes,
           captures: bytes) -> list[OpResult]:
    """Turn the executor's arena and per-call results back into OpResults."""
    out: list[OpResult] = []
    for i, op in enumerate(prog.ops):
        d = op.desc
        err, _pad, ret, _pf, _pc, cap_first, cap_len = RESULT.unpack_from(results, i * RESULT.size)
        r = OpResult(errno=err, ret=ret)
        base = enc.layout.struct_off[i]
        for o in d.outs:
            if o.decode == "ret":
                r.out[o.name] = ret
            elif o.decode == "data":
                r.out[o.name] = captures[cap_first:cap_first + cap_len]
            elif o.decode == "ranges":
                side_off, s = enc.layout.side[(i, d.path(o.array))]
                n = min(r.out.get(o.count, 0), s.entries)
                ok = err == 0 or err in o.also_on
                r.out[o.name] = read_side(arena, side_off, s, n) if ok else []
            elif o.decode == "caps":
                r.out[o.name] = decode_caps(arena[base:base + enc.layout.struct_len[i]],
                                            r.out.get("cap_offset", 0)) if err == 0 else []
            else:
                off, width = uapi.field_offset(d.struct, d.path(o.name))
                r.out[o.name] = int.from_bytes(arena[base + off:base + off + width], "little")
        out.append(r)
    return out
