"""Known kernel bugs: findings that are reported already, so that campaigns count them
instead of filing them again as new.

The list is `reproducers/known.json`, one entry per bug:

    {"id": "dirty-bitmap-error-dropped",            the id the model tags results with
     "title": "iommufd: GET_DIRTY_BITMAP ...",      one line
     "report": "reproducers/<slug>/report.txt",    the mail, with the reproducer beside it
     "kernels": "6.12.117",                         where it was seen
     "signatures": ["..."]}                         optional: exact finding signatures

A finding is known when its signature names the id in brackets - the model marks a
mismatch so (`mismatch OP.FIELD [id]`, fuzz.compare.Mismatch.signature) when the
kernel's result is exactly what that bug gives while the model predicts what the
uAPI documents (Model.known_bug) - or when the signature is one of the entry's
`signatures` (a splat's title signature, say). Adding a bug: its reproducer under
reproducers/, an entry here, and, for a model-detected one, the model's check.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from fuzz.paths import REPO

KNOWN_FILE = REPO / "reproducers" / "known.json"


@dataclass(frozen=True)
class KnownBug:
    id: str
    title: str
    report: str
    kernels: str = ""
    signatures: tuple[str, ...] = ()


@cache
def _load(path: Path) -> tuple[KnownBug, ...]:
    if not path.exists():
        return ()
    try:
        doc = json.loads(path.read_text())
        return tuple(KnownBug(e["id"], e["title"], e["report"], e.get("kernels", ""),
                              tuple(e.get("signatures", ()))) for e in doc)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SystemExit(f"iommufd-fuzz: {path}: not a list of known bugs "
                         f"({{id, title, report}} each): {e}") from None


def known_bugs(path: Path = KNOWN_FILE) -> tuple[KnownBug, ...]:
    return _load(path)


def match(signature: str, path: Path = KNOWN_FILE) -> KnownBug | None:
    """The known bug a finding's signature is, if any."""
    for bug in known_bugs(path):
        if f"[{bug.id}]" in signature or signature in bug.signatures:
            return bug
    return None
