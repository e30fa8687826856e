"""fault.c and io-pgfault.c: fault objects (IOMMU_FAULT_QUEUE_ALLOC), the faults
TEST_TRIGGER_IOPF reports, read() of fault records and write() of page responses on
the fault fd, and what detaching a device or closing the fd does to them.

Delivery (iommu_report_device_fault): find_fault_handler takes the attach handle of
the device's RID (a fault with a PASID only goes to a nested domain there, because
the mock driver has user_pasid_table), and only a domain with an iopf_handler - a
HWPT allocated with IOMMU_HWPT_FAULT_ID_VALID - takes it. Otherwise the fault is
answered at once (mock_domain_page_response does nothing) and TRIGGER_IOPF still
succeeds: it ignores iommu_report_device_fault's result. TRIGGER_IOPF always sets
IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE, so every fault is a group of its own and
iommufd_fault_iopf_handler appends it to fault->deliver.

read() moves groups from the head of fault->deliver to fault->response under a new
cookie (xa_alloc in an XA_FLAGS_ALLOC1 xarray: the lowest free index from 1) and
writes one struct iommu_hwpt_pgfault per fault; write() takes responses {cookie,
code} and erases the cookie's group. Detaching a device from a fault-capable HWPT
(or replacing it away) answers and drops every group of that attachment, read or
not (iommufd_auto_response_faults).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from fuzz import uapi
from fuzz.model.consts import (
    EBADF,
    EFAULT,
    EINVAL,
    EOPNOTSUPP,
    ESPIPE,
    IOMMU_NO_PASID,
    IOMMU_PGFAULT_FLAGS_LAST_PAGE,
    IOMMU_PGFAULT_FLAGS_PASID_VALID,
    IOMMUFD_PAGE_RESP_INVALID,
    IOMMUFD_PAGE_RESP_SUCCESS,
    U64,
)
from fuzz.model.errors import KernelError, Unsure
from fuzz.model.memory import TASK_SIZE_MAX
from fuzz.model.objects import Access, Device, Fault, HwptNested, IopfGroup
from fuzz.model.userbuf import UserBuf
from fuzz.prog.layout import plan_struct, side_image

if TYPE_CHECKING:
    from fuzz.model.model import Args, Model

BUG_COOKIE_0 = "fault-response-cookie-0"  # reproducers/known.json
# Model.fail_at points (fuzz.model.faults.SURVIVED): an injected fault failed the
# allocation of a TEST_TRIGGER_IOPF's fault group, or may have
IOPF_GROUP_FAILED = ("iopf_group_alloc", 1)
IOPF_GROUP_MAYBE = ("iopf_group_alloc", 0)
PGFAULT = struct.Struct("<IIIIIIQII")  # struct iommu_hwpt_pgfault
RESPONSE = struct.Struct("<II")  # struct iommu_hwpt_page_response
assert PGFAULT.size == uapi.sizeof("struct iommu_hwpt_pgfault")
assert RESPONSE.size == uapi.sizeof("struct iommu_hwpt_page_response")
MAX_RW_COUNT = 0x7FFFFFFF & ~0xFFF  # INT_MAX & PAGE_MASK: vfs_read/vfs_write clamp count
# A side array lives in the agent's response buffer, an mmap below mmap_base, which sits
# a randomized amount (up to 2^40 with 28 bits of mmap ASLR) below TASK_SIZE_MAX but at
# least 128 MiB (the minimum stack gap); the agent maps only a few MiB above the arena.
# access_ok(side, count) is certain only below that (a campaign read 2^38: EFAULT).
SIDE_ACCESS_OK_MAX = 1 << 26


def fault_alloc(m: Model, a: Args) -> dict:
    """iommufd_fault_alloc: the object's id, then the anon file and the fd (the file
    holds a users reference until it is released)."""
    if a["flags"]:
        raise KernelError(EOPNOTSUPP)
    f = Fault()
    m.objects.alloc(f)
    fd = m.alloc_fd(f, "out_fault_fd")
    f.fd = fd
    f.fd_open = True
    m.objects.finalize(f)
    return {"out_fault_id": f.id, "out_fault_fd": fd}


def report(m: Model, idev: Device, pasid: int, grpid: int, perm: int, addr: int) -> None:
    """iommu_report_device_fault of a TEST_TRIGGER_IOPF event."""
    hwpt = idev.hwpt
    if hwpt is None:
        return
    if pasid != IOMMU_NO_PASID and not isinstance(hwpt, HwptNested):
        return  # no attach handle for the PASID, and the RID's domain is not nested
    if hwpt.fault is None:
        return  # no iopf_handler: iopf_error_response
    # an injected failure of iopf_group_alloc (fuzz.model.faults.SURVIVED): err_abort,
    # the fault is answered IOMMU_PAGE_RESP_FAILURE and never queued
    if IOPF_GROUP_FAILED in m.fail_at:
        return
    if IOPF_GROUP_MAYBE in m.fail_at and hwpt.fault.queue_unknown is None:
        hwpt.fault.queue_unknown = ("since a TEST_TRIGGER_IOPF whose injected fault may "
                                    f"have failed the allocation of its group (addr {addr:#x})")
    flags = IOMMU_PGFAULT_FLAGS_LAST_PAGE
    if pasid != IOMMU_NO_PASID:
        flags |= IOMMU_PGFAULT_FLAGS_PASID_VALID
    hwpt.fault.deliver.append(IopfGroup(flags, idev.id, pasid, grpid, perm, addr, idev.handle))


def auto_response(f: Fault, handle: object) -> None:
    """iommufd_auto_response_faults: every group of the handle, waiting to be read
    or waiting for a response, is answered IOMMU_PAGE_RESP_INVALID and freed."""
    f.deliver = [g for g in f.deliver if g.handle is not handle]
    for cookie in [c for c, g in f.response.items() if g.handle is handle]:
        del f.response[cookie]


def release(m: Model, f: Fault) -> None:
    """iommufd_fault_fops_release: the file's users reference goes."""
    f.fd_open = False


# -- read() / write() on an fd the program got -----------------------------------------
def own_file(m: Model, a: Args) -> Access | Fault:
    """The executor only reads and writes fds the program got back (access and fault
    fds not closed yet); any other number is EBADF without a syscall."""
    fd = a["fd"]
    obj = m.fds.get(fd) if m.fds.is_own(fd) else None
    if obj is not None:
        if isinstance(obj, Fault) and obj.queue_unknown is not None:
            m.objects.doubt(f"the queues of fault {obj.id} are unknown {obj.queue_unknown}")
        return obj  # type: ignore[return-value]
    if m.fds.numbers_unknown():
        raise Unsure("fd numbers are not known without the kernel's results; "
                     f"fd {fd} may be one of the program's", poisoned=False)
    raise KernelError(EBADF)


def _vfs_checks(buf: UserBuf, count: int) -> int:
    """vfs_read / vfs_write after the file checks: access_ok(buf, count) (EFAULT),
    rw_verify_area (count fits ssize_t, checked by access_ok already), the clamp to
    MAX_RW_COUNT."""
    if buf.is_side:
        if count >= SIDE_ACCESS_OK_MAX:
            # if it passes, the call goes on and moves faults: the state may change
            raise Unsure(f"access_ok of the side array with count {count:#x} depends on "
                         "where the executor's arena is")
    else:
        end = (buf.addr + count) & U64  # type: ignore[operator]
        if end > TASK_SIZE_MAX or end < buf.addr:  # type: ignore[operator]
            raise KernelError(EFAULT)
    return min(count, MAX_RW_COUNT)


def _buffer(m: Model, a: Args, side: bytearray) -> UserBuf:
    """buf if the program gave one, else the op's side array."""
    if a.has("buf"):
        return UserBuf(m, a["buf"], what="read()/write() buffer")
    return UserBuf(m, None, side, "fault fd buffer")


def read(m: Model, a: Args) -> dict:
    """read(2) of a program fd: an access fd's file has no read op (vfs_read: EINVAL);
    a fault fd runs iommufd_fault_fops_read."""
    obj = own_file(m, a)
    if not isinstance(obj, Fault):
        raise KernelError(EINVAL)
    side = plan_struct(m.op).side("buf")  # type: ignore[arg-type]
    assert side is not None
    side_len = side.size
    buf = _buffer(m, a, bytearray(side_len))
    count = _vfs_checks(buf, a["count"])
    if count % PGFAULT.size:  # *ppos is always 0: anon files, read(2) never moves it
        raise KernelError(ESPIPE)
    f = obj
    done = 0
    rc = 0
    records: list[list[int]] = []
    moved: list[IopfGroup] = []
    while f.deliver:
        g = f.deliver[0]
        if done >= count or PGFAULT.size > count - done:
            if done == 0:
                rc = EINVAL  # the first group does not fit the read
            break
        cookie = _lowest_free(f.response, 1)
        g.cookie = cookie
        rec = [g.flags, g.dev_id, g.pasid, g.grpid, g.perm, 0, g.addr, 0, cookie]
        if not buf.write(PGFAULT.pack(*rec), done):
            rc = EFAULT  # the group goes back to the head, its cookie is erased
            break
        f.deliver.pop(0)
        f.response[cookie] = g
        moved.append(g)
        done += PGFAULT.size
        records.append(rec)
    if done == 0 and rc:
        raise KernelError(rc)
    # The executor decodes the records from its side array (it copies what a read
    # into a program buffer returned there first): at most side_len bytes of them.
    out = {"ret": done, "cookie": records[0][8] if records else 0,
           "records": records[:side_len // PGFAULT.size]}
    if f.zero_freed and moved:
        _cookie_0_bug(m, f, moved, out, side_len)
    return out


def _lowest_free(response: dict[int, IopfGroup], low: int) -> int:
    """xa_alloc in fault->response: the lowest free index from `low`."""
    cookie = low
    while cookie in response:
        cookie += 1
    return cookie


def _cookie_0_bug(m: Model, f: Fault, moved: list[IopfGroup], out: dict,
                  side_len: int) -> None:
    """The model predicts cookies from 1, as XA_FLAGS_ALLOC1 documents. After a
    response for cookie 0 (write), 6.12's xa_erase(response, 0) has freed index 0
    (known bug fault-response-cookie-0), so xa_alloc may hand out 0. When the kernel's
    records are exactly that, the read is marked as the known bug and the groups are
    filed under the kernel's cookies, so that later reads and writes still compare
    (the read's result stays the documented one: the comparison reports it, tagged)."""
    before = {c: g for c, g in f.response.items() if all(g is not x for x in moved)}
    bug_cookies = []
    for g in moved:
        c = _lowest_free(before, 0)
        before[c] = g
        bug_cookies.append(c)
    if bug_cookies == [g.cookie for g in moved]:
        return  # 0 was not free: the same cookies either way
    records = [rec[:8] + [c] for rec, c in zip(out["records"], bug_cookies)]
    bug_out = {"ret": out["ret"], "cookie": bug_cookies[0],
               "records": records[:side_len // PGFAULT.size]}
    if not m.known_bug(BUG_COOKIE_0, 0, bug_out):
        return
    for g, c in zip(moved, bug_cookies):
        g.cookie = c
    f.response = before


def write(m: Model, a: Args) -> dict:
    """write(2) of a program fd: an access fd's file has no write op (EINVAL); a
    fault fd runs iommufd_fault_fops_write."""
    obj = own_file(m, a)
    if not isinstance(obj, Fault):
        raise KernelError(EINVAL)
    plan = plan_struct(m.op).side("buf")  # type: ignore[arg-type]
    assert plan is not None
    buf = _buffer(m, a, side_image(plan, m.value_of))
    count = _vfs_checks(buf, a["count"])
    if count % RESPONSE.size:
        raise KernelError(ESPIPE)
    f = obj
    done = 0
    rc = 0
    while count > done:
        raw = buf.read(done, RESPONSE.size)
        if raw is None:
            rc = EFAULT
            break
        cookie, code = RESPONSE.unpack(raw)
        if code not in (IOMMUFD_PAGE_RESP_SUCCESS, IOMMUFD_PAGE_RESP_INVALID):
            rc = EINVAL
            break
        if cookie == 0 and f.response:
            f.zero_freed = True  # see _cookie_0_bug
        if f.response.pop(cookie, None) is None:
            rc = EINVAL
            break
        done += RESPONSE.size
    if done == 0 and rc:
        raise KernelError(rc)
    return {"ret": done}


# vfs_poll of a file without a poll op (an access fd's): DEFAULT_POLLMASK
DEFAULT_POLLMASK = uapi.POLLIN | uapi.POLLOUT | uapi.POLLRDNORM | uapi.POLLWRNORM


def poll(m: Model, a: Args) -> dict:
    """poll(2) of one program fd with no wait (fs/select.c do_pollfd): the file's mask
    - iommufd_fault_fops_poll: EPOLLOUT, and EPOLLIN | EPOLLRDNORM while a fault
    waits to be read - filtered by events | POLLERR | POLLHUP; ret counts the fds
    with revents."""
    obj = own_file(m, a)
    if isinstance(obj, Fault):
        mask = uapi.POLLOUT | (uapi.POLLIN | uapi.POLLRDNORM if obj.deliver else 0)
    else:
        mask = DEFAULT_POLLMASK
    revents = mask & (a["events"] | uapi.POLLERR | uapi.POLLHUP)
    return {"ret": int(revents != 0), "revents": revents}
