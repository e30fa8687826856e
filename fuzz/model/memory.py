"""The user memory of the agent process, as far as the program controls it.

Buffer i lives at buffer_address(i) with its size; "hole" buffers and the
[offset, length] holes of the others are unmapped, and so is everything past a
buffer's end up to the next buffer (the executor guarantees it). The model only
claims to know the window [BUF_BASE, BUF_BASE + MAX_BUFFERS * BUF_STRIDE), the
first page (never mappable) and the non-canonical / kernel half; any other user
address belongs to the agent itself and raises Unsure.

Contents start as pattern_bytes(seed, offset, length); writes (ACCESS_RW) are
kept as a per-page overlay, so a 1 GiB buffer costs nothing until written.
Pages whose contents the model cannot know (a copy that faulted half way) are
tainted and reading them raises Unsure.
"""

from __future__ import annotations

from bisect import bisect_right

from fuzz.model.consts import HPAGE_SIZE, PAGE_SIZE, U64
from fuzz.model.errors import Unsure
from fuzz.prog import BUF_BASE, BUF_STRIDE, MAX_BUFFERS, Buffer, buffer_address
from fuzz.prog.limits import TEST_MEMORY_LIMIT_DEFAULT

_PERIOD = 251
_BLOCKS: dict[int, bytes] = {}


def pattern_bytes(seed: int, offset: int, length: int) -> bytes:
    """fuzz.prog.pattern_bytes with the 251-byte block cached per seed (same bytes,
    checked by tests/test_model.py)."""
    key = seed & 0xFF
    block = _BLOCKS.get(key)
    if block is None:
        block = _BLOCKS[key] = bytes(((k * 37) + seed) & 0xFF for k in range(_PERIOD))
    start = offset % _PERIOD
    reps = (start + length) // _PERIOD + 1
    return (block * reps)[start:start + length]

KNOWN_LO = BUF_BASE
KNOWN_HI = BUF_BASE + MAX_BUFFERS * BUF_STRIDE
# x86_64 4-level paging: TASK_SIZE_MAX = (1 << 47) - PAGE_SIZE; access_ok() fails above it.
TASK_SIZE_MAX = (1 << 47) - PAGE_SIZE
LOW_UNMAPPED = 1 << 16
# CONFIG_TRANSPARENT_HUGEPAGE=y with the sysfs default "always": an anonymous buffer
# may be backed by 2 MiB THPs, which MD_CHECK_REFS skips (PageCompound). Set to
# False if the guest runs with transparent_hugepage/enabled = never.
THP_POSSIBLE = True


class Region:
    """One mapped, contiguous piece of one buffer."""

    __slots__ = ("start", "end", "buf", "base", "writable", "kind", "seed")

    def __init__(self, start: int, end: int, buf: int, base: int, writable: bool, kind: str,
                 seed: int) -> None:
        self.start = start
        self.end = end  # exclusive
        self.buf = buf
        self.base = base  # buffer_address(buf)
        self.writable = writable
        self.kind = kind
        self.seed = seed


class UserMemory:
    def __init__(self, buffers: list[Buffer]) -> None:
        regions: list[Region] = []
        self.buffers = buffers
        for i, b in enumerate(buffers):
            if b.kind == "hole":
                continue
            base = buffer_address(i)
            cuts = sorted((off, off + ln) for off, ln in b.holes)
            pos = 0
            pieces = []
            for s, e in cuts:
                if s > pos:
                    pieces.append((pos, s))
                pos = max(pos, e)
            if pos < b.size:
                pieces.append((pos, b.size))
            for s, e in pieces:
                regions.append(Region(base + s, base + e, i, base, b.kind != "readonly", b.kind,
                                      b.seed))
        regions.sort(key=lambda r: r.start)
        self.regions = regions
        self.starts = [r.start for r in regions]
        self.overlay: dict[int, bytearray] = {}  # page address -> contents
        self.tainted: set[int] = set()  # page addresses with unknown contents
        self.zeroed: set[int] = set()  # page addresses cleared whole (clear_user)
        # selftest.c's iommufd_test_memory_limit (the executor's prologue resets it per
        # program): pages.c's temp arrays, and so its pin calls, are cut to it
        self.temp_memory_limit = TEST_MEMORY_LIMIT_DEFAULT
        # user ranges where an unsure op may have pinned pages the model does not see
        self.unknown_pins: list[tuple[int, int, str]] = []
        # Whether memory outside the program's buffers (the agent's own, or nothing)
        # is there is not the model's to know; for the op being stepped the kernel's
        # errno tells: True - it succeeded, so its pages could be pinned (gup.py);
        # False - it failed with EFAULT, so they could not, nor be read (first_bad;
        # never taken for a write: a write that got in would have hit the agent);
        # None - no answer. Where it is taken it is noted in `assumed`, and
        # Model.step checks the op came out as the kernel's did (else it is unsure).
        self.kernel_ok: bool | None = None
        self.assumed: str | None = None
        # pages.c's locked-memory accounting, for a program without CAP_IPC_LOCK: its
        # RLIMIT_MEMLOCK in pages, and every iopt_pages it made (Pages.account says
        # which counter each is charged to; one that lost its areas holds nothing)
        self.memlock_pages = U64 >> 12
        self.pages: list = []

    def locked_vm(self, account: int) -> int:
        """user->locked_vm (IOPT_PAGES_ACCOUNT_USER) or mm->locked_vm (_MM): the pages
        the program's iopt_pages of that mode hold pinned. Both start at 0: nothing
        else in the guest locks memory (the agent mlocks nothing, runs as root alone)."""
        if self.unknown_pins:
            raise Unsure("pins an unsure op may have taken count against RLIMIT_MEMLOCK")
        return sum(p.npinned() for p in self.pages if p.account == account)

    # -- mapping queries ----------------------------------------------------
    def region_at(self, addr: int) -> Region | None:
        i = bisect_right(self.starts, addr) - 1
        if i >= 0 and addr < self.regions[i].end:
            return self.regions[i]
        return None

    def _unknown(self, addr: int) -> bool:
        """True if the model cannot tell whether addr is mapped. Below LOW_UNMAPPED
        nothing is mapped (the first page never can be; the agent maps nothing in the
        rest of the first 64K either)."""
        if addr < LOW_UNMAPPED or addr >= TASK_SIZE_MAX:
            return False
        return not (KNOWN_LO <= addr < KNOWN_HI)

    def first_bad(self, addr: int, length: int, write: bool,
                  unknown_ok: bool | None = None) -> int | None:
        """First address in [addr, addr+length) that faults for a user copy or GUP
        (unmapped, or read-only when write), or None. Raises Unsure when the range
        leaves the part of the address space the model knows before faulting -
        unless unknown_ok says how to take such memory (True: there, False: not)."""
        if length <= 0:
            return None
        end = addr + length
        if end > U64 + 1:
            end = U64 + 1
        pos = addr
        while pos < end:
            r = self.region_at(pos)
            if r is None:
                if self._unknown(pos):
                    if unknown_ok is None and not write and self.kernel_ok is False:
                        self.assumed = self.assumed or (
                            f"user address {pos:#x} is outside the program's buffers: "
                            "that it faults is taken from the kernel's errno")
                        return pos
                    if unknown_ok is None:
                        raise Unsure(f"user address {pos:#x} is outside the program's "
                                     "buffers")
                    if not unknown_ok:
                        return pos
                    pos = KNOWN_LO if pos < KNOWN_LO else TASK_SIZE_MAX
                    continue
                return pos
            if write and not r.writable:
                return pos
            pos = r.end
        return None

    def maybe_compound(self, page: int) -> bool | None:
        """True: certainly a compound page (hugetlb); None: may be a THP (anon or
        readonly buffer, inside a 2 MiB aligned window of the buffer); False: no."""
        r = self.region_at(page)
        if r is None:
            return False
        if r.kind == "hugetlb":
            return True
        if THP_POSSIBLE and r.kind in ("anon", "readonly"):
            size = self.buffers[r.buf].size
            win = (page - r.base) // HPAGE_SIZE * HPAGE_SIZE
            if win + HPAGE_SIZE <= size:
                return None
        return False

    def one_readable_buffer(self, addr: int, length: int) -> bool:
        """Whether the executor's capture (process_vm_readv) of [addr, addr+length)
        reads it: only inside one mapped piece of a buffer (it faults otherwise, and
        captures nothing), unknown where addr is not the model's to know."""
        r = self.region_at(addr)
        if r is None and self._unknown(addr):
            raise Unsure(f"the capture at {addr:#x} reads memory outside the program's "
                         "buffers", poisoned=False)
        return r is not None and addr + length <= r.end

    # -- contents -------------------------------------------------------------
    def read(self, addr: int, length: int) -> bytes:
        out = bytearray()
        pos = addr
        end = addr + length
        while pos < end:
            page = pos & ~(PAGE_SIZE - 1)
            n = min(end, page + PAGE_SIZE) - pos
            if page in self.tainted:
                raise Unsure(f"contents at {pos:#x} are unknown after a faulting copy",
                             poisoned=False)
            ov = self.overlay.get(page)
            if ov is not None:
                out += ov[pos - page:pos - page + n]
            elif page in self.zeroed:
                out += bytes(n)
            else:
                r = self.region_at(pos)
                if r is None:
                    raise Unsure(f"reading unmapped user memory at {pos:#x}")
                # read the rest of this region's untouched stretch in one go
                stop = min(end, r.end)
                run_end = pos + n
                while run_end < stop:
                    p2 = run_end
                    if p2 in self.overlay or p2 in self.tainted or p2 in self.zeroed:
                        break
                    run_end = min(stop, p2 + PAGE_SIZE)
                out += pattern_bytes(r.seed, pos - r.base, run_end - pos)
                pos = run_end
                continue
            pos += n
        return bytes(out)

    def write(self, addr: int, data: bytes) -> None:
        pos = addr
        i = 0
        end = addr + len(data)
        while pos < end:
            page = pos & ~(PAGE_SIZE - 1)
            n = min(end, page + PAGE_SIZE) - pos
            ov = self.overlay.get(page)
            if ov is None:
                r = self.region_at(page)
                if r is None:
                    raise Unsure(f"writing unmapped user memory at {pos:#x}")
                if page in self.zeroed:
                    self.zeroed.discard(page)
                    ov = bytearray(PAGE_SIZE)
                else:
                    ov = bytearray(pattern_bytes(r.seed, page - r.base, PAGE_SIZE))
                self.overlay[page] = ov
            ov[pos - page:pos - page + n] = data[i:i + n]
            self.tainted.discard(page)
            pos += n
            i += n

    def zero(self, addr: int, length: int) -> None:
        """clear_user of mapped memory: whole pages become zero pages (no per-byte
        copy, so clearing a big buffer stays cheap), partial ones are written."""
        end = addr + length
        pos = addr
        while pos < end:
            page = pos & ~(PAGE_SIZE - 1)
            n = min(end, page + PAGE_SIZE) - pos
            if n == PAGE_SIZE:
                self.overlay.pop(page, None)
                self.tainted.discard(page)
                self.zeroed.add(page)
            else:
                self.write(pos, bytes(n))
            pos += n

    def taint(self, addr: int, length: int) -> None:
        """The contents of the mapped pages of [addr, addr + length) are unknown."""
        end = min(addr + length, U64 + 1)
        i = max(bisect_right(self.starts, addr) - 1, 0)
        for r in self.regions[i:]:
            if r.start >= end:
                break
            page = max(r.start, addr & ~(PAGE_SIZE - 1))
            while page < min(r.end, end):
                self.tainted.add(page)
                page += PAGE_SIZE
