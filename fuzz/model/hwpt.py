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


def hwpt_alloc(m: Model, a: Args) -> dict:
    """iommufd_hwpt_alloc."""
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
    """iommufd_hwpt_set_dirty_tracking (__reserved is not checked)."""
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


def get_dirty_bitmap(m: Model, a: Args) -> dict:
    """iommufd_hwpt_get_dirty_bitmap -> iopt_read_and_clear_dirty_data ->
    iommu_read_and_clear_dirty. The last one ignores what iova_bitmap_for_each
    returns, so once the bitmap is set up the ioctl succeeds whatever happens: a
    range not covered by areas back to back stops at the hole, a domain with
    tracking off records nothing (the mock's -EINVAL), a bitmap that cannot be
    pinned records nothing - all with 0."""
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
    if hwpt.dirty_tracking and any(iova <= s * mock.SLOT <= last for s in hwpt.dirty):
        mock.check_not_huge(hwpt, iova, last)
    bitmap = IovaBitmap(m.mem, iova, length, page_size, a["data"])
    for area, cur in iopt.contig(iova, last):
        piece_last = min(last, area.last)
        if mock.read_and_clear_dirty(hwpt, cur, piece_last - cur + 1, flags, bitmap):
            break
    nbytes = plan_struct(m.op).capture_len  # type: ignore[arg-type]
    return {"bitmap": UserBuf(m, a["data"]).capture(nbytes)}


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
