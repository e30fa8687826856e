"""The reference model: steps a Program op by op and predicts each OpResult.

Model.step resolves the op's arguments against the model's own earlier results,
applies the generic ioctl entry checks (iommufd_fops_ioctl: min size, E2BIG for
non-zero bytes past the struct), then runs the op's handler, which raises
KernelError(errno) or Unsure(reason). Output fields the kernel did not write
hold what the struct held: the input value (0 when the program gave none).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from fuzz import uapi
from fuzz.model import device, fault, hwpt, selftest, vfio
from fuzz.model import ioas as ioas_ops
from fuzz.model.consts import (
    E2BIG,
    EFAULT,
    EINVAL,
    IOMMU_HWPT_FAULT_ID_VALID,
    IOMMU_OPTION_RLIMIT_MODE,
    IOMMU_VFIO_IOAS_GET,
    IOPT_PAGES_ACCOUNT_MM,
    IOPT_PAGES_ACCOUNT_USER,
    MOCK_ACCESS_RW_WRITE,
    PAGE_SIZE,
    STRUCT_SIZES,
)
from fuzz.model.errors import ALL, KernelError, Unsure
from fuzz.model.file import AGENT_FDS, FdLayout, FdTable
from fuzz.model.iopt import IoPagetable, Pages, alloc_pages
from fuzz.model.memory import UserMemory
from fuzz.model.objects import (
    Access,
    Fault,
    HwPagetable,
    HwptNested,
    Ioas,
    Object,
    ObjectTable,
    SelftestObj,
)
from fuzz.model.ucmd import field_seen
from fuzz.prog import BUF_BASE, BUF_STRIDE, BufPtr, Op, Program, Ref
from fuzz.prog.descriptions import OPS
from fuzz.prog.layout import arg_defaults
from fuzz.prog.limits import MAX_STRUCT
from fuzz.prog.types import (
    COMMON_WIDTHS,
    FDIO,
    IOMMUFD,
    TEST,
    VFIO_STRUCT,
    VFIO_VAL,
    Capacity,
    Count,
    Entries,
    Ranges,
    Uptr,
    is_kind,
)
from fuzz.result import OpResult

HANDLERS: dict[str, Callable[[Model, Args], dict]] = {
    "DESTROY": ioas_ops.destroy,
    "IOAS_ALLOC": ioas_ops.ioas_alloc,
    "IOAS_ALLOW_IOVAS": ioas_ops.allow_iovas,
    "IOAS_IOVA_RANGES": ioas_ops.iova_ranges,
    "IOAS_MAP": ioas_ops.ioas_map,
    "IOAS_COPY": ioas_ops.ioas_copy,
    "IOAS_UNMAP": ioas_ops.ioas_unmap,
    "OPTION": ioas_ops.option,
    "VFIO_IOAS": ioas_ops.vfio_ioas,
    "TEST_ADD_RESERVED": selftest.add_reserved,
    "TEST_MOCK_DOMAIN": selftest.mock_domain,
    "TEST_MOCK_DOMAIN_FLAGS": selftest.mock_domain,
    "TEST_MOCK_DOMAIN_REPLACE": selftest.mock_domain_replace,
    "TEST_MD_CHECK_MAP": selftest.md_check_map,
    "TEST_MD_CHECK_REFS": selftest.md_check_refs,
    "TEST_CREATE_ACCESS": selftest.create_access,
    "TEST_DESTROY_ACCESS_PAGES": selftest.destroy_access_pages,
    "TEST_ACCESS_PAGES": selftest.access_pages,
    "TEST_ACCESS_RW": selftest.access_rw,
    "TEST_SET_TEMP_MEMORY_LIMIT": selftest.set_temp_memory_limit,
    "TEST_ACCESS_REPLACE_IOAS": selftest.access_replace_ioas,
    "HWPT_ALLOC": hwpt.hwpt_alloc,
    "GET_HW_INFO": device.get_hw_info,
    "HWPT_SET_DIRTY_TRACKING": hwpt.set_dirty_tracking,
    "HWPT_GET_DIRTY_BITMAP": hwpt.get_dirty_bitmap,
    "HWPT_INVALIDATE": hwpt.invalidate,
    "FAULT_QUEUE_ALLOC": fault.fault_alloc,
    "TEST_DIRTY": selftest.test_dirty,
    "TEST_MD_CHECK_IOTLB": selftest.md_check_iotlb,
    "TEST_TRIGGER_IOPF": selftest.trigger_iopf,
    "CLOSE": selftest.close,
    "READ": fault.read,
    "WRITE": fault.write,
    "POLL": fault.poll,
    "VFIO_GET_API_VERSION": vfio.get_api_version,
    "VFIO_CHECK_EXTENSION": vfio.check_extension,
    "VFIO_SET_IOMMU": vfio.set_iommu,
    "VFIO_IOMMU_GET_INFO": vfio.get_info,
    "VFIO_IOMMU_MAP_DMA": vfio.map_dma,
    "VFIO_IOMMU_UNMAP_DMA": vfio.unmap_dma,
}
U64_MASK = (1 << 64) - 1

# Where an unsure op leaves the model's state (Model._settle) beyond the objects it
# touched: ops that may make or free object ids, fds, pins of a user range, or
# write user memory (argument names of the range), and ops on program-wide state.
ID_KINDS = ("ioas", "stdev", "idev", "hwpt", "fault")  # kinds whose ids are object ids
ID_OPS = frozenset({"IOAS_ALLOC", "TEST_MOCK_DOMAIN", "TEST_MOCK_DOMAIN_FLAGS",
                    "TEST_MOCK_DOMAIN_REPLACE", "TEST_CREATE_ACCESS", "HWPT_ALLOC",
                    "FAULT_QUEUE_ALLOC", "DESTROY", "CLOSE"})
FD_OPS = frozenset(n for n, d in OPS.items() if any(o.is_fd for o in d.outs)) | {"CLOSE"}
# What an unsure op may have changed, by default: the objects it named (by id or fd)
# or made. Everything that depends on those - a domain's mapping on its IOAS, an
# access's pins, the pins IOASes share, a domain's dirty bits after an unmap - finds
# them among its deps (objects.Object.deps) and is unsure in turn. These ops also
# change what they reached through the ones they named (a replace: the device and
# its old domain; a destroy: what the object held; a fault: the queue of the device's
# domain; access pins: the IOAS's areas), so everything they touched is unknown:
TOUCHED_OPS = frozenset({"DESTROY", "CLOSE", "TEST_MOCK_DOMAIN_REPLACE", "TEST_TRIGGER_IOPF",
                         "TEST_ACCESS_PAGES", "TEST_DESTROY_ACCESS_PAGES",
                         "TEST_ACCESS_REPLACE_IOAS"})
# ... and these change no object, only user memory (WRITE_RANGES) or nothing
STATELESS_OPS = frozenset({"TEST_ACCESS_RW", "GET_HW_INFO", "IOAS_IOVA_RANGES",
                           "VFIO_IOMMU_GET_INFO", "TEST_MD_CHECK_MAP", "TEST_MD_CHECK_REFS",
                           "TEST_MD_CHECK_IOTLB", "VFIO_GET_API_VERSION",
                           "VFIO_CHECK_EXTENSION", "POLL"})
PIN_RANGES = {"IOAS_MAP": ("user_va", "length"), "VFIO_IOMMU_MAP_DMA": ("vaddr", "size")}
WRITE_RANGES: dict[str, Callable[[Args], tuple[int, int]]] = {
    "TEST_ACCESS_RW": lambda a: (a["uptr"], a["length"]),
    "IOAS_IOVA_RANGES": lambda a: (a["allowed_iovas"], 16 * a["num_iovas"]),
    "GET_HW_INFO": lambda a: (a["data_uptr"], a["data_len"]),
    "HWPT_GET_DIRTY_BITMAP": lambda a: (a["data"], -(-a["length"] // max(a["page_size"], 1)
                                                    // 8) + 8),
    "HWPT_INVALIDATE": lambda a: (a["data_uptr"], a["entry_len"] * a["entry_num"]),
    "READ": lambda a: (a["buf"], a["count"]),
}
# ops on program-wide state (the compat IOAS, the rlimit mode, the temp memory
# limit): the model gives up on everything when it could not follow one of them
# ... and these leave only one part of an object unknown (its `<facet>_unknown`): the
# ops that read that part check it
FACET_OPS = {"READ": "queue", "WRITE": "queue", "TEST_DIRTY": "dirty",
             "HWPT_GET_DIRTY_BITMAP": "dirty", "HWPT_SET_DIRTY_TRACKING": "dirty"}
GLOBAL_OPS = frozenset({"VFIO_IOAS", "TEST_SET_TEMP_MEMORY_LIMIT"})
# ... and objects an op looks up only once its other steps succeeded, so that the
# handler, failing earlier, never touched them: where the kernel's op succeeded (or its
# result is not known), it got that far. HWPT_ALLOC takes its fault last and gives it
# to the new HWPT (hw_pagetable.c:328-340: a users ref, and every fault a device
# attached to that HWPT raises is queued there); one that fails after that destroys
# the HWPT, which drops the ref (:350-351, :16-17): the fault is as it was
LATE_NAMED: dict[str, Callable[[Args], int | None]] = {
    "HWPT_ALLOC": lambda a: field_seen(a, "HWPT_ALLOC", "fault_id")
    if a["flags"] & IOMMU_HWPT_FAULT_ID_VALID else None,
}


def _one_page(addr: int, n: int) -> bool:
    return 0 < n <= PAGE_SIZE and addr // PAGE_SIZE == (addr + n - 1) // PAGE_SIZE


def _is_id(kind: str | None) -> bool:
    return kind is not None and any(is_kind(kind, k) for k in ID_KINDS)


class _OpInfo:
    """What Model.step needs of an op's description, computed once per op name."""

    __slots__ = ("masks", "outputs", "kind", "defaults", "count_of", "planned", "sizes",
                 "out_plan")

    def __init__(self, name: str) -> None:
        d = OPS[name]
        self.masks = {k: (1 << (8 * w)) - 1 for k, w in COMMON_WIDTHS.items()}
        for arg in d.args:
            self.masks[arg.name] = (1 << (8 * arg.width)) - 1
        self.outputs = d.outputs
        specials = {"ranges": list, "caps": list, "data": bytes, "ret": lambda: -1,
                    "entries": list, "first": lambda: 0}
        self.out_plan = [(o.name, specials.get(o.decode)) for o in d.outs]
        self.kind = d.call
        # what the executor puts in a field the program leaves out (fuzz.prog.layout):
        # a capacity's default, a side array's entry count, the natural size; `planned`
        # ops have defaults that depend on the other arguments (read/write counts, the
        # entries a list makes), so they ask the layout plan each time
        self.defaults: dict[str, int] = {}
        self.count_of: dict[str, str] = {}  # count argument -> its Ranges argument
        self.planned = False
        for arg in d.args:
            t = arg.type
            if isinstance(t, Capacity):
                self.defaults[arg.name] = t.default
            elif isinstance(t, Ranges):
                self.count_of[t.count] = arg.name
            elif isinstance(t, (Entries, Count)) or (isinstance(t, Uptr) and t.scratch):
                self.planned = True
        if d.call == VFIO_STRUCT:
            self.defaults["argsz"] = uapi.sizeof(d.struct) + d.extra_space
        self.sizes: tuple[int, int] | None = None
        if d.call in (IOMMUFD, TEST):
            self.sizes = STRUCT_SIZES["TEST" if d.call == TEST else name]


_INFO: dict[str, _OpInfo] = {}


def _info(name: str) -> _OpInfo:
    try:
        return _INFO[name]
    except KeyError:
        info = _INFO[name] = _OpInfo(name)
        return info


class Args(dict):
    """The resolved arguments of one op: integers wrapped to their field's width.
    a["name"] is 0 for an argument the program left out (the struct field is 0)."""

    __slots__ = ("raws",)

    def __missing__(self, key: str) -> int:
        return 0

    def has(self, name: str) -> bool:
        return name in self.raws

    def raw(self, name: str) -> Any:
        return self.raws.get(name)


class Model:
    """fds: the fd table the program starts with (file.AGENT_FDS: the guest agent's;
    None where it is not known, as in --backend local)."""

    def __init__(self, program: Program, fds: FdLayout | None = AGENT_FDS) -> None:
        self.program = program
        self.mem = UserMemory(program.buffers)
        if program.creds is not None:
            self.mem.memlock_pages = program.creds.memlock // PAGE_SIZE
        self.objects = ObjectTable()
        self.vfio_ioas: Ioas | None = None
        self.account_mode = IOPT_PAGES_ACCOUNT_USER  # /dev/iommu, not /dev/vfio/vfio
        self.fds = FdTable(fds, self.objects)  # the program's open access and fault fds
        self.ioases: list[Ioas] = []  # every IOAS made, destroyed ones too (pins_unknown)
        self.kernel_results: list[OpResult | None] = []
        # what a Ref to each op's output reads: the model's output, or the kernel's
        # where the model was unsure (the executor reads the kernel's, and an unsure
        # op is not compared: its values are known, what they name may not be)
        self.ref_outs: list[dict[str, Any]] = []
        self.captured = 0  # bytes of TEST_ACCESS_RW data the executor captured so far
        # by op index; None for an op of a race group not stepped yet (see step)
        self.results: list[OpResult | None] = []
        self.poisoned: str | None = None
        # fault points the model fails on purpose, to follow a path an injected fault
        # made the kernel take (fuzz.model.faults): ("attach", hwpt id), ("syz_conv", ioas id)
        self.fail_at: set[tuple[str, int]] = set()
        self.op_name = ""
        self.op: Op | None = None  # the op being stepped (handlers that need its layout)
        self._kernel: OpResult | None = None
        self._known: str | None = None

    # -- helpers the handlers use ------------------------------------------------
    def kernel_out(self, field: str) -> int | None:
        """The kernel's value of an output field of the current op, if it succeeded."""
        k = self._kernel
        if k is None or k.errno != 0:
            return None
        v = k.out.get(field)
        return v if isinstance(v, int) and not isinstance(v, bool) else None

    def kernel_result(self) -> OpResult | None:
        """The kernel's result for the current op, where the model is run beside it."""
        return self._kernel

    def known_bug(self, bug: str, errno: int, out: dict[str, Any]) -> bool:
        """Whether the kernel's result for the current op is exactly (errno, out) - what
        known kernel bug `bug` gives where the model predicts the documented behaviour.
        If so the op's result says so (OpResult.known), and the handler leaves the
        state the kernel left, so that later ops are still compared exactly."""
        k = self._kernel
        if k is None or k.errno != errno or any(k.out.get(f) != v for f, v in out.items()):
            return False
        self._known = bug
        return True

    def alloc_fd(self, obj: Access | Fault, field: str) -> int:
        """The fd of a new access or fault file (output `field`): the lowest free
        one, computed (see fuzz.model.file for where it cannot be)."""
        return self.fds.alloc(obj, self.kernel_out(field))

    def value_of(self, v: Any, width: int = 8) -> int:
        """A value as the kernel sees it at run time, wrapped to `width` bytes."""
        mask = (1 << (8 * width)) - 1
        if type(v) is Ref:
            src = self.ref_outs[v.op].get(v.field, 0)
            return ((src if type(src) is int else 0) + v.add) & mask
        if type(v) is BufPtr:
            return (BUF_BASE + v.buf * BUF_STRIDE + v.offset) & mask
        return int(v) & mask if type(v) is int else 0

    def new_pages(self, uptr: int, length: int, writable: bool) -> tuple[Pages, int]:
        """iopt_alloc_pages, and the accounting iopt_map_user_pages gives it: none with
        CAP_IPC_LOCK, else per user, or per mm in IOMMU_OPTION_RLIMIT_MODE 1."""
        pages, start_byte = alloc_pages(uptr, length, writable)
        if not self.program.has_cap("CAP_IPC_LOCK"):
            pages.account = IOPT_PAGES_ACCOUNT_MM if self.account_mode == IOPT_PAGES_ACCOUNT_MM \
                else IOPT_PAGES_ACCOUNT_USER
            self.mem.pages.append(pages)
        return pages, start_byte

    def all_pages(self) -> list[Pages]:
        seen: dict[int, Pages] = {}
        for obj in self.objects.objs.values():
            if isinstance(obj, Ioas):
                for area in obj.iopt.areas:
                    seen.setdefault(area.pages.serial, area.pages)
        return list(seen.values())

    def notify_unmap(self, iopt: IoPagetable, iova: int, length: int) -> None:
        """iommufd_access_notify_unmap: every access on the IOAS gets the unmap op."""
        for list_id in sorted(iopt.access_list):
            acc = iopt.access_list.get(list_id)
            if acc is not None:
                selftest.access_unmap(self, acc, iova, length)  # type: ignore[arg-type]

    def destroy_object(self, obj: Object) -> None:
        """The xarray erase of iommufd_object_remove, then the type's destroy op."""
        self.objects.remove(obj)
        if obj is self.vfio_ioas:
            self.vfio_ioas = None
        if isinstance(obj, Ioas):
            obj.iopt.unmap_range(0, (1 << 64) - 1, self.notify_unmap)
            obj.iopt.remove_reserved(None)
            obj.iopt.allowed = []
        elif isinstance(obj, SelftestObj):
            selftest.selftest_destroy(self, obj)
        elif isinstance(obj, HwPagetable):
            device.hwpt_paging_destroy(self, obj)
        elif isinstance(obj, HwptNested):
            device.hwpt_nested_destroy(self, obj)
        elif isinstance(obj, Fault):
            pass  # no HWPT reports to it any more, so no group is left in it
        else:  # devices and accesses always have another user
            raise Unsure(f"destroying a {obj.type} object is not modelled")

    # -- arguments ---------------------------------------------------------------------
    def resolve(self, index: int, info: _OpInfo | None = None) -> Args:
        op = self.program.ops[index]
        if info is None:
            info = _info(op.name)
        masks = info.masks
        vals = Args()
        for name, v in op.args.items():
            t = type(v)
            if t is int:
                vals[name] = v & masks.get(name, U64_MASK)
            elif t is Ref:
                src = self.ref_outs[v.op].get(v.field, 0)
                if type(src) is not int:
                    src = 0
                vals[name] = (src + v.add) & masks.get(name, U64_MASK)
            elif t is BufPtr:
                vals[name] = (BUF_BASE + v.buf * BUF_STRIDE + v.offset) & masks.get(name,
                                                                                  U64_MASK)
            elif t is list:
                vals[name] = 0
            else:
                vals[name] = int(v) & masks.get(name, U64_MASK)
        for name, v in info.defaults.items():
            if name not in vals:
                vals[name] = v
        for count, ranges in info.count_of.items():
            if count not in vals:
                raw = op.args.get(ranges)
                vals[count] = len(raw) if isinstance(raw, list) else 0
        if info.planned:
            for name, v in arg_defaults(op).items():
                if name not in vals:
                    vals[name] = self.value_of(v) & masks.get(name, U64_MASK)
        vals.raws = op.args
        return vals

    def default_out(self, name: str, a: Args, info: _OpInfo | None = None) -> dict[str, Any]:
        """What each output field holds if the kernel does not write it back."""
        out: dict[str, Any] = {}
        for f, special in (info or _info(name)).out_plan:
            out[f] = special() if special is not None else a[f]
        return out

    def check_struct_size(self, info: _OpInfo, a: Args) -> str | None:
        """iommufd_fops_ioctl + copy_struct_from_user: size < min -> EINVAL; bytes
        between the natural size and size must be zero (check_zeroed_user) -> E2BIG.
        The executor backs a literal size up to MAX_STRUCT with real memory holding
        zeros or the 'tail' byte; past that (or for a size that is a Ref) the kernel
        reads whatever follows in the executor's arena."""
        natural, min_size = info.sizes  # type: ignore[misc]
        size = a["size"] if "size" in a else natural
        if size < min_size:
            raise KernelError(EINVAL)
        if size > natural:
            raw = a.raws.get("size")
            if type(raw) is int and raw > natural and a["tail"]:
                raise KernelError(E2BIG)
            if type(raw) is not int or raw != size or size > MAX_STRUCT:
                # Those bytes are not the model's to know (other structs of the arena,
                # or its end); the kernel's errno tells: E2BIG (not all zero) or
                # EFAULT (not there) - nothing happened; anything else - zeros, and the
                # op ran as modelled, so it is compared. Without the kernel's result
                # the op may or may not have run: the handler runs, the op is unsure.
                why = (f"size {size}: the kernel checks {size - natural} trailing bytes "
                       "the executor does not provide")
                k = self._kernel
                if k is None:
                    return why
                if k.errno in (E2BIG, EFAULT):
                    raise Unsure(why, poisoned=False)
        return None

    # -- stepping ----------------------------------------------------------------------
    @staticmethod
    def _slot(lst: list, index: int, value: Any) -> None:
        """Ops are stepped in order 0..n-1, except that the ops of a race group may be
        stepped in any order once every op before the group has been (their refs all
        point before the group: fuzz.prog.ir): begin_group leaves their slots empty."""
        if index == len(lst):
            lst.append(value)
        else:
            assert index < len(lst) and lst[index] is None, f"op {index} stepped out of order"
            lst[index] = value

    def place(self, index: int, res: OpResult, kernel: OpResult | None = None,
              ref_out: dict[str, Any] | None = None) -> None:
        """Op `index`'s result (and the kernel's); with ref_out, also what refs to its
        outputs read (the op is done)."""
        self._slot(self.results, index, res)
        self._slot(self.kernel_results, index, kernel)
        if ref_out is not None:
            self._slot(self.ref_outs, index, ref_out)

    def begin_group(self, ops: range) -> None:
        """Make room for stepping the ops of a race group in any order."""
        assert ops.start == len(self.results), "a group starts after the ops before it"
        for o in self.objects.objs.values():
            if isinstance(o, Ioas):
                o.iopt.failed_spans = ()
        for lst in (self.results, self.kernel_results, self.ref_outs):
            lst.extend([None] * len(ops))

    def clone(self) -> Model:
        """An independent copy of the state (the program is shared): for trying an
        order of racing ops, or undoing an op that an injected fault failed.
        Done ops' results (the model's and the kernel's) and what refs read of their
        outputs are shared too: nothing changes them once the op is done (a race
        group's ops are renamed by adopt_ids before any later clone), and they were
        most of what a copy copied (a racing program clones dozens of times)."""
        memo: dict[int, Any] = {id(self.program): self.program}
        for op in self.program.ops:
            memo[id(op)] = op
        for done in (self.results, self.kernel_results, self.ref_outs):
            for x in done:
                if x is not None:
                    memo[id(x)] = x
        return copy.deepcopy(self, memo)

    def step(self, index: int, kernel: OpResult | None = None) -> OpResult:
        """Predict op `index` (ops are stepped in order 0..n-1). `kernel` is the real
        kernel's result for the same op when available; it is only used for what the
        model cannot know (fd numbers where the fd table is not known, see
        fuzz.model.file), after checking it against the rules. The ops of a race group
        may be stepped in any order (begin_group)."""
        op = self.program.ops[index]
        name = op.name
        info = _info(name)
        self.op_name = name
        self.op = op
        self._kernel = kernel
        self._known = None
        a = self.resolve(index, info)
        out = self.default_out(name, a, info) if info.out_plan else {}
        res = OpResult(0, 0, out)
        self.place(index, res, kernel)
        if self.poisoned is not None:
            res.unsure = self.poisoned
            self._slot(self.ref_outs, index, kernel.out if kernel is not None else out)
            return res
        self.objects.begin()
        self._arg_doubts(op)
        mem = self.mem
        mem.assumed = None
        mem.kernel_ok = None if kernel is None else (
            True if kernel.errno == 0 else False if kernel.errno == EFAULT else None)
        hard: Unsure | None = None
        maybe: str | None = None  # the op may not have run at all
        try:
            if info.sizes is not None:
                maybe = self.check_struct_size(info, a)
            out.update(HANDLERS[name](self, a))
        except KernelError as e:
            res.errno = e.errno
            res.ret = -1
            if e.out:
                out.update(e.out)
        except Unsure as e:
            hard = e
        if maybe is not None and (hard is None or not hard.poisoned):
            hard = Unsure(maybe)
        if mem.assumed is not None and hard is None:
            if kernel is not None and kernel.errno == res.errno:
                self.objects.doubt(mem.assumed, poisons=False)
            else:  # the model did not come out as the kernel did: it cannot follow
                hard = Unsure(mem.assumed)
        mem.kernel_ok = None
        self._kernel = None
        res.known = self._known
        if info.kind in (VFIO_VAL, FDIO):
            if res.errno == 0:
                res.ret = out["ret"]
            else:
                out["ret"] = res.ret
        own = self._settle(index, name, a, res, hard, kernel)
        # (and where the kernel's result is a known bug's: the model follows the kernel)
        ref_out = out
        if (res.unsure is not None or res.known) and kernel is not None:
            # but an object the model could not give the kernel's id is named by its own
            ref_out = {**kernel.out, **own} if own else kernel.out
        self._slot(self.ref_outs, index, ref_out)
        return res

    # -- what an unsure op leaves unknown ----------------------------------------------
    def _arg_doubts(self, op: Op) -> None:
        """A Ref to an output of an op the model was unsure of, without the kernel's
        result to read it from, is a value the model does not know."""
        for name, v in op.args.items():
            if type(v) is not Ref:
                continue
            src = self.results[v.op]
            if src.unsure is None or self.kernel_results[v.op] is not None:
                continue
            self.objects.doubt(f"{name} is op {v.op}'s {v.field}, which the model could not "
                               f"predict ({src.unsure})")

    def _settle(self, index: int, name: str, a: Args, res: OpResult, hard: Unsure | None,
                kernel: OpResult | None) -> dict[str, int]:
        """After the handler: ids of objects made while ids are not known, then, if the
        op was unsure (hard: the handler gave up; else the doubts it ran into), what
        it may have changed becomes unknown - never more than that (only the
        executor's memory written by the kernel makes everything unknown). Returns the
        output ids of objects kept at the model's own id (_take_kernel_ids)."""
        objs = self.objects
        own: dict[str, int] = {}
        if hard is None and objs.made and objs.ids_unknown is not None:
            own = self._take_kernel_ids(name, res, kernel)
        if hard is None and not objs.doubts:
            return own
        if hard is not None:
            why = hard.reason
            poisons = hard.poisoned and not (hard.unless_failed and kernel is not None
                                             and kernel.errno)
            scope = hard.scope
        else:
            why = objs.doubts[0][0]
            poisons = any(p for _, p in objs.doubts)
            scope = None
        res.unsure = why
        if not poisons:
            return own
        if scope == ALL and hard is not None and hard.write and kernel is not None \
                and kernel.errno == EFAULT and _one_page(*WRITE_RANGES.get(
                    name, lambda a: (hard.write[0], hard.write[1]))(a)):  # type: ignore
            # every write of the op goes to one page, and the op faulted: that page
            # took no byte, so the agent's memory is as it was
            scope = None
        # an op on program-wide state that was unsure, whatever of: a VFIO_IOAS set on an
        # id the model only guessed may have made that IOAS the compat one
        changes_global = name in GLOBAL_OPS and not (
            name == "VFIO_IOAS" and a["op"] == IOMMU_VFIO_IOAS_GET)
        if scope == ALL or changes_global or (hard is not None and (name in GLOBAL_OPS or (
                name == "OPTION" and a["option_id"] == IOMMU_OPTION_RLIMIT_MODE))):
            self.poisoned = f"after op {index} ({name}): {why}"
            return own
        root = f"since op {index} ({name}): {why}"
        if isinstance(scope, list):
            targets = scope
        elif name in STATELESS_OPS:
            targets = []
        else:
            targets = list((objs.touched if name in TOUCHED_OPS else objs.primary).values())
            late = LATE_NAMED.get(name)
            late_id = late(a) if late is not None else None
            if late_id is not None and late_id in objs.objs and (kernel is None
                                                                 or not kernel.errno):
                targets.append(objs.objs[late_id])
        facet = FACET_OPS.get(name)
        for o in targets:
            attr = f"{facet}_unknown" if facet and hasattr(o, f"{facet}_unknown") \
                else "unknown"
            if getattr(o, attr) is None:
                setattr(o, attr, root)
        same = hard is None and kernel is not None and kernel.errno == res.errno
        if name in ID_OPS and not (same and self._outs_match(name, res, kernel, False)):
            objs.ids_unknown = objs.ids_unknown or root
        if name in FD_OPS and not (same and self._outs_match(name, res, kernel, True)):
            self.fds.unknown = self.fds.unknown or root
        pin = PIN_RANGES.get(name)
        if pin is not None:
            self.mem.unknown_pins.append((a[pin[0]], a[pin[0]] + a[pin[1]], root))
        wr = WRITE_RANGES.get(name)
        if wr is not None:
            self.mem.taint(*wr(a))
        if name == "TEST_ACCESS_RW" and a["flags"] & MOCK_ACCESS_RW_WRITE:
            for o in objs.touched.values():  # it wrote somewhere into the access's IOAS
                if isinstance(o, Ioas):
                    for s, e in o.iopt.seen:
                        self.mem.taint(s, e - s)
        return own

    @staticmethod
    def _outs_match(name: str, res: OpResult, kernel: OpResult | None, fds: bool) -> bool:
        assert kernel is not None
        return all(kernel.out.get(o.name) == res.out.get(o.name) for o in OPS[name].outs
                   if (o.is_fd if fds else _is_id(o.kind)))

    def _take_kernel_ids(self, name: str, res: OpResult,
                         kernel: OpResult | None) -> dict[str, int]:
        """Object ids are not known (an unsure op may have taken some): objects this
        op made get the ids the kernel reports for them, if free in the model (the
        op is unsure, its state known); others keep a guessed id. Returns those kept
        at the model's id (output -> id): refs to them read that id, not the kernel's,
        which names another object in the model's table."""
        objs = self.objects
        objs.doubt(f"object ids are not known {objs.ids_unknown}", poisons=False)
        own: dict[str, int] = {}
        if kernel is None or kernel.errno or res.errno:
            return own
        made = {o.id: o for o in objs.made if o.id in objs.objs}
        pairs = []
        for o in OPS[name].outs:
            if _is_id(o.kind):
                mid, kid = res.out.get(o.name), kernel.out.get(o.name)
                if mid in made and isinstance(kid, int):
                    pairs.append((made.pop(mid), kid, o.name))
        for obj, _kid, _f in pairs:
            objs.remove(obj)
        for obj, kid, field in pairs:
            if objs.put(obj, kid):
                obj.id_guessed = False
            else:
                own[field] = obj.id
            res.out[field] = obj.id
        return own

    def pins_unknown(self, start: int, end: int) -> str | None:
        """Why the pin counts of user [start, end) may differ from the model's: an
        unsure op pinned (or not) there, or it is memory of an unknown IOAS."""
        for s, e, why in self.mem.unknown_pins:
            if s < end and start < e:
                return why
        for ioas in self.ioases:
            if ioas.unknown is not None:
                for s, e in ioas.iopt.seen:
                    if s < end and start < e:
                        return f"ioas {ioas.id} is unknown {ioas.unknown}"
        return None


def run_model(program: Program, kernel: list[OpResult] | None = None) -> list[OpResult]:
    m = Model(program)
    for i in range(len(program.ops)):
        m.step(i, kernel[i] if kernel is not None and i < len(kernel) else None)
    return m.results  # type: ignore[return-value]
