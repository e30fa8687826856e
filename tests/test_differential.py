"""The model against the real kernel, op by op: the hand-written seed programs
(every op's main and error paths) and a batch of generated programs.

A disagreement nobody has explained yet is a finding, kept under findings/ with
its signature; those are tolerated here, by signature, and so are known kernel bugs
(reproducers/known.json: the kernel did exactly what the bug does where the model
predicts what the uAPI documents)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fuzz import differential, findings
from fuzz.backend import VMBackend
from fuzz.prog import Program
from fuzz.prog.gen import generate

REPO = Path(__file__).resolve().parent.parent
# the seeds, and the oracle's longer programs (tests/model_cases/seeds_mutants.py)
SEEDS = sorted((REPO / "corpus" / "seeds").glob("*.json")) + \
    sorted((REPO / "corpus" / "oracle").glob("*.json"))
# the seeds' fault walk kept where it reaches new lines (iommufd-fuzz faults --keep-new)
FAULTS = sorted(p for p in (REPO / "corpus" / "faults").glob("*") if not p.name.startswith("."))
GENERATED = 200


def _declared_unsure() -> dict[str, set[int]]:
    """Per seed/oracle program name, the ops its builder declares the model unsure of
    (memory the model cannot know: the kernel's result decides, tests/model_cases/dsl.py)."""
    try:
        from model_cases.seeds import ORACLE_PROGRAMS
        from model_cases.seeds import SEEDS as BUILDERS
    except ImportError:
        from tests.model_cases.seeds import ORACLE_PROGRAMS
        from tests.model_cases.seeds import SEEDS as BUILDERS
    out = {}
    for build in BUILDERS + ORACLE_PROGRAMS:
        p = build()
        if any(p.unsure):
            out[p.name] = {i for i, u in enumerate(p.unsure) if u}
    return out


DECLARED_UNSURE = _declared_unsure()


def known_signatures() -> set[str]:
    """Signatures of documented, unexplained disagreements (findings/*/finding.json)."""
    out = set()
    for meta in (REPO / "findings").glob("*/finding.json"):
        out.add(json.loads(meta.read_text())["signature"])
    return out


def disagreements(out: differential.Outcome) -> list[str]:
    known = known_signatures()
    return [f"{f.title}: {f.detail}" for f in findings.from_outcome(out)
            if f.signature not in known and not f.known]


def test_there_are_seed_programs_for_every_op() -> None:
    from fuzz.prog.descriptions import OPS

    used = {op.name for p in SEEDS for op in Program.load(p).ops}
    assert used == set(OPS), f"ops without a seed program: {sorted(set(OPS) - used)}"


@pytest.mark.parametrize("path", SEEDS, ids=[p.stem for p in SEEDS])
def test_seed_program_agrees_with_the_kernel(vm: VMBackend, path: Path) -> None:
    prog = Program.load(path)
    out = differential.run(prog, vm)
    assert out.execution.crash is None and out.execution.setup_error is None
    declared = DECLARED_UNSURE.get(path.stem, set())
    assert [u for u in out.unsure if u.op not in declared] == [], \
        [u.describe() for u in out.unsure if u.op not in declared]
    assert disagreements(out) == []


@pytest.mark.parametrize("path", FAULTS, ids=[p.name[:12] for p in FAULTS])
def test_fault_walk_program_agrees_with_the_kernel(vm: VMBackend, path: Path) -> None:
    prog = Program.load(path)
    faulted = [i for i, op in enumerate(prog.ops) if op.fail_nth]
    assert faulted, f"{path}: no op with fail_nth"
    out = differential.run(prog, vm)
    assert out.execution.crash is None and out.execution.setup_error is None
    assert disagreements(out) == []


def test_generated_programs_agree_with_the_kernel(vm: VMBackend) -> None:
    bad = []
    unsure = 0
    for seed in range(GENERATED):
        out = differential.run(generate(seed), vm)
        unsure += len(out.unsure)
        for d in disagreements(out):
            bad.append(f"seed {seed}: {d}")
    assert bad == [], "\n".join(bad[:20])
    assert unsure <= GENERATED // 20, f"model unsure on {unsure} ops"


def test_run_table_prints_an_unsure_op_as_unsure_with_its_reason() -> None:
    # not as `ok`: it was not compared
    from fuzz.backend import Execution
    from fuzz.compare import compare_op
    from fuzz.prog import Op
    from fuzz.result import OpResult
    from fuzz.table import format_table

    prog = Program([Op("IOAS_ALLOC"), Op("IOAS_ALLOC")])
    kernel = [OpResult(0, 0, {"out_ioas_id": 1}), OpResult(0, 0, {"out_ioas_id": 2})]
    model = [OpResult(0, 0, {"out_ioas_id": 1}),
             OpResult(0, 0, {"out_ioas_id": 2}, unsure="a reason the model gives")]
    out = differential.Outcome(prog, Execution(results=kernel), model)
    out.unsure = compare_op(1, "IOAS_ALLOC", kernel[1], model[1])
    rows = format_table(out).splitlines()
    assert rows[1].split()[-1] == "out_ioas_id=1"
    assert "unsure (ok out_ioas_id=2)" in rows[2] and rows[2].endswith("??")
    assert rows[3].strip() == "^ op 1 (IOAS_ALLOC): model unsure: a reason the model gives"


def test_a_data_mismatch_shows_where_the_bytes_part():
    """Soak finding TEST_ACCESS_RW.data 0e4b4636: 16 KiB that agree in their first 16
    bytes were shown as those 16 bytes on both sides, which read like one digest. The
    detail shows the bytes from the first one that differs, and its offset."""
    from fuzz.compare import Mismatch

    k = bytes(range(256)) * 64
    m = bytearray(k)
    m[0xFA0:0xFB0] = bytes(16)
    d = Mismatch(15, "TEST_ACCESS_RW", "data", k, bytes(m)).describe()
    assert d == ("op 15 (TEST_ACCESS_RW): data: kernel <16384 bytes, from byte 0xfa0: "
                 f"{k[0xFA0:0xFB0].hex()}>, model <16384 bytes, from byte 0xfa0: "
                 f"{bytes(16).hex()}>"), d
    # one a prefix of the other: they part where the shorter ends
    d = Mismatch(3, "TEST_ACCESS_RW", "data", k[:4], b"").describe()
    assert d == f"op 3 (TEST_ACCESS_RW): data: kernel <4 bytes {k[:4].hex()}>, model <0 bytes >"
