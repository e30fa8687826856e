"""Seed programs that pin what the model computes instead of taking it from the
kernel (issue 11): automatic IOVAs (iopt_alloc_iova), fd numbers (lowest free fd of
the agent), and the user-memory corner cases of GUP at the top of the address space
(mm/gup.c: EOVERFLOW for the last page below 2^64, EFAULT above TASK_SIZE_MAX, pin
calls cut by the temp memory limit). Expected values come from reading the 6.12.117
source (io_pagetable.c, pages.c, selftest.c, mm/gup.c, fs/file.c), named per op.
"""

from __future__ import annotations

import errno as E

from fuzz import uapi
from fuzz.prog import Buffer

from .dsl import FIXED_RW, MOCK_APERTURE_START, PAGE, RW, U64, Prog

M16 = MOCK_APERTURE_START
TOP = 1 << 64
HALF = PAGE // 2
SLOW = uapi.MOCK_ACCESS_RW_SLOW_PATH
PIN = uapi.MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES


def auto_iova_holes_and_alignment() -> Prog:
    # iopt_alloc_iova on an IOAS without a domain (alignment 1). Buffer 0 is 4G
    # aligned, so a user address's lowest set bit is its offset's.
    p = Prog("auto_iova_holes_and_alignment", Buffer(1 << 20, "memfd", 21))
    a = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    # align min(roundup(64K), lowest bit of +0x3000 = 4K): the first 4K above PAGE_SIZE
    p.op("IOAS_MAP", ioas_id=a, user_va=p.buf(0, 0x3000), length=0x10000, flags=RW,
         out={"iova": 0x1000})
    # page offset 0x800 OR-ed in at a 2K aligned start: after [0x1000, 0x11000)
    p.op("IOAS_MAP", ioas_id=a, user_va=p.buf(0, 0x800), length=0x800, flags=RW,
         out={"iova": 0x11800})
    # align 1, page offset 1: the hole [0x11000, 0x117ff] takes it at 0x11001
    p.op("IOAS_MAP", ioas_id=a, user_va=p.buf(0, 1), length=1, flags=RW,
         out={"iova": 0x11001})
    # a hole of exactly one byte is never taken (aligned_start >= last): [0x11000] is
    # one byte before 0x11001; the next hole [0x11002, 0x117ff] is
    p.op("IOAS_MAP", ioas_id=a, user_va=p.buf(0, 0), length=1, iova=0x11000,
         flags=FIXED_RW)
    p.op("IOAS_MAP", ioas_id=a, user_va=p.buf(0, 2), length=1, flags=RW,
         out={"iova": 0x11002})
    # 2M+4K from a 4G aligned address: align capped at HPAGE_SIZE
    p.op("IOAS_MAP", ioas_id=a, user_va=p.buf(0), length=(2 << 20) + PAGE, flags=RW,
         out={"iova": 2 << 20})
    # user_va 0: roundup_pow_of_two(48K) = 64K alignment, after [0x11800, 0x12000)
    p.op("IOAS_MAP", ioas_id=a, user_va=0, length=0xC000, flags=RW, out={"iova": 0x20000})
    # the copy allocates for where the source bytes start in user memory: +0x3000
    p.op("IOAS_COPY", src_ioas_id=a, dst_ioas_id=a, src_iova=0x1000, length=0x2000,
         flags=RW, out={"dst_iova": 0x12000})
    p.op("IOAS_COPY", src_ioas_id=a, dst_ioas_id=a, src_iova=0x2000, length=0x2000,
         flags=RW, out={"dst_iova": 0x14000})  # from +0x4000: 8K aligned
    p.op("IOAS_UNMAP", ioas_id=a, iova=0x1000, length=0x10000, out={"length": 0x10000})
    # the freed hole is found again, lowest first
    p.op("IOAS_MAP", ioas_id=a, user_va=p.buf(0), length=0x8000, flags=RW,
         out={"iova": 0x8000})
    p.op("IOAS_MAP", ioas_id=a, user_va=p.buf(0), length=0x4000, flags=RW,
         out={"iova": 0x4000})
    return p


def auto_iova_allowed_reserved() -> Prog:
    p = Prog("auto_iova_allowed_reserved", Buffer(1 << 20, "memfd", 22))
    a = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    # adjacent allowed ranges are one span (interval_tree_span_iter merges them): a
    # mapping may straddle them, and fills the span exactly
    p.op("IOAS_ALLOW_IOVAS", ioas_id=a,
         allowed_iovas=[[0x100000, 0x10FFFF], [0x110000, 0x11FFFF], [TOP - 0x100000, U64]])
    p.op("IOAS_MAP", ioas_id=a, user_va=p.buf(0), length=0x20000, flags=RW,
         out={"iova": 0x100000})
    # the span ending at 2^64 is clipped to ULONG_MAX - PAGE_SIZE
    p.op("IOAS_MAP", ioas_id=a, user_va=p.buf(0), length=0xFF000, flags=RW,
         out={"iova": TOP - 0x100000})
    p.op("IOAS_MAP", ioas_id=a, user_va=p.buf(0), length=PAGE, flags=RW, expect=E.ENOSPC)
    b = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    # a reserved range splits the holes: the first one is too small at the alignment
    p.op("TEST_ADD_RESERVED", id=b, start=0x3000, length=0x1000)
    p.op("IOAS_MAP", ioas_id=b, user_va=p.buf(0), length=0x2000, flags=RW,
         out={"iova": 0x4000})
    p.op("IOAS_MAP", ioas_id=b, user_va=p.buf(0), length=0x1000, flags=RW,
         out={"iova": 0x1000})
    # a mock domain reserves all but its aperture [16M, 2G - 1] and sets alignment 2K
    md = p.op("TEST_MOCK_DOMAIN", id=b, expect=E.EADDRINUSE)  # areas outside it
    p.op("IOAS_UNMAP", ioas_id=b, iova=0, length=U64, out={"length": 0x3000})
    md = p.op("TEST_MOCK_DOMAIN", id=b)
    p.op("IOAS_MAP", ioas_id=b, user_va=p.buf(0), length=PAGE, flags=RW, out={"iova": M16})
    p.op("IOAS_MAP", ioas_id=b, user_va=p.buf(0), length=1 << 20, flags=RW,
         out={"iova": M16 + (1 << 20)})  # 1M aligned
    # an alignment below the domain's 2K is EINVAL, the aperture's end ENOSPC
    p.op("IOAS_MAP", ioas_id=b, user_va=p.buf(0, 1), length=HALF, flags=RW,
         expect=E.EINVAL)
    p.op("IOAS_MAP", ioas_id=b, user_va=p.buf(0), length=1 << 31, flags=RW,
         expect=E.ENOSPC)
    p.op("TEST_MD_CHECK_MAP", id=p.ref(md, "out_hwpt_id"), iova=M16, length=PAGE,
         uptr=p.buf(0))
    return p


def fd_numbers() -> Prog:
    # fs/file.c alloc_fd: the lowest free fd; the guest agent runs a program with the
    # console on 0-2 and its iommufd on 3 (the agent's own fds are at 500 and above)
    p = Prog("fd_numbers")
    a = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    x = p.op("TEST_CREATE_ACCESS", id=a, out={"out_access_fd": 4})
    f = p.op("FAULT_QUEUE_ALLOC", out={"out_fault_id": 3, "out_fault_fd": 5})
    p.op("TEST_CREATE_ACCESS", id=a, flags=PIN, out={"out_access_fd": 6})
    p.op("TEST_CREATE_ACCESS", id=99, expect=E.ENOENT)  # put_unused_fd: no hole
    p.op("CLOSE", fd=p.ref(x, "out_access_fd"))
    g = p.op("FAULT_QUEUE_ALLOC", out={"out_fault_id": 2, "out_fault_fd": 4})  # 4 again
    p.op("CLOSE", fd=p.ref(f, "out_fault_fd"))
    p.op("TEST_CREATE_ACCESS", id=a, out={"out_access_fd": 5})
    p.op("TEST_CREATE_ACCESS", id=a, out={"out_access_fd": 7})
    # the executor closes only the program's own fds: the iommufd, the console and
    # the agent's fds answer EBADF, and so does a number the program closed
    for fd in (3, 0, 500):
        p.op("CLOSE", fd=fd, expect=E.EBADF)
    p.op("CLOSE", fd=8, expect=E.EBADF)
    # the number of the closed access is the fault queue's now: closing it closes that
    p.op("CLOSE", fd=p.ref(x, "out_access_fd"))
    p.op("READ", fd=p.ref(g, "out_fault_fd"), expect=E.EBADF)
    p.op("READ", fd=3, expect=E.EBADF)
    p.op("TEST_ACCESS_RW", id=3, iova=0, length=1, uptr=0, expect=E.EBADFD)  # fget: not ours
    return p


def gup_top_of_address_space() -> Prog:
    # mm/gup.c gup_fast_fallback: the range from the page of start must not reach 2^64
    # (EOVERFLOW) nor end above TASK_SIZE_MAX (EFAULT); pages.c pins a domain's pages
    # in calls of at most min(first hole, temp memory limit / 8) pages
    p = Prog("gup_top_of_address_space", Buffer(4 * PAGE, "memfd", 23))
    a = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    md = p.op("TEST_MOCK_DOMAIN", id=a)
    hwpt = p.ref(md, "out_hwpt_id")
    # iopt_alloc_pages: uptr + length must not overflow
    p.op("IOAS_MAP", ioas_id=a, user_va=TOP - PAGE, length=PAGE, iova=M16, flags=FIXED_RW,
         expect=E.EOVERFLOW)
    # the last page: its one-page pin call ends at 2^64
    p.op("IOAS_MAP", ioas_id=a, user_va=TOP - PAGE, length=HALF, iova=M16, flags=FIXED_RW,
         expect=E.EOVERFLOW)
    p.op("IOAS_MAP", ioas_id=a, user_va=TOP - 2 * PAGE, length=PAGE, iova=M16,
         flags=FIXED_RW, expect=E.EFAULT)
    # two pages, the last one the top: one call of 2 pages, EOVERFLOW ...
    p.op("IOAS_MAP", ioas_id=a, user_va=TOP - 2 * PAGE, length=PAGE + HALF, iova=M16,
         flags=FIXED_RW, expect=E.EOVERFLOW)
    # ... but with a temp memory limit of 12 bytes each call pins one page, and the
    # first one fails above TASK_SIZE_MAX
    p.op("TEST_SET_TEMP_MEMORY_LIMIT", limit=12)
    p.op("IOAS_MAP", ioas_id=a, user_va=TOP - 2 * PAGE, length=PAGE + HALF, iova=M16,
         flags=FIXED_RW, expect=E.EFAULT)
    p.op("TEST_SET_TEMP_MEMORY_LIMIT", limit=65536)
    p.op("IOAS_MAP", ioas_id=a, user_va=0xFFFF888000000000, length=PAGE, iova=M16,
         flags=FIXED_RW, expect=E.EFAULT)  # the kernel half
    p.op("IOAS_MAP", ioas_id=a, user_va=p.buf(0), length=PAGE, iova=M16, flags=FIXED_RW)
    # MD_CHECK_MAP: get_user_pages_fast of each 2K page's page comes before the check
    p.op("TEST_MD_CHECK_MAP", id=hwpt, iova=M16, length=HALF, uptr=TOP - PAGE,
         expect=E.EOVERFLOW)
    p.op("TEST_MD_CHECK_MAP", id=hwpt, iova=M16, length=HALF, uptr=TOP - 2 * PAGE,
         expect=E.EFAULT)
    p.op("TEST_MD_CHECK_MAP", id=hwpt, iova=M16, length=HALF, uptr=TOP - HALF,
         expect=E.EINVAL)  # uptr + length overflows
    p.op("TEST_MD_CHECK_REFS", uptr=TOP - PAGE, length=PAGE, refs=0, expect=E.EINVAL)
    p.op("TEST_MD_CHECK_REFS", uptr=TOP - 2 * PAGE, length=PAGE, refs=0, expect=E.EFAULT)
    # an IOVA range may end at 2^64 (no domain here to reserve it)
    b = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("IOAS_MAP", ioas_id=b, user_va=p.buf(0), length=PAGE, iova=TOP - PAGE,
         flags=FIXED_RW, out={"iova": TOP - PAGE})
    p.op("IOAS_UNMAP", ioas_id=b, iova=TOP - PAGE, length=PAGE, out={"length": PAGE})
    p.op("IOAS_UNMAP", ioas_id=b, iova=PAGE, length=U64, expect=E.EOVERFLOW)
    return p


def access_top_of_address_space() -> Prog:
    p = Prog("access_top_of_address_space", Buffer(4 * PAGE, "memfd", 24))
    a = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    acc = p.ref(p.op("TEST_CREATE_ACCESS", id=a, flags=PIN), "out_access_fd")
    p.op("IOAS_MAP", ioas_id=a, user_va=p.buf(0), length=4 * PAGE, iova=M16, flags=FIXED_RW)
    # iommufd_test_check_pages: get_user_pages_fast(uptr, 1) of each page (the finding
    # of issue 11: uptr 2^64 - 1 is in the last page, whose call ends at 2^64)
    p.op("TEST_ACCESS_PAGES", id=acc, iova=M16, length=PAGE, uptr=U64, expect=E.EOVERFLOW)
    p.op("TEST_ACCESS_PAGES", id=acc, iova=M16, length=PAGE, uptr=TOP - PAGE,
         expect=E.EOVERFLOW)
    p.op("TEST_ACCESS_PAGES", id=acc, iova=M16, length=PAGE, uptr=TOP - 2 * PAGE,
         expect=E.EFAULT)
    p.op("TEST_ACCESS_PAGES", id=acc, iova=M16, length=2 * PAGE, uptr=TOP - 2 * PAGE,
         expect=E.EFAULT)  # its first page fails first
    p.op("TEST_ACCESS_PAGES", id=acc, iova=M16, length=PAGE, uptr=p.buf(0),
         out={"out_access_pages_id": 0})
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0), length=PAGE, refs=1)
    # pages whose last one is the top page, in an IOAS without a domain (byte
    # granular): the slow path's pfn_reader pins both in one call (EOVERFLOW), a
    # limit of 12 bytes cuts it to one page (EFAULT); one page goes through
    # pin_user_pages_remote (no range checks: EFAULT); the fast path copies (EFAULT)
    b = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    rw = p.ref(p.op("TEST_CREATE_ACCESS", id=b), "out_access_fd")
    p.op("IOAS_MAP", ioas_id=b, user_va=TOP - 2 * PAGE, length=2 * PAGE - 1, iova=M16,
         flags=FIXED_RW)
    p.op("TEST_ACCESS_RW", id=rw, iova=M16 + PAGE - 8, length=16, uptr=p.buf(0),
         flags=SLOW, expect=E.EOVERFLOW)
    p.op("TEST_SET_TEMP_MEMORY_LIMIT", limit=12)
    p.op("TEST_ACCESS_RW", id=rw, iova=M16 + PAGE - 8, length=16, uptr=p.buf(0),
         flags=SLOW, expect=E.EFAULT)
    p.op("TEST_SET_TEMP_MEMORY_LIMIT", limit=65536)
    p.op("TEST_ACCESS_RW", id=rw, iova=M16 + PAGE, length=16, uptr=p.buf(0), flags=SLOW,
         expect=E.EFAULT)
    p.op("TEST_ACCESS_RW", id=rw, iova=M16 + PAGE - 8, length=16, uptr=p.buf(0),
         expect=E.EFAULT)
    # a mock domain filling that area pins the top page: EOVERFLOW
    c = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("IOAS_MAP", ioas_id=c, user_va=TOP - PAGE, length=HALF, iova=M16, flags=FIXED_RW)
    p.op("TEST_MOCK_DOMAIN", id=c, expect=E.EOVERFLOW)
    return p


SEEDS_ORACLE = [auto_iova_holes_and_alignment, auto_iova_allowed_reserved, fd_numbers,
                gup_top_of_address_space, access_top_of_address_space]
_ = (RW,)
