"""Kernel coverage from KCOV: edges per program and where they are in the source.
Line coverage of drivers/iommu/iommufd/ is in the modules: lines (the KCOV line
map), measure (runs in the VM), gcov, table, lcov, command (`iommufd-fuzz coverage`).

An edge is a pair of consecutive PCs in one op's trace, packed as prev | cur << 32
(low halves: kernel text is at 0xffffffff8xxxxxxx). Pairs are formed by viewing
the u32 trace as u64 twice (even and odd alignment), so no Python loop runs per PC.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from fuzz.executor.wire import KCOV_EDGES

if TYPE_CHECKING:  # the package is imported in the guest too: keep it light
    from fuzz.backend import Execution

KERNEL_HIGH = 0xFFFFFFFF00000000


def edges_of_trace(trace: memoryview) -> set[int]:
    raw = trace.cast("B")
    n = len(trace)
    if n < 2:
        return set()
    even = raw[: 8 * (n // 2)].cast("Q")
    odd = raw[4: 4 + 8 * ((n - 1) // 2)].cast("Q")
    return set(even) | set(odd)


def edges(ex: Execution) -> set[int]:
    if ex.raw is None:
        return set()
    if ex.kcov_mode == KCOV_EDGES:  # the executor already paired and deduplicated them
        return set(memoryview(ex.raw.pcs).cast("Q"))
    out: set[int] = set()
    for i in range(len(ex.results)):
        out |= edges_of_trace(ex.call_pcs(i))
    return out


def pcs(ex: Execution) -> set[int]:
    out: set[int] = set()
    if ex.raw is None:
        return out
    for i in range(len(ex.results)):
        out.update(ex.call_pcs(i))
    return out


class Symbolizer:
    """PC -> source file, with addr2line on the build's vmlinux (line tables)."""

    def __init__(self, kernel_dir: Path) -> None:
        self.vmlinux = kernel_dir / "vmlinux"
        self.cache: dict[int, str] = {}

    def files(self, low_pcs: set[int]) -> dict[int, str]:
        todo = sorted(p for p in low_pcs if p not in self.cache)
        for k in range(0, len(todo), 20000):
            chunk = todo[k:k + 20000]
            p = subprocess.run(["addr2line", "-e", str(self.vmlinux)],
                               input="\n".join(hex(KERNEL_HIGH | pc) for pc in chunk),
                               capture_output=True, text=True, check=True)
            for pc, line in zip(chunk, p.stdout.splitlines()):
                self.cache[pc] = line.rsplit(":", 1)[0]
        return {p: self.cache.get(p, "?") for p in low_pcs}

    def in_dir(self, low_pcs: set[int], subdir: str = "drivers/iommu/iommufd/") -> set[int]:
        return {p for p, f in self.files(low_pcs).items() if subdir in f}


def iommufd_edges(sym: Symbolizer, all_edges: set[int]) -> int:
    """Edges whose destination PC lies in drivers/iommu/iommufd/."""
    dests = {e >> 32 for e in all_edges}
    inside = sym.in_dir(dests)
    return sum(1 for e in all_edges if (e >> 32) in inside)


def edge_pcs(all_edges: set[int]) -> set[int]:
    """Both ends of every edge (low PC halves)."""
    return {e & 0xFFFFFFFF for e in all_edges} | {e >> 32 for e in all_edges}
