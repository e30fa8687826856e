"""One differential run: the program on a kernel, the model stepped alongside,
every op compared. This is the oracle every engine and the minimizer call."""

from __future__ import annotations

from dataclasses import dataclass, field

from fuzz.backend import Backend, Execution
from fuzz.compare import Mismatch, compare_op
from fuzz.executor.wire import KCOV_TRACE_PC
from fuzz.model import Model
from fuzz.model.file import AGENT_FDS, FdLayout
from fuzz.prog import Program
from fuzz.result import OpResult


@dataclass
class Outcome:
    prog: Program
    execution: Execution
    model: list[OpResult] = field(default_factory=list)
    mismatches: list[Mismatch] = field(default_factory=list)  # real disagreements
    unsure: list[Mismatch] = field(default_factory=list)  # where the model said it cannot tell

    @property
    def failed(self) -> bool:
        """A finding: a splat, a crash, or a model/kernel mismatch."""
        ex = self.execution
        return bool(self.mismatches or ex.reports or ex.crash)


def model_alongside(prog: Program, kernel: list[OpResult],
                    fds: FdLayout | None = AGENT_FDS) -> tuple[list[OpResult],
                                                              list[Mismatch],
                                                              list[Mismatch]]:
    """fds: the fd table the backend's executor starts a program with."""
    model = Model(prog, fds)
    predicted: list[OpResult] = []
    mism: list[Mismatch] = []
    unsure: list[Mismatch] = []
    for i, k in enumerate(kernel):
        m = model.step(i, k)
        predicted.append(m)
        for d in compare_op(i, prog.ops[i].name, k, m):
            (unsure if d.field == "unsure" else mism).append(d)
    return predicted, mism, unsure


def run(prog: Program, backend: Backend, kcov: bool = True,
        kcov_mode: int = KCOV_TRACE_PC) -> Outcome:
    ex = backend.run(prog, kcov=kcov, kcov_mode=kcov_mode)
    out = Outcome(prog, ex)
    if ex.results:
        out.model, out.mismatches, out.unsure = model_alongside(
            prog, ex.results, getattr(backend, "fd_layout", AGENT_FDS))
    return out
