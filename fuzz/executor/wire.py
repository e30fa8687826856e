"""The executor's wire format: its C structs (executor.h) as struct.Struct.

Kept apart from encode.py so the runner (fuzz.executor.runner) imports only this.
The C side parses the same layout in fz_run_wire (executor.c)."""

from __future__ import annotations

import struct

MAGIC = 0x315A4649  # "IFZ1"
# magic, nr_buffers, nr_holes, nr_calls, nr_relocs, arena_len, prologue_request,
# prologue_off, prologue_len, kcov_mode, pcs_cap, cap_cap, creds (1: apply the next two),
# pad, drop_caps (capability bit mask), memlock (RLIMIT_MEMLOCK bytes)
HEADER = struct.Struct("<14IQQ")
BUFFER = struct.Struct("<QQIIII")  # struct fz_buffer
HOLE = struct.Struct("<QQ")  # struct fz_hole
CALL = struct.Struct("<10I")  # struct fz_call
RELOC = struct.Struct("<IIIIQQ")  # struct fz_reloc
RESULT = struct.Struct("<iIqIIIIQQ")  # struct fz_call_result
INFO = struct.Struct("<iIiIIIQQQIIQQQ")  # struct fz_run_info
SECTIONS = struct.Struct("<6I")  # response: lengths of info, results, arena, pcs, captures, kmsg

BUF_KIND = {"anon": 0, "hugetlb": 1, "memfd": 2, "readonly": 3, "hole": 4}
CALL_PTR, CALL_VAL, CALL_CLOSE, CALL_READ, CALL_WRITE, CALL_POLL = 0, 1, 2, 3, 4, 5
RELOC_FIELD, RELOC_BUFFER, RELOC_ARENA, RELOC_RET = 0, 1, 2, 3
KCOV_TRACE_PC, KCOV_TRACE_CMP, KCOV_OFF = 0, 1, 0xFFFFFFFF
KCOV_EDGES = 2  # PC tracing, but the executor returns the program's distinct edges
# fz_call.sched and fz_call_result.flags (executor.h)
SCHED_NTH_MASK, SCHED_THREAD_SHIFT, SCHED_GROUP_SHIFT = 0xFFFF, 16, 20
SCHED_MAX_GROUP = (1 << 12) - 1
RES_INJECTED, RES_NTH_FAILED, RES_THREAD_SHIFT = 1, 2, 8
