"""A small builder for hand-written programs with the expected result of each op.

    p = Prog("map_fixed", Buffer(65536, "memfd", 1))
    ioas = p.op("IOAS_ALLOC", expect=0, out={"out_ioas_id": 1})
    p.op("IOAS_MAP", ioas_id=p.ref(ioas, "out_ioas_id"), user_va=p.buf(0), length=4096,
         flags=7, iova=1 << 24, expect=0)

expect: the errno (None: not checked); out: output fields to check; unsure: the model
must be unsure of the op when it steps the program without the kernel's results (memory
outside the program's buffers: the kernel's errno decides).
"""

from __future__ import annotations

from typing import Any

from fuzz import uapi
from fuzz.prog import Buffer, BufPtr, Creds, Op, Program, Ref

U64 = (1 << 64) - 1
PAGE = 4096
MOCK_APERTURE_START = uapi.MOCK_APERTURE_START
MOCK_APERTURE_LAST = uapi.MOCK_APERTURE_LAST
RW = uapi.IOMMU_IOAS_MAP_WRITEABLE | uapi.IOMMU_IOAS_MAP_READABLE
FIXED_RW = RW | uapi.IOMMU_IOAS_MAP_FIXED_IOVA


class Prog:
    def __init__(self, name: str, *buffers: Buffer, creds: Creds | None = None) -> None:
        self.name = name
        self.program = Program([], list(buffers), creds)
        self.expect: list[tuple[int | None, dict[str, Any]]] = []
        self.unsure: list[bool] = []

    def op(self, name: str, expect: int | None = 0, out: dict[str, Any] | None = None,
           unsure: bool = False, **args: Any) -> int:
        self.program.ops.append(Op(name, dict(args)))
        self.expect.append((expect, out or {}))
        self.unsure.append(unsure)
        return len(self.program.ops) - 1

    @staticmethod
    def ref(op: int, field: str, add: int = 0) -> Ref:
        return Ref(op, field, add)

    @staticmethod
    def buf(i: int, offset: int = 0) -> BufPtr:
        return BufPtr(i, offset)


def dirty_hwpt(p: Prog, length: int, dev_flags: int | None = None) -> tuple[Ref, Ref, Ref]:
    """An IOAS with a mock device (TEST_MOCK_DOMAIN_FLAGS when dev_flags), the first
    buffer's `length` bytes mapped at the aperture's start, and a dirty-tracking HWPT
    of that device on it: (ioas, idev, hwpt)."""
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    md = p.op("TEST_MOCK_DOMAIN", id=ioas) if dev_flags is None else \
        p.op("TEST_MOCK_DOMAIN_FLAGS", id=ioas, dev_flags=dev_flags)
    idev = p.ref(md, "out_idev_id")
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=length, iova=MOCK_APERTURE_START,
         flags=FIXED_RW)
    hwpt = p.op("HWPT_ALLOC", dev_id=idev, pt_id=ioas,
                flags=uapi.IOMMU_HWPT_ALLOC_DIRTY_TRACKING)
    return ioas, idev, p.ref(hwpt, "out_hwpt_id")
