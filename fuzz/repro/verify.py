"""Checking a reproducer directory on a kernel: program.json through the executor,
repro.py with the guest's python and repro.c built on the host, each run in the VM."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fuzz.paths import REPO
from fuzz.prog import Program
from fuzz.prog.jsonio import InputError, read_json
from fuzz.prog.limits import MAX_HISTORY
from fuzz.repro.expect import Expectation
from fuzz.repro.walk import runs_of
from fuzz.result import OpResult, errno_name


@dataclass
class ReproDir:
    dir: Path
    exp: Expectation
    prog: Program
    history: list[Program] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)


def load_repro(d: Path) -> ReproDir:
    """A reproducer directory (fuzz.repro.write), every file checked; errors name
    the file (nothing is booted before this passed)."""
    d = Path(d)
    if not d.is_dir():
        raise InputError(f"{d}: no such reproducer directory")
    meta_path = d / "repro.json"
    if not meta_path.exists():
        raise InputError(f"{d}: not a reproducer directory (no repro.json; `iommufd-fuzz "
                         "minimize` writes them)")
    meta = read_json(meta_path)
    if not isinstance(meta, dict) or not isinstance(meta.get("expectation"), dict):
        raise InputError(f"{meta_path}: no expectation object")
    try:
        exp = Expectation.from_json(meta["expectation"])
    except (TypeError, ValueError) as e:
        raise InputError(f"{meta_path}: a damaged expectation: {e}") from None
    if exp.kind not in ("mismatch", "splat", "crash") or not isinstance(exp.signature, str) \
            or not isinstance(exp.title, str) or not isinstance(exp.keys, list):
        raise InputError(f"{meta_path}: a damaged expectation (kind {exp.kind!r})")
    if exp.kind == "mismatch" and not (isinstance(exp.op, int) and isinstance(exp.field, str)):
        raise InputError(f"{meta_path}: a mismatch expectation without its op and field")
    names = meta.get("history", [])
    if not isinstance(names, list) or len(names) > MAX_HISTORY or not all(
            isinstance(n, str) and re.fullmatch(r"history/\d{2,}\.json", n) for n in names):
        raise InputError(f"{meta_path}: 'history' must list history/NN.json files")
    for n in ("repro.py", "repro.c"):
        if not (d / n).is_file():
            raise InputError(f"{d / n}: missing")
    manifest = meta.get("manifest") or {}
    if not isinstance(manifest, dict):
        raise InputError(f"{meta_path}: 'manifest' must be an object")
    return ReproDir(d, exp, Program.load(d / "program.json"),
                    [Program.load(d / n) for n in names], manifest)


def expectation_of(d: Path) -> Expectation:
    return load_repro(d).exp


SETTLE_SECONDS = 1.0  # for deferred findings: time for work items and RCU callbacks to log


def settle(backend: Any) -> list[Any]:
    """The splats deferred work logs after a program's results went out: wait, then
    collect them with an empty program (the agent reads the log before it starts)."""
    time.sleep(SETTLE_SECONDS)
    return list(backend.run(Program()).reports)


def check_results(exp: Expectation, results: list[OpResult], reports: list[Any]) -> bool:
    """Does one executor run of program.json show the expectation?"""
    if exp.kind != "mismatch":
        return any(r.signature == exp.signature for r in reports)
    if exp.op is None or exp.op >= len(results):
        return False
    r = results[exp.op]
    if exp.field == "errno":
        return r.errno == exp.kernel and r.errno != exp.model
    if exp.field == "fault_errno":  # model: (errno without the fault, errnos with it)
        return r.injected and r.errno == exp.kernel and r.errno not in exp.model[1]
    if exp.field == "ret":
        return r.ret != exp.model
    got = r.out.get(exp.field or "")
    if isinstance(got, (bytes, bytearray)) or isinstance(exp.model, (bytes, bytearray)):
        return bytes(got or b"") != bytes(exp.model or b"")
    return got != exp.model


def _guest_python() -> str:
    return "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable


def _stage(d: Path) -> Path:
    """A fresh copy of the reproducer for the guest: its 9p mount caches file
    contents, so a rewritten repro.py at an old path might be read stale."""
    run = REPO / "workdir" / "repro-runs" / f"{d.name[:40]}-{time.time_ns()}"
    run.mkdir(parents=True)
    for n in ("repro.py", "repro.c", "program.json"):
        shutil.copy2(d / n, run / n)
    return run


def verify(d: Path, backend: Any, log: Callable[[str], None] | None = None
           ) -> dict[str, tuple[bool, str]]:
    """Run program.json through the executor, repro.py with the guest's python and
    repro.c built with gcc (on the host; the guest runs host binaries) on the VM's
    kernel. name -> (reproduced, how it was run + what it said)."""
    from fuzz.report import parse
    from fuzz.vm import GuestCrash

    rd = load_repro(d)
    exp, prog = rd.exp, rd.prog
    res: dict[str, tuple[bool, str]] = {}
    vm = getattr(backend, "vm", None)
    if rd.history and vm is None:
        raise InputError(f"{d}: a reproducer with history needs the VM backend")
    # a program with racing threads (its own or an earlier one's) need not show it every
    # time: run it as often as the reproducers run it and say how often it did
    runs = runs_of(prog, rd.history)
    hits = 0
    for k in range(runs):
        earlier = []
        if rd.history:  # the earlier programs first, on a clean kernel, as the finding ran
            vm.restart()
            earlier = [backend.run(h) for h in rd.history]
        ex = backend.run(prog)
        seen = [r for e in [*earlier, ex] for r in e.reports]
        if exp.deferred and exp.kind != "mismatch":
            seen += settle(backend)
        hits += check_results(exp, ex.results, seen)
        if not rd.history and ex.reports and not ex.crash and k < runs - 1 and vm is not None:
            vm.restart()  # a clean kernel for the next try (the last: below)
    ok = hits > 0
    got = ""
    if exp.kind == "mismatch" and exp.op is not None and exp.op < len(ex.results):
        r = ex.results[exp.op]
        got = f"errno {errno_name(r.errno)}" if exp.field in ("errno", "fault_errno") else \
            f"{exp.field}={r.out.get(exp.field or '', r.ret)!r}"[:120]
    elif ex.reports:
        got = "; ".join(r.title for r in ex.reports)
    what = "program.json" if not rd.history else \
        f"history/00..{len(rd.history) - 1:02d}.json, then program.json"
    rate = f" ({hits}/{runs} runs)" if runs > 1 else ""
    res["program.json"] = (ok, f"executor run of {what}{rate}: {got or ex.crash or 'nothing'}")
    if vm is not None and (rd.history or (ex.reports and not ex.crash)):
        vm.restart()  # the next form starts from a clean kernel too

    run = _stage(d)
    binary = run / "repro"
    cc = subprocess.run(["gcc", "-O1", "-o", str(binary), str(run / "repro.c")],
                        capture_output=True, text=True)
    py = _guest_python()
    # shown relative to the reproducer: the staged copy is byte-identical
    cmds: list[tuple[str, list[str] | None, str]] = [
        ("repro.py", [py, "-I", str(run / "repro.py")], f"{py} -I repro.py (in the guest)"),
        ("repro.c", [str(binary)] if cc.returncode == 0 else None,
         "gcc -O1 -o repro repro.c (host) && ./repro (in the guest)"),
    ]
    for name, argv, shown in cmds:
        if argv is None:
            res[name] = (False, f"{shown}: gcc failed: {cc.stderr.strip()[:500]}")
            continue
        try:
            out = backend.vm.run_command(argv, timeout=300)
        except GuestCrash as crash:
            reps = crash.reports
            hit = exp.kind != "mismatch" and (any(r.signature == exp.signature for r in reps)
                                              or exp.kind == "crash")
            res[name] = (hit, f"{shown}: guest crashed: {crash.what}")
            backend.vm.restart()
            continue
        lines = out.get("stdout", "").strip().splitlines()
        said = next((ln for ln in reversed(lines) if "REPRODUCED" in ln), lines[-1] if lines
                    else out.get("stderr", "").strip()[-300:])
        hit = out.get("rc") == 1 and any(ln.startswith("REPRODUCED:") for ln in lines)
        if exp.kind != "mismatch":
            hit = hit or any(r.signature == exp.signature for r in parse(out.get("kmsg", "")))
            if parse(out.get("kmsg", "")) and not rd.history:
                backend.vm.restart()
        if rd.history:
            backend.vm.restart()  # what this form left in the kernel must not help the next
        res[name] = (hit, f"{shown}: exit {out.get('rc')}: {said}")
        if log:
            log(f"{name}: {'REPRODUCED' if hit else 'not reproduced'} ({shown})")
    shutil.rmtree(run, ignore_errors=True)
    return res
