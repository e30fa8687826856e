"""Seeds for what the other seeds left unreached in drivers/iommu/iommufd (issue 13):
pages.c's locked-memory accounting of a caller without CAP_IPC_LOCK (per user, or per
mm in IOMMU_OPTION_RLIMIT_MODE 1: incr/decr_user_locked_vm, update_mm_locked_vm, and
the unwinding of a fill that went past RLIMIT_MEMLOCK), the rlimit mode's EPERM
without CAP_SYS_RESOURCE, pages.c's storage tiers (PFNs from a domain, from the
xarray, from the mm), and poll(2) of a fault fd. Expected values are read from the
6.12 source (pages.c do_update_pinned: the pages an op newly pins, after it pinned
them, against RLIMIT_MEMLOCK >> PAGE_SHIFT; a new iopt_pages per map, so one user
page mapped twice is charged twice)."""

from __future__ import annotations

import errno as E

from fuzz import uapi
from fuzz.prog import Buffer, Creds, pattern_bytes

from .dsl import FIXED_RW, MOCK_APERTURE_START, PAGE, Prog

M16 = MOCK_APERTURE_START
NO_IPC_LOCK = ("CAP_IPC_LOCK",)
PIN = uapi.MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES
NEST = uapi.IOMMU_HWPT_ALLOC_NEST_PARENT
FAULT = uapi.IOMMU_HWPT_FAULT_ID_VALID
SELFTEST = uapi.IOMMU_HWPT_DATA_SELFTEST
RW_WRITE = uapi.MOCK_ACCESS_RW_WRITE
RW_SLOW = uapi.MOCK_ACCESS_RW_SLOW_PATH
READ_FIXED = uapi.IOMMU_IOAS_MAP_READABLE | uapi.IOMMU_IOAS_MAP_FIXED_IOVA
POLLIN, POLLOUT, POLLRDNORM = uapi.POLLIN, uapi.POLLOUT, uapi.POLLRDNORM
OPT_RLIMIT, SET, GET = (uapi.IOMMU_OPTION_RLIMIT_MODE, uapi.IOMMU_OPTION_OP_SET,
                        uapi.IOMMU_OPTION_OP_GET)
MB = 1 << 20


def _map(p: Prog, ioas, off: int, n: int, iova: int, expect: int = 0, flags: int = FIXED_RW,
         buf: int = 0) -> int:
    return p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(buf, off), length=n, iova=iova,
                flags=flags, expect=expect, out={"iova": iova})


def memlock_user_accounting() -> Prog:
    # RLIMIT_MEMLOCK 4 pages, charged to the user: domain fills, attaching a domain,
    # access pins
    p = Prog("memlock_user_accounting", Buffer(16 * PAGE, "memfd", 41),
             creds=Creds(NO_IPC_LOCK, 4 * PAGE))
    a = p.ref(p.op("IOAS_ALLOC", out={"out_ioas_id": 1}), "out_ioas_id")
    md = p.op("TEST_MOCK_DOMAIN", id=a, out={"out_stdev_id": 2, "out_hwpt_id": 4})
    _map(p, a, 0, 4 * PAGE, M16)  # 4 of 4
    _map(p, a, 4 * PAGE, PAGE, M16 + 0x10000, E.ENOMEM)  # iopt_area_fill_domains undone
    _map(p, a, 0, 2 * PAGE, M16 + 0x20000, E.ENOMEM)  # the same pages, a new iopt_pages
    p.op("TEST_MD_CHECK_REFS", id=a, uptr=p.buf(0), length=4 * PAGE, refs=1)
    p.op("IOAS_UNMAP", ioas_id=a, iova=M16, length=4 * PAGE, out={"length": 4 * PAGE})
    _map(p, a, 4 * PAGE, 2 * PAGE, M16 + 0x10000)  # decr_user_locked_vm made room: 2 of 4
    b = p.ref(p.op("IOAS_ALLOC", out={"out_ioas_id": 5}), "out_ioas_id")
    _map(p, b, 8 * PAGE, 4 * PAGE, M16)  # no domain: nothing pinned yet
    p.op("TEST_MOCK_DOMAIN", id=b, expect=E.ENOMEM)  # iopt_area_fill_domain: 2 + 4 > 4
    acc = p.ref(p.op("TEST_CREATE_ACCESS", id=b, flags=PIN), "out_access_fd")
    p.op("TEST_ACCESS_PAGES", id=acc, iova=M16, length=4 * PAGE, uptr=p.buf(0, 8 * PAGE),
         expect=E.ENOMEM)  # iopt_pages_fill_xarray
    p.op("TEST_ACCESS_PAGES", id=acc, iova=M16, length=2 * PAGE, uptr=p.buf(0, 8 * PAGE),
         out={"out_access_pages_id": 0})  # 4 of 4
    p.op("IOAS_UNMAP", ioas_id=a, iova=M16 + 0x10000, length=2 * PAGE,
         out={"length": 2 * PAGE})
    p.op("TEST_ACCESS_PAGES", id=acc, iova=M16, length=2 * PAGE, uptr=p.buf(0, 8 * PAGE),
         out={"out_access_pages_id": 1})  # the same range: no new pin
    p.op("TEST_MOCK_DOMAIN", id=b, out={"out_stdev_id": 7, "out_hwpt_id": 9})  # +2: 4 of 4
    p.op("TEST_MOCK_DOMAIN", id=b, out={"out_hwpt_id": 9})  # the domain is shared: no pin
    p.op("DESTROY", id=p.ref(md, "out_stdev_id"))
    p.op("TEST_MOCK_DOMAIN", id=b, out={"out_hwpt_id": 9})
    p.op("TEST_MD_CHECK_REFS", id=a, uptr=p.buf(0, 8 * PAGE), length=4 * PAGE, refs=1)
    _map(p, b, 12 * PAGE, 4 * PAGE, M16 + 0x10000, E.ENOMEM)
    return p


def memlock_mm_accounting() -> Prog:
    # IOMMU_OPTION_RLIMIT_MODE 1: charged to mm->locked_vm (update_mm_locked_vm)
    p = Prog("memlock_mm_accounting", Buffer(16 * PAGE, "memfd", 43),
             creds=Creds(NO_IPC_LOCK, 5 * PAGE))
    p.op("OPTION", option_id=OPT_RLIMIT, op=SET, val64=1, out={"val64": 1})
    p.op("OPTION", option_id=OPT_RLIMIT, op=GET, out={"val64": 1})
    a = p.ref(p.op("IOAS_ALLOC", out={"out_ioas_id": 1}), "out_ioas_id")
    p.op("TEST_MOCK_DOMAIN", id=a, out={"out_hwpt_id": 4})
    _map(p, a, 0, 2 * PAGE, M16)
    _map(p, a, 2 * PAGE, 2 * PAGE, M16 + 0x10000)
    _map(p, a, 4 * PAGE, PAGE, M16 + 0x20000)  # 5 of 5
    p.op("IOAS_COPY", dst_ioas_id=a, src_ioas_id=a, length=2 * PAGE, dst_iova=M16 + 0x30000,
         src_iova=M16, flags=FIXED_RW, out={"dst_iova": M16 + 0x30000})  # pinned already
    p.op("IOAS_UNMAP", ioas_id=a, iova=M16, length=2 * PAGE)  # the copy still holds them
    _map(p, a, 4 * PAGE, PAGE, M16 + 0x60000, E.ENOMEM)
    p.op("IOAS_UNMAP", ioas_id=a, iova=M16 + 0x30000, length=2 * PAGE)
    _map(p, a, 5 * PAGE, 2 * PAGE, M16 + 0x40000)
    p.op("TEST_CREATE_ACCESS", id=a, flags=PIN)
    _map(p, a, 8 * PAGE, 2 * PAGE, M16 + 0x50000, E.ENOMEM)
    return p


def creds_no_sys_resource() -> Prog:
    # iommufd_option_rlimit_mode: capable(CAP_SYS_RESOURCE) before anything else
    p = Prog("creds_no_sys_resource", Buffer(16 * PAGE, "anon", 47),
             creds=Creds(("CAP_IPC_LOCK", "CAP_SYS_RESOURCE"), 16 * PAGE))
    p.op("OPTION", option_id=OPT_RLIMIT, op=SET, val64=1, expect=E.EPERM)
    p.op("OPTION", option_id=OPT_RLIMIT, op=GET, out={"val64": 0})
    p.op("OPTION", option_id=OPT_RLIMIT, op=SET, val64=7, expect=E.EPERM)  # not EINVAL
    a = p.ref(p.op("IOAS_ALLOC", out={"out_ioas_id": 1}), "out_ioas_id")
    md = p.op("TEST_MOCK_DOMAIN", id=a, out={"out_hwpt_id": 4})
    _map(p, a, 0, 16 * PAGE, M16)  # 16 of 16
    p.op("TEST_MD_CHECK_MAP", id=p.ref(md, "out_hwpt_id"), iova=M16, length=16 * PAGE,
         uptr=p.buf(0))
    _map(p, a, 0, PAGE, 2 * M16, E.ENOMEM)
    p.op("OPTION", option_id=OPT_RLIMIT, op=SET, val64=1, expect=E.EPERM)  # not EBUSY
    return p


def memlock_two_domains() -> Prog:
    # a fill past the limit with two domains: iopt_area_fill_domains unmaps every domain
    # but the last and unfills that one
    p = Prog("memlock_two_domains", Buffer(16 * PAGE, "memfd", 61),
             creds=Creds(NO_IPC_LOCK, 4 * PAGE))
    a = p.ref(p.op("IOAS_ALLOC", out={"out_ioas_id": 1}), "out_ioas_id")
    md = p.op("TEST_MOCK_DOMAIN", id=a, out={"out_hwpt_id": 4})
    hw = p.ref(p.op("HWPT_ALLOC", dev_id=p.ref(md, "out_idev_id"), pt_id=a,
                    out={"out_hwpt_id": 5}), "out_hwpt_id")
    md2 = p.op("TEST_MOCK_DOMAIN", id=a, out={"out_hwpt_id": 4})
    p.op("TEST_MOCK_DOMAIN_REPLACE", id=p.ref(md2, "out_stdev_id"), pt_id=hw,
         out={"pt_id": 5})
    _map(p, a, 0, 2 * PAGE, M16)
    _map(p, a, 2 * PAGE, 4 * PAGE, M16 + 0x10000, E.ENOMEM)
    _map(p, a, 2 * PAGE, 2 * PAGE, M16 + 0x10000)  # 4 of 4, in both domains
    p.op("TEST_MD_CHECK_MAP", id=hw, iova=M16 + 0x10000, length=2 * PAGE,
         uptr=p.buf(0, 2 * PAGE))
    p.op("TEST_MD_CHECK_MAP", id=p.ref(md, "out_hwpt_id"), iova=M16 + 0x10000,
         length=2 * PAGE, uptr=p.buf(0, 2 * PAGE))
    p.op("DESTROY", id=p.ref(md2, "out_stdev_id"))  # one domain left: the pins stay
    p.op("IOAS_UNMAP", ioas_id=a, iova=M16, length=2 * PAGE)
    _map(p, a, 8 * PAGE, 3 * PAGE, M16 + MB, E.ENOMEM)  # 2 + 3 > 4
    return p


def pages_storage_tiers() -> Prog:
    # where pages.c reads PFNs from: a second domain from the first (batch_from_domain at
    # an area's page_offset), an access from the xarray and a domain, the slow rw path
    # through pinned pages, the mm with a hole half way (iopt_pages_err_unpin)
    p = Prog("pages_storage_tiers", Buffer(16 * PAGE, "memfd", 53),
             Buffer(4 * PAGE, "anon", 59, [(2 * PAGE, PAGE)]))
    a = p.ref(p.op("IOAS_ALLOC", out={"out_ioas_id": 1}), "out_ioas_id")
    md = p.op("TEST_MOCK_DOMAIN", id=a, out={"out_hwpt_id": 4})
    _map(p, a, PAGE // 2, 2 * PAGE, M16 + PAGE // 2)  # page_offset 2048 (2K mock pages)
    hw = p.ref(p.op("HWPT_ALLOC", dev_id=p.ref(md, "out_idev_id"), pt_id=a,
                    out={"out_hwpt_id": 5}), "out_hwpt_id")
    md2 = p.op("TEST_MOCK_DOMAIN", id=a, out={"out_hwpt_id": 4})
    p.op("TEST_MOCK_DOMAIN_REPLACE", id=p.ref(md2, "out_stdev_id"), pt_id=hw,
         out={"pt_id": 5})
    p.op("TEST_MD_CHECK_MAP", id=hw, iova=M16 + PAGE // 2, length=2 * PAGE,
         uptr=p.buf(0, PAGE // 2))
    b = p.ref(p.op("IOAS_ALLOC", out={"out_ioas_id": 8}), "out_ioas_id")
    p.op("TEST_MOCK_DOMAIN", id=b)
    _map(p, b, 0, 4 * PAGE, M16)
    acc = p.ref(p.op("TEST_CREATE_ACCESS", id=b, flags=PIN), "out_access_fd")
    p.op("TEST_ACCESS_PAGES", id=acc, iova=M16, length=PAGE, uptr=p.buf(0),
         out={"out_access_pages_id": 0})
    p.op("TEST_ACCESS_PAGES", id=acc, iova=M16, length=4 * PAGE, uptr=p.buf(0),
         out={"out_access_pages_id": 1})  # page 0 from the xarray, 1-3 from the domain
    p.op("TEST_ACCESS_RW", id=acc, iova=M16, length=16, uptr=p.buf(0, 12 * PAGE),
         flags=RW_SLOW)  # one page, in the xarray: iopt_pages_rw_slow
    p.op("TEST_ACCESS_RW", id=acc, iova=M16 + PAGE - 96, length=300,
         uptr=p.buf(0, 12 * PAGE), flags=RW_SLOW | RW_WRITE)  # copy_data_page, written
    p.op("TEST_ACCESS_RW", id=acc, iova=M16, length=4 * PAGE, uptr=p.buf(0, 10 * PAGE),
         flags=RW_SLOW)
    _map(p, b, 8 * PAGE, PAGE, M16 + MB, flags=READ_FIXED)
    p.op("TEST_ACCESS_RW", id=acc, iova=M16 + MB, length=16, uptr=p.buf(0, 12 * PAGE),
         flags=RW_WRITE, expect=E.EPERM)  # iopt_pages_rw_access: pages not writable
    p.op("TEST_ACCESS_RW", id=acc, iova=M16 + MB, length=16, uptr=p.buf(0, 12 * PAGE))
    p.op("TEST_ACCESS_RW", id=acc, iova=M16 + MB, length=16, uptr=p.buf(0, 12 * PAGE),
         flags=RW_SLOW | RW_WRITE, expect=E.EPERM)
    c = p.ref(p.op("IOAS_ALLOC", out={"out_ioas_id": 13}), "out_ioas_id")
    _map(p, c, 0, 4 * PAGE, M16, buf=1)
    acc2 = p.ref(p.op("TEST_CREATE_ACCESS", id=c, flags=PIN), "out_access_fd")
    p.op("TEST_ACCESS_PAGES", id=acc2, iova=M16, length=4 * PAGE, uptr=p.buf(1),
         expect=E.EFAULT)  # pages 0-1 pinned, then the hole: unpinned again
    p.op("TEST_ACCESS_PAGES", id=acc2, iova=M16, length=2 * PAGE, uptr=p.buf(1),
         out={"out_access_pages_id": 0})
    p.op("TEST_MD_CHECK_REFS", id=c, uptr=p.buf(1), length=2 * PAGE, refs=1)
    return p


def fault_poll() -> Prog:
    # iommufd_fault_fops_poll: EPOLLOUT, and EPOLLIN | EPOLLRDNORM while a fault waits
    p = Prog("fault_poll")
    a = p.ref(p.op("IOAS_ALLOC", out={"out_ioas_id": 1}), "out_ioas_id")
    md = p.op("TEST_MOCK_DOMAIN", id=a, out={"out_idev_id": 3})
    idev = p.ref(md, "out_idev_id")
    fq = p.op("FAULT_QUEUE_ALLOC", out={"out_fault_id": 5, "out_fault_fd": 4})
    fd = p.ref(fq, "out_fault_fd")
    parent = p.ref(p.op("HWPT_ALLOC", dev_id=idev, pt_id=a, flags=NEST), "out_hwpt_id")
    iopf = p.ref(p.op("HWPT_ALLOC", dev_id=idev, pt_id=parent, data_type=SELFTEST,
                      data_len=4, flags=FAULT, fault_id=p.ref(fq, "out_fault_id")),
                 "out_hwpt_id")
    p.op("POLL", fd=fd, events=POLLIN | POLLOUT, out={"ret": 1, "revents": POLLOUT})
    p.op("TEST_MOCK_DOMAIN_REPLACE", id=p.ref(md, "out_stdev_id"), pt_id=iopf)
    p.op("TEST_TRIGGER_IOPF", dev_id=idev, addr=PAGE)
    p.op("POLL", fd=fd, events=POLLIN | POLLOUT | POLLRDNORM,
         out={"ret": 1, "revents": POLLIN | POLLOUT | POLLRDNORM})
    p.op("POLL", fd=fd, events=uapi.POLLPRI, out={"ret": 0, "revents": 0})
    p.op("POLL", fd=fd, events=0, out={"ret": 0, "revents": 0})
    r = p.op("READ", fd=fd, out={"ret": 40})
    p.op("POLL", fd=fd, events=POLLIN | POLLOUT | POLLRDNORM,
         out={"ret": 1, "revents": POLLOUT})  # read: nothing waits any more
    p.op("POLL", fd=99, events=POLLIN | POLLOUT, expect=E.EBADF)  # not the program's
    acc = p.ref(p.op("TEST_CREATE_ACCESS", id=a), "out_access_fd")
    p.op("POLL", fd=acc, events=0x1FF, out={
        "ret": 1, "revents": POLLIN | POLLOUT | POLLRDNORM | uapi.POLLWRNORM})  # no .poll
    p.op("WRITE", fd=fd, cookie=p.ref(r, "cookie"), out={"ret": 8})
    p.op("CLOSE", fd=fd)
    p.op("POLL", fd=fd, events=POLLIN | POLLOUT, expect=E.EBADF)
    return p


def copy_syz_source() -> Prog:
    # IOAS_COPY with MOCK_FLAGS_ACCESS_SYZ: src_iova is {u32 nth area; u32 offset} of the
    # source IOAS (iommufd_test_syz_conv_iova_id), 0 past the last area
    p = Prog("copy_syz_source", Buffer(16 * PAGE, "memfd", 67))
    a = p.ref(p.op("IOAS_ALLOC", out={"out_ioas_id": 1}), "out_ioas_id")
    _map(p, a, 0, 2 * PAGE, M16)
    _map(p, a, 2 * PAGE, 2 * PAGE, M16 + MB)
    b = p.ref(p.op("IOAS_ALLOC", out={"out_ioas_id": 2}), "out_ioas_id")
    syz = FIXED_RW | uapi.MOCK_FLAGS_ACCESS_SYZ
    p.op("IOAS_COPY", dst_ioas_id=b, src_ioas_id=a, flags=syz, length=PAGE, dst_iova=M16,
         src_iova=1 | PAGE << 32, out={"dst_iova": M16})  # area 1, one page in
    acc = p.ref(p.op("TEST_CREATE_ACCESS", id=b), "out_access_fd")
    p.op("TEST_ACCESS_RW", id=acc, iova=M16, length=16, uptr=p.buf(0, 8 * PAGE),
         out={"data": pattern_bytes(67, 3 * PAGE, 16)})
    p.op("IOAS_COPY", dst_ioas_id=b, src_ioas_id=a, flags=syz, length=PAGE,
         dst_iova=M16 + MB, src_iova=7, expect=E.ENOENT)  # no area 7: IOVA 0
    p.op("IOAS_COPY", dst_ioas_id=b, src_ioas_id=a, flags=syz, length=PAGE,
         dst_iova=M16 + MB, src_iova=0, out={"dst_iova": M16 + MB})
    p.op("IOAS_COPY", dst_ioas_id=b, src_ioas_id=99, flags=syz, length=PAGE,
         dst_iova=M16 + 2 * MB, src_iova=0, expect=E.ENOENT)  # not converted, then ENOENT
    return p


SEEDS_COV = [memlock_user_accounting, memlock_mm_accounting, creds_no_sys_resource,
             memlock_two_domains, pages_storage_tiers, fault_poll, copy_syz_source]
