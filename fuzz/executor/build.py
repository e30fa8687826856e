"""Compiles the C executor into a cffi extension, cached by the hash of its source.

The cache lives under the fuzzer's cache directory on the host's root
filesystem, which the guest sees over virtio-9p, so the guest agent imports the
very same .so the host built (same libc, same Python).
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

from fuzz.paths import cache_dir

HERE = Path(__file__).resolve().parent
MODULE = "_fz_executor"


def cdef_text() -> str:
    """executor.h without preprocessor lines, which cffi's cdef does not take."""
    text = (HERE / "executor.h").read_text()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    lines = [ln for ln in text.splitlines() if not ln.startswith("#include")]
    return "\n".join(lines)


def uapi_defines() -> list[str]:
    """The selftest command the buffer pool checks pins with, from fuzz.uapi."""
    from fuzz import uapi

    off = {f: uapi.field_offset("struct iommu_test_cmd", f"check_refs.{f}")[0]
           for f in ("uptr", "length", "refs")}
    return [f"-DFZ_TEST_CMD={uapi.IOMMU_TEST_CMD:#x}",
            f"-DFZ_TEST_CMD_SIZE={uapi.sizeof('struct iommu_test_cmd')}",
            f"-DFZ_TEST_OP_MD_CHECK_REFS={uapi.IOMMU_TEST_OP_MD_CHECK_REFS}",
            f"-DFZ_CHECK_REFS_UPTR={off['uptr']}", f"-DFZ_CHECK_REFS_LENGTH={off['length']}",
            f"-DFZ_CHECK_REFS_REFS={off['refs']}"]


def _digest() -> str:
    h = hashlib.sha256()
    for name in ("executor.c", "executor.h", "build.py"):
        h.update((HERE / name).read_bytes())
    h.update(" ".join(uapi_defines()).encode())
    h.update(sys.version.encode())
    return h.hexdigest()[:16]


def build_dir() -> Path:
    return cache_dir() / "executor" / _digest()


def ensure_built() -> Path:
    """Build the extension if this source has not been built yet; return its dir."""
    out = build_dir()
    if not list(out.glob(f"{MODULE}*.so")):
        import cffi  # host only: the guest never compiles

        out.mkdir(parents=True, exist_ok=True)
        ffib = cffi.FFI()
        ffib.cdef(cdef_text())
        ffib.set_source(MODULE, '#include "executor.h"',
                        sources=[str(HERE / "executor.c")], include_dirs=[str(HERE)],
                        extra_compile_args=["-O2", "-Wall", *uapi_defines()])
        ffib.compile(tmpdir=str(out), verbose=False)
    return out


def load(directory: Path | None = None) -> ModuleType:
    """Import the compiled extension (built by the host if `directory` is None)."""
    d = directory or ensure_built()
    so = next(d.glob(f"{MODULE}*.so"))
    spec = importlib.util.spec_from_file_location(MODULE, so)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
