"""Framing for the host <-> guest agent channel (a virtio-serial port).

A frame is (type: u32, length: u32, payload). The host imports this module and the
guest agent (fuzz/guest/agent.c) is compiled with its frame numbers as -D flags
(fuzz/guest/initramfs.py), so they are defined once.
"""

from __future__ import annotations

import struct

FRAME = struct.Struct("<II")
RUN_HEAD = struct.Struct("<4I")
RUN_DONE_HEAD = struct.Struct("<i3I")
BATCH_HEAD = struct.Struct("<IIQ")

# host -> guest
EXEC = 1  # payload: encoded program (fuzz.executor.encode wire format)
PING = 2
RUN = 3  # payload: RUN_HEAD (timeout ms, argc, envc, stdin length), then NUL-ended cwd,
#           argv and env strings, then stdin: runs a host command in the guest
POOL = 4  # payload: u32 0/1: keep buffers mapped between programs (executor.c); PONG
FAULTS = 5  # payload: u32 verbose (0..2) for the fault attributes an injected fault logs
#             with (2: a stack trace of the fault point); PONG
LEAKS = 6  # kmemleak: scan, answer LEAK_REPORT with what it lists, then clear the list
EXEC_BATCH = 7  # payload: u32 count, then count times (u32 length, an EXEC payload): the
#                 programs run one after the other as EXEC runs each; BATCH_RESULT
# guest -> host
HELLO = 100  # payload: JSON {"uname": ..., "kcov": bool, "boot_s": float, "agent": "c"}
RESULT = 101  # payload: the executor's response (fuzz.executor.runner.unpack_response)
PONG = 102
RUN_DONE = 103  # payload: RUN_DONE_HEAD (rc, lengths of stdout, stderr, kmsg), then those
ERROR = 104  # payload: UTF-8 message of an agent-side failure
LEAK_REPORT = 105  # payload: i32 errno (0: scanned; else kmemleak is off or failed), text
BATCH_RESULT = 106  # payload: BATCH_HEAD (count, 0, the guest's ns for all), then count
#                     times (u32 length, a RESULT payload; length 0: not a program)

# A RESULT's kernel log: the lines logged between the previous answer and this
# program's start (deferred work of the program before: RCU callbacks, work items),
# then this line, then the program's own; without earlier lines there is no marker.
KMSG_PROGRAM_START = "iommufd-fuzz: the program starts here"


def split_kmsg(kmsg: str) -> tuple[str, str]:
    """(lines logged before the program started, the program's own lines)."""
    head, sep, own = kmsg.partition(KMSG_PROGRAM_START + "\n")
    return (head, own) if sep else ("", kmsg)


def pack(kind: int, payload: bytes = b"") -> bytes:
    return FRAME.pack(kind, len(payload)) + payload
