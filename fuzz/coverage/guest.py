"""Coverage helpers that run inside the guest (started by the host with
VM.run_command); each prints one JSON document on stdout.

  replay DIR --executor D [--ranges R] [--no-kcov]
      run every encoded program in DIR (sorted) with the C executor, with KCOV
      enabled around the whole run: opening /dev/iommu, the ops, the closing of
      every fd, so the release paths count as they do for the selftests.
  collect DIR
      the kcov.<pid> files the preload library wrote: how many processes hit
      each PC.
  gcda SUBDIR
      every .gcda under /sys/kernel/debug/gcov whose path ends in SUBDIR.
"""

from __future__ import annotations

import argparse
import base64
import ctypes
import fcntl
import json
import os
import struct
import sys
from pathlib import Path

KCOV_ENABLE, KCOV_DISABLE, KCOV_TRACE_PC = 0x6364, 0x6365, 0
REPLAY_WORDS = 1 << 22
GCOV_ROOT = "/sys/kernel/debug/gcov"


def parse_ranges(s: str) -> list[tuple[int, int]]:
    out = []
    for part in filter(None, s.split(",")):
        lo, _, hi = part.partition("-")
        out.append((int(lo, 16), int(hi, 16)))
    return out


def format_ranges(ranges: list[tuple[int, int]]) -> str:
    return ",".join(f"{lo:x}-{hi:x}" for lo, hi in ranges)


def _trace_pcs(addr: int, n: int, ranges: list[tuple[int, int]]) -> list[int]:
    """The distinct low PC halves among the n trace words at addr that lie in
    ranges (all if none). A program's whole-run trace can hold millions of PCs
    (page faults, buffer set-up), so numpy does the filtering."""
    import numpy as np

    words = np.ctypeslib.as_array((ctypes.c_uint64 * n).from_address(addr)) if n else \
        np.zeros(0, dtype=np.uint64)
    low = (words & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    if ranges:
        keep = np.zeros(len(low), dtype=bool)
        for lo, hi in ranges:
            keep |= (low >= lo) & (low < hi)
        low = low[keep]
    return np.unique(low).tolist()


def replay(d: Path, executor: Path, ranges: list[tuple[int, int]], kcov: bool) -> dict:
    from fuzz.executor.runner import Kcov, Runner, unpack_response

    runner = Runner(executor, kcov=False)  # the executor leaves KCOV alone: we hold it
    k = Kcov(REPLAY_WORDS) if kcov else None
    area = (ctypes.c_uint64 * 1).from_address(k.addr) if k else None  # the count word
    out = []
    for path in sorted(d.iterdir()):
        wire = path.read_bytes()
        if k and area is not None:
            fcntl.ioctl(k.fd, KCOV_ENABLE, KCOV_TRACE_PC)
            area[0] = 0
        raw = unpack_response(runner.run(wire))
        rec: dict = {"name": path.name}
        if k and area is not None:
            n = area[0]
            fcntl.ioctl(k.fd, KCOV_DISABLE, 0)
            rec["truncated"] = n >= REPLAY_WORDS - 1
            n = min(n, REPLAY_WORDS - 1)
            rec["pcs"] = _trace_pcs(k.addr + 8, n, ranges)
        setup_errno = raw.setup_errno
        if setup_errno:
            rec["setup_errno"] = setup_errno
        out.append(rec)
    return {"programs": out}


def collect(d: Path) -> dict:
    counts: dict[int, int] = {}
    procs = overflows = 0
    for p in sorted(d.glob("kcov.*")):
        data = p.read_bytes()
        if len(data) < 8:
            continue
        n, ov = struct.unpack_from("<II", data)
        procs += 1
        overflows += ov
        for pc in struct.unpack_from(f"<{n}I", data, 8):
            counts[pc] = counts.get(pc, 0) + 1
    return {"processes": procs, "overflows": overflows,
            "counts": {f"{pc:x}": n for pc, n in sorted(counts.items())}}


def gcda(subdir: str) -> dict:
    files = {}
    for root, _dirs, names in os.walk(GCOV_ROOT):
        if not root.rstrip("/").endswith(subdir.rstrip("/")):
            continue
        for n in names:
            if n.endswith(".gcda"):
                files[os.path.join(root, n)] = base64.b64encode(
                    Path(root, n).read_bytes()).decode()
    return {"root": GCOV_ROOT, "files": files}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="fuzz.coverage.guest")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("replay")
    r.add_argument("dir", type=Path)
    r.add_argument("--executor", type=Path, required=True)
    r.add_argument("--ranges", default="")
    r.add_argument("--no-kcov", action="store_true")
    c = sub.add_parser("collect")
    c.add_argument("dir", type=Path)
    g = sub.add_parser("gcda")
    g.add_argument("subdir")
    a = ap.parse_args(argv)
    if a.cmd == "replay":
        res = replay(a.dir, a.executor, parse_ranges(a.ranges), not a.no_kcov)
    elif a.cmd == "collect":
        res = collect(a.dir)
    else:
        res = gcda(a.subdir)
    json.dump(res, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
