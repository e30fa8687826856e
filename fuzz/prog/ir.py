"""The program IR: buffers of user memory plus a list of ops with symbolic refs.

A program is what every part of the fuzzer speaks: generators write it, the
model and the kernel executor run it, the minimizer shrinks it, reproducers are
printed from it. It serializes to a stable, readable JSON document:

    {"version": 1,
     "buffers": [{"size": 1048576, "kind": "anon", "seed": 3, "holes": [[4096, 4096]]}],
     "ops": [{"op": "IOAS_ALLOC"},
             {"op": "IOAS_MAP", "args": {"ioas_id": {"ref": 0, "field": "out_ioas_id"},
                                         "user_va": {"buf": 0, "offset": 0},
                                         "length": 65536, "flags": 6}}]}

Argument values are an int, a Ref to an output field of an earlier op (plus an
optional addend, wrapping at the field's width), a BufPtr (the address of a
program buffer plus an offset), or, for Ranges arguments, a list of [start, last].
An int must fit its field: [-2^(w-1), 2^w) for a field of w bits.

Buffer i always lives at BUF_BASE + i * BUF_STRIDE, so user addresses - and the
IOVA alignment the kernel derives from them - are the same in every run, in the
model, and in the emitted reproducers.

How an op instance runs (not what the op is: that is its description) takes three
optional keys, so programs without them read and mean what they always did:

    "fail_nth": N   fail the Nth fault point the op's call passes (fail_iommufd,
                    failslab, fail_page_alloc, through /proc/thread-self/fail-nth)
    "thread": T     issue the call from thread T (0..3; 0, the default, is the main one)
    "barrier": B    a race group: a maximal run of consecutive ops with the same B
                    (1..255) starts together - each thread's ops of the group in
                    program order, the threads released at once from one barrier -
                    and the group is joined before the next op. An op of a group
                    takes no ref to another op of the same group (its arguments are
                    all known when the group starts). Ops outside groups run one at
                    a time, in program order, on their thread.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fuzz import crashpoint, uapi
from fuzz.prog import jsonio
from fuzz.prog.descriptions import OPS
from fuzz.prog.limits import (
    MAX_BARRIER,
    MAX_BUFFER_BYTES,
    MAX_BUFFER_SIZE,
    MAX_BUFFERS,
    MAX_FAIL_NTH,
    MAX_GROUP_OPS,
    MAX_HOLES,
    MAX_OPS,
    MAX_PROGRAM_BYTES,
    MAX_RANGES,
    MAX_THREADS,
)
from fuzz.prog.types import COMMON_ARGS, COMMON_WIDTHS, Entries, OpDesc, Ranges

SCHEMA_VERSION = 1
BUF_BASE = 0x2000_0000_0000
BUF_STRIDE = 1 << 32
# The executor's scratch mapping (an argument's default, see Uptr.scratch) sits in the
# slot just below the program's buffers.
SCRATCH_ADDR = BUF_BASE - BUF_STRIDE
HUGE_PAGE = 2 << 20
PAGE = 4096
BUFFER_KINDS = ("anon", "hugetlb", "memfd", "readonly", "hole")
# The capabilities a program can run without: the ones drivers/iommu/iommufd checks.
CREDS_CAPS = ("CAP_IPC_LOCK", "CAP_SYS_RESOURCE")


class ProgramError(jsonio.InputError):
    """A program that does not follow the schema; says where."""


@dataclass(frozen=True)
class Ref:
    op: int
    field: str
    add: int = 0


@dataclass(frozen=True)
class BufPtr:
    buf: int
    offset: int = 0


Value = int | Ref | BufPtr | list


@dataclass
class Buffer:
    """User memory. kind: anon (private anonymous), hugetlb (2M pages),
    memfd (shared memfd mapping), readonly (PROT_READ anon), hole (nothing
    mapped at all). holes: [offset, length] page ranges unmapped afterwards.
    Contents start as pattern_bytes(seed, ...)."""

    size: int
    kind: str = "anon"
    seed: int = 0
    holes: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class Op:
    name: str
    args: dict[str, Value] = field(default_factory=dict)
    fail_nth: int = 0  # fail the Nth fault point of this call (0: no fault injection)
    thread: int = 0  # the thread that issues it
    barrier: int = 0  # race group label (0: none); see the module docstring

    @property
    def desc(self) -> OpDesc:
        return OPS[self.name]

    spec = desc  # the name older callers use


OP_KEYS = ("op", "args", "fail_nth", "thread", "barrier")


@dataclass(frozen=True)
class Creds:
    """Run the calls without the capabilities in drop (CREDS_CAPS names) and with
    RLIMIT_MEMLOCK at memlock bytes (see the module docstring)."""

    drop: tuple[str, ...] = ("CAP_IPC_LOCK",)
    memlock: int = 0

    def has(self, cap: str) -> bool:
        return cap not in self.drop

    @property
    def cap_mask(self) -> int:
        return sum(1 << uapi.CONST[c] for c in self.drop)

    def describe(self) -> str:
        """As the reproducers' comments say it."""
        return f"without {', '.join(self.drop) or 'no capability'}, RLIMIT_MEMLOCK {self.memlock}"


@dataclass
class Program:
    ops: list[Op] = field(default_factory=list)
    buffers: list[Buffer] = field(default_factory=list)
    creds: Creds | None = None  # None: root with every capability

    def has_cap(self, cap: str) -> bool:
        return self.creds is None or self.creds.has(cap)

    # -- how the ops run ----------------------------------------------------------
    def groups(self) -> list[range]:
        """The race groups: maximal runs of consecutive ops with one barrier label."""
        out: list[range] = []
        i = 0
        while i < len(self.ops):
            b = self.ops[i].barrier
            j = i + 1
            while b and j < len(self.ops) and self.ops[j].barrier == b:
                j += 1
            if b:
                out.append(range(i, j))
            i = j
        return out

    @property
    def threaded(self) -> bool:
        return any(op.thread or op.barrier for op in self.ops)

    @property
    def faulted(self) -> bool:
        return any(op.fail_nth for op in self.ops)

    # -- JSON -------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        bufs = []
        for b in self.buffers:
            d: dict[str, Any] = {"size": b.size, "kind": b.kind, "seed": b.seed}
            if b.holes:
                d["holes"] = [list(h) for h in b.holes]
            bufs.append(d)
        ops = []
        for op in self.ops:
            d = {"op": op.name}
            if op.args:
                d["args"] = {k: _value_to_json(v) for k, v in op.args.items()}
            for k in OP_KEYS[2:]:
                if getattr(op, k):
                    d[k] = getattr(op, k)
            ops.append(d)
        doc: dict[str, Any] = {"version": SCHEMA_VERSION, "buffers": bufs, "ops": ops}
        if self.creds is not None:
            doc["creds"] = {"drop": list(self.creds.drop), "memlock": self.creds.memlock}
        return doc

    def dumps(self) -> str:
        """One buffer or op per line: diffs and mails stay readable."""
        doc = self.to_json()
        lines = [f'{{"version": {doc["version"]},', ' "buffers": [']
        lines += ["  " + json.dumps(b) + ("," if i < len(doc["buffers"]) - 1 else "")
                  for i, b in enumerate(doc["buffers"])]
        lines += [" ],", ' "ops": [']
        lines += ["  " + json.dumps(o) + ("," if i < len(doc["ops"]) - 1 else "")
                  for i, o in enumerate(doc["ops"])]
        lines += [" ]" + ("," if "creds" in doc else "")]
        if "creds" in doc:
            lines.append(' "creds": ' + json.dumps(doc["creds"]))
        lines.append("}")
        return "\n".join(lines) + "\n"

    @classmethod
    def from_json(cls, doc: Any, where: str = "<program>") -> Program:
        if not isinstance(doc, dict):
            raise ProgramError(f"{where}: a program is a JSON object")
        version = doc.get("version")
        if type(version) is not int or version != SCHEMA_VERSION:
            raise ProgramError(f"{where}: unsupported version {version!r} "
                               f"(this fuzzer reads version {SCHEMA_VERSION})")
        unknown = set(doc) - {"version", "buffers", "ops", "creds"}
        if unknown:
            raise ProgramError(f"{where}: unknown top-level keys {sorted(unknown)}")
        bufs = []
        for i, b in enumerate(_list(doc.get("buffers", []), f"{where}: buffers")):
            bw = f"{where}: buffer {i}"
            if not isinstance(b, dict) or set(b) - {"size", "kind", "seed", "holes"}:
                raise ProgramError(f"{bw}: expected {{size, kind, seed, holes}}")
            holes = []
            for h in _list(b.get("holes", []), f"{bw}: holes"):
                pair = _list(h, f"{bw}: hole")
                if len(pair) != 2:
                    raise ProgramError(f"{bw}: a hole is [offset, length], got {h!r}")
                holes.append((_int(pair[0], f"{bw}: hole"), _int(pair[1], f"{bw}: hole")))
            kind = b.get("kind", "anon")
            if not isinstance(kind, str):
                raise ProgramError(f"{bw}: kind must be a string, got {kind!r}")
            bufs.append(Buffer(_int(b.get("size"), f"{bw}: size"), kind,
                               _int(b.get("seed", 0), f"{bw}: seed"), holes))
        raw_ops = _list(doc.get("ops"), f"{where}: ops")
        if len(raw_ops) > MAX_OPS:
            raise ProgramError(f"{where}: {len(raw_ops)} ops, at most {MAX_OPS}")
        ops = []
        for i, o in enumerate(raw_ops):
            ow = f"{where}: op {i}"
            if not isinstance(o, dict) or "op" not in o:
                raise ProgramError(f"{ow}: expected {{\"op\": NAME, \"args\": {{...}}}}")
            extra = set(o) - set(OP_KEYS)
            if extra:
                raise ProgramError(f"{ow}: unknown keys {sorted(extra)} (an op takes "
                                   f"{', '.join(OP_KEYS)})")
            name = o["op"]
            if not isinstance(name, str):
                raise ProgramError(f"{ow}: the op name must be a string, got {name!r}")
            args = o.get("args", {})
            if not isinstance(args, dict):
                raise ProgramError(f"{ow} ({name}): args must be an object")
            ops.append(Op(name, {k: _value_from_json(v, f"{ow} ({name}).{k}")
                                 for k, v in args.items()},
                          *(_int(o.get(k, 0), f"{ow} ({name}).{k}") for k in OP_KEYS[2:])))
        prog = cls(ops, bufs, _creds_from_json(doc.get("creds"), f"{where}: creds"))
        prog.validate(where)
        return prog

    @classmethod
    def loads(cls, text: str, where: str = "<program>") -> Program:
        # named errors for deep nesting, 5000-digit integers, bad syntax
        return cls.from_json(jsonio.loads(text, where, ProgramError), where)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Program:
        # a regular file (a FIFO would block, /dev/zero never end), size-capped, UTF-8
        text = jsonio.read_text(path, MAX_PROGRAM_BYTES, ProgramError)
        return cls.loads(text, str(path))

    def save(self, path: str | os.PathLike[str]) -> None:
        atomic_write(Path(path), self.dumps().encode())

    # -- checks -----------------------------------------------------------
    def validate(self, where: str = "<program>") -> None:
        if len(self.buffers) > MAX_BUFFERS:
            raise ProgramError(f"{where}: {len(self.buffers)} buffers, at most {MAX_BUFFERS}")
        if len(self.ops) > MAX_OPS:
            raise ProgramError(f"{where}: {len(self.ops)} ops, at most {MAX_OPS}")
        mapped = sum(b.size for b in self.buffers if b.kind != "hole")
        if mapped > MAX_BUFFER_BYTES:
            raise ProgramError(f"{where}: buffers of {mapped} bytes in all, at most "
                               f"{MAX_BUFFER_BYTES}")
        holes = sum(len(b.holes) for b in self.buffers)
        if holes > MAX_HOLES:
            raise ProgramError(f"{where}: {holes} holes in all, at most {MAX_HOLES}")
        for i, b in enumerate(self.buffers):
            bw = f"{where}: buffer {i}"
            if b.kind not in BUFFER_KINDS:
                raise ProgramError(f"{bw}: unknown kind {b.kind!r} (one of {BUFFER_KINDS})")
            unit = HUGE_PAGE if b.kind == "hugetlb" else PAGE
            if not 0 < b.size <= MAX_BUFFER_SIZE or b.size % unit:
                raise ProgramError(f"{bw}: size {_n(b.size)} must be a positive multiple of {unit}"
                                   f" up to {MAX_BUFFER_SIZE}")
            if not 0 <= b.seed < 256:
                raise ProgramError(f"{bw}: seed {_n(b.seed)} is not a byte (0..255)")
            for off, ln in b.holes:
                if off % unit or ln % unit or ln <= 0 or off < 0 or off + ln > b.size:
                    raise ProgramError(f"{bw}: hole [{_n(off)}, {_n(ln)}] is not {unit}-aligned "
                                       "inside the buffer")
        for i, op in enumerate(self.ops):
            ow = f"{where}: op {i} ({op.name})"
            desc = OPS.get(op.name)
            if desc is None:
                raise ProgramError(f"{where}: op {i}: unknown op {op.name!r}")
            for k, v in op.args.items():
                arg = desc.arg(k)
                if arg is None and (k not in COMMON_ARGS or not desc.is_struct):
                    raise ProgramError(f"{ow}: unknown argument {k!r} "
                                       f"(expected one of {[x.name for x in desc.args]})")
                if arg is None and k in ("size", "argsz") and k != desc.size_field:
                    raise ProgramError(f"{ow}: {desc.name} takes {desc.size_field}, not {k!r}")
                width = arg.width if arg is not None else COMMON_WIDTHS[k]
                self._check_value(v, width, list_widths(desc, k), i, f"{ow}.{k}")
            if not 0 <= op.fail_nth <= MAX_FAIL_NTH:
                raise ProgramError(f"{ow}.fail_nth: {op.fail_nth} is not in 0..{MAX_FAIL_NTH}")
            if not 0 <= op.thread < MAX_THREADS:
                raise ProgramError(f"{ow}.thread: {op.thread} is not in 0..{MAX_THREADS - 1}")
            if not 0 <= op.barrier <= MAX_BARRIER:
                raise ProgramError(f"{ow}.barrier: {op.barrier} is not in 0..{MAX_BARRIER}")
        for g in self.groups():
            if len(g) > MAX_GROUP_OPS:
                raise ProgramError(f"{where}: ops {g.start}..{g.stop - 1} (barrier "
                                   f"{self.ops[g.start].barrier}): a race group has at most "
                                   f"{MAX_GROUP_OPS} ops")
            for i in g:
                for k, v in self.ops[i].args.items():
                    if isinstance(v, Ref) and v.op >= g.start:
                        raise ProgramError(
                            f"{where}: op {i} ({self.ops[i].name}).{k}: ref to op {v.op}, "
                            f"which is in the same race group (barrier "
                            f"{self.ops[i].barrier}, ops {g.start}..{g.stop - 1}): a group's "
                            "arguments are resolved when it starts")

    def _check_value(self, v: Value, width: int, entry: tuple[int, ...] | None, op_index: int,
                     where: str) -> None:
        """entry: for an argument that takes a list, the width of each field of an
        entry (None: a list is not allowed)."""
        if isinstance(v, bool):
            raise ProgramError(f"{where}: booleans are not values")
        if isinstance(v, int):
            bits = 8 * width
            if not -(1 << (bits - 1)) <= v < (1 << bits):
                raise ProgramError(f"{where}: {_n(v)} does not fit the field's {bits} bits")
        elif isinstance(v, Ref):
            if not 0 <= v.op < op_index:
                raise ProgramError(f"{where}: ref to op {_n(v.op)}, which does not come earlier")
            target = OPS[self.ops[v.op].name]
            out = target.out(v.field)
            if out is None or not out.is_int:
                raise ProgramError(f"{where}: op {v.op} ({target.name}) has no integer "
                                   f"output {v.field!r} (outputs: {list(target.outputs)})")
            if not -(1 << 63) <= v.add < (1 << 64):
                raise ProgramError(f"{where}: add {_n(v.add)} does not fit 64 bits")
        elif isinstance(v, BufPtr):
            if not 0 <= v.buf < len(self.buffers):
                raise ProgramError(f"{where}: buffer {_n(v.buf)} does not exist")
            if not -(1 << 63) <= v.offset < (1 << 64):
                raise ProgramError(f"{where}: offset {_n(v.offset)} does not fit 64 bits")
        elif isinstance(v, list):
            if entry is None:
                raise ProgramError(f"{where}: a list is only allowed for ranges and entries")
            if len(v) > MAX_RANGES:
                raise ProgramError(f"{where}: {len(v)} entries, at most {MAX_RANGES}")
            shape = ", ".join(f"u{8 * w}" for w in entry)
            for r in v:
                if not (isinstance(r, (list, tuple)) and len(r) == len(entry)
                        and all(type(x) is int and 0 <= x < 1 << (8 * w)
                                for x, w in zip(r, entry))):
                    raise ProgramError(f"{where}: each entry is [{shape}], got {_short(r)}")
        else:
            raise ProgramError(f"{where}: unsupported value {v!r}")


def list_widths(d: OpDesc, name: str) -> tuple[int, ...] | None:
    """The field widths of an entry of a list argument (Ranges, Entries), else None."""
    arg = d.arg(name)
    if arg is None:
        return None
    t = arg.type
    if isinstance(t, Ranges):
        ctype = t.ctype
    elif isinstance(t, Entries):
        ctype = next(x.type.side for x in d.args if x.name == t.pointer)  # type: ignore
    else:
        return None
    return tuple(uapi.field_offset(ctype, f)[1] for f in uapi.fields(ctype) if "." not in f)


def wrap64(v: int) -> int:
    """v as a signed 64-bit value: a Ref's addend wraps at 64 bits, and -4096 reads
    better than 0xfffffffffffff000."""
    return ((v + (1 << 63)) % (1 << 64)) - (1 << 63)


def buffer_address(index: int) -> int:
    return BUF_BASE + index * BUF_STRIDE


_PATTERN_PERIOD = 251


def pattern_bytes(seed: int, offset: int, length: int) -> bytes:
    """Initial contents of a buffer: byte k is ((k % 251) * 37 + seed) & 0xff.
    The guest executor fills buffers with the same formula in C."""
    block = bytes(((k * 37) + seed) & 0xFF for k in range(_PATTERN_PERIOD))
    start = offset % _PATTERN_PERIOD
    reps = (start + length) // _PATTERN_PERIOD + 1
    return (block * reps)[start:start + length]


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write-then-rename in the same directory, fsynced: a crash leaves the old
    file or the new one, never half of either, plus at worst a temporary file
    named TMP_PREFIX... that readers skip and remove_stale_temps() clears. Files
    are shareable (0644 by default), not mkstemp's 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path), dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data[:len(data) // 2])
            crashpoint.hit("write.partial", path)
            f.write(data[len(data) // 2:])
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        crashpoint.hit("write.complete", path)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


TMP_PREFIX = ".tmp-"  # atomic_write's temporary files (dotfiles: corpus readers skip them)
STALE_SECONDS = 60.0  # a temporary file this old has no live writer (a write takes ms)
_HOST = os.uname().nodename.replace(".", "_")


def _tmp_prefix(path: Path) -> str:
    """.tmp-<name>.<host>-<pid>.: who writes it, so a dead writer's leftovers go at once."""
    return f"{TMP_PREFIX}{path.name}.{_HOST}-{os.getpid()}."


def _writer_gone(p: Path) -> bool:
    """The temporary file's writer is a process of this host that no longer runs."""
    import re

    m = re.search(r"\.([^.]+)-(\d+)\.[^.]+$", p.name)
    if m is None or m.group(1) != _HOST:
        return False
    try:
        os.kill(int(m.group(2)), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def remove_stale_temps(d: Path, recursive: bool = False) -> list[Path]:
    """Delete what writes killed half-way left behind in d: atomic_write's and
    atomic_dir's temporaries whose writer is gone, or older than STALE_SECONDS
    (a writer on another host sharing the directory takes milliseconds)."""
    import shutil
    import time

    gone: list[Path] = []
    if not d.is_dir():
        return gone
    now = time.time()
    for p in sorted((d.rglob if recursive else d.glob)(f"{TMP_PREFIX}*")):
        try:
            if now - p.lstat().st_mtime <= STALE_SECONDS and not _writer_gone(p):
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            gone.append(p)
        except OSError:
            continue
    return gone


@contextmanager
def atomic_dir(dest: Path) -> Iterator[Path]:
    """A fresh directory to fill, swapped into place as a whole when the block
    ends (renameat2 RENAME_EXCHANGE where the filesystem has it): a reader of dest
    sees the old contents or the new ones, never a mix of both."""
    import shutil

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(dest), dir=dest.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        if not dest.exists():
            os.rename(tmp, dest)
        elif _exchange(tmp, dest):
            shutil.rmtree(tmp)  # the old contents now
        else:  # no RENAME_EXCHANGE: old aside, new in; a kill between leaves both, named
            old = Path(tempfile.mkdtemp(prefix=_tmp_prefix(dest), dir=dest.parent))
            os.rmdir(old)
            os.rename(dest, old)
            os.rename(tmp, dest)
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _exchange(a: Path, b: Path) -> bool:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _creds_from_json(v: Any, where: str) -> Creds | None:
    if v is None:
        return None
    if not isinstance(v, dict) or set(v) != {"drop", "memlock"}:
        raise ProgramError(f"{where}: expected {{\"drop\": [capability names], "
                           f"\"memlock\": bytes}}, got {_short(v)}")
    drop = _list(v["drop"], f"{where}.drop")
    for c in drop:
        if c not in CREDS_CAPS:
            raise ProgramError(f"{where}.drop: {_short(c)} is not one of {', '.join(CREDS_CAPS)}")
    if len(set(drop)) != len(drop):
        raise ProgramError(f"{where}.drop: {drop} names a capability twice")
    memlock = _int(v["memlock"], f"{where}.memlock")
    if not 0 <= memlock < 1 << 64:
        raise ProgramError(f"{where}.memlock: {_n(memlock)} is not a u64 (RLIMIT_MEMLOCK bytes)")
    return Creds(tuple(drop), memlock)


def _value_to_json(v: Value) -> Any:
    if isinstance(v, Ref):
        d: dict[str, Any] = {"ref": v.op, "field": v.field}
        if v.add:
            d["add"] = v.add
        return d
    if isinstance(v, BufPtr):
        return {"buf": v.buf, "offset": v.offset}
    if isinstance(v, list):
        return [list(r) for r in v]
    return v


def _value_from_json(v: Any, where: str) -> Value:
    if isinstance(v, dict):
        if set(v) <= {"ref", "field", "add"} and "ref" in v and "field" in v:
            if not isinstance(v["field"], str):
                raise ProgramError(f"{where}: a ref's field is a name, got {v['field']!r}")
            return Ref(_int(v["ref"], where), v["field"], _int(v.get("add", 0), where))
        if set(v) <= {"buf", "offset"} and "buf" in v:
            return BufPtr(_int(v["buf"], where), _int(v.get("offset", 0), where))
        raise ProgramError(f"{where}: expected {{ref, field[, add]}} or {{buf[, offset]}}, "
                           f"got {_short(v)}")
    if isinstance(v, list):
        return [[_int(x, where) for x in _list(r, where)] for r in v]
    return _int(v, where)


def _int(v: Any, where: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ProgramError(f"{where}: expected an integer, got {_short(v)}")
    return v


def _list(v: Any, where: str) -> list:
    if not isinstance(v, list):
        raise ProgramError(f"{where}: expected a list, got {type(v).__name__}")
    return v


def _n(v: int) -> str:
    """An integer for an error line: a 4000-digit one is described, not printed."""
    return str(v) if abs(v) < 1 << 128 else f"a {v.bit_length()}-bit integer"


def _short(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 80 else s[:77] + "..."
