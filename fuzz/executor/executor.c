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

int fz_pool_enabled = 1;

#define KCOV_ENABLE _IO('c', 100)
#define KCOV_DISABLE _IO('c', 101)

/*
 * FZ_KCOV_EDGES: instead of every PC of every call, the program's distinct edges
 * (prev | cur << 32, pairs of consecutive PCs within one call), each reported
 * under the first call that hit it. A long program repeats the same paths, so
 * this is what keeps the channel from carrying megabytes of duplicate PCs.
 */
#define EDGE_BITS 15 /* 32K slots: one program's edges; 512 KiB, TCG's soft TLB copes */
#define EDGE_SLOTS (1u << EDGE_BITS)
struct edge_slot {
	uint64_t key;
	uint32_t gen;
};
static struct edge_slot edges[EDGE_SLOTS];
static uint32_t cur_gen;
static uint32_t edge_count;

static int edge_insert(uint64_t e)
{
	uint32_t h = (uint32_t)((e * 0x9E3779B97F4A7C15ull) >> (64 - EDGE_BITS));

	if (edge_count >= EDGE_SLOTS / 4 * 3)
		return 0;
	for (;; h = (h + 1) & (EDGE_SLOTS - 1)) {
		if (edges[h].gen != cur_gen) {
			edges[h].gen = cur_gen;
			edges[h].key = e;
			edge_count++;
			return 1;
		}
		if (edges[h].key == e)
			return 0;
	}
}

static void fill_pattern(uint8_t *p, uint64_t len, uint32_t seed)
{
	/* Same formula as fuzz.prog.pattern_bytes: byte k = (k % 251) * 37 + seed.
	 * 64 periods per memcpy: under TCG the calls, not the bytes, are the cost. */
	static uint8_t block[251 * 64];
	static int block_seed = -1;

	if (block_seed != (int)(seed & 0xff)) {
		for (int k = 0; k < 251 * 64; k++)
			block[k] = (uint8_t)((k % 251) * 37 + seed);
		block_seed = (int)(seed & 0xff);
	}
	for (uint64_t off = 0; off < len; off += sizeof(block))
		memcpy(p + off, block, len - off < sizeof(block) ? len - off : sizeof(block));
}

/*
 * The buffer pool. Mapping a buffer costs an mmap, a page fault per page and a
 * munmap; under KASAN and TCG that is ~90 us a page and ~1 ms a syscall (the
 * mm syscalls flush TCG's soft TLB): most of a program's time. So buffers without
 * holes are not unmapped after a program but kept, faulted in, and given to a
 * later program that wants the same kind and size: left in place if it wants them
 * at the same address, else moved there with one mremap (pages and all). What a
 * program sees stays what fresh mappings give it:
 * - the contents are the seed pattern again (refilled every time: ACCESS_RW and
 *   output pointers may have written into them);
 * - nothing else is mapped where programs' buffers live: kept buffers the next
 *   program does not want are moved out to a parking area (FZ_PARK_BASE, far from
 *   the buffer addresses) or unmapped;
 * - no page is still pinned: the selftest's MD_CHECK_REFS (refs 0) must pass on
 *   the whole range before reuse, else the buffer is unmapped and the program gets
 *   a fresh mapping (a pin outliving the iommufd's release would be a kernel bug,
 *   and must not leak into another program's results). That check skips compound
 *   pages, and so do the programs' own MD_CHECK_REFS: on hugetlb pages a stale pin
 *   could not be seen either way;
 * - a program that cannot get memory (ENOMEM, e.g. hugetlb pages held here) gets
 *   the pool emptied and its mapping retried.
 */
#define FZ_POOL_MAX 16
#define FZ_POOL_BYTES (64ull << 20)
#define FZ_PARK_BASE 0x600000000000ull
#define FZ_PARK_STRIDE (1ull << 32)

struct pool_entry {
	uint64_t addr; /* 0: slot unused */
	uint64_t size;
	uint32_t kind;
	int32_t user; /* index of the current program's buffer using it, or -1 */
	uint64_t used; /* pool_clock when a program last had it: the oldest goes first */
};

static struct pool_entry pool[FZ_POOL_MAX];
static uint64_t pool_clock;
static int pool_check_fd = -1; /* an empty iommufd for MD_CHECK_REFS */

static int poolable(const struct fz_buffer *b)
{
	return !b->nr_holes && b->kind != FZ_BUF_HOLE;
}

static uint64_t park_addr(const struct pool_entry *e)
{
	return FZ_PARK_BASE + (uint64_t)(e - pool) * FZ_PARK_STRIDE;
}

#ifdef FZ_TEST_CMD
static int unpinned(uint64_t addr, uint64_t size)
{
	uint8_t cmd[FZ_TEST_CMD_SIZE] = {0};

	if (pool_check_fd < 0) {
		int fd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
		if (fd < 0)
			return 0;
		/* out of the way of programs' fds, like the agent's own */
		pool_check_fd = fcntl(fd, F_DUPFD_CLOEXEC, 600);
		close(fd);
		if (pool_check_fd < 0)
			return 0;
	}
	*(uint32_t *)(cmd + 0) = FZ_TEST_CMD_SIZE;
	*(uint32_t *)(cmd + 4) = FZ_TEST_OP_MD_CHECK_REFS;
	*(uint64_t *)(cmd + FZ_CHECK_REFS_UPTR) = addr;
	*(uint64_t *)(cmd + FZ_CHECK_REFS_LENGTH) = size;
	*(uint32_t *)(cmd + FZ_CHECK_REFS_REFS) = 0;
	return ioctl(pool_check_fd, FZ_TEST_CMD, cmd) == 0;
}
#else
static int unpinned(uint64_t addr, uint64_t size)
{
	(void)addr;
	(void)size;
	return 0; /* cannot tell: never reuse */
}
#endif

static void pool_drop(struct pool_entry *e)
{
	munmap((void *)(uintptr_t)e->addr, e->size);
	e->addr = 0;
	e->user = -1;
}

static int pool_move(struct pool_entry *e, uint64_t to)
{
	void *p;

	if (e->addr == to)
		return 0;
	p = mremap((void *)(uintptr_t)e->addr, e->size, e->size, MREMAP_MAYMOVE | MREMAP_FIXED,
		   (void *)(uintptr_t)to);
	if (p == MAP_FAILED) {
		pool_drop(e);
		return -1;
	}
	e->addr = to;
	return 0;
}

static int fits(const struct pool_entry *e, const struct fz_buffer *b)
{
	return e->addr && e->user < 0 && e->size == b->size && e->kind == b->kind;
}

static int overlaps(const struct pool_entry *e, const struct fz_buffer *b)
{
	return e->addr < b->addr + b->size && b->addr < e->addr + e->size;
}

/*
 * Before a program: give its buffers kept mappings (in place first, then any of
 * the right kind and size, moved straight to where they are wanted), and move
 * every other kept mapping out of the buffer area.
 */
static void pool_prepare(const struct fz_program *prog)
{
	uint32_t n = prog->nr_buffers;

	for (int k = 0; k < FZ_POOL_MAX; k++)
		pool[k].user = -1;
	for (uint32_t i = 0; i < n; i++)
		for (int k = 0; k < FZ_POOL_MAX && poolable(&prog->buffers[i]); k++)
			if (fits(&pool[k], &prog->buffers[i]) &&
			    pool[k].addr == prog->buffers[i].addr) {
				pool[k].user = (int32_t)i;
				break;
			}
	/* kept mappings in the way of this program's buffers go first */
	for (int k = 0; k < FZ_POOL_MAX; k++) {
		if (!pool[k].addr || pool[k].user >= 0)
			continue;
		for (uint32_t i = 0; i < n; i++)
			if (overlaps(&pool[k], &prog->buffers[i])) {
				pool_move(&pool[k], park_addr(&pool[k]));
				break;
			}
	}
	for (uint32_t i = 0; i < n; i++) {
		const struct fz_buffer *b = &prog->buffers[i];
		int have = 0;
		for (int k = 0; k < FZ_POOL_MAX; k++)
			have |= pool[k].user == (int32_t)i;
		for (int k = 0; k < FZ_POOL_MAX && !have && poolable(b); k++)
			if (fits(&pool[k], b) && !pool_move(&pool[k], b->addr)) {
				pool[k].user = (int32_t)i;
				have = 1;
			}
	}
	for (int k = 0; k < FZ_POOL_MAX; k++)
		if (pool[k].addr && pool[k].user < 0 && pool[k].addr != park_addr(&pool[k]))
			pool_move(&pool[k], park_addr(&pool[k]));
}

/* The kept mapping pool_prepare gave buffer i, checked and refilled: 1; none: 0. */
static int pool_take(const struct fz_buffer *b, uint32_t i)
{
	struct pool_entry *e = NULL;

	for (int k = 0; k < FZ_POOL_MAX && !e; k++)
		if (pool[k].addr && pool[k].user == (int32_t)i)
			e = &pool[k];
	if (!e)
		return 0;
	/* hugetlb: compound pages, which MD_CHECK_REFS skips after 512 GUPs each */
	if (b->kind != FZ_BUF_HUGETLB && !unpinned(e->addr, e->size))
		goto drop;
	if (b->kind == FZ_BUF_READONLY &&
	    mprotect((void *)(uintptr_t)b->addr, b->size, PROT_READ | PROT_WRITE))
		goto drop;
	fill_pattern((uint8_t *)(uintptr_t)b->addr, b->size, b->seed);
	if (b->kind == FZ_BUF_READONLY && mprotect((void *)(uintptr_t)b->addr, b->size, PROT_READ))
		goto drop;
	return 1;
drop:
	pool_drop(e);
	return 0;
}

/* Empty the pool but for the mappings the current program uses. */
static void pool_release_unused(void)
{
	for (int k = 0; k < FZ_POOL_MAX; k++)
		if (pool[k].addr && pool[k].user < 0)
			pool_drop(&pool[k]);
}

static uint64_t pool_bytes(void)
{
	uint64_t bytes = 0;

	for (int k = 0; k < FZ_POOL_MAX; k++)
		bytes += pool[k].addr ? pool[k].size : 0;
	return bytes;
}

/* The least recently used kept mapping that this program did not use. */
static struct pool_entry *pool_victim(void)
{
	struct pool_entry *v = NULL;

	for (int k = 0; k < FZ_POOL_MAX; k++)
		if (pool[k].addr && pool[k].used < pool_clock && (!v || pool[k].used < v->used))
			v = &pool[k];
	return v;
}

/* After a program: keep its buffers, making room by dropping the oldest kept ones;
 * unmap what cannot be kept. */
static void pool_keep_or_unmap(const struct fz_buffer *bufs, uint32_t n)
{
	pool_clock++;
	for (uint32_t i = 0; i < n; i++)
		for (int k = 0; k < FZ_POOL_MAX; k++)
			if (pool[k].addr && pool[k].user == (int32_t)i) {
				pool[k].user = -1;
				pool[k].used = pool_clock;
			}
	for (uint32_t i = 0; i < n; i++) {
		const struct fz_buffer *b = &bufs[i];
		struct pool_entry *slot = NULL, *v;
		int kept = 0;
		if (b->kind == FZ_BUF_HOLE)
			continue;
		for (int k = 0; k < FZ_POOL_MAX; k++)
			kept |= pool[k].addr == b->addr && pool[k].used == pool_clock;
		if (kept)
			continue;
		if (!poolable(b) || b->size > FZ_POOL_BYTES) {
			munmap((void *)(uintptr_t)b->addr, b->size);
			continue;
		}
		while (pool_bytes() + b->size > FZ_POOL_BYTES && (v = pool_victim()))
			pool_drop(v);
		for (int k = 0; k < FZ_POOL_MAX && !slot; k++)
			if (!pool[k].addr)
				slot = &pool[k];
		if (!slot && (v = pool_victim())) {
			pool_drop(v);
			slot = v;
		}
		if (!slot || pool_bytes() + b->size > FZ_POOL_BYTES) {
			munmap((void *)(uintptr_t)b->addr, b->size);
			continue;
		}
		*slot = (struct pool_entry){b->addr, b->size, b->kind, -1, pool_clock};
	}
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
	if (fz_pool_enabled) {
		pool_keep_or_unmap(bufs, n);
		return;
	}
	for (uint32_t i = 0; i < n; i++)
		if (bufs[i].kind != FZ_BUF_HOLE)
			munmap((void *)(uintptr_t)bufs[i].addr, bufs[i].size);
}

void fz_pool_flush(void)
{
	for (int k = 0; k < FZ_POOL_MAX; k++)
		if (pool[k].addr)
			pool_drop(&pool[k]);
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

static uint64_t ns_between(const struct timespec *a, const struct timespec *b)
{
	return (uint64_t)(b->tv_sec - a->tv_sec) * 1000000000ull + (uint64_t)(b->tv_nsec - a->tv_nsec);
}

int fz_run(const struct fz_program *prog, uint8_t *arena, struct fz_call_result *res,
	   uint32_t *pcs, uint32_t pcs_cap, uint8_t *capbuf, uint32_t capbuf_cap,
	   uint64_t *kcov_area, int kcov_fd, struct fz_run_info *info)
{
	uint32_t npcs = 0, ncap = 0, nfds = 0;
	int fds[FZ_MAX_FDS];
	int fd, rc;
	struct timespec t0, t1, t2;

	memset(info, 0, sizeof(*info));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (fz_pool_enabled)
		pool_prepare(prog);
	for (uint32_t i = 0; i < prog->nr_buffers; i++) {
		if (fz_pool_enabled && pool_take(&prog->buffers[i], i)) {
			info->pooled_buffers++;
			continue;
		}
		rc = map_buffer(&prog->buffers[i], prog->holes);
		if (rc == -ENOMEM && fz_pool_enabled) {
			/* the memory may be ours: what a fresh executor would have had */
			pool_release_unused();
			rc = map_buffer(&prog->buffers[i], prog->holes);
		}
		if (rc) {
			unmap_buffers(prog->buffers, i);
			if (prog->buffers[i].kind != FZ_BUF_HOLE)
				munmap((void *)(uintptr_t)prog->buffers[i].addr, prog->buffers[i].size);
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
		memset(edges, 0, sizeof(edges));
		cur_gen = 1;
	}
	edge_count = 0;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	info->setup_ns = ns_between(&t0, &t1);
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
	clock_gettime(CLOCK_MONOTONIC, &t2);
	info->calls_ns = ns_between(&t1, &t2);
	if (kcov_fd >= 0)
		ioctl(kcov_fd, KCOV_DISABLE, 0);
	/* Tear down everything the program made so nothing leaks into the next one. */
	for (uint32_t i = 0; i < nfds; i++)
		if (fds[i] != fd)
			close(fds[i]);
	close(fd);
	unmap_buffers(prog->buffers, prog->nr_buffers);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	info->teardown_ns = ns_between(&t2, &t1);
	info->nr_pcs = npcs;
	info->nr_cap = ncap;
	return 0;
}

/*
 * The wire format (fuzz/executor/wire.py) to an fz_program, and the run's outputs
 * laid out as the response (SECTIONS lengths, info, results, arena, pcs, captures;
 * the kmsg section is the caller's: its length is left 0 and nothing is written
 * for it). The arena is copied into its place in the response and the program runs
 * on it there, so the kernel's writes need no second copy. One parser for the C
 * agent and the host's cffi runner.
 */
struct fz_wire_header {
	uint32_t magic, nr_buffers, nr_holes, nr_calls, nr_relocs, arena_len;
	uint32_t prologue_request, prologue_off, prologue_len, kcov_mode, pcs_cap, cap_cap;
};

#define FZ_MAGIC 0x315A4649u
#define ALIGN8(x) (((x) + 7) & ~(size_t)7)

size_t fz_response_size(const uint8_t *wire, size_t len)
{
	const struct fz_wire_header *h = (const void *)wire;

	if (len < sizeof(*h) || h->magic != FZ_MAGIC)
		return 0;
	return 6 * 4 + sizeof(struct fz_run_info) + (size_t)h->nr_calls * sizeof(struct fz_call_result)
		+ ALIGN8((size_t)h->arena_len) + (size_t)h->pcs_cap * 4 + h->cap_cap;
}

long fz_run_wire(const uint8_t *wire, size_t len, uint8_t *out, size_t out_cap,
		 uint8_t *capbuf, uint64_t *kcov_area, uint64_t kcov_words, int kcov_fd)
{
	const struct fz_wire_header *h = (const void *)wire;
	struct fz_program prog;
	size_t off = sizeof(*h), need = fz_response_size(wire, len);
	uint32_t *sections = (uint32_t *)out;
	struct fz_run_info *info;
	struct fz_call_result *res;
	uint8_t *arena, *pcs;

	if (!need || need > out_cap)
		return -1;
	prog.buffers = (const void *)(wire + off);
	off += (size_t)h->nr_buffers * sizeof(struct fz_buffer);
	prog.holes = (const void *)(wire + off);
	off += (size_t)h->nr_holes * sizeof(struct fz_hole);
	prog.calls = (const void *)(wire + off);
	off += (size_t)h->nr_calls * sizeof(struct fz_call);
	prog.relocs = (const void *)(wire + off);
	off += (size_t)h->nr_relocs * sizeof(struct fz_reloc);
	if (off + h->arena_len > len)
		return -1;
	prog.nr_buffers = h->nr_buffers;
	prog.nr_calls = h->nr_calls;
	prog.prologue_request = h->prologue_request;
	prog.prologue_off = h->prologue_off;
	prog.prologue_len = h->prologue_len;
	prog.kcov_mode = h->kcov_mode;
	prog.kcov_words = kcov_words;
	if (h->kcov_mode == 0xFFFFFFFFu)
		kcov_fd = -1;

	info = (void *)(out + 6 * 4);
	res = (void *)(info + 1);
	arena = (uint8_t *)(res + h->nr_calls);
	pcs = arena + ALIGN8((size_t)h->arena_len);
	memcpy(arena, wire + off, h->arena_len);
	fz_run(&prog, arena, res, (uint32_t *)pcs, kcov_fd >= 0 ? h->pcs_cap : 0, capbuf,
	       h->cap_cap, kcov_area, kcov_fd, info);
	/* the arena section is arena_len long: the pcs follow it directly */
	if (h->arena_len % 8) {
		memmove(arena + h->arena_len, pcs, (size_t)info->nr_pcs * 4);
		pcs = arena + h->arena_len;
	}
	memcpy(pcs + (size_t)info->nr_pcs * 4, capbuf, info->nr_cap);
	sections[0] = sizeof(*info);
	sections[1] = h->nr_calls * sizeof(struct fz_call_result);
	sections[2] = h->arena_len;
	sections[3] = info->nr_pcs * 4;
	sections[4] = info->nr_cap;
	sections[5] = 0;
	return (long)(pcs + (size_t)info->nr_pcs * 4 + info->nr_cap - out);
}
