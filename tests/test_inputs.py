"""Hostile and careless input to the command line (issue 14): every class gets one
line on stderr naming the file (and the op and field), never a traceback, a hang or
silent acceptance; arguments are checked before a kernel is built or a VM booted;
nothing is created by looking; files are written shareable."""

from __future__ import annotations

import json
import os
import signal
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from fuzz import kernel
from fuzz.cli import main
from fuzz.prog import Buffer, Op, Program
from fuzz.prog.limits import (
    MAX_BUFFER_BYTES,
    MAX_HOLES,
    MAX_JSON_DEPTH,
    MAX_OPS,
    MAX_PROGRAM_BYTES,
    MAX_RANGES,
)


@pytest.fixture
def no_boot(monkeypatch: pytest.MonkeyPatch) -> None:
    """Building a kernel or booting a VM is a failure here: the input is checked first."""
    import fuzz.backend

    def boom(*_: object, **__: object) -> None:
        raise AssertionError("built or booted before the input was checked")

    monkeypatch.setattr(kernel, "default_kernel", boom)
    monkeypatch.setattr(kernel, "build", boom)
    monkeypatch.setattr(fuzz.backend.VMBackend, "__init__", boom)


@pytest.fixture
def alarm() -> Iterator[None]:
    """A hang is a failure, not a stuck test run."""
    def hung(*_: object) -> None:
        raise AssertionError("hung")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def one_line(capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and err.count("\n") == 0, err
    for n in needles:
        assert n in err, err
    return err


def run_model(path: Path) -> int:
    return main(["run", "--backend", "model", str(path)])


OP_ALLOC = {"op": "IOAS_ALLOC"}


def doc(ops: list | None = None, **kw: object) -> str:
    return json.dumps({"version": 1, "ops": ops if ops is not None else [OP_ALLOC], **kw})


BAD_PROGRAMS = {
    "op name a list": (doc([{"op": ["IOAS_ALLOC"]}]), "op 0: the op name must be a string"),
    "op name an object": (doc([{"op": {"IOAS_ALLOC": 1}}]),
                          "op 0: the op name must be a string"),
    "5000 digits": ('{"version": 1, "ops": [{"op": "IOAS_ALLOC", "args": {"x": '
                    + "9" * 5000 + "}}]}", "an integer with more than 4300 digits"),
    "hole of one number": (doc(buffers=[{"size": 4096, "holes": [[1]]}]),
                           "buffer 0: a hole is [offset, length]"),
    "hole a string": (doc(buffers=[{"size": 4096, "holes": ["x"]}]), "buffer 0: hole"),
    "hole negative": (doc(buffers=[{"size": 8192, "holes": [[4096, -4096]]}]),
                      "buffer 0: hole [4096, -4096] is not 4096-aligned"),
    "holes an object": (doc(buffers=[{"size": 4096, "holes": {"a": 1}}]),
                        "buffer 0: holes: expected a list"),
    "nested 100000 deep": ("[" * 100000 + "]" * 100000,
                           f"nested deeper than {MAX_JSON_DEPTH} levels"),
    "nested 24 deep": (doc([{"op": "IOAS_ALLOC", "args": {"x": json.loads("[" * 20 + "]" * 20)}}]),
                       f"nested deeper than {MAX_JSON_DEPTH} levels"),
    "version 1.0": ('{"version": 1.0, "ops": []}', "unsupported version 1.0"),
    "version true": ('{"version": true, "ops": []}', "unsupported version True"),
    "version \"1\"": ('{"version": "1", "ops": []}', "unsupported version '1'"),
    "2^40 in a u32": (doc([OP_ALLOC, {"op": "IOAS_MAP", "args": {
        "ioas_id": {"ref": 0, "field": "out_ioas_id"}, "length": 4096, "flags": 1 << 40}}]),
        "op 1 (IOAS_MAP).flags: 1099511627776 does not fit the field's 32 bits"),
    "2^64 in a u64": (doc([OP_ALLOC, {"op": "IOAS_MAP", "args": {"length": 1 << 64}}]),
                      "op 1 (IOAS_MAP).length: 18446744073709551616 does not fit the field's "
                      "64 bits"),
    "too many ops": (doc([OP_ALLOC] * (MAX_OPS + 1)), f"ops, at most {MAX_OPS}"),
    "too much memory": (doc(buffers=[{"size": 1 << 30}] * 2),
                        f"bytes in all, at most {MAX_BUFFER_BYTES}"),
    "too many holes": (doc(buffers=[{"size": 4 << 20, "holes": [[8192 * k, 4096] for k in
                                                                  range(MAX_HOLES + 1)]}]),
                       f"holes in all, at most {MAX_HOLES}"),
    "too many ranges": (doc([OP_ALLOC, {"op": "IOAS_ALLOW_IOVAS", "args": {
        "ioas_id": {"ref": 0, "field": "out_ioas_id"},
        "allowed_iovas": [[0, 1]] * (MAX_RANGES + 1)}}]), f"entries, at most {MAX_RANGES}"),
    "not JSON": ("{ nope", "not valid JSON"),
    "a list": ("[]", "a program is a JSON object"),
}


@pytest.mark.parametrize("name", sorted(BAD_PROGRAMS))
def test_bad_program_files_get_one_line_naming_file_op_and_field(
        name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], no_boot: None) -> None:
    text, says = BAD_PROGRAMS[name]
    f = tmp_path / "p.json"
    f.write_text(text)
    assert run_model(f) == 2
    one_line(capsys, str(f), says)


def test_files_that_are_not_programs_get_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], no_boot: None, alarm: None) -> None:
    f = tmp_path / "bytes.json"
    f.write_bytes(b'{"version": 1, "ops": []}\xff\xfe')
    assert run_model(f) == 2
    one_line(capsys, str(f), "not UTF-8 text (byte 25)")
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    assert run_model(fifo) == 2  # no hang: a FIFO is never opened
    one_line(capsys, str(fifo), "not a regular file")
    assert run_model(Path("/dev/zero")) == 2  # no MemoryError
    one_line(capsys, "/dev/zero: not a regular file")
    assert run_model(tmp_path) == 2
    one_line(capsys, "not a regular file")
    big = tmp_path / "big.json"
    with open(big, "wb") as fh:
        fh.truncate(MAX_PROGRAM_BYTES + 1)
    assert run_model(big) == 2
    one_line(capsys, str(big), f"a file here has at most {MAX_PROGRAM_BYTES}")
    assert run_model(tmp_path / "missing.json") == 2
    one_line(capsys, "missing.json: no such file")


def test_arguments_are_checked_before_a_kernel_is_built(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], no_boot: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for argv, says in [
            (["fuzz", "--time", "abc"], "--time 'abc': not a duration"),
            (["fuzz", "--time=-5m"], "--time '-5m': give a duration from 1s"),
            (["fuzz", "--time", "0"], "give a duration from 1s"),
            (["fuzz", "--time", "nan"], "give a duration"),
            (["fuzz", "--timeout=-1"], "--timeout -1.0: give at least 1"),
            (["fuzz", "--vms", "0"], "--vms 0: give at least 1"),
            (["fuzz", "--seeds", "nope"], "--seeds nope: no such directory"),
            (["fuzz", "--kernel", "nope"], "--kernel nope: no bzImage"),
            (["gen", "--count", "-1", "--out", "g"], "--count -1: give at least 1"),
            (["gen", "--max-ops", "0", "--out", "g"], "--max-ops 0: give at least 1"),
            (["check-model", "--count", "0"], "--count 0: give at least 1"),
            (["check-model", "--vms=-2"], "--vms -2: give at least 1"),
            (["minimize", "f", "--rate-runs", "0"], "--rate-runs 0: give at least 1"),
            (["minimize", "f", "--time-limit=-1"], "--time-limit -1.0: give a positive"),
            (["kernel", "build", "--patch", "nope.patch"], "--patch nope.patch: no such file"),
            (["kernel", "build", "--jobs", "0"], "--jobs 0: give at least 1"),
            (["kernel", "build", "--debian-version", "x"], "--debian-version 'x': not a Debian"),
            (["coverage", "nope"], "nope: no such file or directory"),
            (["run", "--kernel", "nope", str(Path(__file__).parent.parent / "corpus" / "seeds"
                                             / "ioas_alloc_destroy.json")], "--kernel nope")]:
        assert main(argv) == 2, argv
        one_line(capsys, says)
    (tmp_path / "file").write_text("")
    assert main(["fuzz", "--findings", "file"]) == 2
    one_line(capsys, "--findings file: exists and is not a directory")
    assert main(["gen", "--out", "file"]) == 2
    one_line(capsys, "--out file: exists and is not a directory")
    assert not (tmp_path / "g").exists()


def test_repro_and_corpus_minimize_look_at_the_directory_before_booting(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], no_boot: None) -> None:
    assert main(["repro", str(tmp_path / "none")]) == 2
    one_line(capsys, "no such reproducer directory")
    assert main(["repro", str(tmp_path)]) == 2
    one_line(capsys, "not a reproducer directory (no repro.json")
    (tmp_path / "repro.json").write_text(json.dumps({"expectation": {"kind": "splat"}}))
    assert main(["repro", str(tmp_path)]) == 2
    one_line(capsys, "repro.json: a damaged expectation")
    (tmp_path / "repro.json").write_text(json.dumps({"expectation": {
        "kind": "splat", "signature": "s", "title": "t", "keys": ["x"]}, "history": ["../x"]}))
    assert main(["repro", str(tmp_path)]) == 2
    one_line(capsys, "'history' must list history/NN.json files")
    assert main(["corpus", "minimize", str(tmp_path / "none")]) == 2
    one_line(capsys, "no such directory")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["corpus", "minimize", str(empty)]) == 2
    one_line(capsys, "no programs to minimize")


def test_a_damaged_finding_given_to_minimize_is_named(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], no_boot: None) -> None:
    d = tmp_path / "finding"
    d.mkdir()
    assert main(["minimize", str(d)]) == 2
    one_line(capsys, "not a finding (no finding.json")
    Program([Op("IOAS_ALLOC")]).save(d / "program.json")
    for meta, says in [("{", "finding.json: not valid JSON"),
                       ('{"title": "t"}', "finding.json: not a finding record (no 'signature')"),
                       ('{"title": "t", "signature": 5, "kind": "splat"}',
                        "'signature' has the wrong type"),
                       ('"x"', "finding.json: expected a JSON object")]:
        (d / "finding.json").write_text(meta)
        assert main(["minimize", str(d)]) == 2
        one_line(capsys, says)
    (d / "finding.json").write_text('{"title": "t", "signature": "s", "kind": "splat"}')
    (d / "program.json").write_text('{"version": 2, "ops": []}')
    assert main(["minimize", str(d)]) == 2
    one_line(capsys, "program.json: unsupported version 2")
    Program([Op("IOAS_ALLOC")]).save(d / "program.json")
    (d / "manifest.json").write_text("[1]")
    assert main(["minimize", str(d)]) == 2
    one_line(capsys, "manifest.json: expected a JSON object")


def test_plot_names_stats_lines_missing_keys(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    s = tmp_path / "stats.jsonl"
    good = {"t": 2.0, "edges": 10, "findings": 0, "programs": 5}
    s.write_text("\n".join([json.dumps(good), json.dumps({"t": 4.0, "edges": 12}), "{cut",
                            json.dumps({**good, "edges": "many"}), "[]",
                            json.dumps({**good, "t": 6.0, "iommufd_lines_pct": "x"})]) + "\n")
    assert main(["plot", str(s), "--out", str(tmp_path / "p.png")]) == 0
    err = capsys.readouterr().err
    assert "stats.jsonl:2: skipping a line without findings, programs" in err
    assert "stats.jsonl:3: skipping a damaged line" in err
    assert "stats.jsonl:4: skipping a line without edges" in err
    assert "stats.jsonl:5: skipping a line that is not a JSON object" in err
    assert (tmp_path / "p.png").stat().st_size > 1000
    s.write_text(json.dumps({"t": 1}) + "\n")
    assert main(["plot", str(s), "--out", str(tmp_path / "q.png")]) == 2
    assert "no stats lines to plot" in capsys.readouterr().err.strip().splitlines()[-1]
    assert main(["plot", str(tmp_path / "none.jsonl")]) == 2
    one_line(capsys, "none.jsonl: no such file")


def test_findings_does_not_create_the_directory(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["findings", "--findings", str(tmp_path / "nonexistent")]) == 2
    one_line(capsys, "no such directory")
    assert not (tmp_path / "nonexistent").exists()


def test_written_files_are_shareable(tmp_path: Path) -> None:
    from fuzz import repro
    from fuzz.report import splat_keys

    assert main(["gen", "--count", "2", "--out", str(tmp_path / "g")]) == 0
    for f in (tmp_path / "g").iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o644, f
    exp = repro.Expectation("splat", "s", "WARNING in x", keys=splat_keys("WARNING in x"))
    d = repro.write_reproducer(tmp_path / "r", Program([Op("IOAS_ALLOC")]), exp, {},
                               history=[Program([Op("IOAS_ALLOC")])])
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in d.rglob("*")}
    assert modes.pop("repro.py") == 0o755 and modes.pop("history") == 0o755
    assert set(modes.values()) == {0o644}, modes


def test_a_finding_names_its_kernel_and_another_is_used_only_loudly(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from fuzz import cli

    default = tmp_path / "default"
    default.mkdir()
    (default / "bzImage").write_text("")
    monkeypatch.setattr(kernel, "default_kernel", lambda: default)
    cache = tmp_path / "cache"
    monkeypatch.setenv("IOMMUFD_FUZZ_CACHE", str(cache))
    rec = cache / "kernels" / "0123456789abcdef0123"
    rec.mkdir(parents=True)
    (rec / "bzImage").write_text("")
    (rec / "manifest.json").write_text(json.dumps({"key": rec.name}))
    m = {"key": rec.name, "source": "Debian linux-source-6.12 6.12.117-1~deb12u1",
         "patches": [{"file": "/x/fix.patch", "sha256": "0"}], "fragments": ["/y/extra.config"]}
    assert cli._recorded_kernel(None, m, "the finding f") == rec
    assert "(the one the finding f was recorded on)" in capsys.readouterr().err
    gone = {**m, "key": "fedcba9876543210fedc"}
    assert cli._recorded_kernel(None, gone, "the finding f") == default
    err = capsys.readouterr().err
    assert "WARNING" in err and "not in this machine's cache" in err and "DEFAULT kernel" in err
    assert "iommufd-fuzz kernel build --patch /x/fix.patch --fragment /y/extra.config" in err
    assert cli._recorded_kernel(str(default), m, "the finding f") == default
    assert "recorded on another kernel" in capsys.readouterr().err
    assert cli._recorded_kernel(None, {}, "the finding f") == default
    assert "does not say which kernel" in capsys.readouterr().err


def test_corpus_files_damaged_on_disk_are_quarantined_not_fed_to_libfuzzer(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fuzz import corpus
    from fuzz.prog.gen import generate

    good = [corpus.add(tmp_path, generate(k)) for k in range(4)]
    flipped = good[0].read_text().replace('"version": 1', '"version": 1 ', 1)
    good[0].write_text(flipped)  # still a valid program, no longer its content name
    good[1].write_bytes(good[1].read_bytes()[:50])  # cut short
    os.mkfifo(tmp_path / ("f" * 40))
    (tmp_path / ".tmp-x.json.abc").write_text("{half")  # a killed write's leftover
    os.utime(tmp_path / ".tmp-x.json.abc", (0, 0))
    loaded = corpus.load(tmp_path)
    assert sorted(p for p, _ in loaded) == sorted(good[2:])
    q = sorted(p.name for p in (tmp_path / corpus.QUARANTINE).iterdir())
    assert q == sorted([good[0].name, good[1].name, "f" * 40])
    assert not (tmp_path / ".tmp-x.json.abc").exists()
    err = capsys.readouterr().err
    assert "do not match its content name" in err and "not a regular file" in err
    # libFuzzer reads every subdirectory except dot-directories: nothing corrupt is left
    visible = [p for p in tmp_path.rglob("*") if p.is_file()
               and not any(x.startswith(".") for x in p.relative_to(tmp_path).parts)]
    assert sorted(visible) == sorted(good[2:])


def test_small_buffer_program_is_still_fine(tmp_path: Path) -> None:
    p = Program([Op("IOAS_ALLOC")], [Buffer(MAX_BUFFER_BYTES)])
    p.save(tmp_path / "ok.json")
    assert Program.load(tmp_path / "ok.json").buffers[0].size == MAX_BUFFER_BYTES


@pytest.mark.vm
def test_minimize_on_a_finding_that_does_not_reproduce_says_so(
        kernel_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fuzz.findings import Finding, FindingStore

    store = FindingStore(tmp_path / "findings")
    store.record(Finding("model/kernel mismatch in IOAS_ALLOC.errno",
                         "mismatch IOAS_ALLOC.errno kernel=0 model=ENOMEM", "mismatch"),
                 Program([Op("IOAS_ALLOC")]), "", kernel.manifest(kernel_dir))
    [(_, d)] = store.list()
    rc = main(["minimize", str(d), "--rate-runs", "2", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and "Traceback" not in "\n".join(err), err
    assert err[-1].startswith(f"iommufd-fuzz: minimize {d}: ")
    assert "did not reproduce in 2 runs" in err[-1]
    assert not (tmp_path / "r" / d.name).exists()
