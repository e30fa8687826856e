"""The program side, after syzkaller's prog/ and sys/: the IR (ir), the op
descriptions (descriptions, types), generation (gen), mutation (mutate) and the
ref-preserving edits every engine and the minimizer share (edits)."""

from fuzz.prog.ir import (
    BUF_BASE,
    BUF_STRIDE,
    BUFFER_KINDS,
    CREDS_CAPS,
    HUGE_PAGE,
    MAX_BUFFER_SIZE,
    MAX_BUFFERS,
    PAGE,
    SCHEMA_VERSION,
    Buffer,
    BufPtr,
    Creds,
    Op,
    Program,
    ProgramError,
    Ref,
    Value,
    atomic_write,
    buffer_address,
    pattern_bytes,
)

__all__ = [
    "BUF_BASE", "BUF_STRIDE", "BUFFER_KINDS", "CREDS_CAPS", "HUGE_PAGE", "MAX_BUFFERS",
    "MAX_BUFFER_SIZE", "PAGE", "SCHEMA_VERSION", "BufPtr", "Buffer", "Creds", "Op", "Program",
    "ProgramError", "Ref", "Value", "atomic_write", "buffer_address", "pattern_bytes",
]
