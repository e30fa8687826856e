"""Reference model speed on the host, next to the kernel executor's, from one run.

    .venv/bin/python bench/bench_model.py [--programs N] [--kernel DIR] [--no-vm]

Runs the same generated programs through the model alone (host) and through the
VM (encode + guest executor + decode + model alongside), and prints ops/s of each.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fuzz.model import run_model  # noqa: E402
from fuzz.prog.gen import generate  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--programs", type=int, default=2000)
    ap.add_argument("--kernel", type=Path)
    ap.add_argument("--no-vm", action="store_true")
    a = ap.parse_args()
    progs = [generate(s) for s in range(a.programs)]
    nops = sum(len(p.ops) for p in progs)
    t0 = time.perf_counter()
    for p in progs:
        run_model(p)
    secs = time.perf_counter() - t0
    out: dict = {"programs": len(progs), "ops": nops,
                 "model_ops_per_s": round(nops / secs), "model_seconds": round(secs, 3)}
    if not a.no_vm:
        from fuzz import differential, kernel
        from fuzz.backend import VMBackend

        kdir = a.kernel or kernel.default_kernel()
        be = VMBackend(kdir)
        try:
            sub = progs[: min(len(progs), 500)]
            kops = sum(len(p.ops) for p in sub)
            t0 = time.perf_counter()
            for p in sub:
                be.run(p)
            ksecs = time.perf_counter() - t0
            t0 = time.perf_counter()
            for p in sub:
                differential.run(p, be)
            dsecs = time.perf_counter() - t0
        finally:
            be.close()
        out.update({"kernel_programs": len(sub), "kernel_ops_per_s": round(kops / ksecs),
                    "differential_ops_per_s": round(kops / dsecs),
                    "model_vs_kernel_speed": round((nops / secs) / (kops / ksecs), 1)})
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
