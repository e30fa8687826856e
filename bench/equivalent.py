"""Mutants of fuzz/model/ reviewed as equivalent: the change cannot alter any result a
program can observe. bench/bench_oracle.py shows them apart from the other survivors and
prints the kill rate without them beside the whole (it never drops them from the whole).

An entry names its line by the line's text and which of the file's lines with that text
it is, not by its number (which moves with every edit), and the mutations of that kind
and was -> now on that line it covers (the first, the second, in bench_oracle's order).
It is kept only with two things: the reason, from reading the code, and the evidence
that bench/hunt_mutants.py ran the unmutated and the mutated model on `hunted` programs,
`ran_line` of which ran the line, and no result differed. tests/test_bench.py checks
that every entry still names a mutation site of the model as it is; bench_oracle flags an
entry whose mutant was killed (the reason was wrong)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

MODEL_DIR = Path(__file__).resolve().parent.parent / "fuzz" / "model"


@dataclass(frozen=True)
class Equivalent:
    file: str  # fuzz/model/<file>
    kind: str  # as bench_oracle.Mutant.kind
    was: str
    now: str
    hunted: int  # programs bench/hunt_mutants.py ran on both models
    ran_line: int  # of them, the ones that ran the line
    at: tuple[int, ...]  # which of the file's lines with the text (1: the first)
    nth: tuple[int, ...]  # which of that line's mutations of this kind, was and now
    text: str  # the line, stripped
    reason: str  # "equivalent" (no result can change) or "unreachable" (no program or
    # kernel gives the value that tells them apart), and why, by reading the code


# The survivors of the full run at the end of session 5 that bench/survivors_s5d.md
# classes equivalent or unreachable (hunts 1-3 of that file), read again by the lead.
EQUIVALENT: tuple[Equivalent, ...] = (
    Equivalent('consts.py', 'constant', '1', '2', 1761, 1761, (1,), (1,),
               'IOMMU_CACHE = 1 << 2',
               "equivalent (line 76): IOMMU_CACHE is only OR-ed into an area's prot; the model "
               'tests prot for IOMMU_READ/IOMMU_WRITE only (ioas.py:195, iopt.py:366, '
               'selftest.py:362), and 8 is neither: equivalent'),
    Equivalent('consts.py', 'constant', '2', '3', 1761, 1761, (1,), (1,),
               'IOMMU_CACHE = 1 << 2',
               'equivalent (line 76): as above (1<<3 = 8): equivalent'),
    Equivalent('fault.py', 'compare', 'NotEq', 'Eq', 5249, 2396, (1,), (1,),
               'if pasid != IOMMU_NO_PASID and not isinstance(hwpt, HwptNested):',
               'equivalent (line 86): pasid != NO_PASID -> ==: needs TEST_TRIGGER_IOPF on a '
               'RID-attached paging HWPT with a fault object; a paging HWPT with a fault is never'
               " made by 6.12's mock (FAULT_ID_VALID on a paging alloc is EOPNOTSUPP, "
               'hwpt.py:157), so hwpt.fault is None on every non-nested HWPT and the next check '
               'returns the same: equivalent'),
    Equivalent('fault.py', 'compare', 'GtE', 'Gt', 5282, 2153, (1,), (1,),
               'if count >= SIDE_ACCESS_OK_MAX:',
               'unreachable (line 137): count == 2^26 exactly on a side-array read/write: unsure '
               'either way in practice (no count that large fits the side array): boundary '
               'unreachable by the executor'),
    Equivalent('file.py', 'constant', '1', '2', 3047, 3047, (1,), (1,),
               'NR_OPEN = 1 << 20  # fs.nr_open default: no fd can be this large',
               "equivalent (line 33): NR_OPEN 1<<20 -> 1<<21: a kernel fd is below the agent's "
               "RLIMIT_NOFILE (far below 1<<20); only the model's made-up fds (>= 2,000,000 = "
               "FAKE_FD_BASE) fall between, and those exist only without the kernel's results. "
               "The hunt's program distinguishes it on the model alone (CLOSE of a made-up fd); "
               'on the kernel the fds are real: equivalent against any kernel'),
    Equivalent('file.py', 'compare', 'LtE', 'Lt', 2605, 121, (1,), (1,),
               'if kernel_fd is not None and low <= kernel_fd < NR_OPEN \\',
               'unreachable (line 83): low <= kernel_fd -> low < kernel_fd: differs only when the'
               " kernel's fd equals known_below exactly, which lowest_free() would have returned "
               'itself (fd is None only past the known table): unreachable'),
    Equivalent('file.py', 'compare', 'Lt', 'LtE', 3947, 0, (1,), (1,),
               'not 0 <= t < NR_OPEN or (t in self.open and t not in moves) for t in targets) \\',
               'unreachable (line 118): t < NR_OPEN -> <=: no fd is 1<<20: unreachable'),
    Equivalent('gup.py', 'compare', 'Lt', 'LtE', 3730, 2288, (1,), (1,),
               'if got < 0:',
               'equivalent (line 66): gup_fast never returns 0 (`got if got else -EFAULT`), so '
               'got < 0 == got <= 0: equivalent'),
    Equivalent('hwpt.py', 'drop-check', 'if ...: raise', '(dropped)', 3727, 2419, (1,), (1,),
               'if flags & ~(IOMMU_HWPT_ALLOC_NEST_PARENT | IOMMU_HWPT_ALLOC_DIRTY_TRACKING):',
               'equivalent (line 157): the same flags check is repeated by mock.alloc_user_paging'
               ' (mock.py:44, same EOPNOTSUPP) before any object is allocated: equivalent'),
    Equivalent('hwpt.py', 'compare', 'LtE', 'Lt', 3226, 857, (1,), (1,),
               'if n <= 0 or n > CAPTURE_ROOM - m.captured or not m.mem.one_readable_buffer(addr,'
               ' n):',
               "equivalent (line 251): n <= 0 -> n < 0: n == 0 returns b'' either way "
               '(bitmap.read of 0 bytes): equivalent'),
    Equivalent('ioas.py', 'constant', '1', '2', 3788, 1219, (1,), (1,),
               'if addr + 16 > U64 + 1 or m.mem.first_bad(addr, 16, False) is not None:',
               'equivalent (line 116): addr + 16 > U64 + 1 -> > U64 + 2: differs only at addr = '
               '2^64 - 15, which first_bad (above TASK_SIZE_MAX) faults the same: equivalent'),
    Equivalent('ioas.py', 'constant', '1', '2', 3132, 687, (1,), (1,),
               'bad = addr + 16 > U64 + 1 or m.mem.first_bad(addr, 16, True) is not None',
               'equivalent (line 162): as ioas.py:116 (the write side): equivalent'),
    Equivalent('iopt.py', 'constant', '1', '2', 3640, 2180, (1,), (1,),
               'chunk = pfn_reader_chunk(holes[0][1] - holes[0][0] + 1, mem.temp_memory_limit) \\',
               'equivalent (line 141): the chunk size for the first hole off by one page: '
               "pin_range only splits calls; the result (pinned or the first failing call's "
               'errno) is the same for any chunk >= 1: equivalent'),
    Equivalent('iopt.py', 'constant', '1', '2', 3371, 1838, (1,), (1,),
               'return (self.start_byte + self.length - 1) // PAGE_SIZE',
               'equivalent (line 187): last_index differs only for an area whose last byte is a '
               "page's first byte (start_byte + length = 1 mod 4096); last_index is read only for"
               ' areas with storage (domain fills, pinned_intervals), and with a domain every '
               "area is aligned to the mock's 2K (start_byte + length = 0 mod 2048), and a domain"
               ' attach to an IOAS with such an area fails its alignment check: equivalent'),
    Equivalent('iopt.py', 'errno', 'EOVERFLOW', 'E2BIG', 3719, 0, (3,), (1,),
               'raise KernelError(EOVERFLOW)',
               'unreachable (line 371): EOVERFLOW of cur + ln - 1 > ULONG_MAX: earlier checks '
               '(iova + length overflow, EOVERFLOW in ioas.map) reject every such map first: dead'
               ' code (0 programs ran it)'),
    Equivalent('iopt.py', 'drop-check', 'if ...: raise', '(dropped)', 3347, 742, (2,), (1,),
               'if area.num_accesses:',
               "equivalent (line 442): area.num_accesses on unmap: the access's unmap callback "
               'always releases its pins in the mock (selftest.py), so the Unsure retry branch is'
               ' dropped for the same path: equivalent for the mock driver'),
    Equivalent('iopt.py', 'boolop', 'Or', 'And', 3569, 915, (1,), (1,),
               'if (new_start & mask) or (area.start_byte_of(new_start) & mask):',
               "equivalent (line 543): split alignment: with iova_alignment > 1 every area's iova"
               ' and start_byte are aligned (map checks both, a domain attach refuses an IOAS '
               'with unaligned areas), so new_start and start_byte_of(new_start) are congruent '
               'mod the alignment and the two tests are equal (mask 0 when the alignment is 1): '
               'equivalent'),
    Equivalent('iopt.py', 'drop-check', 'if ...: raise', '(dropped)', 3283, 695, (1,), (1,),
               'if area.storage and not self.disable_large_pages:',
               "unreachable (line 547): split() is called only by VFIO_IOMMU_UNMAP_DMA's cuts, "
               'and only while disable_large_pages is set (vfio.py:209, vfio_compat.c:230), so '
               '`not self.disable_large_pages` is always False there: the check never fires (in '
               'the kernel too, through this caller): unreachable'),
    Equivalent('iova_bitmap.py', 'constant', '1', '2', 3248, 666, (1,), (1,),
               'end = min(page + npages * PAGE_SIZE, U64 + 1)',
               'equivalent (line 64): min(..., U64 + 2): page + npages*PAGE is page-aligned and '
               'never U64 + 2: equivalent'),
    Equivalent('iova_bitmap.py', 'compare', 'GtE', 'Gt', 3345, 722, (1,), (1,),
               'if index >= self.total:',
               'equivalent (line 100): index == total reaches _advance_to only for the unclamped '
               '(known-bug) bitmap past its end, and only when the bitmap ends on a page boundary'
               ' (else the pinned page runs past total and the next index is > total); then _get '
               "pins 0 pages and returns False as the kernel's -EINVAL does, and pin_failed is "
               'read only on the clamped bitmap: equivalent'),
    Equivalent('iova_bitmap.py', 'constant', '8', '9', 3634, 934, (1,), (1,),
               'if offset % 8 == 0 and end - offset >= 8:  # whole bytes at once',
               'equivalent (line 151): end - offset >= 8 -> >= 9: exactly 8 bits at a byte '
               'boundary take the bit loop, which sets the same byte: equivalent (speed only)'),
    Equivalent('memory.py', 'compare', 'Gt', 'GtE', 3725, 1487, (1,), (1,),
               'if s > pos:',
               'equivalent (line 79): s > pos -> >=: adds an empty piece (pos, pos) for a hole at'
               " the buffer's start; empty regions are never found by region_at: equivalent"),
    Equivalent('memory.py', 'compare', 'Gt', 'GtE', 3424, 2276, (1,), (1,),
               'if end > U64 + 1:',
               'equivalent (line 145): end > U64+1 -> >=: clamps end = 2^64 to 2^64: equivalent'),
    Equivalent('memory.py', 'compare', 'In', 'NotIn', 3392, 979, (1,), (2,),
               'if p2 in self.overlay or p2 in self.tainted or p2 in self.zeroed:',
               'equivalent (line 220): the read fast path: stops the run earlier or later; the '
               'bytes read are the same either way (the slow path reads them page by page): '
               'equivalent (speed only)'),
    Equivalent('memory.py', 'constant', '1', '2', 3692, 1063, (3,), (1,),
               'page = pos & ~(PAGE_SIZE - 1)',
               'equivalent (line 258): pos & ~(PAGE-2): keeps bit 0, so an odd pos takes n one '
               'smaller; only whether a whole page is handled at once changes (n == PAGE_SIZE '
               'fast path): equivalent'),
    Equivalent('mock.py', 'constant', '1', '2', 3699, 1317, (1,), (1,),
               'lo_iova, hi_iova = first * SLOT, last * SLOT + SLOT - 1',
               "equivalent (line 64): hi_iova one byte lower: the area lookup's last byte at a 2K"
               " slot's last byte; areas are at least 2K aligned in a mock domain, so no area "
               'starts on that byte: equivalent'),
    Equivalent('mock.py', 'constant', '1', '2', 3574, 837, (1,), (1,),
               'if end - first + 1 < len(hwpt.dirty):',
               'equivalent (line 100): end - first + 2 < len(dirty): chooses between two ways to '
               'discard the same slots (per slot, or by filtering): equivalent (speed only)'),
    Equivalent('mock.py', 'compare', 'Lt', 'LtE', 3691, 807, (1,), (1,),
               'hits = [s for s in dirty if s in slots] if len(dirty) < HUGE_SLOTS else \\',
               'equivalent (line 151): len(dirty) < HUGE_SLOTS -> <=: two ways to find the same '
               'hits: equivalent (speed only)'),
    Equivalent('model.py', 'boolop', 'And', 'Or', 3482, 2590, (1,), (1,),
               'return v if isinstance(v, int) and not isinstance(v, bool) else None',
               'equivalent (line 265): kernel_out: isinstance(int) and not bool -> or: a bool '
               'output does not exist in the descriptions; a non-int output field is never asked '
               'for: equivalent'),
    Equivalent('model.py', 'compare', 'Gt', 'GtE', 3532, 1219, (1,), (1,),
               'if type(raw) is int and raw > natural and a["tail"]:',
               'equivalent (line 403): raw > natural -> >=: raw == natural never gets here (size '
               '> natural checked just above and size == raw): equivalent'),
    Equivalent('model.py', 'boolop', 'And', 'Or', 3303, 919, (1,), (1,),
               'assert index < len(lst) and lst[index] is None, f"op {index} stepped out of order"',
               'equivalent (line 429): an assert (stepped out of order): never fails in a correct'
               ' caller: equivalent'),
    Equivalent('model.py', 'compare', 'Lt', 'LtE', 3387, 940, (1,), (1,),
               'assert index < len(lst) and lst[index] is None, f"op {index} stepped out of order"',
               'equivalent (line 429): as above: equivalent'),
    Equivalent('objects.py', 'constant', '1', '2', 3544, 3544, (1,), (1,),
               'ID_LIMIT = (1 << 31) - 1',
               'unreachable (line 36): ID_LIMIT (1<<31)-2: an id of 2^31-1 is never reached by a '
               'program (ids are the lowest free from 1): unreachable'),
    Equivalent('objects.py', 'boolop', 'And', 'Or', 3498, 2609, (1,), (1,),
               'if owner is not None and owner is not self and owner not in out:',
               "equivalent (line 85): users' owners: owner not self and not in out -> or: appends"
               ' duplicates/self to a list only used for `any`/destroy checks that give EBUSY the'
               ' same: equivalent'),
    Equivalent('races.py', 'compare', 'Gt', 'GtE', 3297, 971, (1,), (1,),
               'return len({prog.ops[i].thread for i in group}) > 1',
               "equivalent (line 62): racing: > 1 -> >= 1 threads: a one-thread group's only "
               'order is program order, so stepping it as racing gives the same results (the '
               'leeway rules only act on disagreements): equivalent'),
    Equivalent('races.py', 'boolop', 'Or', 'And', 3340, 927, (1,), (2,),
               'if not perms or any(not (kernel[k].t_start or kernel[k].t_end) for k in perms[0]):',
               "equivalent (line 98): in_time: the fallback for results without times; the VM's "
               'executor always reports t_start/t_end, so or -> and changes nothing on a kernel '
               'run: equivalent for the VM backend'),
    Equivalent('races.py', 'constant', '31', '32', 3638, 576, (1,), (1,),
               'if not 0 < t < 1 << 31 or (t in model.objects.objs and t not in created):',
               'unreachable (line 322): adopt_ids bound 1<<32: an id of 2^31..2^32-1 is never a '
               "kernel's: unreachable"),
    Equivalent('selftest.py', 'constant', '1', '2', 3485, 1243, (1,), (1,),
               'page = uptr & ~(PAGE_SIZE - 1)',
               'equivalent (line 139): page = uptr & ~(PAGE-2): keeps bit 0 of uptr; the page is '
               'then used for a one-page check that covers the same page: equivalent'),
    Equivalent('selftest.py', 'drop-check', 'if ...: raise', '(dropped)', 3440, 1345, (1,), (1,),
               'if acc is not None:',
               'equivalent (line 230): access_get: a fault fd given as an access fd -> falls '
               'through to the numbers_unknown/EBADFD below: the same EBADFD when fd numbers are '
               'known: equivalent'),
    Equivalent('selftest.py', 'drop-check', 'if ...: raise', '(dropped)', 3315, 1033, (1,), (1,),
               'if write and not pages.writable:',
               'equivalent (line 241): add_access_area: write on read-only pages -> EPERM; the '
               "caller checks the area's prot (selftest.py:362) first with the same EPERM: "
               'equivalent'),
    Equivalent('selftest.py', 'drop-check', 'if ...: raise', '(dropped)', 3474, 992, (1,), (1,),
               'if key not in pages.accesses:',
               'unreachable (line 255): remove_access_area of a missing key: a kernel WARN path '
               '(unsure); unreachable through the uAPI (the model pairs add/remove): dead'),
    Equivalent('selftest.py', 'errno', 'ENOENT', 'EFAULT', 3525, 0, (4,), (1,),
               'raise KernelError(ENOENT)',
               'unreachable (line 346): access_replace_ioas on an access without an IOAS: ENOENT '
               '-> EFAULT; an access always has an IOAS in 6.12 (created with one; replace keeps '
               'one): dead (0 programs)'),
    Equivalent('selftest.py', 'drop-check', 'if ...: raise', '(dropped)', 3222, 998, (3, 4), (1,),
               'if acc.ioas is None:',
               'unreachable (line 372): access rw/pages with acc.ioas None: by reading, an access'
               " gets its IOAS at create and replace never clears it: dead (the line's `if` runs,"
               ' its body never); and the same mutation at line 537: unreachable: as '
               'selftest.py:372: dead'),
    Equivalent('ucmd.py', 'compare', 'GtE', 'Gt', 1761, 1208, (1,), (1,),
               'if off >= size:',
               'equivalent (line 38): off >= size -> >: a field at off == size reads width bytes '
               'past size, all 0 by the next branch: equivalent'),
    Equivalent('ucmd.py', 'constant', '1', '2', 1761, 527, (1,), (1, 2),
               'return (value & low) | (a[name] & ~low & ((1 << (8 * width)) - 1))',
               "equivalent (line 55): the mask (1 << 8*width) - 2: clears bit 0 of the field's "
               "bytes past the user's size, which are 0 anyway: equivalent; and the same mutation"
               ' at line 55: equivalent: (2 << 8*width) - 1: one bit wider than the field; the '
               "field's value fits its width: equivalent"),
    Equivalent('userbuf.py', 'compare', 'LtE', 'Lt', 3636, 1194, (1,), (1,),
               'if n <= 0 or n > CAPTURE_ROOM - m.captured:',
               "equivalent (line 125): capture of n <= 0 -> < 0: n == 0 captures b'' either way: "
               'equivalent'),
    Equivalent('vfio.py', 'compare', 'Eq', 'NotEq', 1761, 629, (1,), (1,),
               'if ext == VFIO_TYPE1_NESTING_IOMMU:',
               "equivalent (line 77): both branches return {'ret': 0}: equivalent"),
    # The survivors of session 7's first full run (the sample by identity, s7a), read by
    # the lead and hunted once (bench/hunt_mutants.py, 100 gen seeds, 30 s a mutant).
    Equivalent('device.py', 'compare', 'IsNot', 'Is', 1653, 1352, (1,), (2,),
               'if idev.hwpt is not None and idev.hwpt is not hwpt:',
               "unreachable (line 99): do_attach's `idev.hwpt is not None and idev.hwpt is not "
               'hwpt` -> `is hwpt`: IOMMUFD_TEST attaches only a device it has just bound '
               '(TEST_MOCK_DOMAIN*, change_pt with replace=False; auto_get_domain tries the next '
               'domain after an EINVAL with the device still unattached), so idev.hwpt is None at'
               ' every attach and both tests are False'),
    Equivalent('device.py', 'errno', 'EINVAL', 'ENOENT', 1621, 0, (1, 4), (1,),
               'raise KernelError(EINVAL)',
               'unreachable (line 100): the EINVAL of an attach while attached elsewhere: no '
               'IOMMUFD_TEST op attaches a device that is attached (see line 99); 0 programs ran '
               'it; and the same mutation at line 119: do_replace of a device that is not '
               'attached: a mock device is attached from its bind (TEST_MOCK_DOMAIN; a failed '
               'attach unbinds it) until its stdev is destroyed, so TEST_MOCK_DOMAIN_REPLACE '
               'always finds idev.hwpt set; 0 programs ran it'),
    Equivalent('fault.py', 'boolop', 'Or', 'And', 1659, 481, (1,), (1,),
               'if done >= count or PGFAULT.size > count - done:',
               'equivalent (line 175): `done >= count or PGFAULT.size > count - done` -> and: '
               'read() has refused a count that is not a multiple of the record size (ESPIPE, '
               'line 167), so count - done is a multiple of it and `size > count - done` holds '
               'exactly when done >= count: both forms are the same test'),
    Equivalent('fault.py', 'compare', 'GtE', 'Gt', 1646, 480, (1,), (1,),
               'if done >= count or PGFAULT.size > count - done:',
               'equivalent (line 175): `done >= count` -> `done > count`: done == count makes '
               '`PGFAULT.size > count - done` (size > 0) true, so the loop stops the same'),
    Equivalent('file.py', 'constant', '20', '21', 1637, 1637, (1,), (1,),
               'NR_OPEN = 1 << 20  # fs.nr_open default: no fd can be this large',
               'equivalent (line 33): NR_OPEN 1<<20 -> 1<<21 (the shift): as for the 1 -> 2 of '
               "the same line: a kernel fd is below the agent's RLIMIT_NOFILE, far below 1<<20; "
               "only the model's made-up fds (>= FAKE_FD_BASE = 2,000,000) fall between, and "
               "those exist only without the kernel's results (the hunt: only where the model "
               'guesses)'),
    Equivalent('file.py', 'constant', '0', '1', 1635, 0, (1,), (1,),
               'not 0 <= t < NR_OPEN or (t in self.open and t not in moves) for t in targets) \\',
               "unreachable (line 118): renumber's `0 <= t` -> `1 <= t`: differs only for a "
               "racing op's kernel fd 0, and fd 0 is the agent's stdin, open for its whole life"),
    Equivalent('gup.py', 'compare', 'Gt', 'GtE', 1661, 1060, (1,), (1,),
               'if end > U64:',
               'equivalent (line 35): `end > U64` -> `>=`: end = (start & PAGE_MASK) + npages * '
               'PAGE_SIZE is a multiple of PAGE_SIZE and never equals U64 = 2^64 - 1'),
    Equivalent('gup.py', 'compare', 'Gt', 'GtE', 1649, 1050, (1,), (1,),
               'if end > TASK_SIZE_MAX:',
               'unreachable (line 37): `end > TASK_SIZE_MAX` -> `>=`: differs for a pin that ends'
               ' exactly at TASK_SIZE_MAX, i.e. takes the last user page; nothing is mapped there'
               " (the program's buffers are at BUF_BASE + k * BUF_STRIDE and the agent maps "
               "nothing at the top), so the walk that follows faults as the mutant's EFAULT does"),
    Equivalent('hwpt.py', 'drop-check', 'if ...: raise', '(dropped)', 1667, 1121, (1,), (1,),
               'if pt is None:',
               "equivalent (line 125): HWPT_ALLOC's `if pt is None: raise EINVAL` dropped: a None"
               ' pt is neither an Ioas nor a HwPagetable, so the else branch two lines down '
               'raises the same EINVAL'),
    Equivalent('hwpt.py', 'boolop', 'And', 'Or', 1666, 753, (1,), (1,),
               'assert isinstance(fault, Fault) and isinstance(hwpt, HwptNested)',
               "equivalent (line 139): an assert's `and` -> `or`: the weaker assertion holds "
               'wherever the stronger one does; nothing else changes'),
    Equivalent('hwpt.py', 'drop-check', 'if ...: raise', '(dropped)', 1670, 1080, (1,), (1,),
               'if flags & IOMMU_HWPT_ALLOC_DIRTY_TRACKING and idev.dev_flags & '
               'MOCK_FLAGS_DEVICE_NO_DIRTY:',
               'equivalent (line 159): the NO_DIRTY check of _paging_alloc dropped: '
               'mock.alloc_user_paging, called next and before any id is taken, refuses '
               'DIRTY_TRACKING on a NO_DIRTY device with the same EOPNOTSUPP (mock.py:46, '
               'mock_domain_alloc_user)'),
    Equivalent('hwpt.py', 'constant', '0', '1', 1668, 568, (1,), (1,),
               'if n <= 0 or n > CAPTURE_ROOM - m.captured or not m.mem.one_readable_buffer(addr,'
               ' n):',
               "equivalent (line 251): _capture's `n <= 0` -> `n <= 1`: n is the capture length "
               'of a dirty bitmap, dirty_bitmap_bytes rounds it up to whole u64 words '
               '(fuzz/prog/layout.py), and min with CAPTURE_MAX keeps it a multiple of 8: n is '
               'never 1'),
    Equivalent('ioas.py', 'constant', '16', '17', 1614, 467, (1,), (1,),
               'bad = addr + 16 > U64 + 1 or m.mem.first_bad(addr, 16, True) is not None',
               "equivalent (line 162): IOAS_IOVA_RANGES' `addr + 16 > U64 + 1` -> `addr + 17`: "
               'differs only for addr = 2^64 - 15, above TASK_SIZE_MAX, where first_bad() reports'
               ' the address bad anyway: EFAULT either way'),
    Equivalent('ioas.py', 'drop-check', 'if ...: raise', '(dropped)', 1589, 469, (1,), (1,),
               'if rc:',
               'unreachable (line 242): the rc of IOAS_UNMAP of everything: iopt.unmap_range(0, '
               'ULONG_MAX) fails (ENOENT) only for an area that starts below 0 or ends past '
               'ULONG_MAX, which none does; it returns 0 or raises Unsure'),
    Equivalent('iopt.py', 'constant', '64', '65', 1655, 1041, (1,), (1,),
               'if reader else 1 << 64',
               'equivalent (line 142): the chunk of pages pinned at once without a pfn_reader, 1 '
               '<< 64 -> 1 << 65: either is more than any range has pages (< 2^52)'),
    Equivalent('iopt.py', 'constant', '1', '2', 1624, 1356, (1,), (1,),
               'if cur + ln - 1 > ULONG_MAX:',
               "unreachable (line 370): map_pages' `cur + ln - 1 > ULONG_MAX` -> `cur + ln - 2`: "
               'differs only for a run ending at 2^64 exactly; check_iova (fixed IOVA) and '
               'alloc_iova have already kept iova + length - 1 <= ULONG_MAX for the whole map, '
               'and every element lies inside it'),
    Equivalent('iopt.py', 'drop-check', 'if ...: raise', '(dropped)', 1652, 1344, (1,), (1,),
               'if new_align > PAGE_SIZE:',
               "unreachable (line 477): add_mock_domain's `new_align > PAGE_SIZE`: new_align is "
               "max(2K, iova_alignment), and no IOAS alignment exceeds PAGE_SIZE in 6.12's "
               "selftest (domains' 2K, an access's PAGE_SIZE at most, disable_large_pages "
               'PAGE_SIZE)'),
    Equivalent('memory.py', 'compare', 'Lt', 'LtE', 1638, 749, (1,), (1,),
               'if addr < LOW_UNMAPPED or addr >= TASK_SIZE_MAX:',
               'unreachable (line 132): `addr < LOW_UNMAPPED` -> `<=`: the mutant calls 0x10000 '
               'itself known unmapped where the model is unsure; the agent maps nothing there '
               "(the lowest mapping is its static binary), so the kernel's EFAULT agrees with the"
               " mutant's sure prediction: no kernel of this agent tells them apart"),
    Equivalent('memory.py', 'constant', '1', '2', 1646, 1190, (1,), (1,),
               'if end > U64 + 1:',
               "equivalent (line 145): first_bad's clamp `end > U64 + 1` -> `U64 + 2`: differs "
               'only for a range ending at 2^64 + 1, which crosses TASK_SIZE_MAX, where the first'
               ' bad address is found before either end'),
    Equivalent('selftest.py', 'compare', 'LtE', 'Lt', 1664, 489, (1,), (1,),
               'if step <= 0:',
               "equivalent (line 152): TEST_MD_CHECK_MAP's `step <= 0` -> `< 0`: iova, uptr and "
               'length are 2K-aligned (EINVAL before), areas of an IOAS with a domain are '
               '2K-aligned, and region ends are page ends, so step is at least 2K and never 0'),
    Equivalent('ucmd.py', 'compare', 'LtE', 'Lt', 1686, 535, (1,), (1,),
               'if off + width <= n:',
               'equivalent (line 50): `off + width <= n` -> `<`: a field ending exactly at n '
               'takes the partial branch, whose mask (1 << 8 * (n - off)) - 1 then covers the '
               'whole field: the same value'),
    Equivalent('ucmd.py', 'constant', '8', '9', 1576, 353, (1,), (1,),
               'return (value & low) | (a[name] & ~low & ((1 << (8 * width)) - 1))',
               "equivalent (line 55): the mask of the input's bits kept above n, 1 << (8 * width)"
               ' -> 1 << (9 * width): the input value fits its field (the IR refuses a wider '
               'value), so the wider mask keeps the same bits'),
    Equivalent('vfio.py', 'constant', '8', '9', 1668, 609, (1,), (1,),
               'buf[off:off + width] = (value % (1 << (8 * width))).to_bytes(width, "little")',
               "equivalent (line 157): _put's `value % (1 << (8 * width))` -> 9 * width: every "
               'value put fits its field (IR values are checked against their width; computed '
               'ones are offsets and sizes of the reply), so the modulo changes nothing'),
    Equivalent('model.py', 'compare', 'IsNot', 'Is', 1488, 592, (1,), (1,),
               'if x is not None:',
               "equivalent (line 466): Model.clone's memo of done results, `x is not None` -> `is"
               ' None`: the results are then deep-copied instead of shared; nothing changes a '
               "done op's result (clone's docstring), so the copies are equal to what was shared"),
    Equivalent('model.py', 'compare', 'Is', 'IsNot', 1626, 1581, (1,), (1,),
               'if src.unsure is None or self.kernel_results[v.op] is not None:',
               "equivalent (line 539): _arg_doubts' `src.unsure is None or kernel_results[v.op] "
               "is not None` -> `is not None or`: in the replay every op has the kernel's result,"
               ' so the second test continues the loop whatever the first says (it matters only '
               'to the model alone: gen, check-model)'),
    Equivalent('model.py', 'compare', 'Lt', 'LtE', 1627, 0, (1,), (1,),
               'm.step(i, kernel[i] if kernel is not None and i < len(kernel) else None)',
               "unreachable (line 661): run_model's `i < len(kernel)` -> `<=`: every caller "
               'passes no kernel results or one per op; 0 programs ran it'),
    Equivalent('races.py', 'compare', 'Lt', 'LtE', 1726, 498, (1,), (2,),
               'if not 0 < t < 1 << 31 or (t in model.objects.objs and t not in created):',
               "unreachable (line 383): renumber's `0 < t < 1 << 31` -> `<= 1 << 31`: needs a "
               'kernel id of 2^31; ids are allocated from 1 and no program makes 2^31 objects'),
    Equivalent('memory.py', 'compare', 'Lt', 'LtE', 1619, 1579, (1,), (1,),
               'if pos < b.size:',
               "equivalent (line 82): a hole that ends at the buffer's end then adds an empty "
               'region [size, size), which contains no address and is never the region of one'),
    Equivalent('iova_bitmap.py', 'constant', '1', '2', 1657, 548, (1,), (1,),
               'self.total = (((length - 1) & U64) >> self.pgshift) // 8 + 1  # mapped_total_index',
               'equivalent (line 50): mapped_total_index from `length - 2`: length is a multiple '
               'of page_size (check_iova_range before), so (length - 1) and (length - 2) >> '
               'pgshift agree'),
    Equivalent('userbuf.py', 'compare', 'LtE', 'Lt', 1684, 511, (1,), (1,),
               'if n <= 0:',
               'equivalent (line 84): clear_user of n <= 0 -> n < 0: its one caller (GET_HW_INFO, '
               'device.py:246) clears only where copy_len < data_len, so n is at least 1 and the '
               'early return for 0 is never taken'),
    Equivalent('races.py', 'boolop', 'And', 'Or', 1271, 110, (1,), (1,),
               'if isinstance(old, int) and isinstance(new, int):',
               'equivalent (line 344): _output_pairs\' `isinstance(old, int) and isinstance(new, '
               'int)` -> or: the id and fd outputs of an op that succeeded on both sides are ints '
               'on both (the kernel\'s from int.from_bytes in fuzz/executor/encode.py or JSON '
               'ints; the model\'s from Args, default_out and renames to ints), so both tests '
               'pass the same pairs (helper races7 checked 2,712 such values in the 82 recorded '
               'runs: every one an int)'),
)


@cache
def _lines(file: str) -> tuple[str, ...]:
    return tuple((MODEL_DIR / file).read_text().splitlines())


def line_text(file: str, line: int) -> str:
    lines = _lines(file)
    return lines[line - 1].strip() if 0 < line <= len(lines) else ""


def occurrence(file: str, line: int) -> int:
    """Which of the file's lines with this line's text it is (1: the first)."""
    text = line_text(file, line)
    return sum(1 for t in _lines(file)[:line] if t.strip() == text)


def nth_on_line(m: Any, sites: list[Any]) -> int:
    """Which of its line's mutations of its kind, was and now m is (1: the first)."""
    return sorted(s.index for s in sites if (s.file, s.line, s.kind, s.was, s.now)
                  == (m.file, m.line, m.kind, m.was, m.now)).index(m.index) + 1


def identity(m: Any, sites: list[Any]) -> tuple[str, str, int, str, str, str, int]:
    """What names mutant m (a bench_oracle.Mutant) whatever other lines do: its file,
    its line's text and which line with that text, its kind, was -> now, and which of
    that line's mutations alike (sites: its file's, as bench_oracle.sites gives them)."""
    return (m.file, line_text(m.file, m.line), occurrence(m.file, m.line), m.kind, m.was,
            m.now, nth_on_line(m, sites))


def reviewed(m: Any, entries: tuple[Equivalent, ...] = EQUIVALENT) -> Equivalent | None:
    """The entry that covers mutant m (a bench_oracle.Mutant), if any."""
    text = line_text(m.file, m.line)
    for e in entries:  # identity()'s parts, the costly last
        if (e.file, e.text, e.kind, e.was, e.now) == (m.file, text, m.kind, m.was, m.now) \
                and occurrence(m.file, m.line) in e.at \
                and nth_on_line(m, _sites(m.file)) in e.nth:
            return e
    return None


@cache
def _sites(file: str) -> list[Any]:
    import ast

    from bench_oracle import sites  # bench/, beside this file

    path = MODEL_DIR / file
    return sites(file, ast.parse(path.read_text(), str(path)))


def stale(sites: list[Any], entries: tuple[Equivalent, ...] = EQUIVALENT) -> list[Equivalent]:
    """Entries that cover no mutation site of the model as it is."""
    covered = {reviewed(m, entries) for m in sites}
    return [e for e in entries if e not in covered]
