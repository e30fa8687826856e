"""One walk over a program's layout plan, for every reproducer language.

plan() turns each op into an OpPlan: the encoder's own layout decisions
(fuzz.prog.layout.plan_struct) plus the fields to set, each with the uAPI spelling
of its value. render() walks the plans in the order the executor runs them - the
buffers (and the executor's scratch mapping), the fresh iommufd, the prologue, each
op (struct and side arrays; the call, an ioctl, close, read or write; the capture,
the fds it returns, its outputs), the teardown, the verdict - and asks
a Renderer to spell each step in its language (fuzz/repro/render_py.py, render_c.py).

An op with fail_nth has its call armed the way the executor arms it (fail-nth of the
calling thread written right before, read back after). A race group's ops are all
prepared first (their arguments are known when the group starts), then issued
together - one thread per thread number, released from one barrier, joined - and
their outputs shown after. A program with threads runs RUNS times (a race need not
show every time) and says in how many runs it reproduced.

A finding that needs history (programs the VM ran before the finding's program,
fuzz.minimize) is rendered as the same walk over each earlier program - its faults
armed and its race groups issued as the executor ran them - spelled as a function of
its own (its buffers, its fresh iommufd, its ops, its teardown, which unmaps its
buffers and scratch mapping so the next program maps at the same fixed addresses),
called in order before the finding's program, which is walked as always. With
history, every run runs the earlier programs again first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Protocol

from fuzz.prog import Buffer, Creds, Program, Ref, Value
from fuzz.prog.layout import Side, StructPlan, plan_struct
from fuzz.prog.limits import MAX_GROUP_OPS
from fuzz.prog.types import FDIO, Enum, Flags, OpDesc
from fuzz.repro.expect import Expectation, show
from fuzz.result import OpResult


@dataclass
class FieldSet:
    path: str  # struct field path ("access_rw.iova"), "" for a by-value argument
    width: int
    value: Value
    comment: str = ""  # the value in the header's words (flag and enum names)
    name: str = ""  # the argument


@dataclass
class OpPlan:
    index: int
    name: str
    desc: OpDesc
    var: str
    struct: StructPlan | None = None  # None for by-value ioctls and close
    fields: list[FieldSet] = dc_field(default_factory=list)
    fail_nth: int = 0
    thread: int = 0

    @property
    def wrapped(self) -> bool:
        """The struct needs memory past its natural size."""
        return self.struct is not None and self.struct.real > self.struct.natural


def side_var(p: OpPlan, s: Side) -> str:
    """The variable a side array of op p lives in, in both languages."""
    return f"{p.var}_{(s.field or s.arg).rsplit('.', 1)[-1]}"


def ref_source(plans: list[OpPlan], v: Ref) -> tuple[str, str]:
    """Where a ref's value is read at run time, as the executor reads it: ("ret", "")
    for a call's return value, ("first", "<side var>[0].<field>") for a field of
    the first entry of the op's side array, else ("field", <struct field path>)."""
    src = plans[v.op]
    out = src.desc.out(v.field)
    if out is not None and out.decode == "ret":
        return "ret", ""
    if out is not None and out.decode == "first":
        assert src.struct is not None
        s = src.struct.side(out.array)
        assert s is not None
        return "first", f"{side_var(src, s)}[0].{out.field}"
    return "field", src.desc.path(v.field)


def var_name(i: int, name: str) -> str:
    base = name.lower()
    for p in ("ioas_", "test_", "vfio_iommu_"):
        if base.startswith(p):
            base = base[len(p):]
            break
    return f"{base}{i}"


def member(path: str) -> str:
    """A field path as both languages spell it: array elements ("__reserved.0") indexed."""
    return re.sub(r"\.(\d+)", r"[\1]", path)


def io_form(req: int) -> str:
    """How the header spells a request: all of ours are _IO(type, nr), no size bits."""
    assert req >> 16 == 0, hex(req)
    return f"_IO('{chr(req >> 8 & 0xFF)}', {req & 0xFF:#x})"


def spell(d: OpDesc, name: str, v: Value) -> str:
    """A literal argument in the uAPI's own names (flags OR'ed, enum values)."""
    arg = d.arg(name)
    if arg is None or not isinstance(v, int):
        return ""
    if isinstance(arg.type, Flags):
        return arg.type.flags.spell(v)
    if isinstance(arg.type, Enum):
        return arg.type.enum.spell(v)
    return ""


def plan(prog: Program) -> list[OpPlan]:
    plans: list[OpPlan] = []
    for i, op in enumerate(prog.ops):
        d = op.desc
        p = OpPlan(i, op.name, d, var_name(i, op.name), fail_nth=op.fail_nth, thread=op.thread)
        if d.is_struct or d.call == FDIO:
            p.struct = plan_struct(op)  # the encoder's own layout decisions
            scratch = {sc.arg for sc in p.struct.scratch}
            for name, v in p.struct.args.items():
                arg = d.arg(name)
                assert arg is not None, (d.name, name)
                note = "the executor's scratch mapping" if name in scratch else \
                    spell(d, name, v)
                p.fields.append(FieldSet(arg.path, arg.width, v, note, name))
        else:
            for arg in d.args:
                if arg.name in op.args:
                    v = op.args[arg.name]
                    p.fields.append(FieldSet("", arg.width, v, spell(d, arg.name, v),
                                             arg.name))
        plans.append(p)
    return plans


class Renderer(Protocol):
    """Spells each step of the walk in one language."""

    def begin(self, header: list[str], prog: Program, plans: list[OpPlan],
              exp: Expectation | None, earlier: list[tuple[Program, list[OpPlan]]]) -> None: ...

    def begin_earlier(self, k: int, prog: Program, plans: list[OpPlan]) -> None:
        """Program k of the history: the steps up to end_earlier() are its own."""

    def end_earlier(self, k: int, prog: Program) -> None:
        """After its teardown (which unmapped its buffers): close its function."""

    def open_kmsg(self) -> None:
        """The kernel log from here on (before the first earlier program)."""

    def call_earlier(self, k: int, prog: Program) -> None: ...

    def main_program(self) -> None:
        """After the earlier programs: the finding's program starts."""

    def buffers(self, buffers: list[Buffer], scratch: int) -> None: ...

    def open_iommufd(self, read_kmsg: bool) -> None: ...

    def op_comment(self, p: OpPlan, lines: list[str]) -> None: ...

    def prepare(self, p: OpPlan) -> None:
        """Everything before the call: the struct and its side arrays."""

    def call(self, p: OpPlan) -> None:
        """The call, armed with its fail_nth if it has one."""

    def group(self, plans: list[OpPlan], label: int) -> None:
        """A race group's calls, issued together from their threads and joined."""

    def after_call(self, p: OpPlan) -> None:
        """What the executor does after a call: the capture, the fds it returned."""

    def outputs(self, p: OpPlan) -> None: ...

    def remember(self, p: OpPlan, exp: Expectation) -> None: ...

    def set_creds(self, creds: Creds) -> None:
        """The program's creds, after the prologue (as the executor sets them)."""

    def restore_creds(self, creds: Creds) -> None: ...

    def teardown(self) -> None: ...

    def verdict_none(self) -> None: ...

    def verdict_missing(self, exp: Expectation) -> None: ...

    def verdict_mismatch(self, exp: Expectation) -> None: ...

    def verdict_splat(self, exp: Expectation) -> None: ...

    def text(self) -> str: ...


def header_lines(exp: Expectation | None, prog: Program,
                 history: list[Program] | None = None) -> list[str]:
    lines = []
    if exp is not None:
        lines.append(f"Reproducer for: {exp.title}")
        lines.append(f"signature: {exp.signature}")
        if exp.kind == "mismatch":
            lines.append(f"op {exp.op} ({exp.name}): {exp.field}: the kernel answers "
                         f"{show(exp.field, exp.kernel)}, the reference model expects "
                         f"{show(exp.field, exp.model)}")
    lines.append(f"{len(prog.ops)} ops on {len(prog.buffers)} buffers; generated by "
                 "iommufd-fuzz from program.json (next to this file).")
    if history:
        lines += [f"It needs history: first the {len(history)} program(s) the fuzzer's VM ran "
                  "before it", f"(history/00.json ... history/{len(history) - 1:02d}.json), "
                  "one after another, each on its own fresh", "/dev/iommu, as the executor "
                  "runs them; alone, program.json does not reproduce it."]
    return lines


RUNS_THREADED = 20  # runs of a reproducer with threads (REPRO_RUNS overrides it)


def runs_of(prog: Program, history: list[Program] | None = None) -> int:
    """RUNS_THREADED if the program or one it needs before it has racing threads."""
    return RUNS_THREADED if any(p.threaded for p in [*(history or []), prog]) else 1


def steps(prog: Program) -> list[range]:
    """The program as the executor runs it: single ops, and race groups (at most
    MAX_GROUP_OPS ops each) issued together."""
    out: list[range] = []
    groups = {g.start: g for g in prog.groups()}
    i = 0
    while i < len(prog.ops):
        g = groups.get(i)
        out.append(g if g is not None else range(i, i + 1))
        assert len(out[-1]) <= MAX_GROUP_OPS
        i = out[-1].stop
    return out


def _walk_ops(r: Renderer, prog: Program, plans: list[OpPlan], exp: Expectation | None,
              expected: list[OpResult] | None) -> bool:
    """Each op of one program, in the executor's steps; True if the finding's check
    was placed."""
    have_check = False
    for span in steps(prog):
        group = [plans[i] for i in span]
        for p in group:
            notes = []
            if expected is not None and p.index < len(expected):
                notes.append(f"model expects: {expected[p.index].describe()[:150]}")
            if exp is not None and exp.kind == "mismatch" and exp.op == p.index:
                notes.append(f"<- the finding: the model expects {exp.field} = "
                             f"{show(exp.field, exp.model)}, the kernel answered "
                             f"{show(exp.field, exp.kernel)}")
            r.op_comment(p, notes)
            r.prepare(p)
            if len(group) == 1 and not prog.ops[p.index].barrier:
                r.call(p)
        if len(group) > 1 or prog.ops[span.start].barrier:
            r.group(group, prog.ops[span.start].barrier)
        for p in group:
            r.after_call(p)
            r.outputs(p)
            if exp is not None and exp.kind == "mismatch" and exp.op == p.index:
                r.remember(p, exp)
                have_check = True
    return have_check


def _scratch(plans: list[OpPlan]) -> int:
    """The executor's own mapping some pointers default to, as big as the biggest asks."""
    return max((sc.size for p in plans if p.struct for sc in p.struct.scratch), default=0)


def render(r: Renderer, prog: Program, exp: Expectation | None = None,
           expected: list[OpResult] | None = None,
           history: list[Program] | None = None) -> str:
    history = history or []
    plans = plan(prog)
    earlier = [(h, plan(h)) for h in history]
    r.begin(header_lines(exp, prog, history), prog, plans, exp, earlier)
    read_kmsg = exp is not None and exp.kind != "mismatch"
    for k, (h, hplans) in enumerate(earlier):
        r.begin_earlier(k, h, hplans)
        r.buffers(h.buffers, _scratch(hplans))
        r.open_iommufd(read_kmsg=False)
        if h.creds is not None:
            r.set_creds(h.creds)
        _walk_ops(r, h, hplans, None, None)
        r.teardown()
        if h.creds is not None:
            r.restore_creds(h.creds)
        r.end_earlier(k, h)
    if earlier:
        if read_kmsg:
            r.open_kmsg()  # a splat may come from any of them
        for k, (h, _) in enumerate(earlier):
            r.call_earlier(k, h)
        r.main_program()
    r.buffers(prog.buffers, _scratch(plans))
    r.open_iommufd(read_kmsg=read_kmsg and not earlier)
    if prog.creds is not None:
        r.set_creds(prog.creds)
    have_check = _walk_ops(r, prog, plans, exp, expected)
    r.teardown()
    if prog.creds is not None:
        r.restore_creds(prog.creds)
    if exp is None:
        r.verdict_none()
    elif exp.kind != "mismatch":
        r.verdict_splat(exp)
    elif not have_check:
        r.verdict_missing(exp)
    else:
        r.verdict_mismatch(exp)
    return r.text()
