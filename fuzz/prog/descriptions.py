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
    IOMMUFD,
    TEST,
    VFIO_STRUCT,
    VFIO_VAL,
    Arg,
    ArgType,
    Capacity,
    Capture,
    Enum,
    EnumSet,
    Flags,
    FlagSet,
    Int,
    Iova,
    Len,
    Mapping,
    OpDesc,
    Out,
    Output,
    Provides,
    Ranges,
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

# Where the executor and the reproducers put the vfio capability chain.
GET_INFO_CAP_SPACE = 4096


# -- builders ---------------------------------------------------------------------------
def a(name: str, type_: ArgType | None = None, path: str | None = None) -> Arg:
    return Arg(name, name if path is None else path, type_ if type_ is not None else Int())


def _widths(d: OpDesc) -> OpDesc:
    """Each argument's width from the struct layout (by-value ones state their own)."""
    args = []
    for arg in d.args:
        if isinstance(arg.type, Value):
            args.append(replace(arg, type=arg.type.type, width=arg.type.width))
        else:
            args.append(replace(arg, width=U.field_offset(d.struct, arg.path)[1]))
    return replace(d, args=tuple(args))


def _test(name: str, member: str, args: list[Arg], outs: tuple[Out, ...] = (),
          id_type: ArgType | None = None, **kw: object) -> OpDesc:
    """An IOMMU_TEST_CMD op: id and __reserved, the union member's fields, last."""
    full = (a("id", id_type), a("__reserved", Reserved()),
            *(replace(x, path=f"{member}.{x.path}") for x in args), a("last", Reserved()))
    return OpDesc(name, TEST, "IOMMU_TEST_CMD", "struct iommu_test_cmd",
                  "IOMMU_TEST_OP_" + name.removeprefix("TEST_"), full, outs,
                  **kw)  # type: ignore[arg-type]


_IOAS = Res(("ioas",))
_RW = U.IOMMU_IOAS_MAP_WRITEABLE | U.IOMMU_IOAS_MAP_READABLE
_FIXED = ("flags", U.IOMMU_IOAS_MAP_FIXED_IOVA)
_MOCK_DOMAIN_OUTS = (Out("out_stdev_id", "stdev", on="id"),
                     Out("out_hwpt_id", "hwpt_paging", on="id"),
                     Out("out_idev_id", "idev", on="id"))

_DESCS: list[OpDesc] = [
    OpDesc("DESTROY", IOMMUFD, "IOMMU_DESTROY", "struct iommu_destroy",
           args=(a("id", Res(("ioas", "hwpt", "idev", "stdev"))),), weight=4),
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
    OpDesc("OPTION", IOMMUFD, "IOMMU_OPTION", "struct iommu_option",
           args=(a("option_id", Enum(OPTION_ID)), a("op", Enum(OPTION_OP)),
                 a("__reserved", Reserved()), a("object_id", _IOAS),
                 a("val64", Int((0, 1, 2)))),
           outs=(Out("val64"),), weight=3),
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
           a("out_idev_id", Output()), a("dev_flags", Flags(MOCK_DEVICE_FLAGS))],
          _MOCK_DOMAIN_OUTS, id_type=_IOAS, weight=2),
    _test("TEST_MOCK_DOMAIN_REPLACE", "mock_domain_replace",
          [a("pt_id", Res(("ioas", "hwpt_paging")))], (Out("pt_id", "hwpt_paging", on="pt_id"),),
          id_type=Res(("stdev",)), weight=2),
    _test("TEST_MD_CHECK_MAP", "check_map",
          [a("iova", Iova("id")), a("length", Len("iova")), a("uptr", Uptr("iova"))],
          id_type=Res(("hwpt_paging",)), weight=3),
    _test("TEST_MD_CHECK_REFS", "check_refs",
          [a("length", Len("uptr")), a("uptr", Uptr()), a("refs", Int((0, 1, 2)))], id_type=_IOAS,
          weight=2),
    _test("TEST_CREATE_ACCESS", "create_access",
          [a("out_access_fd", Output()), a("flags", Flags(CREATE_ACCESS_FLAGS))],
          (Out("out_access_fd", "access", on="id",
               refine=(("flags", U.MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES, "access_pin"),)),),
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
    _test("TEST_ACCESS_REPLACE_IOAS", "access_replace_ioas", [a("ioas_id", _IOAS)],
          id_type=Res(("access",)), weight=1),
    OpDesc("CLOSE", CLOSE, args=(Arg("fd", "", Value(Res(("access",)), 4)),), weight=1),
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
