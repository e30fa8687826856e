"""fuzz.report against kernel splats in the exact format Linux 6.12 prints.

Every tests/data/splats/NAME.txt is a console capture holding one report. Next
to it, NAME.expect lists "key: value" lines (title is required; kind,
guilty_frame, file_line, frames (leading frames, space separated), panicked,
complete, text_contains, text_excludes are optional), or NAME.title holds just
the expected title. A capture with neither must still yield one report. To add
a real splat captured from the VM, drop NAME.txt and NAME.title in there.
boot_normal.log (not *.txt, so not a sample) is ordinary boot output: no report.
The samples are hand-written in 6.12's format; real captures should replace them.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from fuzz.report import LogScanner, Report, is_panic, parse, title_signature

DATA = Path(__file__).resolve().parent / "data"
SPLATS = sorted((DATA / "splats").glob("*.txt"))


def expectations(splat: Path) -> dict[str, list[str]]:
    exp: dict[str, list[str]] = {}
    if splat.with_suffix(".expect").exists():
        for line in splat.with_suffix(".expect").read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                key, _, value = line.partition(":")
                exp.setdefault(key.strip(), []).append(value.strip())
    elif splat.with_suffix(".title").exists():
        exp["title"] = [splat.with_suffix(".title").read_text().strip()]
    return exp


def shape(reports: list[Report]) -> list[tuple]:
    return [
        (
            r.kind,
            r.title,
            r.guilty_frame,
            r.file_line,
            tuple(r.frames),
            r.text,
            r.signature,
            r.panicked,
            r.secondary,
            r.complete,
            r.context,
            r.line,
        )
        for r in reports
    ]


def test_samples_present() -> None:
    assert len(SPLATS) >= 25


@pytest.mark.parametrize("splat", SPLATS, ids=[p.stem for p in SPLATS])
def test_splat(splat: Path) -> None:
    reports = parse(splat.read_text())
    assert len(reports) == 1, [r.title for r in reports]
    rep = reports[0]
    exp = expectations(splat)
    if not exp:
        return
    assert rep.title == exp["title"][0]
    assert rep.signature == title_signature(rep.title)
    for key in ("kind", "guilty_frame", "file_line"):
        if key in exp:
            assert (getattr(rep, key) or "") == exp[key][0], key
    if "frames" in exp:
        want = exp["frames"][0].split()
        assert rep.frames[: len(want)] == want
    for key in ("panicked", "complete"):
        if key in exp:
            assert getattr(rep, key) == (exp[key][0] == "true"), key
    for needle in exp.get("text_contains", []):
        assert needle in rep.text
    for needle in exp.get("text_excludes", []):
        assert needle not in rep.text


@pytest.mark.parametrize("splat", SPLATS, ids=[p.stem for p in SPLATS])
def test_splat_text_is_stripped_and_frames_clean(splat: Path) -> None:
    rep = parse(splat.read_text())[0]
    assert "][" not in rep.text and not rep.text.startswith("[")
    assert all("+0x" not in f and " " not in f and "." not in f for f in rep.frames)
    assert rep.guilty_frame == "" or rep.guilty_frame in rep.title or rep.kind == "PANIC"


@pytest.mark.parametrize("splat", SPLATS, ids=[p.stem for p in SPLATS])
def test_scanner_matches_parse_in_random_chunks(splat: Path) -> None:
    text = (DATA / "splats" / "boot_normal.log").read_text() + splat.read_text()
    want = shape(parse(text))
    rng = random.Random(splat.stem)
    for _ in range(3):
        scanner = LogScanner()
        got: list[Report] = []
        pos = 0
        while pos < len(text):
            step = rng.randint(1, 40)
            got.extend(scanner.feed(text[pos : pos + step]))
            pos += step
        got.extend(scanner.flush())
        assert shape(sorted(got, key=lambda r: r.line)) == want


def test_scanner_reports_complete_reports_without_flush() -> None:
    scanner = LogScanner()
    got = scanner.feed((DATA / "splats" / "kasan_slab_uaf_iopt.txt").read_text())
    assert [r.title for r in got] == ["KASAN: slab-use-after-free Read in iopt_area_split"]
    assert scanner.flush() == []


def test_scanner_holds_partial_line() -> None:
    text = (DATA / "splats" / "warning_lkdtm.txt").read_text()
    cut = text.index("---[ end trace") + 5
    scanner = LogScanner()
    assert scanner.feed(text[:cut]) == []
    done = scanner.feed(text[cut:])
    assert [r.title for r in done] == ["WARNING in lkdtm_WARNING"]


def test_normal_boot_lines_give_no_report() -> None:
    assert parse((DATA / "splats" / "boot_normal.log").read_text()) == []
    assert not is_panic((DATA / "splats" / "boot_normal.log").read_text())


def test_two_reports_in_one_log() -> None:
    boot = (DATA / "splats" / "boot_normal.log").read_text()
    a = (DATA / "splats" / "warning_iopt_unmap.txt").read_text()
    b = (DATA / "splats" / "kasan_oob_lkdtm.txt").read_text()
    reports = parse(boot + a + "[  200.000000][  T1] iommufd: between\n" + b + boot)
    assert [r.title for r in reports] == [
        "WARNING in iopt_unmap_iova_range",
        "KASAN: slab-out-of-bounds Write in lkdtm_SLAB_LINEAR_OVERFLOW",
    ]
    assert reports[0].line < reports[1].line
    assert "iommufd: between" not in reports[0].text + reports[1].text


def interleave(a: str, b: str) -> str:
    la, lb = a.splitlines(keepends=True), b.splitlines(keepends=True)
    out = []
    for i in range(max(len(la), len(lb))):
        out += la[i : i + 1] + lb[i : i + 1]
    return "".join(out)


def test_interleaved_reports_from_two_tasks() -> None:
    a = (DATA / "splats" / "warning_iopt_unmap.txt").read_text()  # T201
    b = (DATA / "splats" / "lockdep_circular.txt").read_text()  # T305
    reports = parse(interleave(a, b))
    assert sorted(r.title for r in reports) == [
        "WARNING in iopt_unmap_iova_range",
        "possible deadlock in iommufd_access_pin_pages",
    ]
    assert all(r.complete for r in reports)
    by_title = {r.title: r for r in reports}
    assert "print_circular_bug" not in by_title["WARNING in iopt_unmap_iova_range"].text
    assert "iopt_unmap_iova_range+0x6ba" not in (
        by_title["possible deadlock in iommufd_access_pin_pages"].text
    )


def test_same_title_same_signature() -> None:
    text = (DATA / "splats" / "warning_lkdtm.txt").read_text()
    first, second = parse(text + text)
    assert first.title == second.title
    assert first.signature == second.signature == title_signature(first.title)
    assert len(first.signature) == 16
    assert title_signature("WARNING in foo") != title_signature("WARNING in bar")
    # Stable across runs and hosts: sha1 of the title.
    assert title_signature("WARNING in lkdtm_WARNING") == "e0d2fe9521189a0e"
    assert title_signature("x") == hashlib.sha1(b"x").hexdigest()[:16]


def test_report_text_includes_warn_message_and_excludes_other_callers() -> None:
    rep = parse((DATA / "splats" / "warning_lkdtm.txt").read_text())[0]
    assert rep.text.startswith("------------[ cut here ]------------\nWARNING: CPU: 0 PID: 187")
    assert "random: crng init done" not in rep.text
    assert "hrtimer: interrupt took" not in rep.text
    assert rep.text.endswith("---[ end trace 0000000000000000 ]---")
    assert rep.context == "T187"


def test_lines_without_prefix() -> None:
    rep = parse((DATA / "splats" / "ubsan_array_lkdtm.txt").read_text())[0]
    assert rep.context == ""
    assert "FAIL: survived" not in rep.text


def test_kasan_report_is_delimited() -> None:
    rep = parse((DATA / "splats" / "kasan_slab_uaf_iopt.txt").read_text())[0]
    lines = rep.text.splitlines()
    assert lines[0].startswith("=====") and lines[1].startswith("BUG: KASAN:")
    assert lines[-1].startswith("=====")
    assert "Freed by task 214:" in rep.text
    assert "Disabling lock debugging" not in rep.text


def test_panic_after_oops_is_secondary() -> None:
    oops = (DATA / "splats" / "bug_kernel_bug_lkdtm.txt").read_text()
    tail = (
        "[   70.200000][  T290] Kernel panic - not syncing: Fatal exception\n"
        "[   70.200100][  T290] Kernel Offset: disabled\n"
        "[   70.200200][  T290] ---[ end Kernel panic - not syncing: Fatal exception ]---\n"
    )
    reports = parse(oops + tail)
    assert [(r.kind, r.title, r.secondary) for r in reports] == [
        ("BUG", "kernel BUG in lkdtm_BUG", False),
        ("PANIC", "kernel panic: Fatal exception", True),
    ]
    assert reports[1].panicked and is_panic(oops + tail) and not is_panic(oops)


def test_scanner_tracks_panic() -> None:
    scanner = LogScanner()
    scanner.feed((DATA / "splats" / "warning_panic_on_warn.txt").read_text())
    assert scanner.panicked


def test_hung_tasks_each_reported() -> None:
    one = (DATA / "splats" / "hung_task_lkdtm.txt").read_text().splitlines(keepends=True)
    # Two blocked tasks in one khungtaskd pass: drop the first one's lock dump.
    start = next(i for i, ln in enumerate(one) if "Showing all locks" in ln) - 1
    two = (DATA / "splats" / "hung_task_mutex.txt").read_text()
    reports = parse("".join(one[:start]) + two)
    assert [r.title for r in reports] == [
        "INFO: task hung in lkdtm_HUNG_TASK",
        "INFO: task hung in iommufd_access_destroy",
    ]
    assert not reports[0].complete and reports[1].complete


def test_oops_without_header() -> None:
    text = (DATA / "splats" / "bug_kernel_bug_lkdtm.txt").read_text()
    text = "".join(ln for ln in text.splitlines(keepends=True) if "kernel BUG at" not in ln)
    (rep,) = parse(text)
    assert (rep.kind, rep.title) == ("OOPS", "invalid opcode in lkdtm_BUG")


def test_truncated_report_is_flushed_incomplete() -> None:
    text = (DATA / "splats" / "warning_lkdtm.txt").read_text()
    text = text[: text.index("irq event stamp")]
    scanner = LogScanner()
    assert scanner.feed(text) == []
    (rep,) = scanner.flush()
    assert rep.title == "WARNING in lkdtm_WARNING" and not rep.complete


def test_crlf_console_output() -> None:
    text = (DATA / "splats" / "lockdep_circular.txt").read_text()
    (rep,) = parse(text.replace("\n", "\r\n"))
    assert rep.title == "possible deadlock in iommufd_access_pin_pages"
    assert "\r" not in rep.text


def wrap(lines: list[str], ctx: str = "T77") -> str:
    return "".join(f"[  500.{i:06d}][{ctx:>6}] {ln}\n" for i, ln in enumerate(lines))


STACK = [
    "CPU: 0 UID: 0 PID: 77 Comm: python3 Not tainted 6.12.117 #1",
    "Call Trace:",
    " <TASK>",
    " dump_stack_lvl+0xbb/0x100",
    " bad_page+0x1a5/0x260",
    " free_unref_page+0x7e2/0xa30",
    " iopt_pages_release+0x2c1/0x4a0",
    " iommufd_fops_ioctl+0x35a/0x540",
    " </TASK>",
]


def test_other_bug_lines_keep_their_words_not_their_numbers() -> None:
    (rep,) = parse(wrap(["BUG: Bad page state in process python3  pfn:0b2f4", *STACK]))
    assert (rep.kind, rep.title) == ("BUG", "BUG: Bad page state in iopt_pages_release")
    assert rep.complete
    (other,) = parse(wrap(["BUG: Bad page state in process sh  pfn:0c000", *STACK], "T9"))
    assert other.signature == rep.signature


def test_kernel_bug_without_file() -> None:
    text = (DATA / "splats" / "bug_kernel_bug_lkdtm.txt").read_text()
    text = text.replace(
        "kernel BUG at drivers/misc/lkdtm/bugs.c:105!",
        "Kernel BUG at lkdtm_BUG+0x9/0x10 [verbose debug info unavailable]",
    )
    (rep,) = parse(text)
    assert (rep.title, rep.file_line) == ("kernel BUG in lkdtm_BUG", None)
