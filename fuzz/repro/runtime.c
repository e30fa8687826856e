/*
 * The runtime every emitted repro.c carries: set-up and output helpers that mirror
 * the fuzzer's executor (fuzz/executor/executor.c). The emitter copies this file into
 * each reproducer after its header comment, so `gcc repro.c` needs no kernel headers;
 * the block of constants is rewritten from fuzz.uapi and fuzz.prog.limits when it is
 * copied (tests/test_repro.py compiles this file and checks those values).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <linux/capability.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MAP_HUGETLB
#define MAP_HUGETLB 0x40000
#endif

/* --- constants: the emitter writes these from fuzz.uapi and fuzz.prog.limits --- */
#define CAPTURE_MAX 65536
#define MAX_OPS 4096
#define MAX_FDS 256
#define MAX_BUFFERS 64
#define VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE 1
#define VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL 3
/* --- end of constants --- */

static FILE *out; /* a private copy of stdout: a program may close(2) small fd numbers */
static int err[MAX_OPS];
static long ret[MAX_OPS];
static int injected[MAX_OPS]; /* with fail_nth: 1 reached and failed, 0 passed; -1: none */
static int thread_of[MAX_OPS]; /* in a race group: the thread, and when (us from its start) */
static long long us_start[MAX_OPS], us_end[MAX_OPS];
static char strbuf[1 << 18];
static pthread_mutex_t fds_lock = PTHREAD_MUTEX_INITIALIZER;

/* As the fuzzer's executor does: only fds this program got back (access fds) are
 * closed; any other number answers EBADF as if it were not open. */
__attribute__((unused)) static long close_own(int fd, int *fds, int *nfds)
{
	int own = 0;

	pthread_mutex_lock(&fds_lock);
	for (int k = 0; k < *nfds && !own; k++)
		if (fds[k] == fd) {
			fds[k] = fds[--*nfds];
			own = 1;
		}
	pthread_mutex_unlock(&fds_lock);
	if (own)
		return close(fd);
	errno = EBADF;
	return -1;
}

/* poll(2) of one fd with no wait, as the executor does: only of fds this program got
 * back, any other number answers EBADF. */
__attribute__((unused)) static long fd_poll(struct pollfd *p, const int *fds, int nfds)
{
	int own = 0;

	for (int k = 0; k < nfds; k++)
		own |= fds[k] == p->fd;
	if (!own) {
		errno = EBADF;
		return -1;
	}
	errno = 0;
	return poll(p, 1, 0);
}

/* read(2)/write(2) as the executor does: only of fds this program got back (fault fds),
 * any other number answers EBADF; what a read put in a buffer of the program's is
 * copied into the op's side array, where its records are read from. */
__attribute__((unused)) static long fd_io(int is_write, int fd, uint64_t buf, uint64_t count,
					  const int *fds, int nfds, void *side, size_t side_size)
{
	int own = 0;
	long r;

	for (int k = 0; k < nfds; k++)
		own |= fds[k] == fd;
	if (!own) {
		errno = EBADF;
		return -1;
	}
	errno = 0;
	if (is_write)
		return write(fd, (void *)(uintptr_t)buf, count);
	r = read(fd, (void *)(uintptr_t)buf, count);
	if (r > 0 && (void *)(uintptr_t)buf != side) {
		int saved = errno;
		struct iovec local = { side, (size_t)r < side_size ? (size_t)r : side_size };
		struct iovec remote = { (void *)(uintptr_t)buf, local.iov_len };

		process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
		errno = saved;
	}
	return r;
}

__attribute__((unused)) static uint64_t load_le(const unsigned char *p, unsigned width)
{
	uint64_t v = 0;

	for (unsigned k = width; k--;)
		v = v << 8 | p[k];
	return v;
}

/* The whole records a successful read(2) of ret bytes left in a side array of size
 * bytes, each as its fields (offset, width pairs) in hex: "[{0x1,0x2},...]". */
__attribute__((unused)) static const char *canon_records(const void *side, long ret, size_t size,
							 size_t esize, const uint32_t *fields,
							 int nf)
{
	size_t n = 0, nrec = (ret > 0 ? ((size_t)ret < size ? (size_t)ret : size) : 0) / esize;

	n += snprintf(strbuf + n, sizeof(strbuf) - n, "[");
	for (size_t k = 0; k < nrec && n < sizeof(strbuf) - 512; k++) {
		const unsigned char *e = (const unsigned char *)side + k * esize;

		for (int f = 0; f < nf; f++)
			n += snprintf(strbuf + n, sizeof(strbuf) - n, "%s0x%llx",
				      f ? "," : (k ? ",{" : "{"),
				      (unsigned long long)load_le(e + fields[2 * f], fields[2 * f + 1]));
		n += snprintf(strbuf + n, sizeof(strbuf) - n, "}");
	}
	snprintf(strbuf + n, sizeof(strbuf) - n, "]");
	return strbuf;
}

/* One field of the first whole record a read(2) returned, 0 when there is none. */
__attribute__((unused)) static uint64_t first_field(const void *side, long ret, size_t size,
						    size_t esize, uint32_t off, uint32_t width)
{
	if (ret <= 0 || (size_t)ret < esize || size < esize)
		return 0;
	return load_le((const unsigned char *)side + off, width);
}

/* Fault injection as the fuzzer's executor does it: n written to this thread's
 * /proc/thread-self/fail-nth right before the call fails the nth fault point it
 * passes; read back after it, 0 means that point was reached. */
static __thread int fail_fd = -1;

__attribute__((unused)) static void arm_fault(unsigned nth)
{
	char buf[16];
	int n = snprintf(buf, sizeof(buf), "%u", nth);

	if (fail_fd < 0)
		fail_fd = open("/proc/thread-self/fail-nth", O_RDWR);
	if (fail_fd < 0 || pwrite(fail_fd, buf, n, 0) != n) {
		fprintf(out, "SETUP FAILED: arming /proc/thread-self/fail-nth: %s\n", strerror(errno));
		exit(2);
	}
}

__attribute__((unused)) static int fault_injected(void)
{
	char buf[16];
	ssize_t n = pread(fail_fd, buf, sizeof(buf), 0);

	while (pwrite(fail_fd, "0", 1, 0) < 0 && errno == EFAULT)
		;
	return n == 2 && buf[0] == '0' && buf[1] == '\n';
}

static void die(const char *what)
{
	fprintf(out, "SETUP FAILED: %s: %s\n", what, strerror(errno));
	exit(2);
}

/* As the executor runs a program with "creds": RLIMIT_MEMLOCK at memlock bytes (first:
 * raising the hard limit needs CAP_SYS_RESOURCE), then the capabilities in drop (a bit
 * mask) out of the calling thread's effective set; threads started later inherit it. */
static struct rlimit saved_memlock;

static void caps(uint64_t drop, uint64_t back)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];

	if (syscall(SYS_capget, &hdr, data))
		die("capget");
	for (int k = 0; k < 2; k++) {
		data[k].effective |= (uint32_t)(back >> (32 * k)) & data[k].permitted;
		data[k].effective &= ~(uint32_t)(drop >> (32 * k));
	}
	if (syscall(SYS_capset, &hdr, data))
		die("capset");
}

__attribute__((unused)) static void set_creds(uint64_t drop, uint64_t memlock)
{
	struct rlimit r;

	if (getrlimit(RLIMIT_MEMLOCK, &saved_memlock))
		die("getrlimit");
	r.rlim_cur = memlock;
	r.rlim_max = saved_memlock.rlim_max > memlock ? saved_memlock.rlim_max : memlock;
	if (setrlimit(RLIMIT_MEMLOCK, &r))
		die("setrlimit RLIMIT_MEMLOCK");
	caps(drop, 0);
}

__attribute__((unused)) static void restore_creds(uint64_t drop)
{
	caps(0, drop);
	setrlimit(RLIMIT_MEMLOCK, &saved_memlock);
}

static struct {
	uint64_t addr, size;
} mapped[MAX_BUFFERS + 1]; /* a program's buffers and the scratch mapping */
static int nmapped;

/* Buffer at its fixed address, filled with byte k = (k % 251) * 37 + seed. */
__attribute__((unused)) static void map_buffer(uint64_t addr, uint64_t size, const char *kind,
					       unsigned seed)
{
	int flags = MAP_FIXED_NOREPLACE, fd = -1;
	unsigned char block[251];
	void *p;

	if (!strcmp(kind, "hole"))
		return;
	if (!strcmp(kind, "memfd")) {
		fd = syscall(SYS_memfd_create, "iommufd-fuzz", 0);
		if (fd < 0 || ftruncate(fd, size))
			die("memfd");
		flags |= MAP_SHARED;
	} else {
		flags |= MAP_PRIVATE | MAP_ANONYMOUS | (!strcmp(kind, "hugetlb") ? MAP_HUGETLB : 0);
	}
	p = mmap((void *)(uintptr_t)addr, size, PROT_READ | PROT_WRITE, flags, fd, 0);
	if (fd >= 0)
		close(fd);
	if (p != (void *)(uintptr_t)addr)
		die("mmap of a buffer at its fixed address");
	for (int k = 0; k < 251; k++)
		block[k] = (unsigned char)(k * 37 + seed);
	for (uint64_t off = 0; off < size; off += 251)
		memcpy((char *)p + off, block, size - off < 251 ? size - off : 251);
	if (!strcmp(kind, "readonly") && mprotect(p, size, PROT_READ))
		die("mprotect");
	mapped[nmapped].addr = addr;
	mapped[nmapped++].size = size;
}

/* The end of a run: its buffers go (the next run maps them at the same addresses). */
__attribute__((unused)) static void unmap_buffers(void)
{
	while (nmapped) {
		nmapped--;
		munmap((void *)(uintptr_t)mapped[nmapped].addr, mapped[nmapped].size);
	}
}

/* A run's start: no op has a fault or thread to show yet. */
__attribute__((unused)) static void reset_ops(void)
{
	memset(injected, 0xff, sizeof(injected));
	memset(thread_of, 0xff, sizeof(thread_of));
}

__attribute__((unused)) static void record(int i, long r)
{
	err[i] = r < 0 ? errno : 0;
	ret[i] = r;
}

__attribute__((unused)) static void print_op(int i, const char *name)
{
	fprintf(out, "op %d %s errno=%d (%s) ret=%ld", i, name, err[i],
		err[i] ? strerror(err[i]) : "ok", ret[i]);
	if (injected[i] >= 0)
		fprintf(out, " fault=%s", injected[i] ? "injected" : "passed");
	if (thread_of[i] >= 0)
		fprintf(out, " thread=%d us=%lld-%lld", thread_of[i], us_start[i], us_end[i]);
}

__attribute__((unused)) static void done(int i, const char *name, long r)
{
	record(i, r);
	print_op(i, name);
}

/* A race group's calls: each thread issues its calls in order, all the threads are
 * released together from one barrier, and run_group returns when they are done. */
enum { CALL_IOCTL_PTR, CALL_IOCTL_VAL, CALL_CLOSE, CALL_READ, CALL_WRITE, CALL_POLL };
struct call {
	int index, thread;
	unsigned nth; /* fail_nth, 0: none */
	int kind;
	unsigned long request; /* ioctls: the request and the struct (or the value) */
	void *arg; /* poll: the struct pollfd */
	int fd; /* close, read and write: the fd; read and write: fd_io's arguments */
	uint64_t buf, count;
	void *side;
	size_t side_size;
};

struct group_thread {
	pthread_t tid;
	int thread, fd, *fds, *nfds, n;
	struct call *calls;
	pthread_barrier_t *barrier;
	struct timespec t0;
};

static long long us_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000000ll + (t.tv_nsec - t0->tv_nsec) / 1000;
}

static void *group_thread(void *arg)
{
	struct group_thread *g = arg;

	pthread_barrier_wait(g->barrier);
	for (int k = 0; k < g->n; k++) {
		struct call *c = &g->calls[k];
		long r;
		if (c->thread != g->thread)
			continue;
		us_start[c->index] = us_since(&g->t0);
		if (c->nth)
			arm_fault(c->nth);
		if (c->kind == CALL_IOCTL_PTR)
			r = ioctl(g->fd, c->request, c->arg);
		else if (c->kind == CALL_IOCTL_VAL)
			r = ioctl(g->fd, c->request, (unsigned long)(uintptr_t)c->arg);
		else if (c->kind == CALL_CLOSE)
			r = close_own(c->fd, g->fds, g->nfds);
		else if (c->kind == CALL_POLL)
			r = fd_poll(c->arg, g->fds, *g->nfds);
		else
			r = fd_io(c->kind == CALL_WRITE, c->fd, c->buf, c->count, g->fds, *g->nfds,
				  c->side, c->side_size);
		record(c->index, r);
		if (c->nth)
			injected[c->index] = fault_injected();
		us_end[c->index] = us_since(&g->t0);
		thread_of[c->index] = g->thread;
	}
	return NULL;
}

__attribute__((unused)) static void run_group(int fd, struct call *calls, int n, int *fds,
					      int *nfds)
{
	struct group_thread threads[4];
	pthread_barrier_t barrier;
	int used[4] = {0}, parties = 0;

	for (int k = 0; k < n; k++)
		if (!used[calls[k].thread & 3]++)
			parties++;
	pthread_barrier_init(&barrier, NULL, parties);
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int t = 0; t < 4; t++) {
		threads[t] = (struct group_thread){0, t, fd, fds, nfds, n, calls, &barrier, t0};
		if (used[t] && pthread_create(&threads[t].tid, NULL, group_thread, &threads[t]))
			die("pthread_create");
	}
	for (int t = 0; t < 4; t++)
		if (used[t])
			pthread_join(threads[t].tid, NULL);
	pthread_barrier_destroy(&barrier);
}

__attribute__((unused)) static void show_u64(const char *name, uint64_t v)
{
	fprintf(out, " %s=0x%llx", name, (unsigned long long)v);
}

__attribute__((unused)) static void show_str(const char *name, const char *s)
{
	fprintf(out, " %s=%s", name, s);
}

__attribute__((unused)) static void show_data(const char *name, const unsigned char *d, size_t n)
{
	fprintf(out, " %s=<%zu bytes ", name, n);
	for (size_t k = 0; k < n && k < 16; k++)
		fprintf(out, "%02x", d[k]);
	fprintf(out, ">");
}

__attribute__((unused)) static const char *hex(const unsigned char *d, size_t n)
{
	size_t k;

	for (k = 0; k < n && 2 * k + 2 < sizeof(strbuf); k++)
		sprintf(strbuf + 2 * k, "%02x", d[k]);
	strbuf[2 * k] = 0;
	return strbuf;
}

/* What the executor records after the call: min(len, CAPTURE_MAX) bytes at addr, read
 * with process_vm_readv so an unmapped range gives nothing instead of SIGSEGV. */
__attribute__((unused)) static size_t capture(uint64_t addr, uint64_t len, unsigned char *dst)
{
	struct iovec local, remote;

	if (len > CAPTURE_MAX)
		len = CAPTURE_MAX;
	if (!len)
		return 0;
	local.iov_base = dst;
	local.iov_len = len;
	remote.iov_base = (void *)(uintptr_t)addr;
	remote.iov_len = len;
	return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == (ssize_t)len ? len : 0;
}

/* The first min(num, entries) [start, last] u64 pairs of a side array, when the kernel
 * wrote it (valid), as "[0xa-0xb,...]". */
__attribute__((unused)) static const char *canon_ranges(const uint64_t *pairs, uint32_t num,
							uint32_t entries, int valid)
{
	size_t n = 0;

	n += snprintf(strbuf + n, sizeof(strbuf) - n, "[");
	if (valid)
		for (uint32_t k = 0; k < num && k < entries && n < sizeof(strbuf) - 64; k++)
			n += snprintf(strbuf + n, sizeof(strbuf) - n, "%s0x%llx-0x%llx", k ? "," : "",
				      (unsigned long long)pairs[2 * k],
				      (unsigned long long)pairs[2 * k + 1]);
	snprintf(strbuf + n, sizeof(strbuf) - n, "]");
	return strbuf;
}

/* The vfio_info_cap_header chain of VFIO_IOMMU_GET_INFO (offsets from the struct start). */
__attribute__((unused)) static const char *read_caps(const unsigned char *s, uint32_t length,
						     uint32_t off)
{
	uint32_t seen[16];
	int ncaps = 0;
	size_t n = 0;

	strbuf[0] = 0;
	while (off && off + 8 <= length && ncaps < 16 && n < sizeof(strbuf) - 256) {
		uint16_t id, ver;
		uint32_t next, nr;
		int dup = 0;

		for (int k = 0; k < ncaps; k++)
			dup |= seen[k] == off;
		if (dup)
			break;
		seen[ncaps++] = off;
		memcpy(&id, s + off, 2);
		memcpy(&ver, s + off + 2, 2);
		memcpy(&next, s + off + 4, 4);
		n += snprintf(strbuf + n, sizeof(strbuf) - n, "{id=%u,version=%u", id, ver);
		if (id == VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE && off + 16 <= length) {
			memcpy(&nr, s + off + 8, 4);
			if (nr > (length - off - 16) / 16)
				nr = (length - off - 16) / 16;
			n += snprintf(strbuf + n, sizeof(strbuf) - n, ",ranges=[");
			for (uint32_t k = 0; k < nr && n < sizeof(strbuf) - 64; k++) {
				uint64_t a, b;

				memcpy(&a, s + off + 16 + 16 * k, 8);
				memcpy(&b, s + off + 24 + 16 * k, 8);
				n += snprintf(strbuf + n, sizeof(strbuf) - n, "%s0x%llx-0x%llx",
					      k ? "," : "", (unsigned long long)a, (unsigned long long)b);
			}
			n += snprintf(strbuf + n, sizeof(strbuf) - n, "]");
		} else if (id == VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL && off + 12 <= length) {
			memcpy(&nr, s + off + 8, 4);
			n += snprintf(strbuf + n, sizeof(strbuf) - n, ",avail=0x%x", nr);
		}
		n += snprintf(strbuf + n, sizeof(strbuf) - n, "}");
		off = next;
	}
	return strbuf;
}

/* Every kernel log record from fd, one message per line, into strbuf. */
__attribute__((unused)) static const char *read_kmsg(int fd)
{
	char rec[8192];
	size_t n = 0;
	ssize_t len;

	strbuf[0] = 0;
	for (;;) {
		len = read(fd, rec, sizeof(rec) - 1);
		if (len < 0 && errno == EPIPE)
			continue;
		if (len <= 0)
			break;
		rec[len] = 0;
		char *msg = strchr(rec, ';');
		char *nl = msg ? strchr(msg, '\n') : NULL;
		if (!msg)
			continue;
		if (nl)
			*nl = 0;
		n += snprintf(strbuf + n, sizeof(strbuf) - n, "%s\n", msg + 1);
		if (n >= sizeof(strbuf) - 1)
			break;
	}
	return strbuf;
}
