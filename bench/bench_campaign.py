"""Campaign throughput against the ceiling, restart and boot times, in one run.

    .venv/bin/python bench/bench_campaign.py [--programs N] [--kernel DIR] [--json]
                                             [--feedback-curves] [--campaign-programs N]
                                             [--baseline DIR]
    .venv/bin/python bench/bench_campaign.py --compare-repo DIR [--rounds R]
                                             [--campaign-programs N] [--json]
    .venv/bin/python bench/bench_campaign.py --entropic-ab [--entropic-flag -entropic=0]
                                             [--rounds R] [--campaign-programs N] [--json]

One VM at a time (the machine is shared), all in one run, so the figures are
ratios measured side by side:
- boot_s: a cold boot to a ready agent (snapshots off);
- restart_s: a guest killed by an oops (LKDTM BUG) back to a ready executor, median
  of 3, each followed by a program whose results are checked (restore_s: a start
  from the snapshot with nothing to clean up);
- pool: the same generated programs with the executor's buffer pool off and on,
  interleaved rounds in one VM;
- the campaign: an atheris worker (KCOV edges feedback, empty corpus) whose VM
  first runs the raw C loop (bench/c_loop.c, MAP+UNMAP pairs with KCOV), then
  --programs generated and mutated programs: programs_per_s, ops_per_s,
  c_loop_ops_per_s and ratio (campaign ioctls/s over the C loop's).
- campaign_path: a worker started exactly as `iommufd-fuzz fuzz` starts one
  (fuzz.campaign's argv: the seeds, injected faults and threads, the fault walk),
  --campaign-programs programs through the model and the comparison of every op:
  programs_per_s, and ms_per_program split into the guest's parts and the host's
  (model: stepping the model and comparing; mutate: the mutator; the rest);
  --baseline DIR runs the same worker from another checkout (DIR with its own
  fuzz/, e.g. `git archive main | tar -x -C DIR`) right before it, and
  campaign_path_speedup is the ratio of the two; ms_by_kind: the guest's and the
  model's ms per program with injected faults, with threads and with neither (a
  program with both counts in both). ratio there: its ioctls/s over the C loop's.
- guest_ceiling (--no-guest-ceiling: skipped): every program the campaign_path worker
  sent, run again in a fresh VM back to back, --ceiling-batch to a round trip (the
  agent's EXEC_BATCH; each on its own /dev/iommu, KCOV on) with no host work:
  guest_ceiling_programs_per_s, its ops/s and its ratio to the C loop run in that VM,
  beside the campaign's programs_per_s; one_at_a_time_programs_per_s (one EXEC each,
  nothing else on the host), programs_per_s_by_batch, empty_program_per_s (open
  /dev/iommu, one IOAS_ALLOC, close), the guest's ms per program by part and ms_by_op
  (each call's time, by op name), and sample_check (results of a batch against a
  normal run's, beside two normal runs').
--only-campaign-path skips the sections before the campaign_path worker.
--entropic-ab runs only the campaign-path worker with -entropic=1 and with --entropic-flag
(libFuzzer's), alternating --rounds times: programs/s, edges after the same programs
and after the same time.
--compare-repo DIR runs only that worker, from DIR and from this checkout, alternating
--rounds times (same seed and programs), and prints each round's figures, the medians
and the speedup (host_overlapped: the host's work a pipelined worker did while the
guest ran the next program; late_runs, late_compares, model_replays: fuzz.engines.atheris_engine).
--feedback-curves adds a second worker with feedback off, alongside the first (two
VMs), and the kernel edges of each after every 100 programs. --campaign-without-pool
runs the campaign again afterwards with the buffer pool off.
--json prints one JSON object, else an indented one.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fuzz import kernel  # noqa: E402
from fuzz.backend import RECORD_ENV, VMBackend  # noqa: E402
from fuzz.executor.encode import encode  # noqa: E402
from fuzz.executor.wire import KCOV_EDGES  # noqa: E402
from fuzz.prog.gen import generate  # noqa: E402
from fuzz.smoke import check_results, smoke_program  # noqa: E402
from fuzz.vm import VM, GuestCrash, VMConfig  # noqa: E402

LKDTM = "/sys/kernel/debug/provoke-crash/DIRECT"


def worker(kdir: Path, work: Path, programs: int, feedback: bool, ceiling: int,
           pool: bool = True) -> list:
    argv = [sys.executable, "-m", "fuzz.engines.atheris_engine", "--kernel", str(kdir),
            "--corpus", str(work / "corpus"), "--findings", str(work / "findings"),
            "--stats", str(work / "stats.jsonl"), "--workdir", str(work),
            "--seconds", "100000", "--runs", str(programs), "--seed", "1"]
    if not feedback:
        argv.append("--no-feedback")
    if ceiling:
        argv += ["--ceiling-pairs", str(ceiling)]
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "IOMMUFD_FUZZ_POOL": "1" if pool else "0"}
    return [subprocess.Popen(argv, stdout=open(work / "worker.log", "wb"),
                             stderr=subprocess.STDOUT, env=env), work]


def campaign_worker(kdir: Path, work: Path, programs: int, repo: Path | None = None,
                    record: Path | None = None, extra: tuple[str, ...] = ()) -> dict:
    """A worker as `iommufd-fuzz fuzz` starts it (fuzz.campaign's argv, one VM), run for
    `programs` programs on a fresh corpus from corpus/seeds; from checkout `repo` if
    given; record: the file every program it sent goes to (fuzz.backend.RECORD_ENV);
    extra: more worker arguments. Its figures, from its last stats line (the clock
    starts once its VM is up)."""
    from fuzz.campaign import CampaignConfig, _worker_argv
    from fuzz.paths import REPO

    cfg = CampaignConfig(kernel=kdir, corpus=work / "corpus", findings=work / "findings",
                         workdir=work, seconds=100000, runs=programs,
                         seeds=(REPO / "corpus" / "seeds",))
    argv = [*_worker_argv(cfg, 0), *extra]
    (work / "worker-0").mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if record is not None:
        env[RECORD_ENV] = str(record)
    if repo is not None:  # `python -m` imports fuzz/ from the working directory first
        env["PYTHONPATH"] = str(repo)
    with open(work / "worker-0" / "worker.log", "wb") as log:
        subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                       cwd=repo or REPO, check=True)
    last = json.loads((work / "worker-0" / "stats.jsonl").read_text().splitlines()[-1])
    return figures(last)


def figures(last: dict) -> dict:
    """programs/s and where a program's time went, from a worker's last stats line."""
    n = max(last["programs"], 1)
    out = {"programs": last["programs"], "programs_per_s": round(last["programs"] / last["t"], 2),
           "ops_per_s": round(last["ops"] / last["t"], 1),
           "ops_per_program": round(last["ops"] / n, 1),
           # the share of the worker's time spent waiting for the guest's results
           "guest_share": round(last.get("exec_s", 0) / last["t"], 3)}
    # per program (the CMP-mode re-runs included): the executor's parts, the rest of
    # the wait for results (agent, channel), and the host's own work by part
    ex = last.get("executor_s", {})
    per = {k: round(v / n * 1e3, 2) for k, v in ex.items()}
    waited = last.get("exec_s", 0)
    per["agent_and_channel"] = round((waited - sum(ex.values())) / n * 1e3, 2)
    ag = last.get("agent_s")
    if ag:  # the agent's own part of it (the frame read, kmsg, the response's layout)
        per["agent"] = round(ag["agent"] / n * 1e3, 2)
        per["agent_kmsg"] = round(ag["kmsg"] / n * 1e3, 2)
        per["channel"] = round(per["agent_and_channel"] - per["agent"], 2)
        # the guest's write of the answer; it overlaps the host's work on the answer
        per["agent_send"] = round(ag["send"] / n * 1e3, 2)
    host = last["t"] - waited
    per["host"] = round(host / n * 1e3, 2)
    parts = last.get("host_s", {})
    for k, v in parts.items():
        per[f"host_{k}"] = round(v / n * 1e3, 2)
    if parts:
        per["host_rest"] = round((host - sum(parts.values())) / n * 1e3, 2)
    # of the host's time, what a pipelined worker did while the guest ran the next
    # program (the comparisons it deferred and their findings): hidden behind the guest
    # where a core is free for it
    per["host_overlapped"] = round(last.get("overlap_s", 0.0) / n * 1e3, 2)
    out["ms_per_program"] = per
    for k in ("pipelined", "late_runs", "late_compares", "model_replays"):
        if k in last:
            out[k] = last[k]
    for k in ("programs_by_kind", "ms_by_kind"):
        if k in last:
            out[k] = last[k]
    out["restarts"] = last.get("restarts", 0)
    return out


def compare_repos(kdir: Path, other: Path, programs: int, rounds: int) -> dict:
    """The campaign-path worker from `other` (e.g. /work/main) and from this checkout,
    alternating, `rounds` times each (same seed, seeds and programs, one VM at a time):
    each round's figures and the medians of programs/s and of the ms_per_program split."""
    from fuzz.paths import REPO

    root = Path(tempfile.mkdtemp(prefix="iommufd-bench-compare-"))
    runs: dict[str, list[dict]] = {"other": [], "this": []}
    for r in range(rounds):
        for name, repo in (("other", other.resolve()), ("this", REPO)):
            f = campaign_worker(kdir, root / f"{name}-{r}", programs, repo)
            runs[name].append(f)
            print(f"round {r} {name} ({repo}): {f['programs_per_s']} programs/s "
                  f"{json.dumps(f['ms_per_program'])}", file=sys.stderr, flush=True)

    def median(name: str) -> dict:
        rows = runs[name]
        per = {k: round(statistics.median(x["ms_per_program"].get(k, 0.0) for x in rows), 2)
               for k in rows[0]["ms_per_program"]}
        return {"programs_per_s": round(statistics.median(x["programs_per_s"] for x in rows), 2),
                "ms_per_program": per}

    out = {"other_repo": str(other), "this_repo": str(REPO), "programs": programs,
           "rounds": runs, "other": median("other"), "this": median("this")}
    out["speedup"] = round(out["this"]["programs_per_s"] / out["other"]["programs_per_s"], 3)
    return out


def _same(a: list, b: list) -> bool:
    """Two runs' results agree op by op (errno, return value, output fields, fault)."""
    return len(a) == len(b) and all(
        (x.errno, x.ret, x.out, x.injected) == (y.errno, y.ret, y.out, y.injected)
        for x, y in zip(a, b))


def guest_ceiling(kdir: Path, record: Path, batch: int = 100, sample: int = 60,
                  empty: int = 300, c_loop_pairs: int = 2000) -> dict:
    """The campaign's own programs (record: every program its worker sent, in order,
    with its KCOV mode; fuzz.backend.RECORD_ENV) run again in a fresh VM back to back,
    `batch` to a round trip (the agent's EXEC_BATCH: each on its own /dev/iommu and
    buffers, KCOV on, results made as for EXEC), with no host work but reading the
    answers: the guest's ceiling. Also the same programs one EXEC at a time (the
    channel's round trip per program, no other host work), the floor of an almost
    empty program (open /dev/iommu, one IOAS_ALLOC, close), and the guest's ms per op
    name. Before timing, `sample` programs run both ways and their results are
    compared op by op, beside two normal runs' (by kind: threads race, and an injected
    fault's errno may differ from run to run). A program whose
    results left the kernel tainted restarts the guest (not timed) and the batch goes
    on from the program after it. Last, the C loop in the same VM (ratio: the ceiling's
    ioctls/s over its; empty_ratio: the empty programs' ioctls/s, one each, over it)."""
    from fuzz.backend import _finish, taints
    from fuzz.engines.common import build_c_loop
    from fuzz.prog import Op, Program
    from fuzz.report import parse

    rows = [json.loads(x) for x in record.read_text().splitlines() if x.strip()]
    progs = [Program.from_json(r["prog"], f"{record}:{i + 1}") for i, r in enumerate(rows)]
    encs = [encode(p, kcov=r["kcov"], kcov_mode=r["kcov_mode"]) for p, r in zip(progs, rows)]
    be = VMBackend(kdir)
    vm = be.vm
    out: dict = {"programs": len(progs), "batch": batch,
                 "ops_per_program": round(sum(len(p.ops) for p in progs) / max(len(progs), 1),
                                          1)}
    try:
        # the same results both ways: a normal run, a batch, a second normal run; where
        # the batch differs from the first normal run, so may two normal runs (an
        # injected fault's errno depends on which allocation the Nth point is)
        n = min(sample, len(progs))
        first = [vm.execute(e.wire) for e in encs[:n]]
        many, _ = vm.execute_batch([e.wire for e in encs[:n]])
        again = [vm.execute(e.wire) for e in encs[:n]]
        check: dict[str, dict[str, int]] = {}
        for i in range(n):
            kind = "threaded" if progs[i].threaded else "faulted" if progs[i].faulted \
                else "plain"
            c = check.setdefault(kind, {"programs": 0, "batch_differs": 0,
                                        "second_run_differs": 0})
            c["programs"] += 1

            def res(raw: object, i: int = i) -> list:
                return _finish(progs[i], encs[i], raw, rows[i]["kcov_mode"]).results \
                    if raw is not None else []
            a = res(first[i])
            c["batch_differs"] += not _same(a, res(many[i]))
            c["second_run_differs"] += not _same(a, res(again[i]))
        out["sample_check"] = check

        def timed_batches(wires: list[bytes], size: int) -> tuple[float, int, list, int]:
            """Wall seconds of the round trips, the guest's ns, the results, restarts."""
            wall, gns, res, restarts, i = 0.0, 0, [], 0, 0
            while i < len(wires):
                t0 = time.monotonic()
                try:
                    got, ns = vm.execute_batch(wires[i:i + size])
                except GuestCrash:
                    # which program of the batch killed the guest is not known: restart,
                    # and run the batch again one program to a batch (not timed), the one
                    # that crashes again skipped as None
                    vm.restart()
                    restarts += 1
                    for w in wires[i:i + size]:
                        try:
                            raw = vm.execute_batch([w])[0][0]
                        except GuestCrash:
                            raw = None
                        res.append(raw)
                        i += 1
                        if raw is None or taints(parse(raw.kmsg), raw.kmsg):
                            vm.restart()
                            restarts += 1
                    continue
                wall += time.monotonic() - t0
                gns += ns
                for raw in got:
                    res.append(raw)
                    i += 1
                    if raw is not None and taints(parse(raw.kmsg), raw.kmsg):
                        vm.restart()  # the rest of this batch ran on a tainted kernel
                        restarts += 1
                        break
            return wall, gns, res, restarts

        wires = [e.wire for e in encs]
        ops = sum(len(p.ops) for p in progs)
        wall, gns, res, restarts = timed_batches(wires, batch)
        out["guest_ceiling_programs_per_s"] = round(len(wires) / wall, 1)
        out["guest_ceiling_ops_per_s"] = round(ops / wall, 1)
        out["guest_only_programs_per_s"] = round(len(wires) / (gns / 1e9), 1)
        out["ceiling_restarts"] = restarts
        # one EXEC a program, nothing else on the host: the channel's round trip, and
        # whether the guest's own part grows when it waits for the host in between
        t0 = time.monotonic()
        g1 = 0
        for w in wires:
            raw = vm.execute(w)
            g1 += raw.setup_ns + raw.calls_ns + raw.teardown_ns + raw.agent_ns
        wall1 = time.monotonic() - t0
        out["one_at_a_time_programs_per_s"] = round(len(wires) / wall1, 1)
        out["one_at_a_time_ms"] = {"guest": round(g1 / len(wires) / 1e6, 3),
                                   "round_trip": round((wall1 - g1 / 1e9) / len(wires) * 1e3, 3)}
        # k programs a round trip, on the first `sweep` programs
        sweep = wires[:400]
        out["programs_per_s_by_batch"] = {}
        for k in (1, 2, 4, 8, 16):
            w, _, _, _ = timed_batches(sweep, k)
            out["programs_per_s_by_batch"][k] = round(len(sweep) / w, 1)
        # where the guest's time goes, ms per program, and per op name
        per = {"setup": 0, "calls": 0, "teardown": 0, "agent": 0, "kmsg": 0}
        by_op: dict[str, list[float]] = {}
        done = [r for r in res if r is not None]
        for p, e, raw, r in zip(progs, encs, res, rows):
            if raw is None:
                continue
            per["setup"] += raw.setup_ns
            per["calls"] += raw.calls_ns
            per["teardown"] += raw.teardown_ns
            per["agent"] += raw.agent_ns - raw.kmsg_ns
            per["kmsg"] += raw.kmsg_ns
            ex = _finish(p, e, raw, r["kcov_mode"])
            for op, opr in zip(p.ops, ex.results):
                t = by_op.setdefault(op.name, [0, 0.0])
                t[0] += 1
                t[1] += (opr.t_end - opr.t_start) / 1e6
        out["guest_ms_per_program"] = {k: round(v / len(done) / 1e6, 3) for k, v in per.items()}
        out["guest_ms_per_program"]["all"] = round(gns / len(res) / 1e6, 3)
        # setup is the buffers (and the open): with every buffer from the pool or not
        mapped = [(p, raw) for p, raw in zip(progs, res) if raw is not None]
        nbuf = [sum(b.kind != "hole" for b in p.buffers) for p, _ in mapped]
        split: dict[str, list[float]] = {"all_pooled": [], "some_fresh": [], "no_buffers": []}
        for k, (_, raw) in zip(nbuf, mapped):
            key = ("no_buffers" if not k else "all_pooled" if raw.pooled_buffers >= k
                   else "some_fresh")
            split[key].append(raw.setup_ns / 1e6)
        out["buffers"] = {
            "per_program": round(sum(nbuf) / len(mapped), 2),
            "mib_per_program": round(sum(b.size for p, _ in mapped for b in p.buffers
                                         if b.kind != "hole") / len(mapped) / 2**20, 2),
            "pooled_share": round(sum(raw.pooled_buffers for _, raw in mapped)
                                  / max(sum(nbuf), 1), 3),
            "setup_ms": {k: {"programs": len(v), "mean": round(statistics.fmean(v), 3)}
                         for k, v in split.items() if v}}
        out["ms_by_op"] = {
            name: {"calls": c, "ms_per_call": round(ms / c, 3),
                   "ms_per_program": round(ms / len(done), 3)}
            for name, (c, ms) in sorted(by_op.items(), key=lambda kv: -kv[1][1])}
        # the floor: open /dev/iommu, one IOAS_ALLOC, close
        e0 = encode(Program(ops=[Op("IOAS_ALLOC")]), kcov=True, kcov_mode=KCOV_EDGES)
        wall, gns, res, _ = timed_batches([e0.wire] * empty, batch)
        bad = [r for r in res if r is None or r.setup_errno]
        if bad:
            raise SystemExit(f"the empty program failed {len(bad)} times of {empty}")
        out["empty_program_per_s"] = round(empty / wall, 1)
        out["empty_guest_ms"] = {
            "setup": round(sum(r.setup_ns for r in res) / empty / 1e6, 3),
            "calls": round(sum(r.calls_ns for r in res) / empty / 1e6, 3),
            "teardown": round(sum(r.teardown_ns for r in res) / empty / 1e6, 3),
            "all": round(gns / empty / 1e6, 3)}
        # the C loop in this VM, last (it mounts the host's root over 9p)
        r = vm.run_command([str(build_c_loop()), str(c_loop_pairs), "4096", "kcov"],
                           timeout=600)
        if r["rc"] == 0:
            c = json.loads(r["stdout"])["ops_per_s"]
            out["c_loop_ops_per_s"] = c
            out["ratio"] = round(out["guest_ceiling_ops_per_s"] / c, 3)
            out["empty_ratio"] = round(out["empty_program_per_s"] / c, 3)
    finally:
        be.close()
    return out


def _edges_at(rows: list[dict], key: str, x: float) -> int | None:
    """Edges at the last stats line with rows[key] <= x (None: none that early)."""
    got = [r["edges"] for r in rows if r[key] <= x]
    return got[-1] if got else None


def entropic_ab(kdir: Path, programs: int, rounds: int, flags: tuple[str, ...]) -> dict:
    """The campaign-path worker with libFuzzer's entropic power schedule on (-entropic=1)
    and with `flags` (e.g. -entropic=0), alternating, `rounds` each (same seed and
    programs; flags given to both, so the worker's own default does not matter): each
    round's programs/s, the edges after the same number of programs (every stats line is
    at a multiple of 100 programs or 5 s) and after the same time (the shortest run's)."""
    root = Path(tempfile.mkdtemp(prefix="iommufd-bench-entropic-"))
    extra = tuple(f"--libfuzzer-arg={f}" for f in flags)
    runs: dict[str, list[dict]] = {"entropic": [], "changed": []}
    for r in range(rounds):
        for name, ex in (("entropic", ("--libfuzzer-arg=-entropic=1",)), ("changed", extra)):
            work = root / f"{name}-{r}"
            f = campaign_worker(kdir, work, programs, extra=ex)
            rows = [json.loads(x) for x in
                    (work / "worker-0" / "stats.jsonl").read_text().splitlines()]
            f["stats"] = [{"t": x["t"], "programs": x["programs"], "edges": x["edges"]}
                          for x in rows]
            runs[name].append(f)
            print(f"entropic round {r} {name}: {f['programs_per_s']} programs/s, "
                  f"{rows[-1]['edges']} edges", file=sys.stderr, flush=True)
    every = [f for v in runs.values() for f in v]
    n_min = min(f["stats"][-1]["programs"] for f in every)
    t_min = min(f["stats"][-1]["t"] for f in every)
    marks_n = [n for n in (250, 500, 1000, 1500, 2000, 3000, 4000) if n <= n_min] + [n_min]
    marks_t = [round(t_min * q, 1) for q in (0.25, 0.5, 0.75, 1.0)]
    out: dict = {"flags": list(flags), "programs": programs, "rounds": rounds}
    for name, rows in runs.items():
        out[name] = {
            "programs_per_s": [f["programs_per_s"] for f in rows],
            "programs_per_s_median": round(statistics.median(
                f["programs_per_s"] for f in rows), 2),
            "host_rest_ms": [f["ms_per_program"].get("host_rest") for f in rows],
            "edges_after_programs": {n: [_edges_at(f["stats"], "programs", n) for f in rows]
                                     for n in marks_n},
            "edges_after_s": {t: [_edges_at(f["stats"], "t", t) for f in rows]
                              for t in marks_t},
            "stats": [f["stats"] for f in rows]}
    out["speedup"] = round(out["changed"]["programs_per_s_median"]
                           / out["entropic"]["programs_per_s_median"], 3)
    return out


def cold_boot(kdir: Path) -> float:
    vm = VM(VMConfig(kernel=kdir, snapshot=False))
    try:
        vm.start()
        return vm.boot_seconds
    finally:
        vm.stop()


def restarts(be: VMBackend, n: int = 3) -> list[float]:
    """Kill the guest with an oops, restart, check the next program's results."""
    out = []
    prog, expects = smoke_program()
    for _ in range(n):
        try:
            be.vm.run_command(["sh", "-c", f"echo BUG > {LKDTM}"], timeout=60)
            raise SystemExit("LKDTM BUG did not kill the guest")
        except GuestCrash:
            pass
        t0 = time.monotonic()
        be.vm.restart()
        out.append(time.monotonic() - t0)
        bad = check_results(be.run(prog).results, expects)
        if bad:
            raise SystemExit(f"wrong results after a restart: {bad}")
    return out


def pool_ab(be: VMBackend, count: int, rounds: int = 2) -> dict:
    encs = [encode(generate(s), kcov=True, kcov_mode=KCOV_EDGES) for s in range(count)]
    best: dict[str, float] = {}
    setup: dict[str, float] = {}
    for _ in range(rounds):
        for on in (False, True):
            be.vm.set_pool(on)
            tag = "on" if on else "off"
            t0 = time.monotonic()
            s = sum(be.vm.execute(e.wire).setup_ns for e in encs)
            rate = len(encs) / (time.monotonic() - t0)
            if rate > best.get(tag, 0):
                best[tag], setup[tag] = rate, s / len(encs) / 1e6
    be.vm.set_pool(True)
    return {"programs": count, "off_programs_per_s": round(best["off"], 1),
            "on_programs_per_s": round(best["on"], 1),
            "speedup": round(best["on"] / best["off"], 2),
            "setup_ms_off": round(setup["off"], 2), "setup_ms_on": round(setup["on"], 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--programs", type=int, default=600)
    ap.add_argument("--kernel", type=Path)
    ap.add_argument("--json", action="store_true", help="one JSON object on one line")
    ap.add_argument("--feedback-curves", action="store_true")
    ap.add_argument("--pool-programs", type=int, default=150)
    ap.add_argument("--campaign-without-pool", action="store_true",
                    help="run the campaign again with the buffer pool off")
    ap.add_argument("--campaign-programs", type=int, default=1500,
                    help="programs of the campaign-path worker (0: none)")
    ap.add_argument("--baseline", type=Path,
                    help="a checkout whose campaign-path worker runs first, for a speedup")
    ap.add_argument("--compare-repo", type=Path,
                    help="only the campaign-path worker, from this checkout (e.g. /work/main) "
                    "and from this one alternating: --rounds each, --campaign-programs each")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--entropic-ab", action="store_true",
                    help="only the campaign-path worker with libFuzzer's entropic schedule on "
                    "and with --entropic-flag, alternating: --rounds each")
    ap.add_argument("--entropic-flag", action="append", default=[],
                    help="the libFuzzer flag of the changed worker (default -entropic=0)")
    ap.add_argument("--no-guest-ceiling", dest="guest_ceiling", action="store_false",
                    help="skip running the campaign-path worker's programs again back to back")
    ap.add_argument("--ceiling-batch", type=int, default=100,
                    help="programs per round trip in the guest ceiling")
    ap.add_argument("--only-campaign-path", action="store_true",
                    help="skip the boot, restart, pool and feedback-worker sections")
    a = ap.parse_args()
    kdir = a.kernel or kernel.default_kernel()
    a.entropic_flag = a.entropic_flag or ["-entropic=0"]
    if a.entropic_ab:
        out = entropic_ab(kdir, a.campaign_programs, a.rounds, tuple(a.entropic_flag))
        print(json.dumps(out) if a.json else json.dumps(out, indent=1))
        return 0
    if a.compare_repo:
        out = compare_repos(kdir, a.compare_repo, a.campaign_programs, a.rounds)
        print(json.dumps(out) if a.json else json.dumps(out, indent=1))
        return 0
    out: dict = {}
    root = Path(tempfile.mkdtemp(prefix="iommufd-bench-campaign-"))
    curves: dict = {}
    if not a.only_campaign_path:
        out = {"programs": a.programs, "boot_s": round(cold_boot(kdir), 2)}

        be = VMBackend(kdir)  # a cold boot that saves the snapshot, if there is none yet
        try:
            be.vm.restart()
            out["restore_s"] = round(be.vm.boot_seconds, 2)  # a start from the snapshot
            out["accel"] = be.vm.accel
            times = restarts(be)
            out["restart_s"] = round(statistics.median(times), 2)
            out["restart_s_all"] = [round(t, 2) for t in times]
            out["pool"] = pool_ab(be, a.pool_programs)
        finally:
            be.close()

        runs = {"feedback": worker(kdir, root / "feedback", a.programs, True, 2000)}
        if a.feedback_curves:
            runs["no_feedback"] = worker(kdir, root / "no_feedback", a.programs, False, 0)
        for p, _ in runs.values():
            p.wait()
        if a.campaign_without_pool:
            # the same campaign (same seed) with every buffer mapped afresh, after the first
            p, work = worker(kdir, root / "no_pool", a.programs, True, 0, pool=False)
            p.wait()
            last = json.loads((work / "stats.jsonl").read_text().splitlines()[-1])
            out["no_pool_programs_per_s"] = round(last["programs"] / last["t"], 2)
        for name, (_, work) in runs.items():
            rows = [json.loads(x) for x in (work / "stats.jsonl").read_text().splitlines()]
            curves[name] = {r["programs"]: r["edges"] for r in rows if r["programs"] % 100 == 0}
            last = rows[-1]
            if name == "feedback":
                f = figures(last)
                for k in ("programs_per_s", "ops_per_s", "ops_per_program"):
                    out[k] = f[k]
                out["c_loop_ops_per_s"] = last.get("c_loop_ops_per_s")
                if out["c_loop_ops_per_s"]:
                    out["ratio"] = round(out["ops_per_s"] / out["c_loop_ops_per_s"], 3)
                out["edges"] = last["edges"]
                out["guest_share"] = f["guest_share"]
                out["ms_per_program"] = f["ms_per_program"]
                out["campaign_restarts"] = f["restarts"]
            else:
                out["no_feedback_edges"] = last["edges"]
    if a.campaign_programs:
        # what `iommufd-fuzz fuzz` runs: seeds, faults and threads, the fault walk
        if a.baseline:
            out["baseline_campaign_path"] = campaign_worker(
                kdir, root / "baseline_path", a.campaign_programs, a.baseline.resolve())
        record = root / "campaign_path" / "programs.jsonl"
        out["campaign_path"] = campaign_worker(kdir, root / "campaign_path",
                                               a.campaign_programs, record=record)
        if a.baseline:
            out["campaign_path_speedup"] = round(
                out["campaign_path"]["programs_per_s"]
                / out["baseline_campaign_path"]["programs_per_s"], 2)
        if out.get("c_loop_ops_per_s"):
            out["campaign_path"]["ratio"] = round(
                out["campaign_path"]["ops_per_s"] / out["c_loop_ops_per_s"], 3)
        if a.guest_ceiling:
            out["guest_ceiling"] = guest_ceiling(kdir, record, a.ceiling_batch)
            out["guest_ceiling"]["campaign_programs_per_s"] = \
                out["campaign_path"]["programs_per_s"]
    if a.feedback_curves and curves:
        out["edges_after_programs"] = {
            n: {"feedback": curves["feedback"].get(n),
                "no_feedback": curves["no_feedback"].get(n)}
            for n in sorted(set(curves["feedback"]) | set(curves["no_feedback"]))}
    print(json.dumps(out) if a.json else json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
