"""Where the fuzzer keeps things outside the repository."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """Kernel sources and builds: $IOMMUFD_FUZZ_CACHE, else ~/.cache/iommufd-fuzz."""
    env = os.environ.get("IOMMUFD_FUZZ_CACHE")
    xdg = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    base = Path(env) if env else xdg / "iommufd-fuzz"
    base.mkdir(parents=True, exist_ok=True)
    return base
