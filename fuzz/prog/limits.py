"""Limits the encoder, the executor, the model and the reproducers must agree on,
each defined once. None of these is a uAPI constant (those are in fuzz.uapi)."""

from __future__ import annotations

# A struct op gets max(sizeof, size, sizeof + extra_space) bytes of real memory, at
# most this much; past that the kernel reads whatever follows in the arena.
MAX_STRUCT = 1 << 16
# Side arrays (IOVA range lists) longer than this are not materialized...
MAX_SIDE_ENTRIES = 4096
# ... nor larger than this many bytes (read/write buffers).
MAX_SIDE_BYTES = 1 << 16
# The executor captures at most this many bytes per op (ACCESS_RW's "data")...
CAPTURE_MAX = 1 << 16
# ... and this many per program; a capture that does not fit what is left is empty.
CAPTURE_ROOM = 1 << 22
# The executor's prologue resets the selftest's global temp memory limit to the
# value selftest.c starts with, so every program sees the same limit.
TEST_MEMORY_LIMIT_DEFAULT = 65536
# fds a program can own at once (the executor's table; later ones are not closed
# for it, so they stay open until the program ends with the iommufd).
MAX_FDS = 256
# The guest agent's fd table when a program's first call runs: the console on 0-2
# (the agent is PID 1) and the program's iommufd on 3; the agent's own fds are at
# AGENT_FD_BASE and above (fuzz/guest/agent.c), out of the way of programs' fds.
PROGRAM_START_FDS = (0, 1, 2, 3)
AGENT_FD_BASE = 500
# KCOV words the executor returns per program by default.
PCS_CAP = 1 << 20

# What a program may ask for (fuzz.prog.ir checks these on load, each error gives
# the limit): ops, file size, buffers, their memory (the guest has 1 GiB; every
# mapped page is filled), unmapped holes (one munmap each in the guest).
MAX_OPS = 4096
MAX_PROGRAM_BYTES = 8 << 20
MAX_RANGES = 1 << 16  # entries of one "ranges" argument
MAX_BUFFERS = 64
MAX_BUFFER_SIZE = 1 << 30  # one buffer (a "hole" buffer maps nothing)
MAX_BUFFER_BYTES = 256 << 20  # all mapped buffers of one program together
MAX_HOLES = 256  # holes of all buffers of one program together
# JSON the tool reads (programs, findings, reproducer records, stats lines): nesting
# (a program needs 6 levels, a history of programs 8) and size of the other records.
MAX_JSON_DEPTH = 16
MAX_JSON_BYTES = 64 << 20
# Programs kept with a finding: what the VM ran since its last restore, at most this
# many (fuzz.backend keeps them, fuzz.minimize replays them when the last alone does not
# reproduce).
MAX_HISTORY = 64

# How an op instance runs (fuzz.prog.ir: fail_nth, thread, barrier).
MAX_FAIL_NTH = 0xFFFF  # the executor's 16 bits; iommufd_fail_nth walks at most 400
MAX_THREADS = 4
MAX_BARRIER = 255
# Ops of one race group: the model tries every order of them that keeps each
# thread's own order; 6 ops on 4 threads have at most 6!/(2!*2!) = 180 such orders.
MAX_GROUP_OPS = 6
