// SPDX-License-Identifier: GPL-2.0-only
/*
 * LD_PRELOAD library: KCOV (PC mode) over the whole life of every process of a
 * program, for measuring the kernel's selftests with the same instrument as the
 * fuzzer's programs. KCOV is per task and not inherited, so each process (the
 * kselftest harness forks one per test, and a grandchild for setup + body)
 * opens its own: in a constructor, and in a fork child handler.
 *
 * The trace buffer is drained into a small set after every ioctl() and close()
 * (a big IOAS_MAP alone can fill it), keeping only PCs inside the ranges in
 * $IOMMUFD_FUZZ_KCOV_RANGES ("lo-hi,lo-hi" of low 32-bit halves, hex). At exit,
 * exit() or _exit(), the set goes to $IOMMUFD_FUZZ_KCOV_OUT/kcov.<pid>:
 * u32 count, u32 overflowed drains, then count u32 PCs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define KCOV_INIT_TRACE _IOR('c', 1, unsigned long)
#define KCOV_ENABLE _IO('c', 100)
#define KCOV_DISABLE _IO('c', 101)
#define KCOV_TRACE_PC 0
#define WORDS (1UL << 23) /* 64 MiB per process (at 32, 13 selftest syscalls overflowed) */
#define SET_SLOTS (1U << 20)
#define MAX_RANGES 64
#define FD_BASE 900 /* out of the way of the program's own fds */

static uint64_t *area;
static int kfd = -1;
static pid_t owner;
static int finished;
static uint32_t *set;
static uint32_t set_n, overflows;
static uint32_t rlo[MAX_RANGES], rhi[MAX_RANGES];
static int nranges = -1; /* -1: keep every PC */

static void parse_ranges(void)
{
	const char *s = getenv("IOMMUFD_FUZZ_KCOV_RANGES");

	if (!s || !*s)
		return;
	nranges = 0;
	while (*s && nranges < MAX_RANGES) {
		char *end;

		rlo[nranges] = (uint32_t)strtoul(s, &end, 16);
		if (*end != '-')
			break;
		rhi[nranges++] = (uint32_t)strtoul(end + 1, &end, 16);
		s = *end == ',' ? end + 1 : end;
	}
}

static int wanted(uint32_t pc)
{
	if (nranges < 0)
		return 1;
	for (int i = 0; i < nranges; i++)
		if (pc >= rlo[i] && pc < rhi[i])
			return 1;
	return 0;
}

static void insert(uint32_t pc)
{
	uint32_t h = (pc * 2654435761u) & (SET_SLOTS - 1);

	if (!pc || set_n >= SET_SLOTS / 4 * 3)
		return;
	while (set[h] && set[h] != pc)
		h = (h + 1) & (SET_SLOTS - 1);
	if (!set[h]) {
		set[h] = pc;
		set_n++;
	}
}

static void start(void)
{
	int fd;

	owner = getpid();
	finished = 0;
	set_n = overflows = 0;
	area = NULL;
	if (!set)
		set = mmap(NULL, SET_SLOTS * 4, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (set == MAP_FAILED) {
		set = NULL;
		return;
	}
	memset(set, 0, SET_SLOTS * 4);
	fd = (int)syscall(SYS_openat, AT_FDCWD, "/sys/kernel/debug/kcov", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return;
	kfd = fcntl(fd, F_DUPFD_CLOEXEC, FD_BASE);
	syscall(SYS_close, fd);
	if (kfd < 0 || syscall(SYS_ioctl, kfd, KCOV_INIT_TRACE, WORDS))
		return;
	area = mmap(NULL, WORDS * 8, PROT_READ | PROT_WRITE, MAP_SHARED, kfd, 0);
	if (area == MAP_FAILED) {
		area = NULL;
		return;
	}
	if (syscall(SYS_ioctl, kfd, KCOV_ENABLE, KCOV_TRACE_PC)) {
		munmap(area, WORDS * 8);
		area = NULL;
		return;
	}
	__atomic_store_n(&area[0], 0, __ATOMIC_RELAXED);
}

static void drain(void)
{
	uint64_t n;

	if (!area || !set || getpid() != owner)
		return;
	n = __atomic_load_n(&area[0], __ATOMIC_RELAXED);
	if (n >= WORDS - 1) {
		overflows++;
		n = WORDS - 1;
	}
	for (uint64_t k = 1; k <= n; k++) {
		uint32_t pc = (uint32_t)area[k];

		if (wanted(pc))
			insert(pc);
	}
	__atomic_store_n(&area[0], 0, __ATOMIC_RELAXED);
}

static void finish(void)
{
	char path[512];
	const char *dir = getenv("IOMMUFD_FUZZ_KCOV_OUT");
	uint32_t hdr[2];
	int fd = -1;

	if (finished || !area || getpid() != owner)
		return;
	drain();
	finished = 1;
	syscall(SYS_ioctl, kfd, KCOV_DISABLE, 0);
	if (!dir)
		return;
	snprintf(path, sizeof(path), "%s/kcov.%d", dir, (int)getpid());
	/* a fail-nth test may still have an injected failure pending: retry */
	for (int i = 0; i < 4 && fd < 0; i++)
		fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return;
	hdr[0] = set_n;
	hdr[1] = overflows;
	syscall(SYS_write, fd, hdr, sizeof(hdr));
	for (uint32_t h = 0; h < SET_SLOTS; h++)
		if (set[h])
			syscall(SYS_write, fd, &set[h], 4);
	syscall(SYS_close, fd);
}

static void before_fork(void)
{
	drain();
}

static void in_child(void)
{
	/* the parent's buffer and fd stay the parent's: drop our copies, open our own */
	if (area)
		munmap(area, WORDS * 8);
	if (kfd >= 0)
		syscall(SYS_close, kfd);
	kfd = -1;
	start();
}

__attribute__((constructor)) static void kcov_preload_init(void)
{
	parse_ranges();
	start();
	pthread_atfork(before_fork, NULL, in_child);
}

__attribute__((destructor)) static void kcov_preload_fini(void)
{
	finish();
}

int ioctl(int fd, unsigned long request, ...)
{
	va_list ap;
	void *arg;
	long ret;
	int err;

	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);
	ret = syscall(SYS_ioctl, fd, request, arg);
	err = errno;
	drain();
	errno = err;
	return (int)ret;
}

int close(int fd)
{
	long ret;
	int err;

	if (fd == kfd && kfd >= 0) {
		errno = EBADF;
		return -1;
	}
	ret = syscall(SYS_close, fd);
	err = errno;
	drain();
	errno = err;
	return (int)ret;
}

void _exit(int status)
{
	finish();
	syscall(SYS_exit_group, status);
	__builtin_unreachable();
}
