"""What one op did: the shape both the model and the kernel executor return."""

from __future__ import annotations

import errno as _errno
from dataclasses import dataclass, field
from typing import Any


@dataclass
class OpResult:
    """errno is 0 on success, else the positive errno; ret is the ioctl's return
    value (meaningful for VFIO_GET_API_VERSION / VFIO_CHECK_EXTENSION, 0 or -1
    elsewhere); out holds each output field the op spec lists (ints, "ranges" as
    a list of [start, last], "data" as bytes, "caps" as a list of dicts).
    unsure: set by the model where it cannot predict this op exactly; the
    comparison then reports it instead of agreeing silently.
    How the kernel run went (the executor's, not compared): injected - the op's
    fail_nth fault point was reached and failed; thread - the thread that issued
    it; t_start/t_end - CLOCK_MONOTONIC ns around the call, from the program's
    first call."""

    errno: int = 0
    ret: int = 0
    out: dict[str, Any] = field(default_factory=dict)
    unsure: str | None = None
    injected: bool = False
    thread: int = 0
    # the model's: the errnos an injected fault may fail this op with (fuzz.model.faults)
    fault_errnos: tuple[int, ...] = ()
    t_start: int = 0
    t_end: int = 0

    def describe(self) -> str:
        head = "ok" if self.errno == 0 else errno_name(self.errno)
        if self.injected:
            head += " (fault injected)"
        parts = [f"{k}={_short(v)}" for k, v in self.out.items()]
        return " ".join([head, *parts])


def errno_name(e: int) -> str:
    return _errno.errorcode.get(e, str(e)) if e else "0"


def _short(v: Any) -> str:
    if isinstance(v, int):
        return hex(v) if v > 9 else str(v)
    if isinstance(v, (bytes, bytearray)):
        return f"<{len(v)} bytes {bytes(v[:8]).hex()}..>"
    return str(v)
