"""Programs run without CAP_IPC_LOCK / CAP_SYS_RESOURCE and with an RLIMIT_MEMLOCK
(fuzz.prog.ir's "creds"): the IR, and the executor on the real kernel - pins charged
to the limit, capabilities per thread, everything put back for the next program."""

from __future__ import annotations

import errno

import pytest

from fuzz.backend import VMBackend
from fuzz.model.model import run_model
from fuzz.prog import Buffer, BufPtr, Creds, Op, Program, ProgramError, Ref

PAGE = 4096
IOVA = 1 << 24


def _mapping(pages: int, thread: int = 0, creds: Creds | None = None) -> Program:
    """A mock domain, then maps of 2, then `pages`, then 1 page: only the middle one
    can pass a limit of 2 pages."""
    ioas = Ref(0, "out_ioas_id")
    ops = [Op("IOAS_ALLOC"), Op("TEST_MOCK_DOMAIN", {"id": ioas})]
    for k, n in enumerate((2, pages, 1)):
        ops.append(Op("IOAS_MAP", {"ioas_id": ioas, "user_va": BufPtr(0, 16 * PAGE * k),
                                   "length": n * PAGE, "iova": IOVA + (1 << 20) * k,
                                   "flags": 7}, thread=thread))
    return Program(ops, [Buffer(64 * PAGE, "memfd", 3)], creds)


def test_creds_round_trip_and_bad_ones_are_named() -> None:
    p = _mapping(4, creds=Creds(("CAP_IPC_LOCK", "CAP_SYS_RESOURCE"), 3 * PAGE))
    q = Program.loads(p.dumps())
    assert q.creds == p.creds and q.dumps() == p.dumps()
    assert Program.loads(_mapping(4).dumps()).creds is None
    doc = p.to_json()
    for bad, msg in ((["CAP_SYS_ADMIN"], "is not one of"), (["CAP_IPC_LOCK"] * 2, "twice")):
        doc["creds"] = {"drop": bad, "memlock": 0}
        with pytest.raises(ProgramError, match=msg):
            Program.from_json(doc, "x.json")
    doc["creds"] = {"drop": [], "memlock": -1}
    with pytest.raises(ProgramError, match=r"x.json: creds.memlock: -1 is not a u64"):
        Program.from_json(doc, "x.json")
    doc["creds"] = {"drop": []}
    with pytest.raises(ProgramError, match="x.json: creds: expected"):
        Program.from_json(doc, "x.json")


def test_model_charges_pins_to_the_limit() -> None:
    errs = [r.errno for r in run_model(_mapping(1, creds=Creds(("CAP_IPC_LOCK",), 3 * PAGE)))]
    assert errs[2:] == [0, 0, errno.ENOMEM]
    assert [r.errno for r in run_model(_mapping(1))][2:] == [0, 0, 0]


def test_kernel_charges_pins_and_the_next_program_is_root_again(vm: VMBackend) -> None:
    """Under a 3-page RLIMIT_MEMLOCK without CAP_IPC_LOCK the kernel fails the pin past
    it (on a worker thread too: capabilities are per thread); the same maps in the
    program after it, which has no creds, all pass; and so do they under
    RLIM_INFINITY."""
    limit = Creds(("CAP_IPC_LOCK",), 3 * PAGE)
    for thread in (0, 1):
        got = [r.errno for r in vm.run(_mapping(2, thread, limit)).results]
        assert got[2:] == [0, errno.ENOMEM, 0], (thread, got)
        got = [r.errno for r in vm.run(_mapping(2, thread)).results]
        assert got[2:] == [0, 0, 0], (thread, got)
    got = [r.errno for r in vm.run(_mapping(8, 0, Creds(("CAP_IPC_LOCK",), (1 << 64) - 1)))
           .results]
    assert got[2:] == [0, 0, 0], got


def test_kernel_answers_eperm_without_cap_sys_resource_and_not_after(vm: VMBackend) -> None:
    prog = Program([Op("OPTION", {"option_id": 0, "op": 0, "val64": 1})], [],
                   Creds(("CAP_SYS_RESOURCE",), 0))
    assert vm.run(prog).results[0].errno == errno.EPERM
    prog.creds = None
    assert vm.run(prog).results[0].errno == 0
