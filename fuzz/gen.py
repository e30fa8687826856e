"""Random programs over every op, mostly well-formed, often not.

Generation draws every decision from a Chooser, so the same code serves
`iommufd-fuzz gen` (a seeded random.Random) and the atheris engine (bytes from
libFuzzer): structure-aware decoding where most inputs make sense.
"""

from __future__ import annotations

import random
from typing import Any, Protocol

from fuzz.ops import OPS, OpSpec
from fuzz.prog import BUFFER_KINDS, HUGE_PAGE, PAGE, Buffer, BufPtr, Op, Program, Ref, Value

U32_MAX = (1 << 32) - 1
U64_MAX = (1 << 64) - 1
MOCK_PAGE = 2048
MOCK_APERTURE_START = 1 << 24
MOCK_APERTURE_LAST = (1 << 31) - 1

# Which object kind an id-like argument wants; refs of other kinds still get
# passed sometimes (wrong-type ids are a path worth testing).
ID_ARGS: dict[tuple[str, str], tuple[str, ...]] = {
    ("DESTROY", "id"): ("ioas", "hwpt", "idev", "stdev", "fault"),
    ("IOAS_ALLOW_IOVAS", "ioas_id"): ("ioas",),
    ("IOAS_IOVA_RANGES", "ioas_id"): ("ioas",),
    ("IOAS_MAP", "ioas_id"): ("ioas",),
    ("IOAS_COPY", "dst_ioas_id"): ("ioas",),
    ("IOAS_COPY", "src_ioas_id"): ("ioas",),
    ("IOAS_UNMAP", "ioas_id"): ("ioas",),
    ("OPTION", "object_id"): ("ioas",),
    ("VFIO_IOAS", "ioas_id"): ("ioas",),
    ("TEST_ADD_RESERVED", "id"): ("ioas",),
    ("TEST_MOCK_DOMAIN", "id"): ("ioas",),
    ("TEST_MOCK_DOMAIN_FLAGS", "id"): ("ioas",),
    ("TEST_MOCK_DOMAIN_REPLACE", "id"): ("stdev",),
    ("TEST_MOCK_DOMAIN_REPLACE", "pt_id"): ("ioas", "hwpt"),
    ("TEST_MD_CHECK_MAP", "id"): ("hwpt",),
    ("TEST_MD_CHECK_REFS", "id"): ("ioas",),
    ("TEST_CREATE_ACCESS", "id"): ("ioas",),
    ("TEST_ACCESS_REPLACE_IOAS", "id"): ("access",),
    ("TEST_ACCESS_REPLACE_IOAS", "ioas_id"): ("ioas", "ioas", "ioas", "hwpt"),
    ("TEST_ACCESS_PAGES", "id"): ("access",),
    ("TEST_DESTROY_ACCESS_PAGES", "id"): ("access",),
    ("TEST_DESTROY_ACCESS_PAGES", "access_pages_id"): ("access_pages",),
    ("TEST_ACCESS_RW", "id"): ("access",),
    ("CLOSE", "fd"): ("access", "fault_fd"),
    # HWPTs, hw info, dirty tracking, invalidation, fault queues (issue 9, temporary:
    # the descriptions replace these tables)
    ("HWPT_ALLOC", "dev_id"): ("idev",),
    ("HWPT_ALLOC", "pt_id"): ("ioas", "hwpt"),
    ("HWPT_ALLOC", "fault_id"): ("fault",),
    ("GET_HW_INFO", "dev_id"): ("idev",),
    ("HWPT_SET_DIRTY_TRACKING", "hwpt_id"): ("hwpt_dirty",),
    ("HWPT_GET_DIRTY_BITMAP", "hwpt_id"): ("hwpt_dirty",),
    ("HWPT_INVALIDATE", "hwpt_id"): ("hwpt_nested",),
    ("TEST_DIRTY", "id"): ("hwpt_dirty",),
    ("TEST_MD_CHECK_IOTLB", "id"): ("hwpt_nested",),
    ("TEST_TRIGGER_IOPF", "dev_id"): ("idev",),
    ("READ", "fd"): ("fault_fd",),
    ("WRITE", "fd"): ("fault_fd",),
    ("WRITE", "cookie"): ("cookie",),
}

# Known flag bits per (op, arg); other bits are tried now and then.
FLAGS: dict[tuple[str, str], tuple[int, ...]] = {
    ("IOAS_MAP", "flags"): (1, 2, 4),
    ("IOAS_COPY", "flags"): (1, 2, 4),
    ("TEST_CREATE_ACCESS", "flags"): (1,),
    ("TEST_ACCESS_PAGES", "flags"): (1,),
    ("TEST_ACCESS_RW", "flags"): (1, 4),
    ("TEST_MOCK_DOMAIN_FLAGS", "dev_flags"): (1, 2),
    ("HWPT_ALLOC", "flags"): (1, 2, 4),
    ("HWPT_SET_DIRTY_TRACKING", "flags"): (1,),
    ("HWPT_GET_DIRTY_BITMAP", "flags"): (1,),
    ("VFIO_IOMMU_MAP_DMA", "flags"): (1, 2),
    ("VFIO_IOMMU_UNMAP_DMA", "flags"): (1, 2),
}

SMALL_VALUES: dict[tuple[str, str], tuple[int, ...]] = {
    ("OPTION", "option_id"): (0, 1, 2),
    ("OPTION", "op"): (0, 1, 2),
    ("OPTION", "val64"): (0, 1, 2),
    ("VFIO_IOAS", "op"): (0, 1, 2, 3),
    ("VFIO_CHECK_EXTENSION", "extension"): (1, 3, 8, 9, 10, 0),
    ("VFIO_SET_IOMMU", "type"): (1, 3, 8, 0),
    ("TEST_SET_TEMP_MEMORY_LIMIT", "limit"): (0, 1, 16, 65536, 4096),
    ("TEST_MD_CHECK_REFS", "refs"): (0, 1, 2),
    ("IOAS_ALLOC", "flags"): (0, 0, 0, 0, 0, 1),  # most HWPT chains need the IOAS
    ("HWPT_ALLOC", "data_type"): (0, 0, 0xDEAD, 0xDEAD, 1, 0xDEAE),
    ("HWPT_ALLOC", "data_len"): (0, 4, 4, 4, 3, 5, 8),
    ("HWPT_ALLOC", "iotlb"): (0, 0xBADBEEF, 1),
    ("GET_HW_INFO", "data_len"): (0, 4, 8, 8, 12, 64, U32_MAX),
    ("GET_HW_INFO", "flags"): (0, 0, 0, 1),
    ("FAULT_QUEUE_ALLOC", "flags"): (0, 0, 0, 1),
    ("HWPT_INVALIDATE", "data_type"): (0xDEADBEEF, 0xDEADBEEF, 0xDEADBEEF, 0xDADBEEF, 0),
    ("TEST_DIRTY", "flags"): (0,),
    ("TEST_MD_CHECK_IOTLB", "iotlb_id"): (0, 1, 2, 3, 4),
    ("TEST_MD_CHECK_IOTLB", "iotlb"): (0, 0xBADBEEF, 1),
    ("TEST_TRIGGER_IOPF", "pasid"): (0, 0, 0, 1, U32_MAX),
    ("TEST_TRIGGER_IOPF", "grpid"): (0, 1, 2, 3),
    ("TEST_TRIGGER_IOPF", "perm"): (0, 1, 2, 3, 15),
    ("WRITE", "code"): (0, 0, 1, 2),
    ("TEST_DIRTY", "page_size"): (MOCK_PAGE,) * 5 + (1024, 4096, 0, 3),
    ("HWPT_GET_DIRTY_BITMAP", "page_size"): (MOCK_PAGE,) * 5 + (1024, 4096, 0, 3, 1 << 20),
}
# Arguments mostly left out (their default is the executor's side array or a count that
# fits it), sometimes an edge value.
MOSTLY_DEFAULT: dict[tuple[str, str], tuple[int, ...]] = {
    ("HWPT_ALLOC", "data_uptr"): (0, 1),
    ("GET_HW_INFO", "data_uptr"): (0,),
    ("HWPT_INVALIDATE", "data_uptr"): (0,),
    ("HWPT_INVALIDATE", "entry_len"): (0, 4, 9, 4097),
    ("HWPT_INVALIDATE", "entry_num"): (0, 1, 5, (1 << 19) + 1),
    ("READ", "buf"): (0,),
    ("READ", "count"): (0, 39, 40, 80, 400),
    ("WRITE", "buf"): (0,),
    ("WRITE", "count"): (0, 4, 16, 64),
}

INTERESTING_U64 = (0, 1, MOCK_PAGE, PAGE - 1, PAGE, PAGE + MOCK_PAGE, HUGE_PAGE,
                   MOCK_APERTURE_START, MOCK_APERTURE_START - PAGE, MOCK_APERTURE_LAST,
                   MOCK_APERTURE_LAST + 1, 1 << 32, 1 << 47, U32_MAX, U64_MAX, U64_MAX - PAGE + 1,
                   U64_MAX - 1, 1 << 63)
LENGTHS = (PAGE, 2 * PAGE, 16 * PAGE, MOCK_PAGE, 3 * MOCK_PAGE, HUGE_PAGE, 0, 1, U64_MAX,
           PAGE * 256, (1 << 20))

# Relative weights: the IOAS/area ops are the heart of iommufd.
WEIGHTS: dict[str, int] = {
    "IOAS_ALLOC": 6, "IOAS_MAP": 14, "IOAS_UNMAP": 8, "IOAS_COPY": 6, "IOAS_IOVA_RANGES": 3,
    "IOAS_ALLOW_IOVAS": 3, "DESTROY": 4, "OPTION": 3, "VFIO_IOAS": 2,
    "TEST_ADD_RESERVED": 3, "TEST_MOCK_DOMAIN": 5, "TEST_MOCK_DOMAIN_FLAGS": 2,
    "TEST_MOCK_DOMAIN_REPLACE": 2, "TEST_MD_CHECK_MAP": 3, "TEST_MD_CHECK_REFS": 2,
    "TEST_CREATE_ACCESS": 4, "TEST_ACCESS_PAGES": 4, "TEST_DESTROY_ACCESS_PAGES": 2,
    "TEST_ACCESS_RW": 4, "TEST_ACCESS_REPLACE_IOAS": 1, "TEST_SET_TEMP_MEMORY_LIMIT": 1,
    "CLOSE": 1, "VFIO_GET_API_VERSION": 1, "VFIO_CHECK_EXTENSION": 1, "VFIO_SET_IOMMU": 2,
    "VFIO_IOMMU_GET_INFO": 2, "VFIO_IOMMU_MAP_DMA": 3, "VFIO_IOMMU_UNMAP_DMA": 2,
    "HWPT_ALLOC": 6, "GET_HW_INFO": 2, "HWPT_SET_DIRTY_TRACKING": 3, "HWPT_GET_DIRTY_BITMAP": 3,
    "HWPT_INVALIDATE": 3, "FAULT_QUEUE_ALLOC": 2, "TEST_DIRTY": 3, "TEST_MD_CHECK_IOTLB": 2,
    "TEST_TRIGGER_IOPF": 3, "READ": 3, "WRITE": 2,
}
assert set(WEIGHTS) == set(OPS), set(OPS) ^ set(WEIGHTS)


class Chooser(Protocol):
    def below(self, n: int) -> int:
        """An integer in [0, n)."""

    def bits(self, k: int) -> int:
        """A k-bit integer."""


class RandomChooser:
    def __init__(self, seed: int | None = None) -> None:
        self.rng = random.Random(seed)

    def below(self, n: int) -> int:
        return self.rng.randrange(n) if n > 0 else 0

    def bits(self, k: int) -> int:
        return self.rng.getrandbits(k)


class Generator:
    """Builds one program, tracking which refs hold which object kinds."""

    def __init__(self, ch: Chooser, max_ops: int = 24) -> None:
        self.ch = ch
        self.max_ops = max_ops
        names = sorted(WEIGHTS)
        self.names = names
        self.cum: list[int] = []
        total = 0
        for n in names:
            total += WEIGHTS[n]
            self.cum.append(total)

    # small helpers --------------------------------------------------------------
    def chance(self, num: int, den: int) -> bool:
        return self.ch.below(den) < num

    def pick(self, seq: Any) -> Any:
        return seq[self.ch.below(len(seq))]

    def pick_op(self) -> str:
        r = self.ch.below(self.cum[-1])
        for n, c in zip(self.names, self.cum):
            if r < c:
                return n
        return self.names[-1]

    # program ----------------------------------------------------------------------
    def program(self) -> Program:
        bufs = [self.buffer() for _ in range(1 + self.ch.below(3))]
        prog = Program([], bufs)
        objs: dict[str, list[Ref]] = {}
        n = 1 + self.ch.below(self.max_ops)
        # Most programs start with an IOAS: nearly everything needs one.
        if self.chance(7, 8):
            self.append(prog, objs, "IOAS_ALLOC")
            # ... and often a device: HWPT_ALLOC, hw info and faults all need an idev
            if self.chance(1, 3):
                self.append(prog, objs, "TEST_MOCK_DOMAIN")
        if prog.ops and self.chance(1, 5):
            self.hwpt_chain(prog, objs)
        while len(prog.ops) < n:
            self.append(prog, objs, self.pick_op())
        return prog

    def add(self, prog: Program, objs: dict[str, list[Ref]], name: str, **args: Value) -> int:
        i = len(prog.ops)
        prog.ops.append(Op(name, args))
        for out, kind in OPS[name].ref_outputs.items():
            objs.setdefault(kind, []).append(Ref(i, out))
        return i

    def hwpt_chain(self, prog: Program, objs: dict[str, list[Ref]]) -> None:
        """A device, a paging HWPT (nest parent, maybe dirty tracking) and a nested one
        reporting to a fault queue, the device moved onto it: the objects the HWPT,
        dirty, invalidation and fault ops act on, for the random ops that follow
        (temporary, until generation knows what each op needs)."""
        ioas = Ref(self.add(prog, objs, "IOAS_ALLOC"), "out_ioas_id")
        dev_flags = self.pick((0, 0, 1, 2))
        md = self.add(prog, objs, "TEST_MOCK_DOMAIN_FLAGS", id=ioas, dev_flags=dev_flags)
        idev, stdev = Ref(md, "out_idev_id"), Ref(md, "out_stdev_id")
        mapped = 0
        if prog.buffers and prog.buffers[0].kind != "hole" and self.chance(2, 3):
            mapped = prog.buffers[0].size
            m = self.add(prog, objs, "IOAS_MAP", ioas_id=ioas, user_va=BufPtr(0), length=mapped,
                         flags=6)
            objs.setdefault("iova", []).append(Ref(m, "iova"))
        flags = 1 | (2 if dev_flags != 1 and self.chance(1, 2) else 0)
        parent = self.add(prog, objs, "HWPT_ALLOC", dev_id=idev, pt_id=ioas, flags=flags)
        if flags & 2:
            objs.setdefault("hwpt_dirty", []).append(Ref(parent, "out_hwpt_id"))
        if flags & 2 and self.chance(2, 3):
            self.add(prog, objs, "HWPT_SET_DIRTY_TRACKING", hwpt_id=Ref(parent, "out_hwpt_id"),
                     flags=1)
            if mapped and self.chance(2, 3):
                self.add(prog, objs, "TEST_DIRTY", id=Ref(parent, "out_hwpt_id"),
                         iova=Ref(m, "iova"), length=mapped, page_size=MOCK_PAGE,
                         uptr=BufPtr(len(prog.buffers) - 1))
        args: dict[str, Value] = {"dev_id": idev, "pt_id": Ref(parent, "out_hwpt_id"),
                                  "data_type": 0xDEAD, "data_len": 4,
                                  "iotlb": self.pick((0, 0xBADBEEF))}
        if self.chance(2, 3):
            fq = self.add(prog, objs, "FAULT_QUEUE_ALLOC")
            args.update(flags=4, fault_id=Ref(fq, "out_fault_id"))
        nested = self.add(prog, objs, "HWPT_ALLOC", **args)
        objs.setdefault("hwpt_nested", []).append(Ref(nested, "out_hwpt_id"))
        if self.chance(3, 4):
            self.add(prog, objs, "TEST_MOCK_DOMAIN_REPLACE", id=stdev,
                     pt_id=Ref(nested, "out_hwpt_id"))
            if "fault_id" in args and self.chance(1, 2):
                self.add(prog, objs, "TEST_TRIGGER_IOPF", dev_id=idev,
                         addr=self.pick((0, 4096, 1 << 24)), grpid=self.ch.below(4))
                if self.chance(1, 2):
                    fd = Ref(fq, "out_fault_fd")
                    r = self.add(prog, objs, "READ", fd=fd)
                    objs.setdefault("cookie", []).append(Ref(r, "cookie"))
                    self.add(prog, objs, "WRITE", fd=fd, cookie=Ref(r, "cookie"),
                             code=self.pick((0, 1)))

    def buffer(self) -> Buffer:
        kind = self.pick(BUFFER_KINDS) if self.chance(1, 3) else "anon"
        unit = HUGE_PAGE if kind == "hugetlb" else PAGE
        # Small buffers mostly: every page is faulted in and filled in the guest,
        # which under TCG with KASAN costs far more than the ioctls themselves.
        size = unit * self.pick((1, 2, 4, 8, 16, 16, 64, 256) if unit == PAGE else (1,))
        holes = []
        if kind not in ("hole",) and size >= 4 * unit and self.chance(1, 6):
            off = unit * (1 + self.ch.below(size // unit - 2))
            holes.append((off, unit))
        return Buffer(size, kind, self.ch.below(256), holes)

    def append(self, prog: Program, objs: dict[str, list[Ref]], name: str) -> None:
        spec = OPS[name]
        i = len(prog.ops)
        args: dict[str, Value] = {}
        for a in spec.args:
            v = self.arg(prog, objs, spec, a.name, a.kind)
            if v is not None:
                args[a.name] = v
        if name == "HWPT_ALLOC" and self.chance(3, 4):
            self.coherent_hwpt_alloc(prog, args)
        self.malform(spec, args)
        prog.ops.append(Op(name, args))
        for out, kind in spec.ref_outputs.items():
            objs.setdefault(kind, []).append(Ref(i, out))
        if name == "READ":
            objs.setdefault("cookie", []).append(Ref(i, "cookie"))

    def coherent_hwpt_alloc(self, prog: Program, args: dict[str, Value]) -> None:
        """Mostly the arguments that make sense together: a paging HWPT on an IOAS
        (no data) or a nested one on a HWPT (selftest data, maybe a fault queue)."""
        pt = args.get("pt_id")
        on_ioas = not (isinstance(pt, Ref) and pt.field == "out_hwpt_id")
        for k in ("data_type", "data_len", "data_uptr"):
            args.pop(k, None)
        if on_ioas:
            args["flags"] = self.pick((0, 1, 1, 2, 3))
        else:
            args.update(data_type=0xDEAD, data_len=4)
            args["flags"] = 4 if "fault_id" in args and self.chance(1, 2) else 0
            if not args["flags"]:
                args.pop("fault_id", None)

    def ref_of(self, objs: dict[str, list[Ref]], kinds: tuple[str, ...]) -> Value:
        have = [r for k in kinds for r in objs.get(k, [])]
        if have and self.chance(7, 8):
            return self.pick(have)
        anything = [r for rs in objs.values() for r in rs if r.field != "iova"]
        if anything and self.chance(1, 2):
            return self.pick(anything)  # an id of another object type
        return self.pick((0, 1, 2, 3, 100, U32_MAX))

    def iova(self, objs: dict[str, list[Ref]]) -> Value:
        refs = objs.get("iova", [])
        if refs and self.chance(2, 3):
            r = self.pick(refs)
            return Ref(r.op, r.field, self.pick((0, 0, 0, PAGE, MOCK_PAGE, -PAGE)))
        if self.chance(1, 2):
            return MOCK_APERTURE_START + PAGE * self.ch.below(64)
        return self.pick(INTERESTING_U64)

    def arg(self, prog: Program, objs: dict[str, list[Ref]], spec: OpSpec, name: str,
            kind: str) -> Value | None:
        key = (spec.name, name)
        if name.startswith("__reserved") or name == "last" or name.startswith("out_"):
            return self.pick((1, U32_MAX)) if self.chance(1, 40) else None
        if key in MOSTLY_DEFAULT:
            if self.chance(7, 8):
                return None
            v = self.pick(MOSTLY_DEFAULT[key])
            if kind == "uptr" and prog.buffers and self.chance(1, 2):
                return BufPtr(self.ch.below(len(prog.buffers)), self.pick((0, 0, 1, 4093)))
            return v
        if kind == "pairs":
            hi = 4 if spec.name == "HWPT_INVALIDATE" else 3
            return [[self.pick((0, 0, 1, 2)), self.ch.below(hi + 1)]
                    for _ in range(self.ch.below(4))]
        if key in (("IOAS_ALLOW_IOVAS", "num_iovas"), ("IOAS_IOVA_RANGES", "allowed_iovas")):
            # usually the executor's side array and its true count
            return None if self.chance(15, 16) else self.pick((0, 1, 5000, U32_MAX))
        if key in ID_ARGS:
            return self.ref_of(objs, ID_ARGS[key])
        if key in FLAGS:
            known = FLAGS[key]
            v = 0
            for bit in known:
                if self.chance(2, 3):
                    v |= bit
            if self.chance(1, 20):
                v |= 1 << self.ch.below(32)
            return v
        if key in SMALL_VALUES:
            return self.pick(SMALL_VALUES[key])
        if kind == "uptr":
            if not prog.buffers or self.chance(1, 30):
                return self.pick((0, 1, U64_MAX))
            b = self.ch.below(len(prog.buffers))
            off = 0 if self.chance(3, 4) else self.pick((PAGE, MOCK_PAGE, 1, 64))
            return BufPtr(b, off)
        if kind == "ranges":
            return [self.range() for _ in range(self.ch.below(3))]
        if kind == "capacity":
            return self.pick((0, 1, 2, 8, 8, 8))
        if name in ("iova", "dst_iova", "src_iova", "start", "addr"):
            if spec.name in ("IOAS_MAP", "IOAS_COPY") and name != "src_iova" \
                    and self.chance(1, 2):
                return None  # automatic IOVA: leave the kernel's choice
            return self.iova(objs)
        if name in ("length", "size"):
            bufs = prog.buffers
            if bufs and self.chance(1, 2):
                return bufs[self.ch.below(len(bufs))].size >> self.ch.below(3)
            return self.pick(LENGTHS)
        return self.pick(INTERESTING_U64) if kind == "u64" else self.pick((0, 1, 2, U32_MAX))

    def range(self) -> list[int]:
        start = self.pick((0, MOCK_APERTURE_START, 1 << 32, PAGE, HUGE_PAGE))
        length = self.pick((PAGE, 1 << 20, 1 << 30, MOCK_PAGE))
        return [start, min(start + length - 1, U64_MAX)]

    def malform(self, spec: OpSpec, args: dict[str, Value]) -> None:
        if spec.kind == "iommufd" or spec.kind == "test":
            if self.chance(1, 30):
                args["size"] = self.pick((0, 4, 8, 16, 200))
                if self.chance(1, 2):
                    args["tail"] = 1


def generate(seed: int, max_ops: int = 24) -> Program:
    return Generator(RandomChooser(seed), max_ops).program()
