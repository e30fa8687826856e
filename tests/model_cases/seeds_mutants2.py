"""Seed programs for rules that mutants of the model survived (bench/bench_oracle.py,
issue 11), second batch: io_pagetable.c's range edges, selftest.c's access and dirty
paths, and the model's tainted user memory. Each pins a check the recorded corpus never
made the kernel's result depend on; expected values come from the 6.12.117 source
(named per op) and were checked on the kernel in the VM.
"""

from __future__ import annotations

import errno as E

from fuzz import uapi
from fuzz.prog import Buffer, pattern_bytes
from fuzz.prog.limits import (
    AGENT_FD_BASE,
    CAPTURE_MAX,
    CAPTURE_ROOM,
    MAX_FDS,
    PROGRAM_START_FDS,
)

from .dsl import FIXED_RW, MOCK_APERTURE_START, PAGE, RW, U64, Prog, dirty_hwpt
from .seeds_mutants import faulting_copy_to_user

READ_FIXED = uapi.IOMMU_IOAS_MAP_READABLE | uapi.IOMMU_IOAS_MAP_FIXED_IOVA

M16 = MOCK_APERTURE_START
MOCK_PAGE = PAGE // 2
PIN = uapi.MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES
RW_WRITE = uapi.MOCK_ACCESS_RW_WRITE
DIRTY = uapi.IOMMU_HWPT_ALLOC_DIRTY_TRACKING
ENABLE = uapi.IOMMU_HWPT_DIRTY_TRACKING_ENABLE
SIZE_MAX = U64
HUGE_IOVA = uapi.MOCK_FLAGS_DEVICE_HUGE_IOVA


def access_unmap_releases_a_one_byte_item() -> Prog:
    # iommufd_test_access_unmap skips an item only when the unmapped range misses it:
    # iova > item last or iova_last < item iova. A one-byte item at the area's first
    # IOVA (its last byte is that IOVA) is unpinned, and the unmap goes through
    p = Prog("access_unmap_releases_a_one_byte_item", Buffer(PAGE, "memfd", 110))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=PAGE, iova=M16, flags=FIXED_RW)
    acc = p.ref(p.op("TEST_CREATE_ACCESS", id=ioas, flags=PIN), "out_access_fd")
    p.op("TEST_ACCESS_PAGES", id=acc, iova=M16, length=1, uptr=p.buf(0))
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0), length=PAGE, refs=1)
    p.op("IOAS_UNMAP", ioas_id=ioas, iova=M16, length=PAGE, out={"length": PAGE})
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0), length=PAGE, refs=0)
    return p


def access_pages_one_byte_past_the_area() -> Prog:
    # iommufd_access_pin_pages: last_iova = iova + length - 1; areas must cover it
    # without a gap (iopt_area_contig_done, else ENOENT): one byte past the only
    # area is ENOENT, the area's exact length pins
    p = Prog("access_pages_one_byte_past_the_area", Buffer(PAGE, "memfd", 111))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=PAGE, iova=M16, flags=FIXED_RW)
    acc = p.ref(p.op("TEST_CREATE_ACCESS", id=ioas, flags=PIN), "out_access_fd")
    p.op("TEST_ACCESS_PAGES", id=acc, iova=M16, length=PAGE + 1, expect=E.ENOENT)
    # not page aligned: EINVAL comes first (iopt_area_contig_is_aligned)
    p.op("TEST_ACCESS_PAGES", id=acc, iova=M16 + PAGE - 1, length=2, expect=E.EINVAL)
    p.op("TEST_ACCESS_PAGES", id=acc, iova=M16, length=PAGE, uptr=p.buf(0),
         out={"out_access_pages_id": 0})
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0), length=PAGE, refs=1)
    return p


def map_touching_by_one_byte() -> Prog:
    # iopt_check_iova (no domain: alignment 1): last = iova + length - 1; a reserved
    # range sharing a single byte with [iova, last] is EINVAL (checked first), an area
    # sharing one is EEXIST; a range ending just before either maps
    p = Prog("map_touching_by_one_byte", Buffer(2 * PAGE, "memfd", 112))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=PAGE, iova=M16 + PAGE,
         flags=FIXED_RW)
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=PAGE + 1, iova=M16,
         flags=FIXED_RW, expect=E.EEXIST)
    res = M16 + 4 * PAGE
    p.op("TEST_ADD_RESERVED", id=ioas, start=res, length=PAGE)
    # the last byte is the reserved range's first
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=PAGE + 1, iova=res - PAGE,
         flags=FIXED_RW, expect=E.EINVAL)
    # the first byte is the reserved range's last
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=PAGE, iova=res + PAGE - 1,
         flags=FIXED_RW, expect=E.EINVAL)
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=PAGE, iova=res - PAGE,
         flags=FIXED_RW)
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=PAGE, iova=res + PAGE,
         flags=FIXED_RW)
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=PAGE, iova=M16, flags=FIXED_RW)
    return p


def auto_iova_in_a_span_one_byte_short() -> Prog:
    # __alloc_iova_check_range: the span's start aligned, the user address's page
    # offset OR-ed in; aligned_start >= last or last - aligned_start < length - 1
    # refuses it. An allowed range must hold two bytes (iommufd_ioas_load_iovas:
    # start >= last is EINVAL); [x, x + 1] holds no byte at page offset 1 (it would
    # start at x + 1, the last), nor 3 bytes (alignment 4: the span is 2 bytes), but 2
    x = 0x100000
    p = Prog("auto_iova_in_a_span_one_byte_short", Buffer(PAGE, "memfd", 113))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("IOAS_ALLOW_IOVAS", ioas_id=ioas, allowed_iovas=[[x, x]], expect=E.EINVAL)
    p.op("IOAS_ALLOW_IOVAS", ioas_id=ioas, allowed_iovas=[[x, x + 1]])
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0, 1), length=1, flags=RW, expect=E.ENOSPC)
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=3, flags=RW, expect=E.ENOSPC)
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=2, flags=RW, out={"iova": x})
    return p


def map_length_limits() -> Prog:
    # iopt_alloc_iova: length >= ULONG_MAX / 2 is EOVERFLOW (an automatic IOVA), a
    # third of the space is not; iopt_alloc_pages: length > SIZE_MAX - PAGE_SIZE is
    # EINVAL, then uptr + length must not overflow; iopt_check_iova: iova + length - 1
    # must not overflow. Without a domain nothing is pinned: such maps succeed, even
    # one of SIZE_MAX - PAGE_SIZE bytes at user address 0
    p = Prog("map_length_limits", Buffer(PAGE, "memfd", 114))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    third = U64 // 3 + 1
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=third, flags=RW,
         out={"iova": 2 << 20})  # aligned to the huge page size at most
    p.op("IOAS_UNMAP", ioas_id=ioas, iova=2 << 20, length=third, out={"length": third})
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=U64 // 2, flags=RW,
         expect=E.EOVERFLOW)
    # the last byte would be 2^64
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=PAGE, iova=U64 - PAGE + 2,
         flags=FIXED_RW, expect=E.EOVERFLOW)
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=PAGE, iova=U64 - PAGE + 1,
         flags=FIXED_RW)
    p.op("IOAS_MAP", ioas_id=ioas, user_va=0, length=SIZE_MAX - PAGE + 1, iova=0,
         flags=FIXED_RW, expect=E.EINVAL)
    p.op("IOAS_MAP", ioas_id=ioas, user_va=0, length=SIZE_MAX - PAGE, iova=0,
         flags=FIXED_RW)
    p.op("IOAS_UNMAP", ioas_id=ioas, iova=0, length=U64, out={"length": U64})
    return p


def vfio_unmap_cut_at_the_areas_first_byte() -> Prog:
    # VFIO type1 unmap cuts at iova + size - 1 and iova - 1 (iopt_cut_iova); a cut at
    # an area's first or last IOVA is no split (iopt_area_split returns 0). Unmapping
    # from one byte into the area: the cut at its first byte is skipped, the one inside
    # splits it, and the unmap meets the left part half covered: ENOENT, nothing unmapped
    p = Prog("vfio_unmap_cut_at_the_areas_first_byte", Buffer(2 * PAGE, "memfd", 115))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("VFIO_IOAS", op=1, ioas_id=ioas)
    p.op("VFIO_SET_IOMMU", type=1)
    p.op("VFIO_IOMMU_MAP_DMA", flags=3, vaddr=p.buf(0), size=2 * PAGE, iova=M16)
    p.op("VFIO_IOMMU_UNMAP_DMA", iova=M16 + 1, size=PAGE - 1, expect=E.ENOENT,
         out={"size": 0})
    # the split left [M16, M16 + 4K - 1] an area of its own
    p.op("VFIO_IOMMU_UNMAP_DMA", iova=M16, size=PAGE, out={"size": PAGE})
    p.op("VFIO_IOMMU_UNMAP_DMA", iova=M16 + PAGE, size=PAGE, out={"size": PAGE})
    return p


def faulting_copy_to_user_at_an_odd_address() -> Prog:
    # TEST_ACCESS_RW read into a one-page buffer from one byte into it, two pages long:
    # copy_to_user faults at the buffer's end (EFAULT) after writing the IOAS's bytes
    # over the first page. Those bytes are not the buffer's pattern any more: the model
    # must not read them back as it (unsure: how far x86 wrote is not its to know)
    return faulting_copy_to_user("faulting_copy_to_user_at_an_odd_address", 116, 1)


def dirty_by_hand_past_the_top_of_the_iova_space() -> Prog:
    # iommufd_test_dirty: bit i marks the entry at (iova + i * page_size) / page_size,
    # the sum wrapping past 2^64: from 8 pages below the top, bit 8 + k is the entry of
    # IOVA k * 2K, so bits 8200..8207 are the 4 mapped pages at 16M. The bitmap byte
    # 1025 of seed 2 is 0x0B: 3 of them are set
    p = Prog("dirty_by_hand_past_the_top_of_the_iova_space", Buffer(4 * PAGE, "memfd", 119),
             Buffer(PAGE, "memfd", 2))
    ioas, idev, h = dirty_hwpt(p, 4 * PAGE)
    p.op("HWPT_SET_DIRTY_TRACKING", hwpt_id=h, flags=ENABLE)
    below = 8 * MOCK_PAGE
    nbits = 8 + M16 // MOCK_PAGE + 8
    byte = pattern_bytes(2, 1025, 1)[0]
    assert byte == 0x0B
    p.op("TEST_DIRTY", id=h, iova=U64 + 1 - below, length=nbits * MOCK_PAGE,
         page_size=MOCK_PAGE, uptr=p.buf(1), out={"out_nr_dirty": bin(byte).count("1")})
    return p


def dirty_bitmap_alignment_checks_apart() -> Prog:
    # iommufd_check_iova_range: iova, then last_iova + 1 masked with iova_alignment - 1
    # (2K with a mock domain), each on its own; with page_size 1 the page size masks
    # nothing. Each range is EINVAL for one end alone; both ends aligned read the bitmap
    p = Prog("dirty_bitmap_alignment_checks_apart", Buffer(4 * PAGE, "memfd", 120),
             Buffer(PAGE, "anon", 121))
    ioas, idev, h = dirty_hwpt(p, 4 * PAGE)
    p.op("HWPT_SET_DIRTY_TRACKING", hwpt_id=h, flags=ENABLE)
    p.op("HWPT_GET_DIRTY_BITMAP", hwpt_id=h, iova=M16 + 1, length=MOCK_PAGE - 1, page_size=1,
         data=p.buf(1), expect=E.EINVAL)
    p.op("HWPT_GET_DIRTY_BITMAP", hwpt_id=h, iova=M16, length=MOCK_PAGE + 1, page_size=1,
         data=p.buf(1), expect=E.EINVAL)
    p.op("HWPT_GET_DIRTY_BITMAP", hwpt_id=h, iova=M16 + MOCK_PAGE, length=MOCK_PAGE,
         page_size=1, data=p.buf(1))
    return p


def hw_info_clears_one_byte_past_the_drivers() -> Prog:
    # iommufd_get_hw_info: the driver's 8 bytes are copied, then clear_user of the rest
    # of data_len - a single byte with data_len 9, 0 where the pattern had 0x3C
    p = Prog("hw_info_clears_one_byte_past_the_drivers", Buffer(PAGE, "anon", 20))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    idev = p.ref(p.op("TEST_MOCK_DOMAIN", id=ioas), "out_idev_id")
    hw = (0).to_bytes(4, "little") + uapi.IOMMU_HW_INFO_SELFTEST_REGVAL.to_bytes(4, "little")
    assert pattern_bytes(20, 8, 1) == b"\x3c"
    p.op("GET_HW_INFO", dev_id=idev, data_len=9, data_uptr=p.buf(0),
         out={"data_len": 8, "data": hw + b"\0"})
    p.op("GET_HW_INFO", dev_id=idev, data_len=8, data_uptr=p.buf(0, 16),
         out={"data_len": 8, "data": hw})
    return p


def dirty_bits_go_with_the_unmapped_entries() -> Prog:
    # mock_domain_read_and_clear_dirty reads and clears only the 2K entries of the
    # range asked for; unmapping takes the entries and their dirty bits with them, a
    # map again makes clean ones. Seed 8's byte 0 is 0x08: TEST_DIRTY marks entry 3,
    # the last of the area
    p = Prog("dirty_bits_go_with_the_unmapped_entries", Buffer(2 * PAGE, "memfd", 122),
             Buffer(PAGE, "memfd", 8), Buffer(PAGE, "anon", 0))
    ioas, idev, h = dirty_hwpt(p, 2 * PAGE)
    p.op("HWPT_SET_DIRTY_TRACKING", hwpt_id=h, flags=ENABLE)
    mark = {"id": h, "iova": M16, "length": 2 * PAGE, "page_size": MOCK_PAGE,
            "uptr": p.buf(1)}
    get = {"hwpt_id": h, "length": MOCK_PAGE, "page_size": MOCK_PAGE}
    # the bits are OR-ed into what the bitmap's bytes held (seed 0: 00 25 4a ...)
    p.op("TEST_DIRTY", **mark, out={"out_nr_dirty": 1})
    # entry 2 alone: clean, and entry 3 stays dirty
    p.op("HWPT_GET_DIRTY_BITMAP", **get, iova=M16 + 2 * MOCK_PAGE, data=p.buf(2),
         out={"bitmap": pattern_bytes(0, 0, 8)})
    p.op("HWPT_GET_DIRTY_BITMAP", **get, iova=M16 + 3 * MOCK_PAGE, data=p.buf(2, 8),
         out={"bitmap": bytes([pattern_bytes(0, 8, 1)[0] | 1]) + pattern_bytes(0, 9, 7)})
    p.op("TEST_DIRTY", **mark, out={"out_nr_dirty": 1})
    p.op("IOAS_UNMAP", ioas_id=ioas, iova=M16, length=2 * PAGE, out={"length": 2 * PAGE})
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=2 * PAGE, iova=M16,
         flags=FIXED_RW)
    p.op("HWPT_GET_DIRTY_BITMAP", **get, iova=M16 + 3 * MOCK_PAGE, data=p.buf(2, 16),
         out={"bitmap": pattern_bytes(0, 16, 8)})
    return p


def dirty_huge_iopte_of_an_area_of_one_mib() -> Prog:
    # the huge-IOVA mock domain maps a 1M piece with one 1M IOPTE when the area holds
    # all of it (its last byte is the piece's last) and the memory is physically
    # contiguous (a 2M hugetlb page): one dirty 2K entry makes the IOPTE dirty, and a
    # 4K range gets both its bits (6.12 also sets bits past the bitmap: the known bug
    # dirty-bitmap-overrun; the model predicts what the uAPI documents)
    p = Prog("dirty_huge_iopte_of_an_area_of_one_mib", Buffer(2 << 20, "hugetlb", 123),
             Buffer(PAGE, "anon", 124), Buffer(PAGE, "memfd", 0xFF))
    ioas, idev, h = dirty_hwpt(p, 1 << 20, dev_flags=HUGE_IOVA)
    p.op("HWPT_SET_DIRTY_TRACKING", hwpt_id=h, flags=ENABLE)
    p.op("TEST_DIRTY", id=h, iova=M16, length=MOCK_PAGE, page_size=MOCK_PAGE, uptr=p.buf(2),
         out={"out_nr_dirty": 1})
    orig = pattern_bytes(124, 100, 64)
    p.op("HWPT_GET_DIRTY_BITMAP", hwpt_id=h, iova=M16, length=PAGE, page_size=MOCK_PAGE,
         data=p.buf(1, 100), out={"bitmap": bytes([orig[0] | 3]) + orig[1:8]})
    return p


def ioas_copy_overflow_before_the_pages_writability() -> Prog:
    # IOAS_COPY of read-only pages with WRITEABLE: iopt_map_pages checks the IOVA range
    # (iopt_check_iova: iova + length - 1 must not overflow, EOVERFLOW) before
    # iopt_insert_area refuses writable access to pages that are not (EPERM)
    p = Prog("ioas_copy_overflow_before_the_pages_writability", Buffer(PAGE, "memfd", 125))
    src = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("IOAS_MAP", ioas_id=src, user_va=p.buf(0), length=PAGE, iova=M16, flags=READ_FIXED)
    dst = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    cp = {"dst_ioas_id": dst, "src_ioas_id": src, "length": PAGE, "src_iova": M16}
    p.op("IOAS_COPY", **cp, dst_iova=U64 - PAGE + 2, flags=FIXED_RW, expect=E.EOVERFLOW)
    p.op("IOAS_COPY", **cp, dst_iova=U64 - PAGE + 1, flags=FIXED_RW, expect=E.EPERM)
    p.op("IOAS_COPY", **cp, dst_iova=U64 - PAGE + 1, flags=READ_FIXED,
         out={"dst_iova": U64 - PAGE + 1})
    return p


def capture_room_ends_at_a_dirty_bitmap() -> Prog:
    # the executor's capture room (CAPTURE_ROOM bytes per program) left with exactly
    # the 8 bytes of a dirty bitmap's capture: it is captured; the next is not
    p = Prog("capture_room_ends_at_a_dirty_bitmap", Buffer(CAPTURE_MAX, "memfd", 126),
             Buffer(CAPTURE_MAX, "anon", 127), Buffer(PAGE, "anon", 128))
    ioas, idev, h = dirty_hwpt(p, CAPTURE_MAX)
    p.op("HWPT_SET_DIRTY_TRACKING", hwpt_id=h, flags=ENABLE)
    acc = p.ref(p.op("TEST_CREATE_ACCESS", id=ioas), "out_access_fd")
    for _ in range(CAPTURE_ROOM // CAPTURE_MAX - 1):
        p.op("TEST_ACCESS_RW", id=acc, iova=M16, length=CAPTURE_MAX, uptr=p.buf(1))
    p.op("TEST_ACCESS_RW", id=acc, iova=M16, length=CAPTURE_MAX - 8, uptr=p.buf(1),
         out={"data": pattern_bytes(126, 0, CAPTURE_MAX - 8)})
    get = {"hwpt_id": h, "iova": M16, "length": MOCK_PAGE, "page_size": MOCK_PAGE,
           "data": p.buf(2)}
    p.op("HWPT_GET_DIRTY_BITMAP", **get, out={"bitmap": pattern_bytes(128, 0, 8)})
    p.op("HWPT_GET_DIRTY_BITMAP", **get, out={"bitmap": b""})
    return p


def executor_keeps_its_first_fds() -> Prog:
    # the executor remembers the first MAX_FDS fds a program gets back: close(2) of a
    # later one is EBADF without a syscall, of a remembered one it closes. Past the
    # numbers below AGENT_FD_BASE (the program's own: 4 up) the lowest free fd is among
    # the agent's own, which the model takes from the kernel (fuzz/model/file.py)
    p = Prog("executor_keeps_its_first_fds")
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    n = AGENT_FD_BASE - len(PROGRAM_START_FDS) + 2
    accs = [p.op("TEST_CREATE_ACCESS", id=ioas,
                 out={"out_access_fd": k + 4} if k + 4 < AGENT_FD_BASE else None)
            for k in range(n)]
    # (without the kernel's numbers for the last two the model made theirs up: it
    # cannot tell a number past its list from one of the program's then, unsure)
    p.op("CLOSE", fd=p.ref(accs[MAX_FDS], "out_access_fd"), expect=E.EBADF, unsure=True)
    p.op("CLOSE", fd=p.ref(accs[-1], "out_access_fd"), expect=E.EBADF, unsure=True)
    p.op("CLOSE", fd=p.ref(accs[MAX_FDS - 1], "out_access_fd"))
    return p


# The agent is a static non-PIE binary: its text starts here, readable (see
# tests/model_cases/seeds_mutants.py); not one of the program's buffers
AGENT_TEXT = 0x401000


def dirty_bitmap_captured_from_the_agents_text() -> Prog:
    # a dirty bitmap at an address outside the program's buffers: nothing is dirty, so
    # nothing is pinned and the call succeeds; the executor's capture then reads the
    # agent's own text, which the model cannot know (unsure), and the next call on
    # the program's own buffer is compared again
    p = Prog("dirty_bitmap_captured_from_the_agents_text", Buffer(4 * PAGE, "memfd", 129),
             Buffer(PAGE, "anon", 130))
    ioas, idev, h = dirty_hwpt(p, 4 * PAGE)
    p.op("HWPT_SET_DIRTY_TRACKING", hwpt_id=h, flags=ENABLE)
    get = {"hwpt_id": h, "iova": M16, "length": 4 * PAGE, "page_size": MOCK_PAGE}
    p.op("HWPT_GET_DIRTY_BITMAP", **get, data=AGENT_TEXT, unsure=True)
    p.op("HWPT_GET_DIRTY_BITMAP", **get, data=p.buf(1), out={"bitmap": pattern_bytes(130, 0, 8)})
    return p


SEEDS_MUTANTS2 = [
    access_unmap_releases_a_one_byte_item, access_pages_one_byte_past_the_area,
    map_touching_by_one_byte, auto_iova_in_a_span_one_byte_short, map_length_limits,
    vfio_unmap_cut_at_the_areas_first_byte, faulting_copy_to_user_at_an_odd_address,
    dirty_by_hand_past_the_top_of_the_iova_space, dirty_bitmap_alignment_checks_apart,
    hw_info_clears_one_byte_past_the_drivers, dirty_bits_go_with_the_unmapped_entries,
    dirty_huge_iopte_of_an_area_of_one_mib, ioas_copy_overflow_before_the_pages_writability,
    dirty_bitmap_captured_from_the_agents_text,
]
# Longer than a seed may be: corpus/oracle/ (tests/model_cases/seeds_mutants.py)
ORACLE_PROGRAMS2 = [capture_room_ends_at_a_dirty_bitmap, executor_keeps_its_first_fds]
