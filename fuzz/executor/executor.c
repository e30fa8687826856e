/*
 * The guest-side executor: runs one encoded program on a fresh /dev/iommu fd.
 *
 * The host does all the work of turning a program into bytes (fuzz/executor/encode.py):
 * an arena holding every op's ioctl struct and side arrays, a list of calls, and
 * relocations that patch earlier ops' outputs (ids, IOVAs, fds) and buffer
 * addresses into later ops' structs just before they run. This loop only maps the
 * buffers, patches, calls ioctl() and records errno, return value, KCOV PCs and
 * captured memory, so the per-op cost stays close to a hand-written C loop.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "executor.h"

#define KCOV_ENABLE _IO('c', 100)
#define KCOV_DISABLE _IO('c', 101)

/*
 * FZ_KCOV_EDGES: instead of every PC of every call, the program's distinct edges
 * (prev | cur << 32, pairs of consecutive PCs within one call), each reported
 * under the first call that hit it. A long program repeats the same paths, so
 * this is what keeps the channel from carrying megabytes of duplicate PCs.
 */
#define EDGE_BITS 18
#define EDGE_SLOTS (1u << EDGE_BITS)
static uint64_t edge_key[EDGE_SLOTS];
static uint32_t edge_gen[EDGE_SLOTS];
static uint32_t cur_gen;
static uint32_t edge_count;

static int edge_insert(uint64_t e)
{
	uint32_t h = (uint32_t)((e * 0x9E3779B97F4A7C15ull) >> (64 - EDGE_BITS));

	if (edge_count >= EDGE_SLOTS / 4 * 3)
		return 0;
	for (;; h = (h + 1) & (EDGE_SLOTS - 1)) {
		if (edge_gen[h] != cur_gen) {
			edge_gen[h] = cur_gen;
			edge_key[h] = e;
			edge_count++;
			return 1;
		}
		if (edge_key[h] == e)
			return 0;
	}
}

static void fill_pattern(uint8_t *p, uint64_t len, uint32_t seed)
{
	/* Same formula as fuzz.prog.pattern_bytes: byte k = (k % 251) * 37 + seed. */
	uint8_t block[251];
	for (int k = 0; k < 251; k++)
		block[k] = (uint8_t)(k * 37 + seed);
	for (uint64_t off = 0; off < len; off += 251)
		memcpy(p + off, block, len - off < 251 ? len - off : 251);
}

static int map_buffer(const struct fz_buffer *b, const struct fz_hole *holes)
{
	void *want = (void *)(uintptr_t)b->addr;
	void *p;
	int flags = MAP_FIXED_NOREPLACE;

	switch (b->kind) {
	case FZ_BUF_HOLE:
		return 0;
	case FZ_BUF_MEMFD: {
		int mfd = memfd_create("iommufd-fuzz", 0);
		if (mfd < 0)
			return -errno;
		if (ftruncate(mfd, b->size)) {
			int e = errno;
			close(mfd);
			return -e;
		}
		p = mmap(want, b->size, PROT_READ | PROT_WRITE, MAP_SHARED | flags, mfd, 0);
		close(mfd);
		break;
	}
	case FZ_BUF_HUGETLB:
		p = mmap(want, b->size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | flags, -1, 0);
		break;
	default:
		p = mmap(want, b->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | flags,
			 -1, 0);
		break;
	}
	if (p == MAP_FAILED)
		return -errno;
	if (p != want) {
		munmap(p, b->size);
		return -EEXIST;
	}
	fill_pattern(p, b->size, b->seed);
	if (b->kind == FZ_BUF_READONLY && mprotect(p, b->size, PROT_READ))
		return -errno;
	for (uint32_t i = 0; i < b->nr_holes; i++)
		if (munmap((uint8_t *)p + holes[b->first_hole + i].offset,
			   holes[b->first_hole + i].length))
			return -errno;
	return 0;
}

static void unmap_buffers(const struct fz_buffer *bufs, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		if (bufs[i].kind != FZ_BUF_HOLE)
			munmap((void *)(uintptr_t)bufs[i].addr, bufs[i].size);
}

static uint64_t load(const uint8_t *p, uint32_t width)
{
	switch (width) {
	case 1: return *p;
	case 2: return *(const uint16_t *)p;
	case 4: return *(const uint32_t *)p;
	default: return *(const uint64_t *)p;
	}
}

static void store(uint8_t *p, uint32_t width, uint64_t v)
{
	switch (width) {
	case 1: *p = (uint8_t)v; break;
	case 2: *(uint16_t *)p = (uint16_t)v; break;
	case 4: *(uint32_t *)p = (uint32_t)v; break;
	default: *(uint64_t *)p = v; break;
	}
}

static void relocate(const struct fz_reloc *r, uint8_t *arena, const struct fz_buffer *bufs,
		     const struct fz_call_result *res)
{
	uint64_t v;

	switch (r->kind) {
	case FZ_RELOC_FIELD:
		v = load(arena + r->src, r->src_width);
		break;
	case FZ_RELOC_BUFFER:
		v = bufs[r->src].addr;
		break;
	case FZ_RELOC_RET:
		v = (uint64_t)res[r->src].ret;
		break;
	default: /* FZ_RELOC_ARENA */
		v = (uint64_t)(uintptr_t)(arena + r->src);
		break;
	}
	store(arena + r->dst, r->dst_width, v + r->add);
}

/*
 * CLOSE only closes fds this program got from the kernel (access and fault fds): any other
 * number - the agent's channel, its KCOV fd, the iommufd itself - answers EBADF
 * as if it were not open, so a program cannot cut the agent off from the host.
 */
static long close_own_fd(int fd, int *fds, uint32_t *nfds)
{
	for (uint32_t i = 0; i < *nfds; i++) {
		if (fds[i] != fd)
			continue;
		fds[i] = fds[--*nfds];
		return close(fd);
	}
	errno = EBADF;
	return -1;
}

static int own_fd(int fd, const int *fds, uint32_t nfds)
{
	for (uint32_t i = 0; i < nfds; i++)
		if (fds[i] == fd)
			return 1;
	return 0;
}

/*
 * read(2) / write(2) of an fd the program got back (a fault fd): like CLOSE, any
 * other number answers EBADF without a syscall. A read into a program buffer is
 * copied into the call's arena side array too, so refs to what was read (the first
 * record's cookie) and the decoder find it in one place.
 */
static long fd_io(const struct fz_call *c, uint8_t *arena, const int *fds, uint32_t nfds)
{
	int fd = (int)load(arena + c->arg_off, 4);
	void *buf = (void *)(uintptr_t)load(arena + c->arg_off + 8, 8);
	uint64_t count = load(arena + c->arg_off + 16, 8);
	uint8_t *side = arena + c->cap_ptr_off;
	long ret;

	if (!own_fd(fd, fds, nfds)) {
		errno = EBADF;
		return -1;
	}
	if (c->kind == FZ_CALL_WRITE)
		return write(fd, buf, count);
	ret = read(fd, buf, count);
	if (ret > 0 && buf != (void *)side && c->cap_max) {
		int saved = errno;
		struct iovec local = { side, (size_t)ret < c->cap_max ? (size_t)ret : c->cap_max };
		struct iovec remote = { buf, local.iov_len };

		process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
		errno = saved;
	}
	return ret;
}

static uint32_t capture(const struct fz_call *c, uint8_t *arena, uint8_t *out, uint32_t room)
{
	/* process_vm_readv on ourselves: an unmapped or short range fails cleanly
	 * instead of faulting the agent, and then nothing is captured. */
	uint64_t addr = load(arena + c->cap_ptr_off, 8);
	uint64_t len = load(arena + c->cap_len_off, 8);
	struct iovec local, remote;

	if (len > c->cap_max)
		len = c->cap_max;
	if (len > room || len == 0)
		return 0;
	local.iov_base = out;
	local.iov_len = len;
	remote.iov_base = (void *)(uintptr_t)addr;
	remote.iov_len = len;
	if (process_vm_readv(getpid(), &local, 1, &remote, 1, 0) != (ssize_t)len)
		return 0;
	return (uint32_t)len;
}

int fz_run(const struct fz_program *prog, uint8_t *arena, struct fz_call_result *res,
	   uint32_t *pcs, uint32_t pcs_cap, uint8_t *capbuf, uint32_t capbuf_cap,
	   uint64_t *kcov_area, int kcov_fd, struct fz_run_info *info)
{
	uint32_t npcs = 0, ncap = 0, nfds = 0;
	int fds[FZ_MAX_FDS];
	int fd, rc;

	memset(info, 0, sizeof(*info));
	for (uint32_t i = 0; i < prog->nr_buffers; i++) {
		rc = map_buffer(&prog->buffers[i], prog->holes);
		if (rc) {
			unmap_buffers(prog->buffers, i + 1);
			info->setup_errno = -rc;
			info->setup_step = 1 + i;
			return -1;
		}
	}
	fd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		info->setup_errno = errno;
		unmap_buffers(prog->buffers, prog->nr_buffers);
		return -1;
	}
	info->iommufd = fd;
	if (prog->prologue_len)
		/* e.g. resetting the selftest's global temp memory limit */
		ioctl(fd, prog->prologue_request, arena + prog->prologue_off);

	if (kcov_fd >= 0 && ioctl(kcov_fd, KCOV_ENABLE,
				  prog->kcov_mode == FZ_KCOV_CMP ? FZ_KCOV_CMP : FZ_KCOV_PC))
		kcov_fd = -1;
	if (++cur_gen == 0) {
		memset(edge_gen, 0, sizeof(edge_gen));
		cur_gen = 1;
	}
	edge_count = 0;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (uint32_t i = 0; i < prog->nr_calls; i++) {
		const struct fz_call *c = &prog->calls[i];
		struct fz_call_result *r = &res[i];
		long ret;

		for (uint32_t k = 0; k < c->nr_relocs; k++)
			relocate(&prog->relocs[c->first_reloc + k], arena, prog->buffers, res);
		if (kcov_fd >= 0)
			__atomic_store_n(&kcov_area[0], 0, __ATOMIC_RELAXED);
		errno = 0;
		switch (c->kind) {
		case FZ_CALL_IOCTL_PTR:
			ret = ioctl(fd, c->request, arena + c->arg_off);
			break;
		case FZ_CALL_IOCTL_VAL:
			ret = ioctl(fd, c->request, (unsigned long)load(arena + c->arg_off, 8));
			break;
		case FZ_CALL_READ:
		case FZ_CALL_WRITE:
			ret = fd_io(c, arena, fds, nfds);
			break;
		default: /* FZ_CALL_CLOSE */
			ret = close_own_fd((int)load(arena + c->arg_off, 4), fds, &nfds);
			break;
		}
		r->err = ret < 0 ? errno : 0;
		r->ret = ret;
		r->pc_first = npcs;
		r->pc_count = 0;
		if (kcov_fd >= 0 && prog->kcov_mode == FZ_KCOV_CMP) {
			/* Comparison records are 4 words (type, arg1, arg2, pc): copied whole,
			 * two u32 slots per word. */
			uint64_t n = __atomic_load_n(&kcov_area[0], __ATOMIC_RELAXED);
			uint64_t words = n * 4;
			if (words > prog->kcov_words - 1)
				words = (prog->kcov_words - 1) / 4 * 4;
			if (2 * words > pcs_cap - npcs) {
				words = (pcs_cap - npcs) / 8 * 4;
				info->pcs_truncated = 1;
			}
			memcpy(pcs + npcs, &kcov_area[1], words * 8);
			npcs += 2 * words;
			r->pc_count = (uint32_t)(2 * words);
		} else if (kcov_fd >= 0 && prog->kcov_mode == FZ_KCOV_EDGES) {
			uint64_t n = __atomic_load_n(&kcov_area[0], __ATOMIC_RELAXED);
			uint32_t first = npcs;
			if (n > prog->kcov_words)
				n = prog->kcov_words;
			for (uint64_t k = 1; k < n; k++) {
				uint64_t e = (uint32_t)kcov_area[k] | (uint64_t)(uint32_t)kcov_area[1 + k] << 32;
				if (!edge_insert(e))
					continue;
				if (pcs_cap - npcs < 2) {
					info->pcs_truncated = 1;
					break;
				}
				memcpy(pcs + npcs, &e, 8);
				npcs += 2;
			}
			if (edge_count >= EDGE_SLOTS / 4 * 3)
				info->pcs_truncated = 1;
			r->pc_count = npcs - first;
		} else if (kcov_fd >= 0) {
			uint64_t n = __atomic_load_n(&kcov_area[0], __ATOMIC_RELAXED);
			if (n > prog->kcov_words)
				n = prog->kcov_words;
			if (n > pcs_cap - npcs) {
				n = pcs_cap - npcs;
				info->pcs_truncated = 1;
			}
			/* Kernel text lives at 0xffffffff8xxxxxxx: the low half is unique. */
			for (uint64_t k = 0; k < n; k++)
				pcs[npcs + k] = (uint32_t)kcov_area[1 + k];
			npcs += n;
			r->pc_count = (uint32_t)n;
		}
		r->cap_first = ncap;
		r->cap_len = 0;
		if (c->cap_max && r->err == 0 && c->kind == FZ_CALL_IOCTL_PTR) {
			r->cap_len = capture(c, arena, capbuf + ncap, capbuf_cap - ncap);
			ncap += r->cap_len;
		}
		if (c->fd_out_off && r->err == 0 && nfds < FZ_MAX_FDS)
			fds[nfds++] = (int)load(arena + c->fd_out_off, 4);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	info->calls_ns = (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000000ull + t1.tv_nsec - t0.tv_nsec;
	if (kcov_fd >= 0)
		ioctl(kcov_fd, KCOV_DISABLE, 0);
	/* Tear down everything the program made so nothing leaks into the next one. */
	for (uint32_t i = 0; i < nfds; i++)
		if (fds[i] != fd)
			close(fds[i]);
	close(fd);
	unmap_buffers(prog->buffers, prog->nr_buffers);
	info->nr_pcs = npcs;
	info->nr_cap = ncap;
	return 0;
}
