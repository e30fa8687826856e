"""Runs encoded programs with the C executor in this process, with KCOV, and
unpacks the executor's response (the guest agent's and this runner's alike).

Running here is only for when the user asks for it explicitly (`--backend
local`): on the host's own kernel. In the VM the C agent (fuzz/guest/agent.c)
runs programs. Either way the C side parses the wire bytes (fz_run_wire) and
returns the outputs as raw bytes for the host to decode.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from fuzz.executor import build
from fuzz.executor.wire import INFO, RESULT, SECTIONS

KCOV_PATH = "/sys/kernel/debug/kcov"
KCOV_INIT_TRACE = 0x80086301  # _IOR('c', 1, unsigned long)
KCOV_WORDS = 1 << 18


class ExecutorError(RuntimeError):
    pass


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    return libc


class Kcov:
    """A KCOV trace buffer for this thread. Python's mmap refuses the zero-size
    debugfs file, so it is mapped with libc's mmap."""

    def __init__(self, words: int = KCOV_WORDS) -> None:
        self.fd = os.open(KCOV_PATH, os.O_RDWR | os.O_CLOEXEC)
        fcntl.ioctl(self.fd, KCOV_INIT_TRACE, words)
        addr = _libc().mmap(None, words * 8, 0x3, 0x1, self.fd, 0)  # RW, MAP_SHARED
        if addr in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "mmap of kcov failed")
        self.addr = addr
        self.words = words


@dataclass
class RawRun:
    setup_errno: int
    setup_step: int
    results: bytes
    arena: bytes
    pcs: bytes  # u32 low halves of kernel PCs, per call ranges in results
    captures: bytes
    kmsg: str
    pcs_truncated: bool
    calls_ns: int = 0  # time the executor spent in its call loop
    setup_ns: int = 0  # ... mapping buffers and opening /dev/iommu
    teardown_ns: int = 0  # ... closing fds and unmapping buffers
    pooled_buffers: int = 0  # buffers the executor reused from its pool
    threads: int = 1  # threads the program's calls ran on
    # the guest agent's (0 from Runner): this program's frame read and response built
    # outside fz_run, of which reading /dev/kmsg, and writing the previous answer
    agent_ns: int = 0
    kmsg_ns: int = 0
    send_ns: int = 0

    def call_pcs(self, i: int) -> memoryview:
        _e, _f, _r, first, count, _cf, _cl, _t0, _t1 = RESULT.unpack_from(self.results,
                                                                         i * RESULT.size)
        return memoryview(self.pcs)[first * 4:(first + count) * 4].cast("I")


def unpack_response(payload: bytes) -> RawRun:
    lens = SECTIONS.unpack_from(payload)
    off = SECTIONS.size
    parts = []
    for n in lens:
        parts.append(payload[off:off + n])
        off += n
    info, results, arena, pcs, caps, kmsg = parts
    (se, step, _fd, _npcs, _ncap, trunc, calls_ns, setup_ns, teardown_ns, pooled, threads,
     agent_ns, kmsg_ns, send_ns) = INFO.unpack(info)
    return RawRun(se, step, results, arena, pcs, caps, kmsg.decode("utf-8", "replace"),
                  bool(trunc), calls_ns, setup_ns, teardown_ns, pooled, threads, agent_ns,
                  kmsg_ns, send_ns)


class Runner:
    def __init__(self, executor_dir: Path | None = None, kcov: bool = True) -> None:
        self.mod = build.load(executor_dir)
        self.ffi, self.lib = self.mod.ffi, self.mod.lib
        self.kcov: Kcov | None = None
        if kcov and os.path.exists(KCOV_PATH):
            self.kcov = Kcov()
        self.kcov_area = (self.ffi.cast("uint64_t *", self.kcov.addr) if self.kcov
                          else self.ffi.NULL)
        self._scratch: dict[str, tuple[int, object]] = {}

    def _reuse(self, name: str, ctype: str, n: int) -> object:
        """Output buffers are allocated once and grown, not zeroed per program."""
        have = self._scratch.get(name)
        if have is None or have[0] < n:
            have = (n, self.ffi.new(ctype, n))
            self._scratch[name] = have
        return have[1]

    def run(self, wire: bytes) -> bytes:
        """Execute one encoded program; return its response (unpack_response) with an
        empty kmsg section. The C side (fz_run_wire) parses the wire format."""
        n = self.lib.fz_response_size(wire, len(wire))
        if not n:
            raise ExecutorError("not a program: bad magic or short wire bytes")
        out = self._reuse("out", "uint8_t[]", n)
        caps = self._reuse("caps", "uint8_t[]", n)
        words = self.kcov.words - 1 if self.kcov else 0
        got = self.lib.fz_run_wire(wire, len(wire), out, n, caps, self.kcov_area, words,
                                   self.kcov.fd if self.kcov else -1)
        if got < 0:
            raise ExecutorError("malformed program")
        return bytes(self.ffi.buffer(out, got))
