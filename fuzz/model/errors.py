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


class Unsure(Exception):
    """The model cannot predict this op exactly; the message says why.
    poisoned: the model's state may now differ from the kernel's, so every later
    op is unsure too (False for ops that only read state)."""

    def __init__(self, reason: str, poisoned: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.poisoned = poisoned
