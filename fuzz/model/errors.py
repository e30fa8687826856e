"""How the model's handlers report a kernel error or their own uncertainty."""

from __future__ import annotations

from typing import Any


class KernelError(Exception):
    """The ioctl fails with this positive errno: KernelError(errno[, out]).
    out: output fields the kernel wrote back before failing (e.g. num_iovas with
    EMSGSIZE). Kept in args (no __init__) because raising is on the hot path."""

    __slots__ = ()

    @property
    def errno(self) -> int:
        return self.args[0]

    @property
    def out(self) -> dict[str, Any] | None:
        return self.args[1] if len(self.args) > 1 else None


ALL = "all"  # Unsure scope: the executor's own memory may be corrupt, nothing is known


class Unsure(Exception):
    """The model cannot predict this op exactly; the message says why.

    poisoned: the op may have changed state the model cannot follow (False for ops
    that only read state). What becomes unknown then (Model.step): scope None - the
    objects the op touched, with their deps (fuzz.model.objects.ObjectTable.touch);
    a list - exactly those objects; ALL - everything (the old 'one unsure op stops
    checking the program'), for a kernel that wrote into the executor's memory.
    unless_failed: nothing changes when the op fails (the kernel's errno says so).
    write: (addr, n) of a write into memory the model does not know (scope ALL)."""

    def __init__(self, reason: str, poisoned: bool = True, scope: object = None,
                 unless_failed: bool = False, write: tuple[int, int] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.poisoned = poisoned
        self.scope = scope
        self.unless_failed = unless_failed
        self.write = write
