"""Seed programs for rules of the model that mutants survived (bench/bench_oracle.py,
issue 11, session 7: the sample ordered by each mutant's identity). Expected values from
the 6.12.117 source and the VM.
"""

from __future__ import annotations

import errno as E

from fuzz import uapi
from fuzz.prog import Buffer, pattern_bytes

from .dsl import FIXED_RW, MOCK_APERTURE_START, PAGE, Prog, dirty_hwpt

M16 = MOCK_APERTURE_START
MOCK_PAGE = PAGE // 2
ENABLE = uapi.IOMMU_HWPT_DIRTY_TRACKING_ENABLE


def dirty_bits_go_with_an_unmapped_area_and_stay_in_its_neighbour() -> Prog:
    # two 4K areas side by side, their four 2K entries dirty; unmapping the first
    # (mock_domain_unmap_pages erases its entries, dirty flag and all) leaves the
    # second's two bits, which the next read reports: the model drops only the
    # unmapped area's slots (mock.discard_dirty, by slot when the area has fewer
    # slots than are dirty)
    p = Prog("dirty_bits_go_with_an_unmapped_area_and_stay_in_its_neighbour",
             Buffer(2 * PAGE, "anon", 61), Buffer(PAGE, "anon", 62), Buffer(PAGE, "memfd", 0xFF))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    idev = p.ref(p.op("TEST_MOCK_DOMAIN", id=ioas), "out_idev_id")
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=PAGE, iova=M16, flags=FIXED_RW)
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0, PAGE), length=PAGE, iova=M16 + PAGE,
         flags=FIXED_RW)
    h = p.ref(p.op("HWPT_ALLOC", dev_id=idev, pt_id=ioas,
                   flags=uapi.IOMMU_HWPT_ALLOC_DIRTY_TRACKING), "out_hwpt_id")
    p.op("HWPT_SET_DIRTY_TRACKING", hwpt_id=h, flags=ENABLE)
    # byte 0 of the seed-0xFF pattern is 0xff: all four entries
    p.op("TEST_DIRTY", id=h, iova=M16, length=2 * PAGE, page_size=MOCK_PAGE, uptr=p.buf(2),
         out={"out_nr_dirty": 4})
    p.op("IOAS_UNMAP", ioas_id=ioas, iova=M16, length=PAGE, out={"length": PAGE})
    orig = pattern_bytes(62, 0, 8)
    p.op("HWPT_GET_DIRTY_BITMAP", hwpt_id=h, iova=M16 + PAGE, length=PAGE, page_size=MOCK_PAGE,
         data=p.buf(1), out={"bitmap": bytes([orig[0] | 3]) + orig[1:]})
    # cleared by that read
    p.op("HWPT_GET_DIRTY_BITMAP", hwpt_id=h, iova=M16 + PAGE, length=PAGE, page_size=MOCK_PAGE,
         data=p.buf(1), out={"bitmap": bytes([orig[0] | 3]) + orig[1:]})
    p.op("TEST_DIRTY", id=h, iova=M16 + PAGE, length=PAGE, page_size=MOCK_PAGE, uptr=p.buf(2),
         out={"out_nr_dirty": 2})
    return p


def invalidate_takes_entry_num_max_entries() -> Prog:
    # entry_num may be IOMMU_HWPT_INVALIDATE_ENTRY_NUM_MAX (1 << 19) itself
    # (hw_pagetable.c: EINVAL only above it): the driver then reads the first entry,
    # whose flags (pattern bytes) it does not know: EOPNOTSUPP with 0 entries handled
    p = Prog("invalidate_takes_entry_num_max_entries", Buffer(PAGE, "readonly", 44))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    idev = p.ref(p.op("TEST_MOCK_DOMAIN", id=ioas), "out_idev_id")
    parent = p.ref(p.op("HWPT_ALLOC", dev_id=idev, pt_id=ioas,
                        flags=uapi.IOMMU_HWPT_ALLOC_NEST_PARENT), "out_hwpt_id")
    nested = p.ref(p.op("HWPT_ALLOC", dev_id=idev, pt_id=parent,
                        data_type=uapi.IOMMU_HWPT_DATA_SELFTEST, data_len=4,
                        iotlb=uapi.IOMMU_TEST_IOTLB_DEFAULT), "out_hwpt_id")
    inv = uapi.IOMMU_HWPT_INVALIDATE_DATA_SELFTEST
    p.op("HWPT_INVALIDATE", hwpt_id=nested, data_type=inv, data_uptr=p.buf(0),
         entry_num=1 << 19, expect=E.EOPNOTSUPP, out={"entry_num": 0})
    p.op("HWPT_INVALIDATE", hwpt_id=nested, data_type=inv, data_uptr=p.buf(0),
         entry_num=(1 << 19) + 1, expect=E.EINVAL, out={"entry_num": 0})
    return p


def dirty_bitmaps_that_end_at_a_hole() -> Prog:
    # both bitmaps of 64 2K pages (8 bytes) end where a hole begins: TEST_DIRTY reads
    # exactly its 8 bytes (iommufd_test_dirty: DIV_ROUND_UP(nbits, 8)), and
    # GET_DIRTY_BITMAP's iova_bitmap maps exactly mapped_total_index = 8 bytes
    # ((length - 1) >> pgshift) / 8 + 1): neither touches the unmapped page after
    p = Prog("dirty_bitmaps_that_end_at_a_hole", Buffer(32 * PAGE, "anon", 63),
             Buffer(2 * PAGE, "anon", 64, holes=[(PAGE, PAGE)]),
             Buffer(2 * PAGE, "memfd", 0xFF, holes=[(PAGE, PAGE)]))
    _, _, h = dirty_hwpt(p, 32 * PAGE)
    p.op("HWPT_SET_DIRTY_TRACKING", hwpt_id=h, flags=ENABLE)
    marks = pattern_bytes(0xFF, PAGE - 8, 8)
    p.op("TEST_DIRTY", id=h, iova=M16, length=32 * PAGE, page_size=MOCK_PAGE,
         uptr=p.buf(2, PAGE - 8), out={"out_nr_dirty": sum(bin(b).count("1") for b in marks)})
    orig = pattern_bytes(64, PAGE - 8, 8)
    p.op("HWPT_GET_DIRTY_BITMAP", hwpt_id=h, iova=M16, length=32 * PAGE, page_size=MOCK_PAGE,
         data=p.buf(1, PAGE - 8), out={"bitmap": bytes(a | b for a, b in zip(orig, marks))})
    return p


SEEDS_MUTANTS5 = [dirty_bits_go_with_an_unmapped_area_and_stay_in_its_neighbour,
                  invalidate_takes_entry_num_max_entries, dirty_bitmaps_that_end_at_a_hole]
