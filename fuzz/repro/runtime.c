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
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
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
#define VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE 1
#define VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL 3
/* --- end of constants --- */

static FILE *out; /* a private copy of stdout: a program may close(2) small fd numbers */
static int err[MAX_OPS];
static long ret[MAX_OPS];
static char strbuf[1 << 18];

/* As the fuzzer's executor does: only fds this program got back (access fds) are
 * closed; any other number answers EBADF as if it were not open. */
__attribute__((unused)) static long close_own(int fd, int *fds, int *nfds)
{
	for (int k = 0; k < *nfds; k++) {
		if (fds[k] != fd)
			continue;
		fds[k] = fds[--*nfds];
		return close(fd);
	}
	errno = EBADF;
	return -1;
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

static void die(const char *what)
{
	fprintf(out, "SETUP FAILED: %s: %s\n", what, strerror(errno));
	exit(2);
}

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
}

__attribute__((unused)) static void done(int i, const char *name, long r)
{
	err[i] = r < 0 ? errno : 0;
	ret[i] = r;
	fprintf(out, "op %d %s errno=%d (%s) ret=%ld", i, name, err[i],
		err[i] ? strerror(err[i]) : "ok", r);
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
