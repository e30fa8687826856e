"""vfio_compat.c: the VFIO type1 container ioctls on the iommufd fd. They all work
on the compat IOAS (ictx->vfio_ioas), which only IOMMU_VFIO_IOAS SET creates in
this setup (no vfio group is ever attached), else ENODEV."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fuzz.model.consts import (
    CONFIG_VFIO_NOIOMMU,
    EINVAL,
    ENODEV,
    IOMMU_CACHE,
    IOMMU_READ,
    IOMMU_WRITE,
    PAGE_MASK,
    PAGE_SIZE,
    U32,
    U64,
    ULONG_MAX,
    VFIO_API_VERSION,
    VFIO_DMA_CC_IOMMU,
    VFIO_DMA_MAP_FLAG_READ,
    VFIO_DMA_MAP_FLAG_WRITE,
    VFIO_DMA_UNMAP_FLAG_ALL,
    VFIO_INFO_MINSZ,
    VFIO_INFO_SIZE,
    VFIO_IOMMU_INFO_CAPS,
    VFIO_IOMMU_INFO_PGSIZES,
    VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
    VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
    VFIO_MAP_DMA_SIZE,
    VFIO_NOIOMMU_IOMMU,
    VFIO_TYPE1_IOMMU,
    VFIO_TYPE1_NESTING_IOMMU,
    VFIO_UNMAP_ALL,
    VFIO_UNMAP_DMA_SIZE,
    VFIO_TYPE1v2_IOMMU,
)
from fuzz.model.errors import KernelError
from fuzz.model.ioas import unmap_iova
from fuzz.model.iopt import alloc_pages
from fuzz.model.objects import Ioas

if TYPE_CHECKING:
    from fuzz.model.model import Args, Model

DMA_AVAIL_CAP_SIZE = 12  # sizeof(struct vfio_iommu_type1_info_dma_avail)
IOVA_CAP_HDR_SIZE = 16  # header + nr_iovas + reserved
IOVA_RANGE_SIZE = 16


def get_compat_ioas(m: Model) -> Ioas:
    if m.vfio_ioas is None:
        raise KernelError(ENODEV)
    return m.vfio_ioas


def get_api_version(m: Model, a: Args) -> dict:
    return {"ret": VFIO_API_VERSION}


def check_extension(m: Model, a: Args) -> dict:
    ext = a["extension"]
    no_iommu = False  # ictx->no_iommu_mode is only set by a vfio group bind
    if ext in (VFIO_TYPE1_IOMMU, VFIO_TYPE1v2_IOMMU, VFIO_UNMAP_ALL):
        return {"ret": int(not no_iommu)}
    if ext == VFIO_NOIOMMU_IOMMU:
        return {"ret": int(CONFIG_VFIO_NOIOMMU)}
    if ext == VFIO_DMA_CC_IOMMU:
        ioas = get_compat_ioas(m)
        # mock devices do not report IOMMU_CAP_ENFORCE_CACHE_COHERENCY, so every
        # HWPT has enforce_cache_coherency == false
        return {"ret": 0 if ioas.hwpt_list else 1}
    if ext == VFIO_TYPE1_NESTING_IOMMU:
        return {"ret": 0}
    return {"ret": 0}


def set_iommu(m: Model, a: Args) -> dict:
    typ = a["type"]
    if typ not in (VFIO_TYPE1_IOMMU, VFIO_TYPE1v2_IOMMU):
        raise KernelError(EINVAL)
    ioas = get_compat_ioas(m)
    if typ == VFIO_TYPE1_IOMMU:
        ioas.iopt.disable_large_pages_op()
    return {"ret": 0}


def get_pagesizes(ioas: Ioas) -> int:
    bitmap = U64
    for hwpt in ioas.iopt.domains:
        bitmap &= hwpt.pgsize_bitmap
    if bitmap & ~PAGE_MASK:
        bitmap &= PAGE_MASK
        bitmap |= PAGE_SIZE
    return max(bitmap, ioas.iopt.iova_alignment)


def get_info(m: Model, a: Args) -> dict:
    argsz = a["argsz"]
    if argsz < VFIO_INFO_MINSZ:
        raise KernelError(EINVAL)
    minsz = min(argsz, VFIO_INFO_SIZE)
    ioas = get_compat_ioas(m)
    ranges = ioas.iopt.iova_ranges()
    dma_size = (DMA_AVAIL_CAP_SIZE + 7) & ~7
    iova_size = IOVA_CAP_HDR_SIZE + IOVA_RANGE_SIZE * len(ranges)
    total = VFIO_INFO_SIZE + dma_size + ((iova_size + 7) & ~7)
    cap_offset = VFIO_INFO_SIZE if argsz >= total else 0
    kernel = (total.to_bytes(4, "little")
              + (VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS).to_bytes(4, "little")
              + get_pagesizes(ioas).to_bytes(8, "little")
              + cap_offset.to_bytes(4, "little") + bytes(4))
    user = (argsz.to_bytes(4, "little") + (a["flags"] & U32).to_bytes(4, "little")
            + bytes(8) + (a["cap_offset"] & U32).to_bytes(4, "little")
            + (a["pad"] & U32).to_bytes(4, "little"))
    st = kernel[:minsz] + user[minsz:]
    # The caps the kernel wrote, walked from the first cap slot (offset 24) along
    # 'next' while each cap lies inside the caller's argsz.
    caps: list[dict] = []
    dma_off = VFIO_INFO_SIZE
    iova_off = VFIO_INFO_SIZE + dma_size
    if argsz > dma_off and argsz - dma_off >= DMA_AVAIL_CAP_SIZE:
        caps.append({"id": VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, "version": 1, "avail": U32})
        if argsz >= iova_off and argsz - iova_off >= iova_size:
            caps.append({"id": VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, "version": 1,
                         "ranges": [list(r) for r in ranges]})
    return {"argsz": int.from_bytes(st[0:4], "little"),
            "flags": int.from_bytes(st[4:8], "little"),
            "iova_pgsizes": int.from_bytes(st[8:16], "little"),
            "cap_offset": int.from_bytes(st[16:20], "little"),
            "caps": caps}


def map_dma(m: Model, a: Args) -> dict:
    if a["argsz"] < VFIO_MAP_DMA_SIZE or a["flags"] & ~(VFIO_DMA_MAP_FLAG_READ
                                                                 | VFIO_DMA_MAP_FLAG_WRITE):
        raise KernelError(EINVAL)
    flags = a["flags"]
    prot = IOMMU_CACHE
    if flags & VFIO_DMA_MAP_FLAG_READ:
        prot |= IOMMU_READ
    if flags & VFIO_DMA_MAP_FLAG_WRITE:
        prot |= IOMMU_WRITE
    ioas = get_compat_ioas(m)
    length = a["size"]
    pages, start_byte = alloc_pages(a["vaddr"], length, bool(prot & IOMMU_WRITE))
    ioas.iopt.map_pages([(pages, start_byte, length)], length, a["iova"], prot, False)
    return {}


def unmap_dma(m: Model, a: Args) -> dict:
    flags = a["flags"]
    if a["argsz"] < VFIO_UNMAP_DMA_SIZE or flags & ~VFIO_DMA_UNMAP_FLAG_ALL:
        raise KernelError(EINVAL)
    ioas = get_compat_ioas(m)
    iova = a["iova"]
    size = a["size"]
    iopt = ioas.iopt
    if flags & VFIO_DMA_UNMAP_FLAG_ALL:
        if iova != 0 or size != 0:
            raise KernelError(EINVAL)
        rc, unmapped = iopt.unmap_range(0, ULONG_MAX, m.notify_unmap)
    else:
        if iopt.disable_large_pages:
            cuts = [(iova + size - 1) & U64, (iova - 1) & U64]
            iopt.cut_iova(cuts if iova else cuts[:1])
        rc, unmapped = unmap_iova(m, iopt, iova, size)
    # unmap.size = unmapped is copied back even when the unmap failed
    if rc:
        raise KernelError(rc, {"size": unmapped})
    return {"size": unmapped}
