"""The parts of a cluster campaign that need neither Ray nor a VM: the hub's
corpus union and cursors, findings replayed from two nodes' outboxes into one
store, the engine's inbox, shipping a kernel into an empty cache, and Ray being
optional (tests/test_ray.py runs all of it on a real multi-node cluster)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fuzz import corpus
from fuzz.cluster import exchange, kernels
from fuzz.cluster.hub import Hub
from fuzz.findings import Finding, FindingStore
from fuzz.prog import Buffer, BufPtr, Op, Program, Ref


def prog(length: int) -> Program:
    return Program([Op("IOAS_ALLOC"),
                    Op("IOAS_MAP", {"ioas_id": Ref(0, "out_ioas_id"), "user_va": BufPtr(0),
                                    "length": length, "flags": 6})], [Buffer(1 << 20)])


def entry(p: Program, t: float = 0.0) -> exchange.Entry:
    data = p.dumps().encode()
    return exchange.Entry(corpus.content_name(data), data, t or time.time())


def test_hub_corpus_is_the_union_handed_to_every_other_worker(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    prog(4096).save(seeds / "a-seed.json")
    hub = Hub(tmp_path / "corpus", tmp_path / "findings", [seeds])
    a, b = entry(prog(8192)), entry(prog(3 * 4096))
    hub.register(1, "nodeA")
    hub.register(2, "nodeB")
    assert hub.push(1, "nodeA", [a]) == 1
    assert hub.push(2, "nodeB", [a, b]) == 1  # a is the cluster's already
    bad = exchange.Entry("0" * 40, b"{}", time.time())
    assert hub.push(2, "nodeB", [bad]) == 0 and hub.rejected == 1
    # every worker gets the seed and what the others found, never its own
    got1, c1 = hub.pull(1, 0)
    got2, c2 = hub.pull(2, 0)
    assert [e.name for e in got1] == [hub.entries[0].name, b.name]
    assert [e.name for e in got2] == [hub.entries[0].name, a.name]
    assert c1 == c2 == 3 and hub.pull(1, c1) == ([], 3)
    # on disk: the union, content-named, seeds not copied in
    assert sorted(p.name for p in corpus.files(tmp_path / "corpus")) == sorted([a.name, b.name])
    s = hub.status(10.0)
    assert s["corpus"] == 2 and {n["node"]: n["pushed"] for n in s["per_node"]} == \
        {"nodeA": 1, "nodeB": 1}
    # a campaign resumed on the same directories starts from all of it
    again = Hub(tmp_path / "corpus", tmp_path / "findings", [seeds])
    assert {e.name for e in again.entries} == {hub.entries[0].name, a.name, b.name}


def test_finding_from_two_nodes_is_one_finding_with_a_count(tmp_path: Path) -> None:
    """Each node's engine records into its OutboxStore (its own store plus the spool);
    the hub replays the spools into the campaign's store."""
    hub = Hub(tmp_path / "corpus", tmp_path / "findings")
    outs = {}
    for node, times in (("nodeA", 2), ("nodeB", 1)):
        st = exchange.OutboxStore(tmp_path / node / "findings", tmp_path / node / "outbox")
        for _ in range(times):
            f = Finding("model/kernel mismatch in IOAS_MAP.errno",
                        "mismatch IOAS_MAP.errno kernel=0 model=ENOMEM", "mismatch", op=1,
                        field="errno")
            st.record(f, prog(17 * 4096), "log line", {"key": "k"})
        outs[node] = exchange.read_outbox(st.outbox)
        assert len(outs[node]) == times
    for w, node in enumerate(outs, 1):
        occ = [(f"{w}/{p.name}", doc) for p, doc in outs[node]]
        res = hub.sync(w, node, -1, occurrences=occ)
        assert sorted(res["acked"]) == sorted(o for o, _ in occ)
        hub.sync(w, node, -1, occurrences=occ)  # shipped again after a lost answer: once
    (f, d), = FindingStore(tmp_path / "findings").list()
    assert f.count == 3
    assert json.loads((d / "nodes.json").read_text()) == {"nodeA": 2, "nodeB": 1}
    assert Program.load(d / "program.json").ops[1].args["length"] == 17 * 4096
    assert json.loads((d / "manifest.json").read_text()) == {"key": "k"}
    # each node kept its own count
    for node, n in (("nodeA", 2), ("nodeB", 1)):
        (lf, _), = FindingStore(tmp_path / node / "findings").list()
        assert lf.count == n


def test_a_finding_reaches_the_hub_with_its_history_and_later_splats(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One crash is one finding and the programs before it travel with it: the
    history with the node's first occurrence only (the hub keeps the first one's
    files); an occurrence the hub's disk refused is not acked, so it comes again."""
    from fuzz.findings import load_finding

    hub = Hub(tmp_path / "corpus", tmp_path / "findings")
    st = exchange.OutboxStore(tmp_path / "n" / "findings", tmp_path / "n" / "outbox")
    history = [prog(4096), prog(2 * 4096)]
    for _ in range(2):
        f = Finding("general protection fault in batch_unpin", "gpf-sig", "splat",
                    also=["KASAN: maybe wild-memory-access in batch_unpin",
                          "kernel panic: Fatal exception"])
        st.record(f, prog(3 * 4096), "log", {"key": "k"}, history)
    docs = [doc for _, doc in exchange.read_outbox(st.outbox)]
    assert [len(d["args"]) for d in docs] == [1, 0]
    occ = [(f"1/{p.name}", doc) for p, doc in exchange.read_outbox(st.outbox)]

    def full(*_: object, **__: object) -> bool:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(hub.store, "record", full)
        assert hub.sync(1, "n", -1, occurrences=occ)["acked"] == []
    assert sorted(hub.sync(1, "n", -1, occurrences=occ)["acked"]) == sorted(o for o, _ in occ)
    (_, d), = FindingStore(tmp_path / "findings").list()
    got = load_finding(d)
    assert got.finding.count == 2 and len(got.finding.also) == 2
    assert [h.dumps() for h in got.history] == [h.dumps() for h in history]


def test_imports_log_is_bounded_and_read_across_its_move(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exchange, "IMPORTS_MAX_BYTES", 400)
    got: list[str] = []
    cursor = (-1, 0)
    for k in range(60):
        exchange.log_import(tmp_path, f"e{k}", 0.5)
        if k % 3 == 0:  # the actor reads now and then; the engine moves the file meanwhile
            lines, cursor = exchange.read_imports(tmp_path, cursor)
            got += [x["name"] for x in lines]
    lines, cursor = exchange.read_imports(tmp_path, cursor)
    got += [x["name"] for x in lines]
    assert got == [f"e{k}" for k in range(60)]
    assert (tmp_path / "imports.jsonl.1").exists()
    assert all(p.stat().st_size < 600 for p in tmp_path.glob("imports.jsonl*"))


def test_inbox_hands_entries_over_whole_in_the_order_found(tmp_path: Path) -> None:
    box = exchange.Inbox(tmp_path / "inbox")
    assert box.take() is None
    late, early = entry(prog(8192), time.time() - 1), entry(prog(4096), time.time() - 5)
    exchange.put(box.dir, late)
    exchange.put(box.dir, early)
    box.next_poll = 0
    got = [box.take(), box.take()]
    assert [e.name for e in got if e] == [early.name, late.name]
    assert got[0] and abs(got[0].found_at - early.found_at) < 1e-3  # mtime carries it
    assert got[0].data == early.data and not os.listdir(box.dir)  # taken is removed


def test_kernel_ships_into_an_empty_cache_once(kernel_dir: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    offer, data = kernels.pack(kernel_dir)
    assert offer.key == json.loads((kernel_dir / "manifest.json").read_text())["key"]
    assert offer.size < 20 << 20, "the archive leaves vmlinux on the manager's node"
    monkeypatch.setenv("IOMMUFD_FUZZ_CACHE", str(tmp_path / "node"))
    assert kernels.find(offer) is None
    with pytest.raises(kernels.ShipError, match="damaged"):
        kernels.install(offer, data[:-1] + bytes([data[-1] ^ 1]))
    calls = []
    d, shipped = kernels.ensure(offer, lambda: calls.append(1) or data, "head")
    assert shipped and calls == [1] and d == tmp_path / "node" / "kernels" / offer.key
    assert (d / "bzImage").read_bytes() == (kernel_dir / "bzImage").read_bytes()
    assert not (d / "vmlinux").exists() and (d / "shipped.json").exists()
    assert json.loads((d / "manifest.json").read_text())["key"] == offer.key
    assert kernels.ensure(offer, lambda: pytest.fail("fetched twice"), "head") == (d, False)
    # a node that built the key itself, to other bytes, keeps its build
    (d / "bzImage").write_bytes(b"another build")
    d2, shipped = kernels.ensure(offer, lambda: data, "head")
    assert shipped and d2.name == f"{offer.key}+{offer.image_sha256[:8]}"
    assert (d / "bzImage").read_bytes() == b"another build"
    assert hashlib.sha256((d2 / "bzImage").read_bytes()).hexdigest() == offer.image_sha256


def test_ray_is_optional(tmp_path: Path) -> None:
    """Without Ray: everything but --ray imports, and --ray says what to install."""
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "import fuzz.campaign, fuzz.engines.common, fuzz.cluster.exchange, fuzz.cluster.hub\n"
        "import fuzz.cluster.kernels\n"
        "from fuzz.cli import main\n"
        f"sys.argv = ['iommufd-fuzz', 'fuzz', '--ray', 'auto', '--time', '1s', "
        f"'--kernel', {str(tmp_path)!r}, '--workdir', {str(tmp_path / 'w')!r}]\n"
        "main()\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode != 0
    assert "Ray is not installed" in p.stderr and "pip install -e '.[ray]'" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr, p.stderr
