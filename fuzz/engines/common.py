"""What every engine worker does with one program: run it differentially,
count its kernel edges, keep it if it found new ones, record its findings,
and write periodic stats."""

from __future__ import annotations

import json
import os
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path

from fuzz import corpus, coverage, differential, findings, kernel
from fuzz.backend import Backend
from fuzz.executor.wire import KCOV_EDGES
from fuzz.prog import Program, atomic_write
from fuzz.prog.types import EDGE, Counts


def build_c_loop() -> Path:
    """bench/c_loop.c compiled into the cache dir (run in the guest by run_command)."""
    import subprocess

    from fuzz.paths import REPO, cache_dir

    exe = cache_dir() / "bench" / "c_loop"
    exe.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["gcc", "-O2", "-o", str(exe), str(REPO / "bench" / "c_loop.c")], check=True)
    return exe


MILESTONE = 100  # also write stats every this many programs (edges-vs-programs curves)


@dataclass
class WorkerState:
    backend: Backend
    corpus_dir: Path
    store: findings.FindingStore
    stats_path: Path
    kernel_dir: Path | None = None
    worker: int = 0
    edges: set[int] = field(default_factory=set)
    programs: int = 0
    ops: int = 0
    new_findings: int = 0
    findings_seen: set[str] = field(default_factory=set)
    known_seen: set[str] = field(default_factory=set)  # known kernel bugs (fuzz.known) hit
    started: float = field(default_factory=time.monotonic)
    last_stats: float = 0.0
    manifest: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)  # e.g. the C-loop ceiling measured in this VM
    counts: Counts | None = None  # what the worker's generator and mutator drew
    exchange: Path | None = None  # in a cluster campaign: fuzz.cluster.exchange's directory
    imports: int = 0  # corpus entries other workers of the cluster found, run here
    import_latency: list[float] = field(default_factory=list)  # found there -> run here, s

    def __post_init__(self) -> None:
        self.corpus_dir.mkdir(parents=True, exist_ok=True)
        self.stats_path.parent.mkdir(parents=True, exist_ok=True)
        if self.kernel_dir:
            try:
                self.manifest = kernel.manifest(self.kernel_dir)
            except kernel.KernelError:
                self.manifest = {}

    def run(self, prog: Program) -> tuple[differential.Outcome, set[int]]:
        out = differential.run(prog, self.backend, kcov_mode=KCOV_EDGES)
        e = coverage.edges(out.execution)
        new = e - self.edges
        if new:
            self.edges |= new
            corpus.add(self.corpus_dir, prog)
        self.programs += 1
        self.ops += len(prog.ops)
        if self.counts is not None:
            self.counts.take_ops()  # per-op marks are for gen --stats; here only totals
        if out.failed:
            self.record(out)
        if time.monotonic() - self.last_stats > 5 or self.programs % MILESTONE == 0:
            self.write_stats()
        return out, e

    def record(self, out: differential.Outcome) -> None:
        ex = out.execution
        log = (ex.raw.kmsg if ex.raw else "") + ex.console_tail
        for f in findings.from_outcome(out):
            if self.store.record(f, out.prog, log, self.manifest):
                self.new_findings += 1
            (self.known_seen if f.known else self.findings_seen).add(f.signature)

    def imported(self, name: str, found_at: float, startup: bool = False) -> None:
        """An entry another worker of the cluster found (at found_at, wall clock) ran
        here; startup: it was found before this worker's engine was ready for it."""
        from fuzz.cluster.exchange import log_import

        lat = max(0.0, time.time() - found_at)
        self.imports += 1
        if len(self.import_latency) < 10_000 and not startup:
            self.import_latency.append(lat)
        if self.exchange is not None:
            log_import(self.exchange, name, lat, startup)

    def measure_ceiling(self, pairs: int) -> None:
        """The raw ioctl rate of bench/c_loop.c in this worker's VM: the ceiling the
        campaign's ops/s is compared against."""
        import json as _json

        exe = build_c_loop()
        r = self.backend.vm.run_command([str(exe), str(pairs), "4096", "kcov"],  # type: ignore
                                        timeout=600)
        if r["rc"] == 0:
            self.extra["c_loop_ops_per_s"] = _json.loads(r["stdout"])["ops_per_s"]
        self.started = time.monotonic()  # the campaign's rates exclude this measurement
        vm = self.backend.vm  # type: ignore[attr-defined]
        vm.exec_seconds = 0.0
        vm.executor_ns = dict.fromkeys(vm.executor_ns, 0)

    def write_stats(self, final: bool = False) -> None:
        self.last_stats = time.monotonic()
        vm = getattr(self.backend, "vm", None)
        line = {"t": round(self.last_stats - self.started, 2), "worker": self.worker,
                "pid": os.getpid(), "programs": self.programs, "ops": self.ops,
                "edges": len(self.edges), "corpus": len(corpus.files(self.corpus_dir)),
                "findings": len(self.findings_seen), "known_bugs": len(self.known_seen),
                "restarts": getattr(vm, "restarts", 0),
                "restart_s": round(getattr(vm, "restart_seconds", 0.0), 2),
                "boot_s": round(getattr(vm, "cold_boot_seconds", 0.0), 2),
                "exec_s": round(getattr(vm, "exec_seconds", 0.0), 2),
                "executor_s": {k: round(v / 1e9, 2)
                               for k, v in getattr(vm, "executor_ns", {}).items()},
                "final": final, **self.extra}
        if self.counts is not None:
            # boundary values generation and mutation drew so far (fuzz.prog.gen "edge: ...")
            edges = self.counts.edges()
            line["boundary"] = sum(edges.values())
            line["boundary_values"] = {k.removeprefix(EDGE): v for k, v in sorted(edges.items())}
        if self.import_latency:
            lat = sorted(self.import_latency)
            line.update(imported=self.imports, import_latency_p50_s=round(lat[len(lat) // 2], 3))
        with open(self.stats_path, "a") as f:
            f.write(json.dumps(line) + "\n")
        atomic_write(self.stats_path.with_suffix(".edges"),
                     array("Q", sorted(self.edges)).tobytes())
