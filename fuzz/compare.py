"""Kernel vs model, op by op: where exactly do they part?"""

from __future__ import annotations

import errno as _errno
from dataclasses import dataclass
from typing import Any

from fuzz.prog import Program
from fuzz.result import OpResult, errno_name

# Output fields that only mean something when the op succeeded (the kernel
# does not write them otherwise); IOVA_RANGES also fills ranges on EMSGSIZE.
_ON_SUCCESS = {"data", "caps"}


@dataclass(frozen=True)
class Mismatch:
    op: int
    name: str  # op name
    field: str  # "errno", an output field, or "unsure"
    kernel: Any
    model: Any

    def describe(self) -> str:
        if self.field == "unsure":
            return f"op {self.op} ({self.name}): model unsure: {self.model}"
        k, m = self.kernel, self.model
        if self.field == "errno":
            k, m = errno_name(k), errno_name(m)
        return f"op {self.op} ({self.name}): {self.field}: kernel {_fmt(k)}, model {_fmt(m)}"

    @property
    def signature(self) -> str:
        """Stable across runs: the op and field, not the values (iovas vary)."""
        return f"mismatch {self.name}.{self.field}"


def _fmt(v: Any) -> str:
    if isinstance(v, int) and not isinstance(v, bool):
        return hex(v) if v > 9 else str(v)
    if isinstance(v, (bytes, bytearray)):
        return f"<{len(v)} bytes {bytes(v[:16]).hex()}>"
    return repr(v)


def compare_op(i: int, name: str, kernel: OpResult, model: OpResult) -> list[Mismatch]:
    if model.unsure:
        return [Mismatch(i, name, "unsure", kernel.describe(), model.unsure)]
    if kernel.errno != model.errno:
        return [Mismatch(i, name, "errno", kernel.errno, model.errno)]
    out = []
    for f in sorted(set(kernel.out) | set(model.out)):
        if f in _ON_SUCCESS and kernel.errno:
            continue
        if f == "ranges" and kernel.errno not in (0, _errno.EMSGSIZE):
            continue
        kv, mv = kernel.out.get(f), model.out.get(f)
        if kv != mv:
            out.append(Mismatch(i, name, f, kv, mv))
    return out


def compare(prog: Program, kernel: list[OpResult], model: list[OpResult]) -> list[Mismatch]:
    out: list[Mismatch] = []
    for i, (k, m) in enumerate(zip(kernel, model)):
        out += compare_op(i, prog.ops[i].name, k, m)
    return out
