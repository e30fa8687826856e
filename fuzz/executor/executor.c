/*
 * The guest-side executor: runs one encoded program on a fresh /dev/iommu fd.
 *
 * The host does all the work of turning a program into bytes (fuzz/executor/encode.py):
 * an arena holding every op's ioctl struct and side arrays, a list of calls, and
 * relocations that patch earlier ops' outputs (ids, IOVAs, fds) and buffer
 * addresses into later ops' structs just before they run. This loop only maps the
 * buffers, patches, calls ioctl() and records errno, return value, KCOV PCs and
 * captured memory, so the per-op cost stays close to a hand-written C loop. A call
 * can have its Nth fault point failed (fail-nth) and run on one of up to four
 * threads; a race group's threads start together from one barrier.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
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

/*
 * FZ_KCOV_CMP: a program compares the same operands at the same PC over and over
 * (82% of the records of generated programs repeat one before them). Each distinct
 * record (type, arg1, arg2, pc) is sent once, under the first call that made it,
 * with how many times the program made it in the upper half of its type word; the
 * host replays it that many times (fuzz.backend.Execution.call_cmps), so it sees
 * the same records, duplicates after their first instead of where they were.
 */
#define CMP_BITS 15
#define CMP_SLOTS (1u << CMP_BITS)
struct cmp_slot {
	uint32_t at; /* the record's first u32 slot in the response's pcs */
	uint32_t gen;
};
static struct cmp_slot cmps[CMP_SLOTS];
static uint32_t cmp_count;

/* The record's first u32 slot among pcs if the program made it before, else ~0, after
 * noting it at slot `at` if `room` (and the table is not full: then it just repeats). */
static uint32_t cmp_seen(const uint64_t *rec, const uint32_t *pcs, uint32_t at, int room)
{
	uint64_t k = (rec[0] & 0xffffffffu) ^ rec[1] * 0x9E3779B97F4A7C15ull
		     ^ rec[2] * 0xC2B2AE3D27D4EB4Full ^ rec[3] * 0x165667B19E3779F9ull;
	uint32_t h = (uint32_t)((k * 0x9E3779B97F4A7C15ull) >> (64 - CMP_BITS));

	for (;; h = (h + 1) & (CMP_SLOTS - 1)) {
		if (cmps[h].gen != cur_gen) {
			if (!room || cmp_count >= CMP_SLOTS / 4 * 3)
				return ~0u;
			cmps[h].gen = cur_gen;
			cmps[h].at = at;
			cmp_count++;
			return ~0u;
		}
		uint64_t had[4];
		memcpy(had, pcs + cmps[h].at, sizeof(had));
		if ((uint32_t)had[0] == (uint32_t)rec[0] && had[1] == rec[1] && had[2] == rec[2]
		    && had[3] == rec[3])
			return cmps[h].at;
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
 * The state of one program's call loop, shared by the threads that issue its calls.
 * `lock` guards what several threads append to or change: the PCs and the edge
 * table, the captures, the program's fd table.
 */
struct run_ctx {
	const struct fz_program *prog;
	uint8_t *arena;
	struct fz_call_result *res;
	uint32_t *pcs;
	uint32_t pcs_cap, npcs;
	uint8_t *capbuf;
	uint32_t capbuf_cap, ncap;
	int fd; /* the program's iommufd */
	int fds[FZ_MAX_FDS]; /* fds it got back (access fds), closed at the end */
	uint32_t nfds;
	int kcov; /* KCOV is on for this program */
	uint32_t threads_used; /* bit t: thread t ran a call */
	struct fz_run_info *info;
	struct timespec t0; /* the call loop's start: the origin of the timestamps */
	pthread_mutex_t lock;
};

/*
 * The threads. Thread 0 is the caller of fz_run; threads 1..3 are started the first
 * time a program puts a call on them and then wait, between programs too, for work:
 * a list of call indices (one call, or their part of a race group). Each has its own
 * KCOV fd (registered by the agent: KCOV traces the task that enabled it) and its own
 * /proc/thread-self/fail-nth.
 */
struct fz_thread {
	pthread_t tid;
	int started;
	int kcov_fd;
	uint64_t *kcov_area;
	uint64_t kcov_words;
	int kcov_on; /* enabled for the current program */
	int fail_fd; /* -1: not opened yet, -2: cannot be */
	uint32_t calls[64];
	uint32_t ncalls;
	int barrier; /* wait at the group's barrier before the first call */
	uint32_t work; /* futex words: generation of the work posted, and of the work done */
	uint32_t done;
	uint64_t dropped; /* capabilities this thread took out of its effective set */
};

static struct fz_thread threads[FZ_MAX_THREADS];
static struct run_ctx *cur;

/*
 * The group's "start together" barrier. The workers are pinned to CPUs round-robin
 * (thread t to CPU t mod n; the main thread, whose children run host commands, not);
 * where there are several, the early ones spin (up to SPIN_NS: longer than a futex
 * wake-up of another vCPU under TCG takes) so that they all leave at once; on one
 * CPU spinning only delays the others, so they yield, then sleep.
 */
#define SPIN_NS 3000000ull
static struct {
	uint32_t parties, arrived, open;
} group_barrier;
static int ncpus;

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void futex_wait(uint32_t *addr, uint32_t val)
{
	syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake(uint32_t *addr)
{
	syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

static void pin_to_cpu(int t)
{
	cpu_set_t set;

	if (ncpus < 2)
		return;
	CPU_ZERO(&set);
	CPU_SET(t % ncpus, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

static int barrier_open(void)
{
	return __atomic_load_n(&group_barrier.open, __ATOMIC_ACQUIRE);
}

static void barrier_wait(void)
{
	static uint32_t opened;

	if (__atomic_add_fetch(&group_barrier.arrived, 1, __ATOMIC_ACQ_REL) ==
	    group_barrier.parties) {
		__atomic_store_n(&group_barrier.open, 1, __ATOMIC_RELEASE);
		futex_wake(&group_barrier.open);
		/* on one CPU the thread that opens it would always go first: every other
		 * time it lets the woken ones go before it */
		if (ncpus < 2 && (opened++ & 1))
			sched_yield();
		return;
	}
	if (ncpus > 1)
		for (uint64_t end = now_ns() + SPIN_NS; !barrier_open() && now_ns() < end;)
			for (int k = 0; k < 64 && !barrier_open(); k++)
				__builtin_ia32_pause();
	for (int k = 0; k < 100 && !barrier_open(); k++)
		sched_yield();
	while (!barrier_open())
		futex_wait(&group_barrier.open, 0);
}

int fz_set_thread_kcov(int thread, int fd, uint64_t *area, uint64_t words)
{
	if (thread < 1 || thread >= FZ_MAX_THREADS)
		return -1;
	threads[thread].kcov_fd = fd;
	threads[thread].kcov_area = area;
	threads[thread].kcov_words = words;
	return 0;
}

/*
 * Fault injection the way tools/testing/selftests/iommu/iommufd_fail_nth.c and
 * syzkaller do it: N written to the thread's fail-nth right before the call makes
 * the Nth fault point it passes fail (every should_fail() of the task counts:
 * fail_iommufd, failslab, fail_page_alloc); read back after it, 0 means that point
 * was reached and failed, anything else the call passed fewer points. The agent
 * sets the fault attributes up once per boot.
 */
static int fail_nth_fd(struct fz_thread *th)
{
	if (th->fail_fd == -1) {
		int fd = open("/proc/thread-self/fail-nth", O_RDWR | O_CLOEXEC);
		th->fail_fd = fd < 0 ? -2 : fcntl(fd, F_DUPFD_CLOEXEC, 600);
		if (fd >= 0)
			close(fd);
		if (th->fail_fd < 0)
			th->fail_fd = -2;
	}
	return th->fail_fd;
}

static int arm_fail_nth(struct fz_thread *th, uint32_t nth)
{
	char buf[16];
	int fd = fail_nth_fd(th), n = snprintf(buf, sizeof(buf), "%u", nth);

	return fd >= 0 && pwrite(fd, buf, (size_t)n, 0) == n;
}

static int fault_injected(struct fz_thread *th)
{
	char buf[16];
	ssize_t n = pread(th->fail_fd, buf, sizeof(buf) - 1, 0);
	int saved = errno;

	/* disarm whatever is left; EFAULT: the Nth point came after the call (in this read) */
	while (pwrite(th->fail_fd, "0", 1, 0) < 0 && errno == EFAULT)
		;
	errno = saved;
	return n == 2 && buf[0] == '0' && buf[1] == '\n';
}

/*
 * CLOSE only closes fds this program got from the kernel (access and fault fds): any other
 * number - the agent's channel, its KCOV fd, the iommufd itself - answers EBADF
 * as if it were not open, so a program cannot cut the agent off from the host.
 */
static long close_own_fd(struct run_ctx *x, int fd)
{
	int own = 0;

	pthread_mutex_lock(&x->lock);
	for (uint32_t i = 0; i < x->nfds && !own; i++)
		if (x->fds[i] == fd) {
			x->fds[i] = x->fds[--x->nfds];
			own = 1;
		}
	pthread_mutex_unlock(&x->lock);
	if (own)
		return close(fd);
	errno = EBADF;
	return -1;
}

static int own_fd(struct run_ctx *x, int fd)
{
	int own = 0;

	pthread_mutex_lock(&x->lock);
	for (uint32_t i = 0; i < x->nfds && !own; i++)
		own = x->fds[i] == fd;
	pthread_mutex_unlock(&x->lock);
	return own;
}

/*
 * read(2) / write(2) of an fd the program got back (a fault fd): like CLOSE, any
 * other number answers EBADF without a syscall. A read into a program buffer is
 * copied into the call's arena side array too, so refs to what was read (the first
 * record's cookie) and the decoder find it in one place.
 */
static long fd_io(struct run_ctx *x, const struct fz_call *c)
{
	uint8_t *arena = x->arena;
	int fd = (int)load(arena + c->arg_off, 4);
	void *buf = (void *)(uintptr_t)load(arena + c->arg_off + 8, 8);
	uint64_t count = load(arena + c->arg_off + 16, 8);
	uint8_t *side = arena + c->cap_ptr_off;
	long ret;

	if (!own_fd(x, fd)) {
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

/* poll(2) of an fd the program got back (any other number: EBADF, no syscall), with
 * no wait: the struct pollfd in the arena gets its revents. */
static long fd_poll(struct run_ctx *x, const struct fz_call *c)
{
	struct pollfd *p = (void *)(x->arena + c->arg_off);

	if (!own_fd(x, p->fd)) {
		errno = EBADF;
		return -1;
	}
	return poll(p, 1, 0);
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

/* The first n words of a call's KCOV trace as the program's PCs, edges or comparisons. */
static void collect_pcs(struct run_ctx *x, struct fz_call_result *r, const uint64_t *area,
			uint64_t n, uint64_t words)
{
	const struct fz_program *prog = x->prog;

	r->pc_first = x->npcs;
	r->pc_count = 0;
	if (prog->kcov_mode == FZ_KCOV_CMP) {
		/* Comparison records are 4 words (type, arg1, arg2, pc), two u32 slots
		 * each; the type's upper half counts the record's repeats (cmp_seen). */
		if (n > (words - 1) / 4)
			n = (words - 1) / 4;
		for (uint64_t k = 0; k < n; k++) {
			const uint64_t *rec = &area[1 + 4 * k];
			int room = x->pcs_cap - x->npcs >= 8;
			uint32_t at = cmp_seen(rec, x->pcs, x->npcs, room);
			uint64_t type;
			if (at != ~0u) {
				memcpy(&type, x->pcs + at, 8);
				type += 1ull << 32;
				memcpy(x->pcs + at, &type, 8);
				continue;
			}
			if (!room) {
				x->info->pcs_truncated = 1;
				break;
			}
			type = (uint32_t)rec[0] | 1ull << 32;
			memcpy(x->pcs + x->npcs, &type, 8);
			memcpy(x->pcs + x->npcs + 2, &rec[1], 24);
			x->npcs += 8;
		}
		r->pc_count = x->npcs - r->pc_first;
	} else if (prog->kcov_mode == FZ_KCOV_EDGES) {
		if (n > words)
			n = words;
		for (uint64_t k = 1; k < n; k++) {
			uint64_t e = (uint32_t)area[k] | (uint64_t)(uint32_t)area[1 + k] << 32;
			if (!edge_insert(e))
				continue;
			if (x->pcs_cap - x->npcs < 2) {
				x->info->pcs_truncated = 1;
				break;
			}
			memcpy(x->pcs + x->npcs, &e, 8);
			x->npcs += 2;
		}
		if (edge_count >= EDGE_SLOTS / 4 * 3)
			x->info->pcs_truncated = 1;
		r->pc_count = x->npcs - r->pc_first;
	} else {
		if (n > words)
			n = words;
		if (n > x->pcs_cap - x->npcs) {
			n = x->pcs_cap - x->npcs;
			x->info->pcs_truncated = 1;
		}
		/* Kernel text lives at 0xffffffff8xxxxxxx: the low half is unique. */
		for (uint64_t k = 0; k < n; k++)
			x->pcs[x->npcs + k] = (uint32_t)area[1 + k];
		x->npcs += n;
		r->pc_count = (uint32_t)n;
	}
}

/*
 * Capabilities are per thread: each thread that issues a call of the program sets its
 * own effective set to the program's (the permitted set keeps them all, so putting them
 * back needs no privilege). Returns 0, or -errno.
 */
static int set_dropped_caps(struct fz_thread *th, uint64_t drop)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];

	if (th->dropped == drop)
		return 0;
	if (syscall(SYS_capget, &hdr, data))
		return -errno;
	for (int k = 0; k < 2; k++) {
		uint32_t bits = (uint32_t)(drop >> (32 * k));
		/* back what was dropped before (and is still permitted), out what is dropped now */
		data[k].effective |= (uint32_t)(th->dropped >> (32 * k)) & data[k].permitted;
		data[k].effective &= ~bits;
	}
	if (syscall(SYS_capset, &hdr, data))
		return -errno;
	th->dropped = drop;
	return 0;
}

/* RLIMIT_MEMLOCK for the program (process-wide): the old limit kept to put back. */
static struct rlimit saved_memlock;
static int memlock_set;

static void set_memlock(uint64_t bytes)
{
	struct rlimit r;

	if (getrlimit(RLIMIT_MEMLOCK, &saved_memlock))
		return;
	r.rlim_cur = bytes;
	r.rlim_max = saved_memlock.rlim_max > bytes ? saved_memlock.rlim_max : bytes;
	memlock_set = !setrlimit(RLIMIT_MEMLOCK, &r);
}

static void restore_memlock(void)
{
	if (memlock_set)
		setrlimit(RLIMIT_MEMLOCK, &saved_memlock);
	memlock_set = 0;
}

/* One call on thread t, its relocations already applied. */
static void do_call(struct run_ctx *x, int t, uint32_t i)
{
	struct fz_thread *th = &threads[t];
	const struct fz_call *c = &x->prog->calls[i];
	struct fz_call_result *r = &x->res[i];
	uint32_t nth = c->sched & FZ_SCHED_NTH_MASK;
	uint64_t kn = 0;
	struct timespec a, b;
	int armed = 0, err;
	long ret;

	r->flags = (uint32_t)t << FZ_RES_THREAD_SHIFT;
	if (nth && !(armed = arm_fail_nth(th, nth)))
		r->flags |= FZ_RES_NTH_FAILED;
	if (th->kcov_on)
		__atomic_store_n(&th->kcov_area[0], 0, __ATOMIC_RELAXED);
	clock_gettime(CLOCK_MONOTONIC, &a);
	errno = 0;
	switch (c->kind) {
	case FZ_CALL_IOCTL_PTR:
		ret = ioctl(x->fd, c->request, x->arena + c->arg_off);
		break;
	case FZ_CALL_IOCTL_VAL:
		ret = ioctl(x->fd, c->request, (unsigned long)load(x->arena + c->arg_off, 8));
		break;
	case FZ_CALL_READ:
	case FZ_CALL_WRITE:
		ret = fd_io(x, c);
		break;
	case FZ_CALL_POLL:
		ret = fd_poll(x, c);
		break;
	default: /* FZ_CALL_CLOSE */
		ret = close_own_fd(x, (int)load(x->arena + c->arg_off, 4));
		break;
	}
	err = ret < 0 ? errno : 0;
	clock_gettime(CLOCK_MONOTONIC, &b);
	if (th->kcov_on)
		kn = __atomic_load_n(&th->kcov_area[0], __ATOMIC_RELAXED);
	if (armed && fault_injected(th))
		r->flags |= FZ_RES_INJECTED;
	r->err = err;
	r->ret = ret;
	r->t_start = ns_between(&x->t0, &a);
	r->t_end = ns_between(&x->t0, &b);
	pthread_mutex_lock(&x->lock);
	r->pc_first = x->npcs;
	r->pc_count = 0;
	if (th->kcov_on)
		collect_pcs(x, r, th->kcov_area, kn, t ? th->kcov_words : x->prog->kcov_words);
	r->cap_first = x->ncap;
	r->cap_len = 0;
	if (c->cap_max && r->err == 0 && c->kind == FZ_CALL_IOCTL_PTR) {
		r->cap_len = capture(c, x->arena, x->capbuf + x->ncap, x->capbuf_cap - x->ncap);
		x->ncap += r->cap_len;
	}
	if (c->fd_out_off && r->err == 0 && x->nfds < FZ_MAX_FDS)
		x->fds[x->nfds++] = (int)load(x->arena + c->fd_out_off, 4);
	pthread_mutex_unlock(&x->lock);
}

/* A thread's share of a job: KCOV on for it, the barrier if it is a group, its calls. */
static void run_part(struct run_ctx *x, int t)
{
	struct fz_thread *th = &threads[t];

	set_dropped_caps(th, x->prog->creds ? x->prog->drop_caps : 0);
	if (t && x->kcov && th->kcov_fd >= 0 && th->kcov_area)
		th->kcov_on = !ioctl(th->kcov_fd, KCOV_ENABLE,
				     x->prog->kcov_mode == FZ_KCOV_CMP ? FZ_KCOV_CMP : FZ_KCOV_PC);
	if (th->barrier)
		barrier_wait();
	for (uint32_t k = 0; k < th->ncalls; k++)
		do_call(x, t, th->calls[k]);
	if (t && th->kcov_on) {
		ioctl(th->kcov_fd, KCOV_DISABLE, 0);
		th->kcov_on = 0;
	}
}

static void *worker(void *arg)
{
	struct fz_thread *th = arg;
	uint32_t seen = 0;

	fail_nth_fd(th); /* opened once, by the thread itself: thread-self is this thread */
	pin_to_cpu((int)(th - threads));
	for (;;) {
		while (__atomic_load_n(&th->work, __ATOMIC_ACQUIRE) == seen)
			futex_wait(&th->work, seen);
		seen = __atomic_load_n(&th->work, __ATOMIC_ACQUIRE);
		run_part(cur, (int)(th - threads));
		__atomic_store_n(&th->done, seen, __ATOMIC_RELEASE);
		futex_wake(&th->done);
	}
	return NULL;
}

static int start_thread(int t)
{
	struct fz_thread *th = &threads[t];
	pthread_attr_t attr;
	int rc;

	if (th->started)
		return 0;
	if (!ncpus)
		ncpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
	th->fail_fd = -1;
	if (!th->kcov_area)
		th->kcov_fd = -1;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 1 << 20);
	rc = pthread_create(&th->tid, &attr, worker, th);
	pthread_attr_destroy(&attr);
	th->started = !rc;
	return rc ? -1 : 0;
}

/*
 * Calls [first, last) on their threads: one call, or a race group, whose threads
 * wait at one barrier and are released together. Thread 0's share runs here; the
 * workers' shares are posted to them and waited for.
 */
static void run_job(struct run_ctx *x, uint32_t first, uint32_t last, int group)
{
	const struct fz_program *prog = x->prog;
	int parties = 0, used[FZ_MAX_THREADS] = {0};

	for (uint32_t i = first; i < last; i++) {
		const struct fz_call *c = &prog->calls[i];
		for (uint32_t k = 0; k < c->nr_relocs; k++)
			relocate(&prog->relocs[c->first_reloc + k], x->arena, prog->buffers, x->res);
	}
	for (int t = 0; t < FZ_MAX_THREADS; t++)
		threads[t].ncalls = 0;
	for (uint32_t i = first; i < last; i++) {
		int t = (int)(prog->calls[i].sched >> FZ_SCHED_THREAD_SHIFT) & (FZ_MAX_THREADS - 1);
		if (t && start_thread(t))
			t = 0; /* no thread: the call runs on the main one (its result says so) */
		if (threads[t].ncalls < sizeof(threads[t].calls) / sizeof(threads[t].calls[0]))
			threads[t].calls[threads[t].ncalls++] = i;
		if (!used[t]++)
			parties++;
	}
	group_barrier.parties = (uint32_t)parties;
	group_barrier.arrived = 0;
	group_barrier.open = 0;
	for (int t = 0; t < FZ_MAX_THREADS; t++)
		threads[t].barrier = group && parties > 1 && used[t];
	for (int t = 0; t < FZ_MAX_THREADS; t++)
		x->threads_used |= (uint32_t)(used[t] != 0) << t;
	cur = x;
	for (int t = 1; t < FZ_MAX_THREADS; t++)
		if (used[t]) {
			__atomic_add_fetch(&threads[t].work, 1, __ATOMIC_RELEASE);
			futex_wake(&threads[t].work);
		}
	if (used[0])
		run_part(x, 0);
	for (int t = 1; t < FZ_MAX_THREADS; t++) {
		uint32_t want, d;
		if (!used[t])
			continue;
		want = __atomic_load_n(&threads[t].work, __ATOMIC_ACQUIRE);
		/* wait on the value checked: loading it again could read the worker's
		 * done == want after its wake, and sleep forever (a hang in a soak) */
		while ((d = __atomic_load_n(&threads[t].done, __ATOMIC_ACQUIRE)) != want)
			futex_wait(&threads[t].done, d);
	}
}

int fz_run(const struct fz_program *prog, uint8_t *arena, struct fz_call_result *res,
	   uint32_t *pcs, uint32_t pcs_cap, uint8_t *capbuf, uint32_t capbuf_cap,
	   uint64_t *kcov_area, int kcov_fd, struct fz_run_info *info)
{
	static struct run_ctx x;
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
	if (prog->creds)
		set_memlock(prog->memlock); /* before the capabilities go: raising the hard
					     * limit needs CAP_SYS_RESOURCE */

	if (kcov_fd >= 0 && ioctl(kcov_fd, KCOV_ENABLE,
				  prog->kcov_mode == FZ_KCOV_CMP ? FZ_KCOV_CMP : FZ_KCOV_PC))
		kcov_fd = -1;
	if (++cur_gen == 0) {
		memset(edges, 0, sizeof(edges));
		memset(cmps, 0, sizeof(cmps));
		cur_gen = 1;
	}
	edge_count = 0;
	cmp_count = 0;
	if (!threads[0].started) {
		threads[0].started = 1;
		threads[0].fail_fd = -1;
		pthread_mutex_init(&x.lock, NULL);
	}
	/* now, not at the first fail_nth: opening it takes the lowest free fd for a moment,
	 * which a racing thread's new access or fault fd would then skip */
	fail_nth_fd(&threads[0]);
	threads[0].kcov_fd = kcov_fd;
	threads[0].kcov_area = kcov_area;
	threads[0].kcov_on = kcov_fd >= 0;
	x.prog = prog;
	x.arena = arena;
	x.res = res;
	x.pcs = pcs;
	x.pcs_cap = pcs_cap;
	x.npcs = 0;
	x.capbuf = capbuf;
	x.capbuf_cap = capbuf_cap;
	x.ncap = 0;
	x.fd = fd;
	x.nfds = 0;
	x.kcov = kcov_fd >= 0;
	x.info = info;
	x.threads_used = 1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	x.t0 = t1;
	info->setup_ns = ns_between(&t0, &t1);
	for (uint32_t i = 0; i < prog->nr_calls;) {
		uint32_t g = prog->calls[i].sched >> FZ_SCHED_GROUP_SHIFT, j = i + 1;
		while (g && j < prog->nr_calls && prog->calls[j].sched >> FZ_SCHED_GROUP_SHIFT == g)
			j++;
		run_job(&x, i, j, g != 0);
		i = j;
	}
	clock_gettime(CLOCK_MONOTONIC, &t2);
	info->calls_ns = ns_between(&t1, &t2);
	threads[0].kcov_on = 0;
	if (kcov_fd >= 0)
		ioctl(kcov_fd, KCOV_DISABLE, 0);
	/* Tear down everything the program made so nothing leaks into the next one. */
	for (uint32_t i = 0; i < x.nfds; i++)
		if (x.fds[i] != fd)
			close(x.fds[i]);
	close(fd);
	set_dropped_caps(&threads[0], 0); /* the workers put theirs back at their next call */
	restore_memlock();
	unmap_buffers(prog->buffers, prog->nr_buffers);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	info->teardown_ns = ns_between(&t2, &t1);
	info->nr_pcs = x.npcs;
	info->nr_cap = x.ncap;
	info->threads = (uint32_t)__builtin_popcount(x.threads_used);
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
	uint32_t creds, pad;
	uint64_t drop_caps, memlock;
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
	prog.creds = h->creds;
	prog.drop_caps = h->drop_caps;
	prog.memlock = h->memlock;
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
