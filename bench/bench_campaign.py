"""Campaign throughput against the ceiling, restart and boot times, in one run.

    .venv/bin/python bench/bench_campaign.py [--programs N] [--kernel DIR] [--json]
                                             [--feedback-curves] [--campaign-programs N]
                                             [--baseline DIR]
    .venv/bin/python bench/bench_campaign.py --compare-repo DIR [--rounds R]
                                             [--campaign-programs N] [--json]

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
from fuzz.backend import VMBackend  # noqa: E402
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


def campaign_worker(kdir: Path, work: Path, programs: int, repo: Path | None = None
                    ) -> dict:
    """A worker as `iommufd-fuzz fuzz` starts it (fuzz.campaign's argv, one VM), run for
    `programs` programs on a fresh corpus from corpus/seeds; from checkout `repo` if
    given. Its figures, from its last stats line (the clock starts once its VM is up)."""
    from fuzz.campaign import CampaignConfig, _worker_argv
    from fuzz.paths import REPO

    cfg = CampaignConfig(kernel=kdir, corpus=work / "corpus", findings=work / "findings",
                         workdir=work, seconds=100000, runs=programs,
                         seeds=(REPO / "corpus" / "seeds",))
    argv = _worker_argv(cfg, 0)
    (work / "worker-0").mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
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
    a = ap.parse_args()
    kdir = a.kernel or kernel.default_kernel()
    if a.compare_repo:
        out = compare_repos(kdir, a.compare_repo, a.campaign_programs, a.rounds)
        print(json.dumps(out) if a.json else json.dumps(out, indent=1))
        return 0
    out: dict = {"programs": a.programs, "boot_s": round(cold_boot(kdir), 2)}

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

    root = Path(tempfile.mkdtemp(prefix="iommufd-bench-campaign-"))
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
    curves = {}
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
        out["campaign_path"] = campaign_worker(kdir, root / "campaign_path",
                                               a.campaign_programs)
        if a.baseline:
            out["campaign_path_speedup"] = round(
                out["campaign_path"]["programs_per_s"]
                / out["baseline_campaign_path"]["programs_per_s"], 2)
        if out.get("c_loop_ops_per_s"):
            out["campaign_path"]["ratio"] = round(
                out["campaign_path"]["ops_per_s"] / out["c_loop_ops_per_s"], 3)
    if a.feedback_curves:
        out["edges_after_programs"] = {
            n: {"feedback": curves["feedback"].get(n),
                "no_feedback": curves["no_feedback"].get(n)}
            for n in sorted(set(curves["feedback"]) | set(curves["no_feedback"]))}
    print(json.dumps(out) if a.json else json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
