"""The side arrays of the HWPT and fault-queue ops: memory of the executor's own that
a struct pointer defaults to, how big it is, and the argument defaults the encoder
fills in. fuzz/executor/encode.py lays them out from these rules and fuzz/model reads
the same rules to know what the kernel finds there (or whether it reads past them).

Raw values are the program's own (an int, a Ref, a BufPtr, a list or None when the
program left the argument out): a size the encoder cannot know (a Ref) gets the
largest side array.
"""

from __future__ import annotations

from typing import Any

from fuzz import uapi
from fuzz.prog import BUF_BASE, BUF_STRIDE

SIDE_MAX = 1 << 16  # no side array is bigger (the same bound as a struct's real memory)
PGFAULT_SIZE = uapi.sizeof("struct iommu_hwpt_pgfault")
RESPONSE_SIZE = uapi.sizeof("struct iommu_hwpt_page_response")
INVALIDATE_ENTRY_SIZE = uapi.sizeof("struct iommu_hwpt_invalidate_selftest")
HWPT_DATA_SIZE = uapi.sizeof("struct iommu_hwpt_selftest")
# HWPT_ALLOC reads data_len bytes only when data_len == sizeof(struct iommu_hwpt_selftest)
# (iommu_copy_struct_from_user refuses every other length before reading), so this
# side array always holds what the kernel reads.
HWPT_DATA_SIDE = 8
READ_DEFAULT_COUNT = 4 * PGFAULT_SIZE  # READ without count: room for four records
ZERO_FILL_MAX = 4096  # entries a literal count may claim beyond the listed ones (zeros)

U64 = (1 << 64) - 1


def _lit(raw: Any) -> int | None:
    """A literal integer argument as the struct field holds it, else None."""
    if type(raw) is int:
        return raw & U64
    return None


# GET_HW_INFO writes data_len bytes (the info, then clear_user of the rest), up to
# 4 GiB: its default data_uptr is not in the arena but at the start of a mapping of
# its own (a buffer the executor adds after the program's, below them), past whose
# end the kernel's copy faults instead of running over the executor's heap.
HW_INFO_SCRATCH = BUF_BASE - BUF_STRIDE
HW_INFO_SCRATCH_SIZE = SIDE_MAX


def invalidate_entries(entries: Any, entry_num_raw: Any) -> int:
    """Entries of HWPT_INVALIDATE's default data_uptr array: the listed ones, then
    zeros up to a literal entry_num of at most ZERO_FILL_MAX; at least one."""
    n = len(entries) if isinstance(entries, list) else 0
    v = _lit(entry_num_raw)
    if v is not None and v <= ZERO_FILL_MAX:
        n = max(n, v)
    return max(n, 1)


def read_side(count_raw: Any) -> int:
    """Bytes of READ's default buffer: the literal count (at least one record, at most
    SIDE_MAX); SIDE_MAX for a Ref count."""
    v = _lit(count_raw)
    if v is None:
        return SIDE_MAX
    return min(max(v, PGFAULT_SIZE), SIDE_MAX)


def write_entries(responses: Any, count_raw: Any) -> int:
    """Entries of WRITE's default buffer: cookie/code, then the listed responses, then
    zeros up to a literal count of at most SIDE_MAX bytes."""
    n = 1 + (len(responses) if isinstance(responses, list) else 0)
    v = _lit(count_raw)
    if v is not None and v <= SIDE_MAX:
        n = max(n, -(-v // RESPONSE_SIZE))
    return n


def write_default_count(responses: Any) -> int:
    return RESPONSE_SIZE * (1 + (len(responses) if isinstance(responses, list) else 0))


def dirty_bitmap_bytes(length_raw: Any, page_size_raw: Any) -> int:
    """Bytes of the GET_DIRTY_BITMAP bitmap the executor captures after the call: the
    kernel's bitmap size ((length - 1) >> __ffs(page_size)) / 8 + 1 for literal
    length and page_size, else nothing."""
    length, ps = _lit(length_raw), _lit(page_size_raw)
    if not length or not ps:
        return 0
    shift = (ps & -ps).bit_length() - 1
    return ((length - 1) >> shift) // 8 + 1
