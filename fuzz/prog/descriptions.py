"""The op descriptions: every operation a program can contain, stated once.

Each entry is syzkaller's `sys/` description of one call at Python scale: the call
(ioctl request and struct, or close), each argument's struct field and type (flag
sets and enums by their uAPI names, the object kinds a ref must carry, side
arrays), the outputs with the object kinds they create, the program-wide state the
op needs and leaves, and how often generation picks it. Field widths come from the
struct layouts in fuzz.uapi (the one transcription of the headers).

Adding an op: one OpDesc here, its handler in fuzz/model/, and (only for a new
argument type) the encoder.
"""

from __future__ import annotations

import errno
from dataclasses import replace

from fuzz import uapi as U
from fuzz.prog.types import (
    CLOSE,
    FDIO,
    IOMMUFD,
    TEST,
    VFIO_STRUCT,
    VFIO_VAL,
    Arg,
    ArgType,
    Capacity,
    Capture,
    Const,
    Count,
    Entries,
    Enum,
    EnumSet,
    Flags,
    FlagSet,
    Form,
    InSide,
    Int,
    Iova,
    Len,
    Mapping,
    OpDesc,
    Out,
    Output,
    Provides,
    Ranges,
    Refine,
    Res,
    Reserved,
    Uptr,
    Value,
)


def _flags(name: str, *names: str) -> FlagSet:
    return FlagSet(name, tuple((n, U.CONST[n]) for n in names))


def _enum(name: str, *names: str) -> EnumSet:
    return EnumSet(name, tuple((n, U.CONST[n]) for n in names))


# -- flag sets and enums of the uAPI ----------------------------------------------
IOAS_MAP_FLAGS = _flags("iommufd_ioas_map_flags", "IOMMU_IOAS_MAP_FIXED_IOVA",
                        "IOMMU_IOAS_MAP_WRITEABLE", "IOMMU_IOAS_MAP_READABLE")
# IOAS_COPY takes the map flags; the selftest also lets syzkaller name its source
# IOVA as (nth area, offset) with MOCK_FLAGS_ACCESS_SYZ.
IOAS_COPY_FLAGS = FlagSet("iommufd_ioas_map_flags", IOAS_MAP_FLAGS.bits
                          + (("MOCK_FLAGS_ACCESS_SYZ", U.MOCK_FLAGS_ACCESS_SYZ),))
OPTION_ID = _enum("iommufd_option", "IOMMU_OPTION_RLIMIT_MODE", "IOMMU_OPTION_HUGE_PAGES")
OPTION_OP = _enum("iommufd_option_ops", "IOMMU_OPTION_OP_SET", "IOMMU_OPTION_OP_GET")
VFIO_IOAS_OP = _enum("iommufd_vfio_ioas_op", "IOMMU_VFIO_IOAS_GET", "IOMMU_VFIO_IOAS_SET",
                     "IOMMU_VFIO_IOAS_CLEAR")
CREATE_ACCESS_FLAGS = _flags("mock_access_create", "MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES")
ACCESS_PAGES_FLAGS = _flags("mock_access_pages", "MOCK_FLAGS_ACCESS_WRITE",
                            "MOCK_FLAGS_ACCESS_SYZ")
ACCESS_RW_FLAGS = _flags("mock_access_rw", "MOCK_ACCESS_RW_WRITE", "MOCK_ACCESS_RW_SLOW_PATH",
                         "MOCK_FLAGS_ACCESS_SYZ")
MOCK_DEVICE_FLAGS = _flags("mock_device_flags", "MOCK_FLAGS_DEVICE_NO_DIRTY",
                           "MOCK_FLAGS_DEVICE_HUGE_IOVA")
VFIO_EXTENSIONS = _enum("vfio_extension", "VFIO_TYPE1_IOMMU", "VFIO_SPAPR_TCE_IOMMU",
                        "VFIO_TYPE1v2_IOMMU", "VFIO_DMA_CC_IOMMU", "VFIO_EEH",
                        "VFIO_TYPE1_NESTING_IOMMU", "VFIO_SPAPR_TCE_v2_IOMMU",
                        "VFIO_NOIOMMU_IOMMU", "VFIO_UNMAP_ALL", "VFIO_UPDATE_VADDR")
VFIO_INFO_FLAGS = _flags("vfio_iommu_type1_info_flags", "VFIO_IOMMU_INFO_PGSIZES",
                         "VFIO_IOMMU_INFO_CAPS")
VFIO_MAP_FLAGS = _flags("vfio_dma_map_flags", "VFIO_DMA_MAP_FLAG_READ",
                        "VFIO_DMA_MAP_FLAG_WRITE", "VFIO_DMA_MAP_FLAG_VADDR")
VFIO_UNMAP_FLAGS = _flags("vfio_dma_unmap_flags", "VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP",
                          "VFIO_DMA_UNMAP_FLAG_ALL", "VFIO_DMA_UNMAP_FLAG_VADDR")

HWPT_ALLOC_FLAGS = _flags("iommufd_hwpt_alloc_flags", "IOMMU_HWPT_ALLOC_NEST_PARENT",
                          "IOMMU_HWPT_ALLOC_DIRTY_TRACKING", "IOMMU_HWPT_FAULT_ID_VALID")
HWPT_DATA_TYPE = _enum("iommu_hwpt_data_type", "IOMMU_HWPT_DATA_NONE", "IOMMU_HWPT_DATA_VTD_S1",
                       "IOMMU_HWPT_DATA_SELFTEST")
DIRTY_TRACKING_FLAGS = _flags("iommufd_hwpt_set_dirty_tracking_flags",
                              "IOMMU_HWPT_DIRTY_TRACKING_ENABLE")
DIRTY_BITMAP_FLAGS = _flags("iommufd_hwpt_get_dirty_bitmap_flags",
                            "IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR")
INVALIDATE_DATA_TYPE = _enum("iommu_hwpt_invalidate_data_type",
                             "IOMMU_HWPT_INVALIDATE_DATA_VTD_S1",
                             "IOMMU_HWPT_INVALIDATE_DATA_SELFTEST",
                             "IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID")
INVALIDATE_FLAGS = _flags("iommu_hwpt_invalidate_selftest_flags", "IOMMU_TEST_INVALIDATE_FLAG_ALL")
PGFAULT_PERM = _flags("iommu_hwpt_pgfault_perm", "IOMMU_PGFAULT_PERM_READ",
                      "IOMMU_PGFAULT_PERM_WRITE", "IOMMU_PGFAULT_PERM_EXEC",
                      "IOMMU_PGFAULT_PERM_PRIV")
PAGE_RESPONSE_CODE = _enum("iommufd_page_response_code", "IOMMUFD_PAGE_RESP_SUCCESS",
                           "IOMMUFD_PAGE_RESP_INVALID")
POLL_EVENTS = _flags("poll_events", "POLLIN", "POLLPRI", "POLLOUT", "POLLERR", "POLLHUP",
                     "POLLNVAL", "POLLRDNORM", "POLLWRNORM")
NO_FLAGS = FlagSet("(none defined)", ())

# Where the executor and the reproducers put the vfio capability chain.
GET_INFO_CAP_SPACE = 4096
# GET_HW_INFO clears data_len bytes (a u32: up to 4 GiB): its data_uptr defaults to a
# mapping of its own, so a copy past its end faults instead of wrecking the executor.
HW_INFO_SCRATCH = 1 << 16
MOCK_IO_PAGE_SIZE = 2048  # selftest.c: the mock domain's page (PAGE_SIZE / 2)
PAGE_SIZES = (MOCK_IO_PAGE_SIZE, 1024, 4096, 0, 3, 1 << 20)


# -- builders ---------------------------------------------------------------------------
def a(name: str, type_: ArgType | None = None, path: str | None = None) -> Arg:
    return Arg(name, name if path is None else path, type_ if type_ is not None else Int())


def _widths(d: OpDesc) -> OpDesc:
    """Each argument's width from the struct layout (by-value ones state their own)."""
    args = []
    for arg in d.args:
        t = arg.type
        if isinstance(t, Value):
            args.append(replace(arg, type=t.type, width=t.width, offset=t.offset))
        elif isinstance(t, InSide):
            # a field of the first entry of a side array: its width is that field's
            ctype = _side_ctype(d, t.pointer)
            args.append(replace(arg, width=U.field_offset(ctype, t.field)[1]))
        elif isinstance(t, Entries):
            args.append(replace(arg, width=8))  # a list; its entries' fields say the rest
        else:
            args.append(replace(arg, width=U.field_offset(d.struct, arg.path)[1]))
    return replace(d, args=tuple(args))


def _side_ctype(d: OpDesc, pointer: str) -> str:
    for arg in d.args:
        t = arg.type.type if isinstance(arg.type, Value) else arg.type
        if arg.name == pointer and isinstance(t, Uptr) and t.side:
            return t.side
    raise KeyError(f"{d.name}: {pointer} is not a Uptr with a side array")


def _pollfd(field: str, type_: ArgType) -> Value:
    off, width = U.field_offset("struct pollfd", field)
    return Value(type_, width, off)


def _test(name: str, member: str, args: list[Arg], outs: tuple[Out, ...] = (),
          id_type: ArgType | None = None, **kw: object) -> OpDesc:
    """An IOMMU_TEST_CMD op: id and __reserved, the union member's fields, last."""
    full = (a("id", id_type), a("__reserved", Reserved()),
            *(replace(x, path=f"{member}.{x.path}") for x in args), a("last", Reserved()))
    return OpDesc(name, TEST, "IOMMU_TEST_CMD", "struct iommu_test_cmd",
                  "IOMMU_TEST_OP_" + name.removeprefix("TEST_"), full, outs,
                  **kw)  # type: ignore[arg-type]


_IOAS = Res(("ioas",))
_IDEV = Res(("idev",))
_RW = U.IOMMU_IOAS_MAP_WRITEABLE | U.IOMMU_IOAS_MAP_READABLE
_PIN = U.MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES
_U32 = 0xFFFFFFFF
_FIXED = ("flags", U.IOMMU_IOAS_MAP_FIXED_IOVA)
_MOCK_DOMAIN_OUTS = (Out("out_stdev_id", "stdev", on="id"),
                     Out("out_hwpt_id", "hwpt_paging", on="id"),
                     Out("out_idev_id", "idev", on="id"))

_DESCS: list[OpDesc] = [
    OpDesc("DESTROY", IOMMUFD, "IOMMU_DESTROY", "struct iommu_destroy",
           args=(a("id", Res(("ioas", "hwpt", "idev", "stdev", "fault"))),), weight=4),
    OpDesc("IOAS_ALLOC", IOMMUFD, "IOMMU_IOAS_ALLOC", "struct iommu_ioas_alloc",
           args=(a("flags", Flags(FlagSet("iommu_ioas_alloc_flags", ()))),
                 a("out_ioas_id", Output())),
           outs=(Out("out_ioas_id", "ioas"),), weight=6),
    OpDesc("IOAS_ALLOW_IOVAS", IOMMUFD, "IOMMU_IOAS_ALLOW_IOVAS",
           "struct iommu_ioas_allow_iovas",
           args=(a("ioas_id", _IOAS), a("num_iovas", Int((0, 1, 2, 5000, 0xFFFFFFFF))),
                 a("__reserved", Reserved()), a("allowed_iovas", Ranges("num_iovas"))),
           weight=3),
    OpDesc("IOAS_IOVA_RANGES", IOMMUFD, "IOMMU_IOAS_IOVA_RANGES",
           "struct iommu_ioas_iova_ranges",
           args=(a("ioas_id", _IOAS), a("num_iovas", Capacity("allowed_iovas", 8)),
                 a("__reserved", Reserved()), a("allowed_iovas", Uptr()),
                 a("out_iova_alignment", Output())),
           outs=(Out("num_iovas"), Out("out_iova_alignment"),
                 Out("ranges", decode="ranges", array="allowed_iovas", count="num_iovas",
                     also_on=(errno.EMSGSIZE,))),
           weight=3),
    OpDesc("IOAS_MAP", IOMMUFD, "IOMMU_IOAS_MAP", "struct iommu_ioas_map",
           args=(a("flags", Flags(IOAS_MAP_FLAGS, usual=_RW)), a("ioas_id", _IOAS),
                 a("__reserved", Reserved()), a("user_va", Uptr()), a("length", Len("user_va")),
                 a("iova", Iova("ioas_id", _FIXED, new=True))),
           outs=(Out("iova"),), maps=Mapping("ioas_id", "iova", "length", "user_va"), weight=14),
    OpDesc("IOAS_COPY", IOMMUFD, "IOMMU_IOAS_COPY", "struct iommu_ioas_copy",
           args=(a("flags", Flags(IOAS_COPY_FLAGS, rare=U.MOCK_FLAGS_ACCESS_SYZ, usual=_RW)),
                 a("dst_ioas_id", _IOAS), a("src_ioas_id", _IOAS), a("length", Len("src_iova")),
                 a("dst_iova", Iova("dst_ioas_id", _FIXED, new=True)),
                 a("src_iova", Iova("src_ioas_id"))),
           outs=(Out("dst_iova"),), maps=Mapping("dst_ioas_id", "dst_iova", "length"),
           weight=6),
    OpDesc("IOAS_UNMAP", IOMMUFD, "IOMMU_IOAS_UNMAP", "struct iommu_ioas_unmap",
           args=(a("ioas_id", _IOAS), a("iova", Iova("ioas_id")), a("length", Len("iova"))),
           outs=(Out("length"),), weight=8),
    # RLIMIT_MODE is the iommufd's (object_id 0) and can only be set while it holds no
    # object; HUGE_PAGES is an IOAS's, and can only be turned off while no domain has
    # pages mapped
    OpDesc("OPTION", IOMMUFD, "IOMMU_OPTION", "struct iommu_option",
           args=(a("option_id", Enum(OPTION_ID)), a("op", Enum(OPTION_OP)),
                 a("__reserved", Reserved()), a("object_id", _IOAS),
                 a("val64", Int((0, 1, 2)))),
           outs=(Out("val64"),),
           forms=(Form("huge pages of an IOAS", (
                      ("option_id", Const(U.IOMMU_OPTION_HUGE_PAGES)),), weight=3),
                  Form("the iommufd's rlimit mode", (
                      ("option_id", Const(U.IOMMU_OPTION_RLIMIT_MODE)), ("object_id", Const(0)))),
                  Form("the rlimit mode of an empty iommufd", (
                      ("option_id", Const(U.IOMMU_OPTION_RLIMIT_MODE)), ("object_id", Const(0)),
                      ("op", Const(U.IOMMU_OPTION_OP_SET))), first=True)),
           weight=3),
    OpDesc("VFIO_IOAS", IOMMUFD, "IOMMU_VFIO_IOAS", "struct iommu_vfio_ioas",
           args=(a("ioas_id", _IOAS), a("op", Enum(VFIO_IOAS_OP)), a("__reserved", Reserved())),
           outs=(Out("ioas_id", "ioas"),),
           provides=(Provides("compat_ioas", (("op", U.IOMMU_VFIO_IOAS_SET),)),), weight=2),
    _test("TEST_ADD_RESERVED", "add_reserved",
          [a("start", Iova("id", new=True)), a("length", Len("start"))], id_type=_IOAS,
          weight=3),
    _test("TEST_MOCK_DOMAIN", "mock_domain",
          [a("out_stdev_id", Output()), a("out_hwpt_id", Output()),
           a("out_idev_id", Output())], _MOCK_DOMAIN_OUTS, id_type=_IOAS, weight=5),
    _test("TEST_MOCK_DOMAIN_FLAGS", "mock_domain_flags",
          [a("out_stdev_id", Output()), a("out_hwpt_id", Output()),
           a("out_idev_id", Output()),
           a("dev_flags", Flags(MOCK_DEVICE_FLAGS, free=U.MOCK_FLAGS_DEVICE_HUGE_IOVA))],
          _MOCK_DOMAIN_OUTS, id_type=_IOAS, weight=2),
    _test("TEST_MOCK_DOMAIN_REPLACE", "mock_domain_replace",
          [a("pt_id", Res(("ioas", "hwpt_paging", "hwpt_nested")))],
          (Out("pt_id", "hwpt", on="pt_id"),), id_type=Res(("stdev",)),
          forms=(Form("onto a fault-capable HWPT", (("pt_id", Res(("hwpt_fault",))),)),),
          provides=(Provides("iopf", kinds=(("pt_id", "hwpt_fault"),)),), weight=2),
    _test("TEST_MD_CHECK_MAP", "check_map",
          [a("iova", Iova("id")), a("length", Len("iova")), a("uptr", Uptr("iova"))],
          id_type=Res(("hwpt_paging",)), weight=3),
    _test("TEST_MD_CHECK_REFS", "check_refs",
          [a("length", Len("uptr")), a("uptr", Uptr()), a("refs", Int((0, 1, 2)))], id_type=_IOAS,
          weight=2),
    _test("TEST_CREATE_ACCESS", "create_access",
          [a("out_access_fd", Output()), a("flags", Flags(CREATE_ACCESS_FLAGS))],
          (Out("out_access_fd", "access", on="id",
               refine=(Refine((("flags", _PIN, _PIN),), "access_pin"),)),),
          id_type=_IOAS, weight=4),
    _test("TEST_DESTROY_ACCESS_PAGES", "destroy_access_pages",
          [a("access_pages_id", Res(("access_pages",)))], id_type=Res(("access_pin",)),
          weight=2),
    _test("TEST_ACCESS_PAGES", "access_pages",
          [a("flags", Flags(ACCESS_PAGES_FLAGS, rare=U.MOCK_FLAGS_ACCESS_SYZ)),
           a("out_access_pages_id", Output()),
           a("iova", Iova("id")), a("length", Len("iova")), a("uptr", Uptr("iova"))],
          (Out("out_access_pages_id", "access_pages", on="id"),),
          id_type=Res(("access_pin",)), weight=4),
    _test("TEST_ACCESS_RW", "access_rw",
          [a("iova", Iova("id")), a("length", Len("iova")), a("uptr", Uptr()),
           a("flags", Flags(ACCESS_RW_FLAGS, rare=U.MOCK_FLAGS_ACCESS_SYZ))],
          (Out("data", decode="data"),), id_type=Res(("access",)),
          capture=Capture("access_rw.uptr", "access_rw.length"), weight=4),
    _test("TEST_SET_TEMP_MEMORY_LIMIT", "memory_limit",
          [a("limit", Int((0, 1, 11, 12, 16, 4096, 65536)))], weight=1),
    _test("TEST_ACCESS_REPLACE_IOAS", "access_replace_ioas",
          [a("ioas_id", Res(("ioas", "hwpt")))], id_type=Res(("access",)), weight=1),
    # -- hw_pagetable.c, device.c, fault.c: HWPTs, hw info, dirty tracking, faults ----
    OpDesc("HWPT_ALLOC", IOMMUFD, "IOMMU_HWPT_ALLOC", "struct iommu_hwpt_alloc",
           args=(a("flags", Flags(HWPT_ALLOC_FLAGS)), a("dev_id", _IDEV),
                 a("pt_id", Res(("ioas", "hwpt_nest_parent"))), a("out_hwpt_id", Output()),
                 a("__reserved", Reserved()), a("data_type", Enum(HWPT_DATA_TYPE)),
                 a("data_len", Int((4, 0, 3, 5, 8))),
                 a("data_uptr", Uptr(side="struct iommu_hwpt_selftest")),
                 a("fault_id", Res(("fault",))), a("__reserved2", Reserved()),
                 Arg("iotlb", "", InSide("data_uptr", "iotlb",
                                         Int((U.IOMMU_TEST_IOTLB_DEFAULT, 0, 1))))),
           outs=(Out("out_hwpt_id", "hwpt", on="pt_id", refine=(
               Refine((("data_type", _U32, U.IOMMU_HWPT_DATA_NONE),), "hwpt_paging"),
               Refine((("data_type", _U32, U.IOMMU_HWPT_DATA_NONE),
                       ("flags", U.IOMMU_HWPT_ALLOC_NEST_PARENT,
                        U.IOMMU_HWPT_ALLOC_NEST_PARENT)), "hwpt_nest_parent"),
               Refine((("data_type", _U32, U.IOMMU_HWPT_DATA_NONE),
                       ("flags", U.IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
                        U.IOMMU_HWPT_ALLOC_DIRTY_TRACKING)), "hwpt_dirty"),
               Refine((("data_type", _U32, U.IOMMU_HWPT_DATA_SELFTEST),), "hwpt_nested"),
               Refine((("data_type", _U32, U.IOMMU_HWPT_DATA_SELFTEST),
                       ("flags", U.IOMMU_HWPT_FAULT_ID_VALID, U.IOMMU_HWPT_FAULT_ID_VALID)),
                      "hwpt_fault"))),),
           forms=(Form("paging, on an IOAS", (
                      ("pt_id", _IOAS), ("data_type", Const(0)), ("data_len", Const(0)),
                      ("fault_id", Const(0)),
                      ("flags", Flags(FlagSet("", HWPT_ALLOC_FLAGS.bits[:2])))),
                      weight=2),
                  Form("nested, on a nest parent", (
                      ("pt_id", Res(("hwpt_nest_parent",))),
                      ("data_type", Const(U.IOMMU_HWPT_DATA_SELFTEST)), ("data_len", Const(4)),
                      ("flags", Flags(FlagSet("", HWPT_ALLOC_FLAGS.bits[2:])))), weight=2)),
           weight=6),
    OpDesc("GET_HW_INFO", IOMMUFD, "IOMMU_GET_HW_INFO", "struct iommu_hw_info",
           args=(a("flags", Flags(NO_FLAGS)), a("dev_id", _IDEV),
                 a("data_len", Int((8, 0, 4, 12, 64, _U32))),
                 a("data_uptr", Uptr(scratch=HW_INFO_SCRATCH)), a("out_data_type", Output()),
                 a("out_max_pasid_log2", Output()),
                 a("__reserved0", Reserved(), "__reserved.0"),
                 a("__reserved1", Reserved(), "__reserved.1"),
                 a("__reserved2", Reserved(), "__reserved.2"), a("out_capabilities", Output())),
           outs=(Out("data_len"), Out("out_data_type"), Out("out_max_pasid_log2"),
                 Out("out_capabilities"), Out("data", decode="data")),
           capture=Capture("data_uptr", "data_len"), weight=2),
    OpDesc("HWPT_SET_DIRTY_TRACKING", IOMMUFD, "IOMMU_HWPT_SET_DIRTY_TRACKING",
           "struct iommu_hwpt_set_dirty_tracking",
           args=(a("flags", Flags(DIRTY_TRACKING_FLAGS)), a("hwpt_id", Res(("hwpt_dirty",))),
                 a("__reserved", Reserved())),
           provides=(Provides("dirty_tracking",
                              (("flags", U.IOMMU_HWPT_DIRTY_TRACKING_ENABLE),)),), weight=3),
    OpDesc("HWPT_GET_DIRTY_BITMAP", IOMMUFD, "IOMMU_HWPT_GET_DIRTY_BITMAP",
           "struct iommu_hwpt_get_dirty_bitmap",
           args=(a("hwpt_id", Res(("hwpt_dirty",))), a("flags", Flags(DIRTY_BITMAP_FLAGS)),
                 a("__reserved", Reserved()), a("iova", Iova("hwpt_id")),
                 a("length", Len("iova")), a("page_size", Int(PAGE_SIZES)), a("data", Uptr())),
           outs=(Out("bitmap", decode="data"),),
           capture=Capture("data", bitmap=("length", "page_size"), out="bitmap"),
           needs=("dirty_tracking", "dirty_bits"), weight=3),
    OpDesc("HWPT_INVALIDATE", IOMMUFD, "IOMMU_HWPT_INVALIDATE", "struct iommu_hwpt_invalidate",
           args=(a("hwpt_id", Res(("hwpt_nested",))),
                 a("data_uptr", Uptr(side="struct iommu_hwpt_invalidate_selftest")),
                 a("data_type", Enum(INVALIDATE_DATA_TYPE)),
                 a("entry_len", Int((8, 0, 4, 9, 4097))),
                 a("entry_num", Int((1, 0, 5, (1 << 19) + 1))), a("__reserved", Reserved()),
                 Arg("entries", "", Entries("data_uptr", count="entry_num", length="entry_len",
                                            fields=(Flags(INVALIDATE_FLAGS),
                                                    Int((0, 1, 2, 3, 4)))))),
           outs=(Out("entry_num"),),
           forms=(Form("selftest entries", (
               ("data_type", Const(U.IOMMU_HWPT_INVALIDATE_DATA_SELFTEST)),)),), weight=3),
    OpDesc("FAULT_QUEUE_ALLOC", IOMMUFD, "IOMMU_FAULT_QUEUE_ALLOC", "struct iommu_fault_alloc",
           args=(a("flags", Flags(NO_FLAGS)), a("out_fault_id", Output()),
                 a("out_fault_fd", Output())),
           outs=(Out("out_fault_id", "fault"), Out("out_fault_fd", "fault_fd")), weight=2),
    _test("TEST_DIRTY", "dirty",
          [a("flags", Int((0,))), a("iova", Iova("id")), a("length", Len("iova")),
           a("page_size", Int(PAGE_SIZES)), a("uptr", Uptr()), a("out_nr_dirty", Output())],
          (Out("out_nr_dirty"),), id_type=Res(("hwpt_dirty",)), needs=("dirty_tracking",),
          provides=(Provides("dirty_bits"),), weight=3),
    _test("TEST_MD_CHECK_IOTLB", "check_iotlb",
          [a("iotlb_id", Int((0, 1, 2, 3, 4)), "id"),
           a("iotlb", Int((U.IOMMU_TEST_IOTLB_DEFAULT, 0, 1)))],
          id_type=Res(("hwpt_nested",)), weight=2),
    _test("TEST_TRIGGER_IOPF", "trigger_iopf",
          [a("dev_id", _IDEV), a("pasid", Int((0, 1, _U32))), a("grpid", Int((0, 1, 2, 3))),
           a("perm", Flags(PGFAULT_PERM)), a("addr", Int((0, 4096, U.MOCK_APERTURE_START)))],
          needs=("iopf",), provides=(Provides("iopf_pending"),), weight=3),
    OpDesc("CLOSE", CLOSE, args=(Arg("fd", "", Value(Res(("access", "fault_fd")), 4)),),
           weight=1),
    # read(2) of struct iommu_hwpt_pgfault records from a fault fd; buf defaults to a
    # side array of the executor's, where a read into a program buffer is copied too
    OpDesc("READ", FDIO, "read", args=(
               Arg("fd", "", Value(Res(("fault_fd",)), 4, 0)),
               Arg("buf", "", Value(Uptr(side="struct iommu_hwpt_pgfault", size_by="count"),
                                    8, 8)),
               Arg("count", "", Value(Count("buf", entries=4), 8, 16))),
           outs=(Out("ret", decode="ret"),
                 Out("cookie", "cookie", decode="first", array="buf", field="cookie"),
                 Out("records", decode="entries", array="buf")),
           needs=("iopf_pending",), weight=3),
    # write(2) of struct iommu_hwpt_page_response {cookie, code} to a fault fd: the first
    # from cookie/code, more from responses, in a side array (or from buf)
    OpDesc("WRITE", FDIO, "write", args=(
               Arg("fd", "", Value(Res(("fault_fd",)), 4, 0)),
               Arg("buf", "", Value(Uptr(side="struct iommu_hwpt_page_response"), 8, 8)),
               Arg("count", "", Value(Count("buf"), 8, 16)),
               Arg("cookie", "", InSide("buf", "cookie", Res(("cookie",)))),
               Arg("code", "", InSide("buf", "code", Enum(PAGE_RESPONSE_CODE))),
               Arg("responses", "", Entries("buf", count="count", count_bytes=True, after=1,
                                            fields=(Int((1, 2)), Enum(PAGE_RESPONSE_CODE))))),
           outs=(Out("ret", decode="ret"),), weight=2),
    # poll(2) of a fault fd, {int fd; short events; short revents} and no wait: EPOLLOUT
    # always, EPOLLIN | EPOLLRDNORM while a fault waits to be read
    # (a struct pollfd by value: the paths are its fields, which the reproducers spell)
    OpDesc("POLL", FDIO, "poll", args=(
               Arg("fd", "fd", _pollfd("fd", Res(("fault_fd",)))),
               Arg("events", "events", _pollfd("events", Flags(POLL_EVENTS,
                                                               usual=U.POLLIN | U.POLLOUT))),
               Arg("revents", "revents", _pollfd("revents", Output()))),
           outs=(Out("ret", decode="ret"), Out("revents")), weight=2),
    OpDesc("VFIO_GET_API_VERSION", VFIO_VAL, "VFIO_GET_API_VERSION",
           outs=(Out("ret", decode="ret"),), weight=1),
    OpDesc("VFIO_CHECK_EXTENSION", VFIO_VAL, "VFIO_CHECK_EXTENSION",
           args=(Arg("extension", "", Value(Enum(VFIO_EXTENSIONS), 8)),),
           outs=(Out("ret", decode="ret"),), weight=1),
    OpDesc("VFIO_SET_IOMMU", VFIO_VAL, "VFIO_SET_IOMMU",
           args=(Arg("type", "", Value(Enum(VFIO_EXTENSIONS), 8)),),
           outs=(Out("ret", decode="ret"),), needs=("compat_ioas",),
           provides=(Provides("container", (("type", U.VFIO_TYPE1v2_IOMMU),)),),
           weight=2),
    OpDesc("VFIO_IOMMU_GET_INFO", VFIO_STRUCT, "VFIO_IOMMU_GET_INFO",
           "struct vfio_iommu_type1_info",
           args=(a("flags", Flags(VFIO_INFO_FLAGS)), a("cap_offset", Int()),
                 a("pad", Reserved())),
           outs=(Out("argsz"), Out("flags"), Out("iova_pgsizes"), Out("cap_offset"),
                 Out("caps", decode="caps")),
           needs=("container",), extra_space=GET_INFO_CAP_SPACE, weight=2),
    OpDesc("VFIO_IOMMU_MAP_DMA", VFIO_STRUCT, "VFIO_IOMMU_MAP_DMA",
           "struct vfio_iommu_type1_dma_map",
           args=(a("flags", Flags(VFIO_MAP_FLAGS, rare=U.VFIO_DMA_MAP_FLAG_VADDR,
                                  usual=U.VFIO_DMA_MAP_FLAG_READ | U.VFIO_DMA_MAP_FLAG_WRITE)),
                 a("vaddr", Uptr()), a("iova", Iova("compat", new=True)),
                 a("size", Len("vaddr"))),
           needs=("container",), maps=Mapping("compat", "iova", "size", "vaddr"), weight=3),
    OpDesc("VFIO_IOMMU_UNMAP_DMA", VFIO_STRUCT, "VFIO_IOMMU_UNMAP_DMA",
           "struct vfio_iommu_type1_dma_unmap",
           args=(a("flags", Flags(VFIO_UNMAP_FLAGS, rare=U.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP
                                  | U.VFIO_DMA_UNMAP_FLAG_VADDR | U.VFIO_DMA_UNMAP_FLAG_ALL)),
                 a("iova", Iova("compat")), a("size", Len("iova"))),
           outs=(Out("size"),), needs=("container",), weight=2),
]

OPS: dict[str, OpDesc] = {d.name: _widths(d) for d in _DESCS}
del _DESCS

# The program-wide states some op provides, for generators that build them first.
STATES = sorted({p.state for d in OPS.values() for p in d.provides})
