"""selftest.c's mock IOMMU driver below the iommufd core: domain allocation
(mock_domain_alloc_user), the dirty bits of a mock domain's page table and the
IOTLB of a nested mock domain.

A mock domain's xarray has one entry per 2K IOVA page (MOCK_IO_PAGE_SIZE) of every
area of its IOAS. An entry carries MOCK_PFN_HUGE_IOVA when iommu_map used a 1M page
for it, which needs a domain of a MOCK_FLAGS_DEVICE_HUGE_IOVA device, large pages
allowed (IOMMU_OPTION_HUGE_PAGES), a 1M aligned 1M piece of the area and a physically
contiguous run of pages behind it whose physical address has the IOVA's offset in a
1M page (iommu_pgsize). For hugetlb memory that is exact: a 2M page is contiguous
and 2M aligned, pfn batches only end where the pfns stop being contiguous
(batch_add_pfn, pfn_reader_next), so the piece is huge iff its user address is 1M
aligned. For other memory the model does not know physical addresses: a dirty read
that depends on such a piece is unsure. Everything else about dirty bits is exact.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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


HUGE = "huge"  # the 1M piece is mapped with one 1M page (MOCK_PFN_HUGE_IOVA)
SMALL = "small"  # 2K entries (or none: no area there)
MAYBE = "maybe"  # huge or not, depending on physical addresses the model does not know
HUGE_SLOTS = MOCK_HUGE_PAGE_SIZE // SLOT


def piece_state(hwpt: HwPagetable, area: Area, head: int) -> str:
    """Whether the 1M piece at `head` (1M aligned) of `area` is mapped huge in the
    domain of `hwpt`."""
    iopt = hwpt.ioas.iopt
    if not hwpt.huge_iova or iopt.disable_large_pages or head < area.iova \
            or head + MOCK_HUGE_PAGE_SIZE - 1 > area.last:
        return SMALL
    uaddr = area.uaddr(head)
    region = iopt.mem.region_at(uaddr)
    if region is not None and region.kind == "hugetlb" and not hwpt.large_pages_unknown:
        return HUGE if uaddr % MOCK_HUGE_PAGE_SIZE == 0 else SMALL
    return MAYBE if uaddr % PAGE_SIZE == 0 else SMALL


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
    even while tracking is off), then mock_domain_set_dirty_tracking flips the flag.
    Bits a race left unknown are known again: none."""
    if enable:
        hwpt.dirty.clear()
        hwpt.dirty_unknown = None
    hwpt.dirty_tracking = enable


def read_and_clear_dirty(hwpt: HwPagetable, area: Area, iova: int, size: int, flags: int,
                         bitmap: Any) -> int:
    """mock_domain_read_and_clear_dirty for one contiguous piece [iova, iova+size) of
    `area`, with a user bitmap: -EINVAL (as a positive errno) while tracking is off.
    Else, from iova on: no entry -> the next 2K; a 2K entry -> recorded (2K from
    iova) if dirty; a huge entry -> if any entry of its whole 1M page is dirty, all of
    them are cleared and 1M *from iova* is recorded (which runs past the range when it
    ends inside the huge page), and the walk goes on 1M further. Dirty bits are
    cleared unless IOMMU_DIRTY_NO_CLEAR. `bitmap` has set(iova, length)."""
    if not hwpt.dirty_tracking:
        return EINVAL
    end = iova + size
    no_clear = flags & IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR
    dirty = sorted(s for s in hwpt.dirty if area.iova // SLOT <= s <= area.last // SLOT)
    k = 0  # dirty[k] is the first dirty entry at or after pos
    pos = iova
    while pos < end:
        head = pos - pos % MOCK_HUGE_PAGE_SIZE
        state = piece_state(hwpt, area, head)
        while k < len(dirty) and dirty[k] * SLOT < pos:
            k += 1
        if state == SMALL:
            # every 2K entry up to the next 1M boundary: only the dirty ones matter
            stop = min(end, head + MOCK_HUGE_PAGE_SIZE)
            while k < len(dirty) and dirty[k] * SLOT < stop:
                s = dirty[k]
                if not no_clear:
                    hwpt.dirty.discard(s)
                bitmap.set(s * SLOT, SLOT)
                k += 1
            pos = stop
            continue
        slots = range(head // SLOT, head // SLOT + HUGE_SLOTS)
        hits = [s for s in dirty if s in slots] if len(dirty) < HUGE_SLOTS else \
            [s for s in slots if s in hwpt.dirty]
        if state == MAYBE:
            if hits or pos != head:
                raise Unsure("the mock domain may map this range with 1M pages "
                             "(MOCK_PFN_HUGE_IOVA), which depends on physical addresses")
            pos = head + MOCK_HUGE_PAGE_SIZE  # nothing dirty, and the walk ends up here
            continue
        if hits:
            if not no_clear:
                hwpt.dirty.difference_update(hits)
            bitmap.set(pos, MOCK_HUGE_PAGE_SIZE)
        pos += MOCK_HUGE_PAGE_SIZE
    return 0
