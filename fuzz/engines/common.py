"""What every engine worker does with one program: run it differentially,
count its kernel edges, keep it if it found new ones, record its findings,
and write periodic stats. Every WALK_EVERY-th program it also runs one step of
the systematic fault walk (fuzz.faults.Walker) on a corpus program, and it keeps
the edges of programs with injected faults, with racing threads and with neither
apart, for the stats."""

from __future__ import annotations

import ctypes
import json
import os
import random
import sys
import time
from array import array
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fuzz import corpus, coverage, differential, findings, kernel, logs
from fuzz.backend import Backend
from fuzz.executor.wire import KCOV_EDGES
from fuzz.model.file import AGENT_FDS
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
TRIM_EVERY_S = 60.0  # give freed heap memory back this often (give_back_freed_memory)
_MALLOC_TRIM = getattr(ctypes.CDLL(None), "malloc_trim", None)  # glibc only
MAX_PENDING = 64  # corpus entries and findings kept for a retry while the disk is full
STATS_MAX_BYTES = 128 << 10  # stats.jsonl is thinned past this (fuzz.logs.thin)
WALK_EVERY = 8  # campaigns: one step of the systematic fault walk after this many programs
LEAK_SCAN_S = 120.0  # with kmemleak: scan this often (it reports objects 5 s or older)
KINDS = ("fault", "thread", "plain")  # programs with injected faults, with threads, neither


def give_back_freed_memory() -> None:
    """glibc keeps the pages of freed chunks inside its heap resident, so a worker's RSS
    is the peak of its transients (a large program's model copies, a CMP re-run), not
    what it holds: a soak's worker grew 11 MB in one minute and kept it, and
    malloc_trim(0) gave back 16.4 of its 133.7 MB. A campaign runs for days."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def kind_of(prog: Program) -> list[str]:
    kinds = [k for k, yes in (("fault", prog.faulted), ("thread", prog.threaded)) if yes]
    return kinds or ["plain"]


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
    write_errors: int = 0  # corpus entries, findings or stats the disk refused
    # what could not be written yet (a full disk): retried with every stats line
    pending: list = field(default_factory=list)
    _warned: float = 0.0
    walk_dirs: list[Path] = field(default_factory=list)  # corpus dirs the fault walk takes from
    walk_every: int = 0  # a step of the systematic fault walk every this many programs
    leak_scan_s: float = 0.0  # kmemleak scan this often (0: never; the VM needs kmemleak=on)
    last_leak_scan: float = field(default_factory=time.monotonic)
    last_trim: float = field(default_factory=time.monotonic)
    since_scan: list[Program] = field(default_factory=list)  # what ran since the last scan
    leak_scans: int = 0
    by_kind: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    kind_edges: dict[str, set[int]] = field(default_factory=lambda: {k: set() for k in KINDS})
    walker: Any = None
    # add_to_corpus_later's write in flight: (program, its path or OSError to come)
    _writing: tuple[Program, Future[Path]] | None = None
    _writer: ThreadPoolExecutor | None = None
    _stats_programs: int = -1  # programs at the last stats line
    exchange: Path | None = None  # in a cluster campaign: fuzz.cluster.exchange's directory
    imports: int = 0  # corpus entries other workers of the cluster found, run here
    import_latency: list[float] = field(default_factory=list)  # found there -> run here, s
    # the host's own time by part, seconds: "model" (stepping it and comparing), and what
    # an engine adds ("mutate": the atheris engine's mutator and crossover)
    host_s: dict[str, float] = field(default_factory=lambda: {"model": 0.0})
    # per kind of program: seconds waiting for the guest's results, and in the model
    kind_s: dict[str, list[float]] = field(
        default_factory=lambda: {k: [0.0, 0.0] for k in KINDS})
    # Pipelining: run(late=True) leaves a program's comparison with the model for later,
    # done while the guest runs the next program (execute): the comparison needs only
    # the kernel's results, and the guest's vCPU is another thread of the host.
    pipelined: bool = False
    deferred: tuple[differential.Outcome, Any] | None = None  # ran, not compared yet: (it, tag)
    late_runs: int = 0  # programs run with their comparison left for later
    late_compares: int = 0  # ... and those compared since (all of them, once flushed)
    overlap_s: float = 0.0  # the host's work done between a send and its results
    # wraps every comparison (the engine's: whose coverage the model's is):
    # comparing(outcome, tag, late, compare)
    comparing: Callable[[differential.Outcome, Any, bool, Callable[[], None]], None] | None = None

    def __post_init__(self) -> None:
        self.corpus_dir.mkdir(parents=True, exist_ok=True)
        self.stats_path.parent.mkdir(parents=True, exist_ok=True)
        if self.kernel_dir:
            try:
                self.manifest = kernel.manifest(self.kernel_dir)
            except kernel.KernelError:
                self.manifest = {}

    def run(self, prog: Program, tag: Any = None, late: bool = False
            ) -> tuple[differential.Outcome, set[int]]:
        """prog run and its edges counted. late (for a pipelined worker): its comparison
        with the model, and so its findings, come with the next program's run (or
        flush); the outcome returned is then not compared yet. tag goes to comparing."""
        out, e = self._run(prog, tag, late and self.pipelined)
        if self.walk_every and self.programs % self.walk_every == 0:
            self.walk_step()
        if self.leak_scan_s and time.monotonic() - self.last_leak_scan > self.leak_scan_s:
            self.scan_leaks()
        if self.stats_due():
            self.write_stats()
        if time.monotonic() - self.last_trim > TRIM_EVERY_S:
            self.last_trim = time.monotonic()
            give_back_freed_memory()
        return out, e

    def execute(self, prog: Program, kcov_mode: int = KCOV_EDGES) -> differential.Outcome:
        """prog on the backend, not compared; the deferred comparison, if any, is done
        while the guest runs it. The guest is sent a program only once the last one's
        results are in, and the backend restarted a kernel they left tainted (collect):
        a splat is still the program's that made it, and a clean kernel runs the next."""
        vm = getattr(self.backend, "vm", None)
        waited = getattr(vm, "exec_seconds", 0.0)
        submit = getattr(self.backend, "submit", None)
        if submit is None:  # a backend that runs a program only as a whole
            self.flush()
            ex = self.backend.run(prog, kcov_mode=kcov_mode)
        else:
            fl = submit(prog, kcov_mode=kcov_mode)
            try:
                if self.deferred is not None or self.stats_due():
                    t0 = time.perf_counter()
                    self.flush()
                    if self.stats_due():  # its files' fsyncs too, beside the guest
                        self.write_stats()
                    self.overlap_s += time.perf_counter() - t0
            finally:  # the channel stays in step whatever the comparison raised
                ex = self.backend.collect(fl)  # type: ignore[attr-defined]
        out = differential.Outcome(prog, ex)
        out.waited = getattr(vm, "exec_seconds", 0.0) - waited
        return out

    def compare(self, out: differential.Outcome, tag: Any = None, late: bool = False) -> None:
        """out compared with the model, and its findings recorded (with its own kernel
        results and VM history: out.execution's)."""
        def go() -> None:
            differential.compare(out, getattr(self.backend, "fd_layout", AGENT_FDS))

        if self.comparing is not None:
            self.comparing(out, tag, late, go)
        else:
            go()
        self.host_s["model"] += out.model_s
        for k in kind_of(out.prog):
            self.kind_s[k][1] += out.model_s
        if out.failed:
            self.record(out)

    def stats_due(self) -> bool:
        return time.monotonic() - self.last_stats > 5 or (
            self.programs % MILESTONE == 0 and self._stats_programs != self.programs)

    def flush(self) -> None:
        """The deferred comparison now (the worker's exit, a SIGTERM, a backend that
        cannot overlap). Cleared only once done: a signal handler's flush in the middle
        of one does it again from the start."""
        if self.deferred is None:
            return
        out, tag = self.deferred
        self.compare(out, tag, late=True)
        self.late_compares += 1
        self.deferred = None

    def _run(self, prog: Program, tag: Any = None, late: bool = False
             ) -> tuple[differential.Outcome, set[int]]:
        out = self.execute(prog)
        e = coverage.edges(out.execution)
        new = e - self.edges
        out.new_edges = len(new)
        self.join_corpus_write()  # the last program's entry: written while this one ran
        if new:
            self.edges |= new
            self.add_to_corpus_later(prog)
        for k in kind_of(prog):
            self.by_kind[k] += 1
            self.kind_edges[k] |= e
            self.kind_s[k][0] += out.waited
        if self.leak_scan_s:
            self.since_scan = [*self.since_scan[-63:], prog]
        self.programs += 1
        self.ops += len(prog.ops)
        if self.counts is not None:
            self.counts.take_ops()  # per-op marks are for gen --stats; here only totals
        if late:
            self.deferred = (out, tag)
            self.late_runs += 1
        else:
            self.compare(out, tag)
        return out, e

    def warn(self, msg: str) -> None:
        """A write the disk refused: said at once the first time, then once a minute."""
        if time.monotonic() - self._warned > 60:
            self._warned = time.monotonic()
            print(f"worker {self.worker}: {msg} ({self.write_errors} write errors so far; "
                  "fuzzing on, retried later)", file=sys.stderr, flush=True)

    def add_to_corpus_later(self, prog: Program) -> None:
        """add_to_corpus on the writer thread: the write (an fsync, 4-10 ms on a busy
        disk: a seventh of a worker's own time early in a campaign) runs while the guest
        runs the next program, and is joined when that one's results are in, or by
        join_corpus_write (stats, the worker's exit). One thread kept for it: starting
        one per write cost 0.8 ms of the worker's time a program (Thread.start waits
        for the new thread to run, on a loaded machine a time slice)."""
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="corpus-write")
        self._writing = (prog, self._writer.submit(corpus.add, self.corpus_dir, prog))

    def join_corpus_write(self) -> None:
        """Wait for add_to_corpus_later's write and report it as add_to_corpus does."""
        if self._writing is None:
            return
        prog, fut = self._writing
        self._writing = None
        try:
            r = fut.result()
        except Exception as e:  # noqa: BLE001  (a write that died is a write error too)
            self.corpus_write_failed(prog, e if isinstance(e, OSError)
                                     else OSError(f"the corpus write died: {e}"))
        else:
            print(f"wrote corpus {r.name}", file=sys.stderr, flush=True)

    def corpus_write_failed(self, prog: Program, e: OSError) -> None:
        self.write_errors += 1
        self.warn(f"corpus entry NOT written to {self.corpus_dir}: {e.strerror or e}")
        if len(self.pending) < MAX_PENDING:
            self.pending.append(("corpus", prog))

    def add_to_corpus(self, prog: Program) -> bool:
        try:
            path = corpus.add(self.corpus_dir, prog)
        except OSError as e:
            self.corpus_write_failed(prog, e)
            return False
        print(f"wrote corpus {path.name}", file=sys.stderr, flush=True)
        return True

    def scan_leaks(self) -> None:
        """kmemleak's scan: each leak it reports is a finding, kept with the last program
        that ran before it (kmemleak only reports objects at least 5 s old, so the leak
        is from one of the programs since the scan before: leaks.json has them)."""
        from fuzz.report import parse

        vm = self.backend.vm  # type: ignore[attr-defined]
        text = vm.scan_leaks()
        self.leak_scans += 1
        self.last_leak_scan = time.monotonic()
        progs, self.since_scan = self.since_scan, []
        for r in parse(text):
            f = findings.Finding(r.title, r.signature, "splat", detail="\n".join(r.text[:3])
                                 if isinstance(r.text, list) else str(r.text)[:300])
            if not progs:
                continue
            try:
                if self.store.record(f, progs[-1], text, self.manifest):
                    self.new_findings += 1
                    d = self.store.root / f.slug
                    atomic_write(d / "leaks.json", json.dumps(
                        {"note": "kmemleak reports objects 5 s or older: the leak is from one "
                         "of these programs (the last one is program.json)",
                         "programs": [p.to_json() for p in progs]}).encode())
            except OSError as e:  # a full disk: the next scan reports the leak again
                self.write_errors += 1
                self.warn(f"leak finding NOT written: {f.title}: {e.strerror or e}")
                continue
            self.findings_seen.add(f.signature)

    def walk_step(self) -> None:
        """One N of the systematic fault walk on a corpus program's op."""
        from fuzz.faults import Walker

        if self.walker is None:
            self.walker = Walker([self.corpus_dir, *self.walk_dirs],
                                 random.Random(self.worker * 7919 + 1))
        prog = self.walker.next_program()
        if prog is not None:
            self.walker.done(self._run(prog)[0])

    def record(self, out: differential.Outcome) -> None:
        log = findings.run_log(out)
        for ev in findings.attribute(out):
            self.record_one(ev, log)

    def record_one(self, ev: findings.Evidence, log: str) -> bool:
        f = ev.finding
        try:
            # the kernel's results too: `recheck` of a race or fault finding needs them
            new = self.store.record(f, ev.prog, log, self.manifest, ev.history, ev.results)
        except OSError as e:
            self.write_errors += 1
            self.warn(f"finding NOT written: {f.title}: {e.strerror or e}")
            if len(self.pending) < MAX_PENDING:
                self.pending.append(("finding", (ev, log)))
            return False
        if new:
            self.new_findings += 1
            print(f"wrote finding {f.slug}", file=sys.stderr, flush=True)
        (self.known_seen if f.known else self.findings_seen).add(f.signature)
        return True

    def retry_pending(self) -> None:
        todo, self.pending = self.pending, []
        for kind, item in todo:
            if kind == "corpus":
                self.add_to_corpus(item)
            else:
                self.record_one(*item)

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
        vm.agent_ns = dict.fromkeys(vm.agent_ns, 0)
        self.host_s = dict.fromkeys(self.host_s, 0.0)
        self.overlap_s = 0.0
        self.kind_s = {k: [0.0, 0.0] for k in KINDS}

    def write_stats(self, final: bool = False) -> None:
        if final:
            self.flush()  # the last program's comparison and findings
        self.join_corpus_write()  # the corpus count and write errors include it
        self.last_stats = time.monotonic()
        self._stats_programs = self.programs
        if self.pending:
            self.retry_pending()
        vm = getattr(self.backend, "vm", None)
        line = {"t": round(self.last_stats - self.started, 2), "worker": self.worker,
                "pid": os.getpid(), "programs": self.programs, "ops": self.ops,
                "edges": len(self.edges), "corpus": corpus.count(self.corpus_dir),
                "findings": len(self.findings_seen), "known_bugs": len(self.known_seen),
                "restarts": getattr(vm, "restarts", 0),
                "restart_s": round(getattr(vm, "restart_seconds", 0.0), 2),
                "boot_s": round(getattr(vm, "cold_boot_seconds", 0.0), 2),
                "exec_s": round(getattr(vm, "exec_seconds", 0.0), 2),
                "executor_s": {k: round(v / 1e9, 2)
                               for k, v in getattr(vm, "executor_ns", {}).items()},
                "agent_s": {k: round(v / 1e9, 2) for k, v in getattr(vm, "agent_ns", {}).items()},
                "host_s": {k: round(v, 2) for k, v in self.host_s.items()},
                # of the host's time, what it did while the guest ran the next program
                # (a pipelined worker: comparisons and findings), and how many
                "overlap_s": round(self.overlap_s, 2), "late_runs": self.late_runs,
                "late_compares": self.late_compares,
                "programs_by_kind": self.by_kind,
                "ms_by_kind": {k: {"guest": round(g / n * 1e3, 2), "model": round(m / n * 1e3, 2)}
                               for k, (g, m) in self.kind_s.items()
                               if (n := self.by_kind[k])},
                "edges_by_kind": {k: len(v) for k, v in self.kind_edges.items()},
                "fault_walks": getattr(self.walker, "walks", 0),
                "leak_scans": self.leak_scans,
                "fault_walk_runs": getattr(self.walker, "points", 0),
                "write_errors": self.write_errors, "final": final, **self.extra}
        if self.counts is not None:
            # boundary values generation and mutation drew so far (fuzz.prog.gen "edge: ...")
            edges = self.counts.edges()
            line["boundary"] = sum(edges.values())
            line["boundary_values"] = {k.removeprefix(EDGE): v for k, v in sorted(edges.items())}
        if self.import_latency:
            lat = sorted(self.import_latency)
            line.update(imported=self.imports, import_latency_p50_s=round(lat[len(lat) // 2], 3))
        try:
            logs.append_line(self.stats_path, json.dumps(line), STATS_MAX_BYTES)
            atomic_write(self.stats_path.with_suffix(".edges"),
                         array("Q", sorted(self.edges)).tobytes())
            for k, edges in self.kind_edges.items():
                atomic_write(self.stats_path.with_suffix(f".{k}.edges"),
                             array("Q", sorted(edges)).tobytes())
        except OSError as e:
            self.write_errors += 1
            self.warn(f"stats NOT written to {self.stats_path}: {e.strerror or e}")
