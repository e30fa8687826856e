"""ioas.c, main.c (DESTROY, OPTION) and vfio_compat.c's IOMMU_VFIO_IOAS:
the ioctls on IOAS objects, each check in the kernel's order."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fuzz.model.consts import (
    EADDRINUSE,
    EBUSY,
    EFAULT,
    EINVAL,
    EMSGSIZE,
    ENODEV,
    ENOENT,
    EOPNOTSUPP,
    EOVERFLOW,
    EPERM,
    IOMMU_CACHE,
    IOMMU_IOAS_MAP_FIXED_IOVA,
    IOMMU_IOAS_MAP_READABLE,
    IOMMU_IOAS_MAP_WRITEABLE,
    IOMMU_OPTION_HUGE_PAGES,
    IOMMU_OPTION_OP_GET,
    IOMMU_OPTION_OP_SET,
    IOMMU_OPTION_RLIMIT_MODE,
    IOMMU_READ,
    IOMMU_VFIO_IOAS_CLEAR,
    IOMMU_VFIO_IOAS_GET,
    IOMMU_VFIO_IOAS_SET,
    IOMMU_WRITE,
    IOPT_PAGES_ACCOUNT_MM,
    IOPT_PAGES_ACCOUNT_USER,
    MOCK_FLAGS_ACCESS_SYZ,
    U64,
    ULONG_MAX,
)
from fuzz.model.errors import ALL, KernelError, Unsure
from fuzz.model.iopt import IoPagetable
from fuzz.model.objects import OBJ_IOAS, Ioas
from fuzz.prog.layout import plan_struct

if TYPE_CHECKING:
    from fuzz.model.model import Args, Model

MAP_FLAGS = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE


def get_ioas(m: Model, ioas_id: int) -> Ioas:
    ioas = m.objects.get(ioas_id, OBJ_IOAS)
    if ioas is None:
        raise KernelError(ENOENT)
    return ioas  # type: ignore[return-value]


def conv_iommu_prot(flags: int) -> int:
    prot = IOMMU_CACHE
    if flags & IOMMU_IOAS_MAP_WRITEABLE:
        prot |= IOMMU_WRITE
    if flags & IOMMU_IOAS_MAP_READABLE:
        prot |= IOMMU_READ
    return prot


def destroy(m: Model, a: Args) -> dict:
    """iommufd_object_remove(ictx, NULL, id, 0)."""
    obj = m.objects.get(a["id"])
    if obj is None:
        raise KernelError(ENOENT)
    if obj.users() != 1:
        raise KernelError(EBUSY)
    m.destroy_object(obj)
    return {}


def ioas_alloc(m: Model, a: Args) -> dict:
    if a["flags"]:
        raise KernelError(EOPNOTSUPP)
    ioas = Ioas(IoPagetable(m.mem))
    m.ioases.append(ioas)
    m.objects.alloc(ioas)
    m.objects.finalize(ioas)
    return {"out_ioas_id": ioas.id}


def _read_ranges(m: Model, a: Args, num: int):
    """Yields each iommu_iova_range the kernel copies in, in order; raises
    KernelError(EFAULT) or Unsure where the entry is not knowable.

    A list (or no allowed_iovas at all: an empty list) goes to the executor's
    zeroed side array (fuzz.prog.layout.plan_struct), whose memory ends after
    Side.alloc entries; a pointer is read from user memory."""
    raw = a.raw("allowed_iovas")
    if raw is None:
        raw = []
    if isinstance(raw, list):
        side = plan_struct(m.op).side("allowed_iovas")  # type: ignore[arg-type]
        assert side is not None
        provided = side.alloc
        for i in range(num):
            if i < len(raw):
                yield int(raw[i][0]), int(raw[i][1])
            elif i < provided:
                yield 0, 0
            else:
                # The kernel reads on past the side array into the executor's arena:
                # zeros give EINVAL ([0, 0] has start >= last), other structs most
                # likely EINVAL too, the arena's end EFAULT; nothing changes.
                raise Unsure(f"num_iovas={num} exceeds the {provided} entries the executor "
                             "provides: the kernel reads past the side array (EINVAL or "
                             "EFAULT)", unless_failed=True)
        return
    ptr = a["allowed_iovas"]
    for i in range(num):
        addr = ptr + 16 * i
        if addr + 16 > U64 + 1 or m.mem.first_bad(addr, 16, False) is not None:
            raise KernelError(EFAULT)
        b = m.mem.read(addr, 16)
        yield int.from_bytes(b[:8], "little"), int.from_bytes(b[8:], "little")


def allow_iovas(m: Model, a: Args) -> dict:
    if a["__reserved"]:
        raise KernelError(EOPNOTSUPP)
    ioas = get_ioas(m, a["ioas_id"])
    num = a["num_iovas"]
    loaded: list[tuple[int, int]] = []
    for start, last in _read_ranges(m, a, num):
        if start >= last:
            raise KernelError(EINVAL)
        if any(s <= last and e >= start for s, e in loaded):
            raise KernelError(EINVAL)
        loaded.append((start, last))
    iopt = ioas.iopt
    for s, e in loaded:
        if iopt.reserved_intersects(s, e):
            raise KernelError(EADDRINUSE)
    iopt.allowed = sorted(loaded)
    return {}



def iova_ranges(m: Model, a: Args) -> dict:
    """The executor gives a zeroed side array (fuzz.prog.layout.plan_struct: as many
    entries as the capacity says, up to MAX_SIDE_ENTRIES, the most for a capacity
    that is a Ref) and decodes 'ranges' from it: the first min(returned num_iovas,
    entries) entries, on success and EMSGSIZE only."""
    if a["__reserved"]:
        raise KernelError(EOPNOTSUPP)
    ioas = get_ioas(m, a["ioas_id"])
    cap = a["num_iovas"]
    ranges = ioas.iopt.iova_ranges()
    side_array = plan_struct(m.op).side("allowed_iovas")  # type: ignore[arg-type]
    assert side_array is not None
    entries = side_array.entries
    written = ranges[:cap]
    if a.has("allowed_iovas"):
        ptr = a["allowed_iovas"]
        for i, (s, e) in enumerate(written):
            addr = ptr + 16 * i
            try:
                bad = addr + 16 > U64 + 1 or m.mem.first_bad(addr, 16, True) is not None
            except Unsure as e:  # it may write into the agent's own memory
                raise Unsure(e.reason, scope=ALL, write=(addr, 16)) from None
            if bad:
                raise KernelError(EFAULT)
            m.mem.write(addr, s.to_bytes(8, "little") + e.to_bytes(8, "little"))
        side = [[0, 0]] * entries  # the side array is left as it was: zeros
    else:
        if len(written) > max(entries, 1):
            raise Unsure(f"the kernel writes {len(written)} ranges into the executor's side "
                         f"array of {max(entries, 1)}: the arena after it is overwritten",
                         scope=ALL)
        side = [list(r) for r in written] + [[0, 0]] * max(0, entries - len(written))
    out = {"num_iovas": len(ranges), "out_iova_alignment": ioas.iopt.iova_alignment,
           "ranges": side[:min(len(ranges), entries)]}
    if len(ranges) > cap:
        raise KernelError(EMSGSIZE, out)
    return out


def ioas_map(m: Model, a: Args) -> dict:
    flags = a["flags"]
    if (flags & ~MAP_FLAGS) or a["__reserved"]:
        raise KernelError(EOPNOTSUPP)
    iova = a["iova"]
    length = a["length"]
    if iova >= ULONG_MAX or length >= ULONG_MAX:
        raise KernelError(EOVERFLOW)
    if not flags & (IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE):
        raise KernelError(EINVAL)
    ioas = get_ioas(m, a["ioas_id"])
    prot = conv_iommu_prot(flags)
    uptr = a["user_va"]
    pages, start_byte = m.new_pages(uptr, length, bool(prot & IOMMU_WRITE))
    alloc = not flags & IOMMU_IOAS_MAP_FIXED_IOVA
    iova, _ = ioas.iopt.map_pages([(pages, start_byte, length)], length, iova, prot, alloc)
    return {"iova": iova}


def syz_conv_iova(ioas: Ioas, iova: int) -> int:
    """__iommufd_test_syz_conv_iova: the u64 is {u32 nth_area; u32 offset}."""
    nth = iova & 0xFFFFFFFF
    offset = iova >> 32
    if nth < len(ioas.iopt.areas):
        return (ioas.iopt.areas[nth].iova + offset) & U64
    return 0


def ioas_copy(m: Model, a: Args) -> dict:
    flags = a["flags"]
    src_iova = a["src_iova"]
    if flags & MOCK_FLAGS_ACCESS_SYZ:  # iommufd_test_syz_conv_iova_id
        flags &= ~MOCK_FLAGS_ACCESS_SYZ
        src = m.objects.get(a["src_ioas_id"], OBJ_IOAS)
        # its iommufd_get_ioas is a fault point (fail_iommufd in iommufd_get_object) whose
        # failure it ignores: the copy then goes on with the IOVA as given
        if src is not None and ("syz_conv", a["src_ioas_id"]) not in m.fail_at:
            src_iova = syz_conv_iova(src, src_iova)  # type: ignore[arg-type]
    if flags & ~MAP_FLAGS:
        raise KernelError(EOPNOTSUPP)
    length = a["length"]
    dst_iova = a["dst_iova"]
    if length >= ULONG_MAX or src_iova >= ULONG_MAX or dst_iova >= ULONG_MAX:
        raise KernelError(EOVERFLOW)
    if not flags & (IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE):
        raise KernelError(EINVAL)
    src_ioas = get_ioas(m, a["src_ioas_id"])
    elms = src_ioas.iopt.get_pages(src_iova, length)
    dst_ioas = get_ioas(m, a["dst_ioas_id"])
    alloc = not flags & IOMMU_IOAS_MAP_FIXED_IOVA
    iova, _ = dst_ioas.iopt.map_pages(elms, length, dst_iova, conv_iommu_prot(flags), alloc)
    return {"dst_iova": iova}


def ioas_unmap(m: Model, a: Args) -> dict:
    ioas = get_ioas(m, a["ioas_id"])
    iova = a["iova"]
    length = a["length"]
    if iova == 0 and length == U64:
        rc, unmapped = ioas.iopt.unmap_range(0, ULONG_MAX, m.notify_unmap)
        if rc:
            raise KernelError(rc)
    else:
        if iova >= ULONG_MAX or length >= ULONG_MAX:
            raise KernelError(EOVERFLOW)
        rc, unmapped = unmap_iova(m, ioas.iopt, iova, length)
        if rc:
            raise KernelError(rc)
        if not unmapped:
            raise KernelError(ENOENT)
    return {"length": unmapped}


def unmap_iova(m: Model, iopt: IoPagetable, iova: int, length: int) -> tuple[int, int]:
    """iopt_unmap_iova: (errno, unmapped)."""
    if not length:
        return EINVAL, 0
    if iova + length - 1 > ULONG_MAX:
        return EOVERFLOW, 0
    return iopt.unmap_range(iova, iova + length - 1, m.notify_unmap)


def option(m: Model, a: Args) -> dict:
    if a["__reserved"]:
        raise KernelError(EOPNOTSUPP)
    opt = a["option_id"]
    op = a["op"]
    val = a["val64"]
    if opt == IOMMU_OPTION_RLIMIT_MODE:
        if a["object_id"]:
            raise KernelError(EOPNOTSUPP)
        if op == IOMMU_OPTION_OP_GET:
            return {"val64": int(m.account_mode == IOPT_PAGES_ACCOUNT_MM)}
        if op == IOMMU_OPTION_OP_SET:
            if not m.program.has_cap("CAP_SYS_RESOURCE"):
                raise KernelError(EPERM)
            if not m.objects.empty():
                raise KernelError(EBUSY)
            if val == 0:
                m.account_mode = IOPT_PAGES_ACCOUNT_USER
            elif val == 1:
                m.account_mode = IOPT_PAGES_ACCOUNT_MM
            else:
                raise KernelError(EINVAL)
            return {"val64": val}
        raise KernelError(EOPNOTSUPP)
    if opt == IOMMU_OPTION_HUGE_PAGES:
        ioas = get_ioas(m, a["object_id"])
        iopt = ioas.iopt
        if op == IOMMU_OPTION_OP_GET:
            return {"val64": int(not iopt.disable_large_pages)}
        if op == IOMMU_OPTION_OP_SET:
            if val == 0:
                iopt.disable_large_pages_op()
            elif val == 1:
                if iopt.disable_large_pages and iopt.areas:
                    for hwpt in iopt.domains:  # these areas stay mapped with small pages
                        hwpt.large_pages_unknown = True
                iopt.enable_large_pages()
            else:
                raise KernelError(EINVAL)
            return {"val64": val}
        raise KernelError(EOPNOTSUPP)
    raise KernelError(EOPNOTSUPP)


def vfio_ioas(m: Model, a: Args) -> dict:
    if a["__reserved"]:
        raise KernelError(EOPNOTSUPP)
    op = a["op"]
    if op == IOMMU_VFIO_IOAS_GET:
        if m.vfio_ioas is None:
            raise KernelError(ENODEV)
        return {"ioas_id": m.vfio_ioas.id}
    if op == IOMMU_VFIO_IOAS_SET:
        # only the IOAS's existence matters here, not its state: no touch
        ioas = m.objects.get(a["ioas_id"], OBJ_IOAS, touch=False)
        if ioas is None:
            raise KernelError(ENOENT)
        m.vfio_ioas = ioas  # type: ignore[assignment]
        return {}
    if op == IOMMU_VFIO_IOAS_CLEAR:
        m.vfio_ioas = None
        return {}
    raise KernelError(EOPNOTSUPP)

