/*
 * The ceiling for the guest agent: the same IOAS_MAP (fixed IOVA) + IOAS_UNMAP
 * pairs in a plain C loop. Usage: c_loop PAIRS LENGTH [kcov]. With "kcov" it
 * enables KCOV on itself and resets the trace before each ioctl, so the kernel
 * does the same coverage work as under the agent. Prints JSON.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/types.h>

#define KCOV_INIT_TRACE _IOR('c', 1, unsigned long)
#define KCOV_ENABLE _IO('c', 100)
#define KCOV_WORDS (1 << 18)

struct iommu_ioas_alloc { __u32 size, flags, out_ioas_id; };
struct iommu_ioas_map { __u32 size, flags, ioas_id, __reserved; __u64 user_va, length, iova; };
struct iommu_ioas_unmap { __u32 size, ioas_id; __u64 iova, length; };
#define IOMMUFD_TYPE ';'
#define IOMMU_IOAS_ALLOC _IO(IOMMUFD_TYPE, 0x81)
#define IOMMU_IOAS_MAP _IO(IOMMUFD_TYPE, 0x85)
#define IOMMU_IOAS_UNMAP _IO(IOMMUFD_TYPE, 0x86)

int main(int argc, char **argv)
{
	long pairs = argc > 1 ? atol(argv[1]) : 10000;
	unsigned long len = argc > 2 ? strtoul(argv[2], NULL, 0) : 4096;
	int fd = open("/dev/iommu", O_RDWR);
	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	struct timespec a, b;
	int kcov = argc > 3 && !strcmp(argv[3], "kcov");
	unsigned long *area = NULL;
	long fails = 0;
	void *buf;

	if (kcov) {
		int kfd = open("/sys/kernel/debug/kcov", O_RDWR);
		if (kfd < 0 || ioctl(kfd, KCOV_INIT_TRACE, KCOV_WORDS)) {
			perror("kcov");
			return 1;
		}
		area = mmap(NULL, KCOV_WORDS * 8, PROT_READ | PROT_WRITE, MAP_SHARED, kfd, 0);
		if (area == MAP_FAILED || ioctl(kfd, KCOV_ENABLE, 0)) {
			perror("kcov enable");
			return 1;
		}
	}

	if (fd < 0 || ioctl(fd, IOMMU_IOAS_ALLOC, &alloc)) {
		perror("iommufd");
		return 1;
	}
	buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < pairs; i++) {
		struct iommu_ioas_map map = { .size = sizeof(map), .flags = 7,
			.ioas_id = alloc.out_ioas_id, .user_va = (uintptr_t)buf, .length = len,
			.iova = 1UL << 30 };
		struct iommu_ioas_unmap unmap = { .size = sizeof(unmap),
			.ioas_id = alloc.out_ioas_id, .iova = 1UL << 30, .length = len };
		if (area)
			__atomic_store_n(&area[0], 0, __ATOMIC_RELAXED);
		fails += ioctl(fd, IOMMU_IOAS_MAP, &map) != 0;
		if (area)
			__atomic_store_n(&area[0], 0, __ATOMIC_RELAXED);
		fails += ioctl(fd, IOMMU_IOAS_UNMAP, &unmap) != 0;
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	double s = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
	printf("{\"pairs\": %ld, \"seconds\": %.4f, \"ops_per_s\": %.1f, \"failures\": %ld}\n",
	       pairs, s, 2 * pairs / s, fails);
	return fails != 0;
}
