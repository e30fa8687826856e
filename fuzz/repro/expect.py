"""What a reproducer checks for, and the text forms both languages compare."""

from __future__ import annotations

import errno as _errno
from dataclasses import asdict, dataclass
from dataclasses import field as dc_field
from typing import Any

from fuzz.prog.jsonio import from_json_value, to_json_value


@dataclass
class Expectation:
    """The finding a reproducer checks for.

    mismatch: at op `op` (index in the emitted program) the kernel's `field` should
    differ from `model` (the reference model's value); for errno mismatches it must
    also equal `kernel`, the errno the finding saw (the signature names both).
    splat/crash: the kernel log after the run has a line with every string in
    `keys` (fuzz.report.splat_keys: its kind marker and the function it names)."""

    kind: str  # mismatch | splat | crash
    signature: str
    title: str
    op: int | None = None
    name: str | None = None
    field: str | None = None
    kernel: Any = None
    model: Any = None
    keys: list[str] = dc_field(default_factory=list)
    # logged by deferred work after the program's results: wait before reading the log
    deferred: bool = False

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("kernel", "model"):
            d[k] = to_json_value(d[k])
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Expectation:
        d = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        for k in ("kernel", "model"):
            d[k] = from_json_value(d.get(k))
        return cls(**d)


def hexish(v: int) -> str:
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


def canon_records(recs: Any) -> str:
    """Side-array entries (read(2) records): each its fields in order, in hex."""
    return "[" + ",".join("{" + ",".join(f"{x:#x}" for x in rec) + "}"
                          for rec in (recs or [])) + "]"


def canon(field_name: str, v: Any) -> str:
    """One text form of an output value both languages can build and compare."""
    if field_name == "ranges":
        return canon_ranges(v)
    if field_name == "caps":
        return canon_caps(v)
    if isinstance(v, list):
        return canon_records(v)
    if field_name == "data" or isinstance(v, (bytes, bytearray)):  # captured memory
        return bytes(v or b"").hex()
    return f"{int(v or 0):#x}"


def show(field_name: str | None, v: Any) -> str:
    """A value as a person reads it in a report."""
    if field_name == "fault_errno" and isinstance(v, (list, tuple)):
        return (f"{show('errno', v[0])} (with the fault injected: one of "
                f"{', '.join(_errno.errorcode.get(e, str(e)) for e in v[1])})")
    if field_name in ("errno", "fault_errno"):
        return _errno.errorcode.get(v, str(v)) if v else "success (0)"
    if isinstance(v, int):
        return hexish(v)
    if field_name in ("ranges", "caps", "data") or isinstance(v, (list, bytes, bytearray)):
        return canon(field_name, v)[:200]
    return repr(v)
