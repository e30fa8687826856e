"""Mutants of fuzz/model/ reviewed as equivalent: the change cannot alter any result a
program can observe. bench/bench_oracle.py shows them apart from the other survivors and
prints the kill rate without them beside the whole (it never drops them from the whole).

An entry names its line by the line's text, not its number (which moves with every edit),
and covers each mutation of that kind and was -> now on that line. It is kept only with
two things: the reason, from reading the code, and the evidence that
bench/hunt_mutants.py ran the unmutated and the mutated model on `hunted` programs,
`ran_line` of which ran the line, and no result differed. tests/test_bench.py checks
that every entry still names a mutation site of the model as it is; bench_oracle flags an
entry whose mutant was killed (the reason was wrong)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

MODEL_DIR = Path(__file__).resolve().parent.parent / "fuzz" / "model"


@dataclass(frozen=True)
class Equivalent:
    file: str  # fuzz/model/<file>
    text: str  # the line, stripped
    kind: str  # as bench_oracle.Mutant.kind
    was: str
    now: str
    reason: str
    hunted: int  # programs bench/hunt_mutants.py ran on both models
    ran_line: int  # of them, the ones that ran the line


EQUIVALENT: tuple[Equivalent, ...] = ()


@cache
def _lines(file: str) -> tuple[str, ...]:
    return tuple((MODEL_DIR / file).read_text().splitlines())


def line_text(file: str, line: int) -> str:
    lines = _lines(file)
    return lines[line - 1].strip() if 0 < line <= len(lines) else ""


def reviewed(m: Any, entries: tuple[Equivalent, ...] = EQUIVALENT) -> Equivalent | None:
    """The entry that covers mutant m (a bench_oracle.Mutant), if any."""
    text = line_text(m.file, m.line)
    return next((e for e in entries if (e.file, e.text, e.kind, e.was, e.now)
                 == (m.file, text, m.kind, m.was, m.now)), None)


def stale(sites: list[Any], entries: tuple[Equivalent, ...] = EQUIVALENT) -> list[Equivalent]:
    """Entries that cover no mutation site of the model as it is."""
    covered = {reviewed(m, entries) for m in sites}
    return [e for e in entries if e not in covered]
