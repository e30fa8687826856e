"""GCOV line counts of drivers/iommu/iommufd/ on a `kernel build --coverage gcov`
kernel. The counters cover everything the kernel ran in that directory (every
task, work items, boot), so they measure the selftests and the fuzzer's programs
alike. The .gcda files are read from the guest's debugfs (and the counters
reset), and gcov runs on the host against the .gcno notes kept in the kernel
dir; successive reads are summed on the host, so a guest restart loses nothing
that was read before it."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from fuzz import kernel
from fuzz.coverage.lines import SUBDIR


class GcovError(RuntimeError):
    pass


def is_gcov_kernel(kdir: Path) -> bool:
    try:
        return kernel.manifest(kdir).get("coverage") == "gcov"
    except kernel.KernelError:
        return False


def notes_dir(kdir: Path) -> Path:
    return kdir / "gcov" / "obj" / kernel.GCOV_SUBDIR


def src_root(kdir: Path) -> str:
    return str(kdir / "gcov" / "src") + "/"


def read_gcda(vm, reset: bool = True) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    """basename -> contents of the iommufd .gcda files in the guest's debugfs."""
    res = vm.run_command([sys.executable, "-m", "fuzz.coverage.guest", "gcda",
                          kernel.GCOV_SUBDIR], timeout=300)
    if res["rc"] != 0:
        raise GcovError(f"reading .gcda files in the guest failed: {res['stderr'][-1000:]}")
    files = json.loads(res["stdout"])["files"]
    if not files:
        raise GcovError("no iommufd .gcda files under /sys/kernel/debug/gcov in the guest "
                        "(is this a `kernel build --coverage gcov` kernel?)")
    if reset:
        r = vm.run_command(["/bin/sh", "-c", "echo 1 > /sys/kernel/debug/gcov/reset"])
        if r["rc"] != 0:
            raise GcovError(f"resetting the gcov counters failed: {r['stderr'][-500:]}")
    return {Path(p).name: base64.b64decode(b) for p, b in files.items()}


def line_counts(kdir: Path, gcda: dict[str, bytes]) -> dict[str, dict[int, int]]:
    """Relative file -> line -> execution count, every line gcov says has code."""
    notes = sorted(notes_dir(kdir).glob("*.gcno"))
    if not notes:
        raise GcovError(f"{kdir}: no .gcno files under {notes_dir(kdir)} (not a "
                        "`kernel build --coverage gcov` kernel)")
    gcov = shutil.which("gcov")
    if not gcov:
        raise GcovError("gcov not found (it comes with gcc)")
    out: dict[str, dict[int, int]] = {}
    tmp = Path(tempfile.mkdtemp(prefix="iommufd-gcov-"))
    try:
        for n in notes:
            shutil.copy2(n, tmp / n.name)
            data = gcda.get(n.with_suffix(".gcda").name)
            if data is not None:
                (tmp / n.with_suffix(".gcda").name).write_bytes(data)
            p = subprocess.run([gcov, "-j", "-t", "-o", str(tmp),
                                str(tmp / n.with_suffix(".gcda").name)],
                               capture_output=True, text=True, cwd=tmp)
            if p.returncode:
                raise GcovError(f"gcov on {n.name} failed: {p.stderr[-1000:]}")
            for doc in filter(None, (ln.strip() for ln in p.stdout.splitlines())):
                for f in json.loads(doc)["files"]:
                    path = f["file"]
                    if SUBDIR not in path:
                        continue
                    d = out.setdefault(path[path.index(SUBDIR):], {})
                    for ln in f["lines"]:
                        d[ln["line_number"]] = d.get(ln["line_number"], 0) + ln["count"]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def add(total: dict[str, dict[int, int]], more: dict[str, dict[int, int]]) -> None:
    for f, lines in more.items():
        d = total.setdefault(f, {})
        for ln, n in lines.items():
            d[ln] = d.get(ln, 0) + n
