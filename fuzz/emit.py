"""Reproducers a kernel developer can run: a Program printed as standalone code.

    repro.py    standard library only (ctypes), runs as root on any kernel with
                CONFIG_IOMMUFD_TEST=y
    repro.c     plain `gcc repro.c -o repro`: the uAPI structs are inlined from the
                same cdef text fuzz/uapi.py uses (token-identical to the 6.12 headers)
    report.txt  what was found, on which kernel, and how it was verified
    program.json

Both programs reproduce fuzz/executor/encode.py + executor.c exactly: the prologue
resetting the selftest memory limit, buffers at buffer_address(i) with the same
kind, pattern and holes, each op's struct with its default or overridden size and
"tail" bytes, the executor's side arrays (IOAS_ALLOW_IOVAS ranges, IOAS_IOVA_RANGES
capacity 8), VFIO_IOMMU_GET_INFO's 4096 bytes of capability space, refs read from
earlier ops' structs at the time of use, the ACCESS_RW capture, and closing the
access fds and then the iommufd at the end. Each op prints one line
"op <i> <NAME> errno=<n> (<name>) ret=<r> <field>=<value>..."; the last line says
REPRODUCED: <signature> (exit 1) or NOT REPRODUCED (exit 0).
"""

from __future__ import annotations

import errno as _errno
import json
import re
import struct as _struct
from dataclasses import asdict, dataclass
from dataclasses import field as dc_field
from pathlib import Path
from typing import Any

from fuzz import uapi
from fuzz.executor.encode import (
    CAPTURE_MAX,
    GET_INFO_CAP_SPACE,
    TEST_MEMORY_LIMIT_DEFAULT,
    plan_struct,
)
from fuzz.ops import CLOSE, OPS, TEST, VFIO_VAL, OpSpec
from fuzz.prog import BUF_BASE, BUF_STRIDE, BufPtr, Program, Ref, Value, atomic_write
from fuzz.result import OpResult

EMSGSIZE = _errno.EMSGSIZE


# ---------------------------------------------------------------------------
# What a reproducer checks.


@dataclass
class Expectation:
    """The finding a reproducer checks for.

    mismatch: at op `op` (index in the emitted program) the kernel's `field` should
    differ from `model` (the reference model's value); for errno mismatches it must
    also equal `kernel`, the errno the finding saw (the signature names both).
    splat/crash: the kernel log after the run has a line with every string in
    `keys` (from the title: its kind marker and the function it names)."""

    kind: str  # mismatch | splat | crash
    signature: str
    title: str
    op: int | None = None
    name: str | None = None
    field: str | None = None
    kernel: Any = None
    model: Any = None
    keys: list[str] = dc_field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("kernel", "model"):
            if isinstance(d[k], (bytes, bytearray)):
                d[k] = {"hex": bytes(d[k]).hex()}
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Expectation:
        d = dict(d)
        for k in ("kernel", "model"):
            if isinstance(d.get(k), dict) and "hex" in d[k]:
                d[k] = bytes.fromhex(d[k]["hex"])
        return cls(**d)


# syzkaller-style title prefix -> the text the kernel's own header line carries
_TITLE_MARKERS = (
    ("WARNING in ", "WARNING:"),
    ("possible deadlock in ", "possible "),
    ("kernel BUG in ", "kernel BUG"),
    ("general protection fault in ", "general protection fault"),
    ("BUG: unable to handle kernel", "BUG: unable to handle"),
    ("INFO: task hung", "blocked for more than"),
    ("memory leak in ", "unreferenced object"),
)


def splat_keys(title: str) -> list[str]:
    """Strings the splat's lines in the kernel log contain: the kind marker and,
    when the title names one, the function."""
    marker = title.split(" in ")[0]
    for prefix, m in _TITLE_MARKERS:
        if title.startswith(prefix):
            marker = m
            break
    keys = [marker]
    if " in " in title:
        func = title.rsplit(" in ", 1)[1].strip()
        if re.fullmatch(r"[A-Za-z_][\w.]*", func):
            keys.append(func)
    return keys


# ---------------------------------------------------------------------------
# The program as a list of op plans: exactly what encode() puts in the arena.


@dataclass
class FieldSet:
    path: str  # struct field path ("access_rw.iova"), "" for a by-value arg
    width: int
    value: Value


@dataclass
class OpPlan:
    index: int
    name: str
    spec: OpSpec
    var: str
    natural: int = 0
    real: int = 0
    size: Value | None = None  # the size/argsz field's value; None: the natural default
    size_is_default: bool = True
    tail: int = 0
    tail_len: int = 0
    fields: list[FieldSet] = dc_field(default_factory=list)
    allow_ranges: list[list[int]] | None = None  # IOAS_ALLOW_IOVAS side array entries
    allow_entries: int = 0
    ranges_entries: int | None = None  # IOAS_IOVA_RANGES side array capacity (entries)
    ranges_points: bool = False  # allowed_iovas points at that side array

    @property
    def is_struct(self) -> bool:
        return self.spec.kind not in (VFIO_VAL, CLOSE)

    @property
    def wrapped(self) -> bool:
        """The struct needs memory past its natural size."""
        return self.real > self.natural


def _path(spec: OpSpec, name: str) -> str:
    for a in spec.args:
        if a.name == name:
            return a.path
    return name


def _var(i: int, name: str) -> str:
    base = name.lower()
    for p in ("ioas_", "test_", "vfio_iommu_"):
        if base.startswith(p):
            base = base[len(p):]
            break
    return f"{base}{i}"


def plan(prog: Program) -> list[OpPlan]:
    plans: list[OpPlan] = []
    for i, op in enumerate(prog.ops):
        spec = op.spec
        p = OpPlan(i, op.name, spec, _var(i, op.name))
        args = dict(op.args)
        if p.is_struct:
            sp = plan_struct(op)  # the encoder's own layout decisions
            p.natural, p.size, p.size_is_default, p.real = (sp.natural, sp.size,
                                                            sp.size_is_default, sp.real)
            p.tail, p.tail_len = sp.tail, sp.tail_len
            if sp.allow_ranges is not None:
                p.allow_ranges, p.allow_entries = sp.allow_ranges, sp.allow_entries
            if sp.ranges_entries is not None:
                p.ranges_entries, p.ranges_points = sp.ranges_entries, sp.ranges_points
            args = sp.args
            for name, v in args.items():
                path = _path(spec, name)
                width = uapi.field_offset(spec.struct, path)[1]
                p.fields.append(FieldSet(path, width, v))
        else:
            for v in args.values():
                p.fields.append(FieldSet("", 8 if spec.kind == VFIO_VAL else 4, v))
        plans.append(p)
    return plans


# ---------------------------------------------------------------------------
# The uAPI structs, from uapi's cdef text.


def _cdef_blocks() -> dict[str, str]:
    """'struct name' -> its full definition text, in header order."""
    text = uapi._CDEF  # the one transcription of the headers; reused, never retyped
    blocks: dict[str, str] = {}
    lines = text.splitlines()
    k = 0
    while k < len(lines):
        line = lines[k]
        if line.startswith("struct ") and line.rstrip().endswith("{"):
            name = "struct " + line.split()[1]
            depth, body = 0, []
            while True:
                cur = lines[k]
                body.append(cur)
                depth += cur.count("{") - cur.count("}")
                k += 1
                if depth == 0:
                    break
            blocks[name] = "\n".join(body)
        else:
            k += 1
    return blocks


def _deps(block: str) -> list[str]:
    head = block.split("\n", 1)[0].split()[1]
    return [f"struct {m}" for m in re.findall(r"\bstruct\s+(\w+)\s+\w", block) if m != head]


def needed_structs(plans: list[OpPlan]) -> list[str]:
    """The structs the program uses plus what they embed, in header order."""
    blocks = _cdef_blocks()
    want: set[str] = {"struct iommu_test_cmd"}  # the prologue
    for p in plans:
        if p.spec.struct:
            want.add(p.spec.struct)
        if p.allow_ranges is not None or p.ranges_entries is not None:
            want.add("struct iommu_iova_range")
    todo = list(want)
    while todo:
        for d in _deps(blocks[todo.pop()]):
            if d not in want:
                want.add(d)
                todo.append(d)
    return [n for n in blocks if n in want]


_TOKEN = re.compile(r"[A-Za-z_]\w*|\d+|[{}\[\];*]")
_CTYPES = {"uint8_t": "ctypes.c_uint8", "uint16_t": "ctypes.c_uint16",
           "uint32_t": "ctypes.c_uint32", "uint64_t": "ctypes.c_uint64"}


class _CtypesGen:
    """Turns one cdef struct into ctypes classes (anonymous unions get _anonymous_)."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.count = 0

    def struct(self, block: str) -> None:
        toks = _TOKEN.findall(block)
        assert toks[0] == "struct" and toks[2] == "{"
        self._members(toks, 3, toks[1], "Structure")

    def _members(self, toks: list[str], k: int, cls: str, base: str) -> int:
        fields: list[str] = []
        anon: list[str] = []
        while toks[k] != "}":
            if toks[k] in ("struct", "union") and toks[k + 1] == "{":
                self.count += 1
                kind = "Structure" if toks[k] == "struct" else "Union"
                inner = f"_{cls.lstrip('_')}_{self.count}"
                k = self._members(toks, k + 2, inner, kind)
                if toks[k] == ";":  # anonymous member
                    member = f"_anon{self.count}"
                    anon.append(member)
                    fields.append(f'("{member}", {inner})')
                    k += 1
                    continue
                ctype = inner
            elif toks[k] == "struct":
                ctype = toks[k + 1]
                k += 2
            else:
                ctype = _CTYPES[toks[k]]
                k += 1
            if toks[k] == "*":
                ctype = "ctypes.c_void_p"
                k += 1
            name = toks[k]
            k += 1
            if toks[k] == "[":
                if toks[k + 1] == "]":
                    ctype, k = f"{ctype} * 0", k + 2
                else:
                    ctype, k = f"{ctype} * {toks[k + 1]}", k + 3
            assert toks[k] == ";", toks[k - 3:k + 1]
            k += 1
            fields.append(f'("{name}", {ctype})')
        lines = [f"class {cls}(ctypes.{base}):"]
        if anon:
            lines.append(f"    _anonymous_ = ({', '.join(repr(a) for a in anon)},)")
        lines.append("    _fields_ = [")
        lines += [f"        {f}," for f in fields]
        lines.append("    ]")
        self.out.append("\n".join(lines))
        return k + 1


def ctypes_classes(names: list[str]) -> str:
    blocks = _cdef_blocks()
    gen = _CtypesGen()
    for n in names:
        gen.struct(blocks[n])
    return "\n\n\n".join(gen.out)


# ---------------------------------------------------------------------------
# Values, flags and expectations rendered as source text.

_FLAG_NAMES: dict[tuple[str, str], dict[int, str]] = {
    ("IOAS_MAP", "flags"): {1: "IOMMU_IOAS_MAP_FIXED_IOVA", 2: "IOMMU_IOAS_MAP_WRITEABLE",
                            4: "IOMMU_IOAS_MAP_READABLE"},
    ("IOAS_COPY", "flags"): {1: "IOMMU_IOAS_MAP_FIXED_IOVA", 2: "IOMMU_IOAS_MAP_WRITEABLE",
                             4: "IOMMU_IOAS_MAP_READABLE"},
    ("TEST_CREATE_ACCESS", "create_access.flags"): {1: "MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES"},
    ("TEST_ACCESS_PAGES", "access_pages.flags"): {1: "MOCK_FLAGS_ACCESS_WRITE"},
    ("TEST_ACCESS_RW", "access_rw.flags"): {1: "MOCK_ACCESS_RW_WRITE",
                                            4: "MOCK_ACCESS_RW_SLOW_PATH"},
    ("TEST_MOCK_DOMAIN_FLAGS", "mock_domain_flags.dev_flags"): {
        1: "MOCK_FLAGS_DEVICE_NO_DIRTY", 2: "MOCK_FLAGS_DEVICE_HUGE_IOVA"},
    ("VFIO_IOMMU_MAP_DMA", "flags"): {1: "VFIO_DMA_MAP_FLAG_READ", 2: "VFIO_DMA_MAP_FLAG_WRITE"},
    ("VFIO_IOMMU_UNMAP_DMA", "flags"): {1: "VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP",
                                        2: "VFIO_DMA_UNMAP_FLAG_ALL"},
}
_SMALL_NAMES: dict[tuple[str, str], dict[int, str]] = {
    ("OPTION", "option_id"): {0: "IOMMU_OPTION_RLIMIT_MODE", 1: "IOMMU_OPTION_HUGE_PAGES"},
    ("OPTION", "op"): {0: "IOMMU_OPTION_OP_SET", 1: "IOMMU_OPTION_OP_GET"},
    ("VFIO_IOAS", "op"): {0: "IOMMU_VFIO_IOAS_GET", 1: "IOMMU_VFIO_IOAS_SET",
                          2: "IOMMU_VFIO_IOAS_CLEAR"},
    ("VFIO_CHECK_EXTENSION", ""): {1: "VFIO_TYPE1_IOMMU", 3: "VFIO_TYPE1v2_IOMMU",
                                   8: "VFIO_NOIOMMU_IOMMU", 9: "VFIO_UNMAP_ALL",
                                   10: "VFIO_UPDATE_VADDR"},
    ("VFIO_SET_IOMMU", ""): {1: "VFIO_TYPE1_IOMMU", 3: "VFIO_TYPE1v2_IOMMU",
                             8: "VFIO_NOIOMMU_IOMMU"},
}


def _comment(opname: str, path: str, v: Value) -> str:
    if not isinstance(v, int):
        return ""
    names = _FLAG_NAMES.get((opname, path))
    if names and v:
        parts = [n for bit, n in names.items() if v & bit]
        rest = v & ~sum(names)
        if rest:
            parts.append(hex(rest))
        return " | ".join(parts)
    small = _SMALL_NAMES.get((opname, path))
    return small.get(v, "") if small else ""


def _io_form(req: int) -> str:
    """How the header spells a request: all of ours are _IO(type, nr), no size bits."""
    assert req >> 16 == 0, hex(req)
    return f"_IO('{chr(req >> 8 & 0xFF)}', {req & 0xFF:#x})"


def _hex(v: int) -> str:
    return hex(v) if v > 9 else str(v)


def canon_ranges(r: Any) -> str:
    return "[" + ",".join(f"{a:#x}-{b:#x}" for a, b in (r or [])) + "]"


def canon_caps(caps: Any) -> str:
    out = []
    for c in caps or []:
        s = f"{{id={c.get('id', 0)},version={c.get('version', 0)}"
        if "ranges" in c:
            s += ",ranges=" + canon_ranges(c["ranges"])
        if "avail" in c:
            s += f",avail={c['avail']:#x}"
        out.append(s + "}")
    return "".join(out)


def canon(field_name: str, v: Any) -> str:
    """One text form of an output value both languages can build and compare."""
    if field_name == "ranges":
        return canon_ranges(v)
    if field_name == "caps":
        return canon_caps(v)
    if field_name == "data":
        return bytes(v or b"").hex()
    return f"{int(v or 0):#x}"


# ---------------------------------------------------------------------------
# repro.py


def _py_value(plans: list[OpPlan], v: Value) -> str:
    if isinstance(v, Ref):
        src = plans[v.op]
        # "ret" is the ioctl's return value (VFIO by-value ops), kept in r<i>
        expr = f"r{v.op}.ret" if v.field == "ret" else f"{src.var}.{_path(src.spec, v.field)}"
        if v.add:
            expr += f" + {_hex(v.add)}" if v.add > 0 else f" - {_hex(-v.add)}"
        return expr
    if isinstance(v, BufPtr):
        return f"BUF{v.buf}" + (f" + {_hex(v.offset)}" if v.offset else "")
    assert isinstance(v, int), v
    return _hex(v)


def _header_comment(exp: Expectation | None, prog: Program) -> list[str]:
    lines = []
    if exp is not None:
        lines.append(f"Reproducer for: {exp.title}")
        lines.append(f"signature: {exp.signature}")
        if exp.kind == "mismatch":
            lines.append(f"op {exp.op} ({exp.name}): {exp.field}: the kernel answers "
                         f"{_show(exp.field, exp.kernel)}, the reference model expects "
                         f"{_show(exp.field, exp.model)}")
    lines.append(f"{len(prog.ops)} ops on {len(prog.buffers)} buffers; generated by "
                 "iommufd-fuzz from program.json (next to this file).")
    return lines


def _show(field_name: str | None, v: Any) -> str:
    if field_name == "errno":
        return _errno.errorcode.get(v, str(v)) if v else "success (0)"
    if isinstance(v, int):
        return _hex(v)
    if field_name in ("ranges", "caps", "data"):
        return canon(field_name, v)[:200]
    return repr(v)


_PY_PRELUDE = r'''
import ctypes
import errno
import os
import struct
import sys

libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
libc.process_vm_readv.restype = ctypes.c_ssize_t

PROT_READ, PROT_WRITE = 1, 2
MAP_SHARED, MAP_PRIVATE, MAP_ANONYMOUS = 0x01, 0x02, 0x20
MAP_HUGETLB, MAP_FIXED_NOREPLACE = 0x40000, 0x100000
MAP_FAILED = ctypes.c_void_p(-1).value
# Output goes to a private copy of stdout: a program may close(2) small fd numbers.
out = os.fdopen(os.dup(1), "w", buffering=1)


def die(msg):
    out.write("SETUP FAILED: " + msg + "\n")
    sys.exit(2)


def map_buffer(index, addr, size, kind, seed, holes):
    """Buffer `index` at its fixed address: kind anon|hugetlb|memfd|readonly|hole,
    filled with byte k = (k % 251) * 37 + seed, holes [offset, length] unmapped."""
    if kind == "hole":
        return
    prot, flags, fd = PROT_READ | PROT_WRITE, MAP_FIXED_NOREPLACE, -1
    if kind == "memfd":
        fd = os.memfd_create("iommufd-fuzz", 0)
        os.ftruncate(fd, size)
        flags |= MAP_SHARED
    else:
        flags |= MAP_PRIVATE | MAP_ANONYMOUS | (MAP_HUGETLB if kind == "hugetlb" else 0)
    p = libc.mmap(addr, size, prot, flags, fd, 0)
    if fd >= 0:
        os.close(fd)
    if p != addr:
        die(f"buffer {index}: mmap at {addr:#x}: {os.strerror(ctypes.get_errno())}")
    block = bytes((k * 37 + seed) & 0xFF for k in range(251)) * 4096
    for off in range(0, size, len(block)):
        ctypes.memmove(addr + off, block, min(len(block), size - off))
    if kind == "readonly" and libc.mprotect(addr, size, PROT_READ):
        die(f"buffer {index}: mprotect: {os.strerror(ctypes.get_errno())}")
    for off, length in holes:
        libc.munmap(addr + off, length)


def new(cls, real=None):
    """A zeroed struct; `real` bytes of memory when the op needs more than sizeof."""
    raw = ctypes.create_string_buffer(max(real or 0, ctypes.sizeof(cls)))
    return cls.from_buffer(raw)


def fill_tail(s, natural, length, byte):
    """Nonzero bytes past the struct's natural end (copy_struct_from_user's E2BIG)."""
    ctypes.memset(ctypes.addressof(s) + natural, byte, length)


class Result:
    def __init__(self, ret):
        self.ret = ret
        self.errno = ctypes.get_errno() if ret < 0 else 0


def run_ioctl(fd, request, arg):
    ctypes.set_errno(0)
    return Result(libc.ioctl(fd, request, arg))


def run_close(fd, own):
    """As the fuzzer's executor does: only fds this program got back (access fds)
    are closed; any other number answers EBADF as if it were not open."""
    fd = ctypes.c_int(fd & 0xFFFFFFFF).value
    if fd not in own:
        ctypes.set_errno(errno.EBADF)
        return Result(-1)
    own.remove(fd)
    ctypes.set_errno(0)
    return Result(libc.close(fd))


class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


def capture(addr, length):
    """What the executor records after ACCESS_RW: min(length, 65536) bytes at uptr,
    read with process_vm_readv so an unmapped range gives nothing instead of SIGSEGV."""
    length = min(length, CAPTURE_MAX)
    if length == 0:
        return b""
    buf = ctypes.create_string_buffer(length)
    local, remote = iovec(ctypes.addressof(buf), length), iovec(addr, length)
    n = libc.process_vm_readv(os.getpid(), ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
    return buf.raw if n == length else b""


def canon_ranges(rs):
    return "[" + ",".join(f"{a:#x}-{b:#x}" for a, b in rs) + "]"


def read_ranges(arr, num, entries, err):
    if err not in (0, errno.EMSGSIZE):
        return []
    return [[arr[k].start, arr[k].last] for k in range(min(num, entries))]


def read_caps(s, length, cap_offset):
    """The vfio_info_cap_header chain of VFIO_IOMMU_GET_INFO (offsets from the struct)."""
    mem = ctypes.string_at(ctypes.addressof(s), length)
    caps, off, seen = [], cap_offset, set()
    while off and off + 8 <= length and off not in seen and len(caps) < 16:
        seen.add(off)
        cid, ver, nxt = struct.unpack_from("<HHI", mem, off)
        c = f"{{id={cid},version={ver}"
        if cid == 1 and off + 16 <= length:
            nr = struct.unpack_from("<I", mem, off + 8)[0]
            nr = max(0, min(nr, (length - off - 16) // 16))
            c += ",ranges=" + canon_ranges(
                [struct.unpack_from("<QQ", mem, off + 16 + 16 * k) for k in range(nr)])
        elif cid == 3 and off + 12 <= length:
            c += f",avail={struct.unpack_from('<I', mem, off + 8)[0]:#x}"
        caps.append(c + "}")
        off = nxt
    return "".join(caps)


def show(i, name, r, **outputs):
    parts = [f"op {i} {name} errno={r.errno} ({errno.errorcode.get(r.errno, 'ok')}) "
             f"ret={r.ret}"]
    for k, v in outputs.items():
        if isinstance(v, bytes):
            v = f"<{len(v)} bytes {v[:16].hex()}>"
        elif isinstance(v, int):
            v = f"{v:#x}"
        parts.append(f"{k}={v}")
    out.write(" ".join(parts) + "\n")


def read_kmsg(fd):
    lines = []
    while True:
        try:
            rec = os.read(fd, 8192)
        except BlockingIOError:
            break
        except BrokenPipeError:  # records overwritten while we read: go on
            continue
        if not rec:
            break
        lines.append(rec.decode("utf-8", "replace").partition(";")[2].split("\n", 1)[0])
    return lines
'''


def _py_outputs(p: OpPlan) -> list[str]:
    """name=expr pairs for show(), as the executor decodes them."""
    parts = []
    for name in p.spec.outputs:
        if name == "ret":
            continue  # show() prints ret
        if name == "data":
            parts.append(f"data=data{p.index}")
        elif name == "ranges":
            parts.append(f"ranges=canon_ranges(read_ranges({p.var}_ranges, {p.var}.num_iovas, "
                         f"{p.ranges_entries}, r{p.index}.errno))")
        elif name == "caps":
            parts.append(f"caps=read_caps({p.var}, {p.real}, {p.var}.cap_offset) "
                         f"if r{p.index}.errno == 0 else ''")
        else:
            parts.append(f"{name}={p.var}.{_path(p.spec, name)}")
    return parts


def _py_check_expr(p: OpPlan, exp: Expectation) -> str:
    f = exp.field or "errno"
    if f == "errno":
        return f"r{p.index}.errno"
    if f == "ret":
        return f"r{p.index}.ret"
    if f == "data":
        return f"data{p.index}.hex()"
    if f == "ranges":
        return (f"canon_ranges(read_ranges({p.var}_ranges, {p.var}.num_iovas, "
                f"{p.ranges_entries}, r{p.index}.errno))")
    if f == "caps":
        return f"read_caps({p.var}, {p.real}, {p.var}.cap_offset)"
    return f"{p.var}.{_path(p.spec, f)}"


def _expected_literal(exp: Expectation, which: Any) -> tuple[str, Any]:
    """(python literal, raw) of a kernel/model value in the form the check compares."""
    f = exp.field or "errno"
    if f in ("errno", "ret") or f not in ("data", "ranges", "caps"):
        v = int(which or 0) % (1 << 64) if f != "errno" else int(which or 0)
        return (_hex(v) if f != "errno" else str(v)), v
    s = canon(f, which)
    return repr(s), s


def emit_python(prog: Program, exp: Expectation | None = None,
                expected: list[OpResult] | None = None) -> str:
    plans = plan(prog)
    structs = needed_structs(plans)
    consts: dict[str, int] = {}
    for p in plans:
        if p.spec.request:
            consts[p.spec.request] = uapi.request(p.spec.request)
    consts["IOMMU_TEST_CMD"] = uapi.request("IOMMU_TEST_CMD")
    L: list[str] = ["#!/usr/bin/env python3", '"""' + _header_comment(exp, prog)[0]]
    L += _header_comment(exp, prog)[1:]
    L += ["", "Run as root on a kernel with CONFIG_IOMMUFD_TEST=y:   python3 repro.py",
          "Prints one line per op (errno, outputs), then REPRODUCED: <signature> and exits 1,",
          "or NOT REPRODUCED and exits 0. Standard library only.", '"""']
    L.append(_PY_PRELUDE.rstrip())
    L.append(f"\nCAPTURE_MAX = {CAPTURE_MAX}")
    L.append("\n# ioctl requests: _IO(';', nr); iommufd and vfio structs carry their own size")
    for n, v in sorted(consts.items()):
        L.append(f"{n} = {v:#x}  # {_io_form(v)}")
    tops = sorted({p.spec.test_op for p in plans if p.spec.kind == TEST}
                  | {"IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT"})
    for n in tops:
        L.append(f"{n} = {uapi.test_op(n)}")
    L.append("\n\n# uAPI structs (include/uapi/linux/iommufd.h, vfio.h, "
             "drivers/iommu/iommufd/iommufd_test.h, 6.12)")
    L.append(ctypes_classes(structs))
    L.append("\n")
    L.append("def main():")
    body: list[str] = []
    if exp is not None and exp.kind != "mismatch":
        body += ["# the kernel log from here on is where a splat would show",
                 "kmsg = os.open('/dev/kmsg', os.O_RDONLY | os.O_NONBLOCK)",
                 "os.lseek(kmsg, 0, os.SEEK_END)", ""]
    if prog.buffers:
        body.append("# buffers: the same fixed addresses, kinds, contents and holes as the "
                    "fuzzer's")
    for bi in range(len(prog.buffers)):
        body.append(f"BUF{bi} = {BUF_BASE + bi * BUF_STRIDE:#x}")
    for bi, b in enumerate(prog.buffers):
        holes = "[" + ", ".join(f"({o:#x}, {n:#x})" for o, n in b.holes) + "]"
        body.append(f"map_buffer({bi}, BUF{bi}, {b.size:#x}, {b.kind!r}, {b.seed}, {holes})")
    body += ["", "fd = os.open('/dev/iommu', os.O_RDWR)",
             "access_fds = []  # closed at the end, as the fuzzer's executor does", "",
             "# the executor's prologue: reset the selftest's global temp memory limit",
             "prologue = new(iommu_test_cmd)",
             "prologue.size = ctypes.sizeof(iommu_test_cmd)",
             "prologue.op = IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT",
             f"prologue.memory_limit.limit = {TEST_MEMORY_LIMIT_DEFAULT}",
             "libc.ioctl(fd, IOMMU_TEST_CMD, ctypes.addressof(prologue))"]
    check_var = None
    for p in plans:
        body.append("")
        body.append(f"# -- op {p.index}: {p.name} " + "-" * max(0, 60 - len(p.name)))
        if expected is not None and p.index < len(expected):
            body.append(f"# model expects: {expected[p.index].describe()[:150]}")
        if exp is not None and exp.kind == "mismatch" and exp.op == p.index:
            body.append(f"# <- the finding: the model expects {exp.field} = "
                        f"{_show(exp.field, exp.model)}, the kernel answered "
                        f"{_show(exp.field, exp.kernel)}")
        r = f"r{p.index}"
        if p.is_struct:
            cls = p.spec.struct.split()[1]
            body.append(f"{p.var} = new({cls}" + (f", {p.real})" if p.wrapped else ")")
                        + (f"  # {p.real} bytes of memory" if p.wrapped else ""))
            sf = p.spec.size_field
            if p.size_is_default:
                extra = f" + {GET_INFO_CAP_SPACE}" if p.real > p.natural else ""
                body.append(f"{p.var}.{sf} = ctypes.sizeof({cls}){extra}")
            else:
                assert p.size is not None
                body.append(f"{p.var}.{sf} = {_py_value(plans, p.size)}"
                            f"  # sizeof is {p.natural}")
            if p.tail_len:
                body.append(f"fill_tail({p.var}, {p.natural}, {p.tail_len}, {p.tail:#x})")
            if p.spec.kind == TEST:
                body.append(f"{p.var}.op = {p.spec.test_op}")
            if p.allow_ranges is not None:
                rs = ", ".join(f"({a:#x}, {b:#x})" for a, b in p.allow_ranges)
                body.append(f"{p.var}_ranges = (iommu_iova_range * {p.allow_entries})"
                            f"(*[iommu_iova_range(s, e) for s, e in [{rs}]])")
                body.append(f"{p.var}.allowed_iovas = ctypes.addressof({p.var}_ranges)")
            if p.ranges_entries is not None:
                body.append(f"{p.var}_ranges = (iommu_iova_range * "
                            f"{max(p.ranges_entries, 1)})()  # the array the kernel fills")
                if p.ranges_points:
                    body.append(f"{p.var}.allowed_iovas = ctypes.addressof({p.var}_ranges)")
            for f in p.fields:
                c = _comment(p.name, f.path, f.value)
                body.append(f"{p.var}.{f.path} = {_py_value(plans, f.value)}"
                            + (f"  # {c}" if c else ""))
            body.append(f"{r} = run_ioctl(fd, {p.spec.request}, ctypes.addressof({p.var}))")
            if p.name == "TEST_ACCESS_RW":
                body.append(f"data{p.index} = capture({p.var}.access_rw.uptr, "
                            f"{p.var}.access_rw.length) if {r}.errno == 0 else b''")
            if p.name == "TEST_CREATE_ACCESS":
                body.append(f"if {r}.errno == 0:")
                body.append(f"    access_fds.append({p.var}.create_access.out_access_fd)")
        elif p.spec.kind == VFIO_VAL:
            v = _py_value(plans, p.fields[0].value) if p.fields else "0"
            c = _comment(p.name, "", p.fields[0].value) if p.fields else ""
            body.append(f"{r} = run_ioctl(fd, {p.spec.request}, {v})"
                        + (f"  # {c}" if c else ""))
        else:
            v = _py_value(plans, p.fields[0].value) if p.fields else "0"
            body.append(f"{r} = run_close({v}, access_fds)")
        outs = _py_outputs(p)
        body.append(f"show({p.index}, {p.name!r}, {r}" + "".join(f", {o}" for o in outs) + ")")
        if exp is not None and exp.kind == "mismatch" and exp.op == p.index:
            check_var = f"got = {_py_check_expr(p, exp)}"
            body.append(check_var)
    body += ["", "# teardown, in the executor's order: access fds (the program may have closed",
             "# them already: errors ignored, as there), then the iommufd",
             "for afd in access_fds:", "    if afd != fd:", "        libc.close(afd)",
             "libc.close(fd)", ""]
    body += _py_verdict(exp, check_var is not None)
    L += ["    " + ln if ln else "" for ln in body]
    L += ["", "", 'if __name__ == "__main__":', "    sys.exit(main())", ""]
    return "\n".join(L)


def _py_verdict(exp: Expectation | None, have_check: bool) -> list[str]:
    if exp is None:
        return ["return 0"]
    sig = repr(exp.signature)
    if exp.kind == "mismatch":
        if not have_check:
            return [f"out.write('NOT REPRODUCED: op {exp.op} is not in this program\\n')",
                    "return 0"]
        model_lit, _ = _expected_literal(exp, exp.model)
        kernel_lit, _ = _expected_literal(exp, exp.kernel)
        cond = "got != MODEL and got == KERNEL_SEEN" if exp.field == "errno" \
            else "got != MODEL"
        return [f"MODEL = {model_lit}  # what the reference model expects",
                f"KERNEL_SEEN = {kernel_lit}  # what the kernel answered when found",
                f"out.write(f'op {exp.op} {exp.name}.{exp.field}: kernel {{got!r}}, "
                f"model expects {{MODEL!r}}\\n')",
                f"if {cond}:",
                f"    out.write('REPRODUCED: ' + {sig} + '\\n')",
                "    return 1",
                "out.write('NOT REPRODUCED\\n')",
                "return 0"]
    return [f"KEYS = {exp.keys!r}  # from the splat title {exp.title!r}",
            "lines = read_kmsg(kmsg)",
            "hits = [ln for ln in lines if any(k in ln for k in KEYS)]",
            "for ln in hits[:20]:",
            "    out.write('kmsg: ' + ln + '\\n')",
            "if all(any(k in ln for ln in lines) for k in KEYS):",
            f"    out.write('REPRODUCED: ' + {sig} + '\\n')",
            "    return 1",
            "out.write('NOT REPRODUCED\\n')",
            "return 0"]


# ---------------------------------------------------------------------------
# repro.c


def _c_int(v: int, width: int = 8) -> str:
    v %= 1 << (8 * width)
    if v <= 9:
        return str(v)
    return f"{v:#x}" + ("ULL" if v > 0x7FFFFFFF else "")


def _c_lvalue(p: OpPlan, path: str) -> str:
    return f"{p.var}.s.{path}" if p.wrapped else f"{p.var}.{path}"


def _c_value(plans: list[OpPlan], v: Value, width: int) -> str:
    if isinstance(v, Ref):
        src = plans[v.op]
        # "ret" is the ioctl's return value (VFIO by-value ops), kept in ret[]
        expr = f"ret[{v.op}]" if v.field == "ret" else _c_lvalue(src, _path(src.spec, v.field))
        if v.add:
            expr = f"(uint64_t){expr} " + (f"+ {_c_int(v.add)}" if v.add > 0
                                          else f"- {_c_int(-v.add)}")
        return expr
    if isinstance(v, BufPtr):
        return f"BUF{v.buf}" + (f" + {_c_int(v.offset)}" if v.offset else "")
    assert isinstance(v, int), v
    return _c_int(v, width)


def _c_initializer(plans: list[OpPlan], p: OpPlan, indent: str) -> list[str]:
    """Designated initializer lines; union members ("access_rw.iova") nest."""
    top: list[tuple[str, str]] = []
    nested: dict[str, list[tuple[str, str]]] = {}
    sf = p.spec.size_field
    cls = p.spec.struct
    if p.size_is_default:
        size = f"sizeof({cls})" + (f" + {GET_INFO_CAP_SPACE}" if p.wrapped else "")
        top.append((sf, size))
    else:
        assert p.size is not None
        top.append((sf, _c_value(plans, p.size, 4) + f" /* sizeof is {p.natural} */"))
    if p.spec.kind == TEST:
        top.append(("op", p.spec.test_op))
    if p.allow_ranges is not None or (p.ranges_entries is not None and p.ranges_points):
        top.append(("allowed_iovas", f"(uintptr_t){p.var}_ranges"))
    for f in p.fields:
        c = _comment(p.name, f.path, f.value)
        val = _c_value(plans, f.value, f.width) + (f" /* {c} */" if c else "")
        if "." in f.path:
            head, rest = f.path.split(".", 1)
            nested.setdefault(head, []).append((rest, val))
        else:
            top.append((f.path, val))
    lines = [f"{indent}.{k} = {v}," for k, v in top]
    for head, items in nested.items():
        lines.append(f"{indent}.{head} = {{")
        lines += [f"{indent}\t.{k} = {v}," for k, v in items]
        lines.append(f"{indent}}},")
    return lines


def _c_outputs(p: OpPlan) -> list[str]:
    out = []
    for name in p.spec.outputs:
        if name == "ret":
            continue
        if name == "data":
            out.append(f'\tshow_data("data", data{p.index}, data{p.index}_len);')
        elif name == "ranges":
            out.append(f"\tshow_str(\"ranges\", canon_ranges({p.var}_ranges, "
                       f"{_c_lvalue(p, 'num_iovas')}, {p.ranges_entries}, err[{p.index}]));")
        elif name == "caps":
            out.append(f"\tshow_str(\"caps\", err[{p.index}] ? \"\" : read_caps("
                       f"(unsigned char *)&{p.var}, {p.real}, {_c_lvalue(p, 'cap_offset')}));")
        else:
            out.append(f'\tshow_u64("{name}", {_c_lvalue(p, _path(p.spec, name))});')
    return out


_C_PRELUDE = r"""#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MAP_HUGETLB
#define MAP_HUGETLB 0x40000
#endif
#define CAPTURE_MAX 65536
"""

_C_HELPERS = r"""
static FILE *out; /* a private copy of stdout: a program may close(2) small fd numbers */

/* As the fuzzer's executor does: only fds this program got back (access fds) are
 * closed; any other number answers EBADF as if it were not open. */
static long close_own(int fd, int *fds, int *nfds)
{
	for (int k = 0; k < *nfds; k++) {
		if (fds[k] != fd)
			continue;
		fds[k] = fds[--*nfds];
		return close(fd);
	}
	errno = EBADF;
	return -1;
}
static int err[NR_OPS > 0 ? NR_OPS : 1];
static long ret[NR_OPS > 0 ? NR_OPS : 1];
static char strbuf[1 << 18];

static void die(const char *what)
{
	fprintf(out, "SETUP FAILED: %s: %s\n", what, strerror(errno));
	exit(2);
}

/* Buffer at its fixed address, filled with byte k = (k % 251) * 37 + seed. */
static void map_buffer(uint64_t addr, uint64_t size, const char *kind, unsigned seed)
{
	int flags = MAP_FIXED_NOREPLACE, fd = -1;
	unsigned char block[251];
	void *p;

	if (!strcmp(kind, "hole"))
		return;
	if (!strcmp(kind, "memfd")) {
		fd = syscall(SYS_memfd_create, "iommufd-fuzz", 0);
		if (fd < 0 || ftruncate(fd, size))
			die("memfd");
		flags |= MAP_SHARED;
	} else {
		flags |= MAP_PRIVATE | MAP_ANONYMOUS | (!strcmp(kind, "hugetlb") ? MAP_HUGETLB : 0);
	}
	p = mmap((void *)(uintptr_t)addr, size, PROT_READ | PROT_WRITE, flags, fd, 0);
	if (fd >= 0)
		close(fd);
	if (p != (void *)(uintptr_t)addr)
		die("mmap of a buffer at its fixed address");
	for (int k = 0; k < 251; k++)
		block[k] = (unsigned char)(k * 37 + seed);
	for (uint64_t off = 0; off < size; off += 251)
		memcpy((char *)p + off, block, size - off < 251 ? size - off : 251);
	if (!strcmp(kind, "readonly") && mprotect(p, size, PROT_READ))
		die("mprotect");
}

static void done(int i, const char *name, long r)
{
	err[i] = r < 0 ? errno : 0;
	ret[i] = r;
	fprintf(out, "op %d %s errno=%d (%s) ret=%ld", i, name, err[i],
		err[i] ? strerror(err[i]) : "ok", r);
}

static void show_u64(const char *name, uint64_t v)
{
	fprintf(out, " %s=0x%llx", name, (unsigned long long)v);
}

__attribute__((unused)) static void show_str(const char *name, const char *s)
{
	fprintf(out, " %s=%s", name, s);
}

__attribute__((unused)) static void show_data(const char *name, const unsigned char *d, size_t n)
{
	fprintf(out, " %s=<%zu bytes ", name, n);
	for (size_t k = 0; k < n && k < 16; k++)
		fprintf(out, "%02x", d[k]);
	fprintf(out, ">");
}

__attribute__((unused)) static const char *hex(const unsigned char *d, size_t n)
{
	size_t k;

	for (k = 0; k < n && 2 * k + 2 < sizeof(strbuf); k++)
		sprintf(strbuf + 2 * k, "%02x", d[k]);
	strbuf[2 * k] = 0;
	return strbuf;
}

/* What the executor records after ACCESS_RW: min(length, 65536) bytes at uptr, read with
 * process_vm_readv so an unmapped range gives nothing instead of SIGSEGV. */
__attribute__((unused)) static size_t capture(uint64_t addr, uint64_t len, unsigned char *dst)
{
	struct iovec local, remote;

	if (len > CAPTURE_MAX)
		len = CAPTURE_MAX;
	if (!len)
		return 0;
	local.iov_base = dst;
	local.iov_len = len;
	remote.iov_base = (void *)(uintptr_t)addr;
	remote.iov_len = len;
	return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == (ssize_t)len ? len : 0;
}
"""

_C_RANGES = r"""
__attribute__((unused))
static const char *canon_ranges(const struct iommu_iova_range *r, uint32_t num,
				uint32_t entries, int e)
{
	size_t n = 0;

	n += snprintf(strbuf + n, sizeof(strbuf) - n, "[");
	if (e == 0 || e == EMSGSIZE)
		for (uint32_t k = 0; k < num && k < entries && n < sizeof(strbuf) - 64; k++)
			n += snprintf(strbuf + n, sizeof(strbuf) - n, "%s0x%llx-0x%llx", k ? "," : "",
					(unsigned long long)r[k].start, (unsigned long long)r[k].last);
	snprintf(strbuf + n, sizeof(strbuf) - n, "]");
	return strbuf;
}
"""

_C_CAPS = r"""
/* The vfio_info_cap_header chain of VFIO_IOMMU_GET_INFO (offsets from the struct start). */
__attribute__((unused))
static const char *read_caps(const unsigned char *s, uint32_t length, uint32_t off)
{
	uint32_t seen[16];
	int ncaps = 0;
	size_t n = 0;

	strbuf[0] = 0;
	while (off && off + 8 <= length && ncaps < 16 && n < sizeof(strbuf) - 256) {
		uint16_t id, ver;
		uint32_t next, nr;
		int dup = 0;

		for (int k = 0; k < ncaps; k++)
			dup |= seen[k] == off;
		if (dup)
			break;
		seen[ncaps++] = off;
		memcpy(&id, s + off, 2);
		memcpy(&ver, s + off + 2, 2);
		memcpy(&next, s + off + 4, 4);
		n += snprintf(strbuf + n, sizeof(strbuf) - n, "{id=%u,version=%u", id, ver);
		if (id == 1 && off + 16 <= length) {
			memcpy(&nr, s + off + 8, 4);
			if (nr > (length - off - 16) / 16)
				nr = (length - off - 16) / 16;
			n += snprintf(strbuf + n, sizeof(strbuf) - n, ",ranges=[");
			for (uint32_t k = 0; k < nr && n < sizeof(strbuf) - 64; k++) {
				uint64_t a, b;

				memcpy(&a, s + off + 16 + 16 * k, 8);
				memcpy(&b, s + off + 24 + 16 * k, 8);
				n += snprintf(strbuf + n, sizeof(strbuf) - n, "%s0x%llx-0x%llx",
						k ? "," : "", (unsigned long long)a, (unsigned long long)b);
			}
			n += snprintf(strbuf + n, sizeof(strbuf) - n, "]");
		} else if (id == 3 && off + 12 <= length) {
			memcpy(&nr, s + off + 8, 4);
			n += snprintf(strbuf + n, sizeof(strbuf) - n, ",avail=0x%x", nr);
		}
		n += snprintf(strbuf + n, sizeof(strbuf) - n, "}");
		off = next;
	}
	return strbuf;
}
"""

_C_KMSG = r"""
/* Every kernel log record from fd, one message per line, into strbuf. */
static const char *read_kmsg(int fd)
{
	char rec[8192];
	size_t n = 0;
	ssize_t len;

	strbuf[0] = 0;
	for (;;) {
		len = read(fd, rec, sizeof(rec) - 1);
		if (len < 0 && errno == EPIPE)
			continue;
		if (len <= 0)
			break;
		rec[len] = 0;
		char *msg = strchr(rec, ';');
		char *nl = msg ? strchr(msg, '\n') : NULL;
		if (!msg)
			continue;
		if (nl)
			*nl = 0;
		n += snprintf(strbuf + n, sizeof(strbuf) - n, "%s\n", msg + 1);
		if (n >= sizeof(strbuf) - 1)
			break;
	}
	return strbuf;
}
"""


def _c_string(s: str) -> str:
    return json.dumps(s)  # a JSON string is a valid C string literal for printable text


def emit_c(prog: Program, exp: Expectation | None = None,
           expected: list[OpResult] | None = None) -> str:
    plans = plan(prog)
    structs = needed_structs(plans)
    blocks = _cdef_blocks()
    head = _header_comment(exp, prog)
    L = ["/*"] + [f" * {ln}" for ln in head]
    L += [" *", " * Build: gcc repro.c -o repro      (no kernel headers needed: the 6.12 uAPI",
          " * structs are inlined below). Run as root on a kernel with CONFIG_IOMMUFD_TEST=y.",
          " * Prints one line per op, then REPRODUCED: <signature> (exit 1) or NOT REPRODUCED",
          " * (exit 0).", " */"]
    L.append(_C_PRELUDE)
    L.append("/* uAPI structs from include/uapi/linux/iommufd.h, vfio.h and "
             "drivers/iommu/iommufd/iommufd_test.h (6.12) */")
    for n in structs:
        L.append(blocks[n])
        L.append("")
    L.append("/* ioctl requests: _IO(';', nr) - iommufd and vfio structs carry their own size */")
    reqs = {p.spec.request for p in plans if p.spec.request} | {"IOMMU_TEST_CMD"}
    for n in sorted(reqs):
        L.append(f"#define {n} {uapi.request(n):#x} /* {_io_form(uapi.request(n))} */")
    tops = sorted({p.spec.test_op for p in plans if p.spec.kind == TEST}
                  | {"IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT"})
    for n in tops:
        L.append(f"#define {n} {uapi.test_op(n)}")
    for bi in range(len(prog.buffers)):
        L.append(f"#define BUF{bi} {BUF_BASE + bi * BUF_STRIDE:#x}ULL")
    L.append(f"#define NR_OPS {len(plans)}")
    L.append(_C_HELPERS)
    if any(p.ranges_entries is not None for p in plans) or (exp and exp.field == "ranges"):
        L.append(_C_RANGES)
    if any(p.name == "VFIO_IOMMU_GET_INFO" for p in plans):
        L.append(_C_CAPS)
    if exp is not None and exp.kind != "mismatch":
        L.append(_C_KMSG)
    L.append("int main(void)\n{")
    B: list[str] = ["int fd, nfds = 0, fds[256];"]
    B.append("out = fdopen(dup(1), \"w\");")
    B.append("setvbuf(out, NULL, _IOLBF, 0);")
    if exp is not None and exp.kind != "mismatch":
        B += ["/* the kernel log from here on is where a splat would show */",
              "int kmsg = open(\"/dev/kmsg\", O_RDONLY | O_NONBLOCK);",
              "lseek(kmsg, 0, SEEK_END);"]
    B.append("")
    if prog.buffers:
        B.append("/* buffers: the same fixed addresses, kinds, contents and holes as the "
                 "fuzzer's */")
    for bi, b in enumerate(prog.buffers):
        B.append(f"map_buffer(BUF{bi}, {_c_int(b.size)}, \"{b.kind}\", {b.seed});")
        for o, n in b.holes:
            B.append(f"munmap((void *)(uintptr_t)(BUF{bi} + {_c_int(o)}), {_c_int(n)});")
    B += ["", "fd = open(\"/dev/iommu\", O_RDWR);", "if (fd < 0)", "\tdie(\"open /dev/iommu\");",
          "", "/* the executor's prologue: reset the selftest's global temp memory limit */",
          "struct iommu_test_cmd prologue = {",
          "\t.size = sizeof(struct iommu_test_cmd),",
          "\t.op = IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT,",
          f"\t.memory_limit = {{ .limit = {TEST_MEMORY_LIMIT_DEFAULT} }},", "};",
          "ioctl(fd, IOMMU_TEST_CMD, &prologue);"]
    have_check = False
    for p in plans:
        B.append("")
        B.append(f"/* -- op {p.index}: {p.name} " + "-" * max(0, 56 - len(p.name)) + " */")
        if expected is not None and p.index < len(expected):
            B.append(f"/* model expects: {expected[p.index].describe()[:150]} */")
        if exp is not None and exp.kind == "mismatch" and exp.op == p.index:
            B.append(f"/* <- the finding: the model expects {exp.field} = "
                     f"{_show(exp.field, exp.model)}, the kernel answered "
                     f"{_show(exp.field, exp.kernel)} */")
        i = p.index
        if p.is_struct:
            if p.allow_ranges is not None:
                B.append(f"struct iommu_iova_range {p.var}_ranges[{p.allow_entries}] = {{")
                B += [f"\t{{ .start = {_c_int(a)}, .last = {_c_int(b)} }},"
                      for a, b in p.allow_ranges]
                B.append("};")
            if p.ranges_entries is not None:
                B.append(f"struct iommu_iova_range {p.var}_ranges[{max(p.ranges_entries, 1)}]"
                         " = { 0 }; /* the array the kernel fills */")
            if p.wrapped:
                B.append("struct {")
                B.append(f"\t{p.spec.struct} s;")
                B.append(f"\tunsigned char more[{p.real - p.natural}];"
                         + (" /* room for the capability chain */"
                            if p.name == "VFIO_IOMMU_GET_INFO" else ""))
                B.append(f"}} {p.var} = {{ .s = {{")
                B += _c_initializer(plans, p, "\t")
                B.append("} };")
            else:
                B.append(f"{p.spec.struct} {p.var} = {{")
                B += _c_initializer(plans, p, "\t")
                B.append("};")
            if p.tail_len:
                B.append("/* nonzero bytes past the natural end: copy_struct_from_user's "
                         "E2BIG check */")
                B.append(f"memset((unsigned char *)&{p.var} + {p.natural}, {p.tail:#x}, "
                         f"{p.tail_len});")
            B.append(f"done({i}, \"{p.name}\", ioctl(fd, {p.spec.request}, &{p.var}));")
            if p.name == "TEST_ACCESS_RW":
                B.append(f"static unsigned char data{i}[CAPTURE_MAX];")
                B.append(f"size_t data{i}_len = err[{i}] ? 0 : capture("
                         f"{_c_lvalue(p, 'access_rw.uptr')}, {_c_lvalue(p, 'access_rw.length')}, "
                         f"data{i});")
            if p.name == "TEST_CREATE_ACCESS":
                B.append(f"if (!err[{i}] && nfds < 256)")
                B.append(f"\tfds[nfds++] = {_c_lvalue(p, 'create_access.out_access_fd')};")
        elif p.spec.kind == VFIO_VAL:
            v = _c_value(plans, p.fields[0].value, 8) if p.fields else "0"
            c = _comment(p.name, "", p.fields[0].value) if p.fields else ""
            B.append(f"done({i}, \"{p.name}\", ioctl(fd, {p.spec.request}, "
                     f"(unsigned long){v}));" + (f" /* {c} */" if c else ""))
        else:
            v = _c_value(plans, p.fields[0].value, 4) if p.fields else "0"
            B.append(f"done({i}, \"{p.name}\", close_own((int){v}, fds, &nfds));")
        B += [ln[1:] for ln in _c_outputs(p)]
        B.append("fprintf(out, \"\\n\");")
        if exp is not None and exp.kind == "mismatch" and exp.op == p.index:
            have_check = True
            B += _c_capture_check(p, exp)
    B += ["", "/* teardown, in the executor's order: access fds, then the iommufd */",
          "for (int k = 0; k < nfds; k++)", "\tif (fds[k] != fd)", "\t\tclose(fds[k]);",
          "close(fd);", ""]
    B += _c_verdict(exp, have_check)
    L += ["\t" + ln if ln else "" for ln in B]
    L.append("}")
    return "\n".join(L) + "\n"


def _c_capture_check(p: OpPlan, exp: Expectation) -> list[str]:
    """Remember the checked value right after the op (strbuf is reused later)."""
    f = exp.field or "errno"
    i = p.index
    if f == "errno":
        return [f"long long got = err[{i}];"]
    if f == "ret":
        return [f"long long got = ret[{i}];"]
    if f == "data":
        return ["static char got[2 * CAPTURE_MAX + 1];",
                f"snprintf(got, sizeof(got), \"%s\", hex(data{i}, data{i}_len));"]
    if f == "ranges":
        return ["static char got[sizeof(strbuf)];",
                f"snprintf(got, sizeof(got), \"%s\", canon_ranges({p.var}_ranges, "
                f"{_c_lvalue(p, 'num_iovas')}, {p.ranges_entries}, err[{i}]));"]
    if f == "caps":
        return ["static char got[sizeof(strbuf)];",
                f"snprintf(got, sizeof(got), \"%s\", read_caps((unsigned char *)&{p.var}, "
                f"{p.real}, {_c_lvalue(p, 'cap_offset')}));"]
    return [f"unsigned long long got = {_c_lvalue(p, _path(p.spec, f))};"]


def _c_verdict(exp: Expectation | None, have_check: bool) -> list[str]:
    if exp is None:
        return ["return 0;"]
    sig = _c_string(exp.signature)
    if exp.kind == "mismatch":
        if not have_check:
            return [f"fprintf(out, \"NOT REPRODUCED: op {exp.op} is not in this program\\n\");",
                    "return 0;"]
        f = exp.field or "errno"
        if f in ("data", "ranges", "caps"):
            model = _c_string(canon(f, exp.model))
            return [f"const char *model = {model}; /* what the reference model expects */",
                    f"fprintf(out, \"op {exp.op} {exp.name}.{f}: kernel %s, model expects "
                    f"%s\\n\", got, model);",
                    "if (strcmp(got, model)) {",
                    f"\tfprintf(out, \"REPRODUCED: %s\\n\", {sig});", "\treturn 1;", "}",
                    "fprintf(out, \"NOT REPRODUCED\\n\");", "return 0;"]
        model = int(exp.model or 0)
        kernel = int(exp.kernel or 0)
        if f == "errno":
            cond = f"got != {model} && got == {kernel}"
            lines = [f"/* the model expects errno {model}, the kernel answered {kernel} */"]
        else:
            cond = f"got != {_c_int(model)}"
            lines = [f"/* the model expects {_c_int(model)} */"]
        return lines + [
            f"fprintf(out, \"op {exp.op} {exp.name}.{f}: kernel 0x%llx, model expects 0x%llx\\n\","
            f" (unsigned long long)got, (unsigned long long){_c_int(model)});",
            f"if ({cond}) {{", f"\tfprintf(out, \"REPRODUCED: %s\\n\", {sig});",
            "\treturn 1;", "}", "fprintf(out, \"NOT REPRODUCED\\n\");", "return 0;"]
    keys = ", ".join(_c_string(k) for k in exp.keys)
    return [f"/* from the splat title {_c_string(exp.title)[1:-1]} */",
            f"const char *keys[] = {{ {keys} }};",
            "const char *log = read_kmsg(kmsg);",
            "int found = 1;",
            f"for (unsigned k = 0; k < {len(exp.keys)}; k++)",
            "\tfound &= strstr(log, keys[k]) != NULL;",
            "fputs(log, out);",
            "if (found) {", f"\tfprintf(out, \"REPRODUCED: %s\\n\", {sig});", "\treturn 1;", "}",
            "fprintf(out, \"NOT REPRODUCED\\n\");", "return 0;"]


# ---------------------------------------------------------------------------
# The reproducer directory.


def report_text(exp: Expectation, prog: Program, manifest: dict[str, Any], *,
                splat_text: str = "", stats: dict[str, Any] | None = None,
                verified: list[str] | None = None) -> str:
    s = stats or {}
    L = [f"Title:      {exp.title}", f"Signature:  {exp.signature}", f"Kind:       {exp.kind}",
         f"Kernel:     {manifest.get('kernel_version', '?')}"
         + (f" ({manifest['source']})" if manifest.get("source") else ""),
         f"Config:     sha256 {manifest.get('config_sha256', '?')}", ""]
    if exp.kind == "mismatch":
        L += ["Mismatch between the kernel and the reference model:",
              f"  op {exp.op} ({exp.name}), field {exp.field}",
              f"  kernel: {_show(exp.field, exp.kernel)}",
              f"  model:  {_show(exp.field, exp.model)}", ""]
    if splat_text:
        L += ["Kernel log:", *("  " + ln for ln in splat_text.rstrip().splitlines()), ""]
    if s:
        L += ["Minimization:",
              f"  ops {s.get('original_ops')} -> {s.get('minimized_ops')}, buffers "
              f"{s.get('original_buffers')} -> {s.get('minimized_buffers')}, "
              f"{s.get('runs')} kernel runs, {s.get('seconds', 0):.0f} s",
              f"  reproduction rate of the original: {s.get('hits')}/{s.get('rate_runs')}"
              f" ({100 * s.get('rate', 0):.0f}%); each candidate tried up to "
              f"{s.get('tries')} time(s)", ""]
    L += ["Program (minimized):", *("  " + ln for ln in prog.dumps().splitlines()), ""]
    L += ["Reproduce (as root, kernel with CONFIG_IOMMUFD_TEST=y):",
          "  python3 repro.py", "  gcc repro.c -o repro && ./repro",
          "Either prints REPRODUCED: <signature> and exits 1 when the finding reproduces.", ""]
    if verified:
        L += ["Verified:", *("  " + ln for ln in verified), ""]
    return "\n".join(L)


def write_reproducer(out_dir: Path, prog: Program, exp: Expectation,
                     manifest: dict[str, Any], *, expected: list[OpResult] | None = None,
                     splat_text: str = "", stats: dict[str, Any] | None = None,
                     verified: list[str] | None = None) -> Path:
    """repro.py, repro.c, report.txt, program.json and repro.json (what the checks
    compare), each written atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / "program.json", prog.dumps().encode())
    atomic_write(out_dir / "repro.py", emit_python(prog, exp, expected).encode())
    atomic_write(out_dir / "repro.c", emit_c(prog, exp, expected).encode())
    meta = {"expectation": exp.to_json(), "manifest": manifest, "stats": stats or {},
            "splat_text": splat_text}
    atomic_write(out_dir / "repro.json", (json.dumps(meta, indent=1) + "\n").encode())
    atomic_write(out_dir / "report.txt", report_text(exp, prog, manifest, splat_text=splat_text,
                                                     stats=stats, verified=verified).encode())
    (out_dir / "repro.py").chmod(0o755)
    return out_dir


_ = (_struct, OPS)
