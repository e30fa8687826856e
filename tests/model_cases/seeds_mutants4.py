"""Seed programs for rules of the model that mutants survived (bench/bench_oracle.py,
issue 11, session 5), found with bench/hunt_mutants.py. Expected values from the
6.12.117 source and the VM.
"""

from __future__ import annotations

from fuzz import uapi
from fuzz.prog import Buffer, pattern_bytes

from .dsl import FIXED_RW, MOCK_APERTURE_START, PAGE, Prog

M16 = MOCK_APERTURE_START
DIRTY = uapi.IOMMU_HWPT_ALLOC_DIRTY_TRACKING
HUGE_IOVA = uapi.MOCK_FLAGS_DEVICE_HUGE_IOVA
ENABLE = uapi.IOMMU_HWPT_DIRTY_TRACKING_ENABLE
MOCK_PAGE = PAGE // 2


def dirty_memfd_at_a_1m_boundary_is_mapped_with_2k_pages() -> Prog:
    # dirty_huge_iopte with a memfd buffer in place of the hugetlb one: shmem pages are
    # not physically contiguous (no THP for shmem), so a HUGE_IOVA device's domain maps
    # the 1M-aligned piece with 2K entries (mock_domain_map_pages gets no 1M run of
    # pfns) and one dirty 2K page is one bit. The model cannot know the physical pages
    # (mock.piece_state: MAYBE), so that read is the kernel's to decide
    p = Prog("dirty_memfd_at_a_1m_boundary_is_mapped_with_2k_pages",
             Buffer(2 << 20, "memfd", 56), Buffer(PAGE, "anon", 57), Buffer(PAGE, "memfd", 0xFF))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    md = p.op("TEST_MOCK_DOMAIN_FLAGS", id=ioas, dev_flags=HUGE_IOVA)
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=2 << 20, iova=M16,
         flags=FIXED_RW)
    h = p.ref(p.op("HWPT_ALLOC", dev_id=p.ref(md, "out_idev_id"), pt_id=ioas, flags=DIRTY),
              "out_hwpt_id")
    p.op("HWPT_SET_DIRTY_TRACKING", hwpt_id=h, flags=ENABLE)
    p.op("TEST_DIRTY", id=h, iova=M16, length=MOCK_PAGE, page_size=MOCK_PAGE, uptr=p.buf(2),
         out={"out_nr_dirty": 1})
    orig = pattern_bytes(57, 107, 8)  # bits 0 and 1 of its first byte are clear
    p.op("HWPT_GET_DIRTY_BITMAP", hwpt_id=h, iova=M16, length=PAGE, page_size=MOCK_PAGE,
         data=p.buf(1, 107), out={"bitmap": bytes([orig[0] | 1]) + orig[1:]}, unsure=True)
    return p


def dirty_anon_thp_at_a_1m_boundary_is_mapped_huge() -> Prog:
    # the same with a 2M anonymous buffer at a 2M-aligned address: with THP "always"
    # the fault maps one 2M huge page, physically contiguous, so the domain gets 1M
    # IOPTEs and one dirty 2K page reports the whole 1M (the known bug
    # dirty-bitmap-overrun: 512 bits from the range's start; on the VM every byte of
    # the captured 8 is 0xff). Whether THP backs the buffer is the kernel's (memory
    # fragmentation): unsure in the model, so either answer agrees
    p = Prog("dirty_anon_thp_at_a_1m_boundary_is_mapped_huge",
             Buffer(2 << 20, "anon", 56), Buffer(PAGE, "anon", 57), Buffer(PAGE, "memfd", 0xFF))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    md = p.op("TEST_MOCK_DOMAIN_FLAGS", id=ioas, dev_flags=HUGE_IOVA)
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=2 << 20, iova=M16,
         flags=FIXED_RW)
    h = p.ref(p.op("HWPT_ALLOC", dev_id=p.ref(md, "out_idev_id"), pt_id=ioas, flags=DIRTY),
              "out_hwpt_id")
    p.op("HWPT_SET_DIRTY_TRACKING", hwpt_id=h, flags=ENABLE)
    p.op("TEST_DIRTY", id=h, iova=M16, length=MOCK_PAGE, page_size=MOCK_PAGE, uptr=p.buf(2),
         out={"out_nr_dirty": 1})
    p.op("HWPT_GET_DIRTY_BITMAP", hwpt_id=h, iova=M16, length=PAGE, page_size=MOCK_PAGE,
         data=p.buf(1, 107), expect=None, unsure=True)
    return p


SEEDS_MUTANTS4 = [dirty_memfd_at_a_1m_boundary_is_mapped_with_2k_pages,
                  dirty_anon_thp_at_a_1m_boundary_is_mapped_huge]
