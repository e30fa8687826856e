"""The cluster's one corpus, one finding store and one view of progress: the
state of the hub actor, which lives on the manager's node. Plain Python (the
actor in ray_campaign wraps it), so it is tested without Ray too.

Corpus entries are named by content (fuzz.corpus), so the cluster's corpus is the
union of every worker's, written to the campaign's corpus directory as entries
arrive, and handed to every other worker in arrival order: each worker keeps a
cursor into one list, as each syzkaller manager keeps its place in the hub's.
Finding occurrences are replayed into the campaign's FindingStore, so a finding
seen on two nodes is one finding with a count; <findings>/<slug>/nodes.json says
how often each node saw it. Workers' last stats rows are kept after their node is
gone, so the cluster's totals never go back.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from fuzz import corpus
from fuzz.cluster import exchange
from fuzz.findings import Finding, FindingStore
from fuzz.prog import ProgramError, atomic_write

PULL_LIMIT = 256  # entries handed to a worker per sync
# files an engine adds to a finding's directory itself (hypothesis' shrunk program,
# the kmemleak scan's candidate programs)
ATTACHMENTS = ("shrunk.json", "leaks.json")
NODES_FILE = "nodes.json"
MAX_LATENCIES = 100_000
# occurrence ids remembered to recognize one shipped again (a sync whose answer was
# lost ships its batch again, at most a few hundred): the newest this many, so a
# campaign of days does not keep one id per occurrence
MAX_OCCURRENCE_IDS = 20_000


@dataclass
class HubEntry:
    name: str
    data: bytes
    found_at: float
    node: str  # "disk" and "seed" for what the campaign started with
    worker: int = -1


@dataclass
class WorkerInfo:
    node: str
    alive: bool = True
    started: float = field(default_factory=time.time)
    row: dict = field(default_factory=dict)  # its last stats line
    pushed: int = 0  # corpus entries new to the cluster
    imported: int = 0  # entries from other workers it ran
    initial: int = 0  # entries it started from
    ended: str = ""  # why it stopped, once it has


def _pct(xs: Sequence[float], q: float) -> float:
    if not xs:
        return 0.0
    s = sorted(xs)
    return round(s[min(len(s) - 1, int(q * len(s)))], 3)


class Hub:
    def __init__(self, corpus_dir: Path, findings_dir: Path, seeds: Sequence[Path] = ()) -> None:
        self.corpus_dir = Path(corpus_dir)
        self.corpus_dir.mkdir(parents=True, exist_ok=True)
        Path(findings_dir).mkdir(parents=True, exist_ok=True)
        self.store = FindingStore(Path(findings_dir))
        self.entries: list[HubEntry] = []
        self.index: dict[str, int] = {}
        for p in corpus.files(self.corpus_dir):
            self._load(p, "disk")
        for d in seeds:
            for p in corpus.files(Path(d)):
                self._load(p, "seed")
        self.rejected = 0
        self.edges: set[int] = set()
        self.edge_log: list[int] = []  # in arrival order: the manager pulls what is new
        self.node_edges: dict[str, set[int]] = {}
        self.workers: dict[int, WorkerInfo] = {}
        self.occurrences: dict[str, None] = {}  # ids in arrival order, see MAX_OCCURRENCE_IDS
        self.finding_nodes: dict[str, Counter[str]] = {}
        self.imports = 0
        self.startup_imports = 0
        self.latencies: list[float] = []  # found there -> run here, workers past their start
        self.node_latencies: dict[str, list[float]] = {}
        self.crossings: deque[dict] = deque(maxlen=2000)

    def _load(self, p: Path, origin: str) -> None:
        try:
            data = p.read_bytes()
        except OSError as e:
            print(f"hub: skipping unreadable corpus file {p}: {e.strerror}", file=sys.stderr)
            return
        name = corpus.content_name(data)
        if name not in self.index:
            self.index[name] = len(self.entries)
            self.entries.append(HubEntry(name, data, p.stat().st_mtime, origin))

    # -- workers ----------------------------------------------------------------------
    def register(self, worker: int, node: str, initial: int = 0) -> None:
        self.workers[worker] = WorkerInfo(node, initial=initial)

    def ended(self, worker: int, why: str) -> None:
        w = self.workers.get(worker)
        if w is not None and w.alive:
            w.alive, w.ended = False, why

    def pull(self, worker: int, cursor: int, limit: int = PULL_LIMIT
             ) -> tuple[list[exchange.Entry], int]:
        """Entries from cursor on that this worker did not find itself; the new cursor."""
        end = min(len(self.entries), cursor + limit)
        out = [exchange.Entry(e.name, e.data, e.found_at) for e in self.entries[cursor:end]
               if e.worker != worker]
        return out, end

    def push(self, worker: int, node: str, entries: Sequence[exchange.Entry]) -> int:
        """New corpus entries; written to the corpus directory before anyone gets them.
        Returns how many were new to the cluster."""
        new = 0
        for e in entries:
            if e.name in self.index:
                continue
            if corpus.content_name(e.data) != e.name:
                self.rejected += 1  # damaged on the way: the worker's file is still there
                continue
            atomic_write(self.corpus_dir / e.name, e.data)
            self.index[e.name] = len(self.entries)
            self.entries.append(HubEntry(e.name, e.data, e.found_at, node, worker))
            new += 1
        if worker in self.workers:
            self.workers[worker].pushed += new
        return new

    def sync(self, worker: int, node: str, cursor: int, pushes: Sequence[exchange.Entry] = (),
             row: dict | None = None, new_edges: Sequence[int] = (),
             occurrences: Sequence[tuple[str, dict]] = (), imports: Sequence[dict] = (),
             attachments: Sequence[tuple[str, str, bytes]] = ()) -> dict[str, Any]:
        """One worker's round trip: what it found since the last one, and what the
        others found meanwhile (none for cursor -1: a worker that takes no corpus)."""
        if worker not in self.workers:
            self.register(worker, node)
        self.push(worker, node, pushes)
        acked = [oid for oid, doc in occurrences if self.occurrence(oid, node, doc)]
        for imp in imports:
            self.imported(worker, node, imp)
        for slug, name, data in attachments:
            d = self.store.root / slug
            if name in ATTACHMENTS and "/" not in slug and (d / "finding.json").exists():
                atomic_write(d / name, data)
        if row:
            self.workers[worker].row = row
        if new_edges:
            fresh = set(new_edges) - self.edges
            self.edges |= fresh
            self.edge_log.extend(fresh)
            self.node_edges.setdefault(node, set()).update(new_edges)
        entries, cursor = self.pull(worker, cursor) if cursor >= 0 else ([], cursor)
        return {"entries": entries, "cursor": cursor, "acked": acked}

    def occurrence(self, oid: str, node: str, doc: dict) -> bool:
        """Replay one finding occurrence into the store, once (a worker whose sync
        was cut off ships it again). True once it is recorded."""
        if oid in self.occurrences:
            return True
        try:
            known = {f.name for f in fields(Finding)}
            slug = Finding(**{k: v for k, v in doc["finding"].items() if k in known}).slug
            exchange.replay(self.store, doc)
        except (KeyError, TypeError, ProgramError) as e:
            print(f"hub: a damaged finding occurrence from {node} dropped: {e}", file=sys.stderr)
            return True
        except OSError as e:  # a full disk: not acked, so the worker ships it again later
            print(f"hub: finding occurrence from {node} not written yet: {e.strerror or e}",
                  file=sys.stderr)
            return False
        self.occurrences[oid] = None
        if len(self.occurrences) > MAX_OCCURRENCE_IDS:
            del self.occurrences[next(iter(self.occurrences))]
        c = self.finding_nodes.setdefault(slug, Counter())
        if not c and (self.store.root / slug / NODES_FILE).exists():
            try:  # a finding from an earlier campaign: its per-node counts go on
                c.update(json.loads((self.store.root / slug / NODES_FILE).read_text()))
            except (OSError, ValueError, TypeError):
                pass
        c[node] += 1
        try:
            atomic_write(self.store.root / slug / NODES_FILE,
                         (json.dumps(dict(sorted(c.items())), indent=1) + "\n").encode())
        except OSError:
            pass  # the counts are written again with the finding's next occurrence
        return True

    def imported(self, worker: int, node: str, imp: dict) -> None:
        lat = float(imp.get("latency_s", 0.0))
        self.imports += 1
        if worker in self.workers:
            self.workers[worker].imported += 1
        if imp.get("startup"):  # waited for its worker to start: not the exchange's latency
            self.startup_imports += 1
        elif len(self.latencies) < MAX_LATENCIES:
            self.latencies.append(lat)
            self.node_latencies.setdefault(node, []).append(lat)
        i = self.index.get(str(imp.get("name")))
        if i is not None:
            e = self.entries[i]
            self.crossings.append({"name": e.name, "from": e.node, "from_worker": e.worker,
                                   "to": node, "to_worker": worker, "latency_s": lat,
                                   "startup": bool(imp.get("startup"))})

    # -- views ------------------------------------------------------------------------
    def edges_from(self, i: int) -> tuple[list[int], int]:
        return self.edge_log[i:], len(self.edge_log)

    def status(self, elapsed: float) -> dict[str, Any]:
        rows = [w.row for w in self.workers.values()]
        programs = sum(r.get("programs", 0) for r in rows)
        ops = sum(r.get("ops", 0) for r in rows)
        per_node: dict[str, dict[str, Any]] = {}
        for w in self.workers.values():
            n = per_node.setdefault(w.node, {"node": w.node, "alive": False, "workers": 0,
                                             "programs": 0, "ops": 0, "programs_per_s": 0.0,
                                             "restarts": 0, "pushed": 0, "imported": 0})
            r = w.row
            n["alive"] |= w.alive
            n["workers"] += w.alive
            n["programs"] += r.get("programs", 0)
            n["ops"] += r.get("ops", 0)
            n["restarts"] += r.get("restarts", 0)
            n["pushed"] += w.pushed
            n["imported"] += w.imported
            if w.alive and r.get("t"):
                n["programs_per_s"] = round(n["programs_per_s"] + r["programs"] / r["t"], 2)
        for name, n in per_node.items():
            n["edges"] = len(self.node_edges.get(name, ()))
            n["import_latency_p50_s"] = _pct(self.node_latencies.get(name, []), 0.5)
        seeds = sum(e.node == "seed" for e in self.entries)
        return {
            "t": round(elapsed, 1), "programs": programs, "ops": ops,
            "programs_per_s": round(programs / elapsed, 2) if elapsed else 0,
            "execs_per_s": round(ops / elapsed, 1) if elapsed else 0,
            "edges": len(self.edges), "corpus": len(self.entries) - seeds,
            "findings": len(self.store.list()),
            "vm_restarts": sum(r.get("restarts", 0) for r in rows),
            "restart_s": round(sum(r.get("restart_s", 0.0) for r in rows), 1),
            "workers": sum(w.alive for w in self.workers.values()),
            "nodes": sum(n["alive"] for n in per_node.values()),
            "workers_total": len(self.workers), "nodes_total": len(per_node),
            "imported": self.imports, "imported_at_start": self.startup_imports,
            "import_latency_s": {"p50": _pct(self.latencies, 0.5),
                                 "p90": _pct(self.latencies, 0.9),
                                 "max": round(max(self.latencies, default=0.0), 3),
                                 "mean": round(statistics.fmean(self.latencies), 3)
                                 if self.latencies else 0.0},
            "per_node": sorted(per_node.values(), key=lambda n: n["node"]),
        }

    def summary(self) -> dict[str, Any]:
        """What cluster.json keeps after the campaign: where each entry came from,
        the entries seen crossing nodes (the last 2000), each worker's end."""
        return {
            "entries": [{"name": e.name, "node": e.node, "worker": e.worker,
                         "found_at": round(e.found_at, 3)} for e in self.entries],
            "crossings": list(self.crossings),
            "workers": {k: {"node": w.node, "alive": w.alive, "ended": w.ended,
                            "pushed": w.pushed, "imported": w.imported, "initial": w.initial,
                            "programs": w.row.get("programs", 0)}
                        for k, w in sorted(self.workers.items())},
            "findings_by_node": {slug: dict(c) for slug, c in self.finding_nodes.items()},
            "rejected_entries": self.rejected,
        }
