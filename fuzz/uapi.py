"""The Linux 6.12 iommufd uAPI, defined once: struct layouts (cffi, ABI mode) and constants.

Sources, transcribed from the 6.12 tree:
  include/uapi/linux/iommufd.h          every struct, enum and ioctl request
  drivers/iommu/iommufd/iommufd_test.h  struct iommu_test_cmd, IOMMU_TEST_OP_*, MOCK_*
  include/uapi/linux/vfio.h             the container/type1 subset iommufd's vfio compat answers

tests/test_uapi.py compiles a probe against those headers and checks every size, offset
and constant here, so a transcription slip fails the tests instead of a fuzzing run.

Layout assumption: x86_64, where __aligned_u64 and __u64 are both uint64_t with 8-byte
alignment, so the cdef spells both as uint64_t.
"""

from __future__ import annotations

import functools
from typing import Any

import cffi

__all__ = [
    "CONST", "REQUESTS", "STRUCTS", "TEST_OPS", "ffi", "field_offset", "fields", "request",
    "sizeof", "test_op",
]

_CDEF = """
/* ---- include/uapi/linux/iommufd.h ---- */
struct iommu_destroy {
    uint32_t size;
    uint32_t id;
};
struct iommu_ioas_alloc {
    uint32_t size;
    uint32_t flags;
    uint32_t out_ioas_id;
};
struct iommu_iova_range {
    uint64_t start;
    uint64_t last;
};
struct iommu_ioas_iova_ranges {
    uint32_t size;
    uint32_t ioas_id;
    uint32_t num_iovas;
    uint32_t __reserved;
    uint64_t allowed_iovas;
    uint64_t out_iova_alignment;
};
struct iommu_ioas_allow_iovas {
    uint32_t size;
    uint32_t ioas_id;
    uint32_t num_iovas;
    uint32_t __reserved;
    uint64_t allowed_iovas;
};
struct iommu_ioas_map {
    uint32_t size;
    uint32_t flags;
    uint32_t ioas_id;
    uint32_t __reserved;
    uint64_t user_va;
    uint64_t length;
    uint64_t iova;
};
struct iommu_ioas_copy {
    uint32_t size;
    uint32_t flags;
    uint32_t dst_ioas_id;
    uint32_t src_ioas_id;
    uint64_t length;
    uint64_t dst_iova;
    uint64_t src_iova;
};
struct iommu_ioas_unmap {
    uint32_t size;
    uint32_t ioas_id;
    uint64_t iova;
    uint64_t length;
};
struct iommu_option {
    uint32_t size;
    uint32_t option_id;
    uint16_t op;
    uint16_t __reserved;
    uint32_t object_id;
    uint64_t val64;
};
struct iommu_vfio_ioas {
    uint32_t size;
    uint32_t ioas_id;
    uint16_t op;
    uint16_t __reserved;
};
struct iommu_hwpt_vtd_s1 {
    uint64_t flags;
    uint64_t pgtbl_addr;
    uint32_t addr_width;
    uint32_t __reserved;
};
struct iommu_hwpt_alloc {
    uint32_t size;
    uint32_t flags;
    uint32_t dev_id;
    uint32_t pt_id;
    uint32_t out_hwpt_id;
    uint32_t __reserved;
    uint32_t data_type;
    uint32_t data_len;
    uint64_t data_uptr;
    uint32_t fault_id;
    uint32_t __reserved2;
};
struct iommu_hw_info_vtd {
    uint32_t flags;
    uint32_t __reserved;
    uint64_t cap_reg;
    uint64_t ecap_reg;
};
struct iommu_hw_info {
    uint32_t size;
    uint32_t flags;
    uint32_t dev_id;
    uint32_t data_len;
    uint64_t data_uptr;
    uint32_t out_data_type;
    uint8_t out_max_pasid_log2;
    uint8_t __reserved[3];
    uint64_t out_capabilities;
};
struct iommu_hwpt_set_dirty_tracking {
    uint32_t size;
    uint32_t flags;
    uint32_t hwpt_id;
    uint32_t __reserved;
};
struct iommu_hwpt_get_dirty_bitmap {
    uint32_t size;
    uint32_t hwpt_id;
    uint32_t flags;
    uint32_t __reserved;
    uint64_t iova;
    uint64_t length;
    uint64_t page_size;
    uint64_t data;
};
struct iommu_hwpt_vtd_s1_invalidate {
    uint64_t addr;
    uint64_t npages;
    uint32_t flags;
    uint32_t __reserved;
};
struct iommu_hwpt_invalidate {
    uint32_t size;
    uint32_t hwpt_id;
    uint64_t data_uptr;
    uint32_t data_type;
    uint32_t entry_len;
    uint32_t entry_num;
    uint32_t __reserved;
};
struct iommu_hwpt_pgfault {
    uint32_t flags;
    uint32_t dev_id;
    uint32_t pasid;
    uint32_t grpid;
    uint32_t perm;
    uint32_t __reserved;
    uint64_t addr;
    uint32_t length;
    uint32_t cookie;
};
struct iommu_hwpt_page_response {
    uint32_t cookie;
    uint32_t code;
};
struct iommu_fault_alloc {
    uint32_t size;
    uint32_t flags;
    uint32_t out_fault_id;
    uint32_t out_fault_fd;
};

/* ---- drivers/iommu/iommufd/iommufd_test.h ---- */
struct iommu_test_cmd {
    uint32_t size;
    uint32_t op;
    uint32_t id;
    uint32_t __reserved;
    union {
        struct {
            uint64_t start;
            uint64_t length;
        } add_reserved;
        struct {
            uint32_t out_stdev_id;
            uint32_t out_hwpt_id;
            uint32_t out_idev_id;
        } mock_domain;
        struct {
            uint32_t out_stdev_id;
            uint32_t out_hwpt_id;
            uint32_t out_idev_id;
            uint32_t dev_flags;
        } mock_domain_flags;
        struct {
            uint32_t pt_id;
        } mock_domain_replace;
        struct {
            uint64_t iova;
            uint64_t length;
            uint64_t uptr;
        } check_map;
        struct {
            uint64_t length;
            uint64_t uptr;
            uint32_t refs;
        } check_refs;
        struct {
            uint32_t out_access_fd;
            uint32_t flags;
        } create_access;
        struct {
            uint32_t access_pages_id;
        } destroy_access_pages;
        struct {
            uint32_t flags;
            uint32_t out_access_pages_id;
            uint64_t iova;
            uint64_t length;
            uint64_t uptr;
        } access_pages;
        struct {
            uint64_t iova;
            uint64_t length;
            uint64_t uptr;
            uint32_t flags;
        } access_rw;
        struct {
            uint32_t limit;
        } memory_limit;
        struct {
            uint32_t ioas_id;
        } access_replace_ioas;
        struct {
            uint32_t flags;
            uint64_t iova;
            uint64_t length;
            uint64_t page_size;
            uint64_t uptr;
            uint64_t out_nr_dirty;
        } dirty;
        struct {
            uint32_t id;
            uint32_t iotlb;
        } check_iotlb;
        struct {
            uint32_t dev_id;
            uint32_t pasid;
            uint32_t grpid;
            uint32_t perm;
            uint64_t addr;
        } trigger_iopf;
    };
    uint32_t last;
};
struct iommu_test_hw_info {
    uint32_t flags;
    uint32_t test_reg;
};
struct iommu_hwpt_selftest {
    uint32_t iotlb;
};
struct iommu_hwpt_invalidate_selftest {
    uint32_t flags;
    uint32_t iotlb_id;
};

/* ---- include/uapi/linux/vfio.h (type1 container API) ---- */
struct vfio_info_cap_header {
    uint16_t id;
    uint16_t version;
    uint32_t next;
};
struct vfio_iommu_type1_info {
    uint32_t argsz;
    uint32_t flags;
    uint64_t iova_pgsizes;
    uint32_t cap_offset;
    uint32_t pad;
};
struct vfio_iova_range {
    uint64_t start;
    uint64_t end;
};
struct vfio_iommu_type1_info_cap_iova_range {
    struct vfio_info_cap_header header;
    uint32_t nr_iovas;
    uint32_t reserved;
    struct vfio_iova_range iova_ranges[];
};
struct vfio_iommu_type1_info_cap_migration {
    struct vfio_info_cap_header header;
    uint32_t flags;
    uint64_t pgsize_bitmap;
    uint64_t max_dirty_bitmap_size;
};
struct vfio_iommu_type1_info_dma_avail {
    struct vfio_info_cap_header header;
    uint32_t avail;
};
struct vfio_iommu_type1_dma_map {
    uint32_t argsz;
    uint32_t flags;
    uint64_t vaddr;
    uint64_t iova;
    uint64_t size;
};
struct vfio_bitmap {
    uint64_t pgsize;
    uint64_t size;
    uint64_t *data;
};
struct vfio_iommu_type1_dma_unmap {
    uint32_t argsz;
    uint32_t flags;
    uint64_t iova;
    uint64_t size;
    uint8_t data[];
};
struct vfio_iommu_type1_dirty_bitmap {
    uint32_t argsz;
    uint32_t flags;
    uint8_t data[];
};
struct vfio_iommu_type1_dirty_bitmap_get {
    uint64_t iova;
    uint64_t size;
    struct vfio_bitmap bitmap;
};

/* ---- include/uapi/asm-generic/poll.h: poll(2) of a fault fd ---- */
struct pollfd {
    int fd;
    short events;
    short revents;
};
"""

ffi = cffi.FFI()
ffi.cdef(_CDEF)

# Every struct in the cdef, in header order (the probe test walks this list).
STRUCTS: tuple[str, ...] = tuple(
    "struct " + line.split()[1]
    for line in _CDEF.splitlines()
    if line.startswith("struct ") and line.rstrip().endswith("{")
)

# ---- ioctl encoding: include/uapi/asm-generic/ioctl.h (x86 uses the generic layout) ----
_IOC_NRBITS = 8
_IOC_TYPEBITS = 8
_IOC_SIZEBITS = 14
_IOC_NRSHIFT = 0
_IOC_TYPESHIFT = _IOC_NRSHIFT + _IOC_NRBITS
_IOC_SIZESHIFT = _IOC_TYPESHIFT + _IOC_TYPEBITS
_IOC_DIRSHIFT = _IOC_SIZESHIFT + _IOC_SIZEBITS
_IOC_NONE = 0
_IOC_WRITE = 1
_IOC_READ = 2


def _IOC(direction: int, type_: int, nr: int, size: int) -> int:  # C macro names, kept
    return (direction << _IOC_DIRSHIFT) | (type_ << _IOC_TYPESHIFT) | (nr << _IOC_NRSHIFT) | (
        size << _IOC_SIZESHIFT)


def _IO(type_: int, nr: int) -> int:
    return _IOC(_IOC_NONE, type_, nr, 0)


def _IOR(type_: int, nr: int, size: int) -> int:
    return _IOC(_IOC_READ, type_, nr, size)


def _IOW(type_: int, nr: int, size: int) -> int:
    return _IOC(_IOC_WRITE, type_, nr, size)


def _IOWR(type_: int, nr: int, size: int) -> int:
    return _IOC(_IOC_READ | _IOC_WRITE, type_, nr, size)


# ---- iommufd.h ----
IOMMUFD_TYPE = ord(";")

IOMMUFD_CMD_BASE = 0x80
IOMMUFD_CMD_DESTROY = IOMMUFD_CMD_BASE
IOMMUFD_CMD_IOAS_ALLOC = 0x81
IOMMUFD_CMD_IOAS_ALLOW_IOVAS = 0x82
IOMMUFD_CMD_IOAS_COPY = 0x83
IOMMUFD_CMD_IOAS_IOVA_RANGES = 0x84
IOMMUFD_CMD_IOAS_MAP = 0x85
IOMMUFD_CMD_IOAS_UNMAP = 0x86
IOMMUFD_CMD_OPTION = 0x87
IOMMUFD_CMD_VFIO_IOAS = 0x88
IOMMUFD_CMD_HWPT_ALLOC = 0x89
IOMMUFD_CMD_GET_HW_INFO = 0x8A
IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING = 0x8B
IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP = 0x8C
IOMMUFD_CMD_HWPT_INVALIDATE = 0x8D
IOMMUFD_CMD_FAULT_QUEUE_ALLOC = 0x8E

# iommufd encodes no size/direction in its requests: the struct carries its own size.
IOMMU_DESTROY = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_DESTROY)
IOMMU_IOAS_ALLOC = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_ALLOC)
IOMMU_IOAS_ALLOW_IOVAS = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_ALLOW_IOVAS)
IOMMU_IOAS_COPY = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_COPY)
IOMMU_IOAS_IOVA_RANGES = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_IOVA_RANGES)
IOMMU_IOAS_MAP = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_MAP)
IOMMU_IOAS_UNMAP = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_UNMAP)
IOMMU_OPTION = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_OPTION)
IOMMU_VFIO_IOAS = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_VFIO_IOAS)
IOMMU_HWPT_ALLOC = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_HWPT_ALLOC)
IOMMU_GET_HW_INFO = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_GET_HW_INFO)
IOMMU_HWPT_SET_DIRTY_TRACKING = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING)
IOMMU_HWPT_GET_DIRTY_BITMAP = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP)
IOMMU_HWPT_INVALIDATE = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_HWPT_INVALIDATE)
IOMMU_FAULT_QUEUE_ALLOC = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_FAULT_QUEUE_ALLOC)

# enum iommufd_ioas_map_flags
IOMMU_IOAS_MAP_FIXED_IOVA = 1 << 0
IOMMU_IOAS_MAP_WRITEABLE = 1 << 1
IOMMU_IOAS_MAP_READABLE = 1 << 2
# enum iommufd_option
IOMMU_OPTION_RLIMIT_MODE = 0
IOMMU_OPTION_HUGE_PAGES = 1
# enum iommufd_option_ops
IOMMU_OPTION_OP_SET = 0
IOMMU_OPTION_OP_GET = 1
# enum iommufd_vfio_ioas_op
IOMMU_VFIO_IOAS_GET = 0
IOMMU_VFIO_IOAS_SET = 1
IOMMU_VFIO_IOAS_CLEAR = 2
# enum iommufd_hwpt_alloc_flags
IOMMU_HWPT_ALLOC_NEST_PARENT = 1 << 0
IOMMU_HWPT_ALLOC_DIRTY_TRACKING = 1 << 1
IOMMU_HWPT_FAULT_ID_VALID = 1 << 2
# enum iommu_hwpt_vtd_s1_flags
IOMMU_VTD_S1_SRE = 1 << 0
IOMMU_VTD_S1_EAFE = 1 << 1
IOMMU_VTD_S1_WPE = 1 << 2
# enum iommu_hwpt_data_type
IOMMU_HWPT_DATA_NONE = 0
IOMMU_HWPT_DATA_VTD_S1 = 1
# enum iommu_hw_info_vtd_flags
IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17 = 1 << 0
# enum iommu_hw_info_type
IOMMU_HW_INFO_TYPE_NONE = 0
IOMMU_HW_INFO_TYPE_INTEL_VTD = 1
# enum iommufd_hw_capabilities
IOMMU_HW_CAP_DIRTY_TRACKING = 1 << 0
IOMMU_HW_CAP_PCI_PASID_EXEC = 1 << 1
IOMMU_HW_CAP_PCI_PASID_PRIV = 1 << 2
# enum iommufd_hwpt_set_dirty_tracking_flags
IOMMU_HWPT_DIRTY_TRACKING_ENABLE = 1
# enum iommufd_hwpt_get_dirty_bitmap_flags
IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR = 1
# enum iommu_hwpt_invalidate_data_type
IOMMU_HWPT_INVALIDATE_DATA_VTD_S1 = 0
# enum iommu_hwpt_vtd_s1_invalidate_flags
IOMMU_VTD_INV_FLAGS_LEAF = 1 << 0
# enum iommu_hwpt_pgfault_flags
IOMMU_PGFAULT_FLAGS_PASID_VALID = 1 << 0
IOMMU_PGFAULT_FLAGS_LAST_PAGE = 1 << 1
# enum iommu_hwpt_pgfault_perm
IOMMU_PGFAULT_PERM_READ = 1 << 0
IOMMU_PGFAULT_PERM_WRITE = 1 << 1
IOMMU_PGFAULT_PERM_EXEC = 1 << 2
IOMMU_PGFAULT_PERM_PRIV = 1 << 3
# enum iommufd_page_response_code
IOMMUFD_PAGE_RESP_SUCCESS = 0
IOMMUFD_PAGE_RESP_INVALID = 1

# ---- iommufd_test.h ----
IOMMU_TEST_OP_ADD_RESERVED = 1
IOMMU_TEST_OP_MOCK_DOMAIN = 2
IOMMU_TEST_OP_MD_CHECK_MAP = 3
IOMMU_TEST_OP_MD_CHECK_REFS = 4
IOMMU_TEST_OP_CREATE_ACCESS = 5
IOMMU_TEST_OP_DESTROY_ACCESS_PAGES = 6
IOMMU_TEST_OP_ACCESS_PAGES = 7
IOMMU_TEST_OP_ACCESS_RW = 8
IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT = 9
IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE = 10
IOMMU_TEST_OP_ACCESS_REPLACE_IOAS = 11
IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS = 12
IOMMU_TEST_OP_DIRTY = 13
IOMMU_TEST_OP_MD_CHECK_IOTLB = 14
IOMMU_TEST_OP_TRIGGER_IOPF = 15

MOCK_APERTURE_START = 1 << 24
MOCK_APERTURE_LAST = (1 << 31) - 1
MOCK_FLAGS_ACCESS_WRITE = 1 << 0
MOCK_FLAGS_ACCESS_SYZ = 1 << 16
MOCK_ACCESS_RW_WRITE = 1 << 0
MOCK_ACCESS_RW_SLOW_PATH = 1 << 2
MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES = 1 << 0
MOCK_FLAGS_DEVICE_NO_DIRTY = 1 << 0
MOCK_FLAGS_DEVICE_HUGE_IOVA = 1 << 1
MOCK_NESTED_DOMAIN_IOTLB_ID_MAX = 3
MOCK_NESTED_DOMAIN_IOTLB_NUM = 4

IOMMU_TEST_CMD = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 32)

IOMMU_HW_INFO_TYPE_SELFTEST = 0xFEEDBEEF
IOMMU_HW_INFO_SELFTEST_REGVAL = 0xDEADBEEF
IOMMU_HWPT_DATA_SELFTEST = 0xDEAD
IOMMU_TEST_IOTLB_DEFAULT = 0xBADBEEF
IOMMU_HWPT_INVALIDATE_DATA_SELFTEST = 0xDEADBEEF
IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID = 0xDADBEEF
IOMMU_TEST_INVALIDATE_FLAG_ALL = 1 << 0

# ---- vfio.h ----
VFIO_API_VERSION = 0
# Extensions (VFIO_CHECK_EXTENSION / VFIO_SET_IOMMU arguments)
VFIO_TYPE1_IOMMU = 1
VFIO_SPAPR_TCE_IOMMU = 2
VFIO_TYPE1v2_IOMMU = 3
VFIO_DMA_CC_IOMMU = 4
VFIO_EEH = 5
VFIO_TYPE1_NESTING_IOMMU = 6
VFIO_SPAPR_TCE_v2_IOMMU = 7
VFIO_NOIOMMU_IOMMU = 8
VFIO_UNMAP_ALL = 9
VFIO_UPDATE_VADDR = 10

VFIO_TYPE = ord(";")
VFIO_BASE = 100

# Like iommufd, VFIO uses bare _IO(): argsz in the struct replaces the encoded size.
VFIO_GET_API_VERSION = _IO(VFIO_TYPE, VFIO_BASE + 0)
VFIO_CHECK_EXTENSION = _IO(VFIO_TYPE, VFIO_BASE + 1)
VFIO_SET_IOMMU = _IO(VFIO_TYPE, VFIO_BASE + 2)
VFIO_IOMMU_GET_INFO = _IO(VFIO_TYPE, VFIO_BASE + 12)
VFIO_IOMMU_MAP_DMA = _IO(VFIO_TYPE, VFIO_BASE + 13)
VFIO_IOMMU_UNMAP_DMA = _IO(VFIO_TYPE, VFIO_BASE + 14)
VFIO_IOMMU_ENABLE = _IO(VFIO_TYPE, VFIO_BASE + 15)
VFIO_IOMMU_DISABLE = _IO(VFIO_TYPE, VFIO_BASE + 16)
VFIO_IOMMU_DIRTY_PAGES = _IO(VFIO_TYPE, VFIO_BASE + 17)

VFIO_IOMMU_INFO_PGSIZES = 1 << 0
VFIO_IOMMU_INFO_CAPS = 1 << 1
VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE = 1
VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION = 2
VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL = 3
VFIO_DMA_MAP_FLAG_READ = 1 << 0
VFIO_DMA_MAP_FLAG_WRITE = 1 << 1
VFIO_DMA_MAP_FLAG_VADDR = 1 << 2
VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP = 1 << 0
VFIO_DMA_UNMAP_FLAG_ALL = 1 << 1
VFIO_DMA_UNMAP_FLAG_VADDR = 1 << 2
VFIO_IOMMU_DIRTY_PAGES_FLAG_START = 1 << 0
VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP = 1 << 1
VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP = 1 << 2

# ---- include/uapi/linux/capability.h: the capabilities iommufd's capable() checks
# can see (the third, CAP_SYS_RAWIO, is behind CONFIG_VFIO_NOIOMMU, which is off) ----
CAP_IPC_LOCK = 14  # pages.c: iopt_alloc_pages does no locked-memory accounting for it
CAP_SYS_RESOURCE = 24  # ioas.c: IOMMU_OPTION_RLIMIT_MODE set

# ---- include/uapi/asm-generic/poll.h: poll(2) of a fault fd (struct pollfd above) ----
POLLIN = 0x0001
POLLPRI = 0x0002
POLLOUT = 0x0004
POLLERR = 0x0008
POLLHUP = 0x0010
POLLNVAL = 0x0020
POLLRDNORM = 0x0040
POLLWRNORM = 0x0100

# Every public constant above, by its C name (the probe test checks each against the headers).
CONST: dict[str, int] = {
    k: v for k, v in globals().items()
    if k.startswith(("IOMMU", "VFIO_", "MOCK_", "CAP_", "POLL")) and type(v) is int
}

_REQUEST_NAMES = (
    "IOMMU_DESTROY", "IOMMU_IOAS_ALLOC", "IOMMU_IOAS_ALLOW_IOVAS", "IOMMU_IOAS_COPY",
    "IOMMU_IOAS_IOVA_RANGES", "IOMMU_IOAS_MAP", "IOMMU_IOAS_UNMAP", "IOMMU_OPTION",
    "IOMMU_VFIO_IOAS", "IOMMU_HWPT_ALLOC", "IOMMU_GET_HW_INFO", "IOMMU_HWPT_SET_DIRTY_TRACKING",
    "IOMMU_HWPT_GET_DIRTY_BITMAP", "IOMMU_HWPT_INVALIDATE", "IOMMU_FAULT_QUEUE_ALLOC",
    "IOMMU_TEST_CMD",
    "VFIO_GET_API_VERSION", "VFIO_CHECK_EXTENSION", "VFIO_SET_IOMMU", "VFIO_IOMMU_GET_INFO",
    "VFIO_IOMMU_MAP_DMA", "VFIO_IOMMU_UNMAP_DMA", "VFIO_IOMMU_ENABLE", "VFIO_IOMMU_DISABLE",
    "VFIO_IOMMU_DIRTY_PAGES",
)
# ioctl request macro name -> number; a separate table so flag names are not accepted as ioctls.
REQUESTS: dict[str, int] = {n: CONST[n] for n in _REQUEST_NAMES}
TEST_OPS: dict[str, int] = {k: v for k, v in CONST.items() if k.startswith("IOMMU_TEST_OP_")}


def request(name: str) -> int:
    """The ioctl number of a request macro, e.g. request("IOMMU_IOAS_MAP")."""
    try:
        return REQUESTS[name]
    except KeyError:
        raise KeyError(f"unknown ioctl request {name!r}") from None


def test_op(name: str) -> int:
    """The iommu_test_cmd.op value of an IOMMU_TEST_OP_* name."""
    try:
        return TEST_OPS[name]
    except KeyError:
        raise KeyError(f"unknown test op {name!r}") from None


test_op.__test__ = False  # type: ignore[attr-defined]  # not a pytest test when imported


@functools.cache  # the encoder asks for the same few hundred on every program
def sizeof(struct_name: str) -> int:
    """sizeof(struct_name), e.g. sizeof("struct iommu_ioas_map") == 40."""
    return int(ffi.sizeof(struct_name))


def _type_size(ctype: Any) -> int:
    # A flexible array member (length None) occupies no bytes of the struct.
    if ctype.kind == "array" and ctype.length is None:
        return 0
    return int(ffi.sizeof(ctype))


@functools.cache
def field_offset(struct_name: str, path: str) -> tuple[int, int]:
    """(offset, size) in bytes of a dotted field path inside a struct.

    Members of the anonymous union of iommu_test_cmd are addressed directly by name
    ("access_rw.iova"), as in C; a numeric component indexes an array ("iova_ranges.1.end").
    """
    parts: list[str | int] = [int(p) if p.isdigit() else p for p in path.split(".")]
    ctype = ffi.typeof(struct_name)
    for part in parts:
        if isinstance(part, int):
            if ctype.kind != "array":
                raise KeyError(f"{struct_name}: {path!r}: index into non-array")
            ctype = ctype.item
            continue
        if ctype.kind not in ("struct", "union"):
            raise KeyError(f"{struct_name}: {path!r}: {part!r} is inside a non-struct")
        # cffi flattens anonymous unions/structs into their parent's field list.
        found = dict(ctype.fields).get(part)
        if found is None:
            raise KeyError(f"{struct_name} has no field {path!r}")
        ctype = found.type
    return int(ffi.offsetof(struct_name, *parts)), _type_size(ctype)


def fields(struct_name: str) -> list[str]:
    """Every field path of a struct, depth first: nested struct members get both their own
    path ("add_reserved") and their members' ("add_reserved.start")."""
    out: list[str] = []

    def walk(ctype: Any, prefix: str) -> None:
        for name, f in ctype.fields:
            out.append(prefix + name)
            if f.type.kind in ("struct", "union"):
                walk(f.type, prefix + name + ".")

    walk(ffi.typeof(struct_name), "")
    return out
