"""io_pagetable.c / pages.c: the IOVA -> user memory map of one IOAS.

IoPagetable keeps its areas as a sorted list (bisect), its reserved and allowed
ranges as small lists, the domains attached (one per HWPT, in the order of the
kernel's iopt->domains xarray) and the accesses attached.

Pages (struct iopt_pages) is a linear slice of user VA shared by the areas that
were mapped from it or copied/split out of it. A page index of a Pages is pinned
exactly once while any area with a storage domain or any access covers it; the
model derives the pinned set from those intervals instead of counting pins, and
checks the user memory of every index that a fill would newly pin (EFAULT).

All domains of an IOAS hold the same mapping (every area is filled into every
domain), so a mock domain's page table is the set of areas of its IOAS.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from typing import TYPE_CHECKING

from fuzz.model.consts import (
    EADDRINUSE,
    EBUSY,
    EEXIST,
    EINVAL,
    ENOENT,
    ENOMEM,
    ENOSPC,
    EOVERFLOW,
    EPERM,
    HPAGE_SIZE,
    IOMMU_WRITE,
    IOPT_PAGES_ACCOUNT_NONE,
    KMALLOC_MAX_SIZE,
    MOCK_APERTURE_LAST,
    MOCK_APERTURE_START,
    MOCK_IO_PAGE_SIZE,
    PAGE_SIZE,
    SIZE_MAX,
    ULONG_MAX,
)
from fuzz.model.errors import KernelError, Unsure
from fuzz.model.gup import pin_range

if TYPE_CHECKING:
    from fuzz.model.memory import UserMemory


def merge_spans(intervals, first: int, last: int) -> list[tuple[int, int]]:
    """interval_tree_span_iter 'used' spans: the union of the intervals that
    intersect [first, last], overlapping or adjacent ones merged, clipped."""
    ivs = sorted((s, e) for s, e in intervals if e >= first and s <= last)
    out: list[list[int]] = []
    for s, e in ivs:
        if out and (out[-1][1] >= s or out[-1][1] + 1 == s):
            if e > out[-1][1]:
                out[-1][1] = e
        else:
            out.append([s, e])
    res = []
    for s, e in out:
        res.append((max(s, first), min(e, last)))
    return res


def hole_spans(intervals, first: int, last: int) -> list[tuple[int, int]]:
    """interval_tree_span_iter 'hole' spans of [first, last]."""
    holes = []
    pos = first
    for s, e in merge_spans(intervals, first, last):
        if s > pos:
            holes.append((pos, s - 1))
        if e >= last:
            return holes
        pos = e + 1
    holes.append((pos, last))
    return holes


def pfn_reader_chunk(first_hole: int, limit: int) -> int:
    """The pages one pin_user_pages_fast call of a pfn_reader takes: its upages
    array is temp_kmalloc'ed once, for the first hole it pins (first_hole page
    pointers), cut to the temp memory limit; kmalloc above KMALLOC_MAX_SIZE fails
    and temp_kmalloc falls back to one page. (Smaller kmallocs are assumed to
    succeed: __GFP_NORETRY could fail them only under memory pressure.)"""
    size = min(first_hole * 8, limit)
    if size > KMALLOC_MAX_SIZE:
        size = PAGE_SIZE
    return max(size // 8, 1)


def roundup_pow_of_two(n: int) -> int:
    return 1 << (n - 1).bit_length()


def lowest_bit(n: int) -> int:
    return n & -n


class Pages:
    """struct iopt_pages."""

    __slots__ = ("uptr", "npages", "writable", "areas", "accesses", "serial", "account")
    _serial = 0

    def __init__(self, uptr: int, npages: int, writable: bool) -> None:
        self.uptr = uptr  # PAGE_SIZE aligned
        self.npages = npages
        self.writable = writable
        self.areas: list[Area] = []
        self.accesses: dict[tuple[int, int], int] = {}  # (start_index, last_index) -> users
        Pages._serial += 1
        self.serial = Pages._serial
        # IOPT_PAGES_ACCOUNT_*: set by UserMemory.new_pages
        self.account = IOPT_PAGES_ACCOUNT_NONE

    def pinned_intervals(self, exclude: Area | None = None) -> list[tuple[int, int]]:
        ivs = [(a.index, a.last_index) for a in self.areas if a.storage and a is not exclude]
        ivs.extend(self.accesses)
        return ivs

    def npinned(self) -> int:
        """pages->npinned between ops (== last_npinned): the indexes held."""
        return sum(e - s + 1 for s, e in merge_spans(self.pinned_intervals(), 0, self.npages - 1))

    def check_pin(self, mem: UserMemory, start: int, last: int,
                  exclude: Area | None = None, reader: bool = True,
                  account: bool = True) -> None:
        """Pin indexes [start, last]: those not held by a domain or an access (the
        holes of access_itree + domains_itree, in order) are pinned with
        pin_user_pages_fast(FOLL_LONGTERM | FOLL_WRITE if writable); the first
        call that pins nothing fails the whole fill (undone) with its errno.
        reader: a pfn_reader (domain fills, the slow rw path) pins in calls of at
        most pfn_reader_chunk pages; else (iopt_pages_fill_xarray, accesses) each
        hole in one call."""
        holes = hole_spans(self.pinned_intervals(exclude), start, last)
        if not holes:
            return
        chunk = pfn_reader_chunk(holes[0][1] - holes[0][0] + 1, mem.temp_memory_limit) \
            if reader else 1 << 64
        for hs, hl in holes:
            rc = pin_range(mem, self.uptr + hs * PAGE_SIZE, hl - hs + 1, self.writable, chunk)
            if rc:
                raise KernelError(rc)
        # then the fill's update_pinned charges what it newly pinned (the slow rw path
        # unpins it all again before: nothing is charged)
        if account and self.account != IOPT_PAGES_ACCOUNT_NONE:
            newly = sum(hl - hs + 1 for hs, hl in holes)
            if mem.locked_vm(self.account) + newly > mem.memlock_pages:
                raise KernelError(ENOMEM)


class Area:
    """struct iopt_area: [iova, last] -> pages bytes [start_byte, start_byte+len)."""

    __slots__ = ("iopt", "iova", "last", "pages", "start_byte", "prot", "num_accesses",
                 "prevent_access", "storage")

    def __init__(self, iopt: IoPagetable, iova: int, last: int, pages: Pages, start_byte: int,
                 prot: int) -> None:
        self.iopt = iopt
        self.iova = iova
        self.last = last
        self.pages = pages
        self.start_byte = start_byte
        self.prot = prot
        self.num_accesses = 0
        self.prevent_access = False
        self.storage = False  # area->storage_domain != NULL

    @property
    def length(self) -> int:
        return self.last - self.iova + 1

    @property
    def page_offset(self) -> int:
        return self.start_byte % PAGE_SIZE

    @property
    def index(self) -> int:
        return self.start_byte // PAGE_SIZE

    @property
    def last_index(self) -> int:
        return (self.start_byte + self.length - 1) // PAGE_SIZE

    def start_byte_of(self, iova: int) -> int:
        return iova - self.iova + self.start_byte

    def index_of(self, iova: int) -> int:
        return self.start_byte_of(iova) // PAGE_SIZE

    def uaddr(self, iova: int) -> int:
        """The user address whose page the domain maps at iova."""
        return self.pages.uptr + self.start_byte_of(iova)


class IoPagetable:
    """struct io_pagetable."""

    # In a race group (fuzz.model.races.meeting_failed_maps): the areas of maps that
    # failed after inserting them, which a racing automatic IOVA may have met
    failed_spans: tuple[tuple[int, int], ...] = ()
    meet_failed = False

    def __init__(self, mem: UserMemory) -> None:
        self.mem = mem
        self.owner = None  # the Ioas
        self.seen: list[tuple[int, int]] = []  # user [start, end) of every area it had
        self.areas: list[Area] = []
        self.starts: list[int] = []
        self.reserved: list[tuple[int, int, object]] = []  # (start, last, owner)
        self.allowed: list[tuple[int, int]] = []
        self.domains: list = []  # HwPagetable objects, in iopt->domains index order
        self.access_list: dict[int, object] = {}  # iopt_access_list_id -> Access
        self.disable_large_pages = False
        self.iova_alignment = 1

    # -- area tree ------------------------------------------------------------
    def area_iter_first(self, start: int, last: int) -> Area | None:
        i = bisect_right(self.starts, start) - 1
        if i >= 0 and self.areas[i].last >= start:
            return self.areas[i]
        i += 1
        if i < len(self.areas) and self.areas[i].iova <= last:
            return self.areas[i]
        return None

    def area_iter_next(self, area: Area, start: int, last: int) -> Area | None:
        i = bisect_right(self.starts, area.iova)
        if i < len(self.areas):
            nxt = self.areas[i]
            if nxt.iova <= last and nxt.last >= start:
                return nxt
        return None

    def insert_area(self, area: Area) -> None:
        u = area.pages.uptr + area.start_byte
        self.seen.append((u, u + area.length))
        i = bisect_right(self.starts, area.iova)
        self.starts.insert(i, area.iova)
        self.areas.insert(i, area)

    def remove_area(self, area: Area) -> None:
        i = bisect_right(self.starts, area.iova) - 1
        assert self.areas[i] is area
        del self.starts[i]
        del self.areas[i]

    def contig(self, iova: int, last_iova: int):
        """iopt_for_each_contig_area: yields (area, cur_iova); .done tells whether
        the areas covered [iova, last_iova] without a gap."""
        return ContigIter(self, iova, last_iova)

    # -- reserved / allowed ---------------------------------------------------
    def reserved_intersects(self, start: int, last: int) -> bool:
        return any(s <= last and e >= start for s, e, _ in self.reserved)

    def allowed_intersects(self, start: int, last: int) -> bool:
        return any(s <= last and e >= start for s, e in self.allowed)

    def reserve_iova(self, start: int, last: int, owner: object) -> None:
        if self.area_iter_first(start, last) or self.allowed_intersects(start, last):
            raise KernelError(EADDRINUSE)
        self.reserved.append((start, last, owner))

    def remove_reserved(self, owner: object) -> None:
        self.reserved = [r for r in self.reserved if r[2] is not owner]

    def iova_ranges(self) -> list[tuple[int, int]]:
        return hole_spans([(s, e) for s, e, _ in self.reserved], 0, ULONG_MAX)

    # -- iova allocation ------------------------------------------------------
    @staticmethod
    def _check_range(start: int, last: int, length: int, align: int, page_offset: int):
        """__alloc_iova_check_range: ALIGN_UP (refused if it overflows), then the
        page offset of the user address OR-ed in; the span must hold length."""
        aligned = start + align - 1
        if aligned > ULONG_MAX:
            return None
        aligned &= ~(align - 1)
        aligned |= page_offset
        if aligned >= last or last - aligned < length - 1:
            return None
        return aligned

    def alloc_alignment(self, uptr: int, length: int) -> int:
        """iopt_alloc_iova's alignment: roundup_pow_of_two(length), lowered to the
        lowest set bit of the user address (so a THP can map whole), at most
        HPAGE_SIZE (CONFIG_TRANSPARENT_HUGEPAGE=y), and never below the IOAS's."""
        if length == 0 or length >= ULONG_MAX // 2:
            raise KernelError(EOVERFLOW)
        if not uptr:
            align = roundup_pow_of_two(length)
        else:
            align = min(roundup_pow_of_two(length), lowest_bit(uptr))
        if align >= HPAGE_SIZE:
            align = HPAGE_SIZE
        if align < self.iova_alignment:
            raise KernelError(EINVAL)
        return align

    def allowed_spans(self) -> list[tuple[int, int]]:
        """The 'used' spans of interval_tree_for_each_span over allowed_itree in
        [PAGE_SIZE, ULONG_MAX - PAGE_SIZE] (overlapping or adjacent ranges merged,
        clipped), or that whole window when no range is allowed."""
        lo, hi = PAGE_SIZE, ULONG_MAX - PAGE_SIZE
        if not self.allowed:
            return [(lo, hi)]
        return merge_spans(self.allowed, lo, hi)

    def alloc_iova(self, uptr: int, length: int) -> int:
        """iopt_alloc_iova, computed as the kernel computes it (nothing is taken
        from the kernel's answer): for each allowed span in address order, its
        start aligned (and the span skipped if it cannot hold length), then the
        holes of reserved_itree + area_itree in [aligned start, span last] in
        address order (interval_tree_for_each_double_span: a hole ends where
        either tree is used); the first hole that holds the aligned length wins,
        at its aligned start. Never IOVA 0 (the window starts at PAGE_SIZE)."""
        page_offset = uptr % PAGE_SIZE
        align = self.alloc_alignment(uptr, length)
        used = [(s, e) for s, e, _ in self.reserved] + [(a.iova, a.last) for a in self.areas]
        if self.meet_failed:
            used += self.failed_spans
        for s, e in self.allowed_spans():
            s2 = self._check_range(s, e, length, align, page_offset)
            if s2 is None:
                continue
            for hs, he in hole_spans(used, s2, e):
                got = self._check_range(hs, he, length, align, page_offset)
                if got is not None:
                    return got
        raise KernelError(ENOSPC)

    def check_iova(self, iova: int, length: int) -> None:
        if iova & (self.iova_alignment - 1):
            raise KernelError(EINVAL)
        if iova + length - 1 > ULONG_MAX:
            raise KernelError(EOVERFLOW)
        last = iova + length - 1
        if self.reserved_intersects(iova, last):
            raise KernelError(EINVAL)
        if self.area_iter_first(iova, last):
            raise KernelError(EEXIST)

    # -- map ------------------------------------------------------------------
    def map_pages(self, elms: list[tuple[Pages, int, int]], length: int, iova: int, prot: int,
                  alloc: bool) -> tuple[int, list[Area]]:
        """iopt_map_pages: elms are (pages, start_byte, length). Returns the IOVA:
        the given one, or (alloc) the one iopt_alloc_iova picks for the user
        address of the first element (IOAS_COPY: where the source area's bytes
        start), which is compared with the kernel's exactly."""
        if (length & (self.iova_alignment - 1)) or not length:
            raise KernelError(EINVAL)
        if alloc:
            pages0, sb0, _ = elms[0]
            uptr = (pages0.uptr + sb0) & ULONG_MAX
            iova = self.alloc_iova(uptr, length)
        else:
            self.check_iova(iova, length)
        new: list[Area] = []
        cur = iova
        for pages, start_byte, ln in elms:
            if (prot & IOMMU_WRITE) and not pages.writable:
                raise KernelError(EPERM)
            if (start_byte % PAGE_SIZE) & (self.iova_alignment - 1):
                raise KernelError(EINVAL)
            if cur + ln - 1 > ULONG_MAX:
                raise KernelError(EOVERFLOW)
            new.append(Area(self, cur, cur + ln - 1, pages, start_byte, prot))
            cur += ln
        # iopt_fill_domains_pages: each new area is filled into every domain in turn;
        # a later one sees the pins of the earlier ones, a failure undoes them all.
        if self.domains:
            done: list[Area] = []
            try:
                for a in new:
                    a.pages.check_pin(self.mem, a.index, a.last_index)
                    a.storage = True
                    a.pages.areas.append(a)
                    done.append(a)
            except KernelError:
                for a in done:
                    a.storage = False
                    a.pages.areas.remove(a)
                # the areas were in the tree from iopt_alloc_area_pages until
                # iopt_map_user_pages aborted them (io_pagetable.c:369-375, 437)
                self.failed_spans = (*self.failed_spans, (iova, iova + length - 1))
                raise
            for a in new:
                self.insert_area(a)
        else:
            for a in new:
                a.pages.areas.append(a)
                self.insert_area(a)
        return iova, new

    def get_pages(self, iova: int, length: int) -> list[tuple[Pages, int, int]]:
        """iopt_get_pages for IOAS_COPY."""
        if not length:
            raise KernelError(EINVAL)
        last_iova = iova + length - 1
        if last_iova > ULONG_MAX:
            raise KernelError(EOVERFLOW)
        it = self.contig(iova, last_iova)
        elms = []
        for area, cur in it:
            last = min(last_iova, area.last)
            elms.append((area.pages, area.start_byte_of(cur), last - cur + 1))
        if not it.done:
            raise KernelError(ENOENT)
        return elms

    # -- unmap ----------------------------------------------------------------
    def destroy_area(self, area: Area) -> None:
        """The area's pages leave every domain, and with them their dirty bits."""
        self.remove_area(area)
        area.pages.areas.remove(area)
        area.storage = False
        for d in self.domains:
            if d.dirty:
                from fuzz.model.mock import discard_dirty
                discard_dirty(d, area.iova, area.last)

    def unmap_range(self, start: int, last: int,
                    notify: Callable[[IoPagetable, int, int], None]) -> tuple[int, int]:
        """iopt_unmap_iova_range: returns (errno, unmapped bytes). Areas before a
        partially covered one are already gone when it fails with ENOENT."""
        unmapped = 0
        while True:
            area = self.area_iter_first(start, last)
            if area is None:
                return 0, unmapped
            if area.iova < start or area.last > last:
                return ENOENT, unmapped
            if area.num_accesses:
                start = area.iova
                area.prevent_access = True
                notify(self, area.iova, area.length)
                if area.num_accesses:
                    raise Unsure("an access did not release its pins on unmap: the kernel "
                                 "retries 100 times, WARNs and fails with EDEADLOCK")
                continue
            self.destroy_area(area)
            unmapped += area.last - area.iova + 1
            if area.last >= last:
                return 0, unmapped
            start = area.last + 1

    # -- alignment --------------------------------------------------------------
    def check_iova_alignment(self, new_align: int) -> None:
        mask = new_align - 1
        for a in self.areas:
            if (a.iova & mask) or (a.length & mask) or (a.page_offset & mask):
                raise KernelError(EADDRINUSE)
        for acc in self.access_list.values():
            if acc.iova_alignment > new_align:
                raise Unsure("iopt_check_iova_alignment WARNs on an access alignment")

    def calculate_iova_alignment(self) -> None:
        new = PAGE_SIZE if self.disable_large_pages else 1
        for _d in self.domains:
            new = max(new, MOCK_IO_PAGE_SIZE)
        for acc in self.access_list.values():
            new = max(new, acc.iova_alignment)
        if new > self.iova_alignment:
            self.check_iova_alignment(new)
        self.iova_alignment = new

    # -- domains ----------------------------------------------------------------
    def add_domain(self, hwpt) -> None:
        """iopt_table_add_domain for a mock domain: pgsize 2K (plus 1M for
        HUGE_IOVA, which does not change the alignment), aperture [16M, 2G-1]."""
        new_align = max(MOCK_IO_PAGE_SIZE, self.iova_alignment)
        if new_align > PAGE_SIZE:
            raise KernelError(EINVAL)
        if new_align != self.iova_alignment:
            self.check_iova_alignment(new_align)
        try:
            self.reserve_iova(0, MOCK_APERTURE_START - 1, hwpt)
            self.reserve_iova(MOCK_APERTURE_LAST + 1, ULONG_MAX, hwpt)
            if not self.domains:
                self.fill_first_domain()
        except KernelError:
            self.remove_reserved(hwpt)
            raise
        self.iova_alignment = new_align
        self.domains.append(hwpt)

    def fill_first_domain(self) -> None:
        """iopt_fill_domain with no domain yet: every area is pinned in iova
        order; on failure the areas done so far are unfilled again."""
        done = []
        try:
            for a in self.areas:
                a.pages.check_pin(self.mem, a.index, a.last_index, exclude=a)
                a.storage = True
                done.append(a)
        except KernelError:
            for a in done:
                a.storage = False
            raise

    def remove_domain(self, hwpt) -> None:
        """iopt_table_remove_domain: the tail entry moves into the hole."""
        idx = self.domains.index(hwpt)
        tail = self.domains.pop()
        if tail is not hwpt:
            self.domains[idx] = tail
        if not self.domains:
            for a in self.areas:
                a.storage = False
        self.remove_reserved(hwpt)
        self.calculate_iova_alignment()

    # -- huge pages / vfio type1 ------------------------------------------------
    def enable_large_pages(self) -> None:
        self.disable_large_pages = False
        self.calculate_iova_alignment()

    def disable_large_pages_op(self) -> None:
        if self.disable_large_pages:
            return
        if self.domains and self.areas:
            raise KernelError(EINVAL)
        self.disable_large_pages = True
        try:
            self.calculate_iova_alignment()
        except KernelError:
            self.disable_large_pages = False
            raise

    def split(self, area: Area, iova: int) -> None:
        """iopt_area_split: iova becomes the last of the left part."""
        if iova == area.iova or iova == area.last:
            return
        if area.prevent_access:
            raise KernelError(EBUSY)
        new_start = iova + 1
        mask = self.iova_alignment - 1
        if (new_start & mask) or (area.start_byte_of(new_start) & mask):
            raise KernelError(EINVAL)
        if area.num_accesses:
            raise KernelError(EINVAL)
        if area.storage and not self.disable_large_pages:
            raise KernelError(EINVAL)
        lhs = Area(self, area.iova, iova, area.pages, area.start_byte, area.prot)
        rhs = Area(self, new_start, area.last, area.pages, area.start_byte_of(new_start),
                   area.prot)
        lhs.storage = rhs.storage = area.storage
        self.remove_area(area)
        pages = area.pages
        pages.areas.remove(area)
        pages.areas.extend((lhs, rhs))
        self.insert_area(lhs)
        self.insert_area(rhs)

    def cut_iova(self, iovas: list[int]) -> None:
        for iova in iovas:
            area = self.area_iter_first(iova, iova)
            if area is None:
                continue
            self.split(area, iova)

    # -- accesses -----------------------------------------------------------------
    def add_access(self, access) -> int:
        new_id = 0
        while new_id in self.access_list:
            new_id += 1
        self.access_list[new_id] = access
        try:
            self.calculate_iova_alignment()
        except KernelError:
            del self.access_list[new_id]
            raise
        return new_id

    def remove_access(self, list_id: int) -> None:
        del self.access_list[list_id]
        self.calculate_iova_alignment()


class ContigIter:
    """iopt_area_contig_init/next: areas that cover [iova, last_iova] back to back."""

    def __init__(self, iopt: IoPagetable, iova: int, last_iova: int) -> None:
        self.iopt = iopt
        self.iova = iova
        self.last_iova = last_iova
        self.area: Area | None = None
        self.cur_iova = iova

    def __iter__(self):
        iopt = self.iopt
        self.cur_iova = self.iova
        area = iopt.area_iter_first(self.iova, self.iova)
        self.area = area
        while area is not None:
            yield area, self.cur_iova
            if self.last_iova <= area.last:
                return
            self.cur_iova = area.last + 1
            nxt = iopt.area_iter_next(area, self.cur_iova, self.last_iova)
            if nxt is None or nxt.iova != self.cur_iova:
                self.area = None
                return
            area = nxt
            self.area = area

    @property
    def done(self) -> bool:
        return self.area is not None and self.last_iova <= self.area.last


def alloc_pages(uptr: int, length: int, writable: bool) -> tuple[Pages, int]:
    """iopt_alloc_pages: returns the pages and the start_byte of uptr in them."""
    if length > SIZE_MAX - PAGE_SIZE or length == 0:
        raise KernelError(EINVAL)
    if uptr + length > ULONG_MAX:
        raise KernelError(EOVERFLOW)
    base = uptr & ~(PAGE_SIZE - 1)
    npages = (length + (uptr - base) + PAGE_SIZE - 1) // PAGE_SIZE
    return Pages(base, npages, writable), uptr - base
