"""Fault injection and racing threads on the real kernel in the VM: every fault point
of an op failed in turn, each failure's errno and the state after it checked against
the model through a probe suffix; a race group whose calls overlap in time (the
executor's timestamps) with results that some order of them gives; the campaign's
walk step; the kernel's leak detector."""

from __future__ import annotations

import errno

from fuzz import differential, faults, uapi
from fuzz.backend import VMBackend
from fuzz.model import faults as model_faults
from fuzz.prog import Buffer, BufPtr, Op, Program, Ref

RW = uapi.IOMMU_IOAS_MAP_READABLE | uapi.IOMMU_IOAS_MAP_WRITEABLE
IOAS = Ref(0, "out_ioas_id")


def map_on_mock_domain(length: int = 1 << 16) -> Program:
    return Program([Op("IOAS_ALLOC"), Op("TEST_MOCK_DOMAIN", {"id": IOAS}),
                    Op("IOAS_MAP", {"ioas_id": IOAS, "user_va": BufPtr(0), "length": length,
                                    "flags": RW})], [Buffer(length)])


def test_every_fault_point_of_a_map_fails_cleanly(vm: VMBackend) -> None:
    """IOAS_MAP onto a mock domain, its 1st, 2nd, ... fault point failed until the map
    passes them all: each failure answers an errno the kernel has there and leaves the
    IOAS as it was - the probe suffix (IOVA ranges, MD_CHECK_MAP of the domain, the pin
    counts of the buffer, the same map again, a new IOAS's id) agrees with the model."""
    prog = map_on_mock_domain()
    w = faults.walk(prog, 2, lambda p: differential.run(p, vm))
    assert w.complete and w.fault_points >= 10, w.summary()
    errs = w.errnos()
    # allocations (ENOMEM), fail_iommufd's lookups and mock map_pages (ENOENT), points
    # whose failure the kernel works around (ok); the pin path (EFAULT) too, in most
    # walks: which allocation comes at which N varies with the slab and page caches
    assert {"ENOMEM", "ENOENT", "ok"} <= set(errs), errs
    for pt in w.points:
        assert pt.mismatches == [] and pt.unsure == [] and pt.splats == [], pt
    # the probes ran and were compared: a map that failed left nothing behind
    probed = faults.with_fault(prog, 2, 1)
    names = [op.name for op in probed.ops[3:]]
    assert {"IOAS_IOVA_RANGES", "TEST_MD_CHECK_REFS", "IOAS_MAP", "IOAS_ALLOC"} <= set(names)
    out = differential.run(probed, vm)
    r = {(op.name, op.args.get("refs")): res
         for op, res in zip(probed.ops[3:], out.execution.results[3:])}
    assert out.execution.results[2].injected
    assert out.execution.results[2].errno == errno.ENOENT  # the IOAS lookup failed
    # nothing mapped where it would be, no page pinned (the map's own pin would be 1)
    assert r[("TEST_MD_CHECK_MAP", None)].errno == errno.EINVAL
    assert r[("TEST_MD_CHECK_REFS", 0)].errno == 0
    assert r[("TEST_MD_CHECK_REFS", 1)].errno == errno.EIO
    assert r[("IOAS_MAP", None)].errno == 0
    assert out.mismatches == [] and out.unsure == []


def test_a_failure_that_left_state_behind_would_show(vm: VMBackend,
                                                     monkeypatch: object) -> None:
    """The check can fail: a model that does not undo the failed map predicts the probes
    for a mapped IOVA range, and the kernel's answers disagree."""
    prog = faults.with_fault(map_on_mock_domain(), 2, 1)

    def keep_state(model, index, kernel):  # type: ignore[no-untyped-def]
        res = model.step(index, kernel)
        if kernel is not None and kernel.injected and kernel.errno:
            res.errno = kernel.errno  # the errno is right, the state is not undone
        return res

    monkeypatch.setattr(model_faults, "step", keep_state)  # type: ignore[attr-defined]
    out = differential.run(prog, vm)
    assert out.execution.results[2].injected
    assert {m.name for m in out.mismatches} & {"IOAS_IOVA_RANGES", "TEST_MD_CHECK_MAP",
                                               "TEST_MD_CHECK_REFS", "IOAS_MAP"}, \
        [m.describe() for m in out.mismatches]


def test_fault_sites_are_named_from_the_kernels_stack_trace(vm: VMBackend) -> None:
    vm.vm.set_fault_verbose(2)
    try:
        w = faults.walk(Program([Op("IOAS_ALLOC")]), 0, lambda p: differential.run(p, vm),
                        probe=False, sites=True)
    finally:
        vm.vm.set_fault_verbose(0)
    first = w.points[0]
    assert first.injected and first.errno == errno.ENOMEM
    assert first.attr == "failslab" and first.site == "_iommufd_object_alloc", first
    assert "iommufd_ioas_alloc_ioctl" in first.frames


def test_racing_maps_overlap_and_agree_with_an_order(vm: VMBackend) -> None:
    """Two 16 MiB maps of one buffer into one IOAS from two threads, released together:
    the executor's timestamps show the calls in the kernel at the same time, each gets
    its own IOVA, and the model agrees with the order they took."""
    size = 16 << 20
    m = {"ioas_id": IOAS, "user_va": BufPtr(0), "length": size, "flags": RW}
    prog = Program([Op("IOAS_ALLOC"), Op("TEST_MOCK_DOMAIN", {"id": IOAS}),
                    Op("IOAS_MAP", dict(m), thread=1, barrier=1),
                    Op("IOAS_MAP", dict(m), barrier=1),
                    Op("IOAS_IOVA_RANGES", {"ioas_id": IOAS})], [Buffer(size)])
    overlapped = 0
    for _ in range(3):
        out = differential.run(prog, vm)
        a, b = out.execution.results[2:4]
        assert (a.thread, b.thread) == (1, 0) and a.errno == b.errno == 0
        assert a.out["iova"] != b.out["iova"]
        assert out.mismatches == [] and out.unsure == [], [x.describe() for x in out.mismatches]
        assert out.orders[2][0] in ((2, 3), (3, 2))
        assert out.execution.raw.threads == 2
        overlapped += a.t_start < b.t_end and b.t_start < a.t_end
    assert overlapped == 3, "the racing maps did not overlap in time"


def test_racing_destroy_and_use_of_one_ioas(vm: VMBackend) -> None:
    """One thread destroys an IOAS while two others map into it and read its ranges:
    whatever order the kernel took, some order of the calls gives the results, and the
    kernel's checkers stay quiet."""
    prog = Program([Op("IOAS_ALLOC"),
                    Op("DESTROY", {"id": IOAS}, thread=1, barrier=1),
                    Op("IOAS_MAP", {"ioas_id": IOAS, "user_va": BufPtr(0), "length": 1 << 16,
                                    "flags": RW}, thread=2, barrier=1),
                    Op("IOAS_IOVA_RANGES", {"ioas_id": IOAS}, barrier=1),
                    Op("IOAS_ALLOC")], [Buffer(1 << 16)])
    seen = set()
    for _ in range(8):
        out = differential.run(prog, vm)
        assert not out.failed, [x.describe() for x in out.mismatches] + \
            [r.title for r in out.execution.reports]
        seen.add(tuple(r.errno for r in out.execution.results[1:4]))
    assert seen


def test_the_campaign_walk_step_goes_through_an_op(vm: VMBackend, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from fuzz.engines.common import WorkerState
    from fuzz.findings import FindingStore

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    Program([Op("IOAS_ALLOC")]).save(corpus / "one")
    ws = WorkerState(vm, corpus, FindingStore(tmp_path / "findings"), tmp_path / "s.jsonl",
                     walk_every=1)
    for _ in range(4):
        ws.walk_step()
    assert ws.walker.walks >= 1 and ws.by_kind["fault"] == 4 and ws.kind_edges["fault"]


def test_reproducers_replay_faults_and_threads_and_count_reproductions(
        vm: VMBackend, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """repro.py and repro.c arm the op's fail-nth as the executor does (the same errno,
    the fault reported injected) and issue a race group from threads released together;
    a program with threads runs RUNS times, and the reproducers and the executor's run
    of program.json say in how many runs the finding showed."""
    from fuzz.repro.expect import Expectation
    from fuzz.repro.verify import verify
    from fuzz.repro.walk import RUNS_THREADED
    from fuzz.repro.write import write_reproducer

    size = 4 << 20
    m = {"ioas_id": IOAS, "user_va": BufPtr(0), "length": size, "flags": RW}
    prog = Program([Op("IOAS_ALLOC"), Op("TEST_MOCK_DOMAIN", {"id": IOAS}),
                    Op("IOAS_MAP", dict(m), thread=1, barrier=1),
                    Op("IOAS_MAP", dict(m), barrier=1),
                    Op("IOAS_IOVA_RANGES", {"ioas_id": IOAS}, fail_nth=1)], [Buffer(size)])
    ex = vm.run(prog)
    assert ex.results[4].injected and ex.results[4].errno == errno.ENOENT
    first = min(ex.results[2].out["iova"], ex.results[3].out["iova"])
    # "the model expects" op 2 to get the lower IOVA: whether it does depends on the race
    exp = Expectation("mismatch", "mismatch IOAS_MAP.iova", "race for the first IOVA", op=2,
                      name="IOAS_MAP", field="iova", kernel=first + size, model=first)
    d = write_reproducer(tmp_path / "race", prog, exp, {})
    res = verify(d, vm)
    import re

    for name in ("program.json", "repro.py", "repro.c"):
        hit, said = res[name]
        rate = re.search(r"\((\d+)/(\d+) runs\)", said)
        assert rate and int(rate[2]) == RUNS_THREADED, (name, said)
        assert hit == (int(rate[1]) > 0), (name, said)
    # the op lines of the first run: the fault and the threads as the executor had them
    out = vm.vm.run_command(["/usr/bin/python3", "-I", str(d / "repro.py")], timeout=600)
    lines = out["stdout"].splitlines()
    assert re.match(r"op 4 IOAS_IOVA_RANGES errno=2 .* fault=injected", lines[4]), lines[4]
    assert " thread=1 us=" in lines[2] and " thread=0 us=" in lines[3], lines[2:4]


def test_kmemleak_finds_nothing_left_by_failed_faults(kernel_dir) -> None:  # type: ignore[no-untyped-def]
    """On a kernel booted with kmemleak=on: every fault point of a map onto a mock domain
    and of an access's creation and pinning failed in turn, then kmemleak's scan lists
    nothing those failures leaked (a leak would be reported: the walk's scan is how
    `iommufd-fuzz faults --kmemleak` and `fuzz --kmemleak` find them)."""
    from fuzz.vm import VMConfig

    be = VMBackend(kernel_dir, VMConfig(kernel=kernel_dir, kmemleak=True))
    try:
        assert faults.scan_leaks(be.vm) == []  # the agent's baseline before the snapshot
        prog = map_on_mock_domain()
        prog.ops += [Op("TEST_CREATE_ACCESS", {"id": IOAS, "flags": 1}),
                     Op("TEST_ACCESS_PAGES", {"id": Ref(3, "out_access_fd"), "iova": Ref(2, "iova"),
                                              "length": 1 << 14, "uptr": BufPtr(0)})]
        runs = 0
        for op in (2, 3, 4):
            w = faults.walk(prog, op, lambda p: differential.run(p, be))
            assert w.complete and all(not pt.mismatches for pt in w.points), w.summary()
            runs += len(w.points)
        leaks = faults.scan_leaks(be.vm)
        assert leaks == [], [r.title for r in leaks]
        assert runs > 20
    finally:
        be.close()


def test_minimizing_drops_the_threads_and_faults_a_finding_does_not_need(
        vm: VMBackend, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A planted finding (the model says every IOAS_UNMAP fails) in a program whose other
    ops race and carry a fault point that is never reached: the minimizer makes it
    sequential and drops the fault, and keeps the three ops that make the finding. The
    kernel's answers are real; only the model is wrong about the unmap."""
    from fuzz.minimize import minimize
    from fuzz.model import model as model_mod
    from fuzz.model.errors import KernelError

    def wrong_unmap(m, a):  # type: ignore[no-untyped-def]
        raise KernelError(errno.ENOENT)

    monkeypatch.setitem(model_mod.HANDLERS, "IOAS_UNMAP", wrong_unmap)
    sig = "mismatch IOAS_UNMAP.errno kernel=0 model=ENOENT"
    prog = Program([Op("IOAS_ALLOC"),
                    Op("IOAS_ALLOC", thread=1, barrier=1), Op("IOAS_ALLOC", barrier=1),
                    Op("IOAS_MAP", {"ioas_id": IOAS, "user_va": BufPtr(0), "length": 1 << 16,
                                    "flags": RW | uapi.IOMMU_IOAS_MAP_FIXED_IOVA, "iova": 1 << 24},
                       thread=2, fail_nth=90),
                    Op("IOAS_UNMAP", {"ioas_id": IOAS, "iova": 1 << 24, "length": 1 << 16},
                       thread=3)], [Buffer(1 << 16)])
    first = differential.run(prog, vm)
    assert [m.op for m in first.mismatches] == [4] and not first.execution.results[3].injected
    res = minimize((prog, sig), vm, rate_runs=1)
    print(*res.log, sep="\n")
    assert [op.name for op in res.prog.ops] == ["IOAS_ALLOC", "IOAS_MAP", "IOAS_UNMAP"]
    assert not res.prog.threaded and not res.prog.faulted
    assert any("no threads, no race groups" in ln for ln in res.log)
    assert any("no fault injected" in ln for ln in res.log)


def test_keep_new_keeps_walk_programs_that_reach_lines_the_program_does_not(
        vm: VMBackend, kernel_dir) -> None:  # type: ignore[no-untyped-def]
    """`faults --keep-new`: failing FAULT_QUEUE_ALLOC's allocations after its file was
    made reaches the unwinding (iommufd_object_abort_and_destroy's fput) that the seed
    never does; a second walk over the same op keeps nothing more."""
    from fuzz.paths import REPO

    prog = Program.load(REPO / "corpus" / "seeds" / "fault_poll.json")
    assert prog.ops[2].name == "FAULT_QUEUE_ALLOC"
    news = faults.NewLines(vm, kernel_dir, [prog])
    kept: list[Program] = []

    def keep(pt: faults.Point, out: differential.Outcome) -> None:
        if not out.failed and news.new(out):
            kept.append(out.prog)

    for expect_new in (True, False):
        before = len(kept)
        w = faults.walk(prog, 2, lambda p: differential.run(p, vm), on_point=keep)
        assert w.complete and w.fault_points >= 2, w.summary()
        assert (len(kept) > before) == expect_new, [p.ops[2].fail_nth for p in kept]
    assert news.added > 0 and news.kept == len(kept)
    assert all(p.ops[2].fail_nth for p in kept)
    main_c = {n for f, n in news.seen if f.endswith("iommufd/main.c")}
    assert main_c, "no main.c line"
