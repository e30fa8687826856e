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
    """unknown: why the model's picture of the object may be wrong ("since op N
    (NAME): reason"), set when an op the model was unsure of may have changed it;
    every later op that touches it is unsure too. id_guessed: its id is the model's
    guess (an unsure op may have taken ids the model does not know). serial: which
    allocation of its table it is (kept by copies: a state's object at an id is the one
    a copy has there if the serials match, not a later object given the freed id).
    id_shown: some op's output shows its id (refs to it read the model's id for it
    while that is a guess: Model._take_kernel_ids)."""

    type = ""
    unknown: str | None = None
    id_guessed = False
    id_shown = True
    serial = 0

    def __init__(self) -> None:
        self.id = 0
        self.finalized = False

    def users(self) -> int:
        return 1

    def deps(self) -> list[Object]:
        """The objects whose state this one's behaviour depends on, or that an op on
        it changes too (ObjectTable.touch)."""
        return []


class Ioas(Object):
    type = OBJ_IOAS

    def __init__(self, iopt: IoPagetable) -> None:
        super().__init__()
        self.iopt = iopt
        iopt.owner = self
        self.hwpt_list: list[HwPagetable] = []  # ioas->hwpt_list, in allocation order
        self.accesses: list[Access] = []

    def users(self) -> int:
        return 1 + len(self.hwpt_list) + len(self.accesses)

    def deps(self) -> list[Object]:
        """Its domains (they map its areas), its accesses (unmaps notify them) and
        every IOAS that shares an iopt_pages with it (pins are shared)."""
        out: list[Object] = [*self.hwpt_list, *self.accesses]
        for area in self.iopt.areas:
            for other in area.pages.areas:
                owner = other.iopt.owner
                if owner is not None and owner is not self and owner not in out:
                    out.append(owner)
        return out


class HwPagetable(Object):
    """struct iommufd_hwpt_paging wrapping a mock_iommu_domain: an automatic domain
    (TEST_MOCK_DOMAIN on an IOAS) or one HWPT_ALLOC made (auto_domain false).

    The mock domain's xarray holds an entry for every 2K IOVA page of every area of
    the IOAS (all domains of an IOAS map the same areas); `dirty` is the set of those
    pages' indexes (iova / MOCK_IO_PAGE_SIZE) with MOCK_PFN_DIRTY_IOVA set."""

    type = OBJ_HWPT_PAGING
    fault = None  # paging HWPTs never report faults (FAULT_ID_VALID is refused)
    dirty_unknown: str | None = None  # only its dirty bits are unknown (Object.unknown)

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
        # large pages were enabled again after areas went into this domain small:
        # which 1M pieces are huge is not tracked (mock.piece_state)
        self.large_pages_unknown = False
        self.devices: list[Device] = []
        self.children: list[HwptNested] = []

    def users(self) -> int:
        return 1 + len(self.devices) + len(self.children)

    def deps(self) -> list[Object]:
        return [self.ioas, *self.devices, *self.children]

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

    def deps(self) -> list[Object]:
        return [self.parent, *self.devices, *([self.fault] if self.fault else [])]


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
    queue_unknown: str | None = None  # only its queues are unknown (Object.unknown)

    def __init__(self) -> None:
        super().__init__()
        self.fd = -1
        self.fd_open = False
        self.hwpts = 0  # HWPTs whose hwpt->fault is this one (each holds a users ref)
        self.deliver: list[IopfGroup] = []
        self.response: dict[int, IopfGroup] = {}
        # a response for cookie 0 was written while the response xarray had a node:
        # 6.12 has made index 0 allocatable (known bug fault-response-cookie-0)
        self.zero_freed = False

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

    def deps(self) -> list[Object]:
        """Its domain, and the fault queue a fault it raises lands in."""
        h = self.hwpt
        if h is None:
            return []
        return [h, h.fault] if h.fault is not None else [h]


class SelftestObj(Object):
    """IOMMUFD_OBJ_SELFTEST of type TYPE_IDEV: the stdev id."""

    type = OBJ_SELFTEST

    def __init__(self) -> None:
        super().__init__()
        self.idev: Device | None = None

    def deps(self) -> list[Object]:
        return [self.idev, *self.idev.deps()] if self.idev is not None else []


class AccessItem:
    __slots__ = ("iova", "length", "id")

    def __init__(self, iova: int, length: int, item_id: int) -> None:
        self.iova = iova
        self.length = length
        self.id = item_id


class Access(Object):
    """struct iommufd_access plus the selftest's struct selftest_access."""

    type = OBJ_ACCESS
    id_shown = False  # TEST_CREATE_ACCESS gives back an fd only

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

    def deps(self) -> list[Object]:
        return [self.ioas] if self.ioas is not None else []


class ObjectTable:
    """The id table, and what the op being stepped touched of it: every object it
    looked up (with its deps) or made, and the doubts that came up - an unknown
    object touched, an id the model may not know (see fuzz.model.model)."""

    def __init__(self) -> None:
        self.objs: dict[int, Object] = {}
        self.free: list[int] = []  # heap of freed ids below next
        self.next = 1
        self.ids_unknown: str | None = None  # since when ids may differ from the kernel's
        self.allocs = 0  # objects allocated so far: the last one's serial
        self.touched: dict[int, Object] = {}  # id(obj) -> obj, this op, with deps
        self.primary: dict[int, Object] = {}  # ... only those it named or made
        self.made: list[Object] = []  # objects this op allocated
        self.doubts: list[tuple[str, bool]] = []  # (why, poisons), this op

    def begin(self) -> None:
        self.touched = {}
        self.primary = {}
        self.made = []
        self.doubts = []

    def doubt(self, why: str, poisons: bool = True) -> None:
        self.doubts.append((why, poisons))

    def touch(self, obj: Object, primary: bool = False) -> None:
        """The op works on obj (and so on its deps): an unknown one makes it unsure.
        primary: the op named obj (by id or fd) or made it."""
        if primary:
            self.primary[id(obj)] = obj
        for o in (obj, *obj.deps()):
            if id(o) in self.touched:
                continue
            self.touched[id(o)] = o
            if o.unknown is not None:
                self.doubt(f"{o.type} {o.id} is unknown {o.unknown}")

    def _lowest_free(self) -> int:
        """xa_alloc's choice: the lowest id not in use."""
        while self.free and self.free[0] in self.objs:
            heapq.heappop(self.free)
        if self.free:
            return heapq.heappop(self.free)
        self.next += 1
        return self.next - 1

    def alloc(self, obj: Object) -> Object:
        obj.id = self._lowest_free()
        self.allocs += 1
        obj.serial = self.allocs
        obj.finalized = False
        self.objs[obj.id] = obj
        self.made.append(obj)
        self.touch(obj, primary=True)
        if self.ids_unknown is not None:
            obj.id_guessed = True  # unless Model.step finds the kernel's id for it
        return obj

    def reserve(self) -> int:
        """Hold the id the next object would get, for no object (an op that took its
        first id before the ops stepped now: fuzz.model.races.first_id_early)."""
        return self._lowest_free()

    def unreserve(self, obj_id: int) -> None:
        """Give a reserve()d id back: the next object takes it, if no lower one is free."""
        heapq.heappush(self.free, obj_id)

    def put(self, obj: Object, new_id: int | None) -> bool:
        """Put obj (made by this op, then removed) back at new_id - the id the kernel
        gave it - if that is free here, else at the lowest free id. True: at new_id.
        An object whose id the model guessed and no output shows is not at new_id in
        the kernel (an xarray id holds one object until it is erased), and no ref names
        it by the model's guess (a literal id is the kernel's): it moves to the lowest
        free id, another guess."""
        held = self.objs.get(new_id) if new_id is not None else None
        if held is not None and held.id_guessed and not held.id_shown:
            del self.objs[held.id]
            held.id = self._lowest_free()
            self.objs[held.id] = held
        if new_id is None or new_id in self.objs or not 0 < new_id <= ID_LIMIT:
            obj.id = self._lowest_free()
            self.objs[obj.id] = obj
            return False
        if new_id >= self.next:
            for i in range(self.next, new_id):
                heapq.heappush(self.free, i)
            self.next = new_id + 1
        obj.id = new_id
        self.objs[new_id] = obj
        return True

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

    def get(self, obj_id: int, typ: str | None = None, touch: bool = True,
            primary: bool = True) -> Object | None:
        """iommufd_get_object: None (ENOENT) for a free or reserved id or a wrong type.
        touch False: the op only needs to know the object is there; primary False:
        it reads the object but does not change it."""
        obj = self.objs.get(obj_id)
        if obj is None or not obj.finalized:
            if self.ids_unknown is not None and 0 < obj_id <= ID_LIMIT:
                self.doubt(f"id {obj_id} may be an object the model does not know: ids are "
                           f"not known {self.ids_unknown}")
            return None
        if obj.id_guessed:
            self.doubt(f"{obj.type} {obj.id}: its id is the model's guess (ids are not known "
                       f"{self.ids_unknown})")
        if typ is not None and obj.type != typ:
            return None
        if touch:
            self.touch(obj, primary=primary)
        return obj

    def kept_from(self, before: dict[int, Object]) -> set[int]:
        """The ids held here by the objects that held them in `before` (the objs of this
        table, or of a copy of it, earlier): not an id freed since and given to a new
        object."""
        return {i for i, o in self.objs.items()
                if (b := before.get(i)) is not None and b.serial == o.serial}

    def empty(self) -> bool:
        return not self.objs
