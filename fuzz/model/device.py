"""device.c: attaching mock devices to HWPTs (attach, replace, detach, automatic
domains), the HWPT puts that follow, and IOMMU_GET_HW_INFO.

Each mock device sits alone in its iommu_group, so igroup->device_list holds at
most the one device and every attach reaches the driver (iommufd_hwpt_attach_device).
The mock driver reports no reserved regions, so iopt_table_enforce_dev_resv_regions
and the MSI set-up never fail or change anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fuzz.model import fault as faults
from fuzz.model.consts import (
    EFAULT,
    EINVAL,
    ENOENT,
    EOPNOTSUPP,
    IOMMU_HW_CAP_DIRTY_TRACKING,
    IOMMU_HW_INFO_SELFTEST_REGVAL,
    IOMMU_HW_INFO_TYPE_SELFTEST,
    IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
    IOMMU_HWPT_ALLOC_NEST_PARENT,
    MOCK_FLAGS_DEVICE_HUGE_IOVA,
    MOCK_FLAGS_DEVICE_NO_DIRTY,
    U64,
)
from fuzz.model.errors import KernelError, Unsure
from fuzz.model.objects import (
    OBJ_DEVICE,
    OBJ_HWPT_NESTED,
    OBJ_HWPT_PAGING,
    OBJ_IOAS,
    Device,
    HwPagetable,
    HwptNested,
    Ioas,
)
from fuzz.model.ucmd import respond_field
from fuzz.model.userbuf import UserBuf
from fuzz.prog.layout import plan_struct, scratch_image

if TYPE_CHECKING:
    from fuzz.model.model import Args, Model

Hwpt = HwPagetable | HwptNested


def get_device(m: Model, dev_id: int, changes: bool = True) -> Device:
    """iommufd_get_device: ENOENT for anything that is not an IOMMUFD_OBJ_DEVICE.
    changes False: the op only reads the device (HWPT_ALLOC, GET_HW_INFO)."""
    idev = m.objects.get(dev_id, OBJ_DEVICE, primary=changes)
    if idev is None:
        raise KernelError(ENOENT)
    return idev  # type: ignore[return-value]


def mock_attach_ok(idev: Device, hwpt: Hwpt) -> bool:
    """mock_domain_nop_attach: a device with MOCK_FLAGS_DEVICE_NO_DIRTY refuses a
    domain with dirty_ops (-EINVAL); nested domains have none."""
    dirty_ops = isinstance(hwpt, HwPagetable) and hwpt.dirty_ops
    return not (dirty_ops and idev.dev_flags & MOCK_FLAGS_DEVICE_NO_DIRTY)


# -- HWPT puts and destroys (hw_pagetable.c) -------------------------------------------
def hw_pagetable_put(m: Model, hwpt: Hwpt) -> None:
    """iommufd_hw_pagetable_put: an auto domain is destroyed when the xarray is its
    only user left (iommufd_object_put_and_try_destroy); any other HWPT just drops the
    reference (derived here from the device lists)."""
    if isinstance(hwpt, HwPagetable) and hwpt.auto_domain and hwpt.users() == 1:
        m.objects.remove(hwpt)
        hwpt_paging_destroy(m, hwpt)


def hwpt_paging_destroy(m: Model, hwpt: HwPagetable) -> None:
    """iommufd_hwpt_paging_destroy (and _abort): off the IOAS's hwpt_list, the domain
    out of the io_pagetable (storage moves to another domain), the domain freed."""
    ioas = hwpt.ioas
    if hwpt in ioas.hwpt_list:
        ioas.hwpt_list.remove(hwpt)
        ioas.iopt.remove_domain(hwpt)
    hwpt.dirty.clear()


def hwpt_nested_destroy(m: Model, hwpt: HwptNested) -> None:
    """iommufd_hwpt_nested_destroy: __iommufd_hwpt_destroy drops the fault's users
    reference, then the parent's."""
    if hwpt.fault is not None:
        hwpt.fault.hwpts -= 1
    hwpt.parent.children.remove(hwpt)


# -- attach / replace / detach -----------------------------------------------------------
def do_attach(m: Model, idev: Device, hwpt: Hwpt) -> Hwpt | None:
    """iommufd_hw_pagetable_attach: igroup->hwpt must be unset (or this hwpt), then
    iommufd_hwpt_attach_device: iopf enabled for a fault-capable HWPT, a new attach
    handle, the driver's attach_dev."""
    if idev.hwpt is not None and idev.hwpt is not hwpt:
        raise KernelError(EINVAL)
    if ("attach", hwpt.id) in m.fail_at:  # fail_iommufd in enforce_dev_resv_regions
        raise KernelError(EINVAL)
    if idev.hwpt is hwpt:
        raise Unsure("attaching a device twice to its own HWPT adds it to the group's "
                     "device list twice")
    if not mock_attach_ok(idev, hwpt):
        raise KernelError(EINVAL)
    idev.hwpt = hwpt
    idev.handle = object()
    hwpt.devices.append(idev)
    return None


def do_replace(m: Model, idev: Device, hwpt: Hwpt) -> Hwpt | None:
    """iommufd_device_do_replace: returns the old HWPT for the caller to put. In
    iommufd_hwpt_replace_device the faults the old attachment delivered (read or
    not) get IOMMU_PAGE_RESP_INVALID and are dropped once the new domain is in."""
    if idev.hwpt is None:
        raise KernelError(EINVAL)
    if hwpt is idev.hwpt:
        return None
    if ("attach", hwpt.id) in m.fail_at:  # fail_iommufd in enforce_dev_resv_regions
        raise KernelError(EINVAL)
    if not mock_attach_ok(idev, hwpt):
        raise KernelError(EINVAL)
    old = idev.hwpt
    old_handle = idev.handle
    idev.handle = object()
    if old.fault is not None:
        faults.auto_response(old.fault, old_handle)
    old.devices.remove(idev)
    hwpt.devices.append(idev)
    idev.hwpt = hwpt
    return old


def detach(m: Model, idev: Device) -> None:
    """iommufd_device_detach: iommufd_hwpt_detach_device (the blocking domain back,
    the attachment's faults answered and dropped), then the put."""
    hwpt = idev.hwpt
    if hwpt is None:
        return
    if hwpt.fault is not None:
        faults.auto_response(hwpt.fault, idev.handle)
    hwpt.devices.remove(idev)
    idev.hwpt = None
    idev.handle = None
    hw_pagetable_put(m, hwpt)


def hwpt_paging_alloc(m: Model, idev: Device, ioas: Ioas, immediate_attach: bool, flags: int = 0,
                      auto_domain: bool = True) -> HwPagetable:
    """iommufd_hwpt_paging_alloc after its flag checks: the object's id is taken, the
    mock domain made (mock_domain_alloc_paging), attached at once if asked
    (automatic domains), then filled with every area (iopt_table_add_domain). On any
    failure the object is aborted and its id freed. The caller finalizes it."""
    hwpt = HwPagetable(ioas, bool(idev.dev_flags & MOCK_FLAGS_DEVICE_HUGE_IOVA), auto_domain,
                       bool(flags & IOMMU_HWPT_ALLOC_NEST_PARENT),
                       bool(flags & IOMMU_HWPT_ALLOC_DIRTY_TRACKING))
    m.objects.alloc(hwpt)
    if immediate_attach:
        try:
            do_attach(m, idev, hwpt)
        except KernelError:
            m.objects.remove(hwpt)
            raise
    try:
        ioas.iopt.add_domain(hwpt)
    except KernelError:
        if immediate_attach:
            hwpt.devices.remove(idev)
            idev.hwpt = None
            idev.handle = None
        m.objects.remove(hwpt)
        raise
    ioas.hwpt_list.append(hwpt)
    return hwpt


def auto_get_domain(m: Model, idev: Device, ioas: Ioas, replace: bool) -> tuple[int, Hwpt | None]:
    """iommufd_device_auto_get_domain: the first automatic domain of the IOAS that
    takes the device (EINVAL means incompatible: try the next), else a new one."""
    attach = do_replace if replace else do_attach
    for hwpt in list(ioas.hwpt_list):
        if not hwpt.auto_domain:
            continue
        try:
            destroy = attach(m, idev, hwpt)
        except KernelError as e:
            if e.errno == EINVAL:
                continue
            raise
        return hwpt.id, destroy
    hwpt = hwpt_paging_alloc(m, idev, ioas, immediate_attach=not replace)
    destroy = None
    if replace:
        try:
            destroy = do_replace(m, idev, hwpt)
        except KernelError:
            hwpt_paging_destroy(m, hwpt)
            m.objects.remove(hwpt)
            raise
    m.objects.finalize(hwpt)
    return hwpt.id, destroy


def change_pt(m: Model, idev: Device, pt_id: int, replace: bool) -> int:
    """iommufd_device_change_pt: a paging or nested HWPT directly, an IOAS through
    its automatic domains, anything else EINVAL."""
    obj = m.objects.get(pt_id)
    if obj is None:
        raise KernelError(ENOENT)
    if obj.type in (OBJ_HWPT_PAGING, OBJ_HWPT_NESTED):
        destroy = (do_replace if replace else do_attach)(m, idev, obj)  # type: ignore[arg-type]
    elif obj.type == OBJ_IOAS:
        pt_id, destroy = auto_get_domain(m, idev, obj, replace)  # type: ignore[arg-type]
    else:
        raise KernelError(EINVAL)
    if destroy is not None:
        hw_pagetable_put(m, destroy)
    return pt_id


# -- IOMMU_GET_HW_INFO -------------------------------------------------------------------
HW_INFO = (0).to_bytes(4, "little") + IOMMU_HW_INFO_SELFTEST_REGVAL.to_bytes(4, "little")


def get_hw_info(m: Model, a: Args) -> dict:
    """iommufd_get_hw_info with mock_domain_hw_info (struct iommu_test_hw_info
    {flags 0, test_reg}): min(data_len, 8) bytes copied out, the rest of data_len
    cleared, data_len set to the driver's 8. A device without NO_DIRTY reports
    IOMMU_HW_CAP_DIRTY_TRACKING; mock devices have no PASIDs (max_pasid_log2 0)."""
    if a["flags"] or a["__reserved0"] or a["__reserved1"] or a["__reserved2"]:
        raise KernelError(EOPNOTSUPP)
    idev = get_device(m, a["dev_id"], changes=False)
    data_len = a["data_len"]
    copy_len = min(data_len, len(HW_INFO))
    if a.has("data_uptr"):
        buf = UserBuf(m, a["data_uptr"], what="hw info data")
    else:
        (scratch,) = plan_struct(m.op).scratch  # type: ignore[arg-type]
        buf = UserBuf(m, None, bytearray(scratch_image(scratch.size)), "hw info data",
                      faults_past_end=True)
    if not buf.write(HW_INFO[:copy_len], 0):
        raise KernelError(EFAULT)
    if copy_len < data_len and not buf.zero(copy_len, data_len - copy_len):
        raise KernelError(EFAULT)
    caps = 0 if idev.dev_flags & MOCK_FLAGS_DEVICE_NO_DIRTY else IOMMU_HW_CAP_DIRTY_TRACKING
    out = {"data_len": len(HW_INFO), "out_data_type": IOMMU_HW_INFO_TYPE_SELFTEST,
           "out_max_pasid_log2": 0,
           "out_capabilities": respond_field(a, "GET_HW_INFO", "out_capabilities", caps & U64)}
    out["data"] = buf.capture(data_len)
    return out
