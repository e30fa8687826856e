"""Kernel vs model, op by op: where exactly do they part?"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fuzz.prog import Program
from fuzz.prog.descriptions import OPS
from fuzz.result import OpResult, errno_name


@dataclass(frozen=True)
class Mismatch:
    op: int
    name: str  # op name
    field: str  # "errno", an output field, or "unsure"
    kernel: Any
    model: Any
    bug: str = ""  # the known kernel bug the kernel's result is (reproducers/known.json)

    def describe(self) -> str:
        if self.field == "unsure":
            return f"op {self.op} ({self.name}): model unsure: {self.model}"
        if self.field == "model_error":
            where, what = self.model
            return f"op {self.op} ({self.name}): the model raised {where}: {what}"
        if self.field == "fault_errno":
            natural, allowed = self.model
            return (f"op {self.op} ({self.name}): an injected fault failed it with "
                    f"{errno_name(self.kernel)}; the model expects {errno_name(natural)} "
                    f"without the fault, or one of {', '.join(map(errno_name, allowed))}")
        k, m = self.kernel, self.model
        if self.field == "errno":
            k, m = errno_name(k), errno_name(m)
        known = f" (known kernel bug: {self.bug})" if self.bug else ""
        at = _parting(k, m)
        return (f"op {self.op} ({self.name}): {self.field}: kernel {_fmt(k, at)}, "
                f"model {_fmt(m, at)}" + known)

    @property
    def signature(self) -> str:
        """Stable across runs: the op and field, not the values (iovas vary), and the
        known bug's id when the kernel did what that bug does."""
        if self.field == "fault_errno":
            return f"mismatch {self.name}.fault_errno kernel={errno_name(self.kernel)}"
        if self.field == "model_error":
            return f"model error {self.name} {self.model[0]}"
        return f"mismatch {self.name}.{self.field}" + (f" [{self.bug}]" if self.bug else "")


def _parting(k: Any, m: Any) -> int:
    """Where two byte strings first differ (0 for anything else): shown from there, as
    long captures that differ late would otherwise show the same first bytes."""
    if not (isinstance(k, (bytes, bytearray)) and isinstance(m, (bytes, bytearray))):
        return 0
    return next((i for i, (x, y) in enumerate(zip(k, m)) if x != y), min(len(k), len(m)))


def _fmt(v: Any, at: int = 0) -> str:
    if isinstance(v, int) and not isinstance(v, bool):
        return hex(v) if v > 9 else str(v)
    if isinstance(v, (bytes, bytearray)):
        where = f", from byte {at:#x}:" if at else ""
        return f"<{len(v)} bytes{where} {bytes(v[at:at + 16]).hex()}>"
    return repr(v)


def compare_op(i: int, name: str, kernel: OpResult, model: OpResult) -> list[Mismatch]:
    if model.unsure:
        return [Mismatch(i, name, "unsure", kernel.describe(), model.unsure)]
    if kernel.errno != model.errno and kernel.injected and model.fault_errnos:
        return [Mismatch(i, name, "fault_errno", kernel.errno,
                         (model.errno, model.fault_errnos))]
    bug = model.known or ""  # the model saw the kernel's result is that known bug's
    if kernel.errno != model.errno:
        return [Mismatch(i, name, "errno", kernel.errno, model.errno, bug)]
    out = []
    d = OPS[name]
    for f in sorted(set(kernel.out) | set(model.out)):
        o = d.out(f)
        # what the executor decodes from memory (captured data, side arrays, the cap
        # chain) only means something when the kernel wrote it
        if o is not None and o.decode in ("data", "caps", "ranges", "entries", "first") \
                and kernel.errno \
                and kernel.errno not in o.also_on:
            continue
        kv, mv = kernel.out.get(f), model.out.get(f)
        if kv != mv:
            out.append(Mismatch(i, name, f, kv, mv, bug))
    return out


def compare(prog: Program, kernel: list[OpResult], model: list[OpResult]) -> list[Mismatch]:
    out: list[Mismatch] = []
    for i, (k, m) in enumerate(zip(kernel, model)):
        out += compare_op(i, prog.ops[i].name, k, m)
    return out
