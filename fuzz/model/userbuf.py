"""A user pointer of an op: memory the kernel copies to or from, which is either a
program buffer (the model's UserMemory) or, when the program left the pointer out,
a side array of the executor's (fuzz.prog.layout) whose size and contents the
model knows because the encoder put them there.

Copies follow copy_to_user / copy_from_user / clear_user: an access that faults
anywhere fails (EFAULT for the caller), and the bytes a failed copy_to_user or
clear_user may have written before the fault are tainted (their contents are not
knowable). A side array is only the executor's arena: the kernel going past its end
reads or corrupts the executor's other structs, so that is unsure and poisoned.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fuzz.model.consts import U64
from fuzz.model.errors import ALL, Unsure
from fuzz.prog.limits import CAPTURE_MAX, CAPTURE_ROOM

if TYPE_CHECKING:
    from fuzz.model.model import Model



class UserBuf:
    """faults_past_end: the side array is a mapping of its own (GET_HW_INFO's), so the
    kernel running past its end faults instead of reaching other executor memory."""

    def __init__(self, m: Model, addr: int | None, side: bytearray | None = None,
                 what: str = "buffer", faults_past_end: bool = False) -> None:
        self.m = m
        self.addr = addr  # None: the side array
        self.side = side
        self.what = what
        self.faults_past_end = faults_past_end

    @property
    def is_side(self) -> bool:
        return self.addr is None

    def _past_side(self, off: int, n: int) -> bool:
        assert self.side is not None
        return off + n > len(self.side)

    def _side_unsure(self, verb: str, off: int, n: int) -> Unsure:
        """Writing past it corrupts the executor's arena: nothing is known after."""
        assert self.side is not None
        return Unsure(f"the kernel {verb} {self.what} bytes [{off}, {off + n}) past the "
                      f"executor's side array of {len(self.side)}",
                      scope=ALL if verb != "reads" else None)

    def _first_bad_write(self, addr: int, n: int) -> int | None:
        """copy_to_user / clear_user into memory the model does not know may write into
        the agent's own memory: nothing is known after."""
        try:
            return self.m.mem.first_bad(addr, n, True)
        except Unsure as e:
            raise Unsure(e.reason, scope=ALL, write=(addr, n)) from None

    def write(self, data: bytes, off: int) -> bool:
        """copy_to_user: False when it faults."""
        if not data:
            return True
        if self.is_side:
            if self._past_side(off, len(data)):
                if self.faults_past_end:
                    return False  # what it wrote before the fault no one reads
                raise self._side_unsure("writes", off, len(data))
            self.side[off:off + len(data)] = data  # type: ignore[index]
            return True
        mem = self.m.mem
        addr = (self.addr + off) & U64  # type: ignore[operator]
        bad = self._first_bad_write(addr, len(data))
        if bad is not None:
            if bad > addr:
                mem.taint(addr, bad - addr)
            return False
        mem.write(addr, data)
        return True

    def zero(self, off: int, n: int) -> bool:
        """clear_user: False when it faults."""
        if n <= 0:
            return True
        if self.is_side:
            if self._past_side(off, n):
                if self.faults_past_end:
                    return False
                raise self._side_unsure("clears", off, n)
            self.side[off:off + n] = bytes(n)  # type: ignore[index]
            return True
        mem = self.m.mem
        addr = (self.addr + off) & U64  # type: ignore[operator]
        bad = self._first_bad_write(addr, n)
        if bad is not None:
            if bad > addr:
                mem.taint(addr, bad - addr)
            return False
        mem.zero(addr, n)
        return True

    def read(self, off: int, n: int) -> bytes | None:
        """copy_from_user: None when it faults. Unknown contents are unsure (and
        poisoned: what the kernel does next depends on them)."""
        if self.is_side:
            if self._past_side(off, n):
                raise self._side_unsure("reads", off, n)
            return bytes(self.side[off:off + n])  # type: ignore[index]
        mem = self.m.mem
        addr = (self.addr + off) & U64  # type: ignore[operator]
        if mem.first_bad(addr, n, False) is not None:
            return None
        try:
            return mem.read(addr, n)
        except Unsure as e:
            raise Unsure(e.reason) from None

    def capture(self, n: int) -> bytes:
        """What the executor captures after a successful call: min(n, CAPTURE_MAX)
        bytes with process_vm_readv into the program's CAPTURE_ROOM; a capture that
        does not fit what is left, or that faults, captures nothing."""
        m = self.m
        n = min(n, CAPTURE_MAX)
        if n <= 0 or n > CAPTURE_ROOM - m.captured:
            return b""
        if self.is_side:
            if self._past_side(0, n):
                raise Unsure(f"the capture of {n} bytes reads past the executor's side array",
                             poisoned=False)
            data = bytes(self.side[:n])  # type: ignore[index]
        else:
            if not m.mem.one_readable_buffer(self.addr, n):  # type: ignore[arg-type]
                return b""
            try:
                data = m.mem.read(self.addr, n)  # type: ignore[arg-type]
            except Unsure as e:
                raise Unsure(str(e), poisoned=False) from None
        m.captured += n
        return data
