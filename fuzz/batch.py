"""Many generated programs through the oracle on several VMs: how often do the
model and the kernel agree, and where not? Each disagreement is recorded as a
finding (deduplicated by signature) with the first program that showed it."""

from __future__ import annotations

import multiprocessing as mp
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from fuzz import differential, findings, kernel
from fuzz.backend import VMBackend
from fuzz.prog.gen import generate


@dataclass
class BatchResult:
    programs: int = 0
    ops: int = 0
    agreed: int = 0
    unsure_ops: int = 0
    crashes: int = 0
    seconds: float = 0.0
    signatures: Counter = field(default_factory=Counter)
    examples: dict[str, int] = field(default_factory=dict)  # signature -> first seed
    # the op mix: calls per op, how many the kernel ran successfully, how many the
    # model could not predict
    op_calls: Counter = field(default_factory=Counter)
    op_ok: Counter = field(default_factory=Counter)
    op_unsure: Counter = field(default_factory=Counter)

    def add(self, other: BatchResult) -> None:
        for k in ("programs", "ops", "agreed", "unsure_ops", "crashes"):
            setattr(self, k, getattr(self, k) + getattr(other, k))
        self.seconds = max(self.seconds, other.seconds)
        for k in ("signatures", "op_calls", "op_ok", "op_unsure"):
            getattr(self, k).update(getattr(other, k))
        for s, e in other.examples.items():
            self.examples.setdefault(s, e)


def _work(args: tuple[Path, Path, list[int], int]) -> BatchResult:
    kdir, fdir, seeds, max_ops = args
    store = findings.FindingStore(fdir)
    manifest = kernel.manifest(kdir) if (kdir / "manifest.json").exists() else {}
    res = BatchResult()
    be = VMBackend(kdir)
    t0 = time.monotonic()
    try:
        for seed in seeds:
            prog = generate(seed, max_ops)
            out = differential.run(prog, be)
            res.programs += 1
            res.ops += len(prog.ops)
            res.unsure_ops += len(out.unsure)
            res.op_calls.update(op.name for op in prog.ops)
            res.op_ok.update(op.name for op, r in zip(prog.ops, out.execution.results)
                             if r.errno == 0)
            res.op_unsure.update(u.name for u in out.unsure)
            res.crashes += bool(out.execution.crash)
            if not out.failed:
                res.agreed += 1
                continue
            for f, _new in store.record_outcome(out, manifest):
                res.signatures[f.signature] += 1
                res.examples.setdefault(f.signature, seed)
    finally:
        be.close()
    res.seconds = time.monotonic() - t0
    return res


def run_batch(kdir: Path, fdir: Path, seed: int, count: int, vms: int,
              max_ops: int = 24) -> BatchResult:
    seeds = list(range(seed, seed + count))
    shards = [(kdir, fdir, seeds[k::vms], max_ops) for k in range(vms)]
    with mp.get_context("spawn").Pool(vms) as pool:
        parts = pool.map(_work, shards)
    total = BatchResult()
    for p in parts:
        total.add(p)
    return total
