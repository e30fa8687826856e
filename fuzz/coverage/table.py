"""Line coverage of drivers/iommu/iommufd/ as data: per-file tables, two runs side
by side, and the blocks of lines one run reaches and another does not."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from fuzz.coverage.lines import SUBDIR


@dataclass
class LineCoverage:
    """One measured run. lines[file][line] is a count for every reachable line of
    the file (0: not reached); what the count counts depends on the instrument
    (KCOV: programs or processes that reached it; gcov: executions)."""

    name: str  # "corpus", "selftests"
    instrument: str  # "kcov" or "gcov"
    src_root: str
    lines: dict[str, dict[int, int]]
    meta: dict = field(default_factory=dict)

    def files(self) -> list[str]:
        return sorted(f for f in self.lines if f.startswith(SUBDIR))

    def reached(self, f: str) -> set[int]:
        return {ln for ln, n in self.lines.get(f, {}).items() if n > 0}

    def reachable(self, f: str) -> set[int]:
        return set(self.lines.get(f, {}))

    def totals(self) -> tuple[int, int]:
        fs = self.files()
        return sum(len(self.reached(f)) for f in fs), sum(len(self.reachable(f)) for f in fs)

    def percent(self) -> float:
        hit, n = self.totals()
        return 100.0 * hit / n if n else 0.0


def pct(hit: int, n: int) -> str:
    return f"{100.0 * hit / n:5.1f}%" if n else "    -"


def short(f: str) -> str:
    return f[len(SUBDIR):] if f.startswith(SUBDIR) else f


def table(cov: LineCoverage) -> str:
    rows = [f"{'file':<22} {'reached':>8} {'lines':>6} {'':>7}   ({cov.name}, {cov.instrument})"]
    for f in cov.files():
        hit, n = len(cov.reached(f)), len(cov.reachable(f))
        rows.append(f"{short(f):<22} {hit:>8} {n:>6} {pct(hit, n):>7}")
    hit, n = cov.totals()
    rows.append(f"{'all':<22} {hit:>8} {n:>6} {pct(hit, n):>7}")
    return "\n".join(rows)


def side_by_side(a: LineCoverage, b: LineCoverage) -> str:
    """Both runs' per-file figures and what each reaches that the other does not.
    The runs must use one instrument (the same reachable lines)."""
    w = 20
    head = (f"{'file':<22} {a.name + ' (' + a.instrument + ')':>{w}} "
            f"{b.name + ' (' + b.instrument + ')':>{w}} {'only ' + a.name:>14} "
            f"{'only ' + b.name:>16}")
    rows = [head]
    tot = [0, 0, 0, 0, 0, 0]
    for f in sorted(set(a.files()) | set(b.files())):
        ra, rb = a.reached(f), b.reached(f)
        na, nb = len(a.reachable(f)), len(b.reachable(f))
        cells = [f"{len(ra)}/{na} {pct(len(ra), na)}", f"{len(rb)}/{nb} {pct(len(rb), nb)}"]
        rows.append(f"{short(f):<22} {cells[0]:>{w}} {cells[1]:>{w}} {len(ra - rb):>14} "
                    f"{len(rb - ra):>16}")
        for k, v in enumerate((len(ra), na, len(rb), nb, len(ra - rb), len(rb - ra))):
            tot[k] += v
    cells = [f"{tot[0]}/{tot[1]} {pct(tot[0], tot[1])}", f"{tot[2]}/{tot[3]} {pct(tot[2], tot[3])}"]
    rows.append(f"{'all':<22} {cells[0]:>{w}} {cells[1]:>{w}} {tot[4]:>14} {tot[5]:>16}")
    return "\n".join(rows)


@dataclass
class Block:
    file: str
    first: int
    last: int
    lines: int  # lines with code in [first, last]
    function: str = ""

    def describe(self) -> str:
        where = f"{self.file}:{self.first}" + (f"-{self.last}" if self.last != self.first else "")
        fn = f" in {self.function}()" if self.function else ""
        return f"{where} ({self.lines} line{'s' if self.lines != 1 else ''}{fn})"

    def to_json(self) -> dict:
        return {"file": self.file, "first": self.first, "last": self.last, "lines": self.lines,
                "function": self.function}


def blocks(chosen: dict[str, set[int]], reachable: dict[str, set[int]],
           src_root: str = "") -> list[Block]:
    """Runs of chosen lines with no other line with code between them, within one
    function, largest first: 'pages.c:1200-1230 (14 lines in f())' reads better
    than 14 line numbers."""
    out: list[Block] = []
    for f, pick in chosen.items():
        if not pick:
            continue
        names = function_names(Path(src_root) / f) if src_root else {}
        run: list[int] = []
        for ln in sorted(reachable.get(f, set()) | pick):
            if run and (ln not in pick or names.get(ln) != names.get(run[0])):
                out.append(Block(f, run[0], run[-1], len(run), names.get(run[0], "")))
                run = []
            if ln in pick:
                run.append(ln)
        if run:
            out.append(Block(f, run[0], run[-1], len(run), names.get(run[0], "")))
    return sorted(out, key=lambda b: (-b.lines, b.file, b.first))


def only_in(a: LineCoverage, b: LineCoverage) -> list[Block]:
    """Lines a reaches and b does not."""
    return blocks({f: a.reached(f) - b.reached(f) for f in a.files()},
                  {f: a.reachable(f) for f in a.files()}, a.src_root)


def unreached(cov: LineCoverage) -> list[Block]:
    return blocks({f: cov.reachable(f) - cov.reached(f) for f in cov.files()},
                  {f: cov.reachable(f) for f in cov.files()}, cov.src_root)


_NAME = re.compile(r"([A-Za-z_]\w*)\s*\(")


def function_names(path: Path) -> dict[int, str]:
    """line -> the function it is in, from kernel coding style: a definition starts
    in column 0 and its body is braced by '{' and '}' alone in column 0."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return {}
    out: dict[int, str] = {}
    name = ""
    for i, line in enumerate(text):
        if line.startswith("{"):
            name = ""
            for back in range(i - 1, max(i - 6, -1), -1):  # the definition's first line
                prev = text[back]
                if prev and not prev[0].isspace() and "(" in prev:
                    m = _NAME.search(prev)
                    name = m.group(1) if m else ""
                    break
        if name:
            out[i + 1] = name
        if line.startswith("}"):
            name = ""
    return out
