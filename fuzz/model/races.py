"""The orders the ops of a race group may have run in.

A race group (fuzz.prog.ir: consecutive ops with one barrier label) runs each
thread's ops in program order, all threads released at once. The oracle
(fuzz.differential) takes the calls to be atomic - each one's outcome that of
running it whole at some point between its start and its end - and so accepts any
result that some order of the group's calls gives that keeps each thread's own
order; it tries them all (few: MAX_GROUP_OPS ops on 4 threads have at most 180).
A result no order gives is a mismatch: a bug, or a call that is not atomic (the
finding names the ops that raced). One part of a call is known not to be: the
ids of the objects it creates are taken from the xarray one at a time, each when
the object is allocated, and an op that fails frees its ids only when it unwinds,
so racing ops take ids in interleavings no whole-call order gives (a failing
TEST_MOCK_DOMAIN holds an id for a while; an IOAS_ALLOC beside it takes the next).
Which ids racing ops get is the kernel's free choice, as an automatic IOVA is:
adopt_ids renames the model's new objects to the kernel's ids where that is all
that differs, and the ids are free in the model. What breaks under a race without showing in
results (a use-after-free, a lock-order problem, a leaked reference) is the
kernel's checkers' to catch: KASAN, lockdep, WARN, refcount, hung task.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from fuzz.compare import Mismatch
from fuzz.model.consts import (
    IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR,
    IOMMU_IOAS_MAP_FIXED_IOVA,
    IOMMU_OPTION_HUGE_PAGES,
    IOMMU_OPTION_OP_SET,
    IOMMU_OPTION_RLIMIT_MODE,
    VFIO_TYPE1_IOMMU,
)
from fuzz.model.errors import Unsure
from fuzz.model.model import WRITE_RANGES, Model
from fuzz.model.objects import OBJ_IOAS, HwPagetable, Ioas
from fuzz.prog import Program
from fuzz.prog.types import Out, Res, is_kind
from fuzz.result import OpResult

# errno -> the half-done work of a racing op that answers it
TRANSIENT: dict[int, str] = {
    errno.EBUSY: "a racing op held a reference to the object, or was mapping the area",
    errno.ENOENT: "a racing DESTROY freed the object while the op ran; or the id was one a "
                  "racing op held reserved, not yet an object",
    errno.EINVAL: "a racing DESTROY freed the object's id and it was taken for another; or "
                  "a racing map's areas were in the tree (iopt_disable_large_pages); or the "
                  "pt id was a device a mock domain op had bound, not yet unbound",
    errno.EEXIST: "a racing map held the range while it ran (and let it go when it failed)",
}
UNMAPS = {"IOAS_UNMAP": "ioas_id", "VFIO_IOMMU_UNMAP_DMA": "compat"}
# maps whose IOVA iopt_alloc_iova picks unless this flag is set
AUTO_IOVA = {"IOAS_MAP": IOMMU_IOAS_MAP_FIXED_IOVA, "IOAS_COPY": IOMMU_IOAS_MAP_FIXED_IOVA}

ID_KINDS = ("ioas", "hwpt", "stdev", "idev", "fault")  # objects with ids in the xarray


def racing(prog: Program, group: range) -> bool:
    """Whether the group's ops run on more than one thread (else it is sequential)."""
    return len({prog.ops[i].thread for i in group}) > 1


def orders(prog: Program, group: range) -> list[tuple[int, ...]]:
    """Every order of the group's ops that keeps each thread's order, program order
    first."""
    per: dict[int, list[int]] = {}
    for i in group:
        per.setdefault(prog.ops[i].thread, []).append(i)
    seqs = list(per.values())
    out: list[tuple[int, ...]] = []

    def walk(pos: list[int], acc: list[int]) -> None:
        if len(acc) == len(group):
            out.append(tuple(acc))
            return
        # the thread whose next op comes first in the program goes first: program
        # order is the first order generated
        for t in sorted(range(len(seqs)), key=lambda t: seqs[t][pos[t]] if pos[t] < len(seqs[t])
                        else 1 << 30):
            if pos[t] < len(seqs[t]):
                acc.append(seqs[t][pos[t]])
                pos[t] += 1
                walk(pos, acc)
                pos[t] -= 1
                acc.pop()

    walk([0] * len(seqs), [])
    return out


def in_time(perms: list[tuple[int, ...]], kernel: list[OpResult]) -> list[tuple[int, ...]]:
    """The orders the kernel's clock allows: an op that returned before another was
    issued (t_end < t_start, CLOCK_MONOTONIC taken right around each syscall by the
    executor) ran before it, in any order. Every order where the times are not known
    (0 and 0: a backend without them), or where none is left."""
    if not perms or any(not (kernel[k].t_start or kernel[k].t_end) for k in perms[0]):
        return perms
    left = [o for o in perms if not any(kernel[o[q]].t_end < kernel[o[p]].t_start
                                       for p in range(len(o)) for q in range(p + 1, len(o)))]
    return left or perms


def _is_id(o: Out) -> bool:
    return bool(o.kind) and any(is_kind(o.kind, k) for k in ID_KINDS)


def _id_outputs(prog: Program, i: int) -> list[str]:
    return [o.name for o in prog.ops[i].desc.outs if _is_id(o)]


FREES = ("DESTROY", "CLOSE")  # ops that give ids (and fds) back
HIDDEN_ID = ("TEST_CREATE_ACCESS",)  # its access object takes an id no output shows
# ops whose pt id iommufd_device_change_pt looks up as any type: the argument
ANY_LOOKUPS = {"TEST_MOCK_DOMAIN": "id", "TEST_MOCK_DOMAIN_FLAGS": "id",
               "TEST_MOCK_DOMAIN_REPLACE": "pt_id"}


def _binds_device(prog: Program, i: int) -> bool:
    return any(o.kind and is_kind(o.kind, "idev") for o in prog.ops[i].desc.outs)


def resource_outputs(prog: Program, i: int) -> list[str]:
    """The id and fd outputs of op i: what it takes from the xarray and the fd table."""
    return [o.name for o in prog.ops[i].desc.outs if o.is_fd or _is_id(o)]


def taken_one_at_a_time(prog: Program, group: range, kernel: list[OpResult]) -> str | None:
    """Why ids may differ from the model's after a racing group where no output shows
    it. An access's id is no output. While the group only takes ids, the ids taken are
    the lowest free ones whatever the interleaving, so the access has the one the
    visible ids leave (adopt_ids). But an op that fails holds the ids it took until it
    unwinds, and a DESTROY or CLOSE gives ids back mid-group: then the access may have
    taken any of several ids, and that decides the ids of later objects."""
    access = [i for i in group if prog.ops[i].name in HIDDEN_ID and kernel[i].errno == 0]
    if not access:
        return None
    a = access[0]
    for j in group:
        if prog.ops[j].thread == prog.ops[a].thread:
            continue
        name = prog.ops[j].name
        if name in FREES:
            return (f"op {a} ({prog.ops[a].name}) made an access, whose id no output shows, "
                    f"while op {j} ({name}) gave ids back on another thread")
        if kernel[j].errno and resource_outputs(prog, j):
            return (f"op {a} ({prog.ops[a].name}) made an access, whose id no output shows, "
                    f"while op {j} ({name}) failed on another thread, holding the ids it "
                    "took until it unwound")
    return None


# Ops that read, page by page and without the locks writers hold, what others change
# page by page: page pin counts (TEST_MD_CHECK_REFS) and a mock domain's IOPTEs
# (TEST_MD_CHECK_MAP); and the ops that change them step by step (pin, unpin, fill or
# empty a domain, pin a user bitmap; a failing one undoes its steps)
WALKERS = {"TEST_MD_CHECK_REFS": "page pin counts", "TEST_MD_CHECK_MAP": "the domain's IOPTEs",
           # the page sizes under domains_rwsem, then the caps under iova_rwsem
           # (vfio_compat.c:469, 472): a domain attached in between is in one, not both
           "VFIO_IOMMU_GET_INFO": "the page sizes and then the IOVA ranges"}
STEPPERS = frozenset({"IOAS_MAP", "IOAS_UNMAP", "IOAS_COPY", "VFIO_IOMMU_MAP_DMA",
                      "VFIO_IOMMU_UNMAP_DMA", "TEST_ACCESS_PAGES", "TEST_DESTROY_ACCESS_PAGES",
                      "TEST_ACCESS_RW", "TEST_MOCK_DOMAIN", "TEST_MOCK_DOMAIN_FLAGS",
                      "TEST_MOCK_DOMAIN_REPLACE", "HWPT_ALLOC", "DESTROY", "CLOSE",
                      "HWPT_GET_DIRTY_BITMAP", "TEST_ACCESS_REPLACE_IOAS", "VFIO_IOAS"})


def seen_mid_op(prog: Program, group: range, op: int) -> str | None:
    """Why op `op` of a racing group may have seen another thread's op half done: it
    walks what that op changes step by step, so its result may be that of no
    whole-call order (a count of pins a failing TEST_ACCESS_PAGES held for a while)."""
    what = WALKERS.get(prog.ops[op].name)
    if what is None:
        return None
    for j in group:
        if prog.ops[j].thread != prog.ops[op].thread and prog.ops[j].name in STEPPERS:
            return (f"op {op} ({prog.ops[op].name}) read {what} one page at a time while "
                    f"op {j} ({prog.ops[j].name}) changed them on another thread")
    return None


def user_writes(model: Model, prog: Program, op: int) -> tuple[int, int]:
    """The user memory op `op` may write, (address, length): (0, 0) for none."""
    w = WRITE_RANGES.get(prog.ops[op].name)
    return (0, 0) if w is None else w(model.resolve(op))


def _overlap(x: tuple[int, int], y: tuple[int, int]) -> bool:
    """Two (address, length) ranges of user memory share a byte."""
    (a, n), (b, m) = x, y
    return bool(n and m and a < b + m and b < a + n)


def read_back_late(model: Model, prog: Program, group: range, op: int) -> str | None:
    """Why op `op`'s output read back from user memory may be another op's bytes: the
    executor reads it when the call has returned (the user memory a TEST_ACCESS_RW,
    IOAS_IOVA_RANGES, GET_DIRTY_BITMAP, ... wrote), and a racing op on another thread
    may have written the same bytes after the call's own write and before that read,
    which no whole-call order gives. `model`: a state before the group."""
    mine = user_writes(model, prog, op)
    for j in group:
        if prog.ops[j].thread == prog.ops[op].thread:
            continue
        if _overlap(mine, user_writes(model, prog, j)):
            return (f"op {op} ({prog.ops[op].name})'s output is read from user memory after "
                    f"it returned, and op {j} ({prog.ops[j].name}) on another thread wrote "
                    "the same bytes")
    return None


def captured_late(after: Model, prog: Program, group: range, order: tuple[int, ...],
                  op: int, kernel: list[OpResult]) -> bytes | None:
    """What TEST_ACCESS_RW op `op` captured if the racing ops after it in `order` had
    all run before the capture: the executor reads the op's uptr once the call has
    returned (selftest.access_rw), so ops issued on other threads before that return
    may have written there after the op's own step - a write copied its source from
    there first, a read wrote there first - and before the read. `after`: the state
    once the group ran in `order`. None unless every op after it in `order` was issued
    on another thread before it returned (then `after` holds nothing the capture
    cannot), and one of them writes the captured bytes."""
    if prog.ops[op].name != "TEST_ACCESS_RW":
        return None
    a, n = user_writes(after, prog, op)
    done = kernel[op].t_end
    later = order[order.index(op) + 1:]
    if not done or any(prog.ops[j].thread == prog.ops[op].thread or not kernel[j].t_start
                       or kernel[j].t_start >= done for j in later):
        return None
    if not any(_overlap((a, n), user_writes(after, prog, j)) for j in later):
        return None
    data = kernel[op].out.get("data")
    if not isinstance(data, bytes) or not data or len(data) > n:
        return None
    try:
        return after.mem.read(a, len(data))
    except Unsure:
        return None


def free_choice(prog: Program, group: range, op: int, field: str) -> bool:
    """Whether output `field` of op `op` is an id or fd the op took while an op on
    another thread of the group took or gave back ids or fds (see taken_one_at_a_time)."""
    if field not in resource_outputs(prog, op):
        return False
    return any(prog.ops[j].thread != prog.ops[op].thread
               and (resource_outputs(prog, j) or prog.ops[j].name in FREES) for j in group)


def first_id_early(prog: Program, group: range, kernel: list[OpResult]) -> list[int]:
    """The group's ops that take their first id well before the others, beside an op on
    another thread that takes ids. A TEST_MOCK_DOMAIN reserves its selftest object's id
    first (iommufd_object_alloc, selftest.c:754; main.c:55), then creates the mock
    device, binds it (the idev's id, selftest.c:770) and only then looks its pt id up
    and attaches (selftest.c:779; an auto domain's hwpt id): a racing op may run whole
    in between, taking the next ids and finalizing its objects, so the mock domain's
    lookup finds, at an id no whole-call order gives that object, the racing op's (an
    IOAS_ALLOC taking id 2 while the mock domain held 1: the mock domain on pt 2
    attaches to it). model_alongside tries the orders again with such an op's first id
    taken as soon as its thread's op before it in the group has returned, the rest of
    it where the order puts it. Not an op that failed on an allocation (ENOMEM, or an
    injected fault): it may have failed allocating that first object (main.c:40, 55)."""
    takers = {prog.ops[i].thread for i in group
              if _id_outputs(prog, i) or prog.ops[i].name in HIDDEN_ID}
    return [i for i in group if len(_id_outputs(prog, i)) > 1
            and takers - {prog.ops[i].thread}
            and not (kernel[i].errno and (kernel[i].injected or kernel[i].errno == errno.ENOMEM))]


def thread_before(prog: Program, group: range, k: int) -> int | None:
    """The op of op k's thread just before it in the group (None: k is its first)."""
    mine = [i for i in group if i < k and prog.ops[i].thread == prog.ops[k].thread]
    return mine[-1] if mine else None


def not_whole_calls(prog: Program, group: range) -> str | None:
    """Why no whole-call order may give a racing group's results. One: an op frees
    ids (DESTROY) while an op on another thread creates objects: such an op takes its
    ids one at a time (TEST_MOCK_DOMAIN: the device, then its idev, then
    the auto domain's hwpt or an existing one if still there), so a DESTROY landing
    in between hands its freed ids to the op's later objects, and decides whether an
    auto domain is shared or made anew. Two: a dirty bitmap read beside a TEST_DIRTY.
    The model does not split calls."""
    destroys = {prog.ops[i].thread for i in group if prog.ops[i].name == "DESTROY"}
    # one id is one xa_alloc, atomic enough; several are taken apart
    makers = [i for i in group if len(_id_outputs(prog, i)) > 1
              and any(t != prog.ops[i].thread for t in destroys)]
    if makers:
        return (f"a racing DESTROY may have run inside op {makers[0]} "
                f"({prog.ops[makers[0]].name}), which takes its ids one at a time: which "
                "ids and which objects the group leaves is not known to the model")
    return dirty_walk_beside_marks(prog, group)


def dirty_walk_beside_marks(prog: Program, group: range) -> str | None:
    """Why the dirty bits a racing group leaves are not known: the dirty walk reads (and
    clears) the IOPTEs one at a time while a racing TEST_DIRTY marks them one at a
    time, so the bitmap may hold any part of the marks, and so may the bits left. A
    whole-call order that gives the bitmap (its bits already set in the user's
    memory, say) does not give the bits left."""
    marks = {prog.ops[i].thread for i in group if prog.ops[i].name == "TEST_DIRTY"}
    reads = [i for i in group if prog.ops[i].name == "HWPT_GET_DIRTY_BITMAP"
             and any(t != prog.ops[i].thread for t in marks)]
    if reads:
        return (f"op {reads[0]} (HWPT_GET_DIRTY_BITMAP) walked the IOPTEs while a racing "
                "TEST_DIRTY marked them: the bitmap and the dirty bits left may hold any "
                "part of the marks")
    return None


def _int_arg(prog: Program, op: int, name: str) -> int:
    """An integer argument as written (a ref or a pointer reads as all bits set)."""
    v = prog.ops[op].args.get(name, 0)
    return v if type(v) is int else -1


def forget_dirty(model: Model, prog: Program, group: range, start: int) -> None:
    """After a group that dirty_walk_beside_marks names, every paging HWPT's dirty bits
    are unknown (HwPagetable.dirty_unknown: a later dirty read is unsure) until enabling
    tracking clears them; everything else the group left is still compared. A read with
    NO_CLEAR leaves every mark."""
    why = dirty_walk_beside_marks(prog, group)
    clears = any(prog.ops[i].name == "HWPT_GET_DIRTY_BITMAP"
                 and not _int_arg(prog, i, "flags") & IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR
                 for i in group)
    if why is None or not clears:
        return
    for o in model.objects.objs.values():
        if isinstance(o, HwPagetable) and o.dirty_unknown is None:
            o.dirty_unknown = f"since the race group at op {start}: {why}"


def _output_pairs(prog: Program, group: range, kernel: list[OpResult],
                  results: dict[int, OpResult], outputs: Callable[[Program, int], Iterable[str]]
                  ) -> Iterator[tuple[int, int]]:
    """(the model's value, the kernel's) of each integer output `outputs` names, of the
    group's ops that succeeded in both."""
    for i in group:
        if kernel[i].errno or results[i].errno:
            continue
        for f in outputs(prog, i):
            old, new = results[i].out.get(f), kernel[i].out.get(f)
            if isinstance(old, int) and isinstance(new, int):
                yield old, new


def _rename_outputs(prog: Program, group: range, results: dict[int, OpResult],
                    outputs: Callable[[Program, int], Iterable[str]], names: dict[int, int]
                    ) -> None:
    """The group's results as the model's objects (files) are renamed now."""
    for i in group:
        for f in outputs(prog, i):
            v = results[i].out.get(f)
            if not results[i].errno and isinstance(v, int):
                results[i].out[f] = names.get(v, v)


def adopt_ids(model: Model, prog: Program, group: range, kernel: list[OpResult],
              results: dict[int, OpResult], diffs: list[Mismatch], before: set[int]) -> bool:
    """Where the only differences after a racing group are ids of objects its ops
    created (not in `before`: the ids held through the group by the objects that held
    them when it started, ObjectTable.kept_from - an id a racing op freed may go to a
    new object, in an interleaving no whole-call order gives: a TEST_MOCK_DOMAIN takes
    its stdev id, then a racing TEST_MOCK_DOMAIN_REPLACE puts the auto domain it left
    (device.c:793, main.c:166), then the bind takes that freed id for the idev), and
    the kernel's ids are free in the model: rename the model's objects to them, and
    its results. True if it did."""
    if not diffs or any(d.field not in _id_outputs(prog, d.op) for d in diffs):
        return False
    ids: dict[int, int] = {}
    for old, new in _output_pairs(prog, group, kernel, results, _id_outputs):
        if old in before:
            continue
        if ids.get(old, new) != new or old not in model.objects.objs:
            return False
        ids[old] = new  # also where they agree: that one stays
    targets = list(ids.values())
    if len(set(targets)) != len(targets):
        return False
    created = sorted(i for i in model.objects.objs if i not in before)
    for t in targets:
        if not 0 < t < 1 << 31 or (t in model.objects.objs and t not in created):
            return False
    # the group's other new objects, whose ids nothing shows (an access's), take the
    # ids left over, in order
    rest = [i for i in created if i not in ids]
    pool = sorted(set(created) - set(targets))
    ids.update(zip(rest, pool))
    model.objects.rename(ids)
    _rename_outputs(prog, group, results, _id_outputs, ids)
    return True


def adopt_fds(model: Model, prog: Program, group: range, kernel: list[OpResult],
              results: dict[int, OpResult], before: set[int]) -> bool:
    """Where the race leeway took the fd numbers of the group's ops as the kernel's
    choice (an op on another thread held an fd from get_unused_fd_flags until it
    failed and put_unused_fd gave it back: selftest.c:1129-1160 for an access): give
    the model's files the kernel's numbers, and its results, so that later ops naming
    an fd by the kernel's number (what refs read once an op is unsure) find the file
    the kernel has there. `before`: the fds open when the group started (never
    moved). True if the model's numbers are the kernel's now."""
    moves: dict[int, int] = {}
    for old, new in _output_pairs(prog, group, kernel, results, _fd_outputs):
        if old == new:
            continue
        if old in before or moves.get(old, new) != new:
            return False
        moves[old] = new
    if not moves:
        return True
    if not model.fds.renumber(moves):
        return False
    _rename_outputs(prog, group, results, _fd_outputs, moves)
    return True


def _fd_outputs(prog: Program, i: int) -> list[str]:
    return [o.name for o in prog.ops[i].desc.outs if o.is_fd]


def _objects_used(model: Model, prog: Program, i: int) -> set[int]:
    a = model.resolve(i)
    return {a[x.name] for x in prog.ops[i].desc.args if isinstance(x.type, Res) and
            x.name in a}


def _space(model: Model, prog: Program, i: int) -> int | str | None:
    """The IOVA space op i maps into or unmaps from: an IOAS id, or "compat"."""
    op = prog.ops[i]
    arg = op.desc.maps.space if op.desc.maps is not None else UNMAPS.get(op.name)
    if arg is None:
        return None
    return "compat" if arg == "compat" else model.resolve(i)[arg]


def _same_space(model: Model, prog: Program, i: int, k: int) -> bool:
    """Whether ops i and k map into or unmap from one IOVA space. The vfio compat
    IOAS is an IOAS too (VFIO_IOAS SET): a VFIO_IOMMU_MAP_DMA and an IOAS_MAP of its
    id meet in one tree (vfio_compat.c get_compat_ioas)."""
    si, sk = _space(model, prog, i), _space(model, prog, k)
    if si is None or sk is None:
        return False
    if si == sk:
        return True
    ioas = [_space_ioas(model, s, touch=False) for s in (si, sk)]
    return isinstance(ioas[0], Ioas) and ioas[0] is ioas[1]


def _space_ioas(model: Model, space: int | str | None, touch: bool = True) -> object | None:
    """The IOAS behind a space (_space): the vfio compat IOAS, or the IOAS of that id."""
    if space == "compat":
        return model.vfio_ioas
    return None if space is None else model.objects.get(int(space), OBJ_IOAS, touch=touch)


def _disables_large_pages(model: Model, prog: Program, k: int) -> Ioas | None:
    """The IOAS op k calls iopt_disable_large_pages on, if it does: VFIO_SET_IOMMU of
    VFIO_TYPE1_IOMMU (the compat IOAS), OPTION HUGE_PAGES set to 0 (its object)."""
    op = prog.ops[k]
    a = model.resolve(k)
    if op.name == "VFIO_SET_IOMMU" and a["type"] == VFIO_TYPE1_IOMMU:
        return model.vfio_ioas
    if op.name == "OPTION" and a["option_id"] == IOMMU_OPTION_HUGE_PAGES and \
            a["op"] == IOMMU_OPTION_OP_SET and a["val64"] == 0:
        ioas = model.objects.get(a["object_id"], OBJ_IOAS)
        return ioas if isinstance(ioas, Ioas) else None
    return None


def _met_areas_of_racing_maps(model: Model, prog: Program, k: int, others: list[int]) -> bool:
    """iopt_disable_large_pages refuses (EINVAL) while the IOAS has a domain and any
    area (io_pagetable.c:1342). A map's areas are in the tree from iopt_alloc_area_pages
    on, before their domains are filled (io_pagetable.c:369-375), and a map that fails
    there keeps them until iopt_map_user_pages aborts them (io_pagetable.c:437): so a
    racing map into that IOAS may have been met half done, even one that failed."""
    ioas = _disables_large_pages(model, prog, k)
    if ioas is None or not ioas.iopt.domains:
        return False
    return any(prog.ops[i].desc.maps is not None and
               _space_ioas(model, _space(model, prog, i)) is ioas for i in others)


def may_meet_failed_map(prog: Program, group: range, k: int, field: str,
                        kernel: list[OpResult]) -> bool:
    """Whether op k, a map with an automatic IOVA (output `field`), may have taken it
    while a map on another thread of the group that failed held its areas
    (IoPagetable.failed_spans): iopt_alloc_iova then skipped them, which no whole-call
    order gives."""
    op = prog.ops[k]
    if op.name not in AUTO_IOVA or _int_arg(prog, k, "flags") & AUTO_IOVA[op.name] or \
            field != op.desc.maps.iova:  # type: ignore[union-attr]
        return False
    return any(prog.ops[i].thread != op.thread and prog.ops[i].desc.maps is not None
               and kernel[i].errno for i in group)


@contextmanager
def meeting_failed_maps(model: Model, on: bool) -> Iterator[None]:
    """Steps an op whose automatic IOVA skips the areas of the group's failed maps."""
    iopts = [o.iopt for o in model.objects.objs.values() if isinstance(o, Ioas)] if on else []
    for t in iopts:
        t.meet_failed = True
    try:
        yield
    finally:
        for t in iopts:
            t.meet_failed = False


def transient(model: Model, prog: Program, group: range, k: int, kernel: OpResult) -> bool:
    """Whether op k of a racing group can have failed as the kernel says on another
    op's half-done work (TRANSIENT). `model`: the state before the group."""
    e = kernel.errno
    if e not in TRANSIENT:
        return False
    others = [i for i in group if prog.ops[i].thread != prog.ops[k].thread]
    name = prog.ops[k].name
    if e == errno.EBUSY and name == "DESTROY":
        gone = model.resolve(k)["id"]
        return any(gone in _objects_used(model, prog, i) for i in others)
    if e == errno.EBUSY and name in UNMAPS:
        return any(prog.ops[i].desc.maps is not None and _same_space(model, prog, i, k)
                   for i in others)
    if e == errno.EINVAL and _met_areas_of_racing_maps(model, prog, k, others):
        return True
    if e in (errno.ENOENT, errno.EINVAL):
        freed = {model.resolve(i)["id"] for i in others if prog.ops[i].name == "DESTROY"}
        if freed & _objects_used(model, prog, k):
            return True
    if e == errno.EINVAL and name in ANY_LOOKUPS:
        # iommufd_device_change_pt looks the pt id up as IOMMUFD_OBJ_ANY and answers
        # EINVAL for an object of another type (device.c:760, 785-786). A TEST_MOCK_DOMAIN
        # binds its device, an object finalized at once (device.c:204, 227), before it
        # looks its pt id up (selftest.c:754, 770, 779), and unbinds it if that fails
        # (selftest.c:798-799). So while an op on another thread takes ids, an id no object
        # held when the group started may hold for a while a device no whole-call order
        # puts there: a racing op's, or op k's own pushed up by a racing op's reserved id.
        fresh = model.resolve(k)[ANY_LOOKUPS[name]] not in model.objects.objs
        return fresh and any(_binds_device(prog, i) for i in group) and \
            any(_id_outputs(prog, i) or prog.ops[i].name in HIDDEN_ID for i in others)
    if e == errno.ENOENT:
        # iommufd_object_alloc reserves an id (xa_alloc of XA_ZERO_ENTRY, main.c:55) that
        # iommufd_get_object's xa_load finds empty (ENOENT, main.c:137-140) until
        # iommufd_object_finalize; a failing op gives its ids back only as it unwinds.
        # So an id no object held when the group started may, while an op on another
        # thread takes ids, be reserved by it, or by op k's own objects (a failing
        # TEST_MOCK_DOMAIN racing one on id 2: both selftest objects reserved first, the
        # devices made after; whole-call orders give id 2 to op k's own idev: EINVAL)
        fresh = _objects_used(model, prog, k) - set(model.objects.objs)
        return bool(fresh) and any(_id_outputs(prog, i) or prog.ops[i].name in HIDDEN_ID
                                   for i in others)
    if e == errno.EBUSY and name == "OPTION" and _int_arg(prog, k, "option_id") == \
            IOMMU_OPTION_RLIMIT_MODE and _int_arg(prog, k, "op") == IOMMU_OPTION_OP_SET:
        # setting the rlimit mode wants the xarray empty (ioas.c:350-352), and an id a
        # racing op holds, reserved or finalized, failing or not, is in it for a while
        return any(_id_outputs(prog, i) or prog.ops[i].name in HIDDEN_ID for i in others)
    if e == errno.EEXIST and prog.ops[k].desc.maps is not None:
        # iopt_map_pages inserts the areas, then pins and fills the domains: a map that
        # fails there takes its areas out again, after a racing map met them
        return any(prog.ops[i].desc.maps is not None and _same_space(model, prog, i, k)
                   for i in others)
    return False


def fail_early(model: Model, k: int, kernel: OpResult) -> OpResult:
    """Op k as having failed on a racing op's half-done work: no effect, the kernel's
    errno; unsure for an unmap that may have unmapped other areas first."""
    op = model.program.ops[k]
    res = OpResult(kernel.errno, -1, model.default_out(op.name, model.resolve(k)))
    if "ret" in res.out:
        res.out["ret"] = -1
    if op.name in UNMAPS:
        a = model.resolve(k)
        ioas = model.vfio_ioas if op.name == "VFIO_IOMMU_UNMAP_DMA" else \
            model.objects.get(a["ioas_id"], OBJ_IOAS)
        length = a["size" if op.name == "VFIO_IOMMU_UNMAP_DMA" else "length"]
        if ioas is not None and length and \
                ioas.iopt.area_iter_first(a["iova"], a["iova"] + length - 1) is not None:
            res.unsure = ("an unmap that met an area a racing op was mapping may have "
                          "unmapped the areas before it")
            model.poisoned = f"after op {k} ({op.name}): {res.unsure}"
        elif op.name == "VFIO_IOMMU_UNMAP_DMA" and ioas is not None and \
                kernel.errno == errno.EBUSY:
            # it copies unmap.size = unmapped back on failure too (vfio_compat.c:247):
            # the bytes unmapped before the busy area (io_pagetable.c:747), none here.
            # But with large pages off (VFIO_TYPE1_IOMMU, HUGE_PAGES 0) it first cuts the
            # areas at the range's ends (vfio_compat.c:230-241); a racing map's area, in
            # the tree with no pages yet (io_pagetable.c:296-301), is EBUSY there
            # (io_pagetable.c:1212-1213) and it returns before the copy: size as given.
            # Which of the two met the area is the race's; the kernel's size says which
            cut = ioas.iopt.disable_large_pages and kernel.out.get("size") == a["size"]
            res.out["size"] = a["size"] if cut else 0
    model.place(k, res, kernel, res.out)
    return res
