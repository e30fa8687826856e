"""Both engines against the real kernel in the VM: a short clean run, and a
planted divergence (a patched model) that each engine must find, shrink and
write as a finding."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from fuzz import corpus, differential, findings
from fuzz.backend import VMBackend
from fuzz.engines.hypothesis_engine import Context, IommufdMachine, machine_settings
from fuzz.model import Model
from fuzz.prog import Program
from fuzz.result import OpResult

PLANTED_PAGES = 16


class PlantedModel(Model):
    """The model, wrong on purpose: it claims a successful IOAS_MAP of more than
    16 pages fails with ENOMEM. Only the engines' search can expose it."""

    def step(self, index: int, kernel: OpResult | None = None) -> OpResult:
        r = super().step(index, kernel)
        op = self.program.ops[index]
        length = op.args.get("length")
        if (op.name == "IOAS_MAP" and r.errno == 0 and isinstance(length, int)
                and length > PLANTED_PAGES * 4096):
            return OpResult(errno=errno.ENOMEM, out=dict(r.out))
        return r


def test_planted_model_really_differs() -> None:
    from fuzz.prog import Buffer, BufPtr, Op, Program, Ref

    prog = Program([Op("IOAS_ALLOC"),
                    Op("IOAS_MAP", {"ioas_id": Ref(0, "out_ioas_id"), "user_va": BufPtr(0),
                                    "length": 1 << 20, "flags": 6})], [Buffer(1 << 20)])
    m = PlantedModel(prog)
    m.step(0)
    assert m.step(1).errno == errno.ENOMEM


def test_hypothesis_machine_agrees_with_the_kernel(vm: VMBackend) -> None:
    Context.backend = vm
    Context.on_failure = []
    run_state_machine_as_test(IommufdMachine, settings=machine_settings(12))


def test_hypothesis_engine_finds_shrinks_and_records_planted_divergence(
        vm: VMBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hypothesis.internal.conjecture import engine as conjecture

    monkeypatch.setattr(differential, "Model", PlantedModel)
    # every example runs on the VM: on a loaded machine the search (derandomized, the same
    # every run) outlasted hypothesis's 300 s shrink budget with 6 ops left
    monkeypatch.setattr(conjecture, "MAX_SHRINKING_SECONDS", 3600)
    store = findings.FindingStore(tmp_path / "findings")

    def record(out: differential.Outcome) -> None:
        for f in findings.from_outcome(out):
            store.record(f, out.prog, out.execution.raw.kmsg if out.execution.raw else "", {})

    Context.backend = vm
    Context.on_failure = [record]
    Context.last_failure = None
    with pytest.raises(AssertionError, match="IOAS_MAP"):
        # derandomized: the same search every run (a random one misses now and then)
        run_state_machine_as_test(IommufdMachine,
                                  settings=settings(machine_settings(600), derandomize=True))
    assert Context.last_failure is not None
    shrunk = Context.last_failure.prog
    names = [op.name for op in shrunk.ops]
    # shrunk from up to 20 steps to the IOAS and the map of exactly one page too many;
    # alone it comes out as those 2 ops, after some other test files were imported first
    # with a few no-op steps left (OPTION sets of the rlimit mode to its default, 0) that
    # the shrinker does not delete
    assert names[0] == "IOAS_ALLOC" and names[-1] == "IOAS_MAP" and len(names) <= 6, \
        shrunk.dumps()
    assert set(names[1:-1]) <= {"OPTION"}, shrunk.dumps()
    assert shrunk.ops[-1].args["length"] == (PLANTED_PAGES + 1) * 4096
    titles = {f.title for f, _ in store.list()}
    assert "model/kernel mismatch in IOAS_MAP.errno" in titles


WORKER = textwrap.dedent("""
    import sys
    from fuzz import differential
    sys.path.insert(0, {tests!r})
    from test_engines import PlantedModel
    differential.Model = PlantedModel
    from fuzz.engines.atheris_engine import main
    main(sys.argv[1:])
""")


def test_atheris_engine_finds_records_and_minimizes_planted_divergence(
        kernel_dir: Path, vm: VMBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker (a subprocess: libFuzzer leaves through exit()) with the planted
    model, from one seed that maps exactly 16 pages: the mutator has to push it over."""
    from fuzz.prog import Buffer, BufPtr, Op, Program, Ref

    seeds = tmp_path / "seeds"
    seeds.mkdir()
    Program([Op("IOAS_ALLOC"),
             Op("IOAS_MAP", {"ioas_id": Ref(0, "out_ioas_id"), "user_va": BufPtr(0),
                             "length": PLANTED_PAGES * 4096, "flags": 6})],
            [Buffer(PLANTED_PAGES * 4096)]).save(seeds / "map16.json")
    argv = [sys.executable, "-c", WORKER.format(tests=str(Path(__file__).parent)),
            "--kernel", str(kernel_dir), "--corpus", str(tmp_path / "corpus"),
            "--findings", str(tmp_path / "findings"), "--stats", str(tmp_path / "stats.jsonl"),
            "--workdir", str(tmp_path / "work"), "--seconds", "300", "--runs", "1000",
            "--seed", "7", "--seeds", str(seeds)]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    rows = findings.FindingStore(tmp_path / "findings").list()
    titles = {f.title for f, _ in rows}
    assert "model/kernel mismatch in IOAS_MAP.errno" in titles, p.stderr[-3000:]
    stats = [json.loads(line) for line in (tmp_path / "stats.jsonl").read_text().splitlines()]
    assert stats[-1]["programs"] > 0 and stats[-1]["edges"] > 1000
    # libFuzzer ends the process with exit(): the worker's exit hook still writes the
    # last line, with every corpus write joined
    assert stats[-1]["final"] is True and stats[-1]["corpus"] == len(corpus.files(
        tmp_path / "corpus")), stats[-1]
    # pipelined: each input compared while the guest ran the next; the last one at exit
    assert stats[-1]["pipelined"] and stats[-1]["late_runs"] > 0
    assert stats[-1]["late_compares"] == stats[-1]["late_runs"], stats[-1]
    assert any((tmp_path / "corpus").iterdir()), "programs with new edges join the corpus"
    # libFuzzer keeps what it found as found; shrinking is the minimizer's job
    from fuzz.minimize import minimize

    monkeypatch.setattr(differential, "Model", PlantedModel)
    (_, fdir), = [(f, d) for f, d in rows if f.title.endswith("IOAS_MAP.errno")]
    assert (fdir / findings.RESULTS_FILE).exists(), "recheck needs the kernel's results"
    result = minimize(fdir, vm)
    names = [op.name for op in result.prog.ops]
    assert names == ["IOAS_ALLOC", "IOAS_MAP"], result.prog.dumps()


def test_atheris_cmp_rerun_crash_is_a_finding(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Every 16th program runs again with KCOV in comparison mode: a splat or crash of
    that run is recorded on the program like the first run's (it was dropped)."""
    from fuzz.backend import Execution
    from fuzz.engines import atheris_engine
    from fuzz.engines.common import WorkerState
    from fuzz.prog.gen import generate

    prog = generate(3)

    class CrashingBackend:
        name = "stub"
        fd_layout = None

        def run(self, p, kcov=True, timeout=0.0, kcov_mode=0):  # type: ignore[no-untyped-def]
            return Execution(crash="qemu exited (status 1) while running a program",
                             history=[p])

        def close(self) -> None:
            pass

    store = findings.FindingStore(tmp_path / "findings")
    state = WorkerState(CrashingBackend(), tmp_path / "corpus", store,  # type: ignore[arg-type]
                        tmp_path / "stats.jsonl")
    monkeypatch.setattr(atheris_engine, "STATE", state)
    atheris_engine.collect_cmp_hints(prog)
    (f, d), = store.list()
    assert f.title == "guest crash: qemu exited (status 1)"
    assert json.loads((d / "program.json").read_text()) == prog.to_json()


def test_atheris_cmp_rerun_every_16th_input_with_the_fault_walk_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fault walk's runs count as programs (WorkerState.programs): with a step every 8
    programs (campaigns' default) the program count after an input was never a multiple
    of 16, and campaigns never ran the CMP-mode re-run. It is every 16th input."""
    from fuzz.backend import Execution
    from fuzz.engines import atheris_engine
    from fuzz.engines.common import WorkerState
    from fuzz.executor.wire import KCOV_TRACE_CMP
    from fuzz.prog.gen import generate

    modes: list[int] = []

    class Quiet:
        name = "stub"
        fd_layout = None

        def run(self, p, kcov=True, timeout=0.0, kcov_mode=0):  # type: ignore[no-untyped-def]
            modes.append(kcov_mode)
            return Execution()

        def close(self) -> None:
            pass

    seeds = tmp_path / "seeds"
    seeds.mkdir()
    prog = generate(3)
    (seeds / "a.json").write_text(prog.dumps())
    state = WorkerState(Quiet(), tmp_path / "corpus",  # type: ignore[arg-type]
                        findings.FindingStore(tmp_path / "findings"), tmp_path / "stats.jsonl")
    state.walk_every, state.walk_dirs = 8, [seeds]
    monkeypatch.setattr(atheris_engine, "STATE", state)
    monkeypatch.setattr(atheris_engine, "FEEDBACK", False)
    monkeypatch.setattr(atheris_engine, "PIPELINE", False)
    monkeypatch.setattr(atheris_engine, "INPUTS", 0)
    for _ in range(32):
        atheris_engine.test_one_input(prog.dumps().encode())
    assert state.walker is not None and state.walker.points == 4, "the walk ran"
    assert modes.count(KCOV_TRACE_CMP) == 2, modes


def test_a_corpus_write_runs_beside_the_next_program_and_its_failure_is_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A program with new edges is written to the corpus on a thread while the next one
    runs; the write is joined when that one's results are in (and by the stats), and a
    write the disk refused is counted and kept for a retry, as before."""
    from fuzz.backend import Execution
    from fuzz.engines import common
    from fuzz.engines.common import WorkerState
    from fuzz.prog.gen import generate

    new_edge = iter(range(1, 1000))
    monkeypatch.setattr(common.coverage, "edges", lambda ex: {next(new_edge)})

    class Quiet:
        name = "stub"
        fd_layout = None

        def run(self, p, kcov=True, timeout=0.0, kcov_mode=0):  # type: ignore[no-untyped-def]
            return Execution()

        def close(self) -> None:
            pass

    state = WorkerState(Quiet(), tmp_path / "corpus",  # type: ignore[arg-type]
                        findings.FindingStore(tmp_path / "findings"), tmp_path / "s.jsonl")
    progs = [generate(k) for k in range(4)]
    for p in progs:
        state._run(p)
    state.write_stats()
    assert corpus.count(tmp_path / "corpus") == 4 and state.write_errors == 0
    assert json.loads((tmp_path / "s.jsonl").read_text().splitlines()[-1])["corpus"] == 4
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the corpus directory should be")
    state.corpus_dir = blocked
    state._run(progs[0])
    state.write_stats()
    # the write, and its retry with the stats line: still kept for the next one
    assert state.write_errors == 2 and state.pending == [("corpus", progs[0])]


def test_a_worker_gives_freed_heap_memory_back() -> None:
    """Freed chunks between live ones stay resident in glibc's heap (a worker's RSS was
    its transients' peak); give_back_freed_memory, called by every worker once a minute,
    returns their pages."""
    from fuzz.engines import common

    def rss_mb() -> int:
        return int(Path("/proc/self/status").read_text().split("VmRSS:")[1].split()[0]) // 1024

    big, pins = [], []
    for i in range(500):  # 60 KB chunks from the heap, each followed by one kept
        big.append(bytes(60000) + bytes([i % 256]))
        pins.append(bytes(2000) + bytes([i % 256]))
    del big
    held = rss_mb()
    common.give_back_freed_memory()
    assert held - rss_mb() >= 20, (held, rss_mb())
    assert len(pins) == 500


def map_pages(pages: int) -> Program:
    from fuzz.prog import Buffer, BufPtr, Op, Program, Ref

    return Program([Op("IOAS_ALLOC"),
                    Op("IOAS_MAP", {"ioas_id": Ref(0, "out_ioas_id"), "user_va": BufPtr(0),
                                    "length": pages * 4096, "flags": 6})],
                   [Buffer(pages * 4096)])


def test_a_pipelined_worker_compares_every_program_and_files_a_finding_as_its_own(
        fresh_vm: VMBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pipelined worker compares program N while the guest runs N+1: with the planted
    model, the map of 17 pages (the second of four) is filed as the finding, with its own
    kernel results and the VM history before it, not the program that ran while it was
    compared; the last program's comparison waits for the final stats and is done
    there; every op of every program was compared."""
    from fuzz.engines.common import WorkerState

    vm = fresh_vm  # its history is this test's programs only
    monkeypatch.setattr(differential, "Model", PlantedModel)
    store = findings.FindingStore(tmp_path / "findings")
    state = WorkerState(vm, tmp_path / "corpus", store, tmp_path / "s.jsonl", pipelined=True)
    sent: list[Program] = []
    submit = vm.submit

    def spy(prog, *a, **k):  # type: ignore[no-untyped-def]
        sent.append(prog)
        return submit(prog, *a, **k)

    monkeypatch.setattr(vm, "submit", spy)
    progs = [map_pages(4), map_pages(PLANTED_PAGES + 1), map_pages(8),
             map_pages(PLANTED_PAGES + 4)]
    outs = []
    for p in progs:
        outs.append(state.run(p, late=True)[0])
        # the program just run is not compared yet; the one before it was, while it ran
        assert state.deferred is not None and state.deferred[0] is outs[-1]
        assert all(o.model for o in outs[:-1]) and not outs[-1].model
    assert sent == progs, "one send per program, in order"
    (f, d), = [(f, d) for f, d in store.list() if f.title.endswith("IOAS_MAP.errno")]
    assert f.count == 1, "the last diverging program is not compared yet"
    stored = findings.load_finding(d)
    assert stored.prog.dumps() == progs[1].dumps(), "filed as the program that diverged"
    assert stored.results[1].errno == 0 and stored.results == outs[1].execution.results
    assert [p.dumps() for p in stored.history] == [progs[0].dumps()]
    state.write_stats(final=True)
    assert state.deferred is None and state.late_compares == 4
    (f, _), = [(f, d) for f, d in store.list() if f.title.endswith("IOAS_MAP.errno")]
    assert f.count == 2, "the final stats compared the last program"
    for p, o in zip(progs, outs):
        assert len(o.model) == len(p.ops), "every op compared"
    assert [bool(o.mismatches) for o in outs] == [False, True, False, True]
    last = json.loads((tmp_path / "s.jsonl").read_text().splitlines()[-1])
    assert last["late_compares"] == 4 and last["overlap_s"] > 0, last


@pytest.mark.variant
def test_a_pipelined_worker_files_a_splat_as_its_programs_and_restarts_before_the_next(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On the planted kernel (tests/test_crash.py): a use-after-free's KASAN burst and a
    general protection fault that panics the guest, each between clean programs, in a
    pipelined worker. Each splat is filed as the program that made it (its kernel log and
    history), and the guest is restarted after it before the next program is sent: that
    one runs on a clean kernel (nothing in its history) and agrees."""
    from test_crash import PATCH, PLANTED_GPF, PLANTED_UAF
    from test_history import limit, noise

    from fuzz import kernel
    from fuzz.engines.common import WorkerState

    try:
        kdir = kernel.build(kernel.BuildRequest(patches=[PATCH]))
    except kernel.KernelError as e:
        pytest.fail(f"cannot build the planted kernel: {e}")
    be = VMBackend(kdir)
    events: list[str] = []
    send, restart = be.vm.send_program, be.vm.restart

    def spy_send(wire: bytes) -> None:
        events.append("send")
        send(wire)

    def spy_restart() -> None:
        events.append("restart")
        restart()

    monkeypatch.setattr(be.vm, "send_program", spy_send)
    monkeypatch.setattr(be.vm, "restart", spy_restart)
    store = findings.FindingStore(tmp_path / "findings")
    state = WorkerState(be, tmp_path / "corpus", store, tmp_path / "s.jsonl", pipelined=True)
    progs = [noise(0), limit(PLANTED_UAF), noise(1), limit(PLANTED_GPF), noise(2)]
    try:
        outs = [state.run(p, late=True)[0] for p in progs]
        state.write_stats(final=True)
    finally:
        be.close()
    assert events == ["send", "send", "restart", "send", "send", "restart", "send"], events
    uaf, gpf = outs[1].execution, outs[3].execution
    assert [r.kind for r in uaf.reports].count("KASAN") >= 3 and not uaf.crash
    assert gpf.crash and gpf.reports and gpf.reports[0].kind == "GPF"
    for k in (2, 4):  # after each splat: a restored kernel, nothing before it, agreeing
        assert outs[k].execution.history == [] and outs[k].model and not outs[k].failed
    splats = [findings.load_finding(d) for f, d in store.list() if f.kind == "splat"]
    by_prog = {s.prog.dumps() for s in splats}
    assert by_prog == {progs[1].dumps(), progs[3].dumps()}, [s.finding.title for s in splats]
    before = {progs[1].dumps(): progs[0], progs[3].dumps(): progs[2]}
    for s in splats:  # the history since the kernel's last start: the one clean program
        assert [p.dumps() for p in s.history] == [before[s.prog.dumps()].dumps()]


def test_a_pipelined_worker_compares_its_last_program_on_sigterm(
        kernel_dir: Path, tmp_path: Path) -> None:
    """SIGTERM (and SIGINT) in the middle of a campaign: the worker compares the program
    whose comparison it had left for the next one's run, writes its final stats line and
    exits with 128 + the signal's number."""
    import signal
    import time

    argv = [sys.executable, "-m", "fuzz.engines.atheris_engine", "--kernel", str(kernel_dir),
            "--corpus", str(tmp_path / "corpus"), "--findings", str(tmp_path / "findings"),
            "--stats", str(tmp_path / "stats.jsonl"), "--workdir", str(tmp_path / "work"),
            "--seconds", "600", "--seed", "3",
            "--seeds", str(Path(__file__).parent.parent / "corpus" / "seeds")]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    stats = tmp_path / "stats.jsonl"
    deadline = time.monotonic() + 400
    try:
        while time.monotonic() < deadline and p.poll() is None:
            rows = stats.read_text().splitlines() if stats.exists() else []
            if rows and json.loads(rows[-1])["programs"] >= 30:
                break
            time.sleep(0.5)
        assert p.poll() is None, "the worker ended before its time"
        p.send_signal(signal.SIGTERM)
        out, _ = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    last = json.loads(stats.read_text().splitlines()[-1])
    assert p.returncode == 128 + signal.SIGTERM and "signal 15" in out, out[-2000:]
    assert last["final"] is True and last["programs"] >= 30, last
    assert last["late_runs"] > 0 and last["late_compares"] == last["late_runs"], last


def test_a_late_comparisons_new_model_coverage_is_replayed_as_its_inputs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The model's coverage of a late comparison is not traced into the input running
    then; where it is new (and the input's kernel edges were not), the input is handed to
    libFuzzer again and that run traces its kernel edges and model counters, nothing run."""
    from fuzz.backend import Execution
    from fuzz.engines import atheris_engine as ae

    traced: list[int] = []
    monkeypatch.setattr(ae.atheris, "_trace_branch", traced.append)
    monkeypatch.setattr(ae, "COUNTERS", list(range(1000, 1000 + ae.NCOUNTERS)))
    monkeypatch.setattr(ae, "MODEL_FEATURES", set())
    monkeypatch.setattr(ae, "REPLAY", {})
    monkeypatch.setattr(ae, "FEEDBACK", True)
    edges = {5, 7}
    monkeypatch.setattr(ae.coverage, "edges", lambda ex: edges)
    out = differential.Outcome(map_pages(1), Execution())

    def model() -> None:  # the comparison's coverage: counter 3 twice, 4 once
        for c in (3, 3, 4):
            ae.atheris._trace_branch(c)

    ae.credit_model_coverage(out, b"input", True, model)
    assert traced == [], "a late comparison traces nothing into the input running now"
    assert ae.REPLAY[b"input"][1] == {3: 2, 4: 1}
    ae.credit_model_coverage(out, b"again", True, model)
    assert b"again" not in ae.REPLAY, "the same model features again: nothing new"
    out.new_edges = 1
    ae.credit_model_coverage(out, b"edges", True, lambda: ae.atheris._trace_branch(9))
    assert b"edges" not in ae.REPLAY, "kept for its new kernel edges already"
    assert ae.take_replay(1 << 16) == b"input"

    class NoRuns:
        def run(self, *a, **k):  # type: ignore[no-untyped-def]
            raise AssertionError("a replay runs nothing")

    monkeypatch.setattr(ae, "STATE", NoRuns())
    ae.test_one_input(b"input")
    assert sorted(traced) == sorted([1000 + hash(e) % ae.NCOUNTERS for e in edges] + [3, 3, 4])
    assert b"input" not in ae.REPLAY
    ae.credit_model_coverage(out, None, False, model)  # at once (the fault walk): traced
    assert traced[-3:] == [3, 3, 4]
