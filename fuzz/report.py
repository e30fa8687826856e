"""Turn kernel console output into structured crash reports.

Modelled on syzkaller's pkg/report for Linux: spot report headers, gather each
report's lines, and derive a syzkaller-style title ("WARNING in f", "KASAN:
slab-use-after-free Read in f", "possible deadlock in f", ...) whose hash
deduplicates crashes.

Lines carry `[ time][ Tpid]` / `[ time][ Cn]` prefixes (CONFIG_PRINTK_CALLER)
or none. Each report follows its header's caller id, so output interleaved from
other tasks stays out; lines without a caller id form one shared stream.

Standard library only: the VM layer imports this without the rest of the fuzzer.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

__all__ = ["LogScanner", "Report", "is_panic", "parse", "title_signature"]


@dataclass
class Report:
    """One kernel report.

    kind: WARNING, KASAN, KFENCE, UBSAN, BUG, LOCKDEP, REFCOUNT, HUNG, RCU_STALL,
        SOFT_LOCKUP, GPF, OOPS, PANIC or LEAK (kmemleak).
    title: syzkaller-style, e.g. "WARNING in f"; signature: title_signature(title).
    frames: function names of the first Call Trace, "? " (unreliable) frames dropped.
    text: the report's lines, prefixes stripped.
    guilty_frame: the function the title names; for titles naming none, the best
        guess from the stack (may be "").
    file_line: "path.c:N" when the header gives it.
    panicked: the kernel panicked inside this report (or it is the panic).
    secondary: a panic that only follows up an earlier report ("Fatal exception",
        "panic_on_warn set", ...).
    complete: the report's own end was seen (end marker, closing "=====", end of
        its stack), rather than it being cut short by another report from the same
        caller, flush() or the length cap.
    context: the printk caller id ("T123", "C0"; "" without one).
    line: index of the header line in the input; text may start a few lines
        earlier ("cut here", a WARN() message, a lockdep/KASAN banner).
    """

    kind: str
    title: str
    frames: list[str] = field(default_factory=list)
    text: str = ""
    signature: str = ""
    guilty_frame: str = ""
    file_line: str | None = None
    panicked: bool = False
    secondary: bool = False
    complete: bool = True
    context: str = ""
    line: int = 0

    def __post_init__(self) -> None:
        if not self.signature:
            self.signature = title_signature(self.title)


def title_signature(title: str) -> str:
    """Dedup key: same title, same signature, across runs and hosts."""
    return hashlib.sha1(title.encode()).hexdigest()[:16]


def is_panic(text: str) -> bool:
    return "Kernel panic - not syncing" in text


def parse(text: str) -> list[Report]:
    """Every report in a chunk of kernel log, in the order they start."""
    scanner = LogScanner()
    reports = scanner.feed(text) + scanner.flush()
    return sorted(reports, key=lambda r: r.line)


# ---------------------------------------------------------------------------
# Line-level syntax.

_PREFIX = re.compile(r"^(?:<\d+>)?\[\s*\d+\.\d+\](?:\[\s*([CT]\d+)\])?\s?")
# " func+0x1a/0x30", " ? func+0x1a/0x30 [mod]", symbolized " func+0x1/0x2 a/b.c:12",
# " inlined a/b.c:12 [inline]", old "[<ffffffff81000000>] func+0x1/0x2".
_FRAME = re.compile(
    r"^\s*(?:\[<[0-9a-fx]+>\]\s*)?(\? )?([A-Za-z_][\w.$]*)"
    r"(?:\+0x[0-9a-f]+/0x[0-9a-f]+(?: \[[\w.-]+(?: [0-9a-f]+)?\])?(?: \S+:\d+)?"
    r"| \S+:\d+ \[inline\])\s*$"
)
_STACK_MARK = re.compile(r"^\s*<(/?)([A-Z#_0-9]+)>\s*$")
_REGS = re.compile(
    r"^(?:RIP|RSP|RAX|RBX|RCX|RDX|RSI|RDI|RBP|R\d{1,2}|FS|GS|CS|DS|ES|SS|CR\d|DR\d|PKRU|Code"
    r"|EFLAGS|ORIG_RAX)\s*:"
)
# Only kernel-mode (CS 0010) RIPs name kernel code; 0033 is user space.
_RIP = re.compile(r"^RIP: 0010:(?:\[<[0-9a-f]+>\] )?([A-Za-z_][\w.$]*)(?:\+0x| )")
# kmemleak lists the allocation stack under "backtrace (crc N):"; lockdep's "stack
# backtrace:" is no trace header (the "Call Trace:" follows it).
_CALL_TRACE = re.compile(r"^(?:Call [Tt]race:|backtrace(?: \(crc [0-9a-f]+\))?:)")
_AT_FUNC = re.compile(r", at: (?:\[<[0-9a-f]+>\] )?([A-Za-z_][\w.$]*)\+0x")
_IP_SYM = re.compile(r"^\s*\[<[0-9a-fx]+>\] ([A-Za-z_][\w.$]*)\+0x")
_SEP = re.compile(r"^={10,}$")
_END_TRACE = re.compile(r"^---\[ end trace\b")
_END_PANIC = re.compile(r"^---\[ end Kernel panic\b")
_CUT_HERE = "------------[ cut here ]------------"
_PANIC_LINE = re.compile(r"^Kernel panic - not syncing: ?(.*)$")
_SECONDARY_PANIC = re.compile(
    r"Fatal exception|panic_on_warn set|panic_on_oops|hung_task: blocked tasks|"
    r"softlockup: hung tasks|hardlockup: |RCU Stall|kasan\.fault=panic|warned too often|"
    r"Aiee, killing interrupt handler"
)
_MAX_LINES = 1000  # a report that never ends must not swallow the rest of the log


def _split(raw: str) -> tuple[str, str]:
    """(caller id or "", message without prefix or trailing blanks)."""
    m = _PREFIX.match(raw)
    ctx, msg = ("", raw) if m is None else (m.group(1) or "", raw[m.end() :])
    # kmemleak prints every line of its report through pr_fmt: drop that so its
    # frames parse like any other.
    return ctx, msg.removeprefix("kmemleak: ").rstrip()


def _func(name: str) -> str:
    # ".constprop.0", ".isra.0", ".cold" etc. vary between builds; titles must not.
    return name.split(".", 1)[0]


# ---------------------------------------------------------------------------
# Report headers. Each header says how its report ends:
#   marker: "---[ end trace" (any report ends on that, and on "---[ end Kernel panic")
#   sep:    a "=====" line (KASAN/KFENCE print one after the body)
#   stack:  the end of the first Call Trace (lockdep, might_sleep, stalls: they stop there)
#   hung:   the "=====" closing lockdep's "Showing all locks held" that follows the tasks
#   locks:  the last "#N:" line of the held-locks list (nothing comes after it)
#   none:   only another report, flush() or the cap


@dataclass(frozen=True)
class _Hdr:
    kind: str
    rule: str
    oops: bool = False  # "Oops: ..." line: continues a BUG header instead when one is open
    panic: bool = False


_LOCKDEP_STACKFUL = (
    r"possible circular locking dependency detected|possible recursive locking detected|"
    r"inconsistent lock state|possible irq lock inversion dependency detected|"
    r"\S+-safe -> \S+-unsafe lock order detected|bad unlock balance detected!|"
    r"held lock freed!|suspicious RCU usage|Nested lock was not taken|.*still has locks held!"
)

_HEADERS: list[tuple[re.Pattern[str], _Hdr]] = [
    (re.compile(r"^BUG: KASAN: "), _Hdr("KASAN", "sep")),
    (re.compile(r"^BUG: KFENCE: "), _Hdr("KFENCE", "sep")),
    (re.compile(r"^UBSAN: "), _Hdr("UBSAN", "marker")),
    (re.compile(r"^(?:watchdog: )?BUG: soft lockup\b"), _Hdr("SOFT_LOCKUP", "stack")),
    (re.compile(r"^BUG: workqueue lockup\b"), _Hdr("BUG", "none")),
    (re.compile(rf"^(?:WARNING|BUG): (?:{_LOCKDEP_STACKFUL})"), _Hdr("LOCKDEP", "stack")),
    (
        re.compile(r"^(?:WARNING|BUG): lock held when returning to user space"),
        _Hdr("LOCKDEP", "locks"),
    ),
    (re.compile(r"^\[ BUG: Invalid wait context \]"), _Hdr("LOCKDEP", "stack")),
    (re.compile(r"^INFO: trying to register non-static key"), _Hdr("LOCKDEP", "stack")),
    (re.compile(r"^[Kk]ernel BUG at "), _Hdr("BUG", "marker")),
    (
        re.compile(r"^BUG: (?:unable to handle|kernel NULL pointer dereference)"),
        _Hdr("BUG", "marker"),
    ),
    # Other BUG:s end with their stack unless an "Oops:" follows (then with the oops).
    (re.compile(r"^BUG: (?!no syscalls)"), _Hdr("BUG", "stack")),
    (
        re.compile(r"^WARNING: (?:CPU: \d+ PID: \d+ at |\S+\.[ch]:\d+ at )"),
        _Hdr("WARNING", "marker"),
    ),
    (
        re.compile(r"^WARNING: (?!.*(?:mitigation|CPU_SRSO|Unprivileged eBPF|mand mount))"),
        _Hdr("WARNING", "stack"),
    ),
    (re.compile(r"^INFO: task .* blocked for more than \d+ seconds"), _Hdr("HUNG", "hung")),
    (
        re.compile(r"^(?:rcu: )?INFO: rcu_\w+ (?:self-)?detected (?:expedited )?stall"),
        _Hdr("RCU_STALL", "stack"),
    ),
    (re.compile(r"^(?:Oops: )?general protection fault\b"), _Hdr("GPF", "marker")),
    (re.compile(r"^Oops: "), _Hdr("OOPS", "marker", oops=True)),
    (re.compile(r"^PANIC: double fault"), _Hdr("OOPS", "marker")),
    (re.compile(r"^Kernel panic - not syncing"), _Hdr("PANIC", "marker", panic=True)),
    (re.compile(r"^unreferenced object 0x[0-9a-f]+ \(size \d+\):"), _Hdr("LEAK", "stack")),
]


_HEADER_START = frozenset("BWUIKkOPgruw[")  # cheap pre-check: most lines are not headers


def _header(msg: str) -> _Hdr | None:
    if not msg or msg[0] not in _HEADER_START:
        return None
    for rx, hdr in _HEADERS:
        if rx.match(msg):
            return hdr
    return None


class _Open:
    """A report being collected: decides, line by line, when it is over."""

    def __init__(self, hdr: _Hdr, ctx: str, line: int, prefix: list[str], header: str) -> None:
        self.kind = hdr.kind
        self.rule = hdr.rule
        self.ctx = ctx
        self.line = line
        self.lines = [*prefix, header]
        self.head = len(prefix)  # index of the header line in self.lines
        self.trace = 0  # 0: before the first Call Trace, 1: inside it, 2: past it
        self.traceback = False  # collecting other CPUs' NMI backtraces
        self.panicked = hdr.panic
        self.locks_banner = False
        self.locks_left: int | None = None

    def absorbs(self, hdr: _Hdr, own: bool) -> bool:
        """Whether a header line continues this report rather than starting one."""
        if hdr.oops and self.kind == "BUG" and self.trace == 0:
            return True  # "kernel BUG at"/"BUG: unable to handle" then "Oops: ..."
        return hdr.panic and own and not self.panicked  # panic_on_warn & co.

    def absorb(self, hdr: _Hdr, msg: str) -> None:
        self.lines.append(msg)
        self.rule = "marker"  # an oops or panic in progress ends with its marker
        self.panicked = self.panicked or hdr.panic

    def add(self, msg: str) -> bool:
        """Append a line; True when it ends the report."""
        self.lines.append(msg)
        s = msg.strip()
        if "Sending NMI from CPU" in s or s.startswith("NMI backtrace for cpu"):
            self.traceback = True
        if _END_PANIC.match(s) or _END_TRACE.match(s):
            return True
        if self.trace == 0 and _CALL_TRACE.match(s):
            self.trace = 1
            return False
        if self.trace == 1:
            if s == "</TASK>" or not (
                _FRAME.match(msg) or _STACK_MARK.match(msg) or _REGS.match(s) or not s
            ):
                self.trace = 2
                if self.rule == "stack":
                    return True
        if self.rule == "sep":
            return bool(_SEP.match(s))
        if self.rule == "hung":
            if s.startswith("Showing all locks held in the system"):
                self.locks_banner = True
            return (self.locks_banner and bool(_SEP.match(s))) or (
                self.trace == 2 and s == "INFO: lockdep is turned off."
            )
        if self.rule == "locks":
            m = re.match(r"^(\d+) locks? held by ", s)
            if m:
                self.locks_left = int(m.group(1))
            elif s.startswith("no locks held by"):
                return True
            elif self.locks_left and re.match(r"^#\d+:", s):
                self.locks_left -= 1
                return self.locks_left == 0
        return False


class LogScanner:
    """Incremental parse(): feed console output as it arrives.

    feed() returns the reports that completed within the chunk (see Report.complete
    for what ends one); flush() ends everything still open, e.g. when the VM stops
    or a program finished and the console went quiet. Partial lines are kept until
    their newline arrives (or flush()).
    """

    def __init__(self) -> None:
        self._buf = ""
        self._line_no = 0
        self._open: dict[str, _Open] = {}
        # Per caller: lines since the last "cut here" / "=====" that may turn out
        # to be the start of a report (WARN() message, lockdep/KASAN banner).
        self._pending: dict[str, list[str]] = {}
        self.panicked = False  # a "Kernel panic - not syncing" line went by

    def feed(self, chunk: str) -> list[Report]:
        self._buf += chunk
        *lines, self._buf = self._buf.split("\n")
        out: list[Report] = []
        for raw in lines:
            out.extend(self._line(raw))
        return sorted(out, key=lambda r: r.line)

    def flush(self) -> list[Report]:
        out: list[Report] = []
        if self._buf:
            out.extend(self._line(self._buf))
            self._buf = ""
        for rep in sorted(self._open.values(), key=lambda o: o.line):
            out.append(_finish(rep, complete=False))
        self._open.clear()
        self._pending.clear()
        return sorted(out, key=lambda r: r.line)

    def _close(self, rep: _Open, complete: bool) -> Report:
        if self._open.get(rep.ctx) is rep:
            del self._open[rep.ctx]
        return _finish(rep, complete)

    def _line(self, raw: str) -> list[Report]:
        n = self._line_no
        self._line_no += 1
        ctx, msg = _split(raw)
        if msg.startswith("Kernel panic - not syncing"):
            self.panicked = True
        own = self._open.get(ctx)
        rep = own
        if rep is None and ctx.startswith("C"):
            # Another CPU's NMI backtrace belongs to the report that asked for it.
            rep = next((o for o in self._open.values() if o.traceback), None)
        out: list[Report] = []
        hdr = _header(msg)
        if hdr is not None:
            if rep is not None and rep.absorbs(hdr, rep is own):
                rep.absorb(hdr, msg)
                return out
            if own is not None:
                out.append(self._close(own, complete=False))
            self._open[ctx] = _Open(hdr, ctx, n, self._pending.pop(ctx, []), msg)
            return out
        if rep is not None:
            if rep.add(msg):
                out.append(self._close(rep, complete=True))
            elif len(rep.lines) > _MAX_LINES:
                out.append(self._close(rep, complete=False))
            return out
        if msg.strip() == _CUT_HERE or _SEP.match(msg.strip()):
            self._pending[ctx] = [msg]
        elif ctx in self._pending:
            pending = self._pending[ctx]
            if len(pending) < 8:
                pending.append(msg)
            else:
                del self._pending[ctx]
        return out


# ---------------------------------------------------------------------------
# Stacks.


@dataclass
class _Stack:
    frames: list[str]  # reliable frames of the first Call Trace
    items: list[tuple[str, str]]  # (stack section or "RIP", function), in print order
    rip: str  # first kernel RIP function, "" if none


def _stack(lines: list[str]) -> _Stack:
    frames: list[str] = []
    items: list[tuple[str, str]] = []
    rip = ""
    state = 0
    section = ""
    for msg in lines:
        s = msg.strip()
        if state == 0:
            m = _RIP.match(s)
            if m:
                if not rip:
                    rip = _func(m.group(1))
                items.append(("RIP", _func(m.group(1))))
            elif _CALL_TRACE.match(s):
                state = 1
            continue
        if s == "</TASK>":
            break
        mark = _STACK_MARK.match(msg)
        if mark:
            section = "" if mark.group(1) else mark.group(2)
            continue
        m = _FRAME.match(msg)
        if m:
            if not m.group(1):
                frames.append(_func(m.group(2)))
                items.append((section, _func(m.group(2))))
            continue
        m = _RIP.match(s)
        if m:
            rip = rip or _func(m.group(1))
            items.append(("RIP", _func(m.group(1))))
            continue
        if _REGS.match(s) or not s:
            continue
        break
    return _Stack(frames, items, rip)


# Infrastructure frames never named in titles: the reporting machinery itself,
# locking and refcount primitives, allocator/usercopy/string helpers, syscall entry.
# LKDTM's trigger functions are exempt: they are what a test provokes.
_SKIP = re.compile(
    r"__warn\w*|warn_slowpath\w*|report_bug|__report_bug|handle_bug|fixup_bug|do_error_trap|"
    r"do_trap|do_int3\w*|exc_\w+|asm_\w+|sysvec_\w+|__sysvec_\w+|die|__die\w*|oops_\w+|"
    r"panic|nmi_panic|check_panic_on_warn|"
    r"dump_stack\w*|show_stack\w*|show_regs|__show_regs|show_trace_log_lvl|"
    r"print_report|print_address_description|print_track|describe_object\w*|"
    r"kasan_\w+|__kasan_\w+|__asan_\w+|__hwasan_\w+|__ubsan_\w+|ubsan_\w+|__tsan_\w+|"
    r"kcsan_\w+|kmsan_\w+|__sanitizer_\w+|write_comp_data|check_region_inline|"
    r"check_memory_region\w*|__fortify_report|__fortify_panic|fortify_panic|"
    r"lock_acquire\w*|__lock_acquire\w*|lock_release|__lock_release|lock_acquired|"
    r"lock_contended|lockdep_\w+|__lockdep_\w+|validate_chain|check_prevs?_add|"
    r"check_noncircular|check_deadlock|check_irq_usage|check_usage_\w+|check_wait_context|"
    r"check_flags|mark_lock\w*|mark_usage|mark_held_locks|print_\w*bug\w*|print_lock\w*|"
    r"valid_state|debug_check_no_locks_freed|debug_show_held_locks|lock_is_held\w*|"
    r"_?_?mutex_\w+|_?_?rt_mutex_\w+|_?_?ww_mutex_\w+|"
    r"down|down_\w+|__down\w*|up|up_read|up_write|__up_\w+|_?_?rwsem_\w+|"
    r"_raw_\w+|__raw_\w+|do_raw_\w+|(?:spin|read|write)_(?:un)?lock\w*|queued_\w+|"
    r"native_queued_\w+|__pv_queued_\w+|"
    r"refcount_\w+|__refcount_\w+|kref_\w+|"
    r"__might_sleep|__might_resched|___might_sleep|__might_fault|might_fault|__cant_sleep|"
    r"_?_?copy_(?:from|to)_user\w*|_?copy_(?:page_)?(?:from|to)_iter\w*|rep_movs_alternative|"
    r"copy_user_\w+|_{0,2}(?:get|put)_user\w*|strncpy_from_user|v?memdup_user\w*|"
    r"_?_?check_object_size|_?_?check_heap_object|usercopy_abort|"
    r"_{0,2}mem(?:cpy|set|move|cmp|chr|scan)\w*|"
    r"str(?:len|nlen|cpy|ncpy|scpy|lcpy|cat|ncat|cmp|ncmp|casecmp|chr|rchr|str|dup|ndup)|"
    r"kstrdup\w*|kmemdup\w*|"
    r"kv?free\w*|kfree_\w+|__kmalloc\w*|kv?[mzc]alloc\w*|__kvmalloc\w*|kvrealloc\w*|"
    r"krealloc\w*|_?_?kmem_cache_\w+|_{0,3}slab_\w+|__do_kmalloc\w*|kmalloc_\w+|"
    r"_?_?alloc_pages\w*|_?_?free_pages\w*|_?_?folio_alloc\w*|_?_?vfree\w*|_?_?vmalloc\w*|"
    r"vzalloc\w*|"
    r"__list_\w+|list_(?:add|del)\w*|debug_object\w*|"
    r"do_syscall_\w+|x64_sys_call|entry_SYSCALL\w*|__x64_sys_\w+|__ia32_sys_\w+|"
    r"__do_sys_\w+|__se_sys_\w+|syscall_exit\w*"
)


def _skipped(name: str, extra: re.Pattern[str] | None = None) -> bool:
    if name.startswith("lkdtm_"):
        return False
    return bool(_SKIP.fullmatch(name) or (extra is not None and extra.fullmatch(name)))


def _pick(cands: list[str], extra: re.Pattern[str] | None = None) -> str:
    """First candidate that is not infrastructure; the first one if all are."""
    for name in cands:
        if name and not _skipped(name, extra):
            return name
    return next((c for c in cands if c), "")


# Stalls and lockups land at a random point of a loop; like syzkaller, name the
# frame called by the dispatcher that led there (the iommufd op handler, the LKDTM
# trigger, the work function) so one bug gets one title.
_STALL_ANCHOR = re.compile(
    r"iommufd_fops_ioctl|iommufd_vfio_ioctl|iommufd_test|vfio_\w*fops_unl_ioctl|lkdtm_do_action|"
    r"process_one_work|"
    r"worker_thread|kthread|ret_from_fork\w*|smpboot_thread_fn|run_ksoftirqd|"
    r"handle_softirqs|__do_softirq|do_softirq\w*|call_timer_fn|__run_timers|"
    r"vfs_(?:read|write|ioctl)|ksys_(?:read|write|ioctl)|__x64_sys_\w+|do_syscall_\w+|"
    r"x64_sys_call|task_work_run|__fput|do_mmap|mmap_region|do_dentry_open"
)
_STALL_SKIP = re.compile(r"\w*rcu\w*|\w*apic_timer_interrupt\w*|\w*hrtimer\w*|cpu_relax")


def _stall_frame(st: _Stack) -> str:
    # The interrupted code: the task stack, headed by the RIP the interrupt saved.
    cands: list[str] = []
    last_rip = ""
    for section, name in st.items:
        if section == "RIP":
            last_rip = last_rip if cands else name
        elif section in ("TASK", "") and not name.startswith("asm_"):
            if not cands and last_rip:
                cands.append(last_rip)
            cands.append(name)
    if not cands:
        cands = [last_rip] if last_rip else list(st.frames)
    prev = ""  # the last non-infrastructure frame before the dispatcher
    for name in cands:
        if _STALL_ANCHOR.fullmatch(name):
            return prev or name
        if not _skipped(name, _STALL_SKIP):
            prev = name
    return _pick(cands, _STALL_SKIP)


# A hung task sleeps in the scheduler or a lock; the victim is the first frame
# outside them. Waits on RCU grace periods all look alike, so they share a title.
_HANG_BUCKET = {
    "synchronize_rcu": "synchronize_rcu",
    "synchronize_srcu": "synchronize_rcu",
    "synchronize_net": "synchronize_rcu",
    "rtnl_lock": "rtnl_lock",
}
_HANG_SKIP = (
    "sched",
    "_lock",
    "_slowlock",
    "down",
    "rwsem",
    "completion",
    "kthread",
    "wait",
    "synchronize",
    "context_switch",
    "__switch_to",
    "cancel_delayed_work",
    "rcu_barrier",
    "mutex",
    "sleep",
    "freezer",
)


def _hang_frame(frames: list[str]) -> str:
    for name in frames:
        for anchor, bucket in _HANG_BUCKET.items():
            if anchor in name:
                return bucket
    for name in frames:
        if name.startswith("lkdtm_") or not (any(s in name for s in _HANG_SKIP) or _skipped(name)):
            return name
    return frames[0] if frames else ""


# ---------------------------------------------------------------------------
# Titles.


def _in(prefix: str, func: str) -> str:
    return f"{prefix} in {func}" if func else prefix


def _first(rx: re.Pattern[str], lines: list[str], start: int = 0) -> re.Match[str] | None:
    for msg in lines[start:]:
        m = rx.search(msg)
        if m:
            return m
    return None


def _at_after(lines: list[str], start: int, marker: str) -> list[str]:
    """Functions of the ", at: f+0x" lines after the first line containing marker."""
    for i in range(start, len(lines)):
        if marker in lines[i]:
            return [_func(m.group(1)) for m in map(_AT_FUNC.search, lines[i + 1 :]) if m]
    return []


_DEADLOCK_SKIP = re.compile(
    r"process_one_work|_?_?flush_workqueue|drain_workqueue|destroy_workqueue|_?_?flush_work|"
    r"start_flush_work|touch_\w*_lockdep_map"
)
_SCHED_SKIP = re.compile(
    r"\w*schedule\w*|_?_?cond_resched|msleep\w*|usleep\w*|ssleep|__schedule_bug|"
    r"schedule_debug|preempt_\w+"
)
_SLEEP_SKIP = re.compile(r"msleep\w*|usleep\w*|ssleep|_?_?cond_resched|might_sleep\w*")
_LEAK_SKIP = re.compile(
    r"kmemleak_\w+|\w*alloc\w*|\w*kmem_cache\w*|\w*slab\w*|\w*strn?dup\w*|\w*memdup\w*|"
    r"\w*kv?asprintf\w*|\w*kmemdup\w*"
)
_BAD_PAGE_SKIP = re.compile(
    r"bad_page|_?_?(?:free|put|release|update)_\w*pages?\w*|free_unref\w*|_*folio\w*|"
    r"free_pages_prepare|page_frag_free"
)
_RCU_SKIP = re.compile(r"\w*rcu\w*|lockdep_rcu_suspicious")
_USERCOPY_SKIP = re.compile(r"\w*usercopy\w*|__check\w*|check_\w+")
_LOCKDEP_TITLES = [
    ("circular locking", "possible deadlock"),
    ("recursive locking", "possible deadlock"),
    ("irq lock inversion", "possible deadlock"),
    ("-unsafe lock order", "possible deadlock"),
]


def _finish(rep: _Open, complete: bool) -> Report:
    lines = rep.lines
    st = _stack(lines)
    head = lines[rep.head]
    kind, title, guilty, file_line = _describe(rep.kind, head, lines, rep.head, st)
    secondary = False
    if kind == "PANIC":
        secondary = bool(_SECONDARY_PANIC.search(head))
    return Report(
        kind=kind,
        title=title,
        frames=st.frames,
        text="\n".join(lines),
        guilty_frame=guilty,
        file_line=file_line,
        panicked=rep.panicked,
        secondary=secondary,
        complete=complete,
        context=rep.ctx,
        line=rep.line,
    )


def _describe(
    kind: str, head: str, lines: list[str], at: int, st: _Stack
) -> tuple[str, str, str, str | None]:
    """(kind, title, guilty function, file:line) for a report."""
    body = lines[at:]
    trace = st.frames

    if kind == "WARNING":
        m = re.match(
            r"^WARNING: (?:CPU: \d+ PID: \d+ at (?:(\S+):(\d+) )?|(\S+):(\d+) at )"
            r"([A-Za-z_][\w.$]*)?",
            head,
        )
        if m and (m.group(1) or m.group(3) or m.group(5)):
            file = m.group(1) or m.group(3)
            line = m.group(2) or m.group(4)
            file_line = f"{file}:{line}" if file else None
            func = _func(m.group(5) or st.rip)
            refc = _first(re.compile(r"refcount_t: ([^;.]+)"), lines[: at + 1])
            if refc or (file and file.endswith("lib/refcount.c")):
                # refcount_t WARN()s name what went wrong on the line before.
                guilty = _pick([func, *trace])
                what = f"refcount_t: {refc.group(1).strip()}" if refc else "WARNING: refcount bug"
                return "REFCOUNT", _in(what, guilty), guilty, file_line
            if file and file.endswith("kernel/locking/lockdep.c"):
                guilty = _pick([func, *trace])
                return kind, _in("WARNING: locking bug", guilty), guilty, file_line
            guilty = _pick([func, *trace])
            return kind, _in("WARNING", guilty), guilty, file_line
        # Some other "WARNING: ..." line: keep its words, name the stack.
        what = _cut(head)
        guilty = _pick([st.rip, *trace])
        return kind, _in(what, guilty), guilty, None

    if kind in ("KASAN", "KFENCE"):
        m = re.match(rf"^BUG: {kind}: (.+?) in ([A-Za-z_][\w.$]*)", head)
        if not m:
            return kind, f"{kind}: {_cut(head[len(kind) + 7 :])}", _pick(trace), None
        bug, func = m.group(1), _func(m.group(2))
        guilty = _pick([func, *trace])
        acc = _first(re.compile(r"^(Read|Write) (?:of size \d+ )?at addr"), body)
        what = f"{kind}: {bug} {acc.group(1)}" if acc else f"{kind}: {bug}"
        return kind, _in(what, guilty), guilty, None

    if kind == "UBSAN":
        m = re.match(r"^UBSAN: (.+?) in (\S+?):(\d+)(?::\d+)?\s*$", head)
        if m:
            guilty = _pick(trace)
            return kind, _in(f"UBSAN: {m.group(1)}", guilty), guilty, f"{m.group(2)}:{m.group(3)}"
        m = re.match(r"^UBSAN: (.+?)(?: in |$)", head)
        guilty = _pick(trace)
        return kind, _in(f"UBSAN: {m.group(1) if m else 'bug'}", guilty), guilty, None

    if kind == "SOFT_LOCKUP":
        guilty = _stall_frame(st)
        return kind, _in("BUG: soft lockup", guilty), guilty, None

    if kind == "RCU_STALL":
        guilty = _stall_frame(st)
        return kind, _in("INFO: rcu detected stall", guilty), guilty, None

    if kind == "HUNG":
        guilty = _hang_frame(trace)
        return kind, _in("INFO: task hung", guilty), guilty, None

    if kind == "LOCKDEP":
        return (kind, *_describe_lockdep(head, body, trace))

    if kind == "LEAK":
        guilty = _pick(trace, _LEAK_SKIP)
        return kind, _in("memory leak", guilty), guilty, None

    if kind == "BUG":
        return (kind, *_describe_bug(head, body, st))

    if kind == "GPF":
        guilty = _pick([st.rip, *trace])
        return kind, _in("general protection fault", guilty), guilty, None

    if kind == "OOPS":
        m = re.match(r"^(PANIC: double fault|(?:Oops: )?(.+?)(?::|,| \[#|$))", head)
        what = (m.group(2) or m.group(1)) if m else "Oops"
        what = {"stack segment": "stack segment fault"}.get(what, what)
        guilty = _pick([st.rip, *trace])
        return kind, _in(what, guilty), guilty, None

    # PANIC
    m = _PANIC_LINE.match(head)
    msg = m.group(1) if m else head
    m = re.match(r"stack-protector: Kernel stack is corrupted in: ([A-Za-z_][\w.$]*)", msg)
    if m:
        guilty = _func(m.group(1))
        return kind, f"kernel panic: stack is corrupted in {guilty}", guilty, None
    msg = re.sub(r"\+0x[0-9a-f]+/0x[0-9a-f]+", "", msg)
    msg = re.sub(r"\s+", " ", msg).removesuffix("...").strip()
    if msg.startswith("Attempted to kill init!"):
        msg = "Attempted to kill init!"
    return kind, f"kernel panic: {msg}", _pick(trace), None


def _cut(msg: str) -> str:
    """A header's words up to where per-instance details (addresses, pids) begin:
    "BUG: stack guard page was hit at ffffc900..." -> "BUG: stack guard page was hit"."""
    m = re.match(r"^\[? ?((?:BUG|WARNING|INFO): )?(.*?)\s*\]?$", msg)
    kind, rest = (m.group(1) or "", m.group(2)) if m else ("", msg)
    m = re.match(r"(.*?)(?=: |:$|,|!| - | at | in | on | for | \S+:\S|\.$|\s*$)", rest)
    words = (m.group(1) if m else rest).strip()
    return f"{kind}{words}" if words else msg


def _describe_lockdep(head: str, body: list[str], trace: list[str]) -> tuple[str, str, str | None]:
    for marker, prefix in _LOCKDEP_TITLES:
        if marker in head:
            where = "just changed the state of lock" if "inversion" in head else "trying to acquire"
            guilty = _pick([*_at_after(body, 0, where)[:2], *trace], _DEADLOCK_SKIP)
            return _in(prefix, guilty), guilty, None
    if "inconsistent lock state" in head:
        guilty = _pick(trace)
        return _in("inconsistent lock state", guilty), guilty, None
    if "bad unlock balance" in head:
        m = _first(_IP_SYM, body)
        guilty = _pick([_func(m.group(1)) if m else "", *trace])
        return _in("WARNING: bad unlock balance", guilty), guilty, None
    if "held lock freed" in head:
        guilty = _pick([*_at_after(body, 0, "is freeing memory")[:1], *trace])
        return _in(f"{head.split(':', 1)[0]}: held lock freed", guilty), guilty, None
    if "lock held when returning to user space" in head:
        guilty = _pick(_at_after(body, 0, "leaving the kernel with locks still held"))
        return _in("WARNING: lock held when returning to user space", guilty), guilty, None
    if "still has locks held" in head:
        guilty = _pick([*_at_after(body, 0, "still has locks held"), *trace])
        return _in("WARNING: still has locks held", guilty), guilty, None
    if "suspicious RCU usage" in head:
        m = _first(re.compile(r"^(\S+\.[ch]):(\d+) suspicious"), body)
        guilty = _pick(trace, _RCU_SKIP)
        file_line = f"{m.group(1)}:{m.group(2)}" if m else None
        return _in("WARNING: suspicious RCU usage", guilty), guilty, file_line
    if "Nested lock was not taken" in head:
        guilty = _pick(trace)
        return _in("WARNING: nested lock was not taken", guilty), guilty, None
    if "Invalid wait context" in head:
        guilty = _pick(trace)
        return _in("BUG: Invalid wait context", guilty), guilty, None
    guilty = _pick(trace)
    return _in(_cut(head), guilty), guilty, None  # "INFO: trying to register non-static key"


def _describe_bug(head: str, body: list[str], st: _Stack) -> tuple[str, str, str | None]:
    trace = st.frames
    m = re.match(r"^[Kk]ernel BUG at (?:(\S+?):(\d+)!)?", head)
    if m:
        # Without CONFIG_DEBUG_BUGVERBOSE there is no file: "Kernel BUG at f+0x1/0x2 [...]".
        file = m.group(1) or ""
        file_line = f"{file}:{m.group(2)}" if file else None
        if file.endswith("lib/list_debug.c"):
            guilty = _pick([st.rip, *trace])
            return _in("BUG: corrupted list", guilty), guilty, file_line
        if file.endswith("mm/usercopy.c"):
            guilty = _pick([st.rip, *trace], _USERCOPY_SKIP)
            return _in("BUG: bad usercopy", guilty), guilty, file_line
        guilty = _pick([st.rip, *trace])
        return _in("kernel BUG", guilty), guilty, file_line
    if re.match(r"^BUG: (?:unable to handle page fault|unable to handle kernel paging)", head):
        guilty = _pick([st.rip, *trace])
        return _in("BUG: unable to handle kernel paging request", guilty), guilty, None
    if re.match(r"^BUG: (?:unable to handle kernel NULL|kernel NULL pointer)", head):
        guilty = _pick([st.rip, *trace])
        return _in("BUG: unable to handle kernel NULL pointer dereference", guilty), guilty, None
    m = re.match(r"^BUG: sleeping function called from invalid context at (\S+?):(\d+)", head)
    if m:
        guilty = _pick(trace, _SLEEP_SKIP)
        title = _in("BUG: sleeping function called from invalid context", guilty)
        return title, guilty, f"{m.group(1)}:{m.group(2)}"
    if head.startswith("BUG: scheduling while atomic"):
        guilty = _pick(trace, _SCHED_SKIP)
        return _in("BUG: scheduling while atomic", guilty), guilty, None
    if head.startswith("BUG: workqueue lockup"):
        return "BUG: workqueue lockup", "", None
    if head.startswith("BUG: Bad page"):
        guilty = _pick(trace, _BAD_PAGE_SKIP)  # the page allocator only noticed
        return _in(_cut(head), guilty), guilty, None
    guilty = _pick([st.rip, *trace])
    return _in(_cut(head), guilty), guilty, None


# syzkaller-style title prefix -> the text the kernel's own header line carries
_TITLE_MARKERS = (
    ("WARNING in ", "WARNING:"),
    ("possible deadlock in ", "possible "),
    ("kernel BUG in ", "kernel BUG"),
    ("general protection fault in ", "general protection fault"),
    ("BUG: unable to handle kernel", "BUG: unable to handle"),
    ("INFO: task hung", "blocked for more than"),
    ("memory leak in ", "unreferenced object"),
)


def splat_keys(title: str) -> list[str]:
    """Strings the splat's lines in the kernel log contain: the kind marker and,
    when the title names one, the function."""
    marker = title.split(" in ")[0]
    for prefix, m in _TITLE_MARKERS:
        if title.startswith(prefix):
            marker = m
            break
    keys = [marker]
    if " in " in title:
        func = title.rsplit(" in ", 1)[1].strip()
        if re.fullmatch(r"[A-Za-z_][\w.]*", func):
            keys.append(func)
    return keys
