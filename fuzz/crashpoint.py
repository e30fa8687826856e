"""Deliberate SIGKILLs at chosen moments, for the crash-safety soak (bench/soak.py).

    IOMMUFD_FUZZ_CRASH_AT=<point>[@<path substring>]:<n>

kills this process's whole process group (the campaign: manager, workers, their
qemus) the n-th time the named point is passed, exactly as a SIGKILL from outside
at that moment would. Points: write.partial (half of a file's bytes are in its
temporary file), write.complete (all of them, not yet renamed into place),
vm.boot (qemu launched, the guest not yet answering), vm.snapshot (a snapshot
being saved). Unset, hit() is one global lookup."""

from __future__ import annotations

import os
import signal

_SPEC = os.environ.get("IOMMUFD_FUZZ_CRASH_AT", "")
_count = 0


def _parse(spec: str) -> tuple[str, str, int] | None:
    if not spec:
        return None
    what, _, n = spec.rpartition(":")
    point, _, sub = what.partition("@")
    try:
        return point, sub, int(n)
    except ValueError:
        return None


_TARGET = _parse(_SPEC)


def hit(point: str, path: object = "") -> None:
    global _count
    if _TARGET is None:
        return
    want, sub, n = _TARGET
    if point != want or (sub and sub not in str(path)):
        return
    _count += 1
    if _count == n:
        os.killpg(os.getpgrp(), signal.SIGKILL)
