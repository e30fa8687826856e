"""Tests of the reference model (fuzz/model). Each test runs a small Program
through run_model and checks errno and outputs; expected values come from
tools/testing/selftests/iommu/iommufd.c (named per test) or from the 6.12
source. The seed programs of tests/model_cases/seeds.py carry their own
expected results and are also the corpus in corpus/seeds/."""

from __future__ import annotations

import errno as E
import random
from pathlib import Path

import pytest

try:  # tests/ on sys.path (pytest's default rootdir-relative import)
    from model_cases.dsl import FIXED_RW, MOCK_APERTURE_START, PAGE, RW, U64, Prog
    from model_cases.seeds import ORACLE_PROGRAMS, SEEDS
except ImportError:  # tests/ imported as a package
    from tests.model_cases.dsl import FIXED_RW, MOCK_APERTURE_START, PAGE, RW, U64, Prog
    from tests.model_cases.seeds import ORACLE_PROGRAMS, SEEDS

from fuzz import uapi
from fuzz.model import Model, run_model
from fuzz.model import memory as model_memory
from fuzz.prog import (
    Buffer,
    BufPtr,
    Op,
    Program,
    ProgramError,
    Ref,
    buffer_address,
    pattern_bytes,
)
from fuzz.prog.descriptions import OPS
from fuzz.prog.ir import list_widths
from fuzz.prog.types import Uptr
from fuzz.result import OpResult

REPO = Path(__file__).resolve().parent.parent
M16 = MOCK_APERTURE_START


def run(p: Prog, kernel: list[OpResult] | None = None) -> list[OpResult]:
    p.program.validate(p.name)
    return run_model(p.program, kernel)


def check(p: Prog, results: list[OpResult] | None = None) -> list[OpResult]:
    res = results if results is not None else run(p)
    for i, (r, (exp, out)) in enumerate(zip(res, p.expect)):
        where = f"{p.name} op {i} {p.program.ops[i].name}"
        if p.unsure[i]:
            assert r.unsure is not None, f"{where}: the model is sure of it"
            continue
        assert r.unsure is None, f"{where}: unsure: {r.unsure}"
        if exp is not None:
            assert r.errno == exp, f"{where}: errno {E.errorcode.get(r.errno)} " \
                                   f"!= {E.errorcode.get(exp)}"
        for k, v in out.items():
            assert r.out.get(k) == v, f"{where}: {k} = {r.out.get(k)!r} != {v!r}"
    return res


# -- the seed corpus ---------------------------------------------------------------------
ALL = SEEDS + ORACLE_PROGRAMS  # the oracle's programs: longer than seeds, same checks


@pytest.mark.parametrize("build", ALL, ids=[b.__name__ for b in ALL])
def test_seed_program(build):
    check(build())


@pytest.mark.parametrize("build", ALL, ids=[b.__name__ for b in ALL])
def test_seed_corpus_file_is_current(build):
    p = build()
    path = REPO / "corpus" / ("seeds" if build in SEEDS else "oracle") / f"{p.name}.json"
    assert path.exists(), f"run: python3 -m tests.model_cases.seeds  ({path} missing)"
    assert path.read_text() == p.program.dumps(), f"{path} is stale"
    assert Program.load(path).dumps() == p.program.dumps()


def test_seed_programs_are_3_to_30_ops():
    for build in SEEDS:
        p = build()
        assert 3 <= len(p.program.ops) <= 30, p.name


def test_every_op_is_covered_by_the_seeds():
    seen = {op.name for b in SEEDS for op in b().program.ops}
    assert seen == set(OPS)


# -- object ids --------------------------------------------------------------------------
def test_ids_start_at_1_and_lowest_free_is_reused():
    p = Prog("ids")
    for i in range(3):
        p.op("IOAS_ALLOC", out={"out_ioas_id": i + 1})
    p.op("DESTROY", id=2)
    p.op("DESTROY", id=1)
    p.op("IOAS_ALLOC", out={"out_ioas_id": 1})
    p.op("IOAS_ALLOC", out={"out_ioas_id": 2})
    p.op("IOAS_ALLOC", out={"out_ioas_id": 4})
    check(p)


def test_mock_domain_allocates_stdev_idev_hwpt_in_order():
    # iommufd_test_mock_domain: selftest object, then the bind's idev, then the hwpt
    p = Prog("md_ids")
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("IOAS_ALLOC")
    p.op("DESTROY", id=2)
    p.op("TEST_MOCK_DOMAIN", id=ioas, out={"out_stdev_id": 2, "out_idev_id": 3,
                                            "out_hwpt_id": 4})
    check(p)


def test_failed_mock_domain_frees_all_its_ids():
    p = Prog("md_fail", Buffer(PAGE, "hole"))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=PAGE, iova=M16, flags=FIXED_RW)
    p.op("TEST_MOCK_DOMAIN", id=ioas, expect=E.EFAULT)
    p.op("IOAS_ALLOC", out={"out_ioas_id": 2})
    check(p)


def test_failed_create_access_frees_its_id():
    p = Prog("acc_fail")
    p.op("TEST_CREATE_ACCESS", id=5, expect=E.ENOENT)
    p.op("IOAS_ALLOC", out={"out_ioas_id": 1})
    check(p)


def test_access_object_takes_an_id():
    p = Prog("acc_id")
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    acc = p.op("TEST_CREATE_ACCESS", id=ioas)
    p.op("IOAS_ALLOC", out={"out_ioas_id": 3})
    p.op("CLOSE", fd=p.ref(acc, "out_access_fd"))
    p.op("IOAS_ALLOC", out={"out_ioas_id": 2})
    check(p)


# -- argument resolution ------------------------------------------------------------------
def test_ref_to_a_failed_op_reads_the_input_value():
    p = Prog("ref_failed")
    a = p.op("IOAS_ALLOC", flags=1, out_ioas_id=7, expect=E.EOPNOTSUPP, out={"out_ioas_id": 7})
    p.op("DESTROY", id=p.ref(a, "out_ioas_id", -6), expect=E.ENOENT)
    p.op("IOAS_ALLOC")
    p.op("DESTROY", id=p.ref(a, "out_ioas_id", -6))
    check(p)


def test_ref_add_wraps_to_the_field_width():
    p = Prog("ref_wrap")
    a = p.op("IOAS_ALLOC")
    # 1 + (2**32 - 1) wraps to 0 in a u32 id
    p.op("DESTROY", id=p.ref(a, "out_ioas_id", (1 << 32) - 1), expect=E.ENOENT)
    p.op("DESTROY", id=p.ref(a, "out_ioas_id", 1 << 32))
    check(p)


def test_negative_literal_wraps():
    p = Prog("neg")
    p.op("IOAS_ALLOC")
    p.op("IOAS_UNMAP", ioas_id=1, iova=0, length=-1, out={"length": 0})
    check(p)


# -- struct size handling (selftest cmd_length, cmd_ex_fail) ------------------------------
def test_huge_size_with_zero_tail_is_unsure():
    # the executor backs at most 64K of struct: past it the kernel reads its arena
    p = Prog("huge_size")
    p.op("DESTROY", id=0, size=1 << 16, expect=E.ENOENT)
    p.op("DESTROY", id=0, size=(1 << 16) + 1)
    r = run(p)
    assert r[0].unsure is None and r[1].unsure and "trailing" in r[1].unsure


def test_huge_size_with_nonzero_tail_is_e2big():
    p = Prog("huge_size_tail")
    p.op("DESTROY", id=0, size=1 << 30, tail=3, expect=E.E2BIG)
    p.op("DESTROY", id=0, size=9, tail=0, expect=E.ENOENT)  # a zero tail byte is no tail
    check(p)
    # a tail is one byte: 256 does not fit, and the program says so instead of truncating
    bad = Prog("tail_too_wide")
    bad.op("DESTROY", id=0, size=9, tail=256)
    with pytest.raises(ProgramError, match=r"op 0 \(DESTROY\)\.tail: 256 does not fit"):
        bad.program.validate()


def test_iova_ranges_side_array_capacity_follows_the_executor():
    p = Prog("ranges_cap")
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("TEST_ADD_RESERVED", id=ioas, start=PAGE, length=PAGE)
    p.op("TEST_ADD_RESERVED", id=ioas, start=3 * PAGE, length=PAGE)
    p.op("IOAS_IOVA_RANGES", ioas_id=ioas, num_iovas=2, expect=E.EMSGSIZE,
         out={"num_iovas": 3, "ranges": [[0, PAGE - 1], [2 * PAGE, 3 * PAGE - 1]]})
    p.op("IOAS_IOVA_RANGES", ioas_id=ioas, num_iovas=5,
         out={"num_iovas": 3, "ranges": [[0, PAGE - 1], [2 * PAGE, 3 * PAGE - 1],
                                         [4 * PAGE, U64]]})
    # a Ref capacity (here 1) is only known in the guest, so the executor's side array
    # has room for the most it may ask (MAX_SIDE_ENTRIES): the kernel writes the one
    # range that fits, and the executor reads back num_iovas entries, the rest zero
    # (seen on the kernel: generated seed 99 of the descriptions change)
    p.op("IOAS_IOVA_RANGES", ioas_id=ioas, num_iovas=p.ref(0, "out_ioas_id"),
         expect=E.EMSGSIZE, out={"num_iovas": 3, "ranges": [[0, PAGE - 1], [0, 0], [0, 0]]})
    check(p)


# -- IOAS_MAP / automatic IOVA -------------------------------------------------------------
def test_auto_iova_is_computed_never_adopted():
    # the model's own iopt_alloc_iova: a different kernel IOVA is not taken
    p = Prog("no_adopt", Buffer(65536, "memfd", 1))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("TEST_ADD_RESERVED", id=ioas, start=PAGE, length=PAGE)
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=PAGE, flags=RW)
    for chosen in (0x40000, 2 * PAGE, PAGE):
        kernel = [OpResult(0, 0, {"out_ioas_id": 1}), OpResult(),
                  OpResult(0, 0, {"iova": chosen})]
        res = run(p, kernel)
        assert res[2].out["iova"] == 2 * PAGE and res[2].unsure is None


def test_auto_iova_respects_allowed_ranges():
    # selftest area_auto_iova "Allocate from an allowed region"
    p = Prog("allowed", Buffer(65536, "memfd", 1))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("IOAS_ALLOW_IOVAS", ioas_id=ioas, allowed_iovas=[[200 * PAGE, 600 * PAGE - 1]])
    for i in range(10):
        p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=PAGE * (i + 1), flags=RW)
    res = check(p)
    areas = []
    for i in range(10):
        iova = res[2 + i].out["iova"]
        length = PAGE * (i + 1)
        assert iova % (1 << ((length & -length).bit_length() - 1)) == 0
        assert 200 * PAGE <= iova and iova + length <= 600 * PAGE
        areas.append((iova, iova + length))
    areas.sort()
    assert all(a[1] <= b[0] for a, b in zip(areas, areas[1:]))


def test_ioas_iova_alloc_every_length():
    # selftest ioas_iova_alloc: with a mock domain lengths not 2K aligned fail
    p = Prog("iova_alloc", Buffer(65536, "memfd", 1))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("TEST_MOCK_DOMAIN", id=ioas)
    for length in (1, 2047, 2048, 3000, 4096, 6144, 8191):
        m = p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=length, flags=RW,
                 expect=0 if length % 2048 == 0 else E.EINVAL)
        if length % 2048 == 0:
            p.op("IOAS_UNMAP", ioas_id=ioas, iova=p.ref(m, "iova"), length=length,
                 out={"length": length})
    check(p)


# -- user memory ---------------------------------------------------------------------------
def test_pattern_bytes_cache_matches_prog():
    for seed in (0, 1, 255, 256, 1000):
        for off, ln in ((0, 0), (0, 251), (5, 1000), (250, 3), (4096, 70000)):
            assert model_memory.pattern_bytes(seed, off, ln) == pattern_bytes(seed, off, ln)


def test_literal_pointer_outside_the_buffers_is_unsure_when_pinned():
    p = Prog("agent_ptr")
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("TEST_MOCK_DOMAIN", id=ioas)
    m = p.op("IOAS_MAP", ioas_id=ioas, user_va=0x555555554000, length=PAGE, flags=RW)
    p.op("IOAS_UNMAP", ioas_id=ioas, iova=0, length=U64)
    p.op("IOAS_ALLOC")
    res = run(p)
    # only that IOAS is unknown from here on: another one is still predicted
    assert res[2].unsure and "outside the program's buffers" in res[2].unsure
    assert res[3].unsure and "ioas 1 is unknown since op 2" in res[3].unsure
    assert res[4].unsure is None and res[4].out["out_ioas_id"] == 5
    # with the kernel's result, its errno says whether the pages could be pinned: the
    # op stays unsure (that is not compared), the IOAS is known again
    for kerr, area in ((0, True), (E.EFAULT, False)):
        kernel = [OpResult(0, 0, {"out_ioas_id": 1}),
                  OpResult(0, 0, {"out_stdev_id": 2, "out_hwpt_id": 3, "out_idev_id": 4}),
                  OpResult(kerr, 0, {"iova": M16}), None, None]
        m_ = Model(p.program)
        got = [m_.step(i, k) for i, k in enumerate(kernel)]
        assert got[2].errno == kerr and "kernel's errno" in got[2].unsure
        assert got[3].unsure is None and got[3].errno == 0
        assert got[3].out["length"] == (PAGE if area else 0)
    del m


def test_md_check_map_walks_a_pinned_page_outside_the_buffers():
    # with the kernel's results the model takes the pins of the agent's text from its
    # errno; TEST_MD_CHECK_MAP then walks a page no buffer region holds (it crashed on
    # region None) and the unmap is compared (kernel results from the VM)
    try:
        from model_cases.seeds_mutants import pin_outside_the_buffers_takes_the_kernels_errno
    except ImportError:
        from tests.model_cases.seeds_mutants import (
            pin_outside_the_buffers_takes_the_kernels_errno,
        )
    p = pin_outside_the_buffers_takes_the_kernels_errno()
    kernel = [OpResult(0, 0, {"out_ioas_id": 1}),
              OpResult(0, 0, {"out_stdev_id": 2, "out_hwpt_id": 4, "out_idev_id": 3}),
              OpResult(0, 0, {"iova": M16}), OpResult(0, 0, {}),
              OpResult(E.EFAULT, 0, {"iova": M16 + PAGE}),
              OpResult(E.EFAULT, 0, {"iova": M16 + PAGE}), OpResult(0, 0, {"length": PAGE})]
    m = Model(p.program)
    got = [m.step(i, k) for i, k in enumerate(kernel)]
    assert [r.errno for r in got] == [k.errno for k in kernel]
    assert all("kernel's errno" in (r.unsure or "") for r in got[2:6])
    assert got[6].unsure is None and got[6].out["length"] == PAGE


def test_kernel_half_and_first_page_fault():
    p = Prog("kptr")
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("TEST_MOCK_DOMAIN", id=ioas)
    p.op("IOAS_MAP", ioas_id=ioas, user_va=0xFFFF888000000000, length=PAGE, flags=RW,
         expect=E.EFAULT)
    p.op("IOAS_MAP", ioas_id=ioas, user_va=0, length=PAGE, flags=RW, expect=E.EFAULT)
    check(p)


def test_access_rw_write_then_read_round_trips():
    # selftest check_access_rw
    p = Prog("rw", Buffer(65536, "memfd", 3), Buffer(2 * PAGE, "anon", 4))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    acc = p.ref(p.op("TEST_CREATE_ACCESS", id=ioas), "out_access_fd")
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=65536, iova=M16 + 2048,
         flags=FIXED_RW)
    for iova in (M16 + 2048 + PAGE - 50, M16 + 2048 + PAGE - 1, M16 + 2048):
        p.op("TEST_ACCESS_RW", id=acc, iova=iova, length=64, uptr=p.buf(1), flags=1)
        p.op("TEST_ACCESS_RW", id=acc, iova=iova, length=64, uptr=p.buf(1, PAGE))
    res = check(p)
    src = pattern_bytes(4, 0, 64)
    for i in range(3):
        assert res[3 + 2 * i].out["data"] == src
        assert res[4 + 2 * i].out["data"] == src


def test_access_rw_read_spans_areas():
    p = Prog("rw_span", Buffer(8 * PAGE, "memfd", 5), Buffer(8 * PAGE, "anon", 6))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    acc = p.ref(p.op("TEST_CREATE_ACCESS", id=ioas), "out_access_fd")
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0, 4 * PAGE), length=PAGE, iova=M16,
         flags=FIXED_RW)
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0, 100), length=PAGE, iova=M16 + PAGE,
         flags=FIXED_RW)
    p.op("TEST_ACCESS_RW", id=acc, iova=M16 + PAGE - 10, length=20, uptr=p.buf(1),
         out={"data": pattern_bytes(5, 5 * PAGE - 10, 10) + pattern_bytes(5, 100, 10)})
    p.op("TEST_ACCESS_RW", id=acc, iova=M16 + PAGE - 10, length=20 + PAGE, uptr=p.buf(1),
         expect=E.ENOENT)
    check(p)


def test_access_rw_data_is_empty_outside_one_buffer():
    p = Prog("rw_nodata", Buffer(2 * PAGE, "memfd", 5, [(PAGE, PAGE)]))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    acc = p.ref(p.op("TEST_CREATE_ACCESS", id=ioas), "out_access_fd")
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=PAGE, iova=M16, flags=FIXED_RW)
    # a write reads the source, data is captured from uptr after the call
    p.op("TEST_ACCESS_RW", id=acc, iova=M16, length=16, uptr=p.buf(0, PAGE - 8), flags=1,
         expect=E.EFAULT)
    p.op("TEST_ACCESS_RW", id=acc, iova=M16, length=8, uptr=p.buf(0, PAGE - 8), flags=1,
         out={"data": pattern_bytes(5, PAGE - 8, 8)})
    check(p)


def test_faulting_rw_taints_memory_and_later_data_is_unsure():
    p = Prog("taint", Buffer(2 * PAGE, "memfd", 5, [(PAGE, PAGE)]),
             Buffer(2 * PAGE, "anon", 1))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    acc = p.ref(p.op("TEST_CREATE_ACCESS", id=ioas), "out_access_fd")
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=2 * PAGE, iova=M16,
         flags=FIXED_RW)
    # copy_to_user into a range that ends in a hole: the first page may be written
    p.op("TEST_ACCESS_RW", id=acc, iova=M16 + 100, length=2 * PAGE - 200, uptr=p.buf(1),
         flags=1, expect=E.EFAULT)
    p.op("TEST_ACCESS_RW", id=acc, iova=M16 + 100, length=8, uptr=p.buf(1))
    res = run(p)
    assert res[3].errno == E.EFAULT and res[3].unsure is None
    assert res[4].errno == 0 and res[4].unsure and "unknown" in res[4].unsure


# -- accesses and fds ------------------------------------------------------------------------
def test_access_fd_numbers_are_computed_not_adopted():
    # the guest agent runs a program with 0-2 and its iommufd (3) open: the lowest free
    # fd is 4, and a closed one is reused (fs/file.c alloc_fd); the kernel's number is
    # never taken, so a wrong one shows as a mismatch
    p = Prog("fd")
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    a1 = p.op("TEST_CREATE_ACCESS", id=ioas, out={"out_access_fd": 4})
    p.op("FAULT_QUEUE_ALLOC", out={"out_fault_fd": 5})
    p.op("TEST_CREATE_ACCESS", id=99, expect=E.ENOENT)  # a failed one takes no fd
    p.op("TEST_ACCESS_RW", id=p.ref(a1, "out_access_fd"), iova=0, length=1, uptr=0,
         expect=E.ENOENT)
    p.op("TEST_ACCESS_RW", id=3, iova=0, length=1, uptr=0, expect=E.EBADFD)  # the iommufd
    p.op("TEST_ACCESS_RW", id=5, iova=0, length=1, uptr=0, expect=E.EBADFD)  # a fault fd
    p.op("CLOSE", fd=p.ref(a1, "out_access_fd"))
    p.op("TEST_CREATE_ACCESS", id=ioas, out={"out_access_fd": 4})
    p.op("TEST_CREATE_ACCESS", id=ioas, out={"out_access_fd": 6})
    check(p)
    kernel = [OpResult(0, 0, {"out_ioas_id": 1}), OpResult(0, 0, {"out_access_fd": 7})]
    assert run(p, kernel)[1].out["out_access_fd"] == 4


def test_fd_numbers_are_free_where_the_table_is_not_known():
    # --backend local: the executor runs in a Python process (fd layout None)
    p = Prog("fd_local")
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("TEST_CREATE_ACCESS", id=ioas)
    m = Model(p.program, fds=None)
    m.step(0, OpResult(0, 0, {"out_ioas_id": 1}))
    assert m.step(1, OpResult(0, 0, {"out_access_fd": 17})).out["out_access_fd"] == 17


def test_close_only_closes_the_programs_own_fds():
    # the executor answers EBADF for any other number without a syscall: the console,
    # the iommufd, the agent's fds, one the program closed already
    p = Prog("close_lit")
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    acc = p.op("TEST_CREATE_ACCESS", id=ioas)
    for fd in (-1, 0, 3, 500, 1 << 30):
        p.op("CLOSE", fd=fd, expect=E.EBADF)
    p.op("CLOSE", fd=p.ref(acc, "out_access_fd"))
    p.op("CLOSE", fd=p.ref(acc, "out_access_fd"), expect=E.EBADF)
    p.op("CLOSE", fd=4, expect=E.EBADF)
    p.op("IOAS_ALLOC", out={"out_ioas_id": 2})
    check(p)


def test_access_replace_same_ioas_keeps_pins():
    p = Prog("replace_same", Buffer(4 * PAGE, "memfd", 1))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    acc = p.ref(p.op("TEST_CREATE_ACCESS", id=ioas, flags=1), "out_access_fd")
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=PAGE, iova=M16, flags=FIXED_RW)
    p.op("TEST_ACCESS_PAGES", id=acc, iova=M16, length=PAGE)
    p.op("TEST_ACCESS_REPLACE_IOAS", id=acc, ioas_id=ioas)
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0), length=PAGE, refs=1)
    p.op("TEST_DESTROY_ACCESS_PAGES", id=acc, access_pages_id=0)
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0), length=PAGE, refs=0)
    check(p)


def test_split_is_refused_while_an_access_pins_the_area():
    # iopt_area_split: num_accesses -> EINVAL (vfio type1 unmap in the middle)
    p = Prog("split_access", Buffer(4 * PAGE, "memfd", 1))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("VFIO_IOAS", op=1, ioas_id=ioas)
    p.op("VFIO_SET_IOMMU", type=1)
    acc = p.ref(p.op("TEST_CREATE_ACCESS", id=ioas, flags=1), "out_access_fd")
    p.op("VFIO_IOMMU_MAP_DMA", flags=3, vaddr=p.buf(0), size=4 * PAGE, iova=M16)
    p.op("TEST_ACCESS_PAGES", id=acc, iova=M16, length=PAGE)
    p.op("VFIO_IOMMU_UNMAP_DMA", iova=M16 + PAGE, size=PAGE, expect=E.EINVAL,
         out={"size": PAGE})
    p.op("TEST_DESTROY_ACCESS_PAGES", id=acc, access_pages_id=0)
    p.op("VFIO_IOMMU_UNMAP_DMA", iova=M16 + PAGE, size=PAGE, out={"size": PAGE})
    p.op("VFIO_IOMMU_UNMAP_DMA", iova=M16, size=4 * PAGE, out={"size": 3 * PAGE})
    check(p)


def test_syz_flag_converts_copy_src_iova():
    # iommufd_test_syz_conv_iova_id: {u32 nth_area, u32 offset}
    p = Prog("syz", Buffer(4 * PAGE, "memfd", 1))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=PAGE, iova=M16, flags=FIXED_RW)
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=2 * PAGE, iova=2 * M16,
         flags=FIXED_RW)
    p.op("IOAS_COPY", dst_ioas_id=ioas, src_ioas_id=ioas, flags=(1 << 16) | 3,
         src_iova=1 | (PAGE << 32), dst_iova=3 * M16, length=PAGE)
    p.op("IOAS_COPY", dst_ioas_id=ioas, src_ioas_id=ioas, flags=(1 << 16) | 3,
         src_iova=5, dst_iova=4 * M16, length=PAGE, expect=E.ENOENT)
    check(p)


def test_md_check_refs_on_a_possible_thp_is_unsure():
    p = Prog("thp", Buffer(4 << 20, "anon", 1))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("TEST_MOCK_DOMAIN", id=ioas)
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=PAGE, flags=RW)
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0), length=PAGE, refs=1)
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0), length=PAGE, refs=0)
    p.op("IOAS_ALLOC")
    res = run(p)
    assert res[3].unsure is None and res[3].errno == 0
    assert res[4].unsure and res[5].unsure is None


def test_allow_iovas_huge_count_is_unsure_but_earlier_errors_win():
    p = Prog("huge_count")
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("IOAS_ALLOW_IOVAS", ioas_id=ioas, allowed_iovas=[[10, 0]], num_iovas=1 << 20,
         expect=E.EINVAL)
    p.op("IOAS_ALLOW_IOVAS", ioas_id=ioas, allowed_iovas=[[0, 10]], num_iovas=4096,
         expect=E.EINVAL)  # entries past the list are zero-filled: [0, 0] is invalid
    p.op("IOAS_ALLOW_IOVAS", ioas_id=ioas, allowed_iovas=[[0, 10]], num_iovas=1 << 20)
    res = run(p)
    assert res[1].errno == E.EINVAL and res[2].errno == E.EINVAL and res[3].unsure
    assert "EINVAL or EFAULT" in res[3].unsure


def test_iova_ranges_into_a_program_buffer_writes_memory():
    p = Prog("ranges_buf", Buffer(PAGE, "anon", 1))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    acc = p.ref(p.op("TEST_CREATE_ACCESS", id=ioas), "out_access_fd")
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=PAGE, iova=M16, flags=FIXED_RW)
    p.op("IOAS_IOVA_RANGES", ioas_id=ioas, allowed_iovas=p.buf(0, 64), num_iovas=1)
    p.op("TEST_ACCESS_RW", id=acc, iova=M16 + 64, length=16, uptr=p.buf(0, 128),
         out={"data": bytes(8) + b"\xff" * 8})
    res = check(p)
    # the executor decodes 'ranges' from its own side array, which stays zero
    assert res[3].out["ranges"] == [[0, 0]]


def test_unsure_stays_with_what_the_op_could_touch():
    # an unsure IOAS_MAP makes its IOAS (and what maps it: its domain, the pins of its
    # pages) unknown; another IOAS, the object ids and other memory stay known
    p = Prog("local", Buffer(4 * PAGE, "memfd", 1))
    a = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    b = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    md = p.op("TEST_MOCK_DOMAIN", id=a)
    p.op("IOAS_MAP", ioas_id=a, user_va=p.buf(0), length=PAGE, iova=M16, flags=FIXED_RW)
    p.op("IOAS_MAP", ioas_id=a, user_va=0x7F0000000000, length=PAGE, flags=RW)  # 4
    p.op("IOAS_MAP", ioas_id=b, user_va=p.buf(0, PAGE), length=PAGE, iova=M16,
         flags=FIXED_RW)
    p.op("TEST_MD_CHECK_MAP", id=p.ref(md, "out_hwpt_id"), iova=M16, length=PAGE,
         uptr=p.buf(0))  # 6: reads IOAS a through its domain
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0), length=PAGE, refs=1)  # 7: a's pages
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0, 2 * PAGE), length=PAGE, refs=0)  # 8
    p.op("IOAS_UNMAP", ioas_id=b, iova=M16, length=PAGE)  # 9
    p.op("TEST_MOCK_DOMAIN", id=b)  # 10
    p.op("IOAS_UNMAP", ioas_id=a, iova=0, length=U64)  # 11
    res = run(p)
    assert res[4].unsure and "outside the program's buffers" in res[4].unsure
    for i in (6, 7, 11):
        assert res[i].unsure and "ioas 1 is unknown since op 4" in res[i].unsure, i
    for i in (5, 8, 9, 10):
        assert res[i].unsure is None and res[i].errno == 0, (i, res[i].unsure)
    assert res[10].out["out_hwpt_id"] == 8


def test_kernel_writing_into_the_agent_makes_everything_unknown():
    p = Prog("all", Buffer(PAGE, "memfd", 1))
    a = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("IOAS_IOVA_RANGES", ioas_id=a, num_iovas=1, allowed_iovas=0x7F0000000000)
    p.op("IOAS_ALLOC")
    res = run(p)
    assert res[1].unsure and res[2].unsure.startswith("after op 1")
    # unless the kernel says that one-page write faulted: then nothing was written
    k = [OpResult(0, 0, {"out_ioas_id": 1}), OpResult(E.EFAULT, -1, {}), None]
    m = Model(p.program)
    got = [m.step(i, r) for i, r in enumerate(k)]
    assert got[1].unsure and got[2].unsure is None and got[2].out["out_ioas_id"] == 2


def test_unsure_read_of_a_fault_fd_leaves_only_its_queue_unknown():
    # (tests/test_hwpt.py has the fault programs; here: the ids and other fds stay known)
    p = Prog("queue")
    f = p.op("FAULT_QUEUE_ALLOC", out={"out_fault_fd": 4})
    p.op("READ", fd=p.ref(f, "out_fault_fd"), count=1 << 41)
    p.op("READ", fd=p.ref(f, "out_fault_fd"))
    g = p.op("FAULT_QUEUE_ALLOC")
    p.op("READ", fd=p.ref(g, "out_fault_fd"))
    res = run(p)
    assert res[1].unsure and "access_ok" in res[1].unsure
    assert res[2].unsure and "queues of fault 1 are unknown since op 1" in res[2].unsure
    assert res[3].unsure is None and res[3].out == {"out_fault_id": 2, "out_fault_fd": 5}
    assert res[4].unsure is None and res[4].out["ret"] == 0


def test_ids_after_an_unsure_alloc_come_from_the_kernel():
    p = Prog("ids_unknown", Buffer(PAGE, "memfd", 1))
    a = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("IOAS_MAP", ioas_id=a, user_va=0x7F0000000000, length=PAGE, iova=M16,
         flags=FIXED_RW)
    p.op("TEST_MOCK_DOMAIN", id=a)  # unsure: fills the unknown memory
    c = p.op("IOAS_ALLOC")
    p.op("DESTROY", id=p.ref(c, "out_ioas_id"))
    p.op("DESTROY", id=9)
    k = [OpResult(0, 0, {"out_ioas_id": 1}), OpResult(0, 0, {"iova": M16}),
         OpResult(E.ENOMEM, -1, {}), OpResult(0, 0, {"out_ioas_id": 6}), OpResult(), None]
    m = Model(p.program)
    got = [m.step(i, r) for i, r in enumerate(k)]
    assert got[2].unsure and "errno" not in got[2].unsure
    # the new IOAS takes the kernel's id (its own number is not predicted), and is known
    assert got[3].unsure and "ids are not known" in got[3].unsure
    assert got[3].out["out_ioas_id"] == 6 and got[4].unsure is None and got[4].errno == 0
    # an id the model has no object for may be one the kernel made
    assert got[5].unsure and "may be an object the model does not know" in got[5].unsure



def test_unsure_hwpt_alloc_leaves_the_fault_it_names_unknown():
    # soak finding READ.cookie (session 6): an HWPT_ALLOC the model could not follow
    # (here: its device id may be one the model does not know) failed in the model
    # before it looked up its fault; in the kernel it made a nested HWPT reporting to
    # that fault (hw_pagetable.c:329-339), so faults may land in the fault's queue
    p = Prog("late_fault", Buffer(PAGE, "memfd", 1))
    f = p.op("FAULT_QUEUE_ALLOC")
    a = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("IOAS_MAP", ioas_id=a, user_va=0x7F0000000000, length=PAGE, iova=M16,
         flags=FIXED_RW)
    p.op("TEST_MOCK_DOMAIN", id=a)  # unsure: ids are not known from here
    p.op("HWPT_ALLOC", flags=uapi.IOMMU_HWPT_FAULT_ID_VALID, dev_id=9, pt_id=10,
         data_type=uapi.IOMMU_HWPT_DATA_SELFTEST, data_len=4,
         fault_id=p.ref(f, "out_fault_id"))
    p.op("READ", fd=p.ref(f, "out_fault_fd"))
    p.op("HWPT_ALLOC", flags=0, dev_id=9, pt_id=10)  # names no fault
    p.op("READ", fd=p.ref(f, "out_fault_fd"))
    k = [OpResult(0, 0, {"out_fault_id": 1, "out_fault_fd": 4}),
         OpResult(0, 0, {"out_ioas_id": 2}), OpResult(0, 0, {"iova": M16}),
         OpResult(E.ENOMEM, -1, {}), OpResult(0, 0, {"out_hwpt_id": 11}), None, None, None]
    m = Model(p.program)
    got = [m.step(i, r) for i, r in enumerate(k)]
    assert got[4].unsure and "may be an object the model does not know" in got[4].unsure
    assert got[5].unsure and "fault 1 is unknown since op 4 (HWPT_ALLOC)" in got[5].unsure
    # where the kernel's HWPT_ALLOC failed, it made no HWPT (or destroyed it): the fault
    # is as it was
    m = Model(p.program)
    got = [m.step(i, r) for i, r in enumerate(k[:4] + [OpResult(E.ENOENT, -1, {}), None])]
    assert got[4].unsure and got[5].unsure is None and got[5].out["ret"] == 0
    # without FAULT_ID_VALID the fault is not named: a later fault stays known
    g = Prog("no_fault", Buffer(PAGE, "memfd", 1))
    g.program.ops[:] = [op for i, op in enumerate(p.program.ops) if i not in (4, 5)]
    m = Model(g.program)
    got = [m.step(i, r) for i, r in enumerate(k[:4] + [None, None])]
    assert got[4].unsure and got[5].unsure is None and got[5].out["ret"] == 0

# -- random programs: the model never crashes, and is fast enough -----------------------------
_INTS = [0, 1, 2, 4, 6, 7, 0x800, 0x1000, 0x10000, 1 << 20, 1 << 24, (1 << 24) + 0x1000,
         1 << 31, (1 << 32) - 1, U64, U64 - 4095, 1 << 63, 99]


def _random_program(rng: random.Random, nops: int) -> Program:
    bufs = [Buffer(rng.choice([4096, 65536, 1 << 20]),
                   rng.choice(["anon", "memfd", "readonly", "hole"]), rng.randrange(256))
            for _ in range(3)]
    bufs.append(Buffer(2 << 20, "hugetlb", 1, [(0, 2 << 20)] if rng.random() < 0.2 else []))
    prog = Program([], bufs)
    names = list(OPS)
    hot = {"IOAS_MAP", "IOAS_ALLOC", "TEST_MOCK_DOMAIN", "TEST_ACCESS_RW",
           "TEST_ACCESS_PAGES", "IOAS_COPY", "IOAS_UNMAP", "TEST_MD_CHECK_MAP",
           "TEST_CREATE_ACCESS", "VFIO_IOMMU_UNMAP_DMA", "TEST_MD_CHECK_REFS"}
    weights = [4 if n in hot else 1 for n in names]
    for _ in range(nops):
        name = rng.choices(names, weights)[0]
        args: dict = {}
        for a in OPS[name].args:
            if rng.random() > 0.75:
                continue
            r = rng.random()
            j = rng.randrange(len(prog.ops)) if prog.ops else -1
            outs = [o.name for o in OPS[prog.ops[j].name].outs
                    if o.is_int] if j >= 0 else []
            if r < 0.35 and outs:
                args[a.name] = Ref(j, rng.choice(outs), rng.choice([0, 0, 4096, -4096, 2048]))
            elif isinstance(a.type, Uptr) or (r < 0.6 and a.width == 8):
                args[a.name] = BufPtr(rng.randrange(len(bufs)),
                                      rng.choice([0, 0, 2048, 4096, 1, 65536]))
            elif list_widths(OPS[name], a.name) is not None:
                widths = list_widths(OPS[name], a.name)
                args[a.name] = [[rng.choice(_INTS) % (1 << (8 * w)) for w in widths]
                                for _ in range(rng.randrange(3))]
            else:
                args[a.name] = rng.choice(_INTS) % (1 << (8 * a.width))
        if name == "IOAS_MAP" and rng.random() < 0.8:
            args.update(flags=rng.choice([6, 7, 4]), length=rng.choice([2048, 4096, 65536]))
        prog.ops.append(Op(name, args))
    prog.validate()
    return prog


def test_random_programs_never_crash_the_model():
    rng = random.Random(1234)
    total = 0
    for _ in range(400):
        prog = _random_program(rng, rng.randrange(5, 40))
        res = run_model(prog)
        assert len(res) == len(prog.ops)
        assert all(r.errno >= 0 for r in res)
        total += len(res)
    assert total > 1000


def test_results_carry_every_output_field():
    rng = random.Random(99)
    for _ in range(100):
        prog = _random_program(rng, 20)
        for op, r in zip(prog.ops, run_model(prog)):
            assert set(r.out) == set(OPS[op.name].outputs), op.name


def test_model_step_api():
    p = Prog("api")
    p.op("IOAS_ALLOC")
    m = Model(p.program)
    r = m.step(0)
    assert r.errno == 0 and r.out == {"out_ioas_id": 1} and r.ret == 0
    with pytest.raises(AssertionError):
        m.step(0)


def test_buffer_address_is_used_for_bufptr():
    p = Prog("addr", Buffer(PAGE, "anon", 1), Buffer(PAGE, "anon", 2))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("TEST_MOCK_DOMAIN", id=ioas)
    m = p.op("IOAS_MAP", ioas_id=ioas, user_va=buffer_address(1), length=PAGE, flags=RW)
    p.op("TEST_MD_CHECK_MAP", id=4, iova=p.ref(m, "iova"), length=PAGE, uptr=p.buf(1))
    check(p)


# -- named behaviours (most are also walked by the seed programs) ------------------------------
def test_unmap_partial_area_fails():
    # selftest area "Split fails"
    p = Prog("partial", Buffer(2 * PAGE, "memfd", 1))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=2 * PAGE, iova=M16,
         flags=FIXED_RW)
    p.op("IOAS_UNMAP", ioas_id=ioas, iova=M16, length=PAGE, expect=E.ENOENT,
         out={"length": PAGE})
    p.op("IOAS_UNMAP", ioas_id=ioas, iova=M16 + PAGE, length=PAGE, expect=E.ENOENT)
    p.op("IOAS_UNMAP", ioas_id=ioas, iova=M16 - PAGE, length=4 * PAGE,
         out={"length": 2 * PAGE})
    check(p)


def test_unmap_nothing_is_enoent_but_unmap_all_of_nothing_succeeds():
    p = Prog("nothing")
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("IOAS_UNMAP", ioas_id=ioas, iova=PAGE, length=PAGE, expect=E.ENOENT)
    p.op("IOAS_UNMAP", ioas_id=ioas, iova=0, length=U64, out={"length": 0})
    p.op("IOAS_UNMAP", ioas_id=ioas, iova=0, length=U64 - 1, expect=E.ENOENT)
    check(p)


def test_destroy_objects_in_use_is_ebusy():
    # selftest ioas_destroy (mock_domain variant)
    p = Prog("busy")
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    md = p.op("TEST_MOCK_DOMAIN", id=ioas)
    acc = p.op("TEST_CREATE_ACCESS", id=ioas)
    for field in ("out_hwpt_id", "out_idev_id"):
        p.op("DESTROY", id=p.ref(md, field), expect=E.EBUSY)
    p.op("DESTROY", id=ioas, expect=E.EBUSY)
    p.op("DESTROY", id=5, expect=E.EBUSY)  # the access object
    p.op("DESTROY", id=p.ref(md, "out_stdev_id"))
    p.op("DESTROY", id=ioas, expect=E.EBUSY)
    p.op("CLOSE", fd=p.ref(acc, "out_access_fd"))
    p.op("DESTROY", id=ioas)
    check(p)


def test_wrong_object_type_is_enoent():
    p = Prog("type")
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    md = p.op("TEST_MOCK_DOMAIN", id=ioas)
    hwpt = p.ref(md, "out_hwpt_id")
    p.op("IOAS_IOVA_RANGES", ioas_id=hwpt, expect=E.ENOENT)
    p.op("TEST_ADD_RESERVED", id=hwpt, start=0, length=1, expect=E.ENOENT)
    p.op("TEST_MD_CHECK_MAP", id=ioas, iova=0, length=0, uptr=0, expect=E.ENOENT)
    p.op("TEST_MOCK_DOMAIN_REPLACE", id=p.ref(md, "out_idev_id"), pt_id=ioas,
         expect=E.ENOENT)
    p.op("OPTION", option_id=1, op=1, object_id=hwpt, expect=E.ENOENT)
    p.op("VFIO_IOAS", op=1, ioas_id=p.ref(md, "out_stdev_id"), expect=E.ENOENT)
    check(p)


def test_map_readonly_buffer_writeable_needs_a_domain_to_fault():
    p = Prog("ro", Buffer(PAGE, "readonly", 1))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=PAGE, iova=M16, flags=FIXED_RW)
    p.op("TEST_MOCK_DOMAIN", id=ioas, expect=E.EFAULT)
    p.op("IOAS_UNMAP", ioas_id=ioas, iova=0, length=U64)
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=PAGE, iova=M16, flags=5)
    p.op("TEST_MOCK_DOMAIN", id=ioas)
    check(p)


def test_copy_iova_is_computed_from_the_source_user_address():
    p = Prog("copy_iova", Buffer(4 * PAGE, "memfd", 1))
    a = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("IOAS_MAP", ioas_id=a, user_va=p.buf(0, PAGE), length=2 * PAGE, iova=M16,
         flags=FIXED_RW)
    p.op("IOAS_COPY", src_ioas_id=a, dst_ioas_id=a, src_iova=M16, length=2 * PAGE, flags=6,
         out={"dst_iova": PAGE})  # align min(8K, lowest bit of buf+4K) = 4K
    p.op("IOAS_COPY", src_ioas_id=a, dst_ioas_id=a, src_iova=M16 + PAGE, length=PAGE,
         flags=6, out={"dst_iova": 3 * PAGE})  # from buf+8K: 4K aligned, after [4K, 12K)
    kernel = [OpResult(0, 0, {"out_ioas_id": 1}), OpResult(0, 0, {"iova": M16}),
              OpResult(0, 0, {"dst_iova": 0x80000})]
    assert run(p, kernel)[2].out["dst_iova"] == PAGE  # never the kernel's
    check(p)


def test_access_pages_pins_until_destroyed():
    # selftest access_pin "Double user"
    p = Prog("pin", Buffer(2 * PAGE, "memfd", 1))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    acc = p.ref(p.op("TEST_CREATE_ACCESS", id=ioas, flags=1), "out_access_fd")
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=2 * PAGE, iova=M16,
         flags=FIXED_RW)
    p.op("TEST_ACCESS_PAGES", id=acc, iova=M16, length=PAGE, out={"out_access_pages_id": 0})
    p.op("TEST_ACCESS_PAGES", id=acc, iova=M16, length=2 * PAGE,
         out={"out_access_pages_id": 1})
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0), length=2 * PAGE, refs=1)
    p.op("TEST_DESTROY_ACCESS_PAGES", id=acc, access_pages_id=1)
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0), length=PAGE, refs=1)
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0, PAGE), length=PAGE, refs=0)
    p.op("TEST_DESTROY_ACCESS_PAGES", id=acc, access_pages_id=0)
    p.op("TEST_MD_CHECK_REFS", uptr=p.buf(0), length=2 * PAGE, refs=0)
    check(p)


def test_vfio_unmap_all_flag_rejects_iova_and_size():
    # selftest vfio_compat_mock_domain map "UNMAP_FLAG_ALL requires 0 iova/size"
    p = Prog("unmap_all", Buffer(PAGE, "memfd", 1))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("VFIO_IOAS", op=1, ioas_id=ioas)
    p.op("VFIO_IOMMU_MAP_DMA", flags=3, vaddr=p.buf(0), size=PAGE, iova=M16)
    p.op("VFIO_IOMMU_UNMAP_DMA", flags=2, iova=M16, expect=E.EINVAL, out={"size": 0})
    p.op("VFIO_IOMMU_UNMAP_DMA", flags=2, size=1, expect=E.EINVAL, out={"size": 1})
    p.op("VFIO_IOMMU_UNMAP_DMA", flags=2, out={"size": PAGE})
    p.op("VFIO_IOMMU_UNMAP_DMA", flags=3, expect=E.EINVAL)  # GET_DIRTY_BITMAP
    check(p)


def test_mock_domain_on_hwpt_of_another_ioas_shares_it():
    p = Prog("share")
    a = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    md = p.op("TEST_MOCK_DOMAIN", id=a)
    p.op("TEST_MOCK_DOMAIN_FLAGS", id=p.ref(md, "out_hwpt_id"), dev_flags=3,
         out={"out_hwpt_id": 4, "out_stdev_id": 5, "out_idev_id": 6})
    p.op("IOAS_IOVA_RANGES", ioas_id=a, out={"num_iovas": 1, "out_iova_alignment": 2048})
    check(p)


def test_access_ops_check_length_then_flags_then_fd():
    # iommufd_test_access_pages / _rw: length > 16M, then flags, then the fd
    p = Prog("order")
    p.op("TEST_ACCESS_PAGES", id=100, length=(16 << 20) + 1, flags=4, expect=E.ENOMEM)
    p.op("TEST_ACCESS_PAGES", id=100, length=PAGE, flags=4, expect=E.EOPNOTSUPP)
    p.op("TEST_ACCESS_PAGES", id=100, length=PAGE, flags=(1 << 16) | 1, expect=E.EBADFD)
    p.op("TEST_ACCESS_RW", id=100, length=(16 << 20) + 1, flags=2, expect=E.ENOMEM)
    p.op("TEST_ACCESS_RW", id=100, length=PAGE, flags=2, expect=E.EOPNOTSUPP)
    p.op("TEST_ACCESS_RW", id=100, length=PAGE, flags=5, expect=E.EBADFD)
    p.op("TEST_DESTROY_ACCESS_PAGES", id=100, expect=E.EBADFD)
    p.op("TEST_ACCESS_REPLACE_IOAS", id=100, expect=E.EBADFD)
    p.op("TEST_CREATE_ACCESS", id=100, flags=2, expect=E.EOPNOTSUPP)
    check(p)


def _check_invariants(m: Model) -> None:
    """Internal consistency of the model state (what the kernel guarantees)."""
    for obj in m.objects.objs.values():
        iopt = getattr(obj, "iopt", None)
        if iopt is None:
            continue
        areas = iopt.areas
        assert [a.iova for a in areas] == iopt.starts
        assert all(a.last < b.iova for a, b in zip(areas, areas[1:]))
        for a in areas:
            assert a.storage == bool(iopt.domains)
            assert a in a.pages.areas
            if iopt.domains:
                assert a.iova % iopt.iova_alignment == 0
                assert MOCK_APERTURE_START <= a.iova and a.last <= (1 << 31) - 1
        assert iopt.iova_alignment in (1, 2048, PAGE)


@pytest.mark.parametrize("seed", range(40))
def test_random_programs_keep_model_invariants_and_are_deterministic(seed):
    rng = random.Random(seed)
    prog = _random_program(rng, 60)
    m = Model(prog)
    for i in range(len(prog.ops)):
        m.step(i)
        _check_invariants(m)
    again = run_model(prog)
    assert [(r.errno, r.out, r.unsure) for r in again] == \
        [(r.errno, r.out, r.unsure) for r in m.results]


def test_slow_path_write_fault_with_small_temp_memory_may_be_partial():
    # iopt_pages_rw_slow writes batch by batch; with a tiny temp memory limit an
    # earlier batch may already be written when a later page fails to pin
    p = Prog("slow_partial", Buffer(4 * PAGE, "memfd", 1, [(3 * PAGE, PAGE)]),
             Buffer(4 * PAGE, "anon", 2))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    acc = p.ref(p.op("TEST_CREATE_ACCESS", id=ioas), "out_access_fd")
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=4 * PAGE, iova=M16,
         flags=FIXED_RW)
    p.op("TEST_ACCESS_RW", id=acc, iova=M16, length=4 * PAGE, uptr=p.buf(1), flags=5,
         expect=E.EFAULT)
    p.op("TEST_ACCESS_RW", id=acc, iova=M16, length=8, uptr=p.buf(1, 100),
         out={"data": pattern_bytes(1, 0, 8)})
    p.op("TEST_SET_TEMP_MEMORY_LIMIT", limit=12)
    p.op("TEST_ACCESS_RW", id=acc, iova=M16, length=4 * PAGE, uptr=p.buf(1), flags=5,
         expect=E.EFAULT)
    p.op("TEST_ACCESS_RW", id=acc, iova=M16, length=8, uptr=p.buf(1, 100))
    res = run(p)
    assert [r.errno for r in res[3:7]] == [E.EFAULT, 0, 0, E.EFAULT]
    assert res[4].unsure is None and res[4].out["data"] == pattern_bytes(1, 0, 8)
    assert res[7].unsure and "unknown" in res[7].unsure


def test_get_info_caps_are_decoded_as_the_executor_decodes_them():
    # the executor walks the chain from the returned cap_offset inside its own
    # buffer of max(24, argsz, 24 + 4096) bytes, even when the kernel did not
    # write cap_offset (argsz < 20): here from offset 5 into the info struct
    p = Prog("caps_quirk")
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("TEST_MOCK_DOMAIN_FLAGS", id=ioas, dev_flags=2)
    p.op("VFIO_IOAS", op=1, ioas_id=ioas)
    p.op("VFIO_IOMMU_GET_INFO", argsz=16, cap_offset=5,
         out={"cap_offset": 5, "caps": [{"id": 0, "version": 0}, {"id": 0, "version": 0}]})
    p.op("VFIO_IOMMU_GET_INFO", argsz=100, tail=0xAB, out={"cap_offset": 24})
    res = check(p)
    assert res[4].out["caps"][1]["ranges"] == [[M16, (1 << 31) - 1]]


def test_access_rw_capture_room_runs_out_after_4mib():
    p = Prog("room", Buffer(65536, "memfd", 1), Buffer(65536, "anon", 2))
    ioas = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    acc = p.ref(p.op("TEST_CREATE_ACCESS", id=ioas), "out_access_fd")
    p.op("IOAS_MAP", ioas_id=ioas, user_va=p.buf(0), length=65536, iova=M16, flags=FIXED_RW)
    for _ in range(65):
        p.op("TEST_ACCESS_RW", id=acc, iova=M16, length=65536, uptr=p.buf(1))
    res = run(p)
    assert all(len(r.out["data"]) == 65536 for r in res[3:67])
    assert res[67].errno == 0 and res[67].out["data"] == b""



def test_an_object_left_at_a_guessed_id_is_named_by_refs_by_that_id():
    # soak finding TEST_MOCK_DOMAIN_REPLACE.errno (session 6): refs to an unsure op read
    # the kernel's outputs; an object it made that could not take the kernel's id (the
    # model holds another object there) is named by the model's id for it, as it is
    # the one the kernel's id names
    p = Prog("own_ids", Buffer(PAGE, "memfd", 1))
    a = p.ref(p.op("IOAS_ALLOC"), "out_ioas_id")
    p.op("IOAS_MAP", ioas_id=a, user_va=0x7F0000000000, length=PAGE, iova=M16,
         flags=FIXED_RW)
    p.op("TEST_MOCK_DOMAIN", id=a)  # unsure: the model's objects stay at 2, 3, 4
    c = p.op("IOAS_ALLOC")
    p.op("IOAS_IOVA_RANGES", ioas_id=p.ref(c, "out_ioas_id"))
    ranges = {"num_iovas": 1, "out_iova_alignment": 1, "ranges": [[0, U64]]}
    k = [OpResult(0, 0, {"out_ioas_id": 1}), OpResult(0, 0, {"iova": M16}),
         OpResult(E.ENOMEM, -1, {}), OpResult(0, 0, {"out_ioas_id": 3}),
         OpResult(0, 0, ranges)]
    m = Model(p.program)
    got = [m.step(i, r) for i, r in enumerate(k)]
    assert got[3].unsure and got[3].out["out_ioas_id"] == 5  # 3 is the model's device
    assert m.ref_outs[3] == {"out_ioas_id": 5}
    assert got[4].errno == 0 and got[4].out == ranges
    assert got[4].unsure == ("ioas 5: its id is the model's guess (ids are not known since "
                             "op 2 (TEST_MOCK_DOMAIN): user address 0x7f0000000000 is "
                             "outside the program's buffers)")


def test_the_kernels_id_moves_an_access_whose_id_the_model_guessed():
    # the same finding: while ids are not known, an access (no output shows its id: no
    # ref names it) the model put at a guessed id makes way for an object the kernel
    # gave that id; an object some output shows keeps its id (refs name it by it)
    from fuzz.model.objects import Access, ObjectTable, SelftestObj

    t = ObjectTable()
    t.ids_unknown = "since the race group at op 1: why"
    acc = t.alloc(Access(False))
    sobj = t.alloc(SelftestObj())
    for o in (acc, sobj):
        t.finalize(o)
    assert (acc.id, sobj.id, acc.id_guessed) == (1, 2, True)
    new = t.alloc(SelftestObj())
    t.remove(new)
    assert t.put(new, 1)
    assert t.objs[1] is new and t.objs[3] is acc and acc.id_guessed
    new2 = t.alloc(SelftestObj())
    t.remove(new2)
    assert not t.put(new2, 2)
    assert t.objs[2] is sobj and t.objs[4] is new2
