"""Findings that need history, and splats that deferred work logs late, on a real
kernel with planted bugs (two of tests/data/planted.patch, a `--patch` build):

- TEST_SET_TEMP_MEMORY_LIMIT with limit PLANTED_ARM arms a WARN that any later
  TEST_MD_CHECK_REFS in the same boot fires: the program that shows the WARNING
  does not reproduce it alone, the finding needs the earlier program;
- limit PLANTED_DEFER schedules a WARN from a work item 200 ms later: it is logged
  after the program's results went out, so the agent reports it before the next
  program's own lines, and the finding must be put on the program that caused it.

The patched kernel is built once (12-20 min, cached like the default kernel); the
finding's manifest names it, and `minimize`/`repro` must find it by themselves.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fuzz import kernel
from fuzz.backend import Execution, VMBackend
from fuzz.findings import FindingStore, attribute, load_finding
from fuzz.minimize import minimize
from fuzz.paths import REPO
from fuzz.prog import Buffer, BufPtr, Op, Program, Ref
from fuzz.report import Report
from fuzz.result import OpResult

PATCH = Path(__file__).parent / "data" / "planted.patch"
PLANTED_ARM = 0x10BADBAD
PLANTED_DEFER = 0x10BAD0FF
HISTORY_TITLE = "WARNING in iommufd_test"
DEFERRED_TITLE = "WARNING in planted_deferred_fn"


@pytest.fixture(scope="module")
def planted_kernel() -> Path:
    try:
        return kernel.build(kernel.BuildRequest(patches=[PATCH]))
    except kernel.KernelError as e:
        pytest.fail(f"cannot build the planted kernel: {e}")


@pytest.fixture
def workdir() -> Iterator[Path]:
    d = REPO / "workdir" / "test-history" / f"{time.time_ns()}"
    d.mkdir(parents=True)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def limit(v: int) -> Program:
    return Program([Op("TEST_SET_TEMP_MEMORY_LIMIT", {"limit": v})])


def noise(k: int) -> Program:
    """Programs that touch nothing the planted bugs look at: no buffers either (the
    executor's buffer pool checks a kept buffer's pins with MD_CHECK_REFS)."""
    return Program([Op("IOAS_ALLOC"), Op("IOAS_IOVA_RANGES", {"ioas_id": Ref(0, "out_ioas_id")}),
                    *[Op("IOAS_ALLOC") for _ in range(k)],
                    Op("DESTROY", {"id": Ref(0, "out_ioas_id")})])


CHECK_REFS = Program([Op("IOAS_ALLOC"),
                      Op("TEST_MD_CHECK_REFS", {"id": Ref(0, "out_ioas_id"), "uptr": BufPtr(0),
                                                "length": 4096, "refs": 0})],
                     [Buffer(1 << 16, "anon", 7)])


@pytest.mark.variant
def test_a_finding_that_needs_history_is_found_minimized_and_reproduced(
        planted_kernel: Path, workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fuzz import differential
    from fuzz.cli import main

    be = VMBackend(planted_kernel)
    try:
        runs = [differential.run(p, be) for p in
                (noise(0), limit(PLANTED_ARM), noise(1), noise(2), CHECK_REFS)]
    finally:
        be.close()
    assert not any(r.execution.reports for r in runs[:4])
    last = runs[-1].execution
    assert [r.title for r in last.reports] == [HISTORY_TITLE]
    assert len(last.history) == 4, "everything the VM ran since its start"
    store = FindingStore(workdir / "findings")
    [(f, new)] = store.record_outcome(runs[-1], kernel.manifest(planted_kernel))
    assert new and f.title == HISTORY_TITLE
    [(_, fdir)] = store.list()
    stored = load_finding(fdir)
    assert [p.dumps() for p in stored.history] == [r.prog.dumps() for r in runs[:4]]

    # no --kernel: the finding's manifest names the planted kernel
    rc = main(["minimize", str(fdir), "--out", str(workdir / "reproducers"), "--rate-runs", "2"])
    out, err = capsys.readouterr()
    assert f"kernel: {planted_kernel} (the one the finding" in err
    assert rc == 0, out + err
    assert "does not reproduce alone" in out and "needs history: 1 of the 4" in out
    d = workdir / "reproducers" / fdir.name
    assert Program.load(d / "history" / "00.json").dumps() == limit(PLANTED_ARM).dumps()
    assert not (d / "history" / "01.json").exists()
    report = (d / "report.txt").read_text()
    assert report.count("REPRODUCED  ") == 3, report
    py = (d / "repro.py").read_text()
    assert "def program_0():" in py and "program_0()" in py
    assert "static void program_0(void)" in (d / "repro.c").read_text()

    rc = main(["repro", str(d)])
    out, err = capsys.readouterr()
    assert rc == 0, out + err
    assert out.count("REPRODUCED    ") == 3
    assert f"kernel: {planted_kernel}" in err

    # and on the default kernel, the bug is not there: said loudly, not reproduced
    rc = main(["repro", str(d), "--kernel", str(kernel.default_kernel())])
    out, err = capsys.readouterr()
    assert "WARNING: the reproducer" in err and "recorded on another kernel" in err
    assert rc == 1 and out.count("NOT REPRODUCED  ") == 3, out


@pytest.mark.variant
def test_a_splat_logged_by_deferred_work_is_put_on_the_program_that_caused_it(
        planted_kernel: Path, workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fuzz import differential
    from fuzz.cli import main

    be = VMBackend(planted_kernel)
    try:
        first = differential.run(limit(PLANTED_DEFER), be)
        time.sleep(1.0)  # the work item runs 200 ms later, after the results went out
        second = differential.run(noise(0), be)
    finally:
        be.close()
    assert not first.execution.reports
    ex = second.execution
    assert [r.title for r in ex.prior_reports] == [DEFERRED_TITLE]
    [ev] = attribute(second)
    assert ev.finding.title == DEFERRED_TITLE and ev.finding.deferred
    assert ev.prog.dumps() == limit(PLANTED_DEFER).dumps() and ev.history == []
    store = FindingStore(workdir / "findings")
    store.record_outcome(second, kernel.manifest(planted_kernel))
    [(f, fdir)] = store.list()
    assert f.deferred and Program.load(fdir / "program.json").ops[0].args["limit"] == \
        PLANTED_DEFER

    rc = main(["minimize", str(fdir), "--out", str(workdir / "reproducers"), "--rate-runs", "2"])
    out, err = capsys.readouterr()
    assert rc == 0, out + err
    assert "original reproduced 2/2" in out
    report = (workdir / "reproducers" / fdir.name / "report.txt").read_text()
    assert report.count("REPRODUCED  ") == 3, report


# the arming program of the history above, with an injected fault and a race group
ARM_FAULTED_RACING = Program([Op("IOAS_ALLOC", fail_nth=1),
                              Op("IOAS_ALLOC", thread=1, barrier=1),
                              Op("IOAS_ALLOC", thread=2, barrier=1),
                              Op("TEST_SET_TEMP_MEMORY_LIMIT", {"limit": PLANTED_ARM})])


@pytest.mark.variant
def test_history_with_faults_and_threads_is_replayed_as_the_executor_ran_it(
        planted_kernel: Path, workdir: Path) -> None:
    """An earlier program with a fault injected and ops racing on threads: every form of
    the reproducer replays it with its fault armed and its race group issued from its
    threads (the earlier program's op lines say so), runs RUNS times since a program it
    needs has threads, replays the history in each run, and reproduces."""
    import errno
    import re

    from fuzz import differential
    from fuzz.report import splat_keys
    from fuzz.repro.expect import Expectation
    from fuzz.repro.verify import verify
    from fuzz.repro.walk import RUNS_THREADED
    from fuzz.repro.write import write_reproducer

    be = VMBackend(planted_kernel)
    try:
        first = differential.run(ARM_FAULTED_RACING, be).execution
        assert first.results[0].injected and first.results[0].errno == errno.ENOMEM
        assert [r.errno for r in first.results[1:]] == [0, 0, 0] and not first.reports
        last = differential.run(CHECK_REFS, be)
        assert [r.title for r in last.execution.reports] == [HISTORY_TITLE]
        [ev] = attribute(last)
        exp = Expectation("splat", ev.finding.signature, HISTORY_TITLE,
                          keys=splat_keys(HISTORY_TITLE))
        d = write_reproducer(workdir / "repro", CHECK_REFS, exp, kernel.manifest(planted_kernel),
                             history=[ARM_FAULTED_RACING])
        res = verify(d, be)
        for name in ("program.json", "repro.py", "repro.c"):
            hit, said = res[name]
            rate = re.search(r"\((\d+)/(\d+) runs\)", said)
            assert hit and rate and int(rate[2]) == RUNS_THREADED, (name, said)
        be.vm.restart()
        out = be.vm.run_command(["/usr/bin/python3", "-I", str(d / "repro.py")], timeout=600)
        lines = out["stdout"].splitlines()
        h = lines.index("== history/00.json")
        assert lines[h + 5] == "== program.json", lines[h:h + 6]
        assert re.match(r"op 0 IOAS_ALLOC errno=12 .* fault=injected", lines[h + 1]), lines
        assert {m[1] for ln in lines[h + 2:h + 4] if (m := re.search(r" thread=(\d) us=", ln))} \
            == {"1", "2"}, lines[h + 2:h + 4]
        assert re.match(rf"REPRODUCED: .* \(\d+/{RUNS_THREADED} runs\)", lines[-1]), lines[-1]
    finally:
        be.close()


# -- the search itself, on a stand-in kernel whose state is what ran since its start


class StatefulKernel:
    """A stand-in backend: a program with MD_CHECK_REFS "splats" if a program with
    the arming limit ran since the last restart; everything else agrees. Enough to
    pin the order and the cost of the search; the real thing is the test above."""

    name = "stateful"

    class _VM:
        def __init__(self, owner: StatefulKernel) -> None:
            self.owner = owner

        def restart(self) -> None:
            self.owner.armed = False
            self.owner.restarts += 1

    def __init__(self) -> None:
        self.armed = False
        self.restarts = 0
        self.runs: list[str] = []
        self.vm = self._VM(self)

    def run(self, prog: Program, **_: object) -> Execution:
        names = [op.name for op in prog.ops]
        self.runs.append(",".join(names))
        reports = []
        if "TEST_MD_CHECK_REFS" in names and self.armed:
            reports = [Report("WARNING", HISTORY_TITLE)]
        if any(op.args.get("limit") == PLANTED_ARM for op in prog.ops):
            self.armed = True
        return Execution(results=[OpResult(0) for _ in prog.ops], reports=reports)

    def close(self) -> None:
        pass


def test_history_search_tries_suffixes_then_bisects(monkeypatch: pytest.MonkeyPatch) -> None:
    from fuzz import differential

    monkeypatch.setattr(differential, "model_alongside",
                        lambda prog, kernel, *_: (list(kernel), [], []))
    sig = Report("WARNING", HISTORY_TITLE).signature
    history = [noise(k) for k in range(5)] + [limit(PLANTED_ARM)] + [noise(k) for k in range(4)]
    be = StatefulKernel()
    res = minimize((CHECK_REFS, sig), be, rate_runs=2, history=history)
    assert [h.dumps() for h in res.history] == [limit(PLANTED_ARM).dumps()]
    assert res.stats()["history_programs"] == 1 and res.stats()["history_searched"] == 10
    assert any("the last 8 earlier program(s), then the program: reproduces" in ln
               for ln in res.log)
    assert not any("the last 16" in ln for ln in res.log)
    assert [op.name for op in res.prog.ops] == ["TEST_MD_CHECK_REFS"]
