"""KCOV PCs -> source lines of drivers/iommu/iommufd/, from the vmlinux line tables.

A KCOV PC is the return address of a call to __sanitizer_cov_trace_pc, and the
compiler puts one such call at the start of every basic block. So the call
sites in the iommufd functions are exactly the blocks KCOV can report, and the
map is built from them rather than from whatever a run happened to hit:

- every `call __sanitizer_cov_trace_pc` (e8 rel32) in the text of the iommufd
  compile units is a site; its PC is the call's address + 5;
- a site owns the code from its call up to the next site's call in the same
  function (the code before a function's first site belongs to that site), and
  so the line-table rows in that code: the lines of its block (a row with no
  instructions of its own, a statement merged into the next one, goes with the
  code at its address);
- a line is *reachable* when a site that KCOV can observe owns it, and *reached*
  when such a site was hit. Sites KCOV cannot observe are left out: .init.text
  runs before any task traces, and a tail call (`jmp __sanitizer_cov_trace_pc`)
  reports its caller's return address instead of its own.

The definition depends only on the kernel build, so percentages are comparable
from run to run. The map is cached per vmlinux (path, size, mtime).
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import struct
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from fuzz.paths import cache_dir

SUBDIR = "drivers/iommu/iommufd/"
TRACE_PC = "__sanitizer_cov_trace_pc"
CACHE_VERSION = 1
LOW = 0xFFFFFFFF  # KCOV PCs travel as their low 32 bits (kernel text is 0xffffffff8...)


class LineMapError(RuntimeError):
    """The vmlinux cannot be mapped (no line tables, no KCOV, no iommufd)."""


@dataclass
class LineMap:
    """The iommufd part of one kernel build, as KCOV sees it."""

    vmlinux: str
    src_root: str  # the tree the line tables name; files[] are relative to it
    files: list[str]
    site_pcs: list[int]  # sorted low PCs of the observable sites
    site_lines: list[list[int]]  # per site: file_index << 20 | line, lines in SUBDIR only
    ranges: list[tuple[int, int]]  # low-PC ranges holding every site (for filtering)
    stats: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._index = {pc: k for k, pc in enumerate(self.site_pcs)}

    # -- queries ------------------------------------------------------------------
    def sites_of(self, pcs: Iterable[int]) -> set[int]:
        """Site indices among these PCs (low halves or full; others are ignored)."""
        idx = self._index
        return {k for k in (idx.get(pc & LOW) for pc in pcs) if k is not None}

    def reachable(self) -> dict[str, set[int]]:
        return self._lines(range(len(self.site_pcs)))

    def reachable_count(self) -> int:
        if not hasattr(self, "_nreach"):
            self._nreach = sum(len(v) for v in self.reachable().values())
        return self._nreach

    def reached_count(self, pcs: Iterable[int]) -> int:
        return sum(len(v) for v in self.lines_of(pcs).values())

    def lines_of(self, pcs: Iterable[int]) -> dict[str, set[int]]:
        return self._lines(self.sites_of(pcs))

    def line_counts(self, counts: dict[int, int]) -> dict[str, dict[int, int]]:
        """Per line: the largest count of a site that owns it (counts: pc -> n)
        for every reachable line, 0 where no owning site was hit."""
        out: dict[str, dict[int, int]] = {f: dict.fromkeys(ls, 0)
                                          for f, ls in self.reachable().items()}
        for pc, n in counts.items():
            k = self._index.get(pc & LOW)
            if k is None:
                continue
            for code in self.site_lines[k]:
                d = out[self.files[code >> 20]]
                line = code & 0xFFFFF
                d[line] = max(d[line], n)
        return out

    def _lines(self, sites: Iterable[int]) -> dict[str, set[int]]:
        out: dict[str, set[int]] = {}
        for k in sites:
            for code in self.site_lines[k]:
                out.setdefault(self.files[code >> 20], set()).add(code & 0xFFFFF)
        return out

    # -- cache -------------------------------------------------------------------------
    def to_json(self) -> dict:
        return {"version": CACHE_VERSION, "vmlinux": self.vmlinux, "src_root": self.src_root,
                "files": self.files, "site_pcs": self.site_pcs, "site_lines": self.site_lines,
                "ranges": self.ranges, "stats": self.stats}

    @classmethod
    def from_json(cls, d: dict) -> LineMap:
        return cls(d["vmlinux"], d["src_root"], d["files"], d["site_pcs"], d["site_lines"],
                   [tuple(r) for r in d["ranges"]], d.get("stats", {}))  # type: ignore[misc]


def _cache_path(vmlinux: Path) -> Path:
    st = vmlinux.stat()
    key = hashlib.sha256(f"{CACHE_VERSION}\n{vmlinux.resolve()}\n{st.st_size}\n"
                         f"{st.st_mtime_ns}".encode()).hexdigest()[:20]
    return cache_dir() / "coverage" / f"linemap-{key}.json"


_loaded: dict[Path, LineMap] = {}


def line_map(kernel_dir: Path) -> LineMap:
    """The map for this kernel build: from memory, the cache, or built (seconds)."""
    vmlinux = (kernel_dir / "vmlinux").resolve()
    if vmlinux in _loaded:
        return _loaded[vmlinux]
    if not vmlinux.exists():
        raise LineMapError(f"{vmlinux}: no such file (the kernel dir needs its vmlinux)")
    path = _cache_path(vmlinux)
    lm = None
    try:
        d = json.loads(path.read_text())
        if d.get("version") == CACHE_VERSION:
            lm = LineMap.from_json(d)
    except (OSError, ValueError, KeyError):
        pass
    if lm is None:
        lm = build_line_map(vmlinux)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".linemap-", dir=path.parent)
        with os.fdopen(fd, "w") as f:
            json.dump(lm.to_json(), f)
        os.replace(tmp, path)
    _loaded[vmlinux] = lm
    return lm


# -- building the map -------------------------------------------------------------------
@dataclass
class _Seq:
    rows: list[tuple[int, int, int]]  # (address, file index in files[] or -1, line)
    end: int


def _iommufd_sequences(elf, files: list[str], roots: set[str]) -> list[_Seq]:  # type: ignore[no-untyped-def]
    """The line-table sequences of the compile units in SUBDIR; rows' files are
    indices into files (relative paths), -1 for files elsewhere (headers)."""
    dw = elf.get_dwarf_info(relocate_dwarf_sections=False)
    fidx: dict[str, int] = {}
    seqs: list[_Seq] = []
    for cu in dw.iter_CUs():
        top = cu.get_top_DIE()
        name = top.attributes.get("DW_AT_name")
        cu_name = name.value.decode() if name else ""
        if SUBDIR not in cu_name:
            continue
        roots.add(cu_name[:cu_name.index(SUBDIR)])
        lp = dw.line_program_for_CU(cu)
        if lp is None:
            continue
        ver = lp.header["version"]
        dirs = [d.decode() for d in lp["include_directory"]]
        if ver < 5:  # DWARF 4: index 0 is the comp dir, implicit
            comp = top.attributes.get("DW_AT_comp_dir")
            dirs = [comp.value.decode() if comp else ""] + dirs
        paths = []
        for fe in lp["file_entry"]:
            p = fe.name.decode()
            if not p.startswith("/"):
                p = os.path.join(dirs[fe.dir_index], p)
            p = os.path.normpath(p)
            if SUBDIR in p:
                rel = p[p.index(SUBDIR):]
                paths.append(fidx.setdefault(rel, len(fidx)))
            else:
                paths.append(-1)
        base = 0 if ver >= 5 else 1
        rows: list[tuple[int, int, int]] = []
        for e in lp.get_entries():
            st = e.state
            if st is None:
                continue
            if st.end_sequence:
                if rows:
                    seqs.append(_Seq(rows, st.address))
                rows = []
                continue
            k = st.file - base
            rows.append((st.address, paths[k] if 0 <= k < len(paths) else -1, st.line))
    files[:] = [None] * len(fidx)  # type: ignore[list-item]
    for rel, k in fidx.items():
        files[k] = rel
    return seqs


def _functions(elf) -> tuple[list[int], list[int]]:  # type: ignore[no-untyped-def]
    symtab = elf.get_section_by_name(".symtab")
    if symtab is None:
        raise LineMapError("vmlinux has no symbol table")
    spans = sorted((s["st_value"], s["st_value"] + s["st_size"]) for s in symtab.iter_symbols()
                   if s["st_info"]["type"] == "STT_FUNC" and s["st_size"] > 0)
    return [a for a, _ in spans], [b for _, b in spans]


def _trace_pc_address(elf) -> int:  # type: ignore[no-untyped-def]
    for s in elf.get_section_by_name(".symtab").iter_symbols():
        if s.name == TRACE_PC:
            return s["st_value"]
    raise LineMapError(f"vmlinux has no {TRACE_PC}: the kernel was built without KCOV")


def _text(elf, lo: int, hi: int, cache: dict) -> tuple[bytes, str]:  # type: ignore[no-untyped-def]
    for sec in elf.iter_sections():
        a = sec["sh_addr"]
        if sec["sh_type"] == "SHT_PROGBITS" and a <= lo and hi <= a + sec["sh_size"]:
            if sec.name not in cache:
                cache[sec.name] = sec.data()
            return cache[sec.name][lo - a:hi - a], sec.name
    raise LineMapError(f"no section holds {lo:#x}-{hi:#x}")


def _calls(code: bytes, base: int, target: int) -> tuple[list[int], list[int]]:
    """Addresses of `call target` and `jmp target` (rel32) in code. A false hit needs
    five bytes to match by chance, so scanning bytes is as good as disassembling."""
    found: tuple[list[int], list[int]] = ([], [])
    for which, op in enumerate((0xE8, 0xE9)):
        i = code.find(op)
        while 0 <= i <= len(code) - 5:
            rel = struct.unpack_from("<i", code, i + 1)[0]
            if base + i + 5 + rel == target:
                found[which].append(base + i)
            i = code.find(op, i + 1)
    return found


def build_line_map(vmlinux: Path) -> LineMap:
    try:
        from elftools.elf.elffile import ELFFile
    except ImportError:
        raise LineMapError("pyelftools is missing (pip install pyelftools; setup does)") from None
    with open(vmlinux, "rb") as f:
        elf = ELFFile(f)
        if not elf.has_dwarf_info():
            raise LineMapError(f"{vmlinux} has no DWARF line tables")
        files: list[str] = []
        roots: set[str] = set()
        seqs = _iommufd_sequences(elf, files, roots)
        if not seqs:
            raise LineMapError(f"{vmlinux}: no compile units in {SUBDIR}")
        fstart, fend = _functions(elf)
        target = _trace_pc_address(elf)
        sites: dict[int, set[int]] = {}  # call address -> owned lines
        observable: set[int] = set()
        stats = {"sites": 0, "tail_call_sites": 0, "init_sites": 0, "cus_sequences": len(seqs)}
        ranges: list[tuple[int, int]] = []
        sections: dict[str, bytes] = {}
        for seq in seqs:
            lo, hi = seq.rows[0][0], seq.end
            code, secname = _text(elf, lo, hi, sections)
            calls, jumps = _calls(code, lo, target)
            init = secname.startswith((".init", ".exit"))
            stats["sites"] += len(calls)
            stats["tail_call_sites"] += len(jumps)
            if init:
                stats["init_sites"] += len(calls)
            else:
                observable.update(calls)
            marks = sorted(calls + jumps)
            if not marks:
                continue
            ranges.append(((lo + 5) & LOW, (hi + 5) & LOW))
            for c in marks:
                sites[c] = set()
            # each row's code [a, b) belongs to the site owning a and to every site in (a, b)
            for (a, file, line), nxt in zip(seq.rows, seq.rows[1:] + [(hi, -1, 0)]):
                b = nxt[0]
                if file < 0 or line <= 0:
                    continue  # code of a header outside SUBDIR
                # An empty row (several at one address) is a statement that got no
                # instructions of its own; it runs when the code at its address does.
                fn = bisect.bisect_right(fstart, a) - 1
                f0, f1 = (fstart[fn], fend[fn]) if fn >= 0 and a < fend[fn] else (lo, hi)
                k = bisect.bisect_right(marks, a) - 1
                owner = marks[k] if k >= 0 and marks[k] >= f0 else None
                if owner is None:  # before the function's first site: the entry block's
                    j = bisect.bisect_left(marks, f0)
                    owner = marks[j] if j < len(marks) and marks[j] < f1 else None
                code_line = file << 20 | line
                if owner is not None:
                    sites[owner].add(code_line)
                j = bisect.bisect_right(marks, a)
                while j < len(marks) and marks[j] < b:
                    sites[marks[j]].add(code_line)
                    j += 1
    seen = sorted(c for c in sites if c in observable)
    all_lines = {x for s in sites.values() for x in s}
    seen_lines = {x for c in seen for x in sites[c]}
    stats["lines_with_code"] = len(all_lines)
    stats["lines_unobservable"] = len(all_lines - seen_lines)
    return LineMap(vmlinux=str(vmlinux), src_root=sorted(roots)[0], files=files,
                   site_pcs=[(c + 5) & LOW for c in seen],
                   site_lines=[sorted(sites[c]) for c in seen], ranges=sorted(ranges),
                   stats=stats)
