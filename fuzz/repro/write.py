"""The reproducer directory: repro.py, repro.c, report.txt, program.json,
history/NN.json (the programs to run before it, for a finding that needs history)
and repro.json (what the checks compare). The directory is written whole and
swapped into place (fuzz.prog.ir.atomic_dir): a rewrite killed half-way leaves the
old reproducer, never new files beside old ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fuzz.prog import Program, atomic_write
from fuzz.prog.ir import atomic_dir
from fuzz.repro.expect import Expectation, show
from fuzz.repro.render_c import emit_c
from fuzz.repro.render_py import emit_python
from fuzz.result import OpResult


def report_text(exp: Expectation, prog: Program, manifest: dict[str, Any], *,
                splat_text: str = "", stats: dict[str, Any] | None = None,
                verified: list[str] | None = None, history: list[Program] | None = None
                ) -> str:
    s = stats or {}
    L = [f"Title:      {exp.title}", f"Signature:  {exp.signature}", f"Kind:       {exp.kind}",
         f"Kernel:     {manifest.get('kernel_version', '?')}"
         + (f" ({manifest['source']})" if manifest.get("source") else ""),
         f"Config:     sha256 {manifest.get('config_sha256', '?')}", ""]
    if exp.kind == "mismatch":
        L += ["Mismatch between the kernel and the reference model:",
              f"  op {exp.op} ({exp.name}), field {exp.field}",
              f"  kernel: {show(exp.field, exp.kernel)}",
              f"  model:  {show(exp.field, exp.model)}", ""]
    if splat_text:
        L += ["Kernel log:", *("  " + ln for ln in splat_text.rstrip().splitlines()), ""]
    if s:
        L += ["Minimization:",
              f"  ops {s.get('original_ops')} -> {s.get('minimized_ops')}, buffers "
              f"{s.get('original_buffers')} -> {s.get('minimized_buffers')}, "
              f"{s.get('runs')} kernel runs, {s.get('seconds', 0):.0f} s",
              f"  reproduction rate of the original: {s.get('hits')}/{s.get('rate_runs')}"
              f" ({100 * s.get('rate', 0):.0f}%); each candidate tried up to "
              f"{s.get('tries')} time(s)", ""]
    for k, h in enumerate(history or []):
        L += [f"Run before it (history/{k:02d}.json), each on its own fresh /dev/iommu:",
              *("  " + ln for ln in h.dumps().splitlines()), ""]
    if history:
        L += [f"The finding needs these {len(history)} earlier program(s) of the same boot: "
              "alone, the program below", "does not reproduce it (found by replaying what the "
              "fuzzer's VM ran before it).", ""]
    L += ["Program (minimized):", *("  " + ln for ln in prog.dumps().splitlines()), ""]
    L += ["Reproduce (as root, kernel with CONFIG_IOMMUFD_TEST=y):",
          "  python3 repro.py", "  gcc repro.c -o repro && ./repro",
          "Either prints REPRODUCED: <signature> and exits 1 when the finding reproduces.", ""]
    if verified:
        L += ["Verified:", *("  " + ln for ln in verified), ""]
    return "\n".join(L)


def write_reproducer(out_dir: Path, prog: Program, exp: Expectation,
                     manifest: dict[str, Any], *, expected: list[OpResult] | None = None,
                     splat_text: str = "", stats: dict[str, Any] | None = None,
                     verified: list[str] | None = None,
                     history: list[Program] | None = None) -> Path:
    """repro.py, repro.c, report.txt, program.json, history/NN.json and repro.json
    (what the checks compare), the directory swapped into place as a whole."""
    history = history or []
    with atomic_dir(out_dir) as d:
        atomic_write(d / "program.json", prog.dumps().encode())
        names = []
        for k, h in enumerate(history):
            names.append(f"history/{k:02d}.json")
            atomic_write(d / names[-1], h.dumps().encode())
        atomic_write(d / "repro.py", emit_python(prog, exp, expected, history).encode(), 0o755)
        atomic_write(d / "repro.c", emit_c(prog, exp, expected, history).encode())
        meta = {"expectation": exp.to_json(), "manifest": manifest, "stats": stats or {},
                "splat_text": splat_text, "history": names}
        atomic_write(d / "repro.json", (json.dumps(meta, indent=1) + "\n").encode())
        atomic_write(d / "report.txt", report_text(
            exp, prog, manifest, splat_text=splat_text, stats=stats, verified=verified,
            history=history).encode())
    return out_dir
