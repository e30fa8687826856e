"""A campaign: N engine workers (one VM each), a live status line, a stats log.

The manager owns no VM itself. It starts the workers, merges their stats every
couple of seconds into one status line and one JSON line in stats.jsonl, and
stops them at the time limit or on Ctrl-C. Workers write corpus entries and
findings atomically, so a killed campaign resumes from what is on disk: at the
start, what a killed write left behind is removed and corrupt corpus files are
quarantined (fuzz.corpus). Workers die with the manager (PR_SET_PDEATHSIG), their
VMs with them. Logs are kept to a bounded size (fuzz.logs), so a campaign of days
uses the disk a campaign of minutes does, plus its corpus and findings.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from array import array
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from fuzz import corpus, logs
from fuzz.findings import FindingStore
from fuzz.inputs import duration
from fuzz.prog.ir import remove_stale_temps
from fuzz.vm import die_with_parent

STATS_MAX_BYTES = 128 << 10  # the campaign's stats.jsonl is thinned past this
WORKER_LOG_MAX_BYTES = 256 << 10  # worker.log rotates to worker.log.1 past this


@dataclass
class CampaignConfig:
    kernel: Path
    corpus: Path
    findings: Path
    workdir: Path
    engine: str = "atheris"
    seconds: int = 600
    vms: int = 1
    runs: int = -1
    feedback: bool = True
    seeds: tuple[Path, ...] = ()
    quiet: bool = False
    program_timeout: float = 120.0  # a program that has not answered by then is a hang
    cpus: int = 1  # vCPUs per VM (racing threads overlap for real on 2)
    kmemleak: bool = False  # boot with kmemleak=on and scan every leak_scan_s
    leak_scan_s: float = 120.0
    fault_walk_every: int = 8  # a step of the systematic fault walk every N programs (0: off)
    schedule: bool = True  # mutations inject faults and make ops race (False: for comparison)


def parse_duration(s: str) -> int:
    """Seconds from "90", "90s", "10m", "2h", "1d"; fuzz.inputs.InputError otherwise."""
    return duration(s)


def _worker_argv(cfg: CampaignConfig, k: int) -> list[str]:
    wd = cfg.workdir / f"worker-{k}"
    common = ["--kernel", str(cfg.kernel), "--corpus", str(cfg.corpus),
              "--findings", str(cfg.findings), "--stats", str(wd / "stats.jsonl"),
              "--workdir", str(wd), "--seconds", str(cfg.seconds), "--worker", str(k),
              "--seed", str(1000 + k), "--timeout", str(cfg.program_timeout),
              "--cpus", str(cfg.cpus), "--fault-walk-every", str(cfg.fault_walk_every),
              "--leak-scan-s", str(cfg.leak_scan_s if cfg.kmemleak else 0)]
    if cfg.kmemleak:
        common.append("--kmemleak")
    if not cfg.schedule:
        common.append("--no-schedule")
    for s in cfg.seeds:
        common += ["--seeds", str(s)]
    if cfg.engine == "atheris":
        argv = [sys.executable, "-m", "fuzz.engines.atheris_engine", *common,
                "--runs", str(cfg.runs)]
        if not cfg.feedback:
            argv.append("--no-feedback")
        return argv
    return [sys.executable, "-m", "fuzz.engines.hypothesis_engine", *common]


def _union_edges(cfg: CampaignConfig, kind: str = "") -> set[int]:
    """The workers' edges; of one kind of program (fuzz.engines.common.KINDS) if given."""
    out: set[int] = set()
    for p in cfg.workdir.glob(f"worker-*/stats{'.' + kind if kind else ''}.edges"):
        try:
            a = array("Q")
            a.frombytes(p.read_bytes())
            out.update(a)
        except (OSError, ValueError):
            continue
    return out


def append_stats(path: Path, s: dict) -> None:
    try:
        logs.append_line(path, json.dumps(s), STATS_MAX_BYTES)
    except OSError as e:  # a full disk: the status line goes on, the log misses a line
        print(f"campaign: stats line not written to {path}: {e.strerror or e}", file=sys.stderr)


def status(cfg: CampaignConfig, t0: float) -> dict:
    per = [logs.last_json(p) for p in sorted(cfg.workdir.glob("worker-*/stats.jsonl"))]
    el = time.monotonic() - t0
    programs = sum(s.get("programs", 0) for s in per)
    ops = sum(s.get("ops", 0) for s in per)
    edges = _union_edges(cfg)
    s = {"t": round(el, 1), "programs": programs, "ops": ops,
         "programs_per_s": round(programs / el, 2) if el else 0,
         "execs_per_s": round(ops / el, 1) if el else 0,
         "edges": len(edges), "corpus": corpus.count(cfg.corpus),
         **_finding_counts(cfg),
         "vm_restarts": sum(s.get("restarts", 0) for s in per),
         "restart_s": round(sum(s.get("restart_s", 0.0) for s in per), 1),
         "workers": len(per)}
    boundary: Counter = Counter()  # boundary values the workers' generators drew
    for w in per:
        boundary.update(w.get("boundary_values", {}))
    s["boundary"] = sum(boundary.values())
    s["boundary_values"] = dict(sorted(boundary.items()))
    from fuzz.engines.common import KINDS

    s["programs_by_kind"] = {k: sum(w.get("programs_by_kind", {}).get(k, 0) for w in per)
                             for k in KINDS}
    kinds = {k: _union_edges(cfg, k) for k in KINDS}
    s["edges_by_kind"] = {k: len(v) for k, v in kinds.items()}
    # edges only programs with faults (threads) reached: what they add to the others
    s["edges_only_fault"] = len(kinds["fault"] - kinds["thread"] - kinds["plain"])
    s["edges_only_thread"] = len(kinds["thread"] - kinds["fault"] - kinds["plain"])
    s["fault_walks"] = sum(w.get("fault_walks", 0) for w in per)
    lm = _line_map(cfg)
    if lm is not None:
        from fuzz.coverage import edge_pcs

        s["iommufd_lines"] = lm.reached_count(edge_pcs(edges))
        s["iommufd_lines_total"] = lm.reachable_count()
        s["iommufd_lines_pct"] = round(100 * s["iommufd_lines"] / max(1, lm.reachable_count()), 2)
    return s


def _finding_counts(cfg: CampaignConfig) -> dict:
    """New findings, and known kernel bugs (fuzz.known) the campaign ran into again."""
    rows = FindingStore(cfg.findings).list()
    return {"findings": sum(1 for f, _ in rows if not f.known),
            "known_bugs": sum(1 for f, _ in rows if f.known)}


def _line_map(cfg: CampaignConfig):  # type: ignore[no-untyped-def]
    """The kernel's KCOV line map (built once per kernel build, then cached), or
    None if this kernel has none: the campaign runs on without line figures."""
    from fuzz.coverage.lines import LineMapError, line_map

    try:
        return line_map(cfg.kernel)
    except (LineMapError, OSError) as e:
        if not getattr(_line_map, "warned", False):
            print(f"campaign: no iommufd line figures: {e}", file=sys.stderr)
            _line_map.warned = True  # type: ignore[attr-defined]
        return None


def iommufd_edges(cfg: CampaignConfig) -> int:
    """Edges whose destination lies in drivers/iommu/iommufd/ (addr2line on vmlinux)."""
    from fuzz.coverage import Symbolizer
    from fuzz.coverage import iommufd_edges as count

    if not (cfg.kernel / "vmlinux").exists():
        return -1
    return count(Symbolizer(cfg.kernel), _union_edges(cfg))


def status_line(s: dict) -> str:
    t = int(s["t"])
    lines = f"iommufd lines {s['iommufd_lines_pct']:.1f}% " if "iommufd_lines_pct" in s else ""
    cluster = f"nodes {s['nodes']} workers {s['workers']} " if "nodes" in s else ""
    return (f"[{t // 3600:02d}:{t // 60 % 60:02d}:{t % 60:02d}] {cluster}"
            f"execs/s {s['execs_per_s']:.0f} "
            f"programs/s {s['programs_per_s']:.1f} edges {s['edges']} {lines}"
            f"corpus {s['corpus']} findings {s['findings']} known {s.get('known_bugs', 0)} "
            f"restarts {s['vm_restarts']} "
            f"({s['restart_s']:.0f}s)")


def kinds_line(s: dict) -> str:
    """Programs with injected faults and with threads: their share and their edges."""
    n = max(1, s.get("programs", 0))
    pk, ek = s.get("programs_by_kind", {}), s.get("edges_by_kind", {})
    return (f"programs with injected faults {pk.get('fault', 0)} "
            f"({100 * pk.get('fault', 0) / n:.0f}%, {ek.get('fault', 0)} edges, "
            f"{s.get('edges_only_fault', 0)} no other program reached; "
            f"{s.get('fault_walks', 0)} ops walked), with threads {pk.get('thread', 0)} "
            f"({100 * pk.get('thread', 0) / n:.0f}%, {ek.get('thread', 0)} edges, "
            f"{s.get('edges_only_thread', 0)} only there), neither {pk.get('plain', 0)} "
            f"({ek.get('plain', 0)} edges)")


def prepare(corpus_dir: Path, findings: Path, workdir: Path, seeds: tuple[Path, ...] = ()
            ) -> None:
    """Before any worker starts (and before the kernel is built): what killed writes
    left is removed, corrupt corpus files (and libFuzzer units a kill cut short) are
    named and quarantined."""
    for d in (workdir, corpus_dir, findings):
        d.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(findings, recursive=True)
    remove_stale_temps(workdir, recursive=True)
    for d in (corpus_dir, *seeds):
        corpus.load(d)  # before libFuzzer sees them
    for d in sorted(workdir.glob("worker-*/libfuzzer-corpus")):
        corpus.check_units(d)


def run_campaign(cfg: CampaignConfig, prepared: bool = False) -> dict:
    if not prepared:
        prepare(cfg.corpus, cfg.findings, cfg.workdir, cfg.seeds)
    stats_log = cfg.workdir / "stats.jsonl"
    if stats_log.exists():  # the last campaign's, kept beside (t starts at 0 again)
        stats_log.replace(stats_log.with_name("stats.jsonl.1"))
    _line_map(cfg)  # built before the clock starts (seconds, once per kernel build)
    procs: list[subprocess.Popen[bytes]] = []
    t0 = time.monotonic()
    for k in range(cfg.vms):
        wd = cfg.workdir / f"worker-{k}"
        wd.mkdir(parents=True, exist_ok=True)
        (wd / "stats.jsonl").unlink(missing_ok=True)
        (wd / "stats.edges").unlink(missing_ok=True)
        logs.rotate(wd / "worker.log", 0)  # the last campaign's log is worker.log.1
        log = open(wd / "worker.log", "ab")
        procs.append(subprocess.Popen(_worker_argv(cfg, k), stdout=log, stderr=log,
                                      stdin=subprocess.DEVNULL, preexec_fn=die_with_parent))
    tty = sys.stdout.isatty() and not cfg.quiet
    last_print = 0.0
    s: dict = {}
    try:
        while any(p.poll() is None for p in procs):
            time.sleep(2)
            s = status(cfg, t0)
            append_stats(stats_log, s)
            for k in range(cfg.vms):
                logs.rotate(cfg.workdir / f"worker-{k}" / "worker.log", WORKER_LOG_MAX_BYTES)
            if tty:
                print("\r" + status_line(s), end="", flush=True)
            elif not cfg.quiet and time.monotonic() - last_print > 30:
                print(status_line(s), flush=True)
                last_print = time.monotonic()
            if time.monotonic() - t0 > cfg.seconds + 180:
                break  # a worker that overstays its time is stopped below
    except KeyboardInterrupt:
        print("\ninterrupted: stopping workers (corpus and findings are on disk)")
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 20
        for p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    s = status(cfg, t0)
    s["iommufd_edges"] = iommufd_edges(cfg)
    append_stats(stats_log, s)
    if not cfg.quiet:
        print(("\n" if tty else "") + status_line(s))
        print(f"kernel edges: {s['edges']} in all, {s['iommufd_edges']} in drivers/iommu/iommufd/")
        print(kinds_line(s))
        if "iommufd_lines" in s:
            print(f"iommufd lines reached by the ops: {s['iommufd_lines']}/"
                  f"{s['iommufd_lines_total']} ({s['iommufd_lines_pct']:.1f}%; "
                  "`iommufd-fuzz coverage` adds the fd teardown, per file)")
    bad = [k for k, p in enumerate(procs) if p.returncode not in (0, -2, 130, None)
           and s.get("programs", 0) == 0]
    if bad:
        tail = (cfg.workdir / f"worker-{bad[0]}" / "worker.log").read_text(errors="replace")
        raise RuntimeError(f"worker(s) {bad} failed before running anything; "
                           f"worker-{bad[0]}/worker.log ends:\n{tail[-3000:]}")
    return s
