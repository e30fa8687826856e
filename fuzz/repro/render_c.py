"""repro.c: the walk (fuzz/repro/walk.py) spelled in C; `gcc repro.c` needs no
kernel headers (the uAPI structs are inlined from fuzz.uapi's cdef text)."""

from __future__ import annotations

import errno as _errno
import json
import re
from pathlib import Path

from fuzz import uapi
from fuzz.prog import BUF_BASE, BUF_STRIDE, Buffer, BufPtr, Creds, Program, Ref, Value
from fuzz.prog.ir import SCRATCH_ADDR
from fuzz.prog.layout import entry_fields
from fuzz.prog.limits import (
    CAPTURE_MAX,
    MAX_BUFFERS,
    MAX_FDS,
    MAX_OPS,
    TEST_MEMORY_LIMIT_DEFAULT,
)
from fuzz.prog.types import FD_CALLS, FDIO, TEST, VFIO_VAL
from fuzz.repro.cstructs import cdef_blocks, needed_structs
from fuzz.repro.expect import Expectation, canon
from fuzz.repro.walk import OpPlan, io_form, member, ref_source, render, runs_of, side_var
from fuzz.result import OpResult

RUNTIME = Path(__file__).with_name("runtime.c")
_CONSTANTS = re.compile(r"/\* --- constants:.*?/\* --- end of constants --- \*/\n", re.S)


def runtime_constants() -> dict[str, int]:
    """What the runtime's block of constants must say."""
    return {"CAPTURE_MAX": CAPTURE_MAX, "MAX_OPS": MAX_OPS, "MAX_FDS": MAX_FDS,
            "MAX_BUFFERS": MAX_BUFFERS,
            "VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE": uapi.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
            "VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL": uapi.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL}


def runtime_text() -> str:
    """fuzz/repro/runtime.c without its header comment, constants from their sources."""
    text = RUNTIME.read_text()
    text = text[text.index("*/") + 2:].lstrip("\n")
    block = ("/* constants (from fuzz.uapi and fuzz.prog.limits) */\n"
             + "".join(f"#define {k} {v}\n" for k, v in runtime_constants().items()))
    return _CONSTANTS.sub(block, text)


def c_int(v: int, width: int = 8) -> str:
    v %= 1 << (8 * width)
    if v <= 9:
        return str(v)
    return f"{v:#x}" + ("ULL" if v > 0x7FFFFFFF else "")


def c_string(s: str) -> str:
    return json.dumps(s)  # a JSON string is a valid C string literal for printable text


class CRenderer:
    def __init__(self) -> None:
        self.head: list[str] = []
        self.body: list[str] = []
        self.plans: list[OpPlan] = []
        self.funcs: list[list[str]] = []  # one per earlier program (history)
        # the finding's program's body, plans and race-group ops while an earlier one is walked
        self._main: tuple[list[str], list[OpPlan], set[int]] | None = None
        self.runs = 1
        self.signature = ""
        self.grouped: set[int] = set()  # ops of race groups: their lines print after the join

    # -- values ---------------------------------------------------------------------
    @staticmethod
    def lvalue(p: OpPlan, path: str) -> str:
        return f"{p.var}.s.{member(path)}" if p.wrapped else f"{p.var}.{member(path)}"

    def value(self, v: Value, width: int) -> str:
        if isinstance(v, Ref):
            kind, where = ref_source(self.plans, v)
            expr = f"ret[{v.op}]" if kind == "ret" else where if kind == "first" \
                else self.lvalue(self.plans[v.op], where)
            if v.add:
                expr = f"(uint64_t){expr} " + (f"+ {c_int(v.add)}" if v.add > 0
                                              else f"- {c_int(-v.add)}")
            return expr
        if isinstance(v, BufPtr):
            return f"BUF{v.buf}" + (f" + {c_int(v.offset)}" if v.offset else "")
        assert isinstance(v, int), v
        return c_int(v, width)

    # -- the walk ---------------------------------------------------------------------
    def begin(self, header: list[str], prog: Program, plans: list[OpPlan],
              exp: Expectation | None, earlier: list[tuple[Program, list[OpPlan]]] = ()
              ) -> None:
        self.plans = plans
        every = [*plans, *(q for _, ps in earlier for q in ps)]
        nbufs = max([len(prog.buffers), *(len(h.buffers) for h, _ in earlier)])
        self.runs = runs_of(prog, [h for h, _ in earlier])
        self.signature = exp.signature if exp is not None else ""
        L = self.head
        L += ["/*", *(f" * {ln}" for ln in header), " *",
              " * Build: gcc repro.c -o repro      (no kernel headers needed: the 6.12 uAPI",
              " * structs are inlined below). Run as root on a kernel with "
              "CONFIG_IOMMUFD_TEST=y.",
              " * Prints one line per op, then REPRODUCED: <signature> (exit 1) or NOT "
              "REPRODUCED", " * (exit 0)."]
        if self.runs > 1:
            L += [f" * Its ops race on threads: it runs {self.runs} times (REPRO_RUNS=n to "
                  "change that), the", " * ops printed for the first run, and says in how "
                  "many it reproduced."]
        L.append(" */")
        L.append(runtime_text())
        structs = {"struct iommu_test_cmd"}  # the prologue
        for p in every:
            if p.struct is not None:
                structs.update(x for x in (p.desc.struct,) if x)  # read/write have none
                structs.update(s.ctype for s in p.struct.sides)
        L.append("/* uAPI structs from include/uapi/linux/iommufd.h, vfio.h and "
                 "drivers/iommu/iommufd/iommufd_test.h (6.12) */")
        blocks = cdef_blocks()
        for n in needed_structs(structs):
            L += [blocks[n], ""]
        L.append("/* ioctl requests: _IO(';', nr) - iommufd and vfio structs carry their own "
                 "size */")
        reqs = {p.desc.request for p in every
                if p.desc.request and p.desc.call not in FD_CALLS} | {"IOMMU_TEST_CMD"}
        for n in sorted(reqs):
            L.append(f"#define {n} {uapi.request(n):#x} /* {io_form(uapi.request(n))} */")
        tops = sorted({p.desc.test_op for p in every if p.desc.call == TEST}
                      | {"IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT"})
        L += [f"#define {n} {uapi.test_op(n)}" for n in tops]
        for bi in range(nbufs):
            L.append(f"#define BUF{bi} {BUF_BASE + bi * BUF_STRIDE:#x}ULL")
        self.body += [f"int fd, nfds = 0, fds[{MAX_FDS}];", "", "reset_ops();"]

    def begin_earlier(self, k: int, prog: Program, plans: list[OpPlan]) -> None:
        self._main = (self.body, self.plans, self.grouped)
        self.body, self.plans, self.grouped = [f"int fd, nfds = 0, fds[{MAX_FDS}];", "",
                                               "reset_ops();"], plans, set()

    def end_earlier(self, k: int, prog: Program) -> None:
        # its teardown unmapped its buffers and scratch mapping (unmap_buffers), so the
        # next program maps at the same fixed addresses
        self.funcs.append([f"/* history/{k:02d}.json: run before the finding's program, on its "
                           "own iommufd */", f"static void program_{k}(void)", "{"]
                          + ["\t" + ln if ln else "" for ln in self.body] + ["}"])
        assert self._main is not None
        self.body, self.plans, self.grouped = self._main

    def open_kmsg(self) -> None:
        self.body += ["", "/* the kernel log from here on is where a splat would show (any "
                      "program) */", "int kmsg = open(\"/dev/kmsg\", O_RDONLY | O_NONBLOCK);",
                      "lseek(kmsg, 0, SEEK_END);"]

    def call_earlier(self, k: int, prog: Program) -> None:
        self.body += [f"fprintf(out, \"== history/{k:02d}.json\\n\");", f"program_{k}();"]

    def main_program(self) -> None:
        # the op records (faults, threads) are by op index: the earlier programs' go
        self.body += ["fprintf(out, \"== program.json\\n\");", "reset_ops();"]

    def buffers(self, buffers: list[Buffer], scratch: int) -> None:
        B = self.body
        if buffers:
            B += ["", "/* buffers: the same fixed addresses, kinds, contents and holes as the "
                  "fuzzer's */"]
        for bi, b in enumerate(buffers):
            B.append(f"map_buffer(BUF{bi}, {c_int(b.size)}, \"{b.kind}\", {b.seed});")
            for o, n in b.holes:
                B.append(f"munmap((void *)(uintptr_t)(BUF{bi} + {c_int(o)}), {c_int(n)});")
        if scratch:
            B += ["/* the executor's scratch mapping, where pointers the program left out "
                  "point */", f"map_buffer({c_int(SCRATCH_ADDR)}, {c_int(scratch)}, "
                  "\"anon\", 0);"]

    def open_iommufd(self, read_kmsg: bool) -> None:
        B = self.body
        if read_kmsg:
            B += ["", "/* the kernel log from here on is where a splat would show */",
                  "int kmsg = open(\"/dev/kmsg\", O_RDONLY | O_NONBLOCK);",
                  "lseek(kmsg, 0, SEEK_END);"]
        B += ["", "fd = open(\"/dev/iommu\", O_RDWR);", "if (fd < 0)",
              "\tdie(\"open /dev/iommu\");", "",
              "/* the executor's prologue: reset the selftest's global temp memory limit */",
              "struct iommu_test_cmd prologue = {", "\t.size = sizeof(struct iommu_test_cmd),",
              "\t.op = IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT,",
              f"\t.memory_limit = {{ .limit = {TEST_MEMORY_LIMIT_DEFAULT} }},", "};",
              "ioctl(fd, IOMMU_TEST_CMD, &prologue);"]

    def set_creds(self, creds: Creds) -> None:
        self.body += ["", f"/* the program's creds: {creds.describe()} */",
                      f"set_creds({creds.cap_mask:#x}ull, {creds.memlock}ull);"]

    def restore_creds(self, creds: Creds) -> None:
        self.body += [f"restore_creds({creds.cap_mask:#x}ull);", ""]

    def op_comment(self, p: OpPlan, lines: list[str]) -> None:
        self.body += ["", f"/* -- op {p.index}: {p.name} " + "-" * max(0, 56 - len(p.name))
                      + " */"]
        self.body += [f"/* {ln} */" for ln in lines]

    def initializer(self, p: OpPlan) -> list[str]:
        """Designated initializer lines; union members ("access_rw.iova") nest."""
        sp = p.struct
        assert sp is not None
        top: list[tuple[str, str]] = []
        nested: dict[str, list[tuple[str, str]]] = {}
        sf = p.desc.size_field
        if sp.size_is_default:
            top.append((sf, f"sizeof({p.desc.struct})" + (f" + {sp.extra}" if sp.extra else "")))
        else:
            top.append((sf, self.value(sp.size, 4) + f" /* sizeof is {sp.natural} */"))
        if p.desc.call == TEST:
            top.append(("op", p.desc.test_op))
        for s in sp.sides:
            if s.points:
                top.append((s.field, f"(uintptr_t){side_var(p, s)}"))
        for f in p.fields:
            val = self.value(f.value, f.width) + (f" /* {f.comment} */" if f.comment else "")
            if "." in f.path:
                head, rest = f.path.split(".", 1)
                nested.setdefault(head, []).append((rest, val))
            else:
                top.append((f.path, val))
        lines = [f"\t.{k} = {v}," for k, v in top]
        for head, items in nested.items():
            lines.append(f"\t.{head} = {{")
            lines += [f"\t\t[{k}] = {v}," if k.isdigit() else f"\t\t.{k} = {v},"
                      for k, v in items]
            lines.append("\t},")
        return lines

    def prepare(self, p: OpPlan) -> None:
        if p.struct is None:
            return
        B = self.body
        sp = p.struct
        if p.desc.request == "poll":
            args = {f.name: self.value(f.value, f.width) for f in p.fields}
            B.append(f"struct pollfd {p.var} = {{ .fd = (int){args['fd']}, "
                     f".events = (short){args.get('events', '0')} }};")
            return
        self.sides(p)
        if p.desc.call == FDIO:  # read(2)/write(2): no struct, the side array buf points at
            return
        if p.wrapped:
            more = " /* room for the capability chain */" if sp.extra else ""
            B += ["struct {", f"\t{p.desc.struct} s;",
                  f"\tunsigned char more[{sp.real - sp.natural}];{more}",
                  f"}} {p.var} = {{ .s = {{"]
            B += ["\t" + ln for ln in self.initializer(p)]
            B.append("} };")
        else:
            B.append(f"{p.desc.struct} {p.var} = {{")
            B += self.initializer(p)
            B.append("};")
        if sp.tail_len:
            B += ["/* nonzero bytes past the natural end: copy_struct_from_user's E2BIG check */",
                  f"memset((unsigned char *)&{p.var} + {sp.natural}, {sp.tail:#x}, "
                  f"{sp.tail_len});"]

    def fdio_args(self, p: OpPlan) -> tuple[str, str, str, str, int]:
        """read(2)/write(2): the fd, the buffer, the count, the side array and its size."""
        assert p.struct is not None
        s = p.struct.side("buf")
        assert s is not None
        args = {f.name: self.value(f.value, f.width) for f in p.fields}
        sv = side_var(p, s)
        return f"(int){args['fd']}", args.get("buf", f"(uintptr_t){sv}"), args["count"], sv, \
            s.size

    def call_expr(self, p: OpPlan) -> str:
        if p.desc.request == "poll":
            return f"fd_poll(&{p.var}, fds, nfds)"
        if p.desc.call == FDIO:
            fd, buf, count, sv, size = self.fdio_args(p)
            return (f"fd_io({int(p.desc.request == 'write')}, {fd}, {buf}, {count}, fds, nfds, "
                    f"{sv}, {size})")
        if p.struct is not None:
            return f"ioctl(fd, {p.desc.request}, &{p.var})"
        if p.desc.call == VFIO_VAL:
            v = self.value(p.fields[0].value, 8) if p.fields else "0"
            return f"ioctl(fd, {p.desc.request}, (unsigned long){v})"
        v = self.value(p.fields[0].value, 4) if p.fields else "0"
        return f"close_own((int){v}, fds, &nfds)"

    def call(self, p: OpPlan) -> None:
        f = p.fields[0] if p.fields and p.struct is None else None
        note = f" /* {f.comment} */" if f is not None and f.comment else ""
        i = p.index
        if p.fail_nth:
            self.body += [f"/* fail the {p.fail_nth}th fault point of the call "
                          "(/proc/thread-self/fail-nth) */",
                          f"arm_fault({p.fail_nth});", f"record({i}, {self.call_expr(p)});{note}",
                          f"injected[{i}] = fault_injected();", f"print_op({i}, \"{p.name}\");"]
        else:
            self.body.append(f"done({i}, \"{p.name}\", {self.call_expr(p)});{note}")

    def group(self, plans: list[OpPlan], label: int) -> None:
        B = self.body
        g = f"group{plans[0].index}"
        ops = ", ".join(str(p.index) for p in plans)
        threads = ", ".join(sorted({str(p.thread) for p in plans}))
        B += ["", f"/* race group (barrier {label}): ops {ops} on threads {threads}, released "
              "together from one barrier, then joined */", f"struct call {g}[] = {{"]
        for p in plans:
            head = f".index = {p.index}, .thread = {p.thread}, .nth = {p.fail_nth}"
            if p.desc.request == "poll":
                rest = f".kind = CALL_POLL, .arg = &{p.var}"
            elif p.desc.call == FDIO:
                fd, buf, count, sv, size = self.fdio_args(p)
                kind = "CALL_WRITE" if p.desc.request == "write" else "CALL_READ"
                rest = (f".kind = {kind}, .fd = {fd}, .buf = {buf}, .count = {count}, "
                        f".side = {sv}, .side_size = {size}")
            elif p.struct is not None:
                rest = f".kind = CALL_IOCTL_PTR, .request = {p.desc.request}, .arg = &{p.var}"
            elif p.desc.call == VFIO_VAL:
                v = self.value(p.fields[0].value, 8) if p.fields else "0"
                rest = (f".kind = CALL_IOCTL_VAL, .request = {p.desc.request}, "
                        f".arg = (void *)(uintptr_t){v}")
            else:
                v = self.value(p.fields[0].value, 4) if p.fields else "0"
                rest = f".kind = CALL_CLOSE, .fd = (int){v}"
            B.append(f"\t{{ {head}, {rest} }},")
        B += ["};", f"run_group(fd, {g}, {len(plans)}, fds, &nfds);"]
        self.grouped.update(p.index for p in plans)

    def after_call(self, p: OpPlan) -> None:
        B = self.body
        i = p.index
        if i in self.grouped:
            B.append(f"print_op({i}, \"{p.name}\");")
        if p.struct is None or p.desc.call == FDIO:
            return
        sp = p.struct
        cap = p.desc.capture
        if cap is not None:
            # the length as the program gave it (the kernel may rewrite the field)
            B += [f"static unsigned char data{i}[CAPTURE_MAX];",
                  f"size_t data{i}_len = err[{i}] ? 0 : capture({self.lvalue(p, cap.uptr)}, "
                  f"{self.value(sp.capture_len, 8)}, data{i});"]
        for o in p.desc.outs:
            if o.is_fd:
                B += [f"if (!err[{i}] && nfds < {MAX_FDS})",
                      f"\tfds[nfds++] = {self.lvalue(p, p.desc.path(o.name))};"]

    def sides(self, p: OpPlan) -> None:
        B = self.body
        assert p.struct is not None
        for s in p.struct.sides:
            sv = side_var(p, s)
            widths = [w for _, w in entry_fields(s.ctype)]
            n = s.alloc if s.nbytes is None else -(-s.size // uapi.sizeof(s.ctype))
            if s.items:
                B.append(f"{s.ctype} {sv}[{n}] = {{")
                B += ["\t{ " + ", ".join(self.value(x, w) for x, w in zip(it, widths)) + " },"
                      for it in s.items]
                B.append("};")
            else:
                B.append(f"{s.ctype} {sv}[{n}] = {{ 0 }}; /* the array the kernel fills */")

    def records_expr(self, p: OpPlan, name: str) -> str:
        """canon_records() or first_field() over an op's read(2) side array."""
        o = p.desc.out(name)
        assert o is not None and p.struct is not None
        s = p.struct.side(o.array)
        assert s is not None
        i = p.index
        head = (f"{side_var(p, s)}, err[{i}] ? 0 : ret[{i}], {s.size}, "
                f"sizeof({s.ctype})")
        if o.decode == "first":
            off, width = uapi.field_offset(s.ctype, o.field)
            return f"first_field({head}, {off}, {width})"
        fields = ", ".join(f"{off}, {w}" for off, w in entry_fields(s.ctype))
        return (f"canon_records({head}, (const uint32_t[]){{ {fields} }}, "
                f"{len(entry_fields(s.ctype))})")

    def ranges_expr(self, p: OpPlan, name: str) -> str:
        o = p.desc.out(name)
        assert o is not None and p.struct is not None
        s = p.struct.side(p.desc.path(o.array))
        assert s is not None
        valid = " || ".join([f"err[{p.index}] == 0"] + [
            f"err[{p.index}] == {_errno.errorcode[e]}" for e in o.also_on])
        return (f"canon_ranges((const uint64_t *){side_var(p, s)}, "
                f"{self.lvalue(p, p.desc.path(o.count))}, {s.entries}, {valid})")

    def outputs(self, p: OpPlan) -> None:
        B = self.body
        i = p.index
        for o in p.desc.outs:
            if o.decode == "ret":
                continue
            if o.decode == "data":
                B.append(f'show_data("{o.name}", data{i}, data{i}_len);')
            elif o.decode == "ranges":
                B.append(f'show_str("{o.name}", {self.ranges_expr(p, o.name)});')
            elif o.decode == "caps":
                assert p.struct is not None
                B.append(f'show_str("{o.name}", err[{i}] ? "" : read_caps('
                         f"(unsigned char *)&{p.var}, {p.struct.real}, "
                         f"{self.lvalue(p, 'cap_offset')}));")
            elif o.decode == "entries":
                B.append(f'show_str("{o.name}", {self.records_expr(p, o.name)});')
            elif o.decode == "first":
                B.append(f'show_u64("{o.name}", {self.records_expr(p, o.name)});')
            else:
                B.append(f'show_u64("{o.name}", {self.lvalue(p, p.desc.path(o.name))});')
        B.append('fprintf(out, "\\n");')

    def remember(self, p: OpPlan, exp: Expectation) -> None:
        """The checked value right after the op (strbuf is reused later)."""
        f = exp.field or "errno"
        i = p.index
        o = p.desc.out(f)
        if f in ("errno", "fault_errno"):
            self.body.append(f"long long got = err[{i}];")
        elif o is None or o.decode == "ret":
            self.body.append(f"long long got = ret[{i}];")
        elif o.decode == "data":
            self.body += ["static char got[2 * CAPTURE_MAX + 1];",
                          f"snprintf(got, sizeof(got), \"%s\", hex(data{i}, data{i}_len));"]
        elif o.decode == "ranges":
            self.body += ["static char got[sizeof(strbuf)];",
                          f"snprintf(got, sizeof(got), \"%s\", {self.ranges_expr(p, f)});"]
        elif o.decode == "entries":
            self.body += ["static char got[sizeof(strbuf)];",
                          f"snprintf(got, sizeof(got), \"%s\", {self.records_expr(p, f)});"]
        elif o.decode == "first":
            self.body.append(f"unsigned long long got = {self.records_expr(p, f)};")
        elif o.decode == "caps":
            assert p.struct is not None
            self.body += ["static char got[sizeof(strbuf)];",
                          f"snprintf(got, sizeof(got), \"%s\", read_caps((unsigned char *)&"
                          f"{p.var}, {p.struct.real}, {self.lvalue(p, 'cap_offset')}));"]
        else:
            self.body.append(f"unsigned long long got = {self.lvalue(p, p.desc.path(f))};")

    def teardown(self) -> None:
        self.body += ["", "/* teardown, in the executor's order: the fds the program got, then "
                      "the iommufd */", "for (int k = 0; k < nfds; k++)", "\tif (fds[k] != fd)",
                      "\t\tclose(fds[k]);", "close(fd);", "unmap_buffers();", ""]

    def verdict_none(self) -> None:
        self.body.append("return 0;")

    def verdict_missing(self, exp: Expectation) -> None:
        self.body += [f"fprintf(out, \"NOT REPRODUCED: op {exp.op} is not in this program\\n\");",
                      "return 0;"]

    def verdict_mismatch(self, exp: Expectation) -> None:
        B = self.body
        sig = c_string(exp.signature)
        f = exp.field or "errno"
        if f in ("data", "ranges", "caps") or isinstance(exp.model, (list, bytes, bytearray)):
            B += [f"const char *model = {c_string(canon(f, exp.model))}; "
                  "/* what the reference model expects */",
                  f"fprintf(out, \"op {exp.op} {exp.name}.{f}: kernel %s, model expects "
                  f"%s\\n\", got, model);", "if (strcmp(got, model)) {"]
        elif f == "fault_errno":  # model: (errno without the fault, errnos with it)
            model, kernel, allowed = int(exp.model[0]), int(exp.kernel or 0), exp.model[1]
            B.append(f"/* the model expects errno {model}, or with the fault injected one of "
                     f"{', '.join(map(str, allowed))}; the kernel answered {kernel} */")
            B += [f"fprintf(out, \"op {exp.op} {exp.name}.errno: kernel %lld, model expects "
                  f"%d\\n\", got, {model});",
                  "if (" + " && ".join([f"got == {kernel}", *(f"got != {e}" for e in allowed)])
                  + ") {"]
        else:
            model, kernel = int(exp.model or 0), int(exp.kernel or 0)
            if f == "errno":
                cond = f"got != {model} && got == {kernel}"
                B.append(f"/* the model expects errno {model}, the kernel answered {kernel} */")
            else:
                cond = f"got != {c_int(model)}"
                B.append(f"/* the model expects {c_int(model)} */")
            B += [f"fprintf(out, \"op {exp.op} {exp.name}.{f}: kernel 0x%llx, model expects "
                  f"0x%llx\\n\", (unsigned long long)got, (unsigned long long){c_int(model)});",
                  f"if ({cond}) {{"]
        B += [f"\tfprintf(out, \"REPRODUCED: %s\\n\", {sig});", "\treturn 1;", "}",
              "fprintf(out, \"NOT REPRODUCED\\n\");", "return 0;"]

    def verdict_splat(self, exp: Expectation) -> None:
        sig = c_string(exp.signature)
        keys = ", ".join(c_string(k) for k in exp.keys)
        if exp.deferred:
            self.body += ["/* deferred work (a work item, an RCU callback) logs it after the "
                          "program: give it time */", "sleep(1);"]
        self.body += [f"/* from the splat title {c_string(exp.title)[1:-1]} */",
                      f"const char *keys[] = {{ {keys} }};", "const char *log = read_kmsg(kmsg);",
                      "int found = 1;", f"for (unsigned k = 0; k < {len(exp.keys)}; k++)",
                      "\tfound &= strstr(log, keys[k]) != NULL;", "fputs(log, out);",
                      "if (found) {", f"\tfprintf(out, \"REPRODUCED: %s\\n\", {sig});",
                      "\treturn 1;", "}", "fprintf(out, \"NOT REPRODUCED\\n\");", "return 0;"]

    def text(self) -> str:
        lines = list(self.head)
        for f in self.funcs:
            lines += [*f, ""]
        lines += ["", "static int run_once(void)", "{"]
        main = ["}", "", f"#define RUNS {self.runs}", "", "int main(void)", "{",
                "\tconst char *env = getenv(\"REPRO_RUNS\");",
                "\tint runs = env ? atoi(env) : RUNS, hits = 0;", "",
                "\tout = fdopen(dup(1), \"w\");", "\tsetvbuf(out, NULL, _IOLBF, 0);",
                "\tif (runs <= 1)", "\t\treturn run_once();",
                "\tFILE *shown = out, *muted = fopen(\"/dev/null\", \"w\");",
                "\tfor (int k = 0; k < runs; k++) {",
                "\t\tout = k && muted ? muted : shown; /* the first run's op lines are enough */",
                "\t\thits += run_once();", "\t}", "\tout = shown;"]
        if self.signature:
            main += ["\tif (hits) {",
                     f"\t\tfprintf(out, \"REPRODUCED: %s (%d/%d runs)\\n\", "
                     f"{c_string(self.signature)}, hits, runs);", "\t\treturn 1;", "\t}",
                     "\tfprintf(out, \"NOT REPRODUCED (%d/%d runs)\\n\", hits, runs);"]
        main += ["\treturn 0;", "}"]
        return "\n".join(lines + ["\t" + ln if ln else "" for ln in self.body]
                         + main) + "\n"


def emit_c(prog: Program, exp: Expectation | None = None,
           expected: list[OpResult] | None = None,
           history: list[Program] | None = None) -> str:
    return render(CRenderer(), prog, exp, expected, history)
