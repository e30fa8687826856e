"""The uAPI structs as reproducers spell them: C text straight from fuzz.uapi's cdef
(the one transcription of the headers, checked against them by tests/test_uapi.py),
and ctypes classes generated from the same text for repro.py."""

from __future__ import annotations

import re
from functools import cache

from fuzz import uapi


@cache
def cdef_blocks() -> dict[str, str]:
    """'struct name' -> its full definition text, in header order."""
    text = uapi._CDEF  # the one transcription of the headers; reused, never retyped
    blocks: dict[str, str] = {}
    lines = text.splitlines()
    k = 0
    while k < len(lines):
        line = lines[k]
        if line.startswith("struct ") and line.rstrip().endswith("{"):
            name = "struct " + line.split()[1]
            depth, body = 0, []
            while True:
                cur = lines[k]
                body.append(cur)
                depth += cur.count("{") - cur.count("}")
                k += 1
                if depth == 0:
                    break
            blocks[name] = "\n".join(body)
        else:
            k += 1
    return blocks


def _deps(block: str) -> list[str]:
    head = block.split("\n", 1)[0].split()[1]
    return [f"struct {m}" for m in re.findall(r"\bstruct\s+(\w+)\s+\w", block) if m != head]


def needed_structs(names: set[str]) -> list[str]:
    """These structs plus what they embed, in header order."""
    blocks = cdef_blocks()
    want = set(names)
    todo = list(want)
    while todo:
        for d in _deps(blocks[todo.pop()]):
            if d not in want:
                want.add(d)
                todo.append(d)
    return [n for n in blocks if n in want]


_TOKEN = re.compile(r"[A-Za-z_]\w*|\d+|[{}\[\];*]")
_CTYPES = {"uint8_t": "ctypes.c_uint8", "uint16_t": "ctypes.c_uint16",
           "uint32_t": "ctypes.c_uint32", "uint64_t": "ctypes.c_uint64",
           "int": "ctypes.c_int", "short": "ctypes.c_short"}  # struct pollfd


class _CtypesGen:
    """Turns one cdef struct into ctypes classes (anonymous unions get _anonymous_)."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.count = 0

    def struct(self, block: str) -> None:
        toks = _TOKEN.findall(block)
        assert toks[0] == "struct" and toks[2] == "{"
        self._members(toks, 3, toks[1], "Structure")

    def _members(self, toks: list[str], k: int, cls: str, base: str) -> int:
        fields: list[str] = []
        anon: list[str] = []
        while toks[k] != "}":
            if toks[k] in ("struct", "union") and toks[k + 1] == "{":
                self.count += 1
                kind = "Structure" if toks[k] == "struct" else "Union"
                inner = f"_{cls.lstrip('_')}_{self.count}"
                k = self._members(toks, k + 2, inner, kind)
                if toks[k] == ";":  # anonymous member
                    member = f"_anon{self.count}"
                    anon.append(member)
                    fields.append(f'("{member}", {inner})')
                    k += 1
                    continue
                ctype = inner
            elif toks[k] == "struct":
                ctype = toks[k + 1]
                k += 2
            else:
                ctype = _CTYPES[toks[k]]
                k += 1
            if toks[k] == "*":
                ctype = "ctypes.c_void_p"
                k += 1
            name = toks[k]
            k += 1
            if toks[k] == "[":
                if toks[k + 1] == "]":
                    ctype, k = f"{ctype} * 0", k + 2
                else:
                    ctype, k = f"{ctype} * {toks[k + 1]}", k + 3
            assert toks[k] == ";", toks[k - 3:k + 1]
            k += 1
            fields.append(f'("{name}", {ctype})')
        lines = [f"class {cls}(ctypes.{base}):"]
        if anon:
            lines.append(f"    _anonymous_ = ({', '.join(repr(a) for a in anon)},)")
        lines.append("    _fields_ = [")
        lines += [f"        {f}," for f in fields]
        lines.append("    ]")
        self.out.append("\n".join(lines))
        return k + 1


def ctypes_classes(names: list[str]) -> str:
    blocks = cdef_blocks()
    gen = _CtypesGen()
    for n in names:
        gen.struct(blocks[n])
    return "\n\n\n".join(gen.out)
