/* Layout shared by executor.c and fuzz/executor/encode.py (via cffi cdef). */
#include <stddef.h>
#include <stdint.h>

#define FZ_MAX_FDS 256
#define FZ_MAX_THREADS 4

enum { FZ_BUF_ANON, FZ_BUF_HUGETLB, FZ_BUF_MEMFD, FZ_BUF_READONLY, FZ_BUF_HOLE };
enum { FZ_CALL_IOCTL_PTR, FZ_CALL_IOCTL_VAL, FZ_CALL_CLOSE, FZ_CALL_READ, FZ_CALL_WRITE,
       FZ_CALL_POLL };
enum { FZ_RELOC_FIELD, FZ_RELOC_BUFFER, FZ_RELOC_ARENA, FZ_RELOC_RET };
enum { FZ_KCOV_PC, FZ_KCOV_CMP, FZ_KCOV_EDGES };
/* fz_call.sched: how the call runs (fuzz/prog/ir.py's fail_nth, thread, barrier) */
enum {
	FZ_SCHED_NTH_MASK = 0xffff, /* fail the Nth fault point of the call; 0: none */
	FZ_SCHED_THREAD_SHIFT = 16, /* 2 bits: the thread that issues it */
	FZ_SCHED_GROUP_SHIFT = 20,  /* 12 bits: race group, 0: none; consecutive calls of
	                             * one group start together and are joined after */
};
/* fz_call_result.flags */
enum {
	FZ_RES_INJECTED = 1,    /* fail-nth read back 0: the Nth fault point failed in the call */
	FZ_RES_NTH_FAILED = 2,  /* fail-nth could not be armed (no /proc/thread-self/fail-nth) */
	FZ_RES_THREAD_SHIFT = 8, /* bits 8-9: the thread that ran it */
};

struct fz_buffer {
	uint64_t addr;
	uint64_t size;
	uint32_t kind;
	uint32_t seed;
	uint32_t first_hole;
	uint32_t nr_holes;
};

struct fz_hole {
	uint64_t offset;
	uint64_t length;
};

struct fz_reloc {
	uint32_t dst;       /* arena offset patched */
	uint32_t dst_width;
	uint32_t kind;
	uint32_t src_width;
	uint64_t src;       /* arena offset, buffer index, arena offset to take the address of,
	                     * or the index of the call whose return value is used */
	uint64_t add;
};

struct fz_call {
	uint32_t kind;
	uint32_t request;
	uint32_t arg_off;
	uint32_t first_reloc;
	uint32_t nr_relocs;
	uint32_t fd_out_off;  /* non-zero: arena offset of an fd this call returns */
	uint32_t cap_ptr_off; /* capture: arena offsets of the u64 pointer and length */
	uint32_t cap_len_off;
	uint32_t cap_max;     /* 0: no capture */
	/* FZ_CALL_READ / FZ_CALL_WRITE: arg_off holds {u32 fd; u32 pad; u64 buf; u64 count};
	 * for READ, cap_ptr_off/cap_max are the arena side array the bytes read end up in
	 * (copied there when buf is a program buffer), not a capture.
	 * FZ_CALL_POLL: arg_off holds a struct pollfd; poll(2) with no wait. */
	uint32_t sched;       /* FZ_SCHED_*: fault injection, thread, race group */
};

struct fz_program {
	const struct fz_buffer *buffers;
	const struct fz_hole *holes;
	const struct fz_call *calls;
	const struct fz_reloc *relocs;
	uint32_t nr_buffers;
	uint32_t nr_calls;
	uint32_t prologue_request;
	uint32_t prologue_off;
	uint32_t prologue_len;
	uint32_t kcov_mode;
	uint64_t kcov_words;
	/* creds != 0: the calls run without the capabilities in drop_caps (bit n: capability
	 * n, taken from the effective set of every thread that issues one) and with
	 * RLIMIT_MEMLOCK at memlock bytes; both are restored after the program */
	uint32_t creds;
	uint64_t drop_caps;
	uint64_t memlock;
};

struct fz_call_result {
	int32_t err;
	uint32_t flags; /* FZ_RES_* */
	int64_t ret;
	uint32_t pc_first;
	uint32_t pc_count;
	uint32_t cap_first;
	uint32_t cap_len;
	uint64_t t_start; /* CLOCK_MONOTONIC ns around the call, from the call loop's start */
	uint64_t t_end;
};

struct fz_run_info {
	int32_t setup_errno;
	uint32_t setup_step;
	int32_t iommufd;
	uint32_t nr_pcs;
	uint32_t nr_cap;
	uint32_t pcs_truncated;
	uint64_t calls_ns; /* time spent in the call loop, for benchmarks */
	uint64_t setup_ns; /* ... mapping buffers and opening /dev/iommu */
	uint64_t teardown_ns; /* ... closing fds and unmapping buffers */
	uint32_t pooled_buffers; /* buffers reused from the pool, not mapped afresh */
	uint32_t threads; /* threads the program's calls ran on (1: the main one only) */
	/* the guest agent's own, filled in after fz_run (0 from the host's cffi runner): */
	uint64_t agent_ns; /* this program's frame read and response built, outside fz_run */
	uint64_t kmsg_ns; /* ... of which reading /dev/kmsg */
	uint64_t send_ns; /* writing the previous answer to the channel */
};

int fz_run(const struct fz_program *prog, uint8_t *arena, struct fz_call_result *res,
	   uint32_t *pcs, uint32_t pcs_cap, uint8_t *capbuf, uint32_t capbuf_cap,
	   uint64_t *kcov_area, int kcov_fd, struct fz_run_info *info);

/* Bytes of response fz_run_wire writes for this wire program (0: not a program). */
size_t fz_response_size(const uint8_t *wire, size_t len);
/* Runs a program in the wire format (fuzz/executor/wire.py), writing the response
 * (fuzz.executor.runner.unpack_response, with an empty kmsg section) to out; capbuf
 * holds the header's cap_cap bytes. Returns the response length, -1 if malformed. */
long fz_run_wire(const uint8_t *wire, size_t len, uint8_t *out, size_t out_cap,
		 uint8_t *capbuf, uint64_t *kcov_area, uint64_t kcov_words, int kcov_fd);

/* The KCOV fd and area worker thread `thread` (1..FZ_MAX_THREADS-1) traces itself with;
 * without one its calls report no PCs. Returns 0, -1 for a bad thread number. */
int fz_set_thread_kcov(int thread, int fd, uint64_t *area, uint64_t words);

/* Keep buffers mapped between programs (executor.c, "The buffer pool"); default 1. */
extern int fz_pool_enabled;
/* Unmap every kept buffer. */
void fz_pool_flush(void);
