"""The HWPT / dirty tracking / invalidation / fault queue ops: the op table covers the
uAPI, the executor's read/write/close rule for fds, the side arrays' layout, and
named model behaviours (each also walked by a seed program on the real kernel in
tests/test_differential.py)."""

from __future__ import annotations

import errno as E
import re
import struct
from pathlib import Path

from fuzz import differential, uapi
from fuzz.backend import VMBackend
from fuzz.executor.encode import encode
from fuzz.executor.wire import CALL, HEADER, RELOC, RELOC_ARENA
from fuzz.model import run_model
from fuzz.model.memory import pattern_bytes
from fuzz.prog import Buffer, BufPtr, Op, Program, Ref
from fuzz.prog.descriptions import HW_INFO_SCRATCH, OPS
from fuzz.prog.ir import SCRATCH_ADDR
from fuzz.result import OpResult

READ_DEFAULT_COUNT = 4 * uapi.sizeof("struct iommu_hwpt_pgfault")  # READ's Count(entries=4)

try:
    from test_uapi import _source_tree
except ImportError:
    from tests.test_uapi import _source_tree

M16 = uapi.MOCK_APERTURE_START
SELFTEST = uapi.IOMMU_HWPT_DATA_SELFTEST


# -- the op table covers the uAPI --------------------------------------------------------
def test_every_ioctl_op_and_test_op_is_in_the_op_table() -> None:
    tree = _source_tree() / "drivers" / "iommu" / "iommufd"
    main_c = (tree / "main.c").read_text()
    ioctls = set(re.findall(r"IOCTL_OP\((IOMMU_\w+),", main_c))
    assert len(ioctls) == 16, ioctls  # 15 commands and IOMMU_TEST_CMD
    have = {s.request for s in OPS.values()}
    assert ioctls <= have, f"IOCTL_OPs without an op: {sorted(ioctls - have)}"
    test_h = (tree / "iommufd_test.h").read_text()
    test_ops = set(re.findall(r"^\s*(IOMMU_TEST_OP_\w+)", test_h, re.MULTILINE))
    assert len(test_ops) == 15, test_ops
    have_test = {s.test_op for s in OPS.values() if s.test_op}
    assert test_ops <= have_test, f"test ops without an op: {sorted(test_ops - have_test)}"


# -- the executor's fd rule ----------------------------------------------------------------
def test_read_write_close_only_touch_the_programs_own_fds(vm: VMBackend) -> None:
    # The agent's own fds (channel, KCOV, the iommufd itself: all below 64 or high up)
    # answer EBADF without a syscall: no read blocks on the channel, nothing closes it.
    ops = []
    for fd in list(range(0, 16)) + [1000, 1023]:
        ops += [Op("READ", {"fd": fd}), Op("WRITE", {"fd": fd}), Op("CLOSE", {"fd": fd})]
    ex = vm.run(Program(ops))
    assert ex.crash is None and ex.setup_error is None
    assert {r.errno for r in ex.results} == {E.EBADF}
    again = vm.run(Program([Op("IOAS_ALLOC")]))
    assert again.results[0].errno == 0


def test_every_fd_the_program_got_is_closed_at_the_end(vm: VMBackend) -> None:
    # Left open by the program, the fault fd (and the access fd) are closed by the
    # executor: the next program gets the same numbers again.
    prog = Program([Op("IOAS_ALLOC"), Op("FAULT_QUEUE_ALLOC"),
                    Op("TEST_CREATE_ACCESS", {"id": Ref(0, "out_ioas_id")})])
    first = vm.run(prog).results
    second = vm.run(prog).results
    assert [r.errno for r in first] == [0, 0, 0]
    assert first[1].out["out_fault_fd"] == second[1].out["out_fault_fd"]
    assert first[2].out["out_access_fd"] == second[2].out["out_access_fd"]
    # ... and the fault file's reference on the iommufd went with it: ids restart
    assert second[1].out["out_fault_id"] == 2


def test_read_into_a_program_buffer_is_copied_to_the_side_array(vm: VMBackend) -> None:
    fd = Ref(3, "out_fault_fd")
    prog = _fault_prog([Op("READ", {"fd": fd, "buf": BufPtr(0), "count": 80}),
                        Op("WRITE", {"fd": fd, "cookie": Ref(8, "cookie")})])
    ex = vm.run(prog)
    r, w = ex.results[8], ex.results[9]
    assert r.errno == 0 and r.ret == 80 and r.out["cookie"] == 1
    assert [rec[6] for rec in r.out["records"]] == [0x1000, 0x2000]
    assert w.errno == 0 and w.ret == 8


def _fault_prog(tail: list[Op]) -> Program:
    """A device on a nested HWPT that reports to the fault queue of op 3, and two
    faults raised on it (ops 6, 7); tail follows from op 8."""
    idev, ioas = Ref(1, "out_idev_id"), Ref(0, "out_ioas_id")
    ops = [Op("IOAS_ALLOC"), Op("TEST_MOCK_DOMAIN", {"id": ioas}),
           Op("HWPT_ALLOC", {"dev_id": idev, "pt_id": ioas, "flags": 1}),
           Op("FAULT_QUEUE_ALLOC"),
           Op("HWPT_ALLOC", {"dev_id": idev, "pt_id": Ref(2, "out_hwpt_id"), "flags": 4,
                             "data_type": SELFTEST, "data_len": 4,
                             "fault_id": Ref(3, "out_fault_id")}),
           Op("TEST_MOCK_DOMAIN_REPLACE", {"id": Ref(1, "out_stdev_id"),
                                           "pt_id": Ref(4, "out_hwpt_id")}),
           Op("TEST_TRIGGER_IOPF", {"dev_id": idev, "addr": 0x1000}),
           Op("TEST_TRIGGER_IOPF", {"dev_id": idev, "addr": 0x2000})]
    prog = Program(ops + tail, [Buffer(4096)])
    prog.validate()
    return prog


# -- layout --------------------------------------------------------------------------------
def _calls_and_relocs(enc):
    nb, nh, nc, nr = HEADER.unpack_from(enc.wire)[1:5]
    off = HEADER.size + nb * 32 + nh * 16
    calls = [CALL.unpack_from(enc.wire, off + k * CALL.size) for k in range(nc)]
    off += nc * CALL.size
    relocs = [RELOC.unpack_from(enc.wire, off + k * RELOC.size) for k in range(nr)]
    return calls, relocs


def test_read_buffer_defaults_to_a_side_array_the_size_of_count() -> None:
    prog = Program([Op("READ", {"fd": 3, "count": 120}), Op("READ", {"fd": 3})])
    enc = encode(prog)
    calls, relocs = _calls_and_relocs(enc)
    buf_off = OPS["READ"].arg("buf").offset  # type: ignore[union-attr]
    for i, want in ((0, 120), (1, READ_DEFAULT_COUNT)):
        side, s = enc.layout.side[(i, "buf")]
        size = s.size
        assert size == want
        base = enc.layout.struct_off[i]
        r = [x for x in relocs if x[0] == base + buf_off]
        assert len(r) == 1 and r[0][2] == RELOC_ARENA and r[0][4] == side
        assert calls[i][6] == side and calls[i][8] == size  # where records end up


def test_write_side_array_holds_cookie_code_and_responses() -> None:
    prog = Program([Op("WRITE", {"fd": 3, "cookie": 7, "code": 1, "responses": [[8, 0]],
                                 "count": 32})])
    enc = encode(prog)
    side, s = enc.layout.side[(0, "buf")]
    size = s.size
    arena = enc.wire[-enc.arena_len:]
    assert size == 32
    assert struct.unpack_from("<8I", arena, side) == (7, 1, 8, 0, 0, 0, 0, 0)
    count = struct.unpack_from("<Q", arena, enc.layout.struct_off[0] + 16)[0]
    assert count == 32


def test_hw_info_default_pointer_is_its_own_mapping() -> None:
    prog = Program([Op("GET_HW_INFO", {"dev_id": 1, "data_len": 0xFFFFFFFF})])
    enc = encode(prog)
    nb = HEADER.unpack_from(enc.wire)[1]
    assert nb == 1  # the scratch mapping, after the program's (none) buffers
    addr, size = struct.unpack_from("<QQ", enc.wire, HEADER.size)
    assert (addr, size) == (SCRATCH_ADDR, HW_INFO_SCRATCH)


# -- model behaviours --------------------------------------------------------------------------
def test_fault_fd_number_is_computed() -> None:
    # the lowest free fd of the agent (0-2 console, 3 the iommufd), not the kernel's
    prog = Program([Op("FAULT_QUEUE_ALLOC"), Op("READ", {"fd": Ref(0, "out_fault_fd")}),
                    Op("FAULT_QUEUE_ALLOC")])
    kernel = [OpResult(0, 0, {"out_fault_id": 1, "out_fault_fd": 7}), OpResult(0, 0, {}),
              OpResult(0, 0, {"out_fault_id": 2, "out_fault_fd": 4})]
    res = run_model(prog, kernel)
    assert res[0].out["out_fault_fd"] == 4 and res[1].errno == 0 and res[1].out["ret"] == 0
    assert res[2].out["out_fault_fd"] == 5


def _cookie_0_prog() -> Program:
    """Read fault 1 (cookie 1), respond for cookie 0 (EINVAL), read fault 2, respond for
    cookie 0 again (reproducers/fault-response-cookie-0)."""
    fd = Ref(3, "out_fault_fd")
    return _fault_prog([Op("READ", {"fd": fd, "count": 40}),
                        Op("WRITE", {"fd": fd, "cookie": 0, "count": 8}),
                        Op("READ", {"fd": fd, "count": 40}),
                        Op("WRITE", {"fd": fd, "cookie": 0, "count": 8})])


def test_fault_cookie_0_known_bug_is_marked_and_followed() -> None:
    prog = _cookie_0_prog()
    res = run_model(prog)
    # documented: cookies from 1 (XA_FLAGS_ALLOC1); a response for 0 is refused
    assert res[8].out["cookie"] == 1 and res[9].errno == E.EINVAL
    assert res[10].out["cookie"] == 2 and res[10].known is None and res[11].errno == E.EINVAL
    # 6.12: the refused response freed index 0, the second group gets cookie 0, and a
    # response for cookie 0 then completes it
    kernel = run_model(prog)
    rec = kernel[10].out["records"][0][:8] + [0]
    kernel[10] = OpResult(0, 40, {"ret": 40, "cookie": 0, "records": [rec]})
    kernel[11] = OpResult(0, 8, {"ret": 8})
    res = run_model(prog, kernel)
    assert res[10].known == "fault-response-cookie-0" and res[10].out["cookie"] == 2
    assert res[11].errno == 0 and res[11].known is None  # followed: cookie 0 is live
    from fuzz.compare import compare_op

    m = compare_op(10, "READ", kernel[10], res[10])[0]
    assert m.signature == "mismatch READ.cookie [fault-response-cookie-0]"
    # without the write of cookie 0, a cookie-0 record is an ordinary mismatch
    prog.ops[9].args["cookie"] = 5
    assert run_model(prog, kernel)[10].known is None


def test_fault_cookie_0_is_found_as_the_known_bug(vm: VMBackend) -> None:
    out = differential.run(_cookie_0_prog(), vm)
    ex = out.execution
    assert ex.crash is None and ex.setup_error is None
    assert ex.results[10].out["cookie"] == 0 and ex.results[11].errno == 0
    sigs = [m.signature for m in out.mismatches]
    assert sigs == ["mismatch READ.cookie [fault-response-cookie-0]",
                    "mismatch READ.records [fault-response-cookie-0]"], sigs


def test_hw_info_past_the_scratch_mapping_faults() -> None:
    prog = Program([Op("IOAS_ALLOC"), Op("TEST_MOCK_DOMAIN", {"id": Ref(0, "out_ioas_id")}),
                    Op("GET_HW_INFO", {"dev_id": Ref(1, "out_idev_id"),
                                       "data_len": HW_INFO_SCRATCH}),
                    Op("GET_HW_INFO", {"dev_id": Ref(1, "out_idev_id"),
                                       "data_len": HW_INFO_SCRATCH + 1})])
    res = run_model(prog)
    assert res[2].errno == 0 and len(res[2].out["data"]) == HW_INFO_SCRATCH
    assert res[3].errno == E.EFAULT and res[3].unsure is None


def test_huge_read_into_the_side_array_is_unsure() -> None:
    # access_ok(side, count) depends on where the executor's arena is
    # 2^38: a campaign's read got EFAULT where the model had said ESPIPE (the clamp to
    # MAX_RW_COUNT leaves a count that is not a multiple of the record size)
    for count in (1 << 40, 1 << 38, 1 << 26):
        prog = _fault_prog([Op("READ", {"fd": Ref(3, "out_fault_fd"), "count": count}),
                            Op("READ", {"fd": Ref(3, "out_fault_fd")})])
        res = run_model(prog)
        assert res[8].unsure and "access_ok" in res[8].unsure, count
        # if access_ok passed, the faults were read: what the next read returns is not known
        assert res[9].unsure and "queues of fault" in res[9].unsure, count


def _with_bits(seed: int, bits: int) -> bytes:
    """The captured u64 word of a bitmap in a buffer of pattern `seed`, with bits OR-ed in."""
    b = bytearray(pattern_bytes(seed, 0, 8))
    b[0] |= bits
    return bytes(b)


def _two_areas_with_a_hole(bitmap_kind: str = "memfd") -> Program:
    idev = Ref(1, "out_idev_id")
    ioas = Ref(0, "out_ioas_id")
    return Program([
        Op("IOAS_ALLOC"), Op("TEST_MOCK_DOMAIN", {"id": ioas}),
        Op("IOAS_MAP", {"ioas_id": ioas, "user_va": BufPtr(0), "length": 4096, "iova": M16,
                        "flags": 7}),
        Op("IOAS_MAP", {"ioas_id": ioas, "user_va": BufPtr(0), "length": 4096,
                        "iova": M16 + 8192, "flags": 7}),
        Op("HWPT_ALLOC", {"dev_id": idev, "pt_id": ioas, "flags": 2}),
        Op("HWPT_SET_DIRTY_TRACKING", {"hwpt_id": Ref(4, "out_hwpt_id"), "flags": 1}),
        Op("TEST_DIRTY", {"id": Ref(4, "out_hwpt_id"), "iova": M16, "length": 16384,
                          "page_size": 2048, "uptr": BufPtr(1)}),
        Op("HWPT_GET_DIRTY_BITMAP", {"hwpt_id": Ref(4, "out_hwpt_id"), "iova": M16,
                                     "length": 16384, "page_size": 2048, "data": BufPtr(2)}),
        Op("HWPT_GET_DIRTY_BITMAP", {"hwpt_id": Ref(4, "out_hwpt_id"), "iova": M16 + 8192,
                                     "length": 4096, "page_size": 2048, "data": BufPtr(3)}),
    ], [Buffer(4096, "memfd", 1), Buffer(4096, "memfd", 0xFF), Buffer(4096, bitmap_kind, 0),
        Buffer(4096, "memfd", 0)])


def test_get_dirty_bitmap_reports_the_walks_error() -> None:
    # __iommu_read_and_clear_dirty stops at the hole after the first area with -EINVAL,
    # which the uAPI's caller must hear (6.12 drops it: dirty-bitmap-error-dropped)
    res = run_model(_two_areas_with_a_hole())
    assert res[6].out["out_nr_dirty"] == 4  # 0xff: the four mapped 2K pages of eight
    assert res[7].errno == E.EINVAL and res[7].known is None
    # the first area was recorded and cleared, the second one neither
    assert res[8].errno == 0 and res[8].out["bitmap"] == _with_bits(0, 0x03)


def test_get_dirty_bitmap_known_bug_is_marked_and_followed() -> None:
    # given the kernel's result of the buggy 6.12 (0, the first area's bits), the model
    # still predicts EINVAL, says the kernel's result is the known bug, and keeps the
    # memory the kernel wrote
    prog = _two_areas_with_a_hole()
    kernel = run_model(prog)
    kernel[7] = OpResult(0, 0, {"bitmap": _with_bits(0, 0x03)})
    res = run_model(prog, kernel)
    assert res[7].errno == E.EINVAL and res[7].known == "dirty-bitmap-error-dropped"
    from fuzz.compare import compare_op

    (m,) = compare_op(7, "HWPT_GET_DIRTY_BITMAP", kernel[7], res[7])
    assert m.signature == "mismatch HWPT_GET_DIRTY_BITMAP.errno [dirty-bitmap-error-dropped]"
    from fuzz import known

    assert known.match(m.signature).report.endswith("report.txt")
    # a result that is not the bug's is an ordinary mismatch
    kernel[7] = OpResult(0, 0, {"bitmap": _with_bits(0, 0x07)})
    assert run_model(prog, kernel)[7].known is None


def test_get_dirty_bitmap_unpinnable_bitmap_is_efault() -> None:
    prog = _two_areas_with_a_hole("readonly")
    prog.ops[7].args["length"] = 4096  # the first area only: no hole
    res = run_model(prog)
    assert res[7].errno == E.EFAULT
    # the mock cleared the bits it could not record: they are lost
    prog.ops[8].args.update(iova=M16, data=BufPtr(3))
    assert run_model(prog)[8].out["bitmap"] == pattern_bytes(0, 0, 8)


def _huge_dirty(length: int) -> Program:
    """A 2M hugetlb buffer mapped 1M aligned for a HUGE_IOVA device: 1M IOPTEs."""
    ioas = Ref(0, "out_ioas_id")
    h = Ref(3, "out_hwpt_id")
    return Program([
        Op("IOAS_ALLOC"),
        Op("TEST_MOCK_DOMAIN_FLAGS", {"id": ioas, "dev_flags": 2}),
        Op("IOAS_MAP", {"ioas_id": ioas, "user_va": BufPtr(0), "length": 2 << 20,
                        "iova": M16, "flags": 7}),
        Op("HWPT_ALLOC", {"dev_id": Ref(1, "out_idev_id"), "pt_id": ioas, "flags": 2}),
        Op("HWPT_SET_DIRTY_TRACKING", {"hwpt_id": h, "flags": 1}),
        Op("TEST_DIRTY", {"id": h, "iova": M16, "length": 2048, "page_size": 2048,
                          "uptr": BufPtr(2)}),
        Op("HWPT_GET_DIRTY_BITMAP", {"hwpt_id": h, "iova": M16, "length": length,
                                     "page_size": 2048, "data": BufPtr(1, 100)}),
        # NO_CLEAR over the whole huge page: shows what the first call wrote
        Op("HWPT_GET_DIRTY_BITMAP", {"hwpt_id": h, "iova": M16, "length": 1 << 20,
                                     "page_size": 2048, "data": BufPtr(1, 100), "flags": 1}),
    ], [Buffer(2 << 20, "hugetlb", 1), Buffer(4096, "anon", 0), Buffer(4096, "memfd", 0xFF)])


def test_huge_iopte_is_recorded_only_inside_the_range() -> None:
    # the whole 1M IOPTE is dirty (and cleared), the bitmap of a 4K range gets 2 bits
    prog = _huge_dirty(4096)
    res = run_model(prog)
    assert res[5].out["out_nr_dirty"] == 1
    orig = pattern_bytes(0, 100, 64)
    assert res[6].errno == 0 and res[6].unsure is None
    assert res[6].out["bitmap"] == bytes([orig[0] | 0x03]) + orig[1:8]  # a u64 word
    assert res[7].out["bitmap"] == bytes([orig[0] | 0x03]) + orig[1:]
    # what 6.12 does: 512 bits from the range's start, 63 bytes past the 1-byte bitmap
    kernel = run_model(prog)
    kernel[6] = OpResult(0, 0, {"bitmap": b"\xff" * 8})
    kernel[7] = OpResult(0, 0, {"bitmap": b"\xff" * 64})
    res = run_model(prog, kernel)
    assert res[6].known == "dirty-bitmap-overrun" and res[6].out["bitmap"] != b"\xff" * 8
    assert res[7].known is None and res[7].out["bitmap"] == b"\xff" * 64


def test_huge_iopte_on_anon_memory_is_unsure() -> None:
    prog = _huge_dirty(4096)
    prog.buffers[0] = Buffer(2 << 20, "anon", 1)
    assert run_model(prog)[6].unsure


def test_test_dirty_with_a_wrapping_iova_marks_the_wrapped_indexes() -> None:
    ioas = Ref(0, "out_ioas_id")
    page = 1 << 20  # page_size 1M: iova 2^64 - 1M is aligned, the second bit wraps to 0
    prog = Program([
        Op("IOAS_ALLOC"), Op("TEST_MOCK_DOMAIN", {"id": ioas}),
        Op("IOAS_MAP", {"ioas_id": ioas, "user_va": BufPtr(0), "length": 4096, "iova": M16,
                        "flags": 7}),
        Op("HWPT_ALLOC", {"dev_id": Ref(1, "out_idev_id"), "pt_id": ioas, "flags": 2}),
        Op("HWPT_SET_DIRTY_TRACKING", {"hwpt_id": Ref(3, "out_hwpt_id"), "flags": 1}),
        Op("TEST_DIRTY", {"id": Ref(3, "out_hwpt_id"), "iova": (1 << 64) - page,
                          "length": 16 * page, "page_size": page, "uptr": BufPtr(1)}),
    ], [Buffer(4096, "memfd", 1), Buffer(4096, "memfd", 0xFF)])
    res = run_model(prog)
    # after the wrap cur = (i - 1) * 1M, xarray index cur / 1M = i - 1: entries 0..14,
    # none of which (IOVA 0..28K) is mapped
    assert res[5].errno == 0 and res[5].unsure is None and res[5].out["out_nr_dirty"] == 0


def test_dirty_bitmap_of_a_huge_iova_page_overruns_the_users_bitmap(vm: VMBackend) -> None:
    """Known kernel bug dirty-bitmap-overrun (reproducers/dirty-bitmap-overrun):
    iova_bitmap_set does not clamp a record to the bitmap, so a driver recording a whole
    1M IOPTE for a 2K range writes 512 bits into a 1-byte bitmap. A 2M hugetlb page is
    physically contiguous, so the model knows the IOPTE is 1M, predicts the documented
    bitmap and says the kernel's is the known bug's."""
    huge, m16 = 2 << 20, uapi.MOCK_APERTURE_START
    ioas = Ref(0, "out_ioas_id")
    hwpt = Ref(3, "out_hwpt_id")
    prog = Program([
        Op("IOAS_ALLOC"),
        Op("TEST_MOCK_DOMAIN_FLAGS", {"id": ioas, "dev_flags": uapi.MOCK_FLAGS_DEVICE_HUGE_IOVA}),
        Op("IOAS_MAP", {"ioas_id": ioas, "user_va": BufPtr(0), "length": huge, "iova": m16,
                        "flags": 7}),
        Op("HWPT_ALLOC", {"dev_id": Ref(1, "out_idev_id"), "pt_id": ioas, "flags": 2}),
        Op("HWPT_SET_DIRTY_TRACKING", {"hwpt_id": hwpt, "flags": 1}),
        Op("TEST_DIRTY", {"id": hwpt, "iova": m16, "length": 2048, "page_size": 2048,
                          "uptr": BufPtr(2)}),
        Op("HWPT_GET_DIRTY_BITMAP", {"hwpt_id": hwpt, "iova": m16, "length": 2048,
                                     "page_size": 2048, "data": BufPtr(1)}),
        Op("HWPT_GET_DIRTY_BITMAP", {"hwpt_id": hwpt, "iova": m16, "length": 1 << 20,
                                     "page_size": 2048, "data": BufPtr(1), "flags": 1}),
    ], [Buffer(huge, "hugetlb", 1), Buffer(4096, "anon", 0), Buffer(4096, "memfd", 0xFF)])
    out = differential.run(prog, vm)
    ex = out.execution
    assert ex.crash is None and ex.setup_error is None and ex.reports == []
    assert [r.errno for r in ex.results] == [0] * 8
    assert ex.results[5].out["out_nr_dirty"] == 1
    # the bitmap is one bit, captured as its u64 word: all of it is set ...
    assert ex.results[6].out["bitmap"] == b"\xff" * 8
    # ... and the 56 bytes after it, which the kernel was not given, are 0xff too
    # (nothing is dirty any more: the NO_CLEAR read only shows what is in memory)
    assert ex.results[7].out["bitmap"] == b"\xff" * 64
    assert out.model[6].out["bitmap"] == bytes([pattern_bytes(0, 0, 1)[0] | 1]) \
        + pattern_bytes(0, 1, 7)
    assert [m.signature for m in out.mismatches] == \
        ["mismatch HWPT_GET_DIRTY_BITMAP.bitmap [dirty-bitmap-overrun]"]


def test_a_failed_dirty_walk_over_unknown_memory_is_still_the_known_bug() -> None:
    """The long soak's finding (program and the kernel's results as recorded, in
    tests/data/dirty_bitmap_unknown_memory): GET_DIRTY_BITMAP of a range the areas do not
    cover, into a buffer whose contents an earlier faulting copy left unknown; 6.12
    returns 0. What the bug leaves in the bitmap cannot be told, but the errno is the
    bug's (dirty-bitmap-error-dropped): counted as known, not filed as new."""
    from fuzz import findings
    from fuzz.differential import model_alongside

    d = Path(__file__).parent / "data" / "dirty_bitmap_unknown_memory"
    prog = Program.load(d / "program.json")
    res = findings.load_results(d / findings.RESULTS_FILE, len(prog.ops))
    _, mism, _ = model_alongside(prog, res)
    assert [(m.op, m.field, m.bug) for m in mism] == \
        [(35, "errno", "dirty-bitmap-error-dropped")]
