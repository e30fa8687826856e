"""Constants of the Linux 6.12 iommufd uAPI and of its selftest mock driver.

Every value here is copied from include/uapi/linux/iommufd.h, include/uapi/linux/vfio.h,
drivers/iommu/iommufd/iommufd_test.h, selftest.c or iommufd_private.h (6.12).
"""

from __future__ import annotations

import errno as _e

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

U16 = (1 << 16) - 1
U32 = (1 << 32) - 1
U64 = (1 << 64) - 1
ULONG_MAX = U64
SIZE_MAX = U64

PAGE_SIZE = 4096
PAGE_MASK = ~(PAGE_SIZE - 1) & U64
HPAGE_SIZE = 2 << 20  # CONFIG_TRANSPARENT_HUGEPAGE=y: iopt_alloc_iova's max_alignment

# iommufd.h
IOMMU_IOAS_MAP_FIXED_IOVA = 1 << 0
IOMMU_IOAS_MAP_WRITEABLE = 1 << 1
IOMMU_IOAS_MAP_READABLE = 1 << 2
IOMMU_OPTION_RLIMIT_MODE = 0
IOMMU_OPTION_HUGE_PAGES = 1
IOMMU_OPTION_OP_SET = 0
IOMMU_OPTION_OP_GET = 1
IOMMU_VFIO_IOAS_GET = 0
IOMMU_VFIO_IOAS_SET = 1
IOMMU_VFIO_IOAS_CLEAR = 2

# iommu prot bits (include/linux/iommu.h)
IOMMU_READ = 1 << 0
IOMMU_WRITE = 1 << 1
IOMMU_CACHE = 1 << 2

# iopt_pages account modes
IOPT_PAGES_ACCOUNT_NONE = 0
IOPT_PAGES_ACCOUNT_USER = 1
IOPT_PAGES_ACCOUNT_MM = 2

# iommufd_test.h / selftest.c
MOCK_APERTURE_START = 1 << 24
MOCK_APERTURE_LAST = (1 << 31) - 1
MOCK_IO_PAGE_SIZE = PAGE_SIZE // 2
MOCK_HUGE_PAGE_SIZE = 512 * MOCK_IO_PAGE_SIZE
MOCK_FLAGS_ACCESS_WRITE = 1 << 0
MOCK_FLAGS_ACCESS_SYZ = 1 << 16
MOCK_ACCESS_RW_WRITE = 1 << 0
MOCK_ACCESS_RW_SLOW_PATH = 1 << 2
MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES = 1 << 0
MOCK_FLAGS_DEVICE_NO_DIRTY = 1 << 0
MOCK_FLAGS_DEVICE_HUGE_IOVA = 1 << 1
IOMMUFD_ACCESS_RW_KTHREAD = 1 << 1
ACCESS_MAX_LENGTH = 16 * 1024 * 1024  # "Prevent syzkaller from triggering a WARN_ON in kvzalloc()"
TEST_DEFAULT_MEMORY_LIMIT = 65536

# vfio.h
VFIO_API_VERSION = 0
VFIO_TYPE1_IOMMU = 1
VFIO_SPAPR_TCE_IOMMU = 2
VFIO_TYPE1v2_IOMMU = 3
VFIO_DMA_CC_IOMMU = 4
VFIO_EEH = 5
VFIO_TYPE1_NESTING_IOMMU = 6
VFIO_NOIOMMU_IOMMU = 8
VFIO_UNMAP_ALL = 9
VFIO_UPDATE_VADDR = 10
VFIO_IOMMU_INFO_PGSIZES = 1 << 0
VFIO_IOMMU_INFO_CAPS = 1 << 1
VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE = 1
VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL = 3
VFIO_DMA_MAP_FLAG_READ = 1 << 0
VFIO_DMA_MAP_FLAG_WRITE = 1 << 1
VFIO_DMA_UNMAP_FLAG_ALL = 1 << 1
CONFIG_VFIO_NOIOMMU = False  # not set in kernel-config/iommufd-fuzz.config

# Struct sizes: (sizeof, offsetofend(last member the IOCTL_OP table names)) per iommufd op.
STRUCT_SIZES = {
    "DESTROY": (8, 8),
    "IOAS_ALLOC": (12, 12),
    "IOAS_ALLOW_IOVAS": (24, 24),
    "IOAS_IOVA_RANGES": (32, 32),
    "IOAS_MAP": (40, 40),
    "IOAS_COPY": (40, 40),
    "IOAS_UNMAP": (24, 24),
    "OPTION": (24, 24),
    "VFIO_IOAS": (12, 12),
    "TEST": (72, 68),  # struct iommu_test_cmd: 'last' ends at 68, padded to 72
}
# vfio structs: sizeof and the minsz each handler copies in
VFIO_MAP_DMA_SIZE = 32
VFIO_UNMAP_DMA_SIZE = 24
VFIO_INFO_SIZE = 24
VFIO_INFO_MINSZ = 16
VFIO_INFO_DEFAULT_CAP_SPACE = 4096
