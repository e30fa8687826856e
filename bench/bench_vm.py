"""Start time and guest-agent throughput against a plain C loop, in one VM.

    .venv/bin/python bench/bench_vm.py [--kernel DIR] [--pairs N]

Prints start seconds (a snapshot restore once one exists), then ops/s of the
same IOAS_MAP (fixed IOVA) + IOAS_UNMAP pairs three ways: the C loop
(bench/c_loop.c, the ceiling), the agent with KCOV collecting every op's PCs
(what fuzzing uses), and the agent with KCOV off.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fuzz import kernel  # noqa: E402
from fuzz.engines.common import build_c_loop  # noqa: E402
from fuzz.executor.encode import encode  # noqa: E402
from fuzz.executor.wire import KCOV_EDGES, RESULT  # noqa: E402
from fuzz.prog import Buffer, BufPtr, Op, Program, Ref  # noqa: E402
from fuzz.vm import VM, VMConfig  # noqa: E402

IOVA = 1 << 30


def map_unmap_program(pairs: int, length: int) -> Program:
    ops = [Op("IOAS_ALLOC")]
    ioas = Ref(0, "out_ioas_id")
    for _ in range(pairs):
        ops.append(Op("IOAS_MAP", {"ioas_id": ioas, "user_va": BufPtr(0), "length": length,
                                   "iova": IOVA, "flags": 7}))
        ops.append(Op("IOAS_UNMAP", {"ioas_id": ioas, "iova": IOVA, "length": length}))
    return Program(ops, [Buffer(max(length, 4096), "anon")])


def agent_rate(vm: VM, prog: Program, kcov: bool) -> dict:
    # KCOV_EDGES is what campaigns use: the executor dedups edges in the guest
    enc = encode(prog, kcov=kcov, kcov_mode=KCOV_EDGES)
    t0 = time.monotonic()
    raw = vm.execute(enc.wire, timeout=600)
    secs = time.monotonic() - t0
    n = len(prog.ops)
    fails = sum(1 for i in range(n) if RESULT.unpack_from(raw.results, i * RESULT.size)[0])
    return {"ops": n, "seconds": round(secs, 4), "ops_per_s": round(n / secs, 1),
            "executor_ops_per_s": round(n / (raw.calls_ns / 1e9), 1),
            "failures": fails, "distinct_edges": len(raw.pcs) // 8}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--kernel", type=Path)
    ap.add_argument("--pairs", type=int, default=5000)
    ap.add_argument("--length", type=int, default=4096)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    kdir = a.kernel or kernel.default_kernel()
    exe = build_c_loop()
    with VM(VMConfig(kernel=kdir)) as vm:
        out: dict = {"start_seconds": round(vm.boot_seconds, 2), "restored": vm.restored,
                     "kernel": vm.hello.get("uname")}
        prog = map_unmap_program(a.pairs, a.length)
        agent_rate(vm, map_unmap_program(50, a.length), kcov=True)  # warm caches
        # Interleaved and repeated, best of each kept: the machine's other load (and
        # TCG's translation cache warming up) moves single measurements a lot.
        for _ in range(a.repeat):
            for kcov in (False, True):
                tag = "kcov" if kcov else "no_kcov"
                r = vm.run_command([str(exe), str(a.pairs), str(a.length)]
                                   + (["kcov"] if kcov else []), timeout=600)
                if r["rc"] != 0:
                    raise SystemExit(f"c_loop failed in the guest: {r}")
                c = json.loads(r["stdout"])
                g = agent_rate(vm, prog, kcov=kcov)
                if c["ops_per_s"] > out.get(f"c_loop_{tag}", {}).get("ops_per_s", 0):
                    out[f"c_loop_{tag}"] = c
                if g["ops_per_s"] > out.get(f"agent_{tag}", {}).get("ops_per_s", 0):
                    out[f"agent_{tag}"] = g
        for tag in ("no_kcov", "kcov"):
            out[f"ratio_agent_vs_c_{tag}"] = round(
                out[f"agent_{tag}"]["ops_per_s"] / out[f"c_loop_{tag}"]["ops_per_s"], 3)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
