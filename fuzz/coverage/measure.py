"""Measuring what a run reaches in drivers/iommu/iommufd/, in the VM, with one of
two instruments, the same for every kind of run:

- kcov (any kernel): KCOV in PC mode on the task that runs the programs, for
  its whole life. Corpus programs are replayed by fuzz.coverage.guest with KCOV
  enabled around each program (opening /dev/iommu, the ops, closing its fds);
  the selftests run with fuzz/coverage/kcov_preload.c preloaded, which does
  the same in each of their processes. What other tasks do (work items) is not
  seen, on either side.
- gcov (a `kernel build --coverage gcov` kernel): the kernel's own counters, read
  from debugfs after each batch.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from fuzz import selftests
from fuzz.coverage import gcov
from fuzz.coverage.guest import format_ranges
from fuzz.coverage.lines import LineMap, line_map
from fuzz.coverage.table import LineCoverage
from fuzz.paths import REPO, cache_dir
from fuzz.prog import Program

PRELOAD_SRC = REPO / "fuzz" / "coverage" / "kcov_preload.c"
GUEST_SCRATCH = "/run/tmp"  # the guest's own tmpfs (its root is the host's, read-only)
BATCH = 32


class CoverageError(RuntimeError):
    """A measurement step failed; the message names it."""


Log = Callable[[str], None]


def _log(msg: str) -> None:
    print(f"[coverage] {msg}", file=sys.stderr, flush=True)


def instruments(kdir: Path) -> list[str]:
    return ["gcov", "kcov"] if gcov.is_gcov_kernel(kdir) else ["kcov"]


def boot(kdir: Path):  # type: ignore[no-untyped-def]
    from fuzz.vm import VM, VMConfig

    vm = VM(VMConfig(kernel=kdir))
    vm.start()
    return vm


class Meter:
    """Collects one run's coverage with one instrument, across batches and
    guest restarts."""

    def __init__(self, kdir: Path, instrument: str) -> None:
        if instrument not in instruments(kdir):
            raise CoverageError(f"--instrument {instrument}: this kernel has "
                                f"{', '.join(instruments(kdir))} ({kdir})")
        self.kdir, self.instrument = kdir, instrument
        self.lm: LineMap | None = line_map(kdir) if instrument == "kcov" else None
        self.pc_counts: dict[int, int] = {}  # kcov: low PC -> runs that hit it
        self.gcov_lines: dict[str, dict[int, int]] = {}

    @property
    def ranges(self) -> str:
        assert self.lm is not None
        return format_ranges(self.lm.ranges)

    def add_pcs(self, pcs: list[int]) -> None:
        for pc in pcs:
            self.pc_counts[pc] = self.pc_counts.get(pc, 0) + 1

    def read(self, vm) -> None:  # type: ignore[no-untyped-def]
        """gcov: take the guest's counters (and reset them). Before any restart."""
        if self.instrument == "gcov":
            gcov.add(self.gcov_lines, gcov.line_counts(self.kdir, gcov.read_gcda(vm)))

    def result(self, name: str, meta: dict) -> LineCoverage:
        if self.instrument == "kcov":
            assert self.lm is not None
            lines = self.lm.line_counts(self.pc_counts)
            return LineCoverage(name, "kcov", self.lm.src_root, lines,
                                {**meta, "sites_hit": len(self.lm.sites_of(self.pc_counts))})
        if not self.gcov_lines:
            self.gcov_lines = gcov.line_counts(self.kdir, {})  # reachable lines, none reached
        return LineCoverage(name, "gcov", gcov.src_root(self.kdir), self.gcov_lines, meta)


# -- corpus programs ------------------------------------------------------------------------
def _stage(tag: str) -> Path:
    # a new directory each time: the guest's 9p mount caches what it has read
    d = cache_dir() / "coverage" / "stage" / f"{tag}-{time.time_ns()}"
    d.mkdir(parents=True)
    return d


def _replay_batch(vm, meter: Meter, batch: list[tuple[str, bytes]],  # type: ignore[no-untyped-def]
                  timeout: float) -> dict:
    from fuzz.executor import build

    d = _stage("replay")
    try:
        for k, (_name, wire) in enumerate(batch):
            (d / f"{k:05d}").write_bytes(wire)
        argv = [sys.executable, "-m", "fuzz.coverage.guest", "replay", str(d),
                "--executor", str(build.ensure_built())]
        argv += ["--ranges", meter.ranges] if meter.instrument == "kcov" else ["--no-kcov"]
        res = vm.run_command(argv, timeout=timeout)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    if res["rc"] != 0:
        raise CoverageError(f"the guest's replay failed (exit {res['rc']}): "
                            f"{res['stderr'].strip()[-2000:]}")
    out = json.loads(res["stdout"])
    out["kmsg"] = res.get("kmsg", "")
    return out


def measure_corpus(kdir: Path, instrument: str, progs: list[tuple[Path, Program]],
                   log: Log = _log, batch: int = BATCH, timeout: float = 600.0) -> LineCoverage:
    """Replay the programs in a fresh VM; a program that crashes the guest is
    named and skipped (after a restart), its batch re-run one by one."""
    from fuzz.backend import TAINTING
    from fuzz.executor.encode import encode
    from fuzz.report import parse
    from fuzz.vm import GuestCrash

    meter = Meter(kdir, instrument)
    wires = [(str(p), encode(prog, kcov=False).wire) for p, prog in progs]
    meta: dict = {"programs": len(progs), "crashed": [], "setup_failed": 0, "truncated": 0,
                  "splats": []}
    t0 = time.monotonic()
    vm = boot(kdir)
    try:
        todo = [wires[k:k + batch] for k in range(0, len(wires), batch)]
        done = 0
        while todo:
            chunk = todo.pop(0)
            try:
                out = _replay_batch(vm, meter, chunk, timeout)
            except GuestCrash as crash:
                vm.restart()
                if len(chunk) == 1:
                    meta["crashed"].append({"program": chunk[0][0], "what": crash.what,
                                            "splats": [r.title for r in crash.reports]})
                    log(f"{chunk[0][0]}: guest crashed ({crash.what}); skipped")
                    done += 1
                else:
                    todo[:0] = [[w] for w in chunk]
                continue
            for rec in out["programs"]:
                meter.add_pcs(rec.get("pcs", []))
                meta["truncated"] += bool(rec.get("truncated"))
                meta["setup_failed"] += "setup_errno" in rec
            reports = parse(out["kmsg"])
            meta["splats"] += [r.title for r in reports]
            meter.read(vm)
            if any(r.kind in TAINTING for r in reports):
                vm.restart()
            done += len(chunk)
            log(f"replayed {done}/{len(wires)} programs ({time.monotonic() - t0:.0f} s)")
    finally:
        vm.stop()
    meta["seconds"] = round(time.monotonic() - t0, 1)
    return meter.result("corpus", meta)


# -- the selftests -----------------------------------------------------------------------------
def preload_library() -> Path:
    """kcov_preload.c built into the cache (which the guest sees)."""
    import hashlib

    digest = hashlib.sha256(PRELOAD_SRC.read_bytes()).hexdigest()[:16]
    so = cache_dir() / "coverage" / f"kcov_preload-{digest}.so"
    if not so.exists():
        so.parent.mkdir(parents=True, exist_ok=True)
        tmp = so.with_suffix(f".tmp{time.time_ns()}")
        p = subprocess.run(["gcc", "-O2", "-Wall", "-shared", "-fPIC", "-o", str(tmp),
                            str(PRELOAD_SRC), "-lpthread"], capture_output=True, text=True)
        if p.returncode:
            raise CoverageError(f"building {PRELOAD_SRC.name} failed: {p.stderr[-2000:]}")
        tmp.rename(so)
    return so


def measure_selftests(kdir: Path, instrument: str, tree: Path, log: Log = _log,
                      timeout: float = 3600.0,
                      programs: dict[str, tuple[str, ...]] | None = None) -> LineCoverage:
    """Build the selftests from tree and run them in a fresh VM (one boot for all);
    programs: binary -> harness arguments (default: both, all tests)."""
    programs = programs or {p: () for p in selftests.PROGRAMS}
    meter = Meter(kdir, instrument)
    binaries = selftests.build(tree)
    env: dict[str, str] = {}
    if instrument == "kcov":
        env = {"LD_PRELOAD": str(preload_library()), "IOMMUFD_FUZZ_KCOV_RANGES": meter.ranges}
    t0 = time.monotonic()
    runs = []
    meta: dict = {"overflows": 0, "processes": 0}
    vm = boot(kdir)
    try:
        for prog, args in programs.items():
            out_dir = f"{GUEST_SCRATCH}/kcov-{prog}-{time.time_ns()}"
            if instrument == "kcov":
                r = vm.run_command(["/bin/mkdir", "-p", out_dir])
                if r["rc"]:
                    raise CoverageError(f"mkdir {out_dir} in the guest failed: {r['stderr']}")
            log(f"running selftest {prog} ({instrument}; minutes under TCG)")
            run = selftests.run(vm, binaries, prog, timeout=timeout, args=args,
                                env={**env, "IOMMUFD_FUZZ_KCOV_OUT": out_dir} if env else None)
            log(run.summary())
            runs.append(run)
            if run.restarted:
                continue  # the guest crashed: what this run had reached is gone
            if instrument == "kcov":
                res = vm.run_command([sys.executable, "-m", "fuzz.coverage.guest", "collect",
                                      out_dir], timeout=300)
                if res["rc"]:
                    raise CoverageError(f"collecting KCOV files failed: {res['stderr'][-1000:]}")
                got = json.loads(res["stdout"])
                for pc, n in got["counts"].items():
                    meter.pc_counts[int(pc, 16)] = meter.pc_counts.get(int(pc, 16), 0) + n
                meta["overflows"] += got["overflows"]
                meta["processes"] += got["processes"]
            else:
                meter.read(vm)
            if run.tainted:
                vm.restart()
    finally:
        vm.stop()
    meta["seconds"] = round(time.monotonic() - t0, 1)
    meta["selftests"] = [r.to_json() for r in runs]
    meta["splats"] = [t for r in runs for t in r.splats]
    return meter.result("selftests", meta)
