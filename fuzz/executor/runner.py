"""Runs encoded programs with the C executor in this process, with KCOV.

Used by the guest agent inside the VM and, only when the user asks for it
explicitly (`--backend local`), on the host's own kernel. Everything here is
O(1) Python per program: the wire bytes become C pointers, the outputs go back
as raw bytes for the host to decode.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from fuzz.executor import build
from fuzz.executor.wire import (
    BUFFER,
    CALL,
    HEADER,
    HOLE,
    INFO,
    KCOV_OFF,
    MAGIC,
    RELOC,
    RESULT,
    SECTIONS,
)

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

    def call_pcs(self, i: int) -> memoryview:
        _e, _p, _r, first, count, _cf, _cl = RESULT.unpack_from(self.results, i * RESULT.size)
        return memoryview(self.pcs)[first * 4:(first + count) * 4].cast("I")


def pack_response(info: bytes, results: bytes, arena: bytes, pcs: bytes, caps: bytes,
                  kmsg: bytes) -> bytes:
    parts = (info, results, arena, pcs, caps, kmsg)
    return SECTIONS.pack(*map(len, parts)) + b"".join(parts)


def unpack_response(payload: bytes) -> RawRun:
    lens = SECTIONS.unpack_from(payload)
    off = SECTIONS.size
    parts = []
    for n in lens:
        parts.append(payload[off:off + n])
        off += n
    info, results, arena, pcs, caps, kmsg = parts
    se, step, _fd, _npcs, _ncap, trunc, calls_ns = INFO.unpack(info)
    return RawRun(se, step, results, arena, pcs, caps, kmsg.decode("utf-8", "replace"),
                  bool(trunc), calls_ns)


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

    def run(self, wire: bytes) -> tuple[bytes, bytes, bytes, bytes, bytes]:
        """Execute one encoded program; return the response sections but kmsg
        (info, results, arena, pcs, captures) for pack_response."""
        ffi = self.ffi
        (magic, nb, nh, nc, nr, alen, pro_req, pro_off, pro_len, kmode, pcs_cap,
         cap_cap) = HEADER.unpack_from(wire)
        if magic != MAGIC:
            raise ExecutorError(f"bad program magic {magic:#x}")
        buf = ffi.from_buffer(wire)
        off = HEADER.size
        ptrs = []
        for n, s, ctype in ((nb, BUFFER, "struct fz_buffer *"), (nh, HOLE, "struct fz_hole *"),
                            (nc, CALL, "struct fz_call *"), (nr, RELOC, "struct fz_reloc *")):
            ptrs.append(ffi.cast(ctype, buf + off))
            off += n * s.size
        arena = ffi.new("uint8_t[]", wire[off:off + alen] or b"\0")
        prog = ffi.new("struct fz_program *", {
            "buffers": ptrs[0], "holes": ptrs[1], "calls": ptrs[2], "relocs": ptrs[3],
            "nr_buffers": nb, "nr_calls": nc, "prologue_request": pro_req,
            "prologue_off": pro_off, "prologue_len": pro_len, "kcov_mode": kmode,
            "kcov_words": (self.kcov.words - 1) if self.kcov else 0})
        res = self._reuse("res", "struct fz_call_result[]", max(nc, 1))
        pcs = self._reuse("pcs", "uint32_t[]", pcs_cap if self.kcov else 1)
        caps = self._reuse("caps", "uint8_t[]", max(cap_cap, 1))
        info = ffi.new("struct fz_run_info *")
        kcov_fd = self.kcov.fd if self.kcov and kmode != KCOV_OFF else -1
        self.lib.fz_run(prog, arena, res, pcs, pcs_cap if kcov_fd >= 0 else 0, caps, cap_cap,
                        self.kcov_area, kcov_fd, info)
        return (bytes(ffi.buffer(info)), bytes(ffi.buffer(res, nc * RESULT.size)),
                bytes(ffi.buffer(arena, alen)), bytes(ffi.buffer(pcs, info.nr_pcs * 4)),
                bytes(ffi.buffer(caps, info.nr_cap)))
