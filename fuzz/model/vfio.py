"""vfio_compat.c: the VFIO type1 container ioctls on the iommufd fd. They all work
on the compat IOAS (ictx->vfio_ioas), which only IOMMU_VFIO_IOAS SET creates in
this setup (no vfio group is ever attached), else ENODEV."""

from __future__ import annotations

import struct
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
from fuzz.model.errors import ALL, KernelError, Unsure
from fuzz.model.ioas import unmap_iova
from fuzz.model.objects import Ioas
from fuzz.prog.layout import decode_caps, plan_struct

if TYPE_CHECKING:
    from fuzz.model.model import Args, Model

DMA_AVAIL_CAP_SIZE = 12  # sizeof(struct vfio_iommu_type1_info_dma_avail)
IOVA_CAP_HDR_SIZE = 16  # header + nr_iovas + reserved
IOVA_RANGE_SIZE = 16


def get_compat_ioas(m: Model) -> Ioas:
    if m.vfio_ioas is None:
        raise KernelError(ENODEV)
    m.objects.touch(m.vfio_ioas, primary=True)
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
    """iommufd_vfio_iommu_get_info, replayed on the bytes of the executor's buffer
    (fuzz.prog.layout.plan_struct: max(24, argsz, 24 + the cap space) bytes, at most
    MAX_STRUCT, zeros or 'tail' past 24), then decoded as the executor decodes it:
    the cap chain from the returned cap_offset, within that buffer."""
    argsz = a["argsz"]
    if argsz < VFIO_INFO_MINSZ:
        raise KernelError(EINVAL)
    ioas = get_compat_ioas(m)
    ranges = ioas.iopt.iova_ranges()

    plan = plan_struct(m.op)  # the executor's buffer: its size and its tail bytes
    real = plan.real
    buf = bytearray(real)
    if plan.tail_len:
        buf[plan.natural:plan.natural + plan.tail_len] = bytes([plan.tail]) * plan.tail_len
    _put(buf, 0, 4, argsz)
    for name, off, width in (("flags", 4, 4), ("cap_offset", 16, 4), ("pad", 20, 4)):
        if name in a:
            _put(buf, off, width, a[name])

    def user_write(off: int, data: bytes) -> None:
        if off + len(data) > real:
            raise Unsure("GET_INFO writes past the executor's buffer", scope=ALL)
        buf[off:off + len(data)] = data

    # the capability chain, as the kernel writes it
    total = VFIO_INFO_SIZE
    last_cap: int | None = None
    for fill in (_fill_dma_avail, _fill_iova):
        if argsz > total:
            cap_size = fill(user_write, total, argsz - total, ranges)
        else:
            cap_size = fill(None, total, 0, ranges)
        cap_size = (cap_size + 7) & ~7
        if last_cap is not None and argsz >= total:
            user_write(last_cap + 4, total.to_bytes(4, "little"))  # put_user(next)
        last_cap = total
        total += cap_size
    cap_offset = VFIO_INFO_SIZE if argsz >= total else 0
    info = (total.to_bytes(4, "little")
            + (VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS).to_bytes(4, "little")
            + get_pagesizes(ioas).to_bytes(8, "little")
            + cap_offset.to_bytes(4, "little") + bytes(4))
    minsz = min(argsz, VFIO_INFO_SIZE)
    buf[:minsz] = info[:minsz]
    out_cap_offset = int.from_bytes(buf[16:20], "little")
    return {"argsz": int.from_bytes(buf[0:4], "little"),
            "flags": int.from_bytes(buf[4:8], "little"),
            "iova_pgsizes": int.from_bytes(buf[8:16], "little"),
            "cap_offset": out_cap_offset,
            "caps": decode_caps(bytes(buf), out_cap_offset)}


def _put(buf: bytearray, off: int, width: int, value: int) -> None:
    buf[off:off + width] = (value % (1 << (8 * width))).to_bytes(width, "little")


def _fill_dma_avail(write, off: int, avail: int, ranges) -> int:
    """iommufd_fill_cap_dma_avail."""
    if write is not None and avail >= DMA_AVAIL_CAP_SIZE:
        write(off, struct.pack("<HHII", VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, 1, 0, U32))
    return DMA_AVAIL_CAP_SIZE


def _fill_iova(write, off: int, avail: int, ranges) -> int:
    """iommufd_fill_cap_iova: each range written while it fits, then the header."""
    nr = 0
    for start, end in ranges:
        if write is not None and avail >= IOVA_CAP_HDR_SIZE + IOVA_RANGE_SIZE * (nr + 1):
            write(off + IOVA_CAP_HDR_SIZE + IOVA_RANGE_SIZE * nr, struct.pack("<QQ", start, end))
        nr += 1
    if write is not None and avail >= IOVA_CAP_HDR_SIZE + IOVA_RANGE_SIZE * nr:
        write(off, struct.pack("<HHIII", VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, 1, 0, nr, 0))
    return IOVA_CAP_HDR_SIZE + IOVA_RANGE_SIZE * nr


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
    pages, start_byte = m.new_pages(a["vaddr"], length, bool(prot & IOMMU_WRITE))
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
