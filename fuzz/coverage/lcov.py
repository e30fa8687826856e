"""lcov tracefiles of a LineCoverage, and HTML from them with genhtml (Debian's
lcov package), which marks every reached and unreached line of each source file."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from fuzz.coverage.table import LineCoverage
from fuzz.prog import atomic_write


class LcovError(RuntimeError):
    pass


def tracefile(cov: LineCoverage) -> str:
    out = [f"TN:{cov.name}_{cov.instrument}"]
    for f in cov.files():
        lines = cov.lines[f]
        out.append(f"SF:{Path(cov.src_root) / f}")
        out += [f"DA:{ln},{n}" for ln, n in sorted(lines.items())]
        out.append(f"LF:{len(lines)}")
        out.append(f"LH:{sum(1 for n in lines.values() if n > 0)}")
        out.append("end_of_record")
    return "\n".join(out) + "\n"


def write_tracefile(cov: LineCoverage, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, tracefile(cov).encode())
    return path


def parse_tracefile(text: str) -> dict[str, dict[int, int]]:
    """SF -> line -> count: the reader the tests use to check what genhtml reads."""
    out: dict[str, dict[int, int]] = {}
    cur: dict[int, int] | None = None
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("SF:"):
            cur = out.setdefault(line[3:], {})
        elif line.startswith("DA:"):
            if cur is None:
                raise LcovError(f"line {n}: DA outside a record")
            ln, _, count = line[3:].partition(",")
            cur[int(ln)] = int(count.split(",")[0])
        elif line == "end_of_record":
            cur = None
    return out


def genhtml(info: Path, out_dir: Path, title: str, prefix: str) -> Path:
    """out_dir/index.html, one page per source file."""
    exe = shutil.which("genhtml")
    if not exe:
        raise LcovError("genhtml not found: install Debian's lcov package (scripts/setup.sh does)")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    p = subprocess.run([exe, "--quiet", "--legend", "--title", title, "--prefix", prefix,
                        "--output-directory", str(out_dir), str(info)],
                       capture_output=True, text=True)
    if p.returncode:
        raise LcovError(f"genhtml {info} failed: {(p.stderr or p.stdout).strip()[-1000:]}")
    return out_dir / "index.html"
