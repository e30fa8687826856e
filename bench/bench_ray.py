"""Programs/s of a campaign on Ray with 1, 2 and 4 workers on this machine, the
scaling ratio, and a local campaign (no Ray) with 1 worker next to it.

The cluster is real (ray.cluster_utils): a head that runs no workers and two
worker nodes of 2 CPUs each, so corpus entries cross nodes through the hub.
Each run starts from an empty corpus (the seeds) and lasts --seconds; its rate
is the cluster's programs between the first stats line with every worker
running and the last one, over that time (VM starts left out). The runs are
back to back on a machine other jobs share, 1 worker first and last, with Ray
and without (a local campaign), averaged: read the ratios. On 2 cores, 2
workers already fill the machine and 4 oversubscribe it (each VM is a core under
TCG), so what this shows above 2 is the overhead.

    .venv/bin/python bench/bench_ray.py [--seconds 90] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # the loopback only
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import psutil  # noqa: E402
import ray  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

from fuzz import kernel  # noqa: E402
from fuzz.campaign import CampaignConfig, run_campaign  # noqa: E402
from fuzz.cluster.ray_campaign import RayOptions, run_ray_campaign  # noqa: E402
from fuzz.paths import REPO  # noqa: E402

SEEDS = REPO / "corpus" / "seeds"


def steady_rate(stats: Path, workers: int) -> tuple[float, int]:
    """(programs/s, programs) from the first line with every worker running on."""
    lines = [json.loads(x) for x in stats.read_text().splitlines() if x.strip()]
    lines = [x for x in lines if "iommufd_edges" not in x]  # the final summary line
    start = next((x for x in lines if x.get("workers", 1) >= workers and x["programs"] > 0
                  and all(n["programs"] > 0 for n in x.get("per_node", [{"programs": 1}]))),
                 None)
    if start is None or lines[-1]["t"] <= start["t"]:
        return 0.0, lines[-1]["programs"] if lines else 0
    end = lines[-1]
    return (end["programs"] - start["programs"]) / (end["t"] - start["t"]), end["programs"]


class Sampler(threading.Thread):
    """Peak resident memory of Ray's processes, the engines and the VMs while a run goes."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.peak = {"ray": 0.0, "engines": 0.0, "qemu": 0.0}
        self.count = {"engines": 0, "qemu": 0}

    def run(self) -> None:
        while not self.stop.wait(3):
            now = {"ray": 0.0, "engines": 0.0, "qemu": 0.0}
            n = {"engines": 0, "qemu": 0}
            for p in psutil.process_iter(["name", "cmdline", "memory_info"]):
                cmd = " ".join(p.info["cmdline"] or [])
                mib = p.info["memory_info"].rss / 2**20 if p.info["memory_info"] else 0
                kind = ("qemu" if "qemu-system" in cmd and "campaigns/" in cmd else
                        "engines" if "fuzz.engines." in cmd else
                        "ray" if (p.info["name"] or "").startswith("ray::")
                        or "site-packages/ray/" in cmd else None)
                if kind:
                    now[kind] += mib
                    if kind in n:
                        n[kind] += 1
            for k in now:
                self.peak[k] = max(self.peak[k], now[k])
            for k in n:
                self.count[k] = max(self.count[k], n[k])


def hub_round_trips(calls: int = 400) -> dict:
    """One worker's sync with nothing new (the common case) against a hub actor:
    the round trip, and the hub's own CPU per call (what bounds the workers it serves)."""
    from fuzz.cluster.ray_campaign import HubActor

    d = Path(tempfile.mkdtemp(prefix="bench-hub-"))
    hub = HubActor.remote(d / "corpus", d / "findings", [SEEDS])
    row = {"t": 10.0, "programs": 100, "ops": 500, "edges": 4000, "restarts": 0}
    ray.get(hub.sync.remote(0, "bench", 0, row=row))
    (proc,) = [p for p in psutil.process_iter(["cmdline"])
               if (p.info["cmdline"] or [""])[0].startswith("ray::Hub")]
    c0 = sum(proc.cpu_times()[:2])
    t0 = time.perf_counter()
    for _ in range(calls):
        ray.get(hub.sync.remote(0, "bench", 10**9, row=row))
    wall = time.perf_counter() - t0
    cpu = sum(proc.cpu_times()[:2]) - c0
    ray.kill(hub)
    return {"round_trip_ms": round(1000 * wall / calls, 2),
            "hub_cpu_ms_per_call": round(1000 * cpu / calls, 3),
            "workers_one_hub_core_serves_at_2_per_s": int(calls / max(cpu, 1e-9) / 2)}


def ray_cpu_and_rss() -> tuple[float, float]:
    """CPU seconds so far and resident MiB of Ray's own processes (not engines, not VMs)."""
    cpu = rss = 0.0
    for p in psutil.process_iter(["name", "cmdline", "cpu_times", "memory_info"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if (p.info["name"] or "").startswith("ray::") or "site-packages/ray/" in cmd:
            t = p.info["cpu_times"]
            cpu += t.user + t.system if t else 0
            rss += p.info["memory_info"].rss / 2**20 if p.info["memory_info"] else 0
    return cpu, rss


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=75)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    kdir = kernel.default_kernel()
    tmp = Path(tempfile.mkdtemp(prefix="bench-ray-"))

    def cfg(name: str, vms: int = 1) -> CampaignConfig:
        d = tmp / name
        return CampaignConfig(kernel=kdir, corpus=d / "corpus", findings=d / "findings",
                              workdir=d / "work", seconds=a.seconds, vms=vms, seeds=(SEEDS,),
                              quiet=True)

    out: dict = {"seconds": a.seconds, "load_before": round(os.getloadavg()[0], 2)}
    cl = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "include_dashboard": False, "object_store_memory": 80 << 20})
    for name in ("nodeA", "nodeB"):
        cl.add_node(num_cpus=2, object_store_memory=80 << 20, node_name=name)
    cl.connect()
    runs: dict[int, list[dict]] = {1: [], 2: [], 4: []}
    local: list[float] = []
    try:
        # 1 worker first and last, with and without Ray: the machine's load drifts
        for k, (kind, n) in enumerate([("local", 1), ("ray", 1), ("ray", 2), ("ray", 4),
                                        ("ray", 1), ("local", 1)]):
            c = cfg(f"{kind}{n}-{k}")
            if kind == "local":
                run_campaign(c)
                local.append(steady_rate(c.workdir / "stats.jsonl", 1)[0])
                print(f"local campaign, 1 worker: {local[-1]:.1f} programs/s "
                      f"(load {os.getloadavg()[0]:.1f})", file=sys.stderr)
                continue
            cpu0, _ = ray_cpu_and_rss()
            t0 = time.monotonic()
            sampler = Sampler()
            sampler.start()
            s = run_ray_campaign(c, RayOptions(address="auto", max_workers=n,
                                               vms_per_node=1 if n <= 2 else 2))
            sampler.stop.set()
            wall = time.monotonic() - t0
            cpu1, _ = ray_cpu_and_rss()
            rate, programs = steady_rate(c.workdir / "stats.jsonl", n)
            runs[n].append({"programs_per_s": round(rate, 2), "programs": programs,
                            "imported": s["imported"], "import_latency_s": s["import_latency_s"],
                            "ray_cpu_share": round((cpu1 - cpu0) / wall, 3),
                            "peak_rss_mib": {k: round(v) for k, v in sampler.peak.items()},
                            "load": round(os.getloadavg()[0], 2)})
            print(f"ray, {n} worker(s): {rate:.1f} programs/s (load {os.getloadavg()[0]:.1f})",
                  file=sys.stderr)
        out["hub"] = hub_round_trips()
    finally:
        ray.shutdown()
        cl.shutdown()
    res = {}
    for n, rs in runs.items():
        r = dict(rs[-1])  # the figures of the last run, the rate of all
        r["programs_per_s"] = round(sum(x["programs_per_s"] for x in rs) / len(rs), 2)
        r["runs"] = [x["programs_per_s"] for x in rs]
        res[n] = r
    base = res[1]["programs_per_s"] or 1.0
    for n, r in res.items():
        r["per_worker"] = round(r["programs_per_s"] / n, 2)
        r["scaling"] = round(r["programs_per_s"] / base, 2)
    out["ray"] = res
    out["local_1"] = round(sum(local) / len(local), 2)
    out["local_1_runs"] = [round(x, 2) for x in local]
    out["ray_1_over_local_1"] = round(base / (out["local_1"] or 1.0), 2)
    runs = res  # type: ignore[assignment]
    if a.json:
        print(json.dumps(out))
        return
    print(f"{'workers':>7} {'programs/s':>10} {'per worker':>10} {'scaling':>7} "
          f"{'imported':>8} {'latency p50':>11} {'Ray CPU':>7} {'RSS: Ray':>8} "
          f"{'engines':>7} {'VMs':>6}")
    for n, r in runs.items():
        m = r["peak_rss_mib"]
        print(f"{n:>7} {r['programs_per_s']:>10.1f} {r['per_worker']:>10.1f} "
              f"{r['scaling']:>7.2f} {r['imported']:>8} {r['import_latency_s']['p50']:>10.2f}s "
              f"{100 * r['ray_cpu_share']:>6.0f}% {m['ray']:>5} MiB {m['engines']:>4} MiB "
              f"{m['qemu']:>3} MiB")
    h = out["hub"]
    print(f"hub: a sync round trip {h['round_trip_ms']} ms, {h['hub_cpu_ms_per_call']} ms of "
          f"the hub's CPU each: one hub core serves {h['workers_one_hub_core_serves_at_2_per_s']}"
          " workers syncing twice a second")
    print(f"local campaign (no Ray), 1 worker: {out['local_1']:.1f} programs/s "
          f"(runs {out['local_1_runs']}); Ray with 1 worker (runs {runs[1]['runs']}) / local: "
          f"{out['ray_1_over_local_1']:.2f}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
