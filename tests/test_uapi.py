"""fuzz.uapi checked against the real Linux 6.12 headers, and the op descriptions against fuzz.uapi.

The probe compiles the 6.12 iommufd.h, vfio.h and iommufd_test.h with gcc and prints every
struct size, field offset/size and constant that fuzz.uapi defines. A missing kernel tree or
compiler is a failure, never a skip: an unchecked layout silently corrupts every ioctl.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from fuzz import uapi
from fuzz.prog import types as T
from fuzz.prog.descriptions import OPS

# Header in the kernel tree -> where the probe includes it from (inside a temp dir put first
# on the include path, so the 6.12 copies shadow the older /usr/include/linux/vfio.h).
HEADERS = {
    "include/uapi/linux/iommufd.h": "linux/iommufd.h",
    "include/uapi/linux/vfio.h": "linux/vfio.h",
    "include/uapi/linux/capability.h": "linux/capability.h",
    "include/uapi/asm-generic/poll.h": "asm-generic/poll.h",
    "drivers/iommu/iommufd/iommufd_test.h": "iommufd_test.h",
}

# Samples for the _IOR/_IOW/_IOWR helpers, which the _IO-only uAPI requests do not exercise:
# (macro, nr, C type whose size is encoded).
ENCODINGS = [
    ("_IOR", 0x01, "__u64"),
    ("_IOW", 0x7F, "__u32"),
    ("_IOWR", 0xFF, "struct iommu_test_cmd"),
    ("_IOWR", 0x80, "struct vfio_iommu_type1_dma_unmap"),
]


def _source_tree() -> Path:
    """$IOMMUFD_FUZZ_KSRC if set, else the pinned Debian source (installed and
    extracted by fuzz.kernel.source_tree() if need be)."""
    env = os.environ.get("IOMMUFD_FUZZ_KSRC")
    if env:
        return Path(env)
    from fuzz import kernel

    try:
        return kernel.source_tree()
    except kernel.KernelError as e:
        pytest.fail(f"cannot get the Linux 6.12 source: {e}")


@pytest.fixture(scope="module")
def ksrc() -> Path:
    tree = _source_tree()
    missing = [h for h in HEADERS if not (tree / h).is_file()]
    if missing:
        pytest.fail(f"Linux 6.12 source tree not usable at {tree} (missing {missing})")
    makefile = (tree / "Makefile").read_text()
    version = re.search(r"^VERSION = (\d+)\nPATCHLEVEL = (\d+)", makefile, re.MULTILINE)
    if not version or version.groups() != ("6", "12"):
        pytest.fail(f"{tree} is not a Linux 6.12 tree (Makefile says "
                    f"{version.groups() if version else 'nothing'})")
    return tree


def _probe_source() -> str:
    lines = [
        "#include <stdio.h>",
        "#include <stddef.h>",
        "#include <linux/ioctl.h>",
        "#include <linux/iommufd.h>",
        "#include <linux/vfio.h>",
        "#include <linux/capability.h>",
        "#include <linux/poll.h>",
        '#include "iommufd_test.h"',
        "int main(void) {",
    ]
    for st in uapi.STRUCTS:
        lines.append(f'  printf("size\\t{st}\\t\\t%zu\\n", sizeof({st}));')
        for path in uapi.fields(st):
            off = f"offsetof({st}, {path})"
            if uapi.field_offset(st, path)[1] == 0:
                # Flexible array member: sizeof is not allowed on it.
                lines.append(f'  printf("field\\t{st}\\t{path}\\t%zu 0\\n", {off});')
            else:
                size = f"sizeof((({st} *)0)->{path})"
                lines.append(f'  printf("field\\t{st}\\t{path}\\t%zu %zu\\n", {off}, {size});')
    for name in uapi.CONST:
        lines.append(f'  printf("const\\t{name}\\t\\t%llu\\n", (unsigned long long)({name}));')
    for i, (macro, nr, ctype) in enumerate(ENCODINGS):
        value = f"(unsigned long)({macro}(0x3b, {nr}, {ctype}))"
        lines.append(f'  printf("ioc\\t{i}\\t\\t%lu\\n", {value});')
    lines += ["  return 0;", "}"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def probe(ksrc: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, ...], str]:
    """Compile and run the probe; returns {(kind, name, path): "numbers"}."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.fail("gcc not found: it is needed to check fuzz.uapi against the kernel headers")
    work = tmp_path_factory.mktemp("uapi_probe")
    inc = work / "include"
    for src, dst in HEADERS.items():
        (inc / dst).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ksrc / src, inc / dst)
    (work / "probe.c").write_text(_probe_source())
    # Raw (not headers_install'ed) uAPI headers still say __user; userspace defines it away.
    cmd = [gcc, "-std=gnu11", "-Wall", "-Werror", "-D__user=", f"-I{inc}",
           "-MD", "-MF", str(work / "probe.d"), "-o", str(work / "probe"), str(work / "probe.c")]
    built = subprocess.run(cmd, check=False, capture_output=True, text=True)
    assert built.returncode == 0, f"probe failed to compile:\n{built.stderr}"

    # Make sure the 6.12 copies, not /usr/include's older ones, were the ones compiled.
    deps = (work / "probe.d").read_text().replace("\\\n", " ").split()
    for dst in HEADERS.values():
        used = [d for d in deps if d.endswith("/" + dst)]
        assert used == [str(inc / dst)], f"{dst}: compiled {used}, expected the 6.12 copy"

    ran = subprocess.run([str(work / "probe")], capture_output=True, text=True, check=True)
    out: dict[tuple[str, ...], str] = {}
    for line in ran.stdout.splitlines():
        kind, name, path, nums = line.split("\t")
        out[(kind, name, path)] = nums
    return out


def test_struct_sizes(probe: dict[tuple[str, ...], str]) -> None:
    bad = [f"{st}: uapi {uapi.sizeof(st)}, C {probe[('size', st, '')]}"
           for st in uapi.STRUCTS if str(uapi.sizeof(st)) != probe[("size", st, "")]]
    assert not bad, "struct sizes differ from the 6.12 headers:\n" + "\n".join(bad)


def test_field_offsets(probe: dict[tuple[str, ...], str]) -> None:
    bad = []
    for st in uapi.STRUCTS:
        for path in uapi.fields(st):
            offset, size = uapi.field_offset(st, path)
            mine = f"{offset} {size}"
            theirs = probe[("field", st, path)]
            if mine != theirs:
                bad.append(f"{st} .{path}: uapi (offset size) {mine}, C {theirs}")
    assert not bad, "field layouts differ from the 6.12 headers:\n" + "\n".join(bad)


def test_constants(probe: dict[tuple[str, ...], str]) -> None:
    bad = [f"{n}: uapi {v:#x}, C {int(probe[('const', n, '')]):#x}"
           for n, v in uapi.CONST.items() if str(v) != probe[("const", n, "")]]
    assert not bad, "constants differ from the 6.12 headers:\n" + "\n".join(bad)
    assert set(uapi.REQUESTS) <= set(uapi.CONST)
    assert set(uapi.TEST_OPS) <= set(uapi.CONST)


def _struct_bodies(text: str) -> dict[str, list[str]]:
    """Struct name -> its body as normalized tokens, for top-level `struct x {...};`."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.DOTALL)
    text = re.sub(r"//[^\n]*", " ", text)
    # #defines inside struct bodies (vfio.h puts flag values there)
    text = re.sub(r"^\s*#[^\n]*(\\\n[^\n]*)*", " ", text, flags=re.MULTILINE)
    types = {"__aligned_u64": "uint64_t", "__u64": "uint64_t", "__u32": "uint32_t",
             "__u16": "uint16_t", "__u8": "uint8_t", "__user": ""}
    bodies: dict[str, list[str]] = {}
    for m in re.finditer(r"^struct\s+(\w+)\s*\{", text, flags=re.MULTILINE):
        depth, i = 1, m.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        tokens = re.findall(r"\w+|[^\w\s]", text[m.end():i - 1])
        bodies[m.group(1)] = [t for t in (types.get(t, t) for t in tokens) if t]
    return bodies


def test_cdef_transcribes_headers(ksrc: Path) -> None:
    # Sizes and offsets cannot see a field dropped into what would be padding anyway
    # (e.g. a __reserved before an 8-aligned member); comparing the text can.
    theirs: dict[str, list[str]] = {}
    for src in HEADERS:
        theirs.update(_struct_bodies((ksrc / src).read_text()))
    mine = _struct_bodies(uapi._CDEF)
    assert set(mine) == {st.removeprefix("struct ") for st in uapi.STRUCTS}
    bad = [name for name in mine if mine[name] != theirs.get(name)]
    assert not bad, f"cdef differs from the 6.12 headers for: {bad}"
    # Every struct of iommufd.h and iommufd_test.h is bound, not just the ones ops use.
    for src in ("include/uapi/linux/iommufd.h", "drivers/iommu/iommufd/iommufd_test.h"):
        missing = set(_struct_bodies((ksrc / src).read_text())) - set(mine)
        assert not missing, f"{src} structs missing from fuzz.uapi: {sorted(missing)}"


def test_ioctl_encoding_helpers(probe: dict[tuple[str, ...], str]) -> None:
    helpers = {"_IOR": uapi._IOR, "_IOW": uapi._IOW, "_IOWR": uapi._IOWR}
    for i, (macro, nr, ctype) in enumerate(ENCODINGS):
        size = uapi.sizeof(ctype) if ctype.startswith("struct ") else int(ctype[3:]) // 8
        assert str(helpers[macro](0x3B, nr, size)) == probe[("ioc", str(i), "")], (macro, ctype)
    assert uapi.request("IOMMU_TEST_CMD") == uapi._IO(ord(";"), 0x80 + 32)
    with pytest.raises(KeyError):
        uapi.request("IOMMU_IOAS_MAP_FIXED_IOVA")  # a flag, not an ioctl
    with pytest.raises(KeyError):
        uapi.test_op("IOMMU_TEST_OP_NOPE")


@pytest.mark.parametrize("name", sorted(OPS))
def test_description_resolves(name: str) -> None:
    """Every description names a real request, struct, field and uAPI constant, every
    argument it relates to exists, and every object kind and state is known."""
    d = OPS[name]
    if d.call == T.CLOSE:
        assert not d.request and not d.struct
    elif d.call == T.FDIO:
        assert d.request in ("read", "write", "poll") and not d.struct
    else:
        assert isinstance(uapi.request(d.request), int)
    if d.call == T.TEST:
        assert d.request == "IOMMU_TEST_CMD"
        assert isinstance(uapi.test_op(d.test_op), int)
    else:
        assert not d.test_op
    names = {a.name for a in d.args}
    for a in d.args:
        t = a.type
        if isinstance(t, (T.Flags, T.Enum)):
            for const, value in (t.flags.bits if isinstance(t, T.Flags) else t.enum.values):
                assert uapi.CONST[const] == value, (name, a.name, const)
        if isinstance(t, T.Res):
            assert all(k in T.KIND_PARENT for k in t.kinds), (name, a.name, t.kinds)
        for rel in (getattr(t, "space", ""), getattr(t, "of", ""), getattr(t, "count", ""),
                    getattr(t, "array", ""), getattr(t, "pointer", ""),
                    getattr(t, "size_by", ""), getattr(t, "length", "")):
            assert rel in ("", "compat") or rel in names, (name, a.name, rel)
        if isinstance(t, (T.InSide, T.Entries)):
            # side array contents: no field of the struct, a field of the side array's type
            ptr = d.arg(t.pointer)
            assert a.path == "" and ptr is not None and isinstance(ptr.type, T.Uptr)
            assert ptr.type.side, (name, a.name)
            if isinstance(t, T.InSide):
                uapi.field_offset(ptr.type.side, t.field)
    for o in d.outs:
        assert o.kind is None or o.kind in T.KIND_PARENT, (name, o.name)
        for r in o.refine:
            assert r.kind in T.KIND_PARENT and T.is_kind(r.kind, o.kind or ""), (name, r)
            assert all(arg in names for arg, _, _ in r.when), (name, r)
        assert not o.on or o.on in names
        assert not o.array or o.array in names, (name, o.name)
    for f in d.forms:
        assert all(arg in names for arg, _ in f.args), (name, f.name)
    provided = {p.state for x in OPS.values() for p in x.provides}
    assert set(d.needs) <= provided, (name, d.needs)
    for p in d.provides:
        assert all(k in names for k, _ in p.when) and all(k in names for k, _ in p.kinds)

    if d.request == "poll":  # a struct pollfd by value: its fields, where the header has them
        assert all((a.offset, a.width) == uapi.field_offset("struct pollfd", a.path)
                   for a in d.args) and {a.path for a in d.args} == set(uapi.fields(
                       "struct pollfd"))
        return
    if not d.struct:
        assert d.call in (T.CLOSE, T.VFIO_VAL, T.FDIO)
        assert all(a.path == "" and a.width in (4, 8) for a in d.args)
        block = sorted((a.offset, a.offset + a.width) for a in d.args
                       if not isinstance(a.type, (T.InSide, T.Entries)))
        assert all(x[1] <= y[0] for x, y in zip(block, block[1:])), "arguments overlap"
        return
    assert uapi.sizeof(d.struct) > 0
    # copy_struct_from_user / argsz checks read a u32 at offset 0.
    assert uapi.field_offset(d.struct, d.size_field) == (0, 4)
    for a in d.args:
        if isinstance(a.type, (T.InSide, T.Entries)):
            continue  # checked above: they go into a side array
        try:
            _, size = uapi.field_offset(d.struct, a.path)
        except KeyError as e:
            pytest.fail(f"{name}.{a.name}: {e}")
        assert size == a.width
        if isinstance(a.type, (T.Uptr, T.Ranges, T.Iova)):
            assert a.width == 8, f"{name}.{a.name}: an address in a {a.width}-byte field"
    for o in d.outs:
        if o.decode == "int":
            try:
                uapi.field_offset(d.struct, d.path(o.name))
            except KeyError:
                pytest.fail(f"{name}: output {o.name!r} is not a field of {d.struct}")
    if d.maps is not None:
        assert d.maps.space in names | {"compat"} and d.maps.length in names
        assert d.maps.iova in names or d.out(d.maps.iova) is not None
