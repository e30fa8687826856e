"""selftest.c (and device.c's access API): the IOMMU_TEST_CMD ops - mock devices,
the probes of mock domains (MD_CHECK_MAP / MD_CHECK_REFS / MD_CHECK_IOTLB), dirty
bits marked by hand (TEST_DIRTY), faults raised by hand (TRIGGER_IOPF), the test
accesses (fd based) - and close(2) of an fd the program got."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fuzz.model import device, mock
from fuzz.model import fault as faults
from fuzz.model.consts import (
    ACCESS_MAX_LENGTH,
    EBADE,
    EBADF,
    EBADFD,
    EFAULT,
    EINVAL,
    EIO,
    ENOENT,
    ENOMEM,
    EOPNOTSUPP,
    EOVERFLOW,
    EPERM,
    IOMMU_READ,
    IOMMU_WRITE,
    MOCK_ACCESS_RW_SLOW_PATH,
    MOCK_ACCESS_RW_WRITE,
    MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES,
    MOCK_FLAGS_ACCESS_SYZ,
    MOCK_FLAGS_ACCESS_WRITE,
    MOCK_FLAGS_DEVICE_HUGE_IOVA,
    MOCK_FLAGS_DEVICE_NO_DIRTY,
    MOCK_IO_PAGE_SIZE,
    MOCK_NESTED_DOMAIN_IOTLB_ID_MAX,
    PAGE_SIZE,
    U64,
    ULONG_MAX,
)
from fuzz.model.errors import ALL, KernelError, Unsure
from fuzz.model.gup import get_user_page_fast
from fuzz.model.ioas import get_ioas, syz_conv_iova
from fuzz.model.iopt import Area, merge_spans
from fuzz.model.objects import (
    OBJ_HWPT_NESTED,
    OBJ_HWPT_PAGING,
    OBJ_IOAS,
    OBJ_SELFTEST,
    Access,
    AccessItem,
    Device,
    Fault,
    HwPagetable,
    SelftestObj,
)
from fuzz.prog.limits import CAPTURE_MAX, CAPTURE_ROOM

if TYPE_CHECKING:
    from fuzz.model.model import Args, Model

GUP_PIN_COUNTING_BIAS = 1024


# -- devices and domains -------------------------------------------------------------------
def selftest_destroy(m: Model, sobj: SelftestObj) -> None:
    """iommufd_selftest_destroy: detach, unbind, destroy the mock device."""
    idev = sobj.idev
    assert idev is not None
    device.detach(m, idev)
    m.objects.remove(idev)


def mock_domain(m: Model, a: Args) -> dict:
    sobj = SelftestObj()
    m.objects.alloc(sobj)
    dev_flags = a["dev_flags"] if m.op_name == "TEST_MOCK_DOMAIN_FLAGS" else 0
    if dev_flags & ~(MOCK_FLAGS_DEVICE_NO_DIRTY | MOCK_FLAGS_DEVICE_HUGE_IOVA):
        m.objects.remove(sobj)
        raise KernelError(EINVAL)
    idev = Device(dev_flags)
    m.objects.alloc(idev)
    m.objects.finalize(idev)
    try:
        pt_id = device.change_pt(m, idev, a["id"], replace=False)
    except KernelError:
        m.objects.remove(idev)
        m.objects.remove(sobj)
        raise
    sobj.idev = idev
    m.objects.finalize(sobj)
    return {"out_stdev_id": sobj.id, "out_hwpt_id": pt_id, "out_idev_id": idev.id}


def mock_domain_replace(m: Model, a: Args) -> dict:
    sobj = m.objects.get(a["id"], OBJ_SELFTEST)
    if sobj is None:
        raise KernelError(ENOENT)
    pt_id = device.change_pt(m, sobj.idev, a["pt_id"], replace=True)  # type: ignore[attr-defined]
    return {"pt_id": pt_id}


def add_reserved(m: Model, a: Args) -> dict:
    start = a["start"]
    length = a["length"]
    if not length:
        raise KernelError(EINVAL)
    if start + length - 1 > ULONG_MAX:
        raise KernelError(EOVERFLOW)
    ioas = get_ioas(m, a["id"])
    ioas.iopt.reserve_iova(start, start + length - 1, None)
    return {}


# -- oracle probes ---------------------------------------------------------------------
def md_check_map(m: Model, a: Args) -> dict:
    """iommufd_test_md_check_pa: every 2K IOVA page maps the page under uptr.
    A probe: it changes nothing, so its uncertainty does not poison later ops."""
    try:
        return _md_check_map(m, a)
    except Unsure as e:
        raise Unsure(e.reason, poisoned=False) from None


def _md_check_map(m: Model, a: Args) -> dict:
    iova = a["iova"]
    length = a["length"]
    uptr = a["uptr"]
    if iova % MOCK_IO_PAGE_SIZE or length % MOCK_IO_PAGE_SIZE or uptr % MOCK_IO_PAGE_SIZE \
            or uptr + length > U64:
        raise KernelError(EINVAL)
    hwpt = m.objects.get(a["id"], OBJ_HWPT_PAGING)
    if hwpt is None:
        raise KernelError(ENOENT)
    iopt = hwpt.ioas.iopt  # type: ignore[attr-defined]
    mem = m.mem
    while length:
        # get_user_pages_fast(uptr & PAGE_MASK, 1, 0) first (EOVERFLOW on the last
        # page below 2^64)
        page = uptr & ~(PAGE_SIZE - 1)
        rc = get_user_page_fast(mem, page)
        if rc:
            raise KernelError(rc)
        region = mem.region_at(page)
        area = iopt.area_iter_first(iova, iova) if iopt.domains else None
        if area is None or area.uaddr(iova) != uptr:
            raise KernelError(EINVAL)
        # both advance linearly: skip to the end of the area / mapped region (a page
        # outside the program's buffers, there by the kernel's errno: to its end)
        region_end = region.end if region is not None else page + PAGE_SIZE
        step = min(area.last - iova + 1, region_end - uptr, length)
        step -= step % MOCK_IO_PAGE_SIZE
        if step <= 0:
            step = MOCK_IO_PAGE_SIZE
        iova = (iova + step) & U64
        uptr += step
        length -= step
    return {}


def pin_counts(m: Model, start: int, end: int) -> list[tuple[int, int, int]]:
    """Pieces [s, e) of user VA in [start, end) with the number of pins on each
    page: one per iopt_pages whose pinned indexes cover it."""
    events: dict[int, int] = {}
    for pages in m.all_pages():
        for s, e in merge_spans(pages.pinned_intervals(), 0, ULONG_MAX):
            a0 = max(pages.uptr + s * PAGE_SIZE, start)
            a1 = min(pages.uptr + (e + 1) * PAGE_SIZE, end)
            if a0 < a1:
                events[a0] = events.get(a0, 0) + 1
                events[a1] = events.get(a1, 0) - 1
    points = sorted(set(events) | {start, end})
    out = []
    cnt = 0
    for i, p in enumerate(points[:-1]):
        cnt += events.get(p, 0)
        out.append((p, points[i + 1], cnt))
    return out


def md_check_refs(m: Model, a: Args) -> dict:
    """iommufd_test_md_check_refs: page_ref_count / GUP_PIN_COUNTING_BIAS == refs
    for each non-compound page (compound pages - hugetlb, THP - are skipped)."""
    try:
        return _md_check_refs(m, a)
    except Unsure as e:
        raise Unsure(e.reason, poisoned=False) from None


def _md_check_refs(m: Model, a: Args) -> dict:
    length = a["length"]
    uptr = a["uptr"]
    refs = a["refs"]
    if length % PAGE_SIZE or uptr % PAGE_SIZE or uptr + length > U64:
        raise KernelError(EINVAL)
    if not length:
        return {}
    why = m.pins_unknown(uptr, uptr + length)
    if why is not None:
        raise Unsure(f"pins of this range are not known: {why}", poisoned=False)
    mem = m.mem
    bad = mem.first_bad(uptr, length, False)
    end = bad if bad is not None else uptr + length
    for s, e, cnt in pin_counts(m, uptr, end):
        if cnt == refs:
            continue
        page = s
        while page < e:
            comp = mem.maybe_compound(page)
            if comp is True:  # a hugetlb region: skip all of it at once
                region = mem.region_at(page)
                page = min(e, region.end) if region is not None else page + PAGE_SIZE
                continue
            if comp is None:
                raise Unsure(f"page {page:#x} may be a transparent huge page, which "
                             "MD_CHECK_REFS skips", poisoned=False)
            raise KernelError(EIO)
    if bad is not None:
        raise KernelError(EFAULT)
    return {}


# -- accesses ---------------------------------------------------------------------------
def access_get(m: Model, fd: int) -> Access:
    """iommufd_access_get: fget() of a closed fd and an fd of another file type
    both give EBADFD, so a number that is not an open access fd is EBADFD -
    unless the model does not know the real fd numbers and one could match."""
    acc = m.fds.get(fd)
    if isinstance(acc, Access):
        return acc
    if acc is not None:
        raise KernelError(EBADFD)  # a fault fd: another file type
    if m.fds.numbers_unknown():
        raise Unsure("fd numbers of accesses are not known without the kernel's results; "
                     f"fd {fd} may be one of them")
    raise KernelError(EBADFD)


def add_access_area(m: Model, area: Area, index: int, last_index: int, write: bool) -> None:
    """iopt_area_add_access."""
    pages = area.pages
    if write and not pages.writable:
        raise KernelError(EPERM)
    key = (index, last_index)
    if key in pages.accesses:
        pages.accesses[key] += 1
    else:
        pages.check_pin(m.mem, index, last_index, reader=False)
        pages.accesses[key] = 1
    area.num_accesses += 1


def remove_access_area(area: Area, index: int, last_index: int) -> None:
    pages = area.pages
    key = (index, last_index)
    if key not in pages.accesses:
        raise Unsure("iopt_area_remove_access WARNs: no such access")
    area.num_accesses -= 1
    pages.accesses[key] -= 1
    if not pages.accesses[key]:
        del pages.accesses[key]


def access_unpin_pages(m: Model, acc: Access, iova: int, length: int) -> None:
    if acc.ioas is None:
        raise Unsure("iommufd_access_unpin_pages WARNs: access is detached")
    last_iova = iova + length - 1
    it = acc.ioas.iopt.contig(iova, last_iova)
    for area, cur in it:
        remove_access_area(area, area.index_of(cur), area.index_of(min(last_iova, area.last)))
    if not it.done:
        raise Unsure("iommufd_access_unpin_pages WARNs: the pinned areas changed")


def access_unmap(m: Model, acc: Access, iova: int, length: int) -> None:
    """iommufd_test_access_unmap: unpin every item that intersects the range."""
    iova_last = (iova + length - 1) & U64
    for item in list(acc.items):
        if iova > item.iova + item.length - 1 or iova_last < item.iova:
            continue
        acc.items.remove(item)
        access_unpin_pages(m, acc, item.iova, item.length)


def create_access(m: Model, a: Args) -> dict:
    flags = a["flags"]
    if flags & ~MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES:
        raise KernelError(EOPNOTSUPP)
    acc = Access(bool(flags & MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES))
    m.objects.alloc(acc)
    m.objects.finalize(acc)
    ioas = m.objects.get(a["id"], OBJ_IOAS)
    if ioas is None:
        m.objects.remove(acc)
        raise KernelError(ENOENT)
    try:
        acc.list_id = ioas.iopt.add_access(acc)  # type: ignore[attr-defined]
    except KernelError:
        m.objects.remove(acc)
        raise
    acc.ioas = ioas  # type: ignore[assignment]
    ioas.accesses.append(acc)  # type: ignore[attr-defined]
    acc.fd = m.alloc_fd(acc, "out_access_fd")
    return {"out_access_fd": acc.fd}


def detach_access(m: Model, acc: Access) -> None:
    """iommufd_access_change_ioas(access, NULL)."""
    ioas = acc.ioas
    if ioas is None:
        return
    access_unmap(m, acc, 0, ULONG_MAX)
    ioas.iopt.remove_access(acc.list_id)
    ioas.accesses.remove(acc)
    acc.ioas = None


def close(m: Model, a: Args) -> dict:
    """The executor's close_own_fd: close(2) only of an fd of its list (the access
    and fault fds the program got back, not closed yet); any other number - the
    console, the iommufd, the agent's own fds, a closed fd - is EBADF without a
    syscall."""
    fd = a["fd"]
    if not m.fds.is_own(fd):
        if m.fds.numbers_unknown():
            raise Unsure("fd numbers are not known without the kernel's results; "
                         f"fd {fd} may be one of the program's")
        raise KernelError(EBADF)
    obj = m.fds.get(fd)
    m.fds.close(fd)
    if isinstance(obj, Fault):
        faults.release(m, obj)
        return {}
    acc = obj
    assert isinstance(acc, Access)
    # iommufd_test_staccess_release: unpin all items, then iommufd_access_destroy
    acc.open = False
    access_unmap(m, acc, 0, ULONG_MAX)
    detach_access(m, acc)
    m.objects.remove(acc)
    return {}


def access_replace_ioas(m: Model, a: Args) -> dict:
    acc = access_get(m, a["id"])
    if acc.ioas is None:
        raise KernelError(ENOENT)
    new = get_ioas(m, a["ioas_id"])
    if new is acc.ioas:
        return {}
    list_id = new.iopt.add_access(acc)
    old = acc.ioas
    access_unmap(m, acc, 0, ULONG_MAX)
    old.iopt.remove_access(acc.list_id)
    old.accesses.remove(acc)
    acc.ioas = new
    acc.list_id = list_id
    new.accesses.append(acc)
    return {}


def check_area_prot(area: Area, write: bool) -> bool:
    return bool(area.prot & (IOMMU_WRITE if write else IOMMU_READ))


def access_pin_pages(m: Model, acc: Access, iova: int, length: int, write: bool) -> list[int]:
    """iommufd_access_pin_pages; returns the user page address of each pinned page."""
    if not length:
        raise KernelError(EINVAL)
    last_iova = iova + length - 1
    if last_iova > ULONG_MAX:
        raise KernelError(EOVERFLOW)
    if acc.ioas is None:
        raise KernelError(ENOENT)
    iopt = acc.ioas.iopt
    it = iopt.contig(iova, last_iova)
    added: list[tuple[Area, int, int]] = []
    pages_out: list[int] = []
    try:
        for area, cur in it:
            last = min(last_iova, area.last)
            index = area.index_of(cur)
            last_index = area.index_of(last)
            aligned = area.start_byte_of(cur) % PAGE_SIZE == 0 and (
                last_iova <= area.last or area.start_byte_of(area.last) % PAGE_SIZE
                == PAGE_SIZE - 1)
            if area.prevent_access or not aligned:
                raise KernelError(EINVAL)
            if not check_area_prot(area, write):
                raise KernelError(EPERM)
            add_access_area(m, area, index, last_index, write)
            added.append((area, index, last_index))
            pages_out.extend(area.pages.uptr + i * PAGE_SIZE
                             for i in range(index, last_index + 1))
        if not it.done:
            raise KernelError(ENOENT)
    except KernelError:
        for area, index, last_index in added:
            remove_access_area(area, index, last_index)
        raise
    return pages_out


def access_pages(m: Model, a: Args) -> dict:
    length = a["length"]
    flags = a["flags"]
    if length > ACCESS_MAX_LENGTH:
        raise KernelError(ENOMEM)
    if flags & ~(MOCK_FLAGS_ACCESS_WRITE | MOCK_FLAGS_ACCESS_SYZ):
        raise KernelError(EOPNOTSUPP)
    acc = access_get(m, a["id"])
    if not acc.needs_pin:
        raise KernelError(EOPNOTSUPP)
    iova = a["iova"]
    if flags & MOCK_FLAGS_ACCESS_SYZ:
        iova = syz_conv_iova(acc.ioas, iova) if acc.ioas is not None else 0
    pinned = access_pin_pages(m, acc, iova, length, bool(flags & MOCK_FLAGS_ACCESS_WRITE))
    uptr = a["uptr"]
    if uptr:
        npages = (((iova + length + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1) & U64)
                  - (iova & ~(PAGE_SIZE - 1))) & U64
        npages //= PAGE_SIZE
        base = (uptr - (iova - (iova & ~(PAGE_SIZE - 1)))) & U64
        try:
            # iommufd_test_check_pages: get_user_pages_fast(uptr, 1, 0) page by page
            # (EOVERFLOW for the last page below 2^64, mm/gup.c), then the same page?
            for k in range(npages):
                page = ((base + k * PAGE_SIZE) & U64) & ~(PAGE_SIZE - 1)
                rc = get_user_page_fast(m.mem, page)
                if rc:
                    raise KernelError(rc)
                if k >= len(pinned) or pinned[k] != page:
                    raise KernelError(EBADE)
        except KernelError:
            access_unpin_pages(m, acc, iova, length)
            raise
    item = AccessItem(iova, length, acc.next_id)
    acc.next_id = (acc.next_id + 1) & 0xFFFFFFFF
    acc.items.append(item)
    return {"out_access_pages_id": item.id}


def destroy_access_pages(m: Model, a: Args) -> dict:
    acc = access_get(m, a["id"])
    want = a["access_pages_id"]
    for item in acc.items:
        if item.id == want:
            acc.items.remove(item)
            access_unpin_pages(m, acc, item.iova, item.length)
            return {}
    raise KernelError(ENOENT)


def _rw_segment(m: Model, area: Area, cur: int, nbytes: int, flags: int,
                data: bytes | None) -> bytes | None:
    """iopt_pages_rw_access over one area; returns the bytes read (read) or None. A
    write into pages the model does not know may go into the agent's own memory."""
    if not flags & MOCK_ACCESS_RW_WRITE:
        return _rw_pages(m, area, cur, nbytes, flags, data)
    try:
        return _rw_pages(m, area, cur, nbytes, flags, data)
    except Unsure as e:
        addr = area.pages.uptr + area.start_byte_of(cur)
        raise Unsure(e.reason, scope=ALL, write=(addr, nbytes)) from None


def _rw_pages(m: Model, area: Area, cur: int, nbytes: int, flags: int,
              data: bytes | None) -> bytes | None:
    pages = area.pages
    write = bool(flags & MOCK_ACCESS_RW_WRITE)
    if write and not pages.writable:
        raise KernelError(EPERM)
    sb = area.start_byte_of(cur)
    addr = pages.uptr + sb
    mem = m.mem
    if flags & MOCK_ACCESS_RW_SLOW_PATH:
        start_index = sb // PAGE_SIZE
        last_index = (sb + nbytes - 1) // PAGE_SIZE
        if start_index == last_index:
            # iopt_pages_rw_page: pin_user_pages_remote(FOLL_WRITE only for a write),
            # which has no range checks: a kernel address is just a page without a VMA
            if mem.first_bad(addr & ~(PAGE_SIZE - 1), 1, write) is not None:
                raise KernelError(EFAULT)
        else:
            # iopt_pages_rw_slow: the pfn_reader pins what no domain/access holds,
            # with FOLL_WRITE when the pages are writable (even for a read).
            try:
                pages.check_pin(mem, start_index, last_index, account=False)
            except KernelError:
                npages = last_index - start_index + 1
                if write and mem.temp_memory_limit < npages * 12:
                    # small temp memory batches: earlier batches were already written
                    mem.taint(addr, nbytes)
                raise
    else:
        bad = mem.first_bad(addr, nbytes, write)
        if bad is not None:
            if write and bad > addr:
                mem.taint(addr, bad - addr)
            raise KernelError(EFAULT)
    if write:
        assert data is not None
        mem.write(addr, data)
        return None
    return mem.read(addr, nbytes)


def access_rw(m: Model, a: Args) -> dict:
    length = a["length"]
    flags = a["flags"]
    if length > ACCESS_MAX_LENGTH:
        raise KernelError(ENOMEM)
    if flags & ~(MOCK_ACCESS_RW_WRITE | MOCK_ACCESS_RW_SLOW_PATH | MOCK_FLAGS_ACCESS_SYZ):
        raise KernelError(EOPNOTSUPP)
    acc = access_get(m, a["id"])
    ubuf = a["uptr"]
    write = bool(flags & MOCK_ACCESS_RW_WRITE)
    mem = m.mem
    tmp: bytes | None = None
    tmp_unknown = False
    if write:
        if mem.first_bad(ubuf, length, False) is not None:
            raise KernelError(EFAULT)
        try:
            tmp = mem.read(ubuf, length)
        except Unsure:
            tmp_unknown = True
            tmp = bytes(length)
    iova = a["iova"]
    if flags & MOCK_FLAGS_ACCESS_SYZ:
        iova = syz_conv_iova(acc.ioas, iova) if acc.ioas is not None else 0
    # iommufd_access_rw
    if not length:
        raise KernelError(EINVAL)
    last_iova = iova + length - 1
    if last_iova > ULONG_MAX:
        raise KernelError(EOVERFLOW)
    if acc.ioas is None:
        raise KernelError(ENOENT)
    it = acc.ioas.iopt.contig(iova, last_iova)
    chunks: list[bytes] = []
    read_unknown = False
    off = 0
    for area, cur in it:
        last = min(last_iova, area.last)
        nbytes = last - cur + 1
        if area.prevent_access:
            raise KernelError(EINVAL)
        if not check_area_prot(area, write):
            raise KernelError(EPERM)
        if write:
            assert tmp is not None
            _rw_segment(m, area, cur, nbytes, flags, tmp[off:off + nbytes])
            if tmp_unknown:
                mem.taint(area.uaddr(cur), nbytes)
        else:
            try:
                got = _rw_segment(m, area, cur, nbytes, flags, None)
            except Unsure as e:
                if e.poisoned:
                    raise
                read_unknown = True
                got = bytes(nbytes)
            assert got is not None
            chunks.append(got)
        off += nbytes
    if not it.done:
        raise KernelError(ENOENT)
    if not write:
        try:
            bad = mem.first_bad(ubuf, length, True)
        except Unsure as e:  # copy_to_user may write into the agent's own memory
            raise Unsure(e.reason, scope=ALL, write=(ubuf, length)) from None
        if bad is not None:
            if bad > ubuf:
                mem.taint(ubuf, bad - ubuf)
            raise KernelError(EFAULT)
        mem.write(ubuf, b"".join(chunks))
        if read_unknown:
            mem.taint(ubuf, length)
    # The executor captures min(length, 64K) bytes at uptr with process_vm_readv
    # into a per-program buffer of CAPTURE_ROOM bytes; a capture that does not fit
    # what is left, or that faults, captures nothing.
    n = min(length, CAPTURE_MAX)
    data = b""
    if n <= CAPTURE_ROOM - m.captured and mem.one_readable_buffer(ubuf, n):
        try:
            data = mem.read(ubuf, n)
        except Unsure as e:
            raise Unsure(str(e), poisoned=False) from None
        m.captured += n
    return {"data": data}


def set_temp_memory_limit(m: Model, a: Args) -> dict:
    limit = a["limit"]
    if limit < 8 + 4:  # sizeof(unsigned long) + sizeof(u32)
        raise KernelError(EINVAL)
    m.mem.temp_memory_limit = limit
    return {}


# -- dirty bits, nested IOTLBs and faults by hand ---------------------------------------------
def _get_md_pagetable(m: Model, hwpt_id: int) -> HwPagetable:
    """get_md_pagetable: a paging HWPT (every one is an UNMANAGED mock domain)."""
    hwpt = m.objects.get(hwpt_id, OBJ_HWPT_PAGING)
    if hwpt is None:
        raise KernelError(ENOENT)
    return hwpt  # type: ignore[return-value]


DIRTY_MAX_BITS = (16 << 20) * 8  # SZ_16M * BITS_PER_BYTE


def test_dirty(m: Model, a: Args) -> dict:
    """iommufd_test_dirty: for each set bit i of the user's bitmap the entry at
    xarray index (iova + i * page_size) / page_size gets MOCK_PFN_DIRTY_IOVA. The
    xarray is indexed in 2K pages whatever page_size is, so with page_size != 2K the
    bits land on other IOVAs than the bitmap's (as the kernel does it); out_nr_dirty
    counts the entries that existed."""
    page_size, length, iova, uptr = a["page_size"], a["length"], a["iova"], a["uptr"]
    if not page_size or not length or iova % page_size or length % page_size or not uptr:
        raise KernelError(EINVAL)
    nbits = length // page_size
    if nbits > DIRTY_MAX_BITS:
        raise KernelError(EOVERFLOW)
    hwpt = _get_md_pagetable(m, a["id"])
    if not hwpt.dirty_tracking:
        raise KernelError(EINVAL)
    nbytes = -(-nbits // 8)
    if m.mem.first_bad(uptr, nbytes, False) is not None:
        raise KernelError(EFAULT)
    # cur = iova + i * page_size wraps at most once (nbits * page_size <= length):
    # before the wrap index = iova / page_size + i, after it i + (iova - 2^64) / page_size
    wrap = min(nbits, max(0, -(-(U64 + 1 - iova) // page_size)))
    segments = [(0, wrap, iova // page_size), (wrap, nbits, (iova - (U64 + 1)) // page_size)]
    count = 0
    for i0, i1, off in segments:
        if i0 >= i1:
            continue
        for s, e in mock.mapped_slots(hwpt, i0 + off, i1 - 1 + off):
            lo, hi = (s - off) // 8, (e - off) // 8
            try:
                bits = m.mem.read(uptr + lo, hi - lo + 1)
            except Unsure as err:  # only this domain's dirty bits are unknown then
                raise Unsure(err.reason, scope=[hwpt]) from None  # (FACET_OPS)
            for slot in range(s, e + 1):
                i = slot - off
                if bits[i // 8 - lo] >> (i % 8) & 1:
                    hwpt.dirty.add(slot)
                    count += 1
    return {"out_nr_dirty": count}


def md_check_iotlb(m: Model, a: Args) -> dict:
    """iommufd_test_md_check_iotlb: a nested HWPT's IOTLB entry must hold iotlb."""
    hwpt = m.objects.get(a["id"], OBJ_HWPT_NESTED)
    if hwpt is None:
        raise KernelError(ENOENT)
    iotlb_id = a["iotlb_id"]
    if iotlb_id > MOCK_NESTED_DOMAIN_IOTLB_ID_MAX or \
            hwpt.iotlb[iotlb_id] != a["iotlb"]:  # type: ignore[attr-defined]
        raise KernelError(EINVAL)
    return {}


def trigger_iopf(m: Model, a: Args) -> dict:
    """iommufd_test_trigger_iopf: whatever iommu_report_device_fault does with the
    fault, the op succeeds once the device exists."""
    idev = device.get_device(m, a["dev_id"])
    faults.report(m, idev, a["pasid"], a["grpid"], a["perm"], a["addr"])
    return {}
