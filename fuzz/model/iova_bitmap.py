"""iova_bitmap.c: the user bitmap of IOMMU_HWPT_GET_DIRTY_BITMAP, recorded into
directly (zero copy) through pages pinned lazily, as the kernel does it.

Bit B of the bitmap (B = (iova - bitmap iova) >> __ffs(page_size)) is bit B % 8 of
byte B / 8 at `data`. Nothing is ever cleared: the bytes the kernel does not set
bits in keep what the user had there. Pages are pinned (pin_user_pages_fast,
FOLL_WRITE) only when a bit has to be set, starting at the byte of that bit, at most
PAGE_SIZE / sizeof(struct page *) pages at a time; a bit whose page cannot be pinned
is silently not recorded (iova_bitmap_set returns nothing). Arithmetic is unsigned
long, as in the kernel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fuzz.model.consts import PAGE_SIZE, U64
from fuzz.model.errors import Unsure

if TYPE_CHECKING:
    from fuzz.model.memory import UserMemory

BITS_PER_PAGE = PAGE_SIZE * 8
PIN_MAX = PAGE_SIZE // 8  # struct page * per base page: the most pages one window pins


class IovaBitmap:
    def __init__(self, mem: UserMemory, iova: int, length: int, page_size: int,
                 data: int) -> None:
        self.mem = mem
        self.pgshift = (page_size & -page_size).bit_length() - 1  # __ffs(page_size)
        self.data = data
        self.iova = iova
        self.length = length
        self.total = (((length - 1) & U64) >> self.pgshift) // 8 + 1  # mapped_total_index
        self.base = 0  # mapped_base_index
        self.npages = 0
        self.m_iova = iova
        self.m_length = 0
        self.pgoff = 0

    def _index_to_offset(self, index: int) -> int:
        return ((index * 8) << self.pgshift) & U64

    def _pinned(self, addr: int, npages: int) -> int:
        """pin_user_pages_fast(addr, npages, FOLL_WRITE): pages pinned from the page of
        addr until the first one that cannot be."""
        page = addr & ~(PAGE_SIZE - 1)
        end = min(page + npages * PAGE_SIZE, U64 + 1)
        bad = self.mem.first_bad(page, end - page, True)
        if bad is None:
            return (end - page) // PAGE_SIZE
        return (bad - page) // PAGE_SIZE

    def _get(self) -> bool:
        """iova_bitmap_get."""
        npages = -(-(self.total - self.base) // PAGE_SIZE)
        addr = (self.data + self.base) & U64
        npages = min(npages + (1 if addr % PAGE_SIZE else 0), PIN_MAX)
        got = self._pinned(addr, npages)
        if got <= 0:
            return False
        self.npages = got
        self.m_iova = (self.iova + self._index_to_offset(self.base)) & U64
        self.pgoff = addr % PAGE_SIZE
        self.m_length = self._mapped_length()
        return True

    def _mapped_length(self) -> int:
        max_iova = (self.iova + self.length - 1) & U64
        nbytes = (self.npages << 12) - self.pgoff
        remaining = min(self.total - self.base, nbytes)
        remaining = self._index_to_offset(remaining)
        if (self.m_iova + remaining - 1) & U64 > max_iova:
            remaining = (remaining - (((self.m_iova + remaining - 1) & U64) - max_iova)) & U64
        return remaining

    def _mapped_range(self, iova: int, length: int) -> bool:
        return bool(self.npages) and iova >= self.m_iova and \
            ((iova + length - 1) & U64) <= ((self.m_iova + self.m_length - 1) & U64)

    def _advance_to(self, iova: int) -> bool:
        index = (((iova - self.iova) & U64) >> self.pgshift) // 8
        if index >= self.total:
            return False
        self.base = index
        self.npages = 0
        return self._get()

    def set(self, iova: int, length: int) -> None:
        """iova_bitmap_set."""
        while True:
            if not self._mapped_range(iova, length) and not self._advance_to(iova):
                return
            last_page_idx = self.npages - 1
            cur_bit = (((iova - self.m_iova) & U64) >> self.pgshift) + self.pgoff * 8
            last_bit = (((iova + length - 1 - self.m_iova) & U64) >> self.pgshift) + \
                self.pgoff * 8
            page0 = (self.data + self.base) & U64 & ~(PAGE_SIZE - 1)
            again = False
            while cur_bit <= last_bit:
                page_idx = cur_bit // BITS_PER_PAGE
                offset = cur_bit % BITS_PER_PAGE
                nbits = min(BITS_PER_PAGE - offset, last_bit - cur_bit + 1)
                if page_idx > last_page_idx:
                    left = ((last_bit - cur_bit + 1) << self.pgshift) & U64
                    iova = (iova + length - left) & U64
                    length = left
                    again = True
                    break
                self._set_bits(page0 + page_idx * PAGE_SIZE, offset, nbits)
                cur_bit += nbits
            if not again:
                return

    def _set_bits(self, page: int, offset: int, nbits: int) -> None:
        """bitmap_set on a pinned page: bits [offset, offset + nbits) of the page,
        little-endian within each byte."""
        first = offset // 8
        last = (offset + nbits - 1) // 8
        addr = page + first
        try:
            cur = bytearray(self.mem.read(addr, last - first + 1))
        except Unsure:
            # the page's contents are unknown; so are they after the bits are set
            self.mem.taint(addr, last - first + 1)
            return
        for bit in range(offset, offset + nbits):
            cur[bit // 8 - first] |= 1 << (bit % 8)
        self.mem.write(addr, bytes(cur))
