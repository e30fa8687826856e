"""`iommufd-fuzz fuzz --ray ADDRESS`: a campaign's workers as Ray actors on the
cluster's nodes, each owning one engine process and its VM, and one hub for the
corpus, the findings and the stats.

    manager (this process, a Ray driver)  places workers on the nodes (VMs per node
       |                                  from the node's CPUs or --vms-per-node),
       |                                  writes the status line and stats.jsonl,
       |                                  stops them at the time limit
    hub (an actor on the manager's node)  fuzz.cluster.hub.Hub: the campaign's corpus
       |                                  and findings directories, every worker's row
    worker actors (any node)              one engine process each (fuzz.engines, as in
                                          a local campaign, plus --exchange); every
                                          SYNC_S it ships the engine's new corpus files,
                                          finding occurrences, stats row and edges to the
                                          hub and puts what the others found in its inbox

The kernel is packed once on the manager's node (fuzz.cluster.kernels) and put in
Ray's object store; a node that lacks it fetches it once, by its build key. The
guest's initramfs and snapshot are made on each node from that kernel, as they
are on one machine. A node that dies takes its workers with it (their engines and
VMs die with them: PR_SET_PDEATHSIG) but not what they shipped; a node that
joins gets workers that start from the whole corpus.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # Ray would phone home otherwise

import ray  # noqa: E402
from ray.exceptions import GetTimeoutError, RayActorError, RayError  # noqa: E402
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # noqa: E402

from fuzz import campaign, corpus  # noqa: E402
from fuzz.campaign import CampaignConfig  # noqa: E402
from fuzz.cluster import exchange, kernels  # noqa: E402
from fuzz.cluster.hub import ATTACHMENTS, Hub  # noqa: E402
from fuzz.logs import last_json, rotate  # noqa: E402
from fuzz.paths import REPO, cache_dir  # noqa: E402
from fuzz.prog import atomic_write  # noqa: E402
from fuzz.vm import die_with_parent  # noqa: E402

SYNC_S = 0.5  # a worker's round trip to the hub
TICK_S = 2.0  # the manager's: placement, status line, stats.jsonl
STOP_GRACE_S = 40.0  # for a worker to stop its engine and ship the rest
MIN_SECONDS = 15  # a node joining with less time left than this gets no workers
MAX_FAILURES = 3  # workers on a node that ended without running a program: then none
CALL_TIMEOUT_S = 60.0


class WorkerError(RuntimeError):
    """A worker could not start or its engine failed; the message names the node."""


@dataclass
class RayOptions:
    address: str = "auto"  # a Ray address, "auto" (the running cluster) or "local"
    vms_per_node: int | None = None  # default: one per CPU Ray sees on the node
    max_workers: int | None = None
    # replaces [python, -m, fuzz.engines.<engine>_engine]; "{python}" is the node's python
    engine_cmd: tuple[str, ...] | None = None
    sync_s: float = SYNC_S
    object_store_mb: int = 100  # for "local"


@dataclass
class WorkerSpec:
    worker: int
    campaign: str
    cfg: CampaignConfig  # the manager's; the worker puts its own node's paths in
    deadline: float  # wall clock
    offer: kernels.Offer
    archive: list  # [ObjectRef of the kernel archive]; in a list so Ray passes the ref
    code: str
    node: str
    manager_node: str
    engine_cmd: tuple[str, ...] | None = None
    sync_s: float = SYNC_S


def code_hash() -> str:
    """The fuzzer's own code: every node must run the manager's (the wire format,
    the agent and the model are shared)."""
    h = hashlib.sha256()
    root = REPO / "fuzz"
    for p in sorted(root.rglob("*")):
        if p.suffix in (".py", ".c", ".h") and "__pycache__" not in p.parts:
            h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]


def node_label(n: dict) -> str:
    return f"{n.get('NodeName') or n.get('NodeManagerAddress')}/{n['NodeID'][:6]}"


# -- the worker actor ------------------------------------------------------------------------
class Worker:
    """One engine process and its VM on this node, and its share of the exchange."""

    def __init__(self, spec: WorkerSpec, hub: Any) -> None:
        self.spec, self.hub = spec, hub
        self.stopping = threading.Event()
        self.base = cache_dir() / "campaigns" / spec.campaign
        self.wd = self.base / f"worker-{spec.worker}"
        self.x = self.wd / "exchange"
        self.known: set[str] = set()  # corpus names this worker has (found or received)
        self.sent_edges: set[int] = set()
        self.edges_mtime = 0.0
        self.cursor = 0
        self.imports_cursor = (-1, 0)  # imports.jsonl's inode and offset read up to
        self.attached: dict[str, float] = {}
        self.consumes = spec.cfg.engine == "atheris"  # hypothesis draws from no corpus
        self.kernel_shipped = False

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> dict:
        s = self.spec
        mine = code_hash()
        if mine != s.code:
            raise WorkerError(f"node {s.node}: its iommufd-fuzz is not the manager's (code "
                              f"{mine}, manager {s.code}): install the same commit on every node")
        try:
            kdir, self.kernel_shipped = kernels.ensure(
                s.offer, lambda: ray.get(s.archive[0], timeout=600), source=s.manager_node)
        except (kernels.ShipError, OSError, RayError) as e:
            raise WorkerError(f"node {s.node}: getting kernel {s.offer.key}: {e}") from None
        for d in (self.wd / "corpus", self.wd / "libfuzzer-corpus", self.x / exchange.INBOX):
            d.mkdir(parents=True, exist_ok=True)
        initial = self._initial_fill() if self.consumes else 0
        if not self.consumes:
            self.cursor = -1  # the hub sends it nothing
        ray.get(self.hub.register.remote(s.worker, s.node, initial), timeout=CALL_TIMEOUT_S)
        seconds = int(s.deadline - time.time())
        wcfg = replace(s.cfg, kernel=kdir, corpus=self.wd / "corpus",
                       findings=self.wd / "findings", workdir=self.base, seeds=(),
                       seconds=max(MIN_SECONDS, seconds))
        argv = campaign._worker_argv(wcfg, s.worker) + ["--exchange", str(self.x)]
        if s.engine_cmd:
            argv = [c.replace("{python}", sys.executable) for c in s.engine_cmd] + argv[3:]
        with open(self.wd / "worker.log", "ab") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                    preexec_fn=die_with_parent)
        try:
            while proc.poll() is None and not self.stopping.wait(s.sync_s):
                self._sync()
                rotate(self.wd / "worker.log", campaign.WORKER_LOG_MAX_BYTES)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for _ in range(3):  # what the engine wrote while stopping
            if not self._sync():
                break
        row = last_json(self.wd / "stats.jsonl")
        if self.consumes and all(p.name in self.known for p in (self.wd / "corpus").iterdir()
                                 if p.name[0] != "."):
            # all on the hub: the node keeps the worker's log, stats and findings only
            for d in ("corpus", "libfuzzer-corpus"):
                shutil.rmtree(self.wd / d, ignore_errors=True)
        out = {"worker": s.worker, "node": s.node, "rc": proc.returncode,
               "programs": row.get("programs", 0), "kernel": str(kdir),
               "kernel_shipped": self.kernel_shipped, "initial": initial}
        if not row.get("programs") and proc.returncode not in (0, -2, 130):
            tail = (self.wd / "worker.log").read_text(errors="replace")[-3000:]
            raise WorkerError(f"node {s.node}: worker {s.worker} exited {proc.returncode} "
                              f"before running anything; {self.wd}/worker.log ends:\n{tail}")
        return out

    def _initial_fill(self) -> int:
        """The whole corpus so far (seeds included) for libFuzzer to start from."""
        scratch = self.wd / "libfuzzer-corpus"
        n = 0
        while True:
            entries, cursor = ray.get(self.hub.pull.remote(self.spec.worker, self.cursor, 1000),
                                      timeout=CALL_TIMEOUT_S)
            for e in entries:
                if e.name not in self.known:
                    self.known.add(e.name)
                    (scratch / e.name).write_bytes(e.data)
                    n += 1
            if cursor == self.cursor:
                return n
            self.cursor = cursor

    def _sync(self) -> bool:
        """One round trip to the hub; False if there was nothing to ship."""
        s = self.spec
        pushes = []
        try:
            with os.scandir(self.wd / "corpus") as it:
                for de in it:
                    if de.name[0] != "." and de.name not in self.known and de.is_file():
                        try:
                            pushes.append(exchange.Entry(de.name, Path(de.path).read_bytes(),
                                                         de.stat().st_mtime))
                        except OSError:
                            continue
        except OSError:
            pass
        occ = [(f"{s.worker}/{p.name}", doc, p) for p, doc in
               exchange.read_outbox(self.x / exchange.OUTBOX)]
        attachments = []
        for name in ATTACHMENTS:
            for p in (self.wd / "findings").glob(f"*/{name}"):
                try:
                    m = p.stat().st_mtime
                    if self.attached.get(f"{p.parent.name}/{name}") != m:
                        attachments.append((p.parent.name, name, p.read_bytes(), m))
                except OSError:
                    continue
        imports, off = exchange.read_imports(self.x, self.imports_cursor)
        new_edges: list[int] = []
        ep = self.wd / "stats.edges"
        try:
            m = ep.stat().st_mtime
            if m != self.edges_mtime:
                a = array("Q")
                a.frombytes(ep.read_bytes())
                fresh = set(a) - self.sent_edges
                new_edges = list(fresh)
                self.edges_mtime = m
        except (OSError, ValueError):
            pass
        row = last_json(self.wd / "stats.jsonl")
        if row:
            row["kernel_shipped"] = self.kernel_shipped
        try:
            res = ray.get(self.hub.sync.remote(
                s.worker, s.node, self.cursor, pushes, row, new_edges,
                [(oid, doc) for oid, doc, _ in occ], imports,
                [(slug, n, data) for slug, n, data, _ in attachments]), timeout=CALL_TIMEOUT_S)
        except GetTimeoutError:
            return True  # tried again next time; nothing is lost meanwhile
        except RayActorError:
            self.stopping.set()  # the hub (and so the manager) is gone
            return False
        self.known.update(e.name for e in pushes)
        self.sent_edges.update(new_edges)
        self.imports_cursor = off
        for slug, name, _d, m in attachments:
            self.attached[f"{slug}/{name}"] = m
        acked = set(res["acked"])
        for oid, _doc, p in occ:
            if oid in acked:
                p.unlink(missing_ok=True)
        self.cursor = res["cursor"]
        for e in res["entries"]:
            if e.name not in self.known:
                self.known.add(e.name)
                if self.consumes:
                    exchange.put(self.x / exchange.INBOX, e)
        return bool(pushes or occ or imports or new_edges or res["entries"])


HubActor = ray.remote(num_cpus=0, max_restarts=0)(Hub)
# max_concurrency 2: stop() is answered while run() runs
WorkerActor = ray.remote(max_restarts=0, max_concurrency=2)(Worker)


# -- the manager -------------------------------------------------------------------------------
@dataclass
class _Slot:
    worker: int
    node_id: str
    label: str
    actor: Any
    ref: Any
    started: float = field(default_factory=time.time)


def connect(address: str, object_store_mb: int = 100) -> bool:
    """Join the cluster (or start a local Ray for "local"); True if this call did."""
    if ray.is_initialized():
        return False
    quiet = {"log_to_driver": False, "logging_level": "warning"}
    if address == "local":
        ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False,
                 object_store_memory=object_store_mb << 20, **quiet)
        return True
    try:
        ray.init(address=address, **quiet)
    except ConnectionError as e:
        raise WorkerError(f"--ray {address}: no Ray cluster there ({e}); start one with "
                          "`ray start --head` (README: running on a real cluster), or use "
                          "--ray local") from None
    return True


def run_ray_campaign(cfg: CampaignConfig, opts: RayOptions) -> dict:
    for d in (cfg.workdir, cfg.corpus, cfg.findings):
        d.mkdir(parents=True, exist_ok=True)
    for d in (cfg.corpus, *cfg.seeds):
        corpus.load(d)  # names and quarantines corrupt files before any worker gets them
    started = connect(opts.address, opts.object_store_mb)
    try:
        return _Manager(cfg, opts).run()
    finally:
        if started:
            ray.shutdown()


class _Manager:
    def __init__(self, cfg: CampaignConfig, opts: RayOptions) -> None:
        self.cfg, self.opts = cfg, opts
        self.cid = secrets.token_hex(4)
        self.my_node = ray.get_runtime_context().get_node_id()
        self.labels: dict[str, str] = {}
        self.slots: dict[int, _Slot] = {}
        self.failures: Counter[str] = Counter()
        self.errors: list[str] = []
        self.next_worker = 0
        self.edges: set[int] = set()
        self.edge_i = 0
        self.waiting_said = 0.0
        self.usable: list[str] = []  # alive nodes with CPUs that get workers
        self.blocked: list[str] = []  # ... whose workers failed MAX_FAILURES times

    def run(self) -> dict:
        cfg = self.cfg
        self.hub = HubActor.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
            self.my_node, soft=False)).remote(cfg.corpus, cfg.findings, list(cfg.seeds))
        self.offer, data = kernels.pack(cfg.kernel)
        self.archive = ray.put(data)
        self.code = code_hash()
        campaign._line_map(cfg)  # before the clock starts, as a local campaign does
        stats_log = cfg.workdir / "stats.jsonl"
        if stats_log.exists():  # the last campaign's, kept beside (t starts at 0 again)
            stats_log.replace(stats_log.with_name("stats.jsonl.1"))
        self.t0 = time.monotonic()
        self.deadline = time.time() + cfg.seconds
        tty = sys.stdout.isatty() and not cfg.quiet
        last_print = 0.0
        try:
            while time.time() < self.deadline:
                self._place()
                self._reap(timeout=0)
                self._check_failed()
                s = self._status()
                campaign.append_stats(stats_log, s)
                if tty:
                    print("\r" + campaign.status_line(s), end="", flush=True)
                elif not cfg.quiet and time.monotonic() - last_print > 30:
                    print(campaign.status_line(s), flush=True)
                    last_print = time.monotonic()
                time.sleep(min(TICK_S, max(0.0, self.deadline - time.time())))
        except KeyboardInterrupt:
            print("\ninterrupted: stopping workers (corpus and findings are on the manager's node)")
        finally:
            self._stop_all()
        s = self._status()
        s["iommufd_edges"] = self._iommufd_edges()
        campaign.append_stats(stats_log, s)
        summary = ray.get(self.hub.summary.remote(), timeout=CALL_TIMEOUT_S)
        summary.update(campaign=self.cid, kernel=self.offer.key, errors=self.errors,
                       status=s)
        atomic_write(cfg.workdir / "cluster.json", (json.dumps(summary, indent=1) + "\n").encode())
        ray.kill(self.hub)
        if not cfg.quiet:
            # the last line counts the nodes and workers that took part (all stopped now)
            print(("\n" if tty else "") + campaign.status_line(
                dict(s, nodes=s["nodes_total"], workers=s["workers_total"])))
            print(node_table(s))
            lat = s["import_latency_s"]
            print(f"corpus entries run on another worker: {s['imported']} (found -> run there: "
                  f"p50 {lat['p50']} s, p90 {lat['p90']} s, max {lat['max']} s; "
                  f"{s['imported_at_start']} more waited for their worker to start)")
            print(f"kernel edges: {s['edges']} in all, {s['iommufd_edges']} in "
                  "drivers/iommu/iommufd/")
            print(f"cluster summary: {cfg.workdir / 'cluster.json'}")
        if s["programs"] == 0 and self.errors:
            raise WorkerError("no worker ran a program:\n" + self.errors[-1])
        return s

    # -- placement ------------------------------------------------------------------------
    def _place(self) -> None:
        left = self.deadline - time.time()
        if left < MIN_SECONDS:
            return
        live = Counter(sl.node_id for sl in self.slots.values())
        self.usable, self.blocked = [], []
        for n in ray.nodes():
            cpus = float(n.get("Resources", {}).get("CPU", 0))
            if not n.get("Alive") or cpus <= 0:
                continue
            nid = n["NodeID"]
            self.labels[nid] = node_label(n)
            if self.failures[nid] >= MAX_FAILURES:
                self.blocked.append(nid)
                continue
            self.usable.append(nid)
            want = self.opts.vms_per_node or max(1, int(cpus))
            for _ in range(want - live[nid]):
                if self.opts.max_workers and len(self.slots) >= self.opts.max_workers:
                    return
                self._start(nid, cpus / want)
        if not self.usable and not self.blocked and time.monotonic() - self.waiting_said > 30:
            self.waiting_said = time.monotonic()
            print("campaign: no node has CPUs for workers yet; waiting for nodes to join",
                  file=sys.stderr, flush=True)

    def _start(self, node_id: str, cpus: float) -> None:
        k = self.next_worker
        self.next_worker += 1
        spec = WorkerSpec(k, self.cid, self.cfg, self.deadline, self.offer, [self.archive],
                          self.code, self.labels[node_id], self.labels.get(self.my_node, ""),
                          self.opts.engine_cmd, self.opts.sync_s)
        where = NodeAffinitySchedulingStrategy(node_id, soft=False)
        actor = WorkerActor.options(num_cpus=cpus, scheduling_strategy=where).remote(spec, self.hub)
        self.slots[k] = _Slot(k, node_id, self.labels[node_id], actor, actor.run.remote())

    def _reap(self, timeout: float) -> None:
        if not self.slots:
            return
        refs = {sl.ref: sl for sl in self.slots.values()}
        ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=timeout)
        for r in ready:
            sl = refs[r]
            del self.slots[sl.worker]
            why, failed = "done", False
            try:
                ray.get(r)
            except RayActorError as e:
                why = f"lost with its node ({type(e).__name__})"
            except RayError as e:
                why, failed = f"failed: {e}", True
                self.errors.append(str(e))
                print(f"\ncampaign: worker {sl.worker} on {sl.label} {why[:2000]}",
                      file=sys.stderr, flush=True)
            if failed:
                self.failures[sl.node_id] += 1
            self.hub.ended.remote(sl.worker, why)
            ray.kill(sl.actor)

    def _check_failed(self) -> None:
        if self.errors and not self.slots and not self.usable and self.blocked:
            raise WorkerError(f"every node's workers failed ({MAX_FAILURES} each); the last:\n"
                              + self.errors[-1])

    def _stop_all(self) -> None:
        for sl in self.slots.values():
            sl.actor.stop.remote()
        end = time.monotonic() + STOP_GRACE_S
        while self.slots and time.monotonic() < end:
            self._reap(timeout=1.0)
        for sl in list(self.slots.values()):
            self.hub.ended.remote(sl.worker, "did not stop in time")
            ray.kill(sl.actor)
        self.slots.clear()

    # -- status ---------------------------------------------------------------------------
    def _status(self) -> dict:
        el = time.monotonic() - self.t0
        s = ray.get(self.hub.status.remote(el), timeout=CALL_TIMEOUT_S)
        new, self.edge_i = ray.get(self.hub.edges_from.remote(self.edge_i),
                                   timeout=CALL_TIMEOUT_S)
        self.edges.update(new)
        lm = campaign._line_map(self.cfg)
        if lm is not None:
            from fuzz.coverage import edge_pcs

            s["iommufd_lines"] = lm.reached_count(edge_pcs(self.edges))
            s["iommufd_lines_total"] = lm.reachable_count()
            s["iommufd_lines_pct"] = round(100 * s["iommufd_lines"] /
                                           max(1, lm.reachable_count()), 2)
        return s

    def _iommufd_edges(self) -> int:
        from fuzz.coverage import Symbolizer
        from fuzz.coverage import iommufd_edges as count

        if not (self.cfg.kernel / "vmlinux").exists():
            return -1
        return count(Symbolizer(self.cfg.kernel), self.edges)


def node_table(s: dict) -> str:
    head = (f"{'node':<28} {'alive':>5} {'workers':>7} {'programs':>9} {'prog/s':>7} "
            f"{'edges':>6} {'pushed':>6} {'imported':>8} {'lat p50':>7}")
    rows = [head] + [
        f"{n['node'][:28]:<28} {'yes' if n['alive'] else 'no':>5} {n['workers']:>7} "
        f"{n['programs']:>9} {n['programs_per_s']:>7.1f} {n['edges']:>6} {n['pushed']:>6} "
        f"{n['imported']:>8} {n['import_latency_p50_s']:>6.2f}s" for n in s.get("per_node", [])]
    return "\n".join(rows)
