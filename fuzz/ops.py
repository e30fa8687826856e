"""The op table: every operation a program can contain, named after the uAPI.

One entry per op says which ioctl it is, which struct carries it, how each IR
argument maps onto a struct field, and which fields the kernel writes back.
The encoder (host), the reference model and the generator all read this table;
nothing else knows struct layouts or ioctl numbers.

Argument kinds:
  u16/u32/u64  plain integers (a literal or a Ref to an earlier op's output)
  uptr         a user pointer: a BufPtr into a program buffer, or a literal
  ranges       a list of [start, last] pairs placed in a side array; the struct
               field holds its address (IOAS_ALLOW_IOVAS)
  capacity     number of entries of a side array the kernel fills
               (IOAS_IOVA_RANGES.num_iovas)
  u8           one byte (GET_HW_INFO.__reserved[i])
  pairs        a list of [u32, u32] pairs placed in a side array (HWPT_INVALIDATE
               entries {flags, iotlb_id}, WRITE page responses {cookie, code})
  side_u32     a u32 the encoder puts into the op's side array, not into the struct
               (HWPT_ALLOC.iotlb: struct iommu_hwpt_selftest; WRITE.cookie/code:
               the first struct iommu_hwpt_page_response); may be a Ref
fuzz/sidearrays.py says how big each side array is and where pointers default to.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# ioctl kinds
IOMMUFD = "iommufd"  # struct ioctl on the iommufd fd, struct starts with __u32 size
TEST = "test"  # IOMMU_TEST_CMD with a fixed iommu_test_cmd.op
VFIO_VAL = "vfio_val"  # vfio ioctl whose argument is passed by value
VFIO_STRUCT = "vfio_struct"  # vfio ioctl with an argsz-prefixed struct
CLOSE = "close"  # close(2) of an fd an earlier op returned
FDIO = "fdio"  # read(2)/write(2) on an fd an earlier op returned (the fault fd)


@dataclass(frozen=True)
class Arg:
    name: str
    kind: str  # u8 | u16 | u32 | u64 | uptr | ranges | capacity | pairs | side_u32
    path: str  # struct field path, e.g. "access_rw.iova"; "" for by-value args


@dataclass(frozen=True)
class OpSpec:
    name: str
    kind: str
    request: str  # ioctl request macro name (fuzz.uapi resolves it)
    struct: str  # C struct type, "" for by-value and close
    args: tuple[Arg, ...]
    outputs: tuple[str, ...]  # fields the kernel writes (also valid Ref targets)
    test_op: str = ""  # IOMMU_TEST_OP_* for TEST ops
    size_field: str = "size"  # "size" for iommufd, "argsz" for vfio structs
    ref_outputs: dict[str, str] = field(default_factory=dict)  # output -> object kind


def _a(name: str, kind: str = "u32", path: str | None = None) -> Arg:
    return Arg(name, kind, name if path is None else path)


def _test(name: str, member: str, args: list[Arg], outputs: tuple[str, ...] = (),
          refs: dict[str, str] | None = None) -> OpSpec:
    base = (_a("id"), _a("__reserved"))
    full = base + tuple(Arg(a.name, a.kind, f"{member}.{a.path}") for a in args) + (_a("last"),)
    return OpSpec(name, TEST, "IOMMU_TEST_CMD", "struct iommu_test_cmd", full, outputs,
                  test_op="IOMMU_TEST_OP_" + name.removeprefix("TEST_"), ref_outputs=refs or {})


OPS: dict[str, OpSpec] = {}


def _add(*specs: OpSpec) -> None:
    for s in specs:
        OPS[s.name] = s


_add(
    OpSpec("DESTROY", IOMMUFD, "IOMMU_DESTROY", "struct iommu_destroy", (_a("id"),), ()),
    OpSpec("IOAS_ALLOC", IOMMUFD, "IOMMU_IOAS_ALLOC", "struct iommu_ioas_alloc",
           (_a("flags"), _a("out_ioas_id")), ("out_ioas_id",), ref_outputs={"out_ioas_id": "ioas"}),
    OpSpec("IOAS_ALLOW_IOVAS", IOMMUFD, "IOMMU_IOAS_ALLOW_IOVAS", "struct iommu_ioas_allow_iovas",
           (_a("ioas_id"), _a("num_iovas"), _a("__reserved"), _a("allowed_iovas", "ranges")), ()),
    OpSpec("IOAS_IOVA_RANGES", IOMMUFD, "IOMMU_IOAS_IOVA_RANGES", "struct iommu_ioas_iova_ranges",
           (_a("ioas_id"), _a("num_iovas", "capacity"), _a("__reserved"),
            _a("allowed_iovas", "uptr"), _a("out_iova_alignment", "u64")),
           ("num_iovas", "out_iova_alignment", "ranges")),
    OpSpec("IOAS_MAP", IOMMUFD, "IOMMU_IOAS_MAP", "struct iommu_ioas_map",
           (_a("flags"), _a("ioas_id"), _a("__reserved"), _a("user_va", "uptr"),
            _a("length", "u64"), _a("iova", "u64")), ("iova",), ref_outputs={"iova": "iova"}),
    OpSpec("IOAS_COPY", IOMMUFD, "IOMMU_IOAS_COPY", "struct iommu_ioas_copy",
           (_a("flags"), _a("dst_ioas_id"), _a("src_ioas_id"), _a("length", "u64"),
            _a("dst_iova", "u64"), _a("src_iova", "u64")), ("dst_iova",),
           ref_outputs={"dst_iova": "iova"}),
    OpSpec("IOAS_UNMAP", IOMMUFD, "IOMMU_IOAS_UNMAP", "struct iommu_ioas_unmap",
           (_a("ioas_id"), _a("iova", "u64"), _a("length", "u64")), ("length",)),
    OpSpec("OPTION", IOMMUFD, "IOMMU_OPTION", "struct iommu_option",
           (_a("option_id"), _a("op", "u16"), _a("__reserved", "u16"), _a("object_id"),
            _a("val64", "u64")), ("val64",)),
    OpSpec("VFIO_IOAS", IOMMUFD, "IOMMU_VFIO_IOAS", "struct iommu_vfio_ioas",
           (_a("ioas_id"), _a("op", "u16"), _a("__reserved", "u16")), ("ioas_id",),
           ref_outputs={"ioas_id": "ioas"}),
    _test("TEST_ADD_RESERVED", "add_reserved", [_a("start", "u64"), _a("length", "u64")]),
    _test("TEST_MOCK_DOMAIN", "mock_domain",
          [_a("out_stdev_id"), _a("out_hwpt_id"), _a("out_idev_id")],
          ("out_stdev_id", "out_hwpt_id", "out_idev_id"),
          {"out_stdev_id": "stdev", "out_hwpt_id": "hwpt", "out_idev_id": "idev"}),
    _test("TEST_MOCK_DOMAIN_FLAGS", "mock_domain_flags",
          [_a("out_stdev_id"), _a("out_hwpt_id"), _a("out_idev_id"), _a("dev_flags")],
          ("out_stdev_id", "out_hwpt_id", "out_idev_id"),
          {"out_stdev_id": "stdev", "out_hwpt_id": "hwpt", "out_idev_id": "idev"}),
    _test("TEST_MOCK_DOMAIN_REPLACE", "mock_domain_replace", [_a("pt_id")], ("pt_id",)),
    _test("TEST_MD_CHECK_MAP", "check_map",
          [_a("iova", "u64"), _a("length", "u64"), _a("uptr", "uptr")]),
    _test("TEST_MD_CHECK_REFS", "check_refs",
          [_a("length", "u64"), _a("uptr", "uptr"), _a("refs")]),
    _test("TEST_CREATE_ACCESS", "create_access", [_a("out_access_fd"), _a("flags")],
          ("out_access_fd",), {"out_access_fd": "access"}),
    _test("TEST_DESTROY_ACCESS_PAGES", "destroy_access_pages", [_a("access_pages_id")]),
    _test("TEST_ACCESS_PAGES", "access_pages",
          [_a("flags"), _a("out_access_pages_id"), _a("iova", "u64"), _a("length", "u64"),
           _a("uptr", "uptr")], ("out_access_pages_id",),
          {"out_access_pages_id": "access_pages"}),
    # ACCESS_RW's result also carries "data": the bytes at uptr after the call.
    _test("TEST_ACCESS_RW", "access_rw",
          [_a("iova", "u64"), _a("length", "u64"), _a("uptr", "uptr"), _a("flags")], ("data",)),
    _test("TEST_SET_TEMP_MEMORY_LIMIT", "memory_limit", [_a("limit")]),
    _test("TEST_ACCESS_REPLACE_IOAS", "access_replace_ioas", [_a("ioas_id")]),
    # -- hw_pagetable.c, device.c, fault.c (HWPT ops, hw info, fault queues) --
    OpSpec("HWPT_ALLOC", IOMMUFD, "IOMMU_HWPT_ALLOC", "struct iommu_hwpt_alloc",
           (_a("flags"), _a("dev_id"), _a("pt_id"), _a("out_hwpt_id"), _a("__reserved"),
            _a("data_type"), _a("data_len"), _a("data_uptr", "uptr"), _a("fault_id"),
            _a("__reserved2"), _a("iotlb", "side_u32", "")),
           ("out_hwpt_id",), ref_outputs={"out_hwpt_id": "hwpt"}),
    # GET_HW_INFO's result also carries "data": the data_len bytes at data_uptr after
    # the call (by default a side array of the executor's).
    OpSpec("GET_HW_INFO", IOMMUFD, "IOMMU_GET_HW_INFO", "struct iommu_hw_info",
           (_a("flags"), _a("dev_id"), _a("data_len"), _a("data_uptr", "uptr"),
            _a("out_data_type"), _a("out_max_pasid_log2", "u8"),
            _a("__reserved0", "u8", "__reserved.0"), _a("__reserved1", "u8", "__reserved.1"),
            _a("__reserved2", "u8", "__reserved.2"), _a("out_capabilities", "u64")),
           ("data_len", "out_data_type", "out_max_pasid_log2", "out_capabilities", "data")),
    OpSpec("HWPT_SET_DIRTY_TRACKING", IOMMUFD, "IOMMU_HWPT_SET_DIRTY_TRACKING",
           "struct iommu_hwpt_set_dirty_tracking",
           (_a("flags"), _a("hwpt_id"), _a("__reserved")), ()),
    # GET_DIRTY_BITMAP's result carries "bitmap": the bitmap bytes at data after the call.
    OpSpec("HWPT_GET_DIRTY_BITMAP", IOMMUFD, "IOMMU_HWPT_GET_DIRTY_BITMAP",
           "struct iommu_hwpt_get_dirty_bitmap",
           (_a("hwpt_id"), _a("flags"), _a("__reserved"), _a("iova", "u64"),
            _a("length", "u64"), _a("page_size", "u64"), _a("data", "uptr")), ("bitmap",)),
    OpSpec("HWPT_INVALIDATE", IOMMUFD, "IOMMU_HWPT_INVALIDATE", "struct iommu_hwpt_invalidate",
           (_a("hwpt_id"), _a("data_uptr", "uptr"), _a("data_type"), _a("entry_len"),
            _a("entry_num"), _a("__reserved"), _a("entries", "pairs", "")), ("entry_num",)),
    OpSpec("FAULT_QUEUE_ALLOC", IOMMUFD, "IOMMU_FAULT_QUEUE_ALLOC", "struct iommu_fault_alloc",
           (_a("flags"), _a("out_fault_id"), _a("out_fault_fd")),
           ("out_fault_id", "out_fault_fd"),
           ref_outputs={"out_fault_id": "fault", "out_fault_fd": "fault_fd"}),
    _test("TEST_DIRTY", "dirty",
          [_a("flags"), _a("iova", "u64"), _a("length", "u64"), _a("page_size", "u64"),
           _a("uptr", "uptr"), _a("out_nr_dirty", "u64")], ("out_nr_dirty",)),
    _test("TEST_MD_CHECK_IOTLB", "check_iotlb", [_a("iotlb_id", "u32", "id"), _a("iotlb")]),
    _test("TEST_TRIGGER_IOPF", "trigger_iopf",
          [_a("dev_id"), _a("pasid"), _a("grpid"), _a("perm"), _a("addr", "u64")]),
    OpSpec("CLOSE", CLOSE, "", "", (_a("fd", "u32", ""),), ()),
    # read(2) of struct iommu_hwpt_pgfault records from a fault fd. buf: where the
    # kernel writes (by default a side array); "records": each record read, as
    # [flags, dev_id, pasid, grpid, perm, __reserved, addr, length, cookie];
    # "cookie": the first record's cookie (0 if none), a Ref target for WRITE.
    OpSpec("READ", FDIO, "", "", (_a("fd", "u32", ""), _a("buf", "uptr", ""),
                                   _a("count", "u64", "")), ("ret", "cookie", "records")),
    # write(2) of struct iommu_hwpt_page_response {cookie, code} entries to a fault fd:
    # the first from cookie/code, more from "responses", all in a side array (or from
    # buf if given); count defaults to 8 bytes per entry.
    OpSpec("WRITE", FDIO, "", "", (_a("fd", "u32", ""), _a("buf", "uptr", ""),
                                    _a("count", "u64", ""), _a("cookie", "side_u32", ""),
                                    _a("code", "side_u32", ""), _a("responses", "pairs", "")),
           ("ret",)),
    OpSpec("VFIO_GET_API_VERSION", VFIO_VAL, "VFIO_GET_API_VERSION", "", (), ("ret",)),
    OpSpec("VFIO_CHECK_EXTENSION", VFIO_VAL, "VFIO_CHECK_EXTENSION", "",
           (_a("extension", "u64", ""),), ("ret",)),
    OpSpec("VFIO_SET_IOMMU", VFIO_VAL, "VFIO_SET_IOMMU", "", (_a("type", "u64", ""),), ("ret",)),
    # GET_INFO's result also carries "caps": the decoded capability chain.
    OpSpec("VFIO_IOMMU_GET_INFO", VFIO_STRUCT, "VFIO_IOMMU_GET_INFO",
           "struct vfio_iommu_type1_info", (_a("flags"), _a("cap_offset"), _a("pad")),
           ("argsz", "flags", "iova_pgsizes", "cap_offset", "caps"), size_field="argsz"),
    OpSpec("VFIO_IOMMU_MAP_DMA", VFIO_STRUCT, "VFIO_IOMMU_MAP_DMA",
           "struct vfio_iommu_type1_dma_map",
           (_a("flags"), _a("vaddr", "uptr"), _a("iova", "u64"), _a("size", "u64")), (),
           size_field="argsz"),
    OpSpec("VFIO_IOMMU_UNMAP_DMA", VFIO_STRUCT, "VFIO_IOMMU_UNMAP_DMA",
           "struct vfio_iommu_type1_dma_unmap",
           (_a("flags"), _a("iova", "u64"), _a("size", "u64")), ("size",), size_field="argsz"),
)

# Every op also accepts these, to reach the malformed-struct paths:
#   "size"  (or "argsz" for vfio structs): overrides the natural struct size
#   "tail": a byte value written into the bytes past the natural struct size
#           when "size" is larger (copy_struct_from_user's E2BIG path)
COMMON_ARGS = ("size", "argsz", "tail")

# Object kinds that refs can carry, for generators and mutators.
OBJECT_KINDS = ("ioas", "hwpt", "stdev", "idev", "access", "access_pages", "iova", "fault",
                "fault_fd")
