"""The kernel, the VM and the guest agent, end to end, on the real kernel."""

from __future__ import annotations

import bisect
from pathlib import Path

import pytest

from fuzz.backend import VMBackend
from fuzz.prog import Op, Program
from fuzz.smoke import check_results, smoke_program
from fuzz.vm import GuestCrash, kernel_has_sysrq

LKDTM = "/sys/kernel/debug/provoke-crash/DIRECT"


def provoke(be: VMBackend, what: str, timeout: float = 60) -> dict:
    return be.vm.run_command(["sh", "-c", f"echo {what} > {LKDTM}"], timeout=timeout)


def symbolize(kernel_dir: Path, pcs: list[int]) -> set[str]:
    """Function names for kernel PCs, from System.map (no KASLR in the guest)."""
    addrs, names = [], []
    for line in (kernel_dir / "System.map").read_text().splitlines():
        a, t, n = line.split()[:3]
        if t in "tTwW":
            addrs.append(int(a, 16))
            names.append(n)
    order = sorted(range(len(addrs)), key=addrs.__getitem__)
    addrs = [addrs[i] for i in order]
    names = [names[i] for i in order]
    return {names[bisect.bisect_right(addrs, pc) - 1] for pc in pcs}


def test_guest_runs_the_built_kernel_with_kcov(vm: VMBackend, kernel_dir: Path) -> None:
    manifest_version = (kernel_dir / "manifest.json").read_text()
    assert vm.vm.hello["uname"].startswith("6.12.")
    assert vm.vm.hello["uname"].split("-")[0] in manifest_version
    assert vm.vm.hello["kcov"] is True


def test_smoke_sequence_answers_as_linux_6_12_does(vm: VMBackend) -> None:
    prog, expects = smoke_program()
    ex = vm.run(prog)
    assert ex.crash is None and ex.setup_error is None
    assert check_results(ex.results, expects) == []
    assert ex.reports == []


def test_each_program_gets_a_fresh_iommufd(vm: VMBackend) -> None:
    prog = Program([Op("IOAS_ALLOC"), Op("IOAS_ALLOC")])
    first = vm.run(prog).results
    second = vm.run(prog).results
    # ids restart at 1 only if the previous program's objects went with its fd
    assert [r.out["out_ioas_id"] for r in first] == [1, 2]
    assert [r.out["out_ioas_id"] for r in second] == [1, 2]


def test_kcov_pcs_of_an_ioctl_are_in_iommufd(vm: VMBackend, kernel_dir: Path) -> None:
    ex = vm.run(Program([Op("IOAS_ALLOC"), Op("DESTROY", {"id": 12345})]))
    alloc = [0xFFFFFFFF00000000 | pc for pc in ex.call_pcs(0)]
    assert len(alloc) > 50
    funcs = symbolize(kernel_dir, alloc)
    assert "iommufd_ioas_alloc_ioctl" in funcs
    destroy = symbolize(kernel_dir, [0xFFFFFFFF00000000 | pc for pc in ex.call_pcs(1)])
    assert "iommufd_destroy" in destroy and "iommufd_ioas_alloc_ioctl" not in destroy


def test_buffer_setup_failure_is_reported_not_crashed(vm: VMBackend) -> None:
    from fuzz.prog import Buffer

    # 4 GiB-apart buffers: 64 x 1 GiB hugetlb cannot fit the guest's reserve
    prog = Program([Op("IOAS_ALLOC")], [Buffer(1 << 30, "hugetlb")])
    ex = vm.run(prog)
    assert ex.setup_error is not None and "buffer 0" in ex.setup_error
    assert vm.run(Program([Op("IOAS_ALLOC")])).results[0].errno == 0


def test_lkdtm_warning_is_caught_and_parsed(vm: VMBackend) -> None:
    from fuzz.report import parse

    out = provoke(vm, "WARNING")
    reports = parse(out["kmsg"])
    assert [r.title for r in reports] == ["WARNING in lkdtm_WARNING"]
    assert reports[0].kind == "WARNING"
    assert "lkdtm_WARNING" in reports[0].frames[0:3] or reports[0].guilty_frame == "lkdtm_WARNING"


def test_lkdtm_kasan_report_is_caught_and_parsed(vm: VMBackend) -> None:
    from fuzz.report import parse

    out = provoke(vm, "SLAB_LINEAR_OVERFLOW")
    titles = [r.title for r in parse(out["kmsg"])]
    assert titles == ["KASAN: slab-out-of-bounds Write in lkdtm_SLAB_LINEAR_OVERFLOW"]


def test_guest_oops_is_detected_and_vm_restarts(fresh_vm: VMBackend) -> None:
    with pytest.raises(GuestCrash) as crash:
        provoke(fresh_vm, "BUG")
    titles = [r.title for r in crash.value.reports]
    assert "kernel BUG in lkdtm_BUG" in titles, crash.value.console_tail[-3000:]
    fresh_vm.vm.restart()
    prog, expects = smoke_program()
    assert check_results(fresh_vm.run(prog).results, expects) == []


def test_program_that_kills_the_guest_is_reported_and_the_vm_comes_back(
        fresh_vm: VMBackend) -> None:
    from fuzz.prog import Buffer

    # An oops in the middle of a program: the backend reports the crash with the
    # splat and restarts the VM itself. (BUG via LKDTM from a program is not
    # possible, so the guest is made to panic from a helper command first.)
    with pytest.raises(GuestCrash):
        provoke(fresh_vm, "EXCEPTION")
    fresh_vm.vm.restart()
    ex = fresh_vm.run(Program([Op("IOAS_ALLOC")], [Buffer(4096)]))
    assert ex.results[0].errno == 0


def test_guest_hang_is_detected(fresh_vm: VMBackend, kernel_dir: Path) -> None:
    with pytest.raises(GuestCrash) as crash:
        # LOOP spins in the kernel, where SIGKILL cannot stop it: the agent waits for it
        fresh_vm.vm.run_command(["sh", "-c", f"echo LOOP > {LKDTM}"], timeout=5)
    assert "no answer" in crash.value.what
    tail = crash.value.console_tail  # what SysRq showed before qemu was killed
    assert kernel_has_sysrq(kernel_dir), f"{kernel_dir}/config: no CONFIG_MAGIC_SYSRQ_SERIAL=y"
    assert "sysrq: Show backtrace of all active CPUs" in tail, tail[-3000:]
    fresh_vm.vm.restart()
    assert fresh_vm.vm.ping()


def _shows_sysrq(text: str) -> None:
    """What SysRq w and l print for a guest whose CPU spins in LKDTM's LOOP."""
    assert "sysrq: Show Blocked State" in text, text[-3000:]
    assert "sysrq: Show backtrace of all active CPUs" in text, text[-3000:]
    assert "lkdtm_LOOP" in text, text[-3000:]  # in the spinning CPU's backtrace


def test_a_guest_that_does_not_answer_shows_its_tasks_and_cpus_in_the_finding(
        kernel_dir: Path, tmp_path: Path) -> None:
    """A guest that does not answer: the agent waits for a child spinning in LKDTM's
    LOOP (SIGKILL cannot stop it in the kernel), then a program sent to it is not
    answered either. Before qemu is killed the host sends SysRq w (blocked tasks) and
    l (every CPU's backtrace) on the serial console; the console log, and the finding
    the program's run files, keep what they printed."""
    from fuzz.differential import Outcome
    from fuzz.findings import FindingStore, load_finding

    assert kernel_has_sysrq(kernel_dir), f"{kernel_dir}/config: no CONFIG_MAGIC_SYSRQ_SERIAL=y"
    be = VMBackend(kernel_dir, timeout=15)
    try:
        with pytest.raises(GuestCrash) as crash:
            provoke(be, "LOOP", timeout=2)
        _shows_sysrq(crash.value.console_tail)
        prog = Program([Op("IOAS_ALLOC")])
        ex = be.run(prog)  # the agent still waits: no answer, SysRq again, a restart
        assert ex.crash and "no answer" in ex.crash, ex.crash
        assert ex.console_tail.count("[host] SysRq wl: the guest does not answer") == 2
        last = ex.console_tail.rsplit("[host] SysRq wl", 1)[1]
        _shows_sysrq(last)
        [(f, new)] = FindingStore(tmp_path).record_outcome(Outcome(prog, ex), {})
        assert new and f.kind == "crash"
        assert last in load_finding(tmp_path / f.slug).log  # its kernel.log
        log = be.vm.console_path.read_text(errors="replace")
        _shows_sysrq(log.rsplit("[host] SysRq wl", 1)[1])
        assert be.vm.ping()  # collect restarted it
    finally:
        be.close()


def test_guest_side_edge_dedup_matches_host_side_pairing(vm: VMBackend) -> None:
    from fuzz import coverage
    from fuzz.executor.wire import KCOV_EDGES
    from fuzz.smoke import smoke_program

    prog, _ = smoke_program()
    vm.run(prog)  # the first program after a restore also takes first-time paths
    by_host = coverage.edges(vm.run(prog))
    ex = vm.run(prog, kcov_mode=KCOV_EDGES)
    by_guest = coverage.edges(ex)
    assert len(ex.raw.pcs) == 8 * len(by_guest)  # distinct: nothing sent twice
    # Two runs of one program differ a little (allocator slow paths, RCU), no more.
    assert len(by_host & by_guest) >= 0.95 * max(len(by_host), len(by_guest))


def test_cmp_records_come_once_each_with_how_often_the_program_made_them(
        vm: VMBackend) -> None:
    """A CMP-mode run sends each distinct (type, arg1, arg2, pc) once, with its repeat
    count: the same MAP + UNMAP pair run 2 and 10 times makes about as many distinct
    records, and the comparisons every pair makes come with repeats >= the pairs."""
    from fuzz.executor.wire import KCOV_TRACE_CMP
    from fuzz.prog import Buffer, BufPtr, Ref

    def records(pairs: int) -> list[tuple[int, int, int, int, int]]:
        ops = [Op("IOAS_ALLOC")]
        for _ in range(pairs):
            ops += [Op("IOAS_MAP", {"ioas_id": Ref(0, "out_ioas_id"), "user_va": BufPtr(0),
                                    "length": 4096, "iova": 1 << 30, "flags": 7}),
                    Op("IOAS_UNMAP", {"ioas_id": Ref(0, "out_ioas_id"), "iova": 1 << 30,
                                      "length": 4096})]
        ex = vm.run(Program(ops, [Buffer(4096, "anon")]), kcov_mode=KCOV_TRACE_CMP)
        assert [r.errno for r in ex.results] == [0] * len(ops)
        assert ex.raw is not None and not ex.raw.pcs_truncated
        return [rec for i in range(len(ops)) for rec in ex.call_cmps(i)]

    few, many = records(2), records(10)
    for recs in (few, many):
        keys = [r[:4] for r in recs]
        assert len(set(keys)) == len(keys)  # nothing sent twice
        assert min(r[4] for r in recs) >= 1
    made = sum(r[4] for r in many)
    assert len(many) < 1.5 * len(few) and made > 3 * len(many)
    # the comparisons of the first MAP that every MAP makes again: at least 10 each
    assert sum(1 for r in many if r[4] >= 10) >= 20


def test_the_agent_reports_its_own_time_apart_from_the_executor(vm: VMBackend) -> None:
    prog, _ = smoke_program()
    vm.run(prog)
    raw = vm.run(prog).raw
    assert raw is not None
    # the frame read, two kmsg reads and the response's layout: under a second each
    assert 0 < raw.kmsg_ns <= raw.agent_ns < 1e9
    assert 0 < raw.send_ns < 1e9  # the answer before this one
