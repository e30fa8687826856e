"""Campaign throughput against the ceiling, and what KCOV feedback buys.

    .venv/bin/python bench/bench_campaign.py [--programs N] [--kernel DIR]

Runs two atheris workers side by side (one VM each), from an empty corpus with
the same seed: one with the kernel's KCOV edges fed to libFuzzer, one with that
feedback off. Prints programs/s and ops/s of the first next to the raw C-loop
ioctl rate measured in its own VM, and the kernel edges each reached after every
100 programs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fuzz import kernel  # noqa: E402


def worker(kdir: Path, work: Path, programs: int, feedback: bool, ceiling: int) -> list:
    argv = [sys.executable, "-m", "fuzz.engines.atheris_engine", "--kernel", str(kdir),
            "--corpus", str(work / "corpus"), "--findings", str(work / "findings"),
            "--stats", str(work / "stats.jsonl"), "--workdir", str(work),
            "--seconds", "100000", "--runs", str(programs), "--seed", "1"]
    if not feedback:
        argv.append("--no-feedback")
    if ceiling:
        argv += ["--ceiling-pairs", str(ceiling)]
    work.mkdir(parents=True, exist_ok=True)
    return [subprocess.Popen(argv, stdout=open(work / "worker.log", "wb"),
                             stderr=subprocess.STDOUT), work]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--programs", type=int, default=600)
    ap.add_argument("--kernel", type=Path)
    a = ap.parse_args()
    kdir = a.kernel or kernel.default_kernel()
    root = Path(tempfile.mkdtemp(prefix="iommufd-bench-campaign-"))
    runs = {"feedback": worker(kdir, root / "feedback", a.programs, True, 2000),
            "no_feedback": worker(kdir, root / "no_feedback", a.programs, False, 0)}
    for p, _ in runs.values():
        p.wait()
    out: dict = {"programs": a.programs}
    curves = {}
    for name, (_, work) in runs.items():
        rows = [json.loads(x) for x in (work / "stats.jsonl").read_text().splitlines()]
        curves[name] = {r["programs"]: r["edges"] for r in rows if r["programs"] % 100 == 0}
        last = rows[-1]
        out[name] = {"edges": last["edges"],
                     "programs_per_s": round(last["programs"] / last["t"], 2),
                     "ops_per_s": round(last["ops"] / last["t"], 1)}
        if "c_loop_ops_per_s" in last:
            out["c_loop_ops_per_s_same_vm"] = last["c_loop_ops_per_s"]
    out["edges_after_programs"] = {
        n: {"feedback": curves["feedback"].get(n), "no_feedback": curves["no_feedback"].get(n)}
        for n in sorted(set(curves["feedback"]) | set(curves["no_feedback"]))}
    if "c_loop_ops_per_s_same_vm" in out:
        out["campaign_ops_vs_c_loop"] = round(out["feedback"]["ops_per_s"]
                                              / out["c_loop_ops_per_s_same_vm"], 3)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
