"""Where programs run for real: the VM (default) or, only on explicit request,
this machine's own kernel. Both take a Program and give an Execution."""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from fuzz.channel import KMSG_PROGRAM_START
from fuzz.executor.encode import Encoded, FaultInjectionUnavailable, decode, encode
from fuzz.executor.runner import RawRun, unpack_response
from fuzz.executor.wire import KCOV_TRACE_PC
from fuzz.model.file import AGENT_FDS, FdLayout
from fuzz.prog import Program
from fuzz.prog.limits import MAX_HISTORY
from fuzz.report import Report, parse
from fuzz.result import OpResult
from fuzz.vm import VM, GuestCrash, VMConfig

# Splats after which the guest is restored before the next program (BUG covers
# "BUG: Bad page state" like any other BUG:).
TAINTING = {"KASAN", "KFENCE", "BUG", "GPF", "OOPS", "LOCKDEP", "UBSAN"}
# add_taint() prints this when a taint makes lockdep unreliable (a bad page, an
# oops...): whatever the report was, lockdep is off from here on.
LOCKDEP_OFF = "Disabling lock debugging due to kernel taint"


# Benchmarks (bench/bench_campaign.py): a file every program a VMBackend sends is
# appended to, as JSON lines {"kcov": bool, "kcov_mode": int, "prog": program JSON}, so
# the same programs can be run again in the guest with no host work between them.
RECORD_ENV = "IOMMUFD_FUZZ_RECORD"


def taints(reports: list[Report], kmsg: str = "") -> bool:
    """Whether the kernel must be restored before the next program."""
    return any(r.kind in TAINTING for r in reports) or LOCKDEP_OFF in kmsg


@dataclass
class Execution:
    """One program's run on a kernel. results is empty when setup failed or the
    guest crashed; crash says how it ended then; reports are the kernel splats
    the run produced (from /dev/kmsg, or the console when the guest died), in
    log order; prior_reports are those of them logged before the program started
    (deferred work of the program before it); history is what the VM ran since it
    was last (re)started, before this program (at most MAX_HISTORY programs)."""

    results: list[OpResult] = field(default_factory=list)
    raw: RawRun | None = None
    reports: list[Report] = field(default_factory=list)
    prior_reports: list[Report] = field(default_factory=list)
    history: list[Program] = field(default_factory=list)
    crash: str | None = None
    console_tail: str = ""
    setup_error: str | None = None
    kcov_mode: int = KCOV_TRACE_PC  # KCOV_EDGES: call_pcs() holds u64 edges, not PCs

    def call_pcs(self, i: int) -> memoryview:
        assert self.raw is not None
        return self.raw.call_pcs(i)

    def call_cmps(self, i: int) -> Iterator[tuple[int, int, int, int, int]]:
        """A CMP-mode run's comparison records for op i: (type, arg1, arg2, pc, repeats),
        one at a time: a list of them all held a program's up to 2^18 records at once
        (tens of MB the worker's heap kept afterwards). The executor sends each distinct
        record of the program once, under the first op that made it, with the number of
        times the program made it (fuzz/executor/executor.c, cmp_seen)."""
        words = self.call_pcs(i).cast("B").cast("Q")
        n = len(words) // 4 * 4
        for kind, a1, a2, pc in zip(words[0:n:4], words[1:n:4], words[2:n:4], words[3:n:4]):
            yield kind & 0xFFFFFFFF, a1, a2, pc, kind >> 32


class Backend(Protocol):
    name: str
    fd_layout: FdLayout | None  # the executor's fd table at a program's start, if known

    def run(self, prog: Program, kcov: bool = True, timeout: float = ...,
            kcov_mode: int = ...) -> Execution: ...

    def close(self) -> None: ...


def _finish(prog: Program, enc, raw: RawRun,  # type: ignore[no-untyped-def]
            kcov_mode: int) -> Execution:
    ex = Execution(raw=raw, reports=parse(raw.kmsg), kcov_mode=kcov_mode)
    head, sep, _ = raw.kmsg.partition(KMSG_PROGRAM_START + "\n")
    if sep:  # the agent's marker: lines before it were logged before the program started
        start = head.count("\n")
        ex.prior_reports = [r for r in ex.reports if r.line < start]
    if raw.setup_errno:
        what = f"buffer {raw.setup_step - 1}" if raw.setup_step else "opening /dev/iommu"
        ex.setup_error = f"setup failed at {what}: errno {raw.setup_errno}"
        return ex
    try:
        ex.results = decode(prog, enc, raw.arena, raw.results, raw.captures)
    except FaultInjectionUnavailable as e:
        ex.setup_error = str(e)
    return ex


@dataclass
class InFlight:
    """A program sent to the guest whose results are not in yet (VMBackend.submit)."""

    prog: Program
    enc: Encoded
    history: list[Program]  # what the kernel ran before it since its last start
    kcov_mode: int
    timeout: float
    crash: GuestCrash | None = None  # the send itself found the guest dead or stuck
    sent: float = field(default_factory=time.monotonic)
    raw: RawRun | None = None  # LocalBackend: ran at once


class VMBackend:
    """Runs programs in a qemu guest; restarts it after a crash or hang."""

    name = "vm"
    fd_layout: FdLayout | None = AGENT_FDS

    def __init__(self, kernel: Path, cfg: VMConfig | None = None,
                 workdir: Path | None = None, timeout: float = 120.0) -> None:
        self.vm = VM(cfg or VMConfig(kernel=kernel), workdir)
        self.timeout = timeout  # a program that has not answered by then is a hang
        # What this kernel ran since its last start (a restart restores the snapshot,
        # so that is "since the boot"): kept with findings, replayed by the minimizer.
        self.history: deque[Program] = deque(maxlen=MAX_HISTORY)
        self._starts = 0
        path = os.environ.get(RECORD_ENV)
        # line-buffered: libFuzzer's exit() leaves without closing it
        self._record = open(path, "a", buffering=1) if path else None
        self.vm.start()

    def run(self, prog: Program, kcov: bool = True, timeout: float | None = None,
            kcov_mode: int = KCOV_TRACE_PC) -> Execution:
        return self.collect(self.submit(prog, kcov, timeout, kcov_mode))

    def submit(self, prog: Program, kcov: bool = True, timeout: float | None = None,
               kcov_mode: int = KCOV_TRACE_PC) -> InFlight:
        """Send prog to the guest and return at once: the host works while the guest
        runs it, until collect. Only call it once the last program's results are in
        (collect restarted a kernel they left tainted): one program at a time."""
        enc = encode(prog, kcov=kcov, kcov_mode=kcov_mode)
        if self.vm.starts != self._starts:
            self.history.clear()
            self._starts = self.vm.starts
        fl = InFlight(prog, enc, list(self.history), kcov_mode, timeout or self.timeout)
        self.history.append(prog)
        if self._record is not None:
            self._record.write(json.dumps({"kcov": kcov, "kcov_mode": kcov_mode,
                                           "prog": prog.to_json()}) + "\n")
        try:
            self.vm.send_program(enc.wire)
        except GuestCrash as crash:
            fl.crash = crash
        return fl

    def collect(self, fl: InFlight) -> Execution:
        """The results of the program submit sent; the guest restarted after a crash, a
        hang or a splat that taints the kernel, before the next program is sent."""
        crash = fl.crash
        if crash is None:
            try:
                # a hang is timed from the send, as when nothing ran between
                left = fl.timeout - (time.monotonic() - fl.sent)
                raw = self.vm.receive_results(max(left, 1.0))
            except GuestCrash as c:
                crash = c
        if crash is not None:
            ex = Execution(reports=crash.reports, crash=crash.what,
                           console_tail=crash.console_tail, history=fl.history)
            self.vm.restart()
            return ex
        ex = _finish(fl.prog, fl.enc, raw, fl.kcov_mode)
        ex.history = fl.history
        # Console reports are a second source: kmsg already has them while the guest lives.
        self.vm.take_console_reports()
        if taints(ex.reports, raw.kmsg):
            # memory may be corrupt, or lockdep switched itself off: start clean
            self.vm.restart()
        return ex

    def close(self) -> None:
        if self._record is not None:
            self._record.close()
        self.vm.stop()


class LocalBackend:
    """This machine's own kernel. Never the default: the user asks for it by name."""

    name = "local"
    # the executor runs inside this Python process: its fd table is not the model's
    fd_layout: FdLayout | None = None

    def __init__(self) -> None:
        from fuzz.executor.runner import Runner

        self.runner = Runner()

    def run(self, prog: Program, kcov: bool = True, timeout: float = 0,
            kcov_mode: int = KCOV_TRACE_PC) -> Execution:
        return self.collect(self.submit(prog, kcov, timeout, kcov_mode))

    def submit(self, prog: Program, kcov: bool = True, timeout: float = 0,
               kcov_mode: int = KCOV_TRACE_PC) -> InFlight:
        """Runs it at once (in this process: nothing runs beside it)."""
        enc = encode(prog, kcov=kcov, kcov_mode=kcov_mode)
        return InFlight(prog, enc, [], kcov_mode, timeout,
                        raw=unpack_response(self.runner.run(enc.wire)))

    def collect(self, fl: InFlight) -> Execution:
        assert fl.raw is not None
        return _finish(fl.prog, fl.enc, fl.raw, fl.kcov_mode)

    def close(self) -> None:
        pass
