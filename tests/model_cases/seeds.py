"""Hand-written seed programs with the result each op must have.

Each builder returns a Prog (tests/model_cases/dsl.py): the program and, per op,
the expected errno and output fields. tests/test_model.py runs them through the
model; `python3 -m tests.model_cases.seeds` (from the repo root) writes them to
corpus/seeds/<name>.json for the lead to run against the kernel. Expected values
come from tools/testing/selftests/iommu/iommufd.c where it has them (named in
the comments), else from reading the 6.12 source.
"""

from __future__ import annotations

import errno as E

from fuzz.prog import Buffer, buffer_address, pattern_bytes

from .dsl import FIXED_RW, MOCK_APERTURE_LAST, MOCK_APERTURE_START, PAGE, RW, U64, Prog
from .seeds_cov import SEEDS_COV
from .seeds_hwpt import SEEDS_HWPT
from .seeds_mutants import ORACLE_PROGRAMS as ORACLE_PROGRAMS1
from .seeds_mutants import SEEDS_MUTANTS
from .seeds_mutants2 import ORACLE_PROGRAMS2, SEEDS_MUTANTS2
from .seeds_mutants3 import SEEDS_MUTANTS3
from .seeds_mutants4 import SEEDS_MUTANTS4
from .seeds_mutants5 import SEEDS_MUTANTS5
from .seeds_oracle import SEEDS_ORACLE

M16 = MOCK_APERTURE_START
ORACLE_PROGRAMS = [*ORACLE_PROGRAMS1, *ORACLE_PROGRAMS2]


def ioas_alloc_destroy() -> Prog:
    p = Prog("ioas_alloc_destroy")
    a = p.op("IOAS_ALLOC", out={"out_ioas_id": 1})
    p.op("IOAS_ALLOC", flags=1, expect=E.EOPNOTSUPP, out={"out_ioas_id": 0})
    p.op("IOAS_ALLOC", out={"out_ioas_id": 2})
    p.op("DESTROY", id=p.ref(a, "out_ioas_id"))
    p.op("DESTROY", id=p.ref(a, "out_ioas_id"), expect=E.ENOENT)
    p.op("DESTROY", id=0, expect=E.ENOENT)  # selftest cmd_fail
    p.op("IOAS_ALLOC", out={"out_ioas_id": 1})  # lowest free id is reused
    p.op("DESTROY", id=3, expect=E.ENOENT)
    p.op("IOAS_ALLOC", out_ioas_id=77, out={"out_ioas_id": 3})
    return p


def cmd_length() -> Prog:
    # selftest cmd_length / cmd_ex_fail: size < min -> EINVAL, non-zero tail -> E2BIG
    p = Prog("cmd_length")
    p.op("DESTROY", id=0, size=7, expect=E.EINVAL)
    p.op("DESTROY", id=0, size=9, tail=255, expect=E.E2BIG)
    p.op("DESTROY", id=0, size=16, expect=E.ENOENT)
    p.op("IOAS_ALLOC", size=11, expect=E.EINVAL)
    p.op("IOAS_ALLOC", size=13, tail=1, expect=E.E2BIG)
    a = p.op("IOAS_ALLOC", size=13, out={"out_ioas_id": 1})
    ioas = p.ref(a, "out_ioas_id")
    p.op("IOAS_IOVA_RANGES", ioas_id=ioas, size=31, expect=E.EINVAL)
    p.op("IOAS_IOVA_RANGES", ioas_id=ioas, size=33, tail=0xFF, expect=E.E2BIG)
    p.op("IOAS_IOVA_RANGES", ioas_id=ioas, size=40, out={"num_iovas": 1})
    p.op("IOAS_MAP", ioas_id=ioas, size=39, expect=E.EINVAL)
    p.op("IOAS_UNMAP", ioas_id=ioas, size=25, tail=1, expect=E.E2BIG)
    p.op("OPTION", size=23, expect=E.EINVAL)
    p.op("VFIO_IOAS", size=11, expect=E.EINVAL)
    p.op("IOAS_ALLOW_IOVAS", ioas_id=ioas, size=23, expect=E.EINVAL)
    p.op("IOAS_COPY", size=39, expect=E.EINVAL)
    p.op("TEST_SET_TEMP_MEMORY_LIMIT", limit=65536, size=67, expect=E.EINVAL)
    p.op("TEST_SET_TEMP_MEMORY_LIMIT", limit=65536, size=68)
    p.op("TEST_SET_TEMP_MEMORY_LIMIT", limit=65536, size=73, tail=1, expect=E.E2BIG)
    p.op("TEST_SET_TEMP_MEMORY_LIMIT", limit=11, expect=E.EINVAL)
    p.op("TEST_SET_TEMP_MEMORY_LIMIT", limit=12)
    p.op("TEST_SET_TEMP_MEMORY_LIMIT", limit=65536)
    return p


def unmap_area_rules() -> Prog:
    # selftest area: unmap of nothing is ENOENT, no splitting, over-map is EEXIST
    p = Prog("unmap_area_rules", Buffer(65536, "memfd", 1))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    buf = p.buf(0)
    for i in range(2):
        p.op("IOAS_UNMAP", ioas_id=ioas, iova=i * PAGE, length=PAGE, expect=E.ENOENT,
             out={"length": PAGE})
    for i in range(4):
        p.op("IOAS_MAP", ioas_id=ioas, user_va=buf, length=PAGE, iova=M16 + i * PAGE,
             flags=FIXED_RW, out={"iova": M16 + i * PAGE})
    for i in range(4):
        p.op("IOAS_UNMAP", ioas_id=ioas, iova=M16 + i * PAGE, length=PAGE,
             out={"length": PAGE})
    p.op("IOAS_MAP", ioas_id=ioas, user_va=buf, length=2 * PAGE, iova=M16 + 16 * PAGE,
         flags=FIXED_RW)
    p.op("IOAS_UNMAP", ioas_id=ioas, iova=M16 + 16 * PAGE, length=PAGE, expect=E.ENOENT)
    p.op("IOAS_UNMAP", ioas_id=ioas, iova=M16 + 17 * PAGE, length=PAGE, expect=E.ENOENT)
    for pages, at in ((2, 16), (1, 16), (1, 17), (2, 15), (3, 15)):
        p.op("IOAS_MAP", ioas_id=ioas, user_va=buf, length=pages * PAGE,
             iova=M16 + at * PAGE, flags=FIXED_RW, expect=E.EEXIST,
             out={"iova": M16 + at * PAGE})
    p.op("IOAS_UNMAP", ioas_id=ioas, iova=0, length=U64, out={"length": 2 * PAGE})
    p.op("IOAS_UNMAP", ioas_id=ioas, iova=0, length=U64, out={"length": 0})
    p.op("IOAS_UNMAP", ioas_id=ioas, iova=U64, length=PAGE, expect=E.EOVERFLOW)
    p.op("IOAS_UNMAP", ioas_id=ioas, iova=1, length=U64, expect=E.EOVERFLOW)
    p.op("IOAS_UNMAP", ioas_id=ioas, iova=5, length=0, expect=E.EINVAL)
    p.op("IOAS_UNMAP", ioas_id=ioas, iova=U64 - 10, length=100, expect=E.EOVERFLOW)
    p.op("IOAS_UNMAP", ioas_id=99, iova=0, length=U64, expect=E.ENOENT)
    return p


def unmap_fully_contained_areas() -> Prog:
    # selftest unmap_fully_contained_areas
    p = Prog("unmap_fully_contained_areas", Buffer(8 * PAGE, "memfd", 2))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    base = M16 + 4 * PAGE
    for i in range(4):
        p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=8 * PAGE,
             iova=base + i * 16 * PAGE, flags=FIXED_RW)
    p.op("IOAS_UNMAP", ioas_id=ioas, iova=base - 4 * PAGE, length=8 * PAGE, expect=E.ENOENT)
    p.op("IOAS_UNMAP", ioas_id=ioas, iova=base + 3 * 16 * PAGE + 8 * PAGE - 4 * PAGE,
         length=8 * PAGE, expect=E.ENOENT)
    p.op("IOAS_UNMAP", ioas_id=ioas, iova=base - 4 * PAGE,
         length=3 * 16 * PAGE + 8 * PAGE + 4 * PAGE, out={"length": 32 * PAGE})
    # a range that covers one area and cuts the next: the first is unmapped anyway
    a = M16 + 256 * PAGE
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=4 * PAGE, iova=a, flags=FIXED_RW)
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=8 * PAGE, iova=a + 8 * PAGE,
         flags=FIXED_RW)
    p.op("IOAS_UNMAP", ioas_id=ioas, iova=a, length=12 * PAGE, expect=E.ENOENT,
         out={"length": 12 * PAGE})
    p.op("IOAS_UNMAP", ioas_id=ioas, iova=a, length=4 * PAGE, expect=E.ENOENT)
    p.op("IOAS_UNMAP", ioas_id=ioas, iova=a + 8 * PAGE, length=8 * PAGE,
         out={"length": 8 * PAGE})
    return p


def map_check_order() -> Prog:
    p = Prog("map_check_order", Buffer(65536, "memfd", 3))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    buf = p.buf(0)
    p.op("IOAS_MAP", ioas_id=ioas, user_va=buf, length=PAGE, flags=8 | RW,
         expect=E.EOPNOTSUPP)
    p.op("IOAS_MAP", ioas_id=ioas, user_va=buf, length=PAGE, flags=RW, __reserved=1,
         expect=E.EOPNOTSUPP)
    p.op("IOAS_MAP", ioas_id=ioas, user_va=buf, length=PAGE, flags=FIXED_RW, iova=U64,
         expect=E.EOVERFLOW, out={"iova": U64})
    p.op("IOAS_MAP", ioas_id=99, user_va=buf, length=U64, flags=RW, expect=E.EOVERFLOW)
    p.op("IOAS_MAP", ioas_id=99, user_va=buf, length=PAGE, flags=1, expect=E.EINVAL)
    p.op("IOAS_MAP", ioas_id=99, user_va=buf, length=PAGE, flags=RW, expect=E.ENOENT)
    p.op("IOAS_MAP", ioas_id=ioas, user_va=buf, length=0, flags=RW, expect=E.EINVAL)
    p.op("IOAS_MAP", ioas_id=ioas, user_va=U64 - PAGE + 1, length=2 * PAGE, flags=RW,
         expect=E.EOVERFLOW)
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0, 1), length=PAGE - 1, iova=5,
         flags=FIXED_RW, out={"iova": 5})
    p.op("IOAS_MAP", ioas_id=ioas, user_va=buf, length=2 * PAGE, iova=U64 - PAGE,
         flags=FIXED_RW, expect=E.EOVERFLOW)
    p.op("IOAS_MAP", ioas_id=ioas, user_va=buf, length=PAGE, iova=PAGE, flags=FIXED_RW,
         expect=E.EEXIST)
    # no domain: nothing is pinned, so memory that is not there maps fine
    p.op("IOAS_MAP", ioas_id=ioas, user_va=buffer_address(5), length=PAGE, iova=M16,
         flags=FIXED_RW)
    p.op("IOAS_MAP", ioas_id=ioas, user_va=0, length=PAGE, iova=2 * M16, flags=FIXED_RW)
    # a READABLE-only map is fine too
    p.op("IOAS_MAP", ioas_id=ioas, user_va=buf, length=PAGE, iova=3 * M16,
         flags=1 | 4, out={"iova": 3 * M16})
    return p


def auto_iova_alignment() -> Prog:
    # selftest area_auto_iova / ioas_iova_alloc: the kernel aligns automatic IOVAs
    p = Prog("auto_iova_alignment", Buffer(1 << 20, "memfd", 4))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=PAGE, flags=RW,
         out={"iova": 0x1000})
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=2 * PAGE, flags=RW,
         out={"iova": 0x2000})
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=3 * PAGE, flags=RW,
         out={"iova": 0x4000})
    # the page offset of the user address is kept, alignment from its low bits
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0, 2048), length=PAGE, flags=RW,
         out={"iova": 0x7800})
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0, 1), length=1, flags=RW,
         out={"iova": 0x7001})
    # alignment is capped at 2 MiB; no domain so the length may exceed the buffer
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=(2 << 20) + PAGE, flags=RW,
         out={"iova": 0x200000})
    p.op("IOAS_MAP", ioas_id=ioas, user_va=0, length=3 * PAGE, flags=RW,
         out={"iova": 0xC000})
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=1 << 62, flags=RW,
         out={"iova": 0x600000})
    p.op("IOAS_MAP", ioas_id=ioas, user_va=0, length=1 << 63, flags=RW, expect=E.EOVERFLOW)
    return p


def auto_iova_reserved_allowed() -> Prog:
    # selftest area_auto_iova, area_allowed
    p = Prog("auto_iova_reserved_allowed", Buffer(65536, "memfd", 5))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("TEST_ADD_RESERVED", id=ioas, start=4 * PAGE, length=100 * PAGE)
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=PAGE, flags=RW,
         out={"iova": PAGE})
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=4 * PAGE, flags=RW,
         out={"iova": 104 * PAGE})
    p.op("IOAS_ALLOW_IOVAS", ioas_id=ioas, allowed_iovas=[[PAGE, 600 * PAGE]],
         expect=E.EADDRINUSE)
    p.op("IOAS_ALLOW_IOVAS", ioas_id=ioas, allowed_iovas=[[200 * PAGE, 600 * PAGE - 1]])
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=PAGE, flags=RW,
         out={"iova": 200 * PAGE})
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=8 * PAGE, flags=RW,
         out={"iova": 208 * PAGE})
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=2 << 20, flags=RW,
         expect=E.ENOSPC)
    # fixed IOVAs are not limited by the allowed ranges
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=PAGE, iova=1000 * PAGE,
         flags=FIXED_RW)
    p.op("TEST_ADD_RESERVED", id=ioas, start=300 * PAGE, length=PAGE, expect=E.EADDRINUSE)
    p.op("TEST_ADD_RESERVED", id=ioas, start=1000 * PAGE, length=PAGE, expect=E.EADDRINUSE)
    p.op("TEST_ADD_RESERVED", id=ioas, start=0, length=0, expect=E.EINVAL)
    p.op("TEST_ADD_RESERVED", id=ioas, start=U64, length=2, expect=E.EOVERFLOW)
    p.op("TEST_ADD_RESERVED", id=99, start=0, length=1, expect=E.ENOENT)
    # reserved ranges may overlap each other
    p.op("TEST_ADD_RESERVED", id=ioas, start=4 * PAGE, length=PAGE)
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=PAGE, iova=5 * PAGE,
         flags=FIXED_RW, expect=E.EINVAL)
    p.op("IOAS_ALLOW_IOVAS", ioas_id=ioas, allowed_iovas=[])
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=PAGE, flags=RW,
         out={"iova": 2 * PAGE})
    return p


def allow_iovas_errors() -> Prog:
    p = Prog("allow_iovas_errors", Buffer(PAGE, "anon", 30))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("IOAS_ALLOW_IOVAS", ioas_id=ioas, allowed_iovas=[[5, 5]], expect=E.EINVAL)
    p.op("IOAS_ALLOW_IOVAS", ioas_id=ioas, allowed_iovas=[[10, 5]], expect=E.EINVAL)
    p.op("IOAS_ALLOW_IOVAS", ioas_id=ioas, allowed_iovas=[[0, 100], [50, 200]],
         expect=E.EINVAL)
    p.op("IOAS_ALLOW_IOVAS", ioas_id=ioas, allowed_iovas=[[0, 100], [101, 200]])
    p.op("IOAS_ALLOW_IOVAS", ioas_id=99, allowed_iovas=[], __reserved=1,
         expect=E.EOPNOTSUPP)
    p.op("IOAS_ALLOW_IOVAS", ioas_id=99, allowed_iovas=[], expect=E.ENOENT)
    p.op("IOAS_ALLOW_IOVAS", ioas_id=ioas, allowed_iovas=[[0, 100]], num_iovas=2,
         expect=E.EINVAL)
    p.op("IOAS_ALLOW_IOVAS", ioas_id=ioas, allowed_iovas=0, num_iovas=1, expect=E.EFAULT)
    p.op("IOAS_ALLOW_IOVAS", ioas_id=ioas, allowed_iovas=0, num_iovas=0)
    p.op("IOAS_ALLOW_IOVAS", ioas_id=ioas, allowed_iovas=[[M16, 2 * M16]])
    md = p.op("TEST_MOCK_DOMAIN", id=ioas)
    p.op("IOAS_ALLOW_IOVAS", ioas_id=ioas, allowed_iovas=[[0, M16]], expect=E.EADDRINUSE)
    p.op("IOAS_IOVA_RANGES", ioas_id=ioas,
         out={"num_iovas": 1, "out_iova_alignment": 2048,
              "ranges": [[M16, MOCK_APERTURE_LAST]]})
    # automatic IOVA comes from the allowed range
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=PAGE, flags=RW,
         out={"iova": M16})
    p.op("DESTROY", id=p.ref(md, "out_stdev_id"))
    return p


def iova_ranges_emsgsize() -> Prog:
    # selftest iova_ranges
    p = Prog("iova_ranges_emsgsize")
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("IOAS_IOVA_RANGES", ioas_id=ioas,
         out={"num_iovas": 1, "ranges": [[0, U64]], "out_iova_alignment": 1})
    p.op("IOAS_IOVA_RANGES", ioas_id=ioas, num_iovas=0, expect=E.EMSGSIZE,
         out={"num_iovas": 1, "ranges": []})
    p.op("TEST_ADD_RESERVED", id=ioas, start=PAGE, length=PAGE)
    p.op("IOAS_IOVA_RANGES", ioas_id=ioas,
         out={"num_iovas": 2, "ranges": [[0, PAGE - 1], [2 * PAGE, U64]]})
    p.op("IOAS_IOVA_RANGES", ioas_id=ioas, num_iovas=1, expect=E.EMSGSIZE,
         out={"num_iovas": 2, "ranges": [[0, PAGE - 1]]})
    p.op("IOAS_IOVA_RANGES", ioas_id=ioas, __reserved=1, expect=E.EOPNOTSUPP,
         out={"num_iovas": 8})
    p.op("IOAS_IOVA_RANGES", ioas_id=99, expect=E.ENOENT, out={"num_iovas": 8})
    p.op("IOAS_IOVA_RANGES", ioas_id=ioas, allowed_iovas=0, num_iovas=0, expect=E.EMSGSIZE,
         out={"num_iovas": 2})
    p.op("IOAS_IOVA_RANGES", ioas_id=ioas, allowed_iovas=0, num_iovas=1, expect=E.EFAULT,
         out={"num_iovas": 1, "out_iova_alignment": 0})
    p.op("TEST_ADD_RESERVED", id=ioas, start=U64 - PAGE + 1, length=PAGE)
    p.op("TEST_ADD_RESERVED", id=ioas, start=2 * PAGE, length=1)
    p.op("IOAS_IOVA_RANGES", ioas_id=ioas,
         out={"num_iovas": 2, "ranges": [[0, PAGE - 1], [2 * PAGE + 1, U64 - PAGE]]})
    return p


def copy_area() -> Prog:
    # selftest copy_area, copy_sweep
    p = Prog("copy_area", Buffer(65536, "memfd", 6), Buffer(4 * PAGE, "readonly", 7))
    a = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    b = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("IOAS_MAP", ioas_id=a, user_va=p.buf(0), length=PAGE, iova=M16, flags=FIXED_RW)
    p.op("IOAS_COPY", dst_ioas_id=a, src_ioas_id=a, src_iova=M16, dst_iova=M16 + PAGE,
         length=PAGE, flags=3, out={"dst_iova": M16 + PAGE})
    p.op("IOAS_COPY", dst_ioas_id=b, src_ioas_id=a, src_iova=M16, dst_iova=0,
         length=PAGE, flags=3, out={"dst_iova": 0})
    p.op("IOAS_COPY", dst_ioas_id=b, src_ioas_id=a, src_iova=M16, length=PAGE, flags=6,
         out={"dst_iova": PAGE})
    p.op("IOAS_COPY", dst_ioas_id=b, src_ioas_id=a, src_iova=M16 + 2 * PAGE, length=PAGE,
         flags=6, expect=E.ENOENT)
    p.op("IOAS_COPY", dst_ioas_id=b, src_ioas_id=a, src_iova=M16, length=0, flags=6,
         expect=E.EINVAL)
    p.op("IOAS_COPY", dst_ioas_id=b, src_ioas_id=a, src_iova=M16, length=PAGE,
         flags=0x10 | 6, expect=E.EOPNOTSUPP)
    p.op("IOAS_COPY", dst_ioas_id=b, src_ioas_id=a, src_iova=M16, length=PAGE, flags=1,
         expect=E.EINVAL)
    p.op("IOAS_COPY", dst_ioas_id=b, src_ioas_id=a, src_iova=U64, length=PAGE, flags=6,
         expect=E.EOVERFLOW)
    p.op("IOAS_COPY", dst_ioas_id=b, src_ioas_id=99, src_iova=M16, length=PAGE, flags=6,
         expect=E.ENOENT)
    p.op("IOAS_COPY", dst_ioas_id=99, src_ioas_id=a, src_iova=M16, length=PAGE, flags=6,
         expect=E.ENOENT)
    # a copy may straddle back-to-back areas; the page offset is kept
    p.op("IOAS_COPY", dst_ioas_id=b, src_ioas_id=a, src_iova=M16 + 2048, length=PAGE,
         flags=6, out={"dst_iova": 10240})
    # copy across two back-to-back areas makes two areas in the destination
    p.op("IOAS_COPY", dst_ioas_id=b, src_ioas_id=a, src_iova=M16, dst_iova=1 << 20,
         length=2 * PAGE, flags=3)
    p.op("IOAS_UNMAP", ioas_id=b, iova=1 << 20, length=PAGE, out={"length": PAGE})
    # copy of a part of an area
    p.op("IOAS_COPY", dst_ioas_id=b, src_ioas_id=a, src_iova=M16 + 100, dst_iova=2 << 20,
         length=200, flags=3)
    # read-only pages cannot be copied writeable
    p.op("IOAS_MAP", ioas_id=a, user_va=p.buf(1), length=PAGE, iova=2 * M16, flags=5)
    p.op("IOAS_COPY", dst_ioas_id=b, src_ioas_id=a, src_iova=2 * M16, length=PAGE, flags=6,
         expect=E.EPERM)
    p.op("IOAS_COPY", dst_ioas_id=b, src_ioas_id=a, src_iova=2 * M16, length=PAGE, flags=4,
         out={"dst_iova": 4 * PAGE})
    p.op("DESTROY", id=a)
    p.op("IOAS_UNMAP", ioas_id=b, iova=0, length=U64, out={"length": 5 * PAGE + 200})
    return p


def mock_domain_basic() -> Prog:
    # selftest mock_domain basic, iova_ranges (mock_domain variant), ioas_destroy
    p = Prog("mock_domain_basic", Buffer(256 * 1024, "memfd", 8))
    ioas_op = p.op("IOAS_ALLOC", out={"out_ioas_id": 1})
    ioas = p.ref(ioas_op, "out_ioas_id")
    md = p.op("TEST_MOCK_DOMAIN", id=ioas,
              out={"out_stdev_id": 2, "out_idev_id": 3, "out_hwpt_id": 4})
    hwpt = p.ref(md, "out_hwpt_id")
    p.op("IOAS_IOVA_RANGES", ioas_id=ioas,
         out={"num_iovas": 1, "ranges": [[M16, MOCK_APERTURE_LAST]],
              "out_iova_alignment": 2048})
    m = p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=65536, flags=RW,
             out={"iova": M16})
    iova = p.ref(m, "iova")
    p.op("TEST_MD_CHECK_MAP", id=hwpt, iova=iova, length=65536, uptr=p.buf(0))
    p.op("TEST_MD_CHECK_MAP", id=hwpt, iova=iova, length=65536, uptr=p.buf(0, PAGE),
         expect=E.EINVAL)
    p.op("TEST_MD_CHECK_MAP", id=hwpt, iova=p.ref(m, "iova", 65536), length=2048,
         uptr=p.buf(0, 65536), expect=E.EINVAL)
    p.op("TEST_MD_CHECK_MAP", id=hwpt, iova=p.ref(m, "iova", 1), length=2048, uptr=p.buf(0),
         expect=E.EINVAL)
    p.op("TEST_MD_CHECK_MAP", id=ioas, iova=iova, length=2048, uptr=p.buf(0),
         expect=E.ENOENT)
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0), length=65536, refs=1)
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0, 65536), length=65536, refs=0)
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0), length=65536, refs=0, expect=E.EIO)
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0, 1), length=PAGE, refs=0, expect=E.EINVAL)
    p.op("DESTROY", id=ioas, expect=E.EBUSY)
    p.op("DESTROY", id=hwpt, expect=E.EBUSY)
    p.op("DESTROY", id=p.ref(md, "out_idev_id"), expect=E.EBUSY)
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=PAGE, iova=M16 - PAGE,
         flags=FIXED_RW, expect=E.EINVAL)
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=1024, flags=RW,
         expect=E.EINVAL)
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=2048, iova=2 * M16 + 1024,
         flags=FIXED_RW, expect=E.EINVAL)
    p.op("IOAS_MAP", ioas_id=hwpt, user_va=p.buf(0), length=PAGE, flags=RW,
         expect=E.ENOENT)
    p.op("DESTROY", id=p.ref(md, "out_stdev_id"))
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0), length=65536, refs=0)
    p.op("TEST_MD_CHECK_MAP", id=hwpt, iova=iova, length=2048, uptr=p.buf(0),
         expect=E.ENOENT)
    p.op("IOAS_IOVA_RANGES", ioas_id=ioas,
         out={"num_iovas": 1, "ranges": [[0, U64]], "out_iova_alignment": 1})
    p.op("DESTROY", id=ioas)
    p.op("IOAS_ALLOC", out={"out_ioas_id": 1})
    return p


def mock_domain_shared_hwpt() -> Prog:
    # selftest hwpt_attach; two mock domains on one IOAS share the auto domain
    p = Prog("mock_domain_shared_hwpt")
    ioas = p.ref(p.op("IOAS_ALLOC", out={"out_ioas_id": 1}), "out_ioas_id")
    a = p.op("TEST_MOCK_DOMAIN", id=ioas,
             out={"out_stdev_id": 2, "out_idev_id": 3, "out_hwpt_id": 4})
    b = p.op("TEST_MOCK_DOMAIN", id=ioas,
             out={"out_stdev_id": 5, "out_idev_id": 6, "out_hwpt_id": 4})
    c = p.op("TEST_MOCK_DOMAIN", id=p.ref(a, "out_hwpt_id"),
             out={"out_stdev_id": 7, "out_idev_id": 8, "out_hwpt_id": 4})
    p.op("TEST_MOCK_DOMAIN", id=p.ref(a, "out_idev_id"), expect=E.EINVAL)
    p.op("TEST_MOCK_DOMAIN", id=p.ref(a, "out_stdev_id"), expect=E.EINVAL)
    p.op("TEST_MOCK_DOMAIN", id=99, expect=E.ENOENT)
    p.op("TEST_MOCK_DOMAIN", id=9, expect=E.ENOENT)  # 9 is the new selftest object itself
    p.op("TEST_MOCK_DOMAIN", id=10, expect=E.EINVAL)  # 10 is the new idev
    p.op("TEST_MOCK_DOMAIN_FLAGS", id=ioas, dev_flags=4, expect=E.EINVAL)
    hwpt = p.ref(a, "out_hwpt_id")
    p.op("DESTROY", id=p.ref(a, "out_stdev_id"))
    p.op("TEST_MD_CHECK_MAP", id=hwpt, iova=0, length=0, uptr=0)
    p.op("DESTROY", id=p.ref(b, "out_stdev_id"))
    p.op("DESTROY", id=p.ref(c, "out_stdev_id"))
    p.op("TEST_MD_CHECK_MAP", id=hwpt, iova=0, length=0, uptr=0, expect=E.ENOENT)
    p.op("TEST_MOCK_DOMAIN", id=ioas,
         out={"out_stdev_id": 2, "out_idev_id": 3, "out_hwpt_id": 4})
    return p


def mock_domain_pin_efault() -> Prog:
    # selftest mock_domain basic: EFAULT half way / on the first page
    p = Prog("mock_domain_pin_efault", Buffer(8 * PAGE, "memfd", 9, [(4 * PAGE, 4 * PAGE)]),
             Buffer(2 * PAGE, "hole"), Buffer(2 * PAGE, "readonly", 10))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    md = p.op("TEST_MOCK_DOMAIN", id=ioas)
    hwpt = p.ref(md, "out_hwpt_id")
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=8 * PAGE, flags=RW,
         expect=E.EFAULT)
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0, 4 * PAGE), length=4 * PAGE, flags=RW,
         expect=E.EFAULT)
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(1), length=2 * PAGE, flags=RW,
         expect=E.EFAULT)
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(2), length=2 * PAGE, flags=RW,
         expect=E.EFAULT)
    ro = p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(2), length=2 * PAGE, flags=4,
              out={"iova": M16})
    ok = p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=4 * PAGE, flags=RW,
              out={"iova": M16 + 4 * PAGE})
    p.op("TEST_MD_CHECK_MAP", id=hwpt, iova=p.ref(ro, "iova"), length=2 * PAGE,
         uptr=p.buf(2))
    p.op("TEST_MD_CHECK_MAP", id=hwpt, iova=p.ref(ok, "iova"), length=4 * PAGE,
         uptr=p.buf(0))
    p.op("TEST_MD_CHECK_MAP", id=hwpt, iova=p.ref(ok, "iova"), length=6 * PAGE,
         uptr=p.buf(0), expect=E.EFAULT)
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(2), length=2 * PAGE, refs=1)
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(1), length=PAGE, refs=0, expect=E.EFAULT)
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0, 3 * PAGE), length=2 * PAGE, refs=1,
         expect=E.EFAULT)
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0, 3 * PAGE), length=2 * PAGE, refs=2,
         expect=E.EIO)
    return p


def mock_domain_attach_fails() -> Prog:
    # selftest fork_gone (no domain): pinning at attach time fails with EFAULT
    p = Prog("mock_domain_attach_fails", Buffer(4 * PAGE, "hole"), Buffer(65536, "memfd", 11))
    ioas = p.ref(p.op("IOAS_ALLOC", out={"out_ioas_id": 1}), "out_ioas_id")
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=4 * PAGE, iova=M16,
         flags=FIXED_RW)
    p.op("TEST_MOCK_DOMAIN", id=ioas, expect=E.EFAULT,
         out={"out_stdev_id": 0, "out_hwpt_id": 0, "out_idev_id": 0})
    p.op("IOAS_ALLOC", out={"out_ioas_id": 2})
    p.op("IOAS_UNMAP", ioas_id=ioas, iova=0, length=U64, out={"length": 4 * PAGE})
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(1), length=PAGE, iova=PAGE, flags=FIXED_RW)
    p.op("TEST_MOCK_DOMAIN", id=ioas, expect=E.EADDRINUSE)
    p.op("IOAS_UNMAP", ioas_id=ioas, iova=0, length=U64, out={"length": PAGE})
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(1, 2048), length=2048, iova=M16 + 2048,
         flags=FIXED_RW)
    md = p.op("TEST_MOCK_DOMAIN", id=ioas,
              out={"out_stdev_id": 3, "out_idev_id": 4, "out_hwpt_id": 5})
    p.op("TEST_MD_CHECK_MAP", id=p.ref(md, "out_hwpt_id"), iova=M16 + 2048, length=2048,
         uptr=p.buf(1, 2048))
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(1, 1024), length=1024, iova=M16 + 8192,
         flags=FIXED_RW, expect=E.EINVAL)
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(1, 1024), length=2048, iova=M16 + 8192,
         flags=FIXED_RW, expect=E.EINVAL)
    p.op("IOAS_ALLOW_IOVAS", ioas_id=ioas, allowed_iovas=[[PAGE, 2 * PAGE - 1]],
         expect=E.EADDRINUSE)
    b = p.ref(p.op("IOAS_ALLOC", out={"out_ioas_id": 6}), "out_ioas_id")
    p.op("IOAS_MAP", ioas_id=b, user_va=p.buf(1, 1), length=PAGE - 1, iova=M16 + 1,
         flags=FIXED_RW)
    p.op("TEST_MOCK_DOMAIN", id=b, expect=E.EADDRINUSE)
    p.op("TEST_MOCK_DOMAIN", id=b, expect=E.EADDRINUSE)
    return p


def mock_domain_replace() -> Prog:
    # selftest mock_domain replace
    p = Prog("mock_domain_replace", Buffer(65536, "memfd", 12))
    a = p.ref(p.op("IOAS_ALLOC", out={"out_ioas_id": 1}), "out_ioas_id")
    md = p.op("TEST_MOCK_DOMAIN", id=a,
              out={"out_stdev_id": 2, "out_idev_id": 3, "out_hwpt_id": 4})
    stdev = p.ref(md, "out_stdev_id")
    b = p.ref(p.op("IOAS_ALLOC", out={"out_ioas_id": 5}), "out_ioas_id")
    p.op("TEST_MOCK_DOMAIN_REPLACE", id=stdev, pt_id=b, out={"pt_id": 6})
    # the old HWPT was freed
    p.op("TEST_MOCK_DOMAIN_REPLACE", id=stdev, pt_id=p.ref(md, "out_hwpt_id"),
         expect=E.ENOENT, out={"pt_id": 4})
    p.op("TEST_MOCK_DOMAIN_REPLACE", id=stdev, pt_id=b, out={"pt_id": 6})
    p.op("TEST_MOCK_DOMAIN_REPLACE", id=stdev, pt_id=6, out={"pt_id": 6})
    p.op("TEST_MOCK_DOMAIN_REPLACE", id=stdev, pt_id=a, out={"pt_id": 4})
    p.op("TEST_MOCK_DOMAIN_REPLACE", id=a, pt_id=a, expect=E.ENOENT)
    p.op("TEST_MOCK_DOMAIN_REPLACE", id=stdev, pt_id=p.ref(md, "out_idev_id"),
         expect=E.EINVAL)
    p.op("TEST_MOCK_DOMAIN_REPLACE", id=stdev, pt_id=99, expect=E.ENOENT)
    p.op("DESTROY", id=b)
    # a new IOAS whose mapping lies outside the aperture cannot take the device
    c = p.ref(p.op("IOAS_ALLOC", out={"out_ioas_id": 5}), "out_ioas_id")
    p.op("IOAS_MAP", ioas_id=c, user_va=p.buf(0), length=PAGE, flags=RW, out={"iova": PAGE})
    p.op("TEST_MOCK_DOMAIN_REPLACE", id=stdev, pt_id=c, expect=E.EADDRINUSE)
    p.op("IOAS_UNMAP", ioas_id=c, iova=0, length=U64)
    p.op("IOAS_MAP", ioas_id=c, user_va=p.buf(0), length=PAGE, iova=M16, flags=FIXED_RW)
    p.op("TEST_MOCK_DOMAIN_REPLACE", id=stdev, pt_id=c, out={"pt_id": 6})
    p.op("TEST_MD_CHECK_MAP", id=6, iova=M16, length=PAGE, uptr=p.buf(0))
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0), length=PAGE, refs=1)
    p.op("DESTROY", id=a)
    p.op("DESTROY", id=c, expect=E.EBUSY)
    return p


def mock_domain_flags_get_info() -> Prog:
    # selftest vfio_compat_mock_domain get_info
    p = Prog("mock_domain_flags_get_info")
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("TEST_MOCK_DOMAIN_FLAGS", id=ioas, dev_flags=2,
         out={"out_stdev_id": 2, "out_idev_id": 3, "out_hwpt_id": 4})
    p.op("VFIO_IOAS", op=1, ioas_id=ioas)
    caps = [{"id": 3, "version": 1, "avail": 0xFFFFFFFF},
            {"id": 1, "version": 1, "ranges": [[M16, MOCK_APERTURE_LAST]]}]
    p.op("VFIO_IOMMU_GET_INFO",
         out={"argsz": 72, "flags": 3, "iova_pgsizes": 0x101000, "cap_offset": 24,
              "caps": caps})
    p.op("TEST_MOCK_DOMAIN_FLAGS", id=ioas, dev_flags=1,
         out={"out_stdev_id": 5, "out_idev_id": 6, "out_hwpt_id": 4})
    # argsz 16: the kernel writes back 16 bytes, cap_offset keeps the caller's value
    p.op("VFIO_IOMMU_GET_INFO", argsz=16, cap_offset=5,
         out={"argsz": 72, "flags": 3, "iova_pgsizes": 0x101000, "cap_offset": 5})
    p.op("VFIO_IOMMU_GET_INFO", argsz=24,
         out={"argsz": 72, "cap_offset": 0, "caps": []})
    # too small for all caps: cap_offset stays 0 and the executor decodes no caps
    p.op("VFIO_IOMMU_GET_INFO", argsz=40, out={"argsz": 72, "cap_offset": 0, "caps": []})
    p.op("VFIO_IOMMU_GET_INFO", argsz=71, out={"argsz": 72, "cap_offset": 0, "caps": []})
    p.op("VFIO_IOMMU_GET_INFO", argsz=72, out={"argsz": 72, "cap_offset": 24, "caps": caps})
    p.op("VFIO_IOMMU_GET_INFO", argsz=15, expect=E.EINVAL, out={"argsz": 15})
    p.op("TEST_ADD_RESERVED", id=ioas, start=M16, length=PAGE)
    p.op("VFIO_IOMMU_GET_INFO",
         out={"argsz": 72, "cap_offset": 24,
              "caps": [caps[0], {"id": 1, "version": 1,
                                 "ranges": [[M16 + PAGE, MOCK_APERTURE_LAST]]}]})
    return p


def access_pin_unmap() -> Prog:
    # selftest access_pin, access_pin_unmap
    p = Prog("access_pin_unmap", Buffer(65536, "memfd", 13))
    ioas = p.ref(p.op("IOAS_ALLOC", out={"out_ioas_id": 1}), "out_ioas_id")
    acc = p.op("TEST_CREATE_ACCESS", id=ioas, flags=1)
    fd = p.ref(acc, "out_access_fd")
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=65536, iova=M16, flags=FIXED_RW)
    p.op("TEST_ACCESS_PAGES", id=fd, iova=M16, length=65536, uptr=p.buf(0),
         out={"out_access_pages_id": 0})
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0), length=65536, refs=1)
    p.op("TEST_ACCESS_PAGES", id=fd, iova=M16, length=65536, uptr=p.buf(0),
         out={"out_access_pages_id": 1})
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0), length=65536, refs=1)
    p.op("TEST_DESTROY_ACCESS_PAGES", id=fd, access_pages_id=1)
    p.op("TEST_DESTROY_ACCESS_PAGES", id=fd, access_pages_id=1, expect=E.ENOENT)
    # adding and removing a domain while an access holds the pages
    md = p.op("TEST_MOCK_DOMAIN", id=ioas,
              out={"out_stdev_id": 3, "out_idev_id": 4, "out_hwpt_id": 5})
    p.op("TEST_MD_CHECK_MAP", id=p.ref(md, "out_hwpt_id"), iova=M16, length=65536,
         uptr=p.buf(0))
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0), length=65536, refs=1)
    p.op("DESTROY", id=p.ref(md, "out_stdev_id"))
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0), length=65536, refs=1)
    # the unmap calls the access's unmap op, which drops the item
    p.op("IOAS_UNMAP", ioas_id=ioas, iova=M16, length=65536, out={"length": 65536})
    p.op("TEST_DESTROY_ACCESS_PAGES", id=fd, access_pages_id=0, expect=E.ENOENT)
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0), length=65536, refs=0)
    p.op("DESTROY", id=2, expect=E.EBUSY)  # the access object
    p.op("DESTROY", id=ioas, expect=E.EBUSY)
    p.op("CLOSE", fd=fd)
    p.op("CLOSE", fd=fd, expect=E.EBADF)
    p.op("DESTROY", id=ioas)
    p.op("IOAS_ALLOC", out={"out_ioas_id": 1})
    return p


def access_pages_errors() -> Prog:
    p = Prog("access_pages_errors", Buffer(65536, "memfd", 14), Buffer(4 * PAGE, "readonly", 15))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=65536, iova=M16, flags=FIXED_RW)
    p.op("TEST_ACCESS_PAGES", id=100, iova=M16, length=PAGE, expect=E.EBADFD)
    p.op("TEST_CREATE_ACCESS", id=ioas, flags=2, expect=E.EOPNOTSUPP)
    p.op("TEST_CREATE_ACCESS", id=99, flags=1, expect=E.ENOENT)
    a = p.ref(p.op("TEST_CREATE_ACCESS", id=ioas, flags=0), "out_access_fd")
    p.op("TEST_ACCESS_PAGES", id=a, iova=M16, length=PAGE, expect=E.EOPNOTSUPP)
    p.op("TEST_ACCESS_PAGES", id=a, iova=M16, length=(16 << 20) + 1, expect=E.ENOMEM)
    b = p.ref(p.op("TEST_CREATE_ACCESS", id=ioas, flags=1), "out_access_fd")
    p.op("TEST_ACCESS_PAGES", id=b, iova=M16, length=0, expect=E.EINVAL)
    p.op("TEST_ACCESS_PAGES", id=b, iova=M16 + 65536, length=PAGE, expect=E.ENOENT)
    p.op("TEST_ACCESS_PAGES", id=b, iova=M16 + 2048, length=PAGE, expect=E.EINVAL)
    p.op("TEST_ACCESS_PAGES", id=b, iova=M16 + 60 * 1024, length=2 * PAGE, expect=E.ENOENT)
    p.op("TEST_ACCESS_PAGES", id=b, iova=U64 - PAGE + 1, length=2 * PAGE,
         expect=E.EOVERFLOW)
    p.op("TEST_ACCESS_PAGES", id=b, iova=M16, length=PAGE, uptr=p.buf(0, PAGE),
         expect=E.EBADE)
    p.op("TEST_ACCESS_PAGES", id=b, iova=M16, length=PAGE, uptr=p.buf(0, 65536),
         expect=E.EFAULT)
    p.op("TEST_ACCESS_PAGES", id=b, iova=M16, length=PAGE, uptr=p.buf(0),
         out={"out_access_pages_id": 0})
    p.op("TEST_ACCESS_PAGES", id=b, iova=M16 + PAGE, length=100, flags=1,
         out={"out_access_pages_id": 1})
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(1), length=4 * PAGE, iova=2 * M16, flags=5)
    p.op("TEST_ACCESS_PAGES", id=b, iova=2 * M16, length=PAGE, flags=1, expect=E.EPERM)
    p.op("TEST_ACCESS_PAGES", id=b, iova=2 * M16, length=PAGE, uptr=p.buf(1),
         out={"out_access_pages_id": 2})
    # writeable pages over read-only memory: pinning them (FOLL_WRITE) fails
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(1), length=4 * PAGE, iova=3 * M16,
         flags=FIXED_RW)
    p.op("TEST_ACCESS_PAGES", id=b, iova=3 * M16, length=PAGE, expect=E.EFAULT)
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(1), length=PAGE, refs=1)
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0), length=2 * PAGE, refs=1)
    p.op("TEST_DESTROY_ACCESS_PAGES", id=b, access_pages_id=7, expect=E.ENOENT)
    # an access that needs pinned pages forces PAGE_SIZE alignment on its IOAS
    c = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("IOAS_MAP", ioas_id=c, user_va=p.buf(0, 2048), length=2048, iova=M16 + 2048,
         flags=FIXED_RW)
    p.op("TEST_CREATE_ACCESS", id=c, flags=1, expect=E.EADDRINUSE)
    p.op("TEST_CREATE_ACCESS", id=c, flags=0)
    return p


def access_rw_data() -> Prog:
    # selftest access_rw, access_rw_unaligned
    p = Prog("access_rw_data", Buffer(65536, "memfd", 16), Buffer(4 * PAGE, "anon", 17),
             Buffer(2 * PAGE, "readonly", 18), Buffer(PAGE, "hole"))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    acc = p.ref(p.op("TEST_CREATE_ACCESS", id=ioas, flags=0), "out_access_fd")
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=65536, iova=M16, flags=FIXED_RW)
    p.op("TEST_ACCESS_RW", id=acc, iova=M16 + 4046, length=100, uptr=p.buf(1),
         out={"data": pattern_bytes(16, 4046, 100)})
    p.op("TEST_ACCESS_RW", id=acc, iova=M16 + 100, length=50, uptr=p.buf(1, 1000), flags=1,
         out={"data": pattern_bytes(17, 1000, 50)})
    p.op("TEST_ACCESS_RW", id=acc, iova=M16 + 100, length=50, uptr=p.buf(1, 2000),
         out={"data": pattern_bytes(17, 1000, 50)})
    p.op("TEST_ACCESS_RW", id=acc, iova=M16 + 90, length=20, uptr=p.buf(1, 3000), flags=4,
         out={"data": pattern_bytes(16, 90, 10) + pattern_bytes(17, 1000, 10)})
    p.op("TEST_ACCESS_RW", id=acc, iova=M16 + 4000, length=200, uptr=p.buf(1, 5000),
         flags=4, out={"data": pattern_bytes(16, 4000, 200)})
    p.op("TEST_ACCESS_RW", id=acc, iova=M16, length=0, uptr=p.buf(1), expect=E.EINVAL)
    p.op("TEST_ACCESS_RW", id=acc, iova=M16, length=1, uptr=p.buf(1), flags=2,
         expect=E.EOPNOTSUPP)
    p.op("TEST_ACCESS_RW", id=acc, iova=M16, length=(16 << 20) + 1, uptr=p.buf(1),
         expect=E.ENOMEM)
    p.op("TEST_ACCESS_RW", id=acc, iova=M16 + 65536 - 10, length=20, uptr=p.buf(1),
         expect=E.ENOENT)
    p.op("TEST_ACCESS_RW", id=acc, iova=M16, length=10, uptr=p.buf(3), expect=E.EFAULT)
    p.op("TEST_ACCESS_RW", id=acc, iova=M16, length=10, uptr=p.buf(3), flags=1,
         expect=E.EFAULT)
    p.op("TEST_ACCESS_RW", id=acc, iova=M16, length=10, uptr=p.buf(2), expect=E.EFAULT)
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(2), length=2 * PAGE, iova=2 * M16, flags=5)
    p.op("TEST_ACCESS_RW", id=acc, iova=2 * M16, length=8, uptr=p.buf(1), flags=1,
         expect=E.EPERM)
    p.op("TEST_ACCESS_RW", id=acc, iova=2 * M16 + 8, length=8, uptr=p.buf(1),
         out={"data": pattern_bytes(18, 8, 8)})
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(2), length=2 * PAGE, iova=3 * M16,
         flags=FIXED_RW)
    p.op("TEST_ACCESS_RW", id=acc, iova=3 * M16, length=8, uptr=p.buf(1), flags=1,
         expect=E.EFAULT)
    p.op("TEST_ACCESS_RW", id=acc, iova=3 * M16, length=2 * PAGE, uptr=p.buf(1), flags=4,
         expect=E.EFAULT)
    p.op("TEST_ACCESS_RW", id=acc, iova=3 * M16 + 16, length=8, uptr=p.buf(1), flags=4,
         out={"data": pattern_bytes(18, 16, 8)})
    p.op("TEST_ACCESS_RW", id=acc, iova=3 * M16, length=2 * PAGE, uptr=p.buf(1),
         out={"data": pattern_bytes(18, 0, 2 * PAGE)})
    return p


def option_rlimit_huge_pages() -> Prog:
    # selftest global_options, ioas_option_huge_pages, ioas_align_change
    p = Prog("option_rlimit_huge_pages", Buffer(65536, "memfd", 19))
    p.op("OPTION", option_id=0, op=1, val64=1, out={"val64": 0})
    p.op("OPTION", option_id=0, op=0, val64=1, out={"val64": 1})
    p.op("OPTION", option_id=0, op=0, val64=2, expect=E.EINVAL, out={"val64": 2})
    p.op("OPTION", option_id=0, op=1, out={"val64": 1})
    p.op("OPTION", option_id=0, op=0, val64=0)
    p.op("OPTION", option_id=1, op=1, expect=E.ENOENT)
    p.op("OPTION", option_id=1, op=0, expect=E.ENOENT)
    p.op("OPTION", option_id=0, op=1, object_id=1, expect=E.EOPNOTSUPP)
    p.op("OPTION", option_id=0, op=2, expect=E.EOPNOTSUPP)
    p.op("OPTION", option_id=2, op=1, expect=E.EOPNOTSUPP)
    p.op("OPTION", option_id=0, op=1, __reserved=1, expect=E.EOPNOTSUPP)
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("OPTION", option_id=0, op=0, val64=1, expect=E.EBUSY)
    p.op("OPTION", option_id=1, op=1, object_id=ioas, val64=3, out={"val64": 1})
    p.op("OPTION", option_id=1, op=0, object_id=ioas, val64=0)
    p.op("OPTION", option_id=1, op=1, object_id=ioas, val64=3, out={"val64": 0})
    p.op("OPTION", option_id=1, op=0, object_id=ioas, val64=2, expect=E.EINVAL)
    p.op("OPTION", option_id=1, op=2, object_id=ioas, expect=E.EOPNOTSUPP)
    p.op("OPTION", option_id=1, op=0, object_id=ioas, val64=1)
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=PAGE, iova=M16, flags=FIXED_RW)
    p.op("OPTION", option_id=1, op=0, object_id=ioas, val64=0)
    p.op("IOAS_IOVA_RANGES", ioas_id=ioas, out={"out_iova_alignment": PAGE})
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0, 2048), length=PAGE, iova=M16 + PAGE,
         flags=FIXED_RW, expect=E.EINVAL)
    p.op("OPTION", option_id=1, op=0, object_id=ioas, val64=0)
    p.op("OPTION", option_id=1, op=0, object_id=ioas, val64=1)
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0, 2048), length=PAGE, iova=M16 + PAGE,
         flags=FIXED_RW)
    p.op("OPTION", option_id=1, op=0, object_id=ioas, val64=0, expect=E.EADDRINUSE)
    p.op("OPTION", option_id=1, op=1, object_id=ioas, out={"val64": 1})
    p.op("IOAS_IOVA_RANGES", ioas_id=ioas, out={"out_iova_alignment": 1})
    return p


def vfio_ioas_and_extensions() -> Prog:
    # selftest vfio_ioas, simple_ioctls
    p = Prog("vfio_ioas_and_extensions")
    p.op("VFIO_GET_API_VERSION", out={"ret": 0})
    for ext, ret in ((3, 1), (1, 1), (9, 1), (8, 0), (6, 0), (10, 0), (2, 0), (0, 0)):
        p.op("VFIO_CHECK_EXTENSION", extension=ext, out={"ret": ret})
    p.op("VFIO_CHECK_EXTENSION", extension=4, expect=E.ENODEV, out={"ret": -1})
    p.op("VFIO_IOAS", op=0, expect=E.ENODEV)
    p.op("VFIO_IOAS", op=1, ioas_id=0, expect=E.ENOENT)
    ioas = p.ref(p.op("IOAS_ALLOC", out={"out_ioas_id": 1}), "out_ioas_id")
    p.op("VFIO_IOAS", op=1, ioas_id=ioas)
    p.op("VFIO_IOAS", op=0, out={"ioas_id": 1})
    p.op("VFIO_CHECK_EXTENSION", extension=4, out={"ret": 1})
    md = p.op("TEST_MOCK_DOMAIN", id=ioas)
    p.op("VFIO_CHECK_EXTENSION", extension=4, out={"ret": 0})
    p.op("VFIO_IOAS", op=2)
    p.op("VFIO_IOAS", op=0, expect=E.ENODEV, out={"ioas_id": 0})
    p.op("VFIO_IOAS", op=3, expect=E.EOPNOTSUPP)
    p.op("VFIO_IOAS", op=0, __reserved=1, expect=E.EOPNOTSUPP)
    p.op("VFIO_IOAS", op=1, ioas_id=p.ref(md, "out_hwpt_id"), expect=E.ENOENT)
    p.op("VFIO_IOAS", op=1, ioas_id=ioas)
    p.op("DESTROY", id=p.ref(md, "out_stdev_id"))
    p.op("DESTROY", id=ioas)
    p.op("VFIO_IOAS", op=0, expect=E.ENODEV)
    return p


def vfio_map_unmap() -> Prog:
    # selftest vfio_compat_mock_domain map (Ver1v2)
    p = Prog("vfio_map_unmap", Buffer(65536, "memfd", 20))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("TEST_MOCK_DOMAIN", id=ioas)
    p.op("VFIO_IOAS", op=1, ioas_id=ioas)
    p.op("VFIO_SET_IOMMU", type=3, out={"ret": 0})
    p.op("VFIO_IOMMU_MAP_DMA", flags=3, vaddr=p.buf(0), size=65536, iova=M16)
    p.op("VFIO_IOMMU_UNMAP_DMA", iova=M16, size=65536, out={"size": 65536})
    p.op("VFIO_IOMMU_UNMAP_DMA", iova=M16, size=65536, out={"size": 0})
    p.op("VFIO_IOMMU_MAP_DMA", flags=3, vaddr=p.buf(0), size=65536, iova=M16)
    p.op("VFIO_IOMMU_UNMAP_DMA", flags=2, iova=M16, size=65536, expect=E.EINVAL,
         out={"size": 65536})
    p.op("VFIO_IOMMU_UNMAP_DMA", flags=2, iova=0, size=0, out={"size": 65536})
    for i in range(4):
        p.op("VFIO_IOMMU_MAP_DMA", flags=3, vaddr=p.buf(0, i * PAGE), size=PAGE,
             iova=M16 + i * PAGE)
    for i in (2, 0, 3, 1):
        p.op("VFIO_IOMMU_UNMAP_DMA", iova=M16 + i * PAGE, size=PAGE, out={"size": PAGE})
    p.op("VFIO_IOMMU_MAP_DMA", flags=3, vaddr=p.buf(0), size=2 * PAGE, iova=M16)
    p.op("VFIO_IOMMU_UNMAP_DMA", iova=M16, size=PAGE, expect=E.ENOENT, out={"size": 0})
    p.op("VFIO_IOMMU_UNMAP_DMA", iova=M16, size=0, expect=E.EINVAL, out={"size": 0})
    p.op("VFIO_IOMMU_MAP_DMA", argsz=31, flags=3, vaddr=p.buf(0), size=PAGE,
         iova=2 * M16, expect=E.EINVAL)
    p.op("VFIO_IOMMU_MAP_DMA", flags=4, vaddr=p.buf(0), size=PAGE, iova=2 * M16,
         expect=E.EINVAL)
    p.op("VFIO_IOMMU_MAP_DMA", flags=3, vaddr=p.buf(0), size=PAGE, iova=M16,
         expect=E.EEXIST)
    p.op("VFIO_IOMMU_MAP_DMA", flags=3, vaddr=p.buf(0), size=PAGE, iova=PAGE,
         expect=E.EINVAL)
    p.op("VFIO_IOMMU_MAP_DMA", flags=3, vaddr=p.buf(0, 65536), size=PAGE, iova=2 * M16,
         expect=E.EFAULT)
    p.op("VFIO_IOMMU_MAP_DMA", flags=0, vaddr=p.buf(0), size=PAGE, iova=2 * M16)
    p.op("VFIO_IOMMU_UNMAP_DMA", argsz=23, iova=M16, size=PAGE, expect=E.EINVAL,
         out={"size": PAGE})
    p.op("VFIO_IOMMU_UNMAP_DMA", flags=1, iova=M16, size=PAGE, expect=E.EINVAL)
    p.op("VFIO_IOMMU_UNMAP_DMA", flags=2, out={"size": 3 * PAGE})
    return p


def vfio_type1_split() -> Prog:
    # selftest vfio_compat_mock_domain huge_map (Ver1v0), option_huge_pages
    p = Prog("vfio_type1_split", Buffer(4 << 20, "hugetlb", 21), Buffer(65536, "memfd", 22))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    md = p.op("TEST_MOCK_DOMAIN", id=ioas)
    p.op("VFIO_IOAS", op=1, ioas_id=ioas)
    p.op("VFIO_SET_IOMMU", type=1)
    p.op("OPTION", option_id=1, op=1, object_id=ioas, val64=3, out={"val64": 0})
    p.op("IOAS_IOVA_RANGES", ioas_id=ioas, out={"out_iova_alignment": PAGE})
    p.op("VFIO_IOMMU_MAP_DMA", flags=3, vaddr=p.buf(0), size=4 << 20, iova=M16)
    chunk = 256 * 1024
    p.op("VFIO_IOMMU_UNMAP_DMA", iova=M16 + 5 * chunk, size=chunk, out={"size": chunk})
    p.op("VFIO_IOMMU_UNMAP_DMA", iova=M16, size=chunk, out={"size": chunk})
    p.op("VFIO_IOMMU_UNMAP_DMA", iova=M16 + chunk + 2048, size=PAGE, expect=E.EINVAL,
         out={"size": PAGE})
    p.op("TEST_MD_CHECK_MAP", id=p.ref(md, "out_hwpt_id"), iova=M16 + chunk, length=chunk,
         uptr=p.buf(0, chunk))
    p.op("TEST_MD_CHECK_MAP", id=p.ref(md, "out_hwpt_id"), iova=M16, length=2048,
         uptr=p.buf(0), expect=E.EINVAL)
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0), length=4 << 20, refs=5)  # hugetlb: skipped
    p.op("VFIO_SET_IOMMU", type=1)
    p.op("VFIO_SET_IOMMU", type=3)
    p.op("VFIO_SET_IOMMU", type=2, expect=E.EINVAL)
    p.op("VFIO_IOMMU_UNMAP_DMA", flags=2, out={"size": (4 << 20) - 2 * chunk})
    # type1 cannot be turned on once a domain has mappings
    b = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("TEST_MOCK_DOMAIN", id=b)
    p.op("IOAS_MAP", ioas_id=b, user_va=p.buf(1), length=PAGE, flags=RW)
    p.op("VFIO_IOAS", op=1, ioas_id=b)
    p.op("VFIO_SET_IOMMU", type=1, expect=E.EINVAL, out={"ret": -1})
    # type1v2: no splitting
    p.op("VFIO_SET_IOMMU", type=3)
    p.op("VFIO_IOMMU_MAP_DMA", flags=3, vaddr=p.buf(1), size=65536, iova=2 * M16)
    p.op("VFIO_IOMMU_UNMAP_DMA", iova=2 * M16, size=PAGE, expect=E.ENOENT, out={"size": 0})
    return p


def vfio_no_compat_ioas() -> Prog:
    # selftest unmap_cmd, map_cmd, info_cmd, set_iommu_cmd
    p = Prog("vfio_no_compat_ioas", Buffer(65536, "memfd", 23))
    p.op("VFIO_IOMMU_UNMAP_DMA", argsz=1, iova=M16, size=PAGE, expect=E.EINVAL)
    p.op("VFIO_IOMMU_UNMAP_DMA", flags=1 << 31, iova=M16, size=PAGE, expect=E.EINVAL)
    p.op("VFIO_IOMMU_UNMAP_DMA", iova=M16, size=PAGE, expect=E.ENODEV, out={"size": PAGE})
    p.op("VFIO_IOMMU_MAP_DMA", argsz=1, iova=M16, size=PAGE, vaddr=p.buf(0),
         expect=E.EINVAL)
    p.op("VFIO_IOMMU_MAP_DMA", flags=1 << 31, iova=M16, size=PAGE, vaddr=p.buf(0),
         expect=E.EINVAL)
    p.op("VFIO_IOMMU_MAP_DMA", flags=3, iova=M16, size=PAGE, vaddr=p.buf(0),
         expect=E.ENODEV)
    p.op("VFIO_IOMMU_GET_INFO", argsz=1, expect=E.EINVAL, out={"argsz": 1})
    p.op("VFIO_IOMMU_GET_INFO", argsz=24, expect=E.ENODEV, out={"argsz": 24})
    p.op("VFIO_SET_IOMMU", type=3, expect=E.ENODEV, out={"ret": -1})
    p.op("VFIO_SET_IOMMU", type=1, expect=E.ENODEV)
    p.op("VFIO_SET_IOMMU", type=7, expect=E.EINVAL)
    # a compat IOAS without any domain works too
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("VFIO_IOAS", op=1, ioas_id=ioas)
    p.op("VFIO_IOMMU_GET_INFO",
         out={"argsz": 72, "iova_pgsizes": 0xFFFFFFFFFFFFF000, "cap_offset": 24})
    p.op("VFIO_IOMMU_MAP_DMA", flags=1, iova=5, size=3, vaddr=p.buf(0, 7))
    p.op("VFIO_IOMMU_UNMAP_DMA", iova=0, size=100, out={"size": 3})
    p.op("VFIO_SET_IOMMU", type=1)
    p.op("VFIO_IOMMU_MAP_DMA", flags=1, iova=5, size=PAGE, vaddr=p.buf(0),
         expect=E.EINVAL)
    return p


def access_replace_ioas() -> Prog:
    # selftest mock_domain user_copy
    p = Prog("access_replace_ioas", Buffer(65536, "memfd", 24))
    dom = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    md = p.op("TEST_MOCK_DOMAIN", id=dom)
    hwpt = p.ref(md, "out_hwpt_id")
    old = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    m1 = p.op("IOAS_MAP", ioas_id=old, user_va=p.buf(0), length=65536, flags=RW,
              out={"iova": 65536})
    acc = p.ref(p.op("TEST_CREATE_ACCESS", id=old, flags=1), "out_access_fd")
    p.op("TEST_ACCESS_PAGES", id=acc, iova=p.ref(m1, "iova"), length=65536, uptr=p.buf(0),
         out={"out_access_pages_id": 0})
    p.op("IOAS_COPY", dst_ioas_id=dom, src_ioas_id=old, src_iova=p.ref(m1, "iova"),
         dst_iova=M16, length=65536, flags=3)
    p.op("TEST_MD_CHECK_MAP", id=hwpt, iova=M16, length=65536, uptr=p.buf(0))
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0), length=65536, refs=1)
    new = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    m2 = p.op("IOAS_MAP", ioas_id=new, user_va=p.buf(0), length=65536, flags=RW,
              out={"iova": 65536})
    p.op("TEST_ACCESS_REPLACE_IOAS", id=acc, ioas_id=new)
    p.op("TEST_ACCESS_REPLACE_IOAS", id=acc, ioas_id=new)
    p.op("TEST_ACCESS_REPLACE_IOAS", id=acc, ioas_id=99, expect=E.ENOENT)
    p.op("TEST_DESTROY_ACCESS_PAGES", id=acc, access_pages_id=0, expect=E.ENOENT)
    p.op("IOAS_UNMAP", ioas_id=dom, iova=M16, length=65536, out={"length": 65536})
    p.op("DESTROY", id=old)
    p.op("TEST_ACCESS_PAGES", id=acc, iova=p.ref(m2, "iova"), length=65536, uptr=p.buf(0),
         out={"out_access_pages_id": 1})
    p.op("IOAS_COPY", dst_ioas_id=dom, src_ioas_id=new, src_iova=p.ref(m2, "iova"),
         dst_iova=M16, length=65536, flags=3)
    p.op("TEST_MD_CHECK_MAP", id=hwpt, iova=M16, length=65536, uptr=p.buf(0))
    p.op("TEST_DESTROY_ACCESS_PAGES", id=acc, access_pages_id=1)
    p.op("CLOSE", fd=acc)
    p.op("DESTROY", id=new)
    # replacing onto an IOAS whose areas are not page aligned fails
    un = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("IOAS_MAP", ioas_id=un, user_va=p.buf(0, 2048), length=2048, iova=M16 + 2048,
         flags=FIXED_RW)
    acc2 = p.ref(p.op("TEST_CREATE_ACCESS", id=dom, flags=1), "out_access_fd")
    p.op("TEST_ACCESS_REPLACE_IOAS", id=acc2, ioas_id=un, expect=E.EADDRINUSE)
    p.op("IOAS_IOVA_RANGES", ioas_id=dom, out={"out_iova_alignment": PAGE})
    p.op("CLOSE", fd=acc2)
    p.op("IOAS_IOVA_RANGES", ioas_id=dom, out={"out_iova_alignment": 2048})
    return p


def refs_shared_pages() -> Prog:
    # selftest all_aligns / all_aligns_copy: one pin per iopt_pages
    p = Prog("refs_shared_pages", Buffer(8 * PAGE, "memfd", 25))
    a = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    b = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("TEST_MOCK_DOMAIN", id=a)
    p.op("TEST_MOCK_DOMAIN", id=b)
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0), length=8 * PAGE, refs=0)
    m = p.op("IOAS_MAP", ioas_id=a, user_va=p.buf(0, 2048), length=4 * PAGE, flags=RW)
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0), length=5 * PAGE, refs=1)
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0, 5 * PAGE), length=3 * PAGE, refs=0)
    p.op("IOAS_COPY", src_ioas_id=a, dst_ioas_id=b, src_iova=p.ref(m, "iova"),
         length=4 * PAGE, flags=6)
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0), length=5 * PAGE, refs=1)
    p.op("IOAS_MAP", ioas_id=b, user_va=p.buf(0, 4 * PAGE), length=4 * PAGE, flags=RW)
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0, 4 * PAGE), length=PAGE, refs=2)
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0, 5 * PAGE), length=3 * PAGE, refs=1)
    p.op("IOAS_UNMAP", ioas_id=a, iova=0, length=U64)
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0), length=PAGE * 4, refs=1)
    p.op("IOAS_UNMAP", ioas_id=b, iova=0, length=U64)
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0), length=8 * PAGE, refs=0)
    return p


def access_notify_and_close() -> Prog:
    p = Prog("access_notify_and_close", Buffer(8 * PAGE, "memfd", 26))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=4 * PAGE, iova=M16,
         flags=FIXED_RW)
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0, 4 * PAGE), length=4 * PAGE,
         iova=M16 + 4 * PAGE, flags=FIXED_RW)
    acc = p.ref(p.op("TEST_CREATE_ACCESS", id=ioas, flags=1), "out_access_fd")
    acc2 = p.ref(p.op("TEST_CREATE_ACCESS", id=ioas, flags=1), "out_access_fd")
    # one item spanning both areas
    p.op("TEST_ACCESS_PAGES", id=acc, iova=M16 + 2 * PAGE, length=4 * PAGE,
         uptr=p.buf(0, 2 * PAGE), out={"out_access_pages_id": 0})
    p.op("TEST_ACCESS_PAGES", id=acc2, iova=M16 + 6 * PAGE, length=PAGE,
         out={"out_access_pages_id": 0})
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0, 2 * PAGE), length=4 * PAGE, refs=1)
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0), length=2 * PAGE, refs=0)
    # unmapping the first area drops acc's item, also its part in the second area
    p.op("IOAS_UNMAP", ioas_id=ioas, iova=M16, length=4 * PAGE, out={"length": 4 * PAGE})
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0, 4 * PAGE), length=2 * PAGE, refs=0)
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0, 6 * PAGE), length=PAGE, refs=1)
    p.op("TEST_DESTROY_ACCESS_PAGES", id=acc, access_pages_id=0, expect=E.ENOENT)
    # closing the access fd releases its pins
    p.op("CLOSE", fd=acc2)
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0, 6 * PAGE), length=PAGE, refs=0)
    p.op("TEST_ACCESS_PAGES", id=acc, iova=M16 + 4 * PAGE, length=PAGE,
         out={"out_access_pages_id": 1})
    p.op("CLOSE", fd=acc)
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0), length=8 * PAGE, refs=0)
    p.op("IOAS_UNMAP", ioas_id=ioas, iova=0, length=U64, out={"length": 4 * PAGE})
    return p


def copy_shares_pins() -> Prog:
    # one iopt_pages serves the area and its copy: an access on the copy keeps the
    # page pinned after the domain and the original area are gone
    p = Prog("copy_shares_pins", Buffer(4 * PAGE, "memfd", 27))
    a = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    b = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    md = p.op("TEST_MOCK_DOMAIN", id=a,
              out={"out_stdev_id": 3, "out_idev_id": 4, "out_hwpt_id": 5})
    m = p.op("IOAS_MAP", ioas_id=a, user_va=p.buf(0), length=4 * PAGE, flags=RW,
             out={"iova": M16})
    cp = p.op("IOAS_COPY", src_ioas_id=a, dst_ioas_id=b, src_iova=p.ref(m, "iova"),
              length=4 * PAGE, flags=RW, out={"dst_iova": 4 * PAGE})
    acc = p.ref(p.op("TEST_CREATE_ACCESS", id=b, flags=1), "out_access_fd")
    p.op("TEST_ACCESS_PAGES", id=acc, iova=p.ref(cp, "dst_iova", PAGE), length=PAGE,
         uptr=p.buf(0, PAGE), out={"out_access_pages_id": 0})
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0), length=4 * PAGE, refs=1)
    p.op("DESTROY", id=p.ref(md, "out_stdev_id"))
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0), length=PAGE, refs=0)
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0, PAGE), length=PAGE, refs=1)
    p.op("IOAS_UNMAP", ioas_id=a, iova=0, length=U64, out={"length": 4 * PAGE})
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0, PAGE), length=PAGE, refs=1)
    p.op("IOAS_UNMAP", ioas_id=b, iova=p.ref(cp, "dst_iova"), length=4 * PAGE,
         out={"length": 4 * PAGE})
    p.op("TEST_DESTROY_ACCESS_PAGES", id=acc, access_pages_id=0, expect=E.ENOENT)
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0), length=4 * PAGE, refs=0)
    return p


SEEDS = [
    ioas_alloc_destroy, cmd_length, unmap_area_rules, unmap_fully_contained_areas,
    map_check_order, auto_iova_alignment, auto_iova_reserved_allowed, allow_iovas_errors,
    iova_ranges_emsgsize, copy_area, mock_domain_basic, mock_domain_shared_hwpt,
    mock_domain_pin_efault, mock_domain_attach_fails, mock_domain_replace,
    mock_domain_flags_get_info, access_pin_unmap, access_pages_errors, access_rw_data,
    option_rlimit_huge_pages, vfio_ioas_and_extensions, vfio_map_unmap, vfio_type1_split,
    vfio_no_compat_ioas, access_replace_ioas, refs_shared_pages, access_notify_and_close,
    copy_shares_pins, *SEEDS_HWPT, *SEEDS_ORACLE, *SEEDS_MUTANTS, *SEEDS_MUTANTS2,
    *SEEDS_MUTANTS3, *SEEDS_MUTANTS4, *SEEDS_MUTANTS5, *SEEDS_COV,
]


def write_corpus(root) -> list[str]:
    from pathlib import Path
    out = []
    for build in SEEDS + ORACLE_PROGRAMS:
        p = build()
        where = "seeds" if build in SEEDS else "oracle"
        path = Path(root) / "corpus" / where / f"{p.name}.json"
        p.program.save(path)
        out.append(str(path))
    return out


if __name__ == "__main__":
    from fuzz.paths import REPO
    for path in write_corpus(REPO):
        print(path)
