"""Seed programs for rules that mutants of the model survived (bench/bench_oracle.py,
issue 11): each pins a check the recorded corpus never made the kernel's result depend
on. Expected values come from reading the 6.12.117 source (io_pagetable.c), named per op.
"""

from __future__ import annotations

import errno as E

from fuzz import uapi
from fuzz.prog import Buffer, pattern_bytes
from fuzz.prog.limits import CAPTURE_MAX, CAPTURE_ROOM

from .dsl import FIXED_RW, MOCK_APERTURE_START, PAGE, RW, U64, Prog, dirty_hwpt

M16 = MOCK_APERTURE_START
DIRTY = uapi.IOMMU_HWPT_ALLOC_DIRTY_TRACKING
ENABLE = uapi.IOMMU_HWPT_DIRTY_TRACKING_ENABLE
PIN = uapi.MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES
MOCK_PAGE = PAGE // 2
SYZ = uapi.MOCK_FLAGS_ACCESS_SYZ
RW_WRITE = uapi.MOCK_ACCESS_RW_WRITE
TASK_SIZE_MAX = (1 << 47) - PAGE  # x86_64, 4-level paging


def dirty_bitmap_iova_masks() -> Prog:
    # iommufd_check_iova_range: iova and iova + length are masked with
    # iova_alignment - 1 (2K with a mock domain), then with page_size - 1 as given: a
    # page_size that is not a power of two masks other bits than its alignment
    p = Prog("dirty_bitmap_iova_masks", Buffer(16 * PAGE, "memfd", 61),
             Buffer(2 * PAGE, "anon", 62))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    md = p.op("TEST_MOCK_DOMAIN", id=ioas)
    idev = p.ref(md, "out_idev_id")
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=16 * PAGE, iova=M16,
         flags=FIXED_RW)
    h = p.ref(p.op("HWPT_ALLOC", dev_id=idev, pt_id=ioas, flags=DIRTY), "out_hwpt_id")
    p.op("HWPT_SET_DIRTY_TRACKING", hwpt_id=h, flags=ENABLE)
    # iova 1 byte past a 2K boundary: the alignment check, whatever page_size
    p.op("HWPT_GET_DIRTY_BITMAP", hwpt_id=h, iova=M16 + 1, length=MOCK_PAGE, page_size=1,
         data=p.buf(1), expect=E.EINVAL)
    # page_size 4097: mask 0x1000; iova M16 + 4K has that bit, M16 + 8K (the end) not
    p.op("HWPT_GET_DIRTY_BITMAP", hwpt_id=h, iova=M16 + PAGE, length=PAGE, page_size=PAGE + 1,
         data=p.buf(1), expect=E.EINVAL)
    # iova M16 (no 0x1000 bit), end M16 + 4K: the end has it
    p.op("HWPT_GET_DIRTY_BITMAP", hwpt_id=h, iova=M16, length=PAGE, page_size=PAGE + 1,
         data=p.buf(1), expect=E.EINVAL)
    # both without it: page_size 4097 passes the checks
    p.op("HWPT_GET_DIRTY_BITMAP", hwpt_id=h, iova=M16, length=2 * PAGE, page_size=PAGE + 1,
         data=p.buf(1))
    p.op("HWPT_GET_DIRTY_BITMAP", hwpt_id=h, iova=M16, length=MOCK_PAGE, page_size=1,
         data=p.buf(1))
    return p


def vfio_split_of_pinned_area() -> Prog:
    # VFIO type1 unmap cuts the area at the ends of the range (iopt_cut_iova); an area
    # an access has pinned pages of cannot be split: iopt_area_split EINVAL
    p = Prog("vfio_split_of_pinned_area", Buffer(65536, "memfd", 63), Buffer(PAGE, "memfd", 64))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("TEST_MOCK_DOMAIN", id=ioas)
    p.op("VFIO_IOAS", op=1, ioas_id=ioas)
    p.op("VFIO_SET_IOMMU", type=1)
    p.op("VFIO_IOMMU_MAP_DMA", flags=3, vaddr=p.buf(0), size=65536, iova=M16)
    acc = p.ref(p.op("TEST_CREATE_ACCESS", id=ioas, flags=PIN), "out_access_fd")
    pg = p.op("TEST_ACCESS_PAGES", id=acc, iova=M16 + 2 * PAGE, length=PAGE,
              uptr=p.buf(0, 2 * PAGE))
    p.op("VFIO_IOMMU_UNMAP_DMA", iova=M16 + 8 * PAGE, size=PAGE, expect=E.EINVAL)
    p.op("TEST_DESTROY_ACCESS_PAGES", id=acc, access_pages_id=p.ref(pg, "out_access_pages_id"))
    p.op("VFIO_IOMMU_UNMAP_DMA", iova=M16 + 8 * PAGE, size=PAGE, out={"size": PAGE})
    return p


def access_pages_syz_iova() -> Prog:
    # MOCK_FLAGS_ACCESS_SYZ: the iova is {u32 nth_area; u32 offset}
    # (__iommufd_test_syz_conv_iova): the nth area in IOVA order, plus offset
    p = Prog("access_pages_syz_iova", Buffer(65536, "memfd", 65))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0, 8 * PAGE), length=8 * PAGE,
         iova=2 * M16, flags=FIXED_RW)
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=8 * PAGE, iova=M16,
         flags=FIXED_RW)
    acc = p.ref(p.op("TEST_CREATE_ACCESS", id=ioas, flags=PIN), "out_access_fd")
    # area 1 is the one at 2 * M16 (user +32K); offset 3 pages: user +44K
    p.op("TEST_ACCESS_PAGES", id=acc, iova=(3 * PAGE << 32) | 1, length=PAGE,
         uptr=p.buf(0, 11 * PAGE), flags=SYZ)
    # area 0 at M16, offset 5 pages
    p.op("TEST_ACCESS_PAGES", id=acc, iova=(5 * PAGE << 32), length=PAGE,
         uptr=p.buf(0, 5 * PAGE), flags=SYZ)
    # the pages are checked against uptr: another offset is another page
    p.op("TEST_ACCESS_PAGES", id=acc, iova=(5 * PAGE << 32), length=PAGE,
         uptr=p.buf(0, 4 * PAGE), flags=SYZ, expect=E.EBADE)
    return p


def fault_read_access_ok() -> Prog:
    # read(2) of a fault fd: vfs_read's access_ok(buf, count) takes buf + count up to
    # TASK_SIZE_MAX (USER_PTR_MAX on x86_64) and no wrap past 2^64; an empty queue
    # reads 0 bytes
    p = Prog("fault_read_access_ok")
    fd = p.ref(p.op("FAULT_QUEUE_ALLOC"), "out_fault_fd")
    rec = 40  # sizeof(struct iommu_hwpt_pgfault)
    p.op("READ", fd=fd, buf=TASK_SIZE_MAX - rec, count=rec, out={"ret": 0})
    p.op("READ", fd=fd, buf=TASK_SIZE_MAX - rec + 1, count=rec, expect=E.EFAULT)
    p.op("READ", fd=fd, buf=U64 - 7, count=rec, expect=E.EFAULT)
    # count 0: buf + 0 does not wrap (access_ok passes), nothing to read
    p.op("READ", fd=fd, buf=TASK_SIZE_MAX - PAGE, count=0, out={"ret": 0})
    return p


def user_memory_written_page_after_plain() -> Prog:
    # a read that starts in a page the program never wrote and runs into one an
    # access wrote: the bytes of each page as it is now
    p = Prog("user_memory_written_page_after_plain", Buffer(4 * PAGE, "memfd", 66),
             Buffer(PAGE, "anon", 67))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    acc = p.ref(p.op("TEST_CREATE_ACCESS", id=ioas), "out_access_fd")
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=4 * PAGE, iova=M16,
         flags=FIXED_RW)
    p.op("TEST_ACCESS_RW", id=acc, iova=M16 + PAGE + 8, length=16, uptr=p.buf(1),
         flags=RW_WRITE)
    p.op("TEST_ACCESS_RW", id=acc, iova=M16 + PAGE - 8, length=40, uptr=p.buf(1, 100),
         out={"data": pattern_bytes(66, PAGE - 8, 16) + pattern_bytes(67, 0, 16)
              + pattern_bytes(66, PAGE + 24, 8)})
    return p


def hw_info_size_cuts_capabilities() -> Prog:
    # iommufd_ucmd_respond copies min(user size, sizeof) bytes: a size of 36 ends in
    # the middle of out_capabilities (at 32): its low 4 bytes are written
    p = Prog("hw_info_size_cuts_capabilities")
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    idev = p.ref(p.op("TEST_MOCK_DOMAIN", id=ioas), "out_idev_id")
    p.op("GET_HW_INFO", dev_id=idev, data_len=8, size=36,
         out={"out_capabilities": uapi.IOMMU_HW_CAP_DIRTY_TRACKING})
    p.op("GET_HW_INFO", dev_id=idev, data_len=8, size=33,
         out={"out_capabilities": uapi.IOMMU_HW_CAP_DIRTY_TRACKING})
    p.op("GET_HW_INFO", dev_id=idev, data_len=8, size=32, out={"out_capabilities": 0})
    # the bytes past the size keep what the program put there
    p.op("GET_HW_INFO", dev_id=idev, data_len=8, size=36, out_capabilities=0xA5A5A5A5 << 32,
         out={"out_capabilities": 0xA5A5A5A5 << 32 | uapi.IOMMU_HW_CAP_DIRTY_TRACKING})
    p.op("GET_HW_INFO", dev_id=idev, data_len=8, size=33, out_capabilities=U64,
         out={"out_capabilities": U64 & ~0xFF | uapi.IOMMU_HW_CAP_DIRTY_TRACKING})
    return p


def reserved_touching_allowed() -> Prog:
    # iopt_reserve_iova: EADDRINUSE for a range that intersects an allowed one, also
    # by a single byte at either end; adjacent is fine
    p = Prog("reserved_touching_allowed")
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("IOAS_ALLOW_IOVAS", ioas_id=ioas, allowed_iovas=[[0x100000, 0x1FFFFF]])
    p.op("TEST_ADD_RESERVED", id=ioas, start=0x1FFFFF, length=1, expect=E.EADDRINUSE)
    p.op("TEST_ADD_RESERVED", id=ioas, start=0xFF000, length=0x1001, expect=E.EADDRINUSE)
    p.op("TEST_ADD_RESERVED", id=ioas, start=0x200000, length=PAGE)
    p.op("TEST_ADD_RESERVED", id=ioas, start=0xFF000, length=0x1000)
    return p


def access_pages_checks_every_page() -> Prog:
    # iommufd_test_access_pages checks each page of [ALIGN_DOWN(iova), ALIGN(iova +
    # length)) against uptr's: one byte into the next page counts that page, which here
    # comes from another buffer (a second area): EBADE
    p = Prog("access_pages_checks_every_page", Buffer(2 * PAGE, "memfd", 68),
             Buffer(PAGE, "memfd", 69))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=PAGE, iova=M16, flags=FIXED_RW)
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(1), length=PAGE, iova=M16 + PAGE,
         flags=FIXED_RW)
    acc = p.ref(p.op("TEST_CREATE_ACCESS", id=ioas, flags=PIN), "out_access_fd")
    p.op("TEST_ACCESS_PAGES", id=acc, iova=M16, length=PAGE, uptr=p.buf(0),
         out={"out_access_pages_id": 0})
    p.op("TEST_ACCESS_PAGES", id=acc, iova=M16, length=PAGE + 1, uptr=p.buf(0),
         expect=E.EBADE)
    # a pin must start on a page boundary of the area (iopt_area_contig_is_aligned)
    p.op("TEST_ACCESS_PAGES", id=acc, iova=M16 + PAGE - 1, length=2, uptr=p.buf(0, PAGE - 1),
         expect=E.EINVAL)
    p.op("TEST_ACCESS_PAGES", id=acc, iova=M16 + PAGE, length=1, uptr=p.buf(1),
         out={"out_access_pages_id": 1})
    return p


def capture_room_runs_out() -> Prog:
    # the executor captures at most CAPTURE_MAX bytes per op into CAPTURE_ROOM bytes per
    # program: 64 reads of 64K fill it exactly; after that every capture is empty
    p = Prog("capture_room_runs_out", Buffer(CAPTURE_MAX, "memfd", 70),
             Buffer(CAPTURE_MAX, "anon", 71), Buffer(PAGE, "anon", 72))
    ioas, idev, h = dirty_hwpt(p, CAPTURE_MAX)
    p.op("HWPT_SET_DIRTY_TRACKING", hwpt_id=h, flags=ENABLE)
    acc = p.ref(p.op("TEST_CREATE_ACCESS", id=ioas), "out_access_fd")
    for k in range(CAPTURE_ROOM // CAPTURE_MAX):
        p.op("TEST_ACCESS_RW", id=acc, iova=M16, length=CAPTURE_MAX, uptr=p.buf(1),
             out={"data": pattern_bytes(70, 0, CAPTURE_MAX)} if k in (0, 63) else None)
    p.op("TEST_ACCESS_RW", id=acc, iova=M16, length=16, uptr=p.buf(1), out={"data": b""})
    p.op("GET_HW_INFO", dev_id=idev, data_len=8, data_uptr=p.buf(2), out={"data": b""})
    p.op("HWPT_GET_DIRTY_BITMAP", hwpt_id=h, iova=M16, length=CAPTURE_MAX,
         page_size=MOCK_PAGE, data=p.buf(2), out={"bitmap": b""})
    return p


def dirty_by_hand_bit_limit() -> Prog:
    # iommufd_test_dirty: more than SZ_16M * BITS_PER_BYTE bits is EOVERFLOW, checked
    # before the id is looked up (an IOAS is no mock pagetable: ENOENT)
    p = Prog("dirty_by_hand_bit_limit", Buffer(PAGE, "anon", 73))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    bits = (16 << 20) * 8
    p.op("TEST_DIRTY", id=ioas, iova=0, length=bits + 1, page_size=1, uptr=p.buf(0),
         expect=E.EOVERFLOW)
    p.op("TEST_DIRTY", id=ioas, iova=0, length=bits, page_size=1, uptr=p.buf(0),
         expect=E.ENOENT)
    return p


NEST = uapi.IOMMU_HWPT_ALLOC_NEST_PARENT
FAULT_ID = uapi.IOMMU_HWPT_FAULT_ID_VALID
SELFTEST = uapi.IOMMU_HWPT_DATA_SELFTEST
IOTLB = uapi.IOMMU_TEST_IOTLB_DEFAULT


def hwpt_alloc_size_cuts_fault_id() -> Prog:
    # iommu_hwpt_alloc's minimum size ends at __reserved (main.c IOCTL_OP); a user size
    # inside fault_id (at 40) leaves its upper bytes 0 (copy_struct_from_user): with
    # size 41 only the low byte of fault_id is read, with 42 the low two
    p = Prog("hwpt_alloc_size_cuts_fault_id")
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    idev = p.ref(p.op("TEST_MOCK_DOMAIN", id=ioas), "out_idev_id")
    fq = p.op("FAULT_QUEUE_ALLOC")
    fid = p.ref(fq, "out_fault_id")
    parent = p.ref(p.op("HWPT_ALLOC", dev_id=idev, pt_id=ioas, flags=NEST), "out_hwpt_id")
    nest = {"dev_id": idev, "pt_id": parent, "data_type": SELFTEST, "data_len": 4,
            "iotlb": IOTLB, "flags": FAULT_ID}
    p.op("HWPT_ALLOC", **nest, fault_id=p.ref(fq, "out_fault_id", 0x100), expect=E.ENOENT)
    p.op("HWPT_ALLOC", **nest, fault_id=p.ref(fq, "out_fault_id", 0x100), size=41)
    p.op("HWPT_ALLOC", **nest, fault_id=p.ref(fq, "out_fault_id", 0x10000), size=41)
    p.op("HWPT_ALLOC", **nest, fault_id=p.ref(fq, "out_fault_id", 0x10000), size=42)
    p.op("HWPT_ALLOC", **nest, fault_id=p.ref(fq, "out_fault_id", 0x100), size=42,
         expect=E.ENOENT)
    # the struct ends before fault_id: it reads as 0, no object
    p.op("HWPT_ALLOC", **nest, fault_id=fid, size=40, expect=E.ENOENT)
    return p


def dirty_bitmap_ends_at_the_last_iova() -> Prog:
    # iommufd_check_iova_range: a range whose last byte is 2^64 - 1 does not overflow
    # (check_add_overflow of iova + length - 1); one byte more does (EOVERFLOW before
    # the alignment checks). No area is there: the walk meets a hole, EINVAL as the
    # uAPI documents (6.12 drops that error: known bug dirty-bitmap-error-dropped)
    p = Prog("dirty_bitmap_ends_at_the_last_iova", Buffer(4 * PAGE, "memfd", 80),
             Buffer(PAGE, "anon", 81))
    ioas, idev, h = dirty_hwpt(p, 4 * PAGE)
    p.op("HWPT_SET_DIRTY_TRACKING", hwpt_id=h, flags=ENABLE)
    top = U64 + 1 - 4 * PAGE
    p.op("HWPT_GET_DIRTY_BITMAP", hwpt_id=h, iova=top, length=4 * PAGE, page_size=MOCK_PAGE,
         data=p.buf(1), expect=E.EINVAL)
    p.op("HWPT_GET_DIRTY_BITMAP", hwpt_id=h, iova=top, length=4 * PAGE + 1,
         page_size=MOCK_PAGE, data=p.buf(1), expect=E.EOVERFLOW)
    p.op("HWPT_GET_DIRTY_BITMAP", hwpt_id=h, iova=top + MOCK_PAGE, length=4 * PAGE,
         page_size=MOCK_PAGE, data=p.buf(1), expect=E.EOVERFLOW)
    p.op("HWPT_GET_DIRTY_BITMAP", hwpt_id=h, iova=U64 + 1 - MOCK_PAGE, length=MOCK_PAGE,
         page_size=MOCK_PAGE, data=p.buf(1), expect=E.EINVAL)
    return p


def allow_iovas_ranges_are_16_bytes_apart() -> Prog:
    # iommufd_ioas_allow_iovas copies struct iommu_iova_range i from allowed_iovas + 16 * i
    # and checks it before copying the next: the last range of a page-end array is read
    # from its last 16 bytes; one range more is past the buffer (EFAULT, nothing set).
    # The buffer's pattern (seed 85) holds two valid disjoint ranges in its last 32 bytes.
    # (Allowed ranges are not what IOAS_IOVA_RANGES reports: the IOVAs it picks are.)
    p = Prog("allow_iovas_ranges_are_16_bytes_apart", Buffer(PAGE, "anon", 85))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("IOAS_ALLOW_IOVAS", ioas_id=ioas, num_iovas=2, allowed_iovas=p.buf(0, PAGE - 32))
    # an IOVA the kernel picks comes from the allowed ranges
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=PAGE, flags=RW)
    p.op("IOAS_ALLOW_IOVAS", ioas_id=ioas, num_iovas=2, allowed_iovas=p.buf(0, PAGE - 16),
         expect=E.EFAULT)
    p.op("IOAS_ALLOW_IOVAS", ioas_id=ioas, num_iovas=3, allowed_iovas=p.buf(0, PAGE - 32),
         expect=E.EFAULT)
    # the last range alone: the IOVA picked next is in it
    p.op("IOAS_ALLOW_IOVAS", ioas_id=ioas, num_iovas=1, allowed_iovas=p.buf(0, PAGE - 16))
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=PAGE, flags=RW)
    return p


# The agent is a static non-PIE binary: its text starts at 0x401000 (readable, not
# writable), and nothing is mapped between LOW_UNMAPPED and it. Neither is one of the
# program's buffers: the model does not know them, the kernel's errno decides.
AGENT_TEXT = 0x401000
BELOW_AGENT = 0x300000
READ_FIXED = uapi.IOMMU_IOAS_MAP_READABLE | uapi.IOMMU_IOAS_MAP_FIXED_IOVA


def pin_outside_the_buffers_takes_the_kernels_errno() -> Prog:
    # pin_user_pages_fast of memory the model does not know: the read-only pin of the
    # agent's text succeeds, FOLL_WRITE on it and a pin of unmapped memory fault; the
    # model takes each from the kernel's errno (unsure: not compared) and then knows
    # the IOAS again: TEST_MD_CHECK_MAP walks the pinned page, the unmap finds one area
    p = Prog("pin_outside_the_buffers_takes_the_kernels_errno")
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    hwpt = p.ref(p.op("TEST_MOCK_DOMAIN", id=ioas), "out_hwpt_id")
    p.op("IOAS_MAP", ioas_id=ioas, user_va=AGENT_TEXT, length=PAGE, iova=M16,
         flags=READ_FIXED, unsure=True)
    p.op("TEST_MD_CHECK_MAP", id=hwpt, iova=M16, length=PAGE, uptr=AGENT_TEXT, unsure=True)
    p.op("IOAS_MAP", ioas_id=ioas, user_va=AGENT_TEXT, length=PAGE, iova=M16 + PAGE,
         flags=FIXED_RW, expect=E.EFAULT, unsure=True)
    p.op("IOAS_MAP", ioas_id=ioas, user_va=BELOW_AGENT, length=PAGE, iova=M16 + PAGE,
         flags=READ_FIXED, expect=E.EFAULT, unsure=True)
    p.op("IOAS_UNMAP", ioas_id=ioas, iova=0, length=U64, unsure=True)
    return p


HPAGE = 2 << 20


def md_check_refs_skips_transparent_huge_pages() -> Prog:
    # iommufd_test_md_check_refs skips a PageCompound page: the pages of a 2 MiB aligned
    # anonymous (or read-only) window may be a THP (the guest's THP is "always": they
    # are), so a wrong refs there is no EIO - the model cannot tell (unsure), the kernel
    # returns 0. A memfd (shmem) page is never huge here: refs 1 on it is EIO.
    p = Prog("md_check_refs_skips_transparent_huge_pages", Buffer(HPAGE, "anon", 90),
             Buffer(HPAGE, "memfd", 91), Buffer(HPAGE, "readonly", 92))
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0), length=HPAGE, refs=1, unsure=True)
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0, HPAGE - PAGE), length=PAGE, refs=1, unsure=True)
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(2), length=PAGE, refs=1, unsure=True)
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(1), length=HPAGE, refs=1, expect=E.EIO)
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(1, HPAGE - PAGE), length=PAGE, refs=1,
         expect=E.EIO)
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(1), length=HPAGE, refs=0)
    return p


def faulting_copy_to_user_leaves_its_bytes_unknown() -> Prog:
    # TEST_ACCESS_RW read: iommufd_access_rw copies the IOAS's bytes, then copy_to_user
    # into a one-page buffer for two pages faults at the buffer's end (EFAULT); how far
    # it wrote before the fault is the architecture's (x86: the whole first page). The
    # model keeps those bytes unknown: reading them back (a write from them into the
    # IOAS, then a read of that into another buffer) is unsure, never the old pattern.
    return faulting_copy_to_user("faulting_copy_to_user_leaves_its_bytes_unknown", 93, 0)


def faulting_copy_to_user(name: str, seed: int, offset: int) -> Prog:
    """The read into buffer 1 from `offset` on faults at its end; then the bytes it left
    there are written into the IOAS and read back into buffer 2 (both unsure)."""
    p = Prog(name, Buffer(2 * PAGE, "memfd", seed), Buffer(PAGE, "anon", seed + 1),
             Buffer(PAGE, "anon", seed + 2))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=2 * PAGE, iova=M16, flags=FIXED_RW)
    acc = p.ref(p.op("TEST_CREATE_ACCESS", id=ioas), "out_access_fd")
    p.op("TEST_ACCESS_RW", id=acc, iova=M16, length=2 * PAGE, uptr=p.buf(1, offset),
         expect=E.EFAULT)
    p.op("TEST_ACCESS_RW", id=acc, iova=M16 + PAGE, length=16, uptr=p.buf(1, 8),
         flags=RW_WRITE, unsure=True)
    p.op("TEST_ACCESS_RW", id=acc, iova=M16 + PAGE, length=32, uptr=p.buf(2), unsure=True)
    return p


def access_rw_reads_back_bytes_written_into_a_later_page() -> Prog:
    # user memory the kernel wrote (copy_to_user of a TEST_ACCESS_RW read) into the
    # second page of a buffer is what a later read of the buffer across both pages
    # returns there: the first page's pattern, then the written bytes
    p = Prog("access_rw_reads_back_bytes_written_into_a_later_page",
             Buffer(2 * PAGE, "memfd", 96), Buffer(2 * PAGE, "memfd", 97),
             Buffer(PAGE, "anon", 98))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(1), length=2 * PAGE, iova=M16, flags=FIXED_RW)
    acc = p.ref(p.op("TEST_CREATE_ACCESS", id=ioas), "out_access_fd")
    p.op("TEST_ACCESS_RW", id=acc, iova=M16, length=64, uptr=p.buf(0, PAGE + 100),
         out={"data": pattern_bytes(97, 0, 64)})
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=2 * PAGE, iova=M16 + 2 * PAGE,
         flags=FIXED_RW)
    p.op("TEST_ACCESS_RW", id=acc, iova=M16 + 3 * PAGE - 8, length=200, uptr=p.buf(2),
         out={"data": pattern_bytes(96, PAGE - 8, 108) + pattern_bytes(97, 0, 64)
              + pattern_bytes(96, PAGE + 164, 28)})
    return p


INV = uapi.IOMMU_HWPT_INVALIDATE_DATA_SELFTEST


def hwpt_invalidate_entry_longer_than_the_drivers() -> Prog:
    # iommufd_hwpt_invalidate takes entry_len up to PAGE_SIZE (EINVAL above); the mock's
    # __iommu_copy_struct_from_user refuses an entry longer than its 8-byte struct
    # (include/linux/iommu.h: data_len < src_data->len, EINVAL) even when the bytes past
    # it are zero, as GET_HW_INFO's clear_user past the driver's 8 bytes leaves them
    p = Prog("hwpt_invalidate_entry_longer_than_the_drivers", Buffer(2 * PAGE, "anon", 99))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    idev = p.ref(p.op("TEST_MOCK_DOMAIN", id=ioas), "out_idev_id")
    parent = p.ref(p.op("HWPT_ALLOC", dev_id=idev, pt_id=ioas, flags=NEST), "out_hwpt_id")
    n0 = p.ref(p.op("HWPT_ALLOC", dev_id=idev, pt_id=parent, data_type=SELFTEST, data_len=4,
                    iotlb=IOTLB), "out_hwpt_id")
    p.op("GET_HW_INFO", dev_id=idev, data_len=2 * PAGE - 8, data_uptr=p.buf(0, 8),
         out={"data_len": 8})
    p.op("HWPT_INVALIDATE", hwpt_id=n0, data_type=INV, entry_num=1, entry_len=PAGE + 1,
         data_uptr=p.buf(0, 16), expect=E.EINVAL, out={"entry_num": 0})
    p.op("HWPT_INVALIDATE", hwpt_id=n0, data_type=INV, entry_num=1, entry_len=PAGE,
         data_uptr=p.buf(0, 16), expect=E.EINVAL, out={"entry_num": 0})
    p.op("HWPT_INVALIDATE", hwpt_id=n0, data_type=INV, entry_num=1, entry_len=16,
         data_uptr=p.buf(0, 16), expect=E.EINVAL, out={"entry_num": 0})
    # the same zeros as an 8-byte entry {flags 0, iotlb_id 0}: invalidated
    p.op("HWPT_INVALIDATE", hwpt_id=n0, data_type=INV, entry_num=2, entry_len=8,
         data_uptr=p.buf(0, 16), out={"entry_num": 2})
    p.op("TEST_MD_CHECK_IOTLB", id=n0, iotlb_id=0, iotlb=0)
    p.op("TEST_MD_CHECK_IOTLB", id=n0, iotlb_id=1, iotlb=IOTLB)
    return p


def ioas_copy_and_unmap_at_ulong_max() -> Prog:
    # iommufd_ioas_copy: length, src_iova or dst_iova of ULONG_MAX is EOVERFLOW before
    # any lookup, one less is looked up; iopt_unmap_iova: check_add_overflow(iova,
    # length - 1) - a range ending at 2^64 - 1 is fine (it unmaps the area), one byte
    # further overflows
    p = Prog("ioas_copy_and_unmap_at_ulong_max", Buffer(PAGE, "memfd", 100))
    src = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("IOAS_MAP", ioas_id=src, user_va=p.buf(0), length=PAGE, iova=M16, flags=FIXED_RW)
    dst = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    cp = {"dst_ioas_id": dst, "src_ioas_id": src, "flags": FIXED_RW}
    p.op("IOAS_COPY", **cp, length=U64, src_iova=M16, dst_iova=M16, expect=E.EOVERFLOW)
    p.op("IOAS_COPY", **cp, length=PAGE, src_iova=U64, dst_iova=M16, expect=E.EOVERFLOW)
    p.op("IOAS_COPY", **cp, length=PAGE, src_iova=M16, dst_iova=U64, expect=E.EOVERFLOW)
    # where the range itself would not overflow: still EOVERFLOW, not ENOENT
    p.op("IOAS_COPY", **cp, length=U64, src_iova=0, dst_iova=M16, expect=E.EOVERFLOW)
    p.op("IOAS_COPY", **cp, length=1, src_iova=U64, dst_iova=M16, expect=E.EOVERFLOW)
    p.op("IOAS_COPY", **cp, length=U64 - 1, src_iova=0, dst_iova=M16, expect=E.ENOENT)
    p.op("IOAS_COPY", **cp, length=1, src_iova=U64 - 1, dst_iova=M16, expect=E.ENOENT)
    p.op("IOAS_COPY", **cp, length=PAGE, src_iova=M16, dst_iova=M16, out={"dst_iova": M16})
    p.op("IOAS_UNMAP", ioas_id=src, iova=3, length=U64 - 1, expect=E.EOVERFLOW)
    p.op("IOAS_UNMAP", ioas_id=src, iova=U64, length=1, expect=E.EOVERFLOW)
    p.op("IOAS_UNMAP", ioas_id=src, iova=2, length=U64 - 1, out={"length": PAGE})
    return p


def iova_ranges_written_16_bytes_apart() -> Prog:
    # iommufd_ioas_iova_ranges copies range i to allowed_iovas + 16 * i: two ranges (a
    # reserved page splits the space) fit the last 32 bytes of a buffer; at its last 16
    # range 0 is written, range 1 faults (EFAULT). Read back by ALLOW_IOVAS: the ranges
    # as reported first, then range 0 twice (overlapping: EINVAL), then range 0 alone.
    p = Prog("iova_ranges_written_16_bytes_apart", Buffer(PAGE, "anon", 101),
             Buffer(PAGE, "memfd", 102))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("TEST_ADD_RESERVED", id=ioas, start=0x100000, length=PAGE)
    p.op("IOAS_IOVA_RANGES", ioas_id=ioas, num_iovas=2, allowed_iovas=p.buf(0, PAGE - 32),
         out={"num_iovas": 2})
    p.op("IOAS_ALLOW_IOVAS", ioas_id=ioas, num_iovas=2, allowed_iovas=p.buf(0, PAGE - 32))
    p.op("IOAS_IOVA_RANGES", ioas_id=ioas, num_iovas=2, allowed_iovas=p.buf(0, PAGE - 16),
         expect=E.EFAULT)
    p.op("IOAS_ALLOW_IOVAS", ioas_id=ioas, num_iovas=2, allowed_iovas=p.buf(0, PAGE - 32),
         expect=E.EINVAL)
    p.op("IOAS_ALLOW_IOVAS", ioas_id=ioas, num_iovas=1, allowed_iovas=p.buf(0, PAGE - 16))
    # allowed ranges only bound the IOVAs the kernel picks: a fixed one outside is mapped
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(1), length=PAGE, iova=0x101000,
         flags=FIXED_RW)
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(1), length=PAGE, iova=0xFF000,
         flags=FIXED_RW)
    return p

SEEDS_MUTANTS = [
    dirty_bitmap_iova_masks, vfio_split_of_pinned_area, access_pages_syz_iova,
    fault_read_access_ok, user_memory_written_page_after_plain, hw_info_size_cuts_capabilities,
    reserved_touching_allowed, access_pages_checks_every_page, dirty_by_hand_bit_limit,
    hwpt_alloc_size_cuts_fault_id, dirty_bitmap_ends_at_the_last_iova,
    allow_iovas_ranges_are_16_bytes_apart, pin_outside_the_buffers_takes_the_kernels_errno,
    md_check_refs_skips_transparent_huge_pages, faulting_copy_to_user_leaves_its_bytes_unknown,
    access_rw_reads_back_bytes_written_into_a_later_page,
    hwpt_invalidate_entry_longer_than_the_drivers, ioas_copy_and_unmap_at_ulong_max,
    iova_ranges_written_16_bytes_apart,
]
# Longer than a seed may be (3 to 30 ops): written to corpus/oracle/, which the
# differential test and bench/bench_oracle.py run but the campaign does not start from.
ORACLE_PROGRAMS = [capture_room_runs_out]
