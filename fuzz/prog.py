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
program buffer plus an offset), or, for "ranges" args, a list of [start, last]
("pairs" args: a list of [u32, u32]).

Buffer i always lives at BUF_BASE + i * BUF_STRIDE, so user addresses - and the
IOVA alignment the kernel derives from them - are the same in every run, in the
model, and in the emitted reproducers.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fuzz.ops import COMMON_ARGS, OPS, VFIO_STRUCT

SCHEMA_VERSION = 1
BUF_BASE = 0x2000_0000_0000
BUF_STRIDE = 1 << 32
MAX_BUFFERS = 64
MAX_BUFFER_SIZE = 1 << 30
HUGE_PAGE = 2 << 20
PAGE = 4096
BUFFER_KINDS = ("anon", "hugetlb", "memfd", "readonly", "hole")


class ProgramError(ValueError):
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

    @property
    def spec(self):
        return OPS[self.name]


@dataclass
class Program:
    ops: list[Op] = field(default_factory=list)
    buffers: list[Buffer] = field(default_factory=list)

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
            ops.append(d)
        return {"version": SCHEMA_VERSION, "buffers": bufs, "ops": ops}

    def dumps(self) -> str:
        """One buffer or op per line: diffs and mails stay readable."""
        doc = self.to_json()
        lines = [f'{{"version": {doc["version"]},', ' "buffers": [']
        lines += ["  " + json.dumps(b) + ("," if i < len(doc["buffers"]) - 1 else "")
                  for i, b in enumerate(doc["buffers"])]
        lines += [" ],", ' "ops": [']
        lines += ["  " + json.dumps(o) + ("," if i < len(doc["ops"]) - 1 else "")
                  for i, o in enumerate(doc["ops"])]
        lines += [" ]", "}"]
        return "\n".join(lines) + "\n"

    @classmethod
    def from_json(cls, doc: Any, where: str = "<program>") -> Program:
        if not isinstance(doc, dict):
            raise ProgramError(f"{where}: a program is a JSON object")
        if doc.get("version") != SCHEMA_VERSION:
            raise ProgramError(f"{where}: unsupported version {doc.get('version')!r} "
                               f"(this fuzzer reads version {SCHEMA_VERSION})")
        unknown = set(doc) - {"version", "buffers", "ops"}
        if unknown:
            raise ProgramError(f"{where}: unknown top-level keys {sorted(unknown)}")
        bufs = []
        for i, b in enumerate(_list(doc.get("buffers", []), f"{where}: buffers")):
            bw = f"{where}: buffer {i}"
            if not isinstance(b, dict) or set(b) - {"size", "kind", "seed", "holes"}:
                raise ProgramError(f"{bw}: expected {{size, kind, seed, holes}}")
            holes = [tuple(_int(x, bw) for x in _list(h, bw)) for h in b.get("holes", [])]
            bufs.append(Buffer(_int(b.get("size"), f"{bw}: size"), b.get("kind", "anon"),
                               _int(b.get("seed", 0), f"{bw}: seed"), holes))  # type: ignore[arg-type]
        ops = []
        for i, o in enumerate(_list(doc.get("ops"), f"{where}: ops")):
            ow = f"{where}: op {i}"
            if not isinstance(o, dict) or "op" not in o or set(o) - {"op", "args"}:
                raise ProgramError(f"{ow}: expected {{\"op\": NAME, \"args\": {{...}}}}")
            args = o.get("args", {})
            if not isinstance(args, dict):
                raise ProgramError(f"{ow} ({o['op']}): args must be an object")
            ops.append(Op(o["op"], {k: _value_from_json(v, f"{ow} ({o['op']}).{k}")
                                    for k, v in args.items()}))
        prog = cls(ops, bufs)
        prog.validate(where)
        return prog

    @classmethod
    def loads(cls, text: str, where: str = "<program>") -> Program:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise ProgramError(f"{where}: not valid JSON: {e}") from None
        return cls.from_json(doc, where)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Program:
        p = Path(path)
        try:
            text = p.read_text()
        except OSError as e:
            raise ProgramError(f"{p}: cannot read: {e.strerror}") from None
        return cls.loads(text, str(p))

    def save(self, path: str | os.PathLike[str]) -> None:
        atomic_write(Path(path), self.dumps().encode())

    # -- checks -----------------------------------------------------------
    def validate(self, where: str = "<program>") -> None:
        if len(self.buffers) > MAX_BUFFERS:
            raise ProgramError(f"{where}: at most {MAX_BUFFERS} buffers")
        for i, b in enumerate(self.buffers):
            bw = f"{where}: buffer {i}"
            if b.kind not in BUFFER_KINDS:
                raise ProgramError(f"{bw}: unknown kind {b.kind!r} (one of {BUFFER_KINDS})")
            unit = HUGE_PAGE if b.kind == "hugetlb" else PAGE
            if not 0 < b.size <= MAX_BUFFER_SIZE or b.size % unit:
                raise ProgramError(f"{bw}: size {b.size} must be a positive multiple of {unit}"
                                   f" up to {MAX_BUFFER_SIZE}")
            for off, ln in b.holes:
                if off % unit or ln % unit or ln <= 0 or off + ln > b.size:
                    raise ProgramError(f"{bw}: hole [{off}, {ln}] is not {unit}-aligned "
                                       "inside the buffer")
        for i, op in enumerate(self.ops):
            ow = f"{where}: op {i} ({op.name})"
            spec = OPS.get(op.name)
            if spec is None:
                raise ProgramError(f"{where}: op {i}: unknown op {op.name!r}")
            kinds = {a.name: a.kind for a in spec.args}
            for k, v in op.args.items():
                if k not in kinds and k not in COMMON_ARGS:
                    raise ProgramError(f"{ow}: unknown argument {k!r} "
                                       f"(expected one of {sorted(kinds)})")
                if k in ("size", "argsz") and (spec.kind == VFIO_STRUCT) != (k == "argsz") \
                        and k not in kinds:
                    raise ProgramError(f"{ow}: {spec.name} takes "
                                       f"{'argsz' if spec.kind == VFIO_STRUCT else 'size'}, "
                                       f"not {k!r}")
                self._check_value(v, kinds.get(k, "u32"), i, f"{ow}.{k}")

    def _check_value(self, v: Value, kind: str, op_index: int, where: str) -> None:
        if isinstance(v, bool):
            raise ProgramError(f"{where}: booleans are not values")
        if isinstance(v, int):
            if not -(1 << 63) <= v < (1 << 64):
                raise ProgramError(f"{where}: {v} does not fit 64 bits")
        elif isinstance(v, Ref):
            if not 0 <= v.op < op_index:
                raise ProgramError(f"{where}: ref to op {v.op}, which does not come earlier")
            target = OPS[self.ops[v.op].name]
            if v.field not in target.outputs or v.field in ("ranges", "data", "caps", "bitmap",
                                                            "records"):
                raise ProgramError(f"{where}: op {v.op} ({target.name}) has no integer "
                                   f"output {v.field!r} (outputs: {list(target.outputs)})")
        elif isinstance(v, BufPtr):
            if not 0 <= v.buf < len(self.buffers):
                raise ProgramError(f"{where}: buffer {v.buf} does not exist")
        elif isinstance(v, list):
            if kind not in ("ranges", "pairs"):
                raise ProgramError(f"{where}: a list is only allowed for ranges and pairs")
            bound = 1 << (64 if kind == "ranges" else 32)
            for r in v:
                if not (isinstance(r, (list, tuple)) and len(r) == 2
                        and all(isinstance(x, int) and 0 <= x < bound for x in r)):
                    raise ProgramError(f"{where}: {kind} are pairs of "
                                       f"u{64 if kind == 'ranges' else 32}")
        else:
            raise ProgramError(f"{where}: unsupported value {v!r}")


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


def atomic_write(path: Path, data: bytes) -> None:
    """Write-then-rename in the same directory, fsynced: a crash leaves the old
    file or the new one, never half of either."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


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
            return Ref(_int(v["ref"], where), str(v["field"]), _int(v.get("add", 0), where))
        if set(v) <= {"buf", "offset"} and "buf" in v:
            return BufPtr(_int(v["buf"], where), _int(v.get("offset", 0), where))
        raise ProgramError(f"{where}: expected {{ref, field[, add]}} or {{buf[, offset]}}, got {v}")
    if isinstance(v, list):
        return [[_int(x, where) for x in _list(r, where)] for r in v]
    return _int(v, where)


def _int(v: Any, where: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ProgramError(f"{where}: expected an integer, got {v!r}")
    return v


def _list(v: Any, where: str) -> list:
    if not isinstance(v, list):
        raise ProgramError(f"{where}: expected a list, got {type(v).__name__}")
    return v
