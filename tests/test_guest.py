"""The fast guest on the real kernel: snapshot restarts, the executor's buffer
pool, and host commands over the 9p share mounted on demand."""

from __future__ import annotations

import json

import pytest

from fuzz import channel, differential, uapi
from fuzz.backend import VMBackend
from fuzz.executor.wire import KCOV_EDGES
from fuzz.paths import REPO
from fuzz.prog import Buffer, BufPtr, Op, Program, Ref, pattern_bytes
from fuzz.prog.gen import generate
from fuzz.smoke import check_results, smoke_program
from fuzz.vm import QMP, GuestCrash, VMError

LKDTM = "/sys/kernel/debug/provoke-crash/DIRECT"
RW = uapi.IOMMU_IOAS_MAP_READABLE | uapi.IOMMU_IOAS_MAP_WRITEABLE


def test_restart_after_an_oops_restores_the_snapshot_and_runs_right(
        fresh_vm: VMBackend) -> None:
    vm = fresh_vm.vm
    ids = Program([Op("IOAS_ALLOC"), Op("IOAS_ALLOC")])
    assert [r.out["out_ioas_id"] for r in fresh_vm.run(ids).results] == [1, 2]
    with pytest.raises(GuestCrash) as crash:
        vm.run_command(["sh", "-c", f"echo BUG > {LKDTM}"])
    assert "kernel BUG in lkdtm_BUG" in [r.title for r in crash.value.reports]
    vm.restart()
    assert vm.restored, "the restart booted cold instead of restoring the snapshot"
    assert vm.restarts == 1 and vm.restart_seconds > 0
    assert vm.hello["kcov"] is True
    prog, expects = smoke_program()
    ex = fresh_vm.run(prog)
    assert check_results(ex.results, expects) == [] and ex.reports == []
    # the kernel is the snapshot's, not the crashed one's: ids start over, KCOV works
    ex = fresh_vm.run(ids, kcov_mode=KCOV_EDGES)
    assert [r.out["out_ioas_id"] for r in ex.results] == [1, 2]
    assert len(ex.raw.pcs) > 0


def test_restart_after_a_kasan_splat_gives_an_untainted_kernel(fresh_vm: VMBackend) -> None:
    """What the backend does after a tainting splat: the restored kernel is clean."""
    vm = fresh_vm.vm
    out = vm.run_command(["sh", "-c", f"echo SLAB_LINEAR_OVERFLOW > {LKDTM}"])
    assert "KASAN" in out["kmsg"]
    tainted = vm.run_command(["cat", "/proc/sys/kernel/tainted"])["stdout"].strip()
    assert tainted != "0"
    vm.restart()
    assert vm.run_command(["cat", "/proc/sys/kernel/tainted"])["stdout"].strip() == "0"


def test_pooled_buffers_give_the_results_fresh_mappings_give(vm: VMBackend) -> None:
    progs = [p for p in (generate(s) for s in range(60)) if p.buffers][:40]

    def results(pool: bool) -> tuple[list, int]:
        vm.vm.set_pool(pool)
        out, pooled = [], 0
        for p in progs:
            ex = vm.run(p, kcov_mode=KCOV_EDGES)
            assert ex.crash is None and not ex.reports, (ex.crash, ex.reports)
            out.append((ex.setup_error, [(r.errno, r.out) for r in ex.results]))
            pooled += ex.raw.pooled_buffers if ex.raw else 0
        return out, pooled

    try:
        fresh, none = results(False)
        pooled1, n1 = results(True)
        pooled2, n2 = results(True)
    finally:
        vm.vm.set_pool(True)
    assert none == 0 and n1 > 0 and n2 > 0
    assert pooled1 == fresh
    assert pooled2 == fresh


def test_pooled_buffer_is_refilled_after_the_kernel_wrote_into_it(vm: VMBackend) -> None:
    """Program W has the kernel write buffer 1's bytes into buffer 0 (ACCESS_RW
    write through an IOVA); program R, given the same buffers from the pool, must
    see buffer 0 holding its seed pattern again, unpinned (MD_CHECK_REFS 0)."""

    def prog(write: bool) -> Program:
        # R first checks buffer 0 holds no pins (before its IOAS_MAP, which pins nothing)
        ops = [] if write else [Op("TEST_MD_CHECK_REFS", {"uptr": BufPtr(0),
                                                           "length": 1 << 16, "refs": 0})]
        k = len(ops)
        a = Ref(k, "out_ioas_id")
        ops += [Op("IOAS_ALLOC"),
                Op("IOAS_MAP", {"ioas_id": a, "user_va": BufPtr(0), "length": 1 << 16,
                                "flags": RW}),
                Op("TEST_CREATE_ACCESS", {"id": a}),
                Op("TEST_ACCESS_RW", {"id": Ref(k + 2, "out_access_fd"),
                                      "iova": Ref(k + 1, "iova"), "length": 4096,
                                      "uptr": BufPtr(1),
                                      "flags": uapi.MOCK_ACCESS_RW_WRITE if write else 0})]
        return Program(ops, [Buffer(1 << 16, "anon", 7), Buffer(1 << 14, "memfd", 99)])

    vm.vm.set_pool(True)
    w = differential.run(prog(True), vm)
    assert w.mismatches == [] and all(r.errno == 0 for r in w.execution.results)
    r = differential.run(prog(False), vm)
    assert r.execution.raw.pooled_buffers == 2
    assert r.mismatches == [], [m.describe() for m in r.mismatches]
    assert all(x.errno == 0 for x in r.execution.results)
    assert r.execution.results[-1].out["data"] == pattern_bytes(7, 0, 4096)


def test_run_command_runs_host_commands_over_9p(vm: VMBackend) -> None:
    first = (REPO / "README.md").read_text().splitlines()[0]
    out = vm.vm.run_command(["head", "-n1", "README.md"])
    assert out["rc"] == 0 and out["stdout"].strip() == first
    assert vm.vm.run_command(["cat"], stdin="some input")["stdout"] == "some input"
    assert vm.vm.run_command(["sh", "-c", "echo oops >&2; exit 3"]) | {"kmsg": ""} == \
        {"rc": 3, "stdout": "", "stderr": "oops\n", "kmsg": ""}
    slow = vm.vm.run_command(["sleep", "30"], timeout=1)
    assert slow["rc"] == -1 and "timed out" in slow["stderr"]
    missing = vm.vm.run_command(["/nonexistent/binary"])
    assert missing["rc"] == 127 and "nonexistent" in missing["stderr"]
    # programs still run next to the mounted share
    prog, expects = smoke_program()
    assert check_results(vm.run(prog).results, expects) == []


def test_qemu_refuses_to_snapshot_a_guest_with_9p_mounted(fresh_vm: VMBackend) -> None:
    """Why snapshots are taken before anything is mounted over 9p."""
    vm = fresh_vm.vm
    vm.run_command(["true"])  # mounts the host's root
    qmp = QMP(vm.workdir / "qmp.sock")
    try:
        with pytest.raises(VMError, match="9p|VirtFS"):
            qmp.cmd("migrate", uri="exec:cat > /dev/null")
    finally:
        qmp.close()
    assert vm.ping()


def test_agent_answers_an_unknown_frame_with_an_error(vm: VMBackend) -> None:
    vm.vm._send(77, b"")
    kind, payload = vm.vm._recv(10, "unknown frame")
    assert kind == channel.ERROR and b"unknown frame 77" in payload
    assert json.loads(json.dumps(vm.vm.hello))["agent"] == "c"


def test_a_batch_runs_each_program_as_exec_does(vm: VMBackend) -> None:
    """EXEC_BATCH (benchmarks: the guest with no host work between programs): each
    program on its own /dev/iommu (ids start over), with its own results, edges and
    kmsg, as EXEC gives them; a malformed one in the middle answers None, the rest run."""
    from fuzz.backend import _finish
    from fuzz.executor.encode import encode

    prog, expects = smoke_program()
    enc = encode(prog, kcov=True, kcov_mode=KCOV_EDGES)
    alone = _finish(prog, enc, vm.vm.execute(enc.wire), KCOV_EDGES)
    raws, guest_ns = vm.vm.execute_batch([enc.wire, b"not a program", enc.wire])
    assert raws[1] is None and guest_ns > 0
    for raw in (raws[0], raws[2]):
        assert raw is not None
        ex = _finish(prog, enc, raw, KCOV_EDGES)
        assert check_results(ex.results, expects) == [] and ex.reports == []
        assert [(r.errno, r.out) for r in ex.results] == \
            [(r.errno, r.out) for r in alone.results]
        assert raw.pcs and raw.setup_ns and raw.calls_ns
    assert vm.vm.ping(), "the agent reads frames after a batch"
