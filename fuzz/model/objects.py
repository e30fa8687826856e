"""main.c: the object table (ictx->objects) and the object types it holds.

ictx->objects is an xarray with XA_FLAGS_ALLOC1 and xa_limit_31b: ids start at 1
and each allocation takes the lowest free id. _iommufd_object_alloc reserves the
id (XA_ZERO_ENTRY, invisible to iommufd_get_object: ENOENT) until
iommufd_object_finalize publishes the object; iommufd_object_abort frees it.

The 'users' refcount is derived from the object graph instead of being counted:
an IOAS is used by each HWPT on it and each access attached to it, a paging HWPT
by each device attached to it and each nested HWPT on it, a nested HWPT by its
devices, a fault object by its open fd and each HWPT that reports to it, a device
by its bind (the selftest object) and an access by its driver (the access fd) -
so DESTROY of an idev, an access, a HWPT with devices or children, or a fault
whose fd is open is EBUSY.
"""

from __future__ import annotations

import heapq

from fuzz.model.consts import (
    MOCK_HUGE_PAGE_SIZE,
    MOCK_IO_PAGE_SIZE,
    MOCK_NESTED_DOMAIN_IOTLB_NUM,
)
from fuzz.model.iopt import IoPagetable

OBJ_DEVICE = "device"
OBJ_HWPT_PAGING = "hwpt_paging"
OBJ_HWPT_NESTED = "hwpt_nested"
OBJ_FAULT = "fault"
OBJ_IOAS = "ioas"
OBJ_ACCESS = "access"
OBJ_SELFTEST = "selftest"

ID_LIMIT = (1 << 31) - 1


class Object:
    type = ""

    def __init__(self) -> None:
        self.id = 0
        self.finalized = False

    def users(self) -> int:
        return 1


class Ioas(Object):
    type = OBJ_IOAS

    def __init__(self, iopt: IoPagetable) -> None:
        super().__init__()
        self.iopt = iopt
        self.hwpt_list: list[HwPagetable] = []  # ioas->hwpt_list, in allocation order
        self.accesses: list[Access] = []

    def users(self) -> int:
        return 1 + len(self.hwpt_list) + len(self.accesses)


class HwPagetable(Object):
    """struct iommufd_hwpt_paging wrapping a mock_iommu_domain: an automatic domain
    (TEST_MOCK_DOMAIN on an IOAS) or one HWPT_ALLOC made (auto_domain false).

    The mock domain's xarray holds an entry for every 2K IOVA page of every area of
    the IOAS (all domains of an IOAS map the same areas); `dirty` is the set of those
    pages' indexes (iova / MOCK_IO_PAGE_SIZE) with MOCK_PFN_DIRTY_IOVA set."""

    type = OBJ_HWPT_PAGING
    fault = None  # paging HWPTs never report faults (FAULT_ID_VALID is refused)

    def __init__(self, ioas: Ioas, huge_iova: bool, auto_domain: bool = True,
                 nest_parent: bool = False, dirty_ops: bool = False) -> None:
        super().__init__()
        self.ioas = ioas
        self.auto_domain = auto_domain
        self.huge_iova = huge_iova  # pgsize_bitmap also has MOCK_HUGE_PAGE_SIZE
        self.nest_parent = nest_parent
        self.dirty_ops = dirty_ops  # domain->dirty_ops (IOMMU_HWPT_ALLOC_DIRTY_TRACKING)
        self.dirty_tracking = False  # mock->flags & MOCK_DIRTY_TRACK
        self.dirty: set[int] = set()
        self.devices: list[Device] = []
        self.children: list[HwptNested] = []

    def users(self) -> int:
        return 1 + len(self.devices) + len(self.children)

    @property
    def pgsize_bitmap(self) -> int:
        return MOCK_IO_PAGE_SIZE | (MOCK_HUGE_PAGE_SIZE if self.huge_iova else 0)


class HwptNested(Object):
    """struct iommufd_hwpt_nested wrapping a mock_iommu_domain_nested: its parent and
    its mock IOTLB (MOCK_NESTED_DOMAIN_IOTLB_NUM u32s, all the user's iotlb at alloc)."""

    type = OBJ_HWPT_NESTED
    auto_domain = False

    def __init__(self, parent: HwPagetable, iotlb: int, fault: Fault | None) -> None:
        super().__init__()
        self.parent = parent
        self.iotlb = [iotlb] * MOCK_NESTED_DOMAIN_IOTLB_NUM
        self.fault = fault
        self.devices: list[Device] = []

    def users(self) -> int:
        return 1 + len(self.devices)


class IopfGroup:
    """An iopf_group of one fault (TRIGGER_IOPF always sets LAST_PAGE, so no partial
    faults ever join it): the record read() returns, and the attach handle it came
    through (iommufd_auto_response_faults drops a handle's groups on detach)."""

    __slots__ = ("flags", "dev_id", "pasid", "grpid", "perm", "addr", "handle", "cookie")

    def __init__(self, flags: int, dev_id: int, pasid: int, grpid: int, perm: int, addr: int,
                 handle: object) -> None:
        self.flags = flags
        self.dev_id = dev_id
        self.pasid = pasid
        self.grpid = grpid
        self.perm = perm
        self.addr = addr
        self.handle = handle
        self.cookie = 0


class Fault(Object):
    """struct iommufd_fault: groups waiting to be read (fault->deliver, FIFO) and
    groups read and waiting for a response (fault->response, by cookie)."""

    type = OBJ_FAULT

    def __init__(self) -> None:
        super().__init__()
        self.fd = -1
        self.fd_open = False
        self.hwpts = 0  # HWPTs whose hwpt->fault is this one (each holds a users ref)
        self.deliver: list[IopfGroup] = []
        self.response: dict[int, IopfGroup] = {}

    def users(self) -> int:
        return 1 + int(self.fd_open) + self.hwpts


class Device(Object):
    """struct iommufd_device of a mock device; each mock device has its own group.
    handle: the iommufd_attach_handle of the current attachment (a new one per
    attach or replace)."""

    type = OBJ_DEVICE

    def __init__(self, dev_flags: int) -> None:
        super().__init__()
        self.dev_flags = dev_flags
        self.hwpt: HwPagetable | HwptNested | None = None  # igroup->hwpt
        self.handle: object | None = None

    def users(self) -> int:
        return 2 + (1 if self.hwpt is not None else 0)


class SelftestObj(Object):
    """IOMMUFD_OBJ_SELFTEST of type TYPE_IDEV: the stdev id."""

    type = OBJ_SELFTEST

    def __init__(self) -> None:
        super().__init__()
        self.idev: Device | None = None


class AccessItem:
    __slots__ = ("iova", "length", "id")

    def __init__(self, iova: int, length: int, item_id: int) -> None:
        self.iova = iova
        self.length = length
        self.id = item_id


class Access(Object):
    """struct iommufd_access plus the selftest's struct selftest_access."""

    type = OBJ_ACCESS

    def __init__(self, needs_pin: bool) -> None:
        super().__init__()
        self.needs_pin = needs_pin
        self.iova_alignment = 4096 if needs_pin else 1
        self.ioas: Ioas | None = None
        self.list_id = 0  # iopt_access_list_id
        self.items: list[AccessItem] = []
        self.next_id = 0
        self.fd = -1
        self.open = True

    def users(self) -> int:
        return 2


class ObjectTable:
    def __init__(self) -> None:
        self.objs: dict[int, Object] = {}
        self.free: list[int] = []  # heap of freed ids below next
        self.next = 1

    def alloc(self, obj: Object) -> Object:
        while self.free and self.free[0] in self.objs:
            heapq.heappop(self.free)
        if self.free:
            obj.id = heapq.heappop(self.free)
        else:
            obj.id = self.next
            self.next += 1
        obj.finalized = False
        self.objs[obj.id] = obj
        return obj

    def finalize(self, obj: Object) -> None:
        obj.finalized = True

    def remove(self, obj: Object) -> None:
        """iommufd_object_abort or the xarray erase of a destroy."""
        del self.objs[obj.id]
        heapq.heappush(self.free, obj.id)

    def rename(self, ids: dict[int, int]) -> None:
        """Give objects other ids (old -> new; the new ones free or renamed away): the
        ids the kernel handed out to racing ops (fuzz.model.races.adopt_ids)."""
        moved = [self.objs.pop(old) for old in ids]
        for obj, new in zip(moved, ids.values()):
            obj.id = new
            self.objs[new] = obj
        self.next = max([self.next, *(i + 1 for i in self.objs)])
        self.free = [i for i in range(1, self.next) if i not in self.objs]
        heapq.heapify(self.free)

    def get(self, obj_id: int, typ: str | None = None) -> Object | None:
        """iommufd_get_object: None (ENOENT) for a free or reserved id or a wrong type."""
        obj = self.objs.get(obj_id)
        if obj is None or not obj.finalized or (typ is not None and obj.type != typ):
            return None
        return obj

    def empty(self) -> bool:
        return not self.objs
