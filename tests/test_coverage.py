"""Line coverage of drivers/iommu/iommufd/: the KCOV line map checked against
binutils on the real vmlinux, corpus replays and the kernel's selftests in the
VM, the campaign's line figure, and the lcov/HTML/JSON outputs."""

from __future__ import annotations

import json
import random
import re
import subprocess
import time
from pathlib import Path

import pytest

from fuzz import kernel, selftests
from fuzz.backend import VMBackend
from fuzz.coverage import lcov
from fuzz.coverage.lines import SUBDIR, line_map
from fuzz.coverage.table import LineCoverage, blocks, only_in, side_by_side, table

SEEDS = Path(__file__).resolve().parent.parent / "corpus" / "seeds"
IOMMUFD_FILES = {"device.c", "fault.c", "hw_pagetable.c", "io_pagetable.c", "ioas.c", "main.c",
                 "pages.c", "selftest.c", "vfio_compat.c", "iova_bitmap.c"}


def _source_line(src_root: str, rel: str, pattern: str) -> int:
    for n, line in enumerate((Path(src_root) / rel).read_text().splitlines(), 1):
        if re.search(pattern, line):
            return n
    raise AssertionError(f"{pattern!r} not in {rel}")


# -- the line map, against objdump and addr2line --------------------------------------------
def test_line_map_sites_are_kcov_calls_and_their_lines_are_addr2line_s(kernel_dir: Path) -> None:
    lm = line_map(kernel_dir)
    t0 = time.monotonic()
    assert line_map(kernel_dir) is lm and time.monotonic() - t0 < 0.1
    names = {Path(f).name for f in lm.files}
    assert IOMMUFD_FILES <= names, names
    assert 2000 < len(lm.site_pcs) < 6000, lm.stats
    assert 3000 < lm.reachable_count() < 6000, lm.stats
    vmlinux = kernel_dir / "vmlinux"
    # objdump's view of the main text of the iommufd objects: every call to
    # __sanitizer_cov_trace_pc there is a site (its return address), and no more
    big = [r for r in lm.ranges if r[1] - r[0] > 4096]
    lo, hi = min(r[0] for r in big) - 5, max(r[1] for r in big) - 5
    dis = subprocess.run(["objdump", "-d", "--no-show-raw-insn",
                          f"--start-address={0xFFFFFFFF00000000 | lo:#x}",
                          f"--stop-address={0xFFFFFFFF00000000 | hi:#x}", str(vmlinux)],
                         capture_output=True, text=True, check=True).stdout
    insns = re.findall(r"^ffffffff([0-9a-f]{8}):\t(.*)$", dis, re.M)
    calls = {int(insns[k + 1][0], 16) for k in range(len(insns) - 1)
             if re.match(r"call\s+\S+ <__sanitizer_cov_trace_pc>", insns[k][1])}
    inside = {pc for pc in lm.site_pcs if lo < pc <= hi}
    assert len(calls) > 2000 and inside == calls, (len(calls), len(inside),
                                                   sorted(calls ^ inside)[:10])
    # addr2line puts each sampled call on a line the site owns
    sample = random.Random(13).sample(range(len(lm.site_pcs)), 40)
    where = subprocess.run(["addr2line", "-e", str(vmlinux)],
                           input="\n".join(hex((0xFFFFFFFF00000000 | lm.site_pcs[k]) - 5)
                                           for k in sample),
                           capture_output=True, text=True, check=True).stdout.splitlines()
    checked = 0
    for k, w in zip(sample, where):
        path, _, line = w.rpartition(":")
        line = line.split()[0]
        if SUBDIR in path and line.isdigit():
            owned = {(lm.files[c >> 20], c & 0xFFFFF) for c in lm.site_lines[k]}
            assert (path[path.index(SUBDIR):], int(line)) in owned, (w, sorted(owned))
            checked += 1
    assert checked > 20


# -- replaying programs ------------------------------------------------------------------------
def test_coverage_command_on_seeds_writes_table_lcov_html_json(
        kernel_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fuzz.cli import main

    picks = ["ioas_alloc_destroy.json", "mock_domain_basic.json", "vfio_map_unmap.json",
             "copy_area.json"]
    for p in picks:
        (tmp_path / "in").mkdir(exist_ok=True)
        (tmp_path / "in" / p).write_bytes((SEEDS / p).read_bytes())
    out = tmp_path / "out"
    assert main(["coverage", str(tmp_path / "in"), "--kernel", str(kernel_dir),
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    doc = json.loads((out / "coverage.json").read_text())
    run = doc["runs"]["corpus"]
    assert run["meta"]["programs"] == 4 and not run["meta"]["crashed"]
    assert 20 < run["total"]["percent"] < 90, run["total"]
    files = run["files"]
    assert files[SUBDIR + "fault.c"]["reached"] == 0  # no fault op in these programs
    assert files[SUBDIR + "ioas.c"]["percent"] > 40
    assert files[SUBDIR + "vfio_compat.c"]["reached"] > 20
    # the table printed is the JSON's
    row = re.search(r"^ioas\.c\s+(\d+)\s+(\d+)", printed, re.M)
    assert row and int(row.group(1)) == files[SUBDIR + "ioas.c"]["reached"], printed
    # ioas_alloc_destroy leaves IOASes behind: KCOV must see the release path
    # (closing /dev/iommu destroys them), not just the ioctls
    src = run["src_root"]
    rel = _source_line(src, SUBDIR + "main.c", r"^static int iommufd_fops_release\(")
    traced = _lines(files[SUBDIR + "main.c"]["reached_lines"])
    assert any(rel < ln < rel + 40 for ln in traced), (rel, sorted(traced))
    alloc = _source_line(src, SUBDIR + "ioas.c", r"^int iommufd_ioas_alloc_ioctl\(")
    assert any(alloc < ln < alloc + 15 for ln in _lines(files[SUBDIR + "ioas.c"]
                                                         ["reached_lines"]))
    # the lcov tracefile says the same, for genhtml
    info = lcov.parse_tracefile((out / "corpus.info").read_text())
    ioas = info[src + SUBDIR + "ioas.c"]
    assert sum(1 for n in ioas.values() if n) == files[SUBDIR + "ioas.c"]["reached"]
    assert len(ioas) == files[SUBDIR + "ioas.c"]["lines"]
    # count = how many programs reached a line: IOAS_ALLOC is in all four
    assert max(ioas.values()) == 4
    # genhtml's pages mark reached and unreached lines
    index = out / "html" / "corpus" / "index.html"
    assert index.exists()
    page = next((out / "html" / "corpus").rglob("ioas.c.gcov.html")).read_text()
    assert 'class="lineCov"' in page and 'class="lineNoCov"' in page
    report = (out / "report.txt").read_text()
    assert "largest unreached blocks (corpus)" in report and "fault.c:" in report


def _lines(ranges: str) -> set[int]:
    out: set[int] = set()
    for part in filter(None, ranges.split(",")):
        a, _, b = part.partition("-")
        out.update(range(int(a), int(b or a) + 1))
    return out


# -- the campaign's figure ---------------------------------------------------------------------
def test_campaign_status_has_iommufd_line_percentage(kernel_dir: Path, vm: VMBackend,
                                                     tmp_path: Path) -> None:
    from fuzz.campaign import CampaignConfig, status, status_line
    from fuzz.coverage import edge_pcs, pcs
    from fuzz.engines.common import WorkerState
    from fuzz.findings import FindingStore
    from fuzz.plot import plot
    from fuzz.prog import Program

    wd = tmp_path / "campaign"
    ws = WorkerState(vm, tmp_path / "corpus", FindingStore(tmp_path / "findings"),
                     wd / "worker-0" / "stats.jsonl", kernel_dir)
    prog = Program.load(SEEDS / "mock_domain_basic.json")
    ws.run(prog)
    ws.write_stats()
    cfg = CampaignConfig(kernel=kernel_dir, corpus=tmp_path / "corpus",
                         findings=tmp_path / "findings", workdir=wd)
    s = status(cfg, time.monotonic() - 5)
    lm = line_map(kernel_dir)
    assert s["iommufd_lines_total"] == lm.reachable_count()
    assert s["iommufd_lines"] == lm.reached_count(edge_pcs(ws.edges)) > 300
    # the edges' ends are the PCs a plain PC trace of the same program gives
    traced = lm.reached_count(pcs(vm.run(prog)))
    assert abs(traced - s["iommufd_lines"]) <= traced // 50, (traced, s["iommufd_lines"])
    assert f"iommufd lines {s['iommufd_lines_pct']:.1f}%" in status_line(s)
    (wd / "stats.jsonl").write_text(json.dumps(s) + "\n" + json.dumps({**s, "t": 60}) + "\n")
    png = plot(wd / "stats.jsonl", tmp_path / "c.png")
    assert png.stat().st_size > 10000


# -- the selftests -----------------------------------------------------------------------------
def test_selftests_build_with_the_shims_and_list_190_tests(kernel_dir: Path,
                                                          vm: VMBackend) -> None:
    binaries = selftests.build(kernel.source_tree())
    assert selftests.build(kernel.source_tree()) == binaries  # cached
    res = vm.vm.run_command([str(binaries / "iommufd"), "-l"], timeout=120)
    listing = res["stdout"] + res["stderr"]
    # the harness lists sections of FIXTURE / VARIANT / TEST columns
    total = 0
    fixtures = set()
    for section in re.split(r"^-{20,}$", listing, flags=re.M)[1:]:
        rows = [ln for ln in section.splitlines() if ln.strip()]
        if not rows:
            continue
        fixtures.add(rows[0].split()[0])
        variants = sum(1 for ln in rows if ln[21:47].strip())
        tests = sum(1 for ln in rows if ln[47:].strip())
        total += max(1, variants) * tests
    assert {"iommufd", "iommufd_ioas", "iommufd_mock_domain", "iommufd_dirty_tracking",
            "vfio_compat_mock_domain"} <= fixtures, listing[-2000:]
    assert total == 190, listing[-3000:]


def test_selftests_fixture_under_kcov_preload_measures_its_lines(kernel_dir: Path) -> None:
    """One fixture's tests (10: vfio_compat_mock_domain, two variants) with the
    preloaded KCOV library: every forked test process reports, and what they
    reach is what they test."""
    from fuzz.coverage.measure import measure_selftests

    cov = measure_selftests(kernel_dir, "kcov", kernel.source_tree(),
                            programs={"iommufd": ("-f", "vfio_compat_mock_domain")},
                            timeout=1200)
    (run,) = cov.meta["selftests"]
    assert run["total"] == 10 and run["passed"] >= 9 and not run["crashed"], run
    assert cov.meta["processes"] >= 2 * run["total"]  # a child and a grandchild per test
    vfio = SUBDIR + "vfio_compat.c"
    assert len(cov.reached(vfio)) > 0.5 * len(cov.reachable(vfio))
    assert not cov.reached(SUBDIR + "fault.c") and not cov.reached(SUBDIR + "iova_bitmap.c")


# -- tables and blocks (pure functions) ------------------------------------------------------
def _cov(name: str, lines: dict[str, dict[int, int]]) -> LineCoverage:
    return LineCoverage(name, "kcov", "", lines)


def test_blocks_group_lines_with_no_code_line_between_them() -> None:
    f = SUBDIR + "x.c"
    reach = {f: {1, 2, 5, 6, 7, 10, 20}}
    bl = blocks({f: {1, 2, 5, 6, 7, 20}}, reach)
    # 10 is a line with code that is not chosen: it splits 1..7 from 20
    assert [(b.first, b.last, b.lines) for b in bl] == [(1, 7, 5), (20, 20, 1)]
    a = _cov("a", {f: {1: 1, 2: 1, 5: 0, 6: 3}})
    b = _cov("b", {f: {1: 0, 2: 2, 5: 1, 6: 0}})
    assert [(x.first, x.last) for x in only_in(a, b)] == [(1, 1), (6, 6)]
    assert [(x.first, x.last) for x in only_in(b, a)] == [(5, 5)]
    text = side_by_side(a, b)
    assert re.search(r"x\.c\s+3/4\s+75\.0%\s+2/4\s+50\.0%\s+2\s+1", text), text
    assert re.search(r"^all\s+3\s+4\s+75\.0%", table(a), re.M)


def test_lcov_tracefile_round_trips(tmp_path: Path) -> None:
    cov = _cov("corpus", {SUBDIR + "a.c": {3: 0, 4: 2}, SUBDIR + "b.h": {1: 1}})
    cov.src_root = "/src/"
    path = lcov.write_tracefile(cov, tmp_path / "c.info")
    text = path.read_text()
    assert "LF:2\nLH:1\nend_of_record" in text
    assert lcov.parse_tracefile(text) == {"/src/" + SUBDIR + "a.c": {3: 0, 4: 2},
                                          "/src/" + SUBDIR + "b.h": {1: 1}}



# -- the GCOV kernel -----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def gcov_kernel_dir() -> Path:
    """`kernel build --coverage gcov` (built once, cached like the default kernel)."""
    try:
        return kernel.build(kernel.BuildRequest(coverage="gcov"))
    except kernel.KernelError as e:
        pytest.fail(f"cannot build the GCOV kernel: {e}")


@pytest.mark.gcov
def test_gcov_kernel_counts_every_execution_and_agrees_with_kcov(
        kernel_dir: Path, gcov_kernel_dir: Path) -> None:
    """The same program twice, read back (and reset) after each: gcov's counts add
    up across reads, and the lines KCOV saw reached on the default kernel are
    lines gcov saw reached too."""
    from fuzz.coverage.measure import measure_corpus
    from fuzz.prog import Program

    m = kernel.manifest(gcov_kernel_dir)
    assert m["coverage"] == "gcov" and (gcov_kernel_dir / "gcov" / "obj").is_dir()
    prog = Program.load(SEEDS / "ioas_alloc_destroy.json")
    allocs = sum(op.name == "IOAS_ALLOC" for op in prog.ops)
    g = measure_corpus(gcov_kernel_dir, "gcov", [(Path("a"), prog), (Path("b"), prog)], batch=1)
    assert g.instrument == "gcov" and g.src_root.startswith(str(gcov_kernel_dir))
    _hit, n = g.totals()
    assert 4000 < n < 5500, n  # lines with code in the directory, by gcov
    first = _source_line(g.src_root, SUBDIR + "ioas.c", r"^int iommufd_ioas_alloc_ioctl\(")
    body = min(ln for ln in g.lines[SUBDIR + "ioas.c"] if ln > first)
    assert g.lines[SUBDIR + "ioas.c"][body] == 2 * allocs  # no IOAS is allocated at boot
    assert not g.reached(SUBDIR + "fault.c") and not g.reached(SUBDIR + "pages.c")
    k = measure_corpus(kernel_dir, "kcov", [(Path("a"), prog)])
    both = agree = 0
    for f in k.files():
        for ln in k.reached(f) & g.reachable(f):
            both += 1
            agree += ln in g.reached(f)
    assert both > 100 and agree >= 0.95 * both, (agree, both)
