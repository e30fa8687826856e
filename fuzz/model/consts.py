"""Constants of the Linux 6.12 iommufd uAPI and of its selftest mock driver.

Every value here is copied from include/uapi/linux/iommufd.h, include/uapi/linux/vfio.h,
drivers/iommu/iommufd/iommufd_test.h, selftest.c or iommufd_private.h (6.12).
"""

from __future__ import annotations

import errno as _e

from fuzz import uapi as _uapi  # the uAPI constants are defined once, there

EPERM = _e.EPERM
ENOENT = _e.ENOENT
EIO = _e.EIO
EBADF = _e.EBADF
ENOMEM = _e.ENOMEM
EFAULT = _e.EFAULT
EBUSY = _e.EBUSY
EEXIST = _e.EEXIST
ENODEV = _e.ENODEV
EINVAL = _e.EINVAL
ENOSPC = _e.ENOSPC
E2BIG = _e.E2BIG
EOVERFLOW = _e.EOVERFLOW
EBADFD = _e.EBADFD
EMSGSIZE = _e.EMSGSIZE
EOPNOTSUPP = _e.EOPNOTSUPP
EADDRINUSE = _e.EADDRINUSE
EBADE = _e.EBADE
EDEADLOCK = _e.EDEADLK
ESPIPE = _e.ESPIPE

U16 = (1 << 16) - 1
U32 = (1 << 32) - 1
U64 = (1 << 64) - 1
ULONG_MAX = U64
SIZE_MAX = U64

PAGE_SIZE = 4096
PAGE_MASK = ~(PAGE_SIZE - 1) & U64
HPAGE_SIZE = 2 << 20  # CONFIG_TRANSPARENT_HUGEPAGE=y: iopt_alloc_iova's max_alignment
KMALLOC_MAX_SIZE = 1 << (10 + 12)  # 1 << (MAX_PAGE_ORDER + PAGE_SHIFT)

# iommufd.h
IOMMU_IOAS_MAP_FIXED_IOVA = _uapi.IOMMU_IOAS_MAP_FIXED_IOVA
IOMMU_IOAS_MAP_WRITEABLE = _uapi.IOMMU_IOAS_MAP_WRITEABLE
IOMMU_IOAS_MAP_READABLE = _uapi.IOMMU_IOAS_MAP_READABLE
IOMMU_OPTION_RLIMIT_MODE = _uapi.IOMMU_OPTION_RLIMIT_MODE
IOMMU_OPTION_HUGE_PAGES = _uapi.IOMMU_OPTION_HUGE_PAGES
IOMMU_OPTION_OP_SET = _uapi.IOMMU_OPTION_OP_SET
IOMMU_OPTION_OP_GET = _uapi.IOMMU_OPTION_OP_GET
IOMMU_VFIO_IOAS_GET = _uapi.IOMMU_VFIO_IOAS_GET
IOMMU_VFIO_IOAS_SET = _uapi.IOMMU_VFIO_IOAS_SET
IOMMU_VFIO_IOAS_CLEAR = _uapi.IOMMU_VFIO_IOAS_CLEAR

IOMMU_HWPT_ALLOC_NEST_PARENT = _uapi.IOMMU_HWPT_ALLOC_NEST_PARENT
IOMMU_HWPT_ALLOC_DIRTY_TRACKING = _uapi.IOMMU_HWPT_ALLOC_DIRTY_TRACKING
IOMMU_HWPT_FAULT_ID_VALID = _uapi.IOMMU_HWPT_FAULT_ID_VALID
IOMMU_HWPT_DATA_NONE = _uapi.IOMMU_HWPT_DATA_NONE
IOMMU_HW_INFO_TYPE_NONE = _uapi.IOMMU_HW_INFO_TYPE_NONE
IOMMU_HW_CAP_DIRTY_TRACKING = _uapi.IOMMU_HW_CAP_DIRTY_TRACKING
IOMMU_HWPT_DIRTY_TRACKING_ENABLE = _uapi.IOMMU_HWPT_DIRTY_TRACKING_ENABLE
IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR = _uapi.IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR
IOMMU_PGFAULT_FLAGS_PASID_VALID = _uapi.IOMMU_PGFAULT_FLAGS_PASID_VALID
IOMMU_PGFAULT_FLAGS_LAST_PAGE = _uapi.IOMMU_PGFAULT_FLAGS_LAST_PAGE
IOMMUFD_PAGE_RESP_SUCCESS = _uapi.IOMMUFD_PAGE_RESP_SUCCESS
IOMMUFD_PAGE_RESP_INVALID = _uapi.IOMMUFD_PAGE_RESP_INVALID
# hw_pagetable.c: "An arbitrary entry_num cap, far above any realistic invalidation batch"
IOMMU_HWPT_INVALIDATE_ENTRY_NUM_MAX = 1 << 19
IOMMU_NO_PASID = 0

# iommu prot bits (include/linux/iommu.h)
IOMMU_READ = 1 << 0
IOMMU_WRITE = 1 << 1
IOMMU_CACHE = 1 << 2

# iopt_pages account modes
IOPT_PAGES_ACCOUNT_NONE = 0
IOPT_PAGES_ACCOUNT_USER = 1
IOPT_PAGES_ACCOUNT_MM = 2

# iommufd_test.h / selftest.c
MOCK_APERTURE_START = _uapi.MOCK_APERTURE_START
MOCK_APERTURE_LAST = _uapi.MOCK_APERTURE_LAST
MOCK_IO_PAGE_SIZE = PAGE_SIZE // 2
MOCK_HUGE_PAGE_SIZE = 512 * MOCK_IO_PAGE_SIZE
MOCK_FLAGS_ACCESS_WRITE = _uapi.MOCK_FLAGS_ACCESS_WRITE
MOCK_FLAGS_ACCESS_SYZ = _uapi.MOCK_FLAGS_ACCESS_SYZ
MOCK_ACCESS_RW_WRITE = _uapi.MOCK_ACCESS_RW_WRITE
MOCK_ACCESS_RW_SLOW_PATH = _uapi.MOCK_ACCESS_RW_SLOW_PATH
MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES = _uapi.MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES
MOCK_FLAGS_DEVICE_NO_DIRTY = _uapi.MOCK_FLAGS_DEVICE_NO_DIRTY
MOCK_FLAGS_DEVICE_HUGE_IOVA = _uapi.MOCK_FLAGS_DEVICE_HUGE_IOVA
IOMMUFD_ACCESS_RW_KTHREAD = 1 << 1
MOCK_NESTED_DOMAIN_IOTLB_ID_MAX = _uapi.MOCK_NESTED_DOMAIN_IOTLB_ID_MAX
MOCK_NESTED_DOMAIN_IOTLB_NUM = _uapi.MOCK_NESTED_DOMAIN_IOTLB_NUM
IOMMU_HW_INFO_TYPE_SELFTEST = _uapi.IOMMU_HW_INFO_TYPE_SELFTEST
IOMMU_HW_INFO_SELFTEST_REGVAL = _uapi.IOMMU_HW_INFO_SELFTEST_REGVAL
IOMMU_HWPT_DATA_SELFTEST = _uapi.IOMMU_HWPT_DATA_SELFTEST
IOMMU_TEST_IOTLB_DEFAULT = _uapi.IOMMU_TEST_IOTLB_DEFAULT
IOMMU_HWPT_INVALIDATE_DATA_SELFTEST = _uapi.IOMMU_HWPT_INVALIDATE_DATA_SELFTEST
IOMMU_TEST_INVALIDATE_FLAG_ALL = _uapi.IOMMU_TEST_INVALIDATE_FLAG_ALL
ACCESS_MAX_LENGTH = 16 * 1024 * 1024  # "Prevent syzkaller from triggering a WARN_ON in kvzalloc()"

# vfio.h
VFIO_API_VERSION = _uapi.VFIO_API_VERSION
VFIO_TYPE1_IOMMU = _uapi.VFIO_TYPE1_IOMMU
VFIO_SPAPR_TCE_IOMMU = _uapi.VFIO_SPAPR_TCE_IOMMU
VFIO_TYPE1v2_IOMMU = _uapi.VFIO_TYPE1v2_IOMMU
VFIO_DMA_CC_IOMMU = _uapi.VFIO_DMA_CC_IOMMU
VFIO_EEH = _uapi.VFIO_EEH
VFIO_TYPE1_NESTING_IOMMU = _uapi.VFIO_TYPE1_NESTING_IOMMU
VFIO_NOIOMMU_IOMMU = _uapi.VFIO_NOIOMMU_IOMMU
VFIO_UNMAP_ALL = _uapi.VFIO_UNMAP_ALL
VFIO_UPDATE_VADDR = _uapi.VFIO_UPDATE_VADDR
VFIO_IOMMU_INFO_PGSIZES = _uapi.VFIO_IOMMU_INFO_PGSIZES
VFIO_IOMMU_INFO_CAPS = _uapi.VFIO_IOMMU_INFO_CAPS
VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE = _uapi.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE
VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL = _uapi.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL
VFIO_DMA_MAP_FLAG_READ = _uapi.VFIO_DMA_MAP_FLAG_READ
VFIO_DMA_MAP_FLAG_WRITE = _uapi.VFIO_DMA_MAP_FLAG_WRITE
VFIO_DMA_UNMAP_FLAG_ALL = _uapi.VFIO_DMA_UNMAP_FLAG_ALL
CONFIG_VFIO_NOIOMMU = False  # not set in kernel-config/iommufd-fuzz.config

# Struct sizes: (sizeof, offsetofend(last member)) per iommufd op, where the last
# member is the one main.c's IOCTL_OP table names (the minimum size it accepts).
_IOCTL_OP_LAST = {
    "DESTROY": ("struct iommu_destroy", "id"),
    "IOAS_ALLOC": ("struct iommu_ioas_alloc", "out_ioas_id"),
    "IOAS_ALLOW_IOVAS": ("struct iommu_ioas_allow_iovas", "allowed_iovas"),
    "IOAS_IOVA_RANGES": ("struct iommu_ioas_iova_ranges", "out_iova_alignment"),
    "IOAS_MAP": ("struct iommu_ioas_map", "iova"),
    "IOAS_COPY": ("struct iommu_ioas_copy", "src_iova"),
    "IOAS_UNMAP": ("struct iommu_ioas_unmap", "length"),
    "OPTION": ("struct iommu_option", "val64"),
    "VFIO_IOAS": ("struct iommu_vfio_ioas", "__reserved"),
    "HWPT_ALLOC": ("struct iommu_hwpt_alloc", "__reserved"),
    "GET_HW_INFO": ("struct iommu_hw_info", "__reserved"),
    "HWPT_SET_DIRTY_TRACKING": ("struct iommu_hwpt_set_dirty_tracking", "__reserved"),
    "HWPT_GET_DIRTY_BITMAP": ("struct iommu_hwpt_get_dirty_bitmap", "data"),
    "HWPT_INVALIDATE": ("struct iommu_hwpt_invalidate", "__reserved"),
    "FAULT_QUEUE_ALLOC": ("struct iommu_fault_alloc", "out_fault_fd"),
    "TEST": ("struct iommu_test_cmd", "last"),
}


def _sizes(struct: str, last: str) -> tuple[int, int]:
    off, size = _uapi.field_offset(struct, last)
    return _uapi.sizeof(struct), off + size


STRUCT_SIZES = {name: _sizes(*v) for name, v in _IOCTL_OP_LAST.items()}
# vfio structs: the minsz each handler copies in (offsetofend of its last field)
VFIO_MAP_DMA_SIZE = sum(_uapi.field_offset("struct vfio_iommu_type1_dma_map", "size"))
VFIO_UNMAP_DMA_SIZE = sum(_uapi.field_offset("struct vfio_iommu_type1_dma_unmap", "size"))
VFIO_INFO_SIZE = _uapi.sizeof("struct vfio_iommu_type1_info")
VFIO_INFO_MINSZ = sum(_uapi.field_offset("struct vfio_iommu_type1_info", "iova_pgsizes"))
