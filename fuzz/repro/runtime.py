"""The runtime every emitted repro.py carries: set-up and output helpers that
mirror the fuzzer's executor (fuzz/executor/executor.c). The emitter copies this
file into each reproducer after its header, so a reproducer needs nothing but the
standard library; the block of constants is rewritten from fuzz.uapi and
fuzz.prog.limits when it is copied (tests/test_repro.py checks that the values
here are those)."""

import ctypes
import errno
import os
import struct
import sys
import threading
import time

# --- constants: the emitter writes these from fuzz.uapi and fuzz.prog.limits ---
CAPTURE_MAX = 65536
VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE = 1
VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL = 3
# --- end of constants ---

libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
libc.process_vm_readv.restype = ctypes.c_ssize_t
libc.read.restype = libc.write.restype = ctypes.c_ssize_t
libc.read.argtypes = libc.write.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]

PROT_READ, PROT_WRITE = 1, 2
MAP_SHARED, MAP_PRIVATE, MAP_ANONYMOUS = 0x01, 0x02, 0x20
MAP_HUGETLB, MAP_FIXED_NOREPLACE = 0x40000, 0x100000
MAP_FAILED = ctypes.c_void_p(-1).value


class Out:
    """A private copy of stdout (a program may close(2) small fd numbers); muted for
    the runs after the first of a reproducer that runs several times."""

    def __init__(self):
        self.f = os.fdopen(os.dup(1), "w", buffering=1)
        self.muted = False

    def write(self, text):
        if not self.muted:
            self.f.write(text)


out = Out()
MAPPED = []  # (addr, size) of the buffers mapped, unmapped at the end of a run


def die(msg):
    out.write("SETUP FAILED: " + msg + "\n")
    sys.exit(2)


_SYS_CAPGET, _SYS_CAPSET, _CAP_V3 = 125, 126, 0x20080522  # x86_64; linux/capability.h
_saved_memlock = None


def _caps(drop, back):
    """The calling thread's effective capabilities without `drop` (a bit mask), with
    `back` put back; threads started later inherit them."""
    hdr = (ctypes.c_uint32 * 2)(_CAP_V3, 0)
    data = (ctypes.c_uint32 * 6)()  # 2 x {effective, permitted, inheritable}
    if libc.syscall(_SYS_CAPGET, hdr, data):
        die("capget: " + os.strerror(ctypes.get_errno()))
    for k in range(2):
        data[3 * k] |= (back >> (32 * k)) & data[3 * k + 1]
        data[3 * k] &= ~(drop >> (32 * k)) & 0xFFFFFFFF
    if libc.syscall(_SYS_CAPSET, hdr, data):
        die("capset: " + os.strerror(ctypes.get_errno()))


def set_creds(drop, memlock):
    """As the executor runs a program with "creds": RLIMIT_MEMLOCK at memlock bytes
    (first: raising the hard limit needs CAP_SYS_RESOURCE), then the capabilities in
    drop out of the effective set."""
    import resource

    global _saved_memlock
    _saved_memlock = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    lim = resource.RLIM_INFINITY if memlock >= (1 << 64) - 1 else memlock
    hard = _saved_memlock[1]
    if hard != resource.RLIM_INFINITY and (lim == resource.RLIM_INFINITY or lim > hard):
        hard = lim
    resource.setrlimit(resource.RLIMIT_MEMLOCK, (lim, hard))
    _caps(drop, 0)


def restore_creds(drop):
    import resource

    _caps(0, drop)
    resource.setrlimit(resource.RLIMIT_MEMLOCK, _saved_memlock)


def map_buffer(index, addr, size, kind, seed, holes):
    """Buffer `index` at its fixed address: kind anon|hugetlb|memfd|readonly|hole,
    filled with byte k = (k % 251) * 37 + seed, holes [offset, length] unmapped."""
    if kind == "hole":
        return
    prot, flags, fd = PROT_READ | PROT_WRITE, MAP_FIXED_NOREPLACE, -1
    if kind == "memfd":
        fd = os.memfd_create("iommufd-fuzz", 0)
        os.ftruncate(fd, size)
        flags |= MAP_SHARED
    else:
        flags |= MAP_PRIVATE | MAP_ANONYMOUS | (MAP_HUGETLB if kind == "hugetlb" else 0)
    p = libc.mmap(addr, size, prot, flags, fd, 0)
    if fd >= 0:
        os.close(fd)
    if p != addr:
        die(f"buffer {index}: mmap at {addr:#x}: {os.strerror(ctypes.get_errno())}")
    block = bytes((k * 37 + seed) & 0xFF for k in range(251)) * 4096
    for off in range(0, size, len(block)):
        ctypes.memmove(addr + off, block, min(len(block), size - off))
    if kind == "readonly" and libc.mprotect(addr, size, PROT_READ):
        die(f"buffer {index}: mprotect: {os.strerror(ctypes.get_errno())}")
    for off, length in holes:
        libc.munmap(addr + off, length)
    MAPPED.append((addr, size))


def unmap_buffers():
    while MAPPED:
        libc.munmap(*MAPPED.pop())


def new(cls, real=None):
    """A zeroed struct; `real` bytes of memory when the op needs more than sizeof."""
    raw = ctypes.create_string_buffer(max(real or 0, ctypes.sizeof(cls)))
    return cls.from_buffer(raw)


def fill_tail(s, natural, length, byte):
    """Nonzero bytes past the struct's natural end (copy_struct_from_user's E2BIG)."""
    ctypes.memset(ctypes.addressof(s) + natural, byte, length)


class Result:
    def __init__(self, ret):
        self.ret = ret
        self.errno = ctypes.get_errno() if ret < 0 else 0
        self.injected = None  # with fail_nth: whether its fault point was reached
        self.thread = None  # in a race group: the thread that issued it, and when
        self.us = (0, 0)


def run_ioctl(fd, request, arg):
    ctypes.set_errno(0)
    return Result(libc.ioctl(fd, request, arg))


def run_close(fd, own):
    """As the fuzzer's executor does: only fds this program got back (access fds)
    are closed; any other number answers EBADF as if it were not open."""
    fd = ctypes.c_int(fd & 0xFFFFFFFF).value
    if fd not in own:
        ctypes.set_errno(errno.EBADF)
        return Result(-1)
    own.remove(fd)
    ctypes.set_errno(0)
    return Result(libc.close(fd))


libc.poll.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int]


def run_poll(p, own):
    """poll(2) of one fd (p: a struct pollfd) with no wait, as the executor does: only
    of fds this program got back, any other number answers EBADF."""
    if p.fd not in own:
        ctypes.set_errno(errno.EBADF)
        return Result(-1)
    ctypes.set_errno(0)
    return Result(libc.poll(ctypes.addressof(p), 1, 0))


def run_fdio(kind, fd, buf, count, own, side, side_size):
    """read(2)/write(2) as the executor does: only of fds this program got back (fault
    fds), any other number answers EBADF; what a read put in a buffer of the
    program's is copied into the op's side array, where its records are read from."""
    fd = ctypes.c_int(fd & 0xFFFFFFFF).value
    if fd not in own:
        ctypes.set_errno(errno.EBADF)
        return Result(-1)
    ctypes.set_errno(0)
    r = Result((libc.read if kind == "read" else libc.write)(fd, buf, count))
    if kind == "read" and r.ret > 0 and buf != side:
        n = min(r.ret, side_size)
        local, remote = iovec(side, n), iovec(buf, n)
        libc.process_vm_readv(os.getpid(), ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
    return r


def read_records(r, addr, cls, size):
    """The whole records a successful read(2) returned (at most the side array's
    size), each as the list of its fields."""
    if r.errno:
        return []
    n = min(max(r.ret, 0), size) // ctypes.sizeof(cls)
    return [[getattr(e, f[0]) for f in cls._fields_] for e in (cls * n).from_address(addr)]


def canon_records(recs):
    return "[" + ",".join("{" + ",".join(f"{v:#x}" for v in rec) + "}" for rec in recs) + "]"


def first_field(recs, k):
    return recs[0][k] if recs else 0


class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


def capture(addr, length):
    """What the executor records after the call: min(length, CAPTURE_MAX) bytes at
    addr, read with process_vm_readv so an unmapped range gives nothing instead of
    SIGSEGV."""
    length = min(length, CAPTURE_MAX)
    if length == 0:
        return b""
    buf = ctypes.create_string_buffer(length)
    local, remote = iovec(ctypes.addressof(buf), length), iovec(addr, length)
    n = libc.process_vm_readv(os.getpid(), ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
    return buf.raw if n == length else b""


def canon_ranges(rs):
    return "[" + ",".join(f"{a:#x}-{b:#x}" for a, b in rs) + "]"


def read_pairs(addr, num, entries, valid):
    """The first min(num, entries) [start, last] u64 pairs of a side array (when the
    kernel wrote it: `valid`)."""
    if not valid:
        return []
    n = min(num, entries)
    mem = ctypes.string_at(addr, 16 * n)
    return [list(struct.unpack_from("<QQ", mem, 16 * k)) for k in range(n)]


def read_caps(s, length, cap_offset):
    """The vfio_info_cap_header chain of VFIO_IOMMU_GET_INFO (offsets from the struct)."""
    mem = ctypes.string_at(ctypes.addressof(s), length)
    caps, off, seen = [], cap_offset, set()
    while off and off + 8 <= length and off not in seen and len(caps) < 16:
        seen.add(off)
        cid, ver, nxt = struct.unpack_from("<HHI", mem, off)
        c = f"{{id={cid},version={ver}"
        if cid == VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE and off + 16 <= length:
            nr = struct.unpack_from("<I", mem, off + 8)[0]
            nr = max(0, min(nr, (length - off - 16) // 16))
            c += ",ranges=" + canon_ranges(
                [struct.unpack_from("<QQ", mem, off + 16 + 16 * k) for k in range(nr)])
        elif cid == VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL and off + 12 <= length:
            c += f",avail={struct.unpack_from('<I', mem, off + 8)[0]:#x}"
        caps.append(c + "}")
        off = nxt
    return "".join(caps)


_fail_nth = threading.local()


def with_fault(nth, call):
    """The call with its nth fault point failed, as the fuzzer's executor does it: nth
    written to this thread's /proc/thread-self/fail-nth right before, read back after
    (0: the point was reached and failed), then disarmed."""
    if not hasattr(_fail_nth, "fd"):
        _fail_nth.fd = os.open("/proc/thread-self/fail-nth", os.O_RDWR)
    fd = _fail_nth.fd
    os.pwrite(fd, str(nth).encode(), 0)
    r = call()
    try:
        left = os.pread(fd, 16, 0)
    except OSError:  # EFAULT: the point was reached in the read back, after the call
        left = b"1\n"
    os.pwrite(fd, b"0", 0)
    r.injected = left == b"0\n"
    return r


def run_group(calls):
    """A race group: calls (op index, thread, fail_nth, call) issued from one thread per
    thread number, each thread's in order, all released together from one barrier;
    returns the results by op index once every thread is done."""
    per = {}
    for c in calls:
        per.setdefault(c[1], []).append(c)
    results = {}
    barrier = threading.Barrier(len(per))
    t0 = time.monotonic_ns()

    def thread(mine):
        barrier.wait()
        for index, t, nth, call in mine:
            start = time.monotonic_ns()
            r = with_fault(nth, call) if nth else call()
            r.thread, r.us = t, ((start - t0) // 1000, (time.monotonic_ns() - t0) // 1000)
            results[index] = r

    threads = [threading.Thread(target=thread, args=(mine,)) for mine in per.values()]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return results


def show(i, name, r, **outputs):
    parts = [f"op {i} {name} errno={r.errno} ({errno.errorcode.get(r.errno, 'ok')}) "
             f"ret={r.ret}"]
    if r.injected is not None:
        parts.append("fault=" + ("injected" if r.injected else "passed"))
    if r.thread is not None:
        parts.append(f"thread={r.thread} us={r.us[0]}-{r.us[1]}")
    for k, v in outputs.items():
        if isinstance(v, bytes):
            v = f"<{len(v)} bytes {v[:16].hex()}>"
        elif isinstance(v, int):
            v = f"{v:#x}"
        parts.append(f"{k}={v}")
    out.write(" ".join(parts) + "\n")


def read_kmsg(fd):
    lines = []
    while True:
        try:
            rec = os.read(fd, 8192)
        except BlockingIOError:
            break
        except BrokenPipeError:  # records overwritten while we read: go on
            continue
        if not rec:
            break
        lines.append(rec.decode("utf-8", "replace").partition(";")[2].split("\n", 1)[0])
    return lines
