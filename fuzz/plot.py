"""Coverage and findings over time, from a campaign's stats.jsonl, as a PNG."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from fuzz.prog.jsonio import InputError, read_text

NEEDED = {"t": (int, float), "edges": (int,), "findings": (int,), "programs": (int,)}


def read_rows(stats: Path) -> list[dict]:
    """The campaign's status lines; a damaged line (cut short by a kill, a key
    missing, a value of the wrong type) is named and skipped."""
    rows = []
    for n, line in enumerate(read_text(stats).splitlines(), 1):
        try:
            row = json.loads(line)
        except (ValueError, RecursionError):
            print(f"{stats}:{n}: skipping a damaged line", file=sys.stderr)
            continue
        if not isinstance(row, dict):
            print(f"{stats}:{n}: skipping a line that is not a JSON object", file=sys.stderr)
            continue
        bad = [k for k, t in NEEDED.items() if not isinstance(row.get(k), t)
               or isinstance(row.get(k), bool)]
        if bad:
            print(f"{stats}:{n}: skipping a line without {', '.join(bad)}", file=sys.stderr)
            continue
        if not isinstance(row.get("iommufd_lines_pct"), (int, float, type(None))):
            row.pop("iommufd_lines_pct")
        rows.append(row)
    if not rows:
        raise InputError(f"{stats}: no stats lines to plot (each needs "
                         f"{', '.join(NEEDED)})")
    return rows


def plot(stats: Path, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    rows = read_rows(stats)
    t = [r["t"] / 60 for r in rows]
    pct = [(r["t"] / 60, r["iommufd_lines_pct"]) for r in rows if "iommufd_lines_pct" in r]
    if pct:  # campaigns since the line figures: a second panel
        fig, (ax, ax3) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 2]})
        ax3.plot([x for x, _ in pct], [y for _, y in pct], color="tab:green")
        ax3.set_ylabel("iommufd lines reached (%)", color="tab:green")
        ax3.set_xlabel("minutes")
        ax3.set_ylim(0, 100)
        ax3.grid(True, alpha=0.3)
    else:
        fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(t, [r["edges"] for r in rows], color="tab:blue", label="kernel edges")
    if not pct:
        ax.set_xlabel("minutes")
    ax.set_ylabel("kernel edges (KCOV)", color="tab:blue")
    ax2 = ax.twinx()
    ax2.step(t, [r["findings"] for r in rows], color="tab:red", where="post", label="findings")
    ax2.set_ylabel("findings", color="tab:red")
    ax2.set_ylim(0, max(1, max(r["findings"] for r in rows)) * 1.1)
    ax2.yaxis.set_major_locator(MaxNLocator(integer=True))
    lines = f", iommufd lines {pct[-1][1]:.1f}%" if pct else ""
    ax.set_title(f"iommufd-fuzz campaign: {rows[-1]['programs']} programs, "
                 f"{rows[-1]['edges']} edges{lines}, {rows[-1]['findings']} findings")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    return out
