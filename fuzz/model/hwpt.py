"""hw_pagetable.c (with io_pagetable.c's dirty paths): IOMMU_HWPT_ALLOC,
IOMMU_HWPT_SET_DIRTY_TRACKING, IOMMU_HWPT_GET_DIRTY_BITMAP, IOMMU_HWPT_INVALIDATE,
each check in the kernel's order.

IOMMU_HWPT_ALLOC makes a paging HWPT on an IOAS (a mock domain added to the
io_pagetable, filled with every area; never an automatic domain, so devices never
pick it by themselves) or a nested HWPT on a NEST_PARENT paging HWPT (a nested mock
domain whose four IOTLB entries start as the user's iotlb). A nested HWPT may report
faults to a fault object (IOMMU_HWPT_FAULT_ID_VALID); a paging one may not: 6.12's
iommufd_hwpt_paging_alloc does not list FAULT_ID_VALID among its valid flags.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from fuzz import uapi
from fuzz.model import device, mock
from fuzz.model.consts import (
    EFAULT,
    EINVAL,
    ENOENT,
    EOPNOTSUPP,
    EOVERFLOW,
    IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
    IOMMU_HWPT_ALLOC_NEST_PARENT,
    IOMMU_HWPT_DATA_NONE,
    IOMMU_HWPT_DIRTY_TRACKING_ENABLE,
    IOMMU_HWPT_FAULT_ID_VALID,
    IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR,
    IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
    IOMMU_HWPT_INVALIDATE_ENTRY_NUM_MAX,
    IOMMU_TEST_INVALIDATE_FLAG_ALL,
    MOCK_FLAGS_DEVICE_NO_DIRTY,
    MOCK_NESTED_DOMAIN_IOTLB_ID_MAX,
    MOCK_NESTED_DOMAIN_IOTLB_NUM,
    PAGE_SIZE,
    U64,
)
from fuzz.model.errors import KernelError, Unsure
from fuzz.model.iova_bitmap import IovaBitmap
from fuzz.model.objects import (
    OBJ_FAULT,
    OBJ_HWPT_NESTED,
    OBJ_HWPT_PAGING,
    Fault,
    HwPagetable,
    HwptNested,
    Ioas,
)
from fuzz.model.ucmd import field_of, field_seen, user_size
from fuzz.model.userbuf import UserBuf
from fuzz.prog.layout import plan_struct, side_image
from fuzz.prog.limits import CAPTURE_MAX, CAPTURE_ROOM

if TYPE_CHECKING:
    from fuzz.model.iopt import IoPagetable
    from fuzz.model.model import Args, Model

OP = "HWPT_ALLOC"
HWPT_DATA_SIZE = uapi.sizeof("struct iommu_hwpt_selftest")


def _nested_data(m: Model, a: Args) -> UserBuf:
    """Where HWPT_ALLOC's data_uptr points as the handler sees it: the program's
    pointer, or the executor's 8-byte side array holding iotlb - unless the user's
    size ends before data_uptr, when the kernel sees NULL (or a cut pointer)."""
    off, width = field_of(OP, "data_uptr")
    size = user_size(a, OP)
    if a.has("data_uptr") or size <= off:
        return UserBuf(m, field_seen(a, OP, "data_uptr"), what="HWPT_ALLOC data")
    if size < off + width:
        raise Unsure("the struct ends inside data_uptr: the kernel sees part of the side "
                     "array's address", poisoned=False)
    side = plan_struct(m.op).side("data_uptr")  # type: ignore[arg-type]
    assert side is not None
    return UserBuf(m, None, side_image(side, m.value_of), "HWPT_ALLOC data")


# Reserved fields the uAPI says must be 0 and 6.12 never reads (reproducers/known.json):
# the model predicts EOPNOTSUPP, as for the structs' other reserved fields.
BUG_RESERVED_UNREAD = "reserved-fields-unchecked"


def _reserved_unread(m: Model, a: Args, value: int, handler: Callable[[Model, Args], dict]
                     ) -> dict:
    """The op with a reserved field of `value`. Where the kernel did not refuse it,
    6.12 went on as if it were 0: the model runs that path, and when the kernel's
    result is exactly that path's, the op is the known bug (the model keeps that
    path's state); otherwise that path's result is compared as it is."""
    if not value:
        return handler(m, a)
    kernel = m.kernel_result()
    if kernel is None or kernel.errno == EOPNOTSUPP:
        raise KernelError(EOPNOTSUPP)
    try:
        out, e = handler(m, a), 0
    except KernelError as ex:
        out, e = dict(ex.out or {}), ex.errno
    if m.known_bug(BUG_RESERVED_UNREAD, e, out):
        raise KernelError(EOPNOTSUPP)
    if e:
        raise KernelError(e, out) if out else KernelError(e)
    return out


def hwpt_alloc(m: Model, a: Args) -> dict:
    """iommufd_hwpt_alloc (__reserved2 is not checked: _reserved_unread)."""
    return _reserved_unread(m, a, field_seen(a, OP, "__reserved2"), _hwpt_alloc)


def _hwpt_alloc(m: Model, a: Args) -> dict:
    flags = a["flags"]
    if a["__reserved"]:
        raise KernelError(EOPNOTSUPP)
    data_type = field_seen(a, OP, "data_type")
    data_len = field_seen(a, OP, "data_len")
    if (data_type == IOMMU_HWPT_DATA_NONE and data_len) or \
            (data_type != IOMMU_HWPT_DATA_NONE and not data_len):
        raise KernelError(EINVAL)
    idev = device.get_device(m, a["dev_id"], changes=False)
    pt = m.objects.get(a["pt_id"])
    if pt is None:
        raise KernelError(EINVAL)  # iommufd_get_object's ENOENT becomes EINVAL here
    hwpt: HwPagetable | HwptNested
    if isinstance(pt, Ioas):
        hwpt = _paging_alloc(m, idev, pt, flags, data_len)
    elif isinstance(pt, HwPagetable):
        hwpt = _nested_alloc(m, a, idev, pt, flags, data_type, data_len)
    else:
        raise KernelError(EINVAL)
    if flags & IOMMU_HWPT_FAULT_ID_VALID:
        fault = m.objects.get(field_seen(a, OP, "fault_id"), OBJ_FAULT)
        if fault is None:
            _abort(m, hwpt)
            raise KernelError(ENOENT)
        assert isinstance(fault, Fault) and isinstance(hwpt, HwptNested)
        hwpt.fault = fault
        fault.hwpts += 1
    m.objects.finalize(hwpt)
    return {"out_hwpt_id": hwpt.id}


def _abort(m: Model, hwpt: HwPagetable | HwptNested) -> None:
    """iommufd_object_abort_and_destroy."""
    m.objects.remove(hwpt)
    if isinstance(hwpt, HwPagetable):
        device.hwpt_paging_destroy(m, hwpt)
    else:
        device.hwpt_nested_destroy(m, hwpt)


def _paging_alloc(m: Model, idev, ioas: Ioas, flags: int, data_len: int) -> HwPagetable:
    """iommufd_hwpt_paging_alloc(immediate_attach = false)."""
    if flags & ~(IOMMU_HWPT_ALLOC_NEST_PARENT | IOMMU_HWPT_ALLOC_DIRTY_TRACKING):
        raise KernelError(EOPNOTSUPP)  # FAULT_ID_VALID included
    if flags & IOMMU_HWPT_ALLOC_DIRTY_TRACKING and idev.dev_flags & MOCK_FLAGS_DEVICE_NO_DIRTY:
        raise KernelError(EOPNOTSUPP)  # device_iommu_capable(IOMMU_CAP_DIRTY_TRACKING)
    # The kernel takes the id before the driver refuses user data; the abort frees it.
    mock.alloc_user_paging(idev, flags, bool(data_len))
    return device.hwpt_paging_alloc(m, idev, ioas, immediate_attach=False, flags=flags,
                                    auto_domain=False)


def _nested_alloc(m: Model, a: Args, idev, parent: HwPagetable, flags: int, data_type: int,
                  data_len: int) -> HwptNested:
    """iommufd_hwpt_nested_alloc, then mock_domain_alloc_user with the parent, which
    copies struct iommu_hwpt_selftest (iommu_copy_struct_from_user: the length must
    be exactly 4, then copy_struct_from_user) and sets every IOTLB entry to iotlb."""
    if flags & ~IOMMU_HWPT_FAULT_ID_VALID or not data_len:
        raise KernelError(EOPNOTSUPP)
    if parent.auto_domain or not parent.nest_parent:
        raise KernelError(EINVAL)
    mock.alloc_user_nested(flags & ~IOMMU_HWPT_FAULT_ID_VALID, data_type)
    if data_len != HWPT_DATA_SIZE:
        raise KernelError(EINVAL)
    raw = _nested_data(m, a).read(0, HWPT_DATA_SIZE)
    if raw is None:
        raise KernelError(EFAULT)
    (iotlb,) = struct.unpack("<I", raw)
    hwpt = HwptNested(parent, iotlb, None)
    m.objects.alloc(hwpt)
    parent.children.append(hwpt)
    return hwpt


# -- dirty tracking --------------------------------------------------------------------
def get_hwpt_paging(m: Model, hwpt_id: int) -> HwPagetable:
    hwpt = m.objects.get(hwpt_id, OBJ_HWPT_PAGING)
    if hwpt is None:
        raise KernelError(ENOENT)
    return hwpt  # type: ignore[return-value]


def set_dirty_tracking(m: Model, a: Args) -> dict:
    """iommufd_hwpt_set_dirty_tracking (__reserved is not checked: _reserved_unread)."""
    return _reserved_unread(m, a, a["__reserved"], _set_dirty_tracking)


def _set_dirty_tracking(m: Model, a: Args) -> dict:
    if a["flags"] & ~IOMMU_HWPT_DIRTY_TRACKING_ENABLE:
        raise KernelError(EOPNOTSUPP)
    hwpt = get_hwpt_paging(m, a["hwpt_id"])
    if not hwpt.dirty_ops:
        raise KernelError(EOPNOTSUPP)
    mock.set_dirty_tracking(hwpt, bool(a["flags"] & IOMMU_HWPT_DIRTY_TRACKING_ENABLE))
    return {}


def check_iova_range(iopt: IoPagetable, iova: int, length: int, page_size: int) -> None:
    """iommufd_check_iova_range. page_size need not be a power of two: the masks
    are page_size - 1 as the kernel computes them."""
    align = iopt.iova_alignment
    if not length:
        raise KernelError(EINVAL)
    last = iova + length - 1
    if last > U64:
        raise KernelError(EOVERFLOW)
    end = (last + 1) & U64
    if iova & (align - 1) or end & (align - 1):
        raise KernelError(EINVAL)
    if not page_size:
        raise KernelError(EINVAL)
    if iova & (page_size - 1) or end & (page_size - 1):
        raise KernelError(EINVAL)


# Known kernel bugs of 6.12 on this path (reproducers/known.json): the model predicts
# what the uAPI documents and tells the comparison when the kernel did what the bug does.
BUG_ERROR_DROPPED = "dirty-bitmap-error-dropped"
BUG_OVERRUN = "dirty-bitmap-overrun"


class _Both:
    """Records into the kernel's bitmap and the documented one alike."""

    def __init__(self, *bitmaps: IovaBitmap) -> None:
        self.bitmaps = bitmaps

    def set(self, iova: int, length: int) -> None:
        for b in self.bitmaps:
            b.set(iova, length)


def _capture(m: Model, addr: int, n: int, bitmap: IovaBitmap) -> bytes:
    """UserBuf.capture of the bitmap as it is after `bitmap`'s pending writes, without
    counting it into the capture room."""
    n = min(n, CAPTURE_MAX)
    if n <= 0 or n > CAPTURE_ROOM - m.captured or not m.mem.one_readable_buffer(addr, n):
        return b""
    return bitmap.read(addr, n)


def get_dirty_bitmap(m: Model, a: Args) -> dict:
    """iommufd_hwpt_get_dirty_bitmap -> iopt_read_and_clear_dirty_data ->
    iommu_read_and_clear_dirty -> __iommu_read_and_clear_dirty: the areas back to back
    from iova, each piece read (and cleared) by the mock; the walk stops at the first
    error (tracking off: EINVAL) or at a hole (EINVAL).

    What the model predicts is what the uAPI documents, not what 6.12 does:
    - 6.12 drops the walk's error (iommu_read_and_clear_dirty returns its `ret = 0`
      whatever iova_bitmap_for_each returned) and the bits iova_bitmap_set could not
      record because the bitmap's page cannot be pinned: the model returns the walk's
      error, else EFAULT for a bit that was not recorded (the mock cleared it already);
    - 6.12 records a huge IOPTE past the end of the range into the user's memory past
      the bitmap: the model records only the range's bits.
    The dirty bits are read and cleared the same either way. When the kernel result
    is exactly what the bug gives, the model says so (Model.known_bug) and keeps the
    user memory the kernel left."""
    flags = a["flags"]
    if flags & ~IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR or a["__reserved"]:
        raise KernelError(EOPNOTSUPP)
    hwpt = get_hwpt_paging(m, a["hwpt_id"])
    if hwpt.dirty_unknown is not None:
        m.objects.doubt(f"the dirty bits of hwpt {hwpt.id} are unknown {hwpt.dirty_unknown}")
    iopt = hwpt.ioas.iopt
    iova, length, page_size = a["iova"], a["length"], a["page_size"]
    check_iova_range(iopt, iova, length, page_size)
    if not hwpt.dirty_ops:
        raise KernelError(EOPNOTSUPP)
    last = iova + length - 1
    data = a["data"]
    kernel_bm = IovaBitmap(m.mem, iova, length, page_size, data)
    fixed_bm = IovaBitmap(m.mem, iova, length, page_size, data, clamp=True)
    both = _Both(kernel_bm, fixed_bm)
    rc = 0
    walk = iopt.contig(iova, last)
    for area, cur in walk:
        rc = mock.read_and_clear_dirty(hwpt, area, cur, min(last, area.last) - cur + 1, flags,
                                       both)
        if rc:
            break
    else:
        if not walk.done:
            rc = EINVAL
    if not rc and fixed_bm.pin_failed:
        rc = EFAULT
    n = plan_struct(m.op).capture_len  # type: ignore[arg-type]
    fixed = b"" if rc else _capture(m, data, n, fixed_bm)
    try:
        bug: bytes | None = _capture(m, data, n, kernel_bm)
    except Unsure:
        bug = None
    if bug is not None and (rc or bug != fixed) and \
            m.known_bug(BUG_ERROR_DROPPED if rc else BUG_OVERRUN, 0, {"bitmap": bug}):
        kernel_bm.commit()
        m.captured += len(bug)
    elif bug is None and rc and m.known_bug(BUG_ERROR_DROPPED, 0, {}):
        # the bitmap's memory is unknown already (what the bug leaves there cannot be
        # told): the walk failed and 6.12 returned 0, which is the bug whatever the bits
        kernel_bm.commit()
        got = m.kernel_result().out.get("bitmap")  # type: ignore[union-attr]
        m.captured += len(got) if isinstance(got, (bytes, bytearray)) else 0
    else:
        fixed_bm.commit()
        m.captured += len(fixed)
    if rc:
        raise KernelError(rc)
    return {"bitmap": fixed}


# -- invalidation ------------------------------------------------------------------------
INV = struct.Struct("<II")  # struct iommu_hwpt_invalidate_selftest {flags, iotlb_id}


def _invalidate_buf(m: Model, a: Args) -> UserBuf:
    if a.has("data_uptr"):
        return UserBuf(m, a["data_uptr"], what="invalidation entries")
    side = plan_struct(m.op).side("data_uptr")  # type: ignore[arg-type]
    assert side is not None
    return UserBuf(m, None, side_image(side, m.value_of), "invalidation entries")


def invalidate(m: Model, a: Args) -> dict:
    """iommufd_hwpt_invalidate: entry_num is written back on every return, as the
    number of entries handled (0 before the driver runs)."""
    if a["__reserved"]:
        raise KernelError(EOPNOTSUPP, {"entry_num": 0})
    entry_num, entry_len = a["entry_num"], a["entry_len"]
    data_uptr = a["data_uptr"] if a.has("data_uptr") else 1  # the side array: not NULL
    if entry_num and (not data_uptr or not entry_len or entry_len > PAGE_SIZE
                      or entry_num > IOMMU_HWPT_INVALIDATE_ENTRY_NUM_MAX):
        raise KernelError(EINVAL, {"entry_num": 0})
    hwpt = m.objects.get(a["hwpt_id"], OBJ_HWPT_NESTED)
    if hwpt is None:
        raise KernelError(ENOENT, {"entry_num": 0})
    assert isinstance(hwpt, HwptNested)
    rc, done = _mock_invalidate(m, a, hwpt, entry_num, entry_len)
    if rc:
        raise KernelError(rc, {"entry_num": done})
    return {"entry_num": done}


def _mock_invalidate(m: Model, a: Args, hwpt: HwptNested, entry_num: int,
                     entry_len: int) -> tuple[int, int]:
    """mock_domain_cache_invalidate_user: (errno, entries processed)."""
    if a["data_type"] != IOMMU_HWPT_INVALIDATE_DATA_SELFTEST:
        return EINVAL, 0
    buf = _invalidate_buf(m, a) if entry_num else None
    done = 0
    for i in range(entry_num):
        # iommu_copy_struct_from_user_array: the user's entry must be exactly the
        # kernel's 8 bytes (shorter or longer is EINVAL), then copy_struct_from_user
        if entry_len != INV.size:
            return EINVAL, done
        assert buf is not None
        raw = buf.read(entry_len * i, INV.size)
        if raw is None:
            return EFAULT, done
        fl, iid = INV.unpack(raw)
        if fl & ~IOMMU_TEST_INVALIDATE_FLAG_ALL:
            return EOPNOTSUPP, done
        if iid > MOCK_NESTED_DOMAIN_IOTLB_ID_MAX:
            return EINVAL, done
        if fl & IOMMU_TEST_INVALIDATE_FLAG_ALL:
            hwpt.iotlb = [0] * MOCK_NESTED_DOMAIN_IOTLB_NUM
        else:
            hwpt.iotlb[iid] = 0
        done += 1
    return 0, done
