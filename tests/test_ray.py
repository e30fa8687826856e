"""Campaigns on a real multi-node Ray cluster on this machine (ray.cluster_utils:
a head and worker nodes, each with its own raylet, object store and processes,
and each worker node with its own iommufd-fuzz cache, as separate machines have):
the kernel shipped to nodes that lack it, a corpus entry found on one node run on
another, a finding seen on two nodes stored once with a count, and a node killed
(and another joining) mid-campaign without loss. The workers run the planted
model of test_engines (a successful IOAS_MAP of more than 16 pages "fails" with
ENOMEM), so every node keeps finding the same divergence. Two VMs at a time:
one worker per node, the head runs none."""

from __future__ import annotations

import hashlib
import json
import os
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # the loopback only
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import psutil  # noqa: E402
import pytest  # noqa: E402
import ray  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

from fuzz import corpus  # noqa: E402
from fuzz.campaign import CampaignConfig  # noqa: E402
from fuzz.cluster import exchange  # noqa: E402
from fuzz.cluster.ray_campaign import RayOptions, run_ray_campaign  # noqa: E402
from fuzz.findings import FindingStore  # noqa: E402
from fuzz.paths import REPO, cache_dir  # noqa: E402
from fuzz.prog import Buffer, BufPtr, Op, Program, Ref  # noqa: E402

pytestmark = pytest.mark.vm

STORE_MB = 80  # each node's object store (Ray's floor is 75 MiB)
PLANTED = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from fuzz import differential
    from test_engines import PlantedModel
    differential.Model = PlantedModel
    from fuzz.engines.atheris_engine import main
    main(sys.argv[1:])
""").format(tests=str(Path(__file__).parent))
PLANTED_SIG = "mismatch IOAS_MAP.errno kernel=0 model=ENOMEM"  # the planted model's finding


@dataclass
class RayCluster:
    cluster: Cluster
    root: Path
    nodes: dict[str, Any]

    def add(self, name: str, share_guest: bool) -> None:
        """A worker node with an empty kernel cache of its own. share_guest: it uses
        this machine's guest images and snapshots (else it builds its own)."""
        cache = self.root / name
        cache.mkdir()
        if share_guest:
            for sub in ("guest", "snapshots"):
                (cache_dir() / sub).mkdir(parents=True, exist_ok=True)
                (cache / sub).symlink_to(cache_dir() / sub)
        self.nodes[name] = self.cluster.add_node(
            num_cpus=1, object_store_memory=STORE_MB << 20, node_name=name,
            env_vars={"IOMMUFD_FUZZ_CACHE": str(cache)})


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, kernel_dir: Path):
    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "include_dashboard": False, "object_store_memory": STORE_MB << 20})
    tc = RayCluster(c, tmp_path_factory.mktemp("nodes"), {})
    try:
        for name in ("nodeA", "nodeB"):
            tc.add(name, share_guest=True)
        c.connect()
        yield tc
    finally:
        ray.shutdown()
        c.shutdown()


def planted_seeds(d: Path) -> Path:
    d.mkdir(parents=True)
    pages = 17
    Program([Op("IOAS_ALLOC"),
             Op("IOAS_MAP", {"ioas_id": Ref(0, "out_ioas_id"), "user_va": BufPtr(0),
                             "length": pages * 4096, "flags": 6})],
            [Buffer(pages * 4096)]).save(d / "map17.json")
    return d


def campaign_cfg(d: Path, kernel_dir: Path, seconds: int) -> CampaignConfig:
    return CampaignConfig(kernel=kernel_dir, corpus=d / "corpus", findings=d / "findings",
                          workdir=d / "work", seconds=seconds,
                          seeds=(planted_seeds(d / "seeds"), REPO / "corpus" / "seeds"))


def label(summary: dict, name: str) -> str:
    (lab,) = {w["node"] for w in summary["workers"].values() if w["node"].startswith(name + "/")}
    return lab


def worker_dirs(tc: RayCluster, name: str, cid: str) -> list[Path]:
    return sorted((tc.root / name / "campaigns" / cid).glob("worker-*"))


def local_count(wd: Path, slug: str) -> int:
    meta = wd / "findings" / slug / "finding.json"
    return json.loads(meta.read_text())["count"] if meta.exists() else 0


@pytest.fixture(scope="module")
def two_nodes(cluster: RayCluster, kernel_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """One 80-second campaign on nodeA and nodeB (a node whose worker starts late under
    load still has time to run entries found on the other one after its start)."""
    d = tmp_path_factory.mktemp("two")
    cfg = campaign_cfg(d, kernel_dir, 80)
    s = run_ray_campaign(cfg, RayOptions(address="auto", engine_cmd=("{python}", "-c", PLANTED)))
    summary = json.loads((cfg.workdir / "cluster.json").read_text())
    return cfg, s, summary


def test_kernel_is_shipped_to_the_nodes_that_lack_it(cluster: RayCluster, kernel_dir: Path,
                                                     two_nodes: Any) -> None:
    _cfg, s, summary = two_nodes
    key = summary["kernel"]
    want = hashlib.sha256((kernel_dir / "bzImage").read_bytes()).hexdigest()
    for name in ("nodeA", "nodeB"):
        d = cluster.root / name / "kernels" / key
        assert hashlib.sha256((d / "bzImage").read_bytes()).hexdigest() == want
        assert (d / "shipped.json").exists() and not (d / "vmlinux").exists()
        assert not (cluster.root / name / "build").exists(), "nothing was built on the node"
    rows = {n["node"].split("/")[0]: n for n in s["per_node"]}
    assert rows["nodeA"]["programs"] > 0 and rows["nodeB"]["programs"] > 0


def test_corpus_entry_found_on_one_node_runs_on_the_other(cluster: RayCluster,
                                                          two_nodes: Any) -> None:
    cfg, s, summary = two_nodes
    a, b = label(summary, "nodeA"), label(summary, "nodeB")
    names = {p.name for p in corpus.files(cfg.corpus)}
    origin = {e["name"]: e["node"] for e in summary["entries"]}
    for src, dst in ((a, b), (b, a)):
        cross = [c for c in summary["crossings"] if c["from"] == src and c["to"] == dst]
        assert cross, f"no entry found on {src} ran on {dst}: {summary['crossings'][:5]}"
        for c in cross:
            assert c["name"] in names and origin[c["name"]] == src
        # past the receiving worker's start (before it, an entry waits for that)
        lat = sorted(c["latency_s"] for c in cross if not c["startup"])
        assert lat, cross[:5]
        print(f"{src} -> {dst}: {len(cross)} entries, found there -> run here p50 "
              f"{lat[len(lat) // 2]:.2f} s, max {lat[-1]:.2f} s")
        assert lat[len(lat) // 2] < 10, "entries reach the other node within seconds"
    # the receiving engine logged running them itself
    (wd,) = worker_dirs(cluster, "nodeB", summary["campaign"])
    ran = {json.loads(line)["name"] for line in
           (wd / "exchange" / exchange.IMPORTS).read_text().splitlines()}
    assert ran & {n for n, o in origin.items() if o == a}
    assert s["imported"] > 0 and s["import_latency_s"]["p50"] < 10


def test_finding_seen_on_two_nodes_is_one_finding_with_a_count(cluster: RayCluster,
                                                               two_nodes: Any) -> None:
    cfg, _s, summary = two_nodes
    rows = [(f, d) for f, d in FindingStore(cfg.findings).list() if f.signature == PLANTED_SIG]
    assert len(rows) == 1, [f.signature for f, _ in FindingStore(cfg.findings).list()]
    (f, d), = rows
    by_node = json.loads((d / "nodes.json").read_text())
    assert set(by_node) == {label(summary, "nodeA"), label(summary, "nodeB")}
    locals_ = {name: sum(local_count(wd, d.name) for wd in
                         worker_dirs(cluster, name, summary["campaign"]))
               for name in ("nodeA", "nodeB")}
    # every occurrence on either node counted once, in one finding
    assert f.count == sum(by_node.values()) == sum(locals_.values())
    assert all(n > 0 for n in locals_.values()), locals_


def test_one_status_and_one_stats_log_with_per_node_rows(two_nodes: Any) -> None:
    cfg, s, summary = two_nodes
    lines = [json.loads(x) for x in (cfg.workdir / "stats.jsonl").read_text().splitlines()]
    assert len(lines) > 10
    progs = [x["programs"] for x in lines]
    assert progs == sorted(progs) and progs[-1] == s["programs"] > 0
    assert max(x["nodes"] for x in lines) == 2 and max(x["workers"] for x in lines) == 2
    assert sum(n["programs"] for n in s["per_node"]) == s["programs"]
    assert s["corpus"] == len(corpus.files(cfg.corpus)) and s["edges"] > 1000
    assert s["iommufd_lines"] > 0  # the manager's line map over the cluster's edges


def qemus_of(cache: Path) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "qemu-system" in cmd and str(cache) in cmd:
            out.append(p)
    return out


def test_node_killed_and_node_joining_mid_campaign_lose_nothing(
        cluster: RayCluster, kernel_dir: Path, tmp_path_factory: pytest.TempPathFactory,
        two_nodes: Any) -> None:
    d = tmp_path_factory.mktemp("kill")
    cfg = campaign_cfg(d, kernel_dir, 100)
    done: dict[str, Any] = {}

    def campaign() -> None:
        try:
            done["s"] = run_ray_campaign(cfg, RayOptions(address="auto",
                                                         engine_cmd=("{python}", "-c", PLANTED)))
        except BaseException as e:  # noqa: B036 (reported by the test thread)
            done["error"] = e

    t = threading.Thread(target=campaign)
    t.start()
    stats = cfg.workdir / "stats.jsonl"
    before: dict = {}
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline and t.is_alive():
        time.sleep(1)
        try:
            last = json.loads(stats.read_text().splitlines()[-1])
        except (OSError, IndexError, ValueError):
            continue
        b = [n for n in last["per_node"] if n["node"].startswith("nodeB/")]
        if b and b[0]["pushed"] >= 5 and b[0]["programs"] > 0:
            time.sleep(10)  # so that some of what it found is well older than its death
            before = json.loads(stats.read_text().splitlines()[-1])
            break
    assert before, "nodeB never shipped anything"
    kill_t = time.time()
    cluster.cluster.remove_node(cluster.nodes.pop("nodeB"), allow_graceful=False)
    cluster.add("nodeC", share_guest=False)  # a fresh machine: builds its own guest
    gone = time.monotonic() + 20
    while qemus_of(cluster.root / "nodeB") and time.monotonic() < gone:
        time.sleep(0.5)
    assert not qemus_of(cluster.root / "nodeB"), "the killed node's VM outlived it"
    t.join(timeout=300)
    assert not t.is_alive() and "error" not in done, done.get("error")
    s = done["s"]
    summary = json.loads((cfg.workdir / "cluster.json").read_text())
    b_lab, c_lab = label(summary, "nodeB"), label(summary, "nodeC")
    rows = {n["node"]: n for n in s["per_node"]}
    b_before = next(n for n in before["per_node"] if n["node"] == b_lab)
    # the manager's totals kept what the dead node did
    assert s["programs"] >= before["programs"] and rows[b_lab]["programs"] >= b_before["programs"]
    assert not rows[b_lab]["alive"]
    assert any(w["node"] == b_lab and "lost with its node" in w["ended"]
               for w in summary["workers"].values())
    # every corpus entry nodeB wrote more than a few seconds before it died is the
    # cluster's: in the corpus directory, or a seed (a seed's own bytes re-found)
    names = {p.name for p in corpus.files(cfg.corpus)}
    names |= {e["name"] for e in summary["entries"] if e["node"] == "seed"}
    (bwd,) = worker_dirs(cluster, "nodeB", summary["campaign"])
    local = [p for p in corpus.files(bwd / "corpus")]
    old = [p for p in local if p.stat().st_mtime < kill_t - 5]
    assert len(old) >= 3 and {p.name for p in old} <= names
    unshipped = [p for p in local if p.name not in names]
    assert all(p.stat().st_mtime > kill_t - 5 for p in unshipped)
    # and every finding occurrence it recorded was counted once, but those still in its
    # outbox (which the hub may have had already: the answer was lost with the node)
    (f, fd), = [(f, fd) for f, fd in FindingStore(cfg.findings).list()
                if f.signature == PLANTED_SIG]
    left = [doc for _, doc in exchange.read_outbox(bwd / "exchange" / "outbox", 10**6)]
    by_node = json.loads((fd / "nodes.json").read_text())
    mine = local_count(bwd, fd.name)
    assert 0 < mine - len(left) <= by_node[b_lab] <= mine
    assert f.count == sum(by_node.values())
    assert all(int(p.name.split("-")[0]) / 1e9 > kill_t - 5
               for p in (bwd / "exchange" / "outbox").glob("*.json"))
    # the node that joined started from the whole corpus, with the kernel shipped to it
    assert rows[c_lab]["programs"] > 0
    (cw,) = [w for w in summary["workers"].values() if w["node"] == c_lab]
    assert cw["initial"] >= before["corpus"]
    assert (cluster.root / "nodeC" / "kernels" / summary["kernel"] / "shipped.json").exists()
    assert list((cluster.root / "nodeC" / "snapshots").glob("*.mig")), "its own snapshot"
