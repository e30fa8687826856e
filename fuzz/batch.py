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
        total.programs += p.programs
        total.ops += p.ops
        total.agreed += p.agreed
        total.unsure_ops += p.unsure_ops
        total.crashes += p.crashes
        total.seconds = max(total.seconds, p.seconds)
        total.signatures.update(p.signatures)
        for s, e in p.examples.items():
            total.examples.setdefault(s, e)
    return total
