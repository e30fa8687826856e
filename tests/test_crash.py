"""One crash is one finding, on a real kernel with planted crashes (two of the
planted bugs of tests/data/planted.patch, a `--patch` build shared with
tests/test_history.py):

- TEST_SET_TEMP_MEMORY_LIMIT with limit PLANTED_GPF dereferences a non-canonical
  pointer: a general protection fault, KASAN's "maybe wild-memory-access" hint and,
  with oops=panic, "Kernel panic - not syncing: Fatal exception" - one run that used
  to be filed as three findings;
- limit PLANTED_UAF reads a freed object three times: a burst of KASAN reports from
  one program, once filed as one finding per report.

Each planted program runs twice between clean ones, as a campaign would meet them:
two bugs, two findings, each counted twice, the later splats in the finding; every
clean program after a crash runs on a restored kernel and agrees.
The patched kernel is built once (12-20 min, cached like the default kernel).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_history import limit, noise, workdir  # noqa: F401  (workdir is a fixture)

from fuzz import kernel
from fuzz.backend import VMBackend
from fuzz.findings import FindingStore, load_finding

PATCH = Path(__file__).parent / "data" / "planted.patch"
PLANTED_UAF = 0x10BAD0AF
PLANTED_GPF = 0x10BAD06F


@pytest.fixture(scope="module")
def crash_kernel() -> Path:
    try:
        return kernel.build(kernel.BuildRequest(patches=[PATCH]))
    except kernel.KernelError as e:
        pytest.fail(f"cannot build the planted kernel: {e}")


@pytest.mark.variant
def test_one_crash_is_one_finding_and_a_burst_is_one(
        crash_kernel: Path, workdir: Path,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    from fuzz import differential
    from fuzz.cli import main

    progs = [limit(PLANTED_GPF), noise(0), limit(PLANTED_UAF), noise(1)] * 2
    be = VMBackend(crash_kernel)
    try:
        runs = [differential.run(p, be) for p in progs]
    finally:
        be.close()
    gpf, clean, uaf = runs[0].execution, runs[1], runs[2].execution
    assert gpf.crash, "oops=panic: the GPF ends the guest"
    kinds = [r.kind for r in gpf.reports]
    assert kinds[0] == "GPF" and "PANIC" in kinds, kinds
    assert [r.kind for r in uaf.reports].count("KASAN") >= 3, [r.title for r in uaf.reports]
    assert not clean.failed and not runs[3].failed, "restored after each crash"
    assert not runs[5].failed and not runs[7].failed

    store = FindingStore(workdir / "findings")
    manifest = kernel.manifest(crash_kernel)
    for r in runs:
        store.record_outcome(r, manifest)
    rows = store.list()
    splats = sum(len(r.execution.reports) for r in runs)
    print(f"\nplanted kernel: {len(progs)} programs, {splats} splat reports, "
          f"{len(rows)} findings: " + "; ".join(f"{f.title} x{f.count} (+{len(f.also)} more "
                                                f"in its run: {f.also})" for f, _ in rows))
    assert len(rows) == 2, [f.title for f, _ in rows]
    (g, gdir), = [(f, d) for f, d in rows if f.kind == "splat" and "protection" in f.title]
    (k, _), = [(f, d) for f, d in rows if f is not g]
    assert g.title.startswith("general protection fault") and g.count == 2
    assert any("Fatal exception" in t or "panic" in t for t in g.also), g.also
    assert k.title.startswith("KASAN: slab-use-after-free") and k.count == 2
    stored = load_finding(gdir)
    assert stored.prog.ops[0].args["limit"] == PLANTED_GPF and stored.history == []
    assert stored.log.count("general protection fault") >= 1

    # the crash minimizes to its one op and reproduces in every form
    rc = main(["minimize", str(gdir), "--out", str(workdir / "reproducers"), "--rate-runs", "2"])
    out, err = capsys.readouterr()
    assert rc == 0, out + err
    report = (workdir / "reproducers" / gdir.name / "report.txt").read_text()
    assert report.count("REPRODUCED  ") == 3, report
