"""mm/gup.c as iommufd uses it: what get_user_pages_fast / pin_user_pages_fast
(gup_fast_fallback) and pin_user_pages_remote give for a range of user pages.

gup_fast_fallback(start, nr_pages) first rounds start down to its page, then
  - start + nr_pages * PAGE_SIZE overflows (the range reaches 2^64): EOVERFLOW,
  - the range ends above TASK_SIZE_MAX, or access_ok() refuses it: EFAULT,
  - else it pins page after page and returns how many it got before the first
    one that faults (unmapped, or read-only for FOLL_WRITE); none at all: EFAULT.
So the last page below 2^64 answers EOVERFLOW where every other kernel address
answers EFAULT, and a range's answer depends on where the caller cut it into
calls (pages.c: pfn_reader_user_pin, sized by the temp memory limit).

pin_user_pages_remote has no such range checks: a page without a VMA is EFAULT.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fuzz.model.consts import EFAULT, EOVERFLOW, PAGE_SIZE, U64
from fuzz.model.errors import Unsure
from fuzz.model.memory import TASK_SIZE_MAX

if TYPE_CHECKING:
    from fuzz.model.memory import UserMemory

PAGE_MASK = U64 & ~(PAGE_SIZE - 1)


def gup_fast(mem: UserMemory, start: int, npages: int, write: bool) -> int:
    """gup_fast_fallback: the number of pages got from start's page on (> 0), or
    -errno. Raises Unsure where the memory is not the model's to know."""
    start &= PAGE_MASK
    end = start + npages * PAGE_SIZE
    if end > U64:
        return -EOVERFLOW
    if end > TASK_SIZE_MAX:
        return -EFAULT
    try:
        bad = mem.first_bad(start, npages * PAGE_SIZE, write)
    except Unsure as e:
        if mem.kernel_ok is None:
            raise
        mem.assumed = mem.assumed or (
            f"{e.reason}: whether its pages can be pinned is taken from the kernel's errno")
        bad = mem.first_bad(start, npages * PAGE_SIZE, write, mem.kernel_ok)
    got = npages if bad is None else (bad - start) // PAGE_SIZE
    return got if got else -EFAULT


def get_user_page_fast(mem: UserMemory, addr: int) -> int:
    """get_user_pages_fast(addr, 1, 0): 0 when the page is there, else the errno."""
    got = gup_fast(mem, addr, 1, False)
    return 0 if got > 0 else -got


def pin_range(mem: UserMemory, start: int, npages: int, write: bool, chunk: int) -> int:
    """pin_user_pages_fast over npages pages from the page at start, in calls of
    at most `chunk` pages, each going on where the last one stopped (as
    pfn_reader_user_pin and iopt_pages_fill_from_mm do): 0 when all are pinned,
    else the errno of the first call that got none."""
    pos = start
    left = npages
    while left:
        got = gup_fast(mem, pos, min(left, chunk), write)
        if got < 0:
            return -got
        pos += got * PAGE_SIZE
        left -= got
    return 0
