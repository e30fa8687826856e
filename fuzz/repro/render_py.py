"""repro.py: the walk (fuzz/repro/walk.py) spelled in Python, standard library only."""

from __future__ import annotations

import errno as _errno
import re
from pathlib import Path
from typing import Any

from fuzz import uapi
from fuzz.prog import BUF_BASE, BUF_STRIDE, Buffer, BufPtr, Creds, Program, Ref, Value
from fuzz.prog.ir import SCRATCH_ADDR
from fuzz.prog.layout import entry_names
from fuzz.prog.limits import CAPTURE_MAX, TEST_MEMORY_LIMIT_DEFAULT
from fuzz.prog.types import FD_CALLS, FDIO, TEST, VFIO_VAL
from fuzz.repro.cstructs import ctypes_classes, needed_structs
from fuzz.repro.expect import Expectation, canon, hexish
from fuzz.repro.walk import OpPlan, io_form, member, ref_source, render, runs_of, side_var
from fuzz.result import OpResult

RUNTIME = Path(__file__).with_name("runtime.py")
_CONSTANTS = re.compile(r"# --- constants:.*?# --- end of constants ---\n", re.S)


def runtime_constants() -> dict[str, int]:
    """What the runtime's block of constants must say."""
    return {"CAPTURE_MAX": CAPTURE_MAX,
            "VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE": uapi.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
            "VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL": uapi.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL}


def runtime_text() -> str:
    """fuzz/repro/runtime.py without its docstring, constants from their sources."""
    text = RUNTIME.read_text()
    text = text[text.index('"""', 3) + 3:].lstrip("\n")
    block = ("# constants (from fuzz.uapi and fuzz.prog.limits)\n"
             + "".join(f"{k} = {v}\n" for k, v in runtime_constants().items()))
    return _CONSTANTS.sub(block, text)


class PyRenderer:
    def __init__(self) -> None:
        self.head: list[str] = []
        self.body: list[str] = []
        self.plans: list[OpPlan] = []
        self.funcs: list[list[str]] = []  # one per earlier program (history)
        self._main: tuple[list[str], list[OpPlan]] | None = None
        self.runs = 1
        self.signature = ""

    # -- values ---------------------------------------------------------------------
    def value(self, v: Value) -> str:
        if isinstance(v, Ref):
            kind, where = ref_source(self.plans, v)
            expr = f"r{v.op}.ret" if kind == "ret" else where if kind == "first" \
                else f"{self.plans[v.op].var}.{member(where)}"
            if v.add:
                expr += f" + {hexish(v.add)}" if v.add > 0 else f" - {hexish(-v.add)}"
            return expr
        if isinstance(v, BufPtr):
            return f"BUF{v.buf}" + (f" + {hexish(v.offset)}" if v.offset else "")
        assert isinstance(v, int), v
        return hexish(v)

    # -- the walk ---------------------------------------------------------------------
    def begin(self, header: list[str], prog: Program, plans: list[OpPlan],
              exp: Expectation | None, earlier: list[tuple[Program, list[OpPlan]]] = ()
              ) -> None:
        self.plans = plans
        every = [*plans, *(q for _, ps in earlier for q in ps)]
        self.runs = runs_of(prog, [h for h, _ in earlier])
        self.signature = exp.signature if exp is not None else ""
        L = self.head
        L += ["#!/usr/bin/env python3", '"""' + header[0], *header[1:], "",
              "Run as root on a kernel with CONFIG_IOMMUFD_TEST=y:   python3 repro.py",
              "Prints one line per op (errno, outputs), then REPRODUCED: <signature> and "
              "exits 1,", "or NOT REPRODUCED and exits 0. Standard library only."]
        if self.runs > 1:
            L += [f"Its ops race on threads: it runs {self.runs} times (REPRO_RUNS=n to change "
                  "that), the", "ops printed for the first run, and says in how many it "
                  "reproduced."]
        L += ['"""', ""]
        L.append(runtime_text().rstrip())
        reqs = {p.desc.request for p in every
                if p.desc.request and p.desc.call not in FD_CALLS} | {"IOMMU_TEST_CMD"}
        L.append("\n# ioctl requests: _IO(';', nr); iommufd and vfio structs carry their own size")
        for n in sorted(reqs):
            L.append(f"{n} = {uapi.request(n):#x}  # {io_form(uapi.request(n))}")
        tops = sorted({p.desc.test_op for p in every if p.desc.call == TEST}
                      | {"IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT"})
        L += [f"{n} = {uapi.test_op(n)}" for n in tops]
        structs = {"struct iommu_test_cmd"}  # the prologue
        for p in every:
            if p.struct is not None:
                structs.update(x for x in (p.desc.struct,) if x)  # read/write have none
                if p.desc.request == "poll":
                    structs.add("struct pollfd")
                structs.update(s.ctype for s in p.struct.sides)
        L.append("\n\n# uAPI structs (include/uapi/linux/iommufd.h, vfio.h, "
                 "drivers/iommu/iommufd/iommufd_test.h, asm-generic/poll.h, 6.12)")
        L.append(ctypes_classes(needed_structs(structs)))

    def begin_earlier(self, k: int, prog: Program, plans: list[OpPlan]) -> None:
        self._main = (self.body, self.plans)
        self.body, self.plans = [], plans

    def end_earlier(self, k: int, prog: Program) -> None:
        # its teardown unmapped its buffers and scratch mapping (unmap_buffers), so the
        # next program maps at the same fixed addresses
        B = self.body
        doc = f'"""history/{k:02d}.json: run before the finding\'s program, on its own iommufd."""'
        self.funcs.append([f"def program_{k}():", "    " + doc]
                          + ["    " + ln if ln else "" for ln in B])
        assert self._main is not None
        self.body, self.plans = self._main

    def open_kmsg(self) -> None:
        self.body += ["# the kernel log from here on is where a splat would show (any program)",
                      "kmsg = os.open('/dev/kmsg', os.O_RDONLY | os.O_NONBLOCK)",
                      "os.lseek(kmsg, 0, os.SEEK_END)"]

    def call_earlier(self, k: int, prog: Program) -> None:
        self.body += [f"out.write('== history/{k:02d}.json\\n')", f"program_{k}()"]

    def main_program(self) -> None:
        self.body += ["out.write('== program.json\\n')"]

    def buffers(self, buffers: list[Buffer], scratch: int) -> None:
        B = self.body
        if buffers:
            B.append("# buffers: the same fixed addresses, kinds, contents and holes as the "
                     "fuzzer's")
        for bi in range(len(buffers)):
            B.append(f"BUF{bi} = {BUF_BASE + bi * BUF_STRIDE:#x}")
        for bi, b in enumerate(buffers):
            holes = "[" + ", ".join(f"({o:#x}, {n:#x})" for o, n in b.holes) + "]"
            B.append(f"map_buffer({bi}, BUF{bi}, {b.size:#x}, {b.kind!r}, {b.seed}, {holes})")
        if scratch:
            B += ["# the executor's scratch mapping, where pointers the program left out point",
                  f"map_buffer('scratch', {SCRATCH_ADDR:#x}, {scratch:#x}, 'anon', 0, [])"]

    def open_iommufd(self, read_kmsg: bool) -> None:
        B = self.body
        if read_kmsg:
            B += ["", "# the kernel log from here on is where a splat would show",
                  "kmsg = os.open('/dev/kmsg', os.O_RDONLY | os.O_NONBLOCK)",
                  "os.lseek(kmsg, 0, os.SEEK_END)"]
        B += ["", "fd = os.open('/dev/iommu', os.O_RDWR)",
              "own_fds = []  # fds the program got back: closed at the end, as the executor does",
              "", "# the executor's prologue: reset the selftest's global temp memory limit",
              "prologue = new(iommu_test_cmd)",
              "prologue.size = ctypes.sizeof(iommu_test_cmd)",
              "prologue.op = IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT",
              f"prologue.memory_limit.limit = {TEST_MEMORY_LIMIT_DEFAULT}",
              "libc.ioctl(fd, IOMMU_TEST_CMD, ctypes.addressof(prologue))"]

    def set_creds(self, creds: Creds) -> None:
        self.body += ["", f"# the program's creds: {creds.describe()}",
                      f"set_creds({creds.cap_mask:#x}, {creds.memlock})"]

    def restore_creds(self, creds: Creds) -> None:
        self.body += [f"restore_creds({creds.cap_mask:#x})", ""]

    def op_comment(self, p: OpPlan, lines: list[str]) -> None:
        self.body += ["", f"# -- op {p.index}: {p.name} " + "-" * max(0, 60 - len(p.name))]
        self.body += [f"# {ln}" for ln in lines]

    def prepare(self, p: OpPlan) -> None:
        if p.struct is None:
            return
        if p.desc.request == "poll":
            args = {f.name: self.value(f.value) for f in p.fields}
            self.body.append(f"{p.var} = pollfd({args['fd']}, {args.get('events', '0')}, 0)")
            return
        if p.desc.call == FDIO:  # read(2)/write(2): no struct, the side array buf points at
            self.sides(p)
            return
        B = self.body
        sp = p.struct
        cls = p.desc.struct.split()[1]
        B.append(f"{p.var} = new({cls}" + (f", {sp.real})  # {sp.real} bytes of memory"
                                           if p.wrapped else ")"))
        sf = p.desc.size_field
        if sp.size_is_default:
            B.append(f"{p.var}.{sf} = ctypes.sizeof({cls})"
                     + (f" + {sp.extra}" if sp.extra else ""))
        else:
            B.append(f"{p.var}.{sf} = {self.value(sp.size)}  # sizeof is {sp.natural}")
        if sp.tail_len:
            B.append(f"fill_tail({p.var}, {sp.natural}, {sp.tail_len}, {sp.tail:#x})")
        if p.desc.call == TEST:
            B.append(f"{p.var}.op = {p.desc.test_op}")
        self.sides(p)
        for s in sp.sides:
            if s.points:
                B.append(f"{p.var}.{s.field} = ctypes.addressof({side_var(p, s)})")
        for f in p.fields:
            B.append(f"{p.var}.{member(f.path)} = {self.value(f.value)}"
                     + (f"  # {f.comment}" if f.comment else ""))

    def call_expr(self, p: OpPlan) -> str:
        if p.desc.request == "poll":
            return f"run_poll({p.var}, own_fds)"
        if p.desc.call == FDIO:
            assert p.struct is not None
            s = p.struct.side("buf")
            assert s is not None
            args = {f.name: self.value(f.value) for f in p.fields}
            side = f"ctypes.addressof({side_var(p, s)})"
            return (f"run_fdio({p.desc.request!r}, {args['fd']}, {args.get('buf', side)}, "
                    f"{args['count']}, own_fds, {side}, {s.size})")
        if p.struct is not None:
            return f"run_ioctl(fd, {p.desc.request}, ctypes.addressof({p.var}))"
        v = self.value(p.fields[0].value) if p.fields else "0"
        if p.desc.call == VFIO_VAL:
            return f"run_ioctl(fd, {p.desc.request}, {v})"
        return f"run_close({v}, own_fds)"

    def call(self, p: OpPlan) -> None:
        f = p.fields[0] if p.fields and p.struct is None else None
        note = f"  # {f.comment}" if f is not None and f.comment else ""
        if p.fail_nth:
            self.body.append(f"# fail the {p.fail_nth}th fault point of the call "
                             "(/proc/thread-self/fail-nth)")
            self.body.append(f"r{p.index} = with_fault({p.fail_nth}, lambda: "
                             f"{self.call_expr(p)}){note}")
        else:
            self.body.append(f"r{p.index} = {self.call_expr(p)}{note}")

    def group(self, plans: list[OpPlan], label: int) -> None:
        B = self.body
        ops = ", ".join(str(p.index) for p in plans)
        threads = ", ".join(sorted({str(p.thread) for p in plans}))
        B += ["", f"# race group (barrier {label}): ops {ops} on threads {threads}, released "
              "together from one barrier, then joined",
              "res = run_group(["]
        B += [f"    ({p.index}, {p.thread}, {p.fail_nth}, lambda: {self.call_expr(p)}),"
              for p in plans]
        B.append("])")
        B.append(", ".join(f"r{p.index}" for p in plans) + " = "
                 + ", ".join(f"res[{p.index}]" for p in plans))

    def after_call(self, p: OpPlan) -> None:
        if p.struct is None or p.desc.call == FDIO:
            return
        B = self.body
        sp = p.struct
        r = f"r{p.index}"
        cap = p.desc.capture
        if cap is not None:
            # the length as the program gave it (the kernel may rewrite the field)
            B.append(f"data{p.index} = capture({p.var}.{cap.uptr}, "
                     f"{self.value(sp.capture_len)}) if {r}.errno == 0 else b''")
        for o in p.desc.outs:
            if o.is_fd:
                B += [f"if {r}.errno == 0:",
                      f"    own_fds.append({p.var}.{p.desc.path(o.name)})"]

    def sides(self, p: OpPlan) -> None:
        assert p.struct is not None
        for s in p.struct.sides:
            ctype = s.ctype.split()[1]
            items = ", ".join(f"{ctype}({', '.join(self.value(x) for x in it)})"
                              for it in s.items)
            note = "" if s.items else "  # the array the kernel fills"
            n = s.alloc if s.nbytes is None else -(-s.size // uapi.sizeof(s.ctype))
            self.body.append(f"{side_var(p, s)} = ({ctype} * {n})({items}){note}")

    def out_expr(self, p: OpPlan, name: str) -> str:
        """The expression for an output as the executor decodes it."""
        o = p.desc.out(name)
        r = f"r{p.index}"
        if name == "errno":
            return f"{r}.errno"
        if o is None or o.decode == "ret":
            return f"{r}.ret"
        if o.decode == "data":
            return f"data{p.index}"
        if o.decode == "ranges":
            assert p.struct is not None
            s = p.struct.side(p.desc.path(o.array))
            assert s is not None
            valid = " or ".join([f"{r}.errno == 0"] + [
                f"{r}.errno == errno.{_errno.errorcode[e]}" for e in o.also_on])
            return (f"canon_ranges(read_pairs(ctypes.addressof({side_var(p, s)}), "
                    f"{p.var}.{p.desc.path(o.count)}, {s.entries}, {valid}))")
        if o.decode in ("entries", "first"):
            assert p.struct is not None
            s = p.struct.side(o.array)
            assert s is not None
            recs = (f"read_records({r}, ctypes.addressof({side_var(p, s)}), "
                    f"{s.ctype.split()[1]}, {s.size})")
            if o.decode == "entries":
                return f"canon_records({recs})"
            return f"first_field({recs}, {entry_names(s.ctype).index(o.field)})"
        if o.decode == "caps":
            assert p.struct is not None
            return (f"read_caps({p.var}, {p.struct.real}, {p.var}.cap_offset) "
                    f"if {r}.errno == 0 else ''")
        return f"{p.var}.{member(p.desc.path(name))}"

    def outputs(self, p: OpPlan) -> None:
        outs = [f"{o.name}={self.out_expr(p, o.name)}" for o in p.desc.outs
                if o.decode != "ret"]
        self.body.append(f"show({p.index}, {p.name!r}, r{p.index}"
                         + "".join(f", {x}" for x in outs) + ")")

    def remember(self, p: OpPlan, exp: Expectation) -> None:
        f = exp.field or "errno"
        expr = self.out_expr(p, "errno" if f == "fault_errno" else f)
        o = p.desc.out(f)
        captured = o is not None and o.decode == "data"  # data, bitmap: compared in hex
        self.body.append(f"got = {expr}.hex()" if captured else f"got = {expr}")

    def teardown(self) -> None:
        self.body += ["", "# teardown, in the executor's order: the fds the program got (it may",
                      "# have closed them already: errors ignored, as there), then the iommufd",
                      "for afd in own_fds:", "    if afd != fd:", "        libc.close(afd)",
                      "libc.close(fd)", "unmap_buffers()", ""]

    def verdict_none(self) -> None:
        self.body.append("return 0")

    def verdict_missing(self, exp: Expectation) -> None:
        self.body += [f"out.write('NOT REPRODUCED: op {exp.op} is not in this program\\n')",
                      "return 0"]

    def verdict_mismatch(self, exp: Expectation) -> None:
        sig = repr(exp.signature)
        model_lit, kernel_lit = _literal(exp, exp.model), _literal(exp, exp.kernel)
        cond = "got != MODEL and got == KERNEL_SEEN" if exp.field == "errno" else "got != MODEL"
        if exp.field == "fault_errno":  # model: (errno without the fault, errnos with it)
            model_lit = str(int(exp.model[0]))
            cond = f"got == KERNEL_SEEN and got not in {tuple(exp.model[1])!r}"
            self.body.append(f"# with the fault injected the model allows errnos "
                             f"{tuple(exp.model[1])!r}")
        self.body += [f"MODEL = {model_lit}  # what the reference model expects",
                      f"KERNEL_SEEN = {kernel_lit}  # what the kernel answered when found",
                      f"out.write(f'op {exp.op} {exp.name}.{exp.field}: kernel {{got!r}}, "
                      f"model expects {{MODEL!r}}\\n')",
                      f"if {cond}:", f"    out.write('REPRODUCED: ' + {sig} + '\\n')",
                      "    return 1", "out.write('NOT REPRODUCED\\n')", "return 0"]

    def verdict_splat(self, exp: Expectation) -> None:
        sig = repr(exp.signature)
        if exp.deferred:
            self.body += ["# deferred work (a work item, an RCU callback) logs it after the "
                          "program: give it time", "import time", "time.sleep(1.0)"]
        self.body += [f"KEYS = {exp.keys!r}  # from the splat title {exp.title!r}",
                      "lines = read_kmsg(kmsg)",
                      "hits = [ln for ln in lines if any(k in ln for k in KEYS)]",
                      "for ln in hits[:20]:", "    out.write('kmsg: ' + ln + '\\n')",
                      "if all(any(k in ln for ln in lines) for k in KEYS):",
                      f"    out.write('REPRODUCED: ' + {sig} + '\\n')", "    return 1",
                      "out.write('NOT REPRODUCED\\n')", "return 0"]

    def text(self) -> str:
        lines = list(self.head)
        for f in self.funcs:
            lines += ["", "", *f]
        lines += ["", "", "def run_once():"]
        lines += ["    " + ln if ln else "" for ln in self.body]
        lines += ["", "", f"RUNS = {self.runs}", "", "", "def main():",
                  "    runs = int(os.environ.get('REPRO_RUNS', RUNS))",
                  "    if runs <= 1:", "        return run_once()",
                  "    hits = 0", "    for k in range(runs):",
                  "        out.muted = k > 0  # the first run's op lines are enough",
                  "        hits += run_once()", "    out.muted = False"]
        if self.signature:
            lines += ["    if hits:",
                      f"        out.write('REPRODUCED: ' + {self.signature!r} + "
                      "f' ({hits}/{runs} runs)\\n')", "        return 1",
                      "    out.write(f'NOT REPRODUCED ({hits}/{runs} runs)\\n')"]
        lines += ["    return 0", "", "", 'if __name__ == "__main__":', "    sys.exit(main())",
                  ""]
        return "\n".join(lines)


def _literal(exp: Expectation, which: Any) -> str:
    """A kernel/model value in the form the check compares."""
    f = exp.field or "errno"
    if f in ("errno", "fault_errno") and not isinstance(which, (list, tuple)):
        return str(int(which or 0))
    if f in ("data", "ranges", "caps") or isinstance(which, (list, bytes, bytearray)):
        return repr(canon(f, which))
    return hexish(int(which or 0) % (1 << 64))


def emit_python(prog: Program, exp: Expectation | None = None,
                expected: list[OpResult] | None = None,
                history: list[Program] | None = None) -> str:
    return render(PyRenderer(), prog, exp, expected, history)
