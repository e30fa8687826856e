"""selftest.c's mock IOMMU driver below the iommufd core: domain allocation
(mock_domain_alloc_user), the dirty bits of a mock domain's page table and the
IOTLB of a nested mock domain.

A mock domain's xarray has one entry per 2K IOVA page (MOCK_IO_PAGE_SIZE) of every
area of its IOAS. An entry carries MOCK_PFN_HUGE_IOVA when iommu_map used a 1M page
for it, which needs a domain of a MOCK_FLAGS_DEVICE_HUGE_IOVA device, a 1M aligned
IOVA and a physically contiguous, 1M aligned run of pages in one pfn batch: the
model does not know physical addresses, so a dirty operation that may meet such an
entry is unsure. Everything else about dirty bits is exact.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fuzz.model.consts import (
    EINVAL,
    EOPNOTSUPP,
    IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
    IOMMU_HWPT_ALLOC_NEST_PARENT,
    IOMMU_HWPT_DATA_SELFTEST,
    IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR,
    MOCK_FLAGS_DEVICE_NO_DIRTY,
    MOCK_HUGE_PAGE_SIZE,
    MOCK_IO_PAGE_SIZE,
    PAGE_SIZE,
)
from fuzz.model.errors import KernelError, Unsure
from fuzz.model.objects import Device, HwPagetable

if TYPE_CHECKING:
    from fuzz.model.iopt import Area
    from fuzz.model.iova_bitmap import IovaBitmap

SLOT = MOCK_IO_PAGE_SIZE


def alloc_user_paging(idev: Device, flags: int, has_user_data: bool) -> None:
    """mock_domain_alloc_user without a parent."""
    if flags & ~(IOMMU_HWPT_ALLOC_NEST_PARENT | IOMMU_HWPT_ALLOC_DIRTY_TRACKING):
        raise KernelError(EOPNOTSUPP)
    if has_user_data or (flags & IOMMU_HWPT_ALLOC_DIRTY_TRACKING
                         and idev.dev_flags & MOCK_FLAGS_DEVICE_NO_DIRTY):
        raise KernelError(EOPNOTSUPP)


def alloc_user_nested(flags: int, data_type: int) -> None:
    """mock_domain_alloc_user with a parent, before it copies the user data (the
    parent is always a mock domain here)."""
    if data_type != IOMMU_HWPT_DATA_SELFTEST or flags:
        raise KernelError(EOPNOTSUPP)


# -- the page table -------------------------------------------------------------------
def mapped_slots(hwpt: HwPagetable, first: int, last: int) -> list[tuple[int, int]]:
    """The ranges [s, e] of 2K page indexes in [first, last] with an entry in the
    domain: the slots of the IOAS's areas."""
    iopt = hwpt.ioas.iopt
    out = []
    lo_iova, hi_iova = first * SLOT, last * SLOT + SLOT - 1
    area = iopt.area_iter_first(lo_iova, hi_iova)
    while area is not None:
        s = max(first, area.iova // SLOT)
        e = min(last, area.last // SLOT)
        if s <= e:
            out.append((s, e))
        area = iopt.area_iter_next(area, lo_iova, hi_iova)
    return out


def maybe_huge(hwpt: HwPagetable, first_iova: int, last_iova: int) -> bool:
    """Whether some entry in [first_iova, last_iova] may be a 1M (MOCK_HUGE_PAGE_SIZE)
    mapping: a 1M aligned 1M piece of an area there whose user address is page
    aligned (1M aligned for hugetlb, whose physical pages are 2M aligned)."""
    iopt = hwpt.ioas.iopt
    if not hwpt.huge_iova or iopt.disable_large_pages:
        return False
    area = iopt.area_iter_first(first_iova, last_iova)
    while area is not None:
        if _area_maybe_huge(area, hwpt):
            return True
        area = iopt.area_iter_next(area, first_iova, last_iova)
    return False


def _area_maybe_huge(area: Area, hwpt: HwPagetable) -> bool:
    x = -(-area.iova // MOCK_HUGE_PAGE_SIZE) * MOCK_HUGE_PAGE_SIZE
    region = hwpt.ioas.iopt.mem.region_at(area.pages.uptr)
    align = MOCK_HUGE_PAGE_SIZE if region is not None and region.kind == "hugetlb" else PAGE_SIZE
    while x + MOCK_HUGE_PAGE_SIZE - 1 <= area.last:
        if area.uaddr(x) % align == 0:
            return True
        x += MOCK_HUGE_PAGE_SIZE
    return False


def check_not_huge(hwpt: HwPagetable, first_iova: int, last_iova: int) -> None:
    if maybe_huge(hwpt, first_iova, last_iova):
        raise Unsure("the mock domain may map part of this range with 1M pages "
                     "(MOCK_PFN_HUGE_IOVA), which depends on physical addresses")


def discard_dirty(hwpt: HwPagetable, iova: int, last: int) -> None:
    """Entries unmapped from the domain take their dirty bits with them."""
    if not hwpt.dirty:
        return
    first, end = iova // SLOT, last // SLOT
    if end - first + 1 < len(hwpt.dirty):
        for s in range(first, end + 1):
            hwpt.dirty.discard(s)
    else:
        hwpt.dirty.difference_update([s for s in hwpt.dirty if first <= s <= end])


def set_dirty_tracking(hwpt: HwPagetable, enable: bool) -> None:
    """iopt_set_dirty_tracking: enabling first clears every dirty bit of every area
    (iopt_clear_dirty_data reads and clears with no bitmap, which the mock allows
    even while tracking is off), then mock_domain_set_dirty_tracking flips the flag."""
    if enable:
        hwpt.dirty.clear()
    hwpt.dirty_tracking = enable


def read_and_clear_dirty(hwpt: HwPagetable, iova: int, size: int, flags: int,
                         bitmap: IovaBitmap) -> int:
    """mock_domain_read_and_clear_dirty for one contiguous piece of the areas, with a
    user bitmap: -EINVAL (as a positive errno) while tracking is off, else every dirty
    entry is recorded (and cleared unless IOMMU_DIRTY_NO_CLEAR), in IOVA order."""
    if not hwpt.dirty_tracking:
        return EINVAL
    first, last = iova // SLOT, (iova + size - 1) // SLOT
    hits = sorted(s for s in hwpt.dirty if first <= s <= last) \
        if len(hwpt.dirty) < last - first + 1 else \
        [s for s in range(first, last + 1) if s in hwpt.dirty]
    for s in hits:
        if not flags & IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR:
            hwpt.dirty.discard(s)
        bitmap.set(s * SLOT, SLOT)
    return 0
