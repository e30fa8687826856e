"""Minimizer and reproducer emitters, on the real kernel in the VM.

The planted finding needs no model: a stand-in model that agrees with the kernel on
every op except that it predicts ENOENT for every IOAS_UNMAP. An UNMAP of a range
that really is mapped then shows "mismatch IOAS_UNMAP.errno kernel=0 model=ENOENT";
buried among 20 irrelevant ops, the minimizer has to find the ops that matter.
"""

from __future__ import annotations

import ctypes
import errno
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fuzz import differential, report, repro, uapi
from fuzz.backend import VMBackend
from fuzz.minimize import MinimizeResult, minimize
from fuzz.paths import REPO
from fuzz.prog import Buffer, BufPtr, Op, Program, Ref
from fuzz.prog.gen import generate
from fuzz.repro import cstructs, render_c, render_py
from fuzz.repro.verify import verify
from fuzz.result import OpResult

SIGNATURE = "mismatch IOAS_UNMAP.errno kernel=0 model=ENOENT"
U32_MAX = (1 << 32) - 1


class WrongAboutUnmap:
    """Agrees with the kernel on everything but IOAS_UNMAP, which it says fails."""

    def __init__(self, prog: Program, fds: object = None) -> None:
        self.prog = prog  # fds: the backend's fd table, which this model has no use for

    def step(self, i: int, kernel: OpResult) -> OpResult:
        if self.prog.ops[i].name == "IOAS_UNMAP":
            return OpResult(errno.ENOENT, -1, dict(kernel.out))
        return OpResult(kernel.errno, kernel.ret, dict(kernel.out))


@pytest.fixture
def planted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(differential, "Model", WrongAboutUnmap)


@pytest.fixture
def workdir() -> Iterator[Path]:
    """Under the repo (the guest sees the host's filesystem, read-only, at the same paths)."""
    d = REPO / "workdir" / "test-repro" / f"{time.time_ns()}"
    d.mkdir(parents=True)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def ioas(i: int) -> Ref:
    return Ref(i, "out_ioas_id")


def planted_program() -> Program:
    """Ops 1, 7 and 18 (alloc, map, unmap of buffer 1) make the finding; the rest is noise."""
    bufs = [Buffer(1 << 16, "anon", 5), Buffer(1 << 18, "anon", 9, [(1 << 17, 4096)]),
            Buffer(1 << 16, "memfd", 3)]
    a, t = ioas(0), ioas(1)
    ops = [
        Op("IOAS_ALLOC"),
        Op("IOAS_ALLOC"),
        Op("VFIO_CHECK_EXTENSION", {"extension": 3}),
        Op("TEST_MOCK_DOMAIN", {"id": a}),
        Op("IOAS_MAP", {"ioas_id": a, "user_va": BufPtr(0), "length": 1 << 16, "flags": 6}),
        Op("IOAS_IOVA_RANGES", {"ioas_id": a}),
        Op("OPTION", {"option_id": 1, "op": 1, "object_id": a}),
        Op("IOAS_MAP", {"ioas_id": t, "user_va": BufPtr(1, 8192), "length": 16384, "flags": 7,
                        "iova": 1 << 24}),
        Op("TEST_CREATE_ACCESS", {"id": a}),
        Op("TEST_ACCESS_RW", {"id": Ref(8, "out_access_fd"), "iova": Ref(4, "iova"),
                              "length": 4096, "uptr": BufPtr(2)}),
        Op("IOAS_ALLOW_IOVAS", {"ioas_id": a, "allowed_iovas": [[1 << 24, (1 << 31) - 1]]}),
        Op("IOAS_COPY", {"dst_ioas_id": a, "src_ioas_id": t, "length": 4096,
                         "src_iova": Ref(7, "iova"), "flags": 6}),
        Op("TEST_ADD_RESERVED", {"id": a, "start": 1 << 32, "length": 4096}),
        Op("IOAS_UNMAP", {"ioas_id": a, "iova": 0x5000000, "length": 4096}),  # ENOENT: agrees
        Op("VFIO_GET_API_VERSION"),
        Op("TEST_MD_CHECK_MAP", {"id": Ref(3, "out_hwpt_id"), "iova": Ref(4, "iova"),
                                 "length": 1 << 16, "uptr": BufPtr(0)}),
        Op("OPTION", {"option_id": 0, "op": 1, "size": 16}),
        Op("TEST_SET_TEMP_MEMORY_LIMIT", {"limit": 65536}),
        Op("IOAS_UNMAP", {"ioas_id": t, "iova": Ref(7, "iova"), "length": 16384}),
        Op("IOAS_IOVA_RANGES", {"ioas_id": t}),
        Op("CLOSE", {"fd": Ref(8, "out_access_fd")}),
        Op("IOAS_ALLOC"),
        Op("VFIO_IOMMU_GET_INFO"),
    ]
    return Program(ops, bufs)


OP_LINE = re.compile(r"^op (\d+) (\S+) errno=(\d+)", re.M)


def printed_errnos(stdout: str) -> list[tuple[int, str, int]]:
    return [(int(i), n, int(e)) for i, n, e in OP_LINE.findall(stdout)]


def printed_outputs(line: str) -> dict[str, str]:
    """An op line's outputs as text: ints in hex, ranges/caps in repro.canon's form,
    data as its length and first 16 bytes."""
    fields = dict(re.findall(r" (\w+)=(0x[0-9a-f]+|\[[^ ]*\]|\{[^ ]*\}|)(?= |$)", line))
    fields.update(re.findall(r" (\w+)=(<\d+ bytes [0-9a-f]*>)", line))
    for fd in FD_OUTPUTS:
        fields.pop(fd, None)
    return fields


# fd numbers depend on the process's fd table
FD_OUTPUTS = ("out_access_fd", "out_fault_fd")


def executor_outputs(r: OpResult) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in r.out.items():
        if k in FD_OUTPUTS or k == "ret":
            continue
        if isinstance(v, bytes):  # captured memory
            out[k] = f"<{len(v)} bytes {bytes(v[:16]).hex()}>"
        elif k in ("ranges", "caps") or isinstance(v, list):
            out[k] = repro.canon(k, v)
        else:
            out[k] = f"{v:#x}"
    return out


def compile_c(src: str, where: Path) -> Path:
    (where / "repro.c").write_text(src)
    # plain gcc, as a kernel developer would: everything the program needs is inline
    cc = subprocess.run(["gcc", str(where / "repro.c"), "-o", str(where / "repro")],
                        capture_output=True, text=True)
    assert cc.returncode == 0 and not cc.stderr, cc.stderr
    return where / "repro"


# ---------------------------------------------------------------------------


def test_ctypes_classes_match_the_uapi_layout() -> None:
    """repro.py's ctypes structs have the cdef's sizes and offsets (which the uapi
    probe test checks against the real headers)."""
    names = list(cstructs.cdef_blocks())
    ns: dict = {"ctypes": ctypes}
    exec(cstructs.ctypes_classes(names), ns)
    for n in names:
        cls = ns[n.split()[1]]
        assert ctypes.sizeof(cls) == uapi.sizeof(n), n
        obj = cls()
        for path in uapi.fields(n):
            parts = path.split(".")
            sub = obj
            for part in parts[:-1]:
                sub = getattr(sub, part)
            off = ctypes.addressof(sub) - ctypes.addressof(obj) + \
                getattr(type(sub), parts[-1]).offset
            assert off == uapi.field_offset(n, path)[0], (n, path)


def test_runtime_files_are_real_code_with_the_limits_of_their_sources(tmp_path: Path) -> None:
    """runtime.c compiles cleanly on its own; runtime.py is linted with the rest (ruff
    in CI) and imports; the block of constants in each holds what the emitter would
    write there (fuzz.uapi, fuzz.prog.limits)."""
    cc = subprocess.run(["gcc", "-Wall", "-Wextra", "-Werror", "-c", "-o",
                         str(tmp_path / "runtime.o"), str(render_c.RUNTIME)],
                        capture_output=True, text=True)
    assert cc.returncode == 0, cc.stderr
    text = render_c.RUNTIME.read_text()
    for k, v in render_c.runtime_constants().items():
        assert f"#define {k} {v}\n" in text, k
    import fuzz.repro.runtime as rt

    for k, v in render_py.runtime_constants().items():
        assert getattr(rt, k) == v, k
    # what the emitters embed is the file, with only the constants block rewritten
    assert "def map_buffer(index, addr, size, kind, seed, holes):" in render_py.runtime_text()
    assert "static void map_buffer(" in render_c.runtime_text()


def test_emitted_code_compiles_for_generated_programs(workdir: Path) -> None:
    for seed in range(40):
        prog = generate(seed)
        compile(repro.emit_python(prog), f"gen-{seed}.py", "exec")
        compile_c(repro.emit_c(prog), workdir)


def test_planted_mismatch_is_minimized_and_reproduced(vm: VMBackend, planted: None,
                                                      workdir: Path) -> None:
    prog = planted_program()
    first = differential.run(prog, vm)
    assert [m.op for m in first.mismatches] == [18]

    res: MinimizeResult = minimize((prog, SIGNATURE), vm, rate_runs=2)
    st = res.stats()
    print("minimize:", st, *res.log, sep="\n  ")
    assert (st["hits"], st["rate_runs"], st["tries"]) == (2, 2, 1)
    assert (st["original_ops"], st["original_buffers"]) == (23, 3)
    assert [op.name for op in res.prog.ops] == ["IOAS_ALLOC", "IOAS_MAP", "IOAS_UNMAP"]
    # IOAS_MAP pins nothing while no domain or access is attached: even user_va 0 maps
    assert len(res.prog.buffers) <= 1
    alloc, map_, unmap = res.prog.ops
    assert map_.args["ioas_id"] == unmap.args["ioas_id"] == Ref(0, "out_ioas_id")
    assert res.outcome.prog is res.prog and res.outcome.mismatches[0].op == 2

    exp = res.expectation()
    assert (exp.kind, exp.op, exp.field, exp.kernel, exp.model) == (
        "mismatch", 2, "errno", 0, errno.ENOENT)
    manifest = {"kernel_version": "6.12.test", "config_sha256": "0" * 64}
    d = repro.write_reproducer(workdir / "planted", res.prog, exp, manifest,
                              expected=res.outcome.model, stats=st)
    assert sorted(p.name for p in d.iterdir()) == [
        "program.json", "report.txt", "repro.c", "repro.json", "repro.py"]
    assert Program.load(d / "program.json").dumps() == res.prog.dumps()
    report = (d / "report.txt").read_text()
    for text in ("6.12.test", "0" * 64, SIGNATURE, "kernel: success (0)", "model:  ENOENT",
                 "2/2"):
        assert text in report

    checks = verify(d, vm)
    print(checks)
    assert {n: ok for n, (ok, _) in checks.items()} == {
        "program.json": True, "repro.py": True, "repro.c": True}
    for n in ("repro.py", "repro.c"):
        assert f"REPRODUCED: {SIGNATURE}" in checks[n][1]


def test_reproducer_says_not_reproduced_when_the_kernel_agrees(vm: VMBackend,
                                                               workdir: Path) -> None:
    """Same check, expectation turned around: the model 'expects' what the kernel does."""
    prog = Program([Op("IOAS_ALLOC"),
                    Op("IOAS_MAP", {"ioas_id": ioas(0), "user_va": BufPtr(0), "length": 4096,
                                    "flags": 6}),
                    Op("IOAS_UNMAP", {"ioas_id": ioas(0), "iova": Ref(1, "iova"),
                                      "length": 4096})],
                   [Buffer(4096)])
    exp = repro.Expectation("mismatch", "mismatch IOAS_UNMAP.errno kernel=ENOENT model=0",
                           "made up", op=2, name="IOAS_UNMAP", field="errno",
                           kernel=errno.ENOENT, model=0)
    (workdir / "repro.py").write_text(repro.emit_python(prog, exp))
    binary = compile_c(repro.emit_c(prog, exp), workdir)
    for argv in (["/usr/bin/python3", "-I", str(workdir / "repro.py")], [str(binary)]):
        out = vm.vm.run_command(argv, timeout=300)
        assert out["rc"] == 0 and out["stdout"].rstrip().endswith("NOT REPRODUCED"), out


def feature_program() -> Program:
    """Every buffer kind, holes, pinning through a mock domain, ACCESS_RW captures
    (read, write, slow path), IOVA range arrays (also too small: EMSGSIZE), the vfio
    compat GET_INFO capability chain, ALLOW_IOVAS ranges and an E2BIG tail."""
    a = ioas(0)
    bufs = [Buffer(1 << 16, "anon", 1, [(16384, 4096)]), Buffer(2 << 20, "hugetlb", 2),
            Buffer(1 << 16, "memfd", 3), Buffer(1 << 16, "readonly", 4), Buffer(1 << 16, "hole")]
    ops = [
        Op("IOAS_ALLOC"),
        Op("TEST_MOCK_DOMAIN", {"id": a}),
        Op("IOAS_MAP", {"ioas_id": a, "user_va": BufPtr(0), "length": 1 << 14, "flags": 6}),
        Op("IOAS_MAP", {"ioas_id": a, "user_va": BufPtr(1), "length": 2 << 20, "flags": 6}),
        Op("IOAS_MAP", {"ioas_id": a, "user_va": BufPtr(2), "length": 1 << 16, "flags": 6}),
        Op("IOAS_MAP", {"ioas_id": a, "user_va": BufPtr(3), "length": 1 << 16, "flags": 4}),
        Op("IOAS_MAP", {"ioas_id": a, "user_va": BufPtr(3), "length": 1 << 16, "flags": 6}),
        Op("IOAS_MAP", {"ioas_id": a, "user_va": BufPtr(4), "length": 1 << 16, "flags": 6}),
        Op("IOAS_MAP", {"ioas_id": a, "user_va": BufPtr(0, 16384), "length": 4096, "flags": 6}),
        Op("TEST_CREATE_ACCESS", {"id": a}),
        Op("TEST_ACCESS_RW", {"id": Ref(9, "out_access_fd"), "iova": Ref(4, "iova"),
                              "length": 4096, "uptr": BufPtr(0)}),
        Op("TEST_ACCESS_RW", {"id": Ref(9, "out_access_fd"), "iova": Ref(2, "iova", 4096),
                              "length": 8192, "uptr": BufPtr(2, 4096), "flags": 1}),
        Op("TEST_ACCESS_RW", {"id": Ref(9, "out_access_fd"), "iova": Ref(3, "iova", 100),
                              "length": 3000, "uptr": BufPtr(0, 100), "flags": 4}),
        Op("IOAS_IOVA_RANGES", {"ioas_id": a}),
        Op("IOAS_IOVA_RANGES", {"ioas_id": a, "num_iovas": 0}),
        Op("VFIO_IOAS", {"ioas_id": a, "op": 1}),
        Op("VFIO_SET_IOMMU", {"type": 3}),
        Op("VFIO_IOMMU_GET_INFO"),
        Op("IOAS_ALLOW_IOVAS", {"ioas_id": a, "allowed_iovas": [[1 << 24, 1 << 30]]}),
        Op("OPTION", {"option_id": 1, "op": 1, "object_id": a, "size": 32, "tail": 1}),
        Op("TEST_MD_CHECK_MAP", {"id": Ref(1, "out_hwpt_id"), "iova": Ref(2, "iova"),
                                 "length": 1 << 14, "uptr": BufPtr(0)}),
        Op("CLOSE", {"fd": Ref(9, "out_access_fd")}),
        Op("IOAS_UNMAP", {"ioas_id": a, "iova": 0, "length": (1 << 64) - 1}),
    ]
    return Program(ops, bufs)


def _fd_numbers_portable(prog: Program, results: list[OpResult]) -> bool:
    """Every CLOSE closes an access fd that really was created. close(2) of any other
    number (a literal, or the 0 a failed TEST_CREATE_ACCESS leaves) hits whatever that
    number is in each process: in the agent fd 0 may be the iommufd itself."""
    for op in prog.ops:
        if op.name == "CLOSE":
            fd = op.args.get("fd")
            if not isinstance(fd, Ref) or fd.add or results[fd.op].errno:
                return False
    return True


def agrees(vm: VMBackend, prog: Program, d: Path, tag: object) -> list[OpResult]:
    """repro.py and repro.c print, op by op, the errnos and outputs (all but fd
    numbers) the executor got for `prog` on the same kernel; the executor's results."""
    ex = vm.run(prog)
    assert ex.setup_error is None and ex.crash is None, (tag, ex.setup_error, ex.crash)
    want = [(i, op.name, r.errno) for i, (op, r) in enumerate(zip(prog.ops, ex.results))]
    d.mkdir()
    (d / "repro.py").write_text(repro.emit_python(prog))
    binary = compile_c(repro.emit_c(prog), d)
    for argv in (["/usr/bin/python3", "-I", str(d / "repro.py")], [str(binary)]):
        out = vm.vm.run_command(argv, timeout=300)
        assert out["rc"] == 0, (tag, argv, out["stderr"][-2000:])
        got = printed_errnos(out["stdout"])
        assert got == want, (tag, argv[-1], [(w, g) for w, g in zip(want, got) if w != g])
        for i, line in enumerate(out["stdout"].splitlines()[:len(prog.ops)]):
            assert printed_outputs(line) == executor_outputs(ex.results[i]), (tag, line)
    return ex.results


def test_emitters_agree_with_the_executor_on_generated_programs(vm: VMBackend,
                                                                workdir: Path) -> None:
    """repro.py and repro.c print, op by op, the errnos (and ids, IOVAs, counts) the
    executor got for the same program on the same kernel."""
    total = checked = captured = 0
    feature = feature_program()
    for seed in range(-1, 200):
        prog = feature if seed < 0 else generate(seed)
        if len(prog.ops) < 14:
            continue
        pre = vm.run(prog)
        if not _fd_numbers_portable(prog, pre.results):
            continue
        results = agrees(vm, prog, workdir / f"gen-{seed}", seed)
        total += len(prog.ops)
        checked += 1
        captured += sum(1 for r in results if r.out.get("data"))
        if checked == 9:
            break
    print(f"{checked} programs, {total} ops ({captured} ACCESS_RW captures): "
          "executor == repro.py == repro.c")
    assert checked == 9 and total >= 100
    # the hand-written program reaches what generated ones rarely do
    errs = [r.errno for r in vm.run(feature).results]
    assert errs[2:5] == [0, 0, 0] and errno.EFAULT in errs[5:9] and errs[10:13] == [0, 0, 0]
    assert (errs[14], errs[17], errs[19]) == (errno.EMSGSIZE, 0, errno.E2BIG)
    assert captured >= 3


HWPT_SEEDS = ("fault_queue", "fault_detach_and_close", "dirty_tracking", "dirty_bitmap_edges",
              "hw_info", "hwpt_invalidate_entries", "hwpt_nested_attach", "fault_poll")


def test_emitters_agree_with_the_executor_on_hwpt_fault_and_dirty_programs(
        vm: VMBackend, workdir: Path) -> None:
    """The same for what the HWPT seeds reach: read(2) records and the cookie refs
    taken from them, write(2) responses from a side array, poll(2) revents, dirty bitmaps captured
    by computed length, invalidation entries, hw info into the scratch mapping."""
    seen: set[str] = set()
    for name in HWPT_SEEDS:
        prog = Program.load(REPO / "corpus" / "seeds" / f"{name}.json")
        results = agrees(vm, prog, workdir / name, name)
        for op, r in zip(prog.ops, results):
            if r.errno == 0 and op.name in ("READ", "WRITE", "HWPT_GET_DIRTY_BITMAP",
                                            "HWPT_INVALIDATE", "GET_HW_INFO"):
                seen.add(op.name)
            if op.name == "READ" and r.errno == 0 and r.out["records"]:
                seen.add("READ records")
            if op.name == "POLL" and r.errno == 0 and r.out["revents"] & uapi.POLLIN:
                seen.add("POLL POLLIN")
    assert seen == {"READ", "READ records", "WRITE", "HWPT_GET_DIRTY_BITMAP",
                    "HWPT_INVALIDATE", "GET_HW_INFO", "POLL POLLIN"}, seen


def test_history_reproducers_replay_every_earlier_program_as_the_executor_ran_them(
        vm: VMBackend, workdir: Path) -> None:
    """A reproducer with history: repro.py and repro.c run each earlier program (its
    buffers, the scratch mapping, fault fds, side arrays), unmap what it mapped, then
    the finding's program; each section prints the errnos and outputs the executor
    got running the same programs one after another."""
    names = ("hw_info", "fault_queue", "dirty_tracking")
    progs = [Program.load(REPO / "corpus" / "seeds" / f"{n}.json") for n in names]
    history, prog = progs[:-1], progs[-1]
    vm.vm.restart()
    runs = [vm.run(p) for p in progs]
    assert all(ex.setup_error is None and ex.crash is None for ex in runs)
    d = workdir / "history"
    d.mkdir()
    (d / "repro.py").write_text(repro.emit_python(prog, history=history))
    binary = compile_c(repro.emit_c(prog, history=history), d)
    for argv in (["/usr/bin/python3", "-I", str(d / "repro.py")], [str(binary)]):
        out = vm.vm.run_command(argv, timeout=300)
        assert out["rc"] == 0, (argv, out["stderr"][-2000:])
        parts = re.split(r"^== (?:history/\d\d|program)\.json$", out["stdout"], flags=re.M)
        assert len(parts) == len(progs) + 1, out["stdout"][:2000]
        for k, (p, ex, text) in enumerate(zip(progs, runs, parts[1:])):
            want = [(i, op.name, r.errno) for i, (op, r) in enumerate(zip(p.ops, ex.results))]
            assert printed_errnos(text) == want, (argv[-1], names[k])
            for i, line in enumerate(text.strip().splitlines()[:len(p.ops)]):
                assert printed_outputs(line) == executor_outputs(ex.results[i]), (names[k], line)


def test_cli_minimize_then_repro(planted: None, kernel_dir: Path, workdir: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    """`iommufd-fuzz minimize FINDING` on a stored finding, then `iommufd-fuzz repro`
    on what it wrote (each boots its own VM)."""
    from fuzz import kernel
    from fuzz.cli import main
    from fuzz.findings import FindingStore, from_outcome

    be = VMBackend(kernel_dir)
    try:
        first = differential.run(planted_program(), be)
    finally:
        be.close()
    [finding] = from_outcome(first)
    assert finding.signature == SIGNATURE
    store = FindingStore(workdir / "findings")
    store.record(finding, planted_program(), first.execution.raw.kmsg if first.execution.raw
                 else "", kernel.manifest(kernel_dir))
    [(_, fdir)] = store.list()

    rc = main(["minimize", str(fdir), "--kernel", str(kernel_dir),
               "--out", str(workdir / "reproducers"), "--rate-runs", "2"])
    out = capsys.readouterr().out
    print(out)
    assert rc == 0, out
    assert "ops 23 -> 3" in out and "original reproduced 2/2" in out
    d = workdir / "reproducers" / fdir.name
    report = (d / "report.txt").read_text()
    assert report.count("REPRODUCED  ") == 3, report
    assert f"iommufd-fuzz repro {d} --kernel {kernel_dir}" in report
    assert kernel.manifest(kernel_dir)["kernel_version"] in report

    rc = main(["repro", str(d), "--kernel", str(kernel_dir)])
    out = capsys.readouterr().out
    print(out)
    assert rc == 0, out
    assert out.count("REPRODUCED    ") == 3


class FlakyKernel:
    """A stand-in backend (no VM) whose IOAS_UNMAP succeeds only on every third run:
    enough to check the flakiness bookkeeping without waiting for a real race."""

    name = "flaky"

    def __init__(self) -> None:
        self.calls = 0

    def run(self, prog: Program, **_: object):  # type: ignore[no-untyped-def]
        from fuzz.backend import Execution

        self.calls += 1
        ok = self.calls % 3 == 0
        return Execution(results=[OpResult(0 if (op.name != "IOAS_UNMAP" or ok)
                                           else errno.ENOENT) for op in prog.ops])

    def close(self) -> None:
        pass


def test_flaky_finding_is_retried_in_proportion(planted: None) -> None:
    prog = Program([Op("IOAS_ALLOC"), Op("VFIO_GET_API_VERSION"),
                    Op("IOAS_UNMAP", {"ioas_id": ioas(0), "length": 4096})])
    res = minimize((prog, SIGNATURE), FlakyKernel(), rate_runs=6)
    st = res.stats()
    # 2 hits in 6: 1/3 -> ceil(log 0.05 / log(2/3)) = 8 tries, so no good candidate is lost
    assert (st["hits"], st["rate_runs"], st["tries"]) == (2, 6, 8)
    assert [op.name for op in res.prog.ops] == ["IOAS_UNMAP"]


def test_splat_keys_come_from_the_title() -> None:
    assert report.splat_keys("WARNING in iopt_unmap_iova_range") == [
        "WARNING:", "iopt_unmap_iova_range"]
    assert report.splat_keys("KASAN: slab-use-after-free Read in iopt_area_split") == [
        "KASAN: slab-use-after-free Read", "iopt_area_split"]
    assert report.splat_keys("possible deadlock in iommufd_access_notify_unmap") == [
        "possible ", "iommufd_access_notify_unmap"]


def test_splat_reproducer_reads_the_log_and_says_not_reproduced(vm: VMBackend,
                                                                workdir: Path) -> None:
    """The splat variant (kmsg read from before the run, grepped after teardown) on a
    program that triggers nothing: both languages run clean and say NOT REPRODUCED."""
    prog = Program([Op("IOAS_ALLOC"), Op("TEST_MOCK_DOMAIN", {"id": ioas(0)}),
                    Op("DESTROY", {"id": Ref(1, "out_stdev_id")})])
    title = "WARNING in iopt_unmap_iova_range"
    exp = repro.Expectation("splat", "0123456789abcdef", title, keys=report.splat_keys(title))
    (workdir / "repro.py").write_text(repro.emit_python(prog, exp))
    binary = compile_c(repro.emit_c(prog, exp), workdir)
    for argv in (["/usr/bin/python3", "-I", str(workdir / "repro.py")], [str(binary)]):
        out = vm.vm.run_command(argv, timeout=300)
        assert out["rc"] == 0, out
        assert [e for _, _, e in printed_errnos(out["stdout"])] == [0, 0, 0]
        assert out["stdout"].rstrip().endswith("NOT REPRODUCED")


def test_bytes_field_expectation_is_compared_in_hex() -> None:
    # a captured-memory output other than `data` (GET_DIRTY_BITMAP.bitmap) is a hex string
    # in both languages, as `data` is
    exp = repro.Expectation("mismatch", "mismatch HWPT_GET_DIRTY_BITMAP.bitmap [x]", "t",
                            op=0, name="HWPT_GET_DIRTY_BITMAP", field="bitmap",
                            kernel=b"\xff" * 8, model=b"\x03" + bytes(7))
    prog = Program([Op("HWPT_GET_DIRTY_BITMAP", {"hwpt_id": 1, "length": 4096,
                                                 "page_size": 2048, "data": BufPtr(0)})],
                   [Buffer(4096)])
    py = render_py.emit_python(prog, exp)
    assert "MODEL = '0300000000000000'" in py and "got = data0.hex()" in py
    c = render_c.emit_c(prog, exp)
    assert 'const char *model = "0300000000000000";' in c


def test_known_bug_reproducers_reproduce(vm: VMBackend) -> None:
    """Every reproducer of reproducers/known.json still reproduces in all three forms
    on the default kernel (the bugs are in 6.12.117)."""
    from fuzz import known

    bugs = known.known_bugs()
    assert {b.id for b in bugs} >= {"dirty-bitmap-error-dropped", "dirty-bitmap-overrun",
                                    "fault-response-cookie-0"}
    for bug in bugs:
        d = REPO / Path(bug.report).parent
        checks = verify(d, vm)
        assert set(checks) == {"program.json", "repro.py", "repro.c"}, (bug.id, checks)
        assert all(ok for ok, _ in checks.values()), (bug.id, checks)


CREDS_SEEDS = ("memlock_user_accounting", "memlock_mm_accounting", "creds_no_sys_resource")


def test_emitters_run_creds_programs_as_the_executor_does(vm: VMBackend, workdir: Path) -> None:
    """repro.py and repro.c drop the capabilities and set RLIMIT_MEMLOCK as the executor
    does: the pins past the limit fail with ENOMEM, the rlimit mode with EPERM, in all
    three alike."""
    seen: set[int] = set()
    for name in CREDS_SEEDS:
        prog = Program.load(REPO / "corpus" / "seeds" / f"{name}.json")
        assert prog.creds is not None, name
        seen |= {r.errno for r in agrees(vm, prog, workdir / name, name)}
    assert {errno.ENOMEM, errno.EPERM} <= seen, seen
