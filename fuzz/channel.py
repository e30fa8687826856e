"""Framing for the host <-> guest agent channel (a virtio-serial port).

A frame is (type: u32, length: u32, payload). Both ends import this module, so
the message numbers are defined once.
"""

from __future__ import annotations

import os
import struct

FRAME = struct.Struct("<II")

# host -> guest
EXEC = 1  # payload: encoded program (fuzz.executor.encode wire format)
PING = 2
RUN = 3  # payload: JSON {"argv": [...], "timeout": s, "stdin": str}; runs a helper command
# guest -> host
HELLO = 100  # payload: JSON {"uname": ..., "kcov": bool, "boot_s": float}
RESULT = 101  # payload: fuzz.executor.runner.pack_response
PONG = 102
RUN_DONE = 103  # payload: JSON {"rc": int, "stdout": str, "stderr": str}
ERROR = 104  # payload: UTF-8 traceback of an agent-side failure


class ChannelClosed(EOFError):
    pass


def pack(kind: int, payload: bytes = b"") -> bytes:
    return FRAME.pack(kind, len(payload)) + payload


def write_frame(fd: int, kind: int, payload: bytes = b"") -> None:
    data = memoryview(pack(kind, payload))
    while data:
        n = os.write(fd, data)
        data = data[n:]


def read_exact(fd: int, n: int) -> bytes:
    # readv into one preallocated buffer: os.read(fd, big) would allocate (and,
    # past malloc's mmap threshold, map and unmap) a fresh buffer per chunk.
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = os.readv(fd, [view[got:]])
        if not k:
            raise ChannelClosed("channel closed")
        got += k
    return bytes(buf)


def read_frame(fd: int) -> tuple[int, bytes]:
    kind, length = FRAME.unpack(read_exact(fd, FRAME.size))
    return kind, read_exact(fd, length)
