/*
 * The guest agent: PID 1 of the fuzzing guest, a static binary in the initramfs that
 * fuzz/guest/initramfs.py builds, so running a program needs no Python and no 9p.
 *
 * It talks to the host over a virtio-serial port in the frames of fuzz/channel.py
 * (the frame numbers come from there as -D flags). EXEC runs one program with the
 * C executor (fz_run_wire -> fz_run) and answers with its results and the kernel
 * log lines logged since the previous answer (/dev/kmsg, read before and after each
 * program: the lines deferred work of the one before logged after its results went
 * out come first, set apart by a marker line, so the host can put them on the
 * program that caused them; fuzz.channel.split_kmsg). RUN runs a host binary or script:
 * the host's root is mounted over virtio-9p on first use and the command runs
 * chrooted into it, with this guest's /proc, /sys, /dev and /run bound in. Nothing
 * is mounted over 9p before that, which keeps the guest snapshottable (qemu refuses
 * to migrate while a 9p export is mounted), and the host takes its snapshot then.
 *
 * Fault injection is set up once per boot (setup_faults), before the host's snapshot:
 * the executor then fails a call's Nth fault point through /proc/thread-self/fail-nth.
 * FAULTS sets how loudly an injected fault is logged, LEAKS has kmemleak scan (on a
 * kernel booted with kmemleak=on) and sends what it found.
 *
 * If the agent dies the kernel panics (init exited) and qemu, run with -no-reboot,
 * exits where the host sees it.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "executor.h"

#ifndef CH_EXEC
#error "build with fuzz/guest/initramfs.py: it passes the frame numbers of fuzz/channel.py"
#endif

#define PORT_NAME "iommufd-fuzz.agent"
#define AGENT_FD_BASE 500 /* programs' fds start at 3 in every run, ours are out of reach */
#define KCOV_PATH "/sys/kernel/debug/kcov"
#define KCOV_INIT_TRACE _IOR('c', 1, unsigned long)
#define KCOV_WORDS (1u << 18)
#define RUN_OUTPUT_MAX (16u << 20)

static int port = -1, kmsg_fd = -1, kcov_fd = -1, faults_ok;
static uint64_t *kcov_area;

struct buf {
	uint8_t *p;
	size_t len, cap;
};

static void fail(const char *what)
{
	dprintf(2, "agent: %s: %s\n", what, strerror(errno));
	_exit(1);
}

static void reserve(struct buf *b, size_t n)
{
	if (b->cap >= n)
		return;
	b->cap = n + n / 2 + 4096;
	b->p = realloc(b->p, b->cap);
	if (!b->p)
		fail("out of memory");
}

static void append(struct buf *b, const void *p, size_t n)
{
	if (!n)
		return;
	reserve(b, b->len + n);
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static int high(int fd)
{
	int n = fcntl(fd, F_DUPFD_CLOEXEC, AGENT_FD_BASE);

	if (n < 0)
		fail("F_DUPFD");
	close(fd);
	return n;
}

/* -- frames ------------------------------------------------------------------- */

/*
 * The port is non-blocking: a blocking write to a virtio-serial port spins in the
 * kernel until qemu has taken the data, and under TCG qemu's main loop, which
 * takes it, competes with that very vCPU for the host's cores (2-6 ms a frame).
 */
static void wait_port(short events)
{
	struct pollfd pf = {port, events, 0};

	while (poll(&pf, 1, -1) < 0 && errno == EINTR)
		;
}

static void read_full(void *p, size_t n)
{
	uint8_t *q = p;

	while (n) {
		ssize_t k = read(port, q, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN) {
			wait_port(POLLIN);
			continue;
		}
		if (k <= 0)
			fail("channel read");
		q += k;
		n -= (size_t)k;
	}
}

/*
 * One write() per frame: the port has no write_iter, so a writev is a write per
 * piece, and each write is a separate buffer and notification for qemu (~1.5 ms a
 * frame under TCG; one frame took 4.8 ms as header, response and kmsg pieces).
 */
static void send_frame(uint32_t kind, const void *a, size_t alen, const void *b, size_t blen)
{
	static struct buf frame;
	uint32_t head[2] = {kind, (uint32_t)(alen + blen)};
	size_t off = 0;

	frame.len = 0;
	append(&frame, head, sizeof(head));
	append(&frame, a, alen);
	append(&frame, b, blen);
	while (off < frame.len) {
		ssize_t k = write(port, frame.p + off, frame.len - off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN) {
			wait_port(POLLOUT);
			continue;
		}
		if (k < 0)
			fail("channel write");
		off += (size_t)k;
	}
}

static void send_error(const char *fmt, const char *arg)
{
	char msg[512];
	int n = snprintf(msg, sizeof(msg), fmt, arg);

	send_frame(CH_ERROR, msg, n > 0 ? (size_t)n : 0, NULL, 0);
}

/* -- /dev/kmsg ----------------------------------------------------------------- */

/*
 * New kernel log records since the last read, as "[sec.usec][caller] text" lines
 * appended to out: the console's format, so one parser (fuzz/report.py) reads both;
 * the caller id keeps interleaved reports of different tasks apart.
 */
static void kmsg_read(struct buf *out)
{
	char rec[8192];

	for (;;) {
		ssize_t n = read(kmsg_fd, rec, sizeof(rec) - 1);
		if (n < 0 && (errno == EPIPE || errno == EINTR))
			continue; /* records overwritten before we read them: go on */
		if (n <= 0)
			break;
		rec[n] = 0;
		char *semi = strchr(rec, ';');
		if (!semi)
			continue;
		*semi = 0;
		char *msg = semi + 1, *nl = strchr(msg, '\n');
		if (nl)
			*nl = 0;
		unsigned long long usec = 0;
		const char *caller = "";
		char *save, *f = strtok_r(rec, ",", &save);
		for (int k = 0; f; k++, f = strtok_r(NULL, ",", &save)) {
			if (k == 2)
				usec = strtoull(f, NULL, 10);
			else if (k > 2 && !strncmp(f, "caller=", 7) && !*caller)
				caller = f + 7;
		}
		char line[8400];
		int len = *caller
			? snprintf(line, sizeof(line), "[%5llu.%06llu][%6s] %s\n", usec / 1000000,
				   usec % 1000000, caller, msg)
			: snprintf(line, sizeof(line), "[%5llu.%06llu] %s\n", usec / 1000000,
				   usec % 1000000, msg);
		if (len > 0)
			append(out, line, (size_t)len < sizeof(line) ? (size_t)len : sizeof(line) - 1);
	}
}

/* -- EXEC ------------------------------------------------------------------------- */

static struct buf resp, capbuf, kmsg;
static uint64_t last_send_ns; /* the last RESULT's write, reported with the next one */

static uint64_t mono_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/*
 * One program: its response in resp (the returned length) and its kernel log lines in
 * kmsg, as EXEC answers them. t_frame: when its frame's header had been read (in a
 * batch: when the program before it was done). -1 with an error message in *why.
 */
static long run_program(const uint8_t *wire, size_t len, uint64_t t_frame, const char **why)
{
	size_t need = fz_response_size(wire, len);
	struct fz_run_info *info;
	uint64_t t0, t1, kmsg_ns;
	long n;

	if (!need) {
		*why = "agent: not a program (bad magic or short frame)";
		return -1;
	}
	reserve(&resp, need);
	reserve(&capbuf, need); /* cap_cap <= need */
	/* Lines logged since the last answer, before this program starts: deferred work
	 * of the one before (an RCU callback, a work item). Kept, not dropped, and set
	 * apart by a marker line so the host can tell them from this program's own. */
	kmsg.len = 0;
	t0 = mono_ns();
	kmsg_read(&kmsg);
	if (kmsg.len)
		append(&kmsg, KMSG_PROGRAM_START "\n", strlen(KMSG_PROGRAM_START) + 1);
	kmsg_ns = mono_ns() - t0;
	n = fz_run_wire(wire, len, resp.p, resp.cap, capbuf.p, kcov_area,
			kcov_fd >= 0 ? KCOV_WORDS - 1 : 0, kcov_fd);
	if (n < 0) {
		*why = "agent: malformed program";
		return -1;
	}
	t0 = mono_ns();
	kmsg_read(&kmsg); /* this program's own lines (and work it deferred that ran already) */
	t1 = mono_ns();
	((uint32_t *)resp.p)[5] = (uint32_t)kmsg.len;
	info = (struct fz_run_info *)(resp.p + 6 * 4);
	info->kmsg_ns = kmsg_ns + (t1 - t0);
	info->agent_ns = t1 - t_frame - info->setup_ns - info->calls_ns - info->teardown_ns;
	info->send_ns = last_send_ns;
	last_send_ns = 0;
	return n;
}

static void exec_program(const uint8_t *wire, size_t len, uint64_t t_frame)
{
	const char *why;
	long n = run_program(wire, len, t_frame, &why);
	uint64_t t1;

	if (n < 0) {
		send_error("%s", why);
		return;
	}
	t1 = mono_ns();
	send_frame(CH_RESULT, resp.p, (size_t)n, kmsg.p, kmsg.len);
	last_send_ns = mono_ns() - t1;
}

/*
 * EXEC_BATCH: payload u32 count, then count times (u32 length, an EXEC payload). Each
 * program runs exactly as EXEC runs it, one after the other (its own /dev/iommu, its
 * own buffers, KCOV, its kmsg lines and the marker), and one BATCH_RESULT answers all:
 * u32 count, u32 0, u64 the guest's ns from the frame's header to the last program's
 * end, then count times (u32 length, the RESULT payload; length 0: the program was
 * malformed). The agent does not read the kernel's log for splats: the host checks
 * each result in order, and where one left the kernel tainted it restarts the guest
 * and runs the programs after it again (their results on a tainted kernel are void).
 */
static void exec_batch(const uint8_t *p, size_t len, uint64_t t_frame)
{
	static struct buf all, wire;
	uint32_t count, head[4] = {0};
	uint64_t t = t_frame;
	size_t off = 4;
	const char *why;

	if (len < 4) {
		send_error("agent: malformed batch%s", "");
		return;
	}
	memcpy(&count, p, 4);
	all.len = 0;
	append(&all, head, sizeof(head)); /* count, 0, guest ns: filled in below */
	for (uint32_t i = 0; i < count; i++) {
		uint32_t wlen, rlen = 0;
		long n;
		if (off + 4 > len || (memcpy(&wlen, p + off, 4), off + 4 + wlen > len)) {
			send_error("agent: malformed batch%s", "");
			return;
		}
		/* the executor reads the wire's structs in place: give it an aligned copy */
		wire.len = 0;
		append(&wire, p + off + 4, wlen);
		n = run_program(wire.p, wlen, t, &why);
		if (n >= 0)
			rlen = (uint32_t)((size_t)n + kmsg.len);
		append(&all, &rlen, 4);
		if (n >= 0) {
			append(&all, resp.p, (size_t)n);
			append(&all, kmsg.p, kmsg.len);
		}
		off += 4 + (size_t)wlen;
		t = mono_ns();
	}
	uint64_t ns = mono_ns() - t_frame;
	head[0] = count;
	memcpy(all.p, head, 8);
	memcpy(all.p + 8, &ns, 8);
	t = mono_ns();
	send_frame(CH_BATCH_RESULT, all.p, all.len, NULL, 0);
	last_send_ns = mono_ns() - t;
}

/* -- RUN ---------------------------------------------------------------------------- */

static int host_mounted;

static int mount_host(void)
{
	static const char *binds[] = {"/proc", "/sys", "/dev", "/run"};
	char path[64];

	if (host_mounted)
		return 0;
	if (mount("hostroot", "/host", "9p", MS_RDONLY,
		  "trans=virtio,version=9p2000.L,msize=262144,cache=loose"))
		return -errno;
	for (unsigned i = 0; i < sizeof(binds) / sizeof(binds[0]); i++) {
		snprintf(path, sizeof(path), "/host%s", binds[i]);
		if (mount(binds[i], path, NULL, MS_BIND | MS_REC, NULL))
			return -errno;
	}
	host_mounted = 1;
	return 0;
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + t.tv_nsec / 1e9;
}

/*
 * payload: u32 timeout_ms, argc, envc, stdin_len; cwd, argv[], env[] as NUL-ended
 * strings; the stdin bytes. Answer: i32 rc (exit status, -signal, -1 when it could
 * not run or timed out), u32 lengths of stdout, stderr, kmsg; then those bytes.
 */
static void run_command(uint8_t *p, size_t len)
{
	static struct buf out[2];
	uint32_t *h = (uint32_t *)p;
	char *s = (char *)(h + 4), *end = (char *)p + len;
	char *argv[256], *envp[64 + 8];
	int nenv = 0, rc = -1, in[2], pipes[2][2];
	const char *cwd = "/";
	pid_t pid;

	if (len < 16 || h[1] == 0 || h[1] > 255 || h[2] > 64) {
		send_error("agent: malformed RUN%s", "");
		return;
	}
	out[0].len = out[1].len = 0;
	envp[nenv++] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	envp[nenv++] = "HOME=/run/tmp";
	envp[nenv++] = "TMPDIR=/run/tmp";
	envp[nenv++] = "PYTHONDONTWRITEBYTECODE=1";
	/* the strings: cwd, argv, env; the frame was NUL-terminated by the reader */
	uint32_t got = 0;
	for (uint32_t i = 0; i < 1 + h[1] + h[2]; i++, got++) {
		if (s >= end)
			break;
		if (i == 0)
			cwd = s;
		else if (i <= h[1])
			argv[i - 1] = s;
		else
			envp[nenv++] = s;
		s += strlen(s) + 1;
	}
	argv[h[1]] = NULL;
	envp[nenv] = NULL;
	if (got != 1 + h[1] + h[2] || s > end || s + h[3] > end) {
		send_error("agent: malformed RUN%s", "");
		return;
	}
	int e = mount_host();
	if (e) {
		char msg[128];
		snprintf(msg, sizeof(msg), "mounting the host's root over 9p: %s", strerror(-e));
		append(&out[1], msg, strlen(msg));
		goto done;
	}
	if (pipe2(in, O_CLOEXEC) || pipe2(pipes[0], O_CLOEXEC) || pipe2(pipes[1], O_CLOEXEC))
		fail("pipe");
	pid = fork();
	if (pid < 0)
		fail("fork");
	if (pid == 0) {
		setsid();
		dup2(in[0], 0);
		dup2(pipes[0][1], 1);
		dup2(pipes[1][1], 2);
		if (chroot("/host") || chdir(cwd))
			dprintf(2, "agent: entering %s on the host's root: %s\n", cwd, strerror(errno));
		else
			execvpe(argv[0], argv, envp);
		dprintf(2, "agent: exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(in[0]);
	close(pipes[0][1]);
	close(pipes[1][1]);
	size_t sent = 0, to_send = h[3];
	const uint8_t *stdin_p = (const uint8_t *)s;
	int fds[3] = {pipes[0][0], pipes[1][0], in[1]};
	double deadline = now() + h[0] / 1000.0;
	int timed_out = 0;
	if (!to_send) {
		close(in[1]);
		fds[2] = -1;
	}
	while (fds[0] >= 0 || fds[1] >= 0) {
		struct pollfd pf[3];
		int np = 0, map[3];
		for (int i = 0; i < 3; i++)
			if (fds[i] >= 0) {
				pf[np].fd = fds[i];
				pf[np].events = i < 2 ? POLLIN : POLLOUT;
				map[np++] = i;
			}
		double left = deadline - now();
		if (left <= 0) {
			timed_out = 1;
			break;
		}
		int k = poll(pf, (nfds_t)np, (int)(left * 1000) + 1);
		if (k < 0 && errno == EINTR)
			continue;
		for (int j = 0; j < np; j++) {
			int i = map[j];
			if (!pf[j].revents)
				continue;
			if (i == 2) {
				ssize_t w = write(fds[2], stdin_p + sent, to_send - sent);
				if (w > 0)
					sent += (size_t)w;
				if (w < 0 || sent == to_send) {
					close(fds[2]);
					fds[2] = -1;
				}
				continue;
			}
			char chunk[65536];
			ssize_t r = read(fds[i], chunk, sizeof(chunk));
			if (r <= 0) {
				close(fds[i]);
				fds[i] = -1;
			} else if (out[i].len < RUN_OUTPUT_MAX) {
				append(&out[i], chunk, (size_t)r);
			}
		}
	}
	for (int i = 0; i < 3; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (timed_out)
		kill(-pid, SIGKILL);
	int status;
	/* A child stuck in the kernel does not die: then this blocks, and the host's
	 * channel timeout reports a hung guest. */
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (timed_out) {
		char msg[128];
		snprintf(msg, sizeof(msg), "timed out after %.0fs", h[0] / 1000.0);
		out[0].len = 0;
		out[1].len = 0;
		append(&out[1], msg, strlen(msg));
	} else {
		rc = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
	}
done:
	while (waitpid(-1, NULL, WNOHANG) > 0) /* orphans re-parented to us (PID 1) */
		;
	kmsg.len = 0;
	kmsg_read(&kmsg);
	uint32_t head[4] = {(uint32_t)rc, (uint32_t)out[0].len, (uint32_t)out[1].len,
			    (uint32_t)kmsg.len};
	struct buf all = {0};
	append(&all, head, sizeof(head));
	append(&all, out[0].p, out[0].len);
	append(&all, out[1].p, out[1].len);
	send_frame(CH_RUN_DONE, all.p, all.len, kmsg.p, kmsg.len);
	free(all.p);
}

/* -- start-up ------------------------------------------------------------------------- */

static void mount_or_warn(const char *src, const char *dst, const char *type)
{
	mkdir(dst, 0755);
	if (mount(src, dst, type, 0, NULL) && errno != EBUSY)
		dprintf(2, "agent: mount %s on %s: %s\n", type, dst, strerror(errno));
}

static void setup_init(void)
{
	mount_or_warn("proc", "/proc", "proc");
	mount_or_warn("sysfs", "/sys", "sysfs");
	mount_or_warn("devtmpfs", "/dev", "devtmpfs");
	mount_or_warn("debugfs", "/sys/kernel/debug", "debugfs");
	mount_or_warn("tmpfs", "/run", "tmpfs");
	mount_or_warn("tmpfs", "/dev/shm", "tmpfs");
	mkdir("/run/tmp", 01777);
	setenv("HOME", "/run/tmp", 1);
	setenv("TMPDIR", "/run/tmp", 1);
}

static int open_port(void)
{
	/* the port's device node appears once virtio_console has probed it */
	for (int tries = 0; tries < 200; tries++) {
		DIR *d = opendir("/sys/class/virtio-ports");
		struct dirent *e;
		while (d && (e = readdir(d))) {
			char path[300], name[64] = "";
			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", e->d_name);
			int fd = open(path, O_RDONLY);
			if (fd < 0)
				continue;
			ssize_t n = read(fd, name, sizeof(name) - 1);
			close(fd);
			if (n > 0 && name[n - 1] == '\n')
				name[n - 1] = 0;
			if (strcmp(name, PORT_NAME))
				continue;
			snprintf(path, sizeof(path), "/dev/%s", e->d_name);
			closedir(d);
			fd = open(path, O_RDWR | O_NONBLOCK);
			if (fd < 0)
				fail(path);
			return high(fd);
		}
		if (d)
			closedir(d);
		usleep(50000);
	}
	errno = ENODEV;
	fail("no virtio-serial port named " PORT_NAME);
	return -1;
}

static int open_kcov_area(uint64_t **area)
{
	int fd = open(KCOV_PATH, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return -1;
	if (ioctl(fd, KCOV_INIT_TRACE, (unsigned long)KCOV_WORDS))
		fail("KCOV_INIT_TRACE");
	*area = mmap(NULL, KCOV_WORDS * 8ul, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (*area == MAP_FAILED)
		fail("mmap of kcov");
	return high(fd);
}

/* One KCOV for this thread, and one for each executor thread a program may use. */
static void open_kcov(void)
{
	kcov_fd = open_kcov_area(&kcov_area);
	for (int t = 1; kcov_fd >= 0 && t < FZ_MAX_THREADS; t++) {
		uint64_t *area;
		int fd = open_kcov_area(&area);
		if (fd >= 0)
			fz_set_thread_kcov(t, fd, area, KCOV_WORDS - 1);
	}
}

/* -- fault injection -------------------------------------------------------------- */

#define DEBUGFS "/sys/kernel/debug/"

static int write_file(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, val, strlen(val));
	close(fd);
	return n == (ssize_t)strlen(val) ? 0 : -1;
}

static const char *const fault_attrs[] = {"fail_iommufd", "failslab", "fail_page_alloc"};

static void set_fault_verbose(unsigned v)
{
	char path[128], val[16];

	snprintf(val, sizeof(val), "%u", v);
	for (unsigned i = 0; i < sizeof(fault_attrs) / sizeof(fault_attrs[0]); i++) {
		snprintf(path, sizeof(path), DEBUGFS "%s/verbose", fault_attrs[i]);
		write_file(path, val);
	}
}

/*
 * As iommufd_fail_nth and syzkaller set it up: every allocation may fail (also those
 * that may sleep, order 0 and highmem pages), nothing fails at random (probability 0,
 * and only for tasks that ask: task-filter), and quietly (verbose 0). fail-nth itself
 * bypasses probability and the task filter.
 */
static void setup_faults(void)
{
	static const char *const settings[][2] = {
		{"failslab/ignore-gfp-wait", "N"},
		{"fail_page_alloc/ignore-gfp-wait", "N"},
		{"fail_page_alloc/ignore-gfp-highmem", "N"},
		{"fail_page_alloc/min-order", "0"},
	};
	char path[128];
	int ok = 1;

	for (unsigned i = 0; i < sizeof(settings) / sizeof(settings[0]); i++) {
		snprintf(path, sizeof(path), DEBUGFS "%s", settings[i][0]);
		ok &= !write_file(path, settings[i][1]);
	}
	for (unsigned i = 0; i < sizeof(fault_attrs) / sizeof(fault_attrs[0]); i++) {
		snprintf(path, sizeof(path), DEBUGFS "%s/task-filter", fault_attrs[i]);
		ok &= !write_file(path, "Y");
		snprintf(path, sizeof(path), DEBUGFS "%s/probability", fault_attrs[i]);
		ok &= !write_file(path, "0");
	}
	set_fault_verbose(0);
	faults_ok = ok && access("/proc/self/fail-nth", R_OK | W_OK) == 0;
}

/*
 * With kmemleak on (kmemleak=on), what boot left unreferenced is not the programs':
 * scanned twice 5 s apart (it lists objects at least 5 s old) and cleared before the
 * host's snapshot, as syzkaller does, so that every later report is new. Off, the
 * first write fails and this returns at once.
 */
static void baseline_leaks(void)
{
	if (write_file(DEBUGFS "kmemleak", "scan"))
		return;
	sleep(5);
	write_file(DEBUGFS "kmemleak", "scan");
	write_file(DEBUGFS "kmemleak", "clear");
}

/*
 * kmemleak: a scan, then what it lists (objects unreferenced for at least 5 s: leaks
 * of programs that ran before that), then the list cleared, so every report is new.
 */
static void scan_leaks(void)
{
	static struct buf text;
	int32_t e = 0;
	int fd;

	text.len = 0;
	if (write_file(DEBUGFS "kmemleak", "scan"))
		e = errno ? errno : EIO;
	fd = e ? -1 : open(DEBUGFS "kmemleak", O_RDONLY | O_CLOEXEC);
	if (!e && fd < 0)
		e = errno;
	while (fd >= 0) {
		char chunk[65536];
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n <= 0)
			break;
		if (text.len < RUN_OUTPUT_MAX)
			append(&text, chunk, (size_t)n);
	}
	if (fd >= 0)
		close(fd);
	if (!e)
		write_file(DEBUGFS "kmemleak", "clear");
	send_frame(CH_LEAK_REPORT, &e, sizeof(e), text.p, text.len);
}

int main(void)
{
	struct utsname u;
	struct timespec bt;
	char hello[512];
	struct buf in = {0};

	if (getpid() == 1)
		setup_init();
	signal(SIGPIPE, SIG_IGN);
	port = open_port();
	kmsg_fd = high(open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC));
	lseek(kmsg_fd, 0, SEEK_END);
	open_kcov();
	setup_faults();
	baseline_leaks();
	uname(&u);
	clock_gettime(CLOCK_BOOTTIME, &bt);
	int n = snprintf(hello, sizeof(hello),
			 "{\"uname\": \"%s\", \"kcov\": %s, \"faults\": %s, \"boot_s\": %.3f, "
			 "\"pid\": %d, \"agent\": \"c\"}",
			 u.release, kcov_fd >= 0 ? "true" : "false", faults_ok ? "true" : "false",
			 (double)bt.tv_sec + bt.tv_nsec / 1e9, (int)getpid());
	send_frame(CH_HELLO, hello, (size_t)n, NULL, 0);
	for (;;) {
		uint32_t head[2];
		read_full(head, sizeof(head));
		uint64_t t_frame = mono_ns();
		reserve(&in, head[1] + 8);
		read_full(in.p, head[1]);
		in.p[head[1]] = 0;
		switch (head[0]) {
		case CH_EXEC:
			exec_program(in.p, head[1], t_frame);
			break;
		case CH_EXEC_BATCH:
			exec_batch(in.p, head[1], t_frame);
			break;
		case CH_PING:
			send_frame(CH_PONG, in.p, head[1], NULL, 0);
			break;
		case CH_RUN:
			run_command(in.p, head[1]);
			break;
		case CH_FAULTS:
			set_fault_verbose(head[1] >= 4 ? *(uint32_t *)in.p : 0);
			send_frame(CH_PONG, NULL, 0, NULL, 0);
			break;
		case CH_LEAKS:
			scan_leaks();
			break;
		case CH_POOL:
			fz_pool_enabled = head[1] >= 4 && *(uint32_t *)in.p;
			if (!fz_pool_enabled)
				fz_pool_flush();
			send_frame(CH_PONG, NULL, 0, NULL, 0);
			break;
		default: {
			char k[16];
			snprintf(k, sizeof(k), "%u", head[0]);
			send_error("agent: unknown frame %s", k);
		}
		}
	}
}
