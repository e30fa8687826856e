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
    ("DESTROY", "id"): ("ioas", "hwpt", "idev", "stdev"),
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
    ("TEST_ACCESS_REPLACE_IOAS", "ioas_id"): ("ioas",),
    ("TEST_ACCESS_PAGES", "id"): ("access",),
    ("TEST_DESTROY_ACCESS_PAGES", "id"): ("access",),
    ("TEST_DESTROY_ACCESS_PAGES", "access_pages_id"): ("access_pages",),
    ("TEST_ACCESS_RW", "id"): ("access",),
    ("CLOSE", "fd"): ("access",),
}

# Known flag bits per (op, arg); other bits are tried now and then.
FLAGS: dict[tuple[str, str], tuple[int, ...]] = {
    ("IOAS_MAP", "flags"): (1, 2, 4),
    ("IOAS_COPY", "flags"): (1, 2, 4),
    ("TEST_CREATE_ACCESS", "flags"): (1,),
    ("TEST_ACCESS_PAGES", "flags"): (1,),
    ("TEST_ACCESS_RW", "flags"): (1, 4),
    ("TEST_MOCK_DOMAIN_FLAGS", "dev_flags"): (1, 2),
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
        while len(prog.ops) < n:
            self.append(prog, objs, self.pick_op())
        return prog

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
        self.malform(spec, args)
        prog.ops.append(Op(name, args))
        for out, kind in spec.ref_outputs.items():
            objs.setdefault(kind, []).append(Ref(i, out))

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
        if name == "__reserved" or name == "last" or name.startswith("out_"):
            return self.pick((1, U32_MAX)) if self.chance(1, 40) else None
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
        if name in ("iova", "dst_iova", "src_iova", "start"):
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
