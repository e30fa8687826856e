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
    CALL_POLL,
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
    RES_INJECTED,
    RES_NTH_FAILED,
    RES_THREAD_SHIFT,
    RESULT,
    SCHED_GROUP_SHIFT,
    SCHED_MAX_GROUP,
    SCHED_THREAD_SHIFT,
)
from fuzz.prog import BufPtr, Program, Ref, buffer_address
from fuzz.prog.ir import SCRATCH_ADDR
from fuzz.prog.layout import Side, decode_caps, entry_fields, entry_names, plan_struct, where
from fuzz.prog.limits import CAPTURE_MAX, CAPTURE_ROOM, PCS_CAP, TEST_MEMORY_LIMIT_DEFAULT
from fuzz.prog.types import (
    CLOSE,
    FD_CALLS,
    FDIO,
    IOMMUFD,
    TEST,
    VFIO_STRUCT,
    VFIO_VAL,
)
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
    scratch = 0  # the size of the executor's scratch mapping, if an op needs it

    def reloc(dst: int, width: int, kind: int, src: int, src_width: int = 8, add: int = 0) -> None:
        relocs.append(RELOC.pack(dst, width, kind, src_width, src, add % (1 << 64)))

    def place(where_: str, dst: int, width: int, v: Any) -> None:
        """A value at an arena offset: a literal now, or a relocation at run time."""
        if isinstance(v, Ref):
            out = prog.ops[v.op].desc.out(v.field)
            assert out is not None, where_
            if out.decode == "ret":  # a call's return value, not a field
                reloc(dst, width, RELOC_RET, v.op, 8, v.add)
            else:
                soff, swidth = output_slot(prog, layout, v)
                reloc(dst, width, RELOC_FIELD, soff, swidth, v.add)
        elif isinstance(v, BufPtr):
            reloc(dst, width, RELOC_BUFFER, v.buf, 8, v.offset)
        elif isinstance(v, int):
            arena.put(dst, width, v)
        else:
            raise ValueError(f"{where_}: cannot place {v!r}")

    # The prologue resets the selftest's global temp memory limit.
    cmd = "struct iommu_test_cmd"
    pro_len = uapi.sizeof(cmd)
    pro_off = arena.alloc(pro_len)
    arena.put(pro_off, 4, pro_len)
    arena.put(pro_off + uapi.field_offset(cmd, "op")[0], 4,
              uapi.test_op("IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT"))
    arena.put(pro_off + uapi.field_offset(cmd, "memory_limit.limit")[0], 4,
              TEST_MEMORY_LIMIT_DEFAULT)

    group_of = _group_ids(prog)
    for i, op in enumerate(prog.ops):
        d = op.desc
        here = f"op {i} ({d.name})"
        first_reloc = len(relocs)
        fd_out = cap_ptr = cap_len = cap_max = 0
        sp = plan_struct(op)
        base = arena.alloc(sp.real)
        layout.struct_off.append(base)
        layout.struct_len.append(sp.real)
        if sp.tail_len:
            arena.buf[base + sp.natural:base + sp.natural + sp.tail_len] = \
                bytes([sp.tail]) * sp.tail_len
        if d.is_struct:
            place(f"{here}.{d.size_field}", base, 4, sp.size)
        if d.call == TEST:
            arena.put(base + uapi.field_offset(d.struct, "op")[0], 4, uapi.test_op(d.test_op))
        for s in sp.sides:
            esize = uapi.sizeof(s.ctype)
            side = arena.alloc(s.size)
            fields = entry_fields(s.ctype)
            for k, item in enumerate(s.items):
                for (off, width), v in zip(fields, item):
                    if esize * k + off + width <= s.size:
                        place(f"{here} side array {s.arg}", side + esize * k + off, width, v)
            layout.side[(i, s.arg)] = (side, s)
            if s.points:
                reloc(base + where(d, s.arg)[0], 8, RELOC_ARENA, side)
        for name, v in sp.args.items():
            off, width = where(d, name)
            place(f"{here}.{name}", base + off, width, v)
        for sc in sp.scratch:
            scratch = max(scratch, sc.size)
        for o in d.outs:
            if o.is_fd:
                fd_out = base + where(d, o.name)[0]
        if d.capture is not None:
            cap_ptr = base + where(d, d.capture.uptr)[0]
            cap_len = arena.alloc(8)
            place(f"{here} capture length", cap_len, 8, sp.capture_len)
            cap_max = CAPTURE_MAX
        if d.call == FDIO and d.request == "read":
            # what read() returns ends up in the side array too (the executor copies a
            # read into a program buffer there): one place to decode it from, and to
            # take refs to it from
            side_off, s = layout.side[(i, "buf")]
            cap_ptr, cap_max = side_off, s.size
        kind = CALL_KIND[d.call] if d.call != FDIO else CALL_FDIO[d.request]
        req = uapi.request(d.request) if d.call not in FD_CALLS else 0
        sched = op.fail_nth | op.thread << SCHED_THREAD_SHIFT | group_of[i] << SCHED_GROUP_SHIFT
        calls.append(CALL.pack(kind, req, base, first_reloc, len(relocs) - first_reloc,
                               fd_out, cap_ptr, cap_len, cap_max, sched))

    holes: list[bytes] = []
    bufs: list[bytes] = []
    for bi, b in enumerate(prog.buffers):
        bufs.append(BUFFER.pack(buffer_address(bi), b.size, BUF_KIND[b.kind], b.seed & 0xFF,
                                len(holes), len(b.holes)))
        holes += [HOLE.pack(o, n) for o, n in b.holes]
    if scratch:
        bufs.append(BUFFER.pack(SCRATCH_ADDR, scratch, BUF_KIND["anon"], 0, len(holes), 0))
    header = HEADER.pack(MAGIC, len(bufs), len(holes), len(calls), len(relocs), len(arena.buf),
                         uapi.request("IOMMU_TEST_CMD"), pro_off, pro_len,
                         kcov_mode if kcov else KCOV_OFF, pcs_cap,
                         cap_cap, prog.creds is not None, 0,
                         prog.creds.cap_mask if prog.creds else 0,
                         prog.creds.memlock if prog.creds else 0)
    wire = b"".join([header, *bufs, *holes, *calls, *relocs, bytes(arena.buf)])
    return Encoded(wire, layout, len(arena.buf), len(calls))


CALL_KIND = {IOMMUFD: CALL_PTR, TEST: CALL_PTR, VFIO_STRUCT: CALL_PTR, VFIO_VAL: CALL_VAL,
             CLOSE: CALL_CLOSE}
CALL_FDIO = {"read": CALL_READ, "write": CALL_WRITE, "poll": CALL_POLL}


def output_slot(prog: Program, layout: Layout, v: Ref) -> tuple[int, int]:
    """Arena offset and width of an earlier op's integer output (a Ref's source): its
    struct field, or for a "first" output that field of its side array's first entry."""
    d = prog.ops[v.op].desc
    out = d.out(v.field)
    assert out is not None
    if out.decode == "first":
        side_off, s = layout.side[(v.op, out.array)]
        off, width = uapi.field_offset(s.ctype, out.field)
        return side_off + off, width
    off, width = where(d, v.field)
    return layout.struct_off[v.op] + off, width


def _group_ids(prog: Program) -> list[int]:
    """Each op's race group as the executor numbers them (1, 2, ...; 0: none)."""
    ids = [0] * len(prog.ops)
    for n, g in enumerate(prog.groups(), 1):
        if n > SCHED_MAX_GROUP:
            raise ValueError(f"{n} race groups: the executor numbers at most {SCHED_MAX_GROUP}")
        for i in g:
            ids[i] = n
    return ids


class FaultInjectionUnavailable(RuntimeError):
    """An op asked for fail_nth and the executor could not arm it."""


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
        err, flags, ret, _pf, _pc, cap_first, cap_len, t0, t1 = RESULT.unpack_from(
            results, i * RESULT.size)
        if flags & RES_NTH_FAILED:
            raise FaultInjectionUnavailable(
                f"op {i} ({op.name}): fail_nth {op.fail_nth} could not be armed (no "
                "/proc/thread-self/fail-nth: a kernel without CONFIG_FAULT_INJECTION?)")
        r = OpResult(errno=err, ret=ret, injected=bool(flags & RES_INJECTED),
                     thread=flags >> RES_THREAD_SHIFT & 3, t_start=t0, t_end=t1)
        base = enc.layout.struct_off[i]
        for o in d.outs:
            if o.decode == "ret":
                r.out[o.name] = ret
            elif o.decode == "data":
                r.out[o.name] = captures[cap_first:cap_first + cap_len]
            elif o.decode == "ranges":
                side_off, s = enc.layout.side[(i, o.array)]
                n = min(r.out.get(o.count, 0), s.entries)
                ok = err == 0 or err in o.also_on
                r.out[o.name] = read_side(arena, side_off, s, n) if ok else []
            elif o.decode in ("entries", "first"):
                side_off, s = enc.layout.side[(i, o.array)]
                n = min(max(ret, 0), s.size) // uapi.sizeof(s.ctype) if err == 0 else 0
                entries = read_side(arena, side_off, s, n)
                if o.decode == "entries":
                    r.out[o.name] = entries
                else:
                    k = entry_names(s.ctype).index(o.field)
                    r.out[o.name] = entries[0][k] if entries else 0
            elif o.decode == "caps":
                r.out[o.name] = decode_caps(arena[base:base + enc.layout.struct_len[i]],
                                            r.out.get("cap_offset", 0)) if err == 0 else []
            else:
                off, width = where(d, o.name)
                r.out[o.name] = int.from_bytes(arena[base + off:base + off + width], "little")
        out.append(r)
    return out
