"""One program run is one finding (titled by its first splat, as syzbot does), a
splat deferred work logged before the next program started is the earlier
program's, BUG: Bad page state restores the VM, and the store survives damaged
records. Splats are real ones captured from the VM (tests/data/splats)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fuzz import findings
from fuzz.backend import Execution, taints
from fuzz.differential import Outcome
from fuzz.prog import Op, Program
from fuzz.prog.jsonio import InputError
from fuzz.prog.limits import MAX_HISTORY
from fuzz.report import parse

SPLATS = Path(__file__).parent / "data" / "splats"
PANIC = """[  420.300000][    C0] Kernel panic - not syncing: Fatal exception
[  420.300100][    C0] Kernel Offset: disabled
[  420.300200][    C0] ---[ end Kernel panic - not syncing: Fatal exception ]---
"""


def prog(k: int) -> Program:
    return Program([Op("IOAS_ALLOC") for _ in range(k + 1)])


def outcome(reports: list, crash: str | None = None, prior: list | None = None,
            history: list[Program] | None = None) -> Outcome:
    ex = Execution(reports=reports, crash=crash, prior_reports=prior or [],
                   history=history or [])
    return Outcome(prog(9), ex)


def test_gpf_kasan_and_fatal_exception_of_one_run_are_one_finding() -> None:
    log = (SPLATS / "gpf_iommufd_memcpy.txt").read_text() + \
        (SPLATS / "kasan_slab_uaf_iopt.txt").read_text() + PANIC
    reports = parse(log)
    assert [r.kind for r in reports] == ["GPF", "KASAN", "PANIC"]
    [f] = findings.from_outcome(outcome(reports, crash="qemu exited (status 0) while "
                                                      "running a program"))
    assert f.title == "general protection fault in iommufd_fill_hw_info"
    assert f.signature == reports[0].signature and f.kind == "splat"
    assert f.also == ["KASAN: slab-use-after-free Read in iopt_area_split",
                      "kernel panic: Fatal exception",
                      "guest crash: qemu exited (status 0) while running a program"]


def test_a_burst_of_kasan_reports_is_one_finding(tmp_path: Path) -> None:
    one = (SPLATS / "kasan_slab_uaf_iopt.txt").read_text()
    burst = parse("".join(one.replace("T385]", f"T{400 + k}]") for k in range(5)))
    assert len(burst) == 5
    store = findings.FindingStore(tmp_path)
    [(f, new)] = store.record_outcome(outcome(burst), {})
    assert new and f.title == "KASAN: slab-use-after-free Read in iopt_area_split"
    assert f.also == []  # the same title four more times is no news
    assert len(store.list()) == 1


def test_a_panic_alone_titles_its_finding() -> None:
    reports = parse(PANIC)
    [f] = findings.from_outcome(outcome(reports, crash="qemu exited"))
    assert f.title == "kernel panic: Fatal exception"


def test_a_run_with_a_splat_and_a_mismatch_is_one_finding() -> None:
    from fuzz.compare import Mismatch

    reports = parse((SPLATS / "warning_iopt_unmap.txt").read_text())
    out = outcome(reports)
    out.mismatches = [Mismatch(3, "IOAS_UNMAP", "errno", 0, 2)]
    [f] = findings.from_outcome(out)
    assert f.title == reports[0].title
    assert f.also == ["model/kernel mismatch in IOAS_UNMAP.errno"]


def test_bad_page_state_restores_the_vm_like_any_tainting_splat() -> None:
    log = "\n".join(f"[   10.00000{k}][    T1] {ln}" for k, ln in enumerate([
        "BUG: Bad page state in process init  pfn:1234a",
        "page: refcount:0 mapcount:0 mapping:0000000000000000 index:0x0 pfn:0x1234a",
        "page dumped because: nonzero mapcount", "Call Trace:", " <TASK>",
        " dump_stack_lvl+0x1/0x2", " bad_page+0x1/0x2", " free_unref_page+0x1/0x2",
        " batch_unpin+0x1/0x2", " </TASK>", "Disabling lock debugging due to kernel taint"]))
    reports = parse(log)
    assert [(r.kind, r.title) for r in reports] == [("BUG", "BUG: Bad page state in batch_unpin")]
    assert taints(reports, log)
    # whatever report comes with it, lockdep being switched off means a restore
    assert taints([], "[ 1.0][ T1] Disabling lock debugging due to kernel taint\n")
    assert not taints(parse((SPLATS / "warning_iopt_unmap.txt").read_text()), "")


def test_a_deferred_splat_is_the_program_before_it() -> None:
    reports = parse((SPLATS / "warning_iopt_unmap.txt").read_text())
    history = [prog(0), prog(1), prog(2)]
    [ev] = findings.attribute(outcome(reports, prior=reports, history=history))
    assert ev.finding.deferred and ev.prog is history[-1] and ev.history == history[:-1]
    # nothing ran before it since the restore: it can only be this program's
    [ev] = findings.attribute(outcome(reports, prior=reports, history=[]))
    assert not ev.finding.deferred and ev.prog.dumps() == prog(9).dumps()
    # a deferred splat and the program's own: one finding each, each on its program
    own = parse((SPLATS / "kasan_slab_uaf_iopt.txt").read_text())
    evs = findings.attribute(outcome(reports + own, prior=reports, history=history))
    assert [(e.finding.title, e.prog is history[-1]) for e in evs] == [
        (reports[0].title, True), (own[0].title, False)]
    assert evs[1].history == history


def test_the_store_keeps_history_and_creates_nothing_to_list(tmp_path: Path) -> None:
    root = tmp_path / "nowhere"
    store = findings.FindingStore(root)
    assert store.list() == [] and not root.exists()
    f = findings.Finding("WARNING in x", "sig", "splat")
    assert store.record(f, prog(1), "log", {"key": "k"}, history=[prog(0)] * (MAX_HISTORY + 5))
    [(rec, d)] = store.list()
    st = findings.load_finding(d)
    assert len(st.history) == MAX_HISTORY and st.manifest == {"key": "k"}
    for name in ("finding.json", "program.json", "history.json", "kernel.log", "manifest.json"):
        assert (d / name).stat().st_mode & 0o777 == 0o644, name


def test_damaged_finding_records_are_named_not_tracebacks(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = findings.FindingStore(tmp_path)
    store.record(findings.Finding("WARNING in x", "sig", "splat"), prog(1), "", {})
    [(_, d)] = store.list()
    meta = d / "finding.json"
    doc = json.loads(meta.read_text())
    meta.write_text(json.dumps({**doc, "added_by_a_newer_version": 1}))
    assert store.list()[0][0].title == "WARNING in x"  # unknown keys are no damage
    for bad, says in [("{not json", "not valid JSON"), ("[1, 2]", "expected a JSON object"),
                      (json.dumps({**doc, "count": "many"}), "'count' has the wrong type"),
                      (json.dumps({"title": "t"}), "no 'signature'"),
                      ("\xff", "not valid JSON")]:
        meta.write_text(bad)
        assert store.list() == []
        assert says in capsys.readouterr().err
        with pytest.raises(InputError, match=says):
            findings.load_finding(d)
    meta.write_text(json.dumps(doc))
    (d / "history.json").write_text(json.dumps({"version": 1, "programs": [{"ops": 3}]}))
    with pytest.raises(InputError, match=r"history.json: program 0: unsupported version"):
        findings.load_finding(d)
    (d / "history.json").unlink()
    (d / "program.json").write_text('{"version": 1, "ops": [{"op": {"a": 1}}]}')
    with pytest.raises(InputError, match=r"program.json: op 0: the op name must be a string"):
        findings.load_finding(d)


def _racing_fault_queue() -> tuple[Program, list]:
    """The soak's finding (tests/test_faults_prog.py has the model side): a fault queue
    beside a racing CLOSE got a new id and the closed fd."""
    from fuzz.prog import Ref
    from fuzz.result import OpResult

    ioas = Ref(0, "out_ioas_id")
    p = Program([Op("IOAS_ALLOC"), Op("TEST_CREATE_ACCESS", {"id": ioas}),
                 Op("CLOSE", {"fd": Ref(1, "out_access_fd")}, thread=1, barrier=1),
                 Op("FAULT_QUEUE_ALLOC", barrier=1)])
    res = [OpResult(out={"out_ioas_id": 1}), OpResult(out={"out_access_fd": 4}),
           OpResult(thread=1, t_start=5, t_end=9),
           OpResult(out={"out_fault_id": 3, "out_fault_fd": 4}, t_start=6, t_end=8)]
    return p, res


def test_a_finding_keeps_the_kernels_results_and_recheck_runs_the_model_on_them(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fuzz.cli import main
    from fuzz.compare import Mismatch

    p, res = _racing_fault_queue()
    out = Outcome(p, Execution(results=res),
                  mismatches=[Mismatch(3, "FAULT_QUEUE_ALLOC", "out_fault_fd", 4, 5)])
    store = findings.FindingStore(tmp_path)
    [(f, new)] = store.record_outcome(out, {})
    d = tmp_path / f.slug
    assert new and (d / findings.RESULTS_FILE).exists()
    stored = findings.load_finding(d)
    assert [(r.errno, r.out, r.thread) for r in stored.results] == \
        [(r.errno, r.out, r.thread) for r in res]
    # the model of this checkout gives the kernel its choice of ids and fds here
    assert main(["recheck", str(d)]) == 0
    assert "the model agrees now" in capsys.readouterr().out
    # a result no leeway explains (fd 5 of the access that stays open, given out again)
    bad = list(res)
    bad[2] = type(res[2])(thread=1)
    p2 = Program([*p.ops[:2], Op("IOAS_ALLOC", thread=1, barrier=1), p.ops[3]])
    (d / "program.json").write_text(p2.dumps())
    bad[3] = type(res[3])(out={"out_fault_id": 3, "out_fault_fd": 4})
    bad[2] = type(res[2])(out={"out_ioas_id": 2}, thread=1)
    (d / findings.RESULTS_FILE).write_bytes(findings.results_json(bad))
    assert main(["recheck", str(d)]) == 1
    assert "still a mismatch at op 2 (IOAS_ALLOC): " in capsys.readouterr().out
    # damaged or missing results: one line naming the file, or a note and exit 2
    (d / findings.RESULTS_FILE).write_text('{"version": 1, "ops": [{"errno": "x"}]}')
    with pytest.raises(InputError, match=findings.RESULTS_FILE):
        findings.load_finding(d)
    (d / findings.RESULTS_FILE).unlink()
    assert main(["recheck", str(d)]) == 2
    assert f"no {findings.RESULTS_FILE}" in capsys.readouterr().out


def test_recheck_names_the_op_a_known_bug_covers_and_that_the_findings_own_op_agrees(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A soak's finding (tests/data/known_bug_at_another_op): op 7's out_idev_id, which
    the model of today gets right (races.first_id_early), while op 5, a GET_DIRTY_BITMAP
    before tracking was on, is the known bug dirty-bitmap-error-dropped. The verdict
    said only "a known bug"."""
    import shutil

    from fuzz.cli import main

    d = tmp_path / "f"
    shutil.copytree(Path(__file__).parent / "data" / "known_bug_at_another_op", d)
    assert main(["recheck", str(d)]) == 0
    assert ("\nagrees at op 7 (TEST_MOCK_DOMAIN); op 5 (HWPT_GET_DIRTY_BITMAP) is known bug "
            "dirty-bitmap-error-dropped: 1 mismatches, 0 unsure") in capsys.readouterr().out
    # a finding that is the known bug's own op
    meta = json.loads((d / "finding.json").read_text())
    (d / "finding.json").write_text(json.dumps({**meta, "op": 5}))
    assert main(["recheck", str(d)]) == 0
    assert ("\nonly known bugs: op 5 (HWPT_GET_DIRTY_BITMAP) is known bug "
            "dirty-bitmap-error-dropped: ") in capsys.readouterr().out


def test_a_campaign_workers_finding_keeps_the_kernels_results(tmp_path: Path) -> None:
    """The engines record through WorkerState.record, not record_outcome: their findings
    must keep kernel-results.json too (camp13's race and fault findings had none)."""
    from fuzz.compare import Mismatch
    from fuzz.engines.common import WorkerState

    p, res = _racing_fault_queue()
    out = Outcome(p, Execution(results=res),
                  mismatches=[Mismatch(3, "FAULT_QUEUE_ALLOC", "out_fault_fd", 4, 5)])
    store = findings.FindingStore(tmp_path / "f")
    st = WorkerState(None, tmp_path / "corpus", store, tmp_path / "stats.jsonl")  # type: ignore
    st.record(out)
    [d] = [x for x in (tmp_path / "f").iterdir() if x.is_dir()]
    assert [r.out for r in findings.load_finding(d).results] == [r.out for r in res]


def test_a_finding_seen_again_still_describes_the_program_it_keeps(tmp_path: Path) -> None:
    """The second occurrence is counted; its op and detail (another program's: camp13's
    VFIO_SET_IOMMU finding named op 6 of a program whose op 6 is an OPTION) are not
    written over the first's, whose program is the one stored."""
    store = findings.FindingStore(tmp_path)
    first = findings.Finding("model/kernel mismatch in X.errno", "sig", "mismatch", op=5,
                             field="errno", detail="op 5 (X): errno")
    assert store.record(first, prog(1), "", {})
    again = findings.Finding(first.title, "sig", "mismatch", op=6, field="errno",
                             detail="op 6 (X): errno")
    assert not store.record(again, prog(2), "", {})
    [(rec, d)] = store.list()
    assert (rec.count, rec.op, rec.detail) == (2, 5, "op 5 (X): errno")
    assert findings.load_finding(d).prog.dumps() == prog(1).dumps()


def test_a_model_that_raises_is_a_finding_and_the_ops_after_it_are_not_compared(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug of the model (here: a handler that raises) must not end a campaign: it is a
    finding named after where the model raised, with the kernel's results kept, and the
    ops after it are unsure, not compared against a model that stopped."""
    from fuzz import differential
    from fuzz.model import model as model_module
    from fuzz.prog import Op, Program, Ref
    from fuzz.result import OpResult

    def broken(m: object, a: object) -> dict:
        raise AttributeError("'NoneType' object has no attribute 'end'")

    monkeypatch.setitem(model_module.HANDLERS, "IOAS_IOVA_RANGES", broken)
    ioas = Ref(0, "out_ioas_id")
    p = Program([Op("IOAS_ALLOC"), Op("IOAS_IOVA_RANGES", {"ioas_id": ioas}),
                 Op("DESTROY", {"id": ioas})])
    kernel = [OpResult(0, out={"out_ioas_id": 1}), OpResult(0), OpResult(0)]
    predicted, mism, unsure = differential.model_alongside(p, kernel)
    assert [(m.op, m.field) for m in mism] == [(1, "model_error")]
    assert mism[0].model[0] == "AttributeError in step (model.py)"
    assert [u.op for u in unsure] == [2] and len(predicted) == 3
    f = findings.mismatch_finding(mism[0])
    # the innermost frame in fuzz/model/ names it (the handler here is the test's)
    assert f.title == "model error in IOAS_IOVA_RANGES: AttributeError in step (model.py)"
    assert f.signature == "model error IOAS_IOVA_RANGES AttributeError in step (model.py)"
    assert "no attribute 'end'" in f.detail


def test_minimize_refuses_a_model_error_finding_before_it_boots_a_vm(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fuzz.cli import main
    from fuzz.compare import Mismatch

    m = Mismatch(0, "IOAS_ALLOC", "model_error", None, ("KeyError in step (model.py)", "'x'"))
    store = findings.FindingStore(tmp_path / "findings")
    store.record(findings.mismatch_finding(m), Program([Op("IOAS_ALLOC")]), "", {})
    (d,) = (tmp_path / "findings").iterdir()
    assert main(["minimize", str(d), "--kernel", str(tmp_path / "no-kernel")]) == 2
    assert "a bug of the model" in capsys.readouterr().err
