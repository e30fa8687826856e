"""main.c: the object table (ictx->objects) and the object types it holds.

ictx->objects is an xarray with XA_FLAGS_ALLOC1 and xa_limit_31b: ids start at 1
and each allocation takes the lowest free id. _iommufd_object_alloc reserves the
id (XA_ZERO_ENTRY, invisible to iommufd_get_object: ENOENT) until
iommufd_object_finalize publishes the object; iommufd_object_abort frees it.

The 'users' refcount is derived from the object graph instead of being counted:
an IOAS is used by each HWPT on it and each access attached to it, a HWPT by
each device attached to it, a device by its bind (the selftest object) and an
access by its driver (the access fd) - so DESTROY of an idev, an access, or a
HWPT with devices is EBUSY.
"""

from __future__ import annotations

import heapq

from fuzz.model.consts import MOCK_HUGE_PAGE_SIZE, MOCK_IO_PAGE_SIZE
from fuzz.model.iopt import IoPagetable

OBJ_DEVICE = "device"
OBJ_HWPT_PAGING = "hwpt_paging"
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
    """struct iommufd_hwpt_paging wrapping a mock_iommu_domain. Every HWPT this
    op set can create is an automatic domain (auto_domain = true)."""

    type = OBJ_HWPT_PAGING

    def __init__(self, ioas: Ioas, huge_iova: bool) -> None:
        super().__init__()
        self.ioas = ioas
        self.auto_domain = True
        self.huge_iova = huge_iova  # pgsize_bitmap also has MOCK_HUGE_PAGE_SIZE
        self.devices: list[Device] = []

    def users(self) -> int:
        return 1 + len(self.devices)

    @property
    def pgsize_bitmap(self) -> int:
        return MOCK_IO_PAGE_SIZE | (MOCK_HUGE_PAGE_SIZE if self.huge_iova else 0)


class Device(Object):
    """struct iommufd_device of a mock device; each mock device has its own group."""

    type = OBJ_DEVICE

    def __init__(self, dev_flags: int) -> None:
        super().__init__()
        self.dev_flags = dev_flags
        self.hwpt: HwPagetable | None = None  # igroup->hwpt

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

    def get(self, obj_id: int, typ: str | None = None) -> Object | None:
        """iommufd_get_object: None (ENOENT) for a free or reserved id or a wrong type."""
        obj = self.objs.get(obj_id)
        if obj is None or not obj.finalized or (typ is not None and obj.type != typ):
            return None
        return obj

    def empty(self) -> bool:
        return not self.objs
