"""What a program's answer carries and what waiting for it costs, in one VM.

    .venv/bin/python bench/bench_channel.py [--programs N] [--kernel DIR]

For N generated programs, run in each KCOV mode the host uses (edges: every
program of a campaign; cmp: the atheris engine's hint re-runs; pc: the coverage
and fault tools), the response's bytes by section (fuzz.executor.runner
unpack_response: info, results, arena, pcs, captures, kmsg; mean and max), and
the host's wait per program split into the executor's own time (setup, calls,
teardown), the agent's outside fz_run (its kmsg reads apart) and the rest: the
channel both ways and the scheduling of qemu's and the host's threads. send_ms is
the guest's write of the answer, which mostly overlaps the host's work on it.
pc mode also counts the PCs of a program and how many of them are distinct.
edges_after_20ms_gap: the same with the host asleep (its cores free) for 20 ms
before each program, where a campaign's host works on the last answer.
ping_ms: the round trip of a PING echoing that many bytes (both ways), before and
after, as a scale for the bytes alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fuzz import channel, kernel  # noqa: E402
from fuzz.executor.encode import encode  # noqa: E402
from fuzz.executor.runner import unpack_response  # noqa: E402
from fuzz.executor.wire import KCOV_EDGES, KCOV_TRACE_CMP, KCOV_TRACE_PC, SECTIONS  # noqa: E402
from fuzz.prog.gen import generate  # noqa: E402
from fuzz.vm import VM, VMConfig  # noqa: E402

NAMES = ("info", "results", "arena", "pcs", "captures", "kmsg")
MODES = {"edges": KCOV_EDGES, "cmp": KCOV_TRACE_CMP, "pc": KCOV_TRACE_PC}


def ping_ms(vm: VM, sizes: tuple[int, ...] = (1, 4096, 16384, 65536, 262144),
            reps: int = 10) -> dict[int, float]:
    out = {}
    for size in sizes:
        times = []
        for _ in range(reps):
            t0 = time.monotonic()
            vm._send(channel.PING, b"x" * size)
            kind, back = vm._recv(30, "ping")
            times.append(time.monotonic() - t0)
            if kind != channel.PONG or len(back) != size:
                raise SystemExit(f"ping of {size} bytes came back as frame {kind}, "
                                 f"{len(back)} bytes")
        out[size] = round(statistics.median(times) * 1e3, 2)
    return out


def mode_figures(vm: VM, wires: list[bytes], mode: str, gap_s: float = 0.0) -> dict:
    sizes: dict[str, list[int]] = {k: [] for k in NAMES}
    parts: dict[str, list[float]] = {k: [] for k in ("waited", "executor", "agent", "kmsg",
                                                      "send")}
    pcs = []
    for wire in wires:
        time.sleep(gap_s)
        t0 = time.monotonic()
        vm._send(channel.EXEC, wire)
        kind, payload = vm._recv(120, "running a program")
        waited = time.monotonic() - t0
        if kind != channel.RESULT:
            raise SystemExit(f"frame {kind} instead of a result: {payload[:200]!r}")
        raw = unpack_response(payload)
        for k, n in zip(NAMES, SECTIONS.unpack_from(payload)):
            sizes[k].append(n)
        parts["waited"].append(waited * 1e3)
        parts["executor"].append((raw.setup_ns + raw.calls_ns + raw.teardown_ns) / 1e6)
        parts["agent"].append(raw.agent_ns / 1e6)
        parts["kmsg"].append(raw.kmsg_ns / 1e6)
        parts["send"].append(raw.send_ns / 1e6)
        if mode == "pc":
            words = memoryview(raw.pcs).cast("I")
            pcs.append((len(words), len(set(words))))
    mean = statistics.mean
    out: dict = {"bytes": {k: {"mean": round(mean(v)), "max": max(v)} for k, v in sizes.items()}}
    out["bytes"]["total"] = {"mean": round(sum(mean(v) for v in sizes.values()))}
    ms = {f"{k}_ms": round(mean(v), 2) for k, v in parts.items()}
    ms["channel_ms"] = round(ms["waited_ms"] - ms["executor_ms"] - ms["agent_ms"], 2)
    out.update(ms)
    if pcs:
        out["pcs_per_program"] = round(mean(a for a, _ in pcs))
        out["distinct_pcs_per_program"] = round(mean(b for _, b in pcs))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--programs", type=int, default=300)
    ap.add_argument("--kernel", type=Path)
    ap.add_argument("--gap-ms", type=int, default=20,
                    help="edges again with the host asleep this long before each program "
                         "(a campaign's host works about that long on each answer)")
    a = ap.parse_args()
    progs = [generate(s) for s in range(a.programs)]
    vm = VM(VMConfig(kernel=a.kernel or kernel.default_kernel()))
    out: dict = {"programs": a.programs}
    try:
        vm.start()
        out["ping_ms_before"] = ping_ms(vm)
        for name, mode in MODES.items():
            wires = [encode(p, kcov=True, kcov_mode=mode).wire for p in progs]
            out[name] = mode_figures(vm, wires, name)
            if name == "edges" and a.gap_ms:
                out[f"edges_after_{a.gap_ms}ms_gap"] = mode_figures(vm, wires, name,
                                                                   a.gap_ms / 1e3)
        out["ping_ms_after"] = ping_ms(vm)
    finally:
        vm.stop()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
