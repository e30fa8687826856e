"""`iommufd-fuzz coverage`: what the corpus (and, with --selftests, the kernel's
own selftests) reach in drivers/iommu/iommufd/, as tables, lcov tracefiles,
genhtml HTML and JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fuzz import corpus, kernel
from fuzz.coverage import lcov, measure
from fuzz.coverage.table import (
    Block,
    LineCoverage,
    only_in,
    pct,
    side_by_side,
    table,
    unreached,
)
from fuzz.prog import atomic_write

DEFAULT_CORPORA = ("corpus/seeds", "corpus/faults", "corpus/campaign")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("corpus", nargs="*", help=f"program dirs or files (default: "
                   f"{' '.join(DEFAULT_CORPORA)})")
    p.add_argument("--kernel", help="kernel dir (default: the default kernel)")
    p.add_argument("--out", default="workdir/coverage", help="where the reports go")
    p.add_argument("--selftests", action="store_true",
                   help="also run the kernel's iommufd selftests and compare")
    p.add_argument("--no-corpus", action="store_true", help="only the selftests")
    p.add_argument("--instrument", choices=["kcov", "gcov"],
                   help="default: gcov on a `kernel build --coverage gcov` kernel, else kcov")
    p.add_argument("--no-html", action="store_true", help="skip genhtml")
    p.add_argument("--timeout", type=float, default=3600.0,
                   help="seconds per selftest binary (they take minutes under TCG)")
    p.add_argument("--top", type=int, default=15, help="blocks to print per list")


def _ranges(lines: set[int]) -> str:
    out: list[str] = []
    for ln in sorted(lines):
        if out and out[-1].split("-")[-1] == str(ln - 1):
            out[-1] = f"{out[-1].split('-')[0]}-{ln}"
        else:
            out.append(str(ln))
    return ",".join(out)


def _run_json(cov: LineCoverage) -> dict:
    hit, n = cov.totals()
    files = {}
    for f in cov.files():
        r, a = cov.reached(f), cov.reachable(f)
        files[f] = {"reached": len(r), "lines": len(a),
                    "percent": round(100 * len(r) / len(a), 2) if a else 0.0,
                    "reached_lines": _ranges(r), "unreached_lines": _ranges(a - r)}
    return {"instrument": cov.instrument, "src_root": cov.src_root, "meta": cov.meta,
            "total": {"reached": hit, "lines": n, "percent": round(cov.percent(), 2)},
            "files": files, "unreached_blocks": [b.to_json() for b in unreached(cov)]}


def _programs(paths: list[str]) -> tuple[list, list[str]]:
    from fuzz.prog import Program

    progs, used = [], []
    for s in paths:
        p = Path(s)
        if p.is_dir():
            got = corpus.load(p)
        elif p.is_file():
            got = [(p, Program.load(p))]
        else:
            raise SystemExit(f"iommufd-fuzz coverage: {p}: no such file or directory")
        progs += got
        used.append(f"{p} ({len(got)})")
    return progs, used


def _blocks(title: str, bl: list[Block], top: int) -> list[str]:
    n = sum(b.lines for b in bl)
    rows = [f"{title}: {n} lines in {len(bl)} blocks" + (", largest first:" if bl else "")]
    rows += [f"  {b.describe()}" for b in bl[:top]]
    if len(bl) > top:
        rows.append(f"  ... {len(bl) - top} more (coverage.json, report.txt)")
    return rows


def run(a: argparse.Namespace, kdir: Path) -> int:
    from fuzz.coverage.gcov import GcovError
    from fuzz.coverage.lcov import LcovError
    from fuzz.coverage.lines import LineMapError
    from fuzz.selftests import SelftestError

    try:
        return _run(a, kdir)
    except (LineMapError, measure.CoverageError, GcovError, LcovError, SelftestError) as e:
        print(f"iommufd-fuzz coverage: {e}", file=sys.stderr)
        return 2


def _run(a: argparse.Namespace, kdir: Path) -> int:
    instrument = a.instrument or measure.instruments(kdir)[0]
    if instrument not in measure.instruments(kdir):
        raise measure.CoverageError(f"--instrument {instrument}: {kdir} is not a "
                                    "`kernel build --coverage gcov` kernel")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    runs: list[LineCoverage] = []
    if not a.no_corpus:
        paths = a.corpus or [d for d in DEFAULT_CORPORA if Path(d).is_dir()]
        progs, used = _programs(paths)
        if not progs:
            raise SystemExit("iommufd-fuzz coverage: no programs to replay "
                             f"(looked in {', '.join(paths) or 'nothing'})")
        measure._log(f"replaying {len(progs)} programs from {', '.join(used)} ({instrument})")
        cov = measure.measure_corpus(kdir, instrument, progs)
        cov.meta["sources"] = used
        runs.append(cov)
    if a.selftests:
        tree = _source_tree(kdir)
        runs.append(measure.measure_selftests(kdir, instrument, tree, timeout=a.timeout))
    if not runs:
        raise SystemExit("iommufd-fuzz coverage: nothing to measure (--no-corpus without "
                         "--selftests)")

    report: list[str] = []
    doc: dict = {"kernel": str(kdir), "instrument": instrument, "runs": {}, "only": {}}
    if instrument == "kcov":
        from fuzz.coverage.lines import line_map

        doc["line_map"] = line_map(kdir).stats
    for cov in runs:
        report.append(f"== {cov.name} ({cov.instrument}): {_describe(cov)}")
        report.append(table(cov))
        report.append("")
        doc["runs"][cov.name] = _run_json(cov)
        info = lcov.write_tracefile(cov, out / f"{cov.name}.info")
        report.append(f"lcov: {info}")
        if not a.no_html:
            index = lcov.genhtml(info, out / "html" / cov.name,
                                 f"iommufd {cov.name} ({cov.instrument})", cov.src_root)
            report.append(f"html: {index}")
        report.append("")
    full = list(report)
    if len(runs) == 2:
        x, y = runs
        report += ["== side by side", side_by_side(x, y), ""]
        full += ["== side by side", side_by_side(x, y), ""]
        for p, q in ((y, x), (x, y)):
            bl = only_in(p, q)
            doc["only"][p.name] = [b.to_json() for b in bl]
            title = f"lines reached by the {p.name}, not by the {q.name}"
            report += _blocks(title, bl, a.top) + [""]
            full += _blocks(title, bl, len(bl)) + [""]
    for cov in runs:
        title = f"largest unreached blocks ({cov.name})"
        report += _blocks(title, unreached(cov), a.top) + [""]
        full += _blocks(title, unreached(cov), 10**6) + [""]
    atomic_write(out / "coverage.json", (json.dumps(doc, indent=1) + "\n").encode())
    atomic_write(out / "report.txt", ("\n".join(full) + "\n").encode())
    print("\n".join(report))
    print(f"json: {out / 'coverage.json'}; everything above, unabridged: {out / 'report.txt'}")
    return 0


def _describe(cov: LineCoverage) -> str:
    m = cov.meta
    hit, n = cov.totals()
    head = f"{hit}/{n} lines, {pct(hit, n).strip()}"
    if cov.name == "corpus":
        extra = [f"{m['programs']} programs from {', '.join(m.get('sources', []))}",
                 f"in {m['seconds']:.0f} s"]
        if m.get("crashed"):
            extra.append(f"{len(m['crashed'])} crashed the guest")
        if m.get("truncated"):
            extra.append(f"{m['truncated']} with a full KCOV buffer")
    else:
        extra = [f"{s['program']} {s['passed']}/{s['total']} passed" +
                 (f" ({s['crashed']})" if s.get("crashed") else "") for s in m["selftests"]]
        extra.append(f"in {m['seconds']:.0f} s")
        if m.get("overflows"):
            extra.append(f"{m['overflows']} KCOV buffer overflows")
    if m.get("splats"):
        extra.append(f"splats: {'; '.join(sorted(set(m['splats']))[:3])}")
    return f"{head}; " + ", ".join(extra)


def _source_tree(kdir: Path) -> Path:
    """The tree the kernel was built from (the selftests must match it)."""
    m = kernel.manifest(kdir)
    ident = m.get("source_identity", "")
    if ident.startswith("debian:"):
        return kernel.source_tree(ident.split(":", 1)[1])
    if ident.startswith("tree:"):
        return Path(ident.split(":")[1])
    raise SystemExit(f"iommufd-fuzz coverage --selftests: cannot tell the source tree of {kdir} "
                     f"(source {m.get('source')!r})")
