"""Seed programs for rules of the model that mutants survived (bench/bench_oracle.py,
issue 11, session 5), found with bench/hunt_mutants.py. Expected values from the
6.12.117 source and the VM.
"""

from __future__ import annotations

from fuzz import uapi
from fuzz.prog import Buffer, Ref, pattern_bytes

from .dsl import MOCK_APERTURE_START, PAGE, Prog, dirty_hwpt

M16 = MOCK_APERTURE_START
HUGE_IOVA = uapi.MOCK_FLAGS_DEVICE_HUGE_IOVA
ENABLE = uapi.IOMMU_HWPT_DIRTY_TRACKING_ENABLE
MOCK_PAGE = PAGE // 2


def _one_dirty_2k_page(name: str, kind: str) -> tuple[Prog, Ref]:
    """A 2M buffer of `kind` mapped at the aperture's 1M boundary for a HUGE_IOVA mock
    device's dirty-tracking HWPT, tracking on, and its first 2K page marked dirty: the
    program and the HWPT, for the read of the bitmap that shows the IOPTEs' size."""
    p = Prog(name, Buffer(2 << 20, kind, 56), Buffer(PAGE, "anon", 57),
             Buffer(PAGE, "memfd", 0xFF))
    _, _, h = dirty_hwpt(p, 2 << 20, dev_flags=HUGE_IOVA)
    p.op("HWPT_SET_DIRTY_TRACKING", hwpt_id=h, flags=ENABLE)
    p.op("TEST_DIRTY", id=h, iova=M16, length=MOCK_PAGE, page_size=MOCK_PAGE, uptr=p.buf(2),
         out={"out_nr_dirty": 1})
    return p, h


def dirty_memfd_at_a_1m_boundary_is_mapped_with_2k_pages() -> Prog:
    # dirty_huge_iopte with a memfd buffer in place of the hugetlb one: shmem pages are
    # not physically contiguous (no THP for shmem), so a HUGE_IOVA device's domain maps
    # the 1M-aligned piece with 2K entries (mock_domain_map_pages gets no 1M run of
    # pfns) and one dirty 2K page is one bit. The model cannot know the physical pages
    # (mock.piece_state: MAYBE), so that read is the kernel's to decide
    p, h = _one_dirty_2k_page("dirty_memfd_at_a_1m_boundary_is_mapped_with_2k_pages", "memfd")
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
    p, h = _one_dirty_2k_page("dirty_anon_thp_at_a_1m_boundary_is_mapped_huge", "anon")
    p.op("HWPT_GET_DIRTY_BITMAP", hwpt_id=h, iova=M16, length=PAGE, page_size=MOCK_PAGE,
         data=p.buf(1, 107), expect=None, unsure=True)
    return p


SEEDS_MUTANTS4 = [dirty_memfd_at_a_1m_boundary_is_mapped_with_2k_pages,
                  dirty_anon_thp_at_a_1m_boundary_is_mapped_huge]
