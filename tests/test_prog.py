"""The program IR, the corpus and the findings store: bad input gets a clear
error that names the file and the op, and nothing on disk is ever lost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fuzz import corpus, findings
from fuzz.prog import Buffer, BufPtr, Op, Program, ProgramError, Ref, pattern_bytes
from fuzz.prog.gen import generate


def test_generated_programs_round_trip_through_json_exactly() -> None:
    for seed in range(100):
        p = generate(seed)
        again = Program.loads(p.dumps())
        assert again.dumps() == p.dumps()
        assert again.to_json() == p.to_json()


def test_unknown_op_names_the_file_and_the_op(tmp_path: Path) -> None:
    f = tmp_path / "bad.json"
    f.write_text(json.dumps({"version": 1, "ops": [{"op": "IOAS_ALLOC"}, {"op": "IOAS_FROB"}]}))
    with pytest.raises(ProgramError, match=r"bad\.json: op 1: unknown op 'IOAS_FROB'"):
        Program.load(f)


def test_unknown_argument_names_the_op_and_the_argument() -> None:
    doc = {"version": 1, "ops": [{"op": "IOAS_MAP", "args": {"lenght": 4096}}]}
    with pytest.raises(ProgramError, match=r"op 0 \(IOAS_MAP\): unknown argument 'lenght'"):
        Program.from_json(doc, "p.json")


def test_corrupt_json_and_wrong_version_are_named() -> None:
    with pytest.raises(ProgramError, match="x.json: not valid JSON"):
        Program.loads("{", "x.json")
    with pytest.raises(ProgramError, match="unsupported version 7"):
        Program.loads('{"version": 7, "ops": []}', "x.json")


def test_refs_must_point_backwards_at_a_real_output() -> None:
    with pytest.raises(ProgramError, match="does not come earlier"):
        Program([Op("IOAS_MAP", {"ioas_id": Ref(0, "out_ioas_id")})]).validate()
    with pytest.raises(ProgramError, match="has no integer output 'iova'"):
        Program([Op("IOAS_ALLOC"), Op("DESTROY", {"id": Ref(0, "iova")})]).validate()
    with pytest.raises(ProgramError, match="buffer 3 does not exist"):
        Program([Op("IOAS_MAP", {"user_va": BufPtr(3)})], [Buffer(4096)]).validate()


def test_buffers_must_be_page_or_huge_page_multiples() -> None:
    with pytest.raises(ProgramError, match="multiple of 2097152"):
        Program([], [Buffer(4096, "hugetlb")]).validate()
    with pytest.raises(ProgramError, match="unknown kind"):
        Program([], [Buffer(4096, "shm")]).validate()


def test_pattern_bytes_are_the_documented_formula() -> None:
    data = pattern_bytes(5, 1000, 600)
    assert data == bytes((((k % 251) * 37) + 5) & 0xFF for k in range(1000, 1600))


def test_corpus_quarantines_a_corrupt_file_and_keeps_the_rest(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    good = corpus.add(tmp_path, generate(1))
    assert good.name == corpus.content_name(good.read_bytes())  # content-addressed
    (tmp_path / "garbage").write_text("{ not json")
    loaded = corpus.load(tmp_path)
    assert [p for p, _ in loaded] == [good]
    assert "garbage" in capsys.readouterr().err
    assert (tmp_path / ".quarantine" / "garbage").read_text() == "{ not json"  # set aside


def test_corpus_count_is_the_number_of_files(tmp_path: Path) -> None:
    for k in range(3):
        corpus.add(tmp_path, generate(k))
    (tmp_path / "sub").mkdir()
    corpus.add(tmp_path / "sub", generate(9))
    for hidden in (".quarantine", "quarantine", ".git"):
        (tmp_path / hidden).mkdir()
        (tmp_path / hidden / "x").write_text("{}")
    (tmp_path / ".tmp-abc.host-1.x").write_text("half")  # a write in progress
    assert corpus.count(tmp_path) == len(corpus.files(tmp_path)) == 4
    assert corpus.count(tmp_path / "missing") == 0


def test_findings_are_deduplicated_by_signature_and_counted(tmp_path: Path) -> None:
    store = findings.FindingStore(tmp_path)
    prog = generate(2)
    f = findings.Finding("WARNING in iopt_unmap_iova_range", "abc", "splat")
    assert store.record(f, prog, "log", {"kernel_version": "6.12.117"})
    assert not store.record(findings.Finding(f.title, f.signature, "splat"), prog, "log", {})
    (rec, d), = store.list()
    assert rec.count == 2 and rec.title == f.title
    assert Program.load(d / "program.json").dumps() == prog.dumps()
    assert json.loads((d / "manifest.json").read_text())["kernel_version"] == "6.12.117"


def test_mutation_and_crossover_keep_programs_valid() -> None:
    """Every edit goes through fuzz.prog.edits and every value is fitted to its
    field, so what the mutator hands libFuzzer always loads again."""
    import random

    from fuzz.prog.mutate import crossover, mutate

    rng = random.Random(5)
    pool = [generate(s) for s in range(200)]
    for _ in range(2000):
        p = mutate(rng.choice(pool), rng, [rng.getrandbits(64) for _ in range(3)])
        p.validate()
        assert Program.loads(p.dumps()).dumps() == p.dumps()
        crossover(rng.choice(pool), rng.choice(pool), rng).validate()


def test_removing_an_op_retargets_its_refs_to_an_output_of_the_same_kind() -> None:
    """With no earlier op of the same output field, a ref follows the object kind:
    IOAS_MAP on VFIO_IOAS's ioas_id moves to IOAS_ALLOC's out_ioas_id, not to id 0."""
    from fuzz.prog.edits import remove_ops

    p = Program([Op("IOAS_ALLOC"), Op("VFIO_IOAS", {"ioas_id": Ref(0, "out_ioas_id")}),
                 Op("IOAS_MAP", {"ioas_id": Ref(1, "ioas_id"), "length": 4096})])
    q = remove_ops(p, {1})
    assert [op.name for op in q.ops] == ["IOAS_ALLOC", "IOAS_MAP"]
    assert q.ops[1].args["ioas_id"] == Ref(0, "out_ioas_id")
    # no output of that kind before it: 0, as before
    assert remove_ops(p, {0, 1}).ops[0].args["ioas_id"] == 0
