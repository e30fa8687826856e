"""What fault injection, threads and kmemleak cost, side by side in one run.

    .venv/bin/python bench/bench_faults.py [--kernel DIR] [--programs N] [--rounds R]

One VM at a time, the configurations interleaved R times on the same programs
(the machine is shared: read the ratios):
- cpus=1 against cpus=2: programs/s of generated programs (no threads), of the same
  programs with a race group in each, and how often two short racing IOAS_MAPs
  overlapped in time (the executor's timestamps);
- the same generated programs with one op's 1st fault point failed (the arming:
  two writes and a read of fail-nth around the call) against none;
- kmemleak=on against off: start time, programs/s, and one scan's seconds.
Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fuzz import kernel, uapi  # noqa: E402
from fuzz.backend import VMBackend  # noqa: E402
from fuzz.prog import Buffer, BufPtr, Op, Program, Ref  # noqa: E402
from fuzz.prog.edits import repair_groups  # noqa: E402
from fuzz.prog.gen import generate  # noqa: E402
from fuzz.vm import VMConfig  # noqa: E402

RW = uapi.IOMMU_IOAS_MAP_READABLE | uapi.IOMMU_IOAS_MAP_WRITEABLE


def with_race(p: Program, rng: random.Random) -> Program:
    """The program with its last two to four ops made a race group on distinct threads."""
    q = Program.loads(p.dumps())
    n = min(len(q.ops), rng.randint(2, 4))
    for t, op in enumerate(q.ops[-n:]):
        op.thread, op.barrier = t, 1
    return repair_groups(q)


def with_fault(p: Program, rng: random.Random) -> Program:
    q = Program.loads(p.dumps())
    q.ops[rng.randrange(len(q.ops))].fail_nth = 1
    return q


def short_race() -> Program:
    ioas = Ref(0, "out_ioas_id")
    m = {"ioas_id": ioas, "user_va": BufPtr(0), "length": 1 << 16, "flags": RW}
    return Program([Op("IOAS_ALLOC"), Op("TEST_MOCK_DOMAIN", {"id": ioas}),
                    Op("IOAS_MAP", dict(m), thread=1, barrier=1),
                    Op("IOAS_MAP", dict(m), barrier=1)], [Buffer(1 << 16)])


def rate(be: VMBackend, progs: list[Program]) -> float:
    t0 = time.monotonic()
    for p in progs:
        be.run(p)
    return len(progs) / (time.monotonic() - t0)


def overlap(be: VMBackend, runs: int) -> float:
    prog, hit = short_race(), 0
    for _ in range(runs):
        a, b = be.run(prog).results[2:4]
        hit += a.t_start < b.t_end and b.t_start < a.t_end
    return hit / runs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--kernel", type=Path)
    ap.add_argument("--programs", type=int, default=150)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    kdir = a.kernel or kernel.default_kernel()
    rng = random.Random(1)
    plain = [p for p in (generate(s) for s in range(a.programs * 2)) if len(p.ops) >= 2]
    plain = plain[:a.programs]
    raced = [with_race(p, rng) for p in plain]
    faulted = [with_fault(p, rng) for p in plain]
    got: dict[str, list[float]] = {}

    def add(k: str, v: float) -> None:
        got.setdefault(k, []).append(v)

    for _ in range(a.rounds):
        for cpus in (1, 2):
            be = VMBackend(kdir, VMConfig(kernel=kdir, cpus=cpus))
            try:
                rate(be, plain[:10])  # warm: the pool, the workers
                add(f"cpus{cpus}_plain", rate(be, plain))
                add(f"cpus{cpus}_raced", rate(be, raced))
                add(f"cpus{cpus}_overlap", overlap(be, 30))
                if cpus == 1:
                    add("faulted", rate(be, faulted))
                    add("unfaulted", rate(be, plain))
            finally:
                be.close()
        for leak in (False, True):
            t0 = time.monotonic()
            be = VMBackend(kdir, VMConfig(kernel=kdir, kmemleak=leak))
            add(f"kmemleak_{leak}_start_s", time.monotonic() - t0)
            try:
                rate(be, plain[:10])
                add(f"kmemleak_{leak}", rate(be, plain))
                if leak:
                    t0 = time.monotonic()
                    be.vm.scan_leaks()
                    add("kmemleak_scan_s", time.monotonic() - t0)
            finally:
                be.close()
    med = {k: round(statistics.median(v), 3) for k, v in got.items()}
    out = {"programs": len(plain), "rounds": a.rounds, "median": med,
           "ratios": {"cpus2_over_cpus1_plain": round(med["cpus2_plain"] / med["cpus1_plain"], 2),
                      "cpus2_over_cpus1_raced": round(med["cpus2_raced"] / med["cpus1_raced"], 2),
                      "faulted_over_unfaulted": round(med["faulted"] / med["unfaulted"], 2),
                      "kmemleak_on_over_off": round(med["kmemleak_True"] / med["kmemleak_False"],
                                                    2)},
           "all": {k: [round(x, 3) for x in v] for k, v in got.items()}}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
